/*
 * The MQTT engine: one connection's protocol state machine (struct
 * engine_conn) and one shard's broker state (struct engine: the session
 * table, the subscription trie, the route replica, the shared groups, the
 * encoding cache). It owns no socket and no thread: the runtime hands it
 * bytes and events, it appends bytes to the connection's output buffer and
 * asks for what it cannot do itself through the effects of engine_fx.h
 * (implemented by net/, faked by the unit tests).
 *
 * Threads: an engine and everything reachable from it (its connections'
 * protocol state, its clients) is touched only by the thread that owns it,
 * except the counters (relaxed atomics, read by anyone) and what struct
 * engine_shared says.
 *
 * Lifecycle of the two layers (DESIGN.md "The engine and its effects"):
 * the engine keeps the protocol phase (engine_conn.phase); the runtime
 * keeps its own I/O state (open, handing off, closing, reaped). The engine
 * reports what happened to the caller (enum engine_status) and asks for a
 * close with engine_fx_close(); after that it parses nothing more from the
 * connection.
 */
#ifndef RINGMQ_ENGINE_H
#define RINGMQ_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "codec.h"
#include "config.h"
#include "limits.h"
#include "message.h"
#include "metrics.h"
#include "retain.h"
#include "route.h"
#include "session.h"
#include "sub_table.h"
#include "timer.h"
#include "topic_trie.h"

struct engine;
struct engine_conn;
struct client;
struct share_group;
struct pending_suback;

#define ENGINE_SHARE_TABLE_SIZE 256u /* buckets of a shard's share-group table */
#define ENGINE_SHARE_RR_SLOTS   256u /* per-group turn counters of a publishing shard */
#define ENGINE_ENC_SLOTS        12u  /* (3.x, 5.0) x QoS 0..2 x retain */
#define ENGINE_ENC_PAYLOAD_MAX  (64u * 1024u)

/* What every shard's engine shares. Written by the main thread before the
 * shards start; afterwards read-only, except the atomics and the retained
 * store (under the runtime's lock: engine_fx_retain_lock). */
struct engine_shared {
    const struct config *cfg;
    unsigned shard_count;
    struct engine *engines[SHARDS_MAX];
    struct retain *retain;
    uint64_t hash_key[2];               /* SipHash key of client-named tables, random */
    uint64_t start_ms;                  /* when the broker started: assigned client ids */
    atomic_uint_fast64_t session_count; /* clients with a session, all shards (max_sessions) */
    atomic_bool mem_over;               /* over memory_limit: refuse new work (main thread sets) */
    atomic_bool mem_near;               /* at 90% of it, cleared under 80%: admission, flow.c */
};

/* The protocol phase of a connection. */
enum engine_phase {
    ENGINE_NEW = 0, /* waiting for CONNECT */
    ENGINE_AUTH,    /* 5.0 enhanced authentication before CONNACK (4.12) */
    ENGINE_VERIFY,  /* the CONNECT's password is being checked off the shard */
    ENGINE_PLACED,  /* CONNECT accepted here, its session lives on another shard */
    ENGINE_ACTIVE,  /* attached to its client */
    ENGINE_CLOSED,  /* the engine asked for a close: nothing more is parsed */
};

/* What engine_input / engine_resume did with the connection. */
enum engine_status {
    ENGINE_CONSUMED = 0, /* everything given was used or kept; go on reading */
    ENGINE_YIELD,        /* input waits (budget, back-pressure): engine_resume later */
    ENGINE_HANDOFF,      /* move the connection to engine_conn.home, then engine_adopted */
    ENGINE_CLOSING,      /* engine_fx_close was called */
};

/* A deadline on the engine's wheel: whose it is says what firing means. */
enum engine_timer_kind {
    ENGINE_TIMER_CONN = 1,    /* a connection's protocol deadline (engine) */
    ENGINE_TIMER_CLIENT = 2,  /* a session's expiry, delayed will, or flow check (engine) */
    ENGINE_TIMER_RUNTIME = 3, /* the runtime's own (engine_fx_timer) */
};
struct engine_timer {
    struct timer t;
    uint8_t kind;
};

/* Reasons reading is paused; the runtime reads on when all are clear. */
enum engine_pause {
    ENGINE_PAUSE_OUTPUT = 1,  /* its own output is over the bound: TCP back-pressure */
    ENGINE_PAUSE_RATE = 2,    /* over its message or byte rate (rate limits) */
    ENGINE_PAUSE_CONGEST = 4, /* input waits (shard congested, or a deferred rest) */
};

/* Who a connection is: known at accept (listener, address), after
 * authentication (username) and after placement (client id, on the client).
 * struct auth_client is built from this in one place (net/effects.c). */
#define ENGINE_TLS_EXPORTER_LEN 32u

struct engine_identity {
    uint32_t listener;
    struct sockaddr_storage addr; /* the peer; ss_family AF_UNSPEC if unknown */
    char peer[64];                /* the peer as text, for logs */
    uint8_t *username;            /* owned, NUL-terminated; NULL: none */
    uint32_t username_len;
    /* The TLS client certificate's identity (its CN, or its subject DN
     * with use_subject_as_username), owned; NULL: none. */
    uint8_t *cert_identity;
    uint32_t cert_identity_len;
    /* RFC 9266 tls-exporter channel binding of the connection's TLS
     * session (label "EXPORTER-Channel-Binding", no context), set by the
     * TLS layer after the handshake when the session is TLS 1.3 or TLS 1.2
     * with the extended master secret; tls_exporter_ok false otherwise
     * (plain TCP, or a TLS 1.2 session whose exporter is not unique). */
    bool tls_exporter_ok;
    uint8_t tls_exporter[ENGINE_TLS_EXPORTER_LEN];
};

/* A CONNECT, decoded once into what its later steps need, owned: it waits
 * here while an authentication exchange or a password check runs and
 * travels with the connection to its home shard. The password is never
 * kept. */
struct engine_connect {
    uint8_t version;
    bool clean_start;
    uint16_t keepalive_s;
    uint8_t *client_id; /* owned, NUL-terminated */
    uint16_t client_id_len;
    bool assigned;     /* the broker chose the client id */
    uint8_t *username; /* owned, NUL-terminated; NULL: none in the CONNECT */
    uint32_t username_len;
    /* 5.0 properties (0 / false when absent). */
    bool has_session_expiry;
    uint32_t session_expiry_s;
    uint16_t receive_maximum;
    uint32_t maximum_packet_size;
    uint16_t topic_alias_maximum;
    bool request_response_info;
    bool request_problem_info;
    struct msg *will; /* owned, NULL without a will */
    uint32_t will_delay_s;
};

/* A topic in an alias table. */
struct engine_alias {
    uint8_t *topic; /* owned, NULL when unused */
    uint32_t len;
};

struct engine_conn {
    struct engine *en; /* the engine of the shard that runs it now */
    uint64_t id;       /* unique across shards (logs) */
    uint8_t phase;     /* enum engine_phase */
    uint8_t version;
    uint8_t pause; /* enum engine_pause bits */
    bool yielded;  /* engine_fx_yield was asked: input waits for engine_resume */
    bool authenticated;
    bool got_disconnect;
    /* Why the engine ended the connection, for the disconnect line (a
     * static string; NULL: the client did, by DISCONNECT or by leaving). */
    const char *why;
    uint8_t why_reason; /* a protocol violation's reason code, 0: none */
    bool request_problem_info;
    uint16_t home; /* the client's home shard, known once CONNECT is placed */
    struct engine_identity who;

    struct buf in;  /* bytes of a packet that spans receives, or that wait */
    size_t in_off;  /* parsed prefix of in */
    struct buf out; /* bytes for the peer; the runtime takes them */

    uint64_t created_ms;
    uint64_t last_rx_ms;
    uint64_t last_tx_ms;       /* the runtime last sent bytes (engine_output_drained) */
    uint32_t retained_pending; /* retained messages collected by SUBACKs not yet sent */
    uint16_t keepalive_s;
    uint32_t client_max_packet; /* 0: no limit */
    uint32_t session_expiry_s;

    struct engine_connect *req; /* a CONNECT waiting for a later step */
    /* The earliest of its protocol deadlines (connect, password check,
     * authentication exchange, keepalive), on its engine's wheel. */
    struct engine_timer deadline;

    /* 5.0 enhanced authentication (4.12): the method (a runtime value,
     * 0: none), whether an exchange runs (before CONNACK or a
     * re-authentication) and since when, and the server's final data for
     * the CONNACK. The exchange's own state is the runtime's. */
    uint32_t auth_method;
    bool auth_running;
    uint64_t auth_started_ms;
    uint8_t *auth_reply;
    uint16_t auth_reply_len;
    /* A password check off the shard (ENGINE_VERIFY): since when. */
    uint64_t verify_started_ms;

    /* Its rates (max_publish_rate, max_subscribe_rate, max_inbound_rate):
     * token buckets in thousandths of a packet or byte, which may go into
     * debt by one packet; while one is empty its reading pauses
     * (ENGINE_PAUSE_RATE) until rate_until_ms (engine_rate.c). */
    struct engine_rate {
        bool started;
        int64_t publish_milli, subscribe_milli, bytes_milli;
        uint64_t refilled_ms;
        uint64_t until_ms;
    } rate;

    struct msg *will;
    uint32_t will_delay_s;

    /* 5.0 topic aliases: client-to-broker (alias -> topic, up to the
     * max_topic_alias we advertised) and broker-to-client (topic -> alias,
     * up to the client's maximum, at most TOPIC_ALIAS_OUT_MAX). */
    struct engine_alias *alias_in; /* index alias-1 */
    uint16_t alias_in_max;
    struct engine_alias *alias_out; /* index alias-1 */
    uint16_t alias_out_max;
    uint16_t alias_out_next;

    struct client *client;
};

/* One variant of the engine's encoding cache (engine_deliver.c). */
struct engine_enc_slot {
    struct msg *msg; /* a reference, so the address cannot be reused meanwhile */
    struct buf bytes;
    size_t pid_off;
};

struct engine_share_rr {
    uint64_t key;
    uint32_t next;
};

/* One shard's broker state. */
struct engine {
    struct engine_shared *g;
    const struct config *cfg;
    unsigned id;
    uint64_t now_ms; /* the runtime sets it each loop turn */
    bool stopping;   /* the broker stops: no route changes are broadcast */

    struct client **ctab;
    uint32_t ctab_mask;
    uint32_t client_count;
    uint64_t next_client_seq; /* for client uids */

    struct trie *subs;
    struct route *routes;
    /* Shared subscriptions (share.c): members homed here, and the replica
     * of which shards hold members of which groups. */
    struct share_group *share_tab[ENGINE_SHARE_TABLE_SIZE];
    struct trie *share_routes;
    struct engine_share_rr share_rr_tab[ENGINE_SHARE_RR_SLOTS];
    uint32_t route_acks_due; /* acknowledgements of our route changes still coming */

    uint64_t match_seq;
    size_t turn_in_bytes; /* input parsed this loop turn (the runtime zeroes it) */
    bool input_held;      /* a held publisher's input waits this turn (flow.c) */
    /* Publishers held near memory_limit, by client id hash: each is asked
     * for at most every half lease (flow.c). */
    struct engine_mem_hold {
        uint64_t uid, sent_ms;
    } mem_holds[FLOW_MEMORY_MEMO];
    /* Refusals logged at the default level this second (engine_refusal_log),
     * and those left out since the last one that was. */
    uint64_t refusal_log_s;
    uint32_t refusal_log_n;
    uint32_t refusal_log_dropped;
    struct engine_enc_slot enc[ENGINE_ENC_SLOTS];
    /* Every deadline of this shard: the engine's and the runtime's. */
    struct timer_wheel timers;

    struct metrics_shard st;
};

/* An item on a cross-shard queue that is not a plain message. Plain
 * messages travel as struct msg pointers; envelopes have the low bit set
 * (ENGINE_ENV_TAG). */
enum engine_env_type {
    ENGINE_ENV_ROUTE = 1,     /* route replica change */
    ENGINE_ENV_ROUTE_ACK = 2, /* applied: count down a pending SUBACK */
    ENGINE_ENV_ADOPT = 3,     /* a connection moving to its home shard (the runtime's) */
    ENGINE_ENV_SHARED = 4,    /* a message for one member of a share group here */
    ENGINE_ENV_BARRIER = 5,   /* answer with ROUTE_ACK once everything before it is applied */
    ENGINE_ENV_HOLD = 6,      /* hold (present) or release a publisher homed there (flow.c) */
};

struct engine_env {
    uint8_t type;
    bool present;
    uint16_t from_shard;
    struct pending_suback *pending;
    void *conn;         /* ENGINE_ENV_ADOPT: the runtime's connection */
    struct msg *msg;    /* ENGINE_ENV_SHARED: one reference */
    uint64_t key;       /* SHARED: the share group; HOLD: the publisher's uid */
    uint64_t tried;     /* SHARED: shards it visited whose members may not read it */
    uint64_t hash;      /* HOLD: the publisher's client id hash */
    uint64_t holder;    /* HOLD: the holding subscriber's uid */
    uint16_t group_len; /* ROUTE of a shared subscription: group, then filter */
    uint16_t slot;      /* ... and the member slot it adds or removes */
    uint16_t filter_len;
    uint8_t filter[];
};

#define ENGINE_ENV_TAG 1u
static inline void *engine_env_item(struct engine_env *e)
{
    return (void *)((uintptr_t)e | ENGINE_ENV_TAG);
}
static inline struct engine_env *engine_env_of(void *item)
{
    return ((uintptr_t)item & ENGINE_ENV_TAG)
               ? (struct engine_env *)((uintptr_t)item & ~(uintptr_t)ENGINE_ENV_TAG)
               : NULL;
}

/* ---- the shard's engine ------------------------------------------------- */

/* 0 or -ENOMEM. The shard's thread, or the main thread before it starts. */
int engine_init(struct engine *en, struct engine_shared *g, unsigned id);
/* Ends every session (no route changes: every shard is stopping). */
void engine_fini(struct engine *en);
/* Fires what is due at now_ms (keepalive, connect and authentication
 * timeouts, session expiry, delayed wills, the runtime's deadlines), at
 * most budget; returns how many fired. */
unsigned engine_run_timers(struct engine *en, uint64_t now_ms, unsigned budget);
/* The earliest deadline (a lower bound; UINT64_MAX: none), to sleep until. */
uint64_t engine_next_deadline(const struct engine *en);
/* A message from another shard: delivered to local subscribers. */
void engine_deliver_local(struct engine *en, struct msg *m);
/* Routes a message to every subscriber; true if any subscription matched.
 * Does not take m's reference. */
bool engine_route_publish(struct engine *en, struct msg *m);
/* An envelope from another shard (not ENGINE_ENV_ADOPT): applied and
 * freed, or sent back. */
void engine_handle_env(struct engine *en, struct engine_env *e);
/* At shutdown (every shard thread joined): releases what an envelope left
 * in a queue holds for the engine (a pending SUBACK's share). */
void engine_env_discard(struct engine_env *e);
/* Frees the calling thread's scratch memory. */
void engine_thread_exit(void);
/* A client id's hash: picks its home shard and its bucket, the same on
 * every shard; keyed, so a client cannot choose where it lands. */
uint64_t engine_client_hash(const struct engine_shared *g, const uint8_t *id, size_t len);

/* ---- a connection -------------------------------------------------------- */

/* A new connection on en: phase NEW, created now. */
void engine_conn_init(struct engine_conn *c, struct engine *en, uint64_t id);
/* Releases what the protocol state owns (not the struct). */
void engine_conn_fini(struct engine_conn *c);
/* Bytes from the peer (plaintext: the layers are below). Parses whole
 * packets, keeps a partial one (bounded by the phase's packet limit). */
enum engine_status engine_input(struct engine_conn *c, const uint8_t *data, size_t len);
/* Input that waited (a yield, a hand-off, a pause) goes on. */
enum engine_status engine_resume(struct engine_conn *c);
/* Bytes that arrived while the connection cannot parse (hand-off in
 * flight): kept in order for engine_resume. 0 or -ENOMEM. */
int engine_keep_input(struct engine_conn *c, const uint8_t *data, size_t len);
/* The connection arrived on its home shard en (after ENGINE_HANDOFF). */
enum engine_status engine_adopted(struct engine_conn *c, struct engine *en);
/* The runtime sent sent_bytes (0: none) and holds pending_bytes not yet
 * handed to the kernel:
 * reading resumes under the bound, work waiting for room goes on. */
void engine_output_drained(struct engine_conn *c, size_t sent_bytes, size_t pending_bytes);
/* A password check off the shard came back with rc (an MQTT reason). */
enum engine_status engine_verified(struct engine_conn *c, uint8_t rc);
/* The connection is gone (the peer left, or after the close the engine
 * asked for): detach from its client, publish the will. */
void engine_closed(struct engine_conn *c);
/* Closes (after what is queued): nothing more is parsed; the runtime is
 * asked through engine_fx_close. */
void engine_close(struct engine_conn *c, const char *why);
/* The client id the connection speaks for, for logs (NULL: none yet). */
const uint8_t *engine_conn_client_id(const struct engine_conn *c, size_t *len);
/* The broker stops: 5.0 hears why, then the connection closes. */
void engine_shutdown_notice(struct engine_conn *c);

#endif
