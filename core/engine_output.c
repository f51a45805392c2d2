/*
 * Packets out, and the connection's own state: every packet the engine
 * sends goes through engine_write_packet, which enforces the client's
 * Maximum Packet Size and the output bound; closing, pausing and yielding
 * set the engine's state first and then ask the runtime (engine_fx.h).
 *
 * Runs on the thread that owns the connection.
 */
#include <errno.h>
#include <string.h>

#include "engine_internal.h"

/* Output was appended: it leaves this turn. Replies count against the
 * output bound as much as messages do: a client that sends PINGREQs or
 * publishes but never reads is paused, not buffered for. */
static void appended(struct engine_conn *c)
{
    engine_fx_output(c);
    if (c->out.len > engine_cfg(c)->max_output_buffer)
        engine_pause(c, ENGINE_PAUSE_OUTPUT);
}

int engine_write_packet(struct engine_conn *c, const struct mqtt_packet *p)
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
        engine_send_disconnect(c, MQTT_RC_PACKET_TOO_LARGE, NULL);
        engine_close(c, NULL);
        return -EMSGSIZE;
    }
    if (buf_reserve(&c->out, n))
        return -ENOMEM;
    codec_encode(c->out.data + c->out.len, p, c->version ? c->version : MQTT_V311);
    c->out.len += n;
    appended(c);
    return 0;
}

void engine_wrote(struct engine_conn *c, uint8_t qos)
{
    COUNT(c->en, msgs_sent[qos], 1);
    appended(c);
}

void engine_send_ack(struct engine_conn *c, uint8_t type, uint16_t packet_id, uint8_t reason)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = type;
    p.u.ack.packet_id = packet_id;
    p.u.ack.reason = reason;
    engine_write_packet(c, &p);
}

void engine_send_disconnect(struct engine_conn *c, uint8_t reason, const char *why)
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
    engine_write_packet(c, &p);
}

void engine_send_connack(struct engine_conn *c, bool session_present, uint8_t reason,
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
    engine_write_packet(c, &p);
}

/* Closes the connection for a protocol violation: 5.0 hears why. */
void engine_violation(struct engine_conn *c, uint8_t reason, const char *what)
{
    COUNT(c->en, protocol_errors, 1);
    LOGCL(LOG_LEVEL_DEBUG, c, "%s from %s: reason 0x%02x, closing", what, c->who.peer, reason);
    if (!c->why) {
        c->why = what;
        c->why_reason = reason;
    }
    if (c->phase == ENGINE_ACTIVE)
        engine_send_disconnect(c, reason, what);
    engine_close(c, NULL);
}

void engine_connack_fail(struct engine_conn *c, uint8_t reason, const char *why)
{
    if (reason == MQTT_RC_BAD_USERNAME_OR_PASSWORD || reason == MQTT_RC_NOT_AUTHORIZED)
        COUNT(c->en, auth_failed, 1);
    uint32_t left_out = 0;
    if (log_enabled(LOG_LEVEL_NOTICE) && engine_refusal_log(c->en, &left_out)) {
        char id[96] = "", user[96] = "";
        const struct engine_connect *r = c->req;
        const uint8_t *name = c->who.username ? c->who.username : r ? r->username : NULL;
        uint32_t name_len = c->who.username ? c->who.username_len : r ? r->username_len : 0;
        if (r && r->client_id)
            engine_log_name(id, sizeof(id), r->client_id, r->client_id_len);
        if (name)
            engine_log_name(user, sizeof(user), name, name_len);
        LOG(LOG_LEVEL_NOTICE, "CONNECT from %s refused: %s (0x%02x; client id '%s'%s%s%s)%s%.0u%s",
            c->who.peer, why, reason, id, name ? ", username '" : "", user, name ? "'" : "",
            left_out ? " (and " : "", left_out, left_out ? " refusals not logged before it)" : "");
    }
    /* 3.1.1 has return codes for a few refusals only; a malformed or
     * otherwise violating CONNECT is closed without CONNACK [MQTT-3.1.4-1],
     * [MQTT-4.8.0-1]. 5.0 may say why [MQTT-3.2.2-8]. */
    bool v311_code =
        reason == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION || reason == MQTT_RC_CLIENT_ID_NOT_VALID ||
        reason == MQTT_RC_SERVER_UNAVAILABLE || reason == MQTT_RC_SERVER_BUSY ||
        reason == MQTT_RC_BAD_USERNAME_OR_PASSWORD || reason == MQTT_RC_NOT_AUTHORIZED ||
        reason == MQTT_RC_BANNED || reason == MQTT_RC_QUOTA_EXCEEDED;
    if (c->version == MQTT_V5 || v311_code)
        engine_send_connack(c, false, reason, NULL);
    engine_close(c, NULL);
}

void engine_close(struct engine_conn *c, const char *why)
{
    if (c->phase == ENGINE_CLOSED)
        return;
    if (why && !c->why)
        c->why = why;
    c->phase = ENGINE_CLOSED;
    engine_conn_arm(c); /* no protocol deadline any more: the runtime's hold */
    engine_fx_close(c, why);
}

void engine_pause(struct engine_conn *c, uint8_t reason)
{
    bool was = c->pause != 0;
    c->pause |= reason;
    if (!was)
        engine_fx_read_stop(c);
}

void engine_unpause(struct engine_conn *c, uint8_t reason)
{
    if (!(c->pause & reason))
        return;
    c->pause &= (uint8_t)~reason;
    if (c->phase == ENGINE_CLOSED)
        return;
    if (!c->pause)
        engine_fx_read_start(c);
    /* Input that waited goes on, also while a congestion pause is left:
     * only parsing what waits can end that one. The runtime dropped an
     * earlier yield while the connection was paused, so this is a new one. */
    if (!(c->pause & ~ENGINE_PAUSE_CONGEST) && c->in.len > c->in_off) {
        c->yielded = false;
        engine_yield(c);
    }
}

void engine_yield(struct engine_conn *c)
{
    if (c->yielded)
        return;
    c->yielded = true;
    engine_fx_yield(c);
}
