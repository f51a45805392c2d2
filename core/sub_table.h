/*
 * One client's subscriptions, by (share group, filter) bytes: the record
 * the session keeps to find a subscription again (SUBSCRIBE replacing one,
 * UNSUBSCRIBE) and to remove them all when it ends. A chained hash table
 * that doubles as it fills, so each lookup is O(1) however many filters the
 * client holds [issue 7 defect 11]. The hash is SipHash under the owner's
 * key: names are the client's choice, and with a known hash it could make
 * every filter collide, turning its lookups into list walks on a shard
 * others share.
 *
 * Pure bookkeeping, no locks: only the client's home shard touches it.
 */
#ifndef RINGMQ_SUB_TABLE_H
#define RINGMQ_SUB_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sub_entry {
    struct sub_entry *next; /* bucket chain */
    uint64_t hash;
    uint64_t opts;    /* the caller's: granted QoS and options */
    uint32_t touched; /* the caller's: which SUBSCRIBE set it last */
    uint16_t group_len;
    uint16_t filter_len;
    uint8_t data[]; /* group, then filter */
};

struct sub_table {
    const uint64_t *key;        /* SipHash key (2 words), the owner's; NULL: zero */
    struct sub_entry **buckets; /* NULL until the first add */
    uint32_t mask;
    uint32_t count;
};

/* A zeroed struct (key set or not) is an empty table; fini frees every
 * entry and keeps the key. */
void sub_table_fini(struct sub_table *t);

/* The keyed hash of (group, filter): glen 0 hashes the filter alone. Also
 * the share groups' key (net/share.c), so one function names a group. */
uint64_t sub_table_hash(const uint64_t key[2], const uint8_t *group, size_t glen,
                        const uint8_t *filter, size_t flen);

/* The entry for (group, filter) or NULL. glen 0: a plain subscription. */
struct sub_entry *sub_table_find(const struct sub_table *t, const uint8_t *group, size_t glen,
                                 const uint8_t *filter, size_t flen);

/* Adds an entry that is not there yet (the caller looked); NULL on ENOMEM.
 * Lengths are topic lengths: at most 65535 each. */
struct sub_entry *sub_table_add(struct sub_table *t, const uint8_t *group, size_t glen,
                                const uint8_t *filter, size_t flen, uint64_t opts);

/* Unlinks and frees e, which is in t. */
void sub_table_remove(struct sub_table *t, struct sub_entry *e);

/* Iterates: start with *pos = 0 and e = NULL; returns the next entry or
 * NULL at the end. The table must not change meanwhile. */
struct sub_entry *sub_table_next(const struct sub_table *t, uint32_t *pos, struct sub_entry *e);

#endif
