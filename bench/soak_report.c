/*
 * ringmq-bench soak: the verdict. After the run and the stop, the ledger
 * (ledger.h) and the error counts say whether the broker kept its promises;
 * this file sums them, prints the table and the result on stdout, and
 * writes the --json file. Called once, by soak_run()'s thread.
 */
#include "soak_internal.h"
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const soak_err_names[SE_COUNT] = {
    [SE_CONNECT] = "connect_failed",       [SE_CONNACK] = "connack_refused",
    [SE_SUBACK] = "suback_refused",        [SE_CLOSED] = "closed_by_broker",
    [SE_PROTOCOL] = "protocol_error",      [SE_IO] = "io_error",
    [SE_TIMEOUT] = "handshake_timeout",    [SE_STALLED] = "broker_stalled",
    [SE_REFUSED] = "publish_refused",      [SE_UNEXPECTED_ACK] = "unexpected_ack",
    [SE_UNKNOWN_MSG] = "unknown_message",  [SE_SESSION_LOST] = "session_lost",
    [SE_PKID_REUSED] = "packet_id_reused", [SE_UNREL_FULL] = "too_many_unreleased",
};

const char *const soak_state_names[CS_COUNT] = {
    "down", "connecting", "waiting for CONNACK", "waiting for SUBACK", "up", "disconnecting"};

const char *soak_recv_name(const struct soak *s, uint32_t r, char *buf, size_t len)
{
    if (r < s->nplain)
        snprintf(buf, len, "plain subscriber %s", s->c[s->npubs + r].id);
    else
        snprintf(buf, len, "share group soak%u", r - s->nplain);
    return buf;
}

struct soak_verdict {
    struct ledger_tally t;
    uint64_t lost, q2_dups, errors, fatal_errors;
    bool passed;
};

static void soak_judge(struct soak *s, struct soak_verdict *v)
{
    memset(v, 0, sizeof(*v));
    ledger_tally(&s->led, &v->t);
    v->lost = v->t.lost[1] + v->t.lost[2];
    v->q2_dups = v->t.dup_pairs[2];
    for (int e = 0; e < SE_COUNT; e++) {
        v->errors += s->err[e];
        /* A refusal is the broker saying no, which it may: not a failure
         * of delivery, but reported. */
        if (e != SE_REFUSED)
            v->fatal_errors += s->err[e];
    }
    v->passed = !s->setup_failed && !s->interrupted && s->drain_complete && v->lost == 0 &&
                v->q2_dups == 0 && v->fatal_errors == 0;
}

static void print_row(const char *label, const uint64_t *q, const char *note)
{
    printf("%-26s %12llu %12llu  %s\n", label, (unsigned long long)q[1], (unsigned long long)q[2],
           note);
}

/* Who took part, and what the chaos did. */
static void print_header(const struct soak *s)
{
    const struct bench_opts *o = s->o;
    uint32_t q1 = 0;
    for (uint32_t i = 0; i < s->npubs; i++)
        q1 += s->c[i].qos == 1;
    printf("\nringmq-bench soak against %s:%u, MQTT %s, seed %llu\n", o->host, o->port,
           o->version == MQTT_V5 ? "5" : "3.1.1", (unsigned long long)o->seed);
    printf("%u publishers (%u QoS 1, %u QoS 2)", s->npubs, q1, s->npubs - q1);
    if (o->rate > 0)
        printf(" at %.0f/s each", o->rate);
    else
        printf(" unpaced");
    printf(" -> %u plain subscriber%s", s->nplain, s->nplain == 1 ? "" : "s");
    if (s->ngroups) {
        printf(" + %u share group%s (members:", s->ngroups, s->ngroups == 1 ? "" : "s");
        for (uint32_t g = 0; g < s->ngroups; g++) {
            uint32_t n = 0;
            for (uint32_t i = s->npubs; i < s->nc; i++)
                for (uint32_t k = 0; k < s->c[i].nsubs; k++)
                    n += s->c[i].subs[k].recv == s->nplain + g;
            printf("%s soak%u %u", g ? "," : "", g, n);
        }
        printf(")");
        if (s->nplain && s->c[s->npubs].nsubs > 1)
            printf("; %s is plain and in soak%u", s->c[s->npubs].id, s->ngroups - 1);
    }
    printf("\n");
    printf("run %.1f s, ", (double)(s->drain_ns - s->run_ns) / 1e9);
    if (o->kill_interval_s > 0)
        printf("a kill every %.2f s on average", o->kill_interval_s);
    else
        printf("no kills");
    printf("; drain %.1f s (%s)\n\n", s->drain_ns ? (double)(s->stop_ns - s->drain_ns) / 1e9 : 0.0,
           s->drain_complete ? "complete"
           : s->drain_idle   ? "ended idle: everything settled, deliveries missing"
           : s->interrupted  ? "interrupted"
                             : "NOT complete");
    printf("chaos: %llu kills (%llu publishers, %llu subscribers), %llu pauses, %llu reconnects, "
           "%llu sessions resumed\n",
           (unsigned long long)s->kills, (unsigned long long)s->kills_pub,
           (unsigned long long)s->kills_sub, (unsigned long long)s->pauses,
           (unsigned long long)s->reconnects, (unsigned long long)s->resumed);
    printf("resent by publishers: %llu PUBLISH (DUP), %llu PUBREL; received with DUP: %llu; "
           "QoS 2 resends recognised by packet id: %llu\n\n",
           (unsigned long long)s->resent_publish, (unsigned long long)s->resent_pubrel,
           (unsigned long long)s->dup_flagged, (unsigned long long)s->q2_recognised);
}

/* The ledger's sums per QoS, and what was lost where. */
static void print_table(const struct soak *s, const struct soak_verdict *v)
{
    printf("%-26s %12s %12s\n", "", "QoS 1", "QoS 2");
    print_row("published", v->t.published, "");
    print_row("acknowledged", v->t.acked, "(PUBACK / PUBREC)");
    if (v->t.refused[1] + v->t.refused[2])
        print_row("refused", v->t.refused, "(reason >= 0x80)");
    char note[96];
    snprintf(note, sizeof(note), "(acknowledged x %u receivers)", s->nplain + s->ngroups);
    print_row("expected deliveries", v->t.expected, note);
    print_row("delivered", v->t.delivered, "(duplicates included)");
    print_row("duplicates", v->t.duplicates, "(QoS 1: allowed; QoS 2: must be 0)");
    print_row("lost", v->t.lost, "(acknowledged, missing at a receiver)");
    print_row("unacked but delivered", v->t.unacked_got, "(allowed)");

    struct ledger_miss miss[SOAK_EXAMPLES_MAX];
    size_t nm = ledger_lost(&s->led, miss, SOAK_EXAMPLES_MAX);
    for (size_t k = 0; k < nm; k++) {
        char rn[192];
        printf("  lost: publisher %u (QoS %u) seq %llu at %s\n", miss[k].pub,
               s->led.s[miss[k].pub].qos, (unsigned long long)miss[k].seq,
               soak_recv_name(s, miss[k].recv, rn, sizeof(rn)));
    }
    if (nm == SOAK_EXAMPLES_MAX && v->lost > nm)
        printf("  ... and %llu more\n", (unsigned long long)(v->lost - nm));
    if (v->lost) {
        uint64_t *per = calloc(s->led.nrecv, sizeof(*per));
        if (per) {
            ledger_lost_per_recv(&s->led, per);
            printf("  lost per receiver:");
            for (uint32_t r = 0; r < s->led.nrecv; r++) {
                char rn[192];
                printf("%s %s %llu", r ? "," : "", soak_recv_name(s, r, rn, sizeof(rn)),
                       (unsigned long long)per[r]);
            }
            printf("\n");
            free(per);
        }
    }
}

/* Errors, an unfinished drain, and the one-line result. */
static void print_result(const struct soak *s, const struct soak_verdict *v)
{
    const struct bench_opts *o = s->o;
    printf("%-26s", "errors");
    for (int e = 0; e < SE_COUNT; e++)
        if (s->err[e])
            printf(" %s=%llu", soak_err_names[e], (unsigned long long)s->err[e]);
    printf("%s\n", v->errors ? "" : " none");
    if (!s->drain_complete && !s->setup_failed && (s->end_not_up || s->end_flows_open)) {
        printf("drain not complete: %u clients not connected, %u flows unfinished, %llu "
               "acknowledged deliveries missing",
               s->end_not_up, s->end_flows_open, (unsigned long long)s->end_missing);
        uint32_t shown = 0;
        for (uint32_t i = 0; i < s->nc && shown < SOAK_EXAMPLES_MAX; i++) {
            const struct client *c = &s->c[i];
            if (c->end_state != CS_UP) {
                printf("%s %s (%s)", shown ? "," : ":", c->id, soak_state_names[c->end_state]);
                shown++;
            }
        }
        printf("\n");
    }

    printf("RESULT: %s", v->passed ? "PASS" : "FAIL");
    if (!v->passed) {
        const char *sep = ": ";
        if (s->setup_failed) {
            printf("%ssetup failed", sep);
            sep = "; ";
        }
        if (s->interrupted) {
            printf("%sinterrupted", sep);
            sep = "; ";
        }
        if (v->lost) {
            printf("%s%llu acknowledged deliveries lost", sep, (unsigned long long)v->lost);
            sep = "; ";
        }
        if (v->q2_dups) {
            printf("%s%llu QoS 2 messages duplicated at a receiver", sep,
                   (unsigned long long)v->q2_dups);
            sep = "; ";
        }
        if (!s->drain_complete && !s->setup_failed && !s->interrupted && !s->drain_idle) {
            if (s->end_not_up || s->end_flows_open)
                printf("%sdrain incomplete after %.0f s (the broker stopped answering)", sep,
                       o->drain_s);
            else
                printf("%sthe drain did not settle within %.0f s", sep, o->drain_s);
            sep = "; ";
        }
        if (v->fatal_errors)
            printf("%s%llu errors", sep, (unsigned long long)v->fatal_errors);
    }
    printf("\n");
    fflush(stdout);
}

static void soak_print(const struct soak *s, const struct soak_verdict *v)
{
    print_header(s);
    print_table(s, v);
    print_result(s, v);
}

static int soak_json(struct soak *s, const struct soak_verdict *v, const char *path)
{
    const struct bench_opts *o = s->o;
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    const struct ledger_tally *t = &v->t;
    fprintf(f,
            "{\n  \"scenario\": \"soak\",\n  \"passed\": %s,\n  \"seed\": %llu,\n"
            "  \"protocol\": \"%s\",\n  \"publishers\": %u,\n  \"subscribers\": %u,\n"
            "  \"plain_subscribers\": %u,\n  \"groups\": %u,\n  \"rate\": %.3f,\n"
            "  \"duration_s\": %.3f,\n  \"kill_interval_s\": %.3f,\n  \"drain_s\": %.3f,\n"
            "  \"drain_complete\": %s,\n  \"drain_idle\": %s,\n  \"setup_failed\": %s,\n"
            "  \"interrupted\": %s,\n",
            v->passed ? "true" : "false", (unsigned long long)o->seed,
            o->version == MQTT_V5 ? "5" : "3.1.1", s->npubs, s->nsubs, s->nplain, s->ngroups,
            o->rate, s->drain_ns > s->run_ns ? (double)(s->drain_ns - s->run_ns) / 1e9 : 0.0,
            o->kill_interval_s, s->drain_ns ? (double)(s->stop_ns - s->drain_ns) / 1e9 : 0.0,
            s->drain_complete ? "true" : "false", s->drain_idle ? "true" : "false",
            s->setup_failed ? "true" : "false", s->interrupted ? "true" : "false");
    fprintf(f,
            "  \"published\": %llu,\n  \"acknowledged\": %llu,\n  \"refused\": %llu,\n"
            "  \"expected\": %llu,\n  \"delivered\": %llu,\n  \"duplicates\": %llu,\n"
            "  \"qos2_duplicates\": %llu,\n  \"lost\": %llu,\n  \"unacked_delivered\": %llu,\n",
            (unsigned long long)(t->published[1] + t->published[2]),
            (unsigned long long)(t->acked[1] + t->acked[2]),
            (unsigned long long)(t->refused[1] + t->refused[2]),
            (unsigned long long)(t->expected[1] + t->expected[2]),
            (unsigned long long)(t->delivered[1] + t->delivered[2]),
            (unsigned long long)(t->duplicates[1] + t->duplicates[2]),
            (unsigned long long)v->q2_dups, (unsigned long long)v->lost,
            (unsigned long long)(t->unacked_got[1] + t->unacked_got[2]));
    for (int q = 1; q <= 2; q++)
        fprintf(f,
                "  \"qos%d\": {\"published\": %llu, \"acknowledged\": %llu, \"expected\": %llu, "
                "\"delivered\": %llu, \"duplicates\": %llu, \"lost\": %llu},\n",
                q, (unsigned long long)t->published[q], (unsigned long long)t->acked[q],
                (unsigned long long)t->expected[q], (unsigned long long)t->delivered[q],
                (unsigned long long)t->duplicates[q], (unsigned long long)t->lost[q]);
    fprintf(f,
            "  \"kills\": %llu,\n  \"kills_publishers\": %llu,\n  \"kills_subscribers\": %llu,\n"
            "  \"reconnects\": %llu,\n  \"sessions_resumed\": %llu,\n"
            "  \"resent_publish\": %llu,\n  \"resent_pubrel\": %llu,\n"
            "  \"received_dup\": %llu,\n  \"qos2_resends_recognised\": %llu,\n"
            "  \"clients_not_up\": %u,\n  \"flows_unfinished\": %u,\n  \"errors\": {",
            (unsigned long long)s->kills, (unsigned long long)s->kills_pub,
            (unsigned long long)s->kills_sub, (unsigned long long)s->reconnects,
            (unsigned long long)s->resumed, (unsigned long long)s->resent_publish,
            (unsigned long long)s->resent_pubrel, (unsigned long long)s->dup_flagged,
            (unsigned long long)s->q2_recognised, s->end_not_up, s->end_flows_open);
    for (int e = 0; e < SE_COUNT; e++)
        fprintf(f, "%s\"%s\": %llu", e ? ", " : "", soak_err_names[e],
                (unsigned long long)s->err[e]);
    fprintf(f, "}\n}\n");
    if (fclose(f) != 0)
        return -errno;
    return 0;
}

int soak_report(struct soak *s)
{
    struct soak_verdict v;
    soak_judge(s, &v);
    soak_print(s, &v);
    int rc = v.passed ? 0 : 1;
    if (s->o->json_path) {
        int r = soak_json(s, &v, s->o->json_path);
        if (r) {
            fprintf(stderr, "ringmq-bench: %s: %s\n", s->o->json_path, strerror(-r));
            rc = 1;
        }
    }
    return rc;
}
