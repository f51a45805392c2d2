/*
 * mosquitto's password file, loaded into a sorted, immutable table.
 *
 * passwd_parse checks every line of the bytes it is handed and either
 * returns a complete table or NULL with the first problem as
 * "name:line: what". It makes no system call (STYLE.md keeps security/
 * pure): the main thread reads the file (net/file.c) at start-up and on
 * reload and hands the bytes over, never a shard. The table is one array of
 * entries sorted by username plus one block holding all the names; shards
 * search it with a binary search and never write it, so any number of
 * threads may call passwd_find and passwd_check at once.
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
 *
 * SCRAM-SHA-512 entries (RFC 5803's form, see passwd.h) are ringmq's own.
 * They are the one place a hash may hold ':', which the form needs twice.
 * mosquitto 2.0.11 drops them at load ("Invalid password hash type ...,
 * removing entry"), and `mosquitto_passwd -b` keeps them as they are, but
 * `mosquitto_passwd -U` takes one for a plain-text password and replaces it
 * with a $7$ hash of "SCRAM-SHA-512$<iterations>" (the text up to the next
 * ':'): a password anyone can guess. Nothing here can tell such a $7$ entry
 * from another.
 *
 * At load the table also works out what disguises an unknown name: the
 * entry a decoy check imitates, the iteration count and salt length made-up
 * SCRAM entries copy, and the key their salts come from. All of it is fixed
 * once loaded, so the table stays immutable and shared without locks.
 */
#include "passwd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "codec.h"
#include "invariant.h"

/* Longest hash text with the largest salt: "$7$<iterations>$<salt>$<hash>" is
 * 3 + 6 + 1 + 88 + 1 + 88 bytes, "SCRAM-SHA-512$<iterations>:<salt>$<StoredKey>:
 * <ServerKey>" 14 + 6 + 1 + 88 + 1 + 88 + 1 + 88; rounded up to leave room
 * for blanks. */
#define PASSWD_HASH_TEXT_MAX 512u
/* A line holds the longest name, ':' and the longest hash. */
#define PASSWD_LINE_MAX  (64u * 1024u + 1024u)
#define SCRAM_PREFIX     "SCRAM-SHA-512$"
#define SCRAM_PREFIX_LEN (sizeof(SCRAM_PREFIX) - 1)
/* The label the decoy key is derived under; a new derivation gets a new
 * label. */
#define DECOY_KEY_LABEL "ringmq passwd decoy key v1"

_Static_assert(PASSWD_LINE_MAX >= PASSWD_USER_MAX + 1 + PASSWD_HASH_TEXT_MAX,
               "a line must hold the longest username and hash");
_Static_assert(PASSWD_FILE_MAX >= PASSWD_LINE_MAX, "a file must hold one longest line");
_Static_assert(PASSWD_ITERATIONS_MAX <= UINT32_MAX, "an entry keeps iterations in a uint32_t");
_Static_assert(PASSWD_SCRAM_ITERATIONS_DEFAULT >= 1 &&
                   PASSWD_SCRAM_ITERATIONS_DEFAULT <= PASSWD_ITERATIONS_MAX,
               "the default iteration count is one a file may hold");
_Static_assert(PASSWD_SCRAM_SALT_LEN >= 1 && PASSWD_SCRAM_SALT_LEN <= PASSWD_SALT_MAX,
               "a generated salt is one a file may hold");
_Static_assert(PASSWD_SALT_MAX <= PASSWD_KEY_LEN, "a decoy salt is cut from the decoy key");
_Static_assert(SHA512_DIGEST_LENGTH == PASSWD_KEY_LEN, "SHA-512 is 64 bytes");
_Static_assert(PASSWD_USER_MAX + 1 + PASSWD_HASH_TEXT_MAX + 1 <= INT32_MAX,
               "passwd_scram_line returns a line's length as an int");

/* For tests: passwd_scram_line with a given salt instead of a random one. */
int passwd_scram_line(const uint8_t *user, size_t ulen, const uint8_t *pw, size_t pwlen,
                      const uint8_t *salt, size_t salt_len, uint32_t iterations, char *out,
                      size_t outlen);
/* For tests: the entry passwd_check_decoy checks, or NULL when it does no
 * work. */
const struct passwd_entry *passwd_decoy_entry(const struct passwd_db *db);

struct passwd_db {
    struct passwd_entry *entries; /* sorted by (user bytes, user_len) */
    size_t count;
    uint8_t *names; /* every entry's user points in here */
    /* Disguises for names without an entry (passwd.h). */
    uint32_t scram_iterations;
    size_t scram_salt_len;
    bool has_decoy; /* false for an empty table: nothing to imitate */
    struct passwd_entry decoy;
    uint8_t decoy_key[PASSWD_KEY_LEN];
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

/* Decodes a base64 field into scratch (big enough for any field of a line).
 * Returns false if it is not strict, padded base64. */
static bool b64_decode(const uint8_t *in, size_t len, uint8_t *scratch, size_t scratch_len,
                       size_t *out_len)
{
    return EVP_DecodeBase64(scratch, out_len, scratch_len, in, len) == 1;
}

/* A decimal iteration count in 1..PASSWD_ITERATIONS_MAX. NULL, or what is
 * wrong. */
static const char *parse_iterations(const uint8_t *s, size_t len, uint32_t *out, char *msg,
                                    size_t msglen)
{
    uint64_t v = 0;
    for (size_t k = 0; k < len; k++) {
        uint8_t c = s[k];
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
    *out = (uint32_t)v;
    return NULL;
}

static const char *parse_salt(const uint8_t *s, size_t len, struct passwd_entry *e,
                              uint8_t *scratch, size_t scratch_len, char *msg, size_t msglen)
{
    size_t n;
    if (!b64_decode(s, len, scratch, scratch_len, &n))
        return "salt is not valid base64";
    if (n == 0)
        return "empty salt";
    if (n > PASSWD_SALT_MAX) {
        snprintf(msg, msglen, "salt longer than %u bytes", PASSWD_SALT_MAX);
        return msg;
    }
    memcpy(e->salt, scratch, n);
    e->salt_len = n;
    return NULL;
}

/* A 64-byte value: a hash, StoredKey or ServerKey (what names it in errors). */
static const char *parse_key(const uint8_t *s, size_t len, const char *what,
                             uint8_t out[PASSWD_KEY_LEN], uint8_t *scratch, size_t scratch_len,
                             char *msg, size_t msglen)
{
    size_t n;
    if (!b64_decode(s, len, scratch, scratch_len, &n)) {
        snprintf(msg, msglen, "%s is not valid base64", what);
        return msg;
    }
    if (n != PASSWD_KEY_LEN) {
        OPENSSL_cleanse(scratch, n);
        snprintf(msg, msglen, "%s is %zu bytes, expected %u", what, n, PASSWD_KEY_LEN);
        return msg;
    }
    memcpy(out, scratch, n);
    OPENSSL_cleanse(scratch, n);
    return NULL;
}

/* The text after "SCRAM-SHA-512$": <iterations>:<salt>$<StoredKey>:<ServerKey>
 * (RFC 5803 section 3). Exactly one '$' and one ':' on each side of it;
 * base64 has neither, so the split is unambiguous. */
static const char *parse_scram(const uint8_t *b, size_t blen, struct passwd_entry *e,
                               uint8_t *scratch, size_t scratch_len, char *msg, size_t msglen)
{
    static const char garbled[] = "garbled SCRAM-SHA-512 hash (expected SCRAM-SHA-512$<iterations>:"
                                  "<base64 salt>$<base64 StoredKey>:<base64 ServerKey>)";
    const uint8_t *end = b + blen;
    const uint8_t *dollar = memchr(b, '$', blen);
    if (!dollar || memchr(dollar + 1, '$', (size_t)(end - dollar - 1)))
        return garbled;
    const uint8_t *c1 = memchr(b, ':', (size_t)(dollar - b));
    const uint8_t *c2 = memchr(dollar + 1, ':', (size_t)(end - dollar - 1));
    if (!c1 || !c2 || memchr(c1 + 1, ':', (size_t)(dollar - c1 - 1)) ||
        memchr(c2 + 1, ':', (size_t)(end - c2 - 1)))
        return garbled;
    /* it ':' salt '$' stored ':' server, none empty */
    if (c1 == b || dollar == c1 + 1 || c2 == dollar + 1 || end == c2 + 1)
        return garbled;

    e->kind = PASSWD_SCRAM_SHA512;
    const char *w = parse_iterations(b, (size_t)(c1 - b), &e->iterations, msg, msglen);
    if (!w)
        w = parse_salt(c1 + 1, (size_t)(dollar - c1 - 1), e, scratch, scratch_len, msg, msglen);
    if (!w)
        w = parse_key(dollar + 1, (size_t)(c2 - dollar - 1), "StoredKey", e->hash, scratch,
                      scratch_len, msg, msglen);
    if (!w)
        w = parse_key(c2 + 1, (size_t)(end - c2 - 1), "ServerKey", e->server_key, scratch,
                      scratch_len, msg, msglen);
    return w;
}

/* Parses the text after the username's ':' into e. NULL on success, or what
 * is wrong (a static string, or one written into msg). */
static const char *parse_hash(const char *name, const uint8_t *h, size_t hlen,
                              struct passwd_entry *e, uint8_t *scratch, size_t scratch_len,
                              char *msg, size_t msglen)
{
    if (hlen == 0)
        return "no password hash after ':'";
    /* "SCRAM-SHA-512" alone is a garbled entry of this kind, not another
     * mechanism. */
    const size_t mech_len = SCRAM_PREFIX_LEN - 1; /* without the '$' */
    if (hlen >= mech_len && memcmp(h, SCRAM_PREFIX, mech_len) == 0 &&
        (hlen == mech_len || h[mech_len] == '$')) {
        size_t skip = hlen == mech_len ? mech_len : SCRAM_PREFIX_LEN;
        return parse_scram(h + skip, hlen - skip, e, scratch, scratch_len, msg, msglen);
    }
    if (hlen >= 6 && memcmp(h, "SCRAM-", 6) == 0)
        return "unsupported SCRAM mechanism (only SCRAM-SHA-512$... entries are read)";
    if (memchr(h, ':', hlen))
        return "more than one ':' (neither usernames nor hashes may contain ':')";
    if (h[0] != '$') {
        snprintf(msg, msglen,
                 "plain-text password: hash the file first with `mosquitto_passwd -U %s`", name);
        return msg;
    }

    /* Split "$f1$f2..." into at most 5 fields; empty fields count. */
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
        return nfields < 2 ? "garbled password hash (expected $6$..., $7$... or SCRAM-SHA-512$...)"
                           : "unknown hash type (expected $6$, $7$ or SCRAM-SHA-512$)";
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
    const char *w = NULL;
    if (is7) {
        w = parse_iterations(field[1], flen[1], &e->iterations, msg, msglen);
        i = 2;
    }
    if (!w)
        w = parse_salt(field[i], flen[i], e, scratch, scratch_len, msg, msglen);
    if (!w)
        w = parse_key(field[i + 1], flen[i + 1], "hash", e->hash, scratch, scratch_len, msg,
                      msglen);
    return w;
}

/* The most common of v[0..n) (sorts v); on a tie the larger, so a decoy
 * errs towards more work. none when n is 0. */
static uint32_t mode_u32(uint32_t *v, size_t n, uint32_t none)
{
    if (n == 0)
        return none;
    qsort(v, n, sizeof(*v), u32_cmp);
    uint32_t best = v[0];
    size_t best_run = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && v[b] == v[a])
            b++;
        if (b - a >= best_run) {
            best_run = b - a;
            best = v[a];
        }
        a = b;
    }
    return best;
}

/* The most common iteration count (or salt length) among entries of one
 * kind; scratch holds db->count values. */
static uint32_t kind_mode(const struct passwd_db *db, uint8_t kind, bool salt_len,
                          uint32_t *scratch, uint32_t none)
{
    size_t n = 0;
    for (size_t i = 0; i < db->count; i++)
        if (db->entries[i].kind == kind)
            scratch[n++] = salt_len ? (uint32_t)db->entries[i].salt_len : db->entries[i].iterations;
    return mode_u32(scratch, n, none);
}

static void put_be(SHA512_CTX *ctx, uint64_t v, size_t bytes)
{
    uint8_t b[8];
    ASSERT(bytes <= sizeof(b));
    for (size_t i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    SHA512_Update(ctx, b, bytes);
}

/* The decoy key: HMAC-SHA512 keyed by SHA-512 over the sorted entries, each
 * field length-prefixed so no two tables hash alike. Entries rather than
 * file bytes so that comments, order and line endings do not change it. */
static bool derive_decoy_key(struct passwd_db *db)
{
    SHA512_CTX ctx;
    uint8_t digest[SHA512_DIGEST_LENGTH];
    unsigned int n = 0;
    SHA512_Init(&ctx);
    put_be(&ctx, db->count, 8);
    for (size_t i = 0; i < db->count; i++) {
        const struct passwd_entry *e = &db->entries[i];
        put_be(&ctx, e->user_len, 8);
        SHA512_Update(&ctx, e->user, e->user_len);
        put_be(&ctx, e->kind, 1);
        put_be(&ctx, e->iterations, 4);
        put_be(&ctx, e->salt_len, 1);
        SHA512_Update(&ctx, e->salt, e->salt_len);
        SHA512_Update(&ctx, e->hash, sizeof(e->hash));
        SHA512_Update(&ctx, e->server_key, sizeof(e->server_key));
    }
    SHA512_Final(digest, &ctx);
    bool ok = HMAC(EVP_sha512(), digest, sizeof(digest), (const uint8_t *)DECOY_KEY_LABEL,
                   sizeof(DECOY_KEY_LABEL) - 1, db->decoy_key, &n) != NULL &&
              n == sizeof(db->decoy_key);
    OPENSSL_cleanse(&ctx, sizeof(ctx));
    OPENSSL_cleanse(digest, sizeof(digest));
    return ok;
}

/* Fills in the disguises for unknown names (passwd.h) from the sorted
 * entries. -1 when out of memory or HMAC fails. */
static int disguises_init(struct passwd_db *db)
{
    uint32_t *scratch = malloc((db->count ? db->count : 1) * sizeof(*scratch));
    if (!scratch || !derive_decoy_key(db)) {
        free(scratch);
        return -1;
    }
    db->scram_iterations =
        kind_mode(db, PASSWD_SCRAM_SHA512, false, scratch, PASSWD_SCRAM_ITERATIONS_DEFAULT);
    db->scram_salt_len = kind_mode(db, PASSWD_SCRAM_SHA512, true, scratch, PASSWD_SCRAM_SALT_LEN);

    /* The decoy: the most common kind (ties to the costlier: SCRAM, $7$,
     * $6$), then that kind's most common count and salt length. */
    for (size_t i = 0; i < db->count; i++)
        scratch[i] = db->entries[i].kind;
    db->has_decoy = db->count > 0;
    if (db->has_decoy) {
        struct passwd_entry *d = &db->decoy;
        memset(d, 0, sizeof(*d));
        d->kind = (uint8_t)mode_u32(scratch, db->count, PASSWD_PBKDF2_SHA512);
        d->iterations = kind_mode(db, d->kind, false, scratch, 0);
        d->salt_len = kind_mode(db, d->kind, true, scratch, PASSWD_SCRAM_SALT_LEN);
        ASSERT(d->salt_len >= 1 && d->salt_len <= PASSWD_SALT_MAX);
        ASSERT(d->kind == PASSWD_SHA512 || d->iterations >= 1);
        /* Its hash stays zero: the check's result is thrown away anyway. */
        memcpy(d->salt, db->decoy_key, d->salt_len);
        static const uint8_t name[] = "decoy";
        d->user = name;
        d->user_len = sizeof(name) - 1;
    }
    free(scratch);
    return 0;
}

/* One parse: the bytes, the rows parsed so far, and the scratch space the
 * field decoders share. */
struct parser {
    const char *name; /* for messages only */
    const uint8_t *data;
    size_t len;
    struct row *rows;
    size_t count;
    size_t cap;
    uint8_t *scratch; /* scratch_len bytes: any base64 field of a line decoded */
    size_t scratch_len;
    char msg[4352]; /* holds a path (PATH_MAX) in the -U hint */
};

/* A line's two halves, trimmed. */
struct fields {
    const uint8_t *user; /* NULL: a comment or a blank line */
    size_t user_len;
    const uint8_t *hash;
    size_t hash_len;
};

/* Splits one line (without its '\n') at its first ':' and checks the line
 * and the name. NULL on success (f->user NULL when the line holds no entry),
 * or what is wrong (a static string, or one written into msg). */
static const char *split_line(const uint8_t *l, size_t llen, struct fields *f, char *msg,
                              size_t msglen)
{
    f->user = NULL;
    if (llen > PASSWD_LINE_MAX) {
        snprintf(msg, msglen, "line longer than %u bytes", PASSWD_LINE_MAX);
        return msg;
    }
    if (memchr(l, '\0', llen))
        return "NUL byte in the line";
    if (llen > 0 && l[0] == '#') /* mosquitto: only in the first column */
        return NULL;
    const uint8_t *t = l;
    size_t tlen = llen;
    trim(&t, &tlen);
    if (tlen == 0)
        return NULL;

    const uint8_t *colon = memchr(l, ':', llen);
    if (!colon)
        return "no ':' between username and password hash";
    const uint8_t *user = l;
    size_t user_len = (size_t)(colon - l);
    trim(&user, &user_len);
    f->hash = colon + 1;
    f->hash_len = (size_t)(l + llen - f->hash);
    trim(&f->hash, &f->hash_len);

    if (user_len == 0)
        return "empty username";
    if (user_len > PASSWD_USER_MAX) {
        snprintf(msg, msglen, "username longer than %u bytes", PASSWD_USER_MAX);
        return msg;
    }
    if (!codec_utf8_valid(user, user_len))
        return "username is not valid UTF-8 (no MQTT client could send it)";
    if (user_len >= 3 && memcmp(user, "\xEF\xBB\xBF", 3) == 0)
        return "username starts with a UTF-8 byte order mark: save the file without one";
    f->user = user;
    f->user_len = user_len;
    return NULL;
}

/* Room for one more row. False when out of memory. */
static bool rows_reserve(struct parser *p)
{
    if (p->count < p->cap)
        return true;
    size_t ncap = p->cap ? p->cap * 2 : 64;
    struct row *nrows = realloc(p->rows, ncap * sizeof(*p->rows));
    if (!nrows)
        return false;
    p->rows = nrows;
    p->cap = ncap;
    return true;
}

/* Parses every line into p->rows, in file order. 0, or -1 with the first
 * problem in err ("name:line: what", or "name: out of memory"). */
static int parse_lines(struct parser *p, char *err, size_t errlen)
{
    size_t line = 0;
    size_t pos = 0;
    while (pos < p->len) {
        line++;
        const uint8_t *l = p->data + pos;
        const uint8_t *nl = memchr(l, '\n', p->len - pos);
        size_t llen = nl ? (size_t)(nl - l) : p->len - pos;
        pos += llen + (nl ? 1 : 0);

        struct fields f;
        const char *what = split_line(l, llen, &f, p->msg, sizeof(p->msg));
        if (!what && !f.user)
            continue;
        if (!what) {
            if (!rows_reserve(p)) {
                set_err(err, errlen, "%s: out of memory", p->name);
                return -1;
            }
            struct row *r = &p->rows[p->count];
            memset(r, 0, sizeof(*r));
            r->line = line;
            r->e.user = f.user;
            r->e.user_len = f.user_len;
            what = parse_hash(p->name, f.hash, f.hash_len, &r->e, p->scratch, p->scratch_len,
                              p->msg, sizeof(p->msg));
        }
        if (what) {
            set_err(err, errlen, "%s:%zu: %s", p->name, line, what);
            return -1;
        }
        p->count++;
    }
    return 0;
}

/* In rows sorted by name and then line: the line of the duplicate name that
 * comes first in the file, with the line that defined the name before it in
 * *first; 0 when every name is defined once. */
static size_t first_duplicate(const struct row *rows, size_t count, size_t *first)
{
    size_t dup_line = 0;
    *first = 0;
    for (size_t i = 1; i < count; i++) {
        if (user_cmp(rows[i - 1].e.user, rows[i - 1].e.user_len, rows[i].e.user,
                     rows[i].e.user_len) == 0 &&
            (dup_line == 0 || rows[i].line < dup_line)) {
            dup_line = rows[i].line;
            *first = rows[i - 1].line;
        }
    }
    return dup_line;
}

/* The table from rows sorted by name: the entries in one array, their names
 * copied into one block (the rows' point into the caller's bytes), and the
 * disguises worked out. NULL when out of memory or HMAC fails. */
static struct passwd_db *db_build(const struct row *rows, size_t count)
{
    struct passwd_db *db = calloc(1, sizeof(*db));
    if (!db)
        goto fail;
    size_t names_len = 0;
    for (size_t i = 0; i < count; i++)
        names_len += rows[i].e.user_len;
    db->names = malloc(names_len ? names_len : 1);
    db->entries = malloc((count ? count : 1) * sizeof(*db->entries));
    if (!db->names || !db->entries)
        goto fail;
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
        db->entries[i] = rows[i].e;
        memcpy(db->names + off, rows[i].e.user, rows[i].e.user_len);
        db->entries[i].user = db->names + off;
        off += rows[i].e.user_len;
    }
    ASSERT(off == names_len);
    db->count = count;
    if (disguises_init(db) != 0)
        goto fail;
    return db;
fail:
    passwd_free(db);
    return NULL;
}

struct passwd_db *passwd_parse(const char *name, const uint8_t *data, size_t len, char *err,
                               size_t errlen)
{
    ASSERT(name && (data || len == 0));
    struct parser p = {
        .name = name,
        .data = data,
        .len = len,
        .scratch_len = PASSWD_LINE_MAX / 4 * 3 + 3,
    };
    struct passwd_db *db = NULL;

    /* The reader bounds what it reads by the same limit before it
     * allocates; checked again so that the limit holds for every caller. */
    if (len > PASSWD_FILE_MAX) {
        set_err(err, errlen, "%s: larger than %u bytes", name, PASSWD_FILE_MAX);
        goto done;
    }
    p.scratch = malloc(p.scratch_len);
    if (!p.scratch)
        goto nomem;
    if (parse_lines(&p, err, errlen) != 0)
        goto done;

    if (p.count > 0)
        qsort(p.rows, p.count, sizeof(*p.rows), row_cmp);
    /* Report the duplicate that comes first in the file. */
    size_t dup_first;
    size_t dup_line = first_duplicate(p.rows, p.count, &dup_first);
    if (dup_line != 0) {
        set_err(err, errlen, "%s:%zu: username already defined on line %zu", name, dup_line,
                dup_first);
        goto done;
    }
    db = db_build(p.rows, p.count);
    if (!db)
        goto nomem;
    goto done;

nomem:
    set_err(err, errlen, "%s: out of memory", name);
done:
    if (p.rows) {
        /* Every row allocated, the one a bad line left half-parsed too. */
        OPENSSL_cleanse(p.rows, p.cap * sizeof(*p.rows));
        free(p.rows);
    }
    free(p.scratch);
    return db;
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
    OPENSSL_cleanse(db, sizeof(*db)); /* the decoy key */
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

/* SaltedPassword, then StoredKey and (when server_key is not NULL) ServerKey
 * (RFC 5802 section 3). */
static bool scram_keys(const uint8_t *pw, size_t len, const uint8_t *salt, size_t salt_len,
                       uint32_t iterations, uint8_t stored_key[PASSWD_KEY_LEN], uint8_t *server_key)
{
    uint8_t salted[PASSWD_KEY_LEN];
    uint8_t client_key[PASSWD_KEY_LEN];
    unsigned int n1 = 0;
    unsigned int n2 = PASSWD_KEY_LEN;
    ASSERT(iterations >= 1 && iterations <= PASSWD_ITERATIONS_MAX);
    bool ok = PKCS5_PBKDF2_HMAC((const char *)pw, len, salt, salt_len, iterations, EVP_sha512(),
                                sizeof(salted), salted) == 1 &&
              HMAC(EVP_sha512(), salted, sizeof(salted), (const uint8_t *)"Client Key", 10,
                   client_key, &n1) != NULL &&
              n1 == PASSWD_KEY_LEN && SHA512(client_key, sizeof(client_key), stored_key) != NULL;
    if (ok && server_key)
        ok = HMAC(EVP_sha512(), salted, sizeof(salted), (const uint8_t *)"Server Key", 10,
                  server_key, &n2) != NULL &&
             n2 == PASSWD_KEY_LEN;
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return ok;
}

bool passwd_check(const struct passwd_entry *e, const uint8_t *password, size_t len)
{
    if (!e)
        return false;
    uint8_t got[PASSWD_KEY_LEN];
    _Static_assert(sizeof(got) == sizeof(e->hash), "SHA-512 output is the stored hash");
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
    } else if (e->kind == PASSWD_SCRAM_SHA512) {
        /* What a SCRAM server checks a proof against, from the password
         * itself: ServerKey is not needed. */
        computed = scram_keys(pw, len, e->salt, e->salt_len, e->iterations, got, NULL);
    }
    bool ok = computed && CRYPTO_memcmp(got, e->hash, sizeof(got)) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

const struct passwd_entry *passwd_decoy_entry(const struct passwd_db *db)
{
    return db && db->has_decoy ? &db->decoy : NULL;
}

bool passwd_check_decoy(const struct passwd_db *db, const uint8_t *password, size_t len)
{
    const struct passwd_entry *d = passwd_decoy_entry(db);
    if (d) {
        /* The result is discarded, but passwd_check's calls into BoringSSL
         * are opaque to the compiler, so the work is not optimized away. */
        (void)passwd_check(d, password, len);
    }
    return false;
}

bool passwd_decoy_copy(const struct passwd_db *db, struct passwd_entry *out)
{
    const struct passwd_entry *d = passwd_decoy_entry(db);
    if (!d)
        return false;
    *out = *d;
    out->user = NULL; /* points into db */
    out->user_len = 0;
    return true;
}

uint32_t passwd_scram_iterations(const struct passwd_db *db)
{
    return db ? db->scram_iterations : PASSWD_SCRAM_ITERATIONS_DEFAULT;
}

size_t passwd_scram_salt_len(const struct passwd_db *db)
{
    return db ? db->scram_salt_len : PASSWD_SCRAM_SALT_LEN;
}

const uint8_t *passwd_decoy_key(const struct passwd_db *db)
{
    return db ? db->decoy_key : NULL;
}

/* Would passwd_parse read this name back as itself? */
static bool user_writable(const uint8_t *user, size_t len)
{
    if (len == 0 || len > PASSWD_USER_MAX || !codec_utf8_valid(user, len))
        return false;
    if (memchr(user, ':', len) || memchr(user, '\n', len))
        return false;
    if (is_blank(user[0]) || is_blank(user[len - 1]) || user[0] == '#')
        return false;
    return !(len >= 3 && memcmp(user, "\xEF\xBB\xBF", 3) == 0);
}

int passwd_scram_line(const uint8_t *user, size_t ulen, const uint8_t *pw, size_t pwlen,
                      const uint8_t *salt, size_t salt_len, uint32_t iterations, char *out,
                      size_t outlen)
{
    static const uint8_t empty[1];
    uint8_t stored[PASSWD_KEY_LEN];
    uint8_t server[PASSWD_KEY_LEN];
    int r = -1;

    if (!user || !user_writable(user, ulen) || (pwlen > 0 && !pw) || !out)
        goto fail;
    if (iterations < 1 || iterations > PASSWD_ITERATIONS_MAX)
        goto fail;
    ASSERT(salt && salt_len >= 1 && salt_len <= PASSWD_SALT_MAX);
    char it[16];
    int it_len = snprintf(it, sizeof(it), "%u", (unsigned)iterations);
    ASSERT(it_len > 0 && (size_t)it_len < sizeof(it));
    size_t b64_salt = (salt_len + 2) / 3 * 4;
    size_t b64_key = (PASSWD_KEY_LEN + 2) / 3 * 4;
    /* user ':' prefix iterations ':' salt '$' StoredKey ':' ServerKey NUL */
    size_t need =
        ulen + 1 + SCRAM_PREFIX_LEN + (size_t)it_len + 1 + b64_salt + 1 + b64_key + 1 + b64_key + 1;
    ASSERT(need - 1 <= (size_t)INT32_MAX);
    if (outlen < need)
        goto fail;
    if (!scram_keys(pwlen ? pw : empty, pwlen, salt, salt_len, iterations, stored, server))
        goto fail;

    uint8_t *o = (uint8_t *)out;
    memcpy(o, user, ulen);
    o += ulen;
    *o++ = ':';
    memcpy(o, SCRAM_PREFIX, SCRAM_PREFIX_LEN);
    o += SCRAM_PREFIX_LEN;
    memcpy(o, it, (size_t)it_len);
    o += it_len;
    *o++ = ':';
    o += EVP_EncodeBlock(o, salt, salt_len);
    *o++ = '$';
    o += EVP_EncodeBlock(o, stored, sizeof(stored));
    *o++ = ':';
    o += EVP_EncodeBlock(o, server, sizeof(server)); /* writes the NUL too */
    ASSERT((size_t)(o - (uint8_t *)out) == need - 1 && *o == 0);
    r = (int)(need - 1);
fail:
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(server, sizeof(server));
    return r;
}
