/*
 * $SYS statistics, as mosquitto publishes them: retained messages under
 * $SYS/broker/ every sys_interval seconds, so a subscriber gets the latest
 * figures at once. Shard 0 publishes them from its tick; the counters are
 * the shards' relaxed atomics, read without stopping anyone.
 */
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

void sys_tick(struct shard *sh, uint64_t now_ms)
{
    struct broker *b = sh->b;
    if (sh->id != 0 || b->cfg.sys_interval_s == 0 || now_ms < sh->next_sys_ms)
        return;
    sh->next_sys_ms = now_ms + (uint64_t)b->cfg.sys_interval_s * 1000u;
    uint64_t conns = 0, connects = 0, rx = 0, tx = 0, dropped = 0, brx = 0, btx = 0, rref = 0;
    uint64_t afail = 0, abusy = 0;
    for (unsigned i = 0; i < b->shard_count; i++) {
        struct shard_stats *st = &b->shards[i]->st;
        conns += atomic_load_explicit(&st->connections, memory_order_relaxed);
        connects += atomic_load_explicit(&st->connects_total, memory_order_relaxed);
        rx += atomic_load_explicit(&st->msgs_received, memory_order_relaxed);
        tx += atomic_load_explicit(&st->msgs_sent, memory_order_relaxed);
        dropped += atomic_load_explicit(&st->msgs_dropped, memory_order_relaxed);
        brx += atomic_load_explicit(&st->bytes_received, memory_order_relaxed);
        btx += atomic_load_explicit(&st->bytes_sent, memory_order_relaxed);
        rref += atomic_load_explicit(&st->retained_refused, memory_order_relaxed);
        afail += atomic_load_explicit(&st->auth_failed, memory_order_relaxed);
        abusy += atomic_load_explicit(&st->auth_busy, memory_order_relaxed);
    }
    char buf[64];
    snprintf(buf, sizeof(buf), "ringmq version %s", RINGMQ_VERSION);
    sys_publish(sh, "$SYS/broker/version", buf);
    snprintf(buf, sizeof(buf), "%llu seconds",
             (unsigned long long)((now_ms - b->start_ms) / 1000u));
    sys_publish(sh, "$SYS/broker/uptime", buf);
    sys_publish_u64(sh, "$SYS/broker/shards", b->shard_count);
    sys_publish_u64(sh, "$SYS/broker/clients/connected", conns);
    sys_publish_u64(sh, "$SYS/broker/connections/total", connects);
    sys_publish_u64(sh, "$SYS/broker/messages/received", rx);
    sys_publish_u64(sh, "$SYS/broker/messages/sent", tx);
    sys_publish_u64(sh, "$SYS/broker/messages/dropped", dropped);
    sys_publish_u64(sh, "$SYS/broker/bytes/received", brx);
    sys_publish_u64(sh, "$SYS/broker/bytes/sent", btx);
    pthread_rwlock_rdlock(&b->retain_lock);
    uint64_t retained = retain_count(b->retain);
    pthread_rwlock_unlock(&b->retain_lock);
    sys_publish_u64(sh, "$SYS/broker/retained messages/count", retained);
    sys_publish_u64(sh, "$SYS/broker/retained messages/refused", rref);
    sys_publish_u64(sh, "$SYS/broker/auth/failed", afail);
    sys_publish_u64(sh, "$SYS/broker/auth/busy", abusy);
    sys_publish_u64(sh, "$SYS/broker/auth/pending", authpool_pending(b->authpool));
}
