/*
 * The PROXY protocol as a layer of the connection (conn.h), level 0 on a
 * listener with enable_proxy_protocol: the bytes a connection sends are
 * kept until core/proxy.c says the header is whole (the header's address
 * then replaces the socket's peer for every rule, limit, ban and log line,
 * and the layer leaves the chain: nothing after the header is copied) or
 * invalid (the connection is closed without a byte). The header is bounded
 * by PROXY_HEADER_LIMIT_DEFAULT, and its time by connect_timeout: the
 * engine's CONNECT deadline runs from accept.
 */
#include "proxy_layer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy.h"
#include "shard.h"

struct proxy_layer {
    struct conn_layer l; /* first */
    uint8_t version;     /* enum proxy_version */
    bool done;
    /* v2: the whole header's length once its fixed part checked out: the
     * parser is not asked again before that many bytes are in (a header
     * trickled a byte at a time would otherwise be parsed from its start
     * for each byte: 4 KiB squared per connection). 0: not known yet. */
    size_t need;
    struct buf pre; /* the header so far; once done, what followed it */
    struct proxy_result res;
};

static int proxy_input(struct conn *c, struct conn_layer *l, const uint8_t *data, size_t len,
                       struct buf *up)
{
    struct proxy_layer *p = (struct proxy_layer *)l;
    (void)up; /* nothing goes up from here: the chain takes the rest (finished) */
    if (buf_append(&p->pre, data, len))
        return -ENOMEM;
    if (p->done || p->pre.len < p->need)
        return 0; /* more behind the header, before the chain took it; or not enough yet */
    enum proxy_status st =
        proxy_parse(p->version, PROXY_HEADER_LIMIT_DEFAULT, p->pre.data, p->pre.len, &p->res);
    if (st == PROXY_NEED_MORE) {
        if (p->version == PROXY_V2 && p->pre.len >= PROXY_V2_FIXED_LEN)
            p->need = PROXY_V2_FIXED_LEN + ((size_t)p->pre.data[14] << 8 | p->pre.data[15]);
        return 0;
    }
    if (st == PROXY_INVALID) {
        atomic_fetch_add_explicit(&c->sh->en.st.proxy_refused, 1, memory_order_relaxed);
        LOG(LOG_LEVEL_DEBUG, "connection %llu from %s: no valid PROXY v%u header: %s",
            (unsigned long long)c->e.id, c->e.who.peer, (unsigned)p->version,
            p->res.why ? p->res.why : "invalid");
        return -EPROTO;
    }
    size_t rest = p->pre.len - p->res.consumed;
    memmove(p->pre.data, p->pre.data + p->res.consumed, rest);
    p->pre.len = rest;
    p->done = true;
    return 0;
}

/* Nothing is written before the header is read, and then the layer is
 * gone; whatever comes down passes as it is. */
static int proxy_output(struct conn *c, struct conn_layer *l, struct buf *from, struct buf *to)
{
    (void)c;
    (void)l;
    if (from->len && buf_append(to, from->data, from->len))
        return -ENOMEM;
    from->len = 0;
    return 0;
}

static bool proxy_finished(struct conn *c, struct conn_layer *l, struct sockaddr_storage *peer,
                           struct buf *rest)
{
    (void)c;
    struct proxy_layer *p = (struct proxy_layer *)l;
    if (!p->done)
        return false;
    memset(peer, 0, sizeof(*peer));
    peer->ss_family = AF_UNSPEC;
    if (!p->res.local && p->res.family == PROXY_FAMILY_INET4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)peer;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, p->res.src_addr, 4);
        s4->sin_port = htons(p->res.src_port);
    } else if (!p->res.local && p->res.family == PROXY_FAMILY_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)peer;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, p->res.src_addr, 16);
        s6->sin6_port = htons(p->res.src_port);
    }
    *rest = p->pre;
    p->pre = (struct buf){0};
    return true;
}

static void proxy_destroy(struct conn_layer *l)
{
    struct proxy_layer *p = (struct proxy_layer *)l;
    buf_free(&p->pre);
    free(p);
}

static const struct conn_layer_ops proxy_ops = {
    .name = "proxy",
    .input = proxy_input,
    .output = proxy_output,
    .finished = proxy_finished,
    .destroy = proxy_destroy,
};

struct conn_layer *proxy_layer_create(unsigned version)
{
    struct proxy_layer *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->l.ops = &proxy_ops;
    p->version = (uint8_t)version;
    return &p->l;
}
