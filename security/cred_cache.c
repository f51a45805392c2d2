/*
 * The verified-credential cache (cred_cache.h): a set-associative table of
 * MACs, each with the generation it was verified under and its expiry.
 */
#include "cred_cache.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"

#define WAYS 4u
#define SETS (CRED_CACHE_SLOTS / WAYS)
_Static_assert((SETS & (SETS - 1)) == 0, "a power of two of sets");

struct cred_entry {
    uint8_t mac[CRED_MAC_LEN];
    uint64_t generation;
    uint64_t expires_ms; /* 0: empty */
};

struct cred_cache {
    struct cred_entry e[SETS][WAYS];
};

struct cred_cache *cred_cache_create(void)
{
    return calloc(1, sizeof(struct cred_cache));
}

void cred_cache_destroy(struct cred_cache *c)
{
    if (!c)
        return;
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

static void put_len(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
}

void cred_cache_mac(const uint8_t key[CRED_KEY_LEN], uint32_t listener, const uint8_t *user,
                    size_t user_len, const uint8_t *password, size_t password_len,
                    uint8_t out[CRED_MAC_LEN])
{
    HMAC_CTX h;
    HMAC_CTX_init(&h);
    uint8_t len[8];
    unsigned n = 0;
    bool ok = HMAC_Init_ex(&h, key, CRED_KEY_LEN, EVP_sha256(), NULL);
    put_len(len, listener);
    ok = ok && HMAC_Update(&h, len, sizeof(len));
    put_len(len, user_len);
    ok = ok && HMAC_Update(&h, len, sizeof(len)) && HMAC_Update(&h, user, user_len);
    put_len(len, password_len);
    ok = ok && HMAC_Update(&h, len, sizeof(len)) && HMAC_Update(&h, password, password_len);
    ok = ok && HMAC_Final(&h, out, &n) && n == CRED_MAC_LEN;
    HMAC_CTX_cleanup(&h);
    if (!ok)
        memset(out, 0, CRED_MAC_LEN); /* never put (cred_cache_put refuses zeros) */
}

static uint32_t set_of(const uint8_t mac[CRED_MAC_LEN])
{
    uint32_t v =
        (uint32_t)mac[0] | (uint32_t)mac[1] << 8 | (uint32_t)mac[2] << 16 | (uint32_t)mac[3] << 24;
    return v & (SETS - 1);
}

static bool all_zero(const uint8_t mac[CRED_MAC_LEN])
{
    uint8_t acc = 0;
    for (unsigned i = 0; i < CRED_MAC_LEN; i++)
        acc |= mac[i];
    return acc == 0;
}

bool cred_cache_hit(const struct cred_cache *c, const uint8_t mac[CRED_MAC_LEN],
                    uint64_t generation, uint64_t now_ms)
{
    if (!c || all_zero(mac))
        return false;
    const struct cred_entry *set = c->e[set_of(mac)];
    bool hit = false;
    for (unsigned w = 0; w < WAYS; w++) {
        const struct cred_entry *e = &set[w];
        bool live = e->expires_ms > now_ms && e->generation == generation;
        hit |= live && CRYPTO_memcmp(e->mac, mac, CRED_MAC_LEN) == 0;
    }
    return hit;
}

void cred_cache_put(struct cred_cache *c, const uint8_t mac[CRED_MAC_LEN], uint64_t generation,
                    uint64_t now_ms, uint64_t ttl_ms)
{
    if (!c || ttl_ms == 0 || all_zero(mac))
        return;
    struct cred_entry *set = c->e[set_of(mac)];
    struct cred_entry *slot = NULL;
    for (unsigned w = 0; w < WAYS && !slot; w++)
        if (CRYPTO_memcmp(set[w].mac, mac, CRED_MAC_LEN) == 0)
            slot = &set[w]; /* the same credentials again: refresh */
    for (unsigned w = 0; w < WAYS && !slot; w++)
        if (set[w].expires_ms <= now_ms || set[w].generation != generation)
            slot = &set[w]; /* empty, expired or from an older snapshot */
    if (!slot) {
        slot = &set[0];
        for (unsigned w = 1; w < WAYS; w++)
            if (set[w].expires_ms < slot->expires_ms)
                slot = &set[w];
    }
    memcpy(slot->mac, mac, CRED_MAC_LEN);
    slot->generation = generation;
    slot->expires_ms = now_ms + ttl_ms;
}

size_t cred_cache_count(const struct cred_cache *c, uint64_t now_ms)
{
    size_t n = 0;
    for (unsigned s = 0; c && s < SETS; s++)
        for (unsigned w = 0; w < WAYS; w++)
            n += c->e[s][w].expires_ms > now_ms;
    return n;
}
