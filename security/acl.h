/*
 * The ACL engine: mosquitto 2.0's acl_file, compiled into tries and asked
 * four questions (may this client publish here, read this message,
 * subscribe to this filter, read everything this subscription matches).
 *
 * The file, as mosquitto reads it, one line at a time:
 *
 *   topic [read|write|readwrite|deny] TOPIC      a rule for the current block
 *   user NAME                                    starts NAME's block
 *   pattern [read|write|readwrite|deny] PATTERN  a rule for every client
 *
 * Topic lines before the first user line are the block of clients without
 * a username; those after `user NAME` apply to clients whose username is
 * NAME (a name given twice adds to the same block). Pattern lines apply to
 * every client wherever they stand, with `%u` matching a topic level equal
 * to the client's username and `%c` one equal to its client id. The access
 * word may be left out (readwrite) unless the topic holds a space: after
 * the keyword, the first word is the access word if more follows, and the
 * rest of the line is the topic, spaces included (so is a user name).
 * Lines are split on '\n'; blanks (C isspace, so a '\r' too) are trimmed at
 * both ends of a line and of a topic or name; words are separated by
 * spaces; a line whose first non-blank byte is '#' is a comment, and there
 * are no comments after a rule. Keywords and access words are lower case.
 *
 * Stricter than mosquitto, which loads some of these or reads them another
 * way; each is an error with "path:line: what" and the file is refused:
 * an unknown keyword or access word; a keyword without a topic or name,
 * or with only an access word (mosquitto takes `topic read` as a rule for
 * the topic "read"; write `topic readwrite read` for that); a topic that
 * is not a valid MQTT filter (`#` other than as the whole last level, `+`
 * other than as a whole level, not UTF-8, longer than TOPIC_LEN_MAX bytes
 * or more than TOPIC_LEVELS_MAX levels: no topic could match it); in a
 * pattern, `%u` or `%c` inside a level (`a/x%u`: mosquitto would splice
 * the name into the level); in a topic line, a level that is exactly `%u`
 * or `%c` (mosquitto takes it literally, which is never what was meant:
 * use `pattern`); a user name that is not UTF-8 or longer than
 * ACL_NAME_MAX bytes; a NUL byte anywhere; a line over ACL_LINE_MAX bytes;
 * more than ACL_RULES_MAX rules; a file over ACL_FILE_MAX bytes.
 *
 * Decisions. With an ACL, anything no rule allows is denied. The rules
 * that apply to a client are its user block (or the anonymous block when it
 * has no username; a username with no block has none) and the patterns.
 * Among those, a deny rule matching the topic wins over every allow,
 * whatever the order of the lines, and denies reading and writing. Topic
 * matching is MQTT's [MQTT-4.7.2-1]: a rule whose first level is `+`, `#`
 * or a placeholder never matches a topic starting with '$' (but see below
 * for a deny pattern and a name starting with '$'), so `#` grants nothing
 * under `$SYS`; a rule naming `$SYS` as its first level (`$SYS/#`) does.
 *
 * Placeholders. A name fills `%u` or `%c` in an allow pattern only as one
 * safe topic level: a username (or client id) that is empty or holds '+',
 * '#' or '/' fills no placeholder, so every read, write or readwrite
 * pattern using `%u` (or `%c`) simply does not apply to that client. Such
 * a name never widens a rule: mosquitto 1.x spliced it in (CVE-2017-7650),
 * and client ids are the client's choice, so id "victim/inbox" must not
 * get "victim/inbox/#" from `pattern readwrite %c/#`.
 *
 * A deny pattern is never narrowed by a name. For a client whose name is
 * odd for it (empty, holding '+', '#' or '/', starting with '$', or not
 * one the codec would pass), a deny pattern using that placeholder applies
 * with the name substituted as text, as mosquitto 2.0 does: '/' in the
 * name spans levels (`pattern deny %c/secret` denies "a/b/secret" to id
 * "a/b"), an empty name gives an empty level ("/secret" for id ""), and a
 * level holding '+' or '#' becomes that wildcard (a `#` ending the filter
 * there), so the name denies more, not less: with that pattern, id "+" is
 * denied "x/secret" for every x, id "x/+/y" is denied "x/1/y/secret", and
 * id "#" or "a#" everything `#` matches. The substituted filter matches
 * like any filter: a first-level wildcard never matches a '$' topic, a
 * literal first level from the name does (id "$x" is denied "$x/secret";
 * the tries never match a first-level placeholder against a '$' topic,
 * which keeps `pattern read %u/#` from granting $SYS to user "$SYS" but
 * would narrow a deny). When an odd name cannot be substituted, because
 * the result would be longer than TOPIC_LEN_MAX bytes or have more than
 * TOPIC_LEVELS_MAX levels, or the name holds a NUL byte or is not UTF-8
 * (the codec refuses both: a safety net), the pattern denies everything:
 * every decision for that client is false. A name that fills placeholders
 * gets the deny patterns through the tries, with the same answers as
 * substitution would give.
 *
 * A client without a username gets no `%u` pattern at all, deny ones
 * included, as mosquitto skips them; so `pattern deny %u/x` protects
 * nothing from anonymous clients (deny in the anonymous block for that).
 * A client always has a client id (an empty one is odd, above). Patterns
 * without placeholders apply to every client.
 *
 * Costs. acl_create is O(file size) in time and memory. A publish or read
 * decision walks the client's two tries level by level: one hash lookup
 * per level and trie branch (`+`, `%u`, `%c` children add branches), each
 * trie node visited at most once, so it is bounded by the topic's levels
 * and the tries' size, whatever the rules. acl_may_subscribe walks filter
 * levels against the tries in the same way; a `+` level in the filter
 * visits every child of a node, but each node at most once (a node is
 * reached by one path only) and only subtrees that hold a read-allowing
 * rule for this client, so no filter costs more than one pass over the
 * client's tries. No recursion: the walks keep explicit stacks bounded by
 * TOPIC_LEVELS_MAX. When the file has deny patterns with placeholders,
 * every decision scans the names they use once; a client with an odd name
 * also pays one pass over each such pattern that uses it (the pattern's
 * levels plus the name's), at most TOPIC_LEVELS_MAX levels each.
 *
 * Threads: acl_create and acl_destroy run where the file is read (the main
 * thread builds the security snapshot); the compiled ACL is never written
 * after acl_create returns, so any number of shards may ask it questions at
 * once without locks. Pure: no system call, no global state.
 */
#ifndef RINGMQ_ACL_H
#define RINGMQ_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest acl_file taken: about a million rules of typical length. */
#define ACL_FILE_MAX (64u * 1024u * 1024u)
/* The longest line: a topic of TOPIC_LEN_MAX bytes with its keyword,
 * access word and blanks. */
#define ACL_LINE_MAX (64u * 1024u + 1024u)
/* Rules (topic and pattern lines) in one file. */
#define ACL_RULES_MAX 1000000u
/* The longest user name: an MQTT string. */
#define ACL_NAME_MAX 65535u

struct acl;

/* Who asks. Views, only read during the call. The username counts only
 * when has_username (it may then be empty); client_id is the client
 * identifier in use (the one the broker assigned, if it did). listener is
 * the index of the listener the client came in on; not used yet. */
struct acl_who {
    const uint8_t *username;
    size_t username_len;
    bool has_username;
    const uint8_t *client_id;
    size_t client_id_len;
    uint32_t listener;
};

/* Compiles an acl_file's bytes, bytes[0..len) (NULL when len is 0), named
 * path in messages. The caller reads the file and may free the bytes after
 * the call. NULL on failure with "path:line: what is wrong" (or "path:
 * what is wrong" for the file as a whole, or for running out of memory) in
 * err, NUL-terminated and cut to errlen. A file with no rule is valid and
 * denies everything. */
struct acl *acl_create(const uint8_t *bytes, size_t len, const char *path, char *err,
                       size_t errlen);
void acl_destroy(struct acl *acl);

/* Topic and pattern lines taken. */
size_t acl_rule_count(const struct acl *acl);

/* In all four, acl may be NULL (no acl_file: every valid topic and
 * filter allowed, except publishing into $SYS) and who may not. Any
 * thread, no allocation. */

/* May who publish to this topic name? Needs a write or readwrite rule
 * matching it and no deny; false for a name that is not valid
 * (topic_name_valid). Never true for
 * a topic starting with "$SYS", whatever the rules: that tree is the
 * broker's (the same prefix test the engine applies). */
bool acl_may_publish(const struct acl *acl, const struct acl_who *who, const uint8_t *topic,
                     size_t len);

/* May who receive a message published on this topic name? Needs a read or
 * readwrite rule matching it and no deny; false for a name that is not
 * valid. Asked per message at delivery, with the receiver's identity. */
bool acl_may_read(const struct acl *acl, const struct acl_who *who, const uint8_t *topic,
                  size_t len);

/* May who subscribe to this filter? False exactly when
 *   (a) a deny rule that applies to who covers the filter: every topic the
 *       filter matches is matched by the deny rule (`a/#` covers `a/+` and
 *       `a`; `a/+` does not cover `a/#`), or
 *   (b) no read or readwrite rule that applies to who intersects the
 *       filter: no topic matches both (`a/#` and `a` intersect, since `a/#`
 *       matches "a"; `a/+` and `a/b/c` do not; `#` and `$SYS/#` do not);
 * true otherwise, so a broad filter (`#`, `a/+`) is granted when some
 * readable rule lies under it, and deliveries are then filtered message by
 * message with acl_may_read. A false answer promises that no topic under
 * the filter is readable; a true one does not promise that one is (allow
 * `a/b`, deny `a/+`, subscribe `a/#`: granted, nothing delivered). A shared
 * filter `$share/GROUP/F` is judged as F; an invalid filter is refused.
 * A deny pattern substituted for an odd name (above) counts in (a). */
bool acl_may_subscribe(const struct acl *acl, const struct acl_who *who, const uint8_t *filter,
                       size_t len);

/* May who read every topic this subscription filter matches? True only
 * when
 *   (a) one read or readwrite rule that applies to who covers the filter
 *       (as in acl_may_subscribe), and
 *   (b) no deny rule that applies to who intersects it, a deny pattern
 *       substituted for an odd name included (and none that cannot be
 *       substituted applies);
 * then acl_may_read is true for every topic name the filter matches, so
 * the broker may skip the per-message check for this subscription while it
 * holds the same ACL. False does not promise that some topic is refused:
 * rules are judged one at a time (with `topic read a` and `topic read
 * a/+/#`, every topic `a/#` matches is readable, but no one rule covers
 * it). A shared filter `$share/GROUP/F` is judged as F; an invalid filter
 * gives false; with no ACL (acl NULL) a valid filter gives true. Costs as
 * acl_may_subscribe: one pass over the client's tries at most. */
bool acl_may_read_all(const struct acl *acl, const struct acl_who *who, const uint8_t *filter,
                      size_t len);

#endif
