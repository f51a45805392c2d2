/*
 * MQTT packet encoding: the writer, property blocks, and one encoder per
 * packet type, into a buffer the caller sized with codec_encoded_size().
 * The caller promises a valid packet; the encoder ASSERTs the cheap parts
 * of that promise, so a bug shows up here and not in a peer's error log.
 *
 * Pure functions, no globals, no syscalls: any thread may call them.
 */
#include <stddef.h>
#include <string.h>

#include "codec.h"
#include "codec_internal.h"
#include "limits.h"

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */
/* ------------------------------------------------------------------------ */

static inline uint8_t *wr_u16(uint8_t *o, uint16_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return o + 2;
}

static inline uint8_t *wr_u32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
    return o + 4;
}

static inline uint8_t *wr_varint(uint8_t *o, uint32_t v)
{
    ASSERT(v <= VARINT_MAX);
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        *o++ = v ? (uint8_t)(b | 0x80) : b;
    } while (v);
    return o;
}

static inline uint8_t *wr_raw(uint8_t *o, struct mqtt_bytes b)
{
    if (b.len > 0) /* memcpy from NULL is undefined even for zero bytes */
        memcpy(o, b.ptr, b.len);
    return o + b.len;
}

static inline uint8_t *wr_bin(uint8_t *o, struct mqtt_bytes b)
{
    ASSERT(b.len <= 0xFFFF);
    return wr_raw(wr_u16(o, (uint16_t)b.len), b);
}

size_t codec_props_copy_user(const struct mqtt_props *p, uint8_t *out)
{
    size_t off = 0;
    uint8_t *o = out;
    struct mqtt_bytes k, v;
    while (codec_props_next_user(p, &off, &k, &v)) {
        *o++ = MQTT_PROP_USER_PROPERTY;
        o = wr_bin(o, k);
        o = wr_bin(o, v);
    }
    return (size_t)(o - out);
}

/* Length of the properties themselves, without their length prefix. */
static size_t props_body_len(const struct mqtt_props *p)
{
    size_t len = 0;
    for (uint64_t m = p->present; m != 0; m &= m - 1) {
        unsigned id = (unsigned)__builtin_ctzll(m);
        ASSERT(id < 64 && codec_prop_type[id] != PT_NONE);
        switch (codec_prop_type[id]) {
        case PT_BYTE:
            len += 1 + 1;
            break;
        case PT_U16:
            len += 1 + 2;
            break;
        case PT_U32:
            len += 1 + 4;
            break;
        case PT_VARINT:
            ASSERT(p->subscription_id_count >= 1 &&
                   p->subscription_id_count <= SUBID_PER_PUBLISH_MAX);
            for (unsigned i = 0; i < p->subscription_id_count; i++)
                len += 1 + codec_varint_size(p->subscription_ids[i]);
            break;
        case PT_UTF8:
        case PT_BIN:
            len += 1 + 2 + load_bytes(p, id).len;
            break;
        default: /* PT_PAIR: already encoded, identifiers included */
            len += p->user_props.len;
            break;
        }
    }
    return len;
}

/* Property length prefix plus properties: what a 5.0 packet spends on them. */
static size_t props_len(const struct mqtt_props *p)
{
    size_t n = props_body_len(p);
    return codec_varint_size((uint32_t)n) + n;
}

/* Writes the block in ascending identifier order, so equal props always
 * encode to equal bytes. */
static uint8_t *props_write(uint8_t *o, const struct mqtt_props *p, enum prop_ctx ctx)
{
    ASSERT((p->present & ~codec_prop_allowed[ctx]) == 0);
    o = wr_varint(o, (uint32_t)props_body_len(p));
    for (uint64_t m = p->present; m != 0; m &= m - 1) {
        unsigned id = (unsigned)__builtin_ctzll(m);
        switch (codec_prop_type[id]) {
        case PT_BYTE:
            *o++ = (uint8_t)id;
            *o++ = load_u8(p, id);
            break;
        case PT_U16:
            *o++ = (uint8_t)id;
            o = wr_u16(o, load_u16(p, id));
            break;
        case PT_U32:
            *o++ = (uint8_t)id;
            o = wr_u32(o, load_u32(p, id));
            break;
        case PT_VARINT:
            for (unsigned i = 0; i < p->subscription_id_count; i++) {
                *o++ = (uint8_t)id;
                o = wr_varint(o, p->subscription_ids[i]);
            }
            break;
        case PT_UTF8:
        case PT_BIN:
            *o++ = (uint8_t)id;
            o = wr_bin(o, load_bytes(p, id));
            break;
        default:
            o = wr_raw(o, p->user_props);
            break;
        }
    }
    return o;
}

/* ------------------------------------------------------------------------ */
/* Encoders                                                                  */
/* ------------------------------------------------------------------------ */

static bool has_props(const struct mqtt_props *p)
{
    return p->present != 0;
}

static size_t bin_len(struct mqtt_bytes b)
{
    ASSERT(b.len <= 0xFFFF);
    return 2 + (size_t)b.len;
}

static uint8_t fixed_byte(const struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_PUBLISH: {
        const struct mqtt_publish *pub = &p->u.publish;
        ASSERT(pub->qos <= 2 && !(pub->dup && pub->qos == 0));
        return (uint8_t)(MQTT_PUBLISH << 4 | (pub->dup ? 0x08 : 0) | pub->qos << 1 |
                         (pub->retain ? 0x01 : 0));
    }
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return (uint8_t)(p->type << 4 | 0x2);
    default:
        return (uint8_t)(p->type << 4);
    }
}

/* Encoded form of a 5.0 ack-like tail: PUBACK family and DISCONNECT drop
 * what they may (reason 0 and no properties: nothing; no properties: just
 * the reason); this is what brokers send and what clients expect. */
enum tail_form { TAIL_NONE, TAIL_REASON, TAIL_FULL };

static enum tail_form tail_form(uint8_t type, uint8_t reason, const struct mqtt_props *props)
{
    if (has_props(props))
        return TAIL_FULL;
    if (reason == 0)
        return TAIL_NONE;
    /* AUTH has no "reason only" form (3.15.2.1). */
    return type == MQTT_AUTH ? TAIL_FULL : TAIL_REASON;
}

static size_t tail_len(enum tail_form f, const struct mqtt_props *props)
{
    switch (f) {
    case TAIL_NONE:
        return 0;
    case TAIL_REASON:
        return 1;
    default:
        return 1 + props_len(props);
    }
}

static const char *connect_name(uint8_t version, size_t *len)
{
    *len = version == MQTT_V31 ? 6 : 4;
    return version == MQTT_V31 ? "MQIsdp" : "MQTT";
}

/* Remaining length of the packet as this version encodes it. */
static size_t body_len(const struct mqtt_packet *p, uint8_t version)
{
    bool v5 = version == MQTT_V5;
    ASSERT(version >= MQTT_V31 && version <= MQTT_V5);

    switch (p->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *c = &p->u.connect;
        size_t name_len;
        connect_name(version, &name_len);
        size_t n = 2 + name_len + 1 + 1 + 2 + bin_len(c->client_id);
        if (v5)
            n += props_len(&c->props);
        if (c->will_flag) {
            if (v5)
                n += props_len(&c->will_props);
            n += bin_len(c->will_topic) + bin_len(c->will_payload);
        }
        if (c->has_username)
            n += bin_len(c->username);
        if (c->has_password)
            n += bin_len(c->password);
        return n;
    }
    case MQTT_CONNACK:
        return 2 + (v5 ? props_len(&p->u.connack.props) : 0);
    case MQTT_PUBLISH: {
        const struct mqtt_publish *pub = &p->u.publish;
        return bin_len(pub->topic) + (pub->qos ? 2 : 0) + (v5 ? props_len(&pub->props) : 0) +
               pub->payload.len;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: {
        const struct mqtt_ack *a = &p->u.ack;
        if (!v5)
            return 2;
        return 2 + tail_len(tail_form(p->type, a->reason, &a->props), &a->props);
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        const struct mqtt_subscribe *s = &p->u.subscribe;
        return 2 + (v5 ? props_len(&s->props) : 0) + s->entries.len;
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: {
        const struct mqtt_suback *s = &p->u.suback;
        if (!v5 && p->type == MQTT_UNSUBACK)
            return 2;
        return 2 + (v5 ? props_len(&s->props) : 0) + s->reasons.len;
    }
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return 0;
    case MQTT_DISCONNECT:
    case MQTT_AUTH: {
        const struct mqtt_disconnect *d = &p->u.disconnect;
        ASSERT(v5 || p->type == MQTT_DISCONNECT); /* AUTH is 5.0 only */
        if (!v5)
            return 0;
        return tail_len(tail_form(p->type, d->reason, &d->props), &d->props);
    }
    default:
        ASSERT(0 && "unknown packet type");
        return 0;
    }
}

bool codec_fits(const struct mqtt_packet *p, uint8_t version, size_t *size)
{
    size_t n = body_len(p, version);
    if (n > VARINT_MAX)
        return false;
    *size = 1 + codec_varint_size((uint32_t)n) + n;
    return true;
}

size_t codec_encoded_size(const struct mqtt_packet *p, uint8_t version)
{
    size_t n = body_len(p, version);
    ASSERT(n <= VARINT_MAX);
    return 1 + codec_varint_size((uint32_t)n) + n;
}

static uint8_t *encode_connect(uint8_t *o, const struct mqtt_connect *c, uint8_t version)
{
    bool v5 = version == MQTT_V5;
    size_t name_len;
    const char *name = connect_name(version, &name_len);
    ASSERT(c->will_qos <= 2);
    ASSERT(c->will_flag || (c->will_qos == 0 && !c->will_retain));
    ASSERT(v5 || c->has_username || !c->has_password);

    o = wr_u16(o, (uint16_t)name_len);
    memcpy(o, name, name_len);
    o += name_len;
    *o++ = version;
    *o++ = (uint8_t)((c->has_username ? 0x80 : 0) | (c->has_password ? 0x40 : 0) |
                     (c->will_retain ? 0x20 : 0) | c->will_qos << 3 | (c->will_flag ? 0x04 : 0) |
                     (c->clean_start ? 0x02 : 0));
    o = wr_u16(o, c->keepalive_s);
    if (v5)
        o = props_write(o, &c->props, PCTX_CONNECT);
    o = wr_bin(o, c->client_id);
    if (c->will_flag) {
        if (v5)
            o = props_write(o, &c->will_props, PCTX_WILL);
        o = wr_bin(o, c->will_topic);
        o = wr_bin(o, c->will_payload);
    }
    if (c->has_username)
        o = wr_bin(o, c->username);
    if (c->has_password)
        o = wr_bin(o, c->password);
    return o;
}

static uint8_t *encode_tail(uint8_t *o, uint8_t type, uint8_t reason,
                            const struct mqtt_props *props, enum prop_ctx ctx)
{
    enum tail_form f = tail_form(type, reason, props);
    if (f == TAIL_NONE)
        return o;
    *o++ = reason;
    if (f == TAIL_FULL)
        o = props_write(o, props, ctx);
    return o;
}

size_t codec_encode(uint8_t *out, const struct mqtt_packet *p, uint8_t version)
{
    bool v5 = version == MQTT_V5;
    size_t body = body_len(p, version);
    uint8_t *o = out;

    *o++ = fixed_byte(p);
    o = wr_varint(o, (uint32_t)body);
    uint8_t *body_start = o;

    switch (p->type) {
    case MQTT_CONNECT:
        o = encode_connect(o, &p->u.connect, version);
        break;
    case MQTT_CONNACK: {
        const struct mqtt_connack *c = &p->u.connack;
        ASSERT(!c->session_present || c->reason == MQTT_RC_SUCCESS);
        *o++ = c->session_present ? 1 : 0;
        if (v5) {
            *o++ = c->reason;
            o = props_write(o, &c->props, PCTX_CONNACK);
        } else {
            *o++ = codec_connack_rc_v311(c->reason);
        }
        break;
    }
    case MQTT_PUBLISH: {
        const struct mqtt_publish *pub = &p->u.publish;
        o = wr_bin(o, pub->topic);
        if (pub->qos) {
            ASSERT(pub->packet_id != 0);
            o = wr_u16(o, pub->packet_id);
        }
        if (v5)
            o = props_write(o, &pub->props, PCTX_PUBLISH);
        o = wr_raw(o, pub->payload);
        break;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: {
        const struct mqtt_ack *a = &p->u.ack;
        o = wr_u16(o, a->packet_id);
        if (v5)
            o = encode_tail(o, p->type, a->reason, &a->props, PCTX_ACK);
        break;
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        const struct mqtt_subscribe *s = &p->u.subscribe;
        ASSERT(s->entries.len > 0);
        o = wr_u16(o, s->packet_id);
        if (v5)
            o = props_write(o, &s->props,
                            p->type == MQTT_SUBSCRIBE ? PCTX_SUBSCRIBE : PCTX_UNSUBSCRIBE);
        o = wr_raw(o, s->entries);
        break;
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: {
        const struct mqtt_suback *s = &p->u.suback;
        o = wr_u16(o, s->packet_id);
        if (v5) {
            o = props_write(o, &s->props, PCTX_SUBACK);
            o = wr_raw(o, s->reasons);
        } else if (p->type == MQTT_SUBACK) {
            /* (3.1.1) 3.9.3: 0x80 is the only failure 3.1.1 knows. */
            for (uint32_t i = 0; i < s->reasons.len; i++) {
                uint8_t rc = s->reasons.ptr[i];
                *o++ = rc >= 0x80 ? 0x80 : rc;
            }
        }
        break;
    }
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH: {
        const struct mqtt_disconnect *d = &p->u.disconnect;
        if (v5)
            o = encode_tail(o, p->type, d->reason, &d->props,
                            p->type == MQTT_AUTH ? PCTX_AUTH : PCTX_DISCONNECT);
        break;
    }
    default:
        ASSERT(0 && "unknown packet type");
        break;
    }

    ASSERT((size_t)(o - body_start) == body);
    return (size_t)(o - out);
}

size_t codec_publish_packet_id_offset(const uint8_t *encoded)
{
    ASSERT((encoded[0] >> 4) == MQTT_PUBLISH && ((encoded[0] >> 1) & 3) != 0);
    size_t i = 1;
    while (encoded[i] & 0x80)
        i++;
    i++; /* past the last length byte: the topic length */
    size_t topic_len = (size_t)encoded[i] << 8 | encoded[i + 1];
    return i + 2 + topic_len;
}

void codec_publish_set_dup(uint8_t *encoded)
{
    ASSERT((encoded[0] >> 4) == MQTT_PUBLISH && ((encoded[0] >> 1) & 3) != 0);
    encoded[0] |= 0x08;
}

const char *codec_type_name(uint8_t type)
{
    static const char *const names[16] = {
        "RESERVED", "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
        "PUBREL",   "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ",  "PINGRESP", "DISCONNECT", "AUTH",
    };
    return type < 16 ? names[type] : "UNKNOWN";
}
