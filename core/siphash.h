/*
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash for
 * tables whose keys an attacker chooses (share groups, a client's
 * subscriptions). Without the key, colliding inputs cannot be computed, so
 * nobody can turn an O(1) table into a list or make two names share a
 * key. Pure; any thread.
 */
#ifndef RINGMQ_SIPHASH_H
#define RINGMQ_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash24(const uint64_t key[2], const void *data, size_t len);

#endif
