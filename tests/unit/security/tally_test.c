/*
 * The broker-wide tallies (security/tally.h) on one thread: subjects, the
 * connection count and its limit, the GCRA buckets (burst, refill, refused
 * takes take nothing), bans, idle slots taken over, a full window.
 * tally_threads_test.c drives it from several threads under TSan.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tally.h"

static const uint64_t key[2] = {0x1111222233334444ull, 0x5555666677778888ull};
static struct tally *t;

static void setup(void)
{
    t = tally_create(key, TALLY_SLOTS);
    cr_assert_not_null(t);
}

static void teardown(void)
{
    tally_destroy(t);
}

TestSuite(tally, .init = setup, .fini = teardown);

static const uint8_t v4a[4] = {192, 0, 2, 1}, v4b[4] = {192, 0, 2, 2};

Test(tally, subjects_differ_by_kind_listener_and_bytes)
{
    uint64_t a = tally_subject(t, TALLY_ADDR, 0, v4a, 4);
    cr_expect_neq(a, 0);
    cr_expect_eq(a, tally_subject(t, TALLY_ADDR, 0, v4a, 4));
    cr_expect_neq(a, tally_subject(t, TALLY_ADDR, 0, v4b, 4));
    cr_expect_neq(a, tally_subject(t, TALLY_ADDR_LISTENER, 0, v4a, 4));
    cr_expect_neq(tally_subject(t, TALLY_ADDR_LISTENER, 0, v4a, 4),
                  tally_subject(t, TALLY_ADDR_LISTENER, 1, v4a, 4));
    cr_expect_neq(tally_subject(t, TALLY_CLIENTID, 0, (const uint8_t *)"x", 1),
                  tally_subject(t, TALLY_USERNAME, 0, (const uint8_t *)"x", 1));
    /* Another key, other hashes. */
    uint64_t k2[2] = {key[0] + 1, key[1]};
    struct tally *t2 = tally_create(k2, TALLY_SLOTS);
    cr_expect_neq(a, tally_subject(t2, TALLY_ADDR, 0, v4a, 4));
    tally_destroy(t2);
}

Test(tally, an_ipv6_host_is_its_slash_64)
{
    uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t b[16];
    memcpy(b, a, 16);
    b[15] = 0x99; /* same /64 */
    cr_expect_eq(tally_subject(t, TALLY_ADDR, 0, a, 16), tally_subject(t, TALLY_ADDR, 0, b, 16));
    b[7] = 2; /* another /64 */
    cr_expect_neq(tally_subject(t, TALLY_ADDR, 0, a, 16), tally_subject(t, TALLY_ADDR, 0, b, 16));
    /* Names count whole. */
    uint8_t n1[16] = {0}, n2[16] = {0};
    n2[15] = 1;
    cr_expect_neq(tally_subject(t, TALLY_CLIENTID, 0, n1, 16),
                  tally_subject(t, TALLY_CLIENTID, 0, n2, 16));
}

Test(tally, long_names_hash_whole)
{
    uint8_t a[1000], b[1000];
    memset(a, 'a', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[999] = 'b';
    cr_expect_neq(tally_subject(t, TALLY_CLIENTID, 0, a, sizeof(a)),
                  tally_subject(t, TALLY_CLIENTID, 0, b, sizeof(b)));
    cr_expect_neq(tally_subject(t, TALLY_CLIENTID, 0, a, sizeof(a)),
                  tally_subject(t, TALLY_USERNAME, 0, a, sizeof(a)));
}

Test(tally, connections_held_up_to_the_limit)
{
    uint64_t s = tally_subject(t, TALLY_ADDR_LISTENER, 0, v4a, 4);
    uint32_t slot, again;
    cr_assert(tally_find(t, s, 1000, &slot));
    cr_assert(tally_find(t, s, 1000, &again));
    cr_expect_eq(slot, again, "one slot per subject");
    for (int i = 0; i < 5; i++)
        cr_expect_eq(tally_conn_take(t, slot, s, 5), 1);
    cr_expect_eq(tally_conn_take(t, slot, s, 5), 0, "the sixth is over");
    tally_conn_put(t, slot);
    cr_expect_eq(tally_conn_take(t, slot, s, 5), 1, "one gone, one more");
    cr_expect_eq(tally_conn_take(t, slot, s, 0), 1, "0: no limit");
    /* Another subject is counted apart. */
    uint64_t s2 = tally_subject(t, TALLY_ADDR_LISTENER, 0, v4b, 4);
    uint32_t slot2;
    cr_assert(tally_find(t, s2, 1000, &slot2));
    cr_expect_neq(slot2, slot);
    cr_expect_eq(tally_conn_take(t, slot2, s2, 1), 1);
    cr_expect_eq(tally_conn_take(t, slot2, s2, 1), 0);
    /* A taken slot is not idle: it stays the subject's. */
    cr_expect_eq(tally_live(t, 1000), 2);
}

Test(tally, gcra_burst_then_rate)
{
    _Atomic uint64_t tat = 0;
    uint64_t now = 10000000; /* 10 s */
    /* 10 per second, burst 10: ten at once, then one per 100 ms. */
    for (int i = 0; i < 10; i++)
        cr_expect(gcra_take(&tat, now, 10, 1, 10), "take %d of the burst", i);
    cr_expect_not(gcra_take(&tat, now, 10, 1, 10), "the burst is spent");
    cr_expect_not(gcra_take(&tat, now + 99999, 10, 1, 10), "not yet");
    cr_expect(gcra_take(&tat, now + 100000, 10, 1, 10), "one token back after 100 ms");
    cr_expect_not(gcra_take(&tat, now + 100000, 10, 1, 10));
    /* Refused takes took nothing: a second later, ten again. */
    for (int i = 0; i < 100; i++)
        cr_expect_not(gcra_take(&tat, now + 150000, 10, 1, 10));
    int got = 0;
    for (int i = 0; i < 20; i++)
        got += gcra_take(&tat, now + 1100000, 10, 1, 10);
    cr_expect_eq(got, 10);
    /* Per period: 3 per 60 s with a burst of 3. */
    _Atomic uint64_t w = 0;
    for (int i = 0; i < 3; i++)
        cr_expect(gcra_take(&w, now, 3, 60, 3));
    cr_expect_not(gcra_take(&w, now + 19000000, 3, 60, 3));
    cr_expect(gcra_take(&w, now + 20000000, 3, 60, 3), "one per 20 s");
    /* Off. */
    cr_expect(gcra_take(&w, now, 0, 1, 0));
}

Test(tally, bans_hold_until_their_end_and_restart_the_bucket)
{
    uint64_t s = tally_subject(t, TALLY_ADDR, 0, v4a, 4);
    uint32_t slot;
    uint64_t now = 5000000;
    cr_assert(tally_find(t, s, now, &slot));
    for (int i = 0; i < 3; i++)
        cr_expect(tally_rate(t, slot, TALLY_CONNECTS, now, 3, 60, 3));
    cr_expect_not(tally_rate(t, slot, TALLY_CONNECTS, now, 3, 60, 3));
    cr_expect_eq(tally_banned(t, slot, now), 0);
    tally_ban(t, slot, TALLY_CONNECTS, now + 2000000);
    cr_expect_eq(tally_banned(t, slot, now), 2000000);
    tally_ban(t, slot, TALLY_CONNECTS, now + 1000000); /* an earlier end does not shorten it */
    cr_expect_eq(tally_banned(t, slot, now + 1000000), 1000000);
    cr_expect_eq(tally_banned(t, slot, now + 2000000), 0, "over when its end comes");
    /* The connects that earned it do not count again. */
    for (int i = 0; i < 3; i++)
        cr_expect(tally_rate(t, slot, TALLY_CONNECTS, now + 2000000, 3, 60, 3));
    /* The other bucket is the slot's own. */
    cr_expect(tally_rate(t, slot, TALLY_FAILURES, now, 1, 60, 1));
    cr_expect_not(tally_rate(t, slot, TALLY_FAILURES, now, 1, 60, 1));
}

/* Subjects whose home is the same slot, found by trying. */
static unsigned same_home(uint64_t want_home, uint64_t *out, unsigned n)
{
    unsigned got = 0;
    for (uint32_t i = 0; got < n && i < 50000000u; i++) {
        uint64_t s = tally_subject(t, TALLY_CLIENTID, 0, (const uint8_t *)&i, sizeof(i));
        if ((s & (TALLY_SLOTS - 1)) == want_home)
            out[got++] = s;
    }
    return got;
}

Test(tally, a_full_window_tracks_no_more_until_a_slot_is_idle)
{
    uint64_t subj[TALLY_PROBES + 1];
    cr_assert_eq(same_home(77, subj, TALLY_PROBES + 1), TALLY_PROBES + 1);
    uint32_t slots[TALLY_PROBES];
    uint64_t now = 1000000;
    for (unsigned i = 0; i < TALLY_PROBES; i++) {
        cr_assert(tally_find(t, subj[i], now, &slots[i]), "subject %u", i);
        cr_assert_eq(tally_conn_take(t, slots[i], subj[i], 0), 1);
    }
    uint32_t slot;
    cr_expect_not(tally_find(t, subj[TALLY_PROBES], now, &slot), "the window is full");
    /* One slot goes idle (its connection ended, its buckets are full): the
     * newcomer takes it over, and the old subject, asked again, gets a
     * fresh slot elsewhere when one is idle. */
    tally_conn_put(t, slots[3]);
    cr_expect(tally_find(t, subj[TALLY_PROBES], now, &slot));
    cr_expect_eq(slot, slots[3]);
    cr_expect_eq(tally_conn_take(t, slot, subj[TALLY_PROBES], 0), 1);
    /* A slot with a bucket still running is not idle. */
    tally_conn_put(t, slots[5]);
    cr_expect(tally_rate(t, slots[5], TALLY_CONNECTS, now, 1, 60, 1));
    cr_expect_not(tally_find(t, subj[3], now, &slot), "busy bucket: not taken over");
    cr_expect(tally_find(t, subj[3], now + 61000000, &slot), "once it has run out");
    cr_expect_eq(slot, slots[5]);
}

Test(tally, a_stale_find_is_told_to_look_again)
{
    uint64_t subj[2];
    cr_assert_eq(same_home(99, subj, 2), 2);
    uint32_t slot, other;
    cr_assert(tally_find(t, subj[0], 0, &slot));
    /* subj[0]'s slot is idle (nothing held): subj[1] takes it over. */
    cr_assert(tally_find(t, subj[1], 0, &other));
    cr_assert_eq(other, slot);
    cr_expect_eq(tally_conn_take(t, slot, subj[0], 0), -1, "not subj[0]'s any more");
    cr_expect_eq(tally_conn_take(t, slot, subj[1], 0), 1);
}

Test(tally, sizes_are_powers_of_two)
{
    cr_expect_null(tally_create(key, 1000));
    cr_expect_null(tally_create(key, TALLY_PROBES / 2));
    struct tally *small = tally_create(key, 16);
    cr_assert_not_null(small);
    /* 16 slots: at most 16 subjects held at once, then none is tracked. */
    unsigned held = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        uint64_t s = tally_subject(small, TALLY_USERNAME, 0, (const uint8_t *)&i, sizeof(i));
        uint32_t slot;
        if (tally_find(small, s, 0, &slot) && tally_conn_take(small, slot, s, 0) == 1)
            held++;
    }
    cr_expect_leq(held, 16);
    cr_expect_geq(held, 8);
    cr_expect_eq(tally_live(small, 0), held);
    tally_destroy(small);
}
