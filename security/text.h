/*
 * Bytes from a file the broker was handed, quoted in an error message:
 * what the operator wrote, readable, bounded, and never a control byte on
 * their terminal. Shared by the parsers of security/ (acl.c, ban.c).
 */
#ifndef RINGMQ_TEXT_H
#define RINGMQ_TEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many bytes are shown; a longer text ends in "...". */
#define TEXT_SHOW_MAX 40u
/* The buffer text_show needs: each byte may become \xNN, then "..." and NUL. */
#define TEXT_SHOW_LEN (TEXT_SHOW_MAX * 4u + 4u)

/* s[0..n) into out (TEXT_SHOW_LEN bytes): printable ASCII as it is (a
 * backslash too would be ambiguous, so it is \x5c), anything else as \xNN.
 * Returns out. */
const char *text_show(char *out, const uint8_t *s, size_t n);

/* "path:line: message" (line 0: "path: message") into err, NUL-terminated
 * and cut to errlen; nothing when err is NULL or errlen 0. Returns -1, so
 * a parser's failure is one return. */
int text_vfail(char *err, size_t errlen, const char *path, size_t line, const char *fmt,
               va_list ap);

#endif
