/*
 * An application message as routed inside the broker: immutable once built,
 * shared between sessions and shards through one atomic reference count.
 * Topic, payload and the 5.0 properties that travel with the message live in
 * one allocation. Any thread may ref/unref; nobody writes after msg_create().
 */
#ifndef RINGMQ_MESSAGE_H
#define RINGMQ_MESSAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

struct msg {
    atomic_uint refs;
    uint8_t qos;
    bool retain;
    bool has_payload_format;
    uint8_t payload_format;
    uint64_t expiry_at_ms; /* monotonic ms, 0: never expires */
    uint64_t origin;       /* publishing client's never-reused id (no-local), 0: none */
    uint64_t origin_hash;  /* its client id's hash: finds it on its shard (flow control) */
    uint32_t topic_len;
    uint32_t payload_len;
    uint32_t content_type_len;
    uint32_t response_topic_len;
    uint32_t correlation_len;
    uint32_t user_props_len;
    uint32_t user_prop_count;
    uint8_t data[]; /* topic, payload, content type, response topic, correlation, user props */
};

/* Builds a message from a decoded PUBLISH (copying what it needs) with
 * refs = 1. topic overrides p->topic (a resolved alias). NULL on ENOMEM. */
struct msg *msg_create(const struct mqtt_publish *p, const uint8_t *topic, size_t topic_len,
                       uint64_t origin, uint64_t now_ms);

/* Builds a message from parts (wills, $SYS). */
struct msg *msg_create_simple(const uint8_t *topic, size_t topic_len, const uint8_t *payload,
                              size_t payload_len, uint8_t qos, bool retain);

/* For a message built with now_ms 0 and kept private until published (a
 * will): its expiry interval starts now. Only while refs == 1. */
void msg_start_expiry(struct msg *m, uint64_t now_ms);

struct msg *msg_ref(struct msg *m);
void msg_unref(struct msg *m);

static inline const uint8_t *msg_topic(const struct msg *m)
{
    return m->data;
}
static inline const uint8_t *msg_payload(const struct msg *m)
{
    return m->data + m->topic_len;
}

/* Bytes the message accounts for in queue limits. */
size_t msg_size(const struct msg *m);

/* Has the message expired at now_ms? */
bool msg_expired(const struct msg *m, uint64_t now_ms);

/* Fills a PUBLISH for encoding (views into m): qos, retain, topic, payload
 * and properties with the remaining expiry at now_ms. packet_id and dup are
 * left 0 for the caller. */
void msg_to_publish(const struct msg *m, struct mqtt_publish *out, uint64_t now_ms);

#endif
