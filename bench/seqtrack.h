/*
 * Per-stream delivery accounting for ringmq-bench. A stream is what one
 * subscriber receives from one publisher; every payload carries the
 * publisher's sequence number, starting at 0 and increasing by one per
 * message. From the sequence numbers alone the tracker tells apart:
 *
 *   seq == next      in order;
 *   seq >  next      a gap: the skipped numbers count as lost for now;
 *   seq <  next      either a duplicate (already seen) or a late arrival that
 *                    fills part of an earlier gap: then it counts as
 *                    out_of_order and no longer as lost.
 *
 * "Already seen" is answered by a bitmap over the last SEQ_WINDOW numbers. A
 * number older than that cannot be classified and is counted as too_old (and
 * neither as unique nor as duplicate), so the window must be wide enough for
 * the reordering a broker can produce; 8192 is far beyond what TCP-connected
 * brokers reorder in practice.
 *
 * At the end of a run the publisher's count of sent messages is known and the
 * final loss is seq_lost_final(): sent - unique, which also catches messages
 * lost at the tail of the stream (no later message revealed the gap).
 *
 * Caller-owned memory, no allocation, no syscalls; one thread per tracker.
 */
#ifndef RINGMQ_BENCH_SEQTRACK_H
#define RINGMQ_BENCH_SEQTRACK_H

#include <stdint.h>

#define SEQ_WINDOW (8192u)
_Static_assert((SEQ_WINDOW & (SEQ_WINDOW - 1u)) == 0, "window is a power of two");

enum seq_result {
    SEQ_IN_ORDER = 0,
    SEQ_GAP,          /* new, ahead of next: the numbers skipped are lost for now */
    SEQ_OUT_OF_ORDER, /* new, behind next: fills a gap */
    SEQ_DUPLICATE,
    SEQ_TOO_OLD, /* behind the window: unknown */
};

struct seqtrack {
    uint64_t next;      /* highest number seen + 1; 0 before the first */
    uint64_t unique;    /* distinct numbers received */
    uint64_t duplicate; /* received again */
    uint64_t out_of_order;
    uint64_t too_old;
    uint64_t lost_now; /* numbers below next not (yet) received */
    uint64_t
        seen[SEQ_WINDOW / 64u]; /* bit (seq % SEQ_WINDOW) for seq in [next - SEQ_WINDOW, next) */
};

void seq_init(struct seqtrack *t);
enum seq_result seq_record(struct seqtrack *t, uint64_t seq);
/* Loss once the publisher has sent `sent` messages (numbers 0..sent-1):
 * sent - unique, never negative. */
uint64_t seq_lost_final(const struct seqtrack *t, uint64_t sent);

#endif
