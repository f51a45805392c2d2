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
 * mosquitto 2.1 (libcommon/password_common.c) adds $argon2id$ entries and
 * hands each whole string to libargon2's argon2id_verify, which runs
 * whatever m, t and p the line names: a line asking for 4 TiB or 2^32
 * passes is accepted at load and paid for by every CONNECT naming that
 * user. Here the PHC string is parsed field by field at load, against the
 * bounds in passwd.h, and a check calls argon2_ctx itself with one thread
 * and compares the hash with CRYPTO_memcmp. The plain-text hint names
 * ringmq-passwd -U, which keeps SCRAM and hashed lines as they are, where
 * mosquitto_passwd -U hashes them again.
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

#include <argon2.h>
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
/* "$argon2id$v=19$m=<m>,t=<t>,p=<p>$": the fixed text and three numbers of
 * at most 10 digits. */
#define ARGON2_PREFIX_MAX (sizeof("$argon2id$v=19$m=,t=,p=$") - 1 + 3 * 10)
/* Unpadded base64 of n bytes. */
#define B64_NOPAD_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

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
_Static_assert(ARGON2_PREFIX_MAX + B64_NOPAD_LEN(PASSWD_SALT_MAX) + 1 +
                       B64_NOPAD_LEN(PASSWD_KEY_LEN) <=
                   PASSWD_HASH_TEXT_MAX,
               "the longest argon2id hash fits a line");
/* The bounds are ones libargon2 takes (argon2.h's ARGON2_MIN/MAX_*), so a
 * loaded entry never fails for its parameters at check time. */
_Static_assert(PASSWD_ARGON2_SALT_MIN >= ARGON2_MIN_SALT_LENGTH &&
                   PASSWD_ARGON2_SALT_MIN <= PASSWD_SALT_MAX,
               "argon2 salts are 8 bytes or more");
_Static_assert(PASSWD_ARGON2_HASH_MIN >= ARGON2_MIN_OUTLEN &&
                   PASSWD_ARGON2_HASH_MIN <= PASSWD_KEY_LEN,
               "argon2 hashes are 4 bytes or more");
_Static_assert(PASSWD_ARGON2_LANES_MAX <= ARGON2_MAX_LANES, "lanes libargon2 takes");
_Static_assert(PASSWD_ARGON2_MEMORY_KIB_MAX >= 8u * PASSWD_ARGON2_LANES_MAX,
               "every lane count allowed has a memory cost allowed");
_Static_assert(PASSWD_ARGON2_WORK_KIB_MAX >= PASSWD_ARGON2_MEMORY_KIB_MAX,
               "one pass over the most memory allowed is work allowed");
_Static_assert(PASSWD_ARGON2_TIME_MAX <= PASSWD_ITERATIONS_MAX,
               "t is kept where iterations are, and read as iterations are");
_Static_assert(PASSWD_ARGON2_MEMORY_KIB_DEFAULT <= PASSWD_ARGON2_MEMORY_KIB_MAX &&
                   PASSWD_ARGON2_MEMORY_KIB_DEFAULT >= 8u * PASSWD_ARGON2_LANES_DEFAULT &&
                   PASSWD_ARGON2_TIME_DEFAULT >= 1 &&
                   PASSWD_ARGON2_TIME_DEFAULT <= PASSWD_ARGON2_TIME_MAX &&
                   PASSWD_ARGON2_LANES_DEFAULT >= 1 &&
                   PASSWD_ARGON2_LANES_DEFAULT <= PASSWD_ARGON2_LANES_MAX &&
                   (uint64_t)PASSWD_ARGON2_MEMORY_KIB_DEFAULT * PASSWD_ARGON2_TIME_DEFAULT <=
                       PASSWD_ARGON2_WORK_KIB_MAX,
               "the default argon2id parameters are ones a file may hold");
_Static_assert(PASSWD_ARGON2_SALT_LEN >= PASSWD_ARGON2_SALT_MIN &&
                   PASSWD_ARGON2_SALT_LEN <= PASSWD_SALT_MAX &&
                   PASSWD_ARGON2_HASH_LEN >= PASSWD_ARGON2_HASH_MIN &&
                   PASSWD_ARGON2_HASH_LEN <= PASSWD_KEY_LEN,
               "the default argon2id salt and hash are ones a file may hold");
_Static_assert(PASSWD_MOSQUITTO_SALT_LEN >= 1 && PASSWD_MOSQUITTO_SALT_LEN <= PASSWD_SALT_MAX &&
                   PASSWD_PBKDF2_ITERATIONS_DEFAULT >= 1 &&
                   PASSWD_PBKDF2_ITERATIONS_DEFAULT <= PASSWD_ITERATIONS_MAX,
               "the default $6$/$7$ salt and iterations are ones a file may hold");
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

/* "$f1$f2...": the most fields any hash has (argon2id's five) and one more,
 * so that a field too many is seen. */
#define HASH_FIELDS_MAX 6

/* Splits the text after a hash's leading '$' at each '$' into at most
 * HASH_FIELDS_MAX fields; empty fields count. Returns how many (at least
 * one). */
static size_t split_fields(const uint8_t *p, const uint8_t *end, const uint8_t **field,
                           size_t *flen)
{
    size_t n = 0;
    for (;;) {
        const uint8_t *d = memchr(p, '$', (size_t)(end - p));
        const uint8_t *fe = d ? d : end;
        if (n == HASH_FIELDS_MAX)
            break;
        field[n] = p;
        flen[n] = (size_t)(fe - p);
        n++;
        if (!d)
            break;
        p = d + 1;
    }
    return n;
}

static bool any_empty(const size_t *flen, size_t n)
{
    bool empty = false;
    for (size_t i = 0; i < n; i++)
        empty |= flen[i] == 0;
    return empty;
}

/* The value of a base64 character (RFC 4648 section 4), or -1. */
static int b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    return c == '/' ? 63 : -1;
}

/* Decodes base64 without padding, as the PHC string format and libargon2
 * write it, into out (cap bytes). Strict: no '=', no length that leaves a
 * lone character (len % 4 == 1), and the unused low bits of the last
 * character zero, so one value has exactly one spelling (libargon2's
 * decoder is as strict). False otherwise. */
static bool b64_nopad_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                             size_t *out_len)
{
    if (len % 4 == 1 || (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0) > cap)
        return false;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
        acc &= (1u << bits) - 1u;
    }
    if (acc != 0)
        return false;
    *out_len = o;
    return true;
}

/* One "<name>=<decimal>" of argon2id's parameters at s[*pos..len), the
 * number without sign or leading zero; it stops growing past UINT32_MAX,
 * which every bound is below. False if garbled. */
static bool argon2_param(const uint8_t *s, size_t len, size_t *pos, char name, uint64_t *out)
{
    size_t k = *pos;
    if (len - k < 3 || s[k] != name || s[k + 1] != '=')
        return false;
    k += 2;
    size_t start = k;
    uint64_t v = 0;
    while (k < len && s[k] >= '0' && s[k] <= '9') {
        if (v <= UINT32_MAX)
            v = v * 10 + (uint64_t)(s[k] - '0');
        k++;
    }
    if (k == start || (s[start] == '0' && k - start > 1))
        return false;
    *pos = k;
    *out = v;
    return true;
}

/* "m=<KiB>,t=<passes>,p=<lanes>", in that order (libargon2 writes and
 * reads no other), checked against the PASSWD_ARGON2_* bounds. */
static const char *parse_argon2_params(const uint8_t *s, size_t len, struct passwd_entry *e,
                                       char *msg, size_t msglen)
{
    uint64_t m = 0, t = 0, p = 0;
    size_t pos = 0;
    if (!argon2_param(s, len, &pos, 'm', &m) || pos >= len || s[pos++] != ',' ||
        !argon2_param(s, len, &pos, 't', &t) || pos >= len || s[pos++] != ',' ||
        !argon2_param(s, len, &pos, 'p', &p) || pos != len)
        return "garbled argon2id parameters (expected m=<KiB>,t=<passes>,p=<lanes> in decimal)";
    if (m > PASSWD_ARGON2_MEMORY_KIB_MAX) {
        snprintf(msg, msglen, "argon2id memory cost m over %u KiB (%u MiB)",
                 PASSWD_ARGON2_MEMORY_KIB_MAX, PASSWD_ARGON2_MEMORY_KIB_MAX / 1024u);
        return msg;
    }
    if (t < 1 || t > PASSWD_ARGON2_TIME_MAX) {
        snprintf(msg, msglen, "argon2id time cost t outside 1..%u", PASSWD_ARGON2_TIME_MAX);
        return msg;
    }
    if (p < 1 || p > PASSWD_ARGON2_LANES_MAX) {
        snprintf(msg, msglen, "argon2id parallelism p outside 1..%u", PASSWD_ARGON2_LANES_MAX);
        return msg;
    }
    if (m < 8 * p)
        return "argon2id memory cost m under 8 KiB per lane (8 * p)";
    if (m * t > PASSWD_ARGON2_WORK_KIB_MAX) {
        snprintf(msg, msglen, "argon2id work m * t over %u KiB (%u MiB of passes): lower m or t",
                 PASSWD_ARGON2_WORK_KIB_MAX, PASSWD_ARGON2_WORK_KIB_MAX / 1024u);
        return msg;
    }
    e->memory_kib = (uint32_t)m;
    e->iterations = (uint32_t)t;
    e->lanes = (uint32_t)p;
    return NULL;
}

/* An argon2id salt or hash: unpadded base64 of min..PASSWD_KEY_LEN bytes
 * (salts stop at PASSWD_SALT_MAX, which is no more). */
static const char *parse_argon2_bytes(const uint8_t *s, size_t len, const char *what, size_t min,
                                      size_t max, uint8_t *out, size_t *out_len, uint8_t *scratch,
                                      size_t scratch_len, char *msg, size_t msglen)
{
    size_t n = 0;
    if (!b64_nopad_decode(s, len, scratch, scratch_len, &n)) {
        snprintf(msg, msglen, "argon2id %s is not valid unpadded base64", what);
        return msg;
    }
    if (n < min || n > max) {
        OPENSSL_cleanse(scratch, n);
        snprintf(msg, msglen, "argon2id %s is %zu bytes, expected %zu to %zu", what, n, min, max);
        return msg;
    }
    memcpy(out, scratch, n);
    OPENSSL_cleanse(scratch, n);
    *out_len = n;
    return NULL;
}

/* The fields after "$argon2id$": v=19, the parameters, the salt and the
 * hash (the PHC string format as libargon2 writes it). */
static const char *parse_argon2(const uint8_t *const *field, const size_t *flen, size_t n,
                                struct passwd_entry *e, uint8_t *scratch, size_t scratch_len,
                                char *msg, size_t msglen)
{
    if (n != 4 || any_empty(flen, n))
        return "garbled argon2id hash (expected $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>"
               "$<salt>$<hash>, salt and hash in unpadded base64)";
    if (flen[0] < 2 || memcmp(field[0], "v=", 2) != 0)
        return "garbled argon2id hash: no v= version after $argon2id$";
    if (flen[0] != 4 || memcmp(field[0], "v=19", 4) != 0)
        return "unsupported argon2id version (only v=19, what libargon2 writes)";
    e->kind = PASSWD_ARGON2ID;
    const char *w = parse_argon2_params(field[1], flen[1], e, msg, msglen);
    if (!w)
        w = parse_argon2_bytes(field[2], flen[2], "salt", PASSWD_ARGON2_SALT_MIN, PASSWD_SALT_MAX,
                               e->salt, &e->salt_len, scratch, scratch_len, msg, msglen);
    if (!w)
        w = parse_argon2_bytes(field[3], flen[3], "hash", PASSWD_ARGON2_HASH_MIN, PASSWD_KEY_LEN,
                               e->hash, &e->hash_len, scratch, scratch_len, msg, msglen);
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
    e->hash_len = PASSWD_KEY_LEN; /* all but argon2id */
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
        snprintf(msg, msglen, "plain-text password: hash the file first with `ringmq-passwd -U %s`",
                 name);
        return msg;
    }

    const uint8_t *field[HASH_FIELDS_MAX];
    size_t flen[HASH_FIELDS_MAX];
    size_t nfields = split_fields(h + 1, h + hlen, field, flen);
    if (flen[0] == 8 && memcmp(field[0], "argon2id", 8) == 0)
        return parse_argon2(field + 1, flen + 1, nfields - 1, e, scratch, scratch_len, msg, msglen);
    if (flen[0] == 7 &&
        (memcmp(field[0], "argon2i", 7) == 0 || memcmp(field[0], "argon2d", 7) == 0))
        return "unsupported argon2 variant (only $argon2id$ entries are read)";

    bool is6 = flen[0] == 1 && field[0][0] == '6';
    bool is7 = flen[0] == 1 && field[0][0] == '7';
    if (!is6 && !is7)
        return nfields < 2 ? "garbled password hash (expected $6$..., $7$..., $argon2id$... or "
                             "SCRAM-SHA-512$...)"
                           : "unknown hash type (expected $6$, $7$, $argon2id$ or SCRAM-SHA-512$)";
    size_t want = is6 ? 3 : 4;
    if (nfields != want || any_empty(flen, nfields))
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
        /* Only for argon2id, so that the keys of files without such
         * entries stay what they were before argon2id was read. */
        if (e->kind == PASSWD_ARGON2ID) {
            put_be(&ctx, e->memory_kib, 4);
            put_be(&ctx, e->lanes, 4);
            put_be(&ctx, e->hash_len, 1);
        }
    }
    SHA512_Final(digest, &ctx);
    bool ok = HMAC(EVP_sha512(), digest, sizeof(digest), (const uint8_t *)DECOY_KEY_LABEL,
                   sizeof(DECOY_KEY_LABEL) - 1, db->decoy_key, &n) != NULL &&
              n == sizeof(db->decoy_key);
    OPENSSL_cleanse(&ctx, sizeof(ctx));
    OPENSSL_cleanse(digest, sizeof(digest));
    return ok;
}

/* What an argon2id check costs and what it reads: the decoy copies all of
 * it from one real entry. */
struct argon2_shape {
    uint64_t work; /* m * t */
    uint32_t m, t, p;
    uint32_t salt_len, hash_len;
};

static int shape_cmp(const void *pa, const void *pb)
{
    const struct argon2_shape *a = pa;
    const struct argon2_shape *b = pb;
    const uint64_t av[6] = {a->work, a->m, a->t, a->p, a->salt_len, a->hash_len};
    const uint64_t bv[6] = {b->work, b->m, b->t, b->p, b->salt_len, b->hash_len};
    for (int i = 0; i < 6; i++)
        if (av[i] != bv[i])
            return av[i] < bv[i] ? -1 : 1;
    return 0;
}

/* The decoy's argon2id parameters: the most common shape among db's
 * argon2id entries, ties to the costlier (the later in shape_cmp's order).
 * Several numbers make one cost here, so they are taken together: a mode
 * of each alone could add up to more work than any entry, or than the
 * bounds allow. False when out of memory. */
static bool argon2_decoy(const struct passwd_db *db, struct passwd_entry *d)
{
    struct argon2_shape *v = malloc((db->count ? db->count : 1) * sizeof(*v));
    if (!v)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < db->count; i++) {
        const struct passwd_entry *e = &db->entries[i];
        if (e->kind == PASSWD_ARGON2ID)
            v[n++] = (struct argon2_shape){(uint64_t)e->memory_kib * e->iterations,
                                           e->memory_kib,
                                           e->iterations,
                                           e->lanes,
                                           (uint32_t)e->salt_len,
                                           (uint32_t)e->hash_len};
    }
    ASSERT(n > 0); /* argon2id is the decoy's kind only where there are such entries */
    qsort(v, n, sizeof(*v), shape_cmp);
    size_t best = 0, best_run = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && shape_cmp(&v[b], &v[a]) == 0)
            b++;
        if (b - a >= best_run) {
            best_run = b - a;
            best = a;
        }
        a = b;
    }
    d->memory_kib = v[best].m;
    d->iterations = v[best].t;
    d->lanes = v[best].p;
    d->salt_len = v[best].salt_len;
    d->hash_len = v[best].hash_len;
    free(v);
    return true;
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

    /* The decoy: the most common kind (ties to the costlier: argon2id,
     * SCRAM, $7$, $6$, which is their order as numbers), then that kind's
     * most common count and salt length, or argon2id's most common shape. */
    for (size_t i = 0; i < db->count; i++)
        scratch[i] = db->entries[i].kind;
    db->has_decoy = db->count > 0;
    if (db->has_decoy) {
        struct passwd_entry *d = &db->decoy;
        memset(d, 0, sizeof(*d));
        d->kind = (uint8_t)mode_u32(scratch, db->count, PASSWD_PBKDF2_SHA512);
        d->hash_len = PASSWD_KEY_LEN;
        if (d->kind == PASSWD_ARGON2ID) {
            if (!argon2_decoy(db, d)) {
                free(scratch);
                return -1;
            }
        } else {
            d->iterations = kind_mode(db, d->kind, false, scratch, 0);
            d->salt_len = kind_mode(db, d->kind, true, scratch, PASSWD_SCRAM_SALT_LEN);
        }
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

/* argon2id of the password under e's salt and parameters into out
 * (e->hash_len bytes), on this thread alone: threads 1 whatever the lanes
 * (the result depends on the lanes, not on the threads that fill them), so
 * no check starts threads. libargon2 mallocs m KiB and wipes them before it
 * returns. False when it fails (out of memory). */
static bool argon2id_raw(const struct passwd_entry *e, const uint8_t *pw, size_t len, uint8_t *out)
{
    ASSERT(e->memory_kib >= 8u * e->lanes && e->memory_kib <= PASSWD_ARGON2_MEMORY_KIB_MAX);
    ASSERT(e->iterations >= 1 && e->iterations <= PASSWD_ARGON2_TIME_MAX);
    ASSERT(e->lanes >= 1 && e->lanes <= PASSWD_ARGON2_LANES_MAX);
    ASSERT((uint64_t)e->memory_kib * e->iterations <= PASSWD_ARGON2_WORK_KIB_MAX);
    ASSERT(e->salt_len >= PASSWD_ARGON2_SALT_MIN && e->salt_len <= PASSWD_SALT_MAX);
    ASSERT(e->hash_len >= PASSWD_ARGON2_HASH_MIN && e->hash_len <= PASSWD_KEY_LEN);
    if (len > UINT32_MAX)
        return false;
    /* libargon2 takes non-const pointers; without ARGON2_FLAG_CLEAR_PASSWORD
     * it only reads them. */
    argon2_context ctx = {
        .out = out,
        .outlen = (uint32_t)e->hash_len,
        .pwd = (uint8_t *)pw,
        .pwdlen = (uint32_t)len,
        .salt = (uint8_t *)e->salt,
        .saltlen = (uint32_t)e->salt_len,
        .t_cost = e->iterations,
        .m_cost = e->memory_kib,
        .lanes = e->lanes,
        .threads = 1,
        .version = ARGON2_VERSION_13,
        .flags = ARGON2_DEFAULT_FLAGS,
    };
    return argon2_ctx(&ctx, Argon2_id) == ARGON2_OK;
}

/* What e's hash is for this password (pw not NULL), into got: e->hash_len
 * bytes for argon2id, PASSWD_KEY_LEN for the others. False when hashing
 * failed or the kind is unknown. */
static bool hash_of(const struct passwd_entry *e, const uint8_t *pw, size_t len,
                    uint8_t got[PASSWD_KEY_LEN])
{
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
                                     EVP_sha512(), PASSWD_KEY_LEN, got) == 1;
    } else if (e->kind == PASSWD_SCRAM_SHA512) {
        /* What a SCRAM server checks a proof against, from the password
         * itself: ServerKey is not needed. */
        computed = scram_keys(pw, len, e->salt, e->salt_len, e->iterations, got, NULL);
    } else if (e->kind == PASSWD_ARGON2ID) {
        computed = argon2id_raw(e, pw, len, got);
    }
    return computed;
}

bool passwd_check(const struct passwd_entry *e, const uint8_t *password, size_t len)
{
    if (!e)
        return false;
    uint8_t got[PASSWD_KEY_LEN];
    _Static_assert(sizeof(got) == sizeof(e->hash), "SHA-512 output is the stored hash");
    static const uint8_t empty[1];
    const uint8_t *pw = len ? password : empty; /* NULL + 0 is not a valid argument */
    /* The whole hash, in constant time: an argon2id hash is hash_len bytes,
     * every other kind's PASSWD_KEY_LEN (hash_len is not read for them, so
     * an entry built without it still checks). */
    size_t cmp_len = e->kind == PASSWD_ARGON2ID ? e->hash_len : sizeof(got);
    ASSERT(cmp_len <= sizeof(got));
    bool ok = hash_of(e, pw, len, got) && CRYPTO_memcmp(got, e->hash, cmp_len) == 0;
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

bool passwd_user_valid(const uint8_t *user, size_t len)
{
    if (!user || !user_writable(user, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if (user[i] < 0x20 || user[i] == 0x7f) /* iscntrl() in the C locale */
            return false;
    return true;
}

bool passwd_hash_spec_default(uint8_t kind, struct passwd_hash_spec *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    switch (kind) {
    case PASSWD_ARGON2ID:
        out->iterations = PASSWD_ARGON2_TIME_DEFAULT;
        out->memory_kib = PASSWD_ARGON2_MEMORY_KIB_DEFAULT;
        out->lanes = PASSWD_ARGON2_LANES_DEFAULT;
        out->hash_len = PASSWD_ARGON2_HASH_LEN;
        out->salt_len = PASSWD_ARGON2_SALT_LEN;
        return true;
    case PASSWD_PBKDF2_SHA512:
        out->iterations = PASSWD_PBKDF2_ITERATIONS_DEFAULT;
        out->salt_len = PASSWD_MOSQUITTO_SALT_LEN;
        return true;
    case PASSWD_SHA512:
        out->salt_len = PASSWD_MOSQUITTO_SALT_LEN;
        return true;
    case PASSWD_SCRAM_SHA512:
        out->iterations = PASSWD_SCRAM_ITERATIONS_DEFAULT;
        out->salt_len = PASSWD_SCRAM_SALT_LEN;
        return true;
    default:
        return false;
    }
}

/* Is the spec one passwd_parse would load, with a salt of salt_len? */
static bool spec_loadable(const struct passwd_hash_spec *sp, size_t salt_len)
{
    if (sp->kind == PASSWD_SHA512)
        return salt_len >= 1 && salt_len <= PASSWD_SALT_MAX;
    if (sp->kind == PASSWD_PBKDF2_SHA512 || sp->kind == PASSWD_SCRAM_SHA512)
        return salt_len >= 1 && salt_len <= PASSWD_SALT_MAX && sp->iterations >= 1 &&
               sp->iterations <= PASSWD_ITERATIONS_MAX;
    if (sp->kind != PASSWD_ARGON2ID)
        return false;
    return salt_len >= PASSWD_ARGON2_SALT_MIN && salt_len <= PASSWD_SALT_MAX &&
           sp->iterations >= 1 && sp->iterations <= PASSWD_ARGON2_TIME_MAX && sp->lanes >= 1 &&
           sp->lanes <= PASSWD_ARGON2_LANES_MAX && sp->memory_kib >= 8u * sp->lanes &&
           sp->memory_kib <= PASSWD_ARGON2_MEMORY_KIB_MAX &&
           (uint64_t)sp->memory_kib * sp->iterations <= PASSWD_ARGON2_WORK_KIB_MAX &&
           sp->hash_len >= PASSWD_ARGON2_HASH_MIN && sp->hash_len <= PASSWD_KEY_LEN;
}

/* Base64 of in into o, with padding or without; returns the characters
 * written (EVP_EncodeBlock's NUL is not counted and may be overwritten). */
static size_t put_b64(uint8_t *o, const uint8_t *in, size_t len, bool pad)
{
    size_t n = EVP_EncodeBlock(o, in, len);
    while (!pad && n > 0 && o[n - 1] == '=')
        n--;
    return n;
}

/* The hash text of a $6$, $7$ or argon2id entry for pw into o (room checked
 * by the caller: PASSWD_HASH_TEXT_MAX bytes); its length, or 0 when hashing
 * failed. */
static size_t hash_text(const struct passwd_hash_spec *sp, const uint8_t *pw, size_t pwlen,
                        const uint8_t *salt, size_t salt_len, uint8_t *o)
{
    struct passwd_entry e;
    memset(&e, 0, sizeof(e));
    e.kind = sp->kind;
    e.iterations = sp->kind == PASSWD_SHA512 ? 0 : sp->iterations;
    e.memory_kib = sp->memory_kib;
    e.lanes = sp->lanes;
    memcpy(e.salt, salt, salt_len);
    e.salt_len = salt_len;
    e.hash_len = sp->kind == PASSWD_ARGON2ID ? sp->hash_len : PASSWD_KEY_LEN;
    uint8_t got[PASSWD_KEY_LEN];
    bool ok = hash_of(&e, pw, pwlen, got);
    size_t n = 0;
    if (ok) {
        char head[ARGON2_PREFIX_MAX + 1];
        int hl;
        if (sp->kind == PASSWD_ARGON2ID)
            hl = snprintf(head, sizeof(head), "$argon2id$v=19$m=%u,t=%u,p=%u$",
                          (unsigned)sp->memory_kib, (unsigned)sp->iterations, (unsigned)sp->lanes);
        else if (sp->kind == PASSWD_PBKDF2_SHA512)
            hl = snprintf(head, sizeof(head), "$7$%u$", (unsigned)sp->iterations);
        else
            hl = snprintf(head, sizeof(head), "$6$");
        ASSERT(hl > 0 && (size_t)hl < sizeof(head));
        bool pad = sp->kind != PASSWD_ARGON2ID;
        memcpy(o, head, (size_t)hl);
        n = (size_t)hl;
        n += put_b64(o + n, salt, salt_len, pad);
        o[n++] = '$';
        n += put_b64(o + n, got, e.hash_len, pad);
        ASSERT(n < PASSWD_HASH_TEXT_MAX);
    }
    OPENSSL_cleanse(got, sizeof(got));
    OPENSSL_cleanse(&e, sizeof(e));
    return n;
}

int passwd_hash_line(const uint8_t *user, size_t ulen, const uint8_t *pw, size_t pwlen,
                     const struct passwd_hash_spec *spec, const uint8_t *salt, size_t salt_len,
                     char *out, size_t outlen)
{
    static const uint8_t empty[1];
    if (!spec || !passwd_user_valid(user, ulen) || (pwlen > 0 && !pw) || !out || !salt ||
        !spec_loadable(spec, salt_len))
        return -1;
    if (spec->kind == PASSWD_SCRAM_SHA512)
        return passwd_scram_line(user, ulen, pw, pwlen, salt, salt_len, spec->iterations, out,
                                 outlen);
    uint8_t text[PASSWD_HASH_TEXT_MAX];
    size_t n = hash_text(spec, pwlen ? pw : empty, pwlen, salt, salt_len, text);
    int r = -1;
    if (n > 0 && outlen > ulen + 1 + n) {
        memcpy(out, user, ulen);
        out[ulen] = ':';
        memcpy(out + ulen + 1, text, n);
        out[ulen + 1 + n] = '\0';
        r = (int)(ulen + 1 + n);
    }
    OPENSSL_cleanse(text, sizeof(text));
    return r;
}
