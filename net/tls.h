/*
 * TLS over BoringSSL as a layer of the connection (conn.h): ciphertext from
 * the socket in, plaintext up to the engine; the engine's plaintext down,
 * records out. One context per listener per shard, built from the same
 * settings on the main thread before the shards start, then touched only
 * by its shard: no lock on the handshake path.
 */
#ifndef RINGMQ_TLS_H
#define RINGMQ_TLS_H

#include <stddef.h>

#include "config.h"
#include "conn.h"

struct tls_ctx;

/* A context from a listener's settings (certfile, keyfile, cafile, capath,
 * crlfile, require_certificate, tls_version, ciphers). 0, or -1 with err
 * holding "source:line: what is wrong". Main thread. */
int tls_ctx_create(const struct config_tls *t, const char *source, struct tls_ctx **out, char *err,
                   size_t errlen);
void tls_ctx_destroy(struct tls_ctx *ctx);
/* Whole days until the served certificate expires (negative: expired);
 * INT32_MIN when it cannot be read. */
int tls_ctx_days_left(const struct tls_ctx *ctx);

/* A new connection's layer over ctx (the shard's). NULL: out of memory. */
struct conn_layer *tls_layer_create(struct tls_ctx *ctx);

#endif
