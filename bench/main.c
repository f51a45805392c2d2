/*
 * ringmq-bench: command line, phases and measurement window.
 *
 * The main thread parses the options, raises RLIMIT_NOFILE, starts one worker
 * per --threads and then only steers: it waits until every connection is set
 * up, opens the run (warm-up, then the measured window), prints a progress
 * line each second from the workers' snapshots, samples its own and the
 * broker's CPU time at the window's edges, drains, stops, joins and reports.
 * With --tls it builds the one TLS context the workers share (tls.h) before
 * they start and frees it after they are joined. The abuse scenario is two
 * such runs in a row (run_abuse), reported together by abuse.c.
 */
#include "abuse.h"
#include "bench.h"
#include "soak.h"
#include "tls.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SETUP_WAIT_NS  (30ull * 1000000000ull)
#define QUIET_DRAIN_NS (500000000ull)

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Raises the descriptor limit to the hard limit and says plainly when the
 * run will need more sockets than that. */
static void raise_nofile(const struct bench_opts *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t need;
    if (o->scenario == SCENARIO_CONNECT) {
        /* All may be open at once unless the rate and hold time keep the
         * number down. */
        need = o->clients;
        if (o->rate > 0) {
            double open = o->rate * (o->hold_s + 1.0);
            if (open < (double)need)
                need = (uint64_t)open;
        }
    } else if (o->scenario == SCENARIO_HANDSHAKE) {
        need = (uint64_t)o->conns + o->publishers + o->subscribers;
    } else if (o->scenario == SCENARIO_ABUSE) {
        need = (uint64_t)o->publishers + o->subscribers +
               (o->abuser == ABUSER_CONNECT ? o->conns : 1u);
    } else {
        need = (uint64_t)o->publishers + o->subscribers;
    }
    need += 16 + 2ull * bench_workers(o); /* stdio, rings, the JSON file */
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
        fprintf(stderr,
                "ringmq-bench: WARNING: this run may hold %llu sockets open but RLIMIT_NOFILE is "
                "%llu (hard limit); connections beyond that fail and are counted as "
                "out_of_sockets. Raise it with `ulimit -Hn` (root) or LimitNOFILE=.\n",
                (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

static double broker_cpu_s(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces and parentheses: fields restart
     * after the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
}

/* The broker's resident set (VmRSS) in KiB; -1 when it cannot be read. */
static double broker_rss_kib(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    double kib = -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (sscanf(line, "VmRSS: %llu kB", &v) == 1) {
            kib = (double)v;
            break;
        }
    }
    fclose(f);
    return kib;
}

static void self_cpu(double *user_s, double *sys_s)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {(time_t)(t_ns / 1000000000ull), (long)(t_ns % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !interrupted)
        ;
}

struct agg {
    struct bench_counters c;
    struct bench_counters x; /* abuse: the abuser's worker, not in c */
    struct hist lat_all;
    bool all_connect_done;
    uint32_t setup_done;
};

/* Workers from index nflow on are the abuser's: their counters go to x. */
static void aggregate(struct worker **ws, uint32_t n, uint32_t nflow, struct agg *a,
                      struct bench_snapshot *tmp)
{
    memset(&a->c, 0, sizeof(a->c));
    memset(&a->x, 0, sizeof(a->x));
    hist_init(&a->lat_all);
    a->all_connect_done = true;
    a->setup_done = 0;
    for (uint32_t i = 0; i < n; i++) {
        worker_snapshot(ws[i], tmp);
        if (i >= nflow) {
            bench_counters_add(&a->x, &tmp->c);
            if (tmp->setup_done)
                a->setup_done++;
            continue;
        }
        bench_counters_add(&a->c, &tmp->c);
        hist_merge(&a->lat_all, &tmp->lat_all);
        if (!tmp->connect_done)
            a->all_connect_done = false;
        if (tmp->setup_done)
            a->setup_done++;
    }
}

static const char *phase_name(int phase)
{
    static const char *names[] = {"setup", "run", "drain", "stop"};
    return names[phase];
}

static void progress(const struct bench_opts *o, int phase, double t_s, const struct agg *now,
                     const struct agg *prev, double dt_s)
{
    if (o->quiet)
        return;
    if (o->scenario == SCENARIO_CONNECT || o->scenario == SCENARIO_HANDSHAKE) {
        fprintf(stderr,
                "[%6.1fs] %-5s connects %llu ok %llu (%.0f/s) open %llu resumed %llu errors %llu",
                t_s, phase_name(phase), (unsigned long long)now->c.connects_started,
                (unsigned long long)now->c.connects_ok,
                (double)(now->c.connects_ok - prev->c.connects_ok) / dt_s,
                (unsigned long long)now->c.open_now, (unsigned long long)now->c.tls_resumed,
                (unsigned long long)(now->c.errors[BERR_CONNECT] + now->c.errors[BERR_CONNACK] +
                                     now->c.errors[BERR_SOCKETS] + now->c.errors[BERR_TIMEOUT] +
                                     now->c.errors[BERR_TLS]));
        if (o->probe)
            fprintf(stderr, " probe p99 %llu us",
                    (unsigned long long)hist_percentile(&now->lat_all, 99));
        fprintf(stderr, "\n");
        return;
    }
    fprintf(stderr, "[%6.1fs] %-5s sent %9.0f/s delivered %9.0f/s total %llu lost %llu p99 %llu us",
            t_s, phase_name(phase), (double)(now->c.sent - prev->c.sent) / dt_s,
            (double)(now->c.delivered - prev->c.delivered) / dt_s,
            (unsigned long long)now->c.delivered, (unsigned long long)now->c.lost_now,
            (unsigned long long)hist_percentile(&now->lat_all, 99));
    if (o->abuse_on && o->abuser == ABUSER_FLOOD)
        fprintf(stderr, " | flood %.0f/s", (double)(now->x.sent - prev->x.sent) / dt_s);
    else if (o->abuse_on)
        fprintf(stderr, " | storm accepted %.0f/s refused %.0f/s",
                (double)(now->x.connects_ok - prev->x.connects_ok) / dt_s,
                (double)(now->x.connects_refused - prev->x.connects_refused) / dt_s);
    fprintf(stderr, "\n");
}

/* One run's state on the main thread. */
struct run {
    struct bench_opts o;
    struct bench_ctl ctl;
    struct worker **ws;
    uint32_t nworkers;
    uint32_t nflow; /* workers before the abuser's (all of them without one) */
    struct bench_snapshot *tmp;
    struct agg *cur, *prev;
    struct bench_result *res;
    /* The loop. */
    uint64_t run_start, win_start, win_end, next_progress, prev_t;
    uint64_t drain_start, quiet_since, last_delivered;
    int phase;
    double cpu_u0, cpu_s0, cpu_u1, cpu_s1, b0, b1;
    bool sampled_start, sampled_end;
};

static int start_workers(struct run *r)
{
    for (uint32_t i = 0; i < r->nworkers; i++) {
        r->ws[i] = worker_create(&r->ctl, i);
        if (!r->ws[i])
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < r->nworkers; i++) {
        int e = worker_start(r->ws[i]);
        if (e) {
            fprintf(stderr, "ringmq-bench: pthread_create: %s\n", strerror(-e));
            return e;
        }
    }
    return 0;
}

/* Setup: every connection connected (and subscribed) before anyone
 * publishes, so that sequence 0 is the first message a stream expects. */
static bool wait_setup(struct run *r)
{
    const struct bench_opts *o = &r->o;
    uint64_t t0 = bench_now_ns();
    bool ok = true;
    while (atomic_load(&r->ctl.ready) < r->nworkers) {
        if (atomic_load(&r->ctl.failed) > 0 || interrupted || bench_now_ns() - t0 > SETUP_WAIT_NS) {
            ok = false;
            break;
        }
        sleep_until(bench_now_ns() + 10000000ull);
    }
    if (!ok) {
        aggregate(r->ws, r->nworkers, r->nflow, r->cur, r->tmp);
        fprintf(stderr, "ringmq-bench: setup failed: %u of %u threads ready after %.1f s (",
                atomic_load(&r->ctl.ready), r->nworkers, (double)(bench_now_ns() - t0) / 1e9);
        for (int e = 0; e < BERR_COUNT; e++)
            if (r->cur->c.errors[e])
                fprintf(stderr, " %s=%llu", bench_err_names[e],
                        (unsigned long long)r->cur->c.errors[e]);
        fprintf(stderr, " )\n");
    }
    double setup_s = (double)(bench_now_ns() - t0) / 1e9;
    if (!o->quiet && ok && o->scenario != SCENARIO_CONNECT && o->publishers + o->subscribers)
        fprintf(stderr, "ringmq-bench: %u connections set up in %.2f s\n",
                o->publishers + o->subscribers, setup_s);
    return ok;
}

static void sample_start(struct run *r)
{
    self_cpu(&r->cpu_u0, &r->cpu_s0);
    r->b0 = broker_cpu_s(r->o.broker_pid);
    r->sampled_start = true;
}

static void sample_end(struct run *r)
{
    self_cpu(&r->cpu_u1, &r->cpu_s1);
    r->b1 = broker_cpu_s(r->o.broker_pid);
    r->sampled_end = true;
}

/* Ends the measured window now (interrupted, a storm that is done). */
static void cut_window(struct run *r, uint64_t now)
{
    if (now < r->win_end) {
        r->win_end = now;
        atomic_store(&r->ctl.win_end_ns, now);
    }
    if (!r->sampled_end)
        sample_end(r);
}

/* Connect storm: the window is the whole storm; it ends when every
 * connection is done or at the time limit. */
static void connect_turn(struct run *r, uint64_t now, const struct agg *a)
{
    if (a->c.open_now == r->o.clients && a->c.connects_ok == r->o.clients)
        r->res->broker_rss_kib_open = broker_rss_kib(r->o.broker_pid); /* the last one counts */
    if (a->all_connect_done || now >= r->win_end || interrupted) {
        cut_window(r, now);
        r->phase = PHASE_STOP;
    }
}

/* Publishing scenarios (and the handshake storm): run, then drain until
 * deliveries stop, then stop. */
static void flow_turn(struct run *r, uint64_t now, const struct agg *a)
{
    const struct bench_opts *o = &r->o;
    if (r->phase == PHASE_RUN && o->scenario == SCENARIO_HANDSHAKE) {
        if (atomic_load_explicit(&r->ctl.fatal, memory_order_acquire)) {
            r->res->tls_failed = true;
            cut_window(r, now);
        } else if (o->clients && a->all_connect_done) {
            cut_window(r, now);
        }
    }
    if (r->phase == PHASE_RUN && now >= r->win_end) {
        r->phase = PHASE_DRAIN;
        r->drain_start = now;
        atomic_store_explicit(&r->ctl.phase, PHASE_DRAIN, memory_order_release);
        return;
    }
    if (r->phase != PHASE_DRAIN)
        return;
    if (a->c.delivered != r->last_delivered) {
        r->last_delivered = a->c.delivered;
        r->quiet_since = now;
    }
    bool quiet = a->c.pending == 0 && r->quiet_since && now - r->quiet_since >= QUIET_DRAIN_NS;
    if (r->quiet_since == 0)
        r->quiet_since = now;
    bool timed_out = now - r->drain_start >= (uint64_t)(o->drain_s * 1e9);
    if (quiet || timed_out || interrupted > 0) {
        r->phase = PHASE_STOP;
        r->res->drain_s = (double)(now - r->drain_start) / 1e9;
        r->res->drain_timed_out = !quiet && timed_out;
    }
}

static void run_loop(struct run *r)
{
    const struct bench_opts *o = &r->o;
    bool storm = o->scenario == SCENARIO_CONNECT || o->scenario == SCENARIO_HANDSHAKE;
    aggregate(r->ws, r->nworkers, r->nflow, r->prev, r->tmp);
    r->next_progress = r->run_start + 1000000000ull;
    r->prev_t = r->run_start;
    while (r->phase != PHASE_STOP) {
        uint64_t wake = r->next_progress;
        if (!r->sampled_start && r->win_start < wake)
            wake = r->win_start;
        if (!r->sampled_end && r->win_end < wake)
            wake = r->win_end;
        if (r->phase == PHASE_DRAIN || storm) {
            uint64_t soon = bench_now_ns() + 50000000ull;
            if (soon < wake)
                wake = soon;
        }
        sleep_until(wake);
        uint64_t now = bench_now_ns();
        if (!r->sampled_start && now >= r->win_start)
            sample_start(r);
        if (interrupted && r->phase == PHASE_RUN) {
            r->res->interrupted = true;
            cut_window(r, now);
        }
        if (!r->sampled_end && now >= r->win_end)
            sample_end(r);
        aggregate(r->ws, r->nworkers, r->nflow, r->cur, r->tmp);
        if (now >= r->next_progress) {
            progress(o, r->phase, (double)(now - r->run_start) / 1e9, r->cur, r->prev,
                     (double)(now - r->prev_t) / 1e9);
            struct agg *t = r->prev;
            r->prev = r->cur;
            r->cur = t;
            r->prev_t = now;
            r->next_progress += 1000000000ull;
        }
        const struct agg *a = (r->prev_t == now) ? r->prev : r->cur;
        if (o->scenario == SCENARIO_CONNECT)
            connect_turn(r, now, a);
        else
            flow_turn(r, now, a);
    }
}

/* A worker's counters over its measured window, and the window's length in
 * seconds (0 when it has none). */
static double window_of(const struct bench_snapshot *tmp, struct bench_counters *d)
{
    memset(d, 0, sizeof(*d));
    if (!tmp->win_started || !tmp->win_ended || tmp->win_end_ns <= tmp->win_start_ns)
        return 0;
    *d = tmp->win_end;
    const uint64_t *s = (const uint64_t *)&tmp->win_start;
    uint64_t *dd = (uint64_t *)d;
    for (size_t k = 0; k < sizeof(*d) / sizeof(uint64_t); k++)
        dd[k] -= s[k];
    return (double)(tmp->win_end_ns - tmp->win_start_ns) / 1e9;
}

/* The abuser's worker (one): kept apart from the well-behaved figures. */
static void collect_abuser(struct bench_result *res, const struct bench_snapshot *tmp)
{
    struct bench_counters d;
    bench_counters_add(&res->abuser_total, &tmp->c);
    res->abuser_window_s = window_of(tmp, &d);
    bench_counters_add(&res->abuser_window, &d);
    hist_merge(&res->abuser_conn_lat, &tmp->conn_lat);
}

/* Sums the workers' final snapshots and their windows into r->res. */
static void collect(struct run *r)
{
    struct bench_result *res = r->res;
    double win_sum = 0;
    uint32_t win_n = 0;
    uint64_t first_connect = UINT64_MAX, last_connack = 0;
    for (uint32_t i = 0; i < r->nworkers; i++) {
        struct bench_snapshot *tmp = r->tmp;
        worker_snapshot(r->ws[i], tmp);
        if (i >= r->nflow) {
            collect_abuser(res, tmp);
            continue;
        }
        bench_counters_add(&res->total, &tmp->c);
        hist_merge(&res->lat, &tmp->lat_win);
        hist_merge(&res->lat_all, &tmp->lat_all);
        hist_merge(&res->conn_lat, &tmp->conn_lat);
        if (tmp->first_connect_ns && tmp->first_connect_ns < first_connect)
            first_connect = tmp->first_connect_ns;
        if (tmp->last_connack_ns > last_connack)
            last_connack = tmp->last_connack_ns;
        struct bench_counters d;
        double w = window_of(tmp, &d);
        if (w <= 0)
            continue;
        bench_counters_add(&res->window, &d);
        res->offered_per_s += (double)d.offered / w;
        res->sent_per_s += (double)d.sent / w;
        res->accepted_per_s += (double)d.accepted / w;
        res->delivered_per_s += (double)d.delivered / w;
        win_sum += w;
        win_n++;
    }
    res->window_s = win_n ? win_sum / win_n : 0;
    res->connect_s =
        last_connack > first_connect ? (double)(last_connack - first_connect) / 1e9 : 0;
}

/* Final loss: sent - unique per stream (or per publisher with --shared). */
static void collect_loss(struct run *r)
{
    const struct bench_opts *o = &r->o;
    struct bench_result *res = r->res;
    uint64_t *unique_by_pub = calloc(o->publishers ? o->publishers : 1, sizeof(uint64_t));
    if (!unique_by_pub)
        return;
    for (uint32_t i = 0; i < r->nworkers; i++)
        worker_final_loss(r->ws[i], &res->lost, &res->expected, unique_by_pub);
    if (o->shared) {
        for (uint32_t p = 0; p < o->publishers; p++) {
            res->expected += r->ctl.pub_sent[p];
            if (r->ctl.pub_sent[p] > unique_by_pub[p])
                res->lost += r->ctl.pub_sent[p] - unique_by_pub[p];
        }
    }
    free(unique_by_pub);
}

/* The CPU and TLS figures of a finished run. */
static void finish_result(struct run *r)
{
    struct bench_result *res = r->res;
    const struct bench_opts *o = &r->o;
    res->bench_user_s = r->sampled_end ? r->cpu_u1 - r->cpu_u0 : 0;
    res->bench_sys_s = r->sampled_end ? r->cpu_s1 - r->cpu_s0 : 0;
    res->broker_cpu_s = (r->b0 >= 0 && r->b1 >= 0) ? r->b1 - r->b0 : -1;
    if (o->broker_pid && res->broker_cpu_s < 0)
        fprintf(stderr, "ringmq-bench: could not read /proc/%d/stat\n", o->broker_pid);
    res->tls_tickets = btls_ctx_tickets(r->ctl.tls);
    res->tls_desc = btls_ctx_describe(r->ctl.tls);
}

static int report(struct run *r)
{
    struct bench_result *res = r->res;
    const struct bench_opts *o = &r->o;
    finish_result(r);
    report_print(res);
    int rc = res->setup_failed ? 1 : 0;
    /* A storm in which no handshake got through, or one a TLS failure or a
     * refused connect stopped (a certificate that does not verify, an
     * alert, no broker), failed. */
    if (o->scenario == SCENARIO_HANDSHAKE && (res->tls_failed || res->total.connects_ok == 0))
        rc = 1;
    if (o->json_path) {
        int e = report_json(res, o->json_path);
        if (e) {
            fprintf(stderr, "ringmq-bench: %s: %s\n", o->json_path, strerror(-e));
            rc = 1;
        }
    }
    return rc;
}

/* One run from setup to the collected result in r->res; 0, or 1 when
 * memory was short. */
static int run_once(struct run *r)
{
    const struct bench_opts *o = &r->o;
    r->ctl.opts = o;
    atomic_store(&r->ctl.win_start_ns, UINT64_MAX);
    atomic_store(&r->ctl.win_end_ns, UINT64_MAX);
    r->nworkers = bench_workers(o);
    r->nflow = o->abuse_on ? o->threads : r->nworkers;
    /* One slot more than publishers: the abuse flood's, numbered
     * --publishers. */
    r->ctl.pub_sent = calloc((size_t)o->publishers + 1, sizeof(uint64_t));
    r->ws = calloc(r->nworkers, sizeof(*r->ws));
    r->tmp = malloc(sizeof(*r->tmp));
    r->cur = malloc(sizeof(*r->cur));
    r->prev = malloc(sizeof(*r->prev));
    r->res = calloc(1, sizeof(*r->res));
    if (!r->ctl.pub_sent || !r->ws || !r->tmp || !r->cur || !r->prev || !r->res) {
        fprintf(stderr, "ringmq-bench: out of memory\n");
        return 1;
    }
    r->res->broker_rss_kib_before = r->res->broker_rss_kib_open = -1;
    if (start_workers(r) != 0)
        exit(1); /* threads may be running: nothing can be freed under them */
    bool setup_ok = wait_setup(r);

    r->run_start = bench_now_ns();
    r->win_start = r->run_start + (uint64_t)(o->warmup_s * 1e9);
    r->win_end = r->win_start + (uint64_t)(o->duration_s * 1e9);
    r->ctl.run_start_ns = r->run_start;
    atomic_store(&r->ctl.win_start_ns, r->win_start);
    atomic_store(&r->ctl.win_end_ns, r->win_end);
    r->b0 = r->b1 = -1;
    r->res->broker_rss_kib_before = broker_rss_kib(o->broker_pid);
    if (setup_ok) {
        atomic_store_explicit(&r->ctl.phase, PHASE_RUN, memory_order_release);
        if (o->warmup_s == 0)
            sample_start(r);
    }
    r->phase = setup_ok ? PHASE_RUN : PHASE_STOP;
    run_loop(r);
    atomic_store_explicit(&r->ctl.phase, PHASE_STOP, memory_order_release);
    for (uint32_t i = 0; i < r->nworkers; i++)
        worker_join(r->ws[i]);

    struct bench_result *res = r->res;
    res->opts = o;
    res->setup_failed = !setup_ok;
    res->interrupted = res->interrupted || interrupted;
    hist_init(&res->lat);
    hist_init(&res->lat_all);
    hist_init(&res->conn_lat);
    hist_init(&res->abuser_conn_lat);
    collect(r);
    collect_loss(r);
    return 0;
}

/* The abuse scenario: the same pairs twice, alone and then beside the
 * abuser, each run with its own connections, warm-up, window and drain, so
 * both windows see the same load from them; abuse.c reports both. */
static int run_abuse(struct run *base, struct run *with)
{
    with->o = base->o;
    with->ctl.tls = base->ctl.tls;
    base->o.abuse_on = false;
    with->o.abuse_on = true;
    const struct bench_opts *o = &base->o;
    if (!o->quiet)
        fprintf(stderr, "ringmq-bench: abuse run 1 of 2: %u pairs alone\n", o->publishers);
    if (run_once(base) != 0)
        return 1;
    finish_result(base);
    bool second = !base->res->setup_failed && !interrupted;
    if (second) {
        /* The broker closes the first run's connections (the bench's
         * DISCONNECT) before the second run's come. */
        sleep_until(bench_now_ns() + 500000000ull);
        if (!o->quiet)
            fprintf(stderr, "ringmq-bench: abuse run 2 of 2: %u pairs and the abuser (%s)\n",
                    o->publishers, o->abuser == ABUSER_FLOOD ? "flood" : "connect storm");
        if (run_once(with) != 0)
            return 1;
        finish_result(with);
    }
    return abuse_report(base->res, second ? with->res : NULL);
}

static int run_bench(struct run *r)
{
    if (run_once(r) != 0)
        return 1;
    return report(r);
}

static void run_free(struct run *r)
{
    for (uint32_t i = 0; r->ws && i < r->nworkers; i++)
        worker_destroy(r->ws[i]);
    free(r->ws);
    free(r->ctl.pub_sent);
    free(r->tmp);
    free(r->cur);
    free(r->prev);
    free(r->res);
}

int main(int argc, char **argv)
{
    static struct run r, r2; /* large (histograms): not on the stack */
    if (bench_opts_parse(argc, argv, &r.o) != 0)
        return 2;
    raise_nofile(&r.o);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (r.o.scenario == SCENARIO_SOAK)
        return soak_run(&r.o, &interrupted);
    if (r.o.tls) {
        r.ctl.tls = btls_ctx_create(&r.o);
        if (!r.ctl.tls)
            return 2; /* a file that does not load is a bad option */
    }
    int rc = r.o.scenario == SCENARIO_ABUSE ? run_abuse(&r, &r2) : run_bench(&r);
    run_free(&r);
    run_free(&r2);
    btls_ctx_destroy(r.ctl.tls);
    return rc;
}
