/*
 * Flow control from subscribers back to their publishers: the hold rule.
 *
 * A subscriber that keeps acknowledging (a valid PUBACK, PUBREC or PUBCOMP
 * within FLOW_STALE_MS) but reads slower than its publishers write is
 * "draining". Its queue (QoS 1/2) or its output buffer (QoS 0) then grows;
 * at the hold mark the publisher of each message that lands there is held:
 * its PUBLISH input waits (TCP back-pressure) instead of the broker reading
 * messages it would have to drop. The hold is per publisher and asked for by
 * the subscriber, so one slow subscriber holds only those who write to it,
 * never the whole broker [issue 7 defects 5, 6 and 20].
 *
 * A hold is a lease: FLOW_HOLD_LEASE_MS unless renewed (by the next message
 * from that publisher that finds the subscriber still over the mark) or
 * released (the subscriber drained below the low mark, left, or ended). A
 * subscriber that stops acknowledging stops renewing: nobody is held for
 * more than FLOW_STALE_MS + FLOW_HOLD_LEASE_MS by it, and its own queue
 * bound applies again, drops counted. While draining, its queue may pass
 * max_queued_messages by FLOW_SLACK_MESSAGES: the messages already read
 * from publishers before their hold took effect (a cross-shard hold takes a
 * loop turn or two to arrive).
 *
 * Memory is the other holder [issue 11 item 6]: at 90% of memory_limit
 * (cleared under 80%) the publisher of a message that is stored for later
 * (its subscriber is offline, or its window or queue is full) is held by
 * FLOW_HOLDER_MEMORY on the same lease, renewed by its next stored message.
 * It goes on at about one message per lease towards those sessions, so its
 * keepalive and acknowledgements still get through and it is slowed, not
 * disconnected; a publisher whose subscribers keep up is not held at all.
 * The hold ends the moment memory is calm again (flow_held asks), and at
 * memory_limit itself what would be stored is dropped and counted.
 *
 * Identity is the client's never-reused uid, never a pointer. Everything
 * here runs on the shard that owns the client it touches; holds for another
 * shard's publisher travel as ENGINE_ENV_HOLD envelopes.
 */
#include <stdlib.h>

#include "engine_internal.h"

static struct client *client_by_uid(struct engine *en, uint64_t hash, uint64_t uid)
{
    for (struct client *cl = en->ctab[hash & en->ctab_mask]; cl; cl = cl->hnext)
        if (cl->uid == uid)
            return cl;
    return NULL;
}

/* Publisher side: who holds this client, until when. One subscriber's
 * release ends only its own hold; a full set forgets the entry that ends
 * first (its lease would soon end it anyway). */
void flow_apply(struct engine *en, uint64_t uid, uint64_t hash, uint64_t holder, bool hold)
{
    struct client *cl = client_by_uid(en, hash, uid);
    if (!cl)
        return; /* the publisher is gone: nothing to hold */
    uint32_t i, soonest = 0;
    for (i = 0; i < cl->held_by_n; i++) {
        if (cl->held_by[i].until_ms < cl->held_by[soonest].until_ms)
            soonest = i;
        if (cl->held_by[i].uid == holder)
            break;
    }
    if (!hold) {
        if (i < cl->held_by_n)
            cl->held_by[i] = cl->held_by[--cl->held_by_n];
        if (!flow_held(en, cl) && cl->conn && cl->conn->in.len > cl->conn->in_off)
            engine_yield(cl->conn); /* its waiting PUBLISH goes on now */
        return;
    }
    if (!cl->held_by) {
        cl->held_by = malloc(FLOW_HOLDERS_PER_PUBLISHER * sizeof(*cl->held_by));
        if (!cl->held_by)
            return; /* a hold is advice: without it the queue bound still holds */
    }
    if (i == cl->held_by_n) {
        if (cl->held_by_n == FLOW_HOLDERS_PER_PUBLISHER)
            i = soonest;
        else
            cl->held_by_n++;
    }
    cl->held_by[i].uid = holder;
    cl->held_by[i].until_ms = en->now_ms + FLOW_HOLD_LEASE_MS;
}

bool flow_held(const struct engine *en, struct client *cl)
{
    for (uint32_t i = 0; i < cl->held_by_n; i++)
        if (cl->held_by[i].until_ms > en->now_ms &&
            (cl->held_by[i].uid != FLOW_HOLDER_MEMORY || engine_mem_near(en)))
            return true;
    /* Every lease ended: forget them, so a publisher held once costs no
     * walk on each later PUBLISH. */
    cl->held_by_n = 0;
    return false;
}

void flow_client_fini(struct client *cl)
{
    free(cl->held_by);
    cl->held_by = NULL;
    cl->held_by_n = 0;
    free(cl->holding);
    cl->holding = NULL;
    cl->holding_n = 0;
}

static void send_hold(struct engine *en, uint64_t holder, uint64_t uid, uint64_t hash, bool hold)
{
    unsigned to = FLOW_UID_SHARD(uid);
    if (to == en->id) {
        flow_apply(en, uid, hash, holder, hold);
        return;
    }
    struct engine_env *e = calloc(1, sizeof(*e));
    if (!e)
        return; /* a hold is advice: without it the queue bound still holds */
    e->type = ENGINE_ENV_HOLD;
    e->present = hold;
    e->from_shard = (uint16_t)en->id;
    e->key = uid;
    e->hash = hash;
    e->holder = holder;
    engine_fx_post(en, to, engine_env_item(e));
}

/* QoS 1/2: a valid acknowledgement came lately. QoS 0: a send completed
 * lately (its output moves). */
static bool draining(const struct engine *en, const struct client *cl, uint8_t qos)
{
    const struct engine_conn *c = cl->conn;
    if (!c || c->phase != ENGINE_ACTIVE)
        return false;
    uint64_t last = qos ? cl->last_ack_ms : c->last_tx_ms;
    return en->now_ms - last < FLOW_STALE_MS;
}

/* The queue length at which a draining subscriber holds its publishers, and
 * below which it lets them go. */
static uint32_t hold_mark(const struct client *cl)
{
    /* Capped: a queue bound of a million must not mean half a million
     * messages (seconds of latency) before anyone is held. The window
     * plus this many keeps any subscriber busy. */
    uint32_t q = cl->s.lim.queued_max / 2;
    if (q > FLOW_HOLD_QUEUE_MAX)
        q = FLOW_HOLD_QUEUE_MAX;
    return q ? q : 1;
}

static uint32_t release_mark(const struct client *cl)
{
    return hold_mark(cl) / 2;
}

static void hold_origin(struct engine *en, struct client *cl, uint64_t origin, uint64_t hash)
{
    if (!origin || origin == cl->uid)
        return; /* a will or $SYS, or its own message: nobody to hold */
    if (!cl->holding) {
        cl->holding = malloc(FLOW_HOLDS_PER_SESSION * sizeof(*cl->holding));
        if (!cl->holding)
            return; /* a hold is advice: without it the queue bound still holds */
    }
    uint32_t i, oldest = 0;
    for (i = 0; i < cl->holding_n; i++) {
        if (cl->holding[i].sent_ms < cl->holding[oldest].sent_ms)
            oldest = i;
        if (cl->holding[i].uid != origin)
            continue;
        if (en->now_ms - cl->holding[i].sent_ms < FLOW_HOLD_LEASE_MS / 2)
            return; /* renewed recently */
        break;
    }
    if (i == cl->holding_n) {
        if (cl->holding_n == FLOW_HOLDS_PER_SESSION)
            i = oldest; /* forgotten: its lease ends it */
        else if (cl->holding_n++ == 0)
            engine_client_arm(en, cl); /* its holds are checked for going stale */
    }
    cl->holding[i].uid = origin;
    cl->holding[i].hash = hash;
    cl->holding[i].sent_ms = en->now_ms;
    send_hold(en, cl->uid, origin, hash, true);
    COUNT(en, publishers_held, 1);
}

void flow_behind(struct engine *en, struct client *cl, uint64_t origin, uint64_t origin_hash)
{
    if (draining(en, cl, 1) || draining(en, cl, 0))
        hold_origin(en, cl, origin, origin_hash);
}

void flow_delivered(struct engine *en, struct client *cl, uint64_t origin, uint64_t origin_hash,
                    uint8_t qos)
{
    /* Per message: the cheap test first, the draining one only when over. */
    const struct engine_conn *c = cl->conn;
    bool over =
        qos ? cl->s.queued >= hold_mark(cl) : c && c->out.len >= en->cfg->max_output_buffer / 2;
    if (over && draining(en, cl, qos))
        hold_origin(en, cl, origin, origin_hash);
}

void flow_stored_near_limit(struct engine *en, const struct client *cl, uint64_t origin,
                            uint64_t origin_hash)
{
    if (!origin || origin == cl->uid)
        return; /* a will or $SYS, or its own message: nobody to hold */
    struct engine_mem_hold *m = &en->mem_holds[origin_hash & (FLOW_MEMORY_MEMO - 1)];
    if (m->uid == origin && en->now_ms - m->sent_ms < FLOW_HOLD_LEASE_MS / 2)
        return; /* asked for lately */
    m->uid = origin;
    m->sent_ms = en->now_ms;
    send_hold(en, FLOW_HOLDER_MEMORY, origin, origin_hash, true);
    COUNT(en, mem_held, 1);
}

uint32_t flow_queue_slack(const struct engine *en, const struct client *cl)
{
    return draining(en, cl, 1) ? FLOW_SLACK_MESSAGES : 0;
}

void flow_release(struct engine *en, struct client *cl)
{
    for (uint32_t i = 0; i < cl->holding_n; i++)
        send_hold(en, cl->uid, cl->holding[i].uid, cl->holding[i].hash, false);
    cl->holding_n = 0;
    free(cl->holding); /* congestion is the exception: no slots kept */
    cl->holding = NULL;
}

void flow_drained(struct engine *en, struct client *cl)
{
    if (!cl->holding_n)
        return;
    struct engine_conn *c = cl->conn;
    bool low =
        cl->s.queued <= release_mark(cl) && (!c || c->out.len < en->cfg->max_output_buffer / 4);
    if (low || (!draining(en, cl, 1) && !draining(en, cl, 0)))
        flow_release(en, cl);
}
