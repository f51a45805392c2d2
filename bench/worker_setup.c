/*
 * ringmq-bench worker setup: builds a worker's connections (publishers,
 * subscribers, connect-storm and handshake-storm slots, the probe pair),
 * their buffers, topics and PUBLISH templates; hands the results to main
 * after the join; frees it all. Runs on the main thread, before the worker
 * thread starts or after it has been joined.
 */
#include "worker_internal.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    [BERR_TLS] = "tls_failed",
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

int bench_resolve(const struct bench_opts *o, struct sockaddr_in *out)
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

/* How many of each kind worker `index` runs, and how its ids are spread:
 * worker i of T has the ids i, i + T, i + 2T, ... of each kind. */
struct counts {
    uint32_t npub, nsub, nconn;
    uint32_t base, stride;
};

static void worker_counts(const struct bench_opts *o, uint32_t index, struct counts *n)
{
    uint32_t T = o->threads;
    memset(n, 0, sizeof(*n));
    n->base = index;
    n->stride = T;
    if (o->scenario == SCENARIO_CONNECT) {
        n->nconn = o->clients / T + (index < o->clients % T ? 1 : 0);
    } else if (o->scenario == SCENARIO_HANDSHAKE && index < T) {
        n->nconn = o->conns / T + (index < o->conns % T ? 1 : 0);
    } else if (o->scenario == SCENARIO_HANDSHAKE) {
        /* The probe's own thread: publisher 0 and subscriber 0. */
        n->npub = n->nsub = 1;
        n->base = 0;
        n->stride = 1;
    } else if (o->scenario == SCENARIO_ABUSE && index >= T) {
        /* The abuser's own thread: the flood is publisher number
         * --publishers (ctl->pub_sent has a slot for it), the storm --conns
         * slots. */
        if (o->abuser == ABUSER_FLOOD)
            n->npub = 1;
        else
            n->nconn = o->conns;
        n->base = o->abuser == ABUSER_FLOOD ? o->publishers : 0;
        n->stride = 1;
    } else {
        n->npub = o->publishers / T + (index < o->publishers % T ? 1 : 0);
        n->nsub = o->subscribers / T + (index < o->subscribers % T ? 1 : 0);
    }
}

static int setup_sub(struct worker *w, struct conn *c, uint32_t id, uint32_t in_cap)
{
    const struct bench_opts *o = w->o;
    c->role = ROLE_SUB;
    c->id = id;
    c->filter = filter_for_sub(o, c->id);
    if (o->scenario == SCENARIO_PAIRS || o->scenario == SCENARIO_LATENCY ||
        o->scenario == SCENARIO_HANDSHAKE || o->scenario == SCENARIO_ABUSE) {
        c->first_pub = c->id;
        c->npubs = 1;
    } else {
        c->first_pub = 0;
        c->npubs = o->publishers;
    }
    c->streams = malloc((size_t)c->npubs * sizeof(*c->streams));
    if (!c->filter || !c->streams || conn_alloc_bufs(c, in_cap, OUT_BUF_SMALL * 4) != 0)
        return -ENOMEM;
    for (uint32_t s = 0; s < c->npubs; s++)
        seq_init(&c->streams[s]);
    return 0;
}

static int setup_pub(struct worker *w, struct conn *c, uint32_t id, uint32_t nsub)
{
    const struct bench_opts *o = w->o;
    c->role = ROLE_PUB;
    c->id = id;
    c->next_pkid = 1;
    c->topic = w->abuser ? strdup(o->abuse_topic) : topic_for_pub(o, c->id);
    c->pkid_used = o->qos ? calloc(PKID_WORDS, sizeof(uint64_t)) : NULL;
    if (!c->topic || (o->qos && !c->pkid_used) ||
        conn_alloc_bufs(c, IN_BUF_SMALL, o->batch_bytes) != 0 || pub_build_template(c) != 0)
        return -ENOMEM;
    if (w->lat_mode) {
        /* Pair i's subscriber lives in this thread too (same i % T). */
        for (uint32_t s = 0; s < nsub; s++)
            if (w->conns[s].id == c->id)
                w->conns[s].lat_pub = c;
    }
    return 0;
}

/* The abuser's worker runs on its own copy of the options: QoS 0 and
 * unpaced whatever the well-behaved clients do, no --clients budget for its
 * storm, and its sockets bound to --abuse-source. 0 or -EINVAL. */
static int abuser_opts(struct worker *w)
{
    w->own_opts = *w->o;
    w->own_opts.qos = 0;
    w->own_opts.rate = 0;
    w->own_opts.clients = 0;
    w->o = &w->own_opts;
    w->abuser = true;
    if (!w->o->abuse_source)
        return 0;
    memset(&w->bind_addr, 0, sizeof(w->bind_addr));
    w->bind_addr.sin_family = AF_INET;
    if (inet_pton(AF_INET, w->o->abuse_source, &w->bind_addr.sin_addr) != 1)
        return -EINVAL; /* opts.c has checked it */
    w->bind_on = true;
    return 0;
}

/* Roles, pacing and the storm's budget; 0 or -ENOMEM. */
static int worker_shape(struct worker *w, const struct counts *n)
{
    const struct bench_opts *o = w->o;
    bool probe = o->scenario == SCENARIO_HANDSHAKE && w->index >= o->threads;
    w->storm =
        (o->scenario == SCENARIO_HANDSHAKE && !probe) || (w->abuser && o->abuser == ABUSER_CONNECT);
    w->lat_mode = o->scenario == SCENARIO_LATENCY || probe;
    w->pub_rate = probe ? o->probe_rate : o->rate;
    w->connect_done = probe; /* main waits for the storm workers only */
    w->storm_left = UINT64_MAX;
    if (w->storm && o->clients) {
        uint32_t T = o->threads;
        w->storm_left = o->clients / T + (w->index < o->clients % T ? 1 : 0);
    }
    w->nconns = n->npub + n->nsub + n->nconn;
    w->npubs_local = n->npub;
    w->conns = calloc(w->nconns ? w->nconns : 1, sizeof(*w->conns));
    w->dirty = calloc(w->nconns ? w->nconns : 1, sizeof(*w->dirty));
    w->hold_q = calloc(n->nconn ? n->nconn : 1, sizeof(*w->hold_q));
    return w->conns && w->dirty && w->hold_q ? 0 : -ENOMEM;
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
    if (bench_resolve(o, &w->addr) != 0) {
        fprintf(stderr, "ringmq-bench: cannot resolve %s\n", o->host);
        goto fail;
    }
    if (o->scenario == SCENARIO_ABUSE && index >= o->threads && abuser_opts(w) != 0)
        goto fail;
    if (o->scenario == SCENARIO_HANDSHAKE && index >= o->threads && o->probe_port)
        w->addr.sin_port = htons(o->probe_port);
    struct counts n;
    worker_counts(o, index, &n);
    if (worker_shape(w, &n) != 0)
        goto fail;

    uint32_t sub_in = n.nsub > 64 ? IN_BUF_SUB_MANY : IN_BUF_SUB;
    /* Subscribers first in the array: they are set up before anyone
     * publishes anyway, and latency pairs look up their publisher below. */
    for (uint32_t k = 0; k < w->nconns; k++) {
        struct conn *c = &w->conns[k];
        c->w = w;
        c->fd = -1;
        int r;
        if (k < n.nsub) {
            r = setup_sub(w, c, n.base + k * n.stride, sub_in);
        } else if (k < n.nsub + n.npub) {
            r = setup_pub(w, c, n.base + (k - n.nsub) * n.stride, n.nsub);
        } else {
            c->role = ROLE_CONN;
            c->id = n.base + (k - n.nsub - n.npub) * n.stride;
            c->state = CS_IDLE;
            r = conn_alloc_bufs(c, 256, 256);
        }
        if (r == 0 && ctl->tls) {
            c->tls = btls_create(ctl->tls, c->role == ROLE_SUB ? TLS_RX_SUB : TLS_RX_SMALL);
            r = c->tls ? 0 : -ENOMEM;
        }
        if (r != 0)
            goto fail;
    }
    return w;
fail:
    fprintf(stderr, "ringmq-bench: worker %u: setup failed (out of memory?)\n", index);
    worker_destroy(w);
    return NULL;
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
        btls_destroy(c->tls);
    }
    free(w->conns);
    free(w->dirty);
    free(w->hold_q);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
