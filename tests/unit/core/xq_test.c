/*
 * Single-threaded behaviour of the cross-shard queue: what the producer and
 * consumer see at empty, full, across wraparound and with bad arguments. The
 * two-thread ordering test lives in xq_threads_test.c (a plain main(), since
 * Criterion cannot start under TSan).
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "limits.h"
#include "xq.h"

static void *item(uintptr_t v)
{
    return (void *)v;
}

Test(xq, bad_capacity_is_null)
{
    cr_expect_null(xq_create(0));
    cr_expect_null(xq_create(1));
    cr_expect_null(xq_create(3));
    cr_expect_null(xq_create(6));
    cr_expect_null(xq_create(1000));
    cr_expect_null(xq_create(UINT32_MAX));
    /* Not a power of two, just above the largest (2^31) the index scheme
     * allows. */
    cr_expect_null(xq_create((UINT32_C(1) << 31) + 1));
}

Test(xq, smallest_capacity_works)
{
    struct xq *q = xq_create(2);
    cr_assert_not_null(q);
    cr_expect_eq(xq_capacity(q), 2);
    cr_expect(xq_push(q, item(1)));
    cr_expect(xq_push(q, item(2)));
    cr_expect_not(xq_push(q, item(3)));
    void *out[4];
    cr_expect_eq(xq_pop_many(q, out, 4), 2);
    cr_expect_eq(out[0], item(1));
    cr_expect_eq(out[1], item(2));
    xq_destroy(q);
}

Test(xq, empty_pop_returns_zero)
{
    struct xq *q = xq_create(8);
    cr_assert_not_null(q);
    void *out[8] = {0};
    cr_expect_eq(xq_pop_many(q, out, 8), 0);
    cr_expect_eq(xq_pop_many(q, out, 1), 0);
    cr_expect_eq(xq_depth(q), 0);
    cr_expect_null(out[0], "an empty pop must not write out");
    xq_destroy(q);
}

Test(xq, zero_sized_batches_are_noops)
{
    struct xq *q = xq_create(4);
    cr_assert_not_null(q);
    cr_expect_eq(xq_push_many(q, NULL, 0), 0);
    cr_expect(xq_push(q, item(7)));
    cr_expect_eq(xq_pop_many(q, NULL, 0), 0);
    cr_expect_eq(xq_depth(q), 1);
    xq_destroy(q);
}

Test(xq, fill_to_capacity_then_push_fails)
{
    struct xq *q = xq_create(16);
    cr_assert_not_null(q);
    for (uintptr_t i = 1; i <= 16; i++)
        cr_assert(xq_push(q, item(i)), "push %lu of 16", (unsigned long)i);
    cr_expect_eq(xq_depth(q), 16);
    cr_expect_not(xq_push(q, item(17)), "a full ring refuses");
    void *batch[4] = {item(1), item(2), item(3), item(4)};
    cr_expect_eq(xq_push_many(q, batch, 4), 0);
    cr_expect_eq(xq_depth(q), 16, "a refused push does not change the depth");

    /* One pop makes room for exactly one. */
    void *out[1];
    cr_expect_eq(xq_pop_many(q, out, 1), 1);
    cr_expect_eq(out[0], item(1));
    cr_expect(xq_push(q, item(17)));
    cr_expect_not(xq_push(q, item(18)));
    xq_destroy(q);
}

Test(xq, push_many_is_partial_when_nearly_full)
{
    struct xq *q = xq_create(8);
    cr_assert_not_null(q);
    void *in[10];
    for (uintptr_t i = 0; i < 10; i++)
        in[i] = item(i + 100);
    cr_expect_eq(xq_push_many(q, in, 5), 5);
    cr_expect_eq(xq_push_many(q, in + 5, 5), 3, "only three slots were left");
    cr_expect_eq(xq_depth(q), 8);
    void *out[10];
    cr_expect_eq(xq_pop_many(q, out, 10), 8);
    for (int i = 0; i < 8; i++)
        cr_expect_eq(out[i], in[i], "slot %d", i);
    xq_destroy(q);
}

Test(xq, fifo_order)
{
    struct xq *q = xq_create(64);
    cr_assert_not_null(q);
    for (uintptr_t i = 0; i < 50; i++)
        cr_assert(xq_push(q, item(i * 3 + 1)));
    void *out[64];
    uint32_t got = 0;
    /* Pop in uneven batches: order must not depend on batch boundaries. */
    uint32_t sizes[] = {1, 7, 2, 13, 64};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
        got += xq_pop_many(q, out + got, sizes[s] < 64 - got ? sizes[s] : 64 - got);
    cr_assert_eq(got, 50);
    for (uintptr_t i = 0; i < 50; i++)
        cr_expect_eq(out[i], item(i * 3 + 1), "position %lu", (unsigned long)i);
    xq_destroy(q);
}

Test(xq, wraparound_keeps_order)
{
    struct xq *q = xq_create(8);
    cr_assert_not_null(q);
    uintptr_t next_in = 1, next_out = 1;
    /* Push 5, pop 3 each round: indices wrap the 8-slot ring many times and
     * batches straddle the end of the slot array. */
    for (int round = 0; round < 1000; round++) {
        void *in[5];
        uint32_t want = 8 - xq_depth(q);
        want = want < 5 ? want : 5;
        for (uint32_t i = 0; i < want; i++)
            in[i] = item(next_in + i);
        uint32_t pushed = xq_push_many(q, in, want);
        cr_assert_eq(pushed, want, "round %d", round);
        next_in += pushed;

        void *out[3];
        uint32_t popped = xq_pop_many(q, out, 3);
        cr_assert_eq(popped, 3, "round %d", round);
        for (uint32_t i = 0; i < popped; i++)
            cr_assert_eq(out[i], item(next_out++), "round %d item %u", round, i);
        cr_assert_leq(xq_depth(q), 8);
    }
    void *rest[8];
    uint32_t n = xq_pop_many(q, rest, 8);
    for (uint32_t i = 0; i < n; i++)
        cr_expect_eq(rest[i], item(next_out++));
    cr_expect_eq(next_out, next_in, "every pushed item came out once");
    cr_expect_eq(xq_depth(q), 0);
    xq_destroy(q);
}

Test(xq, depth_tracks_push_and_pop)
{
    struct xq *q = xq_create(32);
    cr_assert_not_null(q);
    cr_expect_eq(xq_depth(q), 0);
    void *in[10] = {0};
    cr_expect_eq(xq_push_many(q, in, 10), 10);
    cr_expect_eq(xq_depth(q), 10);
    void *out[4];
    cr_expect_eq(xq_pop_many(q, out, 4), 4);
    cr_expect_eq(xq_depth(q), 6);
    cr_expect_eq(xq_pop_many(q, out, 4), 4);
    cr_expect_eq(xq_pop_many(q, out, 4), 2, "only two were left");
    cr_expect_eq(xq_depth(q), 0);
    xq_destroy(q);
}

Test(xq, null_items_are_carried)
{
    /* The queue carries pointers, not ownership; NULL is a value like any
     * other and must not read as "empty". */
    struct xq *q = xq_create(4);
    cr_assert_not_null(q);
    cr_expect(xq_push(q, NULL));
    cr_expect_eq(xq_depth(q), 1);
    void *out[1] = {item(1)};
    cr_expect_eq(xq_pop_many(q, out, 1), 1);
    cr_expect_null(out[0]);
    xq_destroy(q);
}

Test(xq, design_capacity)
{
    struct xq *q = xq_create(XQ_CAPACITY);
    cr_assert_not_null(q);
    cr_expect_eq(xq_capacity(q), XQ_CAPACITY);
    xq_destroy(q);
}
