/*
 * Authentication and authorization decisions. Pure: the shard asks, this
 * module answers from an immutable security snapshot, with no locks.
 *
 * The snapshot holds the per-listener anonymous policy, the password file
 * (mosquitto's format) and the enhanced authentication methods offered; the
 * ACL and bans (later work) are compiled into the same snapshot and
 * consulted by the same calls, so the shard's call sites do not change when
 * they arrive.
 */
#ifndef RINGMQ_AUTH_H
#define RINGMQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "passwd.h"

/* The read-mostly snapshot. Shards read it through one atomic pointer; a
 * reload builds a new one. */
struct auth_snapshot {
    uint64_t generation;
    uint32_t listener_count;
    bool allow_anonymous[LISTENERS_MAX];
    struct passwd_db *passwd; /* NULL: no password_file */
    uint32_t auth_methods;    /* enum config_auth_method bits */
    /* ACL rules and bans join here. */
};

/* The contents of the files a config names, read by the caller: security/
 * parses bytes and reads no file. Views, only read, and not kept past
 * auth_snapshot_create. */
struct auth_files {
    const uint8_t *passwd; /* c->password_file's bytes; unused when that is "" */
    size_t passwd_len;
    /* The ACL file joins here. */
};

/* Builds a snapshot from a finished config and the files it names (f).
 * NULL on failure with "file:line: what is wrong" (or "out of memory") in
 * err, the file named by its path in the config. Pure; the main thread
 * calls it. */
struct auth_snapshot *auth_snapshot_create(const struct config *c, uint64_t generation,
                                           const struct auth_files *f, char *err, size_t errlen);
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

/* Decides a CONNECT's username and password: MQTT_RC_SUCCESS,
 * MQTT_RC_NOT_AUTHORIZED or MQTT_RC_BAD_USERNAME_OR_PASSWORD (5.0 reason
 * codes; the codec maps them for 3.1.1). mosquitto 2.0's rules: a client
 * without a username is anonymous and is let in where anonymous access is
 * allowed; with a password file, a client naming a user must give that
 * user's password (an unknown user is refused even where anonymous access
 * is allowed); with no password file a username proves nothing and counts
 * as anonymous. */
uint8_t auth_connect(const struct auth_snapshot *s, const struct auth_request *r);

/* auth_connect in two halves, for a caller that hashes on another thread:
 * auth_connect_prepare decides from the snapshot, auth_check_verdict does
 * the hashing from a copy that holds no pointer into the snapshot (a reload
 * may free it meanwhile). auth_connect(s, r) is exactly
 * prepare, then the verdict when prepare asked for one. */
struct auth_check {
    bool decoy;                /* no entry or no password: refused after the work */
    bool has_entry;            /* false: a decoy with nothing to imitate (empty file) */
    struct passwd_entry entry; /* by value, user NULL */
};

/* Returns MQTT_RC_SUCCESS with *chk filled when the answer needs a password
 * hashed (a username and a password file): then call auth_check_verdict
 * with the CONNECT's password. Otherwise returns the answer itself
 * (anything else than MQTT_RC_SUCCESS, or MQTT_RC_SUCCESS with *hash false)
 * and leaves *chk zeroed. */
uint8_t auth_connect_prepare(const struct auth_snapshot *s, const struct auth_request *r,
                             struct auth_check *chk, bool *hash);

/* The answer for a check auth_connect_prepare filled: MQTT_RC_SUCCESS or
 * MQTT_RC_BAD_USERNAME_OR_PASSWORD, after the same work either way. Any
 * thread; password may be NULL when len is 0. */
uint8_t auth_check_verdict(const struct auth_check *chk, const uint8_t *password, size_t len);

/* Is this 5.0 enhanced authentication method (the CONNECT's Authentication
 * Method, len bytes) offered? Returns its enum config_auth_method bit, or 0:
 * the CONNECT is refused with 0x8C. */
uint32_t auth_method_offered(const struct auth_snapshot *s, const uint8_t *method, size_t len);

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
