/* Unit tests for bench/seqtrack.c: loss, duplicate and order accounting. */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "seqtrack.h"

static struct seqtrack *tracker(void)
{
    struct seqtrack *t = malloc(sizeof(*t));
    cr_assert_not_null(t);
    seq_init(t);
    return t;
}

Test(seqtrack, in_order_stream_has_no_loss)
{
    struct seqtrack *t = tracker();
    for (uint64_t s = 0; s < 100000; s++)
        cr_assert_eq(seq_record(t, s), SEQ_IN_ORDER);
    cr_assert_eq(t->unique, 100000);
    cr_assert_eq(t->lost_now, 0);
    cr_assert_eq(t->duplicate, 0);
    cr_assert_eq(t->out_of_order, 0);
    cr_assert_eq(seq_lost_final(t, 100000), 0);
    free(t);
}

Test(seqtrack, gap_counts_as_lost)
{
    struct seqtrack *t = tracker();
    seq_record(t, 0);
    seq_record(t, 1);
    cr_assert_eq(seq_record(t, 5), SEQ_GAP);
    cr_assert_eq(t->lost_now, 3);
    cr_assert_eq(seq_record(t, 6), SEQ_IN_ORDER);
    cr_assert_eq(seq_lost_final(t, 7), 3);
    free(t);
}

Test(seqtrack, first_message_missing_is_lost)
{
    struct seqtrack *t = tracker();
    cr_assert_eq(seq_record(t, 2), SEQ_GAP);
    cr_assert_eq(t->lost_now, 2);
    cr_assert_eq(seq_lost_final(t, 3), 2);
    free(t);
}

Test(seqtrack, late_arrival_is_out_of_order_not_lost)
{
    struct seqtrack *t = tracker();
    seq_record(t, 0);
    seq_record(t, 3);
    cr_assert_eq(t->lost_now, 2);
    cr_assert_eq(seq_record(t, 1), SEQ_OUT_OF_ORDER);
    cr_assert_eq(seq_record(t, 2), SEQ_OUT_OF_ORDER);
    cr_assert_eq(t->lost_now, 0);
    cr_assert_eq(t->out_of_order, 2);
    cr_assert_eq(t->unique, 4);
    cr_assert_eq(seq_lost_final(t, 4), 0);
    free(t);
}

Test(seqtrack, repeat_is_duplicate)
{
    struct seqtrack *t = tracker();
    seq_record(t, 0);
    seq_record(t, 1);
    cr_assert_eq(seq_record(t, 1), SEQ_DUPLICATE);
    cr_assert_eq(seq_record(t, 0), SEQ_DUPLICATE);
    cr_assert_eq(t->duplicate, 2);
    cr_assert_eq(t->unique, 2);
    cr_assert_eq(t->out_of_order, 0);
    cr_assert_eq(seq_lost_final(t, 2), 0);
    free(t);
}

Test(seqtrack, late_then_repeated_is_out_of_order_once_then_duplicate)
{
    struct seqtrack *t = tracker();
    seq_record(t, 0);
    seq_record(t, 2);
    cr_assert_eq(seq_record(t, 1), SEQ_OUT_OF_ORDER);
    cr_assert_eq(seq_record(t, 1), SEQ_DUPLICATE);
    cr_assert_eq(t->out_of_order, 1);
    cr_assert_eq(t->duplicate, 1);
    cr_assert_eq(t->lost_now, 0);
    free(t);
}

Test(seqtrack, tail_loss_found_only_at_the_end)
{
    struct seqtrack *t = tracker();
    for (uint64_t s = 0; s < 10; s++)
        seq_record(t, s);
    cr_assert_eq(t->lost_now, 0);
    cr_assert_eq(seq_lost_final(t, 15), 5);
    free(t);
}

Test(seqtrack, duplicate_does_not_hide_loss)
{
    struct seqtrack *t = tracker();
    seq_record(t, 0);
    seq_record(t, 0);
    seq_record(t, 2);
    /* 3 deliveries, 2 unique, seq 1 lost. */
    cr_assert_eq(seq_lost_final(t, 3), 1);
    free(t);
}

Test(seqtrack, window_edge_is_still_classified)
{
    struct seqtrack *t = tracker();
    for (uint64_t s = 0; s < SEQ_WINDOW; s++)
        seq_record(t, s);
    /* next = SEQ_WINDOW; seq 0 is exactly SEQ_WINDOW behind: still in the window. */
    cr_assert_eq(seq_record(t, 0), SEQ_DUPLICATE);
    seq_record(t, SEQ_WINDOW);
    /* now seq 0 is SEQ_WINDOW + 1 behind next: out of the window. */
    cr_assert_eq(seq_record(t, 0), SEQ_TOO_OLD);
    cr_assert_eq(t->too_old, 1);
    cr_assert_eq(t->duplicate, 1);
    free(t);
}

Test(seqtrack, window_slide_forgets_old_bits)
{
    struct seqtrack *t = tracker();
    seq_record(t, 0);
    /* Jump far ahead: the ring slot of 0 is reused by SEQ_WINDOW. */
    cr_assert_eq(seq_record(t, SEQ_WINDOW + 5), SEQ_GAP);
    cr_assert_eq(t->lost_now, SEQ_WINDOW + 4);
    /* SEQ_WINDOW shares slot 0 but was never received: late, not duplicate. */
    cr_assert_eq(seq_record(t, SEQ_WINDOW), SEQ_OUT_OF_ORDER);
    cr_assert_eq(t->lost_now, SEQ_WINDOW + 3);
    free(t);
}

Test(seqtrack, small_gap_slide_clears_reused_slots)
{
    struct seqtrack *t = tracker();
    for (uint64_t s = 0; s < SEQ_WINDOW; s++)
        seq_record(t, s);
    /* Skip SEQ_WINDOW..SEQ_WINDOW+2 (slots 0..2 once held seq 0..2). */
    cr_assert_eq(seq_record(t, SEQ_WINDOW + 3), SEQ_GAP);
    cr_assert_eq(seq_record(t, SEQ_WINDOW + 1), SEQ_OUT_OF_ORDER);
    cr_assert_eq(seq_record(t, SEQ_WINDOW + 1), SEQ_DUPLICATE);
    cr_assert_eq(t->lost_now, 2);
    cr_assert_eq(seq_lost_final(t, SEQ_WINDOW + 4), 2);
    free(t);
}

Test(seqtrack, shuffled_stream_accounts_exactly)
{
    /* Deliver 0..N-1 in blocks reversed within each block, drop every 97th,
     * duplicate every 31st: the counts must come out exactly. */
    struct seqtrack *t = tracker();
    const uint64_t n = 10000, block = 16;
    uint64_t dropped = 0, dups = 0;
    for (uint64_t b = 0; b < n; b += block) {
        for (uint64_t i = block; i-- > 0;) {
            uint64_t s = b + i;
            if (s % 97 == 0) {
                dropped++;
                continue;
            }
            seq_record(t, s);
            if (s % 31 == 0) {
                seq_record(t, s);
                dups++;
            }
        }
    }
    cr_assert_eq(t->unique, n - dropped);
    cr_assert_eq(t->duplicate, dups);
    cr_assert_eq(seq_lost_final(t, n), dropped);
    cr_assert_eq(t->lost_now, dropped);
    free(t);
}
