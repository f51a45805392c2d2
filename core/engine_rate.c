/*
 * Per-client rates (max_publish_rate, max_subscribe_rate,
 * max_inbound_rate): token buckets holding one second's worth, refilled
 * continuously. A packet is handled while its buckets are above zero (it
 * may take them into debt, so a packet larger than a second's worth of
 * bytes still passes, and pays for it); when one is at or below zero the
 * connection stops parsing, its reading pauses (ENGINE_PAUSE_RATE: TCP
 * back-pressure, the client is slowed, not disconnected, and nothing is
 * dropped), and its deadline on the shard's wheel is set to the moment the
 * buckets are back above zero. Keepalive does not run meanwhile: the
 * silence is the broker's.
 *
 * Runs on the thread that owns the connection.
 */
#include "engine_internal.h"

static const struct config_rates *rates_of(const struct engine_conn *c)
{
    return &engine_cfg(c)->listeners[c->who.listener].rates;
}

/* Tokens are kept in thousandths: per_s tokens a second are per_s
 * thousandths a millisecond. */
static void refill_one(int64_t *milli, uint64_t per_s, uint64_t elapsed_ms)
{
    if (!per_s)
        return;
    int64_t cap = (int64_t)per_s * 1000;
    uint64_t add = elapsed_ms > 1000u ? (uint64_t)cap + 1000u : elapsed_ms * per_s;
    *milli = *milli + (int64_t)add > cap ? cap : *milli + (int64_t)add;
}

static void refill(struct engine_conn *c, const struct config_rates *r, uint64_t now_ms)
{
    struct engine_rate *s = &c->rate;
    if (!s->started) {
        s->started = true;
        s->publish_milli = (int64_t)r->publish_per_s * 1000;
        s->subscribe_milli = (int64_t)r->subscribe_per_s * 1000;
        s->bytes_milli = (int64_t)r->inbound_bytes_per_s * 1000;
        s->refilled_ms = now_ms;
        return;
    }
    uint64_t elapsed = now_ms > s->refilled_ms ? now_ms - s->refilled_ms : 0;
    refill_one(&s->publish_milli, r->publish_per_s, elapsed);
    refill_one(&s->subscribe_milli, r->subscribe_per_s, elapsed);
    refill_one(&s->bytes_milli, r->inbound_bytes_per_s, elapsed);
    s->refilled_ms = now_ms;
}

/* Milliseconds until an empty bucket is above zero again (0: it is). */
static uint64_t wait_ms(int64_t milli, uint64_t per_s)
{
    if (!per_s || milli > 0)
        return 0;
    return (uint64_t)(-milli) / per_s + 1;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

bool engine_rate_admits(struct engine_conn *c, uint8_t type, size_t bytes)
{
    const struct config_rates *r = rates_of(c);
    if (!r->publish_per_s && !r->subscribe_per_s && !r->inbound_bytes_per_s)
        return true;
    if (c->pause & ENGINE_PAUSE_RATE)
        return false; /* input that was under way when reading paused waits too */
    struct engine *en = c->en;
    struct engine_rate *s = &c->rate;
    refill(c, r, en->now_ms);
    bool pub = type == MQTT_PUBLISH, sub = type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE;
    uint64_t w_bytes = wait_ms(s->bytes_milli, r->inbound_bytes_per_s);
    uint64_t w_pub = pub ? wait_ms(s->publish_milli, r->publish_per_s) : 0;
    uint64_t w_sub = sub ? wait_ms(s->subscribe_milli, r->subscribe_per_s) : 0;
    uint64_t w = max_u64(w_bytes, max_u64(w_pub, w_sub));
    if (w) {
        if (w_pub)
            COUNT(en, rate_paused_publish, 1);
        else if (w_sub)
            COUNT(en, rate_paused_subscribe, 1);
        else
            COUNT(en, rate_paused_bytes, 1);
        LOGCL(LOG_LEVEL_DEBUG, c, "reading paused %llu ms: over %s", (unsigned long long)w,
              w_pub   ? "max_publish_rate"
              : w_sub ? "max_subscribe_rate"
                      : "max_inbound_rate");
        s->until_ms = en->now_ms + w;
        engine_pause(c, ENGINE_PAUSE_RATE);
        engine_conn_arm(c);
        return false;
    }
    if (r->inbound_bytes_per_s)
        s->bytes_milli -= (int64_t)bytes * 1000;
    if (pub && r->publish_per_s)
        s->publish_milli -= 1000;
    if (sub && r->subscribe_per_s)
        s->subscribe_milli -= 1000;
    return true;
}

bool engine_rate_timeout(struct engine_conn *c, uint64_t now_ms)
{
    if (!(c->pause & ENGINE_PAUSE_RATE))
        return false;
    if (now_ms < c->rate.until_ms)
        return true; /* still paused: the deadline stays */
    /* The client was sending all along; its silence was ours. */
    c->last_rx_ms = now_ms;
    engine_unpause(c, ENGINE_PAUSE_RATE);
    return true;
}
