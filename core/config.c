/*
 * The config model and its parser. The format follows mosquitto.conf so an
 * operator's existing file mostly carries over: one "key value" per line,
 * '#' comments, "listener PORT [ADDRESS]" opening a block whose listener keys
 * apply to that listener. Where ringmq differs from mosquitto the parser says
 * so loudly: a mosquitto option we do not implement yet is an error, not a
 * silent no-op, because a broker that ignores "password_file" runs open.
 *
 * Pure: no I/O, no globals, no allocation. The main thread reads the file into
 * memory, calls config_init(), config_parse() and config_finish() once at
 * start-up; shards then only read the struct config. The first problem found
 * stops the parse with "source:line: message" in the caller's buffer.
 */
#include "config.h"
#include "config_internal.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MQTT 5 carries a session expiry interval as a four-byte count of seconds,
 * with 0xFFFFFFFF meaning "never"; keep the configured expiration a finite
 * value that fits the same field. */
#define CONFIG_EXPIRATION_MAX_S 4294967294ull

#define CONFIG_CONNECT_TIMEOUT_MIN_S 1u
#define CONFIG_CONNECT_TIMEOUT_MAX_S 3600u
#define CONFIG_OUTPUT_BUFFER_MIN     4096u
/* mosquitto: "Do not set below 10 seconds"; 0 there means no limit. */
#define CONFIG_KEEPALIVE_MIN_S    10u
#define CONFIG_SYS_INTERVAL_MAX_S 65535u

_Static_assert(CONFIG_OUTPUT_BUFFER_MIN <= OUTPUT_BUFFER_MAX, "output buffer range");
_Static_assert(KEEPALIVE_MAX_S == 65535u, "keepalive is a two-byte field");
_Static_assert(CONFIG_CONNECT_SIZE_MIN <= CONFIG_CONNECT_SIZE_DEFAULT &&
                   CONFIG_CONNECT_SIZE_DEFAULT <= PACKET_SIZE_DEFAULT,
               "the default CONNECT bound is within the default packet size");
_Static_assert(CONFIG_SESSIONS_DEFAULT <= CONFIG_SESSIONS_MAX, "max_sessions range");
_Static_assert(CONFIG_MEMORY_LIMIT_MIN < CONFIG_MEMORY_LIMIT_MAX &&
                   CONFIG_MEMORY_LIMIT_MAX <= UINT64_MAX / 16,
               "memory_limit range, with room for percentages of it");
_Static_assert(CONFIG_MEMORY_LIMIT_MIN == 1ull << 20 &&
                   (CONFIG_MEMORY_LIMIT_MAX & ((1ull << 30) - 1)) == 0,
               "set_memory_limit's message writes the range as 1M..NG");

const char config_default_text[] =
    "# ringmq default configuration, used when ringmq starts without -c FILE.\n"
    "# The format is mosquitto.conf's: one \"key value\" per line, '#' comments.\n"
    "# configs/production.conf lists every option with its default.\n"
    "\n"
    "# Listen on loopback only: nothing outside this machine can connect.\n"
    "listener 1883 127.0.0.1\n"
    "# No authentication is configured, so local clients connect without a\n"
    "# username. This applies to this listener only.\n"
    "allow_anonymous true\n";

void config_fini(struct config *c)
{
    free(c->netrules);
    c->netrules = NULL;
    c->netrule_count = c->netrule_cap = 0;
}

void config_init(struct config *c)
{
    assert(c != NULL);
    memset(c, 0, sizeof(*c));
    snprintf(c->source, sizeof(c->source), "%s", "<default>");
    c->shards = 0;
    c->log_level = LOG_LEVEL_NOTICE;
    c->allow_anonymous = CONFIG_UNSET;
    c->max_packet_size = PACKET_SIZE_DEFAULT;
    c->max_keepalive_s = KEEPALIVE_MAX_S;
    c->max_inflight_messages = 20;
    c->max_queued_messages = 1000;
    c->max_queued_bytes = 0;
    c->persistent_client_expiration_s = 0;
    c->connect_timeout_ms = 10u * 1000u;
    c->max_output_buffer = 1024u * 1024u;
    c->retain_available = true;
    c->max_retained_messages = RETAINED_MESSAGES_DEFAULT;
    c->max_retained_bytes = RETAINED_BYTES_DEFAULT;
    c->max_qos = 2;
    c->max_topic_alias = 10;
    c->max_subscriptions = 10000;
    c->max_topic_levels = TOPIC_LEVELS_MAX;
    c->max_connect_size = CONFIG_CONNECT_SIZE_DEFAULT;
    c->max_sessions = CONFIG_SESSIONS_DEFAULT;
    c->memory_limit = 0;
    c->sys_interval_s = 10;
    c->auth_threads = 1;
    c->auth_cache_s = AUTH_CACHE_S_DEFAULT;
    config_rates_init(&c->rates);
    config_admit_init(&c->admit);
    c->flapping_window_s = CONFIG_FLAPPING_WINDOW_DEFAULT;
    c->flapping_ban_s = CONFIG_FLAPPING_BAN_DEFAULT;
    c->overload_lag_ms = CONFIG_OVERLOAD_LAG_MS_DEFAULT;
    c->tls_ticket_rotation_s = CONFIG_TICKET_ROTATION_DEFAULT;
    c->listener_count = 0;
    for (uint32_t i = 0; i < LISTENERS_MAX; i++)
        c->listeners[i].tls.min_version = CONFIG_TLS_1_2;
}

/* A listener block as its "listener" line opens it (line 0: the default
 * listener config_finish() adds). */
static void listener_reset(struct config_listener *l, uint16_t port, const char *address, int line)
{
    memset(l, 0, sizeof(*l));
    l->port = port;
    snprintf(l->address, sizeof(l->address), "%s", address);
    l->allow_anonymous = CONFIG_UNSET;
    l->max_connections = 0;
    l->line = line;
    l->tls.min_version = CONFIG_TLS_1_2;
    config_rates_init(&l->rates);
    config_admit_init(&l->admit);
}

/* Writes "where: message" into err (when there is room) and returns -1, so
 * every failure is one "return config_fail(...)". */
__attribute__((format(printf, 4, 5))) static int report(char *err, size_t errlen, const char *where,
                                                        const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return -1;
    int n = snprintf(err, errlen, "%s: ", where);
    if (n < 0 || (size_t)n >= errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The same with the place as "source:line". */
__attribute__((format(printf, 5, 0))) static int
vreport_at(char *err, size_t errlen, const char *source, int line, const char *fmt, va_list ap)
{
    if (err == NULL || errlen == 0)
        return -1;
    int n = snprintf(err, errlen, "%s:%d: ", source, line);
    if (n < 0 || (size_t)n >= errlen)
        return -1;
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    return -1;
}

__attribute__((format(printf, 5, 6))) int
config_report_at(char *err, size_t errlen, const char *source, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport_at(err, errlen, source, line, fmt, ap);
    va_end(ap);
    return -1;
}

/* The same for a line of the file being parsed. */
__attribute__((format(printf, 2, 3))) int config_fail(struct parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport_at(p->err, p->errlen, p->source, p->line, fmt, ap);
    va_end(ap);
    return -1;
}

/* Decimal digits only: no sign, no spaces, no hex, no suffix. strtoull would
 * take " -1" as a huge number, which is exactly the mistake to refuse.
 * 0 ok, -1 not a number, -2 too large for uint64_t. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (*s == '\0')
        return -1;
    uint64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The single value of p->key as an integer in min..max. When zero_means is
 * non-zero, 0 is also accepted and stands for zero_means: mosquitto spells
 * "unlimited" as 0 for several options, and we map that to our ceiling. */
int config_value_uint(struct parser *p, uint64_t min, uint64_t max, uint64_t zero_means,
                      uint64_t *out)
{
    const char *v = p->values[0];
    uint64_t n = 0;
    int rc = parse_u64(v, &n);
    if (rc == -1)
        return config_fail(p, "`%s' value `%s' is not a number", p->key, v);
    if (rc == 0 && n == 0 && zero_means != 0) {
        *out = zero_means;
        return 0;
    }
    if (rc == -2 || n < min || n > max) {
        if (zero_means != 0 && min == 1)
            return config_fail(p, "`%s' value `%s' is out of range 0..%llu", p->key, v,
                               (unsigned long long)max);
        if (zero_means != 0)
            return config_fail(p, "`%s' value `%s' is out of range (0, or %llu..%llu)", p->key, v,
                               (unsigned long long)min, (unsigned long long)max);
        return config_fail(p, "`%s' value `%s' is out of range %llu..%llu", p->key, v,
                           (unsigned long long)min, (unsigned long long)max);
    }
    *out = n;
    return 0;
}

/* mosquitto accepts exactly "true" and "false"; so do we, so a file means the
 * same thing to both brokers. */
int config_value_bool(struct parser *p, bool *out)
{
    const char *v = p->values[0];
    if (strcmp(v, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(v, "false") == 0) {
        *out = false;
        return 0;
    }
    return config_fail(p, "`%s' value `%s' is not true or false", p->key, v);
}

static int set_shards(struct parser *p)
{
    if (strcmp(p->values[0], "auto") == 0) {
        p->c->shards = 0;
        return 0;
    }
    uint64_t n = 0;
    const char *v = p->values[0];
    int rc = parse_u64(v, &n);
    if (rc == -1)
        return config_fail(p, "`shards' value `%s' is not auto or a number", v);
    if (rc == -2 || n < 1 || n > SHARDS_MAX)
        return config_fail(p, "`shards' value `%s' is out of range (auto, or 1..%u)", v,
                           SHARDS_MAX);
    p->c->shards = (uint32_t)n;
    return 0;
}

static int set_log_level(struct parser *p)
{
    static const char *const names[] = {
        [LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_NOTICE] = "notice",
        [LOG_LEVEL_INFO] = "info",   [LOG_LEVEL_DEBUG] = "debug",
    };
    if (p->c->log_type_line)
        return config_fail(p, "`log_level' and `log_type' (line %d) both set the level: keep one",
                           p->c->log_type_line);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(p->values[0], names[i]) == 0) {
            p->c->log_level = (enum config_log_level)i;
            p->c->log_level_line = p->line;
            return 0;
        }
    }
    return config_fail(p,
                       "`log_level' value `%s' is not one of error, warning, notice, info, debug",
                       p->values[0]);
}

static int set_max_packet_size(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 1, PACKET_SIZE_MAX, PACKET_SIZE_MAX, &n) != 0)
        return -1;
    p->c->max_packet_size = (uint32_t)n;
    return 0;
}

static int set_max_keepalive(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, CONFIG_KEEPALIVE_MIN_S, KEEPALIVE_MAX_S, KEEPALIVE_MAX_S, &n) != 0)
        return -1;
    p->c->max_keepalive_s = (uint16_t)n;
    return 0;
}

static int set_max_inflight_messages(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 1, INFLIGHT_MAX, INFLIGHT_MAX, &n) != 0)
        return -1;
    p->c->max_inflight_messages = (uint32_t)n;
    return 0;
}

/* mosquitto's 0 means "no maximum"; a config brought from mosquitto keeps
 * that meaning as far as a bound allows: 0 becomes the ceiling, since every
 * queue has a bound (STYLE.md, Limits). */
static int set_max_queued_messages(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 1, QUEUED_MESSAGES_MAX, QUEUED_MESSAGES_MAX, &n) != 0)
        return -1;
    p->c->max_queued_messages = (uint32_t)n;
    return 0;
}

static int set_max_queued_bytes(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, QUEUED_BYTES_MAX, 0, &n) != 0)
        return -1;
    p->c->max_queued_bytes = n;
    return 0;
}

static int set_max_retained_messages(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, UINT32_MAX, 0, &n) != 0)
        return -1;
    p->c->max_retained_messages = n;
    return 0;
}

static int set_max_retained_bytes(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, RETAINED_BYTES_MAX, 0, &n) != 0)
        return -1;
    p->c->max_retained_bytes = n;
    return 0;
}

/* mosquitto's duration: an integer followed by h, d, w, m (30 days) or
 * y (365 days). We also take s and a bare number of seconds, and 0 for
 * "never" (the default), which mosquitto refuses. */
static int set_persistent_client_expiration(struct parser *p)
{
    const char *v = p->values[0];
    size_t len = strlen(v);
    uint64_t unit_s = 1;
    char digits[32];

    if (len > 0 && (v[len - 1] < '0' || v[len - 1] > '9')) {
        switch (v[len - 1]) {
        case 's':
            unit_s = 1;
            break;
        case 'h':
            unit_s = 3600;
            break;
        case 'd':
            unit_s = 86400;
            break;
        case 'w':
            unit_s = 7 * 86400;
            break;
        case 'm':
            unit_s = 30 * 86400;
            break;
        case 'y':
            unit_s = 365 * 86400;
            break;
        default:
            goto bad;
        }
        len--;
    }
    /* More digits than fit any uint64_t are out of range, not malformed. */
    if (len == 0)
        goto bad;
    if (len >= sizeof(digits)) {
        for (size_t i = 0; i < len; i++)
            if (v[i] < '0' || v[i] > '9')
                goto bad;
        goto range;
    }
    memcpy(digits, v, len);
    digits[len] = '\0';
    uint64_t n = 0;
    int rc = parse_u64(digits, &n);
    if (rc == -1)
        goto bad;
    if (rc == -2 || n > CONFIG_EXPIRATION_MAX_S / unit_s)
        goto range;
    p->c->persistent_client_expiration_s = n * unit_s;
    return 0;
bad:
    return config_fail(p,
                       "`persistent_client_expiration' value `%s' is not a duration (a number, "
                       "optionally followed by s, h, d, w, m or y)",
                       v);
range:
    return config_fail(p,
                       "`persistent_client_expiration' value `%s' is out of range (at most %llu s)",
                       v, CONFIG_EXPIRATION_MAX_S);
}

static int set_connect_timeout(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, CONFIG_CONNECT_TIMEOUT_MIN_S, CONFIG_CONNECT_TIMEOUT_MAX_S, 0, &n) !=
        0)
        return -1;
    p->c->connect_timeout_ms = (uint32_t)n * 1000u;
    return 0;
}

static int set_max_output_buffer(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, CONFIG_OUTPUT_BUFFER_MIN, OUTPUT_BUFFER_MAX, 0, &n) != 0)
        return -1;
    p->c->max_output_buffer = (uint32_t)n;
    return 0;
}

static int set_retain_available(struct parser *p)
{
    return config_value_bool(p, &p->c->retain_available);
}

/* Pin shard N to CPU N (mod online CPUs). Off by default: measured on a
 * 2-core machine it bought no throughput and doubled low-rate latency
 * whenever anything else ran on the machine (a woken shard waits for its
 * own CPU instead of taking an idle one). Worth it on a dedicated host. */
static int set_cpu_affinity(struct parser *p)
{
    return config_value_bool(p, &p->c->cpu_affinity);
}

/* Topic aliases a 5.0 client may create towards the broker (mosquitto's
 * key and default); 0 disables them. */
static int set_max_topic_alias(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, TOPIC_ALIAS_MAX, 0, &n) != 0)
        return -1;
    p->c->max_topic_alias = (uint16_t)n;
    return 0;
}

/* Subscriptions one client may hold (a bound on the memory and trie work a
 * client can cause); SUBACK says 0x97 beyond it. */
static int set_max_subscriptions(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 1, SUBSCRIPTIONS_PER_CLIENT_MAX, 0, &n) != 0)
        return -1;
    p->c->max_subscriptions = (uint32_t)n;
    return 0;
}

static int set_max_qos(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, 2, 0, &n) != 0)
        return -1;
    p->c->max_qos = (uint8_t)n;
    return 0;
}

static int set_max_topic_levels(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 1, TOPIC_LEVELS_MAX, 0, &n) != 0)
        return -1;
    p->c->max_topic_levels = (uint32_t)n;
    return 0;
}

/* 0: no bound of its own, max_packet_size applies to CONNECT too. */
static int set_max_connect_size(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, CONFIG_CONNECT_SIZE_MIN, PACKET_SIZE_MAX, PACKET_SIZE_MAX, &n) != 0)
        return -1;
    p->c->max_connect_size = (uint32_t)n;
    /* Only a bound the operator asked for is checked against
     * max_packet_size (config_finish); "no bound of its own" is not. */
    uint64_t raw = 0;
    p->c->max_connect_size_line = parse_u64(p->values[0], &raw) == 0 && raw == 0 ? 0 : p->line;
    return 0;
}

/* Sessions in all, connected or kept for an absent client: a CONNECT that
 * would create one more is refused (0x97 / 3.1.1 code 3). */
static int set_max_sessions(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 1, CONFIG_SESSIONS_MAX, 0, &n) != 0)
        return -1;
    p->c->max_sessions = (uint32_t)n;
    return 0;
}

/* A byte count with an optional k, M or G suffix (1024-based, either
 * case): memory sizes are written that way, and nobody counts the digits
 * of 4294967296 right. "1.5G", "1 G", "1KB" and "1Gi" are refused rather
 * than guessed at. 0 ok, -1 not a size, -2 too large for uint64_t. */
static int parse_bytes(const char *s, uint64_t *out)
{
    size_t len = strlen(s);
    unsigned shift = 0;
    char digits[24];
    if (len > 0) {
        switch (s[len - 1]) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            break;
        }
    }
    if (shift != 0)
        len--;
    if (len == 0)
        return -1;
    /* More digits than any uint64_t: out of range if they are digits. */
    if (len >= sizeof(digits)) {
        for (size_t i = 0; i < len; i++)
            if (s[i] < '0' || s[i] > '9')
                return -1;
        return -2;
    }
    memcpy(digits, s, len);
    digits[len] = '\0';
    uint64_t n = 0;
    int rc = parse_u64(digits, &n);
    if (rc != 0)
        return rc;
    if (n > (UINT64_MAX >> shift))
        return -2;
    *out = n << shift;
    return 0;
}

/* mosquitto's memory_limit counts heap bytes and its 0 means unlimited;
 * ours has no unlimited (every resource has a bound): 0 stands for the
 * default, half the machine's memory, resolved at start-up. */
static int set_memory_limit(struct parser *p)
{
    const char *v = p->values[0];
    uint64_t n = 0;
    int rc = parse_bytes(v, &n);
    if (rc == -1)
        return config_fail(p,
                           "`memory_limit' value `%s' is not a size (a number of bytes, optionally "
                           "followed by k, M or G)",
                           v);
    if (rc == -2 || (n != 0 && (n < CONFIG_MEMORY_LIMIT_MIN || n > CONFIG_MEMORY_LIMIT_MAX)))
        return config_fail(p, "`memory_limit' value `%s' is out of range (0, or 1M..%lluG)", v,
                           CONFIG_MEMORY_LIMIT_MAX >> 30);
    p->c->memory_limit = n;
    p->c->memory_limit_line = n != 0 ? p->line : 0;
    return 0;
}

static int set_sys_interval(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, CONFIG_SYS_INTERVAL_MAX_S, 0, &n) != 0)
        return -1;
    p->c->sys_interval_s = (uint32_t)n;
    return 0;
}

/* The binary form of a listener address, so "::1" and "0:0:0:0:0:0:0:1" are
 * recognised as the same. family 0: all addresses (""). */
struct addr {
    int family;
    unsigned char bytes[16];
};

static bool addr_parse(const char *text, struct addr *a)
{
    memset(a, 0, sizeof(*a));
    if (text[0] == '\0')
        return true;
    if (inet_pton(AF_INET, text, a->bytes) == 1) {
        a->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, a->bytes) == 1) {
        a->family = AF_INET6;
        return true;
    }
    return false;
}

static bool addr_is_loopback(const struct addr *a)
{
    static const unsigned char v6_loopback[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (a->family == AF_INET)
        return a->bytes[0] == 127;
    if (a->family == AF_INET6) {
        if (memcmp(a->bytes, v6_loopback, 16) == 0)
            return true;
        /* ::ffff:127.x.y.z only ever accepts loopback peers too. */
        return memcmp(a->bytes, v4_mapped, 12) == 0 && a->bytes[12] == 127;
    }
    return false;
}

static bool addr_same(const struct addr *a, const struct addr *b)
{
    return a->family == b->family && memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

/* The PORT [ADDRESS] of a listener line (p->key names which): a port in
 * 0..65535 and a numeric address of less than cap bytes ("" = all). */
static int port_address(struct parser *p, const char *address, size_t cap, uint16_t *port,
                        struct addr *a)
{
    uint64_t n = 0;
    int rc = parse_u64(p->values[0], &n);
    if (rc == -1)
        return config_fail(p, "`%s' port `%s' is not a number", p->key, p->values[0]);
    if (rc == -2 || n > 65535)
        return config_fail(p, "`%s' port `%s' is out of range 0..65535", p->key, p->values[0]);
    if (strlen(address) >= cap || !addr_parse(address, a))
        return config_fail(p,
                           "`%s' address `%s' is not a numeric IPv4 or IPv6 address (host names "
                           "are not supported)",
                           p->key, address);
    *port = (uint16_t)n;
    return 0;
}

static int set_listener(struct parser *p)
{
    struct config *c = p->c;
    const char *address = p->value_count > 1 ? p->values[1] : "";
    uint16_t port = 0;
    struct addr a;
    if (port_address(p, address, sizeof(c->listeners[0].address), &port, &a) != 0)
        return -1;

    /* Port 0 asks the kernel for a fresh port each time, so two such
     * listeners never collide; tests rely on that. */
    for (uint32_t i = 0; i < c->listener_count && port != 0; i++) {
        const struct config_listener *l = &c->listeners[i];
        struct addr b;
        if (l->port != port || !addr_parse(l->address, &b))
            continue;
        if (addr_same(&a, &b))
            return config_fail(p, "duplicate listener %u %s (first at line %d)", (unsigned)port,
                               address[0] != '\0' ? address : "(all addresses)", l->line);
    }
    if (c->listener_count >= LISTENERS_MAX)
        return config_fail(p, "too many listeners (at most %u)", (unsigned)LISTENERS_MAX);

    struct config_listener *l = &c->listeners[c->listener_count++];
    listener_reset(l, port, address, p->line);
    p->listener = l;
    return 0;
}

/* metrics_listener PORT [ADDRESS]: one endpoint, numeric address,
 * loopback unless the operator names another (counters tell an outsider
 * how busy the broker is and who is refused). */
static int set_metrics_listener(struct parser *p)
{
    struct config *c = p->c;
    if (c->metrics_line)
        return config_fail(p, "`metrics_listener' given twice (first at line %d)", c->metrics_line);
    const char *address = p->value_count > 1 ? p->values[1] : "127.0.0.1";
    uint16_t port = 0;
    struct addr a;
    if (port_address(p, address, sizeof(c->metrics_address), &port, &a) != 0)
        return -1;
    for (uint32_t i = 0; i < c->listener_count && port != 0; i++) {
        const struct config_listener *l = &c->listeners[i];
        struct addr b;
        if (l->port != port || !addr_parse(l->address, &b))
            continue;
        if (l->address[0] == '\0' || addr_same(&a, &b))
            return config_fail(p, "`metrics_listener' %u %s is the MQTT listener of line %d",
                               (unsigned)port, address, l->line);
    }
    c->metrics_line = p->line;
    c->metrics_port = port;
    snprintf(c->metrics_address, sizeof(c->metrics_address), "%s", address);
    return 0;
}

static int set_metrics_password_file(struct parser *p)
{
    const char *v = p->values[0];
    if (strlen(v) >= sizeof(p->c->metrics_password_file))
        return config_fail(p, "`%s' path is longer than %u bytes", p->key,
                           (unsigned)sizeof(p->c->metrics_password_file) - 1);
    snprintf(p->c->metrics_password_file, sizeof(p->c->metrics_password_file), "%s", v);
    p->c->metrics_password_file_line = p->line;
    return 0;
}

/* mosquitto: -1 means unlimited; 0 reads the same to us. */
static int set_max_connections(struct parser *p)
{
    if (strcmp(p->values[0], "-1") == 0) {
        p->listener->max_connections = 0;
        return 0;
    }
    uint64_t n = 0;
    if (config_value_uint(p, 0, UINT32_MAX, 0, &n) != 0)
        return -1;
    p->listener->max_connections = (uint32_t)n;
    return 0;
}

static int set_protocol(struct parser *p)
{
    if (strcmp(p->values[0], "mqtt") == 0)
        return 0;
    if (strcmp(p->values[0], "websockets") == 0)
        return config_fail(p, "`protocol' value `websockets' is not supported (only mqtt)");
    return config_fail(p, "`protocol' value `%s' is not mqtt or websockets", p->values[0]);
}

/* Seconds each session-ticket key issues tickets; 0: no tickets (every
 * reconnect is a full handshake). */
static int set_tls_ticket_rotation(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, CONFIG_TICKET_ROTATION_MAX, 0, &n) != 0)
        return -1;
    p->c->tls_ticket_rotation_s = (uint32_t)n;
    return 0;
}

static int set_auth_methods(struct parser *p)
{
    uint32_t m = 0;
    for (unsigned i = 0; i < p->value_count; i++) {
        if (strcmp(p->values[i], "SCRAM-SHA-512") == 0)
            m |= CONFIG_AUTH_SCRAM_SHA512;
        else
            return config_fail(p, "`auth_methods' value `%s' is not a known method (SCRAM-SHA-512)",
                               p->values[i]);
    }
    p->c->auth_methods = m;
    p->c->auth_methods_line = p->line;
    return 0;
}

enum option_scope {
    SCOPE_GLOBAL,   /* anywhere; always applies to the whole broker */
    SCOPE_ANY,      /* global before the first listener, per listener after */
    SCOPE_LISTENER, /* only inside a listener block */
};

struct option {
    const char *key;
    int (*set)(struct parser *p);
    enum option_scope scope;
    unsigned values_max; /* values_min is always 1 */
};

/* Global keys are accepted after a listener line too, as mosquitto does: a
 * file that sets max_packet_size below its listener means it globally. */
/* Threads that check CONNECT passwords off the shards (0: on the shard,
 * which stalls its other clients for the whole hash). */
static int set_auth_cache_seconds(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, AUTH_CACHE_S_MAX, 0, &n) != 0)
        return -1;
    p->c->auth_cache_s = (uint32_t)n;
    return 0;
}

static int set_auth_threads(struct parser *p)
{
    uint64_t n = 0;
    if (config_value_uint(p, 0, AUTH_THREADS_MAX, 0, &n) != 0)
        return -1;
    p->c->auth_threads = (uint32_t)n;
    return 0;
}

static int set_include_dir(struct parser *p);

static const struct option options[] = {
    {"shards", set_shards, SCOPE_GLOBAL, 1},
    {"log_level", set_log_level, SCOPE_GLOBAL, 1},
    {"per_listener_settings", config_set_per_listener_settings, SCOPE_GLOBAL, 1},
    {"allow_anonymous", config_set_allow_anonymous, SCOPE_ANY, 1},
    {"max_packet_size", set_max_packet_size, SCOPE_GLOBAL, 1},
    {"max_keepalive", set_max_keepalive, SCOPE_GLOBAL, 1},
    {"max_inflight_messages", set_max_inflight_messages, SCOPE_GLOBAL, 1},
    {"max_queued_messages", set_max_queued_messages, SCOPE_GLOBAL, 1},
    {"max_queued_bytes", set_max_queued_bytes, SCOPE_GLOBAL, 1},
    {"persistent_client_expiration", set_persistent_client_expiration, SCOPE_GLOBAL, 1},
    {"connect_timeout", set_connect_timeout, SCOPE_GLOBAL, 1},
    {"max_output_buffer", set_max_output_buffer, SCOPE_GLOBAL, 1},
    {"retain_available", set_retain_available, SCOPE_GLOBAL, 1},
    {"max_retained_messages", set_max_retained_messages, SCOPE_GLOBAL, 1},
    {"max_retained_bytes", set_max_retained_bytes, SCOPE_GLOBAL, 1},
    {"max_qos", set_max_qos, SCOPE_GLOBAL, 1},
    {"max_topic_alias", set_max_topic_alias, SCOPE_GLOBAL, 1},
    {"max_subscriptions", set_max_subscriptions, SCOPE_GLOBAL, 1},
    {"cpu_affinity", set_cpu_affinity, SCOPE_GLOBAL, 1},
    {"max_topic_levels", set_max_topic_levels, SCOPE_GLOBAL, 1},
    {"max_connect_size", set_max_connect_size, SCOPE_GLOBAL, 1},
    {"max_sessions", set_max_sessions, SCOPE_GLOBAL, 1},
    {"memory_limit", set_memory_limit, SCOPE_GLOBAL, 1},
    {"sys_interval", set_sys_interval, SCOPE_GLOBAL, 1},
    {"listener", set_listener, SCOPE_GLOBAL, 2},
    {"password_file", config_set_password_file, SCOPE_ANY, 1},
    {"acl_file", config_set_acl_file, SCOPE_ANY, 1},
    {"auth_threads", set_auth_threads, SCOPE_GLOBAL, 1},
    {"auth_cache_seconds", set_auth_cache_seconds, SCOPE_GLOBAL, 1},
    {"max_publish_rate", config_set_max_publish_rate, SCOPE_ANY, 1},
    {"max_subscribe_rate", config_set_max_subscribe_rate, SCOPE_ANY, 1},
    {"max_inbound_rate", config_set_max_inbound_rate, SCOPE_ANY, 1},
    {"allow_from", config_set_allow_from, SCOPE_ANY, 1},
    {"deny_from", config_set_deny_from, SCOPE_ANY, 1},
    {"enable_proxy_protocol", config_set_enable_proxy_protocol, SCOPE_ANY, 1},
    {"max_connections_per_ip", config_set_max_connections_per_ip, SCOPE_ANY, 1},
    {"max_connect_rate", config_set_max_connect_rate, SCOPE_ANY, 1},
    {"max_connect_rate_per_ip", config_set_max_connect_rate_per_ip, SCOPE_ANY, 1},
    {"ban_file", config_set_ban_file, SCOPE_GLOBAL, 1},
    {"flapping_max_connects", config_set_flapping_max_connects, SCOPE_GLOBAL, 1},
    {"flapping_window", config_set_flapping_window, SCOPE_GLOBAL, 1},
    {"flapping_ban", config_set_flapping_ban, SCOPE_GLOBAL, 1},
    {"auth_failures_max", config_set_auth_failures_max, SCOPE_GLOBAL, 1},
    {"overload_lag_ms", config_set_overload_lag, SCOPE_GLOBAL, 1},
    {"auth_methods", set_auth_methods, SCOPE_GLOBAL, 2},
    {"tls_ticket_rotation", set_tls_ticket_rotation, SCOPE_GLOBAL, 1},
    {"include_dir", set_include_dir, SCOPE_GLOBAL, 1},
    {"log_dest", config_set_log_dest, SCOPE_GLOBAL, 2},
    {"log_type", config_set_log_type, SCOPE_GLOBAL, 1},
    {"pid_file", config_set_pid_file, SCOPE_GLOBAL, 1},
    {"user", config_set_user, SCOPE_GLOBAL, 1},
    {"metrics_listener", set_metrics_listener, SCOPE_GLOBAL, 2},
    {"metrics_password_file", set_metrics_password_file, SCOPE_GLOBAL, 1},
    {"max_connections", set_max_connections, SCOPE_LISTENER, 1},
    {"protocol", set_protocol, SCOPE_LISTENER, 1},
    {"certfile", config_set_certfile, SCOPE_LISTENER, 1},
    {"keyfile", config_set_keyfile, SCOPE_LISTENER, 1},
    {"cafile", config_set_cafile, SCOPE_LISTENER, 1},
    {"capath", config_set_capath, SCOPE_LISTENER, 1},
    {"crlfile", config_set_crlfile, SCOPE_LISTENER, 1},
    {"require_certificate", config_set_require_certificate, SCOPE_LISTENER, 1},
    {"use_identity_as_username", config_set_use_identity_as_username, SCOPE_LISTENER, 1},
    {"use_subject_as_username", config_set_use_subject_as_username, SCOPE_LISTENER, 1},
    {"tls_version", config_set_tls_version, SCOPE_LISTENER, 1},
    {"ciphers", config_set_ciphers, SCOPE_LISTENER, 1},
    {"psk_file", config_set_psk_file, SCOPE_LISTENER, 1},
    {"psk_hint", config_set_psk_hint, SCOPE_LISTENER, 1},
};

/* Options of mosquitto 2.0 that ringmq does not implement. Refusing them is
 * deliberate: silently ignoring password_file or acl_file would run a broker
 * that is more open than its operator wrote. */
static const char *const mosquitto_only[] = {
    "accept_protocol_versions",
    "address",
    "addresses",
    "allow_duplicate_messages",
    "allow_zero_length_clientid",
    "auth_plugin",
    "auth_plugin_deny_special_chars",
    "auto_id_prefix",
    "autosave_interval",
    "autosave_on_changes",
    "bind_address",
    "bind_interface",
    "check_retain_source",
    "ciphers_tls1.3",
    "cleansession",
    "clientid",
    "clientid_prefixes",
    "connection",
    "connection_messages",
    "dhparamfile",
    "disable_client_cert_date_checks",
    "enable_control_api",
    "global_plugin",
    "http_dir",
    "idle_timeout",
    "keepalive_interval",
    "local_cleansession",
    "local_clientid",
    "local_password",
    "local_username",
    "log_facility",
    "log_timestamp",
    "log_timestamp_format",
    "max_inflight_bytes",
    "message_size_limit",
    "mount_point",
    "notification_topic",
    "notifications",
    "notifications_local_only",
    "password",
    "persistence",
    "persistence_file",
    "persistence_location",
    "plugin",
    "port",
    "queue_qos0_messages",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "restart_timeout",
    "round_robin",
    "set_tcp_nodelay",
    "socket_domain",
    "start_type",
    "threshold",
    "tls_engine",
    "tls_engine_kpass_sha1",
    "tls_keyform",
    "topic",
    "try_private",
    "upgrade_outgoing_qos",
    "use_username_as_clientid",
    "username",
    "websockets_headers_size",
    "websockets_log_level",
};

/* Families of mosquitto keys: plugin and bridge options by prefix. */
static const char *const mosquitto_prefixes[] = {"auth_opt_", "plugin_opt_", "bridge_"};

static bool is_mosquitto_only(const char *key)
{
    for (size_t i = 0; i < sizeof(mosquitto_only) / sizeof(mosquitto_only[0]); i++)
        if (strcmp(key, mosquitto_only[i]) == 0)
            return true;
    for (size_t i = 0; i < sizeof(mosquitto_prefixes) / sizeof(mosquitto_prefixes[0]); i++)
        if (strncmp(key, mosquitto_prefixes[i], strlen(mosquitto_prefixes[i])) == 0)
            return true;
    return false;
}

static int apply(struct parser *p)
{
    const struct option *o = NULL;
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        if (strcmp(p->key, options[i].key) == 0) {
            o = &options[i];
            break;
        }
    }
    if (o == NULL) {
        if (is_mosquitto_only(p->key)) {
            bool no_effect = false;
            const char *v = p->value_count ? p->values[0] : "";
            const char *hint = config_mosquitto_hint(p->key, v, &no_effect);
            if (no_effect) {
                /* "persistence false" says what ringmq does anyway. */
                if (strcmp(p->key, "persistence") != 0 || strcmp(v, "false") != 0)
                    config_warn(p->c, "%s:%d: `%s' has no effect here: %s", p->source, p->line,
                                p->key, hint);
                return 0;
            }
            return config_fail(p, "`%s' is a mosquitto option ringmq does not support yet%s%s",
                               p->key, hint ? ": " : "", hint ? hint : "");
        }
        return config_fail(p, "unknown option `%s'", p->key);
    }
    if (o->scope == SCOPE_LISTENER && p->listener == NULL)
        return config_fail(
            p, "`%s' is only valid inside a listener block (after a `listener' line)", p->key);
    if (p->value_count == 0)
        return config_fail(p, "`%s' needs a value", p->key);
    if (p->value_count > o->values_max) {
        if (o->values_max == 1)
            return config_fail(p, "`%s' takes one value, found extra `%s'", p->key, p->values[1]);
        return config_fail(p, "`%s' takes at most %u values, found extra `%s'", p->key,
                           o->values_max, p->values[o->values_max]);
    }
    return o->set(p);
}

/* Splits line (NUL-terminated, modified in place) into the key and values. A
 * '#' that starts a token starts a comment; one inside a token is data. */
static void tokenize(struct parser *p, char *line)
{
    p->key = NULL;
    p->value_count = 0;
    char *s = line;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0' || *s == '#')
            return;
        char *start = s;
        while (*s != '\0' && *s != ' ' && *s != '\t')
            s++;
        bool last = *s == '\0';
        *s = '\0';
        if (p->key == NULL)
            p->key = start;
        else if (p->value_count++ < sizeof(p->values) / sizeof(p->values[0]))
            p->values[p->value_count - 1] = start;
        if (last)
            return;
        s++;
    }
}

/* A line's bytes before it is read: not too long, no NUL, no control
 * byte (a lone CR, an escape mean a damaged or binary file; better to stop
 * than to guess what the operator meant). */
static int line_check(struct parser *p, const char *start, size_t line_len)
{
    if (line_len > CONFIG_LINE_MAX)
        return config_fail(p, "line is longer than %u bytes", (unsigned)CONFIG_LINE_MAX);
    if (memchr(start, '\0', line_len) != NULL)
        return config_fail(p, "line holds a NUL byte");
    for (size_t i = 0; i < line_len; i++) {
        unsigned char ch = (unsigned char)start[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return config_fail(p, "line holds control character 0x%02x", ch);
    }
    return 0;
}

/* collect_errors: one more error for the list (the first of them stays in
 * err for the caller). */
static void keep_error(struct config *c, const char *err)
{
    if (c->error_count < CONFIG_ERRORS_MAX)
        snprintf(c->errors[c->error_count], sizeof(c->errors[0]), "%s", err);
    c->error_count++;
}

/* include_dir DIR: the caller's reader parses DIR's *.conf files into the
 * same config, in name order, from the main file only (mosquitto's rule). */
static int set_include_dir(struct parser *p)
{
    struct config *c = p->c;
    if (c->include_depth > 0)
        return config_fail(p, "`include_dir' is only read from the main config file");
    if (!c->include_fn)
        return config_fail(p, "`include_dir' is not available here");
    char saved[sizeof(c->source)];
    memcpy(saved, c->source, sizeof(saved));
    c->include_depth++;
    char why[512] = "";
    uint32_t listed = c->error_count;
    int rc = c->include_fn(c->include_ctx, c, p->values[0], why, sizeof(why));
    c->include_depth--;
    memcpy(c->source, saved, sizeof(saved));
    if (rc != 0 && c->collect_errors && c->error_count > listed)
        return 0; /* the included files' errors are listed already */
    if (rc != 0) {
        /* An error inside an included file names that file's line. */
        if (why[0] && strchr(why, ':') && strncmp(why, p->values[0], strlen(p->values[0])) == 0)
            return snprintf(p->err, p->errlen, "%s", why), -1;
        return config_fail(p, "include_dir %s: %s", p->values[0], why);
    }
    return 0;
}

int config_parse(struct config *c, const char *source, const char *text, size_t len, char *err,
                 size_t errlen)
{
    assert(c != NULL);
    assert(text != NULL || len == 0);
    if (source == NULL)
        source = "<default>";
    snprintf(c->source, sizeof(c->source), "%s", source);

    struct parser p = {.c = c, .source = source, .err = err, .errlen = errlen};
    /* One line plus its NUL; 4 KiB on the main thread's stack at start-up. */
    char buf[CONFIG_LINE_MAX + 1];
    size_t pos = 0;
    bool failed = false;
    uint32_t listed = c->error_count;

    while (pos < len) {
        p.line++;
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - start) : len - pos;
        pos += line_len + (nl != NULL ? 1 : 0);
        /* CRLF files come from Windows editors; the CR is not part of the
         * line. */
        if (line_len > 0 && start[line_len - 1] == '\r')
            line_len--;

        int rc = line_check(&p, start, line_len);
        if (rc == 0) {
            memcpy(buf, start, line_len);
            buf[line_len] = '\0';
            tokenize(&p, buf);
            if (p.key == NULL)
                continue;
            rc = apply(&p);
        }
        if (rc != 0) {
            if (!c->collect_errors)
                return -1;
            keep_error(c, err);
            failed = true;
        }
    }
    c->parse_warnings = c->warning_count;
    return failed || c->error_count != listed ? -1 : 0;
}

int config_finish(struct config *c, char *err, size_t errlen)
{
    assert(c != NULL);
    char where[sizeof(c->source) + 16];

    if (c->listener_count == 0) {
        /* Loopback only: a broker started without a config must not be
         * reachable from the network. */
        listener_reset(&c->listeners[0], 1883, "127.0.0.1", 0);
        c->listener_count = 1;
    }
    /* A CONNECT is a packet too: max_packet_size bounds it whatever
     * max_connect_size says. Saying more in the file is a contradiction
     * worth stopping for; the default just follows a smaller
     * max_packet_size. */
    if (c->max_connect_size > c->max_packet_size) {
        if (c->max_connect_size_line != 0) {
            snprintf(where, sizeof(where), "%s:%d", c->source, c->max_connect_size_line);
            return report(err, errlen, where,
                          "`max_connect_size' %u is above max_packet_size %u (a CONNECT is a "
                          "packet: max_packet_size bounds it too)",
                          (unsigned)c->max_connect_size, (unsigned)c->max_packet_size);
        }
        c->max_connect_size = c->max_packet_size;
    }
    if (c->listener_count > LISTENERS_MAX) {
        snprintf(where, sizeof(where), "%s:0", c->source);
        return report(err, errlen, where, "too many listeners (at most %u)",
                      (unsigned)LISTENERS_MAX);
    }

    config_auth_files(c);
    for (uint32_t i = 0; i < c->listener_count; i++) {
        struct config_listener *l = &c->listeners[i];
        struct addr a;
        /* The parser checked this; a struct filled by other code may not
         * have been, and net/ binds what we return. */
        if (memchr(l->address, '\0', sizeof(l->address)) == NULL || !addr_parse(l->address, &a)) {
            snprintf(where, sizeof(where), "%s:%d", c->source, l->line);
            return report(err, errlen, where, "listener address is not a numeric IP address");
        }
        if (config_tls_check(c->source, l, err, errlen) != 0)
            return -1;
        if (l->allow_anonymous != CONFIG_UNSET)
            continue;
        if (c->allow_anonymous != CONFIG_UNSET) {
            l->allow_anonymous = c->allow_anonymous;
            continue;
        }
        /* With no word from the operator, only a listener that the outside
         * world cannot reach, and that has no password file, lets clients
         * in without a name (mosquitto 2.0 refuses them on every listener
         * a config defines). */
        bool open = addr_is_loopback(&a) && l->password_file[0] == '\0';
        l->allow_anonymous = open ? CONFIG_TRUE : CONFIG_FALSE;
        l->anonymous_by_default = open;
    }
    config_auth_finish(c);
    config_rates_finish(c);
    bool passwd = false;
    for (uint32_t i = 0; i < c->listener_count; i++)
        passwd = passwd || c->listeners[i].password_file[0] != '\0';
    if (c->auth_methods && !passwd) {
        snprintf(where, sizeof(where), "%s:%d", c->source, c->auth_methods_line);
        return report(err, errlen, where,
                      "`auth_methods' needs a password_file (SCRAM-SHA-512 works from its "
                      "SCRAM-SHA-512$ entries)");
    }
    return 0;
}
