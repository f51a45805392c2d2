/*
 * TLS over BoringSSL as a layer of the connection (conn.h): ciphertext from
 * the socket in, plaintext up to the engine; the engine's plaintext down,
 * records out.
 *
 * Contexts: one per listener per shard, built from the same settings on
 * the main thread (at start-up and at each reload, with the generation of
 * that build), then used only by its shard: no lock on the handshake
 * path. A context is reference-counted: the shard holds one reference,
 * every connection started on it another, so a reload gives new
 * connections the new context while existing ones keep theirs.
 *
 * Session tickets: one set of keys for the whole broker (tls_tickets), so
 * a client resumes on whichever shard its next connection lands; a fresh
 * key every tls_ticket_rotation seconds, the previous one still accepted
 * for one more period, nothing ever written to disk.
 */
#ifndef RINGMQ_TLS_H
#define RINGMQ_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"

struct tls_ctx;
struct tls_tickets;
struct tls_keyset;

/* Once in the process, before any layer is made: 0, or -1 (out of
 * memory). */
int tls_init(void);

/* ---- ticket keys (main thread creates, rotates and frees; shards read) */

/* The broker's ticket keys, first key drawn. NULL: out of memory or no
 * random bytes. */
struct tls_tickets *tls_tickets_create(uint32_t rotation_s);
/* A fresh key becomes current, the current one previous. Returns the set
 * it replaced, for tls_keyset_free once every shard has turned (a
 * handshake may be reading it), or NULL when no fresh key could be made
 * (the keys stay). */
struct tls_keyset *tls_tickets_rotate(struct tls_tickets *t);
void tls_keyset_free(struct tls_keyset *k);
/* After the shards stopped. */
void tls_tickets_destroy(struct tls_tickets *t);

/* ---- contexts -------------------------------------------------------- */

/* A context from a listener's settings (certfile/keyfile pairs, cafile,
 * capath, crlfile, require_certificate, tls_version, ciphers, psk_file,
 * psk_hint) for listener index listener, build generation generation.
 * tickets NULL: no resumption. 0, or -1 with err holding "KEY PATH: what
 * is wrong" (the file that failed) and *line the config line of that key
 * (the certfile's for its pair). Main thread. One reference, the
 * caller's. */
int tls_ctx_create(const struct config_tls *t, uint32_t listener, uint64_t generation,
                   struct tls_tickets *tickets, struct tls_ctx **out, char *err, size_t errlen,
                   int *line);
void tls_ctx_ref(struct tls_ctx *ctx);
/* Drops a reference; the last frees the context. NULL is ignored. Any
 * thread. */
void tls_ctx_unref(struct tls_ctx *ctx);

/* Certificates the context serves (0 on a PSK-only listener), and the
 * whole days until certificate i expires (negative: expired; INT32_MIN
 * when it cannot be read). */
unsigned tls_ctx_certs(const struct tls_ctx *ctx);
int tls_ctx_days_left(const struct tls_ctx *ctx, unsigned i);
/* The same certificate's notAfter as Unix seconds, or INT64_MIN when it
 * cannot be read. */
int64_t tls_ctx_not_after(const struct tls_ctx *ctx, unsigned i);

/* A new connection's layer over ctx (the shard's); takes a reference.
 * NULL: out of memory. */
struct conn_layer *tls_layer_create(struct tls_ctx *ctx);

#endif
