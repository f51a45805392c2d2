/*
 * The plain TCP transport: plaintext is the wire. TLS (later work) adds a
 * second struct transport whose input() decrypts into conn_input() and whose
 * wire() encrypts c->out; nothing else in the connection changes.
 * Runs on the connection's shard thread.
 */
#include <string.h>

#include "broker.h"

static int plain_input(struct conn *c, const uint8_t *data, size_t len)
{
    conn_input(c, data, len);
    return 0;
}

static int plain_wire(struct conn *c, struct buf **wire)
{
    /* Swap buffers instead of copying: the queued bytes become the bytes in
     * flight, and the emptied send buffer collects what comes next. */
    struct buf tmp = c->sending;
    c->sending = c->out;
    c->out = tmp;
    c->out.len = 0;
    *wire = &c->sending;
    return 0;
}

const struct transport transport_plain = {
    .name = "tcp",
    .input = plain_input,
    .wire = plain_wire,
    .destroy = NULL,
};
