/*
 * libFuzzer target for topic names and filters (core/topic.c) and the three
 * level trees built on core/topic_tree.c: the subscription trie, the route
 * replica and the retained store. The input is a program of operations on
 * one of each, with topic strings drawn from a small alphabet of levels and
 * wildcards (so collisions, '$' names, shared filters and wide levels that
 * switch a node to its hash table are common), and raw bytes now and then.
 *
 * Checked against reference code written here from section 4.7 level by
 * level, deliberately unlike topic.c's byte scanner:
 *  - topic_name_valid, topic_filter_valid, topic_has_wildcard and
 *    topic_shared_split agree with the reference on every string;
 *  - topic_match agrees with the reference matcher on every pair;
 *  - trie_insert/trie_remove return what the model of (filter, group,
 *    owner) subscriptions says, trie_size and trie_filter_count agree, and
 *    trie_match reports exactly the model's subscriptions whose filter
 *    matches the name, each once, with its group and opts;
 *  - route_match is the OR of the shards of the model's matching filters,
 *    route_size the number of filters with a shard;
 *  - retain_set / retain_set_bounded store, replace, delete and refuse as
 *    retain.h says, retain_count and retain_bytes agree, and retain_match
 *    reports exactly the stored messages whose name the filter matches;
 *  - everything is freed at the end (the leak check).
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "fuzz_input.h"
#include "limits.h"
#include "message.h"
#include "retain.h"
#include "route.h"
#include "topic.h"
#include "topic_trie.h"

#define STR_MAX     512u /* generated strings; long enough for 129 levels */
#define SUBS_MAX    256u
#define ROUTES_MAX  128u
#define RETAIN_MAX  128u
#define MSGS_MAX    256u
#define OWNERS      24u
#define TOKENS_STEP 64u /* tokens in one generated string */

/* ---- Reference code: split into levels first, then decide per level. ---- */

struct levels {
    size_t n;
    const uint8_t *p[STR_MAX + 1];
    size_t len[STR_MAX + 1];
};

static void split(const uint8_t *s, size_t len, struct levels *lv)
{
    lv->n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            lv->p[lv->n] = s + start;
            lv->len[lv->n] = i - start;
            lv->n++;
            start = i + 1;
        }
    }
}

static bool level_is(const struct levels *lv, size_t i, const char *lit)
{
    size_t n = strlen(lit);
    return lv->len[i] == n && memcmp(lv->p[i], lit, n) == 0;
}

static bool has_byte(const uint8_t *s, size_t len, uint8_t c)
{
    return len > 0 && memchr(s, c, len) != NULL;
}

static struct levels lv_a, lv_b;

static bool ref_name_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || len > TOPIC_LEN_MAX || has_byte(s, len, '+') || has_byte(s, len, '#') ||
        has_byte(s, len, 0))
        return false;
    split(s, len, &lv_a);
    return lv_a.n <= TOPIC_LEVELS_MAX;
}

static bool ref_plain_filter_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || len > TOPIC_LEN_MAX || has_byte(s, len, 0))
        return false;
    split(s, len, &lv_a);
    if (lv_a.n > TOPIC_LEVELS_MAX)
        return false;
    for (size_t i = 0; i < lv_a.n; i++) {
        bool wild = has_byte(lv_a.p[i], lv_a.len[i], '+') || has_byte(lv_a.p[i], lv_a.len[i], '#');
        if (!wild)
            continue;
        if (level_is(&lv_a, i, "+"))
            continue;
        if (level_is(&lv_a, i, "#") && i + 1 == lv_a.n)
            continue;
        return false;
    }
    return true;
}

/* "$share/" group "/" filter, the group non-empty without '/', '+', '#'. */
static bool ref_shared(const uint8_t *s, size_t len, size_t *glen)
{
    if (len < 7 || memcmp(s, "$share/", 7) != 0)
        return false;
    const uint8_t *slash = memchr(s + 7, '/', len - 7);
    *glen = slash ? (size_t)(slash - (s + 7)) : len - 7;
    return true;
}

static bool ref_filter_valid(const uint8_t *s, size_t len)
{
    size_t glen;
    if (len == 0 || len > TOPIC_LEN_MAX)
        return false;
    if (!ref_shared(s, len, &glen))
        return ref_plain_filter_valid(s, len);
    const uint8_t *g = s + 7;
    if (glen == 0 || 7 + glen == len || has_byte(g, glen, '+') || has_byte(g, glen, '#') ||
        has_byte(g, glen, 0))
        return false;
    return ref_plain_filter_valid(g + glen + 1, len - 7 - glen - 1);
}

static bool ref_match(const uint8_t *f, size_t flen, const uint8_t *n, size_t nlen)
{
    if (flen == 0 || nlen == 0)
        return false;
    split(f, flen, &lv_a);
    split(n, nlen, &lv_b);
    /* [MQTT-4.7.2-1] */
    if (n[0] == '$' && (level_is(&lv_a, 0, "+") || level_is(&lv_a, 0, "#")))
        return false;
    size_t j = 0;
    for (size_t i = 0;; i++) {
        if (i == lv_a.n)
            return j == lv_b.n;
        if (level_is(&lv_a, i, "#"))
            return true; /* this level and all below, the parent included */
        if (j == lv_b.n)
            return false;
        if (!level_is(&lv_a, i, "+") &&
            (lv_a.len[i] != lv_b.len[j] || memcmp(lv_a.p[i], lv_b.p[j], lv_a.len[i]) != 0))
            return false;
        j++;
    }
}

/* ---- Generated strings. ---- */

struct str {
    uint8_t b[STR_MAX];
    size_t len;
};

static const char *const tokens[32] = {
    "a",  "b",  "c",  "d",  "e",  "f",       "g",     "h",
    "i",  "j",  "k",  "l",  "/",  "/",       "/",     "/",
    "+",  "+",  "#",  "#",  "$",  "$share/", "$SYS/", "\xc3\xa9",
    "ab", "ba", "aa", "/a", "a/", "g/",      "",      "////////////////",
};

static void gen(struct fuzz_in *in, struct str *s)
{
    s->len = 0;
    uint32_t n = in_u8(in) % TOKENS_STEP;
    for (uint32_t i = 0; i < n && !in_done(in); i++) {
        uint8_t b = in_u8(in);
        if (b >= 0xF0) {
            if (s->len < STR_MAX)
                s->b[s->len++] = in_u8(in);
            continue;
        }
        const char *t = tokens[b % 32];
        size_t tl = strlen(t);
        if (s->len + tl > STR_MAX)
            break;
        memcpy(s->b + s->len, t, tl);
        s->len += tl;
    }
}

/* ---- The model. ---- */

struct sub {
    struct str inner;
    struct str group; /* len 0: not shared */
    uint32_t owner;
    uint64_t opts;
    bool seen;
};

struct route_entry {
    struct str filter;
    unsigned shard;
};

struct retained {
    struct str name;
    struct msg *m;
    bool seen;
};

static struct world {
    struct trie *trie;
    struct route *route;
    struct retain *retain;
    struct sub subs[SUBS_MAX];
    uint32_t nsubs;
    struct route_entry routes[ROUTES_MAX];
    uint32_t nroutes;
    struct retained ret[RETAIN_MAX];
    uint32_t nret;
    struct msg *msgs[MSGS_MAX]; /* every message built, one reference each */
    uint32_t nmsgs;
    struct str name; /* of the match in progress */
} w;

static uint8_t owners[OWNERS];

static bool str_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Every string the fuzzer makes goes through the validators. */
static void check_validators(const struct str *s)
{
    bool nv = topic_name_valid(s->b, s->len);
    CHECK(nv == ref_name_valid(s->b, s->len));
    bool fv = topic_filter_valid(s->b, s->len);
    CHECK(fv == ref_filter_valid(s->b, s->len));
    CHECK(topic_has_wildcard(s->b, s->len) ==
          (has_byte(s->b, s->len, '+') || has_byte(s->b, s->len, '#')));
    if (!fv)
        return;
    size_t glen;
    bool shared = ref_shared(s->b, s->len, &glen);
    const uint8_t *g = NULL, *inner = NULL;
    size_t gl = 0, il = 0;
    CHECK(topic_shared_split(s->b, s->len, &g, &gl, &inner, &il) == shared);
    if (shared) {
        CHECK(g == s->b + 7 && gl == glen);
        CHECK(inner == g + gl + 1 && il == s->len - 7 - gl - 1);
    }
}

/* A valid filter, split as the broker does; false if s is not one. */
static bool as_sub(const struct str *s, struct str *group, struct str *inner)
{
    if (!topic_filter_valid(s->b, s->len))
        return false;
    const uint8_t *g, *f;
    size_t gl, fl;
    group->len = 0;
    if (topic_shared_split(s->b, s->len, &g, &gl, &f, &fl)) {
        memcpy(group->b, g, gl);
        group->len = gl;
    } else {
        f = s->b;
        fl = s->len;
    }
    memmove(inner->b, f, fl);
    inner->len = fl;
    return true;
}

static int sub_find(const struct str *inner, const struct str *group, uint32_t owner)
{
    for (uint32_t i = 0; i < w.nsubs; i++) {
        const struct sub *s = &w.subs[i];
        if (s->owner == owner && str_eq(s->inner.b, s->inner.len, inner->b, inner->len) &&
            str_eq(s->group.b, s->group.len, group->b, group->len))
            return (int)i;
    }
    return -1;
}

static size_t subs_on(const struct str *inner)
{
    size_t n = 0;
    for (uint32_t i = 0; i < w.nsubs; i++)
        n += str_eq(w.subs[i].inner.b, w.subs[i].inner.len, inner->b, inner->len);
    return n;
}

static struct str tmp, tmp_group, tmp_inner;

static void op_subscribe(struct fuzz_in *in)
{
    gen(in, &tmp);
    check_validators(&tmp);
    uint32_t owner = in_u8(in) % OWNERS;
    uint64_t opts = in_u8(in);
    if (!as_sub(&tmp, &tmp_group, &tmp_inner))
        return;
    int k = sub_find(&tmp_inner, &tmp_group, owner);
    if (k < 0 && w.nsubs == SUBS_MAX)
        return;
    int r = trie_insert(w.trie, tmp_inner.b, tmp_inner.len, tmp_group.b, tmp_group.len,
                        &owners[owner], opts);
    if (k >= 0) {
        CHECK(r == 1);
        w.subs[k].opts = opts;
    } else {
        CHECK(r == 0);
        struct sub *s = &w.subs[w.nsubs++];
        s->inner = tmp_inner;
        s->group = tmp_group;
        s->owner = owner;
        s->opts = opts;
    }
    CHECK(trie_filter_count(w.trie, tmp_inner.b, tmp_inner.len) == subs_on(&tmp_inner));
}

static void op_unsubscribe(struct fuzz_in *in)
{
    uint8_t b = in_u8(in);
    struct str *inner, *group;
    uint32_t owner;
    if (w.nsubs > 0 && (b & 1)) {
        const struct sub *s = &w.subs[in_u8(in) % w.nsubs];
        tmp_inner = s->inner;
        tmp_group = s->group;
        owner = (b & 2) ? (uint32_t)(b >> 2) % OWNERS : s->owner;
    } else {
        gen(in, &tmp);
        check_validators(&tmp);
        owner = in_u8(in) % OWNERS;
        if (!as_sub(&tmp, &tmp_group, &tmp_inner))
            return;
    }
    inner = &tmp_inner;
    group = &tmp_group;
    int k = sub_find(inner, group, owner);
    int r = trie_remove(w.trie, inner->b, inner->len, group->b, group->len, &owners[owner]);
    if (k < 0) {
        CHECK(r == -ENOENT);
        return;
    }
    CHECK(r == 0);
    w.subs[k] = w.subs[--w.nsubs];
    CHECK(trie_filter_count(w.trie, inner->b, inner->len) == subs_on(inner));
}

static void on_trie_match(void *ctx, void *owner, uint64_t opts, const uint8_t *group, size_t glen)
{
    (void)ctx;
    CHECK((uint8_t *)owner >= owners && (uint8_t *)owner < owners + OWNERS);
    uint32_t o = (uint32_t)((uint8_t *)owner - owners);
    for (uint32_t i = 0; i < w.nsubs; i++) {
        struct sub *s = &w.subs[i];
        if (s->seen || s->owner != o || s->opts != opts ||
            !str_eq(s->group.b, s->group.len, group, glen))
            continue;
        if (!ref_match(s->inner.b, s->inner.len, w.name.b, w.name.len))
            continue;
        s->seen = true;
        return;
    }
    CHECK(!"trie_match reported a subscription that does not match, or one twice");
}

static void on_retain_match(void *ctx, struct msg *m)
{
    const struct str *filter = ctx;
    for (uint32_t i = 0; i < w.nret; i++) {
        struct retained *r = &w.ret[i];
        if (r->m != m)
            continue;
        CHECK(!r->seen);
        CHECK(ref_match(filter->b, filter->len, r->name.b, r->name.len));
        r->seen = true;
        return;
    }
    CHECK(!"retain_match reported a message that is not stored");
}

static void op_match(struct fuzz_in *in)
{
    gen(in, &w.name);
    check_validators(&w.name);
    /* A filter against the name, both any strings the validators pass. */
    gen(in, &tmp);
    check_validators(&tmp);
    if (topic_filter_valid(tmp.b, tmp.len) && topic_name_valid(w.name.b, w.name.len) &&
        !topic_shared_split(tmp.b, tmp.len, &(const uint8_t *){0}, &(size_t){0},
                            &(const uint8_t *){0}, &(size_t){0}))
        CHECK(topic_match(tmp.b, tmp.len, w.name.b, w.name.len) ==
              ref_match(tmp.b, tmp.len, w.name.b, w.name.len));
    if (!topic_name_valid(w.name.b, w.name.len))
        return;

    for (uint32_t i = 0; i < w.nsubs; i++)
        w.subs[i].seen = false;
    trie_match(w.trie, w.name.b, w.name.len, on_trie_match, NULL);
    for (uint32_t i = 0; i < w.nsubs; i++) {
        const struct sub *s = &w.subs[i];
        CHECK(s->seen == ref_match(s->inner.b, s->inner.len, w.name.b, w.name.len));
        CHECK(topic_match(s->inner.b, s->inner.len, w.name.b, w.name.len) == s->seen);
    }

    uint64_t mask = 0;
    for (uint32_t i = 0; i < w.nroutes; i++)
        if (ref_match(w.routes[i].filter.b, w.routes[i].filter.len, w.name.b, w.name.len))
            mask |= 1ull << w.routes[i].shard;
    CHECK(route_match(w.route, w.name.b, w.name.len) == mask);
}

static void op_route(struct fuzz_in *in)
{
    uint8_t b = in_u8(in);
    unsigned shard = (b >> 1) % SHARDS_MAX;
    bool present = b & 1;
    if (w.nroutes > 0 && in_u8(in) < 128) {
        tmp_inner = w.routes[in_u8(in) % w.nroutes].filter;
    } else {
        gen(in, &tmp);
        check_validators(&tmp);
        if (!as_sub(&tmp, &tmp_group, &tmp_inner))
            return;
    }
    uint32_t k = 0;
    while (k < w.nroutes &&
           !(w.routes[k].shard == shard &&
             str_eq(w.routes[k].filter.b, w.routes[k].filter.len, tmp_inner.b, tmp_inner.len)))
        k++;
    if (present && k == w.nroutes && w.nroutes == ROUTES_MAX)
        return;
    CHECK(route_set(w.route, tmp_inner.b, tmp_inner.len, shard, present) == 0);
    if (present && k == w.nroutes)
        w.routes[w.nroutes++] = (struct route_entry){.filter = tmp_inner, .shard = shard};
    else if (!present && k < w.nroutes)
        w.routes[k] = w.routes[--w.nroutes];
}

static bool is_sys(const struct str *s)
{
    return s->len >= 5 && memcmp(s->b, "$SYS/", 5) == 0;
}

static void ret_remove(uint32_t k)
{
    w.ret[k] = w.ret[--w.nret];
}

static void op_retain(struct fuzz_in *in)
{
    gen(in, &tmp);
    check_validators(&tmp);
    uint8_t b = in_u8(in);
    size_t plen = (b & 3) == 0 ? 0 : in_u8(in);
    if (!topic_name_valid(tmp.b, tmp.len) || w.nmsgs == MSGS_MAX)
        return;
    uint32_t k = 0;
    while (k < w.nret && !str_eq(w.ret[k].name.b, w.ret[k].name.len, tmp.b, tmp.len))
        k++;
    if (k == w.nret && w.nret == RETAIN_MAX && plen > 0)
        return;
    uint8_t payload[256];
    memset(payload, 'r', sizeof(payload));
    struct msg *m = msg_create_simple(tmp.b, tmp.len, payload, plen, b >> 6 & 1, true);
    CHECK(m != NULL);
    w.msgs[w.nmsgs++] = m;

    /* Clients never store under $SYS (net/ drops those publishes), so only
     * the broker's plain retain_set is used there. */
    bool bounded = (b & 4) && !is_sys(&tmp);
    size_t count_max = bounded ? in_u8(in) % 8 : 0;
    size_t bytes_max = bounded && (b & 8) ? (size_t)in_u8(in) * 8u : 0;
    int r =
        bounded ? retain_set_bounded(w.retain, m, count_max, bytes_max) : retain_set(w.retain, m);

    if (plen == 0) {
        /* [MQTT-3.3.1-6], [MQTT-3.3.1-7] */
        CHECK(r == 0);
        if (k < w.nret)
            ret_remove(k);
        return;
    }
    if (bounded) {
        size_t count = 0, bytes = 0;
        for (uint32_t i = 0; i < w.nret; i++) {
            if (!is_sys(&w.ret[i].name)) {
                count++;
                bytes += msg_size(w.ret[i].m);
            }
        }
        if (k == w.nret && count_max && count >= count_max) {
            CHECK(r == -ENOSPC);
            return;
        }
        size_t after = bytes - (k < w.nret ? msg_size(w.ret[k].m) : 0) + msg_size(m);
        if (bytes_max && after > bytes_max) {
            /* Refused, and the older message goes too. */
            CHECK(r == -ENOSPC);
            if (k < w.nret)
                ret_remove(k);
            return;
        }
    }
    CHECK(r == 0);
    if (k == w.nret) {
        w.ret[w.nret].name = tmp;
        w.nret++;
    }
    w.ret[k].m = m;
}

static void op_retain_match(struct fuzz_in *in)
{
    gen(in, &tmp);
    check_validators(&tmp);
    if (!topic_filter_valid(tmp.b, tmp.len) ||
        topic_shared_split(tmp.b, tmp.len, &(const uint8_t *){0}, &(size_t){0},
                           &(const uint8_t *){0}, &(size_t){0}))
        return;
    for (uint32_t i = 0; i < w.nret; i++)
        w.ret[i].seen = false;
    retain_match(w.retain, tmp.b, tmp.len, on_retain_match, &tmp);
    for (uint32_t i = 0; i < w.nret; i++)
        CHECK(w.ret[i].seen == ref_match(tmp.b, tmp.len, w.ret[i].name.b, w.ret[i].name.len));
}

static void check_sizes(void)
{
    CHECK(trie_size(w.trie) == w.nsubs);
    size_t filters = 0;
    for (uint32_t i = 0; i < w.nroutes; i++) {
        uint32_t j = 0;
        while (j < i && !str_eq(w.routes[j].filter.b, w.routes[j].filter.len, w.routes[i].filter.b,
                                w.routes[i].filter.len))
            j++;
        filters += j == i;
    }
    CHECK(route_size(w.route) == filters);
    size_t bytes = 0;
    for (uint32_t i = 0; i < w.nret; i++) {
        bytes += msg_size(w.ret[i].m);
        /* Ours and the store's. */
        CHECK(atomic_load(&w.ret[i].m->refs) == 2);
    }
    CHECK(retain_count(w.retain) == w.nret);
    CHECK(retain_bytes(w.retain) == bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    /* The arrays are large: reset the counts, not the contents. */
    w.nsubs = w.nroutes = w.nret = w.nmsgs = 0;
    w.trie = trie_create();
    w.route = route_create();
    w.retain = retain_create();
    CHECK(w.trie && w.route && w.retain);

    while (!in_done(&in)) {
        switch (in_u8(&in) % 8) {
        case 0:
        case 1:
            op_subscribe(&in);
            break;
        case 2:
            op_unsubscribe(&in);
            break;
        case 3:
        case 4:
            op_match(&in);
            break;
        case 5:
            op_route(&in);
            break;
        case 6:
            op_retain(&in);
            break;
        default:
            op_retain_match(&in);
            break;
        }
        check_sizes();
    }

    trie_destroy(w.trie);
    route_destroy(w.route);
    retain_destroy(w.retain);
    for (uint32_t i = 0; i < w.nmsgs; i++) {
        CHECK(atomic_load(&w.msgs[i]->refs) == 1);
        msg_unref(w.msgs[i]);
    }
    return 0;
}
