/*
 * mosquitto's password file, loaded into a sorted, immutable table.
 *
 * passwd_load reads the whole file, checks every line, and either returns a
 * complete table or NULL with the first problem as "path:line: what". It is
 * the one function in security/ that makes system calls (STYLE.md keeps the
 * module pure): the API takes a path, and the config thread calls it at
 * start-up and on reload, never a shard. The table is one array of entries
 * sorted by username plus one block holding all the names; shards search it
 * with a binary search and never write it, so any number of threads may call
 * passwd_find and passwd_check at once.
 *
 * mosquitto 2.0 (src/security_default.c, pwfile__parse and
 * unpwd__decode_passwords) reads the same file more loosely: it skips lines
 * without ':', splits on ':' with strtok (so "user::hash" and "user:hash:junk"
 * load), lets the last of two entries for one name win, and drops entries it
 * cannot decode with a log line while the broker starts anyway (a salt that
 * is not exactly 12 bytes among them). Here all of
 * those are errors that stop the load: a broker that silently lost a user or
 * picked one of two hashes would surprise whoever wrote the file. What
 * mosquitto accepts from mosquitto_passwd output we accept unchanged: '#' in
 * the first column starts a comment, blank lines are skipped, blanks around
 * the name and the hash (a '\r' included) are trimmed. Salts of any length
 * from 1 to PASSWD_SALT_MAX are taken, not only mosquitto_passwd's 12.
 */
#include "passwd.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "codec.h"

#define ASSERT(x) assert(x)

/* A file of 100,000 users is about 15 MiB; anything past this is not a
 * password file. */
#define PASSWD_FILE_MAX (64u * 1024u * 1024u)
/* Longest "$7$<iterations>$<salt>$<hash>" with the largest salt: 3 + 7 + 1 +
 * 88 + 1 + 88 bytes, rounded up to leave room for blanks. */
#define PASSWD_HASH_TEXT_MAX 512u
/* A line holds the longest name, ':' and the longest hash. */
#define PASSWD_LINE_MAX (64u * 1024u + 1024u)
/* The iteration count SCRAM offers for a name it does not know, when the file
 * has no $7$ entry to copy: RFC 7677's minimum. */
#define PASSWD_SCRAM_ITERATIONS_DEFAULT 4096u

_Static_assert(PASSWD_LINE_MAX >= PASSWD_USER_MAX + 1 + PASSWD_HASH_TEXT_MAX,
               "a line must hold the longest username and hash");
_Static_assert(PASSWD_FILE_MAX >= PASSWD_LINE_MAX, "a file must hold one longest line");
_Static_assert(PASSWD_ITERATIONS_MAX <= UINT32_MAX, "an entry keeps iterations in a uint32_t");

struct passwd_db {
    struct passwd_entry *entries; /* sorted by (user bytes, user_len) */
    size_t count;
    uint8_t *names; /* every entry's user points in here */
    uint32_t scram_iterations;
};

/* A parsed line before sorting: the entry's user still points into the file
 * text, and the line is kept to report duplicates. */
struct row {
    struct passwd_entry e;
    size_t line;
};

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int user_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

static int row_cmp(const void *pa, const void *pb)
{
    const struct row *a = pa;
    const struct row *b = pb;
    int c = user_cmp(a->e.user, a->e.user_len, b->e.user, b->e.user_len);
    if (c != 0)
        return c;
    return (a->line > b->line) - (a->line < b->line);
}

static int u32_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa;
    uint32_t b = *(const uint32_t *)pb;
    return (a > b) - (a < b);
}

/* isspace() in the C locale, which is what mosquitto's misc__trimblanks
 * trims; spelled out so the process locale cannot change it. */
static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void trim(const uint8_t **p, size_t *len)
{
    while (*len > 0 && is_blank((*p)[0])) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && is_blank((*p)[*len - 1]))
        (*len)--;
}

/* Reads the whole file into *text, unchecked. 0, or -1 with err set. */
static int read_file(const char *path, uint8_t **text, size_t *text_len, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        char eb[128];
        set_err(err, errlen, "%s: cannot open: %s", path, strerror_r(errno, eb, sizeof(eb)));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        char eb[128];
        set_err(err, errlen, "%s: cannot stat: %s", path, strerror_r(errno, eb, sizeof(eb)));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > PASSWD_FILE_MAX) {
        set_err(err, errlen, "%s: larger than %u bytes", path, PASSWD_FILE_MAX);
        goto fail;
    }
    /* One byte more than the limit, to notice a file that grew after fstat. */
    size_t cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (!buf) {
        set_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    for (;;) {
        if (len == cap) {
            if (cap > PASSWD_FILE_MAX) {
                set_err(err, errlen, "%s: larger than %u bytes", path, PASSWD_FILE_MAX);
                goto fail;
            }
            size_t ncap =
                cap * 2 > (size_t)PASSWD_FILE_MAX + 1 ? (size_t)PASSWD_FILE_MAX + 1 : cap * 2;
            uint8_t *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                set_err(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            char eb[128];
            set_err(err, errlen, "%s: cannot read: %s", path, strerror_r(errno, eb, sizeof(eb)));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > PASSWD_FILE_MAX) {
        set_err(err, errlen, "%s: larger than %u bytes", path, PASSWD_FILE_MAX);
        goto fail;
    }
    close(fd);
    *text = buf;
    *text_len = len;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    return -1;
}

/* Decodes a base64 field into scratch (big enough for any field of a line).
 * Returns false if it is not strict, padded base64. */
static bool b64_decode(const uint8_t *in, size_t len, uint8_t *scratch, size_t scratch_len,
                       size_t *out_len)
{
    return EVP_DecodeBase64(scratch, out_len, scratch_len, in, len) == 1;
}

/* Parses the text after the username's ':' into e. NULL on success, or what
 * is wrong (a static string, or one written into msg). */
static const char *parse_hash(const char *path, const uint8_t *h, size_t hlen,
                              struct passwd_entry *e, uint8_t *scratch, size_t scratch_len,
                              char *msg, size_t msglen)
{
    if (hlen == 0)
        return "no password hash after ':'";
    if (memchr(h, ':', hlen))
        return "more than one ':' (neither usernames nor hashes may contain ':')";
    if (h[0] != '$') {
        snprintf(msg, msglen,
                 "plain-text password: hash the file first with `mosquitto_passwd -U %s`", path);
        return msg;
    }

    /* Split "$f1$f2..." into at most 4 fields; empty fields count. */
    const uint8_t *field[5];
    size_t flen[5];
    size_t nfields = 0;
    const uint8_t *p = h + 1;
    const uint8_t *end = h + hlen;
    for (;;) {
        const uint8_t *d = memchr(p, '$', (size_t)(end - p));
        const uint8_t *fe = d ? d : end;
        if (nfields == 5)
            break;
        field[nfields] = p;
        flen[nfields] = (size_t)(fe - p);
        nfields++;
        if (!d)
            break;
        p = d + 1;
    }

    bool is6 = flen[0] == 1 && field[0][0] == '6';
    bool is7 = flen[0] == 1 && field[0][0] == '7';
    if (!is6 && !is7)
        return nfields < 2 ? "garbled password hash (expected $6$... or $7$...)"
                           : "unknown hash type (expected $6$ or $7$)";
    size_t want = is6 ? 3 : 4;
    bool empty = false;
    for (size_t i = 0; i < nfields; i++)
        empty |= flen[i] == 0;
    if (nfields != want || empty)
        return is6 ? "garbled $6$ hash (expected $6$<base64 salt>$<base64 hash>)"
                   : "garbled $7$ hash (expected $7$<iterations>$<base64 salt>$<base64 hash>)";

    size_t i = 1;
    e->kind = is6 ? PASSWD_SHA512 : PASSWD_PBKDF2_SHA512;
    e->iterations = 0;
    if (is7) {
        uint64_t v = 0;
        for (size_t k = 0; k < flen[1]; k++) {
            uint8_t c = field[1][k];
            if (c < '0' || c > '9')
                return "iteration count is not a decimal number";
            if (v <= PASSWD_ITERATIONS_MAX) /* stops growing past the limit */
                v = v * 10 + (uint64_t)(c - '0');
        }
        if (v == 0)
            return "iteration count must be at least 1";
        if (v > PASSWD_ITERATIONS_MAX) {
            snprintf(msg, msglen, "iteration count over %u", PASSWD_ITERATIONS_MAX);
            return msg;
        }
        e->iterations = (uint32_t)v;
        i = 2;
    }

    size_t n;
    if (!b64_decode(field[i], flen[i], scratch, scratch_len, &n))
        return "salt is not valid base64";
    if (n == 0)
        return "empty salt";
    if (n > PASSWD_SALT_MAX) {
        snprintf(msg, msglen, "salt longer than %u bytes", PASSWD_SALT_MAX);
        return msg;
    }
    memcpy(e->salt, scratch, n);
    e->salt_len = n;

    if (!b64_decode(field[i + 1], flen[i + 1], scratch, scratch_len, &n))
        return "hash is not valid base64";
    if (n != sizeof(e->hash)) {
        snprintf(msg, msglen, "hash is %zu bytes, expected %zu", n, sizeof(e->hash));
        return msg;
    }
    memcpy(e->hash, scratch, n);
    OPENSSL_cleanse(scratch, n);
    return NULL;
}

static uint32_t common_iterations(const struct row *rows, size_t count)
{
    size_t n7 = 0;
    for (size_t i = 0; i < count; i++)
        n7 += rows[i].e.kind == PASSWD_PBKDF2_SHA512;
    if (n7 == 0)
        return PASSWD_SCRAM_ITERATIONS_DEFAULT;
    uint32_t *it = malloc(n7 * sizeof(*it));
    if (!it) /* only a disguise gets weaker; the table is still right */
        return PASSWD_SCRAM_ITERATIONS_DEFAULT;
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        if (rows[i].e.kind == PASSWD_PBKDF2_SHA512)
            it[k++] = rows[i].e.iterations;
    qsort(it, n7, sizeof(*it), u32_cmp);
    uint32_t best = it[0];
    size_t best_run = 0;
    for (size_t a = 0; a < n7;) {
        size_t b = a;
        while (b < n7 && it[b] == it[a])
            b++;
        if (b - a > best_run) {
            best_run = b - a;
            best = it[a];
        }
        a = b;
    }
    free(it);
    return best;
}

struct passwd_db *passwd_load(const char *path, char *err, size_t errlen)
{
    uint8_t *text = NULL;
    size_t text_len = 0;
    struct row *rows = NULL;
    size_t count = 0;
    size_t cap = 0;
    struct passwd_db *db = NULL;
    const size_t scratch_len = PASSWD_LINE_MAX / 4 * 3 + 3;
    uint8_t *scratch = NULL;
    char msg[4352]; /* holds a path (PATH_MAX) in the -U hint */

    if (read_file(path, &text, &text_len, err, errlen) != 0)
        goto fail;
    scratch = malloc(scratch_len);
    if (!scratch) {
        set_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }

    size_t line = 0;
    size_t pos = 0;
    while (pos < text_len) {
        line++;
        const uint8_t *l = text + pos;
        const uint8_t *nl = memchr(l, '\n', text_len - pos);
        size_t llen = nl ? (size_t)(nl - l) : text_len - pos;
        pos += llen + (nl ? 1 : 0);

        const char *what = NULL;
        if (llen > PASSWD_LINE_MAX) {
            snprintf(msg, sizeof(msg), "line longer than %u bytes", PASSWD_LINE_MAX);
            what = msg;
            goto bad_line;
        }
        if (memchr(l, '\0', llen)) {
            what = "NUL byte in the line";
            goto bad_line;
        }
        if (llen > 0 && l[0] == '#') /* mosquitto: only in the first column */
            continue;
        const uint8_t *t = l;
        size_t tlen = llen;
        trim(&t, &tlen);
        if (tlen == 0)
            continue;

        const uint8_t *colon = memchr(l, ':', llen);
        if (!colon) {
            what = "no ':' between username and password hash";
            goto bad_line;
        }
        const uint8_t *user = l;
        size_t user_len = (size_t)(colon - l);
        trim(&user, &user_len);
        const uint8_t *h = colon + 1;
        size_t hlen = (size_t)(l + llen - h);
        trim(&h, &hlen);

        if (user_len == 0) {
            what = "empty username";
            goto bad_line;
        }
        if (user_len > PASSWD_USER_MAX) {
            snprintf(msg, sizeof(msg), "username longer than %u bytes", PASSWD_USER_MAX);
            what = msg;
            goto bad_line;
        }
        if (!codec_utf8_valid(user, user_len)) {
            what = "username is not valid UTF-8 (no MQTT client could send it)";
            goto bad_line;
        }
        if (user_len >= 3 && memcmp(user, "\xEF\xBB\xBF", 3) == 0) {
            what = "username starts with a UTF-8 byte order mark: save the file without one";
            goto bad_line;
        }

        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct row *nrows = realloc(rows, ncap * sizeof(*rows));
            if (!nrows) {
                set_err(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            rows = nrows;
            cap = ncap;
        }
        struct row *r = &rows[count];
        memset(r, 0, sizeof(*r));
        r->line = line;
        r->e.user = user;
        r->e.user_len = user_len;
        what = parse_hash(path, h, hlen, &r->e, scratch, scratch_len, msg, sizeof(msg));
        if (what)
            goto bad_line;
        count++;
        continue;
    bad_line:
        set_err(err, errlen, "%s:%zu: %s", path, line, what);
        goto fail;
    }

    if (count > 0)
        qsort(rows, count, sizeof(*rows), row_cmp);
    /* Report the duplicate that comes first in the file. */
    size_t dup_line = 0;
    size_t dup_first = 0;
    for (size_t i = 1; i < count; i++) {
        if (user_cmp(rows[i - 1].e.user, rows[i - 1].e.user_len, rows[i].e.user,
                     rows[i].e.user_len) == 0 &&
            (dup_line == 0 || rows[i].line < dup_line)) {
            dup_line = rows[i].line;
            dup_first = rows[i - 1].line;
        }
    }
    if (dup_line != 0) {
        set_err(err, errlen, "%s:%zu: username already defined on line %zu", path, dup_line,
                dup_first);
        goto fail;
    }

    db = calloc(1, sizeof(*db));
    if (!db)
        goto nomem;
    size_t names_len = 0;
    for (size_t i = 0; i < count; i++)
        names_len += rows[i].e.user_len;
    db->names = malloc(names_len ? names_len : 1);
    db->entries = malloc((count ? count : 1) * sizeof(*db->entries));
    if (!db->names || !db->entries)
        goto nomem;
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
        db->entries[i] = rows[i].e;
        memcpy(db->names + off, rows[i].e.user, rows[i].e.user_len);
        db->entries[i].user = db->names + off;
        off += rows[i].e.user_len;
    }
    ASSERT(off == names_len);
    db->count = count;
    db->scram_iterations = common_iterations(rows, count);

    OPENSSL_cleanse(text, text_len);
    free(text);
    if (rows) {
        OPENSSL_cleanse(rows, count * sizeof(*rows));
        free(rows);
    }
    free(scratch);
    return db;

nomem:
    set_err(err, errlen, "%s: out of memory", path);
fail:
    passwd_free(db);
    if (text) {
        OPENSSL_cleanse(text, text_len);
        free(text);
    }
    if (rows) {
        OPENSSL_cleanse(rows, count * sizeof(*rows));
        free(rows);
    }
    free(scratch);
    return NULL;
}

void passwd_free(struct passwd_db *db)
{
    if (!db)
        return;
    if (db->entries) {
        OPENSSL_cleanse(db->entries, db->count * sizeof(*db->entries));
        free(db->entries);
    }
    free(db->names);
    free(db);
}

size_t passwd_count(const struct passwd_db *db)
{
    return db ? db->count : 0;
}

const struct passwd_entry *passwd_find(const struct passwd_db *db, const uint8_t *user, size_t len)
{
    if (!db || len == 0)
        return NULL;
    ASSERT(user);
    size_t lo = 0;
    size_t hi = db->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct passwd_entry *e = &db->entries[mid];
        int c = user_cmp(user, len, e->user, e->user_len);
        if (c == 0)
            return e;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

bool passwd_check(const struct passwd_entry *e, const uint8_t *password, size_t len)
{
    if (!e)
        return false;
    uint8_t got[64];
    _Static_assert(sizeof(got) == sizeof(e->hash), "SHA-512 output is the stored hash");
    _Static_assert(SHA512_DIGEST_LENGTH == sizeof(got), "SHA-512 is 64 bytes");
    static const uint8_t empty[1];
    const uint8_t *pw = len ? password : empty; /* NULL + 0 is not a valid argument */
    bool computed = false;
    if (e->kind == PASSWD_SHA512) {
        /* mosquitto 1.x: SHA-512(password || salt), one round. */
        SHA512_CTX ctx;
        computed = SHA512_Init(&ctx) == 1 && SHA512_Update(&ctx, pw, len) == 1 &&
                   SHA512_Update(&ctx, e->salt, e->salt_len) == 1 && SHA512_Final(got, &ctx) == 1;
        OPENSSL_cleanse(&ctx, sizeof(ctx));
    } else if (e->kind == PASSWD_PBKDF2_SHA512) {
        ASSERT(e->iterations >= 1 && e->iterations <= PASSWD_ITERATIONS_MAX);
        computed = PKCS5_PBKDF2_HMAC((const char *)pw, len, e->salt, e->salt_len, e->iterations,
                                     EVP_sha512(), sizeof(got), got) == 1;
    }
    bool ok = computed && CRYPTO_memcmp(got, e->hash, sizeof(got)) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

uint32_t passwd_scram_iterations(const struct passwd_db *db)
{
    return db ? db->scram_iterations : PASSWD_SCRAM_ITERATIONS_DEFAULT;
}
