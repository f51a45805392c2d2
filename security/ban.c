/*
 * The ban_file (ban.h): lines into two hash tables of names and one
 * netrule set of ranges, each ban with the time it ends.
 *
 * Names are decoded into one pool (a name is never longer than its text,
 * so the pool is at most the file's size) and the tables keep offsets into
 * it with the name's SipHash under the caller's key; a name given twice
 * keeps one slot with the later end, and the pool drops the copy. The
 * tables are open-addressing with linear probes and at most half full.
 * Ranges are collected and handed to netrule_set_create once the file is
 * read, which merges them and keeps the latest end per address.
 *
 * ban_list_create builds everything on the calling thread; the list is
 * read-only afterwards. No system call, no clock, no global state.
 */
#include "ban.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "invariant.h"
#include "text.h"
#include "siphash.h"

/* Tables start with this many slots and double. */
#define TABLE_MIN 16u
/* Bytes of a name or word quoted in a message. */
/* "YYYY-MM-DDThh:mm:ssZ" */
#define EXPIRY_LEN 20u

_Static_assert(BAN_FILE_MAX <= UINT32_MAX, "pool offsets are 32-bit");
_Static_assert(BAN_NAME_MAX <= UINT32_MAX, "name lengths are 32-bit");
_Static_assert(BAN_LINE_MAX > 2u * BAN_NAME_MAX + 2u + EXPIRY_LEN + 16u,
               "a line holds the longest quoted name and an expiry");
_Static_assert(BAN_FILE_MAX >= BAN_LINE_MAX, "a file holds the longest line");
_Static_assert(BAN_ENTRIES_MAX <= NETRULE_RULES_MAX, "every ip ban fits a netrule set");

/* A slot; len 0 is an empty one (names are never empty). */
struct ban_slot {
    uint64_t hash;
    uint64_t until;
    uint32_t off;
    uint32_t len;
};

struct ban_table {
    struct ban_slot *slots;
    size_t cap; /* 0 or a power of two, at least twice n */
    size_t n;
};

struct ban_list {
    uint64_t key[2];
    uint8_t *pool;
    struct ban_table ids;
    struct ban_table users;
    struct netrule_set *ips;
    size_t count;
};

enum ban_kind {
    KIND_CLIENTID,
    KIND_USERNAME,
    KIND_IP,
};

static const char *const kind_keyword[] = {"clientid", "username", "ip"};
static const char *const kind_noun[] = {"client id", "username", "address range"};

/* ------------------------------------------------------------------ */
/* Tables                                                              */
/* ------------------------------------------------------------------ */

static bool table_grow(struct ban_table *t)
{
    size_t cap = t->cap ? 2 * t->cap : TABLE_MIN;
    struct ban_slot *s = calloc(cap, sizeof(*s));
    if (!s)
        return false;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].len == 0)
            continue;
        size_t k = (size_t)t->slots[i].hash & (cap - 1);
        while (s[k].len)
            k = (k + 1) & (cap - 1);
        s[k] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return true;
}

/* The slot holding name s[0..len), or the empty one where it would go. */
static struct ban_slot *table_slot(const struct ban_table *t, const uint8_t *pool, uint64_t h,
                                   const uint8_t *s, size_t len)
{
    size_t k = (size_t)h & (t->cap - 1);
    for (;;) {
        struct ban_slot *e = &t->slots[k];
        if (e->len == 0 || (e->hash == h && e->len == len && memcmp(pool + e->off, s, len) == 0))
            return e;
        k = (k + 1) & (t->cap - 1);
    }
}

/* Adds the name at pool[off..off + len); 1 when it was there already (the
 * later end kept), 0 when added, -1 when out of memory. */
static int table_put(struct ban_table *t, const uint64_t key[2], const uint8_t *pool, uint32_t off,
                     uint32_t len, uint64_t until)
{
    if (2 * (t->n + 1) > t->cap && !table_grow(t))
        return -1;
    uint64_t h = siphash24(key, pool + off, len);
    struct ban_slot *e = table_slot(t, pool, h, pool + off, len);
    if (e->len) {
        if (until > e->until)
            e->until = until;
        return 1;
    }
    *e = (struct ban_slot){.hash = h, .until = until, .off = off, .len = len};
    t->n++;
    return 0;
}

static uint64_t table_get(const struct ban_list *l, const struct ban_table *t, const uint8_t *s,
                          size_t len)
{
    if (t->n == 0 || len == 0 || len > BAN_NAME_MAX)
        return 0;
    const struct ban_slot *e = table_slot(t, l->pool, siphash24(l->key, s, len), s, len);
    return e->len ? e->until : 0;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

struct parser {
    struct ban_list *l;
    const char *path;
    size_t line;
    char *err;
    size_t errlen;
    size_t pool_len;
    struct netrule_cidr *cidrs;
    uint64_t *cidr_until;
    size_t n_ip;
    size_t cap_ip;
};

__attribute__((format(printf, 2, 3))) static int fail(struct parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    text_vfail(p->err, p->errlen, p->path, p->line, fmt, ap);
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Words                                                               */
/* ------------------------------------------------------------------ */

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static void skip_blanks(const uint8_t **s, size_t *n)
{
    while (*n > 0 && is_blank((*s)[0])) {
        (*s)++;
        (*n)--;
    }
}

static size_t word_len(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n && !is_blank(s[i]))
        i++;
    return i;
}

/* A quoted name at s[0..n) (s[0] is '"') decoded into out; *used is the
 * text's length, closing quote included. */
static int unquote(struct parser *p, enum ban_kind kind, const uint8_t *s, size_t n, uint8_t *out,
                   size_t *out_len, size_t *used)
{
    size_t o = 0;
    for (size_t i = 1; i < n; i++) {
        if (s[i] == '"') {
            *out_len = o;
            *used = i + 1;
            return 0;
        }
        if (s[i] == '\\') {
            if (i + 1 == n)
                break;
            if (s[i + 1] != '"' && s[i + 1] != '\\') {
                char shown[TEXT_SHOW_LEN];
                return fail(p,
                            "unknown escape `\\%s' in a quoted %s (only \\\" and \\\\ are "
                            "escapes)",
                            text_show(shown, s + i + 1, 1), kind_noun[kind]);
            }
            i++;
        }
        out[o++] = s[i];
    }
    return fail(p, "no closing `\"' after the quoted %s", kind_noun[kind]);
}

/* The id or name at s[0..n), bare or quoted, decoded into the pool at
 * *off, *len; *used is its text's length. */
static int parse_name(struct parser *p, enum ban_kind kind, const uint8_t *s, size_t n,
                      uint32_t *off, uint32_t *len, size_t *used)
{
    char shown[TEXT_SHOW_LEN];
    uint8_t *out = p->l->pool + p->pool_len;
    size_t out_len = 0;
    if (s[0] == '"') {
        if (unquote(p, kind, s, n, out, &out_len, used))
            return -1;
        if (*used < n && !is_blank(s[*used]))
            return fail(p, "text right after the closing `\"' of the %s", kind_noun[kind]);
    } else {
        *used = out_len = word_len(s, n);
        if (memchr(s, '"', out_len))
            return fail(p,
                        "a `\"' inside the bare %s `%s': write the whole %s in double quotes, "
                        "with \\\" for each `\"'",
                        kind_noun[kind], text_show(shown, s, out_len), kind_noun[kind]);
        memcpy(out, s, out_len);
    }
    if (out_len == 0)
        return fail(p, "empty %s", kind_noun[kind]);
    if (out_len > BAN_NAME_MAX)
        return fail(p, "%s of %zu bytes, longer than %u", kind_noun[kind], out_len, BAN_NAME_MAX);
    if (!codec_utf8_valid(out, out_len))
        return fail(p, "%s `%s' is not valid UTF-8", kind_noun[kind],
                    text_show(shown, out, out_len));
    *off = (uint32_t)p->pool_len;
    *len = (uint32_t)out_len;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Expiry times                                                        */
/* ------------------------------------------------------------------ */

/* Does s[0..n) have the shape of tmpl, 'd' standing for a digit? */
static bool shaped(const uint8_t *s, size_t n, const char *tmpl)
{
    for (size_t i = 0; i < n; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        if (tmpl[i] == '\0' || (tmpl[i] == 'd' ? !digit : s[i] != (uint8_t)tmpl[i]))
            return false;
    }
    return true;
}

static unsigned digits(const uint8_t *s, size_t n)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10u + (unsigned)(s[i] - '0');
    return v;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4u == 0 && y % 100u != 0) || y % 400u == 0;
    return days[m - 1] + (m == 2 && leap);
}

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's
 * days_from_civil), for y >= 1970. */
static uint64_t days_from_civil(unsigned y, unsigned m, unsigned d)
{
    y -= m <= 2;
    unsigned era = y / 400u, yoe = y - era * 400u;
    unsigned doy = (153u * (m > 2 ? m - 3u : m + 9u) + 2u) / 5u + d - 1u;
    unsigned doe = yoe * 365u + yoe / 4u - yoe / 100u + doy;
    return (uint64_t)era * 146097u + doe - 719468u;
}

static int parse_expiry(struct parser *p, const uint8_t *s, size_t n, uint64_t *until)
{
    char shown[TEXT_SHOW_LEN];
    text_show(shown, s, n);
    if (n == 10 && shaped(s, n, "dddd-dd-dd"))
        return fail(p,
                    "expiry `%s' is a date without a time: write %sT00:00:00Z to lift the ban "
                    "when that day begins, or another time of it (UTC)",
                    shown, shown);
    if (n >= 19 && shaped(s, 19, "dddd-dd-ddTdd:dd:dd") && (n != EXPIRY_LEN || s[19] != 'Z'))
        return fail(p, "expiry `%s' is not UTC: end it in Z, with no offset or fraction", shown);
    if (n != EXPIRY_LEN || !shaped(s, n, "dddd-dd-ddTdd:dd:ddZ"))
        return fail(p,
                    "`%s' is not an expiry time (YYYY-MM-DDThh:mm:ssZ in UTC, e.g. "
                    "2026-12-31T23:59:59Z)",
                    shown);
    unsigned y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    unsigned h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 1970u)
        return fail(p, "expiry `%s': year %u is before 1970", shown, y);
    if (mo < 1u || mo > 12u)
        return fail(p, "expiry `%s': there is no month %02u", shown, mo);
    if (d < 1u || d > days_in_month(y, mo))
        return fail(p, "expiry `%s': there is no day %02u in %04u-%02u", shown, d, y, mo);
    if (h > 23u || mi > 59u || sec > 59u)
        return fail(p, "expiry `%s': there is no time %02u:%02u:%02u%s", shown, h, mi, sec,
                    sec == 60u ? " (leap seconds are not written here)" : "");
    *until = days_from_civil(y, mo, d) * 86400u + h * 3600u + mi * 60u + sec;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Lines                                                               */
/* ------------------------------------------------------------------ */

static int add_ip(struct parser *p, const struct netrule_cidr *c, uint64_t until)
{
    if (p->n_ip == p->cap_ip) {
        size_t cap = p->cap_ip ? 2 * p->cap_ip : 64;
        struct netrule_cidr *cs = realloc(p->cidrs, cap * sizeof(*cs));
        if (cs)
            p->cidrs = cs;
        uint64_t *us = cs ? realloc(p->cidr_until, cap * sizeof(*us)) : NULL;
        if (!us)
            return fail(p, "out of memory");
        p->cidr_until = us;
        p->cap_ip = cap;
    }
    p->cidrs[p->n_ip] = *c;
    p->cidr_until[p->n_ip++] = until;
    return 0;
}

/* The value of a ban: a CIDR, or a name into the pool. */
struct value {
    struct netrule_cidr cidr;
    uint32_t off, len;
};

static int parse_value(struct parser *p, enum ban_kind kind, const uint8_t *s, size_t n,
                       struct value *v, size_t *used)
{
    if (kind != KIND_IP)
        return parse_name(p, kind, s, n, &v->off, &v->len, used);
    char why[512];
    *used = word_len(s, n);
    if (netrule_parse_cidr((const char *)s, *used, &v->cidr, why, sizeof(why)))
        return fail(p, "%s", why);
    return 0;
}

static int keep(struct parser *p, enum ban_kind kind, const struct value *v, uint64_t until)
{
    if (p->l->count == BAN_ENTRIES_MAX)
        return fail(p, "more than %u bans", BAN_ENTRIES_MAX);
    p->l->count++;
    if (kind == KIND_IP)
        return add_ip(p, &v->cidr, until);
    struct ban_table *t = kind == KIND_CLIENTID ? &p->l->ids : &p->l->users;
    int r = table_put(t, p->l->key, p->l->pool, v->off, v->len, until);
    if (r < 0)
        return fail(p, "out of memory");
    if (r == 0)
        p->pool_len += v->len; /* a repeated name keeps the first copy */
    return 0;
}

/* Everything after the keyword: s[0..n), blanks trimmed, n > 0. */
static int parse_ban(struct parser *p, enum ban_kind kind, const uint8_t *s, size_t n)
{
    char shown[TEXT_SHOW_LEN];
    struct value v;
    size_t used = 0;
    if (parse_value(p, kind, s, n, &v, &used))
        return -1;
    s += used;
    n -= used;
    skip_blanks(&s, &n);
    uint64_t until = BAN_FOREVER;
    if (n > 0 && s[0] != '#') {
        size_t wl = word_len(s, n);
        if (parse_expiry(p, s, wl, &until))
            return -1;
        s += wl;
        n -= wl;
        skip_blanks(&s, &n);
        if (n > 0 && s[0] != '#')
            return fail(p, "unexpected `%s' after the expiry (a comment starts with `#')",
                        text_show(shown, s, word_len(s, n)));
    }
    return keep(p, kind, &v, until);
}

/* A NUL, or a control byte other than a tab, anywhere in the line. */
static int check_bytes(struct parser *p, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0)
            return fail(p, "the line holds a NUL byte (byte %zu)", i + 1);
        if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return fail(p, "the line holds a control byte 0x%02x (byte %zu)", s[i], i + 1);
    }
    return 0;
}

/* One line, s[0..n) without its '\n'. */
static int parse_line(struct parser *p, const uint8_t *s, size_t n)
{
    char shown[TEXT_SHOW_LEN];
    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (n > BAN_LINE_MAX)
        return fail(p, "line longer than %u bytes", BAN_LINE_MAX);
    if (check_bytes(p, s, n))
        return -1;
    skip_blanks(&s, &n);
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    if (n == 0 || s[0] == '#')
        return 0;
    size_t wl = word_len(s, n);
    for (int k = KIND_CLIENTID; k <= KIND_IP; k++) {
        if (wl != strlen(kind_keyword[k]) || memcmp(s, kind_keyword[k], wl) != 0)
            continue;
        s += wl;
        n -= wl;
        skip_blanks(&s, &n);
        if (n == 0)
            return fail(p, "`%s' without a%s %s", kind_keyword[k], k == KIND_IP ? "n" : "",
                        kind_noun[k]);
        return parse_ban(p, (enum ban_kind)k, s, n);
    }
    return fail(p,
                "unknown keyword `%s' (a ban is `clientid ID', `username NAME' or `ip CIDR', "
                "each optionally followed by an expiry time)",
                text_show(shown, s, wl));
}

/* ------------------------------------------------------------------ */
/* The list                                                            */
/* ------------------------------------------------------------------ */

static int parse_all(struct parser *p, const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len;) {
        const uint8_t *nl = memchr(bytes + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - bytes) : len;
        p->line++;
        if (parse_line(p, bytes + i, end - i))
            return -1;
        i = end + 1;
    }
    p->line = 0;
    char why[128];
    p->l->ips = netrule_set_create(p->cidrs, p->cidr_until, p->n_ip, why, sizeof(why));
    if (!p->l->ips)
        return fail(p, "%s", why);
    ASSERT(p->pool_len <= len);
    return 0;
}

struct ban_list *ban_list_create(const uint8_t *bytes, size_t len, const char *path,
                                 const uint64_t hash_key[2], char *err, size_t errlen)
{
    struct parser p = {.path = path, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (len > BAN_FILE_MAX) {
        fail(&p, "larger than %u bytes", BAN_FILE_MAX);
        return NULL;
    }
    p.l = calloc(1, sizeof(*p.l));
    if (!p.l || (len && !(p.l->pool = malloc(len)))) {
        fail(&p, "out of memory");
        goto fail;
    }
    p.l->key[0] = hash_key[0];
    p.l->key[1] = hash_key[1];
    if (parse_all(&p, bytes, len))
        goto fail;
    if (p.pool_len && p.pool_len < len) {
        uint8_t *pool = realloc(p.l->pool, p.pool_len);
        if (pool)
            p.l->pool = pool;
    }
    free(p.cidrs);
    free(p.cidr_until);
    return p.l;
fail:
    free(p.cidrs);
    free(p.cidr_until);
    ban_list_destroy(p.l);
    return NULL;
}

void ban_list_destroy(struct ban_list *l)
{
    if (!l)
        return;
    free(l->pool);
    free(l->ids.slots);
    free(l->users.slots);
    netrule_set_destroy(l->ips);
    free(l);
}

size_t ban_list_count(const struct ban_list *l)
{
    return l ? l->count : 0;
}

static uint64_t active(uint64_t until, uint64_t now_s)
{
    return until > now_s ? until : 0;
}

uint64_t ban_clientid_until(const struct ban_list *l, const uint8_t *id, size_t len, uint64_t now_s)
{
    return l ? active(table_get(l, &l->ids, id, len), now_s) : 0;
}

uint64_t ban_username_until(const struct ban_list *l, const uint8_t *name, size_t len,
                            uint64_t now_s)
{
    return l ? active(table_get(l, &l->users, name, len), now_s) : 0;
}

uint64_t ban_ip_until(const struct ban_list *l, const struct netrule_addr *a, uint64_t now_s)
{
    return l ? active(netrule_until(l->ips, a), now_s) : 0;
}

bool ban_clientid(const struct ban_list *l, const uint8_t *id, size_t len, uint64_t now_s)
{
    return ban_clientid_until(l, id, len, now_s) != 0;
}

bool ban_username(const struct ban_list *l, const uint8_t *name, size_t len, uint64_t now_s)
{
    return ban_username_until(l, name, len, now_s) != 0;
}

bool ban_ip(const struct ban_list *l, const struct netrule_addr *a, uint64_t now_s)
{
    return ban_ip_until(l, a, now_s) != 0;
}
