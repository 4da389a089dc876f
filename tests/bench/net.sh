#!/bin/bash
# Network benchmark (issue 5): throughput and latency to a TCP server in a container, through
# a port cleat publishes against a direct connection to the container, all inside a private
# test systemd (see tests/testhost/testhost.sh) with the busybox fixture image served by a
# registry on its loopback. Reported, never asserted. The paths, from the test host:
#   - 127.0.0.1:18700    the published port on loopback (output DNAT, route_localnet, and
#                        masquerade on the way into the bridge)
#   - GATEWAY:18700      the published port on the host's own address on cleat's bridge
#                        (output DNAT, no masquerade: the container answers the gateway)
#   - CONTAINER:5201     the container's address, directly (routed to the bridge, no NAT)
#   - 127.0.0.1:18701    for reference, the same server outside any container, on loopback
# For each, with client and server on one CPU: one TCP stream each way for 2 s, the round trip
# of a 64-byte request/response (2000 over one connection: median and p99), and the cost of a
# new connection (200 of them: connect plus one 64-byte exchange, median and p99); each figure
# the median of 5 rounds over all paths. Then published / direct for each published path.
#
# Client and server are one small static C program, compiled here: the same code on every path,
# a server that runs inside the busybox image (bind-mounted, nothing to install in it), and a
# client that times each exchange itself instead of timing a process that starts per sample.
#
# usage: tests/bench/net.sh [BIN_DIR]     (default target/release; built if missing)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=$(realpath -m "${1:-$repo/target/release}")
fixtures=$repo/target/fixtures
# Under the repository, not /tmp: the test host has a private /tmp, and the container binds
# the benchmark program from here.
work=$repo/target/bench/net.$$
# shellcheck source=../testhost/lib.sh
. "$repo/tests/testhost/lib.sh"

"$repo/tests/testhost/deps.sh"
[ -x "$bin_dir/cleat" ] || (cd "$repo" && cargo build --release --bins)
"$repo/tests/testhost/images.sh" build "$fixtures" >&2

testhost_up "$work" "$bin_dir"
inside() { nsenter -t "$systemd_pid" -a "$@"; }

# The benchmark program (static: the busybox image has no C library).
mkdir -p "$work/bin"
cat >"$work/netbench.c" <<'C'
// netbench server PORT [CPU]           serves each connection in a thread, all on CPU if given
// netbench wait HOST PORT SECONDS       until a connection succeeds
// netbench up|down HOST PORT SECONDS    one stream; prints Gbit/s
// netbench rr HOST PORT COUNT SIZE      round trips on one connection; prints median, p99 in us
// netbench conn HOST PORT COUNT SIZE    new connection + one round trip each; median, p99 in us
// A connection's first byte says what the server does: 's' reads to EOF and answers with the
// byte count, 'o' writes until the client goes, 'e' echoes.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static void die(const char *what) { perror(what); exit(1); }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int full_read(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += r;
    }
    return 0;
}

static int full_write(int fd, const char *buf, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t w = write(fd, buf + put, n - put);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        put += w;
    }
    return 0;
}

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    static __thread char buf[CHUNK];
    int one = 1;
    char mode;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (full_read(fd, &mode, 1) == 0) {
        if (mode == 's') {
            uint64_t total = 0;
            ssize_t r;
            while ((r = read(fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
                if (r > 0) total += r;
            full_write(fd, (char *)&total, sizeof total);
        } else if (mode == 'o') {
            memset(buf, 'x', sizeof buf);
            while (full_write(fd, buf, sizeof buf) == 0) {}
        } else if (mode == 'e') {
            ssize_t r;
            while ((r = read(fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
                if (r > 0 && full_write(fd, buf, r) < 0) break;
        }
    }
    close(fd);
    return NULL;
}

static _Noreturn void server(int port, int cpu) {
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
    }
    // Both families on one socket where the kernel has IPv6; IPv4 alone otherwise.
    int fd = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, (struct sockaddr *)&a6, sizeof a6) < 0) { close(fd); fd = -1; }
    }
    if (fd < 0) {
        if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) die("socket");
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&a4, sizeof a4) < 0) die("bind");
    }
    if (listen(fd, 512) < 0) die("listen");
    signal(SIGPIPE, SIG_IGN);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    fprintf(stderr, "netbench: listening on port %d\n", port);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) continue;
        pthread_t t;
        if (pthread_create(&t, &attr, serve, (void *)(intptr_t)c) != 0) close(c);
    }
}

static struct sockaddr_storage target;
static socklen_t target_len;

static void parse_target(const char *host, const char *port) {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&target;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&target;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(atoi(port));
        target_len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(atoi(port));
        target_len = sizeof *a6;
    } else {
        fprintf(stderr, "netbench: not an address: %s\n", host);
        exit(2);
    }
}

static int dial(char mode, int quiet) {
    int fd = socket(target.ss_family, SOCK_STREAM, 0), one = 1;
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&target, target_len) < 0) {
        if (quiet) { close(fd); return -1; }
        die("connect");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (full_write(fd, &mode, 1) < 0) die("write");
    return fd;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median and 99th percentile of n samples in seconds, printed in microseconds.
static void report(double *s, int n) {
    qsort(s, n, sizeof *s, cmp);
    int p99 = (int)(n * 0.99);
    if (p99 >= n) p99 = n - 1;
    printf("%.1f %.1f\n", s[n / 2] * 1e6, s[p99] * 1e6);
}

static void exchange(int fd, char *buf, int size) {
    if (full_write(fd, buf, size) < 0 || full_read(fd, buf, size) < 0) die("echo");
}

int main(int argc, char **argv) {
    static char buf[CHUNK];
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "server"))
        server(atoi(argv[2]), argc == 4 ? atoi(argv[3]) : -1);
    if (argc < 5) {
        fprintf(stderr, "usage: see the top of netbench.c\n");
        return 2;
    }
    parse_target(argv[2], argv[3]);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "wait")) {
        double end = now() + atof(argv[4]);
        int fd;
        while ((fd = dial('e', 1)) < 0) {
            if (now() > end) { fprintf(stderr, "netbench: %s:%s does not answer\n", argv[2], argv[3]); return 1; }
            usleep(20000);
        }
        exchange(fd, buf, 1);
        close(fd);
        return 0;
    }
    if (!strcmp(cmd, "up") || !strcmp(cmd, "down")) {
        double secs = atof(argv[4]), start = now(), end = start + secs;
        uint64_t total = 0;
        if (!strcmp(cmd, "up")) {
            int fd = dial('s', 0);
            memset(buf, 'x', sizeof buf);
            while (now() < end) if (full_write(fd, buf, sizeof buf) < 0) die("write");
            shutdown(fd, SHUT_WR);
            // Done when the server has read everything: its count is the bytes that arrived.
            if (full_read(fd, (char *)&total, sizeof total) < 0) die("read count");
            close(fd);
        } else {
            int fd = dial('o', 0);
            ssize_t r;
            while (now() < end) {
                if ((r = read(fd, buf, sizeof buf)) <= 0) die("read");
                total += r;
            }
            close(fd);
        }
        printf("%.2f\n", total * 8 / (now() - start) / 1e9);
        return 0;
    }
    int count = atoi(argv[4]), size = argc > 5 ? atoi(argv[5]) : 64;
    if (size < 1 || size > CHUNK || count < 1) return 2;
    double *s = calloc(count, sizeof *s);
    memset(buf, 'x', size);
    if (!strcmp(cmd, "rr")) {
        int fd = dial('e', 0);
        for (int i = 0; i < 200; i++) exchange(fd, buf, size);  // warm-up
        for (int i = 0; i < count; i++) {
            double t = now();
            exchange(fd, buf, size);
            s[i] = now() - t;
        }
        close(fd);
    } else if (!strcmp(cmd, "conn")) {
        for (int i = 0; i < count; i++) {
            double t = now();
            int fd = dial('e', 0);
            exchange(fd, buf, size);
            s[i] = now() - t;
            close(fd);
        }
    } else {
        return 2;
    }
    report(s, count);
    return 0;
}
C
gcc -O2 -static -pthread -o "$work/bin/netbench" "$work/netbench.c"
chmod 0755 "$work/bin" "$work/bin/netbench"
netbench=$work/bin/netbench

inside "$repo/tests/testhost/registries.sh" start "$fixtures" >"$work/registries.log" 2>&1 ||
    { cat "$work/registries.log"; exit 1; }
image=127.0.0.1:5000/busybox:latest
inside cleat pull -q "$image" >/dev/null

# Client and server share one CPU (the last; the first takes more of the machine's
# interrupts). Left to the scheduler, one run puts them on one CPU and the next on two, with
# the softirq work wherever it falls: single-stream throughput then swings by 2x and round
# trips between 15 and 60 us from one run to the next, whatever the path, and the ratios
# say nothing. On one CPU, each figure is the whole CPU cost of its path.
cpu=$(($(nproc) - 1))
# The server in a container, its port published on every host address; the image's
# entrypoint execs the command, as user app (5201 needs no privilege).
inside cleat run -d --name bench-net -p 18700:5201 -v "$work/bin:/bench:ro" "$image" \
    /bench/netbench server 5201 "$cpu" >/dev/null
# The reference: the same server in the test host itself, as a unit of its systemd (so that
# it goes with the test host, like everything else started in there).
inside systemd-run -q --unit bench-net-host "$netbench" server 18701 "$cpu"
client() { inside taskset -c "$cpu" "$netbench" "$@"; }

# The container's address and its network's gateway, from the record cleat keeps of the
# container's attachment (src/network/attach.rs, Attachment).
read -r direct gateway < <(inside cat /var/lib/cleat/containers/bench-net/network.json | python3 -c '
import json, sys
a = json.load(sys.stdin)
v4 = [addr for addr, _ in a["addresses"] if ":" not in addr]
gw = [g for g in a["gateways"] if ":" not in g]
print(v4[0], gw[0])')
echo "bench: container bench-net at $direct (gateway $gateway); cleat port: $(inside cleat port bench-net | tr '\n' ' ')" >&2

hosts=(127.0.0.1 "$gateway" "$direct" 127.0.0.1)
ports=(18700 18700 5201 18701)
labels=("published port, 127.0.0.1:18700" "published port, $gateway:18700 (gateway)"
    "direct, $direct:5201 (container)" "no container, 127.0.0.1:18701 (reference)")
for i in "${!hosts[@]}"; do client wait "${hosts[$i]}" "${ports[$i]}" 10; done

# Rounds, each over every path in turn, so that a slow spell of the machine falls on all
# paths alike; each figure is the median of its rounds.
rounds=5
results=$work/results
: >"$results"
for round in $(seq "$rounds"); do
    echo "bench: round $round of $rounds" >&2
    for i in "${!hosts[@]}"; do
        h=${hosts[$i]} p=${ports[$i]}
        echo "$i $(client up "$h" "$p" 2) $(client down "$h" "$p" 2)" \
            "$(client rr "$h" "$p" 2000 64) $(client conn "$h" "$p" 200 64)" >>"$results"
    done
done

# The table: per path, the median over the rounds of each column; then published / direct
# (path 2).
python3 - "$results" "${labels[@]}" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    i, *values = line.split()
    rows.setdefault(int(i), []).append([float(v) for v in values])
labels = sys.argv[2:]
med = {i: [statistics.median(col) for col in zip(*runs)] for i, runs in rows.items()}
fmt = "{:<46}" + " {:>8}" * 6
print()
print("TCP from the test host to a server in a container: a published port against a direct")
print("connection, client and server on one CPU; median of %d rounds, each with" % len(rows[0]))
print("  to/from ctr: one stream each way for 2 s, Gbit/s")
print("  rtt: 2000 round trips of 64 B on one connection, median and p99, us")
print("  new: 200 new connections (connect + one 64 B round trip), median and p99, us")
print(fmt.format("", "to ctr", "from ctr", "rtt med", "rtt p99", "new med", "new p99"))
for i, label in enumerate(labels):
    print(fmt.format(label, *(f"{v:.2f}" if c < 2 else f"{v:.1f}" for c, v in enumerate(med[i]))))
print()
print("ratios, published / direct (throughput below 1 and times above 1: the published port is slower)")
for i in (0, 1):
    name = "published port via " + labels[i].split(", ")[1].split(" ")[0]
    print(fmt.format(name, *(f"{a / b:.2f}" for a, b in zip(med[i], med[2]))))
PY

inside systemctl stop bench-net-host
inside cleat rm -f bench-net >/dev/null
