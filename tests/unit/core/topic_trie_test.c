/*
 * core/topic_trie.c: insert, replace, remove, matching with wildcards, the
 * '$' rule and share groups, the large-node paths (many siblings, many owners
 * on one filter), and a randomized comparison against topic_match().
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "topic.h"
#include "topic_trie.h"

#define U(s) ((const uint8_t *)(s))

struct hit {
    void *owner;
    uint64_t opts;
    char group[32];
};

struct hits {
    struct hit *v;
    size_t n;
    size_t cap;
};

static void collect(void *ctx, void *owner, uint64_t opts, const uint8_t *group, size_t glen)
{
    struct hits *h = ctx;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = realloc(h->v, h->cap * sizeof(h->v[0]));
        cr_assert_not_null(h->v);
    }
    struct hit *x = &h->v[h->n++];
    x->owner = owner;
    x->opts = opts;
    cr_assert_lt(glen, sizeof(x->group));
    if (glen > 0)
        memcpy(x->group, group, glen);
    x->group[glen] = 0;
}

static void hits_reset(struct hits *h)
{
    h->n = 0;
}

static void hits_free(struct hits *h)
{
    free(h->v);
    *h = (struct hits){0};
}

static struct trie *t;
static struct hits hits;

static void setup(void)
{
    t = trie_create();
    cr_assert_not_null(t);
    hits = (struct hits){0};
}

static void teardown(void)
{
    trie_destroy(t);
    hits_free(&hits);
}

TestSuite(topic_trie, .init = setup, .fini = teardown);

static int ins(const char *f, void *owner, uint64_t opts)
{
    return trie_insert(t, U(f), strlen(f), NULL, 0, owner, opts);
}

static int ins_g(const char *f, const char *g, void *owner, uint64_t opts)
{
    return trie_insert(t, U(f), strlen(f), U(g), strlen(g), owner, opts);
}

static int rem(const char *f, void *owner)
{
    return trie_remove(t, U(f), strlen(f), NULL, 0, owner);
}

static int rem_g(const char *f, const char *g, void *owner)
{
    return trie_remove(t, U(f), strlen(f), U(g), strlen(g), owner);
}

static size_t match(const char *topic)
{
    hits_reset(&hits);
    trie_match(t, U(topic), strlen(topic), collect, &hits);
    return hits.n;
}

static size_t count_owner(void *owner)
{
    size_t c = 0;
    for (size_t i = 0; i < hits.n; i++)
        c += hits.v[i].owner == owner;
    return c;
}

static size_t fcount(const char *f)
{
    return trie_filter_count(t, U(f), strlen(f));
}

static int A, B, C, D;

Test(topic_trie, empty_matches_nothing)
{
    cr_assert_eq(match("a/b"), 0);
    cr_assert_eq(trie_size(t), 0);
    cr_assert_eq(fcount("a/b"), 0);
    cr_assert_eq(fcount("#"), 0);
}

Test(topic_trie, insert_then_match_exact)
{
    cr_assert_eq(ins("sport/tennis", &A, 7), 0);
    cr_assert_eq(match("sport/tennis"), 1);
    cr_assert_eq(hits.v[0].owner, &A);
    cr_assert_eq(hits.v[0].opts, 7);
    cr_assert_str_empty(hits.v[0].group);
    cr_assert_eq(match("sport"), 0);
    cr_assert_eq(match("sport/tennis/x"), 0);
    cr_assert_eq(match("sport/tenni"), 0);
    cr_assert_eq(trie_size(t), 1);
    cr_assert_eq(fcount("sport/tennis"), 1);
    cr_assert_eq(fcount("sport"), 0);
}

Test(topic_trie, insert_same_owner_replaces_opts)
{
    cr_assert_eq(ins("a/+", &A, 1), 0);
    cr_assert_eq(ins("a/+", &A, 2), 1);
    cr_assert_eq(trie_size(t), 1);
    cr_assert_eq(match("a/b"), 1);
    cr_assert_eq(hits.v[0].opts, 2);
}

Test(topic_trie, several_owners_same_filter)
{
    cr_assert_eq(ins("a/b", &A, 1), 0);
    cr_assert_eq(ins("a/b", &B, 2), 0);
    cr_assert_eq(ins("a/b", &C, 3), 0);
    cr_assert_eq(fcount("a/b"), 3);
    cr_assert_eq(match("a/b"), 3);
    cr_assert_eq(count_owner(&A), 1);
    cr_assert_eq(count_owner(&B), 1);
    cr_assert_eq(count_owner(&C), 1);
    cr_assert_eq(rem("a/b", &B), 0);
    cr_assert_eq(match("a/b"), 2);
    cr_assert_eq(count_owner(&B), 0);
    cr_assert_eq(fcount("a/b"), 2);
}

Test(topic_trie, overlapping_filters_reported_once_each)
{
    const char *fs[] = {
        "#",     "sport/#",    "sport/tennis/#", "sport/tennis/player1", "sport/+/player1",
        "+/+/+", "+/tennis/#", "sport/tennis/+"};
    for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
        cr_assert_eq(ins(fs[i], &A, i), 0);
    cr_assert_eq(match("sport/tennis/player1"), 8);
    uint64_t seen = 0;
    for (size_t i = 0; i < hits.n; i++) {
        cr_assert((seen & (1ull << hits.v[i].opts)) == 0, "reported twice");
        seen |= 1ull << hits.v[i].opts;
    }
    cr_assert_eq(seen, 0xff);
    cr_assert_eq(match("sport/tennis"), 4); /* #, sport/#, sport/tennis/#, +/tennis/# */
    cr_assert_eq(match("sport"), 2);        /* #, sport/# */
    cr_assert_eq(match("x/y/z"), 2);        /* #, +/+/+ */
}

Test(topic_trie, plus_matches_exactly_one_level)
{
    ins("a/+/c", &A, 0);
    cr_assert_eq(match("a/b/c"), 1);
    cr_assert_eq(match("a//c"), 1);
    cr_assert_eq(match("a/c"), 0);
    cr_assert_eq(match("a/b/b/c"), 0);
    cr_assert_eq(match("a/b/c/d"), 0);
    ins("+", &B, 0);
    cr_assert_eq(match("x"), 1);
    cr_assert_eq(match("/x"), 0);
    ins("+/+", &C, 0);
    cr_assert_eq(match("/finance"), 1);
    ins("/+", &D, 0);
    cr_assert_eq(match("/finance"), 2);
}

Test(topic_trie, hash_matches_parent_and_below)
{
    ins("sport/tennis/player1/#", &A, 0);
    cr_assert_eq(match("sport/tennis/player1"), 1);
    cr_assert_eq(match("sport/tennis/player1/ranking"), 1);
    cr_assert_eq(match("sport/tennis/player1/score/wimbledon"), 1);
    cr_assert_eq(match("sport/tennis"), 0);
    cr_assert_eq(match("sport/tennis/player2"), 0);
    ins("+/#", &B, 0);
    cr_assert_eq(match("a"), 1);
    cr_assert_eq(count_owner(&B), 1);
    cr_assert_eq(match("a/b/c"), 1);
    ins("+/+/#", &C, 0);
    cr_assert_eq(match("a"), 1);
    cr_assert_eq(match("a/b"), 2);
    cr_assert_eq(match("/"), 2);
}

Test(topic_trie, dollar_rule)
{
    ins("#", &A, 0);
    ins("+/monitor/Clients", &B, 0);
    ins("$SYS/#", &C, 0);
    ins("$SYS/monitor/+", &D, 0);
    cr_assert_eq(match("$SYS/monitor/Clients"), 2);
    cr_assert_eq(count_owner(&C), 1);
    cr_assert_eq(count_owner(&D), 1);
    cr_assert_eq(match("$SYS"), 1);
    cr_assert_eq(count_owner(&C), 1);
    cr_assert_eq(match("x/monitor/Clients"), 2);
    cr_assert_eq(count_owner(&A), 1);
    cr_assert_eq(count_owner(&B), 1);
    /* Only the first level is special. */
    cr_assert_eq(match("a/$SYS"), 1);
    ins("+", &B, 0);
    cr_assert_eq(match("$x"), 0);
}

Test(topic_trie, groups_are_distinct_subscriptions)
{
    cr_assert_eq(ins("a/b", &A, 1), 0);
    cr_assert_eq(ins_g("a/b", "g1", &A, 2), 0);
    cr_assert_eq(ins_g("a/b", "g2", &A, 3), 0);
    cr_assert_eq(ins_g("a/b", "g1", &B, 4), 0);
    cr_assert_eq(ins_g("a/b", "g1", &A, 5), 1);
    cr_assert_eq(trie_size(t), 4);
    cr_assert_eq(fcount("a/b"), 4);
    cr_assert_eq(match("a/b"), 4);
    int found = 0;
    for (size_t i = 0; i < hits.n; i++) {
        if (hits.v[i].owner == &A && strcmp(hits.v[i].group, "g1") == 0) {
            cr_assert_eq(hits.v[i].opts, 5);
            found++;
        }
        if (hits.v[i].owner == &A && hits.v[i].group[0] == 0)
            cr_assert_eq(hits.v[i].opts, 1);
    }
    cr_assert_eq(found, 1);
    cr_assert_eq(rem_g("a/b", "g3", &A), -ENOENT);
    cr_assert_eq(rem_g("a/b", "g1", &C), -ENOENT);
    cr_assert_eq(rem_g("a/b", "g1", &A), 0);
    cr_assert_eq(rem_g("a/b", "g1", &A), -ENOENT);
    cr_assert_eq(rem("a/b", &A), 0);
    cr_assert_eq(rem("a/b", &A), -ENOENT);
    cr_assert_eq(match("a/b"), 2);
    cr_assert_eq(trie_size(t), 2);
}

Test(topic_trie, remove_missing_is_enoent)
{
    cr_assert_eq(rem("a/b", &A), -ENOENT);
    ins("a/b/c", &A, 0);
    cr_assert_eq(rem("a/b", &A), -ENOENT);   /* an inner node without subscriptions */
    cr_assert_eq(rem("a/b/c", &B), -ENOENT); /* another owner */
    cr_assert_eq(rem("a/+/c", &A), -ENOENT);
    cr_assert_eq(rem("a/b/c/#", &A), -ENOENT);
    cr_assert_eq(rem("a/b/c", &A), 0);
    cr_assert_eq(rem("a/b/c", &A), -ENOENT);
    cr_assert_eq(trie_size(t), 0);
}

Test(topic_trie, remove_keeps_other_filters_on_the_path)
{
    ins("a", &A, 0);
    ins("a/b", &A, 0);
    ins("a/b/c", &A, 0);
    ins("a/#", &A, 0);
    cr_assert_eq(rem("a/b", &A), 0);
    cr_assert_eq(match("a/b/c"), 2);
    cr_assert_eq(rem("a/b/c", &A), 0);
    cr_assert_eq(match("a/b/c"), 1);
    cr_assert_eq(match("a"), 2);
    cr_assert_eq(rem("a", &A), 0);
    cr_assert_eq(match("a"), 1);
    cr_assert_eq(rem("a/#", &A), 0);
    cr_assert_eq(match("a"), 0);
    cr_assert_eq(trie_size(t), 0);
    /* Re-inserting after the path was freed works. */
    cr_assert_eq(ins("a/b/c", &B, 9), 0);
    cr_assert_eq(match("a/b/c"), 1);
}

Test(topic_trie, count_and_size)
{
    ins("a", &A, 0);
    ins("a", &B, 0);
    ins("+", &A, 0);
    ins("#", &A, 0);
    ins_g("#", "g", &A, 0);
    cr_assert_eq(trie_size(t), 5);
    cr_assert_eq(fcount("a"), 2);
    cr_assert_eq(fcount("+"), 1);
    cr_assert_eq(fcount("#"), 2);
    cr_assert_eq(fcount("b"), 0);
    cr_assert_eq(fcount("a/#"), 0);
}

Test(topic_trie, empty_levels)
{
    ins("/", &A, 0);
    ins("//", &B, 0);
    ins("a/", &C, 0);
    cr_assert_eq(match("/"), 1);
    cr_assert_eq(count_owner(&A), 1);
    cr_assert_eq(match("//"), 1);
    cr_assert_eq(count_owner(&B), 1);
    cr_assert_eq(match("a/"), 1);
    cr_assert_eq(match("a"), 0);
}

Test(topic_trie, levels_limit)
{
    char f[TOPIC_LEVELS_MAX * 2 + 1];
    size_t n = 0;
    for (unsigned i = 0; i < TOPIC_LEVELS_MAX; i++) {
        f[n++] = 'x';
        f[n++] = '/';
    }
    f[--n] = 0; /* TOPIC_LEVELS_MAX levels */
    cr_assert_eq(ins(f, &A, 0), 0);
    f[n - 1] = '+';
    cr_assert_eq(ins(f, &B, 0), 0);
    f[n - 1] = '#';
    cr_assert_eq(ins(f, &C, 0), 0);
    f[n - 1] = 'x';
    cr_assert_eq(match(f), 3);
    /* A name over the limit is not valid and matches nothing. */
    char over[TOPIC_LEVELS_MAX * 2 + 3];
    memcpy(over, f, n);
    memcpy(over + n, "/x", 3);
    cr_assert_eq(match(over), 0);
}

/* Thousands of siblings: the child table, growth, shrink and deletion. */
Test(topic_trie, many_siblings)
{
    enum { N = 20000 };
    char buf[64];
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "dev/%d/temp", i);
        cr_assert_eq(ins(buf, &A, (uint64_t)i), 0);
    }
    cr_assert_eq(ins("dev/+/temp", &B, 0), 0);
    cr_assert_eq(trie_size(t), N + 1);
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "dev/%d/temp", i);
        cr_assert_eq(match(buf), 2);
        cr_assert_eq(count_owner(&A), 1);
    }
    /* Remove the odd ones, in a scattered order. */
    for (int k = 0; k < N; k++) {
        int i = (int)(((uint64_t)k * 7919u) % N);
        if (i % 2 == 0)
            continue;
        snprintf(buf, sizeof(buf), "dev/%d/temp", i);
        cr_assert_eq(rem(buf, &A), 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "dev/%d/temp", i);
        cr_assert_eq(match(buf), i % 2 == 0 ? 2 : 1, "topic %s", buf);
        cr_assert_eq(fcount(buf), i % 2 == 0 ? 1u : 0u);
    }
    /* Down to a few: the table shrinks back to an array. */
    for (int i = 0; i < N - 6; i += 2) {
        snprintf(buf, sizeof(buf), "dev/%d/temp", i);
        cr_assert_eq(rem(buf, &A), 0);
    }
    for (int i = N - 6; i < N; i++) {
        snprintf(buf, sizeof(buf), "dev/%d/temp", i);
        cr_assert_eq(match(buf), i % 2 == 0 ? 2 : 1);
    }
    cr_assert_eq(trie_size(t), 4);
}

/* Thousands of owners on one filter: the per-node (owner, group) index. */
Test(topic_trie, many_owners_one_filter)
{
    enum { N = 5000 };
    static char owners[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(ins("alerts/#", &owners[i], (uint64_t)i), 0);
    for (int i = 0; i < N; i += 3)
        cr_assert_eq(ins_g("alerts/#", "g", &owners[i], (uint64_t)i + N), 0);
    size_t total = N + (N + 2) / 3;
    cr_assert_eq(trie_size(t), total);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ins("alerts/#", &owners[i], (uint64_t)i * 2), 1);
    cr_assert_eq(match("alerts/x"), total);
    for (size_t i = 0; i < hits.n; i++) {
        size_t o = (size_t)((char *)hits.v[i].owner - owners);
        if (hits.v[i].group[0] == 0)
            cr_assert_eq(hits.v[i].opts, o * 2);
        else
            cr_assert_eq(hits.v[i].opts, o + N);
    }
    /* Remove in a scattered order, checking the swap-remove keeps the index. */
    size_t left = total;
    for (int k = 0; k < N; k++) {
        int i = (int)(((uint64_t)k * 2741u) % N);
        if (i % 2 == 0)
            continue;
        cr_assert_eq(rem("alerts/#", &owners[i]), 0);
        cr_assert_eq(rem("alerts/#", &owners[i]), -ENOENT);
        left--;
    }
    cr_assert_eq(fcount("alerts/#"), left);
    for (int i = 0; i < N; i++) {
        int r = ins("alerts/#", &owners[i], 1);
        cr_assert_eq(r, i % 2 == 0 ? 1 : 0);
        if (r == 0)
            left++;
    }
    cr_assert_eq(fcount("alerts/#"), left);
    for (int i = 0; i < N; i++)
        cr_assert_eq(rem("alerts/#", &owners[i]), 0);
    for (int i = 0; i < N; i += 3)
        cr_assert_eq(rem_g("alerts/#", "g", &owners[i]), 0);
    cr_assert_eq(trie_size(t), 0);
    cr_assert_eq(match("alerts/x"), 0);
}

/* Randomized: trie_match against topic_match over every filter. */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static const char *const words[] = {"a", "b", "c", "", "$x", "dev", "$SYS", "ab"};
#define WORDS (sizeof(words) / sizeof(words[0]))

static void random_topic(char *out, bool filter)
{
    int levels = 1 + (int)rnd(5);
    out[0] = 0;
    for (int i = 0; i < levels; i++) {
        if (i > 0)
            strcat(out, "/");
        uint32_t r = rnd(10);
        if (filter && r < 2)
            strcat(out, "+");
        else if (filter && r == 2 && i == levels - 1)
            strcat(out, "#");
        else
            strcat(out, words[rnd(WORDS)]);
    }
    if (out[0] == 0) /* a single empty level is not a valid name or filter */
        strcat(out, "a");
}

struct expect {
    char f[64];
    void *owner;
    char group[4];
    uint64_t opts;
    bool live;
};

Test(topic_trie, randomized_against_topic_match)
{
    enum { FILTERS = 3000, TOPICS = 2000 };
    static struct expect subs[FILTERS];
    static char owners[16];
    size_t live = 0;
    for (int i = 0; i < FILTERS; i++) {
        struct expect *e = &subs[i];
        random_topic(e->f, true);
        cr_assert(topic_filter_valid(U(e->f), strlen(e->f)), "%s", e->f);
        e->owner = &owners[rnd(16)];
        if (rnd(4) == 0)
            snprintf(e->group, sizeof(e->group), "g%u", rnd(3));
        else
            e->group[0] = 0;
        e->opts = (uint64_t)i;
        /* A duplicate (filter, group, owner) replaces: the earlier one dies. */
        for (int j = 0; j < i; j++) {
            struct expect *o = &subs[j];
            if (o->live && o->owner == e->owner && strcmp(o->f, e->f) == 0 &&
                strcmp(o->group, e->group) == 0) {
                o->live = false;
                live--;
            }
        }
        int r = ins_g(e->f, e->group, e->owner, e->opts);
        cr_assert(r == 0 || r == 1);
        e->live = true;
        live++;
    }
    /* Remove a third. */
    for (int i = 0; i < FILTERS; i += 3) {
        struct expect *e = &subs[i];
        if (!e->live) /* replaced: its key lives on in a later entry */
            continue;
        cr_assert_eq(rem_g(e->f, e->group, e->owner), 0, "%s", e->f);
        cr_assert_eq(rem_g(e->f, e->group, e->owner), -ENOENT, "%s", e->f);
        live--;
        e->live = false;
    }
    cr_assert_eq(trie_size(t), live);

    char topic[64];
    for (int k = 0; k < TOPICS; k++) {
        random_topic(topic, false);
        match(topic);
        size_t want = 0;
        for (int i = 0; i < FILTERS; i++) {
            struct expect *e = &subs[i];
            if (!e->live || !topic_match(U(e->f), strlen(e->f), U(topic), strlen(topic)))
                continue;
            want++;
            size_t seen = 0;
            for (size_t h = 0; h < hits.n; h++) {
                if (hits.v[h].opts == e->opts) {
                    cr_assert_eq(hits.v[h].owner, e->owner);
                    cr_assert_str_eq(hits.v[h].group, e->group);
                    seen++;
                }
            }
            cr_assert_eq(seen, 1, "filter %s topic %s seen %zu", e->f, topic, seen);
        }
        cr_assert_eq(hits.n, want, "topic %s: %zu hits, want %zu", topic, hits.n, want);
    }
}
