/*
 * libFuzzer target for security/passwd.c's parser: passwd_parse gets the
 * input's bytes under a fixed name, as the broker hands it a password
 * file's bytes under its path (reading the file is net/file.c's).
 *
 * passwd_parse must return a table or NULL and never crash. Beyond that:
 *  - a failure reads "NAME:LINE: message" (or "NAME: message") with LINE a
 *    line of the input, the first LINE lines alone fail with the same
 *    message, and the message never holds the failing line's hash text;
 *  - a table holds one entry per line that is not a comment or blank, each
 *    found by passwd_find under its trimmed name, with a known kind, a salt
 *    of 1..PASSWD_SALT_MAX bytes and (for $7$ and SCRAM) 1..
 *    PASSWD_ITERATIONS_MAX iterations; an argon2id entry inside every
 *    PASSWD_ARGON2_* bound (m, t, p, m * t, salt and hash lengths), which is
 *    what keeps a hostile line from costing a CONNECT more than the ceiling;
 *    the disguises for unknown names are in range, the decoy too;
 *  - the same entries in reverse order, with CRLF line ends, a comment and
 *    blank lines added, load to the same table: same count, same entries,
 *    and the same decoy key, iteration count and salt length (passwd.h says
 *    comments, blank lines, order and line endings do not change them).
 * passwd_check runs only on cheap entries ($6$, $7$ of at most 8
 * iterations, argon2id of at most 64 KiB, 2 passes and 4 lanes, checked
 * against libargon2's argon2id_hash_raw, which fills the lanes with a
 * thread each where passwd.c uses one): a $7$ check at the ceiling costs
 * 40 ms, an argon2id check 250 ms. Parsing hashes nothing, so the bounds
 * keep the target fast without being lowered for it.
 */
#include <string.h>

#include <argon2.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "fuzz_input.h"
#include "passwd.h"

/* Above this the reordered copy could pass the loader's line limit. */
#define REORDER_MAX 60000u

/* The name every input is parsed under; messages start with it. */
static const char path[] = "/fuzz/passwd";

static struct passwd_db *load(const uint8_t *data, size_t size, char *err, size_t errlen)
{
    return passwd_parse(path, data, size, err, errlen);
}

static bool blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void trim(const uint8_t **p, size_t *len)
{
    while (*len > 0 && blank((*p)[0])) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && blank((*p)[*len - 1]))
        (*len)--;
}

struct line {
    const uint8_t *p;
    size_t len;
};

/* The input's lines as the loader splits them (on '\n', the last one
 * without), malloc'd. */
static struct line *split_lines(const uint8_t *d, size_t size, size_t *count)
{
    struct line *v = malloc((size + 1) * sizeof(*v));
    CHECK(v != NULL);
    size_t n = 0, pos = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(d + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (d + pos)) : size - pos;
        v[n++] = (struct line){d + pos, len};
        pos += len + (nl ? 1 : 0);
    }
    *count = n;
    return v;
}

/* An entry line: not a comment (first column '#') and not blank. */
static bool entry_line(const uint8_t *l, size_t len)
{
    if (len > 0 && l[0] == '#')
        return false;
    trim(&l, &len);
    return len > 0;
}

static bool b64_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

/* "err never holds a password or hash" (passwd.h): no run of 16 or more
 * base64 characters of the hash text (a salt, a hash, a key) appears in the
 * message once the path is taken out. No message of passwd.c has such a run
 * of its own. */
static void check_no_secret(const char *err, const uint8_t *h, size_t hlen)
{
    char msg[512];
    size_t m = 0, plen = strlen(path);
    for (const char *e = err; *e && m < sizeof(msg) - 1;) {
        if (strncmp(e, path, plen) == 0) {
            e += plen;
            msg[m++] = ' ';
            continue;
        }
        msg[m++] = *e++;
    }
    msg[m] = '\0';
    for (size_t i = 0; i < hlen;) {
        size_t j = i;
        while (j < hlen && b64_char(h[j]))
            j++;
        if (j - i >= 16)
            for (size_t k = i; k + 16 <= j; k++)
                CHECK(memmem(msg, m, h + k, 16) == NULL);
        i = j + 1;
    }
}

static void check_failure(const uint8_t *data, size_t size, const struct line *lines, size_t nlines,
                          const char *err)
{
    size_t plen = strlen(path);
    CHECK(strncmp(err, path, plen) == 0 && err[plen] == ':');
    const char *p = err + plen + 1;
    if (*p == ' ') /* the file as a whole */
        return;
    size_t line = 0;
    CHECK(*p >= '1' && *p <= '9');
    while (*p >= '0' && *p <= '9')
        line = line * 10 + (size_t)(*p++ - '0');
    CHECK(p[0] == ':' && p[1] == ' ' && p[2] != '\0');

    CHECK(line <= nlines);
    const uint8_t *l = lines[line - 1].p;
    size_t llen = lines[line - 1].len;
    const uint8_t *colon = memchr(l, ':', llen);
    if (colon)
        check_no_secret(err, colon + 1, (size_t)(l + llen - colon - 1));

    /* The first `line' lines fail the same way. */
    size_t cut = 0;
    for (size_t seen = 0; cut < size && seen < line; cut++)
        seen += data[cut] == '\n';
    char err2[512];
    err2[0] = '\0';
    struct passwd_db *db = load(data, cut, err2, sizeof(err2));
    CHECK(db == NULL);
    CHECK(strcmp(err, err2) == 0);
}

/* An argon2id entry's fields against passwd.h's bounds. */
static void check_argon2_bounds(const struct passwd_entry *e)
{
    CHECK(e->memory_kib >= 8u * e->lanes && e->memory_kib <= PASSWD_ARGON2_MEMORY_KIB_MAX);
    CHECK(e->iterations >= 1 && e->iterations <= PASSWD_ARGON2_TIME_MAX);
    CHECK(e->lanes >= 1 && e->lanes <= PASSWD_ARGON2_LANES_MAX);
    CHECK((uint64_t)e->memory_kib * e->iterations <= PASSWD_ARGON2_WORK_KIB_MAX);
    CHECK(e->salt_len >= PASSWD_ARGON2_SALT_MIN);
    CHECK(e->hash_len >= PASSWD_ARGON2_HASH_MIN && e->hash_len <= PASSWD_KEY_LEN);
    for (size_t i = e->hash_len; i < sizeof(e->hash); i++)
        CHECK(e->hash[i] == 0);
}

static void check_entry(const struct passwd_entry *e)
{
    CHECK(e->kind == PASSWD_SHA512 || e->kind == PASSWD_PBKDF2_SHA512 ||
          e->kind == PASSWD_SCRAM_SHA512 || e->kind == PASSWD_ARGON2ID);
    CHECK(e->salt_len >= 1 && e->salt_len <= PASSWD_SALT_MAX);
    if (e->kind != PASSWD_SHA512)
        CHECK(e->iterations >= 1 && e->iterations <= PASSWD_ITERATIONS_MAX);
    if (e->kind != PASSWD_SCRAM_SHA512) {
        static const uint8_t zero[PASSWD_KEY_LEN];
        CHECK(memcmp(e->server_key, zero, sizeof(zero)) == 0);
    }
    if (e->kind == PASSWD_ARGON2ID)
        check_argon2_bounds(e);
    else
        CHECK(e->hash_len == PASSWD_KEY_LEN && e->memory_kib == 0 && e->lanes == 0);
    /* The check against a hash computed here, where that is cheap. */
    static const uint8_t pw[] = "a password";
    uint8_t want[PASSWD_KEY_LEN] = {0};
    if (e->kind == PASSWD_SHA512) {
        SHA512_CTX ctx;
        SHA512_Init(&ctx);
        SHA512_Update(&ctx, pw, sizeof(pw) - 1);
        SHA512_Update(&ctx, e->salt, e->salt_len);
        SHA512_Final(want, &ctx);
    } else if (e->kind == PASSWD_PBKDF2_SHA512 && e->iterations <= 8) {
        CHECK(PKCS5_PBKDF2_HMAC((const char *)pw, sizeof(pw) - 1, e->salt, e->salt_len,
                                e->iterations, EVP_sha512(), sizeof(want), want) == 1);
    } else if (e->kind == PASSWD_ARGON2ID && e->memory_kib <= 64 && e->iterations <= 2 &&
               e->lanes <= 4) {
        CHECK(argon2id_hash_raw(e->iterations, e->memory_kib, e->lanes, pw, sizeof(pw) - 1, e->salt,
                                e->salt_len, want, e->hash_len) == ARGON2_OK);
    } else {
        return;
    }
    CHECK(passwd_check(e, pw, sizeof(pw) - 1) == (memcmp(want, e->hash, e->hash_len) == 0));
}

/* The entry lines, reversed, CRLF-terminated, with a comment and blank
 * lines between; malloc'd. */
static uint8_t *reorder(const struct line *lines, size_t nlines, size_t size, size_t *out_len)
{
    uint8_t *out = malloc(2 * size + 64);
    CHECK(out != NULL);
    static const char head[] = "# reordered\n\n";
    memcpy(out, head, sizeof(head) - 1);
    size_t o = sizeof(head) - 1;
    for (size_t k = nlines; k-- > 0;) {
        if (!entry_line(lines[k].p, lines[k].len))
            continue;
        memcpy(out + o, lines[k].p, lines[k].len);
        o += lines[k].len;
        memcpy(out + o, "\r\n \n", 4);
        o += 4;
    }
    *out_len = o;
    return out;
}

/* The trimmed name of an entry line. */
static void user_of(const struct line *l, const uint8_t **u, size_t *ulen)
{
    const uint8_t *colon = memchr(l->p, ':', l->len);
    CHECK(colon != NULL);
    *u = l->p;
    *ulen = (size_t)(colon - l->p);
    trim(u, ulen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    err[0] = '\0';
    size_t nlines;
    struct line *lines = split_lines(data, size, &nlines);
    struct passwd_db *db = load(data, size, err, sizeof(err));
    if (!db) {
        CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        check_failure(data, size, lines, nlines, err);
        free(lines);
        return 0;
    }

    size_t entries = 0;
    for (size_t k = 0; k < nlines; k++) {
        if (!entry_line(lines[k].p, lines[k].len))
            continue;
        entries++;
        const uint8_t *u;
        size_t ulen;
        user_of(&lines[k], &u, &ulen);
        const struct passwd_entry *e = passwd_find(db, u, ulen);
        CHECK(e != NULL && e->user_len == ulen && memcmp(e->user, u, ulen) == 0);
        check_entry(e);
    }
    CHECK(passwd_count(db) == entries);
    CHECK(passwd_find(db, (const uint8_t *)"", 0) == NULL);
    uint32_t it = passwd_scram_iterations(db);
    size_t sl = passwd_scram_salt_len(db);
    CHECK(it >= 1 && it <= PASSWD_ITERATIONS_MAX);
    CHECK(sl >= 1 && sl <= PASSWD_SALT_MAX);
    const uint8_t *key = passwd_decoy_key(db);
    CHECK(key != NULL);
    struct passwd_entry decoy;
    CHECK(passwd_decoy_copy(db, &decoy) == (entries > 0));
    if (entries > 0) {
        CHECK(decoy.user == NULL);
        check_entry(&decoy);
    }

    if (size <= REORDER_MAX) {
        size_t rlen;
        uint8_t *r = reorder(lines, nlines, size, &rlen);
        uint8_t key1[PASSWD_KEY_LEN];
        memcpy(key1, key, sizeof(key1));
        char err2[512];
        struct passwd_db *db2 = load(r, rlen, err2, sizeof(err2));
        if (!db2)
            fprintf(stderr, "reordered copy failed: %s\n", err2);
        CHECK(db2 != NULL);
        CHECK(passwd_count(db2) == entries);
        CHECK(memcmp(passwd_decoy_key(db2), key1, sizeof(key1)) == 0);
        CHECK(passwd_scram_iterations(db2) == it && passwd_scram_salt_len(db2) == sl);
        for (size_t k = 0; k < nlines; k++) {
            if (!entry_line(lines[k].p, lines[k].len))
                continue;
            const uint8_t *u;
            size_t ulen;
            user_of(&lines[k], &u, &ulen);
            const struct passwd_entry *a = passwd_find(db, u, ulen);
            const struct passwd_entry *b = passwd_find(db2, u, ulen);
            CHECK(a && b && a->kind == b->kind && a->iterations == b->iterations &&
                  a->memory_kib == b->memory_kib && a->lanes == b->lanes &&
                  a->hash_len == b->hash_len && a->salt_len == b->salt_len &&
                  memcmp(a->salt, b->salt, a->salt_len) == 0 &&
                  memcmp(a->hash, b->hash, sizeof(a->hash)) == 0 &&
                  memcmp(a->server_key, b->server_key, sizeof(a->server_key)) == 0);
        }
        passwd_free(db2);
        free(r);
    }
    passwd_free(db);
    free(lines);
    return 0;
}
