/*
 * Pre-shared keys for TLS (psk_file): mosquitto's format, one
 * "identity:hexkey" per line; '#' starts a comment line, blank lines are
 * skipped, CRLF line ends are taken. The identity is what a PSK client
 * names itself in the handshake (and, with use_identity_as_username, the
 * username the ACL sees); the key is hex digits, 16 to PSK_KEY_MAX bytes.
 *
 * A key shorter than 16 bytes (32 hex digits) is refused: a man in the
 * middle who runs one handshake with a client can test every key of a
 * small space offline, so a short key is no authentication. mosquitto
 * takes any length; an operator moving from it gets the line and the
 * length to fix.
 *
 * Pure and thread-safe once built: the table is immutable and shared by
 * the shards' TLS contexts; psk_free wipes the keys.
 */
#ifndef RINGMQ_PSK_H
#define RINGMQ_PSK_H

#include <stddef.h>
#include <stdint.h>

/* The largest psk_file read. */
#define PSK_FILE_MAX (16u * 1024u * 1024u)
/* TLS's limits (RFC 4279: identities up to 2^16 bytes, but every stack
 * holds 128 at most; keys up to 64 bytes here, 512 bits). */
#define PSK_IDENTITY_MAX 128u
#define PSK_KEY_MIN      16u
#define PSK_KEY_MAX      64u

struct psk_table;

/* Parses a psk_file's bytes, data[0..len) (NULL when len is 0), named name
 * for messages. NULL with err holding "name:line: what" (or "name: what")
 * when a line is not "identity:hexkey", an identity is empty, longer than
 * PSK_IDENTITY_MAX, holds a NUL or control byte, or is given twice, a key
 * is not an even number of hex digits or outside PSK_KEY_MIN..PSK_KEY_MAX
 * bytes, or the file has no key at all. Messages never hold key digits. */
struct psk_table *psk_parse(const char *name, const uint8_t *data, size_t len, char *err,
                            size_t errlen);
void psk_free(struct psk_table *t);
size_t psk_count(const struct psk_table *t);

/* The key of an identity (NUL-terminated, as TLS hands it), or NULL.
 * O(log n). */
const uint8_t *psk_find(const struct psk_table *t, const char *identity, size_t *key_len);

#endif
