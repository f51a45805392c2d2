/*
 * A subscription trie: topic filter -> subscriptions. Each shard owns one for
 * its own sessions; only that shard's thread touches it. Levels are split on
 * '/', '+' and '#' are wildcard nodes, so matching a topic name walks at most
 * (levels x 3) branches instead of every filter.
 *
 * A subscription is (filter, share group, owner): the same owner subscribing
 * the same filter again replaces its options. "group" is the share group of a
 * "$share/group/filter" subscription (the trie is keyed by the inner filter);
 * glen 0 means not shared. "opts" is opaque to the trie (the caller packs QoS,
 * options and subscription identifier into it).
 */
#ifndef RINGMQ_TOPIC_TRIE_H
#define RINGMQ_TOPIC_TRIE_H

#include <stddef.h>
#include <stdint.h>

struct trie;

struct trie *trie_create(void);
void trie_destroy(struct trie *t);

/* Returns 0 when added, 1 when an existing subscription's opts were replaced,
 * -ENOMEM. The filter is a valid, non-shared filter (the caller splits). */
int trie_insert(struct trie *t, const uint8_t *filter, size_t len, const uint8_t *group,
                size_t glen, void *owner, uint64_t opts);

/* Returns 0 when removed, -ENOENT when no such subscription. Empty nodes are
 * freed. */
int trie_remove(struct trie *t, const uint8_t *filter, size_t len, const uint8_t *group,
                size_t glen, void *owner);

/* Subscriptions stored under exactly this filter (all owners and groups). */
size_t trie_filter_count(const struct trie *t, const uint8_t *filter, size_t len);

/* Subscriptions in all. */
size_t trie_size(const struct trie *t);

/* Calls cb once per subscription whose filter matches the topic name, with the
 * '$' rule [MQTT-4.7.2-1]. cb must not modify the trie. */
typedef void (*trie_match_cb)(void *ctx, void *owner, uint64_t opts, const uint8_t *group,
                              size_t glen);
void trie_match(const struct trie *t, const uint8_t *topic, size_t len, trie_match_cb cb,
                void *ctx);

#endif
