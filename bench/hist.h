/*
 * Latency histogram for ringmq-bench: log-linear buckets over unsigned 64-bit
 * values (the bench records microseconds). Values below HIST_SUB_COUNT get one
 * bucket each; above that, every power-of-two range [2^k, 2^(k+1)) is split
 * into HIST_SUB_COUNT equal sub-buckets, so a reported percentile is at most
 * 1/HIST_SUB_COUNT (6.25 %) above the true value, whatever the magnitude.
 *
 * A histogram is plain caller-owned memory with no pointers: one per thread,
 * copied and merged by the reporting thread under the caller's lock. No
 * function here allocates or makes a syscall.
 */
#ifndef RINGMQ_BENCH_HIST_H
#define RINGMQ_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS  4u
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
/* Exact buckets 0..15, then 16 sub-buckets for each k in 4..63. */
#define HIST_BUCKETS (HIST_SUB_COUNT + (64u - HIST_SUB_BITS) * HIST_SUB_COUNT)

struct hist {
    uint64_t count;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t sum; /* saturates rather than wraps */
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t value);
/* Adds every sample of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/*
 * The value at percentile pct (0 < pct <= 100): the smallest bucket upper
 * bound such that at least pct % of the samples lie at or below it, clamped
 * to [min, max] so that p100 is the exact maximum. 0 when empty.
 */
uint64_t hist_percentile(const struct hist *h, double pct);
/* Mean of the samples, 0 when empty. */
double hist_mean(const struct hist *h);

/* Bucket index of a value and the largest value that falls in a bucket:
 * exposed for the unit tests. */
uint32_t hist_bucket_of(uint64_t value);
uint64_t hist_bucket_upper(uint32_t bucket);

#endif
