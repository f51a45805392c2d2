/*
 * How many bytes the allocator has handed out and not had back, for the
 * memory_limit: jemalloc's stats.allocated when the broker links jemalloc,
 * glibc's mallinfo2() otherwise, the sanitizer allocator's own count under
 * ASan/TSan. Message data, topic trees, connection buffers and queues all
 * come from malloc and count; the shards' receive-buffer rings are mmap'd
 * and do not (they are fixed, 8 MiB per shard).
 *
 * Any thread; the broker calls it from the main thread only, every 50 ms.
 */
#ifndef RINGMQ_MEMWATCH_H
#define RINGMQ_MEMWATCH_H

#include <stdint.h>

/* Stores the bytes allocated now in *bytes: 0, or -errno (-ENOSYS: this
 * allocator cannot say, -ENOENT: jemalloc built without statistics). */
int memwatch_allocated(uint64_t *bytes);

/* jemalloc's stats.resident (bytes in pages the allocator maps and has
 * touched) as of the last memwatch_allocated call: 0, or -ENOSYS with any
 * other allocator. */
int memwatch_resident(uint64_t *bytes);

/* Which counter memwatch_allocated reads, for the start-up log. */
const char *memwatch_source(void);

#endif
