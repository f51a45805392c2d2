/*
 * $SYS statistics, as mosquitto publishes them: retained messages under
 * $SYS/broker/ every sys_interval seconds, so a subscriber gets the latest
 * figures at once. Shard 0 publishes them from its tick. Which figures, and
 * under which topic, is core/metrics.c's table; the counters are the
 * shards' relaxed atomics, read without stopping anyone.
 */
#include <stdio.h>
#include <string.h>

#include "authpool.h"
#include "shard.h"

static void sys_publish(struct shard *sh, const char *topic, const char *value)
{
    struct msg *m = msg_create_simple((const uint8_t *)topic, strlen(topic), (const uint8_t *)value,
                                      strlen(value), 0, true);
    if (!m)
        return;
    pthread_rwlock_wrlock(&sh->b->retain_lock);
    retain_set(sh->b->eng.retain, m);
    pthread_rwlock_unlock(&sh->b->retain_lock);
    engine_route_publish(&sh->en, m);
    msg_unref(m);
}

/* The values metrics_table takes from outside the shards' counters,
 * read once per tick (and per scrape, net/metrics_text.c). */
void sys_broker_values(struct broker *b, uint64_t now_ms, uint64_t *v)
{
    v[METRICS_BROKER_UPTIME_S] = (now_ms - b->start_ms) / 1000u;
    v[METRICS_BROKER_SHARDS] = b->shard_count;
    pthread_rwlock_rdlock(&b->retain_lock);
    v[METRICS_BROKER_RETAINED] = retain_client_count(b->eng.retain);
    pthread_rwlock_unlock(&b->retain_lock);
    v[METRICS_BROKER_AUTH_PENDING] = authpool_pending(b->authpool);
    v[METRICS_BROKER_SESSIONS] = atomic_load_explicit(&b->eng.session_count, memory_order_relaxed);
    v[METRICS_BROKER_MEM_ALLOCATED] = atomic_load_explicit(&b->mem_allocated, memory_order_relaxed);
    v[METRICS_BROKER_MEM_LIMIT] = b->mem_limit;
}

void sys_tick(struct shard *sh, uint64_t now_ms)
{
    struct broker *b = sh->b;
    if (sh->id != 0 || b->cfg.sys_interval_s == 0 || now_ms < sh->next_sys_ms)
        return;
    sh->next_sys_ms = now_ms + (uint64_t)b->cfg.sys_interval_s * 1000u;
    char topic[128], value[64];
    snprintf(value, sizeof(value), "ringmq version %s", RINGMQ_VERSION);
    sys_publish(sh, "$SYS/broker/version", value);

    /* Every other figure comes from the metrics table (core/metrics.c),
     * the same numbers the SIGUSR1 line and the Prometheus text show.
     * shard_count never exceeds SHARDS_MAX (main.c clamps it). */
    const struct metrics_shard *st[SHARDS_MAX];
    for (unsigned i = 0; i < b->shard_count; i++)
        st[i] = &b->eng.engines[i]->st;
    uint64_t bv[METRICS_BROKER_COUNT];
    sys_broker_values(b, now_ms, bv);
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        if (!e->sys_topic)
            continue;
        snprintf(topic, sizeof(topic), "$SYS/broker/%s", e->sys_topic);
        snprintf(value, sizeof(value), "%llu%s",
                 (unsigned long long)metrics_sys_value(e, st, b->shard_count, bv),
                 e->sys_suffix ? e->sys_suffix : "");
        sys_publish(sh, topic, value);
    }
}
