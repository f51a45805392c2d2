#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "limits.h"
#include "topic.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static struct acl *compile(const char *text)
{
    char err[512] = "";
    struct acl *a = acl_create((const uint8_t *)text, strlen(text), "acl.txt", err, sizeof(err));
    cr_assert_not_null(a, "refused: %s\n--- file:\n%s", err, text);
    return a;
}

/* The file is refused with exactly this message. */
static void refused(const char *text, const char *want)
{
    char err[512] = "";
    struct acl *a = acl_create((const uint8_t *)text, strlen(text), "acl.txt", err, sizeof(err));
    cr_assert_null(a, "accepted: %s", text);
    cr_assert_str_eq(err, want, "for `%s'", text);
}

static struct acl_who anon(const char *cid)
{
    return (struct acl_who){.client_id = (const uint8_t *)cid, .client_id_len = strlen(cid)};
}

static struct acl_who user(const char *name, const char *cid)
{
    return (struct acl_who){.username = (const uint8_t *)name,
                            .username_len = strlen(name),
                            .has_username = true,
                            .client_id = (const uint8_t *)cid,
                            .client_id_len = strlen(cid)};
}

static bool rd(const struct acl *a, struct acl_who w, const char *t)
{
    return acl_may_read(a, &w, (const uint8_t *)t, strlen(t));
}

static bool wr(const struct acl *a, struct acl_who w, const char *t)
{
    return acl_may_publish(a, &w, (const uint8_t *)t, strlen(t));
}

static bool sub(const struct acl *a, struct acl_who w, const char *f)
{
    return acl_may_subscribe(a, &w, (const uint8_t *)f, strlen(f));
}

static bool all(const struct acl *a, struct acl_who w, const char *f)
{
    return acl_may_read_all(a, &w, (const uint8_t *)f, strlen(f));
}

/* A client id given by bytes and length (NULs and all). */
static struct acl_who anon_bytes(const void *cid, size_t len)
{
    return (struct acl_who){.client_id = cid, .client_id_len = len};
}

/* Every decision refused: what an unsubstitutable deny pattern does. */
static void refuses_everything(const struct acl *a, struct acl_who w)
{
    const char *t[] = {"q", "a/b", "x/secret", "$SYS/x"};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        cr_assert_not(rd(a, w, t[i]), "read %s", t[i]);
        cr_assert_not(wr(a, w, t[i]), "publish %s", t[i]);
        cr_assert_not(sub(a, w, t[i]), "subscribe %s", t[i]);
        cr_assert_not(all(a, w, t[i]), "read_all %s", t[i]);
    }
    cr_assert_not(sub(a, w, "#"));
    cr_assert_not(all(a, w, "#"));
}

/* ------------------------------------------------------------------ */
/* mosquitto's own examples                                            */
/* ------------------------------------------------------------------ */

/* aclfile.example as mosquitto 2.0 ships it. */
static const char ACLFILE_EXAMPLE[] =
    "# This affects access control for clients with no username.\n"
    "topic read $SYS/#\n"
    "\n"
    "# This only affects clients with username \"roger\".\n"
    "user roger\n"
    "topic foo/bar\n"
    "\n"
    "# This affects all clients.\n"
    "# Note that this is the only topic it is possible to grant access to writing to\n"
    "# the $SYS tree. All other topics are always denied.\n"
    "pattern write $SYS/broker/connection/%c/state\n";

Test(acl, aclfile_example_anonymous_reads_sys)
{
    struct acl *a = compile(ACLFILE_EXAMPLE);
    cr_assert_eq(acl_rule_count(a), 3);
    cr_assert(rd(a, anon("c"), "$SYS/broker/uptime"));
    cr_assert(sub(a, anon("c"), "$SYS/#"));
    cr_assert(sub(a, anon("c"), "$SYS/broker/+"));
    cr_assert_not(wr(a, anon("c"), "$SYS/broker/uptime"));
    cr_assert_not(rd(a, anon("c"), "foo/bar"));
    cr_assert_not(wr(a, anon("c"), "foo/bar"));
    cr_assert_not(sub(a, anon("c"), "foo/bar"));
    acl_destroy(a);
}

Test(acl, aclfile_example_roger_gets_foo_bar_only)
{
    struct acl *a = compile(ACLFILE_EXAMPLE);
    struct acl_who r = user("roger", "c");
    cr_assert(rd(a, r, "foo/bar"));
    cr_assert(wr(a, r, "foo/bar"));
    cr_assert(sub(a, r, "foo/bar"));
    cr_assert(sub(a, r, "foo/+"));
    cr_assert(sub(a, r, "#"));
    cr_assert_not(rd(a, r, "foo/baz"));
    cr_assert_not(rd(a, r, "$SYS/broker/uptime")); /* the anonymous block is not roger's */
    cr_assert_not(sub(a, r, "$SYS/#"));
    /* Another user has neither block. */
    cr_assert_not(rd(a, user("rogers", "c"), "foo/bar"));
    acl_destroy(a);
}

Test(acl, aclfile_example_bridge_state_pattern_never_publishes_into_sys)
{
    /* mosquitto lets bridges write their state there; ringmq has no
     * bridges and refuses every client publish into $SYS. The write-only
     * rule grants no read either. */
    struct acl *a = compile(ACLFILE_EXAMPLE);
    cr_assert_not(wr(a, anon("br1"), "$SYS/broker/connection/br1/state"));
    cr_assert_not(wr(a, user("roger", "br1"), "$SYS/broker/connection/br1/state"));
    cr_assert_not(rd(a, user("roger", "br1"), "$SYS/broker/connection/br1/state"));
    acl_destroy(a);
}

/* The mosquitto.conf(5) acl_file section's examples. */
Test(acl, man_page_sensor_pattern)
{
    struct acl *a = compile("pattern write sensor/%u/data\n");
    cr_assert(wr(a, user("alice", "x"), "sensor/alice/data"));
    cr_assert_not(wr(a, user("alice", "x"), "sensor/bob/data"));
    cr_assert_not(rd(a, user("alice", "x"), "sensor/alice/data"));
    cr_assert_not(wr(a, anon("alice"), "sensor/alice/data"));       /* no username, no %u */
    cr_assert_not(sub(a, user("alice", "x"), "sensor/alice/data")); /* write only */
    acl_destroy(a);
}

Test(acl, man_page_access_words)
{
    struct acl *a = compile("topic read r/#\n"
                            "topic write w/#\n"
                            "topic readwrite rw/#\n"
                            "topic both/#\n"
                            "topic readwrite d/#\n"
                            "topic deny d/secret\n");
    struct acl_who c = anon("c");
    cr_assert(rd(a, c, "r/1"));
    cr_assert_not(wr(a, c, "r/1"));
    cr_assert_not(rd(a, c, "w/1"));
    cr_assert(wr(a, c, "w/1"));
    cr_assert(rd(a, c, "rw/1") && wr(a, c, "rw/1"));
    cr_assert(rd(a, c, "both/1") && wr(a, c, "both/1"));
    cr_assert(rd(a, c, "d/open"));
    cr_assert_not(rd(a, c, "d/secret"));
    cr_assert_not(wr(a, c, "d/secret"));
    acl_destroy(a);
}

Test(acl, topic_with_spaces_needs_an_access_word)
{
    struct acl *a = compile("topic read  my topic/with spaces  \n"
                            "user john smith\n"
                            "topic write a b\n");
    cr_assert(rd(a, anon("c"), "my topic/with spaces"));
    cr_assert_not(rd(a, anon("c"), "my"));
    cr_assert(wr(a, user("john smith", "c"), "a b"));
    cr_assert_not(wr(a, user("john", "c"), "a b"));
    acl_destroy(a);
    refused("topic my topic\n", "acl.txt:1: unknown access `my' (read, write, readwrite or deny; "
                                "a topic with spaces needs one of them before it)");
}

/* ------------------------------------------------------------------ */
/* File syntax                                                         */
/* ------------------------------------------------------------------ */

Test(acl, comments_blanks_crlf_and_whitespace)
{
    struct acl *a = compile("# a comment\r\n"
                            "\r\n"
                            "   \t\r\n"
                            "   # an indented comment\n"
                            "\ttopic read a/b\t \r\n"
                            "  topic   write   c  \n"
                            "user   u1  \r\n"
                            "topic x\r\n"
                            "topic y"); /* no final newline */
    cr_assert_eq(acl_rule_count(a), 4);
    cr_assert(rd(a, anon("c"), "a/b"));
    cr_assert(wr(a, anon("c"), "c"));
    cr_assert(rd(a, user("u1", "c"), "x"));
    cr_assert(wr(a, user("u1", "c"), "y"));
    cr_assert_not(rd(a, user("u1", "c"), "y\r"));
    acl_destroy(a);
}

Test(acl, empty_file_denies_everything)
{
    char err[64];
    struct acl *a = acl_create(NULL, 0, "acl.txt", err, sizeof(err));
    cr_assert_not_null(a);
    cr_assert_eq(acl_rule_count(a), 0);
    cr_assert_not(rd(a, anon("c"), "a"));
    cr_assert_not(wr(a, user("u", "c"), "a"));
    cr_assert_not(sub(a, anon("c"), "#"));
    acl_destroy(a);
    a = compile("# nothing but comments\n\n");
    cr_assert_not(sub(a, user("u", "c"), "#"));
    acl_destroy(a);
}

Test(acl, no_acl_allows_all_but_sys_publish)
{
    cr_assert(rd(NULL, anon("c"), "a/b"));
    cr_assert(rd(NULL, anon("c"), "$SYS/x"));
    cr_assert(wr(NULL, anon("c"), "a/b"));
    cr_assert(sub(NULL, anon("c"), "#"));
    cr_assert_not(wr(NULL, anon("c"), "$SYS/x"));
    cr_assert_not(rd(NULL, anon("c"), "a/+"));
    cr_assert_not(wr(NULL, anon("c"), "a/#"));
    cr_assert_not(sub(NULL, anon("c"), "a/#/b"));
    cr_assert_eq(acl_rule_count(NULL), 0);
    acl_destroy(NULL);
}

Test(acl, malformed_lines_name_file_line_and_reason)
{
    refused("topic a\nfoo bar\n",
            "acl.txt:2: unknown keyword `foo' (a line is `topic', `pattern' or `user')");
    refused("Topic a\n",
            "acl.txt:1: unknown keyword `Topic' (a line is `topic', `pattern' or `user')");
    refused("topic\tread a\n", "acl.txt:1: unknown keyword `topic\\x09read' (a line is `topic', "
                               "`pattern' or `user'; words are separated by spaces, not tabs)");
    refused("topic reed a/b\n", "acl.txt:1: unknown access `reed' (read, write, readwrite or deny; "
                                "a topic with spaces needs one of them before it)");
    refused("topic\n", "acl.txt:1: `topic' without a topic");
    refused("pattern   \r\n", "acl.txt:1: `pattern' without a topic");
    refused("topic read\n", "acl.txt:1: `topic read' without a topic (for the topic `read' "
                            "itself, write `topic readwrite read')");
    refused("\n\npattern deny \n", "acl.txt:3: `pattern deny' without a topic (for the topic "
                                   "`deny' itself, write `pattern readwrite deny')");
    refused("user\n", "acl.txt:1: `user' without a name");
    refused("user  \t \n", "acl.txt:1: `user' without a name");
}

/* As in mosquitto, '#' starts a comment only at the start of a line. */
Test(acl, no_comment_after_a_rule)
{
    refused("topic a # all of a\n",
            "acl.txt:1: unknown access `a' (read, write, readwrite or deny; "
            "a topic with spaces needs one of them before it)");
    refused("topic read a/b # note\n",
            "acl.txt:1: topic `a/b # note': `#' must be a whole level and the last one");
    struct acl *a = compile("topic read a/b\n#topic read c\n");
    cr_assert_eq(acl_rule_count(a), 1);
    acl_destroy(a);
}

/* NUL bytes need an explicit length. */
Test(acl, nul_byte_anywhere_is_refused)
{
    static const uint8_t text[] = "# comment \x00 here\ntopic a\n";
    char err[128];
    struct acl *a = acl_create(text, sizeof(text) - 1, "acl.txt", err, sizeof(err));
    cr_assert_null(a);
    cr_assert_str_eq(err, "acl.txt:1: the line holds a NUL byte (U+0000)");
    static const uint8_t text2[] = "topic a\ntopic b\x00\n";
    a = acl_create(text2, sizeof(text2) - 1, "acl.txt", err, sizeof(err));
    cr_assert_null(a);
    cr_assert_str_eq(err, "acl.txt:2: the line holds a NUL byte (U+0000)");
}

Test(acl, invalid_filters_are_refused)
{
    refused("topic a/#/b\n",
            "acl.txt:1: topic `a/#/b': `#' must be a whole level and the last one");
    refused("topic a#\n", "acl.txt:1: topic `a#': `#' must be a whole level and the last one");
    refused("topic read a/b#\n",
            "acl.txt:1: topic `a/b#': `#' must be a whole level and the last one");
    refused("topic ##\n", "acl.txt:1: topic `##': `#' must be a whole level and the last one");
    refused("topic a+/b\n", "acl.txt:1: topic `a+/b': `+' must be a whole level");
    refused("pattern read a/++\n", "acl.txt:1: topic `a/++': `+' must be a whole level");
    refused("topic read a/\xff\n", "acl.txt:1: topic `a/\\xff' is not valid UTF-8");
    refused("topic read \xc0\x80\n", "acl.txt:1: topic `\\xc0\\x80' is not valid UTF-8");
    refused("topic read \xed\xa0\x80\n", "acl.txt:1: topic `\\xed\\xa0\\x80' is not valid UTF-8");
    refused("user \xff\xfe\n", "acl.txt:1: user name `\\xff\\xfe' is not valid UTF-8");
}

Test(acl, empty_levels_are_valid_filters)
{
    struct acl *a = compile("topic a//b\ntopic /\ntopic read x/\ntopic read /y/#\n");
    cr_assert(rd(a, anon("c"), "a//b"));
    cr_assert_not(rd(a, anon("c"), "a/b"));
    cr_assert(rd(a, anon("c"), "/"));
    cr_assert(rd(a, anon("c"), "x/"));
    cr_assert_not(rd(a, anon("c"), "x"));
    cr_assert(rd(a, anon("c"), "/y"));
    cr_assert(rd(a, anon("c"), "/y/z"));
    cr_assert_not(rd(a, anon("c"), "y/z"));
    cr_assert(sub(a, anon("c"), "a/+/b"));
    cr_assert(sub(a, anon("c"), "+/+"));
    acl_destroy(a);
}

Test(acl, placeholders_must_be_whole_levels)
{
    const char *why = "`%u' and `%c' must be a whole level (mosquitto would splice the name "
                      "into it)";
    char want[256];
    snprintf(want, sizeof(want), "acl.txt:1: topic `a/x%%u': %s", why);
    refused("pattern read a/x%u\n", want);
    snprintf(want, sizeof(want), "acl.txt:2: topic `%%c%%u/b': %s", why);
    refused("pattern read %c/b\npattern read %c%u/b\n", want);
    snprintf(want, sizeof(want), "acl.txt:1: topic `%%uu': %s", why);
    refused("pattern %uu\n", want);
    refused("topic read home/%u\n", "acl.txt:1: topic `home/%u': `%u' and `%c' stand for a name "
                                    "only in `pattern' lines (a `topic' line takes them "
                                    "literally)");
    /* Inside a level of a topic line they are plain text, as in mosquitto;
     * so is any other '%'. */
    struct acl *a = compile("topic read 100%/x%u\npattern read a/%x/%u\n");
    cr_assert(rd(a, anon("c"), "100%/x%u"));
    cr_assert(rd(a, user("bob", "c"), "a/%x/bob"));
    acl_destroy(a);
}

Test(acl, bounds_on_lines_topics_levels_and_names)
{
    size_t cap = ACL_LINE_MAX + 200000;
    char *text = malloc(cap);
    cr_assert_not_null(text);

    /* A topic of TOPIC_LEN_MAX bytes is taken; one more is not. */
    int o = snprintf(text, cap, "topic read ");
    memset(text + o, 'a', TOPIC_LEN_MAX);
    strcpy(text + o + TOPIC_LEN_MAX, "\n");
    struct acl *a = compile(text);
    acl_destroy(a);
    memset(text + o, 'a', TOPIC_LEN_MAX + 1);
    strcpy(text + o + TOPIC_LEN_MAX + 1, "\n");
    refused(text, "acl.txt:1: topic of 65536 bytes, longer than 65535");

    /* A line over ACL_LINE_MAX bytes, even a comment. */
    memset(text, ' ', ACL_LINE_MAX + 1);
    text[0] = '#';
    strcpy(text + ACL_LINE_MAX + 1, "\ntopic a\n");
    refused(text, "acl.txt:1: line longer than 66560 bytes");
    text[ACL_LINE_MAX] = '\n'; /* exactly ACL_LINE_MAX bytes before the '\n' */
    a = compile(text);
    acl_destroy(a);

    /* TOPIC_LEVELS_MAX levels, then one more. */
    o = snprintf(text, cap, "topic read x");
    for (unsigned i = 1; i < TOPIC_LEVELS_MAX; i++)
        o += snprintf(text + o, cap - (size_t)o, "/x");
    strcpy(text + o, "\n");
    a = compile(text);
    acl_destroy(a);
    strcpy(text + o, "/x\n");
    char want[1024];
    snprintf(want, sizeof(want), "acl.txt:1: topic `%.40s...' has more than 128 levels",
             text + strlen("topic read "));
    refused(text, want);

    /* A user name of ACL_NAME_MAX bytes, then one more. */
    o = snprintf(text, cap, "user ");
    memset(text + o, 'n', ACL_NAME_MAX);
    strcpy(text + o + ACL_NAME_MAX, "\ntopic a\n");
    a = compile(text);
    acl_destroy(a);
    memset(text + o, 'n', ACL_NAME_MAX + 1);
    strcpy(text + o + ACL_NAME_MAX + 1, "\n");
    refused(text, "acl.txt:1: user name of 65536 bytes, longer than 65535");
    free(text);
}

Test(acl, at_most_a_million_rules)
{
    size_t n = ACL_RULES_MAX + 1;
    char *text = malloc(n * 8 + 1);
    cr_assert_not_null(text);
    for (size_t i = 0; i < n; i++)
        memcpy(text + i * 8, "topic a\n", 8);
    char err[128];
    struct acl *a = acl_create((uint8_t *)text, (n - 1) * 8, "acl.txt", err, sizeof(err));
    cr_assert_not_null(a, "%s", err);
    cr_assert_eq(acl_rule_count(a), ACL_RULES_MAX);
    acl_destroy(a);
    a = acl_create((uint8_t *)text, n * 8, "acl.txt", err, sizeof(err));
    cr_assert_null(a);
    cr_assert_str_eq(err, "acl.txt:1000001: more than 1000000 rules");
    free(text);
}

Test(acl, file_over_the_bound_is_refused_unread)
{
    /* calloc'd pages stay untouched: acl_create refuses on the length. */
    uint8_t *big = calloc(1, (size_t)ACL_FILE_MAX + 1);
    cr_assert_not_null(big);
    char err[128];
    cr_assert_null(acl_create(big, (size_t)ACL_FILE_MAX + 1, "/etc/ringmq/acl", err, sizeof(err)));
    cr_assert_str_eq(err, "/etc/ringmq/acl: larger than 67108864 bytes");
    free(big);
}

Test(acl, short_error_buffer_gets_a_terminated_prefix)
{
    char err[12];
    memset(err, 'x', sizeof(err));
    cr_assert_null(acl_create((const uint8_t *)"bad\n", 4, "acl.txt", err, sizeof(err)));
    cr_assert_str_eq(err, "acl.txt:1: ");
    cr_assert_null(acl_create((const uint8_t *)"bad\n", 4, "acl.txt", NULL, 0));
}

/* ------------------------------------------------------------------ */
/* Blocks                                                              */
/* ------------------------------------------------------------------ */

Test(acl, anonymous_block_is_for_clients_without_username)
{
    struct acl *a = compile("topic anon/#\nuser u\ntopic u/#\n");
    cr_assert(rd(a, anon("c"), "anon/x"));
    cr_assert_not(rd(a, anon("c"), "u/x"));
    cr_assert(rd(a, user("u", "c"), "u/x"));
    cr_assert_not(rd(a, user("u", "c"), "anon/x"));
    /* An empty username is a username: no block of its own, not anonymous. */
    cr_assert_not(rd(a, user("", "c"), "anon/x"));
    cr_assert_not(rd(a, user("v", "c"), "anon/x"));
    acl_destroy(a);
}

Test(acl, user_blocks_merge_and_hold_odd_names)
{
    struct acl *a = compile("user alice\ntopic read a/1\n"
                            "user bob\ntopic read b/1\n"
                            "user alice\ntopic write a/2\n"
                            "user a/b\ntopic read slash\n"
                            "user +\ntopic read plus\n"
                            "user \xc3\xa9t\xc3\xa9\ntopic read summer\n");
    cr_assert(rd(a, user("alice", "c"), "a/1"));
    cr_assert(wr(a, user("alice", "c"), "a/2"));
    cr_assert_not(rd(a, user("alice", "c"), "b/1"));
    cr_assert(rd(a, user("bob", "c"), "b/1"));
    cr_assert(rd(a, user("a/b", "c"), "slash"));
    cr_assert_not(rd(a, user("a", "c"), "slash"));
    cr_assert(rd(a, user("+", "c"), "plus"));
    cr_assert_not(rd(a, user("x", "c"), "plus"));
    cr_assert(rd(a, user("\xc3\xa9t\xc3\xa9", "c"), "summer"));
    cr_assert_eq(acl_rule_count(a), 6);
    acl_destroy(a);
}

Test(acl, many_users_each_find_their_own_block)
{
    size_t cap = 10000 * 48;
    char *text = malloc(cap);
    size_t o = 0;
    for (int i = 0; i < 10000; i++)
        o += (size_t)snprintf(text + o, cap - o, "user u%d\ntopic readwrite dev/u%d/#\n", i, i);
    struct acl *a = compile(text);
    cr_assert_eq(acl_rule_count(a), 10000);
    char name[16], t[32];
    for (int i = 0; i < 10000; i += 37) {
        snprintf(name, sizeof(name), "u%d", i);
        snprintf(t, sizeof(t), "dev/u%d/x", i);
        cr_assert(rd(a, user(name, "c"), t));
        snprintf(t, sizeof(t), "dev/u%d/x", (i + 1) % 10000);
        cr_assert_not(rd(a, user(name, "c"), t));
    }
    acl_destroy(a);
    free(text);
}

/* ------------------------------------------------------------------ */
/* Patterns                                                            */
/* ------------------------------------------------------------------ */

Test(acl, patterns_apply_to_everyone_wherever_they_stand)
{
    struct acl *a = compile("pattern read early/%c\n"
                            "user u\n"
                            "topic read mine\n"
                            "pattern readwrite late/%u/#\n"
                            "pattern read everyone\n");
    cr_assert(rd(a, anon("c1"), "early/c1"));
    cr_assert_not(rd(a, anon("c1"), "early/c2"));
    cr_assert(rd(a, user("u", "c1"), "early/c1"));
    cr_assert(rd(a, user("v", "c1"), "early/c1"));
    cr_assert(wr(a, user("v", "c1"), "late/v/x"));
    cr_assert(wr(a, user("v", "c1"), "late/v"));
    cr_assert_not(wr(a, user("v", "c1"), "late/u/x"));
    cr_assert_not(wr(a, anon("v"), "late/v/x"));
    cr_assert(rd(a, anon("c1"), "everyone"));
    cr_assert(rd(a, user("u", "c"), "everyone"));
    cr_assert(rd(a, user("u", "c"), "mine"));
    cr_assert_not(rd(a, user("v", "c"), "mine"));
    acl_destroy(a);
}

Test(acl, patterns_with_both_placeholders_and_wildcards)
{
    struct acl *a = compile("pattern read %u/%c/+/#\npattern write in/%c/%c\n");
    cr_assert(rd(a, user("u", "c"), "u/c/x"));
    cr_assert(rd(a, user("u", "c"), "u/c/x/y/z"));
    cr_assert_not(rd(a, user("u", "c"), "u/c"));
    cr_assert_not(rd(a, user("u", "c"), "c/u/x"));
    cr_assert_not(rd(a, anon("c"), "u/c/x"));
    cr_assert(wr(a, anon("c"), "in/c/c"));
    cr_assert_not(wr(a, anon("c"), "in/c/d"));
    acl_destroy(a);
}

Test(acl, names_that_are_not_one_level_fill_no_placeholder)
{
    struct acl *a = compile("pattern readwrite u/%u/#\npattern readwrite c/%c/#\n");
    const char *bad[] = {"+", "#", "a/b", "/", "a+", "#x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct acl_who w = user(bad[i], bad[i]);
        char t[32];
        snprintf(t, sizeof(t), "u/%s/x", bad[i]);
        cr_assert_not(rd(a, w, t), "%s", bad[i]);
        snprintf(t, sizeof(t), "c/%s/x", bad[i]);
        cr_assert_not(rd(a, w, t), "%s", bad[i]);
        cr_assert_not(rd(a, w, "u/x/x"), "%s", bad[i]);
        cr_assert_not(rd(a, w, "c/a/b/x"), "%s", bad[i]);
        cr_assert_not(sub(a, w, "#"), "%s", bad[i]);
        cr_assert_not(sub(a, w, "u/+/x"), "%s", bad[i]);
        cr_assert_not(sub(a, w, "c/#"), "%s", bad[i]);
    }
    /* An empty client id or username fills nothing either. */
    cr_assert_not(rd(a, user("", ""), "u//x"));
    cr_assert_not(rd(a, user("", ""), "c//x"));
    cr_assert_not(sub(a, user("", ""), "#"));
    /* The same names are fine where they fill nothing. */
    acl_destroy(a);
    a = compile("user a/b\ntopic read x\npattern read y\n");
    cr_assert(rd(a, user("a/b", "+"), "x"));
    cr_assert(rd(a, user("a/b", "+"), "y"));
    acl_destroy(a);
}

/* A deny pattern is never narrowed by a name (acl.h): for a name the
 * tries cannot use, it applies with the name as text, as in mosquitto 2.0. */
Test(acl, deny_pattern_takes_an_odd_client_id_as_text)
{
    struct acl *a = compile("pattern readwrite #\npattern deny %c/secret\n");
    /* An ordinary id, through the tries. */
    cr_assert_not(rd(a, anon("ab"), "ab/secret"));
    cr_assert(rd(a, anon("ab"), "a/b/secret"));
    /* '/' spans levels. */
    struct acl_who w = anon("a/b");
    cr_assert_not(rd(a, w, "a/b/secret"));
    cr_assert_not(wr(a, w, "a/b/secret"));
    cr_assert(rd(a, w, "ab/secret"));
    cr_assert(rd(a, w, "a/b"));
    cr_assert(rd(a, w, "a/b/secret/x"));
    cr_assert(wr(a, w, "a/secret"));
    /* '+' becomes a wildcard: it denies more. */
    w = anon("+");
    cr_assert_not(rd(a, w, "x/secret"));
    cr_assert_not(wr(a, w, "y/secret"));
    cr_assert_not(rd(a, w, "+/secret")); /* not a topic name at all */
    cr_assert(rd(a, w, "x/y/secret"));
    cr_assert(rd(a, w, "secret"));
    cr_assert(wr(a, w, "x/public"));
    w = anon("x/+/y");
    cr_assert_not(rd(a, w, "x/1/y/secret"));
    cr_assert_not(wr(a, w, "x/2/y/secret"));
    cr_assert(rd(a, w, "x/1/y"));
    cr_assert(rd(a, w, "x/1/z/secret"));
    cr_assert(rd(a, w, "x/1/y/secret/more"));
    /* An empty id is an empty level. */
    w = anon("");
    cr_assert_not(rd(a, w, "/secret"));
    cr_assert_not(wr(a, w, "/secret"));
    cr_assert(rd(a, w, "secret"));
    cr_assert(rd(a, w, "a/secret"));
    acl_destroy(a);
}

Test(acl, deny_pattern_with_a_hash_in_the_id_denies_what_hash_matches)
{
    struct acl *a = compile("topic read $SYS/#\npattern readwrite #\npattern deny %c/secret\n");
    const char *ids[] = {"#", "a#", "#/x"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct acl_who w = anon(ids[i]);
        cr_assert_not(rd(a, w, "x"), "%s", ids[i]);
        cr_assert_not(wr(a, w, "x/y/z"), "%s", ids[i]);
        cr_assert_not(rd(a, w, "secret"), "%s", ids[i]);
        cr_assert_not(sub(a, w, "#"), "%s", ids[i]);
        cr_assert_not(sub(a, w, "a/+"), "%s", ids[i]);
        /* "#" never matches a '$' topic, substituted or not. */
        cr_assert(rd(a, w, "$SYS/broker/uptime"), "%s", ids[i]);
        cr_assert(sub(a, w, "$SYS/#"), "%s", ids[i]);
    }
    /* A '#' deeper in the id: everything from that level down. */
    struct acl_who w = anon("x/#");
    cr_assert_not(rd(a, w, "x"));
    cr_assert_not(rd(a, w, "x/anything/else"));
    cr_assert(rd(a, w, "y/secret"));
    acl_destroy(a);
}

Test(acl, deny_pattern_takes_an_odd_username_as_text)
{
    struct acl *a = compile("pattern readwrite #\npattern deny home/%u/private/#\n");
    cr_assert_not(rd(a, user("u", "c"), "home/u/private"));
    cr_assert(rd(a, user("u", "c"), "home/v/private"));
    struct acl_who w = user("a/b", "c");
    cr_assert_not(rd(a, w, "home/a/b/private"));
    cr_assert_not(wr(a, w, "home/a/b/private/x"));
    cr_assert(rd(a, w, "home/a/b"));
    cr_assert(rd(a, w, "home/a/private"));
    w = user("+", "c");
    cr_assert_not(rd(a, w, "home/anyone/private/x"));
    cr_assert(wr(a, w, "home/anyone/public"));
    w = user("x/+/y", "c");
    cr_assert_not(rd(a, w, "home/x/1/y/private/z"));
    cr_assert(rd(a, w, "home/x/1/z/private"));
    w = user("#", "c");
    cr_assert_not(rd(a, w, "home/x"));
    cr_assert_not(rd(a, w, "home")); /* "home/#" matches "home" */
    cr_assert(rd(a, w, "other"));
    w = user("", "c");
    cr_assert_not(rd(a, w, "home//private"));
    cr_assert_not(wr(a, w, "home//private/x"));
    cr_assert(rd(a, w, "home/u/private"));
    /* The client id plays no part in a %u pattern. */
    cr_assert(rd(a, user("u", "a/b"), "home/a/b/private"));
    acl_destroy(a);
}

/* mosquitto skips %u patterns for a client without a username, deny ones
 * included, and so does ringmq. */
Test(acl, deny_pattern_with_username_does_not_apply_without_one)
{
    struct acl *a = compile("pattern readwrite #\npattern deny home/%u/private/#\n"
                            "pattern deny %u/%c\n");
    const char *ids[] = {"c", "a/b", "+", "#", ""};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct acl_who w = anon(ids[i]);
        cr_assert(rd(a, w, "home/a/b/private"), "%s", ids[i]);
        cr_assert(wr(a, w, "home/x/private/y"), "%s", ids[i]);
        cr_assert(rd(a, w, "x/c"), "%s", ids[i]);
        cr_assert(sub(a, w, "home/+/private/#"), "%s", ids[i]);
        cr_assert(all(a, w, "home/#"), "%s", ids[i]);
    }
    acl_destroy(a);
}

Test(acl, deny_pattern_with_both_placeholders_and_one_odd_name)
{
    struct acl *a = compile("pattern read #\npattern deny %u/%c\n");
    cr_assert_not(rd(a, user("u", "a/b"), "u/a/b"));
    cr_assert(rd(a, user("u", "a/b"), "u/a"));
    cr_assert_not(rd(a, user("a/b", "c"), "a/b/c"));
    cr_assert(rd(a, user("a/b", "c"), "a/b/d"));
    cr_assert_not(rd(a, user("+", "+"), "x/y"));
    cr_assert(rd(a, user("+", "+"), "x/y/z"));
    cr_assert_not(rd(a, user("u", "c"), "u/c")); /* both ordinary: the tries */
    acl_destroy(a);
}

Test(acl, deny_pattern_takes_a_dollar_name_as_text)
{
    /* The tries never match a first-level placeholder against a '$' topic;
     * for a deny that would let id "$SYS" read what the pattern denies it. */
    struct acl *a = compile("topic read $SYS/#\ntopic read a/#\npattern deny %c/#\n"
                            "pattern deny a/%c\n");
    cr_assert_not(rd(a, anon("$SYS"), "$SYS/broker/uptime"));
    cr_assert_not(sub(a, anon("$SYS"), "$SYS/#"));
    cr_assert(rd(a, anon("$SYS"), "a/b"));
    cr_assert_not(rd(a, anon("$SYS"), "a/$SYS"));
    cr_assert(rd(a, anon("c"), "$SYS/broker/uptime"));
    cr_assert_not(rd(a, anon("c"), "a/c"));
    acl_destroy(a);
    /* Allow patterns are as before: no '$' topic through a name. */
    a = compile("pattern read %c/#\n");
    cr_assert_not(rd(a, anon("$SYS"), "$SYS/x"));
    acl_destroy(a);
}

Test(acl, subscribe_refused_under_a_deny_pattern_with_an_odd_name)
{
    struct acl *a = compile("topic read $SYS/#\npattern read #\npattern deny %c/secret/#\n");
    struct acl_who w = anon("a/b");
    cr_assert_not(sub(a, w, "a/b/secret"));
    cr_assert_not(sub(a, w, "a/b/secret/#"));
    cr_assert_not(sub(a, w, "a/b/secret/+/x"));
    cr_assert(sub(a, w, "a/b/+/x"));
    cr_assert(sub(a, w, "a/b/#"));
    cr_assert(sub(a, w, "+/b/secret"));
    w = anon("+");
    cr_assert_not(sub(a, w, "x/secret"));
    cr_assert_not(sub(a, w, "+/secret/y"));
    cr_assert_not(sub(a, w, "+/secret"));
    cr_assert(sub(a, w, "#"));
    cr_assert(sub(a, w, "x/#"));
    cr_assert(sub(a, w, "+/+"));
    w = anon("x/+/y");
    cr_assert_not(sub(a, w, "x/+/y/secret"));
    cr_assert_not(sub(a, w, "x/1/y/secret/#"));
    cr_assert(sub(a, w, "x/#"));
    cr_assert(sub(a, w, "x/1/+/secret"));
    w = anon("#");
    cr_assert_not(sub(a, w, "#"));
    cr_assert_not(sub(a, w, "a/b"));
    cr_assert(sub(a, w, "$SYS/#"));
    w = anon("");
    cr_assert_not(sub(a, w, "/secret"));
    cr_assert_not(sub(a, w, "/secret/x"));
    cr_assert(sub(a, w, "secret"));
    cr_assert(sub(a, w, "/+"));
    acl_destroy(a);
    a = compile("pattern read #\npattern deny %u/secret\n");
    cr_assert_not(sub(a, user("a/b", "c"), "a/b/secret"));
    cr_assert(sub(a, user("a/b", "c"), "a/b/+"));
    cr_assert_not(sub(a, user("+", "c"), "q/secret"));
    cr_assert_not(sub(a, user("", "c"), "/secret"));
    cr_assert(sub(a, anon("a/b"), "a/b/secret"));
    acl_destroy(a);
}

/* A name the codec would never pass, or a substitution over the bounds:
 * the deny pattern cannot be applied as text, so it denies everything. */
Test(acl, unsubstitutable_names_refuse_every_decision)
{
    struct acl *a = compile("topic read $SYS/#\npattern readwrite #\npattern deny %c/x\n");
    refuses_everything(a, anon_bytes("a\0b", 3));
    refuses_everything(a, anon_bytes("\xff/", 2));
    refuses_everything(a, anon_bytes("\xc0\x80", 2));
    /* Valid UTF-8 is an ordinary name. */
    cr_assert(rd(a, anon("\xc3\xa9t\xc3\xa9"), "q"));
    cr_assert_not(rd(a, anon("\xc3\xa9t\xc3\xa9"), "\xc3\xa9t\xc3\xa9/x"));
    cr_assert(rd(a, anon("\xc3\xa9/t"), "q"));
    cr_assert_not(rd(a, anon("\xc3\xa9/t"), "\xc3\xa9/t/x"));
    acl_destroy(a);
    /* Without a deny pattern using %c, the id is never substituted. */
    a = compile("pattern readwrite #\npattern deny %u/x\n");
    cr_assert(rd(a, anon_bytes("a\0b", 3), "q"));
    cr_assert(rd(a, user("u", "\xff"), "q"));
    cr_assert_not(rd(a, user("\xff/", "c"), "q"));
    acl_destroy(a);
}

Test(acl, substitution_at_the_length_and_level_bounds)
{
    struct acl *a = compile("pattern readwrite #\npattern deny %c/x\n");
    char *id = malloc(TOPIC_LEN_MAX + 1);
    cr_assert_not_null(id);
    /* "a/aaa...": with "/x", exactly TOPIC_LEN_MAX bytes, then one more. */
    memset(id, 'a', TOPIC_LEN_MAX);
    id[1] = '/';
    cr_assert(rd(a, anon_bytes(id, TOPIC_LEN_MAX - 2), "q"));
    cr_assert(sub(a, anon_bytes(id, TOPIC_LEN_MAX - 2), "#"));
    char *t0 = malloc(TOPIC_LEN_MAX);
    cr_assert_not_null(t0);
    memcpy(t0, id, TOPIC_LEN_MAX - 2);
    memcpy(t0 + TOPIC_LEN_MAX - 2, "/x", 2);
    struct acl_who w0 = anon_bytes(id, TOPIC_LEN_MAX - 2);
    cr_assert_not(acl_may_read(a, &w0, (const uint8_t *)t0, TOPIC_LEN_MAX));
    cr_assert(acl_may_read(a, &w0, (const uint8_t *)t0, TOPIC_LEN_MAX - 2));
    free(t0);
    refuses_everything(a, anon_bytes(id, TOPIC_LEN_MAX - 1));
    /* TOPIC_LEVELS_MAX - 1 levels, and "/x" makes TOPIC_LEVELS_MAX; then one
     * more level. */
    size_t o = 0;
    for (unsigned i = 0; i < TOPIC_LEVELS_MAX; i++)
        o += (size_t)snprintf(id + o, 8, i ? "/a" : "a");
    size_t short_len = o - 2;
    struct acl_who w = anon_bytes(id, short_len);
    cr_assert(rd(a, w, "q"));
    cr_assert(wr(a, w, "a/y"));
    char t[TOPIC_LEVELS_MAX * 2 + 8];
    memcpy(t, id, short_len);
    memcpy(t + short_len, "/x", 2);
    cr_assert_not(acl_may_read(a, &w, (const uint8_t *)t, short_len + 2));
    cr_assert(acl_may_read(a, &w, (const uint8_t *)t, short_len)); /* 127 levels of "a" */
    refuses_everything(a, anon_bytes(id, o));
    free(id);
    acl_destroy(a);
}

/* The principle's own example: an id chosen to look like another client's
 * tree widens no allow. */
Test(acl, an_id_shaped_like_a_tree_gets_no_allow_pattern)
{
    struct acl *a = compile("pattern readwrite %c/#\n");
    cr_assert(rd(a, anon("victim"), "victim/inbox/1"));
    cr_assert_not(rd(a, anon("victim/inbox"), "victim/inbox/1"));
    cr_assert_not(wr(a, anon("victim/inbox"), "victim/inbox"));
    cr_assert_not(sub(a, anon("victim/inbox"), "victim/inbox/#"));
    cr_assert_not(all(a, anon("victim/inbox"), "victim/inbox/#"));
    acl_destroy(a);
}

Test(acl, one_unusable_name_loses_only_the_patterns_that_need_it)
{
    struct acl *a = compile("pattern read u/%u\npattern read c/%c\n");
    struct acl_who w = user("ok", "bad/id");
    cr_assert(rd(a, w, "u/ok"));
    cr_assert_not(rd(a, w, "c/bad/id"));
    cr_assert(sub(a, w, "+/+"));
    acl_destroy(a);
}

Test(acl, a_placeholder_never_matches_a_dollar_first_level)
{
    struct acl *a = compile("pattern read %u/#\npattern read %c/x\n");
    cr_assert(rd(a, user("home", "c"), "home/t"));
    cr_assert_not(rd(a, user("$SYS", "c"), "$SYS/broker/uptime"));
    cr_assert_not(sub(a, user("$SYS", "c"), "$SYS/#"));
    cr_assert_not(sub(a, user("$SYS", "$c"), "#"));
    cr_assert(sub(a, user("$SYS", "c"), "#")); /* through c/x */
    cr_assert_not(rd(a, user("u", "$x"), "$x/x"));
    acl_destroy(a);
    a = compile("pattern read a/%u\n");
    cr_assert(rd(a, user("$x", "c"), "a/$x")); /* deeper levels are ordinary */
    acl_destroy(a);
}

/* ------------------------------------------------------------------ */
/* deny                                                                */
/* ------------------------------------------------------------------ */

Test(acl, deny_wins_in_either_order)
{
    const char *files[] = {"topic readwrite a/#\ntopic deny a/secret\n",
                           "topic deny a/secret\ntopic readwrite a/#\n"};
    for (int i = 0; i < 2; i++) {
        struct acl *a = compile(files[i]);
        cr_assert(rd(a, anon("c"), "a/open"));
        cr_assert(wr(a, anon("c"), "a/open"));
        cr_assert_not(rd(a, anon("c"), "a/secret"));
        cr_assert_not(wr(a, anon("c"), "a/secret"));
        cr_assert(rd(a, anon("c"), "a/secret/below"));
        acl_destroy(a);
    }
}

Test(acl, deny_in_a_pattern_beats_an_allow_in_a_user_block_and_back)
{
    struct acl *a = compile("user u\ntopic readwrite #\npattern deny private/%c/#\n");
    cr_assert(rd(a, user("u", "me"), "private/other"));
    cr_assert_not(rd(a, user("u", "me"), "private/me"));
    cr_assert_not(wr(a, user("u", "me"), "private/me/x"));
    cr_assert_not(sub(a, user("u", "me"), "private/me/#"));
    cr_assert(sub(a, user("u", "me"), "private/#"));
    acl_destroy(a);
    a = compile("pattern readwrite %u/#\nuser u\ntopic deny u/locked\n");
    cr_assert(wr(a, user("u", "c"), "u/free"));
    cr_assert_not(wr(a, user("u", "c"), "u/locked"));
    cr_assert(wr(a, user("v", "c"), "v/locked"));
    acl_destroy(a);
}

Test(acl, deny_with_wildcards_and_duplicate_rules)
{
    struct acl *a = compile("topic read a/#\ntopic deny a/+/x\ntopic read a/b/x\ntopic read a/#\n");
    cr_assert(rd(a, anon("c"), "a/b"));
    cr_assert_not(rd(a, anon("c"), "a/b/x"));
    cr_assert(rd(a, anon("c"), "a/b/x/y"));
    cr_assert_eq(acl_rule_count(a), 4);
    acl_destroy(a);
    a = compile("topic readwrite #\ntopic deny #\n");
    cr_assert_not(rd(a, anon("c"), "x"));
    cr_assert_not(sub(a, anon("c"), "x/#"));
    acl_destroy(a);
}

/* ------------------------------------------------------------------ */
/* $SYS and '$' topics                                                 */
/* ------------------------------------------------------------------ */

Test(acl, hash_never_grants_dollar_topics)
{
    struct acl *a = compile("topic readwrite #\ntopic readwrite +/x\n");
    cr_assert(rd(a, anon("c"), "a/b"));
    cr_assert_not(rd(a, anon("c"), "$SYS/broker/uptime"));
    cr_assert_not(rd(a, anon("c"), "$other"));
    cr_assert_not(rd(a, anon("c"), "$x/x"));
    cr_assert_not(wr(a, anon("c"), "$other"));
    cr_assert_not(sub(a, anon("c"), "$SYS/#"));
    cr_assert_not(sub(a, anon("c"), "$x/+"));
    cr_assert(sub(a, anon("c"), "#"));
    acl_destroy(a);
}

Test(acl, a_sys_rule_grants_sys)
{
    struct acl *a = compile("topic read $SYS/#\ntopic read $share/x\n");
    cr_assert(rd(a, anon("c"), "$SYS/broker/uptime"));
    cr_assert(rd(a, anon("c"), "$SYS"));
    cr_assert(sub(a, anon("c"), "$SYS/#"));
    cr_assert(sub(a, anon("c"), "$SYS/+/uptime"));
    cr_assert_not(sub(a, anon("c"), "#"));   /* `#` does not reach $SYS */
    cr_assert_not(sub(a, anon("c"), "+/#")); /* nor does `+` */
    cr_assert_not(rd(a, anon("c"), "$SYSTEM/x"));
    acl_destroy(a);
}

Test(acl, publishing_into_sys_is_always_refused)
{
    struct acl *a = compile("topic readwrite $SYS/#\ntopic readwrite $SYSTEM/#\n"
                            "pattern write $SYS/broker/connection/%c/state\n");
    cr_assert_not(wr(a, anon("c"), "$SYS/x"));
    cr_assert_not(wr(a, anon("c"), "$SYS"));
    cr_assert_not(wr(a, anon("c"), "$SYS/broker/connection/c/state"));
    cr_assert_not(wr(a, anon("c"), "$SYSTEM/x")); /* the engine's prefix test */
    cr_assert(rd(a, anon("c"), "$SYS/x"));
    acl_destroy(a);
}

/* ------------------------------------------------------------------ */
/* Subscribe                                                           */
/* ------------------------------------------------------------------ */

Test(acl, subscribe_refused_under_a_deny_that_covers_it)
{
    struct acl *a = compile("topic read test/#\ntopic deny test/nosubscribe\n");
    struct acl_who c = anon("c");
    cr_assert_not(sub(a, c, "test/nosubscribe"));
    cr_assert(sub(a, c, "test/other"));
    cr_assert(sub(a, c, "test/#"));
    cr_assert(sub(a, c, "test/+"));
    cr_assert(sub(a, c, "test/nosubscribe/#")); /* "test/nosubscribe/x" is readable */
    acl_destroy(a);
    a = compile("topic read test/#\ntopic deny test/+/private/#\n");
    cr_assert_not(sub(a, anon("c"), "test/x/private"));
    cr_assert_not(sub(a, anon("c"), "test/x/private/#"));
    cr_assert_not(sub(a, anon("c"), "test/+/private/+/y"));
    cr_assert(sub(a, anon("c"), "test/#"));
    cr_assert(sub(a, anon("c"), "test/+/+"));
    acl_destroy(a);
}

Test(acl, subscribe_granted_for_broad_filters_over_a_readable_rule)
{
    struct acl *a = compile("topic read a/b/c\n");
    struct acl_who c = anon("c");
    cr_assert(sub(a, c, "#"));
    cr_assert(sub(a, c, "a/#"));
    cr_assert(sub(a, c, "a/+/c"));
    cr_assert(sub(a, c, "+/+/+"));
    cr_assert(sub(a, c, "a/b/c/#")); /* matches a/b/c itself */
    cr_assert_not(sub(a, c, "a/+"));
    cr_assert_not(sub(a, c, "+"));
    cr_assert_not(sub(a, c, "a/b/c/+"));
    cr_assert_not(sub(a, c, "a/b/d"));
    cr_assert_not(sub(a, c, "a/c/#"));
    acl_destroy(a);
}

Test(acl, subscribe_intersects_hash_rules_with_the_parent_level)
{
    struct acl *a = compile("topic read a/#\n");
    cr_assert(sub(a, anon("c"), "a"));
    cr_assert(sub(a, anon("c"), "a/x/y"));
    cr_assert(sub(a, anon("c"), "+"));
    cr_assert(sub(a, anon("c"), "+/+/+"));
    cr_assert_not(sub(a, anon("c"), "b/#"));
    acl_destroy(a);
    a = compile("topic read a\n");
    cr_assert(sub(a, anon("c"), "a/#"));
    cr_assert(sub(a, anon("c"), "#"));
    cr_assert(sub(a, anon("c"), "+"));
    cr_assert_not(sub(a, anon("c"), "a/+"));
    acl_destroy(a);
}

Test(acl, subscribe_needs_read_access)
{
    struct acl *a = compile("topic write w/#\ntopic read r\n");
    cr_assert_not(sub(a, anon("c"), "w/#"));
    cr_assert_not(sub(a, anon("c"), "w/x"));
    cr_assert(sub(a, anon("c"), "#"));
    acl_destroy(a);
}

Test(acl, subscribe_granted_though_every_match_is_denied)
{
    /* The documented approximation: the allow intersects, no single deny
     * covers, so the filter is granted and deliveries are refused one by
     * one. */
    struct acl *a = compile("topic read a/b\ntopic deny a/+\n");
    cr_assert(sub(a, anon("c"), "a/#"));
    cr_assert_not(rd(a, anon("c"), "a/b"));
    cr_assert_not(sub(a, anon("c"), "a/b"));
    cr_assert_not(sub(a, anon("c"), "a/+"));
    acl_destroy(a);
}

Test(acl, subscribe_with_placeholders)
{
    struct acl *a = compile("pattern read users/%u/#\npattern deny users/%u/secret\n");
    cr_assert(sub(a, user("u", "c"), "users/u/#"));
    cr_assert(sub(a, user("u", "c"), "users/+/x"));
    cr_assert(sub(a, user("u", "c"), "users/#"));
    cr_assert_not(sub(a, user("u", "c"), "users/v/#"));
    cr_assert_not(sub(a, user("u", "c"), "users/u/secret"));
    cr_assert(sub(a, user("u", "c"), "users/u/+"));
    cr_assert_not(sub(a, anon("u"), "users/#"));
    acl_destroy(a);
}

Test(acl, shared_subscriptions_are_judged_by_their_filter)
{
    struct acl *a = compile("topic read jobs/#\n");
    cr_assert(sub(a, anon("c"), "$share/workers/jobs/+"));
    cr_assert_not(sub(a, anon("c"), "$share/workers/other/+"));
    cr_assert_not(sub(a, anon("c"), "$share/workers"));
    cr_assert_not(sub(a, anon("c"), "$share//jobs/x"));
    acl_destroy(a);
}

Test(acl, invalid_filters_and_topics_are_refused)
{
    struct acl *a = compile("topic readwrite #\n");
    cr_assert_not(sub(a, anon("c"), ""));
    cr_assert_not(sub(a, anon("c"), "a/#/b"));
    cr_assert_not(sub(a, anon("c"), "a+"));
    cr_assert_not(rd(a, anon("c"), ""));
    cr_assert_not(wr(a, anon("c"), ""));
    acl_destroy(a);
}

/* ------------------------------------------------------------------ */
/* Read everything a subscription matches                              */
/* ------------------------------------------------------------------ */

Test(acl, read_all_without_an_acl_is_true_for_valid_filters)
{
    cr_assert(all(NULL, anon("c"), "#"));
    cr_assert(all(NULL, anon("c"), "a/+"));
    cr_assert(all(NULL, anon("c"), "$SYS/#"));
    cr_assert(all(NULL, anon("c"), "$share/g/#"));
    cr_assert_not(all(NULL, anon("c"), "a/#/b"));
    cr_assert_not(all(NULL, anon("c"), ""));
    cr_assert_not(all(NULL, anon("c"), "$share/g"));
}

Test(acl, read_all_needs_one_covering_allow_and_no_meeting_deny)
{
    struct acl *a = compile("topic read a/#\ntopic deny a/secret\ntopic write w/#\n");
    struct acl_who c = anon("c");
    cr_assert(all(a, c, "a"));
    cr_assert(all(a, c, "a/open"));
    cr_assert(all(a, c, "a/open/#"));
    cr_assert(all(a, c, "a/x/+"));
    cr_assert(all(a, c, "a/secret/below"));
    cr_assert(all(a, c, "$share/g/a/open/#"));
    cr_assert_not(all(a, c, "a/#"));      /* meets a/secret */
    cr_assert_not(all(a, c, "a/+"));      /* so does this */
    cr_assert_not(all(a, c, "a/secret")); /* and this is denied */
    cr_assert_not(all(a, c, "+/secret"));
    cr_assert_not(all(a, c, "b"));   /* no rule */
    cr_assert_not(all(a, c, "#"));   /* no rule covers it */
    cr_assert_not(all(a, c, "w/#")); /* write only */
    cr_assert(sub(a, c, "a/#"));     /* the subscription itself is granted */
    acl_destroy(a);
}

Test(acl, read_all_and_dollar_topics)
{
    struct acl *a = compile("topic read #\ntopic deny $SYS/secret\n");
    cr_assert(all(a, anon("c"), "#"));
    cr_assert(all(a, anon("c"), "+/x"));
    cr_assert(all(a, anon("c"), "+/secret"));   /* `+` never matches $SYS */
    cr_assert_not(all(a, anon("c"), "$SYS/#")); /* `#` grants no $SYS */
    acl_destroy(a);
    a = compile("topic read $SYS/#\ntopic deny +/x\n");
    cr_assert(all(a, anon("c"), "$SYS/+"));
    cr_assert(all(a, anon("c"), "$SYS/x")); /* "+/x" does not match it */
    cr_assert_not(all(a, anon("c"), "#"));
    acl_destroy(a);
}

/* Rules are judged one at a time: the documented false negative. */
Test(acl, read_all_does_not_join_rules)
{
    struct acl *a = compile("topic read a\ntopic read a/+/#\n");
    cr_assert_not(all(a, anon("c"), "a/#"));
    cr_assert(rd(a, anon("c"), "a"));
    cr_assert(rd(a, anon("c"), "a/b"));
    cr_assert(rd(a, anon("c"), "a/b/c"));
    cr_assert(all(a, anon("c"), "a/+"));
    acl_destroy(a);
}

Test(acl, read_all_with_placeholders)
{
    struct acl *a = compile("pattern read users/%u/#\npattern deny users/%u/secret\n"
                            "user u\ntopic deny users/u/locked/#\n");
    struct acl_who u = user("u", "c");
    cr_assert(all(a, u, "users/u/open"));
    cr_assert(all(a, u, "users/u/open/+"));
    cr_assert_not(all(a, u, "users/u/+/x"));      /* meets users/u/locked/# */
    cr_assert_not(all(a, u, "users/u/#"));        /* meets the denies */
    cr_assert_not(all(a, u, "users/u/+"));        /* meets users/u/secret */
    cr_assert_not(all(a, u, "users/u/locked/x")); /* the user's block denies */
    cr_assert_not(all(a, u, "users/+/open"));     /* %u does not cover `+` */
    cr_assert_not(all(a, u, "users/v/open"));
    cr_assert(all(a, user("v", "c"), "users/v/locked/x"));
    cr_assert_not(all(a, anon("u"), "users/u/open")); /* no username, no %u */
    acl_destroy(a);
    a = compile("pattern read #\npattern deny %c/secret\npattern deny %u/private\n");
    cr_assert(all(a, anon("c"), "d/#"));
    cr_assert_not(all(a, anon("c"), "c/#"));
    cr_assert_not(all(a, anon("c"), "+/secret"));
    cr_assert(all(a, anon("c"), "+/private")); /* no username: %u denies nothing */
    cr_assert_not(all(a, user("u", "c"), "+/private"));
    acl_destroy(a);
}

Test(acl, read_all_with_odd_names)
{
    struct acl *a = compile("pattern read #\npattern deny %c/secret\n");
    struct acl_who w = anon("a/b");
    cr_assert_not(all(a, w, "a/+/secret"));
    cr_assert_not(all(a, w, "a/b/#"));
    cr_assert_not(all(a, w, "#"));
    cr_assert(all(a, w, "a/b/open"));
    cr_assert(all(a, w, "x/#"));
    cr_assert(all(a, w, "a/+"));
    w = anon("+");
    cr_assert(all(a, w, "x/y"));
    cr_assert(all(a, w, "x/y/#"));
    cr_assert_not(all(a, w, "x/+"));
    cr_assert_not(all(a, w, "x/secret"));
    w = anon("");
    cr_assert(all(a, w, "+"));
    cr_assert(all(a, w, "x/+"));
    cr_assert_not(all(a, w, "/+"));
    w = anon("#");
    cr_assert_not(all(a, w, "x"));
    acl_destroy(a);
    a = compile("pattern read #\npattern deny %u/secret\n");
    cr_assert_not(all(a, user("x/+/y", "c"), "x/1/y/#"));
    cr_assert(all(a, user("x/+/y", "c"), "x/1/z/#"));
    cr_assert(all(a, anon("x/+/y"), "x/1/y/#"));
    acl_destroy(a);
}

/* Soundness, by brute force: wherever acl_may_read_all says true, every
 * topic of a small alphabet that the filter matches is readable. */
static const char *const SOUND_FILES[] = {
    "topic read #\ntopic deny a/b\n",
    "topic read a/#\ntopic deny a/+/c\ntopic read $SYS/#\n",
    "pattern read %c/#\npattern deny %c/b/#\ntopic read b/+\n",
    "pattern read +/%u\npattern deny a/%u\npattern read #\n",
    "pattern read #\npattern deny %c/b\npattern deny %u/%c\n",
    "user u\ntopic read a/#\npattern deny +/%u/#\ntopic deny b\n",
};
static const char *const SOUND_FILTERS[] = {
    "#",   "+",   "a",     "a/#",    "a/+", "a/b",   "+/b",   "+/+", "a/b/#",
    "b/#", "b/+", "+/c/#", "$SYS/#", "c/#", "a/+/c", "c/b/#", "u/#", "a/u/#",
};
static const char *const SOUND_LEVELS[] = {"a", "b", "c", "u", "$SYS"};

/* Every topic of up to three levels over SOUND_LEVELS ("$SYS" first only).
 * Returns whether read_all said true. */
static bool check_sound(const struct acl *a, struct acl_who w, const char *f)
{
    if (!all(a, w, f))
        return false;
    size_t nl = sizeof(SOUND_LEVELS) / sizeof(SOUND_LEVELS[0]);
    for (size_t depth = 1; depth <= 3; depth++) {
        size_t count = 1;
        for (size_t i = 0; i < depth; i++)
            count *= nl;
        for (size_t k = 0; k < count; k++) {
            char t[64] = "";
            size_t x = k;
            for (size_t i = 0; i < depth; i++, x /= nl) {
                if (i > 0 && x % nl == nl - 1)
                    x++; /* "$SYS" only as the first level: "a" instead */
                strcat(t, i ? "/" : "");
                strcat(t, SOUND_LEVELS[x % nl]);
            }
            if (topic_match((const uint8_t *)f, strlen(f), (const uint8_t *)t, strlen(t)))
                cr_assert(rd(a, w, t), "read_all `%s' true but `%s' unreadable", f, t);
        }
    }
    return true;
}

Test(acl, read_all_true_means_every_matched_topic_is_readable)
{
    struct acl_who who[] = {anon("c"),      anon("a"),        anon("a/b"),    anon("+"),   anon(""),
                            user("u", "a"), user("u/b", "c"), user("+", "#"), user("", "")};
    for (size_t i = 0; i < sizeof(SOUND_FILES) / sizeof(SOUND_FILES[0]); i++) {
        struct acl *a = compile(SOUND_FILES[i]);
        size_t trues = 0;
        for (size_t j = 0; j < sizeof(who) / sizeof(who[0]); j++)
            for (size_t k = 0; k < sizeof(SOUND_FILTERS) / sizeof(SOUND_FILTERS[0]); k++)
                trues += check_sound(a, who[j], SOUND_FILTERS[k]);
        cr_assert_geq(trues, 3, "file %zu: read_all true only %zu times", i, trues);
        acl_destroy(a);
    }
}

/* ------------------------------------------------------------------ */
/* Bounded walks                                                       */
/* ------------------------------------------------------------------ */

/* A filter of TOPIC_LEVELS_MAX `+` levels against a trie that is wide at
 * every level: each node is visited at most once, so this finishes in
 * about one pass over the trie (the test's only bound is its timeout). */
Test(acl, many_plus_levels_against_a_wide_deep_trie_finish)
{
    size_t cap = 4u * 1024 * 1024;
    char *text = malloc(cap);
    size_t o = 0;
    /* 64 siblings at every one of 20 levels along a spine, each sibling
     * leading to a rule 120 levels deep that ends in a level no filter
     * here names, plus `+` branches everywhere. */
    for (int depth = 0; depth < 20; depth++)
        for (int sib = 0; sib < 64; sib++) {
            o += (size_t)snprintf(text + o, cap - o, "topic read ");
            for (int d = 0; d < depth; d++)
                o += (size_t)snprintf(text + o, cap - o, "s/");
            o += (size_t)snprintf(text + o, cap - o, "k%d", sib);
            for (int d = depth + 1; d < 120; d++)
                o += (size_t)snprintf(text + o, cap - o, "/%s", d % 3 ? "+" : "z");
            o += (size_t)snprintf(text + o, cap - o, "/end\n");
        }
    struct acl *a = compile(text);
    char filter[TOPIC_LEVELS_MAX * 2 + 8];
    size_t f = 0;
    for (unsigned i = 0; i < TOPIC_LEVELS_MAX; i++)
        f += (size_t)snprintf(filter + f, sizeof(filter) - f, i ? "/+" : "+");
    /* 128 levels: deeper than every rule (121), so nothing intersects. */
    for (int i = 0; i < 100; i++)
        cr_assert_not(sub(a, anon("c"), filter));
    /* 121 levels: the rules' depth, so it does. */
    filter[121 * 2 - 1] = '\0';
    cr_assert(sub(a, anon("c"), filter));
    acl_destroy(a);
    free(text);
}

Test(acl, deep_topics_and_filters_at_the_level_bound)
{
    char t[TOPIC_LEVELS_MAX * 2 + 8];
    size_t o = 0;
    for (unsigned i = 0; i < TOPIC_LEVELS_MAX; i++)
        o += (size_t)snprintf(t + o, sizeof(t) - o, i ? "/x" : "x");
    char text[sizeof(t) + 32];
    snprintf(text, sizeof(text), "topic readwrite %s\n", t);
    struct acl *a = compile(text);
    cr_assert(rd(a, anon("c"), t));
    cr_assert(sub(a, anon("c"), t));
    cr_assert(wr(a, anon("c"), t));
    /* One level more is no topic the broker takes: refused, not overrun. */
    strcat(t, "/x");
    cr_assert_not(rd(a, anon("c"), t));
    cr_assert_not(sub(a, anon("c"), t));
    acl_destroy(a);
}
