/*
 * Verified credentials, remembered so that a reconnect storm of legitimate
 * clients does not redo the expensive hash (argon2id: 46 MiB and about
 * 50 ms per check by default) for each of them.
 *
 * What is kept is not the password: a MAC of (listener, username,
 * password) under a key drawn at start-up and never written anywhere
 * (cred_cache_mac), with the security snapshot's generation and an
 * expiry. A CONNECT whose MAC is in the cache, made under the snapshot that
 * is current and not expired, is let in without hashing; anything else is
 * checked against the password file as before and, when right, put in.
 * Only successes go in, so a wrong password never hits; a reload (new
 * generation) forgets everything at once, so a changed or deleted
 * password stops working at the reload as it did without the cache.
 *
 * A fixed table per shard (no lock: each shard has its own), 4-way set
 * associative, CRED_CACHE_SLOTS entries of 48 bytes; a full set loses its
 * entry that expires first. A hit costs one HMAC-SHA256 (about 1 us) and
 * tells a client nothing it did not know: it needs the password to make
 * the MAC.
 *
 * Pure: the caller passes the time and the key.
 */
#ifndef RINGMQ_CRED_CACHE_H
#define RINGMQ_CRED_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRED_MAC_LEN     32u
#define CRED_KEY_LEN     32u
#define CRED_CACHE_SLOTS 4096u /* per shard: 192 KiB */

struct cred_cache;

/* NULL when out of memory (then nothing is remembered). */
struct cred_cache *cred_cache_create(void);
void cred_cache_destroy(struct cred_cache *c);

/* HMAC-SHA256 under key of the listener index, the username and the
 * password, each length-prefixed (so no two different triples give the
 * same input). */
void cred_cache_mac(const uint8_t key[CRED_KEY_LEN], uint32_t listener, const uint8_t *user,
                    size_t user_len, const uint8_t *password, size_t password_len,
                    uint8_t out[CRED_MAC_LEN]);

/* Was this MAC verified under snapshot generation, and not yet expired at
 * now_ms? c may be NULL (no). */
bool cred_cache_hit(const struct cred_cache *c, const uint8_t mac[CRED_MAC_LEN],
                    uint64_t generation, uint64_t now_ms);

/* Remembers a MAC whose password was just verified under generation, until
 * now_ms + ttl_ms (auth_cache_seconds). c may be NULL, ttl_ms 0 (nothing). */
void cred_cache_put(struct cred_cache *c, const uint8_t mac[CRED_MAC_LEN], uint64_t generation,
                    uint64_t now_ms, uint64_t ttl_ms);

/* Entries in use (tests, statistics). */
size_t cred_cache_count(const struct cred_cache *c, uint64_t now_ms);

#endif
