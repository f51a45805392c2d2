/*
 * A session's QoS state (MQTT 4.3, 4.4, 4.6): what has been sent to the
 * client and not yet acknowledged (inflight), what waits to be sent (the
 * queue, bounded in messages and bytes), and which QoS 2 packet ids the
 * client sent us that still wait for PUBREL.
 *
 * Pure bookkeeping: the shard that owns the session calls these functions
 * and does the writing. Only the session's home shard touches it.
 */
#ifndef RINGMQ_SESSION_H
#define RINGMQ_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "message.h"

/* One message on its way to a client: the shared message plus what is
 * particular to this receiver. */
struct delivery {
    struct msg *msg; /* one reference held */
    uint8_t qos;     /* min(message QoS, granted QoS) */
    bool retain;     /* retain flag as sent to this receiver */
    uint8_t subid_count;
    uint32_t subids[SUBID_PER_PUBLISH_MAX];
    uint64_t share_key; /* the share group it came through, 0 for none */
    bool stored;        /* a retained message sent for a SUBSCRIBE, not a live one */
};

enum session_inflight_state {
    SESSION_AWAIT_PUBACK = 1, /* QoS 1 sent */
    SESSION_AWAIT_PUBREC = 2, /* QoS 2 sent */
    SESSION_AWAIT_PUBCOMP = 3 /* QoS 2, PUBREL sent (message released) */
};

struct session_inflight {
    uint16_t packet_id;
    uint8_t state;     /* enum session_inflight_state, 0 = acknowledged hole */
    struct delivery d; /* d.msg NULL once PUBREC came */
};

struct session_qnode {
    struct session_qnode *next;
    struct delivery d;
};

struct session_limits {
    uint32_t inflight_max;     /* unacknowledged QoS 1/2 messages towards the client */
    uint32_t queued_max;       /* messages */
    uint64_t queued_bytes_max; /* 0 = no byte bound beyond queued_max */
};

struct session {
    struct session_limits lim;

    /* Outgoing inflight, oldest first: a ring of inflight_max slots. */
    struct session_inflight *inflight;
    uint32_t inflight_head;  /* index of the oldest */
    uint32_t inflight_count; /* slots used, holes included */
    uint32_t inflight_live;  /* slots not acknowledged */
    uint32_t window;         /* live entries allowed: min(cap, client's receive maximum) */
    uint16_t next_packet_id;

    /* Queued, oldest first. */
    struct session_qnode *q_head, *q_tail;
    uint32_t queued;
    uint64_t queued_bytes;
    uint64_t dropped;      /* messages dropped because the queue was full */
    uint32_t queued_slack; /* set by the owner: room past queued_max for now (flow control) */
    uint32_t expired;      /* queued messages session_next dropped as expired; the owner
                              counts and clears it */

    /* Incoming QoS 2 packet ids awaiting PUBREL (method B of 4.3.3:
     * delivered onward on PUBLISH, id kept until PUBREL). */
    uint16_t *qos2_in;
    uint32_t qos2_in_count;
    uint32_t qos2_in_cap;
};

/* 0 or -ENOMEM. */
int session_init(struct session *s, const struct session_limits *lim);
/* Drops every reference and frees what it owns. */
void session_fini(struct session *s);

/* Applies a reconnecting client's limits: lim->inflight_max narrows the
 * window (never beyond the ring sized at init); live entries over a smaller
 * window stay until acknowledged. Queue bounds apply to later enqueues. */
int session_set_limits(struct session *s, const struct session_limits *lim);

enum session_enqueue_result {
    SESSION_QUEUED = 0,
    SESSION_DROPPED_FULL = 1, /* over queued_max or queued_bytes_max: counted in dropped */
    SESSION_DROPPED_NOMEM = 2,
};

/* Queues d (taking over its msg reference; on a drop the reference is
 * released). QoS 0 deliveries are the caller's to send or drop: they never
 * come here. */
int session_enqueue(struct session *s, struct delivery *d);

/* Puts back a delivery this session had stored already (taken out by
 * session_take_shared, with nowhere else to go): appended whatever the
 * bounds, which it was counted against once. Takes over d->msg; false
 * (reference released, counted in dropped) only without memory. */
bool session_requeue(struct session *s, struct delivery *d);

/* Moves the oldest queued delivery into inflight if there is room, assigns
 * its packet id and copies it to *out (out->msg is a borrowed pointer that
 * inflight keeps referenced). Expired messages (at now_ms) are dropped on the
 * way. Returns false when nothing can be sent now. */
bool session_next(struct session *s, uint64_t now_ms, struct delivery *out, uint16_t *packet_id);

/* A PUBACK, PUBREC or PUBCOMP from the client. Returns 0, -ENOENT (no such
 * packet id in the matching state), for PUBREC the message is released and
 * the caller sends PUBREL. */
int session_acked(struct session *s, uint8_t packet_type, uint16_t packet_id);

/* Walks inflight oldest first for a resumed session: fn is called with each
 * entry (state tells whether to resend PUBLISH with DUP or PUBREL). */
typedef void (*session_inflight_fn)(void *ctx, const struct session_inflight *e);
void session_for_each_inflight(const struct session *s, session_inflight_fn fn, void *ctx);

/* Takes out the deliveries that came through a shared subscription and may
 * go to another member when this one's connection is gone (MQTT 4.8.2):
 * queued ones of any QoS, and inflight QoS 1 ones not yet acknowledged. An
 * inflight QoS 2 message stays: its delivery must complete with this client
 * [MQTT-4.8.2-4]. fn receives each delivery and owns its reference. Returns
 * how many were taken. */
typedef void (*session_take_fn)(void *ctx, struct delivery *d);
uint32_t session_take_shared(struct session *s, session_take_fn fn, void *ctx);

/* Incoming QoS 2. session_qos2_seen: true if the id was new (deliver the
 * message) and is now recorded, false if it is already awaiting PUBREL (a
 * resend: do not deliver again). -ENOMEM as a negative return.
 * session_qos2_release: true if the id was recorded (now forgotten). */
int session_qos2_seen(struct session *s, uint16_t packet_id, uint32_t max_ids);
bool session_qos2_release(struct session *s, uint16_t packet_id);

#endif
