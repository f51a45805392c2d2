/*
 * The route replica: topic filter -> bitmask of shards that hold at least one
 * subscription with that filter. Every shard keeps its own replica, updated
 * from route changes broadcast by the shard whose local subscriptions changed;
 * only the owning shard's thread touches it. A publish matches its topic here
 * once to learn which shards to post the message to.
 */
#ifndef RINGMQ_ROUTE_H
#define RINGMQ_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct route;

struct route *route_create(void);
void route_destroy(struct route *r);

/* Sets (present) or clears shard's bit for the filter (a valid, non-shared
 * filter). Idempotent. Nodes left with an empty mask are freed. 0 or -ENOMEM. */
int route_set(struct route *r, const uint8_t *filter, size_t len, unsigned shard, bool present);

/* OR of the masks of every filter matching the topic name ('$' rule applies). */
uint64_t route_match(const struct route *r, const uint8_t *topic, size_t len);

/* Filters with a non-empty mask. */
size_t route_size(const struct route *r);

#endif
