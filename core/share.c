/*
 * Shared subscriptions ($share/{group}/{filter}, MQTT 4.8.2) across shards.
 *
 * A share group is (group, filter), named by a 64-bit key. Each shard keeps
 * the members it owns (sessions homed here) in a small table, and a
 * replica of which shards have members of which groups (en->share_routes: a
 * subscription trie with one entry per member, whose owner encodes the
 * shard and a slot, and whose opaque value is the key). Replica changes travel as route envelopes
 * with the group set, exactly like plain route changes, and SUBACK waits for them.
 *
 * A publish is matched against the replica once; for every group it hits,
 * the publishing shard picks one of the group's members' shards in turn and
 * hands the message to it; that shard picks one member, preferring a
 * connected one with room in its window. A member whose connection goes
 * away hands its not-yet-acknowledged QoS 1 and its queued messages on to
 * another member [MQTT-4.8.2-4..6 allow it; QoS 2 in flight stays].
 *
 * Everything here runs on the owning shard's thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

struct share_member {
    struct client *cl;
    uint64_t opts;
};

struct share_group {
    struct share_group *next; /* hash chain */
    uint64_t key;
    uint32_t rr;
    uint32_t count, cap;
    struct share_member *members;
    uint16_t group_len, filter_len;
    uint8_t data[]; /* group, then filter */
};

uint64_t share_key(const struct engine_shared *g, const uint8_t *group, size_t glen,
                   const uint8_t *filter, size_t flen)
{
    /* SipHash under the broker's secret (random at start-up): names are
     * the clients' choice, and with an unkeyed hash such as FNV-1a one
     * could pick a group whose key collides with another's and receive its
     * messages [issue 7 defect 15]. The filter is hashed under a key that
     * depends on the group's hash, so (group, filter) pairs cannot be
     * shifted into each other. Where the bytes are at hand (joining,
     * leaving) groups are also compared by them. */
    uint64_t h = sub_table_hash(g->hash_key, group, glen, filter, flen);
    return h ? h : 1; /* 0 means "not shared" in a delivery */
}

static struct share_group **bucket(struct engine *en, uint64_t key)
{
    return &en->share_tab[key & (ENGINE_SHARE_TABLE_SIZE - 1)];
}

static struct share_group *group_find(struct engine *en, uint64_t key)
{
    for (struct share_group *g = *bucket(en, key); g; g = g->next)
        if (g->key == key)
            return g;
    return NULL;
}

static struct share_group *group_find_bytes(struct engine *en, uint64_t key, const uint8_t *group,
                                            size_t glen, const uint8_t *filter, size_t flen)
{
    for (struct share_group *g = *bucket(en, key); g; g = g->next)
        if (g->key == key && g->group_len == glen && g->filter_len == flen &&
            memcmp(g->data, group, glen) == 0 && memcmp(g->data + glen, filter, flen) == 0)
            return g;
    return NULL;
}

int share_join(struct engine *en, struct client *cl, const uint8_t *group, size_t glen,
               const uint8_t *filter, size_t flen, uint64_t opts, uint32_t *count)
{
    uint64_t key = share_key(en->g, group, glen, filter, flen);
    struct share_group *g = group_find_bytes(en, key, group, glen, filter, flen);
    *count = 0;
    if (!g) {
        if (group_find(en, key))
            return -EEXIST; /* another group's key: refused rather than mixed */
        g = calloc(1, sizeof(*g) + glen + flen);
        if (!g)
            return -ENOMEM;
        g->key = key;
        g->group_len = (uint16_t)glen;
        g->filter_len = (uint16_t)flen;
        memcpy(g->data, group, glen);
        memcpy(g->data + glen, filter, flen);
        g->next = *bucket(en, key);
        *bucket(en, key) = g;
    }
    for (uint32_t i = 0; i < g->count; i++) {
        if (g->members[i].cl == cl) {
            g->members[i].opts = opts;
            *count = g->count;
            return 1;
        }
    }
    if (g->count == g->cap) {
        uint32_t cap = g->cap ? g->cap * 2 : 4;
        struct share_member *m = realloc(g->members, cap * sizeof(*m));
        if (!m)
            return -ENOMEM; /* an empty new group is reaped by share_leave's caller */
        g->members = m;
        g->cap = cap;
    }
    g->members[g->count].cl = cl;
    g->members[g->count].opts = opts;
    g->count++;
    *count = g->count;
    return 0;
}

bool share_leave(struct engine *en, struct client *cl, const uint8_t *group, size_t glen,
                 const uint8_t *filter, size_t flen, uint32_t *count)
{
    uint64_t key = share_key(en->g, group, glen, filter, flen);
    struct share_group *g = group_find_bytes(en, key, group, glen, filter, flen);
    bool removed = false;
    *count = 0;
    if (!g)
        return false;
    for (uint32_t i = 0; i < g->count; i++) {
        if (g->members[i].cl == cl) {
            g->members[i] = g->members[--g->count];
            removed = true;
            break;
        }
    }
    *count = g->count;
    if (g->count == 0) {
        struct share_group **pp = bucket(en, key);
        while (*pp != g)
            pp = &(*pp)->next;
        *pp = g->next;
        free(g->members);
        free(g);
    }
    return removed;
}

/* Collected replica matches for one publish: (key, shard) pairs. */
struct share_hit {
    uint64_t key;
    unsigned shard;
};

struct hits {
    struct share_hit *v;
    uint32_t n, cap;
};

/* share_scratch serves a publish's match; share_retry a message passed on
 * by share_deliver, which can run inside a dispatch over share_scratch. */
static _Thread_local struct hits share_scratch, share_retry;

static void on_share_route(void *ctx, void *owner, uint64_t opts, const uint8_t *group, size_t glen)
{
    struct hits *h = ctx;
    (void)group;
    (void)glen;
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 16;
        struct share_hit *v = realloc(h->v, cap * sizeof(*v));
        if (!v)
            return;
        h->v = v;
        h->cap = cap;
    }
    /* One replica entry per member: owner = shard + 1 + SHARDS_MAX x slot,
     * so drawing among hits weighs shards by their member count. */
    h->v[h->n].key = opts;
    h->v[h->n].shard = (unsigned)(((uintptr_t)owner - 1) % SHARDS_MAX);
    h->n++;
}

/* Can this member take a message now without queueing it? */
static bool member_ready(const struct share_member *m, uint8_t qos)
{
    const struct client *cl = m->cl;
    if (!cl->conn || cl->conn->phase != ENGINE_ACTIVE)
        return false;
    if (qos == 0)
        return cl->conn->out.len < cl->conn->en->cfg->max_output_buffer;
    return cl->s.queued == 0 && cl->s.inflight_live < cl->s.window;
}

/* The ACL, with the member's own identity (each member may have another). */
static bool member_may_read(struct engine *en, const struct share_member *m, const struct msg *msg)
{
    struct client *cl = m->cl;
    return engine_acl_allowed(en, cl, &cl->who, cl->id, cl->id_len, ENGINE_READ, msg_topic(msg),
                              msg->topic_len);
}

static void deliver_to_member(struct engine *en, struct share_group *g, struct share_member *m,
                              struct msg *msg)
{
    uint64_t o = m->opts;
    struct delivery d;
    memset(&d, 0, sizeof(d));
    d.msg = msg_ref(msg);
    d.qos = msg->qos < (o & 3u) ? msg->qos : (uint8_t)(o & 3u);
    d.retain = (o & 8u) && msg->retain; /* retain as published */
    uint32_t subid = (uint32_t)(o >> 8);
    if (subid && m->cl->version == MQTT_V5) {
        d.subids[0] = subid;
        d.subid_count = 1;
    }
    d.share_key = g->key;
    engine_deliver(en, m->cl, &d);
}

/* Picks a member round-robin: the next one that can take the message now,
 * else the next connected one, else the next one (its session queues it),
 * among those the ACL lets read it. False when none here may. */
static bool group_deliver(struct engine *en, struct share_group *g, struct msg *msg,
                          const struct client *avoid)
{
    uint32_t n = g->count;
    if (n == 0)
        return true; /* nobody to refuse it: dropped as before */
    struct share_member *pick = NULL;
    uint32_t denied = 0;
    for (int pass = 0; pass < 3 && !pick; pass++) {
        for (uint32_t k = 0; k < n; k++) {
            struct share_member *m = &g->members[(g->rr + k) % n];
            if (m->cl == avoid && n > 1)
                continue;
            bool ok = pass == 0   ? member_ready(m, msg->qos)
                      : pass == 1 ? (m->cl->conn && m->cl->conn->phase == ENGINE_ACTIVE)
                                  : true;
            if (ok && !member_may_read(en, m, msg)) {
                denied++;
                continue;
            }
            if (ok) {
                pick = m;
                g->rr = (uint32_t)((m - g->members) + 1) % n;
                break;
            }
        }
    }
    if (pick)
        deliver_to_member(en, g, pick, msg);
    return pick || !denied;
}

static bool dispatch(struct engine *en, struct hits *h, uint64_t key, struct msg *msg,
                     uint64_t tried);

/* Does the replica name a member of the group key on another shard? */
static bool member_elsewhere(const struct engine *en, const struct hits *h, uint64_t key)
{
    for (uint32_t i = 0; i < h->n; i++)
        if (h->v[i].key == key && h->v[i].shard != en->id)
            return true;
    return false;
}

#define SHARD_BIT(s) (UINT64_C(1) << (s))
_Static_assert(SHARDS_MAX <= 64, "a bit per shard in a shared delivery's tried mask");

void share_deliver(struct engine *en, uint64_t key, struct msg *msg, uint64_t tried)
{
    struct share_group *g = group_find(en, key);
    if (g && group_deliver(en, g, msg, NULL))
        return;
    /* Either no member here may read it (the ACL: members may have other
     * rights), or the group's last member here left after the sender chose
     * us: its replica entries here are gone already (share_leave updates
     * this shard's replica before it tells the others). The message goes
     * on to a shard with members that has not had it yet (tried: one bit
     * per shard, so it visits each at most once). Route changes and
     * messages between two shards travel in one FIFO queue, so the next
     * shard has applied this one's removal before it sees the message.
     * Dropped only when no member anywhere may take it. */
    tried |= SHARD_BIT(en->id);
    struct hits *h = &share_retry;
    h->n = 0;
    trie_match(en->share_routes, msg_topic(msg), msg->topic_len, on_share_route, h);
    if (!dispatch(en, h, key, msg, tried)) {
        if (g)
            COUNT(en, acl_denied_read, 1);
        else
            COUNT(en, msgs_dropped[METRICS_DROP_NO_SHARE_MEMBER], 1);
    }
}

static void send_to_shard(struct engine *en, unsigned to, uint64_t key, struct msg *msg,
                          uint64_t tried)
{
    if (to == en->id) {
        share_deliver(en, key, msg, tried);
        return;
    }
    struct engine_env *e = calloc(1, sizeof(*e));
    if (!e) {
        LOG(LOG_LEVEL_ERROR, "out of memory for a shared delivery");
        abort();
    }
    e->type = ENGINE_ENV_SHARED;
    e->from_shard = (uint16_t)en->id;
    e->key = key;
    e->tried = tried;
    e->msg = msg_ref(msg);
    engine_fx_post(en, to, engine_env_item(e));
}

/* Among the hits for one key, the shards holding members that are not in
 * tried: one is chosen round-robin. False when there is none. */
static bool dispatch(struct engine *en, struct hits *h, uint64_t key, struct msg *msg,
                     uint64_t tried)
{
    uint32_t nc = 0;
    for (uint32_t i = 0; i < h->n; i++)
        nc += h->v[i].key == key && !(tried & SHARD_BIT(h->v[i].shard));
    if (nc == 0)
        return false;
    /* A turn counter per group: one shared by all groups would hand each
     * of two groups matching the same topics only every other value. A
     * small direct-mapped table is enough: a collision only restarts a
     * group's rotation. */
    struct engine_share_rr *rr = &en->share_rr_tab[key & (ENGINE_SHARE_RR_SLOTS - 1)];
    if (rr->key != key) {
        rr->key = key;
        rr->next = 0;
    }
    uint32_t pick = rr->next++ % nc;
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->v[i].key != key || (tried & SHARD_BIT(h->v[i].shard)))
            continue;
        if (pick-- == 0) {
            send_to_shard(en, h->v[i].shard, key, msg, tried);
            return true;
        }
    }
    return false;
}

uint32_t share_route_publish(struct engine *en, struct msg *msg)
{
    uint32_t groups = 0;
    struct hits *h = &share_scratch;
    h->n = 0;
    trie_match(en->share_routes, msg_topic(msg), msg->topic_len, on_share_route, h);
    /* One copy per group: each distinct key once (hits are few). */
    for (uint32_t i = 0; i < h->n; i++) {
        bool seen = false;
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = h->v[j].key == h->v[i].key;
        if (!seen) {
            dispatch(en, h, h->v[i].key, msg, 0);
            groups++;
        }
    }
    return groups;
}

struct redispatch_ctx {
    struct engine *en;
    struct client *from;
    uint32_t moved;
};

static void redispatch_one(void *ctx, struct delivery *d)
{
    struct redispatch_ctx *rc = ctx;
    struct engine *en = rc->en;
    struct msg *msg = d->msg;
    struct share_group *g = group_find(en, d->share_key);
    /* Another member here that is connected takes it; otherwise one on
     * another shard, found through the replica; otherwise another member
     * here, connected or not. */
    bool local_connected = false, local_other = false;
    for (uint32_t i = 0; g && i < g->count; i++) {
        const struct client *m = g->members[i].cl;
        if (m == rc->from)
            continue;
        local_other = true;
        local_connected = local_connected || (m->conn && m->conn->phase == ENGINE_ACTIVE);
    }
    if (local_connected) {
        group_deliver(en, g, msg, rc->from);
    } else {
        struct hits *h = &share_scratch;
        h->n = 0;
        trie_match(en->share_routes, msg_topic(msg), msg->topic_len, on_share_route, h);
        if (member_elsewhere(en, h, d->share_key)) {
            dispatch(en, h, d->share_key, msg, SHARD_BIT(en->id));
        } else if (local_other) {
            group_deliver(en, g, msg, rc->from);
        } else {
            /* The group's only member: the message stays in its session,
             * beyond the queue bound if need be (it was stored and
             * acknowledged once already); moving it back through the bound would
             * drop what does not fit. */
            session_requeue(&rc->from->s, d);
            return;
        }
    }
    msg_unref(msg);
    d->msg = NULL;
    rc->moved++;
}

void share_member_gone(struct engine *en, struct client *cl)
{
    if (!cl->share_count)
        return;
    struct redispatch_ctx rc = {.en = en, .from = cl, .moved = 0};
    session_take_shared(&cl->s, redispatch_one, &rc);
    if (rc.moved)
        LOGC(LOG_LEVEL_DEBUG, cl->id, cl->id_len,
             "%u shared-subscription messages handed to other members", rc.moved);
}

void share_fini(struct engine *en)
{
    for (uint32_t i = 0; i < ENGINE_SHARE_TABLE_SIZE; i++) {
        for (struct share_group *g = en->share_tab[i], *next; g; g = next) {
            next = g->next;
            free(g->members);
            free(g);
        }
        en->share_tab[i] = NULL;
    }
}

void share_thread_exit(void)
{
    free(share_scratch.v);
    memset(&share_scratch, 0, sizeof(share_scratch));
    free(share_retry.v);
    memset(&share_retry, 0, sizeof(share_retry));
}
