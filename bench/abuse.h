/*
 * ringmq-bench abuse scenario: the report of its two runs (abuse.c). Main
 * runs the well-behaved pairs alone and then beside the abuser (main.c,
 * run_abuse); the abuser is one more worker (worker_setup.c) whose figures
 * each result keeps apart. Main thread only, after both runs' workers are
 * joined.
 */
#ifndef RINGMQ_BENCH_ABUSE_H
#define RINGMQ_BENCH_ABUSE_H

#include "bench.h"

/* The scenario's verdict: "within 10 %" of the run alone. */
#define ABUSE_RATE_RATIO_MIN 0.9 /* delivered/s with the abuser / alone, at least */
#define ABUSE_P99_RATIO_MAX  1.1 /* p99 latency with the abuser / alone, at most */

/* Prints both runs side by side, their ratios and the abuser's figures, and
 * writes --json. with is NULL when the second run did not take place (the
 * first one's setup failed, or the run was interrupted). Returns the exit
 * status: 0, or 1 when a setup failed or the JSON could not be written. */
int abuse_report(const struct bench_result *alone, const struct bench_result *with);

#endif
