/*
 * The codec's private declarations, shared by codec.c (decoding) and
 * codec_encode.c only: the property tables and the checks both directions
 * make.
 */
#ifndef RINGMQ_CODEC_INTERNAL_H
#define RINGMQ_CODEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "invariant.h"

#define VARINT_MAX 268435455u /* [MQTT-1.5.5] four bytes of seven bits */

enum prop_type {
    PT_NONE = 0, /* not a property identifier */
    PT_BYTE,
    PT_U16,
    PT_U32,
    PT_VARINT,
    PT_UTF8,
    PT_BIN,
    PT_PAIR,
};

/* The packets (and the will) that carry properties; each has the set the
 * table in 2.2.2.2 allows. */
enum prop_ctx {
    PCTX_CONNECT,
    PCTX_WILL,
    PCTX_CONNACK,
    PCTX_PUBLISH,
    PCTX_ACK, /* PUBACK, PUBREC, PUBREL, PUBCOMP */
    PCTX_SUBSCRIBE,
    PCTX_SUBACK, /* SUBACK, UNSUBACK */
    PCTX_UNSUBSCRIBE,
    PCTX_DISCONNECT,
    PCTX_AUTH,
    PCTX_COUNT,
};

/* Per property identifier: its type, where it lives in struct mqtt_props;
 * per packet: the properties it may carry (2.2.2.2). */
extern const uint8_t codec_prop_type[64];
extern const uint16_t codec_prop_offset[64];
extern const uint64_t codec_prop_allowed[PCTX_COUNT];

static inline uint8_t load_u8(const struct mqtt_props *p, unsigned id)
{
    uint8_t v;
    memcpy(&v, (const uint8_t *)p + codec_prop_offset[id], sizeof v);
    return v;
}
static inline uint16_t load_u16(const struct mqtt_props *p, unsigned id)
{
    uint16_t v;
    memcpy(&v, (const uint8_t *)p + codec_prop_offset[id], sizeof v);
    return v;
}
static inline uint32_t load_u32(const struct mqtt_props *p, unsigned id)
{
    uint32_t v;
    memcpy(&v, (const uint8_t *)p + codec_prop_offset[id], sizeof v);
    return v;
}
static inline struct mqtt_bytes load_bytes(const struct mqtt_props *p, unsigned id)
{
    struct mqtt_bytes v;
    memcpy(&v, (const uint8_t *)p + codec_prop_offset[id], sizeof v);
    return v;
}

#endif
