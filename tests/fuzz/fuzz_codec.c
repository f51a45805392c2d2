/*
 * libFuzzer target for core/codec.c: arbitrary bytes are read as a stream of
 * MQTT packets and decoded as 3.1, 3.1.1 and 5.0. Every packet that decodes
 * is checked further:
 *  - its SUBSCRIBE/UNSUBSCRIBE entries and user properties iterate to the
 *    counts the decoder reported, and only valid strings come out;
 *  - it re-encodes, the encoding decodes again, and that re-encodes to the
 *    same bytes (decode and encode are inverse on everything decode accepts);
 *  - a PUBLISH's packet id is where codec_publish_packet_id_offset says.
 * codec_utf8_valid is also compared with a slow reference decoder.
 *
 * Each body is copied into a buffer of exactly its size, so AddressSanitizer
 * sees any read past the end of the packet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "topic.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Code point by code point, straight from RFC 3629 and [MQTT-1.5.4]. */
static bool utf8_reference(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t c = s[i];
        size_t n;
        uint32_t min;
        if (c < 0x80) {
            n = 0;
            min = 0;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            c &= 0x1F;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            c &= 0x0F;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            c &= 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            c = c << 6 | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF) || c == 0)
            return false;
        i += n + 1;
    }
    return true;
}

static bool utf8_ok(struct mqtt_bytes b)
{
    return codec_utf8_valid(b.ptr, b.len);
}

/* Iterates user properties; checks them; makes the props encodable by
 * copying them out to scratch (which must hold raw.len bytes). */
static void props_check(struct mqtt_props *p, uint8_t *scratch)
{
    size_t off = 0, n = 0, len = 0;
    struct mqtt_bytes k, v;
    while (codec_props_next_user(p, &off, &k, &v)) {
        CHECK(utf8_ok(k) && utf8_ok(v));
        n++;
        len += 5 + k.len + v.len;
    }
    CHECK(n == p->user_prop_count);
    CHECK(len == codec_props_user_len(p));
    CHECK(len <= p->raw.len);
    CHECK(codec_props_copy_user(p, scratch) == len);
    p->user_props.ptr = scratch;
    p->user_props.len = (uint32_t)len;
    CHECK(((p->present & MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY)) != 0) == (n > 0));
}

/* Prepares every props block of p for encoding; scratch has two halves of
 * "half" bytes each. */
static void packet_props(struct mqtt_packet *p, uint8_t *scratch, size_t half)
{
    switch (p->type) {
    case MQTT_CONNECT:
        props_check(&p->u.connect.props, scratch);
        props_check(&p->u.connect.will_props, scratch + half);
        break;
    case MQTT_CONNACK:
        props_check(&p->u.connack.props, scratch);
        break;
    case MQTT_PUBLISH:
        props_check(&p->u.publish.props, scratch);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        props_check(&p->u.ack.props, scratch);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        props_check(&p->u.subscribe.props, scratch);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        props_check(&p->u.suback.props, scratch);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        props_check(&p->u.disconnect.props, scratch);
        break;
    default:
        break;
    }
}

static void entries_check(const struct mqtt_packet *p, uint8_t version)
{
    const struct mqtt_subscribe *s = &p->u.subscribe;
    size_t off = 0, n = 0;
    if (p->type == MQTT_SUBSCRIBE) {
        struct mqtt_sub_entry e;
        while (codec_subscribe_next(s, &off, version, &e)) {
            CHECK(utf8_ok(e.filter) && topic_filter_valid(e.filter.ptr, e.filter.len));
            CHECK(e.qos <= 2 && e.retain_handling <= 2);
            n++;
        }
    } else {
        struct mqtt_bytes f;
        while (codec_unsubscribe_next(s, &off, &f)) {
            CHECK(utf8_ok(f) && topic_filter_valid(f.ptr, f.len));
            n++;
        }
    }
    CHECK(n == s->count && n > 0);
    CHECK(off == s->entries.len);
}

/* Encodes p; returns a malloc'd buffer of *len bytes. */
static uint8_t *encode(const struct mqtt_packet *p, uint8_t version, size_t *len)
{
    size_t n = codec_encoded_size(p, version);
    uint8_t *out = malloc(n);
    CHECK(out != NULL);
    CHECK(codec_encode(out, p, version) == n);
    *len = n;
    return out;
}

/* Decodes one whole encoded packet, which must succeed. */
static void decode_whole(const uint8_t *wire, size_t len, uint8_t version, struct mqtt_packet *p)
{
    struct mqtt_fixed fh;
    CHECK(codec_parse_fixed(wire, len, &fh) == 0);
    CHECK(fh.header_len + (size_t)fh.remaining_len == len);
    int rc = codec_decode(&fh, wire + fh.header_len, version, p);
    if (rc != 0)
        fprintf(stderr, "re-decode of %s failed: 0x%02x\n", codec_type_name(fh.type), rc);
    CHECK(rc == 0);
}

static void roundtrip(struct mqtt_packet *p1, uint8_t version, size_t body_len)
{
    if (p1->type == MQTT_CONNECT)
        version = p1->u.connect.version;
    if (p1->type == MQTT_SUBSCRIBE || p1->type == MQTT_UNSUBSCRIBE)
        entries_check(p1, version);

    /* User properties never take more room than the body they came from. */
    size_t half = body_len + 1;
    uint8_t *scratch = malloc(2 * half);
    CHECK(scratch != NULL);
    packet_props(p1, scratch, half);
    size_t len1;
    uint8_t *enc1 = encode(p1, version, &len1);

    if (p1->type == MQTT_PUBLISH && p1->u.publish.qos > 0) {
        size_t off = codec_publish_packet_id_offset(enc1);
        CHECK(off + 2 <= len1);
        CHECK((enc1[off] << 8 | enc1[off + 1]) == p1->u.publish.packet_id);
    }

    struct mqtt_packet p2;
    decode_whole(enc1, len1, version, &p2);
    CHECK(p2.type == p1->type);
    uint8_t *scratch2 = malloc(2 * (len1 + 1));
    CHECK(scratch2 != NULL);
    packet_props(&p2, scratch2, len1 + 1);
    size_t len2;
    uint8_t *enc2 = encode(&p2, version, &len2);
    CHECK(len1 == len2);
    CHECK(memcmp(enc1, enc2, len1) == 0);

    free(enc2);
    free(scratch2);
    free(enc1);
    free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CHECK(codec_utf8_valid(data, size) == utf8_reference(data, size));

    static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
    for (size_t vi = 0; vi < sizeof versions; vi++) {
        size_t off = 0;
        while (off < size) {
            struct mqtt_fixed fh;
            int rc = codec_parse_fixed(data + off, size - off, &fh);
            if (rc != 0)
                break;
            size_t avail = size - off - fh.header_len;
            if (fh.remaining_len > avail)
                break;
            uint8_t *body = malloc(fh.remaining_len ? fh.remaining_len : 1);
            CHECK(body != NULL);
            memcpy(body, data + off + fh.header_len, fh.remaining_len);
            struct mqtt_packet p;
            rc = codec_decode(&fh, body, versions[vi], &p);
            CHECK(rc >= 0 && rc <= 0xFF);
            if (rc == 0)
                roundtrip(&p, versions[vi], fh.remaining_len);
            free(body);
            off += fh.header_len + fh.remaining_len;
        }
    }
    return 0;
}
