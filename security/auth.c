/*
 * Authentication and authorization decisions from an immutable snapshot.
 * Called by shard threads concurrently; nothing here writes shared state.
 */
#include "auth.h"

#include <stdlib.h>

#include "codec.h"

struct auth_snapshot *auth_snapshot_create(const struct config *c, uint64_t generation)
{
    struct auth_snapshot *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->generation = generation;
    s->listener_count = c->listener_count;
    for (uint32_t i = 0; i < c->listener_count; i++)
        s->allow_anonymous[i] = c->listeners[i].allow_anonymous == CONFIG_TRUE;
    return s;
}

void auth_snapshot_destroy(struct auth_snapshot *s)
{
    free(s);
}

uint8_t auth_connect(const struct auth_snapshot *s, const struct auth_request *r)
{
    if (r->listener >= s->listener_count)
        return MQTT_RC_NOT_AUTHORIZED;
    /* No password database yet: a username proves nothing, so a client with
     * or without one is accepted exactly where anonymous access is. */
    if (s->allow_anonymous[r->listener])
        return MQTT_RC_SUCCESS;
    return r->has_username ? MQTT_RC_BAD_USERNAME_OR_PASSWORD : MQTT_RC_NOT_AUTHORIZED;
}

bool auth_allowed(const struct auth_snapshot *s, const struct auth_client *c,
                  enum auth_access access, const uint8_t *topic, size_t topic_len)
{
    (void)s;
    (void)c;
    (void)access;
    (void)topic;
    (void)topic_len;
    /* No ACL configured: every authenticated client may do everything. */
    return true;
}
