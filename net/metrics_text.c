/*
 * The /metrics body: core/metrics.c's table (the counters every shard
 * keeps and the broker-wide values, the same numbers $SYS and SIGUSR1
 * show), then what only the runtime knows: the build, the inbound
 * cross-shard queues, the shards' loop lag, the TLS certificates'
 * expiry, the allocator's resident bytes, and the standard process_*
 * series of the Prometheus client libraries (from /proc/self).
 *
 * Read-only: relaxed loads of the shards' atomics and the broker's; any
 * thread (the metrics thread calls it per scrape).
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "memwatch.h"
#include "metrics_http.h"
#include "shard.h"
#include "xq.h"

/* A growing text; on allocation failure it stays failed and says so. */
struct text {
    char *buf;
    size_t len, cap;
    bool failed;
};

static bool text_room(struct text *t, size_t more)
{
    if (t->failed)
        return false;
    if (t->len + more + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + more + 1)
        cap *= 2;
    char *nb = realloc(t->buf, cap);
    if (!nb) {
        t->failed = true;
        return false;
    }
    t->buf = nb;
    t->cap = cap;
    return true;
}

__attribute__((format(printf, 2, 3))) static void tput(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || !text_room(t, (size_t)need))
        return;
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)need;
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    tput(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the text format wants it: backslash, quote and newline
 * escaped. Addresses and versions hold none, but the rule costs nothing. */
static void put_label(struct text *t, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            tput(t, "\\%c", *v);
        else if (*v == '\n')
            tput(t, "\\n");
        else
            tput(t, "%c", *v);
    }
}

static void shards_part(struct text *t, struct broker *b)
{
    family(t, "ringmq_shard_queue_depth", "gauge",
           "Items waiting in a shard's inbound cross-shard queues now.");
    for (unsigned i = 0; i < b->shard_count; i++) {
        uint64_t d = 0;
        for (unsigned j = 0; j < b->shard_count; j++)
            if (b->shards[i]->inq[j])
                d += xq_depth(b->shards[i]->inq[j]);
        tput(t, "ringmq_shard_queue_depth{shard=\"%u\"} %" PRIu64 "\n", i, d);
    }
    family(t, "ringmq_shard_overloaded", "gauge",
           "1 while a shard refuses new CONNECTs because its loop lags (overload_lag_ms).");
    for (unsigned i = 0; i < b->shard_count; i++)
        tput(t, "ringmq_shard_overloaded{shard=\"%u\"} %d\n", i,
             atomic_load_explicit(&b->shards[i]->overloaded, memory_order_relaxed) ? 1 : 0);
    family(t, "ringmq_loop_lag_seconds", "histogram",
           "How late a shard's 100 ms tick ran: the time its loop took to come back to it.");
    static const uint32_t bounds[] = SHARD_LAG_BOUNDS_MS;
    for (unsigned i = 0; i < b->shard_count; i++) {
        struct shard *sh = b->shards[i];
        uint64_t cum = 0;
        for (unsigned k = 0; k < SHARD_LAG_BUCKETS; k++) {
            cum += atomic_load_explicit(&sh->lag_hist[k], memory_order_relaxed);
            if (k + 1 < SHARD_LAG_BUCKETS)
                tput(t, "ringmq_loop_lag_seconds_bucket{shard=\"%u\",le=\"%g\"} %" PRIu64 "\n", i,
                     bounds[k] / 1000.0, cum);
            else
                tput(t, "ringmq_loop_lag_seconds_bucket{shard=\"%u\",le=\"+Inf\"} %" PRIu64 "\n", i,
                     cum);
        }
        uint64_t sum = atomic_load_explicit(&sh->lag_sum_ms, memory_order_relaxed);
        tput(t, "ringmq_loop_lag_seconds_sum{shard=\"%u\"} %.3f\n", i, (double)sum / 1000.0);
        tput(t, "ringmq_loop_lag_seconds_count{shard=\"%u\"} %" PRIu64 "\n", i, cum);
    }
}

static void tls_part(struct text *t, struct broker *b)
{
    bool any = false;
    for (unsigned li = 0; li < b->cfg.listener_count; li++) {
        int64_t at = atomic_load_explicit(&b->tls_not_after[li], memory_order_relaxed);
        if (!b->cfg.listeners[li].tls.enabled || at == 0)
            continue;
        if (!any)
            family(t, "ringmq_tls_certificate_expiry_timestamp_seconds", "gauge",
                   "When the first of a TLS listener's certificates expires (Unix time).");
        any = true;
        const struct config_listener *l = &b->cfg.listeners[li];
        char where[96];
        snprintf(where, sizeof(where), "%s%s%s:%u", strchr(l->address, ':') ? "[" : "",
                 l->address[0] ? l->address : "*", strchr(l->address, ':') ? "]" : "",
                 b->listen_port[li]);
        tput(t, "ringmq_tls_certificate_expiry_timestamp_seconds{listener=\"");
        put_label(t, where);
        tput(t, "\"} %" PRId64 "\n", at);
    }
}

/* /proc/self/stat fields 14, 15 (utime, stime: ticks), 22 (starttime:
 * ticks since boot), 23 (vsize: bytes), 24 (rss: pages). The command
 * name (field 2) may hold spaces and parentheses: fields are counted from
 * the last ')'. */
static bool proc_stat(double *cpu_s, double *start_s, uint64_t *vsize, uint64_t *rss)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return false;
    unsigned long long f[25] = {0};
    int field = 2;
    for (char *save = NULL, *tok = strtok_r(p + 1, " ", &save); tok && field < 24;
         tok = strtok_r(NULL, " ", &save)) {
        field++;
        f[field] = strtoull(tok, NULL, 10);
    }
    if (field < 24)
        return false;
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (hz <= 0 || page <= 0)
        return false;
    *cpu_s = (double)(f[14] + f[15]) / (double)hz;
    *vsize = f[23];
    *rss = f[24] * (uint64_t)page;
    /* Boot time from /proc/stat's btime line. */
    double btime = 0;
    FILE *st = fopen("/proc/stat", "re");
    if (st) {
        char line[256];
        while (fgets(line, sizeof(line), st))
            if (strncmp(line, "btime ", 6) == 0) {
                btime = strtod(line + 6, NULL);
                break;
            }
        fclose(st);
    }
    *start_s = btime + (double)f[22] / (double)hz;
    return true;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void process_part(struct text *t)
{
    double cpu = 0, start = 0;
    uint64_t vsize = 0, rss = 0;
    if (proc_stat(&cpu, &start, &vsize, &rss)) {
        family(t, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
        tput(t, "process_cpu_seconds_total %.2f\n", cpu);
        family(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        tput(t, "process_resident_memory_bytes %" PRIu64 "\n", rss);
        family(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        tput(t, "process_virtual_memory_bytes %" PRIu64 "\n", vsize);
        family(t, "process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.");
        tput(t, "process_start_time_seconds %.2f\n", start);
    }
    long fds = open_fds();
    if (fds >= 0) {
        family(t, "process_open_fds", "gauge", "Number of open file descriptors.");
        tput(t, "process_open_fds %ld\n", fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        family(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        tput(t, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}

char *metrics_text(struct broker *b, int ready, size_t *len)
{
    struct text t = {0};
    const struct metrics_shard *st[SHARDS_MAX];
    for (unsigned i = 0; i < b->shard_count; i++)
        st[i] = &b->eng.engines[i]->st;
    uint64_t bv[METRICS_BROKER_COUNT];
    sys_broker_values(b, broker_now_ms(), bv);
    /* The table's text can grow between the two calls (a counter gains a
     * digit): render until it fits. */
    for (int tries = 0; tries < 4; tries++) {
        size_t need = metrics_render(NULL, 0, st, b->shard_count, bv);
        if (!text_room(&t, need + 256))
            break;
        size_t got = metrics_render(t.buf, t.cap, st, b->shard_count, bv);
        if (got < t.cap) {
            t.len = got;
            break;
        }
    }
    family(&t, "ringmq_build_info", "gauge", "The running ringmq build: always 1.");
    tput(&t, "ringmq_build_info{version=\"");
    put_label(&t, RINGMQ_VERSION);
    tput(&t, "\"} 1\n");
    if (ready >= 0) {
        family(&t, "ringmq_ready", "gauge",
               "1 when every shard turns its loop and accepts new connections (as /readyz).");
        tput(&t, "ringmq_ready %d\n", ready);
    }
    shards_part(&t, b);
    tls_part(&t, b);
    uint64_t resident = 0;
    if (memwatch_resident(&resident) == 0) {
        family(&t, "ringmq_memory_resident_bytes", "gauge",
               "Bytes in pages the allocator maps and has touched (jemalloc stats.resident).");
        tput(&t, "ringmq_memory_resident_bytes %" PRIu64 "\n", resident);
    }
    process_part(&t);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    *len = t.len;
    return t.buf;
}
