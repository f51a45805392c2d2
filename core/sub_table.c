/*
 * A client's subscriptions by their bytes (see sub_table.h). A plain
 * filter hashes alone; a shared one hashes its filter under a key derived
 * from its group's hash, so (group, filter) pairs cannot be shifted into
 * one another.
 */
#include "sub_table.h"

#include <stdlib.h>
#include <string.h>

#include "siphash.h"

uint64_t sub_table_hash(const uint64_t key[2], const uint8_t *group, size_t glen,
                        const uint8_t *filter, size_t flen)
{
    static const uint64_t zero[2];
    if (!key)
        key = zero;
    if (!glen)
        return siphash24(key, filter, flen);
    uint64_t hg = siphash24(key, group, glen);
    const uint64_t k2[2] = {key[0] ^ hg, key[1] + glen};
    return siphash24(k2, filter, flen);
}

void sub_table_fini(struct sub_table *t)
{
    for (uint32_t i = 0; t->buckets && i <= t->mask; i++) {
        for (struct sub_entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->mask = t->count = 0;
}

struct sub_entry *sub_table_find(const struct sub_table *t, const uint8_t *group, size_t glen,
                                 const uint8_t *filter, size_t flen)
{
    if (!t->buckets)
        return NULL;
    uint64_t h = sub_table_hash(t->key, group, glen, filter, flen);
    for (struct sub_entry *e = t->buckets[h & t->mask]; e; e = e->next) {
        if (e->hash == h && e->group_len == glen && e->filter_len == flen &&
            (glen == 0 || memcmp(e->data, group, glen) == 0) &&
            memcmp(e->data + glen, filter, flen) == 0)
            return e;
    }
    return NULL;
}

static int grow(struct sub_table *t)
{
    uint32_t n = t->buckets ? (t->mask + 1) * 2 : 8;
    struct sub_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return -1;
    for (uint32_t i = 0; t->buckets && i <= t->mask; i++) {
        for (struct sub_entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = n - 1;
    return 0;
}

struct sub_entry *sub_table_add(struct sub_table *t, const uint8_t *group, size_t glen,
                                const uint8_t *filter, size_t flen, uint64_t opts)
{
    if ((!t->buckets || t->count > t->mask) && grow(t) && !t->buckets)
        return NULL; /* a failed growth of a non-empty table only lengthens chains */
    struct sub_entry *e = malloc(sizeof(*e) + glen + flen);
    if (!e)
        return NULL;
    e->hash = sub_table_hash(t->key, group, glen, filter, flen);
    e->opts = opts;
    e->touched = 0;
    e->group_len = (uint16_t)glen;
    e->filter_len = (uint16_t)flen;
    if (glen)
        memcpy(e->data, group, glen);
    memcpy(e->data + glen, filter, flen);
    e->next = t->buckets[e->hash & t->mask];
    t->buckets[e->hash & t->mask] = e;
    t->count++;
    return e;
}

void sub_table_remove(struct sub_table *t, struct sub_entry *e)
{
    struct sub_entry **pp = &t->buckets[e->hash & t->mask];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    t->count--;
    free(e);
}

struct sub_entry *sub_table_next(const struct sub_table *t, uint32_t *pos, struct sub_entry *e)
{
    if (!t->buckets)
        return NULL;
    if (e && e->next)
        return e->next;
    /* *pos is the bucket after the one e came from. */
    for (; *pos <= t->mask; (*pos)++) {
        if (t->buckets[*pos])
            return t->buckets[(*pos)++];
    }
    return NULL;
}
