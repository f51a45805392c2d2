/*
 * SCRAM-SHA-512 (RFC 5802 with SHA-512, as RFC 7677 does for SHA-256), the
 * server side, as an MQTT 5.0 enhanced authentication method (4.12). It
 * works from the password file's $7$ entries: mosquitto's PBKDF2-HMAC-SHA512
 * output is exactly SCRAM's SaltedPassword, so a file written by
 * mosquitto_passwd serves both plain CONNECT passwords and SCRAM.
 *
 * The exchange, in MQTT packets:
 *   CONNECT  method "SCRAM-SHA-512", data client-first   -> scram_start
 *   AUTH 0x18 data server-first                           <-
 *   AUTH 0x18 data client-final                           -> scram_finish
 *   CONNACK 0x00 data server-final ("v=...")              <-
 * Re-authentication runs the same two steps from AUTH 0x19.
 *
 * Pure and thread-safe: a state holds copies of what it needs, so the
 * password table may be replaced while an exchange is in progress.
 */
#ifndef RINGMQ_SCRAM_H
#define RINGMQ_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#include "passwd.h"

#define SCRAM_METHOD "SCRAM-SHA-512"
/* Longest message either side sends or accepts; a longer client message
 * fails the exchange. */
#define SCRAM_MSG_MAX 1024u

enum scram_result { SCRAM_CONTINUE, SCRAM_OK, SCRAM_FAIL };

struct scram;

/* Starts an exchange on the client-first message (gs2 header "n,," or
 * "y,,"; channel binding "p=" and an authzid other than the username are
 * refused). On SCRAM_CONTINUE *state is set and out[0..*outlen) holds the
 * server-first message; out must hold SCRAM_MSG_MAX bytes. A user that is
 * unknown, or whose entry cannot serve SCRAM ($6$), still gets a
 * server-first message with a 12-byte salt derived from the name under a
 * per-process secret and the iteration count most $7$ entries of db use
 * (4096 if none), so a client cannot tell it from a real one; such an
 * exchange fails in scram_finish. db may be NULL (no user is known). On
 * SCRAM_FAIL nothing is allocated and *why names the problem (a static
 * string).
 *
 * *why is for the broker's log. Do not send scram_finish's to the client:
 * "unknown user or no SCRAM credentials" and "wrong password: ..." differ
 * on purpose, and a reason string would tell a client which names exist. */
enum scram_result scram_start(const struct passwd_db *db, const uint8_t *in, size_t len,
                              struct scram **state, uint8_t *out, size_t *outlen, const char **why);

/* The client-final message: channel binding and nonce must match, the
 * proof must verify. SCRAM_OK: out (SCRAM_MSG_MAX bytes) holds the
 * server-final message ("v=<signature>"). SCRAM_FAIL: *why says why. Either
 * way the state is spent: free it. */
enum scram_result scram_finish(struct scram *s, const uint8_t *in, size_t len, uint8_t *out,
                               size_t *outlen, const char **why);

/* The username the client-first message named (decoded from saslname). */
const uint8_t *scram_username(const struct scram *s, size_t *len);

void scram_free(struct scram *s);

#endif
