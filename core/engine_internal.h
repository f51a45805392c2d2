/*
 * The engine's private declarations, shared by core/engine*.c, share.c and
 * flow.c only. Everything here runs on the thread that owns the engine.
 */
#ifndef RINGMQ_ENGINE_INTERNAL_H
#define RINGMQ_ENGINE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "engine.h"
#include "engine_fx.h"
#include "invariant.h"
#include "log.h"

/* Subscription options packed into the trie's opaque 64 bits. */
#define OPT_QOS(o)   ((uint8_t)((o)&3u))
#define OPT_NO_LOCAL 4u
#define OPT_RAP      8u
#define OPT_RH(o)    ((uint8_t)(((o) >> 4) & 3u))
#define OPT_SUBID(o) ((uint32_t)((o) >> 8))

/* Largest packet accepted while an authentication exchange runs before
 * CONNACK: an AUTH with its data and the method name. */
#define ENGINE_AUTH_PACKET_MAX (AUTH_DATA_MAX + 256u)

/* Input kept per connection while the shard is congested before its
 * reading pauses (the kernel's socket buffer then holds the rest: TCP
 * back-pressure). */
#define ENGINE_CONGEST_STASH_MAX (64u * 1024u)

#define COUNT(en, field, n) atomic_fetch_add_explicit(&(en)->st.field, (n), memory_order_relaxed)
/* A gauge taken down. */
#define UNCOUNT(en, field, n) atomic_fetch_sub_explicit(&(en)->st.field, (n), memory_order_relaxed)

/* Untrusted bytes (a username, a topic) for a log line: printable ASCII
 * as is, anything else (and quote, backslash) as \xNN, at most 64 bytes of
 * it then "...". Always NUL-terminated. */
void engine_log_name(char *out, size_t cap, const uint8_t *s, size_t len);

/* A refusal (a login, an ACL decision) gets a line at the default level,
 * but at most ENGINE_REFUSAL_LOGS_PER_S a second per shard, so that a
 * client repeating one cannot flood the log: true when this one may be
 * logged, with *left_out the refusals not logged since the last one that
 * was (to say so in its line). */
#define ENGINE_REFUSAL_LOGS_PER_S 20u
bool engine_refusal_log(struct engine *en, uint32_t *left_out);
/* An ACL refusal's line: "PUBLISH to 'a/b' refused by the ACL ...". */
void engine_log_acl(struct engine_conn *c, const char *what, const uint8_t *topic, size_t len);

#define LOGCL(level, c, ...)                                                                       \
    LOGC(level, (c)->client ? (const char *)(c)->client->id : NULL,                                \
         (c)->client ? (c)->client->id_len : 0, __VA_ARGS__)

/* A client id's state on its home shard: the session, the live connection,
 * the identity it was authenticated with (for delivery-time decisions,
 * also while it is offline). */
struct client {
    struct client *hnext; /* hash chain */
    uint64_t hash;
    uint64_t uid; /* never reused (FLOW_UID_SHARD: its shard); No Local, flow control */
    uint8_t *id;
    uint16_t id_len;
    uint8_t version;
    bool clean_session; /* 3.1.1 clean session / 5.0 clean start of the last connect */
    uint32_t expiry_s;  /* session expiry after disconnect, UINT32_MAX: never */
    uint64_t disconnected_ms;
    struct engine_identity who; /* owns its username */
    struct engine_conn *conn;
    /* Disconnected: its expiry or delayed will. Connected: the next check
     * of the holds it asked for (flow.c). */
    struct engine_timer timer;
    struct session s;
    struct sub_table subs; /* its subscriptions, by (group, filter) */
    uint64_t last_ack_ms;  /* last PUBACK/PUBREC/PUBCOMP that acknowledged something */
    /* Flow control (flow.c): the subscribers holding this client's PUBLISH
     * input, and the publishers this session holds (for their release);
     * both allocated at their first use. */
    struct flow_holder {
        uint64_t uid, until_ms;
    } * held_by; /* FLOW_HOLDERS_PER_PUBLISHER slots */
    uint32_t held_by_n;
    struct flow_holding {
        uint64_t uid, hash, sent_ms;
    } * holding; /* FLOW_HOLDS_PER_SESSION slots, allocated at the first hold */
    uint32_t holding_n;
    uint32_t share_count; /* shared subscriptions it holds */
    uint32_t sub_seq;     /* SUBSCRIBEs handled: finds a filter repeated in one */
    /* Retained messages its SUBSCRIBEs matched, sent as room allows
     * (engine_deliver.c): [rb_next, rb_n) wait, each one reference. */
    struct delivery *rb;
    uint32_t rb_n, rb_next, rb_cap;
    /* Delivery de-duplication: one copy per client per message. */
    uint64_t match_seq;
    uint32_t match_idx;
    /* A delayed will (5.0 will delay interval), owned here once the
     * connection is gone. */
    struct msg *pending_will;
    uint64_t will_at_ms;
    /* The last ACL answers for publishing and for reading (engine_acl.c),
     * allocated at the first check under an ACL. */
    struct engine_acl_memo *acl_memo;
};

/* Per-client rates (engine_rate.c). May a complete packet of this type and
 * size be handled now? False: reading pauses (ENGINE_PAUSE_RATE) and the
 * connection's deadline is the moment it may go on. */
bool engine_rate_admits(struct engine_conn *c, uint8_t type, size_t bytes);
/* From the connection's deadline: true while it is paused for its rate
 * (unpaused here once the time came; keepalive does not run meanwhile). */
bool engine_rate_timeout(struct engine_conn *c, uint64_t now_ms);

/* The ACL, with a one-topic memory per client and kind of access: a
 * publisher that keeps publishing to one topic, and a subscriber that keeps
 * receiving on one, ask the policy once per snapshot generation. who is the
 * identity to check (the client's own, or its connection's before the
 * session exists); cl may be NULL (no memory). */
bool engine_acl_allowed(struct engine *en, struct client *cl, const struct engine_identity *who,
                        const uint8_t *client_id, size_t client_id_len, enum engine_access access,
                        const uint8_t *topic, size_t len);

/* A client uid: its shard in the low 6 bits, the shard's count above. */
#define FLOW_UID_SHIFT        6u
#define FLOW_UID_SHARD(uid)   ((unsigned)((uid) & ((1u << FLOW_UID_SHIFT) - 1)))
#define FLOW_UID_MAKE(seq, s) (((uint64_t)(seq) << FLOW_UID_SHIFT) | (uint64_t)(s))
_Static_assert(SHARDS_MAX <= (1u << FLOW_UID_SHIFT), "a uid's shard bits hold every shard");

static inline const struct config *engine_cfg(const struct engine_conn *c)
{
    return c->en->cfg;
}

/* Over memory_limit (the main thread samples the allocator): new work is
 * refused, connected flows go on. */
static inline bool engine_mem_over(const struct engine *en)
{
    return atomic_load_explicit(&en->g->mem_over, memory_order_relaxed);
}

/* At 90% of memory_limit (cleared under 80%): new sessions are refused
 * (engine_connect.c) and publishers whose messages are stored for later are
 * held (flow.c), before anything connected has to give way. */
static inline bool engine_mem_near(const struct engine *en)
{
    return atomic_load_explicit(&en->g->mem_near, memory_order_relaxed);
}

static inline bool engine_same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* ---- engine_output.c: packets out, and the connection's own state ---------- */
int engine_write_packet(struct engine_conn *c, const struct mqtt_packet *p);
void engine_send_ack(struct engine_conn *c, uint8_t type, uint16_t packet_id, uint8_t reason);
void engine_send_disconnect(struct engine_conn *c, uint8_t reason, const char *why);
void engine_send_connack(struct engine_conn *c, bool session_present, uint8_t reason,
                         const struct mqtt_props *props);
/* Closes for a protocol violation: 5.0 hears why. */
void engine_violation(struct engine_conn *c, uint8_t reason, const char *what);
/* A refused CONNECT: CONNACK where the version has a code, then close. */
void engine_connack_fail(struct engine_conn *c, uint8_t reason, const char *why);
void engine_pause(struct engine_conn *c, uint8_t reason);
void engine_unpause(struct engine_conn *c, uint8_t reason);
void engine_yield(struct engine_conn *c);
/* Counts what was appended to c->out and pauses reading over the bound. */
void engine_wrote(struct engine_conn *c, uint8_t qos);

/* ---- engine_deliver.c --------------------------------------------------------- */
/* Hands a delivery to a client's session (sends now or queues; QoS 0 to an
 * absent or slow client is dropped). Takes d->msg's reference. */
void engine_deliver(struct engine *en, struct client *cl, struct delivery *d);
/* Sends what the session's window allows. */
void engine_pump(struct client *cl);
bool engine_write_publish(struct engine_conn *c, const struct delivery *d, uint16_t packet_id,
                          bool dup);
void engine_drop_as_acked(struct engine *en, struct client *cl, uint16_t packet_id);
void engine_retain_store(struct engine *en, struct msg *m);
/* The retained backlog of a SUBSCRIBE (engine_deliver.c). */
bool engine_rb_waiting(const struct client *cl);
void engine_rb_append(struct engine *en, struct client *cl, struct delivery *v, uint32_t n);
void engine_rb_pump(struct engine *en, struct client *cl);
/* The client's connection left: what waits goes to its session. */
void engine_rb_flush(struct engine *en, struct client *cl);
void engine_rb_discard(struct client *cl);
void engine_deliver_thread_exit(void);

/* ---- engine.c: the session table ---------------------------------------------- */
struct client *engine_client_find(struct engine *en, const uint8_t *id, size_t len, uint64_t h);
struct client *engine_client_create(struct engine *en, const uint8_t *id, size_t len, uint64_t h);
void engine_client_destroy(struct engine *en, struct client *cl, bool unroute);
struct client *engine_client_by_uid(struct engine *en, uint64_t hash, uint64_t uid);
void engine_publish_will(struct engine *en, struct msg *will);
/* The connection no longer speaks for its client. */
void engine_detach(struct engine_conn *c);
/* (Re)arms the connection's deadline for its phase; none once closed or
 * placed elsewhere. */
void engine_conn_arm(struct engine_conn *c);
/* (Re)arms the client's timer: expiry and will while disconnected, the
 * flow check while it holds publishers. */
void engine_client_arm(struct engine *en, struct client *cl);
struct session_limits engine_session_limits(const struct config *cfg, uint32_t inflight_max);
/* Session expiry within persistent_client_expiration. */
uint32_t engine_expiry_cap(const struct config *cfg, uint32_t expiry_s);

/* A SUBACK waiting for every shard to apply its route changes. */
struct pending_suback {
    struct engine_conn *c;
    uint32_t remaining;
    uint16_t packet_id;
    uint16_t count;
    uint32_t retained_n;
    struct delivery *retained;
    uint8_t reasons[];
};

/* ---- engine_subscribe.c ---------------------------------------------------------- */
void engine_handle_subscribe(struct engine_conn *c, const struct mqtt_subscribe *sp);
void engine_handle_unsubscribe(struct engine_conn *c, const struct mqtt_subscribe *sp);
void engine_unsubscribe_one(struct engine *en, struct client *cl, struct sub_entry *s);
void engine_route_apply(struct engine *en, const uint8_t *group, size_t glen, uint32_t slot,
                        const uint8_t *filter, size_t flen, unsigned shard, bool present);
void engine_route_ack(struct engine *en, struct pending_suback *ps);
void engine_pending_discard(struct pending_suback *ps);

/* ---- engine_connect.c / engine_auth.c ----------------------------------------------- */
/* Handles a CONNECT packet (decoded): returns the status for the parser. */
enum engine_status engine_handle_connect(struct engine_conn *c, const struct mqtt_connect *cn);
/* Goes on with the waiting CONNECT (c->req) once it is authenticated. */
enum engine_status engine_connect_continue(struct engine_conn *c);
void engine_connect_free(struct engine_connect *req);
enum engine_status engine_auth_begin(struct engine_conn *c, const struct mqtt_connect *cn,
                                     uint32_t method);
enum engine_status engine_handle_auth(struct engine_conn *c, const struct mqtt_disconnect *a);
/* Ends an exchange that failed (CONNACK before, DISCONNECT after). */
void engine_auth_fail(struct engine_conn *c, uint8_t reason, const char *why);

/* ---- engine_publish.c ------------------------------------------------------------------ */
void engine_handle_publish(struct engine_conn *c, const struct mqtt_publish *in);
void engine_handle_ack(struct engine_conn *c, uint8_t type, const struct mqtt_ack *a);
void engine_handle_disconnect(struct engine_conn *c, const struct mqtt_disconnect *d);

/* ---- share.c: shared subscriptions ---------------------------------------------------- */
/* A share group's key: keyed by the shared hash key. */
uint64_t share_key(const struct engine_shared *g, const uint8_t *group, size_t glen,
                   const uint8_t *filter, size_t flen);
/* 0 joined, 1 options updated, -ENOMEM, -EEXIST (its key is another
 * group's: 2^-64 by chance); *count: members here now. */
int share_join(struct engine *en, struct client *cl, const uint8_t *group, size_t glen,
               const uint8_t *filter, size_t flen, uint64_t opts, uint32_t *count);
/* true if cl was a member; *count: members left here. */
bool share_leave(struct engine *en, struct client *cl, const uint8_t *group, size_t glen,
                 const uint8_t *filter, size_t flen, uint32_t *count);
/* Returns the number of share groups the message went to. */
uint32_t share_route_publish(struct engine *en, struct msg *m);
/* A shared message for group key, from a shard that chose this one (tried:
 * the shards that had it already and had no member that could take it). */
void share_deliver(struct engine *en, uint64_t key, struct msg *m, uint64_t tried);
/* The client's connection is gone: pass its movable shared messages on. */
void share_member_gone(struct engine *en, struct client *cl);
void share_fini(struct engine *en);
void share_thread_exit(void);

/* ---- flow.c: holding publishers for draining subscribers --------------------------- */
void flow_delivered(struct engine *en, struct client *cl, uint64_t origin, uint64_t origin_hash,
                    uint8_t qos);
uint32_t flow_queue_slack(const struct engine *en, const struct client *cl);
void flow_drained(struct engine *en, struct client *cl);
void flow_release(struct engine *en, struct client *cl);
void flow_behind(struct engine *en, struct client *cl, uint64_t origin, uint64_t origin_hash);
void flow_stored_near_limit(struct engine *en, const struct client *cl, uint64_t origin,
                            uint64_t origin_hash);
void flow_apply(struct engine *en, uint64_t uid, uint64_t hash, uint64_t holder, bool hold);
bool flow_held(const struct engine *en, struct client *cl);
void flow_client_fini(struct client *cl);

#endif
