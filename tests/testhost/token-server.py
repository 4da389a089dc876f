#!/usr/bin/python3
"""A small bearer-token server for the Docker registry's `auth: token:` scheme (the flow of
Docker Hub and most registries), for cleat's tests. Listens on loopback only.

    token-server.py --listen 127.0.0.1:5002 --key KEY.pem --cert CERT.pem \\
        --issuer ISSUER --service SERVICE --user NAME:PASSWORD [--public-prefix public/]

GET /token?service=SERVICE&scope=repository:NAME:pull[,push]&scope=...
    (and POST /token with an OAuth2 form: grant_type=password, username, password, service,
    scope) answers {"token": JWT, "access_token": JWT, "expires_in": 300, "issued_at": ...}.

With valid Basic credentials the token grants what the scopes ask for. Without credentials it
is anonymous and grants `pull` on repositories under the public prefix only (nothing else, as
Docker Hub does for private repositories). Wrong credentials get 401. The JWT is signed
ES256 (or RS256 for an RSA key) and its header carries `x5c`: the signing certificate, which
the registry trusts through its `rootcertbundle`.

Every request is logged on stderr: `token: user=NAME scope=... granted=...`.
"""

import argparse
import base64
import datetime
import json
import secrets
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

TTL = 300


def parse_scope(scope):
    # repository:NAME:ACTIONS; NAME may contain ':' only for a port in registry-scoped forms,
    # which this server never sees.
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    kind, actions = parts[0], parts[-1]
    name = ":".join(parts[1:-1])
    return kind, name, [a for a in actions.split(",") if a]


class Handler(BaseHTTPRequestHandler):
    server_version = "cleat-test-token/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("token: " + (fmt % args) + "\n")

    def reply(self, code, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        query = urllib.parse.parse_qs(url.query)
        user = None
        auth = self.headers.get("Authorization", "")
        if auth:
            if not auth.lower().startswith("basic "):
                return self.denied("unsupported authorization scheme")
            try:
                name, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except Exception:
                return self.denied("malformed basic credentials")
            user = self.check(name, password)
            if user is None:
                return
        self.issue(user, query.get("service", [""])[0], query.get("scope", []))

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        user = None
        if form.get("grant_type", [""])[0] == "password":
            user = self.check(form.get("username", [""])[0], form.get("password", [""])[0])
            if user is None:
                return
        elif form.get("grant_type", [""])[0] == "refresh_token":
            return self.reply(400, {"error": "unsupported_grant_type"})
        scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
        self.issue(user, form.get("service", [""])[0], scopes)

    def denied(self, why):
        sys.stderr.write(f"token: refused: {why}\n")
        self.reply(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": why}]},
            [("WWW-Authenticate", 'Basic realm="cleat-test-token"')],
        )

    def check(self, name, password):
        cfg = self.server.cfg
        if cfg.users.get(name) == password:
            return name
        self.denied(f"bad credentials for {name!r}")
        return None

    def issue(self, user, service, scopes):
        cfg = self.server.cfg
        if service != cfg.service:
            return self.reply(400, {"errors": [{"code": "UNSUPPORTED", "message": f"unknown service {service!r}"}]})
        access = []
        for s in scopes:
            parsed = parse_scope(s)
            if not parsed:
                continue
            kind, name, actions = parsed
            if kind != "repository":
                continue
            if user is not None:
                granted = [a for a in actions if a in ("pull", "push", "delete", "*")]
            elif name.startswith(cfg.public_prefix):
                granted = [a for a in actions if a == "pull"]
            else:
                granted = []
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": cfg.issuer,
            "sub": user or "",
            "aud": cfg.service,
            "exp": now + TTL,
            "nbf": now - 30,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        token = jwt.encode(claims, cfg.key, algorithm=cfg.alg, headers={"x5c": cfg.x5c})
        sys.stderr.write(f"token: user={user or '<anonymous>'} scope={' '.join(scopes)} access={json.dumps(access)}\n")
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.reply(200, {"token": token, "access_token": token, "expires_in": TTL, "issued_at": issued})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:5002")
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--user", action="append", default=[], help="NAME:PASSWORD (repeatable)")
    p.add_argument("--public-prefix", default="public/")
    cfg = p.parse_args()
    host, _, port = cfg.listen.rpartition(":")
    if not (host.startswith("127.") or host in ("::1", "[::1]", "localhost")):
        p.error("listens on loopback only")
    cfg.users = dict(u.split(":", 1) for u in cfg.user)
    with open(cfg.key, "rb") as f:
        cfg.key = serialization.load_pem_private_key(f.read(), password=None)
    cfg.alg = "ES256" if isinstance(cfg.key, ec.EllipticCurvePrivateKey) else "RS256"
    with open(cfg.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    cfg.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    server.daemon_threads = True
    server.cfg = cfg
    sys.stderr.write(f"token: listening on {cfg.listen}, issuer {cfg.issuer}, service {cfg.service}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
