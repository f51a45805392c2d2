/*
 * A shard: one pinned thread, one io_uring ring, one partition of the
 * clients. The loop: reap a bounded batch of completions (accepts, receives,
 * sends, wake-ups), drain the other shards' queues into local delivery,
 * retry the overflow lists, continue deferred input, run the 100 ms tick,
 * flush every connection that has output, then submit and wait.
 *
 * Receives are multishot on a provided buffer ring; a packet that lies whole
 * in a kernel buffer is parsed in place, only a packet spanning buffers is
 * copied into the connection's own input buffer. Each connection has at
 * most one send in flight; what is queued meanwhile leaves with the next.
 *
 * Everything here runs on the shard's own thread, except shard_create and
 * shard_destroy (main thread, before start / after join).
 */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admit.h"
#include "authpool.h"
#include "log.h"
#include "scram.h"
#include "shard.h"
#include "tls.h"

uint64_t broker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- listeners ---------------------------------------------------------- */

int listener_sockaddr(const struct config_listener *l, uint16_t port, struct sockaddr_storage *ss,
                      socklen_t *sl)
{
    memset(ss, 0, sizeof(*ss));
    const char *addr = l->address[0] ? l->address : "0.0.0.0";
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *sl = sizeof(*s6);
    } else {
        return -EINVAL;
    }
    return 0;
}

static int listen_socket(const struct config_listener *l, uint16_t port, int *out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = listener_sockaddr(l, port, &ss, &sl);
    if (rc)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

static uint16_t socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void arm_accept(struct shard *sh, unsigned li)
{
    struct io_uring_sqe *sqe = shard_sqe(sh);
    io_uring_prep_multishot_accept(sqe, sh->listen_fd[li], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ((uint64_t)li << 3) | UD_ACCEPT);
}

/* ---- shard lifecycle ---------------------------------------------------- */

int shard_create(struct broker *b, unsigned id, struct shard **out)
{
    struct shard *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return -ENOMEM;
    int init_err = engine_init(&sh->en, &b->eng, id);
    sh->b = b;
    sh->id = id;
    sem_init(&sh->ready, 0, 0);
    pthread_mutex_init(&sh->auth_lock, NULL);
    sh->ring_fd = -1;
    sh->creds = cred_cache_create();
    /* Blocking on purpose: io_uring fails a read of an O_NONBLOCK file
     * with -EAGAIN instead of waiting for it to become readable. */
    sh->auth_efd = eventfd(0, EFD_CLOEXEC);
    for (unsigned i = 0; i < LISTENERS_MAX; i++)
        sh->listen_fd[i] = -1;
    if (init_err || sh->auth_efd < 0)
        goto fail;
    b->eng.engines[id] = &sh->en;
    timer_wheel_init(&sh->en.timers, broker_now_ms()); /* the wheel's time starts now */
    for (unsigned j = 0; j < b->shard_count; j++) {
        if (j == id)
            continue;
        sh->inq[j] = xq_create(XQ_CAPACITY);
        if (!sh->inq[j])
            goto fail;
    }
    /* Listening sockets are made here, on the main thread, so a bind
     * failure stops the start with a clear message before any thread runs. */
    for (unsigned li = 0; li < b->cfg.listener_count; li++) {
        const struct config_listener *l = &b->cfg.listeners[li];
        int err = listen_socket(l, b->listen_port[li], &sh->listen_fd[li]);
        if (err) {
            LOG(LOG_LEVEL_ERROR, "listener %s:%u: %s", l->address[0] ? l->address : "*",
                b->listen_port[li], strerror(-err));
            goto fail;
        }
        if (b->listen_port[li] == 0)
            b->listen_port[li] = socket_port(sh->listen_fd[li]);
    }
    *out = sh;
    return 0;
fail:
    shard_destroy(sh);
    return -ENOMEM;
}

/* An envelope left in a queue at shutdown: release what it holds. */
static void env_discard(struct engine_env *e)
{
    if (e->type == ENGINE_ENV_SHARED)
        msg_unref(e->msg);
    else if (e->type == ENGINE_ENV_ADOPT)
        conn_destroy(e->conn); /* in transit: on no shard's list */
    else
        engine_env_discard(e); /* a route change's share of a pending SUBACK */
    free(e);
}

/* A queue item left at shutdown. */
static void item_discard(void *item)
{
    struct engine_env *e = engine_env_of(item);
    if (e)
        env_discard(e);
    else
        msg_unref(item);
}

void shard_destroy(struct shard *sh)
{
    if (!sh)
        return;
    engine_fini(&sh->en);
    for (unsigned i = 0; i < LISTENERS_MAX; i++) {
        if (sh->listen_fd[i] >= 0)
            close(sh->listen_fd[i]);
        tls_ctx_unref(atomic_load(&sh->tls[i]));
    }
    for (unsigned j = 0; j < SHARDS_MAX; j++) {
        if (!sh->inq[j])
            continue;
        void *items[64];
        uint32_t n;
        while ((n = xq_pop_many(sh->inq[j], items, 64)) > 0) {
            for (uint32_t i = 0; i < n; i++)
                item_discard(items[i]);
        }
        xq_destroy(sh->inq[j]);
        for (struct overflow_node *o = sh->ovf_head[j], *nx; o; o = nx) {
            nx = o->next;
            item_discard(o->item);
            free(o);
        }
    }
    /* Answers that came back after the loop ended: their connections are
     * freed already, so only the jobs are. The workers are joined. */
    for (struct auth_job *j = authpool_take(sh), *next; j; j = next) {
        next = j->next;
        authpool_job_free(sh->b, j);
    }
    for (unsigned i = 0; i < CONN_LAYERS_MAX; i++)
        buf_free(&sh->layer_up[i]);
    cred_cache_destroy(sh->creds);
    if (sh->auth_efd >= 0)
        close(sh->auth_efd);
    pthread_mutex_destroy(&sh->auth_lock);
    sem_destroy(&sh->ready);
    if (sh->bufs)
        munmap(sh->bufs, (size_t)BUF_RING_ENTRIES * BUF_RING_BUF_SIZE);
    if (sh->br)
        munmap(sh->br, sh->br_size);
    free(sh);
}

static const char *ring_error_hint(int err)
{
    switch (err) {
    case -ENOMEM:
        return "locked-memory limit too low for io_uring rings (raise RLIMIT_MEMLOCK, e.g. "
               "LimitMEMLOCK= in the service unit, or ulimit -l)";
    case -EPERM:
        return "io_uring is disabled (sysctl kernel.io_uring_disabled) or not permitted for "
               "this user";
    case -ENOSYS:
        return "io_uring is not available: kernel too old, or blocked by a container's "
               "seccomp profile";
    default:
        return "io_uring setup failed";
    }
}

static int ring_setup(struct shard *sh)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.flags |= IORING_SETUP_CQSIZE;
    p.cq_entries = 8192;
    int err = io_uring_queue_init_params(1024, &sh->ring, &p);
    if (err == -EINVAL) {
        /* An older kernel refuses the newer flags: a plain ring works. */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = 8192;
        err = io_uring_queue_init_params(1024, &sh->ring, &p);
    }
    if (err) {
        LOG(LOG_LEVEL_ERROR, "io_uring_queue_init: %s: %s", strerror(-err), ring_error_hint(err));
        return err;
    }
    sh->ring_fd = sh->ring.ring_fd;

    /* The provided buffer ring (liburing 2.3 has no io_uring_setup_buf_ring:
     * the ring memory is ours, page aligned). */
    sh->br_size = (size_t)BUF_RING_ENTRIES * sizeof(struct io_uring_buf);
    sh->br = mmap(NULL, sh->br_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sh->bufs = mmap(NULL, (size_t)BUF_RING_ENTRIES * BUF_RING_BUF_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sh->br == MAP_FAILED || sh->bufs == MAP_FAILED) {
        sh->br = NULL;
        sh->bufs = NULL;
        return -ENOMEM;
    }
    /* Fault the buffers in now. The kernel hands them out in ring order, so
     * each of the first BUF_RING_ENTRIES receives lands on an untouched page
     * and takes a page fault inside the recv copy: at 100 msg/s that was
     * every message of the first five seconds, +30 us p50 and +45 us of
     * broker CPU per message on a 2-vCPU VM. The ring cycles through all
     * buffers under any steady load, so this is the resident size anyway.
     * Huge pages (best effort) keep the 8 MiB in a few TLB entries. */
    madvise(sh->bufs, (size_t)BUF_RING_ENTRIES * BUF_RING_BUF_SIZE, MADV_HUGEPAGE);
    for (size_t off = 0; off < (size_t)BUF_RING_ENTRIES * BUF_RING_BUF_SIZE; off += 4096)
        sh->bufs[off] = 0;
    io_uring_buf_ring_init(sh->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)sh->br;
    reg.ring_entries = BUF_RING_ENTRIES;
    reg.bgid = SHARD_BUF_GROUP;
    err = io_uring_register_buf_ring(&sh->ring, &reg, 0);
    if (err) {
        LOG(LOG_LEVEL_ERROR, "io_uring_register_buf_ring: %s (kernel 5.19 or later needed)",
            strerror(-err));
        return err;
    }
    int mask = io_uring_buf_ring_mask(BUF_RING_ENTRIES);
    for (unsigned i = 0; i < BUF_RING_ENTRIES; i++)
        io_uring_buf_ring_add(sh->br, sh->bufs + (size_t)i * BUF_RING_BUF_SIZE, BUF_RING_BUF_SIZE,
                              (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(sh->br, BUF_RING_ENTRIES);
    return 0;
}

/* A failed accept: pause accepting on resource errors (re-arming now would
 * fail again at once and spin; the tick re-arms, the kernel's backlog holds
 * the waiting connections meanwhile). */
static void accept_failed(struct shard *sh, int err)
{
    bool resource = err == -EMFILE || err == -ENFILE || err == -ENOMEM || err == -ENOBUFS;
    if (resource) {
        if (sh->en.now_ms >= sh->accept_warned_ms + 1000) {
            sh->accept_warned_ms = sh->en.now_ms;
            LOG(LOG_LEVEL_WARNING, "accept: %s (retrying; raise the open-files limit?)",
                strerror(-err));
        }
    } else if (err != -ECANCELED && err != -EINTR) {
        LOG(LOG_LEVEL_WARNING, "accept: %s", strerror(-err));
    }
}

static void on_accept(struct shard *sh, unsigned li, struct io_uring_cqe *cqe)
{
    int fd = cqe->res;
    bool resource = fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM || fd == -ENOBUFS;
    if (!(cqe->flags & IORING_CQE_F_MORE) && !sh->en.stopping) {
        if (resource)
            sh->accept_paused |= 1u << li;
        else
            arm_accept(sh, li);
    }
    if (fd < 0) {
        accept_failed(sh, fd);
        return;
    }
    if (sh->en.stopping) {
        close(fd);
        return;
    }
    conn_accept(sh, li, fd);
}

/* ---- cross-shard ------------------------------------------------------------ */

void shard_post(struct shard *sh, unsigned to, void *item)
{
    struct shard *dst = sh->b->shards[to];
    sh->notify_mask |= 1ull << to;
    if (!sh->ovf_head[to] && xq_push(dst->inq[sh->id], item))
        return;
    /* Full: never block, never drop. Keep it in order behind earlier
     * overflow and retry every turn. */
    struct overflow_node *o = malloc(sizeof(*o));
    if (!o) {
        LOG(LOG_LEVEL_ERROR, "out of memory for the cross-shard overflow list");
        abort();
    }
    o->next = NULL;
    o->item = item;
    if (sh->ovf_tail[to])
        sh->ovf_tail[to]->next = o;
    else
        sh->ovf_head[to] = o;
    sh->ovf_tail[to] = o;
    sh->ovf_count++;
    atomic_fetch_add_explicit(&sh->en.st.xq_overflow, 1, memory_order_relaxed);
}

static void retry_overflow(struct shard *sh)
{
    for (unsigned to = 0; to < sh->b->shard_count && sh->ovf_count; to++) {
        struct xq *q = sh->b->shards[to]->inq[sh->id];
        while (sh->ovf_head[to] && xq_push(q, sh->ovf_head[to]->item)) {
            struct overflow_node *o = sh->ovf_head[to];
            sh->ovf_head[to] = o->next;
            if (!sh->ovf_head[to])
                sh->ovf_tail[to] = NULL;
            free(o);
            sh->ovf_count--;
            sh->notify_mask |= 1ull << to;
        }
    }
}

static void notify_shards(struct shard *sh)
{
    uint64_t mask = sh->notify_mask;
    sh->notify_mask = 0;
    while (mask) {
        unsigned to = (unsigned)__builtin_ctzll(mask);
        mask &= mask - 1;
        struct shard *dst = sh->b->shards[to];
        /* Pairs with the consumer's exchange on sleeping before its last
         * look at the queues: either it sees our items or we see it asleep.
         * A read-modify-write, not a plain load, so the store of our items
         * cannot pass it (a full barrier; TSan understands it, unlike a
         * stand-alone fence). */
        if (atomic_fetch_or_explicit(&dst->sleeping, 0, memory_order_seq_cst)) {
            struct io_uring_sqe *sqe = shard_sqe(sh);
            io_uring_prep_msg_ring(sqe, dst->ring_fd, 0, UD_WAKE, 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data64(sqe, UD_IGNORE);
        }
    }
}

static bool queues_empty(struct shard *sh)
{
    for (unsigned j = 0; j < sh->b->shard_count; j++)
        if (sh->inq[j] && xq_depth(sh->inq[j]))
            return false;
    return true;
}

static void drain_queues(struct shard *sh)
{
    void *items[64];
    for (unsigned j = 0; j < sh->b->shard_count; j++) {
        if (!sh->inq[j])
            continue;
        /* Bounded per source and turn, so one busy peer cannot starve the
         * sockets. */
        for (unsigned round = 0; round < 64; round++) {
            uint32_t n = xq_pop_many(sh->inq[j], items, 64);
            for (uint32_t i = 0; i < n; i++) {
                struct engine_env *e = engine_env_of(items[i]);
                if (!e) {
                    engine_deliver_local(&sh->en, items[i]);
                    msg_unref(items[i]);
                } else if (e->type == ENGINE_ENV_ADOPT) {
                    struct conn *c = e->conn;
                    free(e);
                    conn_adopt(sh, c);
                } else {
                    engine_handle_env(&sh->en, e);
                }
            }
            if (n < 64)
                break;
        }
    }
}

/* ---- answers from the auth pool ------------------------------------------ */

static void arm_auth_read(struct shard *sh)
{
    struct io_uring_sqe *sqe = shard_sqe(sh);
    io_uring_prep_read(sqe, sh->auth_efd, &sh->auth_efd_val, sizeof(sh->auth_efd_val), 0);
    io_uring_sqe_set_data64(sqe, UD_AUTH);
}

static void auth_drain(struct shard *sh)
{
    for (struct auth_job *j = authpool_take(sh), *next; j; j = next) {
        next = j->next;
        struct conn *c = j->conn;
        uint8_t rc = j->rc;
        /* A connection waiting for its check does not move. */
        assert(c->sh == sh && c->e.id == j->conn_id);
        authpool_job_free(sh->b, j);
        c->verify_job = NULL;
        conn_cred_settle(c, rc);
        if (c->io == CONN_IO_OPEN && !c->close_after_flush &&
            engine_verified(&c->e, rc) == ENGINE_HANDOFF)
            conn_defer(c); /* the move starts from the deferred list */
        conn_release(c);   /* the job's hold; frees at the end of the turn at the earliest */
    }
}

static void on_auth_done(struct shard *sh, int res)
{
    auth_drain(sh);
    if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        /* Not expected from an eventfd. Without the read, answers are
         * picked up by the 100 ms tick (shard_main) instead. */
        LOG(LOG_LEVEL_ERROR, "auth pool wake-up read: %s", strerror(-res));
        sh->auth_read_broken = true;
        return;
    }
    arm_auth_read(sh);
}

/* ---- the loop ------------------------------------------------------------- */

static void handle_cqe(struct shard *sh, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    switch (ud & UD_MASK) {
    case UD_ACCEPT:
        on_accept(sh, (unsigned)(ud >> 3), cqe);
        break;
    case UD_RECV:
        conn_on_recv(sh, (struct conn *)(uintptr_t)(ud & ~UD_MASK), cqe);
        break;
    case UD_SEND:
        conn_on_send(sh, (struct conn *)(uintptr_t)(ud & ~UD_MASK), cqe->res);
        break;
    case UD_AUTH:
        on_auth_done(sh, cqe->res);
        break;
    default:
        /* Wake-ups and cancels carry nothing to do. */
        break;
    }
}

static void flush_dirty(struct shard *sh)
{
    struct conn *c = sh->dirty;
    sh->dirty = NULL;
    while (c) {
        struct conn *next = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->io == CONN_IO_CLOSING)
            conn_maybe_free(c);
        else
            conn_flush(c);
        c = next;
    }
}

/* The accepting shard is done with a connection whose home is elsewhere:
 * no operation of ours is in flight, so it can move. */
static void handoff_complete(struct shard *sh, struct conn *c)
{
    if (c->close_after_flush) {
        /* Closed meanwhile (its close deadline is on this shard's wheel):
         * it ends here, it never reached a session. */
        conn_shutdown(c);
        return;
    }
    struct engine_env *e = calloc(1, sizeof(*e));
    if (!e) {
        engine_close(&c->e, "out of memory");
        conn_shutdown(c);
        return;
    }
    conn_unlink(sh, c);
    atomic_fetch_sub_explicit(&sh->en.st.connections, 1, memory_order_relaxed);
    e->type = ENGINE_ENV_ADOPT;
    e->from_shard = (uint16_t)sh->id;
    e->conn = c;
    c->sh = NULL;
    shard_post(sh, c->e.home, engine_env_item(e));
}

static void run_deferred(struct shard *sh)
{
    /* While a peer shard's queue is full, input stays where it is: that is
     * the back-pressure that keeps publishers from outrunning delivery. */
    if (sh->ovf_count)
        return;
    struct conn *c = sh->deferred;
    sh->deferred = NULL;
    while (c) {
        struct conn *next = c->deferred_next;
        c->deferred = false;
        c->deferred_next = NULL;
        if (c->io == CONN_IO_CLOSING)
            conn_maybe_free(c);
        else if (c->e.phase == ENGINE_PLACED && c->io == CONN_IO_OPEN)
            conn_handoff_start(c);
        else if (c->io == CONN_IO_HANDOFF && !c->recv_armed && c->ops == 0)
            handoff_complete(sh, c);
        else if (c->io != CONN_IO_OPEN)
            ; /* handing off: the completion of its last operation defers it again */
        else if (c->e.pause & ~ENGINE_PAUSE_CONGEST)
            c->e.yielded = false; /* paused: engine_unpause yields again */
        else if (engine_resume(&c->e) == ENGINE_HANDOFF)
            conn_defer(c); /* a congestion pause ends in engine_resume */
        c = next;
    }
}

static void begin_stop(struct shard *sh)
{
    sh->en.stopping = true;
    sh->stop_deadline_ms = sh->en.now_ms + 3000;
    for (unsigned li = 0; li < sh->b->cfg.listener_count; li++) {
        if (sh->listen_fd[li] >= 0) {
            /* Cancel the multishot accept, then stop listening. */
            struct io_uring_sqe *sqe = shard_sqe(sh);
            io_uring_prep_cancel64(sqe, ((uint64_t)li << 3) | UD_ACCEPT, 0);
            io_uring_sqe_set_data64(sqe, UD_IGNORE);
            shutdown(sh->listen_fd[li], SHUT_RDWR);
        }
    }
    for (struct conn *c = sh->conns, *next; c; c = next) {
        next = c->next;
        if (c->io == CONN_IO_HANDOFF)
            conn_shutdown(c); /* not moved any more: it ends here */
        else if (!c->close_after_flush)
            engine_shutdown_notice(&c->e);
    }
}

/* The 100 ms tick: what has no deadline of its own. The loop wakes at
 * least this often, which bounds how long a stop request waits. */
static void shard_tick(struct shard *sh)
{
    static const uint32_t bounds[] = SHARD_LAG_BOUNDS_MS;
    _Static_assert(sizeof(bounds) / sizeof(bounds[0]) + 1 == SHARD_LAG_BUCKETS, "one more bucket");
    uint64_t lag = sh->en.now_ms - sh->next_tick_ms; /* due at next_tick_ms, run now */
    unsigned bi = 0;
    while (bi < SHARD_LAG_BUCKETS - 1 && lag > bounds[bi])
        bi++;
    atomic_fetch_add_explicit(&sh->lag_hist[bi], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->lag_sum_ms, lag, memory_order_relaxed);
    sh->next_tick_ms = sh->en.now_ms + 100;
    for (unsigned li = 0; sh->accept_paused && li < sh->b->cfg.listener_count; li++) {
        if ((sh->accept_paused & (1u << li)) && !sh->en.stopping)
            arm_accept(sh, li);
    }
    sh->accept_paused = 0;
    if (sh->auth_read_broken)
        auth_drain(sh);
    sys_tick(sh, sh->en.now_ms); /* keeps its own sys_interval */
}

/* Submits and waits as the turn's state allows: at once when busy, soon
 * when input is held (other shards do not signal when that clears), else
 * until a completion, the next deadline or the next tick. */
static void shard_wait(struct shard *sh, bool busy)
{
    bool held = sh->ovf_count || (sh->deferred && sh->en.input_held);
    busy = busy || (sh->deferred && !held) || sh->dirty || sh->held_head;
    struct io_uring_cqe *w;
    if (busy) {
        io_uring_submit_and_get_events(&sh->ring);
        return;
    }
    if (held) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 200000};
        io_uring_submit_and_wait_timeout(&sh->ring, &w, 1, &ts, NULL);
        return;
    }
    atomic_exchange_explicit(&sh->sleeping, 1, memory_order_seq_cst);
    if (!queues_empty(sh)) {
        atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
        io_uring_submit_and_get_events(&sh->ring);
        return;
    }
    uint64_t until = sh->next_tick_ms;
    uint64_t due = engine_next_deadline(&sh->en);
    if (due < until)
        until = due;
    uint64_t wait_ms = until > sh->en.now_ms ? until - sh->en.now_ms : 0;
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)wait_ms * 1000000};
    io_uring_submit_and_wait_timeout(&sh->ring, &w, 1, &ts, NULL);
    atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
}

/* One loop turn; false once the shard is to end. */
static bool shard_turn(struct shard *sh, uint64_t turn)
{
    /* seq_cst, as main.c's swap of the security snapshot: with both sides
     * sequentially consistent, a shard that loads the old snapshot in this
     * turn has published this turn's number before, so main.c waits for
     * the next one (store-buffering order). */
    atomic_store_explicit(&sh->turns, turn, memory_order_seq_cst);
    sh->en.now_ms = broker_now_ms();
    if (!sh->en.stopping && atomic_load_explicit(&sh->b->stopping, memory_order_relaxed))
        begin_stop(sh);
    if (sh->en.stopping && (!sh->conns || sh->en.now_ms >= sh->stop_deadline_ms))
        return false;
    /* Input left over from earlier turns goes first, with a fresh budget. */
    sh->en.turn_in_bytes = 0;
    sh->en.input_held = false;
    if (sh->deferred)
        run_deferred(sh);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&sh->ring, head, cqe)
    {
        handle_cqe(sh, cqe);
        if (++seen == LOOP_CQES_MAX)
            break;
    }
    io_uring_cq_advance(&sh->ring, seen);
    drain_queues(sh);
    if (sh->ovf_count)
        retry_overflow(sh);
    /* Deadlines (keepalive, timeouts, expiry, wills, closing) fire when
     * due, a bounded number per turn. */
    unsigned fired = engine_run_timers(&sh->en, sh->en.now_ms, LOOP_TIMERS_MAX);
    if (sh->en.now_ms >= sh->next_tick_ms)
        shard_tick(sh);
    flush_dirty(sh);
    if (sh->held_head) {
        /* What the turn made for connected clients leaves before the
         * handshakes begin, then theirs. */
        if (io_uring_sq_ready(&sh->ring))
            io_uring_submit(&sh->ring);
        conn_run_handshakes(sh);
        flush_dirty(sh);
    }
    if (sh->reap)
        conn_reap(sh);
    if (sh->notify_mask)
        notify_shards(sh);
    if (sh->b->cfg.overload_lag_ms) {
        uint64_t end_ms = broker_now_ms();
        admit_turn(sh, end_ms - sh->en.now_ms, end_ms);
    }
    shard_wait(sh, seen == LOOP_CQES_MAX || fired == LOOP_TIMERS_MAX);
    return true;
}

/* After the loop: whatever is still open is cut and freed. */
static void shard_end(struct shard *sh)
{
    for (struct conn *c = sh->conns, *next; c; c = next) {
        next = c->next;
        conn_shutdown(c);
    }
    io_uring_queue_exit(&sh->ring);
    /* The kernel has dropped every operation with the ring: free what is
     * left without waiting for completions. */
    while (sh->conns) {
        struct conn *c = sh->conns;
        c->ops = 0;
        c->dirty = c->deferred = c->held_queued = false;
        conn_free(c);
    }
    engine_thread_exit();
}

static void *shard_main(void *arg)
{
    struct shard *sh = arg;
    log_set_thread((int)sh->id);
    int err = ring_setup(sh);
    if (err) {
        atomic_store(&sh->started, err < 0 ? err : -EIO);
        sem_post(&sh->ready);
        return NULL;
    }
    sh->en.now_ms = broker_now_ms();
    sh->next_tick_ms = sh->en.now_ms + 100;
    for (unsigned li = 0; li < sh->b->cfg.listener_count; li++)
        arm_accept(sh, li);
    if (sh->b->authpool)
        arm_auth_read(sh);
    io_uring_submit(&sh->ring);
    atomic_store(&sh->started, 1);
    sem_post(&sh->ready);
    for (uint64_t turn = 1; shard_turn(sh, turn); turn++)
        ;
    shard_end(sh);
    return NULL;
}

int shard_start(struct shard *sh)
{
    int err = pthread_create(&sh->thread, NULL, shard_main, sh);
    if (err)
        return -err;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (sh->b->cfg.cpu_affinity && ncpu > 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(sh->id % (unsigned)ncpu, &set);
        /* Pinning is a performance hint; a restricted cpuset may refuse it. */
        pthread_setaffinity_np(sh->thread, sizeof(set), &set);
    }
    /* Block, not spin: on a loaded machine a spinning main thread can keep
     * the new shard thread off the CPU it is pinned to for seconds. */
    while (sem_wait(&sh->ready) != 0 && errno == EINTR)
        ;
    return atomic_load(&sh->started) == 1 ? 0 : atomic_load(&sh->started);
}

void shard_join(struct shard *sh)
{
    pthread_join(sh->thread, NULL);
}
