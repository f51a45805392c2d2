/*
 * The availability keys of the abuse-resistance work that exist in a
 * listener block (for that listener) or at global scope (a default for
 * every listener that does not set its own), as mosquitto scopes its
 * listener options. Today: the per-client rates. The rest of the parser is
 * config.c.
 */
#include <string.h>

#include "config.h"
#include "config_internal.h"

/* Where a scoped value goes: the block's, or the global default. */
static struct config_rates *rates_of(struct parser *p)
{
    return p->listener ? &p->listener->rates : &p->c->rates;
}

static int set_rate(struct parser *p, uint64_t max, uint64_t *slot)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, max, 0, &n) != 0)
        return -1;
    *slot = n;
    return 0;
}

int config_set_max_publish_rate(struct parser *p)
{
    return set_rate(p, CONFIG_RATE_MSGS_MAX, &rates_of(p)->publish_per_s);
}

int config_set_max_subscribe_rate(struct parser *p)
{
    return set_rate(p, CONFIG_RATE_MSGS_MAX, &rates_of(p)->subscribe_per_s);
}

int config_set_max_inbound_rate(struct parser *p)
{
    return set_rate(p, CONFIG_RATE_BYTES_MAX, &rates_of(p)->inbound_bytes_per_s);
}

void config_rates_init(struct config_rates *r)
{
    r->publish_per_s = r->subscribe_per_s = r->inbound_bytes_per_s = CONFIG_RATE_INHERIT;
}

/* A listener's unset rates take the global ones; unset globally: 0 (off). */
void config_rates_finish(struct config *c)
{
    struct config_rates *g = &c->rates;
    for (uint32_t i = 0; i < c->listener_count; i++) {
        struct config_rates *r = &c->listeners[i].rates;
        if (r->publish_per_s == CONFIG_RATE_INHERIT)
            r->publish_per_s = g->publish_per_s == CONFIG_RATE_INHERIT ? 0 : g->publish_per_s;
        if (r->subscribe_per_s == CONFIG_RATE_INHERIT)
            r->subscribe_per_s = g->subscribe_per_s == CONFIG_RATE_INHERIT ? 0 : g->subscribe_per_s;
        if (r->inbound_bytes_per_s == CONFIG_RATE_INHERIT)
            r->inbound_bytes_per_s =
                g->inbound_bytes_per_s == CONFIG_RATE_INHERIT ? 0 : g->inbound_bytes_per_s;
    }
}
