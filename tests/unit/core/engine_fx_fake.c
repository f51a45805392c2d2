/*
 * Fake effects for the engine's unit tests: see engine_fx_fake.h.
 */
#include "engine_fx_fake.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct fake_fx fake;
struct fake_conn *fake_conns;

static uint64_t next_conn_id;

/* ---- the cross-shard queues ------------------------------------------------ */

struct fake_queue {
    void **v;
    size_t head, n, cap;
};
static struct fake_queue queues[FAKE_SHARDS][FAKE_SHARDS];

void engine_fx_post(struct engine *en, unsigned to, void *item)
{
    cr_assert_lt(en->id, FAKE_SHARDS);
    cr_assert_lt(to, FAKE_SHARDS);
    cr_assert_neq(en->id, to, "a shard posts to itself");
    struct fake_queue *q = &queues[en->id][to];
    if (q->head + q->n == q->cap) {
        if (q->head) {
            memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
            q->head = 0;
        } else {
            size_t cap = q->cap ? q->cap * 2 : 16;
            void **v = realloc(q->v, cap * sizeof(*v));
            cr_assert_not_null(v);
            q->v = v;
            q->cap = cap;
        }
    }
    q->v[q->head + q->n++] = item;
}

void *fake_queue_pop(unsigned from, unsigned to)
{
    struct fake_queue *q = &queues[from][to];
    if (q->n == 0)
        return NULL;
    void *item = q->v[q->head++];
    if (--q->n == 0)
        q->head = 0;
    return item;
}

size_t fake_queue_len(unsigned from, unsigned to)
{
    return queues[from][to].n;
}

static void queues_free(void)
{
    for (unsigned i = 0; i < FAKE_SHARDS; i++) {
        for (unsigned j = 0; j < FAKE_SHARDS; j++) {
            struct fake_queue *q = &queues[i][j];
            for (void *item; (item = fake_queue_pop(i, j));) {
                struct engine_env *e = engine_env_of(item);
                if (!e) {
                    msg_unref(item);
                    continue;
                }
                if (e->type == ENGINE_ENV_SHARED)
                    msg_unref(e->msg);
                if (e->type != ENGINE_ENV_ADOPT)
                    engine_env_discard(e);
                free(e);
            }
            free(q->v);
            memset(q, 0, sizeof(*q));
        }
    }
}

/* ---- connections ------------------------------------------------------------- */

struct fake_conn *fake_conn_new(struct engine *en)
{
    struct fake_conn *fc = calloc(1, sizeof(*fc));
    cr_assert_not_null(fc);
    engine_conn_init(&fc->e, en, ++next_conn_id);
    snprintf(fc->e.who.peer, sizeof(fc->e.who.peer), "fake:%llu", (unsigned long long)fc->e.id);
    fc->reading = true;
    struct fake_conn **pp = &fake_conns;
    while (*pp)
        pp = &(*pp)->next;
    *pp = fc;
    return fc;
}

void fake_conn_free(struct fake_conn *fc)
{
    cr_assert_eq(fc->holds, 0, "connection %llu freed while held", (unsigned long long)fc->e.id);
    cr_assert_null(fc->auth, "an authentication exchange was not ended");
    engine_conn_fini(&fc->e);
    buf_free(&fc->rx);
    struct fake_conn **pp = &fake_conns;
    while (*pp != fc)
        pp = &(*pp)->next;
    *pp = fc->next;
    free(fc);
}

void engine_fx_output(struct engine_conn *c)
{
    fake_conn_of(c)->output = true;
}

void engine_fx_read_stop(struct engine_conn *c)
{
    fake_conn_of(c)->reading = false;
}

void engine_fx_read_start(struct engine_conn *c)
{
    fake_conn_of(c)->reading = true;
}

void engine_fx_yield(struct engine_conn *c)
{
    fake_conn_of(c)->resume_due = true;
}

void engine_fx_close(struct engine_conn *c, const char *why)
{
    struct fake_conn *fc = fake_conn_of(c);
    cr_assert_not(fc->closed, "engine_fx_close twice");
    cr_assert_eq(c->phase, ENGINE_CLOSED, "closed without ENGINE_CLOSED");
    fc->closed = true;
    snprintf(fc->why, sizeof(fc->why), "%s", why ? why : "");
}

void engine_fx_hold(struct engine_conn *c)
{
    fake_conn_of(c)->holds++;
}

void engine_fx_release(struct engine_conn *c)
{
    struct fake_conn *fc = fake_conn_of(c);
    cr_assert_gt(fc->holds, 0, "released more than held");
    fc->holds--;
}

/* ---- the shard ------------------------------------------------------------------ */

bool engine_fx_congested(const struct engine *en)
{
    (void)en;
    return fake.congested;
}

void engine_fx_retain_lock(struct engine *en, bool write)
{
    (void)en;
    cr_assert_eq(fake.retain_writers, 0, "retain lock taken under a writer");
    if (write) {
        cr_assert_eq(fake.retain_readers, 0, "retain write lock taken under a reader");
        fake.retain_writers++;
    } else {
        fake.retain_readers++;
    }
    fake.retain_locks++;
}

void engine_fx_retain_unlock(struct engine *en, bool write)
{
    (void)en;
    if (write) {
        cr_assert_eq(fake.retain_writers, 1, "retain write unlock without the lock");
        fake.retain_writers--;
    } else {
        cr_assert_gt(fake.retain_readers, 0, "retain read unlock without the lock");
        fake.retain_readers--;
    }
}

void engine_fx_timer(struct engine *en, struct engine_timer *t)
{
    (void)en;
    (void)t;
    fake.runtime_timers++;
}

/* ---- security --------------------------------------------------------------------- */

void fake_deny(unsigned access, const char *prefix)
{
    cr_assert_lt(fake.deny_n, sizeof(fake.deny) / sizeof(fake.deny[0]));
    struct fake_deny *d = &fake.deny[fake.deny_n++];
    d->access = access;
    snprintf(d->prefix, sizeof(d->prefix), "%s", prefix);
}

uint64_t engine_fx_policy(const struct engine *en, uint32_t listener)
{
    (void)en;
    (void)listener;
    /* A new generation with every rule added, as a reload would make. */
    return fake.deny_n ? 1000u + fake.deny_n : 0;
}

bool engine_fx_allowed(const struct engine *en, const struct engine_identity *who,
                       const uint8_t *client_id, size_t client_id_len, enum engine_access access,
                       const uint8_t *topic, size_t len)
{
    (void)en;
    (void)who;
    (void)client_id;
    (void)client_id_len;
    for (unsigned i = 0; i < fake.deny_n; i++) {
        const struct fake_deny *d = &fake.deny[i];
        size_t pl = strlen(d->prefix);
        if ((d->access & (unsigned)access) && len >= pl && memcmp(topic, d->prefix, pl) == 0)
            return false;
    }
    return true;
}

uint8_t engine_fx_admit(struct engine_conn *c, const uint8_t *client_id, size_t client_id_len,
                        const uint8_t *username, size_t username_len, bool count, const char **why)
{
    (void)c;
    (void)client_id;
    (void)client_id_len;
    (void)username;
    (void)username_len;
    fake.admits++;
    fake.admits_counted += count;
    if (fake.admit_rc)
        *why = "fake refusal";
    return fake.admit_rc;
}

void engine_fx_login_failed(struct engine_conn *c)
{
    (void)c;
    fake.login_failures++;
}

uint8_t engine_fx_login(struct engine_conn *c, const struct engine_login *l, const char **why)
{
    fake.logins++;
    if (fake.login_pending) {
        fake_conn_of(c)->login_waits = true;
        return ENGINE_LOGIN_PENDING;
    }
    if (!l->has_username) {
        *why = "anonymous";
        return fake.anonymous ? MQTT_RC_SUCCESS : MQTT_RC_NOT_AUTHORIZED;
    }
    if (l->username_len == 1 && l->username[0] == 'u' && l->has_password && l->password_len == 1 &&
        l->password[0] == 'p')
        return MQTT_RC_SUCCESS;
    *why = "bad username or password";
    return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

#define FAKE_METHOD      "FAKE-2STEP"
#define FAKE_METHOD_PLUS "FAKE-2STEP-PLUS" /* bound to TLS: needs tls_exporter_ok */

struct fake_auth {
    int step;
};

uint32_t engine_fx_auth_method(const struct engine *en, const uint8_t *name, size_t len)
{
    (void)en;
    if (len == strlen(FAKE_METHOD) && memcmp(name, FAKE_METHOD, len) == 0)
        return FAKE_AUTH_METHOD;
    if (len == strlen(FAKE_METHOD_PLUS) && memcmp(name, FAKE_METHOD_PLUS, len) == 0)
        return FAKE_AUTH_METHOD_PLUS;
    return 0;
}

const char *engine_fx_auth_method_name(uint32_t method)
{
    cr_assert(method == FAKE_AUTH_METHOD || method == FAKE_AUTH_METHOD_PLUS,
              "auth method %u was never offered", (unsigned)method);
    return method == FAKE_AUTH_METHOD_PLUS ? FAKE_METHOD_PLUS : FAKE_METHOD;
}

bool engine_fx_auth_usable(const struct engine_conn *c, uint32_t method)
{
    cr_assert(method == FAKE_AUTH_METHOD || method == FAKE_AUTH_METHOD_PLUS,
              "auth method %u was never offered", (unsigned)method);
    return method != FAKE_AUTH_METHOD_PLUS || c->who.tls_exporter_ok;
}

static bool data_is(const uint8_t *in, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(in, s, len) == 0;
}

int engine_fx_auth_step(struct engine_conn *c, uint32_t method, const uint8_t *in, size_t in_len,
                        uint8_t *out, size_t *out_len, const uint8_t **user, size_t *user_len,
                        const char **why)
{
    struct fake_conn *fc = fake_conn_of(c);
    cr_assert(method == FAKE_AUTH_METHOD || method == FAKE_AUTH_METHOD_PLUS);
    cr_assert(method != FAKE_AUTH_METHOD_PLUS || c->who.tls_exporter_ok,
              "a step of the TLS-bound method on a connection without a channel binding");
    fake.auth_steps++;
    fake.auth_step_method = method;
    if (!fc->auth) {
        if (!data_is(in, in_len, "hello")) {
            *why = "first step is not hello";
            return -1;
        }
        fc->auth = calloc(1, sizeof(*fc->auth));
        cr_assert_not_null(fc->auth);
        fc->auth->step = 1;
        fake.auth_live++;
        memcpy(out, "chal", 4);
        *out_len = 4;
        return 1;
    }
    if (!data_is(in, in_len, "resp")) {
        *why = "second step is not resp";
        return -1;
    }
    fc->auth->step = 2;
    memcpy(out, "ok", 2);
    *out_len = 2;
    *user = (const uint8_t *)"u";
    *user_len = 1;
    return 0;
}

void engine_fx_auth_end(struct engine_conn *c)
{
    struct fake_conn *fc = fake_conn_of(c);
    if (!fc->auth)
        return;
    free(fc->auth);
    fc->auth = NULL;
    fake.auth_live--;
}

/* ---- the log (core/log.h) ----------------------------------------------------------- */

#define LOG_LINES_MAX 512u
#define LOG_LINE_LEN  256u
static char log_lines[LOG_LINES_MAX][LOG_LINE_LEN];
static size_t log_n;

void log_set_level(enum config_log_level level)
{
    fake.log_level = (int)level;
}

int log_enabled(enum config_log_level level)
{
    return (int)level <= fake.log_level;
}

void log_set_thread(int shard)
{
    (void)shard;
}

void log_write(enum config_log_level level, const char *client_id, size_t id_len, const char *fmt,
               ...)
{
    char *line = log_lines[log_n % LOG_LINES_MAX];
    int n = snprintf(line, LOG_LINE_LEN, "%d ", (int)level);
    if (client_id && n >= 0 && (size_t)n < LOG_LINE_LEN)
        n += snprintf(line + n, LOG_LINE_LEN - (size_t)n, "\"%.*s\" ", (int)id_len, client_id);
    if (n >= 0 && (size_t)n < LOG_LINE_LEN) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + n, LOG_LINE_LEN - (size_t)n, fmt, ap);
        va_end(ap);
    }
    log_n++;
}

bool fake_log_has(const char *text)
{
    size_t n = log_n < LOG_LINES_MAX ? log_n : LOG_LINES_MAX;
    for (size_t i = 0; i < n; i++)
        if (strstr(log_lines[i], text))
            return true;
    return false;
}

size_t fake_log_count(void)
{
    return log_n;
}

/* ---- reset ----------------------------------------------------------------------------- */

void fake_reset(void)
{
    queues_free();
    while (fake_conns) {
        struct fake_conn *fc = fake_conns;
        free(fc->auth);
        fc->auth = NULL;
        fc->holds = 0;
        fake_conn_free(fc);
    }
    memset(&fake, 0, sizeof(fake));
    fake.log_level = LOG_LEVEL_INFO;
    log_n = 0;
    next_conn_id = 0;
}
