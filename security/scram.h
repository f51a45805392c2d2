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
 * SCRAM-SHA-512-PLUS (RFC 5802 sections 6 and 7) binds the exchange to the
 * TLS session with the tls-exporter channel binding (RFC 9266): 32 bytes of
 * SSL_export_keying_material, label "EXPORTER-Channel-Binding", no
 * context, which only TLS 1.3 or TLS 1.2 with the extended master secret
 * make unique to a session. The runtime offers the method wherever it
 * offers SCRAM-SHA-512 and the connection has that value, and passes the
 * value in (scram_start_channel); security/ never touches the session.
 * The client sends the gs2 header "p=tls-exporter,," (or with a=<its own
 * username>) and its client-final c= is base64(gs2 header + the 32 bytes
 * its own TLS session exported). A man in the middle who holds a
 * certificate the client trusts runs two TLS sessions, so the two values
 * differ: scram_finish fails on c= before it looks at the proof, and the
 * proof covers c= anyway (AuthMessage holds client-final-without-proof).
 * The gs2 flag's rules (RFC 5802 section 6):
 *   method                 connection can bind   accepted gs2 flag
 *   SCRAM-SHA-512-PLUS     yes                   p=tls-exporter only
 *   SCRAM-SHA-512-PLUS     no                    none (the runtime refuses
 *                                                the method before this)
 *   SCRAM-SHA-512          yes                   n ("y" is a downgrade:
 *                                                the client can bind and
 *                                                was made to think we cannot)
 *   SCRAM-SHA-512          no                    n, y
 * Also refused: "p=" with SCRAM-SHA-512, and a cb-name other than
 * tls-exporter (tls-unique, tls-server-end-point).
 *
 * Pure and thread-safe: a state holds copies of what it needs, so the
 * password table may be replaced while an exchange is in progress.
 */
#ifndef RINGMQ_SCRAM_H
#define RINGMQ_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "passwd.h"

#define SCRAM_METHOD      "SCRAM-SHA-512"
#define SCRAM_METHOD_PLUS "SCRAM-SHA-512-PLUS"
/* RFC 9266: the tls-exporter channel binding is 32 bytes. */
#define SCRAM_TLS_EXPORTER_LEN 32u
/* Longest message either side sends or accepts; a longer client message
 * fails the exchange. */
#define SCRAM_MSG_MAX 1024u
/* Random bytes the caller draws for each server nonce (base64: 32
 * characters); security/ makes no syscalls, so the runtime draws them. */
#define SCRAM_NONCE_RANDOM_LEN 24u

enum scram_result { SCRAM_CONTINUE, SCRAM_OK, SCRAM_FAIL };

struct scram;

/* The channel an exchange runs over, as the runtime knows it (the caller's
 * memory; scram_start_channel copies what it keeps). */
struct scram_channel {
    bool plus;        /* the client named SCRAM-SHA-512-PLUS */
    bool exporter_ok; /* the connection has a tls-exporter value: exporter */
    uint8_t exporter[SCRAM_TLS_EXPORTER_LEN];
};

/* Starts an exchange on the client-first message over a connection that
 * cannot bind (gs2 header "n,," or "y,,"; channel binding "p=" and an
 * authzid other than the username are refused): scram_start_channel with
 * ch NULL. On SCRAM_CONTINUE *state is set and out[0..*outlen) holds the
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

/* scram_start on channel ch (NULL: no binding possible), which decides the
 * gs2 flags allowed (the table at the top). With ch->plus the state keeps
 * a copy of ch->exporter for scram_finish's check of c=; ch->plus without
 * ch->exporter_ok fails. */
enum scram_result scram_start_channel(const struct passwd_db *db, const uint8_t *in, size_t len,
                                      const uint8_t random[SCRAM_NONCE_RANDOM_LEN],
                                      const struct scram_channel *ch, struct scram **state,
                                      uint8_t *out, size_t *outlen, const char **why);

/* The client-final message: channel binding (c=: the gs2 header, and with
 * PLUS the connection's tls-exporter value, compared in constant time) and
 * nonce must match, the proof must verify. SCRAM_OK: out (SCRAM_MSG_MAX bytes) holds the
 * server-final message ("v=<signature>"). SCRAM_FAIL: *why says why. Either
 * way the state is spent: free it. */
enum scram_result scram_finish(struct scram *s, const uint8_t *in, size_t len, uint8_t *out,
                               size_t *outlen, const char **why);

/* The username the client-first message named (decoded from saslname). */
const uint8_t *scram_username(const struct scram *s, size_t *len);

void scram_free(struct scram *s);

#endif
