/*
 * core/route.c: filter -> shard mask, OR'd over every matching filter.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "limits.h"
#include "route.h"
#include "topic.h"

#define U(s) ((const uint8_t *)(s))

static struct route *r;

static void setup(void)
{
    r = route_create();
    cr_assert_not_null(r);
}

static void teardown(void)
{
    route_destroy(r);
}

TestSuite(route, .init = setup, .fini = teardown);

static int set(const char *f, unsigned shard, bool present)
{
    return route_set(r, U(f), strlen(f), shard, present);
}

static uint64_t match(const char *topic)
{
    return route_match(r, U(topic), strlen(topic));
}

Test(route, empty_matches_nothing)
{
    cr_assert_eq(match("a"), 0);
    cr_assert_eq(route_size(r), 0);
}

Test(route, masks_ored_across_overlapping_filters)
{
    cr_assert_eq(set("sport/tennis/player1", 1, true), 0);
    cr_assert_eq(set("sport/#", 2, true), 0);
    cr_assert_eq(set("sport/+/player1", 3, true), 0);
    cr_assert_eq(set("#", 4, true), 0);
    cr_assert_eq(set("sport/tennis/player1", 5, true), 0);
    cr_assert_eq(route_size(r), 4);
    cr_assert_eq(match("sport/tennis/player1"),
                 (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5));
    cr_assert_eq(match("sport/golf/player1"), (1u << 2) | (1u << 3) | (1u << 4));
    cr_assert_eq(match("sport"), (1u << 2) | (1u << 4));
    cr_assert_eq(match("news"), 1u << 4);
}

Test(route, set_and_clear_idempotent)
{
    cr_assert_eq(set("a/+", 7, true), 0);
    cr_assert_eq(set("a/+", 7, true), 0);
    cr_assert_eq(route_size(r), 1);
    cr_assert_eq(match("a/b"), 1u << 7);
    cr_assert_eq(set("a/+", 7, false), 0);
    cr_assert_eq(set("a/+", 7, false), 0);
    cr_assert_eq(match("a/b"), 0);
    cr_assert_eq(route_size(r), 0);
    /* Clearing what was never set. */
    cr_assert_eq(set("x/y", 3, false), 0);
    cr_assert_eq(set("a/+", 3, false), 0);
    cr_assert_eq(route_size(r), 0);
}

Test(route, clear_one_shard_keeps_others)
{
    set("a/#", 1, true);
    set("a/#", 2, true);
    set("a/b", 3, true);
    set("a/#", 1, false);
    cr_assert_eq(route_size(r), 2);
    cr_assert_eq(match("a/b"), (1u << 2) | (1u << 3));
    set("a/#", 2, false);
    cr_assert_eq(route_size(r), 1);
    cr_assert_eq(match("a/b"), 1u << 3);
    cr_assert_eq(match("a"), 0);
}

Test(route, clear_frees)
{
    char buf[64];
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(buf, sizeof(buf), "t/%u/+/#", i);
        cr_assert_eq(set(buf, i % SHARDS_MAX, true), 0);
        snprintf(buf, sizeof(buf), "t/%u", i);
        cr_assert_eq(set(buf, (i + 1) % SHARDS_MAX, true), 0);
    }
    cr_assert_eq(route_size(r), 4000);
    cr_assert_eq(match("t/17/x"), 1ull << 17);
    cr_assert_eq(match("t/17"), 1ull << 18);
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(buf, sizeof(buf), "t/%u/+/#", i);
        cr_assert_eq(set(buf, i % SHARDS_MAX, false), 0);
        snprintf(buf, sizeof(buf), "t/%u", i);
        cr_assert_eq(set(buf, (i + 1) % SHARDS_MAX, false), 0);
    }
    cr_assert_eq(route_size(r), 0);
    cr_assert_eq(match("t/17/x"), 0);
    cr_assert_eq(match("t/17"), 0);
}

Test(route, all_64_shards)
{
    for (unsigned s = 0; s < SHARDS_MAX; s++)
        cr_assert_eq(set("a/b", s, true), 0);
    cr_assert_eq(route_size(r), 1);
    cr_assert_eq(match("a/b"), UINT64_MAX);
    cr_assert_eq(set("+/b", 63, true), 0);
    cr_assert_eq(set("a/b", 63, false), 0);
    cr_assert_eq(match("a/b"), UINT64_MAX);
    cr_assert_eq(set("+/b", 63, false), 0);
    cr_assert_eq(match("a/b"), UINT64_MAX >> 1);
    for (unsigned s = 0; s < SHARDS_MAX - 1; s++)
        cr_assert_eq(set("a/b", s, false), 0);
    cr_assert_eq(match("a/b"), 0);
    cr_assert_eq(route_size(r), 0);
}

Test(route, dollar_rule)
{
    set("#", 0, true);
    set("+/x", 1, true);
    set("$SYS/#", 2, true);
    set("$SYS/+", 3, true);
    cr_assert_eq(match("$SYS/x"), (1u << 2) | (1u << 3));
    cr_assert_eq(match("$SYS"), 1u << 2);
    cr_assert_eq(match("a/x"), (1u << 0) | (1u << 1));
}

Test(route, wildcard_levels)
{
    set("a/+/c", 0, true);
    set("a/#", 1, true);
    set("+/+", 2, true);
    set("/+", 3, true);
    cr_assert_eq(match("a/b/c"), (1u << 0) | (1u << 1));
    cr_assert_eq(match("a"), 1u << 1);
    cr_assert_eq(match("a/b"), (1u << 1) | (1u << 2));
    cr_assert_eq(match("/finance"), (1u << 2) | (1u << 3));
    cr_assert_eq(match("a/b/c/d"), 1u << 1);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void random_topic(char *out, bool filter)
{
    static const char *const w[] = {"a", "b", "", "$s", "cd"};
    int levels = 1 + (int)rnd(4);
    out[0] = 0;
    for (int i = 0; i < levels; i++) {
        if (i > 0)
            strcat(out, "/");
        uint32_t x = rnd(8);
        if (filter && x == 0)
            strcat(out, "+");
        else if (filter && x == 1 && i == levels - 1)
            strcat(out, "#");
        else
            strcat(out, w[rnd(5)]);
    }
    if (out[0] == 0)
        strcat(out, "a");
}

Test(route, randomized_against_topic_match)
{
    enum { N = 1500 };
    static char f[N][48];
    static unsigned shard[N];
    static bool on[N];
    for (int i = 0; i < N; i++) {
        random_topic(f[i], true);
        shard[i] = rnd(SHARDS_MAX);
        on[i] = true;
        cr_assert_eq(set(f[i], shard[i], true), 0);
    }
    for (int i = 0; i < N; i += 2) {
        cr_assert_eq(set(f[i], shard[i], false), 0);
        on[i] = false;
    }
    /* A cleared (filter, shard) may still be set by another entry. */
    for (int i = 1; i < N; i += 2)
        cr_assert_eq(set(f[i], shard[i], true), 0);
    char topic[48];
    for (int k = 0; k < 2000; k++) {
        random_topic(topic, false);
        uint64_t want = 0;
        for (int i = 0; i < N; i++) {
            if (on[i] && topic_match(U(f[i]), strlen(f[i]), U(topic), strlen(topic)))
                want |= 1ull << shard[i];
        }
        cr_assert_eq(match(topic), want, "topic %s", topic);
    }
}
