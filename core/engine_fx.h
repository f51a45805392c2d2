/*
 * The engine's effects: everything the engine needs from the runtime, as
 * plain functions the engine calls and net/effects.c implements (unit
 * tests link fakes instead). A link-time seam: no function pointer, so a
 * call costs what any call costs, and no effect is called per message
 * except engine_fx_allowed (an authorization decision) and, when output
 * is appended, engine_fx_output.
 *
 * Every function runs on the thread that owns the engine (or the
 * connection) it is given.
 */
#ifndef RINGMQ_ENGINE_FX_H
#define RINGMQ_ENGINE_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* ---- a connection's I/O ---------------------------------------------------- */

/* c->out has new bytes: send them this loop turn. */
void engine_fx_output(struct engine_conn *c);
/* Stop reading from the peer (a pause bit was set) / read again (all clear). */
void engine_fx_read_stop(struct engine_conn *c);
void engine_fx_read_start(struct engine_conn *c);
/* Call engine_resume(c) on a later loop turn. */
void engine_fx_yield(struct engine_conn *c);
/* Send what c->out holds (bounded wait), then close; why is for the debug
 * log (NULL: already logged). The engine has set ENGINE_CLOSED; the
 * runtime calls engine_closed once the connection is gone. */
void engine_fx_close(struct engine_conn *c, const char *why);
/* The connection may not be freed until the matching release (a SUBACK
 * waiting for other shards refers to it). */
void engine_fx_hold(struct engine_conn *c);
void engine_fx_release(struct engine_conn *c);

/* ---- the shard ---------------------------------------------------------------- */

/* Posts an item (a struct msg reference, or engine_env_item(e)) to shard
 * to's queue. Never blocks, never drops (an overflow list keeps order). */
void engine_fx_post(struct engine *en, unsigned to, void *item);
/* Is this shard's cross-shard output over its bound? Input waits then. */
bool engine_fx_congested(const struct engine *en);
/* The retained store's lock (shared by every shard). */
void engine_fx_retain_lock(struct engine *en, bool write);
void engine_fx_retain_unlock(struct engine *en, bool write);

/* A runtime deadline (ENGINE_TIMER_RUNTIME) armed on en->timers fell due. */
void engine_fx_timer(struct engine *en, struct engine_timer *t);

/* ---- security decisions --------------------------------------------------------- */

enum engine_access { ENGINE_READ = 1, ENGINE_WRITE = 2, ENGINE_SUBSCRIBE = 4 };

/* May who (with client id) do access on topic (or filter)? The engine
 * asks through engine_acl_allowed (engine_acl.c), which remembers the last
 * answer per client and kind. */
bool engine_fx_allowed(const struct engine *en, const struct engine_identity *who,
                       const uint8_t *client_id, size_t client_id_len, enum engine_access access,
                       const uint8_t *topic, size_t len);
/* The policy a listener's clients are checked against now: 0 when there is
 * nothing to check (no ACL there: everything is allowed, and the engine
 * does not ask engine_fx_allowed), else a number that changes whenever
 * the answers may (the security snapshot's generation). */
uint64_t engine_fx_policy(const struct engine *en, uint32_t listener);

/* A CONNECT's username and password (no enhanced authentication). */
struct engine_login {
    const uint8_t *client_id;
    size_t client_id_len;
    bool has_username;
    const uint8_t *username;
    size_t username_len;
    bool has_password;
    const uint8_t *password;
    size_t password_len;
};
#define ENGINE_LOGIN_PENDING 0xFFu /* the answer comes through engine_verified */
/* MQTT_RC_SUCCESS, a refusal (MQTT reason; *why says why for the log), or
 * ENGINE_LOGIN_PENDING: the check runs off the shard, the connection is
 * held until engine_verified(c, rc) (or closed meanwhile). */
uint8_t engine_fx_login(struct engine_conn *c, const struct engine_login *l, const char **why);

/* CONNECT-time admission by client id and username (either may be NULL):
 * bans, flapping, the shard's overload. 0, or the reason to refuse with
 * (MQTT_RC_BANNED, MQTT_RC_SERVER_BUSY) and *why for the log. count: the
 * CONNECT's last check, after authentication (it counts as a connect of
 * that id and name); the first, before any password is hashed, does not. */
uint8_t engine_fx_admit(struct engine_conn *c, const uint8_t *client_id, size_t client_id_len,
                        const uint8_t *username, size_t username_len, bool count, const char **why);
/* A login failed (a wrong password, an unknown user, a failed exchange):
 * counts towards auth_failures_max for the connection's address. */
void engine_fx_login_failed(struct engine_conn *c);

/* 5.0 enhanced authentication (4.12). The exchange's state is the
 * runtime's, one per connection. */
/* Is this method offered? Its runtime value (not 0), or 0. */
uint32_t engine_fx_auth_method(const struct engine *en, const uint8_t *name, size_t len);
/* The method's name, as AUTH and CONNACK carry it. */
const char *engine_fx_auth_method_name(uint32_t method);
/* May connection c use method (a value engine_fx_auth_method gave)? A
 * method bound to the TLS session (SCRAM-SHA-512-PLUS) needs the
 * connection's tls-exporter value (c->who.tls_exporter_ok); where it is
 * missing the engine refuses the method as one not offered. */
bool engine_fx_auth_usable(const struct engine_conn *c, uint32_t method);
/* Starts (the client's first data) or continues an exchange. Returns 1:
 * out holds the server's next challenge (AUTH_DATA_MAX bytes at most);
 * 0: done, the client proved *user (valid until engine_fx_auth_end), out
 * holds the server's final data; -1: refused, *why says why (log only). */
int engine_fx_auth_step(struct engine_conn *c, uint32_t method, const uint8_t *in, size_t in_len,
                        uint8_t *out, size_t *out_len, const uint8_t **user, size_t *user_len,
                        const char **why);
/* Forgets the connection's exchange (no-op without one). */
void engine_fx_auth_end(struct engine_conn *c);

#endif
