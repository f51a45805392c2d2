/*
 * ringmq's main thread: parses the command line and the config (or the
 * embedded default), refuses to start on an address another process
 * listens on, resolves memory_limit, builds the broker, starts one shard
 * per core and then waits for signals, sampling the allocator's usage
 * every 50 ms in between (b->mem_allocated, b->eng.mem_over, which the shards
 * read). SIGTERM/SIGINT stop the broker: shards stop accepting, tell 5.0
 * clients 0x8B, flush and exit within a bounded time. SIGHUP, or a change
 * of a file the config names, reloads the security snapshot and the TLS
 * contexts (reload.c); SIGUSR1 and SIGUSR2 log statistics. Every other
 * signal that would end the process is taken here and logged instead,
 * except the ones that report a crash (SIGQUIT, SIGABRT, SIGSEGV, ...).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <grp.h>
#include <pwd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "admit.h"
#include "authpool.h"
#include "broker.h"
#include "file.h"
#include "shard.h"
#include "tally.h"
#include "log.h"
#include "memwatch.h"
#include "metrics_http.h"
#include "notify.h"
#include "passwd.h"
#include "reload.h"

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

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* include_dir DIR (config.h's include_fn): DIR's *.conf files in name
 * order (bytewise, as mosquitto sorts them), each parsed into c. At most
 * INCLUDE_FILES_MAX of them. */
#define INCLUDE_FILES_MAX 1024
static int include_conf_dir(void *ctx, struct config *c, const char *dir, char *err, size_t errlen)
{
    (void)ctx;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".conf") != 0)
            continue;
        char **nv = n < INCLUDE_FILES_MAX ? realloc(names, (n + 1) * sizeof(*names)) : NULL;
        char *copy = nv ? strdup(e->d_name) : NULL;
        if (nv)
            names = nv;
        if (!copy) {
            snprintf(err, errlen,
                     n < INCLUDE_FILES_MAX ? "out of memory" : "more than 1024 .conf files");
            rc = -1;
            break;
        }
        names[n++] = copy;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[CONFIG_PATH_MAX + 256];
        snprintf(path, sizeof(path), "%s%s%s", dir,
                 dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
        char *text = NULL;
        size_t len = 0;
        int e = read_file(path, &text, &len);
        if (e) {
            snprintf(err, errlen, "%s: cannot read: %s", path,
                     e == -EFBIG ? "larger than 16 MiB" : strerror(-e));
            rc = -1;
            break;
        }
        if (config_parse(c, path, text, len, err, errlen) != 0)
            rc = -1;
        free(text);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int load_config(struct config *cfg, const char *path, bool every_error)
{
    char err[512];
    config_init(cfg);
    cfg->include_fn = include_conf_dir;
    cfg->collect_errors = every_error;
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
    if (rc && cfg->error_count > 1) {
        /* --test-config: every problem in the file, not only the first. */
        for (uint32_t i = 0; i < cfg->error_count && i < CONFIG_ERRORS_MAX; i++)
            fprintf(stderr, "%s\n", cfg->errors[i]);
        if (cfg->error_count > CONFIG_ERRORS_MAX)
            fprintf(stderr, "... and %u more errors\n", cfg->error_count - CONFIG_ERRORS_MAX);
        return -1;
    }
    if (rc) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

/* ---- listeners held by another process --------------------------------- */

/* Every shard binds each listener with SO_REUSEPORT, and so would a second
 * ringmq on the same address: the kernel would then split new connections
 * between the two brokers, each with its own sessions. A probe bound
 * without SO_REUSEPORT fails with EADDRINUSE while anyone listens there.
 * SO_REUSEADDR keeps a restart working while the previous broker's
 * connections sit in TIME_WAIT. Port 0 asks for a fresh port: nothing to
 * collide with. Two brokers started in the same instant can both pass
 * (the probe is closed before the shards bind); that race is not worth a
 * lock file. Returns 0, or -1 after logging what is wrong. */
static int probe_listeners(const struct config *cfg)
{
    for (uint32_t li = 0; li < cfg->listener_count; li++) {
        const struct config_listener *l = &cfg->listeners[li];
        if (l->port == 0)
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = 0;
        if (listener_sockaddr(l, l->port, &ss, &sl))
            continue; /* config_finish() refused it already */
        /* Named as an operator would write it: [::1]:1883, *:1883. */
        char name[80];
        if (l->address[0] == '\0')
            snprintf(name, sizeof(name), "*:%u", (unsigned)l->port);
        else if (ss.ss_family == AF_INET6)
            snprintf(name, sizeof(name), "[%s]:%u", l->address, (unsigned)l->port);
        else
            snprintf(name, sizeof(name), "%s:%u", l->address, (unsigned)l->port);
        char where[sizeof(cfg->source) + 16] = "";
        if (l->line > 0)
            snprintf(where, sizeof(where), "%s:%d: ", cfg->source, l->line);

        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            LOG(LOG_LEVEL_ERROR, "%slistener %s: cannot create a socket: %s", where, name,
                strerror(errno));
            return -1;
        }
        int one = 1;
        int err = 0;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&ss, sl) < 0)
            err = errno;
        close(fd);
        if (err == EADDRINUSE) {
            LOG(LOG_LEVEL_ERROR,
                "%slistener %s: address already in use by another process (another broker?); "
                "refusing to share it: the kernel would split the connections between us",
                where, name);
            return -1;
        }
        if (err != 0) {
            LOG(LOG_LEVEL_ERROR, "%slistener %s: %s", where, name, strerror(err));
            return -1;
        }
    }
    return 0;
}

/* ---- memory ------------------------------------------------------------- */

#define MEM_SAMPLE_MS     50u
#define MEM_SAMPLE_MAX_MS 1000u
/* The sampler may take this share of the main thread (and of the arena
 * locks it holds meanwhile): a slow sample spaces the next ones out. */
#define MEM_SAMPLE_DUTY_PCT 1u

/* "512.0 MiB": figures for the log, next to the exact byte counts. */
static const char *mib(char *buf, size_t cap, uint64_t bytes)
{
    if (bytes >= (1ull << 30))
        snprintf(buf, cap, "%.1f GiB", (double)bytes / (double)(1ull << 30));
    else
        snprintf(buf, cap, "%.1f MiB", (double)bytes / (double)(1ull << 20));
    return buf;
}

/* Reads a small file holding one number (cgroup limits); false for
 * anything else, such as cgroup v2's "max". */
static bool read_u64_file(const char *path, uint64_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char v[32];
    ssize_t r = read(fd, v, sizeof(v) - 1);
    close(fd);
    if (r <= 0)
        return false;
    v[r] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || end == v || (*end != '\n' && *end != '\0') || v[0] == '-')
        return false;
    *out = n;
    return true;
}

/* The smallest limit in FILE from cgroup directory CG (a path like
 * "/a/b") of the hierarchy mounted at ROOT up to that mount's root, or 0.
 * Walking up covers limits set on a parent, and a container whose mount
 * shows only its own cgroup (CG then does not exist below ROOT, but ROOT
 * itself is the container's cgroup). Limits of 2^62 and above are
 * cgroup v1's way of saying none. */
static uint64_t cgroup_walk_min(const char *root, const char *cg, const char *file)
{
    char dir[1024];
    char path[1024 + 64];
    uint64_t best = 0;
    snprintf(dir, sizeof(dir), "%s", cg);
    for (;;) {
        uint64_t lim = 0;
        snprintf(path, sizeof(path), "%s%s/%s", root, strcmp(dir, "/") == 0 ? "" : dir, file);
        if (read_u64_file(path, &lim) && lim < (1ull << 62) && (best == 0 || lim < best))
            best = lim;
        char *slash = strrchr(dir, '/');
        if (slash == NULL || strcmp(dir, "/") == 0)
            break;
        if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
    }
    return best;
}

/* The memory limit of this process's cgroup, or 0: cgroup v2's
 * memory.max, or cgroup v1's memory.limit_in_bytes (hosts that still mount
 * v1, where the v2 hierarchy has no memory controller). /proc/self/cgroup
 * lines are "ID:CONTROLLERS:PATH"; v2's is "0::PATH". */
static uint64_t cgroup_memory_max(void)
{
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    uint64_t best = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2[1] != '/' || strlen(c2 + 1) >= 1024 || strstr(c2 + 1, "/..") != NULL)
            continue; /* outside our cgroup namespace: nothing to read */
        const char *cg = c2 + 1;
        uint64_t lim = 0;
        *c2 = '\0';
        if (strcmp(line, "0:") == 0)
            lim = cgroup_walk_min("/sys/fs/cgroup", cg, "memory.max");
        else if (strstr(c1 + 1, "memory") != NULL) {
            /* The controller list is comma-separated; match the word. */
            for (char *tok = c1 + 1, *next; tok; tok = next) {
                next = strchr(tok, ',');
                size_t tl = next ? (size_t)(next - tok) : strlen(tok);
                if (next)
                    next++;
                if (tl == 6 && strncmp(tok, "memory", 6) == 0)
                    lim = cgroup_walk_min("/sys/fs/cgroup/memory", cg, "memory.limit_in_bytes");
            }
        }
        if (lim != 0 && (best == 0 || lim < best))
            best = lim;
    }
    return best;
}

/* Resolves memory_limit into b->mem_limit: the configured bytes, or half
 * of what this process may use (the machine's memory, or the cgroup's
 * limit where that is smaller). Half, because the allocator's count is
 * not the resident size: fragmentation, the receive-buffer rings, thread
 * stacks and the kernel's socket buffers come on top. */
static void mem_resolve(struct broker *b)
{
    char f1[32], f2[32];
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t phys = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    uint64_t cg = cgroup_memory_max();
    uint64_t avail = phys;
    const char *whose = "the machine's";
    if (cg != 0 && (avail == 0 || cg < avail)) {
        avail = cg;
        whose = "the cgroup's limit";
    }
    if (b->cfg.memory_limit != 0) {
        b->mem_limit = b->cfg.memory_limit;
        if (avail != 0 && b->mem_limit > avail)
            LOG(LOG_LEVEL_WARNING,
                "%s:%d: memory_limit %s is above %s %s: the kernel runs out before the broker "
                "refuses anything",
                b->cfg.source, b->cfg.memory_limit_line, mib(f1, sizeof(f1), b->mem_limit), whose,
                mib(f2, sizeof(f2), avail));
        return;
    }
    if (avail == 0) {
        /* Cannot happen on Linux; a finite guess beats no bound. */
        b->mem_limit = 1ull << 30;
        LOG(LOG_LEVEL_WARNING, "memory_limit: the machine's memory is unknown; using 1 GiB");
        return;
    }
    b->mem_limit = avail / 2;
    if (b->mem_limit < CONFIG_MEMORY_LIMIT_MIN)
        b->mem_limit = CONFIG_MEMORY_LIMIT_MIN;
    LOG(LOG_LEVEL_INFO, "memory_limit %s (%llu bytes): half of %s %s",
        mib(f1, sizeof(f1), b->mem_limit), (unsigned long long)b->mem_limit, whose,
        mib(f2, sizeof(f2), avail));
}

struct memwatch_state {
    uint64_t interval_ms;  /* between samples, MEM_SAMPLE_MS unless sampling is slow */
    uint64_t last_cost_ns; /* what the last sample cost */
    uint64_t max_cost_ns;
    bool failed_logged;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One sample: stores the figure and moves mem_over with hysteresis (set at
 * the limit, cleared under 90% of it), so the shards do not flap between
 * refusing and accepting on every small free; each transition is logged
 * once, with the figures. */
static void mem_sample(struct broker *b, struct memwatch_state *mw)
{
    char f1[32], f2[32], f3[32];
    uint64_t t0 = now_ns();
    uint64_t used = 0;
    int e = memwatch_allocated(&used);
    uint64_t cost = now_ns() - t0;
    mw->last_cost_ns = cost;
    if (cost > mw->max_cost_ns)
        mw->max_cost_ns = cost;
    uint64_t spaced_ms = cost / (10000u * MEM_SAMPLE_DUTY_PCT);
    mw->interval_ms = spaced_ms < MEM_SAMPLE_MS       ? MEM_SAMPLE_MS
                      : spaced_ms > MEM_SAMPLE_MAX_MS ? MEM_SAMPLE_MAX_MS
                                                      : spaced_ms;
    if (e) {
        if (!mw->failed_logged)
            LOG(LOG_LEVEL_WARNING,
                "memory_limit is not enforced: the allocator does not report its usage (%s: %s)",
                memwatch_source(), strerror(-e));
        mw->failed_logged = true;
        mw->interval_ms = MEM_SAMPLE_MAX_MS;
        return;
    }
    atomic_store_explicit(&b->mem_allocated, used, memory_order_relaxed);
    /* Near the limit (90%, cleared under 80%) new sessions are refused
     * (core/engine_connect.c) and publishers whose messages are being stored are
     * held (core/flow.c) before anything connected has to give way. */
    bool near = atomic_load_explicit(&b->eng.mem_near, memory_order_relaxed);
    uint64_t near_at = b->mem_limit - b->mem_limit / 10, calm = b->mem_limit - b->mem_limit / 5;
    if (!near && used >= near_at) {
        atomic_store_explicit(&b->eng.mem_near, true, memory_order_relaxed);
        LOG(LOG_LEVEL_WARNING,
            "memory: %s allocated (%llu bytes), 90%% of memory_limit %s: new sessions get "
            "0x89 Server busy and publishers whose messages are stored for later delivery are "
            "held until it is under 80%%",
            mib(f1, sizeof(f1), used), (unsigned long long)used, mib(f2, sizeof(f2), b->mem_limit));
    } else if (near && used < calm) {
        atomic_store_explicit(&b->eng.mem_near, false, memory_order_relaxed);
        LOG(LOG_LEVEL_NOTICE,
            "memory: %s allocated (%llu bytes), under 80%% of memory_limit %s: new sessions "
            "are accepted again and held publishers go on",
            mib(f1, sizeof(f1), used), (unsigned long long)used, mib(f2, sizeof(f2), b->mem_limit));
    }
    uint64_t low = b->mem_limit - b->mem_limit / 10;
    bool over = atomic_load_explicit(&b->eng.mem_over, memory_order_relaxed);
    if (!over && used >= b->mem_limit) {
        atomic_store_explicit(&b->eng.mem_over, true, memory_order_relaxed);
        LOG(LOG_LEVEL_WARNING,
            "memory: %s allocated (%llu bytes) reached memory_limit %s (%llu bytes): new "
            "sessions, new messages for offline sessions and new retained messages are "
            "refused until it is under %s",
            mib(f1, sizeof(f1), used), (unsigned long long)used, mib(f2, sizeof(f2), b->mem_limit),
            (unsigned long long)b->mem_limit, mib(f3, sizeof(f3), low));
    } else if (over && used < low) {
        atomic_store_explicit(&b->eng.mem_over, false, memory_order_relaxed);
        LOG(LOG_LEVEL_NOTICE,
            "memory: %s allocated (%llu bytes), under 90%% of memory_limit %s: accepting new "
            "work again",
            mib(f1, sizeof(f1), used), (unsigned long long)used, mib(f2, sizeof(f2), b->mem_limit));
    }
}

/* ---- statistics on SIGUSR1 / SIGUSR2 ------------------------------------- */

/* SIGUSR1: the broker's totals in one line, summed over the shards as
 * $SYS sums them (relaxed reads: a torn sum is fine). */
static void log_stats(struct broker *b, const struct memwatch_state *mw)
{
    /* The shard counters of the metrics table (core/metrics.c), the same
     * numbers $SYS shows, named by their $SYS topic: "messages/received"
     * reads "messages received N". */
    const struct metrics_shard *st[SHARDS_MAX];
    for (unsigned i = 0; i < b->shard_count; i++)
        st[i] = &b->eng.engines[i]->st;
    char counters[3072] = "";
    size_t n = 0;
    for (size_t i = 0; i < metrics_table_len && n < sizeof(counters); i++) {
        const struct metrics_entry *e = &metrics_table[i];
        if (e->source != METRICS_SHARD || !e->sys_topic)
            continue;
        int w =
            snprintf(counters + n, sizeof(counters) - n, "%s%s %llu", n ? ", " : "", e->sys_topic,
                     (unsigned long long)metrics_sys_value(e, st, b->shard_count, NULL));
        if (w < 0)
            break;
        n += (size_t)w;
    }
    for (char *p = counters; *p; p++)
        if (*p == '/')
            *p = ' ';
    pthread_rwlock_rdlock(&b->retain_lock);
    uint64_t retained = retain_client_count(b->eng.retain);
    pthread_rwlock_unlock(&b->retain_lock);
    uint64_t used = atomic_load_explicit(&b->mem_allocated, memory_order_relaxed);
    bool over = atomic_load_explicit(&b->eng.mem_over, memory_order_relaxed);
    char f1[32], f2[32];
    LOG(LOG_LEVEL_NOTICE,
        "SIGUSR1: uptime %llu s, sessions %llu of %u, %s, retained %llu, auth pending %u, memory "
        "%s of %s (%llu of %llu bytes%s; sampled every %llu ms, last sample %.1f us, slowest "
        "%.1f us)",
        (unsigned long long)((broker_now_ms() - b->start_ms) / 1000u),
        (unsigned long long)atomic_load_explicit(&b->eng.session_count, memory_order_relaxed),
        b->cfg.max_sessions, counters, (unsigned long long)retained, authpool_pending(b->authpool),
        mib(f1, sizeof(f1), used), mib(f2, sizeof(f2), b->mem_limit), (unsigned long long)used,
        (unsigned long long)b->mem_limit, over ? ", over the limit: refusing new work" : "",
        (unsigned long long)mw->interval_ms, (double)mw->last_cost_ns / 1000.0,
        (double)mw->max_cost_ns / 1000.0);
}

/* One shard's figure under a $SYS topic of the metrics table. */
static uint64_t shard_figure(const struct metrics_shard *st, const char *sys_topic)
{
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        if (e->source == METRICS_SHARD && e->sys_topic && strcmp(e->sys_topic, sys_topic) == 0)
            return metrics_sys_value(e, &st, 1, NULL);
    }
    return 0;
}

/* SIGUSR2: one line per shard, to see where load or a backlog sits. Only
 * what a shard publishes as atomics is read (its counters, its loop turns,
 * the depth of the cross-shard queues into it); its tables belong to its
 * thread. */
static void log_shards(struct broker *b)
{
    LOG(LOG_LEVEL_NOTICE, "SIGUSR2: %u shards", b->shard_count);
    for (unsigned i = 0; i < b->shard_count; i++) {
        struct shard *sh = b->shards[i];
        const struct metrics_shard *st = &sh->en.st;
        uint64_t queued = 0;
        uint32_t deepest = 0;
        for (unsigned j = 0; j < b->shard_count; j++) {
            if (!sh->inq[j])
                continue;
            uint32_t d = xq_depth(sh->inq[j]);
            queued += d;
            if (d > deepest)
                deepest = d;
        }
        LOG(LOG_LEVEL_NOTICE,
            "SIGUSR2: shard %u: clients connected %llu, connections total %llu, messages "
            "received %llu sent %llu dropped %llu, inbound queues %llu items (deepest %u of %u), "
            "queue overflows %llu, loop turns %llu%s",
            i, (unsigned long long)atomic_load_explicit(&st->connections, memory_order_relaxed),
            (unsigned long long)atomic_load_explicit(&st->connects_total, memory_order_relaxed),
            (unsigned long long)shard_figure(st, "messages/received"),
            (unsigned long long)shard_figure(st, "messages/sent"),
            (unsigned long long)shard_figure(st, "messages/dropped"), (unsigned long long)queued,
            deepest, XQ_CAPACITY,
            (unsigned long long)atomic_load_explicit(&st->xq_overflow, memory_order_relaxed),
            (unsigned long long)atomic_load_explicit(&sh->turns, memory_order_relaxed),
            atomic_load_explicit(&sh->sleeping, memory_order_relaxed) ? ", idle" : "");
    }
}

/* ---- signals ------------------------------------------------------------ */

/* The signals this thread takes with sigtimedwait: every one whose default
 * action ends the process, so none of them can (SIGALRM, SIGUSR1/2,
 * SIGPROF, SIGXCPU, the real-time ones, ...), except those that report a
 * crash or are asked for one: SIGQUIT (a core dump on purpose), SIGABRT,
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS. Blocking a fault
 * signal would hang the faulting thread, and a core is what one wants
 * then. SIGPIPE is ignored (sends report EPIPE); job control and the
 * signals ignored by default keep their default. glibc's sigfillset leaves
 * out the two real-time signals it uses itself. */
static void signals_taken(sigset_t *set)
{
    static const int keep_default[] = {
        SIGKILL, SIGSTOP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS,  SIGFPE,  SIGILL,   SIGTRAP,
        SIGSYS,  SIGPIPE, SIGCHLD, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGWINCH, SIGURG,
    };
    sigfillset(set);
    for (size_t i = 0; i < sizeof(keep_default) / sizeof(keep_default[0]); i++)
        sigdelset(set, keep_default[i]);
}

static const char *signal_name(int sig, char *buf, size_t cap)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, cap, "SIG%s", abbrev);
    else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, cap, "SIGRTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, cap, "signal %d", sig);
    return buf;
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
    uint8_t salt[PASSWD_SCRAM_SALT_LEN];
    int n = -1;
    if (RAND_bytes(salt, sizeof(salt)) == 1)
        n = passwd_scram_line((const uint8_t *)user, strlen(user), (const uint8_t *)pw, len, salt,
                              sizeof(salt), PASSWD_SCRAM_ITERATIONS_DEFAULT, line, sizeof(line));
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

/* The command line: 0 to go on, or the exit status (*done). */
struct args {
    const char *path;
    bool test_only, verbose;
};

static int parse_args(int argc, char **argv, struct args *a, bool *done)
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
    int ch;
    *done = true;
    while ((ch = getopt_long(argc, argv, "c:tvhV", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            a->path = optarg;
            break;
        case 't':
            a->test_only = true;
            break;
        case 'v':
            a->verbose = true;
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
    *done = false;
    return 0;
}

/* What the shards share, before any of them exists: 0 or 1 (logged). */
static int broker_setup(struct broker *b)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    b->shard_count = b->cfg.shards ? b->cfg.shards : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (b->shard_count > SHARDS_MAX)
        b->shard_count = SHARDS_MAX;
    b->start_ms = broker_now_ms();
    b->eng.cfg = &b->cfg;
    b->eng.shard_count = b->shard_count;
    b->eng.start_ms = b->start_ms;
    b->eng.retain = retain_create();
    bool tally = admit_needs_tally(&b->cfg), names = b->cfg.flapping_max_connects != 0;
    if (tally)
        b->tally = tally_create(b->eng.hash_key, TALLY_SLOTS);
    if (names)
        b->names = tally_create(b->eng.hash_key, TALLY_NAME_SLOTS);
    if (!b->eng.retain || pthread_rwlock_init(&b->retain_lock, NULL) || (tally && !b->tally) ||
        (names && !b->names)) {
        LOG(LOG_LEVEL_ERROR, "out of memory at start-up");
        return 1;
    }
    for (unsigned li = 0; li < b->cfg.listener_count; li++)
        b->listen_port[li] = b->cfg.listeners[li].port;
    mem_resolve(b);
    return 0;
}

/* The shards hold their tables now: a memory_limit below that would
 * refuse every client from the first. The shards find mem_allocated and
 * mem_over set when they start. 0 or 1 (logged). */
static int memory_check(struct broker *b, struct memwatch_state *mw)
{
    char f1[32], f2[32];
    uint64_t used = 0;
    if (b->cfg.memory_limit != 0 && memwatch_allocated(&used) == 0 && used >= b->mem_limit) {
        LOG(LOG_LEVEL_ERROR,
            "%s:%d: memory_limit %s (%llu bytes) is below the %s (%llu bytes) the broker "
            "holds after start-up with %u shards",
            b->cfg.source, b->cfg.memory_limit_line, mib(f1, sizeof(f1), b->mem_limit),
            (unsigned long long)b->mem_limit, mib(f2, sizeof(f2), used), (unsigned long long)used,
            b->shard_count);
        return 1;
    }
    mem_sample(b, mw);
    used = atomic_load_explicit(&b->mem_allocated, memory_order_relaxed);
    LOG(LOG_LEVEL_INFO, "memory: %s allocated at start-up (%s), memory_limit %s",
        mib(f1, sizeof(f1), used), memwatch_source(), mib(f2, sizeof(f2), b->mem_limit));
    return 0;
}

/* ---- running as a service ---------------------------------------------- */

/* pid_file: the process id, written once every listener is open (so a
 * service manager reading it finds a broker that accepts). 0 or 1. */
static int pid_file_write(const struct config *c)
{
    if (!c->pid_file[0])
        return 0;
    int fd = open(c->pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    char line[32];
    int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        LOG(LOG_LEVEL_ERROR, "%s: pid_file %s: %s", c->source, c->pid_file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    return 0;
}

/* Started as root: once every socket is bound, become `user' (default
 * "ringmq", when that account exists), as mosquitto does, so a flaw in
 * the broker does not hand out root. Not root: nothing to drop. 0 or 1. */
static int drop_privileges(const struct config *c)
{
    if (geteuid() != 0) {
        if (c->user[0])
            LOG(LOG_LEVEL_INFO, "user %s: not started as root, running as uid %u", c->user,
                (unsigned)geteuid());
        return 0;
    }
    const char *name = c->user[0] ? c->user : "ringmq";
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        if (c->user[0]) {
            LOG(LOG_LEVEL_ERROR, "%s:%d: user %s: no such account", c->source, c->user_line, name);
            return 1;
        }
        LOG(LOG_LEVEL_WARNING,
            "running as root: no `user' is set and there is no account `ringmq' to drop to");
        return 0;
    }
    if (pw->pw_uid == 0)
        return 0; /* asked to stay root */
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        LOG(LOG_LEVEL_ERROR, "user %s: cannot drop privileges: %s", name, strerror(errno));
        return 1;
    }
    if (setuid(0) == 0) {
        LOG(LOG_LEVEL_ERROR, "user %s: root could be regained after the drop", name);
        return 1;
    }
    LOG(LOG_LEVEL_NOTICE, "running as user %s (uid %u, gid %u)", name, (unsigned)pw->pw_uid,
        (unsigned)pw->pw_gid);
    return 0;
}

/* Creates and starts the shards and the auth pool; *created and *started
 * say how far it got (for broker_stop). 0 or 1. */
static int broker_start(struct broker *b, struct memwatch_state *mw, unsigned *created,
                        unsigned *started)
{
    for (; *created < b->shard_count; (*created)++)
        if (shard_create(b, *created, &b->shards[*created]))
            return 1;
    /* One TLS context per listener per shard, from the same files: no
     * lock on the handshake path. A bad file stops the start. */
    if (reload_tls_start(b))
        return 1;
    if (memory_check(b, mw))
        return 1;
    /* Before the shards start: they read b->authpool without a lock. */
    if (authpool_create(b, b->cfg.auth_threads, &b->authpool)) {
        LOG(LOG_LEVEL_ERROR, "cannot start %u auth_threads", b->cfg.auth_threads);
        return 1;
    }
    for (; *started < b->shard_count; (*started)++) {
        if (shard_start(b->shards[*started])) {
            if (b->shards[*started]->thread)
                shard_join(b->shards[*started]);
            return 1;
        }
    }
    char err[512];
    if (metrics_http_start(b, err, sizeof(err))) {
        LOG(LOG_LEVEL_ERROR, "%s", err);
        return 1;
    }
    if (pid_file_write(&b->cfg) || drop_privileges(&b->cfg))
        return 1;
    for (unsigned li = 0; li < b->cfg.listener_count; li++) {
        const struct config_listener *l = &b->cfg.listeners[li];
        LOG(LOG_LEVEL_NOTICE, "listening on %s:%u (anonymous %s)", l->address[0] ? l->address : "*",
            b->listen_port[li], l->allow_anonymous == CONFIG_TRUE ? "allowed" : "refused");
    }
    LOG(LOG_LEVEL_NOTICE, "ringmq %s running with %u shards", RINGMQ_VERSION, b->shard_count);
    return 0;
}

/* A signal nobody acts on: at most one line a second, so a stream of
 * signals does not become a stream of log lines. */
struct ignored {
    uint64_t logged_ms;
    unsigned unlogged;
};

static void signal_ignored(struct ignored *ig, int sig)
{
    char name[32];
    uint64_t now = broker_now_ms();
    if (ig->logged_ms != 0 && now - ig->logged_ms < 1000u) {
        ig->unlogged++;
        return;
    }
    if (ig->unlogged)
        LOG(LOG_LEVEL_WARNING, "%s ignored (and %u other signals since)",
            signal_name(sig, name, sizeof(name)), ig->unlogged);
    else
        LOG(LOG_LEVEL_WARNING, "%s ignored (SIGTERM or SIGINT stops the broker)",
            signal_name(sig, name, sizeof(name)));
    ig->logged_ms = now;
    ig->unlogged = 0;
}

/* One signal taken; false at SIGTERM or SIGINT. */
static bool signal_take(struct broker *b, struct memwatch_state *mw, struct ignored *ig, int sig)
{
    if (sig == SIGTERM || sig == SIGINT) {
        LOG(LOG_LEVEL_NOTICE, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        return false;
    }
    if (sig == SIGHUP) {
        char err[CONFIG_PATH_MAX + 128];
        notify_systemd("RELOADING=1");
        if (log_reopen(err, sizeof(err)))
            LOG(LOG_LEVEL_ERROR, "SIGHUP: %s; the old log file stays", err);
        reload_all(b, "SIGHUP");
        notify_systemd("READY=1");
    } else if (sig == SIGUSR1)
        log_stats(b, mw);
    else if (sig == SIGUSR2)
        log_shards(b);
    else
        signal_ignored(ig, sig);
    return true;
}

/* The main thread's life while the shards run: signals (through a
 * signalfd), changes of the files the config names, ticket-key rotation,
 * and the memory sampler in between. Returns at SIGTERM or SIGINT. */
static void signal_loop(struct broker *b, struct memwatch_state *mw, int sfd)
{
    uint64_t next_sample_ms = broker_now_ms() + mw->interval_ms;
    struct ignored ig = {0};
    struct reload r;
    reload_init(&r, b);
    for (;;) {
        uint64_t now = broker_now_ms();
        if (now >= next_sample_ms) {
            mem_sample(b, mw);
            now = broker_now_ms();
            next_sample_ms = now + mw->interval_ms;
        }
        struct pollfd pf[2] = {{.fd = sfd, .events = POLLIN}, {.fd = r.fd, .events = POLLIN}};
        int wait_ms = (int)reload_wait_ms(&r, now, next_sample_ms - now);
        int n = poll(pf, r.fd >= 0 ? 2 : 1, wait_ms);
        now = broker_now_ms();
        if (n > 0 && r.fd >= 0 && (pf[1].revents & POLLIN))
            reload_events(&r, now);
        reload_tick(&r, b, now);
        if (n <= 0 || !(pf[0].revents & POLLIN))
            continue; /* time to sample; EINTR */
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
            continue;
        if (!signal_take(b, mw, &ig, (int)si.ssi_signo))
            break;
    }
    reload_fini(&r);
}

static void broker_stop(struct broker *b, unsigned created, unsigned started)
{
    atomic_store(&b->stopping, true);
    metrics_http_stop(b); /* it reads the shards */
    /* The workers go first: what is queued is answered at once (the shards
     * are closing those connections), and no worker is left to post to a
     * shard after it has freed its connections. */
    authpool_stop(b->authpool);
    for (unsigned i = 0; i < started; i++)
        shard_join(b->shards[i]);
    for (unsigned i = 0; i < created; i++)
        shard_destroy(b->shards[i]);
    authpool_destroy(b->authpool); /* after shard_destroy freed the last answers */
    reload_tls_stop(b);            /* no context is left to read the ticket keys */
    retain_destroy(b->eng.retain);
    tally_destroy(b->tally);
    tally_destroy(b->names);
    auth_snapshot_destroy(atomic_load(&b->auth));
    config_fini(&b->cfg);
    pthread_rwlock_destroy(&b->retain_lock);
}

int main(int argc, char **argv)
{
    struct args a = {0};
    bool done;
    int rc = parse_args(argc, argv, &a, &done);
    if (done)
        return rc;
    static struct broker b;
    if (load_config(&b.cfg, a.path, a.test_only))
        return 1;
    /* The files the config names are part of it: --test-config reads them
     * too, and a bad line stops the start with its file:line. */
    /* The key of the tables clients name (share groups, subscriptions,
     * the client id's home shard, bans, tallies): unknown outside the
     * process, so no client can pick names that collide. */
    if (!RAND_bytes((uint8_t *)b.eng.hash_key, sizeof(b.eng.hash_key)) ||
        !RAND_bytes(b.cred_key, sizeof(b.cred_key))) {
        fprintf(stderr, "ringmq: no random bytes for the hash and credential keys\n");
        return 1;
    }
    char err[512];
    struct auth_snapshot *snap = snapshot_load(&b.cfg, 1, b.eng.hash_key, err, sizeof(err));
    if (!snap) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    atomic_store(&b.auth, snap);
    if (a.test_only) {
        auth_snapshot_destroy(snap);
        if (reload_tls_check(&b.cfg))
            return 1;
        for (uint32_t i = 0; i < b.cfg.warning_count; i++)
            printf("warning: %s\n", b.cfg.warnings[i]);
        printf("%s: configuration OK%s\n", a.path ? a.path : "<default>",
               b.cfg.warning_count ? " (with the warnings above)" : "");
        return 0;
    }
    log_set_level(a.verbose ? LOG_LEVEL_DEBUG : b.cfg.log_level);
    log_set_thread(-1);
    if (log_open(&b.cfg, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        auth_snapshot_destroy(snap);
        return 1;
    }
    for (uint32_t i = 0; i < b.cfg.warning_count; i++)
        LOG(LOG_LEVEL_WARNING, "%s", b.cfg.warnings[i]);

    /* Signals are taken synchronously by this thread only: the shards and
     * the auth threads inherit the blocked mask and never see them. */
    sigset_t sigs;
    signals_taken(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "ringmq: signalfd: %s\n", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    /* Every TLS listener's files once, before any socket is bound: a bad
     * key then stops the start before a client (or a test's readiness
     * probe) could connect. The shards' own contexts come later. */
    if (probe_listeners(&b.cfg) || reload_tls_check(&b.cfg)) {
        auth_snapshot_destroy(snap);
        return 1;
    }
    if (broker_setup(&b))
        return 1;
    struct memwatch_state mw = {.interval_ms = MEM_SAMPLE_MS};
    unsigned created = 0, started = 0;
    rc = broker_start(&b, &mw, &created, &started);
    if (rc == 0) {
        notify_systemd("READY=1"); /* every listener is open */
        signal_loop(&b, &mw, sfd);
        notify_systemd("STOPPING=1");
    }
    broker_stop(&b, created, started);
    if (b.cfg.pid_file[0] && rc == 0)
        unlink(b.cfg.pid_file); /* best effort: after the drop the directory may be root's */
    if (rc == 0)
        LOG(LOG_LEVEL_NOTICE, "stopped");
    return rc;
}
