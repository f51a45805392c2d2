/*
 * core/proxy.c: the PROXY protocol header, v1 and v2. The examples are
 * those of HAProxy's doc/proxy-protocol.txt (section 2.1's line and its
 * maximum lengths, section 2.2's address blocks and TLVs); addresses are
 * checked against the C library's inet_pton, which the parser is meant to
 * agree with; the CRC32C against the RFC 3720 B.4 vectors and a bitwise
 * reference. Every valid header is fed at every length: NEED_MORE until
 * it is whole, DONE with the right consumed after, application bytes
 * following or not.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define U(s)     ((const uint8_t *)(s))
#define LIMIT    PROXY_HEADER_LIMIT_DEFAULT
#define CONNECT4 "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static enum proxy_status parse(uint8_t v, size_t max, const uint8_t *d, size_t n,
                               struct proxy_result *r)
{
    memset(r, 0xA5, sizeof *r); /* every field must be written */
    return proxy_parse(v, max, d, n, r);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0)
            return false;
    }
    return true;
}

static void assert_not_done(const struct proxy_result *r, enum proxy_status st)
{
    cr_assert_eq(r->consumed, 0);
    cr_assert_not(r->local);
    cr_assert_eq(r->family, PROXY_FAMILY_NONE);
    cr_assert(all_zero(r->src_addr, 16) && all_zero(r->dst_addr, 16));
    cr_assert_eq(r->src_port, 0);
    cr_assert_eq(r->dst_port, 0);
    cr_assert_eq(r->tlv_off, 0);
    cr_assert_eq(r->tlv_len, 0);
    if (st == PROXY_NEED_MORE)
        cr_assert_null(r->why);
    else
        cr_assert(r->why != NULL && r->why[0] != 0);
}

/* A valid header: NEED_MORE at every shorter length, DONE at its length
 * and with application bytes after it, the same result each time. */
static struct proxy_result whole(uint8_t v, size_t max, const uint8_t *h, size_t n)
{
    struct proxy_result r, r2;
    uint8_t *buf = malloc(n + sizeof CONNECT4);
    cr_assert_not_null(buf);
    memcpy(buf, h, n);
    memcpy(buf + n, CONNECT4, sizeof CONNECT4);

    for (size_t k = 0; k < n; k++) {
        enum proxy_status st = parse(v, max, buf, k, &r);
        cr_assert_eq(st, PROXY_NEED_MORE, "prefix %zu of %zu: %d (%s)", k, n, st,
                     st == PROXY_INVALID ? r.why : "");
        assert_not_done(&r, st);
    }
    cr_assert_eq(parse(v, max, buf, n, &r), PROXY_DONE, "whole: %s", r.why ? r.why : "");
    cr_assert_eq(r.consumed, n);
    cr_assert_null(r.why);
    for (size_t extra = 1; extra <= sizeof CONNECT4; extra++) {
        cr_assert_eq(parse(v, max, buf, n + extra, &r2), PROXY_DONE);
        cr_assert(memcmp(&r, &r2, sizeof r) == 0, "with %zu application bytes", extra);
    }
    free(buf);
    return r;
}

static struct proxy_result whole_str(uint8_t v, const char *h)
{
    return whole(v, LIMIT, U(h), strlen(h));
}

/* An invalid header: NEED_MORE before byte `at` (1-based: the prefix
 * length that first shows the fault), INVALID from there on, with why. */
static void invalid_at(uint8_t v, size_t max, const uint8_t *h, size_t n, size_t at,
                       const char *why)
{
    struct proxy_result r;
    cr_assert(at >= 1 && at <= n);
    for (size_t k = 0; k < at; k++) {
        enum proxy_status st = parse(v, max, h, k, &r);
        cr_assert_eq(st, PROXY_NEED_MORE, "prefix %zu (fault at %zu): %d %s", k, at, st,
                     r.why ? r.why : "");
        assert_not_done(&r, st);
    }
    for (size_t k = at; k <= n; k++) {
        enum proxy_status st = parse(v, max, h, k, &r);
        cr_assert_eq(st, PROXY_INVALID, "prefix %zu (fault at %zu): %d", k, at, st);
        assert_not_done(&r, st);
        if (k == at || k == n)
            cr_assert_str_eq(r.why, why, "prefix %zu", k);
    }
}

static void invalid_str(uint8_t v, const char *h, size_t at, const char *why)
{
    invalid_at(v, LIMIT, U(h), strlen(h), at, why);
}

/* The prefix length at which s first differs from valid: where the
 * fault in an otherwise good line is. */
static size_t fault(const char *s, const char *marker)
{
    const char *p = strstr(s, marker);
    cr_assert_not_null(p, "marker %s in %s", marker, s);
    return (size_t)(p - s) + 1;
}

#define WHY_V1_SIG     "not a PROXY v1 header (it starts with \"PROXY \")"
#define WHY_V1_PROTO   "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN"
#define WHY_V1_IP4     "PROXY v1: bad IPv4 address (four decimal numbers 0-255, no leading zero)"
#define WHY_V1_IP6     "PROXY v1: bad IPv6 address"
#define WHY_V1_PORT    "PROXY v1: bad port (decimal 0-65535, no leading zero)"
#define WHY_V1_SPACES  "PROXY v1: fields are separated by exactly one space"
#define WHY_V1_CRLF    "PROXY v1: line not ended by CRLF"
#define WHY_V1_UNKNOWN "PROXY v1: UNKNOWN not followed by a space or CRLF"
#define WHY_V1_TEXT    "PROXY v1: a byte that is not printable US-ASCII in the line"
#define WHY_V1_LONG    "PROXY v1: no CRLF within 107 bytes"
#define WHY_V2_SIG     "not a PROXY v2 header (bad signature)"
#define WHY_MQTT       "an MQTT CONNECT where a PROXY header was due"
#define WHY_TLS        "a TLS handshake where a PROXY header was due"
#define WHY_V1_AT_V2   "a PROXY v1 header at a listener set to enable_proxy_protocol 2"
#define WHY_V2_AT_V1   "a PROXY v2 header at a listener set to enable_proxy_protocol 1"

/* ------------------------------------------------------------------------ */
/* v1                                                                        */
/* ------------------------------------------------------------------------ */

Test(proxy_v1, spec_example_tcp4)
{
    const char *h = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    struct proxy_result r = whole_str(PROXY_V1, h);
    const uint8_t src[16] = {192, 168, 0, 1}, dst[16] = {192, 168, 0, 11};
    cr_assert_eq(r.family, PROXY_FAMILY_INET4);
    cr_assert_not(r.local);
    cr_assert(memcmp(r.src_addr, src, 16) == 0);
    cr_assert(memcmp(r.dst_addr, dst, 16) == 0);
    cr_assert_eq(r.src_port, 56324);
    cr_assert_eq(r.dst_port, 443);
    cr_assert_eq(r.tlv_off, 0);
    cr_assert_eq(r.tlv_len, 0);

    /* The spec's HTTP request after it is the application's. */
    const char *with = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
    cr_assert_eq(parse(PROXY_V1, LIMIT, U(with), strlen(with), &r), PROXY_DONE);
    cr_assert_eq(r.consumed, strlen(h));
}

Test(proxy_v1, spec_maximum_lines)
{
    const char *tcp4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    const char *tcp6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    const char *unk = "PROXY UNKNOWN\r\n";
    const char *worst = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    cr_assert_eq(strlen(tcp4), 56);
    cr_assert_eq(strlen(tcp6), 104);
    cr_assert_eq(strlen(unk), 15);
    cr_assert_eq(strlen(worst), PROXY_V1_HEADER_MAX);

    struct proxy_result r = whole_str(PROXY_V1, tcp4);
    cr_assert_eq(r.family, PROXY_FAMILY_INET4);
    cr_assert(memcmp(r.src_addr, "\xff\xff\xff\xff", 4) == 0 && all_zero(r.src_addr + 4, 12));
    cr_assert_eq(r.dst_port, 65535);
    r = whole_str(PROXY_V1, tcp6);
    cr_assert_eq(r.family, PROXY_FAMILY_INET6);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(r.src_addr[i], 0xff);
    r = whole_str(PROXY_V1, unk);
    cr_assert(r.local);
    cr_assert_eq(r.family, PROXY_FAMILY_NONE);
    r = whole_str(PROXY_V1, worst);
    cr_assert(r.local);
    cr_assert_eq(r.consumed, 107);
    cr_assert(all_zero(r.src_addr, 16)); /* UNKNOWN's addresses are ignored [PP 2.1] */
}

Test(proxy_v1, tcp6_forms)
{
    struct proxy_result r =
        whole_str(PROXY_V1, "PROXY TCP6 2001:db8::1 2001:DB8:0:0:0:0:0:2 1234 8883\r\n");
    const uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    const uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
    cr_assert(memcmp(r.src_addr, src, 16) == 0);
    cr_assert(memcmp(r.dst_addr, dst, 16) == 0);
    cr_assert_eq(r.src_port, 1234);
    cr_assert_eq(r.dst_port, 8883);

    /* A mapped IPv4 address as inet_ntop writes it, and "::". */
    r = whole_str(PROXY_V1, "PROXY TCP6 ::ffff:192.0.2.1 :: 0 1883\r\n");
    const uint8_t mapped[16] = {[10] = 0xff, 0xff, 192, 0, 2, 1};
    cr_assert(memcmp(r.src_addr, mapped, 16) == 0);
    cr_assert(all_zero(r.dst_addr, 16));
    cr_assert_eq(r.src_port, 0); /* the spec's range is 0..65535 */
}

Test(proxy_v1, unknown_rest_ignored)
{
    struct proxy_result r =
        whole_str(PROXY_V1, "PROXY UNKNOWN anything at all, even ~!@#$%^&*\r\n");
    cr_assert(r.local);
    r = whole_str(PROXY_V1, "PROXY UNKNOWN \r\n");
    cr_assert(r.local);
}

/* Address text against the C library: the parser must agree with
 * inet_pton on every form, valid or not, and give the same bytes. */
static void addr_agrees(bool inet6, const char *text)
{
    char line[256];
    const char *other = inet6 ? "::1" : "127.0.0.1";
    snprintf(line, sizeof line, "PROXY TCP%c %s %s 1 2\r\n", inet6 ? '6' : '4', text, other);
    uint8_t ref[16] = {0};
    bool ok = inet_pton(inet6 ? AF_INET6 : AF_INET, text, ref) == 1;
    struct proxy_result r;
    enum proxy_status st = parse(PROXY_V1, LIMIT, U(line), strlen(line), &r);
    if (ok && strlen(line) <= PROXY_V1_HEADER_MAX) {
        cr_assert_eq(st, PROXY_DONE, "%s: %s", text, r.why);
        cr_assert(memcmp(r.src_addr, ref, 16) == 0, "%s", text);
        whole_str(PROXY_V1, line);
    } else {
        cr_assert_eq(st, PROXY_INVALID, "%s accepted", text);
        const char *want = inet6 ? WHY_V1_IP6 : WHY_V1_IP4;
        if (strlen(line) <= PROXY_V1_HEADER_MAX && text[0] != 0)
            cr_assert_str_eq(r.why, want, "%s", text);
    }
}

Test(proxy_v1, ipv4_text_as_inet_pton)
{
    static const char *const cases[] = {
        "0.0.0.0",  "1.2.3.4",    "255.255.255.255", "10.0.0.1",  "192.168.100.200",
        "01.2.3.4", "1.02.3.4",   "1.2.3.00",        "256.1.1.1", "1.2.3.256",
        "1.2.3",    "1.2.3.4.5",  "1..2.3",          ".1.2.3",    "1.2.3.",
        "1.2.3.4a", "0x1.2.3.4",  "1.2.3.-4",        "+1.2.3.4",  "1.2.3.1000",
        "::1",      "1.2.3.4:80", "1,2,3,4",         "999.1.1.1",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        addr_agrees(false, cases[i]);
}

Test(proxy_v1, ipv6_text_as_inet_pton)
{
    static const char *const cases[] = {
        "::",
        "::1",
        "1::",
        "1::2",
        "2001:db8::ff00:42:8329",
        "2001:0db8:0000:0000:0000:ff00:0042:8329",
        "FE80::0202:B3FF:FE1E:8329",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8",
        "1:2:3:4:5:6::8",
        "::ffff:1.2.3.4",
        "::1.2.3.4",
        "1:2:3:4:5:6:1.2.3.4",
        "1::5:6:1.2.3.4",
        "64:ff9b::192.0.2.33",
        "0:0:0:0:0:0:0:0",
        "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
        /* refused */
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7:8::",
        "::1:2:3:4:5:6:7:8",
        "1::2::3",
        ":1::",
        ":1",
        "1:",
        "1::2:",
        ":::",
        "1:::2",
        "12345::",
        "g::",
        "1:2:3:4:5:6:7",
        "fe80::1%eth0",
        "::ffff:1.2.3",
        "::ffff:01.2.3.4",
        "::ffff:1.2.3.4.5",
        "::ffff:256.1.1.1",
        "1:2:3:4:5:6:7:1.2.3.4",
        "1:2:3:4:5:6::1.2.3.4",
        "1:2:3:4:5:1.2.3.4",
        "::1.2.3.4:1",
        "::1a.2.3.4",
        "::1.2.3.4a",
        "1.2.3.4",
        "::.1.2.3",
        "::ffff:1.2.3.",
        "1:2:3:4:5:6:7:8:",
        "00000::",
        "::0000:00000",
        "-1::",
        "[::1]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        addr_agrees(true, cases[i]);
}

Test(proxy_v1, invalid_early_with_why)
{
    const char *s;
    s = "PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n";
    invalid_str(PROXY_V1, s, fault(s, ".01 ") + 2, WHY_V1_IP4);
    s = "PROXY TCP4 256.1.1.1 1.1.1.1 1 2\r\n";
    invalid_str(PROXY_V1, s, fault(s, "6.1"), WHY_V1_IP4);
    s = "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n";
    invalid_str(PROXY_V1, s, fault(s, "  ") + 1, WHY_V1_SPACES);
    s = "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    invalid_str(PROXY_V1, s, 7, WHY_V1_PROTO);
    s = "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n";
    invalid_str(PROXY_V1, s, 10, WHY_V1_PROTO);
    s = "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n";
    invalid_str(PROXY_V1, s, 7, WHY_V1_PROTO);
    s = "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n";
    invalid_str(PROXY_V1, s, fault(s, " 01") + 2, WHY_V1_PORT);
    s = "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n";
    invalid_str(PROXY_V1, s, fault(s, "65536") + 4, WHY_V1_PORT);
    s = "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n";
    invalid_str(PROXY_V1, s, fault(s, "+"), WHY_V1_PORT);
    s = "PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n";
    invalid_str(PROXY_V1, s, fault(s, "123456") + 5, WHY_V1_PORT);
    s = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n";
    invalid_str(PROXY_V1, s, fault(s, "2 \r") + 1, WHY_V1_PORT);
    s = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n";
    invalid_str(PROXY_V1, s, fault(s, "\n"), WHY_V1_CRLF);
    s = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n";
    invalid_str(PROXY_V1, s, fault(s, "\r\r") + 1, WHY_V1_CRLF);
    s = "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"; /* the family dictates the format */
    invalid_str(PROXY_V1, s, fault(s, "1.2") + 1, WHY_V1_IP6);
    s = "PROXY TCP4 ::1 ::1 1 2\r\n";
    invalid_str(PROXY_V1, s, fault(s, "::1"), WHY_V1_IP4);
    s = "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"; /* nothing fits after the 8th group */
    invalid_str(PROXY_V1, s, fault(s, ":9"), WHY_V1_IP6);
    s = "PROXY TCP6 1::2::3 ::1 1 2\r\n";
    invalid_str(PROXY_V1, s, fault(s, "::3") + 1, WHY_V1_IP6);
    s = "PROXY TCP6 1:2:3:4:5:6:7::8 ::1 1 2\r\n"; /* "::" plus 8 groups */
    invalid_str(PROXY_V1, s, fault(s, "::8") + 2, WHY_V1_IP6);
    s = "PROXY UNKNOWNX\r\n";
    invalid_str(PROXY_V1, s, 14, WHY_V1_UNKNOWN);
    s = "PROXY UNKNOWN\n";
    invalid_str(PROXY_V1, s, 14, WHY_V1_UNKNOWN);
    s = "PROXY UNKNOWN a\x01"
        "b\r\n";
    invalid_str(PROXY_V1, s, fault(s, "\x01"), WHY_V1_TEXT);
    s = "PROXY UNKNOWN a\nb\r\n"; /* a lone LF never ends the line */
    invalid_str(PROXY_V1, s, fault(s, "\n"), WHY_V1_TEXT);
    s = "PROXY UNKNOWN a\rb\r\n";
    invalid_str(PROXY_V1, s, fault(s, "\rb") + 1, WHY_V1_CRLF);
    s = "PROXYTCP4";
    invalid_str(PROXY_V1, s, 6, WHY_V1_SIG);
    s = "proxy TCP4";
    invalid_str(PROXY_V1, s, 1, WHY_V1_SIG);
    s = "POST / HTTP/1.1\r\n";
    invalid_str(PROXY_V1, s, 2, WHY_V1_SIG);
}

Test(proxy_v1, no_crlf_within_107_bytes)
{
    char line[200];
    /* 108 bytes: one more than the spec's worst case. */
    snprintf(line, sizeof line, "PROXY UNKNOWN %.*s\r\n", 92,
             "0123456789012345678901234567890123456789"
             "0123456789012345678901234567890123456789"
             "0123456789012345678901234567890123456789");
    cr_assert_eq(strlen(line), 108);
    invalid_str(PROXY_V1, line, 107, WHY_V1_LONG);
    line[105] = '\r';
    line[106] = '\n';
    struct proxy_result r = whole(PROXY_V1, LIMIT, U(line), 107);
    cr_assert(r.local);

    /* TCP6 with two long mapped forms: grammatical, but too long. */
    const char *s = "PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 "
                    "0000:0000:0000:0000:0000:ffff:255.255.255.255 65535 65535\r\n";
    invalid_str(PROXY_V1, s, 107, WHY_V1_LONG);
}

/* ------------------------------------------------------------------------ */
/* v2                                                                        */
/* ------------------------------------------------------------------------ */

struct v2 {
    uint8_t b[70000];
    size_t n;
};

static void v2_start(struct v2 *h, uint8_t ver_cmd, uint8_t fam)
{
    memcpy(h->b, SIG, 12);
    h->b[12] = ver_cmd;
    h->b[13] = fam;
    h->n = 16;
}

static void v2_put(struct v2 *h, const void *p, size_t n)
{
    cr_assert(h->n + n <= sizeof h->b);
    memcpy(h->b + h->n, p, n);
    h->n += n;
}

static void v2_tlv(struct v2 *h, uint8_t type, const void *v, size_t n)
{
    uint8_t t[3] = {type, (uint8_t)(n >> 8), (uint8_t)n};
    v2_put(h, t, 3);
    v2_put(h, v, n);
}

/* Sets the length field; with crc, appends a CRC32C TLV computed over the
 * whole header [PP 2.2.3]. */
static void v2_end(struct v2 *h, bool crc)
{
    size_t at = 0;
    if (crc) {
        v2_tlv(h, PROXY_TLV_CRC32C, "\0\0\0\0", 4);
        at = h->n - 4;
    }
    h->b[14] = (uint8_t)((h->n - 16) >> 8);
    h->b[15] = (uint8_t)(h->n - 16);
    if (crc) {
        uint32_t c = proxy_crc32c(h->b, h->n);
        h->b[at] = (uint8_t)(c >> 24);
        h->b[at + 1] = (uint8_t)(c >> 16);
        h->b[at + 2] = (uint8_t)(c >> 8);
        h->b[at + 3] = (uint8_t)c;
    }
}

static const uint8_t ADDR4[12] = {192, 0, 2, 1, 198, 51, 100, 7, 0xDB, 0xE4, 0x07, 0x5B};

static void v2_addr6(struct v2 *h)
{
    uint8_t a[36] = {0x20, 0x01, 0x0d,     0xb8, [15] = 1, 0x20, 0x01,
                     0x0d, 0xb8, [31] = 2, 0x04, 0xd2,     0x22, 0xb3};
    v2_put(h, a, sizeof a);
}

Test(proxy_v2, proxy_tcp4)
{
    static struct v2 h;
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_end(&h, false);
    cr_assert_eq(h.n, 28);
    struct proxy_result r = whole(PROXY_V2, LIMIT, h.b, h.n);
    cr_assert_not(r.local);
    cr_assert_eq(r.family, PROXY_FAMILY_INET4);
    cr_assert(memcmp(r.src_addr, ADDR4, 4) == 0 && all_zero(r.src_addr + 4, 12));
    cr_assert(memcmp(r.dst_addr, ADDR4 + 4, 4) == 0 && all_zero(r.dst_addr + 4, 12));
    cr_assert_eq(r.src_port, 56292);
    cr_assert_eq(r.dst_port, 1883);
    cr_assert_eq(r.tlv_off, 28);
    cr_assert_eq(r.tlv_len, 0);
}

Test(proxy_v2, proxy_tcp6)
{
    static struct v2 h;
    v2_start(&h, 0x21, 0x21);
    v2_addr6(&h);
    v2_end(&h, false);
    cr_assert_eq(h.n, 52);
    struct proxy_result r = whole(PROXY_V2, LIMIT, h.b, h.n);
    cr_assert_eq(r.family, PROXY_FAMILY_INET6);
    cr_assert(memcmp(r.src_addr, h.b + 16, 16) == 0);
    cr_assert(memcmp(r.dst_addr, h.b + 32, 16) == 0);
    cr_assert_eq(r.src_port, 1234);
    cr_assert_eq(r.dst_port, 8883);
}

/* HAProxy's health check: LOCAL, UNSPEC, no address. */
Test(proxy_v2, local_unspec)
{
    static struct v2 h;
    v2_start(&h, 0x20, 0x00);
    v2_end(&h, false);
    struct proxy_result r = whole(PROXY_V2, LIMIT, h.b, h.n);
    cr_assert(r.local);
    cr_assert_eq(r.family, PROXY_FAMILY_NONE);
    cr_assert_eq(r.consumed, 16);

    /* With TLVs after the zero-length address block, a CRC among them. */
    v2_start(&h, 0x20, 0x00);
    v2_tlv(&h, PROXY_TLV_NOOP, "", 0);
    v2_end(&h, true);
    r = whole(PROXY_V2, LIMIT, h.b, h.n);
    cr_assert(r.local);
    cr_assert_eq(r.tlv_off, 16);
    cr_assert_eq(r.tlv_len, 3 + 7);
}

/* LOCAL ignores the family and its addresses [PP 2.2], any defined
 * family: even those a PROXY command may not use here. */
Test(proxy_v2, local_ignores_family)
{
    static const uint8_t fams[] = {0x11, 0x12, 0x21, 0x22, 0x31, 0x32};
    static const size_t lens[] = {12, 12, 36, 36, 216, 216};
    static struct v2 h;
    for (size_t i = 0; i < sizeof fams; i++) {
        v2_start(&h, 0x20, fams[i]);
        uint8_t a[216];
        memset(a, 0x5A, sizeof a);
        v2_put(&h, a, lens[i]);
        v2_end(&h, i % 2 == 0);
        struct proxy_result r = whole(PROXY_V2, LIMIT, h.b, h.n);
        cr_assert(r.local, "fam %02x", fams[i]);
        cr_assert_eq(r.family, PROXY_FAMILY_NONE);
        cr_assert(all_zero(r.src_addr, 16) && r.src_port == 0);
        cr_assert_eq(r.tlv_off, 16 + lens[i]);
    }
}

static void ssl_tlv(struct v2 *h, uint8_t client, bool with_cn)
{
    static struct v2 s;
    s.n = 0;
    uint8_t head[5] = {client, 0, 0, 0, 0};
    v2_put(&s, head, 5);
    v2_tlv(&s, 0x21, "TLSv1.3", 7);                 /* PP2_SUBTYPE_SSL_VERSION */
    v2_tlv(&s, 0x23, "TLS_AES_128_GCM_SHA256", 22); /* CIPHER */
    if (with_cn)
        v2_tlv(&s, 0x22, "client.example.com", 18); /* CN */
    v2_tlv(h, PROXY_TLV_SSL, s.b, s.n);
}

Test(proxy_v2, tlvs_of_the_spec)
{
    static struct v2 h;
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_tlv(&h, 0x01, "mqtt", 4);                 /* ALPN */
    v2_tlv(&h, 0x02, "broker.example.com", 18);  /* AUTHORITY */
    v2_tlv(&h, PROXY_TLV_NOOP, "\0\0\0\0\0", 5); /* padding */
    v2_tlv(&h, 0x05, "0123456789abcdef", 16);    /* UNIQUE_ID */
    ssl_tlv(&h, 0x07, true);
    v2_tlv(&h, 0x30, "blue", 4); /* NETNS */
    v2_tlv(&h, 0xE0, "", 0);     /* custom */
    v2_tlv(&h, 0xF8, "x", 1);    /* future */
    v2_end(&h, true);
    struct proxy_result r = whole(PROXY_V2, LIMIT, h.b, h.n);
    cr_assert_eq(r.family, PROXY_FAMILY_INET4);
    cr_assert_eq(r.tlv_off, 28);
    cr_assert_eq(r.tlv_off + r.tlv_len, h.n);

    /* The same over IPv6, CRC first: it covers the whole header wherever it is. */
    v2_start(&h, 0x21, 0x21);
    v2_addr6(&h);
    v2_end(&h, true);
    ssl_tlv(&h, 0x01, false);
    v2_end(&h, false); /* length now covers the SSL TLV, so the CRC is stale */
    struct proxy_result bad;
    cr_assert_eq(parse(PROXY_V2, LIMIT, h.b, h.n, &bad), PROXY_INVALID);
    cr_assert_str_eq(bad.why, "PROXY v2: CRC32C mismatch");
    /* Recompute with the field zeroed. */
    memset(h.b + 52 + 3, 0, 4);
    uint32_t c = proxy_crc32c(h.b, h.n);
    uint8_t be[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
    memcpy(h.b + 52 + 3, be, 4);
    r = whole(PROXY_V2, LIMIT, h.b, h.n);
    cr_assert_eq(r.family, PROXY_FAMILY_INET6);
}

/* A bad CRC is only known at the end: NEED_MORE until then. Every bit of
 * the address block and of the CRC's value, flipped. */
Test(proxy_v2, crc_mismatch_at_the_end)
{
    static struct v2 h;
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_end(&h, true);
    cr_assert_eq(h.n, 35);
    for (size_t bit = 8 * 16; bit < 8 * h.n; bit++) {
        if (bit / 8 >= 28 && bit / 8 < 31)
            continue; /* the TLV's type and length: other errors */
        h.b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        invalid_at(PROXY_V2, LIMIT, h.b, h.n, h.n, "PROXY v2: CRC32C mismatch");
        h.b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    whole(PROXY_V2, LIMIT, h.b, h.n);
}

Test(proxy_v2, signature_refused_at_the_byte)
{
    static struct v2 h;
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_end(&h, false);
    for (size_t i = 0; i < 12; i++) {
        h.b[i] ^= 0x40;
        invalid_at(PROXY_V2, LIMIT, h.b, h.n, i + 1, WHY_V2_SIG);
        h.b[i] ^= 0x40;
    }
}

Test(proxy_v2, version_command_family)
{
    static struct v2 h;
    static const struct {
        uint8_t ver_cmd, fam;
        size_t at;
        const char *why;
    } cases[] = {
        {0x11, 0x11, 13, "PROXY v2: version is not 2"},
        {0x31, 0x11, 13, "PROXY v2: version is not 2"},
        {0x01, 0x11, 13, "PROXY v2: version is not 2"},
        {0x22, 0x11, 13, "PROXY v2: command is neither LOCAL nor PROXY"},
        {0x2F, 0x11, 13, "PROXY v2: command is neither LOCAL nor PROXY"},
        {0x21, 0x00, 14, "PROXY v2: PROXY command without an address (UNSPEC)"},
        {0x21, 0x12, 14, "PROXY v2: UDP, but MQTT runs over a stream"},
        {0x21, 0x22, 14, "PROXY v2: UDP, but MQTT runs over a stream"},
        {0x21, 0x31, 14, "PROXY v2: a UNIX socket address, not an IP address"},
        {0x21, 0x32, 14, "PROXY v2: a UNIX socket address, not an IP address"},
        {0x21, 0x13, 14, "PROXY v2: undefined address family or transport"},
        {0x21, 0x41, 14, "PROXY v2: undefined address family or transport"},
        {0x21, 0x01, 14, "PROXY v2: undefined address family or transport"},
        {0x21, 0x10, 14, "PROXY v2: undefined address family or transport"},
        {0x20, 0x10, 14, "PROXY v2: undefined address family or transport"},
        {0x20, 0xFF, 14, "PROXY v2: undefined address family or transport"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        v2_start(&h, cases[i].ver_cmd, cases[i].fam);
        uint8_t a[216] = {0};
        v2_put(&h, a, 216);
        v2_end(&h, false);
        invalid_at(PROXY_V2, LIMIT, h.b, h.n, cases[i].at, cases[i].why);
    }
}

Test(proxy_v2, length_against_address_block)
{
    static struct v2 h;
    /* TCP4 needs 12 bytes, TCP6 36: one less is refused at the 16th byte. */
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 11);
    v2_end(&h, false);
    invalid_at(PROXY_V2, LIMIT, h.b, h.n, 16, "PROXY v2: length too short for the address block");
    v2_start(&h, 0x21, 0x21);
    v2_addr6(&h);
    h.n--;
    v2_end(&h, false);
    invalid_at(PROXY_V2, LIMIT, h.b, h.n, 16, "PROXY v2: length too short for the address block");
    /* "must not assume zero is presented for LOCAL": LOCAL TCP4 of length 0. */
    v2_start(&h, 0x20, 0x11);
    v2_end(&h, false);
    invalid_at(PROXY_V2, LIMIT, h.b, h.n, 16, "PROXY v2: length too short for the address block");
}

Test(proxy_v2, oversize_declared_at_once)
{
    static struct v2 h;
    struct proxy_result r;
    /* A length that takes the header past max_header: refused at byte 16,
     * before any of it is buffered. */
    uint8_t hdr[16];
    memcpy(hdr, SIG, 12);
    hdr[12] = 0x21;
    hdr[13] = 0x11;
    hdr[14] = 0xFF;
    hdr[15] = 0xFF;
    invalid_at(PROXY_V2, LIMIT, hdr, 16, 16, "PROXY v2: header longer than the listener allows");
    hdr[14] = (uint8_t)((LIMIT - 16 + 1) >> 8);
    hdr[15] = (uint8_t)(LIMIT - 16 + 1);
    invalid_at(PROXY_V2, LIMIT, hdr, 16, 16, "PROXY v2: header longer than the listener allows");
    /* Exactly max_header bytes in all is fine; one limit lower, refused at byte 16. */
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    static uint8_t pad[65535];
    v2_tlv(&h, PROXY_TLV_NOOP, pad, LIMIT - h.n - 3);
    v2_end(&h, false);
    cr_assert_eq(h.n, LIMIT);
    cr_assert_eq(parse(PROXY_V2, LIMIT, h.b, h.n, &r), PROXY_DONE);
    cr_assert_eq(parse(PROXY_V2, LIMIT, h.b, h.n - 1, &r), PROXY_NEED_MORE);
    cr_assert_eq(parse(PROXY_V2, LIMIT - 1, h.b, 16, &r), PROXY_INVALID);

    /* The protocol's own ceiling, 16 + 65535, for a caller that wants it all. */
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_tlv(&h, PROXY_TLV_NOOP, pad, PROXY_V2_HEADER_MAX - h.n - 3 - 7);
    v2_end(&h, true);
    cr_assert_eq(h.n, PROXY_V2_HEADER_MAX);
    cr_assert_eq(parse(PROXY_V2, PROXY_V2_HEADER_MAX, h.b, h.n, &r), PROXY_DONE);
    cr_assert_eq(r.consumed, PROXY_V2_HEADER_MAX);
    cr_assert_eq(parse(PROXY_V2, PROXY_V2_HEADER_MAX, h.b, h.n - 1, &r), PROXY_NEED_MORE);
    cr_assert_eq(parse(PROXY_V2, LIMIT, h.b, h.n, &r), PROXY_INVALID);

    /* The smallest limit still takes a LOCAL UNIX header, and no TLV more. */
    v2_start(&h, 0x20, 0x31);
    v2_put(&h, pad, 216);
    v2_end(&h, false);
    whole(PROXY_V2, PROXY_HEADER_LIMIT_MIN, h.b, h.n);
    v2_tlv(&h, PROXY_TLV_NOOP, "", 0);
    v2_end(&h, false);
    invalid_at(PROXY_V2, PROXY_HEADER_LIMIT_MIN, h.b, h.n, 16,
               "PROXY v2: header longer than the listener allows");
}

Test(proxy_v2, tlv_structure)
{
    static struct v2 h;
    /* One or two bytes after the addresses are not a TLV: the length field
     * alone says so. */
    for (size_t extra = 1; extra <= 2; extra++) {
        v2_start(&h, 0x21, 0x11);
        v2_put(&h, ADDR4, 12);
        v2_put(&h, "\x04\x00", extra);
        v2_end(&h, false);
        invalid_at(PROXY_V2, LIMIT, h.b, h.n, 16,
                   "PROXY v2: bytes after the addresses that are not a whole TLV");
    }
    /* A TLV longer than what is left: refused at its third byte. */
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_tlv(&h, 0x01, "mqtt", 4);
    v2_put(&h,
           "\x02\x00\x05"
           "abcd",
           7);
    v2_end(&h, false);
    invalid_at(PROXY_V2, LIMIT, h.b, h.n, 28 + 7 + 3,
               "PROXY v2: TLV runs past the end of the header");
    /* A TLV after which 2 bytes remain. */
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_tlv(&h, 0x01, "mqtt", 4);
    v2_put(&h, "\x04\x00", 2);
    v2_end(&h, false);
    invalid_at(PROXY_V2, LIMIT, h.b, h.n, 28 + 7,
               "PROXY v2: bytes after the addresses that are not a whole TLV");
}

Test(proxy_v2, crc_and_ssl_tlv_forms)
{
    static struct v2 h;
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_tlv(&h, PROXY_TLV_CRC32C, "\0\0\0", 3);
    v2_end(&h, false);
    invalid_at(PROXY_V2, LIMIT, h.b, h.n, 31, "PROXY v2: CRC32C TLV is not 4 bytes");

    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_tlv(&h, PROXY_TLV_CRC32C, "\0\0\0\0", 4);
    v2_end(&h, true);
    invalid_at(PROXY_V2, LIMIT, h.b, h.n, 38, "PROXY v2: more than one CRC32C TLV");

    /* SSL: shorter than client + verify; a sub-TLV past its end. */
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_tlv(&h, PROXY_TLV_SSL, "\x01\0\0\0", 4);
    v2_end(&h, false);
    invalid_at(PROXY_V2, LIMIT, h.b, h.n, h.n, "PROXY v2: malformed SSL TLV");
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_tlv(&h, PROXY_TLV_SSL, "\x01\0\0\0\0\x21\x00\x08TLSv1.3", 15);
    v2_tlv(&h, PROXY_TLV_NOOP, "", 0);
    v2_end(&h, false);
    invalid_at(PROXY_V2, LIMIT, h.b, h.n, 28 + 3 + 15, "PROXY v2: malformed SSL TLV");
    /* Client and verify alone are fine. */
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_tlv(&h, PROXY_TLV_SSL, "\x00\0\0\0\1", 5);
    v2_end(&h, false);
    whole(PROXY_V2, LIMIT, h.b, h.n);
}

/* ------------------------------------------------------------------------ */
/* The listener's version, and what else a first byte can be                 */
/* ------------------------------------------------------------------------ */

Test(proxy_listener, one_version_only)
{
    const char *v1 = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    invalid_str(PROXY_V2, v1, 1, WHY_V1_AT_V2);
    static struct v2 h;
    v2_start(&h, 0x21, 0x11);
    v2_put(&h, ADDR4, 12);
    v2_end(&h, false);
    invalid_at(PROXY_V1, LIMIT, h.b, h.n, 1, WHY_V2_AT_V1);
}

Test(proxy_listener, mqtt_or_tls_instead_of_a_header)
{
    static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0xc8, 0x01,
                                    0x00, 0x00, 0xc4, 0x03, 0x03};
    for (uint8_t v = PROXY_V1; v <= PROXY_V2; v++) {
        invalid_at(v, LIMIT, U(CONNECT4), sizeof CONNECT4 - 1, 1, WHY_MQTT);
        invalid_at(v, LIMIT, hello, sizeof hello, 1, WHY_TLS);
        invalid_at(v, LIMIT, U("GET / HTTP/1.1\r\n"), 16, 1,
                   v == PROXY_V1 ? WHY_V1_SIG : WHY_V2_SIG);
    }
}

Test(proxy_listener, empty_input_needs_more)
{
    struct proxy_result r;
    cr_assert_eq(parse(PROXY_V1, LIMIT, NULL, 0, &r), PROXY_NEED_MORE);
    assert_not_done(&r, PROXY_NEED_MORE);
    cr_assert_eq(parse(PROXY_V2, LIMIT, NULL, 0, &r), PROXY_NEED_MORE);
    assert_not_done(&r, PROXY_NEED_MORE);
}

/* ------------------------------------------------------------------------ */
/* CRC32C                                                                    */
/* ------------------------------------------------------------------------ */

static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

Test(proxy_crc32c, known_vectors)
{
    uint8_t b[32];
    cr_assert_eq(proxy_crc32c(U("123456789"), 9), 0xE3069283u);
    cr_assert_eq(proxy_crc32c(NULL, 0), 0);
    memset(b, 0, sizeof b); /* RFC 3720 B.4 */
    cr_assert_eq(proxy_crc32c(b, 32), 0x8A9136AAu);
    memset(b, 0xFF, sizeof b);
    cr_assert_eq(proxy_crc32c(b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    cr_assert_eq(proxy_crc32c(b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    cr_assert_eq(proxy_crc32c(b, 32), 0x113FDB5Cu);
}

Test(proxy_crc32c, agrees_with_bitwise)
{
    static uint8_t b[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof b; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 0; n < 300; n++)
        cr_assert_eq(proxy_crc32c(b, n), crc_bitwise(b, n), "n %zu", n);
    cr_assert_eq(proxy_crc32c(b, sizeof b), crc_bitwise(b, sizeof b));
}
