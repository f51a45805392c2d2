/*
 * Password checks off the shards (authpool.c): a bounded queue, worker
 * threads, answers back to each shard's list and eventfd.
 */
#ifndef RINGMQ_AUTHPOOL_H
#define RINGMQ_AUTHPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"

struct broker;
struct shard;
struct conn;
struct authpool;

/* A password check handed to the pool. Owned by the pool from
 * authpool_submit until it is on its shard's completion list, then by
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

/* Created (threads > 0; *out NULL for 0) and stopped, which answers what
 * is still queued with MQTT_RC_SERVER_UNAVAILABLE and joins the workers, by
 * the main thread; destroyed once the shards are joined. */
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

#endif
