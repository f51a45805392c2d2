/*
 * ringmq-bench soak: what soak.c (the clients, the chaos, the run) and
 * soak_report.c (the verdict) share. Private to those two files; everything
 * here belongs to the one thread that runs soak_run().
 */
#ifndef RINGMQ_BENCH_SOAK_INTERNAL_H
#define RINGMQ_BENCH_SOAK_INTERNAL_H

#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "ledger.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "payload fields are written as host LE");

#define NS_PER_MS (1000000ull)
#define NS_PER_S  (1000000000ull)

#define SOAK_MSGS_PER_PUB_MAX (1ull << 22) /* ledger bound: 4 Mi messages per publisher */
#define SOAK_PAYLOAD_HDR      (20u)        /* pub id u32, seq u64, send time ns u64 */
#define SOAK_SESSION_EXPIRY_S (3600u)
#define SOAK_RECEIVE_MAX      (32u)   /* 5.0 Receive Maximum the subscribers announce */
#define SOAK_UNREL_MAX        (4096u) /* QoS 2 received and not released, per subscriber */
#define SOAK_IN_MAX           (1u << 20)
#define SOAK_OUT_MAX          (8u << 20)
#define SOAK_KEEPALIVE_S      (30u)
#define SOAK_HANDSHAKE_NS     (5ull * NS_PER_S) /* TCP connect, CONNACK, SUBACK each */
#define SOAK_SETUP_NS         (20ull * NS_PER_S)
#define SOAK_PING_IDLE_NS     (1ull * NS_PER_S) /* nothing sent this long: PINGREQ */
#define SOAK_STALL_NS         (5ull * NS_PER_S) /* an answer owed this long: stalled */
#define SOAK_DOWN_MAX_NS      (1ull * NS_PER_S) /* longest a killed client stays away */
#define SOAK_BACKOFF_NS       (200ull * NS_PER_MS)
#define SOAK_ARMED_NS         (100ull * NS_PER_MS) /* a mid-flow kill waits this long for a flow */
#define SOAK_PAUSE_MIN_NS     (100ull * NS_PER_MS) /* a paused client reads nothing for this */
#define SOAK_PAUSE_MAX_NS     (500ull * NS_PER_MS) /* ... up to this long */
#define SOAK_SETTLE_NS        (500ull * NS_PER_MS) /* complete this long: late duplicates seen */
#define SOAK_QUIET_NS         (3ull * NS_PER_S) /* idle this long with deliveries missing: lost */
#define SOAK_STOP_NS          (1ull * NS_PER_S)
#define SOAK_CHECK_NS         (50ull * NS_PER_MS)
#define SOAK_LOG_MAX          (20u) /* error lines printed as they happen */
#define SOAK_EXAMPLES_MAX     (10u)

_Static_assert(SOAK_PING_IDLE_NS < SOAK_STALL_NS, "a ping goes out before a stall is called");
_Static_assert(SOAK_RECEIVE_MAX <= SOAK_UNREL_MAX, "the unreleased table holds a full window");

enum soak_phase { SP_SETUP, SP_RUN, SP_DRAIN, SP_STOP };

enum soak_err {
    SE_CONNECT,
    SE_CONNACK,
    SE_SUBACK,
    SE_CLOSED,
    SE_PROTOCOL,
    SE_IO,
    SE_TIMEOUT,
    SE_STALLED,
    SE_REFUSED,
    SE_UNEXPECTED_ACK,
    SE_UNKNOWN_MSG,
    SE_SESSION_LOST,
    SE_PKID_REUSED,
    SE_UNREL_FULL,
    SE_COUNT,
};

enum cstate { CS_DOWN, CS_CONNECTING, CS_CONNACK_WAIT, CS_SUBACK_WAIT, CS_UP, CS_BYE, CS_COUNT };

enum fstage { FL_FREE = 0, FL_PUBLISH, FL_PUBREL };

/* One QoS 1/2 message of a publisher between PUBLISH and its last ack; its
 * packet id is its index + 1. */
struct flight {
    uint64_t seq;
    uint8_t stage;
};

/* A QoS 2 message a subscriber got and has not seen released. */
struct unrel {
    uint32_t pub;
    uint16_t pkid;
    uint64_t seq;
};

/* One subscription of a subscriber: a plain one, or a share group's. */
struct sub {
    char *filter;
    uint32_t recv;  /* ledger receiver: the plain subscriber, or the group */
    uint32_t subid; /* 5.0 Subscription Identifier: 1 plain, 2 + g group g; 0 in 3.1.1 */
    bool granted;   /* SUBACK seen: the session holds it */
};

struct client {
    bool is_pub;
    uint32_t index; /* publisher p or subscriber j */
    char id[128];
    int fd;
    uint8_t state;
    uint64_t since_ns; /* entered the current state */
    uint64_t down_until_ns;
    uint64_t last_rx_ns, last_tx_ns, ping_ns;
    bool ping_out;
    bool had_connack;         /* the broker holds a session for us from now on */
    uint64_t kill_by_ns;      /* chaos: killed mid-flow, or at this time at the latest */
    bool saw_flow;            /* this read carried a PUBLISH, PUBREL or a publisher's ack */
    uint64_t paused_until_ns; /* chaos: not reading until then (a slow client) */
    bool kill_after_pause;
    uint8_t end_state; /* state when the drain ended, before the stop */

    uint8_t *in;
    uint32_t in_len, in_cap;
    uint8_t *out;
    uint32_t out_len, out_off, out_cap;

    /* Publisher. */
    uint8_t qos;
    char *topic;
    struct flight *fl;
    uint32_t fl_cap; /* --inflight */
    uint32_t fl_used, fl_next;
    uint32_t window; /* fl_cap, or less if the broker's Receive Maximum says so */
    double credit;

    /* Subscriber. */
    struct sub subs[2];
    uint8_t nsubs;
    struct unrel *ur;
    uint32_t ur_n;
};

struct soak {
    const struct bench_opts *o;
    struct sockaddr_in addr;
    struct client *c;
    uint32_t nc, npubs, nsubs, nplain, ngroups;
    struct ledger led;
    uint64_t rng;
    int phase;
    uint8_t *payload;
    struct pollfd *pfd;
    uint32_t *pfd_client;

    uint64_t t0_ns, run_ns, drain_ns, stop_ns;
    uint64_t published, acked, delivered; /* live, for the progress line */
    uint64_t kills, kills_pub, kills_sub, pauses;
    uint64_t reconnects, resumed;
    uint64_t resent_publish, resent_pubrel;
    uint64_t dup_flagged;   /* PUBLISH with DUP received */
    uint64_t q2_recognised; /* QoS 2 resends recognised by packet id */
    uint64_t err[SE_COUNT];
    uint32_t logged;
    uint32_t dup_logged;
    bool setup_failed, drain_complete, interrupted, capped;
    uint32_t end_not_up, end_flows_open; /* when the drain ended */
    uint64_t end_missing;
    uint32_t short_expiry_s; /* 5.0: a CONNACK cut the session expiry to this (0: not seen) */
    bool drain_idle;         /* the drain ended idle with deliveries missing: they are lost */

    /* The loop's clocks. */
    bool pubs_started;
    uint64_t last_tick_ns, last_check_ns, last_drain_check_ns, next_progress_ns, next_kill_ns;
    uint64_t settled_since_ns; /* the drain looked complete since then */
    uint64_t last_publish_ns;  /* a PUBLISH last arrived, at any subscriber */
};

extern const char *const soak_err_names[SE_COUNT];
extern const char *const soak_state_names[CS_COUNT];

/* "plain subscriber <client id>" or "share group soak<g>", written to buf. */
const char *soak_recv_name(const struct soak *s, uint32_t r, char *buf, size_t len);
/* After the stop: judges the ledger and the errors, prints the verdict on
 * stdout, writes --json; returns the exit status (0 passed, 1 not). */
int soak_report(struct soak *s);

#endif
