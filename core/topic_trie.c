/*
 * The per-shard subscription trie: topic filter -> subscriptions (owner, share
 * group, opts). Built on the level tree (topic_tree.c); each filter node holds
 * its subscriptions in one compact array, the only thing trie_match reads
 * besides the nodes. Only the owning shard's thread touches a trie.
 *
 * A filter that thousands of sessions share ("alerts/#") would make the
 * same-owner check on subscribe a scan of thousands of entries, so an array
 * past SUBS_INDEX_MIN entries grows an open-addressing index keyed by (owner,
 * group). Removal swaps the last entry into the hole, keeping the array dense.
 */
#include "topic_trie.h"

#include <errno.h>
#include <stdlib.h>

#include "topic_tree_internal.h"

/* Subscriptions on one node before the (owner, group) index is built. */
#define SUBS_INDEX_MIN 16u
/* Smallest index: 17 entries in 64 slots. */
#define SUBS_INDEX_CAP_MIN 64u

_Static_assert((SUBS_INDEX_CAP_MIN & (SUBS_INDEX_CAP_MIN - 1)) == 0, "index size power of two");
_Static_assert(SUBS_INDEX_CAP_MIN >= 2 * (SUBS_INDEX_MIN + 1), "a new index starts half empty");

struct trie_sub {
    void *owner;
    uint64_t opts;
    uint8_t *group; /* own copy; NULL when not shared */
    uint32_t glen;
    uint32_t key_hash; /* of (owner, group): rehashing needs no group bytes */
};

/* A node's subscriptions: node->ptr. */
struct trie_subs {
    uint32_t n;
    uint32_t cap;
    uint32_t icap;   /* index slots (power of two), 0 without an index */
    uint32_t *index; /* slot -> position + 1; 0 is empty */
    struct trie_sub s[];
};

struct trie {
    struct tree tree;
    size_t subs; /* subscriptions in all */
};

struct trie *trie_create(void)
{
    struct trie *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (tree_init(&t->tree) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

static void subs_free(struct trie_subs *ss)
{
    for (uint32_t i = 0; i < ss->n; i++)
        free(ss->s[i].group);
    free(ss->index);
    free(ss);
}

static void free_value(void *ctx, struct tree_node *n)
{
    (void)ctx;
    subs_free(n->ptr);
    n->ptr = NULL;
}

void trie_destroy(struct trie *t)
{
    if (t == NULL)
        return;
    tree_fini(&t->tree, free_value, NULL);
    free(t);
}

static uint32_t key_hash(const struct trie *t, const void *owner, const uint8_t *group, size_t glen)
{
    uint64_t h = (uint64_t)(uintptr_t)owner * 0x9e3779b97f4a7c15ull;
    h ^= h >> 32;
    if (glen > 0)
        h ^= tree_hash(&t->tree, group, glen);
    return (uint32_t)h;
}

static bool sub_is(const struct trie_sub *s, const void *owner, const uint8_t *group, size_t glen)
{
    return s->owner == owner && s->glen == glen &&
           (glen == 0 || memcmp(s->group, group, glen) == 0);
}

static void index_put(uint32_t *index, uint32_t icap, uint32_t h, uint32_t pos)
{
    uint32_t mask = icap - 1;
    uint32_t i = h & mask;
    while (index[i] != 0)
        i = (i + 1) & mask;
    index[i] = pos + 1;
}

/* Rebuilds the index with icap slots (0: none). 0 or -ENOMEM (unchanged). */
static int index_rebuild(struct trie_subs *ss, uint32_t icap)
{
    uint32_t *index = NULL;
    if (icap > 0) {
        index = calloc(icap, sizeof(*index));
        if (index == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < ss->n; i++)
            index_put(index, icap, ss->s[i].key_hash, i);
    }
    free(ss->index);
    ss->index = index;
    ss->icap = icap;
    return 0;
}

/* The slot in the index holding position pos. */
static uint32_t index_slot_of(const struct trie_subs *ss, uint32_t pos)
{
    uint32_t mask = ss->icap - 1;
    uint32_t i = ss->s[pos].key_hash & mask;
    while (ss->index[i] != pos + 1) {
        assert(ss->index[i] != 0);
        i = (i + 1) & mask;
    }
    return i;
}

/* Backward-shift deletion, as in the tree's child tables. */
static void index_del_slot(struct trie_subs *ss, uint32_t i)
{
    uint32_t mask = ss->icap - 1;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (ss->index[j] == 0)
            break;
        uint32_t home = ss->s[ss->index[j] - 1].key_hash & mask;
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            ss->index[i] = ss->index[j];
            i = j;
        }
    }
    ss->index[i] = 0;
}

/* Position of the subscription, or -1. */
static int64_t subs_find(const struct trie_subs *ss, uint32_t h, const void *owner,
                         const uint8_t *group, size_t glen)
{
    if (ss->index == NULL) {
        for (uint32_t i = 0; i < ss->n; i++) {
            if (ss->s[i].key_hash == h && sub_is(&ss->s[i], owner, group, glen))
                return i;
        }
        return -1;
    }
    uint32_t mask = ss->icap - 1;
    for (uint32_t i = h & mask; ss->index[i] != 0; i = (i + 1) & mask) {
        uint32_t pos = ss->index[i] - 1;
        if (ss->s[pos].key_hash == h && sub_is(&ss->s[pos], owner, group, glen))
            return pos;
    }
    return -1;
}

int trie_insert(struct trie *t, const uint8_t *filter, size_t len, const uint8_t *group,
                size_t glen, void *owner, uint64_t opts)
{
    assert(glen <= TOPIC_LEN_MAX);
    uint8_t *gcopy = NULL;
    struct tree_node *n = tree_get(&t->tree, filter, len, true);
    if (n == NULL)
        return -ENOMEM;

    uint32_t h = key_hash(t, owner, group, glen);
    struct trie_subs *ss = n->ptr;
    if (ss != NULL) {
        int64_t pos = subs_find(ss, h, owner, group, glen);
        if (pos >= 0) {
            ss->s[pos].opts = opts;
            return 1;
        }
    }

    /* Every allocation first, then the commit, so a failure changes nothing. */
    if (glen > 0) {
        gcopy = malloc(glen);
        if (gcopy == NULL)
            goto fail;
        memcpy(gcopy, group, glen);
    }
    if (ss == NULL || ss->n == ss->cap) {
        uint32_t cap = ss == NULL ? 1 : ss->cap * 2;
        if (ss != NULL && ss->cap > UINT32_MAX / 4)
            goto fail;
        struct trie_subs *grown = realloc(ss, sizeof(*ss) + (size_t)cap * sizeof(ss->s[0]));
        if (grown == NULL)
            goto fail;
        if (ss == NULL)
            *grown = (struct trie_subs){0};
        grown->cap = cap;
        ss = grown;
        n->ptr = ss;
    }
    uint32_t want = ss->n + 1;
    if (ss->index != NULL ? (uint64_t)want * 2 > ss->icap : want > SUBS_INDEX_MIN) {
        uint32_t icap = ss->index != NULL ? ss->icap * 2 : SUBS_INDEX_CAP_MIN;
        if (index_rebuild(ss, icap) < 0)
            goto fail;
    }

    ss->s[ss->n] = (struct trie_sub){
        .owner = owner, .opts = opts, .group = gcopy, .glen = (uint32_t)glen, .key_hash = h};
    if (ss->index != NULL)
        index_put(ss->index, ss->icap, h, ss->n);
    ss->n++;
    t->subs++;
    return 0;

fail:
    free(gcopy);
    if (ss != NULL && ss->n == 0) {
        subs_free(ss);
        n->ptr = NULL;
    }
    tree_prune(&t->tree, n); /* frees the path only if it is empty */
    return -ENOMEM;
}

int trie_remove(struct trie *t, const uint8_t *filter, size_t len, const uint8_t *group,
                size_t glen, void *owner)
{
    struct tree_node *n = tree_find(&t->tree, filter, len, true);
    if (n == NULL || n->ptr == NULL)
        return -ENOENT;
    struct trie_subs *ss = n->ptr;
    uint32_t h = key_hash(t, owner, group, glen);
    int64_t found = subs_find(ss, h, owner, group, glen);
    if (found < 0)
        return -ENOENT;
    uint32_t pos = (uint32_t)found;
    uint32_t last = ss->n - 1;

    free(ss->s[pos].group);
    if (ss->index != NULL) {
        index_del_slot(ss, index_slot_of(ss, pos));
        if (pos != last)
            ss->index[index_slot_of(ss, last)] = pos + 1;
    }
    ss->s[pos] = ss->s[last];
    ss->n--;
    t->subs--;

    if (ss->n == 0) {
        subs_free(ss);
        n->ptr = NULL;
        tree_prune(&t->tree, n);
        return 0;
    }
    /* Shrinking is best effort: a failure leaves valid, larger arrays. */
    if (ss->index != NULL) {
        if (ss->n <= SUBS_INDEX_MIN / 2)
            (void)index_rebuild(ss, 0);
        else if (ss->icap > SUBS_INDEX_CAP_MIN && (uint64_t)ss->n * 8 < ss->icap)
            (void)index_rebuild(ss, ss->icap / 2);
    }
    if (ss->cap >= 8 && ss->n * 4 <= ss->cap) {
        uint32_t cap = ss->cap / 2;
        struct trie_subs *shrunk = realloc(ss, sizeof(*ss) + (size_t)cap * sizeof(ss->s[0]));
        if (shrunk != NULL) {
            shrunk->cap = cap;
            n->ptr = shrunk;
        }
    }
    return 0;
}

size_t trie_filter_count(const struct trie *t, const uint8_t *filter, size_t len)
{
    const struct tree_node *n = tree_find(&t->tree, filter, len, true);
    if (n == NULL || n->ptr == NULL)
        return 0;
    return ((const struct trie_subs *)n->ptr)->n;
}

size_t trie_size(const struct trie *t)
{
    return t->subs;
}

struct match_ctx {
    trie_match_cb cb;
    void *ctx;
};

static void match_visit(void *ctx, const struct tree_node *n)
{
    const struct match_ctx *m = ctx;
    const struct trie_subs *ss = n->ptr;
    if (ss == NULL)
        return;
    for (uint32_t i = 0; i < ss->n; i++) {
        const struct trie_sub *s = &ss->s[i];
        m->cb(m->ctx, s->owner, s->opts, s->group, s->glen);
    }
}

void trie_match(const struct trie *t, const uint8_t *topic, size_t len, trie_match_cb cb, void *ctx)
{
    struct match_ctx m = {.cb = cb, .ctx = ctx};
    tree_match(&t->tree, topic, len, match_visit, &m);
}
