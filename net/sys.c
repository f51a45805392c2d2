/*
 * $SYS statistics, as mosquitto publishes them: retained messages under
 * $SYS/broker/ every sys_interval seconds, so a subscriber gets the latest
 * figures at once. Shard 0 publishes them from its tick; the counters are
 * the shards' relaxed atomics, read without stopping anyone.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"

static void sys_publish(struct shard *sh, const char *topic, const char *value)
{
    struct msg *m = msg_create_simple((const uint8_t *)topic, strlen(topic), (const uint8_t *)value,
                                      strlen(value), 0, true);
    if (!m)
        return;
    pthread_rwlock_wrlock(&sh->b->retain_lock);
    retain_set(sh->b->retain, m);
    pthread_rwlock_unlock(&sh->b->retain_lock);
    mqtt_route_publish(sh, m);
    msg_unref(m);
}

static void sys_publish_u64(struct shard *sh, const char *topic, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    sys_publish(sh, topic, buf);
}

/* Every shard counter, described once: its $SYS topic (under
 * $SYS/broker/) and where the value lives. sys_tick and the SIGUSR1 line
 * (main.c) read this table, so a new counter is one line here. */
#define STAT(field) offsetof(struct metrics_shard, field)
const struct sys_counter sys_counters[] = {
    {"clients/connected", STAT(connections)},
    {"connections/total", STAT(connects_total)},
    {"messages/received", STAT(msgs_received)},
    {"messages/sent", STAT(msgs_sent)},
    {"messages/dropped", STAT(msgs_dropped)},
    {"bytes/received", STAT(bytes_received)},
    {"bytes/sent", STAT(bytes_sent)},
    {"retained messages/refused", STAT(retained_refused)},
    {"auth/failed", STAT(auth_failed)},
    {"auth/busy", STAT(auth_busy)},
    {"protocol errors", STAT(protocol_errors)},
    {"queues/overflow", STAT(xq_overflow)},
    {"flow/publishers held", STAT(publishers_held)},
    {"limits/connect too large", STAT(connect_too_large)},
    {"limits/sessions refused", STAT(sessions_refused)},
    {"limits/memory refused", STAT(mem_refused)},
    {"limits/memory dropped", STAT(mem_dropped)},
    {"limits/retained backlog dropped", STAT(retained_backlog_dropped)},
};
const size_t sys_counter_count = sizeof(sys_counters) / sizeof(sys_counters[0]);

uint64_t sys_sum(const struct broker *b, size_t offset)
{
    /* Relaxed loads: a sum torn across shards is fine for statistics. */
    uint64_t v = 0;
    for (unsigned i = 0; i < b->shard_count; i++) {
        const atomic_uint_fast64_t *a =
            (const atomic_uint_fast64_t *)((const char *)&b->shards[i]->st + offset);
        v += atomic_load_explicit(a, memory_order_relaxed);
    }
    return v;
}

void sys_tick(struct shard *sh, uint64_t now_ms)
{
    struct broker *b = sh->b;
    if (sh->id != 0 || b->cfg.sys_interval_s == 0 || now_ms < sh->next_sys_ms)
        return;
    sh->next_sys_ms = now_ms + (uint64_t)b->cfg.sys_interval_s * 1000u;
    char buf[96];
    snprintf(buf, sizeof(buf), "ringmq version %s", RINGMQ_VERSION);
    sys_publish(sh, "$SYS/broker/version", buf);
    snprintf(buf, sizeof(buf), "%llu seconds",
             (unsigned long long)((now_ms - b->start_ms) / 1000u));
    sys_publish(sh, "$SYS/broker/uptime", buf);
    sys_publish_u64(sh, "$SYS/broker/shards", b->shard_count);
    for (size_t i = 0; i < sys_counter_count; i++) {
        snprintf(buf, sizeof(buf), "$SYS/broker/%s", sys_counters[i].topic);
        sys_publish_u64(sh, buf, sys_sum(b, sys_counters[i].offset));
    }
    pthread_rwlock_rdlock(&b->retain_lock);
    uint64_t retained = retain_count(b->retain);
    pthread_rwlock_unlock(&b->retain_lock);
    sys_publish_u64(sh, "$SYS/broker/retained messages/count", retained);
    sys_publish_u64(sh, "$SYS/broker/auth/pending", authpool_pending(b->authpool));
    sys_publish_u64(sh, "$SYS/broker/sessions/count",
                    atomic_load_explicit(&b->session_count, memory_order_relaxed));
    sys_publish_u64(sh, "$SYS/broker/memory/allocated",
                    atomic_load_explicit(&b->mem_allocated, memory_order_relaxed));
    sys_publish_u64(sh, "$SYS/broker/memory/limit", b->mem_limit);
}
