/*
 * ringmq-bench output buffer: bytes waiting to be sent on one connection.
 * The worker that owns the connection is the only one to touch it; the
 * kernel owns the bytes of a buffer while a send of it is in flight.
 */
#ifndef RINGMQ_BENCH_OBUF_H
#define RINGMQ_BENCH_OBUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define OBUF_MAX (16u * 1024u * 1024u) /* bytes one buffer may grow to */

struct obuf {
    uint8_t *p;
    uint32_t len;
    uint32_t cap;
    uint32_t msgs; /* PUBLISH packets inside */
};

/* Makes room for `more` bytes after len; false when that would pass
 * OBUF_MAX or memory is short (the buffer is unchanged then). */
static inline bool obuf_reserve(struct obuf *b, uint32_t more)
{
    if ((uint64_t)b->len + more <= b->cap)
        return true;
    uint64_t want = b->cap ? b->cap : 256;
    while (want < (uint64_t)b->len + more)
        want *= 2;
    if (want > OBUF_MAX)
        return false;
    uint8_t *p = realloc(b->p, want);
    if (!p)
        return false;
    b->p = p;
    b->cap = (uint32_t)want;
    return true;
}

#endif
