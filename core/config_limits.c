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

static struct config_admit *admit_of(struct parser *p)
{
    return p->listener ? &p->listener->admit : &p->c->admit;
}

/* mosquitto 2.1's key: 1 or 2 (one version per listener; no value takes
 * both, and none is needed to say "off": leave the key out). */
int config_set_enable_proxy_protocol(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 1, 2, 0, &n) != 0)
        return -1;
    admit_of(p)->proxy_protocol = n;
    return 0;
}

int config_set_max_connections_per_ip(struct parser *p)
{
    return set_rate(p, CONFIG_PER_IP_MAX, &admit_of(p)->connections_per_ip);
}

int config_set_max_connect_rate(struct parser *p)
{
    return set_rate(p, CONFIG_CONNECT_RATE_MAX, &admit_of(p)->connect_per_s);
}

int config_set_max_connect_rate_per_ip(struct parser *p)
{
    return set_rate(p, CONFIG_CONNECT_RATE_MAX, &admit_of(p)->connect_per_s_per_ip);
}

static int set_u32(struct parser *p, uint64_t min, uint64_t max, uint32_t *slot)
{
    uint64_t n = 0;
    if (config_value_uint(p, min, max, 0, &n) != 0)
        return -1;
    *slot = (uint32_t)n;
    return 0;
}

int config_set_flapping_max_connects(struct parser *p)
{
    return set_u32(p, 0, CONFIG_PER_IP_MAX, &p->c->flapping_max_connects);
}

int config_set_flapping_window(struct parser *p)
{
    return set_u32(p, 1, CONFIG_FLAPPING_S_MAX, &p->c->flapping_window_s);
}

int config_set_flapping_ban(struct parser *p)
{
    return set_u32(p, 1, CONFIG_FLAPPING_S_MAX, &p->c->flapping_ban_s);
}

int config_set_auth_failures_max(struct parser *p)
{
    return set_u32(p, 0, CONFIG_PER_IP_MAX, &p->c->auth_failures_max);
}

int config_set_overload_lag(struct parser *p)
{
    return set_u32(p, 0, CONFIG_OVERLOAD_LAG_MS_MAX, &p->c->overload_lag_ms);
}

int config_set_ban_file(struct parser *p)
{
    const char *v = p->values[0];
    if (strlen(v) >= sizeof(p->c->ban_file))
        return config_fail(p, "`%s' path is longer than %u bytes", p->key,
                           (unsigned)sizeof(p->c->ban_file) - 1);
    memcpy(p->c->ban_file, v, strlen(v) + 1);
    p->c->ban_file_line = p->line;
    return 0;
}

void config_admit_init(struct config_admit *a)
{
    a->proxy_protocol = a->connections_per_ip = a->connect_per_s = a->connect_per_s_per_ip =
        CONFIG_RATE_INHERIT;
}

static void inherit(uint64_t *v, uint64_t global)
{
    if (*v == CONFIG_RATE_INHERIT)
        *v = global == CONFIG_RATE_INHERIT ? 0 : global;
}

void config_rates_init(struct config_rates *r)
{
    r->publish_per_s = r->subscribe_per_s = r->inbound_bytes_per_s = CONFIG_RATE_INHERIT;
}

/* A listener's unset rates and admission keys take the global ones;
 * unset globally: 0 (off). */
void config_rates_finish(struct config *c)
{
    const struct config_rates *g = &c->rates;
    const struct config_admit *ga = &c->admit;
    for (uint32_t i = 0; i < c->listener_count; i++) {
        struct config_rates *r = &c->listeners[i].rates;
        inherit(&r->publish_per_s, g->publish_per_s);
        inherit(&r->subscribe_per_s, g->subscribe_per_s);
        inherit(&r->inbound_bytes_per_s, g->inbound_bytes_per_s);
        struct config_admit *a = &c->listeners[i].admit;
        inherit(&a->proxy_protocol, ga->proxy_protocol);
        inherit(&a->connections_per_ip, ga->connections_per_ip);
        inherit(&a->connect_per_s, ga->connect_per_s);
        inherit(&a->connect_per_s_per_ip, ga->connect_per_s_per_ip);
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
