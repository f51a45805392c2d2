/*
 * The systemd notification protocol (sd_notify(3)), written out rather
 * than linking libsystemd for three datagrams: READY=1 once every listener
 * is open (Type=notify), RELOADING=1 and READY=1 around a SIGHUP reload,
 * STOPPING=1 at the stop. Without NOTIFY_SOCKET (not under systemd)
 * nothing is sent. A failure is logged once and never stops the broker.
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

void notify_systemd(const char *state)
{
    static int warned;
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0])
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
        if (!warned++)
            LOG(LOG_LEVEL_WARNING, "NOTIFY_SOCKET %s: not a socket path; systemd is not told",
                path);
        return;
    }
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* the abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    char msg[128];
    int len = snprintf(msg, sizeof(msg), "%s", state);
    if (strcmp(state, "RELOADING=1") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        len = snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                       (unsigned long long)ts.tv_sec * 1000000ull +
                           (unsigned long long)ts.tv_nsec / 1000u);
    }
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (fd < 0 ||
        sendto(fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&sa, sl) != (ssize_t)len) {
        if (!warned++)
            LOG(LOG_LEVEL_WARNING, "NOTIFY_SOCKET %s: %s; systemd is not told", path,
                strerror(errno));
    }
    if (fd >= 0)
        close(fd);
}
