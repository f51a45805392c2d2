/*
 * What every thread of the runtime can see: the broker. Written by the main
 * thread before the shards start; afterwards shards read it, except for the
 * atomics, the retained store (under retain_lock) and the auth snapshot
 * pointer. The engine's shared part (struct engine_shared) is embedded.
 */
#ifndef RINGMQ_BROKER_H
#define RINGMQ_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "cred_cache.h"
#include "engine.h"
#include "limits.h"

struct shard;
struct authpool;
struct tally;
struct tls_tickets;
struct metrics_http;

struct broker {
    struct config cfg;
    struct engine_shared eng; /* cfg, shard count, retained store, hash key, session count */
    unsigned shard_count;
    struct shard *shards[SHARDS_MAX];
    _Atomic(struct auth_snapshot *) auth;
    pthread_rwlock_t retain_lock;
    atomic_bool stopping;
    atomic_uint_fast64_t conn_count;
    uint16_t listen_port[LISTENERS_MAX]; /* resolved ports (0 in config = ephemeral) */
    uint64_t start_ms;
    struct authpool *authpool; /* NULL: auth_threads 0, passwords are checked on the shard */
    /* memory_limit (main.c): the resolved bound, written before the shards
     * start; the allocator's usage as the main thread sampled it last
     * (every 50 ms, net/memwatch.c). The flag the shards read is
     * eng.mem_over: set at mem_limit, cleared under 90% of it;
     * eng.mem_near: set at 90%, cleared under 80%. */
    uint64_t mem_limit;                 /* bytes, never 0 once shards run */
    atomic_uint_fast64_t mem_allocated; /* bytes */
    /* TLS (net/reload.c): the session-ticket keys every shard's contexts
     * share (NULL: tls_ticket_rotation 0 or no TLS listener); the
     * generation of the contexts in use; per listener, whole days until
     * the first of its certificates expires (INT32_MIN: not TLS or not
     * readable), for the metrics endpoint. */
    struct tls_tickets *tickets;
    uint64_t tls_generation;
    /* The key of the verified-credential caches (security/cred_cache.h),
     * drawn at start-up, only in memory. */
    uint8_t cred_key[CRED_KEY_LEN];
    _Atomic int tls_days_left[LISTENERS_MAX];
    /* Per listener, the notAfter (Unix seconds) of the certificate that
     * expires first; 0: none readable (the metrics endpoint). */
    _Atomic int64_t tls_not_after[LISTENERS_MAX];
    /* Admission (net/admit.c): the per-address tallies and those of
     * client ids and usernames, each a table of its own so that churning
     * ids cannot crowd addresses out (NULL when no limit needs them), and
     * each listener's max_connect_rate bucket (a GCRA time,
     * security/tally.h). */
    struct tally *tally;
    struct tally *names;
    _Atomic uint64_t connect_tat[LISTENERS_MAX];
    /* metrics_listener (net/metrics_http.c): the endpoint's thread, NULL
     * when off; while it checks a basic-auth password it holds a pointer
     * into the security snapshot and says so here (seq_cst), so that a
     * reload keeps the old snapshot until it is done (net/reload.c). */
    struct metrics_http *metrics;
    atomic_bool metrics_in_snapshot;
};

/* Monotonic milliseconds. */
uint64_t broker_now_ms(void);

#endif
