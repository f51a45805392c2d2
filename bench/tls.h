/*
 * ringmq-bench client TLS (BoringSSL): one context per run, one struct btls
 * per connection. The worker does the I/O: it receives ciphertext straight
 * into btls_rx_space(), and sends what btls_out() holds. A custom BIO reads
 * from that receive buffer and appends records to that output buffer, so no
 * byte is copied through a memory BIO on the way.
 *
 * Threads: the context is built by the main thread before the workers start
 * and destroyed after they are joined; workers share it (SSL_CTX is safe to
 * share, the resumption slot has its own lock). A struct btls belongs to the
 * worker that owns its connection.
 */
#ifndef RINGMQ_BENCH_TLS_H
#define RINGMQ_BENCH_TLS_H

#include <stdbool.h>
#include <stdint.h>

#include "obuf.h"

struct bench_opts;
struct btls_ctx;
struct btls;

/* Loads --cafile, --cert and --key and offers ALPN "mqtt"; with --resume
 * keeps the last session a NewSessionTicket brought. NULL after printing
 * why on stderr (a file that cannot be read, a key that does not match). */
struct btls_ctx *btls_ctx_create(const struct bench_opts *o);
void btls_ctx_destroy(struct btls_ctx *ctx);
/* Sessions (tickets) the brokers have sent so far, over all connections. */
uint64_t btls_ctx_tickets(const struct btls_ctx *ctx);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256, ALPN mqtt" from the first completed
 * handshake; "" before one. Read it after the workers are joined. */
const char *btls_ctx_describe(const struct btls_ctx *ctx);

/* Per connection; rx_cap is the receive buffer (at least one TLS record).
 * The buffers live until btls_destroy, across reconnections. */
struct btls *btls_create(struct btls_ctx *ctx, uint32_t rx_cap);
void btls_destroy(struct btls *t);

/* A new TCP connection: a fresh SSL (offering the last session under
 * --resume) whose ClientHello is left in btls_out(). 0, or -ENOMEM or
 * -EPROTO after printing why (once per run). */
int btls_start(struct btls *t);
/* The connection is gone: frees the SSL, empties the buffers. */
void btls_end(struct btls *t);

/* Where the next recv may write, and how much; then how much it wrote. */
uint8_t *btls_rx_space(struct btls *t, uint32_t *len);
void btls_rx_added(struct btls *t, uint32_t n);

/* Advances the handshake with what was received: 1 done, 0 wants more,
 * -EPROTO failed (the reason is printed once per run), -ENOBUFS the output
 * passed its bound. */
int btls_handshake(struct btls *t);
bool btls_done(const struct btls *t);
/* The handshake resumed a session. */
bool btls_resumed(const struct btls *t);

/* Decrypts into dst: >0 bytes, 0 wants more input, -EPIPE close_notify,
 * -EPROTO a TLS error or an alert (printed once per run), -ENOBUFS. */
int btls_read(struct btls *t, uint8_t *dst, uint32_t cap);
/* Encrypts all of p into btls_out(): 0, -EPROTO or -ENOBUFS. */
int btls_write(struct btls *t, const uint8_t *p, uint32_t len);
/* Records waiting to be sent; the caller may swap it with an empty buffer
 * of its own (len 0, msgs 0). */
struct obuf *btls_out(struct btls *t);

#endif
