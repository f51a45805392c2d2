/*
 * Topic names and topic filters (MQTT 3.1.1 and 5.0, section 4.7): validation,
 * matching one filter against one name, and the "$share/{group}/{filter}"
 * split (section 4.8.2). Pure functions over byte strings that are not
 * NUL-terminated; no state, so any thread may call them.
 *
 * The subscription trie, the route replica and the retained store match many
 * filters or names at once; topic_match() is the reference they are tested
 * against, so it favours being obviously right over being fast.
 */
#include "topic.h"

#include <string.h>

#include "limits.h"

#define SHARE_PREFIX     "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

bool topic_name_valid(const uint8_t *name, size_t len)
{
    /* [MQTT-4.7.3-1] at least one byte; a UTF-8 string holds at most 65535. */
    if (len == 0 || len > TOPIC_LEN_MAX)
        return false;
    size_t levels = 1;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = name[i];
        if (c == '+' || c == '#') /* [MQTT-3.3.2-2] */
            return false;
        if (c == 0) /* [MQTT-4.7.3-2] */
            return false;
        if (c == '/' && ++levels > TOPIC_LEVELS_MAX)
            return false;
    }
    return true;
}

/* A filter that is not shared: every level is "+", "#" (last only) or a
 * literal without wildcard characters. Empty levels are valid [MQTT-4.7.1]. */
static bool filter_plain_valid(const uint8_t *f, size_t len)
{
    if (len == 0 || len > TOPIC_LEN_MAX)
        return false;
    size_t levels = 1;
    size_t start = 0; /* first byte of the current level */
    for (size_t i = 0; i < len; i++) {
        uint8_t c = f[i];
        switch (c) {
        case 0: /* [MQTT-4.7.3-2] */
            return false;
        case '/':
            if (++levels > TOPIC_LEVELS_MAX)
                return false;
            start = i + 1;
            break;
        case '+':
            /* [MQTT-4.7.1-3] the whole level: "sport+" is invalid. */
            if (i != start || (i + 1 < len && f[i + 1] != '/'))
                return false;
            break;
        case '#':
            /* [MQTT-4.7.1-2] the whole level, and the last one. */
            if (i != start || i + 1 != len)
                return false;
            break;
        default:
            break;
        }
    }
    return true;
}

/* Does the filter start with "$share/"? Only then is it shared: "$share" and
 * "$shared/x" are ordinary filters. */
static bool is_shared(const uint8_t *f, size_t len)
{
    return len >= SHARE_PREFIX_LEN && memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0;
}

bool topic_filter_valid(const uint8_t *filter, size_t len)
{
    if (len == 0 || len > TOPIC_LEN_MAX)
        return false;
    if (!is_shared(filter, len))
        return filter_plain_valid(filter, len);

    /* [MQTT-4.8.2-1] the group is at least one character, without '/', '+'
     * or '#'; [MQTT-4.8.2-2] it is followed by '/' and a topic filter. */
    const uint8_t *g = filter + SHARE_PREFIX_LEN;
    size_t rest = len - SHARE_PREFIX_LEN;
    size_t glen = 0;
    while (glen < rest && g[glen] != '/') {
        uint8_t c = g[glen];
        if (c == '+' || c == '#' || c == 0)
            return false;
        glen++;
    }
    if (glen == 0 || glen == rest)
        return false;
    return filter_plain_valid(g + glen + 1, rest - glen - 1);
}

bool topic_shared_split(const uint8_t *filter, size_t len, const uint8_t **group, size_t *group_len,
                        const uint8_t **inner, size_t *inner_len)
{
    if (!is_shared(filter, len))
        return false;
    const uint8_t *g = filter + SHARE_PREFIX_LEN;
    size_t rest = len - SHARE_PREFIX_LEN;
    const uint8_t *slash = memchr(g, '/', rest);
    if (slash == NULL) /* not valid: the caller broke the precondition */
        return false;
    *group = g;
    *group_len = (size_t)(slash - g);
    *inner = slash + 1;
    *inner_len = rest - *group_len - 1;
    return true;
}

size_t topic_levels(const uint8_t *topic, size_t len)
{
    size_t levels = 1;
    for (const uint8_t *p = topic, *end = topic + len; (p = memchr(p, '/', (size_t)(end - p))); p++)
        levels++;
    return levels;
}

bool topic_has_wildcard(const uint8_t *filter, size_t len)
{
    return memchr(filter, '+', len) != NULL || memchr(filter, '#', len) != NULL;
}

bool topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen)
{
    if (flen == 0 || nlen == 0)
        return false;
    /* [MQTT-4.7.2-1] "#" and "+/..." do not reach "$SYS/..." and friends. */
    if (name[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;

    size_t fi = 0, ni = 0;
    for (;;) {
        /* Both fi and ni are at the start of a level. */
        if (filter[fi] == '#' && fi + 1 == flen)
            return true; /* the rest of the name, however many levels */
        if (filter[fi] == '+' && (fi + 1 == flen || filter[fi + 1] == '/')) {
            fi++;
            while (ni < nlen && name[ni] != '/')
                ni++;
        } else {
            while (fi < flen && filter[fi] != '/') {
                if (ni == nlen || name[ni] != filter[fi])
                    return false;
                fi++;
                ni++;
            }
            if (ni < nlen && name[ni] != '/')
                return false; /* the name's level is longer */
        }
        /* Both at the end of a level. */
        if (fi == flen)
            return ni == nlen;
        if (ni == nlen) {
            /* "sport/#" matches "sport": '#' includes the parent level. */
            return flen - fi == 2 && filter[fi + 1] == '#';
        }
        fi++; /* both at '/' */
        ni++;
        if (fi == flen) /* "a/": the last level is empty */
            return ni == nlen;
    }
}
