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
