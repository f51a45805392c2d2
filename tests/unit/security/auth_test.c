#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "codec.h"

static const uint64_t test_key[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull};

/* A snapshot from config text and, when it names a password file, that
 * file's bytes (the broker reads them; here they are handed over). */
static struct auth_snapshot *snap_with_files(const char *text, const struct auth_files *f)
{
    struct config c;
    char err[256];
    config_init(&c);
    cr_assert_eq(config_parse(&c, "t.conf", text, strlen(text), err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(config_finish(&c, err, sizeof(err)), 0, "%s", err);
    struct auth_snapshot *s = auth_snapshot_create(&c, 7, test_key, f, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    config_fini(&c); /* the snapshot keeps nothing of the address rules' text */
    return s;
}

static struct auth_snapshot *snap_for(const char *text)
{
    static const struct auth_files none = {NULL, 0};
    return snap_with_files(text, &none);
}

/* One file handed over as the broker would after reading it. */
static struct auth_files one_file(struct auth_file *slot, const char *path, const char *text)
{
    *slot = (struct auth_file){.path = path, .bytes = (const uint8_t *)text, .len = strlen(text)};
    return (struct auth_files){.v = slot, .count = 1};
}

static uint8_t connect_with(const struct auth_snapshot *s, uint32_t listener, const char *user,
                            const char *password);

static uint8_t connect_as(const struct auth_snapshot *s, uint32_t listener, const char *user)
{
    return connect_with(s, listener, user, NULL);
}

Test(auth, loopback_listener_allows_anonymous_by_default)
{
    struct auth_snapshot *s = snap_for("listener 1883 127.0.0.1\n");
    cr_assert_eq(s->generation, 7);
    cr_assert_eq(connect_as(s, 0, NULL), MQTT_RC_SUCCESS);
    auth_snapshot_destroy(s);
}

Test(auth, public_listener_refuses_anonymous_by_default)
{
    struct auth_snapshot *s = snap_for("listener 1883 0.0.0.0\n");
    cr_assert_eq(connect_as(s, 0, NULL), MQTT_RC_NOT_AUTHORIZED);
    cr_assert_eq(connect_as(s, 0, "alice"), MQTT_RC_BAD_USERNAME_OR_PASSWORD,
                 "no password database: a username proves nothing");
    auth_snapshot_destroy(s);
}

Test(auth, listener_setting_wins_per_listener)
{
    struct auth_snapshot *s = snap_for("per_listener_settings true\n"
                                       "listener 1883 127.0.0.1\n"
                                       "allow_anonymous false\n"
                                       "listener 1884 0.0.0.0\n"
                                       "allow_anonymous true\n");
    cr_assert_eq(connect_as(s, 0, NULL), MQTT_RC_NOT_AUTHORIZED, "the listener's own false");
    cr_assert_eq(connect_as(s, 1, NULL), MQTT_RC_SUCCESS, "the listener's own true wins");
    cr_assert_eq(connect_as(s, 5, NULL), MQTT_RC_NOT_AUTHORIZED, "unknown listener");
    auth_snapshot_destroy(s);
}

Test(auth, without_acl_everything_is_allowed)
{
    struct auth_snapshot *s = snap_for("listener 1883 127.0.0.1\n");
    struct auth_client c = {.client_id = (const uint8_t *)"c", .client_id_len = 1};
    cr_assert(auth_allowed(s, &c, AUTH_WRITE, (const uint8_t *)"a/b", 3));
    cr_assert(auth_allowed(s, &c, AUTH_SUBSCRIBE, (const uint8_t *)"#", 1));
    auth_snapshot_destroy(s);
}

/* ---- with a password file ---- */

/* Written by mosquitto_passwd 2.0.11: alice/wonderland ($7$, the default)
 * and bob/builder (-H sha512). */
static const char passwd_text[] =
    "alice:$7$101$i5+PtBadqb5RhFS1$sEjmZqHkJYsmjB1qL4aND82ogFZELzdz5SIOzgLnka4SCHjGV7TJsRNZoaWbeUlu"
    "RHdEENOD3qMgPbm4xcq1kQ==\n"
    "bob:$6$6B3w4Q3KmK5gVTbG$NVvM0/"
    "sri70FLvkUwe8AyPnNeQAcwj0eZqV4h8Eopd9xkuvJIhD3uf6ISEMLkkVJpisQIcTd"
    "5+AD9vDSI3wBlw==\n";

static struct auth_snapshot *snap_with_passwd(const char *conf_tail)
{
    char text[512];
    snprintf(text, sizeof(text), "password_file /etc/ringmq/passwd\n%s", conf_tail);
    struct auth_file slot;
    const struct auth_files f = one_file(&slot, "/etc/ringmq/passwd", passwd_text);
    return snap_with_files(text, &f);
}

static struct auth_request request(const char *user, const char *password)
{
    struct auth_request r;
    memset(&r, 0, sizeof(r));
    r.peer = "127.0.0.1:1";
    r.client_id = (const uint8_t *)"c";
    r.client_id_len = 1;
    if (user) {
        r.has_username = true;
        r.username = (const uint8_t *)user;
        r.username_len = strlen(user);
    }
    if (password) {
        r.has_password = true;
        r.password = (const uint8_t *)password;
        r.password_len = strlen(password);
    }
    return r;
}

static uint8_t connect_with(const struct auth_snapshot *s, uint32_t listener, const char *user,
                            const char *password)
{
    struct auth_request r = request(user, password);
    r.listener = listener;
    return auth_connect(s, &r);
}

Test(auth, password_file_checks_users)
{
    struct auth_snapshot *s = snap_with_passwd("listener 1883 0.0.0.0\n");
    cr_expect_eq(connect_with(s, 0, "alice", "wonderland"), MQTT_RC_SUCCESS, "$7$ entry");
    cr_expect_eq(connect_with(s, 0, "bob", "builder"), MQTT_RC_SUCCESS, "$6$ entry");
    cr_expect_eq(connect_with(s, 0, "alice", "builder"), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    cr_expect_eq(connect_with(s, 0, "alice", "wonderlan"), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    cr_expect_eq(connect_with(s, 0, "alice", NULL), MQTT_RC_BAD_USERNAME_OR_PASSWORD,
                 "username without password");
    cr_expect_eq(connect_with(s, 0, "mallory", "x"), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    cr_expect_eq(connect_with(s, 0, NULL, NULL), MQTT_RC_NOT_AUTHORIZED,
                 "anonymous on a public listener");
    auth_snapshot_destroy(s);
}

Test(auth, loopback_with_a_password_file_refuses_anonymous_by_default)
{
    /* The operator set up passwords: anonymous access is not the default
     * there, loopback or not (mosquitto 2.0 refuses it on every listener). */
    struct auth_snapshot *s = snap_with_passwd("listener 1883 127.0.0.1\n");
    cr_expect_eq(connect_with(s, 0, NULL, NULL), MQTT_RC_NOT_AUTHORIZED);
    cr_expect_eq(connect_with(s, 0, "alice", "wonderland"), MQTT_RC_SUCCESS);
    auth_snapshot_destroy(s);
}

Test(auth, password_file_unknown_user_refused_where_anonymous_allowed)
{
    struct auth_snapshot *s = snap_with_passwd("listener 1883 127.0.0.1\nallow_anonymous true\n");
    cr_expect_eq(connect_with(s, 0, NULL, NULL), MQTT_RC_SUCCESS, "anonymous on loopback");
    cr_expect_eq(connect_with(s, 0, "mallory", "x"), MQTT_RC_BAD_USERNAME_OR_PASSWORD,
                 "as mosquitto: a named user must be a known one");
    cr_expect_eq(connect_with(s, 0, "alice", "nope"), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    auth_snapshot_destroy(s);
}

Test(auth, methods_offered)
{
    struct auth_snapshot *s = snap_with_passwd("auth_methods SCRAM-SHA-512\n");
    cr_expect_eq(auth_method_offered(s, (const uint8_t *)"SCRAM-SHA-512", 13),
                 CONFIG_AUTH_SCRAM_SHA512);
    cr_expect_eq(auth_method_offered(s, (const uint8_t *)"SCRAM-SHA-51", 12), 0);
    cr_expect_eq(auth_method_offered(s, (const uint8_t *)"scram-sha-512", 13), 0,
                 "method names are case-sensitive (4.12)");
    auth_snapshot_destroy(s);
    s = snap_with_passwd("");
    cr_expect_eq(auth_method_offered(s, (const uint8_t *)"SCRAM-SHA-512", 13), 0,
                 "not configured: not offered");
    auth_snapshot_destroy(s);
}

Test(auth, bad_password_file_names_file_and_line)
{
    struct config c;
    char err[512];
    config_init(&c);
    snprintf(c.password_file, sizeof(c.password_file), "/etc/ringmq/passwd");
    cr_assert_eq(config_finish(&c, err, sizeof(err)), 0, "%s", err);
    struct auth_file slot;
    const struct auth_files f = one_file(&slot, "/etc/ringmq/passwd", "# users\nalice\n");
    cr_assert_null(auth_snapshot_create(&c, 1, test_key, &f, err, sizeof(err)));
    cr_expect_str_eq(err, "/etc/ringmq/passwd:2: no ':' between username and password hash");
}

/* ---- auth_connect in two halves (for checks off the shard) ---- */

Test(auth, prepare_asks_for_a_hash_only_for_named_users_with_a_password_file)
{
    struct auth_snapshot *s = snap_with_passwd("listener 1883 127.0.0.1\nallow_anonymous true\n");
    struct auth_check chk;
    bool hash = true;
    struct auth_request r = request(NULL, NULL);
    cr_expect_eq(auth_connect_prepare(s, &r, &chk, &hash), MQTT_RC_SUCCESS);
    cr_expect_not(hash, "anonymous: nothing to hash");
    r = request("alice", "wonderland");
    r.listener = 5;
    cr_expect_eq(auth_connect_prepare(s, &r, &chk, &hash), MQTT_RC_NOT_AUTHORIZED);
    cr_expect_not(hash, "unknown listener: refused without work");
    auth_snapshot_destroy(s);

    s = snap_for("listener 1883 0.0.0.0\n");
    r = request("alice", "x");
    cr_expect_eq(auth_connect_prepare(s, &r, &chk, &hash), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    cr_expect_not(hash, "no password file: nothing to hash");
    auth_snapshot_destroy(s);
}

Test(auth, prepared_check_holds_no_pointer_into_the_snapshot)
{
    struct auth_snapshot *s = snap_with_passwd("listener 1883 0.0.0.0\n");
    struct auth_check known, unknown, nopw;
    bool hash = false;
    struct auth_request r = request("alice", "wonderland");
    cr_assert_eq(auth_connect_prepare(s, &r, &known, &hash), MQTT_RC_SUCCESS);
    cr_assert(hash);
    cr_expect(known.has_entry && !known.decoy);
    cr_expect_null(known.entry.user);
    r = request("mallory", "wonderland");
    cr_assert_eq(auth_connect_prepare(s, &r, &unknown, &hash), MQTT_RC_SUCCESS);
    cr_assert(hash);
    cr_expect(unknown.decoy && unknown.has_entry, "an unknown name gets the decoy's work");
    cr_expect_null(unknown.entry.user);
    r = request("alice", NULL);
    cr_assert_eq(auth_connect_prepare(s, &r, &nopw, &hash), MQTT_RC_SUCCESS);
    cr_assert(hash);
    cr_expect(nopw.decoy, "no password: refused after the decoy's work");
    /* The verdicts come from the copies alone, after the snapshot is gone
     * (as after a reload). */
    auth_snapshot_destroy(s);
    cr_expect_eq(auth_check_verdict(&known, (const uint8_t *)"wonderland", 10), MQTT_RC_SUCCESS);
    cr_expect_eq(auth_check_verdict(&known, (const uint8_t *)"wonderlan", 9),
                 MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    cr_expect_eq(auth_check_verdict(&known, NULL, 0), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
    cr_expect_eq(auth_check_verdict(&unknown, (const uint8_t *)"wonderland", 10),
                 MQTT_RC_BAD_USERNAME_OR_PASSWORD, "the decoy never lets in");
    cr_expect_eq(auth_check_verdict(&nopw, NULL, 0), MQTT_RC_BAD_USERNAME_OR_PASSWORD);
}

/* ---- allow_from / deny_from ---- */

static struct netrule_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    struct netrule_addr n;
    const uint8_t bytes[4] = {a, b, c, d};
    cr_assert(netrule_addr_from_bytes(NETRULE_V4, bytes, &n));
    return n;
}

Test(auth, address_rules_per_listener)
{
    struct auth_snapshot *s = snap_for("deny_from 127.0.0.3\n"
                                       "allow_from 127.0.0.0/8\n"
                                       "listener 1883 127.0.0.1\n"
                                       "listener 1884 127.0.0.1\n"
                                       "allow_from 127.0.0.2\n"
                                       "deny_from 127.0.0.4\n");
    struct netrule_addr a2 = v4(127, 0, 0, 2), a3 = v4(127, 0, 0, 3), a4 = v4(127, 0, 0, 4),
                        a5 = v4(127, 0, 0, 5), out = v4(10, 0, 0, 1);
    cr_expect(auth_admit(s, 0, &a2));
    cr_expect_not(auth_admit(s, 0, &a3), "the global deny");
    cr_expect(auth_admit(s, 0, &a4), "listener 1's deny is its own");
    cr_expect_not(auth_admit(s, 0, &out), "outside the global allow");
    cr_expect(auth_admit(s, 1, &a2), "the block's allow");
    cr_expect_not(auth_admit(s, 1, &a5), "the block's allow replaces the global one");
    cr_expect_not(auth_admit(s, 1, &a3), "global denies add up with the block's");
    cr_expect_not(auth_admit(s, 1, &a4));
    cr_expect_not(auth_admit(s, 7, &a2), "unknown listener");
    auth_snapshot_destroy(s);
}

Test(auth, bad_address_rule_names_config_line)
{
    struct config c;
    char err[512];
    config_init(&c);
    const char *text = "listener 1883\nallow_from 10.1.2.3/8\n";
    cr_assert_eq(config_parse(&c, "t.conf", text, strlen(text), err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(config_finish(&c, err, sizeof(err)), 0, "%s", err);
    static const struct auth_files none = {NULL, 0};
    cr_assert_null(auth_snapshot_create(&c, 1, test_key, &none, err, sizeof(err)));
    cr_expect_str_eq(err, "t.conf:2: allow_from `10.1.2.3/8' has bits set beyond the /8 prefix "
                          "(did you mean 10.0.0.0/8?)");
    config_fini(&c);
}
