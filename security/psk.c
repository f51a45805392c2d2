/*
 * The psk_file parser (psk.h): lines into a table sorted by identity.
 */
#include "psk.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

struct psk_entry {
    char identity[PSK_IDENTITY_MAX + 1];
    size_t identity_len;
    uint8_t key[PSK_KEY_MAX];
    size_t key_len;
    int line;
};

struct psk_table {
    struct psk_entry *e;
    size_t n;
};

static int fail(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(err, errlen, "%s:%d: %s", name, line, msg);
    else
        snprintf(err, errlen, "%s: %s", name, msg);
    return -1;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One "identity:hexkey" line (without its line end) into e. */
static int parse_line(const char *name, int line, const uint8_t *s, size_t n, struct psk_entry *e,
                      char *err, size_t errlen)
{
    const uint8_t *colon = memchr(s, ':', n);
    if (!colon)
        return fail(err, errlen, name, line, "not `identity:hexkey' (no `:')");
    size_t id_len = (size_t)(colon - s);
    if (id_len == 0)
        return fail(err, errlen, name, line, "empty identity");
    if (id_len > PSK_IDENTITY_MAX)
        return fail(err, errlen, name, line, "identity longer than %u bytes",
                    (unsigned)PSK_IDENTITY_MAX);
    for (size_t i = 0; i < id_len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return fail(err, errlen, name, line, "identity holds a control byte (0x%02x)", s[i]);
    const uint8_t *hex = colon + 1;
    size_t hex_len = n - id_len - 1;
    for (size_t i = 0; i < hex_len; i++)
        if (hexval(hex[i]) < 0)
            return fail(err, errlen, name, line,
                        "the key of `%.*s' is not hex digits (character %zu)", (int)id_len, s,
                        i + 1);
    if (hex_len % 2)
        return fail(err, errlen, name, line, "the key of `%.*s' has an odd number of hex digits",
                    (int)id_len, s);
    size_t key_len = hex_len / 2;
    if (key_len < PSK_KEY_MIN || key_len > PSK_KEY_MAX)
        return fail(err, errlen, name, line,
                    "the key of `%.*s' is %zu bytes; a key is %u to %u bytes (%u to %u hex "
                    "digits): a shorter one can be guessed offline",
                    (int)id_len, s, key_len, (unsigned)PSK_KEY_MIN, (unsigned)PSK_KEY_MAX,
                    (unsigned)PSK_KEY_MIN * 2, (unsigned)PSK_KEY_MAX * 2);
    memcpy(e->identity, s, id_len);
    e->identity[id_len] = '\0';
    e->identity_len = id_len;
    for (size_t i = 0; i < key_len; i++)
        e->key[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    e->key_len = key_len;
    e->line = line;
    return 0;
}

static int by_identity(const void *a, const void *b)
{
    const struct psk_entry *x = a, *y = b;
    size_t n = x->identity_len < y->identity_len ? x->identity_len : y->identity_len;
    int c = memcmp(x->identity, y->identity, n);
    if (c)
        return c;
    if (x->identity_len != y->identity_len)
        return x->identity_len < y->identity_len ? -1 : 1;
    return x->line - y->line;
}

/* Lines that hold an entry (not blank, not a comment). */
static size_t count_entries(const uint8_t *data, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        const uint8_t *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t e = end;
        if (e > i && data[e - 1] == '\r')
            e--;
        if (e > i && data[i] != '#')
            n++;
        i = end + 1;
    }
    return n;
}

static int parse_all(const char *name, const uint8_t *data, size_t len, struct psk_table *t,
                     char *err, size_t errlen)
{
    int line = 0;
    for (size_t i = 0; i < len;) {
        const uint8_t *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t e = end;
        line++;
        if (e > i && data[e - 1] == '\r')
            e--;
        if (e > i && data[i] != '#' &&
            parse_line(name, line, data + i, e - i, &t->e[t->n++], err, errlen))
            return -1;
        i = end + 1;
    }
    if (t->n == 0)
        return fail(err, errlen, name, 0,
                    "no `identity:hexkey' line (an empty psk_file lets no "
                    "PSK client in: remove psk_file instead)");
    qsort(t->e, t->n, sizeof(t->e[0]), by_identity);
    for (size_t i = 1; i < t->n; i++)
        if (t->e[i].identity_len == t->e[i - 1].identity_len &&
            memcmp(t->e[i].identity, t->e[i - 1].identity, t->e[i].identity_len) == 0)
            return fail(err, errlen, name, t->e[i].line,
                        "identity `%s' given twice (first at line %d)", t->e[i].identity,
                        t->e[i - 1].line);
    return 0;
}

struct psk_table *psk_parse(const char *name, const uint8_t *data, size_t len, char *err,
                            size_t errlen)
{
    if (len > PSK_FILE_MAX) {
        fail(err, errlen, name, 0, "larger than %u bytes", (unsigned)PSK_FILE_MAX);
        return NULL;
    }
    struct psk_table *t = calloc(1, sizeof(*t));
    size_t n = len ? count_entries(data, len) : 0;
    if (!t || (n && !(t->e = calloc(n, sizeof(t->e[0]))))) {
        fail(err, errlen, name, 0, "out of memory");
        psk_free(t);
        return NULL;
    }
    if (parse_all(name, data, len, t, err, errlen)) {
        psk_free(t);
        return NULL;
    }
    return t;
}

void psk_free(struct psk_table *t)
{
    if (!t)
        return;
    if (t->e)
        OPENSSL_cleanse(t->e, t->n * sizeof(t->e[0]));
    free(t->e);
    free(t);
}

size_t psk_count(const struct psk_table *t)
{
    return t ? t->n : 0;
}

const uint8_t *psk_find(const struct psk_table *t, const char *identity, size_t *key_len)
{
    if (!t || !identity)
        return NULL;
    size_t len = strnlen(identity, PSK_IDENTITY_MAX + 1);
    if (len == 0 || len > PSK_IDENTITY_MAX)
        return NULL;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct psk_entry *e = &t->e[mid];
        size_t m = e->identity_len < len ? e->identity_len : len;
        int c = memcmp(e->identity, identity, m);
        if (c == 0 && e->identity_len != len)
            c = e->identity_len < len ? -1 : 1;
        if (c == 0) {
            *key_len = e->key_len;
            return e->key;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
