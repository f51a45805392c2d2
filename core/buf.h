/*
 * A growable byte buffer. Its users check their own bounds before they
 * reserve: buf_reserve only grows (doubling from 512 bytes) and reports
 * -ENOMEM. Caller-owned memory; any thread, one owner at a time.
 */
#ifndef RINGMQ_BUF_H
#define RINGMQ_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Room for extra more bytes after len: 0 or -ENOMEM (b unchanged). */
int buf_reserve(struct buf *b, size_t extra);
/* Appends n bytes: 0 or -ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t n);
/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

#endif
