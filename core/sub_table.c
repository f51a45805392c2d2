/*
 * A client's subscriptions by their bytes (see sub_table.h). The hash is
 * FNV-1a over group, a separator byte and filter: the keys are the client's
 * own, so a client that crafts collisions slows only its own lookups.
 */
#include "sub_table.h"

#include <stdlib.h>
#include <string.h>

static uint64_t key_hash(const uint8_t *group, size_t glen, const uint8_t *filter, size_t flen)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < glen; i++)
        h = (h ^ group[i]) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
    for (size_t i = 0; i < flen; i++)
        h = (h ^ filter[i]) * 0x100000001b3ull;
    return h;
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
    memset(t, 0, sizeof(*t));
}

struct sub_entry *sub_table_find(const struct sub_table *t, const uint8_t *group, size_t glen,
                                 const uint8_t *filter, size_t flen)
{
    if (!t->buckets)
        return NULL;
    uint64_t h = key_hash(group, glen, filter, flen);
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
    e->hash = key_hash(group, glen, filter, flen);
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
