/*
 * Whole-file reads, bounded, for the files a config names. The caller owns
 * the buffer it gets back; nothing here keeps state. Blocking: the main
 * thread calls it, at start-up and on SIGHUP.
 *
 * fstat gives the size to allocate, but a file may change between fstat
 * and the reads, so the buffer has one byte more than the size: filling it
 * means the file grew, and it then grows up to max_bytes + 1, past which
 * the read fails. A read of 0 bytes is the end of the file; any other short
 * read only means "read again".
 */
#include "file.h"
#include "invariant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "path: <what>: <strerror>", and -e back. */
static int sys_err(int e, const char *path, const char *what, char *err, size_t errlen)
{
    char eb[128];
    set_err(err, errlen, "%s: %s: %s", path, what, strerror_r(e, eb, sizeof(eb)));
    return -e;
}

/* Opens path for reading and checks that it is a regular file of at most
 * max_bytes. The descriptor in *fd and the size in *size, or -errno with err
 * set and nothing open. */
static int open_bounded(const char *path, size_t max_bytes, int *fd, size_t *size, char *err,
                        size_t errlen)
{
    int r = 0;
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return sys_err(errno, path, "cannot open", err, errlen);
    struct stat st;
    if (fstat(*fd, &st) != 0) {
        r = sys_err(errno, path, "cannot stat", err, errlen);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        r = -EINVAL;
        goto fail;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max_bytes) {
        set_err(err, errlen, "%s: larger than %zu bytes", path, max_bytes);
        r = -EFBIG;
        goto fail;
    }
    *size = (size_t)st.st_size;
    return 0;
fail:
    close(*fd);
    *fd = -1;
    return r;
}

/* Reads fd to its end into *buf (cap bytes, grown up to max_bytes + 1 as
 * needed); the bytes read in *len. 0, or -errno with err set; *buf stays
 * the caller's to free either way. */
static int read_all(int fd, const char *path, size_t max_bytes, uint8_t **buf, size_t cap,
                    size_t *len, char *err, size_t errlen)
{
    for (;;) {
        if (*len == cap) {
            if (cap > max_bytes) {
                set_err(err, errlen, "%s: larger than %zu bytes", path, max_bytes);
                return -EFBIG;
            }
            size_t ncap = cap > (max_bytes + 1) / 2 ? max_bytes + 1 : cap * 2;
            uint8_t *nbuf = realloc(*buf, ncap);
            if (!nbuf) {
                set_err(err, errlen, "%s: out of memory", path);
                return -ENOMEM;
            }
            *buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, *buf + *len, cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sys_err(errno, path, "cannot read", err, errlen);
        if (n == 0)
            return 0;
        *len += (size_t)n;
    }
}

int file_read(const char *path, size_t max_bytes, uint8_t **data, size_t *len, char *err,
              size_t errlen)
{
    ASSERT(path && data && len);
    ASSERT(max_bytes < SIZE_MAX / 2); /* max_bytes + 1 and the doubling cannot wrap */
    uint8_t *buf = NULL;
    size_t got = 0;
    size_t size = 0;
    int fd = -1;
    int r = open_bounded(path, max_bytes, &fd, &size, err, errlen);
    if (r != 0)
        return r;
    /* One byte more than the size, to notice a file that grew after fstat. */
    size_t cap = size + 1;
    buf = malloc(cap);
    if (!buf) {
        set_err(err, errlen, "%s: out of memory", path);
        r = -ENOMEM;
        goto fail;
    }
    r = read_all(fd, path, max_bytes, &buf, cap, &got, err, errlen);
    if (r != 0)
        goto fail;
    close(fd);
    ASSERT(got <= max_bytes);
    *data = buf;
    *len = got;
    return 0;
fail:
    close(fd);
    file_free(buf, got);
    return r;
}

void file_free(uint8_t *data, size_t len)
{
    if (!data)
        return;
    explicit_bzero(data, len);
    free(data);
}
