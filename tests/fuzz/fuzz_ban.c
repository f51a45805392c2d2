/*
 * libFuzzer target for security/ban.c.
 *
 * The input is a ban_file, optionally followed by a NUL byte and
 * NUL-separated queries: ban_list_create gets the bytes before the first
 * NUL. The target reads the file again its own way (a plain list of
 * (kind, name or range, expiry), expiry times checked through timegm and
 * gmtime_r rather than by counting days) and:
 *  - the file is refused exactly when the model finds a bad line, and the
 *    message reads "/fuzz/ban:LINE: ..." with LINE the model's first bad
 *    line;
 *  - a list counts the model's ban lines (ban_list_count), and for every
 *    query, every name in the file and those names one byte shorter or
 *    longer, ban_clientid_until and ban_username_until give the latest
 *    expiry of the model's bans of that kind and exact bytes, or 0 when
 *    it is not after now; ban_ip_until the same for the ip bans holding
 *    an address (each query that parses as a single address, each range's
 *    first and last address and their neighbours), at now 0, near the
 *    end of time, and one second before, at and after several expiries.
 * CIDR text itself is fuzz_netrule's; here netrule_parse_cidr is the
 * model's too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ban.h"
#include "codec.h"
#include "fuzz_input.h"

static const char path[] = "/fuzz/ban";
static const uint64_t hash_key[2] = {0x0123456789abcdefu, 0xfedcba9876543210u};

#define ENTRIES_MAX 1024u /* bans modelled; a file with more is skipped */
#define QUERIES_MAX 32u
#define TIMES_MAX   24u

enum kind { K_ID, K_USER, K_IP };

struct entry {
    enum kind kind;
    const uint8_t *name; /* into the decode buffer */
    size_t len;
    struct netrule_cidr cidr;
    uint64_t until;
};

static struct entry ents[ENTRIES_MAX];
static size_t n_ents;
static uint8_t *decoded; /* quoted names, decoded */
static size_t decoded_len;

static bool blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* The word at s[*pos..end), advancing *pos past it. */
static size_t word(const uint8_t *s, size_t *pos, size_t end)
{
    size_t start = *pos;
    while (*pos < end && !blank(s[*pos]))
        (*pos)++;
    return *pos - start;
}

static void skip(const uint8_t *s, size_t *pos, size_t end)
{
    while (*pos < end && blank(s[*pos]))
        (*pos)++;
}

/* "YYYY-MM-DDThh:mm:ssZ" through the C library: digits where the form
 * has them, and a time that timegm does not have to normalise. */
static bool model_expiry(const uint8_t *s, size_t n, uint64_t *until)
{
    static const char form[] = "0000-00-00T00:00:00Z";
    if (n != sizeof(form) - 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        if (form[i] == '0' ? !digit : s[i] != (uint8_t)form[i])
            return false;
    }
    int v[6];
    static const int at[6] = {0, 5, 8, 11, 14, 17}, width[6] = {4, 2, 2, 2, 2, 2};
    for (int k = 0; k < 6; k++) {
        v[k] = 0;
        for (int j = 0; j < width[k]; j++)
            v[k] = v[k] * 10 + (s[at[k] + j] - '0');
    }
    struct tm tm = {.tm_year = v[0] - 1900,
                    .tm_mon = v[1] - 1,
                    .tm_mday = v[2],
                    .tm_hour = v[3],
                    .tm_min = v[4],
                    .tm_sec = v[5]};
    time_t t = timegm(&tm);
    struct tm back;
    if (v[0] < 1970 || !gmtime_r(&t, &back))
        return false;
    if (back.tm_year != v[0] - 1900 || back.tm_mon != v[1] - 1 || back.tm_mday != v[2] ||
        back.tm_hour != v[3] || back.tm_min != v[4] || back.tm_sec != v[5])
        return false;
    *until = (uint64_t)t;
    return true;
}

/* The name at s[*pos..end), quoted or bare, into *e. */
static bool model_name(const uint8_t *s, size_t *pos, size_t end, struct entry *e)
{
    if (s[*pos] != '"') {
        e->name = s + *pos;
        e->len = word(s, pos, end);
        if (memchr(e->name, '"', e->len))
            return false;
    } else {
        e->name = decoded + decoded_len;
        size_t i = *pos + 1;
        for (;; i++) {
            if (i >= end)
                return false;
            if (s[i] == '"')
                break;
            if (s[i] == '\\') {
                if (i + 1 >= end || (s[i + 1] != '"' && s[i + 1] != '\\'))
                    return false;
                i++;
            }
            decoded[decoded_len++] = s[i];
        }
        e->len = (size_t)(decoded + decoded_len - e->name);
        *pos = i + 1;
        if (*pos < end && !blank(s[*pos]))
            return false;
    }
    return e->len >= 1 && e->len <= BAN_NAME_MAX && codec_utf8_valid(e->name, e->len);
}

/* One line: 1 a ban into *e, 0 nothing, -1 a bad line. */
static int model_line(const uint8_t *s, size_t n, struct entry *e)
{
    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (n > BAN_LINE_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (s[i] == 0 || s[i] == 0x7f || (s[i] < 0x20 && s[i] != '\t'))
            return -1;
    size_t pos = 0, end = n;
    skip(s, &pos, end);
    while (end > pos && blank(s[end - 1]))
        end--;
    if (pos == end || s[pos] == '#')
        return 0;
    const uint8_t *kw = s + pos;
    size_t kl = word(s, &pos, end);
    if (kl == 8 && memcmp(kw, "clientid", 8) == 0)
        e->kind = K_ID;
    else if (kl == 8 && memcmp(kw, "username", 8) == 0)
        e->kind = K_USER;
    else if (kl == 2 && memcmp(kw, "ip", 2) == 0)
        e->kind = K_IP;
    else
        return -1;
    skip(s, &pos, end);
    if (pos == end)
        return -1;
    if (e->kind == K_IP) {
        const uint8_t *w = s + pos;
        size_t wl = word(s, &pos, end);
        if (netrule_parse_cidr((const char *)w, wl, &e->cidr, NULL, 0))
            return -1;
    } else if (!model_name(s, &pos, end, e)) {
        return -1;
    }
    e->until = BAN_FOREVER;
    skip(s, &pos, end);
    if (pos < end && s[pos] != '#') {
        const uint8_t *w = s + pos;
        size_t wl = word(s, &pos, end);
        if (!model_expiry(w, wl, &e->until))
            return -1;
        skip(s, &pos, end);
        if (pos < end && s[pos] != '#')
            return -1;
    }
    return 1;
}

/* The model's reading: 0 when the file is taken, else its first bad line;
 * SIZE_MAX when it holds more bans than are modelled. */
static size_t model_file(const uint8_t *data, size_t len, size_t *bans)
{
    size_t line = 0;
    *bans = 0;
    for (size_t i = 0; i < len;) {
        const uint8_t *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) : len;
        line++;
        struct entry e;
        int r = model_line(data + i, end - i, &e);
        if (r < 0)
            return line;
        if (r > 0 && (*bans)++ == BAN_ENTRIES_MAX)
            return line;
        if (r > 0 && n_ents == ENTRIES_MAX)
            return SIZE_MAX;
        if (r > 0)
            ents[n_ents++] = e;
        i = end + 1;
    }
    return 0;
}

static void check_refusal(const char *err, size_t bad_line)
{
    size_t pl = strlen(path);
    CHECK(strncmp(err, path, pl) == 0 && err[pl] == ':');
    char *after;
    unsigned long line = strtoul(err + pl + 1, &after, 10);
    CHECK(after != err + pl + 1 && after[0] == ':' && after[1] == ' ');
    if (line != bad_line)
        fprintf(stderr, "fuzz_ban: refused at line %lu, the model at %zu: %s\n", line, bad_line,
                err);
    CHECK(line == bad_line);
}

/* ---- queries ---- */

static uint64_t times[TIMES_MAX];
static size_t n_times;

static void add_time(uint64_t t)
{
    if (n_times < TIMES_MAX)
        times[n_times++] = t;
}

static uint64_t model_name_until(enum kind kind, const uint8_t *q, size_t len, uint64_t now)
{
    uint64_t best = 0;
    for (size_t i = 0; i < n_ents; i++)
        if (ents[i].kind == kind && ents[i].len == len && memcmp(ents[i].name, q, len) == 0 &&
            ents[i].until > best)
            best = ents[i].until;
    return best > now ? best : 0;
}

static uint64_t model_ip_until(const struct netrule_addr *a, uint64_t now)
{
    uint64_t best = 0;
    for (size_t i = 0; i < n_ents; i++)
        if (ents[i].kind == K_IP && netrule_cidr_contains(&ents[i].cidr, a) && ents[i].until > best)
            best = ents[i].until;
    return best > now ? best : 0;
}

static void query_name(const struct ban_list *l, const uint8_t *q, size_t len)
{
    for (size_t t = 0; t < n_times; t++) {
        uint64_t now = times[t];
        CHECK(ban_clientid_until(l, q, len, now) == model_name_until(K_ID, q, len, now));
        CHECK(ban_username_until(l, q, len, now) == model_name_until(K_USER, q, len, now));
        CHECK(ban_clientid(l, q, len, now) == (model_name_until(K_ID, q, len, now) != 0));
    }
}

static void query_addr(const struct ban_list *l, const struct netrule_addr *a)
{
    for (size_t t = 0; t < n_times; t++) {
        CHECK(ban_ip_until(l, a, times[t]) == model_ip_until(a, times[t]));
        CHECK(ban_ip(l, a, times[t]) == (model_ip_until(a, times[t]) != 0));
    }
}

/* A range's edges and their neighbours. */
static void query_edges(const struct ban_list *l, const struct netrule_cidr *c)
{
    unsigned bits = c->addr.family == NETRULE_V4 ? 32u : 128u;
    struct netrule_addr lo = c->addr, hi = c->addr;
    for (unsigned i = c->prefix_len; i < bits; i++)
        hi.bytes[i / 8] |= (uint8_t)(0x80u >> (i % 8));
    query_addr(l, &lo);
    query_addr(l, &hi);
    for (int k = 0; k < 2; k++) {
        struct netrule_addr a = k ? hi : lo;
        for (int i = (int)bits / 8 - 1; i >= 0; i--) {
            uint8_t before = a.bytes[i];
            a.bytes[i] = (uint8_t)(before + (k ? 1 : -1));
            if (before != (k ? 0xff : 0))
                break;
        }
        query_addr(l, &a);
    }
}

static void check_list(const struct ban_list *l, const uint8_t *q, size_t qlen)
{
    n_times = 0;
    add_time(0);
    add_time(UINT64_MAX - 1);
    for (size_t i = 0; i < n_ents && n_times + 3 <= TIMES_MAX; i++) {
        if (ents[i].until == BAN_FOREVER || ents[i].until == 0)
            continue;
        add_time(ents[i].until - 1);
        add_time(ents[i].until);
        add_time(ents[i].until + 1);
    }
    static uint8_t longer[BAN_NAME_MAX + 1];
    for (size_t i = 0; i < n_ents; i++) {
        if (ents[i].kind == K_IP) {
            query_edges(l, &ents[i].cidr);
            continue;
        }
        query_name(l, ents[i].name, ents[i].len);
        query_name(l, ents[i].name, ents[i].len - 1);
        memcpy(longer, ents[i].name, ents[i].len);
        longer[ents[i].len] = 'x';
        query_name(l, longer, ents[i].len + 1);
    }
    size_t nq = 0;
    for (size_t i = 0; i < qlen && nq < QUERIES_MAX; nq++) {
        const uint8_t *z = memchr(q + i, '\0', qlen - i);
        size_t end = z ? (size_t)(z - q) : qlen;
        query_name(l, q + i, end - i);
        struct netrule_cidr c;
        if (netrule_parse_cidr((const char *)q + i, end - i, &c, NULL, 0) == 0)
            query_edges(l, &c);
        i = end + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t len = nul ? (size_t)(nul - data) : size;
    n_ents = 0;
    decoded_len = 0;
    decoded = malloc(len + 1);
    CHECK(decoded);
    size_t bans;
    size_t bad = model_file(data, len, &bans);
    char err[512];
    struct ban_list *l = ban_list_create(len ? data : NULL, len, path, hash_key, err, sizeof(err));
    if (bad == SIZE_MAX) {
        /* Too many bans to model: only no crash. */
    } else if (bad) {
        CHECK(l == NULL);
        check_refusal(err, bad);
    } else {
        if (!l)
            fprintf(stderr, "fuzz_ban: refused a file the model takes: %s\n", err);
        CHECK(l != NULL);
        CHECK(ban_list_count(l) == bans);
        check_list(l, nul ? nul + 1 : data + size, nul ? size - len - 1 : 0);
    }
    ban_list_destroy(l);
    free(decoded);
    return 0;
}
