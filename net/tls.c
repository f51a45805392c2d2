/*
 * The TLS layer (tls.h). Each connection has one SSL over two small BIOs
 * of our own: the read BIO hands the SSL the ciphertext of the current
 * receive in place (no copy, nothing kept once it is consumed: BoringSSL
 * buffers a partial record itself and frees that buffer when it empties),
 * the write BIO appends records straight to the connection's output during
 * tls_output, and to a small pending buffer during input (handshake
 * messages, tickets, alerts), which pending() reports and the next output
 * flushes. Many small MQTT packets queued in one turn go out in records of
 * up to 16 KiB, not one record each. An idle TLS connection holds the SSL
 * and its session, no buffers.
 *
 * Policy: TLS 1.2 at least (tls_version tlsv1.3 raises it), never 1.0 or
 * 1.1; TLS 1.2 suites ECDHE with AEAD only unless ciphers says otherwise
 * (TLS 1.3's are all AEAD with forward secrecy); ALPN "mqtt" selected when
 * offered, no ALPN accepted; client certificates verified against
 * cafile/capath (and crlfile) when require_certificate; TLS 1.2 PSK with
 * ECDHE (ECDHE-PSK-CHACHA20-POLY1305) from psk_file; the certificate for
 * the server name a client asks for (SNI) among the listener's pairs.
 *
 * Resumption: tickets sealed with AES-256-GCM under the broker's shared,
 * rotated keys. The session id context names the listener and the build
 * generation, so a ticket resumes only on the listener that issued it and
 * only until the next reload (a reload may have revoked the certificate
 * the session was verified with).
 *
 * Runs on the thread of the shard that owns the connection; contexts and
 * keys are built on the main thread.
 */
#include "tls.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/aead.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "file.h"
#include "invariant.h"
#include "log.h"
#include "psk.h"

/* ECDHE key exchange and AEAD ciphers only: forward secrecy and no
 * CBC-mode padding oracles. */
#define TLS_CIPHERS_DEFAULT                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* The one PSK suite with forward secrecy and an AEAD that BoringSSL has. */
#define TLS_CIPHERS_PSK   "ECDHE-PSK-CHACHA20-POLY1305"
#define TLS_VERIFY_DEPTH  10     /* certificates in a client's chain, at most */
#define TLS_RECORD_IN_MAX 16384u /* plaintext read per SSL_read */
#define TLS_IDENTITY_MAX  1024u  /* bytes of a certificate identity kept */
/* A client's certificate chain, at most (BoringSSL's default is 100 KiB,
 * and it bounds every handshake message by it, the ClientHello included,
 * where a client certificate is asked for). Device chains are a few KiB. */
#define TLS_CERT_LIST_MAX (32u * 1024u)
_Static_assert(TLS_CERT_LIST_MAX + 1024u < CONN_HELD_MAX,
               "a chain fits the input a handshake may hold (net/conn.c)");

/* ---- ticket keys ------------------------------------------------------ */

#define TICKET_ID_LEN    4u
#define TICKET_NONCE_LEN 12u
#define TICKET_KEY_LEN   32u

struct tls_key {
    uint8_t id[TICKET_ID_LEN];
    uint8_t raw[TICKET_KEY_LEN];
    EVP_AEAD_CTX aead;
};

/* Immutable once published: [0] seals, every one opens. */
struct tls_keyset {
    struct tls_key k[2];
    unsigned n;
};

struct tls_tickets {
    _Atomic(struct tls_keyset *) keys;
    uint32_t rotation_s;
};

/* k->id and k->raw set: the AEAD state from them. */
static int key_init(struct tls_key *k)
{
    return EVP_AEAD_CTX_init(&k->aead, EVP_aead_aes_256_gcm(), k->raw, sizeof(k->raw),
                             EVP_AEAD_DEFAULT_TAG_LENGTH, NULL) == 1
               ? 0
               : -1;
}

static int key_make(struct tls_key *k)
{
    if (RAND_bytes(k->id, sizeof(k->id)) != 1 || RAND_bytes(k->raw, sizeof(k->raw)) != 1)
        return -1;
    return key_init(k);
}

void tls_keyset_free(struct tls_keyset *k)
{
    if (!k)
        return;
    for (unsigned i = 0; i < k->n; i++)
        EVP_AEAD_CTX_cleanup(&k->k[i].aead);
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

struct tls_tickets *tls_tickets_create(uint32_t rotation_s)
{
    struct tls_tickets *t = calloc(1, sizeof(*t));
    struct tls_keyset *k = calloc(1, sizeof(*k));
    if (!t || !k || key_make(&k->k[0])) {
        free(t);
        tls_keyset_free(k);
        return NULL;
    }
    k->n = 1;
    t->rotation_s = rotation_s;
    atomic_init(&t->keys, k);
    return t;
}

struct tls_keyset *tls_tickets_rotate(struct tls_tickets *t)
{
    struct tls_keyset *old = atomic_load_explicit(&t->keys, memory_order_acquire);
    struct tls_keyset *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    if (key_make(&k->k[0])) {
        OPENSSL_cleanse(k, sizeof(*k));
        free(k);
        return NULL;
    }
    k->n = 1;
    /* The current key opens one period more, from its own state. */
    memcpy(k->k[1].id, old->k[0].id, TICKET_ID_LEN);
    memcpy(k->k[1].raw, old->k[0].raw, TICKET_KEY_LEN);
    if (key_init(&k->k[1]) == 0)
        k->n = 2;
    atomic_store_explicit(&t->keys, k, memory_order_seq_cst);
    return old;
}

void tls_tickets_destroy(struct tls_tickets *t)
{
    if (!t)
        return;
    tls_keyset_free(atomic_load(&t->keys));
    free(t);
}

/* ---- contexts --------------------------------------------------------- */

struct tls_ctx {
    atomic_uint refs;
    SSL_CTX *ssl[CONFIG_TLS_CERTS_MAX]; /* [0] the default; the others by SNI */
    X509 *cert[CONFIG_TLS_CERTS_MAX];   /* owned by ssl[i] */
    unsigned n;                         /* contexts; certs: n, or 0 when PSK-only */
    bool psk_only;
    bool use_subject; /* the identity is the subject DN, else the CN */
    struct psk_table *psk;
    struct tls_tickets *tickets;
    uint64_t generation;
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

static struct tls_ctx *ctx_of(const SSL *ssl)
{
    return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
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

/* SNI: the first certificate whose names cover the asked name; none (or
 * no name asked): the default, the first certfile. */
static int servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    struct tls_ctx *ctx = ctx_of(ssl);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!ctx || !name || ctx->n < 2)
        return SSL_TLSEXT_ERR_OK;
    size_t len = strlen(name);
    if (X509_check_host(ctx->cert[0], name, len, 0, NULL) == 1)
        return SSL_TLSEXT_ERR_OK;
    for (unsigned i = 1; i < ctx->n; i++)
        if (X509_check_host(ctx->cert[i], name, len, 0, NULL) == 1) {
            SSL_set_SSL_CTX(ssl, ctx->ssl[i]);
            break;
        }
    return SSL_TLSEXT_ERR_OK;
}

static unsigned psk_server(SSL *ssl, const char *identity, uint8_t *psk, unsigned max_len)
{
    struct tls_ctx *ctx = ctx_of(ssl);
    size_t n = 0;
    const uint8_t *k = ctx ? psk_find(ctx->psk, identity, &n) : NULL;
    if (!k || n > max_len)
        return 0; /* unknown identity: the handshake fails */
    memcpy(psk, k, n);
    return (unsigned)n;
}

static size_t ticket_overhead(SSL *ssl)
{
    (void)ssl;
    return TICKET_ID_LEN + TICKET_NONCE_LEN + EVP_AEAD_max_overhead(EVP_aead_aes_256_gcm());
}

/* id || nonce || AES-256-GCM(session), the id and nonce authenticated. */
static int ticket_seal(SSL *ssl, uint8_t *out, size_t *out_len, size_t max_out, const uint8_t *in,
                       size_t in_len)
{
    struct tls_ctx *ctx = ctx_of(ssl);
    struct tls_keyset *ks = atomic_load_explicit(&ctx->tickets->keys, memory_order_acquire);
    const size_t head = TICKET_ID_LEN + TICKET_NONCE_LEN;
    size_t sealed = 0;
    if (max_out < head || ks->n == 0)
        return 0;
    memcpy(out, ks->k[0].id, TICKET_ID_LEN);
    if (RAND_bytes(out + TICKET_ID_LEN, TICKET_NONCE_LEN) != 1)
        return 0;
    if (EVP_AEAD_CTX_seal(&ks->k[0].aead, out + head, &sealed, max_out - head, out + TICKET_ID_LEN,
                          TICKET_NONCE_LEN, in, in_len, out, TICKET_ID_LEN) != 1)
        return 0;
    *out_len = head + sealed;
    return 1;
}

static enum ssl_ticket_aead_result_t ticket_open(SSL *ssl, uint8_t *out, size_t *out_len,
                                                 size_t max_out, const uint8_t *in, size_t in_len)
{
    struct tls_ctx *ctx = ctx_of(ssl);
    struct tls_keyset *ks = atomic_load_explicit(&ctx->tickets->keys, memory_order_acquire);
    const size_t head = TICKET_ID_LEN + TICKET_NONCE_LEN;
    if (in_len < head)
        return ssl_ticket_aead_ignore_ticket;
    for (unsigned i = 0; i < ks->n; i++) {
        if (memcmp(in, ks->k[i].id, TICKET_ID_LEN) != 0)
            continue;
        if (EVP_AEAD_CTX_open(&ks->k[i].aead, out, out_len, max_out, in + TICKET_ID_LEN,
                              TICKET_NONCE_LEN, in + head, in_len - head, in, TICKET_ID_LEN) == 1)
            return ssl_ticket_aead_success;
        ERR_clear_error();
        return ssl_ticket_aead_ignore_ticket;
    }
    return ssl_ticket_aead_ignore_ticket; /* a rotated-out or foreign key: a full handshake */
}

static const SSL_TICKET_AEAD_METHOD ticket_method = {
    .max_overhead = ticket_overhead,
    .seal = ticket_seal,
    .open = ticket_open,
};

/* Client certificates: the chain against cafile/capath, and every CRL of
 * crlfile for every certificate in it. */
static int ctx_verify_setup(SSL_CTX *ssl, const struct config_tls *t, const char **what,
                            const char **path)
{
    if (!t->require_certificate)
        return 0;
    *what = "cafile/capath";
    *path = t->cafile[0] ? t->cafile : t->capath;
    if (SSL_CTX_load_verify_locations(ssl, t->cafile[0] ? t->cafile : NULL,
                                      t->capath[0] ? t->capath : NULL) != 1)
        return -1;
    if (t->crlfile[0]) {
        *what = "crlfile";
        *path = t->crlfile;
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

/* Versions, suites, ALPN, tickets, PSK: the same on every context of a
 * listener. */
static int ctx_common(struct tls_ctx *ctx, SSL_CTX *ssl, const struct config_tls *t,
                      uint32_t listener, const char **what)
{
    *what = "tls_version";
    uint16_t max = ctx->psk_only ? TLS1_2_VERSION : TLS1_3_VERSION;
    if (!SSL_CTX_set_min_proto_version(ssl, t->min_version) ||
        !SSL_CTX_set_max_proto_version(ssl, max))
        return -1;
    *what = "ciphers";
    const char *list = t->ciphers[0]   ? t->ciphers
                       : ctx->psk_only ? TLS_CIPHERS_PSK
                       : ctx->psk      ? TLS_CIPHERS_DEFAULT ":" TLS_CIPHERS_PSK
                                       : TLS_CIPHERS_DEFAULT;
    if (!SSL_CTX_set_strict_cipher_list(ssl, list))
        return -1;
    SSL_CTX_set_app_data(ssl, ctx);
    SSL_CTX_set_alpn_select_cb(ssl, alpn_select, NULL);
    SSL_CTX_set_tlsext_servername_callback(ssl, servername);
    /* Tickets resume on this listener and this generation only. */
    uint8_t sid[32];
    int n = snprintf((char *)sid, sizeof(sid), "ringmq/%u/%llu", (unsigned)listener,
                     (unsigned long long)ctx->generation);
    *what = "session id context";
    if (n <= 0 || (size_t)n >= sizeof(sid) || !SSL_CTX_set_session_id_context(ssl, sid, (size_t)n))
        return -1;
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_max_cert_list(ssl, TLS_CERT_LIST_MAX);
    if (ctx->tickets) {
        SSL_CTX_set_ticket_aead_method(ssl, &ticket_method);
        /* One ticket per connection (BoringSSL sends two): an MQTT client
         * keeps one connection, and each ticket is a seal and a record. */
        SSL_CTX_set_num_tickets(ssl, 1);
        SSL_CTX_set_timeout(ssl, ctx->tickets->rotation_s);
        SSL_CTX_set_session_psk_dhe_timeout(ssl, ctx->tickets->rotation_s);
    } else {
        SSL_CTX_set_options(ssl, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ssl, 0);
    }
    if (ctx->psk) {
        SSL_CTX_set_psk_server_callback(ssl, psk_server);
        *what = "psk_hint";
        if (t->psk_hint[0] && !SSL_CTX_use_psk_identity_hint(ssl, t->psk_hint))
            return -1;
    }
    return 0;
}

/* One certfile/keyfile pair onto ssl. */
static int ctx_pair(SSL_CTX *ssl, const char *certfile, const char *keyfile, char *why,
                    size_t whylen, const char **what, const char **path)
{
    *what = "certfile";
    *path = certfile;
    if (SSL_CTX_use_certificate_chain_file(ssl, certfile) != 1)
        return -1;
    *what = "keyfile";
    *path = keyfile;
    if (SSL_CTX_use_PrivateKey_file(ssl, keyfile, SSL_FILETYPE_PEM) != 1)
        return -1;
    if (SSL_CTX_check_private_key(ssl) != 1) {
        ERR_clear_error();
        if (snprintf(why, whylen, "does not match certfile %s", certfile) >= (int)whylen)
            why[whylen - 1] = '\0'; /* cut short: the keyfile's path comes first anyway */
        return -1;
    }
    return 0;
}

static int ctx_psk_load(struct tls_ctx *ctx, const struct config_tls *t, char *err, size_t errlen)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char ferr[512];
    if (file_read(t->psk_file, PSK_FILE_MAX, &data, &len, ferr, sizeof(ferr)) != 0) {
        snprintf(err, errlen, "psk_file %s", ferr);
        return -1;
    }
    ctx->psk = psk_parse(t->psk_file, data, len, ferr, sizeof(ferr));
    file_free(data, len); /* it holds the keys */
    if (!ctx->psk) {
        snprintf(err, errlen, "psk_file %s", ferr);
        return -1;
    }
    return 0;
}

/* Context i (0: the default pair, else SNI pair i-1). */
static int ctx_build_one(struct tls_ctx *ctx, unsigned i, const struct config_tls *t,
                         uint32_t listener, char *err, size_t errlen, int *line)
{
    char why[CONFIG_PATH_MAX + 64] = "";
    const char *what = "context", *path = "";
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (!ssl)
        goto fail;
    ctx->ssl[i] = ssl;
    ctx->n = i + 1;
    *line = i ? t->sni[i - 1].line : t->line;
    if (ctx_common(ctx, ssl, t, listener, &what))
        goto fail;
    if (!ctx->psk_only) {
        const char *cf = i ? t->sni[i - 1].certfile : t->certfile;
        const char *kf = i ? t->sni[i - 1].keyfile : t->keyfile;
        if (ctx_pair(ssl, cf, kf, why, sizeof(why), &what, &path))
            goto fail;
        ctx->cert[i] = SSL_CTX_get0_certificate(ssl);
    }
    if (ctx_verify_setup(ssl, t, &what, &path))
        goto fail;
    return 0;
fail:
    if (!why[0])
        last_error(why, sizeof(why));
    if (path[0])
        snprintf(err, errlen, "%s %s: %s", what, path, why);
    else
        snprintf(err, errlen, "%s: %s", what, why);
    return -1;
}

int tls_ctx_create(const struct config_tls *t, uint32_t listener, uint64_t generation,
                   struct tls_tickets *tickets, struct tls_ctx **out, char *err, size_t errlen,
                   int *line)
{
    struct tls_ctx *ctx = calloc(1, sizeof(*ctx));
    *line = t->line;
    if (!ctx) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    atomic_init(&ctx->refs, 1);
    ctx->use_subject = t->use_subject_as_username;
    ctx->psk_only = t->certfile[0] == '\0';
    ctx->tickets = tickets;
    ctx->generation = generation;
    if (t->psk_file[0] && ctx_psk_load(ctx, t, err, errlen)) {
        *line = t->psk_file_line ? t->psk_file_line : t->line;
        tls_ctx_unref(ctx);
        return -1;
    }
    unsigned want = ctx->psk_only ? 1 : 1 + t->sni_count;
    for (unsigned i = 0; i < want; i++)
        if (ctx_build_one(ctx, i, t, listener, err, errlen, line)) {
            tls_ctx_unref(ctx);
            return -1;
        }
    *out = ctx;
    return 0;
}

void tls_ctx_ref(struct tls_ctx *ctx)
{
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

void tls_ctx_unref(struct tls_ctx *ctx)
{
    if (!ctx || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (unsigned i = 0; i < ctx->n; i++)
        SSL_CTX_free(ctx->ssl[i]);
    psk_free(ctx->psk);
    free(ctx);
}

unsigned tls_ctx_certs(const struct tls_ctx *ctx)
{
    return ctx->psk_only ? 0 : ctx->n;
}

int tls_ctx_days_left(const struct tls_ctx *ctx, unsigned i)
{
    int days = 0, secs = 0;
    if (i >= tls_ctx_certs(ctx) || !ctx->cert[i] ||
        !ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(ctx->cert[i])))
        return INT32_MIN;
    return days;
}

int64_t tls_ctx_not_after(const struct tls_ctx *ctx, unsigned i)
{
    int days = 0, secs = 0;
    if (i >= tls_ctx_certs(ctx) || !ctx->cert[i] ||
        !ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(ctx->cert[i])))
        return INT64_MIN;
    return (int64_t)time(NULL) + (int64_t)days * 86400 + secs;
}

/* ---- the layer -------------------------------------------------------- */

struct tls_state {
    struct conn_layer layer; /* first: the connection holds &layer */
    struct tls_ctx *ctx;     /* a reference */
    SSL *ssl;
    const uint8_t *in; /* the receive being fed to the SSL, in place */
    size_t in_len;
    struct buf *to;  /* where records go now: the connection's output... */
    struct buf pend; /* ...or, during input, here until the next output */
    bool done;       /* the handshake completed */
    bool failed;     /* the handshake failed (counted by tls_fail) */
    /* The shard's failure counter, from the first input: a handshake that
     * began and was abandoned (connect_timeout, the peer left) counts as a
     * failure when the layer goes. */
    atomic_uint_fast64_t *failures;
};

static int bio_read(BIO *b, char *out, int len)
{
    struct tls_state *st = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (st->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = st->in_len < (size_t)len ? st->in_len : (size_t)len;
    memcpy(out, st->in, n);
    st->in += n;
    st->in_len -= n;
    return (int)n;
}

static int bio_write(BIO *b, const char *data, int len)
{
    struct tls_state *st = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (buf_append(st->to ? st->to : &st->pend, data, (size_t)len))
        return -1;
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

/* Made once by tls_init, before the shards start; read-only after. */
static BIO_METHOD *bio_method;

int tls_init(void)
{
    if (bio_method)
        return 0;
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "ringmq-conn");
    if (!m || !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
        !BIO_meth_set_ctrl(m, bio_ctrl)) {
        BIO_meth_free(m);
        return -1;
    }
    bio_method = m;
    return 0;
}

/* id (len bytes, NUL-terminated, owned) becomes the connection's
 * certificate or PSK identity; NULL or empty: none. */
static void identity_set(struct conn *c, uint8_t *id, int len)
{
    if (!id || len <= 0) {
        free(id);
        return;
    }
    free(c->e.who.cert_identity);
    c->e.who.cert_identity = id;
    c->e.who.cert_identity_len = (uint32_t)len;
}

/* A copy of a certificate subject's identity: the DN (RFC 2253) with
 * subject, else the CN; NULL when there is none usable. */
static uint8_t *name_identity(X509_NAME *name, bool subject, int *len)
{
    uint8_t *id = NULL;
    if (subject) {
        BIO *b = BIO_new(BIO_s_mem());
        const uint8_t *p;
        size_t n;
        if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0 &&
            BIO_mem_contents(b, &p, &n) && n < TLS_IDENTITY_MAX && (id = malloc(n + 1))) {
            memcpy(id, p, n);
            id[n] = 0;
            *len = (int)n;
        }
        BIO_free(b);
        return id;
    }
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    ASN1_STRING *s = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)) : NULL;
    uint8_t *utf8 = NULL;
    int n = s ? ASN1_STRING_to_UTF8(&utf8, s) : -1;
    /* A CN with a NUL in it would name someone else to C strings. */
    if (n > 0 && (size_t)n < TLS_IDENTITY_MAX && !memchr(utf8, 0, (size_t)n) &&
        (id = malloc((size_t)n + 1))) {
        memcpy(id, utf8, (size_t)n);
        id[n] = 0;
        *len = n;
    }
    OPENSSL_free(utf8);
    return id;
}

/* The client certificate's identity (CN, or the subject DN with
 * use_subject_as_username), or the PSK identity, onto the connection, for
 * login and the ACL. */
static void take_identity(struct conn *c, struct tls_state *st)
{
    const char *psk = SSL_get_psk_identity(st->ssl);
    int len = -1;
    if (psk) {
        size_t n = strnlen(psk, TLS_IDENTITY_MAX);
        uint8_t *id = n > 0 && n < TLS_IDENTITY_MAX ? malloc(n + 1) : NULL;
        if (id)
            memcpy(id, psk, n + 1);
        identity_set(c, id, (int)n);
        return;
    }
    X509 *cert = SSL_get_peer_certificate(st->ssl);
    if (!cert)
        return;
    uint8_t *id = name_identity(X509_get_subject_name(cert), st->ctx->use_subject, &len);
    X509_free(cert);
    identity_set(c, id, len);
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

static int tls_handshake(struct conn *c, struct tls_state *st)
{
    int r = SSL_do_handshake(st->ssl);
    if (r != 1) {
        int e = SSL_get_error(st->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0; /* more of the handshake to come */
        st->failed = true;
        return tls_fail(c, st->ssl, "handshake");
    }
    st->done = true;
    atomic_fetch_add_explicit(&c->e.en->st.tls_handshakes, 1, memory_order_relaxed);
    if (SSL_session_reused(st->ssl))
        atomic_fetch_add_explicit(&c->e.en->st.tls_resumed, 1, memory_order_relaxed);
    take_identity(c, st);
    take_exporter(c, st);
    return 0;
}

static int tls_read_all(struct conn *c, struct tls_state *st, struct buf *up)
{
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

static int tls_input(struct conn *c, struct conn_layer *l, const uint8_t *data, size_t len,
                     struct buf *up)
{
    struct tls_state *st = (struct tls_state *)l;
    st->in = data;
    st->in_len = len;
    st->to = NULL;
    st->failures = &c->e.en->st.tls_failures;
    int rc = st->done ? 0 : tls_handshake(c, st);
    if (rc == 0 && st->done)
        rc = tls_read_all(c, st, up);
    /* The SSL reads until the BIO is dry: nothing of this receive is left
     * behind (a partial record waits inside the SSL). */
    ASSERT(rc != 0 || st->in_len == 0);
    st->in = NULL;
    st->in_len = 0;
    return rc;
}

static int tls_output(struct conn *c, struct conn_layer *l, struct buf *from, struct buf *to)
{
    struct tls_state *st = (struct tls_state *)l;
    if (st->pend.len) {
        if (buf_append(to, st->pend.data, st->pend.len))
            return -ENOMEM;
        buf_free(&st->pend); /* an idle connection keeps no buffer */
    }
    size_t off = 0;
    st->to = to;
    /* Before the handshake is done the plaintext waits (SSL_write would
     * try to complete it). */
    while (st->done && off < from->len) {
        size_t n = from->len - off;
        if (n > TLS_RECORD_IN_MAX)
            n = TLS_RECORD_IN_MAX;
        int w = SSL_write(st->ssl, from->data + off, (int)n);
        if (w <= 0) {
            st->to = NULL;
            return tls_fail(c, st->ssl, "write");
        }
        off += (size_t)w;
    }
    st->to = NULL;
    buf_consume(from, off);
    return 0;
}

static bool tls_pending(const struct conn *c, const struct conn_layer *l)
{
    (void)c;
    const struct tls_state *st = (const struct tls_state *)l;
    return st->pend.len > 0;
}

static int tls_shutdown(struct conn *c, struct conn_layer *l, struct buf *to)
{
    (void)c;
    struct tls_state *st = (struct tls_state *)l;
    if (st->pend.len) {
        if (buf_append(to, st->pend.data, st->pend.len))
            return -ENOMEM;
        buf_free(&st->pend);
    }
    st->to = to;
    if (st->done)
        SSL_shutdown(st->ssl); /* close_notify; the peer's is not waited for */
    st->to = NULL;
    return 0;
}

static void tls_destroy(struct conn_layer *l)
{
    struct tls_state *st = (struct tls_state *)l;
    if (!st->done && !st->failed && st->failures)
        atomic_fetch_add_explicit(st->failures, 1, memory_order_relaxed); /* abandoned */
    SSL_free(st->ssl);
    buf_free(&st->pend);
    tls_ctx_unref(st->ctx);
    free(st);
}

/* Until the handshake is done, input may mean key exchange, a signature
 * and a chain to verify: the shard's handshake queue takes it. */
static bool tls_costly(const struct conn *c, const struct conn_layer *l)
{
    (void)c;
    return !((const struct tls_state *)l)->done;
}

static const struct conn_layer_ops tls_ops = {
    .name = "tls",
    .input = tls_input,
    .output = tls_output,
    .pending = tls_pending,
    .costly = tls_costly,
    .shutdown = tls_shutdown,
    .destroy = tls_destroy,
};

struct conn_layer *tls_layer_create(struct tls_ctx *ctx)
{
    BIO_METHOD *m = bio_method;
    ASSERT(m != NULL); /* tls_init ran */
    struct tls_state *st = calloc(1, sizeof(*st));
    if (!st) {
        free(st);
        return NULL;
    }
    st->ssl = SSL_new(ctx->ssl[0]);
    BIO *rbio = BIO_new(m), *wbio = BIO_new(m);
    if (!st->ssl || !rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(st->ssl);
        free(st);
        return NULL;
    }
    BIO_set_data(rbio, st);
    BIO_set_data(wbio, st);
    BIO_set_init(rbio, 1);
    BIO_set_init(wbio, 1);
    SSL_set_bio(st->ssl, rbio, wbio);
    SSL_set_accept_state(st->ssl);
    tls_ctx_ref(ctx);
    st->ctx = ctx;
    st->layer.ops = &tls_ops;
    return &st->layer;
}
