#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "session.h"

static struct session s;

static struct delivery dl(uint8_t qos, const char *payload)
{
    struct delivery d;
    memset(&d, 0, sizeof(d));
    d.msg = msg_create_simple((const uint8_t *)"t", 1, (const uint8_t *)payload, strlen(payload),
                              qos, false);
    d.qos = qos;
    return d;
}

static void init(uint32_t inflight, uint32_t queued, uint64_t bytes)
{
    struct session_limits lim = {inflight, queued, bytes};
    cr_assert_eq(session_init(&s, &lim), 0);
}

static void fini(void)
{
    session_fini(&s);
}

Test(session, window_bounds_inflight_and_order_is_kept, .fini = fini)
{
    init(2, 10, 0);
    for (int i = 0; i < 4; i++) {
        char p[2] = {(char)('a' + i), 0};
        struct delivery d = dl(1, p);
        cr_assert_eq(session_enqueue(&s, &d), SESSION_QUEUED);
    }
    struct delivery out;
    uint16_t id1, id2, id3;
    cr_assert(session_next(&s, 0, &out, &id1));
    cr_assert_eq(msg_payload(out.msg)[0], 'a');
    cr_assert(session_next(&s, 0, &out, &id2));
    cr_assert_eq(msg_payload(out.msg)[0], 'b');
    cr_assert_not(session_next(&s, 0, &out, &id3), "window of 2 is full");
    cr_assert_neq(id1, id2);
    cr_assert_eq(session_acked(&s, MQTT_PUBACK, id1), 0);
    cr_assert(session_next(&s, 0, &out, &id3));
    cr_assert_eq(msg_payload(out.msg)[0], 'c');
    cr_assert_eq(s.queued, 1);
}

Test(session, queue_full_drops_and_counts, .fini = fini)
{
    init(1, 3, 0);
    for (int i = 0; i < 5; i++) {
        struct delivery d = dl(1, "x");
        session_enqueue(&s, &d);
    }
    cr_assert_eq(s.queued, 3);
    cr_assert_eq(s.dropped, 2);
}

Test(session, queue_byte_bound, .fini = fini)
{
    init(1, 100, 1);
    struct delivery d = dl(1, "payload");
    cr_assert_eq(session_enqueue(&s, &d), SESSION_DROPPED_FULL, "one byte cannot hold a message");
    cr_assert_eq(s.queued_bytes, 0);
}

Test(session, qos2_flow, .fini = fini)
{
    init(4, 10, 0);
    struct delivery d = dl(2, "q2");
    session_enqueue(&s, &d);
    struct delivery out;
    uint16_t id;
    cr_assert(session_next(&s, 0, &out, &id));
    cr_assert_eq(session_acked(&s, MQTT_PUBACK, id), -ENOENT, "QoS 2 is not PUBACKed");
    cr_assert_eq(session_acked(&s, MQTT_PUBCOMP, id), -ENOENT, "PUBCOMP before PUBREC");
    cr_assert_eq(session_acked(&s, MQTT_PUBREC, id), 0);
    cr_assert_eq(s.inflight_live, 1, "awaiting PUBCOMP still counts");
    cr_assert_eq(session_acked(&s, MQTT_PUBREC, id), -ENOENT);
    cr_assert_eq(session_acked(&s, MQTT_PUBCOMP, id), 0);
    cr_assert_eq(s.inflight_live, 0);
}

static void count_inflight(void *ctx, const struct session_inflight *e)
{
    int *n = ctx;
    (*n)++;
    cr_assert(e->state != 0);
}

Test(session, out_of_order_ack_leaves_hole_then_resend_order, .fini = fini)
{
    init(3, 10, 0);
    uint16_t ids[3];
    struct delivery out;
    for (int i = 0; i < 3; i++) {
        struct delivery d = dl(1, "m");
        session_enqueue(&s, &d);
        cr_assert(session_next(&s, 0, &out, &ids[i]));
    }
    cr_assert_eq(session_acked(&s, MQTT_PUBACK, ids[1]), 0);
    int n = 0;
    session_for_each_inflight(&s, count_inflight, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(session_acked(&s, MQTT_PUBACK, ids[0]), 0);
    cr_assert_eq(s.inflight_count, 1, "holes at the head are reclaimed");
}

Test(session, packet_ids_skip_zero_and_ids_in_use, .fini = fini)
{
    init(2, 10, 0);
    s.next_packet_id = 65535;
    struct delivery out;
    uint16_t a, b;
    struct delivery d1 = dl(1, "1"), d2 = dl(1, "2");
    session_enqueue(&s, &d1);
    session_enqueue(&s, &d2);
    cr_assert(session_next(&s, 0, &out, &a));
    cr_assert(session_next(&s, 0, &out, &b));
    cr_assert_eq(a, 65535);
    cr_assert_eq(b, 1, "0 is never a packet id [MQTT-2.2.1-3]");
}

Test(session, expired_messages_are_not_sent, .fini = fini)
{
    init(2, 10, 0);
    struct mqtt_publish p;
    memset(&p, 0, sizeof(p));
    p.qos = 1;
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
    p.props.message_expiry_s = 1;
    struct delivery d = {.msg = msg_create(&p, (const uint8_t *)"t", 1, 0, 0), .qos = 1};
    session_enqueue(&s, &d);
    struct delivery out;
    uint16_t id;
    cr_assert_not(session_next(&s, 5000, &out, &id));
    cr_assert_eq(s.queued, 0);
}

Test(session, receive_maximum_narrows_window, .fini = fini)
{
    init(10, 10, 0);
    struct session_limits lim = {1, 10, 0};
    session_set_limits(&s, &lim);
    struct delivery out;
    uint16_t id;
    for (int i = 0; i < 3; i++) {
        struct delivery d = dl(1, "m");
        session_enqueue(&s, &d);
    }
    cr_assert(session_next(&s, 0, &out, &id));
    cr_assert_not(session_next(&s, 0, &out, &id));
}

Test(session, incoming_qos2_ids, .fini = fini)
{
    init(1, 1, 0);
    cr_assert_eq(session_qos2_seen(&s, 7, 10), 1);
    cr_assert_eq(session_qos2_seen(&s, 7, 10), 0, "a resend is not new");
    cr_assert(session_qos2_release(&s, 7));
    cr_assert_not(session_qos2_release(&s, 7));
    for (uint16_t i = 1; i <= 3; i++)
        cr_assert_eq(session_qos2_seen(&s, i, 3), 1);
    cr_assert_eq(session_qos2_seen(&s, 4, 3), -ENOSPC);
}

static void collect(void *ctx, struct delivery *d)
{
    int *n = ctx;
    (*n)++;
    msg_unref(d->msg);
}

Test(session, take_shared_moves_queued_and_unacked_qos1_only, .fini = fini)
{
    init(3, 10, 0);
    struct delivery out;
    uint16_t id1, id2, id3;
    struct delivery a = dl(1, "a"), b = dl(2, "b"), c = dl(1, "c");
    a.share_key = 7;
    b.share_key = 7;
    session_enqueue(&s, &a);
    session_enqueue(&s, &b);
    session_enqueue(&s, &c);
    cr_assert(session_next(&s, 0, &out, &id1)); /* a: QoS 1 shared, inflight */
    cr_assert(session_next(&s, 0, &out, &id2)); /* b: QoS 2 shared, inflight */
    struct delivery d = dl(1, "d"), e = dl(2, "e");
    d.share_key = 9;
    e.share_key = 9;
    session_enqueue(&s, &d);
    session_enqueue(&s, &e);
    int n = 0;
    cr_assert_eq(session_take_shared(&s, collect, &n), 3, "a (inflight QoS 1), d and e (queued)");
    cr_assert_eq(n, 3);
    cr_assert_eq(s.queued, 1, "c, not shared, stays queued");
    cr_assert_eq(s.inflight_live, 1, "b stays: QoS 2 completes with this client [MQTT-4.8.2-4]");
    cr_assert_eq(session_acked(&s, MQTT_PUBACK, id1), -ENOENT, "a is gone from inflight");
    cr_assert(session_next(&s, 0, &out, &id3));
    cr_assert_eq(msg_payload(out.msg)[0], 'c');
}

/* The callback queues straight back into the session it is taken from, as
 * the only member of a group does: the walk must end, and the queue stay
 * whole [issue 7 defects 1 and 3]. */
static void requeue(void *ctx, struct delivery *d)
{
    int *n = ctx;
    (*n)++;
    d->share_key = 0; /* now a plain copy: not taken again */
    cr_assert_eq(session_enqueue(&s, d), SESSION_QUEUED);
}

Test(session, take_shared_callback_may_requeue_into_the_same_session, .fini = fini)
{
    init(2, 100, 0);
    struct delivery out;
    uint16_t id;
    struct delivery a = dl(1, "a"), b = dl(1, "b"), c = dl(1, "c");
    a.share_key = 5;
    c.share_key = 5; /* the last queued node is a shared one */
    session_enqueue(&s, &a);
    session_enqueue(&s, &b);
    cr_assert(session_next(&s, 0, &out, &id)); /* a inflight */
    cr_assert(session_next(&s, 0, &out, &id)); /* b inflight */
    session_enqueue(&s, &c);
    struct delivery d = dl(1, "d");
    session_enqueue(&s, &d); /* queue: c (shared), d */
    struct delivery e = dl(1, "e");
    e.share_key = 5;
    session_enqueue(&s, &e); /* queue: c, d, e (shared, the tail) */
    int n = 0;
    cr_assert_eq(session_take_shared(&s, requeue, &n), 3, "a (inflight), c, e");
    cr_assert_eq(n, 3);
    /* Queue now d, then what came back in order: a, c, e. */
    cr_assert_eq(s.queued, 4);
    struct delivery f = dl(1, "f");
    cr_assert_eq(session_enqueue(&s, &f), SESSION_QUEUED, "the tail is valid after the walk");
    const char want[] = "dacef";
    uint32_t walked = 0;
    for (struct session_qnode *q = s.q_head; q; q = q->next) {
        cr_assert_lt(walked, 5);
        cr_assert_eq(msg_payload(q->d.msg)[0], want[walked], "node %u", walked);
        if (!q->next)
            cr_assert_eq(q, s.q_tail);
        walked++;
    }
    cr_assert_eq(walked, 5);
}

Test(session, take_shared_of_the_only_shared_tail_keeps_head, .fini = fini)
{
    init(1, 100, 0);
    struct delivery a = dl(1, "a"), b = dl(1, "b"), c = dl(1, "c");
    c.share_key = 3;
    session_enqueue(&s, &a);
    session_enqueue(&s, &b);
    session_enqueue(&s, &c);
    int n = 0;
    cr_assert_eq(session_take_shared(&s, collect, &n), 1);
    struct delivery d = dl(1, "d");
    session_enqueue(&s, &d);
    cr_assert_eq(s.queued, 3);
    cr_assert_eq(msg_payload(s.q_head->d.msg)[0], 'a', "head survives a later enqueue");
    cr_assert_eq(msg_payload(s.q_tail->d.msg)[0], 'd');
}

Test(session, incoming_qos2_ids_sorted_any_order, .fini = fini)
{
    init(1, 1, 0);
    /* Insert in a scrambled order, then every id is found and released
     * exactly once. */
    for (uint32_t i = 0; i < 1000; i++) {
        uint16_t id = (uint16_t)((i * 7919u) % 65535u + 1u);
        cr_assert_eq(session_qos2_seen(&s, id, 65535), 1, "id %u", id);
    }
    cr_assert_eq(s.qos2_in_count, 1000);
    for (uint32_t i = 1; i < s.qos2_in_count; i++)
        cr_assert_lt(s.qos2_in[i - 1], s.qos2_in[i]);
    for (uint32_t i = 0; i < 1000; i++) {
        uint16_t id = (uint16_t)((i * 7919u) % 65535u + 1u);
        cr_assert_eq(session_qos2_seen(&s, id, 65535), 0, "a resend of %u", id);
        cr_assert(session_qos2_release(&s, id));
        cr_assert_not(session_qos2_release(&s, id));
    }
    cr_assert_eq(s.qos2_in_count, 0);
}

Test(session, queued_slack_extends_the_bound_while_set, .fini = fini)
{
    init(1, 2, 0);
    for (int i = 0; i < 2; i++) {
        struct delivery d = dl(1, "x");
        cr_assert_eq(session_enqueue(&s, &d), SESSION_QUEUED);
    }
    struct delivery d = dl(1, "y");
    cr_assert_eq(session_enqueue(&s, &d), SESSION_DROPPED_FULL);
    s.queued_slack = 1;
    d = dl(1, "y");
    cr_assert_eq(session_enqueue(&s, &d), SESSION_QUEUED);
    d = dl(1, "z");
    cr_assert_eq(session_enqueue(&s, &d), SESSION_DROPPED_FULL, "limit + slack + 1");
    cr_assert_eq(s.dropped, 2);
}
