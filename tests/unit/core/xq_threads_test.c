/*
 * Two threads drive one cross-shard queue the way two shards do: a producer
 * pushes 5 million sequence numbers in batches of varying size, a consumer
 * pops in batches of other sizes and checks that every number arrives once,
 * in order. A small ring keeps both the full and the empty paths busy. Built
 * as a plain main() so it runs under TSan (Criterion cannot start there);
 * a deadline bounds the run so a lost item fails instead of hanging.
 * Exit 0 on success, 1 with a message on failure.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "xq.h"

#define ITEMS         5000000u
#define RING_CAPACITY 1024u
#define BATCH_MAX     97u /* not a divisor of the capacity: batches straddle the end */
#define DEADLINE_S    240 /* meson's timeout is 300 s; TSan runs take tens of seconds */

struct run {
    struct xq *q;
    atomic_bool stop; /* set by whichever side fails or runs out of time */
    uint64_t deadline_ns;
    /* Each thread writes only its own failure, so the two never race. */
    const char *producer_failure;
    const char *failure; /* consumer's, then the verdict in main() */
    uint64_t failure_at;
    uint64_t consumed;
    uint64_t full_spins;
    uint64_t empty_spins;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift32: each thread has its own state, so batch sizes differ between
 * producer and consumer and from run to run of the loop. */
static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* Spinning only hurts when the other side cannot run; yield now and then so
 * the test also finishes on one CPU and under TSan. */
static void backoff(uint64_t *spins)
{
    (*spins)++;
    if ((*spins & 63) == 0)
        sched_yield();
}

static void *producer(void *arg)
{
    struct run *r = arg;
    uint32_t rng = 0x9e3779b9u;
    void *batch[BATCH_MAX];
    uint64_t next = 1; /* sequence numbers start at 1 so none is NULL */

    while (next <= ITEMS) {
        if (atomic_load_explicit(&r->stop, memory_order_relaxed))
            return NULL;
        uint32_t n = 1 + next_rand(&rng) % BATCH_MAX;
        if (n > ITEMS - next + 1)
            n = (uint32_t)(ITEMS - next + 1);
        for (uint32_t i = 0; i < n; i++)
            batch[i] = (void *)(uintptr_t)(next + i);

        uint32_t done = 0;
        while (done < n) {
            uint32_t pushed = xq_push_many(r->q, batch + done, n - done);
            done += pushed;
            if (pushed == 0) {
                if (atomic_load_explicit(&r->stop, memory_order_relaxed))
                    return NULL;
                backoff(&r->full_spins);
                if ((r->full_spins & 1023) == 0 && now_ns() > r->deadline_ns) {
                    atomic_store(&r->stop, true);
                    return NULL;
                }
            }
        }
        if (xq_depth(r->q) > RING_CAPACITY) {
            r->producer_failure = "depth seen by the producer exceeds capacity";
            atomic_store(&r->stop, true);
            return NULL;
        }
        next += n;
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct run *r = arg;
    uint32_t rng = 0x1234567u;
    void *out[BATCH_MAX];
    uint64_t expect = 1;

    while (expect <= ITEMS) {
        if (atomic_load_explicit(&r->stop, memory_order_relaxed))
            break;
        uint32_t max = 1 + next_rand(&rng) % BATCH_MAX;
        uint32_t n = xq_pop_many(r->q, out, max);
        if (n > max) {
            r->failure = "pop returned more than asked";
            r->failure_at = expect;
            break;
        }
        if (n == 0) {
            backoff(&r->empty_spins);
            if ((r->empty_spins & 1023) == 0 && now_ns() > r->deadline_ns) {
                r->failure = "deadline passed before every item arrived";
                r->failure_at = expect;
                break;
            }
            continue;
        }
        for (uint32_t i = 0; i < n; i++) {
            if ((uintptr_t)out[i] != expect) {
                r->failure = "item out of order, lost or duplicated";
                r->failure_at = expect;
                goto out;
            }
            expect++;
        }
    }
out:
    r->consumed = expect - 1;
    if (r->failure != NULL)
        atomic_store(&r->stop, true);
    return NULL;
}

int main(void)
{
    struct run r = {0};
    atomic_init(&r.stop, false);
    r.q = xq_create(RING_CAPACITY);
    if (r.q == NULL) {
        fprintf(stderr, "xq_threads_test: xq_create(%u) failed\n", RING_CAPACITY);
        return 1;
    }
    uint64_t start = now_ns();
    r.deadline_ns = start + (uint64_t)DEADLINE_S * 1000000000u;

    pthread_t prod, cons;
    if (pthread_create(&cons, NULL, consumer, &r) != 0 ||
        pthread_create(&prod, NULL, producer, &r) != 0) {
        fprintf(stderr, "xq_threads_test: pthread_create failed\n");
        return 1;
    }
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);

    /* Both threads have joined: the queue is quiescent and depth is exact. */
    uint32_t left = xq_depth(r.q);
    xq_destroy(r.q);
    double secs = (double)(now_ns() - start) / 1e9;

    if (r.failure == NULL)
        r.failure = r.producer_failure;
    if (r.failure == NULL && atomic_load(&r.stop))
        r.failure = "stopped early (producer ran out of time)";
    if (r.failure == NULL && r.consumed != ITEMS)
        r.failure = "consumer saw fewer items than were pushed";
    if (r.failure == NULL && left != 0)
        r.failure = "items left in the queue after the consumer finished";
    if (r.failure != NULL) {
        fprintf(stderr,
                "xq_threads_test: FAIL: %s (expected sequence %llu, consumed %llu of %u, "
                "%u left, %.1f s)\n",
                r.failure, (unsigned long long)r.failure_at, (unsigned long long)r.consumed, ITEMS,
                left, secs);
        return 1;
    }
    printf("xq_threads_test: ok: %u items in order through a %u-slot ring in %.2f s "
           "(producer full %llu times, consumer empty %llu times)\n",
           ITEMS, RING_CAPACITY, secs, (unsigned long long)r.full_spins,
           (unsigned long long)r.empty_spins);
    return 0;
}
