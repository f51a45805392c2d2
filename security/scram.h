/*
 * SCRAM-SHA-512 (RFC 5802 with SHA-512, as RFC 7677 does for SHA-256), the
 * server side, as an MQTT 5.0 enhanced authentication method (4.12). It
 * works only from the password file's SCRAM-SHA-512 entries (RFC 5803's
 * form, see passwd.h; `ringmq --scram-entry USER` writes them), which hold
 * the salt, the iteration count, StoredKey and ServerKey: what RFC 5802
 * says a server keeps, and all the server needs. The server never runs
 * PBKDF2 for SCRAM. Those entries serve plain CONNECT passwords too.
 *
 * mosquitto's $7$ hash is SCRAM's SaltedPassword itself, so a server that
 * took it for SCRAM would accept a proof made from the file alone: anyone
 * who could read the file could log in as every $7$ user. StoredKey can only
 * check a proof, never make one, so a file of SCRAM entries holds nothing
 * that logs in by itself. $6$ and $7$ users therefore get the unknown-user
 * treatment below and must be given a SCRAM entry to use SCRAM.
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
/* Random bytes the caller draws for each server nonce (base64: 32
 * characters); security/ makes no syscalls, so the runtime draws them. */
#define SCRAM_NONCE_RANDOM_LEN 24u

enum scram_result { SCRAM_CONTINUE, SCRAM_OK, SCRAM_FAIL };

struct scram;

/* Starts an exchange on the client-first message (gs2 header "n,," or
 * "y,,"; channel binding "p=" and an authzid other than the username are
 * refused). On SCRAM_CONTINUE *state is set and out[0..*outlen) holds the
 * server-first message; out must hold SCRAM_MSG_MAX bytes. A user that is
 * unknown, or whose entry is $6$ or $7$, still gets a server-first message
 * with the same attributes as a real one: a salt derived from the name
 * under passwd_decoy_key(db) (so the same across restarts of the same file,
 * as a real salt is) and as long as most SCRAM entries' salts, and the
 * iteration count most SCRAM entries use (passwd_scram_iterations). A
 * client cannot tell it from a real one; such an exchange fails in
 * scram_finish after the same work. db may be NULL (no user is known; the
 * salt then comes from a fixed key, the same on every run). On SCRAM_FAIL
 * nothing is allocated and *why names the problem (a static string).
 *
 * *why is for the broker's log. Do not send scram_finish's to the client:
 * "unknown user", "no SCRAM credentials for this user ..." and "wrong
 * password: ..." differ on purpose, and a reason string would tell a client
 * which names exist. */
enum scram_result scram_start(const struct passwd_db *db, const uint8_t *in, size_t len,
                              const uint8_t random[SCRAM_NONCE_RANDOM_LEN], struct scram **state,
                              uint8_t *out, size_t *outlen, const char **why);

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
