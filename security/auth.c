/*
 * Authentication and authorization decisions from an immutable snapshot.
 * Called by shard threads concurrently; nothing here writes shared state.
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "scram.h"

struct auth_snapshot *auth_snapshot_create(const struct config *c, uint64_t generation,
                                           const struct auth_files *f, char *err, size_t errlen)
{
    struct auth_snapshot *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->generation = generation;
    s->listener_count = c->listener_count;
    for (uint32_t i = 0; i < c->listener_count; i++)
        s->allow_anonymous[i] = c->listeners[i].allow_anonymous == CONFIG_TRUE;
    if (c->password_file[0]) {
        s->passwd = passwd_parse(c->password_file, f->passwd, f->passwd_len, err, errlen);
        if (!s->passwd) {
            free(s);
            return NULL;
        }
    }
    s->auth_methods = c->auth_methods;
    return s;
}

void auth_snapshot_destroy(struct auth_snapshot *s)
{
    if (!s)
        return;
    passwd_free(s->passwd);
    free(s);
}

uint8_t auth_connect_prepare(const struct auth_snapshot *s, const struct auth_request *r,
                             struct auth_check *chk, bool *hash)
{
    memset(chk, 0, sizeof(*chk));
    *hash = false;
    if (r->listener >= s->listener_count)
        return MQTT_RC_NOT_AUTHORIZED;
    if (r->has_username && s->passwd) {
        *hash = true;
        const struct passwd_entry *e = passwd_find(s->passwd, r->username, r->username_len);
        if (!e || !r->has_password) {
            /* The same hashing work as a known user's check: the answer's
             * timing does not tell which names exist. */
            chk->decoy = true;
            chk->has_entry = passwd_decoy_copy(s->passwd, &chk->entry);
            return MQTT_RC_SUCCESS;
        }
        chk->has_entry = true;
        chk->entry = *e;
        chk->entry.user = NULL; /* points into the snapshot */
        chk->entry.user_len = 0;
        return MQTT_RC_SUCCESS;
    }
    /* Anonymous: no username, or one that nothing can check. */
    if (s->allow_anonymous[r->listener])
        return MQTT_RC_SUCCESS;
    return r->has_username ? MQTT_RC_BAD_USERNAME_OR_PASSWORD : MQTT_RC_NOT_AUTHORIZED;
}

uint8_t auth_check_verdict(const struct auth_check *chk, const uint8_t *password, size_t len)
{
    if (chk->decoy) {
        if (chk->has_entry)
            (void)passwd_check(&chk->entry, password, len); /* the work, not the answer */
        return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
    }
    if (!chk->has_entry)
        return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
    return passwd_check(&chk->entry, password, len) ? MQTT_RC_SUCCESS
                                                    : MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

uint8_t auth_connect(const struct auth_snapshot *s, const struct auth_request *r)
{
    struct auth_check chk;
    bool hash = false;
    uint8_t rc = auth_connect_prepare(s, r, &chk, &hash);
    if (rc != MQTT_RC_SUCCESS || !hash)
        return rc;
    rc = auth_check_verdict(&chk, r->has_password ? r->password : NULL,
                            r->has_password ? r->password_len : 0);
    explicit_bzero(&chk, sizeof(chk));
    return rc;
}

uint32_t auth_method_offered(const struct auth_snapshot *s, const uint8_t *method, size_t len)
{
    if ((s->auth_methods & CONFIG_AUTH_SCRAM_SHA512) && s->passwd &&
        len == sizeof(SCRAM_METHOD) - 1 && memcmp(method, SCRAM_METHOD, len) == 0)
        return CONFIG_AUTH_SCRAM_SHA512;
    return 0;
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
