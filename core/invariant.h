/*
 * Assertions, as STYLE.md asks: ASSERT is always compiled in (release
 * builds too: a shard that stops on a broken invariant is better than one
 * that runs on corrupt state) and must be cheap; ASSERT_DEBUG may be O(n)
 * and is compiled out with NDEBUG. A peer's bad bytes are never an
 * invariant: they are an expected error with a clear outcome.
 */
#ifndef RINGMQ_INVARIANT_H
#define RINGMQ_INVARIANT_H

#include <stdio.h>
#include <stdlib.h>

#define ASSERT(x)                                                                                  \
    do {                                                                                           \
        if (__builtin_expect(!(x), 0)) {                                                           \
            fprintf(stderr, "%s:%d: %s: invariant `%s' broken\n", __FILE__, __LINE__, __func__,    \
                    #x);                                                                           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#ifdef NDEBUG
#define ASSERT_DEBUG(x) ((void)0)
#else
#define ASSERT_DEBUG(x) ASSERT(x)
#endif

#endif
