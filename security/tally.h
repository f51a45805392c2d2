/*
 * The broker-wide tallies behind the availability limits: connections held
 * and connections made per address (max_connections_per_ip,
 * max_connect_rate_per_ip), connects per address, client id and username
 * for flapping, failed logins per address (auth_failures_max), and the
 * temporary bans those earn. One table for every shard, lock-free: one
 * address's connections arrive at different shards (SO_REUSEPORT), and a
 * limit or a ban must hold for the whole broker the moment it is decided.
 *
 * The table: TALLY_SLOTS cache-line slots, open addressing with a window of
 * TALLY_PROBES slots from a subject's home. A subject is a 64-bit SipHash
 * (the broker's key: nobody can aim probe chains) of its kind, listener and
 * bytes; an IPv6 address counts by its /64, which is what one host gets
 * (an address of its own per connection would otherwise walk around every
 * per-address limit). Two subjects with the same 64-bit hash share a slot:
 * with a secret key that is a 2^-64 chance, not an attack.
 *
 * Every field is an atomic word, updated by CAS: a slot's conns counter
 * (UINT32_MAX while a slot changes owner), token buckets as GCRA
 * "theoretical arrival times" (one word each: a bucket of rate r with a
 * burst of b lets a take through when tat - now <= (b - 1) / r, and moves
 * tat to max(tat, now) + 1 / r), and a ban's end. A slot is idle once it
 * holds no connection and every bucket and ban has run out: then an
 * insert may take it over, so the table never needs a sweeper. When a
 * subject's window holds no idle slot (more live subjects near its home
 * than the window holds, about TALLY_SLOTS live subjects in all), it is
 * not tracked: tally_find says so, the caller admits without the
 * per-subject limits and counts it (the broker-wide limits still hold).
 *
 * Tolerance: a lookup waits for a slot that is changing owner, and an
 * insert that finds the subject in an earlier slot after its own claim
 * uses that one, so two shards inserting one new subject at once end in
 * one slot; only when an older copy goes idle and is taken over in the
 * middle of that can counts split for a moment. A count is otherwise
 * exact.
 *
 * Times are microseconds of a monotonic clock, given by the caller.
 */
#ifndef RINGMQ_TALLY_H
#define RINGMQ_TALLY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TALLY_SLOTS      65536u /* addresses: 4 MiB, allocated only when a limit needs it */
#define TALLY_NAME_SLOTS 32768u /* client ids and usernames (flapping): a table of their own */
#define TALLY_PROBES     8u
#define TALLY_NONE       UINT32_MAX /* no slot */

enum tally_kind {
    TALLY_ADDR = 1,      /* an address, every listener: flapping, failed logins, bans */
    TALLY_ADDR_LISTENER, /* an address on one listener: connections held and made */
    TALLY_CLIENTID,
    TALLY_USERNAME,
};

/* The slot's buckets. */
enum tally_bucket {
    TALLY_CONNECTS = 0, /* TALLY_ADDR_LISTENER: max_connect_rate_per_ip; else flapping */
    TALLY_FAILURES,     /* TALLY_ADDR: failed logins */
    TALLY_BUCKETS,
};

struct tally;

/* A table of slots slots (a power of two, at least TALLY_PROBES). NULL:
 * out of memory. */
struct tally *tally_create(const uint64_t hash_key[2], uint32_t slots);
void tally_destroy(struct tally *t);

/* The subject's hash (never 0). An address is 4 bytes (IPv4) or 16
 * (IPv6, of which the first 8 count). */
uint64_t tally_subject(const struct tally *t, enum tally_kind kind, uint32_t listener,
                       const uint8_t *bytes, size_t len);

/* The subject's slot, made if it has none: true with *slot, or false when
 * its window is full of live subjects (see above). */
bool tally_find(struct tally *t, uint64_t subject, uint64_t now_us, uint32_t *slot);

/* One more connection held by the slot's subject, unless it holds max
 * already (max 0: no limit). 1 when taken (the caller gives it back with
 * tally_conn_put when the connection ends), 0 at the limit, -1 when the
 * slot changed owner since tally_find: find it again. */
int tally_conn_take(struct tally *t, uint32_t slot, uint64_t subject, uint32_t max);
void tally_conn_put(struct tally *t, uint32_t slot);

/* A take from bucket b of rate per_s per period_s seconds with a burst
 * of burst takes (a refused take takes nothing). */
bool tally_rate(struct tally *t, uint32_t slot, enum tally_bucket b, uint64_t now_us,
                uint64_t per_period, uint64_t period_s, uint64_t burst);

/* The slot's ban: until until_us (the later of two bans counts). Bucket
 * b starts afresh: what earned the ban does not count again once it ends. */
void tally_ban(struct tally *t, uint32_t slot, enum tally_bucket b, uint64_t until_us);
/* 0, or the microseconds until its ban ends. */
uint64_t tally_banned(const struct tally *t, uint32_t slot, uint64_t now_us);

/* The same rate test over one word, for a bucket outside the table (the
 * listener-wide max_connect_rate). */
bool gcra_take(_Atomic uint64_t *tat, uint64_t now_us, uint64_t per_period, uint64_t period_s,
               uint64_t burst);

/* Slots in use (not idle) now, for the metrics: walks the table. */
uint32_t tally_live(const struct tally *t, uint64_t now_us);

#endif
