/*
 * libFuzzer target for core/config.c: arbitrary bytes as a config file.
 * config_parse must return 0 or -1 and never crash. Beyond that:
 *  - an error reads "fuzz.conf:LINE: message" with LINE a line of the
 *    input, the first LINE-1 lines parse cleanly on their own and the first
 *    LINE lines fail with the same message (the parser stops at the first
 *    bad line and looks no further);
 *  - a short error buffer gets a NUL-terminated prefix of the message (the
 *    buffer is exactly that size, so AddressSanitizer sees any overrun);
 *  - a successful parse leaves every value within the range config.h and
 *    core/limits.h give it, twice the same input gives the same struct, and
 *    config_finish then returns 0 with every listener resolved, or -1 with
 *    "fuzz.conf:LINE: message".
 */
#include <string.h>

#include "config.h"
#include "fuzz_input.h"
#include "limits.h"

#define SOURCE "fuzz.conf"

/* The LINE of "fuzz.conf:LINE: message"; -1 if err does not read so. */
static long err_line(const char *err)
{
    size_t n = strlen(SOURCE);
    if (strncmp(err, SOURCE ":", n + 1) != 0)
        return -1;
    const char *p = err + n + 1;
    long line = 0;
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9' && line < 100000000)
        line = line * 10 + (*p++ - '0');
    if (strncmp(p, ": ", 2) != 0 || p[2] == '\0')
        return -1;
    return line;
}

static size_t lines_in(const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n + (len > 0 && text[len - 1] != '\n');
}

/* Bytes holding the first k lines (with their newlines). */
static size_t prefix_of(const char *text, size_t len, size_t k)
{
    size_t i = 0;
    for (size_t seen = 0; i < len && seen < k; i++)
        seen += text[i] == '\n';
    return i;
}

static bool nul_in(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static void check_parsed(const struct config *c, size_t nlines)
{
    CHECK(strcmp(c->source, SOURCE) == 0);
    CHECK(c->shards <= SHARDS_MAX);
    CHECK(c->log_level <= LOG_LEVEL_DEBUG);
    CHECK(c->allow_anonymous >= CONFIG_UNSET && c->allow_anonymous <= CONFIG_TRUE);
    CHECK(c->max_packet_size >= 1 && c->max_packet_size <= PACKET_SIZE_MAX);
    CHECK(c->max_keepalive_s >= 10);
    CHECK(c->max_inflight_messages >= 1 && c->max_inflight_messages <= INFLIGHT_MAX);
    CHECK(c->max_queued_messages >= 1 && c->max_queued_messages <= QUEUED_MESSAGES_MAX);
    CHECK(c->max_queued_bytes <= QUEUED_BYTES_MAX);
    CHECK(c->persistent_client_expiration_s <= 4294967294ull);
    CHECK(c->connect_timeout_ms >= 1000 && c->connect_timeout_ms <= 3600u * 1000u);
    CHECK(c->max_output_buffer >= 4096 && c->max_output_buffer <= OUTPUT_BUFFER_MAX);
    CHECK(c->max_retained_messages <= UINT32_MAX);
    CHECK(c->max_retained_bytes <= RETAINED_BYTES_MAX);
    CHECK(c->max_qos <= 2);
    CHECK(c->max_subscriptions >= 1 && c->max_subscriptions <= SUBSCRIPTIONS_PER_CLIENT_MAX);
    CHECK(c->max_topic_levels >= 1 && c->max_topic_levels <= TOPIC_LEVELS_MAX);
    CHECK(c->sys_interval_s <= 65535);
    CHECK(c->auth_threads <= AUTH_THREADS_MAX);
    CHECK(nul_in(c->password_file, sizeof(c->password_file)));
    if (c->password_file[0])
        CHECK(c->password_file_line >= 1 && (size_t)c->password_file_line <= nlines);
    CHECK((c->auth_methods & ~(uint32_t)CONFIG_AUTH_SCRAM_SHA512) == 0);
    CHECK(c->listener_count <= LISTENERS_MAX);
    for (uint32_t i = 0; i < c->listener_count; i++) {
        const struct config_listener *l = &c->listeners[i];
        CHECK(nul_in(l->address, sizeof(l->address)));
        CHECK(l->line >= 1 && (size_t)l->line <= nlines);
        CHECK(l->allow_anonymous >= CONFIG_UNSET && l->allow_anonymous <= CONFIG_TRUE);
        /* Two listeners on one fixed port and address are refused. */
        for (uint32_t j = 0; j < i; j++)
            CHECK(l->port == 0 || l->port != c->listeners[j].port ||
                  strcmp(l->address, c->listeners[j].address) != 0);
    }
}

static struct config c1, c2;
static char err1[512], err2[512];

/* config_init on a config that may hold a parsed allow_from list. */
static void reset(struct config *c)
{
    config_fini(c);
    config_init(c);
}

/* Two parses of the same text are the same config: the structs byte for
 * byte but for the address of the allow_from/deny_from list, and the
 * lists' contents. */
static bool same_config(struct config *a, struct config *b)
{
    struct config_netrule *va = a->netrules, *vb = b->netrules;
    uint32_t cap_a = a->netrule_cap, cap_b = b->netrule_cap;
    a->netrules = b->netrules = NULL;
    a->netrule_cap = b->netrule_cap = 0;
    bool same = memcmp(a, b, sizeof(*a)) == 0 &&
                (a->netrule_count == 0 || memcmp(va, vb, a->netrule_count * sizeof(*va)) == 0);
    a->netrules = va;
    b->netrules = vb;
    a->netrule_cap = cap_a;
    b->netrule_cap = cap_b;
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t nlines = lines_in(text, size);

    reset(&c1);
    err1[0] = '\0';
    int rc = config_parse(&c1, SOURCE, text, size, err1, sizeof(err1));
    CHECK(rc == 0 || rc == -1);

    if (rc == -1) {
        CHECK(nul_in(err1, sizeof(err1)));
        long line = err_line(err1);
        if (line < 0)
            fprintf(stderr, "error without file:line: \"%s\"\n", err1);
        CHECK(line >= 1 && (size_t)line <= nlines);

        reset(&c2);
        CHECK(config_parse(&c2, SOURCE, text, prefix_of(text, size, (size_t)line - 1), err2,
                           sizeof(err2)) == 0);
        reset(&c2);
        err2[0] = '\0';
        CHECK(config_parse(&c2, SOURCE, text, prefix_of(text, size, (size_t)line), err2,
                           sizeof(err2)) == -1);
        CHECK(strcmp(err1, err2) == 0);

        /* A buffer too short for the message: a NUL-terminated prefix. */
        size_t small = 1 + size % 24;
        char *e = malloc(small);
        CHECK(e != NULL);
        reset(&c2);
        CHECK(config_parse(&c2, SOURCE, text, size, e, small) == -1);
        CHECK(nul_in(e, small) && strncmp(e, err1, strlen(e)) == 0);
        free(e);
        /* No buffer at all. */
        reset(&c2);
        CHECK(config_parse(&c2, SOURCE, text, size, NULL, 0) == -1);
        return 0;
    }

    check_parsed(&c1, nlines);
    reset(&c2);
    CHECK(config_parse(&c2, SOURCE, text, size, err2, sizeof(err2)) == 0);
    CHECK(same_config(&c1, &c2));

    err1[0] = '\0';
    rc = config_finish(&c1, err1, sizeof(err1));
    CHECK(rc == 0 || rc == -1);
    if (rc == -1) {
        long line = err_line(err1);
        if (line < 0)
            fprintf(stderr, "finish error without file:line: \"%s\"\n", err1);
        CHECK(line >= 0 && (size_t)line <= nlines);
        return 0;
    }
    CHECK(c1.listener_count >= 1 && c1.listener_count <= LISTENERS_MAX);
    for (uint32_t i = 0; i < c1.listener_count; i++)
        CHECK(c1.listeners[i].allow_anonymous == CONFIG_FALSE ||
              c1.listeners[i].allow_anonymous == CONFIG_TRUE);
    if (c1.auth_methods)
        CHECK(c1.password_file[0] != '\0');
    return 0;
}
