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

uint32_t auth_files_needed(const struct config *c, const char *paths[AUTH_FILES_MAX])
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->listener_count && i < LISTENERS_MAX; i++) {
        const char *want[2] = {c->listeners[i].password_file, c->listeners[i].acl_file};
        for (int k = 0; k < 2; k++) {
            bool seen = want[k][0] == '\0';
            for (uint32_t j = 0; j < n && !seen; j++)
                seen = strcmp(paths[j], want[k]) == 0;
            if (!seen)
                paths[n++] = want[k];
        }
    }
    const char *more[2] = {c->ban_file, c->metrics_password_file};
    for (int k = 0; k < 2; k++) {
        bool seen = more[k][0] == '\0';
        for (uint32_t j = 0; j < n && !seen; j++)
            seen = strcmp(paths[j], more[k]) == 0;
        if (!seen)
            paths[n++] = more[k];
    }
    return n;
}

static const struct auth_file *file_of(const struct auth_files *f, const char *path, char *err,
                                       size_t errlen)
{
    for (uint32_t i = 0; f && i < f->count; i++)
        if (strcmp(f->v[i].path, path) == 0)
            return &f->v[i];
    snprintf(err, errlen, "%s: not read", path);
    return NULL;
}

/* Listener i's password table: one already parsed for the same path, or a
 * new one. 0 or -1 with err set. */
static int take_passwd(struct auth_snapshot *s, const struct config_listener *l, uint32_t i,
                       const struct auth_files *f, char *err, size_t errlen)
{
    for (uint32_t j = 0; j < s->passwd_own_count; j++)
        if (strcmp(s->passwd_path[j], l->password_file) == 0) {
            s->passwd[i] = s->passwd_own[j];
            return 0;
        }
    const struct auth_file *af = file_of(f, l->password_file, err, errlen);
    struct passwd_db *db =
        af ? passwd_parse(l->password_file, af->bytes, af->len, err, errlen) : NULL;
    if (!db)
        return -1;
    s->passwd_own[s->passwd_own_count] = db;
    s->passwd_path[s->passwd_own_count++] = l->password_file;
    s->passwd[i] = db;
    return 0;
}

/* Listener i's ACL, the same way. */
static int take_acl(struct auth_snapshot *s, const struct config_listener *l, uint32_t i,
                    const struct auth_files *f, char *err, size_t errlen)
{
    for (uint32_t j = 0; j < s->acl_own_count; j++)
        if (strcmp(s->acl_path[j], l->acl_file) == 0) {
            s->acl[i] = s->acl_own[j];
            return 0;
        }
    const struct auth_file *af = file_of(f, l->acl_file, err, errlen);
    struct acl *a = af ? acl_create(af->bytes, af->len, l->acl_file, err, errlen) : NULL;
    if (!a)
        return -1;
    s->acl_own[s->acl_own_count] = a;
    s->acl_path[s->acl_own_count++] = l->acl_file;
    s->acl[i] = a;
    return 0;
}

/* Does config line r apply to listener li as kind deny? A block's allow
 * lines replace the global ones; deny lines add up. */
static bool netrule_applies(const struct config *c, const struct config_netrule *r, uint32_t li,
                            bool deny, bool own_allow)
{
    if (r->deny != deny)
        return false;
    if (r->listener == li)
        return true;
    return r->listener == CONFIG_NETRULE_GLOBAL && (deny || !own_allow);
}

/* Listener li's allow (deny false) or deny set from the config's lines.
 * NULL with *out NULL when there is none; -1 with err on a bad line. */
static int netrules_take(const struct config *c, uint32_t li, bool deny, struct netrule_set **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    bool own_allow = false;
    for (uint32_t i = 0; i < c->netrule_count && !deny; i++)
        own_allow = own_allow || (!c->netrules[i].deny && c->netrules[i].listener == li);
    size_t n = 0;
    for (uint32_t i = 0; i < c->netrule_count; i++)
        n += netrule_applies(c, &c->netrules[i], li, deny, own_allow);
    if (n == 0)
        return 0;
    struct netrule_cidr *v = malloc(n * sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (uint32_t i = 0; i < c->netrule_count; i++) {
        const struct config_netrule *r = &c->netrules[i];
        if (!netrule_applies(c, r, li, deny, own_allow))
            continue;
        char why[192];
        if (netrule_parse_cidr(r->text, strlen(r->text), &v[k++], why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s:%d: %s %s", c->source, r->line,
                     r->deny ? "deny_from" : "allow_from", why);
            free(v);
            return -1;
        }
    }
    char why[128];
    *out = netrule_set_create(v, NULL, n, why, sizeof(why));
    free(v);
    if (!*out) {
        snprintf(err, errlen, "%s: %s", c->source, why);
        return -1;
    }
    return 0;
}

bool auth_admit(const struct auth_snapshot *s, uint32_t listener, const struct netrule_addr *a)
{
    if (listener >= s->listener_count)
        return false;
    return netrule_admit(s->allow[listener], s->deny[listener], a);
}

struct auth_snapshot *auth_snapshot_create(const struct config *c, uint64_t generation,
                                           const uint64_t hash_key[2], const struct auth_files *f,
                                           char *err, size_t errlen)
{
    struct auth_snapshot *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->generation = generation;
    s->listener_count = c->listener_count < LISTENERS_MAX ? c->listener_count : LISTENERS_MAX;
    s->auth_methods = c->auth_methods;
    for (uint32_t i = 0; i < s->listener_count; i++) {
        const struct config_listener *l = &c->listeners[i];
        s->allow_anonymous[i] = l->allow_anonymous == CONFIG_TRUE;
        if (l->password_file[0] && take_passwd(s, l, i, f, err, errlen) != 0)
            goto fail;
        if (l->acl_file[0] && take_acl(s, l, i, f, err, errlen) != 0)
            goto fail;
        s->username_proven[i] = s->passwd[i] != NULL || l->tls.use_identity_as_username ||
                                l->tls.use_subject_as_username;
        if (netrules_take(c, i, false, &s->allow[i], err, errlen) != 0 ||
            netrules_take(c, i, true, &s->deny[i], err, errlen) != 0)
            goto fail;
    }
    if (c->ban_file[0]) {
        const struct auth_file *bf = file_of(f, c->ban_file, err, errlen);
        s->bans =
            bf ? ban_list_create(bf->bytes, bf->len, c->ban_file, hash_key, err, errlen) : NULL;
        if (!s->bans)
            goto fail;
        s->ban_path = c->ban_file;
    }
    if (c->metrics_password_file[0]) {
        for (uint32_t j = 0; j < s->passwd_own_count && !s->metrics_passwd; j++)
            if (strcmp(s->passwd_path[j], c->metrics_password_file) == 0)
                s->metrics_passwd = s->passwd_own[j];
        if (!s->metrics_passwd) {
            const struct auth_file *mf = file_of(f, c->metrics_password_file, err, errlen);
            s->metrics_passwd_own =
                mf ? passwd_parse(c->metrics_password_file, mf->bytes, mf->len, err, errlen) : NULL;
            if (!s->metrics_passwd_own)
                goto fail;
            s->metrics_passwd = s->metrics_passwd_own;
        }
    }
    return s;
fail:
    auth_snapshot_destroy(s);
    return NULL;
}

void auth_snapshot_destroy(struct auth_snapshot *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->passwd_own_count; i++)
        passwd_free(s->passwd_own[i]);
    for (uint32_t i = 0; i < s->acl_own_count; i++)
        acl_destroy(s->acl_own[i]);
    for (uint32_t i = 0; i < s->listener_count; i++) {
        netrule_set_destroy(s->allow[i]);
        netrule_set_destroy(s->deny[i]);
    }
    ban_list_destroy(s->bans);
    passwd_free(s->metrics_passwd_own);
    free(s);
}

uint8_t auth_connect_prepare(const struct auth_snapshot *s, const struct auth_request *r,
                             struct auth_check *chk, bool *hash)
{
    memset(chk, 0, sizeof(*chk));
    *hash = false;
    if (r->listener >= s->listener_count)
        return MQTT_RC_NOT_AUTHORIZED;
    const struct passwd_db *db = s->passwd[r->listener];
    if (r->has_username && db) {
        *hash = true;
        const struct passwd_entry *e = passwd_find(db, r->username, r->username_len);
        if (!e || !r->has_password) {
            /* The same hashing work as a known user's check: the answer's
             * timing does not tell which names exist. */
            chk->decoy = true;
            chk->has_entry = passwd_decoy_copy(db, &chk->entry);
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
    /* Offered where any listener has a password table; a listener without
     * one runs the exchange against no table, which no proof passes. */
    if ((s->auth_methods & CONFIG_AUTH_SCRAM_SHA512) && s->passwd_own_count &&
        len == sizeof(SCRAM_METHOD) - 1 && memcmp(method, SCRAM_METHOD, len) == 0)
        return CONFIG_AUTH_SCRAM_SHA512;
    return 0;
}

bool auth_allowed(const struct auth_snapshot *s, const struct auth_client *c,
                  enum auth_access access, const uint8_t *topic, size_t topic_len)
{
    if (c->listener >= s->listener_count)
        return false;
    bool named = c->username && s->username_proven[c->listener];
    struct acl_who who = {
        .username = named ? c->username : NULL,
        .username_len = named ? c->username_len : 0,
        .has_username = named,
        .client_id = c->client_id,
        .client_id_len = c->client_id_len,
        .listener = c->listener,
    };
    const struct acl *acl = s->acl[c->listener];
    if (!acl)
        return true; /* the engine keeps $SYS to itself (acknowledged and dropped) */
    switch (access) {
    case AUTH_READ:
        return acl_may_read(acl, &who, topic, topic_len);
    case AUTH_WRITE:
        return acl_may_publish(acl, &who, topic, topic_len);
    case AUTH_SUBSCRIBE:
        return acl_may_subscribe(acl, &who, topic, topic_len);
    }
    return false;
}

bool auth_banned_addr(const struct auth_snapshot *s, const struct netrule_addr *a, uint64_t now_s)
{
    return s->bans && ban_ip(s->bans, a, now_s);
}

bool auth_banned_client(const struct auth_snapshot *s, const uint8_t *client_id, size_t id_len,
                        const uint8_t *username, size_t username_len, uint64_t now_s)
{
    if (!s->bans)
        return false;
    if (id_len && ban_clientid(s->bans, client_id, id_len, now_s))
        return true;
    return username && username_len && ban_username(s->bans, username, username_len, now_s);
}
