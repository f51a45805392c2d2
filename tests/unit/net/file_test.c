/*
 * file: net/file.c's bounded whole-file read, the reader of the password
 * file. Each failure must give the -errno and the exact "path: what" a user
 * reads at start-up or on SIGHUP.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

/* A temporary file; removed by the fini of every test. */
static char tmp_path[64];

static void tmp_fini(void)
{
    if (tmp_path[0])
        unlink(tmp_path);
    tmp_path[0] = 0;
}

static const char *write_tmp(const void *text, size_t len)
{
    tmp_fini();
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/file_test_XXXXXX");
    int fd = mkstemp(tmp_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return tmp_path;
}

TestSuite(file, .fini = tmp_fini);

Test(file, reads_the_whole_file)
{
    static const char text[] = "alice:$7$...\n\0bob\n";
    uint8_t *data = NULL;
    size_t len = 0;
    char err[256] = "";
    cr_assert_eq(file_read(write_tmp(text, sizeof(text) - 1), 1024, &data, &len, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(len, sizeof(text) - 1);
    cr_assert_eq(memcmp(data, text, len), 0, "a NUL byte is data like any other");
    file_free(data, len);
    file_free(NULL, 0);
}

Test(file, empty_file_is_an_empty_buffer)
{
    uint8_t *data = NULL;
    size_t len = 1;
    char err[256] = "";
    cr_assert_eq(file_read(write_tmp("", 0), 1024, &data, &len, err, sizeof(err)), 0, "%s", err);
    cr_assert_not_null(data);
    cr_assert_eq(len, 0);
    file_free(data, len);
}

Test(file, limit_and_limit_plus_one)
{
    char text[101];
    memset(text, 'x', sizeof(text));
    uint8_t *data = NULL;
    size_t len = 0;
    char err[256] = "";
    cr_assert_eq(file_read(write_tmp(text, 100), 100, &data, &len, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(len, 100);
    file_free(data, len);

    data = NULL;
    cr_assert_eq(file_read(write_tmp(text, 101), 100, &data, &len, err, sizeof(err)), -EFBIG);
    cr_assert_null(data, "nothing handed back on failure");
    char want[256];
    snprintf(want, sizeof(want), "%s: larger than 100 bytes", tmp_path);
    cr_assert_str_eq(err, want);
}

Test(file, sparse_file_over_the_limit_is_refused_before_allocation)
{
    /* 64 MiB + 1, the password file's limit: refused from fstat's size. */
    write_tmp("", 0);
    cr_assert_eq(truncate(tmp_path, 64 * 1024 * 1024 + 1), 0);
    uint8_t *data = NULL;
    size_t len = 0;
    char err[256] = "";
    cr_assert_eq(file_read(tmp_path, 64u * 1024u * 1024u, &data, &len, err, sizeof(err)), -EFBIG);
    char want[256];
    snprintf(want, sizeof(want), "%s: larger than 67108864 bytes", tmp_path);
    cr_assert_str_eq(err, want);
}

Test(file, cannot_open)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char err[256] = "";
    cr_assert_eq(file_read("/nonexistent/ringmq-passwd", 1024, &data, &len, err, sizeof(err)),
                 -ENOENT);
    cr_assert_str_eq(err, "/nonexistent/ringmq-passwd: cannot open: No such file or directory");

    if (geteuid() != 0) { /* root reads anything */
        write_tmp("a:b\n", 4);
        cr_assert_eq(chmod(tmp_path, 0), 0);
        cr_assert_eq(file_read(tmp_path, 1024, &data, &len, err, sizeof(err)), -EACCES);
        char want[256];
        snprintf(want, sizeof(want), "%s: cannot open: Permission denied", tmp_path);
        cr_assert_str_eq(err, want);
    }
}

Test(file, not_a_regular_file)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char err[256] = "";
    cr_assert_eq(file_read("/tmp", 1024, &data, &len, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "/tmp: not a regular file");
    /* A character device has no size to bound: refused too. */
    cr_assert_eq(file_read("/dev/zero", 1024, &data, &len, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "/dev/zero: not a regular file");
}

Test(file, err_buffer_may_be_small_or_absent)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char err[8];
    memset(err, 'x', sizeof(err));
    cr_assert_eq(file_read("/nonexistent/x", 1024, &data, &len, err, sizeof(err)), -ENOENT);
    cr_assert_str_eq(err, "/nonexi");
    cr_assert_eq(file_read("/nonexistent/x", 1024, &data, &len, NULL, 0), -ENOENT);
}

Test(file, descriptor_is_not_left_open)
{
    /* Every path out closes the file: the lowest free descriptor is the
     * same before and after a success and each kind of failure. */
    int before = dup(0);
    cr_assert_geq(before, 0);
    close(before);
    uint8_t *data = NULL;
    size_t len = 0;
    cr_assert_eq(file_read(write_tmp("abc", 3), 1024, &data, &len, NULL, 0), 0);
    file_free(data, len);
    cr_assert_eq(file_read(tmp_path, 2, &data, &len, NULL, 0), -EFBIG);
    cr_assert_eq(file_read("/tmp", 1024, &data, &len, NULL, 0), -EINVAL);
    int after = dup(0);
    cr_assert_eq(after, before);
    close(after);
}

Test(file, size_fstat_does_not_know_is_read_to_the_end_and_bounded)
{
    /* /proc files are regular and say size 0: the buffer grows as the file
     * turns out longer, up to the limit and not past it, as for a file that
     * grew between fstat and read. */
    struct stat st;
    cr_assert_eq(stat("/proc/self/status", &st), 0);
    cr_assert_eq(st.st_size, 0);
    uint8_t *data = NULL;
    size_t len = 0;
    char err[256] = "";
    cr_assert_eq(file_read("/proc/self/status", 1024 * 1024, &data, &len, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_gt(len, 100);
    cr_assert_eq(memcmp(data, "Name:", 5), 0);
    file_free(data, len);
    cr_assert_eq(file_read("/proc/self/status", 100, &data, &len, err, sizeof(err)), -EFBIG);
    cr_assert_str_eq(err, "/proc/self/status: larger than 100 bytes");
}
