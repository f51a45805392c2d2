/*
 * allow_anonymous, password_file, acl_file and per_listener_settings as
 * mosquitto 2.0 scopes them (core/config_auth.c), and the warnings about
 * who can get in.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static struct config cfg;
static char err[1024];

static int parse(const char *text)
{
    config_init(&cfg);
    memset(err, 0, sizeof(err));
    return config_parse(&cfg, "t.conf", text, strlen(text), err, sizeof(err));
}

static int parse_finish(const char *text)
{
    if (parse(text) != 0)
        return -1;
    return config_finish(&cfg, err, sizeof(err));
}

/* Is there a warning containing needle? */
static bool warned(const char *needle)
{
    for (uint32_t i = 0; i < cfg.warning_count; i++)
        if (strstr(cfg.warnings[i], needle))
            return true;
    return false;
}

Test(config_auth, mosquitto_two_listeners_allow_anonymous_at_the_end)
{
    /* The migration trap: in mosquitto 2.0 this closes both listeners. */
    cr_assert_eq(parse_finish("listener 1883 0.0.0.0\n"
                              "listener 8883 0.0.0.0\n"
                              "password_file /etc/mosquitto/passwd\n"
                              "allow_anonymous false\n"),
                 0, "%s", err);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(cfg.listeners[i].allow_anonymous, CONFIG_FALSE, "listener %d", i);
        cr_expect_str_eq(cfg.listeners[i].password_file, "/etc/mosquitto/passwd");
        cr_expect_eq(cfg.listeners[i].password_file_line, 3);
    }
    cr_expect(warned("t.conf:4: `allow_anonymous' inside a listener block applies to every "
                     "listener (per_listener_settings is false, as in mosquitto 2.0)"));
}

Test(config_auth, files_are_global_wherever_they_stand)
{
    cr_assert_eq(parse_finish("listener 1883\n"
                              "acl_file /a.acl\n"
                              "listener 1884\n"
                              "password_file /p\n"),
                 0, "%s", err);
    cr_expect_str_eq(cfg.acl_file, "/a.acl");
    cr_expect_eq(cfg.acl_file_line, 2);
    for (int i = 0; i < 2; i++) {
        cr_expect_str_eq(cfg.listeners[i].acl_file, "/a.acl");
        cr_expect_str_eq(cfg.listeners[i].password_file, "/p");
    }
}

Test(config_auth, per_listener_settings_scopes_each_block)
{
    cr_assert_eq(parse_finish("per_listener_settings true\n"
                              "listener 1883 0.0.0.0\n"
                              "allow_anonymous true\n"
                              "acl_file /open.acl\n"
                              "listener 8883 0.0.0.0\n"
                              "password_file /p\n"
                              "acl_file /closed.acl\n"),
                 0, "%s", err);
    cr_expect(cfg.per_listener_settings);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_TRUE);
    cr_expect_str_eq(cfg.listeners[0].acl_file, "/open.acl");
    cr_expect_str_eq(cfg.listeners[0].password_file, "");
    cr_expect_eq(cfg.listeners[1].allow_anonymous, CONFIG_FALSE);
    cr_expect_str_eq(cfg.listeners[1].password_file, "/p");
    cr_expect_str_eq(cfg.listeners[1].acl_file, "/closed.acl");
    cr_expect_eq(cfg.listeners[1].acl_file_line, 7);
    cr_expect_eq(cfg.warning_count, 0, "%s", cfg.warnings[0]);
}

Test(config_auth, per_listener_settings_outside_a_block_is_an_error)
{
    cr_assert_eq(parse("per_listener_settings true\npassword_file /p\nlistener 1883\n"), -1);
    cr_expect_str_eq(err, "t.conf:2: with per_listener_settings true, `password_file' belongs "
                          "inside a listener block (mosquitto would apply it to its default "
                          "listener from `port', which ringmq does not have)");
    cr_assert_eq(parse("per_listener_settings true\nallow_anonymous true\n"), -1);
    cr_assert_eq(parse("per_listener_settings true\nacl_file /a\n"), -1);
}

Test(config_auth, per_listener_settings_comes_first)
{
    cr_assert_eq(parse("allow_anonymous false\nper_listener_settings true\n"), -1);
    cr_expect_str_eq(err, "t.conf:2: `per_listener_settings' must come before the security "
                          "settings it scopes (`allow_anonymous' at line 1), as in mosquitto");
    /* Saying the default again changes nothing and is fine. */
    cr_assert_eq(parse("acl_file /a\nper_listener_settings false\n"), 0, "%s", err);
    cr_assert_eq(parse("per_listener_settings maybe\n"), -1);
    cr_assert_eq(parse("per_listener_settings\n"), -1);
}

Test(config_auth, acl_file_values)
{
    cr_assert_eq(parse("acl_file /a b\n"), -1);
    cr_expect_str_eq(err, "t.conf:1: `acl_file' takes one value, found extra `b'");
    char text[CONFIG_PATH_MAX + 32];
    memset(text, 'x', sizeof(text));
    memcpy(text, "acl_file /", 10);
    text[10 + CONFIG_PATH_MAX] = '\n';
    text[11 + CONFIG_PATH_MAX] = '\0';
    cr_assert_eq(parse(text), -1);
    cr_expect(strstr(err, "`acl_file' path is longer than") != NULL, "%s", err);
}

Test(config_auth, nobody_can_log_in_is_a_warning)
{
    /* configs/production.conf's shape before it had a password file. */
    cr_assert_eq(parse_finish("listener 1883 0.0.0.0\nallow_anonymous false\n"), 0, "%s", err);
    cr_expect(warned("t.conf:1: nobody can log in on listener 0.0.0.0:1883: allow_anonymous is "
                     "false and it has no password_file"),
              "%s", cfg.warnings[0]);
    cr_expect(warned("t.conf: no client can ever be let in"));

    cr_assert_eq(parse_finish("listener 1883 0.0.0.0\npassword_file /p\n"), 0, "%s", err);
    cr_expect_eq(cfg.warning_count, 0, "%s", cfg.warnings[0]);

    /* One listener open, one closed: the closed one is named, no "ever". */
    cr_assert_eq(parse_finish("per_listener_settings true\nlistener 1883 127.0.0.1\n"
                              "listener 1884 0.0.0.0\n"),
                 0, "%s", err);
    cr_expect(warned("nobody can log in on listener 0.0.0.0:1884"));
    cr_expect(!warned("ever"));
}

Test(config_auth, certificate_identity_lets_clients_in)
{
    cr_assert_eq(parse_finish("listener 8883 0.0.0.0\ncertfile /s.crt\nkeyfile /s.key\n"
                              "cafile /ca.crt\nrequire_certificate true\n"
                              "use_identity_as_username true\nallow_anonymous false\n"),
                 0, "%s", err);
    cr_expect_eq(cfg.warning_count, 0, "%s", cfg.warnings[0]);
}

Test(config_auth, loopback_default_differs_from_mosquitto_and_says_so)
{
    cr_assert_eq(parse_finish("listener 1883 127.0.0.1\n"), 0, "%s", err);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_TRUE);
    cr_expect(warned("t.conf:1: listener 127.0.0.1:1883 lets anonymous clients in (ringmq's "
                     "default on a loopback listener without a password_file; mosquitto 2.0 "
                     "would refuse them: say allow_anonymous false or true)"),
              "%s", cfg.warnings[0]);
    cr_assert_eq(config_finish(&cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(cfg.warning_count, 1, "a second finish says it once");
    /* Said in the file: no warning. A password file: refused by default. */
    cr_assert_eq(parse_finish("listener 1883 127.0.0.1\nallow_anonymous true\n"), 0, "%s", err);
    cr_expect_eq(cfg.warning_count, 0, "%s", cfg.warnings[0]);
    cr_assert_eq(parse_finish("listener 1883 127.0.0.1\npassword_file /p\n"), 0, "%s", err);
    cr_expect_eq(cfg.listeners[0].allow_anonymous, CONFIG_FALSE);
    cr_expect_eq(cfg.warning_count, 0, "%s", cfg.warnings[0]);
}
