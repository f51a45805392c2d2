/*
 * The cross-shard queue: a bounded single-producer single-consumer ring of
 * pointers. One shard pushes, one other shard pops; the queue never blocks and
 * never grows, so a full ring is reported to the producer (which keeps its own
 * overflow list, see DESIGN.md) instead of being waited on.
 *
 * Indices are free-running uint32_t counters; slot = index & mask. tail - head
 * is the depth, which stays correct across wraparound because capacity is at
 * most 2^31. The producer owns tail, the consumer owns head. Each side also
 * caches the last value it read of the other side's index, so in the common
 * case (room to push, items to pop) a batch touches the other side's cache line
 * once at most: one acquire load when the cache is not enough, and one release
 * store to publish the batch. The release store on tail makes the slots the
 * producer wrote visible to the consumer; the release store on head tells the
 * producer the consumer is done reading those slots, so it may overwrite them.
 */
#include "xq.h"

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"

/* The usual x86-64 and aarch64 line; adjacent-line prefetch makes 128 better
 * on some Intel parts, but 64 is what the design asks and what the tests
 * check. */
#define XQ_CACHE_LINE 64

/* Free-running uint32_t indices tell full from empty only while capacity is
 * at most half their range. */
#define XQ_CAPACITY_LIMIT (UINT32_C(1) << 31)

struct xq {
    /* Read-only after xq_create(): both sides read these lines in shared
     * state, so they cost no coherence traffic. */
    uint32_t mask;
    uint32_t capacity;

    /* Producer line: written only by the producer, read by the consumer when
     * its cached tail runs out. */
    alignas(XQ_CACHE_LINE) _Atomic uint32_t tail;
    uint32_t head_cache; /* producer's last view of head */

    /* Consumer line: the mirror image. */
    alignas(XQ_CACHE_LINE) _Atomic uint32_t head;
    uint32_t tail_cache; /* consumer's last view of tail */

    /* Slots start on their own line so a write to slot 0 does not bounce the
     * consumer's index. */
    alignas(XQ_CACHE_LINE) void *slots[];
};

_Static_assert(offsetof(struct xq, tail) % XQ_CACHE_LINE == 0, "tail starts a cache line");
_Static_assert(offsetof(struct xq, head) - offsetof(struct xq, tail) >= XQ_CACHE_LINE,
               "head and tail on separate cache lines");
_Static_assert(offsetof(struct xq, slots) - offsetof(struct xq, head) >= XQ_CACHE_LINE,
               "slots do not share the consumer's line");
_Static_assert(XQ_CAPACITY <= XQ_CAPACITY_LIMIT, "XQ_CAPACITY fits the index scheme");

struct xq *xq_create(uint32_t capacity)
{
    if (capacity < 2 || capacity > XQ_CAPACITY_LIMIT || (capacity & (capacity - 1)) != 0)
        return NULL;

    /* aligned_alloc wants a size that is a multiple of the alignment. */
    size_t size = sizeof(struct xq) + (size_t)capacity * sizeof(void *);
    size = (size + XQ_CACHE_LINE - 1) / XQ_CACHE_LINE * XQ_CACHE_LINE;
    struct xq *q = aligned_alloc(XQ_CACHE_LINE, size);
    if (q == NULL)
        return NULL;

    q->mask = capacity - 1;
    q->capacity = capacity;
    atomic_init(&q->tail, 0);
    q->head_cache = 0;
    atomic_init(&q->head, 0);
    q->tail_cache = 0;
    /* Slots are written before they are read and need no clearing; they
     * are touched now anyway, so no page fault lands on the first trip
     * round the ring (a fault per 512 messages in a fresh broker, measured
     * with the low-rate latency bench). */
    memset(q->slots, 0, (size_t)capacity * sizeof(void *));
    return q;
}

void xq_destroy(struct xq *q)
{
    free(q);
}

uint32_t xq_push_many(struct xq *q, void *const *items, uint32_t n)
{
    assert(q != NULL);
    assert(n == 0 || items != NULL);
    if (n == 0)
        return 0;

    /* Only this thread writes tail, so a relaxed read of it is exact. */
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint32_t room = q->capacity - (tail - q->head_cache);
    if (room < n) {
        /* Acquire pairs with the consumer's release of head: its reads of
         * the slots we are about to reuse are finished. */
        q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
        room = q->capacity - (tail - q->head_cache);
    }
    assert(room <= q->capacity);
    if (n > room)
        n = room;
    if (n == 0)
        return 0;

    for (uint32_t i = 0; i < n; i++)
        q->slots[(tail + i) & q->mask] = items[i];

    /* Release: the slot writes above become visible with the new tail. */
    atomic_store_explicit(&q->tail, tail + n, memory_order_release);
    return n;
}

uint32_t xq_pop_many(struct xq *q, void **out, uint32_t max)
{
    assert(q != NULL);
    assert(max == 0 || out != NULL);
    if (max == 0)
        return 0;

    uint32_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint32_t avail = q->tail_cache - head;
    if (avail < max) {
        /* Acquire pairs with the producer's release of tail: the slots up to
         * the new tail hold the pointers it pushed. */
        q->tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
        avail = q->tail_cache - head;
    }
    assert(avail <= q->capacity);
    uint32_t n = avail < max ? avail : max;
    if (n == 0)
        return 0;

    for (uint32_t i = 0; i < n; i++)
        out[i] = q->slots[(head + i) & q->mask];

    /* Release: our slot reads happen before the producer may reuse them. */
    atomic_store_explicit(&q->head, head + n, memory_order_release);
    return n;
}

uint32_t xq_depth(const struct xq *q)
{
    assert(q != NULL);
    /* The object is on the heap and its indices are atomics that change, so
     * reading through a non-const pointer is sound; C11's atomic_load does
     * not take a pointer to const. */
    struct xq *m = (struct xq *)q;
    /* Head first: a head we see (acquire) was stored after the consumer saw a
     * tail at least that large, so the tail we read next is not smaller and
     * the difference cannot wrap below zero. */
    uint32_t head = atomic_load_explicit(&m->head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&m->tail, memory_order_acquire);
    uint32_t depth = tail - head;
    /* Between the two loads the consumer may pop and the producer refill, so
     * an observer on neither side can see more than a ring's worth. */
    return depth > q->capacity ? q->capacity : depth;
}

uint32_t xq_capacity(const struct xq *q)
{
    assert(q != NULL);
    return q->capacity;
}
