/*
 * Logging to stderr. One write(2) per line so lines from different shards
 * never interleave. Every line carries the time, the level, the thread
 * ("main" or "shard N") and, when the caller knows it, the client id.
 * Callers never pass payloads or passwords. Any thread.
 */
#ifndef RINGMQ_LOG_H
#define RINGMQ_LOG_H

#include <stddef.h>

#include "config.h"

void log_set_level(enum config_log_level level);
/* The destinations of c (log_dest; stderr when none is named), before any
 * other thread starts. 0, or -1 with "source: log_dest file PATH: why" in
 * err (lines then go to stderr). */
int log_open(const struct config *c, char *err, size_t errlen);
/* The log file again, in place of the open one (SIGHUP, after a rotation).
 * 0, or -1 with why in err (the old file stays). */
int log_reopen(char *err, size_t errlen);
int log_enabled(enum config_log_level level);
/* Names this thread in its log lines: -1 main, N for shard N,
 * LOG_THREAD_METRICS the metrics endpoint's. */
#define LOG_THREAD_METRICS (-2)
void log_set_thread(int shard);

#if defined(__GNUC__)
#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LOG_PRINTF(a, b)
#endif

/* client_id may be NULL; it is printed as a quoted, escaped string of at
 * most id_len bytes. */
void log_write(enum config_log_level level, const char *client_id, size_t id_len, const char *fmt,
               ...) LOG_PRINTF(4, 5);

#define LOG(level, ...)                                                                            \
    do {                                                                                           \
        if (log_enabled(level))                                                                    \
            log_write(level, NULL, 0, __VA_ARGS__);                                                \
    } while (0)
#define LOGC(level, id, idlen, ...)                                                                \
    do {                                                                                           \
        if (log_enabled(level))                                                                    \
            log_write(level, (const char *)(id), idlen, __VA_ARGS__);                              \
    } while (0)

#endif
