/*
 * The broker-wide tally from four threads at once, the way shards use it:
 * each thread takes and gives back connections of a few hot subjects under
 * a limit (the threads' own count of what they hold must never pass it),
 * draws from one rate bucket at a fixed time (exactly the burst gets
 * through, whoever asks), and makes and drops cold subjects that take
 * idle slots over in the hot subjects' windows. Built as a plain main() so
 * it runs under TSan (Criterion cannot start there). Exit 0 on success, 1
 * with a message on failure.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tally.h"

#define THREADS 4
#define ROUNDS  1000000u
#define COLD    32u
#define HOT     3u
#define LIMIT   5u
#define BURST   1000u

static struct tally *t;
static uint64_t hot[HOT];
static uint32_t hot_slot[HOT];
static _Atomic int held[HOT];      /* what the threads hold, by their own count */
static _Atomic int over;           /* times a thread saw more than LIMIT held */
static _Atomic uint64_t rate_tat;  /* the shared bucket */
static _Atomic unsigned rate_got;  /* takes it let through */
static _Atomic unsigned untracked; /* cold subjects that found no slot */
/* Cold subjects whose home is hot[0]'s: they fight over its window. */
static uint64_t cold[COLD];

static void *worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint32_t mine[HOT] = {0};
    uint64_t x = 0x9e3779b97f4a7c15ull * (id + 1);
    for (uint32_t r = 0; r < ROUNDS; r++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned h = (unsigned)(x % HOT);
        if (mine[h] && (x & 1)) {
            atomic_fetch_sub(&held[h], 1);
            tally_conn_put(t, hot_slot[h]);
            mine[h]--;
        } else if (tally_conn_take(t, hot_slot[h], hot[h], LIMIT) == 1) {
            if (atomic_fetch_add(&held[h], 1) + 1 > (int)LIMIT - 1)
                atomic_fetch_add(&over, 1);
            mine[h]++;
        }
        if (r % 64 == 0 && gcra_take(&rate_tat, 1000000, BURST, 1, BURST))
            atomic_fetch_add(&rate_got, 1);
        if (r % 16 == 0) {
            /* A cold subject: found (perhaps taking an idle slot over),
             * one connection held and given back at once. */
            uint32_t slot;
            uint64_t c = cold[(x >> 8) % COLD];
            if (!tally_find(t, c, 0, &slot))
                atomic_fetch_add(&untracked, 1);
            else if (tally_conn_take(t, slot, c, 0) == 1)
                tally_conn_put(t, slot);
        }
    }
    for (unsigned h = 0; h < HOT; h++)
        while (mine[h]--) {
            atomic_fetch_sub(&held[h], 1);
            tally_conn_put(t, hot_slot[h]);
        }
    return NULL;
}

int main(void)
{
    const uint64_t key[2] = {1, 2};
    t = tally_create(key, TALLY_SLOTS);
    if (!t) {
        fprintf(stderr, "tally_create failed\n");
        return 1;
    }
    for (unsigned h = 0; h < HOT; h++) {
        uint8_t addr[4] = {10, 0, 0, (uint8_t)h};
        hot[h] = tally_subject(t, TALLY_ADDR_LISTENER, 0, addr, 4);
        /* One connection held throughout: the slot stays the subject's
         * while cold subjects come and go around it. */
        if (!tally_find(t, hot[h], 0, &hot_slot[h]) ||
            tally_conn_take(t, hot_slot[h], hot[h], 0) != 1) {
            fprintf(stderr, "no slot for hot subject %u\n", h);
            return 1;
        }
    }
    unsigned n = 0;
    for (uint32_t i = 0; n < COLD && i < 100000000u; i++) {
        uint64_t s = tally_subject(t, TALLY_CLIENTID, 0, (const uint8_t *)&i, sizeof(i));
        if ((s & (TALLY_SLOTS - 1)) == (hot[0] & (TALLY_SLOTS - 1)))
            cold[n++] = s;
    }
    if (n < COLD) {
        fprintf(stderr, "found %u cold subjects of %u\n", n, COLD);
        return 1;
    }
    pthread_t th[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    int fail = 0;
    /* The one held from the start counts against the limit too. */
    if (atomic_load(&over)) {
        fprintf(stderr, "the limit was passed %d times\n", atomic_load(&over));
        fail = 1;
    }
    if (atomic_load(&rate_got) != BURST) {
        fprintf(stderr, "the bucket let %u through, not its burst of %u\n", atomic_load(&rate_got),
                BURST);
        fail = 1;
    }
    for (unsigned h = 0; h < HOT; h++) {
        /* Only the first connection is left: a take with limit 1 fails. */
        if (tally_conn_take(t, hot_slot[h], hot[h], 1) != 0) {
            fprintf(stderr, "hot subject %u: its count did not return to 1\n", h);
            fail = 1;
        }
    }
    printf("tally_threads: %u cold subjects untracked, %s\n", atomic_load(&untracked),
           fail ? "FAILED" : "ok");
    tally_destroy(t);
    return fail;
}
