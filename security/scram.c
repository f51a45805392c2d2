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
 * scram_finish does the same work and fails. The only process-wide state is
 * a secret drawn once with RAND_bytes that stands in for the decoy key when
 * there is no table at all.
 *
 * Parsing is strict: the messages are short, fully specified, and come from
 * an unauthenticated peer.
 */
#include "scram.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "codec.h"

#define ASSERT(x) assert(x)

#define KEY_LEN 64u /* SHA-512 output */
/* Random bytes in the server's half of the nonce: 32 base64 characters, no
 * padding. */
#define SERVER_NONCE_RAW_LEN 24u

_Static_assert(SERVER_NONCE_RAW_LEN % 3 == 0, "the server nonce has no '=' padding");
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
    const uint8_t *user;
    size_t user_len;
    const uint8_t *gs2; /* "n,," or "y,,a=..." as the client sent it */
    size_t gs2_len;
    const uint8_t *nonce; /* client nonce + server nonce, inside auth */
    size_t nonce_len;
    /* AuthMessage: client-first-bare "," server-first "," and, once
     * scram_finish has it, client-final-without-proof. */
    uint8_t *auth;
    size_t auth_len;
    size_t auth_cap;
    uint8_t buf[]; /* user, gs2, auth */
};

static uint8_t process_secret[KEY_LEN];
static pthread_once_t process_secret_once = PTHREAD_ONCE_INIT;

static void process_secret_init(void)
{
    /* A guessable secret would let a client recompute made-up salts and so
     * tell unknown names from real ones: no fallback. */
    if (RAND_bytes(process_secret, sizeof(process_secret)) != 1)
        abort();
}

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

enum scram_result scram_start_with_nonce(const struct passwd_db *db, const uint8_t *in, size_t len,
                                         const uint8_t *server_nonce, size_t server_nonce_len,
                                         struct scram **state, uint8_t *out, size_t *outlen,
                                         const char **why)
{
    struct scram *s = NULL;
    uint8_t user[SCRAM_MSG_MAX];
    size_t user_len = 0;
    uint8_t authz[SCRAM_MSG_MAX];
    size_t authz_len = 0;
    bool has_authz = false;
    uint8_t mac[KEY_LEN];
    const char *w = NULL;

    ASSERT(state && out && outlen && why);
    ASSERT(server_nonce_len > 0 && printable(server_nonce, server_nonce_len));
    *state = NULL;
    *outlen = 0;

    if (len > SCRAM_MSG_MAX) {
        w = "client-first message longer than 1024 bytes";
        goto fail;
    }
    if (len == 0) {
        w = "empty client-first message";
        goto fail;
    }
    if (!codec_utf8_valid(in, len)) {
        w = "client-first message is not valid UTF-8 (or holds a NUL)";
        goto fail;
    }

    /* gs2-header = gs2-cbind-flag "," [ authzid ] "," */
    struct cursor c = {in, in + len};
    if (c.p[0] == 'p') {
        w = "channel binding (p=) is not supported";
        goto fail;
    }
    if (!take(&c, "n,") && !take(&c, "y,")) {
        w = "gs2 header must start with \"n,\" or \"y,\"";
        goto fail;
    }
    if (take(&c, "a=")) {
        const uint8_t *v;
        size_t vlen;
        value(&c, &v, &vlen);
        if (vlen == 0 || !saslname_decode(v, vlen, authz, &authz_len)) {
            w = "authzid (a=) is empty or has an '=' other than =2C or =3D";
            goto fail;
        }
        has_authz = true;
    }
    if (!take(&c, ",")) {
        w = "gs2 header must be \"n,,\", \"y,,\" or carry a=<authzid> before the second ','";
        goto fail;
    }
    const uint8_t *gs2 = in;
    size_t gs2_len = (size_t)(c.p - in);
    const uint8_t *bare = c.p;
    size_t bare_len = (size_t)(c.end - c.p);

    /* client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions] */
    if (take(&c, "m=")) {
        w = "mandatory extension (m=) is not supported";
        goto fail;
    }
    if (!take(&c, "n=")) {
        w = "expected n=<username> after the gs2 header";
        goto fail;
    }
    {
        const uint8_t *v;
        size_t vlen;
        value(&c, &v, &vlen);
        if (vlen == 0) {
            w = "empty username (n=)";
            goto fail;
        }
        if (!saslname_decode(v, vlen, user, &user_len)) {
            w = "username (n=) has an '=' other than =2C or =3D";
            goto fail;
        }
    }
    if (!take(&c, ",r=")) {
        w = "expected ,r=<nonce> after the username";
        goto fail;
    }
    const uint8_t *cnonce;
    size_t cnonce_len;
    value(&c, &cnonce, &cnonce_len);
    if (cnonce_len == 0) {
        w = "empty client nonce (r=)";
        goto fail;
    }
    if (!printable(cnonce, cnonce_len)) {
        w = "client nonce (r=) holds a character outside printable ASCII";
        goto fail;
    }
    if (!skip_extensions(&c, false)) {
        w = "malformed extension after the nonce in client-first";
        goto fail;
    }
    if (has_authz && (authz_len != user_len || memcmp(authz, user, user_len) != 0)) {
        w = "authzid (a=) differs from the username";
        goto fail;
    }

    /* Both paths compute the made-up salt, so the time spent does not
     * depend on whether the name has a SCRAM entry. */
    const uint8_t *key = passwd_decoy_key(db);
    if (!key) {
        pthread_once(&process_secret_once, process_secret_init);
        key = process_secret;
    }
    if (!hmac512(key, KEY_LEN, user, user_len, mac)) {
        w = "HMAC-SHA512 failed";
        goto fail;
    }
    const struct passwd_entry *e = passwd_find(db, user, user_len);
    bool known = e && e->kind == PASSWD_SCRAM_SHA512;
    const uint8_t *salt = known ? e->salt : mac;
    size_t salt_len = known ? e->salt_len : passwd_scram_salt_len(db);
    uint32_t iterations = known ? e->iterations : passwd_scram_iterations(db);
    /* Made-up keys for the rest: no proof can hash to them, and known is
     * false anyway. */
    const uint8_t *stored_key = known ? e->hash : mac;
    const uint8_t *server_key = known ? e->server_key : mac;
    ASSERT(salt_len >= 1 && salt_len <= PASSWD_SALT_MAX);

    /* server-first-message = "r=" c-nonce s-nonce ",s=" salt ",i=" iteration-count */
    uint8_t salt_b64[((PASSWD_SALT_MAX + 2) / 3) * 4 + 1];
    size_t salt_b64_len = EVP_EncodeBlock(salt_b64, salt, salt_len);
    char iter_txt[16];
    int iter_len = snprintf(iter_txt, sizeof(iter_txt), "%u", (unsigned)iterations);
    ASSERT(iter_len > 0 && (size_t)iter_len < sizeof(iter_txt));
    size_t sf_len = 2 + cnonce_len + server_nonce_len + 3 + salt_b64_len + 3 + (size_t)iter_len;
    if (sf_len > SCRAM_MSG_MAX) {
        w = "client nonce too long: the server-first message would pass 1024 bytes";
        goto fail;
    }

    size_t auth_cap = bare_len + 1 + sf_len + 1 + SCRAM_MSG_MAX;
    s = calloc(1, sizeof(*s) + user_len + gs2_len + auth_cap);
    if (!s) {
        w = "out of memory";
        goto fail;
    }
    memcpy(s->stored_key, stored_key, KEY_LEN);
    memcpy(s->server_key, server_key, KEY_LEN);
    s->known = known;
    s->has_entry = e != NULL;
    s->user = s->buf;
    s->user_len = user_len;
    memcpy(s->buf, user, user_len);
    s->gs2 = s->buf + user_len;
    s->gs2_len = gs2_len;
    memcpy(s->buf + user_len, gs2, gs2_len);
    s->auth = s->buf + user_len + gs2_len;
    s->auth_cap = auth_cap;

    uint8_t *a = s->auth;
    memcpy(a, bare, bare_len);
    a += bare_len;
    *a++ = ',';
    uint8_t *sf = a;
    memcpy(a, "r=", 2);
    a += 2;
    s->nonce = a;
    memcpy(a, cnonce, cnonce_len);
    a += cnonce_len;
    memcpy(a, server_nonce, server_nonce_len);
    a += server_nonce_len;
    s->nonce_len = cnonce_len + server_nonce_len;
    memcpy(a, ",s=", 3);
    a += 3;
    memcpy(a, salt_b64, salt_b64_len);
    a += salt_b64_len;
    memcpy(a, ",i=", 3);
    a += 3;
    memcpy(a, iter_txt, (size_t)iter_len);
    a += iter_len;
    ASSERT((size_t)(a - sf) == sf_len);
    *a++ = ',';
    s->auth_len = (size_t)(a - s->auth);

    memcpy(out, sf, sf_len);
    *outlen = sf_len;
    OPENSSL_cleanse(mac, sizeof(mac));
    *state = s;
    return SCRAM_CONTINUE;

fail:
    OPENSSL_cleanse(mac, sizeof(mac));
    scram_free(s);
    *why = w;
    return SCRAM_FAIL;
}

enum scram_result scram_start(const struct passwd_db *db, const uint8_t *in, size_t len,
                              struct scram **state, uint8_t *out, size_t *outlen, const char **why)
{
    uint8_t raw[SERVER_NONCE_RAW_LEN];
    uint8_t nonce[SERVER_NONCE_RAW_LEN / 3 * 4 + 1];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        *state = NULL;
        *outlen = 0;
        *why = "RAND_bytes failed";
        return SCRAM_FAIL;
    }
    size_t n = EVP_EncodeBlock(nonce, raw, sizeof(raw));
    ASSERT(n == sizeof(nonce) - 1);
    return scram_start_with_nonce(db, in, len, nonce, n, state, out, outlen, why);
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
    if (len > SCRAM_MSG_MAX) {
        *why = "client-final message longer than 1024 bytes";
        return SCRAM_FAIL;
    }
    if (len == 0 || !codec_utf8_valid(in, len)) {
        *why = "client-final message is empty or not valid UTF-8";
        return SCRAM_FAIL;
    }

    /* client-final-message-without-proof = channel-binding "," nonce ["," extensions] */
    struct cursor c = {in, in + len};
    const uint8_t *v;
    size_t vlen;
    if (!take(&c, "c=")) {
        *why = "client-final must start with c=<channel binding>";
        return SCRAM_FAIL;
    }
    value(&c, &v, &vlen);
    uint8_t cbind[SCRAM_MSG_MAX];
    size_t cbind_len;
    if (vlen == 0 || EVP_DecodeBase64(cbind, &cbind_len, sizeof(cbind), v, vlen) != 1) {
        *why = "channel binding (c=) is not valid base64";
        return SCRAM_FAIL;
    }
    if (cbind_len != s->gs2_len || memcmp(cbind, s->gs2, cbind_len) != 0) {
        *why = "channel binding (c=) is not the gs2 header of client-first";
        return SCRAM_FAIL;
    }
    if (!take(&c, ",r=")) {
        *why = "expected ,r=<nonce> after c= in client-final";
        return SCRAM_FAIL;
    }
    value(&c, &v, &vlen);
    if (vlen != s->nonce_len || memcmp(v, s->nonce, vlen) != 0) {
        *why = "nonce (r=) is not the one the server sent";
        return SCRAM_FAIL;
    }
    if (!skip_extensions(&c, true)) {
        *why = "malformed extension after the nonce in client-final";
        return SCRAM_FAIL;
    }
    size_t without_proof_len = (size_t)(c.p - in);
    if (!take(&c, ",p=")) {
        *why = "client-final has no proof (p=)";
        return SCRAM_FAIL;
    }
    if (memchr(c.p, ',', (size_t)(c.end - c.p))) {
        *why = "proof (p=) must be the last attribute of client-final";
        return SCRAM_FAIL;
    }
    uint8_t proof[SCRAM_MSG_MAX];
    size_t proof_len;
    if (EVP_DecodeBase64(proof, &proof_len, sizeof(proof), c.p, (size_t)(c.end - c.p)) != 1) {
        *why = "proof (p=) is not valid base64";
        return SCRAM_FAIL;
    }
    if (proof_len != KEY_LEN) {
        *why = "proof (p=) is not 64 bytes";
        return SCRAM_FAIL;
    }

    ASSERT(s->auth_len + without_proof_len <= s->auth_cap);
    memcpy(s->auth + s->auth_len, in, without_proof_len);
    size_t auth_len = s->auth_len + without_proof_len;

    /* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof
     * holds iff H(ClientKey) == StoredKey. */
    uint8_t sig[KEY_LEN];
    uint8_t client_key[KEY_LEN];
    uint8_t stored[KEY_LEN];
    uint8_t server_sig[KEY_LEN];
    bool ok = hmac512(s->stored_key, KEY_LEN, s->auth, auth_len, sig);
    for (size_t i = 0; i < KEY_LEN; i++)
        client_key[i] = proof[i] ^ sig[i];
    ok = ok && SHA512(client_key, KEY_LEN, stored) != NULL;
    bool match = ok && CRYPTO_memcmp(stored, s->stored_key, KEY_LEN) == 0;
    ok = hmac512(s->server_key, KEY_LEN, s->auth, auth_len, server_sig) && ok;
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored, sizeof(stored));

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
    free(s);
}
