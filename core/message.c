/*
 * Immutable, refcounted application messages. One allocation holds the
 * header and every variable part, so a message costs one malloc and one free
 * however many sessions and shards it reaches. Built by the shard that
 * received the PUBLISH; after msg_create() returns nobody writes to it, so
 * any thread may read it while it holds a reference.
 */
#include "message.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static size_t props_len(const struct mqtt_props *pr)
{
    size_t n = 0;
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE))
        n += pr->content_type.len;
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC))
        n += pr->response_topic.len;
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA))
        n += pr->correlation_data.len;
    if (pr->user_prop_count)
        n += codec_props_user_len(pr);
    return n;
}

static uint8_t *put(uint8_t *dst, const void *src, size_t len)
{
    if (len)
        memcpy(dst, src, len);
    return dst + len;
}

struct msg *msg_create(const struct mqtt_publish *p, const uint8_t *topic, size_t topic_len,
                       uint64_t origin, uint64_t now_ms)
{
    const struct mqtt_props *pr = &p->props;
    size_t total = offsetof(struct msg, data) + topic_len + p->payload.len + props_len(pr);
    struct msg *m = malloc(total);
    if (!m)
        return NULL;
    /* offsetof, not sizeof: the allocation may end inside the struct's
     * trailing padding when the variable part is short. */
    memset(m, 0, offsetof(struct msg, data));
    atomic_init(&m->refs, 1);
    m->qos = p->qos;
    m->retain = p->retain;
    m->origin = origin;
    m->topic_len = (uint32_t)topic_len;
    m->payload_len = p->payload.len;
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT)) {
        m->has_payload_format = true;
        m->payload_format = pr->payload_format;
    }
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
        m->expiry_at_ms = now_ms + (uint64_t)pr->message_expiry_s * 1000u;

    uint8_t *d = put(m->data, topic, topic_len);
    d = put(d, p->payload.ptr, p->payload.len);
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE)) {
        m->content_type_len = pr->content_type.len;
        d = put(d, pr->content_type.ptr, pr->content_type.len);
    }
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC)) {
        m->response_topic_len = pr->response_topic.len;
        d = put(d, pr->response_topic.ptr, pr->response_topic.len);
    }
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA)) {
        m->correlation_len = pr->correlation_data.len;
        d = put(d, pr->correlation_data.ptr, pr->correlation_data.len);
    }
    if (pr->user_prop_count) {
        m->user_prop_count = pr->user_prop_count;
        m->user_props_len = (uint32_t)codec_props_copy_user(pr, d);
        d += m->user_props_len;
    }
    assert((size_t)(d - (uint8_t *)m) == total);
    return m;
}

struct msg *msg_create_simple(const uint8_t *topic, size_t topic_len, const uint8_t *payload,
                              size_t payload_len, uint8_t qos, bool retain)
{
    struct mqtt_publish p;
    memset(&p, 0, sizeof(p));
    p.qos = qos;
    p.retain = retain;
    p.payload.ptr = payload;
    p.payload.len = (uint32_t)payload_len;
    return msg_create(&p, topic, topic_len, 0, 0);
}

void msg_start_expiry(struct msg *m, uint64_t now_ms)
{
    assert(atomic_load_explicit(&m->refs, memory_order_relaxed) == 1);
    if (m->expiry_at_ms)
        m->expiry_at_ms += now_ms;
}

struct msg *msg_ref(struct msg *m)
{
    unsigned old = atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    assert(old > 0);
    (void)old;
    return m;
}

void msg_unref(struct msg *m)
{
    if (!m)
        return;
    /* Release so our reads happen before the free; acquire on the last drop
     * so the free happens after everyone else's reads. */
    unsigned old = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
    assert(old > 0);
    if (old == 1)
        free(m);
}

size_t msg_size(const struct msg *m)
{
    return offsetof(struct msg, data) + m->topic_len + m->payload_len + m->content_type_len +
           m->response_topic_len + m->correlation_len + m->user_props_len;
}

bool msg_expired(const struct msg *m, uint64_t now_ms)
{
    return m->expiry_at_ms != 0 && now_ms >= m->expiry_at_ms;
}

void msg_to_publish(const struct msg *m, struct mqtt_publish *out, uint64_t now_ms)
{
    memset(out, 0, sizeof(*out));
    out->qos = m->qos;
    out->retain = m->retain;
    out->topic.ptr = m->data;
    out->topic.len = m->topic_len;
    out->payload.ptr = m->data + m->topic_len;
    out->payload.len = m->payload_len;
    struct mqtt_props *pr = &out->props;
    const uint8_t *d = out->payload.ptr + m->payload_len;
    if (m->has_payload_format) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT);
        pr->payload_format = m->payload_format;
    }
    if (m->expiry_at_ms) {
        /* The remaining lifetime is forwarded, not the original [MQTT-3.3.2-6]. */
        uint64_t left_ms = m->expiry_at_ms > now_ms ? m->expiry_at_ms - now_ms : 0;
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
        pr->message_expiry_s = (uint32_t)((left_ms + 999u) / 1000u);
    }
    if (m->content_type_len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
        pr->content_type.ptr = d;
        pr->content_type.len = m->content_type_len;
        d += m->content_type_len;
    }
    if (m->response_topic_len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC);
        pr->response_topic.ptr = d;
        pr->response_topic.len = m->response_topic_len;
        d += m->response_topic_len;
    }
    if (m->correlation_len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
        pr->correlation_data.ptr = d;
        pr->correlation_data.len = m->correlation_len;
        d += m->correlation_len;
    }
    if (m->user_props_len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
        pr->user_props.ptr = d;
        pr->user_props.len = m->user_props_len;
        pr->user_prop_count = m->user_prop_count;
    }
}
