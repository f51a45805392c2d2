/*
 * ringmq-bench: shared definitions between the control thread (main.c,
 * report.c) and the worker threads (worker.c).
 *
 * Threads: main parses options, starts one worker per --threads, and then
 * only steers phases (struct bench_ctl.phase, an atomic) and reads the
 * workers' periodic snapshots, each under its worker's mutex. A worker owns
 * its io_uring ring and its connections; nothing else touches them until the
 * worker thread has been joined, after which main reads the subscribers'
 * trackers to compute the final loss. The TLS context (tls.h) is built by
 * main before the workers start and shared by them.
 */
#ifndef RINGMQ_BENCH_H
#define RINGMQ_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"

enum bench_scenario {
    SCENARIO_PAIRS,
    SCENARIO_FANOUT,
    SCENARIO_FANIN,
    SCENARIO_LATENCY,
    SCENARIO_CONNECT,
    SCENARIO_HANDSHAKE, /* TLS handshake storm: connect, CONNACK, DISCONNECT, again */
    SCENARIO_ABUSE,     /* paced pairs alone, then beside a flood or a connect storm: abuse.c */
    SCENARIO_SOAK,      /* chaos soak, its own loop: soak.c */
};

/* What the abuse scenario's extra client does (abuse.c). */
enum bench_abuser {
    ABUSER_FLOOD,   /* one connection publishing QoS 0 as fast as the broker reads */
    ABUSER_CONNECT, /* connect, CONNECT, CONNACK or close, close, again, --conns at once */
};

struct bench_opts {
    enum bench_scenario scenario;
    const char *scenario_name;
    const char *host;
    uint16_t port;
    uint8_t version; /* enum mqtt_version: 4 or 5 */
    uint8_t qos;
    uint32_t publishers;
    uint32_t subscribers;
    uint32_t clients; /* connect: total connections */
    uint32_t payload_len;
    double rate; /* msgs/s per publisher; connect: connections/s in all; 0 = unpaced */
    double duration_s;
    double warmup_s;
    double hold_s;  /* connect: how long each connection stays open */
    double drain_s; /* upper bound on waiting for in-flight messages after the run */
    uint32_t threads;
    const char *client_prefix;
    const char *topic_prefix;
    const char *username;
    const char *password;
    uint16_t keepalive_s;
    int broker_pid; /* 0: none */
    const char *json_path;
    uint32_t inflight;            /* QoS 1/2 window per publisher */
    uint32_t batch_bytes;         /* publisher send buffer */
    uint32_t connect_concurrency; /* connects in progress per thread */
    bool shared;                  /* fanin: $share/bench/... instead of a plain wildcard */
    bool quiet;                   /* no progress line */
    /* soak */
    double kill_interval_s; /* mean time between kills; 0: no chaos */
    uint64_t seed;          /* chaos random numbers */
    uint32_t groups;        /* share groups among the subscribers */
    /* TLS */
    bool tls;
    const char *cafile;   /* verify the broker against it; NULL: no verification */
    const char *certfile; /* client certificate (mTLS), with keyfile */
    const char *keyfile;
    bool tls_resume;  /* offer the last session a ticket brought */
    uint16_t tls_max; /* highest version offered: TLS1_2_VERSION or TLS1_3_VERSION */
    /* handshake */
    uint32_t conns;      /* handshakes in progress at once, in all */
    bool probe;          /* a publisher/subscriber pair on its own thread beside the storm */
    double probe_rate;   /* the probe's messages/s */
    uint16_t probe_port; /* the probe's broker port; 0: --port */
    /* abuse */
    uint8_t abuser;           /* enum bench_abuser */
    bool abuse_on;            /* this run has the abuser (main sets it for the second run) */
    const char *abuse_topic;  /* the flood's topic, which no well-behaved client uses */
    const char *abuse_source; /* the abuser's source address (bind); NULL: no bind */
};

/* Worker threads: --threads, plus one for the handshake scenario's probe or
 * the abuse scenario's abuser; that extra worker has the last index. */
static inline uint32_t bench_workers(const struct bench_opts *o)
{
    return o->threads + (o->probe || o->abuse_on ? 1u : 0u);
}

enum bench_err {
    BERR_CONNECT,     /* TCP connect failed */
    BERR_CONNACK,     /* CONNACK refused */
    BERR_SUBACK,      /* SUBACK refused */
    BERR_SOCKETS,     /* EMFILE/ENFILE: out of descriptors */
    BERR_PEER_CLOSED, /* broker closed a connection we still used */
    BERR_PROTOCOL,    /* undecodable or unexpected packet */
    BERR_SEND,
    BERR_RECV,
    BERR_TIMEOUT,         /* connect/CONNACK/SUBACK did not come in time */
    BERR_PUB_REFUSED,     /* PUBACK/PUBREC with a reason >= 0x80 */
    BERR_UNEXPECTED_ACK,  /* ack for a packet id not in flight */
    BERR_FOREIGN,         /* payload from a publisher we did not expect */
    BERR_SHORT_PAYLOAD,   /* payload too short to carry id, seq, time */
    BERR_LATENCY_TIMEOUT, /* latency: no delivery within 1 s, moved on */
    BERR_TLS,             /* TLS handshake or record failure, alert from the broker */
    BERR_COUNT,
};

extern const char *const bench_err_names[BERR_COUNT];

struct bench_counters {
    uint64_t offered;   /* messages the pacing asked for */
    uint64_t sent;      /* PUBLISH packets fully written to the socket */
    uint64_t accepted;  /* QoS 0: = sent; QoS 1/2: PUBACK / PUBCOMP received */
    uint64_t delivered; /* PUBLISH packets received by subscribers, duplicates included */
    uint64_t unique;
    uint64_t duplicate;
    uint64_t out_of_order;
    uint64_t too_old;
    uint64_t lost_now; /* gaps seen so far (the final loss is computed at the end) */
    uint64_t pending;  /* gauge: messages generated and not yet accepted */
    uint64_t connects_started;
    uint64_t connects_ok;
    uint64_t connects_done;    /* finished: closed after hold, or failed */
    uint64_t connects_refused; /* of those, closed without a CONNACK 0 */
    uint64_t open_now;         /* gauge */
    uint64_t open_max;
    uint64_t tls_done;    /* TLS handshakes completed */
    uint64_t tls_resumed; /* of which resumed a session */
    uint64_t errors[BERR_COUNT];
};

/* Counter update helpers: main sums snapshots, subtracts window edges. */
void bench_counters_add(struct bench_counters *dst, const struct bench_counters *src);

enum bench_phase {
    PHASE_SETUP = 0, /* connect, subscribe */
    PHASE_RUN,       /* publish (or connect storm) */
    PHASE_DRAIN,     /* stop publishing, let in-flight messages arrive */
    PHASE_STOP,      /* disconnect and exit */
};

struct bench_ctl {
    const struct bench_opts *opts;
    _Atomic int phase;
    _Atomic uint32_t ready;  /* workers whose connections are all set up */
    _Atomic uint32_t failed; /* workers that gave up during setup */
    /* Set by main before phase becomes PHASE_RUN (release/acquire). */
    uint64_t run_start_ns;
    _Atomic uint64_t win_start_ns;
    _Atomic uint64_t win_end_ns; /* main moves it earlier when a run is cut short */
    /* Per-publisher sent count, written by the owning worker before it exits. */
    uint64_t *pub_sent;
    struct btls_ctx *tls;   /* NULL without --tls */
    _Atomic uint32_t fatal; /* handshake: a TLS failure or a refused connect; stop */
};

struct bench_snapshot {
    struct bench_counters c;
    struct hist lat_all;  /* delivery latency, us, whole run */
    struct hist lat_win;  /* delivery latency, us, measured window only */
    struct hist conn_lat; /* connect start -> CONNACK, us */
    /* The worker's own counters at the window edges and when it saw them. */
    struct bench_counters win_start, win_end;
    uint64_t win_start_ns, win_end_ns;
    bool win_started, win_ended;
    uint64_t first_connect_ns, last_connack_ns;
    bool setup_done;
    bool connect_done; /* connect scenario: all this worker's connections done */
};

struct worker;
struct btls_ctx;

/* Creates worker `index` of ctl->opts->threads; returns NULL with a message
 * on stderr when memory or the ring cannot be had. */
struct worker *worker_create(struct bench_ctl *ctl, uint32_t index);
int worker_start(struct worker *w);
void worker_join(struct worker *w);
/* Copies the latest snapshot (thread-safe). */
void worker_snapshot(struct worker *w, struct bench_snapshot *out);
/* After join: adds this worker's subscribers' final loss (sent - unique per
 * stream, from ctl->pub_sent) to *lost and what they should have received to
 * *expected. With --shared the streams are split among subscribers, so only
 * unique_by_pub[publisher] is summed and main computes the loss. */
void worker_final_loss(struct worker *w, uint64_t *lost, uint64_t *expected,
                       uint64_t *unique_by_pub);
void worker_destroy(struct worker *w);

uint64_t bench_now_ns(void);

/* The result of a run, as report.c prints it. */
struct bench_result {
    const struct bench_opts *opts;
    struct bench_counters total;  /* whole run, summed over workers */
    struct bench_counters window; /* measured window, summed */
    double window_s;              /* mean of the workers' windows */
    double offered_per_s, sent_per_s, accepted_per_s, delivered_per_s;
    struct hist lat;     /* measured window */
    struct hist lat_all; /* whole run */
    struct hist conn_lat;
    uint64_t expected;                /* deliveries the subscribers should have had */
    uint64_t lost;                    /* expected - unique (final) */
    double connect_s;                 /* first connect started -> last CONNACK */
    double drain_s;                   /* how long the drain phase took */
    bool drain_timed_out;             /* deliveries were still arriving at --drain */
    double bench_user_s, bench_sys_s; /* own CPU over the window */
    double broker_cpu_s;              /* -1 without --broker-pid */
    /* connect: the broker's VmRSS before the storm and, last seen, while
     * every connection was open; -1 without --broker-pid. */
    double broker_rss_kib_before, broker_rss_kib_open;
    uint64_t tls_tickets; /* sessions the broker sent (NewSessionTicket) */
    const char *tls_desc; /* version, cipher, ALPN of the first handshake */
    bool tls_failed;      /* handshake: stopped at a TLS failure or a refused connect */
    bool interrupted;
    bool setup_failed;
    /* abuse: the abuser's worker, kept apart from the figures above. */
    struct bench_counters abuser_total, abuser_window;
    double abuser_window_s;
    struct hist abuser_conn_lat; /* storm: connect start -> CONNACK 0, us, window */
};

/* Parses the command line (opts.c); -EINVAL after printing why. */
int bench_opts_parse(int argc, char **argv, struct bench_opts *o);

struct sockaddr_in;
/* The broker's address from --host (numeric or a name) and --port
 * (worker_setup.c); 0 or -EINVAL. */
int bench_resolve(const struct bench_opts *o, struct sockaddr_in *out);

void report_print(const struct bench_result *r);
/* Writes the JSON file; 0 or -errno. */
int report_json(const struct bench_result *r, const char *path);
/* The fields of report_json's object, without its braces: for abuse.c,
 * which writes two runs into one file. */
void report_json_fields(FILE *f, const struct bench_result *r);
/* {count, p50, p90, p99, p999, max, mean} and a quoted, escaped string. */
void report_json_hist(FILE *f, const struct hist *h);
void report_json_str(FILE *f, const char *s);

#endif
