/*
 * ringmq-passwd: mosquitto_passwd's command line for the password files
 * ringmq reads.
 *
 *   ringmq-passwd [-H argon2id|sha512-pbkdf2|sha512|scram-sha-512] [-I n] [-c | -D] FILE USER
 *   ringmq-passwd [-H ...] [-I n] [-c] -b FILE USER PASSWORD
 *   ringmq-passwd -U FILE
 *
 * The same options, messages and exit statuses as mosquitto_passwd (2.0's
 * and 2.1's apps/mosquitto_passwd/mosquitto_passwd.c, get_password.c): 0 on
 * success, 2 when the two passwords typed differ, 1 for everything else.
 * Where it differs, it is on purpose:
 *   - argon2id is the default (as mosquitto 2.1 built with libargon2), with
 *     mosquitto 2.1's parameters (passwd.h's PASSWD_ARGON2_*_DEFAULT);
 *     -H scram-sha-512 writes ringmq's own SCRAM-SHA-512 entries.
 *   - The new file is written beside the old one and renamed over it, after
 *     fsync, never rewritten in place: a crash or a full disk leaves the old
 *     file or the new, never half of one, and the broker's file watcher sees
 *     one change. A new file gets mode 0600; a replaced one keeps its mode
 *     and, where we may, its owner and group.
 *   - The new file must load in ringmq (passwd_parse) before it replaces
 *     the old: the tool never writes a file the broker would refuse, and
 *     says which line is wrong instead.
 *   - Comments and blank lines are kept (mosquitto_passwd calls them a
 *     corrupt file); -U hashes plain-text lines only and keeps the lines
 *     that already hold a hash, where mosquitto_passwd hashes those again.
 *   - Without -b the password is read twice with echo off from a terminal;
 *     from a pipe it is the first line, and a second line, if there is
 *     one, must repeat it. -b warns that the command line is visible to
 *     other local users, and wipes the password from argv once copied.
 *
 * It owns the terminal and the file, so it lives in net/; it hashes through
 * security/passwd.c, drawing the salts with BoringSSL's RAND_bytes here.
 * Single-threaded; the signal handler restores the terminal and removes
 * the temporary file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/limits.h> /* PATH_MAX: <limits.h> would find core/limits.h */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/mem.h>
#include <openssl/rand.h>

#include "file.h"
#include "invariant.h"
#include "passwd.h"

/* MQTT's password field is at most 65535 bytes, and so is mosquitto_passwd's. */
#define PW_MAX 65535u
/* One hashed line: the longest name, ':' and the longest hash. */
#define LINE_MAX_BYTES (PASSWD_USER_MAX + 1024u)
#define EXIT_MISMATCH  2

_Static_assert(PW_MAX <= UINT32_MAX, "libargon2 takes 32-bit password lengths");

struct opts {
    struct passwd_hash_spec spec;
    bool create, batch, delete_user, update, iterations_set;
    const char *path; /* as given */
    const char *user; /* NULL for -U */
    char *password;   /* -b: argv's copy, wiped once read */
};

/* What the signal handler undoes. */
static struct termios saved_term;
static volatile sig_atomic_t term_changed;
static char tmp_path[PATH_MAX];
static volatile sig_atomic_t tmp_live;

static void on_signal(int sig)
{
    if (term_changed)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_term);
    if (tmp_live)
        unlink(tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(FILE *f)
{
    fprintf(f,
            "ringmq-passwd is a tool for managing password files for ringmq (and mosquitto).\n\n"
            "Usage: ringmq-passwd [-H argon2id | -H sha512-pbkdf2 | -H sha512 | -H "
            "scram-sha-512] [-I iterations] [-c | -D] passwordfile username\n"
            "       ringmq-passwd [-H ...] [-I iterations] [-c] -b passwordfile username "
            "password\n"
            "       ringmq-passwd -U passwordfile\n"
            " -b : run in batch mode to allow passing passwords on the command line.\n"
            " -c : create a new password file. This will overwrite existing files.\n"
            " -D : delete the username rather than adding/updating its password.\n"
            " -H : specify the hashing algorithm. Defaults to argon2id (m=%u KiB, t=%u, p=%u,\n"
            "      mosquitto 2.1's), which is recommended. sha512-pbkdf2 is mosquitto 2.0's,\n"
            "      sha512 mosquitto 1.6's; scram-sha-512 is ringmq's, for SCRAM-SHA-512\n"
            "      authentication (and plain passwords).\n"
            " -I : PBKDF2 iterations for sha512-pbkdf2 and scram-sha-512 (default %u).\n"
            " -U : update a plain text password file to use hashed passwords; lines that\n"
            "      hold a hash already are kept.\n"
            "A password is read twice from the terminal without echo, or once from a pipe.\n",
            PASSWD_ARGON2_MEMORY_KIB_DEFAULT, PASSWD_ARGON2_TIME_DEFAULT,
            PASSWD_ARGON2_LANES_DEFAULT, PASSWD_PBKDF2_ITERATIONS_DEFAULT);
}

static bool hash_type(const char *name, struct passwd_hash_spec *spec)
{
    static const struct {
        const char *name;
        uint8_t kind;
    } types[] = {{"argon2id", PASSWD_ARGON2ID},
                 {"sha512-pbkdf2", PASSWD_PBKDF2_SHA512},
                 {"sha512", PASSWD_SHA512},
                 {"scram-sha-512", PASSWD_SCRAM_SHA512}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(name, types[i].name) == 0)
            return passwd_hash_spec_default(types[i].kind, spec);
    return false;
}

/* The options before the file name, as mosquitto_passwd reads them: each
 * on its own, the first other word ends them. Returns the index of the
 * first word after them, or -1 with the message printed. */
static int parse_options(int argc, char **argv, struct opts *o)
{
    unsigned long iterations = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-H") == 0 || strcmp(a, "-I") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "Error: %s argument given but not enough other arguments.\n", a);
                return -1;
            }
            const char *v = argv[++i];
            char *end = NULL;
            if (a[1] == 'H' && !hash_type(v, &o->spec)) {
                fprintf(stderr, "Error: Unknown hash type '%s'\n", v);
                return -1;
            }
            if (a[1] == 'I') {
                errno = 0;
                iterations = strtoul(v, &end, 10);
                if (errno || !*v || *end || iterations < 1 || iterations > PASSWD_ITERATIONS_MAX) {
                    fprintf(stderr, "Error: Number of iterations must be 1 to %u.\n",
                            PASSWD_ITERATIONS_MAX);
                    return -1;
                }
                o->iterations_set = true;
            }
        } else if (strcmp(a, "-b") == 0) {
            o->batch = true;
        } else if (strcmp(a, "-c") == 0) {
            o->create = true;
        } else if (strcmp(a, "-D") == 0) {
            o->delete_user = true;
        } else if (strcmp(a, "-U") == 0) {
            o->update = true;
        } else {
            break;
        }
    }
    if (o->iterations_set) {
        if (o->spec.kind != PASSWD_PBKDF2_SHA512 && o->spec.kind != PASSWD_SCRAM_SHA512) {
            fprintf(stderr, "Error: -I applies to -H sha512-pbkdf2 and -H scram-sha-512 only.\n");
            return -1;
        }
        o->spec.iterations = (uint32_t)iterations;
    }
    return i;
}

/* mosquitto_passwd's refusals, in its words, then what else ringmq would
 * not read back. */
static bool username_ok(const char *user)
{
    size_t len = strlen(user);
    if (len > PASSWD_USER_MAX) {
        fprintf(stderr, "Error: Username must be less than 65536 characters long.\n");
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)user[i] < 0x20 || user[i] == 0x7f) {
            fprintf(stderr, "Error: Username must not contain control characters.\n");
            return false;
        }
    }
    if (strchr(user, ':')) {
        fprintf(stderr, "Error: Username must not contain the ':' character.\n");
        return false;
    }
    if (!passwd_user_valid((const uint8_t *)user, len)) {
        fprintf(stderr, "Error: Username must be non-empty UTF-8, without blanks at either end, a "
                        "leading '#' or a byte order mark.\n");
        return false;
    }
    return true;
}

/* The words after the options: which of them are the file, the user and
 * the password, as mosquitto_passwd counts them. 0, or 1 with the message
 * printed. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    int i = parse_options(argc, argv, o);
    if (i < 0)
        return 1;
    static const char *const clash[][3] = {{"c", "D"}, {"c", "U"}, {"D", "U"}, {"b", "D"}};
    const bool set[][2] = {{o->create, o->delete_user},
                           {o->create, o->update},
                           {o->delete_user, o->update},
                           {o->batch, o->delete_user}};
    for (size_t k = 0; k < sizeof(set) / sizeof(set[0]); k++) {
        if (set[k][0] && set[k][1]) {
            fprintf(stderr, "Error: -%s and -%s cannot be used together.\n", clash[k][0],
                    clash[k][1]);
            return 1;
        }
    }
    int left = argc - i;
    int want = o->update ? 1 : o->batch ? 3 : 2;
    if ((o->update && o->batch) || left != want) {
        if (o->create && left < want && o->batch)
            fprintf(stderr, "Error: -c argument given but password file, username, or password "
                            "missing.\n");
        else if (o->create && left < want)
            fprintf(stderr, "Error: -c argument given but password file or username missing.\n");
        else if (o->delete_user && left < want)
            fprintf(stderr, "Error: -D argument given but password file or username missing.\n");
        else if (o->update)
            fprintf(stderr, "Error: -U argument given but password file missing.\n");
        else
            usage(stdout);
        return 1;
    }
    o->path = argv[i];
    o->user = o->update ? NULL : argv[i + 1];
    if (o->batch) {
        o->password = argv[i + 2];
        fprintf(stderr, "Warning: with -b the password is on the command line, where other "
                        "users of this machine can read it (ps, /proc) and where your shell "
                        "history keeps it.\n");
    }
    return o->user && !username_ok(o->user) ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* The password                                                             */
/* ------------------------------------------------------------------------ */

/* One line into buf (cap >= PW_MAX + 2), its end of line taken off; from a
 * terminal after the prompt, with echo off (and the newline echoed). 0, -1
 * at end of input, -2 for a line over PW_MAX bytes. */
static int read_line(const char *prompt, bool tty, char *buf, size_t cap, size_t *len)
{
    ASSERT(cap >= PW_MAX + 2);
    if (tty) {
        /* Echo off before the prompt, so nothing typed after it shows. */
        if (tcgetattr(STDIN_FILENO, &saved_term) == 0) {
            struct termios quiet = saved_term;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            quiet.c_lflag |= ECHONL;
            term_changed = 1;
            tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
        }
        fputs(prompt, stderr);
        fflush(stderr);
    }
    char *got = fgets(buf, (int)cap, stdin);
    if (term_changed) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_term);
        term_changed = 0;
    }
    if (!got)
        return -1;
    size_t n = strlen(buf);
    bool eol = n > 0 && buf[n - 1] == '\n';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (n > PW_MAX || (!eol && !feof(stdin)))
        return -2;
    *len = n;
    return 0;
}

/* The password, into pw (PW_MAX + 2 bytes): twice from a terminal, or the
 * first line of a pipe (a second line must repeat it). 0, 1 or
 * EXIT_MISMATCH with the message printed. */
static int get_password(char *pw, size_t *len)
{
    static char again[PW_MAX + 2];
    bool tty = isatty(STDIN_FILENO);
    size_t len2 = 0;
    int r = read_line("Password: ", tty, pw, PW_MAX + 2, len);
    int r2 = r == 0 ? read_line("Reenter password: ", tty, again, sizeof(again), &len2) : 0;
    int rc = 0;
    if (r == -2 || r2 == -2) {
        fprintf(stderr, "Error: Password must be less than 65536 characters long.\n");
        rc = 1;
    } else if (r == -1 || (r == 0 && *len == 0) || (tty && (r2 == -1 || len2 == 0))) {
        fprintf(stderr, "Error: Empty password.\n");
        rc = 1;
    } else if (r2 == 0 && (len2 != *len || CRYPTO_memcmp(pw, again, *len) != 0)) {
        fprintf(stderr, "Error: Passwords do not match.\n");
        rc = EXIT_MISMATCH;
    }
    OPENSSL_cleanse(again, sizeof(again));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The new file's text                                                      */
/* ------------------------------------------------------------------------ */

/* The new file, built in memory and bounded as the broker bounds what it
 * reads. */
struct obuf {
    uint8_t *p;
    size_t len, cap;
    bool full; /* over PASSWD_FILE_MAX, or out of memory */
};

static void put(struct obuf *b, const void *data, size_t len)
{
    if (b->full)
        return;
    if (len > PASSWD_FILE_MAX - b->len) {
        b->full = true;
        return;
    }
    if (b->len + len > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + len)
            ncap *= 2;
        uint8_t *np = malloc(ncap);
        if (!np) {
            b->full = true;
            return;
        }
        if (b->p) {
            memcpy(np, b->p, b->len);
            OPENSSL_cleanse(b->p, b->cap);
            free(b->p);
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void obuf_free(struct obuf *b)
{
    if (b->p)
        OPENSSL_cleanse(b->p, b->cap);
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static bool blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void trim(const uint8_t **p, size_t *len)
{
    while (*len > 0 && blank((*p)[0])) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && blank((*p)[*len - 1]))
        (*len)--;
}

/* One line of a password file, split as passwd_parse splits it. */
struct entry {
    const uint8_t *user, *rest; /* trimmed: the name, and what follows its ':' */
    size_t user_len, rest_len;
};

/* 1 for an entry, 0 for a comment or a blank line, -1 for a line without
 * ':' (what mosquitto_passwd calls a corrupt file). */
static int split_entry(const uint8_t *l, size_t len, struct entry *e)
{
    const uint8_t *t = l;
    size_t tlen = len;
    trim(&t, &tlen);
    if ((len > 0 && l[0] == '#') || tlen == 0)
        return 0;
    const uint8_t *colon = memchr(l, ':', len);
    if (!colon)
        return -1;
    e->user = l;
    e->user_len = (size_t)(colon - l);
    e->rest = colon + 1;
    e->rest_len = (size_t)(l + len - e->rest);
    trim(&e->user, &e->user_len);
    trim(&e->rest, &e->rest_len);
    return 1;
}

/* "user:<hash of pw>\n" onto b with a fresh salt. False with the message
 * printed. */
static bool put_hashed(struct obuf *b, const uint8_t *user, size_t ulen, const uint8_t *pw,
                       size_t pwlen, const struct passwd_hash_spec *spec)
{
    static char line[LINE_MAX_BYTES];
    uint8_t salt[PASSWD_SALT_MAX];
    ASSERT(spec->salt_len <= sizeof(salt));
    if (RAND_bytes(salt, spec->salt_len) != 1) {
        fprintf(stderr, "Error: No random bytes for a salt.\n");
        return false;
    }
    int n = passwd_hash_line(user, ulen, pw, pwlen, spec, salt, spec->salt_len, line, sizeof(line));
    if (n < 0) {
        fprintf(stderr, "Error: Unable to hash password.\n");
        return false;
    }
    put(b, line, (size_t)n);
    put(b, "\n", 1);
    OPENSSL_cleanse(line, (size_t)n);
    return true;
}

/* What a file holds, line by line. */
struct text {
    const uint8_t *p;
    size_t len;
};

/* The next line of t from *pos, without its '\n'; false at the end. */
static bool next_line(const struct text *t, size_t *pos, const uint8_t **l, size_t *len)
{
    if (*pos >= t->len)
        return false;
    *l = t->p + *pos;
    const uint8_t *nl = memchr(*l, '\n', t->len - *pos);
    *len = nl ? (size_t)(nl - *l) : t->len - *pos;
    *pos += *len + (nl ? 1 : 0);
    return true;
}

/* How the existing lines change: -D drops the user's, a password replaces
 * the first of them and drops the others, -U hashes plain-text ones. */
struct edit {
    const struct opts *o;
    const uint8_t *pw; /* NULL for -D and -U */
    size_t pwlen;
    bool found;
};

/* Does the text after ':' hold a hash (of any kind passwd_parse knows, or
 * garbled: it is left for passwd_parse to judge) rather than a password? */
static bool looks_hashed(const struct entry *e)
{
    static const char *const prefixes[] = {"$6$", "$7$", "$argon2", "SCRAM-"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);
        if (e->rest_len >= n && memcmp(e->rest, prefixes[i], n) == 0)
            return true;
    }
    return false;
}

/* One entry line onto b, changed as ed says. False with the message
 * printed. */
static bool edit_entry(struct obuf *b, const uint8_t *l, size_t len, const struct entry *e,
                       size_t line, struct edit *ed)
{
    const struct opts *o = ed->o;
    if (o->update) {
        if (looks_hashed(e)) {
            put(b, l, len);
            put(b, "\n", 1);
            return true;
        }
        if (e->rest_len == 0 || e->rest_len > PW_MAX || !passwd_user_valid(e->user, e->user_len)) {
            fprintf(stderr, "Error: Corrupt password file at line %zu.\n", line);
            return false;
        }
        return put_hashed(b, e->user, e->user_len, e->rest, e->rest_len, &o->spec);
    }
    bool mine = e->user_len == strlen(o->user) && memcmp(e->user, o->user, e->user_len) == 0;
    if (!mine) {
        put(b, l, len);
        put(b, "\n", 1);
        return true;
    }
    bool first = !ed->found;
    ed->found = true;
    if (o->delete_user || !first)
        return true;
    return put_hashed(b, e->user, e->user_len, ed->pw, ed->pwlen, &o->spec);
}

/* The new file from the old one (t) into b. 0, or 1 with the message
 * printed. */
static int edit_file(const struct text *t, struct edit *ed, struct obuf *b)
{
    size_t pos = 0, line = 0, len = 0;
    const uint8_t *l = NULL;
    while (next_line(t, &pos, &l, &len)) {
        line++;
        struct entry e;
        int k = split_entry(l, len, &e);
        if (k < 0 || (k > 0 && e.user_len == 0)) {
            fprintf(stderr, "Error: Corrupt password file at line %zu.\n", line);
            return 1;
        }
        if (k == 0) {
            put(b, l, len);
            put(b, "\n", 1);
        } else if (!edit_entry(b, l, len, &e, line, ed)) {
            return 1;
        }
    }
    const struct opts *o = ed->o;
    if (o->delete_user && !ed->found) {
        fprintf(stderr, "Warning: User %s not found in password file.\n", o->user);
        return 1;
    }
    if (ed->pw && !ed->found &&
        !put_hashed(b, (const uint8_t *)o->user, strlen(o->user), ed->pw, ed->pwlen, &o->spec))
        return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Writing the file                                                         */
/* ------------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The temporary file beside path: same folder (rename stays atomic), a
 * dot name the broker's watcher does not take for the file itself. Its
 * descriptor, or -errno. */
static int open_temp(const char *path)
{
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path + 1) : 0;
    int n = snprintf(tmp_path, sizeof(tmp_path), "%.*s.%s.XXXXXX", dir_len, path,
                     slash ? slash + 1 : path);
    if (n < 0 || (size_t)n >= sizeof(tmp_path))
        return -ENAMETOOLONG;
    int fd = mkostemp(tmp_path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    tmp_live = 1;
    return fd;
}

/* Gives the temporary file the mode (and where we may the owner) of the
 * file it replaces, or 0600 for a new one. */
static int keep_mode(int fd, const char *path, const struct stat *old)
{
    if (!old)
        return fchmod(fd, 0600) == 0 ? 0 : -errno;
    if (fchmod(fd, old->st_mode & 07777) != 0)
        return -errno;
    struct stat now;
    if (fstat(fd, &now) == 0 && (now.st_uid != old->st_uid || now.st_gid != old->st_gid) &&
        fchown(fd, old->st_uid, old->st_gid) != 0)
        fprintf(stderr,
                "Warning: %s was owned by %u:%u and will be owned by %u:%u (%s): check that "
                "the broker can still read it.\n",
                path, (unsigned)old->st_uid, (unsigned)old->st_gid, (unsigned)now.st_uid,
                (unsigned)now.st_gid, strerror(errno));
    return 0;
}

/* The folder of path, fsynced so that the rename itself is on disk. */
static void sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path == 0 ? 1 : slash - path) : 1,
             slash ? path : ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Replaces path with data[0..len): a temporary file in the same folder,
 * written, fsynced, then renamed over it. 0, or 1 with the message
 * printed and path untouched. */
static int write_atomic(const char *path, const uint8_t *data, size_t len)
{
    struct stat st;
    bool existed = stat(path, &st) == 0;
    int fd = open_temp(path);
    int r = fd < 0 ? fd : keep_mode(fd, path, existed ? &st : NULL);
    if (r == 0)
        r = write_all(fd, data, len);
    if (r == 0 && fsync(fd) != 0)
        r = -errno;
    if (fd >= 0 && close(fd) != 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp_path, path) != 0)
        r = -errno;
    if (r != 0) {
        fprintf(stderr, "Error: Unable to open file %s for writing. %s.\n", path, strerror(-r));
        if (tmp_live)
            unlink(tmp_path);
        tmp_live = 0;
        return 1;
    }
    tmp_live = 0;
    sync_dir(path);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

/* The file to change: the real path behind any link (so the link stays a
 * link), or the name as given for one that does not exist yet. NULL with
 * the message printed. */
static char *resolve(const char *given, bool create)
{
    char *p = realpath(given, NULL);
    if (!p && errno == ENOENT && create)
        p = strdup(given);
    if (!p)
        fprintf(stderr, "Error: Unable to open password file %s. %s.\n", given, strerror(errno));
    return p;
}

/* Does the new text load as ringmq would load it? The message names the
 * line that does not. */
static bool loads(const char *path, const struct obuf *b)
{
    char err[1024];
    struct passwd_db *db = passwd_parse(path, b->p, b->len, err, sizeof(err));
    if (!db) {
        fprintf(stderr, "Error: ringmq would refuse the result, so %s is left as it was: %s\n",
                path, err);
        return false;
    }
    passwd_free(db);
    return true;
}

/* The file as it is, for an edit. 0, or 1 with the message printed. */
static int read_old(const char *path, uint8_t **data, size_t *len)
{
    char err[PATH_MAX + 128];
    int r = file_read(path, PASSWD_FILE_MAX, data, len, err, sizeof(err));
    if (r == 0)
        return 0;
    fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path,
            r == -EFBIG || r == -EINVAL ? err : strerror(-r));
    return 1;
}

/* The password for -c or an update: -b's (wiped from argv), or read. */
static int password_of(struct opts *o, char *pw, size_t *pwlen)
{
    if (!o->batch)
        return get_password(pw, pwlen);
    size_t n = strlen(o->password);
    if (n > PW_MAX) {
        fprintf(stderr, "Error: Password must be less than 65536 characters long.\n");
        return 1;
    }
    memcpy(pw, o->password, n + 1);
    *pwlen = n;
    OPENSSL_cleanse(o->password, n); /* out of /proc/PID/cmdline from now on */
    return 0;
}

/* Checks the new text and puts it in place (name "-": on standard
 * output). 0, or 1 with the message printed. */
static int finish(const char *name, const struct obuf *b, bool to_stdout)
{
    if (b->full) {
        fprintf(stderr, "Error: The new file would be larger than %u bytes (or no memory).\n",
                PASSWD_FILE_MAX);
        return 1;
    }
    if (!loads(name, b))
        return 1;
    if (to_stdout)
        return fwrite(b->p, 1, b->len, stdout) == b->len && fflush(stdout) == 0 ? 0 : 1;
    return write_atomic(name, b->p, b->len);
}

static int run(struct opts *o, char *pw)
{
    bool needs_pw = !o->delete_user && !o->update;
    bool to_stdout = o->create && strcmp(o->path, "-") == 0;
    char *path = to_stdout ? NULL : resolve(o->path, o->create);
    struct edit ed = {o, NULL, 0, false};
    struct obuf b = {0};
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = to_stdout || path ? 0 : 1;
    /* The file is read, and must be one we may write, before the password
     * is asked for. The rename needs only the folder writable: a read-only
     * file is refused as mosquitto_passwd refuses it. */
    if (rc == 0 && !o->create)
        rc = read_old(path, &data, &len);
    if (rc == 0 && path && access(path, W_OK) != 0 && errno != ENOENT) {
        fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path, strerror(errno));
        rc = 1;
    }
    if (rc == 0 && needs_pw) {
        rc = password_of(o, pw, &ed.pwlen);
        ed.pw = (const uint8_t *)pw;
    }
    if (rc == 0 && o->create)
        rc = put_hashed(&b, (const uint8_t *)o->user, strlen(o->user), ed.pw, ed.pwlen, &o->spec)
                 ? 0
                 : 1;
    else if (rc == 0)
        rc = edit_file(&(struct text){data, len}, &ed, &b);
    if (rc == 0)
        rc = finish(to_stdout ? "-" : path, &b, to_stdout);
    if (rc == 0 && needs_pw && !to_stdout)
        printf("%s password for user %s\n", ed.found ? "Updating" : "Adding", o->user);
    file_free(data, len);
    obuf_free(&b);
    free(path);
    return rc;
}

int main(int argc, char **argv)
{
    static char pw[PW_MAX + 2];
    struct opts o = {0};
    passwd_hash_spec_default(PASSWD_ARGON2ID, &o.spec);
    if (argc == 1) {
        usage(stdout);
        return 1;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    rc = run(&o, pw);
    OPENSSL_cleanse(pw, sizeof(pw));
    return rc;
}
