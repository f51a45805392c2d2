/*
 * core/topic.c: validation, matching and the $share split. Examples are the
 * non-normative ones of MQTT 3.1.1 and 5.0 section 4.7 and 4.8.2.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "topic.h"

#define U(s) ((const uint8_t *)(s))

static bool name_ok(const char *s)
{
    return topic_name_valid(U(s), strlen(s));
}

static bool filter_ok(const char *s)
{
    return topic_filter_valid(U(s), strlen(s));
}

static bool match(const char *f, const char *n)
{
    return topic_match(U(f), strlen(f), U(n), strlen(n));
}

/* "a/a/.../a" with the given number of levels (caller frees). */
static char *levels(size_t count, const char *last)
{
    size_t cap = count * 2 + strlen(last) + 1;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    s[0] = 0;
    for (size_t i = 0; i + 1 < count; i++)
        strcat(s, "a/");
    strcat(s, last);
    return s;
}

/* 4.7.1.2: multi-level wildcard. */
Test(topic, hash_matches_parent_and_descendants)
{
    cr_assert(match("sport/tennis/player1/#", "sport/tennis/player1"));
    cr_assert(match("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
    cr_assert(match("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
    cr_assert(match("sport/#", "sport"));
    cr_assert(match("#", "sport"));
    cr_assert(match("#", "/"));
    cr_assert(match("#", "sport/tennis/player1"));
    cr_assert(!(match("sport/tennis/player1/#", "sport/tennis")));
    cr_assert(!(match("sport/tennis/player1/#", "sport/tennis/player2")));
    cr_assert(!(match("sport/#", "sports")));
}

Test(topic, hash_must_be_whole_last_level)
{
    cr_assert(filter_ok("sport/tennis/#"));
    cr_assert(filter_ok("#"));
    cr_assert(!(filter_ok("sport/tennis#")));
    cr_assert(!(filter_ok("sport/tennis/#/ranking")));
    cr_assert(!(filter_ok("#/")));
    cr_assert(!(filter_ok("##")));
    cr_assert(!(filter_ok("sport/#/")));
}

/* 4.7.1.3: single-level wildcard. */
Test(topic, plus_matches_one_level)
{
    cr_assert(match("sport/tennis/+", "sport/tennis/player1"));
    cr_assert(match("sport/tennis/+", "sport/tennis/player2"));
    cr_assert(!(match("sport/tennis/+", "sport/tennis/player1/ranking")));
    cr_assert(!(match("sport/+", "sport")));
    cr_assert(match("sport/+", "sport/"));
    cr_assert(match("+/+", "/finance"));
    cr_assert(match("/+", "/finance"));
    cr_assert(!(match("+", "/finance")));
    cr_assert(match("+", "finance"));
    cr_assert(match("+/tennis/#", "sport/tennis/player1"));
    cr_assert(match("+/+/+", "a/b/c"));
    cr_assert(match("+/+/+", "//"));
    cr_assert(!(match("+/+/+", "a/b")));
}

Test(topic, plus_must_be_whole_level)
{
    cr_assert(filter_ok("+"));
    cr_assert(filter_ok("+/tennis/#"));
    cr_assert(filter_ok("sport/+/player1"));
    cr_assert(filter_ok("+/+"));
    cr_assert(filter_ok("/+"));
    cr_assert(!(filter_ok("sport+")));
    cr_assert(!(filter_ok("sport/+tennis")));
    cr_assert(!(filter_ok("++")));
    cr_assert(!(filter_ok("+#")));
}

Test(topic, literal_levels_match_exactly)
{
    cr_assert(match("sport/tennis", "sport/tennis"));
    cr_assert(!(match("sport/tennis", "sport/tennis/")));
    cr_assert(!(match("sport/tennis", "sport/tenni")));
    cr_assert(!(match("sport/tenni", "sport/tennis")));
    cr_assert(!(match("sport/tennis", "Sport/tennis"))); /* case sensitive */
    cr_assert(!(match("ACCOUNTS", "Accounts")));
    cr_assert(match("/", "/"));
    cr_assert(!(match("/", "//")));
    cr_assert(match("a/", "a/"));
    cr_assert(!(match("a/", "a/b")));
    cr_assert(!(match("a/b", "a/")));
}

/* 4.7.2: topics beginning with '$'. */
Test(topic, dollar_topics_not_matched_by_leading_wildcard)
{
    cr_assert(!(match("#", "$SYS/x")));
    cr_assert(!(match("#", "$SYS")));
    cr_assert(!(match("+/monitor/Clients", "$SYS/monitor/Clients")));
    cr_assert(!(match("+", "$SYS")));
    cr_assert(match("$SYS/#", "$SYS/x"));
    cr_assert(match("$SYS/#", "$SYS"));
    cr_assert(match("$SYS/monitor/+", "$SYS/monitor/Clients"));
    cr_assert(match("$SYS/+/Clients", "$SYS/monitor/Clients"));
    /* '$' elsewhere is an ordinary character. */
    cr_assert(match("+/$x", "a/$x"));
    cr_assert(match("a/#", "a/$x"));
    cr_assert(match("#", "a$"));
}

Test(topic, empty_levels_valid)
{
    cr_assert(filter_ok("/"));
    cr_assert(filter_ok("//"));
    cr_assert(filter_ok("/finance"));
    cr_assert(filter_ok("a//b"));
    cr_assert(name_ok("/"));
    cr_assert(name_ok("/finance"));
    cr_assert(name_ok("a//b/"));
    cr_assert(match("a//b", "a//b"));
    cr_assert(match("a/+/b", "a//b"));
}

Test(topic, name_rejects_wildcards_and_empty)
{
    cr_assert(name_ok("sport/tennis/player1"));
    cr_assert(name_ok("$SYS/broker"));
    cr_assert(!(name_ok("")));
    cr_assert(!(name_ok("sport/+")));
    cr_assert(!(name_ok("sport/#")));
    cr_assert(!(name_ok("a+b")));
    cr_assert(!(filter_ok("")));
}

Test(topic, nul_rejected)
{
    cr_assert(!(topic_name_valid(U("a\0b"), 3)));
    cr_assert(!(topic_filter_valid(U("a\0b"), 3)));
    cr_assert(!(topic_filter_valid(U("$share/g\0/a"), 11)));
    cr_assert(!(topic_filter_valid(U("$share/g/a\0"), 11)));
    cr_assert(topic_name_valid(U("a\0b"), 1));
}

Test(topic, levels_limit)
{
    char *at = levels(TOPIC_LEVELS_MAX, "a");
    char *over = levels(TOPIC_LEVELS_MAX + 1, "a");
    char *fat = levels(TOPIC_LEVELS_MAX, "#");
    char *fover = levels(TOPIC_LEVELS_MAX + 1, "#");
    cr_assert(name_ok(at));
    cr_assert(!(name_ok(over)));
    cr_assert(filter_ok(at));
    cr_assert(filter_ok(fat));
    cr_assert(!(filter_ok(over)));
    cr_assert(!(filter_ok(fover)));
    cr_assert(match(fat, at));
    free(at);
    free(over);
    free(fat);
    free(fover);

    /* 128 levels of nothing: 127 slashes. */
    char slashes[TOPIC_LEVELS_MAX + 1];
    memset(slashes, '/', sizeof(slashes));
    cr_assert(topic_name_valid(U(slashes), TOPIC_LEVELS_MAX - 1));
    cr_assert(!(topic_name_valid(U(slashes), TOPIC_LEVELS_MAX)));
    cr_assert(topic_filter_valid(U(slashes), TOPIC_LEVELS_MAX - 1));
    cr_assert(!(topic_filter_valid(U(slashes), TOPIC_LEVELS_MAX)));
}

Test(topic, length_limit)
{
    size_t n = TOPIC_LEN_MAX + 1;
    uint8_t *s = malloc(n);
    cr_assert_not_null(s);
    memset(s, 'x', n);
    cr_assert(topic_name_valid(s, TOPIC_LEN_MAX));
    cr_assert(!(topic_name_valid(s, TOPIC_LEN_MAX + 1)));
    cr_assert(topic_filter_valid(s, TOPIC_LEN_MAX));
    cr_assert(!(topic_filter_valid(s, TOPIC_LEN_MAX + 1)));
    free(s);
}

/* 4.8.2: shared subscriptions. */
Test(topic, shared_filter_validity)
{
    cr_assert(filter_ok("$share/g/a/b"));
    cr_assert(filter_ok("$share/consumer1/sport/tennis/+"));
    cr_assert(filter_ok("$share/g/#"));
    cr_assert(filter_ok("$share/g/+"));
    cr_assert(filter_ok("$share/g//"));
    cr_assert(!(filter_ok("$share/g")));
    cr_assert(!(filter_ok("$share/g/")));
    cr_assert(!(filter_ok("$share//a")));
    cr_assert(!(filter_ok("$share/")));
    cr_assert(!(filter_ok("$share/g+/a")));
    cr_assert(!(filter_ok("$share/+/a")));
    cr_assert(!(filter_ok("$share/#/a")));
    cr_assert(!(filter_ok("$share/g/a#")));
    cr_assert(!(filter_ok("$share/g/#/a")));
    /* Not shared: plain filters that merely start with "$share". */
    cr_assert(filter_ok("$share"));
    cr_assert(filter_ok("$shared/x"));
}

Test(topic, shared_levels_limit_applies_to_inner_filter)
{
    char *at = levels(TOPIC_LEVELS_MAX, "#");
    char *over = levels(TOPIC_LEVELS_MAX + 1, "#");
    char buf[1024];
    snprintf(buf, sizeof(buf), "$share/g/%s", at);
    cr_assert(filter_ok(buf));
    snprintf(buf, sizeof(buf), "$share/g/%s", over);
    cr_assert(!(filter_ok(buf)));
    free(at);
    free(over);
}

Test(topic, shared_split)
{
    const char *f = "$share/consumer1/sport/tennis/+";
    const uint8_t *g = NULL, *in = NULL;
    size_t gl = 0, il = 0;
    cr_assert(topic_shared_split(U(f), strlen(f), &g, &gl, &in, &il));
    cr_assert_eq(gl, 9);
    cr_assert(memcmp(g, "consumer1", 9) == 0);
    cr_assert_eq(il, strlen("sport/tennis/+"));
    cr_assert(memcmp(in, "sport/tennis/+", il) == 0);

    f = "$share/g/#";
    cr_assert(topic_shared_split(U(f), strlen(f), &g, &gl, &in, &il));
    cr_assert_eq(gl, 1);
    cr_assert_eq(il, 1);
    cr_assert_eq(in[0], '#');

    g = NULL;
    in = NULL;
    f = "sport/tennis";
    cr_assert(!(topic_shared_split(U(f), strlen(f), &g, &gl, &in, &il)));
    cr_assert_null(g);
    cr_assert_null(in);
    f = "$shared/x";
    cr_assert(!(topic_shared_split(U(f), strlen(f), &g, &gl, &in, &il)));
    f = "$SYS/x";
    cr_assert(!(topic_shared_split(U(f), strlen(f), &g, &gl, &in, &il)));
}

Test(topic, has_wildcard)
{
    cr_assert(topic_has_wildcard(U("a/+"), 3));
    cr_assert(topic_has_wildcard(U("#"), 1));
    cr_assert(topic_has_wildcard(U("+/b"), 3));
    cr_assert(!(topic_has_wildcard(U("a/b"), 3)));
    cr_assert(!(topic_has_wildcard(U("$SYS/x"), 6)));
}

Test(topic, match_rejects_empty)
{
    cr_assert(!(topic_match(U("#"), 1, U(""), 0)));
    cr_assert(!(topic_match(U(""), 0, U("a"), 1)));
}
