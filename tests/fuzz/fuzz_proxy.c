/*
 * libFuzzer target for core/proxy.c, the PROXY protocol v1/v2 parser.
 *
 * The first input byte picks a mode and the caller's max_header (232, 4096,
 * 16 + 65535, or one read from the input):
 *  - raw: the rest of the input, parsed as v1 and as v2;
 *  - primed: a v1 or v2 start ("PROXY TCP6 ", the v2 signature with a
 *    command and family) glued before the rest, so mutations land past
 *    the first bytes;
 *  - generated v1: a line built from the input (TCP4, TCP6 in every text
 *    form inet_pton accepts: "::" anywhere over zero groups, upper and
 *    lower case, padded groups, a dotted IPv4 tail; UNKNOWN with or
 *    without a tail), then the rest of the input as application bytes;
 *  - generated v2: a header built from the input (LOCAL or PROXY, any
 *    family LOCAL may carry, TLVs of the spec's types, an SSL TLV with
 *    sub-TLVs, a CRC32C anywhere among them, now and then a corrupted CRC
 *    or an SSL TLV whose sub-TLV runs past it), then application bytes.
 *
 * Checked for each version at every prefix length (after a decision, at a
 * few lengths past it and at the end):
 *  - the status sequence is NEED_MORE* then INVALID* or DONE*: once
 *    decided, every longer prefix gets the same decision; DONE first comes
 *    at exactly the prefix length it reports as consumed, and its result
 *    is the same, field for field, for every longer input;
 *  - NEED_MORE only below the bound on buffering (107 for v1, max_header
 *    for v2); every field but why is zero unless DONE; why is set exactly
 *    when INVALID;
 *  - a DONE result is what the bytes say: v1 ends in CRLF within 107
 *    bytes, v2 is 16 + its length field long and its addresses and ports
 *    are the bytes at their places, tlv_off + tlv_len == consumed;
 *  - on the whole input, the verdict agrees with reference code written
 *    here another way: v1 splits the line at its first CRLF and on single
 *    spaces and reads the addresses with the C library's inet_pton; v2
 *    walks the TLVs of a complete header and computes the CRC bitwise;
 *  - a generated header is NEED_MORE at every shorter prefix and DONE (or,
 *    corrupted or too long, INVALID) exactly where expected, with the
 *    fields it was built from; at a listener of the other version it is
 *    INVALID at its first byte.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_input.h"
#include "proxy.h"

#define APP_MAX   64u   /* application bytes after a generated header */
#define GEN_MAX   3000u /* bytes of TLVs in a generated v2 header */
#define AFTER_MAX 4u    /* prefixes checked one by one after a decision */

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const size_t LIMITS[3] = {PROXY_HEADER_LIMIT_MIN, PROXY_HEADER_LIMIT_DEFAULT,
                                 PROXY_V2_HEADER_MAX};

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0)
            return false;
    }
    return true;
}

/* ---- What a single result must satisfy ---- */

static void check_result(uint8_t v, size_t max, const uint8_t *d, size_t k, enum proxy_status st,
                         const struct proxy_result *r)
{
    CHECK(st == PROXY_NEED_MORE || st == PROXY_DONE || st == PROXY_INVALID);
    CHECK((st == PROXY_INVALID) == (r->why != NULL));
    if (r->why != NULL)
        CHECK(r->why[0] != 0 && strlen(r->why) < 100);
    if (st != PROXY_DONE) {
        struct proxy_result z = {.why = r->why};
        CHECK(memcmp(r, &z, sizeof z) == 0);
        if (st == PROXY_NEED_MORE)
            CHECK(k < (v == PROXY_V1 ? PROXY_V1_HEADER_MAX : max));
        return;
    }
    size_t c = r->consumed;
    CHECK(c > 0 && c <= k);
    CHECK(r->local == (r->family == PROXY_FAMILY_NONE));
    CHECK(r->family == PROXY_FAMILY_NONE || r->family == PROXY_FAMILY_INET4 ||
          r->family == PROXY_FAMILY_INET6);
    if (r->family != PROXY_FAMILY_INET6)
        CHECK(zero(r->src_addr + 4, 12) && zero(r->dst_addr + 4, 12));
    if (r->local)
        CHECK(zero(r->src_addr, 16) && zero(r->dst_addr, 16) && r->src_port == 0 &&
              r->dst_port == 0);
    if (v == PROXY_V1) {
        CHECK(c <= PROXY_V1_HEADER_MAX && c >= 15);
        CHECK(memcmp(d, "PROXY ", 6) == 0 && d[c - 2] == '\r' && d[c - 1] == '\n');
        CHECK(r->tlv_off == 0 && r->tlv_len == 0);
        return;
    }
    CHECK(c <= max && c == 16u + be16(d + 14) && memcmp(d, SIG, 12) == 0);
    CHECK(r->tlv_off + r->tlv_len == c && r->tlv_off >= 16);
    const uint8_t *a = d + 16;
    if (r->family == PROXY_FAMILY_INET4)
        CHECK(d[13] == 0x11 && memcmp(r->src_addr, a, 4) == 0 &&
              memcmp(r->dst_addr, a + 4, 4) == 0 && r->src_port == be16(a + 8) &&
              r->dst_port == be16(a + 10) && r->tlv_off == 28);
    if (r->family == PROXY_FAMILY_INET6)
        CHECK(d[13] == 0x21 && memcmp(r->src_addr, a, 16) == 0 &&
              memcmp(r->dst_addr, a + 16, 16) == 0 && r->src_port == be16(a + 32) &&
              r->dst_port == be16(a + 34) && r->tlv_off == 52);
    CHECK((d[12] & 0xF) == (r->local ? 0 : 1));
}

/* Every prefix of d (a few past a decision, and the whole): the status
 * sequence and each result. Returns the result for all n bytes. */
static enum proxy_status check_stream(uint8_t v, size_t max, const uint8_t *d, size_t n,
                                      struct proxy_result *last)
{
    enum proxy_status decided = PROXY_NEED_MORE;
    size_t decided_at = 0;
    struct proxy_result first = {0};

    for (size_t k = 0; k <= n; k++) {
        if (decided != PROXY_NEED_MORE && k > decided_at + AFTER_MAX && k < n)
            k = n;
        struct proxy_result r;
        memset(&r, 0x5A, sizeof r);
        enum proxy_status st = proxy_parse(v, max, d, k, &r);
        check_result(v, max, d, k, st, &r);
        if (decided == PROXY_NEED_MORE && st != PROXY_NEED_MORE) {
            decided = st;
            decided_at = k;
            first = r;
            if (st == PROXY_DONE)
                CHECK(r.consumed == k);
        } else if (decided != PROXY_NEED_MORE) {
            CHECK(st == decided);
            if (st == PROXY_DONE)
                CHECK(memcmp(&r, &first, sizeof r) == 0);
        }
        *last = r;
    }
    return decided;
}

/* ---- Reference v1: split at the first CRLF and on single spaces ---- */

static bool ref_port(const uint8_t *s, size_t n, uint16_t *out)
{
    uint32_t v = 0;
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    *out = (uint16_t)v;
    return v <= 65535;
}

static bool ref_addr(bool six, const uint8_t *s, size_t n, uint8_t out[16])
{
    char buf[128];
    if (n == 0 || n >= sizeof buf || memchr(s, 0, n) != NULL)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    memset(out, 0, 16);
    return inet_pton(six ? AF_INET6 : AF_INET, buf, out) == 1;
}

static bool ref_v1_tcp(const uint8_t *s, size_t n, bool six, struct proxy_result *e)
{
    const uint8_t *tok[4];
    size_t len[4], t = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ' ')
            continue;
        if (t == 4 || i == start)
            return false; /* a fifth field, or an empty one: two spaces */
        tok[t] = s + start;
        len[t++] = i - start;
        start = i + 1;
    }
    e->family = six ? PROXY_FAMILY_INET6 : PROXY_FAMILY_INET4;
    return t == 4 && ref_addr(six, tok[0], len[0], e->src_addr) &&
           ref_addr(six, tok[1], len[1], e->dst_addr) && ref_port(tok[2], len[2], &e->src_port) &&
           ref_port(tok[3], len[3], &e->dst_port);
}

static bool ref_v1_line(const uint8_t *s, size_t n, struct proxy_result *e)
{
    if (n < 6 || memcmp(s, "PROXY ", 6) != 0)
        return false;
    s += 6;
    n -= 6;
    if (n >= 7 && memcmp(s, "UNKNOWN", 7) == 0) {
        e->local = true;
        if (n == 7)
            return true;
        if (s[7] != ' ')
            return false;
        for (size_t i = 8; i < n; i++) {
            if (s[i] < 0x20 || s[i] > 0x7E)
                return false;
        }
        return true;
    }
    if (n < 5 || (memcmp(s, "TCP4 ", 5) != 0 && memcmp(s, "TCP6 ", 5) != 0))
        return false;
    return ref_v1_tcp(s + 5, n - 5, s[3] == '6', e);
}

enum ref {
    REF_UNDECIDED,
    REF_DONE,
    REF_INVALID,
};

static enum ref ref_v1(const uint8_t *d, size_t n, struct proxy_result *e)
{
    size_t lim = n < PROXY_V1_HEADER_MAX ? n : PROXY_V1_HEADER_MAX;
    for (size_t i = 0; i + 1 < lim; i++) {
        if (d[i] == '\r' && d[i + 1] == '\n') {
            e->consumed = i + 2;
            return ref_v1_line(d, i, e) ? REF_DONE : REF_INVALID;
        }
    }
    return n >= PROXY_V1_HEADER_MAX ? REF_INVALID : REF_UNDECIDED;
}

/* ---- Reference v2: a complete header, walked whole ---- */

static uint32_t ref_crc(const uint8_t *p, size_t n, size_t zero_at)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= i >= zero_at && i < zero_at + 4 ? 0 : p[i];
        for (int b = 0; b < 8; b++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static long ref_addr_len(uint8_t cmd, uint8_t fam)
{
    static const uint8_t fams[] = {0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32};
    static const long lens[] = {0, 12, 12, 36, 36, 216, 216};
    for (size_t i = 0; i < sizeof fams; i++) {
        if (fams[i] == fam && (cmd == 0 || fam == 0x11 || fam == 0x21))
            return lens[i];
    }
    return -1;
}

static bool ref_tlvs(const uint8_t *d, size_t pos, size_t end)
{
    size_t crc_at = 0;
    while (pos < end) {
        if (end - pos < 3)
            return false;
        size_t l = be16(d + pos + 1), val = pos + 3;
        if (val + l > end)
            return false;
        if (d[pos] == PROXY_TLV_CRC32C) {
            if (l != 4 || crc_at != 0)
                return false;
            crc_at = val;
        }
        if (d[pos] == PROXY_TLV_SSL) {
            size_t sp = val + 5;
            if (l < 5)
                return false;
            while (sp < val + l) {
                if (val + l - sp < 3 || sp + 3 + be16(d + sp + 1) > val + l)
                    return false;
                sp += 3 + be16(d + sp + 1);
            }
        }
        pos = val + l;
    }
    if (crc_at == 0)
        return true;
    return ref_crc(d, end, crc_at) == be32(d + crc_at);
}

static enum ref ref_v2(size_t max, const uint8_t *d, size_t n)
{
    if (n < 16)
        return REF_UNDECIDED;
    if (memcmp(d, SIG, 12) != 0 || d[12] >> 4 != 2 || (d[12] & 0xF) > 1)
        return REF_INVALID;
    long al = ref_addr_len(d[12] & 0xF, d[13]);
    size_t total = 16u + be16(d + 14);
    if (al < 0 || total > max || total < 16u + (size_t)al)
        return REF_INVALID;
    if (n < total)
        return REF_UNDECIDED;
    return ref_tlvs(d, 16u + (size_t)al, total) ? REF_DONE : REF_INVALID;
}

static void raw(size_t max, const uint8_t *d, size_t n)
{
    struct proxy_result r, e = {0};
    enum proxy_status st = check_stream(PROXY_V1, max, d, n, &r);
    enum ref ref = ref_v1(d, n, &e);
    if (ref == REF_DONE) {
        CHECK(st == PROXY_DONE && r.consumed == e.consumed && r.local == e.local);
        CHECK(r.family == e.family && memcmp(r.src_addr, e.src_addr, 16) == 0 &&
              memcmp(r.dst_addr, e.dst_addr, 16) == 0 && r.src_port == e.src_port &&
              r.dst_port == e.dst_port);
    } else if (ref == REF_INVALID) {
        CHECK(st == PROXY_INVALID);
    }
    st = check_stream(PROXY_V2, max, d, n, &r);
    ref = ref_v2(max, d, n);
    if (ref != REF_UNDECIDED)
        CHECK(st == (ref == REF_DONE ? PROXY_DONE : PROXY_INVALID));
}

/* ---- Generated headers ---- */

struct gen {
    uint8_t b[PROXY_V2_FIXED_LEN + 216 + GEN_MAX + 512 + APP_MAX];
    size_t n;
    enum proxy_status want;
    size_t want_at; /* the prefix length that decides */
    size_t bad_at;  /* v2: where a broken SSL TLV ends (0: none) */
    struct proxy_result r;
};

static void put(struct gen *g, const void *p, size_t n)
{
    CHECK(g->n + n <= sizeof g->b);
    memcpy(g->b + g->n, p, n);
    g->n += n;
}

static void puts_(struct gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static void ip6_group(struct gen *g, uint16_t v, uint8_t style)
{
    char t[8];
    snprintf(t, sizeof t, style & 1 ? (style & 2 ? "%04X" : "%X") : (style & 2 ? "%04x" : "%x"), v);
    puts_(g, t);
}

/* IPv6 text for a[16] in one of its forms, chosen by the input. */
static void gen_ip6(struct gen *g, struct fuzz_in *in, uint8_t a[16])
{
    uint8_t flags = in_u8(in), zmask = in_u8(in), style = in_u8(in);
    uint16_t gr[8];
    for (unsigned i = 0; i < 8; i++)
        gr[i] = zmask >> i & 1 ? 0 : in_u16(in);
    bool tail = flags & 1;
    if (flags & 2) { /* a mapped IPv4 address */
        memset(gr, 0, 10);
        gr[5] = 0xFFFF;
        tail = true;
    }
    for (unsigned i = 0; i < 8; i++) {
        a[2 * i] = (uint8_t)(gr[i] >> 8);
        a[2 * i + 1] = (uint8_t)gr[i];
    }
    unsigned nh = tail ? 6 : 8;
    /* "::" over a run of zero groups [s, e), or none (s == e == nh + 1). */
    unsigned s = nh + 1, e = nh + 1;
    unsigned pick = in_u8(in) % (nh + 1);
    if (pick < nh && gr[pick] == 0) {
        s = pick;
        for (e = s; e < nh && gr[e] == 0 && e - s < 1u + (flags >> 4); e++)
            ;
    }
    for (unsigned i = 0; i < nh; i++) {
        if (i == s) {
            puts_(g, "::");
            i = e - 1;
            continue;
        }
        if (i > 0 && i != e)
            puts_(g, ":");
        ip6_group(g, gr[i], style >> (i % 4 * 2));
    }
    if (tail) {
        char q[20];
        if (e != nh)
            puts_(g, ":");
        snprintf(q, sizeof q, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
        puts_(g, q);
    }
}

static void gen_addr(struct gen *g, struct fuzz_in *in, bool six, uint8_t a[16])
{
    if (six) {
        gen_ip6(g, in, a);
        return;
    }
    char q[20];
    for (unsigned i = 0; i < 4; i++)
        a[i] = in_u8(in);
    snprintf(q, sizeof q, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
    puts_(g, q);
}

static void gen_v1(struct gen *g, struct fuzz_in *in)
{
    uint8_t kind = in_u8(in) % 3;
    char t[16];
    puts_(g, "PROXY ");
    if (kind == 2) {
        size_t tail = in_u8(in);
        puts_(g, "UNKNOWN");
        if (tail != 0)
            puts_(g, " ");
        for (size_t i = 1; i < tail && i < 100; i++) {
            uint8_t b = (uint8_t)(0x20 + in_u8(in) % 95);
            put(g, &b, 1);
        }
        g->r.local = true;
    } else {
        bool six = kind == 1;
        puts_(g, six ? "TCP6 " : "TCP4 ");
        gen_addr(g, in, six, g->r.src_addr);
        puts_(g, " ");
        gen_addr(g, in, six, g->r.dst_addr);
        g->r.src_port = in_u16(in);
        g->r.dst_port = in_u16(in);
        snprintf(t, sizeof t, " %u %u", g->r.src_port, g->r.dst_port);
        puts_(g, t);
        g->r.family = six ? PROXY_FAMILY_INET6 : PROXY_FAMILY_INET4;
    }
    puts_(g, "\r\n");
    g->r.consumed = g->n;
    g->want = g->n <= PROXY_V1_HEADER_MAX ? PROXY_DONE : PROXY_INVALID;
    g->want_at = g->n <= PROXY_V1_HEADER_MAX ? g->n : PROXY_V1_HEADER_MAX;
}

static void tlv(struct gen *g, uint8_t type, const uint8_t *v, size_t n)
{
    uint8_t h[3] = {type, (uint8_t)(n >> 8), (uint8_t)n};
    put(g, h, 3);
    put(g, v, n);
}

/* An SSL TLV with sub-TLVs; broken, its last sub-TLV runs 1 to 3 bytes
 * past it (or, with none, it is shorter than client + verify), which the
 * parser must refuse once the TLV is all in. */
static void gen_ssl(struct gen *g, struct fuzz_in *in, bool broken)
{
    uint8_t v[5 + 4 * (3 + 64)];
    size_t n = 5, subs = in_u8(in) % 5;
    v[0] = in_u8(in);
    for (unsigned i = 1; i < 5; i++)
        v[i] = in_u8(in);
    for (size_t i = 0; i < subs; i++) {
        size_t l;
        const uint8_t *p = in_bytes(in, in_u8(in) % 64, &l);
        v[n] = (uint8_t)(0x21 + i);
        v[n + 1] = 0;
        v[n + 2] = (uint8_t)(l + (broken && i + 1 == subs ? 1 + in_u8(in) % 3 : 0));
        memcpy(v + n + 3, p, l);
        n += 3 + l;
    }
    if (broken && subs == 0)
        n = in_u8(in) % 5;
    tlv(g, PROXY_TLV_SSL, v, n);
    if (broken && g->bad_at == 0)
        g->bad_at = g->n;
}

/* The TLVs after the address block; returns where the CRC's value is (0: none). */
static size_t gen_tlvs(struct gen *g, struct fuzz_in *in)
{
    static const uint8_t types[] = {0x01, 0x02, PROXY_TLV_NOOP, 0x05, 0x30, 0xE0, 0xF8, 0xFF};
    size_t count = in_u8(in) % 8, crc_at = 0, start = g->n;
    uint8_t crc_pos = in_u8(in);
    for (size_t i = 0; i <= count; i++) {
        if (crc_pos % (count + 2) == i) {
            tlv(g, PROXY_TLV_CRC32C, (const uint8_t *)"\0\0\0\0", 4);
            crc_at = g->n - 4;
        }
        if (i == count || g->n - start > GEN_MAX - 600)
            break;
        uint8_t kind = in_u8(in);
        if (kind % 9 == 8) {
            gen_ssl(g, in, (kind & 0x60) == 0x60);
            continue;
        }
        size_t l, want = kind & 0x80 ? in_u16(in) % 512 : in_u8(in) % 32;
        const uint8_t *p = in_bytes(in, want, &l);
        tlv(g, types[kind % 8], p, l);
    }
    return crc_at;
}

static void gen_v2(struct gen *g, struct fuzz_in *in, size_t max)
{
    static const uint8_t local_fams[] = {0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32};
    static const size_t local_lens[] = {0, 12, 12, 36, 36, 216, 216};
    uint8_t how = in_u8(in);
    bool local = how & 1;
    unsigned f = local ? (unsigned)(how >> 1) % 7 : (how & 2 ? 3u : 1u);
    uint8_t hdr[4] = {(uint8_t)(local ? 0x20 : 0x21), local_fams[f], 0, 0};
    put(g, SIG, 12);
    put(g, hdr, 4);
    for (size_t i = 0; i < local_lens[f]; i++) {
        uint8_t b = in_u8(in);
        put(g, &b, 1);
    }
    size_t crc_at = gen_tlvs(g, in);
    size_t len = g->n - 16;
    g->b[14] = (uint8_t)(len >> 8);
    g->b[15] = (uint8_t)len;
    if (crc_at != 0) {
        uint32_t c = proxy_crc32c(g->b, g->n);
        CHECK(c == ref_crc(g->b, g->n, crc_at));
        uint8_t be[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
        memcpy(g->b + crc_at, be, 4);
        if (how == 0xA4) /* a corrupted CRC now and then */
            g->b[crc_at + (in_u8(in) & 3)] ^= (uint8_t)(1u << (in_u8(in) & 7));
    }
    g->r.consumed = g->n;
    g->r.local = local;
    g->r.tlv_off = 16 + local_lens[f];
    g->r.tlv_len = g->n - g->r.tlv_off;
    if (!local) {
        bool six = f == 3;
        size_t al = six ? 16 : 4;
        g->r.family = six ? PROXY_FAMILY_INET6 : PROXY_FAMILY_INET4;
        memcpy(g->r.src_addr, g->b + 16, al);
        memcpy(g->r.dst_addr, g->b + 16 + al, al);
        g->r.src_port = be16(g->b + 16 + 2 * al);
        g->r.dst_port = be16(g->b + 18 + 2 * al);
    }
    bool corrupt = crc_at != 0 && ref_crc(g->b, g->n, crc_at) != be32(g->b + crc_at);
    g->want = g->n > max || corrupt || g->bad_at != 0 ? PROXY_INVALID : PROXY_DONE;
    g->want_at = g->n > max ? 16 : g->bad_at != 0 ? g->bad_at : g->n;
}

static void generated(uint8_t v, size_t max, struct fuzz_in *in)
{
    static struct gen g;
    memset(&g, 0, sizeof g);
    if (v == PROXY_V1)
        gen_v1(&g, in);
    else
        gen_v2(&g, in, max);
    size_t app;
    const uint8_t *p = in_bytes(in, APP_MAX, &app);
    put(&g, p, app);

    struct proxy_result r;
    enum proxy_status st = check_stream(v, max, g.b, g.n, &r);
    CHECK(st == g.want);
    for (size_t k = 0; k < g.want_at; k++)
        CHECK(proxy_parse(v, max, g.b, k, &r) == PROXY_NEED_MORE);
    CHECK(proxy_parse(v, max, g.b, g.want_at, &r) == g.want);
    if (g.want == PROXY_DONE) {
        g.r.why = NULL;
        CHECK(memcmp(&r, &g.r, sizeof r) == 0);
    }
    /* The other version's listener refuses it at once. */
    CHECK(proxy_parse(v == PROXY_V1 ? PROXY_V2 : PROXY_V1, max, g.b, 1, &r) == PROXY_INVALID);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t mode = in_u8(&in);
    size_t max = (mode >> 2 & 3) < 3
                     ? LIMITS[mode >> 2 & 3]
                     : PROXY_HEADER_LIMIT_MIN +
                           in_u16(&in) % (PROXY_V2_HEADER_MAX - PROXY_HEADER_LIMIT_MIN + 1);
    static uint8_t buf[PROXY_V2_FIXED_LEN + 65536];

    switch (mode & 3) {
    case 0:
        raw(max, in.p, in.left);
        break;
    case 1: {
        static const char *const starts[] = {"PROXY TCP4 ", "PROXY TCP6 ", "PROXY UNKNOWN",
                                             "PROXY "};
        uint8_t which = in_u8(&in);
        size_t n = 0;
        if (which & 4) {
            memcpy(buf, SIG, 12);
            buf[12] = which & 8 ? 0x21 : 0x20;
            buf[13] = (uint8_t[]){0x11, 0x21, 0x00, 0x31}[which >> 4 & 3];
            n = 14;
        } else {
            n = strlen(starts[which & 3]);
            memcpy(buf, starts[which & 3], n);
        }
        size_t rest = in.left < sizeof buf - n ? in.left : sizeof buf - n;
        memcpy(buf + n, in.p, rest);
        raw(max, buf, n + rest);
        break;
    }
    case 2:
        generated(PROXY_V1, max, &in);
        break;
    default:
        generated(PROXY_V2, max, &in);
        break;
    }
    return 0;
}
