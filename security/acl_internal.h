/*
 * What acl.c and acl_pattern.c share, and nothing else includes: the
 * placeholder constants, a topic name or filter cut into levels, and the
 * list of deny patterns that acl_pattern.c applies with names substituted
 * as text (acl.h, "Placeholders"). Built on acl_create's thread, read-only
 * afterwards; pure.
 */
#ifndef RINGMQ_ACL_INTERNAL_H
#define RINGMQ_ACL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "limits.h"

/* The placeholders, as bits of a set (ACL_NEED_*) and as indexes (ACL_PH_*)
 * into per-placeholder arrays. */
#define ACL_NEED_U 1u
#define ACL_NEED_C 2u
#define ACL_PH_U   0
#define ACL_PH_C   1

/* A topic name or filter cut into levels, each with its hash (for the
 * tries' edge table; acl_pattern.c does not use it). */
struct acl_levels {
    const uint8_t *s;
    uint32_t n;
    bool dollar; /* the first level is a literal starting with '$' */
    uint32_t off[TOPIC_LEVELS_MAX];
    uint16_t len[TOPIC_LEVELS_MAX];
    uint64_t hash[TOPIC_LEVELS_MAX];
};

/* One level of a kept deny pattern: a literal (text[off..off+len)), `+`,
 * `#`, `%u` or `%c`. */
struct acl_subst_level {
    uint32_t off;
    uint16_t len;
    uint8_t kind; /* enum acl_subst_kind in acl_pattern.c */
};

/* One kept deny pattern: levels[first .. first + nlevels). */
struct acl_subst_rule {
    uint32_t first;
    uint16_t nlevels;
    uint16_t text_len; /* the pattern's bytes, placeholders included */
    uint8_t need;      /* ACL_NEED_U|ACL_NEED_C */
    uint8_t uses[2];   /* how many levels are `%u`, `%c` (by ACL_PH_*) */
};

/* Every `pattern deny` line that uses a placeholder, in file order. */
struct acl_subst {
    struct acl_subst_rule *rules;
    size_t count;
    size_t cap;
    struct acl_subst_level *levels;
    size_t nlevels;
    size_t levels_cap;
    uint8_t *text;
    size_t text_len;
    size_t text_cap;
    uint8_t need; /* the union of the rules' need: 0 when there is none */
};

/* Keeps the deny pattern f[0..n), a filter check_filter accepted, if it
 * uses a placeholder; does nothing otherwise. 0, or -1 when out of memory
 * (s is then as it was). */
int acl_subst_add(struct acl_subst *s, const uint8_t *f, size_t n);
void acl_subst_fini(struct acl_subst *s);

/* What a kept pattern is tested for: matching a topic name, covering a
 * subscription filter (every topic the filter matches, it matches), or
 * intersecting one (some topic matches both). */
enum acl_subst_test { ACL_SUBST_MATCH, ACL_SUBST_COVER, ACL_SUBST_MEET };

/* True when a kept pattern that applies to who through an odd name (acl.h:
 * one the tries do not fill a deny's placeholder with), substituted as
 * text, passes the test against l, or cannot be substituted (over
 * TOPIC_LEN_MAX bytes or TOPIC_LEVELS_MAX levels, or a name with a NUL byte
 * or not UTF-8): either way who is denied. False after one scan of the
 * names when none that the kept patterns use is odd (the tries then hold
 * the whole answer). Any thread; no allocation. */
bool acl_subst_denies(const struct acl_subst *s, const struct acl_who *who,
                      const struct acl_levels *l, enum acl_subst_test test);

#endif
