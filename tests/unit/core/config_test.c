/*
 * The config parser as an operator meets it: defaults, every key at its
 * limits and one past them, the exact "file:line: message" each mistake
 * produces, mosquitto options we refuse, listener blocks and how
 * config_finish() resolves allow_anonymous per listener.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static struct config cfg;
static char err[1024];

/* Parses text (a C string) as "t.conf" into a freshly initialised cfg. */
static int parse_len(const char *text, size_t len)
{
    config_init(&cfg);
    memset(err, 0, sizeof(err));
    return config_parse(&cfg, "t.conf", text, len, err, sizeof(err));
}

static int parse(const char *text)
{
    return parse_len(text, strlen(text));
}

static int parse_finish(const char *text)
{
    if (parse(text) != 0)
        return -1;
    return config_finish(&cfg, err, sizeof(err));
}

#define expect_ok(text)                                                                            \
    do {                                                                                           \
        int rc_ = parse(text);                                                                     \
        cr_assert_eq(rc_, 0, "parse(\"%s\") failed: %s", text, err);                               \
    } while (0)

#define expect_error(text, message)                                                                \
    do {                                                                                           \
        int rc_ = parse(text);                                                                     \
        cr_assert_eq(rc_, -1, "parse(\"%s\") should fail", text);                                  \
        cr_expect_str_eq(err, message);                                                            \
    } while (0)

/* ---- defaults ---- */

Test(config, defaults)
{
    config_init(&cfg);
    cr_expect_str_eq(cfg.source, "<default>");
    cr_expect_eq(cfg.shards, 0);
    cr_expect_eq(cfg.log_level, LOG_LEVEL_NOTICE);
    cr_expect_eq(cfg.allow_anonymous, CONFIG_UNSET);
    cr_expect_eq(cfg.max_packet_size, PACKET_SIZE_DEFAULT);
    cr_expect_eq(cfg.max_keepalive_s, 65535);
    cr_expect_eq(cfg.max_inflight_messages, 20);
    cr_expect_eq(cfg.max_queued_messages, 1000);
    cr_expect_eq(cfg.max_queued_bytes, 0);
    cr_expect_eq(cfg.persistent_client_expiration_s, 0);
    cr_expect_eq(cfg.connect_timeout_ms, 10000);
    cr_expect_eq(cfg.max_output_buffer, 1024 * 1024);
    cr_expect(cfg.retain_available);
    cr_expect_eq(cfg.max_qos, 2);
    cr_expect_eq(cfg.max_topic_levels, TOPIC_LEVELS_MAX);
    cr_expect_eq(cfg.max_topic_alias, 10);
    cr_expect_eq(cfg.auth_threads, 1);
    cr_expect_eq(cfg.max_subscriptions, 10000);
    cr_expect_eq(cfg.sys_interval_s, 10);
    cr_expect_eq(cfg.max_connect_size, 65536);
    cr_expect_eq(cfg.max_sessions, 1000000);
    cr_expect_eq(cfg.memory_limit, 0, "0: resolved at start-up from the machine's memory");
    cr_expect_eq(cfg.listener_count, 0);
}

Test(config, empty_text_keeps_defaults)
{
    expect_ok("");
    cr_expect_eq(cfg.listener_count, 0);
    cr_expect_eq(cfg.max_qos, 2);
    cr_expect_str_eq(cfg.source, "t.conf");
}

Test(config, default_text_parses)
{
    config_init(&cfg);
    cr_assert_eq(config_parse(&cfg, "<default>", config_default_text, strlen(config_default_text),
                              err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(config_finish(&cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.listener_count, 1);
    cr_expect_eq(cfg.listeners[0].port, 1883);
    cr_expect_str_eq(cfg.listeners[0].address, "127.0.0.1");
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_TRUE);
    cr_expect_gt(cfg.listeners[0].line, 0, "the listener comes from the text, not the fallback");
    cr_expect_eq(cfg.allow_anonymous, CONFIG_TRUE, "global wherever it stands, as mosquitto");
}

/* ---- lines, comments, whitespace ---- */

Test(config, comments_blank_lines_and_whitespace)
{
    expect_ok("# a comment\n"
              "\n"
              "   \t  \n"
              "   # indented comment\n"
              "\t max_qos \t 1 \t # trailing comment\n"
              "shards  4   \n"
              "#max_qos 0\n");
    cr_expect_eq(cfg.max_qos, 1);
    cr_expect_eq(cfg.shards, 4);
}

Test(config, hash_inside_a_token_is_data)
{
    expect_error("max_qos 1#x\n", "t.conf:1: `max_qos' value `1#x' is not a number");
}

Test(config, crlf_lines)
{
    expect_ok("max_qos 1\r\nshards 2\r\n\r\n# c\r\nlistener 1883 127.0.0.1\r\n");
    cr_expect_eq(cfg.max_qos, 1);
    cr_expect_eq(cfg.shards, 2);
    cr_expect_str_eq(cfg.listeners[0].address, "127.0.0.1");
    expect_error("max_qos 1\r\nbogus 1\r\n", "t.conf:2: unknown option `bogus'");
}

Test(config, last_line_without_newline)
{
    expect_ok("shards 3\nmax_qos 0");
    cr_expect_eq(cfg.max_qos, 0);
}

Test(config, text_need_not_be_nul_terminated)
{
    const char text[] = "max_qos 1garbage";
    cr_assert_eq(parse_len(text, 9), 0, "%s", err);
    cr_expect_eq(cfg.max_qos, 1);
}

Test(config, error_names_source_and_line)
{
    config_init(&cfg);
    const char *text = "# one\n\nshards 2\nmax_qos 9\n";
    cr_assert_eq(
        config_parse(&cfg, "/etc/ringmq/ringmq.conf", text, strlen(text), err, sizeof(err)), -1);
    cr_expect_str_eq(err, "/etc/ringmq/ringmq.conf:4: `max_qos' value `9' is out of range 0..2");
}

Test(config, line_at_limit_and_over)
{
    static char text[CONFIG_LINE_MAX + 16];
    /* A comment line of exactly CONFIG_LINE_MAX bytes is fine... */
    memset(text, 'x', CONFIG_LINE_MAX);
    text[0] = '#';
    text[CONFIG_LINE_MAX] = '\0';
    expect_ok(text);
    /* ...also with its CRLF... */
    memcpy(text + CONFIG_LINE_MAX, "\r\n", 3);
    expect_ok(text);
    /* ...one byte more is not. */
    memset(text, 'x', CONFIG_LINE_MAX + 1);
    text[0] = '#';
    memcpy(text + CONFIG_LINE_MAX + 1, "\n", 2);
    char msg[64];
    snprintf(msg, sizeof(msg), "t.conf:1: line is longer than %u bytes", CONFIG_LINE_MAX);
    expect_error(text, msg);
}

Test(config, long_line_reported_on_its_line)
{
    static char text[CONFIG_LINE_MAX + 64];
    strcpy(text, "shards 2\n");
    size_t off = strlen(text);
    memset(text + off, ' ', CONFIG_LINE_MAX + 1);
    text[off + CONFIG_LINE_MAX + 1] = '\0';
    char msg[64];
    snprintf(msg, sizeof(msg), "t.conf:2: line is longer than %u bytes", CONFIG_LINE_MAX);
    expect_error(text, msg);
}

Test(config, nul_byte_is_an_error)
{
    const char text[] = "max_qos 1\nshards\0 2\n";
    cr_assert_eq(parse_len(text, sizeof(text) - 1), -1);
    cr_expect_str_eq(err, "t.conf:2: line holds a NUL byte");
}

Test(config, control_character_is_an_error)
{
    expect_error("max_qos\x1b 1\n", "t.conf:1: line holds control character 0x1b");
    expect_error("max_qos 1\rshards 2\n", "t.conf:1: line holds control character 0x0d");
}

Test(config, small_error_buffer_is_truncated_not_overrun)
{
    char small[12];
    memset(small, 'Z', sizeof(small));
    config_init(&cfg);
    const char *text = "bogus 1\n";
    cr_assert_eq(config_parse(&cfg, "t.conf", text, strlen(text), small, 8), -1);
    cr_expect_str_eq(small, "t.conf:");
    cr_expect_eq(small[8], 'Z', "nothing written past errlen");
    cr_expect_eq(config_parse(&cfg, "t.conf", text, strlen(text), NULL, 0), -1);
}

/* ---- unknown, unsupported, arity ---- */

Test(config, unknown_option)
{
    expect_error("foo bar\n", "t.conf:1: unknown option `foo'");
    expect_error("Max_qos 1\n", "t.conf:1: unknown option `Max_qos'");
}

Test(config, unsupported_mosquitto_options)
{
    expect_error("listener 8883\ntls_keyform engine\n",
                 "t.conf:2: `tls_keyform' is a mosquitto option ringmq does not support yet: keys "
                 "are PEM files (keyfile): engines are not supported");
    expect_error("connection bridge1\n", "t.conf:1: `connection' is a mosquitto option ringmq "
                                         "does not support yet: bridges are not built yet");
    expect_error("bridge_cafile /x\n", "t.conf:1: `bridge_cafile' is a mosquitto option ringmq "
                                       "does not support yet: bridges are not built yet");
    expect_error("auth_opt_backend x\n",
                 "t.conf:1: `auth_opt_backend' is a mosquitto option ringmq does not support yet: "
                 "ringmq has no plugins: password_file, acl_file, auth_methods");
    const char *keys[] = {"accept_protocol_versions",
                          "allow_zero_length_clientid",
                          "auto_id_prefix",
                          "queue_qos0_messages",
                          "upgrade_outgoing_qos",
                          "check_retain_source",
                          "mount_point",
                          "use_username_as_clientid"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char text[128], msg[160];
        snprintf(text, sizeof(text), "%s x\n", keys[i]);
        snprintf(msg, sizeof(msg),
                 "t.conf:1: `%s' is a mosquitto option ringmq does not support yet", keys[i]);
        expect_error(text, msg);
    }
}

Test(config, missing_value)
{
    expect_error("max_qos\n", "t.conf:1: `max_qos' needs a value");
    expect_error("max_qos   # two\n", "t.conf:1: `max_qos' needs a value");
    expect_error("listener\n", "t.conf:1: `listener' needs a value");
}

Test(config, extra_values)
{
    expect_error("max_qos 1 2\n", "t.conf:1: `max_qos' takes one value, found extra `2'");
    expect_error("allow_anonymous true false\n",
                 "t.conf:1: `allow_anonymous' takes one value, found extra `false'");
    expect_error("listener 1883 127.0.0.1 tcp\n",
                 "t.conf:1: `listener' takes at most 2 values, found extra `tcp'");
}

/* ---- global keys ---- */

Test(config, shards)
{
    expect_ok("shards auto\n");
    cr_expect_eq(cfg.shards, 0);
    expect_ok("shards 1\n");
    cr_expect_eq(cfg.shards, 1);
    expect_ok("shards 64\n");
    cr_expect_eq(cfg.shards, SHARDS_MAX);
    expect_error("shards 65\n", "t.conf:1: `shards' value `65' is out of range (auto, or 1..64)");
    expect_error("shards 0\n", "t.conf:1: `shards' value `0' is out of range (auto, or 1..64)");
    expect_error("shards four\n", "t.conf:1: `shards' value `four' is not auto or a number");
    expect_error("shards -1\n", "t.conf:1: `shards' value `-1' is not auto or a number");
    expect_error("shards 99999999999999999999999\n",
                 "t.conf:1: `shards' value `99999999999999999999999' is out of range (auto, or "
                 "1..64)");
}

Test(config, log_level)
{
    const char *names[] = {"error", "warning", "notice", "info", "debug"};
    for (int i = 0; i < 5; i++) {
        char text[64];
        snprintf(text, sizeof(text), "log_level %s\n", names[i]);
        expect_ok(text);
        cr_expect_eq(cfg.log_level, (enum config_log_level)i, "%s", names[i]);
    }
    expect_error("log_level verbose\n", "t.conf:1: `log_level' value `verbose' is not one of "
                                        "error, warning, notice, info, debug");
    expect_error("log_level DEBUG\n", "t.conf:1: `log_level' value `DEBUG' is not one of "
                                      "error, warning, notice, info, debug");
}

Test(config, allow_anonymous_global)
{
    expect_ok("allow_anonymous true\n");
    cr_expect_eq(cfg.allow_anonymous, CONFIG_TRUE);
    expect_ok("allow_anonymous false\n");
    cr_expect_eq(cfg.allow_anonymous, CONFIG_FALSE);
    expect_error("allow_anonymous yes\n",
                 "t.conf:1: `allow_anonymous' value `yes' is not true or false");
    expect_error("allow_anonymous 1\n",
                 "t.conf:1: `allow_anonymous' value `1' is not true or false");
    expect_error("allow_anonymous TRUE\n",
                 "t.conf:1: `allow_anonymous' value `TRUE' is not true or false");
}

Test(config, max_packet_size)
{
    expect_ok("max_packet_size 1\n");
    cr_expect_eq(cfg.max_packet_size, 1);
    expect_ok("max_packet_size 268435455\n");
    cr_expect_eq(cfg.max_packet_size, PACKET_SIZE_MAX);
    expect_ok("max_packet_size 0\n");
    cr_expect_eq(cfg.max_packet_size, PACKET_SIZE_MAX, "mosquitto's 0 means the spec maximum");
    expect_error("max_packet_size 268435456\n",
                 "t.conf:1: `max_packet_size' value `268435456' is out of range 0..268435455");
    expect_error("max_packet_size 1k\n", "t.conf:1: `max_packet_size' value `1k' is not a number");
    expect_error("max_packet_size -1\n", "t.conf:1: `max_packet_size' value `-1' is not a number");
    expect_error("max_packet_size +5\n", "t.conf:1: `max_packet_size' value `+5' is not a number");
    expect_error("max_packet_size 0x10\n",
                 "t.conf:1: `max_packet_size' value `0x10' is not a number");
    expect_error("max_packet_size 18446744073709551616\n",
                 "t.conf:1: `max_packet_size' value `18446744073709551616' is out of range "
                 "0..268435455");
}

Test(config, max_keepalive)
{
    expect_ok("max_keepalive 10\n");
    cr_expect_eq(cfg.max_keepalive_s, 10);
    expect_ok("max_keepalive 65535\n");
    cr_expect_eq(cfg.max_keepalive_s, 65535);
    expect_ok("max_keepalive 0\n");
    cr_expect_eq(cfg.max_keepalive_s, 65535, "0 is mosquitto's no limit");
    expect_error("max_keepalive 9\n",
                 "t.conf:1: `max_keepalive' value `9' is out of range (0, or 10..65535)");
    expect_error("max_keepalive 65536\n",
                 "t.conf:1: `max_keepalive' value `65536' is out of range (0, or 10..65535)");
}

Test(config, max_inflight_messages)
{
    expect_ok("max_inflight_messages 1\n");
    cr_expect_eq(cfg.max_inflight_messages, 1);
    expect_ok("max_inflight_messages 65535\n");
    cr_expect_eq(cfg.max_inflight_messages, INFLIGHT_MAX);
    expect_ok("max_inflight_messages 0\n");
    cr_expect_eq(cfg.max_inflight_messages, INFLIGHT_MAX);
    expect_error("max_inflight_messages 65536\n",
                 "t.conf:1: `max_inflight_messages' value `65536' is out of range 0..65535");
}

Test(config, max_queued_messages)
{
    expect_ok("max_queued_messages 0\n");
    cr_expect_eq(cfg.max_queued_messages, QUEUED_MESSAGES_MAX, "mosquitto's 0: no maximum");
    expect_ok("max_queued_messages 1000000\n");
    cr_expect_eq(cfg.max_queued_messages, QUEUED_MESSAGES_MAX);
    expect_error("max_queued_messages 1000001\n",
                 "t.conf:1: `max_queued_messages' value `1000001' is out of range 0..1000000");
}

Test(config, max_queued_bytes)
{
    expect_ok("max_queued_bytes 0\n");
    cr_expect_eq(cfg.max_queued_bytes, 0);
    expect_ok("max_queued_bytes 17179869184\n");
    cr_expect_eq(cfg.max_queued_bytes, QUEUED_BYTES_MAX);
    expect_error("max_queued_bytes 17179869185\n",
                 "t.conf:1: `max_queued_bytes' value `17179869185' is out of range "
                 "0..17179869184");
}

Test(config, persistent_client_expiration)
{
    struct {
        const char *value;
        unsigned long long seconds;
    } ok[] = {
        {"0", 0},
        {"90", 90},
        {"90s", 90},
        {"1h", 3600},
        {"14d", 1209600},
        {"2w", 1209600},
        {"2m", 5184000},
        {"1y", 31536000},
        {"136y", 4288896000ull},
        {"4294967294", 4294967294ull},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "persistent_client_expiration %s\n", ok[i].value);
        expect_ok(text);
        cr_expect_eq(cfg.persistent_client_expiration_s, ok[i].seconds, "%s", ok[i].value);
    }
    const char *bad[] = {"d", "5x", "-1d", "1.5d", "1dd", "h1", "1 d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[64], msg[192];
        snprintf(text, sizeof(text), "persistent_client_expiration %s\n", bad[i]);
        if (strcmp(bad[i], "1 d") == 0)
            snprintf(msg, sizeof(msg),
                     "t.conf:1: `persistent_client_expiration' takes one value, found extra `d'");
        else
            snprintf(msg, sizeof(msg),
                     "t.conf:1: `persistent_client_expiration' value `%s' is not a duration (a "
                     "number, optionally followed by s, h, d, w, m or y)",
                     bad[i]);
        expect_error(text, msg);
    }
    expect_error("persistent_client_expiration 4294967295\n",
                 "t.conf:1: `persistent_client_expiration' value `4294967295' is out of range (at "
                 "most 4294967294 s)");
    expect_error("persistent_client_expiration 137y\n",
                 "t.conf:1: `persistent_client_expiration' value `137y' is out of range (at most "
                 "4294967294 s)");
    expect_error("persistent_client_expiration 999999999999999999999999999999999999999d\n",
                 "t.conf:1: `persistent_client_expiration' value "
                 "`999999999999999999999999999999999999999d' is out of range (at most "
                 "4294967294 s)");
}

Test(config, connect_timeout)
{
    expect_ok("connect_timeout 1\n");
    cr_expect_eq(cfg.connect_timeout_ms, 1000);
    expect_ok("connect_timeout 3600\n");
    cr_expect_eq(cfg.connect_timeout_ms, 3600000);
    expect_error("connect_timeout 0\n",
                 "t.conf:1: `connect_timeout' value `0' is out of range 1..3600");
    expect_error("connect_timeout 3601\n",
                 "t.conf:1: `connect_timeout' value `3601' is out of range 1..3600");
}

Test(config, auth_threads)
{
    expect_ok("auth_threads 0\n");
    cr_expect_eq(cfg.auth_threads, 0);
    expect_ok("auth_threads 16\n");
    cr_expect_eq(cfg.auth_threads, 16);
    expect_error("auth_threads 17\n", "t.conf:1: `auth_threads' value `17' is out of range 0..16");
    expect_error("auth_threads -1\n", "t.conf:1: `auth_threads' value `-1' is not a number");
}

Test(config, max_output_buffer)
{
    expect_ok("max_output_buffer 4096\n");
    cr_expect_eq(cfg.max_output_buffer, 4096);
    expect_ok("max_output_buffer 67108864\n");
    cr_expect_eq(cfg.max_output_buffer, OUTPUT_BUFFER_MAX);
    expect_error("max_output_buffer 4095\n",
                 "t.conf:1: `max_output_buffer' value `4095' is out of range 4096..67108864");
    expect_error("max_output_buffer 67108865\n",
                 "t.conf:1: `max_output_buffer' value `67108865' is out of range 4096..67108864");
}

Test(config, retain_available)
{
    expect_ok("retain_available false\n");
    cr_expect_not(cfg.retain_available);
    expect_ok("retain_available true\n");
    cr_expect(cfg.retain_available);
    expect_error("retain_available no\n",
                 "t.conf:1: `retain_available' value `no' is not true or false");
}

Test(config, max_qos)
{
    for (int q = 0; q <= 2; q++) {
        char text[32];
        snprintf(text, sizeof(text), "max_qos %d\n", q);
        expect_ok(text);
        cr_expect_eq(cfg.max_qos, q);
    }
    expect_error("max_qos 3\n", "t.conf:1: `max_qos' value `3' is out of range 0..2");
}

Test(config, max_topic_alias)
{
    expect_ok("max_topic_alias 0\n");
    cr_expect_eq(cfg.max_topic_alias, 0);
    expect_ok("max_topic_alias 65535\n");
    cr_expect_eq(cfg.max_topic_alias, 65535);
    expect_error("max_topic_alias 65536\n",
                 "t.conf:1: `max_topic_alias' value `65536' is out of range 0..65535");
}

Test(config, cpu_affinity)
{
    cr_expect_not(cfg.cpu_affinity, "off until configured");
    expect_ok("cpu_affinity true\n");
    cr_expect(cfg.cpu_affinity);
    expect_error("cpu_affinity yes\n", "t.conf:1: `cpu_affinity' value `yes' is not true or false");
}

Test(config, max_subscriptions)
{
    expect_ok("max_subscriptions 1\n");
    cr_expect_eq(cfg.max_subscriptions, 1);
    expect_error("max_subscriptions 0\n",
                 "t.conf:1: `max_subscriptions' value `0' is out of range 1..1000000");
}

Test(config, max_topic_levels)
{
    expect_ok("max_topic_levels 1\n");
    cr_expect_eq(cfg.max_topic_levels, 1);
    expect_ok("max_topic_levels 128\n");
    cr_expect_eq(cfg.max_topic_levels, TOPIC_LEVELS_MAX);
    expect_error("max_topic_levels 0\n",
                 "t.conf:1: `max_topic_levels' value `0' is out of range 1..128");
    expect_error("max_topic_levels 129\n",
                 "t.conf:1: `max_topic_levels' value `129' is out of range 1..128");
}

Test(config, sys_interval)
{
    expect_ok("sys_interval 0\n");
    cr_expect_eq(cfg.sys_interval_s, 0);
    expect_ok("sys_interval 65535\n");
    cr_expect_eq(cfg.sys_interval_s, 65535);
    expect_error("sys_interval 65536\n",
                 "t.conf:1: `sys_interval' value `65536' is out of range 0..65535");
}

Test(config, max_connect_size)
{
    expect_ok("max_connect_size 128\n");
    cr_expect_eq(cfg.max_connect_size, 128);
    cr_expect_eq(cfg.max_connect_size_line, 1);
    expect_ok("max_connect_size 268435455\n");
    cr_expect_eq(cfg.max_connect_size, PACKET_SIZE_MAX);
    expect_ok("max_connect_size 0\n");
    cr_expect_eq(cfg.max_connect_size, PACKET_SIZE_MAX, "0: max_packet_size alone applies");
    cr_expect_eq(cfg.max_connect_size_line, 0);
    expect_error("max_connect_size 127\n",
                 "t.conf:1: `max_connect_size' value `127' is out of range (0, or 128..268435455)");
    expect_error("max_connect_size 268435456\n",
                 "t.conf:1: `max_connect_size' value `268435456' is out of range (0, or "
                 "128..268435455)");
    expect_error("max_connect_size 64k\n",
                 "t.conf:1: `max_connect_size' value `64k' is not a number");
    expect_error("max_connect_size -1\n",
                 "t.conf:1: `max_connect_size' value `-1' is not a number");
}

Test(config, max_connect_size_follows_a_smaller_max_packet_size)
{
    cr_assert_eq(parse_finish("max_packet_size 4096\n"), 0, "%s", err);
    cr_expect_eq(cfg.max_connect_size, 4096, "the default is brought down");
    cr_assert_eq(parse_finish("max_connect_size 0\nmax_packet_size 4096\n"), 0, "%s", err);
    cr_expect_eq(cfg.max_connect_size, 4096);
    cr_assert_eq(parse_finish("max_connect_size 000\n"), 0, "%s", err);
    cr_expect_eq(cfg.max_connect_size, PACKET_SIZE_DEFAULT, "000 is 0 too");
    cr_assert_eq(parse_finish("max_connect_size 4096\nmax_packet_size 4096\n"), 0, "%s", err);
    cr_expect_eq(cfg.max_connect_size, 4096, "equal is fine");
    cr_assert_eq(parse_finish("max_connect_size 200000\n"), 0, "%s", err);
    cr_expect_eq(cfg.max_connect_size, 200000, "within the default max_packet_size");
    cr_assert_eq(parse_finish("log_level info\nmax_connect_size 4097\nmax_packet_size 4096\n"), -1);
    cr_expect_str_eq(err, "t.conf:2: `max_connect_size' 4097 is above max_packet_size 4096 (a "
                          "CONNECT is a packet: max_packet_size bounds it too)");
}

Test(config, max_sessions)
{
    expect_ok("max_sessions 1\n");
    cr_expect_eq(cfg.max_sessions, 1);
    expect_ok("max_sessions 100000000\n");
    cr_expect_eq(cfg.max_sessions, CONFIG_SESSIONS_MAX);
    expect_error("max_sessions 0\n",
                 "t.conf:1: `max_sessions' value `0' is out of range 1..100000000");
    expect_error("max_sessions 100000001\n",
                 "t.conf:1: `max_sessions' value `100000001' is out of range 1..100000000");
    expect_error("max_sessions 1M\n", "t.conf:1: `max_sessions' value `1M' is not a number");
    expect_error("max_sessions many\n", "t.conf:1: `max_sessions' value `many' is not a number");
}

Test(config, memory_limit_sizes)
{
    struct {
        const char *value;
        unsigned long long bytes;
    } ok[] = {
        {"0", 0},
        {"1048576", 1048576},
        {"1024k", 1048576},
        {"1024K", 1048576},
        {"1M", 1048576},
        {"1m", 1048576},
        {"512M", 512ull << 20},
        {"1G", 1ull << 30},
        {"4g", 4ull << 30},
        {"3000000000", 3000000000ull},
        {"1048576G", 1ull << 50},
        {"1125899906842624", 1ull << 50},
        {"0G", 0},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "memory_limit %s\n", ok[i].value);
        expect_ok(text);
        cr_expect_eq(cfg.memory_limit, ok[i].bytes, "%s", ok[i].value);
        cr_expect_eq(cfg.memory_limit_line, ok[i].bytes ? 1 : 0, "%s", ok[i].value);
    }
}

Test(config, memory_limit_at_its_bounds_and_past_them)
{
    const char *range = "is out of range (0, or 1M..1048576G)";
    const char *range_cases[] = {
        "1048575",
        "1023k",
        "1k",
        "1",
        "1125899906842625",
        "1048577G",
        "1099511627777M",
        "18446744073709551615",
        "18446744073709551616",
        "17179869184G", /* 2^64 after the shift */
        "99999999999999999999999999999999",
    };
    for (size_t i = 0; i < sizeof(range_cases) / sizeof(range_cases[0]); i++) {
        char text[96], msg[192];
        snprintf(text, sizeof(text), "memory_limit %s\n", range_cases[i]);
        snprintf(msg, sizeof(msg), "t.conf:1: `memory_limit' value `%s' %s", range_cases[i], range);
        expect_error(text, msg);
    }
}

Test(config, memory_limit_garbage)
{
    const char *bad[] = {"G",  "k",    "-1",  "+1G", "1.5G", "1KB", "1Gi",
                         "1T", "0x10", "1e9", "1GG", "G1",   "one", "1_000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[64], msg[192];
        snprintf(text, sizeof(text), "memory_limit %s\n", bad[i]);
        snprintf(msg, sizeof(msg),
                 "t.conf:1: `memory_limit' value `%s' is not a size (a number of bytes, "
                 "optionally followed by k, M or G)",
                 bad[i]);
        expect_error(text, msg);
    }
    expect_error("memory_limit 1 G\n", "t.conf:1: `memory_limit' takes one value, found extra `G'");
    expect_error("memory_limit\n", "t.conf:1: `memory_limit' needs a value");
    expect_error("listener 1883\nmemory_limit 1X\n",
                 "t.conf:2: `memory_limit' value `1X' is not a size (a number of bytes, optionally "
                 "followed by k, M or G)");
}

Test(config, memory_limit_is_no_longer_refused_as_mosquitto_only)
{
    expect_ok("memory_limit 1G\nlistener 1883\nmemory_limit 2G\n");
    cr_expect_eq(cfg.memory_limit, 2ull << 30, "a global key, even after a listener line");
}

Test(config, later_value_wins)
{
    expect_ok("max_qos 0\nmax_qos 1\n");
    cr_expect_eq(cfg.max_qos, 1);
}

/* ---- listeners ---- */

Test(config, listener_forms)
{
    expect_ok("listener 1883\n"
              "listener 0 127.0.0.1\n"
              "listener 65535 ::1\n"
              "listener 8883 0.0.0.0\n"
              "listener 8884 2001:db8::17\n");
    cr_assert_eq(cfg.listener_count, 5);
    cr_expect_eq(cfg.listeners[0].port, 1883);
    cr_expect_str_eq(cfg.listeners[0].address, "");
    cr_expect_eq(cfg.listeners[0].line, 1);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_UNSET);
    cr_expect_eq(cfg.listeners[0].max_connections, 0);
    cr_expect_eq(cfg.listeners[1].port, 0);
    cr_expect_str_eq(cfg.listeners[1].address, "127.0.0.1");
    cr_expect_eq(cfg.listeners[2].port, 65535);
    cr_expect_str_eq(cfg.listeners[2].address, "::1");
    cr_expect_eq(cfg.listeners[4].line, 5);
}

Test(config, listener_bad_port)
{
    expect_error("listener 65536\n", "t.conf:1: `listener' port `65536' is out of range 0..65535");
    expect_error("listener -1\n", "t.conf:1: `listener' port `-1' is not a number");
    expect_error("listener mqtt\n", "t.conf:1: `listener' port `mqtt' is not a number");
}

Test(config, listener_bad_address)
{
    const char *bad[] = {"localhost",    "broker.example.com", "[::1]",
                         "fe80::1%eth0", "127.0.0.256",        "1.2.3",
                         "::1::2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128], msg[256];
        snprintf(text, sizeof(text), "listener 1883 %s\n", bad[i]);
        snprintf(msg, sizeof(msg),
                 "t.conf:1: `listener' address `%s' is not a numeric IPv4 or IPv6 address (host "
                 "names are not supported)",
                 bad[i]);
        expect_error(text, msg);
    }
}

Test(config, listener_duplicate)
{
    expect_error("listener 1883 127.0.0.1\nlistener 1883 127.0.0.1\n",
                 "t.conf:2: duplicate listener 1883 127.0.0.1 (first at line 1)");
    expect_error("listener 1883 ::1\n\nlistener 1883 0:0:0:0:0:0:0:1\n",
                 "t.conf:3: duplicate listener 1883 0:0:0:0:0:0:0:1 (first at line 1)");
    expect_error("listener 1883\nlistener 1883\n",
                 "t.conf:2: duplicate listener 1883 (all addresses) (first at line 1)");
    /* Different port or address: distinct listeners. */
    expect_ok("listener 1883 127.0.0.1\nlistener 1884 127.0.0.1\nlistener 1883 ::1\n");
    cr_expect_eq(cfg.listener_count, 3);
    /* Port 0 gets a fresh ephemeral port each time. */
    expect_ok("listener 0 127.0.0.1\nlistener 0 127.0.0.1\n");
    cr_expect_eq(cfg.listener_count, 2);
}

Test(config, listener_count_limit)
{
    char text[LISTENERS_MAX * 32 + 64];
    size_t off = 0;
    for (unsigned i = 0; i < LISTENERS_MAX; i++)
        off +=
            (size_t)snprintf(text + off, sizeof(text) - off, "listener %u 127.0.0.1\n", 2000 + i);
    expect_ok(text);
    cr_expect_eq(cfg.listener_count, LISTENERS_MAX);
    snprintf(text + off, sizeof(text) - off, "listener 9999 127.0.0.1\n");
    char msg[96];
    snprintf(msg, sizeof(msg), "t.conf:%u: too many listeners (at most %u)", LISTENERS_MAX + 1,
             LISTENERS_MAX);
    expect_error(text, msg);
}

Test(config, max_connections)
{
    expect_ok("listener 1883\nmax_connections 100\n");
    cr_expect_eq(cfg.listeners[0].max_connections, 100);
    expect_ok("listener 1883\nmax_connections -1\n");
    cr_expect_eq(cfg.listeners[0].max_connections, 0);
    expect_ok("listener 1883\nmax_connections 0\n");
    cr_expect_eq(cfg.listeners[0].max_connections, 0);
    expect_ok("listener 1883\nmax_connections 4294967295\n");
    cr_expect_eq(cfg.listeners[0].max_connections, 4294967295u);
    expect_error("listener 1883\nmax_connections 4294967296\n",
                 "t.conf:2: `max_connections' value `4294967296' is out of range 0..4294967295");
    expect_error("listener 1883\nmax_connections -2\n",
                 "t.conf:2: `max_connections' value `-2' is not a number");
    expect_error("max_connections 10\n", "t.conf:1: `max_connections' is only valid inside a "
                                         "listener block (after a `listener' line)");
}

Test(config, max_connections_applies_to_its_block)
{
    expect_ok("listener 1883\nmax_connections 5\nlistener 1884\nmax_connections 7\n");
    cr_expect_eq(cfg.listeners[0].max_connections, 5);
    cr_expect_eq(cfg.listeners[1].max_connections, 7);
}

Test(config, protocol)
{
    expect_ok("listener 1883\nprotocol mqtt\n");
    expect_error("listener 8080\nprotocol websockets\n",
                 "t.conf:2: `protocol' value `websockets' is not supported (only mqtt)");
    expect_error("listener 8080\nprotocol http\n",
                 "t.conf:2: `protocol' value `http' is not mqtt or websockets");
    expect_error("protocol mqtt\n", "t.conf:1: `protocol' is only valid inside a listener "
                                    "block (after a `listener' line)");
}

Test(config, allow_anonymous_in_block_is_global_without_per_listener_settings)
{
    /* mosquitto 2.0: the last one wins, for every listener. */
    cr_assert_eq(parse_finish("allow_anonymous false\nlistener 1883\nallow_anonymous true\n"
                              "listener 1884\n"),
                 0, "%s", err);
    cr_expect_eq(cfg.allow_anonymous, CONFIG_TRUE);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_TRUE);
    cr_expect_eq(cfg.listeners[1].allow_anonymous, CONFIG_TRUE);
}

Test(config, global_key_after_listener_is_global)
{
    expect_ok("listener 1883\nmax_qos 1\n");
    cr_expect_eq(cfg.max_qos, 1);
}

/* ---- TLS in a listener block ---- */

#define expect_finish_error(text, message)                                                         \
    do {                                                                                           \
        int rc_ = parse(text);                                                                     \
        cr_assert_eq(rc_, 0, "parse(\"%s\") failed: %s", text, err);                               \
        rc_ = config_finish(&cfg, err, sizeof(err));                                               \
        cr_assert_eq(rc_, -1, "config_finish after \"%s\" should fail", text);                     \
        cr_expect_str_eq(err, message);                                                            \
    } while (0)

/* The listener block every test below builds on: TLS with its two files. */
#define TLS_BLOCK "listener 8883\ncertfile /etc/ringmq/server.crt\nkeyfile /etc/ringmq/server.key\n"

static const char *const tls_keys[] = {
    "certfile",
    "keyfile",
    "cafile",
    "capath",
    "crlfile",
    "require_certificate",
    "use_identity_as_username",
    "use_subject_as_username",
    "tls_version",
    "ciphers",
};

/* A value each key accepts. */
static const char *tls_value(const char *key)
{
    if (strcmp(key, "require_certificate") == 0 || strcmp(key, "use_identity_as_username") == 0 ||
        strcmp(key, "use_subject_as_username") == 0)
        return "true";
    if (strcmp(key, "tls_version") == 0)
        return "tlsv1.3";
    if (strcmp(key, "ciphers") == 0)
        return "ECDHE+AESGCM";
    return "/x";
}

Test(config, tls_defaults)
{
    config_init(&cfg);
    for (unsigned i = 0; i < LISTENERS_MAX; i++) {
        cr_expect_eq(cfg.listeners[i].tls.min_version, CONFIG_TLS_1_2, "slot %u", i);
        cr_expect(!cfg.listeners[i].tls.enabled, "slot %u", i);
    }
    cr_assert_eq(parse_finish(""), 0, "%s", err);
    cr_expect(!cfg.listeners[0].tls.enabled, "the default listener is plain");
    cr_expect_eq(cfg.listeners[0].tls.min_version, CONFIG_TLS_1_2);
    cr_assert_eq(parse_finish(TLS_BLOCK), 0, "%s", err);
    const struct config_tls *t = &cfg.listeners[0].tls;
    cr_expect(t->enabled);
    cr_expect_eq(t->min_version, CONFIG_TLS_1_2, "TLS 1.2 and 1.3 unless tls_version says");
    cr_expect_str_eq(t->cafile, "");
    cr_expect_str_eq(t->capath, "");
    cr_expect_str_eq(t->ciphers, "", "the library default list");
    cr_expect(!t->require_certificate);
    cr_expect(!t->use_identity_as_username);
    cr_expect(!t->use_subject_as_username);
}

Test(config, tls_keys_go_to_their_listener)
{
    cr_assert_eq(parse_finish("listener 1883 127.0.0.1\n"         /* 1 */
                              "max_connections 10\n"              /* 2 */
                              "listener 8883\n"                   /* 3 */
                              "certfile /etc/ringmq/server.crt\n" /* 4 */
                              "keyfile /etc/ringmq/server.key\n"  /* 5 */
                              "cafile /etc/ringmq/ca.crt\n"       /* 6 */
                              "capath /etc/ssl/certs\n"           /* 7 */
                              "crlfile /etc/ringmq/ca.crl\n"      /* 8 */
                              "require_certificate true\n"        /* 9 */
                              "use_identity_as_username true\n"   /* 10 */
                              "use_subject_as_username false\n"   /* 11 */
                              "tls_version tlsv1.3\n"             /* 12 */
                              "ciphers ECDHE+AESGCM:!aNULL\n"     /* 13 */
                              "listener 1884\n"),                 /* 14 */
                 0, "%s", err);
    cr_assert_eq(cfg.listener_count, 3);
    for (unsigned i = 0; i < 3; i += 2) {
        const struct config_tls *plain = &cfg.listeners[i].tls;
        cr_expect(!plain->enabled, "listener %u", i);
        cr_expect_str_eq(plain->certfile, "");
        cr_expect_str_eq(plain->keyfile, "");
        cr_expect_str_eq(plain->cafile, "");
        cr_expect_eq(plain->line, 0);
        cr_expect_eq(plain->min_version, CONFIG_TLS_1_2);
    }
    const struct config_tls *t = &cfg.listeners[1].tls;
    cr_expect(t->enabled);
    cr_expect_str_eq(t->certfile, "/etc/ringmq/server.crt");
    cr_expect_eq(t->line, 4);
    cr_expect_str_eq(t->keyfile, "/etc/ringmq/server.key");
    cr_expect_eq(t->keyfile_line, 5);
    cr_expect_str_eq(t->cafile, "/etc/ringmq/ca.crt");
    cr_expect_eq(t->cafile_line, 6);
    cr_expect_str_eq(t->capath, "/etc/ssl/certs");
    cr_expect_eq(t->capath_line, 7);
    cr_expect_str_eq(t->crlfile, "/etc/ringmq/ca.crl");
    cr_expect_eq(t->crlfile_line, 8);
    cr_expect(t->require_certificate);
    cr_expect_eq(t->require_certificate_line, 9);
    cr_expect(t->use_identity_as_username);
    cr_expect_eq(t->use_identity_as_username_line, 10);
    cr_expect(!t->use_subject_as_username);
    cr_expect_eq(t->use_subject_as_username_line, 11);
    cr_expect_eq(t->min_version, CONFIG_TLS_1_3);
    cr_expect_eq(t->tls_version_line, 12);
    cr_expect_str_eq(t->ciphers, "ECDHE+AESGCM:!aNULL");
    cr_expect_eq(t->ciphers_line, 13);
    cr_expect_eq(cfg.listeners[0].max_connections, 10, "the plain block's own key stays there");
}

Test(config, tls_enabled_is_certfile_only)
{
    expect_ok("listener 8883\ncertfile /c\n");
    cr_expect(cfg.listeners[0].tls.enabled, "the parser sets it with certfile");
    expect_ok("listener 8883\nkeyfile /k\n");
    cr_expect(!cfg.listeners[0].tls.enabled);
}

Test(config, tls_version_values)
{
    expect_ok("listener 8883\ntls_version tlsv1.2\n");
    cr_expect_eq(cfg.listeners[0].tls.min_version, CONFIG_TLS_1_2);
    expect_ok("listener 8883\ntls_version tlsv1.3\n");
    cr_expect_eq(cfg.listeners[0].tls.min_version, CONFIG_TLS_1_3);
    expect_error("listener 8883\ntls_version tlsv1.1\n",
                 "t.conf:2: `tls_version' value `tlsv1.1' is refused: TLS 1.0 and 1.1 are never "
                 "offered (use tlsv1.2 or tlsv1.3)");
    expect_error("listener 8883\ntls_version tlsv1\n",
                 "t.conf:2: `tls_version' value `tlsv1' is refused: TLS 1.0 and 1.1 are never "
                 "offered (use tlsv1.2 or tlsv1.3)");
    expect_error("listener 8883\ntls_version TLSv1.2\n",
                 "t.conf:2: `tls_version' value `TLSv1.2' is not tlsv1.2 or tlsv1.3");
    expect_error("listener 8883\ntls_version 1.3\n",
                 "t.conf:2: `tls_version' value `1.3' is not tlsv1.2 or tlsv1.3");
    expect_error("listener 8883\ntls_version tlsv1.2 tlsv1.3\n",
                 "t.conf:2: `tls_version' takes one value, found extra `tlsv1.3'");
}

Test(config, tls_booleans)
{
    const char *keys[] = {"require_certificate", "use_identity_as_username",
                          "use_subject_as_username"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char text[128], msg[160];
        snprintf(text, sizeof(text), "listener 8883\n%s true\n", keys[i]);
        expect_ok(text);
        snprintf(text, sizeof(text), "listener 8883\n%s false\n", keys[i]);
        expect_ok(text);
        snprintf(text, sizeof(text), "listener 8883\n%s yes\n", keys[i]);
        snprintf(msg, sizeof(msg), "t.conf:2: `%s' value `yes' is not true or false", keys[i]);
        expect_error(text, msg);
    }
    expect_ok("listener 8883\nrequire_certificate true\nuse_subject_as_username true\n");
    cr_expect(cfg.listeners[0].tls.require_certificate);
    cr_expect(cfg.listeners[0].tls.use_subject_as_username);
    cr_expect(!cfg.listeners[0].tls.use_identity_as_username);
}

Test(config, tls_path_length_limit)
{
    const char *keys[] = {"certfile", "keyfile", "cafile", "capath", "crlfile"};
    static char text[CONFIG_PATH_MAX + 64];
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        int off = snprintf(text, sizeof(text), "listener 8883\n%s /", keys[i]);
        memset(text + off, 'p', CONFIG_PATH_MAX - 2);
        strcpy(text + off + CONFIG_PATH_MAX - 2, "\n");
        expect_ok(text); /* CONFIG_PATH_MAX - 1 bytes */
        memcpy(text + off + CONFIG_PATH_MAX - 2, "p\n", 3);
        char msg[128];
        snprintf(msg, sizeof(msg), "t.conf:2: `%s' path is longer than %u bytes", keys[i],
                 CONFIG_PATH_MAX - 1);
        expect_error(text, msg);
    }
    expect_error("listener 8883\ncertfile /a b\n",
                 "t.conf:2: `certfile' takes one value, found extra `b'");
    expect_error("listener 8883\nkeyfile\n", "t.conf:2: `keyfile' needs a value");
}

Test(config, tls_ciphers)
{
    expect_ok("listener 8883\nciphers "
              "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE+CHACHA20,ECDHE+AESGCM:-aNULL:!MD5:@STRENGTH:@"
              "SECLEVEL=2:TLS_AES_128_GCM_SHA256.x\n");
    cr_expect_str_eq(cfg.listeners[0].tls.ciphers,
                     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE+CHACHA20,ECDHE+AESGCM:-aNULL:!MD5:@"
                     "STRENGTH:@SECLEVEL=2:TLS_AES_128_GCM_SHA256.x");
    expect_error("listener 8883\nciphers 'ECDHE+AESGCM'\n",
                 "t.conf:2: `ciphers' list holds `'' (an OpenSSL cipher list has names, digits "
                 "and ! : + @ _ . , - =)");
    expect_error("listener 8883\nciphers ECDHE$AESGCM\n",
                 "t.conf:2: `ciphers' list holds `$' (an OpenSSL cipher list has names, digits "
                 "and ! : + @ _ . , - =)");
    expect_error("listener 8883\nciphers ECDHE\xc3\xa9\n",
                 "t.conf:2: `ciphers' list holds byte 0xc3 (an OpenSSL cipher list has names, "
                 "digits and ! : + @ _ . , - =)");
    static char text[CONFIG_CIPHERS_MAX + 64];
    int off = snprintf(text, sizeof(text), "listener 8883\nciphers ");
    memset(text + off, 'A', CONFIG_CIPHERS_MAX - 1);
    strcpy(text + off + CONFIG_CIPHERS_MAX - 1, "\n");
    expect_ok(text);
    cr_expect_eq(strlen(cfg.listeners[0].tls.ciphers), CONFIG_CIPHERS_MAX - 1);
    memcpy(text + off + CONFIG_CIPHERS_MAX - 1, "A\n", 3);
    char msg[96];
    snprintf(msg, sizeof(msg), "t.conf:2: `ciphers' list is longer than %u bytes",
             CONFIG_CIPHERS_MAX - 1);
    expect_error(text, msg);
}

Test(config, tls_keys_only_inside_a_listener_block)
{
    for (size_t i = 0; i < sizeof(tls_keys) / sizeof(tls_keys[0]); i++) {
        char text[128], msg[160];
        snprintf(text, sizeof(text), "max_qos 1\n%s %s\nlistener 8883\n", tls_keys[i],
                 tls_value(tls_keys[i]));
        snprintf(msg, sizeof(msg),
                 "t.conf:2: `%s' is only valid inside a listener block (after a `listener' line)",
                 tls_keys[i]);
        expect_error(text, msg);
    }
}

Test(config, tls_key_twice_in_a_block)
{
    for (size_t i = 0; i < sizeof(tls_keys) / sizeof(tls_keys[0]); i++) {
        const char *k = tls_keys[i], *v = tls_value(k);
        char text[160], msg[160];
        if (strcmp(k, "certfile") == 0)
            continue; /* several pairs serve SNI: tls_sni_pairs */
        snprintf(text, sizeof(text), "listener 8883\n%s %s\n# again\n%s %s\n", k, v, k, v);
        snprintf(msg, sizeof(msg),
                 "t.conf:4: duplicate `%s' in this listener block (first at "
                 "line 2)",
                 k);
        expect_error(text, msg);
        /* Once in each of two blocks is two listeners' settings. */
        snprintf(text, sizeof(text), "listener 8883\n%s %s\nlistener 8884\n%s %s\n", k, v, k, v);
        expect_ok(text);
    }
    /* The second value is refused even when it is the same as the first
     * or would be valid on its own. */
    expect_error("listener 8883\nrequire_certificate false\nrequire_certificate true\n",
                 "t.conf:3: duplicate `require_certificate' in this listener block (first at "
                 "line 2)");
}

Test(config, tls_keyfile_and_certfile_go_together)
{
    expect_finish_error("listener 1883\nlistener 8883\nkeyfile /k\n",
                        "t.conf:3: `keyfile' needs certfile on this listener (a TLS listener "
                        "takes both)");
    expect_finish_error("listener 8883\nmax_connections 5\ncertfile /c\n",
                        "t.conf:3: `certfile' needs keyfile on this listener (a TLS listener "
                        "takes both)");
    /* The other listener's certfile does not count. */
    expect_finish_error("listener 8883\ncertfile /c\nlistener 8884\nkeyfile /k\n",
                        "t.conf:2: `certfile' needs keyfile on this listener (a TLS listener "
                        "takes both)");
    cr_assert_eq(parse_finish("listener 8883\nkeyfile /k\ncertfile /c\n"), 0, "%s", err);
    cr_expect(cfg.listeners[0].tls.enabled);
}

Test(config, tls_keys_on_a_plain_listener_are_refused)
{
    const char *keys[] = {"cafile",
                          "capath",
                          "crlfile",
                          "require_certificate",
                          "use_identity_as_username",
                          "use_subject_as_username",
                          "tls_version",
                          "ciphers"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char text[160], msg[160];
        snprintf(text, sizeof(text), TLS_BLOCK "listener 1883\nmax_connections 3\n%s %s\n", keys[i],
                 tls_value(keys[i]));
        snprintf(msg, sizeof(msg),
                 "t.conf:6: `%s' means nothing on a listener without certfile or psk_file (TLS "
                 "is off there)",
                 keys[i]);
        expect_finish_error(text, msg);
    }
    /* Even a value that would change nothing says TLS was expected. */
    expect_finish_error("listener 1883\nrequire_certificate false\n",
                        "t.conf:2: `require_certificate' means nothing on a listener without "
                        "certfile or psk_file (TLS is off there)");
    expect_finish_error("listener 1883\ntls_version tlsv1.2\n",
                        "t.conf:2: `tls_version' means nothing on a listener without certfile "
                        "or psk_file (TLS is off there)");
    /* With several, the first in the file is named. */
    expect_finish_error("listener 1883\nciphers ECDHE\ncafile /ca\n",
                        "t.conf:2: `ciphers' means nothing on a listener without certfile or "
                        "psk_file (TLS is off there)");
    expect_finish_error("listener 1883\npsk_hint dev\n",
                        "t.conf:2: `psk_hint' means nothing on a listener without certfile or "
                        "psk_file (TLS is off there)");
}

/* TLS-PSK: mosquitto's psk_file and psk_hint, alone or next to a
 * certificate, TLS 1.2 only, never with require_certificate. */
Test(config, tls_psk_listeners)
{
    cr_assert_eq(parse_finish("listener 8883\npsk_file /psk\npsk_hint dev\n"), 0, "%s", err);
    struct config_tls *t = &cfg.listeners[0].tls;
    cr_expect(t->enabled);
    cr_expect_str_eq(t->psk_file, "/psk");
    cr_expect_str_eq(t->psk_hint, "dev");
    cr_expect_eq(t->line, 2, "a PSK-only listener's files are named at psk_file");
    cr_assert_eq(parse_finish(TLS_BLOCK "psk_file /psk\nuse_identity_as_username true\n"), 0, "%s",
                 err);
    expect_finish_error("listener 8883\npsk_file /psk\ncafile /ca\n",
                        "t.conf:3: `cafile' needs certfile on this listener (a PSK-only "
                        "listener sees no certificates)");
    expect_finish_error("listener 8883\npsk_file /psk\ntls_version tlsv1.3\n",
                        "t.conf:3: `tls_version tlsv1.3' leaves psk_file unused (PSK works "
                        "over TLS 1.2 only)");
    expect_finish_error(TLS_BLOCK "cafile /ca\nrequire_certificate true\npsk_file /psk\n",
                        "t.conf:6: `psk_file' and `require_certificate true' cannot both be set "
                        "on a listener (a PSK handshake carries no certificate: PSK clients "
                        "would pass without one)");
    expect_finish_error(TLS_BLOCK "psk_hint dev\n",
                        "t.conf:4: `psk_hint' needs psk_file on this listener (a hint without "
                        "keys offers no PSK)");
    expect_error("listener 8883\npsk_file /a\npsk_file /b\n",
                 "t.conf:3: duplicate `psk_file' in this listener block (first at line 2)");
}

/* Several certfile/keyfile pairs: each keyfile belongs to the certfile
 * before it. */
Test(config, tls_sni_pairs)
{
    cr_assert_eq(parse_finish("listener 8883\ncertfile /a.crt\nkeyfile /a.key\ncertfile /b.crt\n"
                              "keyfile /b.key\ncertfile /c.crt\nkeyfile /c.key\n"),
                 0, "%s", err);
    struct config_tls *t = &cfg.listeners[0].tls;
    cr_expect_str_eq(t->certfile, "/a.crt");
    cr_expect_eq(t->sni_count, 2);
    cr_expect_str_eq(t->sni[0].certfile, "/b.crt");
    cr_expect_str_eq(t->sni[1].keyfile, "/c.key");
    cr_expect_eq(t->sni[1].line, 6);
    expect_error("listener 8883\ncertfile /a.crt\ncertfile /b.crt\n",
                 "t.conf:3: `certfile' again before a keyfile for the certfile at line 2 (each "
                 "certfile is followed by its keyfile)");
    expect_error("listener 8883\ncertfile /a.crt\nkeyfile /a.key\ncertfile /b.crt\n"
                 "keyfile /b.key\nkeyfile /b2.key\n",
                 "t.conf:6: duplicate `keyfile' for the certfile at line 4 (first at line 5)");
    expect_finish_error("listener 8883\ncertfile /a.crt\nkeyfile /a.key\ncertfile /b.crt\n",
                        "t.conf:4: `certfile' needs its keyfile on this listener (a keyfile "
                        "line after it)");
    char text[2048] = "listener 8883\n";
    for (int i = 0; i <= CONFIG_TLS_CERTS_MAX; i++) {
        char pair[64];
        snprintf(pair, sizeof(pair), "certfile /%d.crt\nkeyfile /%d.key\n", i, i);
        strcat(text, pair);
    }
    expect_error(text, "t.conf:18: more than 8 `certfile' lines in this listener block");
}

Test(config, tls_ticket_rotation)
{
    cr_assert_eq(parse_finish("listener 1883\n"), 0, "%s", err);
    cr_expect_eq(cfg.tls_ticket_rotation_s, CONFIG_TICKET_ROTATION_DEFAULT);
    cr_assert_eq(parse_finish("tls_ticket_rotation 0\n"), 0, "%s", err);
    cr_expect_eq(cfg.tls_ticket_rotation_s, 0);
    cr_assert_eq(parse_finish("tls_ticket_rotation 86400\n"), 0, "%s", err);
    expect_error("tls_ticket_rotation 86401\n",
                 "t.conf:1: `tls_ticket_rotation' value `86401' is out of range 0..86400");
}

Test(config, tls_require_certificate_needs_a_ca)
{
    expect_finish_error(TLS_BLOCK "crlfile /crl\nrequire_certificate true\n",
                        "t.conf:5: `require_certificate true' needs cafile or capath on this "
                        "listener (the CA certificates that client certificates are checked "
                        "against)");
    cr_assert_eq(parse_finish(TLS_BLOCK "require_certificate true\ncafile /ca\n"), 0, "%s", err);
    cr_assert_eq(parse_finish(TLS_BLOCK "capath /etc/ssl/certs\nrequire_certificate true\n"), 0,
                 "%s", err);
    cr_assert_eq(parse_finish(TLS_BLOCK "require_certificate false\n"), 0, "%s", err);
    /* A CA without require_certificate: clients may send a certificate. */
    cr_assert_eq(parse_finish(TLS_BLOCK "cafile /ca\n"), 0, "%s", err);
}

Test(config, tls_certificate_as_username_needs_require_certificate)
{
    expect_finish_error(TLS_BLOCK "cafile /ca\nuse_identity_as_username true\n",
                        "t.conf:5: `use_identity_as_username true' needs `require_certificate "
                        "true' or psk_file (without a verified client certificate or PSK "
                        "identity there is no name to use)");
    expect_finish_error(TLS_BLOCK "cafile /ca\nrequire_certificate false\n"
                                  "use_subject_as_username true\n",
                        "t.conf:6: `use_subject_as_username true' needs `require_certificate "
                        "true' (without a verified client certificate there is no name to use)");
    cr_assert_eq(parse_finish(TLS_BLOCK "use_identity_as_username false\n"
                                        "use_subject_as_username false\n"),
                 0, "%s", err);
    cr_assert_eq(parse_finish(TLS_BLOCK "use_subject_as_username true\ncafile /ca\n"
                                        "require_certificate true\n"),
                 0, "%s", err);
}

Test(config, tls_identity_and_subject_exclude_each_other)
{
    expect_finish_error(TLS_BLOCK "cafile /ca\nrequire_certificate true\n"
                                  "use_subject_as_username true\nuse_identity_as_username true\n",
                        "t.conf:7: `use_identity_as_username' and `use_subject_as_username' "
                        "cannot both be true (the other is at line 6)");
    expect_finish_error("listener 1883\n" TLS_BLOCK "cafile /ca\nrequire_certificate true\n"
                        "use_identity_as_username true\nuse_subject_as_username true\n",
                        "t.conf:8: `use_identity_as_username' and `use_subject_as_username' "
                        "cannot both be true (the other is at line 7)");
}

Test(config, tls_finish_checks_a_struct_filled_by_hand)
{
    /* No line numbers: messages name the listener's line. */
    cr_assert_eq(parse("max_qos 1\nlistener 8883\n"), 0, "%s", err);
    snprintf(cfg.listeners[0].tls.cafile, sizeof(cfg.listeners[0].tls.cafile), "/ca");
    cr_assert_eq(config_finish(&cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "t.conf:2: `cafile' means nothing on a listener without certfile or "
                          "psk_file (TLS is off there)");

    cr_assert_eq(parse("listener 8883\n"), 0, "%s", err);
    struct config_tls *t = &cfg.listeners[0].tls;
    snprintf(t->certfile, sizeof(t->certfile), "/c");
    snprintf(t->keyfile, sizeof(t->keyfile), "/k");
    cr_assert_eq(config_finish(&cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect(t->enabled, "config_finish resolves enabled from certfile");

    t->min_version = 0x0302; /* TLS 1.1 */
    cr_assert_eq(config_finish(&cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "t.conf:1: listener TLS minimum version is not TLS 1.2 or 1.3");

    t->min_version = CONFIG_TLS_1_3;
    memset(t->ciphers, 'h', sizeof(t->ciphers));
    cr_assert_eq(config_finish(&cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "t.conf:1: listener TLS setting is not a terminated string");
}

/* ---- credentials ---- */

Test(config, password_file_and_auth_methods)
{
    cr_assert_eq(parse_finish("password_file /etc/ringmq/passwd\n"
                              "auth_methods SCRAM-SHA-512\n"),
                 0, "%s", err);
    cr_expect_str_eq(cfg.password_file, "/etc/ringmq/passwd");
    cr_expect_eq(cfg.password_file_line, 1);
    cr_expect_eq(cfg.auth_methods, CONFIG_AUTH_SCRAM_SHA512);
    config_init(&cfg);
    cr_expect_str_eq(cfg.password_file, "", "none by default");
    cr_expect_eq(cfg.auth_methods, 0, "no method offered by default");
}

Test(config, auth_methods_errors)
{
    expect_error("auth_methods SCRAM-SHA-256\n",
                 "t.conf:1: `auth_methods' value `SCRAM-SHA-256' is not a known method "
                 "(SCRAM-SHA-512)");
    expect_error("password_file /a b\n",
                 "t.conf:1: `password_file' takes one value, found extra `b'");
    cr_assert_eq(parse_finish("log_level info\nauth_methods SCRAM-SHA-512\n"), -1);
    cr_expect_str_eq(err, "t.conf:2: `auth_methods' needs a password_file (SCRAM-SHA-512 works "
                          "from its SCRAM-SHA-512$ entries)");
}

Test(config, retained_store_bounds)
{
    config_init(&cfg);
    cr_expect_eq(cfg.max_retained_messages, 1000000);
    cr_expect_eq(cfg.max_retained_bytes, 1024ull * 1024 * 1024);
    cr_assert_eq(parse_finish("max_retained_messages 0\nmax_retained_bytes 4096\n"), 0, "%s", err);
    cr_expect_eq(cfg.max_retained_messages, 0, "0: unbounded");
    cr_expect_eq(cfg.max_retained_bytes, 4096);
    expect_error("max_retained_messages -1\n",
                 "t.conf:1: `max_retained_messages' value `-1' is not a number");
    expect_error("max_retained_bytes 2199023255553\n",
                 "t.conf:1: `max_retained_bytes' value `2199023255553' is out of range "
                 "0..1099511627776");
}

/* ---- config_finish ---- */

Test(config, finish_adds_default_listener)
{
    cr_assert_eq(parse_finish(""), 0, "%s", err);
    cr_assert_eq(cfg.listener_count, 1);
    cr_expect_eq(cfg.listeners[0].port, 1883);
    cr_expect_str_eq(cfg.listeners[0].address, "127.0.0.1");
    cr_expect_eq(cfg.listeners[0].line, 0);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_TRUE, "loopback: anonymous by default");
}

Test(config, finish_default_listener_follows_global)
{
    cr_assert_eq(parse_finish("allow_anonymous false\n"), 0, "%s", err);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_FALSE);
}

Test(config, finish_loopback_anonymous_by_default)
{
    cr_assert_eq(parse_finish("listener 1883 127.0.0.1\nlistener 1884 127.1.2.3\n"
                              "listener 1885 ::1\nlistener 1886 ::ffff:127.0.0.1\n"),
                 0, "%s", err);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(cfg.listeners[i].allow_anonymous, CONFIG_TRUE, "listener %d", i);
}

Test(config, finish_non_loopback_not_anonymous_by_default)
{
    cr_assert_eq(parse_finish("listener 1883 0.0.0.0\nlistener 1884\nlistener 1885 ::\n"
                              "listener 1886 192.168.1.10\nlistener 1887 128.0.0.1\n"
                              "listener 1888 ::2\n"),
                 0, "%s", err);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(cfg.listeners[i].allow_anonymous, CONFIG_FALSE, "listener %d", i);
}

Test(config, finish_explicit_global_applies_to_all)
{
    cr_assert_eq(parse_finish("allow_anonymous true\nlistener 1883 0.0.0.0\nlistener 1884\n"), 0,
                 "%s", err);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_TRUE);
    cr_expect_eq(cfg.listeners[1].allow_anonymous, CONFIG_TRUE);

    cr_assert_eq(parse_finish("allow_anonymous false\nlistener 1883 127.0.0.1\n"), 0, "%s", err);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_FALSE);
}

Test(config, finish_listener_override_wins)
{
    cr_assert_eq(parse_finish("per_listener_settings true\n"
                              "listener 1883 0.0.0.0\n"
                              "allow_anonymous false\n"
                              "listener 1884 0.0.0.0\n"
                              "listener 1885 127.0.0.1\n"
                              "allow_anonymous true\n"),
                 0, "%s", err);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_FALSE);
    cr_expect_eq(cfg.listeners[1].allow_anonymous, CONFIG_FALSE, "not loopback, not set");
    cr_expect_eq(cfg.listeners[2].allow_anonymous, CONFIG_TRUE);

    cr_assert_eq(parse_finish("listener 1883 0.0.0.0\nallow_anonymous true\n"), 0, "%s", err);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_TRUE);
}

Test(config, finish_is_idempotent)
{
    cr_assert_eq(parse_finish("listener 1883 0.0.0.0\n"), 0, "%s", err);
    cr_assert_eq(config_finish(&cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(cfg.listener_count, 1);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_FALSE);
}

Test(config, finish_rejects_a_bad_address_filled_by_hand)
{
    config_init(&cfg);
    snprintf(cfg.source, sizeof(cfg.source), "hand.conf");
    cfg.listener_count = 1;
    cfg.listeners[0].port = 1883;
    snprintf(cfg.listeners[0].address, sizeof(cfg.listeners[0].address), "localhost");
    cfg.listeners[0].allow_anonymous = CONFIG_UNSET;
    cfg.listeners[0].line = 7;
    cr_assert_eq(config_finish(&cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "hand.conf:7: listener address is not a numeric IP address");
}
