/*
 * core/retain.c: set, replace, delete by empty payload, matching filters with
 * wildcards and the '$' rule, reference counts and the count/bytes totals.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "retain.h"
#include "topic.h"

#define U(s) ((const uint8_t *)(s))

static struct retain *r;

struct seen {
    struct msg *v[4096];
    size_t n;
};
static struct seen seen;

static void setup(void)
{
    r = retain_create();
    cr_assert_not_null(r);
    seen.n = 0;
}

static void teardown(void)
{
    retain_destroy(r);
}

TestSuite(retain, .init = setup, .fini = teardown);

static struct msg *mk(const char *topic, const char *payload)
{
    struct msg *m =
        msg_create_simple(U(topic), strlen(topic), U(payload), strlen(payload), 1, true);
    cr_assert_not_null(m);
    return m;
}

/* Stores and drops the caller's reference: the store holds the only one. */
static void put(const char *topic, const char *payload)
{
    struct msg *m = mk(topic, payload);
    cr_assert_eq(retain_set(r, m), 0);
    msg_unref(m);
}

static void collect(void *ctx, struct msg *m)
{
    struct seen *s = ctx;
    cr_assert_lt(s->n, sizeof(s->v) / sizeof(s->v[0]));
    s->v[s->n++] = m;
}

static size_t match(const char *filter)
{
    seen.n = 0;
    retain_match(r, U(filter), strlen(filter), collect, &seen);
    return seen.n;
}

/* Was the message on this topic reported? */
static bool saw(const char *topic)
{
    size_t len = strlen(topic);
    for (size_t i = 0; i < seen.n; i++) {
        if (seen.v[i]->topic_len == len && memcmp(msg_topic(seen.v[i]), topic, len) == 0)
            return true;
    }
    return false;
}

static unsigned refs(struct msg *m)
{
    return atomic_load(&m->refs);
}

Test(retain, empty_store)
{
    cr_assert_eq(retain_count(r), 0);
    cr_assert_eq(retain_bytes(r), 0);
    cr_assert_eq(match("#"), 0);
    cr_assert_eq(match("a"), 0);
}

Test(retain, set_takes_a_reference)
{
    struct msg *m = mk("a/b", "hello");
    cr_assert_eq(refs(m), 1);
    cr_assert_eq(retain_set(r, m), 0);
    cr_assert_eq(refs(m), 2);
    cr_assert_eq(retain_count(r), 1);
    cr_assert_eq(retain_bytes(r), msg_size(m));
    cr_assert_eq(match("a/b"), 1);
    cr_assert_eq(seen.v[0], m);
    cr_assert_eq(refs(m), 2); /* matching takes none */
    /* Setting the same message again keeps one reference. */
    cr_assert_eq(retain_set(r, m), 0);
    cr_assert_eq(refs(m), 2);
    cr_assert_eq(retain_count(r), 1);
    cr_assert_eq(retain_bytes(r), msg_size(m));
    msg_unref(m);
}

Test(retain, replace_drops_old_reference)
{
    struct msg *a = mk("t", "one");
    struct msg *b = mk("t", "second payload");
    cr_assert_eq(retain_set(r, a), 0);
    cr_assert_eq(retain_set(r, b), 0);
    cr_assert_eq(refs(a), 1);
    cr_assert_eq(refs(b), 2);
    cr_assert_eq(retain_count(r), 1);
    cr_assert_eq(retain_bytes(r), msg_size(b));
    cr_assert_eq(match("t"), 1);
    cr_assert_eq(seen.v[0], b);
    msg_unref(a);
    msg_unref(b);
}

Test(retain, empty_payload_deletes)
{
    struct msg *a = mk("a/b", "x");
    struct msg *keep = mk("a/c", "y");
    cr_assert_eq(retain_set(r, a), 0);
    cr_assert_eq(retain_set(r, keep), 0);
    struct msg *del = mk("a/b", "");
    cr_assert_eq(retain_set(r, del), 0);
    cr_assert_eq(refs(del), 1); /* [MQTT-3.3.1-7] not stored */
    cr_assert_eq(refs(a), 1);
    cr_assert_eq(retain_count(r), 1);
    cr_assert_eq(retain_bytes(r), msg_size(keep));
    cr_assert_eq(match("a/b"), 0);
    cr_assert_eq(match("a/#"), 1);
    cr_assert(saw("a/c"));
    /* Deleting what is not there is fine. */
    cr_assert_eq(retain_set(r, del), 0);
    struct msg *del2 = mk("x/y/z", "");
    cr_assert_eq(retain_set(r, del2), 0);
    cr_assert_eq(retain_count(r), 1);
    msg_unref(a);
    msg_unref(keep);
    msg_unref(del);
    msg_unref(del2);
}

Test(retain, delete_inner_topic_keeps_children)
{
    put("a", "1");
    put("a/b", "2");
    put("a/b/c", "3");
    struct msg *del = mk("a/b", "");
    cr_assert_eq(retain_set(r, del), 0);
    msg_unref(del);
    cr_assert_eq(match("a/b/c"), 1);
    cr_assert_eq(match("a/#"), 2);
    cr_assert(saw("a"));
    cr_assert(saw("a/b/c"));
    cr_assert_eq(retain_count(r), 2);
}

Test(retain, match_wildcards)
{
    put("sport", "0");
    put("sport/tennis/player1", "1");
    put("sport/tennis/player1/ranking", "2");
    put("sport/tennis/player1/score/wimbledon", "3");
    put("sport/tennis/player2", "4");
    put("sport/golf", "5");
    put("/finance", "6");
    put("finance", "7");

    cr_assert_eq(match("sport/tennis/player1/#"), 3);
    cr_assert(saw("sport/tennis/player1"));
    cr_assert(saw("sport/tennis/player1/ranking"));
    cr_assert(saw("sport/tennis/player1/score/wimbledon"));
    cr_assert_eq(match("sport/#"), 6);
    cr_assert(saw("sport"));
    cr_assert_eq(match("sport/tennis/+"), 2);
    cr_assert(saw("sport/tennis/player1"));
    cr_assert(saw("sport/tennis/player2"));
    cr_assert_eq(match("sport/+"), 1);
    cr_assert(saw("sport/golf"));
    cr_assert_eq(match("+/+"), 2);
    cr_assert(saw("/finance"));
    cr_assert(saw("sport/golf"));
    cr_assert_eq(match("/+"), 1);
    cr_assert(saw("/finance"));
    cr_assert_eq(match("+"), 2);
    cr_assert(saw("sport"));
    cr_assert(saw("finance"));
    cr_assert_eq(match("+/tennis/#"), 4);
    cr_assert_eq(match("#"), 8);
    cr_assert_eq(match("sport/tennis"), 0);
    cr_assert_eq(match("sport/tennis/player1"), 1);
    cr_assert_eq(match("nothing/#"), 0);
    cr_assert_eq(match("+/+/+/+/+"), 1);
}

Test(retain, dollar_rule)
{
    put("$SYS/broker/uptime", "1");
    put("$SYS", "2");
    put("a/$SYS", "3");
    cr_assert_eq(match("#"), 1);
    cr_assert(saw("a/$SYS"));
    cr_assert_eq(match("+/broker/uptime"), 0);
    cr_assert_eq(match("+"), 0);
    cr_assert_eq(match("$SYS/#"), 2);
    cr_assert_eq(match("$SYS/+/uptime"), 1);
    cr_assert_eq(match("$SYS"), 1);
    cr_assert_eq(match("a/+"), 1);
    cr_assert_eq(match("a/#"), 1);
}

Test(retain, empty_levels)
{
    put("/", "1");
    put("a//b", "2");
    cr_assert_eq(match("/"), 1);
    cr_assert_eq(match("+/+"), 1);
    cr_assert_eq(match("a/+/b"), 1);
    cr_assert_eq(match("a//#"), 1);
    cr_assert_eq(match("#"), 2);
}

Test(retain, destroy_releases_references)
{
    struct msg *m[100];
    char t[32];
    for (int i = 0; i < 100; i++) {
        snprintf(t, sizeof(t), "dev/%d/state", i);
        m[i] = mk(t, "on");
        cr_assert_eq(retain_set(r, m[i]), 0);
        cr_assert_eq(refs(m[i]), 2);
    }
    retain_destroy(r);
    r = retain_create();
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(refs(m[i]), 1);
        msg_unref(m[i]);
    }
}

Test(retain, count_and_bytes)
{
    size_t bytes = 0;
    char t[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(t, sizeof(t), "dev/%d/state", i);
        struct msg *m = mk(t, i % 2 ? "on" : "off");
        bytes += msg_size(m);
        cr_assert_eq(retain_set(r, m), 0);
        msg_unref(m);
    }
    cr_assert_eq(retain_count(r), 3000);
    cr_assert_eq(retain_bytes(r), bytes);
    cr_assert_eq(match("dev/+/state"), 3000);
    cr_assert_eq(match("dev/1234/+"), 1);
    for (int i = 0; i < 3000; i += 2) {
        snprintf(t, sizeof(t), "dev/%d/state", i);
        struct msg *m = mk(t, "off");
        bytes -= msg_size(m);
        struct msg *del = mk(t, "");
        cr_assert_eq(retain_set(r, del), 0);
        msg_unref(del);
        msg_unref(m);
    }
    cr_assert_eq(retain_count(r), 1500);
    cr_assert_eq(retain_bytes(r), bytes);
    cr_assert_eq(match("dev/#"), 1500);
    cr_assert_eq(match("dev/1234/state"), 0);
    cr_assert_eq(match("dev/1235/state"), 1);
}

static uint64_t rng = 0x51afd7ed558ccdffull;

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
        uint32_t x = rnd(6);
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

Test(retain, randomized_against_topic_match)
{
    enum { N = 800 };
    static char names[N][48];
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        char t[48];
        random_topic(t, false);
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup = dup || strcmp(names[j], t) == 0;
        put(t, "p");
        if (!dup)
            strcpy(names[n++], t);
    }
    cr_assert_eq(retain_count(r), n);
    char f[48];
    for (int k = 0; k < 1000; k++) {
        random_topic(f, true);
        size_t want = 0;
        for (size_t j = 0; j < n; j++) {
            if (!topic_match(U(f), strlen(f), U(names[j]), strlen(names[j])))
                continue;
            want++;
            cr_assert(saw(names[j]) || (match(f), saw(names[j])), "%s !~ %s", f, names[j]);
        }
        cr_assert_eq(match(f), want, "filter %s", f);
    }
}

/* ---- bounds ---- */

static int put_bounded(const char *topic, const char *payload, size_t count_max, size_t bytes_max)
{
    struct msg *m = mk(topic, payload);
    int rc = retain_set_bounded(r, m, count_max, bytes_max);
    msg_unref(m);
    return rc;
}

Test(retain, count_bound_refuses_new_topics_only)
{
    cr_assert_eq(put_bounded("a", "1", 2, 0), 0);
    cr_assert_eq(put_bounded("b", "1", 2, 0), 0);
    cr_assert_eq(put_bounded("c", "1", 2, 0), -ENOSPC, "a third topic is refused");
    cr_assert_eq(retain_count(r), 2);
    cr_assert_eq(match("c"), 0);
    cr_assert_eq(put_bounded("a", "2", 2, 0), 0, "replacing works at the bound");
    cr_assert_eq(match("a"), 1);
    cr_assert_eq(seen.v[0]->payload_len, 1);
    cr_assert_eq(memcmp(msg_payload(seen.v[0]), "2", 1), 0);
    cr_assert_eq(put_bounded("b", "", 2, 0), 0, "deleting works at the bound");
    cr_assert_eq(put_bounded("c", "1", 2, 0), 0, "and makes room");
    cr_assert_eq(retain_count(r), 2);
    cr_assert_eq(put_bounded("d", "1", 0, 0), 0, "0: no bound");
}

Test(retain, bytes_bound_refuses_and_drops_the_stale_value)
{
    struct msg *probe = mk("t", "xxxxxxxxxx");
    size_t one = msg_size(probe);
    msg_unref(probe);
    cr_assert_eq(put_bounded("t", "xxxxxxxxxx", 0, 2 * one), 0);
    cr_assert_eq(put_bounded("u", "xxxxxxxxxx", 0, 2 * one), 0);
    cr_assert_eq(retain_bytes(r), 2 * one);
    cr_assert_eq(put_bounded("v", "x", 0, 2 * one), -ENOSPC, "no room for a new topic");
    cr_assert_eq(put_bounded("t", "yyyyyyyyyy", 0, 2 * one), 0, "same size replaces");
    cr_assert_eq(put_bounded("t", "a longer payload than before", 0, 2 * one), -ENOSPC);
    cr_assert_eq(match("t"), 0, "the topic's older value went with the refusal");
    cr_assert_eq(retain_count(r), 1);
    cr_assert_eq(retain_bytes(r), one);
    cr_assert_eq(match("u"), 1);
}

Test(retain, sys_entries_do_not_count_against_the_bounds)
{
    cr_assert_eq(put_bounded("$SYS/broker/uptime", "1 seconds", 0, 0), 0);
    cr_assert_eq(put_bounded("a", "1", 1, 0), 0, "the $SYS entry leaves room for one");
    cr_assert_eq(put_bounded("b", "1", 1, 0), -ENOSPC);
    cr_assert_eq(retain_count(r), 2, "retain_count counts everything");
    cr_assert_eq(retain_client_count(r), 1, "retain_client_count leaves $SYS out");
    cr_assert_eq(put_bounded("$SYS/broker/uptime", "", 0, 0), 0);
    cr_assert_eq(retain_count(r), 1);
    cr_assert_eq(retain_client_count(r), 1);
    cr_assert_eq(put_bounded("b", "1", 2, 0), 0);
}
