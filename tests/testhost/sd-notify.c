/* sd-notify: sends its arguments before "--", one per line, to $NOTIFY_SOCKET (sd_notify(3)),
 * then execs what follows "--". A payload that reports its own readiness from inside a
 * container without libsystemd; exec'ing keeps the sender alive as the unit's main process,
 * so systemd can attribute the message. Built static by the test harness. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path) {
        fputs("sd-notify: NOTIFY_SOCKET is not set\n", stderr);
        return 1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fputs("sd-notify: NOTIFY_SOCKET is too long\n", stderr);
        return 1;
    }
    strcpy(sa.sun_path, path);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0;
    char msg[4096] = "";
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strlen(msg) + strlen(argv[i]) + 2 > sizeof msg)
            return 1;
        strcat(msg, argv[i]);
        strcat(msg, "\n");
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("sd-notify");
        return 1;
    }
    close(fd);
    if (i + 1 < argc) {
        execvp(argv[i + 1], &argv[i + 1]);
        perror("sd-notify: exec");
        return 127;
    }
    return 0;
}
