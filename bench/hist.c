/*
 * Log-linear histogram (see hist.h). The bucket of a value v >= 16 is found
 * from its highest set bit k and the HIST_SUB_BITS bits just below it, which
 * makes recording a handful of instructions: the bench records one sample per
 * delivered message on the worker threads' hot path.
 */
#include "hist.h"

#include <assert.h>
#include <string.h>

_Static_assert(HIST_BUCKETS == 976, "16 exact + 60 ranges of 16");

uint32_t hist_bucket_of(uint64_t value)
{
    if (value < HIST_SUB_COUNT)
        return (uint32_t)value;
    uint32_t k = 63u - (uint32_t)__builtin_clzll(value); /* k >= HIST_SUB_BITS */
    uint32_t sub = (uint32_t)(value >> (k - HIST_SUB_BITS)) & (HIST_SUB_COUNT - 1u);
    return HIST_SUB_COUNT + (k - HIST_SUB_BITS) * HIST_SUB_COUNT + sub;
}

uint64_t hist_bucket_upper(uint32_t bucket)
{
    assert(bucket < HIST_BUCKETS);
    if (bucket < HIST_SUB_COUNT)
        return bucket;
    uint32_t k = (bucket - HIST_SUB_COUNT) / HIST_SUB_COUNT + HIST_SUB_BITS;
    uint64_t sub = (bucket - HIST_SUB_COUNT) % HIST_SUB_COUNT;
    uint32_t shift = k - HIST_SUB_BITS;
    uint64_t lower = (HIST_SUB_COUNT + sub) << shift;
    /* The top bucket's upper bound is UINT64_MAX; lower + width - 1 cannot
     * overflow because width = 2^shift and lower <= 2^64 - 2^shift. */
    return lower + ((1ull << shift) - 1u);
}

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void hist_record(struct hist *h, uint64_t value)
{
    h->buckets[hist_bucket_of(value)]++;
    h->count++;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
    h->sum = (h->sum + value < h->sum) ? UINT64_MAX : h->sum + value;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->sum = (dst->sum + src->sum < dst->sum) ? UINT64_MAX : dst->sum + src->sum;
}

uint64_t hist_percentile(const struct hist *h, double pct)
{
    if (h->count == 0)
        return 0;
    if (pct > 100.0)
        pct = 100.0;
    /* rank = ceil(pct% of count), at least 1: the sample we must cover. */
    double want = pct / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    /* 99.9 % of 1000 is 999.0000000000001 in binary floating point: treat
     * anything within 1e-6 of an integer as that integer. */
    if (want - (double)rank > 1e-6)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_upper(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
