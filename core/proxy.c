/*
 * The PROXY protocol header, versions 1 and 2: a stateless parser that the
 * PROXY layer calls on the growing prefix of a connection's input (see
 * proxy.h for the contract). Rules are cited as [PP x.y], the sections of
 * HAProxy's doc/proxy-protocol.txt (2020/03/05).
 *
 * v1 is parsed as a grammar, byte by byte, so a prefix is refused at the
 * first byte no valid line has there, and a complete line is accepted only
 * exactly: single spaces, addresses in the numeric forms inet_pton accepts
 * (written out here, since core/ calls no libc network code and the check
 * must be the same on every libc), ports 0..65535 without a leading zero
 * or sign, CRLF, 107 bytes at most. v2 is checked field by field as the
 * bytes arrive: signature, version, command, family, length against the
 * caller's bound and the address block, TLV headers; the CRC32C once the
 * whole header is in.
 *
 * Pure: no allocation, no globals but constant tables, no syscalls; the
 * input is never written. Any thread.
 */
#include "proxy.h"

#include <string.h>

#include "invariant.h"

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
#define WHY_V2_VERSION "PROXY v2: version is not 2"
#define WHY_V2_CMD     "PROXY v2: command is neither LOCAL nor PROXY"
#define WHY_V2_FAMILY  "PROXY v2: undefined address family or transport"
#define WHY_V2_UNSPEC  "PROXY v2: PROXY command without an address (UNSPEC)"
#define WHY_V2_UDP     "PROXY v2: UDP, but MQTT runs over a stream"
#define WHY_V2_UNIX    "PROXY v2: a UNIX socket address, not an IP address"
#define WHY_V2_LONG    "PROXY v2: header longer than the listener allows"
#define WHY_V2_SHORT   "PROXY v2: length too short for the address block"
#define WHY_TLV_SHORT  "PROXY v2: bytes after the addresses that are not a whole TLV"
#define WHY_TLV_PAST   "PROXY v2: TLV runs past the end of the header"
#define WHY_CRC_LEN    "PROXY v2: CRC32C TLV is not 4 bytes"
#define WHY_CRC_TWICE  "PROXY v2: more than one CRC32C TLV"
#define WHY_CRC_BAD    "PROXY v2: CRC32C mismatch"
#define WHY_SSL        "PROXY v2: malformed SSL TLV"

#define V2_CMD_LOCAL 0x0u
#define V2_CMD_PROXY 0x1u
#define TLV_HDR_LEN  3u
#define SSL_HDR_LEN  5u /* client flags (1), verify (4) [PP 2.2.6] */

/* [PP 2.2] */
static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A hint for the log when the first byte is already wrong: the usual
 * causes are a client that bypassed the proxy or a proxy that sends the
 * other version. */
static const char *first_byte_why(uint8_t version, uint8_t b)
{
    if (b == 0x10)
        return "an MQTT CONNECT where a PROXY header was due";
    if (b == 0x16)
        return "a TLS handshake where a PROXY header was due";
    if (version == PROXY_V2 && b == 'P')
        return "a PROXY v1 header at a listener set to enable_proxy_protocol 2";
    if (version == PROXY_V1 && b == v2_sig[0])
        return "a PROXY v2 header at a listener set to enable_proxy_protocol 1";
    return version == PROXY_V1 ? WHY_V1_SIG : WHY_V2_SIG;
}

/* ------------------------------------------------------------------------ */
/* Version 1: one line of text [PP 2.1]                                      */
/* ------------------------------------------------------------------------ */

/* A step of the grammar: the piece is complete (OK), the bytes ran out
 * while everything so far can still begin a valid line (MORE), or not
 * (BAD, c->why says why). */
enum step {
    STEP_BAD = -1,
    STEP_MORE = 0,
    STEP_OK = 1,
};

#define TRY_STEP(expr)                                                                             \
    do {                                                                                           \
        enum step try_step_ = (expr);                                                              \
        if (try_step_ != STEP_OK)                                                                  \
            return try_step_;                                                                      \
    } while (0)

struct cur {
    const uint8_t *p;
    size_t len; /* bytes that may belong to the line: at most PROXY_V1_HEADER_MAX */
    size_t pos;
    const char *why;
};

static enum step bad(struct cur *c, const char *why)
{
    c->why = why;
    return STEP_BAD;
}

static bool at_end(const struct cur *c)
{
    return c->pos >= c->len;
}

static uint8_t peek(const struct cur *c)
{
    return c->p[c->pos];
}

static bool is_digit(uint8_t b)
{
    return b >= '0' && b <= '9';
}

static int hex_value(uint8_t b)
{
    if (is_digit(b))
        return b - '0';
    if (b >= 'a' && b <= 'f')
        return b - 'a' + 10;
    if (b >= 'A' && b <= 'F')
        return b - 'A' + 10;
    return -1;
}

static enum step literal(struct cur *c, const char *lit, const char *why)
{
    for (size_t i = 0; lit[i] != 0; i++, c->pos++) {
        if (at_end(c))
            return STEP_MORE;
        if (peek(c) != (uint8_t)lit[i])
            return bad(c, why);
    }
    return STEP_OK;
}

/* The one space between fields; a second one is refused here, where it
 * is, rather than as a bad address or port after it. */
static enum step space(struct cur *c)
{
    TRY_STEP(literal(c, " ", WHY_V1_SPACES));
    if (!at_end(c) && peek(c) == ' ')
        return bad(c, WHY_V1_SPACES);
    return STEP_OK;
}

/* CR at c->pos (else `why`), then LF: a lone CR or LF never ends the line
 * [PP 2.1]. */
static enum step crlf(struct cur *c, const char *why)
{
    if (at_end(c))
        return STEP_MORE;
    if (peek(c) != '\r')
        return bad(c, why);
    c->pos++;
    return literal(c, "\n", WHY_V1_CRLF);
}

enum v1_proto {
    V1_TCP4,
    V1_TCP6,
    V1_UNKNOWN,
};

/* "TCP4 ", "TCP6 " or "UNKNOWN" [PP 2.1]: none is a prefix of another. */
static enum step v1_proto(struct cur *c, enum v1_proto *proto)
{
    static const char *const words[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
    const size_t start = c->pos;
    unsigned alive = 0x7;

    for (size_t i = 0;; i++) {
        for (unsigned k = 0; k < 3; k++) {
            if ((alive >> k & 1) && words[k][i] == 0) {
                *proto = (enum v1_proto)k;
                c->pos = start + i;
                return STEP_OK;
            }
        }
        if (start + i >= c->len)
            return STEP_MORE;
        for (unsigned k = 0; k < 3; k++) {
            /* An alive word is longer than i: it would have matched above. */
            if ((alive >> k & 1) && words[k][i] != (char)c->p[start + i])
                alive &= ~(1u << k);
        }
        if (alive == 0) {
            c->pos = start + i;
            return bad(c, WHY_V1_PROTO);
        }
    }
}

/*
 * A dotted quad followed by a space (not consumed): exactly four decimal
 * numbers 0..255, one dot between, no leading zero "to avoid any possible
 * confusion with octal numbers" [PP 2.1]. glibc's inet_pton(AF_INET)
 * accepts exactly these.
 */
static enum step ip4_text(struct cur *c, uint8_t out[4], const char *why)
{
    unsigned idx = 0, digits = 0, val = 0;

    for (;; c->pos++) {
        if (at_end(c))
            return STEP_MORE;
        uint8_t b = peek(c);
        if (is_digit(b)) {
            if (digits > 0 && val == 0)
                return bad(c, why);
            val = val * 10 + (unsigned)(b - '0');
            if (val > 255)
                return bad(c, why);
            digits++;
        } else if (b == '.' && digits > 0 && idx < 3) {
            out[idx++] = (uint8_t)val;
            val = 0;
            digits = 0;
        } else if (b == ' ' && digits > 0 && idx == 3) {
            out[3] = (uint8_t)val;
            return STEP_OK;
        } else {
            return bad(c, why);
        }
    }
}

/*
 * IPv6 text [PP 2.1: "series of sets of 4 hexadecimal digits (upper or
 * lower case) delimited by colons ... one double colon"], read as glibc's
 * inet_pton(AF_INET6) reads it, since that is what the senders' inet_ntop
 * output is meant for: groups of 1 to 4 hex digits, at most one "::"
 * standing for one or more zero groups, a dotted quad as the last 32 bits
 * (inet_ntop writes ::ffff:192.0.2.1 for a mapped IPv4 address), no zone
 * ("%eth0"), exactly 128 bits. The checks on each byte refuse a prefix as
 * soon as no address can complete it: a group that would be a ninth (or
 * an eighth beside "::"), a second "::", a ':' after which nothing fits.
 */
struct ip6 {
    uint16_t g[8];
    unsigned n;       /* groups written to g */
    int dcolon;       /* index in g where "::" stands, or -1 */
    unsigned xdigits; /* hex digits of the group being read */
    unsigned val;
    size_t tok;     /* where the group being read starts */
    bool colon_end; /* the last byte was a single ':' after a group */
};

/* Groups that may be written: "::" stands for at least one. */
static unsigned ip6_room(const struct ip6 *s)
{
    return s->dcolon >= 0 ? 7u : 8u;
}

static bool ip6_hex(struct ip6 *s, unsigned h)
{
    if (s->xdigits == 4 || (s->xdigits == 0 && s->n + 1 > ip6_room(s)))
        return false;
    s->val = s->val << 4 | h;
    s->xdigits++;
    s->colon_end = false;
    return true;
}

static bool ip6_colon(struct ip6 *s)
{
    if (s->xdigits == 0) {
        /* Right after a ':' (or the first of a leading "::"): a "::". */
        if (s->dcolon >= 0 || s->n >= 8)
            return false;
        s->dcolon = (int)s->n;
        s->colon_end = false;
        return true;
    }
    s->g[s->n++] = (uint16_t)s->val;
    s->val = 0;
    s->xdigits = 0;
    s->colon_end = true;
    /* After "g:" comes another group or a "::": is there room for one? */
    return s->dcolon >= 0 ? s->n <= 6 : s->n <= 7;
}

static bool ip6_finish(struct ip6 *s, uint8_t out[16])
{
    if (s->colon_end)
        return false; /* "1:" */
    if (s->xdigits > 0)
        s->g[s->n++] = (uint16_t)s->val; /* room was checked at its first digit */
    else if (s->dcolon < 0 && s->n == 0)
        return false; /* empty */
    if (s->dcolon < 0 && s->n != 8)
        return false;
    ASSERT(s->n <= 8 && (s->dcolon < 0 || s->n <= 7));

    uint16_t full[8] = {0};
    unsigned head = s->dcolon >= 0 ? (unsigned)s->dcolon : s->n;
    unsigned tail = s->n - head;
    for (unsigned i = 0; i < head; i++)
        full[i] = s->g[i];
    for (unsigned i = 0; i < tail; i++)
        full[8 - tail + i] = s->g[head + i];
    for (unsigned i = 0; i < 8; i++) {
        out[2 * i] = (uint8_t)(full[i] >> 8);
        out[2 * i + 1] = (uint8_t)full[i];
    }
    return true;
}

/* A '.' in the group being read: it was the first number of a dotted
 * quad, which ends the address. inet_pton's rule: without "::" exactly six
 * groups come before it, beside "::" at most five. */
static enum step ip6_dotted(struct cur *c, struct ip6 *s, uint8_t out[16])
{
    if (s->xdigits == 0 || (s->dcolon >= 0 ? s->n > 5 : s->n != 6))
        return bad(c, WHY_V1_IP6);
    uint8_t q[4];
    c->pos = s->tok;
    TRY_STEP(ip4_text(c, q, WHY_V1_IP6));
    s->g[s->n++] = (uint16_t)(q[0] << 8 | q[1]);
    s->g[s->n++] = (uint16_t)(q[2] << 8 | q[3]);
    s->xdigits = 0;
    s->colon_end = false;
    /* The room checked above is what ip6_finish needs. */
    bool whole = ip6_finish(s, out);
    ASSERT(whole);
    return STEP_OK;
}

/* An IPv6 address followed by a space (not consumed). */
static enum step ip6_text(struct cur *c, uint8_t out[16])
{
    struct ip6 s = {.dcolon = -1};

    if (at_end(c))
        return STEP_MORE;
    if (peek(c) == ':') {
        /* A leading ':' is only ever the start of "::"; the second one
         * is read below as the "::". */
        c->pos++;
        if (at_end(c))
            return STEP_MORE;
        if (peek(c) != ':')
            return bad(c, WHY_V1_IP6);
    }
    for (s.tok = c->pos;; c->pos++) {
        if (at_end(c))
            return STEP_MORE;
        uint8_t b = peek(c);
        int h = hex_value(b);
        bool ok;
        if (h >= 0) {
            ok = ip6_hex(&s, (unsigned)h);
        } else if (b == ':') {
            ok = ip6_colon(&s);
            s.tok = c->pos + 1;
        } else if (b == '.') {
            return ip6_dotted(c, &s, out);
        } else {
            ok = b == ' ' && ip6_finish(&s, out);
            if (ok)
                return STEP_OK;
        }
        if (!ok)
            return bad(c, WHY_V1_IP6);
    }
}

/* Decimal 0..65535 without a leading zero [PP 2.1], followed by term
 * (not consumed). */
static enum step port_text(struct cur *c, uint16_t *port, uint8_t term)
{
    unsigned digits = 0;
    uint32_t val = 0;

    for (;; c->pos++) {
        if (at_end(c))
            return STEP_MORE;
        uint8_t b = peek(c);
        if (is_digit(b)) {
            if (digits > 0 && val == 0)
                return bad(c, WHY_V1_PORT);
            val = val * 10 + (uint32_t)(b - '0');
            if (val > 65535)
                return bad(c, WHY_V1_PORT);
            digits++;
        } else if (b == term && digits > 0) {
            *port = (uint16_t)val;
            return STEP_OK;
        } else {
            return bad(c, term == '\r' && b == '\n' ? WHY_V1_CRLF : WHY_V1_PORT);
        }
    }
}

static enum step v1_addr(struct cur *c, bool inet6, uint8_t out[16])
{
    return inet6 ? ip6_text(c, out) : ip4_text(c, out, WHY_V1_IP4);
}

/* "a.b.c.d e.f.g.h sp dp\r\n" after "TCP4 ", the same with IPv6 after
 * "TCP6 ": the family dictates the format of both addresses [PP 2.1]. */
static enum step v1_tcp(struct cur *c, bool inet6, struct proxy_result *r)
{
    TRY_STEP(v1_addr(c, inet6, r->src_addr));
    TRY_STEP(space(c));
    TRY_STEP(v1_addr(c, inet6, r->dst_addr));
    TRY_STEP(space(c));
    TRY_STEP(port_text(c, &r->src_port, ' '));
    TRY_STEP(space(c));
    TRY_STEP(port_text(c, &r->dst_port, '\r'));
    r->family = inet6 ? PROXY_FAMILY_INET6 : PROXY_FAMILY_INET4;
    return crlf(c, WHY_V1_CRLF);
}

/* After "UNKNOWN" the sender may omit the rest, and "the receiver must
 * ignore anything presented before the CRLF" [PP 2.1]: anything that is
 * still one line of US-ASCII text, so a control byte or a lone LF is
 * refused where it stands. */
static enum step v1_unknown(struct cur *c, struct proxy_result *r)
{
    if (at_end(c))
        return STEP_MORE;
    if (peek(c) == ' ') {
        for (c->pos++; !at_end(c) && peek(c) >= 0x20 && peek(c) <= 0x7E; c->pos++)
            ;
        TRY_STEP(crlf(c, WHY_V1_TEXT));
    } else {
        TRY_STEP(crlf(c, WHY_V1_UNKNOWN));
    }
    r->local = true;
    return STEP_OK;
}

static enum step v1_line(struct cur *c, struct proxy_result *r)
{
    enum v1_proto proto;

    if (!at_end(c) && peek(c) != 'P')
        return bad(c, first_byte_why(PROXY_V1, peek(c)));
    TRY_STEP(literal(c, "PROXY ", WHY_V1_SIG));
    TRY_STEP(v1_proto(c, &proto));
    if (proto == V1_UNKNOWN)
        return v1_unknown(c, r);
    return v1_tcp(c, proto == V1_TCP6, r);
}

static enum proxy_status parse_v1(const uint8_t *data, size_t len, struct proxy_result *r)
{
    struct cur c = {.p = data, .len = len < PROXY_V1_HEADER_MAX ? len : PROXY_V1_HEADER_MAX};
    enum step st = v1_line(&c, r);

    if (st == STEP_MORE && len >= PROXY_V1_HEADER_MAX)
        st = bad(&c, WHY_V1_LONG); /* [PP 2.1] "not found in the first 107 characters" */
    if (st == STEP_BAD) {
        r->why = c.why;
        return PROXY_INVALID;
    }
    if (st == STEP_MORE)
        return PROXY_NEED_MORE;
    r->consumed = c.pos;
    return PROXY_DONE;
}

/* ------------------------------------------------------------------------ */
/* Version 2: binary [PP 2.2]                                                */
/* ------------------------------------------------------------------------ */

/* Nibble table of the reflected Castagnoli polynomial 0x82F63B78: two
 * lookups a byte, 64 bytes of table; a header is checked once. */
static const uint32_t crc32c_nibble[16] = {
    0x00000000, 0x105EC76F, 0x20BD8EDE, 0x30E349B1, 0x417B1DBC, 0x5125DAD3, 0x61C69362, 0x7198540D,
    0x82F63B78, 0x92A8FC17, 0xA24BB5A6, 0xB21572C9, 0xC38D26C4, 0xD3D3E1AB, 0xE330A81A, 0xF36E6F75,
};

static uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = crc >> 4 ^ crc32c_nibble[crc & 0xF];
        crc = crc >> 4 ^ crc32c_nibble[crc & 0xF];
    }
    return crc;
}

uint32_t proxy_crc32c(const uint8_t *data, size_t len)
{
    ASSERT(data != NULL || len == 0);
    return ~crc32c_update(~0u, data, len);
}

/* [PP 2.2.3]: the CRC of the whole header with the checksum field zero. */
static bool crc_ok(const uint8_t *d, size_t total, size_t off)
{
    static const uint8_t zero[4] = {0};
    uint32_t crc = crc32c_update(~0u, d, off);
    crc = crc32c_update(crc, zero, sizeof zero);
    crc = crc32c_update(crc, d + off + 4, total - off - 4);
    return ~crc == be32(d + off);
}

/* The SSL TLV's value: client flags, verify, then sub-TLVs that fill it
 * exactly [PP 2.2.6]. Only the structure: nothing here uses them yet. */
static bool ssl_ok(const uint8_t *v, size_t len)
{
    if (len < SSL_HDR_LEN)
        return false;
    for (size_t pos = SSL_HDR_LEN; pos < len;) {
        if (len - pos < TLV_HDR_LEN)
            return false;
        size_t sub = be16(v + pos + 1);
        if (sub > len - pos - TLV_HDR_LEN)
            return false;
        pos += TLV_HDR_LEN + sub;
    }
    return true;
}

/*
 * The TLVs in d[pos..end), end being the header's end, of which the first
 * avail bytes are here: each TLV header is checked as soon as its three
 * bytes are, so a length that runs past the end fails at once; the SSL
 * TLV's contents once they are all here. *crc_off: where the CRC32C's
 * value is, 0 if there is none.
 */
static enum step tlv_walk(const uint8_t *d, size_t avail, size_t pos, size_t end, size_t *crc_off,
                          const char **why)
{
    while (pos < end) {
        if (end - pos < TLV_HDR_LEN) {
            *why = WHY_TLV_SHORT;
            return STEP_BAD;
        }
        if (avail < pos + TLV_HDR_LEN)
            return STEP_MORE;
        uint8_t type = d[pos];
        size_t val = pos + TLV_HDR_LEN;
        size_t vlen = be16(d + pos + 1);
        const char *w = NULL;
        if (vlen > end - val)
            w = WHY_TLV_PAST;
        else if (type == PROXY_TLV_CRC32C && vlen != 4)
            w = WHY_CRC_LEN;
        else if (type == PROXY_TLV_CRC32C && *crc_off != 0)
            w = WHY_CRC_TWICE;
        else if (avail >= val + vlen && type == PROXY_TLV_SSL && !ssl_ok(d + val, vlen))
            w = WHY_SSL;
        if (w != NULL) {
            *why = w;
            return STEP_BAD;
        }
        if (type == PROXY_TLV_CRC32C)
            *crc_off = val;
        if (avail < val + vlen)
            return STEP_MORE;
        pos = val + vlen;
    }
    return STEP_OK;
}

/*
 * The 14th byte [PP 2.2]: the address block's size, or why this listener
 * refuses it. A LOCAL command ignores the family [PP 2.2: "discard the
 * protocol block including the family"], so any defined one will do; a
 * PROXY command must give a TCP address. UNSPEC with PROXY: the spec lets
 * the receiver use the socket's own addresses or refuse, and taking the
 * proxy's address for its clients' would put all of them under one
 * address's bans and limits: refused (as mosquitto 2.1 does). UDP: MQTT
 * needs an ordered stream. UNIX: an MQTT listener's admission (address
 * rules, bans, per-address limits) works on IP addresses, and a path says
 * nothing about who the client is. HAProxy sends LOCAL with UNSPEC and a
 * zero-length address block for its health checks (PP2_ADDR_LEN_UNSPEC):
 * what follows 16 bytes plus the family's block is TLVs, whatever the
 * command.
 */
static const char *v2_family(uint8_t fam, bool local, size_t *addr_len)
{
    switch (fam) {
    case 0x00:
        *addr_len = 0;
        return local ? NULL : WHY_V2_UNSPEC;
    case 0x11:
        *addr_len = 12;
        return NULL;
    case 0x21:
        *addr_len = 36;
        return NULL;
    case 0x12:
    case 0x22:
        *addr_len = fam == 0x12 ? 12 : 36;
        return local ? NULL : WHY_V2_UDP;
    case 0x31:
    case 0x32:
        *addr_len = 216;
        return local ? NULL : WHY_V2_UNIX;
    default:
        return WHY_V2_FAMILY; /* "must be rejected as invalid by receivers" */
    }
}

static enum proxy_status fail(struct proxy_result *r, const char *why)
{
    r->why = why;
    return PROXY_INVALID;
}

static void v2_addresses(const uint8_t *d, bool local, uint8_t fam, struct proxy_result *r)
{
    const uint8_t *a = d + PROXY_V2_FIXED_LEN;

    r->local = local;
    if (local)
        return;
    if (fam == 0x11) {
        r->family = PROXY_FAMILY_INET4;
        memcpy(r->src_addr, a, 4);
        memcpy(r->dst_addr, a + 4, 4);
        r->src_port = be16(a + 8);
        r->dst_port = be16(a + 10);
    } else {
        ASSERT(fam == 0x21);
        r->family = PROXY_FAMILY_INET6;
        memcpy(r->src_addr, a, 16);
        memcpy(r->dst_addr, a + 16, 16);
        r->src_port = be16(a + 32);
        r->dst_port = be16(a + 34);
    }
}

static enum proxy_status parse_v2(size_t max_header, const uint8_t *d, size_t len,
                                  struct proxy_result *r)
{
    for (size_t i = 0; i < len && i < sizeof v2_sig; i++) {
        if (d[i] != v2_sig[i])
            return fail(r, i == 0 ? first_byte_why(PROXY_V2, d[0]) : WHY_V2_SIG);
    }
    if (len <= 12)
        return PROXY_NEED_MORE;
    if (d[12] >> 4 != 2) /* "the receiver must only accept this value" */
        return fail(r, WHY_V2_VERSION);
    unsigned cmd = d[12] & 0xFu;
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY) /* "must drop connections" */
        return fail(r, WHY_V2_CMD);
    if (len <= 13)
        return PROXY_NEED_MORE;
    size_t addr_len = 0;
    const char *why = v2_family(d[13], cmd == V2_CMD_LOCAL, &addr_len);
    if (why != NULL)
        return fail(r, why);
    if (len < PROXY_V2_FIXED_LEN)
        return PROXY_NEED_MORE;
    size_t total = PROXY_V2_FIXED_LEN + be16(d + 14); /* [PP 2.2] "always exactly 16 + len" */
    if (total > max_header)
        return fail(r, WHY_V2_LONG);
    size_t tlv_off = PROXY_V2_FIXED_LEN + addr_len;
    if (total < tlv_off)
        return fail(r, WHY_V2_SHORT);
    size_t crc_off = 0;
    enum step st = tlv_walk(d, len < total ? len : total, tlv_off, total, &crc_off, &why);
    if (st == STEP_BAD)
        return fail(r, why);
    if (len < total)
        return PROXY_NEED_MORE;
    ASSERT(st == STEP_OK);
    if (crc_off != 0 && !crc_ok(d, total, crc_off)) /* [PP 2.2.3] "MUST treat ... as invalid" */
        return fail(r, WHY_CRC_BAD);
    v2_addresses(d, cmd == V2_CMD_LOCAL, d[13], r);
    r->consumed = total;
    r->tlv_off = tlv_off;
    r->tlv_len = total - tlv_off;
    return PROXY_DONE;
}

/* ------------------------------------------------------------------------ */

enum proxy_status proxy_parse(uint8_t version, size_t max_header, const uint8_t *data, size_t len,
                              struct proxy_result *out)
{
    ASSERT(version == PROXY_V1 || version == PROXY_V2);
    ASSERT(max_header >= PROXY_HEADER_LIMIT_MIN && max_header <= PROXY_V2_HEADER_MAX);
    ASSERT(out != NULL);
    ASSERT(data != NULL || len == 0);

    struct proxy_result r = {0};
    enum proxy_status st =
        version == PROXY_V1 ? parse_v1(data, len, &r) : parse_v2(max_header, data, len, &r);
    if (st == PROXY_DONE) {
        ASSERT(r.consumed > 0 && r.consumed <= len && r.why == NULL);
        ASSERT(r.local == (r.family == PROXY_FAMILY_NONE));
        *out = r;
        return st;
    }
    /* The bound on what the layer buffers (proxy.h). */
    ASSERT(st == PROXY_INVALID || len < (version == PROXY_V1 ? PROXY_V1_HEADER_MAX : max_header));
    ASSERT((st == PROXY_INVALID) == (r.why != NULL));
    *out = (struct proxy_result){.why = r.why};
    return st;
}
