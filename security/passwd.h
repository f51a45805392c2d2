/*
 * mosquitto's password file, read as mosquitto 2.0 and 2.1 read it, plus
 * one form of ringmq's own. One "username:hash" per line, the hash one of:
 *
 *   $6$<base64 salt>$<base64 SHA-512(password || salt)>            (1.x)
 *   $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>       (2.0)
 *   $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>      (2.1)
 *   SCRAM-SHA-512$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
 *
 * The argon2id form is the PHC string format (RFC 9106's Argon2id, version
 * 0x13), salt and hash in base64 without padding, exactly as libargon2's
 * argon2id_hash_encoded writes it; mosquitto 2.1's mosquitto_passwd writes
 * m=47104,t=1,p=1 with 64-byte salts and 64-byte hashes
 * (libcommon/password_common.c: MOSQ_ARGON2_M/T/P, HASH_LEN).
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
/* Bounds on what an argon2id entry may ask for, checked at load. A check
 * allocates m KiB and makes t passes over it on the auth worker that runs
 * it (one thread: p only splits the memory into lanes, it starts no
 * threads), about 1 ms per MiB per pass (measured with Debian's libargon2
 * 20171227 on one core of a 2-core Xeon VM): mosquitto 2.1's m=47104,t=1
 * 50 ms, OWASP's m=19456,t=2 28 ms, RFC 9106's second recommendation
 * (64 MiB, t=3, p=4) 160 ms, the ceilings (128 MiB, t=2) 250 ms; parsing
 * costs nothing, only a check does. Each auth_threads worker
 * holds at most one check's memory at a time, so the memory ceiling times
 * auth_threads bounds what password checks can hold at once (128 MiB with
 * the default single worker). The ceilings leave room for every OWASP and
 * RFC 9106 setting except RFC 9106's first (2 GiB), which no broker
 * checking a password per CONNECT can afford. Salts below 8 bytes are
 * refused as libargon2 refuses them; hashes below 16 bytes because a
 * shorter tag lets a wrong password match by chance too often. */
#define PASSWD_ARGON2_MEMORY_KIB_MAX (128u * 1024u) /* m: 128 MiB */
#define PASSWD_ARGON2_TIME_MAX       32u            /* t: passes over the memory */
#define PASSWD_ARGON2_LANES_MAX      64u            /* p */
#define PASSWD_ARGON2_WORK_KIB_MAX   (256u * 1024u) /* m * t: 256 MiB of passes */
#define PASSWD_ARGON2_SALT_MIN       8u             /* up to PASSWD_SALT_MAX */
#define PASSWD_ARGON2_HASH_MIN       16u            /* up to PASSWD_KEY_LEN */
/* What ringmq-passwd writes by default: mosquitto 2.1's argon2id
 * parameters, which are also the first of OWASP's argon2id settings
 * (46 MiB, one pass, one lane), with mosquitto 2.1's 64-byte salt and hash,
 * so an entry looks the same whichever of the two tools wrote it. */
#define PASSWD_ARGON2_MEMORY_KIB_DEFAULT 47104u
#define PASSWD_ARGON2_TIME_DEFAULT       1u
#define PASSWD_ARGON2_LANES_DEFAULT      1u
#define PASSWD_ARGON2_SALT_LEN           64u
#define PASSWD_ARGON2_HASH_LEN           64u
/* What ringmq-passwd writes for -H sha512-pbkdf2 and -H sha512: 12-byte
 * salts, the only length mosquitto 2.0 reads (2.1 reads 12 and 64), and for
 * $7$ RFC 7677's minimum iteration count (about 2 ms; mosquitto 2.0 writes
 * 101, 2.1 writes 1000). */
#define PASSWD_MOSQUITTO_SALT_LEN        12u
#define PASSWD_PBKDF2_ITERATIONS_DEFAULT 4096u
/* What `ringmq --scram-entry` writes: RFC 7677's minimum iteration count and
 * a 16-byte salt. SCRAM offers the same to names it does not know when the
 * file has no SCRAM entry to copy. */
#define PASSWD_SCRAM_ITERATIONS_DEFAULT 4096u
#define PASSWD_SCRAM_SALT_LEN           16u
/* SHA-512's output: a $6$/$7$ hash, StoredKey, ServerKey, the decoy key;
 * and the longest argon2id hash. */
#define PASSWD_KEY_LEN 64u
/* The largest password file passwd_parse takes, and so what its reader
 * reads at most. A file of 100,000 users is about 15 MiB; anything past
 * this is not a password file. */
#define PASSWD_FILE_MAX (64u * 1024u * 1024u)

enum passwd_kind {
    PASSWD_SHA512 = 6,        /* $6$ */
    PASSWD_PBKDF2_SHA512 = 7, /* $7$ */
    PASSWD_SCRAM_SHA512 = 8,  /* SCRAM-SHA-512$: StoredKey and ServerKey */
    PASSWD_ARGON2ID = 9,      /* $argon2id$ */
};

struct passwd_entry {
    const uint8_t *user; /* not NUL-terminated */
    size_t user_len;
    uint8_t kind; /* enum passwd_kind */
    /* $7$ and SCRAM: PBKDF2 iterations; argon2id: t, its passes over the
     * memory; $6$: 0. */
    uint32_t iterations;
    uint32_t memory_kib; /* argon2id only: m, else 0 */
    uint32_t lanes;      /* argon2id only: p, else 0 */
    uint8_t salt[PASSWD_SALT_MAX];
    size_t salt_len;
    uint8_t hash[PASSWD_KEY_LEN]; /* $6$, $7$, argon2id: the hash; SCRAM: StoredKey */
    /* The bytes of hash in use: PASSWD_KEY_LEN, or an argon2id hash's
     * length (PASSWD_ARGON2_HASH_MIN..PASSWD_KEY_LEN, the rest zero).
     * passwd_check reads it for argon2id entries only. */
    size_t hash_len;
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
 * bytes all fail the parse. An argon2id entry fails it for any field that
 * is not what libargon2 writes (a variant other than argon2id, a version
 * other than v=19, parameters not exactly "m=<d>,t=<d>,p=<d>" in decimal
 * without leading zeros, padded or non-canonical base64) and for
 * parameters outside the PASSWD_ARGON2_* bounds: m over the memory
 * ceiling or under 8 KiB per lane, t or p outside 1..their ceiling, m * t
 * over the work ceiling, a salt outside PASSWD_ARGON2_SALT_MIN..
 * PASSWD_SALT_MAX bytes, a hash outside PASSWD_ARGON2_HASH_MIN..
 * PASSWD_KEY_LEN bytes. Parsing hashes nothing: an argon2id line costs
 * nothing until a password is checked against it. '#' in the first column and blank lines are
 * skipped; blanks around name and hash ('\r' too) are trimmed. Pure, any
 * thread, but it sorts and hashes the whole table: call it where the file
 * is read (the main thread), not from a shard. */
struct passwd_db *passwd_parse(const char *name, const uint8_t *data, size_t len, char *err,
                               size_t errlen);
void passwd_free(struct passwd_db *db);
size_t passwd_count(const struct passwd_db *db);

/* The entry for a username, or NULL. O(log n), any thread. */
const struct passwd_entry *passwd_find(const struct passwd_db *db, const uint8_t *user, size_t len);

/* Does this password match the entry? Constant time in the comparison
 * (CRYPTO_memcmp over the whole hash). A $7$ entry costs its iteration
 * count in HMAC-SHA512 rounds; a SCRAM entry the same plus two more hashes
 * (ClientKey, then StoredKey); an argon2id entry m KiB of memory (malloc'd
 * and wiped inside libargon2 for the length of the call) and t passes over
 * it, on the calling thread alone. False as well when argon2id cannot get
 * its memory. Any thread. */
bool passwd_check(const struct passwd_entry *e, const uint8_t *password, size_t len);

/* Always false, after the work of passwd_check on a typical entry of db: the
 * most common kind among its entries (ties go to the costlier: argon2id,
 * SCRAM, $7$, $6$), and among those the most common iteration count and
 * salt length (ties go to the larger). For argon2id, whose cost is several
 * numbers at once, the decoy copies the whole of the most common
 * (m, t, p, salt length, hash length) among the argon2id entries (ties go
 * to the larger m * t), so it always costs what one real entry costs and
 * stays inside the bounds. Call it where a
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

/* Would passwd_parse read "user:..." back under this name? False for the
 * names passwd_scram_line refuses (above) and for any name holding a
 * control character (C0 or DEL), which mosquitto_passwd refuses too. Any
 * thread. */
bool passwd_user_valid(const uint8_t *user, size_t len);

/* How passwd_hash_line hashes. passwd_hash_spec_default fills in what
 * ringmq-passwd writes (the *_DEFAULT values above) and returns false for
 * a kind it cannot write. */
struct passwd_hash_spec {
    uint8_t kind;        /* enum passwd_kind */
    uint32_t iterations; /* $7$, SCRAM: PBKDF2 iterations; argon2id: t; $6$: unused */
    uint32_t memory_kib; /* argon2id only: m */
    uint32_t lanes;      /* argon2id only: p */
    uint32_t hash_len;   /* argon2id only: the hash's length in bytes */
    uint32_t salt_len;   /* the salt length the caller should draw */
};
bool passwd_hash_spec_default(uint8_t kind, struct passwd_hash_spec *out);

/* Writes a complete password file line "user:<hash>" of the spec's kind
 * for this password, then a NUL (no newline), into out, with the salt the
 * caller drew (security/ makes no syscalls: net/ draws it with RAND_bytes).
 * Returns the line's length without the NUL, or -1 when the name is one
 * passwd_user_valid refuses, when the spec is outside what passwd_parse
 * loads (an unknown kind, iterations outside 1..PASSWD_ITERATIONS_MAX, an
 * argon2id parameter outside the PASSWD_ARGON2_* bounds), when salt_len is
 * outside what passwd_parse loads for the kind (argon2id:
 * PASSWD_ARGON2_SALT_MIN..PASSWD_SALT_MAX, others 1..PASSWD_SALT_MAX), when
 * out cannot hold the line and its NUL, or when hashing fails (argon2id out
 * of memory). What it writes, passwd_parse reads back as an entry that
 * passwd_check accepts the password for. The password may be any bytes (pw
 * may be NULL when pwlen is 0). Costs one passwd_check of the entry; any
 * thread. */
int passwd_hash_line(const uint8_t *user, size_t ulen, const uint8_t *pw, size_t pwlen,
                     const struct passwd_hash_spec *spec, const uint8_t *salt, size_t salt_len,
                     char *out, size_t outlen);

#endif
