/*
 * Quoting file bytes in messages (text.h).
 */
#include "text.h"

#include <stdio.h>
#include <string.h>

int text_vfail(char *err, size_t errlen, const char *path, size_t line, const char *fmt, va_list ap)
{
    if (!err || errlen == 0)
        return -1;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (line > 0)
        snprintf(err, errlen, "%s:%zu: %s", path, line, msg);
    else
        snprintf(err, errlen, "%s: %s", path, msg);
    return -1;
}

const char *text_show(char *out, const uint8_t *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && i < TEXT_SHOW_MAX; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
            out[o++] = (char)s[i];
        else
            o += (size_t)snprintf(out + o, 5, "\\x%02x", s[i]);
    }
    if (n > TEXT_SHOW_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}
