/*
 * The broker's counters, described once. Each shard owns one struct
 * metrics_shard of plain relaxed atomics: its own thread adds, any thread
 * reads (a sum across shards may be torn; statistics tolerate that, and
 * nobody takes a lock).
 *
 * metrics_table (metrics.c) names every value once: its Prometheus name,
 * help, kind, where the value lives and its optional $SYS topic. $SYS
 * (net/sys.c), the SIGUSR1 line (net/main.c) and the Prometheus text
 * renderer all read it, so a new counter is one field here and one line
 * there (the unit test fails until both exist).
 *
 * Names follow the Prometheus conventions: prefix ringmq_, the unit in the
 * name (_bytes, _seconds; a bare count is of the thing named), counters end
 * in _total, gauges do not. A label splits a family only into disjoint
 * parts, so that sum() over the family is a meaningful total: the limits a
 * CONNECT or PUBLISH was refused at are one family with a limit="..."
 * label. A count that is one reason among others of a total already shown
 * (messages dropped over memory_limit, within ringmq_messages_dropped_total)
 * is not a labelled sample of the total's family, because sum() would then
 * count it twice; it goes into a family of its own.
 *
 * Everything here is pure: the functions read the shards' atomics and the
 * table, and may be called from any thread.
 */
#ifndef RINGMQ_METRICS_H
#define RINGMQ_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a message was not delivered (ringmq_messages_dropped_total's
 * reason label; $SYS messages/dropped is their sum). */
enum metrics_drop {
    METRICS_DROP_QUEUE_FULL,       /* QoS 1/2: max_queued_messages / _bytes */
    METRICS_DROP_OUTPUT_FULL,      /* QoS 0: the client's output at max_output_buffer */
    METRICS_DROP_OFFLINE,          /* QoS 0: the session's client is not connected */
    METRICS_DROP_TOO_LARGE,        /* over the client's maximum packet size */
    METRICS_DROP_EXPIRED,          /* its message expiry interval ran out */
    METRICS_DROP_MEMORY,           /* over memory_limit, nothing new is stored */
    METRICS_DROP_RETAINED_BACKLOG, /* retained for a SUBSCRIBE past the backlog bound */
    METRICS_DROP_TOPIC_LEVELS,     /* a PUBLISH over max_topic_levels */
    METRICS_DROP_NO_SHARE_MEMBER,  /* a shared subscription with no member to take it */
    METRICS_DROP_COUNT
};

struct metrics_shard {
    atomic_uint_fast64_t connections;
    atomic_uint_fast64_t connects_total;
    /* PUBLISH packets by QoS: received from clients, sent to them. */
    atomic_uint_fast64_t msgs_received[3];
    atomic_uint_fast64_t msgs_sent[3];
    atomic_uint_fast64_t msgs_dropped[METRICS_DROP_COUNT];
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
    atomic_uint_fast64_t mem_held;          /* holds on publishers at 90% of memory_limit */
    atomic_uint_fast64_t
        retained_backlog_dropped;        /* retained for a SUBSCRIBE over the backlog bound */
    atomic_uint_fast64_t tls_handshakes; /* TLS handshakes completed */
    atomic_uint_fast64_t tls_failures;   /* TLS handshakes or records refused */
    atomic_uint_fast64_t tls_resumed;    /* of tls_handshakes: resumed from a ticket */
    /* Refused by the ACL: PUBLISHes, SUBSCRIBE filters, deliveries (a
     * message a subscriber's filter matched but it may not read, retained
     * ones included) and CONNECTs for their will topic. */
    atomic_uint_fast64_t acl_denied_publish;
    atomic_uint_fast64_t acl_denied_subscribe;
    atomic_uint_fast64_t acl_denied_read;
    atomic_uint_fast64_t acl_denied_will;
    atomic_uint_fast64_t auth_cache_hits; /* passwords let in from the verified-credential cache */
    /* Reading paused because a client went over max_publish_rate,
     * max_subscribe_rate or max_inbound_rate. */
    atomic_uint_fast64_t rate_paused_publish;
    atomic_uint_fast64_t rate_paused_subscribe;
    atomic_uint_fast64_t rate_paused_bytes;
    atomic_uint_fast64_t address_refused; /* connections closed at accept: allow_from/deny_from */
    /* Connections refused by the availability limits (net/admit.c): at
     * accept, or (ban and flapping of a client id or username, overload)
     * with a CONNACK. */
    atomic_uint_fast64_t ban_refused;      /* ban_file */
    atomic_uint_fast64_t flapping_refused; /* a flapping or failed-login ban */
    atomic_uint_fast64_t per_ip_refused;   /* max_connections_per_ip */
    atomic_uint_fast64_t rate_refused;     /* max_connect_rate, max_connect_rate_per_ip */
    atomic_uint_fast64_t proxy_refused;    /* a missing or malformed PROXY header */
    atomic_uint_fast64_t max_conn_refused; /* max_connections (or no memory for one) */
    atomic_uint_fast64_t overload_refused; /* 0x89: a loop lagged, or memory near its limit */
    atomic_uint_fast64_t flapping_bans;    /* bans flapping or failed logins began */
    atomic_uint_fast64_t untracked;        /* admitted untracked: the tally's window was full */
    /* A gauge: subscriptions the shard's sessions hold (shared ones
     * included), connected or not; added and taken off as they change. */
    atomic_uint_fast64_t subscriptions;
};

enum metrics_kind {
    METRICS_COUNTER, /* only grows (until a restart) */
    METRICS_GAUGE,   /* goes up and down */
};

/* Where a value lives: summed over the shards' struct metrics_shard, or
 * read by the caller from broker-wide state (sessions, the retained store,
 * memory) and handed over in an array indexed by enum metrics_broker. */
enum metrics_source {
    METRICS_SHARD,
    METRICS_BROKER,
};

enum metrics_broker {
    METRICS_BROKER_UPTIME_S,
    METRICS_BROKER_SHARDS,
    METRICS_BROKER_SESSIONS,
    METRICS_BROKER_RETAINED,
    METRICS_BROKER_AUTH_PENDING,
    METRICS_BROKER_MEM_ALLOCATED,
    METRICS_BROKER_MEM_LIMIT,
    METRICS_BROKER_COUNT
};

/* One sample of the table. Entries with the same name are one family and
 * sit next to each other; they share kind and help and differ by labels. */
struct metrics_entry {
    const char *name;   /* Prometheus family name */
    const char *labels; /* NULL, or the sample's labels: limit="max_sessions" */
    const char *help;   /* one line, the family's # HELP */
    enum metrics_kind kind;
    enum metrics_source source;
    size_t offset;              /* METRICS_SHARD: offsetof(struct metrics_shard, ...) */
    enum metrics_broker broker; /* METRICS_BROKER: index into the caller's values */
    bool per_shard;             /* rendered as one sample per shard, shard="i" */
    const char *sys_topic;      /* under $SYS/broker/, or NULL: not published there */
    const char *sys_suffix;     /* NULL, or appended to the $SYS value: " seconds" */
    /* The $SYS topic (and the SIGUSR1 figure) is the sum of the whole
     * family, not this sample: "messages/received" over every qos. */
    bool sys_family;
};

/* The table, in $SYS order. Read-only; any thread. */
extern const struct metrics_entry metrics_table[];
extern const size_t metrics_table_len;

/* One shard counter (offset as in metrics_entry) summed over shards[0..n).
 * Relaxed loads: a sum torn across shards is fine for statistics. Any
 * thread; shards are only read. */
uint64_t metrics_sum(const struct metrics_shard *const *shards, unsigned n, size_t offset);

/* The value of entry e: metrics_sum for a shard counter, broker[e->broker]
 * for a broker value (broker may be NULL only if e is a shard counter). */
uint64_t metrics_value(const struct metrics_entry *e, const struct metrics_shard *const *shards,
                       unsigned n, const uint64_t *broker);

/* What $SYS and SIGUSR1 show for entry e: metrics_value, or with
 * e->sys_family the sum of metrics_value over e's family. */
uint64_t metrics_sys_value(const struct metrics_entry *e, const struct metrics_shard *const *shards,
                           unsigned n, const uint64_t *broker);

/* The whole table in the Prometheus text exposition format 0.0.4: per
 * family a # HELP and a # TYPE line, then its samples; per-shard families
 * carry shard="0".."n-1" instead of one sum. broker holds
 * METRICS_BROKER_COUNT values, or is NULL to leave the broker families
 * out. Like snprintf: writes at most cap bytes, NUL-terminated when
 * cap > 0 (a prefix when it does not fit), and returns the length the
 * whole text needs without the NUL, so a caller whose buffer was too
 * small grows it past the result and renders again. buf may be NULL when
 * cap is 0. Pure; any thread. */
size_t metrics_render(char *buf, size_t cap, const struct metrics_shard *const *shards, unsigned n,
                      const uint64_t *broker);

#endif
