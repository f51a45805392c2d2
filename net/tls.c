/*
 * The TLS layer (tls.h). Each connection has one SSL over two memory BIOs:
 * received ciphertext is written into the read BIO and SSL_read turns it
 * into plaintext for the engine; SSL_write turns the engine's output into
 * records in the write BIO, which the connection sends. Many small MQTT
 * packets queued in one turn go into records of up to 16 KiB, not one
 * record each. After every SSL call the write BIO may hold records of its
 * own (handshake, alerts, tickets): pending() says so and the connection
 * flushes them.
 *
 * Policy: TLS 1.2 at least (tls_version tlsv1.3 raises it), never 1.0 or
 * 1.1; TLS 1.2 suites ECDHE with AEAD only unless ciphers says otherwise
 * (TLS 1.3's are all AEAD with forward secrecy); ALPN "mqtt" selected when
 * offered, no ALPN accepted; no session tickets yet (resumption across
 * shards needs shared, rotated keys: later work); client certificates
 * verified against cafile/capath (and crlfile) when require_certificate.
 *
 * Runs on the thread of the shard that owns the connection; contexts are
 * built on the main thread.
 */
#include "tls.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "invariant.h"
#include "log.h"

/* ECDHE key exchange and AEAD ciphers only: forward secrecy and no
 * CBC-mode padding oracles. */
#define TLS_CIPHERS_DEFAULT                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_VERIFY_DEPTH  10     /* certificates in a client's chain, at most */
#define TLS_RECORD_IN_MAX 16384u /* plaintext read per SSL_read */
#define TLS_IDENTITY_MAX  1024u  /* bytes of a certificate identity kept */

struct tls_ctx {
    SSL_CTX *ssl;
    bool use_subject; /* the identity is the subject DN, else the CN */
};

struct tls_state {
    struct conn_layer layer; /* first: the connection holds &layer */
    struct tls_ctx *ctx;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    bool done;        /* the handshake completed */
};

static void last_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e) {
        snprintf(buf, len, "unknown error");
        return;
    }
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

/* ALPN: "mqtt" when the client offers it; a client offering only other
 * protocols goes on without ALPN, as one offering none. */
static int alpn_select(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                       unsigned in_len, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < in_len;) {
        unsigned n = in[i];
        if (i + 1 + n > in_len)
            break;
        if (n == 4 && memcmp(in + i + 1, "mqtt", 4) == 0) {
            *out = in + i + 1;
            *out_len = 4;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Client certificates: the chain against cafile/capath, and every CRL of
 * crlfile for every certificate in it. */
static int ctx_verify_setup(SSL_CTX *ssl, const struct config_tls *t, const char **what)
{
    if (!t->require_certificate)
        return 0;
    *what = "cafile/capath";
    if (SSL_CTX_load_verify_locations(ssl, t->cafile[0] ? t->cafile : NULL,
                                      t->capath[0] ? t->capath : NULL) != 1)
        return -1;
    if (t->crlfile[0]) {
        *what = "crlfile";
        X509_STORE *store = SSL_CTX_get_cert_store(ssl);
        X509_LOOKUP *lu = X509_STORE_add_lookup(store, X509_LOOKUP_file());
        if (!lu || X509_load_crl_file(lu, t->crlfile, X509_FILETYPE_PEM) <= 0)
            return -1;
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ssl, TLS_VERIFY_DEPTH);
    return 0;
}

int tls_ctx_create(const struct config_tls *t, const char *source, struct tls_ctx **out, char *err,
                   size_t errlen)
{
    char why[256];
    const char *what = "context";
    struct tls_ctx *ctx = calloc(1, sizeof(*ctx));
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (!ctx || !ssl)
        goto fail;
    ctx->ssl = ssl;
    ctx->use_subject = t->use_subject_as_username;
    what = "tls_version";
    if (!SSL_CTX_set_min_proto_version(ssl, t->min_version) ||
        !SSL_CTX_set_max_proto_version(ssl, TLS1_3_VERSION))
        goto fail;
    what = "ciphers";
    if (!SSL_CTX_set_strict_cipher_list(ssl, t->ciphers[0] ? t->ciphers : TLS_CIPHERS_DEFAULT))
        goto fail;
    what = "certfile";
    if (SSL_CTX_use_certificate_chain_file(ssl, t->certfile) != 1)
        goto fail;
    what = "keyfile";
    if (SSL_CTX_use_PrivateKey_file(ssl, t->keyfile, SSL_FILETYPE_PEM) != 1)
        goto fail;
    what = "keyfile (does not match certfile)";
    if (SSL_CTX_check_private_key(ssl) != 1)
        goto fail;
    if (ctx_verify_setup(ssl, t, &what))
        goto fail;
    SSL_CTX_set_alpn_select_cb(ssl, alpn_select, NULL);
    /* No resumption until ticket keys are shared by the shards and rotated
     * (a ticket from one shard's random key fails on another). */
    SSL_CTX_set_options(ssl, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ssl, 0);
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
    *out = ctx;
    return 0;
fail:
    last_error(why, sizeof(why));
    snprintf(err, errlen, "%s:%d: TLS %s: %s", source, t->line, what, why);
    if (ssl)
        SSL_CTX_free(ssl);
    free(ctx);
    return -1;
}

int tls_ctx_days_left(const struct tls_ctx *ctx)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx->ssl);
    int days = 0, secs = 0;
    if (!cert || !ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)))
        return INT32_MIN;
    return days;
}

void tls_ctx_destroy(struct tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

/* Moves what the write BIO holds into to. */
static int drain(struct tls_state *st, struct buf *to)
{
    size_t n = BIO_ctrl_pending(st->wbio);
    if (n == 0)
        return 0;
    if (buf_reserve(to, n))
        return -ENOMEM;
    int got = BIO_read(st->wbio, to->data + to->len, (int)n);
    if (got > 0)
        to->len += (size_t)got;
    return 0;
}

/* The client certificate's identity (CN, or the subject DN with
 * use_subject_as_username) onto the connection, for login and the ACL. */
static void take_identity(struct conn *c, struct tls_state *st)
{
    X509 *cert = SSL_get_peer_certificate(st->ssl);
    if (!cert)
        return;
    X509_NAME *name = X509_get_subject_name(cert);
    uint8_t *id = NULL;
    int len = -1;
    if (st->ctx->use_subject) {
        BIO *b = BIO_new(BIO_s_mem());
        if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
            const uint8_t *p;
            size_t n;
            if (BIO_mem_contents(b, &p, &n) && n < TLS_IDENTITY_MAX && (id = malloc(n + 1))) {
                memcpy(id, p, n);
                id[n] = 0;
                len = (int)n;
            }
        }
        BIO_free(b);
    } else {
        int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        ASN1_STRING *s = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)) : NULL;
        uint8_t *utf8 = NULL;
        int n = s ? ASN1_STRING_to_UTF8(&utf8, s) : -1;
        /* A CN with a NUL in it would name someone else to C strings. */
        if (n > 0 && (size_t)n < TLS_IDENTITY_MAX && !memchr(utf8, 0, (size_t)n) &&
            (id = malloc((size_t)n + 1))) {
            memcpy(id, utf8, (size_t)n);
            id[n] = 0;
            len = n;
        }
        OPENSSL_free(utf8);
    }
    X509_free(cert);
    if (len <= 0) {
        free(id);
        return;
    }
    free(c->e.who.cert_identity);
    c->e.who.cert_identity = id;
    c->e.who.cert_identity_len = (uint32_t)len;
}

/* RFC 9266: the tls-exporter channel binding, for SCRAM-SHA-512-PLUS. Only
 * where the exporter is unique to the session: TLS 1.3, or TLS 1.2 with
 * the extended master secret (RFC 7627). */
static void take_exporter(struct conn *c, struct tls_state *st)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    c->e.who.tls_exporter_ok = false;
    if (SSL_version(st->ssl) < TLS1_3_VERSION && !SSL_get_extms_support(st->ssl))
        return;
    if (SSL_export_keying_material(st->ssl, c->e.who.tls_exporter, ENGINE_TLS_EXPORTER_LEN, label,
                                   sizeof(label) - 1, NULL, 0, 0) == 1)
        c->e.who.tls_exporter_ok = true;
}

/* A handshake or record the library refused: a debug line and a counter,
 * and the connection ends. */
static int tls_fail(struct conn *c, const SSL *ssl, const char *stage)
{
    char why[256];
    last_error(why, sizeof(why));
    long v = SSL_get_verify_result(ssl);
    /* A refused client certificate says why (revoked, unknown CA, expired). */
    LOG(LOG_LEVEL_DEBUG, "TLS %s with %s failed: %s%s%s", stage, c->e.who.peer, why,
        v != X509_V_OK ? "; certificate: " : "",
        v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
    atomic_fetch_add_explicit(&c->e.en->st.tls_failures, 1, memory_order_relaxed);
    return -EPROTO;
}

static int tls_input(struct conn *c, struct conn_layer *l, const uint8_t *data, size_t len,
                     struct buf *up)
{
    struct tls_state *st = (struct tls_state *)l;
    if (BIO_write(st->rbio, data, (int)len) != (int)len)
        return -ENOMEM;
    if (!st->done) {
        int r = SSL_do_handshake(st->ssl);
        if (r != 1) {
            int e = SSL_get_error(st->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0; /* more of the handshake to come; records wait in wbio */
            return tls_fail(c, st->ssl, "handshake");
        }
        st->done = true;
        atomic_fetch_add_explicit(&c->e.en->st.tls_handshakes, 1, memory_order_relaxed);
        take_identity(c, st);
        take_exporter(c, st);
    }
    for (;;) {
        if (buf_reserve(up, TLS_RECORD_IN_MAX))
            return -ENOMEM;
        int n = SSL_read(st->ssl, up->data + up->len, (int)TLS_RECORD_IN_MAX);
        if (n > 0) {
            up->len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(st->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN)
            return -EPIPE; /* close_notify: the peer ends the connection */
        return tls_fail(c, st->ssl, "read");
    }
}

static int tls_output(struct conn *c, struct conn_layer *l, struct buf *from, struct buf *to)
{
    (void)c;
    struct tls_state *st = (struct tls_state *)l;
    size_t off = 0;
    /* Before the handshake is done the plaintext waits (SSL_write would
     * try to complete it). */
    while (st->done && off < from->len) {
        size_t n = from->len - off;
        if (n > TLS_RECORD_IN_MAX)
            n = TLS_RECORD_IN_MAX;
        int w = SSL_write(st->ssl, from->data + off, (int)n);
        if (w <= 0)
            return tls_fail(c, st->ssl, "write");
        off += (size_t)w;
    }
    buf_consume(from, off);
    return drain(st, to);
}

static bool tls_pending(const struct conn *c, const struct conn_layer *l)
{
    (void)c;
    const struct tls_state *st = (const struct tls_state *)l;
    return BIO_ctrl_pending(st->wbio) > 0;
}

static int tls_shutdown(struct conn *c, struct conn_layer *l, struct buf *to)
{
    (void)c;
    struct tls_state *st = (struct tls_state *)l;
    if (st->done)
        SSL_shutdown(st->ssl); /* close_notify; the peer's is not waited for */
    return drain(st, to);
}

static void tls_destroy(struct conn_layer *l)
{
    struct tls_state *st = (struct tls_state *)l;
    SSL_free(st->ssl);
    free(st);
}

static const struct conn_layer_ops tls_ops = {
    .name = "tls",
    .input = tls_input,
    .output = tls_output,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .destroy = tls_destroy,
};

struct conn_layer *tls_layer_create(struct tls_ctx *ctx)
{
    struct tls_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->ctx = ctx;
    st->ssl = SSL_new(ctx->ssl);
    st->rbio = BIO_new(BIO_s_mem());
    st->wbio = BIO_new(BIO_s_mem());
    if (!st->ssl || !st->rbio || !st->wbio) {
        BIO_free(st->rbio);
        BIO_free(st->wbio);
        SSL_free(st->ssl);
        free(st);
        return NULL;
    }
    SSL_set_bio(st->ssl, st->rbio, st->wbio);
    SSL_set_accept_state(st->ssl);
    st->layer.ops = &tls_ops;
    return &st->layer;
}
