/*
 * scram: SCRAM-SHA-512 server side, driven by a client written here from
 * RFC 5802 with BoringSSL's PBKDF2, HMAC and SHA-512. The users and
 * passwords are data/passwd's (see passwd_test.c). SCRAM-SHA-512 entries,
 * the only ones SCRAM works from: sasha "correct horse", s,a=sha "dave-pw",
 * sören "ünïcode", scram-empty "" (4096 rounds, 16-byte salts). Others:
 * alice "correct horse" ($7$, 101 rounds, 12-byte salt), bob "hunter2" ($6$).
 *
 * kat_* checks the server against values computed independently with
 * Python's hashlib.pbkdf2_hmac and hmac for a fixed salt, iteration count,
 * password and nonces.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "scram.h"

#define DATA_FILE TEST_DATA_DIR "/passwd"
/* 64 bytes of 'h' in base64: a hash that no password gives. */
#define FAKE_HASH_B64                                                                              \
    "aGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaA=="

/* Internal entry point of scram.c: scram_start with a fixed server nonce. */
enum scram_result scram_start_with_nonce(const struct passwd_db *db, const uint8_t *in, size_t len,
                                         const uint8_t *server_nonce, size_t server_nonce_len,
                                         struct scram **state, uint8_t *out, size_t *outlen,
                                         const char **why);

/* passwd_scram_line with a fresh random salt, as ringmq --scram-entry
 * draws it. */
static int scram_line(const uint8_t *user, size_t ulen, const uint8_t *pw, size_t pwlen,
                      uint32_t iterations, char *out, size_t outlen)
{
    uint8_t salt[PASSWD_SCRAM_SALT_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return -1;
    return passwd_scram_line(user, ulen, pw, pwlen, salt, sizeof(salt), iterations, out, outlen);
}

/* scram_start with fresh random bytes for the server nonce, as the broker
 * draws them. */
/* The channel the server side runs on (scram_start_channel), NULL: none
 * (scram_start); and the binding data the test's client puts after the gs2
 * header in c= (RFC 5802 section 7). Both reset by db_init. */
static const struct scram_channel *server_channel;
static uint8_t client_binding[2 * SCRAM_TLS_EXPORTER_LEN];
static size_t client_binding_len;

static enum scram_result scram_begin(const struct passwd_db *d, const uint8_t *in, size_t len,
                                     struct scram **state, uint8_t *out, size_t *outlen,
                                     const char **why)
{
    uint8_t random[SCRAM_NONCE_RANDOM_LEN];
    cr_assert_eq(RAND_bytes(random, sizeof(random)), 1);
    if (server_channel)
        return scram_start_channel(d, in, len, random, server_channel, state, out, outlen, why);
    return scram_start(d, in, len, random, state, out, outlen, why);
}

static struct passwd_db *db;

/* data/passwd, read with stdio and parsed under its path. */
static struct passwd_db *load_data_file(void)
{
    FILE *f = fopen(DATA_FILE, "rb");
    cr_assert_not_null(f, "%s", DATA_FILE);
    static char buf[64 * 1024];
    size_t n = fread(buf, 1, sizeof(buf), f);
    cr_assert(feof(f) && !ferror(f), "%s: read error or too large", DATA_FILE);
    fclose(f);
    char err[256] = "";
    struct passwd_db *d = passwd_parse(DATA_FILE, (const uint8_t *)buf, n, err, sizeof(err));
    cr_assert_not_null(d, "%s", err);
    return d;
}

static void db_init(void)
{
    db = load_data_file();
    server_channel = NULL;
    client_binding_len = 0;
}

static void db_fini(void)
{
    passwd_free(db);
    db = NULL;
}

TestSuite(scram, .init = db_init, .fini = db_fini);

/* A table parsed from text. */
static struct passwd_db *parse_text(const char *text, size_t len)
{
    char err[256] = "";
    struct passwd_db *d = passwd_parse("test.passwd", (const uint8_t *)text, len, err, sizeof(err));
    cr_assert_not_null(d, "%s", err);
    return d;
}

/* ------------------------------------------------------------------------ */
/* The client                                                                */
/* ------------------------------------------------------------------------ */

struct client {
    char gs2[256];
    char bare[2048];
    char server_first[2048];
    char nonce[2048]; /* combined */
    uint8_t salt[128];
    size_t salt_len;
    unsigned iterations;
    char final[8192];
    uint8_t server_sig[64];
};

static void b64(char *out, const uint8_t *in, size_t len)
{
    EVP_EncodeBlock((uint8_t *)out, in, len);
}

static enum scram_result start_msg(const struct passwd_db *d, const char *msg, struct scram **s,
                                   char *out, const char **why)
{
    uint8_t buf[SCRAM_MSG_MAX];
    size_t len = 12345;
    *why = NULL;
    enum scram_result r = scram_begin(d, (const uint8_t *)msg, strlen(msg), s, buf, &len, why);
    if (r == SCRAM_CONTINUE) {
        cr_assert_leq(len, SCRAM_MSG_MAX);
        cr_assert_not_null(*s);
        memcpy(out, buf, len);
        out[len] = 0;
    } else {
        cr_assert_eq(r, SCRAM_FAIL);
        cr_assert_null(*s);
        cr_assert_eq(len, 0);
        cr_assert_not_null(*why);
    }
    return r;
}

/* Takes nonce, salt and iterations from server-first; with check_nonce,
 * also that the server's half is 32 base64 characters. */
static void parse_server_first_as(struct client *c, const char *cnonce, bool check_nonce)
{
    const char *sf = c->server_first;
    size_t cn = strlen(cnonce);
    cr_assert_eq(strncmp(sf, "r=", 2), 0, "%s", sf);
    cr_assert_eq(strncmp(sf + 2, cnonce, cn), 0, "%s", sf);
    const char *comma = strchr(sf, ',');
    cr_assert_not_null(comma);
    size_t nlen = (size_t)(comma - (sf + 2));
    cr_assert_gt(nlen, cn);
    if (check_nonce)
        cr_assert_eq(nlen, cn + 32, "server nonce is 32 characters: %s", sf);
    for (size_t i = cn; check_nonce && i < nlen; i++) {
        char ch = sf[2 + i];
        cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", ch),
                  "%s", sf);
    }
    memcpy(c->nonce, sf + 2, nlen);
    c->nonce[nlen] = 0;
    cr_assert_eq(strncmp(comma, ",s=", 3), 0, "%s", sf);
    const char *s = comma + 3;
    const char *icomma = strchr(s, ',');
    cr_assert_not_null(icomma);
    cr_assert_eq(EVP_DecodeBase64(c->salt, &c->salt_len, sizeof(c->salt), (const uint8_t *)s,
                                  (size_t)(icomma - s)),
                 1, "%s", sf);
    cr_assert_eq(strncmp(icomma, ",i=", 3), 0, "%s", sf);
    char *end;
    unsigned long it = strtoul(icomma + 3, &end, 10);
    cr_assert_eq(*end, 0, "nothing after i=: %s", sf);
    cr_assert_gt(it, 0);
    c->iterations = (unsigned)it;
}

static void parse_server_first(struct client *c, const char *cnonce)
{
    parse_server_first_as(c, cnonce, true);
}

static void hmac(const uint8_t *key, size_t key_len, const void *data, size_t len, uint8_t *out)
{
    unsigned n = 0;
    cr_assert_not_null(HMAC(EVP_sha512(), key, key_len, data, len, out, &n));
    cr_assert_eq(n, 64);
}

/* Builds client-final ("<cfwp>,p=<proof>") from ClientKey and StoredKey, and
 * the server signature to expect from ServerKey (zero when NULL). c= is
 * base64(cbind_gs2 + client_binding); cfwp_extra goes after the nonce (an
 * extension, or "" for none). */
static void build_final_keys(struct client *c, const uint8_t client_key[64],
                             const uint8_t stored_key[64], const uint8_t *server_key,
                             const char *cbind_gs2, const char *cfwp_extra)
{
    uint8_t client_sig[64];
    uint8_t proof[64];
    uint8_t cbind[256 + sizeof(client_binding)];
    size_t gs2_len = strlen(cbind_gs2);
    cr_assert_leq(gs2_len, 256);
    memcpy(cbind, cbind_gs2, gs2_len);
    memcpy(cbind + gs2_len, client_binding, client_binding_len);
    char cb[512];
    b64(cb, cbind, gs2_len + client_binding_len);
    char cfwp[4096];
    snprintf(cfwp, sizeof(cfwp), "c=%s,r=%s%s", cb, c->nonce, cfwp_extra);
    static char auth[8192];
    snprintf(auth, sizeof(auth), "%s,%s,%s", c->bare, c->server_first, cfwp);
    hmac(stored_key, 64, auth, strlen(auth), client_sig);
    for (int i = 0; i < 64; i++)
        proof[i] = client_key[i] ^ client_sig[i];
    memset(c->server_sig, 0, sizeof(c->server_sig));
    if (server_key)
        hmac(server_key, 64, auth, strlen(auth), c->server_sig);
    char pb[128];
    b64(pb, proof, 64);
    snprintf(c->final, sizeof(c->final), "%s,p=%s", cfwp, pb);
}

/* The same from SaltedPassword (RFC 5802 section 3). */
static void build_final_salted(struct client *c, const uint8_t salted[64], const char *cbind_gs2,
                               const char *cfwp_extra)
{
    uint8_t client_key[64];
    uint8_t stored_key[64];
    uint8_t server_key[64];
    hmac(salted, 64, "Client Key", 10, client_key);
    SHA512(client_key, 64, stored_key);
    hmac(salted, 64, "Server Key", 10, server_key);
    build_final_keys(c, client_key, stored_key, server_key, cbind_gs2, cfwp_extra);
}

/* The same from the password, with the salt and count server-first gave. */
static void build_final(struct client *c, const char *password, const char *cbind_gs2,
                        const char *cfwp_extra)
{
    uint8_t salted[64];
    cr_assert_eq(PKCS5_PBKDF2_HMAC(password, strlen(password), c->salt, c->salt_len, c->iterations,
                                   EVP_sha512(), 64, salted),
                 1);
    build_final_salted(c, salted, cbind_gs2, cfwp_extra);
}

/* A client that claims client_key is ClientKey and signs with stored_key. */
static void build_final_client_key(struct client *c, const uint8_t client_key[64],
                                   const uint8_t stored_key[64], const char *cbind_gs2)
{
    build_final_keys(c, client_key, stored_key, NULL, cbind_gs2, "");
}

static enum scram_result finish_msg(struct scram *s, const char *msg, char *out, const char **why)
{
    uint8_t buf[SCRAM_MSG_MAX];
    size_t len = 12345;
    *why = NULL;
    enum scram_result r = scram_finish(s, (const uint8_t *)msg, strlen(msg), buf, &len, why);
    if (r == SCRAM_OK) {
        cr_assert_leq(len, SCRAM_MSG_MAX);
        memcpy(out, buf, len);
        out[len] = 0;
    } else {
        cr_assert_eq(r, SCRAM_FAIL);
        cr_assert_eq(len, 0);
        cr_assert_not_null(*why);
        out[0] = 0;
    }
    return r;
}

/* Runs client-first up to server-first against d. gs2 is "n,,", "y,," or
 * "n,a=..,". */
static struct scram *begin_on(const struct passwd_db *d, struct client *c, const char *gs2,
                              const char *saslname, const char *cnonce, const char *bare_extra)
{
    snprintf(c->gs2, sizeof(c->gs2), "%s", gs2);
    snprintf(c->bare, sizeof(c->bare), "n=%s,r=%s%s", saslname, cnonce, bare_extra);
    char first[4096];
    snprintf(first, sizeof(first), "%s%s", gs2, c->bare);
    struct scram *s = NULL;
    const char *why;
    enum scram_result r = start_msg(d, first, &s, c->server_first, &why);
    cr_assert_eq(r, SCRAM_CONTINUE, "%s: %s", first, why);
    parse_server_first(c, cnonce);
    return s;
}

static struct scram *begin(struct client *c, const char *gs2, const char *saslname,
                           const char *cnonce, const char *bare_extra)
{
    return begin_on(db, c, gs2, saslname, cnonce, bare_extra);
}

/* A whole exchange against d; returns the result and why. On SCRAM_OK the
 * server's signature has been checked against the client's own computation. */
static enum scram_result exchange_on(const struct passwd_db *d, const char *saslname,
                                     const char *password, const char **why)
{
    struct client c;
    struct scram *s = begin_on(d, &c, "n,,", saslname, "fyko+d2lbbFgONRv9qkxdawL", "");
    build_final(&c, password, "n,,", "");
    char out[SCRAM_MSG_MAX + 1];
    enum scram_result r = finish_msg(s, c.final, out, why);
    if (r == SCRAM_OK) {
        char want[128];
        b64(want + 2, c.server_sig, 64);
        memcpy(want, "v=", 2);
        cr_assert_str_eq(out, want, "server signature");
    }
    scram_free(s);
    return r;
}

static enum scram_result exchange(const char *saslname, const char *password, const char **why)
{
    return exchange_on(db, saslname, password, why);
}

/* ------------------------------------------------------------------------ */
/* Exchanges                                                                 */
/* ------------------------------------------------------------------------ */

#define UNKNOWN_WHY "unknown user"
#define NO_SCRAM_WHY                                                                               \
    "no SCRAM credentials for this user (a $6$ or $7$ entry; SCRAM needs a SCRAM-SHA-512 one: "    \
    "ringmq --scram-entry)"

Test(scram, right_password_succeeds_and_server_signature_verifies)
{
    const char *why;
    cr_assert_eq(exchange("sasha", "correct horse", &why), SCRAM_OK, "%s", why);
    cr_assert_eq(exchange("sören", "ünïcode", &why), SCRAM_OK, "%s", why);
    cr_assert_eq(exchange("scram-empty", "", &why), SCRAM_OK, "%s", why);
}

Test(scram, entry_from_passwd_scram_line_succeeds)
{
    /* What `ringmq --scram-entry` writes, for a name that needs escaping and
     * a password with SCRAM's separators in it. */
    char line[1024];
    int n = scram_line((const uint8_t *)"gen,=user", 9, (const uint8_t *)"p@ss:word,=x", 12,
                       PASSWD_SCRAM_ITERATIONS_DEFAULT, line, sizeof(line) - 1);
    cr_assert_gt(n, 0);
    line[n] = '\n';
    struct passwd_db *d = parse_text(line, (size_t)n + 1);
    const char *why;
    cr_assert_eq(exchange_on(d, "gen=2C=3Duser", "p@ss:word,=x", &why), SCRAM_OK, "%s", why);
    cr_assert_eq(exchange_on(d, "gen=2C=3Duser", "p@ss:word,=X", &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "wrong password: the client proof does not verify");
    passwd_free(d);
}

Test(scram, username_is_the_decoded_name)
{
    struct client c;
    struct scram *s = begin(&c, "n,,", "s=2Ca=3Dsha", "abc", "");
    size_t len = 0;
    const uint8_t *u = scram_username(s, &len);
    cr_assert_eq(len, 7);
    cr_assert_eq(memcmp(u, "s,a=sha", 7), 0);
    build_final(&c, "dave-pw", "n,,", "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_OK, "%s", why);
    scram_free(s);
}

Test(scram, wrong_password_fails)
{
    const char *why;
    cr_assert_eq(exchange("sasha", "correct horsE", &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "wrong password: the client proof does not verify");
    cr_assert_eq(exchange("sasha", "", &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "wrong password: the client proof does not verify");
    cr_assert_eq(exchange("scram-empty", "x", &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "wrong password: the client proof does not verify");
}

/* The attribute names of a server-first message, in order ("rsi"). */
static void attribute_names(const char *sf, char *names, size_t cap)
{
    size_t k = 0;
    for (const char *p = sf; p; p = strchr(p, ',')) {
        if (*p == ',')
            p++;
        cr_assert_eq(p[1], '=', "%s", sf);
        cr_assert_lt(k + 1, cap);
        names[k++] = p[0];
    }
    names[k] = 0;
}

/* A name without a SCRAM entry must get a server-first message a client
 * cannot tell from sasha's: same attributes, salt length and i=, and so the
 * same length. */
static void looks_like_sasha(const struct client *c)
{
    const struct passwd_entry *sasha = passwd_find(db, (const uint8_t *)"sasha", 5);
    cr_assert_not_null(sasha);
    struct client real;
    struct scram *sr = begin(&real, "n,,", "sasha", "abc", "");
    scram_free(sr);
    char want[8];
    char got[8];
    attribute_names(real.server_first, want, sizeof(want));
    attribute_names(c->server_first, got, sizeof(got));
    cr_assert_str_eq(want, "rsi");
    cr_assert_str_eq(got, want, "%s", c->server_first);
    cr_assert_eq(real.salt_len, sasha->salt_len);
    cr_assert_eq(real.iterations, sasha->iterations);
    cr_assert_eq(c->salt_len, sasha->salt_len, "%s", c->server_first);
    cr_assert_eq(c->iterations, sasha->iterations, "%s", c->server_first);
    cr_assert_eq(strlen(c->server_first), strlen(real.server_first));
}

Test(scram, unknown_user_looks_like_a_real_one_and_fails_at_finish)
{
    struct client fake;
    struct scram *sf = begin(&fake, "n,,", "mallory", "abc", "");
    looks_like_sasha(&fake);
    cr_assert_eq(fake.salt_len, 16);
    cr_assert_eq(fake.iterations, 4096);

    build_final(&fake, "anything", "n,,", "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(sf, fake.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, UNKNOWN_WHY);
    cr_assert_str_eq(out, "");
    scram_free(sf);

    /* The made-up salt is stable for a name and differs between names. */
    struct client again;
    struct client other;
    sf = begin(&again, "n,,", "mallory", "xyz", "");
    scram_free(sf);
    cr_assert_eq(memcmp(again.salt, fake.salt, 16), 0);
    sf = begin(&other, "n,,", "mallorz", "xyz", "");
    scram_free(sf);
    cr_assert_neq(memcmp(other.salt, fake.salt, 16), 0);
}

Test(scram, sha512_entry_cannot_do_scram)
{
    const struct passwd_entry *bob = passwd_find(db, (const uint8_t *)"bob", 3);
    cr_assert_not_null(bob);
    struct client c;
    struct scram *s = begin(&c, "n,,", "bob", "abc", "");
    looks_like_sasha(&c);
    cr_assert_neq(memcmp(c.salt, bob->salt, bob->salt_len), 0, "bob's $6$ salt must not be shown");
    build_final(&c, "hunter2", "n,,", "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, NO_SCRAM_WHY);
    scram_free(s);
}

Test(scram, pbkdf2_entry_cannot_do_scram)
{
    /* alice is $7$ at 101 rounds with a 12-byte salt: none of it shows. */
    const struct passwd_entry *alice = passwd_find(db, (const uint8_t *)"alice", 5);
    cr_assert_not_null(alice);
    cr_assert_eq(alice->kind, PASSWD_PBKDF2_SHA512);
    struct client c;
    struct scram *s = begin(&c, "n,,", "alice", "abc", "");
    looks_like_sasha(&c);
    cr_assert_neq(memcmp(c.salt, alice->salt, alice->salt_len), 0);
    /* Her right password does not log in over SCRAM... */
    build_final(&c, "correct horse", "n,,", "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, NO_SCRAM_WHY);
    cr_assert_str_eq(out, "");
    scram_free(s);

    /* ...and neither does the attack this kind of entry exists to stop: the
     * $7$ hash from the file used as SaltedPassword, which is what it is. */
    s = begin(&c, "n,,", "alice", "abc", "");
    build_final_salted(&c, alice->hash, "n,,", "");
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, NO_SCRAM_WHY);
    scram_free(s);
    /* The same proof was the right one: it is the entry that is refused. */
    uint8_t salted[64];
    cr_assert_eq(PKCS5_PBKDF2_HMAC("correct horse", 13, alice->salt, alice->salt_len,
                                   alice->iterations, EVP_sha512(), 64, salted),
                 1);
    cr_assert_eq(memcmp(salted, alice->hash, 64), 0);
}

Test(scram, the_file_alone_does_not_log_in)
{
    /* Whoever reads sasha's entry has her salt, StoredKey and ServerKey.
     * Neither key works as SaltedPassword or as ClientKey. */
    const struct passwd_entry *e = passwd_find(db, (const uint8_t *)"sasha", 5);
    cr_assert_not_null(e);
    const uint8_t *keys[] = {e->hash, e->server_key};
    for (size_t i = 0; i < 2; i++) {
        struct client c;
        struct scram *s = begin(&c, "n,,", "sasha", "abc", "");
        build_final_salted(&c, keys[i], "n,,", "");
        char out[SCRAM_MSG_MAX + 1];
        const char *why;
        cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL, "key %zu", i);
        cr_assert_str_eq(why, "wrong password: the client proof does not verify");
        scram_free(s);

        s = begin(&c, "n,,", "sasha", "abc", "");
        build_final_client_key(&c, keys[i], e->hash, "n,,");
        cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL, "key %zu", i);
        cr_assert_str_eq(why, "wrong password: the client proof does not verify");
        scram_free(s);
    }
}

Test(scram, made_up_salt_is_stable_across_loads_of_the_same_file)
{
    /* Two loads of one file, as before and after a restart: the same salt
     * for an unknown name and for a $7$ one, as for a real SCRAM user. */
    struct passwd_db *db2 = load_data_file();
    static const char *const names[] = {"mallory", "alice", "sasha"};
    uint8_t salt1[3][64];
    for (size_t i = 0; i < 3; i++) {
        struct client a;
        struct client b;
        scram_free(begin_on(db, &a, "n,,", names[i], "abc", ""));
        scram_free(begin_on(db2, &b, "n,,", names[i], "xyz", ""));
        cr_assert_eq(a.salt_len, b.salt_len);
        cr_assert_eq(memcmp(a.salt, b.salt, a.salt_len), 0, "%s", names[i]);
        memcpy(salt1[i], a.salt, a.salt_len);
    }
    passwd_free(db2);

    /* Another file: a real user's salt is its own, a made-up one changes. */
    char line[1024];
    int n = scram_line((const uint8_t *)"other", 5, (const uint8_t *)"pw", 2,
                       PASSWD_SCRAM_ITERATIONS_DEFAULT, line, sizeof(line) - 1);
    cr_assert_gt(n, 0);
    line[n] = '\n';
    struct passwd_db *d3 = parse_text(line, (size_t)n + 1);
    struct client c;
    scram_free(begin_on(d3, &c, "n,,", "mallory", "abc", ""));
    cr_assert_eq(c.salt_len, 16);
    cr_assert_neq(memcmp(c.salt, salt1[0], 16), 0);
    passwd_free(d3);
}

/* A password file line for user with password pw, into line (512 bytes). */
static void scram_line_of(const char *user, const char *pw, char line[512])
{
    int n = scram_line((const uint8_t *)user, strlen(user), (const uint8_t *)pw, strlen(pw),
                       PASSWD_SCRAM_ITERATIONS_DEFAULT, line, 512);
    cr_assert_gt(n, 0);
}

/* The made-up salt scram_start shows for name under d. */
static void salt_on(const struct passwd_db *d, const char *name, struct client *c)
{
    scram_free(begin_on(d, c, "n,,", name, "abc", ""));
}

Test(scram, made_up_salt_survives_a_reload_that_keeps_the_entries)
{
    /* A reload parses the file again. Written again with the same entries
     * (comments, blank lines, order, CRLF), the made-up salt stays, as the
     * real ones do: a salt that changed would tell the name is unknown. */
    char l1[512];
    char l2[512];
    char l3[512];
    scram_line_of("u1", "p1", l1);
    scram_line_of("u2", "p2", l2);
    scram_line_of("u2", "p3", l3);
    char text[2048];
    snprintf(text, sizeof(text), "%s\n%s\n", l1, l2);
    struct passwd_db *first = parse_text(text, strlen(text));
    snprintf(text, sizeof(text), "# reloaded\r\n\r\n%s\r\n%s\r\n", l2, l1);
    struct passwd_db *again = parse_text(text, strlen(text));
    /* An edit to an entry (u2's password). */
    snprintf(text, sizeof(text), "%s\n%s\n", l1, l3);
    struct passwd_db *edited = parse_text(text, strlen(text));

    struct client made_up[3];
    struct client real[3];
    const struct passwd_db *const dbs[] = {first, again, edited};
    for (size_t i = 0; i < 3; i++) {
        salt_on(dbs[i], "mallory", &made_up[i]);
        salt_on(dbs[i], "u1", &real[i]);
        cr_assert_eq(made_up[i].salt_len, PASSWD_SCRAM_SALT_LEN);
        cr_assert_eq(real[i].salt_len, PASSWD_SCRAM_SALT_LEN);
    }
    cr_assert_eq(memcmp(made_up[0].salt, made_up[1].salt, PASSWD_SCRAM_SALT_LEN), 0,
                 "a made-up salt changed on a reload of the same entries");
    cr_assert_eq(memcmp(real[0].salt, real[1].salt, PASSWD_SCRAM_SALT_LEN), 0);
    /* After the edit unknown names get other salts while u1's stays: the
     * price of a key that nobody without the file can compute (passwd.h). */
    cr_assert_neq(memcmp(made_up[0].salt, made_up[2].salt, PASSWD_SCRAM_SALT_LEN), 0);
    cr_assert_eq(memcmp(real[0].salt, real[2].salt, PASSWD_SCRAM_SALT_LEN), 0);
    passwd_free(first);
    passwd_free(again);
    passwd_free(edited);
}

Test(scram, made_up_entries_copy_the_scram_entries)
{
    /* Two SCRAM entries at 8192 rounds with 20-byte salts, one at 4096 with
     * 16, and more $7$ entries than all of them: only SCRAM entries count. */
    char lines[4096];
    size_t off = 0;
    static const char *const users[] = {"s1", "s2", "s3"};
    static const uint32_t its[] = {8192, 8192, 4096};
    static const size_t salts[] = {20, 20, 16};
    for (size_t i = 0; i < 3; i++) {
        uint8_t salt[20];
        memset(salt, (int)i, sizeof(salt));
        int n = passwd_scram_line((const uint8_t *)users[i], 2, (const uint8_t *)"pw", 2, salt,
                                  salts[i], its[i], lines + off, sizeof(lines) - off);
        cr_assert_gt(n, 0);
        off += (size_t)n;
        lines[off++] = '\n';
    }
    for (int i = 0; i < 4; i++)
        off += (size_t)snprintf(lines + off, sizeof(lines) - off,
                                "p%d:$7$101$c2FsdHNhbHRzYWx0$%s\n", i, FAKE_HASH_B64);
    struct passwd_db *d = parse_text(lines, off);
    struct client c;
    scram_free(begin_on(d, &c, "n,,", "mallory", "abc", ""));
    cr_assert_eq(c.salt_len, 20, "%s", c.server_first);
    cr_assert_eq(c.iterations, 8192, "%s", c.server_first);
    scram_free(begin_on(d, &c, "n,,", "p0", "abc", ""));
    cr_assert_eq(c.salt_len, 20, "%s", c.server_first);
    cr_assert_eq(c.iterations, 8192, "%s", c.server_first);
    passwd_free(d);

    /* Without SCRAM entries: what --scram-entry writes by default. */
    off = 0;
    for (int i = 0; i < 2; i++)
        off += (size_t)snprintf(lines + off, sizeof(lines) - off,
                                "p%d:$7$101$c2FsdHNhbHRzYWx0$%s\n", i, FAKE_HASH_B64);
    d = parse_text(lines, off);
    scram_free(begin_on(d, &c, "n,,", "p0", "abc", ""));
    cr_assert_eq(c.salt_len, PASSWD_SCRAM_SALT_LEN, "%s", c.server_first);
    cr_assert_eq(c.iterations, PASSWD_SCRAM_ITERATIONS_DEFAULT, "%s", c.server_first);
    passwd_free(d);
}

Test(scram, without_a_password_table_everyone_is_unknown)
{
    struct scram *s = NULL;
    char sf[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(start_msg(NULL, "n,,n=alice,r=abc", &s, sf, &why), SCRAM_CONTINUE, "%s", why);
    cr_assert_not_null(strstr(sf, ",i=4096"), "%s", sf);
    struct client c;
    snprintf(c.bare, sizeof(c.bare), "n=alice,r=abc");
    snprintf(c.server_first, sizeof(c.server_first), "%s", sf);
    parse_server_first(&c, "abc");
    cr_assert_eq(c.salt_len, PASSWD_SCRAM_SALT_LEN);
    build_final(&c, "correct horse", "n,,", "");
    char out[SCRAM_MSG_MAX + 1];
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, UNKNOWN_WHY);
    scram_free(s);
    /* A fixed key keeps the made-up salt stable, within a run and across
     * runs: with no table there is no real name for it to hide. */
    struct client again;
    scram_free(begin_on(NULL, &again, "n,,", "alice", "xyz", ""));
    cr_assert_eq(memcmp(again.salt, c.salt, c.salt_len), 0);
}

Test(scram, server_nonce_is_fresh_each_time)
{
    struct client a;
    struct client b;
    struct scram *sa = begin(&a, "n,,", "sasha", "abc", "");
    struct scram *sb = begin(&b, "n,,", "sasha", "abc", "");
    cr_assert_str_neq(a.nonce, b.nonce);
    /* A client-final made for one exchange does not finish another. */
    build_final(&a, "correct horse", "n,,", "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(sb, a.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "nonce (r=) is not the one the server sent");
    cr_assert_eq(finish_msg(sa, a.final, out, &why), SCRAM_OK, "%s", why);
    scram_free(sa);
    scram_free(sb);
}

Test(scram, state_outlives_the_password_table)
{
    struct client c;
    struct scram *s = begin(&c, "n,,", "sasha", "abc", "");
    passwd_free(db); /* a reload replaced it */
    db = NULL;
    build_final(&c, "correct horse", "n,,", "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_OK, "%s", why);
    scram_free(s);
}

Test(scram, finish_runs_once)
{
    struct client c;
    struct scram *s = begin(&c, "n,,", "sasha", "abc", "");
    build_final(&c, "correct horse", "n,,", "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_OK, "%s", why);
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "SCRAM exchange already finished");
    scram_free(s);
    s = begin(&c, "n,,", "sasha", "abc", "");
    cr_assert_eq(finish_msg(s, "garbage", out, &why), SCRAM_FAIL);
    build_final(&c, "correct horse", "n,,", "");
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL, "a failed state stays spent");
    cr_assert_str_eq(why, "SCRAM exchange already finished");
    scram_free(s);
    scram_free(NULL);
}

Test(scram, extensions_are_ignored_but_signed)
{
    struct client c;
    struct scram *s = begin(&c, "n,,", "sasha", "abc", ",x=one,y=t=w=o");
    build_final(&c, "correct horse", "n,,", ",z=three");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_OK, "%s", why);
    char want[128] = "v=";
    b64(want + 2, c.server_sig, 64);
    cr_assert_str_eq(out, want);
    scram_free(s);
}

/* ------------------------------------------------------------------------ */
/* gs2 header, authzid, channel binding                                      */
/* ------------------------------------------------------------------------ */

Test(scram, y_flag_needs_matching_channel_binding)
{
    struct client c;
    struct scram *s = begin(&c, "y,,", "sasha", "abc", "");
    build_final(&c, "correct horse", "y,,", "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_OK, "%s", why);
    scram_free(s);

    s = begin(&c, "y,,", "sasha", "abc", "");
    build_final(&c, "correct horse", "n,,", ""); /* c=biws */
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "channel binding (c=) is not the gs2 header of client-first");
    scram_free(s);
}

Test(scram, authzid_must_be_the_username)
{
    struct client c;
    struct scram *s = begin(&c, "n,a=sasha,", "sasha", "abc", "");
    build_final(&c, "correct horse", "n,a=sasha,", "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_OK, "%s", why);
    scram_free(s);

    /* Escaped the same way. */
    s = begin(&c, "n,a=s=2Ca=3Dsha,", "s=2Ca=3Dsha", "abc", "");
    build_final(&c, "dave-pw", "n,a=s=2Ca=3Dsha,", "");
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_OK, "%s", why);
    scram_free(s);

    /* c= must carry the authzid too. */
    s = begin(&c, "n,a=sasha,", "sasha", "abc", "");
    build_final(&c, "correct horse", "n,,", "");
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "channel binding (c=) is not the gs2 header of client-first");
    scram_free(s);

    char sf[SCRAM_MSG_MAX + 1];
    cr_assert_eq(start_msg(db, "n,a=bob,n=alice,r=abc", &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "authzid (a=) differs from the username");
    cr_assert_eq(start_msg(db, "n,a=alic,n=alice,r=abc", &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "authzid (a=) differs from the username");
    cr_assert_eq(start_msg(db, "n,a=,n=alice,r=abc", &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "authzid (a=) is empty or has an '=' other than =2C or =3D");
    cr_assert_eq(start_msg(db, "n,a=al=ice,n=alice,r=abc", &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "authzid (a=) is empty or has an '=' other than =2C or =3D");
}

#define P_WITHOUT_PLUS_WHY                                                                         \
    "channel binding (p=) with SCRAM-SHA-512: binding needs SCRAM-SHA-512-PLUS"

Test(scram, channel_binding_and_mandatory_extensions_are_refused)
{
    struct scram *s = NULL;
    char sf[SCRAM_MSG_MAX + 1];
    const char *why;
    /* scram_start: a connection that cannot bind. */
    cr_assert_eq(start_msg(db, "p=tls-unique,,n=alice,r=abc", &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, P_WITHOUT_PLUS_WHY);
    cr_assert_eq(start_msg(db, "p=tls-server-end-point,a=alice,n=alice,r=abc", &s, sf, &why),
                 SCRAM_FAIL);
    cr_assert_str_eq(why, P_WITHOUT_PLUS_WHY);
    cr_assert_eq(start_msg(db, "p=tls-exporter,,n=alice,r=abc", &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, P_WITHOUT_PLUS_WHY);
    cr_assert_eq(start_msg(db, "n,,m=ext,n=alice,r=abc", &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "mandatory extension (m=) is not supported");
}

/* ------------------------------------------------------------------------ */
/* SCRAM-SHA-512-PLUS: tls-exporter channel binding (RFC 5802 6-7, RFC 9266) */
/* ------------------------------------------------------------------------ */

#define PLUS_GS2 "p=tls-exporter,,"

/* A tls-exporter value as the TLS layer would hand it over: 32 bytes,
 * binary (a NUL, a ',' and an '=' among them, as a real one may hold). */
static void exporter_fill(uint8_t out[SCRAM_TLS_EXPORTER_LEN], uint8_t seed)
{
    for (size_t i = 0; i < SCRAM_TLS_EXPORTER_LEN; i++)
        out[i] = (uint8_t)(seed + i * 37);
    out[3] = 0;
    out[4] = ',';
    out[5] = '=';
}

/* The server on a TLS connection that can bind, the client having exported
 * the same value from its side of the session. */
static struct scram_channel tls_on(bool plus)
{
    struct scram_channel ch = {.plus = plus, .exporter_ok = true};
    exporter_fill(ch.exporter, 11);
    memcpy(client_binding, ch.exporter, SCRAM_TLS_EXPORTER_LEN);
    client_binding_len = plus ? SCRAM_TLS_EXPORTER_LEN : 0;
    return ch;
}

/* client-first with gs2 on ch: SCRAM_CONTINUE, or SCRAM_FAIL and why. */
static enum scram_result plus_first(const struct scram_channel *ch, const char *gs2,
                                    const char **why)
{
    server_channel = ch;
    char first[256];
    snprintf(first, sizeof(first), "%sn=sasha,r=abc", gs2);
    struct scram *s = NULL;
    char sf[SCRAM_MSG_MAX + 1];
    enum scram_result r = start_msg(db, first, &s, sf, why);
    scram_free(s);
    return r;
}

/* The whole exchange for sasha on ch with gs2; the client's c= carries
 * client_binding. */
static enum scram_result plus_exchange(const struct scram_channel *ch, const char *gs2,
                                       const char **why)
{
    server_channel = ch;
    struct client c;
    struct scram *s = begin(&c, gs2, "sasha", "rOprNGfwEbeRWgbNEkqO", "");
    build_final(&c, "correct horse", gs2, "");
    char out[SCRAM_MSG_MAX + 1];
    enum scram_result r = finish_msg(s, c.final, out, why);
    if (r == SCRAM_OK) {
        char want[128] = "v=";
        b64(want + 2, c.server_sig, 64);
        cr_assert_str_eq(out, want, "the server signed the same AuthMessage, c= included");
    }
    scram_free(s);
    return r;
}

Test(scram, plus_exchange_with_the_connections_exporter_succeeds)
{
    struct scram_channel ch = tls_on(true);
    const char *why;
    cr_assert_eq(plus_exchange(&ch, PLUS_GS2, &why), SCRAM_OK, "%s", why);
    cr_assert_eq(plus_exchange(&ch, "p=tls-exporter,a=sasha,", &why), SCRAM_OK, "%s", why);

    /* c= is exactly base64(gs2 header + the 32 bytes). */
    struct client c;
    struct scram *s = begin(&c, PLUS_GS2, "sasha", "abc", "");
    /* The state keeps its own copy: the caller's channel may go. */
    memset(&ch, 0, sizeof(ch));
    build_final(&c, "correct horse", PLUS_GS2, "");
    uint8_t raw[sizeof(PLUS_GS2) - 1 + SCRAM_TLS_EXPORTER_LEN];
    memcpy(raw, PLUS_GS2, sizeof(PLUS_GS2) - 1);
    exporter_fill(raw + sizeof(PLUS_GS2) - 1, 11);
    char want[128] = "c=";
    b64(want + 2, raw, sizeof(raw));
    cr_assert_eq(strncmp(c.final, want, strlen(want)), 0, "%s", c.final);
    cr_assert_eq(c.final[strlen(want)], ',');
    char out[SCRAM_MSG_MAX + 1];
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_OK, "%s", why);
    scram_free(s);
}

Test(scram, plus_with_another_sessions_exporter_fails)
{
    /* A man in the middle with a certificate the client trusts: the client's
     * TLS session ends at it, so the client's exporter value is another one.
     * Its proof is right for what it sent, and still fails. */
    struct scram_channel ch = tls_on(true);
    const char *why;
    for (size_t byte = 0; byte < SCRAM_TLS_EXPORTER_LEN; byte += 31) {
        tls_on(true);
        client_binding[byte] ^= 0x01;
        cr_assert_eq(plus_exchange(&ch, PLUS_GS2, &why), SCRAM_FAIL, "byte %zu", byte);
        cr_assert_str_eq(why, "channel binding (c=) is not this TLS connection's tls-exporter "
                              "value: the client's TLS session is another one (a man in the "
                              "middle?)");
    }
    static const size_t lens[] = {0, SCRAM_TLS_EXPORTER_LEN - 1, SCRAM_TLS_EXPORTER_LEN + 1};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        tls_on(true);
        client_binding_len = lens[i];
        cr_assert_eq(plus_exchange(&ch, PLUS_GS2, &why), SCRAM_FAIL, "%zu bytes", lens[i]);
        cr_assert_str_eq(why, "channel binding (c=) is not the gs2 header of client-first and a "
                              "32-byte tls-exporter value");
    }
    /* The right bytes after another gs2 header than client-first's. */
    tls_on(true);
    server_channel = &ch;
    struct client c;
    struct scram *s = begin(&c, "p=tls-exporter,a=sasha,", "sasha", "abc", "");
    build_final(&c, "correct horse", PLUS_GS2, "");
    char out[SCRAM_MSG_MAX + 1];
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    scram_free(s);
}

Test(scram, plus_refuses_other_channel_binding_types_and_flags)
{
    struct scram_channel ch = tls_on(true);
    const char *why;
    static const char *const other[] = {"p=tls-unique,,", "p=tls-server-end-point,,",
                                        "p=TLS-EXPORTER,,", "p=tls-exporter2,,"};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        cr_assert_eq(plus_first(&ch, other[i], &why), SCRAM_FAIL, "%s", other[i]);
        cr_assert_str_eq(why,
                         "channel binding type (p=) is not tls-exporter, the only one offered");
    }
    static const char *const flags[] = {"n,,", "y,,", "n,a=sasha,"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        cr_assert_eq(plus_first(&ch, flags[i], &why), SCRAM_FAIL, "%s", flags[i]);
        cr_assert_str_eq(why, "SCRAM-SHA-512-PLUS needs the gs2 header p=tls-exporter");
    }
    static const char *const bad[] = {"p=,,", "p=tls exporter,,", "p=tls-exporter,"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(plus_first(&ch, bad[i], &why), SCRAM_FAIL, "%s", bad[i]);
    cr_assert_eq(plus_first(&ch, "p=tls-exporter,a=bob,", &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "authzid (a=) differs from the username");
}

Test(scram, plus_without_an_exporter_fails)
{
    struct scram_channel ch = {.plus = true, .exporter_ok = false};
    const char *why;
    cr_assert_eq(plus_first(&ch, PLUS_GS2, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "SCRAM-SHA-512-PLUS on a connection without a tls-exporter channel "
                          "binding");
}

Test(scram, y_over_a_connection_that_can_bind_is_a_downgrade)
{
    /* RFC 5802 section 6: "y" says the client can bind and thinks the server
     * cannot; over TLS with an exporter this server can. */
    struct scram_channel ch = tls_on(false);
    const char *why;
    cr_assert_eq(plus_first(&ch, "y,,", &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "gs2 flag y over a connection that offers SCRAM-SHA-512-PLUS (a "
                          "downgrade)");
    cr_assert_eq(plus_first(&ch, "y,a=sasha,", &why), SCRAM_FAIL);
    /* "n" (the client cannot bind) goes on, with c=biws as without TLS. */
    cr_assert_eq(plus_exchange(&ch, "n,,", &why), SCRAM_OK, "%s", why);
    /* Where the connection cannot bind, "y" is fine. */
    struct scram_channel plain = {.plus = false, .exporter_ok = false};
    cr_assert_eq(plus_exchange(&plain, "y,,", &why), SCRAM_OK, "%s", why);
    cr_assert_eq(plus_exchange(NULL, "y,,", &why), SCRAM_OK, "%s", why);
}

Test(scram, p_with_the_plain_method_fails)
{
    struct scram_channel ch = tls_on(false);
    const char *why;
    cr_assert_eq(plus_first(&ch, PLUS_GS2, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, P_WITHOUT_PLUS_WHY);
    cr_assert_eq(plus_first(&ch, "p=tls-unique,,", &why), SCRAM_FAIL);
    cr_assert_str_eq(why, P_WITHOUT_PLUS_WHY);
    /* And a c= with a binding after "n,,": not client-first's header. */
    client_binding_len = SCRAM_TLS_EXPORTER_LEN;
    cr_assert_eq(plus_exchange(&ch, "n,,", &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "channel binding (c=) is not the gs2 header of client-first");
}

Test(scram, plus_for_an_unknown_user_fails_at_finish)
{
    /* Binding changes nothing about names: the exchange runs to the end. */
    struct scram_channel ch = tls_on(true);
    server_channel = &ch;
    struct client c;
    struct scram *s = begin(&c, PLUS_GS2, "mallory", "abc", "");
    build_final(&c, "x", PLUS_GS2, "");
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, UNKNOWN_WHY);
    scram_free(s);
}

/* ------------------------------------------------------------------------ */
/* Malformed messages                                                        */
/* ------------------------------------------------------------------------ */

Test(scram, saslname_escapes)
{
    static const char *const bad[] = {
        "n,,n=d=2ca=3dve,r=abc", /* lower case */
        "n,,n=a=41,r=abc",       /* only =2C and =3D exist */
        "n,,n=alice=,r=abc",     /* trailing '=' */
        "n,,n=alice=3,r=abc",    /* cut short */
        "n,,n==,r=abc",          "n,,n==3D=,r=abc",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct scram *s = NULL;
        char sf[SCRAM_MSG_MAX + 1];
        const char *why;
        cr_assert_eq(start_msg(db, bad[i], &s, sf, &why), SCRAM_FAIL, "%s", bad[i]);
        cr_assert_str_eq(why, "username (n=) has an '=' other than =2C or =3D", "%s", bad[i]);
    }
    /* "=3D2C" is "=2C" spelled out, not a comma. */
    struct client c;
    struct scram *s = begin(&c, "n,,", "a=3D2Cb", "abc", "");
    size_t len;
    const uint8_t *u = scram_username(s, &len);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(u, "a=2Cb", 5), 0);
    scram_free(s);
}

struct bad_first {
    const char *msg;
    const char *why;
};

#define GS2_END_WHY                                                                                \
    "gs2 header must be \"n,,\", \"y,,\", \"p=<type>,,\" or carry a=<authzid> before the second "  \
    "','"

Test(scram, malformed_client_first)
{
    static const struct bad_first cases[] = {
        {"", "empty client-first message"},
        {"p", "gs2 header must start with \"n,\", \"y,\" or \"p=\""},
        {"p=", "channel binding type (p=) is empty or malformed"},
        {"p=tls-exporter", "channel binding type (p=) is empty or malformed"},
        {"p=tls-exporter,n=alice,r=abc", GS2_END_WHY},
        {"x,,n=alice,r=abc", "gs2 header must start with \"n,\", \"y,\" or \"p=\""},
        {"n", "gs2 header must start with \"n,\", \"y,\" or \"p=\""},
        {"n=alice,r=abc", "gs2 header must start with \"n,\", \"y,\" or \"p=\""},
        {"N,,n=alice,r=abc", "gs2 header must start with \"n,\", \"y,\" or \"p=\""},
        {"n,n=alice,r=abc", GS2_END_WHY},
        {"n,b=alice,n=alice,r=abc", GS2_END_WHY},
        {"n,a=alice", GS2_END_WHY},
        {"n,,", "expected n=<username> after the gs2 header"},
        {"n,,r=abc", "expected n=<username> after the gs2 header"},
        {"n,, n=alice,r=abc", "expected n=<username> after the gs2 header"},
        {"n,,n=,r=abc", "empty username (n=)"},
        {"n,,n=alice", "expected ,r=<nonce> after the username"},
        {"n,,n=alice,", "expected ,r=<nonce> after the username"},
        {"n,,n=alice,s=abc", "expected ,r=<nonce> after the username"},
        {"n,,n=alice,r=", "empty client nonce (r=)"},
        {"n,,n=alice,r=,x=y", "empty client nonce (r=)"},
        {"n,,n=alice,r=a b", "client nonce (r=) holds a character outside printable ASCII"},
        {"n,,n=alice,r=ab\x7f", "client nonce (r=) holds a character outside printable ASCII"},
        {"n,,n=alice,r=\xc3\xa9", "client nonce (r=) holds a character outside printable ASCII"},
        {"n,,n=alice,r=abc,", "malformed extension after the nonce in client-first"},
        {"n,,n=alice,r=abc,x", "malformed extension after the nonce in client-first"},
        {"n,,n=alice,r=abc,x=", "malformed extension after the nonce in client-first"},
        {"n,,n=alice,r=abc,1=x", "malformed extension after the nonce in client-first"},
        {"n,,n=alice,r=abc,xy=z", "malformed extension after the nonce in client-first"},
        {"n,,n=alice,r=abc,,x=y", "malformed extension after the nonce in client-first"},
        {"n,,n=al\xff"
         "ice,r=abc",
         "client-first message is not valid UTF-8 (or holds a NUL)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct scram *s = NULL;
        char sf[SCRAM_MSG_MAX + 1];
        const char *why;
        cr_assert_eq(start_msg(db, cases[i].msg, &s, sf, &why), SCRAM_FAIL, "%s", cases[i].msg);
        cr_assert_str_eq(why, cases[i].why, "%s", cases[i].msg);
    }
    /* A NUL inside, which strlen-based helpers cannot send. */
    static const char nul[] = "n,,n=al\0ice,r=abc";
    struct scram *s = NULL;
    uint8_t out[SCRAM_MSG_MAX];
    size_t out_len = 1;
    const char *why = NULL;
    cr_assert_eq(scram_begin(db, (const uint8_t *)nul, sizeof(nul) - 1, &s, out, &out_len, &why),
                 SCRAM_FAIL);
    cr_assert_null(s);
    cr_assert_str_eq(why, "client-first message is not valid UTF-8 (or holds a NUL)");
    cr_assert_eq(scram_begin(db, NULL, 0, &s, out, &out_len, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "empty client-first message");
}

Test(scram, client_first_length_limits)
{
    char msg[2048];
    struct scram *s = NULL;
    char sf[SCRAM_MSG_MAX + 1];
    const char *why;
    /* server-first = "r=" + nonce + 32 + ",s=" + 24 + ",i=4096": 68 + nonce
     * bytes, so a 956-byte client nonce makes it exactly 1024. */
    memcpy(msg, "n,,n=sasha,r=", 13);
    memset(msg + 13, 'N', 956);
    msg[13 + 956] = 0;
    cr_assert_eq(start_msg(db, msg, &s, sf, &why), SCRAM_CONTINUE, "%s", why);
    cr_assert_eq(strlen(sf), SCRAM_MSG_MAX);
    scram_free(s);
    msg[13 + 956] = 'N';
    msg[13 + 957] = 0;
    cr_assert_eq(start_msg(db, msg, &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "client nonce too long: the server-first message would pass 1024 bytes");

    /* The message itself: 1024 bytes are read, 1025 are not. */
    memset(msg + 13, 'N', SCRAM_MSG_MAX - 13);
    msg[SCRAM_MSG_MAX] = 0;
    cr_assert_eq(start_msg(db, msg, &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "client nonce too long: the server-first message would pass 1024 bytes");
    msg[SCRAM_MSG_MAX] = 'N';
    msg[SCRAM_MSG_MAX + 1] = 0;
    cr_assert_eq(start_msg(db, msg, &s, sf, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "client-first message longer than 1024 bytes");
}

struct bad_final {
    const char *fmt; /* %1$s: nonce, %2$s: proof */
    const char *why;
};

Test(scram, malformed_client_final)
{
    /* Each case runs on a fresh exchange for sasha whose proof is right for
     * "c=biws,r=<nonce>" only. */
    static const struct bad_final cases[] = {
        {"", "client-final message is empty or not valid UTF-8"},
        {"r=%1$s,p=%2$s", "client-final must start with c=<channel binding>"},
        {"C=biws,r=%1$s,p=%2$s", "client-final must start with c=<channel binding>"},
        {"c=,r=%1$s,p=%2$s", "channel binding (c=) is not valid base64"},
        {"c=biw,r=%1$s,p=%2$s", "channel binding (c=) is not valid base64"},
        {"c=bi*s,r=%1$s,p=%2$s", "channel binding (c=) is not valid base64"},
        {"c=eSws,r=%1$s,p=%2$s", "channel binding (c=) is not the gs2 header of client-first"},
        {"c=biwsbiws,r=%1$s,p=%2$s", "channel binding (c=) is not the gs2 header of client-first"},
        {"c=biws", "expected ,r=<nonce> after c= in client-final"},
        {"c=biws,p=%2$s", "expected ,r=<nonce> after c= in client-final"},
        {"c=biws,r=%1$sX,p=%2$s", "nonce (r=) is not the one the server sent"},
        {"c=biws,r=fyko,p=%2$s", "nonce (r=) is not the one the server sent"},
        {"c=biws,r=,p=%2$s", "nonce (r=) is not the one the server sent"},
        {"c=biws,r=%1$s", "client-final has no proof (p=)"},
        {"c=biws,r=%1$s,x=y", "client-final has no proof (p=)"},
        {"c=biws,r=%1$s,1=y,p=%2$s", "malformed extension after the nonce in client-final"},
        {"c=biws,r=%1$s,,p=%2$s", "malformed extension after the nonce in client-final"},
        {"c=biws,r=%1$s,p=%2$s,x=y", "proof (p=) must be the last attribute of client-final"},
        {"c=biws,r=%1$s,p=%2$s,", "proof (p=) must be the last attribute of client-final"},
        {"c=biws,r=%1$s,p=", "proof (p=) is not 64 bytes"},
        {"c=biws,r=%1$s,p=%2$s=", "proof (p=) is not valid base64"},
        {"c=biws,r=%1$s,p=AAAA%2$s", "proof (p=) is not 64 bytes"},
        {"c=biws,r=%1$s,p=AAAA", "proof (p=) is not 64 bytes"},
        {"c=biws,r=%1$s,p=!!!!", "proof (p=) is not valid base64"},
        {"c=biws,r=%1$s,p=%2$s\xff", "client-final message is empty or not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct client c;
        struct scram *s = begin(&c, "n,,", "sasha", "fyko+d2lbbFgONRv9qkxdawL", "");
        build_final(&c, "correct horse", "n,,", "");
        const char *proof = strstr(c.final, ",p=") + 3;
        char msg[4096];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(msg, sizeof(msg), cases[i].fmt, c.nonce, proof);
#pragma GCC diagnostic pop
        char out[SCRAM_MSG_MAX + 1];
        const char *why;
        cr_assert_eq(finish_msg(s, msg, out, &why), SCRAM_FAIL, "%s", msg);
        cr_assert_str_eq(why, cases[i].why, "%s", msg);
        scram_free(s);
    }
}

Test(scram, client_final_length_limit)
{
    struct client c;
    struct scram *s = begin(&c, "n,,", "sasha", "abc", "");
    build_final(&c, "correct horse", "n,,", "");
    /* Padded with an extension to 1025 bytes: refused before parsing. */
    char msg[2048];
    size_t n = (size_t)snprintf(msg, sizeof(msg), "c=biws,r=%s,x=", c.nonce);
    memset(msg + n, 'x', sizeof(msg) - n);
    size_t plen = strlen(strstr(c.final, ",p="));
    memcpy(msg + SCRAM_MSG_MAX + 1 - plen, strstr(c.final, ",p="), plen);
    uint8_t out[SCRAM_MSG_MAX];
    size_t out_len = 0;
    const char *why = NULL;
    cr_assert_eq(scram_finish(s, (const uint8_t *)msg, SCRAM_MSG_MAX + 1, out, &out_len, &why),
                 SCRAM_FAIL);
    cr_assert_str_eq(why, "client-final message longer than 1024 bytes");
    scram_free(s);
}

Test(scram, a_flipped_proof_bit_fails)
{
    struct client c;
    struct scram *s = begin(&c, "n,,", "sasha", "abc", "");
    build_final(&c, "correct horse", "n,,", "");
    char *p = strstr(c.final, ",p=") + 3;
    p[10] = p[10] == 'A' ? 'B' : 'A';
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(finish_msg(s, c.final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "wrong password: the client proof does not verify");
    scram_free(s);
}

/* ------------------------------------------------------------------------ */
/* Known answers                                                             */
/* ------------------------------------------------------------------------ */

/* user "user", password "pencil", RFC 7677's salt and nonces, 4096 rounds;
 * every value below from Python, the entry's StoredKey and ServerKey too:
 *   sp = hashlib.pbkdf2_hmac('sha512', b'pencil', salt, 4096, 64)
 *   ck = hmac(sp, b'Client Key'); sk = sha512(ck); svk = hmac(sp, b'Server Key')
 *   proof = ck ^ hmac(sk, auth); v = hmac(svk, auth)
 * The server only sees sk and svk: it checks the proof and signs without
 * the password or sp.
 * The same script with 'sha256' gives RFC 7677's published proof and
 * signature, which checks the script itself. */
#define KAT_ENTRY                                                                                  \
    "user:SCRAM-SHA-512$4096:W22ZaJ0SNY7soEsUEjb6gQ==$6AAub3065EYRmyFpM2RNwqK+eGnrkYuEWbXn19LsEmB" \
    "qzu8QaCXNc1FwpnX9NhH2hK/60dzj9DoO5DvVkOHbvg==:jZHbYjC1aHh0/hKbxyBuGFjDrgjgKTT1esA7awWiKcRZ0o" \
    "/0b1yWEebBeSVkkCFewf91nLDfKF24mvD5nmE6rA==\n"
#define KAT_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define KAT_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define KAT_SERVER_FIRST                                                                           \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define KAT_CLIENT_FINAL                                                                           \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=gMGXRcevScNtxZ6/"               \
    "8lQYpGtnsNAc3mG"                                                                              \
    "cmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ=="
#define KAT_SERVER_FINAL                                                                           \
    "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw=="

static struct passwd_db *kat_db(void)
{
    return parse_text(KAT_ENTRY, strlen(KAT_ENTRY));
}

static enum scram_result kat_run(const char *final, char *out, const char **why)
{
    *why = "";
    struct passwd_db *d = kat_db();
    struct scram *s = NULL;
    uint8_t sf[SCRAM_MSG_MAX];
    size_t sf_len = 0;
    cr_assert_eq(scram_start_with_nonce(d, (const uint8_t *)KAT_CLIENT_FIRST,
                                        strlen(KAT_CLIENT_FIRST), (const uint8_t *)KAT_SERVER_NONCE,
                                        strlen(KAT_SERVER_NONCE), &s, sf, &sf_len, why),
                 SCRAM_CONTINUE, "%s", *why);
    cr_assert_eq(sf_len, strlen(KAT_SERVER_FIRST));
    cr_assert_eq(memcmp(sf, KAT_SERVER_FIRST, sf_len), 0, "%.*s", (int)sf_len, sf);
    enum scram_result r = finish_msg(s, final, out, why);
    scram_free(s);
    passwd_free(d);
    return r;
}

Test(scram, kat_python_values)
{
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(kat_run(KAT_CLIENT_FINAL, out, &why), SCRAM_OK, "%s", why);
    cr_assert_str_eq(out, KAT_SERVER_FINAL);
}

Test(scram, kat_client_in_this_file_agrees)
{
    /* The test's own client, on the KAT's inputs, computes Python's proof and
     * signature: so the other tests' client is right too. */
    struct client c;
    snprintf(c.bare, sizeof(c.bare), "%s", &KAT_CLIENT_FIRST[3]); /* past "n,," */
    snprintf(c.server_first, sizeof(c.server_first), "%s", KAT_SERVER_FIRST);
    parse_server_first_as(&c, "rOprNGfwEbeRWgbNEkqO", false);
    build_final(&c, "pencil", "n,,", "");
    cr_assert_str_eq(c.final, KAT_CLIENT_FINAL);
    char want[128] = "v=";
    b64(want + 2, c.server_sig, 64);
    cr_assert_str_eq(want, KAT_SERVER_FINAL);
}

Test(scram, kat_wrong_proof_fails)
{
    char final[] = KAT_CLIENT_FINAL;
    char *p = strstr(final, ",p=") + 3;
    p[0] = 'h'; /* 'g' -> 'h': one bit of the first byte */
    char out[SCRAM_MSG_MAX + 1];
    const char *why;
    cr_assert_eq(kat_run(final, out, &why), SCRAM_FAIL);
    cr_assert_str_eq(why, "wrong password: the client proof does not verify");
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                   */
/* ------------------------------------------------------------------------ */

struct thread_arg {
    const struct passwd_db *db;
    int ok;
};

/* A minimal exchange without Criterion asserts (they belong to the main
 * thread). */
static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 20; i++) {
        struct scram *s = NULL;
        uint8_t sf[SCRAM_MSG_MAX + 1];
        size_t sf_len = 0;
        const char *why = NULL;
        const char *first = "n,,n=sasha,r=threadnonce";
        if (scram_begin(a->db, (const uint8_t *)first, strlen(first), &s, sf, &sf_len, &why) !=
            SCRAM_CONTINUE)
            continue;
        sf[sf_len] = 0;
        const char *ns = (const char *)sf + 2;
        const char *ne = strchr(ns, ',');
        const char *salt = strstr((const char *)sf, ",s=") + 3;
        const char *se = strstr(salt, ",i=");
        uint8_t raw_salt[64];
        size_t salt_len = 0;
        EVP_DecodeBase64(raw_salt, &salt_len, sizeof(raw_salt), (const uint8_t *)salt,
                         (size_t)(se - salt));
        unsigned it = (unsigned)strtoul(se + 3, NULL, 10);
        uint8_t sp[64], ck[64], sk[64], cs[64], proof[64];
        unsigned n;
        PKCS5_PBKDF2_HMAC("correct horse", 13, raw_salt, salt_len, it, EVP_sha512(), 64, sp);
        HMAC(EVP_sha512(), sp, 64, (const uint8_t *)"Client Key", 10, ck, &n);
        SHA512(ck, 64, sk);
        char cfwp[256];
        snprintf(cfwp, sizeof(cfwp), "c=biws,r=%.*s", (int)(ne - ns), ns);
        char auth[1024];
        int alen = snprintf(auth, sizeof(auth), "%s,%s,%s", first + 3, (const char *)sf, cfwp);
        HMAC(EVP_sha512(), sk, 64, (const uint8_t *)auth, (size_t)alen, cs, &n);
        for (int k = 0; k < 64; k++)
            proof[k] = ck[k] ^ cs[k];
        char pb[128];
        EVP_EncodeBlock((uint8_t *)pb, proof, 64);
        char final[512];
        int flen = snprintf(final, sizeof(final), "%s,p=%s", cfwp, pb);
        uint8_t out[SCRAM_MSG_MAX];
        size_t out_len = 0;
        if (scram_finish(s, (const uint8_t *) final, (size_t)flen, out, &out_len, &why) == SCRAM_OK)
            a->ok++;
        scram_free(s);
    }
    return NULL;
}

Test(scram, exchanges_run_in_parallel_threads)
{
    enum { T = 4 };
    pthread_t th[T];
    struct thread_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i].db = db;
        args[i].ok = 0;
        cr_assert_eq(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(args[i].ok, 20, "thread %d", i);
    }
}
