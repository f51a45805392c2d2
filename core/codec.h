/*
 * MQTT 3.1, 3.1.1 and 5.0 packet codec.
 *
 * Decoding never allocates: a decoded packet holds views (struct mqtt_bytes)
 * into the caller's input buffer, valid as long as that buffer is. Every rule
 * the specifications state about a malformed or protocol-violating packet is
 * checked here and reported as an MQTT reason code, so the caller can put it
 * straight into a CONNACK or DISCONNECT.
 *
 * Encoding writes into a caller-provided buffer whose size the caller got from
 * codec_encoded_size(). Pure functions, no globals: any thread may call them.
 */
#ifndef RINGMQ_CODEC_H
#define RINGMQ_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol level byte of CONNECT. */
enum mqtt_version {
    MQTT_V31 = 3,  /* "MQIsdp" */
    MQTT_V311 = 4, /* "MQTT" */
    MQTT_V5 = 5,
};

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* MQTT 5.0 reason codes (2.4). 3.1.1 CONNACK return codes are mapped from
 * these by the encoder (see codec_connack_rc_v311). */
enum mqtt_rc {
    MQTT_RC_SUCCESS = 0x00,
    MQTT_RC_NORMAL_DISCONNECTION = 0x00,
    MQTT_RC_GRANTED_QOS0 = 0x00,
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTHENTICATION = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED_ERROR = 0x80,
    MQTT_RC_MALFORMED_PACKET = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPLEMENTATION_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,
    MQTT_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTHENTICATION_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
    MQTT_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* 3.1.1 CONNACK return codes (3.2.2.3). */
enum mqtt_connack_v311 {
    MQTT_CONNACK_V311_ACCEPTED = 0,
    MQTT_CONNACK_V311_BAD_PROTOCOL = 1,
    MQTT_CONNACK_V311_ID_REJECTED = 2,
    MQTT_CONNACK_V311_UNAVAILABLE = 3,
    MQTT_CONNACK_V311_BAD_CREDENTIALS = 4,
    MQTT_CONNACK_V311_NOT_AUTHORIZED = 5,
};

/* MQTT 5.0 property identifiers (2.2.2.2). All are below 64, so a uint64_t
 * bitmask "present" says which ones a struct mqtt_props carries. */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,         /* byte */
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,         /* u32 */
    MQTT_PROP_CONTENT_TYPE = 0x03,           /* utf8 */
    MQTT_PROP_RESPONSE_TOPIC = 0x08,         /* utf8 */
    MQTT_PROP_CORRELATION_DATA = 0x09,       /* binary */
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,        /* varint */
    MQTT_PROP_SESSION_EXPIRY = 0x11,         /* u32 */
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,     /* utf8 */
    MQTT_PROP_SERVER_KEEPALIVE = 0x13,       /* u16 */
    MQTT_PROP_AUTH_METHOD = 0x15,            /* utf8 */
    MQTT_PROP_AUTH_DATA = 0x16,              /* binary */
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,   /* byte */
    MQTT_PROP_WILL_DELAY = 0x18,             /* u32 */
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,  /* byte */
    MQTT_PROP_RESPONSE_INFO = 0x1A,          /* utf8 */
    MQTT_PROP_SERVER_REFERENCE = 0x1C,       /* utf8 */
    MQTT_PROP_REASON_STRING = 0x1F,          /* utf8 */
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,        /* u16 */
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,    /* u16 */
    MQTT_PROP_TOPIC_ALIAS = 0x23,            /* u16 */
    MQTT_PROP_MAXIMUM_QOS = 0x24,            /* byte */
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,       /* byte */
    MQTT_PROP_USER_PROPERTY = 0x26,          /* utf8 pair */
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,    /* u32 */
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28, /* byte */
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,       /* byte */
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,   /* byte */
};

#define MQTT_PROP_BIT(id) (1ull << (id))

/* A view of bytes owned by someone else (the input buffer when decoded). */
struct mqtt_bytes {
    const uint8_t *ptr;
    uint32_t len;
};

/*
 * MQTT 5.0 properties. "present" has MQTT_PROP_BIT(id) set for each property
 * carried; fields of absent properties are zero.
 *
 * Decoding: "raw" is the whole property block (after its length), so that user
 * properties can be iterated with codec_props_next_user() or copied with
 * codec_props_copy_user(); user_prop_count counts them.
 * Encoding: "user_props" holds user properties already encoded back to back
 * (each 0x26, key, value), as codec_props_copy_user() writes them; they are
 * written when MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY) is present. "raw" is
 * ignored when encoding.
 */
struct mqtt_props {
    uint64_t present;
    struct mqtt_bytes raw;
    struct mqtt_bytes user_props;
    uint32_t user_prop_count;

    uint8_t payload_format;
    uint32_t message_expiry_s;
    struct mqtt_bytes content_type;
    struct mqtt_bytes response_topic;
    struct mqtt_bytes correlation_data;
    uint32_t subscription_ids[8]; /* SUBID_PER_PUBLISH_MAX */
    uint8_t subscription_id_count;
    uint32_t session_expiry_s;
    struct mqtt_bytes assigned_client_id;
    uint16_t server_keepalive_s;
    struct mqtt_bytes auth_method;
    struct mqtt_bytes auth_data;
    uint8_t request_problem_info;
    uint32_t will_delay_s;
    uint8_t request_response_info;
    struct mqtt_bytes response_info;
    struct mqtt_bytes server_reference;
    struct mqtt_bytes reason_string;
    uint16_t receive_maximum;
    uint16_t topic_alias_maximum;
    uint16_t topic_alias;
    uint8_t maximum_qos;
    uint8_t retain_available;
    uint32_t maximum_packet_size;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
};

struct mqtt_connect {
    uint8_t version; /* enum mqtt_version */
    bool clean_start;
    bool will_flag;
    uint8_t will_qos;
    bool will_retain;
    bool has_username;
    bool has_password;
    uint16_t keepalive_s;
    struct mqtt_props props;
    struct mqtt_bytes client_id;
    struct mqtt_props will_props;
    struct mqtt_bytes will_topic;
    struct mqtt_bytes will_payload;
    struct mqtt_bytes username;
    struct mqtt_bytes password;
};

struct mqtt_connack {
    bool session_present;
    uint8_t reason; /* MQTT_RC_*; mapped to a 3.1.1 return code when encoding v3/v4 */
    struct mqtt_props props;
};

struct mqtt_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    struct mqtt_bytes topic; /* may be empty in 5.0 when a topic alias is set */
    uint16_t packet_id;      /* 0 for QoS 0 */
    struct mqtt_props props;
    struct mqtt_bytes payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason;
    struct mqtt_props props;
};

/* One topic filter of a SUBSCRIBE, with its options (3.8.3.1). */
struct mqtt_sub_entry {
    struct mqtt_bytes filter;
    uint8_t qos;
    bool no_local;
    bool retain_as_published;
    uint8_t retain_handling;
};

/* SUBSCRIBE and UNSUBSCRIBE: the decoder has validated every entry; iterate
 * them with codec_subscribe_next() / codec_unsubscribe_next(). */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    uint16_t count;
    struct mqtt_bytes entries; /* the payload */
};

/* SUBACK and UNSUBACK: one reason code per filter (UNSUBACK 3.1.1 has none). */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_props props;
    struct mqtt_bytes reasons;
};

/* DISCONNECT and AUTH. */
struct mqtt_disconnect {
    uint8_t reason;
    struct mqtt_props props;
};

struct mqtt_packet {
    uint8_t type; /* enum mqtt_type */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;
        struct mqtt_subscribe subscribe;   /* also UNSUBSCRIBE */
        struct mqtt_suback suback;         /* also UNSUBACK */
        struct mqtt_disconnect disconnect; /* also AUTH */
    } u;
};

/* Fixed header (2.1). */
struct mqtt_fixed {
    uint8_t type;
    uint8_t flags;
    uint8_t header_len; /* 2..5 */
    uint32_t remaining_len;
};

#define MQTT_NEED_MORE (-1)

/*
 * Parses the fixed header at buf[0..len). Returns 0 when complete (fh filled),
 * MQTT_NEED_MORE when more bytes are needed, or MQTT_RC_MALFORMED_PACKET when
 * the remaining length is longer than four bytes [MQTT-1.5.5], the type is 0,
 * or the flags are reserved values for the type [MQTT-2.1.3-1] (PUBLISH flags
 * with QoS 3 [MQTT-3.3.1-4] included). It does not compare the length with any
 * limit: the caller does that before buffering the body.
 */
int codec_parse_fixed(const uint8_t *buf, size_t len, struct mqtt_fixed *fh);

/*
 * Decodes the body of one whole packet: body points at fh->remaining_len
 * bytes. version is the connection's negotiated protocol version (enum
 * mqtt_version); for CONNECT it is ignored (CONNECT says its own). Checks
 * every rule the spec states for the packet: lengths, UTF-8 [MQTT-1.5.4-1..3],
 * reserved bits, packet id != 0 where required, property allowed for this
 * packet type and not duplicated, property values, topic name/filter syntax,
 * no wildcards in a PUBLISH topic [MQTT-3.3.2-2], SUBSCRIBE with at least one
 * filter [MQTT-3.8.3-3], and so on. Packets that only a server sends
 * (CONNACK, SUBACK, ...) decode too, for clients and tests.
 *
 * Returns MQTT_RC_SUCCESS with *out filled (views into body), or a reason
 * code: MQTT_RC_MALFORMED_PACKET, MQTT_RC_PROTOCOL_ERROR,
 * MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION (CONNECT with an unknown name or
 * level), MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_RC_TOPIC_NAME_INVALID,
 * MQTT_RC_TOPIC_FILTER_INVALID, MQTT_RC_PAYLOAD_FORMAT_INVALID (will payload
 * declared UTF-8 but not), MQTT_RC_QOS_NOT_SUPPORTED is never returned (QoS
 * policy is the broker's).
 */
int codec_decode(const struct mqtt_fixed *fh, const uint8_t *body, uint8_t version,
                 struct mqtt_packet *out);

/* Iterates the entries of a decoded SUBSCRIBE: start with *off = 0; returns
 * false after the last one. */
bool codec_subscribe_next(const struct mqtt_subscribe *s, size_t *off, uint8_t version,
                          struct mqtt_sub_entry *out);
/* Iterates the filters of a decoded UNSUBSCRIBE. */
bool codec_unsubscribe_next(const struct mqtt_subscribe *s, size_t *off, struct mqtt_bytes *filter);

/* Iterates the user properties of decoded props; start with *off = 0. */
bool codec_props_next_user(const struct mqtt_props *p, size_t *off, struct mqtt_bytes *key,
                           struct mqtt_bytes *value);
/* Bytes needed to copy the user properties of decoded props back to back. */
size_t codec_props_user_len(const struct mqtt_props *p);
/* Writes them to out (codec_props_user_len bytes); returns the bytes written. */
size_t codec_props_copy_user(const struct mqtt_props *p, uint8_t *out);

/*
 * Encoding. codec_encoded_size() returns the whole packet's size in bytes
 * (fixed header included) for the given protocol version; codec_encode()
 * writes exactly that many bytes to out and returns the count. Properties are
 * written only for MQTT_V5. For 3.x, CONNACK's reason is mapped to the 3.1.1
 * return code; SUBACK reasons >= 0x80 become 0x80.
 * The caller guarantees a valid packet (ASSERTed in debug builds).
 */
size_t codec_encoded_size(const struct mqtt_packet *p, uint8_t version);
/* Does p fit MQTT's largest packet (a Remaining Length of at most
 * 268435455)? A PUBLISH forwarded from a maximum-size one can outgrow it by
 * the properties added on the way out (subscription identifiers, a topic
 * alias, the 5.0 property length). When it fits, *size is what
 * codec_encoded_size() returns. */
bool codec_fits(const struct mqtt_packet *p, uint8_t version, size_t *size);
size_t codec_encode(uint8_t *out, const struct mqtt_packet *p, uint8_t version);

/* For an encoded PUBLISH with QoS > 0: the offset of its two-byte packet id,
 * so one encoding can be shared by many receivers and patched per receiver. */
size_t codec_publish_packet_id_offset(const uint8_t *encoded);

/* Sets the DUP flag of an encoded PUBLISH in place. */
void codec_publish_set_dup(uint8_t *encoded);

/* Maps a 5.0 reason code to a 3.1.1 CONNACK return code. */
uint8_t codec_connack_rc_v311(uint8_t reason);

/* Variable byte integer: bytes needed for v (1..4). */
size_t codec_varint_size(uint32_t v);

/* Well-formed UTF-8 without U+0000 or surrogates [MQTT-1.5.4-1], [MQTT-1.5.4-2]. */
bool codec_utf8_valid(const uint8_t *s, size_t len);

/* Name of a packet type for logs ("PUBLISH"). */
const char *codec_type_name(uint8_t type);

#endif
