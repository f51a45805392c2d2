/*
 * Admission (admit.h): the address at accept, the client id and username
 * at CONNECT, failed logins, the shard's overload state.
 */
#include "admit.h"

#include <netinet/in.h>
#include <time.h>

#include "codec.h"
#include "log.h"
#include "shard.h"
#include "tally.h"

/* A shard leaves the overload state once no turn has taken half of
 * overload_lag_ms for this long. */
#define OVERLOAD_CALM_MS 1000u

bool admit_needs_tally(const struct config *c)
{
    if (c->flapping_max_connects || c->auth_failures_max)
        return true;
    for (uint32_t i = 0; i < c->listener_count; i++)
        if (c->listeners[i].admit.connections_per_ip || c->listeners[i].admit.connect_per_s_per_ip)
            return true;
    return false;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t utc_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return ts.tv_sec > 0 ? (uint64_t)ts.tv_sec : 0;
}

static bool addr_of(const struct sockaddr_storage *ss, struct netrule_addr *a)
{
    if (ss->ss_family == AF_INET)
        return netrule_addr_from_bytes(
            NETRULE_V4, (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr, a);
    if (ss->ss_family == AF_INET6)
        return netrule_addr_from_bytes(
            NETRULE_V6, (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr, a);
    return false;
}

/* The address's bytes as the tally keys them (an IPv4-mapped address is
 * its IPv4 address: netrule_addr_from_bytes unmapped it). */
static uint64_t addr_subject(const struct tally *t, enum tally_kind kind, unsigned li,
                             const struct netrule_addr *a)
{
    return tally_subject(t, kind, kind == TALLY_ADDR ? 0 : li, a->bytes,
                         a->family == NETRULE_V4 ? 4 : 16);
}

static void refused(struct shard *sh, unsigned li, const struct netrule_addr *a,
                    atomic_uint_fast64_t *counter, const char *why)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    char text[NETRULE_ADDR_STRLEN] = "?";
    netrule_format(a, text, sizeof(text));
    LOG(LOG_LEVEL_DEBUG, "connection from %s refused on listener %u: %s", text, li, why);
}

/* The temporary ban of an address (flapping, failed logins): the slot of
 * the address across listeners, or TALLY_NONE. */
static uint32_t addr_slot(struct tally *t, const struct netrule_addr *a, uint64_t now_us,
                          uint64_t *subject)
{
    uint32_t slot = TALLY_NONE;
    *subject = addr_subject(t, TALLY_ADDR, 0, a);
    if (!tally_find(t, *subject, now_us, &slot))
        return TALLY_NONE;
    return slot;
}

/* Flapping by one subject's slot: a connect more than flapping_max_connects
 * within flapping_window bans it for flapping_ban. True: it is over now. */
static bool flapping(struct shard *sh, struct tally *t, uint32_t slot, uint64_t now_us)
{
    const struct config *c = &sh->b->cfg;
    if (!c->flapping_max_connects)
        return false;
    if (tally_rate(t, slot, TALLY_CONNECTS, now_us, c->flapping_max_connects, c->flapping_window_s,
                   c->flapping_max_connects))
        return false;
    tally_ban(t, slot, TALLY_CONNECTS, now_us + (uint64_t)c->flapping_ban_s * 1000000u);
    atomic_fetch_add_explicit(&sh->en.st.flapping_bans, 1, memory_order_relaxed);
    return true;
}

bool admit_address(struct shard *sh, unsigned li, const struct sockaddr_storage *ss, uint32_t *slot)
{
    struct broker *b = sh->b;
    const struct config_admit *cfg = &b->cfg.listeners[li].admit;
    *slot = TALLY_NONE;
    struct netrule_addr a;
    if (ss->ss_family == AF_UNSPEC || !addr_of(ss, &a))
        return true;
    const struct auth_snapshot *snap = atomic_load_explicit(&b->auth, memory_order_acquire);
    if ((snap->allow[li] || snap->deny[li]) && !auth_admit(snap, li, &a)) {
        refused(sh, li, &a, &sh->en.st.address_refused, "allow_from/deny_from");
        return false;
    }
    if (snap->bans && auth_banned_addr(snap, &a, utc_s())) {
        refused(sh, li, &a, &sh->en.st.ban_refused, "banned (ban_file)");
        return false;
    }
    struct tally *t = b->tally;
    uint64_t now_us = t || cfg->connect_per_s ? mono_us() : 0;
    uint32_t aslot = TALLY_NONE;
    if (t && (b->cfg.flapping_max_connects || b->cfg.auth_failures_max)) {
        uint64_t subject;
        aslot = addr_slot(t, &a, now_us, &subject);
        if (aslot == TALLY_NONE) {
            atomic_fetch_add_explicit(&sh->en.st.untracked, 1, memory_order_relaxed);
        } else if (tally_banned(t, aslot, now_us)) {
            refused(sh, li, &a, &sh->en.st.flapping_refused,
                    "banned for a while (flapping or failed logins)");
            return false;
        }
    }
    if (cfg->connect_per_s &&
        !gcra_take(&b->connect_tat[li], now_us, cfg->connect_per_s, 1, cfg->connect_per_s)) {
        refused(sh, li, &a, &sh->en.st.rate_refused, "max_connect_rate");
        return false;
    }
    uint32_t cslot = TALLY_NONE;
    if (t && (cfg->connections_per_ip || cfg->connect_per_s_per_ip)) {
        uint64_t subject = addr_subject(t, TALLY_ADDR_LISTENER, li, &a);
        int held = -1;
        for (int tries = 0; tries < 3 && held < 0; tries++) {
            if (!tally_find(t, subject, now_us, &cslot)) {
                cslot = TALLY_NONE;
                break;
            }
            if (tries == 0 && cfg->connect_per_s_per_ip &&
                !tally_rate(t, cslot, TALLY_CONNECTS, now_us, cfg->connect_per_s_per_ip, 1,
                            cfg->connect_per_s_per_ip)) {
                refused(sh, li, &a, &sh->en.st.rate_refused, "max_connect_rate_per_ip");
                return false;
            }
            held = tally_conn_take(t, cslot, subject, (uint32_t)cfg->connections_per_ip);
        }
        if (held == 0) {
            refused(sh, li, &a, &sh->en.st.per_ip_refused, "max_connections_per_ip");
            return false;
        }
        if (held < 0) {
            cslot = TALLY_NONE;
            atomic_fetch_add_explicit(&sh->en.st.untracked, 1, memory_order_relaxed);
        }
    }
    /* Last, so that only connections let in count as connects. */
    if (aslot != TALLY_NONE && flapping(sh, t, aslot, now_us)) {
        if (cslot != TALLY_NONE)
            tally_conn_put(t, cslot);
        char text[NETRULE_ADDR_STRLEN] = "?";
        netrule_format(&a, text, sizeof(text));
        LOG(LOG_LEVEL_NOTICE,
            "%s banned for %u s: more than %u connections within %u s "
            "(flapping_max_connects)",
            text, (unsigned)b->cfg.flapping_ban_s, (unsigned)b->cfg.flapping_max_connects,
            (unsigned)b->cfg.flapping_window_s);
        refused(sh, li, &a, &sh->en.st.flapping_refused, "flapping_max_connects");
        return false;
    }
    *slot = cslot;
    return true;
}

void admit_release(struct broker *b, uint32_t slot)
{
    if (slot != TALLY_NONE && b->tally)
        tally_conn_put(b->tally, slot);
}

/* Is the id or name (kind) under a flapping ban; does this connect (when
 * counted) put it under one? */
static bool name_flapping(struct shard *sh, enum tally_kind kind, const uint8_t *name, size_t len,
                          bool count, uint64_t now_us)
{
    struct tally *t = sh->b->names;
    uint32_t slot;
    if (!t || !len || !tally_find(t, tally_subject(t, kind, 0, name, len), now_us, &slot))
        return false;
    if (tally_banned(t, slot, now_us))
        return true;
    if (!count || !flapping(sh, t, slot, now_us))
        return false;
    const struct config *c = &sh->b->cfg;
    LOGC(LOG_LEVEL_NOTICE, kind == TALLY_CLIENTID ? name : NULL, kind == TALLY_CLIENTID ? len : 0,
         "%s banned for %u s: more than %u connections within %u s (flapping_max_connects)",
         kind == TALLY_CLIENTID ? "client id" : "a username", (unsigned)c->flapping_ban_s,
         (unsigned)c->flapping_max_connects, (unsigned)c->flapping_window_s);
    return true;
}

uint8_t admit_client(struct shard *sh, const uint8_t *id, size_t id_len, const uint8_t *user,
                     size_t user_len, bool count, const char **why)
{
    struct broker *b = sh->b;
    if (atomic_load_explicit(&sh->overloaded, memory_order_relaxed)) {
        /* Memory near memory_limit is the home shard's check
         * (core/engine_connect.c): a session that resumes is let in. */
        atomic_fetch_add_explicit(&sh->en.st.overload_refused, 1, memory_order_relaxed);
        *why = "overloaded (the shard's loop lags: overload_lag_ms)";
        return MQTT_RC_SERVER_BUSY;
    }
    const struct auth_snapshot *snap = atomic_load_explicit(&b->auth, memory_order_acquire);
    if (snap->bans && auth_banned_client(snap, id, id_len, user, user_len, utc_s())) {
        atomic_fetch_add_explicit(&sh->en.st.ban_refused, 1, memory_order_relaxed);
        *why = "banned (ban_file)";
        return MQTT_RC_BANNED;
    }
    if (!b->cfg.flapping_max_connects || !b->names)
        return 0;
    uint64_t now_us = mono_us();
    /* Both are counted, even when the first is already over. */
    bool by_id = name_flapping(sh, TALLY_CLIENTID, id, id_len, count, now_us);
    bool by_name = user && name_flapping(sh, TALLY_USERNAME, user, user_len, count, now_us);
    if (!by_id && !by_name)
        return 0;
    atomic_fetch_add_explicit(&sh->en.st.flapping_refused, 1, memory_order_relaxed);
    *why = by_id ? "client id banned for a while (flapping_max_connects)"
                 : "username banned for a while (flapping_max_connects)";
    return MQTT_RC_BANNED;
}

void admit_login_failed(struct shard *sh, const struct sockaddr_storage *ss)
{
    struct broker *b = sh->b;
    uint32_t n = b->cfg.auth_failures_max;
    struct netrule_addr a;
    if (!n || !b->tally || !addr_of(ss, &a))
        return;
    uint64_t now_us = mono_us(), subject;
    uint32_t slot = addr_slot(b->tally, &a, now_us, &subject);
    if (slot == TALLY_NONE)
        return;
    /* The n-th failure within the window bans: n - 1 pass the bucket. */
    if (n > 1 &&
        tally_rate(b->tally, slot, TALLY_FAILURES, now_us, n, b->cfg.flapping_window_s, n - 1))
        return;
    tally_ban(b->tally, slot, TALLY_FAILURES, now_us + (uint64_t)b->cfg.flapping_ban_s * 1000000u);
    atomic_fetch_add_explicit(&sh->en.st.flapping_bans, 1, memory_order_relaxed);
    char text[NETRULE_ADDR_STRLEN] = "?";
    netrule_format(&a, text, sizeof(text));
    LOG(LOG_LEVEL_NOTICE, "%s banned for %u s: %u failed logins within %u s (auth_failures_max)",
        text, (unsigned)b->cfg.flapping_ban_s, (unsigned)n, (unsigned)b->cfg.flapping_window_s);
}

void admit_turn(struct shard *sh, uint64_t turn_ms, uint64_t now_ms)
{
    uint32_t lag = sh->b->cfg.overload_lag_ms;
    if (!lag)
        return;
    if (turn_ms * 2 >= lag)
        sh->lagged_ms = now_ms;
    bool over = atomic_load_explicit(&sh->overloaded, memory_order_relaxed);
    if (!over && turn_ms >= lag) {
        atomic_store_explicit(&sh->overloaded, true, memory_order_relaxed);
        LOG(LOG_LEVEL_WARNING,
            "overloaded: a loop turn took %llu ms (overload_lag_ms %u): new connections get "
            "0x89 Server busy until turns are quick again",
            (unsigned long long)turn_ms, (unsigned)lag);
    } else if (over && now_ms - sh->lagged_ms >= OVERLOAD_CALM_MS) {
        atomic_store_explicit(&sh->overloaded, false, memory_order_relaxed);
        LOG(LOG_LEVEL_NOTICE, "no longer overloaded: loop turns under %u ms for %u ms",
            (unsigned)lag / 2, (unsigned)OVERLOAD_CALM_MS);
    }
}
