/*
 * The soak's ledger (see ledger.h). A stream grows by doubling, its flags
 * and delivery counts together, so an index below `next` is always backed
 * by zeroed memory; nothing here fails after ledger_publish succeeded.
 */
#include "ledger.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ledger_init(struct ledger *l, uint32_t npubs, const uint8_t *qos, uint32_t nrecv,
                uint64_t max_per_pub)
{
    memset(l, 0, sizeof(*l));
    if (npubs == 0 || nrecv == 0 || max_per_pub == 0)
        return -EINVAL;
    l->s = calloc(npubs, sizeof(*l->s));
    if (!l->s)
        return -ENOMEM;
    l->npubs = npubs;
    l->nrecv = nrecv;
    l->max_per_pub = max_per_pub;
    for (uint32_t p = 0; p < npubs; p++) {
        if (qos[p] != 1 && qos[p] != 2) {
            ledger_fini(l);
            return -EINVAL;
        }
        l->s[p].qos = qos[p];
    }
    return 0;
}

void ledger_fini(struct ledger *l)
{
    for (uint32_t p = 0; l->s && p < l->npubs; p++) {
        free(l->s[p].flags);
        free(l->s[p].recv);
    }
    free(l->s);
    memset(l, 0, sizeof(*l));
}

static int stream_grow(struct ledger *l, struct ledger_stream *s)
{
    uint64_t cap = s->cap ? s->cap * 2u : LEDGER_CHUNK_MIN;
    if (cap > l->max_per_pub)
        cap = l->max_per_pub;
    if (cap <= s->cap)
        return -ENOSPC;
    uint8_t *f = realloc(s->flags, cap);
    if (!f)
        return -ENOMEM;
    s->flags = f;
    uint8_t *r = realloc(s->recv, cap * l->nrecv);
    if (!r)
        return -ENOMEM; /* flags grew alone: harmless, cap stays */
    s->recv = r;
    memset(s->flags + s->cap, 0, cap - s->cap);
    memset(s->recv + s->cap * l->nrecv, 0, (cap - s->cap) * l->nrecv);
    s->cap = cap;
    return 0;
}

int ledger_publish(struct ledger *l, uint32_t pub, uint64_t *seq)
{
    struct ledger_stream *s = &l->s[pub];
    if (s->next == s->cap) {
        int r = stream_grow(l, s);
        if (r)
            return r;
    }
    *seq = s->next++;
    return 0;
}

bool ledger_known(const struct ledger *l, uint32_t pub, uint64_t seq)
{
    return pub < l->npubs && seq < l->s[pub].next;
}

bool ledger_ack(struct ledger *l, uint32_t pub, uint64_t seq, bool refused)
{
    if (!ledger_known(l, pub, seq))
        return false;
    uint8_t *f = &l->s[pub].flags[seq];
    if (refused) {
        *f |= LEDGER_REFUSED;
        return false;
    }
    bool first = !(*f & LEDGER_ACKED);
    *f |= LEDGER_ACKED;
    return first;
}

uint32_t ledger_deliver(struct ledger *l, uint32_t pub, uint64_t seq, uint32_t r)
{
    if (!ledger_known(l, pub, seq) || r >= l->nrecv)
        return 0;
    uint8_t *n = &l->s[pub].recv[seq * l->nrecv + r];
    if (*n < UINT8_MAX)
        (*n)++;
    return *n;
}

void ledger_tally(const struct ledger *l, struct ledger_tally *t)
{
    memset(t, 0, sizeof(*t));
    for (uint32_t p = 0; p < l->npubs; p++) {
        const struct ledger_stream *s = &l->s[p];
        unsigned q = s->qos;
        for (uint64_t i = 0; i < s->next; i++) {
            uint8_t f = s->flags[i];
            bool acked = f & LEDGER_ACKED;
            t->published[q]++;
            if (acked)
                t->acked[q]++;
            else if (f & LEDGER_REFUSED)
                t->refused[q]++;
            const uint8_t *n = &s->recv[i * l->nrecv];
            bool got = false;
            for (uint32_t r = 0; r < l->nrecv; r++) {
                t->delivered[q] += n[r];
                if (n[r] > 1) {
                    t->duplicates[q] += n[r] - 1u;
                    t->dup_pairs[q]++;
                }
                if (n[r])
                    got = true;
                if (acked) {
                    t->expected[q]++;
                    if (n[r] == 0)
                        t->lost[q]++;
                }
            }
            if (!acked && got)
                t->unacked_got[q]++;
        }
    }
}

size_t ledger_lost(const struct ledger *l, struct ledger_miss *out, size_t max)
{
    size_t k = 0;
    for (uint32_t p = 0; p < l->npubs && k < max; p++) {
        const struct ledger_stream *s = &l->s[p];
        for (uint64_t i = 0; i < s->next && k < max; i++) {
            if (!(s->flags[i] & LEDGER_ACKED))
                continue;
            for (uint32_t r = 0; r < l->nrecv && k < max; r++)
                if (s->recv[i * l->nrecv + r] == 0)
                    out[k++] = (struct ledger_miss){p, i, r};
        }
    }
    return k;
}

void ledger_lost_per_recv(const struct ledger *l, uint64_t *out)
{
    for (uint32_t p = 0; p < l->npubs; p++) {
        const struct ledger_stream *s = &l->s[p];
        for (uint64_t i = 0; i < s->next; i++) {
            if (!(s->flags[i] & LEDGER_ACKED))
                continue;
            for (uint32_t r = 0; r < l->nrecv; r++)
                out[r] += s->recv[i * l->nrecv + r] == 0;
        }
    }
}

uint64_t ledger_missing(const struct ledger *l)
{
    uint64_t miss = 0;
    for (uint32_t p = 0; p < l->npubs; p++) {
        const struct ledger_stream *s = &l->s[p];
        for (uint64_t i = 0; i < s->next; i++) {
            if (!(s->flags[i] & LEDGER_ACKED))
                continue;
            for (uint32_t r = 0; r < l->nrecv; r++)
                miss += s->recv[i * l->nrecv + r] == 0;
        }
    }
    return miss;
}
