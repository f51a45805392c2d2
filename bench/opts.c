/*
 * ringmq-bench command line: every option, its range and the scenarios'
 * defaults. A bad value is refused with the option's name, what it wants
 * and what it got; main exits 2 then. Main thread only, before the workers.
 */
#include "bench.h"
#include "codec.h"
#include "soak.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROBE_RATE_DEFAULT 200.0 /* messages/s: one every 5 ms */
#define CONNS_DEFAULT      32u   /* handshakes in flight */
/* TLS1_2_VERSION and TLS1_3_VERSION without <openssl/ssl.h> here. */
#define TLS_MAX_1_2 0x0303u
#define TLS_MAX_1_3 0x0304u

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
            "  handshake TLS handshake storm (needs --tls): --conns at once, each connects,\n"
            "            shakes hands, waits for CONNACK, disconnects, and connects again;\n"
            "            handshakes/s and handshake+CONNACK latency (--resume, --probe)\n"
            "  abuse     N paced pairs (--clients N, --rate R) alone, then again beside an\n"
            "            abuser (--abuser flood|connect); both runs' delivered/s and p99,\n"
            "            and their ratios\n"
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
            "TLS (any scenario but soak):\n"
            "  --tls                 connect over TLS (ALPN \"mqtt\")\n"
            "  --cafile FILE         verify the broker's certificate against these CAs; it\n"
            "                        must name --host (without --cafile: no verification)\n"
            "  --cert FILE, --key FILE  client certificate and its key (mTLS)\n"
            "  --resume              offer the session of the last ticket the broker sent\n"
            "  --tls-max 1.2|1.3     the highest TLS version offered (1.3)\n"
            "\n"
            "handshake:\n"
            "  --conns N             handshakes in progress at once, in all (32)\n"
            "  --clients N           stop after N connections (default: --duration decides)\n"
            "  --rate R              at most R handshakes/s in all (0: as fast as possible)\n"
            "  --probe               also one publisher/subscriber pair, on its own thread,\n"
            "                        one message in flight: its latency during the storm\n"
            "  --probe-rate R        the probe's messages/s (200)\n"
            "  --probe-port P        the probe's broker (a TLS listener on --host), to tell\n"
            "                        the broker's share of the probe's latency from the\n"
            "                        machine's (default: --port)\n"
            "\n");
    /* Two strings: one would pass the 4095 characters C11 promises. */
    fprintf(f, "abuse (--clients 10, --rate 100; one more thread for the abuser):\n"
               "  --abuser flood        one connection publishing QoS 0 as fast as the broker\n"
               "                        reads, to --abuse-topic (default)\n"
               "  --abuser connect      a connect storm: --conns (32) at once, each connects,\n"
               "                        sends CONNECT, waits for CONNACK or the close, closes,\n"
               "                        and connects again; accepted and refused per second\n"
               "  --abuse-topic T       the flood's topic (<topic-prefix>/abuse)\n"
               "  --abuse-source A|none the abuser's source address (127.0.0.2 when --host is\n"
               "                        a loopback address, else none: no bind)\n"
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
    O_TLS,
    O_CAFILE,
    O_CERT,
    O_KEY,
    O_RESUME,
    O_TLS_MAX,
    O_CONNS,
    O_PROBE,
    O_PROBE_RATE,
    O_PROBE_PORT,
    O_ABUSER,
    O_ABUSE_TOPIC,
    O_ABUSE_SOURCE,
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
    {"tls", no_argument, 0, O_TLS},
    {"cafile", required_argument, 0, O_CAFILE},
    {"cert", required_argument, 0, O_CERT},
    {"key", required_argument, 0, O_KEY},
    {"resume", no_argument, 0, O_RESUME},
    {"tls-max", required_argument, 0, O_TLS_MAX},
    {"conns", required_argument, 0, O_CONNS},
    {"probe", no_argument, 0, O_PROBE},
    {"probe-rate", required_argument, 0, O_PROBE_RATE},
    {"probe-port", required_argument, 0, O_PROBE_PORT},
    {"abuser", required_argument, 0, O_ABUSER},
    {"abuse-topic", required_argument, 0, O_ABUSE_TOPIC},
    {"abuse-source", required_argument, 0, O_ABUSE_SOURCE},
    {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0},
};

/* Options the user gave, where a scenario's default differs or where a
 * scenario refuses them. */
struct given {
    bool protocol, drain, seed, groups, inflight;
    bool conns, probe_rate, probe_port, hold, tls_max;
    bool abuser, abuse_topic, abuse_source, rate;
    uint32_t clients, pubs, subs; /* 0: not given */
};

/* The soak's counts and defaults (see bench/README.md, Soak). */
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

static int refuse(const char *what)
{
    fprintf(stderr, "ringmq-bench: %s\n", what);
    return -EINVAL;
}

/* True when host is a numeric 127.0.0.0/8 address or "localhost". */
static bool host_is_loopback(const char *host)
{
    struct in_addr a;
    if (!strcmp(host, "localhost"))
        return true;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* The abuse scenario's pairs, its abuser's topic and source (see
 * bench/README.md, Scenarios). */
static int abuse_defaults(struct bench_opts *o, uint32_t clients, uint32_t pubs, uint32_t subs,
                          const struct given *g)
{
    static char topic[512];
    o->publishers = pubs ? pubs : clients ? clients : 10;
    o->subscribers = subs ? subs : o->publishers;
    if (o->subscribers != o->publishers)
        return refuse("abuse: publishers and subscribers must be equal (pairs)");
    if (o->rate < 0)
        o->rate = 100;
    if (g->rate && o->rate == 0)
        return refuse("abuse: the well-behaved publishers need a fixed --rate (> 0): an "
                      "unpaced run measures the broker's limit, not its fairness");
    if (o->duration_s < 0)
        o->duration_s = 10;
    if (o->warmup_s < 0)
        o->warmup_s = 2;
    if (!o->abuse_topic) {
        snprintf(topic, sizeof(topic), "%s/abuse", o->topic_prefix);
        o->abuse_topic = topic;
    }
    if (!o->abuse_topic[0] || strpbrk(o->abuse_topic, "+#") || strlen(o->abuse_topic) > 1024)
        return refuse("abuse: --abuse-topic must be a topic name: not empty, no + or #, at "
                      "most 1024 bytes");
    if (!g->abuse_source)
        o->abuse_source = host_is_loopback(o->host) ? "127.0.0.2" : NULL;
    else if (!strcmp(o->abuse_source, "none"))
        o->abuse_source = NULL;
    struct in_addr a;
    if (o->abuse_source && inet_pton(AF_INET, o->abuse_source, &a) != 1) {
        fprintf(stderr, "ringmq-bench: --abuse-source: an IPv4 address or none, got '%s'\n",
                o->abuse_source);
        return -EINVAL;
    }
    return 0;
}

static int parse_scenario(const char *sc, struct bench_opts *o)
{
    static const struct {
        const char *name;
        enum bench_scenario s;
    } names[] = {
        {"pairs", SCENARIO_PAIRS},     {"fanout", SCENARIO_FANOUT},
        {"fanin", SCENARIO_FANIN},     {"latency", SCENARIO_LATENCY},
        {"connect", SCENARIO_CONNECT}, {"handshake", SCENARIO_HANDSHAKE},
        {"abuse", SCENARIO_ABUSE},     {"soak", SCENARIO_SOAK},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(sc, names[i].name)) {
            o->scenario = names[i].s;
            o->scenario_name = names[i].name;
            return 0;
        }
    }
    fprintf(stderr, "ringmq-bench: unknown scenario '%s'\n", sc);
    usage(stderr);
    return -EINVAL;
}

static void set_defaults(struct bench_opts *o)
{
    static char prefix[64];
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
    o->kill_interval_s = 0.5;
    o->conns = CONNS_DEFAULT;
    o->tls_max = TLS_MAX_1_3;
    o->probe_rate = PROBE_RATE_DEFAULT;
}

/* Where the broker is and how to talk to it; -ENOENT: not one of these. */
static int parse_conn_opt(int ch, const char *arg, struct bench_opts *o, struct given *g)
{
    uint32_t v = 0;
    int r = 0;
    switch (ch) {
    case O_HOST:
        o->host = arg;
        break;
    case O_PORT:
        r = parse_u32("port", arg, 1, 65535, &v);
        o->port = (uint16_t)v;
        break;
    case O_PROTOCOL:
        if (!strcmp(arg, "3.1.1") || !strcmp(arg, "4"))
            o->version = MQTT_V311;
        else if (!strcmp(arg, "5") || !strcmp(arg, "5.0"))
            o->version = MQTT_V5;
        else {
            fprintf(stderr, "ringmq-bench: --protocol: 3.1.1 or 5, got '%s'\n", arg);
            r = -EINVAL;
        }
        g->protocol = true;
        break;
    case O_CLIENT_PREFIX:
        o->client_prefix = arg;
        break;
    case O_TOPIC_PREFIX:
        o->topic_prefix = arg;
        break;
    case O_USERNAME:
        o->username = arg;
        break;
    case O_PASSWORD:
        o->password = arg;
        break;
    case O_KEEPALIVE:
        r = parse_u32("keepalive", arg, 0, 65535, &v);
        o->keepalive_s = (uint16_t)v;
        break;
    case O_TLS:
        o->tls = true;
        break;
    case O_CAFILE:
        o->cafile = arg;
        break;
    case O_CERT:
        o->certfile = arg;
        break;
    case O_KEY:
        o->keyfile = arg;
        break;
    case O_RESUME:
        o->tls_resume = true;
        break;
    case O_TLS_MAX:
        if (!strcmp(arg, "1.3"))
            o->tls_max = TLS_MAX_1_3;
        else if (!strcmp(arg, "1.2"))
            o->tls_max = TLS_MAX_1_2;
        else {
            fprintf(stderr, "ringmq-bench: --tls-max: 1.2 or 1.3, got '%s'\n", arg);
            r = -EINVAL;
        }
        g->tls_max = true;
        break;
    default:
        return -ENOENT;
    }
    return r;
}

/* How much load, and its shape; -ENOENT: not one of these. */
static int parse_load_opt(int ch, const char *arg, struct bench_opts *o, struct given *g)
{
    uint32_t v = 0;
    int r = 0;
    switch (ch) {
    case O_QOS:
        r = parse_u32("qos", arg, 0, 2, &v);
        o->qos = (uint8_t)v;
        break;
    case O_CLIENTS:
        return parse_u32("clients", arg, 1, 1000000, &g->clients);
    case O_PUBLISHERS:
        return parse_u32("publishers", arg, 1, 1000000, &g->pubs);
    case O_SUBSCRIBERS:
        return parse_u32("subscribers", arg, 1, 1000000, &g->subs);
    case O_PAYLOAD:
        return parse_u32("payload", arg, 20, 16 * 1024 * 1024, &o->payload_len);
    case O_RATE:
        g->rate = true;
        return parse_double("rate", arg, 0, &o->rate);
    case O_DURATION:
        return parse_double("duration", arg, 0.1, &o->duration_s);
    case O_WARMUP:
        return parse_double("warmup", arg, 0, &o->warmup_s);
    case O_THREADS:
        return parse_u32("threads", arg, 1, 256, &o->threads);
    case O_INFLIGHT:
        g->inflight = true;
        return parse_u32("inflight", arg, 1, 65535, &o->inflight);
    case O_BATCH:
        return parse_u32("batch-bytes", arg, 256, 64 * 1024 * 1024, &o->batch_bytes);
    case O_HOLD:
        g->hold = true;
        return parse_double("hold", arg, 0, &o->hold_s);
    case O_DRAIN:
        g->drain = true;
        return parse_double("drain", arg, 0, &o->drain_s);
    case O_CONCURRENCY:
        return parse_u32("connect-concurrency", arg, 1, 1000000, &o->connect_concurrency);
    case O_SHARED:
        o->shared = true;
        break;
    case O_CONNS:
        g->conns = true;
        return parse_u32("conns", arg, 1, 100000, &o->conns);
    case O_PROBE:
        o->probe = true;
        break;
    case O_PROBE_RATE:
        g->probe_rate = true;
        return parse_double("probe-rate", arg, 1, &o->probe_rate);
    case O_PROBE_PORT:
        g->probe_port = true;
        r = parse_u32("probe-port", arg, 1, 65535, &v);
        o->probe_port = (uint16_t)v;
        break;
    default:
        return -ENOENT;
    }
    return r;
}

/* Output and the soak's chaos; -ENOENT: not one of these. */
static int parse_misc_opt(int ch, const char *arg, struct bench_opts *o, struct given *g)
{
    uint32_t v = 0;
    int r = 0;
    switch (ch) {
    case O_BROKER_PID:
        r = parse_u32("broker-pid", arg, 1, 0x7fffffff, &v);
        o->broker_pid = (int)v;
        break;
    case O_JSON:
        o->json_path = arg;
        break;
    case O_QUIET:
        o->quiet = true;
        break;
    case O_KILL_INTERVAL:
        r = parse_double("kill-interval", arg, 0, &o->kill_interval_s);
        if (!r && o->kill_interval_s > 0 && o->kill_interval_s < 0.001) {
            fprintf(stderr, "ringmq-bench: --kill-interval: 0, or at least 0.001 s\n");
            r = -EINVAL;
        }
        break;
    case O_SEED: {
        char *end;
        errno = 0;
        o->seed = strtoull(arg, &end, 0);
        if (errno || *end || end == arg) {
            fprintf(stderr, "ringmq-bench: --seed: want an integer, got '%s'\n", arg);
            r = -EINVAL;
        }
        g->seed = true;
        break;
    }
    case O_GROUPS:
        r = parse_u32("groups", arg, 0, 1000, &o->groups);
        g->groups = true;
        break;
    case O_ABUSER:
        if (!strcmp(arg, "flood"))
            o->abuser = ABUSER_FLOOD;
        else if (!strcmp(arg, "connect"))
            o->abuser = ABUSER_CONNECT;
        else {
            fprintf(stderr, "ringmq-bench: --abuser: flood or connect, got '%s'\n", arg);
            r = -EINVAL;
        }
        g->abuser = true;
        break;
    case O_ABUSE_TOPIC:
        o->abuse_topic = arg;
        g->abuse_topic = true;
        break;
    case O_ABUSE_SOURCE:
        o->abuse_source = arg;
        g->abuse_source = true;
        break;
    default:
        return -ENOENT;
    }
    return r;
}

/* The TLS options fit together and with the scenario. */
static int check_tls(const struct bench_opts *o, const struct given *g)
{
    if (!o->tls && (o->cafile || o->certfile || o->keyfile || o->tls_resume || g->tls_max))
        return refuse("--cafile, --cert, --key, --resume and --tls-max need --tls");
    if (!o->certfile != !o->keyfile)
        return refuse("--cert and --key go together (a client certificate and its key)");
    if (o->tls && o->scenario == SCENARIO_SOAK)
        return refuse("soak: no TLS (it has its own poll loop, without the TLS layer)");
    if (!o->tls && o->scenario == SCENARIO_HANDSHAKE)
        return refuse("handshake: needs --tls (a plaintext storm is the connect scenario)");
    return 0;
}

/* Options only one scenario knows are refused elsewhere. */
static int check_scenario_opts(const struct bench_opts *o, const struct given *g)
{
    bool hs = o->scenario == SCENARIO_HANDSHAKE;
    bool abuse = o->scenario == SCENARIO_ABUSE;
    bool storm = abuse && o->abuser == ABUSER_CONNECT;
    if (!abuse && (g->abuser || g->abuse_topic || g->abuse_source))
        return refuse("--abuser, --abuse-topic and --abuse-source are for the abuse scenario");
    if (g->conns && !hs && !storm)
        return refuse("--conns is for the handshake scenario and abuse --abuser connect");
    if (!hs && (o->probe || g->probe_rate || g->probe_port))
        return refuse("--probe, --probe-rate and --probe-port are for the handshake "
                      "scenario");
    if (abuse && g->abuse_topic && o->abuser != ABUSER_FLOOD)
        return refuse("abuse: --abuse-topic is for --abuser flood");
    if (abuse && g->hold)
        return refuse("abuse: --hold does not apply (the storm closes each connection at its "
                      "CONNACK)");
    if (hs && (g->pubs || g->subs || g->hold))
        return refuse("handshake: --publishers, --subscribers and --hold do not apply "
                      "(--conns, --clients, --probe)");
    if ((g->probe_rate || g->probe_port) && !o->probe)
        return refuse("--probe-rate and --probe-port need --probe");
    if (o->shared && o->scenario != SCENARIO_FANIN)
        return refuse("--shared is for fanin");
    return 0;
}

/* Counts and defaults per scenario. */
static int scenario_defaults(struct bench_opts *o, const struct given *g)
{
    uint32_t clients = g->clients, pubs = g->pubs, subs = g->subs;
    switch (o->scenario) {
    case SCENARIO_PAIRS:
        o->publishers = pubs ? pubs : clients ? clients : 4;
        o->subscribers = subs ? subs : o->publishers;
        if (o->subscribers != o->publishers)
            return refuse("pairs: publishers and subscribers must be equal");
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
    case SCENARIO_HANDSHAKE:
        o->clients = clients; /* 0: until --duration */
        o->publishers = o->subscribers = o->probe ? 1 : 0;
        break;
    case SCENARIO_ABUSE:
        return abuse_defaults(o, clients, pubs, subs, g);
    case SCENARIO_SOAK:
        return soak_defaults(o, clients, pubs, subs, g);
    }
    if (o->rate < 0)
        o->rate = 0;
    if (o->duration_s < 0)
        o->duration_s = 10;
    if (o->warmup_s < 0)
        o->warmup_s = 2;
    return 0;
}

int bench_opts_parse(int argc, char **argv, struct bench_opts *o)
{
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            usage(stdout);
            exit(0);
        }
        usage(stderr);
        return -EINVAL;
    }
    if (parse_scenario(argv[1], o) != 0)
        return -EINVAL;
    set_defaults(o);
    struct given g;
    memset(&g, 0, sizeof(g));
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (ch == O_HELP || ch == 'h') {
            usage(stdout);
            exit(0);
        }
        int r = parse_conn_opt(ch, optarg, o, &g);
        if (r == -ENOENT)
            r = parse_load_opt(ch, optarg, o, &g);
        if (r == -ENOENT)
            r = parse_misc_opt(ch, optarg, o, &g);
        if (r == -ENOENT) {
            usage(stderr); /* getopt has said what it did not know */
            return -EINVAL;
        }
        if (r)
            return r;
    }
    if (optind < argc) {
        fprintf(stderr, "ringmq-bench: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (check_tls(o, &g) != 0 || check_scenario_opts(o, &g) != 0 || scenario_defaults(o, &g) != 0)
        return -EINVAL;
    if (o->scenario == SCENARIO_LATENCY && o->publishers % o->threads != 0 &&
        o->publishers < o->threads)
        o->threads = o->publishers;
    /* The threads share the pairs or the storm; an extra one is the probe's
     * or the abuser's. */
    uint32_t conns = o->scenario == SCENARIO_CONNECT     ? o->clients
                     : o->scenario == SCENARIO_HANDSHAKE ? o->conns
                                                         : o->publishers + o->subscribers;
    if (o->threads > conns)
        o->threads = conns;
    return 0;
}
