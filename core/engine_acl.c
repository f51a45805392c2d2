/*
 * ACL decisions as the engine asks them: the runtime's answer
 * (engine_fx_allowed), remembered per client for the last topic it
 * published to and the last topic it received on. The common flows (a
 * sensor publishing to its topic, a pair, a fan-out) then cost one compare
 * of the topic bytes per message instead of a walk of the ACL's tries; a
 * reload changes the policy's generation, which forgets every memory at
 * once. Subscriptions are not remembered: a SUBSCRIBE is rare.
 *
 * Runs on the thread that owns the client.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

/* Topics up to this long are remembered; longer ones are asked each time. */
#define ACL_MEMO_TOPIC_MAX 86u

struct acl_memo_slot {
    uint64_t policy;   /* engine_fx_policy when it was made; 0: empty */
    uint32_t listener; /* whose policy (a session may come back on another) */
    bool allowed;
    uint8_t len;
    uint8_t topic[ACL_MEMO_TOPIC_MAX];
};

struct engine_acl_memo {
    struct acl_memo_slot write, read;
};

static struct acl_memo_slot *memo_slot(struct client *cl, enum engine_access access)
{
    if (access == ENGINE_SUBSCRIBE || !cl)
        return NULL;
    if (!cl->acl_memo) {
        cl->acl_memo = calloc(1, sizeof(*cl->acl_memo));
        if (!cl->acl_memo)
            return NULL; /* no memory: ask every time */
    }
    return access == ENGINE_WRITE ? &cl->acl_memo->write : &cl->acl_memo->read;
}

bool engine_acl_allowed(struct engine *en, struct client *cl, const struct engine_identity *who,
                        const uint8_t *client_id, size_t client_id_len, enum engine_access access,
                        const uint8_t *topic, size_t len)
{
    uint64_t policy = engine_fx_policy(en, who->listener);
    if (policy == 0)
        return true; /* no ACL there: nothing to ask (the engine keeps $SYS itself) */
    struct acl_memo_slot *m = len <= ACL_MEMO_TOPIC_MAX ? memo_slot(cl, access) : NULL;
    if (m && m->policy == policy && m->listener == who->listener && m->len == len &&
        memcmp(m->topic, topic, len) == 0)
        return m->allowed;
    bool ok = engine_fx_allowed(en, who, client_id, client_id_len, access, topic, len);
    if (m) {
        m->policy = policy;
        m->listener = who->listener;
        m->allowed = ok;
        m->len = (uint8_t)len;
        memcpy(m->topic, topic, len);
    }
    return ok;
}
