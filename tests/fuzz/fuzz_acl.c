/*
 * libFuzzer target for security/acl.c.
 *
 * The input is an acl_file, optionally followed by a NUL byte and more
 * NUL-separated strings ("queries"): acl_create gets the bytes before the
 * first NUL. A failure must read "NAME:LINE: message" (or "NAME: message")
 * with LINE a line of the file. When the file compiles, the target reads
 * its rules again the simple way (a list of (block, access, filter)) and
 * checks every decision against that list, for a handful of clients (no
 * username, each user the file names, names that hold '+', '#' or '/' or
 * start with '$', an empty name, a query as username and client id):
 *  - acl_may_read / acl_may_publish: the OR of the access of every rule
 *    that applies and matches the topic (topic_match, after filling %u and
 *    %c as text), deny winning, publish never into "$SYS..."; an allow
 *    pattern applies only when its names are one ordinary level, a deny
 *    pattern takes an odd name as text (a level holding '+' or '#' becomes
 *    that wildcard) and denies everything when that is over the bounds or
 *    the name is not UTF-8; no %u pattern applies without a username;
 *  - acl_may_subscribe: refused when an applicable deny rule covers the
 *    filter or no applicable read rule intersects it, both computed level
 *    by level for one pair of filters at a time;
 *  - acl_may_read_all: true when one applicable read rule covers the
 *    filter and no applicable deny rule intersects it; and when it is true,
 *    acl_may_read must be true for every probe topic the filter matches;
 * with topics and filters made from the rules (wildcards filled or kept,
 * placeholders filled with the client's names), a few fixed ones and the
 * queries. acl_rule_count must equal the number of rule lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "codec.h"
#include "fuzz_input.h"
#include "limits.h"
#include "topic.h"

static const char path[] = "/fuzz/acl";

#define RULES_MAX   256u /* rules modelled; beyond, decisions run unchecked */
#define USERS_MAX   8u
#define QUERIES_MAX 8u
#define SUBST_MAX   8192u /* a rule with its placeholders filled */
#define PROBES_MAX  48u   /* topics and filters per client */

enum scope { SCOPE_ANON = -1, SCOPE_PATTERN = -2 };
enum { A_R = 1, A_W = 2, A_D = 4 };

struct str {
    const uint8_t *p;
    size_t n;
};

struct rule {
    int scope; /* enum scope, or the index of a user */
    uint8_t access;
    struct str f;
};

struct model {
    struct rule rules[RULES_MAX];
    size_t nrules;
    size_t lines_seen; /* rule lines, modelled or not */
    struct str users[64];
    size_t nusers;
};

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static struct str trim(struct str s)
{
    while (s.n && is_blank(s.p[0]))
        s.p++, s.n--;
    while (s.n && is_blank(s.p[s.n - 1]))
        s.n--;
    return s;
}

static bool str_is(struct str s, const char *w)
{
    return s.n == strlen(w) && memcmp(s.p, w, s.n) == 0;
}

static bool str_eq(struct str a, struct str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Is some level of f exactly w? */
static bool has_level(struct str f, const char *w)
{
    for (size_t s = 0;;) {
        const uint8_t *slash = s < f.n ? memchr(f.p + s, '/', f.n - s) : NULL;
        size_t e = slash ? (size_t)(slash - f.p) : f.n;
        if (str_is((struct str){f.p + s, e - s}, w))
            return true;
        if (e == f.n)
            return false;
        s = e + 1;
    }
}

static int find_user(struct model *m, struct str name)
{
    for (size_t i = 0; i < m->nusers; i++)
        if (str_eq(m->users[i], name))
            return (int)i;
    if (m->nusers == sizeof(m->users) / sizeof(m->users[0]))
        return -3; /* a user not modelled: its rules are dropped */
    m->users[m->nusers] = name;
    return (int)m->nusers++;
}

/* Reads the rules of a file acl_create took, as acl.h describes them. */
static void model_read(struct model *m, const uint8_t *data, size_t size)
{
    int block = SCOPE_ANON;
    for (size_t i = 0; i < size;) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t end = nl ? (size_t)(nl - data) : size;
        struct str l = trim((struct str){data + i, end - i});
        i = end + 1;
        if (l.n == 0 || l.p[0] == '#')
            continue;
        const uint8_t *sp = memchr(l.p, ' ', l.n);
        struct str kw = {l.p, sp ? (size_t)(sp - l.p) : l.n};
        struct str rest = {l.p + kw.n, l.n - kw.n};
        if (str_is(kw, "user")) {
            block = find_user(m, trim(rest));
            continue;
        }
        CHECK(str_is(kw, "topic") || str_is(kw, "pattern"));
        m->lines_seen++;
        while (rest.n && rest.p[0] == ' ')
            rest.p++, rest.n--;
        sp = memchr(rest.p, ' ', rest.n);
        struct str w = {rest.p, sp ? (size_t)(sp - rest.p) : rest.n};
        struct str topic = trim((struct str){rest.p + w.n, rest.n - w.n});
        uint8_t access = A_R | A_W;
        if (topic.n == 0)
            topic = w;
        else
            access = str_is(w, "read")    ? A_R
                     : str_is(w, "write") ? A_W
                     : str_is(w, "deny")  ? A_D
                                          : A_R | A_W;
        int scope = str_is(kw, "pattern") ? SCOPE_PATTERN : block;
        if (scope == -3 || m->nrules == RULES_MAX)
            continue;
        m->rules[m->nrules++] = (struct rule){scope, access, topic};
    }
}

/* ------------------------------------------------------------------ */

struct who {
    struct acl_who w;
    bool u_ok, c_ok;   /* the name fills an allow pattern's placeholder */
    bool u_odd, c_odd; /* a deny pattern takes the name as text */
    bool u_bad, c_bad; /* ... and cannot: a NUL byte or not UTF-8 */
};

static bool name_ok(const uint8_t *s, size_t n)
{
    return n > 0 && n <= TOPIC_LEN_MAX && !memchr(s, '/', n) && !memchr(s, '+', n) &&
           !memchr(s, '#', n);
}

static bool name_bad(const uint8_t *s, size_t n)
{
    return (n > 0 && memchr(s, 0, n)) || !codec_utf8_valid(s, n);
}

static bool name_odd(const uint8_t *s, size_t n)
{
    return !name_ok(s, n) || s[0] == '$' || name_bad(s, n);
}

static struct who who_make(struct str user, bool has_user, struct str cid)
{
    struct who w = {.w = {.username = user.p,
                          .username_len = user.n,
                          .has_username = has_user,
                          .client_id = cid.p,
                          .client_id_len = cid.n}};
    w.u_ok = has_user && name_ok(user.p, user.n);
    w.c_ok = name_ok(cid.p, cid.n);
    w.u_odd = has_user && name_odd(user.p, user.n);
    w.c_odd = name_odd(cid.p, cid.n);
    w.u_bad = has_user && name_bad(user.p, user.n);
    w.c_bad = name_bad(cid.p, cid.n);
    return w;
}

/* Whether a rule applies to a client, and what it applies as. */
enum applies {
    AP_NO,     /* it does not */
    AP_YES,    /* as the filter written out */
    AP_REFUSE, /* a deny pattern that cannot be substituted: deny all */
    AP_BIG,    /* the model cannot tell (longer than SUBST_MAX) */
};

static bool in_block(const struct model *m, const struct rule *r, const struct who *w)
{
    if (r->scope == SCOPE_ANON)
        return !w->w.has_username;
    if (r->scope >= 0)
        return w->w.has_username &&
               str_eq(m->users[r->scope], (struct str){w->w.username, w->w.username_len});
    return true;
}

/* A deny pattern with each placeholder replaced by the name's text, as
 * mosquitto substitutes it (acl.h): refused past TOPIC_LEN_MAX bytes or
 * TOPIC_LEVELS_MAX levels; then each level holding '#' becomes `#` and ends
 * the filter, each holding '+' becomes `+`. */
static enum applies deny_as_text(const struct rule *r, const struct who *w, uint8_t *out,
                                 size_t *out_len)
{
    static uint8_t raw[SUBST_MAX];
    struct str u = {w->w.username, w->w.username_len};
    struct str c = {w->w.client_id, w->w.client_id_len};
    size_t bytes = 0, levels = 1, o = 0;
    for (size_t i = 0; i < r->f.n; i++) {
        bool ph = r->f.p[i] == '%' && i + 1 < r->f.n &&
                  (r->f.p[i + 1] == 'u' || r->f.p[i + 1] == 'c') &&
                  (i == 0 || r->f.p[i - 1] == '/') && (i + 2 == r->f.n || r->f.p[i + 2] == '/');
        struct str piece = ph ? (r->f.p[i + 1] == 'u' ? u : c) : (struct str){r->f.p + i, 1};
        if (ph && (r->f.p[i + 1] == 'u' ? w->u_bad : w->c_bad))
            return AP_REFUSE;
        for (size_t k = 0; k < piece.n; k++)
            levels += piece.p[k] == '/';
        if (o + piece.n <= SUBST_MAX && piece.n)
            memcpy(raw + o, piece.p, piece.n);
        o += piece.n;
        bytes += piece.n;
        i += ph;
    }
    if (bytes > TOPIC_LEN_MAX || levels > TOPIC_LEVELS_MAX)
        return AP_REFUSE;
    if (bytes > SUBST_MAX)
        return AP_BIG;
    size_t n = 0;
    for (size_t s = 0;;) {
        const uint8_t *slash = s < bytes ? memchr(raw + s, '/', bytes - s) : NULL;
        size_t e = slash ? (size_t)(slash - raw) : bytes;
        struct str l = {raw + s, e - s};
        if (l.n && memchr(l.p, '#', l.n)) {
            out[n++] = '#';
            break;
        }
        if (l.n && memchr(l.p, '+', l.n))
            out[n++] = '+';
        else if (l.n)
            memcpy(out + n, l.p, l.n), n += l.n;
        if (e == bytes)
            break;
        out[n++] = '/';
        s = e + 1;
    }
    *out_len = n;
    return AP_YES;
}

/* The rule's filter for this client in out (placeholders filled). */
static enum applies rule_for(const struct model *m, const struct rule *r, const struct who *w,
                             uint8_t *out, size_t *out_len)
{
    if (!in_block(m, r, w))
        return AP_NO;
    bool uses_u = false, uses_c = false;
    if (r->scope == SCOPE_PATTERN) {
        uses_u = has_level(r->f, "%u");
        uses_c = has_level(r->f, "%c");
    }
    if (uses_u && !w->w.has_username)
        return AP_NO; /* mosquitto skips %u patterns, deny ones too */
    if (r->access == A_D && ((uses_u && w->u_odd) || (uses_c && w->c_odd)))
        return deny_as_text(r, w, out, out_len);
    size_t o = 0;
    for (size_t s = 0, level = 0;; level++) {
        const uint8_t *slash = s < r->f.n ? memchr(r->f.p + s, '/', r->f.n - s) : NULL;
        size_t e = slash ? (size_t)(slash - r->f.p) : r->f.n;
        struct str l = {r->f.p + s, e - s};
        if (r->scope == SCOPE_PATTERN && (str_is(l, "%u") || str_is(l, "%c"))) {
            bool u = l.p[1] == 'u';
            if (!(u ? w->u_ok : w->c_ok))
                return AP_NO;
            l = u ? (struct str){w->w.username, w->w.username_len}
                  : (struct str){w->w.client_id, w->w.client_id_len};
            if (level == 0 && l.p[0] == '$')
                return AP_NO;
        }
        if (o + l.n + 1 > SUBST_MAX)
            return AP_BIG;
        if (l.n)
            memcpy(out + o, l.p, l.n);
        o += l.n;
        if (e == r->f.n)
            break;
        out[o++] = '/';
        s = e + 1;
    }
    *out_len = o;
    return AP_YES;
}

/* Levels of a filter: at most TOPIC_LEVELS_MAX + 1 are kept. */
struct lv {
    size_t n;
    struct str l[TOPIC_LEVELS_MAX + 1];
};

static void split(const uint8_t *p, size_t n, struct lv *v)
{
    v->n = 0;
    for (size_t s = 0;;) {
        const uint8_t *slash = s < n ? memchr(p + s, '/', n - s) : NULL;
        size_t e = slash ? (size_t)(slash - p) : n;
        CHECK(v->n <= TOPIC_LEVELS_MAX);
        v->l[v->n++] = (struct str){p + s, e - s};
        if (e == n)
            return;
        s = e + 1;
    }
}

static bool dollar(const struct lv *v)
{
    return v->l[0].n > 0 && v->l[0].p[0] == '$';
}

/* Some topic matches both filters. */
static bool ref_intersects(const struct lv *a, const struct lv *f)
{
    for (size_t i = 0;; i++) {
        if (i == a->n && i == f->n)
            return true;
        if (i < a->n && str_is(a->l[i], "#"))
            return !(i == 0 && dollar(f));
        if (i < f->n && str_is(f->l[i], "#"))
            return !(i == 0 && dollar(a));
        if (i == a->n || i == f->n)
            return false;
        bool ap = str_is(a->l[i], "+"), fp = str_is(f->l[i], "+");
        if (ap && fp)
            continue;
        if (ap || fp) {
            if (i == 0 && (ap ? dollar(f) : dollar(a)))
                return false;
            continue;
        }
        if (!str_eq(a->l[i], f->l[i]))
            return false;
    }
}

/* Every topic f matches, d matches. */
static bool ref_covers(const struct lv *d, const struct lv *f)
{
    for (size_t i = 0;; i++) {
        if (i < d->n && str_is(d->l[i], "#"))
            return !(i == 0 && dollar(f));
        if (i == f->n)
            return i == d->n;
        if (i == d->n || str_is(f->l[i], "#"))
            return false;
        if (str_is(f->l[i], "+")) {
            if (!str_is(d->l[i], "+"))
                return false;
            continue;
        }
        if (str_is(d->l[i], "+")) {
            if (i == 0 && dollar(f))
                return false;
            continue;
        }
        if (!str_eq(d->l[i], f->l[i]))
            return false;
    }
}

static uint8_t subst_buf[SUBST_MAX];

/* The model's access bits for a topic; *big when it could not tell. A
 * deny pattern that cannot be substituted denies every topic. */
static uint8_t model_topic(const struct model *m, const struct who *w, struct str t, bool *big)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < m->nrules; i++) {
        size_t n;
        enum applies ap = rule_for(m, &m->rules[i], w, subst_buf, &n);
        *big |= ap == AP_BIG;
        if (ap == AP_REFUSE || (ap == AP_YES && topic_match(subst_buf, n, t.p, t.n)))
            acc |= ap == AP_REFUSE ? A_D : m->rules[i].access;
    }
    return acc;
}

/* The filter a subscription matches with: F of "$share/G/F". False when
 * the filter is not valid. */
static bool sub_filter(struct str *f)
{
    if (!topic_filter_valid(f->p, f->n))
        return false;
    const uint8_t *g, *inner;
    size_t gl, il;
    if (topic_shared_split(f->p, f->n, &g, &gl, &inner, &il))
        *f = (struct str){inner, il};
    return true;
}

static bool model_subscribe(const struct model *m, const struct who *w, struct str f, bool *big)
{
    if (!sub_filter(&f))
        return false;
    static struct lv fl, rl;
    split(f.p, f.n, &fl);
    bool inter = false;
    for (size_t i = 0; i < m->nrules; i++) {
        size_t n;
        enum applies ap = rule_for(m, &m->rules[i], w, subst_buf, &n);
        *big |= ap == AP_BIG;
        if (ap == AP_REFUSE)
            return false;
        if (ap != AP_YES)
            continue;
        split(subst_buf, n, &rl);
        if ((m->rules[i].access & A_D) && ref_covers(&rl, &fl))
            return false;
        if ((m->rules[i].access & A_R) && ref_intersects(&rl, &fl))
            inter = true;
    }
    return inter;
}

/* acl_may_read_all as acl.h words it: one applicable read rule covers the
 * filter, and no applicable deny rule intersects it. */
static bool model_read_all(const struct model *m, const struct who *w, struct str f, bool *big)
{
    if (!sub_filter(&f))
        return false;
    static struct lv fl, rl;
    split(f.p, f.n, &fl);
    bool covered = false;
    for (size_t i = 0; i < m->nrules; i++) {
        size_t n;
        enum applies ap = rule_for(m, &m->rules[i], w, subst_buf, &n);
        *big |= ap == AP_BIG;
        if (ap == AP_REFUSE)
            return false;
        if (ap != AP_YES)
            continue;
        split(subst_buf, n, &rl);
        if ((m->rules[i].access & A_D) && ref_intersects(&rl, &fl))
            return false;
        if ((m->rules[i].access & A_R) && ref_covers(&rl, &fl))
            covered = true;
    }
    return covered;
}

/* ------------------------------------------------------------------ */

struct probes {
    struct str s[PROBES_MAX];
    size_t n;
    uint8_t buf[PROBES_MAX][512];
};

static void probe_add(struct probes *p, const uint8_t *s, size_t n)
{
    if (p->n < PROBES_MAX)
        p->s[p->n++] = (struct str){s, n};
}

/* A rule's filter turned into a topic (wildcards filled) or into other
 * filters, with placeholders filled for w, in p's own buffers. */
static void probe_from_rule(struct probes *p, const struct rule *r, const struct who *w, int how)
{
    if (p->n >= PROBES_MAX)
        return;
    uint8_t *out = p->buf[p->n];
    size_t o = 0, cap = sizeof(p->buf[0]);
    for (size_t s = 0, level = 0;; level++) {
        const uint8_t *slash = s < r->f.n ? memchr(r->f.p + s, '/', r->f.n - s) : NULL;
        size_t e = slash ? (size_t)(slash - r->f.p) : r->f.n;
        struct str l = {r->f.p + s, e - s};
        if (str_is(l, "%u"))
            l = (struct str){w->w.username, w->w.username_len};
        else if (str_is(l, "%c"))
            l = (struct str){w->w.client_id, w->w.client_id_len};
        if (how == 0 && (str_is(l, "+") || str_is(l, "#")))
            l = (struct str){(const uint8_t *)"x", 1};
        if (how == 1 && level == 0)
            l = (struct str){(const uint8_t *)"+", 1};
        if (how == 2 && e == r->f.n)
            l = (struct str){(const uint8_t *)"#", 1};
        if (o + l.n + 1 > cap)
            return;
        if (l.n)
            memcpy(out + o, l.p, l.n);
        o += l.n;
        if (e == r->f.n)
            break;
        out[o++] = '/';
        s = e + 1;
    }
    for (size_t i = 0; how == 0 && i < o; i++)
        if (out[i] == '+' || out[i] == '#')
            out[i] = 'x'; /* from a name: a topic, not a filter */
    probe_add(p, out, o);
}

static void show_who(const struct who *w)
{
    fprintf(stderr, "user `%.*s' (%d) cid `%.*s'", (int)w->w.username_len, w->w.username,
            w->w.has_username, (int)w->w.client_id_len, w->w.client_id);
}

static void check_topic(const struct acl *a, const struct model *m, const struct who *w,
                        struct str t)
{
    bool big = false;
    if (!topic_name_valid(t.p, t.n)) {
        CHECK(!acl_may_read(a, &w->w, t.p, t.n));
        CHECK(!acl_may_publish(a, &w->w, t.p, t.n));
        return;
    }
    uint8_t bits = model_topic(m, w, t, &big);
    bool rd = (bits & A_R) && !(bits & A_D);
    bool sys = t.n >= 4 && memcmp(t.p, "$SYS", 4) == 0;
    bool wr = !sys && (bits & A_W) && !(bits & A_D);
    bool got_rd = acl_may_read(a, &w->w, t.p, t.n);
    bool got_wr = acl_may_publish(a, &w->w, t.p, t.n);
    if (!big && (got_rd != rd || got_wr != wr)) {
        fprintf(stderr, "topic `%.*s' ", (int)t.n, t.p);
        show_who(w);
        fprintf(stderr, ": read %d/%d write %d/%d\n", got_rd, rd, got_wr, wr);
        CHECK(!"read/publish differ from the model");
    }
}

/* acl_may_subscribe and acl_may_read_all against the model; and wherever
 * read_all says true, every probe topic the filter matches is readable. */
static void check_filter(const struct acl *a, const struct model *m, const struct who *w,
                         struct str f, const struct probes *p)
{
    bool big = false;
    bool want = model_subscribe(m, w, f, &big);
    bool got = acl_may_subscribe(a, &w->w, f.p, f.n);
    if (!big && got != want) {
        fprintf(stderr, "filter `%.*s' ", (int)f.n, f.p);
        show_who(w);
        fprintf(stderr, ": subscribe %d, model %d\n", got, want);
        CHECK(!"subscribe differs from the model");
    }
    CHECK(acl_may_read_all(NULL, &w->w, f.p, f.n) == topic_filter_valid(f.p, f.n));
    big = false;
    want = model_read_all(m, w, f, &big);
    got = acl_may_read_all(a, &w->w, f.p, f.n);
    if (!big && got != want) {
        fprintf(stderr, "filter `%.*s' ", (int)f.n, f.p);
        show_who(w);
        fprintf(stderr, ": read_all %d, model %d\n", got, want);
        CHECK(!"read_all differs from the model");
    }
    if (!got || !sub_filter(&f))
        return;
    for (size_t i = 0; i < p->n; i++) {
        struct str t = p->s[i];
        if (topic_name_valid(t.p, t.n) && topic_match(f.p, f.n, t.p, t.n) &&
            !acl_may_read(a, &w->w, t.p, t.n)) {
            fprintf(stderr, "filter `%.*s' topic `%.*s' ", (int)f.n, f.p, (int)t.n, t.p);
            show_who(w);
            fprintf(stderr, ": read_all true, read false\n");
            CHECK(!"read_all true for a filter matching an unreadable topic");
        }
    }
}

static void check_client(const struct acl *a, const struct model *m, const struct who *w,
                         const struct str *q, size_t nq)
{
    static struct probes p;
    p.n = 0;
    static const char *fixed[] = {"#",          "+",   "+/#", "$SYS/#", "$SYS/x", "a/b",
                                  "$share/g/#", "a/#", "/",   "/+",     "a/+/b"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        probe_add(&p, (const uint8_t *)fixed[i], strlen(fixed[i]));
    for (size_t i = 0; i < nq; i++)
        probe_add(&p, q[i].p, q[i].n);
    for (size_t i = 0; i < m->nrules && p.n < PROBES_MAX; i++)
        for (int how = 0; how < 4; how++)
            probe_from_rule(&p, &m->rules[i], w, how);
    for (size_t i = 0; i < p.n; i++) {
        check_topic(a, m, w, p.s[i]);
        check_filter(a, m, w, p.s[i], &p);
    }
}

static void check_failure(const char *err, const uint8_t *data, size_t size)
{
    size_t plen = strlen(path);
    CHECK(strncmp(err, path, plen) == 0 && err[plen] == ':');
    if (err[plen + 1] >= '0' && err[plen + 1] <= '9') {
        long line = strtol(err + plen + 1, NULL, 10);
        size_t lines = 1;
        for (size_t i = 0; i < size; i++)
            lines += data[i] == '\n';
        CHECK(line >= 1 && (size_t)line <= lines);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t file_len = nul ? (size_t)(nul - data) : size;
    struct str q[QUERIES_MAX];
    size_t nq = 0;
    for (size_t i = file_len + 1; nul && i <= size && nq < QUERIES_MAX;) {
        const uint8_t *e = memchr(data + i, 0, size - i);
        size_t end = e ? (size_t)(e - data) : size;
        q[nq++] = (struct str){data + i, end - i};
        i = end + 1;
    }
    char err[512];
    struct acl *a = acl_create(data, file_len, path, err, sizeof(err));
    if (!a) {
        check_failure(err, data, file_len);
        return 0;
    }
    static struct model m;
    m.nrules = m.lines_seen = m.nusers = 0;
    model_read(&m, data, file_len);
    CHECK(acl_rule_count(a) == m.lines_seen);
    bool complete = m.lines_seen == m.nrules;
    struct str c = {(const uint8_t *)"c", 1}, none = {(const uint8_t *)"", 0};
    struct str q0 = nq ? q[0] : c;
    struct who clients[USERS_MAX + 12];
    size_t nc = 0;
    clients[nc++] = who_make(none, false, c);
    clients[nc++] = who_make(none, false, q0);
    for (size_t i = 0; i < m.nusers && i < USERS_MAX; i++)
        clients[nc++] = who_make(m.users[i], true, i % 2 ? q0 : c);
    clients[nc++] = who_make((struct str){(const uint8_t *)"+", 1}, true, none);
    clients[nc++] = who_make((struct str){(const uint8_t *)"a/b", 3}, true, c);
    clients[nc++] = who_make(q0, true, q0);
    clients[nc++] = who_make(none, true, (struct str){(const uint8_t *)"#", 1});
    /* Odd client ids without a username, and an odd username with an odd
     * id: deny patterns take them as text. */
    clients[nc++] = who_make(none, false, (struct str){(const uint8_t *)"a/b", 3});
    clients[nc++] = who_make(none, false, (struct str){(const uint8_t *)"x/+/y", 5});
    clients[nc++] = who_make(none, false, none);
    clients[nc++] = who_make(none, false, (struct str){(const uint8_t *)"$SYS", 4});
    clients[nc++] = who_make((struct str){(const uint8_t *)"x/+/y", 5}, true,
                             (struct str){(const uint8_t *)"+", 1});
    clients[nc++] = who_make((struct str){(const uint8_t *)"$SYS", 4}, true, q0);
    for (size_t i = 0; i < nc; i++) {
        if (complete) {
            check_client(a, &m, &clients[i], q, nq);
        } else {
            acl_may_read(a, &clients[i].w, q0.p, q0.n);
            acl_may_subscribe(a, &clients[i].w, q0.p, q0.n);
        }
    }
    acl_destroy(a);
    return 0;
}
