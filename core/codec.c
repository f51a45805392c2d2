/*
 * MQTT 3.1, 3.1.1 and 5.0 packet codec: the fixed header, a strict decoder for
 * every packet type and the matching encoders.
 *
 * Decoding reads one whole packet body that the caller owns and fills a struct
 * mqtt_packet with views into it; it never allocates and never writes to the
 * body. Every rule of the two specifications that can be checked on a single
 * packet is checked here and answered with a reason code, so the caller can
 * put it straight into a CONNACK or DISCONNECT. Rules that need connection
 * state (topic alias maximum, receive maximum, negotiated packet size, "a
 * client never sends X") are the broker's.
 *
 * Encoding writes into a buffer the caller sized with codec_encoded_size().
 * The caller promises a valid packet; the encoder ASSERTs the cheap parts of
 * that promise, so a bug shows up here and not in a peer's error log.
 *
 * Pure functions, no globals, no syscalls: any thread may call them.
 * Normative statements are cited as [MQTT-x.y.z-n]; unless marked (3.1.1)
 * the number is the one of MQTT 5.0.
 */
#include "codec.h"
#include "codec_internal.h"

#include <stddef.h>
#include <string.h>

#include "limits.h"
#include "topic.h"

#define MALFORMED MQTT_RC_MALFORMED_PACKET
#define PROTOCOL  MQTT_RC_PROTOCOL_ERROR

/* Propagates a non-zero reason code to the caller. */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int try_rc_ = (expr);                                                                      \
        if (try_rc_ != 0)                                                                          \
            return try_rc_;                                                                        \
    } while (0)

_Static_assert(MQTT_RC_SUCCESS == 0, "TRY() relies on success being zero");
_Static_assert(SUBID_PER_PUBLISH_MAX == 8, "mqtt_props.subscription_ids has 8 slots");
_Static_assert(VARINT_MAX == PACKET_SIZE_MAX, "one varint bound");

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

#define ONES8 0x0101010101010101ull
#define HIGH8 0x8080808080808080ull

/*
 * Well-formed UTF-8 (RFC 3629: no overlong forms, nothing above U+10FFFF),
 * no surrogates U+D800..U+DFFF [MQTT-1.5.4-1] and no U+0000 [MQTT-1.5.4-2].
 * Topics, client ids and property strings are almost always ASCII, so eight
 * bytes are checked at once: a word is plain ASCII without NUL when no byte
 * has its top bit set and none is zero (the classic "has zero byte" test is
 * exact as a yes/no answer). U+0001..U+001F, U+007F..U+009F and
 * non-characters are SHOULD NOTs for the sender [MQTT-1.5.4-2] that a
 * receiver may accept; we accept them.
 */
bool codec_utf8_valid(const uint8_t *s, size_t len)
{
    if (len == 0) /* s may be NULL, and NULL + 0 is undefined */
        return true;
    const uint8_t *p = s;
    const uint8_t *end = s + len;

    while (p < end) {
        while ((size_t)(end - p) >= 8) {
            uint64_t w;
            memcpy(&w, p, sizeof w);
            uint64_t stop = (w & HIGH8) | ((w - ONES8) & ~w & HIGH8);
            if (stop == 0) {
                p += 8;
                continue;
            }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* The lowest flagged byte is exact (a borrow only runs upward):
             * skip the ASCII bytes before it in one step. */
            p += (unsigned)__builtin_ctzll(stop) >> 3;
#endif
            break;
        }
        if (p >= end)
            break;
        uint8_t c = *p;
        if (c < 0x80) {
            if (c == 0)
                return false;
            p++;
            continue;
        }
        size_t left = (size_t)(end - p);
        if (c < 0xC2) /* a continuation byte, or an overlong two-byte lead */
            return false;
        if (c < 0xE0) {
            if (left < 2 || (p[1] & 0xC0) != 0x80)
                return false;
            p += 2;
        } else if (c < 0xF0) {
            if (left < 3)
                return false;
            /* E0 needs A0.. (else overlong); ED stops at 9F (else surrogate). */
            uint8_t lo = c == 0xE0 ? 0xA0 : 0x80;
            uint8_t hi = c == 0xED ? 0x9F : 0xBF;
            if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
                return false;
            p += 3;
        } else if (c < 0xF5) {
            if (left < 4)
                return false;
            /* F0 needs 90.. (else overlong); F4 stops at 8F (else > U+10FFFF). */
            uint8_t lo = c == 0xF0 ? 0x90 : 0x80;
            uint8_t hi = c == 0xF4 ? 0x8F : 0xBF;
            if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
                return false;
            p += 4;
        } else {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Fixed header                                                              */
/* ------------------------------------------------------------------------ */

/* [MQTT-2.1.3-1] the flag nibble each type must carry; PUBLISH carries DUP,
 * QoS and RETAIN instead and is checked on its own. MQTT 3.1 (v31) sent
 * PUBREL, SUBSCRIBE and UNSUBSCRIBE at QoS 1 with DUP set on a retry (3.1
 * section 3.6): 0xA as well as 0x2. Before the version is known (the fixed
 * header alone), v31 is true and codec_decode checks again. */
static bool fixed_flags_valid(uint8_t type, uint8_t flags, bool v31)
{
    switch (type) {
    case MQTT_PUBLISH:
        return ((flags >> 1) & 3) != 3; /* [MQTT-3.3.1-4] */
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        /* [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1] */
        return flags == 0x2 || (v31 && flags == 0xA);
    case MQTT_CONNECT:
    case MQTT_CONNACK:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return flags == 0;
    default:
        return false; /* type 0 is forbidden */
    }
}

int codec_parse_fixed(const uint8_t *buf, size_t len, struct mqtt_fixed *fh)
{
    if (len < 2)
        return MQTT_NEED_MORE;
    uint8_t type = buf[0] >> 4;
    uint8_t flags = buf[0] & 0x0F;
    if (!fixed_flags_valid(type, flags, true))
        return MALFORMED;

    /* Remaining length: at most four bytes [MQTT-1.5.5]. A non-minimal
     * encoding (0x80 0x00) is accepted, as MQTT 3.1.1 does not forbid it and
     * it is harmless; a fifth byte is not. */
    uint32_t value = 0;
    for (size_t i = 1; i <= 4; i++) {
        if (i >= len)
            return MQTT_NEED_MORE;
        uint8_t b = buf[i];
        value |= (uint32_t)(b & 0x7F) << (7 * (i - 1));
        if ((b & 0x80) == 0) {
            fh->type = type;
            fh->flags = flags;
            fh->header_len = (uint8_t)(i + 1);
            fh->remaining_len = value;
            return 0;
        }
    }
    return MALFORMED;
}

size_t codec_varint_size(uint32_t v)
{
    ASSERT(v <= VARINT_MAX);
    if (v < 128u)
        return 1;
    if (v < 16384u)
        return 2;
    if (v < 2097152u)
        return 3;
    return 4;
}

/* ------------------------------------------------------------------------ */
/* Reader: a bounded cursor over the body. Every read checks its length; a   */
/* read past the end of the packet is a malformed packet.                   */
/* ------------------------------------------------------------------------ */

struct rd {
    const uint8_t *p;
    const uint8_t *end;
};

static inline size_t rd_left(const struct rd *r)
{
    return (size_t)(r->end - r->p);
}

static inline int rd_u8(struct rd *r, uint8_t *v)
{
    if (r->p >= r->end)
        return MALFORMED;
    *v = *r->p++;
    return 0;
}

static inline int rd_u16(struct rd *r, uint16_t *v)
{
    if (rd_left(r) < 2)
        return MALFORMED;
    *v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return 0;
}

static inline int rd_u32(struct rd *r, uint32_t *v)
{
    if (rd_left(r) < 4)
        return MALFORMED;
    *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) | r->p[3];
    r->p += 4;
    return 0;
}

/* Variable byte integer, at most four bytes [MQTT-1.5.5]. */
static inline int rd_varint(struct rd *r, uint32_t *v)
{
    uint32_t value = 0;
    for (unsigned i = 0; i < 4; i++) {
        if (r->p >= r->end)
            return MALFORMED;
        uint8_t b = *r->p++;
        value |= (uint32_t)(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = value;
            return 0;
        }
    }
    return MALFORMED;
}

/* Binary data: two-byte length, then that many bytes inside the packet. */
static inline int rd_bin(struct rd *r, struct mqtt_bytes *b)
{
    uint16_t len;
    TRY(rd_u16(r, &len));
    if (rd_left(r) < len)
        return MALFORMED;
    b->ptr = r->p;
    b->len = len;
    r->p += len;
    return 0;
}

/* UTF-8 encoded string: ill-formed text makes the packet malformed
 * [MQTT-1.5.4-1], [MQTT-1.5.4-2]. */
static inline int rd_str(struct rd *r, struct mqtt_bytes *b)
{
    TRY(rd_bin(r, b));
    if (!codec_utf8_valid(b->ptr, b->len))
        return MALFORMED;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Properties (2.2.2)                                                        */
/* ------------------------------------------------------------------------ */

const uint8_t codec_prop_type[64] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = PT_BYTE,
    [MQTT_PROP_MESSAGE_EXPIRY] = PT_U32,
    [MQTT_PROP_CONTENT_TYPE] = PT_UTF8,
    [MQTT_PROP_RESPONSE_TOPIC] = PT_UTF8,
    [MQTT_PROP_CORRELATION_DATA] = PT_BIN,
    [MQTT_PROP_SUBSCRIPTION_ID] = PT_VARINT,
    [MQTT_PROP_SESSION_EXPIRY] = PT_U32,
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = PT_UTF8,
    [MQTT_PROP_SERVER_KEEPALIVE] = PT_U16,
    [MQTT_PROP_AUTH_METHOD] = PT_UTF8,
    [MQTT_PROP_AUTH_DATA] = PT_BIN,
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = PT_BYTE,
    [MQTT_PROP_WILL_DELAY] = PT_U32,
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = PT_BYTE,
    [MQTT_PROP_RESPONSE_INFO] = PT_UTF8,
    [MQTT_PROP_SERVER_REFERENCE] = PT_UTF8,
    [MQTT_PROP_REASON_STRING] = PT_UTF8,
    [MQTT_PROP_RECEIVE_MAXIMUM] = PT_U16,
    [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = PT_U16,
    [MQTT_PROP_TOPIC_ALIAS] = PT_U16,
    [MQTT_PROP_MAXIMUM_QOS] = PT_BYTE,
    [MQTT_PROP_RETAIN_AVAILABLE] = PT_BYTE,
    [MQTT_PROP_USER_PROPERTY] = PT_PAIR,
    [MQTT_PROP_MAXIMUM_PACKET_SIZE] = PT_U32,
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = PT_BYTE,
    [MQTT_PROP_SUB_ID_AVAILABLE] = PT_BYTE,
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = PT_BYTE,
};

/* Where each fixed-size or string property lives in struct mqtt_props, so
 * decoding and encoding are one table walk instead of 27 cases. The
 * subscription identifier (an array) and user properties (a block) are
 * handled apart. */
#define PO(field) (uint16_t) offsetof(struct mqtt_props, field)
const uint16_t codec_prop_offset[64] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = PO(payload_format),
    [MQTT_PROP_MESSAGE_EXPIRY] = PO(message_expiry_s),
    [MQTT_PROP_CONTENT_TYPE] = PO(content_type),
    [MQTT_PROP_RESPONSE_TOPIC] = PO(response_topic),
    [MQTT_PROP_CORRELATION_DATA] = PO(correlation_data),
    [MQTT_PROP_SESSION_EXPIRY] = PO(session_expiry_s),
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = PO(assigned_client_id),
    [MQTT_PROP_SERVER_KEEPALIVE] = PO(server_keepalive_s),
    [MQTT_PROP_AUTH_METHOD] = PO(auth_method),
    [MQTT_PROP_AUTH_DATA] = PO(auth_data),
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = PO(request_problem_info),
    [MQTT_PROP_WILL_DELAY] = PO(will_delay_s),
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = PO(request_response_info),
    [MQTT_PROP_RESPONSE_INFO] = PO(response_info),
    [MQTT_PROP_SERVER_REFERENCE] = PO(server_reference),
    [MQTT_PROP_REASON_STRING] = PO(reason_string),
    [MQTT_PROP_RECEIVE_MAXIMUM] = PO(receive_maximum),
    [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = PO(topic_alias_maximum),
    [MQTT_PROP_TOPIC_ALIAS] = PO(topic_alias),
    [MQTT_PROP_MAXIMUM_QOS] = PO(maximum_qos),
    [MQTT_PROP_RETAIN_AVAILABLE] = PO(retain_available),
    [MQTT_PROP_MAXIMUM_PACKET_SIZE] = PO(maximum_packet_size),
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = PO(wildcard_sub_available),
    [MQTT_PROP_SUB_ID_AVAILABLE] = PO(sub_id_available),
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = PO(shared_sub_available),
};
#undef PO

#define PROP(name) MQTT_PROP_BIT(MQTT_PROP_##name)
const uint64_t codec_prop_allowed[PCTX_COUNT] = {
    [PCTX_CONNECT] = PROP(SESSION_EXPIRY) | PROP(AUTH_METHOD) | PROP(AUTH_DATA) |
                     PROP(REQUEST_PROBLEM_INFO) | PROP(REQUEST_RESPONSE_INFO) |
                     PROP(RECEIVE_MAXIMUM) | PROP(TOPIC_ALIAS_MAXIMUM) | PROP(USER_PROPERTY) |
                     PROP(MAXIMUM_PACKET_SIZE),
    [PCTX_WILL] = PROP(PAYLOAD_FORMAT) | PROP(MESSAGE_EXPIRY) | PROP(CONTENT_TYPE) |
                  PROP(RESPONSE_TOPIC) | PROP(CORRELATION_DATA) | PROP(WILL_DELAY) |
                  PROP(USER_PROPERTY),
    [PCTX_CONNACK] = PROP(SESSION_EXPIRY) | PROP(ASSIGNED_CLIENT_ID) | PROP(SERVER_KEEPALIVE) |
                     PROP(AUTH_METHOD) | PROP(AUTH_DATA) | PROP(RESPONSE_INFO) |
                     PROP(SERVER_REFERENCE) | PROP(REASON_STRING) | PROP(RECEIVE_MAXIMUM) |
                     PROP(TOPIC_ALIAS_MAXIMUM) | PROP(MAXIMUM_QOS) | PROP(RETAIN_AVAILABLE) |
                     PROP(USER_PROPERTY) | PROP(MAXIMUM_PACKET_SIZE) |
                     PROP(WILDCARD_SUB_AVAILABLE) | PROP(SUB_ID_AVAILABLE) |
                     PROP(SHARED_SUB_AVAILABLE),
    [PCTX_PUBLISH] = PROP(PAYLOAD_FORMAT) | PROP(MESSAGE_EXPIRY) | PROP(CONTENT_TYPE) |
                     PROP(RESPONSE_TOPIC) | PROP(CORRELATION_DATA) | PROP(SUBSCRIPTION_ID) |
                     PROP(TOPIC_ALIAS) | PROP(USER_PROPERTY),
    [PCTX_ACK] = PROP(REASON_STRING) | PROP(USER_PROPERTY),
    [PCTX_SUBSCRIBE] = PROP(SUBSCRIPTION_ID) | PROP(USER_PROPERTY),
    [PCTX_SUBACK] = PROP(REASON_STRING) | PROP(USER_PROPERTY),
    [PCTX_UNSUBSCRIBE] = PROP(USER_PROPERTY),
    [PCTX_DISCONNECT] =
        PROP(SESSION_EXPIRY) | PROP(SERVER_REFERENCE) | PROP(REASON_STRING) | PROP(USER_PROPERTY),
    [PCTX_AUTH] = PROP(AUTH_METHOD) | PROP(AUTH_DATA) | PROP(REASON_STRING) | PROP(USER_PROPERTY),
};

/* Every other property may appear at most once: "It is a Protocol Error to
 * include X more than once" (3.1.2.11, 3.2.2.3, 3.3.2.3, ...). */
static uint64_t prop_repeatable(enum prop_ctx ctx)
{
    /* A server sends one Subscription Identifier per matching subscription
     * (3.3.2.3.8); in SUBSCRIBE there is at most one (3.8.2.1.2). */
    return ctx == PCTX_PUBLISH ? PROP(USER_PROPERTY) | PROP(SUBSCRIPTION_ID) : PROP(USER_PROPERTY);
}

static inline void store_u8(struct mqtt_props *p, unsigned id, uint8_t v)
{
    memcpy((uint8_t *)p + codec_prop_offset[id], &v, sizeof v);
}
static inline void store_u16(struct mqtt_props *p, unsigned id, uint16_t v)
{
    memcpy((uint8_t *)p + codec_prop_offset[id], &v, sizeof v);
}
static inline void store_u32(struct mqtt_props *p, unsigned id, uint32_t v)
{
    memcpy((uint8_t *)p + codec_prop_offset[id], &v, sizeof v);
}
static inline void store_bytes(struct mqtt_props *p, unsigned id, struct mqtt_bytes v)
{
    memcpy((uint8_t *)p + codec_prop_offset[id], &v, sizeof v);
}
/*
 * Decodes a property block (length, then properties) into *p, which the
 * caller has zeroed. The identifier is a variable byte integer in the spec,
 * but every identifier fits in one byte (2.2.2.2), so a byte with the top bit
 * set names no property and the packet is malformed, as an unknown
 * identifier is.
 */
static int props_decode(struct rd *r, enum prop_ctx ctx, struct mqtt_props *p)
{
    uint32_t len;
    TRY(rd_varint(r, &len));
    if (len > rd_left(r))
        return MALFORMED;
    struct rd pr = {r->p, r->p + len};
    p->raw.ptr = r->p;
    p->raw.len = len;
    r->p += len;

    const uint64_t allowed = codec_prop_allowed[ctx];
    const uint64_t repeatable = prop_repeatable(ctx);
    while (pr.p < pr.end) {
        uint8_t id = *pr.p++;
        if (id >= 64 || codec_prop_type[id] == PT_NONE)
            return MALFORMED;
        uint64_t bit = MQTT_PROP_BIT(id);
        /* 2.2.2.2: "an Identifier which is not valid for its packet type
         * ... is a Malformed Packet". */
        if ((allowed & bit) == 0)
            return MALFORMED;
        if ((p->present & bit) != 0 && (repeatable & bit) == 0)
            return PROTOCOL;
        p->present |= bit;

        switch (codec_prop_type[id]) {
        case PT_BYTE: {
            uint8_t v;
            TRY(rd_u8(&pr, &v));
            /* Every byte property is a 0/1 switch: payload format
             * (3.3.2.3.2), request problem / response information
             * (3.1.2.11.7, 3.1.2.11.6), maximum QoS and the four
             * "available" flags (3.2.2.3.4, 3.2.2.3.5, 3.2.2.3.11-13). */
            if (v > 1)
                return PROTOCOL;
            store_u8(p, id, v);
            break;
        }
        case PT_U16: {
            uint16_t v;
            TRY(rd_u16(&pr, &v));
            /* Receive Maximum 0 (3.1.2.11.3, 3.2.2.3.3) and Topic Alias 0
             * [MQTT-3.3.2-8] are protocol errors. */
            if (v == 0 && (id == MQTT_PROP_RECEIVE_MAXIMUM || id == MQTT_PROP_TOPIC_ALIAS))
                return PROTOCOL;
            store_u16(p, id, v);
            break;
        }
        case PT_U32: {
            uint32_t v;
            TRY(rd_u32(&pr, &v));
            if (v == 0 && id == MQTT_PROP_MAXIMUM_PACKET_SIZE) /* 3.1.2.11.4, 3.2.2.3.6 */
                return PROTOCOL;
            store_u32(p, id, v);
            break;
        }
        case PT_VARINT: { /* only the subscription identifier */
            uint32_t v;
            TRY(rd_varint(&pr, &v));
            if (v == 0) /* 3.3.2.3.8, 3.8.2.1.2 */
                return PROTOCOL;
            /* At most SUBID_PER_PUBLISH_MAX fit; a client must send none at
             * all [MQTT-3.3.4-6], which the broker checks. */
            if (p->subscription_id_count >= SUBID_PER_PUBLISH_MAX)
                return PROTOCOL;
            p->subscription_ids[p->subscription_id_count++] = v;
            break;
        }
        case PT_UTF8: {
            struct mqtt_bytes v;
            TRY(rd_str(&pr, &v));
            /* [MQTT-3.3.2-14] the Response Topic is a topic name: no
             * wildcards (and, as every topic name, not empty). */
            if (id == MQTT_PROP_RESPONSE_TOPIC && !topic_name_valid(v.ptr, v.len))
                return PROTOCOL;
            store_bytes(p, id, v);
            break;
        }
        case PT_BIN: {
            struct mqtt_bytes v;
            TRY(rd_bin(&pr, &v));
            store_bytes(p, id, v);
            break;
        }
        default: { /* PT_PAIR: user property, both strings UTF-8 [MQTT-1.5.7-1] */
            struct mqtt_bytes k, v;
            TRY(rd_str(&pr, &k));
            TRY(rd_str(&pr, &v));
            p->user_prop_count++;
            break;
        }
        }
    }
    return 0;
}

/* Skips one property value of a validated block (for the user property
 * iterators). Returns 0, or MALFORMED if the block is not what the decoder
 * left, so a misuse stops iteration instead of reading out of bounds. */
static int prop_skip(struct rd *r, uint8_t id)
{
    struct mqtt_bytes b;
    uint32_t v;
    if (id >= 64)
        return MALFORMED;
    switch (codec_prop_type[id]) {
    case PT_BYTE:
        return rd_left(r) >= 1 ? (r->p += 1, 0) : MALFORMED;
    case PT_U16:
        return rd_left(r) >= 2 ? (r->p += 2, 0) : MALFORMED;
    case PT_U32:
        return rd_left(r) >= 4 ? (r->p += 4, 0) : MALFORMED;
    case PT_VARINT:
        return rd_varint(r, &v);
    case PT_UTF8:
    case PT_BIN:
        return rd_bin(r, &b);
    case PT_PAIR:
        TRY(rd_bin(r, &b));
        return rd_bin(r, &b);
    default:
        return MALFORMED;
    }
}

bool codec_props_next_user(const struct mqtt_props *p, size_t *off, struct mqtt_bytes *key,
                           struct mqtt_bytes *value)
{
    if (p->user_prop_count == 0 || *off >= p->raw.len)
        return false;
    struct rd r = {p->raw.ptr + *off, p->raw.ptr + p->raw.len};
    while (r.p < r.end) {
        uint8_t id = *r.p++;
        if (id == MQTT_PROP_USER_PROPERTY) {
            if (rd_bin(&r, key) != 0 || rd_bin(&r, value) != 0)
                break;
            *off = (size_t)(r.p - p->raw.ptr);
            return true;
        }
        if (prop_skip(&r, id) != 0)
            break;
    }
    *off = p->raw.len;
    return false;
}

size_t codec_props_user_len(const struct mqtt_props *p)
{
    size_t off = 0, len = 0;
    struct mqtt_bytes k, v;
    while (codec_props_next_user(p, &off, &k, &v))
        len += 1 + 2 + k.len + 2 + v.len;
    return len;
}

/* ------------------------------------------------------------------------ */
/* Reason codes each packet may carry (5.0)                                  */
/* ------------------------------------------------------------------------ */

/* The switches compile to bit tests; acks are on the QoS 1/2 hot path. */

static bool rc_valid_connack(uint8_t rc) /* 3.2.2.2 */
{
    switch (rc) {
    case 0x00:
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
    case 0x84:
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x8A:
    case 0x8C:
    case 0x90:
    case 0x95:
    case 0x97:
    case 0x99:
    case 0x9A:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9F:
        return true;
    default:
        return false;
    }
}

/* [MQTT-3.4.2-1], [MQTT-3.5.2-1], [MQTT-3.6.2-1], [MQTT-3.7.2-1] */
static bool rc_valid_ack(uint8_t type, uint8_t rc)
{
    if (type == MQTT_PUBREL || type == MQTT_PUBCOMP)
        return rc == 0x00 || rc == 0x92;
    switch (rc) { /* PUBACK and PUBREC */
    case 0x00:
    case 0x10:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x90:
    case 0x91:
    case 0x97:
    case 0x99:
        return true;
    default:
        return false;
    }
}

static bool rc_valid_suback(uint8_t rc) /* [MQTT-3.9.3-1] */
{
    switch (rc) {
    case 0x00:
    case 0x01:
    case 0x02:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x8F:
    case 0x91:
    case 0x97:
    case 0x9E:
    case 0xA1:
    case 0xA2:
        return true;
    default:
        return false;
    }
}

static bool rc_valid_unsuback(uint8_t rc) /* [MQTT-3.11.3-1] */
{
    switch (rc) {
    case 0x00:
    case 0x11:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x8F:
    case 0x91:
        return true;
    default:
        return false;
    }
}

static bool rc_valid_disconnect(uint8_t rc) /* [MQTT-3.14.2-1] */
{
    switch (rc) {
    case 0x00:
    case 0x04:
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
    case 0x87:
    case 0x89:
    case 0x8B:
    case 0x8D:
    case 0x8E:
    case 0x8F:
    case 0x90:
    case 0x93:
    case 0x94:
    case 0x95:
    case 0x96:
    case 0x97:
    case 0x98:
    case 0x99:
    case 0x9A:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9E:
    case 0x9F:
    case 0xA0:
    case 0xA1:
    case 0xA2:
        return true;
    default:
        return false;
    }
}

static bool rc_valid_auth(uint8_t rc) /* [MQTT-3.15.2-1] */
{
    return rc == 0x00 || rc == 0x18 || rc == 0x19;
}

uint8_t codec_connack_rc_v311(uint8_t reason)
{
    switch (reason) {
    case MQTT_RC_SUCCESS:
        return MQTT_CONNACK_V311_ACCEPTED;
    case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION:
        return MQTT_CONNACK_V311_BAD_PROTOCOL;
    case MQTT_RC_CLIENT_ID_NOT_VALID:
        return MQTT_CONNACK_V311_ID_REJECTED;
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
        return MQTT_CONNACK_V311_BAD_CREDENTIALS;
    case MQTT_RC_NOT_AUTHORIZED:
    case MQTT_RC_BANNED:
    case MQTT_RC_BAD_AUTHENTICATION_METHOD:
        return MQTT_CONNACK_V311_NOT_AUTHORIZED;
    default:
        /* Busy, shutting down, quota, rate, moved, and every failure 3.1.1
         * has no word for: "server unavailable" tells a 3.1.1 client to try
         * again later, the least wrong advice among the six codes. */
        return reason < 0x80 ? MQTT_CONNACK_V311_ACCEPTED : MQTT_CONNACK_V311_UNAVAILABLE;
    }
}

/* The inverse for decoding 3.1.1 CONNACKs, so a decoded packet holds MQTT_RC_*
 * and re-encodes to the same bytes. */
static const uint8_t connack_v311_to_rc[6] = {
    [MQTT_CONNACK_V311_ACCEPTED] = MQTT_RC_SUCCESS,
    [MQTT_CONNACK_V311_BAD_PROTOCOL] = MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
    [MQTT_CONNACK_V311_ID_REJECTED] = MQTT_RC_CLIENT_ID_NOT_VALID,
    [MQTT_CONNACK_V311_UNAVAILABLE] = MQTT_RC_SERVER_UNAVAILABLE,
    [MQTT_CONNACK_V311_BAD_CREDENTIALS] = MQTT_RC_BAD_USERNAME_OR_PASSWORD,
    [MQTT_CONNACK_V311_NOT_AUTHORIZED] = MQTT_RC_NOT_AUTHORIZED,
};

/* ------------------------------------------------------------------------ */
/* Decoders, one per packet shape                                            */
/* ------------------------------------------------------------------------ */

static int decode_connect(struct rd *r, struct mqtt_connect *c)
{
    struct mqtt_bytes name;
    uint8_t level, flags;

    /* The name is compared with ASCII constants, so UTF-8 needs no check. */
    TRY(rd_bin(r, &name));
    TRY(rd_u8(r, &level));
    bool mqtt = name.len == 4 && memcmp(name.ptr, "MQTT", 4) == 0;
    bool mqisdp = name.len == 6 && memcmp(name.ptr, "MQIsdp", 6) == 0;
    c->version = level;
    /* [MQTT-3.1.2-1], [MQTT-3.1.2-2]: anything but these three is answered
     * with "unsupported protocol version" (the broker may just close). */
    if (!((mqtt && (level == MQTT_V311 || level == MQTT_V5)) || (mqisdp && level == MQTT_V31)))
        return MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
    bool v5 = level == MQTT_V5;

    TRY(rd_u8(r, &flags));
    if (flags & 0x01) /* [MQTT-3.1.2-3] reserved flag */
        return MALFORMED;
    c->clean_start = (flags & 0x02) != 0;
    c->will_flag = (flags & 0x04) != 0;
    c->will_qos = (flags >> 3) & 3;
    c->will_retain = (flags & 0x20) != 0;
    c->has_password = (flags & 0x40) != 0;
    c->has_username = (flags & 0x80) != 0;
    if (c->will_qos == 3) /* [MQTT-3.1.2-12]; (3.1.1) [MQTT-3.1.2-14] */
        return MALFORMED;
    if (!c->will_flag && (c->will_qos != 0 || c->will_retain))
        return MALFORMED; /* [MQTT-3.1.2-11], [MQTT-3.1.2-13]; (3.1.1) -13, -15 */
    if (!v5 && c->has_password && !c->has_username)
        return PROTOCOL; /* (3.1.1) [MQTT-3.1.2-22]; 5.0 allows it (3.1.2.9) */

    TRY(rd_u16(r, &c->keepalive_s));
    if (v5) {
        TRY(props_decode(r, PCTX_CONNECT, &c->props));
        /* 3.1.2.11.10: Authentication Data without a method. */
        if ((c->props.present & PROP(AUTH_DATA)) && !(c->props.present & PROP(AUTH_METHOD)))
            return PROTOCOL;
    }

    /* [MQTT-3.1.3-4] the client id is a UTF-8 string; its length and
     * characters [MQTT-3.1.3-5] are the broker's policy, and a zero-length
     * id is the broker's to accept or assign. */
    TRY(rd_str(r, &c->client_id));

    if (c->will_flag) {
        if (v5)
            TRY(props_decode(r, PCTX_WILL, &c->will_props));
        TRY(rd_str(r, &c->will_topic)); /* [MQTT-3.1.3-11] */
        if (!topic_name_valid(c->will_topic.ptr, c->will_topic.len))
            return MQTT_RC_TOPIC_NAME_INVALID;
        TRY(rd_bin(r, &c->will_payload));
        /* 3.1.3.2.3: a will declared UTF-8 must be UTF-8. */
        if (c->will_props.payload_format == 1 &&
            !codec_utf8_valid(c->will_payload.ptr, c->will_payload.len))
            return MQTT_RC_PAYLOAD_FORMAT_INVALID;
    }
    if (c->has_username)
        TRY(rd_str(r, &c->username)); /* [MQTT-3.1.3-12] */
    if (c->has_password)
        TRY(rd_bin(r, &c->password));
    return rd_left(r) == 0 ? 0 : MALFORMED;
}

static int decode_connack(struct rd *r, bool v5, struct mqtt_connack *c)
{
    uint8_t flags, rc;
    TRY(rd_u8(r, &flags));
    TRY(rd_u8(r, &rc));
    if (flags & 0xFE) /* [MQTT-3.2.2-1] */
        return MALFORMED;
    c->session_present = flags & 1;
    if (v5) {
        if (!rc_valid_connack(rc)) /* 3.2.2.2 */
            return PROTOCOL;
        c->reason = rc;
        TRY(props_decode(r, PCTX_CONNACK, &c->props));
    } else {
        if (rc >= sizeof connack_v311_to_rc) /* (3.1.1) 6-255 reserved */
            return PROTOCOL;
        c->reason = connack_v311_to_rc[rc];
    }
    /* [MQTT-3.2.2-6]; (3.1.1) [MQTT-3.2.2-4] */
    if (c->reason != MQTT_RC_SUCCESS && c->session_present)
        return PROTOCOL;
    return rd_left(r) == 0 ? 0 : MALFORMED;
}

static int decode_publish(const struct mqtt_fixed *fh, struct rd *r, bool v5,
                          struct mqtt_publish *pub)
{
    pub->qos = (fh->flags >> 1) & 3;
    pub->dup = (fh->flags & 0x08) != 0;
    pub->retain = (fh->flags & 0x01) != 0;
    if (pub->qos == 3) /* [MQTT-3.3.1-4] */
        return MALFORMED;
    if (pub->dup && pub->qos == 0) /* [MQTT-3.3.1-2] */
        return MALFORMED;

    TRY(rd_str(r, &pub->topic)); /* [MQTT-3.3.2-1] */
    if (pub->qos > 0) {
        TRY(rd_u16(r, &pub->packet_id));
        if (pub->packet_id == 0) /* [MQTT-2.2.1-3]; (3.1.1) [MQTT-2.3.1-1] */
            return PROTOCOL;
    }
    if (v5) {
        /* A PUBLISH from a client must carry no Subscription Identifier
         * [MQTT-3.3.4-6], but this decoder also reads a server's PUBLISH
         * (for clients and tests), which may carry several: they decode here
         * and the broker rejects them on its inbound path. The Payload Format
         * Indicator is not checked against the payload: that is a MAY
         * (3.3.2.3.2) and would cost a pass over every payload. */
        TRY(props_decode(r, PCTX_PUBLISH, &pub->props));
    }
    if (pub->topic.len == 0) {
        /* 3.3.2.3.4: an empty topic needs a Topic Alias (5.0 only);
         * (3.1.1) [MQTT-4.7.3-1] a topic name has at least one character. */
        if (!v5)
            return MQTT_RC_TOPIC_NAME_INVALID;
        if (!(pub->props.present & PROP(TOPIC_ALIAS)))
            return PROTOCOL;
    } else if (!topic_name_valid(pub->topic.ptr, pub->topic.len)) {
        return MQTT_RC_TOPIC_NAME_INVALID; /* [MQTT-3.3.2-2] */
    }
    pub->payload.ptr = r->p;
    pub->payload.len = (uint32_t)rd_left(r);
    return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
static int decode_ack(uint8_t type, struct rd *r, bool v5, struct mqtt_ack *a)
{
    TRY(rd_u16(r, &a->packet_id));
    /* [MQTT-2.2.1-5]: it repeats the PUBLISH's id, which is never 0. */
    if (a->packet_id == 0)
        return PROTOCOL;
    if (!v5 || rd_left(r) == 0) /* 3.4.2.1: no reason code means success */
        return rd_left(r) == 0 ? 0 : MALFORMED;
    TRY(rd_u8(r, &a->reason));
    if (!rc_valid_ack(type, a->reason))
        return PROTOCOL;
    if (rd_left(r) == 0) /* 3.4.2.2.1: remaining length 3 has no properties */
        return 0;
    TRY(props_decode(r, PCTX_ACK, &a->props));
    return rd_left(r) == 0 ? 0 : MALFORMED;
}

/* "$share/...": a shared subscription [MQTT-4.8.2-1]. */
static bool filter_is_shared(struct mqtt_bytes f)
{
    return f.len >= 7 && memcmp(f.ptr, "$share/", 7) == 0;
}

/* SUBSCRIBE and UNSUBSCRIBE: validate every entry now, so the iterators can
 * trust the payload. */
static int decode_subscribe(bool sub, struct rd *r, bool v5, struct mqtt_subscribe *s)
{
    TRY(rd_u16(r, &s->packet_id));
    if (s->packet_id == 0) /* [MQTT-2.2.1-3] */
        return PROTOCOL;
    if (v5)
        TRY(props_decode(r, sub ? PCTX_SUBSCRIBE : PCTX_UNSUBSCRIBE, &s->props));
    s->entries.ptr = r->p;
    s->entries.len = (uint32_t)rd_left(r);

    uint32_t count = 0;
    while (rd_left(r) > 0) {
        struct mqtt_bytes filter;
        TRY(rd_str(r, &filter)); /* [MQTT-3.8.3-1], [MQTT-3.10.3-1] */
        if (sub) {
            uint8_t opt;
            TRY(rd_u8(r, &opt));
            if ((opt & 3) == 3) /* 3.8.3.1: a Protocol Error; (3.1.1) [MQTT-3-8.3-4] */
                return v5 ? PROTOCOL : MALFORMED;
            if (!v5 && (opt & 0xFC)) /* (3.1.1) [MQTT-3-8.3-4] */
                return MALFORMED;
            if (v5 && (opt & 0xC0)) /* [MQTT-3.8.3-5] */
                return MALFORMED;
            if (v5 && ((opt >> 4) & 3) == 3) /* 3.8.3.1: retain handling 3 */
                return PROTOCOL;
            if (!topic_filter_valid(filter.ptr, filter.len))
                return MQTT_RC_TOPIC_FILTER_INVALID;
            if (v5 && (opt & 0x04) && filter_is_shared(filter)) /* [MQTT-3.8.3-4] */
                return PROTOCOL;
        } else if (!topic_filter_valid(filter.ptr, filter.len)) {
            return MQTT_RC_TOPIC_FILTER_INVALID;
        }
        count++;
    }
    /* [MQTT-3.8.3-3], [MQTT-3.10.3-2]: at least one filter. */
    if (count == 0)
        return PROTOCOL;
    /* Only 65535 fit in "count" (and one SUBACK answers them all); no client
     * needs more, so this is an implementation limit, not a protocol rule. */
    if (count > 0xFFFF)
        return MQTT_RC_IMPLEMENTATION_SPECIFIC;
    s->count = (uint16_t)count;
    return 0;
}

/* SUBACK and UNSUBACK. */
static int decode_suback(bool suback, struct rd *r, bool v5, struct mqtt_suback *s)
{
    TRY(rd_u16(r, &s->packet_id));
    if (s->packet_id == 0) /* [MQTT-2.2.1-5]: it repeats a non-zero id */
        return PROTOCOL;
    if (!v5 && !suback) /* (3.1.1) 3.11: UNSUBACK is only the packet id */
        return rd_left(r) == 0 ? 0 : MALFORMED;
    if (v5)
        TRY(props_decode(r, PCTX_SUBACK, &s->props));
    s->reasons.ptr = r->p;
    s->reasons.len = (uint32_t)rd_left(r);
    if (s->reasons.len == 0) /* one per filter, and there was at least one */
        return PROTOCOL;
    for (uint32_t i = 0; i < s->reasons.len; i++) {
        uint8_t rc = s->reasons.ptr[i];
        bool ok;
        if (!v5) /* (3.1.1) [MQTT-3.9.3-2] */
            ok = rc <= 2 || rc == 0x80;
        else
            ok = suback ? rc_valid_suback(rc) : rc_valid_unsuback(rc);
        if (!ok)
            return PROTOCOL;
    }
    return 0;
}

/* DISCONNECT (5.0) and AUTH. */
static int decode_disconnect(uint8_t type, struct rd *r, struct mqtt_disconnect *d)
{
    bool auth = type == MQTT_AUTH;
    if (rd_left(r) == 0) /* 3.14.2.1, 3.15.2.1: no reason code means success */
        return 0;
    TRY(rd_u8(r, &d->reason));
    if (!(auth ? rc_valid_auth(d->reason) : rc_valid_disconnect(d->reason)))
        return PROTOCOL;
    if (rd_left(r) == 0) {
        /* 3.14.2.2.1: a DISCONNECT of length 1 has no properties; AUTH may
         * omit both fields or neither (3.15.2.1). */
        return auth ? MALFORMED : 0;
    }
    TRY(props_decode(r, auth ? PCTX_AUTH : PCTX_DISCONNECT, &d->props));
    /* 3.15.2.2.2: it is a protocol error to omit the Authentication Method. */
    if (auth && !(d->props.present & PROP(AUTH_METHOD)))
        return PROTOCOL;
    return rd_left(r) == 0 ? 0 : MALFORMED;
}

int codec_decode(const struct mqtt_fixed *fh, const uint8_t *body, uint8_t version,
                 struct mqtt_packet *out)
{
    /* "body + 0" on a NULL body is undefined; an empty body needs no end. */
    struct rd r = {body, fh->remaining_len ? body + fh->remaining_len : body};

    out->type = fh->type;
    if (!fixed_flags_valid(fh->type, fh->flags, version == MQTT_V31)) /* [MQTT-2.1.3-1] */
        return MALFORMED;
    /* Before CONNECT there is no version, and nothing but CONNECT may come
     * first [MQTT-3.1.0-1]: a caller that asks is told so. */
    if (fh->type != MQTT_CONNECT && (version < MQTT_V31 || version > MQTT_V5))
        return PROTOCOL;
    bool v5 = version == MQTT_V5;

    switch (fh->type) {
    case MQTT_CONNECT:
        memset(&out->u.connect, 0, sizeof out->u.connect);
        return decode_connect(&r, &out->u.connect);
    case MQTT_CONNACK:
        memset(&out->u.connack, 0, sizeof out->u.connack);
        return decode_connack(&r, v5, &out->u.connack);
    case MQTT_PUBLISH:
        memset(&out->u.publish, 0, sizeof out->u.publish);
        return decode_publish(fh, &r, v5, &out->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        memset(&out->u.ack, 0, sizeof out->u.ack);
        return decode_ack(fh->type, &r, v5, &out->u.ack);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        memset(&out->u.subscribe, 0, sizeof out->u.subscribe);
        return decode_subscribe(fh->type == MQTT_SUBSCRIBE, &r, v5, &out->u.subscribe);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        memset(&out->u.suback, 0, sizeof out->u.suback);
        return decode_suback(fh->type == MQTT_SUBACK, &r, v5, &out->u.suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        /* 3.12, 3.13: no variable header, no payload. */
        return fh->remaining_len == 0 ? 0 : MALFORMED;
    case MQTT_DISCONNECT:
        memset(&out->u.disconnect, 0, sizeof out->u.disconnect);
        if (!v5) /* (3.1.1) 3.14: no variable header, no payload */
            return fh->remaining_len == 0 ? 0 : MALFORMED;
        return decode_disconnect(fh->type, &r, &out->u.disconnect);
    case MQTT_AUTH:
        memset(&out->u.disconnect, 0, sizeof out->u.disconnect);
        if (!v5) /* (3.1.1) 2.2.1: type 15 is reserved */
            return MALFORMED;
        return decode_disconnect(fh->type, &r, &out->u.disconnect);
    default:
        return MALFORMED;
    }
}

/* ------------------------------------------------------------------------ */
/* Iterators over a decoded (so validated) SUBSCRIBE / UNSUBSCRIBE payload   */
/* ------------------------------------------------------------------------ */

bool codec_subscribe_next(const struct mqtt_subscribe *s, size_t *off, uint8_t version,
                          struct mqtt_sub_entry *out)
{
    if (*off >= s->entries.len)
        return false;
    struct rd r = {s->entries.ptr + *off, s->entries.ptr + s->entries.len};
    uint8_t opt;
    if (rd_bin(&r, &out->filter) != 0 || rd_u8(&r, &opt) != 0) {
        *off = s->entries.len;
        return false;
    }
    out->qos = opt & 3;
    if (version == MQTT_V5) {
        out->no_local = (opt & 0x04) != 0;
        out->retain_as_published = (opt & 0x08) != 0;
        out->retain_handling = (opt >> 4) & 3;
    } else {
        out->no_local = false;
        out->retain_as_published = false;
        out->retain_handling = 0;
    }
    *off = (size_t)(r.p - s->entries.ptr);
    return true;
}

bool codec_unsubscribe_next(const struct mqtt_subscribe *s, size_t *off, struct mqtt_bytes *filter)
{
    if (*off >= s->entries.len)
        return false;
    struct rd r = {s->entries.ptr + *off, s->entries.ptr + s->entries.len};
    if (rd_bin(&r, filter) != 0) {
        *off = s->entries.len;
        return false;
    }
    *off = (size_t)(r.p - s->entries.ptr);
    return true;
}
