/*
 * Deliveries: PUBLISH routing through the route replica and the local
 * subscription trie, the encoding cache, sending or queueing one delivery
 * within the session's window, and the retained backlog of a SUBSCRIBE.
 *
 * Runs on the thread that owns the engine.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

/* Writes one PUBLISH of m to the client. Returns false when the client's
 * maximum packet size forbids it [MQTT-3.1.2-25]. */
static void encode_publish(struct engine_conn *c, const struct delivery *d, uint16_t packet_id,
                           bool dup, struct mqtt_packet *p)
{
    p->type = MQTT_PUBLISH;
    msg_to_publish(d->msg, &p->u.publish, c->en->now_ms);
    p->u.publish.qos = d->qos;
    p->u.publish.retain = d->retain;
    p->u.publish.packet_id = packet_id;
    p->u.publish.dup = dup;
    if (d->subid_count) {
        struct mqtt_props *pr = &p->u.publish.props;
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
        memcpy(pr->subscription_ids, d->subids, d->subid_count * sizeof(uint32_t));
        pr->subscription_id_count = d->subid_count;
    }
}

/* Broker-to-client topic aliases, where the client allows them and they
 * save bytes (the alias property costs 3): a topic seen before goes as an
 * empty topic with its alias; a new one takes the next slot, replacing
 * the oldest mapping, and goes in full with the alias that now means it. */
static void apply_alias_out(struct engine_conn *c, struct mqtt_publish *p)
{
    if (!c->alias_out) {
        c->alias_out = calloc(c->alias_out_max, sizeof(*c->alias_out));
        if (!c->alias_out)
            return; /* no alias: still correct */
    }
    for (uint16_t i = 0; i < c->alias_out_max; i++) {
        struct engine_alias *e = &c->alias_out[i];
        if (e->topic && e->len == p->topic.len && memcmp(e->topic, p->topic.ptr, e->len) == 0) {
            p->props.present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
            p->props.topic_alias = (uint16_t)(i + 1);
            p->topic.len = 0;
            return;
        }
    }
    uint8_t *t = malloc(p->topic.len);
    if (!t)
        return;
    memcpy(t, p->topic.ptr, p->topic.len);
    struct engine_alias *e = &c->alias_out[c->alias_out_next];
    free(e->topic);
    e->topic = t;
    e->len = p->topic.len;
    p->props.present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    p->props.topic_alias = (uint16_t)(c->alias_out_next + 1);
    c->alias_out_next = (uint16_t)((c->alias_out_next + 1) % c->alias_out_max);
}

/*
 * The shard's encoding cache: a message fanned out to many receivers is
 * encoded once per (protocol, QoS, retain) and copied, with the packet id
 * patched in. A slot remembers the last message seen for its variant; the
 * second receiver fills it, so a message with one receiver costs no extra
 * copy. Deliveries with subscription identifiers, an expiry (the remaining
 * lifetime changes) or DUP are encoded each time.
 */
static struct engine_enc_slot *enc_slot_for(struct engine_conn *c, const struct delivery *d,
                                            bool dup)
{
    if (dup || d->subid_count || d->msg->expiry_at_ms || c->alias_out_max ||
        d->msg->payload_len > ENGINE_ENC_PAYLOAD_MAX)
        return NULL;
    unsigned v = (c->version == MQTT_V5 ? 6u : 0u) + d->qos * 2u + (d->retain ? 1u : 0u);
    return &c->en->enc[v];
}

/* Writes one PUBLISH of d to the client. Returns false when the client's
 * maximum packet size forbids it [MQTT-3.1.2-25]. */
bool engine_write_publish(struct engine_conn *c, const struct delivery *d, uint16_t packet_id,
                          bool dup)
{
    struct mqtt_packet p;
    struct engine_enc_slot *e = enc_slot_for(c, d, dup);
    if (e && e->msg == d->msg) {
        if (e->bytes.len == 0) {
            /* Any valid id: each copy gets its own patched in. */
            encode_publish(c, d, d->qos ? 1 : 0, false, &p);
            size_t n = 0;
            if (!codec_fits(&p, c->version, &n))
                return false; /* over MQTT's largest packet once re-encoded */
            e->bytes.len = 0;
            if (buf_reserve(&e->bytes, n))
                goto direct;
            codec_encode(e->bytes.data, &p, c->version);
            e->bytes.len = n;
            e->pid_off = d->qos ? codec_publish_packet_id_offset(e->bytes.data) : 0;
        }
        if (c->client_max_packet && e->bytes.len > c->client_max_packet)
            return false;
        if (buf_reserve(&c->out, e->bytes.len))
            return false;
        uint8_t *dst = c->out.data + c->out.len;
        memcpy(dst, e->bytes.data, e->bytes.len);
        if (d->qos) {
            dst[e->pid_off] = (uint8_t)(packet_id >> 8);
            dst[e->pid_off + 1] = (uint8_t)packet_id;
        }
        c->out.len += e->bytes.len;
        engine_wrote(c, d->qos);
        return true;
    }
    if (e) {
        msg_unref(e->msg);
        e->msg = msg_ref(d->msg);
        e->bytes.len = 0;
    }
direct:
    encode_publish(c, d, packet_id, dup, &p);
    size_t n = 0;
    if (!codec_fits(&p, c->version, &n))
        return false; /* over MQTT's largest packet once re-encoded */
    /* An alias is assigned only to a message that will be sent: one
     * dropped for the client's maximum packet size must not leave a
     * mapping the client never saw. A new mapping adds 3 bytes. */
    if (c->alias_out_max && d->msg->topic_len > 3 &&
        (!c->client_max_packet || n + 3 <= c->client_max_packet) &&
        n + 3 <= (size_t)PACKET_SIZE_MAX) {
        apply_alias_out(c, &p.u.publish);
        n = codec_encoded_size(&p, c->version);
    }
    if (c->client_max_packet && n > c->client_max_packet)
        return false;
    if (buf_reserve(&c->out, n))
        return false;
    codec_encode(c->out.data + c->out.len, &p, c->version);
    c->out.len += n;
    engine_wrote(c, d->qos);
    return true;
}

/* An in-flight message the client's Maximum Packet Size refuses is dropped
 * as if acknowledged, so it cannot hold the window [MQTT-3.1.2-25]. */
void engine_drop_as_acked(struct engine *en, struct client *cl, uint16_t packet_id)
{
    if (session_acked(&cl->s, MQTT_PUBACK, packet_id) != 0) {
        session_acked(&cl->s, MQTT_PUBREC, packet_id);
        session_acked(&cl->s, MQTT_PUBCOMP, packet_id);
    }
    COUNT(en, msgs_dropped[METRICS_DROP_TOO_LARGE], 1);
}

/* Sends what the session's window allows. */
void engine_pump(struct client *cl)
{
    struct engine_conn *c = cl->conn;
    if (!c || c->phase != ENGINE_ACTIVE)
        return;
    struct delivery d;
    uint16_t id;
    while (session_next(&cl->s, c->en->now_ms, &d, &id)) {
        if (!engine_write_publish(c, &d, id, false))
            engine_drop_as_acked(c->en, cl, id);
    }
    if (cl->s.expired) {
        COUNT(c->en, msgs_dropped[METRICS_DROP_EXPIRED], cl->s.expired);
        cl->s.expired = 0;
    }
    flow_drained(c->en, cl);
}

/* Sends or queues one delivery now (takes d->msg's reference). */
static void deliver_now(struct engine *en, struct client *cl, struct delivery *d)
{
    /* A retained message sent for a SUBSCRIBE holds nobody: its publisher
     * may have written it long ago and be busy with other topics now. */
    bool hold = !d->stored;
    if (d->qos == 0) {
        struct engine_conn *c = cl->conn;
        /* QoS 0 is never queued for an absent or slow client: dropped and
         * counted. */
        if (!c || c->phase != ENGINE_ACTIVE)
            COUNT(en, msgs_dropped[METRICS_DROP_OFFLINE], 1);
        else if (c->out.len >= en->cfg->max_output_buffer)
            COUNT(en, msgs_dropped[METRICS_DROP_OUTPUT_FULL], 1);
        else if (!engine_write_publish(c, d, 0, false))
            COUNT(en, msgs_dropped[METRICS_DROP_TOO_LARGE], 1);
        else if (hold)
            flow_delivered(en, cl, d->msg->origin, d->msg->origin_hash, 0);
        msg_unref(d->msg);
        d->msg = NULL;
        return;
    }
    bool stored = !cl->conn || cl->s.queued || cl->s.inflight_live >= cl->s.window;
    if (stored && engine_mem_over(en)) {
        /* Over memory_limit nothing new is stored: a message goes out
         * now, within the window, or is dropped and counted. */
        COUNT(en, mem_dropped, 1);
        COUNT(en, msgs_dropped[METRICS_DROP_MEMORY], 1);
        msg_unref(d->msg);
        d->msg = NULL;
        return;
    }
    uint64_t origin = d->msg->origin, origin_hash = d->msg->origin_hash;
    if (stored && hold && engine_mem_near(en))
        flow_stored_near_limit(en, cl, origin, origin_hash); /* before the limit is reached */
    /* The slack matters only at the bound: below it, no draining check. */
    cl->s.queued_slack = cl->s.queued >= cl->s.lim.queued_max ? flow_queue_slack(en, cl) : 0;
    if (session_enqueue(&cl->s, d) != SESSION_QUEUED) {
        COUNT(en, msgs_dropped[METRICS_DROP_QUEUE_FULL], 1);
    } else {
        engine_pump(cl);
    }
    /* Also after a drop: a full queue is the most "over" a subscriber can
     * be, and its publishers must go on being held. */
    if (hold)
        flow_delivered(en, cl, origin, origin_hash, 1);
}

/* ---- deliveries waiting for room ------------------------------------------ */

/* The retained messages a SUBSCRIBE matched wait in cl->rb[rb_next..rb_n)
 * until the client's output (QoS 0) or queue (QoS 1/2) has room, so a
 * reader that keeps up gets every one and a SUBSCRIBE matching a large
 * store costs bounded work per turn [issue 7 defect 8]. While any wait,
 * the client's live deliveries wait behind them: a subscriber must never
 * get a topic's retained (older) value after a newer live one. At most
 * RETAINED_BACKLOG_MAX wait per client; more are dropped and counted. */

bool engine_rb_waiting(const struct client *cl)
{
    return cl->rb_next < cl->rb_n;
}

static void rb_reset(struct client *cl)
{
    free(cl->rb);
    cl->rb = NULL;
    cl->rb_n = cl->rb_next = cl->rb_cap = 0;
}

/* Releases what still waits (session end, shutdown). */
void engine_rb_discard(struct client *cl)
{
    for (uint32_t i = cl->rb_next; i < cl->rb_n; i++)
        msg_unref(cl->rb[i].msg);
    rb_reset(cl);
}

/* Appends n deliveries, taking their references. Live deliveries come one
 * at a time while a backlog drains, so the handed-out prefix is moved out
 * only when the array is full and at least a quarter of it is prefix:
 * each move then frees a quarter for later appends (amortised O(1) per
 * message, not a copy of the backlog per message). */
void engine_rb_append(struct engine *en, struct client *cl, struct delivery *v, uint32_t n)
{
    if (cl->rb_n + n > cl->rb_cap && cl->rb_next && cl->rb_next >= cl->rb_cap / 4) {
        memmove(cl->rb, cl->rb + cl->rb_next, (cl->rb_n - cl->rb_next) * sizeof(*cl->rb));
        cl->rb_n -= cl->rb_next;
        cl->rb_next = 0;
    }
    if (cl->rb_n + n > cl->rb_cap) {
        uint32_t cap = cl->rb_cap ? cl->rb_cap : 16;
        while (cap < cl->rb_n + n && cap < RETAINED_BACKLOG_MAX)
            cap *= 2;
        if (cap > RETAINED_BACKLOG_MAX)
            cap = RETAINED_BACKLOG_MAX;
        struct delivery *nv = realloc(cl->rb, cap * sizeof(*nv));
        if (nv) {
            cl->rb = nv;
            cl->rb_cap = cap;
        }
    }
    uint32_t i = 0;
    for (; i < n && cl->rb_n < cl->rb_cap; i++) {
        cl->rb[cl->rb_n++] = v[i];
        v[i].msg = NULL;
    }
    if (i < n) {
        COUNT(en, retained_backlog_dropped, n - i);
        COUNT(en, msgs_dropped[METRICS_DROP_RETAINED_BACKLOG], n - i);
        for (; i < n; i++) {
            msg_unref(v[i].msg);
            v[i].msg = NULL;
        }
    }
}

/* Room for d now: half the output (QoS 0), or half the queue by count and
 * bytes (QoS 1/2; an empty queue always takes one). */
static bool rb_room(const struct engine *en, const struct client *cl, const struct delivery *d)
{
    if (d->qos == 0)
        return cl->conn->out.len < en->cfg->max_output_buffer / 2;
    const struct session *s = &cl->s;
    if (s->queued == 0)
        return true;
    return s->queued < (s->lim.queued_max + 1) / 2 &&
           (!s->lim.queued_bytes_max ||
            s->queued_bytes + msg_size(d->msg) <= s->lim.queued_bytes_max / 2);
}

/* Hands out what waits while there is room, at most RETAINED_PER_TURN now;
 * the rest goes on when the output drains, an acknowledgement comes, or
 * next turn. */
void engine_rb_pump(struct engine *en, struct client *cl)
{
    struct engine_conn *c = cl->conn;
    if (!c || c->phase != ENGINE_ACTIVE || (c->phase == ENGINE_CLOSED) || !engine_rb_waiting(cl))
        return;
    uint32_t budget = RETAINED_PER_TURN;
    while (engine_rb_waiting(cl)) {
        struct delivery *d = &cl->rb[cl->rb_next];
        if (!rb_room(en, cl, d))
            return; /* conn_output_drained or an acknowledgement resumes */
        if (budget-- == 0) {
            engine_yield(c); /* conn_process_buffered resumes next turn */
            return;
        }
        cl->rb_next++;
        deliver_now(en, cl, d);
    }
    rb_reset(cl);
    if (c->in.len > c->in_off)
        engine_yield(c); /* a SUBSCRIBE may wait for this (parse) */
}

void engine_deliver(struct engine *en, struct client *cl, struct delivery *d)
{
    ASSERT_DEBUG(FLOW_UID_SHARD(cl->uid) == en->id); /* only its home shard touches a session */
    if (cl->conn && engine_rb_waiting(cl)) {
        uint64_t origin = d->msg->origin, origin_hash = d->msg->origin_hash;
        bool live = !d->stored;
        engine_rb_append(en, cl, d, 1);
        if (live && cl->rb_n - cl->rb_next > RETAINED_PER_TURN)
            flow_behind(en, cl, origin, origin_hash); /* behind its retained backlog */
        return;
    }
    deliver_now(en, cl, d);
}

/* Stores a client's retained message within the configured bounds; one
 * over them is still delivered, just not kept. */
void engine_retain_store(struct engine *en, struct msg *m)
{
    const struct config *cfg = en->cfg;
    if (engine_mem_over(en)) {
        COUNT(en, mem_dropped, 1);
        COUNT(en, retained_refused, 1);
        return;
    }
    engine_fx_retain_lock(en, true);
    int rc =
        retain_set_bounded(en->g->retain, m, cfg->max_retained_messages, cfg->max_retained_bytes);
    engine_fx_retain_unlock(en, true);
    if (rc == -ENOSPC) {
        uint64_t n = COUNT(en, retained_refused, 1) + 1;
        LOG(LOG_LEVEL_DEBUG,
            "retained message not stored: the store is at max_retained_messages or "
            "max_retained_bytes (%llu refused by this shard)",
            (unsigned long long)n);
    }
}

/* ---- routing ---------------------------------------------------------------- */

struct match_entry {
    struct client *cl;
    uint8_t qos;
    bool rap;
    uint8_t subid_count;
    uint32_t subids[SUBID_PER_PUBLISH_MAX];
};

struct match_ctx {
    struct engine *en;
    const struct msg *m;
    struct match_entry *v;
    uint32_t n, cap;
};

/* The scratch vector of matches survives between messages (one per
 * shard thread), so matching allocates only while it grows. */
static _Thread_local struct match_entry *match_scratch;
static _Thread_local uint32_t match_scratch_cap;

static void on_match(void *ctx, void *owner, uint64_t opts, const uint8_t *group, size_t glen)
{
    struct match_ctx *mc = ctx;
    struct client *cl = owner;
    (void)group;
    (void)glen;
    if ((opts & OPT_NO_LOCAL) && mc->m->origin == cl->uid)
        return; /* [MQTT-3.8.3-3] */
    struct match_entry *e;
    if (cl->match_seq == mc->en->match_seq) {
        /* Overlapping subscriptions of one client: one copy at the highest
         * QoS, every subscription identifier [MQTT-3.3.4-2], [MQTT-3.3.4-3]. */
        e = &mc->v[cl->match_idx];
        if (OPT_QOS(opts) > e->qos)
            e->qos = OPT_QOS(opts);
        e->rap = e->rap || (opts & OPT_RAP);
    } else {
        if (mc->n == mc->cap) {
            uint32_t cap = mc->cap ? mc->cap * 2 : 64;
            struct match_entry *v = realloc(mc->v, cap * sizeof(*v));
            if (!v)
                return;
            mc->v = v;
            mc->cap = cap;
        }
        cl->match_seq = mc->en->match_seq;
        cl->match_idx = mc->n;
        e = &mc->v[mc->n++];
        e->cl = cl;
        e->qos = OPT_QOS(opts);
        e->rap = (opts & OPT_RAP) != 0;
        e->subid_count = 0;
    }
    if (OPT_SUBID(opts) && e->subid_count < SUBID_PER_PUBLISH_MAX)
        e->subids[e->subid_count++] = OPT_SUBID(opts);
}

void engine_deliver_local(struct engine *en, struct msg *m)
{
    if (msg_expired(m, en->now_ms)) {
        COUNT(en, msgs_dropped[METRICS_DROP_EXPIRED], 1);
        return;
    }
    struct match_ctx mc = {.en = en, .m = m, .v = match_scratch, .n = 0, .cap = match_scratch_cap};
    en->match_seq++;
    trie_match(en->subs, msg_topic(m), m->topic_len, on_match, &mc);
    match_scratch = mc.v;
    match_scratch_cap = mc.cap;
    for (uint32_t i = 0; i < mc.n; i++) {
        struct match_entry *e = &mc.v[i];
        struct client *cl = e->cl;
        /* Checked with the receiving session's identity, whether it is
         * connected or not. */
        if (!engine_acl_allowed(en, cl, &cl->who, cl->id, cl->id_len, ENGINE_READ, msg_topic(m),
                                m->topic_len)) {
            COUNT(en, acl_denied_read, 1);
            continue;
        }
        struct delivery d = {0}; /* share_key 0: a plain subscription's copy */
        d.msg = msg_ref(m);
        d.qos = m->qos < e->qos ? m->qos : e->qos;
        /* Live deliveries carry retain only with retain-as-published
         * [MQTT-3.3.1-9], [MQTT-3.3.1-12]. */
        d.retain = e->rap && m->retain;
        d.subid_count = cl->version == MQTT_V5 ? e->subid_count : 0;
        memcpy(d.subids, e->subids, d.subid_count * sizeof(uint32_t));
        engine_deliver(en, cl, &d);
    }
}

bool engine_route_publish(struct engine *en, struct msg *m)
{
    bool matched = false;
    if (trie_size(en->share_routes))
        matched = share_route_publish(en, m) > 0;
    uint64_t mask = route_match(en->routes, msg_topic(m), m->topic_len);
    matched = matched || mask != 0;
    uint64_t self = 1ull << en->id;
    if (mask & self)
        engine_deliver_local(en, m);
    mask &= ~self;
    while (mask) {
        unsigned to = (unsigned)__builtin_ctzll(mask);
        mask &= mask - 1;
        engine_fx_post(en, to, msg_ref(m));
    }
    return matched;
}

void engine_rb_flush(struct engine *en, struct client *cl)
{
    /* Retained messages not yet handed out: QoS 1/2 wait in the session
     * like any other (within its bounds), QoS 0 is dropped. */
    while (engine_rb_waiting(cl))
        deliver_now(en, cl, &cl->rb[cl->rb_next++]);
    rb_reset(cl);
}

void engine_deliver_thread_exit(void)
{
    free(match_scratch);
    match_scratch = NULL;
    match_scratch_cap = 0;
}
