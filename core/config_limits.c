/*
 * The availability keys that exist in a listener block (for that listener)
 * or at global scope (a default for every listener, as mosquitto scopes its
 * listener options): the per-client rates, and the address rules
 * (allow_from, deny_from), which are kept as written for the security
 * snapshot to parse (security/netrule.h) with their lines. The rest of the
 * parser is config.c.
 */
#include <stdlib.h>
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

static int add_netrule(struct parser *p, bool deny)
{
    struct config *c = p->c;
    const char *v = p->values[0];
    if (strlen(v) > CONFIG_NETRULE_TEXT)
        return config_fail(p, "`%s' value is longer than %u bytes (one CIDR range)", p->key,
                           (unsigned)CONFIG_NETRULE_TEXT);
    if (c->netrule_count >= CONFIG_NETRULES_MAX)
        return config_fail(p, "more than %u allow_from and deny_from lines",
                           (unsigned)CONFIG_NETRULES_MAX);
    if (c->netrule_count == c->netrule_cap) {
        uint32_t cap = c->netrule_cap ? c->netrule_cap * 2 : 16;
        struct config_netrule *nv = realloc(c->netrules, cap * sizeof(*nv));
        if (!nv)
            return config_fail(p, "out of memory");
        c->netrules = nv;
        c->netrule_cap = cap;
    }
    struct config_netrule *r = &c->netrules[c->netrule_count++];
    memset(r, 0, sizeof(*r));
    memcpy(r->text, v, strlen(v));
    r->deny = deny;
    r->listener = p->listener ? (uint16_t)(p->listener - c->listeners) : CONFIG_NETRULE_GLOBAL;
    r->line = p->line;
    return 0;
}

int config_set_allow_from(struct parser *p)
{
    return add_netrule(p, false);
}

int config_set_deny_from(struct parser *p)
{
    return add_netrule(p, true);
}
