/*
 * Authentication and authorization decisions. Pure: the shard asks, this
 * module answers from an immutable security snapshot, with no locks.
 *
 * Today the snapshot holds the per-listener anonymous policy only; the
 * password file, ACL and bans (later work) are compiled into the same
 * snapshot and consulted by the same calls, so the shard's call sites do not
 * change when they arrive.
 */
#ifndef RINGMQ_AUTH_H
#define RINGMQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The read-mostly snapshot. Shards read it through one atomic pointer; a
 * reload builds a new one. */
struct auth_snapshot {
    uint64_t generation;
    uint32_t listener_count;
    bool allow_anonymous[LISTENERS_MAX];
    /* Credentials, ACL rules and bans join here. */
};

/* Builds a snapshot from a finished config. NULL on ENOMEM. */
struct auth_snapshot *auth_snapshot_create(const struct config *c, uint64_t generation);
void auth_snapshot_destroy(struct auth_snapshot *s);

/* What a CONNECT presents. Views into the packet; peer is the numeric
 * address. */
struct auth_request {
    uint32_t listener;
    const char *peer;
    const uint8_t *client_id;
    size_t client_id_len;
    bool has_username;
    const uint8_t *username;
    size_t username_len;
    bool has_password;
    const uint8_t *password;
    size_t password_len;
};

/* Decides a CONNECT: MQTT_RC_SUCCESS, MQTT_RC_NOT_AUTHORIZED or
 * MQTT_RC_BAD_USERNAME_OR_PASSWORD (5.0 reason codes; the codec maps them for
 * 3.1.1). With no credentials configured, mosquitto's rule holds: anyone is
 * accepted where anonymous access is allowed, nobody elsewhere. */
uint8_t auth_connect(const struct auth_snapshot *s, const struct auth_request *r);

enum auth_access { AUTH_READ = 1, AUTH_WRITE = 2, AUTH_SUBSCRIBE = 4 };

/* The identity a session was authenticated with, kept by the session. */
struct auth_client {
    uint32_t listener;
    const uint8_t *client_id;
    size_t client_id_len;
    const uint8_t *username; /* NULL when anonymous */
    size_t username_len;
};

/* May this client SUBSCRIBE with this filter / PUBLISH (or set a will) to
 * this topic / receive a message on this topic? */
bool auth_allowed(const struct auth_snapshot *s, const struct auth_client *c,
                  enum auth_access access, const uint8_t *topic, size_t topic_len);

#endif
