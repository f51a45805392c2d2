/*
 * stderr logging. The level is a process-wide atomic so SIGHUP could change
 * it later; the thread name is thread-local. A line is formatted into a stack
 * buffer and written with one write(2): lines stay whole under concurrency.
 * Client ids are untrusted bytes: they are escaped, never printed raw.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = LOG_LEVEL_NOTICE;
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
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
