/*
 * Connections in the runtime: accept, the multishot receive and one send
 * in flight, the layer chain between the socket and the engine, closing
 * (flush, linger, shutdown) and freeing (the reap list: never on the spot).
 *
 * Everything here runs on the thread of the shard that owns the
 * connection. It calls the engine (core/engine.h) and liburing; nothing in
 * shard.c, so the shard's loop can call in here without a circle.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admit.h"
#include "authpool.h"
#include "engine_fx.h"
#include "invariant.h"
#include "log.h"
#include "proxy_layer.h"
#include "scram.h"
#include "shard.h"
#include "tally.h"
#include "tls.h"

/* ---- connections ---------------------------------------------------------- */

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = shard_sqe(c->sh);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = SHARD_BUF_GROUP;
    io_uring_sqe_set_data64(sqe, shard_ud(c, UD_RECV));
    c->recv_armed = true;
    c->ops++;
}

static void cancel_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = shard_sqe(c->sh);
    io_uring_prep_cancel64(sqe, shard_ud(c, UD_RECV), 0);
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

void conn_unlink(struct shard *sh, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        sh->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* The runtime's part of what the engine asked for is gone with the
 * connection: a check in the pool is cancelled, an exchange freed. */
static void conn_forget_auth(struct conn *c)
{
    if (c->verify_job) {
        /* Nobody waits for this check any more: a worker that has not
         * begun it skips the hash (a storm's closed connections would
         * otherwise keep the pool busy for clients still waiting). The job
         * stays the shard's to free when it comes back. */
        atomic_store_explicit(&c->verify_job->cancelled, true, memory_order_relaxed);
    }
    scram_free(c->ax);
    c->ax = NULL;
}

void conn_cred_settle(struct conn *c, uint8_t rc)
{
    if (!c->cred_pending)
        return;
    if (rc == MQTT_RC_SUCCESS)
        cred_cache_put(c->sh->creds, c->cred_mac, c->cred_generation, c->e.en->now_ms,
                       (uint64_t)c->sh->b->cfg.auth_cache_s * 1000u);
    c->cred_pending = false;
    explicit_bzero(c->cred_mac, sizeof(c->cred_mac));
}

/* Releases what a connection owns, the struct included. */
void conn_destroy(struct conn *c)
{
    ASSERT(!timer_armed(&c->close_timer.t)); /* on its shard's wheel until conn_free */
    for (unsigned i = 0; i < c->layers; i++) {
        buf_free(&c->layer[i]->above);
        if (c->layer[i]->ops->destroy)
            c->layer[i]->ops->destroy(c->layer[i]);
    }
    if (c->fd >= 0)
        close(c->fd);
    buf_free(&c->wire);
    buf_free(&c->sending);
    buf_free(&c->held);
    explicit_bzero(c->cred_mac, sizeof(c->cred_mac));
    conn_forget_auth(c);
    engine_conn_fini(&c->e);
    free(c);
}

void conn_free(struct conn *c)
{
    struct shard *sh = c->sh;
    timer_cancel(&sh->en.timers, &c->close_timer.t);
    conn_unlink(sh, c);
    atomic_fetch_sub_explicit(&sh->b->conn_count, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&sh->en.st.connections, 1, memory_order_relaxed);
    admit_release(sh->b, c->tally_slot);
    c->tally_slot = TALLY_NONE;
    conn_destroy(c);
}

static bool conn_freeable(const struct conn *c)
{
    return c->io == CONN_IO_CLOSING && c->ops == 0 && !c->dirty && !c->deferred && !c->held_queued;
}

/* Schedules the connection to be freed once nothing refers to it any more.
 * Never frees on the spot: the caller, or one further up the stack (a
 * completion handler, the engine), may still be looking at it. The loop
 * frees at the end of its turn. */
void conn_maybe_free(struct conn *c)
{
    if (!c->reaping && conn_freeable(c)) {
        c->reaping = true;
        c->reap_next = c->sh->reap;
        c->sh->reap = c;
    }
}

void conn_reap(struct shard *sh)
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

/* The engine hears that the connection is gone (not for one being handed
 * off: it is gone from no client yet). */
static void conn_gone(struct conn *c, bool handing_off)
{
    conn_forget_auth(c);
    if (!handing_off)
        engine_closed(&c->e);
}

void conn_shutdown(struct conn *c)
{
    if (c->io == CONN_IO_CLOSING)
        return;
    bool handing_off = c->io == CONN_IO_HANDOFF;
    c->io = CONN_IO_CLOSING;
    /* shutdown() ends the multishot receive (res 0) and any send; the
     * descriptor is closed when the last operation has completed. */
    shutdown(c->fd, SHUT_RDWR);
    if (!c->lingering)
        conn_gone(c, handing_off);
    conn_maybe_free(c);
}

/* The output is out: the layers end their part (close_notify), then
 * half-close, detach from the client now (its will, a takeover, do not
 * wait for the peer), and read on, discarding, until the peer closes or
 * the linger bound (limits.h) runs out. */
static void conn_linger(struct conn *c)
{
    if (c->lingering || c->io == CONN_IO_CLOSING)
        return;
    if (c->sh->en.stopping || c->fd < 0) {
        conn_shutdown(c);
        return;
    }
    c->lingering = true;
    timer_arm(&c->sh->en.timers, &c->close_timer.t, c->sh->en.now_ms + CLOSE_LINGER_MS);
    shutdown(c->fd, SHUT_WR);
    conn_gone(c, c->io == CONN_IO_HANDOFF);
    if (!c->recv_armed)
        arm_recv(c);
}

static struct buf *layer_to(struct conn *c, unsigned i);
static bool conn_has_output(const struct conn *c);

void conn_close(struct conn *c, const char *why)
{
    if (c->io == CONN_IO_CLOSING || c->close_after_flush)
        return;
    if (why) {
        size_t id_len = 0;
        const uint8_t *id = engine_conn_client_id(&c->e, &id_len);
        LOGC(LOG_LEVEL_DEBUG, id, id_len, "closing connection %llu from %s: %s",
             (unsigned long long)c->e.id, c->e.who.peer, why);
    }
    c->close_after_flush = true;
    /* Nothing more from this peer is processed, but its receive stays
     * armed so that what it still sends is read and discarded, not left to
     * reset the connection (conn_linger). With nothing to send (and no
     * layer with an end of its own to write, such as TLS's close_notify)
     * it lingers now: its will and a takeover do not wait for the flush. */
    if (c->io == CONN_IO_OPEN && !c->send_inflight && !conn_has_output(c) &&
        (c->layers == 0 || c->layers_ended)) {
        conn_linger(c);
        return;
    }
    /* A peer that does not read gets a bounded wait, then the socket is
     * cut (engine_fx_timer). The layers end their part (close_notify)
     * after the last of the engine's output, in conn_flush. */
    timer_arm(&c->sh->en.timers, &c->close_timer.t, c->sh->en.now_ms + CLOSE_FLUSH_MAX_MS);
    conn_mark_dirty(c);
}

void conn_mark_dirty(struct conn *c)
{
    if (c->dirty || c->io == CONN_IO_CLOSING)
        return;
    c->dirty = true;
    c->dirty_next = c->sh->dirty;
    c->sh->dirty = c;
}

void conn_defer(struct conn *c)
{
    if (c->deferred)
        return;
    c->deferred = true;
    c->deferred_next = c->sh->deferred;
    c->sh->deferred = c;
}

void conn_read_stop(struct conn *c)
{
    c->reading = false;
    if (c->recv_armed && !c->lingering)
        cancel_recv(c);
}

void conn_read_start(struct conn *c)
{
    c->reading = true;
    if (c->io != CONN_IO_OPEN || c->close_after_flush)
        return;
    if (!c->recv_armed)
        arm_recv(c);
}

/* ---- layers ------------------------------------------------------------------- */

/* Input for layer level waits in the handshake queue (its order kept:
 * what comes later joins it). 0, or -ENOMEM. */
static int conn_hold_input(struct conn *c, unsigned level, const uint8_t *data, size_t len)
{
    if (buf_append(&c->held, data, len))
        return -ENOMEM;
    c->held_level = (uint8_t)level;
    if (!c->held_queued) {
        struct shard *sh = c->sh;
        c->held_queued = true;
        c->held_next = NULL;
        if (sh->held_tail)
            sh->held_tail->held_next = c;
        else
            sh->held_head = c;
        sh->held_tail = c;
    }
    return 0;
}

static int conn_feed(struct conn *c, unsigned level, const uint8_t *data, size_t len);

/* Feeds what c holds from the handshake queue (it stays queued: the queue
 * drops it when it gets there). */
static int conn_feed_held(struct conn *c)
{
    struct shard *sh = c->sh;
    struct buf in = c->held;
    c->held = (struct buf){0};
    int err = 0;
    if (in.len) {
        sh->held_now = c;
        err = conn_feed(c, c->held_level, in.data, in.len);
        sh->held_now = NULL;
    }
    buf_free(&in);
    return err;
}

/* Does input for layer l wait in the handshake queue? While some of this
 * connection's waits there, whatever follows it at that level does too. */
static bool conn_input_waits(const struct conn *c, unsigned level, const struct conn_layer *l)
{
    if (c->sh->held_now == c)
        return false; /* the queue is feeding it now */
    if (c->held_queued)
        return level == c->held_level;
    return l->ops->costly && l->ops->costly(c, l);
}

static void conn_peer(struct conn *c, const struct sockaddr_storage *ss);

/* Layer level may have done its work (a PROXY header read): then it leaves
 * the chain, the address it gave becomes the connection's and is admitted
 * (the listener's address rules and limits were waiting for it), and what
 * followed its part goes up. 0, or a negative errno to close. */
static int conn_layer_finished(struct conn *c, unsigned level)
{
    struct conn_layer *l = c->layer[level];
    struct sockaddr_storage peer;
    struct buf rest = {0};
    if (!l->ops->finished(c, l, &peer, &rest))
        return 0;
    ASSERT(level == 0 && l->above.len == 0); /* nothing was sent through it */
    buf_free(&l->above);
    if (l->ops->destroy)
        l->ops->destroy(l);
    for (unsigned i = level + 1; i < c->layers; i++) {
        c->layer[i - 1] = c->layer[i];
        c->layer[i - 1]->level = i - 1;
    }
    c->layers--;
    if (c->held_queued && c->held_level > level)
        c->held_level--;
    char was[sizeof(c->e.who.peer)];
    memcpy(was, c->e.who.peer, sizeof(was));
    if (peer.ss_family != AF_UNSPEC) {
        conn_peer(c, &peer);
        LOG(LOG_LEVEL_DEBUG, "new connection %llu from %s on listener %u (PROXY header from %s)",
            (unsigned long long)c->e.id, c->e.who.peer, c->e.who.listener, was);
    }
    unsigned li = c->e.who.listener;
    if (!admit_address(c->sh, li, &c->e.who.addr, &c->tally_slot)) {
        buf_free(&rest);
        engine_close(&c->e, NULL); /* logged by admit_address */
        return 0;
    }
    int err = rest.len ? conn_feed(c, level, rest.data, rest.len) : 0;
    buf_free(&rest);
    return err;
}

/* Bytes at level go to the layer there, or (above the last) to the engine;
 * during a hand-off the engine keeps them for its home shard. */
static int conn_feed(struct conn *c, unsigned level, const uint8_t *data, size_t len)
{
    if (level < c->layers) {
        struct conn_layer *l = c->layer[level];
        if (conn_input_waits(c, level, l)) {
            int err = conn_hold_input(c, level, data, len);
            /* More than a client sends before the server answers: at once
             * (a hello this large fails at once, with its alert). */
            if (!err && c->held.len > CONN_HELD_MAX)
                err = conn_feed_held(c);
            return err;
        }
        struct buf *up = &c->sh->layer_up[level];
        ASSERT(up->len == 0); /* the previous input went up in full */
        int err = l->ops->input(c, l, data, len, up);
        /* What the layer made before it stopped (a close_notify behind the
         * client's last packets) still goes up. */
        if (up->len) {
            int up_err = conn_feed(c, level + 1, up->data, up->len);
            err = err ? err : up_err;
        }
        up->len = 0;
        if (up->cap > 4 * BUF_RING_BUF_SIZE)
            buf_free(up); /* a burst passed: give its buffer back */
        /* Its own records (handshake, alerts, tickets) leave this turn. */
        if (!err && l->ops->pending && l->ops->pending(c, l))
            conn_mark_dirty(c);
        if (!err && l->ops->finished)
            err = conn_layer_finished(c, level);
        return err;
    }
    if (c->io == CONN_IO_HANDOFF)
        return engine_keep_input(&c->e, data, len);
    enum engine_status st = engine_input(&c->e, data, len);
    if (st == ENGINE_HANDOFF)
        conn_defer(c); /* the move starts from the deferred list */
    return 0;
}

/* Where layer i's output goes: the layer below's input, or the wire. */
static struct buf *layer_to(struct conn *c, unsigned i)
{
    return i == 0 ? &c->wire : &c->layer[i - 1]->above;
}

/* Anything to send: the engine's output, a layer's, or wire bytes. */
static bool conn_has_output(const struct conn *c)
{
    if (c->e.out.len || c->wire.len)
        return true;
    for (unsigned i = 0; i < c->layers; i++)
        if (c->layer[i]->above.len ||
            (c->layer[i]->ops->pending && c->layer[i]->ops->pending(c, c->layer[i])))
            return true;
    return false;
}

/* The engine's output, down the chain, into the bytes to send next
 * (c->sending). Each layer encodes what came from above; when closing, it
 * then ends its part (close_notify, a close frame), whose bytes the layers
 * below encode in turn: the peer gets the last packet before the end of
 * each layer. Plain TCP swaps buffers instead of copying. 0 or -errno. */
static int layers_output(struct conn *c, bool closing)
{
    for (unsigned i = c->layers; i-- > 0;) {
        struct conn_layer *l = c->layer[i];
        struct buf *from = i == c->layers - 1 ? &c->e.out : &l->above;
        int err = l->ops->output(c, l, from, layer_to(c, i));
        if (!err && closing && !c->layers_ended && l->ops->shutdown)
            err = l->ops->shutdown(c, l, layer_to(c, i));
        if (err)
            return err;
    }
    if (closing)
        c->layers_ended = true;
    struct buf *src = c->layers ? &c->wire : &c->e.out;
    struct buf tmp = c->sending;
    c->sending = *src;
    *src = tmp;
    src->len = 0;
    return 0;
}

void conn_flush(struct conn *c)
{
    if (c->io != CONN_IO_OPEN || c->send_inflight || c->fd < 0 || c->lingering)
        return;
    /* A layer's own records leave even when the engine wrote nothing. */
    if (!conn_has_output(c) && !(c->close_after_flush && c->layers && !c->layers_ended)) {
        if (c->close_after_flush)
            conn_linger(c);
        return;
    }
    if (layers_output(c, c->close_after_flush)) {
        conn_shutdown(c);
        return;
    }
    if (c->sending.len == 0) {
        if (c->close_after_flush)
            conn_linger(c);
        return;
    }
    c->sending_off = 0;
    struct io_uring_sqe *sqe = shard_sqe(c->sh);
    io_uring_prep_send(sqe, c->fd, c->sending.data, c->sending.len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, shard_ud(c, UD_SEND));
    c->send_inflight = true;
    c->ops++;
}

void conn_on_send(struct shard *sh, struct conn *c, int res)
{
    c->send_inflight = false;
    c->ops--;
    if (res < 0) {
        if (res == -EINTR || res == -EAGAIN) {
            res = 0;
        } else {
            if (c->io != CONN_IO_CLOSING)
                LOG(LOG_LEVEL_DEBUG, "send to %s: %s", c->e.who.peer, strerror(-res));
            c->sending.len = 0;
            conn_shutdown(c);
            conn_maybe_free(c);
            return;
        }
    }
    atomic_fetch_add_explicit(&sh->en.st.bytes_sent, (uint64_t)res, memory_order_relaxed);
    c->sending_off += (size_t)res;
    if (c->io == CONN_IO_CLOSING) {
        conn_maybe_free(c);
        return;
    }
    size_t left = c->sending.len - c->sending_off;
    if (left) {
        /* A short send: the rest goes before anything newer. */
        struct io_uring_sqe *sqe = shard_sqe(sh);
        io_uring_prep_send(sqe, c->fd, c->sending.data + c->sending_off, left, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, shard_ud(c, UD_SEND));
        c->send_inflight = true;
        c->ops++;
    } else {
        c->sending.len = 0;
        c->sending_off = 0;
    }
    if (c->io == CONN_IO_HANDOFF) {
        /* A send in flight when the hand-off began: the move waits for
         * its end (run_deferred). */
        if (!left && !c->recv_armed && c->ops == 0)
            conn_defer(c);
        return;
    }
    if (!c->close_after_flush)
        engine_output_drained(&c->e, (size_t)res, left + c->wire.len);
    if (!left && (conn_has_output(c) || c->close_after_flush))
        conn_mark_dirty(c);
}

/* The peer's address, binary (for address rules) and as text (for logs). */
/* The peer's address, read once at accept; AF_UNSPEC when a peer that
 * reset at once has none any more. */
static void peer_read(int fd, struct sockaddr_storage *ss)
{
    socklen_t sl = sizeof(*ss);
    if (getpeername(fd, (struct sockaddr *)ss, &sl) != 0)
        ss->ss_family = AF_UNSPEC;
}

/* "1.2.3.4:5", "[::1]:5" or "(gone)", for logs. */
static void sockaddr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    if (ss->ss_family == AF_UNSPEC) {
        snprintf(out, cap, "(gone)");
        return;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
    }
    snprintf(out, cap, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}

static void conn_peer(struct conn *c, const struct sockaddr_storage *ss)
{
    struct engine_identity *who = &c->e.who;
    who->addr = *ss;
    sockaddr_text(ss, who->peer, sizeof(who->peer));
}

/* A connection refused at accept, or without memory for its layers. */
static void accept_failed(struct shard *sh, struct conn *c, uint32_t slot, int fd)
{
    LOG(LOG_LEVEL_NOTICE, "connection refused: ENOMEM");
    atomic_fetch_sub_explicit(&sh->b->conn_count, 1, memory_order_relaxed);
    admit_release(sh->b, slot);
    for (unsigned i = 0; c && i < c->layers; i++)
        c->layer[i]->ops->destroy(c->layer[i]);
    free(c);
    close(fd);
}

void conn_accept(struct shard *sh, unsigned li, int fd)
{
    struct sockaddr_storage peer;
    peer_read(fd, &peer);
    const struct config_listener *l = &sh->b->cfg.listeners[li];
    /* Admission at accept, before a byte is read or any TLS work done;
     * behind a PROXY header it waits for the address the header gives. */
    uint32_t slot = TALLY_NONE;
    unsigned proxy = (unsigned)l->admit.proxy_protocol;
    if (!proxy && !admit_address(sh, li, &peer, &slot)) {
        close(fd);
        return;
    }
    uint64_t total = atomic_fetch_add_explicit(&sh->b->conn_count, 1, memory_order_relaxed) + 1;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c || (l->max_connections && total > l->max_connections)) {
        /* Over the limit: closing at once is the cheapest clear outcome
         * (the client cannot be told why before it sent CONNECT). A storm
         * of them is one line a second: the counter has the rest. */
        atomic_fetch_add_explicit(&sh->en.st.max_conn_refused, 1, memory_order_relaxed);
        uint64_t now = sh->en.now_ms; /* the turn's time */
        bool say = now - sh->max_conn_warned_ms >= 1000;
        if (say)
            sh->max_conn_warned_ms = now;
        enum config_log_level level = say ? LOG_LEVEL_NOTICE : LOG_LEVEL_DEBUG;
        if (log_enabled(level)) {
            char text[INET6_ADDRSTRLEN + 16];
            sockaddr_text(&peer, text, sizeof(text));
            LOG(level, "connection from %s refused: %s (connections/refused max_connections)", text,
                c ? "max_connections reached" : "out of memory");
        }
        atomic_fetch_sub_explicit(&sh->b->conn_count, 1, memory_order_relaxed);
        admit_release(sh->b, slot);
        free(c);
        close(fd);
        return;
    }
    /* Before the engine's state: a failure here leaves nothing armed. */
    if (proxy) {
        struct conn_layer *pl = proxy_layer_create(proxy);
        if (!pl) {
            accept_failed(sh, c, slot, fd);
            return;
        }
        pl->level = c->layers;
        c->layer[c->layers++] = pl;
    }
    /* The context of the last reload this shard has seen (reload.c frees
     * an old one only after the shard turned). */
    struct tls_ctx *tls = atomic_load_explicit(&sh->tls[li], memory_order_acquire);
    if (tls) {
        struct conn_layer *tl = tls_layer_create(tls);
        if (!tl) {
            accept_failed(sh, c, slot, fd);
            return;
        }
        tl->level = c->layers;
        c->layer[c->layers++] = tl;
    }
    c->tally_slot = slot;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    engine_conn_init(&c->e, &sh->en, ++sh->next_conn_id * SHARDS_MAX + sh->id);
    c->fd = fd;
    c->reading = true;
    c->close_timer.kind = ENGINE_TIMER_RUNTIME;
    c->e.who.listener = li;
    conn_peer(c, &peer);
    conn_link(sh, c);
    atomic_fetch_add_explicit(&sh->en.st.connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->en.st.connects_total, 1, memory_order_relaxed);
    LOG(LOG_LEVEL_DEBUG, "new connection %llu from %s on listener %u%s",
        (unsigned long long)c->e.id, c->e.who.peer, li,
        proxy ? " (a load balancer: its PROXY header names the client)" : "");
    arm_recv(c);
}

void conn_adopt(struct shard *sh, struct conn *c)
{
    conn_link(sh, c);
    c->io = CONN_IO_OPEN;
    atomic_fetch_add_explicit(&sh->en.st.connections, 1, memory_order_relaxed);
    if (sh->en.stopping) {
        c->e.en = &sh->en;         /* its engine now, for what the close touches */
        engine_close(&c->e, NULL); /* arrived after the stop began */
        conn_shutdown(c);
        return;
    }
    if (c->reading)
        arm_recv(c);
    if (engine_adopted(&c->e, &sh->en) == ENGINE_HANDOFF)
        conn_defer(c); /* cannot happen: placed here */
}

/* Starts moving a connection whose CONNECT was placed on another shard:
 * from on_recv (after the cancelled receive's last completion) or from the
 * deferred list, never from inside the engine. */
void conn_handoff_start(struct conn *c)
{
    c->io = CONN_IO_HANDOFF;
    if (c->recv_armed)
        cancel_recv(c); /* its last completion defers it (conn_on_recv) */
    else if (c->ops == 0)
        conn_defer(c); /* nothing in flight: the shard moves it next turn */
}

/* A layer's error (conn_feed) closes the connection. */
static void feed_failed(struct conn *c, int err)
{
    if (c->io == CONN_IO_CLOSING)
        return;
    engine_close(&c->e, err == -ENOMEM  ? "out of memory"
                        : err == -EPIPE ? "the peer ended its TLS session (close_notify)"
                                        : "layer error");
    if (c->io == CONN_IO_HANDOFF)
        conn_shutdown(c);
}

/* Received bytes: up the layers, or discarded while lingering. */
static void recv_data(struct shard *sh, struct conn *c, const uint8_t *data, size_t len)
{
    atomic_fetch_add_explicit(&sh->en.st.bytes_received, (uint64_t)len, memory_order_relaxed);
    if (c->lingering) {
        c->linger_bytes += (uint32_t)len;
        if (c->linger_bytes > CLOSE_LINGER_BYTES_MAX)
            conn_shutdown(c);
        return;
    }
    if (c->io == CONN_IO_CLOSING || c->close_after_flush)
        return;
    int err = conn_feed(c, 0, data, len);
    if (err)
        feed_failed(c, err);
}

void conn_run_handshakes(struct shard *sh)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (sh->held_head) {
        struct conn *c = sh->held_head;
        sh->held_head = c->held_next;
        if (!sh->held_head)
            sh->held_tail = NULL;
        c->held_next = NULL;
        c->held_queued = false;
        if (c->io == CONN_IO_OPEN && !c->close_after_flush && !c->lingering) {
            int err = conn_feed_held(c);
            if (err)
                feed_failed(c, err);
        } else {
            buf_free(&c->held);
        }
        if (c->io == CONN_IO_CLOSING)
            conn_maybe_free(c);
        clock_gettime(CLOCK_MONOTONIC, &t);
        int64_t us = (int64_t)(t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000;
        if (us >= (int64_t)HANDSHAKE_TURN_BUDGET_US)
            break;
    }
}

/* The receive ended with res (0: the peer closed; < 0: an error). */
static void recv_ended(struct conn *c, int res)
{
    if (c->io == CONN_IO_CLOSING)
        return;
    if (res == 0) {
        size_t id_len = 0;
        const uint8_t *id = engine_conn_client_id(&c->e, &id_len);
        LOGC(LOG_LEVEL_DEBUG, id, id_len, "connection %llu closed by peer",
             (unsigned long long)c->e.id);
    } else {
        LOG(LOG_LEVEL_DEBUG, "recv from %s: %s", c->e.who.peer, strerror(-res));
    }
    if (c->io == CONN_IO_HANDOFF)
        c->io = CONN_IO_OPEN; /* the peer left during the hand-off: it ends here */
    conn_shutdown(c);
}

void conn_on_recv(struct shard *sh, struct conn *c, struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    bool has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (!more) {
        c->recv_armed = false;
        c->ops--;
    }
    if (res > 0 && has_buf)
        recv_data(sh, c, sh->bufs + (size_t)bid * BUF_RING_BUF_SIZE, (size_t)res);
    if (has_buf)
        shard_buf_return(sh, bid);
    if (!more && (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED)))
        recv_ended(c, res);
    /* The receive ended (buffers ran dry, a cancel for a pause that has
     * since been lifted, or the kernel just stopped the multishot): re-arm
     * whenever the connection should be reading. */
    if (!more && !c->recv_armed && c->io == CONN_IO_OPEN &&
        (c->lingering || (!c->close_after_flush && c->reading)))
        arm_recv(c);
    if (c->io == CONN_IO_HANDOFF) {
        if (!c->recv_armed && c->ops == 0)
            conn_defer(c); /* the shard moves it (run_deferred) */
        return;
    }
    conn_maybe_free(c);
}
