/*
 * libFuzzer target for security/netrule.c.
 *
 * The input is a list of CIDR texts, one per line, optionally followed by
 * a NUL byte and address records: a byte whose low bit picks IPv6, then
 * its 16 address bytes (IPv4: 4), through netrule_addr_from_bytes, which
 * must turn an IPv4-mapped one into IPv4. Each line goes
 * to netrule_parse_cidr and must:
 *  - be taken exactly when glibc's inet_pton takes the address part (as
 *    AF_INET6 when it holds ':', else AF_INET: both refuse leading zeros
 *    in IPv4 and accept RFC 4291 IPv6) and the prefix, if any, is decimal
 *    without sign or leading zero, within the family's bits, with no host
 *    bit set; then the range's bytes are inet_pton's, IPv4-mapped ones
 *    turned into IPv4 when the prefix reaches the IPv4 part;
 *  - on refusal, give a message quoting the text ("`...") or saying it is
 *    empty, NUL-terminated in the buffer;
 *  - format (netrule_format_cidr) into text that parses back to itself.
 * The ranges taken are compiled twice, with untils taken from the input
 * and with none, and netrule_until / netrule_match must give, for every
 * record address, every range's first and last address and their
 * neighbours, what a scan of the list gives (the latest until of the
 * ranges holding the address, netrule_cidr_contains checked against a
 * bit-by-bit reference too). netrule_admit with the even lines as
 * allow_from and the odd ones as deny_from must follow its rule. Every
 * address formats into text that inet_pton reads back to its bytes.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "netrule.h"

#define RANGES_MAX 512u
#define PROBES_MAX 4096u

struct model {
    struct netrule_cidr c[RANGES_MAX];
    uint64_t until[RANGES_MAX];
    bool even[RANGES_MAX]; /* the range came from an even line: allow_from */
    size_t n;
};

static struct model m;
static struct netrule_addr probes[PROBES_MAX];
static size_t n_probes;

static void add_probe(const struct netrule_addr *a)
{
    if (n_probes < PROBES_MAX)
        probes[n_probes++] = *a;
}

static unsigned bits_of(uint8_t family)
{
    return family == NETRULE_V4 ? 32u : 128u;
}

static bool bit(const uint8_t *b, unsigned i)
{
    return b[i / 8] >> (7 - i % 8) & 1;
}

/* Does c hold a? Bit by bit, unlike netrule_cidr_contains. */
static bool holds(const struct netrule_cidr *c, const struct netrule_addr *a)
{
    if (c->addr.family != a->family)
        return false;
    for (unsigned i = 0; i < c->prefix_len; i++)
        if (bit(c->addr.bytes, i) != bit(a->bytes, i))
            return false;
    return true;
}

/* What the parse of s[0..n) must give, with inet_pton as the reference:
 * true with *want filled when it must be taken. */
static bool reference(const char *s, size_t n, struct netrule_cidr *want)
{
    char text[128];
    if (n == 0 || n > NETRULE_CIDR_TEXT_MAX || memchr(s, '\0', n))
        return false;
    memcpy(text, s, n);
    text[n] = '\0';
    char *slash = strchr(text, '/');
    if (slash)
        *slash = '\0';
    bool v6 = strchr(text, ':') != NULL;
    uint8_t b[16] = {0};
    if (inet_pton(v6 ? AF_INET6 : AF_INET, text, b) != 1)
        return false;
    unsigned bits = v6 ? 128u : 32u, prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        size_t pl = strlen(p);
        if (pl == 0 || pl > 3 || (pl > 1 && p[0] == '0') || strspn(p, "0123456789") != pl)
            return false;
        prefix = (unsigned)atoi(p);
        if (prefix > bits)
            return false;
    }
    for (unsigned i = prefix; i < bits; i++)
        if (bit(b, i))
            return false;
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    memset(want, 0, sizeof(*want));
    if (v6 && prefix >= 96 && memcmp(b, mapped, 12) == 0) {
        want->addr.family = NETRULE_V4;
        memcpy(want->addr.bytes, b + 12, 4);
        want->prefix_len = (uint8_t)(prefix - 96);
    } else {
        want->addr.family = v6 ? NETRULE_V6 : NETRULE_V4;
        memcpy(want->addr.bytes, b, bits / 8);
        want->prefix_len = (uint8_t)prefix;
    }
    return true;
}

/* The address formatted reads back through inet_pton. */
static void check_format(const struct netrule_addr *a)
{
    char text[NETRULE_ADDR_STRLEN];
    size_t n = netrule_format(a, text, sizeof(text));
    CHECK(n == strlen(text) && n < NETRULE_ADDR_STRLEN);
    uint8_t b[16] = {0};
    CHECK(inet_pton(a->family == NETRULE_V4 ? AF_INET : AF_INET6, text, b) == 1);
    CHECK(memcmp(b, a->bytes, bits_of(a->family) / 8) == 0);
}

static void parse_line(const char *s, size_t n, size_t line)
{
    struct netrule_cidr got, want;
    char why[512];
    memset(why, 'x', sizeof(why));
    int r = netrule_parse_cidr(s, n, &got, why, sizeof(why));
    bool ok = reference(s, n, &want);
    CHECK((r == 0) == ok);
    if (r != 0) {
        CHECK(memchr(why, '\0', sizeof(why)) != NULL);
        CHECK(why[0] == '`' || strcmp(why, "empty address range") == 0);
        return;
    }
    CHECK(memcmp(&got, &want, sizeof(got)) == 0);
    char text[NETRULE_CIDR_STRLEN];
    size_t tl = netrule_format_cidr(&got, text, sizeof(text));
    CHECK(tl == strlen(text));
    struct netrule_cidr back;
    CHECK(netrule_parse_cidr(text, tl, &back, why, sizeof(why)) == 0);
    CHECK(memcmp(&back, &got, sizeof(got)) == 0);
    if (m.n == RANGES_MAX)
        return;
    uint8_t h = 0;
    for (size_t i = 0; i < n; i++)
        h = (uint8_t)(h * 31u + (uint8_t)s[i]);
    m.c[m.n] = got;
    m.until[m.n] = h % 5 == 4 ? NETRULE_FOREVER : h % 5; /* 0 leaves it out */
    m.even[m.n] = line % 2 == 0;
    m.n++;
}

/* A range's first and last addresses and their neighbours. */
static void edge_probes(const struct netrule_cidr *c)
{
    struct netrule_addr lo = c->addr, hi = c->addr;
    unsigned bits = bits_of(c->addr.family);
    for (unsigned i = c->prefix_len; i < bits; i++)
        hi.bytes[i / 8] |= (uint8_t)(0x80u >> (i % 8));
    add_probe(&lo);
    add_probe(&hi);
    for (int k = 0; k < 2; k++) {
        struct netrule_addr a = k ? hi : lo;
        int dir = k ? 1 : -1;
        for (int i = (int)bits / 8 - 1; i >= 0; i--) {
            uint8_t before = a.bytes[i];
            a.bytes[i] = (uint8_t)(before + dir);
            if (before != (k ? 0xff : 0))
                break;
        }
        add_probe(&a);
    }
}

static void check_sets(void)
{
    struct netrule_set *tagged = netrule_set_create(m.c, m.until, m.n, NULL, 0);
    struct netrule_set *plain = netrule_set_create(m.c, NULL, m.n, NULL, 0);
    static struct netrule_cidr allow[RANGES_MAX], deny[RANGES_MAX];
    size_t na = 0, nd = 0;
    for (size_t i = 0; i < m.n; i++) {
        if (m.even[i])
            allow[na++] = m.c[i];
        else
            deny[nd++] = m.c[i];
    }
    struct netrule_set *as = netrule_set_create(allow, NULL, na, NULL, 0);
    struct netrule_set *ds = netrule_set_create(deny, NULL, nd, NULL, 0);
    CHECK(tagged && plain && as && ds);
    CHECK(netrule_set_empty(plain) == (m.n == 0));
    for (size_t p = 0; p < n_probes; p++) {
        const struct netrule_addr *a = &probes[p];
        uint64_t best = 0;
        bool any = false, in_allow = false, in_deny = false;
        for (size_t i = 0; i < m.n; i++) {
            bool h = holds(&m.c[i], a);
            CHECK(h == netrule_cidr_contains(&m.c[i], a));
            if (!h)
                continue;
            any = true;
            if (m.until[i] > best)
                best = m.until[i];
            if (m.even[i])
                in_allow = true;
            else
                in_deny = true;
        }
        CHECK(netrule_until(tagged, a) == best);
        CHECK(netrule_match(plain, a) == any);
        CHECK(netrule_until(plain, a) == (any ? NETRULE_FOREVER : 0));
        CHECK(netrule_admit(as, ds, a) == (!in_deny && (na == 0 || in_allow)));
        CHECK(netrule_admit(NULL, ds, a) == !in_deny);
        check_format(a);
    }
    netrule_set_destroy(tagged);
    netrule_set_destroy(plain);
    netrule_set_destroy(as);
    netrule_set_destroy(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    m.n = 0;
    n_probes = 0;
    const uint8_t *nul = memchr(data, '\0', size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    size_t line = 0;
    for (size_t i = 0; i < text_len; line++) {
        const uint8_t *nl = memchr(data + i, '\n', text_len - i);
        size_t end = nl ? (size_t)(nl - data) : text_len;
        parse_line((const char *)data + i, end - i, line);
        i = end + 1;
    }
    for (size_t i = 0; i < m.n; i++)
        edge_probes(&m.c[i]);
    struct fuzz_in in = {.p = nul ? nul + 1 : data + size, .left = nul ? size - text_len - 1 : 0};
    while (!in_done(&in)) {
        uint8_t family = in_u8(&in) & 1 ? NETRULE_V6 : NETRULE_V4;
        size_t len;
        uint8_t raw[16] = {0};
        const uint8_t *b = in_bytes(&in, family == NETRULE_V4 ? 4 : 16, &len);
        memcpy(raw, b, len);
        struct netrule_addr a;
        CHECK(netrule_addr_from_bytes(family, raw, &a));
        static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
        if (family == NETRULE_V6 && memcmp(raw, mapped, 12) == 0)
            CHECK(a.family == NETRULE_V4 && memcmp(a.bytes, raw + 12, 4) == 0);
        else
            CHECK(a.family == family && memcmp(a.bytes, raw, bits_of(family) / 8) == 0);
        for (size_t i = a.family == NETRULE_V4 ? 4 : 16; i < 16; i++)
            CHECK(a.bytes[i] == 0);
        add_probe(&a);
    }
    check_sets();
    return 0;
}
