/*
 * passwd: mosquitto's password file. data/passwd was written by the real
 * mosquitto_passwd 2.0.11; its comment lines list every user's password:
 *
 *   alice    "correct horse"   $7$ (the default: PBKDF2-HMAC-SHA512, 101 rounds)
 *   bob      "hunter2"         $6$ (-H sha512)
 *   carol    "p@ss:word,=x"    $7$ (-H sha512-pbkdf2)
 *   d,a=ve   "dave-pw"         $7$
 *   zoë      "ünïcode"         $7$
 *   emptypw  ""                $7$
 *
 * Every malformed line is written to a temporary file and must fail with the
 * exact "path:line: what" a user would read.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/base64.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "passwd.h"

#define DATA_FILE TEST_DATA_DIR "/passwd"

/* A temporary file; removed by the fini of every test that uses one. */
static char tmp_path[64];

static void tmp_fini(void)
{
    if (tmp_path[0])
        unlink(tmp_path);
    tmp_path[0] = 0;
}

static const char *write_tmp(const void *text, size_t len)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/passwd_test_XXXXXX");
    int fd = mkstemp(tmp_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return tmp_path;
}

static struct passwd_db *load_text(const char *text, char *err, size_t errlen)
{
    return passwd_load(write_tmp(text, strlen(text)), err, errlen);
}

static void b64(char *out, const uint8_t *in, size_t len)
{
    EVP_EncodeBlock((uint8_t *)out, in, len);
}

/* Up to four results of h7/h7_for may be in use at once. */
static char *next_buf(void)
{
    static char bufs[4][1024];
    static unsigned k;
    return bufs[k++ % 4];
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
    snprintf(want, sizeof(want), "%s:%zu: %s", tmp_path, line, what);
    cr_assert_str_eq(err, want);
}

static bool check(const struct passwd_db *db, const char *user, const char *pw)
{
    const struct passwd_entry *e = passwd_find(db, (const uint8_t *)user, strlen(user));
    cr_assert_not_null(e, "no entry for %s", user);
    return passwd_check(e, (const uint8_t *)pw, strlen(pw));
}

TestSuite(passwd, .fini = tmp_fini);

Test(passwd, loads_the_file_mosquitto_passwd_wrote)
{
    char err[256] = "";
    struct passwd_db *db = passwd_load(DATA_FILE, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_eq(passwd_count(db), 6);

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
    passwd_free(db);
}

Test(passwd, right_passwords_match)
{
    char err[256] = "";
    struct passwd_db *db = passwd_load(DATA_FILE, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert(check(db, "alice", "correct horse"));
    cr_assert(check(db, "bob", "hunter2"));
    cr_assert(check(db, "carol", "p@ss:word,=x"));
    cr_assert(check(db, "d,a=ve", "dave-pw"));
    cr_assert(check(db, "zoë", "ünïcode"));
    cr_assert(check(db, "emptypw", ""));
    passwd_free(db);
}

Test(passwd, wrong_passwords_do_not)
{
    char err[256] = "";
    struct passwd_db *db = passwd_load(DATA_FILE, err, sizeof(err));
    cr_assert_not_null(db, "%s", err);
    cr_assert_not(check(db, "alice", "correct horsE"));
    cr_assert_not(check(db, "alice", "correct horse "));
    cr_assert_not(check(db, "alice", "correct hors"));
    cr_assert_not(check(db, "alice", ""));
    cr_assert_not(check(db, "alice", "hunter2"));
    cr_assert_not(check(db, "bob", "hunter"));
    cr_assert_not(check(db, "bob", "hunter22"));
    cr_assert_not(check(db, "emptypw", " "));
    /* Password bytes after a NUL count (mosquitto would stop at it). */
    const struct passwd_entry *e = passwd_find(db, (const uint8_t *)"bob", 3);
    cr_assert_not(passwd_check(e, (const uint8_t *)"hunter2\0x", 9));
    cr_assert_not(passwd_check(NULL, (const uint8_t *)"hunter2", 7));
    passwd_free(db);
}

Test(passwd, unknown_names_are_not_found)
{
    char err[256] = "";
    struct passwd_db *db = passwd_load(DATA_FILE, err, sizeof(err));
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
    struct passwd_db *db = passwd_load(write_tmp(text, off), err, sizeof(err));
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
             "%s:1: plain-text password: hash the file first with `mosquitto_passwd -U %s`",
             tmp_path, tmp_path);
    cr_assert_str_eq(err, want);
    cr_assert_null(strstr(err, "secret"), "the password must not be echoed");
}

Test(passwd, unknown_hash_type)
{
    expect_error("a:$5$c2FsdA==$aA==\n", 1, "unknown hash type (expected $6$ or $7$)");
    expect_error("a:$8$1$c2FsdA==$aA==\n", 1, "unknown hash type (expected $6$ or $7$)");
    expect_error("a:$77$1$c2FsdA==$aA==\n", 1, "unknown hash type (expected $6$ or $7$)");
    expect_error("a:$$7$1$c2FsdA==$aA==\n", 1, "unknown hash type (expected $6$ or $7$)");
    expect_error("a:$\n", 1, "garbled password hash (expected $6$... or $7$...)");
    expect_error("a:$x\n", 1, "garbled password hash (expected $6$... or $7$...)");
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
    expect_error(text, 1, "iteration count over 1000000");
    snprintf(text, sizeof(text), "a:$7$99999999999999999999999$c2FsdA==$%s\n",
             strrchr(h7(1, 12, 64), '$') + 1);
    expect_error(text, 1, "iteration count over 1000000");
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
    struct passwd_db *db = passwd_load(write_tmp(text, sizeof(text) - 1), err, sizeof(err));
    cr_assert_null(db);
    snprintf(want, sizeof(want), "%s:2: NUL byte in the line", tmp_path);
    cr_assert_str_eq(err, want);
    tmp_fini();
    static const char text2[] = "#\0\n";
    db = passwd_load(write_tmp(text2, sizeof(text2) - 1), err, sizeof(err));
    cr_assert_null(db);
    snprintf(want, sizeof(want), "%s:1: NUL byte in the line", tmp_path);
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

Test(passwd, file_level_errors)
{
    char err[512] = "";
    char want[512];
    cr_assert_null(passwd_load("/nonexistent/ringmq-passwd", err, sizeof(err)));
    cr_assert_str_eq(err, "/nonexistent/ringmq-passwd: cannot open: No such file or directory");
    cr_assert_null(passwd_load(TEST_DATA_DIR, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: not a regular file", TEST_DATA_DIR);
    cr_assert_str_eq(err, want);

    /* A sparse file just over the size limit. */
    write_tmp("", 0);
    cr_assert_eq(truncate(tmp_path, 64 * 1024 * 1024 + 1), 0);
    cr_assert_null(passwd_load(tmp_path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: larger than 67108864 bytes", tmp_path);
    cr_assert_str_eq(err, want);

    if (geteuid() != 0) { /* root reads anything */
        tmp_fini();
        write_tmp("a:b\n", 4);
        cr_assert_eq(chmod(tmp_path, 0), 0);
        cr_assert_null(passwd_load(tmp_path, err, sizeof(err)));
        snprintf(want, sizeof(want), "%s: cannot open: Permission denied", tmp_path);
        cr_assert_str_eq(err, want);
    }
}

Test(passwd, err_buffer_may_be_small_or_absent)
{
    char err[8];
    memset(err, 'x', sizeof(err));
    cr_assert_null(load_text("alice\n", err, sizeof(err)));
    cr_assert_eq(err[7], 0);
    cr_assert_eq(strncmp(err, tmp_path, 7), 0);
    cr_assert_null(load_text("alice\n", NULL, 0));
}
