/*
 * The metrics endpoint (metrics_listener): HTTP/1.1 on a thread of its
 * own, off the shards and off the main thread (whose memory sampler and
 * signals must not wait behind a scrape or a basic-auth hash).
 *
 *   GET /metrics   the Prometheus text format 0.0.4 (metrics_text.c)
 *   GET /healthz   200 while the process runs
 *   GET /readyz    200 when every shard is turning its loop, none refuses
 *                  new connections for overload, memory is under
 *                  memory_limit and the broker is not stopping; else 503
 *                  with the reason
 *   HEAD           the same heads without a body
 *
 * Bounded against a bad client: METRICS_HTTP_CONNS connections at once
 * (a new one past that takes the slot of the connection that has been
 * idle or sending a partial head the longest; when every slot is answering
 * a request, the new one is closed); a head of at most
 * HTTP_HEAD_MAX_DEFAULT bytes (core/http.h) that must be whole within
 * METRICS_HTTP_HEAD_MS of its first byte; an answer that must be taken
 * within METRICS_HTTP_WRITE_MS; an idle kept-alive connection is closed
 * after METRICS_HTTP_IDLE_MS. Sockets are non-blocking and polled, so a
 * slow client delays nobody. A malformed request gets its 4xx/5xx
 * (core/http.h) and the connection is closed.
 *
 * metrics_password_file: /metrics wants HTTP basic auth checked against
 * that mosquitto password file (in the security snapshot, reloaded with
 * it); /healthz and /readyz do not (probes carry no credentials and learn
 * nothing but up/ready). A verified credential is remembered
 * (security/cred_cache.h, auth_cache_seconds), so a scraper costs one hash
 * per reload, not one per scrape.
 */
#ifndef RINGMQ_METRICS_HTTP_H
#define RINGMQ_METRICS_HTTP_H

#include <stddef.h>

struct broker;

#define METRICS_HTTP_CONNS    8u
#define METRICS_HTTP_HEAD_MS  10000u
#define METRICS_HTTP_WRITE_MS 10000u
#define METRICS_HTTP_IDLE_MS  120000u

/* Binds metrics_listener (if configured) and starts the thread; b->metrics
 * stays NULL when it is off. 0, or -1 with "file:line: ..." in err. The
 * shards need not run yet. */
int metrics_http_start(struct broker *b, char *err, size_t errlen);

/* Stops the thread, closes every socket and frees; NULL-safe. */
void metrics_http_stop(struct broker *b);

/* metrics_text.c: the whole /metrics body for b, malloc'd, in *len bytes
 * (not NUL-terminated); NULL when out of memory. ready: ringmq_ready's
 * value (0 or 1), or -1 to leave it out. Reads the shards' counters and
 * the broker's atomics; any thread. */
char *metrics_text(struct broker *b, int ready, size_t *len);

#endif
