/*
 * SUBSCRIBE and UNSUBSCRIBE, and the route replica behind them: a
 * subscription goes into this shard's trie and, when it is the first for
 * its filter here, into every shard's replica; the SUBACK waits until every
 * shard has applied the change (the barrier), so a client holding its
 * SUBACK receives every later publish. Retained messages follow the SUBACK
 * through the client's retained backlog (engine_deliver.c).
 *
 * Runs on the thread that owns the engine.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "topic.h"

static void route_broadcast(struct engine *en, const uint8_t *filter, size_t len, bool present,
                            struct pending_suback *pending);
static void route_broadcast_group(struct engine *en, const uint8_t *group, size_t glen,
                                  uint32_t slot, const uint8_t *filter, size_t len, bool present,
                                  struct pending_suback *pending);

/* Removes one subscription from the trie and, when it was this shard's last
 * one for the filter, from every shard's route replica. */
void engine_unsubscribe_one(struct engine *en, struct client *cl, struct sub_entry *s)
{
    const uint8_t *group = s->data;
    const uint8_t *filter = s->data + s->group_len;
    if (s->group_len) {
        uint32_t left;
        if (share_leave(en, cl, group, s->group_len, filter, s->filter_len, &left) && !en->stopping)
            route_broadcast_group(en, group, s->group_len, left, filter, s->filter_len, false,
                                  NULL);
        cl->share_count--;
        return;
    }
    trie_remove(en->subs, filter, s->filter_len, NULL, 0, cl);
    if (trie_filter_count(en->subs, filter, s->filter_len) == 0 && !en->stopping)
        route_broadcast(en, filter, s->filter_len, false, NULL);
}

/* ---- SUBSCRIBE and the route replica --------------------------------------- */

/* Applies a route change here and sends it to every other shard; with a
 * group it is a shared subscription's (share.c), else a plain one. With
 * pending, each shard's acknowledgement counts the SUBACK down. */
void engine_route_apply(struct engine *en, const uint8_t *group, size_t glen, uint32_t slot,
                        const uint8_t *filter, size_t flen, unsigned shard, bool present)
{
    if (glen == 0) {
        route_set(en->routes, filter, flen, shard, present);
        return;
    }
    /* One entry per member slot (share.c weighs shards by it). */
    void *owner = (void *)(uintptr_t)(shard + 1 + (uintptr_t)SHARDS_MAX * slot);
    if (present)
        trie_insert(en->share_routes, filter, flen, group, glen, owner,
                    share_key(en->g, group, glen, filter, flen));
    else
        trie_remove(en->share_routes, filter, flen, group, glen, owner);
}

static void route_broadcast_group(struct engine *en, const uint8_t *group, size_t glen,
                                  uint32_t slot, const uint8_t *filter, size_t len, bool present,
                                  struct pending_suback *pending)
{
    engine_route_apply(en, group, glen, slot, filter, len, en->id, present);
    for (unsigned j = 0; j < en->g->shard_count; j++) {
        if (j == en->id)
            continue;
        struct engine_env *e = malloc(sizeof(*e) + glen + len);
        if (!e) {
            LOG(LOG_LEVEL_ERROR, "out of memory for a route change");
            abort();
        }
        memset(e, 0, sizeof(*e));
        e->type = ENGINE_ENV_ROUTE;
        e->present = present;
        e->from_shard = (uint16_t)en->id;
        e->pending = pending;
        e->group_len = (uint16_t)glen;
        e->slot = (uint16_t)slot;
        e->filter_len = (uint16_t)len;
        if (glen)
            memcpy(e->filter, group, glen);
        memcpy(e->filter + glen, filter, len);
        if (pending) {
            pending->remaining++;
            en->route_acks_due++;
        }
        engine_fx_post(en, j, engine_env_item(e));
    }
}

static void route_broadcast(struct engine *en, const uint8_t *filter, size_t len, bool present,
                            struct pending_suback *pending)
{
    route_broadcast_group(en, NULL, 0, 0, filter, len, present, pending);
}

static void suback_complete(struct engine *en, struct pending_suback *ps)
{
    struct engine_conn *c = ps->c;
    if (c->phase == ENGINE_ACTIVE && c->client) {
        struct mqtt_packet p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_SUBACK;
        p.u.suback.packet_id = ps->packet_id;
        p.u.suback.reasons.ptr = ps->reasons;
        p.u.suback.reasons.len = ps->count;
        engine_write_packet(c, &p);
        /* Retained messages follow the SUBACK [MQTT-3.8.4-4], as room
         * allows. */
        c->retained_pending -= ps->retained_n;
        engine_rb_append(en, c->client, ps->retained, ps->retained_n);
        engine_rb_pump(en, c->client);
        ps->retained_n = 0; /* the backlog holds them now */
    } else {
        c->retained_pending -= ps->retained_n;
    }
    engine_pending_discard(ps);
    engine_fx_release(c);
}

void engine_route_ack(struct engine *en, struct pending_suback *ps)
{
    en->route_acks_due--;
    if (--ps->remaining == 0)
        suback_complete(en, ps);
}

void engine_pending_discard(struct pending_suback *ps)
{
    for (uint32_t i = 0; i < ps->retained_n; i++)
        msg_unref(ps->retained[i].msg);
    free(ps->retained);
    free(ps);
}

struct retained_ctx {
    struct engine *en;
    struct client *cl; /* who must be allowed to read each one */
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
    struct client *cl = rc->cl;
    if (!engine_acl_allowed(rc->en, cl, &cl->who, cl->id, cl->id_len, ENGINE_READ, msg_topic(m),
                            m->topic_len)) {
        COUNT(rc->en, acl_denied_read, 1);
        return; /* a broad filter is granted; what it may not read is not sent */
    }
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
static uint8_t subscribe_shared(struct engine *en, struct client *cl, const uint8_t *group,
                                size_t glen, const uint8_t *filter, size_t flen, uint64_t opts,
                                struct pending_suback *ps)
{
    struct sub_entry *s = sub_table_find(&cl->subs, group, glen, filter, flen);
    if (!s && cl->subs.count >= en->cfg->max_subscriptions)
        return cl->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED_ERROR;
    bool added = false;
    if (!s) {
        s = sub_table_add(&cl->subs, group, glen, filter, flen, opts);
        if (!s)
            return MQTT_RC_UNSPECIFIED_ERROR;
        added = true;
        COUNT(en, subscriptions, 1);
    }
    uint32_t count;
    int r = share_join(en, cl, group, glen, filter, flen, opts, &count);
    if (r < 0) {
        share_leave(en, cl, group, glen, filter, flen, &count); /* reap an empty new group */
        if (added) {
            sub_table_remove(&cl->subs, s);
            UNCOUNT(en, subscriptions, 1);
        }
        return MQTT_RC_UNSPECIFIED_ERROR;
    }
    if (r == 0)
        cl->share_count++;
    s->opts = opts;
    if (r == 0)
        route_broadcast_group(en, group, glen, count - 1, filter, flen, true, ps);
    return 0;
}

/* One plain (not shared) filter of a SUBSCRIBE: the trie, the client's
 * table, the replica. Returns the reason (< 0x80: granted) and sets
 * *walk when its retained messages are to be sent. */
static uint8_t subscribe_plain(struct engine_conn *c, struct pending_suback *ps,
                               const struct mqtt_sub_entry *e, const uint8_t *filter, size_t flen,
                               uint64_t opts, uint32_t seq, bool *walk)
{
    struct engine *en = c->en;
    struct client *cl = c->client;
    const struct config *cfg = engine_cfg(c);
    *walk = false;
    bool first_here = trie_filter_count(en->subs, filter, flen) == 0;
    int r = trie_insert(en->subs, filter, flen, NULL, 0, cl, opts);
    if (r < 0)
        return MQTT_RC_UNSPECIFIED_ERROR;
    if (r == 0 && cl->subs.count >= cfg->max_subscriptions) {
        trie_remove(en->subs, filter, flen, NULL, 0, cl);
        return c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED_ERROR;
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
            trie_remove(en->subs, filter, flen, NULL, 0, cl);
            return MQTT_RC_UNSPECIFIED_ERROR;
        }
        COUNT(en, subscriptions, 1);
    }
    s->opts = opts;
    s->touched = seq;
    if (first_here)
        route_broadcast(en, filter, flen, true, ps);
    /* Retain handling 0: always; 1: only for a new subscription;
     * 2: never [MQTT-3.3.1-9..11]. Past the backlog bound (or over
     * memory_limit) the store is not walked at all: the walk is the cost
     * a client could repeat. */
    *walk = cfg->retain_available && !repeated && ps->retained_n < RETAINED_BACKLOG_MAX &&
            !engine_mem_over(en) &&
            (e->retain_handling == 0 || (e->retain_handling == 1 && r == 0));
    return OPT_QOS(opts);
}

/* One filter of a SUBSCRIBE: its reason code. */
static uint8_t subscribe_one(struct engine_conn *c, struct pending_suback *ps,
                             const struct mqtt_sub_entry *e, uint32_t subid, uint32_t seq,
                             struct retained_ctx *rc)
{
    struct engine *en = c->en;
    struct client *cl = c->client;
    const struct config *cfg = engine_cfg(c);
    const uint8_t *group = NULL, *filter = e->filter.ptr;
    size_t glen = 0, flen = e->filter.len;
    topic_shared_split(e->filter.ptr, e->filter.len, &group, &glen, &filter, &flen);
    if (topic_levels(filter, flen) > cfg->max_topic_levels)
        return c->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : MQTT_RC_UNSPECIFIED_ERROR;
    if (!engine_acl_allowed(en, cl, &c->who, cl->id, cl->id_len, ENGINE_SUBSCRIBE, filter, flen)) {
        COUNT(en, acl_denied_subscribe, 1);
        engine_log_acl(c, "SUBSCRIBE to", e->filter.ptr, e->filter.len);
        return c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_RC_UNSPECIFIED_ERROR;
    }
    uint8_t qos = e->qos > cfg->max_qos ? cfg->max_qos : e->qos;
    uint64_t opts = (uint64_t)qos | (e->no_local ? OPT_NO_LOCAL : 0) |
                    (e->retain_as_published ? OPT_RAP : 0) | ((uint64_t)e->retain_handling << 4) |
                    ((uint64_t)subid << 8);
    if (glen) {
        uint8_t r = subscribe_shared(en, cl, group, glen, filter, flen, opts, ps);
        return r < 0x80 ? qos : r; /* no retained messages on a shared subscription (3.8.4) */
    }
    bool walk;
    uint8_t r = subscribe_plain(c, ps, e, filter, flen, opts, seq, &walk);
    if (walk) {
        rc->qos = qos;
        rc->subid = subid;
        rc->version = c->version;
        rc->now_ms = en->now_ms;
        engine_fx_retain_lock(en, false);
        retain_match(en->g->retain, filter, flen, on_retained, rc);
        engine_fx_retain_unlock(en, false);
    }
    return r;
}

/* Nothing new to broadcast, but an earlier route change from this shard
 * (perhaps for this very filter) is still on its way: a barrier behind it
 * on every queue keeps the promise that a client holding its SUBACK
 * receives every later publish. */
static void suback_barrier(struct engine *en, struct pending_suback *ps)
{
    for (unsigned j = 0; j < en->g->shard_count; j++) {
        if (j == en->id)
            continue;
        struct engine_env *bar = calloc(1, sizeof(*bar));
        if (!bar) {
            LOG(LOG_LEVEL_ERROR, "out of memory for a route barrier");
            abort();
        }
        bar->type = ENGINE_ENV_BARRIER;
        bar->from_shard = (uint16_t)en->id;
        bar->pending = ps;
        ps->remaining++;
        en->route_acks_due++;
        engine_fx_post(en, j, engine_env_item(bar));
    }
}

void engine_handle_subscribe(struct engine_conn *c, const struct mqtt_subscribe *sp)
{
    struct engine *en = c->en;
    struct client *cl = c->client;
    if (c->version == MQTT_V5 && (sp->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) &&
        sp->props.subscription_ids[0] == 0) {
        engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "subscription identifier 0");
        return;
    }
    uint32_t subid = (sp->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
                         ? sp->props.subscription_ids[0]
                         : 0;
    struct pending_suback *ps = calloc(1, sizeof(*ps) + sp->count);
    if (!ps) {
        engine_close(c, "out of memory");
        return;
    }
    ps->c = c;
    ps->packet_id = sp->packet_id;
    ps->count = sp->count;
    struct retained_ctx rc = {.en = c->en, .cl = c->client, .ps = ps, .cap = 0};
    size_t off = 0;
    struct mqtt_sub_entry e;
    uint32_t i = 0;
    uint32_t seq = ++cl->sub_seq;
    if (seq == 0)
        seq = ++cl->sub_seq; /* 0 is "never touched" */
    while (codec_subscribe_next(sp, &off, c->version, &e) && i < sp->count)
        ps->reasons[i++] = subscribe_one(c, ps, &e, subid, seq, &rc);
    if (rc.dropped)
        COUNT(en, retained_backlog_dropped, rc.dropped);
    c->retained_pending += ps->retained_n;
    if (ps->remaining == 0 && en->route_acks_due > 0)
        suback_barrier(en, ps);
    engine_fx_hold(c);
    if (ps->remaining == 0)
        suback_complete(en, ps);
}

void engine_handle_unsubscribe(struct engine_conn *c, const struct mqtt_subscribe *sp)
{
    struct engine *en = c->en;
    struct client *cl = c->client;
    uint8_t reasons[256];
    uint8_t *rv = sp->count <= sizeof(reasons) ? reasons : malloc(sp->count);
    if (!rv) {
        engine_close(c, "out of memory");
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
        engine_unsubscribe_one(en, cl, s);
        sub_table_remove(&cl->subs, s);
        UNCOUNT(en, subscriptions, 1);
        rv[i++] = MQTT_RC_SUCCESS;
    }
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_UNSUBACK;
    p.u.suback.packet_id = sp->packet_id;
    p.u.suback.reasons.ptr = rv;
    p.u.suback.reasons.len = i;
    engine_write_packet(c, &p);
    if (rv != reasons)
        free(rv);
}
