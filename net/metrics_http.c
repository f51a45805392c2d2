/*
 * The metrics endpoint's thread: one poll loop over the listening socket,
 * an eventfd that says stop, and at most METRICS_HTTP_CONNS connections
 * (metrics_http.h says what it serves and how it is bounded). Requests are
 * parsed by core/http.c from each connection's buffered head.
 */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/mem.h>

#include "cred_cache.h"
#include "http.h"
#include "log.h"
#include "shard.h"

/* A shard whose turn counter has not moved for this long is not ready: it
 * turns at least every 100 ms (its tick). */
#define READY_STALL_MS 2000u
/* The loop wakes at least this often to sample the shards' turns. */
#define SAMPLE_MS 500u
/* Connections taken from the backlog per wake. */
#define ACCEPTS_PER_WAKE 64u

struct mconn {
    int fd; /* -1: the slot is free */
    bool writing;
    bool close_after;  /* close once the answer is out */
    bool served;       /* answered a request: idle now means kept alive */
    uint64_t since_ms; /* accepted, first byte of a head, answer begun, or idle since */
    size_t in_len;
    uint8_t in[HTTP_HEAD_MAX_DEFAULT];
    char *out;
    size_t out_len, out_off;
    char peer[64];
};

struct metrics_http {
    struct broker *b;
    int lfd, wake_fd;
    pthread_t thread;
    struct cred_cache *creds;
    uint64_t turns[SHARDS_MAX];
    uint64_t moved_ms[SHARDS_MAX];
    /* Refused credentials are logged at most once a second (a guesser
     * with a fast hash could otherwise write thousands of lines). */
    uint64_t refusal_logged_ms;
    uint32_t refusals_unlogged;
    struct mconn c[METRICS_HTTP_CONNS];
};

/* ---- readiness ---------------------------------------------------------- */

static void sample_turns(struct metrics_http *m, uint64_t now)
{
    for (unsigned i = 0; i < m->b->shard_count; i++) {
        uint64_t t = atomic_load_explicit(&m->b->shards[i]->turns, memory_order_relaxed);
        if (t != m->turns[i]) {
            m->turns[i] = t;
            m->moved_ms[i] = now;
        }
    }
}

/* Ready, or false with the first reason in why. */
static bool ready(struct metrics_http *m, uint64_t now, char *why, size_t cap)
{
    struct broker *b = m->b;
    if (atomic_load_explicit(&b->stopping, memory_order_relaxed)) {
        snprintf(why, cap, "stopping");
        return false;
    }
    for (unsigned i = 0; i < b->shard_count; i++) {
        if (now - m->moved_ms[i] >= READY_STALL_MS) {
            snprintf(why, cap, "shard %u: its loop has not turned for %llu ms", i,
                     (unsigned long long)(now - m->moved_ms[i]));
            return false;
        }
        if (atomic_load_explicit(&b->shards[i]->overloaded, memory_order_relaxed)) {
            snprintf(why, cap, "shard %u: overloaded (overload_lag_ms), new connections refused",
                     i);
            return false;
        }
    }
    if (atomic_load_explicit(&b->eng.mem_over, memory_order_relaxed)) {
        snprintf(why, cap, "memory_limit reached: new sessions refused");
        return false;
    }
    snprintf(why, cap, "ready");
    return true;
}

/* ---- answers ------------------------------------------------------------ */

static const char *reason_of(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* Queues an answer: the head, then body unless head_only. body is copied
 * (or, with own, taken). keep: the connection stays open for another
 * request; http10_keep: say so to an HTTP/1.0 client. */
static void answer(struct mconn *c, int code, const char *ctype, char *body, size_t body_len,
                   bool own, const char *extra, bool head_only, bool keep, bool http10_keep)
{
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n%s%s\r\n",
                      code, reason_of(code), ctype, body_len, extra ? extra : "",
                      !keep         ? "Connection: close\r\n"
                      : http10_keep ? "Connection: keep-alive\r\n"
                                    : "");
    size_t blen = head_only ? 0 : body_len;
    char *out = malloc((size_t)hl + blen);
    if (out) {
        memcpy(out, head, (size_t)hl);
        if (blen)
            memcpy(out + hl, body, blen);
    }
    if (own)
        free(body);
    free(c->out);
    c->out = out;
    c->out_len = out ? (size_t)hl + blen : 0;
    c->out_off = 0;
    c->writing = true;
    c->close_after = !keep || !out;
}

static void answer_text(struct mconn *c, int code, const char *text, const char *extra,
                        bool head_only, bool keep, bool http10_keep)
{
    answer(c, code, "text/plain; charset=utf-8", (char *)text, strlen(text), false, extra,
           head_only, keep, http10_keep);
}

/* May this request read /metrics? With no metrics_password_file, yes. The
 * snapshot is held (b->metrics_in_snapshot) for the length of the check. */
static bool authorised(struct metrics_http *m, const struct http_request *r, uint64_t now)
{
    struct broker *b = m->b;
    atomic_store_explicit(&b->metrics_in_snapshot, true, memory_order_seq_cst);
    const struct auth_snapshot *s = atomic_load_explicit(&b->auth, memory_order_seq_cst);
    const struct passwd_db *db = s->metrics_passwd;
    bool ok = db == NULL;
    if (db && r->has_auth) {
        uint8_t mac[CRED_MAC_LEN];
        cred_cache_mac(b->cred_key, LISTENERS_MAX, (const uint8_t *)r->user, r->user_len,
                       (const uint8_t *)r->password, r->password_len, mac);
        if (cred_cache_hit(m->creds, mac, s->generation, now)) {
            ok = true;
        } else {
            const struct passwd_entry *e = passwd_find(db, (const uint8_t *)r->user, r->user_len);
            ok = e ? passwd_check(e, (const uint8_t *)r->password, r->password_len)
                   : passwd_check_decoy(db, (const uint8_t *)r->password, r->password_len);
            if (ok)
                cred_cache_put(m->creds, mac, s->generation, now,
                               (uint64_t)b->cfg.auth_cache_s * 1000u);
        }
        OPENSSL_cleanse(mac, sizeof(mac));
    }
    atomic_store_explicit(&b->metrics_in_snapshot, false, memory_order_seq_cst);
    return ok;
}

static void serve(struct metrics_http *m, struct mconn *c, const struct http_request *r,
                  uint64_t now)
{
    bool head_only = r->method == HTTP_METHOD_HEAD;
    bool keep = r->keep_alive;
    bool k10 = keep && r->minor == 0;
    if (r->method == HTTP_METHOD_OTHER) {
        answer_text(c, 405, "only GET and HEAD are served\n", "Allow: GET, HEAD\r\n", false, keep,
                    k10);
        return;
    }
    char why[160];
    if (strcmp(r->path, "/healthz") == 0) {
        answer_text(c, 200, "ok\n", NULL, head_only, keep, k10);
    } else if (strcmp(r->path, "/readyz") == 0) {
        bool ok = ready(m, now, why, sizeof(why) - 1);
        strcat(why, "\n");
        answer_text(c, ok ? 200 : 503, why, NULL, head_only, keep, k10);
    } else if (strcmp(r->path, "/metrics") == 0) {
        if (!authorised(m, r, now)) {
            if (now - m->refusal_logged_ms >= 1000) {
                char user[96] = "";
                if (r->has_auth)
                    snprintf(user, sizeof(user), " (user '%.64s')", r->user);
                for (char *p = user; *p; p++)
                    if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                        *p = '?'; /* untrusted bytes: no line breaks in the log */
                LOG(LOG_LEVEL_NOTICE, "metrics: %s from %s%s: 401%s%.0u%s",
                    r->has_auth   ? "wrong credentials"
                    : r->auth_bad ? "malformed credentials"
                                  : "no credentials",
                    c->peer, user, m->refusals_unlogged ? " (and " : "", m->refusals_unlogged,
                    m->refusals_unlogged ? " refusals not logged before it)" : "");
                m->refusal_logged_ms = now;
                m->refusals_unlogged = 0;
            } else {
                m->refusals_unlogged++;
            }
            answer_text(c, 401, "credentials required\n",
                        "WWW-Authenticate: Basic realm=\"ringmq metrics\", charset=\"UTF-8\"\r\n",
                        head_only, keep, k10);
            return;
        }
        size_t len = 0;
        char *text = metrics_text(m->b, ready(m, now, why, sizeof(why)) ? 1 : 0, &len);
        if (!text) {
            answer_text(c, 500, "out of memory\n", NULL, head_only, false, false);
            return;
        }
        answer(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, true, NULL, head_only,
               keep, k10);
    } else if (strcmp(r->path, "/") == 0) {
        answer_text(c, 200, "ringmq: /metrics (Prometheus), /healthz, /readyz\n", NULL, head_only,
                    keep, k10);
    } else {
        answer_text(c, 404, "not found: /metrics, /healthz, /readyz\n", NULL, head_only, keep, k10);
    }
}

/* ---- connections -------------------------------------------------------- */

static void conn_drop(struct mconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = c->in_len = 0;
    c->fd = -1;
    c->writing = c->close_after = c->served = false;
}

/* Parses what the connection has buffered: an answer begins, or more is
 * needed. */
static void conn_parse(struct metrics_http *m, struct mconn *c, uint64_t now)
{
    struct http_request r;
    enum http_status st = http_parse(c->in, c->in_len, sizeof(c->in), &r);
    if (st == HTTP_NEED_MORE)
        return;
    if (st == HTTP_BAD) {
        LOG(LOG_LEVEL_INFO, "metrics: a bad request from %s: %u", c->peer, (unsigned)r.error);
        c->in_len = 0;
        answer_text(c, r.error ? r.error : 400, "bad request\n", NULL, false, false, false);
        c->since_ms = now;
        return;
    }
    memmove(c->in, c->in + r.consumed, c->in_len - r.consumed);
    c->in_len -= r.consumed;
    serve(m, c, &r, now);
    c->since_ms = now;
}

static void conn_read(struct metrics_http *m, struct mconn *c, uint64_t now)
{
    for (;;) {
        if (c->in_len == sizeof(c->in)) {
            conn_parse(m, c, now); /* a full buffer is a whole head or a 431 */
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            conn_drop(c);
            return;
        }
        if (c->in_len == 0)
            c->since_ms = now; /* a head begins: its time runs from here */
        c->in_len += (size_t)n;
    }
    conn_parse(m, c, now);
}

static void conn_write(struct metrics_http *m, struct mconn *c, uint64_t now)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            conn_drop(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    if (c->close_after) {
        /* Half-close, so the client reads the whole answer before the
         * reset that unread input would cause. */
        shutdown(c->fd, SHUT_WR);
        conn_drop(c);
        return;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    c->writing = false;
    c->served = true;
    c->since_ms = now;
    if (c->in_len)
        conn_parse(m, c, now); /* a pipelined request */
}

static uint64_t conn_deadline(const struct mconn *c)
{
    if (c->writing)
        return c->since_ms + METRICS_HTTP_WRITE_MS;
    if (c->in_len == 0 && c->served)
        return c->since_ms + METRICS_HTTP_IDLE_MS;
    return c->since_ms + METRICS_HTTP_HEAD_MS;
}

static void accept_new(struct metrics_http *m, uint64_t now)
{
    for (unsigned k = 0; k < ACCEPTS_PER_WAKE; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(m->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error: the next wake retries */
        struct mconn *slot = NULL, *oldest = NULL;
        for (unsigned i = 0; i < METRICS_HTTP_CONNS && !slot; i++) {
            struct mconn *c = &m->c[i];
            if (c->fd < 0)
                slot = c;
            else if (!c->writing && (!oldest || c->since_ms < oldest->since_ms))
                oldest = c;
        }
        if (!slot && oldest) {
            LOG(LOG_LEVEL_INFO, "metrics: %u connections: closing the one from %s idle longest",
                METRICS_HTTP_CONNS, oldest->peer);
            conn_drop(oldest);
            slot = oldest;
        }
        if (!slot) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            ssize_t ignored = send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)ignored;
            close(fd);
            continue;
        }
        slot->fd = fd;
        slot->since_ms = now;
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
        snprintf(slot->peer, sizeof(slot->peer), "%s:%u", host, port);
    }
}

static void *metrics_main(void *arg)
{
    struct metrics_http *m = arg;
    log_set_thread(LOG_THREAD_METRICS);
    struct pollfd pf[2 + METRICS_HTTP_CONNS];
    struct mconn *who[2 + METRICS_HTTP_CONNS];
    uint64_t now = broker_now_ms();
    for (unsigned i = 0; i < m->b->shard_count; i++)
        m->moved_ms[i] = now;
    for (;;) {
        now = broker_now_ms();
        sample_turns(m, now);
        uint64_t wake = now + SAMPLE_MS;
        unsigned n = 2;
        pf[0] = (struct pollfd){.fd = m->wake_fd, .events = POLLIN};
        pf[1] = (struct pollfd){.fd = m->lfd, .events = POLLIN};
        for (unsigned i = 0; i < METRICS_HTTP_CONNS; i++) {
            struct mconn *c = &m->c[i];
            if (c->fd < 0)
                continue;
            uint64_t due = conn_deadline(c);
            if (due <= now) {
                LOG(LOG_LEVEL_INFO, "metrics: closing %s: %s", c->peer,
                    c->writing ? "it does not read its answer" : "no whole request in time");
                conn_drop(c);
                continue;
            }
            if (due < wake)
                wake = due;
            pf[n] = (struct pollfd){.fd = c->fd, .events = c->writing ? POLLOUT : POLLIN};
            who[n++] = c;
        }
        int got = poll(pf, n, (int)(wake - now));
        if (got < 0 && errno != EINTR)
            break;
        if (got <= 0)
            continue;
        if (pf[0].revents)
            break;
        now = broker_now_ms();
        for (unsigned i = 2; i < n; i++) {
            struct mconn *c = who[i];
            if (!pf[i].revents || c->fd != pf[i].fd)
                continue;
            if (c->writing)
                conn_write(m, c, now);
            else
                conn_read(m, c, now);
            if (c->fd >= 0 && c->writing)
                conn_write(m, c, now); /* most answers go out at once */
        }
        if (pf[1].revents & POLLIN)
            accept_new(m, now);
    }
    return NULL;
}

/* ---- start and stop ----------------------------------------------------- */

static int listen_on(const struct config *cfg, uint16_t *port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->metrics_address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(cfg->metrics_port);
        sl = sizeof(*a4);
    } else if (inet_pton(AF_INET6, cfg->metrics_address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(cfg->metrics_port);
        sl = sizeof(*a6);
    } else {
        snprintf(err, errlen, "%s:%d: metrics_listener address `%s' is not numeric", cfg->source,
                 cfg->metrics_line, cfg->metrics_address);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "%s:%d: metrics_listener %s port %u: %s", cfg->source,
                 cfg->metrics_line, cfg->metrics_address, (unsigned)cfg->metrics_port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    *port = cfg->metrics_port;
    if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
        *port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                               : ((struct sockaddr_in6 *)&got)->sin6_port);
    return fd;
}

int metrics_http_start(struct broker *b, char *err, size_t errlen)
{
    if (!b->cfg.metrics_line)
        return 0;
    struct metrics_http *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "metrics_listener: out of memory");
        return -1;
    }
    m->b = b;
    m->wake_fd = -1;
    for (unsigned i = 0; i < METRICS_HTTP_CONNS; i++)
        m->c[i].fd = -1;
    uint16_t port = 0;
    m->lfd = listen_on(&b->cfg, &port, err, errlen);
    if (m->lfd < 0) {
        free(m);
        return -1;
    }
    m->creds = cred_cache_create(); /* NULL: every scrape hashes */
    m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->wake_fd < 0 || pthread_create(&m->thread, NULL, metrics_main, m) != 0) {
        snprintf(err, errlen, "metrics_listener: cannot start its thread");
        if (m->wake_fd >= 0)
            close(m->wake_fd);
        close(m->lfd);
        cred_cache_destroy(m->creds);
        free(m);
        return -1;
    }
    b->metrics = m;
    const char *a = b->cfg.metrics_address;
    bool v6 = strchr(a, ':') != NULL;
    LOG(LOG_LEVEL_NOTICE, "metrics on http://%s%s%s:%u/metrics%s", v6 ? "[" : "", a, v6 ? "]" : "",
        (unsigned)port, b->cfg.metrics_password_file[0] ? " (basic auth)" : "");
    return 0;
}

void metrics_http_stop(struct broker *b)
{
    struct metrics_http *m = b->metrics;
    if (!m)
        return;
    uint64_t one = 1;
    ssize_t w = write(m->wake_fd, &one, sizeof(one));
    (void)w;
    pthread_join(m->thread, NULL);
    for (unsigned i = 0; i < METRICS_HTTP_CONNS; i++)
        conn_drop(&m->c[i]);
    close(m->lfd);
    close(m->wake_fd);
    cred_cache_destroy(m->creds);
    free(m);
    b->metrics = NULL;
}
