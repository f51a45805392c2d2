#include <criterion/criterion.h>
#include <string.h>

#include "message.h"

static struct msg *make(const char *topic, const char *payload, uint8_t qos)
{
    return msg_create_simple((const uint8_t *)topic, strlen(topic), (const uint8_t *)payload,
                             strlen(payload), qos, false);
}

Test(message, create_copies_topic_and_payload)
{
    char topic[] = "a/b", payload[] = "hello";
    struct msg *m = make(topic, payload, 1);
    topic[0] = 'x';
    payload[0] = 'x';
    cr_assert_eq(m->topic_len, 3);
    cr_assert_eq(memcmp(msg_topic(m), "a/b", 3), 0);
    cr_assert_eq(memcmp(msg_payload(m), "hello", 5), 0);
    cr_assert_eq(m->qos, 1);
    cr_assert_eq(atomic_load(&m->refs), 1);
    msg_unref(m);
}

Test(message, refcount)
{
    struct msg *m = make("t", "p", 0);
    cr_assert_eq(msg_ref(m), m);
    cr_assert_eq(atomic_load(&m->refs), 2);
    msg_unref(m);
    cr_assert_eq(atomic_load(&m->refs), 1);
    msg_unref(m);
    msg_unref(NULL);
}

Test(message, properties_travel_and_expiry_counts_down)
{
    struct mqtt_publish p;
    memset(&p, 0, sizeof(p));
    p.qos = 1;
    p.payload.ptr = (const uint8_t *)"{}";
    p.payload.len = 2;
    p.props.present =
        MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |
        MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) | MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA) |
        MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT);
    p.props.message_expiry_s = 10;
    p.props.payload_format = 1;
    p.props.content_type = (struct mqtt_bytes){(const uint8_t *)"json", 4};
    p.props.response_topic = (struct mqtt_bytes){(const uint8_t *)"r/t", 3};
    p.props.correlation_data = (struct mqtt_bytes){(const uint8_t *)"\x01\x02", 2};
    struct msg *m = msg_create(&p, (const uint8_t *)"x/y", 3, 0, 1000);
    cr_assert_not_null(m);
    cr_assert_not(msg_expired(m, 10999));
    cr_assert(msg_expired(m, 11000));

    struct mqtt_publish out;
    msg_to_publish(m, &out, 5000);
    cr_assert_eq(out.props.message_expiry_s, 6, "remaining lifetime is forwarded");
    cr_assert_eq(out.props.payload_format, 1);
    cr_assert_eq(out.props.content_type.len, 4);
    cr_assert_eq(memcmp(out.props.content_type.ptr, "json", 4), 0);
    cr_assert_eq(memcmp(out.props.response_topic.ptr, "r/t", 3), 0);
    cr_assert_eq(memcmp(out.props.correlation_data.ptr, "\x01\x02", 2), 0);
    cr_assert_eq(memcmp(out.topic.ptr, "x/y", 3), 0);
    cr_assert_eq(out.payload.len, 2);
    cr_assert(msg_size(m) >= 3 + 2 + 4 + 3 + 2);
    msg_unref(m);
}

Test(message, no_expiry_never_expires)
{
    struct msg *m = make("t", "", 0);
    cr_assert_not(msg_expired(m, UINT64_MAX));
    struct mqtt_publish out;
    msg_to_publish(m, &out, 0);
    cr_assert_eq(out.props.present, 0);
    msg_unref(m);
}

Test(message, will_expiry_starts_at_publication)
{
    struct mqtt_publish p;
    memset(&p, 0, sizeof(p));
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
    p.props.message_expiry_s = 2;
    struct msg *m = msg_create(&p, (const uint8_t *)"w", 1, 0, 0);
    msg_start_expiry(m, 100000);
    cr_assert_not(msg_expired(m, 101999));
    cr_assert(msg_expired(m, 102000));
    msg_unref(m);
}
