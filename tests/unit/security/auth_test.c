#include <criterion/criterion.h>
#include <string.h>

#include "auth.h"
#include "codec.h"

static struct auth_snapshot *snap_for(const char *text)
{
    struct config c;
    char err[256];
    config_init(&c);
    cr_assert_eq(config_parse(&c, "t.conf", text, strlen(text), err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(config_finish(&c, err, sizeof(err)), 0, "%s", err);
    struct auth_snapshot *s = auth_snapshot_create(&c, 7);
    cr_assert_not_null(s);
    return s;
}

static uint8_t connect_as(const struct auth_snapshot *s, uint32_t listener, const char *user)
{
    struct auth_request r;
    memset(&r, 0, sizeof(r));
    r.listener = listener;
    r.peer = "127.0.0.1:1";
    r.client_id = (const uint8_t *)"c";
    r.client_id_len = 1;
    if (user) {
        r.has_username = true;
        r.username = (const uint8_t *)user;
        r.username_len = strlen(user);
    }
    return auth_connect(s, &r);
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
    struct auth_snapshot *s = snap_for("allow_anonymous false\n"
                                       "listener 1883 127.0.0.1\n"
                                       "listener 1884 0.0.0.0\n"
                                       "allow_anonymous true\n");
    cr_assert_eq(connect_as(s, 0, NULL), MQTT_RC_NOT_AUTHORIZED, "global false applies");
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
