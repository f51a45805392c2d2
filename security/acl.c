/*
 * The ACL engine (acl.h): an acl_file compiled into tries over topic
 * levels, and the three decisions made by walking them.
 *
 * One node array holds every trie. Node 1 is the root of the anonymous
 * block, node 2 the root of the patterns, node 3 a virtual node whose
 * children are the users' roots (labelled with the username, '/' and all).
 * A node's literal children are found through one open-addressing hash
 * table keyed by (parent id, level bytes), so a user's root is one lookup
 * from node 3 and each topic level one lookup from its parent, however
 * many users and rules there are; a node with a single literal child (the
 * chains per-user tries are mostly made of) names it and spares the table.
 * The `+` child hangs off its parent; the `%u` and `%c` children of the
 * few pattern nodes that have them sit in a side table. `#` is not a node
 * but the access bits of the rules "parent/#" kept on the parent. Each
 * node keeps the bits of the rules that end there (ACL_R, ACL_W, ACL_D)
 * and, for acl_may_subscribe and acl_may_read_all, a summary of the
 * read-allowing and the deny rules in its subtree; for the wildcard levels
 * of a subscription filter, every node's literal children are also listed
 * in one array. Deny patterns that use a placeholder are also kept as text
 * (acl_pattern.c), for the clients whose names the tries cannot use.
 *
 * A decision costs about 60-100 ns with 10,000 users of one rule each and
 * a few patterns (bench/acl_bench.c, on a loaded 2-vCPU VM: nodes in cache
 * or spread over 4,096 users' tries); a subscribe or a read_all about twice
 * that. A deny pattern using %u adds about 15 ns to each (the username's
 * scan, `acl-bench ... deny`); a client whose username such a pattern takes
 * as text pays about 40 ns more (`acl-bench ... odd`).
 *
 * acl_create builds all of it on the calling thread and never touches it
 * again; acl_destroy frees it. In between it is read-only, so shards share
 * it through the security snapshot without locks. Nothing here makes a
 * system call or keeps global state.
 *
 * The edge table's hash is not keyed: its entries come from the operator's
 * file, not from clients, so a client cannot fill a chain; a lookup with a
 * client's topic level costs at most the longest chain the file made, and
 * the table is kept under half full.
 */
#include "acl.h"
#include "acl_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "invariant.h"
#include "text.h"
#include "limits.h"
#include "topic.h"

/* Access bits of the rules that end at a node. */
#define ACL_R 1u
#define ACL_W 2u
#define ACL_D 4u

/* Fixed nodes. 0 is "no node" in every child field. */
#define NODE_NONE    0u
#define ROOT_ANON    1u
#define ROOT_PATTERN 2u
#define ROOT_USERS   3u
#define NODE_FIRST   4u

/* Where the read and the deny summaries sit in a node's sub. */
#define SUB_READ 0u
#define SUB_DENY 4u

/* A walk pushes at most four children per node it pops (literal, `+`,
 * `%u`, `%c`) and goes TOPIC_LEVELS_MAX deep, so at most three siblings
 * wait per level. */
#define WALK_STACK_MAX (4u * (TOPIC_LEVELS_MAX + 1u))
/* The edge table starts with this many slots and doubles. */
#define EDGES_MIN 64u
/* Labels up to this long live in their node (most topic levels and
 * usernames), longer ones in acl->labels. */
#define LABEL_INLINE_MAX 8u

_Static_assert(ACL_FILE_MAX <= UINT32_MAX, "label offsets are 32-bit");
_Static_assert(ACL_NAME_MAX <= UINT16_MAX && TOPIC_LEN_MAX <= UINT16_MAX,
               "a label's length is 16-bit");
_Static_assert(ACL_LINE_MAX > TOPIC_LEN_MAX + 64u, "a line holds the longest topic");
_Static_assert(ACL_FILE_MAX >= ACL_LINE_MAX, "a file holds the longest line");

enum node_kind {
    KIND_ROOT,
    KIND_USER,    /* a user's root, labelled with the username */
    KIND_LITERAL, /* a literal level, labelled with it */
    KIND_PLUS,
    KIND_PH_U,
    KIND_PH_C,
};

struct acl_node {
    uint32_t parent;
    uint32_t plus;     /* the `+` child */
    uint32_t only_kid; /* the literal child when there is exactly one */
    uint32_t ph;       /* the `%u` and `%c` children: acl->ph[ph]; 0 none */
    union {
        uint32_t off;                    /* in acl->labels, when longer */
        uint8_t bytes[LABEL_INLINE_MAX]; /* the label itself, when short */
    } label;
    uint16_t label_len;
    uint8_t kind;      /* enum node_kind */
    uint8_t has_kids;  /* literal children: acl->kids[kid_off[id] .. kid_off[id + 1]) */
    uint8_t bits;      /* ACL_R|W|D of the rules that end here */
    uint8_t hash_bits; /* ... of the rules that end in `#` here */
    uint8_t need;      /* ACL_NEED_U|ACL_NEED_C: placeholders from the root to here */
    /* Bit k: a read-allowing rule ends here or below whose placeholders
     * are the set k (0: none, 1: %u, 2: %c, 3: both); bit 4 + k: a deny
     * rule does (SUB_READ, SUB_DENY). */
    uint8_t sub;
};
/* Two to a cache line, aligned (trie_finish): a lookup's child is one
 * line. */
_Static_assert(sizeof(struct acl_node) == 32, "a node is half a cache line");

/* A slot of the edge table: the child and 32 bits of the (parent, label)
 * hash that its low bits did not already pick the slot by. The parent and
 * the label are checked on the child node, which the walk reads next
 * anyway: a slot is 8 bytes, and a lookup touches the slot and the child. */
struct acl_edge {
    uint32_t tag;
    uint32_t child; /* NODE_NONE: an empty slot */
};

struct acl {
    struct acl_node *nodes;
    uint32_t node_count;
    uint32_t node_cap;
    struct acl_edge *edges;
    size_t edge_cap; /* a power of two, at least twice edge_count */
    size_t edge_count;
    uint32_t (*ph)[2]; /* placeholder children of pattern nodes; [0] unused */
    uint32_t ph_count;
    uint32_t ph_cap;
    uint32_t *kid_off; /* node_count + 1 offsets into kids */
    uint32_t *kids;
    uint8_t *labels;
    size_t labels_len;
    size_t labels_cap;
    size_t rule_count;
    bool has_placeholders;
    struct acl_subst subst; /* deny patterns for odd names (acl_pattern.c) */
};

/* ------------------------------------------------------------------ */
/* Hashing and the edge table                                          */
/* ------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 29;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 32;
    return x;
}

static uint64_t load64(const uint8_t *s)
{
    uint64_t w;
    memcpy(&w, s, 8);
    return w;
}

static uint64_t load32(const uint8_t *s)
{
    uint32_t w;
    memcpy(&w, s, 4);
    return w;
}

/* A level's bytes, eight at a time; the last up-to-eight bytes are read
 * as two overlapping words (or three single bytes), so the tail costs no
 * loop and reads nothing outside s[0..n). Levels are short: this is most
 * of a decision's hashing. */
static uint64_t bytes_hash(const uint8_t *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n;
    uint64_t w;
    if (n > 8) {
        for (; n > 8; s += 8, n -= 8)
            h = mix64(h ^ load64(s));
        w = load64(s + n - 8);
    } else if (n >= 4) {
        w = load32(s) << 32 | load32(s + n - 4);
    } else if (n > 0) {
        w = (uint64_t)s[0] << 16 | (uint64_t)s[n >> 1] << 8 | s[n - 1];
    } else {
        w = 0;
    }
    return mix64(h ^ w);
}

/* Equal bytes, without a call for the short labels topics are made of. */
static bool bytes_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (n > 16)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

static uint64_t edge_hash(uint64_t label_hash, uint32_t parent)
{
    return mix64(label_hash ^ ((uint64_t)parent * 0x9e3779b97f4a7c15u));
}

static const uint8_t *node_label(const struct acl *a, const struct acl_node *n)
{
    return n->label_len <= LABEL_INLINE_MAX ? n->label.bytes : a->labels + n->label.off;
}

static uint32_t edge_tag(uint64_t h)
{
    return (uint32_t)(h >> 32);
}

/* The literal child of parent labelled s[0..n), or NODE_NONE; h is
 * edge_hash(bytes_hash(s, n), parent). */
static uint32_t edge_find(const struct acl *a, uint32_t parent, const uint8_t *s, size_t n,
                          uint64_t h)
{
    if (a->edge_cap == 0)
        return NODE_NONE;
    size_t mask = a->edge_cap - 1;
    uint32_t tag = edge_tag(h);
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const struct acl_edge *e = &a->edges[i];
        if (e->child == NODE_NONE)
            return NODE_NONE;
        if (e->tag == tag) {
            const struct acl_node *c = &a->nodes[e->child];
            if (c->parent == parent && c->label_len == n && bytes_eq(node_label(a, c), s, n))
                return e->child;
        }
    }
}

static void edge_put(struct acl_edge *t, size_t cap, uint64_t h, uint32_t child)
{
    size_t mask = cap - 1;
    size_t i = (size_t)h & mask;
    while (t[i].child != NODE_NONE)
        i = (i + 1) & mask;
    t[i] = (struct acl_edge){.tag = edge_tag(h), .child = child};
}

/* The (parent, label) hash of a literal or user node. */
static uint64_t node_hash(const struct acl *a, uint32_t id)
{
    const struct acl_node *n = &a->nodes[id];
    return edge_hash(bytes_hash(node_label(a, n), n->label_len), n->parent);
}

static bool edges_grow(struct acl *a)
{
    size_t cap = a->edge_cap ? a->edge_cap * 2 : EDGES_MIN;
    struct acl_edge *t = calloc(cap, sizeof(*t));
    if (!t)
        return false;
    for (size_t i = 0; i < a->edge_cap; i++)
        if (a->edges[i].child != NODE_NONE)
            edge_put(t, cap, node_hash(a, a->edges[i].child), a->edges[i].child);
    free(a->edges);
    a->edges = t;
    a->edge_cap = cap;
    return true;
}

/* ------------------------------------------------------------------ */
/* Building                                                            */
/* ------------------------------------------------------------------ */

/* A new node under parent, or NODE_NONE when out of memory. Moves
 * a->nodes: callers hold ids, not pointers, across it. */
static uint32_t node_new(struct acl *a, uint32_t parent, enum node_kind kind, const uint8_t *label,
                         size_t len)
{
    ASSERT(len <= UINT16_MAX);
    if (a->node_count == a->node_cap) {
        if (a->node_cap > UINT32_MAX / 2)
            return NODE_NONE;
        uint32_t cap = a->node_cap * 2;
        struct acl_node *n = realloc(a->nodes, (size_t)cap * sizeof(*n));
        if (!n)
            return NODE_NONE;
        a->nodes = n;
        a->node_cap = cap;
    }
    bool inline_label = len <= LABEL_INLINE_MAX;
    if (!inline_label && a->labels_len + len > a->labels_cap) {
        size_t cap = a->labels_cap ? a->labels_cap : 4096;
        while (cap < a->labels_len + len)
            cap *= 2;
        uint8_t *l = realloc(a->labels, cap);
        if (!l)
            return NODE_NONE;
        a->labels = l;
        a->labels_cap = cap;
    }
    uint32_t id = a->node_count++;
    struct acl_node *n = &a->nodes[id];
    memset(n, 0, sizeof(*n));
    n->parent = parent;
    n->kind = (uint8_t)kind;
    n->label_len = (uint16_t)len;
    if (inline_label && len > 0) {
        memcpy(n->label.bytes, label, len);
    } else if (!inline_label) {
        n->label.off = (uint32_t)a->labels_len;
        memcpy(a->labels + a->labels_len, label, len);
        a->labels_len += len;
    }
    n->need = a->nodes[parent].need;
    if (kind == KIND_PH_U)
        n->need |= ACL_NEED_U;
    if (kind == KIND_PH_C)
        n->need |= ACL_NEED_C;
    return id;
}

/* The literal (or user) child of parent labelled s[0..n), made if new. */
static uint32_t child_literal(struct acl *a, uint32_t parent, enum node_kind kind, const uint8_t *s,
                              size_t n)
{
    uint64_t h = edge_hash(bytes_hash(s, n), parent);
    uint32_t c = edge_find(a, parent, s, n, h);
    if (c != NODE_NONE)
        return c;
    if ((a->edge_count + 1) * 2 > a->edge_cap && !edges_grow(a))
        return NODE_NONE;
    c = node_new(a, parent, kind, s, n);
    if (c == NODE_NONE)
        return NODE_NONE;
    edge_put(a->edges, a->edge_cap, h, c);
    a->edge_count++;
    return c;
}

static uint32_t ph_child(const struct acl *a, const struct acl_node *n, int k)
{
    return n->ph ? a->ph[n->ph][k] : NODE_NONE;
}

/* The `+`, `%u` or `%c` child of parent, made if new. */
static uint32_t child_special(struct acl *a, uint32_t parent, enum node_kind kind)
{
    int k = kind == KIND_PH_U ? ACL_PH_U : ACL_PH_C;
    uint32_t c = kind == KIND_PLUS ? a->nodes[parent].plus : ph_child(a, &a->nodes[parent], k);
    if (c != NODE_NONE)
        return c;
    if (kind != KIND_PLUS && a->nodes[parent].ph == 0 && a->ph_count == a->ph_cap) {
        uint32_t cap = a->ph_cap ? a->ph_cap * 2 : 16;
        uint32_t(*ph)[2] = realloc(a->ph, (size_t)cap * sizeof(*ph));
        if (!ph)
            return NODE_NONE;
        a->ph = ph;
        a->ph_cap = cap;
        if (a->ph_count == 0)
            a->ph_count = 1; /* 0 is "none" */
    }
    c = node_new(a, parent, kind, NULL, 0);
    if (c == NODE_NONE)
        return NODE_NONE;
    struct acl_node *p = &a->nodes[parent];
    if (kind == KIND_PLUS) {
        p->plus = c;
        return c;
    }
    if (p->ph == 0) {
        p->ph = a->ph_count++;
        a->ph[p->ph][ACL_PH_U] = a->ph[p->ph][ACL_PH_C] = NODE_NONE;
    }
    a->ph[p->ph][k] = c;
    return c;
}

static bool is_level(const uint8_t *s, size_t n, const char *what)
{
    size_t w = strlen(what);
    return n == w && memcmp(s, what, w) == 0;
}

/* The end of the level that starts at f[start]. */
static size_t level_end(const uint8_t *f, size_t n, size_t start)
{
    if (start >= n)
        return n;
    const uint8_t *slash = memchr(f + start, '/', n - start);
    return slash ? (size_t)(slash - f) : n;
}

/* Adds a checked filter's rule under root. -1 when out of memory. */
static int trie_insert(struct acl *a, uint32_t root, const uint8_t *f, size_t n, uint8_t access,
                       bool pattern)
{
    uint32_t node = root;
    for (size_t start = 0;; start++) {
        size_t end = level_end(f, n, start);
        const uint8_t *l = f + start;
        size_t ln = end - start;
        if (is_level(l, ln, "#")) {
            a->nodes[node].hash_bits |= access;
            return 0;
        }
        if (is_level(l, ln, "+")) {
            node = child_special(a, node, KIND_PLUS);
        } else if (pattern && (is_level(l, ln, "%u") || is_level(l, ln, "%c"))) {
            node = child_special(a, node, l[1] == 'u' ? KIND_PH_U : KIND_PH_C);
            a->has_placeholders = true;
        } else {
            node = child_literal(a, node, KIND_LITERAL, l, ln);
        }
        if (node == NODE_NONE)
            return -1;
        if (end == n)
            break;
        start = end;
    }
    a->nodes[node].bits |= access;
    return 0;
}

/* After the last rule: the literal-children lists and the read summaries.
 * Children always have larger ids than their parents, so one pass from
 * the last id down sees every subtree before its root. */
static int trie_finish(struct acl *a)
{
    uint32_t count = a->node_count;
    a->kid_off = calloc((size_t)count + 1, sizeof(uint32_t));
    uint32_t *fill = malloc((size_t)count * sizeof(uint32_t));
    size_t bytes = ((size_t)count * sizeof(struct acl_node) + 63) & ~(size_t)63;
    struct acl_node *nodes = aligned_alloc(64, bytes);
    if (!a->kid_off || !fill || !nodes)
        goto fail;
    memcpy(nodes, a->nodes, (size_t)count * sizeof(struct acl_node));
    free(a->nodes);
    a->nodes = nodes;
    nodes = NULL;
    for (uint32_t id = NODE_FIRST; id < count; id++)
        if (a->nodes[id].kind == KIND_LITERAL)
            a->kid_off[a->nodes[id].parent + 1]++;
    for (uint32_t id = 0; id < count; id++) {
        a->nodes[id].has_kids = a->kid_off[id + 1] > 0;
        a->kid_off[id + 1] += a->kid_off[id];
        fill[id] = a->kid_off[id];
    }
    a->kids = malloc((size_t)(a->kid_off[count] ? a->kid_off[count] : 1) * sizeof(uint32_t));
    if (!a->kids)
        goto fail;
    for (uint32_t id = NODE_FIRST; id < count; id++)
        if (a->nodes[id].kind == KIND_LITERAL)
            a->kids[fill[a->nodes[id].parent]++] = id;
    free(fill);
    for (uint32_t id = 0; id < count; id++)
        if (a->kid_off[id + 1] - a->kid_off[id] == 1)
            a->nodes[id].only_kid = a->kids[a->kid_off[id]];
    for (uint32_t id = a->node_count - 1; id > NODE_NONE; id--) {
        struct acl_node *n = &a->nodes[id];
        if ((n->bits | n->hash_bits) & ACL_R)
            n->sub |= (uint8_t)(1u << (SUB_READ + n->need));
        if ((n->bits | n->hash_bits) & ACL_D)
            n->sub |= (uint8_t)(1u << (SUB_DENY + n->need));
        if (n->parent != NODE_NONE)
            a->nodes[n->parent].sub |= n->sub;
    }
    return 0;
fail:
    free(fill);
    free(nodes);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

struct parser {
    struct acl *a;
    const char *path;
    size_t line;
    uint32_t block; /* where topic lines go: ROOT_ANON or a user's root */
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    text_vfail(p->err, p->errlen, p->path, p->line, fmt, ap);
    va_end(ap);
    return -1;
}

/* isspace() in the C locale, which is what mosquitto trims. */
static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void trim(const uint8_t **s, size_t *n)
{
    while (*n > 0 && is_blank((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_blank((*s)[*n - 1]))
        (*n)--;
}

/* The length of the word at s: up to the first space (mosquitto splits on
 * spaces only). */
static size_t word_len(const uint8_t *s, size_t n)
{
    const uint8_t *sp = memchr(s, ' ', n);
    return sp ? (size_t)(sp - s) : n;
}

static void skip_spaces(const uint8_t **s, size_t *n)
{
    while (*n > 0 && (*s)[0] == ' ') {
        (*s)++;
        (*n)--;
    }
}

/* The access bits an access word stands for, or -1. */
static int access_word(const uint8_t *w, size_t n)
{
    if (is_level(w, n, "read"))
        return ACL_R;
    if (is_level(w, n, "write"))
        return ACL_W;
    if (is_level(w, n, "readwrite"))
        return ACL_R | ACL_W;
    if (is_level(w, n, "deny"))
        return ACL_D;
    return -1;
}

static bool has_placeholder(const uint8_t *l, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (l[i] == '%' && (l[i + 1] == 'u' || l[i + 1] == 'c'))
            return true;
    return false;
}

/* What is wrong with one level of a rule's topic, or NULL. */
static const char *level_problem(const uint8_t *l, size_t n, bool last, bool pattern)
{
    if (memchr(l, '#', n) && (n != 1 || !last))
        return "`#' must be a whole level and the last one";
    if (memchr(l, '+', n) && n != 1)
        return "`+' must be a whole level";
    if (pattern && has_placeholder(l, n) && !is_level(l, n, "%u") && !is_level(l, n, "%c"))
        return "`%u' and `%c' must be a whole level (mosquitto would splice the name into it)";
    if (!pattern && (is_level(l, n, "%u") || is_level(l, n, "%c")))
        return "`%u' and `%c' stand for a name only in `pattern' lines (a `topic' line takes "
               "them literally)";
    return NULL;
}

/* Checks a rule's topic as an MQTT filter; 0, or -1 with the message. */
static int check_filter(struct parser *p, const uint8_t *f, size_t n, bool pattern)
{
    char shown[TEXT_SHOW_LEN];
    if (n > TOPIC_LEN_MAX)
        return fail(p, "topic of %zu bytes, longer than %u", n, TOPIC_LEN_MAX);
    if (!codec_utf8_valid(f, n))
        return fail(p, "topic `%s' is not valid UTF-8", text_show(shown, f, n));
    size_t levels = 0;
    for (size_t start = 0;; start++) {
        size_t end = level_end(f, n, start);
        if (++levels > TOPIC_LEVELS_MAX)
            return fail(p, "topic `%s' has more than %u levels", text_show(shown, f, n),
                        TOPIC_LEVELS_MAX);
        const char *why = level_problem(f + start, end - start, end == n, pattern);
        if (why)
            return fail(p, "topic `%s': %s", text_show(shown, f, n), why);
        if (end == n)
            return 0;
        start = end;
    }
}

/* "topic ..." or "pattern ...": s holds what follows the keyword. */
static int parse_rule(struct parser *p, const uint8_t *s, size_t n, bool pattern)
{
    const char *kw = pattern ? "pattern" : "topic";
    char shown[TEXT_SHOW_LEN];
    skip_spaces(&s, &n);
    if (n == 0)
        return fail(p, "`%s' without a topic", kw);
    size_t wl = word_len(s, n);
    const uint8_t *topic = s + wl;
    size_t tn = n - wl;
    trim(&topic, &tn);
    int access = access_word(s, wl);
    if (tn == 0 && access >= 0)
        return fail(
            p, "`%s %s' without a topic (for the topic `%s' itself, write `%s readwrite %s')", kw,
            text_show(shown, s, wl), text_show(shown, s, wl), kw, text_show(shown, s, wl));
    if (tn == 0) {
        topic = s;
        tn = wl;
        access = ACL_R | ACL_W;
    } else if (access < 0) {
        return fail(p,
                    "unknown access `%s' (read, write, readwrite or deny; a topic with spaces "
                    "needs one of them before it)",
                    text_show(shown, s, wl));
    }
    if (p->a->rule_count >= ACL_RULES_MAX)
        return fail(p, "more than %u rules", ACL_RULES_MAX);
    if (check_filter(p, topic, tn, pattern))
        return -1;
    if (trie_insert(p->a, pattern ? ROOT_PATTERN : p->block, topic, tn, (uint8_t)access, pattern) ||
        (pattern && access == ACL_D && acl_subst_add(&p->a->subst, topic, tn))) {
        p->line = 0;
        return fail(p, "out of memory");
    }
    p->a->rule_count++;
    return 0;
}

/* "user NAME": s holds what follows the keyword. */
static int parse_user(struct parser *p, const uint8_t *s, size_t n)
{
    char shown[TEXT_SHOW_LEN];
    trim(&s, &n);
    if (n == 0)
        return fail(p, "`user' without a name");
    if (n > ACL_NAME_MAX)
        return fail(p, "user name of %zu bytes, longer than %u", n, ACL_NAME_MAX);
    if (!codec_utf8_valid(s, n))
        return fail(p, "user name `%s' is not valid UTF-8", text_show(shown, s, n));
    uint32_t u = child_literal(p->a, ROOT_USERS, KIND_USER, s, n);
    if (u == NODE_NONE) {
        p->line = 0;
        return fail(p, "out of memory");
    }
    p->block = u;
    return 0;
}

/* One line, without its '\n'. */
static int parse_line(struct parser *p, const uint8_t *s, size_t n)
{
    char shown[TEXT_SHOW_LEN];
    if (n > ACL_LINE_MAX)
        return fail(p, "line longer than %u bytes", ACL_LINE_MAX);
    if (memchr(s, 0, n))
        return fail(p, "the line holds a NUL byte (U+0000)");
    trim(&s, &n);
    if (n == 0 || s[0] == '#')
        return 0;
    size_t wl = word_len(s, n);
    if (is_level(s, wl, "topic"))
        return parse_rule(p, s + wl, n - wl, false);
    if (is_level(s, wl, "pattern"))
        return parse_rule(p, s + wl, n - wl, true);
    if (is_level(s, wl, "user"))
        return parse_user(p, s + wl, n - wl);
    bool blank = false;
    for (size_t i = 0; i < wl; i++)
        blank |= is_blank(s[i]);
    return fail(p, "unknown keyword `%s' (a line is `topic', `pattern' or `user'%s)",
                text_show(shown, s, wl), blank ? "; words are separated by spaces, not tabs" : "");
}

static struct acl *acl_alloc(void)
{
    struct acl *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->node_cap = 64;
    a->nodes = calloc(a->node_cap, sizeof(*a->nodes));
    if (!a->nodes) {
        free(a);
        return NULL;
    }
    a->node_count = NODE_FIRST;
    for (uint32_t id = ROOT_ANON; id < NODE_FIRST; id++)
        a->nodes[id].kind = KIND_ROOT;
    return a;
}

struct acl *acl_create(const uint8_t *bytes, size_t len, const char *path, char *err, size_t errlen)
{
    struct parser p = {.path = path, .block = ROOT_ANON, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (len > ACL_FILE_MAX) {
        fail(&p, "larger than %u bytes", ACL_FILE_MAX);
        return NULL;
    }
    p.a = acl_alloc();
    if (!p.a) {
        fail(&p, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < len;) {
        const uint8_t *nl = memchr(bytes + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - bytes) : len;
        p.line++;
        if (parse_line(&p, bytes + i, end - i))
            goto fail;
        i = end + 1;
    }
    p.line = 0;
    if (trie_finish(p.a)) {
        fail(&p, "out of memory");
        goto fail;
    }
    return p.a;
fail:
    acl_destroy(p.a);
    return NULL;
}

void acl_destroy(struct acl *a)
{
    if (!a)
        return;
    free(a->nodes);
    free(a->edges);
    free(a->ph);
    free(a->kid_off);
    free(a->kids);
    free(a->labels);
    acl_subst_fini(&a->subst);
    free(a);
}

size_t acl_rule_count(const struct acl *a)
{
    return a ? a->rule_count : 0;
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */
/* ------------------------------------------------------------------ */

static void levels_add(struct acl_levels *lv, size_t start, size_t end)
{
    lv->off[lv->n] = (uint32_t)start;
    lv->len[lv->n] = (uint16_t)(end - start);
    lv->hash[lv->n] = bytes_hash(lv->s + start, end - start);
    lv->n++;
}

/* A filter (checked by topic_filter_valid) into levels. */
static bool levels_split(struct acl_levels *lv, const uint8_t *s, size_t len)
{
    if (len == 0 || len > TOPIC_LEN_MAX)
        return false;
    lv->s = s;
    lv->n = 0;
    lv->dollar = s[0] == '$';
    for (size_t start = 0;; start++) {
        size_t end = level_end(s, len, start);
        if (lv->n == TOPIC_LEVELS_MAX)
            return false;
        levels_add(lv, start, end);
        if (end == len)
            return true;
        start = end;
    }
}

/* A topic name into levels, refused as topic_name_valid refuses it (no
 * '+', '#' or NUL [MQTT-3.3.2-2] [MQTT-4.7.3-2], 1..TOPIC_LEN_MAX bytes,
 * TOPIC_LEVELS_MAX levels), in the same pass. */
static bool name_split(struct acl_levels *lv, const uint8_t *s, size_t len)
{
    if (len == 0 || len > TOPIC_LEN_MAX)
        return false;
    lv->s = s;
    lv->n = 0;
    lv->dollar = s[0] == '$';
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c > '/')
            continue;
        if (c == '/') {
            if (lv->n == TOPIC_LEVELS_MAX - 1)
                return false;
            levels_add(lv, start, i);
            start = i + 1;
        } else if (c == '+' || c == '#' || c == 0) {
            return false;
        }
    }
    levels_add(lv, start, len);
    return true;
}

static bool level_is(const struct acl_levels *lv, uint32_t i, uint8_t c)
{
    return lv->len[i] == 1 && lv->s[lv->off[i]] == c;
}

/* The client's names as placeholder values. */
struct bind {
    const uint8_t *name[2];
    size_t len[2];
    bool has[2];  /* there is a name (a client without username has no %u) */
    bool ok[2];   /* ... and it may fill the placeholder: see bind_sets */
    uint8_t sets; /* bit k: every placeholder of set k can be filled */
};

static void bind_init(struct bind *b, const struct acl_who *w)
{
    b->name[ACL_PH_U] = w->username;
    b->len[ACL_PH_U] = w->username_len;
    b->has[ACL_PH_U] = w->has_username;
    b->name[ACL_PH_C] = w->client_id;
    b->len[ACL_PH_C] = w->client_id_len;
    b->has[ACL_PH_C] = true;
}

/* A name fills a placeholder only as one whole, ordinary level. */
static bool bindable(const uint8_t *s, size_t n)
{
    if (n == 0 || n > TOPIC_LEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == '+' || s[i] == '#')
            return false;
    return true;
}

/* Which placeholders the names may fill, for where a placeholder meets a
 * wildcard level of a filter (acl_may_subscribe). Matching a name against
 * a literal level needs none of it: a level of a valid topic name or
 * filter never holds '/', '+' or '#', so a name equal to a non-empty level
 * is one that may fill a placeholder (bind_matches refuses the empty). */
static void bind_sets(struct bind *b, const struct acl *a)
{
    for (int k = ACL_PH_U; k <= ACL_PH_C; k++)
        b->ok[k] = a->has_placeholders && b->has[k] && bindable(b->name[k], b->len[k]);
    unsigned have = (b->ok[ACL_PH_U] ? ACL_NEED_U : 0) | (b->ok[ACL_PH_C] ? ACL_NEED_C : 0);
    b->sets = 0;
    for (unsigned k = 0; k < 4; k++)
        if ((k & ~have) == 0)
            b->sets |= (uint8_t)(1u << k);
}

/* Does placeholder k, at depth d, match the literal level s[0..n)? Never
 * a first level starting with '$', as for wildcards [MQTT-4.7.2-1]. */
static bool bind_matches(const struct bind *b, int k, const uint8_t *s, size_t n, uint32_t d)
{
    return b->has[k] && n > 0 && b->len[k] == n && bytes_eq(b->name[k], s, n) &&
           !(d == 0 && s[0] == '$');
}

/* May placeholder k stand for some level at depth d? */
static bool bind_any(const struct bind *b, int k, uint32_t d)
{
    return b->ok[k] && !(d == 0 && b->name[k][0] == '$');
}

/* The root of the client's own block: its user's, the anonymous one, or
 * NODE_NONE for a username without a block. */
static uint32_t client_root(const struct acl *a, const struct acl_who *w)
{
    if (!w->has_username)
        return ROOT_ANON;
    if (w->username_len == 0 || w->username_len > ACL_NAME_MAX)
        return NODE_NONE;
    uint64_t h = edge_hash(bytes_hash(w->username, w->username_len), ROOT_USERS);
    return edge_find(a, ROOT_USERS, w->username, w->username_len, h);
}

/* The literal child of node id matching level l[0..ln) (whose bytes_hash
 * is lh), or NODE_NONE: without the edge table when it is the only one. */
static uint32_t child_find(const struct acl *a, uint32_t id, const uint8_t *l, size_t ln,
                           uint64_t lh)
{
    const struct acl_node *n = &a->nodes[id];
    if (!n->has_kids)
        return NODE_NONE;
    if (n->only_kid != NODE_NONE) {
        const struct acl_node *c = &a->nodes[n->only_kid];
        return c->label_len == ln && bytes_eq(node_label(a, c), l, ln) ? n->only_kid : NODE_NONE;
    }
    return edge_find(a, id, l, ln, edge_hash(lh, id));
}

struct step {
    uint32_t node;
    uint32_t depth; /* levels matched on the way to node */
};

#define PUSH(node_, depth_)                                                                        \
    do {                                                                                           \
        ASSERT(top < WALK_STACK_MAX);                                                              \
        st[top++] = (struct step){(node_), (depth_)};                                              \
    } while (0)

/* The access bits of every rule under root that matches topic t, stopping
 * at the first deny. */
static uint8_t walk_topic(const struct acl *a, uint32_t root, const struct acl_levels *t,
                          const struct bind *b)
{
    struct step st[WALK_STACK_MAX];
    size_t top = 0;
    uint8_t acc = 0;
    PUSH(root, 0);
    while (top > 0 && !(acc & ACL_D)) {
        struct step s = st[--top];
        const struct acl_node *n = &a->nodes[s.node];
        bool wild_ok = !(s.depth == 0 && t->dollar); /* [MQTT-4.7.2-1] */
        if (wild_ok)
            acc |= n->hash_bits; /* "x/#" matches "x" and everything under it */
        if (s.depth == t->n) {
            acc |= n->bits;
            continue;
        }
        const uint8_t *l = t->s + t->off[s.depth];
        size_t ln = t->len[s.depth];
        uint32_t c = child_find(a, s.node, l, ln, t->hash[s.depth]);
        if (c != NODE_NONE)
            PUSH(c, s.depth + 1);
        if (!wild_ok)
            continue;
        if (n->plus != NODE_NONE)
            PUSH(n->plus, s.depth + 1);
        for (int k = ACL_PH_U; k <= ACL_PH_C; k++)
            if (ph_child(a, n, k) != NODE_NONE && bind_matches(b, k, l, ln, s.depth))
                PUSH(ph_child(a, n, k), s.depth + 1);
    }
    return acc;
}

/* Does a rule under root with access bit (ACL_D, or ACL_R) cover the
 * filter f (match every topic f matches)? */
static bool walk_cover(const struct acl *a, uint32_t root, const struct acl_levels *f,
                       const struct bind *b, uint8_t bit)
{
    struct step st[WALK_STACK_MAX];
    size_t top = 0;
    PUSH(root, 0);
    while (top > 0) {
        struct step s = st[--top];
        const struct acl_node *n = &a->nodes[s.node];
        if ((n->hash_bits & bit) && !(s.depth == 0 && f->dollar))
            return true; /* "x/#" covers every filter that starts with x */
        if (s.depth == f->n) {
            if (n->bits & bit)
                return true;
            continue;
        }
        if (level_is(f, s.depth, '#'))
            continue; /* only a `#` covers a `#` */
        if (level_is(f, s.depth, '+')) {
            if (n->plus != NODE_NONE) /* only a `+` (or `#`) covers a `+` */
                PUSH(n->plus, s.depth + 1);
            continue;
        }
        const uint8_t *l = f->s + f->off[s.depth];
        size_t ln = f->len[s.depth];
        uint32_t c = child_find(a, s.node, l, ln, f->hash[s.depth]);
        if (c != NODE_NONE)
            PUSH(c, s.depth + 1);
        if (s.depth == 0 && f->dollar)
            continue;
        if (n->plus != NODE_NONE)
            PUSH(n->plus, s.depth + 1);
        for (int k = ACL_PH_U; k <= ACL_PH_C; k++)
            if (ph_child(a, n, k) != NODE_NONE && bind_matches(b, k, l, ln, s.depth))
                PUSH(ph_child(a, n, k), s.depth + 1);
    }
    return false;
}

#undef PUSH

/* A node on the intersection walk's path, and which of its candidate
 * children comes next. */
struct frame {
    uint32_t node;
    uint32_t next;
};

/* The next child of fr->node that can match filter level d, or NODE_NONE.
 * For a `+` or `#` level: every literal child (none starting with '$' at
 * the first level), then `+`, `%u`, `%c`; for a literal level: the equal
 * literal, then `+` and the placeholders that equal it. */
static uint32_t next_candidate(const struct acl *a, const struct acl_levels *f,
                               const struct bind *b, struct frame *fr, uint32_t d)
{
    const struct acl_node *n = &a->nodes[fr->node];
    const uint8_t *l = f->s + f->off[d];
    size_t ln = f->len[d];
    bool wild = level_is(f, d, '+') || level_is(f, d, '#');
    uint32_t first = a->kid_off[fr->node];
    uint32_t nkids = a->kid_off[fr->node + 1] - first;
    uint32_t base = wild ? nkids : 1;
    if (wild) {
        while (fr->next < nkids) {
            uint32_t c = a->kids[first + fr->next++];
            const struct acl_node *cn = &a->nodes[c];
            if (!(d == 0 && cn->label_len > 0 && node_label(a, cn)[0] == '$'))
                return c;
        }
    } else if (fr->next == 0) {
        fr->next = 1;
        uint32_t c = child_find(a, fr->node, l, ln, f->hash[d]);
        if (c != NODE_NONE)
            return c;
    }
    bool wild_ok = !(d == 0 && f->dollar);
    while (fr->next < base + 3) {
        uint32_t k = fr->next++ - base;
        if (k == 0 && n->plus != NODE_NONE && wild_ok)
            return n->plus;
        if (k == 0)
            continue;
        int ph = (int)k - 1;
        uint32_t c = ph_child(a, n, ph);
        if (c != NODE_NONE && (wild ? bind_any(b, ph, d) : bind_matches(b, ph, l, ln, d)))
            return c;
    }
    return NODE_NONE;
}

enum entered { ENTER_HIT, ENTER_STOP, ENTER_DESCEND };

/* Reaching node n after i filter levels, whose subtree holds a rule with
 * access bit that applies: does such a rule there intersect f, can none,
 * or look deeper? */
static enum entered enter_node(const struct acl *a, const struct acl_levels *f, uint32_t n,
                               uint32_t i, uint8_t bit)
{
    const struct acl_node *nd = &a->nodes[n];
    if ((nd->hash_bits & bit) && !(i == 0 && f->dollar))
        return ENTER_HIT; /* "x/#" meets every filter that starts with x */
    if (i == f->n)
        return (nd->bits & bit) ? ENTER_HIT : ENTER_STOP;
    if (i > 0 && level_is(f, i, '#'))
        return ENTER_HIT; /* the filter's `#` meets every rule in the subtree */
    return ENTER_DESCEND;
}

/* Which sets of placeholders the rules with access bit (ACL_R or ACL_D)
 * at or below node n use: bit k for set k. */
static unsigned sub_sets(const struct acl_node *n, uint8_t bit)
{
    return (unsigned)(n->sub >> (bit == ACL_R ? SUB_READ : SUB_DENY)) & 15u;
}

/* Does a rule under root with access bit (ACL_R, or ACL_D) intersect the
 * filter f? Each node is entered at most once (it has one path from the
 * root), and only when its subtree holds such a rule whose placeholders
 * this client fills. */
static bool walk_intersect(const struct acl *a, uint32_t root, const struct acl_levels *f,
                           const struct bind *b, uint8_t bit)
{
    if (!(sub_sets(&a->nodes[root], bit) & b->sets))
        return false;
    enum entered e = enter_node(a, f, root, 0, bit);
    if (e != ENTER_DESCEND)
        return e == ENTER_HIT;
    struct frame st[TOPIC_LEVELS_MAX];
    uint32_t d = 0; /* the depth of the top frame */
    st[0] = (struct frame){root, 0};
    for (;;) {
        uint32_t c = next_candidate(a, f, b, &st[d], d);
        if (c == NODE_NONE) {
            if (d == 0)
                return false;
            d--;
            continue;
        }
        if (!(sub_sets(&a->nodes[c], bit) & b->sets))
            continue;
        if (level_is(f, d, '#'))
            return true; /* a first-level `#`: anything below meets it */
        e = enter_node(a, f, c, d + 1, bit);
        if (e == ENTER_HIT)
            return true;
        if (e == ENTER_DESCEND) {
            d++;
            ASSERT(d < TOPIC_LEVELS_MAX);
            st[d] = (struct frame){c, 0};
        }
    }
}

/* The access bits of every rule that applies to who and matches t. */
static uint8_t topic_bits(const struct acl *a, const struct acl_who *w, const struct acl_levels *t)
{
    struct bind b;
    bind_init(&b, w);
    uint8_t acc = 0;
    uint32_t root = client_root(a, w);
    if (root != NODE_NONE)
        acc |= walk_topic(a, root, t, &b);
    if (!(acc & ACL_D))
        acc |= walk_topic(a, ROOT_PATTERN, t, &b);
    /* Only an answer that would allow needs the odd-name denies. */
    if ((acc & (ACL_R | ACL_W)) && !(acc & ACL_D) && a->subst.need &&
        acl_subst_denies(&a->subst, w, t, ACL_SUBST_MATCH))
        acc |= ACL_D;
    return acc;
}

static bool is_sys(const uint8_t *topic, size_t len)
{
    return len >= 4 && memcmp(topic, "$SYS", 4) == 0;
}

bool acl_may_publish(const struct acl *a, const struct acl_who *who, const uint8_t *topic,
                     size_t len)
{
    ASSERT(who);
    struct acl_levels t;
    if (is_sys(topic, len) || !name_split(&t, topic, len))
        return false;
    if (!a)
        return true;
    uint8_t bits = topic_bits(a, who, &t);
    return (bits & ACL_W) && !(bits & ACL_D);
}

bool acl_may_read(const struct acl *a, const struct acl_who *who, const uint8_t *topic, size_t len)
{
    ASSERT(who);
    struct acl_levels t;
    if (!name_split(&t, topic, len))
        return false;
    if (!a)
        return true;
    uint8_t bits = topic_bits(a, who, &t);
    return (bits & ACL_R) && !(bits & ACL_D);
}

/* The filter a subscription matches topics with: a shared one's F, into
 * f. False for an invalid filter. */
static bool filter_levels(struct acl_levels *f, const uint8_t *filter, size_t len)
{
    if (!topic_filter_valid(filter, len))
        return false;
    const uint8_t *group, *inner;
    size_t group_len, inner_len;
    if (topic_shared_split(filter, len, &group, &group_len, &inner, &inner_len)) {
        filter = inner;
        len = inner_len;
    }
    return levels_split(f, filter, len);
}

typedef bool (*walk_fn)(const struct acl *a, uint32_t root, const struct acl_levels *f,
                        const struct bind *b, uint8_t bit);

/* A filter judged against the client's two tries: false when some deny
 * rule passes deny_walk (subscribe: covers the filter; read_all: meets
 * it), else true when some read rule passes read_walk (subscribe: meets;
 * read_all: covers) and no substituted deny pattern passes subst. */
static bool filter_judge(const struct acl *a, const struct acl_who *who, const uint8_t *filter,
                         size_t len, walk_fn deny_walk, walk_fn read_walk,
                         enum acl_subst_test subst)
{
    ASSERT(who);
    struct acl_levels f;
    if (!filter_levels(&f, filter, len))
        return false;
    if (!a)
        return true;
    struct bind b;
    bind_init(&b, who);
    bind_sets(&b, a);
    uint32_t roots[2] = {client_root(a, who), ROOT_PATTERN};
    for (int i = 0; i < 2; i++)
        if (roots[i] != NODE_NONE && deny_walk(a, roots[i], &f, &b, ACL_D))
            return false;
    bool ok = false;
    for (int i = 0; i < 2 && !ok; i++)
        ok = roots[i] != NODE_NONE && read_walk(a, roots[i], &f, &b, ACL_R);
    return ok && !(a->subst.need && acl_subst_denies(&a->subst, who, &f, subst));
}

bool acl_may_subscribe(const struct acl *a, const struct acl_who *who, const uint8_t *filter,
                       size_t len)
{
    return filter_judge(a, who, filter, len, walk_cover, walk_intersect, ACL_SUBST_COVER);
}

bool acl_may_read_all(const struct acl *a, const struct acl_who *who, const uint8_t *filter,
                      size_t len)
{
    return filter_judge(a, who, filter, len, walk_intersect, walk_cover, ACL_SUBST_MEET);
}
