/*
 * SCRAM-SHA-512, server side (RFC 5802; SHA-512 and HMAC-SHA-512 in place of
 * SHA-1, as RFC 7677 does for SHA-256).
 *
 * The password file's SCRAM-SHA-512 entries hold StoredKey and ServerKey
 * (RFC 5803), so a state copies those two plus the messages that make up
 * AuthMessage, and no PBKDF2 runs here. $6$ and $7$ entries never serve
 * SCRAM: a $7$ hash is SaltedPassword, and using it would make the file
 * itself a credential (scram.h). A state is owned by the connection that
 * started it and touched by one thread at a time; it copies everything it
 * needs, so the password table may be replaced or freed while an exchange
 * is in progress.
 *
 * A name without a SCRAM entry gets the same treatment as a real one up to
 * the last comparison: a salt derived from the name under the table's decoy
 * key (stable for the same entries, so asking twice, or after a restart,
 * gives the same answer, as for a real name), of the length and with the
 * iteration count most SCRAM entries have, and made-up keys. Both paths
 * compute that salt, so scram_start takes as long either way, and
 * scram_finish does the same work and fails. Nothing here is process-wide
 * state: the decoy key belongs to the table, and without a table a fixed
 * key stands in for it (NO_TABLE_KEY says why that hides nothing).
 *
 * SCRAM-SHA-512-PLUS is the same exchange bound to the TLS session
 * (RFC 5802 sections 6 and 7, RFC 9266 tls-exporter): the runtime passes
 * the connection's exporter value in as bytes (struct scram_channel), the
 * state keeps a copy, and c= must carry it after the gs2 header. Which gs2
 * flag is allowed depends on the method and on whether the connection
 * could bind at all (channel_check).
 *
 * Parsing is strict: the messages are short, fully specified, and come from
 * an unauthenticated peer.
 */
#include "scram.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "codec.h"
#include "invariant.h"

#define KEY_LEN 64u /* SHA-512 output */

/* The decoy key when there is no table at all (db NULL). With no table no
 * name is real, so a made-up salt has nothing to hide and needs no secret:
 * a fixed key keeps each name's salt the same on every run. SCRAM is not
 * offered without a password file (auth_method_offered); only an exchange
 * that starts on a snapshot a reload left without one gets here. */
#define NO_TABLE_KEY "ringmq scram no-table decoy key v1"

_Static_assert(SCRAM_NONCE_RANDOM_LEN % 3 == 0, "the server nonce has no '=' padding");
_Static_assert(PASSWD_SALT_MAX <= KEY_LEN, "a made-up salt is cut from one HMAC-SHA512");
_Static_assert(SHA512_DIGEST_LENGTH == KEY_LEN, "SHA-512 is 64 bytes");
_Static_assert(PASSWD_KEY_LEN == KEY_LEN, "entries hold SHA-512-sized keys");

/* For tests: scram_start with a fixed server nonce (printable, no ','). */
enum scram_result scram_start_with_nonce(const struct passwd_db *db, const uint8_t *in, size_t len,
                                         const uint8_t *server_nonce, size_t server_nonce_len,
                                         struct scram **state, uint8_t *out, size_t *outlen,
                                         const char **why);

struct scram {
    uint8_t stored_key[KEY_LEN];
    uint8_t server_key[KEY_LEN];
    bool known;     /* a SCRAM entry: only then can the proof succeed */
    bool has_entry; /* a $6$ or $7$ entry, for the log's why */
    bool spent;     /* scram_finish ran */
    bool plus;      /* SCRAM-SHA-512-PLUS: cbind ends with the tls-exporter value */
    const uint8_t *user;
    size_t user_len;
    /* What c= must decode to: the gs2 header as the client sent it ("n,,",
     * "y,,", "p=tls-exporter,,", each maybe with a=...), then with PLUS the
     * connection's tls-exporter value (RFC 5802 section 7, RFC 9266). */
    const uint8_t *cbind;
    size_t gs2_len;       /* of the gs2 header at its start */
    size_t cbind_len;     /* gs2_len, plus SCRAM_TLS_EXPORTER_LEN with PLUS */
    const uint8_t *nonce; /* client nonce + server nonce, inside auth */
    size_t nonce_len;
    /* AuthMessage: client-first-bare "," server-first "," and, once
     * scram_finish has it, client-final-without-proof. */
    uint8_t *auth;
    size_t auth_len;
    size_t auth_cap;
    uint8_t buf[]; /* user, cbind, auth */
};

struct cursor {
    const uint8_t *p;
    const uint8_t *end;
};

static bool take(struct cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* The bytes up to the next ',' or the end. */
static void value(struct cursor *c, const uint8_t **v, size_t *vlen)
{
    const uint8_t *comma = memchr(c->p, ',', (size_t)(c->end - c->p));
    const uint8_t *e = comma ? comma : c->end;
    *v = c->p;
    *vlen = (size_t)(e - c->p);
    c->p = e;
}

/* saslname (RFC 5802 5.1): ',' and '=' are sent as "=2C" and "=3D"; any
 * other '=' is malformed. out holds at least len bytes. */
static bool saslname_decode(const uint8_t *in, size_t len, uint8_t *out, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '=') {
            out[o++] = in[i];
            continue;
        }
        if (len - i < 3)
            return false;
        if (in[i + 1] == '2' && in[i + 2] == 'C')
            out[o++] = ',';
        else if (in[i + 1] == '3' && in[i + 2] == 'D')
            out[o++] = '=';
        else
            return false;
        i += 2;
    }
    *outlen = o;
    return true;
}

/* printable = %x21-2B / %x2D-7E (RFC 5802 7): the nonce alphabet. */
static bool printable(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7E || s[i] == ',')
            return false;
    return true;
}

static bool is_alpha(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Optional extensions (RFC 5802 5.1, "extensions"): ',' ALPHA '=' 1*value-char,
 * each up to the next ','. The caller has checked the message is UTF-8. Stops
 * before ",p=" when stop_at_proof. */
static bool skip_extensions(struct cursor *c, bool stop_at_proof)
{
    while (c->p < c->end) {
        if (stop_at_proof && (size_t)(c->end - c->p) >= 3 && memcmp(c->p, ",p=", 3) == 0)
            return true;
        if ((size_t)(c->end - c->p) < 4 || c->p[0] != ',' || !is_alpha(c->p[1]) || c->p[2] != '=')
            return false;
        c->p += 3;
        const uint8_t *v;
        size_t vlen;
        value(c, &v, &vlen);
        if (vlen == 0)
            return false;
    }
    return true;
}

static bool hmac512(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                    uint8_t out[KEY_LEN])
{
    unsigned int n = 0;
    return HMAC(EVP_sha512(), key, key_len, data, len, out, &n) != NULL && n == KEY_LEN;
}

/* What a client-first message carries: views into the message, and the
 * names decoded from saslname. */
struct client_first {
    uint8_t flag;           /* gs2-cbind-flag: 'n', 'y' or 'p' */
    const uint8_t *cb_name; /* with 'p': the channel binding type, as sent */
    size_t cb_name_len;
    const uint8_t *gs2; /* "n,,", "y,,a=...," or "p=tls-exporter,," */
    size_t gs2_len;
    const uint8_t *bare; /* client-first-message-bare */
    size_t bare_len;
    const uint8_t *cnonce;
    size_t cnonce_len;
    uint8_t user[SCRAM_MSG_MAX];
    size_t user_len;
    bool has_authz;
    uint8_t authz[SCRAM_MSG_MAX];
    size_t authz_len;
};

/* cb-name = 1*(ALPHA / DIGIT / "." / "-") (RFC 5802 section 7). */
static bool cb_name_valid(const uint8_t *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_alpha(s[i]) && !(s[i] >= '0' && s[i] <= '9') && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

/* gs2-header = gs2-cbind-flag "," [ authzid ] ","
 * gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
 * Which flag it is, is for channel_check; NULL, or what is wrong. */
static const char *parse_gs2_header(struct cursor *c, struct client_first *cf)
{
    cf->flag = c->p[0];
    cf->cb_name = NULL;
    cf->cb_name_len = 0;
    if (take(c, "p=")) {
        value(c, &cf->cb_name, &cf->cb_name_len);
        if (!cb_name_valid(cf->cb_name, cf->cb_name_len) || !take(c, ","))
            return "channel binding type (p=) is empty or malformed";
    } else if (!take(c, "n,") && !take(c, "y,")) {
        return "gs2 header must start with \"n,\", \"y,\" or \"p=\"";
    }
    if (take(c, "a=")) {
        const uint8_t *v;
        size_t vlen;
        value(c, &v, &vlen);
        if (vlen == 0 || !saslname_decode(v, vlen, cf->authz, &cf->authz_len))
            return "authzid (a=) is empty or has an '=' other than =2C or =3D";
        cf->has_authz = true;
    }
    if (!take(c, ","))
        return "gs2 header must be \"n,,\", \"y,,\", \"p=<type>,,\" or carry a=<authzid> before "
               "the second ','";
    return NULL;
}

/* client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
 * NULL, or what is wrong. */
static const char *parse_client_first_bare(struct cursor *c, struct client_first *cf)
{
    if (take(c, "m="))
        return "mandatory extension (m=) is not supported";
    if (!take(c, "n="))
        return "expected n=<username> after the gs2 header";
    const uint8_t *v;
    size_t vlen;
    value(c, &v, &vlen);
    if (vlen == 0)
        return "empty username (n=)";
    if (!saslname_decode(v, vlen, cf->user, &cf->user_len))
        return "username (n=) has an '=' other than =2C or =3D";
    if (!take(c, ",r="))
        return "expected ,r=<nonce> after the username";
    value(c, &cf->cnonce, &cf->cnonce_len);
    if (cf->cnonce_len == 0)
        return "empty client nonce (r=)";
    if (!printable(cf->cnonce, cf->cnonce_len))
        return "client nonce (r=) holds a character outside printable ASCII";
    if (!skip_extensions(c, false))
        return "malformed extension after the nonce in client-first";
    return NULL;
}

/* The whole client-first message into cf. NULL, or what is wrong. */
static const char *parse_client_first(const uint8_t *in, size_t len, struct client_first *cf)
{
    if (len > SCRAM_MSG_MAX)
        return "client-first message longer than 1024 bytes";
    if (len == 0)
        return "empty client-first message";
    if (!codec_utf8_valid(in, len))
        return "client-first message is not valid UTF-8 (or holds a NUL)";
    cf->has_authz = false;
    cf->authz_len = 0;
    struct cursor c = {in, in + len};
    const char *w = parse_gs2_header(&c, cf);
    if (w)
        return w;
    cf->gs2 = in;
    cf->gs2_len = (size_t)(c.p - in);
    cf->bare = c.p;
    cf->bare_len = (size_t)(c.end - c.p);
    w = parse_client_first_bare(&c, cf);
    if (w)
        return w;
    if (cf->has_authz &&
        (cf->authz_len != cf->user_len || memcmp(cf->authz, cf->user, cf->user_len) != 0))
        return "authzid (a=) differs from the username";
    return NULL;
}

/* The gs2-cbind-flag against the method and the connection (RFC 5802
 * section 6, RFC 9266). ch NULL: no channel binding on this connection.
 * NULL, or what is wrong. */
static const char *channel_check(const struct client_first *cf, const struct scram_channel *ch)
{
    static const char tls_exporter[] = "tls-exporter";
    bool plus = ch && ch->plus;
    bool bindable = ch && ch->exporter_ok;
    if (plus && !bindable)
        return "SCRAM-SHA-512-PLUS on a connection without a tls-exporter channel binding";
    if (cf->flag == 'p') {
        if (!plus)
            return "channel binding (p=) with SCRAM-SHA-512: binding needs SCRAM-SHA-512-PLUS";
        if (cf->cb_name_len != sizeof(tls_exporter) - 1 ||
            memcmp(cf->cb_name, tls_exporter, cf->cb_name_len) != 0)
            return "channel binding type (p=) is not tls-exporter, the only one offered";
        return NULL;
    }
    if (plus)
        return "SCRAM-SHA-512-PLUS needs the gs2 header p=tls-exporter";
    if (cf->flag == 'y' && bindable) {
        /* "y": the client can bind but believes the server cannot. This
         * server can, here, so someone between them hid -PLUS. */
        return "gs2 flag y over a connection that offers SCRAM-SHA-512-PLUS (a downgrade)";
    }
    return NULL;
}

/* What the exchange runs on: the name's SCRAM entry, or made-up values that
 * look like one. Pointers into the table or into the caller's mac. */
struct creds {
    bool known;     /* a SCRAM entry */
    bool has_entry; /* any entry */
    const uint8_t *salt;
    size_t salt_len;
    uint32_t iterations;
    const uint8_t *stored_key;
    const uint8_t *server_key;
};

/* Picks the credentials for user, computing the made-up salt into mac
 * whether or not it is used. False when HMAC fails. */
static bool creds_pick(const struct passwd_db *db, const uint8_t *user, size_t user_len,
                       uint8_t mac[KEY_LEN], struct creds *cr)
{
    /* Both paths compute the made-up salt, so the time spent does not
     * depend on whether the name has a SCRAM entry. */
    const uint8_t *key = passwd_decoy_key(db);
    size_t key_len = KEY_LEN;
    if (!key) {
        key = (const uint8_t *)NO_TABLE_KEY;
        key_len = sizeof(NO_TABLE_KEY) - 1;
    }
    if (!hmac512(key, key_len, user, user_len, mac))
        return false;
    const struct passwd_entry *e = passwd_find(db, user, user_len);
    bool known = e && e->kind == PASSWD_SCRAM_SHA512;
    cr->known = known;
    cr->has_entry = e != NULL;
    cr->salt = known ? e->salt : mac;
    cr->salt_len = known ? e->salt_len : passwd_scram_salt_len(db);
    cr->iterations = known ? e->iterations : passwd_scram_iterations(db);
    /* Made-up keys for the rest: no proof can hash to them, and known is
     * false anyway. */
    cr->stored_key = known ? e->hash : mac;
    cr->server_key = known ? e->server_key : mac;
    ASSERT(cr->salt_len >= 1 && cr->salt_len <= PASSWD_SALT_MAX);
    return true;
}

/* The parts of server-first-message that are not the nonce, as text. */
struct server_first_parts {
    uint8_t salt_b64[((PASSWD_SALT_MAX + 2) / 3) * 4 + 1];
    size_t salt_b64_len;
    char iter[16];
    size_t iter_len;
    size_t len; /* of the whole message */
};

/* server-first-message = "r=" c-nonce s-nonce ",s=" salt ",i=" iteration-count
 * Its parts and length; false when it would pass SCRAM_MSG_MAX. */
static bool server_first_prepare(const struct client_first *cf, size_t server_nonce_len,
                                 const struct creds *cr, struct server_first_parts *sf)
{
    sf->salt_b64_len = EVP_EncodeBlock(sf->salt_b64, cr->salt, cr->salt_len);
    int n = snprintf(sf->iter, sizeof(sf->iter), "%u", (unsigned)cr->iterations);
    ASSERT(n > 0 && (size_t)n < sizeof(sf->iter));
    sf->iter_len = (size_t)n;
    sf->len = 2 + cf->cnonce_len + server_nonce_len + 3 + sf->salt_b64_len + 3 + sf->iter_len;
    return sf->len <= SCRAM_MSG_MAX;
}

/* A state holding copies of the keys, the name, the gs2 header and the
 * start of AuthMessage (client-first-bare "," server-first ","), with room
 * for client-final-without-proof; *server_first points at the server-first
 * message inside it. NULL when out of memory. */
static struct scram *state_create(const struct client_first *cf, const struct creds *cr,
                                  const struct scram_channel *ch, const uint8_t *server_nonce,
                                  size_t server_nonce_len, const struct server_first_parts *sf,
                                  const uint8_t **server_first)
{
    bool plus = ch && ch->plus;
    size_t cbind_len = cf->gs2_len + (plus ? SCRAM_TLS_EXPORTER_LEN : 0);
    size_t auth_cap = cf->bare_len + 1 + sf->len + 1 + SCRAM_MSG_MAX;
    struct scram *s = calloc(1, sizeof(*s) + cf->user_len + cbind_len + auth_cap);
    if (!s)
        return NULL;
    memcpy(s->stored_key, cr->stored_key, KEY_LEN);
    memcpy(s->server_key, cr->server_key, KEY_LEN);
    s->known = cr->known;
    s->has_entry = cr->has_entry;
    s->plus = plus;
    s->user = s->buf;
    s->user_len = cf->user_len;
    memcpy(s->buf, cf->user, cf->user_len);
    uint8_t *cb = s->buf + cf->user_len;
    memcpy(cb, cf->gs2, cf->gs2_len);
    if (plus)
        memcpy(cb + cf->gs2_len, ch->exporter, SCRAM_TLS_EXPORTER_LEN);
    s->cbind = cb;
    s->gs2_len = cf->gs2_len;
    s->cbind_len = cbind_len;
    s->auth = cb + cbind_len;
    s->auth_cap = auth_cap;

    uint8_t *a = s->auth;
    memcpy(a, cf->bare, cf->bare_len);
    a += cf->bare_len;
    *a++ = ',';
    *server_first = a;
    memcpy(a, "r=", 2);
    a += 2;
    s->nonce = a;
    memcpy(a, cf->cnonce, cf->cnonce_len);
    a += cf->cnonce_len;
    memcpy(a, server_nonce, server_nonce_len);
    a += server_nonce_len;
    s->nonce_len = cf->cnonce_len + server_nonce_len;
    memcpy(a, ",s=", 3);
    a += 3;
    memcpy(a, sf->salt_b64, sf->salt_b64_len);
    a += sf->salt_b64_len;
    memcpy(a, ",i=", 3);
    a += 3;
    memcpy(a, sf->iter, sf->iter_len);
    a += sf->iter_len;
    ASSERT((size_t)(a - *server_first) == sf->len);
    *a++ = ',';
    s->auth_len = (size_t)(a - s->auth);
    return s;
}

/* scram_start_with_nonce on a channel (NULL: none). */
static enum scram_result start(const struct passwd_db *db, const uint8_t *in, size_t len,
                               const uint8_t *server_nonce, size_t server_nonce_len,
                               const struct scram_channel *ch, struct scram **state, uint8_t *out,
                               size_t *outlen, const char **why)
{
    struct client_first cf;
    struct creds cr;
    struct server_first_parts sf;
    uint8_t mac[KEY_LEN];
    const uint8_t *server_first = NULL;
    const char *w = NULL;

    ASSERT(state && out && outlen && why);
    ASSERT(server_nonce_len > 0 && printable(server_nonce, server_nonce_len));
    *state = NULL;
    *outlen = 0;

    w = parse_client_first(in, len, &cf);
    if (!w)
        w = channel_check(&cf, ch);
    if (w)
        goto fail;
    if (!creds_pick(db, cf.user, cf.user_len, mac, &cr)) {
        w = "HMAC-SHA512 failed";
        goto fail;
    }
    if (!server_first_prepare(&cf, server_nonce_len, &cr, &sf)) {
        w = "client nonce too long: the server-first message would pass 1024 bytes";
        goto fail;
    }
    struct scram *s =
        state_create(&cf, &cr, ch, server_nonce, server_nonce_len, &sf, &server_first);
    if (!s) {
        w = "out of memory";
        goto fail;
    }
    memcpy(out, server_first, sf.len);
    *outlen = sf.len;
    OPENSSL_cleanse(mac, sizeof(mac));
    *state = s;
    return SCRAM_CONTINUE;

fail:
    OPENSSL_cleanse(mac, sizeof(mac));
    *why = w;
    return SCRAM_FAIL;
}

enum scram_result scram_start_with_nonce(const struct passwd_db *db, const uint8_t *in, size_t len,
                                         const uint8_t *server_nonce, size_t server_nonce_len,
                                         struct scram **state, uint8_t *out, size_t *outlen,
                                         const char **why)
{
    return start(db, in, len, server_nonce, server_nonce_len, NULL, state, out, outlen, why);
}

enum scram_result scram_start_channel(const struct passwd_db *db, const uint8_t *in, size_t len,
                                      const uint8_t random[SCRAM_NONCE_RANDOM_LEN],
                                      const struct scram_channel *ch, struct scram **state,
                                      uint8_t *out, size_t *outlen, const char **why)
{
    uint8_t nonce[SCRAM_NONCE_RANDOM_LEN / 3 * 4 + 1];
    size_t n = EVP_EncodeBlock(nonce, random, SCRAM_NONCE_RANDOM_LEN);
    ASSERT(n == sizeof(nonce) - 1);
    return start(db, in, len, nonce, n, ch, state, out, outlen, why);
}

enum scram_result scram_start(const struct passwd_db *db, const uint8_t *in, size_t len,
                              const uint8_t random[SCRAM_NONCE_RANDOM_LEN], struct scram **state,
                              uint8_t *out, size_t *outlen, const char **why)
{
    return scram_start_channel(db, in, len, random, NULL, state, out, outlen, why);
}

/* c= decoded against what it must be (RFC 5802 section 7): the gs2 header,
 * then with PLUS this connection's tls-exporter value (RFC 9266). The
 * header is public; the binding is compared in constant time. A client on
 * the other side of a man in the middle that holds a certificate the
 * client trusts has another TLS session, so another exporter value, and
 * fails here. NULL, or what is wrong. */
static const char *cbind_check(const struct scram *s, const uint8_t *cbind, size_t len)
{
    if (!s->plus)
        return len == s->gs2_len && memcmp(cbind, s->cbind, len) == 0
                   ? NULL
                   : "channel binding (c=) is not the gs2 header of client-first";
    if (len != s->cbind_len || memcmp(cbind, s->cbind, s->gs2_len) != 0)
        return "channel binding (c=) is not the gs2 header of client-first and a 32-byte "
               "tls-exporter value";
    if (CRYPTO_memcmp(cbind + s->gs2_len, s->cbind + s->gs2_len, SCRAM_TLS_EXPORTER_LEN) != 0)
        return "channel binding (c=) is not this TLS connection's tls-exporter value: the "
               "client's TLS session is another one (a man in the middle?)";
    return NULL;
}

/* client-final-message = client-final-message-without-proof "," proof
 * client-final-message-without-proof = channel-binding "," nonce ["," extensions]
 * Checks the binding and the nonce against s and decodes the proof.
 * NULL with the length of the part without the proof, or what is wrong. */
static const char *parse_client_final(const struct scram *s, const uint8_t *in, size_t len,
                                      size_t *without_proof_len, uint8_t proof[KEY_LEN])
{
    if (len > SCRAM_MSG_MAX)
        return "client-final message longer than 1024 bytes";
    if (len == 0 || !codec_utf8_valid(in, len))
        return "client-final message is empty or not valid UTF-8";
    struct cursor c = {in, in + len};
    const uint8_t *v;
    size_t vlen;
    if (!take(&c, "c="))
        return "client-final must start with c=<channel binding>";
    value(&c, &v, &vlen);
    uint8_t cbind[SCRAM_MSG_MAX];
    size_t cbind_len;
    if (vlen == 0 || EVP_DecodeBase64(cbind, &cbind_len, sizeof(cbind), v, vlen) != 1)
        return "channel binding (c=) is not valid base64";
    const char *w = cbind_check(s, cbind, cbind_len);
    if (w)
        return w;
    if (!take(&c, ",r="))
        return "expected ,r=<nonce> after c= in client-final";
    value(&c, &v, &vlen);
    if (vlen != s->nonce_len || memcmp(v, s->nonce, vlen) != 0)
        return "nonce (r=) is not the one the server sent";
    if (!skip_extensions(&c, true))
        return "malformed extension after the nonce in client-final";
    *without_proof_len = (size_t)(c.p - in);
    if (!take(&c, ",p="))
        return "client-final has no proof (p=)";
    if (memchr(c.p, ',', (size_t)(c.end - c.p)))
        return "proof (p=) must be the last attribute of client-final";
    uint8_t raw[SCRAM_MSG_MAX];
    size_t raw_len;
    if (EVP_DecodeBase64(raw, &raw_len, sizeof(raw), c.p, (size_t)(c.end - c.p)) != 1)
        return "proof (p=) is not valid base64";
    if (raw_len != KEY_LEN)
        return "proof (p=) is not 64 bytes";
    memcpy(proof, raw, KEY_LEN);
    return NULL;
}

/* Checks proof against AuthMessage (s->auth, auth_len bytes) and computes
 * ServerSignature. *match: the proof verifies. False when a hash fails. */
static bool proof_verify(const struct scram *s, size_t auth_len, const uint8_t proof[KEY_LEN],
                         uint8_t server_sig[KEY_LEN], bool *match)
{
    /* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof
     * holds iff H(ClientKey) == StoredKey. */
    uint8_t sig[KEY_LEN];
    uint8_t client_key[KEY_LEN];
    uint8_t stored[KEY_LEN];
    bool ok = hmac512(s->stored_key, KEY_LEN, s->auth, auth_len, sig);
    for (size_t i = 0; i < KEY_LEN; i++)
        client_key[i] = proof[i] ^ sig[i];
    ok = ok && SHA512(client_key, KEY_LEN, stored) != NULL;
    *match = ok && CRYPTO_memcmp(stored, s->stored_key, KEY_LEN) == 0;
    ok = hmac512(s->server_key, KEY_LEN, s->auth, auth_len, server_sig) && ok;
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored, sizeof(stored));
    return ok;
}

enum scram_result scram_finish(struct scram *s, const uint8_t *in, size_t len, uint8_t *out,
                               size_t *outlen, const char **why)
{
    ASSERT(s && out && outlen && why);
    *outlen = 0;
    if (s->spent) {
        *why = "SCRAM exchange already finished";
        return SCRAM_FAIL;
    }
    s->spent = true;
    size_t without_proof_len = 0;
    uint8_t proof[KEY_LEN];
    const char *w = parse_client_final(s, in, len, &without_proof_len, proof);
    if (w) {
        *why = w;
        return SCRAM_FAIL;
    }

    ASSERT(s->auth_len + without_proof_len <= s->auth_cap);
    memcpy(s->auth + s->auth_len, in, without_proof_len);
    size_t auth_len = s->auth_len + without_proof_len;
    uint8_t server_sig[KEY_LEN];
    bool match = false;
    bool ok = proof_verify(s, auth_len, proof, server_sig, &match);

    enum scram_result r = SCRAM_FAIL;
    if (!ok) {
        *why = "HMAC-SHA512 failed";
    } else if (!s->known && !s->has_entry) {
        *why = "unknown user";
    } else if (!s->known) {
        *why = "no SCRAM credentials for this user (a $6$ or $7$ entry; SCRAM needs a "
               "SCRAM-SHA-512 one: ringmq --scram-entry)";
    } else if (!match) {
        *why = "wrong password: the client proof does not verify";
    } else {
        /* server-final-message = "v=" base64(ServerSignature) */
        memcpy(out, "v=", 2);
        *outlen = 2 + EVP_EncodeBlock(out + 2, server_sig, KEY_LEN);
        ASSERT(*outlen <= SCRAM_MSG_MAX);
        r = SCRAM_OK;
    }
    OPENSSL_cleanse(server_sig, sizeof(server_sig));
    return r;
}

const uint8_t *scram_username(const struct scram *s, size_t *len)
{
    ASSERT(s && len);
    *len = s->user_len;
    return s->user;
}

void scram_free(struct scram *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s->stored_key, sizeof(s->stored_key));
    OPENSSL_cleanse(s->server_key, sizeof(s->server_key));
    OPENSSL_cleanse(s->buf, s->user_len + s->cbind_len);
    free(s);
}
