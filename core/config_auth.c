/*
 * The keys that decide who gets in and what they may do, scoped the way
 * mosquitto 2.0 scopes them: allow_anonymous, password_file and acl_file
 * apply to every listener, wherever they stand in the file, unless
 * `per_listener_settings true` comes first; then each belongs to the
 * listener block it is in. A mosquitto file with two listeners and
 * `allow_anonymous false` at the end means the same here as there.
 *
 * With per_listener_settings true, mosquitto applies these keys outside a
 * listener block to its default listener (the one `port` makes), which
 * ringmq does not have: such a line is an error rather than a setting that
 * means nothing. The rest of the parser is config.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_internal.h"

/* Remembers the first security key, for per_listener_settings's order. */
static void auth_seen(struct parser *p)
{
    if (p->c->auth_first_line == 0) {
        p->c->auth_first_line = p->line;
        snprintf(p->c->auth_first_key, sizeof(p->c->auth_first_key), "%s", p->key);
    }
}

/* With per_listener_settings true the key needs a listener block. */
static int auth_scope(struct parser *p)
{
    auth_seen(p);
    if (p->c->per_listener_settings && p->listener == NULL)
        return config_fail(p,
                           "with per_listener_settings true, `%s' belongs inside a listener "
                           "block (mosquitto would apply it to its default listener from "
                           "`port', which ringmq does not have)",
                           p->key);
    return 0;
}

int config_set_per_listener_settings(struct parser *p)
{
    bool b = false;
    if (config_value_bool(p, &b) != 0)
        return -1;
    if (p->c->auth_first_line != 0 && b != p->c->per_listener_settings)
        return config_fail(p,
                           "`per_listener_settings' must come before the security settings it "
                           "scopes (`%s' at line %d), as in mosquitto",
                           p->c->auth_first_key, p->c->auth_first_line);
    p->c->per_listener_settings = b;
    p->c->per_listener_settings_line = p->line;
    return 0;
}

int config_set_allow_anonymous(struct parser *p)
{
    bool b = false;
    if (config_value_bool(p, &b) != 0 || auth_scope(p) != 0)
        return -1;
    int v = b ? CONFIG_TRUE : CONFIG_FALSE;
    if (p->c->per_listener_settings) {
        p->listener->allow_anonymous = v;
        return 0;
    }
    if (p->listener != NULL && p->c->allow_anonymous_in_block == 0)
        p->c->allow_anonymous_in_block = p->line;
    p->c->allow_anonymous = v; /* the last one wins, for every listener */
    return 0;
}

/* A path kept as written (relative to the working directory, as
 * mosquitto), one word: a path with spaces is refused, not cut short. The
 * security snapshot opens the file and reports its own file:line errors. */
static int auth_path(struct parser *p, char *dst, size_t size, int *line)
{
    const char *v = p->values[0];
    if (strlen(v) >= size)
        return config_fail(p, "`%s' path is longer than %u bytes", p->key, (unsigned)size - 1);
    snprintf(dst, size, "%s", v);
    *line = p->line;
    return 0;
}

int config_set_password_file(struct parser *p)
{
    if (auth_scope(p) != 0)
        return -1;
    if (p->c->per_listener_settings)
        return auth_path(p, p->listener->password_file, sizeof(p->listener->password_file),
                         &p->listener->password_file_line);
    return auth_path(p, p->c->password_file, sizeof(p->c->password_file),
                     &p->c->password_file_line);
}

int config_set_acl_file(struct parser *p)
{
    if (auth_scope(p) != 0)
        return -1;
    if (p->c->per_listener_settings)
        return auth_path(p, p->listener->acl_file, sizeof(p->listener->acl_file),
                         &p->listener->acl_file_line);
    return auth_path(p, p->c->acl_file, sizeof(p->c->acl_file), &p->c->acl_file_line);
}

void config_warn(struct config *c, const char *fmt, ...)
{
    if (c->warning_count >= CONFIG_WARNINGS_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->warnings[c->warning_count++], sizeof(c->warnings[0]), fmt, ap);
    va_end(ap);
}

/* Can anyone log in on listener l: anonymous access, a password file, or
 * an identity from the TLS layer (a verified certificate or a PSK)? */
static bool anyone_gets_in(const struct config_listener *l)
{
    const struct config_tls *t = &l->tls;
    return l->allow_anonymous == CONFIG_TRUE || l->password_file[0] != '\0' ||
           (t->enabled && t->use_identity_as_username &&
            (t->require_certificate || t->psk_file[0] != '\0'));
}

void config_auth_files(struct config *c)
{
    for (uint32_t i = 0; i < c->listener_count && !c->per_listener_settings; i++) {
        struct config_listener *l = &c->listeners[i];
        memcpy(l->password_file, c->password_file, sizeof(l->password_file));
        l->password_file_line = c->password_file_line;
        memcpy(l->acl_file, c->acl_file, sizeof(l->acl_file));
        l->acl_file_line = c->acl_file_line;
    }
}

void config_auth_finish(struct config *c)
{
    c->warning_count = c->parse_warnings; /* config_finish may run twice: say each thing once */
    if (c->allow_anonymous_in_block && c->listener_count > 1)
        config_warn(c,
                    "%s:%d: `allow_anonymous' inside a listener block applies to every "
                    "listener (per_listener_settings is false, as in mosquitto 2.0)",
                    c->source, c->allow_anonymous_in_block);
    uint32_t closed = 0;
    for (uint32_t i = 0; i < c->listener_count; i++) {
        struct config_listener *l = &c->listeners[i];
        if (l->anonymous_by_default && l->line > 0 && strcmp(c->source, "<default>") != 0)
            config_warn(c,
                        "%s:%d: listener %s:%u lets anonymous clients in (ringmq's default on "
                        "a loopback listener without a password_file; mosquitto 2.0 would "
                        "refuse them: say allow_anonymous false or true)",
                        c->source, l->line, l->address, (unsigned)l->port);
        if (anyone_gets_in(l))
            continue;
        closed++;
        config_warn(c,
                    "%s:%d: nobody can log in on listener %s:%u: allow_anonymous is false and "
                    "it has no password_file%s",
                    c->source, l->line, l->address[0] ? l->address : "*", (unsigned)l->port,
                    l->tls.enabled ? " and no certificate or PSK identity "
                                     "(use_identity_as_username)"
                                   : "");
    }
    if (closed && closed == c->listener_count)
        config_warn(c, "%s: no client can ever be let in (see the lines above)", c->source);
}
