/*
 * The metrics table and the two readers every consumer shares: the sum of
 * one counter over the shards, and the Prometheus text renderer. Pure: no
 * syscalls, no state; the shards' atomics are only loaded (relaxed), so
 * any thread may call these while the shards run.
 *
 * The $SYS topics are those mosquitto users and the integration tests
 * already read: never rename one. The Prometheus names are new and follow
 * the rules in metrics.h.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "invariant.h"

#define SHARD(field)  .source = METRICS_SHARD, .offset = offsetof(struct metrics_shard, field)
#define BROKER(value) .source = METRICS_BROKER, .broker = (value)

/* The helps of the labelled families, shared by their samples. */
static const char help_received[] = "PUBLISH packets received from clients, by QoS.";
static const char help_dropped[] =
    "Messages dropped instead of delivered to a subscriber, by reason: its QoS 1/2 queue full, "
    "its QoS 0 output full, QoS 0 for a client not connected, too large for the client, "
    "expired, memory_limit, past the retained backlog bound, a PUBLISH over max_topic_levels, "
    "a shared subscription with no member. (Rate limits never drop: they pause reading. A "
    "delivery the ACL refuses is in ringmq_acl_denied_total{action=\"read\"}.)";
static const char help_sent[] = "PUBLISH packets sent to clients, by the QoS they were sent at.";
static const char help_limit_refusals[] =
    "CONNECTs (and, at memory_limit, PUBLISHes) refused because a limit was reached, by limit.";
static const char help_limit_drops[] = "Messages not queued, delivered or retained because a "
                                       "limit was reached, by limit.";
static const char help_rate_pauses[] =
    "Times a client's reading paused because it went over a per-client rate, by limit.";
static const char help_conn_refusals[] =
    "Connections refused, by reason: closed at accept before a byte was sent (address rules; "
    "bans, flapping and failed-login bans of the address; per_ip; rate; a bad PROXY header; "
    "max_connections), "
    "or refused in the CONNACK (bans and flapping of a client id or username: 0x8A; overload: "
    "0x89).";
static const char help_acl_denied[] =
    "Actions the ACL refused, by action: PUBLISHes, SUBSCRIBE filters, deliveries to a "
    "subscriber that may not read the topic, CONNECTs for their will topic.";

/* The shard counters come first and in their old order: the SIGUSR1 line
 * lists them in this order. */
const struct metrics_entry metrics_table[] = {
    {.name = "ringmq_connections",
     .help = "Network connections open now.",
     .kind = METRICS_GAUGE,
     SHARD(connections),
     .per_shard = true,
     .sys_topic = "clients/connected"},
    {.name = "ringmq_connections_accepted_total",
     .help = "Network connections accepted.",
     .kind = METRICS_COUNTER,
     SHARD(connects_total),
     .per_shard = true,
     .sys_topic = "connections/total"},
    {.name = "ringmq_messages_received_total",
     .labels = "qos=\"0\"",
     .help = help_received,
     .kind = METRICS_COUNTER,
     SHARD(msgs_received[0]),
     .per_shard = true,
     .sys_topic = "messages/received",
     .sys_family = true},
    {.name = "ringmq_messages_received_total",
     .labels = "qos=\"1\"",
     .help = help_received,
     .kind = METRICS_COUNTER,
     SHARD(msgs_received[1]),
     .per_shard = true},
    {.name = "ringmq_messages_received_total",
     .labels = "qos=\"2\"",
     .help = help_received,
     .kind = METRICS_COUNTER,
     SHARD(msgs_received[2]),
     .per_shard = true},
    {.name = "ringmq_messages_sent_total",
     .labels = "qos=\"0\"",
     .help = help_sent,
     .kind = METRICS_COUNTER,
     SHARD(msgs_sent[0]),
     .per_shard = true,
     .sys_topic = "messages/sent",
     .sys_family = true},
    {.name = "ringmq_messages_sent_total",
     .labels = "qos=\"1\"",
     .help = help_sent,
     .kind = METRICS_COUNTER,
     SHARD(msgs_sent[1]),
     .per_shard = true},
    {.name = "ringmq_messages_sent_total",
     .labels = "qos=\"2\"",
     .help = help_sent,
     .kind = METRICS_COUNTER,
     SHARD(msgs_sent[2]),
     .per_shard = true},
    {.name = "ringmq_messages_dropped_total",
     .labels = "reason=\"queue_full\"",
     .help = help_dropped,
     .kind = METRICS_COUNTER,
     SHARD(msgs_dropped[METRICS_DROP_QUEUE_FULL]),
     .per_shard = true,
     .sys_topic = "messages/dropped",
     .sys_family = true},
    {.name = "ringmq_messages_dropped_total",
     .labels = "reason=\"output_full\"",
     .help = help_dropped,
     .kind = METRICS_COUNTER,
     SHARD(msgs_dropped[METRICS_DROP_OUTPUT_FULL]),
     .per_shard = true},
    {.name = "ringmq_messages_dropped_total",
     .labels = "reason=\"offline\"",
     .help = help_dropped,
     .kind = METRICS_COUNTER,
     SHARD(msgs_dropped[METRICS_DROP_OFFLINE]),
     .per_shard = true},
    {.name = "ringmq_messages_dropped_total",
     .labels = "reason=\"too_large\"",
     .help = help_dropped,
     .kind = METRICS_COUNTER,
     SHARD(msgs_dropped[METRICS_DROP_TOO_LARGE]),
     .per_shard = true},
    {.name = "ringmq_messages_dropped_total",
     .labels = "reason=\"expired\"",
     .help = help_dropped,
     .kind = METRICS_COUNTER,
     SHARD(msgs_dropped[METRICS_DROP_EXPIRED]),
     .per_shard = true},
    {.name = "ringmq_messages_dropped_total",
     .labels = "reason=\"memory_limit\"",
     .help = help_dropped,
     .kind = METRICS_COUNTER,
     SHARD(msgs_dropped[METRICS_DROP_MEMORY]),
     .per_shard = true},
    {.name = "ringmq_messages_dropped_total",
     .labels = "reason=\"retained_backlog\"",
     .help = help_dropped,
     .kind = METRICS_COUNTER,
     SHARD(msgs_dropped[METRICS_DROP_RETAINED_BACKLOG]),
     .per_shard = true},
    {.name = "ringmq_messages_dropped_total",
     .labels = "reason=\"topic_levels\"",
     .help = help_dropped,
     .kind = METRICS_COUNTER,
     SHARD(msgs_dropped[METRICS_DROP_TOPIC_LEVELS]),
     .per_shard = true},
    {.name = "ringmq_messages_dropped_total",
     .labels = "reason=\"no_share_member\"",
     .help = help_dropped,
     .kind = METRICS_COUNTER,
     SHARD(msgs_dropped[METRICS_DROP_NO_SHARE_MEMBER]),
     .per_shard = true},
    {.name = "ringmq_bytes_received_total",
     .help = "Bytes read from client connections.",
     .kind = METRICS_COUNTER,
     SHARD(bytes_received),
     .per_shard = true,
     .sys_topic = "bytes/received"},
    {.name = "ringmq_bytes_sent_total",
     .help = "Bytes written to client connections.",
     .kind = METRICS_COUNTER,
     SHARD(bytes_sent),
     .per_shard = true,
     .sys_topic = "bytes/sent"},
    {.name = "ringmq_retained_messages_refused_total",
     .help = "Retained messages not stored: over max_retained_messages, max_retained_bytes or "
             "memory_limit.",
     .kind = METRICS_COUNTER,
     SHARD(retained_refused),
     .sys_topic = "retained messages/refused"},
    {.name = "ringmq_auth_failures_total",
     .help = "CONNECTs refused for bad credentials or not authorised (0x86, 0x87).",
     .kind = METRICS_COUNTER,
     SHARD(auth_failed),
     .sys_topic = "auth/failed"},
    {.name = "ringmq_auth_busy_total",
     .help = "CONNECTs refused Server busy (0x89) because the auth queue was full.",
     .kind = METRICS_COUNTER,
     SHARD(auth_busy),
     .sys_topic = "auth/busy"},
    {.name = "ringmq_protocol_errors_total",
     .help = "Connections closed or CONNECTs refused for a protocol violation.",
     .kind = METRICS_COUNTER,
     SHARD(protocol_errors),
     .sys_topic = "protocol errors"},
    {.name = "ringmq_shard_queue_overflows_total",
     .help = "Items for another shard parked in order behind its full queue (none is lost).",
     .kind = METRICS_COUNTER,
     SHARD(xq_overflow),
     .per_shard = true,
     .sys_topic = "queues/overflow"},
    {.name = "ringmq_publishers_held_total",
     .help = "Holds on a publisher's input asked for by draining subscribers.",
     .kind = METRICS_COUNTER,
     SHARD(publishers_held),
     .sys_topic = "flow/publishers held"},
    {.name = "ringmq_memory_publishers_held_total",
     .help = "Holds on a publisher's input at 90% of memory_limit: its messages were being stored "
             "for later delivery.",
     .kind = METRICS_COUNTER,
     SHARD(mem_held),
     .sys_topic = "flow/publishers held for memory"},
    {.name = "ringmq_limit_refusals_total",
     .labels = "limit=\"max_connect_size\"",
     .help = help_limit_refusals,
     .kind = METRICS_COUNTER,
     SHARD(connect_too_large),
     .sys_topic = "limits/connect too large"},
    {.name = "ringmq_limit_refusals_total",
     .labels = "limit=\"max_sessions\"",
     .help = help_limit_refusals,
     .kind = METRICS_COUNTER,
     SHARD(sessions_refused),
     .sys_topic = "limits/sessions refused"},
    {.name = "ringmq_limit_refusals_total",
     .labels = "limit=\"memory_limit\"",
     .help = help_limit_refusals,
     .kind = METRICS_COUNTER,
     SHARD(mem_refused),
     .sys_topic = "limits/memory refused"},
    {.name = "ringmq_limit_drops_total",
     .labels = "limit=\"memory_limit\"",
     .help = help_limit_drops,
     .kind = METRICS_COUNTER,
     SHARD(mem_dropped),
     .sys_topic = "limits/memory dropped"},
    {.name = "ringmq_limit_drops_total",
     .labels = "limit=\"retained_backlog\"",
     .help = help_limit_drops,
     .kind = METRICS_COUNTER,
     SHARD(retained_backlog_dropped),
     .sys_topic = "limits/retained backlog dropped"},
    {.name = "ringmq_tls_handshakes_total",
     .help = "TLS handshakes completed.",
     .kind = METRICS_COUNTER,
     SHARD(tls_handshakes),
     .sys_topic = "tls/handshakes"},
    {.name = "ringmq_tls_failures_total",
     .help = "TLS connections ended by a failed handshake or a bad record.",
     .kind = METRICS_COUNTER,
     SHARD(tls_failures),
     .sys_topic = "tls/failures"},
    {.name = "ringmq_tls_resumed_total",
     .help = "TLS handshakes that resumed a session from a ticket (counted in handshakes too).",
     .kind = METRICS_COUNTER,
     SHARD(tls_resumed),
     .sys_topic = "tls/resumed"},
    {.name = "ringmq_acl_denied_total",
     .labels = "action=\"publish\"",
     .help = help_acl_denied,
     .kind = METRICS_COUNTER,
     SHARD(acl_denied_publish),
     .sys_topic = "acl/denied publish"},
    {.name = "ringmq_acl_denied_total",
     .labels = "action=\"subscribe\"",
     .help = help_acl_denied,
     .kind = METRICS_COUNTER,
     SHARD(acl_denied_subscribe),
     .sys_topic = "acl/denied subscribe"},
    {.name = "ringmq_acl_denied_total",
     .labels = "action=\"read\"",
     .help = help_acl_denied,
     .kind = METRICS_COUNTER,
     SHARD(acl_denied_read),
     .sys_topic = "acl/denied read"},
    {.name = "ringmq_acl_denied_total",
     .labels = "action=\"will\"",
     .help = help_acl_denied,
     .kind = METRICS_COUNTER,
     SHARD(acl_denied_will),
     .sys_topic = "acl/denied will"},
    {.name = "ringmq_auth_cache_hits_total",
     .help = "CONNECT passwords let in from the cache of recently verified credentials, without "
             "hashing.",
     .kind = METRICS_COUNTER,
     SHARD(auth_cache_hits),
     .sys_topic = "auth/cache hits"},
    {.name = "ringmq_rate_limit_pauses_total",
     .labels = "limit=\"max_publish_rate\"",
     .help = help_rate_pauses,
     .kind = METRICS_COUNTER,
     SHARD(rate_paused_publish),
     .sys_topic = "rate limits/publish pauses"},
    {.name = "ringmq_rate_limit_pauses_total",
     .labels = "limit=\"max_subscribe_rate\"",
     .help = help_rate_pauses,
     .kind = METRICS_COUNTER,
     SHARD(rate_paused_subscribe),
     .sys_topic = "rate limits/subscribe pauses"},
    {.name = "ringmq_rate_limit_pauses_total",
     .labels = "limit=\"max_inbound_rate\"",
     .help = help_rate_pauses,
     .kind = METRICS_COUNTER,
     SHARD(rate_paused_bytes),
     .sys_topic = "rate limits/inbound pauses"},
    {.name = "ringmq_connections_refused_total",
     .labels = "reason=\"address\"",
     .help = help_conn_refusals,
     .kind = METRICS_COUNTER,
     SHARD(address_refused),
     .sys_topic = "connections/refused address"},
    {.name = "ringmq_connections_refused_total",
     .labels = "reason=\"ban\"",
     .help = help_conn_refusals,
     .kind = METRICS_COUNTER,
     SHARD(ban_refused),
     .sys_topic = "connections/refused ban"},
    {.name = "ringmq_connections_refused_total",
     .labels = "reason=\"flapping\"",
     .help = help_conn_refusals,
     .kind = METRICS_COUNTER,
     SHARD(flapping_refused),
     .sys_topic = "connections/refused flapping"},
    {.name = "ringmq_connections_refused_total",
     .labels = "reason=\"per_ip\"",
     .help = help_conn_refusals,
     .kind = METRICS_COUNTER,
     SHARD(per_ip_refused),
     .sys_topic = "connections/refused per_ip"},
    {.name = "ringmq_connections_refused_total",
     .labels = "reason=\"rate\"",
     .help = help_conn_refusals,
     .kind = METRICS_COUNTER,
     SHARD(rate_refused),
     .sys_topic = "connections/refused rate"},
    {.name = "ringmq_connections_refused_total",
     .labels = "reason=\"proxy\"",
     .help = help_conn_refusals,
     .kind = METRICS_COUNTER,
     SHARD(proxy_refused),
     .sys_topic = "connections/refused proxy"},
    {.name = "ringmq_connections_refused_total",
     .labels = "reason=\"max_connections\"",
     .help = help_conn_refusals,
     .kind = METRICS_COUNTER,
     SHARD(max_conn_refused),
     .sys_topic = "connections/refused max_connections"},
    {.name = "ringmq_connections_refused_total",
     .labels = "reason=\"overload\"",
     .help = help_conn_refusals,
     .kind = METRICS_COUNTER,
     SHARD(overload_refused),
     .sys_topic = "connections/refused overload"},
    {.name = "ringmq_flapping_bans_total",
     .help = "Temporary bans begun by flapping_max_connects or auth_failures_max.",
     .kind = METRICS_COUNTER,
     SHARD(flapping_bans),
     .sys_topic = "connections/flapping bans"},
    {.name = "ringmq_connections_untracked_total",
     .help = "Connections admitted without the per-address limits: the broker-wide tally "
             "had no room near their address (more live addresses than it holds).",
     .kind = METRICS_COUNTER,
     SHARD(untracked),
     .sys_topic = "connections/untracked"},
    {.name = "ringmq_subscriptions",
     .help = "Subscriptions held now by every session, connected or not (shared ones "
             "included).",
     .kind = METRICS_GAUGE,
     SHARD(subscriptions),
     .sys_topic = "subscriptions/count"},

    /* Broker-wide values, read by the caller. */
    {.name = "ringmq_uptime_seconds",
     .help = "Seconds since the broker started.",
     .kind = METRICS_GAUGE,
     BROKER(METRICS_BROKER_UPTIME_S),
     .sys_topic = "uptime",
     .sys_suffix = " seconds"},
    {.name = "ringmq_shards",
     .help = "Shards (event-loop threads) running.",
     .kind = METRICS_GAUGE,
     BROKER(METRICS_BROKER_SHARDS),
     .sys_topic = "shards"},
    {.name = "ringmq_retained_messages",
     .help = "Retained messages clients stored (not the broker's own $SYS entries).",
     .kind = METRICS_GAUGE,
     BROKER(METRICS_BROKER_RETAINED),
     .sys_topic = "retained messages/count"},
    {.name = "ringmq_auth_pending",
     .help = "CONNECTs waiting for the auth pool now.",
     .kind = METRICS_GAUGE,
     BROKER(METRICS_BROKER_AUTH_PENDING),
     .sys_topic = "auth/pending"},
    {.name = "ringmq_sessions",
     .help = "Sessions held now, connected or not.",
     .kind = METRICS_GAUGE,
     BROKER(METRICS_BROKER_SESSIONS),
     .sys_topic = "sessions/count"},
    {.name = "ringmq_memory_allocated_bytes",
     .help = "Bytes allocated by the broker, as memory_limit counts them.",
     .kind = METRICS_GAUGE,
     BROKER(METRICS_BROKER_MEM_ALLOCATED),
     .sys_topic = "memory/allocated"},
    {.name = "ringmq_memory_limit_bytes",
     .help = "The configured memory_limit in bytes (0: none).",
     .kind = METRICS_GAUGE,
     BROKER(METRICS_BROKER_MEM_LIMIT),
     .sys_topic = "memory/limit"},
};
const size_t metrics_table_len = sizeof(metrics_table) / sizeof(metrics_table[0]);

uint64_t metrics_sum(const struct metrics_shard *const *shards, unsigned n, size_t offset)
{
    ASSERT(offset % _Alignof(atomic_uint_fast64_t) == 0);
    ASSERT(offset + sizeof(atomic_uint_fast64_t) <= sizeof(struct metrics_shard));
    ASSERT(n == 0 || shards);
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        const atomic_uint_fast64_t *a =
            (const atomic_uint_fast64_t *)((const char *)shards[i] + offset);
        /* Wraps modulo 2^64 like the counters themselves. */
        v += (uint64_t)atomic_load_explicit(a, memory_order_relaxed);
    }
    return v;
}

uint64_t metrics_value(const struct metrics_entry *e, const struct metrics_shard *const *shards,
                       unsigned n, const uint64_t *broker)
{
    if (e->source == METRICS_SHARD)
        return metrics_sum(shards, n, e->offset);
    ASSERT(broker && e->broker < METRICS_BROKER_COUNT);
    return broker[e->broker];
}

uint64_t metrics_sys_value(const struct metrics_entry *e, const struct metrics_shard *const *shards,
                           unsigned n, const uint64_t *broker)
{
    if (!e->sys_family)
        return metrics_value(e, shards, n, broker);
    uint64_t v = 0;
    for (size_t i = 0; i < metrics_table_len; i++)
        if (strcmp(metrics_table[i].name, e->name) == 0)
            v += metrics_value(&metrics_table[i], shards, n, broker);
    return v;
}

/* ---- Prometheus text format ---------------------------------------------- */

/* An snprintf that keeps going past the end: len counts what the whole
 * text needs, buf holds the prefix that fits, always NUL-terminated. */
struct out {
    char *buf;
    size_t cap;
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *at = o->len < o->cap ? o->buf + o->len : NULL;
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int w = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    ASSERT(w >= 0); /* only %s, %c, %ld and %llu: no encoding error possible */
    o->len += (size_t)w;
}

/* HELP text escapes backslash and newline [text format 0.0.4]. */
static void put_help(struct out *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(o, "\\\\");
        else if (*s == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *s);
    }
}

/* One sample line; shard < 0: the sample is the sum, without a shard label. */
static void put_sample(struct out *o, const struct metrics_entry *e, long shard, uint64_t v)
{
    put(o, "%s", e->name);
    if (e->labels && shard >= 0)
        put(o, "{%s,shard=\"%ld\"}", e->labels, shard);
    else if (e->labels)
        put(o, "{%s}", e->labels);
    else if (shard >= 0)
        put(o, "{shard=\"%ld\"}", shard);
    put(o, " %llu\n", (unsigned long long)v);
}

size_t metrics_render(char *buf, size_t cap, const struct metrics_shard *const *shards, unsigned n,
                      const uint64_t *broker)
{
    ASSERT(buf || cap == 0);
    struct out o = {.buf = buf, .cap = cap, .len = 0};
    if (cap > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        if (e->source == METRICS_BROKER && !broker)
            continue;
        if (i == 0 || strcmp(metrics_table[i - 1].name, e->name) != 0) {
            put(&o, "# HELP %s ", e->name);
            put_help(&o, e->help);
            put(&o, "\n# TYPE %s %s\n", e->name, e->kind == METRICS_COUNTER ? "counter" : "gauge");
        }
        if (e->source == METRICS_SHARD && e->per_shard) {
            for (unsigned s = 0; s < n; s++)
                put_sample(&o, e, (long)s, metrics_sum(&shards[s], 1, e->offset));
        } else {
            put_sample(&o, e, -1, metrics_value(e, shards, n, broker));
        }
    }
    return o.len;
}
