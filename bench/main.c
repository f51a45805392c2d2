/*
 * ringmq-bench: command line, phases and measurement window.
 *
 * The main thread parses the options, raises RLIMIT_NOFILE, starts one worker
 * per --threads and then only steers: it waits until every connection is set
 * up, opens the run (warm-up, then the measured window), prints a progress
 * line each second from the workers' snapshots, samples its own and the
 * broker's CPU time at the window's edges, drains, stops, joins and reports.
 */
#include "bench.h"
#include "codec.h"
#include "soak.h"

#include <errno.h>
#include <getopt.h>
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

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringmq-bench SCENARIO [options]\n"
            "\n"
            "scenarios:\n"
            "  pairs     N publishers, each to its own topic, N subscribers (--clients N)\n"
            "  fanout    P publishers to one topic, S subscribers (--clients sets S)\n"
            "  fanin     P publishers (--clients sets P), S subscribers on a wildcard\n"
            "            (or a shared subscription with --shared)\n"
            "  latency   N pairs, fixed low rate, one message in flight per publisher\n"
            "  connect   connection storm: --clients total, --rate per second, --hold S\n"
            "  soak      chaos soak: QoS 1/2 publishers, persistent and shared subscribers,\n"
            "            random clients killed and resumed; checks nothing acknowledged is\n"
            "            lost and no QoS 2 message is duplicated (exit 1 if so)\n"
            "\n"
            "options:\n"
            "  --host H              broker address (127.0.0.1)\n"
            "  --port P              broker port (1883)\n"
            "  --protocol 3.1.1|5    MQTT version (3.1.1)\n"
            "  --qos 0|1|2           publish and subscribe QoS (0)\n"
            "  --clients N           see above\n"
            "  --publishers N, --subscribers N\n"
            "  --payload BYTES       payload size, at least 20 (64)\n"
            "  --rate R              messages/s per publisher; connect: connections/s;\n"
            "                        0 = as fast as the broker accepts (latency: 100)\n"
            "  --duration S          measured window (10; connect: time limit, 60)\n"
            "  --warmup S            time before the window (2; connect: 0)\n"
            "  --threads N           worker threads, one io_uring each (CPUs / 2)\n"
            "  --client-prefix S     client id prefix (rb<pid>)\n"
            "  --topic-prefix S      topic prefix (bench)\n"
            "  --username U, --password P\n"
            "  --keepalive S         (60)\n"
            "  --broker-pid PID      report the broker's CPU per delivered message\n"
            "  --json FILE           write the results as JSON\n"
            "  --inflight N          QoS 1/2 window per publisher (64)\n"
            "  --batch-bytes N       publisher send buffer (65536)\n"
            "  --hold S              connect: seconds each connection stays open (1)\n"
            "  --drain S             at most this long for in-flight messages after the run (10)\n"
            "  --connect-concurrency N  connects in progress per thread (256)\n"
            "  --shared              fanin: $share/bench/... subscription\n"
            "  --quiet               no progress line\n"
            "\n"
            "soak (defaults differ: --clients 12, --rate 100, --duration 30, --drain 30,\n"
            "--protocol 5, --inflight 20; --qos 1 or 2 makes every publisher that QoS, else\n"
            "they alternate):\n"
            "  --kill-interval S     mean time between kills (0.5; 0: no kills)\n"
            "  --seed N              chaos random seed (from the clock; printed)\n"
            "  --groups N            share groups among the subscribers (2, or fewer when\n"
            "                        there are few); a quarter of the subscribers (at\n"
            "                        least one) stay plain, the rest are dealt to groups\n");
}

static int parse_u32(const char *name, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max) {
        fprintf(stderr, "ringmq-bench: --%s: want an integer in [%u, %u], got '%s'\n", name, min,
                max, s);
        return -EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_double(const char *name, const char *s, double min, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= min) || v > 1e12) {
        fprintf(stderr, "ringmq-bench: --%s: want a number >= %g, got '%s'\n", name, min, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

enum {
    O_HOST = 256,
    O_PORT,
    O_PROTOCOL,
    O_QOS,
    O_CLIENTS,
    O_PUBLISHERS,
    O_SUBSCRIBERS,
    O_PAYLOAD,
    O_RATE,
    O_DURATION,
    O_WARMUP,
    O_THREADS,
    O_CLIENT_PREFIX,
    O_TOPIC_PREFIX,
    O_USERNAME,
    O_PASSWORD,
    O_KEEPALIVE,
    O_BROKER_PID,
    O_JSON,
    O_INFLIGHT,
    O_BATCH,
    O_HOLD,
    O_DRAIN,
    O_CONCURRENCY,
    O_SHARED,
    O_QUIET,
    O_KILL_INTERVAL,
    O_SEED,
    O_GROUPS,
    O_HELP,
};

static const struct option long_opts[] = {
    {"host", required_argument, 0, O_HOST},
    {"port", required_argument, 0, O_PORT},
    {"protocol", required_argument, 0, O_PROTOCOL},
    {"qos", required_argument, 0, O_QOS},
    {"clients", required_argument, 0, O_CLIENTS},
    {"publishers", required_argument, 0, O_PUBLISHERS},
    {"subscribers", required_argument, 0, O_SUBSCRIBERS},
    {"payload", required_argument, 0, O_PAYLOAD},
    {"rate", required_argument, 0, O_RATE},
    {"duration", required_argument, 0, O_DURATION},
    {"warmup", required_argument, 0, O_WARMUP},
    {"threads", required_argument, 0, O_THREADS},
    {"client-prefix", required_argument, 0, O_CLIENT_PREFIX},
    {"topic-prefix", required_argument, 0, O_TOPIC_PREFIX},
    {"username", required_argument, 0, O_USERNAME},
    {"password", required_argument, 0, O_PASSWORD},
    {"keepalive", required_argument, 0, O_KEEPALIVE},
    {"broker-pid", required_argument, 0, O_BROKER_PID},
    {"json", required_argument, 0, O_JSON},
    {"inflight", required_argument, 0, O_INFLIGHT},
    {"batch-bytes", required_argument, 0, O_BATCH},
    {"hold", required_argument, 0, O_HOLD},
    {"drain", required_argument, 0, O_DRAIN},
    {"connect-concurrency", required_argument, 0, O_CONCURRENCY},
    {"shared", no_argument, 0, O_SHARED},
    {"quiet", no_argument, 0, O_QUIET},
    {"kill-interval", required_argument, 0, O_KILL_INTERVAL},
    {"seed", required_argument, 0, O_SEED},
    {"groups", required_argument, 0, O_GROUPS},
    {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0},
};

/* Options the user gave, where a scenario's default differs. */
struct given {
    bool protocol, drain, seed, groups, inflight;
};

/* The soak's counts and defaults (see bench/README.md, Soak). */
static int soak_defaults(struct bench_opts *o, uint32_t clients, uint32_t pubs, uint32_t subs,
                         const struct given *given)
{
    if (clients == 0)
        clients = 12;
    o->publishers = pubs ? pubs : (clients / 3 > 2 ? clients / 3 : 2);
    if (subs)
        o->subscribers = subs;
    else if (clients > o->publishers)
        o->subscribers = clients - o->publishers;
    else
        o->subscribers = 1;
    if (o->publishers + o->subscribers > SOAK_CLIENTS_MAX) {
        fprintf(stderr, "ringmq-bench: soak: at most %u clients\n", SOAK_CLIENTS_MAX);
        return -EINVAL;
    }
    if (!given->groups)
        o->groups = (o->subscribers - 1) / 2 < 2 ? (o->subscribers - 1) / 2 : 2;
    /* A quarter plain (at least one), the rest dealt to the groups. */
    uint32_t plain = o->groups ? (o->subscribers / 4 ? o->subscribers / 4 : 1) : 0;
    if (o->groups && o->subscribers < plain + o->groups) {
        fprintf(stderr, "ringmq-bench: soak: %u groups need at least %u subscribers\n", o->groups,
                plain + o->groups);
        return -EINVAL;
    }
    if (o->qos == 0 && o->publishers < 2)
        fprintf(stderr, "ringmq-bench: soak: one publisher: QoS 1 only (use --qos 2 or "
                        "--publishers 2 for QoS 2)\n");
    if (o->rate < 0)
        o->rate = 100;
    if (o->duration_s < 0)
        o->duration_s = 30;
    if (!given->drain)
        o->drain_s = 30;
    if (!given->protocol)
        o->version = MQTT_V5;
    /* 3.1.1 has no Receive Maximum to learn the broker's limit from:
     * stay within the usual max_inflight_messages (ringmq's and
     * mosquitto's default, 20). */
    if (!given->inflight)
        o->inflight = 20;
    if (!given->seed)
        o->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    o->warmup_s = 0;
    o->threads = 1;
    if (strpbrk(o->client_prefix, "/+#") || strpbrk(o->topic_prefix, "+#")) {
        fprintf(stderr, "ringmq-bench: soak: --client-prefix may not hold / + #, "
                        "--topic-prefix not + #\n");
        return -EINVAL;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    static char prefix[64];
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            usage(stdout);
            exit(0);
        }
        usage(stderr);
        return -EINVAL;
    }
    const char *sc = argv[1];
    if (!strcmp(sc, "pairs"))
        o->scenario = SCENARIO_PAIRS;
    else if (!strcmp(sc, "fanout"))
        o->scenario = SCENARIO_FANOUT;
    else if (!strcmp(sc, "fanin"))
        o->scenario = SCENARIO_FANIN;
    else if (!strcmp(sc, "latency"))
        o->scenario = SCENARIO_LATENCY;
    else if (!strcmp(sc, "connect"))
        o->scenario = SCENARIO_CONNECT;
    else if (!strcmp(sc, "soak"))
        o->scenario = SCENARIO_SOAK;
    else {
        fprintf(stderr, "ringmq-bench: unknown scenario '%s'\n", sc);
        usage(stderr);
        return -EINVAL;
    }
    o->scenario_name = sc;

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(prefix, sizeof(prefix), "rb%ld", (long)getpid());
    o->host = "127.0.0.1";
    o->port = 1883;
    o->version = MQTT_V311;
    o->qos = 0;
    o->payload_len = 64;
    o->rate = -1; /* scenario default */
    o->duration_s = -1;
    o->warmup_s = -1;
    o->hold_s = 1;
    o->drain_s = 10;
    o->threads = ncpu >= 2 ? (uint32_t)(ncpu / 2) : 1;
    o->client_prefix = prefix;
    o->topic_prefix = "bench";
    o->keepalive_s = 60;
    o->inflight = 64;
    o->batch_bytes = 64 * 1024;
    o->connect_concurrency = 256;
    uint32_t clients = 0, pubs = 0, subs = 0, v;
    double d;
    struct given given = {0};
    o->kill_interval_s = 0.5;

    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        int r = 0;
        switch (ch) {
        case O_HOST:
            o->host = optarg;
            break;
        case O_PORT:
            r = parse_u32("port", optarg, 1, 65535, &v);
            o->port = (uint16_t)v;
            break;
        case O_PROTOCOL:
            if (!strcmp(optarg, "3.1.1") || !strcmp(optarg, "4"))
                o->version = MQTT_V311;
            else if (!strcmp(optarg, "5") || !strcmp(optarg, "5.0"))
                o->version = MQTT_V5;
            else {
                fprintf(stderr, "ringmq-bench: --protocol: 3.1.1 or 5\n");
                r = -EINVAL;
            }
            given.protocol = true;
            break;
        case O_QOS:
            r = parse_u32("qos", optarg, 0, 2, &v);
            o->qos = (uint8_t)v;
            break;
        case O_CLIENTS:
            r = parse_u32("clients", optarg, 1, 1000000, &clients);
            break;
        case O_PUBLISHERS:
            r = parse_u32("publishers", optarg, 1, 1000000, &pubs);
            break;
        case O_SUBSCRIBERS:
            r = parse_u32("subscribers", optarg, 1, 1000000, &subs);
            break;
        case O_PAYLOAD:
            r = parse_u32("payload", optarg, 20, 16 * 1024 * 1024, &o->payload_len);
            break;
        case O_RATE:
            r = parse_double("rate", optarg, 0, &o->rate);
            break;
        case O_DURATION:
            r = parse_double("duration", optarg, 0.1, &o->duration_s);
            break;
        case O_WARMUP:
            r = parse_double("warmup", optarg, 0, &o->warmup_s);
            break;
        case O_THREADS:
            r = parse_u32("threads", optarg, 1, 256, &o->threads);
            break;
        case O_CLIENT_PREFIX:
            o->client_prefix = optarg;
            break;
        case O_TOPIC_PREFIX:
            o->topic_prefix = optarg;
            break;
        case O_USERNAME:
            o->username = optarg;
            break;
        case O_PASSWORD:
            o->password = optarg;
            break;
        case O_KEEPALIVE:
            r = parse_u32("keepalive", optarg, 0, 65535, &v);
            o->keepalive_s = (uint16_t)v;
            break;
        case O_BROKER_PID:
            r = parse_u32("broker-pid", optarg, 1, 0x7fffffff, &v);
            o->broker_pid = (int)v;
            break;
        case O_JSON:
            o->json_path = optarg;
            break;
        case O_INFLIGHT:
            r = parse_u32("inflight", optarg, 1, 65535, &o->inflight);
            given.inflight = true;
            break;
        case O_BATCH:
            r = parse_u32("batch-bytes", optarg, 256, 64 * 1024 * 1024, &o->batch_bytes);
            break;
        case O_HOLD:
            r = parse_double("hold", optarg, 0, &o->hold_s);
            break;
        case O_DRAIN:
            r = parse_double("drain", optarg, 0, &d);
            o->drain_s = d;
            given.drain = true;
            break;
        case O_CONCURRENCY:
            r = parse_u32("connect-concurrency", optarg, 1, 1000000, &o->connect_concurrency);
            break;
        case O_SHARED:
            o->shared = true;
            break;
        case O_QUIET:
            o->quiet = true;
            break;
        case O_KILL_INTERVAL:
            r = parse_double("kill-interval", optarg, 0, &o->kill_interval_s);
            if (!r && o->kill_interval_s > 0 && o->kill_interval_s < 0.001) {
                fprintf(stderr, "ringmq-bench: --kill-interval: 0, or at least 0.001 s\n");
                r = -EINVAL;
            }
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            o->seed = strtoull(optarg, &end, 0);
            if (errno || *end || end == optarg) {
                fprintf(stderr, "ringmq-bench: --seed: want an integer, got '%s'\n", optarg);
                r = -EINVAL;
            }
            given.seed = true;
            break;
        }
        case O_GROUPS:
            r = parse_u32("groups", optarg, 0, 1000, &o->groups);
            given.groups = true;
            break;
        case O_HELP:
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -EINVAL;
        }
        if (r)
            return r;
    }
    if (optind < argc) {
        fprintf(stderr, "ringmq-bench: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }

    switch (o->scenario) {
    case SCENARIO_PAIRS:
        o->publishers = pubs ? pubs : clients ? clients : 4;
        o->subscribers = subs ? subs : o->publishers;
        if (o->subscribers != o->publishers) {
            fprintf(stderr, "ringmq-bench: pairs: publishers and subscribers must be equal\n");
            return -EINVAL;
        }
        break;
    case SCENARIO_LATENCY:
        o->publishers = o->subscribers = pubs ? pubs : clients ? clients : 1;
        if (o->rate < 0)
            o->rate = 100;
        break;
    case SCENARIO_FANOUT:
        o->publishers = pubs ? pubs : 1;
        o->subscribers = subs ? subs : clients ? clients : 100;
        break;
    case SCENARIO_FANIN:
        o->publishers = pubs ? pubs : clients ? clients : 100;
        o->subscribers = subs ? subs : 1;
        break;
    case SCENARIO_CONNECT:
        o->clients = clients ? clients : 1000;
        if (o->duration_s < 0)
            o->duration_s = 60;
        o->warmup_s = 0;
        break;
    case SCENARIO_SOAK: {
        int r = soak_defaults(o, clients, pubs, subs, &given);
        if (r)
            return r;
        break;
    }
    }
    if (o->rate < 0)
        o->rate = 0;
    if (o->duration_s < 0)
        o->duration_s = 10;
    if (o->warmup_s < 0)
        o->warmup_s = 2;
    if (o->shared && o->scenario != SCENARIO_FANIN) {
        fprintf(stderr, "ringmq-bench: --shared is for fanin\n");
        return -EINVAL;
    }
    if (o->scenario == SCENARIO_LATENCY && o->publishers % o->threads != 0 &&
        o->publishers < o->threads)
        o->threads = o->publishers;
    uint32_t conns = o->scenario == SCENARIO_CONNECT ? o->clients : o->publishers + o->subscribers;
    if (o->threads > conns)
        o->threads = conns;
    return 0;
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
    } else {
        need = (uint64_t)o->publishers + o->subscribers;
    }
    need += 16 + 2ull * o->threads; /* stdio, rings, the JSON file */
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
    struct hist lat_all;
    bool all_connect_done;
    uint32_t setup_done;
};

static void aggregate(struct worker **ws, uint32_t n, struct agg *a, struct bench_snapshot *tmp)
{
    memset(&a->c, 0, sizeof(a->c));
    hist_init(&a->lat_all);
    a->all_connect_done = true;
    a->setup_done = 0;
    for (uint32_t i = 0; i < n; i++) {
        worker_snapshot(ws[i], tmp);
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
    if (o->scenario == SCENARIO_CONNECT) {
        fprintf(stderr, "[%6.1fs] %-5s connects %llu ok %llu (%.0f/s) open %llu errors %llu\n", t_s,
                phase_name(phase), (unsigned long long)now->c.connects_started,
                (unsigned long long)now->c.connects_ok,
                (double)(now->c.connects_ok - prev->c.connects_ok) / dt_s,
                (unsigned long long)now->c.open_now,
                (unsigned long long)(now->c.errors[BERR_CONNECT] + now->c.errors[BERR_CONNACK] +
                                     now->c.errors[BERR_SOCKETS] + now->c.errors[BERR_TIMEOUT]));
        return;
    }
    fprintf(stderr,
            "[%6.1fs] %-5s sent %9.0f/s delivered %9.0f/s total %llu lost %llu p99 %llu us\n", t_s,
            phase_name(phase), (double)(now->c.sent - prev->c.sent) / dt_s,
            (double)(now->c.delivered - prev->c.delivered) / dt_s,
            (unsigned long long)now->c.delivered, (unsigned long long)now->c.lost_now,
            (unsigned long long)hist_percentile(&now->lat_all, 99));
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    memset(&o, 0, sizeof(o));
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    raise_nofile(&o);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (o.scenario == SCENARIO_SOAK)
        return soak_run(&o, &interrupted);

    struct bench_ctl ctl;
    memset(&ctl, 0, sizeof(ctl));
    ctl.opts = &o;
    atomic_store(&ctl.win_start_ns, UINT64_MAX);
    atomic_store(&ctl.win_end_ns, UINT64_MAX);
    ctl.pub_sent = calloc(o.publishers ? o.publishers : 1, sizeof(uint64_t));
    struct worker **ws = calloc(o.threads, sizeof(*ws));
    struct bench_snapshot *tmp = malloc(sizeof(*tmp));
    struct agg *cur = malloc(sizeof(*cur)), *prev = malloc(sizeof(*prev));
    struct bench_result *res = calloc(1, sizeof(*res));
    if (!ctl.pub_sent || !ws || !tmp || !cur || !prev || !res) {
        fprintf(stderr, "ringmq-bench: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < o.threads; i++) {
        ws[i] = worker_create(&ctl, i);
        if (!ws[i])
            return 1;
    }
    for (uint32_t i = 0; i < o.threads; i++) {
        int r = worker_start(ws[i]);
        if (r) {
            fprintf(stderr, "ringmq-bench: pthread_create: %s\n", strerror(-r));
            return 1;
        }
    }

    /* Setup: every connection connected (and subscribed) before anyone
     * publishes, so that sequence 0 is the first message a stream expects. */
    uint64_t t0 = bench_now_ns();
    bool setup_ok = true;
    while (atomic_load(&ctl.ready) < o.threads) {
        if (atomic_load(&ctl.failed) > 0 || interrupted || bench_now_ns() - t0 > SETUP_WAIT_NS) {
            setup_ok = false;
            break;
        }
        sleep_until(bench_now_ns() + 10000000ull);
    }
    if (!setup_ok) {
        aggregate(ws, o.threads, cur, tmp);
        fprintf(stderr, "ringmq-bench: setup failed: %u of %u threads ready after %.1f s (",
                atomic_load(&ctl.ready), o.threads, (double)(bench_now_ns() - t0) / 1e9);
        for (int e = 0; e < BERR_COUNT; e++)
            if (cur->c.errors[e])
                fprintf(stderr, " %s=%llu", bench_err_names[e],
                        (unsigned long long)cur->c.errors[e]);
        fprintf(stderr, " )\n");
    }
    double setup_s = (double)(bench_now_ns() - t0) / 1e9;
    if (!o.quiet && setup_ok && o.scenario != SCENARIO_CONNECT)
        fprintf(stderr, "ringmq-bench: %u connections set up in %.2f s\n",
                o.publishers + o.subscribers, setup_s);

    uint64_t run_start = bench_now_ns();
    uint64_t win_start = run_start + (uint64_t)(o.warmup_s * 1e9);
    uint64_t win_end = win_start + (uint64_t)(o.duration_s * 1e9);
    ctl.run_start_ns = run_start;
    atomic_store(&ctl.win_start_ns, win_start);
    atomic_store(&ctl.win_end_ns, win_end);
    double cpu_u0 = 0, cpu_s0 = 0, cpu_u1 = 0, cpu_s1 = 0, b0 = -1, b1 = -1;
    bool sampled_start = false, sampled_end = false;
    if (setup_ok) {
        atomic_store_explicit(&ctl.phase, PHASE_RUN, memory_order_release);
        if (o.warmup_s == 0) {
            self_cpu(&cpu_u0, &cpu_s0);
            b0 = broker_cpu_s(o.broker_pid);
            sampled_start = true;
        }
    }

    aggregate(ws, o.threads, prev, tmp);
    uint64_t next_progress = run_start + 1000000000ull;
    uint64_t prev_t = run_start;
    uint64_t drain_start = 0, quiet_since = 0, last_delivered = 0;
    int phase = setup_ok ? PHASE_RUN : PHASE_STOP;
    while (phase != PHASE_STOP) {
        uint64_t wake = next_progress;
        if (!sampled_start && win_start < wake)
            wake = win_start;
        if (!sampled_end && win_end < wake)
            wake = win_end;
        if (phase == PHASE_DRAIN || o.scenario == SCENARIO_CONNECT) {
            uint64_t soon = bench_now_ns() + 50000000ull;
            if (soon < wake)
                wake = soon;
        }
        sleep_until(wake);
        uint64_t now = bench_now_ns();
        if (!sampled_start && now >= win_start) {
            self_cpu(&cpu_u0, &cpu_s0);
            b0 = broker_cpu_s(o.broker_pid);
            sampled_start = true;
        }
        if (interrupted && phase == PHASE_RUN) {
            res->interrupted = true;
            if (now < win_end) {
                win_end = now;
                atomic_store(&ctl.win_end_ns, win_end);
            }
        }
        if (!sampled_end && now >= win_end) {
            self_cpu(&cpu_u1, &cpu_s1);
            b1 = broker_cpu_s(o.broker_pid);
            sampled_end = true;
        }
        aggregate(ws, o.threads, cur, tmp);
        if (now >= next_progress) {
            progress(&o, phase, (double)(now - run_start) / 1e9, cur, prev,
                     (double)(now - prev_t) / 1e9);
            struct agg *t = prev;
            prev = cur;
            cur = t;
            prev_t = now;
            next_progress += 1000000000ull;
        }
        if (o.scenario == SCENARIO_CONNECT) {
            /* The window is the whole storm: it ends when every connection
             * is done or at the time limit. */
            struct agg *a = (prev_t == now) ? prev : cur;
            if (a->all_connect_done || now >= win_end || interrupted) {
                if (!sampled_end) {
                    win_end = now;
                    atomic_store(&ctl.win_end_ns, now);
                    self_cpu(&cpu_u1, &cpu_s1);
                    b1 = broker_cpu_s(o.broker_pid);
                    sampled_end = true;
                }
                phase = PHASE_STOP;
            }
            continue;
        }
        if (phase == PHASE_RUN && now >= win_end) {
            phase = PHASE_DRAIN;
            drain_start = now;
            atomic_store_explicit(&ctl.phase, PHASE_DRAIN, memory_order_release);
            continue;
        }
        if (phase == PHASE_DRAIN) {
            struct agg *a = (prev_t == now) ? prev : cur;
            if (a->c.delivered != last_delivered) {
                last_delivered = a->c.delivered;
                quiet_since = now;
            }
            bool quiet = a->c.pending == 0 && quiet_since && now - quiet_since >= QUIET_DRAIN_NS;
            if (quiet_since == 0)
                quiet_since = now;
            bool timed_out = now - drain_start >= (uint64_t)(o.drain_s * 1e9);
            if (quiet || timed_out || interrupted > 0) {
                phase = PHASE_STOP;
                res->drain_s = (double)(now - drain_start) / 1e9;
                res->drain_timed_out = !quiet && timed_out;
            }
        }
    }
    atomic_store_explicit(&ctl.phase, PHASE_STOP, memory_order_release);
    for (uint32_t i = 0; i < o.threads; i++)
        worker_join(ws[i]);

    /* Results. */
    res->opts = &o;
    res->setup_failed = !setup_ok;
    res->interrupted = res->interrupted || interrupted;
    hist_init(&res->lat);
    hist_init(&res->lat_all);
    hist_init(&res->conn_lat);
    double win_sum = 0;
    uint32_t win_n = 0;
    uint64_t first_connect = UINT64_MAX, last_connack = 0;
    for (uint32_t i = 0; i < o.threads; i++) {
        worker_snapshot(ws[i], tmp);
        bench_counters_add(&res->total, &tmp->c);
        hist_merge(&res->lat, &tmp->lat_win);
        hist_merge(&res->lat_all, &tmp->lat_all);
        hist_merge(&res->conn_lat, &tmp->conn_lat);
        if (tmp->first_connect_ns && tmp->first_connect_ns < first_connect)
            first_connect = tmp->first_connect_ns;
        if (tmp->last_connack_ns > last_connack)
            last_connack = tmp->last_connack_ns;
        if (tmp->win_started && tmp->win_ended && tmp->win_end_ns > tmp->win_start_ns) {
            double w = (double)(tmp->win_end_ns - tmp->win_start_ns) / 1e9;
            struct bench_counters d = tmp->win_end;
            const uint64_t *s = (const uint64_t *)&tmp->win_start;
            uint64_t *dd = (uint64_t *)&d;
            for (size_t k = 0; k < sizeof(d) / sizeof(uint64_t); k++)
                dd[k] -= s[k];
            bench_counters_add(&res->window, &d);
            res->offered_per_s += (double)d.offered / w;
            res->sent_per_s += (double)d.sent / w;
            res->accepted_per_s += (double)d.accepted / w;
            res->delivered_per_s += (double)d.delivered / w;
            win_sum += w;
            win_n++;
        }
    }
    res->window_s = win_n ? win_sum / win_n : 0;
    res->connect_s =
        last_connack > first_connect ? (double)(last_connack - first_connect) / 1e9 : 0;
    uint64_t *unique_by_pub = calloc(o.publishers ? o.publishers : 1, sizeof(uint64_t));
    for (uint32_t i = 0; i < o.threads; i++)
        worker_final_loss(ws[i], &res->lost, &res->expected, unique_by_pub);
    if (o.shared) {
        for (uint32_t p = 0; p < o.publishers; p++) {
            res->expected += ctl.pub_sent[p];
            if (ctl.pub_sent[p] > unique_by_pub[p])
                res->lost += ctl.pub_sent[p] - unique_by_pub[p];
        }
    }
    free(unique_by_pub);
    res->bench_user_s = sampled_end ? cpu_u1 - cpu_u0 : 0;
    res->bench_sys_s = sampled_end ? cpu_s1 - cpu_s0 : 0;
    res->broker_cpu_s = (b0 >= 0 && b1 >= 0) ? b1 - b0 : -1;
    if (o.broker_pid && res->broker_cpu_s < 0)
        fprintf(stderr, "ringmq-bench: could not read /proc/%d/stat\n", o.broker_pid);

    report_print(res);
    int rc = res->setup_failed ? 1 : 0;
    if (o.json_path) {
        int r = report_json(res, o.json_path);
        if (r) {
            fprintf(stderr, "ringmq-bench: %s: %s\n", o.json_path, strerror(-r));
            rc = 1;
        }
    }
    for (uint32_t i = 0; i < o.threads; i++)
        worker_destroy(ws[i]);
    free(ws);
    free(ctl.pub_sent);
    free(tmp);
    free(cur);
    free(prev);
    free(res);
    return rc;
}
