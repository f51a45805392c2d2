/*
 * 5.0 enhanced authentication (4.12): the exchange a CONNECT asks for
 * before its CONNACK, and re-authentication after it. The method's own
 * state (SCRAM today, with or without channel binding) is the runtime's
 * (engine_fx_auth_step); the engine keeps the packets, their order and the
 * bounds, and asks whether the connection may use the method at all
 * (engine_fx_auth_usable: a method bound to TLS needs its exporter value).
 *
 * Runs on the thread that owns the connection.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

/* Returns false when the packet would exceed the client's Maximum Packet
 * Size: the exchange cannot go on. */
static bool send_auth(struct engine_conn *c, uint8_t reason, const uint8_t *data, size_t len)
{
    const char *name = engine_fx_auth_method_name(c->auth_method);
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_AUTH;
    p.u.disconnect.reason = reason;
    p.u.disconnect.props.present = MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
    p.u.disconnect.props.auth_method.ptr = (const uint8_t *)name;
    p.u.disconnect.props.auth_method.len = (uint32_t)strlen(name);
    if (len) {
        p.u.disconnect.props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
        p.u.disconnect.props.auth_data.ptr = data;
        p.u.disconnect.props.auth_data.len = (uint32_t)len;
    }
    if (c->client_max_packet && codec_encoded_size(&p, MQTT_V5) > c->client_max_packet)
        return false;
    engine_write_packet(c, &p);
    return true;
}

/* A CONNECT's or AUTH's Authentication Data: NULL and 0 when absent. */
static const uint8_t *auth_data(const struct mqtt_props *p, size_t *len)
{
    bool has = p->present & MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
    *len = has ? p->auth_data.len : 0;
    return has ? p->auth_data.ptr : NULL;
}

/* An AUTH packet must name the method the CONNECT named [MQTT-4.12.0-5]. */
static bool auth_same_method(const struct engine_conn *c, const struct mqtt_disconnect *a)
{
    const char *name = engine_fx_auth_method_name(c->auth_method);
    return engine_same_bytes(a->props.auth_method.ptr, a->props.auth_method.len,
                             (const uint8_t *)name, strlen(name));
}

/* Ends an exchange that failed: before CONNACK the CONNACK says so, after
 * it a DISCONNECT does [MQTT-4.12.0-4], [MQTT-4.12.1-2]. */
void engine_auth_fail(struct engine_conn *c, uint8_t reason, const char *why)
{
    engine_fx_auth_end(c);
    c->auth_running = false;
    engine_conn_arm(c);
    if (c->phase == ENGINE_AUTH) {
        engine_connack_fail(c, reason, why);
        return;
    }
    LOGCL(LOG_LEVEL_INFO, c, "re-authentication failed: %s", why);
    /* why is for the log: it tells a known user from an unknown one. */
    engine_send_disconnect(c, reason, c->request_problem_info ? "re-authentication failed" : NULL);
    engine_close(c, NULL);
}

/* Runs one step with the client's data; sends the next challenge. Returns
 * 1 (more to come), 0 (done: *user proved, out/out_len the server's final
 * data), -1 (failed and handled). */
static int auth_run(struct engine_conn *c, const struct mqtt_props *props, uint8_t *out,
                    size_t *out_len, const uint8_t **user, size_t *user_len)
{
    const char *why = NULL;
    size_t data_len = 0;
    const uint8_t *data = auth_data(props, &data_len);
    *out_len = 0;
    int r =
        engine_fx_auth_step(c, c->auth_method, data, data_len, out, out_len, user, user_len, &why);
    if (r < 0) {
        engine_fx_login_failed(c);
        engine_auth_fail(c, MQTT_RC_NOT_AUTHORIZED, why ? why : "authentication failed");
        return -1;
    }
    ASSERT(*out_len <= AUTH_DATA_MAX);
    if (r == 1 && !send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, out, *out_len)) {
        engine_auth_fail(c, MQTT_RC_NOT_AUTHORIZED, "AUTH over the client's Maximum Packet Size");
        return -1;
    }
    return r;
}

/* The exchange before CONNACK proved user: the CONNECT goes on. */
static enum engine_status auth_connected(struct engine_conn *c, const uint8_t *user, size_t ulen,
                                         const uint8_t *out, size_t out_len)
{
    struct engine_connect *r = c->req;
    if (r->username && !engine_same_bytes(r->username, r->username_len, user, ulen)) {
        /* The exchange proved one user; the CONNECT names another. */
        engine_fx_auth_end(c);
        c->auth_running = false;
        engine_connack_fail(c, MQTT_RC_NOT_AUTHORIZED,
                            "CONNECT username is not the authenticated one");
        return ENGINE_CLOSING;
    }
    uint8_t *name = malloc(ulen + 1);
    uint8_t *reply = malloc(out_len ? out_len : 1);
    if (!name || !reply) {
        free(name);
        free(reply);
        engine_auth_fail(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return ENGINE_CLOSING;
    }
    memcpy(name, user, ulen);
    name[ulen] = 0;
    memcpy(reply, out, out_len);
    engine_fx_auth_end(c);
    c->auth_running = false;
    free(c->who.username);
    c->who.username = name;
    c->who.username_len = (uint32_t)ulen;
    c->auth_reply = reply;
    c->auth_reply_len = (uint16_t)out_len;
    c->authenticated = true;
    c->phase = ENGINE_NEW;
    return engine_connect_continue(c);
}

/* One step with the client's data: the next challenge goes out, or the
 * exchange is done and the CONNECT goes on (before CONNACK) or the
 * re-authentication is answered (after it). */
static enum engine_status reauth_done(struct engine_conn *c, const uint8_t *user, size_t ulen,
                                      const uint8_t *out, size_t out_len);

static enum engine_status auth_proceed(struct engine_conn *c, const struct mqtt_props *props)
{
    uint8_t out[AUTH_DATA_MAX];
    size_t out_len = 0, ulen = 0;
    const uint8_t *user = NULL;
    int r = auth_run(c, props, out, &out_len, &user, &ulen);
    if (r < 0)
        return ENGINE_CLOSING;
    if (r == 1)
        return ENGINE_CONSUMED;
    return c->phase == ENGINE_AUTH ? auth_connected(c, user, ulen, out, out_len)
                                   : reauth_done(c, user, ulen, out, out_len);
}

enum engine_status engine_auth_begin(struct engine_conn *c, const struct mqtt_connect *cn,
                                     uint32_t method)
{
    if (!engine_fx_auth_usable(c, method)) {
        /* [MQTT-4.12.0-1]: SCRAM-SHA-512-PLUS where the connection has no
         * channel binding is a method this connection is not offered. */
        engine_connack_fail(c, MQTT_RC_BAD_AUTHENTICATION_METHOD,
                            "authentication method not offered on this connection (it needs a "
                            "TLS channel binding)");
        return ENGINE_CLOSING;
    }
    /* The AUTH packets of the exchange respect the client's Maximum
     * Packet Size already [MQTT-3.1.2-24]. */
    c->client_max_packet = c->req->maximum_packet_size;
    c->auth_method = method;
    c->auth_running = true;
    c->auth_started_ms = c->en->now_ms;
    c->phase = ENGINE_AUTH;
    engine_conn_arm(c);
    return auth_proceed(c, &cn->props);
}

/* AUTH before CONNACK: only the next step of the exchange. */
static enum engine_status auth_connecting(struct engine_conn *c, const struct mqtt_disconnect *a)
{
    if (a->reason != MQTT_RC_CONTINUE_AUTHENTICATION) {
        /* The client's answer to our AUTH is Continue [MQTT-4.12.0-3];
         * re-authentication comes only after CONNACK. */
        engine_auth_fail(c, MQTT_RC_PROTOCOL_ERROR,
                         "AUTH before CONNACK is not Continue Authentication");
        return ENGINE_CLOSING;
    }
    if (!auth_same_method(c, a)) {
        engine_auth_fail(c, MQTT_RC_PROTOCOL_ERROR, "AUTH names another authentication method");
        return ENGINE_CLOSING;
    }
    return auth_proceed(c, &a->props);
}

/* A re-authentication step proved user: the same identity again, it
 * cannot turn the connection into another user's. */
static enum engine_status reauth_done(struct engine_conn *c, const uint8_t *user, size_t ulen,
                                      const uint8_t *out, size_t out_len)
{
    if (!engine_same_bytes(user, ulen, c->who.username, c->who.username_len)) {
        engine_auth_fail(c, MQTT_RC_NOT_AUTHORIZED, "re-authenticated as another user");
        return ENGINE_CLOSING;
    }
    engine_fx_auth_end(c);
    c->auth_running = false;
    engine_conn_arm(c);
    LOGCL(LOG_LEVEL_INFO, c, "re-authenticated");
    if (!send_auth(c, MQTT_RC_SUCCESS, out, out_len)) {
        engine_auth_fail(c, MQTT_RC_NOT_AUTHORIZED, "AUTH over the client's Maximum Packet Size");
        return ENGINE_CLOSING;
    }
    return ENGINE_CONSUMED;
}

/* AUTH after CONNACK: re-authentication [MQTT-4.12.1-1]. Other packets
 * keep flowing meanwhile (4.12.1). */
static enum engine_status auth_active(struct engine_conn *c, const struct mqtt_disconnect *a)
{
    if (!c->auth_method) {
        /* [MQTT-4.12.0-7]: no method in CONNECT, no AUTH. */
        engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "AUTH without authentication method");
        return ENGINE_CLOSING;
    }
    if (!auth_same_method(c, a)) {
        /* [MQTT-4.12.1-1] */
        engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "AUTH names another authentication method");
        return ENGINE_CLOSING;
    }
    if (a->reason == MQTT_RC_REAUTHENTICATE) {
        if (c->auth_running) {
            engine_violation(c, MQTT_RC_PROTOCOL_ERROR,
                             "re-authentication while one is in progress");
            return ENGINE_CLOSING;
        }
        const char *name = engine_fx_auth_method_name(c->auth_method);
        if (!engine_fx_auth_method(c->en, (const uint8_t *)name, strlen(name)) ||
            !engine_fx_auth_usable(c, c->auth_method)) {
            engine_auth_fail(c, MQTT_RC_BAD_AUTHENTICATION_METHOD,
                             "authentication method not offered");
            return ENGINE_CLOSING;
        }
        c->auth_running = true;
        c->auth_started_ms = c->en->now_ms;
        engine_conn_arm(c);
    } else if (a->reason != MQTT_RC_CONTINUE_AUTHENTICATION || !c->auth_running) {
        /* Success is the server's to send; Continue needs an exchange. */
        engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "AUTH out of sequence");
        return ENGINE_CLOSING;
    }
    return auth_proceed(c, &a->props);
}

enum engine_status engine_handle_auth(struct engine_conn *c, const struct mqtt_disconnect *a)
{
    return c->phase == ENGINE_AUTH ? auth_connecting(c, a) : auth_active(c, a);
}
