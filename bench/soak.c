/*
 * ringmq-bench soak: QoS 1 and QoS 2 delivery under chaos.
 *
 * Publishers, alternately QoS 1 and QoS 2 (or all --qos), publish
 * sequence-stamped messages to <topic-prefix>/soak/<client-prefix>/<p>.
 * Plain subscribers and share groups ($share/soak<g>/...) subscribe to all of
 * them at QoS 2, every client with a persistent session (3.1.1: clean
 * session 0; 5.0: a session expiry of an hour). During the run a chaos loop
 * closes a random client's socket without DISCONNECT (half the time with an
 * RST) every --kill-interval on average and reconnects it a moment later
 * with the same client id and clean start 0. Every client resumes its
 * session as a real one must:
 *
 *   - a publisher keeps its unacknowledged messages and, after a CONNACK,
 *     sends them again in order with the same packet ids: PUBLISH with DUP
 *     for those without PUBACK / PUBREC, PUBREL for those with PUBREC and
 *     without PUBCOMP [MQTT-4.4.0-1];
 *   - a subscriber remembers the packet ids of QoS 2 messages it has
 *     received and not yet seen released, so that the broker's DUP resend of
 *     one is acknowledged again and not counted twice (method B of
 *     [MQTT-4.3.3]).
 *
 * Then the drain: no more kills and no new messages; every client
 * reconnects; it ends when every flow is complete (nothing in flight on
 * either side, every acknowledged message at every receiver) and nothing
 * more arrived for SOAK_SETTLE_NS, or at --drain.
 *
 * The verdict comes from the ledger (ledger.h): a message the broker
 * acknowledged (PUBACK for QoS 1, PUBREC for QoS 2) must reach every plain
 * subscriber and one member of every share group at least once (QoS 1) or
 * exactly once (QoS 2); a message it never acknowledged need not arrive, but
 * a QoS 2 one must not arrive twice. The run also fails on any error (a
 * broker that closes connections, refuses CONNECT, forgets a session, sends
 * something undecodable) and when the drain does not complete: a broker
 * that stops answering shows up as handshake_timeout or broker_stalled and
 * as an incomplete drain, never as a hang.
 *
 * Single-threaded on the caller's thread: one poll() loop over nonblocking
 * sockets. Correctness, not throughput, is the point, so every client is
 * plain code and every wait has a deadline.
 */
#include "soak.h"
#include "codec.h"
#include "ledger.h"
#include "soak_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ---- */

static uint64_t rng_next(struct soak *s)
{
    /* splitmix64: tiny, and a seed of 0 is as good as any other. */
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static uint64_t rng_below(struct soak *s, uint64_t n)
{
    return rng_next(s) % n;
}

static struct mqtt_bytes bytes_of(const char *str)
{
    struct mqtt_bytes b = {(const uint8_t *)str, str ? (uint32_t)strlen(str) : 0};
    return b;
}

static double since_s(const struct soak *s, uint64_t now)
{
    return (double)(now - s->t0_ns) / 1e9;
}

static void note_err(struct soak *s, struct client *c, enum soak_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Counts an error and prints the first SOAK_LOG_MAX of them as they happen,
 * with the client and the phase, so a failing run says what went wrong. */
static void note_err(struct soak *s, struct client *c, enum soak_err e, const char *fmt, ...)
{
    s->err[e]++;
    if (s->logged >= SOAK_LOG_MAX)
        return;
    if (++s->logged == SOAK_LOG_MAX) {
        fprintf(stderr, "soak: (further errors are counted, not printed)\n");
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    static const char *const phases[] = {"setup", "run", "drain", "stop"};
    fprintf(stderr, "soak: [%6.2fs %s] %s: %s: %s\n", since_s(s, bench_now_ns()), phases[s->phase],
            c ? c->id : "-", soak_err_names[e], msg);
}

/* ---- output ---- */

static bool out_reserve(struct client *c, uint32_t more)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + more <= c->out_cap)
        return true;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + more <= c->out_cap)
            return true;
    }
    uint64_t want = c->out_cap ? c->out_cap : 4096;
    while (want < (uint64_t)c->out_len + more)
        want *= 2;
    if (want > SOAK_OUT_MAX)
        return false;
    uint8_t *p = realloc(c->out, want);
    if (!p)
        return false;
    c->out = p;
    c->out_cap = (uint32_t)want;
    return true;
}

static void client_drop(struct soak *s, struct client *c, uint64_t now);
static void client_kill(struct soak *s, struct client *c, uint64_t now);

static void queue_packet(struct soak *s, struct client *c, const struct mqtt_packet *p)
{
    uint8_t v = s->o->version;
    size_t n = codec_encoded_size(p, v);
    if (!out_reserve(c, (uint32_t)n)) {
        note_err(s, c, SE_IO, "%zu bytes would pass the %u-byte send buffer bound", n,
                 SOAK_OUT_MAX);
        client_drop(s, c, bench_now_ns());
        return;
    }
    size_t wrote = codec_encode(c->out + c->out_len, p, v);
    if (wrote != n) {
        fprintf(stderr, "ringmq-bench: codec wrote %zu of %zu bytes\n", wrote, n);
        abort();
    }
    c->out_len += (uint32_t)n;
}

static void queue_ack(struct soak *s, struct client *c, uint8_t type, uint16_t pkid)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = type;
    p.u.ack.packet_id = pkid;
    p.u.ack.reason = MQTT_RC_SUCCESS;
    queue_packet(s, c, &p);
}

/* Writes what is queued until the socket is full. */
static void client_flush(struct soak *s, struct client *c, uint64_t now)
{
    while (c->fd >= 0 && c->state != CS_CONNECTING && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (uint32_t)n;
            c->last_tx_ns = now;
            if (c->kill_by_ns && c->is_pub && c->state == CS_UP) {
                /* Mid-flow: PUBLISH (or PUBREL) written, its ack not read. */
                client_kill(s, c, now);
                return;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            note_err(s, c, SE_CLOSED, "send: %s", strerror(errno));
        else
            note_err(s, c, SE_IO, "send: %s", n < 0 ? strerror(errno) : "wrote 0");
        client_drop(s, c, now);
        return;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
}

/* ---- connections ---- */

static void client_close(struct client *c, bool rst, uint64_t now)
{
    if (c->fd >= 0) {
        if (rst) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(c->fd);
        c->fd = -1;
    }
    c->state = CS_DOWN;
    c->since_ns = now;
    c->kill_by_ns = 0;
    c->paused_until_ns = 0;
    c->in_len = 0;
    c->out_len = c->out_off = 0;
    c->ping_out = false;
}

/* After an error: close, and come back after a short backoff. */
static void client_drop(struct soak *s, struct client *c, uint64_t now)
{
    (void)s;
    client_close(c, false, now);
    c->down_until_ns = now + SOAK_BACKOFF_NS;
}

/* The chaos: gone without DISCONNECT, back soon (at once a quarter of the
 * time, which races the broker's own noticing of the close). */
static void client_kill(struct soak *s, struct client *c, uint64_t now)
{
    client_close(c, rng_next(s) & 1u, now);
    s->kills++;
    if (c->is_pub)
        s->kills_pub++;
    else
        s->kills_sub++;
    uint64_t away_max = (uint64_t)(2.0 * s->o->kill_interval_s * 1e9);
    if (away_max > SOAK_DOWN_MAX_NS)
        away_max = SOAK_DOWN_MAX_NS;
    uint64_t away = (rng_below(s, 4) == 0 || away_max == 0) ? 0 : rng_below(s, away_max);
    c->down_until_ns = now + away;
}

static void send_connect(struct soak *s, struct client *c)
{
    const struct bench_opts *o = s->o;
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    struct mqtt_connect *cn = &p.u.connect;
    cn->version = o->version;
    /* 3.1.1: clean session 0 keeps the session [MQTT-3.1.2-4]. 5.0: the
     * first CONNECT starts clean, later ones resume; the expiry keeps the
     * session across the gap [MQTT-3.1.2-23]. */
    cn->clean_start = o->version == MQTT_V5 && !c->had_connack;
    cn->keepalive_s = SOAK_KEEPALIVE_S;
    cn->client_id = bytes_of(c->id);
    if (o->username) {
        cn->has_username = true;
        cn->username = bytes_of(o->username);
    }
    if (o->password) {
        cn->has_password = true;
        cn->password = bytes_of(o->password);
    }
    if (o->version == MQTT_V5) {
        cn->props.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
        cn->props.session_expiry_s = SOAK_SESSION_EXPIRY_S;
        if (!c->is_pub) {
            /* A small window keeps messages queued on the broker's side,
             * which is where a disconnect has something to lose. */
            cn->props.present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
            cn->props.receive_maximum = SOAK_RECEIVE_MAX;
        }
    }
    c->state = CS_CONNACK_WAIT;
    c->since_ns = bench_now_ns();
    queue_packet(s, c, &p);
}

static void client_connect(struct soak *s, struct client *c, uint64_t now)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_err(s, c, SE_CONNECT, "socket: %s", strerror(errno));
        c->down_until_ns = now + SOAK_BACKOFF_NS;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->since_ns = now;
    c->last_rx_ns = c->last_tx_ns = now;
    if (connect(fd, (struct sockaddr *)&s->addr, sizeof(s->addr)) == 0) {
        send_connect(s, c);
        return;
    }
    if (errno == EINPROGRESS) {
        c->state = CS_CONNECTING;
        return;
    }
    note_err(s, c, SE_CONNECT, "connect: %s", strerror(errno));
    client_drop(s, c, now);
}

static void on_connect_done(struct soak *s, struct client *c, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        note_err(s, c, SE_CONNECT, "connect: %s", strerror(err));
        client_drop(s, c, now);
        return;
    }
    send_connect(s, c);
}

/* One SUBSCRIBE (packet id k + 1) per subscription the session lacks, each
 * with its own Subscription Identifier, so that a client holding a plain and
 * a shared subscription can tell which one a delivery is for. */
static void send_subscribe(struct soak *s, struct client *c)
{
    c->state = CS_SUBACK_WAIT;
    c->since_ns = bench_now_ns();
    for (uint32_t k = 0; k < c->nsubs && c->fd >= 0; k++) {
        const struct sub *sb = &c->subs[k];
        if (sb->granted)
            continue;
        size_t flen = strlen(sb->filter);
        uint8_t entry[2 + 512 + 1];
        if (flen > 512) {
            note_err(s, c, SE_PROTOCOL, "filter too long");
            client_drop(s, c, bench_now_ns());
            return;
        }
        entry[0] = (uint8_t)(flen >> 8);
        entry[1] = (uint8_t)flen;
        memcpy(entry + 2, sb->filter, flen);
        entry[2 + flen] = 2; /* QoS 2; 5.0: no_local, RAP, retain handling 0 */
        struct mqtt_packet p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_SUBSCRIBE;
        p.u.subscribe.packet_id = (uint16_t)(k + 1);
        p.u.subscribe.count = 1;
        p.u.subscribe.entries.ptr = entry;
        p.u.subscribe.entries.len = (uint32_t)(flen + 3);
        if (sb->subid) {
            p.u.subscribe.props.present |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
            p.u.subscribe.props.subscription_ids[0] = sb->subid;
            p.u.subscribe.props.subscription_id_count = 1;
        }
        queue_packet(s, c, &p);
    }
}

static void on_suback(struct soak *s, struct client *c, const struct mqtt_suback *sa, uint64_t now)
{
    uint32_t k = sa->packet_id - 1u;
    if (sa->packet_id == 0 || k >= c->nsubs || c->subs[k].granted || sa->reasons.len != 1) {
        note_err(s, c, SE_PROTOCOL, "SUBACK for packet id %u, not asked for", sa->packet_id);
        client_drop(s, c, now);
        return;
    }
    if (sa->reasons.ptr[0] != 2) {
        note_err(s, c, SE_SUBACK, "SUBACK 0x%02x for %s: the soak needs QoS 2 granted",
                 sa->reasons.ptr[0], c->subs[k].filter);
        client_drop(s, c, now);
        return;
    }
    c->subs[k].granted = true;
    for (uint32_t i = 0; i < c->nsubs; i++)
        if (!c->subs[i].granted)
            return;
    c->state = CS_UP;
    c->since_ns = now;
}

static void send_ping(struct soak *s, struct client *c, uint64_t now)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PINGREQ;
    c->ping_out = true;
    c->ping_ns = now;
    queue_packet(s, c, &p);
}

/* ---- publisher ---- */

static void send_publish(struct soak *s, struct client *c, uint16_t pkid, uint64_t seq, bool dup)
{
    const struct bench_opts *o = s->o;
    uint32_t pub = c->index;
    uint64_t now = bench_now_ns();
    memcpy(s->payload, &pub, 4);
    memcpy(s->payload + 4, &seq, 8);
    memcpy(s->payload + 12, &now, 8);
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = c->qos;
    p.u.publish.dup = dup;
    p.u.publish.topic = bytes_of(c->topic);
    p.u.publish.packet_id = pkid;
    p.u.publish.payload.ptr = s->payload;
    p.u.publish.payload.len = o->payload_len;
    queue_packet(s, c, &p);
}

/* Publishes up to max new messages, as the window allows; returns how many. */
static uint32_t pub_generate(struct soak *s, struct client *c, uint32_t max)
{
    uint32_t n = 0;
    while (n < max && c->state == CS_UP && c->fl_used < c->window) {
        uint32_t i = c->fl_next;
        while (c->fl[i].stage != FL_FREE)
            i = (i + 1) % c->fl_cap; /* fl_used < fl_cap: one is free */
        uint64_t seq;
        int r = ledger_publish(&s->led, c->index, &seq);
        if (r) {
            if (!s->capped)
                fprintf(stderr, "soak: %s: %s; this publisher stops here\n", c->id,
                        r == -ENOSPC ? "the ledger's per-publisher bound is reached"
                                     : "out of memory for the ledger");
            s->capped = true;
            break;
        }
        c->fl[i].seq = seq;
        c->fl[i].stage = FL_PUBLISH;
        c->fl_used++;
        c->fl_next = (i + 1) % c->fl_cap;
        s->published++;
        send_publish(s, c, (uint16_t)(i + 1), seq, false);
        n++;
    }
    return n;
}

static int flight_cmp(const void *a, const void *b)
{
    const struct flight *x = *(const struct flight *const *)a;
    const struct flight *y = *(const struct flight *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* After a CONNACK on a resumed session: everything still in flight goes
 * again, in the order it was first sent, with its packet id. */
static void pub_resend(struct soak *s, struct client *c)
{
    if (c->fl_used == 0)
        return;
    struct flight **order = malloc(c->fl_used * sizeof(*order));
    if (!order) {
        fprintf(stderr, "ringmq-bench: out of memory\n");
        abort();
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->fl_cap; i++)
        if (c->fl[i].stage != FL_FREE)
            order[n++] = &c->fl[i];
    qsort(order, n, sizeof(*order), flight_cmp);
    for (uint32_t k = 0; k < n && c->fd >= 0; k++) {
        uint16_t pkid = (uint16_t)(order[k] - c->fl + 1);
        if (order[k]->stage == FL_PUBLISH) {
            send_publish(s, c, pkid, order[k]->seq, true); /* [MQTT-3.3.1-1] */
            s->resent_publish++;
        } else {
            queue_ack(s, c, MQTT_PUBREL, pkid);
            s->resent_pubrel++;
        }
    }
    free(order);
}

static struct flight *flight_of(struct client *c, uint16_t pkid)
{
    if (pkid == 0 || pkid > c->fl_cap)
        return NULL;
    return &c->fl[pkid - 1];
}

static void flight_free(struct client *c, struct flight *f)
{
    f->stage = FL_FREE;
    c->fl_used--;
}

static void pub_on_ack(struct soak *s, struct client *c, uint8_t type, const struct mqtt_ack *a)
{
    struct flight *f = flight_of(c, a->packet_id);
    bool refused = a->reason >= 0x80;
    if (!f || f->stage == FL_FREE || (type == MQTT_PUBACK && c->qos != 1) ||
        (type != MQTT_PUBACK && c->qos != 2) || (type == MQTT_PUBCOMP && f->stage != FL_PUBREL)) {
        note_err(s, c, SE_UNEXPECTED_ACK, "%s for packet id %u, not in flight",
                 codec_type_name(type), a->packet_id);
        return;
    }
    if (type == MQTT_PUBCOMP) {
        flight_free(c, f);
        return;
    }
    if (refused)
        note_err(s, c, SE_REFUSED, "%s with reason 0x%02x for seq %llu", codec_type_name(type),
                 a->reason, (unsigned long long)f->seq);
    if (ledger_ack(&s->led, c->index, f->seq, refused))
        s->acked++;
    if (type == MQTT_PUBACK || refused) {
        /* QoS 1 ends here; a refused QoS 2 publish ends at PUBREC [MQTT-4.3.3]. */
        flight_free(c, f);
        return;
    }
    /* PUBREC, also again for a flight already at PUBREL: answer it. */
    f->stage = FL_PUBREL;
    queue_ack(s, c, MQTT_PUBREL, a->packet_id);
}

/* ---- subscriber ---- */

static struct unrel *unrel_find(struct client *c, uint16_t pkid)
{
    for (uint32_t i = 0; i < c->ur_n; i++)
        if (c->ur[i].pkid == pkid)
            return &c->ur[i];
    return NULL;
}

static void sub_on_publish(struct soak *s, struct client *c, const struct mqtt_publish *pb)
{
    bool count = true;
    uint32_t pub = UINT32_MAX;
    uint64_t seq = 0;
    if (pb->payload.len >= SOAK_PAYLOAD_HDR) {
        memcpy(&pub, pb->payload.ptr, 4);
        memcpy(&seq, pb->payload.ptr + 4, 8);
    }
    s->last_publish_ns = bench_now_ns();
    if (pb->dup)
        s->dup_flagged++;
    if (pb->qos == 2) {
        /* Method B [MQTT-4.3.3]: the packet id stays taken until PUBREL, and
         * a PUBLISH with it meanwhile is the same message again. */
        struct unrel *u = unrel_find(c, pb->packet_id);
        if (u && u->pub == pub && u->seq == seq) {
            count = false;
            s->q2_recognised++;
        } else if (u) {
            note_err(s, c, SE_PKID_REUSED,
                     "packet id %u carries publisher %u seq %llu before PUBREL of seq %llu",
                     pb->packet_id, pub, (unsigned long long)seq, (unsigned long long)u->seq);
            u->pub = pub;
            u->seq = seq;
        } else if (c->ur_n == SOAK_UNREL_MAX) {
            note_err(s, c, SE_UNREL_FULL, "more than %u QoS 2 messages unreleased", SOAK_UNREL_MAX);
        } else {
            c->ur[c->ur_n++] = (struct unrel){pub, pb->packet_id, seq};
        }
        queue_ack(s, c, MQTT_PUBREC, pb->packet_id);
    } else if (pb->qos == 1) {
        queue_ack(s, c, MQTT_PUBACK, pb->packet_id);
    }
    if (!ledger_known(&s->led, pub, seq)) {
        note_err(s, c, SE_UNKNOWN_MSG, "%u-byte payload names publisher %u seq %llu",
                 pb->payload.len, pub, (unsigned long long)seq);
        return;
    }
    uint8_t want = s->led.s[pub].qos;
    if (pb->qos != want) {
        note_err(s, c, SE_PROTOCOL, "publisher %u's QoS %u message arrived at QoS %u", pub, want,
                 pb->qos);
    }
    if (!count)
        return;
    /* Which subscription(s) it came for: the Subscription Identifiers the
     * broker must copy [MQTT-3.3.4-3]; without them, the only one. */
    uint32_t recv[2], nr = 0;
    if (pb->props.subscription_id_count) {
        for (uint32_t i = 0; i < pb->props.subscription_id_count; i++) {
            uint32_t k = 0;
            while (k < c->nsubs && c->subs[k].subid != pb->props.subscription_ids[i])
                k++;
            if (k == c->nsubs || nr == 2) {
                note_err(s, c, SE_PROTOCOL, "Subscription Identifier %u is not ours",
                         pb->props.subscription_ids[i]);
                continue;
            }
            recv[nr++] = c->subs[k].recv;
        }
    } else if (c->nsubs == 1) {
        recv[nr++] = c->subs[0].recv;
    } else {
        note_err(s, c, SE_PROTOCOL,
                 "a delivery without Subscription Identifier to a client "
                 "with two subscriptions");
    }
    for (uint32_t i = 0; i < nr; i++) {
        s->delivered++;
        uint32_t n = ledger_deliver(&s->led, pub, seq, recv[i]);
        if (n == 2 && want == 2 && s->dup_logged < SOAK_EXAMPLES_MAX) {
            char rn[192];
            s->dup_logged++;
            fprintf(stderr,
                    "soak: [%6.2fs] QoS 2 duplicate: publisher %u seq %llu again at %s (%s%s)\n",
                    since_s(s, bench_now_ns()), pub, (unsigned long long)seq,
                    soak_recv_name(s, recv[i], rn, sizeof(rn)), c->id, pb->dup ? ", DUP set" : "");
        }
    }
}

static void sub_on_pubrel(struct soak *s, struct client *c, const struct mqtt_ack *a)
{
    struct unrel *u = unrel_find(c, a->packet_id);
    if (u)
        *u = c->ur[--c->ur_n];
    /* Unknown ids are answered too: our PUBCOMP may have been lost in a kill. */
    queue_ack(s, c, MQTT_PUBCOMP, a->packet_id);
}

/* ---- packets in ---- */

static void on_connack(struct soak *s, struct client *c, const struct mqtt_connack *ca,
                       uint64_t now)
{
    if (ca->reason != MQTT_RC_SUCCESS) {
        note_err(s, c, SE_CONNACK, "reason 0x%02x", ca->reason);
        client_drop(s, c, now);
        return;
    }
    if (c->had_connack) {
        s->reconnects++;
        if (ca->session_present) {
            s->resumed++;
        } else {
            note_err(s, c, SE_SESSION_LOST, "CONNACK without session present on a resume");
            /* The client's session state goes with it [MQTT-3.2.2-5]... */
            c->ur_n = 0;
            for (uint32_t k = 0; k < c->nsubs; k++)
                c->subs[k].granted = false;
            /* ...but the publisher's unacknowledged messages are resent below
             * all the same, so the ledger still sees what the broker does. */
        }
    }
    c->had_connack = true;
    if (s->o->version == MQTT_V5 && (ca->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)) &&
        ca->props.session_expiry_s < SOAK_SESSION_EXPIRY_S && !s->short_expiry_s) {
        s->short_expiry_s = ca->props.session_expiry_s ? ca->props.session_expiry_s : 1;
        fprintf(stderr, "soak: %s: the broker cut the session expiry to %u s\n", c->id,
                ca->props.session_expiry_s);
    }
    if (c->is_pub) {
        c->window = c->fl_cap;
        if (s->o->version == MQTT_V5 &&
            (ca->props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM)) &&
            ca->props.receive_maximum < c->window)
            c->window = ca->props.receive_maximum;
        c->state = CS_UP;
        c->since_ns = now;
        pub_resend(s, c);
        return;
    }
    for (uint32_t k = 0; k < c->nsubs; k++) {
        if (!c->subs[k].granted) {
            send_subscribe(s, c);
            return;
        }
    }
    c->state = CS_UP;
    c->since_ns = now;
}

static void on_packet(struct soak *s, struct client *c, const struct mqtt_packet *p, uint64_t now)
{
    if (c->state == CS_BYE)
        return; /* after our DISCONNECT: whatever still comes is not judged */
    switch (p->type) {
    case MQTT_CONNACK:
        if (c->state != CS_CONNACK_WAIT)
            goto unexpected;
        on_connack(s, c, &p->u.connack, now);
        return;
    case MQTT_SUBACK:
        if (c->state != CS_SUBACK_WAIT)
            goto unexpected;
        on_suback(s, c, &p->u.suback, now);
        return;
    case MQTT_PUBLISH:
        if (c->is_pub || (c->state != CS_UP && c->state != CS_SUBACK_WAIT))
            goto unexpected;
        c->saw_flow = true;
        sub_on_publish(s, c, &p->u.publish);
        return;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        if (!c->is_pub || c->state != CS_UP)
            goto unexpected;
        c->saw_flow = true;
        pub_on_ack(s, c, p->type, &p->u.ack);
        return;
    case MQTT_PUBREL:
        if (c->is_pub)
            goto unexpected;
        c->saw_flow = true;
        sub_on_pubrel(s, c, &p->u.ack);
        return;
    case MQTT_PINGRESP:
        c->ping_out = false;
        return;
    case MQTT_DISCONNECT:
        note_err(s, c, SE_CLOSED, "DISCONNECT with reason 0x%02x", p->u.disconnect.reason);
        client_drop(s, c, now);
        return;
    default:
        break;
    }
unexpected:
    note_err(s, c, SE_PROTOCOL, "unexpected %s while %s", codec_type_name(p->type),
             soak_state_names[c->state]);
    client_drop(s, c, now);
}

/* Reads once and handles every whole packet. */
static void client_read(struct soak *s, struct client *c, uint64_t now)
{
    if (c->in_len == c->in_cap) {
        uint32_t cap = c->in_cap ? c->in_cap * 2 : 16384;
        uint8_t *p = cap <= SOAK_IN_MAX ? realloc(c->in, cap) : NULL;
        if (!p) {
            note_err(s, c, SE_PROTOCOL, "a packet larger than %u bytes", SOAK_IN_MAX);
            client_drop(s, c, now);
            return;
        }
        c->in = p;
        c->in_cap = cap;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (c->state == CS_BYE) {
            client_close(c, false, now);
            return;
        }
        note_err(s, c, SE_CLOSED, "%s while %s", n == 0 ? "EOF" : strerror(errno),
                 soak_state_names[c->state]);
        client_drop(s, c, now);
        return;
    }
    c->in_len += (uint32_t)n;
    c->last_rx_ns = now;
    c->saw_flow = false;
    uint32_t off = 0;
    while (off < c->in_len && c->fd >= 0) {
        struct mqtt_fixed fh;
        int r = codec_parse_fixed(c->in + off, c->in_len - off, &fh);
        if (r == MQTT_NEED_MORE)
            break;
        uint64_t total = (uint64_t)fh.header_len + fh.remaining_len;
        if (r != 0 || total > SOAK_IN_MAX) {
            note_err(s, c, SE_PROTOCOL, "bad fixed header");
            client_drop(s, c, now);
            return;
        }
        if (total > c->in_len - off) {
            if (total > c->in_cap) {
                uint8_t *p = realloc(c->in, total);
                if (!p) {
                    note_err(s, c, SE_PROTOCOL, "out of memory for a %llu-byte packet",
                             (unsigned long long)total);
                    client_drop(s, c, now);
                    return;
                }
                c->in = p;
                c->in_cap = (uint32_t)total;
            }
            break;
        }
        struct mqtt_packet pkt;
        int rc = codec_decode(&fh, c->in + off + fh.header_len, s->o->version, &pkt);
        if (rc != MQTT_RC_SUCCESS) {
            note_err(s, c, SE_PROTOCOL, "undecodable %s (0x%02x)", codec_type_name(fh.type), rc);
            client_drop(s, c, now);
            return;
        }
        on_packet(s, c, &pkt, now);
        off += (uint32_t)total;
    }
    if (c->fd < 0)
        return; /* dropped: client_close emptied the buffer */
    if (c->kill_by_ns && c->saw_flow && c->state == CS_UP) {
        /* Mid-flow: what we owe the broker for this read (PUBACK, PUBREC,
         * PUBCOMP, PUBREL) is queued and never leaves. */
        client_kill(s, c, now);
        return;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

/* ---- timers, chaos, phases ---- */

/* now - t, or 0 for a t stamped after now was read (handlers read the
 * clock again). */
static uint64_t age(uint64_t now, uint64_t t)
{
    return now > t ? now - t : 0;
}

static void check_timers(struct soak *s, uint64_t now)
{
    for (uint32_t i = 0; i < s->nc; i++) {
        struct client *c = &s->c[i];
        if (c->fd < 0 || c->state == CS_BYE)
            continue;
        if (c->state != CS_UP) {
            if (age(now, c->since_ns) > SOAK_HANDSHAKE_NS) {
                note_err(s, c, SE_TIMEOUT, "still %s after %.0f s", soak_state_names[c->state],
                         (double)SOAK_HANDSHAKE_NS / 1e9);
                client_drop(s, c, now);
            }
            continue;
        }
        /* Something owed to us: a PINGRESP, or acks for messages in flight. */
        bool owed = (c->ping_out && age(now, c->ping_ns) > SOAK_STALL_NS) ||
                    (c->is_pub && c->fl_used > 0 && age(now, c->since_ns) > SOAK_STALL_NS);
        if (owed && age(now, c->last_rx_ns) > SOAK_STALL_NS) {
            note_err(s, c, SE_STALLED, "nothing from the broker for %.0f s (%u in flight)",
                     (double)age(now, c->last_rx_ns) / 1e9, c->is_pub ? c->fl_used : c->ur_n);
            client_drop(s, c, now);
            continue;
        }
        if (!c->ping_out && age(now, c->last_tx_ns) > SOAK_PING_IDLE_NS)
            send_ping(s, c, now);
    }
}

/* One strike at a random client, one of four alike:
 *   - a kill at once, whatever the client is doing;
 *   - a kill mid-flow, which is where sessions have something to lose: a
 *     subscriber right after a read that brought PUBLISH or PUBREL, before
 *     its acks leave; a publisher right after a write, before the acks
 *     come, or after a read of acks, before its PUBRELs leave (an armed
 *     client that sees no flow within SOAK_ARMED_NS is killed then);
 *   - a pause, then a kill: the client stops reading for 100-500 ms, so the
 *     broker's window towards it fills and messages queue behind it, and
 *     goes away with all of that outstanding;
 *   - a pause alone: a slow client that catches up.
 * A client that is not up (yet) is killed at once. */
static void chaos_strike(struct soak *s, uint64_t now)
{
    for (uint32_t tries = 0; tries < 2 * s->nc; tries++) {
        struct client *c = &s->c[rng_below(s, s->nc)];
        if (c->fd < 0 || c->kill_by_ns || c->paused_until_ns)
            continue;
        uint64_t kind = c->state == CS_UP ? rng_below(s, 4) : 0;
        if (kind == 0) {
            client_kill(s, c, now);
        } else if (kind == 1) {
            c->kill_by_ns = now + SOAK_ARMED_NS;
        } else {
            c->paused_until_ns =
                now + SOAK_PAUSE_MIN_NS + rng_below(s, SOAK_PAUSE_MAX_NS - SOAK_PAUSE_MIN_NS);
            c->kill_after_pause = kind == 2;
            s->pauses++;
        }
        return;
    }
}

static void pace(struct soak *s, double dt_s)
{
    double rate = s->o->rate;
    for (uint32_t i = 0; i < s->npubs; i++) {
        struct client *c = &s->c[i];
        if (c->state != CS_UP)
            continue;
        if (rate <= 0) {
            pub_generate(s, c, UINT32_MAX);
            continue;
        }
        /* A publisher held back (window full, or away) keeps at most 100 ms
         * of backlog, as the throughput scenarios do. */
        double cap = rate * 0.1 > 1.0 ? rate * 0.1 : 1.0;
        c->credit += rate * dt_s;
        if (c->credit > cap)
            c->credit = cap;
        if (c->credit >= 1.0)
            c->credit -= pub_generate(s, c, (uint32_t)c->credit);
    }
}

static bool all_up(const struct soak *s, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++)
        if (s->c[i].state != CS_UP)
            return false;
    return true;
}

enum drain_state { DRAIN_BUSY, DRAIN_IDLE, DRAIN_DONE };

/* DONE: every client up, nothing in flight either way, every acknowledged
 * message delivered. IDLE: the same, but deliveries are missing. */
static enum drain_state drain_state(const struct soak *s)
{
    if (!all_up(s, 0, s->nc))
        return DRAIN_BUSY;
    for (uint32_t i = 0; i < s->nc; i++) {
        const struct client *c = &s->c[i];
        if ((c->is_pub && c->fl_used) || (!c->is_pub && c->ur_n) || c->out_len > c->out_off)
            return DRAIN_BUSY;
    }
    return ledger_missing(&s->led) == 0 ? DRAIN_DONE : DRAIN_IDLE;
}

static void progress(const struct soak *s, uint64_t now)
{
    static const char *const phases[] = {"setup", "run", "drain", "stop"};
    uint32_t down = 0;
    uint64_t errs = 0;
    for (uint32_t i = 0; i < s->nc; i++)
        down += s->c[i].state != CS_UP;
    for (int e = 0; e < SE_COUNT; e++)
        errs += s->err[e];
    fprintf(stderr,
            "[%6.1fs] %-5s published %llu acked %llu delivered %llu kills %llu not up %u "
            "errors %llu\n",
            since_s(s, now), phases[s->phase], (unsigned long long)s->published,
            (unsigned long long)s->acked, (unsigned long long)s->delivered,
            (unsigned long long)s->kills, down, (unsigned long long)errs);
}

/* One poll() over every open socket; handles what it reports. */
static void poll_once(struct soak *s, int timeout_ms, uint64_t *now)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nc; i++) {
        struct client *c = &s->c[i];
        if (c->fd < 0)
            continue;
        /* A paused client reads nothing; a closed peer still shows up as
         * POLLHUP. */
        short ev = c->paused_until_ns ? 0 : POLLIN;
        if (c->state == CS_CONNECTING || c->out_off < c->out_len)
            ev |= POLLOUT;
        s->pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
        s->pfd_client[n++] = i;
    }
    int r = poll(s->pfd, n, timeout_ms);
    *now = bench_now_ns();
    if (r <= 0)
        return;
    for (uint32_t k = 0; k < n; k++) {
        struct client *c = &s->c[s->pfd_client[k]];
        short re = s->pfd[k].revents;
        if (!re || c->fd != s->pfd[k].fd)
            continue;
        if (c->state == CS_CONNECTING) {
            if (re & (POLLOUT | POLLERR | POLLHUP))
                on_connect_done(s, c, *now);
            continue;
        }
        if (re & (POLLIN | POLLERR | POLLHUP))
            client_read(s, c, *now);
        if (c->fd >= 0 && (re & POLLOUT))
            client_flush(s, c, *now);
    }
}

/* ---- setup and teardown ---- */

/* Member k's group: with two groups or more, group 0 has exactly one
 * member (a group whose only member goes away has nobody to hand over to);
 * the others are dealt round-robin to the rest. */
static int32_t group_of(const struct soak *s, uint32_t k)
{
    if (s->ngroups < 2)
        return 0;
    return k == 0 ? 0 : (int32_t)(1u + (k - 1u) % (s->ngroups - 1u));
}

/* Adds a subscription: plain (group -1) or to share group g. */
static int sub_add(struct soak *s, struct client *c, int32_t g)
{
    const struct bench_opts *o = s->o;
    char filter[512];
    struct sub *sb = &c->subs[c->nsubs];
    if (g < 0) {
        snprintf(filter, sizeof(filter), "%s/soak/%s/+", o->topic_prefix, o->client_prefix);
        sb->recv = c->index;
    } else {
        snprintf(filter, sizeof(filter), "$share/soak%d/%s/soak/%s/+", g, o->topic_prefix,
                 o->client_prefix);
        sb->recv = s->nplain + (uint32_t)g;
    }
    if (o->version == MQTT_V5)
        sb->subid = g < 0 ? 1u : 2u + (uint32_t)g;
    sb->filter = strdup(filter);
    if (!sb->filter)
        return -ENOMEM;
    c->nsubs++;
    return 0;
}

static int soak_init(struct soak *s, const struct bench_opts *o)
{
    memset(s, 0, sizeof(*s));
    s->o = o;
    s->rng = o->seed;
    s->npubs = o->publishers;
    s->nsubs = o->subscribers;
    s->ngroups = o->groups;
    s->nplain = o->groups ? (o->subscribers / 4 ? o->subscribers / 4 : 1) : o->subscribers;
    s->nc = s->npubs + s->nsubs;
    if (bench_resolve(o, &s->addr) != 0) {
        fprintf(stderr, "ringmq-bench: cannot resolve %s\n", o->host);
        return -EINVAL;
    }
    s->c = calloc(s->nc, sizeof(*s->c));
    s->pfd = calloc(s->nc, sizeof(*s->pfd));
    s->pfd_client = calloc(s->nc, sizeof(*s->pfd_client));
    s->payload = calloc(1, o->payload_len);
    uint8_t *qos = calloc(s->npubs, 1);
    if (!s->c || !s->pfd || !s->pfd_client || !s->payload || !qos)
        goto fail;
    char topic[512];
    for (uint32_t i = 0; i < s->nc; i++) {
        struct client *c = &s->c[i];
        c->fd = -1;
        c->is_pub = i < s->npubs;
        c->index = c->is_pub ? i : i - s->npubs;
        snprintf(c->id, sizeof(c->id), "%s-s%s%u", o->client_prefix, c->is_pub ? "p" : "s",
                 c->index);
        if (c->is_pub) {
            c->qos = o->qos ? o->qos : (uint8_t)(1u + c->index % 2u);
            qos[c->index] = c->qos;
            snprintf(topic, sizeof(topic), "%s/soak/%s/%u", o->topic_prefix, o->client_prefix,
                     c->index);
            c->topic = strdup(topic);
            c->fl_cap = o->inflight;
            c->fl = calloc(c->fl_cap, sizeof(*c->fl));
            if (!c->topic || !c->fl)
                goto fail;
            continue;
        }
        /* Subscribers 0..nplain-1 are plain, the rest members: each plain
         * subscriber is its own receiver, a group one receiver whichever
         * member gets the message. */
        if (c->index < s->nplain) {
            if (sub_add(s, c, -1) != 0)
                goto fail;
            /* 5.0: plain subscriber 0 is also a member of the last group,
             * a client holding a plain and a shared subscription. */
            if (c->index == 0 && s->ngroups && o->version == MQTT_V5 &&
                sub_add(s, c, (int32_t)s->ngroups - 1) != 0)
                goto fail;
        } else if (sub_add(s, c, group_of(s, c->index - s->nplain)) != 0) {
            goto fail;
        }
        c->ur = calloc(SOAK_UNREL_MAX, sizeof(*c->ur));
        if (!c->ur)
            goto fail;
    }
    if (ledger_init(&s->led, s->npubs, qos, s->nplain + s->ngroups, SOAK_MSGS_PER_PUB_MAX) != 0)
        goto fail;
    free(qos);
    return 0;
fail:
    free(qos);
    fprintf(stderr, "ringmq-bench: soak: out of memory\n");
    return -ENOMEM;
}

static void soak_fini(struct soak *s)
{
    for (uint32_t i = 0; s->c && i < s->nc; i++) {
        struct client *c = &s->c[i];
        if (c->fd >= 0)
            close(c->fd);
        free(c->in);
        free(c->out);
        free(c->topic);
        free(c->fl);
        for (uint32_t k = 0; k < c->nsubs; k++)
            free(c->subs[k].filter);
        free(c->ur);
    }
    free(s->c);
    free(s->pfd);
    free(s->pfd_client);
    free(s->payload);
    ledger_fini(&s->led);
}

/* DISCONNECT everyone who is up (5.0: with a session expiry of 0, so the
 * broker drops the sessions now), give the broker SOAK_STOP_NS to close,
 * then close whatever is left. */
static void soak_stop(struct soak *s)
{
    uint64_t now = bench_now_ns();
    for (uint32_t i = 0; i < s->nc; i++) {
        struct client *c = &s->c[i];
        if (c->fd < 0)
            continue;
        if (c->state != CS_UP) {
            client_close(c, false, now);
            continue;
        }
        struct mqtt_packet p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_DISCONNECT;
        p.u.disconnect.reason = MQTT_RC_NORMAL_DISCONNECTION;
        if (s->o->version == MQTT_V5) {
            p.u.disconnect.props.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
            p.u.disconnect.props.session_expiry_s = 0;
        }
        queue_packet(s, c, &p);
        if (c->fd >= 0)
            c->state = CS_BYE;
    }
    uint64_t end = now + SOAK_STOP_NS;
    while (now < end) {
        bool open = false;
        for (uint32_t i = 0; i < s->nc; i++) {
            struct client *c = &s->c[i];
            if (c->fd >= 0) {
                client_flush(s, c, now);
                open = open || c->fd >= 0;
            }
        }
        if (!open)
            break;
        poll_once(s, 10, &now);
    }
    for (uint32_t i = 0; i < s->nc; i++)
        client_close(&s->c[i], false, now);
}

/* ---- the run ---- */

static void step_setup(struct soak *s, uint64_t now)
{
    const struct bench_opts *o = s->o;
    /* Subscribers first: a message published before every subscription is
     * in place would not be owed to anyone. */
    if (!s->pubs_started && all_up(s, s->npubs, s->nc))
        s->pubs_started = true;
    if (s->pubs_started && all_up(s, 0, s->nc)) {
        s->phase = SP_RUN;
        s->run_ns = now;
        s->last_tick_ns = now;
        if (!o->quiet)
            fprintf(stderr, "ringmq-bench: soak: %u clients set up in %.2f s\n", s->nc,
                    since_s(s, now));
        if (o->kill_interval_s > 0)
            s->next_kill_ns = now + (uint64_t)(o->kill_interval_s * 1e9);
        return;
    }
    if (now - s->t0_ns > SOAK_SETUP_NS) {
        fprintf(stderr,
                "soak: setup failed: not every client connected and subscribed within "
                "%.0f s\n",
                (double)SOAK_SETUP_NS / 1e9);
        s->setup_failed = true;
        s->phase = SP_STOP;
    }
}

static void step_run(struct soak *s, uint64_t now)
{
    const struct bench_opts *o = s->o;
    if (now - s->run_ns >= (uint64_t)(o->duration_s * 1e9)) {
        s->phase = SP_DRAIN;
        s->drain_ns = now;
        s->last_publish_ns = now;
        for (uint32_t i = 0; i < s->nc; i++) {
            s->c[i].down_until_ns = now; /* everybody back, now */
            s->c[i].kill_by_ns = 0;
            s->c[i].paused_until_ns = 0;
        }
        return;
    }
    if (s->next_kill_ns && now >= s->next_kill_ns) {
        chaos_strike(s, now);
        /* Uniform in [0.5, 1.5] x the interval. */
        uint64_t mean = (uint64_t)(o->kill_interval_s * 1e9);
        s->next_kill_ns = now + mean / 2 + rng_below(s, mean + 1);
    }
    if (now - s->last_tick_ns >= NS_PER_MS) {
        pace(s, (double)(now - s->last_tick_ns) / 1e9);
        s->last_tick_ns = now;
    }
}

/* The drain ends complete (DRAIN_DONE held for SOAK_SETTLE_NS, so that a
 * late duplicate is seen too), idle (DRAIN_IDLE and no PUBLISH for
 * SOAK_QUIET_NS: what is missing is not coming), or at --drain. */
static void step_drain(struct soak *s, uint64_t now)
{
    if (now - s->drain_ns >= (uint64_t)(s->o->drain_s * 1e9)) {
        s->phase = SP_STOP;
        return;
    }
    if (now - s->last_drain_check_ns < SOAK_CHECK_NS)
        return;
    s->last_drain_check_ns = now;
    enum drain_state st = drain_state(s);
    if (st == DRAIN_DONE) {
        if (!s->settled_since_ns) {
            s->settled_since_ns = now;
        } else if (now - s->settled_since_ns >= SOAK_SETTLE_NS) {
            s->drain_complete = true;
            s->phase = SP_STOP;
        }
        return;
    }
    s->settled_since_ns = 0;
    if (st == DRAIN_IDLE && age(now, s->last_publish_ns) >= SOAK_QUIET_NS) {
        s->drain_idle = true;
        s->phase = SP_STOP;
    }
}

/* Every turn, whatever the phase: connect whoever is down and due
 * (everybody at the start, the publishers once the subscribers are in; the
 * killed after their time away, the failed after a backoff), deadlines,
 * the chaos's armed kills and pauses, writes, the progress line. */
static void step_clients(struct soak *s, uint64_t now)
{
    for (uint32_t i = 0; i < s->nc; i++) {
        struct client *c = &s->c[i];
        if (c->state == CS_DOWN && now >= c->down_until_ns && (!c->is_pub || s->pubs_started))
            client_connect(s, c, now);
    }
    if (now - s->last_check_ns >= SOAK_CHECK_NS) {
        s->last_check_ns = now;
        check_timers(s, now);
    }
    for (uint32_t i = 0; i < s->nc; i++) {
        struct client *c = &s->c[i];
        if (c->kill_by_ns && now >= c->kill_by_ns) {
            client_kill(s, c, now);
        } else if (c->paused_until_ns && now >= c->paused_until_ns) {
            c->paused_until_ns = 0;
            if (c->kill_after_pause)
                client_kill(s, c, now);
        }
    }
    for (uint32_t i = 0; i < s->nc; i++)
        if (s->c[i].fd >= 0 && s->c[i].out_off < s->c[i].out_len)
            client_flush(s, &s->c[i], now);
    if (!s->o->quiet && now >= s->next_progress_ns) {
        progress(s, now);
        s->next_progress_ns += NS_PER_S;
    }
}

int soak_run(const struct bench_opts *o, volatile sig_atomic_t *stop)
{
    struct soak *s = malloc(sizeof(*s));
    if (!s || soak_init(s, o) != 0) {
        if (s)
            soak_fini(s);
        free(s);
        return 1;
    }
    uint64_t now = bench_now_ns();
    s->t0_ns = s->last_tick_ns = s->last_check_ns = now;
    s->next_progress_ns = now + NS_PER_S;
    s->phase = SP_SETUP;
    while (s->phase != SP_STOP) {
        if (*stop) {
            s->interrupted = true;
            break;
        }
        if (s->phase == SP_SETUP)
            step_setup(s, now);
        else if (s->phase == SP_RUN)
            step_run(s, now);
        else
            step_drain(s, now);
        if (s->phase == SP_STOP)
            break;
        step_clients(s, now);
        poll_once(s, 1, &now);
    }
    s->stop_ns = bench_now_ns();
    for (uint32_t i = 0; i < s->nc; i++) {
        struct client *c = &s->c[i];
        c->end_state = c->state;
        s->end_not_up += c->state != CS_UP;
        s->end_flows_open += c->is_pub ? c->fl_used : c->ur_n;
    }
    s->end_missing = ledger_missing(&s->led);
    if (!s->drain_ns)
        s->drain_ns = s->stop_ns;
    if (!s->run_ns)
        s->run_ns = s->drain_ns;
    soak_stop(s);
    int rc = soak_report(s);
    soak_fini(s);
    free(s);
    return rc;
}
