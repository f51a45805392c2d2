/*
 * The keys of running as a service, as mosquitto names them: where log
 * lines go (log_dest), which lines (log_type, read as a level), the pid
 * file and the account to run as. main.c and net/log.c act on them.
 */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

static int path_value(struct parser *p, const char *v, char *dst, size_t size)
{
    if (v[0] == '\0')
        return config_fail(p, "`%s' needs a path", p->key);
    if (strlen(v) >= size)
        return config_fail(p, "`%s' path is longer than %u bytes", p->key, (unsigned)size - 1);
    snprintf(dst, size, "%s", v);
    return 0;
}

/* log_dest stderr|stdout|syslog|file PATH|none, repeatable: every one
 * named gets every line. mosquitto's "topic" and "dlt" have no equivalent
 * here ($SYS and the metrics endpoint carry the figures; journald takes
 * stderr under systemd). */
int config_set_log_dest(struct parser *p)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } dests[] = {{"stderr", CONFIG_LOG_STDERR},
                 {"stdout", CONFIG_LOG_STDOUT},
                 {"syslog", CONFIG_LOG_SYSLOG},
                 {"none", CONFIG_LOG_NONE}};
    const char *v = p->values[0];
    if (strcmp(v, "file") == 0) {
        if (p->value_count < 2)
            return config_fail(p, "`log_dest file' needs a path");
        if (p->c->log_dest & CONFIG_LOG_FILE)
            return config_fail(p, "`log_dest file' given twice (one log file)");
        if (path_value(p, p->values[1], p->c->log_file, sizeof(p->c->log_file)) != 0)
            return -1;
        p->c->log_dest |= CONFIG_LOG_FILE;
        return 0;
    }
    if (p->value_count > 1)
        return config_fail(p, "`log_dest %s' takes no path", v);
    for (size_t i = 0; i < sizeof(dests) / sizeof(dests[0]); i++)
        if (strcmp(v, dests[i].name) == 0) {
            p->c->log_dest |= dests[i].bit;
            return 0;
        }
    if (strcmp(v, "topic") == 0 || strcmp(v, "dlt") == 0)
        return config_fail(p,
                           "`log_dest %s' is mosquitto's; ringmq logs to stderr, stdout, syslog "
                           "or a file (its figures are in $SYS and on metrics_listener)",
                           v);
    return config_fail(p, "`log_dest' value `%s' is not stderr, stdout, syslog, file PATH or none",
                       v);
}

/* log_type: mosquitto's message types, read as the level of the most
 * verbose one named (ringmq has levels, not types). */
int config_set_log_type(struct parser *p)
{
    static const struct {
        const char *name;
        enum config_log_level level;
    } types[] = {
        {"error", LOG_LEVEL_ERROR},     {"warning", LOG_LEVEL_WARNING},
        {"notice", LOG_LEVEL_NOTICE},   {"information", LOG_LEVEL_INFO},
        {"subscribe", LOG_LEVEL_INFO},  {"unsubscribe", LOG_LEVEL_INFO},
        {"websockets", LOG_LEVEL_INFO}, {"debug", LOG_LEVEL_DEBUG},
        {"all", LOG_LEVEL_DEBUG},       {"none", LOG_LEVEL_ERROR},
    };
    if (p->c->log_level_line)
        return config_fail(p, "`log_type' and `log_level' (line %d) both set the level: keep one",
                           p->c->log_level_line);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(p->values[0], types[i].name) != 0)
            continue;
        /* The first line replaces the default, as in mosquitto. */
        if (!p->c->log_type_line || types[i].level > p->c->log_level)
            p->c->log_level = types[i].level;
        p->c->log_type_line = p->line;
        return 0;
    }
    return config_fail(p,
                       "`log_type' value `%s' is not one of error, warning, notice, information, "
                       "subscribe, unsubscribe, websockets, debug, all, none",
                       p->values[0]);
}

int config_set_pid_file(struct parser *p)
{
    return path_value(p, p->values[0], p->c->pid_file, sizeof(p->c->pid_file));
}

/* An account name as getpwnam takes it: no path, no space. */
int config_set_user(struct parser *p)
{
    const char *v = p->values[0];
    size_t n = strlen(v);
    if (n == 0 || n >= sizeof(p->c->user))
        return config_fail(p, "`user' name must be 1..%u bytes", (unsigned)sizeof(p->c->user) - 1);
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.' || (ch == '$' && i == n - 1)))
            return config_fail(p, "`user' name `%s' is not an account name", v);
    }
    snprintf(p->c->user, sizeof(p->c->user), "%s", v);
    p->c->user_line = p->line;
    return 0;
}

/* What ringmq says of a mosquitto key it does not have: the nearest
 * equivalent or why there is none. no_effect: the key changes nothing a
 * client can see or only concerns what ringmq does anyway, so the line
 * is taken with a warning (a stock mosquitto.conf then starts); otherwise
 * it stops the start, because ignoring it could run a broker other than
 * the one the operator wrote. NULL: nothing specific to say. */
const char *config_mosquitto_hint(const char *key, const char *value, bool *no_effect)
{
    static const struct {
        const char *key; /* a trailing '*' matches a prefix */
        bool no_effect;
        const char *hint;
    } hints[] = {
        {"persistence", true,
         "ringmq keeps sessions, queued and retained messages in memory only: they do not "
         "survive a restart"},
        {"persistence_file", true, "ringmq has no persistence yet"},
        {"persistence_location", true, "ringmq has no persistence yet"},
        {"autosave_interval", true, "ringmq has no persistence yet"},
        {"autosave_on_changes", true, "ringmq has no persistence yet"},
        {"log_timestamp", true, "every line starts with an ISO 8601 UTC time"},
        {"log_timestamp_format", true, "every line starts with an ISO 8601 UTC time"},
        {"log_facility", true, "log_dest syslog uses the daemon facility"},
        {"connection_messages", true, "connects and disconnects are logged at notice"},
        {"set_tcp_nodelay", true, "ringmq sets TCP_NODELAY on every connection"},
        {"dhparamfile", true, "BoringSSL offers ECDHE key exchange only: no DH parameters"},
        {"ciphers_tls1.3", true,
         "BoringSSL does not let the TLS 1.3 suites be chosen (all three are offered)"},
        {"port", false, "use `listener PORT' (mosquitto's default listener does not exist here)"},
        {"bind_address", false, "give the address on the listener line: `listener PORT ADDRESS'"},
        {"bind_interface", false, "give the interface's address on the listener line"},
        {"socket_domain", false, "give an IPv4 or an IPv6 address on the listener line"},
        {"auth_plugin*", false,
         "ringmq has no plugins: password_file, acl_file, auth_methods (SCRAM) and client "
         "certificates"},
        {"auth_opt_*", false, "ringmq has no plugins: password_file, acl_file, auth_methods"},
        {"plugin*", false, "ringmq has no plugins: password_file, acl_file, auth_methods"},
        {"global_plugin", false, "ringmq has no plugins: password_file, acl_file, auth_methods"},
        {"tls_engine*", false, "keys are PEM files (keyfile): engines are not supported"},
        {"tls_keyform", false, "keys are PEM files (keyfile): engines are not supported"},
        {"websockets*", false, "WebSocket listeners are not built yet"},
        {"http_dir", false, "WebSocket listeners are not built yet"},
        {"message_size_limit", false, "not yet: max_packet_size bounds the whole packet"},
        {"max_inflight_bytes", false,
         "not yet: max_inflight_messages and max_output_buffer bound a client"},
        {"clientid_prefixes", false, "an acl_file or a ban_file decides who gets in"},
        {"bridge_*", false, "bridges are not built yet"},
        {"connection", false, "bridges are not built yet"},
        {"address", false, "bridges are not built yet"},
        {"addresses", false, "bridges are not built yet"},
    };
    *no_effect = false;
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
        size_t n = strlen(hints[i].key);
        bool prefix = hints[i].key[n - 1] == '*';
        if (prefix ? strncmp(key, hints[i].key, n - 1) != 0 : strcmp(key, hints[i].key) != 0)
            continue;
        *no_effect = hints[i].no_effect;
        return hints[i].hint;
    }
    (void)value;
    return NULL;
}
