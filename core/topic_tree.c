/*
 * The level tree behind the subscription trie, the route replica and the
 * retained store (see topic_tree_internal.h for the layout and invariants).
 * This file owns node allocation, the per-node child table and pruning; the
 * three modules own what the nodes carry. Single-threaded: whoever owns the
 * tree.
 */
#include "topic_tree_internal.h"

#include <errno.h>
#include <stdlib.h>

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint32_t tree_hash(const struct tree *t, const uint8_t *p, size_t len)
{
    /* Eight bytes a step: levels are short, so the tail load dominates. */
    uint64_t h = t->seed ^ (len * 0x9e3779b97f4a7c15ull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9fb21c651e98df25ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    /* The tail is gathered in a register: copying it byte by byte to the
     * stack and loading it as one word defeats store forwarding, which cost
     * more than the whole rest of a topic match. */
    uint64_t w = 0;
    for (size_t i = 0; i < len; i++)
        w |= (uint64_t)p[i] << (8 * i);
    h = mix64(h ^ w);
    return (uint32_t)h;
}

static struct tree_node *node_new(struct tree_node *parent, const uint8_t *label, uint32_t len,
                                  uint32_t h)
{
    struct tree_node *n = malloc(sizeof(*n) + len);
    if (n == NULL)
        return NULL;
    *n = (struct tree_node){.parent = parent, .label_hash = h, .label_len = len};
    if (len > 0)
        memcpy(n->label, label, len);
    return n;
}

int tree_init(struct tree *t)
{
    t->root = node_new(NULL, NULL, 0, 0);
    if (t->root == NULL)
        return -ENOMEM;
    /* The root's address varies with ASLR: a cheap per-tree seed that needs
     * no syscall and no global. */
    t->seed = mix64((uint64_t)(uintptr_t)t->root ^ 0x6a09e667f3bcc909ull);
    return 0;
}

/* Depth is bounded by TOPIC_LEVELS_MAX + 1 (asserted on insert), so the
 * recursion is too. */
static void node_free_all(struct tree_node *n, void (*free_value)(void *, struct tree_node *),
                          void *ctx)
{
    if (n->plus != NULL)
        node_free_all(n->plus, free_value, ctx);
    if (n->hash != NULL)
        node_free_all(n->hash, free_value, ctx);
    for (uint32_t i = 0; i < n->kcap; i++) {
        if (n->kids[i] != NULL)
            node_free_all(n->kids[i], free_value, ctx);
    }
    if (free_value != NULL && (n->ptr != NULL || n->word != 0))
        free_value(ctx, n);
    free(n->kids);
    free(n);
}

void tree_fini(struct tree *t, void (*free_value)(void *ctx, struct tree_node *n), void *ctx)
{
    if (t->root != NULL)
        node_free_all(t->root, free_value, ctx);
    t->root = NULL;
}

static uint32_t *kid_hashes(struct tree_node *n)
{
    return (uint32_t *)(n->kids + n->kcap);
}

static struct tree_node **kids_alloc(uint32_t cap)
{
    /* Pointers first, hashes after: the pointer array keeps its alignment. */
    return calloc(cap, sizeof(struct tree_node *) + sizeof(uint32_t));
}

/* Puts k into a table (no duplicate, not full). */
static void table_put(struct tree_node **kids, uint32_t *hs, uint32_t cap, struct tree_node *k)
{
    uint32_t mask = cap - 1;
    uint32_t i = k->label_hash & mask;
    while (kids[i] != NULL)
        i = (i + 1) & mask;
    kids[i] = k;
    hs[i] = k->label_hash;
}

/* Moves n's children into a new array (cap <= TREE_LINEAR_MAX) or table.
 * 0 or -ENOMEM (n unchanged). */
static int kids_resize(struct tree_node *n, uint32_t cap)
{
    assert(cap >= n->nkids);
    struct tree_node **kids = kids_alloc(cap);
    if (kids == NULL)
        return -ENOMEM;
    uint32_t *hs = (uint32_t *)(kids + cap);
    uint32_t j = 0;
    for (uint32_t i = 0; i < n->kcap; i++) {
        struct tree_node *k = n->kids[i];
        if (k == NULL)
            continue;
        if (cap <= TREE_LINEAR_MAX) {
            kids[j] = k;
            hs[j] = k->label_hash;
            j++;
        } else {
            table_put(kids, hs, cap, k);
        }
    }
    free(n->kids);
    n->kids = kids;
    n->kcap = cap;
    return 0;
}

/* Adds a literal child (not present). 0 or -ENOMEM. */
static int kids_add(struct tree_node *n, struct tree_node *k)
{
    uint32_t want = n->nkids + 1;
    if (n->kcap <= TREE_LINEAR_MAX) {
        if (want > n->kcap) {
            uint32_t cap = n->kcap == 0 ? 1 : n->kcap * 2;
            if (cap > TREE_LINEAR_MAX)
                cap = TREE_TABLE_MIN;
            if (kids_resize(n, cap) < 0)
                return -ENOMEM;
        }
    } else if ((uint64_t)want * 2 > n->kcap) {
        if (n->kcap > UINT32_MAX / 2 || kids_resize(n, n->kcap * 2) < 0)
            return -ENOMEM;
    }
    if (n->kcap <= TREE_LINEAR_MAX) {
        n->kids[n->nkids] = k;
        kid_hashes(n)[n->nkids] = k->label_hash;
    } else {
        table_put(n->kids, kid_hashes(n), n->kcap, k);
    }
    n->nkids++;
    return 0;
}

/* Removes the literal child k. Never fails: shrinking is best effort. */
static void kids_del(struct tree_node *n, struct tree_node *k)
{
    uint32_t *hs = kid_hashes(n);
    if (n->kcap <= TREE_LINEAR_MAX) {
        uint32_t i = 0;
        while (n->kids[i] != k)
            i++;
        assert(i < n->nkids);
        uint32_t last = n->nkids - 1;
        n->kids[i] = n->kids[last];
        hs[i] = hs[last];
        n->kids[last] = NULL;
    } else {
        uint32_t mask = n->kcap - 1;
        uint32_t i = k->label_hash & mask;
        while (n->kids[i] != k) {
            assert(n->kids[i] != NULL);
            i = (i + 1) & mask;
        }
        /* Backward-shift: pull later entries of the probe run into the hole
         * unless their home slot lies cyclically in (hole, j]. */
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & mask;
            if (n->kids[j] == NULL)
                break;
            uint32_t home = hs[j] & mask;
            bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays) {
                n->kids[i] = n->kids[j];
                hs[i] = hs[j];
                i = j;
            }
        }
        n->kids[i] = NULL;
    }
    n->nkids--;

    if (n->nkids == 0) {
        free(n->kids);
        n->kids = NULL;
        n->kcap = 0;
    } else if (n->kcap > TREE_LINEAR_MAX) {
        /* Hysteresis: back to an array at half the linear limit; halve a
         * table under 1/8 full. A failed shrink leaves a valid table. */
        if (n->nkids <= TREE_LINEAR_MAX / 2)
            (void)kids_resize(n, TREE_LINEAR_MAX);
        else if (n->kcap > TREE_TABLE_MIN && (uint64_t)n->nkids * 8 < n->kcap)
            (void)kids_resize(n, n->kcap / 2);
    }
}

static bool is_wild(const uint8_t *p, size_t len, uint8_t c)
{
    return len == 1 && p[0] == c;
}

struct tree_node *tree_find(const struct tree *t, const uint8_t *s, size_t len, bool wildcards)
{
    const struct tree_node *n = t->root;
    size_t start = 0;
    for (;;) {
        const uint8_t *slash = start < len ? memchr(s + start, '/', len - start) : NULL;
        size_t end = slash ? (size_t)(slash - s) : len;
        const uint8_t *p = s + start;
        size_t l = end - start;
        if (wildcards && is_wild(p, l, '+'))
            n = n->plus;
        else if (wildcards && is_wild(p, l, '#'))
            n = n->hash;
        else
            n = tree_child(n, p, (uint32_t)l, tree_hash(t, p, l));
        if (n == NULL || slash == NULL)
            return (struct tree_node *)n;
        start = end + 1;
    }
}

struct tree_node *tree_get(struct tree *t, const uint8_t *s, size_t len, bool wildcards)
{
    struct tree_node *n = t->root;
    size_t start = 0;
    size_t levels = 0;
    for (;;) {
        const uint8_t *slash = start < len ? memchr(s + start, '/', len - start) : NULL;
        size_t end = slash ? (size_t)(slash - s) : len;
        const uint8_t *p = s + start;
        size_t l = end - start;
        levels++;
        assert(levels <= TOPIC_LEVELS_MAX);

        struct tree_node **slot = NULL;
        if (wildcards && is_wild(p, l, '+'))
            slot = &n->plus;
        else if (wildcards && is_wild(p, l, '#'))
            slot = &n->hash;

        uint32_t h = tree_hash(t, p, l);
        struct tree_node *k = slot ? *slot : tree_child(n, p, (uint32_t)l, h);
        if (k == NULL) {
            k = node_new(n, p, (uint32_t)l, h);
            if (k == NULL)
                goto fail;
            if (slot != NULL) {
                *slot = k;
            } else if (kids_add(n, k) < 0) {
                free(k);
                goto fail;
            }
        }
        n = k;
        if (slash == NULL)
            return n;
        start = end + 1;
    }

fail:
    /* Levels created by this call are empty: drop them. */
    if (n != t->root && tree_node_empty(n))
        tree_prune(t, n);
    return NULL;
}

void tree_prune(struct tree *t, struct tree_node *n)
{
    while (n != t->root && tree_node_empty(n)) {
        struct tree_node *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            kids_del(p, n);
        free(n);
        n = p;
    }
}
