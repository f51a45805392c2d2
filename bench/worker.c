/*
 * ringmq-bench worker: one thread, one io_uring ring, many MQTT client
 * connections (publishers, subscribers, or connect-storm clients).
 *
 * Every connection has at most one recv and one send in flight. Outgoing
 * packets are appended to the connection's fill buffer; once per loop turn a
 * dirty connection with no send in flight swaps its fill and busy buffers and
 * submits the busy one, so many PUBLISH packets (or acks) leave in one send.
 * A publisher's fill buffer is bounded by --batch-bytes: when the broker does
 * not read, the send stays in flight, the buffer stays full and the
 * publisher stops generating, which is the back-pressure "as fast as the
 * broker accepts" means. Pacing (--rate) runs off a periodic io_uring timeout.
 *
 * Packets are encoded and decoded by the project's codec (core/codec.h). A
 * publisher encodes its PUBLISH once and patches the packet id and the
 * payload (publisher id, sequence, send time) per message.
 *
 * All state here belongs to the worker thread; the only shared data are the
 * snapshot (under w->lock), the phase and ready counters in struct bench_ctl,
 * and the worker's slots of ctl->pub_sent, written once before exit.
 */
#include "worker_internal.h"
#include "tls.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ---- */

static int phase_now(const struct worker *w)
{
    return atomic_load_explicit(&w->ctl->phase, memory_order_acquire);
}

static struct io_uring_sqe *get_sqe(struct worker *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (!sqe) {
        io_uring_submit(&w->ring);
        sqe = io_uring_get_sqe(&w->ring);
    }
    if (!sqe) {
        fprintf(stderr, "ringmq-bench: worker %u: no SQE after submit\n", w->index);
        abort();
    }
    return sqe;
}

static void *ud(struct conn *c, enum op op)
{
    return (void *)((uintptr_t)c | (uintptr_t)op);
}

static void mark_dirty(struct conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->w->dirty[c->w->ndirty++] = c;
    }
}

static void count_err(struct worker *w, enum bench_err e)
{
    w->c.errors[e]++;
}

static void conn_close(struct conn *c);

static void conn_fail(struct conn *c, enum bench_err e)
{
    if (!c->failed) {
        c->failed = true;
        count_err(c->w, e);
    }
    conn_close(c);
}

/* Appends one encoded packet; false (and the connection is failed) when the
 * output buffer would pass its bound. */
static bool queue_packet(struct conn *c, const struct mqtt_packet *p)
{
    uint8_t v = c->w->o->version;
    size_t n = codec_encoded_size(p, v);
    if (!obuf_reserve(&c->fill, (uint32_t)n)) {
        conn_fail(c, BERR_SEND);
        return false;
    }
    size_t wrote = codec_encode(c->fill.p + c->fill.len, p, v);
    if (wrote != n) {
        fprintf(stderr, "ringmq-bench: codec wrote %zu of %zu bytes\n", wrote, n);
        abort();
    }
    c->fill.len += (uint32_t)n;
    mark_dirty(c);
    return true;
}

static void queue_ack(struct conn *c, uint8_t type, uint16_t packet_id)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = type;
    p.u.ack.packet_id = packet_id;
    p.u.ack.reason = MQTT_RC_SUCCESS;
    queue_packet(c, &p);
}

/* ---- io submission ---- */

/* Room after in_len for more plaintext; false (and the connection failed)
 * when a packet would pass IN_BUF_MAX. */
static bool in_room(struct conn *c)
{
    if (c->in_len < c->in_cap)
        return true;
    /* A packet larger than the buffer: grow to hold it (bounded). */
    uint32_t cap = c->in_cap * 2;
    uint8_t *p = cap <= IN_BUF_MAX ? realloc(c->in, cap) : NULL;
    if (!p) {
        conn_fail(c, BERR_PROTOCOL);
        return false;
    }
    c->in = p;
    c->in_cap = cap;
    return true;
}

static void submit_recv(struct conn *c)
{
    if (c->recv_inflight || c->fd < 0 || c->state >= CS_CLOSING)
        return;
    uint8_t *dst;
    uint32_t len;
    if (c->tls) {
        /* Ciphertext, into the TLS layer's buffer; never full, since the
         * layer takes in every whole record it holds (TLS_RX_SMALL). */
        dst = btls_rx_space(c->tls, &len);
        if (len == 0) { /* a recv of 0 bytes would read as the peer's close */
            conn_fail(c, BERR_PROTOCOL);
            return;
        }
    } else {
        if (!in_room(c))
            return;
        dst = c->in + c->in_len;
        len = c->in_cap - c->in_len;
    }
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_recv(sqe, c->fd, dst, len, 0);
    io_uring_sqe_set_data(sqe, ud(c, OP_RECV));
    c->recv_inflight = true;
    c->ops++;
}

static void submit_send_busy(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_send(sqe, c->fd, c->busy.p + c->busy_off, c->busy.len - c->busy_off,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, ud(c, OP_SEND));
    c->send_inflight = true;
    c->ops++;
}

static void tls_fail(struct conn *c, int r);

/* TLS: the plaintext in fill becomes records in the layer's output, which
 * then changes places with the empty busy buffer and is sent. Only called
 * with no send in flight. */
static void tls_flush(struct conn *c)
{
    struct btls *t = c->tls;
    if (c->fill.len && btls_done(t)) {
        int r = btls_write(t, c->fill.p, c->fill.len);
        if (r) {
            tls_fail(c, r);
            return;
        }
        btls_out(t)->msgs += c->fill.msgs;
        c->fill.len = 0;
        c->fill.msgs = 0;
    }
    struct obuf *out = btls_out(t);
    if (out->len == 0)
        return;
    struct obuf idle = c->busy;
    c->busy = *out;
    idle.len = 0;
    idle.msgs = 0;
    *out = idle;
    c->busy_off = 0;
    c->t_last_send_ns = bench_now_ns();
    submit_send_busy(c);
}

static void conn_flush(struct conn *c)
{
    c->dirty = false;
    if (c->send_inflight || c->fd < 0 || c->state >= CS_CLOSING)
        return;
    if (c->tls) {
        tls_flush(c);
        return;
    }
    if (c->fill.len == 0)
        return;
    struct obuf t = c->busy;
    c->busy = c->fill;
    c->fill = t;
    c->fill.len = 0;
    c->fill.msgs = 0;
    c->busy_off = 0;
    c->t_last_send_ns = bench_now_ns();
    submit_send_busy(c);
}

/* A connection counts as "connecting" from conn_open until it is ready (or
 * held, in the connect scenario) or closed: that bounds the SYNs and
 * CONNECTs in flight per thread (--connect-concurrency). */
static void leave_connecting(struct conn *c)
{
    if (c->state == CS_CONNECTING || c->state == CS_CONNACK_WAIT || c->state == CS_SUBACK_WAIT)
        c->w->connecting--;
}

/* No operation in flight any more: the descriptor and the TLS state go, and
 * a handshake-storm slot queues to connect again. */
static void conn_closed(struct conn *c)
{
    struct worker *w = c->w;
    c->state = CS_CLOSED; /* conn_close's early return needs CLOSING cleared */
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        w->c.open_now--;
    }
    if (c->tls)
        btls_end(c->tls);
    if (c->role == ROLE_CONN) {
        w->c.connects_done++;
        /* Refused: the broker closed or reset it, refused the TCP connect
         * or the CONNECT, or never answered; not the ones we closed. */
        if (!c->connacked && c->failed)
            w->c.connects_refused++;
    }
    if (w->storm) /* each slot is queued at most once: the ring never overflows */
        w->hold_q[w->hold_tail++ % w->nconns] = c;
}

static void conn_close(struct conn *c)
{
    if (c->state == CS_CLOSED || c->state == CS_CLOSING)
        return;
    leave_connecting(c);
    c->state = CS_CLOSING;
    if (c->fd >= 0 && c->ops > 0) {
        /* Wakes the recv (res 0) and fails the send; the fd is closed once
         * the kernel hands both buffers back. */
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    conn_closed(c);
}

/* Called when an op completes on a closing connection. */
static void conn_op_done(struct conn *c)
{
    c->ops--;
    if (c->state == CS_CLOSING && c->ops == 0)
        conn_closed(c);
}

/* ---- MQTT client logic ---- */

static void send_connect(struct conn *c)
{
    const struct bench_opts *o = c->w->o;
    char cid[160];
    const char *tag = c->w->abuser          ? "x"
                      : c->role == ROLE_PUB ? "p"
                      : c->role == ROLE_SUB ? "s"
                                            : "c";
    if (c->w->storm) /* a fresh id per connection: no session takeover */
        snprintf(cid, sizeof(cid), "%s-%s%u-%u", o->client_prefix, c->w->abuser ? "x" : "h", c->id,
                 c->gen);
    else
        snprintf(cid, sizeof(cid), "%s-%s%u", o->client_prefix, tag, c->id);

    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    struct mqtt_connect *cn = &p.u.connect;
    cn->version = o->version;
    cn->clean_start = true;
    cn->keepalive_s = o->keepalive_s;
    cn->client_id = bytes_of(cid);
    if (o->username) {
        cn->has_username = true;
        cn->username = bytes_of(o->username);
    }
    if (o->password) {
        cn->has_password = true;
        cn->password = bytes_of(o->password);
    }
    if (o->version == MQTT_V5) {
        cn->props.present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
        cn->props.receive_maximum = 65535;
    }
    c->state = CS_CONNACK_WAIT;
    queue_packet(c, &p);
}

static void send_subscribe(struct conn *c)
{
    const struct bench_opts *o = c->w->o;
    size_t flen = strlen(c->filter);
    uint8_t entry[2 + 1024 + 1];
    if (flen > 1024) {
        conn_fail(c, BERR_PROTOCOL);
        return;
    }
    entry[0] = (uint8_t)(flen >> 8);
    entry[1] = (uint8_t)flen;
    memcpy(entry + 2, c->filter, flen);
    entry[2 + flen] = o->qos; /* no_local, RAP, retain handling: 0 */

    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_SUBSCRIBE;
    p.u.subscribe.packet_id = 1;
    p.u.subscribe.count = 1;
    p.u.subscribe.entries.ptr = entry;
    p.u.subscribe.entries.len = (uint32_t)(flen + 3);
    c->state = CS_SUBACK_WAIT;
    queue_packet(c, &p);
}

static void send_disconnect(struct conn *c)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_DISCONNECT;
    p.u.disconnect.reason = MQTT_RC_NORMAL_DISCONNECTION;
    c->state = CS_DISCONNECTING;
    queue_packet(c, &p);
}

static bool pkid_take(struct conn *c, uint16_t *out)
{
    for (uint32_t tries = 0; tries < 65535u; tries++) {
        uint16_t id = c->next_pkid;
        c->next_pkid = (uint16_t)(id == 65535u ? 1u : id + 1u);
        uint64_t bit = 1ull << (id % 64u);
        if (!(c->pkid_used[id / 64u] & bit)) {
            c->pkid_used[id / 64u] |= bit;
            *out = id;
            return true;
        }
    }
    return false;
}

static bool pkid_release(struct conn *c, uint16_t id)
{
    uint64_t bit = 1ull << (id % 64u);
    if (id == 0 || !(c->pkid_used[id / 64u] & bit))
        return false;
    c->pkid_used[id / 64u] &= ~bit;
    return true;
}

/* Generates up to max messages into the fill buffer; returns how many. */
static uint32_t pub_generate(struct conn *c, uint32_t max)
{
    struct worker *w = c->w;
    const struct bench_opts *o = w->o;
    if (c->state != CS_READY || phase_now(w) != PHASE_RUN)
        return 0;
    uint64_t now = bench_now_ns();
    uint32_t n = 0;
    while (n < max) {
        if (c->fill.len + c->tmpl_len > c->fill.cap)
            break;
        if (o->qos > 0 && c->inflight >= c->inflight_max)
            break;
        if (w->lat_mode && c->awaiting)
            break;
        uint8_t *dst = c->fill.p + c->fill.len;
        memcpy(dst, c->tmpl, c->tmpl_len);
        if (o->qos > 0) {
            uint16_t id;
            if (!pkid_take(c, &id))
                break;
            dst[c->tmpl_pkid_off] = (uint8_t)(id >> 8);
            dst[c->tmpl_pkid_off + 1] = (uint8_t)id;
            c->inflight++;
        }
        uint8_t *pl = dst + c->tmpl_payload_off;
        uint32_t pub_id = c->id;
        memcpy(pl, &pub_id, 4);
        memcpy(pl + 4, &c->next_seq, 8);
        memcpy(pl + 12, &now, 8);
        c->next_seq++;
        c->fill.len += c->tmpl_len;
        c->fill.msgs++;
        w->c.pending++;
        n++;
        if (w->lat_mode) {
            c->awaiting = true;
            c->await_since_ns = now;
        }
    }
    if (n)
        mark_dirty(c);
    return n;
}

/* Unpaced publishers refill whenever there is room. */
static void pub_refill_unpaced(struct conn *c)
{
    if (c->w->pub_rate > 0 || c->w->lat_mode)
        return;
    uint32_t n = pub_generate(c, UINT32_MAX);
    c->w->c.offered += n;
}

static bool in_window(const struct worker *w, uint64_t now)
{
    return now >= atomic_load_explicit(&w->ctl->win_start_ns, memory_order_relaxed) &&
           now < atomic_load_explicit(&w->ctl->win_end_ns, memory_order_relaxed);
}

static void on_publish(struct conn *c, const struct mqtt_publish *pb)
{
    struct worker *w = c->w;
    if (pb->qos == 1)
        queue_ack(c, MQTT_PUBACK, pb->packet_id);
    else if (pb->qos == 2)
        queue_ack(c, MQTT_PUBREC, pb->packet_id);
    if (pb->payload.len < PAYLOAD_HDR_LEN) {
        count_err(w, BERR_SHORT_PAYLOAD);
        return;
    }
    uint32_t pub_id;
    uint64_t seq, sent_ns;
    memcpy(&pub_id, pb->payload.ptr, 4);
    memcpy(&seq, pb->payload.ptr + 4, 8);
    memcpy(&sent_ns, pb->payload.ptr + 12, 8);
    if (pub_id < c->first_pub || pub_id - c->first_pub >= c->npubs) {
        count_err(w, BERR_FOREIGN);
        return;
    }
    struct seqtrack *t = &c->streams[pub_id - c->first_pub];
    w->c.delivered++;
    switch (seq_record(t, seq)) {
    case SEQ_IN_ORDER:
        w->c.unique++;
        break;
    case SEQ_GAP: /* the gap itself is summed from the trackers for snapshots */
        w->c.unique++;
        break;
    case SEQ_OUT_OF_ORDER:
        w->c.unique++;
        w->c.out_of_order++;
        break;
    case SEQ_DUPLICATE:
        w->c.duplicate++;
        break;
    case SEQ_TOO_OLD:
        w->c.too_old++;
        break;
    }
    uint64_t now = bench_now_ns();
    uint64_t lat_us = now > sent_ns ? (now - sent_ns) / 1000u : 0;
    hist_record(&w->lat_all, lat_us);
    if (in_window(w, now))
        hist_record(&w->lat_win, lat_us);
    if (c->lat_pub && c->lat_pub->awaiting && pub_id == c->lat_pub->id &&
        seq + 1 == c->lat_pub->next_seq) {
        c->lat_pub->awaiting = false;
        /* Send the next one as soon as the pacing allows (next tick). */
    }
}

static void on_pub_acked(struct conn *c, uint16_t id)
{
    struct worker *w = c->w;
    if (!pkid_release(c, id)) {
        count_err(w, BERR_UNEXPECTED_ACK);
        return;
    }
    c->inflight--;
    w->c.accepted++;
    w->c.pending--;
    pub_refill_unpaced(c);
}

static void on_connack(struct conn *c, const struct mqtt_connack *ca)
{
    struct worker *w = c->w;
    if (ca->reason != MQTT_RC_SUCCESS) {
        conn_fail(c, BERR_CONNACK);
        return;
    }
    switch (c->role) {
    case ROLE_SUB:
        send_subscribe(c);
        break;
    case ROLE_PUB:
        leave_connecting(c);
        c->state = CS_READY;
        c->inflight_max = w->o->inflight;
        if (w->o->version == MQTT_V5 &&
            (ca->props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM)) &&
            ca->props.receive_maximum < c->inflight_max)
            c->inflight_max = ca->props.receive_maximum;
        break;
    case ROLE_CONN: {
        uint64_t now = bench_now_ns();
        if (!w->storm || in_window(w, now))
            hist_record(&w->conn_lat, (now - c->t_start_ns) / 1000u);
        w->c.connects_ok++;
        c->connacked = true;
        w->last_connack_ns = now;
        leave_connecting(c);
        if (w->storm) { /* handshake: done, make room for the next one */
            send_disconnect(c);
            break;
        }
        c->state = CS_HELD;
        c->hold_until_ns = now + (uint64_t)(w->o->hold_s * 1e9);
        w->hold_q[w->hold_tail++] = c;
        break;
    }
    }
}

static void on_packet(struct conn *c, const struct mqtt_packet *p)
{
    struct worker *w = c->w;
    switch (p->type) {
    case MQTT_CONNACK:
        if (c->state != CS_CONNACK_WAIT)
            goto unexpected;
        on_connack(c, &p->u.connack);
        break;
    case MQTT_SUBACK:
        if (c->state != CS_SUBACK_WAIT || p->u.suback.reasons.len < 1)
            goto unexpected;
        if (p->u.suback.reasons.ptr[0] >= 0x80) {
            conn_fail(c, BERR_SUBACK);
            break;
        }
        leave_connecting(c);
        c->state = CS_READY;
        break;
    case MQTT_PUBLISH:
        if (c->role != ROLE_SUB)
            goto unexpected;
        on_publish(c, &p->u.publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        if (c->role != ROLE_PUB || w->o->qos != (p->type == MQTT_PUBACK ? 1 : 2))
            goto unexpected;
        if (p->u.ack.reason >= 0x80)
            count_err(w, BERR_PUB_REFUSED);
        on_pub_acked(c, p->u.ack.packet_id);
        break;
    case MQTT_PUBREC:
        if (c->role != ROLE_PUB || w->o->qos != 2)
            goto unexpected;
        if (p->u.ack.reason >= 0x80) {
            /* 5.0: a refused QoS 2 publish ends at PUBREC [MQTT-4.3.3]. */
            count_err(w, BERR_PUB_REFUSED);
            on_pub_acked(c, p->u.ack.packet_id);
            break;
        }
        queue_ack(c, MQTT_PUBREL, p->u.ack.packet_id);
        break;
    case MQTT_PUBREL:
        if (c->role != ROLE_SUB)
            goto unexpected;
        queue_ack(c, MQTT_PUBCOMP, p->u.ack.packet_id);
        break;
    case MQTT_PINGRESP:
        break;
    case MQTT_DISCONNECT:
        conn_fail(c, BERR_PEER_CLOSED);
        break;
    default:
        goto unexpected;
    }
    return;
unexpected:
    conn_fail(c, BERR_PROTOCOL);
}

/* Parses every whole packet in the input buffer. */
static void conn_parse(struct conn *c)
{
    uint32_t off = 0;
    while (off < c->in_len && c->state < CS_CLOSING) {
        struct mqtt_fixed fh;
        int r = codec_parse_fixed(c->in + off, c->in_len - off, &fh);
        if (r == MQTT_NEED_MORE)
            break;
        if (r != 0) {
            conn_fail(c, BERR_PROTOCOL);
            return;
        }
        uint64_t total = (uint64_t)fh.header_len + fh.remaining_len;
        if (total > IN_BUF_MAX) {
            conn_fail(c, BERR_PROTOCOL);
            return;
        }
        if (total > c->in_len - off) {
            if (total > c->in_cap) {
                uint8_t *np = realloc(c->in, total);
                if (!np) {
                    conn_fail(c, BERR_PROTOCOL);
                    return;
                }
                c->in = np;
                c->in_cap = (uint32_t)total;
            }
            break;
        }
        struct mqtt_packet pkt;
        int rc = codec_decode(&fh, c->in + off + fh.header_len, c->w->o->version, &pkt);
        if (rc != MQTT_RC_SUCCESS) {
            conn_fail(c, BERR_PROTOCOL);
            return;
        }
        on_packet(c, &pkt);
        off += (uint32_t)total;
    }
    if (off > 0 && c->in != NULL) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

/* ---- TLS (the layer itself is tls.c) ---- */

static void tls_fail(struct conn *c, int r)
{
    if (c->state == CS_DISCONNECTING) {
        conn_close(c); /* we were leaving anyway: close_notify or an alert */
        return;
    }
    if (r == -EPIPE) {
        conn_fail(c, BERR_PEER_CLOSED);
        return;
    }
    if (r == -EPROTO && c->w->storm && !c->w->abuser) /* tls.c has said why */
        atomic_store_explicit(&c->w->ctl->fatal, 1, memory_order_release);
    conn_fail(c, r == -EPROTO ? BERR_TLS : BERR_SEND);
}

/* The handshake is done: CONNECT goes in its first records. */
static void on_tls_up(struct conn *c)
{
    c->w->c.tls_done++;
    if (btls_resumed(c->tls))
        c->w->c.tls_resumed++;
    send_connect(c);
}

/* n bytes of ciphertext arrived: advance the handshake, then decrypt and
 * parse every whole record. Whatever the layer wrote (handshake, alerts,
 * key updates) goes out with the next flush. */
static void tls_input(struct conn *c, uint32_t n)
{
    struct btls *t = c->tls;
    btls_rx_added(t, n);
    if (!btls_done(t)) {
        int r = btls_handshake(t);
        if (r < 0) {
            tls_fail(c, r);
            return;
        }
        if (r == 1)
            on_tls_up(c);
    }
    while (btls_done(t) && c->state < CS_CLOSING && in_room(c)) {
        int r = btls_read(t, c->in + c->in_len, c->in_cap - c->in_len);
        if (r == 0)
            break;
        if (r < 0) {
            tls_fail(c, r);
            return;
        }
        c->in_len += (uint32_t)r;
        conn_parse(c);
    }
    if (c->state < CS_CLOSING && btls_out(t)->len)
        mark_dirty(c);
}

/* ---- completions ---- */

static void on_recv(struct conn *c, int res)
{
    c->recv_inflight = false;
    if (c->state >= CS_CLOSING) {
        conn_op_done(c);
        return;
    }
    c->ops--;
    if (res > 0) {
        if (c->tls) {
            tls_input(c, (uint32_t)res);
        } else {
            c->in_len += (uint32_t)res;
            conn_parse(c);
        }
        submit_recv(c);
        return;
    }
    if (res == -EAGAIN || res == -EINTR || res == -ENOBUFS) {
        submit_recv(c);
        return;
    }
    if (res == 0) {
        if (c->state == CS_DISCONNECTING) {
            conn_close(c); /* the broker closed after our DISCONNECT */
            return;
        }
        conn_fail(c, BERR_PEER_CLOSED);
        return;
    }
    conn_fail(c, BERR_RECV);
}

static void on_send(struct conn *c, int res)
{
    struct worker *w = c->w;
    c->send_inflight = false;
    if (c->state >= CS_CLOSING) {
        conn_op_done(c);
        return;
    }
    c->ops--;
    if (res == -EAGAIN || res == -EINTR) {
        submit_send_busy(c);
        return;
    }
    if (res < 0) {
        conn_fail(c, BERR_SEND);
        return;
    }
    c->busy_off += (uint32_t)res;
    if (c->busy_off < c->busy.len) {
        submit_send_busy(c);
        return;
    }
    if (c->busy.msgs) {
        w->c.sent += c->busy.msgs;
        c->sent += c->busy.msgs;
        if (w->o->qos == 0) {
            w->c.accepted += c->busy.msgs;
            w->c.pending -= c->busy.msgs;
        }
    }
    c->busy.len = 0;
    c->busy.msgs = 0;
    c->busy_off = 0;
    if (c->role == ROLE_PUB)
        pub_refill_unpaced(c);
    /* After DISCONNECT nothing more: the broker closes first [MQTT-3.14.4-1],
     * which leaves TIME_WAIT on its side, not on our ephemeral ports. */
    if (c->fill.len || (c->tls && btls_out(c->tls)->len))
        mark_dirty(c);
}

static void on_connect(struct conn *c, int res)
{
    if (c->state >= CS_CLOSING) {
        conn_op_done(c);
        return;
    }
    c->ops--;
    if (res < 0) {
        /* A storm would reconnect at once, forever: nobody listens there. */
        /* The abuser's storm counts a refusal and goes on: that is its job. */
        if (c->w->storm && !c->w->abuser && res == -ECONNREFUSED &&
            atomic_exchange_explicit(&c->w->ctl->fatal, 1, memory_order_acq_rel) == 0)
            fprintf(stderr, "ringmq-bench: connect to %s:%u: %s (is a broker listening there?)\n",
                    c->w->o->host, c->w->o->port, strerror(-res));
        conn_fail(c, BERR_CONNECT);
        return;
    }
    if (c->tls) {
        if (btls_start(c->tls) != 0) {
            conn_fail(c, BERR_TLS);
            return;
        }
        mark_dirty(c); /* the ClientHello */
    } else {
        send_connect(c);
    }
    submit_recv(c);
}

static int conn_open(struct conn *c)
{
    struct worker *w = c->w;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        if (e == EMFILE || e == ENFILE) {
            if (!w->warned_fds) {
                w->warned_fds = true;
                fprintf(stderr,
                        "ringmq-bench: out of file descriptors (%s) after %lu open sockets in "
                        "worker %u: raise the hard limit (ulimit -Hn / LimitNOFILE)\n",
                        strerror(e), (unsigned long)w->c.open_now, w->index);
            }
            c->failed = true;
            count_err(w, BERR_SOCKETS);
        } else {
            c->failed = true;
            count_err(w, BERR_CONNECT);
        }
        conn_closed(c);
        return -e;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (w->abuser && c->role == ROLE_PUB) {
        /* A fixed send buffer stops the kernel's autotuning from growing it
         * (to 4 MiB) while the broker paces the flood: the growth would
         * count as published during the window, at several times the rate
         * the broker reads (measured: 3233/s written at max_publish_rate
         * 1000). */
        int sndbuf = (int)ABUSE_FLOOD_SNDBUF;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    if (w->bind_on) {
        /* The port is picked at connect, per destination, not reserved
         * here for good: a storm of short connections from one address
         * would otherwise run out of ports at bind. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)&w->bind_addr, sizeof(w->bind_addr)) != 0) {
            int e = errno;
            if (!w->warned_bind) {
                w->warned_bind = true;
                fprintf(stderr, "ringmq-bench: bind to %s: %s\n", w->o->abuse_source, strerror(e));
            }
            close(fd);
            c->failed = true;
            count_err(w, BERR_CONNECT);
            conn_closed(c);
            return -e;
        }
    }
    c->fd = fd;
    w->connecting++;
    w->c.open_now++;
    if (w->c.open_now > w->c.open_max)
        w->c.open_max = w->c.open_now;
    c->state = CS_CONNECTING;
    c->t_start_ns = bench_now_ns();
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&w->addr, sizeof(w->addr));
    io_uring_sqe_set_data(sqe, ud(c, OP_CONNECT));
    c->ops++;
    return 0;
}

/* ---- the loop ---- */

static void arm_tick(struct worker *w)
{
    struct io_uring_sqe *sqe = get_sqe(w);
    w->tick_ts.tv_sec = (long long)(w->tick_ns / 1000000000ull);
    w->tick_ts.tv_nsec = (long long)(w->tick_ns % 1000000000ull);
    io_uring_prep_timeout(sqe, &w->tick_ts, 0, 0);
    io_uring_sqe_set_data(sqe, ud(NULL, OP_TICK));
}

static void sum_lost_now(struct worker *w)
{
    uint64_t lost = 0;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->role != ROLE_SUB || w->o->shared)
            continue;
        for (uint32_t s = 0; s < c->npubs; s++)
            lost += c->streams[s].lost_now;
    }
    w->c.lost_now = lost;
}

static void publish_snapshot(struct worker *w)
{
    sum_lost_now(w);
    pthread_mutex_lock(&w->lock);
    w->snap.c = w->c;
    w->snap.lat_all = w->lat_all;
    w->snap.lat_win = w->lat_win;
    w->snap.conn_lat = w->conn_lat;
    w->snap.win_start = w->win_start;
    w->snap.win_end = w->win_end;
    w->snap.win_start_ns = w->win_start_ns;
    w->snap.win_end_ns = w->win_end_ns;
    w->snap.win_started = w->win_started;
    w->snap.win_ended = w->win_ended;
    w->snap.first_connect_ns = w->first_connect_ns;
    w->snap.last_connack_ns = w->last_connack_ns;
    w->snap.setup_done = w->setup_done;
    w->snap.connect_done = w->connect_done;
    pthread_mutex_unlock(&w->lock);
}

static void check_setup(struct worker *w, uint64_t now)
{
    if (w->setup_reported)
        return;
    uint32_t ready = 0, dead = 0;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == CS_READY)
            ready++;
        else if (c->state >= CS_CLOSING)
            dead++;
    }
    /* Main gives up on setup after its own timeout; a failed connection
     * stops the run at once. */
    (void)now;
    if (ready == w->nconns) {
        w->setup_done = true;
        w->setup_reported = true;
        atomic_fetch_add_explicit(&w->ctl->ready, 1, memory_order_acq_rel);
    } else if (dead > 0) {
        w->setup_reported = true;
        publish_snapshot(w); /* main prints these errors next */
        atomic_fetch_add_explicit(&w->ctl->failed, 1, memory_order_acq_rel);
    }
}

static void pace_publishers(struct worker *w, double dt_s)
{
    double rate = w->pub_rate;
    if (rate <= 0)
        return;
    double due = rate * dt_s;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->role != ROLE_PUB || c->state != CS_READY)
            continue;
        w->offered_frac += due;
        c->credit += due;
        /* A publisher held back by the broker does not build an unbounded
         * debt: at most 100 ms (or one message) of backlog is kept; the rest
         * counts as offered but never sent. */
        double cap = rate * 0.1 > 1.0 ? rate * 0.1 : 1.0;
        if (c->credit > cap)
            c->credit = cap;
        if (c->credit >= 1.0) {
            uint32_t want = (uint32_t)c->credit;
            uint32_t n = pub_generate(c, want);
            c->credit -= n;
        }
    }
    uint64_t whole = (uint64_t)w->offered_frac;
    w->c.offered += whole;
    w->offered_frac -= (double)whole;
}

static void connect_pace(struct worker *w, double dt_s)
{
    const struct bench_opts *o = w->o;
    if (o->rate > 0) {
        w->connect_credit += o->rate / o->threads * dt_s;
        if (w->connect_credit > o->rate / o->threads * 0.1 + 1.0)
            w->connect_credit = o->rate / o->threads * 0.1 + 1.0;
    }
}

/* Starts as many connections as the pacing and the concurrency allow. */
static void connect_start(struct worker *w, uint64_t now)
{
    const struct bench_opts *o = w->o;
    uint32_t nconn = w->nconns;
    while (w->next_start < nconn && w->connecting < o->connect_concurrency &&
           (o->rate <= 0 || w->connect_credit >= 1.0)) {
        struct conn *c = &w->conns[w->next_start++];
        if (w->first_connect_ns == 0)
            w->first_connect_ns = now;
        w->c.connects_started++;
        if (o->rate > 0)
            w->connect_credit -= 1.0;
        conn_open(c);
    }
}

static void connect_release(struct worker *w, uint64_t now)
{
    uint32_t nconn = w->nconns;
    /* Release the connections whose hold time is over (FIFO: same hold). */
    while (w->hold_head < w->hold_tail && w->hold_q[w->hold_head]->hold_until_ns <= now) {
        struct conn *c = w->hold_q[w->hold_head++];
        if (c->state == CS_HELD)
            send_disconnect(c);
    }
    if (w->next_start == nconn && w->c.connects_done == nconn)
        w->connect_done = true;
}

/* Handshake storm: each slot connects, shakes hands, gets its CONNACK,
 * says DISCONNECT and, once the broker has closed, connects again, for as
 * long as the run lasts (or --clients allows) and the pacing lets it. The
 * slots bound the handshakes in flight (--conns). At most one start per slot
 * per turn, so a socket() that keeps failing cannot spin here. */
static void storm_start(struct worker *w, uint64_t now)
{
    const struct bench_opts *o = w->o;
    for (uint32_t n = 0; n < w->nconns && w->storm_left > 0; n++) {
        if (o->rate > 0 && w->connect_credit < 1.0)
            break;
        struct conn *c;
        if (w->next_start < w->nconns)
            c = &w->conns[w->next_start++];
        else if (w->hold_head != w->hold_tail)
            c = w->hold_q[w->hold_head++ % w->nconns];
        else
            break;
        if (w->first_connect_ns == 0)
            w->first_connect_ns = now;
        w->c.connects_started++;
        w->storm_left--;
        if (o->rate > 0)
            w->connect_credit -= 1.0;
        /* Nothing of the last connection is left but the buffers. */
        c->in_len = 0;
        c->fill.len = c->fill.msgs = 0;
        c->busy.len = c->busy.msgs = 0;
        c->busy_off = 0;
        c->failed = false;
        c->connacked = false;
        c->gen++;
        conn_open(c);
    }
    if (w->storm_left == 0 && w->c.connects_done == w->c.connects_started)
        w->connect_done = true;
}

static void check_timeouts(struct worker *w, uint64_t now)
{
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if ((c->state == CS_CONNECTING || c->state == CS_CONNACK_WAIT ||
             c->state == CS_SUBACK_WAIT) &&
            now > c->t_start_ns && now - c->t_start_ns > CONNECT_TIMEOUT_NS) {
            conn_fail(c, BERR_TIMEOUT);
        }
        /* now was read before this turn's sends: the stamps may be newer. */
        if (c->role == ROLE_PUB && c->awaiting && now > c->await_since_ns &&
            now - c->await_since_ns > LATENCY_TIMEOUT_NS) {
            c->awaiting = false;
            count_err(w, BERR_LATENCY_TIMEOUT);
        }
        /* Keepalive: a connection silent for half its keepalive pings. */
        if (w->o->keepalive_s && (c->state == CS_READY || c->state == CS_HELD) &&
            now > c->t_last_send_ns &&
            now - c->t_last_send_ns > (uint64_t)w->o->keepalive_s * 500000000ull) {
            struct mqtt_packet p;
            memset(&p, 0, sizeof(p));
            p.type = MQTT_PINGREQ;
            c->t_last_send_ns = now;
            queue_packet(c, &p);
        }
    }
}

static void window_edges(struct worker *w, uint64_t now);

static void on_phase_change(struct worker *w, int phase, uint64_t now)
{
    if (phase == PHASE_RUN && w->pub_rate <= 0) {
        for (uint32_t i = 0; i < w->nconns; i++)
            if (w->conns[i].role == ROLE_PUB)
                pub_refill_unpaced(&w->conns[i]);
    }
    if (phase == PHASE_DRAIN && w->abuser) {
        /* The abuser has done its part once the window is over: its flood
         * would keep the broker busy (and, paced by the broker, its socket
         * full) through the well-behaved clients' drain. */
        window_edges(w, now); /* the window ends before these closes */
        for (uint32_t i = 0; i < w->nconns; i++)
            if (w->conns[i].state != CS_IDLE)
                conn_close(&w->conns[i]);
    }
    if (phase == PHASE_STOP) {
        w->stop_deadline_ns = now + STOP_GRACE_NS;
        for (uint32_t i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            if (c->state == CS_READY || c->state == CS_HELD)
                send_disconnect(c);
            else if (c->state < CS_READY && c->state != CS_IDLE)
                conn_close(c);
        }
    }
}

static bool all_closed(const struct worker *w)
{
    for (uint32_t i = 0; i < w->nconns; i++)
        if (w->conns[i].state != CS_CLOSED && w->conns[i].state != CS_IDLE)
            return false;
    return true;
}

static void window_edges(struct worker *w, uint64_t now)
{
    if (w->phase_seen < PHASE_RUN)
        return;
    if (!w->win_started &&
        now >= atomic_load_explicit(&w->ctl->win_start_ns, memory_order_relaxed)) {
        w->win_started = true;
        w->win_start = w->c;
        w->win_start_ns = now;
    }
    if (w->win_started && !w->win_ended &&
        now >= atomic_load_explicit(&w->ctl->win_end_ns, memory_order_relaxed)) {
        w->win_ended = true;
        w->win_end = w->c;
        w->win_end_ns = now;
    }
}

static int ring_init(struct worker *w)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    int r = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
    if (r < 0) {
        fprintf(stderr, "ringmq-bench: worker %u: io_uring_queue_init: %s%s\n", w->index,
                strerror(-r),
                (r == -ENOMEM || r == -EPERM)
                    ? " (RLIMIT_MEMLOCK too low, or io_uring disabled by sysctl/seccomp)"
                    : "");
        return r;
    }
    w->ring_ok = true;
    return 0;
}

/* Handles this turn's completions; true when the tick was among them. */
static bool reap(struct worker *w)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    bool ticked = false;
    io_uring_for_each_cqe(&w->ring, head, cqe)
    {
        n++;
        uintptr_t u = (uintptr_t)io_uring_cqe_get_data(cqe);
        struct conn *c = (struct conn *)(u & ~(uintptr_t)7);
        switch ((enum op)(u & 7)) {
        case OP_RECV:
            on_recv(c, cqe->res);
            break;
        case OP_SEND:
            on_send(c, cqe->res);
            break;
        case OP_CONNECT:
            on_connect(c, cqe->res);
            break;
        case OP_TICK:
            ticked = true;
            break;
        }
    }
    io_uring_cq_advance(&w->ring, n);
    return ticked;
}

static void on_tick(struct worker *w, bool storm_like)
{
    arm_tick(w);
    uint64_t now = bench_now_ns();
    double dt_s = (double)(now - w->last_tick_ns) / 1e9;
    w->last_tick_ns = now;
    int phase = phase_now(w);
    window_edges(w, now);
    if (phase == PHASE_RUN) {
        if (storm_like)
            connect_pace(w, dt_s);
        else
            pace_publishers(w, dt_s);
    }
    if (now - w->last_ping_check_ns >= 200000000ull) {
        w->last_ping_check_ns = now;
        check_timeouts(w, now);
    }
    if (now - w->last_snapshot_ns >= SNAPSHOT_PERIOD_NS) {
        w->last_snapshot_ns = now;
        publish_snapshot(w);
    }
}

/* Whatever is still open is closed now; the pending ops are cancelled by
 * io_uring_queue_exit, after which the buffers may go. */
static void worker_finish(struct worker *w)
{
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
            w->c.open_now--;
        }
    }
    window_edges(w, bench_now_ns());
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->role == ROLE_PUB)
            w->ctl->pub_sent[c->id] = c->sent;
    }
    publish_snapshot(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct bench_opts *o = w->o;
    /* Connect and handshake storms have no setup: their connections are
     * opened during the run. */
    bool storm_like = o->scenario == SCENARIO_CONNECT || w->storm;
    if (ring_init(w) != 0) {
        atomic_fetch_add(&w->ctl->failed, 1);
        return NULL;
    }
    bool fast = w->pub_rate > 0 || w->lat_mode || (storm_like && o->rate > 0);
    w->tick_ns = fast ? 1000000ull : 10000000ull;
    uint64_t now = bench_now_ns();
    w->last_tick_ns = now;
    w->last_ping_check_ns = now;
    arm_tick(w);

    if (!storm_like) {
        /* Open everything now, bounded by the connect concurrency: the
         * others are started as the first ones finish (check below). */
        for (uint32_t i = 0; i < w->nconns; i++)
            w->conns[i].state = CS_IDLE;
    } else {
        w->setup_done = true;
        w->setup_reported = true;
        atomic_fetch_add(&w->ctl->ready, 1);
    }
    uint32_t next_open = 0;

    for (;;) {
        int phase = phase_now(w);
        now = bench_now_ns();
        if (phase != w->phase_seen) {
            w->phase_seen = phase;
            on_phase_change(w, phase, now);
        }
        if (!storm_like) {
            while (next_open < w->nconns && w->connecting < o->connect_concurrency &&
                   phase < PHASE_STOP)
                conn_open(&w->conns[next_open++]);
            check_setup(w, now);
        } else if (phase == PHASE_RUN && w->storm) {
            storm_start(w, now);
        } else if (phase == PHASE_RUN) {
            connect_start(w, now);
            connect_release(w, now);
        }
        if (phase == PHASE_STOP && (all_closed(w) || now > w->stop_deadline_ns))
            break;

        for (uint32_t i = 0; i < w->ndirty; i++)
            conn_flush(w->dirty[i]);
        w->ndirty = 0;

        int r = io_uring_submit_and_wait(&w->ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            fprintf(stderr, "ringmq-bench: worker %u: io_uring_submit_and_wait: %s\n", w->index,
                    strerror(-r));
            break;
        }
        if (reap(w))
            on_tick(w, storm_like);
    }
    worker_finish(w);
    return NULL;
}

int worker_start(struct worker *w)
{
    return -pthread_create(&w->thread, NULL, worker_main, w);
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}
