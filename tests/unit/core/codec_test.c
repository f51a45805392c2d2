/*
 * Unit tests for core/codec.c: the fixed header, a round trip of every packet
 * type in 3.1, 3.1.1 and 5.0, one test per malformed or protocol-violating
 * rule (named after it), UTF-8 validation and the small helpers.
 *
 * Malformed packets are written out byte by byte: a test that builds its bad
 * input with the encoder could not show what the wire holds.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define V31 MQTT_V31
#define V4  MQTT_V311
#define V5  MQTT_V5

#define BIT(name) MQTT_PROP_BIT(MQTT_PROP_##name)
#define S(lit)    ((struct mqtt_bytes){(const uint8_t *)(lit), (uint32_t)(sizeof(lit) - 1)})

#define WIRE_MAX 8192

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static bool bytes_eq(struct mqtt_bytes a, struct mqtt_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

#define assert_bytes(actual, lit)                                                                  \
    cr_assert(bytes_eq((actual), S(lit)), "%s is not \"%s\"", #actual, lit)

/* Encodes p; checks that codec_encoded_size and codec_encode agree. */
static size_t enc(const struct mqtt_packet *p, uint8_t version, uint8_t *out)
{
    size_t n = codec_encoded_size(p, version);
    cr_assert(n <= WIRE_MAX);
    size_t w = codec_encode(out, p, version);
    cr_assert_eq(w, n, "codec_encode wrote %zu bytes, codec_encoded_size said %zu", w, n);
    return n;
}

/* Parses the fixed header of one whole packet and decodes its body. */
static int dec(const uint8_t *b, size_t len, uint8_t version, struct mqtt_packet *out)
{
    struct mqtt_fixed fh;
    int rc = codec_parse_fixed(b, len, &fh);
    if (rc != 0)
        return rc;
    cr_assert_eq(fh.header_len + fh.remaining_len, len, "test bytes must be exactly one packet");
    return codec_decode(&fh, b + fh.header_len, version, out);
}

/* One encoded user property (0x26, key, value), as codec_props_copy_user
 * writes them. */
static size_t user_prop(uint8_t *o, const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    o[0] = MQTT_PROP_USER_PROPERTY;
    o[1] = (uint8_t)(kl >> 8);
    o[2] = (uint8_t)kl;
    memcpy(o + 3, k, kl);
    o[3 + kl] = (uint8_t)(vl >> 8);
    o[4 + kl] = (uint8_t)vl;
    memcpy(o + 5 + kl, v, vl);
    return 5 + kl + vl;
}

/* One SUBSCRIBE entry (filter, options) and one UNSUBSCRIBE entry. */
static size_t sub_entry(uint8_t *o, const char *filter, uint8_t opt)
{
    size_t l = strlen(filter);
    o[0] = (uint8_t)(l >> 8);
    o[1] = (uint8_t)l;
    memcpy(o + 2, filter, l);
    o[2 + l] = opt;
    return 3 + l;
}

static size_t unsub_entry(uint8_t *o, const char *filter)
{
    size_t l = strlen(filter);
    o[0] = (uint8_t)(l >> 8);
    o[1] = (uint8_t)l;
    memcpy(o + 2, filter, l);
    return 2 + l;
}

/* Makes decoded props encodable again: copy the user properties out of the
 * raw block into scratch, as a broker forwarding them would. */
static void props_for_encode(struct mqtt_props *p, uint8_t *scratch)
{
    size_t n = codec_props_user_len(p);
    cr_assert(n <= 2048);
    cr_assert_eq(codec_props_copy_user(p, scratch), n);
    p->user_props.ptr = scratch;
    p->user_props.len = (uint32_t)n;
    cr_assert_eq((p->present & BIT(USER_PROPERTY)) != 0, p->user_prop_count > 0);
}

struct rt {
    uint8_t wire[WIRE_MAX];
    size_t len;
    struct mqtt_packet p;
};

/* Encodes in, decodes it into rt->p, then re-encodes the decoded packet and
 * requires the very same bytes: decode and encode are inverse. */
static void roundtrip(const struct mqtt_packet *in, uint8_t version, struct rt *rt)
{
    static uint8_t scratch[2][2048];
    static uint8_t again[WIRE_MAX];

    rt->len = enc(in, version, rt->wire);
    int rc = dec(rt->wire, rt->len, version, &rt->p);
    cr_assert_eq(rc, MQTT_RC_SUCCESS, "%s v%u decodes to 0x%02x", codec_type_name(in->type),
                 version, rc);
    cr_assert_eq(rt->p.type, in->type);

    struct mqtt_packet q = rt->p;
    switch (q.type) {
    case MQTT_CONNECT:
        props_for_encode(&q.u.connect.props, scratch[0]);
        props_for_encode(&q.u.connect.will_props, scratch[1]);
        break;
    case MQTT_CONNACK:
        props_for_encode(&q.u.connack.props, scratch[0]);
        break;
    case MQTT_PUBLISH:
        props_for_encode(&q.u.publish.props, scratch[0]);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        props_for_encode(&q.u.ack.props, scratch[0]);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        props_for_encode(&q.u.subscribe.props, scratch[0]);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        props_for_encode(&q.u.suback.props, scratch[0]);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        props_for_encode(&q.u.disconnect.props, scratch[0]);
        break;
    default:
        break;
    }
    size_t n = enc(&q, version, again);
    cr_assert_eq(n, rt->len, "re-encoded %zu bytes, first encoding %zu", n, rt->len);
    cr_assert(memcmp(again, rt->wire, n) == 0, "re-encoding differs");
}

/* Decodes a hand-written packet (a compound literal of its bytes). */
#define DEC(version, ...)                                                                          \
    dec_lit((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}), (version))

static int dec_lit(const uint8_t *b, size_t len, uint8_t version)
{
    struct mqtt_packet p;
    return dec(b, len, version, &p);
}

#define assert_rc(actual, expected)                                                                \
    do {                                                                                           \
        int a_ = (actual), e_ = (expected);                                                        \
        cr_assert_eq(a_, e_, "got 0x%02x, want 0x%02x", a_, e_);                                   \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Fixed header                                                              */
/* ------------------------------------------------------------------------ */

Test(codec, fixed_need_more)
{
    struct mqtt_fixed fh;
    const uint8_t b[] = {0x30, 0xFF, 0xFF, 0xFF};
    assert_rc(codec_parse_fixed(b, 0, &fh), MQTT_NEED_MORE);
    assert_rc(codec_parse_fixed(b, 1, &fh), MQTT_NEED_MORE);
    assert_rc(codec_parse_fixed(b, 2, &fh), MQTT_NEED_MORE);
    assert_rc(codec_parse_fixed(b, 3, &fh), MQTT_NEED_MORE);
    assert_rc(codec_parse_fixed(b, 4, &fh), MQTT_NEED_MORE);
}

Test(codec, fixed_one_byte_length)
{
    struct mqtt_fixed fh;
    const uint8_t b[] = {0x3B, 0x7F};
    assert_rc(codec_parse_fixed(b, sizeof b, &fh), 0);
    cr_assert_eq(fh.type, MQTT_PUBLISH);
    cr_assert_eq(fh.flags, 0xB);
    cr_assert_eq(fh.header_len, 2);
    cr_assert_eq(fh.remaining_len, 127);
}

Test(codec, fixed_two_byte_length)
{
    struct mqtt_fixed fh;
    const uint8_t b[] = {0x30, 0xC1, 0x02};
    assert_rc(codec_parse_fixed(b, sizeof b, &fh), 0);
    cr_assert_eq(fh.header_len, 3);
    cr_assert_eq(fh.remaining_len, 321);
}

Test(codec, fixed_four_byte_length)
{
    struct mqtt_fixed fh;
    const uint8_t max[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F};
    assert_rc(codec_parse_fixed(max, sizeof max, &fh), 0);
    cr_assert_eq(fh.header_len, 5);
    cr_assert_eq(fh.remaining_len, 268435455u);
    const uint8_t min4[] = {0x30, 0x80, 0x80, 0x80, 0x01};
    assert_rc(codec_parse_fixed(min4, sizeof min4, &fh), 0);
    cr_assert_eq(fh.remaining_len, 2097152u);
}

Test(codec, fixed_fifth_length_byte_malformed)
{
    /* [MQTT-1.5.5]: at most four bytes; the fourth may not continue. */
    struct mqtt_fixed fh;
    const uint8_t b[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    assert_rc(codec_parse_fixed(b, 5, &fh), MQTT_RC_MALFORMED_PACKET);
    assert_rc(codec_parse_fixed(b, sizeof b, &fh), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, fixed_non_minimal_length_accepted)
{
    struct mqtt_fixed fh;
    const uint8_t b[] = {0xC0, 0x80, 0x00};
    assert_rc(codec_parse_fixed(b, sizeof b, &fh), 0);
    cr_assert_eq(fh.header_len, 3);
    cr_assert_eq(fh.remaining_len, 0);
}

Test(codec, fixed_type_zero_malformed)
{
    struct mqtt_fixed fh;
    const uint8_t b[] = {0x00, 0x00};
    assert_rc(codec_parse_fixed(b, sizeof b, &fh), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, fixed_reserved_flags_MQTT_2_1_3_1)
{
    /* [MQTT-2.1.3-1]: PUBREL, SUBSCRIBE, UNSUBSCRIBE carry 0x2, the rest 0.
     * The fixed header alone does not know the version, so it also lets
     * MQTT 3.1's retry form 0xA (QoS 1 + DUP) through for those three;
     * codec_decode decides (decode_fixed_flags_by_version). */
    struct mqtt_fixed fh;
    for (unsigned type = 1; type <= 15; type++) {
        if (type == MQTT_PUBLISH)
            continue;
        bool qos1 = type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE;
        for (unsigned flags = 0; flags < 16; flags++) {
            uint8_t b[2] = {(uint8_t)(type << 4 | flags), 0};
            int rc = codec_parse_fixed(b, 2, &fh);
            bool ok = qos1 ? (flags == 0x2 || flags == 0xA) : flags == 0;
            assert_rc(rc, ok ? 0 : MQTT_RC_MALFORMED_PACKET);
        }
    }
}

Test(codec, decode_fixed_flags_by_version)
{
    /* PUBREL with DUP (0x6A): a 3.1 client's retry [issue 7 defect 16];
     * malformed from 3.1.1 and 5.0 [MQTT-3.6.1-1]. */
    struct mqtt_fixed fh = {.type = MQTT_PUBREL, .flags = 0xA, .header_len = 2, .remaining_len = 2};
    const uint8_t body[] = {0x00, 0x07};
    struct mqtt_packet p;
    assert_rc(codec_decode(&fh, body, MQTT_V31, &p), 0);
    cr_assert_eq(p.u.ack.packet_id, 7);
    assert_rc(codec_decode(&fh, body, V4, &p), MQTT_RC_MALFORMED_PACKET);
    assert_rc(codec_decode(&fh, body, MQTT_V5, &p), MQTT_RC_MALFORMED_PACKET);
    fh.flags = 0x2;
    assert_rc(codec_decode(&fh, body, MQTT_V31, &p), 0);
    fh.flags = 0x8; /* DUP without QoS 1: never */
    assert_rc(codec_decode(&fh, body, MQTT_V31, &p), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, fixed_publish_qos3_malformed_MQTT_3_3_1_4)
{
    struct mqtt_fixed fh;
    for (unsigned flags = 0; flags < 16; flags++) {
        uint8_t b[2] = {(uint8_t)(0x30 | flags), 0};
        bool qos3 = ((flags >> 1) & 3) == 3;
        assert_rc(codec_parse_fixed(b, 2, &fh), qos3 ? MQTT_RC_MALFORMED_PACKET : 0);
    }
}

Test(codec, decode_rechecks_fixed_flags)
{
    /* A caller that builds its own fixed header still gets the check. */
    struct mqtt_fixed fh = {.type = MQTT_PUBREL, .flags = 0, .header_len = 2, .remaining_len = 2};
    const uint8_t body[] = {0x00, 0x01};
    struct mqtt_packet p;
    assert_rc(codec_decode(&fh, body, V4, &p), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, decode_before_connect_is_protocol_error)
{
    assert_rc(DEC(0, 0xC0, 0x00), MQTT_RC_PROTOCOL_ERROR);
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */
/* ------------------------------------------------------------------------ */

Test(codec, connect_v311_roundtrip)
{
    struct mqtt_packet in = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &in.u.connect;
    c->version = V4;
    c->clean_start = true;
    c->keepalive_s = 60;
    c->client_id = S("client-1");
    c->will_flag = true;
    c->will_qos = 1;
    c->will_retain = true;
    c->will_topic = S("clients/1/status");
    c->will_payload = S("gone");
    c->has_username = true;
    c->username = S("alice");
    c->has_password = true;
    c->password = S("s\0cret");

    struct rt rt;
    roundtrip(&in, V4, &rt);
    const struct mqtt_connect *d = &rt.p.u.connect;
    cr_assert_eq(d->version, V4);
    cr_assert(d->clean_start && d->will_flag && d->will_retain);
    cr_assert_eq(d->will_qos, 1);
    cr_assert_eq(d->keepalive_s, 60);
    assert_bytes(d->client_id, "client-1");
    assert_bytes(d->will_topic, "clients/1/status");
    assert_bytes(d->will_payload, "gone");
    assert_bytes(d->username, "alice");
    assert_bytes(d->password, "s\0cret");
    cr_assert_eq(d->props.present, 0);
    cr_assert(memcmp(rt.wire + 2, "\x00\x04MQTT\x04", 7) == 0);
}

Test(codec, connect_v311_minimal_roundtrip)
{
    struct mqtt_packet in = {.type = MQTT_CONNECT};
    in.u.connect.version = V4;
    struct rt rt;
    roundtrip(&in, V4, &rt);
    const uint8_t want[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0, 0, 0, 0, 0};
    cr_assert_eq(rt.len, sizeof want);
    cr_assert(memcmp(rt.wire, want, sizeof want) == 0);
    cr_assert_eq(rt.p.u.connect.client_id.len, 0, "zero-length id decodes; broker decides");
}

Test(codec, connect_v31_mqisdp_roundtrip)
{
    struct mqtt_packet in = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &in.u.connect;
    c->version = V31;
    c->clean_start = true;
    c->keepalive_s = 10;
    c->client_id = S("old-client");
    c->has_username = true;
    c->username = S("u");
    c->has_password = true;
    c->password = S("p");

    struct rt rt;
    roundtrip(&in, V31, &rt);
    cr_assert(memcmp(rt.wire + 2, "\x00\x06MQIsdp\x03", 9) == 0);
    cr_assert_eq(rt.p.u.connect.version, V31);
    assert_bytes(rt.p.u.connect.client_id, "old-client");
    assert_bytes(rt.p.u.connect.password, "p");
}

Test(codec, connect_v5_roundtrip_with_properties)
{
    uint8_t ups[128], wups[64];
    size_t n = user_prop(ups, "region", "eu");
    n += user_prop(ups + n, "region", "us"); /* repeated keys are allowed */
    size_t wn = user_prop(wups, "why", "crash");

    struct mqtt_packet in = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &in.u.connect;
    c->version = V5;
    c->clean_start = false;
    c->keepalive_s = 30;
    c->client_id = S("\xc3\xa9t\xc3\xa9"); /* "été" */
    struct mqtt_props *p = &c->props;
    p->present = BIT(SESSION_EXPIRY) | BIT(RECEIVE_MAXIMUM) | BIT(MAXIMUM_PACKET_SIZE) |
                 BIT(TOPIC_ALIAS_MAXIMUM) | BIT(REQUEST_PROBLEM_INFO) | BIT(REQUEST_RESPONSE_INFO) |
                 BIT(AUTH_METHOD) | BIT(AUTH_DATA) | BIT(USER_PROPERTY);
    p->session_expiry_s = 3600;
    p->receive_maximum = 20;
    p->maximum_packet_size = 65536;
    p->topic_alias_maximum = 10;
    p->request_problem_info = 0;
    p->request_response_info = 1;
    p->auth_method = S("SCRAM-SHA-256");
    p->auth_data = S("\x01\x02\x00");
    p->user_props = (struct mqtt_bytes){ups, (uint32_t)n};
    c->will_flag = true;
    c->will_qos = 2;
    struct mqtt_props *w = &c->will_props;
    w->present = BIT(WILL_DELAY) | BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) |
                 BIT(RESPONSE_TOPIC) | BIT(CORRELATION_DATA) | BIT(USER_PROPERTY);
    w->will_delay_s = 5;
    w->payload_format = 1;
    w->message_expiry_s = 86400;
    w->content_type = S("text/plain");
    w->response_topic = S("reply/here");
    w->correlation_data = S("\xff\x00");
    w->user_props = (struct mqtt_bytes){wups, (uint32_t)wn};
    c->will_topic = S("status/1");
    c->will_payload = S("offline");
    c->has_password = true; /* 5.0 allows a password without user name */
    c->password = S("token");

    struct rt rt;
    roundtrip(&in, V5, &rt);
    const struct mqtt_connect *d = &rt.p.u.connect;
    cr_assert_eq(d->version, V5);
    cr_assert(!d->clean_start && d->will_flag && !d->has_username && d->has_password);
    cr_assert_eq(d->will_qos, 2);
    assert_bytes(d->client_id, "\xc3\xa9t\xc3\xa9");
    cr_assert_eq(d->props.present, p->present);
    cr_assert_eq(d->props.session_expiry_s, 3600);
    cr_assert_eq(d->props.receive_maximum, 20);
    cr_assert_eq(d->props.maximum_packet_size, 65536);
    cr_assert_eq(d->props.topic_alias_maximum, 10);
    cr_assert_eq(d->props.request_response_info, 1);
    assert_bytes(d->props.auth_method, "SCRAM-SHA-256");
    assert_bytes(d->props.auth_data, "\x01\x02\x00");
    cr_assert_eq(d->props.user_prop_count, 2);
    cr_assert_eq(d->will_props.present, w->present);
    cr_assert_eq(d->will_props.will_delay_s, 5);
    cr_assert_eq(d->will_props.payload_format, 1);
    cr_assert_eq(d->will_props.message_expiry_s, 86400);
    assert_bytes(d->will_props.content_type, "text/plain");
    assert_bytes(d->will_props.response_topic, "reply/here");
    assert_bytes(d->will_props.correlation_data, "\xff\x00");
    cr_assert_eq(d->will_props.user_prop_count, 1);
    assert_bytes(d->will_topic, "status/1");
    assert_bytes(d->will_payload, "offline");
    assert_bytes(d->password, "token");

    size_t off = 0;
    struct mqtt_bytes k, v;
    cr_assert(codec_props_next_user(&d->props, &off, &k, &v));
    assert_bytes(k, "region");
    assert_bytes(v, "eu");
    cr_assert(codec_props_next_user(&d->props, &off, &k, &v));
    assert_bytes(k, "region");
    assert_bytes(v, "us");
    cr_assert_not(codec_props_next_user(&d->props, &off, &k, &v));
    cr_assert_eq(codec_props_user_len(&d->props), n);
}

Test(codec, connack_v311_roundtrip_maps_return_codes)
{
    static const struct {
        uint8_t reason, wire;
    } map[] = {
        {MQTT_RC_SUCCESS, 0},
        {MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 1},
        {MQTT_RC_CLIENT_ID_NOT_VALID, 2},
        {MQTT_RC_SERVER_UNAVAILABLE, 3},
        {MQTT_RC_BAD_USERNAME_OR_PASSWORD, 4},
        {MQTT_RC_NOT_AUTHORIZED, 5},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        struct mqtt_packet in = {.type = MQTT_CONNACK};
        in.u.connack.reason = map[i].reason;
        in.u.connack.session_present = map[i].reason == 0;
        struct rt rt;
        roundtrip(&in, V4, &rt);
        cr_assert_eq(rt.len, 4);
        cr_assert_eq(rt.wire[2], map[i].reason == 0 ? 1 : 0);
        cr_assert_eq(rt.wire[3], map[i].wire);
        cr_assert_eq(rt.p.u.connack.reason, map[i].reason);
        cr_assert_eq(rt.p.u.connack.session_present, map[i].reason == 0);
    }
}

Test(codec, connack_v5_roundtrip_with_properties)
{
    uint8_t ups[64];
    size_t n = user_prop(ups, "a", "b");
    struct mqtt_packet in = {.type = MQTT_CONNACK};
    struct mqtt_connack *c = &in.u.connack;
    c->session_present = true;
    struct mqtt_props *p = &c->props;
    p->present = BIT(SESSION_EXPIRY) | BIT(ASSIGNED_CLIENT_ID) | BIT(SERVER_KEEPALIVE) |
                 BIT(AUTH_METHOD) | BIT(AUTH_DATA) | BIT(RESPONSE_INFO) | BIT(SERVER_REFERENCE) |
                 BIT(REASON_STRING) | BIT(RECEIVE_MAXIMUM) | BIT(TOPIC_ALIAS_MAXIMUM) |
                 BIT(MAXIMUM_QOS) | BIT(RETAIN_AVAILABLE) | BIT(USER_PROPERTY) |
                 BIT(MAXIMUM_PACKET_SIZE) | BIT(WILDCARD_SUB_AVAILABLE) | BIT(SUB_ID_AVAILABLE) |
                 BIT(SHARED_SUB_AVAILABLE);
    p->session_expiry_s = 0xFFFFFFFFu;
    p->assigned_client_id = S("auto-7f3a");
    p->server_keepalive_s = 120;
    p->auth_method = S("m");
    p->auth_data = S("d");
    p->response_info = S("resp/");
    p->server_reference = S("other:1883");
    p->reason_string = S("welcome");
    p->receive_maximum = 65535;
    p->topic_alias_maximum = 0; /* 0 is fine: "no aliases" */
    p->maximum_qos = 1;
    p->retain_available = 0;
    p->user_props = (struct mqtt_bytes){ups, (uint32_t)n};
    p->maximum_packet_size = 1u << 20;
    p->wildcard_sub_available = 1;
    p->sub_id_available = 0;
    p->shared_sub_available = 1;

    struct rt rt;
    roundtrip(&in, V5, &rt);
    const struct mqtt_connack *d = &rt.p.u.connack;
    cr_assert(d->session_present);
    cr_assert_eq(d->reason, 0);
    cr_assert_eq(d->props.present, p->present);
    cr_assert_eq(d->props.session_expiry_s, 0xFFFFFFFFu);
    assert_bytes(d->props.assigned_client_id, "auto-7f3a");
    cr_assert_eq(d->props.server_keepalive_s, 120);
    assert_bytes(d->props.response_info, "resp/");
    assert_bytes(d->props.server_reference, "other:1883");
    assert_bytes(d->props.reason_string, "welcome");
    cr_assert_eq(d->props.receive_maximum, 65535);
    cr_assert_eq(d->props.maximum_qos, 1);
    cr_assert_eq(d->props.maximum_packet_size, 1u << 20);
    cr_assert_eq(d->props.wildcard_sub_available, 1);
    cr_assert_eq(d->props.shared_sub_available, 1);
    cr_assert_eq(d->props.user_prop_count, 1);
}

Test(codec, connack_v5_error_roundtrip)
{
    struct mqtt_packet in = {.type = MQTT_CONNACK};
    in.u.connack.reason = MQTT_RC_BANNED;
    struct rt rt;
    roundtrip(&in, V5, &rt);
    const uint8_t want[] = {0x20, 3, 0, 0x8A, 0};
    cr_assert_eq(rt.len, sizeof want);
    cr_assert(memcmp(rt.wire, want, sizeof want) == 0);
}

Test(codec, publish_v311_roundtrip_each_qos)
{
    for (uint8_t qos = 0; qos <= 2; qos++) {
        struct mqtt_packet in = {.type = MQTT_PUBLISH};
        struct mqtt_publish *p = &in.u.publish;
        p->qos = qos;
        p->retain = qos == 1;
        p->dup = qos == 2;
        p->topic = S("sensors/kitchen/temp");
        p->packet_id = qos ? 0xBEEF : 0;
        p->payload = S("21.5");
        struct rt rt;
        roundtrip(&in, V4, &rt);
        const struct mqtt_publish *d = &rt.p.u.publish;
        cr_assert_eq(d->qos, qos);
        cr_assert_eq(d->retain, qos == 1);
        cr_assert_eq(d->dup, qos == 2);
        cr_assert_eq(d->packet_id, qos ? 0xBEEF : 0);
        assert_bytes(d->topic, "sensors/kitchen/temp");
        assert_bytes(d->payload, "21.5");
        cr_assert_eq(rt.len, 2 + 2 + 20 + (qos ? 2 : 0) + 4);
    }
}

Test(codec, publish_v5_roundtrip_with_properties)
{
    uint8_t ups[64];
    size_t n = user_prop(ups, "trace", "abc");
    struct mqtt_packet in = {.type = MQTT_PUBLISH};
    struct mqtt_publish *p = &in.u.publish;
    p->qos = 1;
    p->packet_id = 7;
    p->topic = S("a/b");
    p->payload = S("{\"x\":1}");
    struct mqtt_props *pr = &p->props;
    pr->present = BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) |
                  BIT(RESPONSE_TOPIC) | BIT(CORRELATION_DATA) | BIT(SUBSCRIPTION_ID) |
                  BIT(TOPIC_ALIAS) | BIT(USER_PROPERTY);
    pr->payload_format = 1;
    pr->message_expiry_s = 60;
    pr->content_type = S("application/json");
    pr->response_topic = S("replies/1");
    pr->correlation_data = S("\x00\x01");
    pr->subscription_ids[0] = 1;
    pr->subscription_ids[1] = 268435455u; /* four-byte varint */
    pr->subscription_ids[2] = 200;
    pr->subscription_id_count = 3;
    pr->topic_alias = 3;
    pr->user_props = (struct mqtt_bytes){ups, (uint32_t)n};

    struct rt rt;
    roundtrip(&in, V5, &rt);
    const struct mqtt_publish *d = &rt.p.u.publish;
    cr_assert_eq(d->props.present, pr->present);
    cr_assert_eq(d->props.payload_format, 1);
    cr_assert_eq(d->props.message_expiry_s, 60);
    assert_bytes(d->props.content_type, "application/json");
    assert_bytes(d->props.response_topic, "replies/1");
    assert_bytes(d->props.correlation_data, "\x00\x01");
    cr_assert_eq(d->props.subscription_id_count, 3);
    cr_assert_eq(d->props.subscription_ids[0], 1);
    cr_assert_eq(d->props.subscription_ids[1], 268435455u);
    cr_assert_eq(d->props.subscription_ids[2], 200);
    cr_assert_eq(d->props.topic_alias, 3);
    cr_assert_eq(d->props.user_prop_count, 1);
    assert_bytes(d->payload, "{\"x\":1}");
}

Test(codec, publish_v5_empty_topic_with_alias_roundtrip)
{
    struct mqtt_packet in = {.type = MQTT_PUBLISH};
    in.u.publish.props.present = BIT(TOPIC_ALIAS);
    in.u.publish.props.topic_alias = 9;
    in.u.publish.payload = S("x");
    struct rt rt;
    roundtrip(&in, V5, &rt);
    cr_assert_eq(rt.p.u.publish.topic.len, 0);
    cr_assert_eq(rt.p.u.publish.props.topic_alias, 9);
}

Test(codec, publish_large_payload_roundtrip)
{
    static uint8_t payload[5000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i;
    struct mqtt_packet in = {.type = MQTT_PUBLISH};
    in.u.publish.qos = 2;
    in.u.publish.packet_id = 65535;
    in.u.publish.topic = S("big");
    in.u.publish.payload = (struct mqtt_bytes){payload, sizeof payload};
    struct rt rt;
    roundtrip(&in, V5, &rt);
    cr_assert_eq(rt.len, 1 + 2 + 2 + 3 + 2 + 1 + sizeof payload);
    cr_assert_eq(rt.p.u.publish.payload.len, sizeof payload);
    cr_assert(memcmp(rt.p.u.publish.payload.ptr, payload, sizeof payload) == 0);
}

Test(codec, publish_empty_payload_roundtrip)
{
    struct mqtt_packet in = {.type = MQTT_PUBLISH};
    in.u.publish.topic = S("t");
    in.u.publish.retain = true; /* an empty retained message clears the topic */
    struct rt rt;
    roundtrip(&in, V4, &rt);
    cr_assert_eq(rt.p.u.publish.payload.len, 0);
    cr_assert(rt.p.u.publish.retain);
}

Test(codec, acks_v311_roundtrip)
{
    const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
    for (size_t i = 0; i < sizeof types; i++) {
        struct mqtt_packet in = {.type = types[i]};
        in.u.ack.packet_id = 0x0102;
        struct rt rt;
        roundtrip(&in, V4, &rt);
        cr_assert_eq(rt.len, 4);
        cr_assert_eq(rt.wire[0], types[i] << 4 | (types[i] == MQTT_PUBREL ? 2 : 0));
        cr_assert_eq(rt.p.u.ack.packet_id, 0x0102);
    }
}

Test(codec, acks_v5_success_is_two_bytes)
{
    const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
    for (size_t i = 0; i < sizeof types; i++) {
        struct mqtt_packet in = {.type = types[i]};
        in.u.ack.packet_id = 9;
        struct rt rt;
        roundtrip(&in, V5, &rt);
        cr_assert_eq(rt.len, 4, "reason 0 without properties is omitted (3.4.2.1)");
        cr_assert_eq(rt.p.u.ack.reason, 0);
    }
}

Test(codec, acks_v5_reason_only_and_full)
{
    struct mqtt_packet in = {.type = MQTT_PUBACK};
    in.u.ack.packet_id = 9;
    in.u.ack.reason = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
    struct rt rt;
    roundtrip(&in, V5, &rt);
    cr_assert_eq(rt.len, 5);
    cr_assert_eq(rt.p.u.ack.reason, 0x10);

    uint8_t ups[32];
    size_t n = user_prop(ups, "k", "v");
    struct mqtt_packet rel = {.type = MQTT_PUBCOMP};
    rel.u.ack.packet_id = 10;
    rel.u.ack.reason = MQTT_RC_PACKET_ID_NOT_FOUND;
    rel.u.ack.props.present = BIT(REASON_STRING) | BIT(USER_PROPERTY);
    rel.u.ack.props.reason_string = S("unknown id");
    rel.u.ack.props.user_props = (struct mqtt_bytes){ups, (uint32_t)n};
    roundtrip(&rel, V5, &rt);
    cr_assert_eq(rt.p.u.ack.reason, 0x92);
    assert_bytes(rt.p.u.ack.props.reason_string, "unknown id");
    cr_assert_eq(rt.p.u.ack.props.user_prop_count, 1);

    /* Success with properties keeps the reason byte. */
    struct mqtt_packet ok = {.type = MQTT_PUBREC};
    ok.u.ack.packet_id = 11;
    ok.u.ack.props.present = BIT(REASON_STRING);
    ok.u.ack.props.reason_string = S("fine");
    roundtrip(&ok, V5, &rt);
    cr_assert_eq(rt.len, 2 + 2 + 1 + 1 + 1 + 2 + 4);
}

Test(codec, subscribe_v311_roundtrip)
{
    uint8_t entries[64];
    size_t n = sub_entry(entries, "a/+/c", 1);
    n += sub_entry(entries + n, "#", 2);
    struct mqtt_packet in = {.type = MQTT_SUBSCRIBE};
    in.u.subscribe.packet_id = 42;
    in.u.subscribe.entries = (struct mqtt_bytes){entries, (uint32_t)n};
    struct rt rt;
    roundtrip(&in, V4, &rt);
    const struct mqtt_subscribe *s = &rt.p.u.subscribe;
    cr_assert_eq(rt.wire[0], 0x82);
    cr_assert_eq(s->packet_id, 42);
    cr_assert_eq(s->count, 2);
    size_t off = 0;
    struct mqtt_sub_entry e;
    cr_assert(codec_subscribe_next(s, &off, V4, &e));
    assert_bytes(e.filter, "a/+/c");
    cr_assert_eq(e.qos, 1);
    cr_assert(codec_subscribe_next(s, &off, V4, &e));
    assert_bytes(e.filter, "#");
    cr_assert_eq(e.qos, 2);
    cr_assert_not(codec_subscribe_next(s, &off, V4, &e));
}

Test(codec, subscribe_v5_roundtrip_with_options)
{
    uint8_t entries[64], ups[32];
    size_t n = sub_entry(entries, "x/#", 0x2 | 0x4 | 0x8 | 0x20); /* qos2 nl rap rh2 */
    n += sub_entry(entries + n, "$share/g/y", 0x1 | 0x10);
    size_t un = user_prop(ups, "k", "v");
    struct mqtt_packet in = {.type = MQTT_SUBSCRIBE};
    in.u.subscribe.packet_id = 1;
    in.u.subscribe.props.present = BIT(SUBSCRIPTION_ID) | BIT(USER_PROPERTY);
    in.u.subscribe.props.subscription_ids[0] = 16384;
    in.u.subscribe.props.subscription_id_count = 1;
    in.u.subscribe.props.user_props = (struct mqtt_bytes){ups, (uint32_t)un};
    in.u.subscribe.entries = (struct mqtt_bytes){entries, (uint32_t)n};
    struct rt rt;
    roundtrip(&in, V5, &rt);
    const struct mqtt_subscribe *s = &rt.p.u.subscribe;
    cr_assert_eq(s->count, 2);
    cr_assert_eq(s->props.subscription_id_count, 1);
    cr_assert_eq(s->props.subscription_ids[0], 16384);
    size_t off = 0;
    struct mqtt_sub_entry e;
    cr_assert(codec_subscribe_next(s, &off, V5, &e));
    assert_bytes(e.filter, "x/#");
    cr_assert(e.qos == 2 && e.no_local && e.retain_as_published && e.retain_handling == 2);
    cr_assert(codec_subscribe_next(s, &off, V5, &e));
    assert_bytes(e.filter, "$share/g/y");
    cr_assert(e.qos == 1 && !e.no_local && !e.retain_as_published && e.retain_handling == 1);
    cr_assert_not(codec_subscribe_next(s, &off, V5, &e));
}

Test(codec, suback_v311_roundtrip_maps_failures)
{
    const uint8_t reasons[] = {0, 1, 2, MQTT_RC_NOT_AUTHORIZED, 0x80};
    struct mqtt_packet in = {.type = MQTT_SUBACK};
    in.u.suback.packet_id = 5;
    in.u.suback.reasons = (struct mqtt_bytes){reasons, sizeof reasons};
    uint8_t wire[32];
    size_t n = enc(&in, V4, wire);
    const uint8_t want[] = {0x90, 7, 0, 5, 0, 1, 2, 0x80, 0x80};
    cr_assert_eq(n, sizeof want);
    cr_assert(memcmp(wire, want, n) == 0);
    struct mqtt_packet p;
    assert_rc(dec(wire, n, V4, &p), 0);
    cr_assert_eq(p.u.suback.reasons.len, 5);
}

Test(codec, suback_v5_roundtrip)
{
    const uint8_t reasons[] = {0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
    struct mqtt_packet in = {.type = MQTT_SUBACK};
    in.u.suback.packet_id = 5;
    in.u.suback.props.present = BIT(REASON_STRING);
    in.u.suback.props.reason_string = S("partly");
    in.u.suback.reasons = (struct mqtt_bytes){reasons, sizeof reasons};
    struct rt rt;
    roundtrip(&in, V5, &rt);
    cr_assert(bytes_eq(rt.p.u.suback.reasons, in.u.suback.reasons));
    assert_bytes(rt.p.u.suback.props.reason_string, "partly");
}

Test(codec, unsubscribe_roundtrip_both_versions)
{
    uint8_t entries[64];
    size_t n = unsub_entry(entries, "a/b");
    n += unsub_entry(entries + n, "$share/g/#");
    for (uint8_t v = V4; v <= V5; v++) {
        struct mqtt_packet in = {.type = MQTT_UNSUBSCRIBE};
        in.u.subscribe.packet_id = 77;
        in.u.subscribe.entries = (struct mqtt_bytes){entries, (uint32_t)n};
        struct rt rt;
        roundtrip(&in, v, &rt);
        cr_assert_eq(rt.wire[0], 0xA2);
        const struct mqtt_subscribe *s = &rt.p.u.subscribe;
        cr_assert_eq(s->count, 2);
        size_t off = 0;
        struct mqtt_bytes f;
        cr_assert(codec_unsubscribe_next(s, &off, &f));
        assert_bytes(f, "a/b");
        cr_assert(codec_unsubscribe_next(s, &off, &f));
        assert_bytes(f, "$share/g/#");
        cr_assert_not(codec_unsubscribe_next(s, &off, &f));
    }
}

Test(codec, unsuback_v311_has_no_payload)
{
    const uint8_t reasons[] = {0x11};
    struct mqtt_packet in = {.type = MQTT_UNSUBACK};
    in.u.suback.packet_id = 3;
    in.u.suback.reasons = (struct mqtt_bytes){reasons, sizeof reasons};
    uint8_t wire[16];
    size_t n = enc(&in, V4, wire);
    const uint8_t want[] = {0xB0, 2, 0, 3};
    cr_assert_eq(n, sizeof want);
    cr_assert(memcmp(wire, want, n) == 0);
    struct mqtt_packet p;
    assert_rc(dec(wire, n, V4, &p), 0);
    cr_assert_eq(p.u.suback.packet_id, 3);
}

Test(codec, unsuback_v5_roundtrip)
{
    const uint8_t reasons[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
    struct mqtt_packet in = {.type = MQTT_UNSUBACK};
    in.u.suback.packet_id = 3;
    in.u.suback.reasons = (struct mqtt_bytes){reasons, sizeof reasons};
    struct rt rt;
    roundtrip(&in, V5, &rt);
    cr_assert(bytes_eq(rt.p.u.suback.reasons, in.u.suback.reasons));
}

Test(codec, ping_roundtrip)
{
    for (uint8_t v = V31; v <= V5; v++) {
        struct mqtt_packet in = {.type = MQTT_PINGREQ};
        struct rt rt;
        roundtrip(&in, v, &rt);
        cr_assert(rt.len == 2 && rt.wire[0] == 0xC0 && rt.wire[1] == 0);
        in.type = MQTT_PINGRESP;
        roundtrip(&in, v, &rt);
        cr_assert(rt.len == 2 && rt.wire[0] == 0xD0 && rt.wire[1] == 0);
    }
}

Test(codec, disconnect_v311_roundtrip)
{
    struct mqtt_packet in = {.type = MQTT_DISCONNECT};
    struct rt rt;
    roundtrip(&in, V4, &rt);
    cr_assert(rt.len == 2 && rt.wire[0] == 0xE0 && rt.wire[1] == 0);
}

Test(codec, disconnect_v5_roundtrip_all_forms)
{
    struct mqtt_packet in = {.type = MQTT_DISCONNECT};
    struct rt rt;
    roundtrip(&in, V5, &rt);
    cr_assert_eq(rt.len, 2, "normal disconnection without properties is empty");

    in.u.disconnect.reason = MQTT_RC_DISCONNECT_WITH_WILL;
    roundtrip(&in, V5, &rt);
    cr_assert_eq(rt.len, 3);
    cr_assert_eq(rt.p.u.disconnect.reason, 0x04);

    in.u.disconnect.reason = MQTT_RC_SERVER_MOVED;
    in.u.disconnect.props.present =
        BIT(SESSION_EXPIRY) | BIT(SERVER_REFERENCE) | BIT(REASON_STRING);
    in.u.disconnect.props.session_expiry_s = 0;
    in.u.disconnect.props.server_reference = S("b:1883");
    in.u.disconnect.props.reason_string = S("moved");
    roundtrip(&in, V5, &rt);
    cr_assert_eq(rt.p.u.disconnect.reason, 0x9D);
    assert_bytes(rt.p.u.disconnect.props.server_reference, "b:1883");
}

Test(codec, auth_v5_roundtrip)
{
    struct mqtt_packet in = {.type = MQTT_AUTH};
    in.u.disconnect.reason = MQTT_RC_CONTINUE_AUTHENTICATION;
    in.u.disconnect.props.present = BIT(AUTH_METHOD) | BIT(AUTH_DATA) | BIT(REASON_STRING);
    in.u.disconnect.props.auth_method = S("SCRAM-SHA-1");
    in.u.disconnect.props.auth_data = S("c=biws,r=abc");
    in.u.disconnect.props.reason_string = S("more");
    struct rt rt;
    roundtrip(&in, V5, &rt);
    cr_assert_eq(rt.wire[0], 0xF0);
    cr_assert_eq(rt.p.u.disconnect.reason, 0x18);
    assert_bytes(rt.p.u.disconnect.props.auth_method, "SCRAM-SHA-1");
    assert_bytes(rt.p.u.disconnect.props.auth_data, "c=biws,r=abc");

    struct mqtt_packet ok = {.type = MQTT_AUTH};
    roundtrip(&ok, V5, &rt);
    cr_assert_eq(rt.len, 2, "success without properties is empty (3.15.2.1)");
}

/* ------------------------------------------------------------------------ */
/* CONNECT rules                                                             */
/* ------------------------------------------------------------------------ */

Test(codec, connect_unknown_protocol_name_MQTT_3_1_2_1)
{
    assert_rc(DEC(0, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 0),
              MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
}

Test(codec, connect_unsupported_level_MQTT_3_1_2_2)
{
    assert_rc(DEC(0, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 3, 2, 0, 60, 0, 0),
              MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    assert_rc(DEC(0, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 60, 0, 0),
              MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    assert_rc(DEC(0, 0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 2, 0, 60, 0, 0),
              MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    assert_rc(DEC(0, 0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 60, 0, 0), 0);
}

Test(codec, connect_reserved_flag_MQTT_3_1_2_3)
{
    assert_rc(DEC(0, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 60, 0, 0),
              MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(0, 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x03, 0, 60, 0, 0, 0),
              MQTT_RC_MALFORMED_PACKET);
}

Test(codec, connect_will_qos_without_will_MQTT_3_1_2_11)
{
    assert_rc(DEC(0, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x0A, 0, 60, 0, 0),
              MQTT_RC_MALFORMED_PACKET);
}

Test(codec, connect_will_qos3_MQTT_3_1_2_12)
{
    /* will flag, QoS 3, and a will that would otherwise be fine */
    assert_rc(
        DEC(0, 0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x1E, 0, 60, 0, 0, 0, 1, 't', 0, 1, 'x'),
        MQTT_RC_MALFORMED_PACKET);
}

Test(codec, connect_will_retain_without_will_MQTT_3_1_2_13)
{
    assert_rc(DEC(0, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x22, 0, 60, 0, 0),
              MQTT_RC_MALFORMED_PACKET);
}

Test(codec, connect_v311_password_without_username_MQTT_3_1_2_22)
{
    assert_rc(DEC(0, 0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 60, 0, 0, 0, 2, 'p', 'w'),
              MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, connect_v5_password_without_username_allowed)
{
    assert_rc(DEC(0, 0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x42, 0, 60, 0, 0, 0, 0, 2, 'p', 'w'),
              0);
}

Test(codec, connect_client_id_utf8_MQTT_3_1_3_4)
{
    assert_rc(DEC(0, 0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 2, 0xC0, 0x80),
              MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(0, 0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 2, 'a', 0),
              MQTT_RC_MALFORMED_PACKET);
    /* Any valid UTF-8 decodes: which characters to allow is the broker's. */
    assert_rc(DEC(0, 0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 3, 'a', ' ', '/'), 0);
}

Test(codec, connect_will_topic_wildcard_is_topic_name_invalid)
{
    assert_rc(
        DEC(0, 0x10, 19, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 60, 0, 0, 0, 3, 'a', '/', '#', 0, 0),
        MQTT_RC_TOPIC_NAME_INVALID);
    assert_rc(DEC(0, 0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 60, 0, 0, 0, 0, 0, 0),
              MQTT_RC_TOPIC_NAME_INVALID);
}

Test(codec, connect_will_payload_format_invalid)
{
    struct mqtt_packet in = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &in.u.connect;
    c->version = V5;
    c->will_flag = true;
    c->will_props.present = BIT(PAYLOAD_FORMAT);
    c->will_props.payload_format = 1;
    c->will_topic = S("t");
    c->will_payload = S("\xff\xfe");
    uint8_t wire[64];
    size_t n = enc(&in, V5, wire);
    struct mqtt_packet p;
    assert_rc(dec(wire, n, V5, &p), MQTT_RC_PAYLOAD_FORMAT_INVALID);

    c->will_props.payload_format = 0; /* unspecified bytes: anything goes */
    n = enc(&in, V5, wire);
    assert_rc(dec(wire, n, V5, &p), 0);
}

Test(codec, connect_auth_data_without_method)
{
    /* props: 16 00 01 'x' (auth data only) */
    assert_rc(DEC(0, 0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 4, 0x16, 0, 1, 'x', 0, 0),
              MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, connect_request_problem_info_not_0_or_1)
{
    assert_rc(DEC(0, 0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 2, 0x17, 2, 0, 0),
              MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(0, 0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 2, 0x17, 1, 0, 0), 0);
}

Test(codec, connect_request_response_info_not_0_or_1)
{
    assert_rc(DEC(0, 0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 2, 0x19, 2, 0, 0),
              MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, connect_receive_maximum_zero)
{
    assert_rc(DEC(0, 0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 3, 0x21, 0, 0, 0, 0),
              MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, connect_maximum_packet_size_zero)
{
    assert_rc(DEC(0, 0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 5, 0x27, 0, 0, 0, 0, 0, 0),
              MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, connect_will_property_in_connect_props)
{
    /* Will Delay Interval belongs to the will properties, not CONNECT's. */
    assert_rc(DEC(0, 0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 0),
              MQTT_RC_MALFORMED_PACKET);
}

Test(codec, connect_trailing_bytes_malformed)
{
    assert_rc(DEC(0, 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0, 0xAA),
              MQTT_RC_MALFORMED_PACKET);
}

Test(codec, connect_every_truncation_fails)
{
    /* Every field of CONNECT is length-prefixed or fixed, so no prefix of a
     * valid CONNECT body is itself valid. */
    uint8_t ups[32];
    size_t un = user_prop(ups, "k", "v");
    struct mqtt_packet in = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &in.u.connect;
    c->version = V5;
    c->client_id = S("id");
    c->props.present = BIT(SESSION_EXPIRY) | BIT(USER_PROPERTY);
    c->props.session_expiry_s = 9;
    c->props.user_props = (struct mqtt_bytes){ups, (uint32_t)un};
    c->will_flag = true;
    c->will_topic = S("w");
    c->will_payload = S("p");
    c->has_username = true;
    c->username = S("u");
    c->has_password = true;
    c->password = S("pw");
    uint8_t wire[128];
    size_t n = enc(&in, V5, wire);
    struct mqtt_fixed fh;
    assert_rc(codec_parse_fixed(wire, n, &fh), 0);
    for (uint32_t len = 0; len < fh.remaining_len; len++) {
        struct mqtt_fixed cut = fh;
        cut.remaining_len = len;
        struct mqtt_packet p;
        int rc = codec_decode(&cut, wire + fh.header_len, V5, &p);
        cr_assert_neq(rc, 0, "a body cut to %u bytes decoded", len);
    }
}

/* ------------------------------------------------------------------------ */
/* CONNACK rules                                                             */
/* ------------------------------------------------------------------------ */

Test(codec, connack_reserved_flags_MQTT_3_2_2_1)
{
    assert_rc(DEC(V4, 0x20, 2, 0x02, 0), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V5, 0x20, 3, 0x80, 0, 0), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, connack_v311_reserved_return_code)
{
    assert_rc(DEC(V4, 0x20, 2, 0, 6), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, connack_session_present_with_error_MQTT_3_2_2_6)
{
    assert_rc(DEC(V4, 0x20, 2, 1, 5), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0x20, 3, 1, 0x87, 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, connack_v5_needs_property_length)
{
    assert_rc(DEC(V5, 0x20, 2, 0, 0), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, connack_v5_unknown_reason)
{
    assert_rc(DEC(V5, 0x20, 3, 0, 0x01, 0), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0x20, 3, 0, 0x8B, 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, connack_byte_properties_are_0_or_1)
{
    const uint8_t ids[] = {0x24, 0x25, 0x28, 0x29, 0x2A};
    for (size_t i = 0; i < sizeof ids; i++) {
        for (uint8_t v = 0; v <= 2; v++) {
            const uint8_t pkt[] = {0x20, 5, 0, 0, 2, ids[i], v};
            struct mqtt_packet p;
            assert_rc(dec(pkt, sizeof pkt, V5, &p), v <= 1 ? 0 : MQTT_RC_PROTOCOL_ERROR);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* PUBLISH rules                                                             */
/* ------------------------------------------------------------------------ */

Test(codec, publish_dup_with_qos0_MQTT_3_3_1_2)
{
    assert_rc(DEC(V4, 0x38, 3, 0, 1, 't'), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V4, 0x3A, 5, 0, 1, 't', 0, 1), 0);
}

Test(codec, publish_packet_id_zero_MQTT_2_2_1_3)
{
    assert_rc(DEC(V4, 0x32, 5, 0, 1, 't', 0, 0), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0x34, 6, 0, 1, 't', 0, 0, 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, publish_topic_wildcard_MQTT_3_3_2_2)
{
    assert_rc(DEC(V4, 0x30, 4, 0, 2, 'a', '+'), MQTT_RC_TOPIC_NAME_INVALID);
    assert_rc(DEC(V5, 0x30, 5, 0, 2, '#', 'a', 0), MQTT_RC_TOPIC_NAME_INVALID);
}

Test(codec, publish_topic_utf8_MQTT_3_3_2_1)
{
    assert_rc(DEC(V4, 0x30, 3, 0, 1, 0xFF), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V4, 0x30, 4, 0, 2, 'a', 0), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V4, 0x30, 5, 0, 3, 0xED, 0xA0, 0x80), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, publish_topic_length_beyond_packet)
{
    assert_rc(DEC(V4, 0x30, 3, 0, 5, 't'), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V4, 0x30, 1, 0), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V4, 0x32, 4, 0, 1, 't', 0), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, publish_empty_topic_v311_MQTT_4_7_3_1)
{
    assert_rc(DEC(V4, 0x30, 2, 0, 0), MQTT_RC_TOPIC_NAME_INVALID);
}

Test(codec, publish_v5_empty_topic_needs_alias)
{
    assert_rc(DEC(V5, 0x30, 3, 0, 0, 0), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0x30, 6, 0, 0, 3, 0x23, 0, 5), 0);
}

Test(codec, publish_topic_alias_zero_MQTT_3_3_2_8)
{
    assert_rc(DEC(V5, 0x30, 7, 0, 1, 't', 3, 0x23, 0, 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, publish_payload_format_not_0_or_1)
{
    assert_rc(DEC(V5, 0x30, 6, 0, 1, 't', 2, 0x01, 2), MQTT_RC_PROTOCOL_ERROR);
    /* A PUBLISH's payload is not checked against the indicator (a MAY). */
    assert_rc(DEC(V5, 0x30, 7, 0, 1, 't', 2, 0x01, 1, 0xFF), 0);
}

Test(codec, publish_up_to_8_subscription_ids)
{
    assert_rc(DEC(V5, 0x30, 20, 0, 1, 't', 16, 0x0B, 1, 0x0B, 2, 0x0B, 3, 0x0B, 4, 0x0B, 5, 0x0B, 6,
                  0x0B, 7, 0x0B, 8),
              0);
    assert_rc(DEC(V5, 0x30, 22, 0, 1, 't', 18, 0x0B, 1, 0x0B, 2, 0x0B, 3, 0x0B, 4, 0x0B, 5, 0x0B, 6,
                  0x0B, 7, 0x0B, 8, 0x0B, 9),
              MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, publish_subscription_id_zero)
{
    assert_rc(DEC(V5, 0x30, 6, 0, 1, 't', 2, 0x0B, 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, publish_subscription_id_five_bytes_malformed)
{
    assert_rc(DEC(V5, 0x30, 10, 0, 1, 't', 6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01),
              MQTT_RC_MALFORMED_PACKET);
}

Test(codec, publish_response_topic_wildcard_MQTT_3_3_2_14)
{
    assert_rc(DEC(V5, 0x30, 10, 0, 1, 't', 6, 0x08, 0, 3, 'a', '/', '#'), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0x30, 10, 0, 1, 't', 6, 0x08, 0, 3, 'a', '/', 'b'), 0);
}

Test(codec, publish_property_not_allowed)
{
    /* Session Expiry Interval is not a PUBLISH property (2.2.2.2). */
    assert_rc(DEC(V5, 0x30, 9, 0, 1, 't', 5, 0x11, 0, 0, 0, 1), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, publish_property_duplicated)
{
    assert_rc(DEC(V5, 0x30, 14, 0, 1, 't', 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2),
              MQTT_RC_PROTOCOL_ERROR);
}

/* ------------------------------------------------------------------------ */
/* Property block rules, on DISCONNECT for brevity                           */
/* ------------------------------------------------------------------------ */

Test(codec, property_unknown_identifier)
{
    assert_rc(DEC(V5, 0xE0, 4, 0, 2, 0x04, 0), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V5, 0xE0, 4, 0, 2, 0x80, 0x01), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, property_length_beyond_packet)
{
    assert_rc(DEC(V5, 0xE0, 3, 0, 5, 0x11), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, property_value_truncated)
{
    assert_rc(DEC(V5, 0xE0, 5, 0, 3, 0x11, 0, 0), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V5, 0xE0, 6, 0, 4, 0x1F, 0, 5, 'a'), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, property_duplicated)
{
    assert_rc(DEC(V5, 0xE0, 12, 0, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, property_not_allowed_in_packet)
{
    assert_rc(DEC(V5, 0xE0, 5, 0, 3, 0x23, 0, 1), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, property_user_repeated_allowed)
{
    struct mqtt_packet p;
    static const uint8_t pkt[] = {0xE0, 15,  0,    13, 0x26, 0,   1, 'k', 0,
                                  1,    'v', 0x26, 0,  1,    'k', 0, 0};
    assert_rc(dec(pkt, sizeof pkt, V5, &p), 0);
    cr_assert_eq(p.u.disconnect.props.user_prop_count, 2);
    cr_assert_eq(codec_props_user_len(&p.u.disconnect.props), 13);
    uint8_t copy[16];
    cr_assert_eq(codec_props_copy_user(&p.u.disconnect.props, copy), 13);
    cr_assert(memcmp(copy, pkt + 4, 13) == 0);
}

Test(codec, property_user_utf8_MQTT_1_5_7_1)
{
    assert_rc(DEC(V5, 0xE0, 9, 0, 7, 0x26, 0, 1, 'k', 0, 1, 0xFF), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V5, 0xE0, 9, 0, 7, 0x26, 0, 1, 0, 0, 1, 'v'), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, property_string_utf8_MQTT_1_5_4_1)
{
    assert_rc(DEC(V5, 0xE0, 7, 0, 5, 0x1F, 0, 2, 0xC3, 0x28), MQTT_RC_MALFORMED_PACKET);
}

/* ------------------------------------------------------------------------ */
/* Acks                                                                      */
/* ------------------------------------------------------------------------ */

Test(codec, ack_v311_length_must_be_2)
{
    assert_rc(DEC(V4, 0x40, 3, 0, 1, 0), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V4, 0x40, 1, 0), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, ack_packet_id_zero_MQTT_2_2_1_5)
{
    assert_rc(DEC(V4, 0x40, 2, 0, 0), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0x70, 2, 0, 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, puback_reason_codes_MQTT_3_4_2_1)
{
    for (unsigned rc = 0; rc < 256; rc++) {
        bool ok = rc == 0x00 || rc == 0x10 || rc == 0x80 || rc == 0x83 || rc == 0x87 ||
                  rc == 0x90 || rc == 0x91 || rc == 0x97 || rc == 0x99;
        for (uint8_t type = MQTT_PUBACK; type <= MQTT_PUBREC; type++) {
            const uint8_t pkt[] = {(uint8_t)(type << 4), 3, 0, 1, (uint8_t)rc};
            struct mqtt_packet p;
            assert_rc(dec(pkt, sizeof pkt, V5, &p), ok ? 0 : MQTT_RC_PROTOCOL_ERROR);
        }
    }
}

Test(codec, pubrel_pubcomp_reason_codes_MQTT_3_6_2_1)
{
    for (unsigned rc = 0; rc < 256; rc++) {
        bool ok = rc == 0x00 || rc == 0x92;
        const uint8_t rel[] = {0x62, 3, 0, 1, (uint8_t)rc};
        const uint8_t comp[] = {0x70, 3, 0, 1, (uint8_t)rc};
        struct mqtt_packet p;
        assert_rc(dec(rel, sizeof rel, V5, &p), ok ? 0 : MQTT_RC_PROTOCOL_ERROR);
        assert_rc(dec(comp, sizeof comp, V5, &p), ok ? 0 : MQTT_RC_PROTOCOL_ERROR);
    }
}

Test(codec, ack_v5_property_not_allowed)
{
    assert_rc(DEC(V5, 0x40, 7, 0, 1, 0, 3, 0x23, 0, 1), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, ack_v5_trailing_bytes)
{
    assert_rc(DEC(V5, 0x40, 5, 0, 1, 0, 0, 0xAA), MQTT_RC_MALFORMED_PACKET);
}

/* ------------------------------------------------------------------------ */
/* SUBSCRIBE / UNSUBSCRIBE / SUBACK / UNSUBACK                               */
/* ------------------------------------------------------------------------ */

Test(codec, subscribe_packet_id_zero_MQTT_2_2_1_3)
{
    assert_rc(DEC(V4, 0x82, 6, 0, 0, 0, 1, 'a', 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, subscribe_no_filter_MQTT_3_8_3_3)
{
    assert_rc(DEC(V4, 0x82, 2, 0, 1), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0x82, 3, 0, 1, 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, subscribe_invalid_filter)
{
    assert_rc(DEC(V4, 0x82, 7, 0, 1, 0, 2, 'a', '#', 0), MQTT_RC_TOPIC_FILTER_INVALID);
    assert_rc(DEC(V5, 0x82, 6, 0, 1, 0, 0, 0, 0), MQTT_RC_TOPIC_FILTER_INVALID);
    assert_rc(DEC(V5, 0x82, 13, 0, 1, 0, 0, 7, '$', 's', 'h', 'a', 'r', 'e', '/', 0),
              MQTT_RC_TOPIC_FILTER_INVALID);
}

Test(codec, subscribe_filter_utf8_MQTT_3_8_3_1)
{
    assert_rc(DEC(V4, 0x82, 6, 0, 1, 0, 1, 0x80, 0), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, subscribe_missing_options)
{
    assert_rc(DEC(V4, 0x82, 5, 0, 1, 0, 1, 'a'), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, subscribe_v311_reserved_option_bits_MQTT_3_8_3_4)
{
    assert_rc(DEC(V4, 0x82, 6, 0, 1, 0, 1, 'a', 0), 0);
    for (unsigned bit = 2; bit < 8; bit++) {
        const uint8_t pkt[] = {0x82, 6, 0, 1, 0, 1, 'a', (uint8_t)(1u << bit)};
        struct mqtt_packet p;
        assert_rc(dec(pkt, sizeof pkt, V4, &p), MQTT_RC_MALFORMED_PACKET);
    }
}

Test(codec, subscribe_qos3)
{
    assert_rc(DEC(V4, 0x82, 6, 0, 1, 0, 1, 'a', 3), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V5, 0x82, 7, 0, 1, 0, 0, 1, 'a', 3), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, subscribe_v5_retain_handling_3)
{
    assert_rc(DEC(V5, 0x82, 7, 0, 1, 0, 0, 1, 'a', 0x30), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, subscribe_v5_reserved_bits_MQTT_3_8_3_5)
{
    assert_rc(DEC(V5, 0x82, 7, 0, 1, 0, 0, 1, 'a', 0x40), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V5, 0x82, 7, 0, 1, 0, 0, 1, 'a', 0x80), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, subscribe_v5_no_local_on_shared_MQTT_3_8_3_4)
{
    assert_rc(
        DEC(V5, 0x82, 16, 0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a', 0x04),
        MQTT_RC_PROTOCOL_ERROR);
    assert_rc(
        DEC(V5, 0x82, 16, 0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a', 0x00),
        0);
}

Test(codec, subscribe_subscription_id_zero)
{
    assert_rc(DEC(V5, 0x82, 9, 0, 1, 2, 0x0B, 0, 0, 1, 'a', 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, subscribe_two_subscription_ids)
{
    assert_rc(DEC(V5, 0x82, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 'a', 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, unsubscribe_no_filter_MQTT_3_10_3_2)
{
    assert_rc(DEC(V4, 0xA2, 2, 0, 1), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0xA2, 3, 0, 1, 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, unsubscribe_invalid_filter)
{
    assert_rc(DEC(V4, 0xA2, 6, 0, 1, 0, 2, 'a', '+'), MQTT_RC_TOPIC_FILTER_INVALID);
}

Test(codec, unsubscribe_packet_id_zero)
{
    assert_rc(DEC(V4, 0xA2, 5, 0, 0, 0, 1, 'a'), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, unsubscribe_only_user_properties)
{
    assert_rc(DEC(V5, 0xA2, 8, 0, 1, 2, 0x0B, 1, 0, 1, 'a'), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, suback_v311_reserved_return_code_MQTT_3_9_3_2)
{
    assert_rc(DEC(V4, 0x90, 3, 0, 1, 0x03), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V4, 0x90, 3, 0, 1, 0x87), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V4, 0x90, 3, 0, 1, 0x80), 0);
}

Test(codec, suback_v5_reason_codes_MQTT_3_9_3_1)
{
    assert_rc(DEC(V5, 0x90, 4, 0, 1, 0, 0x03), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0x90, 4, 0, 1, 0, 0x11), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, suback_without_reasons)
{
    assert_rc(DEC(V4, 0x90, 2, 0, 1), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, unsuback_v311_length_must_be_2)
{
    assert_rc(DEC(V4, 0xB0, 3, 0, 1, 0), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, unsuback_v5_reason_codes_MQTT_3_11_3_1)
{
    assert_rc(DEC(V5, 0xB0, 4, 0, 1, 0, 0x01), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0xB0, 4, 0, 1, 0, 0x11), 0);
}

/* ------------------------------------------------------------------------ */
/* PINGREQ, PINGRESP, DISCONNECT, AUTH                                       */
/* ------------------------------------------------------------------------ */

Test(codec, pingreq_length_must_be_0)
{
    assert_rc(DEC(V4, 0xC0, 1, 0), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V5, 0xC0, 1, 0), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, pingresp_length_must_be_0)
{
    assert_rc(DEC(V4, 0xD0, 1, 0), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, disconnect_v311_length_must_be_0)
{
    assert_rc(DEC(V4, 0xE0, 1, 0), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V31, 0xE0, 0), 0);
}

Test(codec, disconnect_v5_reason_only)
{
    struct mqtt_packet p;
    static const uint8_t pkt[] = {0xE0, 1, 0x8E};
    assert_rc(dec(pkt, sizeof pkt, V5, &p), 0);
    cr_assert_eq(p.u.disconnect.reason, MQTT_RC_SESSION_TAKEN_OVER);
    cr_assert_eq(p.u.disconnect.props.present, 0);
}

Test(codec, disconnect_v5_reason_codes_MQTT_3_14_2_1)
{
    assert_rc(DEC(V5, 0xE0, 1, 0x05), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0xE0, 1, 0x84), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0xE0, 1, 0xA2), 0);
}

Test(codec, auth_in_v311_malformed)
{
    assert_rc(DEC(V4, 0xF0, 0), MQTT_RC_MALFORMED_PACKET);
    assert_rc(DEC(V31, 0xF0, 0), MQTT_RC_MALFORMED_PACKET);
}

Test(codec, auth_reason_codes_MQTT_3_15_2_1)
{
    assert_rc(DEC(V5, 0xF0, 5, 0x05, 3, 0x15, 0, 0), MQTT_RC_PROTOCOL_ERROR);
    assert_rc(DEC(V5, 0xF0, 5, 0x19, 3, 0x15, 0, 0), 0);
}

Test(codec, auth_without_method)
{
    assert_rc(DEC(V5, 0xF0, 2, 0x18, 0), MQTT_RC_PROTOCOL_ERROR);
}

Test(codec, auth_reason_without_property_length)
{
    assert_rc(DEC(V5, 0xF0, 1, 0x18), MQTT_RC_MALFORMED_PACKET);
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

#define UTF8(lit) codec_utf8_valid((const uint8_t *)(lit), sizeof(lit) - 1)

Test(codec, utf8_empty_and_ascii)
{
    cr_assert(codec_utf8_valid(NULL, 0));
    cr_assert(UTF8("a"));
    cr_assert(UTF8("sensors/kitchen/temperature/celsius"));
    cr_assert(UTF8("\x01\x1f\x7f")); /* control characters are a SHOULD NOT */
}

Test(codec, utf8_valid_multibyte)
{
    cr_assert(UTF8("\xc3\xa9"));                               /* U+00E9 */
    cr_assert(UTF8("\xc2\x80"));                               /* U+0080, smallest two-byte */
    cr_assert(UTF8("\xe2\x82\xac"));                           /* U+20AC */
    cr_assert(UTF8("\xe0\xa0\x80"));                           /* U+0800, smallest three-byte */
    cr_assert(UTF8("\xed\x9f\xbf"));                           /* U+D7FF, just below surrogates */
    cr_assert(UTF8("\xee\x80\x80"));                           /* U+E000, just above */
    cr_assert(UTF8("\xef\xbf\xbf"));                           /* U+FFFF */
    cr_assert(UTF8("\xef\xbb\xbf"));                           /* U+FEFF, kept [MQTT-1.5.4-3] */
    cr_assert(UTF8("\xf0\x90\x80\x80"));                       /* U+10000 */
    cr_assert(UTF8("\xf0\x9f\x98\x80"));                       /* U+1F600 */
    cr_assert(UTF8("\xf4\x8f\xbf\xbf"));                       /* U+10FFFF */
    cr_assert(UTF8("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/x")); /* mixed */
}

Test(codec, utf8_overlong)
{
    cr_assert_not(UTF8("\xc0\x80"));
    cr_assert_not(UTF8("\xc1\xbf"));
    cr_assert_not(UTF8("\xe0\x80\x80"));
    cr_assert_not(UTF8("\xe0\x9f\xbf"));
    cr_assert_not(UTF8("\xf0\x80\x80\x80"));
    cr_assert_not(UTF8("\xf0\x8f\xbf\xbf"));
}

Test(codec, utf8_surrogates_MQTT_1_5_4_1)
{
    cr_assert_not(UTF8("\xed\xa0\x80")); /* U+D800 */
    cr_assert_not(UTF8("\xed\xaf\xbf")); /* U+DBFF */
    cr_assert_not(UTF8("\xed\xb0\x80")); /* U+DC00 */
    cr_assert_not(UTF8("\xed\xbf\xbf")); /* U+DFFF */
}

Test(codec, utf8_nul_MQTT_1_5_4_2)
{
    cr_assert_not(UTF8("\0"));
    cr_assert_not(UTF8("a\0b"));
}

Test(codec, utf8_truncated)
{
    cr_assert_not(UTF8("\xc3"));
    cr_assert_not(UTF8("\xe2\x82"));
    cr_assert_not(UTF8("\xf0\x9f\x98"));
    cr_assert_not(UTF8("\xe2\x82"
                       "a"));
    cr_assert_not(UTF8("abcdefgh\xf0\x9f"));
}

Test(codec, utf8_bad_bytes)
{
    cr_assert_not(UTF8("\x80")); /* lone continuation */
    cr_assert_not(UTF8("\xbf"));
    cr_assert_not(UTF8("\xc3\x28")); /* continuation missing */
    cr_assert_not(UTF8("\xe2\x28\xa1"));
    cr_assert_not(UTF8("\xf0\x28\x8c\xbc"));
    cr_assert_not(UTF8("\xf4\x90\x80\x80")); /* above U+10FFFF */
    cr_assert_not(UTF8("\xf5\x80\x80\x80"));
    cr_assert_not(UTF8("\xfe"));
    cr_assert_not(UTF8("\xff"));
}

Test(codec, utf8_fast_path_every_position)
{
    /* The word-at-a-time path must see a NUL or a bad byte wherever it is,
     * and must not lose a multibyte character across word boundaries. */
    uint8_t s[48];
    for (size_t len = 1; len <= sizeof s; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            memset(s, 'a', len);
            cr_assert(codec_utf8_valid(s, len));
            s[pos] = 0;
            cr_assert_not(codec_utf8_valid(s, len), "NUL at %zu of %zu", pos, len);
            s[pos] = 0xFF;
            cr_assert_not(codec_utf8_valid(s, len), "0xFF at %zu of %zu", pos, len);
            if (pos + 2 <= len) {
                memset(s, 'a', len);
                s[pos] = 0xC3;
                s[pos + 1] = 0xA9;
                cr_assert(codec_utf8_valid(s, len), "U+00E9 at %zu of %zu", pos, len);
                s[pos + 1] = 'a';
                cr_assert_not(codec_utf8_valid(s, len));
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

Test(codec, varint_size_boundaries)
{
    cr_assert_eq(codec_varint_size(0), 1);
    cr_assert_eq(codec_varint_size(127), 1);
    cr_assert_eq(codec_varint_size(128), 2);
    cr_assert_eq(codec_varint_size(16383), 2);
    cr_assert_eq(codec_varint_size(16384), 3);
    cr_assert_eq(codec_varint_size(2097151), 3);
    cr_assert_eq(codec_varint_size(2097152), 4);
    cr_assert_eq(codec_varint_size(268435455), 4);
}

Test(codec, encoded_varint_boundaries)
{
    /* Payload sizes that put the remaining length on each boundary. */
    static uint8_t payload[16384];
    static uint8_t wire[16384 + 16];
    const uint32_t rls[] = {127, 128, 16383, 16384};
    for (size_t i = 0; i < 4; i++) {
        struct mqtt_packet in = {.type = MQTT_PUBLISH};
        in.u.publish.topic = S("t");
        in.u.publish.payload = (struct mqtt_bytes){payload, rls[i] - 3};
        size_t n = codec_encode(wire, &in, V4);
        cr_assert_eq(n, codec_encoded_size(&in, V4));
        struct mqtt_fixed fh;
        assert_rc(codec_parse_fixed(wire, n, &fh), 0);
        cr_assert_eq(fh.remaining_len, rls[i]);
        cr_assert_eq(fh.header_len, 1 + codec_varint_size(rls[i]));
    }
}

Test(codec, publish_packet_id_offset_and_set_dup)
{
    static uint8_t payload[300];
    uint8_t wire[400];
    struct mqtt_packet in = {.type = MQTT_PUBLISH};
    in.u.publish.qos = 1;
    in.u.publish.packet_id = 1;
    in.u.publish.topic = S("a/b");
    in.u.publish.payload = (struct mqtt_bytes){payload, sizeof payload};
    for (uint8_t v = V4; v <= V5; v++) {
        size_t n = enc(&in, v, wire);
        size_t off = codec_publish_packet_id_offset(wire);
        cr_assert_eq(off, 1 + 2 + 2 + 3, "two-byte remaining length, topic \"a/b\"");
        wire[off] = 0x12;
        wire[off + 1] = 0x34;
        codec_publish_set_dup(wire);
        struct mqtt_packet p;
        assert_rc(dec(wire, n, v, &p), 0);
        cr_assert_eq(p.u.publish.packet_id, 0x1234);
        cr_assert(p.u.publish.dup);
        cr_assert_eq(p.u.publish.qos, 1);
    }
}

Test(codec, connack_rc_v311_mapping)
{
    cr_assert_eq(codec_connack_rc_v311(MQTT_RC_SUCCESS), 0);
    cr_assert_eq(codec_connack_rc_v311(MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION), 1);
    cr_assert_eq(codec_connack_rc_v311(MQTT_RC_CLIENT_ID_NOT_VALID), 2);
    cr_assert_eq(codec_connack_rc_v311(MQTT_RC_SERVER_UNAVAILABLE), 3);
    cr_assert_eq(codec_connack_rc_v311(MQTT_RC_SERVER_BUSY), 3);
    cr_assert_eq(codec_connack_rc_v311(MQTT_RC_QUOTA_EXCEEDED), 3);
    cr_assert_eq(codec_connack_rc_v311(MQTT_RC_BAD_USERNAME_OR_PASSWORD), 4);
    cr_assert_eq(codec_connack_rc_v311(MQTT_RC_NOT_AUTHORIZED), 5);
    cr_assert_eq(codec_connack_rc_v311(MQTT_RC_BANNED), 5);
    for (unsigned rc = 0; rc < 256; rc++)
        cr_assert_leq(codec_connack_rc_v311((uint8_t)rc), 5);
}

Test(codec, type_names)
{
    cr_assert_str_eq(codec_type_name(MQTT_CONNECT), "CONNECT");
    cr_assert_str_eq(codec_type_name(MQTT_PUBLISH), "PUBLISH");
    cr_assert_str_eq(codec_type_name(MQTT_UNSUBACK), "UNSUBACK");
    cr_assert_str_eq(codec_type_name(MQTT_AUTH), "AUTH");
    cr_assert_str_eq(codec_type_name(0), "RESERVED");
    cr_assert_str_eq(codec_type_name(200), "UNKNOWN");
}

Test(codec, user_props_iteration_skips_other_properties)
{
    /* DISCONNECT with reason string, user prop, session expiry, user prop:
     * the iterator must step over the others by their types. */
    static const uint8_t pkt[] = {0xE0, 25,  0,    23, 0x1F, 0, 2, 'h',  'i', 0x26, 0,   1, 'a', 0,
                                  1,    'b', 0x11, 0,  0,    0, 5, 0x26, 0,   1,    'c', 0, 0};
    struct mqtt_packet p;
    assert_rc(dec(pkt, sizeof pkt, V5, &p), 0);
    const struct mqtt_props *pr = &p.u.disconnect.props;
    cr_assert_eq(pr->user_prop_count, 2);
    cr_assert_eq(pr->session_expiry_s, 5);
    size_t off = 0;
    struct mqtt_bytes k, v;
    cr_assert(codec_props_next_user(pr, &off, &k, &v));
    assert_bytes(k, "a");
    assert_bytes(v, "b");
    cr_assert(codec_props_next_user(pr, &off, &k, &v));
    assert_bytes(k, "c");
    cr_assert_eq(v.len, 0);
    cr_assert_not(codec_props_next_user(pr, &off, &k, &v));
}

Test(codec, decode_never_reads_past_body)
{
    /* Every packet above the fixed header, cut short by one byte, either
     * fails or (PUBLISH) yields a payload that ends inside the body: run a
     * few through an exact-size heap copy so ASan would catch an overread. */
    static const uint8_t pkts[][8] = {
        {0x40, 2, 0, 1},
        {0x90, 3, 0, 1, 0},
        {0xE0, 1, 0},
        {0x30, 3, 0, 1, 't'},
    };
    for (size_t i = 0; i < sizeof pkts / sizeof pkts[0]; i++) {
        struct mqtt_fixed fh;
        assert_rc(codec_parse_fixed(pkts[i], 8, &fh), 0);
        for (uint32_t len = 0; len <= fh.remaining_len; len++) {
            uint8_t *body = malloc(len ? len : 1);
            memcpy(body, pkts[i] + 2, len);
            struct mqtt_fixed cut = fh;
            cut.remaining_len = len;
            struct mqtt_packet p;
            for (uint8_t v = V4; v <= V5; v++)
                (void)codec_decode(&cut, body, v, &p);
            free(body);
        }
    }
}

/* A PUBLISH that arrived at the largest size MQTT allows can outgrow it on
 * the way out (5.0 property length, subscription identifiers): codec_fits
 * says so instead of encoding a Remaining Length over 268435455. */
Test(codec, fits_refuses_a_publish_over_the_largest_packet)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = 1;
    p.u.publish.packet_id = 1;
    p.u.publish.topic.ptr = (const uint8_t *)"t";
    p.u.publish.topic.len = 1;
    /* Sizes only: nothing reads the payload. */
    p.u.publish.payload.ptr = (const uint8_t *)"";
    p.u.publish.payload.len = 268435455u - 2 - 1 - 2; /* 3.1.1 body exactly at the limit */
    size_t n = 0;
    cr_assert(codec_fits(&p, MQTT_V311, &n), "at the limit it fits");
    cr_assert_eq(n, 1 + 4 + 268435455u);
    cr_assert_not(codec_fits(&p, MQTT_V5, &n), "5.0 adds a property length byte");
    p.u.publish.payload.len -= 1;
    cr_assert(codec_fits(&p, MQTT_V5, &n));
    p.u.publish.props.present = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
    p.u.publish.props.subscription_ids[0] = 7;
    p.u.publish.props.subscription_id_count = 1;
    cr_assert_not(codec_fits(&p, MQTT_V5, &n), "a subscription identifier takes it over");
}
