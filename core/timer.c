/*
 * The per-shard timing wheel (see timer.h for the layout and guarantees).
 * Only the shard that owns the wheel calls these functions; nothing here
 * blocks, allocates or reads a clock.
 *
 * Invariants, with W the wheel's time (w->now_ms):
 * - The queue holds timers with due_ms <= W; the slots hold timers with
 *   due_ms > W. The wheel advances only while the queue is empty, so every
 *   queued timer fires before every slotted one.
 * - A timer at level l < TIMER_LEVELS - 1 has the same bits as W above level
 *   l, so its slot index is above W's index at that level and its slot start
 *   is above W; the top level instead holds the next 63 top slots after W's,
 *   plus the parked timers in the furthest one. A lower level's slots all
 *   end before a higher level's begin, so the earliest slot start is the
 *   next place where anything can happen, and W never passes an occupied
 *   slot without processing it.
 * - A level-0 slot is one exact ms: processing it moves its list onto the
 *   queue in O(1). Processing a higher slot sets W to its start and re-files
 *   each timer relative to that W, which puts it at a lower level (or on the
 *   queue when due exactly then); a cascade cut short by the move cap leaves
 *   its slot's start equal to W, strictly before anything else, so the next
 *   call finishes it first and firing stays exact and in order.
 */
#include "timer.h"

#include <string.h>

#include "invariant.h"

#define TIMER_SLOT_MASK   (TIMER_SLOTS - 1)
#define TIMER_TOP         (TIMER_LEVELS - 1)
#define TIMER_TOP_SHIFT   (TIMER_SLOT_BITS * TIMER_TOP)
#define TIMER_WHERE_NONE  0u
#define TIMER_WHERE_QUEUE 1u
#define TIMER_WHERE_SLOT0 2u

_Static_assert(offsetof(struct timer, link) == 0, "a list link is its timer");
_Static_assert(TIMER_TOP_SLOT_MS == (UINT64_C(1) << TIMER_TOP_SHIFT), "top slot span");

static struct timer *timer_of(struct timer_link *l)
{
    return (struct timer *)(void *)l;
}

static void link_init(struct timer_link *head)
{
    head->next = head;
    head->prev = head;
}

static bool link_empty(const struct timer_link *head)
{
    return head->next == head;
}

static void link_append(struct timer_link *head, struct timer_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void link_remove(struct timer_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->next = NULL;
    l->prev = NULL;
}

/* Moves every link of from to the back of to, in order. */
static void link_splice(struct timer_link *to, struct timer_link *from)
{
    if (link_empty(from))
        return;
    from->next->prev = to->prev;
    from->prev->next = to;
    to->prev->next = from->next;
    to->prev = from->prev;
    link_init(from);
}

static uint32_t where_of(unsigned level, unsigned slot)
{
    return TIMER_WHERE_SLOT0 + (uint32_t)level * TIMER_SLOTS + slot;
}

static void timer_queue(struct timer_wheel *w, struct timer *t)
{
    t->where = TIMER_WHERE_QUEUE;
    link_append(&w->queue, &t->link);
    if (t->due_ms < w->queued_min_ms)
        w->queued_min_ms = t->due_ms;
}

/* Files t by its due time relative to the wheel's time. */
static void timer_place(struct timer_wheel *w, struct timer *t)
{
    uint64_t now = w->now_ms;
    uint64_t due = t->due_ms;
    if (due <= now) {
        timer_queue(w, t);
        return;
    }
    unsigned level = TIMER_TOP;
    unsigned slot;
    uint64_t top_now = now >> TIMER_TOP_SHIFT;
    uint64_t top_due = due >> TIMER_TOP_SHIFT;
    if (top_due == top_now) {
        /* due > now and both share the bits above level TIMER_TOP - 1. */
        unsigned bit = 63u - (unsigned)__builtin_clzll(now ^ due);
        level = bit / TIMER_SLOT_BITS;
        ASSERT(level < TIMER_TOP);
        slot = (unsigned)(due >> (TIMER_SLOT_BITS * level)) & TIMER_SLOT_MASK;
    } else if (top_due - top_now < TIMER_SLOTS) {
        slot = (unsigned)top_due & TIMER_SLOT_MASK;
    } else {
        /* Parked: examined again when the wheel reaches the furthest slot. */
        slot = (unsigned)(top_now + TIMER_SLOTS - 1) & TIMER_SLOT_MASK;
    }
    t->where = where_of(level, slot);
    link_append(&w->slots[level][slot], &t->link);
    w->occupied[level] |= UINT64_C(1) << slot;
}

/* Unlinks an armed t from its list, keeping the occupancy bits and the
 * queue's lower bound right; t stays counted. */
static void timer_unlink(struct timer_wheel *w, struct timer *t)
{
    uint32_t where = t->where;
    ASSERT(where != TIMER_WHERE_NONE && where < where_of(TIMER_LEVELS, 0));
    ASSERT(t->link.next != NULL && t->link.prev != NULL);
    link_remove(&t->link);
    t->where = TIMER_WHERE_NONE;
    if (where == TIMER_WHERE_QUEUE) {
        if (link_empty(&w->queue))
            w->queued_min_ms = UINT64_MAX;
        return;
    }
    unsigned level = (where - TIMER_WHERE_SLOT0) / TIMER_SLOTS;
    unsigned slot = (where - TIMER_WHERE_SLOT0) % TIMER_SLOTS;
    if (link_empty(&w->slots[level][slot]))
        w->occupied[level] &= ~(UINT64_C(1) << slot);
}

void timer_init(struct timer *t)
{
    memset(t, 0, sizeof(*t));
}

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms)
{
    ASSERT(now_ms < TIMER_NOW_MAX);
    memset(w, 0, sizeof(*w));
    w->now_ms = now_ms;
    w->clock_ms = now_ms;
    w->queued_min_ms = UINT64_MAX;
    link_init(&w->queue);
    for (unsigned l = 0; l < TIMER_LEVELS; l++) {
        for (unsigned s = 0; s < TIMER_SLOTS; s++)
            link_init(&w->slots[l][s]);
    }
}

static void list_disarm(struct timer_link *head)
{
    while (!link_empty(head)) {
        struct timer *t = timer_of(head->next);
        link_remove(&t->link);
        t->where = TIMER_WHERE_NONE;
    }
}

void timer_wheel_fini(struct timer_wheel *w)
{
    ASSERT(!w->expiring);
    list_disarm(&w->queue);
    for (unsigned l = 0; l < TIMER_LEVELS; l++) {
        for (unsigned s = 0; s < TIMER_SLOTS; s++)
            list_disarm(&w->slots[l][s]);
        w->occupied[l] = 0;
    }
    w->count = 0;
    w->queued_min_ms = UINT64_MAX;
}

void timer_arm(struct timer_wheel *w, struct timer *t, uint64_t due_ms)
{
    ASSERT(w != NULL && t != NULL);
    if (timer_armed(t)) {
        timer_unlink(w, t);
    } else {
        ASSERT(t->link.next == NULL);
        w->count++;
    }
    t->due_ms = due_ms;
    timer_place(w, t);
    ASSERT(timer_armed(t));
}

void timer_cancel(struct timer_wheel *w, struct timer *t)
{
    ASSERT(w != NULL && t != NULL);
    if (!timer_armed(t))
        return;
    ASSERT(w->count > 0);
    timer_unlink(w, t);
    w->count--;
}

/* The earliest occupied slot: its level, index and start time. False when
 * the wheel proper is empty. */
static bool timer_earliest(const struct timer_wheel *w, unsigned *level, unsigned *slot,
                           uint64_t *start_ms)
{
    uint64_t now = w->now_ms;
    bool found = false;
    *level = 0;
    *slot = 0;
    *start_ms = UINT64_MAX;
    for (unsigned l = 0; l < TIMER_LEVELS; l++) {
        uint64_t occ = w->occupied[l];
        if (occ == 0)
            continue;
        unsigned shift = TIMER_SLOT_BITS * l;
        unsigned cur = (unsigned)(now >> shift) & TIMER_SLOT_MASK;
        unsigned s;
        uint64_t start;
        if (l < TIMER_TOP) {
            s = (unsigned)__builtin_ctzll(occ);
            ASSERT(s >= cur);
            uint64_t block = now >> (shift + TIMER_SLOT_BITS) << (shift + TIMER_SLOT_BITS);
            start = block + ((uint64_t)s << shift);
        } else {
            /* Rotate so bit d is the slot d top slots after the current one. */
            uint64_t rot = cur == 0 ? occ : (occ >> cur) | (occ << (TIMER_SLOTS - cur));
            unsigned d = (unsigned)__builtin_ctzll(rot);
            s = (cur + d) & TIMER_SLOT_MASK;
            start = ((now >> shift) + d) << shift;
        }
        /* Starts never tie across levels (a lower level ends before a
         * higher one begins); strict keeps the lowest level if they did. */
        if (!found || start < *start_ms) {
            found = true;
            *level = l;
            *slot = s;
            *start_ms = start;
        }
    }
    return found;
}

uint64_t timer_next_due(const struct timer_wheel *w)
{
    if (!link_empty(&w->queue))
        return w->queued_min_ms;
    unsigned level, slot;
    uint64_t start;
    if (!timer_earliest(w, &level, &slot, &start))
        return UINT64_MAX;
    return start;
}

/* Re-files up to *moves timers of a slot above level 0, relative to a wheel
 * time that is the slot's start. */
static void timer_cascade(struct timer_wheel *w, unsigned level, unsigned slot, uint64_t *moves)
{
    struct timer_link *head = &w->slots[level][slot];
    uint32_t here = where_of(level, slot);
    while (!link_empty(head) && *moves > 0) {
        struct timer *t = timer_of(head->next);
        timer_unlink(w, t);
        timer_place(w, t);
        ASSERT(t->where != here);
        (*moves)--;
        w->moves++;
    }
}

/* Processes the earliest occupied slot if it starts at or before now_ms and
 * the move cap allows; otherwise brings the wheel's time up to now_ms when
 * nothing is left before it. Returns whether a slot was processed. */
static bool timer_advance(struct timer_wheel *w, uint64_t now_ms, uint64_t *moves)
{
    unsigned level, slot;
    uint64_t start;
    if (!timer_earliest(w, &level, &slot, &start) || start > now_ms) {
        w->now_ms = now_ms;
        return false;
    }
    ASSERT(start >= w->now_ms);
    /* An occupancy bit over an empty list would spin the caller. */
    ASSERT(!link_empty(&w->slots[level][slot]));
    if (level == 0) {
        ASSERT(start > w->now_ms);
        w->now_ms = start;
        struct timer_link *head = &w->slots[0][slot];
        for (struct timer_link *l = head->next; l != head; l = l->next)
            timer_of(l)->where = TIMER_WHERE_QUEUE;
        /* All of them are due at start: exactly one ms per level-0 slot. */
        if (start < w->queued_min_ms)
            w->queued_min_ms = start;
        link_splice(&w->queue, head);
        w->occupied[0] &= ~(UINT64_C(1) << slot);
        return true;
    }
    if (*moves == 0)
        return false;
    w->now_ms = start;
    timer_cascade(w, level, slot, moves);
    return true;
}

unsigned timer_expire(struct timer_wheel *w, uint64_t now_ms, unsigned budget,
                      void (*fire)(struct timer *t, void *ctx), void *ctx)
{
    ASSERT(w != NULL && fire != NULL);
    ASSERT(!w->expiring);
    ASSERT(now_ms >= w->clock_ms && now_ms < TIMER_NOW_MAX);
    ASSERT(w->now_ms <= w->clock_ms);
    w->clock_ms = now_ms;
    w->expiring = true;
    uint64_t moves = (uint64_t)budget * TIMER_MOVES_PER_FIRE;
    unsigned fired = 0;
    while (fired < budget) {
        if (!link_empty(&w->queue)) {
            struct timer *t = timer_of(w->queue.next);
            ASSERT(t->where == TIMER_WHERE_QUEUE && t->due_ms <= w->now_ms);
            timer_cancel(w, t);
            fired++;
            fire(t, ctx);
            continue;
        }
        if (!timer_advance(w, now_ms, &moves))
            break;
    }
    w->expiring = false;
    return fired;
}

size_t timer_wheel_count(const struct timer_wheel *w)
{
    return w->count;
}

uint64_t timer_wheel_moves(const struct timer_wheel *w)
{
    return w->moves;
}
