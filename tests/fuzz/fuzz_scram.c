/*
 * libFuzzer target for security/scram.c: a SCRAM-SHA-512 exchange against a
 * fixed password table, with the client's two messages from the input.
 *
 * The table (built once, parsed with passwd_parse) holds
 * "alice" and "a,b=c" with SCRAM-SHA-512 entries whose password the target
 * knows, "bob" with a $7$ entry and "carol" with a $6$ one. The input is:
 *   byte 0: flags: bit 0 no table at all (db NULL), bits 1-2 how the
 *           client-final message is made (0, 3: the rest of the input as is;
 *           1: "c=<gs2>,r=<nonce>" + the rest as extensions + a correct
 *           proof; 2: the same with one bit of the proof flipped), bit 3
 *           a channel byte follows;
 *   with bit 3, one byte: the exchange runs on a channel
 *           (scram_start_channel): bit 0 SCRAM-SHA-512-PLUS, bit 1 the
 *           connection has a tls-exporter value, bit 2 the client's value
 *           has one bit flipped (a man in the middle), bits 3-7 seed the
 *           value's 32 bytes; a built client-final puts the client's value
 *           after the gs2 header in c= with PLUS or with bit 2;
 *   then 2 bytes: the client-first message's length, then the message;
 *   the rest: the client-final message or its extensions.
 *
 * A reference written here from RFC 5802's grammar decides what each step
 * must do, and the code must agree:
 *  - scram_start continues exactly on a well-formed client-first message
 *    (gs2 "n,," or "y,," with an optional a= equal to the name; on a
 *    channel, "p=tls-exporter" in place of n/y with PLUS and an exporter,
 *    nothing with PLUS and none, "y" only without an exporter; n= a
 *    saslname, r= a printable nonce, well-formed extensions, UTF-8, at most
 *    SCRAM_MSG_MAX bytes, a server-first that fits); its server-first is
 *    "r=<client nonce><server nonce>,s=<salt>,i=<count>" with the user's
 *    salt and count, or for a name without a SCRAM entry a made-up salt of
 *    passwd_scram_salt_len bytes and passwd_scram_iterations, the same on
 *    a second try; scram_username is the decoded name;
 *  - scram_finish succeeds exactly when the client-final message is
 *    well-formed, binds the gs2 header (and with PLUS the exporter value)
 *    and the nonce, carries the proof for
 *    the known password and the user has a SCRAM entry; the server-final
 *    message is then "v=" and the right ServerSignature; a second
 *    scram_finish fails.
 * The server nonce is fixed (scram_start_with_nonce, the test hook) so runs
 * repeat; one input in sixteen, and every one on a channel, goes through
 * scram_start / scram_start_channel with fixed "random" bytes, its nonce
 * read back from server-first.
 */
#include <string.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "codec.h"
#include "fuzz_input.h"
#include "passwd.h"
#include "scram.h"

/* Test hooks of security/ (declared in their .c files). */
enum scram_result scram_start_with_nonce(const struct passwd_db *db, const uint8_t *in, size_t len,
                                         const uint8_t *server_nonce, size_t server_nonce_len,
                                         struct scram **state, uint8_t *out, size_t *outlen,
                                         const char **why);

#define KEY  64u
#define MMAX SCRAM_MSG_MAX
#define ITER 4096u

static const char server_nonce[] = "fuzzServerNonce0123456789abcdefX";

struct user {
    const char *name;
    const char *password;
    const char *salt;
    uint8_t client_key[KEY];
    uint8_t stored_key[KEY];
    uint8_t server_key[KEY];
};

static struct user users[] = {
    {"alice", "wonderland", "alice-salt-16by", {0}, {0}, {0}},
    {"a,b=c", "comma", "comma-salt", {0}, {0}, {0}},
};

/* The channel of the input that runs (on_channel), and the value the
 * client exported from its side of the session. */
static bool on_channel;
static struct scram_channel chan;
static uint8_t client_exporter[SCRAM_TLS_EXPORTER_LEN];
static bool client_sends_binding;

/* The table, or NULL while an input runs without one. */
static struct passwd_db *db;
static struct passwd_db *table;

static void hmac(const uint8_t *key, size_t klen, const void *d, size_t len, uint8_t out[KEY])
{
    unsigned int n = 0;
    CHECK(HMAC(EVP_sha512(), key, klen, d, len, out, &n) != NULL && n == KEY);
}

static void setup(void)
{
    static char text[4096];
    size_t o = 0;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        struct user *u = &users[i];
        int n = passwd_scram_line((const uint8_t *)u->name, strlen(u->name),
                                  (const uint8_t *)u->password, strlen(u->password),
                                  (const uint8_t *)u->salt, strlen(u->salt), ITER, text + o,
                                  sizeof(text) - o);
        CHECK(n > 0);
        o += (size_t)n;
        text[o++] = '\n';
        uint8_t salted[KEY];
        CHECK(PKCS5_PBKDF2_HMAC(u->password, strlen(u->password), (const uint8_t *)u->salt,
                                strlen(u->salt), ITER, EVP_sha512(), KEY, salted) == 1);
        hmac(salted, KEY, "Client Key", 10, u->client_key);
        SHA512(u->client_key, KEY, u->stored_key);
        hmac(salted, KEY, "Server Key", 10, u->server_key);
    }
    /* $7$ and $6$ entries: any 64 bytes will do as their hash. */
    uint8_t raw[KEY];
    memset(raw, 7, sizeof(raw));
    char b64[100];
    EVP_EncodeBlock((uint8_t *)b64, raw, sizeof(raw));
    o += (size_t)snprintf(text + o, sizeof(text) - o, "bob:$7$101$c2FsdHNhbHQ=$%s\n", b64);
    o += (size_t)snprintf(text + o, sizeof(text) - o, "carol:$6$c2FsdA==$%s\n", b64);

    char err[256];
    table = passwd_parse("fuzz_scram", (const uint8_t *)text, o, err, sizeof(err));
    if (!table)
        fprintf(stderr, "%s\n", err);
    CHECK(table != NULL);
}

/* ---- The reference: RFC 5802 section 7, split on ','. ---- */

struct part {
    const uint8_t *p;
    size_t len;
};

#define PARTS_MAX (MMAX + 1)

static size_t split(const uint8_t *s, size_t len, struct part *v)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == ',') {
            v[n++] = (struct part){s + start, i - start};
            start = i + 1;
        }
    }
    return n;
}

static bool starts(const struct part *p, const char *lit)
{
    size_t n = strlen(lit);
    return p->len >= n && memcmp(p->p, lit, n) == 0;
}

/* saslname: 1*(value-safe-char / "=2C" / "=3D"), decoded into out. */
static bool ref_saslname(const uint8_t *s, size_t len, uint8_t *out, size_t *olen)
{
    size_t o = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '=') {
            out[o++] = s[i];
        } else if (i + 2 < len && s[i + 1] == '2' && s[i + 2] == 'C') {
            out[o++] = ',';
            i += 2;
        } else if (i + 2 < len && s[i + 1] == '3' && s[i + 2] == 'D') {
            out[o++] = '=';
            i += 2;
        } else {
            return false;
        }
    }
    *olen = o;
    return true;
}

static bool ref_printable(const uint8_t *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7E || s[i] == ',')
            return false;
    return true;
}

/* attr-val: ALPHA "=" 1*value-char */
static bool ref_extension(const struct part *p)
{
    uint8_t c = p->len ? p->p[0] : 0;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return p->len >= 3 && alpha && p->p[1] == '=';
}

struct first {
    bool ok;
    size_t gs2_len;
    uint8_t user[MMAX];
    size_t user_len;
    struct part cnonce;
};

static struct part parts[PARTS_MAX];

static void ref_first(const uint8_t *m, size_t len, struct first *f)
{
    f->ok = false;
    if (len == 0 || len > MMAX || !codec_utf8_valid(m, len))
        return;
    size_t n = split(m, len, parts);
    if (n < 4)
        return;
    bool plus = on_channel && chan.plus;
    bool bindable = on_channel && chan.exporter_ok;
    if (plus && !bindable)
        return;
    if (plus
            ? !(parts[0].len == 14 && memcmp(parts[0].p, "p=tls-exporter", 14) == 0)
            : !(parts[0].len == 1 && (parts[0].p[0] == 'n' || (parts[0].p[0] == 'y' && !bindable))))
        return;
    uint8_t authz[MMAX];
    size_t authz_len = 0;
    bool has_authz = parts[1].len > 0;
    if (has_authz && !(starts(&parts[1], "a=") &&
                       ref_saslname(parts[1].p + 2, parts[1].len - 2, authz, &authz_len)))
        return;
    f->gs2_len = parts[0].len + 1 + parts[1].len + 1;
    if (!starts(&parts[2], "n=") ||
        !ref_saslname(parts[2].p + 2, parts[2].len - 2, f->user, &f->user_len))
        return;
    if (!starts(&parts[3], "r=") || !ref_printable(parts[3].p + 2, parts[3].len - 2))
        return;
    f->cnonce = (struct part){parts[3].p + 2, parts[3].len - 2};
    for (size_t i = 4; i < n; i++)
        if (!ref_extension(&parts[i]))
            return;
    if (has_authz && (authz_len != f->user_len || memcmp(authz, f->user, authz_len) != 0))
        return;
    f->ok = true;
}

static const struct user *scram_user(const uint8_t *name, size_t len)
{
    if (!db)
        return NULL;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
        if (strlen(users[i].name) == len && memcmp(users[i].name, name, len) == 0)
            return &users[i];
    return NULL;
}

static size_t b64_len(size_t raw)
{
    return (raw + 2) / 3 * 4;
}

static size_t digits(uint32_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* The server-first message must be "r=" cnonce snonce ",s=" salt ",i=" n. */
static void check_server_first(const struct first *f, const uint8_t *sf, size_t sflen,
                               const uint8_t *snonce, size_t snlen)
{
    const struct user *u = scram_user(f->user, f->user_len);
    size_t plen = 2 + f->cnonce.len + snlen;
    CHECK(sflen > plen && memcmp(sf, "r=", 2) == 0);
    CHECK(memcmp(sf + 2, f->cnonce.p, f->cnonce.len) == 0);
    CHECK(memcmp(sf + 2 + f->cnonce.len, snonce, snlen) == 0);
    CHECK(starts(&(struct part){sf + plen, sflen - plen}, ",s="));
    const uint8_t *s = sf + plen + 3;
    const uint8_t *comma = memchr(s, ',', sflen - plen - 3);
    CHECK(comma != NULL);
    uint8_t salt[MMAX];
    size_t salt_len;
    CHECK(EVP_DecodeBase64(salt, &salt_len, sizeof(salt), s, (size_t)(comma - s)) == 1);
    char want_it[24];
    uint32_t it = u ? ITER : passwd_scram_iterations(db);
    snprintf(want_it, sizeof(want_it), ",i=%u", (unsigned)it);
    CHECK((size_t)(sf + sflen - comma) == strlen(want_it));
    CHECK(memcmp(comma, want_it, strlen(want_it)) == 0);
    if (u)
        CHECK(salt_len == strlen(u->salt) && memcmp(salt, u->salt, salt_len) == 0);
    else
        CHECK(salt_len == passwd_scram_salt_len(db));
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
static uint8_t auth[4 * MMAX];

static size_t auth_message(const uint8_t *first, size_t flen, const struct first *f,
                           const uint8_t *sf, size_t sflen, const uint8_t *without, size_t wlen)
{
    size_t bare = flen - f->gs2_len;
    CHECK(bare + 1 + sflen + 1 + wlen <= sizeof(auth));
    memcpy(auth, first + f->gs2_len, bare);
    auth[bare] = ',';
    memcpy(auth + bare + 1, sf, sflen);
    auth[bare + 1 + sflen] = ',';
    memcpy(auth + bare + 2 + sflen, without, wlen);
    return bare + 2 + sflen + wlen;
}

/* Does the client-final message m verify? When it does, *alen is the
 * length of the AuthMessage left in auth. */
static bool ref_final(const uint8_t *m, size_t len, const uint8_t *first, size_t flen,
                      const struct first *f, const uint8_t *sf, size_t sflen, size_t *alen)
{
    if (len == 0 || len > MMAX || !codec_utf8_valid(m, len))
        return false;
    size_t n = split(m, len, parts);
    if (n < 3 || !starts(&parts[0], "c=") || parts[0].len == 2)
        return false;
    uint8_t cb[MMAX];
    size_t cblen;
    size_t binding = on_channel && chan.plus ? SCRAM_TLS_EXPORTER_LEN : 0;
    if (EVP_DecodeBase64(cb, &cblen, sizeof(cb), parts[0].p + 2, parts[0].len - 2) != 1 ||
        cblen != f->gs2_len + binding || memcmp(cb, first, f->gs2_len) != 0 ||
        memcmp(cb + f->gs2_len, chan.exporter, binding) != 0)
        return false;
    const uint8_t *nonce_end = memchr(sf, ',', sflen);
    size_t nlen = (size_t)(nonce_end - sf); /* "r=" and the nonce */
    if (parts[1].len != nlen || memcmp(parts[1].p, sf, nlen) != 0)
        return false;
    size_t k = 2;
    while (k < n && !starts(&parts[k], "p=")) {
        if (!ref_extension(&parts[k]))
            return false;
        k++;
    }
    if (k + 1 != n) /* no proof, or not the last attribute */
        return false;
    uint8_t proof[MMAX];
    size_t plen;
    if (EVP_DecodeBase64(proof, &plen, sizeof(proof), parts[k].p + 2, parts[k].len - 2) != 1 ||
        plen != KEY)
        return false;
    const struct user *u = scram_user(f->user, f->user_len);
    if (!u)
        return false;
    size_t wlen = (size_t)(parts[k].p - 1 - m);
    *alen = auth_message(first, flen, f, sf, sflen, m, wlen);
    uint8_t sig[KEY], key[KEY], stored[KEY];
    hmac(u->stored_key, KEY, auth, *alen, sig);
    for (size_t i = 0; i < KEY; i++)
        key[i] = proof[i] ^ sig[i];
    SHA512(key, KEY, stored);
    return memcmp(stored, u->stored_key, KEY) == 0;
}

static uint8_t final_msg[8 * MMAX];

/* "c=<b64 gs2>,r=<nonce>" + tail + ",p=<proof>", with the proof for the
 * user's password over the resulting AuthMessage (one bit off if corrupt). */
static size_t build_final(const uint8_t *first, size_t flen, const struct first *f,
                          const uint8_t *sf, size_t sflen, const uint8_t *tail, size_t tlen,
                          bool corrupt)
{
    uint8_t *o = final_msg;
    memcpy(o, "c=", 2);
    o += 2;
    uint8_t cb[MMAX + SCRAM_TLS_EXPORTER_LEN];
    memcpy(cb, first, f->gs2_len);
    size_t cblen = f->gs2_len;
    if (client_sends_binding) {
        memcpy(cb + cblen, client_exporter, SCRAM_TLS_EXPORTER_LEN);
        cblen += SCRAM_TLS_EXPORTER_LEN;
    }
    o += EVP_EncodeBlock(o, cb, cblen);
    *o++ = ',';
    const uint8_t *nonce_end = memchr(sf, ',', sflen);
    memcpy(o, sf, (size_t)(nonce_end - sf));
    o += nonce_end - sf;
    memcpy(o, tail, tlen);
    o += tlen;
    size_t wlen = (size_t)(o - final_msg);

    uint8_t proof[KEY] = {0};
    const struct user *u = scram_user(f->user, f->user_len);
    if (u) {
        size_t alen = auth_message(first, flen, f, sf, sflen, final_msg, wlen);
        uint8_t sig[KEY];
        hmac(u->stored_key, KEY, auth, alen, sig);
        for (size_t i = 0; i < KEY; i++)
            proof[i] = u->client_key[i] ^ sig[i];
    }
    if (corrupt)
        proof[tlen % KEY] ^= (uint8_t)(1u << tlen % 8);
    memcpy(o, ",p=", 3);
    o += 3;
    o += EVP_EncodeBlock(o, proof, KEY);
    return (size_t)(o - final_msg);
}

/* The input's channel byte (see the top). */
static void channel_from(uint8_t cm)
{
    chan.plus = cm & 1;
    chan.exporter_ok = cm & 2;
    for (size_t i = 0; i < SCRAM_TLS_EXPORTER_LEN; i++)
        chan.exporter[i] = (uint8_t)((cm >> 3) * 29 + i * 37);
    memcpy(client_exporter, chan.exporter, sizeof(client_exporter));
    if (cm & 4)
        client_exporter[(cm >> 3) % SCRAM_TLS_EXPORTER_LEN] ^= 1u << (cm & 7);
    client_sends_binding = chan.plus || (cm & 4);
}

/* The runtime draws the nonce's random bytes; any fixed bytes will do
 * here. */
static const uint8_t nonce_bytes[SCRAM_NONCE_RANDOM_LEN] = {1, 2, 3};

static enum scram_result start_on(const struct passwd_db *d, const uint8_t *first, size_t flen,
                                  bool fixed_nonce, struct scram **st, uint8_t *sf, size_t *sflen,
                                  const char **why)
{
    if (fixed_nonce)
        return scram_start_with_nonce(d, first, flen, (const uint8_t *)server_nonce,
                                      strlen(server_nonce), st, sf, sflen, why);
    if (on_channel)
        return scram_start_channel(d, first, flen, nonce_bytes, &chan, st, sf, sflen, why);
    return scram_start(d, first, flen, nonce_bytes, st, sf, sflen, why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!table)
        setup();
    struct fuzz_in in = {data, size};
    uint8_t flags = in_u8(&in);
    db = (flags & 1) ? NULL : table;
    const struct passwd_db *d = db;
    unsigned mode = flags >> 1 & 3;
    on_channel = flags & 8;
    memset(&chan, 0, sizeof(chan));
    client_sends_binding = false;
    if (on_channel)
        channel_from(in_u8(&in));
    bool random_nonce = (flags >> 4) == 0xF || on_channel;
    size_t flen;
    const uint8_t *first = in_bytes(&in, in_u16(&in) % (MMAX + 64), &flen);
    size_t tlen;
    const uint8_t *rest = in_bytes(&in, 2 * MMAX, &tlen);

    static struct first f;
    ref_first(first, flen, &f);
    if (f.ok) {
        const struct user *u = scram_user(f.user, f.user_len);
        uint32_t it = u ? ITER : passwd_scram_iterations(d);
        size_t salt = u ? strlen(u->salt) : passwd_scram_salt_len(d);
        size_t sf_len =
            2 + f.cnonce.len + strlen(server_nonce) + 3 + b64_len(salt) + 3 + digits(it);
        f.ok = sf_len <= MMAX;
    }

    struct scram *st = NULL;
    uint8_t sf[MMAX];
    size_t sflen = 12345;
    const char *why = NULL;
    enum scram_result r = start_on(d, first, flen, !random_nonce, &st, sf, &sflen, &why);
    if (r != SCRAM_CONTINUE) {
        if (f.ok)
            fprintf(stderr, "scram_start refused a valid client-first: %s\n", why);
        CHECK(!f.ok);
        CHECK(r == SCRAM_FAIL && st == NULL && sflen == 0 && why != NULL && why[0] != '\0');
        return 0;
    }
    CHECK(f.ok);
    CHECK(st != NULL && sflen <= MMAX);
    const uint8_t *snonce = (const uint8_t *)server_nonce;
    size_t snlen = strlen(server_nonce);
    if (random_nonce) {
        snlen = 32;
        CHECK(sflen > 2 + f.cnonce.len + snlen);
        snonce = sf + 2 + f.cnonce.len;
        CHECK(ref_printable(snonce, snlen));
    }
    check_server_first(&f, sf, sflen, snonce, snlen);
    size_t ulen;
    const uint8_t *uname = scram_username(st, &ulen);
    CHECK(ulen == f.user_len && memcmp(uname, f.user, ulen) == 0);
    /* The same question gets the same answer, made-up salts included. */
    struct scram *st2 = NULL;
    uint8_t sf2[MMAX];
    size_t sflen2 = 0;
    CHECK(start_on(d, first, flen, !random_nonce, &st2, sf2, &sflen2, &why) == SCRAM_CONTINUE);
    CHECK(sflen2 == sflen && memcmp(sf, sf2, sflen) == 0);
    scram_free(st2);

    const uint8_t *fin = rest;
    size_t finlen = tlen;
    if (mode == 1 || mode == 2) {
        finlen = build_final(first, flen, &f, sf, sflen, rest, tlen, mode == 2);
        fin = final_msg;
    }
    size_t alen = 0;
    bool want = ref_final(fin, finlen, first, flen, &f, sf, sflen, &alen);
    uint8_t out[MMAX];
    size_t outlen = 12345;
    why = NULL;
    r = scram_finish(st, fin, finlen, out, &outlen, &why);
    if (want != (r == SCRAM_OK))
        fprintf(stderr, "scram_finish: %s, the reference says %s\n", r == SCRAM_OK ? "ok" : why,
                want ? "ok" : "fail");
    CHECK(want == (r == SCRAM_OK));
    if (r == SCRAM_OK) {
        const struct user *u = scram_user(f.user, f.user_len);
        uint8_t sig[KEY];
        hmac(u->server_key, KEY, auth, alen, sig);
        uint8_t v[2 + 90];
        memcpy(v, "v=", 2);
        size_t vlen = 2 + EVP_EncodeBlock(v + 2, sig, KEY);
        CHECK(outlen == vlen && memcmp(out, v, vlen) == 0);
    } else {
        CHECK(r == SCRAM_FAIL && why != NULL && why[0] != '\0');
    }
    /* A state is spent after one scram_finish. */
    CHECK(scram_finish(st, fin, finlen, out, &outlen, &why) == SCRAM_FAIL);
    scram_free(st);
    return 0;
}
