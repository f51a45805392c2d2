#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "psk.h"

static const char K16[] = "00112233445566778899aabbccddeeff";

static struct psk_table *parse(const char *text, char *err, size_t errlen)
{
    return psk_parse("psk.txt", (const uint8_t *)text, strlen(text), err, errlen);
}

static void refused(const char *text, const char *want)
{
    char err[512] = "";
    struct psk_table *t = parse(text, err, sizeof(err));
    cr_assert_null(t, "accepted: %s", text);
    cr_assert(strstr(err, want), "`%s' lacks `%s'", err, want);
}

Test(psk, entries_found_by_identity_with_their_keys)
{
    char text[512], err[256];
    snprintf(text, sizeof(text), "# devices\n\nsensor-1:%s\r\nsensor-2:%s0011223344556677\nZ:%s\n",
             K16, K16, K16);
    struct psk_table *t = parse(text, err, sizeof(err));
    cr_assert_not_null(t, "%s", err);
    cr_assert_eq(psk_count(t), 3);
    size_t n = 0;
    const uint8_t *k = psk_find(t, "sensor-2", &n);
    cr_assert_not_null(k);
    cr_assert_eq(n, 24);
    cr_assert_eq(k[0], 0x00);
    cr_assert_eq(k[15], 0xff);
    cr_assert_eq(k[23], 0x77);
    cr_assert_not_null(psk_find(t, "Z", &n));
    cr_assert_not_null(psk_find(t, "sensor-1", &n));
    cr_assert_eq(n, 16);
    cr_assert_null(psk_find(t, "sensor-", &n));
    cr_assert_null(psk_find(t, "sensor-3", &n));
    cr_assert_null(psk_find(t, "", &n));
    cr_assert_null(psk_find(t, NULL, &n));
    psk_free(t);
}

Test(psk, uppercase_hex_and_no_final_newline)
{
    char err[256];
    struct psk_table *t = parse("a:00112233445566778899AABBCCDDEEFF", err, sizeof(err));
    cr_assert_not_null(t, "%s", err);
    size_t n;
    cr_assert_eq(psk_find(t, "a", &n)[10], 0xAA);
    psk_free(t);
}

Test(psk, bad_lines_name_their_line)
{
    char text[512];
    refused("", "no `identity:hexkey' line");
    refused("# only a comment\n", "no `identity:hexkey' line");
    snprintf(text, sizeof(text), "a:%s\nnocolon\n", K16);
    refused(text, "psk.txt:2: not `identity:hexkey'");
    snprintf(text, sizeof(text), ":%s\n", K16);
    refused(text, "psk.txt:1: empty identity");
    refused("a:0011\n", "psk.txt:1: the key of `a' is 2 bytes");
    refused("a:00112233445566778899aabbccddeef\n", "odd number of hex digits");
    refused("a:00112233445566778899aabbccddeefg\n", "not hex digits (character 32)");
    snprintf(text, sizeof(text), "a:%s %s\n", K16, "");
    refused(text, "not hex digits");
    snprintf(text, sizeof(text), "a:%s\nb:%s\na:%s\n", K16, K16, K16);
    refused(text, "psk.txt:3: identity `a' given twice (first at line 1)");
    snprintf(text, sizeof(text), "a\tb:%s\n", K16);
    refused(text, "control byte");
}

Test(psk, identity_and_key_bounds)
{
    char text[1024], err[256];
    char id[PSK_IDENTITY_MAX + 2];
    memset(id, 'i', sizeof(id));
    id[PSK_IDENTITY_MAX] = '\0';
    snprintf(text, sizeof(text), "%s:%s\n", id, K16);
    struct psk_table *t = parse(text, err, sizeof(err));
    cr_assert_not_null(t, "%s", err);
    size_t n;
    cr_assert_not_null(psk_find(t, id, &n));
    psk_free(t);
    id[PSK_IDENTITY_MAX] = 'i';
    id[PSK_IDENTITY_MAX + 1] = '\0';
    snprintf(text, sizeof(text), "%s:%s\n", id, K16);
    refused(text, "identity longer than 128 bytes");
    char key[2 * PSK_KEY_MAX + 3];
    memset(key, 'a', sizeof(key));
    key[2 * PSK_KEY_MAX] = '\0';
    snprintf(text, sizeof(text), "k:%s\n", key);
    t = parse(text, err, sizeof(err));
    cr_assert_not_null(t, "%s", err);
    psk_free(t);
    key[2 * PSK_KEY_MAX] = 'a';
    key[2 * PSK_KEY_MAX + 1] = 'a';
    key[2 * PSK_KEY_MAX + 2] = '\0';
    snprintf(text, sizeof(text), "k:%s\n", key);
    refused(text, "is 65 bytes");
}

Test(psk, messages_hold_no_key_digits)
{
    char err[512];
    cr_assert_null(parse("dev:0123456789abcdef0123456789abcdeX\n", err, sizeof(err)));
    cr_assert_null(strstr(err, "0123456789"), "%s", err);
}
