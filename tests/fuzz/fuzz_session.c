/*
 * libFuzzer target for core/session.c: the input is a program of operations
 * on one session (enqueue, next, PUBACK/PUBREC/PUBCOMP, take_shared, incoming
 * QoS 2 ids, new limits, the clock moving on), run against a model kept here
 * in plain arrays. After every operation the session must agree with the
 * model, through its public API and the fields session.h documents:
 *  - each operation's result is the one the header promises (an enqueue is
 *    refused exactly when the queue is full by count or bytes, an ack finds
 *    exactly the entry with that id in the matching state, take_shared hands
 *    out exactly the shared queued and unacknowledged QoS 1 deliveries);
 *  - walking q_head gives the model's queue in order, its count and bytes
 *    are queued and queued_bytes, and q_tail is its last node;
 *  - session_for_each_inflight gives the model's inflight entries in send
 *    order, with distinct non-zero packet ids, inflight_live of them, at
 *    most inflight_count <= the ring size, and a delivery is only sent while
 *    inflight_live < window;
 *  - every message's reference count is one (ours) plus one per delivery
 *    the session holds, and exactly one after session_fini (the leak check
 *    catches lost queue nodes).
 * The take_shared callback may queue what it was handed straight back into
 * the same session, as the broker does when a group's only member is this
 * session: the session must be consistent for that while it is walking.
 *
 * The fields qos2_in* are not read: only the API of the incoming QoS 2 ids
 * is checked, so the set may be stored any way.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "codec.h"
#include "fuzz_input.h"
#include "message.h"
#include "session.h"

/* Small bounds keep each run fast and make full windows and queues common. */
#define MSGS_MAX    64u
#define RING_MAX    32u
#define QUEUE_MAX   64u
#define REQUEUE_MAX 8u /* re-enqueues from one take_shared callback run */

struct item {
    struct delivery d;
};

struct flight {
    uint16_t id;
    uint8_t state;
    struct delivery d; /* d.msg NULL after PUBREC */
};

struct world {
    struct session s;
    uint32_t ring; /* inflight_max at init: the ring's size */
    struct session_limits lim;
    uint64_t now_ms;
    uint64_t dropped;

    struct msg *msgs[MSGS_MAX];
    uint32_t nmsgs;

    struct item q[QUEUE_MAX];
    uint32_t nq;
    uint64_t qbytes;

    struct flight f[RING_MAX];
    uint32_t nf;

    uint8_t qos2[65536 / 8];
    uint32_t qos2_count;

    /* take_shared in progress */
    struct fuzz_in *in;
    struct delivery expect[QUEUE_MAX + RING_MAX];
    bool expect_used[QUEUE_MAX + RING_MAX];
    uint32_t nexpect;
    uint32_t calls;
    uint32_t requeued;
};

static struct world w;

static bool same_delivery(const struct delivery *a, const struct delivery *b)
{
    if (a->msg != b->msg || a->qos != b->qos || a->retain != b->retain ||
        a->subid_count != b->subid_count || a->share_key != b->share_key)
        return false;
    return memcmp(a->subids, b->subids, a->subid_count * sizeof(a->subids[0])) == 0;
}

static bool queue_accepts(const struct msg *m)
{
    return w.nq < w.lim.queued_max &&
           !(w.lim.queued_bytes_max && w.qbytes + msg_size(m) > w.lim.queued_bytes_max);
}

/* session_enqueue with the model's verdict checked; d's reference is the
 * session's afterwards either way. */
static void enqueue_checked(struct delivery *d)
{
    struct delivery copy = *d;
    bool ok = queue_accepts(d->msg);
    int r = session_enqueue(&w.s, d);
    if (ok && r == SESSION_QUEUED) {
        CHECK(w.nq < QUEUE_MAX);
        w.q[w.nq++].d = copy;
        w.qbytes += msg_size(copy.msg);
        return;
    }
    if (ok)
        CHECK(r == SESSION_DROPPED_NOMEM);
    else
        CHECK(r == SESSION_DROPPED_FULL);
    w.dropped++;
}

static struct msg *new_msg(struct fuzz_in *in)
{
    uint8_t payload[256];
    size_t plen = in_u8(in);
    memset(payload, 'p', plen);
    uint8_t topic[8] = {'t', '/', (uint8_t)('a' + w.nmsgs % 26)};
    struct mqtt_publish p;
    memset(&p, 0, sizeof(p));
    p.qos = 2;
    p.payload.ptr = payload;
    p.payload.len = (uint32_t)plen;
    uint8_t e = in_u8(in);
    if (e < 96) {
        /* Expiring within a few seconds: the clock moves up to 10 s a step. */
        p.props.present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
        p.props.message_expiry_s = e % 8;
    }
    struct msg *m = msg_create(&p, topic, 3, 0, w.now_ms);
    CHECK(m != NULL);
    return m;
}

static void op_enqueue(struct fuzz_in *in)
{
    uint8_t b = in_u8(in);
    struct msg *m;
    if (w.nmsgs == 0 || ((b & 0x80) && w.nmsgs < MSGS_MAX)) {
        m = new_msg(in);
        w.msgs[w.nmsgs++] = m;
    } else {
        m = w.msgs[b % w.nmsgs];
    }
    uint8_t f = in_u8(in);
    struct delivery d;
    memset(&d, 0, sizeof(d));
    d.msg = msg_ref(m);
    d.qos = (f & 1) ? 2 : 1;
    d.retain = (f & 2) != 0;
    d.subid_count = (uint8_t)((f >> 2 & 7) % (SUBID_PER_PUBLISH_MAX + 1));
    for (uint32_t i = 0; i < d.subid_count; i++)
        d.subids[i] = 1 + i * 1000u + f;
    d.share_key = (f & 0x20) ? 1 + in_u8(in) % 3 : 0;
    enqueue_checked(&d);
}

static bool id_live(uint16_t id)
{
    for (uint32_t i = 0; i < w.nf; i++)
        if (w.f[i].id == id)
            return true;
    return false;
}

static void op_next(void)
{
    uint32_t live_before = w.s.inflight_live;
    struct delivery out;
    uint16_t id = 0;
    bool got = session_next(&w.s, w.now_ms, &out, &id);
    if (!got) {
        bool room = w.s.inflight_count < w.ring && w.s.inflight_live < w.s.window;
        if (room) {
            /* With room the session only stops on an empty queue: whatever
             * was queued had expired [MQTT-3.3.2-5]. */
            for (uint32_t i = 0; i < w.nq; i++)
                CHECK(msg_expired(w.q[i].d.msg, w.now_ms));
            w.nq = 0;
            w.qbytes = 0;
        }
        return;
    }
    CHECK(live_before < w.s.window);
    CHECK(w.s.inflight_live <= w.s.window);
    uint32_t skip = 0;
    while (skip < w.nq && msg_expired(w.q[skip].d.msg, w.now_ms))
        skip++;
    CHECK(skip < w.nq);
    struct delivery front = w.q[skip].d;
    CHECK(same_delivery(&out, &front));
    for (uint32_t i = 0; i <= skip; i++)
        w.qbytes -= msg_size(w.q[i].d.msg);
    memmove(w.q, w.q + skip + 1, (w.nq - skip - 1) * sizeof(w.q[0]));
    w.nq -= skip + 1;
    CHECK(id != 0 && !id_live(id));
    CHECK(w.nf < RING_MAX);
    struct flight *fl = &w.f[w.nf++];
    fl->id = id;
    fl->state = front.qos == 1 ? SESSION_AWAIT_PUBACK : SESSION_AWAIT_PUBREC;
    fl->d = front;
}

static void op_acked(struct fuzz_in *in)
{
    static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBCOMP};
    static const uint8_t wants[] = {SESSION_AWAIT_PUBACK, SESSION_AWAIT_PUBREC,
                                    SESSION_AWAIT_PUBCOMP};
    uint8_t t = in_u8(in);
    uint16_t id;
    if ((t & 0x80) || w.nf == 0)
        id = in_u16(in);
    else
        id = w.f[in_u8(in) % w.nf].id;
    uint8_t type = types[t % 3], want = wants[t % 3];
    uint32_t j = 0;
    while (j < w.nf && !(w.f[j].id == id && w.f[j].state == want))
        j++;
    int r = session_acked(&w.s, type, id);
    if (j == w.nf) {
        CHECK(r == -ENOENT);
        return;
    }
    CHECK(r == 0);
    if (type == MQTT_PUBREC) {
        w.f[j].state = SESSION_AWAIT_PUBCOMP;
        w.f[j].d.msg = NULL;
        return;
    }
    memmove(w.f + j, w.f + j + 1, (w.nf - j - 1) * sizeof(w.f[0]));
    w.nf--;
}

static void take_cb(void *ctx, struct delivery *d)
{
    (void)ctx;
    w.calls++;
    CHECK(d->msg != NULL && d->share_key != 0);
    uint32_t i = 0;
    while (i < w.nexpect && (w.expect_used[i] || !same_delivery(&w.expect[i], d)))
        i++;
    CHECK(i < w.nexpect); /* handed out once, and only what is shared */
    w.expect_used[i] = true;

    uint8_t b = in_u8(w.in);
    if ((b & 1) && w.requeued < REQUEUE_MAX) {
        /* The group's only member is this session: back it goes, shared or
         * (b & 2) as a plain delivery. */
        w.requeued++;
        struct delivery again = *d;
        d->msg = NULL;
        if (b & 2)
            again.share_key = 0;
        enqueue_checked(&again);
        return;
    }
    msg_unref(d->msg);
    d->msg = NULL;
}

static void op_take_shared(struct fuzz_in *in)
{
    w.nexpect = 0;
    w.calls = 0;
    w.requeued = 0;
    w.in = in;
    uint32_t nq = 0;
    uint64_t qbytes = 0;
    for (uint32_t i = 0; i < w.nq; i++) {
        if (w.q[i].d.share_key) {
            w.expect[w.nexpect++] = w.q[i].d;
        } else {
            w.q[nq++] = w.q[i];
            qbytes += msg_size(w.q[i].d.msg);
        }
    }
    w.nq = nq;
    w.qbytes = qbytes;
    uint32_t nf = 0;
    for (uint32_t i = 0; i < w.nf; i++) {
        /* A QoS 2 delivery completes with this client [MQTT-4.8.2-4]. */
        if (w.f[i].state == SESSION_AWAIT_PUBACK && w.f[i].d.share_key)
            w.expect[w.nexpect++] = w.f[i].d;
        else
            w.f[nf++] = w.f[i];
    }
    w.nf = nf;
    memset(w.expect_used, 0, sizeof(w.expect_used));
    /* Re-enqueues inside the callback go to the model's queue after what
     * stayed, which is where a FIFO puts them. */
    uint32_t taken = session_take_shared(&w.s, take_cb, NULL);
    CHECK(taken == w.calls);
    CHECK(taken == w.nexpect);
}

static void op_qos2_seen(struct fuzz_in *in)
{
    uint8_t b = in_u8(in);
    uint16_t id = (b & 0x80) ? in_u16(in) : (uint16_t)(1 + b % 48);
    uint32_t max_ids = in_u8(in) % 40;
    bool present = w.qos2[id / 8] & (1u << id % 8);
    int r = session_qos2_seen(&w.s, id, max_ids);
    if (present) {
        CHECK(r == 0);
        return;
    }
    if (w.qos2_count >= max_ids) {
        CHECK(r < 0);
        return;
    }
    CHECK(r == 1 || r == -ENOMEM);
    if (r == 1) {
        w.qos2[id / 8] |= (uint8_t)(1u << id % 8);
        w.qos2_count++;
    }
}

static void op_qos2_release(struct fuzz_in *in)
{
    uint8_t b = in_u8(in);
    uint16_t id = (b & 0x80) ? in_u16(in) : (uint16_t)(1 + b % 48);
    bool present = w.qos2[id / 8] & (1u << id % 8);
    CHECK(session_qos2_release(&w.s, id) == present);
    if (present) {
        w.qos2[id / 8] &= (uint8_t) ~(1u << id % 8);
        w.qos2_count--;
    }
}

static void limits_from(struct fuzz_in *in, struct session_limits *lim, uint32_t inflight_hi)
{
    lim->inflight_max = 1 + in_u8(in) % inflight_hi;
    lim->queued_max = 1 + in_u8(in) % QUEUE_MAX;
    uint8_t b = in_u8(in);
    /* A message accounts for its header, topic and payload: 70 to 330
     * bytes, so this bound binds after a few. */
    lim->queued_bytes_max = b < 128 ? 0 : (uint64_t)(b - 127) * 64u;
}

static void op_set_limits(struct fuzz_in *in)
{
    struct session_limits lim;
    limits_from(in, &lim, w.ring + 4);
    CHECK(session_set_limits(&w.s, &lim) == 0);
    /* A client narrows the window, never widens the ring. */
    CHECK(w.s.window == (lim.inflight_max < w.ring ? lim.inflight_max : w.ring));
    w.lim.queued_max = lim.queued_max;
    w.lim.queued_bytes_max = lim.queued_bytes_max;
}

struct walk {
    uint32_t i;
};

static void inflight_cb(void *ctx, const struct session_inflight *e)
{
    struct walk *wk = ctx;
    CHECK(wk->i < w.nf);
    const struct flight *f = &w.f[wk->i++];
    CHECK(e->packet_id == f->id && e->state == f->state);
    if (f->state == SESSION_AWAIT_PUBCOMP)
        CHECK(e->d.msg == NULL);
    else
        CHECK(same_delivery(&e->d, &f->d));
}

static void check_invariants(void)
{
    const struct session *s = &w.s;
    /* The queue, walked no further than the model's length plus one so a
     * cycle cannot hang the run. */
    const struct session_qnode *last = NULL;
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (const struct session_qnode *q = s->q_head; q; q = q->next) {
        CHECK(n < w.nq);
        CHECK(same_delivery(&q->d, &w.q[n].d));
        bytes += msg_size(q->d.msg);
        last = q;
        n++;
    }
    CHECK(n == w.nq);
    CHECK(s->queued == w.nq);
    CHECK(s->queued_bytes == bytes && bytes == w.qbytes);
    CHECK(s->q_tail == last);
    CHECK(s->dropped == w.dropped);

    struct walk wk = {0};
    session_for_each_inflight(s, inflight_cb, &wk);
    CHECK(wk.i == w.nf);
    CHECK(s->inflight_live == w.nf);
    CHECK(s->inflight_live <= s->inflight_count && s->inflight_count <= w.ring);
    CHECK(s->window >= 1 && s->window <= w.ring);
    for (uint32_t i = 0; i < w.nf; i++)
        for (uint32_t j = i + 1; j < w.nf; j++)
            CHECK(w.f[i].id != w.f[j].id);

    /* References: ours, plus one per delivery held. */
    unsigned want[MSGS_MAX];
    for (uint32_t i = 0; i < w.nmsgs; i++)
        want[i] = 1;
    for (uint32_t k = 0; k < w.nq + w.nf; k++) {
        const struct msg *m = k < w.nq ? w.q[k].d.msg : w.f[k - w.nq].d.msg;
        if (!m)
            continue;
        uint32_t i = 0;
        while (i < w.nmsgs && w.msgs[i] != m)
            i++;
        CHECK(i < w.nmsgs);
        want[i]++;
    }
    for (uint32_t i = 0; i < w.nmsgs; i++)
        CHECK(atomic_load(&w.msgs[i]->refs) == want[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    memset(&w, 0, sizeof(w));
    struct session_limits lim;
    limits_from(&in, &lim, RING_MAX);
    w.ring = lim.inflight_max;
    w.lim = lim;
    CHECK(session_init(&w.s, &lim) == 0);
    CHECK(w.s.window == w.ring);

    while (!in_done(&in)) {
        uint8_t op = in_u8(&in);
        switch (op % 10) {
        case 0:
        case 1:
            op_enqueue(&in);
            break;
        case 2:
        case 3:
            op_next();
            break;
        case 4:
            op_acked(&in);
            break;
        case 5:
            op_take_shared(&in);
            break;
        case 6:
            op_qos2_seen(&in);
            break;
        case 7:
            op_qos2_release(&in);
            break;
        case 8:
            op_set_limits(&in);
            break;
        default:
            w.now_ms += (uint64_t)in_u8(&in) * 40u;
            break;
        }
        check_invariants();
    }

    session_fini(&w.s);
    for (uint32_t i = 0; i < w.nmsgs; i++) {
        CHECK(atomic_load(&w.msgs[i]->refs) == 1);
        msg_unref(w.msgs[i]);
    }
    return 0;
}
