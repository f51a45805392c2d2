/*
 * mosquitto's password file, read as mosquitto 2.0 reads it: one
 * "username:hash" per line, hashes as mosquitto_passwd writes them:
 *
 *   $6$<base64 salt>$<base64 SHA-512(password || salt)>            (1.x)
 *   $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>       (2.0)
 *
 * Loaded once into an immutable table that shard threads read without
 * locks (it hangs off the security snapshot). Plain-text passwords are
 * refused with a hint to run `mosquitto_passwd -U`.
 */
#ifndef RINGMQ_PASSWD_H
#define RINGMQ_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on what a file may ask for: a huge iteration count would stall a
 * shard on every CONNECT. */
#define PASSWD_ITERATIONS_MAX 1000000u
#define PASSWD_SALT_MAX       64u
#define PASSWD_USER_MAX       65535u

enum passwd_kind {
    PASSWD_SHA512 = 6,        /* $6$ */
    PASSWD_PBKDF2_SHA512 = 7, /* $7$: also SCRAM-SHA-512's SaltedPassword */
};

struct passwd_entry {
    const uint8_t *user; /* not NUL-terminated */
    size_t user_len;
    uint8_t kind;        /* enum passwd_kind */
    uint32_t iterations; /* $7$ only */
    uint8_t salt[PASSWD_SALT_MAX];
    size_t salt_len;
    uint8_t hash[64];
};

struct passwd_db;

/* Loads path. NULL on failure, with "path:line: what is wrong" (or
 * "path: what is wrong" for the file as a whole) in err; err never holds a
 * password or hash. Stricter than mosquitto, which skips or drops what it
 * cannot use: a line without ':', an empty, duplicate or non-UTF-8 name, a
 * second ':', an unknown or garbled hash, bad base64, an empty salt or one
 * over PASSWD_SALT_MAX, a hash that is not 64 bytes, iterations outside
 * 1..PASSWD_ITERATIONS_MAX, a plain-text password, a line over 65 KiB or a
 * file over 64 MiB all fail the load. '#' in the first column and blank
 * lines are skipped; blanks around name and hash ('\r' too) are trimmed.
 * Reads the file: call it from the config thread, not from a shard. */
struct passwd_db *passwd_load(const char *path, char *err, size_t errlen);
void passwd_free(struct passwd_db *db);
size_t passwd_count(const struct passwd_db *db);

/* The entry for a username, or NULL. O(log n), any thread. */
const struct passwd_entry *passwd_find(const struct passwd_db *db, const uint8_t *user, size_t len);

/* The iteration count most $7$ entries of db use (a default when there are
 * none, or db is NULL): SCRAM gives it to made-up entries for unknown users
 * so they look like real ones. */
uint32_t passwd_scram_iterations(const struct passwd_db *db);

/* Does this password match the entry? Constant time in the comparison; a
 * $7$ entry costs its iteration count in HMAC-SHA512 rounds. */
bool passwd_check(const struct passwd_entry *e, const uint8_t *password, size_t len);

#endif
