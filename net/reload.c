/*
 * Reloads on the main thread (reload.h).
 */
#include "reload.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "ban.h"
#include "file.h"
#include "log.h"
#include "passwd.h"
#include "shard.h"
#include "tls.h"

/* A burst of events (an editor's save, a certbot renewal writing four
 * files) becomes one reload this long after the last of them. */
#define RELOAD_DEBOUNCE_MS 300u

/* Waits until every shard has begun a loop turn after this call: then none
 * holds a pointer it loaded before. False after 5 s (a shard stuck in a
 * turn): the caller must not free what the shards might still read. */
static bool shards_quiescent(struct broker *b)
{
    uint64_t seen[SHARDS_MAX];
    for (unsigned i = 0; i < b->shard_count; i++)
        seen[i] = atomic_load_explicit(&b->shards[i]->turns, memory_order_seq_cst);
    for (int waited_ms = 0; waited_ms < 5000; waited_ms++) {
        bool all = !atomic_load_explicit(&b->metrics_in_snapshot, memory_order_seq_cst);
        for (unsigned i = 0; i < b->shard_count && all; i++)
            all = atomic_load_explicit(&b->shards[i]->turns, memory_order_seq_cst) != seen[i];
        if (all)
            return true;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

struct auth_snapshot *snapshot_load(const struct config *cfg, uint64_t generation,
                                    const uint64_t hash_key[2], char *err, size_t errlen)
{
    const char *paths[AUTH_FILES_MAX];
    struct auth_file files[AUTH_FILES_MAX];
    uint32_t n = auth_files_needed(cfg, paths), got = 0;
    struct auth_snapshot *s = NULL;
    for (; got < n; got++) {
        uint8_t *data = NULL;
        size_t len = 0;
        /* Every kind gets the largest bound; each parser has its own. */
        size_t max = PASSWD_FILE_MAX > ACL_FILE_MAX ? PASSWD_FILE_MAX : ACL_FILE_MAX;
        max = max > BAN_FILE_MAX ? max : BAN_FILE_MAX;
        if (file_read(paths[got], max, &data, &len, err, errlen) != 0)
            goto done;
        files[got] = (struct auth_file){.path = paths[got], .bytes = data, .len = len};
    }
    struct auth_files f = {.v = files, .count = n};
    s = auth_snapshot_create(cfg, generation, hash_key, &f, err, errlen);
done:
    for (uint32_t i = 0; i < got; i++)
        file_free((uint8_t *)files[i].bytes, files[i].len); /* wiped: it may hold hashes */
    return s;
}

/* The credentials again. On any error the running snapshot stays.
 * Connected clients keep their sessions; new CONNECTs and
 * re-authentications see the new credentials. */
static void reload_auth(struct broker *b, const char *cause)
{
    char err[512];
    struct auth_snapshot *old = atomic_load_explicit(&b->auth, memory_order_acquire);
    struct auth_snapshot *s =
        snapshot_load(&b->cfg, old->generation + 1, b->eng.hash_key, err, sizeof(err));
    if (!s) {
        LOG(LOG_LEVEL_ERROR, "%s: reload failed, the previous credentials stay: %s", cause, err);
        return;
    }
    /* seq_cst with the shards' turn counter and their loads (see
     * shard_main): the turns read after this store cannot be older than
     * any turn that still loaded the old pointer. */
    atomic_store_explicit(&b->auth, s, memory_order_seq_cst);
    if (shards_quiescent(b))
        auth_snapshot_destroy(old);
    else
        LOG(LOG_LEVEL_WARNING,
            "%s: a shard did not turn within 5 s; the previous "
            "snapshot is kept in memory",
            cause);
    for (uint32_t i = 0; i < s->passwd_own_count; i++)
        LOG(LOG_LEVEL_NOTICE, "%s: reloaded %s (%zu users)", cause, s->passwd_path[i],
            passwd_count(s->passwd_own[i]));
    for (uint32_t i = 0; i < s->acl_own_count; i++)
        LOG(LOG_LEVEL_NOTICE, "%s: reloaded %s (%zu rules)", cause, s->acl_path[i],
            acl_rule_count(s->acl_own[i]));
    if (s->bans)
        LOG(LOG_LEVEL_NOTICE, "%s: reloaded %s (%zu bans)", cause, s->ban_path,
            ban_list_count(s->bans));
    if (!s->passwd_own_count && !s->acl_own_count && !s->bans)
        LOG(LOG_LEVEL_NOTICE, "%s: reloaded (no password, ACL or ban file configured)", cause);
}

/* ---- TLS contexts ----------------------------------------------------- */

typedef struct tls_ctx *tls_set[LISTENERS_MAX];

static void set_free(tls_set *sets, unsigned shards)
{
    for (unsigned i = 0; i < shards; i++)
        for (unsigned li = 0; li < LISTENERS_MAX; li++) {
            tls_ctx_unref(sets[i][li]);
            sets[i][li] = NULL;
        }
}

/* Every TLS listener's context for each of shards shards. 0, or -1 with
 * "config:line: TLS KEY PATH: why" in err and nothing built. */
static int set_build(const struct config *cfg, unsigned shards, uint64_t generation,
                     struct tls_tickets *tickets, tls_set *sets, char *err, size_t errlen)
{
    for (unsigned i = 0; i < shards; i++)
        for (unsigned li = 0; li < cfg->listener_count; li++) {
            const struct config_tls *t = &cfg->listeners[li].tls;
            char why[768];
            int line = 0;
            if (!t->enabled)
                continue;
            if (tls_ctx_create(t, li, generation, tickets, &sets[i][li], why, sizeof(why), &line)) {
                if (snprintf(err, errlen, "%s:%d: TLS %s", cfg->source, line, why) >= (int)errlen)
                    err[errlen - 1] = '\0';
                set_free(sets, shards);
                return -1;
            }
        }
    return 0;
}

/* Days until each certificate of each TLS listener expires: a warning
 * under 30 days, an error once expired (clients refuse it). */
static void log_expiry(struct broker *b, struct tls_ctx *const *set)
{
    for (unsigned li = 0; li < b->cfg.listener_count; li++) {
        const struct config_listener *l = &b->cfg.listeners[li];
        const char *where = l->address[0] ? l->address : "*";
        int least = INT32_MIN;
        int64_t soonest = 0;
        bool first = true;
        for (unsigned i = 0; set[li] && i < tls_ctx_certs(set[li]); i++) {
            const char *file = i ? l->tls.sni[i - 1].certfile : l->tls.certfile;
            int days = tls_ctx_days_left(set[li], i);
            if (days == INT32_MIN)
                LOG(LOG_LEVEL_WARNING, "listener %s:%u: the expiry of %s cannot be read", where,
                    b->listen_port[li], file);
            else if (days < 0)
                LOG(LOG_LEVEL_ERROR, "listener %s:%u: %s expired %d days ago", where,
                    b->listen_port[li], file, -days);
            else
                LOG(days < 30 ? LOG_LEVEL_WARNING : LOG_LEVEL_NOTICE,
                    "listener %s:%u: %s expires in %d days", where, b->listen_port[li], file, days);
            if (days != INT32_MIN && (first || days < least))
                least = days;
            int64_t at = tls_ctx_not_after(set[li], i);
            if (at != INT64_MIN && (soonest == 0 || at < soonest))
                soonest = at;
            first = false;
        }
        atomic_store_explicit(&b->tls_days_left[li], least, memory_order_relaxed);
        atomic_store_explicit(&b->tls_not_after[li], soonest, memory_order_relaxed);
    }
}

/* log_expiry over the contexts shard 0 uses now (every shard's are built
 * from the same files). */
static void log_expiry_now(struct broker *b)
{
    struct tls_ctx *now[LISTENERS_MAX];
    for (unsigned li = 0; li < LISTENERS_MAX; li++)
        now[li] = atomic_load(&b->shards[0]->tls[li]);
    log_expiry(b, now);
}

static bool any_tls(const struct config *cfg)
{
    for (unsigned li = 0; li < cfg->listener_count; li++)
        if (cfg->listeners[li].tls.enabled)
            return true;
    return false;
}

int reload_tls_start(struct broker *b)
{
    static tls_set sets[SHARDS_MAX];
    char err[1024];
    for (unsigned li = 0; li < LISTENERS_MAX; li++)
        atomic_init(&b->tls_days_left[li], INT32_MIN);
    for (unsigned li = 0; li < LISTENERS_MAX; li++)
        atomic_init(&b->tls_not_after[li], 0);
    if (!any_tls(&b->cfg))
        return 0;
    if (tls_init()) {
        LOG(LOG_LEVEL_ERROR, "TLS: out of memory at start-up");
        return 1;
    }
    if (b->cfg.tls_ticket_rotation_s &&
        !(b->tickets = tls_tickets_create(b->cfg.tls_ticket_rotation_s))) {
        LOG(LOG_LEVEL_ERROR, "TLS: no session-ticket key (out of memory or no random bytes)");
        return 1;
    }
    b->tls_generation = 1;
    if (set_build(&b->cfg, b->shard_count, b->tls_generation, b->tickets, sets, err, sizeof(err))) {
        LOG(LOG_LEVEL_ERROR, "%s", err);
        return 1;
    }
    for (unsigned i = 0; i < b->shard_count; i++)
        for (unsigned li = 0; li < LISTENERS_MAX; li++) {
            atomic_store(&b->shards[i]->tls[li], sets[i][li]);
            sets[i][li] = NULL;
        }
    log_expiry_now(b);
    return 0;
}

int reload_tls_check(const struct config *cfg)
{
    static tls_set set[1];
    char err[1024];
    if (!any_tls(cfg))
        return 0;
    if (tls_init()) {
        fprintf(stderr, "TLS: out of memory\n");
        return 1;
    }
    if (set_build(cfg, 1, 1, NULL, set, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    set_free(set, 1);
    return 0;
}

void reload_tls_stop(struct broker *b)
{
    tls_tickets_destroy(b->tickets);
    b->tickets = NULL;
}

/* New contexts for every shard; the old ones are released once every
 * shard has turned (connections hold their own references). */
static void reload_tls(struct broker *b, const char *cause)
{
    static tls_set sets[SHARDS_MAX];
    char err[1024];
    if (!any_tls(&b->cfg))
        return;
    uint64_t gen = b->tls_generation + 1;
    if (set_build(&b->cfg, b->shard_count, gen, b->tickets, sets, err, sizeof(err))) {
        LOG(LOG_LEVEL_ERROR, "%s: TLS reload failed, the previous certificates stay: %s", cause,
            err);
        return;
    }
    b->tls_generation = gen;
    for (unsigned i = 0; i < b->shard_count; i++)
        for (unsigned li = 0; li < LISTENERS_MAX; li++)
            sets[i][li] =
                atomic_exchange_explicit(&b->shards[i]->tls[li], sets[i][li], memory_order_seq_cst);
    /* sets now holds the old contexts. */
    if (shards_quiescent(b))
        set_free(sets, b->shard_count);
    else
        LOG(LOG_LEVEL_WARNING,
            "%s: a shard did not turn within 5 s; the previous TLS "
            "contexts are kept in memory",
            cause);
    LOG(LOG_LEVEL_NOTICE, "%s: TLS contexts reloaded (generation %llu)", cause,
        (unsigned long long)gen);
    log_expiry_now(b);
}

void reload_all(struct broker *b, const char *cause)
{
    reload_auth(b, cause);
    reload_tls(b, cause);
}

/* ---- watching the files ----------------------------------------------- */

/* Watches path's folder for path's name (or, dir, the folder path). */
static void watch(struct reload *r, const char *path, bool tls, bool dir)
{
    if (!path[0] || r->n >= RELOAD_WATCH_MAX)
        return;
    char folder[PATH_MAX];
    const char *slash = strrchr(path, '/');
    struct reload_watch *w = &r->w[r->n];
    if (dir) {
        snprintf(folder, sizeof(folder), "%s", path);
        w->name[0] = '\0';
    } else if (slash) {
        snprintf(folder, sizeof(folder), "%.*s", (int)(slash - path == 0 ? 1 : slash - path), path);
        snprintf(w->name, sizeof(w->name), "%s", slash + 1);
    } else {
        snprintf(folder, sizeof(folder), ".");
        snprintf(w->name, sizeof(w->name), "%s", path);
    }
    w->wd = inotify_add_watch(r->fd, folder,
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ONLYDIR);
    if (w->wd < 0) {
        LOG(LOG_LEVEL_WARNING, "cannot watch %s for changes (%s): SIGHUP reloads it", folder,
            strerror(errno));
        return;
    }
    /* Listeners share files: one entry per file (a folder has one wd). */
    for (unsigned i = 0; i < r->n; i++)
        if (r->w[i].wd == w->wd && r->w[i].tls == tls && strcmp(r->w[i].name, w->name) == 0)
            return;
    w->tls = tls;
    r->n++;
}

void reload_init(struct reload *r, struct broker *b)
{
    memset(r, 0, sizeof(*r));
    if (b->tickets)
        r->rotate_ms = broker_now_ms() + (uint64_t)b->cfg.tls_ticket_rotation_s * 1000u;
    r->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->fd < 0) {
        LOG(LOG_LEVEL_WARNING, "no inotify (%s): only SIGHUP reloads files", strerror(errno));
        return;
    }
    for (unsigned li = 0; li < b->cfg.listener_count; li++) {
        watch(r, b->cfg.listeners[li].password_file, false, false);
        watch(r, b->cfg.listeners[li].acl_file, false, false);
    }
    watch(r, b->cfg.ban_file, false, false);
    for (unsigned li = 0; li < b->cfg.listener_count; li++) {
        const struct config_tls *t = &b->cfg.listeners[li].tls;
        if (!t->enabled)
            continue;
        watch(r, t->certfile, true, false);
        watch(r, t->keyfile, true, false);
        for (unsigned i = 0; i < t->sni_count; i++) {
            watch(r, t->sni[i].certfile, true, false);
            watch(r, t->sni[i].keyfile, true, false);
        }
        if (t->require_certificate) {
            watch(r, t->cafile, true, false);
            watch(r, t->capath, true, true);
            watch(r, t->crlfile, true, false);
        }
        watch(r, t->psk_file, true, false);
    }
}

void reload_fini(struct reload *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

uint64_t reload_wait_ms(const struct reload *r, uint64_t now, uint64_t max_ms)
{
    uint64_t due[3] = {r->tls_due_ms, r->auth_due_ms, r->rotate_ms};
    for (int i = 0; i < 3; i++) {
        if (!due[i])
            continue;
        uint64_t left = due[i] > now ? due[i] - now : 0;
        if (left < max_ms)
            max_ms = left;
    }
    return max_ms;
}

/* One event: which watched file it names. Kubernetes swaps a mounted
 * secret by renaming "..data", which names none of them. */
static void note(struct reload *r, const struct inotify_event *ev, uint64_t now)
{
    for (unsigned i = 0; i < r->n; i++) {
        const struct reload_watch *w = &r->w[i];
        if (w->wd != ev->wd)
            continue;
        if (w->name[0] && ev->len && strcmp(ev->name, w->name) != 0 &&
            strcmp(ev->name, "..data") != 0)
            continue;
        if (w->tls)
            r->tls_due_ms = now + RELOAD_DEBOUNCE_MS;
        else
            r->auth_due_ms = now + RELOAD_DEBOUNCE_MS;
    }
}

void reload_events(struct reload *r, uint64_t now)
{
    _Alignas(struct inotify_event) char buf[4096];
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = read(r->fd, buf, sizeof(buf));
        if (n <= 0)
            return; /* EAGAIN: all read */
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            note(r, ev, now);
            off += (ssize_t)sizeof(*ev) + ev->len;
        }
    }
}

void reload_tick(struct reload *r, struct broker *b, uint64_t now)
{
    if (r->auth_due_ms && now >= r->auth_due_ms) {
        r->auth_due_ms = 0;
        reload_auth(b, "password, ACL or ban file changed");
    }
    if (r->tls_due_ms && now >= r->tls_due_ms) {
        r->tls_due_ms = 0;
        reload_tls(b, "TLS files changed");
    }
    if (r->rotate_ms && now >= r->rotate_ms) {
        r->rotate_ms = now + (uint64_t)b->cfg.tls_ticket_rotation_s * 1000u;
        struct tls_keyset *old = tls_tickets_rotate(b->tickets);
        if (!old) {
            LOG(LOG_LEVEL_WARNING, "TLS: no fresh session-ticket key this time (no random "
                                   "bytes or memory); the current one stays");
            return;
        }
        if (shards_quiescent(b))
            tls_keyset_free(old);
        else
            LOG(LOG_LEVEL_WARNING, "TLS: a shard did not turn within 5 s; the previous "
                                   "ticket keys are kept in memory");
        LOG(LOG_LEVEL_INFO, "TLS: session-ticket key rotated");
    }
}
