/*
 * Unit tests for the MQTT engine (core/engine*.c, share.c): one to three
 * shards' engines sharing one struct engine_shared, driven by hand through
 * the fake effects (engine_fx_fake.c). Clients are encoded packets fed to
 * engine_input; what they would see is decoded from the connection's
 * output. Cross-shard items are delivered by pump(), which also resumes
 * connections that yielded and moves handed-off ones to their home shard.
 * No socket, no thread, no sleep: time is en->now_ms.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "engine.h"
#include "engine_fx.h"
#include "engine_fx_fake.h"
#include "engine_internal.h"
#include "retain.h"

#define V4 MQTT_V311
#define V5 MQTT_V5

#define BIT(name) MQTT_PROP_BIT(MQTT_PROP_##name)
#define B(s)      ((struct mqtt_bytes){(const uint8_t *)(s), (uint32_t)strlen(s)})

/* ---- the harness ------------------------------------------------------------- */

static struct config cfg;
static struct engine_shared g;
static struct engine en[FAKE_SHARDS];
static unsigned nshards;

static void setup_shards(unsigned n)
{
    fake_reset();
    fake.anonymous = true;
    config_init(&cfg);
    memset(&g, 0, sizeof(g));
    g.cfg = &cfg;
    g.shard_count = n;
    g.retain = retain_create();
    cr_assert_not_null(g.retain);
    g.hash_key[0] = 0x0123456789abcdefull;
    g.hash_key[1] = 0xfedcba9876543210ull;
    g.start_ms = 42;
    nshards = n;
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(engine_init(&en[i], &g, i), 0);
        en[i].now_ms = 1000;
        g.engines[i] = &en[i];
    }
}

static void one_shard(void)
{
    setup_shards(1);
}
static void two_shards(void)
{
    setup_shards(2);
}
static void three_shards(void)
{
    setup_shards(3);
}

static void set_now(uint64_t ms)
{
    for (unsigned i = 0; i < nshards; i++)
        en[i].now_ms = ms;
}

/* Time passes to ms: every engine fires what is due. */
static void run_timers(uint64_t ms)
{
    set_now(ms);
    for (unsigned i = 0; i < nshards; i++)
        engine_run_timers(&en[i], ms, 1000);
}

/* What the runtime does with a status: a hand-off travels to the home
 * shard as an ENGINE_ENV_ADOPT envelope. */
static enum engine_status after(struct fake_conn *fc, enum engine_status st)
{
    if (st == ENGINE_HANDOFF) {
        cr_assert_eq(fc->e.phase, ENGINE_PLACED);
        cr_assert_not(fc->moving, "bytes during a hand-off go to engine_keep_input");
        fc->moving = true;
        struct engine_env *e = calloc(1, sizeof(*e));
        cr_assert_not_null(e);
        e->type = ENGINE_ENV_ADOPT;
        e->from_shard = (uint16_t)fc->e.en->id;
        e->conn = fc;
        engine_fx_post(fc->e.en, fc->e.home, engine_env_item(e));
    }
    if (st == ENGINE_CLOSING)
        cr_assert(fc->closed || fc->gone, "ENGINE_CLOSING without engine_fx_close");
    return st;
}

static bool deliver_one(unsigned from, unsigned to)
{
    void *item = fake_queue_pop(from, to);
    if (!item)
        return false;
    struct engine_env *e = engine_env_of(item);
    if (!e) {
        engine_deliver_local(&en[to], item);
        msg_unref(item);
    } else if (e->type == ENGINE_ENV_ADOPT) {
        struct fake_conn *fc = e->conn;
        free(e);
        fc->moving = false;
        if (!fc->gone)
            after(fc, engine_adopted(&fc->e, &en[to]));
    } else {
        engine_handle_env(&en[to], e);
    }
    return true;
}

/* Delivers what is posted and resumes what yielded until nothing moves. */
static void pump(void)
{
    for (int round = 0; round < 10000; round++) {
        bool moved = false;
        for (unsigned to = 0; to < nshards; to++)
            for (unsigned from = 0; from < nshards; from++)
                while (deliver_one(from, to))
                    moved = true;
        for (struct fake_conn *fc = fake_conns; fc; fc = fc->next) {
            if (fc->resume_due && !fc->closed && !fc->gone) {
                fc->resume_due = false;
                moved = true;
                after(fc, engine_resume(&fc->e));
            }
        }
        if (!moved)
            return;
    }
    cr_assert_fail("pump does not settle");
}

/* The peer is gone (or the runtime finished a close): engine_closed. */
static void gone(struct fake_conn *fc)
{
    cr_assert_not(fc->gone);
    fc->gone = true;
    engine_closed(&fc->e);
}

static void teardown(void)
{
    for (struct fake_conn *fc = fake_conns; fc; fc = fc->next)
        if (!fc->gone)
            gone(fc);
    pump();
    while (fake_conns)
        fake_conn_free(fake_conns);
    for (unsigned i = 0; i < nshards; i++) {
        en[i].stopping = true;
        engine_fini(&en[i]);
        cr_assert_eq(fake_queue_len(i, 0) + fake_queue_len(i, 1) + fake_queue_len(i, 2), 0,
                     "engine_fini posted");
    }
    cr_assert_eq(atomic_load(&g.session_count), 0, "sessions left after engine_fini");
    retain_destroy(g.retain);
    engine_thread_exit();
    cr_assert_eq(fake.retain_readers + fake.retain_writers, 0, "retain lock left held");
    cr_assert_eq(fake.auth_live, 0, "an authentication exchange was never ended");
    fake_reset();
}

/* ---- client side: packets in, packets out ----------------------------------------- */

static enum engine_status send_raw(struct fake_conn *fc, const void *bytes, size_t len)
{
    return after(fc, engine_input(&fc->e, bytes, len));
}

static enum engine_status send_pkt(struct fake_conn *fc, const struct mqtt_packet *p)
{
    size_t n = codec_encoded_size(p, fc->ver);
    uint8_t *b = malloc(n);
    cr_assert_not_null(b);
    cr_assert_eq(codec_encode(b, p, fc->ver), n);
    enum engine_status st = send_raw(fc, b, n);
    free(b);
    return st;
}

/* The next packet the server sent, or false. */
static bool next_pkt(struct fake_conn *fc)
{
    if (fc->rx_off == fc->rx.len)
        fc->rx.len = fc->rx_off = 0;
    if (fc->e.out.len) {
        cr_assert_eq(buf_append(&fc->rx, fc->e.out.data, fc->e.out.len), 0);
        fc->e.out.len = 0;
    }
    if (fc->rx_off == fc->rx.len)
        return false;
    const uint8_t *p = fc->rx.data + fc->rx_off;
    size_t avail = fc->rx.len - fc->rx_off;
    struct mqtt_fixed fh;
    cr_assert_eq(codec_parse_fixed(p, avail, &fh), 0, "the server's output is not whole packets");
    size_t total = (size_t)fh.header_len + fh.remaining_len;
    cr_assert_leq(total, avail, "the server's output ends inside a packet");
    int rc = codec_decode(&fh, p + fh.header_len, fc->ver, &fc->pkt);
    cr_assert_eq(rc, 0, "the server sent a %s that does not decode (0x%02x)",
                 codec_type_name(fh.type), rc);
    fc->raw = p;
    fc->raw_len = total;
    fc->rx_off += total;
    return true;
}

static struct mqtt_packet *expect(struct fake_conn *fc, uint8_t type)
{
    cr_assert(next_pkt(fc), "no %s from the server", codec_type_name(type));
    cr_assert_eq(fc->pkt.type, type, "got %s, expected %s", codec_type_name(fc->pkt.type),
                 codec_type_name(type));
    return &fc->pkt;
}

static void expect_none(struct fake_conn *fc)
{
    if (next_pkt(fc))
        cr_assert_fail("unexpected %s from the server", codec_type_name(fc->pkt.type));
}

/* A 5.0 DISCONNECT with reason, and the connection closed. */
static void expect_disconnect(struct fake_conn *fc, uint8_t reason)
{
    struct mqtt_packet *p = expect(fc, MQTT_DISCONNECT);
    cr_assert_eq(p->u.disconnect.reason, reason, "DISCONNECT 0x%02x, expected 0x%02x",
                 p->u.disconnect.reason, reason);
    cr_assert(fc->closed, "DISCONNECT without a close");
    cr_assert_eq(fc->e.phase, ENGINE_CLOSED);
}

struct copt {
    uint8_t v; /* 0: 5.0 */
    const char *id;
    bool resume; /* clean start / clean session false */
    uint16_t keepalive;
    const char *user, *pass;
    bool has_expiry;
    uint32_t expiry;
    uint16_t receive_max;
    const char *method, *data;
    const char *will_topic, *will_payload;
    uint8_t will_qos;
};
#define COPT(...) (&(struct copt){__VA_ARGS__})

/* The CONNECT o describes (views into o's strings); sets the client's version. */
static void connect_packet(struct fake_conn *fc, const struct copt *o, struct mqtt_packet *p)
{
    memset(p, 0, sizeof(*p));
    p->type = MQTT_CONNECT;
    struct mqtt_connect *c = &p->u.connect;
    fc->ver = o->v ? o->v : V5;
    c->version = fc->ver;
    c->clean_start = !o->resume;
    c->keepalive_s = o->keepalive ? o->keepalive : 60;
    c->client_id = B(o->id ? o->id : "");
    if (o->user) {
        c->has_username = true;
        c->username = B(o->user);
    }
    if (o->pass) {
        c->has_password = true;
        c->password = B(o->pass);
    }
    if (o->has_expiry) {
        c->props.present |= BIT(SESSION_EXPIRY);
        c->props.session_expiry_s = o->expiry;
    }
    if (o->receive_max) {
        c->props.present |= BIT(RECEIVE_MAXIMUM);
        c->props.receive_maximum = o->receive_max;
    }
    if (o->method) {
        c->props.present |= BIT(AUTH_METHOD);
        c->props.auth_method = B(o->method);
    }
    if (o->data) {
        c->props.present |= BIT(AUTH_DATA);
        c->props.auth_data = B(o->data);
    }
    if (o->will_topic) {
        c->will_flag = true;
        c->will_qos = o->will_qos;
        c->will_topic = B(o->will_topic);
        c->will_payload = B(o->will_payload ? o->will_payload : "");
    }
}

static enum engine_status send_connect(struct fake_conn *fc, const struct copt *o)
{
    struct mqtt_packet p;
    connect_packet(fc, o, &p);
    return send_pkt(fc, &p);
}

/* A new connection accepted on shard, its CONNECT sent, everything pumped. */
static struct fake_conn *conn_on(unsigned shard, const struct copt *o)
{
    struct fake_conn *fc = fake_conn_new(&en[shard]);
    send_connect(fc, o);
    pump();
    return fc;
}

/* A connected client (CONNACK success read). */
static struct fake_conn *client(unsigned shard, const struct copt *o)
{
    struct fake_conn *fc = conn_on(shard, o);
    struct mqtt_packet *p = expect(fc, MQTT_CONNACK);
    cr_assert_eq(p->u.connack.reason, MQTT_RC_SUCCESS, "CONNACK 0x%02x", p->u.connack.reason);
    cr_assert_eq(fc->e.phase, ENGINE_ACTIVE);
    return fc;
}

/* A client id whose home is shard (the hash is keyed, so it is searched). */
static const char *home_id(char *buf, size_t cap, const char *prefix, unsigned shard)
{
    for (unsigned i = 0; i < 100000; i++) {
        int n = snprintf(buf, cap, "%s-%u", prefix, i);
        if (engine_client_hash(&g, (const uint8_t *)buf, (size_t)n) % nshards == shard)
            return buf;
    }
    cr_assert_fail("no client id homed on shard %u", shard);
    return NULL;
}

static void subscribe_id(struct fake_conn *fc, uint16_t pid, const char *filter, uint8_t qos,
                         bool has_subid, uint32_t subid)
{
    uint8_t entries[256];
    size_t fl = strlen(filter);
    cr_assert_lt(fl + 3, sizeof(entries));
    entries[0] = (uint8_t)(fl >> 8);
    entries[1] = (uint8_t)fl;
    memcpy(entries + 2, filter, fl);
    entries[2 + fl] = qos;
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_SUBSCRIBE;
    p.u.subscribe.packet_id = pid;
    p.u.subscribe.count = 1;
    p.u.subscribe.entries.ptr = entries;
    p.u.subscribe.entries.len = (uint32_t)(fl + 3);
    if (has_subid) {
        p.u.subscribe.props.present = BIT(SUBSCRIPTION_ID);
        p.u.subscribe.props.subscription_ids[0] = subid;
        p.u.subscribe.props.subscription_id_count = 1;
    }
    send_pkt(fc, &p);
}

static void subscribe(struct fake_conn *fc, uint16_t pid, const char *filter, uint8_t qos)
{
    subscribe_id(fc, pid, filter, qos, false, 0);
}

static void expect_suback(struct fake_conn *fc, uint16_t pid, uint8_t granted)
{
    struct mqtt_packet *p = expect(fc, MQTT_SUBACK);
    cr_assert_eq(p->u.suback.packet_id, pid);
    cr_assert_eq(p->u.suback.reasons.len, 1);
    cr_assert_eq(p->u.suback.reasons.ptr[0], granted, "SUBACK 0x%02x, expected 0x%02x",
                 p->u.suback.reasons.ptr[0], granted);
}

/* Subscribed, SUBACK read (after pumping: other shards acknowledge). */
static void subscribed(struct fake_conn *fc, const char *filter, uint8_t qos)
{
    subscribe(fc, 1, filter, qos);
    pump();
    expect_suback(fc, 1, qos);
}

struct popt {
    const char *topic, *payload;
    uint8_t qos;
    uint16_t pid;
    bool dup, retain;
    bool has_alias;
    uint16_t alias;
};
#define POPT(...) (&(struct popt){__VA_ARGS__})

static enum engine_status publish(struct fake_conn *fc, const struct popt *o)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.topic = B(o->topic);
    p.u.publish.payload = B(o->payload ? o->payload : "");
    p.u.publish.qos = o->qos;
    p.u.publish.packet_id = o->qos ? (o->pid ? o->pid : 1) : 0;
    p.u.publish.dup = o->dup;
    p.u.publish.retain = o->retain;
    if (o->has_alias) {
        p.u.publish.props.present = BIT(TOPIC_ALIAS);
        p.u.publish.props.topic_alias = o->alias;
    }
    return send_pkt(fc, &p);
}

static void send_ack(struct fake_conn *fc, uint8_t type, uint16_t pid)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = type;
    p.u.ack.packet_id = pid;
    send_pkt(fc, &p);
}

static void send_simple(struct fake_conn *fc, uint8_t type)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = type;
    send_pkt(fc, &p);
}

static struct mqtt_packet *expect_ack(struct fake_conn *fc, uint8_t type, uint16_t pid,
                                      uint8_t reason)
{
    struct mqtt_packet *p = expect(fc, type);
    cr_assert_eq(p->u.ack.packet_id, pid, "%s for id %u, expected %u", codec_type_name(type),
                 p->u.ack.packet_id, pid);
    cr_assert_eq(p->u.ack.reason, reason, "%s 0x%02x, expected 0x%02x", codec_type_name(type),
                 p->u.ack.reason, reason);
    return p;
}

/* A PUBLISH on topic with payload at qos; returns its packet id. */
static uint16_t expect_publish(struct fake_conn *fc, const char *topic, const char *payload,
                               uint8_t qos)
{
    struct mqtt_packet *p = expect(fc, MQTT_PUBLISH);
    const struct mqtt_publish *pub = &p->u.publish;
    cr_assert(pub->topic.len == strlen(topic) && memcmp(pub->topic.ptr, topic, pub->topic.len) == 0,
              "PUBLISH on \"%.*s\", expected \"%s\"", (int)pub->topic.len,
              (const char *)pub->topic.ptr, topic);
    cr_assert(pub->payload.len == strlen(payload) &&
                  memcmp(pub->payload.ptr, payload, pub->payload.len) == 0,
              "PUBLISH of \"%.*s\", expected \"%s\"", (int)pub->payload.len,
              (const char *)pub->payload.ptr, payload);
    cr_assert_eq(pub->qos, qos);
    if (qos)
        cr_assert_neq(pub->packet_id, 0);
    return pub->packet_id;
}

static bool bytes_are(struct mqtt_bytes b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0;
}

/* ---- CONNECT and CONNACK ------------------------------------------------------------ */

Test(engine, v311_clean_session_connack_accepted, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.v = V4, .id = "a"));
    expect(c, MQTT_CONNACK);
    const uint8_t wire[] = {0x20, 0x02, 0x00, 0x00};
    cr_assert_eq(c->raw_len, sizeof(wire));
    cr_assert_arr_eq(c->raw, wire, sizeof(wire), "3.1.1 CONNACK: accepted, no session present");
    cr_assert(fake_log_has("connected from"));
}

Test(engine, v311_persistent_session_present_on_reconnect, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.v = V4, .id = "p", .resume = true));
    cr_assert_not(expect(c, MQTT_CONNACK)->u.connack.session_present, "no session before");
    send_simple(c, MQTT_DISCONNECT);
    cr_assert(c->closed);
    gone(c);
    struct fake_conn *c2 = conn_on(0, COPT(.v = V4, .id = "p", .resume = true));
    struct mqtt_packet *p = expect(c2, MQTT_CONNACK);
    cr_assert_eq(p->u.connack.reason, 0);
    cr_assert(p->u.connack.session_present, "the session was kept");
}

Test(engine, v311_clean_session_discards_the_old_session, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.v = V4, .id = "p", .resume = true));
    send_simple(c, MQTT_DISCONNECT);
    gone(c);
    struct fake_conn *c2 = conn_on(0, COPT(.v = V4, .id = "p"));
    cr_assert_not(expect(c2, MQTT_CONNACK)->u.connack.session_present);
}

Test(engine, v5_session_present_with_session_expiry, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c =
        conn_on(0, COPT(.id = "s", .resume = true, .has_expiry = true, .expiry = 300));
    cr_assert_not(expect(c, MQTT_CONNACK)->u.connack.session_present);
    send_simple(c, MQTT_DISCONNECT);
    gone(c);
    struct fake_conn *c2 =
        conn_on(0, COPT(.id = "s", .resume = true, .has_expiry = true, .expiry = 300));
    cr_assert(expect(c2, MQTT_CONNACK)->u.connack.session_present);
}

Test(engine, v5_session_without_expiry_ends_at_disconnect, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "s", .resume = true));
    send_simple(c, MQTT_DISCONNECT);
    gone(c);
    cr_assert_eq(atomic_load(&g.session_count), 0);
    struct fake_conn *c2 = conn_on(0, COPT(.id = "s", .resume = true));
    cr_assert_not(expect(c2, MQTT_CONNACK)->u.connack.session_present);
}

Test(engine, v5_empty_client_id_is_assigned, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.id = ""));
    struct mqtt_packet *p = expect(c, MQTT_CONNACK);
    cr_assert_eq(p->u.connack.reason, 0);
    cr_assert(p->u.connack.props.present & BIT(ASSIGNED_CLIENT_ID));
    struct mqtt_bytes id = p->u.connack.props.assigned_client_id;
    cr_assert_gt(id.len, 7);
    cr_assert_arr_eq(id.ptr, "ringmq-", 7);
    size_t len;
    const uint8_t *mine = engine_conn_client_id(&c->e, &len);
    cr_assert(len == id.len && memcmp(mine, id.ptr, len) == 0, "the session has the assigned id");
}

Test(engine, v311_empty_client_id_without_clean_session_refused, .init = one_shard,
     .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.v = V4, .id = "", .resume = true));
    expect(c, MQTT_CONNACK);
    const uint8_t wire[] = {0x20, 0x02, 0x00, MQTT_CONNACK_V311_ID_REJECTED};
    cr_assert_arr_eq(c->raw, wire, sizeof(wire), "return code 2, identifier rejected");
    cr_assert(c->closed);
    cr_assert_eq(atomic_load(&g.session_count), 0);
}

Test(engine, v311_empty_client_id_with_clean_session_accepted, .init = one_shard, .fini = teardown)
{
    client(0, COPT(.v = V4, .id = ""));
}

Test(engine, v5_bad_password_is_0x86, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.id = "a", .user = "u", .pass = "wrong"));
    struct mqtt_packet *p = expect(c, MQTT_CONNACK);
    cr_assert_eq(p->u.connack.reason, MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    cr_assert_not(p->u.connack.session_present);
    cr_assert(c->closed);
    expect_none(c);
    cr_assert_eq(atomic_load(&g.session_count), 0, "no session for a refused client");
}

Test(engine, v311_bad_password_is_return_code_4, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.v = V4, .id = "a", .user = "u", .pass = "wrong"));
    expect(c, MQTT_CONNACK);
    const uint8_t wire[] = {0x20, 0x02, 0x00, MQTT_CONNACK_V311_BAD_CREDENTIALS};
    cr_assert_arr_eq(c->raw, wire, sizeof(wire));
    cr_assert(c->closed);
}

Test(engine, good_password_is_accepted_and_kept_as_identity, .init = one_shard, .fini = teardown)
{
    fake.anonymous = false;
    struct fake_conn *c = client(0, COPT(.id = "a", .user = "u", .pass = "p"));
    cr_assert_eq(c->e.who.username_len, 1);
    cr_assert_str_eq((const char *)c->e.who.username, "u");
    cr_assert(c->e.authenticated);
}

Test(engine, anonymous_refused_when_not_allowed, .init = one_shard, .fini = teardown)
{
    fake.anonymous = false;
    struct fake_conn *c = conn_on(0, COPT(.id = "a"));
    cr_assert_eq(expect(c, MQTT_CONNACK)->u.connack.reason, MQTT_RC_NOT_AUTHORIZED);
    cr_assert(c->closed);
}

Test(engine, first_packet_not_connect_closes, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = fake_conn_new(&en[0]);
    c->ver = V5;
    cr_assert_eq(send_raw(c, (const uint8_t[]){0xC0, 0x00}, 2), ENGINE_CLOSING);
    cr_assert(c->closed);
    expect_none(c); /* no CONNACK, no DISCONNECT: nothing was negotiated */
}

Test(engine, second_connect_closes_with_protocol_error, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "a"));
    cr_assert_eq(send_connect(c, COPT(.id = "a")), ENGINE_CLOSING);
    expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
}

Test(engine, no_connect_within_connect_timeout_closes, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = fake_conn_new(&en[0]);
    run_timers(1000 + cfg.connect_timeout_ms);
    cr_assert_not(c->closed, "closed at the deadline, not before");
    run_timers(1000 + cfg.connect_timeout_ms + 1);
    cr_assert(c->closed);
}

/* ---- SUBSCRIBE and PUBLISH ------------------------------------------------------------ */

Test(engine, publish_reaches_subscriber_on_the_same_engine, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribe(s, 1, "a/+", 0);
    expect_suback(s, 1, 0); /* one shard: nobody to wait for */
    publish(p, POPT(.topic = "a/b", .payload = "hi"));
    expect_publish(s, "a/b", "hi", 0);
    expect_none(s);
    expect_none(p);
}

Test(engine, publish_not_matching_is_not_delivered, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "a/+", 0);
    publish(p, POPT(.topic = "a/b/c", .payload = "hi"));
    publish(p, POPT(.topic = "b/b", .payload = "hi"));
    expect_none(s);
}

Test(engine, publish_reaches_subscriber_on_another_engine, .init = two_shards, .fini = teardown)
{
    char sid[32], pid[32];
    struct fake_conn *s = client(0, COPT(.id = home_id(sid, sizeof(sid), "sub", 0)));
    struct fake_conn *p = client(1, COPT(.id = home_id(pid, sizeof(pid), "pub", 1)));
    cr_assert_eq(s->e.en, &en[0]);
    cr_assert_eq(p->e.en, &en[1]);
    subscribe(s, 5, "x/#", 1);
    expect_none(s); /* the SUBACK waits for shard 1 to apply the route */
    cr_assert_eq(fake_queue_len(0, 1), 1, "the route change is posted to shard 1");
    cr_assert_eq(s->holds, 1, "the waiting SUBACK holds the connection");
    pump();
    expect_suback(s, 5, 1);
    cr_assert_eq(s->holds, 0);
    publish(p, POPT(.topic = "x/y", .payload = "over", .qos = 1, .pid = 3));
    expect_ack(p, MQTT_PUBACK, 3, MQTT_RC_SUCCESS);
    cr_assert_eq(fake_queue_len(1, 0), 1, "the message is posted to shard 0");
    expect_none(s);
    pump();
    expect_publish(s, "x/y", "over", 1);
}

Test(engine, suback_waits_for_every_other_engine, .init = three_shards, .fini = teardown)
{
    char sid[32];
    struct fake_conn *s = client(0, COPT(.id = home_id(sid, sizeof(sid), "sub", 0)));
    subscribe(s, 9, "t", 0);
    cr_assert_eq(fake_queue_len(0, 1), 1);
    cr_assert_eq(fake_queue_len(0, 2), 1);
    cr_assert(deliver_one(0, 1));
    cr_assert(deliver_one(1, 0)); /* shard 1's acknowledgement */
    expect_none(s);               /* shard 2 has not applied it yet */
    cr_assert(deliver_one(0, 2));
    cr_assert(deliver_one(2, 0));
    expect_suback(s, 9, 0);
}

/* After every acknowledgement of its route changes is in, a shard owes no
 * barrier: a SUBSCRIBE that changes no route is answered at once. */
Test(engine, suback_without_route_change_is_immediate_once_acks_are_in, .init = two_shards,
     .fini = teardown)
{
    char a[32], b[32];
    struct fake_conn *s1 = client(0, COPT(.id = home_id(a, sizeof(a), "a", 0)));
    struct fake_conn *s2 = client(0, COPT(.id = home_id(b, sizeof(b), "b", 0)));
    subscribed(s1, "t", 0);
    cr_assert_eq(en[0].route_acks_due, 0, "route_acks_due %u after every ack came back",
                 (unsigned)en[0].route_acks_due);
    subscribe(s2, 2, "t", 0); /* shard 0 routes "t" already */
    cr_assert_eq(fake_queue_len(0, 1), 0, "no barrier is needed");
    expect_suback(s2, 2, 0);
}

Test(engine, unsubscribe_stops_delivery, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "u", 0);
    uint8_t entry[] = {0, 1, 'u'};
    struct mqtt_packet up;
    memset(&up, 0, sizeof(up));
    up.type = MQTT_UNSUBSCRIBE;
    up.u.subscribe.packet_id = 4;
    up.u.subscribe.count = 1;
    up.u.subscribe.entries.ptr = entry;
    up.u.subscribe.entries.len = sizeof(entry);
    send_pkt(s, &up);
    struct mqtt_packet *ua = expect(s, MQTT_UNSUBACK);
    cr_assert_eq(ua->u.suback.packet_id, 4);
    cr_assert_eq(ua->u.suback.reasons.len, 1);
    cr_assert_eq(ua->u.suback.reasons.ptr[0], MQTT_RC_SUCCESS);
    publish(p, POPT(.topic = "u", .payload = "x", .qos = 1, .pid = 1));
    expect_ack(p, MQTT_PUBACK, 1, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
    expect_none(s);
}

Test(engine, retained_message_follows_suback, .init = one_shard, .fini = teardown)
{
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    publish(p, POPT(.topic = "r/1", .payload = "kept", .retain = true));
    cr_assert_gt(fake.retain_locks, 0, "the store is written under its lock");
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    subscribe(s, 1, "r/#", 1);
    pump();
    expect_suback(s, 1, 1);
    struct mqtt_packet *m = expect(s, MQTT_PUBLISH);
    cr_assert(m->u.publish.retain, "a retained message for a SUBSCRIBE has retain set");
    cr_assert(bytes_are(m->u.publish.payload, "kept"));
    cr_assert_eq(m->u.publish.qos, 0);
    cr_assert_eq(fake.retain_readers + fake.retain_writers, 0);
}

/* ---- QoS 1 and 2 ----------------------------------------------------------------------- */

Test(engine, qos1_both_ways, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "q", 1);
    publish(p, POPT(.topic = "q", .payload = "m", .qos = 1, .pid = 7));
    expect_ack(p, MQTT_PUBACK, 7, MQTT_RC_SUCCESS);
    uint16_t id = expect_publish(s, "q", "m", 1);
    cr_assert_eq(s->e.client->s.inflight_live, 1);
    send_ack(s, MQTT_PUBACK, id);
    cr_assert_eq(s->e.client->s.inflight_live, 0, "PUBACK frees the in-flight slot");
    expect_none(s);
}

Test(engine, qos1_v311_both_ways, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.v = V4, .id = "sub"));
    struct fake_conn *p = client(0, COPT(.v = V4, .id = "pub"));
    subscribed(s, "q", 1);
    publish(p, POPT(.topic = "q", .payload = "m", .qos = 1, .pid = 7));
    expect(p, MQTT_PUBACK);
    const uint8_t wire[] = {0x40, 0x02, 0x00, 0x07};
    cr_assert_arr_eq(p->raw, wire, sizeof(wire));
    uint16_t id = expect_publish(s, "q", "m", 1);
    send_ack(s, MQTT_PUBACK, id);
    cr_assert_eq(s->e.client->s.inflight_live, 0);
}

Test(engine, qos1_puback_opens_the_receive_maximum_window, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub", .receive_max = 1));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "q", 1);
    publish(p, POPT(.topic = "q", .payload = "1", .qos = 1, .pid = 1));
    publish(p, POPT(.topic = "q", .payload = "2", .qos = 1, .pid = 2));
    uint16_t id = expect_publish(s, "q", "1", 1);
    expect_none(s); /* the window of one is full */
    send_ack(s, MQTT_PUBACK, id);
    expect_publish(s, "q", "2", 1);
}

Test(engine, qos_is_the_lower_of_publish_and_subscription, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "q", 0);
    publish(p, POPT(.topic = "q", .payload = "m", .qos = 2, .pid = 1));
    expect_ack(p, MQTT_PUBREC, 1, MQTT_RC_SUCCESS);
    expect_publish(s, "q", "m", 0);
}

Test(engine, qos2_from_publisher_is_delivered_once, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "q", 2);
    publish(p, POPT(.topic = "q", .payload = "once", .qos = 2, .pid = 9));
    expect_ack(p, MQTT_PUBREC, 9, MQTT_RC_SUCCESS);
    expect_publish(s, "q", "once", 2);
    /* A resend before PUBREL: acknowledged again, not delivered twice. */
    publish(p, POPT(.topic = "q", .payload = "once", .qos = 2, .pid = 9, .dup = true));
    expect_ack(p, MQTT_PUBREC, 9, MQTT_RC_SUCCESS);
    expect_none(s);
    send_ack(p, MQTT_PUBREL, 9);
    expect_ack(p, MQTT_PUBCOMP, 9, MQTT_RC_SUCCESS);
    /* The id is free again: the same id is a new message now. */
    publish(p, POPT(.topic = "q", .payload = "twice", .qos = 2, .pid = 9));
    expect_ack(p, MQTT_PUBREC, 9, MQTT_RC_SUCCESS);
    expect_publish(s, "q", "twice", 2);
}

Test(engine, qos2_pubrel_for_unknown_id_is_not_found, .init = one_shard, .fini = teardown)
{
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    send_ack(p, MQTT_PUBREL, 33);
    expect_ack(p, MQTT_PUBCOMP, 33, MQTT_RC_PACKET_ID_NOT_FOUND);
}

Test(engine, qos2_to_subscriber_pubrec_pubrel_pubcomp, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub", .receive_max = 1));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "q", 2);
    publish(p, POPT(.topic = "q", .payload = "a", .qos = 2, .pid = 1));
    publish(p, POPT(.topic = "q", .payload = "b", .qos = 2, .pid = 2));
    uint16_t id = expect_publish(s, "q", "a", 2);
    expect_none(s);
    send_ack(s, MQTT_PUBREC, id);
    expect_ack(s, MQTT_PUBREL, id, MQTT_RC_SUCCESS);
    expect_none(s); /* still in flight until PUBCOMP */
    send_ack(s, MQTT_PUBCOMP, id);
    expect_publish(s, "q", "b", 2);
}

/* ---- sessions ---------------------------------------------------------------------------- */

Test(engine, takeover_v5_old_connection_gets_0x8e, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c1 = client(0, COPT(.id = "same"));
    struct fake_conn *c2 = conn_on(0, COPT(.id = "same"));
    expect_disconnect(c1, MQTT_RC_SESSION_TAKEN_OVER);
    cr_assert_null(c1->e.client, "the old connection speaks for nobody now");
    struct mqtt_packet *p = expect(c2, MQTT_CONNACK);
    cr_assert_eq(p->u.connack.reason, 0);
    cr_assert_eq(c2->e.client->conn, &c2->e);
    cr_assert_eq(atomic_load(&g.session_count), 1);
}

Test(engine, takeover_v311_old_connection_closed_silently, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c1 = client(0, COPT(.v = V4, .id = "same", .resume = true));
    struct fake_conn *c2 = conn_on(0, COPT(.v = V4, .id = "same", .resume = true));
    cr_assert(c1->closed);
    expect_none(c1); /* 3.1.1 has no server DISCONNECT */
    struct mqtt_packet *p = expect(c2, MQTT_CONNACK);
    cr_assert(p->u.connack.session_present, "a persistent session is taken over, not ended");
}

Test(engine, session_resume_delivers_message_queued_while_offline, .init = one_shard,
     .fini = teardown)
{
    struct fake_conn *s =
        client(0, COPT(.id = "sr", .resume = true, .has_expiry = true, .expiry = 300));
    subscribed(s, "q/t", 1);
    send_simple(s, MQTT_DISCONNECT);
    gone(s);
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    publish(p, POPT(.topic = "q/t", .payload = "while away", .qos = 1, .pid = 1));
    expect_ack(p, MQTT_PUBACK, 1, MQTT_RC_SUCCESS);
    struct fake_conn *s2 =
        conn_on(0, COPT(.id = "sr", .resume = true, .has_expiry = true, .expiry = 300));
    struct mqtt_packet *ca = expect(s2, MQTT_CONNACK);
    cr_assert_eq(ca->u.connack.reason, 0);
    cr_assert(ca->u.connack.session_present);
    expect_publish(s2, "q/t", "while away", 1);
}

Test(engine, session_resume_resends_unacknowledged_with_dup, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s =
        client(0, COPT(.id = "sr", .resume = true, .has_expiry = true, .expiry = 300));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "q", 1);
    publish(p, POPT(.topic = "q", .payload = "m", .qos = 1, .pid = 1));
    uint16_t id = expect_publish(s, "q", "m", 1);
    gone(s); /* lost before its PUBACK */
    struct fake_conn *s2 =
        conn_on(0, COPT(.id = "sr", .resume = true, .has_expiry = true, .expiry = 300));
    cr_assert(expect(s2, MQTT_CONNACK)->u.connack.session_present);
    cr_assert_eq(expect_publish(s2, "q", "m", 1), id, "the same packet id");
    cr_assert(s2->pkt.u.publish.dup, "a resend has DUP set");
}

Test(engine, session_expires_after_its_interval, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s =
        client(0, COPT(.id = "e", .resume = true, .has_expiry = true, .expiry = 10));
    send_simple(s, MQTT_DISCONNECT);
    gone(s);
    run_timers(1000 + 9999);
    cr_assert_eq(atomic_load(&g.session_count), 1);
    run_timers(1000 + 10000);
    cr_assert_eq(atomic_load(&g.session_count), 0);
    cr_assert(fake_log_has("session expired"));
}

Test(engine, connect_homed_elsewhere_hands_off_and_completes_there, .init = two_shards,
     .fini = teardown)
{
    char id[32];
    home_id(id, sizeof(id), "far", 1);
    struct fake_conn *c = fake_conn_new(&en[0]);
    /* The CONNECT and a PINGREQ behind it in one read. */
    struct mqtt_packet cp;
    connect_packet(c, COPT(.id = id), &cp);
    uint8_t wire[256];
    size_t n = codec_encoded_size(&cp, c->ver);
    cr_assert_lt(n + 2, sizeof(wire));
    codec_encode(wire, &cp, c->ver);
    wire[n] = 0xC0;
    wire[n + 1] = 0x00;
    cr_assert_eq(send_raw(c, wire, n + 2), ENGINE_HANDOFF);
    cr_assert_eq(c->e.phase, ENGINE_PLACED);
    cr_assert_eq(c->e.home, 1);
    expect_none(c); /* no CONNACK before the home shard has the session */
    cr_assert_eq(atomic_load(&g.session_count), 0);
    pump();
    cr_assert_eq(c->e.en, &en[1]);
    cr_assert_eq(c->e.phase, ENGINE_ACTIVE);
    cr_assert_eq(expect(c, MQTT_CONNACK)->u.connack.reason, 0);
    expect(c, MQTT_PINGRESP); /* what came behind the CONNECT */
    cr_assert_eq(en[1].client_count, 1);
    cr_assert_eq(en[0].client_count, 0);
}

Test(engine, takeover_of_a_session_homed_on_another_engine, .init = two_shards, .fini = teardown)
{
    char id[32];
    home_id(id, sizeof(id), "far", 1);
    struct fake_conn *c1 = client(0, COPT(.id = id));
    struct fake_conn *c2 = client(0, COPT(.id = id));
    cr_assert_eq(c1->e.en, &en[1]);
    cr_assert_eq(c2->e.en, &en[1]);
    expect_disconnect(c1, MQTT_RC_SESSION_TAKEN_OVER);
    cr_assert_eq(en[1].client_count, 1);
}

Test(engine, will_is_published_when_the_connection_is_lost, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    subscribed(s, "will/#", 1);
    struct fake_conn *w =
        client(0, COPT(.id = "w", .will_topic = "will/w", .will_payload = "bye", .will_qos = 1));
    gone(w); /* no DISCONNECT */
    expect_publish(s, "will/w", "bye", 1);
}

Test(engine, will_is_discarded_on_normal_disconnect, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    subscribed(s, "will/#", 1);
    struct fake_conn *w = client(0, COPT(.id = "w", .will_topic = "will/w", .will_payload = "bye"));
    send_simple(w, MQTT_DISCONNECT);
    gone(w);
    expect_none(s);
}

Test(engine, will_on_takeover_is_published, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    subscribed(s, "will/#", 0);
    client(0, COPT(.id = "w", .will_topic = "will/w", .will_payload = "old"));
    client(0, COPT(.id = "w"));
    expect_publish(s, "will/w", "old", 0);
}

Test(engine, peer_leaving_while_its_suback_waits, .init = two_shards, .fini = teardown)
{
    char sid[32];
    struct fake_conn *s = client(0, COPT(.id = home_id(sid, sizeof(sid), "sub", 0)));
    subscribe(s, 5, "x", 0);
    cr_assert_eq(s->holds, 1);
    gone(s);
    cr_assert_eq(s->holds, 1, "the connection stays until the acknowledgement");
    pump();
    cr_assert_eq(s->holds, 0, "released once the SUBACK is settled");
    expect_none(s);
}

/* ---- shared subscriptions -------------------------------------------------------------- */

/* Which of a and b got a PUBLISH now (and acknowledges it): 'a', 'b' or 0. */
static char who_got(struct fake_conn *a, struct fake_conn *b, char *payload)
{
    struct fake_conn *v[2] = {a, b};
    char got = 0;
    for (int i = 0; i < 2; i++) {
        while (next_pkt(v[i])) {
            cr_assert_eq(v[i]->pkt.type, MQTT_PUBLISH);
            cr_assert_eq(got, 0, "one message went to two members");
            got = i ? 'b' : 'a';
            const struct mqtt_publish *pub = &v[i]->pkt.u.publish;
            if (payload)
                snprintf(payload, 8, "%.*s", (int)pub->payload.len, (const char *)pub->payload.ptr);
            if (pub->qos)
                send_ack(v[i], MQTT_PUBACK, pub->packet_id);
        }
    }
    return got;
}

Test(engine, shared_subscription_alternates_between_members, .init = one_shard, .fini = teardown)
{
    struct fake_conn *a = client(0, COPT(.id = "a"));
    struct fake_conn *b = client(0, COPT(.id = "b"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(a, "$share/g/s/t", 1);
    subscribed(b, "$share/g/s/t", 1);
    char seq[5] = {0};
    for (int i = 0; i < 4; i++) {
        publish(p, POPT(.topic = "s/t", .payload = "m", .qos = 1, .pid = (uint16_t)(i + 1)));
        expect_ack(p, MQTT_PUBACK, (uint16_t)(i + 1), MQTT_RC_SUCCESS);
        seq[i] = who_got(a, b, NULL);
        cr_assert_neq(seq[i], 0, "message %d went to nobody", i);
    }
    cr_assert(seq[0] != seq[1] && seq[1] != seq[2] && seq[2] != seq[3], "members alternate, got %s",
              seq);
}

Test(engine, shared_subscription_across_engines, .init = two_shards, .fini = teardown)
{
    char ia[32], ib[32], ip[32];
    struct fake_conn *a = client(0, COPT(.id = home_id(ia, sizeof(ia), "a", 0)));
    struct fake_conn *b = client(1, COPT(.id = home_id(ib, sizeof(ib), "b", 1)));
    struct fake_conn *p = client(0, COPT(.id = home_id(ip, sizeof(ip), "p", 0)));
    subscribed(a, "$share/g/t", 0);
    subscribed(b, "$share/g/t", 0);
    int got_a = 0, got_b = 0;
    for (int i = 0; i < 4; i++) {
        publish(p, POPT(.topic = "t", .payload = "m"));
        pump();
        char w = who_got(a, b, NULL);
        cr_assert_neq(w, 0, "message %d went to nobody", i);
        got_a += w == 'a';
        got_b += w == 'b';
    }
    cr_assert_eq(got_a, 2, "a got %d of 4", got_a);
    cr_assert_eq(got_b, 2, "b got %d of 4", got_b);
}

Test(engine, shared_member_leaving_hands_its_messages_to_the_other, .init = one_shard,
     .fini = teardown)
{
    struct fake_conn *a = client(0, COPT(.id = "a", .receive_max = 1));
    struct fake_conn *b = client(0, COPT(.id = "b", .receive_max = 1));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(a, "$share/g/t", 1);
    subscribed(b, "$share/g/t", 1);
    const char *payloads[] = {"1", "2", "3", "4"};
    for (int i = 0; i < 4; i++)
        publish(p, POPT(.topic = "t", .payload = payloads[i], .qos = 1, .pid = (uint16_t)(i + 1)));
    /* Each has one in flight (window 1), one more waits in each session. */
    cr_assert(next_pkt(a));
    cr_assert_eq(a->pkt.type, MQTT_PUBLISH);
    expect_none(a);
    uint16_t bid = expect(b, MQTT_PUBLISH)->u.publish.packet_id;
    char first_b = (char)b->pkt.u.publish.payload.ptr[0];
    expect_none(b);
    cr_assert_eq(a->e.client->s.queued + b->e.client->s.queued, 2);
    gone(a); /* a leaves without acknowledging: its two go to b */
    cr_assert_eq(b->e.client->s.queued, 3, "b queues its own and a's two");
    bool seen[4] = {false};
    seen[first_b - '1'] = true;
    send_ack(b, MQTT_PUBACK, bid);
    for (int i = 0; i < 3; i++) {
        struct mqtt_packet *m = expect(b, MQTT_PUBLISH);
        cr_assert_eq(m->u.publish.payload.len, 1);
        int k = m->u.publish.payload.ptr[0] - '1';
        cr_assert(k >= 0 && k < 4 && !seen[k], "message %d twice", k + 1);
        seen[k] = true;
        send_ack(b, MQTT_PUBACK, m->u.publish.packet_id);
    }
    expect_none(b);
    for (int k = 0; k < 4; k++)
        cr_assert(seen[k], "message %d lost", k + 1);
}

/* ---- enhanced authentication and password checks ------------------------------------------ */

static void send_auth(struct fake_conn *fc, uint8_t reason, const char *method, const char *data)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_AUTH;
    p.u.disconnect.reason = reason;
    p.u.disconnect.props.present = BIT(AUTH_METHOD);
    p.u.disconnect.props.auth_method = B(method);
    if (data) {
        p.u.disconnect.props.present |= BIT(AUTH_DATA);
        p.u.disconnect.props.auth_data = B(data);
    }
    send_pkt(fc, &p);
}

Test(engine, enhanced_auth_two_steps_then_connack_with_method, .init = one_shard, .fini = teardown)
{
    fake.anonymous = false;
    struct fake_conn *c = conn_on(0, COPT(.id = "x", .method = "FAKE-2STEP", .data = "hello"));
    struct mqtt_packet *a = expect(c, MQTT_AUTH);
    cr_assert_eq(a->u.disconnect.reason, MQTT_RC_CONTINUE_AUTHENTICATION);
    cr_assert(bytes_are(a->u.disconnect.props.auth_method, "FAKE-2STEP"));
    cr_assert(bytes_are(a->u.disconnect.props.auth_data, "chal"));
    cr_assert_eq(c->e.phase, ENGINE_AUTH);
    cr_assert_eq(fake.auth_live, 1);
    send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, "FAKE-2STEP", "resp");
    struct mqtt_packet *ca = expect(c, MQTT_CONNACK);
    cr_assert_eq(ca->u.connack.reason, MQTT_RC_SUCCESS);
    cr_assert(bytes_are(ca->u.connack.props.auth_method, "FAKE-2STEP"));
    cr_assert(bytes_are(ca->u.connack.props.auth_data, "ok"), "the server's final data");
    cr_assert_eq(fake.auth_live, 0, "the exchange ended");
    cr_assert_eq(fake.logins, 0, "no password check besides the exchange");
    cr_assert_str_eq((const char *)c->e.who.username, "u");
}

Test(engine, enhanced_auth_failing_step_is_not_authorized, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.id = "x", .method = "FAKE-2STEP", .data = "hello"));
    expect(c, MQTT_AUTH);
    send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, "FAKE-2STEP", "nope");
    cr_assert_eq(expect(c, MQTT_CONNACK)->u.connack.reason, MQTT_RC_NOT_AUTHORIZED);
    cr_assert(c->closed);
    cr_assert_eq(fake.auth_live, 0);
    cr_assert_eq(atomic_load(&g.session_count), 0);
}

Test(engine, enhanced_auth_failing_first_step_is_not_authorized, .init = one_shard,
     .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.id = "x", .method = "FAKE-2STEP", .data = "bye"));
    cr_assert_eq(expect(c, MQTT_CONNACK)->u.connack.reason, MQTT_RC_NOT_AUTHORIZED);
    cr_assert(c->closed);
}

Test(engine, enhanced_auth_unknown_method_is_0x8c, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.id = "x", .method = "OTHER", .data = "hello"));
    cr_assert_eq(expect(c, MQTT_CONNACK)->u.connack.reason, MQTT_RC_BAD_AUTHENTICATION_METHOD);
    cr_assert(c->closed);
}

Test(engine, enhanced_auth_packet_other_than_auth_is_protocol_error, .init = one_shard,
     .fini = teardown)
{
    struct fake_conn *c = conn_on(0, COPT(.id = "x", .method = "FAKE-2STEP", .data = "hello"));
    expect(c, MQTT_AUTH);
    send_simple(c, MQTT_PINGREQ);
    cr_assert_eq(expect(c, MQTT_CONNACK)->u.connack.reason, MQTT_RC_PROTOCOL_ERROR);
    cr_assert(c->closed);
    cr_assert_eq(fake.auth_live, 0);
}

/* A connection whose TLS layer kept a tls-exporter value (bound) or not. */
static struct fake_conn *conn_bound(bool bound, const char *method, const char *data)
{
    struct fake_conn *fc = fake_conn_new(&en[0]);
    fc->e.who.tls_exporter_ok = bound;
    send_connect(fc, COPT(.id = "x", .method = method, .data = data));
    pump();
    return fc;
}

#define PLUS "FAKE-2STEP-PLUS"

Test(engine, enhanced_auth_tls_bound_method_without_binding_is_0x8c, .init = one_shard,
     .fini = teardown)
{
    /* SCRAM-SHA-512-PLUS over plain TCP: not offered there, no step runs. */
    struct fake_conn *c = conn_bound(false, PLUS, "hello");
    cr_assert_eq(expect(c, MQTT_CONNACK)->u.connack.reason, MQTT_RC_BAD_AUTHENTICATION_METHOD);
    cr_assert(c->closed);
    cr_assert_eq(fake.auth_steps, 0);
}

/* Also again as re-authentication, and a failing one ends the connection. */
Test(engine, enhanced_auth_tls_bound_method_with_binding_runs, .init = one_shard, .fini = teardown)
{
    fake.anonymous = false;
    struct fake_conn *c = conn_bound(true, PLUS, "hello");
    struct mqtt_packet *a = expect(c, MQTT_AUTH);
    cr_assert(bytes_are(a->u.disconnect.props.auth_method, PLUS), "[MQTT-4.12.0-5]");
    cr_assert_eq(fake.auth_step_method, FAKE_AUTH_METHOD_PLUS);
    send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, PLUS, "resp");
    struct mqtt_packet *ca = expect(c, MQTT_CONNACK);
    cr_assert_eq(ca->u.connack.reason, MQTT_RC_SUCCESS);
    cr_assert(bytes_are(ca->u.connack.props.auth_method, PLUS));
    send_auth(c, MQTT_RC_REAUTHENTICATE, PLUS, "hello"); /* [MQTT-4.12.1-1] */
    cr_assert(bytes_are(expect(c, MQTT_AUTH)->u.disconnect.props.auth_data, "chal"));
    send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, PLUS, "resp");
    a = expect(c, MQTT_AUTH);
    cr_assert_eq(a->u.disconnect.reason, MQTT_RC_SUCCESS);
    cr_assert(bytes_are(a->u.disconnect.props.auth_method, PLUS));
    cr_assert_eq(fake.auth_steps, 4);
    send_auth(c, MQTT_RC_REAUTHENTICATE, PLUS, "hello");
    expect(c, MQTT_AUTH);
    send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, PLUS, "nope");
    expect_disconnect(c, MQTT_RC_NOT_AUTHORIZED);
}

Test(engine, login_pending_then_verified_success, .init = one_shard, .fini = teardown)
{
    fake.login_pending = true;
    struct fake_conn *c = conn_on(0, COPT(.id = "v", .user = "u", .pass = "p"));
    cr_assert(c->login_waits);
    cr_assert_eq(c->e.phase, ENGINE_VERIFY);
    send_simple(c, MQTT_PINGREQ); /* kept until the check is back */
    expect_none(c);
    after(c, engine_verified(&c->e, MQTT_RC_SUCCESS));
    pump();
    cr_assert_eq(expect(c, MQTT_CONNACK)->u.connack.reason, 0);
    expect(c, MQTT_PINGRESP);
    cr_assert_eq(c->e.phase, ENGINE_ACTIVE);
}

Test(engine, login_pending_then_verified_failure, .init = one_shard, .fini = teardown)
{
    fake.login_pending = true;
    struct fake_conn *c = conn_on(0, COPT(.id = "v", .user = "u", .pass = "bad"));
    expect_none(c);
    cr_assert_eq(after(c, engine_verified(&c->e, MQTT_RC_BAD_USERNAME_OR_PASSWORD)),
                 ENGINE_CLOSING);
    cr_assert_eq(expect(c, MQTT_CONNACK)->u.connack.reason, MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    cr_assert(c->closed);
    cr_assert_eq(atomic_load(&g.session_count), 0);
}

Test(engine, login_verified_after_the_peer_left_does_nothing, .init = one_shard, .fini = teardown)
{
    fake.login_pending = true;
    struct fake_conn *c = conn_on(0, COPT(.id = "v", .user = "u", .pass = "p"));
    gone(c);
    cr_assert_eq(engine_verified(&c->e, MQTT_RC_SUCCESS), ENGINE_CLOSING);
    expect_none(c);
    cr_assert_eq(atomic_load(&g.session_count), 0);
}

Test(engine, login_pending_past_connect_timeout_closes, .init = one_shard, .fini = teardown)
{
    fake.login_pending = true;
    struct fake_conn *c = conn_on(0, COPT(.id = "v", .user = "u", .pass = "p"));
    run_timers(1000 + cfg.connect_timeout_ms + 1);
    cr_assert(c->closed);
    cr_assert_eq(engine_verified(&c->e, MQTT_RC_SUCCESS), ENGINE_CLOSING);
    expect_none(c);
}

/* ---- protocol errors ------------------------------------------------------------------------ */

Test(engine, malformed_fixed_header_is_0x81, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "m"));
    /* PUBLISH with QoS 3 [MQTT-3.3.1-4]. */
    cr_assert_eq(send_raw(c, (const uint8_t[]){0x36, 0x00}, 2), ENGINE_CLOSING);
    expect_disconnect(c, MQTT_RC_MALFORMED_PACKET);
}

Test(engine, remaining_length_over_four_bytes_is_0x81, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "m"));
    cr_assert_eq(send_raw(c, (const uint8_t[]){0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, 6),
                 ENGINE_CLOSING);
    expect_disconnect(c, MQTT_RC_MALFORMED_PACKET);
}

Test(engine, malformed_fixed_header_before_connect_closes_silently, .init = one_shard,
     .fini = teardown)
{
    struct fake_conn *c = fake_conn_new(&en[0]);
    c->ver = V5;
    cr_assert_eq(send_raw(c, (const uint8_t[]){0x00, 0x00}, 2), ENGINE_CLOSING);
    cr_assert(c->closed);
    expect_none(c);
}

Test(engine, packet_over_max_packet_size_is_0x95_from_its_header, .init = one_shard,
     .fini = teardown)
{
    cfg.max_packet_size = 1024;
    cfg.max_connect_size = 1024;
    struct fake_conn *c = client(0, COPT(.id = "big"));
    /* 1 + 2 bytes of header, then 1100 promised: only the start is sent,
     * the size is known from the fixed header. */
    cr_assert_eq(send_raw(c, (const uint8_t[]){0x30, 0xCC, 0x08, 0x00, 0x01, 't'}, 6),
                 ENGINE_CLOSING);
    expect_disconnect(c, MQTT_RC_PACKET_TOO_LARGE);
}

Test(engine, packet_at_max_packet_size_is_accepted, .init = one_shard, .fini = teardown)
{
    cfg.max_packet_size = 1024;
    cfg.max_connect_size = 1024;
    struct fake_conn *c = client(0, COPT(.id = "big"));
    /* PUBLISH QoS 0 to "t": header 3 + topic 3 + props 1 + payload = 1024. */
    char payload[1024 - 7 + 1];
    memset(payload, 'x', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = 0;
    cr_assert_eq(publish(c, POPT(.topic = "t", .payload = payload)), ENGINE_CONSUMED);
    cr_assert_not(c->closed);
    expect_none(c);
}

Test(engine, publish_over_max_qos_is_0x9b, .init = one_shard, .fini = teardown)
{
    cfg.max_qos = 1;
    struct fake_conn *c = client(0, COPT(.id = "q"));
    struct mqtt_packet *ca = &c->pkt;
    cr_assert(ca->u.connack.props.present & BIT(MAXIMUM_QOS), "CONNACK says the maximum");
    cr_assert_eq(publish(c, POPT(.topic = "t", .qos = 2, .pid = 1)), ENGINE_CLOSING);
    expect_disconnect(c, MQTT_RC_QOS_NOT_SUPPORTED);
}

Test(engine, topic_alias_0_is_a_protocol_error, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "al"));
    publish(c, POPT(.topic = "t", .has_alias = true, .alias = 0));
    expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
}

Test(engine, topic_alias_over_maximum_is_0x94, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "al"));
    publish(c, POPT(.topic = "t", .has_alias = true, .alias = (uint16_t)(cfg.max_topic_alias + 1)));
    expect_disconnect(c, MQTT_RC_TOPIC_ALIAS_INVALID);
}

Test(engine, topic_alias_set_then_used, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "long/topic", 0);
    publish(p, POPT(.topic = "long/topic", .payload = "1", .has_alias = true, .alias = 3));
    publish(p, POPT(.topic = "", .payload = "2", .has_alias = true, .alias = 3));
    expect_publish(s, "long/topic", "1", 0);
    expect_publish(s, "long/topic", "2", 0);
    cr_assert_not(p->closed);
}

Test(engine, subscription_identifier_0_is_a_protocol_error, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "si"));
    subscribe_id(c, 1, "t", 0, true, 0);
    expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
}

Test(engine, subscription_identifier_is_delivered, .init = one_shard, .fini = teardown)
{
    struct fake_conn *s = client(0, COPT(.id = "si"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribe_id(s, 1, "t", 0, true, 77);
    expect_suback(s, 1, 0);
    publish(p, POPT(.topic = "t", .payload = "x"));
    struct mqtt_packet *m = expect(s, MQTT_PUBLISH);
    cr_assert(m->u.publish.props.present & BIT(SUBSCRIPTION_ID));
    cr_assert_eq(m->u.publish.props.subscription_ids[0], 77);
}

Test(engine, unknown_packet_type_is_0x81, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "u"));
    cr_assert_eq(send_raw(c, (const uint8_t[]){0x00, 0x00}, 2), ENGINE_CLOSING);
    expect_disconnect(c, MQTT_RC_MALFORMED_PACKET);
}

Test(engine, server_packet_from_a_client_is_a_protocol_error, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "u"));
    /* A CONNACK (success, no properties) sent by the client. */
    cr_assert_eq(send_raw(c, (const uint8_t[]){0x20, 0x03, 0x00, 0x00, 0x00}, 5), ENGINE_CLOSING);
    expect_disconnect(c, MQTT_RC_PROTOCOL_ERROR);
}

Test(engine, packet_split_over_reads_is_parsed_whole, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "sp"));
    cr_assert_eq(send_raw(c, (const uint8_t[]){0xC0}, 1), ENGINE_CONSUMED);
    expect_none(c);
    cr_assert_eq(send_raw(c, (const uint8_t[]){0x00, 0xC0, 0x00}, 3), ENGINE_CONSUMED);
    expect(c, MQTT_PINGRESP);
    expect(c, MQTT_PINGRESP);
    expect_none(c);
}

/* ---- time ------------------------------------------------------------------------------------ */

Test(engine, keepalive_timeout_after_one_and_a_half_periods, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "k", .keepalive = 10));
    run_timers(1000 + 15000);
    cr_assert_not(c->closed, "1.5 x keepalive is still in time");
    expect_none(c);
    run_timers(1000 + 15001);
    expect_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
    cr_assert(fake_log_has("keepalive timeout"));
}

Test(engine, keepalive_counts_from_the_last_packet, .init = one_shard, .fini = teardown)
{
    struct fake_conn *c = client(0, COPT(.id = "k", .keepalive = 10));
    set_now(1000 + 10000);
    send_simple(c, MQTT_PINGREQ);
    expect(c, MQTT_PINGRESP);
    run_timers(1000 + 15001);
    cr_assert_not(c->closed);
    run_timers(1000 + 10000 + 15001);
    expect_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
}

/* ---- authorization -----------------------------------------------------------------------------
 */

Test(engine, denied_publish_gets_puback_0x87_and_goes_nowhere, .init = one_shard, .fini = teardown)
{
    fake_deny(ENGINE_WRITE, "secret/");
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "#", 1);
    publish(p, POPT(.topic = "secret/x", .payload = "no", .qos = 1, .pid = 4));
    expect_ack(p, MQTT_PUBACK, 4, MQTT_RC_NOT_AUTHORIZED);
    expect_none(s);
    cr_assert_not(p->closed, "a refused publish does not end the connection");
    publish(p, POPT(.topic = "public/x", .payload = "yes", .qos = 1, .pid = 5));
    expect_ack(p, MQTT_PUBACK, 5, MQTT_RC_SUCCESS);
    expect_publish(s, "public/x", "yes", 1);
}

Test(engine, denied_publish_v311_is_acknowledged_and_dropped, .init = one_shard, .fini = teardown)
{
    fake_deny(ENGINE_WRITE, "secret/");
    struct fake_conn *s = client(0, COPT(.v = V4, .id = "sub"));
    struct fake_conn *p = client(0, COPT(.v = V4, .id = "pub"));
    subscribed(s, "#", 1);
    publish(p, POPT(.topic = "secret/x", .payload = "no", .qos = 1, .pid = 4));
    expect(p, MQTT_PUBACK);
    const uint8_t wire[] = {0x40, 0x02, 0x00, 0x04};
    cr_assert_arr_eq(p->raw, wire, sizeof(wire));
    expect_none(s);
}

Test(engine, denied_read_is_not_delivered, .init = one_shard, .fini = teardown)
{
    fake_deny(ENGINE_READ, "secret/");
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    struct fake_conn *p = client(0, COPT(.id = "pub"));
    subscribed(s, "#", 0);
    publish(p, POPT(.topic = "secret/x", .payload = "no"));
    expect_none(s);
}

Test(engine, denied_subscribe_gets_suback_0x87, .init = one_shard, .fini = teardown)
{
    fake_deny(ENGINE_SUBSCRIBE, "secret/");
    struct fake_conn *s = client(0, COPT(.id = "sub"));
    subscribe(s, 3, "secret/#", 1);
    expect_suback(s, 3, MQTT_RC_NOT_AUTHORIZED);
}

/* The home shard of a client id follows from a hash keyed by the broker's
 * random key: the same ids spread differently under another key, so a
 * client cannot choose ids that all land on one shard. */
Test(engine, client_hash_depends_on_the_key)
{
    struct engine_shared a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.hash_key[0] = 1;
    a.hash_key[1] = 2;
    b.hash_key[0] = 3;
    b.hash_key[1] = 4;
    unsigned same_shard = 0, differ = 0;
    for (int i = 0; i < 1000; i++) {
        char id[32];
        int n = snprintf(id, sizeof(id), "device-%d", i);
        uint64_t ha = engine_client_hash(&a, (const uint8_t *)id, (size_t)n);
        uint64_t hb = engine_client_hash(&b, (const uint8_t *)id, (size_t)n);
        cr_assert_eq(ha, engine_client_hash(&a, (const uint8_t *)id, (size_t)n),
                     "the same key gives the same hash");
        differ += ha != hb;
        same_shard += ha % 4 == hb % 4;
    }
    cr_assert_eq(differ, 1000u);
    /* With unrelated keys a quarter of the ids keep their shard of 4:
     * 250 +- a few dozen, never all of them. */
    cr_assert(same_shard > 150 && same_shard < 350, "%u of 1000 kept their shard", same_shard);
}
