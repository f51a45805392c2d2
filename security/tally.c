/*
 * The broker-wide tallies (tally.h): a lock-free open-addressing table of
 * atomic words. Any thread.
 */
#include "tally.h"

#include <stdlib.h>
#include <string.h>

#include "siphash.h"

/* conns while a slot changes owner: nobody may take a connection then. */
#define CONNS_MOVING UINT32_MAX

struct slot {
    _Atomic uint64_t subject; /* 0: never used */
    _Atomic uint32_t conns;
    uint32_t pad;
    _Atomic uint64_t tat[TALLY_BUCKETS];
    _Atomic uint64_t ban_until;
    uint64_t pad2[3];
};
_Static_assert(sizeof(struct slot) == 64, "one cache line per slot");

struct tally {
    uint64_t key[2];
    uint32_t mask; /* slots - 1 */
    struct slot *slots;
};

struct tally *tally_create(const uint64_t hash_key[2], uint32_t slots)
{
    if (slots < TALLY_PROBES || (slots & (slots - 1)))
        return NULL;
    struct tally *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->slots = aligned_alloc(64, (size_t)slots * sizeof(struct slot));
    if (!t->slots) {
        free(t);
        return NULL;
    }
    memset(t->slots, 0, (size_t)slots * sizeof(struct slot));
    t->mask = slots - 1;
    t->key[0] = hash_key[0];
    t->key[1] = hash_key[1];
    return t;
}

void tally_destroy(struct tally *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}

uint64_t tally_subject(const struct tally *t, enum tally_kind kind, uint32_t listener,
                       const uint8_t *bytes, size_t len)
{
    /* kind, listener, then the bytes: hashed as one message. */
    uint8_t msg[8 + 256];
    size_t n = len;
    if (kind == TALLY_ADDR || kind == TALLY_ADDR_LISTENER)
        n = len == 16 ? 8 : len; /* an IPv6 host is its /64 */
    uint64_t h;
    if (n <= sizeof(msg) - 8) {
        msg[0] = (uint8_t)kind;
        memcpy(msg + 1, &listener, 4);
        msg[5] = msg[6] = msg[7] = (uint8_t)n;
        memcpy(msg + 8, bytes, n);
        h = siphash24(t->key, msg, 8 + n);
    } else {
        /* A long name: its hash under a key that says the kind. */
        uint64_t k[2] = {t->key[0] ^ ((uint64_t)kind << 56 | listener), t->key[1]};
        h = siphash24(k, bytes, n);
    }
    return h ? h : 1;
}

static bool slot_idle(const struct slot *s, uint64_t now_us)
{
    if (atomic_load_explicit(&s->conns, memory_order_acquire) != 0)
        return false;
    for (unsigned b = 0; b < TALLY_BUCKETS; b++)
        if (atomic_load_explicit(&s->tat[b], memory_order_relaxed) > now_us)
            return false;
    return atomic_load_explicit(&s->ban_until, memory_order_relaxed) <= now_us;
}

/* Takes slot s over for subject, if it is free or idle. */
static bool slot_claim(struct slot *s, uint64_t subject, uint64_t now_us)
{
    uint32_t zero = 0;
    if (!atomic_compare_exchange_strong_explicit(&s->conns, &zero, CONNS_MOVING,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    /* Nobody can take a connection here now; check the rest again. */
    bool ok = true;
    for (unsigned b = 0; b < TALLY_BUCKETS && ok; b++)
        ok = atomic_load_explicit(&s->tat[b], memory_order_relaxed) <= now_us;
    ok = ok && atomic_load_explicit(&s->ban_until, memory_order_relaxed) <= now_us;
    if (ok) {
        for (unsigned b = 0; b < TALLY_BUCKETS; b++)
            atomic_store_explicit(&s->tat[b], 0, memory_order_relaxed);
        atomic_store_explicit(&s->ban_until, 0, memory_order_relaxed);
        atomic_store_explicit(&s->subject, subject, memory_order_release);
    }
    atomic_store_explicit(&s->conns, 0, memory_order_release);
    return ok;
}

bool tally_find(struct tally *t, uint64_t subject, uint64_t now_us, uint32_t *slot)
{
    /* Three rounds: a claim lost to another shard looks again. */
    for (int round = 0; round < 3; round++) {
        uint32_t spare = TALLY_NONE;
        for (uint32_t i = 0; i < TALLY_PROBES; i++) {
            uint32_t at = (uint32_t)(subject + i) & t->mask;
            struct slot *s = &t->slots[at];
            /* A slot changing owner is waited for (a few stores): it may be
             * becoming this subject's, and passing it by would put the
             * subject in a second slot, its counts split between them. */
            for (unsigned spin = 0;
                 spin < 100000 &&
                 atomic_load_explicit(&s->conns, memory_order_acquire) == CONNS_MOVING;
                 spin++)
                ;
            uint64_t k = atomic_load_explicit(&s->subject, memory_order_acquire);
            if (k == subject) {
                *slot = at;
                return true;
            }
            if (spare == TALLY_NONE && (k == 0 || slot_idle(s, now_us)))
                spare = at;
        }
        if (spare == TALLY_NONE)
            return false;
        if (slot_claim(&t->slots[spare], subject, now_us)) {
            /* Another shard may have made the subject a slot meanwhile:
             * the first in probe order is everybody's (lookups stop there),
             * ours is left idle for the next newcomer. */
            for (uint32_t i = 0; i < TALLY_PROBES; i++) {
                uint32_t at = (uint32_t)(subject + i) & t->mask;
                if (at == spare)
                    break;
                if (atomic_load_explicit(&t->slots[at].subject, memory_order_acquire) == subject) {
                    *slot = at;
                    return true;
                }
            }
            *slot = spare;
            return true;
        }
    }
    return false;
}

int tally_conn_take(struct tally *t, uint32_t slot, uint64_t subject, uint32_t max)
{
    struct slot *s = &t->slots[slot];
    uint32_t v = atomic_load_explicit(&s->conns, memory_order_relaxed);
    for (;;) {
        if (v == CONNS_MOVING)
            return -1;
        if (max && v >= max)
            return 0;
        if (atomic_compare_exchange_weak_explicit(&s->conns, &v, v + 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    /* Held now, the slot cannot change owner; did it before we took it? */
    if (atomic_load_explicit(&s->subject, memory_order_acquire) != subject) {
        atomic_fetch_sub_explicit(&s->conns, 1, memory_order_release);
        return -1;
    }
    return 1;
}

void tally_conn_put(struct tally *t, uint32_t slot)
{
    atomic_fetch_sub_explicit(&t->slots[slot].conns, 1, memory_order_release);
}

bool gcra_take(_Atomic uint64_t *tat, uint64_t now_us, uint64_t per_period, uint64_t period_s,
               uint64_t burst)
{
    if (per_period == 0)
        return true;
    uint64_t interval = period_s * 1000000u / per_period;
    if (interval == 0)
        interval = 1;
    uint64_t tolerance = interval * (burst ? burst - 1 : 0);
    uint64_t v = atomic_load_explicit(tat, memory_order_relaxed);
    for (;;) {
        uint64_t base = v > now_us ? v : now_us;
        if (base - now_us > tolerance)
            return false;
        if (atomic_compare_exchange_weak_explicit(tat, &v, base + interval, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

bool tally_rate(struct tally *t, uint32_t slot, enum tally_bucket b, uint64_t now_us,
                uint64_t per_period, uint64_t period_s, uint64_t burst)
{
    return gcra_take(&t->slots[slot].tat[b], now_us, per_period, period_s, burst);
}

void tally_ban(struct tally *t, uint32_t slot, enum tally_bucket b, uint64_t until_us)
{
    atomic_store_explicit(&t->slots[slot].tat[b], 0, memory_order_relaxed);
    _Atomic uint64_t *w = &t->slots[slot].ban_until;
    uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
    while (v < until_us && !atomic_compare_exchange_weak_explicit(
                               w, &v, until_us, memory_order_release, memory_order_relaxed))
        ;
}

uint64_t tally_banned(const struct tally *t, uint32_t slot, uint64_t now_us)
{
    uint64_t until = atomic_load_explicit(&t->slots[slot].ban_until, memory_order_acquire);
    return until > now_us ? until - now_us : 0;
}

uint32_t tally_live(const struct tally *t, uint64_t now_us)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i <= t->mask; i++)
        n += atomic_load_explicit(&t->slots[i].subject, memory_order_relaxed) != 0 &&
             !slot_idle(&t->slots[i], now_us);
    return n;
}
