/*
 * The runtime's shared types: the broker (what every shard can see), the
 * shard (one thread, one ring, one partition of the clients), connections
 * and clients. Private to net/.
 *
 * Ownership: a shard and everything reachable from it (connections, clients,
 * tries, overflow lists) is touched only by that shard's thread. The broker
 * struct is written by the main thread before shards start; afterwards
 * shards read it, except for the atomics, the retained store (under
 * retain_lock) and the auth snapshot pointer.
 */
#ifndef RINGMQ_BROKER_H
#define RINGMQ_BROKER_H

#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth.h"
#include "codec.h"
#include "config.h"
#include "limits.h"
#include "message.h"
#include "metrics.h"
#include "retain.h"
#include "route.h"
#include "session.h"
#include "sub_table.h"
#include "topic_trie.h"
#include "xq.h"

struct shard;
struct conn;
struct client;
struct share_group;

#define SHARE_TABLE_SIZE 256u /* buckets of a shard's share-group table */
#define SHARE_RR_SLOTS   256u /* per-group turn counters of a publishing shard */

/* A password check handed to the auth pool (authpool.c). Owned by the pool
 * from authpool_submit until it is on its shard's completion list, then by
 * that shard. Holds copies only: no pointer into the security snapshot. */
struct auth_job {
    struct auth_job *next;
    struct conn *conn; /* held (conn_hold) by its shard; never touched off it */
    uint64_t conn_id;
    unsigned shard;
    struct auth_check check;
    uint8_t *password; /* a copy, wiped when the job is freed; NULL if none */
    size_t password_len;
    uint8_t rc; /* the answer: MQTT_RC_SUCCESS, _BAD_USERNAME_OR_PASSWORD, _SERVER_UNAVAILABLE */
    atomic_bool cancelled; /* set by the shard when the connection closed: no hash needed */
};

struct authpool;

struct share_rr {
    uint64_t key;
    uint32_t next;
};

/* A growable byte buffer with an explicit bound checked by its users. */
struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* The place where TLS will sit: between the socket and the codec. */
struct transport {
    const char *name;
    /* Bytes arrived from the socket: hand plaintext to conn_input(); may
     * queue handshake bytes for sending. 0, or a negative errno to close. */
    int (*input)(struct conn *c, const uint8_t *data, size_t len);
    /* Turns the connection's pending plaintext (c->out) into the bytes to
     * put on the wire, returned in *wire (which stays valid until the send
     * completes). Returns 0 and sets *wire, or a negative errno. */
    int (*wire)(struct conn *c, struct buf **wire);
    void (*destroy)(struct conn *c);
};

enum conn_state {
    CONN_NEW = 0, /* waiting for CONNECT */
    CONN_AUTH,    /* 5.0 enhanced authentication before CONNACK (4.12) */
    CONN_VERIFY,  /* CONNECT's password being checked off the shard (authpool.c) */
    CONN_HANDOFF, /* CONNECT parsed, moving to the home shard */
    CONN_ACTIVE,  /* attached to its client */
    CONN_CLOSING, /* shut down, waiting for operations to finish */
};

/* Reasons a connection's reading is paused; reading resumes at zero. */
enum conn_pause {
    CONN_PAUSE_OUTPUT = 1, /* its own output is over the bound: TCP back-pressure */
    CONN_PAUSE_RATE = 2,   /* over its message or byte rate (rate limits) */
    CONN_PAUSE_CONGEST = 4 /* the shard's cross-shard overflow is over its bound */
};

/* A topic in an alias table. */
struct alias_out {
    uint8_t *topic; /* owned, NULL when unused */
    uint32_t len;
};

struct conn {
    struct shard *sh;
    uint64_t id;
    int fd;
    uint32_t listener;
    char peer[64];
    uint8_t state;
    uint8_t version;
    uint8_t pause; /* enum conn_pause bits */
    bool recv_armed;
    bool send_inflight;
    bool close_after_flush;
    bool lingering; /* output out, half-closed, input discarded (shard.c) */
    bool dirty;
    bool deferred;
    bool authenticated;
    bool got_disconnect;
    uint32_t ops;  /* kernel operations in flight (+ holds by pending SUBACKs) */
    uint16_t home; /* the client's home shard, known once CONNECT is parsed */

    const struct transport *tp;
    void *tp_state;

    struct buf in;      /* bytes of a packet that spans receives */
    size_t in_off;      /* parsed prefix of in */
    struct buf out;     /* plaintext queued for the next send */
    struct buf sending; /* bytes owned by the kernel during a send */
    size_t sending_off;

    uint64_t created_ms;
    uint64_t close_deadline_ms; /* set by conn_close, again when lingering starts */
    uint32_t linger_bytes;      /* discarded while lingering */
    uint32_t retained_pending;  /* retained messages collected by SUBACKs not yet sent */
    uint64_t last_rx_ms;
    uint64_t last_tx_ms; /* a send last completed with bytes */
    uint16_t keepalive_s;

    /* From CONNECT. */
    uint32_t client_max_packet; /* 0: no limit */
    uint16_t client_receive_max;
    bool request_problem_info;
    uint32_t session_expiry_s;
    uint8_t *username;
    uint32_t username_len;
    char *assigned_id; /* a server-assigned client id, kept across the hand-off */
    bool placed;       /* authenticated and its home shard chosen */

    /* 5.0 enhanced authentication (4.12): the method the CONNECT named
     * (enum config_auth_method bit, 0: none), the exchange in progress
     * (before CONNACK, or a re-authentication), the CONNECT kept while the
     * first exchange runs (replayed once it succeeds), and the server's
     * final data for the CONNACK. */
    uint32_t auth_method;
    struct scram *ax;
    uint64_t ax_started_ms;
    uint8_t *connect_copy;
    uint32_t connect_copy_len;
    bool auth_replay;
    /* A password check off the shard (CONN_VERIFY): since when, and once it
     * is back, its answer for the replayed CONNECT. */
    uint64_t verify_started_ms;
    struct auth_job *verify_job; /* in the pool; NULL once answered */
    bool verify_done;
    uint8_t verify_rc;
    uint8_t *auth_reply;
    uint16_t auth_reply_len;
    struct msg *will;
    uint32_t will_delay_s;

    /* 5.0 topic aliases: client-to-broker (alias -> topic, up to the
     * max_topic_alias we advertised) and broker-to-client (topic -> alias,
     * up to the client's maximum, at most TOPIC_ALIAS_OUT_MAX). */
    struct alias_out *alias_in; /* index alias-1 */
    uint16_t alias_in_max;
    struct alias_out *alias_out; /* index alias-1 */
    uint16_t alias_out_max;
    uint16_t alias_out_next;

    struct client *client;
    struct conn *prev, *next;   /* shard's connection list */
    struct conn *dirty_next;    /* shard's to-flush list */
    struct conn *deferred_next; /* shard's input-left-over list */
    struct conn *reap_next;     /* shard's to-free list */
    bool reaping;
};

/* A client id's state on its home shard: the session, the live connection. */
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
    struct conn *conn;
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
     * (conn.c retained_pump): [rb_next, rb_n) wait, each one reference. */
    struct delivery *rb;
    uint32_t rb_n, rb_next, rb_cap;
    /* Delivery de-duplication: one copy per client per message. */
    uint64_t match_seq;
    uint32_t match_idx;
    /* A delayed will (5.0 will delay interval), owned here once the
     * connection is gone. */
    struct msg *pending_will;
    uint64_t will_at_ms;
};

/* An envelope on a cross-shard queue that is not a plain message. Plain
 * messages travel as struct msg pointers; envelopes have the low bit set. */
enum xenv_type {
    XENV_ROUTE = 1,     /* route replica change */
    XENV_ROUTE_ACK = 2, /* applied: count down a pending SUBACK */
    XENV_ADOPT = 3,     /* a connection moving to its home shard */
    XENV_SHARED = 4,    /* a message for one member of a share group here */
    XENV_BARRIER = 5,   /* answer with XENV_ROUTE_ACK once everything before it is applied */
    XENV_HOLD = 6,      /* hold (present) or release a publisher homed there (flow.c) */
};

struct pending_suback;

struct xenv {
    uint8_t type;
    bool present;
    uint16_t from_shard;
    struct pending_suback *pending;
    struct conn *conn;
    struct msg *msg;    /* XENV_SHARED: one reference */
    uint64_t key;       /* XENV_SHARED: the share group; XENV_HOLD: the publisher's uid */
    uint64_t hash;      /* XENV_HOLD: the publisher's client id hash */
    uint64_t holder;    /* XENV_HOLD: the holding subscriber's uid */
    uint16_t group_len; /* XENV_ROUTE of a shared subscription: group, then filter */
    uint16_t slot;      /* ... and the member slot it adds or removes */
    uint16_t filter_len;
    uint8_t filter[];
};

struct overflow_node {
    struct overflow_node *next;
    void *item;
};

/* One variant of the shard's encoding cache (see conn.c). */
struct enc_slot {
    struct msg *msg; /* a reference, so the address cannot be reused meanwhile */
    struct buf bytes;
    size_t pid_off;
};
#define ENC_SLOTS             12u /* (3.x, 5.0) x QoS 0..2 x retain */
#define ENC_CACHE_PAYLOAD_MAX (64u * 1024u)

struct shard {
    struct broker *b;
    unsigned id;
    pthread_t thread;
    struct io_uring ring;
    int ring_fd;
    int listen_fd[LISTENERS_MAX];

    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    size_t br_size;

    struct trie *subs;
    struct route *routes;
    /* Shared subscriptions (share.c): members homed here, and the replica
     * of which shards hold members of which groups. */
    struct share_group *share_tab[SHARE_TABLE_SIZE];
    struct trie *share_routes;
    struct share_rr share_rr_tab[SHARE_RR_SLOTS];
    uint32_t route_acks_due; /* acknowledgements of our route changes still coming */
    uint32_t accept_paused;  /* listeners whose accept waits for the tick (EMFILE ...) */
    uint64_t accept_warned_ms;

    struct client **ctab;
    uint32_t ctab_mask;
    uint32_t client_count;

    struct conn *conns;
    struct conn *dirty;
    struct conn *deferred;
    struct conn *reap;
    uint64_t next_conn_id;
    uint64_t next_client_seq; /* for client uids */

    struct xq *inq[SHARDS_MAX]; /* inq[j]: from shard j to this one */
    struct overflow_node *ovf_head[SHARDS_MAX], *ovf_tail[SHARDS_MAX];
    uint32_t ovf_count;
    size_t turn_in_bytes; /* input parsed this loop turn */
    bool input_held;      /* a held publisher's input waits this turn (flow.c) */
    uint64_t notify_mask; /* shards pushed to this turn */

    atomic_int sleeping;
    /* Loop turns begun, stored with release at the top of each turn: once
     * it moves past a value read after a snapshot swap, this shard holds
     * no pointer into the old snapshot (main.c frees it then). A shard
     * turns at least every 100 ms. */
    atomic_uint_fast64_t turns;
    uint64_t now_ms;
    uint64_t next_tick_ms;
    uint64_t next_scan_ms;
    uint64_t next_sys_ms;
    uint64_t match_seq;
    bool stopping;
    uint64_t stop_deadline_ms;

    struct enc_slot enc[ENC_SLOTS];

    /* Answers from the auth pool: pushed by its workers under auth_lock,
     * announced on auth_efd, which the ring keeps a read armed on. */
    pthread_mutex_t auth_lock;
    struct auth_job *auth_done;
    int auth_efd;
    uint64_t auth_efd_val; /* the armed read's buffer */
    bool auth_read_broken; /* the read failed: the tick drains instead */

    struct metrics_shard st;
    atomic_int started; /* 1 ok, -errno failed */
    sem_t ready;        /* posted once started is set */
};

struct broker {
    struct config cfg;
    unsigned shard_count;
    struct shard *shards[SHARDS_MAX];
    _Atomic(struct auth_snapshot *) auth;
    pthread_rwlock_t retain_lock;
    struct retain *retain;
    atomic_bool stopping;
    atomic_uint_fast64_t conn_count;
    atomic_uint_fast64_t session_count; /* clients with a session, all shards (max_sessions) */
    uint64_t hash_key[2]; /* SipHash key of client-named tables (groups, subscriptions), random */
    uint16_t listen_port[LISTENERS_MAX]; /* resolved ports (0 in config = ephemeral) */
    uint64_t start_ms;
    struct authpool *authpool; /* NULL: auth_threads 0, passwords are checked on the shard */
    /* memory_limit (main.c): the resolved bound, written before the shards
     * start; the allocator's usage as the main thread sampled it last
     * (every 50 ms, net/memwatch.c); and the flag the shards read (relaxed)
     * to refuse new work: set at mem_limit, cleared under 90% of it. */
    uint64_t mem_limit;                 /* bytes, never 0 once shards run */
    atomic_uint_fast64_t mem_allocated; /* bytes */
    atomic_bool mem_over;
};

/* Monotonic milliseconds. */
uint64_t broker_now_ms(void);
uint64_t broker_client_hash(const uint8_t *id, size_t len);

/* authpool.c: password checks off the shards. Created (threads > 0; *out
 * NULL for 0) and stopped, which answers what is still queued with
 * MQTT_RC_SERVER_UNAVAILABLE and joins the workers, by the main thread;
 * destroyed once the shards are joined. */
int authpool_create(struct broker *b, unsigned threads, struct authpool **out);
/* Shard thread: queues a job (takes ownership on 0). -EBUSY when
 * AUTH_JOBS_MAX jobs are outstanding, -ESHUTDOWN once stopping. */
int authpool_submit(struct authpool *p, struct auth_job *j);
/* Shard thread: the answered jobs for this shard, oldest first. */
struct auth_job *authpool_take(struct shard *sh);
void authpool_job_free(struct broker *b, struct auth_job *j);
/* Checks queued, being hashed or waiting for their shard (0 for NULL). */
unsigned authpool_pending(struct authpool *p);
void authpool_stop(struct authpool *p);
void authpool_destroy(struct authpool *p);

/* shard.c */
/* The socket address of a listener (numeric IPv4/IPv6, "" = any IPv4) at
 * port. 0 or -EINVAL. */
int listener_sockaddr(const struct config_listener *l, uint16_t port, struct sockaddr_storage *ss,
                      socklen_t *sl);
int shard_create(struct broker *b, unsigned id, struct shard **out);
void shard_destroy(struct shard *sh);
int shard_start(struct shard *sh);
void shard_join(struct shard *sh);
/* Posts an item to another shard's queue (overflow list when full). */
void shard_post(struct shard *sh, unsigned to, void *item);
void shard_mark_dirty(struct conn *c);
void shard_defer(struct conn *c);
void conn_pause(struct conn *c, uint8_t reason);
void conn_resume(struct conn *c, uint8_t reason);
/* Shuts the socket down after flushing what is queued (at most
 * CLOSE_FLUSH_MAX_MS, then it is cut). */
void conn_close(struct conn *c, const char *why);
/* Shuts the socket down now. */
void conn_abort(struct conn *c);
void conn_hold(struct conn *c);
void conn_release(struct conn *c);
void shard_adopt(struct shard *sh, struct conn *c);
/* Starts moving a connection whose CONNECT was parsed to c->home. */
void shard_handoff(struct conn *c);

/* conn.c: the MQTT protocol on one connection. */
void conn_input(struct conn *c, const uint8_t *data, size_t len);
/* A password check came back (shard thread): replays the CONNECT. */
void conn_verified(struct conn *c, uint8_t rc);
/* Parses what is buffered in c->in (after a hand-off or a deferral). */
void conn_process_buffered(struct conn *c);
/* The connection's output drained (shard.c, after a send): work waiting
 * for room goes on. */
void conn_output_drained(struct conn *c);
/* The connection is gone: detach from its client, publish the will. */
void conn_on_closed(struct conn *c);
void conn_shutdown_notice(struct conn *c);
/* Routes a message to every subscriber; true if any subscription matched. */
bool mqtt_route_publish(struct shard *sh, struct msg *m);
void mqtt_deliver_local(struct shard *sh, struct msg *m);
void mqtt_handle_env(struct shard *sh, struct xenv *e);
/* At shard_destroy (every shard thread joined): releases what an envelope
 * left in a queue holds for the MQTT layer: a route change's or barrier's
 * share of a pending SUBACK, freed with the last one. The connections are
 * gone already. */
void mqtt_env_discard(struct xenv *e);
void mqtt_tick(struct shard *sh, uint64_t now_ms);
void mqtt_shard_fini(struct shard *sh);
/* Frees the calling shard thread's scratch memory. */
void mqtt_thread_exit(void);

/* Hands a delivery to a client's session (sends now or queues; QoS 0 to an
 * absent or slow client is dropped). Takes d->msg's reference. */
void mqtt_deliver(struct shard *sh, struct client *cl, struct delivery *d);

/* share.c: shared subscriptions. */
/* A share group's key: keyed by b->hash_key. */
uint64_t share_key(const struct broker *b, const uint8_t *group, size_t glen, const uint8_t *filter,
                   size_t flen);
/* 0 joined, 1 options updated, -ENOMEM, -EEXIST (its key is another
 * group's: 2^-64 by chance); *count: members here now. */
int share_join(struct shard *sh, struct client *cl, const uint8_t *group, size_t glen,
               const uint8_t *filter, size_t flen, uint64_t opts, uint32_t *count);
/* true if cl was a member; *count: members left here. */
bool share_leave(struct shard *sh, struct client *cl, const uint8_t *group, size_t glen,
                 const uint8_t *filter, size_t flen, uint32_t *count);
/* Returns the number of share groups the message went to. */
uint32_t share_route_publish(struct shard *sh, struct msg *m);
void share_deliver(struct shard *sh, uint64_t key, struct msg *m);
/* The client's connection is gone: pass its movable shared messages on. */
void share_member_gone(struct shard *sh, struct client *cl);
void share_fini(struct shard *sh);
void share_thread_exit(void);

/* A client uid: its shard in the low 6 bits, the shard's count above. */
#define FLOW_UID_SHIFT        6u
#define FLOW_UID_SHARD(uid)   ((unsigned)((uid) & ((1u << FLOW_UID_SHIFT) - 1)))
#define FLOW_UID_MAKE(seq, s) (((uint64_t)(seq) << FLOW_UID_SHIFT) | (uint64_t)(s))
_Static_assert(SHARDS_MAX <= (1u << FLOW_UID_SHIFT), "a uid's shard bits hold every shard");

/* flow.c: holding publishers for draining subscribers (see there). */
/* A delivery at qos from the publisher (origin uid, its client id hash)
 * was handed to cl's session or output. */
void flow_delivered(struct shard *sh, struct client *cl, uint64_t origin, uint64_t origin_hash,
                    uint8_t qos);
/* Extra queue room for a draining session (0 otherwise). */
uint32_t flow_queue_slack(const struct shard *sh, const struct client *cl);
/* cl's session drained some: releases its holds once it is low or stale. */
void flow_drained(struct shard *sh, struct client *cl);
/* Releases every hold cl asked for (it leaves or ends). */
void flow_release(struct shard *sh, struct client *cl);
/* cl is behind for another reason (a retained backlog): hold the
 * publisher if cl is draining. */
void flow_behind(struct shard *sh, struct client *cl, uint64_t origin, uint64_t origin_hash);
/* Publisher side: a hold or release by holder of the client uid here. */
void flow_apply(struct shard *sh, uint64_t uid, uint64_t hash, uint64_t holder, bool hold);
/* Is cl's PUBLISH input held now? Forgets ended leases. */
bool flow_held(const struct shard *sh, struct client *cl);
/* Frees a client's flow state (session end). */
void flow_client_fini(struct client *cl);

/* sys.c: $SYS statistics, published by shard 0. */
void sys_tick(struct shard *sh, uint64_t now_ms);
/* The shard counters, described once: topic under $SYS/broker/, and the
 * offset of the atomic in struct shard_stats. */
struct sys_counter {
    const char *topic;
    size_t offset;
};
extern const struct sys_counter sys_counters[];
extern const size_t sys_counter_count;
/* One counter summed over the shards (any thread; relaxed, may be torn). */
uint64_t sys_sum(const struct broker *b, size_t offset);

/* transport.c */
extern const struct transport transport_plain;

/* buffers */
int buf_reserve(struct buf *b, size_t extra);
void buf_free(struct buf *b);

#endif
