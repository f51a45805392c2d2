/*
 * Session QoS bookkeeping. The inflight window is a ring in send order, so
 * acknowledgements (which clients send in order almost always) find their
 * entry at the head in one compare, and a resumed session resends in the
 * original order [MQTT-4.6.0-1]. An acknowledgement out of order leaves a
 * hole that is reclaimed when the head reaches it.
 *
 * The queue is a singly linked FIFO bounded by message count and bytes; a
 * full queue drops the new message and counts it (never grows without bound).
 * Only the session's home shard calls these functions.
 */
#include "session.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static uint32_t ring_cap(const struct session *s)
{
    return s->lim.inflight_max;
}

static struct session_inflight *slot(struct session *s, uint32_t i)
{
    return &s->inflight[(s->inflight_head + i) % ring_cap(s)];
}

int session_init(struct session *s, const struct session_limits *lim)
{
    assert(lim->inflight_max >= 1 && lim->inflight_max <= INFLIGHT_MAX);
    memset(s, 0, sizeof(*s));
    s->lim = *lim;
    s->inflight = calloc(lim->inflight_max, sizeof(*s->inflight));
    if (!s->inflight)
        return -ENOMEM;
    s->window = lim->inflight_max;
    s->next_packet_id = 1;
    return 0;
}

static void delivery_release(struct delivery *d)
{
    msg_unref(d->msg);
    d->msg = NULL;
}

void session_fini(struct session *s)
{
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        struct session_inflight *e = slot(s, i);
        if (e->state)
            delivery_release(&e->d);
    }
    free(s->inflight);
    for (struct session_qnode *n = s->q_head, *next; n; n = next) {
        next = n->next;
        delivery_release(&n->d);
        free(n);
    }
    free(s->qos2_in);
    memset(s, 0, sizeof(*s));
}

int session_set_limits(struct session *s, const struct session_limits *lim)
{
    /* The ring was sized by the broker's cap at init; a client can only
     * narrow the window (its receive maximum), never widen the ring. */
    assert(lim->inflight_max >= 1);
    s->window = lim->inflight_max < s->lim.inflight_max ? lim->inflight_max : s->lim.inflight_max;
    s->lim.queued_max = lim->queued_max;
    s->lim.queued_bytes_max = lim->queued_bytes_max;
    return 0;
}

static bool append(struct session *s, struct delivery *d)
{
    struct session_qnode *n = malloc(sizeof(*n));
    if (!n) {
        s->dropped++;
        delivery_release(d);
        return false;
    }
    n->next = NULL;
    n->d = *d;
    d->msg = NULL;
    if (s->q_tail)
        s->q_tail->next = n;
    else
        s->q_head = n;
    s->q_tail = n;
    s->queued++;
    s->queued_bytes += msg_size(n->d.msg);
    return true;
}

bool session_requeue(struct session *s, struct delivery *d)
{
    assert(d->qos > 0 && d->msg);
    return append(s, d);
}

int session_enqueue(struct session *s, struct delivery *d)
{
    assert(d->qos > 0 && d->msg);
    size_t bytes = msg_size(d->msg);
    if (s->queued >= s->lim.queued_max + s->queued_slack ||
        (s->lim.queued_bytes_max && s->queued_bytes + bytes > s->lim.queued_bytes_max)) {
        s->dropped++;
        delivery_release(d);
        return SESSION_DROPPED_FULL;
    }
    return append(s, d) ? SESSION_QUEUED : SESSION_DROPPED_NOMEM;
}

static bool packet_id_in_use(struct session *s, uint16_t id)
{
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        struct session_inflight *e = slot(s, i);
        if (e->state && e->packet_id == id)
            return true;
    }
    return false;
}

static uint16_t alloc_packet_id(struct session *s)
{
    /* The window is at most INFLIGHT_MAX (65535) live ids and the caller
     * checked there is room, so a free id exists. */
    for (;;) {
        uint16_t id = s->next_packet_id;
        s->next_packet_id = (uint16_t)(id == 65535 ? 1 : id + 1);
        if (!packet_id_in_use(s, id))
            return id;
    }
}

/* Drops acknowledged holes at the head so the ring has room. */
static void compact_head(struct session *s)
{
    while (s->inflight_count && slot(s, 0)->state == 0) {
        s->inflight_head = (s->inflight_head + 1) % ring_cap(s);
        s->inflight_count--;
    }
}

bool session_next(struct session *s, uint64_t now_ms, struct delivery *out, uint16_t *packet_id)
{
    compact_head(s);
    while (s->q_head) {
        if (s->inflight_count >= ring_cap(s) || s->inflight_live >= s->window)
            return false;
        struct session_qnode *n = s->q_head;
        s->q_head = n->next;
        if (!s->q_head)
            s->q_tail = NULL;
        s->queued--;
        s->queued_bytes -= msg_size(n->d.msg);
        if (msg_expired(n->d.msg, now_ms)) {
            /* An expired message is not sent [MQTT-3.3.2-5]. */
            s->expired++;
            delivery_release(&n->d);
            free(n);
            continue;
        }
        uint16_t id = alloc_packet_id(s);
        struct session_inflight *e = slot(s, s->inflight_count);
        e->packet_id = id;
        e->state = n->d.qos == 1 ? SESSION_AWAIT_PUBACK : SESSION_AWAIT_PUBREC;
        e->d = n->d;
        free(n);
        s->inflight_count++;
        s->inflight_live++;
        *out = e->d;
        *packet_id = id;
        return true;
    }
    return false;
}

int session_acked(struct session *s, uint8_t packet_type, uint16_t packet_id)
{
    uint8_t want = packet_type == MQTT_PUBACK   ? SESSION_AWAIT_PUBACK
                   : packet_type == MQTT_PUBREC ? SESSION_AWAIT_PUBREC
                                                : SESSION_AWAIT_PUBCOMP;
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        struct session_inflight *e = slot(s, i);
        if (e->state != want || e->packet_id != packet_id)
            continue;
        if (packet_type == MQTT_PUBREC) {
            /* The message is the receiver's now [MQTT-4.3.3-3]: keep only
             * the id until PUBCOMP. */
            delivery_release(&e->d);
            e->state = SESSION_AWAIT_PUBCOMP;
            return 0;
        }
        if (e->d.msg)
            delivery_release(&e->d);
        e->state = 0;
        s->inflight_live--;
        compact_head(s);
        return 0;
    }
    return -ENOENT;
}

void session_for_each_inflight(const struct session *s, session_inflight_fn fn, void *ctx)
{
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        const struct session_inflight *e =
            &s->inflight[(s->inflight_head + i) % s->lim.inflight_max];
        if (e->state)
            fn(ctx, e);
    }
}

uint32_t session_take_shared(struct session *s, session_take_fn fn, void *ctx)
{
    /* Everything movable is unlinked first and handed out afterwards: fn
     * may queue a message straight back into this session (it is the
     * group's only member), and it must find a consistent queue, not one
     * it is being walked over [issue 7 defects 1 and 3]. */
    struct session_qnode *taken = NULL, **taken_tail = &taken;
    struct session_qnode *kept_tail = NULL;
    uint32_t count = 0;
    for (struct session_qnode **pp = &s->q_head; *pp;) {
        struct session_qnode *n = *pp;
        if (!n->d.share_key) {
            kept_tail = n;
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        s->queued--;
        s->queued_bytes -= msg_size(n->d.msg);
        n->next = NULL;
        *taken_tail = n;
        taken_tail = &n->next;
        count++;
    }
    s->q_tail = kept_tail;
    /* Inflight QoS 1 shared deliveries become holes; the deliveries are
     * collected in send order before any is handed out. */
    uint32_t inflight_taken = 0;
    struct delivery *moved = NULL;
    for (uint32_t i = 0; i < s->inflight_count; i++) {
        struct session_inflight *e = slot(s, i);
        inflight_taken += e->state == SESSION_AWAIT_PUBACK && e->d.share_key;
    }
    if (inflight_taken)
        moved = malloc(inflight_taken * sizeof(*moved));
    uint32_t nm = 0;
    if (moved) {
        for (uint32_t i = 0; i < s->inflight_count; i++) {
            struct session_inflight *e = slot(s, i);
            if (e->state != SESSION_AWAIT_PUBACK || !e->d.share_key)
                continue;
            moved[nm++] = e->d;
            e->d.msg = NULL;
            e->state = 0;
            s->inflight_live--;
        }
        compact_head(s);
    }
    /* Without memory for the list the inflight ones stay with this
     * session: it resends them when it resumes, nothing is lost. */
    for (uint32_t i = 0; i < nm; i++)
        fn(ctx, &moved[i]);
    free(moved);
    for (struct session_qnode *n = taken, *next; n; n = next) {
        next = n->next;
        fn(ctx, &n->d);
        free(n);
    }
    return count + nm;
}

/* The ids awaiting PUBREL are kept sorted: a lookup is a binary search,
 * an insert or removal one memmove of at most 128 KiB (65535 ids), so a
 * client filling its window cannot make each later PUBLISH cost a scan
 * [issue 7 defect 11]. Returns the index of id, or where it would go. */
static uint32_t qos2_pos(const struct session *s, uint16_t id, bool *found)
{
    uint32_t lo = 0, hi = s->qos2_in_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->qos2_in[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < s->qos2_in_count && s->qos2_in[lo] == id;
    return lo;
}

int session_qos2_seen(struct session *s, uint16_t packet_id, uint32_t max_ids)
{
    bool found;
    uint32_t at = qos2_pos(s, packet_id, &found);
    if (found)
        return 0;
    if (s->qos2_in_count >= max_ids)
        return -ENOSPC;
    if (s->qos2_in_count == s->qos2_in_cap) {
        uint32_t cap = s->qos2_in_cap ? s->qos2_in_cap * 2 : 8;
        uint16_t *ids = realloc(s->qos2_in, cap * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        s->qos2_in = ids;
        s->qos2_in_cap = cap;
    }
    memmove(s->qos2_in + at + 1, s->qos2_in + at, (s->qos2_in_count - at) * sizeof(*s->qos2_in));
    s->qos2_in[at] = packet_id;
    s->qos2_in_count++;
    return 1;
}

bool session_qos2_release(struct session *s, uint16_t packet_id)
{
    bool found;
    uint32_t at = qos2_pos(s, packet_id, &found);
    if (!found)
        return false;
    s->qos2_in_count--;
    memmove(s->qos2_in + at, s->qos2_in + at + 1, (s->qos2_in_count - at) * sizeof(*s->qos2_in));
    return true;
}
