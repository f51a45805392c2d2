/*
 * libFuzzer target for security/psk.c: psk_parse gets the input's bytes as
 * the broker hands it a psk_file's bytes.
 *
 * psk_parse must return a table or NULL and never crash. Beyond that:
 *  - a failure reads "NAME:LINE: message" (or "NAME: message") with LINE a
 *    line of the input;
 *  - a table holds one entry per line that is not blank or a comment, each
 *    found by psk_find under its identity with a key of PSK_KEY_MIN..
 *    PSK_KEY_MAX bytes equal to its hex digits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "psk.h"

static const char path[] = "/fuzz/psk";

#define FUZZ_FAIL(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "fuzz_psk: " __VA_ARGS__);                                                 \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

static void check_failure(const char *err, size_t size, const uint8_t *data)
{
    size_t plen = strlen(path);
    if (strncmp(err, path, plen) != 0 || err[plen] != ':')
        FUZZ_FAIL("message without the file name: %s", err);
    if (err[plen + 1] >= '0' && err[plen + 1] <= '9') {
        long line = strtol(err + plen + 1, NULL, 10);
        size_t lines = 1;
        for (size_t i = 0; i < size; i++)
            lines += data[i] == '\n';
        if (line < 1 || (size_t)line > lines)
            FUZZ_FAIL("line %ld outside the input's %zu lines", line, lines);
    }
}

/* Every entry line is in the table with its key. */
static void check_table(const struct psk_table *t, const uint8_t *data, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < size;) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t end = nl ? (size_t)(nl - data) : size, e = end;
        if (e > i && data[e - 1] == '\r')
            e--;
        if (e > i && data[i] != '#') {
            const uint8_t *colon = memchr(data + i, ':', e - i);
            if (!colon)
                FUZZ_FAIL("an entry line without ':' was taken");
            char id[PSK_IDENTITY_MAX + 1];
            size_t id_len = (size_t)(colon - (data + i)), key_len = 0;
            if (id_len == 0 || id_len > PSK_IDENTITY_MAX)
                FUZZ_FAIL("identity of %zu bytes was taken", id_len);
            memcpy(id, data + i, id_len);
            id[id_len] = '\0';
            const uint8_t *k = psk_find(t, id, &key_len);
            size_t hex_len = e - i - id_len - 1;
            if (!k || key_len * 2 != hex_len || key_len < PSK_KEY_MIN || key_len > PSK_KEY_MAX)
                FUZZ_FAIL("identity `%s' not found with its key", id);
            for (size_t j = 0; j < key_len; j++)
                if (k[j] != (uint8_t)(hexval(colon[1 + 2 * j]) << 4 | hexval(colon[2 + 2 * j])))
                    FUZZ_FAIL("key of `%s' differs at byte %zu", id, j);
            n++;
        }
        i = end + 1;
    }
    if (n != psk_count(t))
        FUZZ_FAIL("%zu entry lines, %zu entries", n, psk_count(t));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct psk_table *t = psk_parse(path, data, size, err, sizeof(err));
    if (!t)
        check_failure(err, size, data);
    else
        check_table(t, data, size);
    psk_free(t);
    return 0;
}
