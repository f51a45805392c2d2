/*
 * The per-client rate keys (core/config_limits.c): in a listener block for
 * that listener, at global scope a default; 0 turns a limit off; bounds.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static struct config cfg;
static char err[1024];

static int parse_finish(const char *text)
{
    config_init(&cfg);
    memset(err, 0, sizeof(err));
    if (config_parse(&cfg, "t.conf", text, strlen(text), err, sizeof(err)) != 0)
        return -1;
    return config_finish(&cfg, err, sizeof(err));
}

Test(config_limits, off_by_default)
{
    cr_assert_eq(parse_finish("listener 1883\n"), 0, "%s", err);
    const struct config_rates *r = &cfg.listeners[0].rates;
    cr_expect_eq(r->publish_per_s, 0);
    cr_expect_eq(r->subscribe_per_s, 0);
    cr_expect_eq(r->inbound_bytes_per_s, 0);
}

Test(config_limits, global_default_and_listener_override)
{
    cr_assert_eq(parse_finish("max_publish_rate 100\n"
                              "max_inbound_rate 1000000\n"
                              "listener 1883\n"
                              "listener 1884\n"
                              "max_publish_rate 0\n"
                              "max_subscribe_rate 5\n"),
                 0, "%s", err);
    cr_expect_eq(cfg.listeners[0].rates.publish_per_s, 100);
    cr_expect_eq(cfg.listeners[0].rates.inbound_bytes_per_s, 1000000);
    cr_expect_eq(cfg.listeners[0].rates.subscribe_per_s, 0);
    cr_expect_eq(cfg.listeners[1].rates.publish_per_s, 0, "0 in the block turns it off there");
    cr_expect_eq(cfg.listeners[1].rates.inbound_bytes_per_s, 1000000, "inherited");
    cr_expect_eq(cfg.listeners[1].rates.subscribe_per_s, 5);
}

Test(config_limits, a_global_key_after_a_listener_is_that_listeners)
{
    /* As mosquitto's listener options: after a listener line, its own. */
    cr_assert_eq(parse_finish("listener 1883\nmax_publish_rate 7\nlistener 1884\n"), 0, "%s", err);
    cr_expect_eq(cfg.listeners[0].rates.publish_per_s, 7);
    cr_expect_eq(cfg.listeners[1].rates.publish_per_s, 0);
}

Test(config_limits, bounds)
{
    cr_assert_eq(parse_finish("max_publish_rate 10000001\n"), -1);
    cr_expect_str_eq(err, "t.conf:1: `max_publish_rate' value `10000001' is out of range "
                          "0..10000000");
    cr_assert_eq(parse_finish("max_subscribe_rate -1\n"), -1);
    cr_assert_eq(parse_finish("max_inbound_rate 10000000001\n"), -1);
    cr_assert_eq(parse_finish("max_inbound_rate 10000000000\n"), 0, "%s", err);
    cr_assert_eq(parse_finish("max_publish_rate\n"), -1);
    cr_expect_str_eq(err, "t.conf:1: `max_publish_rate' needs a value");
}

/* ---- allow_from / deny_from: kept as written, with scope and line ---- */

Test(config_limits, address_rules_keep_text_scope_and_line)
{
    cr_assert_eq(parse_finish("deny_from 10.0.0.0/8\n"
                              "listener 1883\n"
                              "allow_from 192.168.0.0/16\n"
                              "deny_from ::1\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.netrule_count, 3);
    cr_expect_str_eq(cfg.netrules[0].text, "10.0.0.0/8");
    cr_expect(cfg.netrules[0].deny);
    cr_expect_eq(cfg.netrules[0].listener, CONFIG_NETRULE_GLOBAL);
    cr_expect_eq(cfg.netrules[0].line, 1);
    cr_expect_str_eq(cfg.netrules[1].text, "192.168.0.0/16");
    cr_expect_not(cfg.netrules[1].deny);
    cr_expect_eq(cfg.netrules[1].listener, 0);
    cr_expect_eq(cfg.netrules[2].line, 4);
    config_fini(&cfg);
    cr_expect_null(cfg.netrules);
}

Test(config_limits, address_rule_values)
{
    cr_assert_eq(parse_finish("allow_from 10.0.0.0/8 10.1.0.0/16\n"), -1);
    cr_expect_str_eq(err, "t.conf:1: `allow_from' takes one value, found extra `10.1.0.0/16'");
    char text[128];
    snprintf(text, sizeof(text), "deny_from %.*s\n", 65,
             "1111:2222:3333:4444:5555:6666:7777:8888/128-and-then-some-more-text");
    cr_assert_eq(parse_finish(text), -1);
    cr_expect_str_eq(err, "t.conf:1: `deny_from' value is longer than 64 bytes (one CIDR range)");
    config_fini(&cfg);
}

/* ---- admission: PROXY, per-address limits, bans, flapping, overload ---- */

Test(config_limits, admission_keys_default_off)
{
    cr_assert_eq(parse_finish("listener 1883\n"), 0, "%s", err);
    const struct config_admit *a = &cfg.listeners[0].admit;
    cr_expect_eq(a->proxy_protocol, 0);
    cr_expect_eq(a->connections_per_ip, 0);
    cr_expect_eq(a->connect_per_s, 0);
    cr_expect_eq(a->connect_per_s_per_ip, 0);
    cr_expect_eq(cfg.flapping_max_connects, 0);
    cr_expect_eq(cfg.auth_failures_max, 0);
    cr_expect_eq(cfg.flapping_window_s, 60);
    cr_expect_eq(cfg.flapping_ban_s, 300);
    cr_expect_eq(cfg.overload_lag_ms, 1000);
    cr_expect_str_eq(cfg.ban_file, "");
    config_fini(&cfg);
}

Test(config_limits, admission_keys_scope)
{
    cr_assert_eq(parse_finish("max_connections_per_ip 5\n"
                              "max_connect_rate_per_ip 10\n"
                              "ban_file /etc/ringmq/bans\n"
                              "flapping_max_connects 20\n"
                              "flapping_window 30\n"
                              "flapping_ban 600\n"
                              "auth_failures_max 5\n"
                              "overload_lag_ms 0\n"
                              "listener 1883\n"
                              "listener 1884\n"
                              "enable_proxy_protocol 2\n"
                              "max_connections_per_ip 0\n"
                              "max_connect_rate 1000\n"),
                 0, "%s", err);
    const struct config_admit *a0 = &cfg.listeners[0].admit, *a1 = &cfg.listeners[1].admit;
    cr_expect_eq(a0->proxy_protocol, 0);
    cr_expect_eq(a0->connections_per_ip, 5);
    cr_expect_eq(a0->connect_per_s_per_ip, 10);
    cr_expect_eq(a0->connect_per_s, 0);
    cr_expect_eq(a1->proxy_protocol, 2);
    cr_expect_eq(a1->connections_per_ip, 0, "0 in the block turns it off there");
    cr_expect_eq(a1->connect_per_s_per_ip, 10, "inherited");
    cr_expect_eq(a1->connect_per_s, 1000);
    cr_expect_str_eq(cfg.ban_file, "/etc/ringmq/bans");
    cr_expect_eq(cfg.ban_file_line, 3);
    cr_expect_eq(cfg.flapping_max_connects, 20);
    cr_expect_eq(cfg.flapping_window_s, 30);
    cr_expect_eq(cfg.flapping_ban_s, 600);
    cr_expect_eq(cfg.auth_failures_max, 5);
    cr_expect_eq(cfg.overload_lag_ms, 0);
    config_fini(&cfg);
}

Test(config_limits, admission_key_bounds)
{
    cr_assert_eq(parse_finish("listener 1883\nenable_proxy_protocol 3\n"), -1);
    cr_expect_str_eq(err, "t.conf:2: `enable_proxy_protocol' value `3' is out of range 1..2");
    cr_assert_eq(parse_finish("listener 1883\nenable_proxy_protocol 0\n"), -1);
    cr_assert_eq(parse_finish("enable_proxy_protocol v2\n"), -1);
    cr_assert_eq(parse_finish("flapping_window 0\n"), -1);
    cr_expect_str_eq(err, "t.conf:1: `flapping_window' value `0' is out of range 1..2592000");
    cr_assert_eq(parse_finish("flapping_ban 2592001\n"), -1);
    cr_assert_eq(parse_finish("max_connect_rate 1000001\n"), -1);
    cr_assert_eq(parse_finish("overload_lag_ms 60001\n"), -1);
    cr_assert_eq(parse_finish("ban_file a b\n"), -1);
    cr_expect_str_eq(err, "t.conf:1: `ban_file' takes one value, found extra `b'");
}
