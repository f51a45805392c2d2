/*
 * The engine's effects (core/engine_fx.h), as the runtime does them: the
 * connection's I/O through shard.c, cross-shard posts, the retained
 * store's lock, and the security decisions over the current snapshot
 * (security/auth.h, security/scram.h). This is where struct auth_client
 * is assembled from an engine identity, in one place.
 *
 * Runs on the shard thread that owns the engine or connection given.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "admit.h"
#include "authpool.h"
#include "engine_fx.h"
#include "invariant.h"
#include "log.h"
#include "scram.h"
#include "shard.h"

_Static_assert(SCRAM_MSG_MAX <= AUTH_DATA_MAX, "a SCRAM message fits the engine's AUTH data");
_Static_assert(SCRAM_MSG_MAX <= UINT16_MAX, "auth_reply_len holds a SCRAM message");

static const struct auth_snapshot *snapshot(const struct engine *en)
{
    const struct shard *sh = (const struct shard *)en;
    return atomic_load_explicit(&sh->b->auth, memory_order_seq_cst);
}

void engine_fx_output(struct engine_conn *c)
{
    conn_mark_dirty(conn_of(c));
}

void engine_fx_read_stop(struct engine_conn *c)
{
    conn_read_stop(conn_of(c));
}

void engine_fx_read_start(struct engine_conn *c)
{
    conn_read_start(conn_of(c));
}

void engine_fx_yield(struct engine_conn *c)
{
    conn_defer(conn_of(c));
}

void engine_fx_close(struct engine_conn *c, const char *why)
{
    conn_close(conn_of(c), why);
}

void engine_fx_hold(struct engine_conn *c)
{
    conn_hold(conn_of(c));
}

void engine_fx_release(struct engine_conn *c)
{
    conn_release(conn_of(c));
}

void engine_fx_post(struct engine *en, unsigned to, void *item)
{
    shard_post(shard_of(en), to, item);
}

bool engine_fx_congested(const struct engine *en)
{
    return ((const struct shard *)en)->ovf_count != 0;
}

void engine_fx_retain_lock(struct engine *en, bool write)
{
    pthread_rwlock_t *l = &shard_of(en)->b->retain_lock;
    if (write)
        pthread_rwlock_wrlock(l);
    else
        pthread_rwlock_rdlock(l);
}

void engine_fx_retain_unlock(struct engine *en, bool write)
{
    (void)write;
    pthread_rwlock_unlock(&shard_of(en)->b->retain_lock);
}

void engine_fx_timer(struct engine *en, struct engine_timer *t)
{
    (void)en;
    /* The only runtime deadline today: flushing or lingering took too
     * long; the socket is cut. */
    conn_shutdown(TIMER_OWNER(t, struct conn, close_timer));
}

/* ---- security ----------------------------------------------------------------- */

uint64_t engine_fx_policy(const struct engine *en, uint32_t listener)
{
    const struct auth_snapshot *s = snapshot(en);
    /* A listener the snapshot does not know is asked (and refused). */
    return listener >= s->listener_count || s->acl[listener] ? s->generation : 0;
}

bool engine_fx_allowed(const struct engine *en, const struct engine_identity *who,
                       const uint8_t *client_id, size_t client_id_len, enum engine_access access,
                       const uint8_t *topic, size_t len)
{
    struct auth_client ac = {
        .listener = who->listener,
        .client_id = client_id,
        .client_id_len = client_id_len,
        .username = who->username,
        .username_len = who->username_len,
    };
    enum auth_access a = access == ENGINE_READ    ? AUTH_READ
                         : access == ENGINE_WRITE ? AUTH_WRITE
                                                  : AUTH_SUBSCRIBE;
    return auth_allowed(snapshot(en), &ac, a, topic, len);
}

/* A job that never reached the pool. */
static void job_discard(struct auth_job *j)
{
    if (!j)
        return;
    if (j->password) {
        explicit_bzero(j->password, j->password_len);
        free(j->password);
    }
    explicit_bzero(&j->check, sizeof(j->check));
    free(j);
}

/* Has this CONNECT's (listener, username, password) been verified under
 * this snapshot lately? If not, its MAC waits on the connection for the
 * check's answer (conn_cred_settle). Only a real entry's check gets here
 * (an unknown user's decoy work is never remembered). */
static bool cred_known(struct conn *c, const struct auth_snapshot *snap,
                       const struct engine_login *l)
{
    struct shard *sh = c->sh;
    if (!sh->creds || !sh->b->cfg.auth_cache_s || !l->has_username || !l->has_password)
        return false;
    cred_cache_mac(sh->b->cred_key, c->e.who.listener, l->username, l->username_len, l->password,
                   l->password_len, c->cred_mac);
    if (cred_cache_hit(sh->creds, c->cred_mac, snap->generation, c->e.en->now_ms)) {
        explicit_bzero(c->cred_mac, sizeof(c->cred_mac));
        return true;
    }
    c->cred_pending = true;
    c->cred_generation = snap->generation;
    return false;
}

/* Hands the password check to the auth pool; the connection is held so it
 * is not freed while the job refers to it. chk is wiped. */
static uint8_t login_offload(struct conn *c, const struct engine_login *l, struct auth_check *chk,
                             const char **why)
{
    struct shard *sh = c->sh;
    struct auth_job *j = calloc(1, sizeof(*j));
    uint8_t *pw = l->password_len ? malloc(l->password_len) : NULL;
    if (!j || (l->password_len && !pw)) {
        explicit_bzero(chk, sizeof(*chk));
        job_discard(j);
        free(pw);
        *why = "out of memory";
        return MQTT_RC_SERVER_UNAVAILABLE;
    }
    atomic_init(&j->cancelled, false);
    j->conn = c;
    j->conn_id = c->e.id;
    j->shard = sh->id;
    j->check = *chk;
    explicit_bzero(chk, sizeof(*chk));
    if (l->password_len)
        memcpy(pw, l->password, l->password_len);
    j->password = pw;
    j->password_len = l->password_len;
    int err = authpool_submit(sh->b->authpool, j);
    if (err) {
        job_discard(j);
        /* A full queue is a storm of CONNECTs: try again later. */
        *why = err == -EBUSY ? "password checks queue full" : "password checks stopped";
        return err == -EBUSY ? MQTT_RC_SERVER_BUSY : MQTT_RC_SERVER_UNAVAILABLE;
    }
    c->verify_job = j; /* valid until the answer is back: the shard frees it */
    conn_hold(c);
    return ENGINE_LOGIN_PENDING;
}

uint8_t engine_fx_admit(struct engine_conn *e, const uint8_t *client_id, size_t client_id_len,
                        const uint8_t *username, size_t username_len, bool count, const char **why)
{
    return admit_client(conn_of(e)->sh, client_id, client_id_len, username, username_len, count,
                        why);
}

void engine_fx_login_failed(struct engine_conn *e)
{
    admit_login_failed(conn_of(e)->sh, &e->who.addr);
}

uint8_t engine_fx_login(struct engine_conn *e, const struct engine_login *l, const char **why)
{
    struct conn *c = conn_of(e);
    const struct auth_snapshot *snap = snapshot(e->en);
    struct auth_request ar = {
        .listener = e->who.listener,
        .peer = e->who.peer,
        .client_id = l->client_id,
        .client_id_len = l->client_id_len,
        .has_username = l->has_username,
        .username = l->username,
        .username_len = l->username_len,
        .has_password = l->has_password,
        .password = l->password,
        .password_len = l->password_len,
    };
    const struct config_tls *tls = &c->sh->b->cfg.listeners[e->who.listener].tls;
    if (tls->use_identity_as_username || tls->use_subject_as_username) {
        /* The certificate, verified in the handshake, is the credential:
         * no password is asked for (mosquitto's meaning). */
        if (e->who.cert_identity)
            return MQTT_RC_SUCCESS;
        *why = "no usable identity in the client certificate";
        return MQTT_RC_NOT_AUTHORIZED;
    }
    struct auth_check chk;
    bool hash = false;
    uint8_t rc = auth_connect_prepare(snap, &ar, &chk, &hash);
    if (rc != MQTT_RC_SUCCESS || !hash)
        return rc;
    if (!chk.decoy && cred_known(c, snap, l)) {
        explicit_bzero(&chk, sizeof(chk));
        atomic_fetch_add_explicit(&e->en->st.auth_cache_hits, 1, memory_order_relaxed);
        return MQTT_RC_SUCCESS;
    }
    /* Anything that hashes a password goes to the auth pool, so the
     * shard's other clients do not wait for it. */
    if (c->sh->b->authpool)
        return login_offload(c, l, &chk, why);
    rc = auth_check_verdict(&chk, l->has_password ? l->password : NULL,
                            l->has_password ? l->password_len : 0);
    explicit_bzero(&chk, sizeof(chk));
    conn_cred_settle(c, rc);
    return rc;
}

/* The runtime values of the methods (engine_fx_auth_method).
 * SCRAM-SHA-512 is the config's bit. SCRAM-SHA-512-PLUS has no config key:
 * it comes with SCRAM-SHA-512 wherever the connection can bind
 * (engine_fx_auth_usable), so its value is one no config bit takes. */
#define FX_AUTH_SCRAM      ((uint32_t)CONFIG_AUTH_SCRAM_SHA512)
#define FX_AUTH_SCRAM_PLUS (UINT32_C(1) << 31)
_Static_assert((FX_AUTH_SCRAM & FX_AUTH_SCRAM_PLUS) == 0, "two methods, two values");
_Static_assert(SCRAM_TLS_EXPORTER_LEN == ENGINE_TLS_EXPORTER_LEN,
               "the connection's tls-exporter value is what SCRAM binds to");

uint32_t engine_fx_auth_method(const struct engine *en, const uint8_t *name, size_t len)
{
    const struct auth_snapshot *snap = snapshot(en);
    if (len == sizeof(SCRAM_METHOD_PLUS) - 1 && memcmp(name, SCRAM_METHOD_PLUS, len) == 0)
        return auth_method_offered(snap, (const uint8_t *)SCRAM_METHOD, sizeof(SCRAM_METHOD) - 1)
                   ? FX_AUTH_SCRAM_PLUS
                   : 0;
    return auth_method_offered(snap, name, len);
}

const char *engine_fx_auth_method_name(uint32_t method)
{
    ASSERT(method == FX_AUTH_SCRAM || method == FX_AUTH_SCRAM_PLUS);
    return method == FX_AUTH_SCRAM_PLUS ? SCRAM_METHOD_PLUS : SCRAM_METHOD;
}

bool engine_fx_auth_usable(const struct engine_conn *c, uint32_t method)
{
    return method != FX_AUTH_SCRAM_PLUS || c->who.tls_exporter_ok;
}

/* scram_start on this connection's channel: the method says whether the
 * client asked for binding, the TLS layer whether it can have it. */
static int auth_first(struct engine_conn *e, uint32_t method, const uint8_t *in, size_t in_len,
                      uint8_t *out, size_t *out_len, const char **why)
{
    struct conn *c = conn_of(e);
    const struct auth_snapshot *snap = snapshot(e->en);
    uint8_t random[SCRAM_NONCE_RANDOM_LEN];
    if (RAND_bytes(random, sizeof(random)) != 1) {
        *why = "RAND_bytes failed";
        return -1;
    }
    struct scram_channel ch = {
        .plus = method == FX_AUTH_SCRAM_PLUS,
        .exporter_ok = e->who.tls_exporter_ok,
    };
    if (ch.exporter_ok)
        memcpy(ch.exporter, e->who.tls_exporter, sizeof(ch.exporter));
    enum scram_result r = scram_start_channel(
        e->who.listener < snap->listener_count ? snap->passwd[e->who.listener] : NULL, in, in_len,
        random, &ch, &c->ax, out, out_len, why);
    explicit_bzero(&ch, sizeof(ch));
    return r == SCRAM_CONTINUE ? 1 : -1;
}

int engine_fx_auth_step(struct engine_conn *e, uint32_t method, const uint8_t *in, size_t in_len,
                        uint8_t *out, size_t *out_len, const uint8_t **user, size_t *user_len,
                        const char **why)
{
    struct conn *c = conn_of(e);
    if (!c->ax)
        return auth_first(e, method, in, in_len, out, out_len, why);
    enum scram_result r = scram_finish(c->ax, in, in_len, out, out_len, why);
    if (r != SCRAM_OK)
        return -1;
    *user = scram_username(c->ax, user_len);
    return 0;
}

void engine_fx_auth_end(struct engine_conn *e)
{
    struct conn *c = conn_of(e);
    scram_free(c->ax);
    c->ax = NULL;
}
