/*
 * Sequence accounting (see seqtrack.h). The bitmap is a ring indexed by
 * seq % SEQ_WINDOW; when `next` advances, the slots of the numbers it passes
 * over are cleared first, since they last held numbers SEQ_WINDOW older that
 * now leave the window.
 */
#include "seqtrack.h"

#include <string.h>

static inline void bit_set(struct seqtrack *t, uint64_t seq)
{
    uint64_t i = seq % SEQ_WINDOW;
    t->seen[i / 64u] |= 1ull << (i % 64u);
}

static inline void bit_clear(struct seqtrack *t, uint64_t seq)
{
    uint64_t i = seq % SEQ_WINDOW;
    t->seen[i / 64u] &= ~(1ull << (i % 64u));
}

static inline int bit_test(const struct seqtrack *t, uint64_t seq)
{
    uint64_t i = seq % SEQ_WINDOW;
    return (int)((t->seen[i / 64u] >> (i % 64u)) & 1u);
}

void seq_init(struct seqtrack *t)
{
    memset(t, 0, sizeof(*t));
}

enum seq_result seq_record(struct seqtrack *t, uint64_t seq)
{
    if (seq >= t->next) {
        uint64_t gap = seq - t->next;
        /* Clear the slots the window slides over (at most the whole ring). */
        if (gap + 1u >= SEQ_WINDOW) {
            memset(t->seen, 0, sizeof(t->seen));
        } else {
            for (uint64_t s = t->next; s <= seq; s++)
                bit_clear(t, s);
        }
        bit_set(t, seq);
        t->next = seq + 1u;
        t->unique++;
        t->lost_now += gap;
        return gap ? SEQ_GAP : SEQ_IN_ORDER;
    }
    if (t->next - seq > SEQ_WINDOW) {
        t->too_old++;
        return SEQ_TOO_OLD;
    }
    if (bit_test(t, seq)) {
        t->duplicate++;
        return SEQ_DUPLICATE;
    }
    bit_set(t, seq);
    t->unique++;
    t->out_of_order++;
    if (t->lost_now > 0)
        t->lost_now--;
    return SEQ_OUT_OF_ORDER;
}

uint64_t seq_lost_final(const struct seqtrack *t, uint64_t sent)
{
    return sent > t->unique ? sent - t->unique : 0;
}
