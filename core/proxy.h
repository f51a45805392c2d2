/*
 * The PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1
 * and 2): a pure, incremental parser of what a trusted load balancer puts
 * in front of a connection's first byte to say whose connection it is.
 *
 * The PROXY layer (net/, later) keeps the bytes a connection sends until
 * proxy_parse() says DONE or INVALID, calling it again on the whole grown
 * prefix after every read. The parser keeps no state between calls: a
 * header is at most max_header bytes and almost always arrives in one
 * segment, so parsing a prefix again costs less than carrying state
 * through the layer. It never allocates, never writes to the input, and
 * the result holds no pointer into it. Any thread may call it.
 *
 * A listener takes one version, never both: the spec (section 2) forbids
 * guessing whether a header is present, and mosquitto 2.1's
 * "enable_proxy_protocol 1" and "enable_proxy_protocol 2" each take only
 * their own version (its v2 reader requires the binary signature, its v1
 * reader "PROXY "); no value of that key takes both. A v1 header at a v2
 * listener, or the reverse, is INVALID at its first byte.
 */
#ifndef RINGMQ_PROXY_H
#define RINGMQ_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest v1 line, CRLF included (spec 2.1: "PROXY UNKNOWN" with two
 * full IPv6 addresses and ports). No CRLF by then: INVALID. */
#define PROXY_V1_HEADER_MAX 107u
/* A v2 header: 16 fixed bytes and a 16-bit length. */
#define PROXY_V2_FIXED_LEN  16u
#define PROXY_V2_HEADER_MAX (PROXY_V2_FIXED_LEN + 65535u)
/* The smallest max_header a caller may pass: room for the largest address
 * block the spec defines (AF_UNIX, 2 x 108 bytes, which a LOCAL header may
 * carry), and for any v1 line, so the limit only ever refuses TLVs. */
#define PROXY_HEADER_LIMIT_MIN (PROXY_V2_FIXED_LEN + 216u)
/* What the broker passes: the TLVs a sender adds (ALPN, authority, SSL
 * with a client certificate's CN, unique id, CRC32C) fit in a few hundred
 * bytes, and nothing past them is of use to an MQTT listener, so a header
 * that declares more is refused at its 16th byte instead of buffered.
 * (mosquitto 2.1 caps it at 16 + 500.) */
#define PROXY_HEADER_LIMIT_DEFAULT 4096u

_Static_assert(PROXY_HEADER_LIMIT_MIN >= PROXY_V1_HEADER_MAX, "max_header bounds v1 too");
_Static_assert(PROXY_HEADER_LIMIT_DEFAULT >= PROXY_HEADER_LIMIT_MIN, "default within bounds");
_Static_assert(PROXY_HEADER_LIMIT_DEFAULT <= PROXY_V2_HEADER_MAX, "default within bounds");

/* The listener's enable_proxy_protocol value. */
enum proxy_version {
    PROXY_V1 = 1,
    PROXY_V2 = 2,
};

enum proxy_status {
    PROXY_INVALID = -1,  /* not a header this listener accepts: close */
    PROXY_NEED_MORE = 0, /* a valid prefix: keep the bytes, call again with more */
    PROXY_DONE = 1,      /* a whole header: the application's bytes start at consumed */
};

/* Our own values rather than AF_INET/AF_INET6: core/ includes no socket
 * headers, and the layer maps these with one switch. */
enum proxy_family {
    PROXY_FAMILY_NONE = 0, /* keep the socket's own addresses */
    PROXY_FAMILY_INET4 = 4,
    PROXY_FAMILY_INET6 = 6,
};

/* v2 TLV types (spec 2.2) the parser looks into. */
#define PROXY_TLV_CRC32C 0x03u
#define PROXY_TLV_NOOP   0x04u
#define PROXY_TLV_SSL    0x20u

struct proxy_result {
    /* DONE: the header's length in bytes; 0 otherwise. */
    size_t consumed;
    /* A v2 LOCAL command (a health check by the proxy itself) or v1
     * UNKNOWN: no address is given, keep the socket's own. family is NONE. */
    bool local;
    uint8_t family; /* enum proxy_family */
    /* Network byte order; an IPv4 address in the first 4 bytes, the rest 0. */
    uint8_t src_addr[16];
    uint8_t dst_addr[16];
    uint16_t src_port; /* host byte order */
    uint16_t dst_port;
    /* v2: where the TLVs after the address block lie in the input
     * (tlv_off + tlv_len == consumed), each TLV's length checked to lie
     * inside the header, the SSL TLV's sub-TLVs inside it, a CRC32C
     * verified. v1: both 0. */
    size_t tlv_off;
    size_t tlv_len;
    /* INVALID: a static string that says what is wrong, for the log.
     * NULL otherwise. */
    const char *why;
};

/*
 * Parses the header a connection of a listener configured for `version`
 * (PROXY_V1 or PROXY_V2) starts with: data[0..len) is everything received
 * so far. max_header bounds a v2 header (PROXY_HEADER_LIMIT_MIN ..
 * PROXY_V2_HEADER_MAX, normally PROXY_HEADER_LIMIT_DEFAULT); a v1 line is
 * bounded by PROXY_V1_HEADER_MAX.
 *
 * INVALID comes as soon as the bytes allow: at the first byte that no
 * valid header of that version has there (so plain MQTT, 0x10, or a TLS
 * ClientHello, 0x16, fails at byte 0), at a v2 length that exceeds
 * max_header or cannot hold the address block, at a TLV header that runs
 * past the end; a v2 CRC32C is checked once the whole header is in.
 * Monotonic in len: a prefix of a valid header is never INVALID, a prefix
 * of an invalid one is INVALID or NEED_MORE, and once DONE the result is
 * the same for every longer input. NEED_MORE is only ever returned for
 * len < PROXY_V1_HEADER_MAX (v1) or len < max_header (v2), which bounds
 * what the layer buffers.
 *
 * *out is always written: see struct proxy_result.
 */
enum proxy_status proxy_parse(uint8_t version, size_t max_header, const uint8_t *data, size_t len,
                              struct proxy_result *out);

/* CRC-32C (Castagnoli, RFC 4960 appendix B) of data[0..len), as a v2
 * PROXY_TLV_CRC32C carries it (big-endian, computed with its own 4 bytes
 * zero). Exposed for tests and senders. */
uint32_t proxy_crc32c(const uint8_t *data, size_t len);

#endif
