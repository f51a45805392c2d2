/*
 * CONNECT, in steps with one job each: decode it once into an owned
 * request (validate), decide who the client is (authenticate, perhaps off
 * the shard or through an enhanced authentication exchange), choose the
 * session's home shard (place: the connection moves there with the
 * request), and there take the session over, resume or create it (attach)
 * and answer with the CONNACK.
 *
 * Runs on the thread that owns the connection: the accepting shard until
 * placement, the home shard after.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "topic.h"

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
    uint8_t *d = malloc(len + 1);
    if (!d)
        return NULL;
    if (len)
        memcpy(d, p, len);
    d[len] = 0;
    return d;
}

void engine_connect_free(struct engine_connect *req)
{
    if (!req)
        return;
    free(req->client_id);
    free(req->username);
    msg_unref(req->will);
    free(req);
}

static struct msg *will_create(const struct mqtt_connect *cn)
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
     * engine_publish_will(). */
    return msg_create(&p, cn->will_topic.ptr, cn->will_topic.len, 0, 0);
}

/* What the broker refuses in a well-formed CONNECT before anyone is asked
 * who the client is: 0, or the reason (with *why). */
static uint8_t connect_refusal(const struct engine_conn *c, const struct mqtt_connect *cn,
                               const char **why)
{
    const struct config *cfg = engine_cfg(c);
    if (cn->client_id.len == 0 && cn->version == MQTT_V31) {
        *why = "empty client id (MQTT 3.1)"; /* 3.1 requires 1 to 23 characters */
        return MQTT_RC_CLIENT_ID_NOT_VALID;
    }
    if (cn->client_id.len == 0 && cn->version != MQTT_V5 && !cn->clean_start) {
        *why = "empty client id without clean session"; /* [MQTT-3.1.3-8] */
        return MQTT_RC_CLIENT_ID_NOT_VALID;
    }
    if (cn->client_id.len > CLIENT_ID_LEN_MAX) {
        *why = "client id too long";
        return MQTT_RC_CLIENT_ID_NOT_VALID;
    }
    if (cn->version != MQTT_V5 &&
        (cn->keepalive_s > cfg->max_keepalive_s ||
         (cn->keepalive_s == 0 && cfg->max_keepalive_s < KEEPALIVE_MAX_S))) {
        /* 3.1.1 has no way to tell the client another keepalive: refuse, as
         * mosquitto does. Keepalive 0 (never) is above any maximum: an idle
         * socket must be closed eventually [issue 7 defect 10]. */
        *why = "keepalive over max_keepalive";
        return MQTT_RC_CLIENT_ID_NOT_VALID;
    }
    if (cn->will_flag &&
        topic_levels(cn->will_topic.ptr, cn->will_topic.len) > cfg->max_topic_levels) {
        *why = "will topic over max_topic_levels";
        return MQTT_RC_TOPIC_NAME_INVALID;
    }
    if (cn->will_flag && cn->will_qos > cfg->max_qos) {
        *why = "will QoS over max_qos";
        return MQTT_RC_QOS_NOT_SUPPORTED;
    }
    if (cn->will_flag && cn->will_retain && !cfg->retain_available) {
        *why = "retained will, retain unavailable";
        return MQTT_RC_RETAIN_NOT_SUPPORTED;
    }
    return 0;
}

/* The 5.0 properties later steps need, as values. */
static void request_props(struct engine_connect *r, const struct mqtt_connect *cn)
{
    const struct mqtt_props *p = &cn->props;
    bool v5 = cn->version == MQTT_V5;
    r->has_session_expiry = v5 && (p->present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY));
    r->session_expiry_s = r->has_session_expiry ? p->session_expiry_s : 0;
    if (v5 && (p->present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM)))
        r->receive_maximum = p->receive_maximum;
    if (v5 && (p->present & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE)))
        r->maximum_packet_size = p->maximum_packet_size;
    if (v5 && (p->present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM)))
        r->topic_alias_maximum = p->topic_alias_maximum;
    r->request_response_info = v5 &&
                               (p->present & MQTT_PROP_BIT(MQTT_PROP_REQUEST_RESPONSE_INFO)) &&
                               p->request_response_info;
    r->request_problem_info = !v5 ||
                              !(p->present & MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO)) ||
                              p->request_problem_info;
    r->will_delay_s = (v5 && (cn->will_props.present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY)))
                          ? cn->will_props.will_delay_s
                          : 0;
}

/* Decodes the CONNECT into an owned request. NULL: out of memory. */
static struct engine_connect *request_create(const struct engine_conn *c,
                                             const struct mqtt_connect *cn)
{
    struct engine_connect *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->version = cn->version;
    r->clean_start = cn->clean_start;
    r->keepalive_s = cn->keepalive_s;
    if (cn->client_id.len == 0) {
        /* [MQTT-3.1.3-6]: the server assigns a unique id. Start time and
         * connection number make it unique across shards and restarts. */
        char assigned[48];
        int n = snprintf(assigned, sizeof(assigned), "ringmq-%llx-%llx",
                         (unsigned long long)c->en->g->start_ms, (unsigned long long)c->id);
        r->client_id = dup_bytes((const uint8_t *)assigned, (size_t)n);
        r->client_id_len = (uint16_t)n;
        r->assigned = true;
    } else {
        r->client_id = dup_bytes(cn->client_id.ptr, cn->client_id.len);
        r->client_id_len = (uint16_t)cn->client_id.len;
    }
    if (cn->has_username) {
        r->username = dup_bytes(cn->username.ptr, cn->username.len);
        r->username_len = cn->username.len;
    }
    request_props(r, cn);
    if (cn->will_flag)
        r->will = will_create(cn);
    if (!r->client_id || (cn->has_username && !r->username) || (cn->will_flag && !r->will)) {
        engine_connect_free(r);
        return NULL;
    }
    return r;
}

/* The username and password, decided (perhaps off the shard). */
static enum engine_status connect_login(struct engine_conn *c, const struct mqtt_connect *cn)
{
    struct engine_connect *r = c->req;
    struct engine_login l = {
        .client_id = r->client_id,
        .client_id_len = r->client_id_len,
        .has_username = cn->has_username,
        .username = cn->username.ptr,
        .username_len = cn->username.len,
        .has_password = cn->has_password,
        .password = cn->password.ptr,
        .password_len = cn->password.len,
    };
    const char *why = NULL;
    uint8_t rc = engine_fx_login(c, &l, &why);
    if (rc == ENGINE_LOGIN_PENDING) {
        /* Input meanwhile is kept unparsed (reading pauses at the stash
         * bound); engine_verified goes on. */
        c->phase = ENGINE_VERIFY;
        c->verify_started_ms = c->en->now_ms;
        engine_conn_arm(c);
        return ENGINE_CONSUMED;
    }
    if (rc != MQTT_RC_SUCCESS && why) {
        engine_connack_fail(c, rc, why); /* the runtime said why */
        return ENGINE_CLOSING;
    }
    return engine_verified(c, rc);
}

enum engine_status engine_verified(struct engine_conn *c, uint8_t rc)
{
    if (c->phase != ENGINE_NEW && c->phase != ENGINE_VERIFY)
        return ENGINE_CLOSING; /* closed meanwhile (connect_timeout, the peer left) */
    struct engine_connect *r = c->req;
    bool waited = c->phase == ENGINE_VERIFY;
    c->phase = ENGINE_NEW;
    if (rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD)
        engine_fx_login_failed(c);
    if (rc == MQTT_RC_SERVER_BUSY)
        COUNT(c->en, auth_busy, 1); /* not every 0x89: overload has its own count */
    if (rc != MQTT_RC_SUCCESS) {
        engine_connack_fail(c, rc,
                            rc == MQTT_RC_SERVER_UNAVAILABLE ? "password check not available"
                            : rc == MQTT_RC_SERVER_BUSY      ? "password checks queue full"
                            : r->username                    ? "bad username or password"
                                                             : "anonymous refused");
        return ENGINE_CLOSING;
    }
    /* With use_identity_as_username (or use_subject_as_username) the
     * client certificate names the user, whatever the CONNECT says. */
    const struct config_tls *tls = &engine_cfg(c)->listeners[c->who.listener].tls;
    bool by_cert = tls->use_identity_as_username || tls->use_subject_as_username;
    const uint8_t *name = by_cert ? c->who.cert_identity : r->username;
    uint32_t name_len = by_cert ? c->who.cert_identity_len : r->username_len;
    if (name) {
        c->who.username = dup_bytes(name, name_len);
        if (!c->who.username) {
            engine_close(c, "out of memory");
            return ENGINE_CLOSING;
        }
        c->who.username_len = name_len;
    }
    c->authenticated = true;
    enum engine_status st = engine_connect_continue(c);
    if (waited && st == ENGINE_CONSUMED)
        return engine_resume(c); /* what the client sent behind its CONNECT */
    return st;
}

enum engine_status engine_handle_connect(struct engine_conn *c, const struct mqtt_connect *cn)
{
    struct engine *en = c->en;
    c->version = cn->version;
    const char *why = NULL;
    uint8_t refused = connect_refusal(c, cn, &why);
    if (refused) {
        engine_connack_fail(c, refused, why);
        return ENGINE_CLOSING;
    }
    /* Bans by id and name before any password is hashed (the name a
     * certificate gives is known already; an exchange's, only after). */
    const struct config_tls *tls = &engine_cfg(c)->listeners[c->who.listener].tls;
    bool by_cert = tls->use_identity_as_username || tls->use_subject_as_username;
    refused = engine_fx_admit(c, cn->client_id.ptr, cn->client_id.len,
                              by_cert ? c->who.cert_identity : cn->username.ptr,
                              by_cert ? c->who.cert_identity_len : cn->username.len, false, &why);
    if (refused) {
        engine_connack_fail(c, refused, why);
        return ENGINE_CLOSING;
    }
    c->req = request_create(c, cn);
    if (!c->req) {
        engine_connack_fail(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return ENGINE_CLOSING;
    }
    if (cn->version == MQTT_V5 && (cn->props.present & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD))) {
        /* Enhanced authentication (4.12): the exchange runs first. */
        uint32_t m =
            engine_fx_auth_method(en, cn->props.auth_method.ptr, cn->props.auth_method.len);
        if (!m) {
            /* [MQTT-4.12.0-1] */
            engine_connack_fail(c, MQTT_RC_BAD_AUTHENTICATION_METHOD,
                                "authentication method not offered");
            return ENGINE_CLOSING;
        }
        return engine_auth_begin(c, cn, m);
    }
    return connect_login(c, cn);
}

/* ---- placement ------------------------------------------------------------- */

static enum engine_status connect_attach(struct engine_conn *c);

enum engine_status engine_connect_continue(struct engine_conn *c)
{
    struct engine *en = c->en;
    struct engine_connect *r = c->req;
    ASSERT(r && c->authenticated);
    const char *why = NULL;
    uint8_t refused = engine_fx_admit(c, r->client_id, r->client_id_len, c->who.username,
                                      c->who.username_len, true, &why);
    if (refused) {
        engine_connack_fail(c, refused, why);
        return ENGINE_CLOSING;
    }
    if (r->will && !engine_acl_allowed(en, NULL, &c->who, r->client_id, r->client_id_len,
                                       ENGINE_WRITE, msg_topic(r->will), r->will->topic_len)) {
        COUNT(en, acl_denied_will, 1);
        engine_connack_fail(c, MQTT_RC_NOT_AUTHORIZED, "will topic not authorized");
        return ENGINE_CLOSING;
    }
    /* Everything about one client id lives on its home shard. */
    uint64_t h = engine_client_hash(en->g, r->client_id, r->client_id_len);
    c->home = (uint16_t)(h % en->g->shard_count);
    if (c->home != en->id) {
        c->phase = ENGINE_PLACED;
        engine_conn_arm(c); /* off this shard's wheel: the home shard arms it */
        return ENGINE_HANDOFF;
    }
    return connect_attach(c);
}

enum engine_status engine_adopted(struct engine_conn *c, struct engine *en)
{
    ASSERT(c->phase == ENGINE_PLACED && en->id == c->home);
    c->en = en;
    c->phase = ENGINE_NEW;
    enum engine_status st = connect_attach(c);
    if (st != ENGINE_CONSUMED)
        return st;
    return engine_resume(c); /* what came behind the CONNECT */
}

/* ---- on the home shard ----------------------------------------------------------- */

/* Drops the CONNACK properties a client can do without (Response
 * Information, Topic Alias Maximum: it then sets no aliases) until the
 * CONNACK fits its Maximum Packet Size; false if it still does not. */
static bool connack_fit(struct engine_conn *c, struct mqtt_props *props)
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

/* What a 5.0 CONNACK says beyond the reason; resp holds the response
 * information and must outlive the encoding. */
static void connack_props(struct engine_conn *c, struct mqtt_props *props, char *resp,
                          size_t resp_cap)
{
    const struct config *cfg = engine_cfg(c);
    const struct engine_connect *r = c->req;
    memset(props, 0, sizeof(*props));
    if (r->keepalive_s > cfg->max_keepalive_s ||
        (r->keepalive_s == 0 && cfg->max_keepalive_s < KEEPALIVE_MAX_S)) {
        c->keepalive_s = cfg->max_keepalive_s;
        props->present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEPALIVE);
        props->server_keepalive_s = cfg->max_keepalive_s;
    }
    if (r->assigned) {
        props->present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
        props->assigned_client_id.ptr = r->client_id;
        props->assigned_client_id.len = r->client_id_len;
    }
    props->present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
    props->maximum_packet_size = cfg->max_packet_size;
    if (cfg->max_inflight_messages < 65535) {
        /* As mosquitto: the same bound both ways. Incoming QoS 2 over it
         * is refused with 0x93 [MQTT-3.3.4-9]. */
        props->present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
        props->receive_maximum = (uint16_t)cfg->max_inflight_messages;
    }
    if (cfg->max_qos < 2) {
        props->present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_QOS);
        props->maximum_qos = cfg->max_qos;
    }
    if (!cfg->retain_available) {
        props->present |= MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE);
        props->retain_available = 0;
    }
    if (cfg->max_topic_alias) {
        props->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
        props->topic_alias_maximum = cfg->max_topic_alias;
    }
    if (r->request_response_info) {
        /* A topic prefix for this client's responses, under '$' so no
         * leading wildcard subscription ever sees them [MQTT-4.7.2-1]. */
        int n = snprintf(resp, resp_cap, "$response/%.*s", (int)r->client_id_len,
                         (const char *)r->client_id);
        props->present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_INFO);
        props->response_info.ptr = (const uint8_t *)resp;
        props->response_info.len = (uint32_t)n;
    }
    if (c->auth_method) {
        /* The method the CONNECT named, and the server's final data
         * [MQTT-4.12.0-5]. */
        const char *name = engine_fx_auth_method_name(c->auth_method);
        props->present |= MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
        props->auth_method.ptr = (const uint8_t *)name;
        props->auth_method.len = (uint32_t)strlen(name);
        if (c->auth_reply) {
            props->present |= MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
            props->auth_data.ptr = c->auth_reply;
            props->auth_data.len = c->auth_reply_len;
        }
    }
    c->alias_in_max = cfg->max_topic_alias;
    c->alias_out_max =
        r->topic_alias_maximum < TOPIC_ALIAS_OUT_MAX ? r->topic_alias_maximum : TOPIC_ALIAS_OUT_MAX;
}

/* Near and over memory_limit a new session is refused (the memory it
 * would take is what is short); a CONNECT that resumes or replaces a
 * session is let in: the queue that holds the memory can then drain, or is
 * freed. Checked on the home shard, where the session is known. */
static bool memory_admits_new_session(struct engine_conn *c)
{
    struct engine *en = c->en;
    if (engine_mem_over(en)) {
        COUNT(en, mem_refused, 1);
        engine_connack_fail(c, MQTT_RC_QUOTA_EXCEEDED, "over memory_limit");
        return false;
    }
    if (engine_mem_near(en)) {
        COUNT(en, overload_refused, 1);
        engine_connack_fail(c, MQTT_RC_SERVER_BUSY, "overloaded (memory near memory_limit)");
        return false;
    }
    return true;
}

/* Takeover, clean start, resume or a new session: the client this
 * connection will speak for, or NULL (refused, closed). */
static struct client *session_take(struct engine_conn *c, bool *present)
{
    struct engine *en = c->en;
    const struct engine_connect *r = c->req;
    uint64_t h = engine_client_hash(en->g, r->client_id, r->client_id_len);
    struct client *cl = engine_client_find(en, r->client_id, r->client_id_len, h);
    *present = false;
    if (cl && cl->conn) {
        /* Takeover [MQTT-3.1.4-3]: the old connection is closed (5.0:
         * DISCONNECT 0x8E) and its will is published. */
        struct engine_conn *old = cl->conn;
        LOGC(LOG_LEVEL_INFO, cl->id, cl->id_len, "taken over by a new connection from %s",
             c->who.peer);
        engine_send_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER, NULL);
        engine_detach(old);
        engine_close(old, "session taken over");
        cl = engine_client_find(en, r->client_id, r->client_id_len,
                                h); /* the detach may have ended it */
    }
    bool existed = cl != NULL;
    if (cl && r->clean_start) {
        /* The session ends here, so a will waiting for its delay goes
         * out now (5.0 3.1.3.2.2) [issue 7 defect 14]. */
        struct msg *will = cl->pending_will;
        cl->pending_will = NULL;
        engine_client_destroy(en, cl, true);
        cl = NULL;
        if (will)
            engine_publish_will(en, will);
    }
    if (cl) {
        *present = true;
        /* Resumed in time: a delayed will is cancelled. */
        msg_unref(cl->pending_will);
        cl->pending_will = NULL;
        return cl;
    }
    if (!existed && !memory_admits_new_session(c))
        return NULL;
    if (atomic_load_explicit(&en->g->session_count, memory_order_relaxed) >=
        engine_cfg(c)->max_sessions) {
        /* Checked on the home shard against the sum of all: shards racing
         * may pass it by a few, never by more than their count. */
        COUNT(en, sessions_refused, 1);
        engine_connack_fail(c, MQTT_RC_QUOTA_EXCEEDED, "max_sessions reached");
        return NULL;
    }
    cl = engine_client_create(en, r->client_id, r->client_id_len, h);
    if (!cl)
        engine_connack_fail(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    return cl;
}

/* The session's settings from this CONNECT, and the identity it keeps. */
static bool session_settle(struct engine_conn *c, struct client *cl)
{
    const struct config *cfg = engine_cfg(c);
    const struct engine_connect *r = c->req;
    cl->version = r->version;
    cl->clean_session = r->clean_start;
    if (r->version == MQTT_V5)
        cl->expiry_s = engine_expiry_cap(cfg, r->session_expiry_s);
    else
        cl->expiry_s = r->clean_start ? 0
                       : cfg->persistent_client_expiration_s
                           ? (uint32_t)cfg->persistent_client_expiration_s
                           : UINT32_MAX;
    c->session_expiry_s = cl->expiry_s;
    uint32_t inflight_max = cfg->max_inflight_messages;
    if (r->receive_maximum && r->receive_maximum < inflight_max)
        inflight_max = r->receive_maximum; /* [MQTT-3.3.4-7] */
    struct session_limits lim = engine_session_limits(cfg, inflight_max);
    session_set_limits(&cl->s, &lim);
    /* Delivery-time decisions use the identity of the session's last
     * connection, also while it is offline. */
    uint8_t *user = NULL, *cert = NULL;
    if (c->who.username && !(user = dup_bytes(c->who.username, c->who.username_len)))
        return false;
    if (c->who.cert_identity &&
        !(cert = dup_bytes(c->who.cert_identity, c->who.cert_identity_len))) {
        free(user);
        return false;
    }
    free(cl->who.username);
    free(cl->who.cert_identity);
    cl->who = c->who;
    cl->who.username = user;
    cl->who.cert_identity = cert;
    free(cl->acl_memo); /* answers for the previous identity */
    cl->acl_memo = NULL;
    return true;
}

static void resend_one(void *ctx, const struct session_inflight *e);

/* Resends what a resumed session had in flight, in order, with DUP
 * [MQTT-4.4.0-1]. One the client's (new, smaller) Maximum Packet Size
 * refuses is dropped as if acknowledged, as in engine_pump(). (The walk
 * cannot change the ring, so those are collected first.) */
struct resend_ctx {
    struct engine_conn *c;
    uint16_t *refused; /* packet ids engine_write_publish refused (too large now) */
    uint32_t refused_n, refused_cap;
    bool nomem;
};

static void resend_one(void *ctx, const struct session_inflight *e)
{
    struct resend_ctx *rc = ctx;
    if (e->state == SESSION_AWAIT_PUBCOMP) {
        engine_send_ack(rc->c, MQTT_PUBREL, e->packet_id, MQTT_RC_SUCCESS);
        return;
    }
    if (engine_write_publish(rc->c, &e->d, e->packet_id, true))
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

static void resend_inflight(struct engine_conn *c, struct client *cl)
{
    struct resend_ctx rc = {.c = c};
    session_for_each_inflight(&cl->s, resend_one, &rc);
    for (uint32_t i = 0; i < rc.refused_n; i++)
        engine_drop_as_acked(c->en, cl, rc.refused[i]);
    free(rc.refused);
    if (rc.nomem)
        engine_close(c, "out of memory");
}

static enum engine_status connect_attach(struct engine_conn *c)
{
    struct engine *en = c->en;
    struct engine_connect *r = c->req;
    ASSERT(r && c->home == en->id);
    /* What CONNACK will say, decided before the session is touched. */
    c->client_max_packet = r->maximum_packet_size;
    c->request_problem_info = r->request_problem_info;
    c->keepalive_s = r->keepalive_s;
    struct mqtt_props props;
    char resp[CLIENT_ID_LEN_MAX + 16]; /* lives until the CONNACK is encoded */
    memset(&props, 0, sizeof(props));
    if (r->version == MQTT_V5)
        connack_props(c, &props, resp, sizeof(resp));
    if (c->client_max_packet && !connack_fit(c, &props)) {
        /* Even without its optional properties the CONNACK would exceed
         * the client's Maximum Packet Size, which no packet may
         * [MQTT-3.1.2-24]: nothing can be said, the session is left as it
         * was. */
        engine_close(c, "CONNACK would exceed the client's Maximum Packet Size");
        return ENGINE_CLOSING;
    }
    bool present;
    struct client *cl = session_take(c, &present);
    if (!cl)
        return ENGINE_CLOSING;
    if (!session_settle(c, cl)) {
        if (!present)
            engine_client_destroy(en, cl, true); /* made for this CONNECT only */
        engine_connack_fail(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return ENGINE_CLOSING;
    }
    c->will = r->will;
    r->will = NULL;
    c->will_delay_s = r->will_delay_s;
    cl->conn = c;
    c->client = cl;
    c->phase = ENGINE_ACTIVE;
    engine_client_arm(en, cl); /* no expiry while connected */
    /* Draining (flow.c) is shown by acknowledging on this connection, not
     * by having connected: a client that reconnects without ever
     * acknowledging must not hold its publishers. */
    cl->last_ack_ms = 0;
    /* Keepalive counts from the CONNECT's acceptance here, not from bytes
     * that reached another shard before the hand-off [MQTT-3.1.2-22]. */
    c->last_rx_ms = en->now_ms;
    engine_conn_arm(c); /* keepalive */
    char user[96] = "";
    if (c->who.username)
        engine_log_name(user, sizeof(user), c->who.username, c->who.username_len);
    LOGCL(LOG_LEVEL_NOTICE, c, "connected from %s (%s%s%sMQTT %s%s, keepalive %u, %s)", c->who.peer,
          user[0] ? "username '" : "", user, user[0] ? "', " : "",
          r->version == MQTT_V5     ? "5.0"
          : r->version == MQTT_V311 ? "3.1.1"
                                    : "3.1",
          engine_cfg(c)->listeners[c->who.listener].tls.enabled ? " over TLS" : "", c->keepalive_s,
          present ? "session resumed" : "new session");
    engine_send_connack(c, present, MQTT_RC_SUCCESS, r->version == MQTT_V5 ? &props : NULL);
    engine_connect_free(r);
    c->req = NULL;
    free(c->auth_reply);
    c->auth_reply = NULL;
    if (present)
        resend_inflight(c, cl);
    engine_pump(cl);
    return c->phase == ENGINE_CLOSED ? ENGINE_CLOSING : ENGINE_CONSUMED;
}
