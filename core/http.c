/*
 * HTTP/1.1 request heads: a stateless parser that the metrics endpoint
 * calls on the growing prefix of a connection's input (see http.h for the
 * contract). Rules are cited as [RFC 9112 x.y], [RFC 9110 x.y] and
 * [RFC 7617 x], the base64 alphabet as [RFC 4648 4].
 *
 * The head is read as a grammar, byte by byte, like core/proxy.c's v1
 * line, so a prefix is refused at the first byte that no valid head has
 * there, and every error is decided at one byte: the byte itself for a
 * byte that does not fit (400), the byte that makes the target longer
 * than HTTP_PATH_MAX (414), the first byte of a field line past
 * HTTP_FIELDS_MAX (431), the LF that ends the request line for a version
 * that is well-formed but not 1.0 or 1.1 (505: until then "HTTP/2.0x"
 * could still be a 400), the LF that ends a field line for what that
 * field means (Host, Content-Length, Transfer-Encoding, Authorization),
 * the LF that ends the head for a missing Host; without any of these
 * within max_head bytes, 431. The first error in the bytes is the one
 * reported, so more bytes never change a verdict, and only the first
 * max_head bytes are ever read.
 *
 * Pure: no allocation, no globals but constant strings, no syscalls; the
 * input is never written. Any thread. A call is O(min(len, max_head)):
 * each byte is read once by the grammar and once more at most, when its
 * field's value is interpreted.
 */
#include "http.h"

#include <string.h>

#include "invariant.h"

/* HTTP_HEAD_MIN: a request line of a short target and a Host field fit;
 * anything smaller would refuse real scrapers. */
#define HEAD_MIN HTTP_HEAD_MIN

/* The decoded "user:password" with both at their maximum. */
#define CRED_TEXT_MAX (2u * HTTP_CRED_MAX + 1u)

_Static_assert(HTTP_HEAD_MAX_DEFAULT >= HEAD_MIN, "default within bounds");
_Static_assert(CRED_TEXT_MAX < HTTP_HEAD_MAX_DEFAULT, "a maximal credential fits a default head");

#define E_BAD_REQUEST  400u
#define E_TOO_LARGE    413u /* Content Too Large [RFC 9110 15.5.14] */
#define E_URI_TOO_LONG 414u /* [RFC 9110 15.5.15] */
#define E_FIELDS_LARGE 431u /* Request Header Fields Too Large [RFC 6585 5] */
#define E_NOT_IMPL     501u /* [RFC 9110 15.6.2] */
#define E_VERSION      505u /* HTTP Version Not Supported [RFC 9110 15.6.6] */

/* A step of the grammar: the piece is complete (OK), the bytes ran out
 * while everything so far can still begin a valid head (MORE), or not
 * (BAD, c->error says what to answer). */
enum step {
    STEP_BAD = -1,
    STEP_MORE = 0,
    STEP_OK = 1,
};

#define TRY_STEP(expr)                                                                             \
    do {                                                                                           \
        enum step try_step_ = (expr);                                                              \
        if (try_step_ != STEP_OK)                                                                  \
            return try_step_;                                                                      \
    } while (0)

struct cur {
    const uint8_t *p;
    size_t len; /* bytes that may belong to the head: at most max_head */
    size_t pos;
    uint16_t error;
};

/* What the fields said, as far as the head has been read. */
struct fields {
    unsigned count;
    unsigned hosts;
    unsigned lengths;
    unsigned auths;
    bool opt_close; /* Connection: close */
    bool opt_keep;  /* Connection: keep-alive */
};

static enum step bad(struct cur *c, uint16_t error)
{
    c->error = error;
    return STEP_BAD;
}

static bool at_end(const struct cur *c)
{
    return c->pos >= c->len;
}

static uint8_t peek(const struct cur *c)
{
    return c->p[c->pos];
}

static bool is_digit(uint8_t b)
{
    return b >= '0' && b <= '9';
}

static bool is_alpha(uint8_t b)
{
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
}

/* tchar [RFC 9110 5.6.2] */
static bool is_tchar(uint8_t b)
{
    return is_alpha(b) || is_digit(b) || (b != 0 && strchr("!#$%&'*+-.^_`|~", b) != NULL);
}

/* What a field value may hold [RFC 9110 5.5]: field-vchar (VCHAR and
 * obs-text) and the SP / HTAB between them; no other control byte, and no
 * CR or LF outside the line's end [RFC 9112 2.2]. */
static bool is_value_byte(uint8_t b)
{
    return b == ' ' || b == '\t' || (b >= 0x21 && b != 0x7F);
}

static bool is_ows(uint8_t b)
{
    return b == ' ' || b == '\t';
}

static uint8_t lower(uint8_t b)
{
    return b >= 'A' && b <= 'Z' ? (uint8_t)(b + ('a' - 'A')) : b;
}

/* s[0..n) is lit (lower case), ignoring the case of ASCII letters. */
static bool ci_equal(const uint8_t *s, size_t n, const char *lit)
{
    if (n != strlen(lit))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (lower(s[i]) != (uint8_t)lit[i])
            return false;
    }
    return true;
}

static enum step literal(struct cur *c, const char *lit)
{
    for (size_t i = 0; lit[i] != 0; i++, c->pos++) {
        if (at_end(c))
            return STEP_MORE;
        if (peek(c) != (uint8_t)lit[i])
            return bad(c, E_BAD_REQUEST);
    }
    return STEP_OK;
}

/* CR at c->pos, then LF: a bare CR is invalid, and a bare LF, which a
 * recipient "MAY" take as a line end, is refused too [RFC 9112 2.2]: two
 * parsers that split the same bytes into different lines are how
 * requests are smuggled past a proxy. */
static enum step crlf(struct cur *c)
{
    return literal(c, "\r\n");
}

/* ------------------------------------------------------------------------ */
/* The request line [RFC 9112 3]                                             */
/* ------------------------------------------------------------------------ */

/* "In the interest of robustness, a server that is expecting to receive
 * and parse a request-line SHOULD ignore at least one empty line (CRLF)
 * received prior to the request-line" [RFC 9112 2.2]: a few, not a
 * stream of them. */
static enum step leading_lines(struct cur *c)
{
    for (unsigned n = 0;; n++) {
        if (at_end(c))
            return STEP_MORE;
        if (peek(c) != '\r')
            return STEP_OK;
        if (n == HTTP_LEADING_CRLF_MAX)
            return bad(c, E_BAD_REQUEST);
        TRY_STEP(crlf(c));
    }
}

/* method = token, then one SP [RFC 9112 3.1]; methods are case-sensitive
 * [RFC 9110 9.1]. */
static enum step method(struct cur *c, struct http_request *r)
{
    const size_t start = c->pos;

    for (;; c->pos++) {
        if (at_end(c))
            return STEP_MORE;
        if (peek(c) == ' ' && c->pos > start)
            break;
        if (!is_tchar(peek(c)))
            return bad(c, E_BAD_REQUEST);
    }
    const uint8_t *m = c->p + start;
    const size_t n = c->pos - start;
    if (n == 3 && memcmp(m, "GET", 3) == 0)
        r->method = HTTP_METHOD_GET;
    else if (n == 4 && memcmp(m, "HEAD", 4) == 0)
        r->method = HTTP_METHOD_HEAD;
    else
        r->method = HTTP_METHOD_OTHER;
    c->pos++;
    return STEP_OK;
}

/* origin-form, then one SP [RFC 9112 3.2.1]: '/' and visible ASCII, the
 * path up to the first '?'. Its characters are not checked against RFC
 * 3986 beyond that: the endpoint compares the path with a few fixed
 * strings, and a stray character only makes it a 404. */
static enum step target(struct cur *c, struct http_request *r)
{
    size_t n = 0;
    bool query = false;

    if (at_end(c))
        return STEP_MORE;
    if (peek(c) != '/') /* also a second SP after the method */
        return bad(c, E_BAD_REQUEST);
    for (;; c->pos++) {
        if (at_end(c))
            return STEP_MORE;
        const uint8_t b = peek(c);
        if (b == ' ')
            break;
        if (b < 0x21 || b > 0x7E)
            return bad(c, E_BAD_REQUEST);
        if (++n > HTTP_PATH_MAX) /* [RFC 9112 3] "SHOULD respond with a 414" */
            return bad(c, E_URI_TOO_LONG);
        query = query || b == '?';
        if (!query)
            r->path[r->path_len++] = (char)b;
    }
    ASSERT(r->path_len >= 1 && r->path_len <= HTTP_PATH_MAX);
    r->path[r->path_len] = 0;
    c->pos++;
    return STEP_OK;
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive [RFC 9112 2.3],
 * then CRLF. A well-formed version other than 1.0 and 1.1 is 505 once the
 * line is whole. */
static enum step version(struct cur *c, struct http_request *r)
{
    uint8_t major, minor;

    TRY_STEP(literal(c, "HTTP/"));
    if (at_end(c))
        return STEP_MORE;
    major = peek(c);
    if (!is_digit(major))
        return bad(c, E_BAD_REQUEST);
    c->pos++;
    TRY_STEP(literal(c, "."));
    if (at_end(c))
        return STEP_MORE;
    minor = peek(c);
    if (!is_digit(minor))
        return bad(c, E_BAD_REQUEST);
    c->pos++;
    TRY_STEP(crlf(c));
    if (major != '1' || (minor != '0' && minor != '1'))
        return bad(c, E_VERSION);
    r->minor = (uint8_t)(minor - '0');
    return STEP_OK;
}

static enum step request_line(struct cur *c, struct http_request *r)
{
    TRY_STEP(leading_lines(c));
    TRY_STEP(method(c, r));
    TRY_STEP(target(c, r));
    return version(c, r);
}

/* ------------------------------------------------------------------------ */
/* Authorization: Basic [RFC 7617]                                           */
/* ------------------------------------------------------------------------ */

/* [RFC 4648 4] */
static int b64_value(uint8_t b)
{
    if (b >= 'A' && b <= 'Z')
        return b - 'A';
    if (b >= 'a' && b <= 'z')
        return b - 'a' + 26;
    if (is_digit(b))
        return b - '0' + 52;
    if (b == '+')
        return 62;
    if (b == '/')
        return 63;
    return -1;
}

/* Where decoded bytes go: the user-id up to the first ':', the password
 * after it [RFC 7617 2], written straight into the result so that no
 * other copy of the password is left on the stack. */
struct cred_sink {
    struct http_request *r;
    bool colon;
};

static bool cred_put(struct cred_sink *s, uint8_t b)
{
    struct http_request *r = s->r;

    if (b == 0) /* http.h: "may hold no NUL inside" */
        return false;
    if (!s->colon && b == ':') {
        s->colon = true;
        return true;
    }
    if (!s->colon) {
        if (r->user_len == HTTP_CRED_MAX)
            return false;
        r->user[r->user_len++] = (char)b;
    } else {
        if (r->password_len == HTTP_CRED_MAX)
            return false;
        r->password[r->password_len++] = (char)b;
    }
    return true;
}

/*
 * token68 as strict base64: the RFC 4648 alphabet, a length that is a
 * multiple of 4, '=' only as the padding of the last group, and zero pad
 * bits, which every encoder writes and which "MAY" be required [RFC 4648
 * 3.5]: one credential has one spelling. No whitespace inside.
 */
static bool basic_credentials(const uint8_t *s, size_t n, struct http_request *r)
{
    struct cred_sink sink = {.r = r};

    /* Groups that cannot decode to CRED_TEXT_MAX bytes or fewer (the last
     * one may shed two to padding) need not be read. */
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > CRED_TEXT_MAX + 2)
        return false;
    for (size_t i = 0; i < n; i += 4) {
        unsigned pad = 0;
        if (i + 4 == n && s[i + 3] == '=')
            pad = s[i + 2] == '=' ? 2 : 1;
        uint32_t bits = 0;
        for (unsigned j = 0; j < 4 - pad; j++) {
            int v = b64_value(s[i + j]);
            if (v < 0)
                return false;
            bits |= (uint32_t)v << (18 - 6 * j);
        }
        if ((pad == 1 && (bits & 0xFFu) != 0) || (pad == 2 && (bits & 0xFFFFu) != 0))
            return false;
        for (unsigned k = 0; k < 3 - pad; k++) {
            if (!cred_put(&sink, (uint8_t)(bits >> (16 - 8 * k))))
                return false;
        }
    }
    return sink.colon;
}

/* credentials = auth-scheme 1*SP token68 [RFC 9110 11.4, 11.6.2]; the
 * scheme is case-insensitive [RFC 7617 2]. Anything that is not a good
 * Basic credential is for the endpoint to answer 401. */
static void authorization(const uint8_t *v, size_t n, struct http_request *r)
{
    size_t scheme = 0;

    while (scheme < n && v[scheme] != ' ')
        scheme++;
    size_t cred = scheme;
    while (cred < n && v[cred] == ' ')
        cred++;
    if (ci_equal(v, scheme, "basic") && cred > scheme && basic_credentials(v + cred, n - cred, r)) {
        r->user[r->user_len] = 0;
        r->password[r->password_len] = 0;
        r->has_auth = true;
        return;
    }
    memset(r->user, 0, sizeof r->user);
    memset(r->password, 0, sizeof r->password);
    r->user_len = 0;
    r->password_len = 0;
    r->auth_bad = true;
}

/* ------------------------------------------------------------------------ */
/* Header fields [RFC 9112 5]                                                */
/* ------------------------------------------------------------------------ */

/* Connection = #connection-option [RFC 9110 7.6.1]: empty list elements
 * are allowed [RFC 9110 5.6.1]; unknown options are not ours to judge. */
static void connection(const uint8_t *v, size_t n, struct fields *f)
{
    for (size_t i = 0; i <= n;) {
        size_t end = i;
        while (end < n && v[end] != ',')
            end++;
        size_t a = i, b = end;
        while (a < b && is_ows(v[a]))
            a++;
        while (b > a && is_ows(v[b - 1]))
            b--;
        f->opt_close = f->opt_close || ci_equal(v + a, b - a, "close");
        f->opt_keep = f->opt_keep || ci_equal(v + a, b - a, "keep-alive");
        i = end + 1;
    }
}

/* Content-Length = 1*DIGIT [RFC 9110 8.6]: a head with a body is not a
 * request the endpoint serves, and is refused before the body comes. */
static enum step content_length(struct cur *c, const uint8_t *v, size_t n)
{
    bool zero = true;

    if (n == 0)
        return bad(c, E_BAD_REQUEST);
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(v[i])) /* also a list, "0, 0" [RFC 9112 6.3] */
            return bad(c, E_BAD_REQUEST);
        zero = zero && v[i] == '0';
    }
    return zero ? STEP_OK : bad(c, E_TOO_LARGE);
}

/* What the field whose line just ended means: its name is
 * c->p[name..name + name_len), its value (OWS trimmed [RFC 9112 5.1]) is
 * worked out here. */
static enum step field_meaning(struct cur *c, struct fields *f, struct http_request *r, size_t name,
                               size_t name_len, size_t val, size_t val_end)
{
    const uint8_t *n = c->p + name;

    while (val < val_end && is_ows(c->p[val]))
        val++;
    while (val_end > val && is_ows(c->p[val_end - 1]))
        val_end--;
    const uint8_t *v = c->p + val;
    const size_t vlen = val_end - val;

    if (ci_equal(n, name_len, "host")) {
        /* [RFC 9112 3.2] "more than one Host header field line": 400 */
        if (++f->hosts > 1)
            return bad(c, E_BAD_REQUEST);
    } else if (ci_equal(n, name_len, "content-length")) {
        if (++f->lengths > 1) /* [RFC 9112 6.3] framing it cannot trust */
            return bad(c, E_BAD_REQUEST);
        return content_length(c, v, vlen);
    } else if (ci_equal(n, name_len, "transfer-encoding")) {
        return bad(c, E_NOT_IMPL); /* [RFC 9112 6.1] a body, chunked or not */
    } else if (ci_equal(n, name_len, "connection")) {
        connection(v, vlen, f);
    } else if (ci_equal(n, name_len, "authorization")) {
        if (++f->auths > 1)
            return bad(c, E_BAD_REQUEST); /* which one would be the client? */
        authorization(v, vlen, r);
    }
    return STEP_OK;
}

/* field-line = field-name ":" OWS field-value OWS, then CRLF [RFC 9112
 * 5]: a token name with no whitespace before the colon [RFC 9112 5.1], no
 * obs-fold (a line starting with SP or HTAB) [RFC 9112 5.2]. */
static enum step field_line(struct cur *c, struct fields *f, struct http_request *r)
{
    const size_t name = c->pos;

    for (;; c->pos++) {
        if (at_end(c))
            return STEP_MORE;
        if (peek(c) == ':' && c->pos > name)
            break;
        if (!is_tchar(peek(c)))
            return bad(c, E_BAD_REQUEST);
    }
    const size_t name_len = c->pos - name;
    const size_t val = ++c->pos;
    for (;; c->pos++) {
        if (at_end(c))
            return STEP_MORE;
        if (peek(c) == '\r')
            break;
        if (!is_value_byte(peek(c)))
            return bad(c, E_BAD_REQUEST);
    }
    const size_t val_end = c->pos;
    TRY_STEP(crlf(c));
    return field_meaning(c, f, r, name, name_len, val, val_end);
}

/* The field lines, then the empty line that ends the head. */
static enum step field_lines(struct cur *c, struct fields *f, struct http_request *r)
{
    for (;;) {
        if (at_end(c))
            return STEP_MORE;
        if (peek(c) == '\r')
            return crlf(c);
        if (f->count == HTTP_FIELDS_MAX)
            return bad(c, E_FIELDS_LARGE);
        f->count++;
        TRY_STEP(field_line(c, f, r));
    }
}

static enum step head(struct cur *c, struct http_request *r)
{
    struct fields f = {0};

    TRY_STEP(request_line(c, r));
    TRY_STEP(field_lines(c, &f, r));
    /* [RFC 9112 3.2] "any HTTP/1.1 request message that lacks a Host" */
    if (r->minor == 1 && f.hosts == 0)
        return bad(c, E_BAD_REQUEST);
    /* [RFC 9112 9.3]: close wins; 1.1 persists by default, 1.0 only when
     * asked to. */
    r->keep_alive = !f.opt_close && (r->minor == 1 || f.opt_keep);
    return STEP_OK;
}

/* ------------------------------------------------------------------------ */

enum http_status http_parse(const uint8_t *buf, size_t len, size_t max_head,
                            struct http_request *out)
{
    ASSERT(out != NULL);
    ASSERT(buf != NULL || len == 0);
    ASSERT(max_head >= HEAD_MIN);

    memset(out, 0, sizeof *out);
    struct cur c = {.p = buf, .len = len < max_head ? len : max_head};
    enum step st = head(&c, out);
    if (st == STEP_MORE && len >= max_head)
        st = bad(&c, E_FIELDS_LARGE); /* [RFC 9110 5.4] a limit of our own */
    if (st == STEP_OK) {
        ASSERT(c.pos >= 4 && c.pos <= len && c.pos <= max_head);
        ASSERT(memcmp(buf + c.pos - 4, "\r\n\r\n", 4) == 0);
        ASSERT(out->path_len == strlen(out->path) && out->path[0] == '/');
        ASSERT(!(out->has_auth && out->auth_bad));
        ASSERT(out->has_auth || (out->user_len == 0 && out->password_len == 0));
        out->consumed = c.pos;
        return HTTP_DONE;
    }
    /* The password may have been decoded before a later byte was bad. */
    memset(out, 0, sizeof *out);
    if (st == STEP_MORE) {
        ASSERT(len < max_head); /* the bound on what the endpoint buffers */
        return HTTP_NEED_MORE;
    }
    ASSERT(c.error != 0);
    out->error = c.error;
    return HTTP_BAD;
}
