/*
 * The allocator's own count of live bytes (see memwatch.h). The only state
 * is jemalloc's name-to-MIB translation, done once under pthread_once:
 * looking the names up on every call costs more than the reading.
 *
 * Cost: with jemalloc a call refreshes the statistics epoch, which merges
 * every arena's counters (one lock each), then reads one number; glibc's
 * mallinfo2() walks every arena's free lists under that arena's lock, so
 * it grows with fragmentation. Measured on a 2-vCPU VM, 200 calls 2 ms
 * apart with N threads holding allocations: jemalloc median 50 us with one
 * thread, 114 us with 4, about 200 us with 16 or 64 (8 arenas, the most 2
 * CPUs get); glibc 3-20 us while the threads sleep, but 0.5 ms to 0.5 s
 * while 4 to 64 threads churn the same arenas; the sanitizers' counters
 * about 10 us. The caller (main.c) times each call and spaces the next one
 * out when it is slow.
 */
#include "memwatch.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>

/* Under ASan or TSan malloc is the sanitizer's: neither jemalloc (meson
 * drops it) nor glibc's arenas see the broker's allocations. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEMWATCH_SANITIZER 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MEMWATCH_SANITIZER 1
#endif
#endif

#if defined(MEMWATCH_SANITIZER)

/* Declared in LLVM's <sanitizer/allocator_interface.h>, which gcc 12 does
 * not ship; libasan and libtsan both export it. */
size_t __sanitizer_get_current_allocated_bytes(void);

int memwatch_allocated(uint64_t *bytes)
{
    *bytes = __sanitizer_get_current_allocated_bytes();
    return 0;
}

const char *memwatch_source(void)
{
    return "the sanitizer's allocator";
}

int memwatch_resident(uint64_t *bytes)
{
    (void)bytes;
    return -ENOSYS;
}

#elif defined(RINGMQ_JEMALLOC)

#include <jemalloc/jemalloc.h>

static pthread_once_t mib_once = PTHREAD_ONCE_INIT;
static size_t epoch_mib[1];
static size_t allocated_mib[2];
static int mib_err; /* a positive errno from the lookup, 0 when both worked */

static void mib_lookup(void)
{
    size_t len = 1;
    mib_err = mallctlnametomib("epoch", epoch_mib, &len);
    if (mib_err == 0) {
        len = 2;
        mib_err = mallctlnametomib("stats.allocated", allocated_mib, &len);
    }
}

int memwatch_allocated(uint64_t *bytes)
{
    pthread_once(&mib_once, mib_lookup);
    if (mib_err != 0)
        return -mib_err;
    /* Writing the epoch makes jemalloc gather the arenas' counters; the
     * statistics read afterwards are as of now. */
    uint64_t epoch = 1;
    int rc = mallctlbymib(epoch_mib, 1, NULL, NULL, &epoch, sizeof(epoch));
    if (rc != 0)
        return -rc;
    size_t allocated = 0;
    size_t len = sizeof(allocated);
    rc = mallctlbymib(allocated_mib, 2, &allocated, &len, NULL, 0);
    if (rc != 0)
        return -rc;
    *bytes = allocated;
    return 0;
}

const char *memwatch_source(void)
{
    return "jemalloc stats.allocated";
}

int memwatch_resident(uint64_t *bytes)
{
    /* As of the last epoch memwatch_allocated wrote (every 50 ms): no
     * refresh here, so the reader never takes the arenas' locks. */
    size_t resident = 0, len = sizeof(resident);
    int rc = mallctl("stats.resident", &resident, &len, NULL, 0);
    if (rc != 0)
        return -rc;
    *bytes = resident;
    return 0;
}

#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))

#include <malloc.h>

int memwatch_allocated(uint64_t *bytes)
{
    /* uordblks: bytes in use from the arenas (all of them); hblkhd: the
     * large allocations glibc serves with their own mmap. */
    struct mallinfo2 mi = mallinfo2();
    *bytes = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
    return 0;
}

const char *memwatch_source(void)
{
    return "glibc mallinfo2";
}

int memwatch_resident(uint64_t *bytes)
{
    (void)bytes;
    return -ENOSYS;
}

#else

int memwatch_allocated(uint64_t *bytes)
{
    (void)bytes;
    return -ENOSYS;
}

const char *memwatch_source(void)
{
    return "none (this C library's malloc cannot report its usage)";
}

int memwatch_resident(uint64_t *bytes)
{
    (void)bytes;
    return -ENOSYS;
}

#endif
