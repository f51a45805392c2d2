/*
 * ringmq-bench worker internals, shared by worker.c (the loop, the I/O and
 * the MQTT client logic) and worker_setup.c (building and tearing down a
 * worker's connections). Nothing outside the worker includes this.
 *
 * Everything here belongs to one worker thread; see bench.h for the few
 * fields main reads (the snapshot, under lock).
 */
#ifndef RINGMQ_BENCH_WORKER_INTERNAL_H
#define RINGMQ_BENCH_WORKER_INTERNAL_H

#include "bench.h"
#include "codec.h"
#include "obuf.h"
#include "seqtrack.h"

#include <liburing.h>
#include <netinet/in.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "payload fields are written as host LE");

#define PAYLOAD_HDR_LEN    20u /* pub id u32, seq u64, send time ns u64 */
#define IN_BUF_SUB         (64u * 1024u)
#define IN_BUF_SUB_MANY    (16u * 1024u) /* when a thread has many subscribers */
#define IN_BUF_SMALL       (4u * 1024u)
#define IN_BUF_MAX         OBUF_MAX
#define OUT_BUF_SMALL      (1024u)
#define SETUP_TIMEOUT_NS   (15ull * 1000000000ull)
#define CONNECT_TIMEOUT_NS (10ull * 1000000000ull)
#define LATENCY_TIMEOUT_NS (1000000000ull)
#define STOP_GRACE_NS      (1000000000ull)
#define SNAPSHOT_PERIOD_NS (100000000ull)
#define RING_ENTRIES       1024u
#define CQ_ENTRIES         16384u
#define PKID_WORDS         (65536u / 64u)
/* The abuse flood's SO_SNDBUF (the kernel doubles it): see conn_open. */
#define ABUSE_FLOOD_SNDBUF (128u * 1024u)
/* TLS receive buffers: at least one whole record (16 KiB of plaintext plus
 * the record's overhead), so a partial record always leaves room. */
#define TLS_RX_SMALL (20u * 1024u)
#define TLS_RX_SUB   (64u * 1024u)
_Static_assert(TLS_RX_SMALL >= 16384u + 256u + 5u, "one TLS record fits the receive buffer");

enum role { ROLE_PUB, ROLE_SUB, ROLE_CONN };

enum conn_state {
    CS_IDLE,         /* not started (connect scenario) */
    CS_CONNECTING,   /* TCP connect in flight, then the TLS handshake */
    CS_CONNACK_WAIT, /* CONNECT sent */
    CS_SUBACK_WAIT,  /* SUBSCRIBE sent */
    CS_READY,
    CS_HELD,          /* connect scenario: waiting for its hold time */
    CS_DISCONNECTING, /* DISCONNECT queued; waiting for the broker to close */
    CS_CLOSING,       /* shut down; waiting for ops to complete */
    CS_CLOSED,
};

enum op { OP_RECV = 0, OP_SEND = 1, OP_CONNECT = 2, OP_TICK = 3 };

struct conn {
    struct worker *w;
    int fd;
    uint32_t id; /* publisher / subscriber / client index across all threads */
    uint8_t role;
    uint8_t state;
    uint8_t ops; /* io_uring operations in flight */
    bool dirty;
    bool send_inflight;
    bool recv_inflight;
    bool failed;      /* counted as an error already */
    bool connacked;   /* ROLE_CONN: this connection got its CONNACK 0 */
    struct btls *tls; /* NULL without --tls */
    uint32_t gen;     /* handshake: connections this slot has opened */
    uint64_t t_start_ns;
    uint64_t t_last_send_ns;
    uint64_t hold_until_ns;

    uint8_t *in;
    uint32_t in_len;
    uint32_t in_cap;
    struct obuf fill;
    struct obuf busy;
    uint32_t busy_off;

    /* Publisher. */
    uint64_t next_seq;
    uint64_t sent;
    double credit;
    uint32_t inflight;
    uint32_t inflight_max;
    uint16_t next_pkid;
    uint64_t *pkid_used;
    bool awaiting; /* latency: a message is on its way */
    uint64_t await_since_ns;
    uint8_t *tmpl;
    uint32_t tmpl_len;
    uint32_t tmpl_payload_off;
    uint32_t tmpl_pkid_off;
    char *topic;

    /* Subscriber. */
    struct seqtrack *streams;
    uint32_t first_pub;
    uint32_t npubs;
    struct conn *lat_pub; /* latency: the publisher this subscriber releases */
    char *filter;
};

struct worker {
    struct bench_ctl *ctl;
    const struct bench_opts *o; /* ctl->opts, or own_opts for the abuser */
    struct bench_opts own_opts;
    uint32_t index;
    pthread_t thread;
    struct io_uring ring;
    bool ring_ok;
    struct sockaddr_in addr;

    struct conn *conns;
    uint32_t nconns;
    uint32_t npubs_local;
    struct conn **dirty;
    uint32_t ndirty;

    bool storm;   /* a handshake-storm worker: slots that reconnect */
    bool abuser;  /* the abuse scenario's flood or connect storm */
    bool bind_on; /* bind every socket to bind_addr before connecting */
    struct sockaddr_in bind_addr;
    bool lat_mode;   /* publishers wait for their delivery (latency, the probe) */
    double pub_rate; /* msgs/s per publisher; 0: unpaced */

    struct bench_counters c;
    struct hist lat_all, lat_win, conn_lat;
    struct bench_counters win_start, win_end;
    uint64_t win_start_ns, win_end_ns;
    bool win_started, win_ended;
    uint64_t first_connect_ns, last_connack_ns;
    bool setup_done, setup_reported, connect_done;

    /* Pacing. */
    struct __kernel_timespec tick_ts;
    uint64_t tick_ns;
    uint64_t last_tick_ns;
    uint64_t last_ping_check_ns;
    uint64_t last_snapshot_ns;
    double offered_frac;
    int phase_seen;

    /* Connect scenario. */
    uint32_t next_start;
    uint32_t connecting;
    double connect_credit;
    struct conn **hold_q; /* FIFO: every connection enters once (handshake:
                           * the slots to reconnect, a ring of nconns) */
    uint32_t hold_head, hold_tail;
    uint64_t storm_left; /* handshake --clients: connections still to start */
    bool warned_fds;
    bool warned_bind;

    uint64_t stop_deadline_ns;

    pthread_mutex_t lock;
    struct bench_snapshot snap;
};

static inline struct mqtt_bytes bytes_of(const char *s)
{
    struct mqtt_bytes b = {(const uint8_t *)s, s ? (uint32_t)strlen(s) : 0};
    return b;
}

#endif
