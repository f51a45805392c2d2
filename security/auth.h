/*
 * Authentication and authorization decisions. Pure: the shard asks, this
 * module answers from an immutable security snapshot, with no locks.
 *
 * The snapshot holds, per listener, the anonymous policy, the password
 * table and the ACL that apply there (with per_listener_settings false
 * every listener shares one of each), and the enhanced authentication
 * methods offered, the address rules per listener and the bans of the
 * ban_file (broker-wide).
 */
#ifndef RINGMQ_AUTH_H
#define RINGMQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "ban.h"
#include "config.h"
#include "netrule.h"
#include "passwd.h"

/* The read-mostly snapshot. Shards read it through one atomic pointer; a
 * reload builds a new one. */
struct auth_snapshot {
    uint64_t generation;
    uint32_t listener_count;
    bool allow_anonymous[LISTENERS_MAX];
    /* What a CONNECT's username is worth for the ACL: proven by a password
     * (a password table here) or taken from a verified certificate
     * (use_identity_as_username / use_subject_as_username). Where it is
     * not, the ACL sees the client as anonymous: a claimed name is no
     * identity (mosquitto would give anyone that user's rules). */
    bool username_proven[LISTENERS_MAX];
    const struct passwd_db *passwd[LISTENERS_MAX]; /* NULL: no password_file there */
    const struct acl *acl[LISTENERS_MAX];          /* NULL: no acl_file there */
    uint32_t auth_methods;                         /* enum config_auth_method bits */
    /* The distinct tables, each file parsed once (listeners naming the
     * same path share it); owned. */
    struct passwd_db *passwd_own[LISTENERS_MAX];
    const char *passwd_path[LISTENERS_MAX];
    uint32_t passwd_own_count;
    struct acl *acl_own[LISTENERS_MAX];
    const char *acl_path[LISTENERS_MAX];
    uint32_t acl_own_count;
    /* allow_from / deny_from per listener (config.h says how the global
     * lines combine with a block's), owned; NULL: none. */
    struct netrule_set *allow[LISTENERS_MAX];
    struct netrule_set *deny[LISTENERS_MAX];
    /* metrics_password_file (net/metrics_http.c's basic auth): a view of
     * a listener's table for the same path, or metrics_passwd_own; NULL:
     * none. */
    const struct passwd_db *metrics_passwd;
    struct passwd_db *metrics_passwd_own;
    /* ban_file, owned; NULL: none. */
    struct ban_list *bans;
    const char *ban_path;
};

/* The contents of the files a config names, read by the caller: security/
 * parses bytes and reads no file. Each path once (auth_files_needed lists
 * them); views, only read, and not kept past auth_snapshot_create. */
struct auth_file {
    const char *path;
    const uint8_t *bytes;
    size_t len;
};
struct auth_files {
    const struct auth_file *v;
    uint32_t count;
};

/* The distinct paths of the password and ACL files c's listeners use,
 * the ban file and the metrics password file, into paths[0..return) (at
 * most AUTH_FILES_MAX: the array's size). Views into c. */
#define AUTH_FILES_MAX (2 * LISTENERS_MAX + 2)
uint32_t auth_files_needed(const struct config *c, const char *paths[AUTH_FILES_MAX]);

/* Builds a snapshot from a finished config and the files it names (f:
 * every path auth_files_needed gave; a missing one fails). hash_key: the
 * broker's SipHash key, for the ban table. NULL on failure with
 * "file:line: what is wrong" (or "out of memory") in err, the file named
 * by its path in the config. Pure; the main thread calls it. */
struct auth_snapshot *auth_snapshot_create(const struct config *c, uint64_t generation,
                                           const uint64_t hash_key[2], const struct auth_files *f,
                                           char *err, size_t errlen);
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

/* May a connection from a be accepted on listener (allow_from /
 * deny_from)? Asked at accept, before any byte is read. */
bool auth_admit(const struct auth_snapshot *s, uint32_t listener, const struct netrule_addr *a);

/* Does the ban_file ban this address, client id or username at now_s
 * (UTC seconds)? False without a ban_file. */
bool auth_banned_addr(const struct auth_snapshot *s, const struct netrule_addr *a, uint64_t now_s);
bool auth_banned_client(const struct auth_snapshot *s, const uint8_t *client_id, size_t id_len,
                        const uint8_t *username, size_t username_len, uint64_t now_s);

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
 * this topic / receive a message on this topic? The listener's ACL decides
 * (security/acl.h, with the username only where username_proven); without
 * one, everything but publishing into $SYS. A listener the snapshot does
 * not know gets nothing. */
bool auth_allowed(const struct auth_snapshot *s, const struct auth_client *c,
                  enum auth_access access, const uint8_t *topic, size_t topic_len);

#endif
