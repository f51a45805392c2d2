/*
 * Deny patterns for the names the tries cannot use (acl.h, "Placeholders").
 *
 * The tries in acl.c fill `%u` and `%c` only with a name that is one
 * ordinary level. For allow patterns that is the point: a client id such
 * as "victim/inbox" must not get "victim/inbox/#" from `pattern readwrite
 * %c/#`. A deny pattern, though, must never protect less because a client
 * chose an odd name, so every `pattern deny` line that uses a placeholder
 * is also kept here as a list of levels, and for a client whose name needs
 * it (empty, holding '/', '+' or '#', starting with '$', or one the tries
 * refuse for another reason) the pattern is applied with the name
 * substituted as text, as mosquitto 2.0 does. The substituted filter is
 * never written out: it is assembled as up to TOPIC_LEVELS_MAX views into
 * the pattern and the names, on the stack, and compared level by level.
 *
 * Cost: a client whose names need none of this pays one scan of the names
 * the kept patterns use (only when the file has such patterns); the others
 * pay, per decision, one pass over each kept pattern that uses their odd
 * name: O(pattern levels + name levels), comparing at most the bytes of the
 * topic or filter asked about.
 *
 * acl_subst_add runs in acl_create; afterwards the list is read-only and
 * any number of threads may call acl_subst_denies. Pure: no system call,
 * no global state.
 */
#include <stdlib.h>
#include <string.h>

#include "acl_internal.h"
#include "codec.h"
#include "invariant.h"

enum acl_subst_kind { SK_LITERAL, SK_PLUS, SK_HASH, SK_PH_U, SK_PH_C };

_Static_assert(TOPIC_LEN_MAX <= UINT16_MAX, "a pattern's length is 16-bit");
_Static_assert(TOPIC_LEVELS_MAX <= UINT8_MAX, "placeholder counts are 8-bit");
_Static_assert(ACL_RULES_MAX <= UINT32_MAX / TOPIC_LEVELS_MAX,
               "a rule's first level is a 32-bit index");

/* ------------------------------------------------------------------ */
/* Building                                                            */
/* ------------------------------------------------------------------ */

static bool is_level(const uint8_t *s, size_t n, const char *what)
{
    size_t w = strlen(what);
    return n == w && memcmp(s, what, w) == 0;
}

static enum acl_subst_kind pattern_kind(const uint8_t *l, size_t n)
{
    if (is_level(l, n, "+"))
        return SK_PLUS;
    if (is_level(l, n, "#"))
        return SK_HASH;
    if (is_level(l, n, "%u"))
        return SK_PH_U;
    if (is_level(l, n, "%c"))
        return SK_PH_C;
    return SK_LITERAL;
}

/* p (of *cap elements of size sz) with room for need of them, or NULL
 * when out of memory (p is then as it was). */
static void *grow(void *p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * sz);
    if (q)
        *cap = c;
    return q;
}

/* Room for one more rule of nlevels levels and n bytes; false when out of
 * memory. */
static bool room(struct acl_subst *s, size_t nlevels, size_t n)
{
    if (s->text_len + n > UINT32_MAX)
        return false;
    struct acl_subst_rule *rules = grow(s->rules, &s->cap, s->count + 1, sizeof(*rules));
    if (!rules)
        return false;
    s->rules = rules;
    struct acl_subst_level *levels =
        grow(s->levels, &s->levels_cap, s->nlevels + nlevels, sizeof(*levels));
    if (!levels)
        return false;
    s->levels = levels;
    uint8_t *text = grow(s->text, &s->text_cap, s->text_len + n, 1);
    if (!text)
        return false;
    s->text = text;
    return true;
}

int acl_subst_add(struct acl_subst *s, const uint8_t *f, size_t n)
{
    ASSERT(n > 0 && n <= TOPIC_LEN_MAX);
    struct acl_subst_rule r = {.first = (uint32_t)s->nlevels, .text_len = (uint16_t)n};
    for (size_t start = 0, end;; start = end + 1) {
        const uint8_t *slash = memchr(f + start, '/', n - start);
        end = slash ? (size_t)(slash - f) : n;
        enum acl_subst_kind k = pattern_kind(f + start, end - start);
        if (k == SK_PH_U || k == SK_PH_C) {
            int ph = k == SK_PH_U ? ACL_PH_U : ACL_PH_C;
            r.need |= k == SK_PH_U ? ACL_NEED_U : ACL_NEED_C;
            r.uses[ph]++;
        }
        r.nlevels++;
        if (end == n)
            break;
    }
    ASSERT(r.nlevels <= TOPIC_LEVELS_MAX);
    if (r.need == 0)
        return 0;
    if (!room(s, r.nlevels, n))
        return -1;
    uint32_t base = (uint32_t)s->text_len;
    memcpy(s->text + base, f, n);
    s->text_len += n;
    for (size_t start = 0, end;; start = end + 1) {
        const uint8_t *slash = memchr(f + start, '/', n - start);
        end = slash ? (size_t)(slash - f) : n;
        s->levels[s->nlevels++] = (struct acl_subst_level){
            .off = base + (uint32_t)start,
            .len = (uint16_t)(end - start),
            .kind = (uint8_t)pattern_kind(f + start, end - start),
        };
        if (end == n)
            break;
    }
    s->rules[s->count++] = r;
    s->need |= r.need;
    return 0;
}

void acl_subst_fini(struct acl_subst *s)
{
    free(s->rules);
    free(s->levels);
    free(s->text);
    memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------ */
/* A client's names                                                    */
/* ------------------------------------------------------------------ */

/* One level of a substituted filter: a view into the pattern or a name. */
struct seg {
    const uint8_t *p;
    uint32_t len;
    uint8_t kind; /* SK_LITERAL, SK_PLUS or SK_HASH */
};

/* One of the client's names as the kept patterns see it. */
struct name {
    const uint8_t *p; /* never NULL: "" for an empty name */
    size_t len;
    bool has;      /* the client has it: without a username, no %u pattern applies */
    bool odd;      /* it must be substituted as text (the tries cannot use it) */
    bool unusable; /* it cannot be: a NUL, not UTF-8, or over a bound alone */
    uint32_t nlevels;
    struct seg *lv; /* its levels, once name_levels ran */
};

/* Is the name one the tries fill a placeholder with, for denies too? Only
 * a non-empty level without '/', '+', '#' or NUL, valid UTF-8, not starting
 * with '$' (the tries never match a first-level placeholder against a '$'
 * topic; substituted, "$x/secret" does match "$x/secret"). One pass over
 * the name's bytes: all a client with ordinary names pays here. */
static void name_classify(struct name *nm)
{
    nm->odd = nm->len == 0 || nm->len > TOPIC_LEN_MAX || nm->p[0] == '$';
    nm->unusable = nm->len > TOPIC_LEN_MAX;
    bool high = false;
    for (size_t i = 0; i < nm->len && !nm->unusable; i++) {
        uint8_t c = nm->p[i];
        if (c >= 0x80)
            high = true;
        else if (c == '/' || c == '+' || c == '#' || c == 0)
            nm->odd = true;
        if (c == 0)
            nm->unusable = true;
    }
    if (high && !nm->unusable && !codec_utf8_valid(nm->p, nm->len))
        nm->odd = nm->unusable = true;
}

/* A level of a name as a level of a filter: one holding '#' is `#`, one
 * holding '+' is `+` (either way it denies at least what the text could). */
static enum acl_subst_kind name_level_kind(const uint8_t *l, size_t n)
{
    if (n > 0 && memchr(l, '#', n))
        return SK_HASH;
    if (n > 0 && memchr(l, '+', n))
        return SK_PLUS;
    return SK_LITERAL;
}

/* Cuts a usable name into levels, into lv[TOPIC_LEVELS_MAX]; more levels
 * than that make it unusable (no pattern using it would fit). */
static void name_levels(struct name *nm, struct seg *lv)
{
    nm->lv = lv;
    nm->nlevels = 0;
    for (size_t start = 0, end;; start = end + 1) {
        const uint8_t *slash = start < nm->len ? memchr(nm->p + start, '/', nm->len - start) : NULL;
        end = slash ? (size_t)(slash - nm->p) : nm->len;
        if (nm->nlevels == TOPIC_LEVELS_MAX) {
            nm->unusable = true;
            return;
        }
        lv[nm->nlevels++] = (struct seg){nm->p + start, (uint32_t)(end - start),
                                         (uint8_t)name_level_kind(nm->p + start, end - start)};
        if (end == nm->len)
            return;
    }
}

/* ------------------------------------------------------------------ */
/* Substituting and testing                                            */
/* ------------------------------------------------------------------ */

/* The rule with the names filled in, into d[0..*nd): false when it would
 * be longer than TOPIC_LEN_MAX bytes or TOPIC_LEVELS_MAX levels. A `#`
 * ends it: what follows could only narrow what it matches. */
static bool substitute(const struct acl_subst *s, const struct acl_subst_rule *r,
                       const struct name nm[2], struct seg *d, uint32_t *nd)
{
    size_t bytes = r->text_len, levels = r->nlevels;
    for (int k = ACL_PH_U; k <= ACL_PH_C; k++) {
        if (r->uses[k] == 0)
            continue;
        ASSERT(nm[k].has && !nm[k].unusable && nm[k].nlevels >= 1);
        bytes = bytes - 2u * r->uses[k] + r->uses[k] * nm[k].len; /* "%u" is 2 bytes */
        levels += r->uses[k] * (nm[k].nlevels - 1u);
    }
    if (bytes > TOPIC_LEN_MAX || levels > TOPIC_LEVELS_MAX)
        return false;
    uint32_t n = 0;
    bool ended = false; /* by a `#` */
    for (uint32_t i = 0; i < r->nlevels && !ended; i++) {
        const struct acl_subst_level *l = &s->levels[r->first + i];
        if (l->kind == SK_PH_U || l->kind == SK_PH_C) {
            const struct name *m = &nm[l->kind == SK_PH_U ? ACL_PH_U : ACL_PH_C];
            for (uint32_t j = 0; j < m->nlevels && !ended; j++) {
                d[n++] = m->lv[j];
                ended = m->lv[j].kind == SK_HASH;
            }
        } else {
            d[n++] = (struct seg){s->text + l->off, l->len, l->kind};
            ended = l->kind == SK_HASH;
        }
    }
    ASSERT(n >= 1 && n <= levels);
    *nd = n;
    return true;
}

static enum acl_subst_kind lv_kind(const struct acl_levels *l, uint32_t i)
{
    if (l->len[i] == 1 && l->s[l->off[i]] == '+')
        return SK_PLUS;
    if (l->len[i] == 1 && l->s[l->off[i]] == '#')
        return SK_HASH;
    return SK_LITERAL;
}

static bool lv_eq(const struct seg *d, const struct acl_levels *l, uint32_t i)
{
    return d->len == l->len[i] && (d->len == 0 || memcmp(d->p, l->s + l->off[i], d->len) == 0);
}

static bool seg_dollar(const struct seg *d)
{
    return d[0].kind == SK_LITERAL && d[0].len > 0 && d[0].p[0] == '$';
}

/* topic_match's answer for filter d and topic name t [MQTT-4.7.2-1]. */
static bool seg_match(const struct seg *d, uint32_t nd, const struct acl_levels *t)
{
    for (uint32_t i = 0;; i++) {
        if (i < nd && d[i].kind == SK_HASH)
            return !(i == 0 && t->dollar);
        if (i == nd || i == t->n)
            return i == nd && i == t->n;
        if (d[i].kind == SK_PLUS) {
            if (i == 0 && t->dollar)
                return false;
        } else if (!lv_eq(&d[i], t, i)) {
            return false;
        }
    }
}

/* Does d match every topic filter f matches? Only `#` covers `#`, only `+`
 * or `#` cover `+`; acl.c's walk_cover for one rule. */
static bool seg_covers(const struct seg *d, uint32_t nd, const struct acl_levels *f)
{
    for (uint32_t i = 0;; i++) {
        if (i < nd && d[i].kind == SK_HASH)
            return !(i == 0 && f->dollar);
        if (i == f->n || i == nd)
            return i == f->n && i == nd;
        enum acl_subst_kind fk = lv_kind(f, i);
        if (fk == SK_HASH || (fk == SK_PLUS && d[i].kind != SK_PLUS))
            return false;
        if (fk == SK_PLUS)
            continue;
        if (d[i].kind == SK_PLUS) {
            if (i == 0 && f->dollar)
                return false;
        } else if (!lv_eq(&d[i], f, i)) {
            return false;
        }
    }
}

/* Does some topic match both d and filter f? */
static bool seg_meets(const struct seg *d, uint32_t nd, const struct acl_levels *f)
{
    for (uint32_t i = 0;; i++) {
        if (i == nd && i == f->n)
            return true;
        if (i < nd && d[i].kind == SK_HASH)
            return !(i == 0 && f->dollar);
        if (i < f->n && lv_kind(f, i) == SK_HASH)
            return !(i == 0 && seg_dollar(d));
        if (i == nd || i == f->n)
            return false;
        bool dp = d[i].kind == SK_PLUS, fp = lv_kind(f, i) == SK_PLUS;
        if (dp && fp)
            continue;
        if (dp || fp) {
            if (i == 0 && (dp ? f->dollar : seg_dollar(d)))
                return false;
            continue;
        }
        if (!lv_eq(&d[i], f, i))
            return false;
    }
}

/* Does a rule that applies through an odd name deny (see acl_subst_denies)?
 * Kept out of line: its frame holds a substituted filter. */
__attribute__((noinline)) static bool odd_denies(const struct acl_subst *s, struct name nm[2],
                                                 const struct acl_levels *l,
                                                 enum acl_subst_test test)
{
    struct seg lv[2][TOPIC_LEVELS_MAX], d[TOPIC_LEVELS_MAX];
    for (int k = ACL_PH_U; k <= ACL_PH_C; k++)
        if (nm[k].has && !nm[k].unusable)
            name_levels(&nm[k], lv[k]);
    for (size_t i = 0; i < s->count; i++) {
        const struct acl_subst_rule *r = &s->rules[i];
        if ((r->need & ACL_NEED_U) && !nm[ACL_PH_U].has)
            continue; /* no username: no %u pattern, as in mosquitto */
        bool odd_u = (r->need & ACL_NEED_U) && nm[ACL_PH_U].odd;
        bool odd_c = (r->need & ACL_NEED_C) && nm[ACL_PH_C].odd;
        if (!odd_u && !odd_c)
            continue; /* the tries apply it */
        if (((r->need & ACL_NEED_U) && nm[ACL_PH_U].unusable) ||
            ((r->need & ACL_NEED_C) && nm[ACL_PH_C].unusable))
            return true;
        uint32_t nd;
        if (!substitute(s, r, nm, d, &nd))
            return true;
        bool hit = test == ACL_SUBST_MATCH   ? seg_match(d, nd, l)
                   : test == ACL_SUBST_COVER ? seg_covers(d, nd, l)
                                             : seg_meets(d, nd, l);
        if (hit)
            return true;
    }
    return false;
}

bool acl_subst_denies(const struct acl_subst *s, const struct acl_who *who,
                      const struct acl_levels *l, enum acl_subst_test test)
{
    ASSERT(who && l);
    if (s->need == 0)
        return false;
    struct name nm[2] = {
        {.p = who->username,
         .len = who->username_len,
         .has = who->has_username && (s->need & ACL_NEED_U)},
        {.p = who->client_id, .len = who->client_id_len, .has = (s->need & ACL_NEED_C) != 0},
    };
    _Static_assert(ACL_PH_U == 0 && ACL_PH_C == 1, "nm[] is indexed by placeholder");
    bool any = false;
    for (int k = ACL_PH_U; k <= ACL_PH_C; k++) {
        if (nm[k].len == 0)
            nm[k].p = (const uint8_t *)"";
        if (nm[k].has)
            name_classify(&nm[k]);
        any |= nm[k].has && nm[k].odd;
    }
    return any && odd_denies(s, nm, l, test);
}
