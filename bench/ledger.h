/*
 * The soak's ledger: what each publisher published, what the broker
 * acknowledged, and how often each message reached each receiver.
 *
 * A stream is one publisher's messages, numbered from 0 by the publisher; it
 * has one QoS (1 or 2). A receiver is whoever must get every message exactly
 * once (QoS 2) or at least once (QoS 1): a plain subscriber, or a whole share
 * group, where a delivery to any member counts for the group. Per message
 * the ledger keeps one flags byte and one delivery count per receiver
 * (saturating at 255), so a run of N messages to R receivers costs N * (1 + R)
 * bytes; streams grow by doubling up to max_per_pub messages.
 *
 * The verdict (ledger_tally): a message the broker acknowledged (PUBACK for
 * QoS 1, PUBREC for QoS 2) and some receiver never got is lost; a QoS 2
 * message that some receiver got more than once is a duplicate, acknowledged
 * or not. A message the broker never acknowledged need not arrive.
 *
 * Caller-owned memory, no syscalls, one thread.
 */
#ifndef RINGMQ_BENCH_LEDGER_H
#define RINGMQ_BENCH_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_CHUNK_MIN (1024u) /* first allocation of a stream, in messages */

enum ledger_flag {
    LEDGER_ACKED = 1u << 0,   /* PUBACK / PUBREC with a reason below 0x80 */
    LEDGER_REFUSED = 1u << 1, /* the broker answered with a reason >= 0x80 */
};

struct ledger_stream {
    uint64_t next; /* messages published: sequence numbers 0..next-1 */
    uint64_t cap;  /* messages flags and recv have room for */
    uint8_t qos;   /* 1 or 2 */
    uint8_t *flags;
    uint8_t *recv; /* recv[seq * nrecv + r]: deliveries of seq to receiver r */
};

struct ledger {
    uint32_t npubs;
    uint32_t nrecv;
    uint64_t max_per_pub;
    struct ledger_stream *s;
};

/* Per QoS (index 1 and 2; 0 unused). "lost" and "duplicates" count
 * (message, receiver) pairs. */
struct ledger_tally {
    uint64_t published[3];
    uint64_t acked[3];
    uint64_t refused[3];
    uint64_t expected[3];    /* acked x receivers */
    uint64_t delivered[3];   /* every delivery, duplicates included */
    uint64_t duplicates[3];  /* deliveries beyond the first to a receiver */
    uint64_t dup_pairs[3];   /* (message, receiver) pairs delivered more than once */
    uint64_t lost[3];        /* acked, and a receiver has none */
    uint64_t unacked_got[3]; /* not acknowledged, yet some receiver has it */
};

struct ledger_miss {
    uint32_t pub;
    uint64_t seq;
    uint32_t recv;
};

/* qos[p] is stream p's QoS (1 or 2). 0 or -ENOMEM / -EINVAL. */
int ledger_init(struct ledger *l, uint32_t npubs, const uint8_t *qos, uint32_t nrecv,
                uint64_t max_per_pub);
void ledger_fini(struct ledger *l);

/* Numbers a new message of stream pub: 0 with *seq set, -ENOSPC at
 * max_per_pub, -ENOMEM. */
int ledger_publish(struct ledger *l, uint32_t pub, uint64_t *seq);
/* The broker acknowledged (refused = false) or refused it. True the first
 * time a message is acknowledged. */
bool ledger_ack(struct ledger *l, uint32_t pub, uint64_t seq, bool refused);
/* Was (pub, seq) published? */
bool ledger_known(const struct ledger *l, uint32_t pub, uint64_t seq);
/* One delivery of (pub, seq) to receiver r, which must be known; returns the
 * deliveries of it to r so far, this one included (at most 255). */
uint32_t ledger_deliver(struct ledger *l, uint32_t pub, uint64_t seq, uint32_t r);
/* Sums the whole ledger into *t (overwritten). */
void ledger_tally(const struct ledger *l, struct ledger_tally *t);
/* Writes up to max lost (message, receiver) pairs to out, in stream and
 * sequence order; returns how many. */
size_t ledger_lost(const struct ledger *l, struct ledger_miss *out, size_t max);
/* Adds to out[r] (nrecv entries) the acknowledged messages receiver r has
 * not had. */
void ledger_lost_per_recv(const struct ledger *l, uint64_t *out);
/* Acknowledged (message, receiver) pairs not delivered yet: 0 when the
 * ledger is complete. */
uint64_t ledger_missing(const struct ledger *l);

#endif
