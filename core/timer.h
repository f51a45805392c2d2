/*
 * Per-shard deadlines: a hashed hierarchical timing wheel of intrusive
 * timers, so the shard learns of a keepalive, connect, expiry, will or
 * linger deadline when it falls due instead of scanning every connection and
 * session once a second.
 *
 * Pure and single-threaded: no syscalls, no clock, no allocation. The caller
 * passes the time (ms from any monotonic epoch, below TIMER_NOW_MAX). One
 * wheel per shard; only that shard's thread touches the wheel and the timers
 * armed on it. A struct timer lives inside its owner (the connection, the
 * session); the wheel only links it and never frees anything, and the owner
 * must cancel it before freeing or reusing the memory.
 *
 * Layout: TIMER_LEVELS (4) levels of TIMER_SLOTS (64) slots. A level-l slot
 * spans 64^l ms: 1 ms, 64 ms, 4.096 s, 262.144 s. Level 0 covers the current
 * 64 ms block, level 1 the current 4.096 s block, level 2 the current
 * 262.144 s block and level 3 rolls over the next 63 slots of 262.144 s, so
 * TIMER_HORIZON_MS = 63 * 2^18 ms = 16,515,072 ms (about 4 h 35 min) ahead is
 * always in the wheel proper. A timer due later than that is parked in the
 * furthest top-level slot and re-examined when time reaches it (once every
 * ~4.6 h): it is never lost and any due_ms is accepted, UINT64_MAX included.
 *
 * Guarantees (tests/unit/core/timer_test.c checks each):
 * - Exact to the ms at every level. A timer never fires in a timer_expire()
 *   call whose now_ms is below its due_ms, and fires in the first call whose
 *   now_ms is at or above it, unless that call stops early on its budget or
 *   on its cascade cap (see timer_expire). Levels only decide how soon a
 *   timer is looked at again, never when it fires.
 * - Order: timers fire in nondecreasing due_ms, except that a timer armed
 *   with a due_ms the wheel has already passed joins the back of the queue of
 *   due timers.
 * - O(1) arm, re-arm and cancel. timer_expire() finds occupied slots through
 *   one 64-bit occupancy bitmap per level, so a jump of hours costs the
 *   occupied slots only, never the empty ones; each timer moves down at most
 *   TIMER_LEVELS - 1 times (plus once per ~4.6 h while parked).
 */
#ifndef RINGMQ_TIMER_H
#define RINGMQ_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMER_SLOT_BITS 6
#define TIMER_SLOTS     (1u << TIMER_SLOT_BITS)
#define TIMER_LEVELS    4
/* ms spanned by one slot of the top level: 2^18 ms = 262.144 s. */
#define TIMER_TOP_SLOT_MS (UINT64_C(1) << (TIMER_SLOT_BITS * (TIMER_LEVELS - 1)))
/* Furthest due_ms - now_ms that is always in the wheel proper, not parked. */
#define TIMER_HORIZON_MS ((TIMER_SLOTS - 1) * TIMER_TOP_SLOT_MS)
/* Times (now_ms) stay below this so slot arithmetic cannot wrap. */
#define TIMER_NOW_MAX (UINT64_MAX >> 1)
/* Cascade moves one timer_expire() call may make per unit of budget: at
 * least TIMER_LEVELS - 1, so that cascading keeps pace with firing. */
#define TIMER_MOVES_PER_FIRE 8

_Static_assert(TIMER_SLOTS == 64, "one uint64_t occupancy bitmap per level");
_Static_assert(TIMER_MOVES_PER_FIRE >= TIMER_LEVELS - 1, "cascading keeps pace with firing");
_Static_assert(TIMER_HORIZON_MS == UINT64_C(16515072), "horizon as stated above");

/* Recovers the owner from its embedded timer, e.g.
 * struct conn *c = TIMER_OWNER(t, struct conn, keepalive_timer); */
#define TIMER_OWNER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct timer_link {
    struct timer_link *next;
    struct timer_link *prev;
};

/* Embedded in its owner. All-zero bytes (or timer_init) is an unarmed timer,
 * so a calloc'd owner needs nothing more. Fields are the wheel's: read them
 * through timer_armed() and timer_due_ms(). */
struct timer {
    struct timer_link link; /* first: the wheel's lists hold &link */
    uint64_t due_ms;
    uint32_t where; /* 0 unarmed, 1 due queue, 2 + level * 64 + slot in the wheel */
};

/* Caller-owned (embed it in the shard). About 4 KiB. Fields are private. */
struct timer_wheel {
    uint64_t now_ms;        /* wheel time: everything due at or before it is queued */
    uint64_t clock_ms;      /* the latest now_ms passed in; now_ms lags it on a cut-short call */
    uint64_t queued_min_ms; /* lower bound of the queued timers' due_ms */
    uint64_t occupied[TIMER_LEVELS];
    size_t count;            /* armed timers */
    uint64_t moves;          /* cascade moves since init */
    bool expiring;           /* inside timer_expire() */
    struct timer_link queue; /* due timers, FIFO */
    struct timer_link slots[TIMER_LEVELS][TIMER_SLOTS];
};

void timer_init(struct timer *t);

static inline bool timer_armed(const struct timer *t)
{
    return t->where != 0;
}

/* The due time it was last armed with (meaningless if never armed). */
static inline uint64_t timer_due_ms(const struct timer *t)
{
    return t->due_ms;
}

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms);
/* Disarms every timer still armed (their owners may cancel them afterwards
 * as a no-op); fires none. */
void timer_wheel_fini(struct timer_wheel *w);

/* Arms t to fire at due_ms; an armed t moves (re-arm). A due_ms at or before
 * the wheel's time fires on the next timer_expire(). */
void timer_arm(struct timer_wheel *w, struct timer *t, uint64_t due_ms);
/* Disarms t; a no-op on an unarmed timer. t must be unarmed or armed on w. */
void timer_cancel(struct timer_wheel *w, struct timer *t);

/*
 * Fires the timers due at or before now_ms (nondecreasing between calls), at
 * most budget of them; returns how many fired. Each timer is disarmed before
 * its callback, which may re-arm it and arm or cancel any other timer on w,
 * including ones due in this same pass (a cancelled one does not fire; one
 * armed due now fires in this pass, budget permitting). fire must not call
 * timer_expire() or timer_wheel_fini().
 *
 * Work per call is bounded: at most budget callbacks and at most
 * budget * TIMER_MOVES_PER_FIRE cascade moves, each O(1). A call that stops
 * on either limit leaves timer_next_due() <= now_ms, so the caller knows to
 * call again on its next loop turn instead of sleeping; a return below
 * budget with timer_next_due() > now_ms means nothing due is left.
 */
unsigned timer_expire(struct timer_wheel *w, uint64_t now_ms, unsigned budget,
                      void (*fire)(struct timer *t, void *ctx), void *ctx);

/*
 * A lower bound of the earliest due_ms of the armed timers, UINT64_MAX when
 * none is armed, so the shard can sleep until then. How tight: when no timer
 * is already due and no cascade is half done, it is the start of the slot
 * holding the earliest timer: exact when that timer is at level 0 (in the
 * current 64 ms block), otherwise at most 64^level - 1 ms early (63 ms,
 * 4.095 s, 262.143 s); for parked timers the start of the park slot, about
 * 4.6 h ahead. A shard that sleeps until it therefore wakes at most
 * TIMER_LEVELS - 1 extra times per timer. When a timer is already due (or a
 * cascade was cut short) it is at most the wheel's time: call timer_expire().
 */
uint64_t timer_next_due(const struct timer_wheel *w);

/* Armed timers, O(1). */
size_t timer_wheel_count(const struct timer_wheel *w);
/* Cascade moves since init (a counter for metrics and tests). */
uint64_t timer_wheel_moves(const struct timer_wheel *w);

#endif
