/*
 * The MQTT protocol on one connection, and the broker behaviour behind it:
 * CONNECT and sessions (takeover, clean start, resume), PUBLISH routing
 * through the route replica and the local subscription trie, QoS 1/2 in
 * both directions, SUBSCRIBE with SUBACK held until every shard applied the
 * route change, retained messages, wills and keepalive.
 *
 * Runs on the shard thread that owns the connection. Packets are parsed in
 * place from the kernel's receive buffer when they lie whole in it; only a
 * packet split across receives is copied into c->in, and only after its
 * length was checked against max_packet_size.
 *
 * Protocol functions return MQTT reason codes; a violation closes the
 * offending connection (5.0: after a DISCONNECT carrying the reason) and
 * nothing else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "scram.h"
#include "topic.h"

/* Parse result telling the loop to stop at this packet without consuming it
 * (the connection moves to its home shard with the bytes). */
#define PARSE_HANDOFF (-2)
#define PARSE_REPLAY  (-3) /* enhanced authentication done: the CONNECT runs again */

/* Largest packet accepted while an authentication exchange runs before
 * CONNACK: an AUTH with a SCRAM message and the method name. */
#define AUTH_PACKET_MAX (SCRAM_MSG_MAX + 256u)
_Static_assert(SCRAM_MSG_MAX <= UINT16_MAX, "auth_reply_len holds a SCRAM message");

/* Input kept per connection while the shard is congested before its reading
 * pauses (the kernel's socket buffer then holds the rest: TCP back-pressure). */
#define CONGEST_STASH_MAX (64u * 1024u)

/* Subscription options packed into the trie's opaque 64 bits. */
#define OPT_QOS(o)   ((uint8_t)((o)&3u))
#define OPT_NO_LOCAL 4u
#define OPT_RAP      8u
#define OPT_RH(o)    ((uint8_t)(((o) >> 4) & 3u))
#define OPT_SUBID(o) ((uint32_t)((o) >> 8))

#define LOGCL(level, c, ...)                                                                       \
    LOGC(level, (c)->client ? (const char *)(c)->client->id : NULL,                                \
         (c)->client ? (c)->client->id_len : 0, __VA_ARGS__)

static const struct config *cfg_of(const struct conn *c)
{
    return &c->sh->b->cfg;
}

/* ---- output ----------------------------------------------------------------- */

static void send_disconnect(struct conn *c, uint8_t reason);

static int write_packet(struct conn *c, const struct mqtt_packet *p)
{
    size_t n = codec_encoded_size(p, c->version ? c->version : MQTT_V311);
    if (c->client_max_packet && n > c->client_max_packet && p->type != MQTT_DISCONNECT) {
        /* No packet over the client's Maximum Packet Size [MQTT-3.1.2-24].
         * A SUBACK or UNSUBACK with many reason codes can outgrow it, and
         * unlike a PUBLISH it cannot be dropped (the client waits for it):
         * the connection ends with 0x95. (CONNACK, AUTH and DISCONNECT
         * are fitted by their senders.) */
        LOG(LOG_LEVEL_DEBUG, "%s of %zu bytes over the client's Maximum Packet Size %u: closing",
            codec_type_name(p->type), n, (unsigned)c->client_max_packet);
        send_disconnect(c, MQTT_RC_PACKET_TOO_LARGE);
        conn_close(c, NULL);
        return -EMSGSIZE;
    }
    if (buf_reserve(&c->out, n))
        return -ENOMEM;
    codec_encode(c->out.data + c->out.len, p, c->version ? c->version : MQTT_V311);
    c->out.len += n;
    shard_mark_dirty(c);
    /* Replies count against the output bound too: a client that sends
     * PINGREQs or publishes but never reads is paused, not buffered for. */
    if (c->out.len > cfg_of(c)->max_output_buffer)
        conn_pause(c, CONN_PAUSE_OUTPUT);
    return 0;
}

static void send_ack(struct conn *c, uint8_t type, uint16_t packet_id, uint8_t reason)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = type;
    p.u.ack.packet_id = packet_id;
    p.u.ack.reason = reason;
    write_packet(c, &p);
}

static void send_disconnect_why(struct conn *c, uint8_t reason, const char *why)
{
    /* Only 5.0 has a server DISCONNECT [MQTT-3.14.0-1]. */
    if (c->version != MQTT_V5)
        return;
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_DISCONNECT;
    p.u.disconnect.reason = reason;
    if (why) {
        /* A reason string is allowed on DISCONNECT whatever the client's
         * Request Problem Information [MQTT-3.1.2-29], but never past its
         * maximum packet size [MQTT-3.14.2-3]. */
        p.u.disconnect.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        p.u.disconnect.props.reason_string.ptr = (const uint8_t *)why;
        p.u.disconnect.props.reason_string.len = (uint32_t)strlen(why);
        if (c->client_max_packet && codec_encoded_size(&p, MQTT_V5) > c->client_max_packet)
            p.u.disconnect.props.present = 0;
    }
    write_packet(c, &p);
}

static void send_disconnect(struct conn *c, uint8_t reason)
{
    send_disconnect_why(c, reason, NULL);
}

static void send_connack(struct conn *c, bool session_present, uint8_t reason,
                         const struct mqtt_props *props)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNACK;
    /* 3.1's CONNACK has no session present flag: that byte is unused and
     * must be 0. */
    p.u.connack.session_present = session_present && c->version != MQTT_V31;
    p.u.connack.reason = reason;
    if (props)
        p.u.connack.props = *props;
    write_packet(c, &p);
}

/* Closes the connection for a protocol violation: 5.0 hears why. */
static void violation(struct conn *c, uint8_t reason, const char *what)
{
    atomic_fetch_add_explicit(&c->sh->st.protocol_errors, 1, memory_order_relaxed);
    LOGCL(LOG_LEVEL_DEBUG, c, "%s from %s: reason 0x%02x, closing", what, c->peer, reason);
    if (c->state == CONN_ACTIVE)
        send_disconnect_why(c, reason, what);
    conn_close(c, NULL);
}

/* Writes one PUBLISH of m to the client. Returns false when the client's
 * maximum packet size forbids it [MQTT-3.1.2-25]. */
static void encode_publish(struct conn *c, const struct delivery *d, uint16_t packet_id, bool dup,
                           struct mqtt_packet *p)
{
    p->type = MQTT_PUBLISH;
    msg_to_publish(d->msg, &p->u.publish, c->sh->now_ms);
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

static void wrote(struct conn *c)
{
    atomic_fetch_add_explicit(&c->sh->st.msgs_sent, 1, memory_order_relaxed);
    shard_mark_dirty(c);
    if (c->out.len > cfg_of(c)->max_output_buffer)
        conn_pause(c, CONN_PAUSE_OUTPUT);
}

/* Broker-to-client topic aliases, where the client allows them and they
 * save bytes (the alias property costs 3): a topic seen before goes as an
 * empty topic with its alias; a new one takes the next slot, replacing
 * the oldest mapping, and goes in full with the alias that now means it. */
static void apply_alias_out(struct conn *c, struct mqtt_publish *p)
{
    if (!c->alias_out) {
        c->alias_out = calloc(c->alias_out_max, sizeof(*c->alias_out));
        if (!c->alias_out)
            return; /* no alias: still correct */
    }
    for (uint16_t i = 0; i < c->alias_out_max; i++) {
        struct alias_out *e = &c->alias_out[i];
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
    struct alias_out *e = &c->alias_out[c->alias_out_next];
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
static struct enc_slot *enc_slot_for(struct conn *c, const struct delivery *d, bool dup)
{
    if (dup || d->subid_count || d->msg->expiry_at_ms || c->alias_out_max ||
        d->msg->payload_len > ENC_CACHE_PAYLOAD_MAX)
        return NULL;
    unsigned v = (c->version == MQTT_V5 ? 6u : 0u) + d->qos * 2u + (d->retain ? 1u : 0u);
    return &c->sh->enc[v];
}

/* Writes one PUBLISH of d to the client. Returns false when the client's
 * maximum packet size forbids it [MQTT-3.1.2-25]. */
static bool write_publish(struct conn *c, const struct delivery *d, uint16_t packet_id, bool dup)
{
    struct mqtt_packet p;
    struct enc_slot *e = enc_slot_for(c, d, dup);
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
        wrote(c);
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
    wrote(c);
    return true;
}

/* Over memory_limit (main.c samples the allocator): new work is refused,
 * connected flows go on. */
static bool mem_over(const struct shard *sh)
{
    return atomic_load_explicit(&sh->b->mem_over, memory_order_relaxed);
}

/* An in-flight message the client's Maximum Packet Size refuses is dropped
 * as if acknowledged, so it cannot hold the window [MQTT-3.1.2-25]. */
static void drop_as_acked(struct shard *sh, struct client *cl, uint16_t packet_id)
{
    if (session_acked(&cl->s, MQTT_PUBACK, packet_id) != 0) {
        session_acked(&cl->s, MQTT_PUBREC, packet_id);
        session_acked(&cl->s, MQTT_PUBCOMP, packet_id);
    }
    atomic_fetch_add_explicit(&sh->st.msgs_dropped, 1, memory_order_relaxed);
}

/* Sends what the session's window allows. */
static void pump(struct client *cl)
{
    struct conn *c = cl->conn;
    if (!c || c->state != CONN_ACTIVE)
        return;
    struct delivery d;
    uint16_t id;
    while (session_next(&cl->s, c->sh->now_ms, &d, &id)) {
        if (!write_publish(c, &d, id, false))
            drop_as_acked(c->sh, cl, id);
    }
    flow_drained(c->sh, cl);
}

/* Sends or queues one delivery now (takes d->msg's reference). */
static void deliver_now(struct shard *sh, struct client *cl, struct delivery *d)
{
    /* A retained message sent for a SUBSCRIBE holds nobody: its publisher
     * may have written it long ago and be busy with other topics now. */
    bool hold = !d->stored;
    if (d->qos == 0) {
        struct conn *c = cl->conn;
        /* QoS 0 is never queued for an absent or slow client: dropped and
         * counted. */
        if (!c || c->state != CONN_ACTIVE || c->out.len >= sh->b->cfg.max_output_buffer ||
            !write_publish(c, d, 0, false))
            atomic_fetch_add_explicit(&sh->st.msgs_dropped, 1, memory_order_relaxed);
        else if (hold)
            flow_delivered(sh, cl, d->msg->origin, d->msg->origin_hash, 0);
        msg_unref(d->msg);
        d->msg = NULL;
        return;
    }
    if (mem_over(sh) && (!cl->conn || cl->s.queued || cl->s.inflight_live >= cl->s.window)) {
        /* Over memory_limit nothing new is stored: a message goes out
         * now, within the window, or is dropped and counted. */
        atomic_fetch_add_explicit(&sh->st.mem_dropped, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&sh->st.msgs_dropped, 1, memory_order_relaxed);
        msg_unref(d->msg);
        d->msg = NULL;
        return;
    }
    uint64_t origin = d->msg->origin, origin_hash = d->msg->origin_hash;
    /* The slack matters only at the bound: below it, no draining check. */
    cl->s.queued_slack = cl->s.queued >= cl->s.lim.queued_max ? flow_queue_slack(sh, cl) : 0;
    if (session_enqueue(&cl->s, d) != SESSION_QUEUED) {
        atomic_fetch_add_explicit(&sh->st.msgs_dropped, 1, memory_order_relaxed);
    } else {
        pump(cl);
    }
    /* Also after a drop: a full queue is the most "over" a subscriber can
     * be, and its publishers must go on being held. */
    if (hold)
        flow_delivered(sh, cl, origin, origin_hash, 1);
}

/* ---- deliveries waiting for room ------------------------------------------ */

/* The retained messages a SUBSCRIBE matched wait in cl->rb[rb_next..rb_n)
 * until the client's output (QoS 0) or queue (QoS 1/2) has room, so a
 * reader that keeps up gets every one and a SUBSCRIBE matching a large
 * store costs bounded work per turn [issue 7 defect 8]. While any wait,
 * the client's live deliveries wait behind them: a subscriber must never
 * get a topic's retained (older) value after a newer live one. At most
 * RETAINED_BACKLOG_MAX wait per client; more are dropped and counted. */

static bool rb_waiting(const struct client *cl)
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
static void rb_discard(struct client *cl)
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
static void rb_append(struct shard *sh, struct client *cl, struct delivery *v, uint32_t n)
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
        atomic_fetch_add_explicit(&sh->st.retained_backlog_dropped, n - i, memory_order_relaxed);
        atomic_fetch_add_explicit(&sh->st.msgs_dropped, n - i, memory_order_relaxed);
        for (; i < n; i++) {
            msg_unref(v[i].msg);
            v[i].msg = NULL;
        }
    }
}

/* Room for d now: half the output (QoS 0), or half the queue by count and
 * bytes (QoS 1/2; an empty queue always takes one). */
static bool rb_room(const struct shard *sh, const struct client *cl, const struct delivery *d)
{
    if (d->qos == 0)
        return cl->conn->out.len < sh->b->cfg.max_output_buffer / 2;
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
static void rb_pump(struct shard *sh, struct client *cl)
{
    struct conn *c = cl->conn;
    if (!c || c->state != CONN_ACTIVE || c->close_after_flush || !rb_waiting(cl))
        return;
    uint32_t budget = RETAINED_PER_TURN;
    while (rb_waiting(cl)) {
        struct delivery *d = &cl->rb[cl->rb_next];
        if (!rb_room(sh, cl, d))
            return; /* conn_output_drained or an acknowledgement resumes */
        if (budget-- == 0) {
            shard_defer(c); /* conn_process_buffered resumes next turn */
            return;
        }
        cl->rb_next++;
        deliver_now(sh, cl, d);
    }
    rb_reset(cl);
    if (c->in.len > c->in_off)
        shard_defer(c); /* a SUBSCRIBE may wait for this (parse) */
}

void mqtt_deliver(struct shard *sh, struct client *cl, struct delivery *d)
{
    if (cl->conn && rb_waiting(cl)) {
        uint64_t origin = d->msg->origin, origin_hash = d->msg->origin_hash;
        bool live = !d->stored;
        rb_append(sh, cl, d, 1);
        if (live && cl->rb_n - cl->rb_next > RETAINED_PER_TURN)
            flow_behind(sh, cl, origin, origin_hash); /* behind its retained backlog */
        return;
    }
    deliver_now(sh, cl, d);
}

/* ---- clients (the shard's session table) --------------------------------- */

static struct client *client_find(struct shard *sh, const uint8_t *id, size_t len, uint64_t h)
{
    for (struct client *cl = sh->ctab[h & sh->ctab_mask]; cl; cl = cl->hnext)
        if (cl->hash == h && cl->id_len == len && memcmp(cl->id, id, len) == 0)
            return cl;
    return NULL;
}

static void client_table_grow(struct shard *sh)
{
    uint32_t mask = sh->ctab_mask * 2 + 1;
    struct client **tab = calloc((size_t)mask + 1, sizeof(*tab));
    if (!tab)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i <= sh->ctab_mask; i++) {
        for (struct client *cl = sh->ctab[i], *next; cl; cl = next) {
            next = cl->hnext;
            cl->hnext = tab[cl->hash & mask];
            tab[cl->hash & mask] = cl;
        }
    }
    free(sh->ctab);
    sh->ctab = tab;
    sh->ctab_mask = mask;
}

static struct client *client_create(struct shard *sh, const uint8_t *id, size_t len, uint64_t h)
{
    struct client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    cl->id = malloc(len + 1);
    struct session_limits lim = {
        .inflight_max = sh->b->cfg.max_inflight_messages,
        .queued_max = sh->b->cfg.max_queued_messages,
        .queued_bytes_max = sh->b->cfg.max_queued_bytes,
    };
    if (!cl->id || session_init(&cl->s, &lim)) {
        free(cl->id);
        free(cl);
        return NULL;
    }
    memcpy(cl->id, id, len);
    cl->id[len] = 0;
    cl->id_len = (uint16_t)len;
    cl->hash = h;
    cl->subs.key = sh->b->hash_key;
    /* Never reused, unlike the struct's address: shard in the low bits,
     * the shard's own count above. */
    cl->uid = FLOW_UID_MAKE(++sh->next_client_seq, sh->id);
    cl->hnext = sh->ctab[h & sh->ctab_mask];
    sh->ctab[h & sh->ctab_mask] = cl;
    if (++sh->client_count > sh->ctab_mask)
        client_table_grow(sh);
    atomic_fetch_add_explicit(&sh->b->session_count, 1, memory_order_relaxed);
    return cl;
}

static void route_broadcast(struct shard *sh, const uint8_t *filter, size_t len, bool present,
                            struct pending_suback *pending);
static void route_broadcast_group(struct shard *sh, const uint8_t *group, size_t glen,
                                  uint32_t slot, const uint8_t *filter, size_t len, bool present,
                                  struct pending_suback *pending);

/* Removes one subscription from the trie and, when it was this shard's last
 * one for the filter, from every shard's route replica. */
static void unsubscribe_one(struct shard *sh, struct client *cl, struct sub_entry *s)
{
    const uint8_t *group = s->data;
    const uint8_t *filter = s->data + s->group_len;
    if (s->group_len) {
        uint32_t left;
        if (share_leave(sh, cl, group, s->group_len, filter, s->filter_len, &left) && !sh->stopping)
            route_broadcast_group(sh, group, s->group_len, left, filter, s->filter_len, false,
                                  NULL);
        cl->share_count--;
        return;
    }
    trie_remove(sh->subs, filter, s->filter_len, NULL, 0, cl);
    if (trie_filter_count(sh->subs, filter, s->filter_len) == 0 && !sh->stopping)
        route_broadcast(sh, filter, s->filter_len, false, NULL);
}

/* Ends a session: subscriptions, queued and inflight messages go. */
static void client_destroy(struct shard *sh, struct client *cl, bool unroute)
{
    flow_release(sh, cl);
    struct client **pp = &sh->ctab[cl->hash & sh->ctab_mask];
    while (*pp && *pp != cl)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = cl->hnext;
    sh->client_count--;
    atomic_fetch_sub_explicit(&sh->b->session_count, 1, memory_order_relaxed);
    uint32_t pos = 0;
    for (struct sub_entry *s = NULL; unroute && (s = sub_table_next(&cl->subs, &pos, s));)
        unsubscribe_one(sh, cl, s);
    sub_table_fini(&cl->subs);
    rb_discard(cl);
    flow_client_fini(cl);
    session_fini(&cl->s);
    msg_unref(cl->pending_will);
    free(cl->id);
    free(cl);
}

/* Stores a client's retained message within the configured bounds; one
 * over them is still delivered, just not kept. */
static void retain_store(struct shard *sh, struct msg *m)
{
    const struct config *cfg = &sh->b->cfg;
    if (mem_over(sh)) {
        atomic_fetch_add_explicit(&sh->st.mem_dropped, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&sh->st.retained_refused, 1, memory_order_relaxed);
        return;
    }
    pthread_rwlock_wrlock(&sh->b->retain_lock);
    int rc =
        retain_set_bounded(sh->b->retain, m, cfg->max_retained_messages, cfg->max_retained_bytes);
    pthread_rwlock_unlock(&sh->b->retain_lock);
    if (rc == -ENOSPC) {
        uint64_t n =
            atomic_fetch_add_explicit(&sh->st.retained_refused, 1, memory_order_relaxed) + 1;
        LOG(LOG_LEVEL_DEBUG,
            "retained message not stored: the store is at max_retained_messages or "
            "max_retained_bytes (%llu refused by this shard)",
            (unsigned long long)n);
    }
}

/* Publishes a will (or a due delayed will). */
static void publish_will(struct shard *sh, struct msg *will)
{
    msg_start_expiry(will, sh->now_ms);
    if (will->retain && sh->b->cfg.retain_available)
        retain_store(sh, will);
    mqtt_route_publish(sh, will);
    msg_unref(will);
}

/* The connection no longer speaks for its client: the session stays or
 * ends by its expiry, the will goes out unless the client said goodbye. */
static void conn_detach(struct conn *c)
{
    struct shard *sh = c->sh;
    struct client *cl = c->client;
    c->client = NULL;
    struct msg *will = c->will;
    c->will = NULL;
    if (!cl)
        goto will;
    if (cl->conn == c)
        cl->conn = NULL;
    flow_release(sh, cl);
    if (!cl->conn) {
        /* Retained messages not yet handed out: QoS 1/2 wait in the session
         * like any other (within its bounds), QoS 0 is dropped. */
        while (rb_waiting(cl))
            deliver_now(sh, cl, &cl->rb[cl->rb_next++]);
        rb_reset(cl);
        share_member_gone(sh, cl);
    }
    cl->disconnected_ms = sh->now_ms;
    if (will && c->will_delay_s && cl->expiry_s) {
        /* 5.0 will delay: sent when the delay or the session ends,
         * whichever comes first, unless the session resumes before
         * [MQTT-3.1.3-9]. */
        uint64_t delay_s = c->will_delay_s < cl->expiry_s ? c->will_delay_s : cl->expiry_s;
        msg_unref(cl->pending_will);
        cl->pending_will = will;
        cl->will_at_ms = sh->now_ms + delay_s * 1000u;
        will = NULL;
    }
    if (cl->expiry_s == 0)
        client_destroy(sh, cl, true);
will:
    if (will)
        publish_will(sh, will);
}

void conn_on_closed(struct conn *c)
{
    if (c->verify_job) {
        /* Nobody waits for this check any more: a worker that has not begun
         * it skips the hash (a storm's closed connections would otherwise
         * keep the pool busy for clients still waiting). The job stays the
         * shard's to free when it comes back. */
        atomic_store_explicit(&c->verify_job->cancelled, true, memory_order_relaxed);
    }
    if (c->client)
        LOGCL(LOG_LEVEL_INFO, c, "disconnected (%s)",
              c->got_disconnect ? "DISCONNECT" : "connection lost");
    conn_detach(c);
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
    struct shard *sh;
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
    if (cl->match_seq == mc->sh->match_seq) {
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
        cl->match_seq = mc->sh->match_seq;
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

void mqtt_deliver_local(struct shard *sh, struct msg *m)
{
    if (msg_expired(m, sh->now_ms))
        return;
    struct match_ctx mc = {.sh = sh, .m = m, .v = match_scratch, .n = 0, .cap = match_scratch_cap};
    sh->match_seq++;
    trie_match(sh->subs, msg_topic(m), m->topic_len, on_match, &mc);
    match_scratch = mc.v;
    match_scratch_cap = mc.cap;
    const struct auth_snapshot *snap = atomic_load_explicit(&sh->b->auth, memory_order_seq_cst);
    for (uint32_t i = 0; i < mc.n; i++) {
        struct match_entry *e = &mc.v[i];
        struct client *cl = e->cl;
        struct auth_client ac = {.client_id = cl->id, .client_id_len = cl->id_len};
        if (!auth_allowed(snap, &ac, AUTH_READ, msg_topic(m), m->topic_len))
            continue;
        struct delivery d = {0}; /* share_key 0: a plain subscription's copy */
        d.msg = msg_ref(m);
        d.qos = m->qos < e->qos ? m->qos : e->qos;
        /* Live deliveries carry retain only with retain-as-published
         * [MQTT-3.3.1-9], [MQTT-3.3.1-12]. */
        d.retain = e->rap && m->retain;
        d.subid_count = cl->version == MQTT_V5 ? e->subid_count : 0;
        memcpy(d.subids, e->subids, d.subid_count * sizeof(uint32_t));
        mqtt_deliver(sh, cl, &d);
    }
}

bool mqtt_route_publish(struct shard *sh, struct msg *m)
{
    bool matched = false;
    if (trie_size(sh->share_routes))
        matched = share_route_publish(sh, m) > 0;
    uint64_t mask = route_match(sh->routes, msg_topic(m), m->topic_len);
    matched = matched || mask != 0;
    uint64_t self = 1ull << sh->id;
    if (mask & self)
        mqtt_deliver_local(sh, m);
    mask &= ~self;
    while (mask) {
        unsigned to = (unsigned)__builtin_ctzll(mask);
        mask &= mask - 1;
        shard_post(sh, to, msg_ref(m));
    }
    return matched;
}

/* ---- SUBSCRIBE and the route replica --------------------------------------- */

struct pending_suback {
    struct conn *c;
    uint32_t remaining;
    uint16_t packet_id;
    uint16_t count;
    uint32_t retained_n;
    struct delivery *retained;
    uint8_t reasons[];
};

/* Applies a route change here and sends it to every other shard; with a
 * group it is a shared subscription's (share.c), else a plain one. With
 * pending, each shard's acknowledgement counts the SUBACK down. */
static void route_apply(struct shard *sh, const uint8_t *group, size_t glen, uint32_t slot,
                        const uint8_t *filter, size_t flen, unsigned shard, bool present)
{
    if (glen == 0) {
        route_set(sh->routes, filter, flen, shard, present);
        return;
    }
    /* One entry per member slot (share.c weighs shards by it). */
    void *owner = (void *)(uintptr_t)(shard + 1 + (uintptr_t)SHARDS_MAX * slot);
    if (present)
        trie_insert(sh->share_routes, filter, flen, group, glen, owner,
                    share_key(sh->b, group, glen, filter, flen));
    else
        trie_remove(sh->share_routes, filter, flen, group, glen, owner);
}

static void route_broadcast_group(struct shard *sh, const uint8_t *group, size_t glen,
                                  uint32_t slot, const uint8_t *filter, size_t len, bool present,
                                  struct pending_suback *pending)
{
    route_apply(sh, group, glen, slot, filter, len, sh->id, present);
    for (unsigned j = 0; j < sh->b->shard_count; j++) {
        if (j == sh->id)
            continue;
        struct xenv *e = malloc(sizeof(*e) + glen + len);
        if (!e) {
            LOG(LOG_LEVEL_ERROR, "out of memory for a route change");
            abort();
        }
        memset(e, 0, sizeof(*e));
        e->type = XENV_ROUTE;
        e->present = present;
        e->from_shard = (uint16_t)sh->id;
        e->pending = pending;
        e->group_len = (uint16_t)glen;
        e->slot = (uint16_t)slot;
        e->filter_len = (uint16_t)len;
        if (glen)
            memcpy(e->filter, group, glen);
        memcpy(e->filter + glen, filter, len);
        if (pending) {
            pending->remaining++;
            sh->route_acks_due++;
        }
        shard_post(sh, j, (void *)((uintptr_t)e | 1u));
    }
}

static void route_broadcast(struct shard *sh, const uint8_t *filter, size_t len, bool present,
                            struct pending_suback *pending)
{
    route_broadcast_group(sh, NULL, 0, 0, filter, len, present, pending);
}

static void suback_complete(struct shard *sh, struct pending_suback *ps)
{
    struct conn *c = ps->c;
    if (c->state == CONN_ACTIVE && c->client) {
        struct mqtt_packet p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_SUBACK;
        p.u.suback.packet_id = ps->packet_id;
        p.u.suback.reasons.ptr = ps->reasons;
        p.u.suback.reasons.len = ps->count;
        write_packet(c, &p);
        /* Retained messages follow the SUBACK [MQTT-3.8.4-4], as room
         * allows. */
        c->retained_pending -= ps->retained_n;
        rb_append(sh, c->client, ps->retained, ps->retained_n);
        rb_pump(sh, c->client);
    } else {
        c->retained_pending -= ps->retained_n;
        for (uint32_t i = 0; i < ps->retained_n; i++)
            msg_unref(ps->retained[i].msg);
    }
    free(ps->retained);
    free(ps);
    conn_release(c);
}

struct retained_ctx {
    struct pending_suback *ps;
    uint32_t cap;
    uint8_t qos;
    uint32_t subid;
    uint8_t version;
    uint64_t now_ms;
    uint64_t dropped; /* over RETAINED_BACKLOG_MAX */
};

static void on_retained(void *ctx, struct msg *m)
{
    struct retained_ctx *rc = ctx;
    struct pending_suback *ps = rc->ps;
    if (msg_expired(m, rc->now_ms))
        return; /* the store keeps it until replaced; it is not sent [MQTT-3.3.2-5] */
    if (ps->retained_n >= RETAINED_BACKLOG_MAX) {
        rc->dropped++; /* rb_append would drop it anyway */
        return;
    }
    if (ps->retained_n == rc->cap) {
        uint32_t cap = rc->cap ? rc->cap * 2 : 16;
        struct delivery *v = realloc(ps->retained, cap * sizeof(*v));
        if (!v)
            return;
        ps->retained = v;
        rc->cap = cap;
    }
    struct delivery *d = &ps->retained[ps->retained_n++];
    /* Every field set: a stale share_key would send the message to a
     * share group when the session ends [issue 7 defect 2]. */
    *d = (struct delivery){0};
    d->msg = msg_ref(m);
    d->qos = m->qos < rc->qos ? m->qos : rc->qos;
    d->retain = true; /* [MQTT-3.3.1-8] */
    d->stored = true;
    d->subid_count = 0;
    if (rc->subid && rc->version == MQTT_V5) {
        d->subids[0] = rc->subid;
        d->subid_count = 1;
    }
}

/* Adds a shared subscription: the membership here, the client's record
 * of it, and (first member here) the replica change on every shard.
 * Returns a SUBACK reason (< 0x80: granted). */
static uint8_t subscribe_shared(struct shard *sh, struct client *cl, const uint8_t *group,
                                size_t glen, const uint8_t *filter, size_t flen, uint64_t opts,
                                struct pending_suback *ps)
{
    struct sub_entry *s = sub_table_find(&cl->subs, group, glen, filter, flen);
    if (!s && cl->subs.count >= sh->b->cfg.max_subscriptions)
        return cl->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED_ERROR;
    bool added = false;
    if (!s) {
        s = sub_table_add(&cl->subs, group, glen, filter, flen, opts);
        if (!s)
            return MQTT_RC_UNSPECIFIED_ERROR;
        added = true;
    }
    uint32_t count;
    int r = share_join(sh, cl, group, glen, filter, flen, opts, &count);
    if (r < 0) {
        share_leave(sh, cl, group, glen, filter, flen, &count); /* reap an empty new group */
        if (added)
            sub_table_remove(&cl->subs, s);
        return MQTT_RC_UNSPECIFIED_ERROR;
    }
    if (r == 0)
        cl->share_count++;
    s->opts = opts;
    if (r == 0)
        route_broadcast_group(sh, group, glen, count - 1, filter, flen, true, ps);
    return 0;
}

static void handle_subscribe(struct conn *c, const struct mqtt_subscribe *sp)
{
    struct shard *sh = c->sh;
    struct client *cl = c->client;
    const struct config *cfg = cfg_of(c);
    if (c->version == MQTT_V5 && (sp->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) &&
        sp->props.subscription_ids[0] == 0) {
        violation(c, MQTT_RC_PROTOCOL_ERROR, "subscription identifier 0");
        return;
    }
    uint32_t subid = (sp->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
                         ? sp->props.subscription_ids[0]
                         : 0;
    struct pending_suback *ps = calloc(1, sizeof(*ps) + sp->count);
    if (!ps) {
        conn_close(c, "out of memory");
        return;
    }
    ps->c = c;
    ps->packet_id = sp->packet_id;
    ps->count = sp->count;
    struct retained_ctx rc = {.ps = ps, .cap = 0};
    const struct auth_snapshot *snap = atomic_load_explicit(&sh->b->auth, memory_order_seq_cst);
    struct auth_client ac = {.listener = c->listener,
                             .client_id = cl->id,
                             .client_id_len = cl->id_len,
                             .username = c->username,
                             .username_len = c->username_len};
    size_t off = 0;
    struct mqtt_sub_entry e;
    uint32_t i = 0;
    uint32_t seq = ++cl->sub_seq;
    if (seq == 0)
        seq = ++cl->sub_seq; /* 0 is "never touched" */
    while (codec_subscribe_next(sp, &off, c->version, &e) && i < sp->count) {
        uint8_t *reason = &ps->reasons[i++];
        const uint8_t *group = NULL, *filter = e.filter.ptr;
        size_t glen = 0, flen = e.filter.len;
        topic_shared_split(e.filter.ptr, e.filter.len, &group, &glen, &filter, &flen);
        if (topic_levels(filter, flen) > cfg->max_topic_levels) {
            *reason =
                c->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : MQTT_RC_UNSPECIFIED_ERROR;
            continue;
        }
        if (!auth_allowed(snap, &ac, AUTH_SUBSCRIBE, filter, flen)) {
            *reason = MQTT_RC_NOT_AUTHORIZED;
            continue;
        }
        uint8_t qos = e.qos > cfg->max_qos ? cfg->max_qos : e.qos;
        uint64_t opts = (uint64_t)qos | (e.no_local ? OPT_NO_LOCAL : 0) |
                        (e.retain_as_published ? OPT_RAP : 0) | ((uint64_t)e.retain_handling << 4) |
                        ((uint64_t)subid << 8);
        if (glen) {
            *reason = subscribe_shared(sh, cl, group, glen, filter, flen, opts, ps);
            if (*reason < 0x80)
                *reason = qos;
            continue; /* no retained messages on a shared subscription (3.8.4) */
        }
        bool first_here = trie_filter_count(sh->subs, filter, flen) == 0;
        int r = trie_insert(sh->subs, filter, flen, NULL, 0, cl, opts);
        if (r < 0) {
            *reason = MQTT_RC_UNSPECIFIED_ERROR;
            continue;
        }
        if (r == 0 && cl->subs.count >= cfg->max_subscriptions) {
            trie_remove(sh->subs, filter, flen, NULL, 0, cl);
            *reason = c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED_ERROR;
            continue;
        }
        /* The trie knows whether this is new: only a replaced subscription
         * needs the client's list searched, so a client subscribing
         * thousands of filters costs O(1) each. */
        struct sub_entry *s = r == 1 ? sub_table_find(&cl->subs, NULL, 0, filter, flen) : NULL;
        /* A filter repeated in one SUBSCRIBE is one subscription, whose
         * retained messages go out once [issue 7 defect 8]. */
        bool repeated = s && s->touched == seq;
        if (!s) {
            s = sub_table_add(&cl->subs, NULL, 0, filter, flen, opts);
            if (!s) {
                trie_remove(sh->subs, filter, flen, NULL, 0, cl);
                *reason = MQTT_RC_UNSPECIFIED_ERROR;
                continue;
            }
        }
        s->opts = opts;
        s->touched = seq;
        *reason = qos;
        if (first_here)
            route_broadcast(sh, filter, flen, true, ps);
        /* Retain handling 0: always; 1: only for a new subscription;
         * 2: never [MQTT-3.3.1-9..11]. */
        /* Past the backlog bound (or over memory_limit) the store is not
         * walked at all: the walk is the cost a client could repeat. */
        if (cfg->retain_available && !repeated && ps->retained_n < RETAINED_BACKLOG_MAX &&
            !mem_over(sh) && (e.retain_handling == 0 || (e.retain_handling == 1 && r == 0))) {
            rc.qos = qos;
            rc.subid = subid;
            rc.version = c->version;
            rc.now_ms = sh->now_ms;
            pthread_rwlock_rdlock(&sh->b->retain_lock);
            retain_match(sh->b->retain, filter, flen, on_retained, &rc);
            pthread_rwlock_unlock(&sh->b->retain_lock);
        }
    }
    if (rc.dropped)
        atomic_fetch_add_explicit(&sh->st.retained_backlog_dropped, rc.dropped,
                                  memory_order_relaxed);
    c->retained_pending += ps->retained_n;
    if (ps->remaining == 0 && sh->route_acks_due > 0) {
        /* Nothing new to broadcast, but an earlier route change from this
         * shard (perhaps for this very filter) is still on its way: a
         * barrier behind it on every queue keeps the promise that a client
         * holding its SUBACK receives every later publish. */
        for (unsigned j = 0; j < sh->b->shard_count; j++) {
            if (j == sh->id)
                continue;
            struct xenv *bar = calloc(1, sizeof(*bar));
            if (!bar) {
                LOG(LOG_LEVEL_ERROR, "out of memory for a route barrier");
                abort();
            }
            bar->type = XENV_BARRIER;
            bar->from_shard = (uint16_t)sh->id;
            bar->pending = ps;
            ps->remaining++;
            sh->route_acks_due++;
            shard_post(sh, j, (void *)((uintptr_t)bar | 1u));
        }
    }
    conn_hold(c);
    if (ps->remaining == 0)
        suback_complete(sh, ps);
}

static void handle_unsubscribe(struct conn *c, const struct mqtt_subscribe *sp)
{
    struct shard *sh = c->sh;
    struct client *cl = c->client;
    uint8_t reasons[256];
    uint8_t *rv = sp->count <= sizeof(reasons) ? reasons : malloc(sp->count);
    if (!rv) {
        conn_close(c, "out of memory");
        return;
    }
    size_t off = 0;
    struct mqtt_bytes f;
    uint32_t i = 0;
    while (codec_unsubscribe_next(sp, &off, &f) && i < sp->count) {
        const uint8_t *group = NULL, *filter = f.ptr;
        size_t glen = 0, flen = f.len;
        topic_shared_split(f.ptr, f.len, &group, &glen, &filter, &flen);
        struct sub_entry *s = sub_table_find(&cl->subs, group, glen, filter, flen);
        if (!s) {
            rv[i++] = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
            continue;
        }
        unsubscribe_one(sh, cl, s);
        sub_table_remove(&cl->subs, s);
        rv[i++] = MQTT_RC_SUCCESS;
    }
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_UNSUBACK;
    p.u.suback.packet_id = sp->packet_id;
    p.u.suback.reasons.ptr = rv;
    p.u.suback.reasons.len = i;
    write_packet(c, &p);
    if (rv != reasons)
        free(rv);
}

void mqtt_env_discard(struct xenv *e)
{
    bool acked = e->type == XENV_ROUTE || e->type == XENV_BARRIER || e->type == XENV_ROUTE_ACK;
    struct pending_suback *ps = acked ? e->pending : NULL;
    if (!ps || --ps->remaining > 0)
        return;
    for (uint32_t i = 0; i < ps->retained_n; i++)
        msg_unref(ps->retained[i].msg);
    free(ps->retained);
    free(ps);
}

void mqtt_handle_env(struct shard *sh, struct xenv *e)
{
    switch (e->type) {
    case XENV_ROUTE:
        route_apply(sh, e->filter, e->group_len, e->slot, e->filter + e->group_len, e->filter_len,
                    e->from_shard, e->present);
        if (e->pending) {
            /* The envelope goes back as the acknowledgement. */
            unsigned to = e->from_shard;
            e->type = XENV_ROUTE_ACK;
            e->from_shard = (uint16_t)sh->id;
            shard_post(sh, to, (void *)((uintptr_t)e | 1u));
            return;
        }
        break;
    case XENV_BARRIER:
        /* Everything the sender posted before this has been applied here
         * (the queue is FIFO): say so. */
        e->type = XENV_ROUTE_ACK;
        {
            unsigned to = e->from_shard;
            e->from_shard = (uint16_t)sh->id;
            shard_post(sh, to, (void *)((uintptr_t)e | 1u));
        }
        return;
    case XENV_ROUTE_ACK:
        sh->route_acks_due--;
        if (--e->pending->remaining == 0)
            suback_complete(sh, e->pending);
        break;
    case XENV_ADOPT:
        shard_adopt(sh, e->conn);
        break;
    case XENV_SHARED:
        share_deliver(sh, e->key, e->msg);
        msg_unref(e->msg);
        break;
    case XENV_HOLD:
        flow_apply(sh, e->key, e->hash, e->holder, e->present);
        break;
    default:
        LOG(LOG_LEVEL_ERROR, "unknown cross-shard envelope %u", e->type);
        abort();
    }
    free(e);
}

/* ---- CONNECT -------------------------------------------------------------- */

/* Resends what a resumed session had in flight, in order, with DUP
 * [MQTT-4.4.0-1]. */
struct resend_ctx {
    struct conn *c;
    uint16_t *refused; /* packet ids write_publish refused (too large now) */
    uint32_t refused_n, refused_cap;
    bool nomem;
};

static void resend_one(void *ctx, const struct session_inflight *e)
{
    struct resend_ctx *rc = ctx;
    if (e->state == SESSION_AWAIT_PUBCOMP) {
        send_ack(rc->c, MQTT_PUBREL, e->packet_id, MQTT_RC_SUCCESS);
        return;
    }
    if (write_publish(rc->c, &e->d, e->packet_id, true))
        return;
    if (rc->refused_n == rc->refused_cap) {
        uint32_t cap = rc->refused_cap ? rc->refused_cap * 2 : 16;
        uint16_t *v = realloc(rc->refused, cap * sizeof(*v));
        if (!v) {
            rc->nomem = true;
            return;
        }
        rc->refused = v;
        rc->refused_cap = cap;
    }
    rc->refused[rc->refused_n++] = e->packet_id;
}

/* Resends a resumed session's inflight. One the client's (new, smaller)
 * Maximum Packet Size refuses is dropped as if acknowledged, as in pump().
 * (The walk cannot change the ring, so those are collected first.) */
static void resend_inflight(struct conn *c, struct client *cl)
{
    struct resend_ctx rc = {.c = c};
    session_for_each_inflight(&cl->s, resend_one, &rc);
    for (uint32_t i = 0; i < rc.refused_n; i++)
        drop_as_acked(c->sh, cl, rc.refused[i]);
    free(rc.refused);
    if (rc.nomem)
        conn_close(c, "out of memory");
}

static void connack_fail(struct conn *c, uint8_t reason, const char *why)
{
    if (reason == MQTT_RC_BAD_USERNAME_OR_PASSWORD || reason == MQTT_RC_NOT_AUTHORIZED)
        atomic_fetch_add_explicit(&c->sh->st.auth_failed, 1, memory_order_relaxed);
    else if (reason == MQTT_RC_SERVER_BUSY)
        atomic_fetch_add_explicit(&c->sh->st.auth_busy, 1, memory_order_relaxed);
    LOG(LOG_LEVEL_INFO, "CONNECT from %s refused: %s (0x%02x)", c->peer, why, reason);
    /* 3.1.1 has return codes for a few refusals only; a malformed or
     * otherwise violating CONNECT is closed without CONNACK [MQTT-3.1.4-1],
     * [MQTT-4.8.0-1]. 5.0 may say why [MQTT-3.2.2-8]. */
    bool v311_code =
        reason == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION || reason == MQTT_RC_CLIENT_ID_NOT_VALID ||
        reason == MQTT_RC_SERVER_UNAVAILABLE || reason == MQTT_RC_SERVER_BUSY ||
        reason == MQTT_RC_BAD_USERNAME_OR_PASSWORD || reason == MQTT_RC_NOT_AUTHORIZED ||
        reason == MQTT_RC_BANNED || reason == MQTT_RC_QUOTA_EXCEEDED;
    if (c->version == MQTT_V5 || v311_code)
        send_connack(c, false, reason, NULL);
    conn_close(c, NULL);
}

static struct msg *will_create(struct conn *c, const struct mqtt_connect *cn)
{
    struct mqtt_publish p;
    memset(&p, 0, sizeof(p));
    p.qos = cn->will_qos;
    p.retain = cn->will_retain;
    p.payload = cn->will_payload;
    if (cn->version == MQTT_V5)
        p.props = cn->will_props;
    /* The will's Message Expiry Interval counts from its publication, not
     * from CONNECT (3.1.3.2.4): built with time 0, started in
     * publish_will(). */
    return msg_create(&p, cn->will_topic.ptr, cn->will_topic.len, 0, 0);
}

static int auth_begin(struct conn *c, const struct mqtt_connect *cn, uint32_t method,
                      const uint8_t *raw, size_t raw_len);
static int verify_begin(struct conn *c, const struct mqtt_connect *cn, struct auth_check *chk,
                        const uint8_t *raw, size_t raw_len);

/* A job that never reached the pool. */
static void verify_job_free(struct auth_job *j)
{
    if (!j)
        return;
    if (j->password) {
        explicit_bzero(j->password, j->password_len);
        free(j->password);
    }
    explicit_bzero(&j->check, sizeof(j->check));
    free(j);
}

/* Hands the password check of a CONNECT to the auth pool. The CONNECT is
 * kept, as during enhanced authentication, and replayed by conn_verified
 * with the answer; meanwhile the connection is in CONN_VERIFY, whose input
 * is stashed unparsed (reading pauses at CONGEST_STASH_MAX), and held so
 * it is not freed while the job refers to it. chk is wiped. */
static int verify_begin(struct conn *c, const struct mqtt_connect *cn, struct auth_check *chk,
                        const uint8_t *raw, size_t raw_len)
{
    size_t pw_len = cn->has_password ? cn->password.len : 0;
    struct auth_job *j = calloc(1, sizeof(*j));
    uint8_t *copy = malloc(raw_len);
    uint8_t *pw = pw_len ? malloc(pw_len) : NULL;
    if (!j || !copy || (pw_len && !pw)) {
        explicit_bzero(chk, sizeof(*chk));
        verify_job_free(j);
        free(copy);
        free(pw);
        connack_fail(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return -1;
    }
    atomic_init(&j->cancelled, false);
    j->conn = c;
    j->conn_id = c->id;
    j->shard = c->sh->id;
    j->check = *chk;
    explicit_bzero(chk, sizeof(*chk));
    if (pw_len)
        memcpy(pw, cn->password.ptr, pw_len);
    j->password = pw;
    j->password_len = pw_len;
    int err = authpool_submit(c->sh->b->authpool, j);
    if (err) {
        verify_job_free(j);
        free(copy);
        /* A full queue is a storm of CONNECTs: try again later. */
        connack_fail(c, err == -EBUSY ? MQTT_RC_SERVER_BUSY : MQTT_RC_SERVER_UNAVAILABLE,
                     err == -EBUSY ? "password checks queue full" : "password checks stopped");
        return -1;
    }
    /* From here the job is the pool's: only its answer comes back. */
    memcpy(copy, raw, raw_len);
    c->connect_copy = copy;
    c->connect_copy_len = (uint32_t)raw_len;
    c->state = CONN_VERIFY;
    c->verify_started_ms = c->sh->now_ms;
    c->verify_job = j; /* valid until the answer is back: the shard frees it */
    conn_hold(c);
    return 0;
}

/* Drops the CONNACK properties a client can do without (Response
 * Information, Topic Alias Maximum: it then sets no aliases) until the
 * CONNACK fits its Maximum Packet Size; false if it still does not. */
static bool connack_fit(struct conn *c, struct mqtt_props *props)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNACK;
    static const uint8_t optional[] = {MQTT_PROP_RESPONSE_INFO, MQTT_PROP_TOPIC_ALIAS_MAXIMUM};
    for (size_t i = 0;; i++) {
        p.u.connack.props = *props;
        if (codec_encoded_size(&p, MQTT_V5) <= c->client_max_packet)
            return true;
        if (i == sizeof(optional))
            return false;
        props->present &= ~MQTT_PROP_BIT(optional[i]);
        if (optional[i] == MQTT_PROP_TOPIC_ALIAS_MAXIMUM)
            c->alias_in_max = 0; /* not advertised: none accepted */
    }
}

static bool same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* raw: the whole CONNECT packet, kept if an authentication exchange must
 * run before it can be answered. */
static int handle_connect(struct conn *c, const struct mqtt_connect *cn, const uint8_t *raw,
                          size_t raw_len)
{
    struct shard *sh = c->sh;
    const struct config *cfg = cfg_of(c);
    c->version = cn->version;
    const uint8_t *id = cn->client_id.ptr;
    size_t id_len = cn->client_id.len;
    char assigned[48];
    bool was_assigned = false;

    if (id_len == 0) {
        if (cn->version == MQTT_V31) {
            /* 3.1 requires 1 to 23 characters. */
            connack_fail(c, MQTT_RC_CLIENT_ID_NOT_VALID, "empty client id (MQTT 3.1)");
            return -1;
        }
        if (cn->version != MQTT_V5 && !cn->clean_start) {
            /* [MQTT-3.1.3-8] */
            connack_fail(c, MQTT_RC_CLIENT_ID_NOT_VALID, "empty client id without clean session");
            return -1;
        }
        /* [MQTT-3.1.3-6]: the server assigns a unique id. Shard, connection
         * number and start time make it unique across restarts. */
        snprintf(assigned, sizeof(assigned), "ringmq-%llx-%llx",
                 (unsigned long long)sh->b->start_ms, (unsigned long long)c->id);
        id = (const uint8_t *)assigned;
        id_len = strlen(assigned);
        was_assigned = true;
    }
    if (id_len > CLIENT_ID_LEN_MAX) {
        connack_fail(c, MQTT_RC_CLIENT_ID_NOT_VALID, "client id too long");
        return -1;
    }
    if (cn->version != MQTT_V5 &&
        (cn->keepalive_s > cfg->max_keepalive_s ||
         (cn->keepalive_s == 0 && cfg->max_keepalive_s < KEEPALIVE_MAX_S))) {
        /* 3.1.1 has no way to tell the client another keepalive: refuse, as
         * mosquitto does. Keepalive 0 (never) is above any maximum: an idle
         * socket must be closed eventually [issue 7 defect 10]. */
        connack_fail(c, MQTT_RC_CLIENT_ID_NOT_VALID, "keepalive over max_keepalive");
        return -1;
    }
    if (cn->will_flag) {
        if (topic_levels(cn->will_topic.ptr, cn->will_topic.len) > cfg->max_topic_levels) {
            connack_fail(c, MQTT_RC_TOPIC_NAME_INVALID, "will topic over max_topic_levels");
            return -1;
        }
        if (cn->will_qos > cfg->max_qos) {
            connack_fail(c, MQTT_RC_QOS_NOT_SUPPORTED, "will QoS over max_qos");
            return -1;
        }
        if (cn->will_retain && !cfg->retain_available) {
            connack_fail(c, MQTT_RC_RETAIN_NOT_SUPPORTED, "retained will, retain unavailable");
            return -1;
        }
    }

    if (!c->placed && mem_over(sh)) {
        atomic_fetch_add_explicit(&sh->st.mem_refused, 1, memory_order_relaxed);
        connack_fail(c, MQTT_RC_QUOTA_EXCEEDED, "over memory_limit");
        return -1;
    }
    if (!c->placed) {
        /* On the shard that accepted the connection: who is this, and
         * where does its session live? */
        const struct auth_snapshot *snap = atomic_load_explicit(&sh->b->auth, memory_order_seq_cst);
        if (!c->authenticated) {
            if (cn->version == MQTT_V5 &&
                (cn->props.present & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD))) {
                /* Enhanced authentication (4.12): the exchange runs first,
                 * then this CONNECT again. */
                uint32_t m =
                    auth_method_offered(snap, cn->props.auth_method.ptr, cn->props.auth_method.len);
                if (!m) {
                    /* [MQTT-4.12.0-1] */
                    connack_fail(c, MQTT_RC_BAD_AUTHENTICATION_METHOD,
                                 "authentication method not offered");
                    return -1;
                }
                return auth_begin(c, cn, m, raw, raw_len);
            }
            struct auth_request ar = {
                .listener = c->listener,
                .peer = c->peer,
                .client_id = id,
                .client_id_len = id_len,
                .has_username = cn->has_username,
                .username = cn->username.ptr,
                .username_len = cn->username.len,
                .has_password = cn->has_password,
                .password = cn->password.ptr,
                .password_len = cn->password.len,
            };
            uint8_t rc;
            if (c->verify_done) {
                /* The replay after a check off the shard: its answer. */
                c->verify_done = false;
                rc = c->verify_rc;
            } else if (sh->b->authpool) {
                /* Anything that hashes a password goes to the auth pool,
                 * so the shard's other clients do not wait for it. */
                struct auth_check chk;
                bool hash = false;
                rc = auth_connect_prepare(snap, &ar, &chk, &hash);
                if (rc == MQTT_RC_SUCCESS && hash)
                    return verify_begin(c, cn, &chk, raw, raw_len);
            } else {
                rc = auth_connect(snap, &ar);
            }
            if (rc != MQTT_RC_SUCCESS) {
                connack_fail(c, rc,
                             rc == MQTT_RC_SERVER_UNAVAILABLE ? "password check not available"
                             : cn->has_username               ? "bad username or password"
                                                              : "anonymous refused");
                return -1;
            }
            if (cn->has_username) {
                c->username = malloc(cn->username.len + 1);
                if (!c->username) {
                    conn_close(c, "out of memory");
                    return -1;
                }
                memcpy(c->username, cn->username.ptr, cn->username.len);
                c->username[cn->username.len] = 0;
                c->username_len = cn->username.len;
            }
            c->authenticated = true;
        } else if (cn->has_username &&
                   !same_bytes(cn->username.ptr, cn->username.len, c->username, c->username_len)) {
            /* The exchange proved one user; the CONNECT names another. */
            connack_fail(c, MQTT_RC_NOT_AUTHORIZED,
                         "CONNECT username is not the authenticated one");
            return -1;
        }
        if (cn->will_flag) {
            struct auth_client ac = {.listener = c->listener,
                                     .client_id = id,
                                     .client_id_len = id_len,
                                     .username = c->username,
                                     .username_len = c->username_len};
            if (!auth_allowed(snap, &ac, AUTH_WRITE, cn->will_topic.ptr, cn->will_topic.len)) {
                connack_fail(c, MQTT_RC_NOT_AUTHORIZED, "will topic not authorized");
                return -1;
            }
        }
        if (was_assigned) {
            /* The assigned id must survive the move to the home shard. */
            c->assigned_id = strdup(assigned);
            if (!c->assigned_id) {
                conn_close(c, "out of memory");
                return -1;
            }
        }
        c->placed = true;
        uint64_t h = broker_client_hash(id, id_len);
        c->home = (uint16_t)(h % sh->b->shard_count);
        if (c->home != sh->id)
            return PARSE_HANDOFF;
    } else if (c->assigned_id) {
        id = (const uint8_t *)c->assigned_id;
        id_len = strlen(c->assigned_id);
        was_assigned = true;
    }

    /* What CONNACK will say, decided before the session is touched. */
    c->client_max_packet = (cn->version == MQTT_V5 &&
                            (cn->props.present & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE)))
                               ? cn->props.maximum_packet_size
                               : 0;
    c->request_problem_info =
        cn->version != MQTT_V5 ||
        !(cn->props.present & MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO)) ||
        cn->props.request_problem_info;
    c->keepalive_s = cn->keepalive_s;
    struct mqtt_props props;
    char resp[CLIENT_ID_LEN_MAX + 16]; /* lives until the CONNACK is encoded */
    memset(&props, 0, sizeof(props));
    if (cn->version == MQTT_V5) {
        if (cn->keepalive_s > cfg->max_keepalive_s ||
            (cn->keepalive_s == 0 && cfg->max_keepalive_s < KEEPALIVE_MAX_S)) {
            c->keepalive_s = cfg->max_keepalive_s;
            props.present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEPALIVE);
            props.server_keepalive_s = cfg->max_keepalive_s;
        }
        if (was_assigned) {
            props.present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
            props.assigned_client_id.ptr = id;
            props.assigned_client_id.len = (uint32_t)id_len;
        }
        props.present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
        props.maximum_packet_size = cfg->max_packet_size;
        if (cfg->max_inflight_messages < 65535) {
            /* As mosquitto: the same bound both ways. Incoming QoS 2 over
             * it is refused with 0x93 [MQTT-3.3.4-9]. */
            props.present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
            props.receive_maximum = (uint16_t)cfg->max_inflight_messages;
        }
        if (cfg->max_qos < 2) {
            props.present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_QOS);
            props.maximum_qos = cfg->max_qos;
        }
        if (!cfg->retain_available) {
            props.present |= MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE);
            props.retain_available = 0;
        }
        if (cfg->max_topic_alias) {
            props.present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
            props.topic_alias_maximum = cfg->max_topic_alias;
        }
        if ((cn->props.present & MQTT_PROP_BIT(MQTT_PROP_REQUEST_RESPONSE_INFO)) &&
            cn->props.request_response_info) {
            /* A topic prefix for this client's responses, under '$' so no
             * leading wildcard subscription ever sees them [MQTT-4.7.2-1]. */
            int n = snprintf(resp, sizeof(resp), "$response/%.*s", (int)id_len, (const char *)id);
            props.present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_INFO);
            props.response_info.ptr = (const uint8_t *)resp;
            props.response_info.len = (uint32_t)n;
        }
        if (c->auth_method) {
            /* The method the CONNECT named, and the server's final
             * data [MQTT-4.12.0-5]. */
            props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
            props.auth_method.ptr = (const uint8_t *)SCRAM_METHOD;
            props.auth_method.len = (uint32_t)strlen(SCRAM_METHOD);
            if (c->auth_reply) {
                props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
                props.auth_data.ptr = c->auth_reply;
                props.auth_data.len = c->auth_reply_len;
            }
        }
        c->alias_in_max = cfg->max_topic_alias;
        if (cn->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
            c->alias_out_max = cn->props.topic_alias_maximum < TOPIC_ALIAS_OUT_MAX
                                   ? cn->props.topic_alias_maximum
                                   : TOPIC_ALIAS_OUT_MAX;
    }

    if (c->client_max_packet && !connack_fit(c, &props)) {
        /* Even without its optional properties the CONNACK would exceed
         * the client's Maximum Packet Size, which no packet may
         * [MQTT-3.1.2-24]: nothing can be said, the session is left as it
         * was. */
        conn_close(c, "CONNACK would exceed the client's Maximum Packet Size");
        return -1;
    }

    /* On the home shard: everything about this client id lives here. */
    uint64_t h = broker_client_hash(id, id_len);
    struct client *cl = client_find(sh, id, id_len, h);
    bool session_present = false;
    if (cl && cl->conn) {
        /* Takeover [MQTT-3.1.4-3]: the old connection is closed (5.0:
         * DISCONNECT 0x8E) and its will is published. */
        struct conn *old = cl->conn;
        LOGC(LOG_LEVEL_INFO, cl->id, cl->id_len, "taken over by a new connection from %s", c->peer);
        send_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER);
        conn_detach(old);
        conn_close(old, "session taken over");
        cl = client_find(sh, id, id_len, h); /* the detach may have ended it */
    }
    if (cl && cn->clean_start) {
        /* The session ends here, so a will waiting for its delay goes
         * out now (5.0 3.1.3.2.2) [issue 7 defect 14]. */
        struct msg *will = cl->pending_will;
        cl->pending_will = NULL;
        client_destroy(sh, cl, true);
        cl = NULL;
        if (will)
            publish_will(sh, will);
    }
    if (cl) {
        session_present = true;
        if (cl->pending_will) {
            /* Resumed in time: the delayed will is cancelled. */
            msg_unref(cl->pending_will);
            cl->pending_will = NULL;
        }
    } else {
        if (atomic_load_explicit(&sh->b->session_count, memory_order_relaxed) >=
            cfg->max_sessions) {
            /* Checked on the home shard against the sum of all: shards
             * racing may pass it by a few, never by more than their count. */
            atomic_fetch_add_explicit(&sh->st.sessions_refused, 1, memory_order_relaxed);
            connack_fail(c, MQTT_RC_QUOTA_EXCEEDED, "max_sessions reached");
            return -1;
        }
        cl = client_create(sh, id, id_len, h);
        if (!cl) {
            connack_fail(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
            return -1;
        }
    }
    cl->version = cn->version;
    cl->clean_session = cn->clean_start;
    uint64_t cap_s = cfg->persistent_client_expiration_s;
    if (cn->version == MQTT_V5) {
        uint32_t e = (cn->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))
                         ? cn->props.session_expiry_s
                         : 0;
        cl->expiry_s = (cap_s && e > cap_s) ? (uint32_t)cap_s : e;
    } else {
        cl->expiry_s = cn->clean_start ? 0 : (cap_s ? (uint32_t)cap_s : UINT32_MAX);
    }
    c->session_expiry_s = cl->expiry_s;
    struct session_limits lim = {
        .inflight_max = cfg->max_inflight_messages,
        .queued_max = cfg->max_queued_messages,
        .queued_bytes_max = cfg->max_queued_bytes,
    };
    if (cn->version == MQTT_V5 && (cn->props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM)) &&
        cn->props.receive_maximum < lim.inflight_max)
        lim.inflight_max = cn->props.receive_maximum; /* [MQTT-3.3.4-7] */
    session_set_limits(&cl->s, &lim);

    if (cn->will_flag) {
        c->will = will_create(c, cn);
        c->will_delay_s = (cn->version == MQTT_V5 &&
                           (cn->will_props.present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY)))
                              ? cn->will_props.will_delay_s
                              : 0;
        if (!c->will) {
            connack_fail(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
            return -1;
        }
    }
    cl->conn = c;
    c->client = cl;
    c->state = CONN_ACTIVE;
    /* Draining (flow.c) is shown by acknowledging on this connection, not
     * by having connected: a client that reconnects without ever
     * acknowledging must not hold its publishers. */
    cl->last_ack_ms = 0;
    /* Keepalive counts from the CONNECT's acceptance here, not from bytes
     * that reached another shard before the hand-off [MQTT-3.1.2-22]. */
    c->last_rx_ms = sh->now_ms;
    LOGCL(LOG_LEVEL_INFO, c, "connected from %s (MQTT %s, keepalive %u, %s)", c->peer,
          cn->version == MQTT_V5     ? "5.0"
          : cn->version == MQTT_V311 ? "3.1.1"
                                     : "3.1",
          c->keepalive_s, session_present ? "session resumed" : "new session");
    send_connack(c, session_present, MQTT_RC_SUCCESS, cn->version == MQTT_V5 ? &props : NULL);
    free(c->auth_reply);
    c->auth_reply = NULL;
    if (session_present)
        resend_inflight(c, cl);
    pump(cl);
    return 0;
}

/* ---- PUBLISH and acknowledgements ------------------------------------------ */

/* Resolves a 5.0 topic alias in *p: an alias with a topic (re)defines it,
 * an alias with an empty topic uses it. Returns 0 or the reason to
 * disconnect with. */
static int resolve_alias(struct conn *c, struct mqtt_publish *p)
{
    uint16_t a = p->props.topic_alias;
    if (a == 0 || a > c->alias_in_max)
        return MQTT_RC_TOPIC_ALIAS_INVALID; /* [MQTT-3.3.2-8], [MQTT-3.3.2-9] */
    if (!c->alias_in) {
        c->alias_in = calloc(c->alias_in_max, sizeof(*c->alias_in));
        if (!c->alias_in)
            return MQTT_RC_SERVER_BUSY;
    }
    struct alias_out *e = &c->alias_in[a - 1];
    if (p->topic.len == 0) {
        if (!e->topic)
            return MQTT_RC_PROTOCOL_ERROR; /* an alias never defined */
        p->topic.ptr = e->topic;
        p->topic.len = e->len;
        return 0;
    }
    uint8_t *t = malloc(p->topic.len);
    if (!t)
        return MQTT_RC_SERVER_BUSY;
    memcpy(t, p->topic.ptr, p->topic.len);
    free(e->topic);
    e->topic = t;
    e->len = p->topic.len;
    return 0;
}

static void handle_publish(struct conn *c, const struct mqtt_publish *in)
{
    struct shard *sh = c->sh;
    const struct config *cfg = cfg_of(c);
    struct client *cl = c->client;
    struct mqtt_publish pub = *in;
    const struct mqtt_publish *p = &pub;
    if (c->version == MQTT_V5) {
        if (p->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) {
            violation(c, MQTT_RC_PROTOCOL_ERROR, "PUBLISH with a subscription identifier");
            return; /* [MQTT-3.3.4-6] */
        }
        if (p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) {
            int rc = resolve_alias(c, &pub);
            if (rc) {
                violation(c, (uint8_t)rc, "topic alias");
                return;
            }
            /* The alias is the connection's business; it does not travel
             * with the message. */
            pub.props.present &= ~MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
        }
    }
    if (p->topic.len == 0) {
        violation(c, MQTT_RC_PROTOCOL_ERROR, "PUBLISH without topic");
        return;
    }
    if (p->qos > cfg->max_qos) {
        violation(c, MQTT_RC_QOS_NOT_SUPPORTED, "PUBLISH over max_qos"); /* [MQTT-3.2.2-11] */
        return;
    }
    uint8_t ack_type = p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
    if (topic_levels(p->topic.ptr, p->topic.len) > cfg->max_topic_levels) {
        /* Well formed but not accepted here [issue 7 defect 13]: 5.0 hears
         * 0x90, 3.1.1 is acknowledged and the message dropped, as for a
         * publish the ACL refuses. */
        atomic_fetch_add_explicit(&sh->st.msgs_dropped, 1, memory_order_relaxed);
        if (p->qos)
            send_ack(c, ack_type, p->packet_id,
                     c->version == MQTT_V5 ? MQTT_RC_TOPIC_NAME_INVALID : MQTT_RC_SUCCESS);
        return;
    }
    if (p->retain && !cfg->retain_available) {
        violation(c, MQTT_RC_RETAIN_NOT_SUPPORTED, "retained PUBLISH"); /* [MQTT-3.2.2-14] */
        return;
    }
    if (c->version == MQTT_V5 && (p->props.present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT)) &&
        p->props.payload_format == 1 && !codec_utf8_valid(p->payload.ptr, p->payload.len)) {
        if (p->qos)
            send_ack(c, ack_type, p->packet_id, MQTT_RC_PAYLOAD_FORMAT_INVALID);
        return;
    }
    struct auth_client ac = {.listener = c->listener,
                             .client_id = cl->id,
                             .client_id_len = cl->id_len,
                             .username = c->username,
                             .username_len = c->username_len};
    if (!auth_allowed(atomic_load_explicit(&sh->b->auth, memory_order_seq_cst), &ac, AUTH_WRITE,
                      p->topic.ptr, p->topic.len)) {
        if (p->qos)
            send_ack(c, ack_type, p->packet_id,
                     c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_RC_SUCCESS);
        return;
    }
    if (p->qos == 2) {
        int r = session_qos2_seen(&cl->s, p->packet_id,
                                  c->version == MQTT_V5 ? cfg->max_inflight_messages : 65535);
        if (r == 0) {
            /* A resend before PUBREL: acknowledge, do not deliver twice
             * [MQTT-4.3.3-10]. */
            send_ack(c, MQTT_PUBREC, p->packet_id, MQTT_RC_SUCCESS);
            return;
        }
        if (r < 0) {
            violation(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "too many QoS 2 in flight");
            return;
        }
    }
    if (p->qos && c->version == MQTT_V5 && mem_over(sh)) {
        /* Over memory_limit a 5.0 publisher is told it was not taken
         * (3.1.1 has no word for it: its message goes where it can be
         * sent now). */
        atomic_fetch_add_explicit(&sh->st.mem_refused, 1, memory_order_relaxed);
        if (p->qos == 2)
            session_qos2_release(&cl->s, p->packet_id); /* the flow ends at this PUBREC */
        send_ack(c, ack_type, p->packet_id, MQTT_RC_QUOTA_EXCEEDED);
        return;
    }

    /* $SYS belongs to the broker: clients' publishes there are
     * acknowledged and dropped, as mosquitto does. */
    atomic_fetch_add_explicit(&sh->st.msgs_received, 1, memory_order_relaxed);
    bool sys = p->topic.len >= 4 && memcmp(p->topic.ptr, "$SYS", 4) == 0;
    bool matched = false;
    if (!sys) {
        struct msg *m = msg_create(p, p->topic.ptr, p->topic.len, cl->uid, sh->now_ms);
        if (!m) {
            violation(c, MQTT_RC_SERVER_BUSY, "out of memory");
            return;
        }
        m->origin_hash = cl->hash;
        if (p->retain)
            retain_store(sh, m);
        matched = mqtt_route_publish(sh, m);
        msg_unref(m);
    }
    /* 5.0 tells the publisher when nobody subscribed (0x10), as mosquitto
     * does; the message was accepted all the same. */
    if (p->qos)
        send_ack(c, ack_type, p->packet_id,
                 c->version == MQTT_V5 && !matched ? MQTT_RC_NO_MATCHING_SUBSCRIBERS
                                                   : MQTT_RC_SUCCESS);
}

static void handle_ack(struct conn *c, uint8_t type, const struct mqtt_ack *a)
{
    struct client *cl = c->client;
    /* Only an acknowledgement of something in flight shows the client is
     * draining: a made-up packet id must not keep a stuck session counted
     * as draining, holding its publishers [issue 7 defect 5]. */
    uint64_t now_ms = c->sh->now_ms;
    switch (type) {
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        /* An unknown id is the client's business: ignore it. */
        if (session_acked(&cl->s, type, a->packet_id) == 0)
            cl->last_ack_ms = now_ms;
        pump(cl);
        break;
    case MQTT_PUBREC:
        if (c->version == MQTT_V5 && a->reason >= 0x80) {
            /* The receiver refused the message: the flow ends here
             * [MQTT-4.3.3-4]. */
            if (session_acked(&cl->s, MQTT_PUBREC, a->packet_id) == 0)
                cl->last_ack_ms = now_ms;
            session_acked(&cl->s, MQTT_PUBCOMP, a->packet_id);
            pump(cl);
            break;
        }
        if (session_acked(&cl->s, MQTT_PUBREC, a->packet_id) == 0) {
            cl->last_ack_ms = now_ms;
            send_ack(c, MQTT_PUBREL, a->packet_id, MQTT_RC_SUCCESS);
        } else
            send_ack(c, MQTT_PUBREL, a->packet_id, MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    case MQTT_PUBREL:
        send_ack(c, MQTT_PUBCOMP, a->packet_id,
                 session_qos2_release(&cl->s, a->packet_id) ? MQTT_RC_SUCCESS
                                                            : MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    default:
        break;
    }
    if (rb_waiting(cl))
        rb_pump(c->sh, cl);
}

void conn_output_drained(struct conn *c)
{
    struct client *cl = c->client;
    if (!cl)
        return;
    if (cl->holding_n)
        flow_drained(c->sh, cl); /* QoS 0 holds end as the output empties */
    if (rb_waiting(cl))
        rb_pump(c->sh, cl);
}

static void handle_disconnect(struct conn *c, const struct mqtt_disconnect *d)
{
    if (c->version == MQTT_V5) {
        if ((d->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))) {
            if (c->session_expiry_s == 0 && d->props.session_expiry_s != 0) {
                /* 3.14.2.2.2: not from 0 to non-zero */
                violation(c, MQTT_RC_PROTOCOL_ERROR, "session expiry set at DISCONNECT");
                return;
            }
            uint64_t cap_s = cfg_of(c)->persistent_client_expiration_s;
            uint32_t e = d->props.session_expiry_s;
            c->client->expiry_s = (cap_s && e > cap_s) ? (uint32_t)cap_s : e;
        }
        if (d->reason == MQTT_RC_DISCONNECT_WITH_WILL) {
            /* The client asks for its will: a lost connection in effect. */
            conn_close(c, "DISCONNECT with will");
            return;
        }
    }
    c->got_disconnect = true;
    /* A normal DISCONNECT discards the will [MQTT-3.14.4-3]. */
    msg_unref(c->will);
    c->will = NULL;
    conn_close(c, NULL);
}

/* ---- enhanced authentication (5.0, 4.12) ------------------------------------ */

/* Returns false when the packet would exceed the client's Maximum Packet
 * Size: the exchange cannot go on. */
static bool send_auth(struct conn *c, uint8_t reason, const uint8_t *data, size_t len)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_AUTH;
    p.u.disconnect.reason = reason;
    p.u.disconnect.props.present = MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
    p.u.disconnect.props.auth_method.ptr = (const uint8_t *)SCRAM_METHOD;
    p.u.disconnect.props.auth_method.len = (uint32_t)strlen(SCRAM_METHOD);
    if (len) {
        p.u.disconnect.props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
        p.u.disconnect.props.auth_data.ptr = data;
        p.u.disconnect.props.auth_data.len = (uint32_t)len;
    }
    if (c->client_max_packet && codec_encoded_size(&p, MQTT_V5) > c->client_max_packet)
        return false;
    write_packet(c, &p);
    return true;
}

static void auth_fail(struct conn *c, uint8_t reason, const char *why);

/* A CONNECT's or AUTH's Authentication Data: NULL and 0 when absent. */
static const uint8_t *auth_data(const struct mqtt_props *p, size_t *len)
{
    bool has = p->present & MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
    *len = has ? p->auth_data.len : 0;
    return has ? p->auth_data.ptr : NULL;
}

/* Starts the exchange a CONNECT asked for; the CONNECT is kept and runs
 * again when the exchange succeeds. */
static int auth_begin(struct conn *c, const struct mqtt_connect *cn, uint32_t method,
                      const uint8_t *raw, size_t raw_len)
{
    const struct auth_snapshot *snap = atomic_load_explicit(&c->sh->b->auth, memory_order_seq_cst);
    uint8_t out[SCRAM_MSG_MAX];
    size_t out_len = 0;
    const char *why = NULL;
    size_t data_len = 0;
    const uint8_t *data = auth_data(&cn->props, &data_len);
    if (scram_start(snap->passwd, data, data_len, &c->ax, out, &out_len, &why) != SCRAM_CONTINUE) {
        connack_fail(c, MQTT_RC_NOT_AUTHORIZED, why);
        return -1;
    }
    c->connect_copy = malloc(raw_len);
    if (!c->connect_copy) {
        scram_free(c->ax);
        c->ax = NULL;
        connack_fail(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return -1;
    }
    /* The AUTH packets of the exchange respect the client's Maximum
     * Packet Size already [MQTT-3.1.2-24]. */
    if (cn->props.present & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
        c->client_max_packet = cn->props.maximum_packet_size;
    memcpy(c->connect_copy, raw, raw_len);
    c->connect_copy_len = (uint32_t)raw_len;
    c->auth_method = method;
    c->ax_started_ms = c->sh->now_ms;
    c->state = CONN_AUTH;
    if (!send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, out, out_len)) {
        auth_fail(c, MQTT_RC_NOT_AUTHORIZED, "AUTH over the client's Maximum Packet Size");
        return -1;
    }
    return 0;
}

/* An AUTH packet must name the method the CONNECT named [MQTT-4.12.0-5]. */
static bool auth_same_method(const struct mqtt_disconnect *a)
{
    return same_bytes(a->props.auth_method.ptr, a->props.auth_method.len,
                      (const uint8_t *)SCRAM_METHOD, strlen(SCRAM_METHOD));
}

/* Ends an exchange that failed: before CONNACK the CONNACK says so, after
 * it a DISCONNECT does [MQTT-4.12.0-4], [MQTT-4.12.1-2]. */
static void auth_fail(struct conn *c, uint8_t reason, const char *why)
{
    scram_free(c->ax);
    c->ax = NULL;
    if (c->state == CONN_AUTH) {
        connack_fail(c, reason, why);
        return;
    }
    LOGCL(LOG_LEVEL_INFO, c, "re-authentication failed: %s", why);
    /* why is for the log: it tells a known user from an unknown one. */
    send_disconnect_why(c, reason, c->request_problem_info ? "re-authentication failed" : NULL);
    conn_close(c, NULL);
}

/* The client's half of a step: continues or finishes the exchange. */
static int auth_step(struct conn *c, const struct mqtt_disconnect *a)
{
    uint8_t out[SCRAM_MSG_MAX];
    size_t out_len = 0;
    const char *why = NULL;
    size_t data_len = 0;
    const uint8_t *data = auth_data(&a->props, &data_len);
    enum scram_result r = scram_finish(c->ax, data, data_len, out, &out_len, &why);
    if (r != SCRAM_OK) {
        auth_fail(c, MQTT_RC_NOT_AUTHORIZED, why ? why : "authentication failed");
        return -1;
    }
    size_t ulen = 0;
    const uint8_t *user = scram_username(c->ax, &ulen);
    if (c->state == CONN_ACTIVE) {
        /* Re-authentication proves the same identity again; it cannot turn
         * the connection into another user's. */
        if (!same_bytes(user, ulen, c->username, c->username_len)) {
            auth_fail(c, MQTT_RC_NOT_AUTHORIZED, "re-authenticated as another user");
            return -1;
        }
        scram_free(c->ax);
        c->ax = NULL;
        LOGCL(LOG_LEVEL_INFO, c, "re-authenticated");
        if (!send_auth(c, MQTT_RC_SUCCESS, out, out_len)) {
            auth_fail(c, MQTT_RC_NOT_AUTHORIZED, "AUTH over the client's Maximum Packet Size");
            return -1;
        }
        return 0;
    }
    uint8_t *name = malloc(ulen + 1);
    uint8_t *reply = malloc(out_len ? out_len : 1);
    if (!name || !reply) {
        free(name);
        free(reply);
        auth_fail(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return -1;
    }
    memcpy(name, user, ulen);
    name[ulen] = 0;
    memcpy(reply, out, out_len);
    scram_free(c->ax);
    c->ax = NULL;
    free(c->username);
    c->username = name;
    c->username_len = (uint32_t)ulen;
    c->auth_reply = reply;
    c->auth_reply_len = (uint16_t)out_len;
    c->authenticated = true;
    c->state = CONN_NEW;
    c->auth_replay = true;
    return PARSE_REPLAY;
}

/* AUTH before CONNACK: only the next step of the exchange. */
static int handle_auth_connecting(struct conn *c, const struct mqtt_disconnect *a)
{
    if (a->reason != MQTT_RC_CONTINUE_AUTHENTICATION) {
        /* The client's answer to our AUTH is Continue [MQTT-4.12.0-3];
         * re-authentication comes only after CONNACK. */
        auth_fail(c, MQTT_RC_PROTOCOL_ERROR, "AUTH before CONNACK is not Continue Authentication");
        return -1;
    }
    if (!auth_same_method(a)) {
        auth_fail(c, MQTT_RC_PROTOCOL_ERROR, "AUTH names another authentication method");
        return -1;
    }
    return auth_step(c, a);
}

/* AUTH after CONNACK: re-authentication [MQTT-4.12.1-1]. Other packets
 * keep flowing meanwhile (4.12.1). */
static int handle_auth_active(struct conn *c, const struct mqtt_disconnect *a)
{
    if (!c->auth_method) {
        /* [MQTT-4.12.0-7]: no method in CONNECT, no AUTH. */
        violation(c, MQTT_RC_PROTOCOL_ERROR, "AUTH without authentication method");
        return -1;
    }
    if (!auth_same_method(a)) {
        /* [MQTT-4.12.1-1] */
        violation(c, MQTT_RC_PROTOCOL_ERROR, "AUTH names another authentication method");
        return -1;
    }
    if (a->reason == MQTT_RC_REAUTHENTICATE) {
        if (c->ax) {
            violation(c, MQTT_RC_PROTOCOL_ERROR, "re-authentication while one is in progress");
            return -1;
        }
        const struct auth_snapshot *snap =
            atomic_load_explicit(&c->sh->b->auth, memory_order_seq_cst);
        uint8_t out[SCRAM_MSG_MAX];
        size_t out_len = 0;
        const char *why = NULL;
        size_t data_len = 0;
        const uint8_t *data = auth_data(&a->props, &data_len);
        if (!auth_method_offered(snap, (const uint8_t *)SCRAM_METHOD, strlen(SCRAM_METHOD))) {
            auth_fail(c, MQTT_RC_BAD_AUTHENTICATION_METHOD, "authentication method not offered");
            return -1;
        }
        if (scram_start(snap->passwd, data, data_len, &c->ax, out, &out_len, &why) !=
            SCRAM_CONTINUE) {
            auth_fail(c, MQTT_RC_NOT_AUTHORIZED, why ? why : "authentication failed");
            return -1;
        }
        c->ax_started_ms = c->sh->now_ms;
        if (!send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, out, out_len)) {
            auth_fail(c, MQTT_RC_NOT_AUTHORIZED, "AUTH over the client's Maximum Packet Size");
            return -1;
        }
        return 0;
    }
    if (a->reason != MQTT_RC_CONTINUE_AUTHENTICATION || !c->ax) {
        /* Success is the server's to send; Continue needs an exchange. */
        violation(c, MQTT_RC_PROTOCOL_ERROR, "AUTH out of sequence");
        return -1;
    }
    return auth_step(c, a);
}

/* Puts the CONNECT kept during the exchange back in front of whatever the
 * client sent after it, to be parsed again, now authenticated. */
static int auth_replay(struct conn *c)
{
    size_t rest = c->in.len - c->in_off;
    struct buf nb = {0};
    if (buf_reserve(&nb, c->connect_copy_len + rest))
        return -ENOMEM;
    memcpy(nb.data, c->connect_copy, c->connect_copy_len);
    if (rest)
        memcpy(nb.data + c->connect_copy_len, c->in.data + c->in_off, rest);
    nb.len = c->connect_copy_len + rest;
    buf_free(&c->in);
    c->in = nb;
    c->in_off = 0;
    explicit_bzero(c->connect_copy, c->connect_copy_len); /* it may hold a password */
    free(c->connect_copy);
    c->connect_copy = NULL;
    c->connect_copy_len = 0;
    c->auth_replay = false;
    return 0;
}

void conn_verified(struct conn *c, uint8_t rc)
{
    c->verify_job = NULL; /* freed by the caller */
    if (c->state != CONN_VERIFY || c->close_after_flush) {
        /* Closed meanwhile (connect_timeout, the peer left, shutdown). */
        conn_release(c);
        return;
    }
    /* The CONNECT runs again, with the answer, exactly as a check on the
     * shard would have gone on: will ACL, hand-off, CONNACK; then whatever
     * the client sent behind it. */
    c->state = CONN_NEW;
    c->verify_done = true;
    c->verify_rc = rc;
    int err = auth_replay(c);
    conn_release(c); /* frees at the end of the turn at the earliest */
    if (err) {
        conn_close(c, "out of memory");
        return;
    }
    conn_process_buffered(c);
}

/* ---- the packet loop --------------------------------------------------------- */

/* The protocol level of a CONNECT that did not decode, to answer in its
 * language; 0 when the protocol name is not MQTT's. */
static uint8_t connect_level(const uint8_t *body, size_t len)
{
    if (len >= 7 && body[0] == 0 && body[1] == 4 && memcmp(body + 2, "MQTT", 4) == 0)
        return body[6] == MQTT_V5 ? MQTT_V5 : MQTT_V311;
    if (len >= 9 && body[0] == 0 && body[1] == 6 && memcmp(body + 2, "MQIsdp", 6) == 0)
        return MQTT_V31;
    return 0;
}

static int handle_packet(struct conn *c, const struct mqtt_fixed *fh, const uint8_t *body)
{
    struct mqtt_packet pkt;
    int rc = codec_decode(fh, body, c->version, &pkt);
    if (c->state == CONN_NEW) {
        if (fh->type != MQTT_CONNECT) {
            /* [MQTT-3.1.0-1] */
            violation(c, MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
            return -1;
        }
        if (rc != MQTT_RC_SUCCESS) {
            uint8_t level = connect_level(body, fh->remaining_len);
            atomic_fetch_add_explicit(&c->sh->st.protocol_errors, 1, memory_order_relaxed);
            if (level == 0) {
                /* Not MQTT at all: no CONNACK in any version's format
                 * [MQTT-3.1.2-1]. */
                conn_close(c, "CONNECT with an unknown protocol name");
                return -1;
            }
            /* An unknown level is answered in 3.1.1's format, 0x01
             * [MQTT-3.1.2-2]. */
            c->version = rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION ? MQTT_V311 : level;
            connack_fail(c, (uint8_t)rc, "malformed CONNECT");
            return -1;
        }
        return handle_connect(c, &pkt.u.connect, body - fh->header_len,
                              (size_t)fh->header_len + fh->remaining_len);
    }
    if (c->state == CONN_AUTH) {
        /* Until CONNACK only AUTH or DISCONNECT may come [MQTT-3.1.2-30];
         * anything wrong is answered with a CONNACK (4.13.1). */
        if (rc != MQTT_RC_SUCCESS) {
            auth_fail(c, (uint8_t)rc, "malformed packet during authentication");
            return -1;
        }
        if (pkt.type == MQTT_DISCONNECT) {
            conn_close(c, "DISCONNECT during authentication");
            return -1;
        }
        if (pkt.type != MQTT_AUTH) {
            auth_fail(c, MQTT_RC_PROTOCOL_ERROR, "packet other than AUTH before CONNACK");
            return -1;
        }
        return handle_auth_connecting(c, &pkt.u.disconnect);
    }
    if (rc != MQTT_RC_SUCCESS) {
        violation(c, (uint8_t)rc, codec_type_name(fh->type));
        return -1;
    }
    switch (pkt.type) {
    case MQTT_PUBLISH:
        handle_publish(c, &pkt.u.publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        handle_ack(c, pkt.type, &pkt.u.ack);
        break;
    case MQTT_SUBSCRIBE:
        handle_subscribe(c, &pkt.u.subscribe);
        break;
    case MQTT_UNSUBSCRIBE:
        handle_unsubscribe(c, &pkt.u.subscribe);
        break;
    case MQTT_PINGREQ: {
        struct mqtt_packet p = {.type = MQTT_PINGRESP};
        write_packet(c, &p);
        break;
    }
    case MQTT_DISCONNECT:
        handle_disconnect(c, &pkt.u.disconnect);
        break;
    case MQTT_CONNECT:
        violation(c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT"); /* [MQTT-3.1.0-2] */
        return -1;
    case MQTT_AUTH:
        return handle_auth_active(c, &pkt.u.disconnect);
    default:
        violation(c, MQTT_RC_PROTOCOL_ERROR, "server-to-client packet from a client");
        return -1;
    }
    return 0;
}

/* Input waits while another shard's queue is full (back-pressure) or this
 * turn's input budget is spent (fairness to output). */
static bool input_held(const struct shard *sh)
{
    return sh->ovf_count || sh->turn_in_bytes >= LOOP_TURN_INPUT_BYTES_MAX;
}

/* Parses whole packets from p[0..len); returns the bytes consumed. Stops
 * at an incomplete packet, when the connection closes or moves, and after
 * LOOP_READ_BYTES_MAX bytes (the rest waits for the next loop turn). */
static size_t parse(struct conn *c, const uint8_t *p, size_t len, bool *stop)
{
    size_t off = 0;
    *stop = false;
    while (off < len) {
        if (c->state != CONN_NEW && c->state != CONN_AUTH && c->state != CONN_ACTIVE) {
            *stop = true;
            break;
        }
        if (c->close_after_flush) {
            *stop = true;
            break;
        }
        if (c->pause & CONN_PAUSE_OUTPUT) {
            /* Its replies are not being read: stop reading it too. */
            *stop = true;
            shard_defer(c);
            break;
        }
        if (off >= LOOP_READ_BYTES_MAX || input_held(c->sh)) {
            /* This turn's share is used up, or another shard's queue is
             * full: the rest waits (conn_input keeps it in order). */
            *stop = true;
            shard_defer(c);
            break;
        }
        struct mqtt_fixed fh;
        int r = codec_parse_fixed(p + off, len - off, &fh);
        if (r == MQTT_NEED_MORE)
            break;
        if (r != 0) {
            if (c->state == CONN_NEW)
                conn_close(c, "malformed fixed header before CONNECT");
            else if (c->state == CONN_AUTH)
                auth_fail(c, (uint8_t)r, "malformed fixed header during authentication");
            else
                violation(c, (uint8_t)r, "malformed fixed header");
            *stop = true;
            break;
        }
        uint64_t total = (uint64_t)fh.header_len + fh.remaining_len;
        if (c->state == CONN_NEW && total > cfg_of(c)->max_connect_size) {
            /* Checked from the fixed header: an unauthenticated client
             * gets no more than max_connect_size of buffer [issue 7 defect
             * 7]. A 5.0 client hears why: the protocol level is at most 9
             * bytes into the body, so that much is waited for. */
            size_t body_len = len - off - fh.header_len;
            uint8_t level = connect_level(p + off + fh.header_len, body_len);
            if (level == 0 && body_len < 9 && fh.type == MQTT_CONNECT)
                break; /* stashed: a few bytes more tell the version */
            if (level == MQTT_V5) {
                c->version = MQTT_V5;
                connack_fail(c, MQTT_RC_PACKET_TOO_LARGE, "CONNECT over max_connect_size");
            } else {
                conn_close(c, "CONNECT over max_connect_size");
            }
            atomic_fetch_add_explicit(&c->sh->st.connect_too_large, 1, memory_order_relaxed);
            *stop = true;
            break;
        }
        if (total > cfg_of(c)->max_packet_size) {
            /* Checked from the fixed header, before buffering [MQTT-3.2.2-15]. */
            if (c->state == CONN_NEW)
                conn_close(c, "CONNECT over max_packet_size");
            else
                violation(c, MQTT_RC_PACKET_TOO_LARGE, "packet over max_packet_size");
            *stop = true;
            break;
        }
        if (c->state == CONN_AUTH && total > AUTH_PACKET_MAX) {
            /* Before CONNACK only AUTH may come, and its data is a SCRAM
             * message: nothing larger is buffered for an unauthenticated
             * client. */
            auth_fail(c, MQTT_RC_PACKET_TOO_LARGE, "packet over the size of an AUTH exchange");
            *stop = true;
            break;
        }
        if (len - off < total)
            break;
        if (fh.type == MQTT_SUBSCRIBE && c->state == CONN_ACTIVE &&
            (c->retained_pending || rb_waiting(c->client))) {
            /* The retained messages of its last SUBSCRIBE still wait for
             * room: the next one waits for them (rb_pump resumes), so a
             * pipeline of SUBSCRIBEs cannot walk the store over and over
             * while the output is full. Its input stops at the stash bound. */
            *stop = true;
            break;
        }
        if (fh.type == MQTT_PUBLISH && c->state == CONN_ACTIVE && flow_held(c->sh, c->client)) {
            /* A draining subscriber of its messages is behind (flow.c):
             * publishes wait, acknowledgements and everything else still
             * flow so that it can drain. */
            *stop = true;
            c->sh->input_held = true;
            shard_defer(c);
            break;
        }
        c->sh->turn_in_bytes += (size_t)total;
        int hr = handle_packet(c, &fh, p + off + fh.header_len);
        if (hr == PARSE_HANDOFF) {
            c->state = CONN_HANDOFF;
            *stop = true;
            break;
        }
        if (hr == PARSE_REPLAY) {
            /* The caller puts the CONNECT back in front of the rest. */
            off += (size_t)total;
            *stop = true;
            break;
        }
        off += (size_t)total;
        if (hr < 0) {
            *stop = true;
            break;
        }
    }
    return off;
}

/* The largest packet this connection may send in its phase; what waits in
 * its input never grows beyond it plus one receive. */
static uint64_t packet_limit(const struct conn *c)
{
    switch (c->state) {
    case CONN_NEW:
        return cfg_of(c)->max_connect_size;
    case CONN_AUTH:
        return AUTH_PACKET_MAX;
    case CONN_ACTIVE:
        return cfg_of(c)->max_packet_size;
    default:
        return 0; /* nothing is parsed meanwhile: CONGEST_STASH_MAX holds */
    }
}

/* Should reading pause with what waits unparsed? Past CONGEST_STASH_MAX,
 * yes, unless all that waits is the start of one packet within the limit:
 * that packet must be read to its end or the connection would wait for
 * bytes it stopped reading [issue 7 defect 4]. */
static bool stash_full(const struct conn *c)
{
    size_t waiting = c->in.len - c->in_off;
    if (waiting < CONGEST_STASH_MAX)
        return false;
    struct mqtt_fixed fh;
    if (codec_parse_fixed(c->in.data + c->in_off, waiting, &fh) != 0)
        return true; /* malformed: parse() says so when it runs */
    uint64_t total = (uint64_t)fh.header_len + fh.remaining_len;
    return total <= waiting || total > packet_limit(c);
}

static int stash(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->in_off && c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
    } else if (c->in_off) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (buf_reserve(&c->in, len))
        return -ENOMEM;
    memcpy(c->in.data + c->in.len, data, len);
    c->in.len += len;
    return 0;
}

void conn_process_buffered(struct conn *c)
{
    conn_output_drained(c); /* retained messages deferred by their budget */
    bool stop;
    size_t n = parse(c, c->in.data + c->in_off, c->in.len - c->in_off, &stop);
    c->in_off += n;
    if (c->auth_replay) {
        if (auth_replay(c)) {
            conn_close(c, "out of memory");
            return;
        }
        n = parse(c, c->in.data, c->in.len, &stop);
        c->in_off += n;
    }
    if ((c->pause & CONN_PAUSE_CONGEST) && !stash_full(c))
        conn_resume(c, CONN_PAUSE_CONGEST);
    if (c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
        if (c->in.cap > 4 * BUF_RING_BUF_SIZE) {
            /* A large packet passed: give its buffer back. */
            buf_free(&c->in);
        }
    }
    if (c->state == CONN_HANDOFF)
        shard_handoff(c);
}

void conn_input(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->in.len > c->in_off || c->deferred || input_held(c->sh)) {
        /* Earlier bytes wait, or input is held: keep the order, and stop
         * reading once a bounded amount waits. */
        if (stash(c, data, len)) {
            conn_close(c, "out of memory");
            return;
        }
        if (stash_full(c))
            conn_pause(c, CONN_PAUSE_CONGEST); /* whatever the reason input waits */
        if (input_held(c->sh)) {
            shard_defer(c);
            return;
        }
        if (!c->deferred)
            conn_process_buffered(c);
        return;
    }
    bool stop;
    size_t n = parse(c, data, len, &stop);
    if (n < len && c->state != CONN_CLOSING && !c->close_after_flush) {
        /* A partial packet (or a deferred rest, or a CONNECT to hand over)
         * is copied; its length was already checked against the limit. */
        if (stash(c, data + n, len - n))
            conn_close(c, "out of memory");
        else if (c->deferred && stash_full(c))
            conn_pause(c, CONN_PAUSE_CONGEST);
    }
    if (c->auth_replay && c->state == CONN_NEW) {
        if (auth_replay(c)) {
            conn_close(c, "out of memory");
            return;
        }
        conn_process_buffered(c);
        return;
    }
    if (c->state == CONN_HANDOFF)
        shard_handoff(c);
}

/* ---- time and shutdown ----------------------------------------------------------- */

void conn_shutdown_notice(struct conn *c)
{
    if (c->state == CONN_ACTIVE && !c->close_after_flush)
        send_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN);
    conn_close(c, "shutting down");
}

static void conn_tick(struct conn *c, uint64_t now_ms)
{
    if (c->close_after_flush) {
        /* Closing, waiting for the output to drain: a peer that does not
         * read gets a bounded wait, then the socket is cut. */
        if (now_ms >= c->close_deadline_ms)
            conn_abort(c);
        return;
    }
    if (c->state == CONN_NEW && now_ms - c->created_ms > cfg_of(c)->connect_timeout_ms) {
        conn_close(c, "no CONNECT within connect_timeout");
        return;
    }
    if (c->state == CONN_VERIFY && now_ms - c->verify_started_ms > cfg_of(c)->connect_timeout_ms) {
        /* The check's answer finds the connection closed (conn_verified). */
        conn_close(c, "password check not done within connect_timeout");
        return;
    }
    if (c->ax && now_ms - c->ax_started_ms > cfg_of(c)->connect_timeout_ms) {
        /* An exchange the client does not finish: before CONNACK the
         * connect timeout, after it the same bound for re-authentication. */
        auth_fail(c, MQTT_RC_NOT_AUTHORIZED, "authentication not completed within connect_timeout");
        return;
    }
    if (c->state == CONN_ACTIVE && c->keepalive_s &&
        now_ms - c->last_rx_ms > (uint64_t)c->keepalive_s * 1500u) {
        /* One and a half keepalive periods of silence [MQTT-3.1.2-22]
         * (3.1.1: [MQTT-3.1.2-24]). */
        LOGCL(LOG_LEVEL_INFO, c, "keepalive timeout");
        send_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
        conn_close(c, NULL);
    }
}

void mqtt_tick(struct shard *sh, uint64_t now_ms)
{
    for (struct conn *c = sh->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == CONN_NEW || c->state == CONN_AUTH || c->state == CONN_VERIFY ||
            c->state == CONN_ACTIVE)
            conn_tick(c, now_ms);
    }
    /* Expired sessions and due delayed wills. */
    for (uint32_t i = 0; i <= sh->ctab_mask; i++) {
        for (struct client *cl = sh->ctab[i], *next; cl; cl = next) {
            next = cl->hnext;
            if (cl->conn) {
                flow_drained(sh, cl); /* a session may have gone stale */
                continue;
            }
            if (cl->pending_will && now_ms >= cl->will_at_ms) {
                struct msg *w = cl->pending_will;
                cl->pending_will = NULL;
                publish_will(sh, w);
            }
            if (cl->expiry_s != UINT32_MAX &&
                now_ms - cl->disconnected_ms >= (uint64_t)cl->expiry_s * 1000u) {
                LOGC(LOG_LEVEL_INFO, cl->id, cl->id_len, "session expired");
                client_destroy(sh, cl, true);
            }
        }
    }
}

void mqtt_shard_fini(struct shard *sh)
{
    share_fini(sh);
    for (unsigned i = 0; i < ENC_SLOTS; i++) {
        msg_unref(sh->enc[i].msg);
        sh->enc[i].msg = NULL;
        buf_free(&sh->enc[i].bytes);
    }
    if (!sh->ctab)
        return;
    for (uint32_t i = 0; i <= sh->ctab_mask; i++) {
        for (struct client *cl = sh->ctab[i], *next; cl; cl = next) {
            next = cl->hnext;
            client_destroy(sh, cl, false);
        }
    }
}

void mqtt_thread_exit(void)
{
    free(match_scratch);
    match_scratch = NULL;
    match_scratch_cap = 0;
}
