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
#include "bench.h"
#include "codec.h"
#include "seqtrack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "payload fields are written as host LE");

#define PAYLOAD_HDR_LEN    20u /* pub id u32, seq u64, send time ns u64 */
#define IN_BUF_SUB         (64u * 1024u)
#define IN_BUF_SUB_MANY    (16u * 1024u) /* when a thread has many subscribers */
#define IN_BUF_SMALL       (4u * 1024u)
#define IN_BUF_MAX         (16u * 1024u * 1024u)
#define OUT_BUF_SMALL      (1024u)
#define OUT_BUF_MAX        (16u * 1024u * 1024u)
#define SETUP_TIMEOUT_NS   (15ull * 1000000000ull)
#define CONNECT_TIMEOUT_NS (10ull * 1000000000ull)
#define LATENCY_TIMEOUT_NS (1000000000ull)
#define STOP_GRACE_NS      (1000000000ull)
#define SNAPSHOT_PERIOD_NS (100000000ull)
#define RING_ENTRIES       1024u
#define CQ_ENTRIES         16384u
#define PKID_WORDS         (65536u / 64u)

enum role { ROLE_PUB, ROLE_SUB, ROLE_CONN };

enum conn_state {
    CS_IDLE,         /* not started (connect scenario) */
    CS_CONNECTING,   /* TCP connect in flight */
    CS_CONNACK_WAIT, /* CONNECT sent */
    CS_SUBACK_WAIT,  /* SUBSCRIBE sent */
    CS_READY,
    CS_HELD,          /* connect scenario: waiting for its hold time */
    CS_DISCONNECTING, /* DISCONNECT queued; waiting for the broker to close */
    CS_CLOSING,       /* shut down; waiting for ops to complete */
    CS_CLOSED,
};

enum op { OP_RECV = 0, OP_SEND = 1, OP_CONNECT = 2, OP_TICK = 3 };

struct obuf {
    uint8_t *p;
    uint32_t len;
    uint32_t cap;
    uint32_t msgs; /* PUBLISH packets inside */
};

struct conn {
    struct worker *w;
    int fd;
    uint32_t id; /* publisher / subscriber / client index across all threads */
    uint8_t role;
    uint8_t state;
    uint8_t ops; /* io_uring operations in flight */
    bool dirty;
    bool send_inflight;
    bool recv_inflight;
    bool failed; /* counted as an error already */
    uint64_t t_start_ns;
    uint64_t t_last_send_ns;
    uint64_t hold_until_ns;

    uint8_t *in;
    uint32_t in_len;
    uint32_t in_cap;
    struct obuf fill;
    struct obuf busy;
    uint32_t busy_off;

    /* Publisher. */
    uint64_t next_seq;
    uint64_t sent;
    double credit;
    uint32_t inflight;
    uint32_t inflight_max;
    uint16_t next_pkid;
    uint64_t *pkid_used;
    bool awaiting; /* latency: a message is on its way */
    uint64_t await_since_ns;
    uint8_t *tmpl;
    uint32_t tmpl_len;
    uint32_t tmpl_payload_off;
    uint32_t tmpl_pkid_off;
    char *topic;

    /* Subscriber. */
    struct seqtrack *streams;
    uint32_t first_pub;
    uint32_t npubs;
    struct conn *lat_pub; /* latency: the publisher this subscriber releases */
    char *filter;
};

struct worker {
    struct bench_ctl *ctl;
    const struct bench_opts *o;
    uint32_t index;
    pthread_t thread;
    struct io_uring ring;
    bool ring_ok;
    struct sockaddr_in addr;

    struct conn *conns;
    uint32_t nconns;
    uint32_t npubs_local;
    struct conn **dirty;
    uint32_t ndirty;

    struct bench_counters c;
    struct hist lat_all, lat_win, conn_lat;
    struct bench_counters win_start, win_end;
    uint64_t win_start_ns, win_end_ns;
    bool win_started, win_ended;
    uint64_t first_connect_ns, last_connack_ns;
    bool setup_done, setup_reported, connect_done;

    /* Pacing. */
    struct __kernel_timespec tick_ts;
    uint64_t tick_ns;
    uint64_t last_tick_ns;
    uint64_t last_ping_check_ns;
    uint64_t last_snapshot_ns;
    double offered_frac;
    int phase_seen;

    /* Connect scenario. */
    uint32_t next_start;
    uint32_t connecting;
    double connect_credit;
    struct conn **hold_q; /* FIFO: every connection enters once */
    uint32_t hold_head, hold_tail;
    bool warned_fds;

    uint64_t stop_deadline_ns;

    pthread_mutex_t lock;
    struct bench_snapshot snap;
};

const char *const bench_err_names[BERR_COUNT] = {
    [BERR_CONNECT] = "connect_failed",
    [BERR_CONNACK] = "connack_refused",
    [BERR_SUBACK] = "suback_refused",
    [BERR_SOCKETS] = "out_of_sockets",
    [BERR_PEER_CLOSED] = "closed_by_broker",
    [BERR_PROTOCOL] = "protocol_error",
    [BERR_SEND] = "send_error",
    [BERR_RECV] = "recv_error",
    [BERR_TIMEOUT] = "timeout",
    [BERR_PUB_REFUSED] = "publish_refused",
    [BERR_UNEXPECTED_ACK] = "unexpected_ack",
    [BERR_FOREIGN] = "unexpected_stream",
    [BERR_SHORT_PAYLOAD] = "short_payload",
    [BERR_LATENCY_TIMEOUT] = "latency_timeout",
};

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_counters_add(struct bench_counters *dst, const struct bench_counters *src)
{
    const uint64_t *s = (const uint64_t *)src;
    uint64_t *d = (uint64_t *)dst;
    for (size_t i = 0; i < sizeof(*src) / sizeof(uint64_t); i++)
        d[i] += s[i];
}

/* ---- small helpers ---- */

static struct mqtt_bytes bytes_of(const char *s)
{
    struct mqtt_bytes b = {(const uint8_t *)s, s ? (uint32_t)strlen(s) : 0};
    return b;
}

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

static bool obuf_reserve(struct obuf *b, uint32_t more)
{
    if (b->len + more <= b->cap)
        return true;
    uint64_t want = b->cap ? b->cap : 256;
    while (want < (uint64_t)b->len + more)
        want *= 2;
    if (want > OUT_BUF_MAX)
        return false;
    uint8_t *p = realloc(b->p, want);
    if (!p)
        return false;
    b->p = p;
    b->cap = (uint32_t)want;
    return true;
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

static void submit_recv(struct conn *c)
{
    if (c->recv_inflight || c->fd < 0 || c->state >= CS_CLOSING)
        return;
    if (c->in_len == c->in_cap) {
        /* A packet larger than the buffer: grow to hold it (bounded). */
        uint32_t cap = c->in_cap * 2;
        uint8_t *p = cap <= IN_BUF_MAX ? realloc(c->in, cap) : NULL;
        if (!p) {
            conn_fail(c, BERR_PROTOCOL);
            return;
        }
        c->in = p;
        c->in_cap = cap;
    }
    struct io_uring_sqe *sqe = get_sqe(c->w);
    io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
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

static void conn_flush(struct conn *c)
{
    c->dirty = false;
    if (c->send_inflight || c->fill.len == 0 || c->fd < 0 || c->state >= CS_CLOSING)
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

static void conn_close(struct conn *c)
{
    if (c->state == CS_CLOSED || c->state == CS_CLOSING)
        return;
    struct worker *w = c->w;
    leave_connecting(c);
    c->state = CS_CLOSING;
    if (c->fd >= 0 && c->ops > 0) {
        /* Wakes the recv (res 0) and fails the send; the fd is closed once
         * the kernel hands both buffers back. */
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        w->c.open_now--;
    }
    c->state = CS_CLOSED;
    if (c->role == ROLE_CONN)
        w->c.connects_done++;
}

/* Called when an op completes on a closing connection. */
static void conn_op_done(struct conn *c)
{
    c->ops--;
    if (c->state == CS_CLOSING && c->ops == 0) {
        c->state = CS_CLOSED; /* conn_close's early return needs CLOSING cleared */
        if (c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
            c->w->c.open_now--;
        }
        if (c->role == ROLE_CONN)
            c->w->c.connects_done++;
    }
}

/* ---- MQTT client logic ---- */

static void send_connect(struct conn *c)
{
    const struct bench_opts *o = c->w->o;
    char cid[160];
    const char *tag = c->role == ROLE_PUB ? "p" : c->role == ROLE_SUB ? "s" : "c";
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
        if (o->scenario == SCENARIO_LATENCY && c->awaiting)
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
        if (o->scenario == SCENARIO_LATENCY) {
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
    if (c->w->o->rate > 0 || c->w->o->scenario == SCENARIO_LATENCY)
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
        hist_record(&w->conn_lat, (now - c->t_start_ns) / 1000u);
        w->c.connects_ok++;
        w->last_connack_ns = now;
        leave_connecting(c);
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
        c->in_len += (uint32_t)res;
        conn_parse(c);
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
    if (c->fill.len)
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
        conn_fail(c, BERR_CONNECT);
        return;
    }
    send_connect(c);
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
        c->state = CS_CLOSED;
        if (c->role == ROLE_CONN)
            w->c.connects_done++;
        return -e;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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

/* ---- setup ---- */

static int conn_alloc_bufs(struct conn *c, uint32_t in_cap, uint32_t out_cap)
{
    c->in = malloc(in_cap);
    c->in_cap = in_cap;
    c->fill.p = malloc(out_cap);
    c->fill.cap = out_cap;
    c->busy.p = malloc(out_cap);
    c->busy.cap = out_cap;
    return (c->in && c->fill.p && c->busy.p) ? 0 : -ENOMEM;
}

static char *topic_for_pub(const struct bench_opts *o, uint32_t i)
{
    char buf[512];
    switch (o->scenario) {
    case SCENARIO_FANOUT:
        snprintf(buf, sizeof(buf), "%s/fanout", o->topic_prefix);
        break;
    case SCENARIO_FANIN:
        snprintf(buf, sizeof(buf), "%s/fanin/%u", o->topic_prefix, i);
        break;
    default:
        snprintf(buf, sizeof(buf), "%s/pair/%u", o->topic_prefix, i);
        break;
    }
    return strdup(buf);
}

static char *filter_for_sub(const struct bench_opts *o, uint32_t j)
{
    char buf[512];
    switch (o->scenario) {
    case SCENARIO_FANOUT:
        snprintf(buf, sizeof(buf), "%s/fanout", o->topic_prefix);
        break;
    case SCENARIO_FANIN:
        if (o->shared)
            snprintf(buf, sizeof(buf), "$share/bench/%s/fanin/+", o->topic_prefix);
        else
            snprintf(buf, sizeof(buf), "%s/fanin/+", o->topic_prefix);
        break;
    default:
        snprintf(buf, sizeof(buf), "%s/pair/%u", o->topic_prefix, j);
        break;
    }
    return strdup(buf);
}

static int pub_build_template(struct conn *c)
{
    const struct bench_opts *o = c->w->o;
    uint8_t *payload = calloc(1, o->payload_len);
    if (!payload)
        return -ENOMEM;
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = o->qos;
    p.u.publish.topic = bytes_of(c->topic);
    p.u.publish.packet_id = o->qos ? 1 : 0;
    p.u.publish.payload.ptr = payload;
    p.u.publish.payload.len = o->payload_len;
    size_t n = codec_encoded_size(&p, o->version);
    c->tmpl = malloc(n);
    if (!c->tmpl) {
        free(payload);
        return -ENOMEM;
    }
    codec_encode(c->tmpl, &p, o->version);
    free(payload);
    c->tmpl_len = (uint32_t)n;
    c->tmpl_payload_off = (uint32_t)(n - o->payload_len);
    c->tmpl_pkid_off = o->qos ? (uint32_t)codec_publish_packet_id_offset(c->tmpl) : 0;
    if (c->tmpl_len > c->fill.cap) {
        /* One message must fit a batch. */
        uint8_t *a = realloc(c->fill.p, c->tmpl_len);
        uint8_t *b = realloc(c->busy.p, c->tmpl_len);
        if (a)
            c->fill.p = a;
        if (b)
            c->busy.p = b;
        if (!a || !b)
            return -ENOMEM;
        c->fill.cap = c->busy.cap = c->tmpl_len;
    }
    return 0;
}

static int resolve(const struct bench_opts *o, struct sockaddr_in *out)
{
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons(o->port);
    if (inet_pton(AF_INET, o->host, &out->sin_addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(o->host, NULL, &hints, &res) != 0 || !res)
        return -EINVAL;
    out->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

struct worker *worker_create(struct bench_ctl *ctl, uint32_t index)
{
    const struct bench_opts *o = ctl->opts;
    struct worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->ctl = ctl;
    w->o = o;
    w->index = index;
    pthread_mutex_init(&w->lock, NULL);
    hist_init(&w->lat_all);
    hist_init(&w->lat_win);
    hist_init(&w->conn_lat);
    if (resolve(o, &w->addr) != 0) {
        fprintf(stderr, "ringmq-bench: cannot resolve %s\n", o->host);
        goto fail;
    }

    uint32_t T = o->threads;
    uint32_t npub = 0, nsub = 0, nconn = 0;
    if (o->scenario == SCENARIO_CONNECT) {
        nconn = o->clients / T + (index < o->clients % T ? 1 : 0);
    } else {
        npub = o->publishers / T + (index < o->publishers % T ? 1 : 0);
        nsub = o->subscribers / T + (index < o->subscribers % T ? 1 : 0);
    }
    w->nconns = npub + nsub + nconn;
    w->npubs_local = npub;
    w->conns = calloc(w->nconns ? w->nconns : 1, sizeof(*w->conns));
    w->dirty = calloc(w->nconns ? w->nconns : 1, sizeof(*w->dirty));
    w->hold_q = calloc(nconn ? nconn : 1, sizeof(*w->hold_q));
    if (!w->conns || !w->dirty || !w->hold_q)
        goto fail;

    uint32_t sub_in = nsub > 64 ? IN_BUF_SUB_MANY : IN_BUF_SUB;
    uint32_t k = 0;
    /* Subscribers first in the array: they are set up before anyone
     * publishes anyway, and latency pairs look up their publisher below. */
    for (uint32_t i = 0; i < nsub; i++, k++) {
        struct conn *c = &w->conns[k];
        c->w = w;
        c->fd = -1;
        c->role = ROLE_SUB;
        c->id = index + i * T;
        c->filter = filter_for_sub(o, c->id);
        if (o->scenario == SCENARIO_PAIRS || o->scenario == SCENARIO_LATENCY) {
            c->first_pub = c->id;
            c->npubs = 1;
        } else {
            c->first_pub = 0;
            c->npubs = o->publishers;
        }
        c->streams = malloc((size_t)c->npubs * sizeof(*c->streams));
        if (!c->filter || !c->streams || conn_alloc_bufs(c, sub_in, OUT_BUF_SMALL * 4) != 0)
            goto fail;
        for (uint32_t s = 0; s < c->npubs; s++)
            seq_init(&c->streams[s]);
    }
    for (uint32_t i = 0; i < npub; i++, k++) {
        struct conn *c = &w->conns[k];
        c->w = w;
        c->fd = -1;
        c->role = ROLE_PUB;
        c->id = index + i * T;
        c->next_pkid = 1;
        c->topic = topic_for_pub(o, c->id);
        c->pkid_used = o->qos ? calloc(PKID_WORDS, sizeof(uint64_t)) : NULL;
        if (!c->topic || (o->qos && !c->pkid_used) ||
            conn_alloc_bufs(c, IN_BUF_SMALL, o->batch_bytes) != 0 || pub_build_template(c) != 0)
            goto fail;
        if (o->scenario == SCENARIO_LATENCY) {
            /* Pair i's subscriber lives in this thread too (same i % T). */
            for (uint32_t s = 0; s < nsub; s++)
                if (w->conns[s].id == c->id)
                    w->conns[s].lat_pub = c;
        }
    }
    for (uint32_t i = 0; i < nconn; i++, k++) {
        struct conn *c = &w->conns[k];
        c->w = w;
        c->fd = -1;
        c->role = ROLE_CONN;
        c->id = index + i * T;
        c->state = CS_IDLE;
        if (conn_alloc_bufs(c, 256, 256) != 0)
            goto fail;
    }
    return w;
fail:
    fprintf(stderr, "ringmq-bench: worker %u: setup failed (out of memory?)\n", index);
    worker_destroy(w);
    return NULL;
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
    const struct bench_opts *o = w->o;
    if (o->rate <= 0)
        return;
    double due = o->rate * dt_s;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->role != ROLE_PUB || c->state != CS_READY)
            continue;
        w->offered_frac += due;
        c->credit += due;
        /* A publisher held back by the broker does not build an unbounded
         * debt: at most 100 ms (or one message) of backlog is kept; the rest
         * counts as offered but never sent. */
        double cap = o->rate * 0.1 > 1.0 ? o->rate * 0.1 : 1.0;
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

static void on_phase_change(struct worker *w, int phase, uint64_t now)
{
    if (phase == PHASE_RUN && w->o->rate <= 0) {
        for (uint32_t i = 0; i < w->nconns; i++)
            if (w->conns[i].role == ROLE_PUB)
                pub_refill_unpaced(&w->conns[i]);
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

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct bench_opts *o = w->o;
    bool connect_sc = o->scenario == SCENARIO_CONNECT;

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
        atomic_fetch_add(&w->ctl->failed, 1);
        return NULL;
    }
    w->ring_ok = true;
    w->tick_ns = (o->rate > 0 || o->scenario == SCENARIO_LATENCY) ? 1000000ull : 10000000ull;
    uint64_t now = bench_now_ns();
    w->last_tick_ns = now;
    w->last_ping_check_ns = now;
    arm_tick(w);

    if (!connect_sc) {
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
        if (!connect_sc) {
            while (next_open < w->nconns && w->connecting < o->connect_concurrency &&
                   phase < PHASE_STOP)
                conn_open(&w->conns[next_open++]);
            check_setup(w, now);
        } else if (phase == PHASE_RUN) {
            connect_start(w, now);
            connect_release(w, now);
        }
        if (phase == PHASE_STOP && (all_closed(w) || now > w->stop_deadline_ns))
            break;

        for (uint32_t i = 0; i < w->ndirty; i++)
            conn_flush(w->dirty[i]);
        w->ndirty = 0;

        r = io_uring_submit_and_wait(&w->ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            fprintf(stderr, "ringmq-bench: worker %u: io_uring_submit_and_wait: %s\n", w->index,
                    strerror(-r));
            break;
        }
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

        if (!ticked)
            continue;
        arm_tick(w);
        now = bench_now_ns();
        double dt_s = (double)(now - w->last_tick_ns) / 1e9;
        w->last_tick_ns = now;
        phase = phase_now(w);
        window_edges(w, now);
        if (phase == PHASE_RUN) {
            if (connect_sc)
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

    /* Whatever is still open is closed now; the pending ops are cancelled
     * by io_uring_queue_exit, after which the buffers may go. */
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

void worker_snapshot(struct worker *w, struct bench_snapshot *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->snap;
    pthread_mutex_unlock(&w->lock);
}

void worker_final_loss(struct worker *w, uint64_t *lost, uint64_t *expected,
                       uint64_t *unique_by_pub)
{
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->role != ROLE_SUB)
            continue;
        for (uint32_t s = 0; s < c->npubs; s++) {
            uint32_t pub = c->first_pub + s;
            uint64_t sent = w->ctl->pub_sent[pub];
            if (w->o->shared) {
                unique_by_pub[pub] += c->streams[s].unique;
            } else {
                *expected += sent;
                *lost += seq_lost_final(&c->streams[s], sent);
            }
        }
    }
}

void worker_destroy(struct worker *w)
{
    if (!w)
        return;
    if (w->ring_ok)
        io_uring_queue_exit(&w->ring);
    for (uint32_t i = 0; w->conns && i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->fd >= 0)
            close(c->fd);
        free(c->in);
        free(c->fill.p);
        free(c->busy.p);
        free(c->pkid_used);
        free(c->tmpl);
        free(c->topic);
        free(c->streams);
        free(c->filter);
    }
    free(w->conns);
    free(w->dirty);
    free(w->hold_q);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
