/*
 * Fake effects for the engine's unit tests (core/engine_fx.h): every
 * effect records what the engine asked for, so a test drives the engine by
 * hand (no socket, no thread) and asserts what a client would see. Also
 * fakes core/log.h, keeping the lines in memory.
 *
 * A connection is a heap struct fake_conn whose first member is the
 * engine's struct engine_conn; fake_conn_of() gets it back.
 */
#ifndef RINGMQ_ENGINE_FX_FAKE_H
#define RINGMQ_ENGINE_FX_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "engine_fx.h"

#define FAKE_SHARDS 3u

struct fake_auth; /* one 2-step exchange's state (engine_fx_auth_step) */

/* The fake's enhanced authentication methods: "FAKE-2STEP" (data "hello",
 * then "resp"), and "FAKE-2STEP-PLUS", the same exchange bound to TLS as
 * SCRAM-SHA-512-PLUS is: usable only where e.who.tls_exporter_ok. */
#define FAKE_AUTH_METHOD      1u
#define FAKE_AUTH_METHOD_PLUS 2u

struct fake_conn {
    struct engine_conn e; /* first: fake_conn_of() */
    struct fake_conn *next;
    bool output;      /* engine_fx_output was called since the flag was cleared */
    bool reading;     /* engine_fx_read_stop / read_start */
    bool resume_due;  /* engine_fx_yield: the harness calls engine_resume */
    bool closed;      /* engine_fx_close */
    char why[128];    /* its reason ("" for NULL) */
    bool gone;        /* the harness called engine_closed */
    bool moving;      /* handed off, its ENGINE_ENV_ADOPT not yet delivered */
    int holds;        /* engine_fx_hold minus engine_fx_release */
    bool login_waits; /* engine_fx_login answered ENGINE_LOGIN_PENDING */
    struct fake_auth *auth;
    /* The test's side: the client's protocol version, what the harness
     * took from e.out (rx, parsed up to rx_off) and the last packet read
     * from it (views into rx, valid until the next read) with its bytes. */
    uint8_t ver;
    struct buf rx;
    size_t rx_off;
    struct mqtt_packet pkt;
    const uint8_t *raw;
    size_t raw_len;
};

static inline struct fake_conn *fake_conn_of(struct engine_conn *c)
{
    return (struct fake_conn *)c;
}

/* What the fakes decide, and what they count. Reset by fake_reset(). */
struct fake_fx {
    bool congested;
    bool anonymous;     /* engine_fx_login accepts a CONNECT without username */
    bool login_pending; /* engine_fx_login answers ENGINE_LOGIN_PENDING */
    unsigned logins;
    uint8_t admit_rc; /* what engine_fx_admit answers (0: admitted) */
    unsigned admits;  /* engine_fx_admit calls, counted ones */
    unsigned admits_counted;
    unsigned login_failures; /* engine_fx_login_failed calls */
    /* The retained store's lock: held now (readers or a writer), taken in all. */
    int retain_readers, retain_writers;
    unsigned retain_locks;
    /* Deny list for engine_fx_allowed: access bits and a topic prefix. */
    struct fake_deny {
        unsigned access;
        char prefix[64];
    } deny[8];
    unsigned deny_n;
    unsigned auth_live;        /* 2-step exchanges started and not ended */
    unsigned auth_steps;       /* engine_fx_auth_step calls */
    uint32_t auth_step_method; /* the method of the last one */
    unsigned runtime_timers;   /* engine_fx_timer calls */
    int log_level;
};
extern struct fake_fx fake;

/* Forgets the decisions, the queues and the log (frees what they hold). */
void fake_reset(void);

/* Connections, in creation order (fake_conns). */
extern struct fake_conn *fake_conns;
struct fake_conn *fake_conn_new(struct engine *en);
/* engine_conn_fini, unlink, free. */
void fake_conn_free(struct fake_conn *fc);

/* Cross-shard queues: one FIFO per (from, to). */
void *fake_queue_pop(unsigned from, unsigned to);
size_t fake_queue_len(unsigned from, unsigned to);

/* Denies access (ENGINE_READ / WRITE / SUBSCRIBE bits) to topics starting
 * with prefix. */
void fake_deny(unsigned access, const char *prefix);

/* The log: lines kept since fake_reset; true if one contains text. */
bool fake_log_has(const char *text);
size_t fake_log_count(void);

#endif
