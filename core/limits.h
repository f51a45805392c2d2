/*
 * Compile-time ceilings. Every runtime limit that comes from the config is
 * checked against the ceiling here at start-up; every length that comes from
 * a peer is checked against a runtime limit before it is used or allocated.
 * Names carry their unit.
 */
#ifndef RINGMQ_LIMITS_H
#define RINGMQ_LIMITS_H

/* Threads and shards. Shard masks are uint64_t. */
#define SHARDS_MAX 64

/* Listeners in one config. */
#define LISTENERS_MAX 16

/* The MQTT variable byte integer tops out at 268,435,455 [MQTT-1.5.5]. */
#define PACKET_SIZE_MAX     268435455u
#define PACKET_SIZE_DEFAULT (1024u * 1024u)

/* Topic names and filters: UTF-8 strings are at most 65535 bytes [MQTT-1.5.4]. */
#define TOPIC_LEN_MAX    65535u
#define TOPIC_LEVELS_MAX 128u

/* Topic aliases per connection and direction (two-byte field). The
 * broker-to-client table is bounded separately: it costs memory per
 * connection. */
#define TOPIC_ALIAS_MAX     65535u
#define TOPIC_ALIAS_OUT_MAX 64u

/* Subscriptions one client may hold. */
#define SUBSCRIPTIONS_PER_CLIENT_MAX 1000000u

/* Client identifiers: the spec requires 23, we allow up to this many bytes. */
#define CLIENT_ID_LEN_MAX 256u

/* Subscription identifiers carried on one delivered PUBLISH. */
#define SUBID_PER_PUBLISH_MAX 8u
#define SUBID_VALUE_MAX       268435455u

/* Per-session QoS 1/2 state. */
#define INFLIGHT_MAX        65535u
#define QUEUED_MESSAGES_MAX 1000000u
#define QUEUED_BYTES_MAX    (1ull << 34)
/* Retained store bounds (config max_retained_messages / max_retained_bytes):
 * defaults generous enough for real deployments, finite so that clients
 * publishing retained messages to ever new topics cannot exhaust memory. */
#define RETAINED_MESSAGES_DEFAULT 1000000u
#define RETAINED_BYTES_DEFAULT    (1024ull * 1024u * 1024u)
#define RETAINED_BYTES_MAX        (1ull << 40)

/* Retained messages a SUBSCRIBE matched wait per client to be sent as its
 * output and queue make room, at most RETAINED_BACKLOG_MAX (more are
 * dropped and counted), RETAINED_PER_TURN handed out per loop turn. */
#define RETAINED_BACKLOG_MAX 65536u
#define RETAINED_PER_TURN    1024u

/* Per-connection output buffered in user space before reads are paused. */
#define OUTPUT_BUFFER_MAX (64u * 1024u * 1024u)

/* A closing connection's queued output (a DISCONNECT, a CONNACK) gets this
 * long to drain before the socket is cut: a peer that does not read cannot
 * hold a connection open. */
#define CLOSE_FLUSH_MAX_MS 2000u
/* Once that output is out, the broker half-closes and reads and discards
 * what the peer still sends, for at most CLOSE_LINGER_MS or
 * CLOSE_LINGER_BYTES_MAX bytes or until the peer closes: closing with
 * unread input would reset the connection, and the peer would lose the
 * DISCONNECT or CONNACK that says why (the lingering close of HTTP
 * servers). The second-granular scan may add up to a second. */
#define CLOSE_LINGER_MS        2000u
#define CLOSE_LINGER_BYTES_MAX (1024u * 1024u)

/* Keepalive in seconds (two-byte field). */
#define KEEPALIVE_MAX_S 65535u

/* One shard loop turn handles at most this many completions. */
#define LOOP_CQES_MAX 256u
/* Deadlines fired per loop turn (the rest fire next turn, without sleeping). */
#define LOOP_TIMERS_MAX 1024u
/* One connection's input parsed per turn before yielding to others. */
#define LOOP_READ_BYTES_MAX (256u * 1024u)
/* A shard's input parsed per loop turn, all connections together. Turns
 * stay short, so acknowledgements and output are not starved by a flood of
 * publishes: QoS 1 delivery, limited by the inflight window per round trip,
 * depends on it. */
#define LOOP_TURN_INPUT_BYTES_MAX (128u * 1024u)

/* Flow control from draining subscribers to their publishers (net/flow.c):
 * a subscriber is draining while it acknowledged something (QoS 1/2) or its
 * output moved (QoS 0) within FLOW_STALE_MS; at half its queue bound (QoS
 * 1/2; at most FLOW_HOLD_QUEUE_MAX) or half max_output_buffer (QoS 0) it
 * holds the publishers of what lands there for a lease of
 * FLOW_HOLD_LEASE_MS, renewed while it stays over and released at half
 * that mark (QoS 0: a quarter of the buffer). While draining its queue may pass
 * max_queued_messages by FLOW_SLACK_MESSAGES (what was read before a hold
 * took effect). A session remembers FLOW_HOLDS_PER_SESSION publishers (to
 * release them and to renew each at most every half lease); past that the
 * oldest is forgotten and ends with its lease. */
#define FLOW_STALE_MS          1000u
#define FLOW_HOLD_LEASE_MS     100u
#define FLOW_SLACK_MESSAGES    16384u
#define FLOW_HOLD_QUEUE_MAX    1024u
#define FLOW_HOLDS_PER_SESSION 64u
/* Subscribers a publisher remembers as holding it (each ends its own hold). */
#define FLOW_HOLDERS_PER_PUBLISHER 16u
/* Near memory_limit the publisher of a message stored for later delivery
 * is held by FLOW_HOLDER_MEMORY (a uid no client has: sequences start at
 * 1), on the same lease; a shard remembers FLOW_MEMORY_MEMO of them (by
 * client id hash, power of two) so that each is asked for at most every
 * half lease. */
#define FLOW_HOLDER_MEMORY 0u
#define FLOW_MEMORY_MEMO   64u
/* How often a session that holds publishers is checked for going stale. */
#define FLOW_CHECK_MS 1000u
_Static_assert(FLOW_HOLD_LEASE_MS < FLOW_STALE_MS, "a lease is shorter than staleness");

/* Cross-shard queue capacity per ordered pair (power of two). */
#define XQ_CAPACITY 4096u

/* Provided buffer ring per shard. */
#define BUF_RING_ENTRIES  512u
#define BUF_RING_BUF_SIZE 16384u

/* Handshakes off the hot path (net/conn.c): a connection's input waits in
 * its shard's handshake queue while it would run public-key work, up to
 * CONN_HELD_MAX bytes, past which it goes up at once (a ClientHello is at
 * most 16 KiB; a client certificate chain is bounded by TLS_CERT_LIST_MAX,
 * net/tls.c); the loop works the queue after serving everything else, for
 * at most HANDSHAKE_TURN_BUDGET_US per turn (at least one handshake step). */
#define CONN_HELD_MAX            (64u * 1024u)
#define HANDSHAKE_TURN_BUDGET_US 500u

/* Password checks off the shards (net/authpool.c): worker threads at most,
 * and CONNECTs waiting for a check in all (queued, hashing, or answered and
 * not yet picked up by their shard). Past the bound a CONNECT is refused with
 * 0x89 Server busy: each job holds a copy of its CONNECT (bounded by
 * max_packet_size) and the queue's wait is what an attacker would grow. */
#define AUTH_THREADS_MAX 16u
/* auth_cache_seconds: how long a verified password is let in again without
 * hashing (security/cred_cache.h); a reload forgets sooner. */
#define AUTH_CACHE_S_DEFAULT 600u
#define AUTH_CACHE_S_MAX     86400u
#define AUTH_JOBS_MAX        4096u

/* 5.0 enhanced authentication: the largest Authentication Data the broker
 * sends or accepts in one step (SCRAM messages fit: scram.h). */
#define AUTH_DATA_MAX 1024u

/* Config file lines. */
#define CONFIG_LINE_MAX 4096u

_Static_assert(SHARDS_MAX <= 64, "shard masks are uint64_t");
_Static_assert((XQ_CAPACITY & (XQ_CAPACITY - 1)) == 0, "XQ_CAPACITY must be a power of two");
_Static_assert((BUF_RING_ENTRIES & (BUF_RING_ENTRIES - 1)) == 0,
               "buffer ring size is a power of two");
_Static_assert(PACKET_SIZE_DEFAULT <= PACKET_SIZE_MAX, "default packet size within the spec");

#endif
