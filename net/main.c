/*
 * ringmq's main thread: parses the command line and the config (or the
 * embedded default), builds the broker, starts one shard per core and then
 * waits for signals. SIGTERM/SIGINT stop the broker: shards stop accepting,
 * tell 5.0 clients 0x8B, flush and exit within a bounded time. SIGHUP is
 * accepted and logged; reloading credentials and ACLs arrives with them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "passwd.h"

#define CONFIG_FILE_MAX (16u * 1024u * 1024u)

static void usage(FILE *f)
{
    fprintf(f, "usage: ringmq [-c FILE] [--test-config] [-v] [--help] [--version]\n"
               "       ringmq --scram-entry USER < password\n"
               "\n"
               "  -c, --config FILE   read the configuration from FILE (mosquitto-style\n"
               "                      'key value' lines). Without it ringmq listens on\n"
               "                      127.0.0.1:1883 and allows anonymous clients there.\n"
               "  -t, --test-config   check the configuration, print what is wrong, exit\n"
               "  -v, --verbose       log at debug level (overrides log_level)\n"
               "  -h, --help          this text\n"
               "  -V, --version       print the version\n"
               "  --scram-entry USER  read a password from the first line of standard\n"
               "                      input and print a password file line for USER that\n"
               "                      serves SCRAM-SHA-512 and plain CONNECT passwords\n");
}

/* Reads a whole file, bounded; the config is untrusted input. */
static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if ((uint64_t)st.st_size > CONFIG_FILE_MAX) {
        close(fd);
        return -EFBIG;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    *out = buf;
    *len = got;
    return 0;
}

static int load_config(struct config *cfg, const char *path)
{
    char err[512];
    config_init(cfg);
    int rc;
    if (path) {
        char *text = NULL;
        size_t len = 0;
        int e = read_file(path, &text, &len);
        if (e) {
            fprintf(stderr, "%s: cannot read: %s\n", path,
                    e == -EFBIG ? "larger than 16 MiB" : strerror(-e));
            return -1;
        }
        rc = config_parse(cfg, path, text, len, err, sizeof(err));
        free(text);
    } else {
        rc = config_parse(cfg, "<default>", config_default_text, strlen(config_default_text), err,
                          sizeof(err));
    }
    if (rc == 0)
        rc = config_finish(cfg, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

/* Waits until every shard has begun a loop turn after this call: then none
 * holds a pointer it loaded before. False after 5 s (a shard stuck in a
 * turn): the caller must not free what the shards might still read. */
static bool shards_quiescent(struct broker *b)
{
    uint64_t seen[SHARDS_MAX];
    for (unsigned i = 0; i < b->shard_count; i++)
        seen[i] = atomic_load_explicit(&b->shards[i]->turns, memory_order_seq_cst);
    for (int waited_ms = 0; waited_ms < 5000; waited_ms++) {
        bool all = true;
        for (unsigned i = 0; i < b->shard_count && all; i++)
            all = atomic_load_explicit(&b->shards[i]->turns, memory_order_seq_cst) != seen[i];
        if (all)
            return true;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* SIGHUP: the files the config names are read again into a new security
 * snapshot (the config itself is not: listeners and limits need a
 * restart). On any error the running snapshot stays. Connected clients
 * keep their sessions; new CONNECTs and re-authentications see the new
 * credentials. */
static void reload(struct broker *b)
{
    char err[512];
    struct auth_snapshot *old = atomic_load_explicit(&b->auth, memory_order_acquire);
    struct auth_snapshot *s = auth_snapshot_create(&b->cfg, old->generation + 1, err, sizeof(err));
    if (!s) {
        LOG(LOG_LEVEL_ERROR, "SIGHUP: reload failed, the previous credentials stay: %s", err);
        return;
    }
    /* seq_cst with the shards' turn counter and their loads (see
     * shard_main): the turns read after this store cannot be older than
     * any turn that still loaded the old pointer. */
    atomic_store_explicit(&b->auth, s, memory_order_seq_cst);
    if (shards_quiescent(b))
        auth_snapshot_destroy(old);
    else
        LOG(LOG_LEVEL_WARNING, "SIGHUP: a shard did not turn within 5 s; the previous "
                               "snapshot is kept in memory");
    if (s->passwd)
        LOG(LOG_LEVEL_NOTICE, "SIGHUP: reloaded %s (%zu users)", b->cfg.password_file,
            passwd_count(s->passwd));
    else
        LOG(LOG_LEVEL_NOTICE, "SIGHUP: reloaded (no password file configured)");
}

/* --scram-entry USER: the password is the first line of standard input
 * (so it is not in the process list or the shell history); prints the
 * password file line. */
static int scram_entry(const char *user)
{
    char pw[4096];
    if (!fgets(pw, sizeof(pw), stdin)) {
        fprintf(stderr, "ringmq: --scram-entry: no password on standard input\n");
        return 1;
    }
    size_t len = strlen(pw);
    if (len == sizeof(pw) - 1 && pw[len - 1] != '\n') {
        fprintf(stderr, "ringmq: --scram-entry: password longer than %zu bytes\n", len);
        return 1;
    }
    while (len && (pw[len - 1] == '\n' || pw[len - 1] == '\r'))
        len--;
    char line[PASSWD_USER_MAX + 512];
    int n = passwd_scram_line((const uint8_t *)user, strlen(user), (const uint8_t *)pw, len,
                              PASSWD_SCRAM_ITERATIONS_DEFAULT, line, sizeof(line));
    explicit_bzero(pw, sizeof(pw));
    if (n < 0) {
        fprintf(stderr,
                "ringmq: --scram-entry: no entry for `%s': a user name must be UTF-8, not "
                "empty, without ':' or line breaks, blanks at either end, a leading '#' or a "
                "byte order mark (or the random generator failed)\n",
                user);
        return 1;
    }
    printf("%s\n", line);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test-config", no_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"scram-entry", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool test_only = false, verbose = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:tvhV", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("ringmq %s\n", RINGMQ_VERSION);
            return 0;
        case 'S':
            return scram_entry(optarg);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringmq: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    static struct broker b;
    if (load_config(&b.cfg, path))
        return 1;
    /* The files the config names are part of it: --test-config reads them
     * too, and a bad line stops the start with its file:line. */
    char err[512];
    struct auth_snapshot *snap = auth_snapshot_create(&b.cfg, 1, err, sizeof(err));
    if (!snap) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    atomic_store(&b.auth, snap);
    if (test_only) {
        auth_snapshot_destroy(snap);
        printf("%s: configuration OK\n", path ? path : "<default>");
        return 0;
    }
    log_set_level(verbose ? LOG_LEVEL_DEBUG : b.cfg.log_level);
    log_set_thread(-1);

    /* Signals are taken synchronously by this thread only: shards inherit
     * the blocked mask and never see them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    b.shard_count = b.cfg.shards ? b.cfg.shards : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (b.shard_count > SHARDS_MAX)
        b.shard_count = SHARDS_MAX;
    b.start_ms = broker_now_ms();
    b.retain = retain_create();
    if (!b.retain || pthread_rwlock_init(&b.retain_lock, NULL)) {
        LOG(LOG_LEVEL_ERROR, "out of memory at start-up");
        return 1;
    }
    for (unsigned li = 0; li < b.cfg.listener_count; li++)
        b.listen_port[li] = b.cfg.listeners[li].port;

    int rc = 0;
    unsigned created = 0, started = 0;
    for (; created < b.shard_count; created++) {
        if (shard_create(&b, created, &b.shards[created])) {
            rc = 1;
            goto stop;
        }
    }
    /* Before the shards start: they read b.authpool without a lock. */
    if (authpool_create(&b, b.cfg.auth_threads, &b.authpool)) {
        LOG(LOG_LEVEL_ERROR, "cannot start %u auth_threads", b.cfg.auth_threads);
        rc = 1;
        goto stop;
    }
    for (; started < b.shard_count; started++) {
        int serr = shard_start(b.shards[started]);
        if (serr) {
            if (started < b.shard_count && b.shards[started]->thread)
                shard_join(b.shards[started]);
            rc = 1;
            goto stop;
        }
    }
    for (unsigned li = 0; li < b.cfg.listener_count; li++) {
        const struct config_listener *l = &b.cfg.listeners[li];
        LOG(LOG_LEVEL_NOTICE, "listening on %s:%u (anonymous %s)", l->address[0] ? l->address : "*",
            b.listen_port[li], l->allow_anonymous == CONFIG_TRUE ? "allowed" : "refused");
    }
    LOG(LOG_LEVEL_NOTICE, "ringmq %s running with %u shards", RINGMQ_VERSION, b.shard_count);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig))
            continue;
        if (sig == SIGHUP) {
            reload(&b);
            continue;
        }
        LOG(LOG_LEVEL_NOTICE, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }

stop:
    atomic_store(&b.stopping, true);
    /* The workers go first: what is queued is answered at once (the shards
     * are closing those connections), and no worker is left to post to a
     * shard after it has freed its connections. */
    authpool_stop(b.authpool);
    for (unsigned i = 0; i < started; i++)
        shard_join(b.shards[i]);
    for (unsigned i = 0; i < created; i++)
        shard_destroy(b.shards[i]);
    authpool_destroy(b.authpool); /* after shard_destroy freed the last answers */
    retain_destroy(b.retain);
    auth_snapshot_destroy(atomic_load(&b.auth));
    pthread_rwlock_destroy(&b.retain_lock);
    if (rc == 0)
        LOG(LOG_LEVEL_NOTICE, "stopped");
    return rc;
}
