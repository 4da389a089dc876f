#!/bin/bash
# Starts the test registries INSIDE a test host (its private network namespace, /var and /etc),
# as transient units of its systemd, and pushes the fixture images into them. Run it there:
#
#   registries.sh start FIXTURES [--big]
#                                     FIXTURES: the output of `images.sh build`; --big also
#                                     pushes the benchmark image (`images.sh build --big`)
#
# Everything listens on 127.0.0.1 of the test host's own network namespace:
#
#   127.0.0.1:5000  testreg-plain      plain HTTP, no auth (all images are pushed here)
#   127.0.0.1:5443  testreg-tls        HTTPS (certificate from a self-signed CA), basic auth
#   127.0.0.1:5001  testreg-token      plain HTTP, bearer tokens from the token server below
#   127.0.0.1:5002  testreg-tokensrv   tests/testhost/token-server.py
#   127.0.0.1:5003  testreg-throttle   tests/testhost/throttle-proxy.py in front of :5000,
#                                      4 MB/s per connection
#
# The three registries share one storage directory (the HTTPS and token ones read-only), so
# every image is pushed once. State, certificates and configs are under $DIR
# (/var/lib/cleat-test-registry, the test host's private /var):
#
#   $DIR/tls/ca.pem         the CA that signed the HTTPS registry's certificate
#   $DIR/digests            NAME sha256:... of each pushed manifest (as the registry serves it)
#   $DIR/manifests/NAME     the raw manifests
#
# /etc/cleat/registries.toml gets `[registries."127.0.0.1:5443"] ca-file = "$DIR/tls/ca.pem"`.
# Credentials: TLS_USER:TLS_PASSWORD and TOKEN_USER:TOKEN_PASSWORD below. The units go with the
# test host.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
DIR=/var/lib/cleat-test-registry
TLS_USER=tls-tester
TLS_PASSWORD=tls-Secret-1
TOKEN_USER=token-tester
TOKEN_PASSWORD=token-Secret-2
TOKEN_SERVICE=cleat-test-registry
TOKEN_ISSUER=cleat-test-token-issuer

log() { echo "registries.sh: $*" >&2; }

# The test host's network namespace is private: refuse to run where PID 1 is a real init.
guard() {
    if ! tr "\0" "\n" </proc/1/environ 2>/dev/null | grep -qx container=cleat-test; then
        log "refusing to run outside a cleat test host"
        exit 1
    fi
}

certs() {
    local t=$DIR/tls
    mkdir -p "$t" "$DIR/token"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
        -subj "/CN=cleat test CA" -keyout "$t/ca-key.pem" -out "$t/ca.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$t/server-key.pem" -out "$t/server.csr" 2>/dev/null
    cat >"$t/server.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOF
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" \
        -CAcreateserial -days 7 -extfile "$t/server.ext" -out "$t/server.pem" 2>/dev/null
    # For skopeo --cert-dir.
    mkdir -p "$t/certs.d"
    cp "$t/ca.pem" "$t/certs.d/ca.crt"
    # The token signing certificate (self-signed, the registry's rootcertbundle).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
        -subj "/CN=$TOKEN_ISSUER" -keyout "$DIR/token/key.pem" -out "$DIR/token/cert.pem" \
        2>/dev/null
    htpasswd -Bbc "$DIR/htpasswd" "$TLS_USER" "$TLS_PASSWORD" 2>/dev/null
}

config() {
    local name=$1 addr=$2 readonly=$3 extra=$4
    cat >"$DIR/$name.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $DIR/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: $readonly
http:
  addr: $addr
  secret: cleat-test-registry-secret
$extra
EOF
}

wait_port() {
    local port=$1 unit=$2 deadline=$((SECONDS + 15))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if [ $SECONDS -ge $deadline ] || ! systemctl -q is-active "$unit"; then
            log "$unit does not listen on 127.0.0.1:$port"
            systemctl --no-pager status -l "$unit" >&2 || true
            journalctl --no-pager -u "$unit" -n 30 >&2 || true
            exit 1
        fi
        sleep 0.02
    done
}

unit() {
    local name=$1
    shift
    systemctl stop "$name.service" 2>/dev/null || true
    systemctl reset-failed "$name.service" 2>/dev/null || true
    systemd-run --quiet --unit="$name" -p Type=exec -p KillMode=mixed "$@"
}

start() {
    local fixtures=$1 big=${2:-}
    guard
    mkdir -p "$DIR/storage" "$DIR/manifests"
    certs
    config plain 127.0.0.1:5000 false ""
    config tls 127.0.0.1:5443 true "  tls:
    certificate: $DIR/tls/server.pem
    key: $DIR/tls/server-key.pem
auth:
  htpasswd:
    realm: cleat-test-tls
    path: $DIR/htpasswd"
    config token 127.0.0.1:5001 true "auth:
  token:
    realm: http://127.0.0.1:5002/token
    service: $TOKEN_SERVICE
    issuer: $TOKEN_ISSUER
    rootcertbundle: $DIR/token/cert.pem"

    unit testreg-plain docker-registry serve "$DIR/plain.yml"
    unit testreg-tls docker-registry serve "$DIR/tls.yml"
    unit testreg-token docker-registry serve "$DIR/token.yml"
    # Debian's python3 (python3-jwt, python3-cryptography), whatever else is first on PATH:
    # systemd-run resolves the command in the caller's PATH.
    unit testreg-tokensrv /usr/bin/python3 "$here/token-server.py" --listen 127.0.0.1:5002 \
        --key "$DIR/token/key.pem" --cert "$DIR/token/cert.pem" --issuer "$TOKEN_ISSUER" \
        --service "$TOKEN_SERVICE" --user "$TOKEN_USER:$TOKEN_PASSWORD" --public-prefix public/
    unit testreg-throttle /usr/bin/python3 "$here/throttle-proxy.py" --listen 127.0.0.1:5003 \
        --target 127.0.0.1:5000 --rate 4000000
    wait_port 5000 testreg-plain
    wait_port 5443 testreg-tls
    wait_port 5001 testreg-token
    wait_port 5002 testreg-tokensrv
    wait_port 5003 testreg-throttle

    "$here/images.sh" push "$fixtures" 127.0.0.1:5000 $big

    # What the registry serves, for the tests' expectations.
    : >"$DIR/digests.tmp"
    local name
    for name in busybox layers multiarch zstd schema2 concurrent bulky rmi public/busybox big; do
        if skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:5000/$name:latest" \
            >"$DIR/manifests/${name//\//_}" 2>/dev/null; then
            echo "$name sha256:$(sha256sum <"$DIR/manifests/${name//\//_}" | cut -d' ' -f1)" >>"$DIR/digests.tmp"
        else
            rm -f "$DIR/manifests/${name//\//_}"
        fi
    done
    mv "$DIR/digests.tmp" "$DIR/digests"
    # skopeo may recompress silently: the zstd image must really have a zstd layer.
    if ! grep -q 'application/vnd.oci.image.layer.v1.tar+zstd' "$DIR/manifests/zstd"; then
        log "the pushed zstd image has no zstd layer:"
        cat "$DIR/manifests/zstd" >&2
        exit 1
    fi

    mkdir -p /etc/cleat
    local toml=/etc/cleat/registries.toml
    if ! grep -qs '^\[registries\."127\.0\.0\.1:5443"\]' "$toml"; then
        cat >>"$toml" <<EOF
# The test registries (tests/testhost/registries.sh).
[registries."127.0.0.1:5443"]
ca-file = "$DIR/tls/ca.pem"
EOF
    fi
}

case ${1:-} in
start)
    [ $# -ge 2 ] || { echo "usage: $0 start FIXTURES [--big]" >&2; exit 2; }
    start "$(realpath "$2")" "${3:-}"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2
    exit 2
    ;;
esac
