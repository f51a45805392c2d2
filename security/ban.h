/*
 * Bans (ban_file): client ids, usernames and address ranges the broker
 * refuses, each for ever or until a time, compiled into an immutable list
 * asked "is this one banned now?".
 *
 * The file, one ban per line:
 *
 *   clientid ID      [EXPIRY] [# comment]
 *   username NAME    [EXPIRY] [# comment]
 *   ip CIDR          [EXPIRY] [# comment]
 *
 * Words are separated by spaces or tabs; blanks at both ends of a line are
 * ignored, and so is one '\r' before its '\n' (CRLF files). A line that is
 * blank or whose first non-blank byte is '#' is ignored; after the last
 * field, a word starting with '#' starts a comment to the end of the line.
 * Keywords are lower case.
 *
 * ID and NAME are the second word, compared byte for byte with what the
 * client sends (case matters). A bare word holds no blank and no '"', and
 * is taken as it is (a '#' or '\' in it included: `clientid #1' bans the id
 * "#1"). An id or name with blanks or '"' is written in double quotes, in
 * which \" stands for '"' and \\ for '\', and every other byte (a tab
 * included) stands for itself: `clientid "kitchen sensor \"2\""'. No other
 * escape exists: a backslash before anything else is an error, so a name
 * is never read two ways. An id or name is 1 to BAN_NAME_MAX bytes of
 * UTF-8 without U+0000 (what the broker can receive; so an id holding a
 * control byte cannot be banned by id). An empty one is refused: the
 * broker gives a client that sends an empty id an id of its own, so ""
 * would ban nobody. CIDR is one bare word of netrule.h's strict text
 * (`10.0.0.0/8', `192.0.2.7', `2001:db8::/32'); an IPv4-mapped range bans
 * the IPv4 addresses.
 *
 * EXPIRY is a UTC time in exactly the form YYYY-MM-DDThh:mm:ssZ
 * (`2026-12-31T23:59:59Z', upper-case T and Z, years 1970..9999, no leap
 * second, no fraction, no offset): the ban holds while the time is before
 * it and is lifted when that second begins. A date alone is refused, since
 * "until 2026-12-31" reads as the start of that day to some and its end to
 * others; the message suggests the explicit form. Without EXPIRY a ban
 * never ends. A ban whose time has passed is kept and simply never
 * matches (the caller compares with its clock; this module has none).
 *
 * The same id, name or range given twice (or ranges that overlap) is not
 * an error: the latest expiry counts, never beating any time. A tool that
 * appends lines to extend a ban cannot make the file unreadable.
 *
 * Every other malformed line refuses the whole file with
 * "path:line: what is wrong": an unknown keyword, a missing or extra word,
 * an unterminated quote, a bad escape, text right after a closing quote,
 * a '"' inside a bare word, a NUL or other control byte (tab aside)
 * anywhere in the line (comments and quotes included), an id or name that
 * is empty, too long or not UTF-8, a CIDR netrule_parse_cidr refuses, an
 * expiry that is not the form above or no real time, a line over
 * BAN_LINE_MAX bytes, more than BAN_ENTRIES_MAX bans, a file over
 * BAN_FILE_MAX bytes.
 *
 * Costs: ban_list_create is O(file size) plus O(n log n) for the ranges.
 * ban_clientid and ban_username hash the name once (SipHash-2-4 under the
 * caller's key, so nobody who can get ids into the file can make their
 * probe chains long) and probe an open-addressing table kept at most half
 * full; ban_ip is one binary search (netrule_until): O(log n).
 *
 * Threads: ban_list_create and ban_list_destroy run where the snapshot is
 * built (the main thread); the list is never written in between, so every
 * shard may query it at once without locks. Pure: no system call, no
 * clock, no global state.
 */
#ifndef RINGMQ_BAN_H
#define RINGMQ_BAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netrule.h"

/* The largest ban_file taken: a million bans of typical length. */
#define BAN_FILE_MAX (64u * 1024u * 1024u)
/* An id or name: an MQTT string. */
#define BAN_NAME_MAX 65535u
/* The longest line: the longest name quoted with every byte escaped, its
 * keyword, an expiry, blanks and a short comment. */
#define BAN_LINE_MAX (2u * BAN_NAME_MAX + 1024u)
/* Bans of all three kinds together in one file. */
#define BAN_ENTRIES_MAX 1000000u
/* A ban that never ends (ban_clientid_until and friends). */
#define BAN_FOREVER NETRULE_FOREVER

struct ban_list;

/* Compiles a ban_file's bytes, bytes[0..len) (NULL when len is 0), named
 * path in messages. hash_key is 16 random bytes the caller draws once per
 * list (net/ has the random source; tests may fix it); only read during
 * the call. The caller may free bytes after the call. NULL on failure,
 * with "path:line: what is wrong" (or "path: what is wrong" for the file
 * as a whole, or for running out of memory) in err, NUL-terminated and
 * cut to errlen. A file with no ban is valid and bans nothing. */
struct ban_list *ban_list_create(const uint8_t *bytes, size_t len, const char *path,
                                 const uint64_t hash_key[2], char *err, size_t errlen);
void ban_list_destroy(struct ban_list *list);

/* Ban lines taken (duplicates counted once per line). */
size_t ban_list_count(const struct ban_list *list);

/* The queries. now_s is the caller's clock: seconds since the Unix epoch,
 * UTC (CLOCK_REALTIME). Each says whether a ban holds at now_s, that is,
 * its expiry is after now_s or it has none. list may be NULL (no
 * ban_file: nothing banned). Any thread, no allocation. */

/* Is this client id (bytes as the client sent them) banned? */
bool ban_clientid(const struct ban_list *list, const uint8_t *id, size_t len, uint64_t now_s);
/* Is this username banned? (Ask only for a client that sent one.) */
bool ban_username(const struct ban_list *list, const uint8_t *name, size_t len, uint64_t now_s);
/* Is this address banned? Build a with netrule_addr_from_bytes, so that an
 * IPv4-mapped peer is checked against the IPv4 bans. */
bool ban_ip(const struct ban_list *list, const struct netrule_addr *a, uint64_t now_s);

/* The time the ban holding now ends, for logs: seconds since the epoch,
 * BAN_FOREVER for none, 0 when nothing bans it (or it has expired). */
uint64_t ban_clientid_until(const struct ban_list *list, const uint8_t *id, size_t len,
                            uint64_t now_s);
uint64_t ban_username_until(const struct ban_list *list, const uint8_t *name, size_t len,
                            uint64_t now_s);
uint64_t ban_ip_until(const struct ban_list *list, const struct netrule_addr *a, uint64_t now_s);

#endif
