#!/usr/bin/python3
"""A TCP proxy on loopback that slows down what the server sends, so that a test can catch a
pull in the middle of a download.

    throttle-proxy.py --listen 127.0.0.1:5003 --target 127.0.0.1:5000 --rate BYTES_PER_SECOND

Each connection is forwarded to the target; bytes from the client go through as they come,
bytes from the server are paced to --rate per connection. Logs one line per connection on
stderr when it closes: `proxy: connection N closed: C bytes up, S bytes down`.
"""

import argparse
import itertools
import socket
import sys
import threading
import time

CHUNK = 16384


def loopback(addr, what):
    host, _, port = addr.rpartition(":")
    if not host.startswith("127."):
        sys.exit(f"{what} must be a loopback address, not {addr}")
    return host, int(port)


def pump(src, dst, rate, counter, key):
    start = time.monotonic()
    sent = 0
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            dst.sendall(data)
            sent += len(data)
            counter[key] = sent
            if rate:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def serve(client, target, rate, n):
    counter = {"up": 0, "down": 0}
    try:
        server = socket.create_connection(target, timeout=10)
        server.settimeout(None)
    except OSError as e:
        sys.stderr.write(f"proxy: connection {n}: {target}: {e}\n")
        client.close()
        return
    up = threading.Thread(target=pump, args=(client, server, 0, counter, "up"), daemon=True)
    up.start()
    pump(server, client, rate, counter, "down")
    up.join()
    client.close()
    server.close()
    sys.stderr.write(f"proxy: connection {n} closed: {counter['up']} bytes up, {counter['down']} bytes down\n")
    sys.stderr.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--rate", type=int, default=4_000_000)
    a = p.parse_args()
    listen = loopback(a.listen, "--listen")
    target = loopback(a.target, "--target")
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(listen)
    ls.listen(64)
    sys.stderr.write(f"proxy: {a.listen} -> {a.target} at {a.rate} bytes/s per connection\n")
    sys.stderr.flush()
    for n in itertools.count(1):
        client, _ = ls.accept()
        threading.Thread(target=serve, args=(client, target, a.rate, n), daemon=True).start()


if __name__ == "__main__":
    main()
