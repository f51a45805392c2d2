/*
 * ringmq-bench client TLS (tls.h).
 *
 * Each connection's SSL sits on one custom BIO for both directions. Reading
 * from it takes bytes from the connection's receive buffer, where the kernel
 * put them; writing to it appends to the connection's output buffer, which
 * the worker sends as it is. A memory BIO pair would copy every byte once
 * more each way.
 *
 * Policy: TLS 1.2 or 1.3 (--tls-max 1.2: only 1.2), BoringSSL's default
 * suites; ALPN
 * "mqtt"; with --cafile the broker's chain is verified and must name --host
 * (an IP SAN for a numeric host, else a DNS name, also sent as SNI); without
 * it nothing is verified. --cert/--key give a client certificate (mTLS).
 * With --resume the context keeps the most recent session a NewSessionTicket
 * brought (one slot, under a lock: tickets are rare next to handshakes) and
 * every new connection offers it.
 *
 * Threads: see tls.h. Error reasons are printed once per run, from whichever
 * worker meets one first.
 */
#include "tls.h"
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define ERR_TEXT_MAX 256u
#define DESCRIBE_MAX 128u

static const uint8_t ALPN_MQTT[] = {4, 'm', 'q', 't', 't'};

struct btls_ctx {
    SSL_CTX *ssl;
    BIO_METHOD *bio_method;
    const struct bench_opts *o;
    bool host_is_ip;
    pthread_mutex_t lock; /* guards last */
    SSL_SESSION *last;    /* --resume: offered by every new connection */
    _Atomic uint64_t tickets;
    atomic_flag said;      /* a failure was printed */
    _Atomic int described; /* 0 none, 1 being written, 2 written */
    char describe[DESCRIBE_MAX];
};

struct btls {
    struct btls_ctx *ctx;
    SSL *ssl;
    struct obuf out;
    uint8_t *rx;
    uint32_t rx_len, rx_off, rx_cap;
    bool overflow; /* the BIO could not append to out */
};

/* ---- the BIO ---- */

static int bio_write(BIO *b, const char *in, int len)
{
    struct btls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (!obuf_reserve(&t->out, (uint32_t)len)) {
        t->overflow = true;
        return -1;
    }
    memcpy(t->out.p + t->out.len, in, (size_t)len);
    t->out.len += (uint32_t)len;
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    struct btls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    uint32_t avail = t->rx_len - t->rx_off;
    if (avail == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    uint32_t n = len > 0 && (uint32_t)len < avail ? (uint32_t)len : avail;
    memcpy(out, t->rx + t->rx_off, n);
    t->rx_off += n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* SSL flushes after each flight */
}

/* ---- the context ---- */

static void err_text(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
}

/* fopen first: "No such file or directory" says more than a PEM error. */
static int readable(const char *opt, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ringmq-bench: %s %s: %s\n", opt, path, strerror(errno));
        return -errno;
    }
    fclose(f);
    return 0;
}

static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct btls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    atomic_fetch_add_explicit(&ctx->tickets, 1, memory_order_relaxed);
    if (!ctx->o->tls_resume)
        return 0; /* not kept: BoringSSL frees it */
    pthread_mutex_lock(&ctx->lock);
    SSL_SESSION *old = ctx->last;
    ctx->last = sess;
    pthread_mutex_unlock(&ctx->lock);
    SSL_SESSION_free(old);
    return 1; /* the reference is ours now */
}

static int load_files(struct btls_ctx *ctx, const struct bench_opts *o)
{
    char why[ERR_TEXT_MAX];
    if (o->cafile) {
        if (readable("--cafile", o->cafile) != 0)
            return -EINVAL;
        if (!SSL_CTX_load_verify_locations(ctx->ssl, o->cafile, NULL)) {
            err_text(why, sizeof(why));
            fprintf(stderr, "ringmq-bench: --cafile %s: no CA certificate loaded (%s)\n", o->cafile,
                    why);
            return -EINVAL;
        }
        SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_NONE, NULL);
    }
    if (!o->certfile)
        return 0;
    if (readable("--cert", o->certfile) != 0 || readable("--key", o->keyfile) != 0)
        return -EINVAL;
    if (!SSL_CTX_use_certificate_chain_file(ctx->ssl, o->certfile)) {
        err_text(why, sizeof(why));
        fprintf(stderr, "ringmq-bench: --cert %s: not a PEM certificate chain (%s)\n", o->certfile,
                why);
        return -EINVAL;
    }
    if (!SSL_CTX_use_PrivateKey_file(ctx->ssl, o->keyfile, SSL_FILETYPE_PEM) ||
        !SSL_CTX_check_private_key(ctx->ssl)) {
        err_text(why, sizeof(why));
        fprintf(stderr, "ringmq-bench: --key %s: not the private key of --cert %s (%s)\n",
                o->keyfile, o->certfile, why);
        return -EINVAL;
    }
    return 0;
}

struct btls_ctx *btls_ctx_create(const struct bench_opts *o)
{
    struct btls_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->o = o;
    pthread_mutex_init(&ctx->lock, NULL);
    atomic_flag_clear(&ctx->said);
    struct in_addr a4;
    struct in6_addr a6;
    ctx->host_is_ip =
        inet_pton(AF_INET, o->host, &a4) == 1 || inet_pton(AF_INET6, o->host, &a6) == 1;
    ctx->ssl = SSL_CTX_new(TLS_method());
    ctx->bio_method = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "ringmq-bench");
    if (!ctx->ssl || !ctx->bio_method || !BIO_meth_set_write(ctx->bio_method, bio_write) ||
        !BIO_meth_set_read(ctx->bio_method, bio_read) ||
        !BIO_meth_set_ctrl(ctx->bio_method, bio_ctrl)) {
        fprintf(stderr, "ringmq-bench: TLS: out of memory\n");
        goto fail;
    }
    SSL_CTX_set_app_data(ctx->ssl, ctx);
    if (!SSL_CTX_set_min_proto_version(ctx->ssl, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx->ssl, o->tls_max) ||
        SSL_CTX_set_alpn_protos(ctx->ssl, ALPN_MQTT, sizeof(ALPN_MQTT)) != 0) { /* 0 is success */
        fprintf(stderr, "ringmq-bench: TLS: cannot set versions or ALPN\n");
        goto fail;
    }
    /* NO_INTERNAL: the only cache is ctx->last; new_session sees every
     * ticket, also without --resume, so tickets can be counted. */
    SSL_CTX_set_session_cache_mode(ctx->ssl, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx->ssl, new_session);
    if (load_files(ctx, o) != 0)
        goto fail;
    return ctx;
fail:
    btls_ctx_destroy(ctx);
    return NULL;
}

void btls_ctx_destroy(struct btls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_SESSION_free(ctx->last);
    SSL_CTX_free(ctx->ssl);
    BIO_meth_free(ctx->bio_method);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

uint64_t btls_ctx_tickets(const struct btls_ctx *ctx)
{
    return ctx ? atomic_load_explicit(&ctx->tickets, memory_order_relaxed) : 0;
}

const char *btls_ctx_describe(const struct btls_ctx *ctx)
{
    if (!ctx || atomic_load_explicit(&ctx->described, memory_order_acquire) != 2)
        return "";
    return ctx->describe;
}

/* ---- connections ---- */

struct btls *btls_create(struct btls_ctx *ctx, uint32_t rx_cap)
{
    struct btls *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ctx = ctx;
    t->rx_cap = rx_cap;
    t->rx = malloc(rx_cap);
    if (!t->rx) {
        free(t);
        return NULL;
    }
    return t;
}

void btls_destroy(struct btls *t)
{
    if (!t)
        return;
    btls_end(t);
    free(t->rx);
    free(t->out.p);
    free(t);
}

static int set_peer_name(struct btls *t)
{
    const struct bench_opts *o = t->ctx->o;
    if (t->ctx->host_is_ip) {
        if (o->cafile && !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), o->host))
            return -ENOMEM;
        return 0;
    }
    if (!SSL_set_tlsext_host_name(t->ssl, o->host))
        return -ENOMEM;
    if (o->cafile && !X509_VERIFY_PARAM_set1_host(SSL_get0_param(t->ssl), o->host, strlen(o->host)))
        return -ENOMEM;
    return 0;
}

int btls_start(struct btls *t)
{
    btls_end(t);
    t->ssl = SSL_new(t->ctx->ssl);
    BIO *bio = BIO_new(t->ctx->bio_method);
    if (!t->ssl || !bio) {
        BIO_free(bio);
        goto fail;
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio); /* one reference for both directions */
    SSL_set_connect_state(t->ssl);
    if (set_peer_name(t) != 0)
        goto fail;
    if (t->ctx->o->tls_resume) {
        pthread_mutex_lock(&t->ctx->lock);
        int ok = !t->ctx->last || SSL_set_session(t->ssl, t->ctx->last);
        pthread_mutex_unlock(&t->ctx->lock);
        if (!ok)
            goto fail;
    }
    return btls_handshake(t) < 0 ? -EPROTO : 0; /* writes the ClientHello */
fail:
    if (!atomic_flag_test_and_set(&t->ctx->said)) {
        char why[ERR_TEXT_MAX];
        err_text(why, sizeof(why));
        fprintf(stderr, "ringmq-bench: TLS: cannot set up a connection to %s: %s\n",
                t->ctx->o->host, why);
    }
    ERR_clear_error();
    btls_end(t);
    return -ENOMEM;
}

void btls_end(struct btls *t)
{
    SSL_free(t->ssl);
    t->ssl = NULL;
    t->out.len = 0;
    t->out.msgs = 0;
    t->rx_len = t->rx_off = 0;
    t->overflow = false;
}

uint8_t *btls_rx_space(struct btls *t, uint32_t *len)
{
    if (t->rx_off == t->rx_len) {
        t->rx_off = t->rx_len = 0;
    } else if (t->rx_off > 0) {
        memmove(t->rx, t->rx + t->rx_off, t->rx_len - t->rx_off);
        t->rx_len -= t->rx_off;
        t->rx_off = 0;
    }
    *len = t->rx_cap - t->rx_len;
    return t->rx + t->rx_len;
}

void btls_rx_added(struct btls *t, uint32_t n)
{
    t->rx_len += n;
}

static void describe_once(struct btls *t)
{
    int expect = 0;
    struct btls_ctx *ctx = t->ctx;
    if (!atomic_compare_exchange_strong(&ctx->described, &expect, 1))
        return;
    const uint8_t *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    snprintf(ctx->describe, sizeof(ctx->describe), "%s %s, ALPN %.*s", SSL_get_version(t->ssl),
             c ? SSL_CIPHER_standard_name(c) : "?", alpn_len ? (int)alpn_len : 4,
             alpn_len ? (const char *)alpn : "none");
    atomic_store_explicit(&ctx->described, 2, memory_order_release);
}

/* Prints why a TLS call failed, once per run; always empties the error
 * queue (it is per thread and would blame the next failure). */
static void say_failure(struct btls *t, const char *when)
{
    char why[ERR_TEXT_MAX];
    err_text(why, sizeof(why));
    const struct bench_opts *o = t->ctx->o;
    if (atomic_flag_test_and_set(&t->ctx->said))
        return;
    long vr = SSL_get_verify_result(t->ssl);
    if (o->cafile && vr != X509_V_OK) {
        bool name = vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH;
        fprintf(stderr,
                "ringmq-bench: TLS %s with %s:%u failed: the broker's certificate did not verify "
                "against --cafile %s: %s%s\n",
                when, o->host, o->port, o->cafile, X509_verify_cert_error_string(vr),
                name ? " (it must name --host: an IP SAN for an address, else a DNS name)" : "");
        return;
    }
    fprintf(stderr, "ringmq-bench: TLS %s with %s:%u failed: %s%s\n", when, o->host, o->port, why,
            !o->certfile && strstr(why, "ALERT")
                ? " (an alert from the broker: does it require a client certificate? --cert, "
                  "--key)"
                : "");
}

/* The outcome of an SSL call that returned r <= 0. */
static int failed(struct btls *t, int r, const char *when)
{
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (t->overflow) {
        ERR_clear_error();
        return -ENOBUFS;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return -EPIPE;
    }
    say_failure(t, when);
    return -EPROTO;
}

int btls_handshake(struct btls *t)
{
    if (SSL_is_init_finished(t->ssl))
        return 1;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        describe_once(t);
        return 1;
    }
    return failed(t, r, "handshake");
}

bool btls_done(const struct btls *t)
{
    return t->ssl && SSL_is_init_finished(t->ssl);
}

bool btls_resumed(const struct btls *t)
{
    return t->ssl && SSL_session_reused(t->ssl);
}

int btls_read(struct btls *t, uint8_t *dst, uint32_t cap)
{
    int r = SSL_read(t->ssl, dst, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (r > 0)
        return r;
    return failed(t, r, "read");
}

int btls_write(struct btls *t, const uint8_t *p, uint32_t len)
{
    while (len > 0) {
        int r = SSL_write(t->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
        if (r <= 0) {
            int e = failed(t, r, "write");
            return e ? e : -EPROTO; /* our BIO never asks to retry a write */
        }
        p += r;
        len -= (uint32_t)r;
    }
    return 0;
}

struct obuf *btls_out(struct btls *t)
{
    return &t->out;
}
