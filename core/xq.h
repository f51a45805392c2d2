/*
 * A bounded single-producer single-consumer queue of pointers, one per ordered
 * pair of shards. Head and tail sit on their own cache lines; producer and
 * consumer each keep a cached copy of the other's index so a batch costs one
 * acquire load and one release store. Exactly one thread pushes and exactly
 * one thread pops; create/destroy happen before/after both run.
 */
#ifndef RINGMQ_XQ_H
#define RINGMQ_XQ_H

#include <stdbool.h>
#include <stdint.h>

struct xq;

/* capacity: a power of two, at least 2. NULL on ENOMEM or a bad capacity. */
struct xq *xq_create(uint32_t capacity);
void xq_destroy(struct xq *q);

/* Producer: pushes up to n items in order; returns how many fit (0 when full).
 * Items pushed become visible to the consumer together. */
uint32_t xq_push_many(struct xq *q, void *const *items, uint32_t n);
static inline bool xq_push(struct xq *q, void *item)
{
    return xq_push_many(q, &item, 1) == 1;
}

/* Consumer: pops up to max items in order into out; returns the count. */
uint32_t xq_pop_many(struct xq *q, void **out, uint32_t max);

/* Items queued now (approximate from either side; exact when quiescent). */
uint32_t xq_depth(const struct xq *q);
uint32_t xq_capacity(const struct xq *q);

#endif
