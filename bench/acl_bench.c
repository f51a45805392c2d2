/*
 * acl-bench: what one ACL decision costs, warm, with 10,000 users of one
 * rule each and a few patterns (security/acl.h). Not a test: it prints
 * figures and asserts nothing about them.
 *
 *   acl-bench [users [spread [names]]]   (defaults 10000, 4096, plain)
 *
 * names: `plain' (usernames "uN"), `deny' (the same, and the file has a
 * deny pattern using %u, so every decision scans the username), `odd'
 * (usernames "uN/x", which that deny pattern takes as text: the slow path
 * of acl_pattern.c on every allowed decision).
 *
 * For each kind of decision (read, publish, subscribe; read_all, asked
 * with the topic as its filter) it runs batches of BATCH decisions over a
 * list of `spread' queries by random users (half allowed, half refused:
 * the topic is the asker's or another user's) and prints the median and
 * the 99th percentile of the batches' mean nanoseconds per decision. A
 * small spread (64) keeps the nodes involved in cache, the default 4096
 * touches a different user's trie each time (most of 10,000 users' tries
 * do not fit a core's L2).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"

#define BATCH     1024u
#define BATCHES   2000u
#define QUERIES   4096u /* at most; a power of two */
#define NAME_MAX  24u
#define TOPIC_MAX 80u

enum names { PLAIN, DENY, ODD };

struct query {
    struct acl_who who;
    char name[NAME_MAX];
    char topic[TOPIC_MAX];
    char filter[TOPIC_MAX];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static char *make_file(unsigned users, enum names names, size_t *len)
{
    size_t cap = (size_t)users * 80 + 256;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    size_t o = (size_t)snprintf(text, cap,
                                "pattern read clients/%%c/#\n"
                                "pattern deny devices/+/secret/#\n"
                                "topic read public/#\n%s",
                                names == PLAIN ? "" : "pattern deny devices/%u/secret/#\n");
    const char *odd = names == ODD ? "/x" : "";
    for (unsigned i = 0; i < users; i++)
        o +=
            (size_t)snprintf(text + o, cap - o,
                             "user u%u%s\ntopic readwrite devices/u%u%s/+/state\n", i, odd, i, odd);
    *len = o;
    return text;
}

static void make_queries(struct query *q, unsigned users, enum names names)
{
    const char *odd = names == ODD ? "/x" : "";
    uint64_t x = 0x2545f4914f6cdd1du;
    for (unsigned i = 0; i < QUERIES; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned u = (unsigned)(x % users);
        unsigned other = (unsigned)((x >> 32) % users);
        snprintf(q[i].name, NAME_MAX, "u%u%s", u, odd);
        snprintf(q[i].topic, TOPIC_MAX, "devices/u%u%s/sensor%u/state", i % 2 ? u : other, odd,
                 i % 7);
        snprintf(q[i].filter, TOPIC_MAX, "devices/u%u%s/+/state", i % 2 ? u : other, odd);
        q[i].who = (struct acl_who){.username = (const uint8_t *)q[i].name,
                                    .username_len = strlen(q[i].name),
                                    .has_username = true,
                                    .client_id = (const uint8_t *)q[i].name,
                                    .client_id_len = strlen(q[i].name)};
    }
}

enum kind { READ, PUBLISH, SUBSCRIBE, READ_ALL };

static void run(const struct acl *acl, const struct query *q, unsigned spread, enum kind k,
                const char *what)
{
    static double ns[BATCHES];
    unsigned allowed = 0, next = 0;
    for (unsigned b = 0; b < BATCHES; b++) {
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < BATCH; i++, next = (next + 1) & (spread - 1)) {
            const struct query *e = &q[next];
            const char *s = k == SUBSCRIBE ? e->filter : e->topic;
            const uint8_t *p = (const uint8_t *)s;
            size_t n = strlen(s);
            bool ok = k == READ        ? acl_may_read(acl, &e->who, p, n)
                      : k == PUBLISH   ? acl_may_publish(acl, &e->who, p, n)
                      : k == SUBSCRIBE ? acl_may_subscribe(acl, &e->who, p, n)
                                       : acl_may_read_all(acl, &e->who, p, n);
            allowed += ok;
        }
        ns[b] = (double)(now_ns() - t0) / BATCH;
    }
    qsort(ns, BATCHES, sizeof(ns[0]), by_value);
    printf("%-10s median %6.1f ns  p99 %6.1f ns  (%u of %u allowed)\n", what, ns[BATCHES / 2],
           ns[BATCHES * 99 / 100], allowed, BATCHES * BATCH);
}

int main(int argc, char **argv)
{
    unsigned users = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 10000;
    unsigned spread = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : QUERIES;
    if (users == 0)
        users = 1;
    if (spread == 0 || spread > QUERIES || (spread & (spread - 1)))
        spread = QUERIES;
    const char *mode = argc > 3 ? argv[3] : "plain";
    enum names names = strcmp(mode, "odd") == 0 ? ODD : strcmp(mode, "deny") == 0 ? DENY : PLAIN;
    size_t len;
    char *text = make_file(users, names, &len);
    static struct query q[QUERIES];
    if (!text)
        return 1;
    char err[256];
    uint64_t t0 = now_ns();
    struct acl *acl = acl_create((const uint8_t *)text, len, "bench.acl", err, sizeof(err));
    uint64_t t1 = now_ns();
    if (!acl) {
        fprintf(stderr, "acl-bench: %s\n", err);
        return 1;
    }
    printf("%u users, %zu rules, %zu bytes: compiled in %.1f ms; %u distinct queries; %s names\n",
           users, acl_rule_count(acl), len, (double)(t1 - t0) / 1e6, spread,
           names == ODD    ? "odd"
           : names == DENY ? "plain (and a %u deny)"
                           : "plain");
    make_queries(q, users, names);
    run(acl, q, spread, READ, "read");
    run(acl, q, spread, PUBLISH, "publish");
    run(acl, q, spread, SUBSCRIBE, "subscribe");
    run(acl, q, spread, READ_ALL, "read_all");
    acl_destroy(acl);
    free(text);
    return 0;
}
