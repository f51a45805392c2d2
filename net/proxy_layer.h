/*
 * The PROXY protocol layer (net/proxy.c) over the pure header parser
 * (core/proxy.h).
 */
#ifndef RINGMQ_PROXY_LAYER_H
#define RINGMQ_PROXY_LAYER_H

#include "conn.h"

/* A new connection's layer for a listener with enable_proxy_protocol
 * version (1 or 2). NULL: out of memory. */
struct conn_layer *proxy_layer_create(unsigned version);

#endif
