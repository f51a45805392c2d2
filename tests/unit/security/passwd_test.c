/*
 * passwd: mosquitto's password file. data/passwd's first six entries were
 * written by the real mosquitto_passwd 2.0.11, its last four (SCRAM-SHA-512,
 * 4096 rounds, 16-byte salts) by Python's hashlib/hmac; its comment lines
 * list every user's password:
 *
 *   alice        "correct horse"   $7$ (the default: PBKDF2-HMAC-SHA512, 101 rounds)
 *   bob          "hunter2"         $6$ (-H sha512)
 *   carol        "p@ss:word,=x"    $7$ (-H sha512-pbkdf2)
 *   d,a=ve       "dave-pw"         $7$
 *   zoë          "ünïcode"         $7$
 *   emptypw      ""                $7$
 *   sasha        "correct horse"   SCRAM-SHA-512
 *   s,a=sha      "dave-pw"         SCRAM-SHA-512
 *   sören        "ünïcode"         SCRAM-SHA-512
 *   scram-empty  ""                SCRAM-SHA-512
 *
 * passwd_parse takes bytes: the broker reads the file (net/file.c, tested in
 * tests/unit/net/file_test.c), these tests hand text over, or data/passwd
 * read with stdio. Every malformed line must fail with the exact
 * "name:line: what" a user would read.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <openssl/rand.h>

#include <argon2.h>

#include "passwd.h"

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

#define DATA_FILE TEST_DATA_DIR "/passwd"

/* Internal entry points of passwd.c. */
const struct passwd_entry *passwd_decoy_entry(const struct passwd_db *db);

/* The name the tests' bytes are parsed under, as the broker passes the
 * password file's path. */
#define NAME "/etc/ringmq/passwd"

static struct passwd_db *parse(const void *text, size_t len, char *err, size_t errlen)
{
    return passwd_parse(NAME, text, len, err, errlen);
}

static struct passwd_db *load_text(const char *text, char *err, size_t errlen)
{
    return parse(text, strlen(text), err, errlen);
}

/* data/passwd's bytes, read here with stdio into buf. */
static size_t read_data_file(char *buf, size_t cap)
{
    FILE *f = fopen(DATA_FILE, "rb");
    cr_assert_not_null(f, "%s", DATA_FILE);
    size_t n = fread(buf, 1, cap, f);
    cr_assert(feof(f) && !ferror(f), "%s: read error or larger than %zu bytes", DATA_FILE, cap);
    fclose(f);
    return n;
}

/* data/passwd, parsed under its path. */
static struct passwd_db *load_data_file(char *err, size_t errlen)
{
    static char buf[64 * 1024];
    size_t n = read_data_file(buf, sizeof(buf));
    return passwd_parse(DATA_FILE, (const uint8_t *)buf, n, err, errlen);
}

static void b64(char *out, const uint8_t *in, size_t len)
{
    EVP_EncodeBlock((uint8_t *)out, in, len);
}

/* Up to eight results of h7, h7_for and hs may be in use at once: one
 * snprintf takes six, and the order a compiler evaluates them in decides
 * which would be overwritten with fewer (clang's order broke four). */
static char *next_buf(void)
{
    static char bufs[8][1024];
    static unsigned k;
    return bufs[k++ % 8];
}

/* "$7$<it>$<salt>$<hash>" with salt_len bytes of salt and hash_len bytes of
 * (meaningless) hash. */
static char *h7(uint32_t it, size_t salt_len, size_t hash_len)
{
    char *buf = next_buf();
    uint8_t salt[128];
    uint8_t hash[128];
    memset(salt, 's', sizeof(salt));
    memset(hash, 'h', sizeof(hash));
    char sb[256];
    char hb[256];
    b64(sb, salt, salt_len);
    b64(hb, hash, hash_len);
    snprintf(buf, 1024, "$7$%u$%s$%s", it, sb, hb);
    return buf;
}

/* A real $7$ hash of password, with a fixed salt. */
static char *h7_for(const char *password, uint32_t it)
{
    char *buf = next_buf();
    uint8_t salt[12];
    memcpy(salt, "saltsaltsalt", sizeof(salt));
    uint8_t out[64];
    cr_assert_eq(PKCS5_PBKDF2_HMAC(password, strlen(password), salt, sizeof(salt), it, EVP_sha512(),
                                   sizeof(out), out),
                 1);
    char sb[32];
    char hb[128];
    b64(sb, salt, sizeof(salt));
    b64(hb, out, sizeof(out));
    snprintf(buf, 1024, "$7$%u$%s$%s", it, sb, hb);
    return buf;
}

static void expect_error(const char *text, size_t line, const char *what)
{
    char err[512] = "";
    char want[512];
    struct passwd_db *db = load_text(text, err, sizeof(err));
    cr_assert_null(db, "loaded: %s", text);
    snprintf(want, sizeof(want), "%s:%zu: %s", NAME, line, what);
    cr_assert_str_eq(err, want);
}

static bool check(const struct passwd_db *db, const char *user, const char *pw)
{
    const struct passwd_entry *e = passwd_find(db, (const uint8_t *)user, strlen(user));
    cr_assert_not_null(e, "no entry for %s", user);
    return passwd_check(e, (const uint8_t *)pw, strlen(pw));
}

TestSuite(passwd);

Test(passwd, loads_the_file_mosquitto_passwd_wrote)
{
    char err[256] = "";
    struct passwd_db *db = load_data_file(err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), 10);

    const struct passwd_entry *a = passwd_find(db, (const uint8_t *)"alice", 5);
    cr_assert_not_null(a);
    cr_assert_eq(a->kind, PASSWD_PBKDF2_SHA512);
    cr_assert_eq(a->iterations, 101);
    cr_assert_eq(a->salt_len, 12);
    cr_assert_eq(a->user_len, 5);
    cr_assert_eq(memcmp(a->user, "alice", 5), 0);
    const struct passwd_entry *b = passwd_find(db, (const uint8_t *)"bob", 3);
    cr_assert_not_null(b);
    cr_assert_eq(b->kind, PASSWD_SHA512);
    cr_assert_eq(b->salt_len, 12);
    const struct passwd_entry *s = passwd_find(db, (const uint8_t *)"sasha", 5);
    cr_assert_not_null(s);
    cr_assert_eq(s->kind, PASSWD_SCRAM_SHA512);
    cr_assert_eq(s->iterations, 4096);
    cr_assert_eq(s->salt_len, 16);
    cr_assert_not_null(passwd_find(db, (const uint8_t *)"s,a=sha", 7));
    cr_assert_not_null(passwd_find(db, (const uint8_t *)"sören", 6));
    passwd_free(db);
}

Test(passwd, right_passwords_match)
{
    char err[256] = "";
    struct passwd_db *db = load_data_file(err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert(check(db, "alice", "correct horse"));
    cr_assert(check(db, "bob", "hunter2"));
    cr_assert(check(db, "carol", "p@ss:word,=x"));
    cr_assert(check(db, "d,a=ve", "dave-pw"));
    cr_assert(check(db, "zoë", "ünïcode"));
    cr_assert(check(db, "emptypw", ""));
    /* SCRAM entries serve plain CONNECT passwords too. */
    cr_assert(check(db, "sasha", "correct horse"));
    cr_assert(check(db, "s,a=sha", "dave-pw"));
    cr_assert(check(db, "sören", "ünïcode"));
    cr_assert(check(db, "scram-empty", ""));
    passwd_free(db);
}

Test(passwd, wrong_passwords_do_not)
{
    char err[256] = "";
    struct passwd_db *db = load_data_file(err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_not(check(db, "alice", "correct horsE"));
    cr_assert_not(check(db, "alice", "correct horse "));
    cr_assert_not(check(db, "alice", "correct hors"));
    cr_assert_not(check(db, "alice", ""));
    cr_assert_not(check(db, "alice", "hunter2"));
    cr_assert_not(check(db, "bob", "hunter"));
    cr_assert_not(check(db, "bob", "hunter22"));
    cr_assert_not(check(db, "emptypw", " "));
    cr_assert_not(check(db, "sasha", "correct horsE"));
    cr_assert_not(check(db, "sasha", ""));
    cr_assert_not(check(db, "sören", "unicode"));
    cr_assert_not(check(db, "scram-empty", " "));
    /* Password bytes after a NUL count (mosquitto would stop at it). */
    const struct passwd_entry *e = passwd_find(db, (const uint8_t *)"bob", 3);
    cr_assert_not(passwd_check(e, (const uint8_t *)"hunter2\0x", 9));
    cr_assert_not(passwd_check(NULL, (const uint8_t *)"hunter2", 7));
    passwd_free(db);
}

Test(passwd, unknown_names_are_not_found)
{
    char err[256] = "";
    struct passwd_db *db = load_data_file(err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_null(passwd_find(db, (const uint8_t *)"alic", 4));
    cr_assert_null(passwd_find(db, (const uint8_t *)"alicex", 6));
    cr_assert_null(passwd_find(db, (const uint8_t *)"Alice", 5));
    cr_assert_null(passwd_find(db, (const uint8_t *)"alice", 0));
    cr_assert_null(passwd_find(db, (const uint8_t *)"# Written", 9));
    cr_assert_null(passwd_find(NULL, (const uint8_t *)"alice", 5));
    cr_assert_eq(passwd_count(NULL), 0);
    passwd_free(NULL);
    passwd_free(db);
}

Test(passwd, empty_file_is_an_empty_table)
{
    char err[256] = "";
    struct passwd_db *db = load_text("", err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), 0);
    cr_assert_null(passwd_find(db, (const uint8_t *)"a", 1));
    passwd_free(db);
    db = load_text("# only a comment\n\n  \t\r\n", err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), 0);
    passwd_free(db);
}

Test(passwd, blanks_and_crlf_are_trimmed_as_mosquitto_does)
{
    char text[1024];
    char err[256] = "";
    /* Blanks around the name and the hash, CRLF, an internal blank kept,
     * and a last line without '\n'. */
    snprintf(text, sizeof(text), " \tal ice \t: %s \r\n\r\nbob:%s", h7_for("pw1", 3),
             h7_for("pw2", 2));
    struct passwd_db *db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), 2);
    cr_assert(check(db, "al ice", "pw1"));
    cr_assert(check(db, "bob", "pw2"));
    cr_assert_null(passwd_find(db, (const uint8_t *)" al ice", 7));
    passwd_free(db);
}

Test(passwd, hash_in_the_first_column_is_a_comment)
{
    char text[1024];
    char err[256] = "";
    /* mosquitto_passwd writes "#x:..." for a user named "#x", and mosquitto
     * then skips it as a comment: so do we. */
    snprintf(text, sizeof(text), "#x:%s\nok:%s\n", h7(1, 12, 64), h7(1, 12, 64));
    struct passwd_db *db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), 1);
    cr_assert_null(passwd_find(db, (const uint8_t *)"#x", 2));
    passwd_free(db);
    /* Only in the first column. */
    snprintf(text, sizeof(text), "ok:%s\n  # indented comment\n", h7(1, 12, 64));
    expect_error(text, 2, "no ':' between username and password hash");
}

Test(passwd, thousands_of_users_are_all_found)
{
    enum { N = 5000 };
    size_t cap = (size_t)N * 160;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    size_t off = 0;
    /* $6$ entries (one SHA-512 each), written in an order that is not
     * sorted. */
    for (unsigned i = 0; i < N; i++) {
        unsigned k = (i * 7919u) % N;
        char user[32];
        char pw[32];
        snprintf(user, sizeof(user), "user%u", k);
        snprintf(pw, sizeof(pw), "pw-%u", k);
        uint8_t salt[12];
        memset(salt, (int)(k & 0xff), sizeof(salt));
        SHA512_CTX ctx;
        uint8_t h[64];
        SHA512_Init(&ctx);
        SHA512_Update(&ctx, pw, strlen(pw));
        SHA512_Update(&ctx, salt, sizeof(salt));
        SHA512_Final(h, &ctx);
        char sb[32];
        char hb[128];
        b64(sb, salt, sizeof(salt));
        b64(hb, h, sizeof(h));
        off += (size_t)snprintf(text + off, cap - off, "%s:$6$%s$%s\n", user, sb, hb);
        cr_assert_lt(off, cap);
    }
    char err[256] = "";
    struct passwd_db *db = parse(text, off, err, sizeof(err));
    free(text);
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), N);
    for (unsigned k = 0; k < N; k++) {
        char user[32];
        char pw[32];
        snprintf(user, sizeof(user), "user%u", k);
        snprintf(pw, sizeof(pw), "pw-%u", k);
        const struct passwd_entry *e = passwd_find(db, (const uint8_t *)user, strlen(user));
        cr_assert_not_null(e, "%s", user);
        cr_assert_eq(e->user_len, strlen(user));
        cr_assert_eq(memcmp(e->user, user, e->user_len), 0);
        cr_assert(passwd_check(e, (const uint8_t *)pw, strlen(pw)), "%s", user);
    }
    cr_assert_null(passwd_find(db, (const uint8_t *)"user5000", 8));
    cr_assert_null(passwd_find(db, (const uint8_t *)"user", 4));
    cr_assert_null(passwd_find(db, (const uint8_t *)"a", 1));
    cr_assert_null(passwd_find(db, (const uint8_t *)"zzz", 3));
    passwd_free(db);
}

Test(passwd, limits_that_load)
{
    char err[256] = "";
    char *text = malloc(70000);
    cr_assert_not_null(text);
    /* The longest name, the largest salt, the highest iteration count. */
    memset(text, 'u', PASSWD_USER_MAX);
    snprintf(text + PASSWD_USER_MAX, 70000 - PASSWD_USER_MAX, ":%s\nb:%s\nc:%s\n", h7(1, 64, 64),
             h7(PASSWD_ITERATIONS_MAX, 1, 64), h7(1, 12, 64));
    struct passwd_db *db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), 3);
    const struct passwd_entry *e = passwd_find(db, (const uint8_t *)text, PASSWD_USER_MAX);
    cr_assert_not_null(e);
    cr_assert_eq(e->salt_len, 64);
    e = passwd_find(db, (const uint8_t *)"b", 1);
    cr_assert_not_null(e);
    cr_assert_eq(e->iterations, PASSWD_ITERATIONS_MAX);
    cr_assert_eq(e->salt_len, 1);
    passwd_free(db);
    free(text);
}

Test(passwd, no_colon)
{
    expect_error("# comment\n\nalice\n", 3, "no ':' between username and password hash");
}

Test(passwd, empty_username)
{
    char text[512];
    snprintf(text, sizeof(text), ":%s\n", h7(1, 12, 64));
    expect_error(text, 1, "empty username");
    snprintf(text, sizeof(text), " \t :%s\n", h7(1, 12, 64));
    expect_error(text, 1, "empty username");
}

Test(passwd, duplicate_username)
{
    char text[4096];
    char h[512];
    snprintf(h, sizeof(h), "%s", h7(1, 12, 64));
    snprintf(text, sizeof(text), "a:%s\nbob:%s\nc:%s\n bob :%s\nc:%s\n", h, h, h, h, h);
    /* The first repeat in the file is reported, with the line it repeats. */
    expect_error(text, 4, "username already defined on line 2");
}

Test(passwd, empty_hash)
{
    expect_error("alice:\n", 1, "no password hash after ':'");
    expect_error("alice:  \r\n", 1, "no password hash after ':'");
}

Test(passwd, second_colon)
{
    char text[512];
    /* mosquitto loads both (strtok); they are errors here. */
    snprintf(text, sizeof(text), "alice::%s\n", h7(1, 12, 64));
    expect_error(text, 1, "more than one ':' (neither usernames nor hashes may contain ':')");
    snprintf(text, sizeof(text), "alice:%s:junk\n", h7(1, 12, 64));
    expect_error(text, 1, "more than one ':' (neither usernames nor hashes may contain ':')");
}

Test(passwd, plain_text_password)
{
    char err[512] = "";
    char want[512];
    struct passwd_db *db = load_text("alice:secret\n", err, sizeof(err));
    cr_assert_null(db);
    snprintf(want, sizeof(want),
             "%s:1: plain-text password: hash the file first with `ringmq-passwd -U %s`", NAME,
             NAME);
    cr_assert_str_eq(err, want);
    cr_assert_null(strstr(err, "secret"), "the password must not be echoed");
}

#define UNKNOWN_TYPE "unknown hash type (expected $6$, $7$, $argon2id$ or SCRAM-SHA-512$)"
#define GARBLED_HASH                                                                               \
    "garbled password hash (expected $6$..., $7$..., $argon2id$... or SCRAM-SHA-512$...)"

Test(passwd, unknown_hash_type)
{
    expect_error("a:$5$c2FsdA==$aA==\n", 1, UNKNOWN_TYPE);
    expect_error("a:$8$1$c2FsdA==$aA==\n", 1, UNKNOWN_TYPE);
    expect_error("a:$77$1$c2FsdA==$aA==\n", 1, UNKNOWN_TYPE);
    expect_error("a:$$7$1$c2FsdA==$aA==\n", 1, UNKNOWN_TYPE);
    expect_error("a:$\n", 1, GARBLED_HASH);
    expect_error("a:$x\n", 1, GARBLED_HASH);
}

Test(passwd, garbled_hash)
{
    const char *g7 = "garbled $7$ hash (expected $7$<iterations>$<base64 salt>$<base64 hash>)";
    const char *g6 = "garbled $6$ hash (expected $6$<base64 salt>$<base64 hash>)";
    expect_error("a:$7\n", 1, g7);
    expect_error("a:$7$101$c2FsdA==\n", 1, g7);
    expect_error("a:$7$101$c2FsdA==$\n", 1, g7);
    expect_error("a:$7$$c2FsdA==$aA==\n", 1, g7);
    expect_error("a:$7$1$c2FsdA==$aA==$\n", 1, g7);
    expect_error("a:$7$1$c2FsdA==$aA==$x$y$z\n", 1, g7);
    expect_error("a:$6$c2FsdA==\n", 1, g6);
    expect_error("a:$6$1$c2FsdA==$aA==\n", 1, g6);
    expect_error("a:$6$$aA==\n", 1, g6);
}

Test(passwd, iterations)
{
    char text[512];
    snprintf(text, sizeof(text), "a:%s\n", h7(0, 12, 64));
    expect_error(text, 1, "iteration count must be at least 1");
    snprintf(text, sizeof(text), "a:%s\n", h7(PASSWD_ITERATIONS_MAX + 1, 12, 64));
    expect_error(text, 1, "iteration count over 100000");
    snprintf(text, sizeof(text), "a:$7$99999999999999999999999$c2FsdA==$%s\n",
             strrchr(h7(1, 12, 64), '$') + 1);
    expect_error(text, 1, "iteration count over 100000");
    expect_error("a:$7$-1$c2FsdA==$aA==\n", 1, "iteration count is not a decimal number");
    expect_error("a:$7$+1$c2FsdA==$aA==\n", 1, "iteration count is not a decimal number");
    expect_error("a:$7$10x$c2FsdA==$aA==\n", 1, "iteration count is not a decimal number");
    expect_error("a:$7$ 10$c2FsdA==$aA==\n", 1, "iteration count is not a decimal number");
}

Test(passwd, bad_base64)
{
    char text[512];
    const char *hash = strrchr(h7(1, 12, 64), '$') + 1;
    snprintf(text, sizeof(text), "a:$7$1$c2FsdA$%s\n", hash); /* no padding */
    expect_error(text, 1, "salt is not valid base64");
    snprintf(text, sizeof(text), "a:$6$c2F*dA==$%s\n", hash);
    expect_error(text, 1, "salt is not valid base64");
    snprintf(text, sizeof(text), "a:$7$1$c2Fs dA==$%s\n", hash);
    expect_error(text, 1, "salt is not valid base64");
    expect_error("a:$7$1$c2FsdA==$aGFzaA=\n", 1, "hash is not valid base64");
    expect_error("a:$6$c2FsdA==$aGFz-A==\n", 1, "hash is not valid base64");
}

Test(passwd, salt_sizes)
{
    char text[512];
    snprintf(text, sizeof(text), "a:%s\n", h7(1, PASSWD_SALT_MAX + 1, 64));
    expect_error(text, 1, "salt longer than 64 bytes");
    const char *hash = strrchr(h7(1, 12, 64), '$') + 1;
    snprintf(text, sizeof(text), "a:$7$1$====$%s\n", hash);
    expect_error(text, 1, "salt is not valid base64");
}

Test(passwd, hash_sizes)
{
    char text[512];
    snprintf(text, sizeof(text), "a:%s\n", h7(1, 12, 63));
    expect_error(text, 1, "hash is 63 bytes, expected 64");
    snprintf(text, sizeof(text), "a:%s\n", h7(1, 12, 65));
    expect_error(text, 1, "hash is 65 bytes, expected 64");
    snprintf(text, sizeof(text), "a:$6$c2FsdA==$%s\n", strrchr(h7(1, 12, 32), '$') + 1);
    expect_error(text, 1, "hash is 32 bytes, expected 64");
}

Test(passwd, nul_byte)
{
    char err[512] = "";
    char want[512];
    /* mosquitto's C strings would stop at the NUL and load "al". */
    static const char text[] = "# fine\nal\0ice:x\n";
    struct passwd_db *db = parse(text, sizeof(text) - 1, err, sizeof(err));
    cr_assert_null(db);
    snprintf(want, sizeof(want), "%s:2: NUL byte in the line", NAME);
    cr_assert_str_eq(err, want);
    static const char text2[] = "#\0\n";
    db = parse(text2, sizeof(text2) - 1, err, sizeof(err));
    cr_assert_null(db);
    snprintf(want, sizeof(want), "%s:1: NUL byte in the line", NAME);
    cr_assert_str_eq(err, want);
}

Test(passwd, username_limits)
{
    char *text = malloc(70000);
    cr_assert_not_null(text);
    memset(text, 'u', PASSWD_USER_MAX + 1);
    snprintf(text + PASSWD_USER_MAX + 1, 70000 - PASSWD_USER_MAX - 1, ":%s\n", h7(1, 12, 64));
    expect_error(text, 1, "username longer than 65535 bytes");
    free(text);

    char line[512];
    snprintf(line, sizeof(line), "caf\xe9:%s\n", h7(1, 12, 64));
    expect_error(line, 1, "username is not valid UTF-8 (no MQTT client could send it)");
    snprintf(line, sizeof(line),
             "\xEF\xBB\xBF"
             "alice:%s\n",
             h7(1, 12, 64));
    expect_error(line, 1,
                 "username starts with a UTF-8 byte order mark: save the file without one");
}

Test(passwd, line_too_long)
{
    size_t n = 64 * 1024 + 1024 + 1;
    char *text = malloc(n + 2);
    cr_assert_not_null(text);
    memset(text, '#', n);
    text[n] = '\n';
    text[n + 1] = 0;
    /* Even a comment: nothing reads an unbounded line. */
    expect_error(text, 1, "line longer than 66560 bytes");
    text[n - 1] = '\n'; /* 66560 bytes: a fine comment */
    text[n] = 0;
    char err[256] = "";
    struct passwd_db *db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    passwd_free(db);
    free(text);
}

Test(passwd, error_names_the_right_line)
{
    char text[4096];
    char h[512];
    snprintf(h, sizeof(h), "%s", h7(1, 12, 64));
    snprintf(text, sizeof(text), "# c\n\na:%s\r\nb:%s\n\n#x\nc:%s\nd:$7$0$c2FsdA==$aA==\n", h, h,
             h);
    expect_error(text, 8, "iteration count must be at least 1");
}

Test(passwd, input_level_errors)
{
    /* Reading the file (cannot open, not a regular file, too large for the
     * reader) is net/file.c's; what is left is a bound on the bytes, checked
     * however they came. One byte over it, only the length looked at. */
    char err[512] = "";
    char want[512];
    size_t over = (size_t)PASSWD_FILE_MAX + 1;
    uint8_t *big = malloc(over);
    cr_assert_not_null(big);
    memset(big, '#', over);
    cr_assert_null(parse(big, over, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: larger than 67108864 bytes", NAME);
    cr_assert_str_eq(err, want);
    /* At the bound it parses: 64 MiB of one comment line would be over the
     * line limit, so comments of 1023 bytes each. */
    for (size_t i = 1023; i < over - 1; i += 1024)
        big[i] = '\n';
    cr_assert_null(parse(big, over, err, sizeof(err)));
    struct passwd_db *db = parse(big, over - 1, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), 0);
    passwd_free(db);
    free(big);
    /* No bytes at all, even without a buffer, is an empty file. */
    db = parse(NULL, 0, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), 0);
    passwd_free(db);
}

Test(passwd, err_buffer_may_be_small_or_absent)
{
    char err[8];
    memset(err, 'x', sizeof(err));
    cr_assert_null(load_text("alice\n", err, sizeof(err)));
    cr_assert_eq(err[7], 0);
    cr_assert_eq(strncmp(err, NAME, 7), 0);
    cr_assert_null(load_text("alice\n", NULL, 0));
}

/* ------------------------------------------------------------------------ */
/* SCRAM-SHA-512 entries                                                     */
/* ------------------------------------------------------------------------ */

/* "SCRAM-SHA-512$<it>:<salt>$<StoredKey>:<ServerKey>" with salt_len bytes of
 * salt and (meaningless) keys of the given sizes. */
static char *hs(uint32_t it, size_t salt_len, size_t sk_len, size_t svk_len)
{
    char *buf = next_buf();
    uint8_t salt[128];
    uint8_t key[128];
    memset(salt, 's', sizeof(salt));
    memset(key, 'k', sizeof(key));
    char sb[256];
    char kb[256];
    char vb[256];
    b64(sb, salt, salt_len);
    b64(kb, key, sk_len);
    b64(vb, key, svk_len);
    snprintf(buf, 1024, "SCRAM-SHA-512$%u:%s$%s:%s", it, sb, kb, vb);
    return buf;
}

/* RFC 7677's salt and password, 4096 rounds; StoredKey and ServerKey from
 * Python (the same script as scram_test.c's known answers):
 *   sp = hashlib.pbkdf2_hmac('sha512', b'pencil', salt, 4096, 64)
 *   sk = sha512(hmac(sp, b'Client Key')); svk = hmac(sp, b'Server Key') */
#define KAT_SALT_B64 "W22ZaJ0SNY7soEsUEjb6gQ=="
#define KAT_LINE                                                                                   \
    "user:SCRAM-SHA-512$4096:W22ZaJ0SNY7soEsUEjb6gQ==$6AAub3065EYRmyFpM2RNwqK+eGnrkYuEWbXn19LsEmB" \
    "qzu8QaCXNc1FwpnX9NhH2hK/60dzj9DoO5DvVkOHbvg==:jZHbYjC1aHh0/hKbxyBuGFjDrgjgKTT1esA7awWiKcRZ0o" \
    "/0b1yWEebBeSVkkCFewf91nLDfKF24mvD5nmE6rA=="
#define KAT_STORED_KEY                                                                             \
    "6AAub3065EYRmyFpM2RNwqK+eGnrkYuEWbXn19LsEmBqzu8QaCXNc1FwpnX9NhH2hK/60dzj9DoO5DvVkOHbvg=="
#define KAT_SERVER_KEY                                                                             \
    "jZHbYjC1aHh0/hKbxyBuGFjDrgjgKTT1esA7awWiKcRZ0o/0b1yWEebBeSVkkCFewf91nLDfKF24mvD5nmE6rA=="

static void unb64(uint8_t *out, size_t want, const char *in)
{
    uint8_t buf[128]; /* BoringSSL wants room for the unpadded length */
    size_t n = 0;
    cr_assert_eq(EVP_DecodeBase64(buf, &n, sizeof(buf), (const uint8_t *)in, strlen(in)), 1);
    cr_assert_eq(n, want);
    memcpy(out, buf, n);
}

Test(passwd, scram_entry_known_answer)
{
    char err[256] = "";
    struct passwd_db *db = load_text(KAT_LINE "\n", err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    const struct passwd_entry *e = passwd_find(db, (const uint8_t *)"user", 4);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, PASSWD_SCRAM_SHA512);
    cr_assert_eq(e->iterations, 4096);
    uint8_t salt[16];
    uint8_t sk[64];
    uint8_t svk[64];
    unb64(salt, sizeof(salt), KAT_SALT_B64);
    unb64(sk, sizeof(sk), KAT_STORED_KEY);
    unb64(svk, sizeof(svk), KAT_SERVER_KEY);
    cr_assert_eq(e->salt_len, 16);
    cr_assert_eq(memcmp(e->salt, salt, 16), 0);
    cr_assert_eq(memcmp(e->hash, sk, 64), 0, "hash holds StoredKey");
    cr_assert_eq(memcmp(e->server_key, svk, 64), 0);
    cr_assert(passwd_check(e, (const uint8_t *)"pencil", 6));
    cr_assert_not(passwd_check(e, (const uint8_t *)"pencil ", 7));
    cr_assert_not(passwd_check(e, (const uint8_t *)"Pencil", 6));
    cr_assert_not(passwd_check(e, (const uint8_t *)"", 0));
    passwd_free(db);

    /* The generator writes exactly Python's line for the same salt. */
    char line[1024];
    int n = passwd_scram_line((const uint8_t *)"user", 4, (const uint8_t *)"pencil", 6, salt,
                              sizeof(salt), 4096, line, sizeof(line));
    cr_assert_eq(n, (int)strlen(KAT_LINE));
    cr_assert_str_eq(line, KAT_LINE);
}

Test(passwd, scram_line_loads_and_checks)
{
    struct {
        const char *user;
        const char *pw;
        uint32_t it;
    } users[] = {
        {"plain", "correct horse", PASSWD_SCRAM_ITERATIONS_DEFAULT},
        {"d,a=ve", "p@ss:word,=x", 1},
        {"zoë", "ünïcode", 7},
        {"empty", "", 2},
        {"in ner\tblank", "pw", PASSWD_ITERATIONS_MAX},
    };
    enum { N = sizeof(users) / sizeof(users[0]) };
    char text[4096];
    size_t off = 0;
    for (size_t i = 0; i < N; i++) {
        char line[1024];
        int n = scram_line((const uint8_t *)users[i].user, strlen(users[i].user),
                           (const uint8_t *)users[i].pw, strlen(users[i].pw), users[i].it, line,
                           sizeof(line));
        cr_assert_gt(n, 0, "%s", users[i].user);
        cr_assert_eq(strlen(line), (size_t)n, "NUL-terminated, no newline");
        cr_assert_null(strchr(line, '\n'));
        off += (size_t)snprintf(text + off, sizeof(text) - off, "%s\n", line);
        cr_assert_lt(off, sizeof(text));
    }
    char err[256] = "";
    struct passwd_db *db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), N);
    for (size_t i = 0; i < N; i++) {
        const struct passwd_entry *e =
            passwd_find(db, (const uint8_t *)users[i].user, strlen(users[i].user));
        cr_assert_not_null(e, "%s", users[i].user);
        cr_assert_eq(e->kind, PASSWD_SCRAM_SHA512);
        cr_assert_eq(e->iterations, users[i].it);
        cr_assert_eq(e->salt_len, PASSWD_SCRAM_SALT_LEN);
        cr_assert(check(db, users[i].user, users[i].pw), "%s", users[i].user);
        cr_assert_not(check(db, users[i].user, "wrong"), "%s", users[i].user);
    }
    passwd_free(db);

    /* Each line gets a fresh salt: the same user and password twice differ. */
    char a[1024];
    char b[1024];
    cr_assert_gt(scram_line((const uint8_t *)"u", 1, (const uint8_t *)"p", 1, 1, a, sizeof(a)), 0);
    cr_assert_gt(scram_line((const uint8_t *)"u", 1, (const uint8_t *)"p", 1, 1, b, sizeof(b)), 0);
    cr_assert_str_neq(a, b);
    /* A NULL password of length 0 is the empty password. */
    cr_assert_gt(scram_line((const uint8_t *)"u", 1, NULL, 0, 1, a, sizeof(a)), 0);
}

Test(passwd, scram_line_longest_name)
{
    char *user = malloc(PASSWD_USER_MAX + 1);
    cr_assert_not_null(user);
    memset(user, 'u', PASSWD_USER_MAX + 1);
    size_t cap = PASSWD_USER_MAX + 1024;
    char *line = malloc(cap);
    cr_assert_not_null(line);
    cr_assert_eq(scram_line((const uint8_t *)user, PASSWD_USER_MAX + 1, (const uint8_t *)"pw", 2, 1,
                            line, cap),
                 -1);
    int n =
        scram_line((const uint8_t *)user, PASSWD_USER_MAX, (const uint8_t *)"pw", 2, 1, line, cap);
    cr_assert_gt(n, PASSWD_USER_MAX);
    line[n] = '\n';
    char err[256] = "";
    struct passwd_db *db = parse(line, (size_t)n + 1, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    const struct passwd_entry *e = passwd_find(db, (const uint8_t *)user, PASSWD_USER_MAX);
    cr_assert_not_null(e);
    cr_assert(passwd_check(e, (const uint8_t *)"pw", 2));
    passwd_free(db);
    free(line);
    free(user);
}

Test(passwd, scram_line_refuses_what_would_not_load)
{
    char out[1024];
    static const char *const bad[] = {
        "",       "a:b",   ":",    "caf\xe9", "a\nb",          " lead",
        "trail ", "tab\t", "\rcr", "#hash",   "\xEF\xBB\xBFx", "\xc3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(scram_line((const uint8_t *)bad[i], strlen(bad[i]), (const uint8_t *)"pw", 2,
                                1, out, sizeof(out)),
                     -1, "user %zu", i);
    /* A NUL inside the name. */
    cr_assert_eq(
        scram_line((const uint8_t *)"a\0b", 3, (const uint8_t *)"pw", 2, 1, out, sizeof(out)), -1);
    cr_assert_eq(scram_line(NULL, 0, (const uint8_t *)"pw", 2, 1, out, sizeof(out)), -1);
    /* A '#' after the first byte is an ordinary name. */
    cr_assert_gt(
        scram_line((const uint8_t *)"a#", 2, (const uint8_t *)"pw", 2, 1, out, sizeof(out)), 0);

    /* Iterations: 1..PASSWD_ITERATIONS_MAX. */
    cr_assert_eq(scram_line((const uint8_t *)"u", 1, (const uint8_t *)"pw", 2, 0, out, sizeof(out)),
                 -1);
    cr_assert_eq(scram_line((const uint8_t *)"u", 1, (const uint8_t *)"pw", 2,
                            PASSWD_ITERATIONS_MAX + 1, out, sizeof(out)),
                 -1);

    /* out must hold the line and its NUL: exactly enough works, a byte less
     * does not. */
    int n = scram_line((const uint8_t *)"u", 1, (const uint8_t *)"pw", 2, 4096, out, sizeof(out));
    cr_assert_eq(n, (int)strlen("u:SCRAM-SHA-512$4096:") + 24 + 1 + 88 + 1 + 88);
    char exact[512];
    memset(exact, 'x', sizeof(exact));
    cr_assert_eq(
        scram_line((const uint8_t *)"u", 1, (const uint8_t *)"pw", 2, 4096, exact, (size_t)n), -1);
    cr_assert_eq(
        scram_line((const uint8_t *)"u", 1, (const uint8_t *)"pw", 2, 4096, exact, (size_t)n + 1),
        n);
    cr_assert_eq(exact[n], 0);
    cr_assert_eq(exact[n + 1], 'x', "nothing written past the NUL");
    cr_assert_eq(scram_line((const uint8_t *)"u", 1, (const uint8_t *)"pw", 2, 4096, NULL, 0), -1);
}

Test(passwd, scram_entry_limits_that_load)
{
    char text[2048];
    char err[256] = "";
    snprintf(text, sizeof(text), "a:%s\nb:%s\nc:%s\n", hs(1, 64, 64, 64),
             hs(PASSWD_ITERATIONS_MAX, 1, 64, 64), hs(4096, 16, 64, 64));
    struct passwd_db *db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    const struct passwd_entry *e = passwd_find(db, (const uint8_t *)"a", 1);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, PASSWD_SCRAM_SHA512);
    cr_assert_eq(e->salt_len, 64);
    cr_assert_eq(e->iterations, 1);
    e = passwd_find(db, (const uint8_t *)"b", 1);
    cr_assert_eq(e->iterations, PASSWD_ITERATIONS_MAX);
    cr_assert_eq(e->salt_len, 1);
    passwd_free(db);
    /* Blanks around the hash are trimmed, as for the other kinds. */
    snprintf(text, sizeof(text), " a : %s \r\n", hs(1, 16, 64, 64));
    db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    passwd_free(db);
}

Test(passwd, scram_entry_errors)
{
    char text[2048];
    const char *g = "garbled SCRAM-SHA-512 hash (expected SCRAM-SHA-512$<iterations>:<base64 "
                    "salt>$<base64 StoredKey>:<base64 ServerKey>)";
    /* Take a good hash apart. */
    char good[1024];
    snprintf(good, sizeof(good), "%s", hs(4096, 16, 64, 64));
    const char *salt = strchr(good, ':') + 1;
    const char *sk = strchr(salt, '$') + 1;
    const char *svk = strchr(sk, ':') + 1;
    int salt_len = (int)(sk - 1 - salt);
    int sk_len = (int)(svk - 1 - sk);

    expect_error("a:SCRAM-SHA-512\n", 1, g);
    expect_error("a:SCRAM-SHA-512$\n", 1, g);
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:%.*s\n", salt_len, salt);
    expect_error(text, 1, g); /* no keys */
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:%.*s$%.*s\n", salt_len, salt, sk_len, sk);
    expect_error(text, 1, g); /* no ServerKey */
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:%.*s$%.*s:\n", salt_len, salt, sk_len, sk);
    expect_error(text, 1, g);
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$:%.*s$%.*s:%s\n", salt_len, salt, sk_len, sk,
             svk);
    expect_error(text, 1, g); /* empty iterations */
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:$%.*s:%s\n", sk_len, sk, svk);
    expect_error(text, 1, g); /* empty salt field */
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:%.*s$:%s\n", salt_len, salt, svk);
    expect_error(text, 1, g); /* empty StoredKey */
    snprintf(text, sizeof(text), "a:%s$x\n", good);
    expect_error(text, 1, g); /* a second '$' */
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096$%.*s$%.*s:%s\n", salt_len, salt, sk_len, sk,
             svk);
    expect_error(text, 1, g); /* '$' for ':' */
    /* A ':' anywhere else in the hash. */
    snprintf(text, sizeof(text), "a:%s:x\n", good);
    expect_error(text, 1, g);
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:%.*s:x$%.*s:%s\n", salt_len, salt, sk_len,
             sk, svk);
    expect_error(text, 1, g);
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096::%.*s$%.*s:%s\n", salt_len, salt, sk_len, sk,
             svk);
    expect_error(text, 1, g);
    /* ... and before it, or around other kinds, still "more than one ':'". */
    const char *two = "more than one ':' (neither usernames nor hashes may contain ':')";
    snprintf(text, sizeof(text), "a::%s\n", good);
    expect_error(text, 1, two);
    snprintf(text, sizeof(text), "a:x:%s\n", good);
    expect_error(text, 1, two);
    snprintf(text, sizeof(text), "a:%s:%s\n", h7(1, 12, 64), "x");
    expect_error(text, 1, two);
    snprintf(text, sizeof(text), "a:$7$1:%s\n", strchr(good, ':') + 1);
    expect_error(text, 1, two);

    /* Other mechanisms and spellings. */
    const char *mech = "unsupported SCRAM mechanism (only SCRAM-SHA-512$... entries are read)";
    snprintf(text, sizeof(text), "a:SCRAM-SHA-256$4096:%s\n", salt);
    expect_error(text, 1, mech);
    snprintf(text, sizeof(text), "a:SCRAM-SHA-5122$4096:%s\n", salt);
    expect_error(text, 1, mech);
    expect_error("a:SCRAM-\n", 1, mech);

    /* Iterations, as for $7$. */
    snprintf(text, sizeof(text), "a:%s\n", hs(0, 16, 64, 64));
    expect_error(text, 1, "iteration count must be at least 1");
    snprintf(text, sizeof(text), "a:%s\n", hs(PASSWD_ITERATIONS_MAX + 1, 16, 64, 64));
    expect_error(text, 1, "iteration count over 100000");
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$99999999999999999999:%s\n", salt);
    expect_error(text, 1, "iteration count over 100000");
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$-1:%s\n", salt);
    expect_error(text, 1, "iteration count is not a decimal number");
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$ 4096:%s\n", salt);
    expect_error(text, 1, "iteration count is not a decimal number");

    /* Salt. */
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:c2FsdA$%.*s:%s\n", sk_len, sk, svk);
    expect_error(text, 1, "salt is not valid base64"); /* no padding */
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:====$%.*s:%s\n", sk_len, sk, svk);
    expect_error(text, 1, "salt is not valid base64");
    snprintf(text, sizeof(text), "a:%s\n", hs(4096, PASSWD_SALT_MAX + 1, 64, 64));
    expect_error(text, 1, "salt longer than 64 bytes");

    /* StoredKey and ServerKey: padded base64, 64 bytes. */
    snprintf(text, sizeof(text), "a:%s\n", hs(4096, 16, 63, 64));
    expect_error(text, 1, "StoredKey is 63 bytes, expected 64");
    snprintf(text, sizeof(text), "a:%s\n", hs(4096, 16, 65, 64));
    expect_error(text, 1, "StoredKey is 65 bytes, expected 64");
    snprintf(text, sizeof(text), "a:%s\n", hs(4096, 16, 64, 32));
    expect_error(text, 1, "ServerKey is 32 bytes, expected 64");
    snprintf(text, sizeof(text), "a:%s\n", hs(4096, 16, 64, 65));
    expect_error(text, 1, "ServerKey is 65 bytes, expected 64");
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:%.*s$%.*s:%.*s\n", salt_len, salt, sk_len,
             sk, (int)strlen(svk) - 2, svk); /* padding cut off */
    expect_error(text, 1, "ServerKey is not valid base64");
    snprintf(text, sizeof(text), "a:SCRAM-SHA-512$4096:%.*s$%.*s*:%s\n", salt_len, salt, sk_len, sk,
             svk);
    expect_error(text, 1, "StoredKey is not valid base64");

    /* The line number is right among other kinds. */
    snprintf(text, sizeof(text), "# c\nx:%s\ny:%s\nz:%s\n", h7(1, 12, 64), good,
             hs(4096, 16, 64, 63));
    expect_error(text, 4, "ServerKey is 63 bytes, expected 64");
}

/* ------------------------------------------------------------------------ */
/* Disguises for unknown names                                              */
/* ------------------------------------------------------------------------ */

Test(passwd, decoy_check_is_always_false)
{
    char err[256] = "";
    struct passwd_db *db = load_data_file(err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    /* Every real password in the file, and some that are not. */
    static const char *const pws[] = {
        "correct horse", "hunter2", "p@ss:word,=x", "dave-pw", "ünïcode", "", "x"};
    for (size_t i = 0; i < sizeof(pws) / sizeof(pws[0]); i++)
        cr_assert_not(passwd_check_decoy(db, (const uint8_t *)pws[i], strlen(pws[i])), "%s",
                      pws[i]);
    cr_assert_not(passwd_check_decoy(db, NULL, 0));
    cr_assert_not(passwd_check_decoy(NULL, (const uint8_t *)"x", 1));
    passwd_free(db);
}

Test(passwd, decoy_copy_is_the_decoy_by_value)
{
    char err[256] = "";
    struct passwd_db *db = load_data_file(err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    struct passwd_entry e;
    memset(&e, 0xa5, sizeof(e));
    cr_assert(passwd_decoy_copy(db, &e));
    const struct passwd_entry *d = passwd_decoy_entry(db);
    cr_expect_null(e.user, "no pointer into the table");
    cr_expect_eq(e.user_len, 0);
    cr_expect_eq(e.kind, d->kind);
    cr_expect_eq(e.iterations, d->iterations);
    cr_expect_eq(e.salt_len, d->salt_len);
    cr_expect_arr_eq(e.salt, d->salt, d->salt_len);
    cr_expect_arr_eq(e.hash, d->hash, sizeof(e.hash));
    passwd_free(db);
    cr_expect_not(passwd_check(&e, (const uint8_t *)"x", 1), "usable after the table is gone");
    struct passwd_entry untouched;
    memset(&untouched, 0x5a, sizeof(untouched));
    cr_expect_not(passwd_decoy_copy(NULL, &untouched));
    cr_expect_eq(untouched.kind, 0x5a, "out untouched without a decoy");
    db = load_text("", err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_expect_not(passwd_decoy_copy(db, &untouched), "an empty table has nothing to imitate");
    passwd_free(db);
}

static const struct passwd_entry *decoy_of(const char *text, struct passwd_db **db)
{
    char err[256] = "";
    *db = load_text(text, err, sizeof(err));
    cr_assert_not_null(*db, "%s", err);
    return passwd_decoy_entry(*db);
}

Test(passwd, decoy_imitates_the_most_common_entry)
{
    struct passwd_db *db;
    char err[256] = "";
    /* data/passwd: five $7$ at 101 rounds with 12-byte salts, four SCRAM, one $6$. */
    db = load_data_file(err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    const struct passwd_entry *d = passwd_decoy_entry(db);
    cr_assert_not_null(d);
    cr_assert_eq(d->kind, PASSWD_PBKDF2_SHA512);
    cr_assert_eq(d->iterations, 101);
    cr_assert_eq(d->salt_len, 12);
    passwd_free(db);

    char text[4096];
    /* SCRAM majority, and among SCRAM entries 8192 rounds and 20-byte salts. */
    snprintf(text, sizeof(text), "a:%s\nb:%s\nc:%s\nd:%s\ne:%s\nf:%s\n", hs(8192, 20, 64, 64),
             hs(8192, 20, 64, 64), hs(4096, 16, 64, 64), h7(50, 12, 64), h7(50, 12, 64),
             h7(50, 12, 64));
    /* 3 SCRAM against 3 $7$: a tie goes to SCRAM, the costlier. */
    d = decoy_of(text, &db);
    cr_assert_eq(d->kind, PASSWD_SCRAM_SHA512);
    cr_assert_eq(d->iterations, 8192);
    cr_assert_eq(d->salt_len, 20);
    passwd_free(db);

    /* $6$ majority: no iterations. */
    char h6[512];
    snprintf(h6, sizeof(h6), "$6$%s", strchr(h7(1, 12, 64) + 3, '$') + 1);
    snprintf(text, sizeof(text), "a:%s\nb:%s\nc:%s\n", h6, h6, h7(1000, 12, 64));
    d = decoy_of(text, &db);
    cr_assert_eq(d->kind, PASSWD_SHA512);
    cr_assert_eq(d->iterations, 0);
    cr_assert_eq(d->salt_len, 12);
    passwd_free(db);

    /* A tie of iteration counts goes to the larger. */
    snprintf(text, sizeof(text), "a:%s\nb:%s\n", h7(10, 12, 64), h7(20, 8, 64));
    d = decoy_of(text, &db);
    cr_assert_eq(d->kind, PASSWD_PBKDF2_SHA512);
    cr_assert_eq(d->iterations, 20);
    cr_assert_eq(d->salt_len, 12);
    passwd_free(db);

    /* Nothing to imitate in an empty table: no work, still false. */
    d = decoy_of("# nobody\n", &db);
    cr_assert_null(d);
    cr_assert_not(passwd_check_decoy(db, (const uint8_t *)"x", 1));
    passwd_free(db);
    cr_assert_null(passwd_decoy_entry(NULL));
}

/* A decoy costs what a real check costs because it runs the same
 * derivation with the same kind and iteration count as the most common
 * entry (decoy_imitates_the_most_common_entry checks that); a test timing
 * the two against each other would be a timing threshold, which fails on
 * a busy machine, so there is none. */

Test(passwd, scram_disguise_copies_the_scram_entries)
{
    char err[256] = "";
    struct passwd_db *db = load_data_file(err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_scram_iterations(db), 4096);
    cr_assert_eq(passwd_scram_salt_len(db), 16);
    passwd_free(db);

    /* Only SCRAM entries count: $7$ entries do not move these. */
    char text[4096];
    snprintf(text, sizeof(text), "a:%s\nb:%s\nc:%s\nd:%s\ne:%s\nf:%s\n", hs(8192, 20, 64, 64),
             hs(8192, 20, 64, 64), hs(4096, 16, 64, 64), h7(50, 12, 64), h7(50, 12, 64),
             h7(50, 12, 64));
    db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_scram_iterations(db), 8192);
    cr_assert_eq(passwd_scram_salt_len(db), 20);
    passwd_free(db);

    /* Without SCRAM entries, what --scram-entry would write. */
    snprintf(text, sizeof(text), "a:%s\n", h7(50, 12, 64));
    db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_scram_iterations(db), PASSWD_SCRAM_ITERATIONS_DEFAULT);
    cr_assert_eq(passwd_scram_salt_len(db), PASSWD_SCRAM_SALT_LEN);
    passwd_free(db);
    cr_assert_eq(passwd_scram_iterations(NULL), PASSWD_SCRAM_ITERATIONS_DEFAULT);
    cr_assert_eq(passwd_scram_salt_len(NULL), PASSWD_SCRAM_SALT_LEN);
}

/* The decoy key of a table loaded from text. */
static void decoy_key_of(const char *text, uint8_t key[64])
{
    char err[256] = "";
    struct passwd_db *db = load_text(text, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    const uint8_t *k = passwd_decoy_key(db);
    cr_assert_not_null(k);
    memcpy(key, k, 64);
    passwd_free(db);
}

Test(passwd, decoy_key_follows_the_entries)
{
    uint8_t k1[64];
    uint8_t k2[64];
    char err[256] = "";
    /* Two loads of the same file, as two runs of the broker would do. */
    struct passwd_db *a = load_data_file(err, sizeof(err));
    struct passwd_db *b = load_data_file(err, sizeof(err));
    cr_assert(a && b, "%s", err);
    cr_assert_eq(memcmp(passwd_decoy_key(a), passwd_decoy_key(b), 64), 0);
    passwd_free(a);
    passwd_free(b);
    cr_assert_null(passwd_decoy_key(NULL));

    char h1[512];
    char h2[512];
    snprintf(h1, sizeof(h1), "%s", h7_for("pw1", 3));
    snprintf(h2, sizeof(h2), "%s", hs(4096, 16, 64, 64));
    char text[2048];
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", h1, h2);
    decoy_key_of(text, k1);
    /* Comments, blank lines, blanks, order and CRLF do not change it. */
    snprintf(text, sizeof(text), "# a comment\n\n bob : %s\r\nalice:%s\r\n", h2, h1);
    decoy_key_of(text, k2);
    cr_assert_eq(memcmp(k1, k2, 64), 0);
    /* Another password for one user, another name, one more or one fewer
     * user: another key. */
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", h7_for("pw2", 3), h2);
    decoy_key_of(text, k2);
    cr_assert_neq(memcmp(k1, k2, 64), 0);
    snprintf(text, sizeof(text), "alicf:%s\nbob:%s\n", h1, h2);
    decoy_key_of(text, k2);
    cr_assert_neq(memcmp(k1, k2, 64), 0);
    snprintf(text, sizeof(text), "alice:%s\n", h1);
    decoy_key_of(text, k2);
    cr_assert_neq(memcmp(k1, k2, 64), 0);
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\ncarol:%s\n", h1, h2, h2);
    decoy_key_of(text, k2);
    cr_assert_neq(memcmp(k1, k2, 64), 0);
}

/* ------------------------------------------------------------------------ */
/* argon2id entries (mosquitto 2.1)                                         */
/* ------------------------------------------------------------------------ */

/* mosq: argon2id_hash_encoded as mosquitto 2.1's mosquitto_passwd calls it
 * (m=47104, t=1, p=1, 64 random bytes of salt, a 64-byte hash). kat: the
 * reference implementation's known answer (phc-winner-argon2 src/test.c).
 * cli: `argon2 saltsaltsaltsalt -id -t 2 -k 128 -p 2 -l 24`. The others:
 * argon2id_hash_encoded with random salts. Passwords in a2_users. */
#define A2_MOSQ                                                                                    \
    "$argon2id$v=19$m=47104,t=1,p=1$V3CmFjpfnFpYwbi+y163JDI7S+aYUFsyGjEL9VapAiwlTrO0+XN6mp/fJFTAT" \
    "knKyCUUHFCBRqw5wnFQ+U+flw$nX3sMhrOgEiev/5LxpGtdPVrFCBZDM/kZOWLzqdgTawrB1g+2STh6DFBMMmwmNICe"  \
    "iu3xNvPSpUW91HiDHl6Sw"
#define A2_KAT                                                                                     \
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
#define A2_CHEAP                                                                                   \
    "$argon2id$v=19$m=64,t=1,p=1$ha8lQSHvMFbatTlGeKCCHw$UqAeStWYi3OVE4N7cgKX4FwlVKEejy+S3N4yQQ/"   \
    "NRao"
#define A2_LANES                                                                                   \
    "$argon2id$v=19$m=256,t=2,p=4$Y8DEHzUnrTfad1la2nG4mg$KZelLHzKr45UmEdJMyCf7O3y/"                \
    "otGqvEgPDUPQZscLUM"
#define A2_EMPTY "$argon2id$v=19$m=8,t=1,p=1$dH4ZbE9hz14$x0XOAgUg6QWfzAwJSOFo7Q"
#define A2_CLI                                                                                     \
    "$argon2id$v=19$m=128,t=2,p=2$c2FsdHNhbHRzYWx0c2FsdA$OgOU6dlU17dLbU9gEaFaqlJcOe8HFs0v"
#define A2_FILE                                                                                    \
    "mosq:" A2_MOSQ "\nkat:" A2_KAT "\ncheap:" A2_CHEAP "\nlanes:" A2_LANES "\nempty:" A2_EMPTY    \
    "\ncli:" A2_CLI "\n"
/* An 8-byte salt and a 16-byte hash, both canonical unpadded base64. */
#define A2_SH "$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5Q"

static const struct {
    const char *user, *pw;
    uint32_t m, t, p;
    size_t salt_len, hash_len;
} a2_users[] = {{"mosq", "correct horse battery", 47104, 1, 1, 64, 64},
                {"kat", "password", 65536, 2, 1, 8, 32},
                {"cheap", "hunter2", 64, 1, 1, 16, 32},
                {"lanes", "ünïcode", 256, 2, 4, 16, 32},
                {"empty", "", 8, 1, 1, 8, 16},
                {"cli", "p@ss:word", 128, 2, 2, 16, 24}};

/* "$argon2id$v=19$<params>$<salt>$<hash>", salt and hash made of 'a's. */
static char *ha2(const char *params, size_t salt_len, size_t hash_len)
{
    char *buf = next_buf();
    uint8_t bytes[128];
    char sb[256], hb[256];
    memset(bytes, 'a', sizeof(bytes));
    b64(sb, bytes, salt_len);
    b64(hb, bytes, hash_len);
    *strchrnul(sb, '=') = *strchrnul(hb, '=') = '\0';
    snprintf(buf, 1024, "$argon2id$v=19$%s$%s$%s", params, sb, hb);
    return buf;
}

/* The error for "a:<hash>" alone. */
static void expect_hash_error(const char *hash, const char *what)
{
    char text[1024];
    snprintf(text, sizeof(text), "a:%s\n", hash);
    expect_error(text, 1, what);
}

Test(passwd, argon2id_known_answers_and_wrong_passwords)
{
    char err[256] = "";
    struct passwd_db *db = load_text(A2_FILE, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    for (size_t i = 0; i < sizeof(a2_users) / sizeof(a2_users[0]); i++) {
        const char *u = a2_users[i].user, *pw = a2_users[i].pw;
        size_t n = strlen(pw);
        const struct passwd_entry *e = passwd_find(db, (const uint8_t *)u, strlen(u));
        cr_assert(e && e->kind == PASSWD_ARGON2ID && e->memory_kib == a2_users[i].m &&
                      e->iterations == a2_users[i].t && e->lanes == a2_users[i].p &&
                      e->salt_len == a2_users[i].salt_len && e->hash_len == a2_users[i].hash_len,
                  "%s", u);
        cr_assert(check(db, u, pw), "%s", u);
        /* One byte fewer, one more, a NUL after it, the hash one bit off. */
        char other[64];
        snprintf(other, sizeof(other), "%s ", pw);
        cr_assert_not(n > 0 && passwd_check(e, (const uint8_t *)pw, n - 1), "%s", u);
        cr_assert_not(check(db, u, other), "%s", u);
        other[n] = '\0';
        cr_assert_not(passwd_check(e, (const uint8_t *)other, n + 1), "%s", u);
        struct passwd_entry flipped = *e;
        flipped.hash[flipped.hash_len - 1] ^= 1;
        cr_assert_not(passwd_check(&flipped, (const uint8_t *)pw, n), "%s", u);
    }
    passwd_free(db);
}

/* Each field spoilt, and each bound passed by one. */
#define A2E_G                                                                                      \
    "garbled argon2id hash (expected $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, "  \
    "salt and hash in unpadded base64)"
#define A2E_P     "garbled argon2id parameters (expected m=<KiB>,t=<passes>,p=<lanes> in decimal)"
#define A2E_VER   "unsupported argon2id version (only v=19, what libargon2 writes)"
#define A2E_S64   "argon2id salt is not valid unpadded base64"
#define A2E_H64   "argon2id hash is not valid unpadded base64"
#define A2E_MEM   "argon2id memory cost m over 131072 KiB (128 MiB)"
#define A2E_TIME  "argon2id time cost t outside 1..32"
#define A2E_LANES "argon2id parallelism p outside 1..64"
#define A2E_PER   "argon2id memory cost m under 8 KiB per lane (8 * p)"
#define A2E_WORK  "argon2id work m * t over 262144 KiB (256 MiB of passes): lower m or t"
#define A2E_M     "$argon2id$v=19$m=64,t=1,p=1"
#define A2E_VAR   "unsupported argon2 variant (only $argon2id$ entries are read)"
#define A2E_B(p)  "$argon2id$v=19$" p A2_SH
static const struct {
    const char *hash, *why;
} a2_bad[] = {
    {"$argon2i$v=19$m=64,t=1,p=1" A2_SH, A2E_VAR},
    {"$argon2d$v=19$m=64,t=1,p=1" A2_SH, A2E_VAR},
    {"$argon2$v=19$m=64,t=1,p=1" A2_SH, UNKNOWN_TYPE},
    {"$argon2id", A2E_G},
    {"$argon2id$m=64,t=1,p=1" A2_SH, A2E_G},
    {A2E_M "$c29tZXNhbHQ", A2E_G},
    {A2E_M A2_SH "$x", A2E_G},
    {A2E_M A2_SH "$", A2E_G},
    {A2E_M "$$CTFhFdXPJO1aFaMaO6Mm5Q", A2E_G},
    {A2E_M "$c29tZXNhbHQ$", A2E_G},
    {"$argon2id$x=19$m=64,t=1,p=1" A2_SH, "garbled argon2id hash: no v= version after $argon2id$"},
    {"$argon2id$v=16$m=64,t=1,p=1" A2_SH, A2E_VER},
    {"$argon2id$v=019$m=64,t=1,p=1" A2_SH, A2E_VER},
    /* The parameters: names, order, separators, digits. */
    {A2E_B("t=1,m=64,p=1"), A2E_P},
    {A2E_B("m=64,t=1"), A2E_P},
    {A2E_M ",k=2" A2_SH, A2E_P},
    {A2E_B("m=64, t=1,p=1"), A2E_P},
    {A2E_B("M=64,t=1,p=1"), A2E_P},
    {A2E_B("m=064,t=1,p=1"), A2E_P},
    {A2E_B("m=+64,t=1,p=1"), A2E_P},
    {A2E_B("m=,t=1,p=1"), A2E_P},
    {A2E_B("m=0x40,t=1,p=1"), A2E_P},
    /* Salt and hash: padding, alphabet, non-zero unused bits, a length no
     * encoding has. */
    {A2E_M "$c29tZXNhbHQ=$CTFhFdXPJO1aFaMaO6Mm5Q", A2E_S64},
    {A2E_M "$c29tZXNhbHR$CTFhFdXPJO1aFaMaO6Mm5Q", A2E_S64},
    {A2E_M "$c29tZX*hbHQ$CTFhFdXPJO1aFaMaO6Mm5Q", A2E_S64},
    {A2E_M "$c29tZXNhbHQAA$CTFhFdXPJO1aFaMaO6Mm5Q", A2E_S64},
    {A2E_M A2_SH "==", A2E_H64},
    {A2E_M "$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5R", A2E_H64},
    {A2E_M "$c29tZXNhbHQ$CTFhFdXPJO1a_aMaO6Mm5Q", A2E_H64},
    {A2E_M A2_SH "AAA", A2E_H64},
    /* The bounds; RFC 9106's first recommendation (2 GiB) among them. */
    {A2E_B("m=131073,t=1,p=1"), A2E_MEM},
    {A2E_B("m=2097152,t=1,p=4"), A2E_MEM},
    {A2E_B("m=99999999999999999999999,t=1,p=1"), A2E_MEM},
    {A2E_B("m=64,t=0,p=1"), A2E_TIME},
    {A2E_B("m=64,t=33,p=1"), A2E_TIME},
    {A2E_B("m=64,t=4294967296,p=1"), A2E_TIME},
    {A2E_B("m=64,t=1,p=0"), A2E_LANES},
    {A2E_B("m=1024,t=1,p=65"), A2E_LANES},
    {A2E_B("m=7,t=1,p=1"), A2E_PER},
    {A2E_B("m=31,t=1,p=4"), A2E_PER},
    {A2E_B("m=131072,t=3,p=1"), A2E_WORK},
    {A2E_B("m=8193,t=32,p=1"), A2E_WORK},
};

Test(passwd, argon2id_malformed_and_out_of_bounds)
{
    for (size_t i = 0; i < sizeof(a2_bad) / sizeof(a2_bad[0]); i++)
        expect_hash_error(a2_bad[i].hash, a2_bad[i].why);
    /* What the cases spoil loads, and so does each ceiling: m, m * t, t, p,
     * 8 KiB per lane, salt and hash of 64 bytes (A2_SH's are 8 and 16). */
    const char *loads[] = {A2E_M A2_SH,
                           A2E_B("m=131072,t=2,p=1"),
                           A2E_B("m=8192,t=32,p=1"),
                           A2E_B("m=512,t=1,p=64"),
                           A2E_B("m=8,t=1,p=1"),
                           A2E_B("m=32,t=1,p=4"),
                           ha2("m=64,t=1,p=1", 64, 64)};
    char text[1024], err[512] = "";
    for (size_t i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
        snprintf(text, sizeof(text), "a:%s\n", loads[i]);
        struct passwd_db *db = load_text(text, err, sizeof(err));
        cr_assert_not_null(db, "%s: %s", loads[i], err);
        passwd_free(db);
    }
    expect_hash_error(ha2("m=64,t=1,p=1", 7, 32), "argon2id salt is 7 bytes, expected 8 to 64");
    expect_hash_error(ha2("m=64,t=1,p=1", 65, 32), "argon2id salt is 65 bytes, expected 8 to 64");
    expect_hash_error(ha2("m=64,t=1,p=1", 16, 15), "argon2id hash is 15 bytes, expected 16 to 64");
    expect_hash_error(ha2("m=64,t=1,p=1", 16, 65), "argon2id hash is 65 bytes, expected 16 to 64");
}

Test(passwd, mixed_file_of_every_kind)
{
    /* data/passwd ($7$, $6$, SCRAM) and the argon2id entries after a comment. */
    static char buf[64 * 1024];
    size_t n = read_data_file(buf, sizeof(buf) - 4096);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "# mosquitto 2.1\n%s", A2_FILE);
    char err[256] = "";
    struct passwd_db *db = parse(buf, n, err, sizeof(err));
    cr_assert(db && passwd_count(db) == 16, "%s", err);
    static const char *const users[][2] = {{"alice", "correct horse"},
                                           {"bob", "hunter2"},
                                           {"sasha", "correct horse"},
                                           {"cheap", "hunter2"}};
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        cr_assert(check(db, users[i][0], users[i][1]), "%s", users[i][0]);
        cr_assert_not(check(db, users[i][0], "wrong"), "%s", users[i][0]);
    }
    /* Six argon2id, five $7$, all shapes once: the costliest, kat's. */
    const struct passwd_entry *d = passwd_decoy_entry(db);
    cr_assert_eq(d->kind, PASSWD_ARGON2ID);
    cr_assert(d->memory_kib == 65536 && d->iterations == 2 && d->lanes == 1);
    passwd_free(db);
}

Test(passwd, argon2id_decoy_copies_the_most_common_shape)
{
    struct passwd_db *db;
    char text[4096];
    /* The shape two entries share beats the shape of one. */
    snprintf(text, sizeof(text), "a:%s\nb:%s\nc:%s\n", ha2("m=64,t=1,p=1", 16, 32),
             ha2("m=64,t=1,p=1", 16, 32), ha2("m=256,t=2,p=4", 20, 24));
    const struct passwd_entry *d = decoy_of(text, &db);
    cr_assert(d->kind == PASSWD_ARGON2ID && d->memory_kib == 64 && d->iterations == 1 &&
              d->lanes == 1 && d->salt_len == 16 && d->hash_len == 32);
    cr_assert_not(passwd_check_decoy(db, (const uint8_t *)"x", 1));
    struct passwd_entry c;
    cr_assert(passwd_decoy_copy(db, &c) && c.user == NULL);
    passwd_free(db);
    cr_assert(c.memory_kib == 64 && c.lanes == 1 && c.hash_len == 32);

    /* A tie goes to the costlier shape, taken whole: never m=8192 with t=32. */
    snprintf(text, sizeof(text), "a:%s\nb:%s\n", ha2("m=8192,t=1,p=1", 16, 32),
             ha2("m=64,t=32,p=2", 8, 64));
    d = decoy_of(text, &db);
    cr_assert(d->kind == PASSWD_ARGON2ID && d->memory_kib == 8192 && d->iterations == 1 &&
              d->lanes == 1);
    passwd_free(db);

    /* Tied with $7$ and SCRAM, argon2id wins as the costliest kind. */
    snprintf(text, sizeof(text), "a:%s\nb:%s\nc:%s\n", A2_MOSQ, h7(50, 12, 64),
             hs(4096, 16, 64, 64));
    d = decoy_of(text, &db);
    cr_assert(d->kind == PASSWD_ARGON2ID && d->memory_kib == 47104 && d->iterations == 1 &&
              d->salt_len == 64 && d->hash_len == 64);
    cr_assert_not(passwd_check_decoy(db, (const uint8_t *)"correct horse battery", 21));
    passwd_free(db);
}

Test(passwd, decoy_key_of_a_file_without_argon2id_is_unchanged)
{
    /* data/passwd's decoy key as the parser computed it before it read
     * argon2id: made-up SCRAM salts of such files stay what they were. */
    static const uint8_t before[64] =
        "\x6a\x1a\xc0\xd8\x8a\x39\x84\x10\xb1\x69\xaf\x58\x65\x0d\x2d\xda\xf0\xbc\xe6\x45\x4b\xef"
        "\x00\x61\xbf\x6c\xf2\x0c\x3c\x18\x5d\x45\xdc\xfa\xe5\xf3\xbf\x1a\x64\x13\x4b\x87\x99\xa6"
        "\xb2\x0f\xb5\xc1\x5f\x5d\xe6\xe9\xff\x9d\x80\x52\xc6\x4e\x1b\x68\x44\xb2\x81\x4b";
    char err[256] = "";
    struct passwd_db *db = load_data_file(err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_arr_eq(passwd_decoy_key(db), before, 64);
    passwd_free(db);
    /* An argon2id entry's m and p are part of it. */
    static const char *const shapes[] = {"m=64,t=1,p=1", "m=72,t=1,p=1", "m=64,t=1,p=2"};
    uint8_t k[3][64];
    for (size_t i = 0; i < 3; i++) {
        char text[1024];
        snprintf(text, sizeof(text), "a:%s\n", ha2(shapes[i], 16, 32));
        decoy_key_of(text, k[i]);
    }
    cr_assert(memcmp(k[0], k[1], 64) != 0 && memcmp(k[0], k[2], 64) != 0);
}

/* passwd_hash_line, what ringmq-passwd writes with. */

Test(passwd, hash_line_writes_what_loads_and_checks)
{
    /* mosquitto's shapes: 12-byte salts for $6$/$7$, 64 for argon2id. */
    static const struct {
        uint8_t kind;
        const char *prefix;
        size_t salt_len;
    } kinds[] = {
        {PASSWD_ARGON2ID, "u:$argon2id$v=19$m=47104,t=1,p=1$", 64},
        {PASSWD_PBKDF2_SHA512, "u:$7$4096$", 12},
        {PASSWD_SHA512, "u:$6$", 12},
        {PASSWD_SCRAM_SHA512, "u:SCRAM-SHA-512$4096:", 16},
    };
    static const char pw[] = "pä:ss word";
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        struct passwd_hash_spec sp;
        uint8_t salt[PASSWD_SALT_MAX];
        char line[1024], err[256] = "";
        cr_assert(passwd_hash_spec_default(kinds[i].kind, &sp));
        cr_assert_eq(RAND_bytes(salt, sizeof(salt)), 1);
        int n = passwd_hash_line((const uint8_t *)"u", 1, (const uint8_t *)pw, strlen(pw), &sp,
                                 salt, sp.salt_len, line, sizeof(line));
        cr_assert(n > 0 && strlen(line) == (size_t)n, "kind %u", kinds[i].kind);
        cr_assert_eq(strncmp(line, kinds[i].prefix, strlen(kinds[i].prefix)), 0, "%s", line);
        struct passwd_db *db = load_text(line, err, sizeof(err));
        cr_assert_not_null(db, "%s: %s", line, err);
        const struct passwd_entry *e = passwd_find(db, (const uint8_t *)"u", 1);
        cr_assert(e->kind == kinds[i].kind && e->salt_len == kinds[i].salt_len);
        cr_assert(check(db, "u", pw));
        cr_assert_not(check(db, "u", "pä:ss wor"));
        passwd_free(db);
        /* libargon2's own reader takes what passwd_hash_line wrote. */
        if (kinds[i].kind == PASSWD_ARGON2ID)
            cr_assert(argon2id_verify(line + 2, pw, strlen(pw)) == ARGON2_OK &&
                      argon2id_verify(line + 2, pw, strlen(pw) - 1) != ARGON2_OK);
    }
    struct passwd_hash_spec sp;
    cr_assert(passwd_hash_spec_default(PASSWD_ARGON2ID, &sp) && sp.hash_len == 64);
    cr_assert_not(passwd_hash_spec_default(5, &sp));
    /* An empty password with 64 lanes: what argon2id_hash_encoded(2, 512,
     * 64, "", 0, "saltsalt", 8, 16, ...) writes. */
    sp = (struct passwd_hash_spec){PASSWD_ARGON2ID, 2, 512, 64, 16, 8};
    char line[1024];
    cr_assert_gt(passwd_hash_line((const uint8_t *)"e", 1, NULL, 0, &sp,
                                  (const uint8_t *)"saltsalt", 8, line, sizeof(line)),
                 0);
    cr_assert_str_eq(line, "e:$argon2id$v=19$m=512,t=2,p=64$c2FsdHNhbHQ$x0DxcoGge1/gMVbhjUW1mg");
}

Test(passwd, hash_line_refuses_what_would_not_load)
{
    struct passwd_hash_spec ok, pb;
    cr_assert(passwd_hash_spec_default(PASSWD_ARGON2ID, &ok));
    cr_assert(passwd_hash_spec_default(PASSWD_PBKDF2_SHA512, &pb));
    ok.memory_kib = 64; /* cheap */
    static const uint8_t salt[PASSWD_SALT_MAX] = {1};
    char line[1024];
#define LINE(user, sp, slen, outlen)                                                               \
    passwd_hash_line((const uint8_t *)(user), strlen(user), (const uint8_t *)"pw", 2, (sp), salt,  \
                     (slen), line, (outlen))
    static const char *const bad_users[] = {
        "", "a:b", "a\nb", "a\tb", "a\x01", "a\x7f", " a", "a ", "#a", "\xEF\xBB\xBFz", "\xff",
    };
    for (size_t i = 0; i < sizeof(bad_users) / sizeof(bad_users[0]); i++) {
        cr_assert_eq(LINE(bad_users[i], &ok, 64, sizeof(line)), -1, "user %zu", i);
        cr_assert_not(passwd_user_valid((const uint8_t *)bad_users[i], strlen(bad_users[i])));
    }
    cr_assert(passwd_user_valid((const uint8_t *)"zoë a", 6) && !passwd_user_valid(NULL, 0));
    const struct {
        struct passwd_hash_spec sp;
        size_t salt_len;
    } bad[] = {
        {{PASSWD_ARGON2ID, 1, PASSWD_ARGON2_MEMORY_KIB_MAX + 1, 1, 64, 64}, 64},
        {{PASSWD_ARGON2ID, 0, 64, 1, 64, 64}, 64},
        {{PASSWD_ARGON2ID, PASSWD_ARGON2_TIME_MAX + 1, 64, 1, 64, 64}, 64},
        {{PASSWD_ARGON2ID, 1, 64, 0, 64, 64}, 64},
        {{PASSWD_ARGON2ID, 1, 64, 9, 64, 64}, 64}, /* m under 8 * p */
        {{PASSWD_ARGON2ID, 3, 131072, 1, 64, 64}, 64},
        {{PASSWD_ARGON2ID, 1, 64, 1, PASSWD_ARGON2_HASH_MIN - 1, 64}, 64},
        {{PASSWD_ARGON2ID, 1, 64, 1, PASSWD_KEY_LEN + 1, 64}, 64},
        {ok, PASSWD_ARGON2_SALT_MIN - 1},
        {ok, PASSWD_SALT_MAX + 1},
        {pb, 0},
        {{PASSWD_PBKDF2_SHA512, 0, 0, 0, 0, 12}, 12},
        {{PASSWD_PBKDF2_SHA512, PASSWD_ITERATIONS_MAX + 1, 0, 0, 0, 12}, 12},
        {{5, 1, 64, 1, 64, 64}, 64},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(LINE("u", &bad[i].sp, bad[i].salt_len, sizeof(line)), -1, "case %zu", i);
    cr_assert_gt(LINE("u", &pb, 1, sizeof(line)), 0);
    /* Room for the line and its NUL, and one byte less. */
    int n = LINE("u", &ok, 64, sizeof(line));
    cr_assert_gt(n, 0);
    cr_assert_eq(LINE("u", &ok, 64, (size_t)n + 1), n);
    cr_assert_eq(LINE("u", &ok, 64, (size_t)n), -1);
#undef LINE
}
