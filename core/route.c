/*
 * The route replica: topic filter -> mask of shards holding a subscription
 * with that filter. A level tree (topic_tree.c) whose filter nodes carry the
 * mask in their "word"; a node whose mask drops to zero is pruned. Only the
 * owning shard's thread touches a replica.
 */
#include "route.h"

#include <errno.h>
#include <stdlib.h>

#include "topic_tree_internal.h"

struct route {
    struct tree tree;
    size_t filters; /* nodes with a non-zero mask */
};

_Static_assert(SHARDS_MAX <= 64, "a route mask is one uint64_t");

struct route *route_create(void)
{
    struct route *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    if (tree_init(&r->tree) < 0) {
        free(r);
        return NULL;
    }
    return r;
}

void route_destroy(struct route *r)
{
    if (r == NULL)
        return;
    tree_fini(&r->tree, NULL, NULL);
    free(r);
}

int route_set(struct route *r, const uint8_t *filter, size_t len, unsigned shard, bool present)
{
    assert(shard < SHARDS_MAX);
    uint64_t bit = 1ull << shard;
    if (present) {
        struct tree_node *n = tree_get(&r->tree, filter, len, true);
        if (n == NULL)
            return -ENOMEM;
        if (n->word == 0)
            r->filters++;
        n->word |= bit;
        return 0;
    }
    struct tree_node *n = tree_find(&r->tree, filter, len, true);
    if (n == NULL || (n->word & bit) == 0)
        return 0;
    n->word &= ~bit;
    if (n->word == 0) {
        r->filters--;
        tree_prune(&r->tree, n);
    }
    return 0;
}

static void match_visit(void *ctx, const struct tree_node *n)
{
    *(uint64_t *)ctx |= n->word;
}

uint64_t route_match(const struct route *r, const uint8_t *topic, size_t len)
{
    uint64_t mask = 0;
    tree_match(&r->tree, topic, len, match_visit, &mask);
    return mask;
}

size_t route_size(const struct route *r)
{
    return r->filters;
}
