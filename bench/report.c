/*
 * ringmq-bench output: the summary table on stdout and the --json file.
 * Called by the main thread once the workers are joined.
 *
 * JSON fields that scripts rely on (bench/compare, the integration test):
 * sent, delivered, lost, duplicated, out_of_order, delivered_per_s,
 * latency_us {p50, p90, p99, p999, max} and broker_cpu_us_per_msg (null
 * without --broker-pid). Counts cover the whole run (warm-up and drain
 * included, so that loss is exact); the *_per_s rates, the latency and the
 * CPU figures cover the measured window only. The handshake scenario adds
 * handshake {per_s, full, resumed, latency_us, ...} over its window; --tls
 * adds tls {version, tickets, done, resumed}; connect with --broker-pid adds
 * broker_rss_kib {before, all_open}.
 */
#include "bench.h"

#include <errno.h>
#include <string.h>

static const char *version_name(uint8_t v)
{
    return v == 5 ? "5" : "3.1.1";
}

static double broker_us_per_msg(const struct bench_result *r)
{
    /* The handshake probe's few messages are not what the broker spent
     * its CPU on. */
    if (r->broker_cpu_s < 0 || r->window.delivered == 0 || r->opts->scenario == SCENARIO_HANDSHAKE)
        return -1;
    return r->broker_cpu_s * 1e6 / (double)r->window.delivered;
}

static void print_hist_line(const char *label, const struct hist *h)
{
    if (h->count == 0) {
        printf("%-18s (no samples)\n", label);
        return;
    }
    printf("%-18s p50 %llu  p90 %llu  p99 %llu  p99.9 %llu  max %llu  (mean %.0f, n=%llu)\n", label,
           (unsigned long long)hist_percentile(h, 50), (unsigned long long)hist_percentile(h, 90),
           (unsigned long long)hist_percentile(h, 99), (unsigned long long)hist_percentile(h, 99.9),
           (unsigned long long)h->max, hist_mean(h), (unsigned long long)h->count);
}

static void print_connect(const struct bench_result *r)
{
    const struct bench_opts *o = r->opts;
    const struct bench_counters *t = &r->total;
    printf("%u connections, rate %s, hold %.1f s\n", o->clients, o->rate > 0 ? "paced" : "unpaced",
           o->hold_s);
    if (o->rate > 0)
        printf("  (target %.0f connections/s)\n", o->rate);
    printf("%-18s %llu\n", "attempted", (unsigned long long)t->connects_started);
    printf("%-18s %llu\n", "connected", (unsigned long long)t->connects_ok);
    printf("%-18s %.0f/s over %.2f s\n", "connect rate",
           r->connect_s > 0 ? (double)t->connects_ok / r->connect_s : 0.0, r->connect_s);
    printf("%-18s %llu\n", "open at once", (unsigned long long)t->open_max);
    if (t->connects_ok < o->clients)
        printf("%-18s %llu (failed, or still in progress at the --duration limit)\n",
               "NOT connected", (unsigned long long)(o->clients - t->connects_ok));
    if (r->broker_rss_kib_open >= 0 && r->broker_rss_kib_before >= 0 && o->clients)
        printf("%-18s %.0f KiB before, %.0f KiB with all open: %.2f KiB per connection\n",
               "broker RSS", r->broker_rss_kib_before, r->broker_rss_kib_open,
               (r->broker_rss_kib_open - r->broker_rss_kib_before) / o->clients);
    print_hist_line("connect us", &r->conn_lat);
}

static void print_handshake(const struct bench_result *r)
{
    const struct bench_opts *o = r->opts;
    const struct bench_counters *t = &r->total, *w = &r->window;
    printf("%u at once, %s, %s%s\n", o->conns, o->rate > 0 ? "paced" : "unpaced",
           o->tls_resume ? "resuming the last session" : "full handshakes",
           o->clients ? "" : ", until --duration");
    printf("window %.2f s after %.1f s warm-up\n\n", r->window_s, o->warmup_s);
    printf("%-18s %14s %14s\n", "", "whole run", "window");
    printf("%-18s %14llu\n", "attempted", (unsigned long long)t->connects_started);
    printf("%-18s %14llu %14llu\n", "TLS handshakes", (unsigned long long)t->tls_done,
           (unsigned long long)w->tls_done);
    printf("%-18s %14llu %14llu\n", "  of which resumed", (unsigned long long)t->tls_resumed,
           (unsigned long long)w->tls_resumed);
    printf("%-18s %14llu %14llu\n", "CONNACKs", (unsigned long long)t->connects_ok,
           (unsigned long long)w->connects_ok);
    printf("%-18s %14s %14.0f\n", "handshakes/s", "",
           r->window_s > 0 ? (double)w->connects_ok / r->window_s : 0.0);
    print_hist_line("handshake+CONNACK", &r->conn_lat);
    if (o->probe)
        print_hist_line("probe latency us", &r->lat);
    if (r->tls_failed)
        printf("STOPPED at a TLS failure or a refused connect (the reason is on stderr).\n");
}
static void print_flow(const struct bench_result *r)
{
    const struct bench_opts *o = r->opts;
    const struct bench_counters *t = &r->total;
    printf("%u publisher%s -> %u subscriber%s%s, QoS %u, %u B payload, rate %s", o->publishers,
           o->publishers == 1 ? "" : "s", o->subscribers, o->subscribers == 1 ? "" : "s",
           o->shared ? " (shared)" : "", o->qos, o->payload_len, o->rate > 0 ? "" : "unpaced");
    if (o->rate > 0)
        printf("%.0f/s per publisher", o->rate);
    printf("\nwindow %.2f s after %.1f s warm-up\n\n", r->window_s, o->warmup_s);
    printf("%-18s %14s %14s\n", "", "whole run", "window /s");
    printf("%-18s %14llu %14.0f\n", "offered", (unsigned long long)t->offered, r->offered_per_s);
    printf("%-18s %14llu %14.0f\n", "sent", (unsigned long long)t->sent, r->sent_per_s);
    printf("%-18s %14llu %14.0f\n", "accepted", (unsigned long long)t->accepted, r->accepted_per_s);
    printf("%-18s %14llu %14.0f\n", "delivered", (unsigned long long)t->delivered,
           r->delivered_per_s);
    printf("%-18s %14llu\n", "expected", (unsigned long long)r->expected);
    printf("%-18s %14llu", "lost", (unsigned long long)r->lost);
    if (r->expected)
        printf("  (%.4f %%)", 100.0 * (double)r->lost / (double)r->expected);
    printf("\n");
    if (r->lost && !o->shared)
        printf("%-18s %14llu in gaps (dropped mid-stream), %llu at the tail (not "
               "delivered by the end of the %.1f s drain%s)\n",
               "  of which", (unsigned long long)t->lost_now,
               (unsigned long long)(r->lost > t->lost_now ? r->lost - t->lost_now : 0), r->drain_s,
               r->drain_timed_out ? ", which hit --drain" : "");
    printf("%-18s %14llu\n", "duplicated", (unsigned long long)t->duplicate);
    printf("%-18s %14llu\n", "out of order", (unsigned long long)t->out_of_order);
    if (t->too_old)
        printf("%-18s %14llu\n", "too old to tell", (unsigned long long)t->too_old);
    print_hist_line("latency us", &r->lat);
}

void report_print(const struct bench_result *r)
{
    const struct bench_opts *o = r->opts;
    const struct bench_counters *t = &r->total;
    printf("\nringmq-bench %s against %s:%u, MQTT %s, %u thread%s", o->scenario_name, o->host,
           o->port, version_name(o->version), o->threads, o->threads == 1 ? "" : "s");
    if (r->interrupted)
        printf(" (interrupted)");
    printf("\n");
    if (o->tls)
        printf("TLS: %s; %llu session ticket%s from the broker\n",
               r->tls_desc && r->tls_desc[0] ? r->tls_desc : "no handshake completed",
               (unsigned long long)r->tls_tickets, r->tls_tickets == 1 ? "" : "s");
    if (o->scenario == SCENARIO_CONNECT)
        print_connect(r);
    else if (o->scenario == SCENARIO_HANDSHAKE)
        print_handshake(r);
    else
        print_flow(r);
    double cpu = r->bench_user_s + r->bench_sys_s;
    double wall = o->scenario == SCENARIO_CONNECT ? r->connect_s : r->window_s;
    uint64_t hs = r->window.connects_ok;
    printf("%-18s user %.2f s + sys %.2f s = %.0f %% of one core over the window\n", "bench CPU",
           r->bench_user_s, r->bench_sys_s, wall > 0 ? 100.0 * cpu / wall : 0.0);
    if (r->broker_cpu_s >= 0) {
        printf("%-18s %.2f s = %.0f %% of one core", "broker CPU", r->broker_cpu_s,
               wall > 0 ? 100.0 * r->broker_cpu_s / wall : 0.0);
        double us = broker_us_per_msg(r);
        if (o->scenario == SCENARIO_CONNECT && t->connects_ok)
            printf(", %.1f us per connection", r->broker_cpu_s * 1e6 / (double)t->connects_ok);
        else if (o->scenario == SCENARIO_HANDSHAKE && hs)
            printf(", %.1f us per handshake (%.0f handshakes per broker CPU second)",
                   r->broker_cpu_s * 1e6 / (double)hs,
                   r->broker_cpu_s > 0 ? (double)hs / r->broker_cpu_s : 0.0);
        else if (us >= 0)
            printf(", %.3f us per delivered message (%.3f s per million)", us, us);
        printf("\n");
    }
    printf("%-18s", "errors");
    bool any = false;
    for (int e = 0; e < BERR_COUNT; e++) {
        if (t->errors[e]) {
            printf(" %s=%llu", bench_err_names[e], (unsigned long long)t->errors[e]);
            any = true;
        }
    }
    printf("%s\n", any ? "" : " none");
    if (t->errors[BERR_SOCKETS])
        printf("NOTE: ran out of file descriptors; raise the hard RLIMIT_NOFILE to open more "
               "sockets.\n");
    if (r->setup_failed)
        printf("SETUP FAILED: not every connection could be set up; no messages were sent.\n");
    fflush(stdout);
}

void report_json_hist(FILE *f, const struct hist *h)
{
    fprintf(f,
            "{\"count\": %llu, \"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"p999\": %llu, "
            "\"max\": %llu, \"mean\": %.1f}",
            (unsigned long long)h->count, (unsigned long long)hist_percentile(h, 50),
            (unsigned long long)hist_percentile(h, 90), (unsigned long long)hist_percentile(h, 99),
            (unsigned long long)hist_percentile(h, 99.9), (unsigned long long)h->max, hist_mean(h));
}

void report_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (v >= 0)
        fprintf(f, "%.1f", v);
    else
        fprintf(f, "null");
}

/* tls, handshake and broker_rss_kib: present in every file, zero or null
 * where they do not apply, so scripts need not test for them. */
static void json_tls(FILE *f, const struct bench_result *r)
{
    const struct bench_opts *o = r->opts;
    const struct bench_counters *t = &r->total, *w = &r->window;
    fprintf(f, "  \"tls\": {\"on\": %s, \"version\": ", o->tls ? "true" : "false");
    report_json_str(f, r->tls_desc ? r->tls_desc : "");
    fprintf(f, ", \"tickets\": %llu, \"done\": %llu, \"resumed\": %llu, \"failed\": %s},\n",
            (unsigned long long)r->tls_tickets, (unsigned long long)t->tls_done,
            (unsigned long long)t->tls_resumed, r->tls_failed ? "true" : "false");
    uint64_t hs = w->connects_ok;
    fprintf(f,
            "  \"handshake\": {\"ok\": %llu, \"window_ok\": %llu, \"per_s\": %.1f, "
            "\"full\": %llu, \"resumed\": %llu, \"broker_cpu_us_per_handshake\": ",
            (unsigned long long)t->connects_ok, (unsigned long long)hs,
            r->window_s > 0 ? (double)hs / r->window_s : 0.0,
            (unsigned long long)(w->tls_done - w->tls_resumed), (unsigned long long)w->tls_resumed);
    json_num(f, r->broker_cpu_s >= 0 && hs ? r->broker_cpu_s * 1e6 / (double)hs : -1);
    fprintf(f, ", \"latency_us\": ");
    report_json_hist(f, &r->conn_lat);
    fprintf(f, "},\n  \"broker_rss_kib\": {\"before\": ");
    json_num(f, r->broker_rss_kib_before);
    fprintf(f, ", \"all_open\": ");
    json_num(f, r->broker_rss_kib_open);
    fprintf(f, "},\n");
}

void report_json_fields(FILE *f, const struct bench_result *r)
{
    const struct bench_opts *o = r->opts;
    const struct bench_counters *t = &r->total;
    fprintf(f, "  \"scenario\": ");
    report_json_str(f, o->scenario_name);
    fprintf(f, ",\n  \"host\": ");
    report_json_str(f, o->host);
    fprintf(f,
            ",\n  \"port\": %u,\n  \"protocol\": \"%s\",\n  \"qos\": %u,\n"
            "  \"publishers\": %u,\n  \"subscribers\": %u,\n  \"clients\": %u,\n"
            "  \"shared\": %s,\n  \"payload\": %u,\n  \"rate\": %.3f,\n  \"duration_s\": %.3f,\n"
            "  \"warmup_s\": %.3f,\n  \"threads\": %u,\n  \"window_s\": %.3f,\n"
            "  \"interrupted\": %s,\n  \"setup_failed\": %s,\n",
            o->port, version_name(o->version), o->qos, o->publishers, o->subscribers, o->clients,
            o->shared ? "true" : "false", o->payload_len, o->rate, o->duration_s, o->warmup_s,
            o->threads, r->window_s, r->interrupted ? "true" : "false",
            r->setup_failed ? "true" : "false");
    fprintf(f,
            "  \"offered\": %llu,\n  \"sent\": %llu,\n  \"accepted\": %llu,\n"
            "  \"delivered\": %llu,\n  \"unique\": %llu,\n  \"expected\": %llu,\n"
            "  \"lost\": %llu,\n  \"duplicated\": %llu,\n  \"out_of_order\": %llu,\n"
            "  \"too_old\": %llu,\n  \"lost_in_gaps\": %llu,\n  \"drain_s\": %.3f,\n"
            "  \"drain_timed_out\": %s,\n",
            (unsigned long long)t->offered, (unsigned long long)t->sent,
            (unsigned long long)t->accepted, (unsigned long long)t->delivered,
            (unsigned long long)t->unique, (unsigned long long)r->expected,
            (unsigned long long)r->lost, (unsigned long long)t->duplicate,
            (unsigned long long)t->out_of_order, (unsigned long long)t->too_old,
            (unsigned long long)(o->shared ? 0 : t->lost_now), r->drain_s,
            r->drain_timed_out ? "true" : "false");
    fprintf(f,
            "  \"window\": {\"offered\": %llu, \"sent\": %llu, \"accepted\": %llu, "
            "\"delivered\": %llu},\n",
            (unsigned long long)r->window.offered, (unsigned long long)r->window.sent,
            (unsigned long long)r->window.accepted, (unsigned long long)r->window.delivered);
    fprintf(f,
            "  \"offered_per_s\": %.1f,\n  \"sent_per_s\": %.1f,\n  \"accepted_per_s\": %.1f,\n"
            "  \"delivered_per_s\": %.1f,\n",
            r->offered_per_s, r->sent_per_s, r->accepted_per_s, r->delivered_per_s);
    fprintf(f, "  \"latency_us\": ");
    report_json_hist(f, &r->lat);
    fprintf(f, ",\n  \"latency_all_us\": ");
    report_json_hist(f, &r->lat_all);
    fprintf(f,
            ",\n  \"connect\": {\"attempted\": %llu, \"ok\": %llu, \"done\": %llu, "
            "\"refused\": %llu, \"open_max\": %llu, \"seconds\": %.3f, \"per_s\": %.1f, "
            "\"latency_us\": ",
            (unsigned long long)t->connects_started, (unsigned long long)t->connects_ok,
            (unsigned long long)t->connects_done, (unsigned long long)t->connects_refused,
            (unsigned long long)t->open_max, r->connect_s,
            r->connect_s > 0 ? (double)t->connects_ok / r->connect_s : 0.0);
    report_json_hist(f, &r->conn_lat);
    fprintf(f, "},\n");
    json_tls(f, r);
    fprintf(f, "  \"errors\": {");
    for (int e = 0; e < BERR_COUNT; e++)
        fprintf(f, "%s\"%s\": %llu", e ? ", " : "", bench_err_names[e],
                (unsigned long long)t->errors[e]);
    fprintf(f, "},\n  \"bench_cpu\": {\"user_s\": %.3f, \"sys_s\": %.3f},\n", r->bench_user_s,
            r->bench_sys_s);
    double us = broker_us_per_msg(r);
    if (r->broker_cpu_s >= 0)
        fprintf(f, "  \"broker_cpu_s\": %.3f,\n", r->broker_cpu_s);
    else
        fprintf(f, "  \"broker_cpu_s\": null,\n");
    if (o->scenario == SCENARIO_CONNECT && r->broker_cpu_s >= 0 && t->connects_ok)
        fprintf(f, "  \"broker_cpu_us_per_connect\": %.3f,\n",
                r->broker_cpu_s * 1e6 / (double)t->connects_ok);
    if (us >= 0)
        fprintf(f, "  \"broker_cpu_us_per_msg\": %.4f", us);
    else
        fprintf(f, "  \"broker_cpu_us_per_msg\": null");
}

int report_json(const struct bench_result *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "{\n");
    report_json_fields(f, r);
    fprintf(f, "\n}\n");
    if (fclose(f) != 0)
        return -errno;
    return 0;
}
