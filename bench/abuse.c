/*
 * ringmq-bench abuse: the report. The scenario runs N paced publisher /
 * subscriber pairs twice in one invocation (main.c, run_abuse): alone, then
 * beside one abusive client on a worker thread of its own, either a flood
 * (one connection publishing QoS 0 as fast as the broker reads, to a topic
 * no pair uses) or a connect storm (--conns slots, each connecting, sending
 * CONNECT, waiting for CONNACK or the close, closing and connecting again),
 * from one source address. The question is the issue's: do the pairs'
 * delivered rate and p99 latency stay within 10 % of the run alone? This
 * file prints both runs side by side with those two ratios, and the
 * abuser's own figures: the flood's publish rate, the storm's accepted and
 * refused connects per second (refusals are counted, never fatal).
 *
 * Main thread only, once both runs' workers are joined; nothing here is
 * shared.
 */
#include "abuse.h"

#include <errno.h>
#include <string.h>

static const char *abuser_name(const struct bench_opts *o)
{
    return o->abuser == ABUSER_FLOOD ? "flood" : "connect";
}

static double pct_of_core(double cpu_s, double wall_s)
{
    return wall_s > 0 ? 100.0 * cpu_s / wall_s : 0.0;
}

/* with / alone; -1 when there is nothing to divide by. */
static double ratio(double with, double alone)
{
    return alone > 0 ? with / alone : -1;
}

struct verdict {
    double rate, p99; /* ratios, -1 when unknown */
    bool rate_ok, p99_ok;
};

static void judge(const struct bench_result *a, const struct bench_result *w, struct verdict *v)
{
    v->rate = w ? ratio(w->delivered_per_s, a->delivered_per_s) : -1;
    v->p99 =
        w ? ratio((double)hist_percentile(&w->lat, 99), (double)hist_percentile(&a->lat, 99)) : -1;
    v->rate_ok = v->rate >= ABUSE_RATE_RATIO_MIN;
    v->p99_ok = v->p99 >= 0 && v->p99 <= ABUSE_P99_RATIO_MAX;
}

/* A refusal is a connection closed without a CONNACK 0; these are the
 * ways it happens. */
static const enum bench_err refusal_kinds[] = {
    BERR_CONNACK, BERR_PEER_CLOSED, BERR_CONNECT, BERR_RECV,
    BERR_TIMEOUT, BERR_TLS,         BERR_SOCKETS, BERR_PROTOCOL,
};

/* ---- text ---- */

static void row_u(const char *label, uint64_t a, const struct bench_result *w, uint64_t wv)
{
    printf("%-18s %14llu", label, (unsigned long long)a);
    if (w)
        printf(" %14llu", (unsigned long long)wv);
    printf("\n");
}

static void row_rate(const char *label, double a, const struct bench_result *w, double wv)
{
    printf("%-18s %14.0f", label, a);
    if (w) {
        printf(" %14.0f", wv);
        if (a > 0)
            printf(" %10.3f", wv / a);
    }
    printf("\n");
}

static void row_pct(const char *label, const struct bench_result *a, const struct bench_result *w,
                    double pct)
{
    uint64_t av = hist_percentile(&a->lat, pct);
    printf("%-18s %14llu", label, (unsigned long long)av);
    if (w) {
        uint64_t wv = hist_percentile(&w->lat, pct);
        printf(" %14llu", (unsigned long long)wv);
        if (av > 0)
            printf(" %10.3f", (double)wv / (double)av);
    }
    printf("\n");
}

static void print_errors(const char *label, const struct bench_counters *c)
{
    printf("%-18s", label);
    bool any = false;
    for (int e = 0; e < BERR_COUNT; e++) {
        if (c->errors[e]) {
            printf(" %s=%llu", bench_err_names[e], (unsigned long long)c->errors[e]);
            any = true;
        }
    }
    printf("%s\n", any ? "" : " none");
}

static void print_side_by_side(const struct bench_result *a, const struct bench_result *w)
{
    printf("%-18s %14s %14s %10s\n", "", "alone", w ? "with abuser" : "", w ? "ratio" : "");
    row_rate("offered /s", a->offered_per_s, w, w ? w->offered_per_s : 0);
    row_rate("sent /s", a->sent_per_s, w, w ? w->sent_per_s : 0);
    row_rate("delivered /s", a->delivered_per_s, w, w ? w->delivered_per_s : 0);
    row_u("sent (whole run)", a->total.sent, w, w ? w->total.sent : 0);
    row_u("lost", a->lost, w, w ? w->lost : 0);
    row_u("duplicated", a->total.duplicate, w, w ? w->total.duplicate : 0);
    row_u("out of order", a->total.out_of_order, w, w ? w->total.out_of_order : 0);
    row_pct("latency p50 us", a, w, 50);
    row_pct("latency p90 us", a, w, 90);
    row_pct("latency p99 us", a, w, 99);
    row_pct("latency p99.9 us", a, w, 99.9);
    row_u("latency max us", a->lat.max, w, w ? w->lat.max : 0);
    printf("%-18s %13.0f%%", "bench CPU",
           pct_of_core(a->bench_user_s + a->bench_sys_s, a->window_s));
    if (w)
        printf(" %13.0f%%", pct_of_core(w->bench_user_s + w->bench_sys_s, w->window_s));
    printf("   (of one core, the abuser's thread included)\n");
    if (a->broker_cpu_s >= 0) {
        printf("%-18s %13.0f%%", "broker CPU", pct_of_core(a->broker_cpu_s, a->window_s));
        if (w && w->broker_cpu_s >= 0)
            printf(" %13.0f%%", pct_of_core(w->broker_cpu_s, w->window_s));
        printf("\n");
    }
    print_errors("errors alone", &a->total);
    if (w)
        print_errors("errors w/ abuser", &w->total);
}

static void print_flood(const struct bench_result *w)
{
    const struct bench_counters *x = &w->abuser_window;
    double s = w->abuser_window_s;
    printf("abuser (flood) over its %.2f s window: %.0f PUBLISH/s written (%llu), %llu in the "
           "whole run\n",
           s, s > 0 ? (double)x->sent / s : 0.0, (unsigned long long)x->sent,
           (unsigned long long)w->abuser_total.sent);
    print_errors("abuser errors", &w->abuser_total);
}

static void print_storm(const struct bench_result *w)
{
    const struct bench_opts *o = w->opts;
    const struct bench_counters *x = &w->abuser_window;
    double s = w->abuser_window_s;
    printf("abuser (connect storm, %u at once) over its %.2f s window:\n", o->conns, s);
    printf("%-18s %14s %14s\n", "", "window", "per s");
    printf("%-18s %14llu %14.0f\n", "attempted", (unsigned long long)x->connects_started,
           s > 0 ? (double)x->connects_started / s : 0.0);
    printf("%-18s %14llu %14.0f   (CONNACK 0)\n", "accepted", (unsigned long long)x->connects_ok,
           s > 0 ? (double)x->connects_ok / s : 0.0);
    printf("%-18s %14llu %14.0f   (closed without CONNACK, or CONNACK refused)\n", "refused",
           (unsigned long long)x->connects_refused, s > 0 ? (double)x->connects_refused / s : 0.0);
    printf("%-18s", "  refused by kind");
    bool any = false;
    for (size_t k = 0; k < sizeof(refusal_kinds) / sizeof(refusal_kinds[0]); k++) {
        enum bench_err e = refusal_kinds[k];
        if (x->errors[e]) {
            printf(" %s=%llu", bench_err_names[e], (unsigned long long)x->errors[e]);
            any = true;
        }
    }
    printf("%s\n", any ? "" : " none");
    if (w->abuser_conn_lat.count == 0)
        printf("%-18s (no CONNACK 0 in the window)\n", "connect+CONNACK us");
    else
        printf("%-18s p50 %llu  p99 %llu  max %llu  (n=%llu)\n", "connect+CONNACK us",
               (unsigned long long)hist_percentile(&w->abuser_conn_lat, 50),
               (unsigned long long)hist_percentile(&w->abuser_conn_lat, 99),
               (unsigned long long)w->abuser_conn_lat.max,
               (unsigned long long)w->abuser_conn_lat.count);
}

static void print_report(const struct bench_result *a, const struct bench_result *w,
                         const struct verdict *v)
{
    const struct bench_opts *o = a->opts;
    printf("\nringmq-bench abuse against %s:%u, MQTT %s, %u thread%s + 1 for the abuser%s\n",
           o->host, o->port, o->version == 5 ? "5" : "3.1.1", o->threads,
           o->threads == 1 ? "" : "s",
           a->interrupted || (w && w->interrupted) ? " (interrupted)" : "");
    if (o->tls)
        printf("TLS: %s\n", a->tls_desc && a->tls_desc[0] ? a->tls_desc : "no handshake completed");
    printf("%u pairs, QoS %u, %u B payload, %.0f/s per publisher; each run: window %.2f s after "
           "%.1f s warm-up\n",
           o->publishers, o->qos, o->payload_len, o->rate, a->window_s, o->warmup_s);
    if (o->abuser == ABUSER_FLOOD)
        printf("abuser: flood, one connection publishing QoS 0 to %s as fast as the broker reads",
               o->abuse_topic);
    else
        printf("abuser: connect storm, %u connections at once, CONNECT then close, again",
               o->conns);
    printf(", from %s\n\n", o->abuse_source ? o->abuse_source : "the default source address");
    print_side_by_side(a, w);
    if (a->setup_failed)
        printf("SETUP FAILED in the run alone: not every pair could be set up; no second run.\n");
    if (!w) {
        if (!a->setup_failed)
            printf("no run with the abuser (interrupted)\n");
        fflush(stdout);
        return;
    }
    if (w->setup_failed)
        printf("SETUP FAILED in the run with the abuser: not every pair (or the flood's "
               "connection) could be set up.\n");
    printf("\n");
    if (v->rate >= 0)
        printf("delivered/s with the abuser: %.1f %% of alone (%swithin 10 %%)\n", 100.0 * v->rate,
               v->rate_ok ? "" : "NOT ");
    if (v->p99 >= 0)
        printf("p99 latency with the abuser: %.2f x alone (%swithin 10 %%)\n", v->p99,
               v->p99_ok ? "" : "NOT ");
    printf("\n");
    if (o->abuser == ABUSER_FLOOD)
        print_flood(w);
    else
        print_storm(w);
    fflush(stdout);
}

/* ---- JSON ---- */

static void json_ratio(FILE *f, const char *name, double v, bool ok)
{
    if (v >= 0)
        fprintf(f, "\"%s\": %.4f, \"%s_within_10pct\": %s", name, v, name, ok ? "true" : "false");
    else
        fprintf(f, "\"%s\": null, \"%s_within_10pct\": null", name, name);
}

/* The abuser's window; zeros when it did not run. */
static void json_abuser(FILE *f, const struct bench_result *a, const struct bench_result *w)
{
    const struct bench_opts *o = a->opts;
    static const struct bench_counters none;
    const struct bench_counters *x = w ? &w->abuser_window : &none;
    double s = w ? w->abuser_window_s : 0;
    fprintf(f, "  \"abuser\": {\"mode\": \"%s\", \"ran\": %s, \"source\": ", abuser_name(o),
            w ? "true" : "false");
    if (o->abuse_source)
        report_json_str(f, o->abuse_source);
    else
        fprintf(f, "null");
    fprintf(f, ", \"topic\": ");
    report_json_str(f, o->abuser == ABUSER_FLOOD ? o->abuse_topic : "");
    fprintf(f,
            ", \"conns\": %u, \"window_s\": %.3f,\n    \"sent\": %llu, \"sent_per_s\": %.1f, "
            "\"sent_whole_run\": %llu,\n",
            o->abuser == ABUSER_CONNECT ? o->conns : 1u, s, (unsigned long long)x->sent,
            s > 0 ? (double)x->sent / s : 0.0, (unsigned long long)(w ? w->abuser_total.sent : 0));
    fprintf(f,
            "    \"connects\": {\"attempted\": %llu, \"accepted\": %llu, \"refused\": %llu, "
            "\"attempted_per_s\": %.1f, \"accepted_per_s\": %.1f, \"refused_per_s\": %.1f, "
            "\"latency_us\": ",
            (unsigned long long)x->connects_started, (unsigned long long)x->connects_ok,
            (unsigned long long)x->connects_refused, s > 0 ? (double)x->connects_started / s : 0.0,
            s > 0 ? (double)x->connects_ok / s : 0.0,
            s > 0 ? (double)x->connects_refused / s : 0.0);
    struct hist empty;
    hist_init(&empty);
    report_json_hist(f, w ? &w->abuser_conn_lat : &empty);
    fprintf(f, "},\n    \"errors\": {");
    for (int e = 0; e < BERR_COUNT; e++)
        fprintf(f, "%s\"%s\": %llu", e ? ", " : "", bench_err_names[e],
                (unsigned long long)x->errors[e]);
    fprintf(f, "}}");
}

/* The run with the abuser's fields at the top (so that what scripts read
 * from any scenario, delivered_per_s, latency_us, ..., is the run under
 * abuse), the run alone under "baseline", the ratios and the abuser. */
static int write_json(const struct bench_result *a, const struct bench_result *w,
                      const struct verdict *v, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "{\n");
    report_json_fields(f, w ? w : a);
    fprintf(f, ",\n  \"baseline\": {\n");
    report_json_fields(f, a);
    fprintf(f, "\n  },\n  \"ratio\": {");
    json_ratio(f, "delivered_per_s", v->rate, v->rate_ok);
    fprintf(f, ", ");
    json_ratio(f, "p99", v->p99, v->p99_ok);
    fprintf(f, "},\n");
    json_abuser(f, a, w);
    fprintf(f, "\n}\n");
    if (fclose(f) != 0)
        return -errno;
    return 0;
}

int abuse_report(const struct bench_result *alone, const struct bench_result *with)
{
    struct verdict v;
    judge(alone, with, &v);
    print_report(alone, with, &v);
    int rc = alone->setup_failed || (with && with->setup_failed) ? 1 : 0;
    const char *path = alone->opts->json_path;
    if (path) {
        int e = write_json(alone, with, &v, path);
        if (e) {
            fprintf(stderr, "ringmq-bench: %s: %s\n", path, strerror(-e));
            rc = 1;
        }
    }
    return rc;
}
