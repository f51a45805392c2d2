/* Unit tests for bench/hist.c: bucket layout, percentiles, merging. */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "hist.h"

Test(hist, small_values_have_exact_buckets)
{
    for (uint64_t v = 0; v < HIST_SUB_COUNT; v++) {
        cr_assert_eq(hist_bucket_of(v), v);
        cr_assert_eq(hist_bucket_upper((uint32_t)v), v);
    }
}

Test(hist, buckets_are_contiguous_and_monotonic)
{
    /* Every bucket starts right after the previous one ends. */
    for (uint32_t b = 1; b < HIST_BUCKETS; b++) {
        uint64_t lower = hist_bucket_upper(b - 1) + 1;
        cr_assert_eq(hist_bucket_of(lower), b, "bucket %u", b);
        cr_assert_eq(hist_bucket_of(hist_bucket_upper(b)), b, "bucket %u", b);
    }
    cr_assert_eq(hist_bucket_upper(HIST_BUCKETS - 1), UINT64_MAX);
    cr_assert_eq(hist_bucket_of(UINT64_MAX), HIST_BUCKETS - 1);
}

Test(hist, relative_error_within_one_sixteenth)
{
    for (uint64_t v = 1; v < (1ull << 40); v = v * 3 + 1) {
        uint64_t up = hist_bucket_upper(hist_bucket_of(v));
        cr_assert_geq(up, v);
        cr_assert_leq((double)(up - v), (double)v / HIST_SUB_COUNT, "v=%llu up=%llu",
                      (unsigned long long)v, (unsigned long long)up);
    }
}

Test(hist, empty_reports_zero)
{
    struct hist h;
    hist_init(&h);
    cr_assert_eq(hist_percentile(&h, 50), 0);
    cr_assert_eq(hist_percentile(&h, 100), 0);
    cr_assert_eq(h.count, 0);
    cr_assert_float_eq(hist_mean(&h), 0.0, 1e-9);
}

Test(hist, single_sample_is_every_percentile)
{
    struct hist h;
    hist_init(&h);
    hist_record(&h, 1234);
    cr_assert_eq(hist_percentile(&h, 0.1), 1234);
    cr_assert_eq(hist_percentile(&h, 50), 1234);
    cr_assert_eq(hist_percentile(&h, 99.9), 1234);
    cr_assert_eq(hist_percentile(&h, 100), 1234);
}

Test(hist, uniform_percentiles_within_bucket_error)
{
    struct hist h;
    hist_init(&h);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_record(&h, v);
    const double pcts[] = {50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        double exact = pcts[i] / 100.0 * 100000.0;
        uint64_t got = hist_percentile(&h, pcts[i]);
        cr_assert_geq((double)got, exact, "p%g=%llu", pcts[i], (unsigned long long)got);
        cr_assert_leq((double)got, exact * (1.0 + 1.0 / HIST_SUB_COUNT), "p%g=%llu", pcts[i],
                      (unsigned long long)got);
    }
    cr_assert_eq(hist_percentile(&h, 100), 100000);
    cr_assert_eq(h.min, 1);
    cr_assert_eq(h.max, 100000);
    cr_assert_float_eq(hist_mean(&h), 50000.5, 1e-6);
}

Test(hist, outlier_shows_only_at_the_tail)
{
    struct hist h;
    hist_init(&h);
    for (int i = 0; i < 999; i++)
        hist_record(&h, 100);
    hist_record(&h, 5000000);
    cr_assert_eq(hist_percentile(&h, 99), 103); /* 100 lies in bucket [100, 103] */
    cr_assert_eq(hist_percentile(&h, 99.9), 103);
    cr_assert_eq(hist_percentile(&h, 100), 5000000);
}

Test(hist, merge_equals_recording_everything_in_one)
{
    struct hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    srand(7);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = (uint64_t)rand() % 1000000u;
        hist_record(i % 3 ? &a : &b, v);
        hist_record(&all, v);
    }
    hist_merge(&a, &b);
    cr_assert_eq(a.count, all.count);
    cr_assert_eq(a.min, all.min);
    cr_assert_eq(a.max, all.max);
    cr_assert_eq(a.sum, all.sum);
    cr_assert_arr_eq(a.buckets, all.buckets, sizeof(a.buckets));
    cr_assert_eq(hist_percentile(&a, 99), hist_percentile(&all, 99));
}

Test(hist, merge_of_empty_changes_nothing)
{
    struct hist a, e;
    hist_init(&a);
    hist_init(&e);
    hist_record(&a, 42);
    hist_merge(&a, &e);
    cr_assert_eq(a.count, 1);
    cr_assert_eq(a.min, 42);
    hist_merge(&e, &a);
    cr_assert_eq(e.count, 1);
    cr_assert_eq(e.min, 42);
    cr_assert_eq(e.max, 42);
}

Test(hist, huge_values_do_not_overflow)
{
    struct hist h;
    hist_init(&h);
    hist_record(&h, UINT64_MAX);
    hist_record(&h, UINT64_MAX - 1);
    cr_assert_eq(h.sum, UINT64_MAX);
    cr_assert_eq(hist_percentile(&h, 100), UINT64_MAX);
    /* Both share the top bucket, whose bound is clamped to the max. */
    cr_assert_eq(hist_percentile(&h, 1), UINT64_MAX);
    cr_assert_eq(h.min, UINT64_MAX - 1);
}
