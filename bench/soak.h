/*
 * ringmq-bench soak: QoS 1 and QoS 2 delivery through persistent sessions
 * and shared subscriptions while random clients are killed and come back
 * (see soak.c for the design, bench/README.md for the options).
 */
#ifndef RINGMQ_BENCH_SOAK_H
#define RINGMQ_BENCH_SOAK_H

#include <signal.h>

#include "bench.h"

#define SOAK_CLIENTS_MAX (1024u) /* publishers + subscribers */

/* Runs the whole soak on the calling thread: setup, the chaos run, the drain,
 * the verdict on stdout (and o->json_path). Returns once *stop is set (then
 * after a bounded stop) or the run is over; every wait in it has a deadline.
 * Returns the exit status: 0 when every check passed, 1 when one failed, the
 * setup failed or the run was interrupted. */
int soak_run(const struct bench_opts *o, volatile sig_atomic_t *stop);

#endif
