/*
 * Whole-file reads for the files a config names (the password file today):
 * net/ reads, security/ and core/ parse the bytes they are handed. Bounded
 * before anything is allocated, because the file is input like any other.
 *
 * Blocking system calls: the main thread calls these at start-up and on
 * SIGHUP, never a shard.
 */
#ifndef RINGMQ_FILE_H
#define RINGMQ_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads the regular file at path, at most max_bytes of it, into a fresh
 * buffer: *data (malloc'd, the caller frees it with file_free; never NULL
 * on success, even for an empty file) and *len. Returns 0, or -errno with
 * "path: what is wrong" in err (err may be NULL or errlen 0):
 *   -errno of open or fstat  "path: cannot open: <strerror>" ("cannot stat")
 *   -EINVAL                  "path: not a regular file"
 *   -EFBIG                   "path: larger than <max_bytes> bytes", also for
 *                            a file that grows past max_bytes while read
 *   -ENOMEM                  "path: out of memory"
 *   -errno of read           "path: cannot read: <strerror>"
 * Opens with O_CLOEXEC, retries EINTR and reads until end of file, so a
 * short read is not taken for the end. Blocking; main thread only. */
int file_read(const char *path, size_t max_bytes, uint8_t **data, size_t *len, char *err,
              size_t errlen);

/* Wipes the len bytes file_read returned, then frees them: the password
 * file holds hashes. NULL is a no-op. Any thread. */
void file_free(uint8_t *data, size_t len);

#endif
