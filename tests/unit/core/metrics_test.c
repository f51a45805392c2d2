/*
 * The metrics table is consistent (names, labels, offsets, $SYS topics),
 * metrics_sum adds the shards' counters, and metrics_render writes valid
 * Prometheus text (format 0.0.4) with the right values, and behaves like
 * snprintf when the buffer is too small.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define NSHARDS 3

static struct metrics_shard fake[NSHARDS];
static const struct metrics_shard *const shards[NSHARDS] = {&fake[0], &fake[1], &fake[2]};
static uint64_t broker[METRICS_BROKER_COUNT];

/* Distinct per shard and per field, so a wrong offset or shard shows. */
static uint64_t fake_value(unsigned shard, size_t offset)
{
    return (uint64_t)(shard + 1) * 1000000u + offset * 7u + 1u;
}

static uint64_t fake_broker(unsigned i)
{
    return 424242u + i * 11u;
}

static void fill(void)
{
    for (unsigned s = 0; s < NSHARDS; s++)
        for (size_t off = 0; off < sizeof(struct metrics_shard);
             off += sizeof(atomic_uint_fast64_t))
            atomic_store((atomic_uint_fast64_t *)((char *)&fake[s] + off), fake_value(s, off));
    for (unsigned i = 0; i < METRICS_BROKER_COUNT; i++)
        broker[i] = fake_broker(i);
}

TestSuite(metrics, .init = fill);

static bool name_ok(const char *s, bool colon)
{
    if (!*s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                 (colon && *s == ':')))
        return false;
    for (s++; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || (colon && *s == ':')))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

Test(metrics, names_are_valid_prometheus_names)
{
    cr_assert_gt(metrics_table_len, 0);
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        cr_assert(name_ok(e->name, true), "%s", e->name);
        cr_assert_eq(strncmp(e->name, "ringmq_", 7), 0, "%s", e->name);
        if (e->kind == METRICS_COUNTER)
            cr_assert(ends_with(e->name, "_total"), "counter %s ends in _total", e->name);
        else
            cr_assert(!ends_with(e->name, "_total"), "gauge %s does not end in _total", e->name);
        cr_assert(e->help && *e->help, "%s has a help", e->name);
        cr_assert_null(strchr(e->help, '\n'), "%s: help on one line", e->name);
    }
}

/* Labels are key="value"[,key="value"...] with valid keys, values that
 * need no escaping, and never the renderer's own shard key. */
static bool labels_ok(const char *s)
{
    for (;;) {
        const char *eq = strchr(s, '=');
        if (!eq || eq == s || eq[1] != '"')
            return false;
        char key[64];
        if ((size_t)(eq - s) >= sizeof(key))
            return false;
        memcpy(key, s, (size_t)(eq - s));
        key[eq - s] = '\0';
        if (!name_ok(key, false) || strncmp(key, "__", 2) == 0 || strcmp(key, "shard") == 0)
            return false;
        const char *v = eq + 2;
        const char *end = strchr(v, '"');
        if (!end || end == v)
            return false;
        for (const char *p = v; p < end; p++)
            if (*p == '\\' || *p == '\n')
                return false;
        if (end[1] == '\0')
            return true;
        if (end[1] != ',')
            return false;
        s = end + 2;
    }
}

Test(metrics, families_are_contiguous_and_consistent)
{
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        if (e->labels)
            cr_assert(labels_ok(e->labels), "%s{%s}", e->name, e->labels);
        bool first = i == 0 || strcmp(metrics_table[i - 1].name, e->name) != 0;
        if (!first) {
            const struct metrics_entry *p = &metrics_table[i - 1];
            cr_assert(p->kind == e->kind && p->source == e->source &&
                          p->per_shard == e->per_shard && strcmp(p->help, e->help) == 0,
                      "%s: one kind, source, help and sharding per family", e->name);
            cr_assert(p->labels && e->labels, "%s: a family of several samples labels each",
                      e->name);
        }
        for (size_t j = i + 1; j < metrics_table_len; j++) {
            const struct metrics_entry *o = &metrics_table[j];
            if (strcmp(o->name, e->name) != 0)
                continue;
            cr_assert(!first || j == i + 1 || strcmp(metrics_table[j - 1].name, e->name) == 0,
                      "%s: the samples of a family are contiguous", e->name);
            cr_assert(!str_eq(o->labels, e->labels), "%s: each sample once", e->name);
        }
    }
}

Test(metrics, shard_offsets_cover_the_struct_once)
{
    size_t covered = 0;
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        if (e->source != METRICS_SHARD)
            continue;
        cr_assert_eq(e->offset % _Alignof(atomic_uint_fast64_t), 0, "%s", e->name);
        cr_assert_leq(e->offset + sizeof(atomic_uint_fast64_t), sizeof(struct metrics_shard), "%s",
                      e->name);
        for (size_t j = i + 1; j < metrics_table_len; j++)
            if (metrics_table[j].source == METRICS_SHARD)
                cr_assert_neq(metrics_table[j].offset, e->offset, "%s and %s share a counter",
                              e->name, metrics_table[j].name);
        covered += sizeof(atomic_uint_fast64_t);
    }
    /* Distinct and in range: then every field has its line in the table. */
    cr_assert_eq(covered, sizeof(struct metrics_shard), "a metrics_shard field has no table line");
}

Test(metrics, broker_values_are_each_described_once)
{
    unsigned seen[METRICS_BROKER_COUNT] = {0};
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        if (e->source != METRICS_BROKER)
            continue;
        cr_assert_lt((unsigned)e->broker, METRICS_BROKER_COUNT, "%s", e->name);
        cr_assert(!e->per_shard, "%s: a broker value has no shards", e->name);
        seen[e->broker]++;
    }
    for (unsigned i = 0; i < METRICS_BROKER_COUNT; i++)
        cr_assert_eq(seen[i], 1, "broker value %u", i);
}

/* Users and the integration tests read these: never rename one. */
static const char *const sys_topics_kept[] = {
    "clients/connected",
    "connections/total",
    "messages/received",
    "messages/sent",
    "messages/dropped",
    "bytes/received",
    "bytes/sent",
    "retained messages/refused",
    "auth/failed",
    "auth/busy",
    "protocol errors",
    "queues/overflow",
    "flow/publishers held",
    "limits/connect too large",
    "limits/sessions refused",
    "limits/memory refused",
    "limits/memory dropped",
    "limits/retained backlog dropped",
    "uptime",
    "shards",
    "retained messages/count",
    "auth/pending",
    "sessions/count",
    "memory/allocated",
    "memory/limit",
    "subscriptions/count",
};

Test(metrics, sys_topics_kept_and_unique)
{
    for (size_t k = 0; k < sizeof(sys_topics_kept) / sizeof(sys_topics_kept[0]); k++) {
        unsigned found = 0;
        for (size_t i = 0; i < metrics_table_len; i++)
            if (str_eq(metrics_table[i].sys_topic, sys_topics_kept[k]))
                found++;
        cr_assert_eq(found, 1, "$SYS/broker/%s", sys_topics_kept[k]);
    }
    for (size_t i = 0; i < metrics_table_len; i++) {
        const char *t = metrics_table[i].sys_topic;
        if (!t)
            continue;
        cr_assert(*t && t[0] != '/' && t[strlen(t) - 1] != '/' && !strpbrk(t, "+#"), "%s", t);
        for (size_t j = i + 1; j < metrics_table_len; j++)
            cr_assert(!str_eq(metrics_table[j].sys_topic, t), "%s twice", t);
    }
}

/* log_stats (net/main.c) prints the shard counters in table order as
 * "clients connected N, connections total N, messages received N, ...":
 * the integration test of SIGUSR1 greps the first and third. */
Test(metrics, shard_counters_lead_in_sigusr1_order)
{
    cr_assert_str_eq(metrics_table[0].sys_topic, "clients/connected");
    cr_assert_str_eq(metrics_table[2].sys_topic, "messages/received");
    bool broker_seen = false;
    for (size_t i = 0; i < metrics_table_len; i++) {
        if (metrics_table[i].source == METRICS_BROKER)
            broker_seen = true;
        else
            cr_assert(!broker_seen, "%s: shard counters come first", metrics_table[i].name);
    }
}

Test(metrics, sum_adds_every_shard)
{
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        if (e->source != METRICS_SHARD)
            continue;
        uint64_t want = 0;
        for (unsigned s = 0; s < NSHARDS; s++)
            want += fake_value(s, e->offset);
        cr_assert_eq(metrics_sum(shards, NSHARDS, e->offset), want, "%s", e->name);
        cr_assert_eq(metrics_sum(shards, 1, e->offset), fake_value(0, e->offset));
        cr_assert_eq(metrics_sum(shards, 0, e->offset), 0);
        cr_assert_eq(metrics_sum(NULL, 0, e->offset), 0);
        cr_assert_eq(metrics_value(e, shards, NSHARDS, NULL), want, "%s", e->name);
    }
}

Test(metrics, sum_wraps_like_the_counters)
{
    size_t off = offsetof(struct metrics_shard, msgs_sent[1]);
    atomic_store(&fake[0].msgs_sent[1], UINT64_MAX);
    atomic_store(&fake[1].msgs_sent[1], 2);
    atomic_store(&fake[2].msgs_sent[1], 0);
    cr_assert_eq(metrics_sum(shards, NSHARDS, off), 1);
}

Test(metrics, value_reads_broker_values)
{
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        if (e->source == METRICS_BROKER)
            cr_assert_eq(metrics_value(e, shards, NSHARDS, broker), fake_broker(e->broker));
    }
}

Test(metrics, sys_family_sums_its_family)
{
    unsigned families = 0;
    for (size_t i = 0; i < metrics_table_len; i++) {
        const struct metrics_entry *e = &metrics_table[i];
        uint64_t want = 0;
        for (size_t j = 0; j < metrics_table_len; j++)
            if (!e->sys_family ? j == i : strcmp(metrics_table[j].name, e->name) == 0)
                want += metrics_value(&metrics_table[j], shards, NSHARDS, broker);
        cr_assert_eq(metrics_sys_value(e, shards, NSHARDS, broker), want, "%s", e->name);
        if (e->sys_family) {
            families++;
            cr_assert_not_null(e->sys_topic, "%s: a family total is for $SYS", e->name);
            cr_assert(i + 1 < metrics_table_len && !strcmp(metrics_table[i + 1].name, e->name),
                      "%s: a family of several samples", e->name);
        }
    }
    cr_assert_geq(families, 2, "messages/received and messages/sent are family totals");
}

/* ---- rendering ------------------------------------------------------------ */

static char *render(const uint64_t *b, size_t *len)
{
    size_t need = metrics_render(NULL, 0, shards, NSHARDS, b);
    char *buf = malloc(need + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(metrics_render(buf, need + 1, shards, NSHARDS, b), need);
    cr_assert_eq(strlen(buf), need);
    *len = need;
    return buf;
}

static const struct metrics_entry *find(const char *name, size_t name_len)
{
    for (size_t i = 0; i < metrics_table_len; i++)
        if (strlen(metrics_table[i].name) == name_len &&
            memcmp(metrics_table[i].name, name, name_len) == 0)
            return &metrics_table[i];
    return NULL;
}

/* Parses the whole text: every family's # HELP then # TYPE, once each and
 * before its samples, the samples of a family together, each sample of the
 * table exactly once (per shard: once per shard) with its value. */
static void check_text(char *text, const uint64_t *b)
{
    unsigned samples[64][NSHARDS + 1];
    cr_assert_leq(metrics_table_len, 64);
    memset(samples, 0, sizeof(samples));
    const struct metrics_entry *family = NULL; /* whose samples may follow */
    bool typed = false;
    char *save = NULL;
    cr_assert(*text && text[strlen(text) - 1] == '\n', "the text ends with a newline");
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            const char *name = line + 7;
            const char *sp = strchr(name, ' ');
            cr_assert_not_null(sp, "%s", line);
            const struct metrics_entry *e = find(name, (size_t)(sp - name));
            cr_assert_not_null(e, "%s", line);
            cr_assert_str_eq(sp + 1, e->help);
            for (const struct metrics_entry *f = e;
                 f < metrics_table + metrics_table_len && strcmp(f->name, e->name) == 0; f++)
                cr_assert_eq(samples[f - metrics_table][NSHARDS], 0, "%s: HELP once", e->name);
            cr_assert(family != e, "%s: HELP once", e->name);
            family = e;
            typed = false;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            cr_assert_not_null(family, "TYPE after HELP: %s", line);
            cr_assert(!typed, "TYPE once: %s", line);
            char want[128];
            snprintf(want, sizeof(want), "# TYPE %s %s", family->name,
                     family->kind == METRICS_COUNTER ? "counter" : "gauge");
            cr_assert_str_eq(line, want);
            typed = true;
            continue;
        }
        cr_assert_neq(line[0], '#', "no other comment: %s", line);
        cr_assert(family && typed, "a sample after its HELP and TYPE: %s", line);
        size_t nlen = strcspn(line, "{ ");
        cr_assert(nlen == strlen(family->name) && memcmp(line, family->name, nlen) == 0,
                  "a sample of the family just announced: %s", line);
        /* Labels, less the shard label the renderer adds. */
        char labels[128] = "";
        long shard = -1;
        const char *rest = line + nlen;
        if (*rest == '{') {
            const char *close = strchr(rest, '}');
            cr_assert_not_null(close, "%s", line);
            size_t l = (size_t)(close - rest - 1);
            cr_assert_lt(l, sizeof(labels));
            memcpy(labels, rest + 1, l);
            labels[l] = '\0';
            char *sh = strstr(labels, "shard=\"");
            if (sh) {
                shard = strtol(sh + 7, NULL, 10);
                cr_assert(shard >= 0 && shard < NSHARDS, "%s", line);
                if (sh > labels)
                    sh--; /* its comma */
                *sh = '\0';
            }
            rest = close + 1;
        }
        cr_assert_eq(*rest, ' ', "%s", line);
        char *end;
        unsigned long long v = strtoull(rest + 1, &end, 10);
        cr_assert_eq(*end, '\0', "an integer value: %s", line);
        const struct metrics_entry *e = NULL;
        for (const struct metrics_entry *f = family;
             f < metrics_table + metrics_table_len && strcmp(f->name, family->name) == 0; f++)
            if (strcmp(f->labels ? f->labels : "", labels) == 0)
                e = f;
        cr_assert_not_null(e, "a sample of the table: %s", line);
        cr_assert_eq(e->per_shard, shard >= 0, "shard label where the table asks: %s", line);
        uint64_t want;
        if (e->source == METRICS_BROKER) {
            cr_assert_not_null(b, "no broker family without broker values: %s", line);
            want = fake_broker(e->broker);
        } else if (shard >= 0) {
            want = fake_value((unsigned)shard, e->offset);
        } else {
            want = 0;
            for (unsigned s = 0; s < NSHARDS; s++)
                want += fake_value(s, e->offset);
        }
        cr_assert_eq(v, want, "%s", line);
        size_t k = (size_t)(e - metrics_table);
        cr_assert_eq(samples[k][shard >= 0 ? shard : NSHARDS], 0, "each sample once: %s", line);
        samples[k][shard >= 0 ? shard : NSHARDS] = 1;
        samples[k][NSHARDS] = 1; /* the family has begun */
    }
    for (size_t k = 0; k < metrics_table_len; k++) {
        const struct metrics_entry *e = &metrics_table[k];
        bool want = b || e->source == METRICS_SHARD;
        for (unsigned s = 0; s < NSHARDS; s++)
            cr_assert_eq(samples[k][s], want && e->per_shard, "%s shard %u", e->name, s);
        cr_assert_eq(samples[k][NSHARDS], want, "%s rendered", e->name);
    }
}

Test(metrics, render_is_valid_text_with_the_sums)
{
    size_t len;
    char *text = render(broker, &len);
    check_text(text, broker);
    free(text);
}

Test(metrics, render_without_broker_values_has_shard_families_only)
{
    size_t len;
    char *text = render(NULL, &len);
    cr_assert_null(strstr(text, "ringmq_sessions"));
    cr_assert_null(strstr(text, "ringmq_memory_limit_bytes"));
    check_text(text, NULL);
    free(text);
}

Test(metrics, render_known_lines)
{
    size_t len;
    char *text = render(broker, &len);
    char want[256];
    uint64_t v = fake_value(1, offsetof(struct metrics_shard, connections));
    snprintf(want, sizeof(want),
             "# HELP ringmq_connections Network connections open now.\n"
             "# TYPE ringmq_connections gauge\n"
             "ringmq_connections{shard=\"0\"} %llu\n"
             "ringmq_connections{shard=\"1\"} %llu\n",
             (unsigned long long)fake_value(0, offsetof(struct metrics_shard, connections)),
             (unsigned long long)v);
    cr_assert_eq(strncmp(text, want, strlen(want)), 0, "%s", text);
    uint64_t mem = 0;
    for (unsigned s = 0; s < NSHARDS; s++)
        mem += fake_value(s, offsetof(struct metrics_shard, mem_refused));
    snprintf(want, sizeof(want), "\nringmq_limit_refusals_total{limit=\"memory_limit\"} %llu\n",
             (unsigned long long)mem);
    cr_assert_not_null(strstr(text, want), "%s", want);
    /* Three samples, one family: one TYPE line. */
    const char *type = "\n# TYPE ringmq_limit_refusals_total counter\n";
    const char *at = strstr(text, type);
    cr_assert_not_null(at);
    cr_assert_null(strstr(at + 1, type));
    free(text);
}

Test(metrics, render_too_small_writes_a_prefix_within_cap)
{
    size_t len;
    char *full = render(broker, &len);
    cr_assert_gt(len, 100);
    size_t caps[] = {1, 2, 17, len / 2, len - 1, len, len + 1};
    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        size_t cap = caps[k];
        char *buf = malloc(len + 64);
        cr_assert_not_null(buf);
        memset(buf, 'X', len + 64);
        cr_assert_eq(metrics_render(buf, cap, shards, NSHARDS, broker), len, "cap %zu", cap);
        size_t kept = cap <= len ? cap - 1 : len;
        cr_assert_eq(memcmp(buf, full, kept), 0, "cap %zu: a prefix", cap);
        cr_assert_eq(buf[kept], '\0', "cap %zu: terminated", cap);
        for (size_t j = cap; j < len + 64; j++)
            cr_assert_eq(buf[j], 'X', "cap %zu: byte %zu untouched", cap, j);
        free(buf);
    }
    cr_assert_eq(metrics_render(NULL, 0, shards, NSHARDS, broker), len);
    char one = 'X';
    cr_assert_eq(metrics_render(&one, 0, shards, NSHARDS, broker), len);
    cr_assert_eq(one, 'X', "cap 0 writes nothing");
    free(full);
}

Test(metrics, render_without_shards_keeps_the_families)
{
    size_t need = metrics_render(NULL, 0, NULL, 0, broker);
    char *text = malloc(need + 1);
    cr_assert_not_null(text);
    cr_assert_eq(metrics_render(text, need + 1, NULL, 0, broker), need);
    cr_assert_not_null(strstr(text, "# TYPE ringmq_connections gauge\n# HELP "));
    cr_assert_not_null(strstr(text, "\nringmq_auth_failures_total 0\n"));
    free(text);
}
