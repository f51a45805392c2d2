/*
 * The verified-credential cache (security/cred_cache.h): only what was put
 * hits, only under its generation and before it expires; a full set loses
 * its entry that expires first; the MAC separates its three inputs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cred_cache.h"

static const uint8_t key[CRED_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
#define TTL_MS 600000u

static void mac_of(const char *user, const char *pw, uint32_t listener, uint8_t out[CRED_MAC_LEN])
{
    cred_cache_mac(key, listener, (const uint8_t *)user, strlen(user), (const uint8_t *)pw,
                   strlen(pw), out);
}

Test(cred_cache, mac_separates_its_inputs)
{
    uint8_t a[CRED_MAC_LEN], b[CRED_MAC_LEN];
    mac_of("alice", "wonderland", 0, a);
    mac_of("alice", "wonderland", 0, b);
    cr_expect_eq(memcmp(a, b, CRED_MAC_LEN), 0, "deterministic");
    mac_of("alicew", "onderland", 0, b); /* same bytes, split elsewhere */
    cr_expect_neq(memcmp(a, b, CRED_MAC_LEN), 0);
    mac_of("alice", "wonderland", 1, b); /* another listener */
    cr_expect_neq(memcmp(a, b, CRED_MAC_LEN), 0);
    mac_of("alice", "Wonderland", 0, b);
    cr_expect_neq(memcmp(a, b, CRED_MAC_LEN), 0);
    uint8_t other_key[CRED_KEY_LEN] = {9};
    cred_cache_mac(other_key, 0, (const uint8_t *)"alice", 5, (const uint8_t *)"wonderland", 10, b);
    cr_expect_neq(memcmp(a, b, CRED_MAC_LEN), 0, "keyed");
}

Test(cred_cache, hits_only_what_was_put_under_its_generation_until_it_expires)
{
    struct cred_cache *c = cred_cache_create();
    cr_assert_not_null(c);
    uint8_t a[CRED_MAC_LEN], wrong[CRED_MAC_LEN];
    mac_of("alice", "wonderland", 0, a);
    mac_of("alice", "guess", 0, wrong);
    cr_expect_not(cred_cache_hit(c, a, 7, 1000), "empty");
    cred_cache_put(c, a, 7, 1000, TTL_MS);
    cr_expect(cred_cache_hit(c, a, 7, 1001));
    cr_expect_not(cred_cache_hit(c, wrong, 7, 1001), "a wrong password never hits");
    cr_expect_not(cred_cache_hit(c, a, 8, 1001), "a reload forgets it");
    cr_expect(cred_cache_hit(c, a, 7, 1000 + TTL_MS - 1));
    cr_expect_not(cred_cache_hit(c, a, 7, 1000 + TTL_MS), "expired");
    cr_expect_eq(cred_cache_count(c, 1001), 1);
    cred_cache_put(c, a, 7, 5000, TTL_MS); /* put again: refreshed, not doubled */
    cr_expect_eq(cred_cache_count(c, 5001), 1);
    cr_expect(cred_cache_hit(c, a, 7, 1000 + TTL_MS));
    cred_cache_destroy(c);
}

Test(cred_cache, null_cache_and_zero_mac_never_hit)
{
    uint8_t a[CRED_MAC_LEN];
    mac_of("alice", "wonderland", 0, a);
    cr_expect_not(cred_cache_hit(NULL, a, 1, 0));
    cred_cache_put(NULL, a, 1, 0, TTL_MS); /* nothing, no crash */
    struct cred_cache *off = cred_cache_create();
    cred_cache_put(off, a, 1, 0, 0); /* auth_cache_seconds 0 */
    cr_expect_not(cred_cache_hit(off, a, 1, 0), "a ttl of 0 remembers nothing");
    cred_cache_destroy(off);
    struct cred_cache *c = cred_cache_create();
    uint8_t zero[CRED_MAC_LEN] = {0};
    cred_cache_put(c, zero, 1, 0, TTL_MS);
    cr_expect_not(cred_cache_hit(c, zero, 1, 1), "a failed MAC (zeros) is never remembered");
    cr_expect_eq(cred_cache_count(c, 1), 0);
    cred_cache_destroy(c);
}

/* MACs with the same set index (their first 4 bytes pick the set). */
static void same_set(uint8_t out[CRED_MAC_LEN], unsigned i)
{
    memset(out, 0, CRED_MAC_LEN);
    out[0] = 0x11; /* set 0x11 */
    out[10] = (uint8_t)(i + 1);
}

Test(cred_cache, a_full_set_loses_the_entry_that_expires_first)
{
    struct cred_cache *c = cred_cache_create();
    uint8_t m[6][CRED_MAC_LEN];
    for (unsigned i = 0; i < 6; i++)
        same_set(m[i], i);
    for (unsigned i = 0; i < 4; i++)
        cred_cache_put(c, m[i], 1, 100 + i, TTL_MS); /* m[0] expires first */
    for (unsigned i = 0; i < 4; i++)
        cr_expect(cred_cache_hit(c, m[i], 1, 200), "%u", i);
    cred_cache_put(c, m[4], 1, 300, TTL_MS);
    cr_expect_not(cred_cache_hit(c, m[0], 1, 301), "the oldest went");
    for (unsigned i = 1; i < 5; i++)
        cr_expect(cred_cache_hit(c, m[i], 1, 301), "%u", i);
    /* An entry from an older generation is the first to be replaced. */
    cred_cache_put(c, m[5], 2, 400, TTL_MS);
    cr_expect(cred_cache_hit(c, m[5], 2, 401));
    cred_cache_destroy(c);
}

Test(cred_cache, many_users_fill_the_table_without_growing)
{
    struct cred_cache *c = cred_cache_create();
    char user[32];
    for (unsigned i = 0; i < 3 * CRED_CACHE_SLOTS; i++) {
        snprintf(user, sizeof(user), "user%u", i);
        uint8_t a[CRED_MAC_LEN];
        mac_of(user, "pw", 0, a);
        cred_cache_put(c, a, 1, 10, TTL_MS);
    }
    cr_expect_leq(cred_cache_count(c, 11), CRED_CACHE_SLOTS);
    cr_expect_geq(cred_cache_count(c, 11), CRED_CACHE_SLOTS * 9 / 10, "the sets fill evenly");
    cred_cache_destroy(c);
}
