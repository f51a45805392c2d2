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

#include "broker.h"
#include "log.h"
#include "scram.h"

/* user_data: a pointer (8-aligned) with a tag in the low 3 bits, or a tag
 * with a listener index for accepts. */
enum ud_tag {
    UD_IGNORE = 0,
    UD_ACCEPT = 1,
    UD_RECV = 2,
    UD_SEND = 3,
    UD_WAKE = 4,
    UD_AUTH = 5, /* the auth pool's eventfd was written: answers are waiting */
};
#define UD_MASK   7ull
#define BUF_GROUP 0

static inline uint64_t ud_make(void *p, enum ud_tag t)
{
    return (uint64_t)(uintptr_t)p | (uint64_t)t;
}

uint64_t broker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t broker_client_hash(const uint8_t *id, size_t len)
{
    /* FNV-1a: client ids are short; the result picks the home shard and the
     * hash bucket, so it must be the same on every shard. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= id[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

int buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static struct io_uring_sqe *get_sqe(struct shard *sh)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);
    if (!sqe) {
        /* The SQ is full: hand what we have to the kernel and take a fresh
         * slot. Submitting never blocks on completions. */
        io_uring_submit(&sh->ring);
        sqe = io_uring_get_sqe(&sh->ring);
    }
    if (!sqe) {
        LOG(LOG_LEVEL_ERROR, "submission queue exhausted");
        abort();
    }
    return sqe;
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
    struct io_uring_sqe *sqe = get_sqe(sh);
    io_uring_prep_multishot_accept(sqe, sh->listen_fd[li], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ((uint64_t)li << 3) | UD_ACCEPT);
}

/* ---- shard lifecycle ---------------------------------------------------- */

int shard_create(struct broker *b, unsigned id, struct shard **out)
{
    struct shard *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return -ENOMEM;
    sh->b = b;
    sh->id = id;
    sem_init(&sh->ready, 0, 0);
    pthread_mutex_init(&sh->auth_lock, NULL);
    sh->ring_fd = -1;
    /* Blocking on purpose: io_uring fails a read of an O_NONBLOCK file
     * with -EAGAIN instead of waiting for it to become readable. */
    sh->auth_efd = eventfd(0, EFD_CLOEXEC);
    if (sh->auth_efd < 0)
        goto fail;
    for (unsigned i = 0; i < LISTENERS_MAX; i++)
        sh->listen_fd[i] = -1;
    sh->subs = trie_create();
    sh->routes = route_create();
    sh->share_routes = trie_create();
    sh->ctab_mask = 1023;
    sh->ctab = calloc(sh->ctab_mask + 1, sizeof(*sh->ctab));
    if (!sh->subs || !sh->routes || !sh->share_routes || !sh->ctab)
        goto fail;
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

static void conn_free_memory(struct conn *c);

/* An envelope left in a queue at shutdown: release what it holds. */
static void xenv_discard(struct xenv *e)
{
    if (e->type == XENV_SHARED)
        msg_unref(e->msg);
    else if (e->type == XENV_ADOPT)
        conn_free_memory(e->conn); /* in transit: on no shard's list */
    else
        mqtt_env_discard(e); /* a route change's share of a pending SUBACK */
    free(e);
}

void shard_destroy(struct shard *sh)
{
    if (!sh)
        return;
    mqtt_shard_fini(sh);
    for (unsigned i = 0; i < LISTENERS_MAX; i++)
        if (sh->listen_fd[i] >= 0)
            close(sh->listen_fd[i]);
    for (unsigned j = 0; j < SHARDS_MAX; j++) {
        if (!sh->inq[j])
            continue;
        void *items[64];
        uint32_t n;
        while ((n = xq_pop_many(sh->inq[j], items, 64)) > 0) {
            for (uint32_t i = 0; i < n; i++) {
                if (((uintptr_t)items[i] & 1u) == 0)
                    msg_unref(items[i]);
                else
                    xenv_discard((void *)((uintptr_t)items[i] & ~(uintptr_t)1));
            }
        }
        xq_destroy(sh->inq[j]);
        for (struct overflow_node *o = sh->ovf_head[j], *nx; o; o = nx) {
            nx = o->next;
            if (((uintptr_t)o->item & 1u) == 0)
                msg_unref(o->item);
            else
                xenv_discard((void *)((uintptr_t)o->item & ~(uintptr_t)1));
            free(o);
        }
    }
    /* Answers that came back after the loop ended: their connections are
     * freed already, so only the jobs are. The workers are joined. */
    for (struct auth_job *j = authpool_take(sh), *next; j; j = next) {
        next = j->next;
        authpool_job_free(sh->b, j);
    }
    if (sh->auth_efd >= 0)
        close(sh->auth_efd);
    pthread_mutex_destroy(&sh->auth_lock);
    trie_destroy(sh->subs);
    route_destroy(sh->routes);
    trie_destroy(sh->share_routes);
    sem_destroy(&sh->ready);
    free(sh->ctab);
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
    reg.bgid = BUF_GROUP;
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

static void buf_return(struct shard *sh, unsigned bid)
{
    io_uring_buf_ring_add(sh->br, sh->bufs + (size_t)bid * BUF_RING_BUF_SIZE, BUF_RING_BUF_SIZE,
                          (unsigned short)bid, io_uring_buf_ring_mask(BUF_RING_ENTRIES), 0);
    io_uring_buf_ring_advance(sh->br, 1);
}

/* ---- connections ---------------------------------------------------------- */

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(c->sh);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, ud_make(c, UD_RECV));
    c->recv_armed = true;
    c->ops++;
}

static void cancel_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(c->sh);
    io_uring_prep_cancel64(sqe, ud_make(c, UD_RECV), 0);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
}

static void conn_link(struct shard *sh, struct conn *c)
{
    c->sh = sh;
    c->prev = NULL;
    c->next = sh->conns;
    if (sh->conns)
        sh->conns->prev = c;
    sh->conns = c;
}

static void conn_unlink(struct shard *sh, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        sh->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Releases what a connection owns, the struct included. */
static void conn_free_memory(struct conn *c)
{
    if (c->tp && c->tp->destroy)
        c->tp->destroy(c);
    if (c->fd >= 0)
        close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->sending);
    free(c->username);
    free(c->assigned_id);
    scram_free(c->ax);
    if (c->connect_copy)
        explicit_bzero(c->connect_copy, c->connect_copy_len); /* it may hold a password */
    free(c->connect_copy);
    free(c->auth_reply);
    for (uint32_t i = 0; c->alias_in && i < c->alias_in_max; i++)
        free(c->alias_in[i].topic);
    free(c->alias_in);
    for (uint32_t i = 0; c->alias_out && i < c->alias_out_max; i++)
        free(c->alias_out[i].topic);
    free(c->alias_out);
    msg_unref(c->will);
    free(c);
}

static void conn_free(struct conn *c)
{
    struct shard *sh = c->sh;
    conn_unlink(sh, c);
    atomic_fetch_sub_explicit(&sh->b->conn_count, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&sh->st.connections, 1, memory_order_relaxed);
    conn_free_memory(c);
}

static bool conn_freeable(const struct conn *c)
{
    return c->state == CONN_CLOSING && c->ops == 0 && !c->dirty && !c->deferred;
}

/* Schedules the connection to be freed once nothing refers to it any more.
 * Never frees on the spot: the caller, or one further up the stack (a
 * completion handler, the parser), may still be looking at it. The loop
 * frees at the end of its turn. */
static void conn_maybe_free(struct conn *c)
{
    if (!c->reaping && conn_freeable(c)) {
        c->reaping = true;
        c->reap_next = c->sh->reap;
        c->sh->reap = c;
    }
}

static void reap_conns(struct shard *sh)
{
    struct conn *c = sh->reap;
    sh->reap = NULL;
    while (c) {
        struct conn *next = c->reap_next;
        c->reaping = false;
        if (conn_freeable(c))
            conn_free(c);
        c = next;
    }
}

void conn_hold(struct conn *c)
{
    c->ops++;
}

void conn_release(struct conn *c)
{
    c->ops--;
    conn_maybe_free(c);
}

static void conn_shutdown(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    uint8_t was = c->state;
    c->state = CONN_CLOSING;
    /* shutdown() ends the multishot receive (res 0) and any send; the
     * descriptor is closed when the last operation has completed. */
    shutdown(c->fd, SHUT_RDWR);
    if (was != CONN_HANDOFF)
        conn_on_closed(c);
    conn_maybe_free(c);
}

/* The output is out: half-close, detach from the client now (its will, a
 * takeover, do not wait for the peer), and read on, discarding, until the
 * peer closes or the linger bound (limits.h) runs out. */
static void conn_linger(struct conn *c)
{
    if (c->lingering || c->state == CONN_CLOSING)
        return;
    if (c->sh->stopping || c->fd < 0) {
        conn_shutdown(c);
        return;
    }
    c->lingering = true;
    c->close_deadline_ms = c->sh->now_ms + CLOSE_LINGER_MS;
    shutdown(c->fd, SHUT_WR);
    if (c->state != CONN_HANDOFF)
        conn_on_closed(c);
    if (!c->recv_armed)
        arm_recv(c);
}

void conn_close(struct conn *c, const char *why)
{
    if (c->state == CONN_CLOSING || c->close_after_flush)
        return;
    if (why)
        LOGC(LOG_LEVEL_DEBUG, c->client ? (const char *)c->client->id : NULL,
             c->client ? c->client->id_len : 0, "closing connection %llu from %s: %s",
             (unsigned long long)c->id, c->peer, why);
    c->close_after_flush = true;
    c->close_deadline_ms = c->sh->now_ms + CLOSE_FLUSH_MAX_MS;
    /* Nothing more from this peer is processed (parse() and on_recv()
     * look at close_after_flush), but its receive stays armed so that
     * what it still sends is read and discarded, not left to reset the
     * connection (conn_linger). */
    if (c->out.len == 0 && !c->send_inflight)
        conn_linger(c);
    else
        shard_mark_dirty(c);
}

void conn_abort(struct conn *c)
{
    conn_shutdown(c);
}

void shard_mark_dirty(struct conn *c)
{
    if (c->dirty || c->state == CONN_CLOSING)
        return;
    c->dirty = true;
    c->dirty_next = c->sh->dirty;
    c->sh->dirty = c;
}

void shard_defer(struct conn *c)
{
    if (c->deferred)
        return;
    c->deferred = true;
    c->deferred_next = c->sh->deferred;
    c->sh->deferred = c;
}

void conn_pause(struct conn *c, uint8_t reason)
{
    bool was = c->pause != 0;
    c->pause |= reason;
    if (!was && c->recv_armed)
        cancel_recv(c);
}

void conn_resume(struct conn *c, uint8_t reason)
{
    if (!(c->pause & reason))
        return;
    c->pause &= (uint8_t)~reason;
    if (c->pause || c->state == CONN_CLOSING || c->close_after_flush)
        return;
    if (!c->recv_armed)
        arm_recv(c);
    if (c->in.len > c->in_off)
        shard_defer(c);
}

static void flush_conn(struct conn *c)
{
    if (c->state == CONN_CLOSING || c->send_inflight || c->fd < 0)
        return;
    if (c->out.len == 0) {
        if (c->close_after_flush)
            conn_linger(c);
        return;
    }
    struct buf *wire = NULL;
    int err = c->tp->wire(c, &wire);
    if (err) {
        conn_shutdown(c);
        return;
    }
    c->sending_off = 0;
    struct io_uring_sqe *sqe = get_sqe(c->sh);
    io_uring_prep_send(sqe, c->fd, wire->data, wire->len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud_make(c, UD_SEND));
    c->send_inflight = true;
    c->ops++;
}

static void on_send(struct shard *sh, struct conn *c, int res)
{
    c->send_inflight = false;
    c->ops--;
    if (res < 0) {
        if (res == -EINTR || res == -EAGAIN) {
            res = 0;
        } else {
            if (c->state != CONN_CLOSING)
                LOG(LOG_LEVEL_DEBUG, "send to %s: %s", c->peer, strerror(-res));
            c->sending.len = 0;
            conn_shutdown(c);
            conn_maybe_free(c);
            return;
        }
    }
    atomic_fetch_add_explicit(&sh->st.bytes_sent, (uint64_t)res, memory_order_relaxed);
    if (res > 0)
        c->last_tx_ms = sh->now_ms;
    c->sending_off += (size_t)res;
    if (c->state == CONN_CLOSING) {
        conn_maybe_free(c);
        return;
    }
    if (c->sending_off < c->sending.len) {
        /* A short send: the rest goes before anything newer. */
        struct io_uring_sqe *sqe = get_sqe(sh);
        io_uring_prep_send(sqe, c->fd, c->sending.data + c->sending_off,
                           c->sending.len - c->sending_off, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, ud_make(c, UD_SEND));
        c->send_inflight = true;
        c->ops++;
        return;
    }
    c->sending.len = 0;
    c->sending_off = 0;
    if ((c->pause & CONN_PAUSE_OUTPUT) && c->out.len < sh->b->cfg.max_output_buffer / 2)
        conn_resume(c, CONN_PAUSE_OUTPUT);
    conn_output_drained(c);
    if (c->out.len || c->close_after_flush)
        shard_mark_dirty(c);
}

static void on_accept(struct shard *sh, unsigned li, struct io_uring_cqe *cqe)
{
    int fd = cqe->res;
    bool resource = fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM || fd == -ENOBUFS;
    if (!(cqe->flags & IORING_CQE_F_MORE) && !sh->stopping) {
        if (resource) {
            /* Out of descriptors or memory: re-arming now would fail again
             * at once and spin. The tick re-arms after a pause, and the
             * kernel's backlog holds the waiting connections meanwhile. */
            sh->accept_paused |= 1u << li;
        } else {
            arm_accept(sh, li);
        }
    }
    if (fd < 0) {
        if (resource) {
            if (sh->now_ms >= sh->accept_warned_ms + 1000) {
                sh->accept_warned_ms = sh->now_ms;
                LOG(LOG_LEVEL_WARNING, "accept: %s (retrying; raise the open-files limit?)",
                    strerror(-fd));
            }
        } else if (fd != -ECANCELED && fd != -EINTR) {
            LOG(LOG_LEVEL_WARNING, "accept: %s", strerror(-fd));
        }
        return;
    }
    if (sh->stopping) {
        close(fd);
        return;
    }
    const struct config_listener *l = &sh->b->cfg.listeners[li];
    uint64_t total = atomic_fetch_add_explicit(&sh->b->conn_count, 1, memory_order_relaxed) + 1;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c || (l->max_connections && total > l->max_connections)) {
        /* Over the limit: closing at once is the cheapest clear outcome
         * (the client cannot be told why before it sent CONNECT). */
        LOG(LOG_LEVEL_NOTICE, "connection refused: %s", c ? "max_connections reached" : "ENOMEM");
        atomic_fetch_sub_explicit(&sh->b->conn_count, 1, memory_order_relaxed);
        free(c);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        char host[INET6_ADDRSTRLEN] = "?";
        uint16_t port = 0;
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
    } else {
        /* A peer that reset at once has no address any more. */
        snprintf(c->peer, sizeof(c->peer), "(gone)");
    }
    c->fd = fd;
    c->listener = li;
    c->id = ++sh->next_conn_id * SHARDS_MAX + sh->id; /* unique across shards */
    c->tp = &transport_plain;
    c->created_ms = c->last_rx_ms = sh->now_ms;
    conn_link(sh, c);
    atomic_fetch_add_explicit(&sh->st.connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->st.connects_total, 1, memory_order_relaxed);
    LOG(LOG_LEVEL_DEBUG, "new connection %llu from %s on listener %u", (unsigned long long)c->id,
        c->peer, li);
    arm_recv(c);
}

void shard_adopt(struct shard *sh, struct conn *c)
{
    conn_link(sh, c);
    c->state = CONN_NEW;
    atomic_fetch_add_explicit(&sh->st.connections, 1, memory_order_relaxed);
    if (sh->stopping) {
        conn_shutdown(c); /* arrived after the stop began */
        return;
    }
    arm_recv(c);
    conn_process_buffered(c);
}

/* The accepting shard is done with a connection whose home is elsewhere:
 * no operation of ours is in flight, so it can move. */
static void handoff_complete(struct shard *sh, struct conn *c)
{
    struct xenv *e = calloc(1, sizeof(*e));
    if (!e) {
        c->state = CONN_NEW;
        conn_shutdown(c);
        return;
    }
    conn_unlink(sh, c);
    atomic_fetch_sub_explicit(&sh->st.connections, 1, memory_order_relaxed);
    e->type = XENV_ADOPT;
    e->from_shard = (uint16_t)sh->id;
    e->conn = c;
    c->sh = NULL;
    shard_post(sh, c->home, (void *)((uintptr_t)e | 1u));
}

static void on_recv(struct shard *sh, struct conn *c, struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    bool has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (!more) {
        c->recv_armed = false;
        c->ops--;
    }
    if (res > 0 && has_buf) {
        const uint8_t *data = sh->bufs + (size_t)bid * BUF_RING_BUF_SIZE;
        atomic_fetch_add_explicit(&sh->st.bytes_received, (uint64_t)res, memory_order_relaxed);
        if (c->state == CONN_HANDOFF) {
            /* Bytes behind the CONNECT travel with the connection. */
            if (buf_reserve(&c->in, (size_t)res) == 0) {
                memcpy(c->in.data + c->in.len, data, (size_t)res);
                c->in.len += (size_t)res;
            }
        } else if (c->lingering) {
            c->linger_bytes += (uint32_t)res;
            if (c->linger_bytes > CLOSE_LINGER_BYTES_MAX)
                conn_shutdown(c);
        } else if (c->state != CONN_CLOSING && !c->close_after_flush) {
            c->last_rx_ms = sh->now_ms;
            int err = c->tp->input(c, data, (size_t)res);
            if (err && c->state != CONN_CLOSING)
                conn_close(c, "transport error");
        }
        buf_return(sh, bid);
    } else if (has_buf) {
        buf_return(sh, bid);
    }
    if (res == 0 && !more) {
        if (c->state == CONN_HANDOFF) {
            /* Peer left during the hand-off. */
            c->state = CONN_NEW;
        }
        if (c->state != CONN_CLOSING) {
            LOGC(LOG_LEVEL_DEBUG, c->client ? (const char *)c->client->id : NULL,
                 c->client ? c->client->id_len : 0, "connection %llu closed by peer",
                 (unsigned long long)c->id);
            conn_shutdown(c);
        }
    } else if (res < 0 && !more && res != -ENOBUFS && res != -ECANCELED &&
               c->state != CONN_CLOSING) {
        LOG(LOG_LEVEL_DEBUG, "recv from %s: %s", c->peer, strerror(-res));
        if (c->state == CONN_HANDOFF)
            c->state = CONN_NEW;
        conn_shutdown(c);
    }
    /* The receive ended (buffers ran dry, a cancel for a pause that has
     * since been lifted, or the kernel just stopped the multishot): re-arm
     * whenever the connection should be reading. */
    if (!more && !c->recv_armed && c->state != CONN_CLOSING && c->state != CONN_HANDOFF &&
        (c->lingering || (!c->close_after_flush && !c->pause)))
        arm_recv(c);
    if (c->state == CONN_HANDOFF) {
        if (!c->recv_armed && c->ops == 0 && !c->deferred)
            handoff_complete(sh, c);
        return;
    }
    conn_maybe_free(c);
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
    atomic_fetch_add_explicit(&sh->st.xq_overflow, 1, memory_order_relaxed);
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
            struct io_uring_sqe *sqe = get_sqe(sh);
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
                uintptr_t p = (uintptr_t)items[i];
                if ((p & 1u) == 0) {
                    struct msg *m = items[i];
                    mqtt_deliver_local(sh, m);
                    msg_unref(m);
                } else {
                    mqtt_handle_env(sh, (struct xenv *)(p & ~(uintptr_t)1));
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
    struct io_uring_sqe *sqe = get_sqe(sh);
    io_uring_prep_read(sqe, sh->auth_efd, &sh->auth_efd_val, sizeof(sh->auth_efd_val), 0);
    io_uring_sqe_set_data64(sqe, UD_AUTH);
}

static void auth_drain(struct shard *sh)
{
    for (struct auth_job *j = authpool_take(sh), *next; j; j = next) {
        next = j->next;
        struct conn *c = j->conn;
        uint8_t rc = j->rc;
        assert(c->sh == sh && c->id == j->conn_id); /* a conn in CONN_VERIFY does not move */
        authpool_job_free(sh->b, j);
        conn_verified(c, rc); /* drops the job's hold */
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
        on_recv(sh, (struct conn *)(uintptr_t)(ud & ~UD_MASK), cqe);
        break;
    case UD_SEND:
        on_send(sh, (struct conn *)(uintptr_t)(ud & ~UD_MASK), cqe->res);
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
        if (c->state == CONN_CLOSING)
            conn_maybe_free(c);
        else
            flush_conn(c);
        c = next;
    }
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
        if (c->state == CONN_CLOSING)
            conn_maybe_free(c);
        else if (c->state == CONN_HANDOFF && !c->recv_armed && c->ops == 0)
            handoff_complete(sh, c);
        else if (c->state != CONN_HANDOFF && !(c->pause & ~CONN_PAUSE_CONGEST))
            conn_process_buffered(c); /* a congestion pause ends here */
        c = next;
    }
}

static void begin_stop(struct shard *sh)
{
    sh->stopping = true;
    sh->stop_deadline_ms = sh->now_ms + 3000;
    for (unsigned li = 0; li < sh->b->cfg.listener_count; li++) {
        if (sh->listen_fd[li] >= 0) {
            /* Cancel the multishot accept, then stop listening. */
            struct io_uring_sqe *sqe = get_sqe(sh);
            io_uring_prep_cancel64(sqe, ((uint64_t)li << 3) | UD_ACCEPT, 0);
            io_uring_sqe_set_data64(sqe, UD_IGNORE);
            shutdown(sh->listen_fd[li], SHUT_RDWR);
        }
    }
    for (struct conn *c = sh->conns, *next; c; c = next) {
        next = c->next;
        conn_shutdown_notice(c);
    }
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
    sh->now_ms = broker_now_ms();
    sh->next_tick_ms = sh->now_ms + 100;
    for (unsigned li = 0; li < sh->b->cfg.listener_count; li++)
        arm_accept(sh, li);
    if (sh->b->authpool)
        arm_auth_read(sh);
    io_uring_submit(&sh->ring);
    atomic_store(&sh->started, 1);
    sem_post(&sh->ready);

    for (uint64_t turn = 1;; turn++) {
        /* seq_cst, as main.c's swap of the security snapshot: with both
         * sides sequentially consistent, a shard that loads the old
         * snapshot in this turn has published this turn's number before,
         * so main.c waits for the next one (store-buffering order). */
        atomic_store_explicit(&sh->turns, turn, memory_order_seq_cst);
        sh->now_ms = broker_now_ms();
        if (!sh->stopping && atomic_load_explicit(&sh->b->stopping, memory_order_relaxed))
            begin_stop(sh);
        if (sh->stopping && (!sh->conns || sh->now_ms >= sh->stop_deadline_ms))
            break;

        /* Input left over from earlier turns goes first, with a fresh
         * budget. */
        sh->turn_in_bytes = 0;
        sh->input_held = false;
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
        if (sh->now_ms >= sh->next_tick_ms) {
            /* The loop wakes every 100 ms (that bounds how long a stop
             * request waits); the O(connections + sessions) scan for
             * timeouts and expiry runs once a second. */
            sh->next_tick_ms = sh->now_ms + 100;
            for (unsigned li = 0; sh->accept_paused && li < sh->b->cfg.listener_count; li++) {
                if ((sh->accept_paused & (1u << li)) && !sh->stopping)
                    arm_accept(sh, li);
            }
            sh->accept_paused = 0;
            if (sh->auth_read_broken)
                auth_drain(sh);
            if (sh->now_ms >= sh->next_scan_ms) {
                sh->next_scan_ms = sh->now_ms + 1000;
                mqtt_tick(sh, sh->now_ms);
                sys_tick(sh, sh->now_ms);
            }
        }
        flush_dirty(sh);
        if (sh->reap)
            reap_conns(sh);
        if (sh->notify_mask)
            notify_shards(sh);

        /* Held input (a full peer queue, or deliveries behind) is retried
         * soon; other shards do not signal when that clears. */
        bool held = sh->ovf_count || (sh->deferred && sh->input_held);
        bool busy = seen == LOOP_CQES_MAX || (sh->deferred && !held) || sh->dirty;
        if (busy) {
            io_uring_submit_and_get_events(&sh->ring);
            continue;
        }
        if (held) {
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 200000};
            struct io_uring_cqe *w;
            io_uring_submit_and_wait_timeout(&sh->ring, &w, 1, &ts, NULL);
            continue;
        }
        atomic_exchange_explicit(&sh->sleeping, 1, memory_order_seq_cst);
        if (!queues_empty(sh)) {
            atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
            io_uring_submit_and_get_events(&sh->ring);
            continue;
        }
        uint64_t wait_ms = sh->next_tick_ms > sh->now_ms ? sh->next_tick_ms - sh->now_ms : 0;
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)wait_ms * 1000000};
        struct io_uring_cqe *w;
        io_uring_submit_and_wait_timeout(&sh->ring, &w, 1, &ts, NULL);
        atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
    }

    /* Whatever is still open after the deadline is cut. */
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
        c->dirty = c->deferred = false;
        conn_free(c);
    }
    mqtt_thread_exit();
    share_thread_exit();
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

void shard_handoff(struct conn *c)
{
    /* The move completes from on_recv (after the cancelled receive's last
     * completion) or from the deferred list, never from inside the parser
     * that called us. */
    c->state = CONN_HANDOFF;
    if (c->recv_armed)
        cancel_recv(c);
    else
        shard_defer(c);
}
