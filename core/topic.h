/*
 * Topic names and topic filters (MQTT 4.7): validation and matching.
 * Pure functions over byte strings (not NUL-terminated); any thread.
 */
#ifndef RINGMQ_TOPIC_H
#define RINGMQ_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A topic name a client may PUBLISH to: 1..TOPIC_LEN_MAX bytes [MQTT-4.7.3-1],
 * no '+' or '#' [MQTT-3.3.2-2], no U+0000 [MQTT-4.7.3-2], at most
 * TOPIC_LEVELS_MAX levels. UTF-8 validity is the codec's check, not this. */
bool topic_name_valid(const uint8_t *name, size_t len);

/* A topic filter a client may SUBSCRIBE to: non-empty, '#' only as the whole
 * last level [MQTT-4.7.1-2], '+' only as a whole level [MQTT-4.7.1-3], at most
 * TOPIC_LEVELS_MAX levels. A shared filter "$share/{group}/{filter}" is valid
 * when the group is non-empty without '/', '+' or '#' and the inner filter is
 * valid [MQTT-4.8.2-1], [MQTT-4.8.2-2]. */
bool topic_filter_valid(const uint8_t *filter, size_t len);

/* Does filter (not shared) match the topic name? A filter starting with a
 * wildcard never matches a name starting with '$' [MQTT-4.7.2-1]. */
bool topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen);

/* Splits "$share/{group}/{filter}". Returns true for a shared filter and sets
 * the views; false (views untouched) for a plain one. Assumes a valid filter. */
bool topic_shared_split(const uint8_t *filter, size_t len, const uint8_t **group, size_t *group_len,
                        const uint8_t **inner, size_t *inner_len);

/* Levels of a topic name or (inner) filter: one more than its '/'s. */
size_t topic_levels(const uint8_t *topic, size_t len);

/* Does the filter contain '+' or '#'? */
bool topic_has_wildcard(const uint8_t *filter, size_t len);

#endif
