/*
 * Address rules (netrule.h): strict CIDR text into ranges, ranges into
 * per-family sorted arrays of disjoint intervals, and a binary search per
 * lookup.
 *
 * Both families are built the same way in 128-bit arithmetic (an IPv4
 * address is its 32-bit value); IPv4 intervals are then stored as 32-bit
 * bounds, which halves what a lookup touches. CIDR ranges are laminar
 * (two are disjoint or one holds the other), so sorting them by first
 * address, wider first, and walking them with a stack of the ranges that
 * hold the current one cuts the line into elementary intervals, each with
 * the latest until of the ranges over it; neighbours with the same until
 * are merged as they are written. The stack holds strictly nested ranges,
 * so at most 129 (one per prefix length). The walk runs twice, once to
 * count the intervals and once to store them in arrays of that size, so
 * building needs the sorted ranges and the result, nothing in between
 * (about 48 bytes a range plus 16 or 40 an interval: 60 and 85 MB at the
 * peak for a million IPv4 and IPv6 ranges).
 *
 * netrule_set_create builds on the calling thread; the set is read-only
 * afterwards and netrule_set_destroy frees it. No system call, no global
 * state.
 */
#include "netrule.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"

/* GCC and clang have 128-bit integers; __extension__ keeps -Wpedantic
 * quiet about a type ISO C lacks. Only this file sees it. */
__extension__ typedef unsigned __int128 u128;

#define U128_MAX (~(u128)0)
/* Nested distinct ranges: one per prefix length 0..128. */
#define STACK_MAX 129u

_Static_assert(NETRULE_RULES_MAX <= SIZE_MAX / 2u, "intervals are counted in size_t");
_Static_assert(NETRULE_CIDR_STRLEN >= NETRULE_ADDR_STRLEN + 4u, "room for /128");

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

struct text {
    const char *s; /* the whole CIDR text, for messages */
    size_t len;
    char *why;
    size_t whylen;
};

/* "`TEXT'" followed by the message (which starts with ": " or " has"). */
__attribute__((format(printf, 2, 3))) static int refuse(const struct text *t, const char *fmt, ...)
{
    if (!t->why || t->whylen == 0)
        return -1;
    char shown[NETRULE_CIDR_TEXT_MAX * 4u + 8u], msg[384];
    size_t o = 0;
    for (size_t i = 0; i < t->len && i < NETRULE_CIDR_TEXT_MAX; i++) {
        uint8_t c = (uint8_t)t->s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            shown[o++] = (char)c;
        else
            o += (size_t)snprintf(shown + o, 5, "\\x%02x", c);
    }
    if (t->len > NETRULE_CIDR_TEXT_MAX) {
        memcpy(shown + o, "...", 3);
        o += 3;
    }
    shown[o] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(t->why, t->whylen, "`%s'%s", shown, msg);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Text to addresses                                                   */
/* ------------------------------------------------------------------ */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A decimal number of at most a few digits, saturating at 1000. */
static unsigned decimal(const char *s, size_t n)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10u + (unsigned)(s[i] - '0');
        if (v >= 1000u)
            return 1000u;
    }
    return v;
}

/* Dotted IPv4 s[0..n) into out[0..4): four parts, decimal, 0..255, no
 * leading zero. */
static int parse_v4(const struct text *t, const char *s, size_t n, uint8_t out[4])
{
    size_t part = 0, i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && is_digit(s[i]))
            i++;
        size_t plen = i - start;
        if (plen == 0 || (i < n && s[i] != '.') || part == 4)
            return refuse(t, ": not an IPv4 address (four decimal parts 0 to 255: a.b.c.d)");
        if (plen > 1 && s[start] == '0')
            return refuse(t,
                          ": part `%.*s' has a leading zero (octal to some tools, decimal to "
                          "others: write it without)",
                          (int)plen, s + start);
        unsigned v = decimal(s + start, plen);
        if (v > 255u)
            return refuse(t, ": part `%.*s' is over 255", (int)plen, s + start);
        out[part++] = (uint8_t)v;
        if (i == n)
            break;
        i++; /* the '.' */
    }
    if (part != 4)
        return refuse(t, ": not an IPv4 address (four decimal parts 0 to 255: a.b.c.d)");
    return 0;
}

/* One hex group s[0..n) (n > 0, no ':') into *g. */
static int parse_group(const struct text *t, const char *s, size_t n, uint16_t *g)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        int h = hex_value(s[i]);
        if (h < 0)
            return refuse(t, ": group `%.*s' is not hex digits", (int)n, s);
        v = (v << 4 | (unsigned)h) & 0xfffffu;
    }
    if (n > 4)
        return refuse(t, ": group `%.*s' has more than 4 hex digits", (int)n, s);
    *g = (uint16_t)v;
    return 0;
}

struct groups {
    uint16_t g[8];
    unsigned n;
    int gap; /* where `::' stands (index into g), or -1 */
};

/* The next group at s[*pos..n), or a dotted IPv4 tail; advances *pos. */
static int v6_token(const struct text *t, const char *s, size_t n, size_t *pos, struct groups *gs)
{
    size_t start = *pos, i = start;
    while (i < n && s[i] != ':')
        i++;
    if (i == start)
        return refuse(t, ": an empty group (a single `:' at the start or end, or `:::')");
    if (memchr(s + start, '.', i - start)) {
        uint8_t v4[4];
        if (i != n)
            return refuse(t, ": a dotted IPv4 part may only end an IPv6 address");
        if (gs->n + 2 > 8)
            return refuse(t, ": more than 8 groups");
        if (parse_v4(t, s + start, i - start, v4))
            return -1;
        gs->g[gs->n++] = (uint16_t)(v4[0] << 8 | v4[1]);
        gs->g[gs->n++] = (uint16_t)(v4[2] << 8 | v4[3]);
    } else {
        uint16_t g = 0;
        if (parse_group(t, s + start, i - start, &g))
            return -1;
        if (gs->n == 8)
            return refuse(t, ": more than 8 groups");
        gs->g[gs->n++] = g;
    }
    *pos = i;
    return 0;
}

/* RFC 4291 section 2.2 text s[0..n) into out[0..16). */
static int parse_v6(const struct text *t, const char *s, size_t n, uint8_t out[16])
{
    struct groups gs = {.gap = -1};
    size_t pos = 0;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        gs.gap = 0;
        pos = 2;
    }
    while (pos < n) {
        if (v6_token(t, s, n, &pos, &gs))
            return -1;
        if (pos == n)
            break;
        pos++; /* the ':' */
        if (pos < n && s[pos] == ':') {
            if (gs.gap >= 0)
                return refuse(t, ": `::' used more than once");
            gs.gap = (int)gs.n;
            pos++;
        } else if (pos == n) {
            return refuse(t, ": an empty group (a single `:' at the start or end, or `:::')");
        }
    }
    if (gs.gap < 0 && gs.n != 8)
        return refuse(t, ": %u groups and no `::' (an IPv6 address has 8)", gs.n);
    if (gs.gap >= 0 && gs.n == 8)
        return refuse(t, ": `::' stands for no group here (8 groups without it)");
    unsigned fill = 8u - gs.n, gap = gs.gap < 0 ? 8u : (unsigned)gs.gap;
    memset(out, 0, 16);
    for (unsigned k = 0, o = 0; k < gs.n; k++, o++) {
        if (k == gap)
            o += fill;
        out[2 * o] = (uint8_t)(gs.g[k] >> 8);
        out[2 * o + 1] = (uint8_t)gs.g[k];
    }
    return 0;
}

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_mapped(const uint8_t b[16])
{
    return memcmp(b, mapped_prefix, sizeof(mapped_prefix)) == 0;
}

bool netrule_addr_from_bytes(int family, const uint8_t *bytes, struct netrule_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (family == NETRULE_V4) {
        out->family = NETRULE_V4;
        memcpy(out->bytes, bytes, 4);
    } else if (family == NETRULE_V6 && is_mapped(bytes)) {
        out->family = NETRULE_V4;
        memcpy(out->bytes, bytes + 12, 4);
    } else if (family == NETRULE_V6) {
        out->family = NETRULE_V6;
        memcpy(out->bytes, bytes, 16);
    } else {
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Addresses as numbers, and as text                                   */
/* ------------------------------------------------------------------ */

static unsigned family_bits(uint8_t family)
{
    return family == NETRULE_V4 ? 32u : 128u;
}

static u128 addr_value(const struct netrule_addr *a)
{
    u128 v = 0;
    for (unsigned i = 0; i < family_bits(a->family) / 8u; i++)
        v = v << 8 | a->bytes[i];
    return v;
}

/* The host bits of a /prefix in a family of bits: ones below the prefix. */
static u128 host_mask(unsigned bits, unsigned prefix)
{
    unsigned host = bits - prefix;
    return host == 128u ? U128_MAX : (((u128)1 << host) - 1u);
}

/* The text of family's bytes; a mapped IPv6 address with its dotted tail
 * (RFC 5952 section 5). Returns the length written into out (>= 64). */
static size_t format_bytes(uint8_t family, const uint8_t *b, char *out)
{
    if (family == NETRULE_V4)
        return (size_t)sprintf(out, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    if (is_mapped(b))
        return (size_t)sprintf(out, "::ffff:%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
    unsigned g[8], best = 0, best_len = 0;
    for (unsigned i = 0; i < 8; i++)
        g[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
    for (unsigned i = 0; i < 8;) {
        unsigned j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    if (best_len < 2)
        best_len = 0; /* RFC 5952 4.2.2: one zero group is not shortened */
    size_t o = 0;
    for (unsigned i = 0; i < 8; i++) {
        if (best_len && i == best) {
            o += (size_t)sprintf(out + o, "::");
            i += best_len - 1;
            continue;
        }
        bool after_gap = best_len && i == best + best_len;
        o += (size_t)sprintf(out + o, "%s%x", i == 0 || after_gap ? "" : ":", g[i]);
    }
    return o;
}

static size_t copy_out(const char *text, size_t n, char *buf, size_t len)
{
    if (len > 0) {
        size_t k = n < len - 1 ? n : len - 1;
        memcpy(buf, text, k);
        buf[k] = '\0';
    }
    return n;
}

size_t netrule_format(const struct netrule_addr *a, char *buf, size_t len)
{
    char text[64];
    return copy_out(text, format_bytes(a->family, a->bytes, text), buf, len);
}

size_t netrule_format_cidr(const struct netrule_cidr *c, char *buf, size_t len)
{
    char text[72];
    size_t n = format_bytes(c->addr.family, c->addr.bytes, text);
    n += (size_t)sprintf(text + n, "/%u", c->prefix_len);
    return copy_out(text, n, buf, len);
}

/* ------------------------------------------------------------------ */
/* CIDR text                                                           */
/* ------------------------------------------------------------------ */

/* The prefix length after '/': p[0..n), decimal without sign or leading
 * zero, at most bits. */
static int parse_prefix(const struct text *t, const char *p, size_t n, unsigned bits,
                        unsigned *prefix)
{
    if (n == 0)
        return refuse(t, ": no prefix length after `/'");
    for (size_t i = 0; i < n; i++)
        if (!is_digit(p[i]))
            return refuse(t, ": prefix length `%.*s' is not a decimal number", (int)n, p);
    if (n > 1 && p[0] == '0')
        return refuse(t, ": prefix length `%.*s' has a leading zero", (int)n, p);
    unsigned v = decimal(p, n);
    if (v > bits)
        return refuse(t, ": prefix length %.*s is over %u for %s", (int)n, p, bits,
                      bits == 32u ? "IPv4" : "IPv6");
    *prefix = v;
    return 0;
}

/* Bits beyond the prefix are refused, naming the range meant. b holds the
 * address as written (a mapped IPv6 one still mapped). */
static int check_host_bits(const struct text *t, uint8_t family, uint8_t b[16], unsigned prefix)
{
    unsigned bits = family_bits(family);
    struct netrule_addr a = {.family = family};
    memcpy(a.bytes, b, bits / 8u);
    u128 v = addr_value(&a), mask = host_mask(bits, prefix);
    if ((v & mask) == 0)
        return 0;
    v &= ~mask;
    for (unsigned i = bits / 8u; i-- > 0; v >>= 8)
        b[i] = (uint8_t)v;
    char meant[64];
    format_bytes(family, b, meant);
    return refuse(t, " has bits set beyond the /%u prefix (did you mean %s/%u?)", prefix, meant,
                  prefix);
}

int netrule_parse_cidr(const char *s, size_t len, struct netrule_cidr *out, char *why,
                       size_t whylen)
{
    struct text t = {.s = s, .len = len, .why = why, .whylen = whylen};
    if (why && whylen)
        why[0] = '\0';
    if (len == 0) {
        if (why && whylen)
            snprintf(why, whylen, "empty address range");
        return -1;
    }
    if (len > NETRULE_CIDR_TEXT_MAX)
        return refuse(&t, ": longer than %u bytes, not an address range",
                      (unsigned)NETRULE_CIDR_TEXT_MAX);
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    if (s[0] == '[')
        return refuse(&t, ": no brackets around an address here");
    const char *zone = memchr(s, '%', alen);
    if (zone)
        return refuse(&t, ": a zone index (`%.*s') is not part of an address range",
                      (int)(alen - (size_t)(zone - s)), zone);
    bool v6 = memchr(s, ':', alen) != NULL;
    if (!v6 && !memchr(s, '.', alen))
        return refuse(&t, ": not an IPv4 or IPv6 address (host names are not resolved)");
    uint8_t b[16] = {0};
    if (v6 ? parse_v6(&t, s, alen, b) : parse_v4(&t, s, alen, b))
        return -1;
    uint8_t family = v6 ? NETRULE_V6 : NETRULE_V4;
    unsigned prefix = family_bits(family);
    if (slash && parse_prefix(&t, slash + 1, len - alen - 1, prefix, &prefix))
        return -1;
    if (check_host_bits(&t, family, b, prefix))
        return -1;
    memset(out, 0, sizeof(*out));
    if (v6 && prefix >= 96u && is_mapped(b)) {
        /* ::ffff:a.b.c.d/(96 + p) is the IPv4 range a.b.c.d/p. */
        family = NETRULE_V4;
        memmove(b, b + 12, 4);
        memset(b + 4, 0, 12);
        prefix -= 96u;
    }
    out->addr.family = family;
    memcpy(out->addr.bytes, b, family_bits(family) / 8u);
    out->prefix_len = (uint8_t)prefix;
    return 0;
}

bool netrule_cidr_contains(const struct netrule_cidr *c, const struct netrule_addr *a)
{
    if (c->addr.family != a->family)
        return false;
    u128 mask = ~host_mask(family_bits(a->family), c->prefix_len);
    return (addr_value(a) & mask) == addr_value(&c->addr);
}

/* ------------------------------------------------------------------ */
/* Sets                                                                */
/* ------------------------------------------------------------------ */

struct netrule_set {
    uint32_t *v4_lo; /* first address of each interval, ascending */
    uint32_t *v4_hi; /* last address, inclusive */
    uint64_t *v4_until;
    size_t v4_n;
    u128 *v6_lo;
    u128 *v6_hi;
    uint64_t *v6_until;
    size_t v6_n;
};

/* A range, or an elementary interval, as numbers. */
struct span {
    u128 lo, hi;
    uint64_t until;
};

/* A walk over sorted ranges that writes disjoint intervals: only counts
 * them when set is NULL, else stores them in set's arrays of family. */
struct sweep {
    struct netrule_set *set;
    uint8_t family;
    size_t n;         /* intervals so far */
    struct span prev; /* the last of them, while it may still grow */
    u128 pos;         /* the first address not yet written */
    bool done;        /* an interval ending at the last address was written */
};

static int by_lo_wider_first(const void *x, const void *y)
{
    const struct span *a = x, *b = y;
    if (a->lo != b->lo)
        return a->lo < b->lo ? -1 : 1;
    if (a->hi != b->hi)
        return a->hi > b->hi ? -1 : 1;
    if (a->until != b->until)
        return a->until > b->until ? -1 : 1;
    return 0;
}

static void emit(struct sweep *w, u128 lo, u128 hi, uint64_t until)
{
    ASSERT(w->n == 0 || w->prev.hi < lo);
    if (w->n && w->prev.until == until && w->prev.hi + 1u == lo) {
        w->prev.hi = hi;
    } else {
        w->prev = (struct span){lo, hi, until};
        w->n++;
    }
    struct netrule_set *s = w->set;
    size_t i = w->n - 1;
    if (!s)
        return;
    if (w->family == NETRULE_V4) {
        ASSERT(i < s->v4_n && w->prev.hi <= UINT32_MAX);
        s->v4_lo[i] = (uint32_t)w->prev.lo;
        s->v4_hi[i] = (uint32_t)w->prev.hi;
        s->v4_until[i] = w->prev.until;
    } else {
        ASSERT(i < s->v6_n);
        s->v6_lo[i] = w->prev.lo;
        s->v6_hi[i] = w->prev.hi;
        s->v6_until[i] = w->prev.until;
    }
}

/* Writes the rest of the innermost open range and closes it. */
static void close_top(struct sweep *w, struct span *stack, size_t *depth)
{
    const struct span *top = &stack[*depth - 1];
    if (!w->done && w->pos <= top->hi) {
        emit(w, w->pos, top->hi, top->until);
        if (top->hi == U128_MAX)
            w->done = true;
        else
            w->pos = top->hi + 1u;
    }
    (*depth)--;
}

/* Sorted, distinct ranges r[0..n) (until = the range's own) into disjoint
 * intervals w->out, each with the latest until over it. */
static void cut(struct sweep *w, struct span *r, size_t n)
{
    struct span stack[STACK_MAX];
    size_t depth = 0;
    for (size_t i = 0; i < n; i++) {
        while (depth && stack[depth - 1].hi < r[i].lo)
            close_top(w, stack, &depth);
        uint64_t until = r[i].until;
        if (depth) {
            const struct span *top = &stack[depth - 1];
            ASSERT(top->lo <= r[i].lo && r[i].hi <= top->hi); /* laminar */
            if (w->pos < r[i].lo)
                emit(w, w->pos, r[i].lo - 1u, top->until);
            if (top->until > until)
                until = top->until;
        }
        ASSERT(depth < STACK_MAX);
        stack[depth++] = (struct span){r[i].lo, r[i].hi, until};
        w->pos = r[i].lo;
    }
    while (depth)
        close_top(w, stack, &depth);
}

/* The ranges of one family as spans, sorted, equal ones merged (latest
 * until kept), those with until 0 left out. *n is their count. */
static struct span *family_spans(const struct netrule_cidr *cidrs, const uint64_t *until,
                                 size_t count, uint8_t family, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        k += cidrs[i].addr.family == family && (!until || until[i]);
    *n = 0;
    struct span *r = malloc((k ? k : 1) * sizeof(*r));
    if (!r)
        return NULL;
    unsigned bits = family_bits(family);
    for (size_t i = 0; i < count; i++) {
        if (cidrs[i].addr.family != family || (until && !until[i]))
            continue;
        ASSERT(cidrs[i].prefix_len <= bits);
        u128 lo = addr_value(&cidrs[i].addr);
        u128 hi = lo | host_mask(bits, cidrs[i].prefix_len);
        ASSERT((lo & host_mask(bits, cidrs[i].prefix_len)) == 0);
        r[(*n)++] = (struct span){lo, hi, until ? until[i] : NETRULE_FOREVER};
    }
    qsort(r, *n, sizeof(*r), by_lo_wider_first);
    size_t m = 0;
    for (size_t i = 0; i < *n; i++)
        if (m == 0 || r[m - 1].lo != r[i].lo || r[m - 1].hi != r[i].hi)
            r[m++] = r[i];
    *n = m;
    return r;
}

/* Room for n intervals of family in s (at least one, so that NULL only
 * ever means no memory). */
static bool alloc_intervals(struct netrule_set *s, uint8_t family, size_t n)
{
    size_t m = n ? n : 1;
    if (family == NETRULE_V4) {
        s->v4_lo = malloc(m * sizeof(*s->v4_lo));
        s->v4_hi = malloc(m * sizeof(*s->v4_hi));
        s->v4_until = malloc(m * sizeof(*s->v4_until));
        s->v4_n = n;
        return s->v4_lo && s->v4_hi && s->v4_until;
    }
    s->v6_lo = malloc(m * sizeof(*s->v6_lo));
    s->v6_hi = malloc(m * sizeof(*s->v6_hi));
    s->v6_until = malloc(m * sizeof(*s->v6_until));
    s->v6_n = n;
    return s->v6_lo && s->v6_hi && s->v6_until;
}

/* One family's disjoint intervals into s: a counting walk sizes the
 * arrays exactly (up to 2n + 1 intervals for n ranges with mixed untils,
 * at most n with one), a second fills them. False on no memory. */
static bool build_family(struct netrule_set *s, const struct netrule_cidr *cidrs,
                         const uint64_t *until, size_t count, uint8_t family)
{
    size_t k;
    struct span *r = family_spans(cidrs, until, count, family, &k);
    if (!r)
        return false;
    struct sweep w = {.family = family};
    cut(&w, r, k);
    bool ok = alloc_intervals(s, family, w.n);
    if (ok) {
        size_t n = w.n;
        w = (struct sweep){.set = s, .family = family};
        cut(&w, r, k);
        ASSERT(w.n == n);
    }
    free(r);
    return ok;
}

struct netrule_set *netrule_set_create(const struct netrule_cidr *cidrs, const uint64_t *until,
                                       size_t n, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (n > NETRULE_RULES_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "more than %u ranges", NETRULE_RULES_MAX);
        return NULL;
    }
    struct netrule_set *s = calloc(1, sizeof(*s));
    if (!s || !build_family(s, cidrs, until, n, NETRULE_V4) ||
        !build_family(s, cidrs, until, n, NETRULE_V6)) {
        netrule_set_destroy(s);
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return s;
}

void netrule_set_destroy(struct netrule_set *s)
{
    if (!s)
        return;
    free(s->v4_lo);
    free(s->v4_hi);
    free(s->v4_until);
    free(s->v6_lo);
    free(s->v6_hi);
    free(s->v6_until);
    free(s);
}

size_t netrule_set_intervals(const struct netrule_set *s, enum netrule_family family)
{
    if (!s)
        return 0;
    return family == NETRULE_V4 ? s->v4_n : family == NETRULE_V6 ? s->v6_n : 0;
}

bool netrule_set_empty(const struct netrule_set *s)
{
    return !s || s->v4_n + s->v6_n == 0;
}

/* The last interval starting at or before a, if it reaches a. The
 * search halves the range without a branch on the comparison (a
 * conditional move): client addresses make that branch a coin toss, and
 * mispredicting it cost most of a lookup. With 10,000 intervals, random
 * addresses, gcc -O2 on a 2-vCPU VM: 20-30 ns (IPv4) and 45-60 ns (IPv6)
 * against 80-100 and 110-120 ns for the branching search. */
static uint64_t find_v4(const struct netrule_set *s, uint32_t a)
{
    size_t n = s->v4_n, base = 0;
    if (n == 0)
        return 0;
    while (n > 1) {
        size_t half = n / 2;
        base = s->v4_lo[base + half] <= a ? base + half : base;
        n -= half;
    }
    return s->v4_lo[base] <= a && a <= s->v4_hi[base] ? s->v4_until[base] : 0;
}

static uint64_t find_v6(const struct netrule_set *s, u128 a)
{
    size_t n = s->v6_n, base = 0;
    if (n == 0)
        return 0;
    while (n > 1) {
        size_t half = n / 2;
        base = s->v6_lo[base + half] <= a ? base + half : base;
        n -= half;
    }
    return s->v6_lo[base] <= a && a <= s->v6_hi[base] ? s->v6_until[base] : 0;
}

uint64_t netrule_until(const struct netrule_set *s, const struct netrule_addr *a)
{
    if (!s)
        return 0;
    if (a->family == NETRULE_V4)
        return find_v4(s, (uint32_t)addr_value(a));
    if (a->family == NETRULE_V6)
        return find_v6(s, addr_value(a));
    return 0;
}

bool netrule_match(const struct netrule_set *s, const struct netrule_addr *a)
{
    return netrule_until(s, a) != 0;
}

bool netrule_admit(const struct netrule_set *allow, const struct netrule_set *deny,
                   const struct netrule_addr *a)
{
    if (netrule_match(deny, a))
        return false;
    return netrule_set_empty(allow) || netrule_match(allow, a);
}
