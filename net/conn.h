/*
 * A connection in the runtime: its socket, its kernel operations and its
 * layers, around the engine's protocol state (struct engine_conn, the first
 * member, so the engine's effects find the connection with conn_of).
 *
 * Layers sit between the socket and the engine: bytes from the socket go
 * up the chain (layer 0 is nearest the socket), each layer passing
 * plaintext up, the top one to the engine; the engine's output goes down
 * the chain to the wire. A layer may have output of its own (handshake
 * records, close_notify, pongs) and a shutdown of its own. Plain TCP is
 * the empty chain: the engine's output is the wire, handed to the kernel
 * without a copy. Each layer is in its own file: PROXY (net/proxy.c, level
 * 0, leaves the chain once the header is read), TLS (net/tls.c);
 * WebSocket is later work.
 *
 * The I/O state (enum conn_io) is the runtime's; the protocol phase is the
 * engine's (engine_conn.phase). Everything here runs on the shard thread
 * that owns the connection.
 */
#ifndef RINGMQ_CONN_H
#define RINGMQ_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cred_cache.h"
#include "buf.h"
#include "engine.h"

struct conn;
struct shard;
struct auth_job;
struct scram;

#define CONN_LAYERS_MAX 3u /* PROXY, TLS, WebSocket */

struct conn_layer;
struct conn_layer_ops {
    const char *name;
    /* Bytes from below; the plaintext they make is appended to *up (the
     * chain hands it to the layer above, or the engine, before the next
     * connection's input: *up is the shard's, one per level, so an idle
     * connection keeps no plaintext buffer). 0, or a negative errno to
     * close. A layer calls nothing in conn.c: it returns. */
    int (*input)(struct conn *c, struct conn_layer *l, const uint8_t *data, size_t len,
                 struct buf *up);
    /* Moves plaintext from above (*from, emptied) into wire bytes
     * appended to *to. 0 or a negative errno. */
    int (*output)(struct conn *c, struct conn_layer *l, struct buf *from, struct buf *to);
    /* Has it output of its own waiting? */
    bool (*pending)(const struct conn *c, const struct conn_layer *l);
    /* Would input now cost public-key work (a TLS handshake)? Then the
     * input waits in the shard's handshake queue (conn_run_held), which
     * the loop works through with a time budget per turn after it has
     * served everything else: a storm of new connections delays other new
     * connections, not the traffic of those already connected. NULL: never. */
    bool (*costly)(const struct conn *c, const struct conn_layer *l);
    /* Has the layer done all it is for (a PROXY header read)? Then it
     * leaves the chain: *peer is whose connection it is (AF_UNSPEC: the
     * socket's peer stays), *rest (moved to the caller) the bytes after
     * its part, for what is above it. NULL: never. */
    bool (*finished)(struct conn *c, struct conn_layer *l, struct sockaddr_storage *peer,
                     struct buf *rest);
    /* Starts its orderly end: its last bytes go to *to. */
    int (*shutdown)(struct conn *c, struct conn_layer *l, struct buf *to);
    void (*destroy)(struct conn_layer *l);
};
struct conn_layer {
    const struct conn_layer_ops *ops;
    unsigned level;   /* its index in the chain */
    struct buf above; /* plaintext from above, not yet encoded */
};

enum conn_io {
    CONN_IO_OPEN = 0, /* reading and writing */
    CONN_IO_HANDOFF,  /* moving to the home shard: no operation may be in flight */
    CONN_IO_CLOSING,  /* shut down, waiting for operations to finish */
};

struct conn {
    struct engine_conn e; /* first: conn_of() */
    struct shard *sh;
    int fd;
    uint8_t io; /* enum conn_io */
    bool recv_armed;
    bool send_inflight;
    bool close_after_flush; /* the engine asked for a close: flush, then linger */
    bool lingering;         /* output out, half-closed, input discarded */
    bool dirty;
    bool deferred;
    bool reading;      /* the engine wants input (no pause bit) */
    bool layers_ended; /* the layers' own ends (close_notify) are written */
    bool reaping;
    bool held_queued;    /* on the shard's handshake queue */
    uint8_t held_level;  /* the layer held waits for */
    uint32_t ops;        /* kernel operations in flight (+ holds by pending SUBACKs, checks) */
    uint32_t tally_slot; /* the connections its address holds (net/admit.c); TALLY_NONE */

    struct conn_layer *layer[CONN_LAYERS_MAX];
    unsigned layers;
    struct buf wire;    /* bytes for the socket not yet handed to the kernel */
    struct buf sending; /* bytes owned by the kernel during a send */
    size_t sending_off;
    /* Input for layer held_level while it would handshake, until the
     * shard's handshake queue gets to it. Past CONN_HELD_MAX (no client
     * sends that much before the server answers) it goes up at once: it
     * is no longer worth keeping others waiting for. */
    struct buf held;

    /* The bound on flushing, then on lingering (CLOSE_FLUSH_MAX_MS,
     * CLOSE_LINGER_MS): then the socket is cut. On the engine's wheel. */
    struct engine_timer close_timer;
    uint32_t linger_bytes; /* discarded while lingering */

    struct auth_job *verify_job; /* a password check in the pool; NULL once answered */
    /* The MAC of the credentials being checked (cred_cache.h) and the
     * snapshot generation they are checked under, put in the shard's
     * cache if the check succeeds; wiped after. */
    bool cred_pending;
    uint64_t cred_generation;
    uint8_t cred_mac[CRED_MAC_LEN];
    struct scram *ax; /* an enhanced authentication exchange in progress */

    struct conn *prev, *next;   /* shard's connection list */
    struct conn *dirty_next;    /* shard's to-flush list */
    struct conn *deferred_next; /* shard's input-left-over list */
    struct conn *reap_next;     /* shard's to-free list */
    struct conn *held_next;     /* shard's handshake queue */
};

static inline struct conn *conn_of(struct engine_conn *e)
{
    return (struct conn *)e;
}

#endif
