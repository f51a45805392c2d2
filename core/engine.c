/*
 * The engine of one shard: its session table (client ids homed here),
 * the end of a connection (detach, will), deadlines, the envelopes other
 * shards send, and the life of a connection's protocol state.
 *
 * Runs on the thread that owns the engine; engine_init and engine_fini
 * also on the main thread before the shard starts / after it ended.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "siphash.h"

/* ---- the engine ------------------------------------------------------------ */

int engine_init(struct engine *en, struct engine_shared *g, unsigned id)
{
    memset(en, 0, sizeof(*en));
    en->g = g;
    en->cfg = g->cfg;
    en->id = id;
    en->subs = trie_create();
    en->routes = route_create();
    en->share_routes = trie_create();
    timer_wheel_init(&en->timers, 0);
    en->ctab_mask = 1023;
    en->ctab = calloc(en->ctab_mask + 1, sizeof(*en->ctab));
    if (!en->subs || !en->routes || !en->share_routes || !en->ctab) {
        engine_fini(en);
        return -ENOMEM;
    }
    return 0;
}

void engine_log_name(char *out, size_t cap, const uint8_t *s, size_t len)
{
    size_t o = 0;
    if (cap == 0)
        return;
    for (size_t i = 0; i < len; i++) {
        if (i == 64 || o + 8 > cap) {
            if (o + 4 <= cap)
                memcpy(out + o, "...", 3), o += 3;
            break;
        }
        uint8_t ch = s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
    }
    out[o] = '\0';
}

bool engine_refusal_log(struct engine *en, uint32_t *left_out)
{
    uint64_t s = en->now_ms / 1000u;
    if (s != en->refusal_log_s) {
        en->refusal_log_s = s;
        en->refusal_log_n = 0;
    }
    if (en->refusal_log_n >= ENGINE_REFUSAL_LOGS_PER_S) {
        en->refusal_log_dropped++;
        return false;
    }
    en->refusal_log_n++;
    *left_out = en->refusal_log_dropped;
    en->refusal_log_dropped = 0;
    return true;
}

void engine_log_acl(struct engine_conn *c, const char *what, const uint8_t *topic, size_t len)
{
    uint32_t left_out = 0;
    if (!log_enabled(LOG_LEVEL_NOTICE) || !engine_refusal_log(c->en, &left_out))
        return;
    char t[96], user[96] = "";
    engine_log_name(t, sizeof(t), topic, len);
    if (c->who.username)
        engine_log_name(user, sizeof(user), c->who.username, c->who.username_len);
    LOGCL(LOG_LEVEL_NOTICE, c, "%s '%s' refused by the ACL (%s%s%s from %s)%s%.0u%s", what, t,
          user[0] ? "username '" : "anonymous", user, user[0] ? "'" : "", c->who.peer,
          left_out ? " (and " : "", left_out, left_out ? " refusals not logged before it)" : "");
}

uint64_t engine_client_hash(const struct engine_shared *g, const uint8_t *id, size_t len)
{
    /* Keyed (SipHash under the broker's random key): a client cannot pick
     * ids that land on one shard or one bucket. The same on every shard. */
    return siphash24(g->hash_key, id, len);
}

struct session_limits engine_session_limits(const struct config *cfg, uint32_t inflight_max)
{
    struct session_limits lim = {
        .inflight_max = inflight_max,
        .queued_max = cfg->max_queued_messages,
        .queued_bytes_max = cfg->max_queued_bytes,
    };
    return lim;
}

uint32_t engine_expiry_cap(const struct config *cfg, uint32_t expiry_s)
{
    uint64_t cap_s = cfg->persistent_client_expiration_s;
    return (cap_s && expiry_s > cap_s) ? (uint32_t)cap_s : expiry_s;
}

/* ---- a connection's protocol state --------------------------------------------- */

void engine_conn_init(struct engine_conn *c, struct engine *en, uint64_t id)
{
    memset(c, 0, sizeof(*c));
    c->en = en;
    c->id = id;
    c->phase = ENGINE_NEW;
    c->who.addr.ss_family = AF_UNSPEC;
    c->created_ms = c->last_rx_ms = en->now_ms;
    engine_conn_arm(c); /* connect_timeout */
}

const uint8_t *engine_conn_client_id(const struct engine_conn *c, size_t *len)
{
    *len = c->client ? c->client->id_len : 0;
    return c->client ? c->client->id : NULL;
}

static void alias_free(struct engine_alias *v, uint32_t n)
{
    for (uint32_t i = 0; v && i < n; i++)
        free(v[i].topic);
    free(v);
}

void engine_conn_fini(struct engine_conn *c)
{
    if (timer_armed(&c->deadline.t))
        timer_cancel(&c->en->timers, &c->deadline.t);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->who.username);
    c->who.username = NULL;
    free(c->who.cert_identity);
    c->who.cert_identity = NULL;
    engine_connect_free(c->req);
    c->req = NULL;
    free(c->auth_reply);
    c->auth_reply = NULL;
    alias_free(c->alias_in, c->alias_in_max);
    c->alias_in = NULL;
    alias_free(c->alias_out, c->alias_out_max);
    c->alias_out = NULL;
    msg_unref(c->will);
    c->will = NULL;
}

/* ---- the session table ----------------------------------------------------------- */

struct client *engine_client_find(struct engine *en, const uint8_t *id, size_t len, uint64_t h)
{
    for (struct client *cl = en->ctab[h & en->ctab_mask]; cl; cl = cl->hnext)
        if (cl->hash == h && cl->id_len == len && memcmp(cl->id, id, len) == 0)
            return cl;
    return NULL;
}

static void client_table_grow(struct engine *en)
{
    uint32_t mask = en->ctab_mask * 2 + 1;
    struct client **tab = calloc((size_t)mask + 1, sizeof(*tab));
    if (!tab)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i <= en->ctab_mask; i++) {
        for (struct client *cl = en->ctab[i], *next; cl; cl = next) {
            next = cl->hnext;
            cl->hnext = tab[cl->hash & mask];
            tab[cl->hash & mask] = cl;
        }
    }
    free(en->ctab);
    en->ctab = tab;
    en->ctab_mask = mask;
}

struct client *engine_client_create(struct engine *en, const uint8_t *id, size_t len, uint64_t h)
{
    ASSERT(h % en->g->shard_count == en->id); /* a session lives on its home shard only */
    struct client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    cl->id = malloc(len + 1);
    struct session_limits lim = engine_session_limits(en->cfg, en->cfg->max_inflight_messages);
    if (!cl->id || session_init(&cl->s, &lim)) {
        free(cl->id);
        free(cl);
        return NULL;
    }
    memcpy(cl->id, id, len);
    cl->id[len] = 0;
    cl->id_len = (uint16_t)len;
    cl->hash = h;
    cl->subs.key = en->g->hash_key;
    /* Never reused, unlike the struct's address: shard in the low bits,
     * the shard's own count above. */
    cl->uid = FLOW_UID_MAKE(++en->next_client_seq, en->id);
    cl->hnext = en->ctab[h & en->ctab_mask];
    en->ctab[h & en->ctab_mask] = cl;
    if (++en->client_count > en->ctab_mask)
        client_table_grow(en);
    atomic_fetch_add_explicit(&en->g->session_count, 1, memory_order_relaxed);
    return cl;
}

void engine_client_destroy(struct engine *en, struct client *cl, bool unroute)
{
    timer_cancel(&en->timers, &cl->timer.t);
    flow_release(en, cl);
    struct client **pp = &en->ctab[cl->hash & en->ctab_mask];
    while (*pp && *pp != cl)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = cl->hnext;
    en->client_count--;
    atomic_fetch_sub_explicit(&en->g->session_count, 1, memory_order_relaxed);
    uint32_t pos = 0;
    for (struct sub_entry *s = NULL; unroute && (s = sub_table_next(&cl->subs, &pos, s));)
        engine_unsubscribe_one(en, cl, s);
    UNCOUNT(en, subscriptions, cl->subs.count);
    sub_table_fini(&cl->subs);
    engine_rb_discard(cl);
    flow_client_fini(cl);
    session_fini(&cl->s);
    msg_unref(cl->pending_will);
    free(cl->acl_memo);
    free(cl->who.username);
    free(cl->who.cert_identity);
    free(cl->id);
    free(cl);
}

/* Publishes a will (or a due delayed will). */
void engine_publish_will(struct engine *en, struct msg *will)
{
    msg_start_expiry(will, en->now_ms);
    if (will->retain && en->cfg->retain_available)
        engine_retain_store(en, will);
    engine_route_publish(en, will);
    msg_unref(will);
}

/* The connection no longer speaks for its client: the session stays or
 * ends by its expiry, the will goes out unless the client said goodbye. */
void engine_detach(struct engine_conn *c)
{
    struct engine *en = c->en;
    struct client *cl = c->client;
    c->client = NULL;
    struct msg *will = c->will;
    c->will = NULL;
    if (!cl)
        goto will;
    if (cl->conn == c)
        cl->conn = NULL;
    flow_release(en, cl);
    if (!cl->conn) {
        engine_rb_flush(en, cl);
        share_member_gone(en, cl);
    }
    cl->disconnected_ms = en->now_ms;
    if (will && c->will_delay_s && cl->expiry_s) {
        /* 5.0 will delay: sent when the delay or the session ends,
         * whichever comes first, unless the session resumes before
         * [MQTT-3.1.3-9]. */
        uint64_t delay_s = c->will_delay_s < cl->expiry_s ? c->will_delay_s : cl->expiry_s;
        msg_unref(cl->pending_will);
        cl->pending_will = will;
        cl->will_at_ms = en->now_ms + delay_s * 1000u;
        will = NULL;
    }
    if (cl->expiry_s == 0)
        engine_client_destroy(en, cl, true);
    else
        engine_client_arm(en, cl);
will:
    if (will)
        engine_publish_will(en, will);
}

void engine_closed(struct engine_conn *c)
{
    /* One line at the default level per connection that got in, as for
     * its connect: who, from where and why it ended. */
    if (c->client)
        LOGCL(LOG_LEVEL_NOTICE, c, "disconnected from %s: %s%s%s%.0x%s", c->who.peer,
              c->why              ? c->why
              : c->got_disconnect ? "DISCONNECT"
                                  : "connection lost",
              c->why_reason ? " (protocol error, reason 0x" : "",
              c->why_reason && c->why_reason < 0x10 ? "0" : "", c->why_reason,
              c->why_reason ? ")" : "");
    engine_detach(c);
    c->phase = ENGINE_CLOSED;
}

void engine_env_discard(struct engine_env *e)
{
    bool acked = e->type == ENGINE_ENV_ROUTE || e->type == ENGINE_ENV_BARRIER ||
                 e->type == ENGINE_ENV_ROUTE_ACK;
    struct pending_suback *ps = acked ? e->pending : NULL;
    if (!ps || --ps->remaining > 0)
        return;
    engine_pending_discard(ps);
}

void engine_handle_env(struct engine *en, struct engine_env *e)
{
    switch (e->type) {
    case ENGINE_ENV_ROUTE:
        engine_route_apply(en, e->filter, e->group_len, e->slot, e->filter + e->group_len,
                           e->filter_len, e->from_shard, e->present);
        if (e->pending) {
            /* The envelope goes back as the acknowledgement. */
            unsigned to = e->from_shard;
            e->type = ENGINE_ENV_ROUTE_ACK;
            e->from_shard = (uint16_t)en->id;
            engine_fx_post(en, to, engine_env_item(e));
            return;
        }
        break;
    case ENGINE_ENV_BARRIER:
        /* Everything the sender posted before this has been applied here
         * (the queue is FIFO): say so. */
        e->type = ENGINE_ENV_ROUTE_ACK;
        {
            unsigned to = e->from_shard;
            e->from_shard = (uint16_t)en->id;
            engine_fx_post(en, to, engine_env_item(e));
        }
        return;
    case ENGINE_ENV_ROUTE_ACK:
        engine_route_ack(en, e->pending);
        break;
    case ENGINE_ENV_SHARED:
        share_deliver(en, e->key, e->msg, e->tried);
        msg_unref(e->msg);
        break;
    case ENGINE_ENV_HOLD:
        flow_apply(en, e->key, e->hash, e->holder, e->present);
        break;
    default:
        LOG(LOG_LEVEL_ERROR, "unknown cross-shard envelope %u", e->type);
        abort();
    }
    free(e);
}

/* ---- deadlines -------------------------------------------------------------- */

void engine_shutdown_notice(struct engine_conn *c)
{
    if (c->phase == ENGINE_ACTIVE)
        engine_send_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN, NULL);
    engine_close(c, "shutting down");
}

/* The earliest protocol deadline of a connection in its phase (UINT64_MAX:
 * none). A keepalive deadline moves with every receive; it is found
 * stale when it fires, and armed again from the last receive, so the
 * wheel is touched once per keepalive period, not per packet. */
static uint64_t conn_deadline(const struct engine_conn *c)
{
    uint64_t timeout_ms = engine_cfg(c)->connect_timeout_ms;
    uint64_t due = UINT64_MAX;
    if (c->phase == ENGINE_NEW || c->phase == ENGINE_AUTH)
        due = c->created_ms + timeout_ms + 1;
    else if (c->phase == ENGINE_VERIFY)
        due = c->verify_started_ms + timeout_ms + 1;
    else if (c->phase == ENGINE_ACTIVE && (c->pause & ENGINE_PAUSE_RATE))
        due = c->rate.until_ms; /* no keepalive while it is us not reading */
    else if (c->phase == ENGINE_ACTIVE && c->keepalive_s)
        due = c->last_rx_ms + (uint64_t)c->keepalive_s * 1500u + 1;
    if (c->auth_running && c->auth_started_ms + timeout_ms + 1 < due)
        due = c->auth_started_ms + timeout_ms + 1;
    return due;
}

void engine_conn_arm(struct engine_conn *c)
{
    uint64_t due =
        c->phase == ENGINE_CLOSED || c->phase == ENGINE_PLACED ? UINT64_MAX : conn_deadline(c);
    c->deadline.kind = ENGINE_TIMER_CONN;
    if (due == UINT64_MAX)
        timer_cancel(&c->en->timers, &c->deadline.t);
    else
        timer_arm(&c->en->timers, &c->deadline.t, due);
}

/* A connection's deadline fell due: what ran out, if anything did. */
static void conn_timeout(struct engine_conn *c, uint64_t now_ms)
{
    uint64_t timeout_ms = engine_cfg(c)->connect_timeout_ms;
    if (c->phase == ENGINE_NEW && now_ms - c->created_ms > timeout_ms) {
        engine_close(c, "no CONNECT within connect_timeout");
        return;
    }
    if (c->phase == ENGINE_VERIFY && now_ms - c->verify_started_ms > timeout_ms) {
        /* The check's answer finds the connection closed (engine_verified). */
        engine_close(c, "password check not done within connect_timeout");
        return;
    }
    if (c->auth_running && now_ms - c->auth_started_ms > timeout_ms) {
        /* An exchange the client does not finish: before CONNACK the
         * connect timeout, after it the same bound for re-authentication. */
        engine_auth_fail(c, MQTT_RC_NOT_AUTHORIZED,
                         "authentication not completed within connect_timeout");
        return;
    }
    if (c->phase == ENGINE_AUTH && now_ms - c->created_ms > timeout_ms) {
        engine_auth_fail(c, MQTT_RC_NOT_AUTHORIZED, "no CONNACK within connect_timeout");
        return;
    }
    if (c->phase == ENGINE_ACTIVE && engine_rate_timeout(c, now_ms)) {
        engine_conn_arm(c);
        return;
    }
    if (c->phase == ENGINE_ACTIVE && c->keepalive_s &&
        now_ms - c->last_rx_ms > (uint64_t)c->keepalive_s * 1500u) {
        /* One and a half keepalive periods of silence [MQTT-3.1.2-22]
         * (3.1.1: [MQTT-3.1.2-24]). */
        LOGCL(LOG_LEVEL_INFO, c, "keepalive timeout");
        engine_send_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, NULL);
        engine_close(c, "keepalive timeout");
        return;
    }
    engine_conn_arm(c); /* not yet: a receive moved it */
}

void engine_client_arm(struct engine *en, struct client *cl)
{
    uint64_t due = UINT64_MAX;
    if (cl->conn) {
        if (cl->holding_n)
            due = en->now_ms + FLOW_CHECK_MS; /* a stale subscriber's holds end */
    } else {
        if (cl->pending_will)
            due = cl->will_at_ms;
        if (cl->expiry_s != UINT32_MAX &&
            cl->disconnected_ms + (uint64_t)cl->expiry_s * 1000u < due)
            due = cl->disconnected_ms + (uint64_t)cl->expiry_s * 1000u;
    }
    cl->timer.kind = ENGINE_TIMER_CLIENT;
    if (due == UINT64_MAX)
        timer_cancel(&en->timers, &cl->timer.t);
    else
        timer_arm(&en->timers, &cl->timer.t, due);
}

/* A client's timer fell due: its holds are checked (connected), or its
 * delayed will goes out and its session ends (disconnected). */
static void client_timeout(struct engine *en, struct client *cl, uint64_t now_ms)
{
    if (cl->conn) {
        flow_drained(en, cl); /* a session may have gone stale */
        engine_client_arm(en, cl);
        return;
    }
    if (cl->pending_will && now_ms >= cl->will_at_ms) {
        struct msg *w = cl->pending_will;
        cl->pending_will = NULL;
        engine_publish_will(en, w);
    }
    if (cl->expiry_s != UINT32_MAX &&
        now_ms - cl->disconnected_ms >= (uint64_t)cl->expiry_s * 1000u) {
        LOGC(LOG_LEVEL_INFO, cl->id, cl->id_len, "session expired");
        engine_client_destroy(en, cl, true);
        return;
    }
    engine_client_arm(en, cl);
}

struct fire_ctx {
    struct engine *en;
    uint64_t now_ms;
};

static void on_timer(struct timer *t, void *ctx)
{
    struct fire_ctx *fc = ctx;
    struct engine_timer *et = TIMER_OWNER(t, struct engine_timer, t);
    switch (et->kind) {
    case ENGINE_TIMER_CONN:
        conn_timeout(TIMER_OWNER(et, struct engine_conn, deadline), fc->now_ms);
        break;
    case ENGINE_TIMER_CLIENT:
        client_timeout(fc->en, TIMER_OWNER(et, struct client, timer), fc->now_ms);
        break;
    case ENGINE_TIMER_RUNTIME:
        engine_fx_timer(fc->en, et);
        break;
    default:
        ASSERT(!"a timer of no known kind");
    }
}

unsigned engine_run_timers(struct engine *en, uint64_t now_ms, unsigned budget)
{
    struct fire_ctx fc = {.en = en, .now_ms = now_ms};
    return timer_expire(&en->timers, now_ms, budget, on_timer, &fc);
}

uint64_t engine_next_deadline(const struct engine *en)
{
    return timer_next_due(&en->timers);
}

void engine_fini(struct engine *en)
{
    share_fini(en);
    for (unsigned i = 0; i < ENGINE_ENC_SLOTS; i++) {
        msg_unref(en->enc[i].msg);
        en->enc[i].msg = NULL;
        buf_free(&en->enc[i].bytes);
    }
    for (uint32_t i = 0; en->ctab && i <= en->ctab_mask; i++) {
        for (struct client *cl = en->ctab[i], *next; cl; cl = next) {
            next = cl->hnext;
            engine_client_destroy(en, cl, false);
        }
    }
    free(en->ctab);
    en->ctab = NULL;
    trie_destroy(en->subs);
    trie_destroy(en->share_routes);
    route_destroy(en->routes);
    en->subs = en->share_routes = NULL;
    en->routes = NULL;
    timer_wheel_fini(&en->timers);
}

void engine_thread_exit(void)
{
    engine_deliver_thread_exit();
    share_thread_exit();
}
