/*
 * Logging. The level is a process-wide atomic so SIGHUP could change it
 * later; the thread name is thread-local. A line is formatted into a stack
 * buffer and written with one write(2) per destination: lines stay whole
 * under concurrency. Client ids are untrusted bytes: they are escaped,
 * never printed raw.
 *
 * Destinations (log_dest): stderr (the default), stdout, a file opened
 * for appending, syslog (LOG_DAEMON). Under systemd, whose journal reads
 * stderr, each stderr line starts with its priority ("<5>"), as
 * sd-daemon(3) asks, so journalctl -p works. log_reopen opens the file
 * again on SIGHUP (after logrotate moved it) and puts it in place of the
 * old one with dup2, so a thread writing meanwhile never writes to a
 * closed or reused descriptor.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = LOG_LEVEL_NOTICE;
/* Set before the other threads start (log_open); read-only afterwards. */
static uint32_t log_dests = CONFIG_LOG_STDERR;
static int log_fd = -1;
static char log_path[CONFIG_PATH_MAX];
static bool log_journal;
static _Thread_local int log_shard = -1;

static const char *const level_names[] = {"error", "warning", "notice", "info", "debug"};

void log_set_level(enum config_log_level level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

int log_enabled(enum config_log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void log_set_thread(int shard)
{
    log_shard = shard;
}

static size_t escape_id(char *out, size_t cap, const char *id, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
    }
    out[o] = 0;
    return o;
}

void log_write(enum config_log_level level, const char *client_id, size_t id_len, const char *fmt,
               ...)
{
    char line[4096]; /* the SIGUSR1 line names every counter */
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level]);
    if (log_shard == LOG_THREAD_METRICS)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[metrics] ");
    else if (log_shard < 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[main] ");
    else
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[shard %d] ", log_shard);
    if (client_id) {
        char esc[200];
        escape_id(esc, sizeof(esc), client_id, id_len > 48 ? 48 : id_len);
        n += snprintf(line + n, sizeof(line) - (size_t)n, "client '%s': ", esc);
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* Best effort: a log line is never worth blocking or failing for. */
    uint32_t d = log_dests;
    if (d & CONFIG_LOG_NONE)
        return;
    ssize_t w;
    if (d & CONFIG_LOG_STDERR) {
        if (log_journal) {
            /* sd-daemon priorities: error 3, warning 4, notice 5, info 6, debug 7. */
            char pri[4] = {'<', (char)('3' + level), '>', 0};
            struct iovec v[2] = {{pri, 3}, {line, len}};
            w = writev(STDERR_FILENO, v, 2);
        } else {
            w = write(STDERR_FILENO, line, len);
        }
    }
    if (d & CONFIG_LOG_STDOUT)
        w = write(STDOUT_FILENO, line, len);
    if ((d & CONFIG_LOG_FILE) && log_fd >= 0)
        w = write(log_fd, line, len);
    (void)w;
    if (d & CONFIG_LOG_SYSLOG) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
        /* syslog stamps its own time: the line from the level on. */
        syslog(prio[level], "%.*s", (int)(len - 1 - 25), line + 25);
    }
}

/* Is stderr the journal's stream (systemd sets JOURNAL_STREAM=dev:inode)? */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev = 0, ino = 0;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int open_log_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int log_open(const struct config *c, char *err, size_t errlen)
{
    log_dests = c->log_dest ? c->log_dest : CONFIG_LOG_STDERR;
    log_journal = stderr_is_journal();
    if (log_dests & CONFIG_LOG_FILE) {
        snprintf(log_path, sizeof(log_path), "%s", c->log_file);
        log_fd = open_log_file(log_path);
        if (log_fd < 0) {
            snprintf(err, errlen, "%s: log_dest file %s: %s", c->source, log_path, strerror(errno));
            log_dests = CONFIG_LOG_STDERR;
            return -1;
        }
    }
    if (log_dests & CONFIG_LOG_SYSLOG)
        openlog("ringmq", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    return 0;
}

int log_reopen(char *err, size_t errlen)
{
    if (!(log_dests & CONFIG_LOG_FILE) || log_fd < 0)
        return 0;
    int fd = open_log_file(log_path);
    if (fd < 0 || dup2(fd, log_fd) < 0) {
        snprintf(err, errlen, "log_dest file %s: %s", log_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}
