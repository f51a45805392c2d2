/*
 * What config.c, config_tls.c and config_auth.c share: the parse state and the helpers
 * that report "source:line: what is wrong". Not for other files.
 */
#ifndef RINGMQ_CONFIG_INTERNAL_H
#define RINGMQ_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* A line holds at most a key, two values (listener) and one token more to
 * name in the "extra value" message. */
#define CONFIG_TOKENS_MAX 4

/* Parse state for one config_parse() call. */
struct parser {
    struct config *c;
    const char *source;
    int line;
    char *err;
    size_t errlen;
    /* The block the last "listener" line opened; NULL before the first. */
    struct config_listener *listener;
    const char *key;
    const char *values[CONFIG_TOKENS_MAX - 1];
    size_t value_count; /* all values on the line, even beyond values[] */
};

/* "source:line: message" into p->err for the line being parsed; -1. */
__attribute__((format(printf, 2, 3))) int config_fail(struct parser *p, const char *fmt, ...);
/* The same for a given line; -1. */
__attribute__((format(printf, 5, 6))) int
config_report_at(char *err, size_t errlen, const char *source, int line, const char *fmt, ...);
/* The single value of p->key as an integer in min..max (0 stands for
 * zero_means when that is not 0), or "true"/"false". */
int config_value_uint(struct parser *p, uint64_t min, uint64_t max, uint64_t zero_means,
                      uint64_t *out);
int config_value_bool(struct parser *p, bool *out);

/* The listener-block TLS keys (config_tls.c). */
int config_set_certfile(struct parser *p);
int config_set_keyfile(struct parser *p);
int config_set_cafile(struct parser *p);
int config_set_capath(struct parser *p);
int config_set_crlfile(struct parser *p);
int config_set_require_certificate(struct parser *p);
int config_set_use_identity_as_username(struct parser *p);
int config_set_use_subject_as_username(struct parser *p);
int config_set_tls_version(struct parser *p);
int config_set_ciphers(struct parser *p);
int config_set_psk_file(struct parser *p);
int config_set_psk_hint(struct parser *p);
/* Running as a service (config_ops.c). */
int config_set_log_dest(struct parser *p);
int config_set_log_type(struct parser *p);
int config_set_pid_file(struct parser *p);
int config_set_user(struct parser *p);
const char *config_mosquitto_hint(const char *key, const char *value, bool *no_effect);
/* The security keys and their mosquitto scoping (config_auth.c). */
int config_set_per_listener_settings(struct parser *p);
int config_set_allow_anonymous(struct parser *p);
int config_set_password_file(struct parser *p);
int config_set_acl_file(struct parser *p);
/* From config_finish(): the files each listener uses (before
 * allow_anonymous is resolved: a password file changes its default), then,
 * once it is, the warnings about who can get in. */
void config_auth_files(struct config *c);
void config_auth_finish(struct config *c);
/* Appends a warning to c->warnings (the first CONFIG_WARNINGS_MAX). */
__attribute__((format(printf, 2, 3))) void config_warn(struct config *c, const char *fmt, ...);

/* The per-client rates (config_limits.c). */
int config_set_max_publish_rate(struct parser *p);
int config_set_max_subscribe_rate(struct parser *p);
int config_set_max_inbound_rate(struct parser *p);
void config_rates_init(struct config_rates *r);
int config_set_allow_from(struct parser *p);
int config_set_deny_from(struct parser *p);
void config_rates_finish(struct config *c);
int config_set_enable_proxy_protocol(struct parser *p);
int config_set_max_connections_per_ip(struct parser *p);
int config_set_max_connect_rate(struct parser *p);
int config_set_max_connect_rate_per_ip(struct parser *p);
int config_set_flapping_max_connects(struct parser *p);
int config_set_flapping_window(struct parser *p);
int config_set_flapping_ban(struct parser *p);
int config_set_auth_failures_max(struct parser *p);
int config_set_overload_lag(struct parser *p);
int config_set_ban_file(struct parser *p);
void config_admit_init(struct config_admit *a);

/* A listener's TLS keys taken together, from config_finish(). */
int config_tls_check(const char *source, struct config_listener *l, char *err, size_t errlen);

#endif
