/*
 * A shard: one thread, one io_uring ring, one partition of the clients. The
 * shard is the composition root of its thread: its ring and connections
 * (net/), its engine (core/engine.h), wired by the effects (net/effects.c).
 *
 * Ownership: a shard and everything reachable from it is touched only by
 * its thread, except the atomics, the auth pool's completion list (under
 * auth_lock) and the queues into it (single producer each).
 */
#ifndef RINGMQ_SHARD_H
#define RINGMQ_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "broker.h"
#include "conn.h"
#include "engine.h"
#include "log.h"
#include "xq.h"

struct overflow_node {
    struct overflow_node *next;
    void *item;
};

struct tls_ctx;

/* The loop-lag histogram's upper bounds in ms (Prometheus le="..." in
 * seconds); SHARD_LAG_BUCKETS has one more, the unbounded one. */
#define SHARD_LAG_BOUNDS_MS                                                                        \
    {                                                                                              \
        1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000                                       \
    }
#define SHARD_LAG_BUCKETS 13u

struct shard {
    struct engine en; /* first: shard_of() */
    struct broker *b;
    unsigned id;
    pthread_t thread;
    struct io_uring ring;
    int ring_fd;
    int listen_fd[LISTENERS_MAX];
    /* This shard's context per TLS listener (NULL: plain), a reference;
     * the main thread swaps in a new one at a reload and drops the old
     * reference once the shard has turned (net/reload.c). */
    _Atomic(struct tls_ctx *) tls[LISTENERS_MAX];

    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    size_t br_size;
    /* The plaintext a connection's layer at level i makes from one input,
     * passed up before the next input (conn_feed): the layers above and
     * the engine keep what they do not consume in their own state. */
    struct buf layer_up[CONN_LAYERS_MAX];
    /* Passwords verified lately, as MACs (security/cred_cache.h); NULL
     * when there was no memory for it (every check then hashes). */
    struct cred_cache *creds;

    uint32_t accept_paused; /* listeners whose accept waits for the tick (EMFILE ...) */
    /* overload_lag_ms (net/admit.c): refusing new CONNECTs; the last turn
     * that took half the bound or more. */
    atomic_bool overloaded; /* relaxed: the metrics thread reads it for /readyz */
    uint64_t lagged_ms;
    /* Event-loop lag as the 100 ms tick sees it (how late it ran), for the
     * metrics endpoint: a histogram over SHARD_LAG_BOUNDS_MS (the last
     * bucket unbounded; counts per bucket, not cumulative) and the sum. */
    atomic_uint_fast64_t lag_hist[SHARD_LAG_BUCKETS];
    atomic_uint_fast64_t lag_sum_ms;
    uint64_t accept_warned_ms;
    uint64_t max_conn_warned_ms; /* the last max_connections refusal logged at notice */

    struct conn *conns;
    struct conn *dirty;
    struct conn *deferred;
    struct conn *reap;
    /* The handshake queue: connections whose input waits for public-key
     * work (conn_run_handshakes), first come first served. */
    struct conn *held_head, *held_tail;
    struct conn *held_now; /* the one being fed from the queue */
    uint64_t next_conn_id;

    struct xq *inq[SHARDS_MAX]; /* inq[j]: from shard j to this one */
    struct overflow_node *ovf_head[SHARDS_MAX], *ovf_tail[SHARDS_MAX];
    uint32_t ovf_count;
    uint64_t notify_mask; /* shards pushed to this turn */

    atomic_int sleeping;
    /* Loop turns begun, stored with release at the top of each turn: once
     * it moves past a value read after a snapshot swap, this shard holds
     * no pointer into the old snapshot (main.c frees it then). A shard
     * turns at least every 100 ms. */
    atomic_uint_fast64_t turns;
    uint64_t next_tick_ms;
    uint64_t next_sys_ms;
    uint64_t stop_deadline_ms;

    /* Answers from the auth pool: pushed by its workers under auth_lock,
     * announced on auth_efd, which the ring keeps a read armed on. */
    pthread_mutex_t auth_lock;
    struct auth_job *auth_done;
    int auth_efd;
    uint64_t auth_efd_val; /* the armed read's buffer */
    bool auth_read_broken; /* the read failed: the tick drains instead */

    atomic_int started; /* 1 ok, -errno failed */
    sem_t ready;        /* posted once started is set */
};

static inline struct shard *shard_of(struct engine *en)
{
    return (struct shard *)en;
}

/* The socket address of a listener (numeric IPv4/IPv6, "" = any IPv4) at
 * port. 0 or -EINVAL. */
int listener_sockaddr(const struct config_listener *l, uint16_t port, struct sockaddr_storage *ss,
                      socklen_t *sl);
int shard_create(struct broker *b, unsigned id, struct shard **out);
void shard_destroy(struct shard *sh);
int shard_start(struct shard *sh);
void shard_join(struct shard *sh);
/* Posts an item to another shard's queue (overflow list when full). */
void shard_post(struct shard *sh, unsigned to, void *item);

/* user_data of a submission: a pointer (8-aligned) with a tag in the low
 * 3 bits, or a tag with a listener index for accepts. */
enum shard_ud {
    UD_IGNORE = 0,
    UD_ACCEPT = 1,
    UD_RECV = 2,
    UD_SEND = 3,
    UD_WAKE = 4,
    UD_AUTH = 5, /* the auth pool's eventfd was written: answers are waiting */
};
#define UD_MASK         7ull
#define SHARD_BUF_GROUP 0

static inline uint64_t shard_ud(void *p, enum shard_ud t)
{
    return (uint64_t)(uintptr_t)p | (uint64_t)t;
}

/* A submission slot; when the queue is full what is there goes to the
 * kernel first (submitting never blocks on completions). */
static inline struct io_uring_sqe *shard_sqe(struct shard *sh)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);
    if (!sqe) {
        io_uring_submit(&sh->ring);
        sqe = io_uring_get_sqe(&sh->ring);
    }
    if (!sqe) {
        LOG(LOG_LEVEL_ERROR, "submission queue exhausted");
        abort();
    }
    return sqe;
}

/* A provided buffer goes back to the ring. */
static inline void shard_buf_return(struct shard *sh, unsigned bid)
{
    io_uring_buf_ring_add(sh->br, sh->bufs + (size_t)bid * BUF_RING_BUF_SIZE, BUF_RING_BUF_SIZE,
                          (unsigned short)bid, io_uring_buf_ring_mask(BUF_RING_ENTRIES), 0);
    io_uring_buf_ring_advance(sh->br, 1);
}

/* conn.c: connections. */
void conn_accept(struct shard *sh, unsigned li, int fd);
void conn_adopt(struct shard *sh, struct conn *c);
void conn_on_recv(struct shard *sh, struct conn *c, struct io_uring_cqe *cqe);
void conn_on_send(struct shard *sh, struct conn *c, int res);
void conn_flush(struct conn *c);
void conn_handoff_start(struct conn *c);
/* Shuts the socket down now (the engine hears it is gone). */
void conn_shutdown(struct conn *c);
void conn_unlink(struct shard *sh, struct conn *c);
void conn_maybe_free(struct conn *c);
void conn_reap(struct shard *sh);
/* Unlinks and frees (the loop's end). */
void conn_free(struct conn *c);
/* Frees a connection on no shard's list (in transit at shutdown). */
void conn_destroy(struct conn *c);
void conn_mark_dirty(struct conn *c);
void conn_defer(struct conn *c);
/* The answer of a password check for c: remembered when right (effects.c,
 * security/cred_cache.h), the connection's MAC wiped either way. */
void conn_cred_settle(struct conn *c, uint8_t rc);
/* Feeds the handshake queue's input for HANDSHAKE_TURN_BUDGET_US at most
 * (one connection at least); what is left waits for the next turn. */
void conn_run_handshakes(struct shard *sh);
void conn_read_stop(struct conn *c);
void conn_read_start(struct conn *c);
/* Flushes what is queued (at most CLOSE_FLUSH_MAX_MS), then lingers and
 * shuts the socket down. */
void conn_close(struct conn *c, const char *why);
void conn_hold(struct conn *c);
void conn_release(struct conn *c);

/* sys.c: $SYS statistics, published by shard 0. */
void sys_tick(struct shard *sh, uint64_t now_ms);
/* The METRICS_BROKER_COUNT values metrics_table reads from broker-wide
 * state, as of now_ms; any thread. */
void sys_broker_values(struct broker *b, uint64_t now_ms, uint64_t *v);

#endif
