/*
 * core/http.c: HTTP/1.1 request heads for the metrics endpoint. The real
 * heads are those curl 7.88 (Debian 12) and Prometheus 2.42 send; the
 * Basic credential is RFC 7617's example. Every valid head is fed at
 * every length: NEED_MORE until it is whole, DONE with the right consumed
 * after, another request or junk following or not. Every invalid one is
 * NEED_MORE up to the byte that shows the fault and BAD with the same
 * code from there on, whatever follows.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define U(s)  ((const uint8_t *)(s))
#define LIMIT HTTP_HEAD_MAX_DEFAULT
#define BIG   (64u * 1024u)

#define CURL_UA "User-Agent: curl/7.88.1\r\n"
#define H11     "GET / HTTP/1.1\r\nHost: x\r\n"

static const char *const TAILS[] = {
    "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", /* pipelined */
    "\x00\xff junk",
    "\r\n\r\n",
    "x",
};

static enum http_status parse(const uint8_t *d, size_t n, size_t max, struct http_request *r)
{
    memset(r, 0xA5, sizeof *r);
    return http_parse(d, n, max, r);
}

static enum http_status parse_str(const char *s, struct http_request *r)
{
    return parse(U(s), strlen(s), LIMIT, r);
}

static void check_done(const struct http_request *r, size_t n)
{
    cr_assert_eq(r->consumed, n);
    cr_assert_eq(r->error, 0);
    cr_assert(r->method <= HTTP_METHOD_OTHER);
    cr_assert(r->minor <= 1);
    cr_assert_eq(r->path_len, strlen(r->path));
    cr_assert_eq(r->path[0], '/');
    cr_assert_eq(r->user_len, strlen(r->user));
    cr_assert_eq(r->password_len, strlen(r->password));
    cr_assert_not(r->has_auth && r->auth_bad);
    if (!r->has_auth)
        cr_assert(r->user_len == 0 && r->password_len == 0);
}

/* A valid head of n bytes: NEED_MORE at every shorter length (with
 * error 0), DONE at n, also with max_head n; the same result with any
 * bytes after it. */
static struct http_request whole_n(const uint8_t *h, size_t n)
{
    struct http_request r, r2;
    uint8_t *buf = malloc(n + 64);
    cr_assert_not_null(buf);
    memcpy(buf, h, n);

    for (size_t k = 0; k < n; k++) {
        enum http_status st = parse(buf, k, LIMIT, &r);
        cr_assert_eq(st, HTTP_NEED_MORE, "prefix %zu of %zu: %d (error %u)", k, n, st, r.error);
        cr_assert_eq(r.error, 0);
    }
    cr_assert_eq(parse(buf, n, LIMIT, &r), HTTP_DONE, "whole: error %u", r.error);
    check_done(&r, n);
    if (n >= 64) {
        cr_assert_eq(parse(buf, n, n, &r2), HTTP_DONE, "max_head = its length");
        cr_assert(memcmp(&r, &r2, sizeof r) == 0);
    }
    for (size_t t = 0; t < sizeof TAILS / sizeof TAILS[0]; t++) {
        size_t tn = t == 1 ? 7 : strlen(TAILS[t]);
        memcpy(buf + n, TAILS[t], tn);
        for (size_t extra = 1; extra <= tn; extra++) {
            cr_assert_eq(parse(buf, n + extra, LIMIT, &r2), HTTP_DONE);
            cr_assert(memcmp(&r, &r2, sizeof r) == 0, "tail %zu, %zu bytes", t, extra);
        }
    }
    free(buf);
    return r;
}

static struct http_request whole(const char *h)
{
    return whole_n(U(h), strlen(h));
}

/* An invalid head: NEED_MORE before byte `at` (1-based: the prefix length
 * that first shows the fault), BAD with `error` from there on, the whole
 * of it and with bytes after it included. */
static void bad_at_max(const uint8_t *h, size_t n, size_t max, size_t at, uint16_t error)
{
    struct http_request r;
    uint8_t *buf = malloc(n + 64);
    cr_assert_not_null(buf);
    cr_assert(at >= 1 && at <= n, "fault at %zu of %zu", at, n);
    memcpy(buf, h, n);
    memset(buf + n, 'a', 64);

    for (size_t k = 0; k < at; k++) {
        enum http_status st = parse(buf, k, max, &r);
        cr_assert_eq(st, HTTP_NEED_MORE, "prefix %zu (fault at %zu): %d error %u", k, at, st,
                     r.error);
        cr_assert_eq(r.error, 0);
    }
    for (size_t k = at; k <= n + 64; k++) {
        enum http_status st = parse(buf, k, max, &r);
        cr_assert_eq(st, HTTP_BAD, "prefix %zu (fault at %zu): %d", k, at, st);
        cr_assert_eq(r.error, error, "prefix %zu (fault at %zu): error %u, not %u", k, at, r.error,
                     error);
    }
    free(buf);
}

static void bad_at(const char *h, size_t at, uint16_t error)
{
    bad_at_max(U(h), strlen(h), LIMIT, at, error);
}

/* The same for a head with a NUL in it: sizeof of a literal. */
#define BAD_AT_LIT(lit, at, error) bad_at_max(U(lit), sizeof(lit) - 1, LIMIT, at, error)

/* The prefix length at which the head shows the fault marked by the
 * first occurrence of marker: its first byte. */
static size_t at(const char *s, const char *marker)
{
    const char *p = strstr(s, marker);
    cr_assert_not_null(p, "marker %s in %s", marker, s);
    return (size_t)(p - s) + 1;
}

/* A fault that shows at the end of the head: its last byte. */
static void bad_end(const char *h, uint16_t error)
{
    bad_at(h, strlen(h), error);
}

/* A fault shown by the LF after the first occurrence of marker. */
static void bad_eol(const char *h, const char *marker, uint16_t error)
{
    const char *p = strstr(h, marker);
    cr_assert_not_null(p);
    const char *lf = strchr(p, '\n');
    cr_assert_not_null(lf);
    bad_at(h, (size_t)(lf - h) + 1, error);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The reference encoder [RFC 4648 4], into out (NUL-terminated). */
static void b64(const uint8_t *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? B64[v & 63] : '=';
    }
    out[o] = 0;
}

/* A 1.1 head with the given Authorization value. */
static struct http_request with_auth(const char *value)
{
    char h[2048];
    snprintf(h, sizeof h, "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n", value);
    return whole(h);
}

static struct http_request with_cred(const uint8_t *text, size_t n)
{
    char enc[1500], value[1600];
    cr_assert(n < 1000);
    b64(text, n, enc);
    snprintf(value, sizeof value, "Basic %s", enc);
    return with_auth(value);
}

static void auth_bad(const char *value)
{
    struct http_request r = with_auth(value);
    cr_assert(r.auth_bad, "%s", value);
    cr_assert_not(r.has_auth, "%s", value);
    cr_assert_eq(r.user_len, 0);
    cr_assert_eq(r.password_len, 0);
    cr_assert_str_eq(r.user, "");
    cr_assert_str_eq(r.password, "");
}

/* ------------------------------------------------------------------------ */
/* Real heads                                                                */
/* ------------------------------------------------------------------------ */

Test(http_real, prometheus_scrape)
{
    const char *h =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/2.42.0\r\n"
        "Accept: "
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
        "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nAccept-Encoding: "
        "gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
    struct http_request r = whole(h);
    cr_assert_eq(r.method, HTTP_METHOD_GET);
    cr_assert_eq(r.minor, 1);
    cr_assert_str_eq(r.path, "/metrics");
    cr_assert_eq(r.path_len, 8);
    cr_assert(r.keep_alive);
    cr_assert_not(r.has_auth);
    cr_assert_not(r.auth_bad);
    cr_assert_lt(strlen(h), 300); /* http.h: "a scraper's head is under 300 bytes" */
}

Test(http_real, prometheus_with_basic_auth)
{
    /* basic_auth: {username: prom, password: s3cret} in a scrape config */
    struct http_request r = whole("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n"
                                  "User-Agent: Prometheus/2.42.0\r\nAccept: text/plain\r\n"
                                  "Accept-Encoding: gzip\r\n"
                                  "Authorization: Basic cHJvbTpzM2NyZXQ=\r\n"
                                  "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n");
    cr_assert(r.has_auth);
    cr_assert_str_eq(r.user, "prom");
    cr_assert_eq(r.user_len, 4);
    cr_assert_str_eq(r.password, "s3cret");
    cr_assert_eq(r.password_len, 6);
}

Test(http_real, curl_get)
{
    const char *h =
        "GET /healthz HTTP/1.1\r\nHost: localhost:9100\r\n" CURL_UA "Accept: */*\r\n\r\n";
    struct http_request r = whole(h);
    cr_assert_eq(r.method, HTTP_METHOD_GET);
    cr_assert_str_eq(r.path, "/healthz");
    cr_assert(r.keep_alive);
    cr_assert_lt(strlen(h), 200); /* http.h: "curl's under 200" */
}

Test(http_real, curl_user_and_head_and_http10)
{
    /* curl -u alice:pw http://localhost:9100/metrics */
    struct http_request r =
        whole("GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\n"
              "Authorization: Basic YWxpY2U6cHc=\r\n" CURL_UA "Accept: */*\r\n\r\n");
    cr_assert(r.has_auth);
    cr_assert_str_eq(r.user, "alice");
    cr_assert_str_eq(r.password, "pw");

    /* curl -I */
    r = whole("HEAD /readyz HTTP/1.1\r\nHost: localhost:9100\r\n" CURL_UA "Accept: */*\r\n\r\n");
    cr_assert_eq(r.method, HTTP_METHOD_HEAD);
    cr_assert_str_eq(r.path, "/readyz");

    /* curl -0 */
    r = whole("GET /metrics HTTP/1.0\r\nHost: localhost:9100\r\n" CURL_UA "Accept: */*\r\n\r\n");
    cr_assert_eq(r.minor, 0);
    cr_assert_not(r.keep_alive);
}

Test(http_real, pipelined_second_request)
{
    const char *a = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *b = "HEAD /metrics?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    const char *c = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s%s", a, b, c);
    size_t n = strlen(buf), off = 0;
    struct http_request r;

    cr_assert_eq(parse(U(buf), n, LIMIT, &r), HTTP_DONE);
    cr_assert_eq(r.consumed, strlen(a));
    cr_assert_str_eq(r.path, "/healthz");
    off += r.consumed;
    cr_assert_eq(parse(U(buf) + off, n - off, LIMIT, &r), HTTP_DONE);
    cr_assert_eq(r.consumed, strlen(b));
    cr_assert_eq(r.method, HTTP_METHOD_HEAD);
    cr_assert_str_eq(r.path, "/metrics");
    cr_assert(r.keep_alive);
    off += r.consumed;
    cr_assert_eq(parse(U(buf) + off, n - off, LIMIT, &r), HTTP_DONE);
    cr_assert_eq(r.consumed, strlen(c));
    cr_assert_not(r.keep_alive);
    off += r.consumed;
    cr_assert_eq(off, n);
    cr_assert_eq(parse(U(buf) + off, 0, LIMIT, &r), HTTP_NEED_MORE);

    /* The second request's prefix, as the endpoint sees it before the
     * rest arrives, does not disturb the first. */
    whole(a);
}

Test(http_real, stateless_consumed_alone)
{
    const char *h = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n";
    struct http_request r, r2;
    cr_assert_eq(parse_str(h, &r), HTTP_DONE);
    cr_assert_eq(parse(U(h), r.consumed, LIMIT, &r2), HTTP_DONE);
    cr_assert(memcmp(&r, &r2, sizeof r) == 0);
}

Test(http_real, empty_input)
{
    struct http_request r;
    cr_assert_eq(parse(NULL, 0, LIMIT, &r), HTTP_NEED_MORE);
    cr_assert_eq(r.error, 0);
}

Test(http_real, max_head_under_64_is_a_bug, .signal = SIGABRT)
{
    struct http_request r;
    http_parse(U("GET / HTTP/1.0\r\n\r\n"), 18, 63, &r);
}

/* ------------------------------------------------------------------------ */
/* The request line                                                          */
/* ------------------------------------------------------------------------ */

Test(http_line, minimal_heads)
{
    struct http_request r = whole("GET / HTTP/1.0\r\n\r\n");
    cr_assert_eq(r.method, HTTP_METHOD_GET);
    cr_assert_eq(r.minor, 0);
    cr_assert_str_eq(r.path, "/");
    cr_assert_eq(r.path_len, 1);
    cr_assert_not(r.keep_alive);
    r = whole(H11 "\r\n");
    cr_assert_eq(r.minor, 1);
    cr_assert(r.keep_alive);
}

Test(http_line, methods)
{
    static const struct {
        const char *m;
        uint8_t want;
    } cases[] = {
        {"GET", HTTP_METHOD_GET},
        {"HEAD", HTTP_METHOD_HEAD},
        {"POST", HTTP_METHOD_OTHER},
        {"get", HTTP_METHOD_OTHER},
        {"Head", HTTP_METHOD_OTHER},
        {"GETS", HTTP_METHOD_OTHER},
        {"GE", HTTP_METHOD_OTHER},
        {"HEADS", HTTP_METHOD_OTHER},
        {"M-SEARCH", HTTP_METHOD_OTHER},
        {"OPTIONS", HTTP_METHOD_OTHER},
        {"!#$%&'*+-.^_`|~09azAZ", HTTP_METHOD_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, "%s /x HTTP/1.0\r\n\r\n", cases[i].m);
        struct http_request r = whole(h);
        cr_assert_eq(r.method, cases[i].want, "%s", cases[i].m);
    }
}

Test(http_line, method_bad_byte_at_once)
{
    static const struct {
        const char *head;
        size_t at;
    } cases[] = {
        {"G(T / HTTP/1.1\r\n", 2},
        {"GE\"T", 3},
        {"GET\t/", 4},
        {"G,T", 2},
        {"G/T", 2},
        {"G:T", 2},
        {"G\x7fT", 2},
        {"G\x80T", 2},
        {"G@T", 2},
        {"G\nT", 2},
        {"G\rT", 2},
        {"G[T", 2},
        {"G{T", 2},
        {"G=T", 2},
        {"G;T", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        bad_at(cases[i].head, cases[i].at, 400);
    bad_at(" GET / HTTP/1.1\r\n", 1, 400);
    BAD_AT_LIT("\x00GET", 1, 400);
    bad_at("\nGET / HTTP/1.1\r\n", 1, 400);
    bad_at("\xef\xbb\xbfGET / HTTP/1.1\r\n", 1, 400); /* a BOM */
    bad_at("\x16\x03\x01\x02\x00", 1, 400);           /* TLS to a plain port */
    bad_at("\x10\x0c\x00\x04MQTT", 1, 400);           /* MQTT to it */
}

Test(http_line, target_origin_form_only)
{
    bad_at("GET  / HTTP/1.1\r\n", 5, 400);
    bad_at("OPTIONS * HTTP/1.1\r\n", 9, 400);
    bad_at("GET http://x/ HTTP/1.1\r\n", 5, 400);
    bad_at("CONNECT x:443 HTTP/1.1\r\n", 9, 400);
    bad_at("GET ?a HTTP/1.1\r\n", 5, 400);
    bad_at("GET \r\n", 5, 400);
}

Test(http_line, target_visible_ascii_only)
{
    bad_at("GET /a\tb HTTP/1.1\r\n", 7, 400);
    bad_at("GET /a\x7f HTTP/1.1\r\n", 7, 400);
    bad_at("GET /\x80 HTTP/1.1\r\n", 6, 400);
    bad_at("GET /\xff HTTP/1.1\r\n", 6, 400);
    BAD_AT_LIT("GET /\x00 HTTP/1.1\r\n", 6, 400);
    bad_at("GET /\r\n\r\n", 6, 400); /* HTTP/0.9: no version */
    bad_at("GET /\n", 6, 400);
    struct http_request r = whole("GET /!\"$&'()*+,-./:;<=>@[\\]^_`{|}~%20#f HTTP/1.0\r\n\r\n");
    cr_assert_str_eq(r.path, "/!\"$&'()*+,-./:;<=>@[\\]^_`{|}~%20#f"); /* not decoded */
}

Test(http_line, query_cut_off)
{
    struct http_request r = whole("GET /metrics?name[]=a&b=%2F HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_str_eq(r.path, "/metrics");
    cr_assert_eq(r.path_len, 8);
    r = whole("GET /? HTTP/1.0\r\n\r\n");
    cr_assert_str_eq(r.path, "/");
    r = whole("GET /a?b?c/d HTTP/1.0\r\n\r\n");
    cr_assert_str_eq(r.path, "/a");
}

Test(http_line, target_at_limit_and_over)
{
    char h[600], t[300];
    memset(t, 'a', sizeof t);
    t[0] = '/';

    snprintf(h, sizeof h, "GET %.*s HTTP/1.0\r\n\r\n", (int)HTTP_PATH_MAX, t);
    struct http_request r = whole(h);
    cr_assert_eq(r.path_len, HTTP_PATH_MAX);
    cr_assert_eq(strlen(r.path), HTTP_PATH_MAX);

    /* The 256th byte of the target is the fault, whatever follows. */
    snprintf(h, sizeof h, "GET %.*s HTTP/1.0\r\n\r\n", (int)HTTP_PATH_MAX + 1, t);
    bad_at(h, 4 + HTTP_PATH_MAX + 1, 414);
    snprintf(h, sizeof h, "GET %.*s\x01 HTTP/1.0\r\n\r\n", (int)HTTP_PATH_MAX + 1, t);
    bad_at(h, 4 + HTTP_PATH_MAX + 1, 414);

    /* The query counts: the target is what is limited. */
    snprintf(h, sizeof h, "GET /?%.*s HTTP/1.0\r\n\r\n", (int)HTTP_PATH_MAX - 2, t + 1);
    r = whole(h);
    cr_assert_str_eq(r.path, "/");
    snprintf(h, sizeof h, "GET /?%.*s HTTP/1.0\r\n\r\n", (int)HTTP_PATH_MAX - 1, t + 1);
    bad_at(h, 4 + HTTP_PATH_MAX + 1, 414);

    /* A bad byte before the 256th is a 400. */
    snprintf(h, sizeof h, "GET /\x01%.*s HTTP/1.0\r\n\r\n", (int)HTTP_PATH_MAX, t);
    bad_at(h, 6, 400);
}

Test(http_line, versions_taken)
{
    cr_assert_eq(whole("GET / HTTP/1.0\r\n\r\n").minor, 0);
    cr_assert_eq(whole(H11 "\r\n").minor, 1);
}

Test(http_line, other_version_505_at_line_end)
{
    static const char *const v[] = {"2.0", "1.2", "0.9", "3.0", "1.9", "9.9", "0.0"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, "GET / HTTP/%s\r\nHost: x\r\n\r\n", v[i]);
        bad_at(h, 16, 505);
    }
}

Test(http_line, malformed_version_400)
{
    bad_at("GET / http/1.1\r\n", 7, 400);
    bad_at("GET / HTTP/1.1 \r\n", 15, 400);
    bad_at("GET / HTTP/11\r\n", 13, 400);
    bad_at("GET / HTTP/1.10\r\n", 15, 400);
    bad_at("GET / HTTP/2.0x\r\n", 15, 400); /* not HTTP/D.D: not a 505 */
    bad_at("GET / HTTP/2\r\n", 13, 400);
    bad_at("GET / HTTP/1.\r\n", 14, 400);
    bad_at("GET / HTTP/a.1\r\n", 12, 400);
    bad_at("GET / HTTP/1,1\r\n", 13, 400);
    bad_at("GET / HTTP/\r\n", 12, 400);
    bad_at("GET / HTTP\r\n", 11, 400);
    bad_at("GET / HTTP/2.0\rX", 16, 400);
    bad_at("GET / HTTPS/1.1\r\n", 11, 400);
    bad_at("GET / HTTP/1.1 extra\r\n", 15, 400);
    bad_at("GET / HTTP/1.1\n\r\n", 15, 400); /* a bare LF ends no line */
    bad_at("GET / HTTP/1.1\rHost", 16, 400);
    bad_at("GET / HTTP/1.1\r\r\n", 16, 400);
}

Test(http_line, leading_empty_lines)
{
    char h[128];
    for (unsigned n = 1; n <= HTTP_LEADING_CRLF_MAX; n++) {
        h[0] = 0;
        for (unsigned i = 0; i < n; i++)
            strcat(h, "\r\n");
        strcat(h, "GET /x HTTP/1.0\r\n\r\n");
        struct http_request r = whole(h);
        cr_assert_eq(r.consumed, 2 * n + 19);
        cr_assert_str_eq(r.path, "/x");
    }
    h[0] = 0;
    for (unsigned i = 0; i <= HTTP_LEADING_CRLF_MAX; i++)
        strcat(h, "\r\n");
    strcat(h, "GET /x HTTP/1.0\r\n\r\n");
    bad_at(h, 2 * HTTP_LEADING_CRLF_MAX + 1, 400);
    bad_at("\r\n\n", 3, 400);
    bad_at("\rGET", 2, 400);
    bad_at("\r\n\rGET", 4, 400);
}

/* ------------------------------------------------------------------------ */
/* Field lines                                                               */
/* ------------------------------------------------------------------------ */

Test(http_fields, names_are_tokens)
{
    struct http_request r =
        whole("GET / HTTP/1.0\r\n!#$%&'*+-.^_`|~09azAZ: v\r\nX:\r\nY:  \r\n\r\n");
    cr_assert_eq(r.error, 0);
    bad_at(H11 "Host : x\r\n", at(H11 "Host : x\r\n", "Host :") + 4, 400);
    bad_at(H11 "Host\t: x\r\n", at(H11 "Host\t: x\r\n", "Host\t") + 4, 400);
    bad_at(H11 ": x\r\n", strlen(H11) + 1, 400);
    bad_at(H11 "X(Y: z\r\n", strlen(H11) + 2, 400);
    bad_at(H11 "X\"Y: z\r\n", strlen(H11) + 2, 400);
    bad_at(H11 "X-Y\r\n\r\n", strlen(H11) + 4, 400);
    bad_at(H11 "X\x80Y: z\r\n", strlen(H11) + 2, 400);
    BAD_AT_LIT(H11 "X\x00Y: z\r\n", strlen(H11) + 2, 400);
    bad_at(H11 "X\nY: z\r\n", strlen(H11) + 2, 400);
}

Test(http_fields, no_obs_fold_no_leading_whitespace)
{
    bad_at(H11 "X: a\r\n b\r\n\r\n", strlen(H11) + 7, 400);
    bad_at(H11 "X: a\r\n\tb\r\n\r\n", strlen(H11) + 7, 400);
    /* whitespace between the request line and the first field [RFC 9112 2.2] */
    bad_at("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 17, 400);
    bad_at("GET / HTTP/1.1\r\n \r\n", 17, 400);
}

Test(http_fields, values_trimmed_and_obs_text_taken)
{
    struct http_request r = whole("GET / HTTP/1.1\r\nHost:x\r\nContent-Length: \t 0 \t \r\n"
                                  "Connection:\tclose\t\r\nX-A: \x80\xff caf\xc3\xa9 \t a\tb\r\n"
                                  "X-B: !\"#~\r\n\r\n");
    cr_assert_not(r.keep_alive);
    r = with_auth("\t Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ== \t");
    cr_assert(r.has_auth);
}

Test(http_fields, control_bytes_in_values_400)
{
    for (unsigned b = 0; b < 0x20; b++) {
        if (b == '\t' || b == '\r')
            continue;
        uint8_t h[64];
        size_t n = (size_t)snprintf((char *)h, sizeof h, "%sX: a", H11);
        h[n++] = (uint8_t)b;
        memcpy(h + n, "b\r\n\r\n", 5);
        n += 5;
        bad_at_max(h, n, LIMIT, strlen(H11) + 5, 400);
    }
    bad_at(H11 "X: a\x7f\r\n\r\n", strlen(H11) + 5, 400);
    bad_at(H11 "X: a\rb\r\n\r\n", strlen(H11) + 6, 400); /* a bare CR */
    bad_at(H11 "X: a\r\r\n\r\n", strlen(H11) + 6, 400);
    bad_at(H11 "X: a\n\r\n", strlen(H11) + 5, 400); /* a bare LF */
    bad_at(H11 "\n", strlen(H11) + 1, 400);
    bad_at(H11 "\rX", strlen(H11) + 2, 400); /* the end of the head, half */
}

static void fields(char *h, size_t cap, unsigned n)
{
    size_t o = (size_t)snprintf(h, cap, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (unsigned i = 1; i < n; i++)
        o += (size_t)snprintf(h + o, cap - o, "X-%u: %u\r\n", i, i);
    snprintf(h + o, cap - o, "\r\n");
}

Test(http_fields, count_limit)
{
    char h[4096];
    fields(h, sizeof h, HTTP_FIELDS_MAX);
    whole(h);
    fields(h, sizeof h, HTTP_FIELDS_MAX + 1);
    /* The first byte of the 65th line. */
    char marker[16];
    snprintf(marker, sizeof marker, "X-%u:", HTTP_FIELDS_MAX);
    bad_at(h, at(h, marker), 431);
}

Test(http_fields, head_limit)
{
    /* A head of 64 bytes is DONE at max_head 64; one of 65 is 431 there,
     * at its 64th byte, and DONE at max_head 65. */
    const char *h64 = "GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\nX: yyyyyyyyyyyy\r\n\r\n";
    cr_assert_eq(strlen(h64), 64);
    struct http_request r;
    cr_assert_eq(parse(U(h64), 64, 64, &r), HTTP_DONE);
    cr_assert_eq(r.consumed, 64);

    const char *h65 = "GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\nX: yyyyyyyyyyyyy\r\n\r\n";
    bad_at_max(U(h65), strlen(h65), 64, 64, 431);
    cr_assert_eq(parse(U(h65), strlen(h65), 65, &r), HTTP_DONE);

    /* A fault past max_head is never seen; one before it is. */
    const char *late =
        "GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\nX: yyyyyyyyyyyyyyyyy\x01\r\n";
    bad_at_max(U(late), strlen(late), 64, 64, 431);
    const char *early = "GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\nX: yyyy\x01";
    bad_at_max(U(early), strlen(early), 64, strlen(early), 400);

    /* The default limit, with a long field. */
    char *big = malloc(BIG);
    cr_assert_not_null(big);
    size_t o = (size_t)snprintf(big, BIG, "%sX: ", H11);
    memset(big + o, 'v', LIMIT);
    memcpy(big + o + LIMIT, "\r\n\r\n", 4);
    cr_assert_eq(parse(U(big), LIMIT - 1, LIMIT, &r), HTTP_NEED_MORE);
    cr_assert_eq(parse(U(big), LIMIT, LIMIT, &r), HTTP_BAD);
    cr_assert_eq(r.error, 431);
    cr_assert_eq(parse(U(big), o + LIMIT + 4, LIMIT, &r), HTTP_BAD);
    cr_assert_eq(r.error, 431);
    cr_assert_eq(parse(U(big), o + LIMIT + 4, o + LIMIT + 4, &r), HTTP_DONE);
    free(big);
}

Test(http_fields, host)
{
    whole("GET / HTTP/1.1\r\nhOsT: x\r\n\r\n");
    whole("GET / HTTP/1.1\r\nHost:\r\n\r\n"); /* an empty one is allowed [RFC 9112 3.2] */
    whole("GET / HTTP/1.0\r\n\r\n");
    whole("GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    bad_end("GET / HTTP/1.1\r\n\r\n", 400);
    bad_end("GET / HTTP/1.1\r\nHosts: x\r\nX-Host: y\r\n\r\n", 400);
    const char *two = "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\nHOST: x\r\nC: d\r\n";
    bad_eol(two, "HOST", 400);
    bad_eol("GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", "Host: y", 400);
}

Test(http_fields, content_length)
{
    static const char *const zero[] = {"0", "00", "000000000000000000000000000000", " 0 "};
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, H11 "Content-Length: %s\r\n\r\n", zero[i]);
        whole(h);
    }
    static const char *const big[] = {"1", "5", "01", "18446744073709551616",
                                      "99999999999999999999"};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, H11 "content-length: %s\r\nX: y\r\n\r\n", big[i]);
        bad_eol(h, "content-length", 413);
    }
    static const char *const bad[] = {"",     " ",  "-1",  "+0",  "0x0",
                                      "0, 0", "0,", "0 0", "1e3", "\xb0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, H11 "Content-Length: %s\r\n\r\n", bad[i]);
        bad_eol(h, "Content-Length", 400);
    }
    bad_eol(H11 "Content-Length: 0\r\nContent-Length: 0\r\n\r\n", "Length: 0\r\n\r\n", 400);
    bad_eol(H11 "Content-Length: 0\r\nX: y\r\nCONTENT-LENGTH: 1\r\n\r\n", "CONTENT", 400);
}

Test(http_fields, transfer_encoding_501)
{
    bad_eol(H11 "Transfer-Encoding: chunked\r\n\r\n", "Transfer", 501);
    bad_eol(H11 "transfer-encoding: identity\r\n\r\n", "transfer", 501);
    bad_eol("GET / HTTP/1.0\r\nTRANSFER-ENCODING:\r\n\r\n", "TRANSFER", 501);
    /* Its own faults come first; the first fault wins. */
    bad_at(H11 "Transfer-Encoding: a\x01\r\n", at(H11 "Transfer-Encoding: a\x01", "\x01"), 400);
    bad_eol(H11 "Content-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n", "Content", 413);
    whole(H11 "Transfer-Encodings: x\r\nTE: trailers\r\n\r\n");
}

Test(http_fields, connection_options)
{
    static const struct {
        const char *head;
        bool keep;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nconnection: CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade ,\tClose ,\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: ,,close,,\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: closed, xclose, close-\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: \"close\"\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: TE\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-Connection: close\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: upgrade,keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keepalive\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_request r = whole(cases[i].head);
        cr_assert_eq(r.keep_alive, cases[i].keep, "%s", cases[i].head);
    }
}

/* ------------------------------------------------------------------------ */
/* Authorization                                                             */
/* ------------------------------------------------------------------------ */

Test(http_auth, rfc7617_example)
{
    struct http_request r = with_auth("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    cr_assert(r.has_auth);
    cr_assert_not(r.auth_bad);
    cr_assert_str_eq(r.user, "Aladdin");
    cr_assert_eq(r.user_len, 7);
    cr_assert_str_eq(r.password, "open sesame");
    cr_assert_eq(r.password_len, 11);
}

Test(http_auth, scheme_case_and_spaces)
{
    static const char *const v[] = {
        "basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "BASIC QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "bAsIc QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "Basic    QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct http_request r = with_auth(v[i]);
        cr_assert(r.has_auth, "%s", v[i]);
        cr_assert_str_eq(r.user, "Aladdin");
        cr_assert_str_eq(r.password, "open sesame");
    }
    struct http_request r = whole("GET / HTTP/1.0\r\nauthorization: Basic YTpi\r\n\r\n");
    cr_assert(r.has_auth);
    cr_assert_str_eq(r.user, "a");
    cr_assert_str_eq(r.password, "b");
}

Test(http_auth, split_at_first_colon)
{
    struct http_request r = with_cred(U("a:b:c"), 5);
    cr_assert_str_eq(r.user, "a");
    cr_assert_str_eq(r.password, "b:c");
    r = with_cred(U(":pw"), 3);
    cr_assert(r.has_auth);
    cr_assert_eq(r.user_len, 0);
    cr_assert_str_eq(r.password, "pw");
    r = with_cred(U("user:"), 5);
    cr_assert(r.has_auth);
    cr_assert_str_eq(r.user, "user");
    cr_assert_eq(r.password_len, 0);
    r = with_cred(U(":"), 1);
    cr_assert(r.has_auth);
    /* Every padding: 1, 2 and 0 bytes in the last group. */
    r = with_cred(U("ab:c"), 4);
    cr_assert_str_eq(r.password, "c");
    r = with_cred(U("ab:cd"), 5);
    cr_assert_str_eq(r.password, "cd");
    r = with_cred(U("ab:cde"), 6);
    cr_assert_str_eq(r.password, "cde");
    /* Any byte but NUL: UTF-8, controls, '+' and '/' in the encoding. */
    const uint8_t odd[] = {'\xc3', '\xa9', 0x01, ':', 0xfb, 0xff, 0x7f, '\t'};
    r = with_cred(odd, sizeof odd);
    cr_assert(r.has_auth);
    cr_assert_eq(r.user_len, 3);
    cr_assert(memcmp(r.user, odd, 3) == 0);
    cr_assert_eq(r.password_len, 4);
    cr_assert(memcmp(r.password, odd + 4, 4) == 0);
}

Test(http_auth, lengths_at_limit_and_over)
{
    uint8_t text[600];
    for (size_t u = HTTP_CRED_MAX - 1; u <= HTTP_CRED_MAX + 1; u++) {
        for (size_t p = HTTP_CRED_MAX - 1; p <= HTTP_CRED_MAX + 1; p++) {
            memset(text, 'u', u);
            text[u] = ':';
            memset(text + u + 1, 'p', p);
            struct http_request r = with_cred(text, u + 1 + p);
            bool ok = u <= HTTP_CRED_MAX && p <= HTTP_CRED_MAX;
            cr_assert_eq(r.has_auth, ok, "user %zu password %zu", u, p);
            cr_assert_eq(r.auth_bad, !ok);
            if (ok) {
                cr_assert_eq(r.user_len, u);
                cr_assert_eq(r.password_len, p);
                cr_assert_eq(strlen(r.user), u);
                cr_assert_eq(strlen(r.password), p);
            }
        }
    }
    /* A long password with a short user, and the reverse. */
    memset(text, 'p', sizeof text);
    text[0] = 'u';
    text[1] = ':';
    cr_assert(with_cred(text, 500).auth_bad);
    memset(text, 'u', sizeof text);
    text[498] = ':';
    cr_assert(with_cred(text, 500).auth_bad);
}

Test(http_auth, nul_inside_is_bad)
{
    cr_assert(with_cred(U("a\0b:c"), 5).auth_bad);
    cr_assert(with_cred(U("ab:c\0"), 5).auth_bad);
    cr_assert(with_cred(U("\0:"), 2).auth_bad);
    cr_assert(with_cred(U(":\0"), 2).auth_bad);
}

Test(http_auth, malformed_credentials)
{
    static const char *const v[] = {
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ",       /* no padding */
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=",      /* half the padding */
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ===",    /* too much */
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==QQ==", /* padding inside */
        "Basic QWxh=GRpbjpvcGVuIHNlc2FtZQ==",
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZR==", /* non-zero pad bits */
        "Basic YTpj",                         /* fine: the control */
        "Basic YTpk=",
        "Basic Q===",
        "Basic ====",
        "Basic =",
        "Basic YT pi",
        "Basic YTpi YTpi",
        "Basic YT\tpi",
        "Basic\tYTpi",
        "Basic YTp-", /* base64url */
        "Basic YTp_", /* base64url */
        "Basic YTp!",
        "Basic YTp\x80",
        "Basic Zm9v", /* "foo": no colon */
        "Basic ",
        "Basic",
        "Basically YTpi",
        "Bas YTpi",
        "YTpi",
        "Bearer YTpi",
        "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"/\", response=\"x\"",
        "Basic realm=\"x\"",
        "",
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==,",
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (strcmp(v[i], "Basic YTpj") == 0) {
            cr_assert(with_auth(v[i]).has_auth);
            continue;
        }
        auth_bad(v[i]);
    }
    /* A pad bit set in the last group of one '='. */
    cr_assert(with_auth("Basic YTpiYw==").has_auth);
    auth_bad("Basic YTpiYx==");
    cr_assert(with_auth("Basic YTpiYmM=").has_auth);
    auth_bad("Basic YTpiYmN=");
}

Test(http_auth, two_fields_400)
{
    const char *h = "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\n"
                    "authorization: Basic YTpi\r\n\r\n";
    bad_eol(h, "authorization", 400);
    h = "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\nAuthorization: Basic YTpi\r\n\r\n";
    bad_eol(h, "Authorization: Basic", 400);
}

Test(http_auth, bad_head_leaves_no_password)
{
    const char *h = "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpzZWNyZXQ=\r\nX\x01";
    struct http_request r;
    cr_assert_eq(parse_str(h, &r), HTTP_BAD);
    cr_assert_eq(r.error, 400);
    cr_assert_eq(r.password_len, 0);
    cr_assert_null(memmem(r.password, sizeof r.password, "secret", 6));
    cr_assert_null(memmem(&r, sizeof r, "secret", 6));
    cr_assert_eq(parse(U(h), strlen(h) - 3, LIMIT, &r), HTTP_NEED_MORE);
    cr_assert_null(memmem(&r, sizeof r, "secret", 6));
}
