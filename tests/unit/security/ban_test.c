#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ban.h"

static const uint64_t key[2] = {0x0706050403020100u, 0x0f0e0d0c0b0a0908u};

/* 2026-12-31T23:59:59Z */
#define T_2026 1798761599u

static struct ban_list *create_n(const char *text, size_t len)
{
    char err[512] = "";
    struct ban_list *l =
        ban_list_create((const uint8_t *)text, len, "bans.txt", key, err, sizeof(err));
    cr_assert_not_null(l, "refused: %s", err);
    cr_assert_str_eq(err, "");
    return l;
}

static struct ban_list *create(const char *text)
{
    return create_n(text, strlen(text));
}

static void refused_n(const char *text, size_t len, const char *want)
{
    char err[512] = "";
    struct ban_list *l =
        ban_list_create((const uint8_t *)text, len, "bans.txt", key, err, sizeof(err));
    cr_assert_null(l, "took: %s", text);
    cr_assert_str_eq(err, want, "for `%s'", text);
}

static void refused(const char *text, const char *want)
{
    refused_n(text, strlen(text), want);
}

static bool id_banned(const struct ban_list *l, const char *id, uint64_t now)
{
    return ban_clientid(l, (const uint8_t *)id, strlen(id), now);
}

static bool user_banned(const struct ban_list *l, const char *name, uint64_t now)
{
    return ban_username(l, (const uint8_t *)name, strlen(name), now);
}

static struct netrule_addr addr(const char *text)
{
    struct netrule_cidr c;
    char why[256];
    cr_assert_eq(netrule_parse_cidr(text, strlen(text), &c, why, sizeof(why)), 0, "%s", why);
    return c.addr;
}

static bool ip_banned(const struct ban_list *l, const char *a, uint64_t now)
{
    struct netrule_addr x = addr(a);
    return ban_ip(l, &x, now);
}

Test(ban, each_kind_with_comments_blanks_and_crlf)
{
    struct ban_list *l = create("# bans\n"
                                "\n"
                                "clientid bad-device\n"
                                "  username\tmallory  \r\n"
                                "ip 192.0.2.0/24 # abuse ticket 17\n"
                                "ip 2001:db8::/32\n"
                                "   # indented comment\n"
                                " \t \n"
                                "clientid last");
    cr_assert_eq(ban_list_count(l), 5);
    cr_assert(id_banned(l, "bad-device", 0));
    cr_assert(id_banned(l, "last", 0));
    cr_assert_not(id_banned(l, "bad-devic", 0));
    cr_assert_not(id_banned(l, "Bad-device", 0)); /* bytes, case matters */
    cr_assert_not(id_banned(l, "mallory", 0));    /* a username is not a client id */
    cr_assert(user_banned(l, "mallory", 0));
    cr_assert_not(user_banned(l, "bad-device", 0));
    cr_assert_not(user_banned(l, "", 0));
    cr_assert(ip_banned(l, "192.0.2.255", 0));
    cr_assert(ip_banned(l, "::ffff:192.0.2.1", 0)); /* mapped: the IPv4 ban */
    cr_assert_not(ip_banned(l, "192.0.3.0", 0));
    cr_assert(ip_banned(l, "2001:db8:ffff::1", 0));
    cr_assert_not(ip_banned(l, "2001:db9::", 0));
    cr_assert_eq(ban_clientid_until(l, (const uint8_t *)"last", 4, 12345), BAN_FOREVER);
    ban_list_destroy(l);
}

Test(ban, empty_file_and_null_list_ban_nothing)
{
    struct ban_list *l = create("");
    cr_assert_eq(ban_list_count(l), 0);
    cr_assert_not(id_banned(l, "x", 0));
    cr_assert_not(ip_banned(l, "10.0.0.1", 0));
    ban_list_destroy(l);
    l = create_n(NULL, 0);
    ban_list_destroy(l);
    l = create("# nothing\n\n\r\n");
    cr_assert_eq(ban_list_count(l), 0);
    ban_list_destroy(l);
    cr_assert_not(id_banned(NULL, "x", 0));
    cr_assert_not(user_banned(NULL, "x", 0));
    cr_assert_not(ip_banned(NULL, "10.0.0.1", 0));
    cr_assert_eq(ban_ip_until(NULL, &(struct netrule_addr){.family = NETRULE_V4}, 0), 0);
    ban_list_destroy(NULL);
}

Test(ban, quoted_names_and_bare_words)
{
    struct ban_list *l = create("clientid \"kitchen sensor \\\"2\\\"\"\n"
                                "clientid \"back\\\\slash\"\n"
                                "clientid \"tab\there\" 2026-12-31T23:59:59Z\n"
                                "clientid #1\n"
                                "clientid a\\b\n"
                                "clientid \"# not a comment\"\n"
                                "username \"  \"\n"
                                "username caf\xc3\xa9\n"
                                "username \"\\\"\"\n");
    cr_assert(id_banned(l, "kitchen sensor \"2\"", 0));
    cr_assert(id_banned(l, "back\\slash", 0));
    cr_assert(id_banned(l, "tab\there", 0));
    cr_assert(id_banned(l, "#1", 0));
    cr_assert(id_banned(l, "a\\b", 0)); /* no escapes in bare words */
    cr_assert(id_banned(l, "# not a comment", 0));
    cr_assert(user_banned(l, "  ", 0));
    cr_assert(user_banned(l, "caf\xc3\xa9", 0));
    cr_assert(user_banned(l, "\"", 0));
    cr_assert_not(id_banned(l, "kitchen", 0));
    cr_assert_not(id_banned(l, "\"kitchen", 0));
    ban_list_destroy(l);
}

Test(ban, expiry_boundaries)
{
    struct ban_list *l = create("clientid c 2026-12-31T23:59:59Z\n"
                                "username u 1970-01-01T00:00:01Z\n"
                                "ip 10.0.0.0/8 2026-12-31T23:59:59Z\n"
                                "clientid epoch 1970-01-01T00:00:00Z\n"
                                "clientid last 9999-12-31T23:59:59Z # the latest time\n"
                                "clientid leap 2028-02-29T00:00:00Z\n"
                                "clientid y2k 2000-02-29T12:34:56Z\n");
    /* Banned while the time is before the expiry; lifted at it. */
    cr_assert(id_banned(l, "c", 0));
    cr_assert(id_banned(l, "c", T_2026 - 1));
    cr_assert_not(id_banned(l, "c", T_2026));
    cr_assert_not(id_banned(l, "c", T_2026 + 1));
    cr_assert_eq(ban_clientid_until(l, (const uint8_t *)"c", 1, 5), T_2026);
    cr_assert_eq(ban_clientid_until(l, (const uint8_t *)"c", 1, T_2026), 0);
    cr_assert(user_banned(l, "u", 0));
    cr_assert_not(user_banned(l, "u", 1));
    cr_assert_eq(ban_username_until(l, (const uint8_t *)"u", 1, 0), 1);
    cr_assert(ip_banned(l, "10.1.2.3", T_2026 - 1));
    cr_assert_not(ip_banned(l, "10.1.2.3", T_2026));
    struct netrule_addr a = addr("10.0.0.1");
    cr_assert_eq(ban_ip_until(l, &a, 0), T_2026);
    cr_assert_not(id_banned(l, "epoch", 0)); /* expired from the start */
    cr_assert(id_banned(l, "last", 253402300798u));
    cr_assert_not(id_banned(l, "last", 253402300799u));
    cr_assert(id_banned(l, "leap", 1835395199u));
    cr_assert_not(id_banned(l, "leap", 1835395200u));
    cr_assert(id_banned(l, "y2k", 951827695u));
    cr_assert_not(id_banned(l, "y2k", 951827696u));
    cr_assert_eq(ban_list_count(l), 7);
    ban_list_destroy(l);
}

Test(ban, repeated_bans_keep_the_latest_expiry)
{
    struct ban_list *l = create("clientid a 2026-01-01T00:00:00Z\n"
                                "clientid a 2026-12-31T23:59:59Z\n"
                                "clientid a 2025-01-01T00:00:00Z\n"
                                "clientid b 2026-01-01T00:00:00Z\n"
                                "clientid b\n"
                                "clientid b 2027-01-01T00:00:00Z\n"
                                "username a 2000-01-01T00:00:00Z\n"
                                "ip 10.0.0.0/8 2026-01-01T00:00:00Z\n"
                                "ip 10.1.0.0/16 2026-12-31T23:59:59Z\n"
                                "ip 10.0.0.0/8 2025-01-01T00:00:00Z\n"
                                "ip ::ffff:10.2.0.0/112\n");
    cr_assert_eq(ban_list_count(l), 11);
    cr_assert_eq(ban_clientid_until(l, (const uint8_t *)"a", 1, 0), T_2026);
    cr_assert_eq(ban_clientid_until(l, (const uint8_t *)"b", 1, 0), BAN_FOREVER);
    cr_assert_eq(ban_username_until(l, (const uint8_t *)"a", 1, 0), 946684800u);
    struct netrule_addr x = addr("10.1.0.1"), y = addr("10.3.0.1"), z = addr("10.2.0.7");
    cr_assert_eq(ban_ip_until(l, &x, 0), T_2026);
    cr_assert_eq(ban_ip_until(l, &y, 0), 1767225600u);
    cr_assert_eq(ban_ip_until(l, &z, 0), BAN_FOREVER);
    cr_assert(ban_ip(l, &z, UINT64_MAX - 1));
    cr_assert_not(ban_ip(l, &y, 1767225600u));
    cr_assert(ban_ip(l, &x, 1767225600u));
    ban_list_destroy(l);
}

Test(ban, malformed_lines_name_their_line)
{
    refused("clientid a\nfoo bar\n",
            "bans.txt:2: unknown keyword `foo' (a ban is `clientid ID', `username NAME' or "
            "`ip CIDR', each optionally followed by an expiry time)");
    refused("ClientId a\n", "bans.txt:1: unknown keyword `ClientId' (a ban is `clientid ID', "
                            "`username NAME' or `ip CIDR', each optionally followed by an expiry "
                            "time)");
    refused("\xef\xbb\xbf"
            "clientid a\n",
            "bans.txt:1: unknown keyword `\\xef\\xbb\\xbfclientid' (a ban is `clientid ID', "
            "`username NAME' or `ip CIDR', each optionally followed by an expiry time)");
    refused("clientid\n", "bans.txt:1: `clientid' without a client id");
    refused("\n\nusername   \t\n", "bans.txt:3: `username' without a username");
    refused("ip\r\n", "bans.txt:1: `ip' without an address range");
    refused("clientid a b\n", "bans.txt:1: `b' is not an expiry time (YYYY-MM-DDThh:mm:ssZ in "
                              "UTC, e.g. 2026-12-31T23:59:59Z)");
    refused("clientid two words\n", "bans.txt:1: `words' is not an expiry time "
                                    "(YYYY-MM-DDThh:mm:ssZ in UTC, e.g. 2026-12-31T23:59:59Z)");
    refused("clientid a 2026-12-31T23:59:59Z extra\n",
            "bans.txt:1: unexpected `extra' after the expiry (a comment starts with `#')");
    refused("clientid \"a\n", "bans.txt:1: no closing `\"' after the quoted client id");
    refused("clientid \"a\\\n", "bans.txt:1: no closing `\"' after the quoted client id");
    refused("username \"a\\n\"\n", "bans.txt:1: unknown escape `\\n' in a quoted username (only "
                                   "\\\" and \\\\ are escapes)");
    refused("username \"a\\x41\"\n", "bans.txt:1: unknown escape `\\x' in a quoted username "
                                     "(only \\\" and \\\\ are escapes)");
    refused("clientid \"a\"b\n", "bans.txt:1: text right after the closing `\"' of the client id");
    refused("clientid \"a\"#\n", "bans.txt:1: text right after the closing `\"' of the client id");
    refused("clientid a\"b\n", "bans.txt:1: a `\"' inside the bare client id `a\"b': write the "
                               "whole client id in double quotes, with \\\" for each `\"'");
    refused("clientid \"\"\n", "bans.txt:1: empty client id");
    refused("username \"\" 2026-12-31T23:59:59Z\n", "bans.txt:1: empty username");
    refused("clientid \xff\xfe\n", "bans.txt:1: client id `\\xff\\xfe' is not valid UTF-8");
    refused("username \"\xed\xa0\x80\"\n", "bans.txt:1: username `\\xed\\xa0\\x80' is not valid "
                                           "UTF-8");
    refused("ip 10.1.2.3/8\n", "bans.txt:1: `10.1.2.3/8' has bits set beyond the /8 prefix (did "
                               "you mean 10.0.0.0/8?)");
    refused("ip host.example\n", "bans.txt:1: `host.example': not an IPv4 address (four decimal "
                                 "parts 0 to 255: a.b.c.d)");
    refused("ip \"10.0.0.1\"\n", "bans.txt:1: `\"10.0.0.1\"': not an IPv4 address (four decimal "
                                 "parts 0 to 255: a.b.c.d)");
    refused("ip #10.0.0.1\n", "bans.txt:1: `#10.0.0.1': not an IPv4 address (four decimal parts "
                              "0 to 255: a.b.c.d)");
    refused("ip 010.0.0.1 2026-12-31T23:59:59Z\n",
            "bans.txt:1: `010.0.0.1': part `010' has a leading zero (octal to some tools, "
            "decimal to others: write it without)");
}

Test(ban, control_and_nul_bytes_refused)
{
    refused_n("clientid a\0b\n", 13, "bans.txt:1: the line holds a NUL byte (byte 11)");
    refused("clientid a\rb\n", "bans.txt:1: the line holds a control byte 0x0d (byte 11)");
    refused("clientid a\r\r\n", "bans.txt:1: the line holds a control byte 0x0d (byte 11)");
    refused("clientid \"a\x01\"\n", "bans.txt:1: the line holds a control byte 0x01 (byte 12)");
    refused("# comment \x7f\n", "bans.txt:1: the line holds a control byte 0x7f (byte 11)");
    refused("\x0c", "bans.txt:1: the line holds a control byte 0x0c (byte 1)");
}

Test(ban, malformed_expiry_times)
{
    refused("clientid a 2026-12-31\n",
            "bans.txt:1: expiry `2026-12-31' is a date without a time: write "
            "2026-12-31T00:00:00Z to lift the ban when that day begins, or another time of it "
            "(UTC)");
    refused("clientid a 2026-12-31T23:59:59+02:00\n",
            "bans.txt:1: expiry `2026-12-31T23:59:59+02:00' is not UTC: end it in Z, with no "
            "offset or fraction");
    refused("clientid a 2026-12-31T23:59:59.5Z\n",
            "bans.txt:1: expiry `2026-12-31T23:59:59.5Z' is not UTC: end it in Z, with no offset "
            "or fraction");
    refused("clientid a 2026-12-31T23:59:59\n",
            "bans.txt:1: expiry `2026-12-31T23:59:59' is not UTC: end it in Z, with no offset or "
            "fraction");
    refused("clientid a 2026-12-31T23:59:59z\n",
            "bans.txt:1: expiry `2026-12-31T23:59:59z' is not UTC: end it in Z, with no offset or "
            "fraction");
    const char *shapes[] = {
        "2026-12-31t23:59:59Z",  "26-12-31T23:59:59Z",   "2026-1-31T23:59:59Z", "20261231T235959Z",
        "+2026-12-31T23:59:59Z", "2026/12/31T23:59:59Z", "1798761599",          "never",
        "2026-12-31T23:59Z"};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        char text[128], want[256];
        snprintf(text, sizeof(text), "clientid a %s\n", shapes[i]);
        snprintf(want, sizeof(want),
                 "bans.txt:1: `%s' is not an expiry time (YYYY-MM-DDThh:mm:ssZ in UTC, e.g. "
                 "2026-12-31T23:59:59Z)",
                 shapes[i]);
        refused(text, want);
    }
    /* A blank after the date: the date is the expiry word. */
    refused("clientid a 2026-12-31 23:59:59Z\n",
            "bans.txt:1: expiry `2026-12-31' is a date without a time: write "
            "2026-12-31T00:00:00Z to lift the ban when that day begins, or another time of it "
            "(UTC)");
    refused("clientid a 1969-12-31T23:59:59Z\n",
            "bans.txt:1: expiry `1969-12-31T23:59:59Z': year 1969 is before 1970");
    refused("clientid a 2026-00-01T00:00:00Z\n",
            "bans.txt:1: expiry `2026-00-01T00:00:00Z': there is no month 00");
    refused("clientid a 2026-13-01T00:00:00Z\n",
            "bans.txt:1: expiry `2026-13-01T00:00:00Z': there is no month 13");
    refused("clientid a 2026-02-29T00:00:00Z\n",
            "bans.txt:1: expiry `2026-02-29T00:00:00Z': there is no day 29 in 2026-02");
    refused("clientid a 2100-02-29T00:00:00Z\n",
            "bans.txt:1: expiry `2100-02-29T00:00:00Z': there is no day 29 in 2100-02");
    refused("clientid a 2026-04-31T00:00:00Z\n",
            "bans.txt:1: expiry `2026-04-31T00:00:00Z': there is no day 31 in 2026-04");
    refused("clientid a 2026-04-00T00:00:00Z\n",
            "bans.txt:1: expiry `2026-04-00T00:00:00Z': there is no day 00 in 2026-04");
    refused("clientid a 2026-12-31T24:00:00Z\n",
            "bans.txt:1: expiry `2026-12-31T24:00:00Z': there is no time 24:00:00");
    refused("clientid a 2026-12-31T23:60:00Z\n",
            "bans.txt:1: expiry `2026-12-31T23:60:00Z': there is no time 23:60:00");
    refused("clientid a 2016-12-31T23:59:60Z\n",
            "bans.txt:1: expiry `2016-12-31T23:59:60Z': there is no time 23:59:60 (leap seconds "
            "are not written here)");
}

Test(ban, bounds)
{
    /* An id of BAN_NAME_MAX bytes is taken, one more is not. */
    size_t cap = BAN_NAME_MAX + 64;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    int n = snprintf(text, cap, "clientid ");
    memset(text + n, 'x', BAN_NAME_MAX);
    text[n + BAN_NAME_MAX] = '\0';
    struct ban_list *l = create(text);
    cr_assert(ban_clientid(l, (const uint8_t *)text + n, BAN_NAME_MAX, 0));
    cr_assert_not(ban_clientid(l, (const uint8_t *)text + n, BAN_NAME_MAX + 1u, 0));
    ban_list_destroy(l);
    text[n + BAN_NAME_MAX] = 'x';
    text[n + BAN_NAME_MAX + 1] = '\0';
    refused(text, "bans.txt:1: client id of 65536 bytes, longer than 65535");
    free(text);

    /* A line of BAN_LINE_MAX bytes is read, one more is not. */
    text = malloc(BAN_LINE_MAX + 2);
    cr_assert_not_null(text);
    memset(text, ' ', BAN_LINE_MAX + 1);
    memcpy(text, "ip 10.0.0.1 #", 13);
    text[BAN_LINE_MAX] = '\0';
    l = create(text);
    cr_assert(ip_banned(l, "10.0.0.1", 0));
    ban_list_destroy(l);
    text[BAN_LINE_MAX] = ' ';
    text[BAN_LINE_MAX + 1] = '\0';
    refused(text, "bans.txt:1: line longer than 132094 bytes");
    /* ... not counting the CR of a CRLF. */
    text[BAN_LINE_MAX] = '\r';
    l = create(text);
    ban_list_destroy(l);
    free(text);

    /* A file over BAN_FILE_MAX is refused before it is read. */
    char err[128];
    cr_assert_null(
        ban_list_create((const uint8_t *)"", BAN_FILE_MAX + 1u, "bans.txt", key, err, sizeof(err)));
    cr_assert_str_eq(err, "bans.txt: larger than 67108864 bytes");
}

Test(ban, a_million_bans_and_no_more)
{
    /* BAN_ENTRIES_MAX lines of three kinds, then one more. */
    size_t cap = (size_t)BAN_ENTRIES_MAX * 24u + 64u, o = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (uint32_t i = 0; i < BAN_ENTRIES_MAX; i++) {
        if (i % 3 == 0)
            o += (size_t)sprintf(text + o, "clientid c%u\n", i);
        else if (i % 3 == 1)
            o += (size_t)sprintf(text + o, "username u%u\n", i);
        else
            o += (size_t)sprintf(text + o, "ip 10.%u.%u.%u\n", i >> 16, i >> 8 & 255, i & 255);
    }
    struct ban_list *l = create_n(text, o);
    cr_assert_eq(ban_list_count(l), BAN_ENTRIES_MAX);
    cr_assert(id_banned(l, "c0", 0));
    cr_assert(id_banned(l, "c999999", 0));
    cr_assert_not(id_banned(l, "c1", 0));
    cr_assert(user_banned(l, "u999997", 0));
    cr_assert(ip_banned(l, "10.15.66.62", 0)); /* 999998 = 0x0f423e */
    cr_assert_not(ip_banned(l, "10.15.66.63", 0));
    ban_list_destroy(l);
    o += (size_t)sprintf(text + o, "# a comment is not a ban\n\nclientid one-more\n");
    refused_n(text, o, "bans.txt:1000003: more than 1000000 bans");
    free(text);
}

Test(ban, messages_are_cut_to_the_buffer)
{
    char err[12];
    cr_assert_null(ban_list_create((const uint8_t *)"foo\n", 4, "bans.txt", key, err, sizeof(err)));
    cr_assert_str_eq(err, "bans.txt:1:");
    cr_assert_null(ban_list_create((const uint8_t *)"foo\n", 4, "bans.txt", key, NULL, 0));
    /* Long words are shown cut. */
    char text[128], want[256];
    snprintf(text, sizeof(text), "clientid a %060d\n", 7);
    snprintf(want, sizeof(want),
             "bans.txt:1: `%040d...' is not an expiry time (YYYY-MM-DDThh:mm:ssZ in UTC, e.g. "
             "2026-12-31T23:59:59Z)",
             0);
    refused(text, want);
}

/* ---- random files against a model --------------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1du;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

Test(ban, random_names_and_expiries_agree_with_a_model)
{
    enum { N = 5000, NAMES = 700 };
    static uint64_t model_id[NAMES], model_user[NAMES];
    char *text = malloc((size_t)N * 64u);
    cr_assert_not_null(text);
    size_t o = 0;
    for (int i = 0; i < N; i++) {
        unsigned k = (unsigned)(rnd() % NAMES), day = (unsigned)(rnd() % 28) + 1;
        bool user = rnd() % 2, forever = rnd() % 10 == 0, quoted = rnd() % 3 == 0;
        uint64_t until = forever ? BAN_FOREVER : 1767225600u + (uint64_t)(day - 1) * 86400u;
        o += (size_t)sprintf(text + o, "%s %sn%u%s", user ? "username" : "clientid",
                             quoted ? "\"" : "", k, quoted ? "\"" : "");
        if (!forever)
            o += (size_t)sprintf(text + o, " 2026-01-%02uT00:00:00Z", day);
        o += (size_t)sprintf(text + o, "%s", rnd() % 4 ? "\n" : "\r\n");
        uint64_t *m = user ? &model_user[k] : &model_id[k];
        if (until > *m)
            *m = until;
    }
    struct ban_list *l = create_n(text, o);
    for (unsigned k = 0; k < NAMES + 50; k++) {
        char name[32];
        int len = snprintf(name, sizeof(name), "n%u", k);
        for (uint64_t now = 1767225600u - 1; now < 1767225600u + 30u * 86400u; now += 43200u) {
            uint64_t want_id = k < NAMES && model_id[k] > now ? model_id[k] : 0;
            uint64_t want_user = k < NAMES && model_user[k] > now ? model_user[k] : 0;
            cr_assert_eq(ban_clientid_until(l, (const uint8_t *)name, (size_t)len, now), want_id);
            cr_assert_eq(ban_username_until(l, (const uint8_t *)name, (size_t)len, now), want_user);
        }
    }
    ban_list_destroy(l);
    free(text);
}
