/*
 * What the libFuzzer targets share: CHECK, which aborts with the failed
 * condition (always compiled in, unlike assert under -DNDEBUG), and a reader
 * that turns the fuzz input into a sequence of small numbers and byte
 * strings. The reader never fails: past the end it yields zeros and empty
 * strings, so every prefix of an input is itself a valid program and
 * libFuzzer's truncations stay meaningful. Header-only, one per target.
 */
#ifndef RINGMQ_FUZZ_INPUT_H
#define RINGMQ_FUZZ_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

static inline uint8_t in_u8(struct fuzz_in *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static inline uint16_t in_u16(struct fuzz_in *in)
{
    uint16_t hi = in_u8(in);
    return (uint16_t)(hi << 8 | in_u8(in));
}

static inline uint32_t in_u32(struct fuzz_in *in)
{
    uint32_t hi = in_u16(in);
    return hi << 16 | in_u16(in);
}

/* Up to max bytes as a view into the input (fewer when it runs out). */
static inline const uint8_t *in_bytes(struct fuzz_in *in, size_t max, size_t *len)
{
    size_t n = max < in->left ? max : in->left;
    const uint8_t *p = in->p;
    in->p += n;
    in->left -= n;
    *len = n;
    return p;
}

static inline bool in_done(const struct fuzz_in *in)
{
    return in->left == 0;
}

#endif
