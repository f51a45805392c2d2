/*
 * mosquitto's password file, read as mosquitto 2.0 reads it, plus one form
 * of ringmq's own. One "username:hash" per line, the hash one of:
 *
 *   $6$<base64 salt>$<base64 SHA-512(password || salt)>            (1.x)
 *   $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>       (2.0)
 *   SCRAM-SHA-512$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
 *
 * The last is RFC 5803's form (what OpenLDAP and Cyrus store for SCRAM),
 * written by `ringmq --scram-entry USER` (passwd_scram_line below), with
 *   SaltedPassword = PBKDF2-HMAC-SHA512(password, salt, iterations, 64)
 *   StoredKey      = SHA-512(HMAC-SHA512(SaltedPassword, "Client Key"))
 *   ServerKey      = HMAC-SHA512(SaltedPassword, "Server Key")
 * It is the only form SCRAM-SHA-512 works from, and it serves plain CONNECT
 * passwords too. It exists so that the file holds nothing that logs in by
 * itself: StoredKey verifies a SCRAM proof but cannot make one (that takes
 * ClientKey, which only the password gives), whereas a $7$ hash is
 * SaltedPassword itself, so serving SCRAM from it would let anyone who
 * reads the file log in as every $7$ user without knowing a password.
 *
 * Parsed once, from the bytes the main thread read, into an immutable
 * table that shard threads read without locks (it hangs off the security
 * snapshot). Plain-text passwords are refused with a hint to run
 * `mosquitto_passwd -U`.
 */
#ifndef RINGMQ_PASSWD_H
#define RINGMQ_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on what a file may ask for. A check costs its iteration count in
 * HMAC-SHA512 rounds on the shard that runs it: at the ceiling about 40-45 ms
 * of one core (measured with BoringSSL on a 2020s x86 server core; RFC
 * 7677's 4096 is about 2 ms, mosquitto_passwd's 101 about 50 us), and every
 * CONNECT with a password, or for an unknown name (passwd_check_decoy), pays
 * it. Above this a file could stall a shard for most of a second per
 * CONNECT. */
#define PASSWD_ITERATIONS_MAX 100000u
#define PASSWD_SALT_MAX       64u
#define PASSWD_USER_MAX       65535u
/* What `ringmq --scram-entry` writes: RFC 7677's minimum iteration count and
 * a 16-byte salt. SCRAM offers the same to names it does not know when the
 * file has no SCRAM entry to copy. */
#define PASSWD_SCRAM_ITERATIONS_DEFAULT 4096u
#define PASSWD_SCRAM_SALT_LEN           16u
/* SHA-512's output: a $6$/$7$ hash, StoredKey, ServerKey, the decoy key. */
#define PASSWD_KEY_LEN 64u
/* The largest password file passwd_parse takes, and so what its reader
 * reads at most. A file of 100,000 users is about 15 MiB; anything past
 * this is not a password file. */
#define PASSWD_FILE_MAX (64u * 1024u * 1024u)

enum passwd_kind {
    PASSWD_SHA512 = 6,        /* $6$ */
    PASSWD_PBKDF2_SHA512 = 7, /* $7$ */
    PASSWD_SCRAM_SHA512 = 8,  /* SCRAM-SHA-512$: StoredKey and ServerKey */
};

struct passwd_entry {
    const uint8_t *user; /* not NUL-terminated */
    size_t user_len;
    uint8_t kind;        /* enum passwd_kind */
    uint32_t iterations; /* $7$ and SCRAM only */
    uint8_t salt[PASSWD_SALT_MAX];
    size_t salt_len;
    uint8_t hash[PASSWD_KEY_LEN];       /* $6$, $7$: the hash; SCRAM: StoredKey */
    uint8_t server_key[PASSWD_KEY_LEN]; /* SCRAM only, else zero */
};

struct passwd_db;

/* Parses a password file's bytes, data[0..len) (data may be NULL when len
 * is 0), into a table; the caller reads the file (security/ makes no
 * system call) and keeps data, which is only read. name says where the
 * bytes came from and is used only in messages. NULL on failure, with
 * "name:line: what is wrong" (or "name: what is wrong" for the bytes as a
 * whole) in err; err never holds a password or hash. Stricter than
 * mosquitto, which skips or drops what it cannot use: a line without ':',
 * an empty, duplicate or non-UTF-8 name, a second ':' (other than the two
 * inside a SCRAM-SHA-512 hash), an unknown or garbled hash, bad or
 * unpadded base64, an empty salt or one over PASSWD_SALT_MAX, a hash or key
 * that is not 64 bytes, iterations outside 1..PASSWD_ITERATIONS_MAX, a
 * plain-text password, a line over 65 KiB or more than PASSWD_FILE_MAX
 * bytes all fail the parse. '#' in the first column and blank lines are
 * skipped; blanks around name and hash ('\r' too) are trimmed. Pure, any
 * thread, but it sorts and hashes the whole table: call it where the file
 * is read (the main thread), not from a shard. */
struct passwd_db *passwd_parse(const char *name, const uint8_t *data, size_t len, char *err,
                               size_t errlen);
void passwd_free(struct passwd_db *db);
size_t passwd_count(const struct passwd_db *db);

/* The entry for a username, or NULL. O(log n), any thread. */
const struct passwd_entry *passwd_find(const struct passwd_db *db, const uint8_t *user, size_t len);

/* Does this password match the entry? Constant time in the comparison. A
 * $7$ entry costs its iteration count in HMAC-SHA512 rounds; a SCRAM entry
 * the same plus two more hashes (ClientKey, then StoredKey). Any thread. */
bool passwd_check(const struct passwd_entry *e, const uint8_t *password, size_t len);

/* Always false, after the work of passwd_check on a typical entry of db: the
 * most common kind among its entries, and among those the most common
 * iteration count and salt length (ties go to the larger). Call it where a
 * CONNECT has no entry to check (an unknown name) or no password to check,
 * so that the answer takes as long as a wrong password for a real user and
 * the time does not tell which names exist. A file that mixes kinds or
 * counts is only disguised as its majority. No work for a NULL or empty db.
 * Any thread. */
bool passwd_check_decoy(const struct passwd_db *db, const uint8_t *password, size_t len);

/* The entry passwd_check_decoy checks, copied by value into out with its
 * user NULL, for a check that runs after db may be gone (another thread,
 * past a reload): passwd_check(out, ...) then does the decoy's work. False,
 * out untouched, when there is no work to imitate (NULL or empty db). Any
 * thread. */
bool passwd_decoy_copy(const struct passwd_db *db, struct passwd_entry *out);

/* How SCRAM dresses up a name it has no SCRAM entry for, so that its
 * server-first message looks like a real one's. All any thread; db may be
 * NULL.
 *
 * passwd_scram_iterations and passwd_scram_salt_len: the most common
 * iteration count and salt length among db's SCRAM entries (ties go to the
 * larger), PASSWD_SCRAM_ITERATIONS_DEFAULT and PASSWD_SCRAM_SALT_LEN when it
 * has none.
 *
 * passwd_decoy_key: 64 secret bytes to derive made-up salts from, or NULL
 * for a NULL db. They come from the table's content (HMAC-SHA512 under a
 * fixed label, keyed by SHA-512 over the sorted entries), so they stay the
 * same across restarts and reloads of the same entries, and a made-up salt
 * does not change while real ones stay put. Comments, blank lines, order and
 * line endings do not change them; changing, adding or removing any entry
 * does, so made-up salts seen before and after such an edit differ while
 * untouched users' salts do not. Only someone who can read the file can
 * compute them. Valid while db is. */
uint32_t passwd_scram_iterations(const struct passwd_db *db);
size_t passwd_scram_salt_len(const struct passwd_db *db);
const uint8_t *passwd_decoy_key(const struct passwd_db *db);

/* Writes a complete password file line for user, "user:SCRAM-SHA-512$...",
 * with the salt the caller drew (PASSWD_SCRAM_SALT_LEN random bytes: the
 * caller draws them, security/ makes no syscalls), then a NUL
 * (no newline) into out. Returns the line's length without the NUL, or -1
 * when the name is one passwd_parse would refuse or read as another (empty,
 * over PASSWD_USER_MAX bytes, not UTF-8, holding ':', '\r' or '\n', blanks
 * at either end, a leading '#' or byte order mark), when iterations is
 * outside 1..PASSWD_ITERATIONS_MAX, when out cannot hold the line and its
 * NUL, or when salt_len is outside 1..PASSWD_SALT_MAX. The password may be any bytes (pw may be
 * NULL when pwlen is 0). Costs iterations HMAC-SHA512 rounds; any thread. */
int passwd_scram_line(const uint8_t *user, size_t ulen, const uint8_t *pw, size_t pwlen,
                      const uint8_t *salt, size_t salt_len, uint32_t iterations, char *out,
                      size_t outlen);

#endif
