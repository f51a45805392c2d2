/*
 * The per-shard timing wheel, driven with explicit times (no sleeping): a
 * timer fires at its due ms and never before at every level boundary and
 * beyond the horizon; cancel and re-arm, also from inside a callback; the
 * budget and the cascade cap; a 10 h jump over 100k timers; timer_next_due
 * as a lower bound; and a randomized run against a sorted-array reference.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "timer.h"

#define HOUR_MS (UINT64_C(3600) * 1000)

struct item {
    unsigned id;
    struct timer timer;
    unsigned fires;
    uint64_t fired_at_ms;
};

/* What the callbacks see: the time of the current timer_expire() call and
 * the order things fired in. */
struct run {
    struct timer_wheel *w;
    uint64_t now_ms;
    uint64_t last_due_ms;
    bool in_order;
    unsigned fired;
    struct item *items;
    size_t item_count;
};

static struct item *item_of(struct timer *t)
{
    return TIMER_OWNER(t, struct item, timer);
}

static void on_fire(struct timer *t, void *ctx)
{
    struct run *r = ctx;
    struct item *it = item_of(t);
    cr_assert_not(timer_armed(t), "disarmed before its callback");
    cr_assert_leq(timer_due_ms(t), r->now_ms, "fired early: due %llu at %llu",
                  (unsigned long long)timer_due_ms(t), (unsigned long long)r->now_ms);
    if (timer_due_ms(t) < r->last_due_ms)
        r->in_order = false;
    r->last_due_ms = timer_due_ms(t);
    it->fires++;
    it->fired_at_ms = r->now_ms;
    r->fired++;
}

static void run_init(struct run *r, struct timer_wheel *w)
{
    memset(r, 0, sizeof(*r));
    r->w = w;
    r->in_order = true;
}

static unsigned expire_at(struct run *r, uint64_t now_ms, unsigned budget)
{
    r->now_ms = now_ms;
    return timer_expire(r->w, now_ms, budget, on_fire, r);
}

/* Calls timer_expire() until nothing due is left, as a shard would on
 * successive loop turns. Returns the number of calls. */
static unsigned drain_at(struct run *r, uint64_t now_ms, unsigned budget)
{
    unsigned calls = 0;
    for (;;) {
        unsigned n = expire_at(r, now_ms, budget);
        calls++;
        cr_assert_leq(n, budget);
        if (n < budget && timer_next_due(r->w) > now_ms)
            return calls;
    }
}

static const uint64_t boundary_distances_ms[] = {
    0,
    1,
    2,
    63,
    64,
    65,
    4095,
    4096,
    4097,
    262143,
    262144,
    262145,
    TIMER_HORIZON_MS - 1,
    TIMER_HORIZON_MS,
    TIMER_HORIZON_MS + 1,
    16777215,
    16777216,
    16777217,
    2 * TIMER_HORIZON_MS,
    10 * HOUR_MS,
    100 * HOUR_MS + 12345,
};

static const uint64_t start_times_ms[] = {
    0, 1, 63, (UINT64_C(1) << 24) - 1, (UINT64_C(1) << 24) - 100, UINT64_C(1700000000123),
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

Test(timer, zeroed_and_initialised_timers_are_unarmed)
{
    struct timer_wheel w;
    timer_wheel_init(&w, 5);
    struct timer zero = {0};
    struct timer t;
    memset(&t, 0xa5, sizeof(t));
    timer_init(&t);
    cr_expect_not(timer_armed(&zero));
    cr_expect_not(timer_armed(&t));
    cr_expect_eq(timer_wheel_count(&w), 0);
    cr_expect_eq(timer_next_due(&w), UINT64_MAX);
    timer_wheel_fini(&w);
}

Test(timer, owner_is_recovered_from_its_timer)
{
    struct item it = {.id = 42};
    cr_expect_eq(item_of(&it.timer), &it);
    cr_expect_eq(item_of(&it.timer)->id, 42);
}

Test(timer, fires_at_due_ms_and_not_one_ms_before_at_every_boundary)
{
    for (size_t si = 0; si < ARRAY_LEN(start_times_ms); si++) {
        for (size_t di = 0; di < ARRAY_LEN(boundary_distances_ms); di++) {
            uint64_t start = start_times_ms[si];
            uint64_t due = start + boundary_distances_ms[di];
            struct timer_wheel w;
            struct run r;
            struct item it = {0};
            timer_wheel_init(&w, start);
            run_init(&r, &w);
            timer_arm(&w, &it.timer, due);
            cr_assert(timer_armed(&it.timer));
            cr_assert_leq(timer_next_due(&w), due);
            if (due > start) {
                drain_at(&r, due - 1, 1);
                cr_assert_eq(it.fires, 0, "start %llu due %llu fired early",
                             (unsigned long long)start, (unsigned long long)due);
                cr_assert(timer_armed(&it.timer));
                cr_assert_leq(timer_next_due(&w), due);
            }
            drain_at(&r, due, 1);
            cr_assert_eq(it.fires, 1, "start %llu due %llu did not fire at due",
                         (unsigned long long)start, (unsigned long long)due);
            cr_assert_not(timer_armed(&it.timer));
            cr_assert_eq(timer_wheel_count(&w), 0);
            cr_assert_eq(timer_next_due(&w), UINT64_MAX);
            timer_wheel_fini(&w);
        }
    }
}

Test(timer, fires_at_due_ms_stepping_every_ms)
{
    static const uint64_t distances[] = {1, 63, 64, 65, 4095, 4096, 4097, 70000};
    for (size_t di = 0; di < ARRAY_LEN(distances); di++) {
        uint64_t start = 1000003;
        uint64_t due = start + distances[di];
        struct timer_wheel w;
        struct run r;
        struct item it = {0};
        timer_wheel_init(&w, start);
        run_init(&r, &w);
        timer_arm(&w, &it.timer, due);
        for (uint64_t now = start; now <= due + 2; now++) {
            expire_at(&r, now, 16);
            cr_assert_eq(it.fires, now >= due ? 1u : 0u, "due %llu at %llu",
                         (unsigned long long)due, (unsigned long long)now);
        }
        cr_assert_eq(it.fired_at_ms, due);
        timer_wheel_fini(&w);
    }
}

/* A shard that sleeps until timer_next_due() wakes exactly at the due ms,
 * after at most one wake-up per level (plus one per park while beyond the
 * horizon). */
Test(timer, sleeping_until_next_due_wakes_exactly_at_due)
{
    for (size_t si = 0; si < ARRAY_LEN(start_times_ms); si++) {
        for (size_t di = 0; di < ARRAY_LEN(boundary_distances_ms); di++) {
            uint64_t start = start_times_ms[si];
            uint64_t dist = boundary_distances_ms[di];
            struct timer_wheel w;
            struct run r;
            struct item it = {0};
            timer_wheel_init(&w, start);
            run_init(&r, &w);
            timer_arm(&w, &it.timer, start + dist);
            uint64_t now = start;
            unsigned wakeups = 0;
            while (it.fires == 0) {
                uint64_t next = timer_next_due(&w);
                cr_assert_leq(next, start + dist);
                if (next > now)
                    now = next;
                expire_at(&r, now, 4);
                wakeups++;
            }
            cr_assert_eq(it.fired_at_ms, start + dist);
            cr_assert_leq(wakeups, TIMER_LEVELS + 1 + dist / TIMER_HORIZON_MS);
            timer_wheel_fini(&w);
        }
    }
}

Test(timer, due_now_or_in_the_past_fires_on_next_expire)
{
    struct timer_wheel w;
    struct run r;
    struct item now_item = {0}, past_item = {0};
    timer_wheel_init(&w, 10000);
    run_init(&r, &w);
    timer_arm(&w, &now_item.timer, 10000);
    timer_arm(&w, &past_item.timer, 9000);
    cr_expect_leq(timer_next_due(&w), 9000);
    cr_expect_eq(expire_at(&r, 10000, 10), 2);
    cr_expect_eq(now_item.fires, 1);
    cr_expect_eq(past_item.fires, 1);
    cr_expect_eq(timer_next_due(&w), UINT64_MAX);
    timer_wheel_fini(&w);
}

Test(timer, cancel_prevents_firing)
{
    struct timer_wheel w;
    struct run r;
    struct item a = {0}, b = {0}, c = {0};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    timer_arm(&w, &a.timer, 5);
    timer_arm(&w, &b.timer, 5000);
    timer_arm(&w, &c.timer, 50 * HOUR_MS);
    cr_expect_eq(timer_wheel_count(&w), 3);
    timer_cancel(&w, &a.timer);
    timer_cancel(&w, &b.timer);
    timer_cancel(&w, &c.timer);
    cr_expect_not(timer_armed(&a.timer));
    cr_expect_eq(timer_wheel_count(&w), 0);
    cr_expect_eq(timer_next_due(&w), UINT64_MAX);
    drain_at(&r, 100 * HOUR_MS, 10);
    cr_expect_eq(a.fires + b.fires + c.fires, 0);
    timer_wheel_fini(&w);
}

Test(timer, cancel_of_an_unarmed_timer_is_a_noop)
{
    struct timer_wheel w;
    struct item a = {0}, b = {0};
    timer_wheel_init(&w, 0);
    timer_arm(&w, &b.timer, 7);
    timer_cancel(&w, &a.timer);
    timer_cancel(&w, &b.timer);
    timer_cancel(&w, &b.timer);
    cr_expect_eq(timer_wheel_count(&w), 0);
    cr_expect_not(timer_armed(&b.timer));
    timer_wheel_fini(&w);
}

Test(timer, cancel_of_a_due_queued_timer)
{
    struct timer_wheel w;
    struct run r;
    struct item a = {0}, b = {0};
    timer_wheel_init(&w, 100);
    run_init(&r, &w);
    timer_arm(&w, &a.timer, 50);
    timer_arm(&w, &b.timer, 100);
    timer_cancel(&w, &a.timer);
    cr_expect_eq(expire_at(&r, 100, 10), 1);
    cr_expect_eq(a.fires, 0);
    cr_expect_eq(b.fires, 1);
    timer_wheel_fini(&w);
}

Test(timer, rearm_earlier_fires_at_the_new_due)
{
    struct timer_wheel w;
    struct run r;
    struct item a = {0};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    timer_arm(&w, &a.timer, 3 * HOUR_MS);
    timer_arm(&w, &a.timer, 70);
    cr_expect_eq(timer_wheel_count(&w), 1);
    cr_expect_eq(timer_due_ms(&a.timer), 70);
    cr_expect_eq(timer_next_due(&w), 64, "level-1 slot start, a lower bound");
    drain_at(&r, 69, 10);
    cr_expect_eq(a.fires, 0);
    drain_at(&r, 70, 10);
    cr_expect_eq(a.fires, 1);
    drain_at(&r, 4 * HOUR_MS, 10);
    cr_expect_eq(a.fires, 1, "the old due time is gone");
    timer_wheel_fini(&w);
}

Test(timer, rearm_later_does_not_fire_at_the_old_due)
{
    struct timer_wheel w;
    struct run r;
    struct item a = {0};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    timer_arm(&w, &a.timer, 70);
    timer_arm(&w, &a.timer, 5000);
    cr_expect_eq(timer_wheel_count(&w), 1);
    drain_at(&r, 70, 10);
    drain_at(&r, 4999, 10);
    cr_expect_eq(a.fires, 0);
    drain_at(&r, 5000, 10);
    cr_expect_eq(a.fires, 1);
    cr_expect_eq(a.fired_at_ms, 5000);
    timer_wheel_fini(&w);
}

static void rearm_every_100ms(struct timer *t, void *ctx)
{
    struct run *r = ctx;
    on_fire(t, ctx);
    timer_arm(r->w, t, timer_due_ms(t) + 100);
}

Test(timer, rearm_from_its_callback_makes_a_periodic_timer)
{
    struct timer_wheel w;
    struct run r;
    struct item a = {0};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    timer_arm(&w, &a.timer, 100);
    for (uint64_t now = 0; now <= 1000; now += 7) {
        r.now_ms = now;
        timer_expire(&w, now, 10, rearm_every_100ms, &r);
    }
    cr_expect_eq(a.fires, 9, "fired at 100..900 (1000 not reached in steps of 7)");
    cr_expect(timer_armed(&a.timer));
    cr_expect_eq(timer_due_ms(&a.timer), 1000);
    cr_expect_eq(timer_wheel_count(&w), 1);
    timer_wheel_fini(&w);
}

static void rearm_now(struct timer *t, void *ctx)
{
    struct run *r = ctx;
    on_fire(t, ctx);
    timer_arm(r->w, t, r->now_ms);
}

Test(timer, a_callback_that_rearms_due_now_is_held_to_the_budget)
{
    struct timer_wheel w;
    struct run r;
    struct item a = {0};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    timer_arm(&w, &a.timer, 0);
    r.now_ms = 0;
    cr_expect_eq(timer_expire(&w, 0, 5, rearm_now, &r), 5);
    cr_expect_eq(a.fires, 5);
    cr_expect(timer_armed(&a.timer));
    cr_expect_leq(timer_next_due(&w), 0);
    timer_wheel_fini(&w);
}

/* The first timer to fire cancels every other item (those due later in the
 * same pass too); the second arms item 3 due now. */
static void cancel_or_arm_others(struct timer *t, void *ctx)
{
    struct run *r = ctx;
    on_fire(t, ctx);
    struct item *it = item_of(t);
    if (it->id == 0) {
        timer_cancel(r->w, &r->items[1].timer);
        timer_cancel(r->w, &r->items[2].timer);
    } else if (it->id == 4) {
        timer_arm(r->w, &r->items[3].timer, r->now_ms);
    }
}

Test(timer, a_callback_cancels_other_timers_due_in_the_same_pass)
{
    struct timer_wheel w;
    struct run r;
    struct item items[5] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    r.items = items;
    timer_arm(&w, &items[0].timer, 10);
    timer_arm(&w, &items[1].timer, 10); /* same ms, already queued */
    timer_arm(&w, &items[2].timer, 3000);
    r.now_ms = 5000;
    cr_expect_eq(timer_expire(&w, 5000, 10, cancel_or_arm_others, &r), 1);
    cr_expect_eq(items[0].fires, 1);
    cr_expect_eq(items[1].fires, 0);
    cr_expect_eq(items[2].fires, 0);
    cr_expect_eq(timer_wheel_count(&w), 0);
    timer_wheel_fini(&w);
}

Test(timer, a_callback_arms_another_timer_due_in_the_same_pass)
{
    struct timer_wheel w;
    struct run r;
    struct item items[5] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    r.items = items;
    timer_arm(&w, &items[4].timer, 20);
    r.now_ms = 100;
    cr_expect_eq(timer_expire(&w, 100, 10, cancel_or_arm_others, &r), 2);
    cr_expect_eq(items[4].fires, 1);
    cr_expect_eq(items[3].fires, 1);
    cr_expect_eq(timer_wheel_count(&w), 0);
    timer_wheel_fini(&w);
}

Test(timer, budget_limits_fires_and_the_rest_fire_on_the_next_call)
{
    struct timer_wheel w;
    struct run r;
    struct item items[10] = {0};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    for (unsigned i = 0; i < 10; i++)
        timer_arm(&w, &items[i].timer, 1 + i * 500);
    cr_expect_eq(expire_at(&r, 10000, 4), 4);
    cr_expect_eq(timer_wheel_count(&w), 6);
    cr_expect_leq(timer_next_due(&w), 10000, "more is due: call again");
    cr_expect_eq(expire_at(&r, 10000, 4), 4);
    cr_expect_eq(expire_at(&r, 10000, 4), 2);
    cr_expect_gt(timer_next_due(&w), 10000);
    cr_expect_eq(expire_at(&r, 10000, 4), 0);
    for (unsigned i = 0; i < 10; i++)
        cr_expect_eq(items[i].fires, 1);
    cr_expect(r.in_order);
    cr_expect_eq(expire_at(&r, 10000, 0), 0, "a zero budget does nothing");
    timer_wheel_fini(&w);
}

/* 10k timers in one top-level slot: after a jump, one call with budget 1
 * cascades at most TIMER_MOVES_PER_FIRE of them, says more is due, and
 * repeated calls fire them all. */
Test(timer, the_cascade_cap_bounds_work_per_call)
{
    enum { N = 10000 };
    struct timer_wheel w;
    struct run r;
    struct item *items = calloc(N, sizeof(*items));
    cr_assert_not_null(items);
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    for (unsigned i = 0; i < N; i++)
        timer_arm(&w, &items[i].timer, 3 * TIMER_TOP_SLOT_MS + 1 + i);
    uint64_t now = 4 * TIMER_TOP_SLOT_MS;
    uint64_t before = timer_wheel_moves(&w);
    cr_expect_eq(expire_at(&r, now, 1), 0);
    cr_expect_leq(timer_wheel_moves(&w) - before, TIMER_MOVES_PER_FIRE);
    cr_expect_gt(timer_wheel_moves(&w), before);
    cr_expect_leq(timer_next_due(&w), now);
    unsigned calls = drain_at(&r, now, 64);
    cr_expect_eq(r.fired, N);
    cr_expect(r.in_order);
    cr_expect_leq(calls, 1 + (N * (TIMER_LEVELS - 1)) / (64 * TIMER_MOVES_PER_FIRE) + N / 64 + 2);
    free(items);
    timer_wheel_fini(&w);
}

/* A 100 h jump with one timer: the work is its parks and cascades, not the
 * 360 million empty ms. */
Test(timer, a_long_jump_skips_empty_slots)
{
    struct timer_wheel w;
    struct run r;
    struct item a = {0};
    timer_wheel_init(&w, 777);
    run_init(&r, &w);
    uint64_t due = 777 + 100 * HOUR_MS;
    timer_arm(&w, &a.timer, due);
    unsigned calls = drain_at(&r, due, 1);
    cr_expect_eq(a.fires, 1);
    cr_expect_eq(a.fired_at_ms, due);
    uint64_t bound = 100 * HOUR_MS / TIMER_HORIZON_MS + 1 + TIMER_LEVELS;
    cr_expect_leq(timer_wheel_moves(&w), bound);
    cr_expect_leq(calls, bound / TIMER_MOVES_PER_FIRE + 2);
    timer_wheel_fini(&w);
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * UINT64_C(2685821657736338717);
}

Test(timer, a_10h_jump_fires_100k_timers_in_due_order)
{
    enum { N = 100000 };
    struct timer_wheel w;
    struct run r;
    struct item *items = calloc(N, sizeof(*items));
    cr_assert_not_null(items);
    uint64_t start = UINT64_C(1700000000000);
    timer_wheel_init(&w, start);
    run_init(&r, &w);
    rng_state = 0x9e3779b97f4a7c15u;
    uint64_t earliest = UINT64_MAX;
    for (unsigned i = 0; i < N; i++) {
        uint64_t due = start + 1 + rng_next() % (10 * HOUR_MS);
        timer_arm(&w, &items[i].timer, due);
        if (due < earliest)
            earliest = due;
    }
    cr_expect_eq(timer_wheel_count(&w), N);
    cr_expect_leq(timer_next_due(&w), earliest);
    cr_expect_eq(expire_at(&r, earliest - 1, 1000), 0);
    unsigned calls = drain_at(&r, start + 10 * HOUR_MS, 1000);
    cr_expect_eq(r.fired, N);
    cr_expect(r.in_order, "fired in nondecreasing due order");
    for (unsigned i = 0; i < N; i++)
        cr_assert_eq(items[i].fires, 1);
    cr_expect_eq(timer_wheel_count(&w), 0);
    cr_expect_eq(timer_next_due(&w), UINT64_MAX);
    /* Each timer moves down at most three levels plus a park or two. */
    cr_expect_leq(timer_wheel_moves(&w), (uint64_t)N * (TIMER_LEVELS - 1 + 2));
    cr_expect_leq(calls, N / 1000 + timer_wheel_moves(&w) / (1000 * TIMER_MOVES_PER_FIRE) + 2);
    free(items);
    timer_wheel_fini(&w);
}

Test(timer, next_due_is_exact_at_level_0_and_a_lower_bound_above)
{
    for (size_t si = 0; si < ARRAY_LEN(start_times_ms); si++) {
        for (size_t di = 1; di < ARRAY_LEN(boundary_distances_ms); di++) {
            uint64_t now = start_times_ms[si];
            uint64_t due = now + boundary_distances_ms[di];
            struct timer_wheel w;
            struct item a = {0};
            timer_wheel_init(&w, now);
            timer_arm(&w, &a.timer, due);
            uint64_t next = timer_next_due(&w);
            cr_assert_leq(next, due);
            if (due >> 6 == now >> 6)
                cr_assert_eq(next, due);
            else if (due >> 12 == now >> 12)
                cr_assert_lt(due - next, 64);
            else if (due >> 18 == now >> 18)
                cr_assert_lt(due - next, 4096);
            else if ((due >> 18) - (now >> 18) < 64)
                cr_assert_lt(due - next, TIMER_TOP_SLOT_MS);
            else
                cr_assert_eq(next, ((now >> 18) + 63) << 18, "parked in the furthest slot");
            cr_assert_gt(next, now);
            timer_wheel_fini(&w);
        }
    }
}

Test(timer, due_uint64_max_is_parked_not_lost)
{
    struct timer_wheel w;
    struct run r;
    struct item a = {0};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    timer_arm(&w, &a.timer, UINT64_MAX);
    cr_expect_lt(timer_next_due(&w), UINT64_MAX);
    drain_at(&r, 30 * HOUR_MS, 1);
    cr_expect_eq(a.fires, 0);
    cr_expect(timer_armed(&a.timer));
    cr_expect_eq(timer_wheel_count(&w), 1);
    cr_expect_gt(timer_next_due(&w), 30 * HOUR_MS);
    timer_cancel(&w, &a.timer);
    cr_expect_eq(timer_wheel_count(&w), 0);
    timer_wheel_fini(&w);
}

Test(timer, fini_disarms_every_timer)
{
    struct timer_wheel w;
    struct item a = {0}, b = {0}, c = {0};
    timer_wheel_init(&w, 100);
    timer_arm(&w, &a.timer, 50);
    timer_arm(&w, &b.timer, 5000);
    timer_arm(&w, &c.timer, 100 * HOUR_MS);
    timer_wheel_fini(&w);
    cr_expect_not(timer_armed(&a.timer));
    cr_expect_not(timer_armed(&b.timer));
    cr_expect_not(timer_armed(&c.timer));
    cr_expect_eq(timer_wheel_count(&w), 0);
    timer_cancel(&w, &b.timer);
}

Test(timer, time_going_backwards_aborts, .signal = SIGABRT)
{
    struct timer_wheel w;
    struct run r;
    timer_wheel_init(&w, 1000);
    run_init(&r, &w);
    expire_at(&r, 2000, 1);
    expire_at(&r, 1999, 1);
}

static void expire_again(struct timer *t, void *ctx)
{
    struct run *r = ctx;
    timer_expire(r->w, r->now_ms, 1, on_fire, r);
}

Test(timer, expire_from_inside_a_callback_aborts, .signal = SIGABRT)
{
    struct timer_wheel w;
    struct run r;
    struct item a = {0};
    timer_wheel_init(&w, 0);
    run_init(&r, &w);
    timer_arm(&w, &a.timer, 1);
    r.now_ms = 1;
    timer_expire(&w, 1, 1, expire_again, &r);
}

/*
 * Randomized run against a reference: a sorted array of (due, id) for the
 * armed timers. Random arms (past, level 0..3, beyond the horizon, never),
 * re-arms, cancels and time steps (0 ms to hours) with random budgets;
 * callbacks re-arm themselves and arm or cancel others. After every step the
 * count matches, timer_next_due() is at most the reference's earliest, and a
 * call that was not cut short left nothing due.
 */
enum { POOL = 2048, OPS = 100000 };

struct ref_entry {
    uint64_t due_ms;
    unsigned id;
};

struct ref {
    struct ref_entry e[POOL];
    size_t n;
    bool armed[POOL];
    uint64_t due_ms[POOL];
};

static size_t ref_lower_bound(const struct ref *ref, uint64_t due_ms)
{
    size_t lo = 0, hi = ref->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ref->e[mid].due_ms < due_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void ref_cancel(struct ref *ref, unsigned id)
{
    if (!ref->armed[id])
        return;
    size_t i = ref_lower_bound(ref, ref->due_ms[id]);
    while (i < ref->n && ref->e[i].id != id)
        i++;
    cr_assert_lt(i, ref->n, "reference lost timer %u", id);
    memmove(&ref->e[i], &ref->e[i + 1], (ref->n - i - 1) * sizeof(ref->e[0]));
    ref->n--;
    ref->armed[id] = false;
}

static void ref_arm(struct ref *ref, unsigned id, uint64_t due_ms)
{
    ref_cancel(ref, id);
    size_t i = ref_lower_bound(ref, due_ms);
    memmove(&ref->e[i + 1], &ref->e[i], (ref->n - i) * sizeof(ref->e[0]));
    ref->e[i] = (struct ref_entry){.due_ms = due_ms, .id = id};
    ref->n++;
    ref->armed[id] = true;
    ref->due_ms[id] = due_ms;
}

struct sim {
    struct timer_wheel w;
    struct ref ref;
    struct item items[POOL];
    uint64_t now_ms;
    bool quiet; /* callbacks arm and cancel nothing */
};

static uint64_t random_due(uint64_t now_ms)
{
    uint64_t r = rng_next();
    switch (r % 16) {
    case 0:
        return now_ms - (r >> 8) % 50; /* already due */
    case 1:
    case 2:
    case 3:
        return now_ms + (r >> 8) % 64;
    case 4:
    case 5:
    case 6:
        return now_ms + (r >> 8) % 4096;
    case 7:
    case 8:
    case 9:
        return now_ms + (r >> 8) % 262144;
    case 10:
    case 11:
    case 12:
        return now_ms + (r >> 8) % (TIMER_HORIZON_MS + 2 * TIMER_TOP_SLOT_MS);
    case 13:
    case 14:
        return now_ms + (r >> 8) % (30 * HOUR_MS);
    default:
        return (r >> 8) % 8 == 0 ? UINT64_MAX : now_ms + (r >> 8) % 1000;
    }
}

static uint64_t random_step(void)
{
    uint64_t r = rng_next();
    switch (r % 8) {
    case 0:
        return 0;
    case 1:
    case 2:
        return (r >> 8) % 10;
    case 3:
    case 4:
        return (r >> 8) % 300;
    case 5:
        return (r >> 8) % 10000;
    case 6:
        return (r >> 8) % 600000;
    default:
        return (r >> 8) % 64 == 0 ? (r >> 16) % (12 * HOUR_MS) : (r >> 8) % 100;
    }
}

static void sim_fire(struct timer *t, void *ctx)
{
    struct sim *s = ctx;
    struct item *it = item_of(t);
    cr_assert_not(timer_armed(t));
    cr_assert(s->ref.armed[it->id], "timer %u fired but is not armed", it->id);
    cr_assert_eq(timer_due_ms(t), s->ref.due_ms[it->id]);
    cr_assert_leq(timer_due_ms(t), s->now_ms, "fired early");
    ref_cancel(&s->ref, it->id);
    uint64_t r = rng_next();
    if (s->quiet)
        return;
    if (r % 10 == 0) {
        uint64_t due = s->now_ms + (r >> 8) % 3; /* may fire again in this pass */
        timer_arm(&s->w, t, due);
        ref_arm(&s->ref, it->id, due);
    } else if (r % 10 == 1) {
        unsigned other = (unsigned)((r >> 8) % POOL);
        timer_cancel(&s->w, &s->items[other].timer);
        ref_cancel(&s->ref, other);
    } else if (r % 10 == 2) {
        unsigned other = (unsigned)((r >> 8) % POOL);
        uint64_t due = random_due(s->now_ms);
        timer_arm(&s->w, &s->items[other].timer, due);
        ref_arm(&s->ref, other, due);
    }
}

static void sim_check(struct sim *s)
{
    cr_assert_eq(timer_wheel_count(&s->w), s->ref.n);
    uint64_t next = timer_next_due(&s->w);
    if (s->ref.n == 0) {
        cr_assert_eq(next, UINT64_MAX);
        return;
    }
    cr_assert_leq(next, s->ref.e[0].due_ms, "next_due %llu after the earliest %llu",
                  (unsigned long long)next, (unsigned long long)s->ref.e[0].due_ms);
}

static void sim_step(struct sim *s)
{
    uint64_t r = rng_next();
    unsigned id = (unsigned)((r >> 8) % POOL);
    unsigned op = (unsigned)(r % 100);
    if (op < 40) {
        uint64_t due = random_due(s->now_ms);
        timer_arm(&s->w, &s->items[id].timer, due);
        ref_arm(&s->ref, id, due);
    } else if (op < 55) {
        timer_cancel(&s->w, &s->items[id].timer);
        ref_cancel(&s->ref, id);
    } else {
        s->now_ms += random_step();
        unsigned budget = 1 + (unsigned)((r >> 20) % 64);
        unsigned n = timer_expire(&s->w, s->now_ms, budget, sim_fire, s);
        cr_assert_leq(n, budget);
        if (n < budget && timer_next_due(&s->w) > s->now_ms && s->ref.n > 0)
            cr_assert_gt(s->ref.e[0].due_ms, s->now_ms, "a due timer was left behind");
    }
    sim_check(s);
}

Test(timer, random_operations_match_a_sorted_reference)
{
    struct sim *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    rng_state = 0x243f6a8885a308d3u;
    s->now_ms = UINT64_C(1700000000000) + 12345;
    timer_wheel_init(&s->w, s->now_ms);
    for (unsigned i = 0; i < POOL; i++)
        s->items[i].id = i;
    for (unsigned i = 0; i < OPS; i++)
        sim_step(s);
    /* Then run everything (but the never-due) out and check it all fired. */
    s->now_ms += 40 * HOUR_MS;
    s->quiet = true;
    while (timer_expire(&s->w, s->now_ms, 1000, sim_fire, s) == 1000 ||
           timer_next_due(&s->w) <= s->now_ms)
        ;
    sim_check(s);
    for (size_t i = 0; i < s->ref.n; i++)
        cr_assert_eq(s->ref.e[i].due_ms, UINT64_MAX);
    timer_wheel_fini(&s->w);
    free(s);
}
