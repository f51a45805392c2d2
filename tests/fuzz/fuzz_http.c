/*
 * libFuzzer target for core/http.c, the HTTP/1.1 request-head parser of
 * the metrics endpoint.
 *
 * The first input byte picks the caller's max_head (64, 256, 8192, or one
 * read from the input) and a mode:
 *  - raw: the rest of the input is the connection's bytes;
 *  - primed: a valid start (a request line and Host, or up to the middle
 *    of an Authorization value) glued before the rest, so mutations land
 *    in the fields;
 *  - generated: a head built from the input, piece by piece: leading
 *    empty lines, a method (listed or made of input bytes), a target of
 *    input bytes (now and then a bad byte, or longer than HTTP_PATH_MAX),
 *    a version from a list, field lines of every kind the parser looks at
 *    (Host, Content-Length, Transfer-Encoding, Connection options,
 *    Authorization with a Basic credential the target encodes from input
 *    bytes, sometimes corrupted) and others with input bytes as values
 *    (now and then a control byte, a bare CR or LF, a bad name, an
 *    obs-fold), up to past HTTP_FIELDS_MAX of them, then the rest of the
 *    input after the head. The generator knows where the first fault of
 *    what it wrote shows and what it is, or what the fields must say.
 *
 * Checked on every input, at every prefix length (sampled on long ones,
 * then exactly around the decision):
 *  - the status sequence is NEED_MORE* then BAD* or DONE*: NEED_MORE only
 *    below max_head; a BAD's error is one of 400, 413, 414, 431, 501, 505
 *    and the same for every longer prefix, and for the input with more
 *    bytes appended; error is 0 when not BAD;
 *  - DONE comes first at exactly the prefix length it reports as consumed
 *    (so parsing buf[0..consumed) alone gives the same result), with
 *    consumed <= max_head, and the same result, field for field, for every
 *    longer input and with bytes appended;
 *  - a DONE result is what the bytes say: the head ends in CRLF CRLF, the
 *    request line (after at most HTTP_LEADING_CRLF_MAX empty lines) gives
 *    the method, the path (the target up to '?', NUL-terminated, path_len
 *    its strlen) and the minor version; user and password are
 *    NUL-terminated with their lengths, empty unless has_auth, never with
 *    auth_bad; with has_auth, base64 of "user:password" written here is
 *    exactly the credential in the head's Authorization line;
 *  - a generated head is BAD with the generator's error at exactly the
 *    prefix that shows its first fault (when that lies within max_head),
 *    else DONE with the fields it was built from, or 431 at max_head.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz_input.h"
#include "http.h"

#define GEN_MAX    (24u * 1024u)
#define FIELDS_CAP (HTTP_FIELDS_MAX + 3u)
#define EXACT_MAX  700u /* inputs up to this length: every prefix parsed */
#define SAMPLES    300u

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const uint8_t *s, size_t n, char *out)
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
    return o;
}

static bool tchar(uint8_t b)
{
    static const char t[] = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    return b != 0 && memchr(t, b, sizeof t - 1) != NULL;
}

static int ci_cmp(const uint8_t *s, size_t n, const char *lit)
{
    if (n != strlen(lit))
        return 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t a = s[i] >= 'A' && s[i] <= 'Z' ? (uint8_t)(s[i] | 0x20) : s[i];
        if (a != (uint8_t)lit[i])
            return 1;
    }
    return 0;
}

static const uint8_t *find(const uint8_t *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(s + i, lit, m) == 0)
            return s + i;
    }
    return NULL;
}

static bool nul_terminated(const char *s, size_t cap, size_t len)
{
    return len < cap && memchr(s, 0, cap) == s + len;
}

/* ---- What a single result must satisfy ---- */

static void check_done(const uint8_t *d, size_t max, const struct http_request *r)
{
    size_t c = r->consumed;
    CHECK(c >= 16 && c <= max); /* "A / HTTP/1.0\r\n\r\n" is the shortest */
    CHECK(memcmp(d + c - 4, "\r\n\r\n", 4) == 0);
    CHECK(r->method <= HTTP_METHOD_OTHER && r->minor <= 1);
    CHECK(nul_terminated(r->path, sizeof r->path, r->path_len) && r->path[0] == '/');
    CHECK(nul_terminated(r->user, sizeof r->user, r->user_len));
    CHECK(nul_terminated(r->password, sizeof r->password, r->password_len));
    CHECK(!(r->has_auth && r->auth_bad));
    if (!r->has_auth)
        CHECK(r->user_len == 0 && r->password_len == 0);

    /* The request line, read again: split on its two spaces. */
    size_t i = 0, lead = 0;
    while (d[i] == '\r') {
        CHECK(d[i + 1] == '\n');
        i += 2;
        lead++;
    }
    CHECK(lead <= HTTP_LEADING_CRLF_MAX);
    const uint8_t *sp1 = memchr(d + i, ' ', c - i);
    CHECK(sp1 != NULL && sp1 > d + i);
    size_t mlen = (size_t)(sp1 - (d + i));
    for (size_t k = 0; k < mlen; k++)
        CHECK(tchar(d[i + k]));
    uint8_t m = mlen == 3 && memcmp(d + i, "GET", 3) == 0    ? HTTP_METHOD_GET
                : mlen == 4 && memcmp(d + i, "HEAD", 4) == 0 ? HTTP_METHOD_HEAD
                                                             : HTTP_METHOD_OTHER;
    CHECK(r->method == m);
    const uint8_t *t = sp1 + 1;
    const uint8_t *sp2 = memchr(t, ' ', c - (size_t)(t - d));
    CHECK(sp2 != NULL && t[0] == '/');
    size_t tlen = (size_t)(sp2 - t);
    CHECK(tlen <= HTTP_PATH_MAX);
    const uint8_t *q = memchr(t, '?', tlen);
    size_t plen = q ? (size_t)(q - t) : tlen;
    CHECK(r->path_len == plen && memcmp(r->path, t, plen) == 0);
    CHECK(memcmp(sp2 + 1, "HTTP/1.", 7) == 0 && sp2[8] == '0' + r->minor);
    CHECK(sp2[9] == '\r' && sp2[10] == '\n');

    /* The field lines: CRLF-terminated, at most HTTP_FIELDS_MAX; the
     * credential in the Authorization line (there is at most one) is the
     * canonical base64 of what was decoded. */
    const uint8_t *end = d + c - 2;
    unsigned lines = 0;
    bool auth_seen = false;
    for (const uint8_t *l = sp2 + 11; l < end; lines++) {
        const uint8_t *crlf = find(l, (size_t)(end - l), "\r\n");
        CHECK(crlf != NULL);
        const uint8_t *colon = memchr(l, ':', (size_t)(crlf - l));
        CHECK(colon != NULL && colon > l);
        if (ci_cmp(l, (size_t)(colon - l), "authorization") == 0) {
            CHECK(!auth_seen);
            auth_seen = true;
            if (r->has_auth) {
                const uint8_t *v = colon + 1, *ve = crlf;
                while (v < ve && (*v == ' ' || *v == '\t'))
                    v++;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                CHECK(ve - v > 6 && ci_cmp(v, 5, "basic") == 0 && v[5] == ' ');
                v += 5;
                while (*v == ' ')
                    v++;
                uint8_t text[2 * HTTP_CRED_MAX + 1];
                char enc[sizeof text / 3 * 4 + 8];
                memcpy(text, r->user, r->user_len);
                text[r->user_len] = ':';
                memcpy(text + r->user_len + 1, r->password, r->password_len);
                size_t el = b64_encode(text, r->user_len + 1 + r->password_len, enc);
                CHECK(el == (size_t)(ve - v) && memcmp(enc, v, el) == 0);
                CHECK(memchr(r->user, ':', r->user_len) == NULL);
            }
        }
        l = crlf + 2;
    }
    CHECK(lines <= HTTP_FIELDS_MAX);
    CHECK(auth_seen || (!r->has_auth && !r->auth_bad));
}

static void check_one(const uint8_t *d, size_t k, size_t max, enum http_status st,
                      const struct http_request *r)
{
    CHECK(st == HTTP_NEED_MORE || st == HTTP_BAD || st == HTTP_DONE);
    if (st == HTTP_BAD) {
        CHECK(r->error == 400 || r->error == 413 || r->error == 414 || r->error == 431 ||
              r->error == 501 || r->error == 505);
        return;
    }
    CHECK(r->error == 0);
    if (st == HTTP_NEED_MORE) {
        CHECK(k < max);
        return;
    }
    CHECK(r->consumed <= k);
    check_done(d, max, r);
}

struct verdict {
    enum http_status st; /* NEED_MORE: undecided at the whole input */
    size_t at;           /* the first prefix length that decided */
    struct http_request r;
};

static enum http_status parse(const uint8_t *d, size_t k, size_t max, struct http_request *r)
{
    memset(r, 0x5A, sizeof *r);
    enum http_status st = http_parse(d, k, max, r);
    check_one(d, k, max, st, r);
    return st;
}

/* Prefix k against the verdict of the shorter ones. */
static void step(const uint8_t *d, size_t k, size_t max, struct verdict *v)
{
    struct http_request r;
    enum http_status st = parse(d, k, max, &r);

    if (v->st == HTTP_NEED_MORE) {
        if (st == HTTP_NEED_MORE)
            return;
        v->st = st;
        v->at = k;
        memcpy(&v->r, &r, sizeof r); /* padding included: compared with memcmp */
        if (st == HTTP_DONE)
            CHECK(r.consumed == k);
        return;
    }
    CHECK(st == v->st);
    if (st == HTTP_BAD)
        CHECK(r.error == v->r.error);
    else
        CHECK(memcmp(&r, &v->r, sizeof r) == 0);
}

/* Every prefix of d[0..n) (a sample of them on long inputs, and every one
 * between the last undecided sample and the first decided one), then the
 * same bytes with more after them. */
static struct verdict check_stream(const uint8_t *d, size_t n, size_t max)
{
    struct verdict v = {.st = HTTP_NEED_MORE};
    size_t stride = n <= EXACT_MAX ? 1 : n / SAMPLES;
    size_t last_more = 0;

    for (size_t k = 0; k <= n; k = k == n ? n + 1 : (k + stride < n ? k + stride : n)) {
        if (v.st == HTTP_NEED_MORE) {
            /* A sample that decided: the decision is at one of the
             * prefixes since the last undecided sample. */
            struct http_request r;
            enum http_status st = parse(d, k, max, &r);
            if (st != HTTP_NEED_MORE) {
                for (size_t j = last_more + 1; j <= k; j++)
                    step(d, j, max, &v);
                CHECK(v.st == st);
            }
            last_more = k;
        } else {
            step(d, k, max, &v);
        }
    }
    if (v.st == HTTP_NEED_MORE)
        CHECK(n < max);
    else
        CHECK(v.at <= max);

    /* More bytes change nothing decided. */
    static const char *const tails[] = {"\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x01"};
    static uint8_t more[GEN_MAX + 64];
    if (v.st != HTTP_NEED_MORE && n + 40 <= sizeof more) {
        for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
            size_t tn = strlen(tails[t]);
            memcpy(more, d, n);
            memcpy(more + n, tails[t], tn);
            step(more, n + tn, max, &v);
            if (v.st == HTTP_DONE) { /* the head alone, then the tail */
                memcpy(more + v.r.consumed, tails[t], tn);
                step(more, v.r.consumed + tn, max, &v);
            }
        }
    }
    return v;
}

/* ---- Generated heads ---- */

struct gen {
    uint8_t buf[GEN_MAX];
    size_t n;
    size_t head_len;
    size_t fault_at; /* the prefix length that shows the first fault; 0: none */
    uint16_t fault;
    unsigned fields, hosts, lengths, auths;
    bool opt_close, opt_keep;
    struct http_request want;
};

static void put(struct gen *g, const void *p, size_t n)
{
    CHECK(g->n + n <= sizeof g->buf);
    memcpy(g->buf + g->n, p, n);
    g->n += n;
}

static void put_str(struct gen *g, const char *s)
{
    put(g, s, strlen(s));
}

/* The byte about to be written at g->n is the first fault, unless one
 * came before. */
static void fault_here(struct gen *g, uint16_t code)
{
    if (g->fault_at == 0) {
        g->fault_at = g->n + 1;
        g->fault = code;
    }
}

/* The byte just written (a line's LF) is where the fault shows. */
static void fault_last(struct gen *g, uint16_t code)
{
    if (g->fault_at == 0) {
        g->fault_at = g->n;
        g->fault = code;
    }
}

static const char *pick(struct fuzz_in *in, const char *const *list, size_t n)
{
    return list[in_u8(in) % n];
}

#define PICK(in, list) pick(in, list, sizeof list / sizeof list[0])

static void gen_request_line(struct gen *g, struct fuzz_in *in)
{
    uint8_t lead = in_u8(in) % 32;
    lead = lead < 24 ? 0 : lead - 23;
    for (unsigned i = 0; i < lead; i++) {
        if (i == HTTP_LEADING_CRLF_MAX)
            fault_here(g, 400);
        put_str(g, "\r\n");
    }

    static const char *const methods[] = {"GET", "GET",  "HEAD", "POST",     "get",
                                          "PUT", "GETT", "HEA",  "M-SEARCH", "~x!"};
    uint8_t how = in_u8(in);
    if (how < 224) {
        const char *m = PICK(in, methods);
        put_str(g, m);
        g->want.method = strcmp(m, "GET") == 0    ? HTTP_METHOD_GET
                         : strcmp(m, "HEAD") == 0 ? HTTP_METHOD_HEAD
                                                  : HTTP_METHOD_OTHER;
    } else {
        size_t n = how % 8;
        if (n == 0)
            fault_here(g, 400); /* the SP is where the method was due */
        for (size_t i = 0; i < n; i++) {
            uint8_t b = in_u8(in);
            if (b == ' ')
                b = '_';
            if (b == '\r' && i == 0)
                b = 0x0B; /* a CR there would begin an empty line, not a method */
            if (!tchar(b))
                fault_here(g, 400);
            put(g, &b, 1);
        }
        g->want.method = HTTP_METHOD_OTHER;
    }
    put_str(g, " ");

    /* The target: mostly short, sometimes about HTTP_PATH_MAX. */
    uint8_t tl = in_u8(in);
    size_t len = tl < 200 ? tl % 24 : tl < 250 ? HTTP_PATH_MAX - 3 + tl % 6 : tl;
    uint8_t first = in_u8(in) < 250 ? '/' : '*';
    if (first != '/')
        fault_here(g, 400);
    put(g, &first, 1);
    bool query = false;
    g->want.path[0] = '/';
    g->want.path_len = 1;
    for (size_t i = 1; i <= len; i++) {
        uint8_t b = in_u8(in);
        if (b >= 252) {
            static const uint8_t bad[] = {0x00, '\t', 0x7F, 0x80};
            b = bad[b - 252];
            fault_here(g, 400);
        } else {
            b = (uint8_t)(0x21 + b % 94);
        }
        if (i + 1 > HTTP_PATH_MAX)
            fault_here(g, 414);
        query = query || b == '?';
        if (!query && g->want.path_len < HTTP_PATH_MAX)
            g->want.path[g->want.path_len++] = (char)b;
        put(g, &b, 1);
    }
    g->want.path[g->want.path_len] = 0;
    put_str(g, " ");

    /* A version line, where its fault shows (1-based within it). */
    static const struct {
        const char *text;
        uint8_t minor;
        uint16_t code;
        uint8_t at;
    } versions[] = {
        {"HTTP/1.1\r\n", 1, 0, 0},    {"HTTP/1.1\r\n", 1, 0, 0},    {"HTTP/1.0\r\n", 0, 0, 0},
        {"HTTP/2.0\r\n", 0, 505, 10}, {"HTTP/0.9\r\n", 0, 505, 10}, {"HTTP/1.2\r\n", 0, 505, 10},
        {"http/1.1\r\n", 0, 400, 1},  {"HTTP/1.10\r\n", 0, 400, 9}, {"HTTP/1.1\n", 0, 400, 9},
        {"HTTP/1.1 \r\n", 0, 400, 9}, {"HTTP/2\r\n", 0, 400, 7},    {"HTTP/1.1\rX", 0, 400, 10},
    };
    uint8_t v = in_u8(in) % (sizeof versions / sizeof versions[0]);
    if (versions[v].code != 0 && g->fault_at == 0) {
        g->fault_at = g->n + versions[v].at;
        g->fault = versions[v].code;
    }
    put_str(g, versions[v].text);
    g->want.minor = versions[v].minor;
}

/* A field value of input bytes: SP, HTAB, VCHAR and obs-text, and now
 * and then a byte that no value may hold. */
static void gen_value_bytes(struct gen *g, struct fuzz_in *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = in_u8(in);
        if (b == '\r' || b == '\n' || (b < 0x20 && b != '\t') || b == 0x7F) {
            if (in_u8(in) < 240) { /* mostly made good */
                b = b == 0x7F ? '?' : (uint8_t)(b | 0x40);
            } else if (b == '\r') { /* a bare CR: the next byte is the fault */
                put(g, &b, 1);
                fault_here(g, 400);
                b = 'x';
            } else {
                fault_here(g, 400);
            }
        }
        put(g, &b, 1);
    }
}

static void gen_ows(struct gen *g, struct fuzz_in *in)
{
    static const char *const ows[] = {"", "", " ", " ", "\t", " \t "};
    put_str(g, PICK(in, ows));
}

/* A user or password: a few input bytes, or HTTP_CRED_MAX give or take
 * a few letters (so short inputs reach the limit too). */
static size_t gen_cred_part(struct fuzz_in *in, uint8_t *out)
{
    uint8_t l = in_u8(in);
    if (l < 240) {
        size_t n = l % 16u;
        for (size_t i = 0; i < n; i++)
            out[i] = in_u8(in);
        return n;
    }
    size_t n = HTTP_CRED_MAX - 3 + l % 8u;
    uint8_t seed = in_u8(in);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)('a' + (seed + i) % 26u);
    return n;
}

static void gen_auth(struct gen *g, struct fuzz_in *in)
{
    static const char *const schemes[] = {"Basic", "Basic", "basic", "BASIC", "Bearer", "Basi"};
    const char *scheme = PICK(in, schemes);
    bool ok = ci_cmp((const uint8_t *)scheme, strlen(scheme), "basic") == 0;

    /* "user:password" from the input; the split is at its first ':'. */
    uint8_t text[700];
    size_t tn = gen_cred_part(in, text);
    if (in_u8(in) < 240)
        text[tn++] = ':';
    tn += gen_cred_part(in, text + tn);
    const uint8_t *c = memchr(text, ':', tn);
    ok = ok && c != NULL && memchr(text, 0, tn) == NULL;
    size_t u = c ? (size_t)(c - text) : 0, p = c ? tn - u - 1 : 0;
    ok = ok && u <= HTTP_CRED_MAX && p <= HTTP_CRED_MAX;
    if (ok) {
        memcpy(g->want.user, text, u);
        memcpy(g->want.password, c + 1, p);
        g->want.user_len = u;
        g->want.password_len = p;
    }

    char enc[sizeof text / 3 * 4 + 8];
    size_t el = b64_encode(text, tn, enc);
    uint8_t bad = in_u8(in);
    if (bad >= 240 && el > 0) {
        ok = false;
        size_t last = el;
        while (last > 0 && enc[last - 1] == '=')
            last--;
        if (bad % 4 == 0)
            enc[--el] = 0; /* not a multiple of 4 */
        else if (bad % 4 == 1)
            enc[bad % el] = '-'; /* base64url */
        else if (bad % 4 == 2 || last == el)
            enc[bad % el] = ' '; /* a space inside */
        else                     /* a pad bit set: the encoder leaves them 0 [RFC 4648 3.5] */
            enc[last - 1] = B64[(strchr(B64, enc[last - 1]) - B64) | 1];
    }
    if (el == 0)
        ok = false;

    put_str(g, scheme);
    for (uint8_t s = in_u8(in) % 3; s < 3; s++)
        put_str(g, " ");
    put_str(g, enc);
    if (!ok) {
        memset(g->want.user, 0, sizeof g->want.user);
        memset(g->want.password, 0, sizeof g->want.password);
        g->want.user_len = g->want.password_len = 0;
    }
    g->want.has_auth = ok;
    g->want.auth_bad = !ok;
}

static void gen_connection(struct gen *g, struct fuzz_in *in)
{
    static const char *const opts[] = {
        "close", "keep-alive", "Keep-Alive", "CLOSE", "upgrade", "closed", "", "TE", "keep-alive "};
    uint8_t n = in_u8(in) % 4;
    for (uint8_t i = 0; i <= n; i++) {
        const char *o = PICK(in, opts);
        if (i > 0)
            put_str(g, in_u8(in) & 1 ? ", " : ",");
        put_str(g, o);
        g->opt_close = g->opt_close || ci_cmp((const uint8_t *)o, strlen(o), "close") == 0;
        size_t on = strlen(o);
        while (on > 0 && o[on - 1] == ' ')
            on--;
        g->opt_keep = g->opt_keep || ci_cmp((const uint8_t *)o, on, "keep-alive") == 0;
    }
}

static void gen_field(struct gen *g, struct fuzz_in *in)
{
    if (g->fields == HTTP_FIELDS_MAX)
        fault_here(g, 431);
    g->fields++;

    /* Past the end of the input, kind 0 is a plain field, so a run of
     * them reaches HTTP_FIELDS_MAX rather than a second Host. */
    uint8_t kind = (uint8_t)((in_u8(in) + 9u) % 12u);
    static const char *const host_names[] = {"Host", "host", "HOST", "hOsT"};
    static const char *const other_names[] = {"Accept",          "User-Agent",   "X-A", "Hosts",
                                              "Content-Lengths", "Connection-X", "TE"};
    static const struct {
        const char *v;
        uint16_t code;
    } lengths[] = {{"0", 0},  {"00", 0},    {" 0 ", 0},  {"1", 413},   {"9", 413},   {"010", 413},
                   {"", 400}, {"0,0", 400}, {"-0", 400}, {"1e3", 400}, {"0 0", 400}, {"\x80", 400}};
    switch (kind) {
    case 0:
    case 1:
        put_str(g, PICK(in, host_names));
        put_str(g, ":");
        gen_ows(g, in);
        put_str(g, in_u8(in) & 1 ? "127.0.0.1:9100" : "");
        gen_ows(g, in);
        put_str(g, "\r\n");
        if (++g->hosts > 1)
            fault_last(g, 400);
        return;
    case 2: {
        uint8_t i = in_u8(in) % (sizeof lengths / sizeof lengths[0]);
        put_str(g, in_u8(in) & 1 ? "Content-Length:" : "content-LENGTH:");
        gen_ows(g, in);
        put_str(g, lengths[i].v);
        gen_ows(g, in);
        put_str(g, "\r\n");
        if (++g->lengths > 1)
            fault_last(g, 400);
        else if (lengths[i].code != 0)
            fault_last(g, lengths[i].code);
        return;
    }
    case 3:
        if (in_u8(in) < 128) { /* rarely */
            put_str(g, "Transfer-Encoding: chunked\r\n");
            fault_last(g, 501);
            return;
        }
        break;
    case 4:
    case 5:
        put_str(g, in_u8(in) & 1 ? "Connection:" : "connection:");
        gen_ows(g, in);
        gen_connection(g, in);
        gen_ows(g, in);
        put_str(g, "\r\n");
        return;
    case 6:
    case 7:
        put_str(g, in_u8(in) & 1 ? "Authorization:" : "AUTHORIZATION:");
        gen_ows(g, in);
        gen_auth(g, in);
        gen_ows(g, in);
        put_str(g, "\r\n");
        if (++g->auths > 1)
            fault_last(g, 400);
        return;
    case 8: {
        /* A name that is not a token, or an obs-fold. */
        static const char *const bad[] = {"Host : x\r\n", " X: y\r\n", "\tX: y\r\n",  "X(: y\r\n",
                                          ": y\r\n",      "X\r\n",     "X\x01: y\r\n"};
        static const uint8_t at[] = {5, 1, 1, 2, 1, 2, 2};
        uint8_t i = in_u8(in) % (sizeof at);
        if (g->fault_at == 0) {
            g->fault_at = g->n + at[i];
            g->fault = 400;
        }
        put_str(g, bad[i]);
        return;
    }
    default:
        break;
    }
    put_str(g, PICK(in, other_names));
    put_str(g, ":");
    gen_value_bytes(g, in, in_u8(in) % 40);
    put_str(g, "\r\n");
}

static void gen_head(struct gen *g, struct fuzz_in *in)
{
    memset(g, 0, sizeof *g);
    gen_request_line(g, in);
    uint8_t f = in_u8(in);
    unsigned n = f < 224 ? f % 10u : HTTP_FIELDS_MAX - 2 + f % 5u;
    for (unsigned i = 0; i < n && g->n < GEN_MAX - 4096; i++)
        gen_field(g, in);
    put_str(g, "\r\n");
    if (g->want.minor == 1 && g->hosts == 0)
        fault_last(g, 400);
    g->want.keep_alive = !g->opt_close && (g->want.minor == 1 || g->opt_keep);
    g->head_len = g->n;
    g->want.consumed = g->n;
    /* What comes after the head: the rest of the input. */
    size_t rest = in->left < sizeof g->buf - g->n - 64 ? in->left : sizeof g->buf - g->n - 64;
    put(g, in->p, rest);
}

static void check_generated(size_t max, struct fuzz_in *in)
{
    static struct gen g;
    gen_head(&g, in);
    struct verdict v = check_stream(g.buf, g.n, max);

    if (g.fault_at != 0 && g.fault_at <= max) {
        CHECK(v.st == HTTP_BAD && v.at == g.fault_at && v.r.error == g.fault);
    } else if (g.head_len <= max) {
        CHECK(g.fault_at == 0);
        CHECK(v.st == HTTP_DONE && v.at == g.head_len);
        const struct http_request *r = &v.r, *w = &g.want;
        CHECK(r->consumed == w->consumed && r->method == w->method && r->minor == w->minor);
        CHECK(r->keep_alive == w->keep_alive);
        CHECK(r->path_len == w->path_len && strcmp(r->path, w->path) == 0);
        CHECK(r->has_auth == w->has_auth && r->auth_bad == w->auth_bad);
        CHECK(r->user_len == w->user_len && memcmp(r->user, w->user, w->user_len) == 0);
        CHECK(r->password_len == w->password_len &&
              memcmp(r->password, w->password, w->password_len) == 0);
    } else {
        CHECK(v.st == HTTP_BAD && v.at == max && v.r.error == 431);
    }
}

/* ------------------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t mode = in_u8(&in);
    static const size_t maxes[3] = {64, 256, HTTP_HEAD_MAX_DEFAULT};
    size_t max = (mode & 3) < 3 ? maxes[mode & 3] : 64 + in_u16(&in) % (2 * HTTP_HEAD_MAX_DEFAULT);
    static uint8_t buf[GEN_MAX];

    switch (mode >> 2 & 3) {
    case 0:
        check_stream(in.p, in.left, max);
        break;
    case 1: {
        static const char *const starts[] = {
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n",
            "GET / HTTP/1.0\r\n",
            "HEAD /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ",
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: ",
        };
        const char *s = starts[in_u8(&in) % 4];
        size_t n = strlen(s);
        memcpy(buf, s, n);
        size_t rest = in.left < sizeof buf - n ? in.left : sizeof buf - n;
        memcpy(buf + n, in.p, rest);
        check_stream(buf, n + rest, max);
        break;
    }
    default:
        check_generated(max, &in);
        break;
    }
    return 0;
}
