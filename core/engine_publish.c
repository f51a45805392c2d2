/*
 * PUBLISH from a client and the acknowledgements of both directions:
 * topic aliases, the checks a message passes before it is accepted, QoS 2
 * duplicate detection, routing, and DISCONNECT.
 *
 * Runs on the thread that owns the connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "topic.h"

/* Resolves a 5.0 topic alias in *p: an alias with a topic (re)defines it,
 * an alias with an empty topic uses it. Returns 0 or the reason to
 * disconnect with. */
static int resolve_alias(struct engine_conn *c, struct mqtt_publish *p)
{
    uint16_t a = p->props.topic_alias;
    if (a == 0 || a > c->alias_in_max)
        return MQTT_RC_TOPIC_ALIAS_INVALID; /* [MQTT-3.3.2-8], [MQTT-3.3.2-9] */
    if (!c->alias_in) {
        c->alias_in = calloc(c->alias_in_max, sizeof(*c->alias_in));
        if (!c->alias_in)
            return MQTT_RC_SERVER_BUSY;
    }
    struct engine_alias *e = &c->alias_in[a - 1];
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

/* What a PUBLISH must be, or the connection ends: 5.0 properties, the
 * topic (an alias resolved into *pub), QoS and retain within what CONNACK
 * said. false: closed. */
static bool publish_valid(struct engine_conn *c, struct mqtt_publish *pub)
{
    const struct config *cfg = engine_cfg(c);
    const struct mqtt_publish *p = pub;
    if (c->version == MQTT_V5) {
        if (p->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) {
            engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "PUBLISH with a subscription identifier");
            return false; /* [MQTT-3.3.4-6] */
        }
        if (p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) {
            int rc = resolve_alias(c, pub);
            if (rc) {
                engine_violation(c, (uint8_t)rc, "topic alias");
                return false;
            }
            /* The alias is the connection's business; it does not travel
             * with the message. */
            pub->props.present &= ~MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
        }
    }
    if (p->topic.len == 0) {
        engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "PUBLISH without topic");
        return false;
    }
    if (p->qos > cfg->max_qos) {
        engine_violation(c, MQTT_RC_QOS_NOT_SUPPORTED,
                         "PUBLISH over max_qos"); /* [MQTT-3.2.2-11] */
        return false;
    }
    if (p->retain && !cfg->retain_available) {
        engine_violation(c, MQTT_RC_RETAIN_NOT_SUPPORTED, "retained PUBLISH"); /* [MQTT-3.2.2-14] */
        return false;
    }
    return true;
}

/* Whether a valid PUBLISH is taken: false when it was answered (refused,
 * or a QoS 2 resend) or the connection closed. */
static bool publish_accepted(struct engine_conn *c, const struct mqtt_publish *p, uint8_t ack_type)
{
    struct engine *en = c->en;
    const struct config *cfg = engine_cfg(c);
    struct client *cl = c->client;
    if (topic_levels(p->topic.ptr, p->topic.len) > cfg->max_topic_levels) {
        /* Well formed but not accepted here [issue 7 defect 13]: 5.0 hears
         * 0x90, 3.1.1 is acknowledged and the message dropped, as for a
         * publish the ACL refuses. */
        COUNT(en, msgs_dropped[METRICS_DROP_TOPIC_LEVELS], 1);
        if (p->qos)
            engine_send_ack(c, ack_type, p->packet_id,
                            c->version == MQTT_V5 ? MQTT_RC_TOPIC_NAME_INVALID : MQTT_RC_SUCCESS);
        return false;
    }
    if (c->version == MQTT_V5 && (p->props.present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT)) &&
        p->props.payload_format == 1 && !codec_utf8_valid(p->payload.ptr, p->payload.len)) {
        if (p->qos)
            engine_send_ack(c, ack_type, p->packet_id, MQTT_RC_PAYLOAD_FORMAT_INVALID);
        return false;
    }
    if (!engine_acl_allowed(en, cl, &c->who, cl->id, cl->id_len, ENGINE_WRITE, p->topic.ptr,
                            p->topic.len)) {
        /* 5.0 says so; 3.1.1 has no code for it: acknowledged and dropped,
         * as mosquitto does. */
        COUNT(en, acl_denied_publish, 1);
        engine_log_acl(c, "PUBLISH to", p->topic.ptr, p->topic.len);
        if (p->qos)
            engine_send_ack(c, ack_type, p->packet_id,
                            c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_RC_SUCCESS);
        return false;
    }
    if (p->qos == 2) {
        int r = session_qos2_seen(&cl->s, p->packet_id,
                                  c->version == MQTT_V5 ? cfg->max_inflight_messages : 65535);
        if (r == 0) {
            /* A resend before PUBREL: acknowledge, do not deliver twice
             * [MQTT-4.3.3-10]. */
            engine_send_ack(c, MQTT_PUBREC, p->packet_id, MQTT_RC_SUCCESS);
            return false;
        }
        if (r < 0) {
            engine_violation(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "too many QoS 2 in flight");
            return false;
        }
    }
    if (p->qos && c->version == MQTT_V5 && engine_mem_over(en)) {
        /* Over memory_limit a 5.0 publisher is told it was not taken
         * (3.1.1 has no word for it: its message goes where it can be
         * sent now). */
        COUNT(en, mem_refused, 1);
        if (p->qos == 2)
            session_qos2_release(&cl->s, p->packet_id); /* the flow ends at this PUBREC */
        engine_send_ack(c, ack_type, p->packet_id, MQTT_RC_QUOTA_EXCEEDED);
        return false;
    }
    return true;
}

void engine_handle_publish(struct engine_conn *c, const struct mqtt_publish *in)
{
    struct engine *en = c->en;
    struct client *cl = c->client;
    struct mqtt_publish pub = *in;
    const struct mqtt_publish *p = &pub;
    if (!publish_valid(c, &pub))
        return;
    uint8_t ack_type = p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
    if (!publish_accepted(c, p, ack_type))
        return;
    /* $SYS belongs to the broker: clients' publishes there are
     * acknowledged and dropped, as mosquitto does. */
    COUNT(en, msgs_received[p->qos], 1);
    bool sys = p->topic.len >= 4 && memcmp(p->topic.ptr, "$SYS", 4) == 0;
    bool matched = false;
    if (!sys) {
        struct msg *m = msg_create(p, p->topic.ptr, p->topic.len, cl->uid, en->now_ms);
        if (!m) {
            engine_violation(c, MQTT_RC_SERVER_BUSY, "out of memory");
            return;
        }
        m->origin_hash = cl->hash;
        if (p->retain)
            engine_retain_store(en, m);
        matched = engine_route_publish(en, m);
        msg_unref(m);
    }
    /* 5.0 tells the publisher when nobody subscribed (0x10), as mosquitto
     * does; the message was accepted all the same. */
    if (p->qos)
        engine_send_ack(c, ack_type, p->packet_id,
                        c->version == MQTT_V5 && !matched ? MQTT_RC_NO_MATCHING_SUBSCRIBERS
                                                          : MQTT_RC_SUCCESS);
}

void engine_handle_ack(struct engine_conn *c, uint8_t type, const struct mqtt_ack *a)
{
    struct client *cl = c->client;
    /* Only an acknowledgement of something in flight shows the client is
     * draining: a made-up packet id must not keep a stuck session counted
     * as draining, holding its publishers [issue 7 defect 5]. */
    uint64_t now_ms = c->en->now_ms;
    switch (type) {
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        /* An unknown id is the client's business: ignore it. */
        if (session_acked(&cl->s, type, a->packet_id) == 0)
            cl->last_ack_ms = now_ms;
        engine_pump(cl);
        break;
    case MQTT_PUBREC:
        if (c->version == MQTT_V5 && a->reason >= 0x80) {
            /* The receiver refused the message: the flow ends here
             * [MQTT-4.3.3-4]. */
            if (session_acked(&cl->s, MQTT_PUBREC, a->packet_id) == 0)
                cl->last_ack_ms = now_ms;
            session_acked(&cl->s, MQTT_PUBCOMP, a->packet_id);
            engine_pump(cl);
            break;
        }
        if (session_acked(&cl->s, MQTT_PUBREC, a->packet_id) == 0) {
            cl->last_ack_ms = now_ms;
            engine_send_ack(c, MQTT_PUBREL, a->packet_id, MQTT_RC_SUCCESS);
        } else
            engine_send_ack(c, MQTT_PUBREL, a->packet_id, MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    case MQTT_PUBREL:
        engine_send_ack(c, MQTT_PUBCOMP, a->packet_id,
                        session_qos2_release(&cl->s, a->packet_id) ? MQTT_RC_SUCCESS
                                                                   : MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    default:
        break;
    }
    if (engine_rb_waiting(cl))
        engine_rb_pump(c->en, cl);
}

void engine_handle_disconnect(struct engine_conn *c, const struct mqtt_disconnect *d)
{
    if (c->version == MQTT_V5) {
        if ((d->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))) {
            if (c->session_expiry_s == 0 && d->props.session_expiry_s != 0) {
                /* 3.14.2.2.2: not from 0 to non-zero */
                engine_violation(c, MQTT_RC_PROTOCOL_ERROR, "session expiry set at DISCONNECT");
                return;
            }
            c->client->expiry_s = engine_expiry_cap(engine_cfg(c), d->props.session_expiry_s);
        }
        if (d->reason == MQTT_RC_DISCONNECT_WITH_WILL) {
            /* The client asks for its will: a lost connection in effect. */
            engine_close(c, "DISCONNECT with will");
            return;
        }
    }
    c->got_disconnect = true;
    /* A normal DISCONNECT discards the will [MQTT-3.14.4-3]. */
    msg_unref(c->will);
    c->will = NULL;
    engine_close(c, NULL);
}
