/*
 * The level tree shared by the subscription trie (topic_trie.c), the route
 * replica (route.c) and the retained store (retain.c). Private to those three
 * modules: nothing outside core/ includes this header.
 *
 * A node is one topic level. Its literal children are found by label: a
 * packed array scanned by hash while there are at most TREE_LINEAR_MAX of
 * them, an open-addressing table (linear probing, load <= 1/2, backward-shift
 * deletion, no tombstones) above that, so a level with 100k siblings costs
 * one or two probes. The '+' and '#' children of a filter level hang off
 * their own pointers. Each slot's hash sits in an array beside the child
 * pointers, so a probe touches a child node only when its hash matches.
 *
 * A node carries two words for its owner module: "ptr" (the trie's
 * subscription array, the retained message) and "word" (the route mask). A
 * node whose words are both zero and that has no children is empty; every
 * non-root node is kept non-empty: callers tree_prune() after emptying one.
 *
 * The label hash is seeded per tree from the address of its root (ASLR makes
 * it differ between runs), so a client cannot cheaply pick thousands of
 * colliding levels. Single-threaded: the owning module's thread only.
 */
#ifndef RINGMQ_TOPIC_TREE_INTERNAL_H
#define RINGMQ_TOPIC_TREE_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "limits.h"

/* Children scanned linearly up to this many; a hash table above. */
#define TREE_LINEAR_MAX 8u
/* Smallest hash table: 9 children in 32 slots. */
#define TREE_TABLE_MIN 32u

_Static_assert((TREE_TABLE_MIN & (TREE_TABLE_MIN - 1)) == 0, "table sizes are powers of two");
_Static_assert(TREE_TABLE_MIN >= 2 * (TREE_LINEAR_MAX + 1), "a new table starts under half full");

struct tree_node {
    struct tree_node *parent; /* NULL for the root */
    struct tree_node *plus;   /* the '+' child */
    struct tree_node *hash;   /* the '#' child */
    /* kcap child pointers (NULL: empty slot), then kcap uint32_t hashes, in
     * one allocation. kcap <= TREE_LINEAR_MAX: packed in [0, nkids).
     * Otherwise a power-of-two table. NULL when kcap is 0. */
    struct tree_node **kids;
    uint32_t nkids;
    uint32_t kcap;
    uint32_t label_hash;
    uint32_t label_len;
    void *ptr;     /* owner module's value */
    uint64_t word; /* owner module's value */
    uint8_t label[];
};

struct tree {
    struct tree_node *root;
    uint64_t seed;
};

/* One level of a split topic name. */
struct tree_level {
    const uint8_t *p;
    uint32_t len;
    uint32_t hash;
};

/* 0 or -ENOMEM. */
int tree_init(struct tree *t);

/* Calls free_value (may be NULL) on every node with a value, frees every node. */
void tree_fini(struct tree *t, void (*free_value)(void *ctx, struct tree_node *n), void *ctx);

uint32_t tree_hash(const struct tree *t, const uint8_t *p, size_t len);

/* The node for the filter (wildcards: "+" and "#" levels are the wildcard
 * children) or topic name (!wildcards: every level is a literal). tree_find
 * returns NULL when absent; tree_get creates the path and returns NULL only
 * on ENOMEM (leaving no empty node behind). The string has at most
 * TOPIC_LEVELS_MAX levels (asserted by tree_get). */
struct tree_node *tree_find(const struct tree *t, const uint8_t *s, size_t len, bool wildcards);
struct tree_node *tree_get(struct tree *t, const uint8_t *s, size_t len, bool wildcards);

/* Frees n and then each ancestor while it is empty (never the root). */
void tree_prune(struct tree *t, struct tree_node *n);

static inline bool tree_node_empty(const struct tree_node *n)
{
    return n->nkids == 0 && n->plus == NULL && n->hash == NULL && n->ptr == NULL && n->word == 0;
}

static inline const uint32_t *tree_kid_hashes(const struct tree_node *n)
{
    return (const uint32_t *)(n->kids + n->kcap);
}

/* The literal child with this label (h = tree_hash of it), or NULL. */
static inline struct tree_node *tree_child(const struct tree_node *n, const uint8_t *label,
                                           uint32_t len, uint32_t h)
{
    if (n->nkids == 0)
        return NULL;
    const uint32_t *hs = tree_kid_hashes(n);
    if (n->kcap <= TREE_LINEAR_MAX) {
        for (uint32_t i = 0; i < n->nkids; i++) {
            struct tree_node *k = n->kids[i];
            if (hs[i] == h && k->label_len == len && memcmp(k->label, label, len) == 0)
                return k;
        }
        return NULL;
    }
    uint32_t mask = n->kcap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        struct tree_node *k = n->kids[i];
        if (k == NULL)
            return NULL;
        if (hs[i] == h && k->label_len == len && memcmp(k->label, label, len) == 0)
            return k;
    }
}

/* Splits a topic name into levels with their hashes. Returns the number of
 * levels, or 0 when there are more than TOPIC_LEVELS_MAX (not a valid name). */
static inline size_t tree_split(const struct tree *t, const uint8_t *s, size_t len,
                                struct tree_level lv[TOPIC_LEVELS_MAX])
{
    size_t n = 0, start = 0;
    for (;;) {
        /* A plain scan: levels are a few bytes, and memchr's vector setup
         * cost more than the scan on every publish. */
        size_t end = start;
        while (end < len && s[end] != '/')
            end++;
        const uint8_t *slash = end < len ? s + end : NULL;
        if (n == TOPIC_LEVELS_MAX)
            return 0;
        lv[n].p = s + start;
        lv[n].len = (uint32_t)(end - start);
        lv[n].hash = tree_hash(t, s + start, end - start);
        n++;
        if (slash == NULL)
            return n;
        start = end + 1;
    }
}

typedef void (*tree_visit_fn)(void *ctx, const struct tree_node *n);

/* Calls visit once for every node whose filter matches the topic name, with
 * the '$' rule [MQTT-4.7.2-1]; nodes may have an empty value. No allocation:
 * the walk is an explicit stack of (node, level) bounded by the level count.
 * Static inline so each caller's visit is a direct, inlinable call on the
 * publish path. A name over TOPIC_LEVELS_MAX levels is invalid and matches
 * nothing. */
static inline void tree_match(const struct tree *t, const uint8_t *topic, size_t len,
                              tree_visit_fn visit, void *ctx)
{
    struct tree_level lv[TOPIC_LEVELS_MAX];
    struct {
        const struct tree_node *n;
        size_t level;
    } stack[TOPIC_LEVELS_MAX + 2];

    if (len == 0)
        return;
    size_t nlv = tree_split(t, topic, len, lv);
    if (nlv == 0)
        return;
    bool dollar = topic[0] == '$';

    /* A popped entry pushes at most two of the next level, one of which is
     * popped at once: at most one entry per level waits, plus the top two. */
    size_t sp = 0;
    stack[sp].n = t->root;
    stack[sp].level = 0;
    sp++;
    while (sp > 0) {
        sp--;
        const struct tree_node *n = stack[sp].n;
        size_t i = stack[sp].level;
        bool wild_ok = i > 0 || !dollar;
        /* '#' matches the parent level and everything below it. */
        if (n->hash != NULL && wild_ok)
            visit(ctx, n->hash);
        if (i == nlv) {
            visit(ctx, n);
            continue;
        }
        const struct tree_node *k = tree_child(n, lv[i].p, lv[i].len, lv[i].hash);
        if (k != NULL) {
            stack[sp].n = k;
            stack[sp].level = i + 1;
            sp++;
        }
        if (n->plus != NULL && wild_ok) {
            stack[sp].n = n->plus;
            stack[sp].level = i + 1;
            sp++;
        }
        assert(sp <= TOPIC_LEVELS_MAX + 2);
    }
}

#endif
