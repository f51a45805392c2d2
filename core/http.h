/*
 * HTTP/1.1 request heads (RFC 9110, RFC 9112) for the metrics endpoint
 * (net/metrics_http.c): a pure parser of what a scraper, curl or an
 * attacker sends before the broker answers.
 *
 * Like core/proxy.h it keeps no state between calls: the endpoint keeps a
 * connection's bytes until http_parse() says DONE or BAD, calling it again
 * on the whole grown prefix after every read (a head is at most
 * max_head bytes and almost always arrives in one segment). It never
 * allocates, never writes to the input, and the result holds no pointer
 * into it. Any thread may call it.
 *
 * What it takes is deliberately narrow, because the only requests worth
 * answering are GETs of a few fixed paths:
 *  - request line "METHOD SP origin-form SP HTTP/1.x CRLF"; the method a
 *    token (any: the endpoint answers 405 to all but GET and HEAD), the
 *    target starting with '/', visible ASCII only; the query is cut off
 *    (not part of path); HTTP/1.0 and HTTP/1.1 (a well-formed other
 *    version: 505);
 *  - lines end in CRLF (a bare CR or LF, NUL or a control byte other
 *    than HTAB in a field value: 400); up to HTTP_LEADING_CRLF_MAX empty lines before the
 *    request line are skipped (RFC 9112 2.2);
 *  - header fields "name: value" with a token name, no space before the
 *    colon, no obs-fold (400); at most HTTP_FIELDS_MAX of them (431);
 *  - HTTP/1.1 needs exactly one Host; more than one is 400 in any version;
 *  - no body: a Content-Length whose value is not zero ("00" is) is 413, any Transfer-Encoding
 *    is 501; two Content-Length fields are 400;
 *  - Connection: its comma-separated options, case-insensitively:
 *    "close" and "keep-alive" decide keep_alive (1.1 keeps alive unless
 *    "close"; 1.0 only with "keep-alive");
 *  - Authorization: "Basic" (case-insensitive) and base64 of
 *    "user:password" (RFC 7617; padding required, no whitespace inside);
 *    anything else in that field sets auth_bad instead of has_auth, so
 *    the endpoint answers 401. Two Authorization fields are 400.
 */
#ifndef RINGMQ_HTTP_H
#define RINGMQ_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the endpoint passes as max_head: a scraper's head is under 300
 * bytes; curl's under 200. */
#define HTTP_HEAD_MAX_DEFAULT 8192u
#define HTTP_HEAD_MIN         64u  /* the smallest max_head */
#define HTTP_PATH_MAX         255u /* longer target (query included): 414 */
#define HTTP_FIELDS_MAX       64u
#define HTTP_LEADING_CRLF_MAX 4u
#define HTTP_CRED_MAX         255u /* a longer user or password: auth_bad */

enum http_status {
    HTTP_BAD = -1,      /* answer error (a 4xx or 5xx) and close */
    HTTP_NEED_MORE = 0, /* a valid prefix: keep the bytes, call again with more */
    HTTP_DONE = 1,      /* a whole head: the next request starts at consumed */
};

enum http_method {
    HTTP_METHOD_GET,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_OTHER, /* a valid token, not served: 405 */
};

struct http_request {
    size_t consumed;              /* DONE: the head's length, its final CRLF CRLF included */
    uint16_t error;               /* BAD: 400, 413, 414, 431, 501 or 505; 0 otherwise */
    uint8_t method;               /* enum http_method */
    uint8_t minor;                /* 0 or 1: HTTP/1.0 or HTTP/1.1 */
    bool keep_alive;              /* the connection may carry another request */
    bool has_auth;                /* a well-formed Basic credential is in user and password */
    bool auth_bad;                /* an Authorization field that is not one */
    size_t path_len;              /* the target up to '?' (or its end) */
    char path[HTTP_PATH_MAX + 1]; /* NUL-terminated, not percent-decoded */
    size_t user_len;
    char user[HTTP_CRED_MAX + 1]; /* NUL-terminated; may hold no NUL inside */
    size_t password_len;
    char password[HTTP_CRED_MAX + 1]; /* NUL-terminated; may hold no NUL inside */
};

/* Parses the request head at the start of buf[0..len). max_head (at
 * least HTTP_HEAD_MIN) bounds the head: without its end by then, BAD with
 * 431. On BAD, error says what to answer and out is otherwise zeroed (no
 * decoded password is left in it); on NEED_MORE out is zeroed. A decoded
 * credential holding a NUL byte is auth_bad. The verdict is monotonic in
 * len: each error is decided at one byte (see http.c), the first one in
 * the bytes wins, and bytes past a DONE head or a BAD byte never change
 * the result. */
enum http_status http_parse(const uint8_t *buf, size_t len, size_t max_head,
                            struct http_request *out);

#endif
