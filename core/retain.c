/*
 * The retained message store: topic name -> last retained message, in a
 * level tree (topic_tree.c) keyed by the name's levels, each node holding one
 * reference in "ptr". Matching a filter walks the tree: a literal level is
 * one child lookup, '+' visits the children of one level, '#' a subtree, so
 * a subscribe never scans every retained topic. The store does no locking:
 * net/ guards it with a read-write lock (match under the read side).
 */
#include "retain.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "topic_tree_internal.h"

struct retain {
    struct tree tree;
    size_t count;
    size_t bytes; /* sum of msg_size() of stored messages */
    /* The broker's own $SYS entries (clients cannot publish there): a
     * handful, outside the bounds of retain_set_bounded. */
    size_t sys_count;
    size_t sys_bytes;
};

static bool is_sys(const struct msg *m)
{
    return m->topic_len >= 5 && memcmp(msg_topic(m), "$SYS/", 5) == 0;
}

/* Adds (sign 1) or removes (-1) a message from the totals. */
static void account(struct retain *r, const struct msg *m, int sign)
{
    size_t sz = msg_size(m);
    if (sign > 0) {
        r->count++;
        r->bytes += sz;
    } else {
        r->count--;
        r->bytes -= sz;
    }
    if (is_sys(m)) {
        if (sign > 0) {
            r->sys_count++;
            r->sys_bytes += sz;
        } else {
            r->sys_count--;
            r->sys_bytes -= sz;
        }
    }
}

struct retain *retain_create(void)
{
    struct retain *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    if (tree_init(&r->tree) < 0) {
        free(r);
        return NULL;
    }
    return r;
}

static void free_value(void *ctx, struct tree_node *n)
{
    (void)ctx;
    msg_unref(n->ptr);
    n->ptr = NULL;
}

void retain_destroy(struct retain *r)
{
    if (r == NULL)
        return;
    tree_fini(&r->tree, free_value, NULL);
    free(r);
}

int retain_set(struct retain *r, struct msg *msg)
{
    const uint8_t *topic = msg_topic(msg);
    size_t tlen = msg->topic_len;

    if (msg->payload_len == 0) {
        /* [MQTT-3.3.1-6] deletes the entry, [MQTT-3.3.1-7] is not kept. */
        struct tree_node *n = tree_find(&r->tree, topic, tlen, false);
        if (n == NULL || n->ptr == NULL)
            return 0;
        struct msg *old = n->ptr;
        n->ptr = NULL;
        account(r, old, -1);
        msg_unref(old);
        tree_prune(&r->tree, n);
        return 0;
    }

    struct tree_node *n = tree_get(&r->tree, topic, tlen, false);
    if (n == NULL)
        return -ENOMEM;
    struct msg *old = n->ptr;
    n->ptr = msg_ref(msg);
    account(r, msg, 1);
    if (old != NULL) {
        account(r, old, -1);
        msg_unref(old);
    }
    return 0;
}

int retain_set_bounded(struct retain *r, struct msg *msg, size_t count_max, size_t bytes_max)
{
    if (msg->payload_len == 0)
        return retain_set(r, msg);
    struct tree_node *n = tree_find(&r->tree, msg_topic(msg), msg->topic_len, false);
    struct msg *old = n ? n->ptr : NULL;
    if (!old && count_max && r->count - r->sys_count >= count_max)
        return -ENOSPC;
    size_t after = r->bytes - r->sys_bytes - (old ? msg_size(old) : 0) + msg_size(msg);
    if (bytes_max && after > bytes_max) {
        if (old) {
            n->ptr = NULL;
            account(r, old, -1);
            msg_unref(old);
            tree_prune(&r->tree, n);
        }
        return -ENOSPC;
    }
    return retain_set(r, msg);
}

struct walk {
    retain_cb cb;
    void *ctx;
    const uint8_t *f; /* the filter */
    size_t flen;
};

static void report(const struct walk *w, const struct tree_node *n)
{
    if (n->ptr != NULL)
        w->cb(w->ctx, n->ptr);
}

static bool dollar_label(const struct tree_node *n)
{
    return n->label_len > 0 && n->label[0] == '$';
}

/* Every message at or below n. Depth is that of the tree, at most
 * TOPIC_LEVELS_MAX levels (tree_get asserts it). */
static void walk_subtree(const struct walk *w, const struct tree_node *n, bool skip_dollar)
{
    report(w, n);
    for (uint32_t i = 0; i < n->kcap; i++) {
        const struct tree_node *k = n->kids[i];
        if (k != NULL && !(skip_dollar && dollar_label(k)))
            walk_subtree(w, k, false);
    }
}

/* Matches the filter from byte "at" (the start of a level) below node n.
 * Recursion depth is bounded by the filter's levels. */
static void walk_filter(const struct walk *w, const struct tree *t, const struct tree_node *n,
                        size_t at)
{
    const uint8_t *p = w->f + at;
    size_t rest = w->flen - at;
    const uint8_t *slash = rest > 0 ? memchr(p, '/', rest) : NULL;
    size_t l = slash ? (size_t)(slash - p) : rest;
    size_t next = at + l + 1; /* start of the next level when slash != NULL */
    /* [MQTT-4.7.2-1] a wildcard first level does not match "$..." names. */
    bool root = n == t->root;

    if (l == 1 && p[0] == '#') {
        /* "sport/#" matches "sport" too: n's own message. The root has none. */
        walk_subtree(w, n, root);
        return;
    }
    if (l == 1 && p[0] == '+') {
        for (uint32_t i = 0; i < n->kcap; i++) {
            const struct tree_node *k = n->kids[i];
            if (k == NULL || (root && dollar_label(k)))
                continue;
            if (slash == NULL)
                report(w, k);
            else
                walk_filter(w, t, k, next);
        }
        return;
    }
    const struct tree_node *k = tree_child(n, p, (uint32_t)l, tree_hash(t, p, l));
    if (k == NULL)
        return;
    if (slash == NULL)
        report(w, k);
    else
        walk_filter(w, t, k, next);
}

void retain_match(const struct retain *r, const uint8_t *filter, size_t len, retain_cb cb,
                  void *ctx)
{
    if (len == 0)
        return;
    struct walk w = {.cb = cb, .ctx = ctx, .f = filter, .flen = len};
    walk_filter(&w, &r->tree, r->tree.root, 0);
}

size_t retain_count(const struct retain *r)
{
    return r->count;
}

size_t retain_client_count(const struct retain *r)
{
    return r->count - r->sys_count;
}

size_t retain_bytes(const struct retain *r)
{
    return r->bytes;
}
