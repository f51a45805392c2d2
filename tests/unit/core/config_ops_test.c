/*
 * The service keys (core/config_ops.c) and metrics_listener: log_dest,
 * log_type read as a level, pid_file, user; every bad value stops the
 * parse with file:line.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static struct config cfg;
static char err[1024];

static int parse(const char *text)
{
    config_fini(&cfg);
    config_init(&cfg);
    memset(err, 0, sizeof(err));
    if (config_parse(&cfg, "t.conf", text, strlen(text), err, sizeof(err)) != 0)
        return -1;
    return config_finish(&cfg, err, sizeof(err));
}

static void refused(const char *text, const char *want)
{
    cr_assert_eq(parse(text), -1, "%s was taken", text);
    cr_assert_str_eq(err, want);
}

Test(config_ops, defaults)
{
    cr_assert_eq(parse(""), 0, "%s", err);
    cr_expect_eq(cfg.log_dest, 0);
    cr_expect_str_eq(cfg.pid_file, "");
    cr_expect_str_eq(cfg.user, "");
    cr_expect_eq(cfg.metrics_line, 0, "metrics_listener is off by default");
    cr_expect_eq(cfg.log_level, LOG_LEVEL_NOTICE);
}

Test(config_ops, log_dest_accumulates)
{
    cr_assert_eq(parse("log_dest stderr\nlog_dest file /var/log/ringmq.log\nlog_dest syslog\n"), 0,
                 "%s", err);
    cr_expect_eq(cfg.log_dest, CONFIG_LOG_STDERR | CONFIG_LOG_FILE | CONFIG_LOG_SYSLOG);
    cr_expect_str_eq(cfg.log_file, "/var/log/ringmq.log");
    cr_assert_eq(parse("log_dest none\n"), 0, "%s", err);
    cr_expect_eq(cfg.log_dest, CONFIG_LOG_NONE);
    refused("log_dest file\n", "t.conf:1: `log_dest file' needs a path");
    refused("log_dest file /a\nlog_dest file /b\n",
            "t.conf:2: `log_dest file' given twice (one log file)");
    refused("log_dest stderr /a\n", "t.conf:1: `log_dest stderr' takes no path");
    refused("log_dest topic\n",
            "t.conf:1: `log_dest topic' is mosquitto's; ringmq logs to stderr, stdout, syslog or "
            "a file (its figures are in $SYS and on metrics_listener)");
    refused(
        "log_dest console\n",
        "t.conf:1: `log_dest' value `console' is not stderr, stdout, syslog, file PATH or none");
}

Test(config_ops, log_type_is_the_most_verbose_named)
{
    cr_assert_eq(parse("log_type error\n"), 0, "%s", err);
    cr_expect_eq(cfg.log_level, LOG_LEVEL_ERROR, "the first log_type replaces the default");
    cr_assert_eq(parse("log_type error\nlog_type warning\nlog_type information\n"), 0, "%s", err);
    cr_expect_eq(cfg.log_level, LOG_LEVEL_INFO);
    cr_assert_eq(parse("log_type all\nlog_type error\n"), 0, "%s", err);
    cr_expect_eq(cfg.log_level, LOG_LEVEL_DEBUG);
    cr_assert_eq(parse("log_type subscribe\n"), 0, "%s", err);
    cr_expect_eq(cfg.log_level, LOG_LEVEL_INFO);
    refused("log_type chatty\n",
            "t.conf:1: `log_type' value `chatty' is not one of error, warning, notice, "
            "information, subscribe, unsubscribe, websockets, debug, all, none");
    refused("log_level info\nlog_type all\n",
            "t.conf:2: `log_type' and `log_level' (line 1) both set the level: keep one");
    refused("log_type all\nlog_level info\n",
            "t.conf:2: `log_level' and `log_type' (line 1) both set the level: keep one");
}

Test(config_ops, pid_file_and_user)
{
    cr_assert_eq(parse("pid_file /run/ringmq.pid\nuser nobody\n"), 0, "%s", err);
    cr_expect_str_eq(cfg.pid_file, "/run/ringmq.pid");
    cr_expect_str_eq(cfg.user, "nobody");
    cr_expect_eq(cfg.user_line, 2);
    refused("user ../etc\n", "t.conf:1: `user' name `../etc' is not an account name");
    refused("user a$b\n", "t.conf:1: `user' name `a$b' is not an account name");
}

Test(config_ops, metrics_listener)
{
    cr_assert_eq(parse("metrics_listener 9883\n"), 0, "%s", err);
    cr_expect_eq(cfg.metrics_port, 9883);
    cr_expect_str_eq(cfg.metrics_address, "127.0.0.1", "loopback unless an address is named");
    cr_assert_eq(parse("metrics_listener 0 ::1\nmetrics_password_file /etc/p\n"), 0, "%s", err);
    cr_expect_str_eq(cfg.metrics_address, "::1");
    cr_expect_str_eq(cfg.metrics_password_file, "/etc/p");
    refused("metrics_listener 9883\nmetrics_listener 9884\n",
            "t.conf:2: `metrics_listener' given twice (first at line 1)");
    refused("metrics_listener 70000\n",
            "t.conf:1: `metrics_listener' port `70000' is out of range 0..65535");
    refused("metrics_listener 9883 localhost\n",
            "t.conf:1: `metrics_listener' address `localhost' is not a numeric IPv4 or IPv6 "
            "address (host names are not supported)");
    refused("listener 1883\nmetrics_listener 1883\n",
            "t.conf:2: `metrics_listener' 1883 127.0.0.1 is the MQTT listener of line 1");
}

Test(config_ops, mosquitto_keys_without_effect_are_warnings)
{
    cr_assert_eq(parse("persistence true\npersistence_location /var/lib/mosquitto/\n"
                       "persistence false\nlog_timestamp false\nset_tcp_nodelay true\n"),
                 0, "%s", err);
    unsigned n = 0;
    for (unsigned i = 0; i < cfg.warning_count; i++)
        n += strstr(cfg.warnings[i], "has no effect here") != NULL;
    cr_assert_eq(n, 4, "persistence false says what ringmq does: no warning");
    cr_expect_str_eq(cfg.warnings[0],
                     "t.conf:1: `persistence' has no effect here: ringmq keeps sessions, queued "
                     "and retained messages in memory only: they do not survive a restart");
    cr_expect_str_eq(cfg.warnings[1], "t.conf:2: `persistence_location' has no effect here: "
                                      "ringmq has no persistence yet");
}

Test(config_ops, mosquitto_keys_with_a_meaning_name_the_nearest)
{
    refused("port 1883\n", "t.conf:1: `port' is a mosquitto option ringmq does not support yet: "
                           "use `listener PORT' (mosquitto's default listener does not exist "
                           "here)");
    refused("message_size_limit 1000\n",
            "t.conf:1: `message_size_limit' is a mosquitto option ringmq does not support yet: "
            "not yet: max_packet_size bounds the whole packet");
}

static int fake_include_calls;
static int fake_include(void *ctx, struct config *c, const char *dir, char *e, size_t elen)
{
    (void)ctx;
    fake_include_calls++;
    cr_assert_str_eq(dir, "/etc/ringmq/conf.d");
    const char *text = "max_qos 1\nbogus_key 1\n";
    return config_parse(c, "/etc/ringmq/conf.d/a.conf", text, strlen(text), e, elen);
}

Test(config_ops, include_dir_and_every_error)
{
    config_fini(&cfg);
    config_init(&cfg);
    cfg.include_fn = fake_include;
    cfg.collect_errors = true;
    const char *text = "max_qos 9\ninclude_dir /etc/ringmq/conf.d\nport 1883\n";
    cr_assert_eq(config_parse(&cfg, "t.conf", text, strlen(text), err, sizeof(err)), -1);
    cr_assert_eq(fake_include_calls, 1);
    cr_assert_eq(cfg.error_count, 3, "every error, the included file's too");
    cr_expect(strstr(cfg.errors[0], "t.conf:1: ") == cfg.errors[0], "%s", cfg.errors[0]);
    cr_expect_str_eq(cfg.errors[1], "/etc/ringmq/conf.d/a.conf:2: unknown option `bogus_key'");
    cr_expect(strstr(cfg.errors[2], "t.conf:3: `port'") == cfg.errors[2], "%s", cfg.errors[2]);
    cr_expect_eq(cfg.max_qos, 1, "the included file's line applied");
    cr_expect_str_eq(cfg.source, "t.conf", "the main file is the source again after it");
    refused("include_dir /x\n", "t.conf:1: `include_dir' is not available here");
}
