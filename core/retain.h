/*
 * The retained message store: topic name -> last retained message. One store
 * for the broker; the store itself does no locking (core is pure): the caller
 * (net/) guards it with a read-write lock, since retained writes are rare next
 * to plain publishes.
 */
#ifndef RINGMQ_RETAIN_H
#define RINGMQ_RETAIN_H

#include <stddef.h>
#include <stdint.h>

#include "message.h"

struct retain;

struct retain *retain_create(void);
void retain_destroy(struct retain *r); /* drops every stored reference */

/* Stores msg under its topic, taking a new reference and dropping the one it
 * replaces; a message with an empty payload deletes the topic's entry
 * [MQTT-3.3.1-6] and is not stored [MQTT-3.3.1-7]. 0 or -ENOMEM. */
int retain_set(struct retain *r, struct msg *msg);

/* As retain_set, within bounds (0: none) on what clients stored (the
 * broker's own $SYS entries do not count). A message for a topic not stored
 * yet is refused while count_max entries exist (replacing and deleting
 * always work). One that would take the stored bytes over bytes_max is
 * refused, and the topic's older message is deleted with it: a subscriber
 * would otherwise be handed a value the publisher has since replaced.
 * 0, -ENOSPC (not stored) or -ENOMEM. */
int retain_set_bounded(struct retain *r, struct msg *msg, size_t count_max, size_t bytes_max);

/* Calls cb for every retained message whose topic matches the filter (valid,
 * non-shared), with the '$' rule. cb may take references. */
typedef void (*retain_cb)(void *ctx, struct msg *msg);
void retain_match(const struct retain *r, const uint8_t *filter, size_t len, retain_cb cb,
                  void *ctx);

size_t retain_count(const struct retain *r);
/* Of retain_count, the entries clients stored (not the broker's $SYS
 * ones): what $SYS/broker/retained messages/count shows. */
size_t retain_client_count(const struct retain *r);
size_t retain_bytes(const struct retain *r);

#endif
