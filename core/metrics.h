/*
 * The broker's counters, described once. Each shard owns one struct
 * metrics_shard of plain relaxed atomics: its own thread adds, any thread
 * reads (a sum across shards may be torn; statistics tolerate that, and
 * nobody takes a lock). The table that names them for $SYS and the
 * metrics endpoint lives in metrics.c.
 */
#ifndef RINGMQ_METRICS_H
#define RINGMQ_METRICS_H

#include <stdatomic.h>

struct metrics_shard {
    atomic_uint_fast64_t connections;
    atomic_uint_fast64_t connects_total;
    atomic_uint_fast64_t msgs_received;
    atomic_uint_fast64_t msgs_sent;
    atomic_uint_fast64_t msgs_dropped;
    atomic_uint_fast64_t retained_refused; /* over max_retained_messages / _bytes */
    atomic_uint_fast64_t auth_failed;      /* CONNECTs refused 0x86 / 0x87 */
    atomic_uint_fast64_t auth_busy;        /* CONNECTs refused 0x89 (auth queue full) */
    atomic_uint_fast64_t bytes_received;
    atomic_uint_fast64_t bytes_sent;
    atomic_uint_fast64_t protocol_errors;
    atomic_uint_fast64_t xq_overflow;
    atomic_uint_fast64_t publishers_held;   /* holds asked for by draining subscribers */
    atomic_uint_fast64_t connect_too_large; /* CONNECTs over max_connect_size */
    atomic_uint_fast64_t sessions_refused;  /* CONNECTs refused at max_sessions */
    atomic_uint_fast64_t mem_refused;       /* CONNECTs, PUBLISHes refused over memory_limit */
    atomic_uint_fast64_t mem_dropped;       /* messages not queued or retained over memory_limit */
    atomic_uint_fast64_t
        retained_backlog_dropped; /* retained for a SUBSCRIBE over the backlog bound */
};

#endif
