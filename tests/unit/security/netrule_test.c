#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netrule.h"

static struct netrule_cidr cidr(const char *text)
{
    struct netrule_cidr c;
    char why[512] = "";
    cr_assert_eq(netrule_parse_cidr(text, strlen(text), &c, why, sizeof(why)), 0, "%s: %s", text,
                 why);
    return c;
}

static void refused(const char *text, const char *want)
{
    struct netrule_cidr c;
    char why[512] = "";
    cr_assert_eq(netrule_parse_cidr(text, strlen(text), &c, why, sizeof(why)), -1, "took `%s'",
                 text);
    cr_assert_str_eq(why, want, "`%s'", text);
}

static struct netrule_addr addr(const char *text)
{
    struct netrule_cidr c = cidr(text);
    cr_assert_eq(c.prefix_len, c.addr.family == NETRULE_V4 ? 32 : 128, "%s is a range", text);
    return c.addr;
}

static const char *fmt(const struct netrule_addr *a)
{
    static char buf[NETRULE_ADDR_STRLEN];
    netrule_format(a, buf, sizeof(buf));
    return buf;
}

static const char *fmt_cidr(const struct netrule_cidr *c)
{
    static char buf[NETRULE_CIDR_STRLEN];
    netrule_format_cidr(c, buf, sizeof(buf));
    return buf;
}

/* CIDR text as netrule_format_cidr writes it back. */
static const char *canon(const char *text)
{
    struct netrule_cidr c = cidr(text);
    return fmt_cidr(&c);
}

/* A set from texts, all for ever. */
static struct netrule_set *set_of(const char *const *texts, size_t n)
{
    struct netrule_cidr cs[64];
    cr_assert(n <= 64);
    for (size_t i = 0; i < n; i++)
        cs[i] = cidr(texts[i]);
    char err[128];
    struct netrule_set *s = netrule_set_create(cs, NULL, n, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    return s;
}

static bool match(const struct netrule_set *s, const char *a)
{
    struct netrule_addr x = addr(a);
    return netrule_match(s, &x);
}

Test(netrule, ipv4_ranges_and_single_addresses)
{
    struct netrule_cidr c = cidr("10.0.0.0/8");
    cr_assert_eq(c.addr.family, NETRULE_V4);
    cr_assert_eq(c.prefix_len, 8);
    cr_assert_eq(c.addr.bytes[0], 10);
    c = cidr("192.168.1.7");
    cr_assert_eq(c.prefix_len, 32);
    cr_assert_str_eq(fmt_cidr(&c), "192.168.1.7/32");
    cr_assert_str_eq(canon("0.0.0.0/0"), "0.0.0.0/0");
    cr_assert_str_eq(canon("255.255.255.255/32"), "255.255.255.255/32");
    cr_assert_str_eq(canon("0.0.0.0"), "0.0.0.0/32");
    for (int i = 4; i < 16; i++)
        cr_assert_eq(c.addr.bytes[i], 0);
}

Test(netrule, ipv6_ranges_and_single_addresses)
{
    struct netrule_cidr c = cidr("2001:db8::/32");
    cr_assert_eq(c.addr.family, NETRULE_V6);
    cr_assert_eq(c.prefix_len, 32);
    cr_assert_str_eq(fmt_cidr(&c), "2001:db8::/32");
    c = cidr("::1");
    cr_assert_eq(c.prefix_len, 128);
    cr_assert_eq(c.addr.bytes[15], 1);
    cr_assert_str_eq(canon("::/0"), "::/0");
    cr_assert_str_eq(canon("::"), "::/128");
    cr_assert_str_eq(canon("2001:0DB8:0000:0000:0000:0000:0000:"
                           "0001"),
                     "2001:db8::1/128");
    cr_assert_str_eq(canon("FE80::/10"), "fe80::/10");
    cr_assert_str_eq(canon("1::"), "1::/128");
    cr_assert_str_eq(canon("1:2:3:4:5:6:7::"), "1:2:3:4:5:6:7:0/128");
    cr_assert_str_eq(canon("::2:3:4:5:6:7:8"), "0:2:3:4:5:6:7:8/128");
    /* A dotted tail that is not ::ffff: stays IPv6. */
    c = cidr("::1.2.3.4");
    cr_assert_eq(c.addr.family, NETRULE_V6);
    cr_assert_str_eq(fmt_cidr(&c), "::102:304/128");
    c = cidr("64:ff9b::192.0.2.1");
    cr_assert_eq(c.addr.family, NETRULE_V6);
    cr_assert_str_eq(fmt_cidr(&c), "64:ff9b::c000:201/128");
    c = cidr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
    cr_assert_eq(c.addr.bytes[0], 0xff);
    cr_assert_eq(c.addr.bytes[15], 0xff);
}

Test(netrule, ipv4_mapped_ranges_are_ipv4)
{
    struct netrule_cidr c = cidr("::ffff:10.0.0.0/104");
    cr_assert_eq(c.addr.family, NETRULE_V4);
    cr_assert_str_eq(fmt_cidr(&c), "10.0.0.0/8");
    c = cidr("::ffff:192.0.2.7");
    cr_assert_eq(c.addr.family, NETRULE_V4);
    cr_assert_str_eq(fmt_cidr(&c), "192.0.2.7/32");
    c = cidr("::FFFF:a00:1");
    cr_assert_str_eq(fmt_cidr(&c), "10.0.0.1/32");
    c = cidr("::ffff:0:0/96");
    cr_assert_eq(c.addr.family, NETRULE_V4);
    cr_assert_str_eq(fmt_cidr(&c), "0.0.0.0/0");
    c = cidr("0:0:0:0:0:ffff:7f00:1");
    cr_assert_str_eq(fmt_cidr(&c), "127.0.0.1/32");
    /* Below /96 the range is wider than IPv4: plain IPv6. */
    c = cidr("::/80");
    cr_assert_eq(c.addr.family, NETRULE_V6);
}

Test(netrule, addresses_from_socket_bytes)
{
    struct netrule_addr a;
    const uint8_t v4[4] = {192, 0, 2, 9};
    cr_assert(netrule_addr_from_bytes(NETRULE_V4, v4, &a));
    cr_assert_eq(a.family, NETRULE_V4);
    cr_assert_str_eq(fmt(&a), "192.0.2.9");
    struct netrule_addr want = addr("192.0.2.9");
    cr_assert_eq(memcmp(&a, &want, sizeof(a)), 0);
    const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 9};
    cr_assert(netrule_addr_from_bytes(NETRULE_V6, mapped, &a));
    cr_assert_eq(a.family, NETRULE_V4);
    cr_assert_eq(memcmp(&a, &want, sizeof(a)), 0);
    const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    cr_assert(netrule_addr_from_bytes(NETRULE_V6, v6, &a));
    cr_assert_eq(a.family, NETRULE_V6);
    cr_assert_str_eq(fmt(&a), "2001:db8::1");
    /* ::ffff:0:0:1 and ::fffe:... are not mapped. */
    const uint8_t near[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 192, 0, 2, 9};
    cr_assert(netrule_addr_from_bytes(NETRULE_V6, near, &a));
    cr_assert_eq(a.family, NETRULE_V6);
    cr_assert_not(netrule_addr_from_bytes(2, v6, &a)); /* AF_INET is not NETRULE_V4 */
    cr_assert_not(netrule_addr_from_bytes(10, v6, &a));
    cr_assert_eq(a.family, 0);
}

Test(netrule, format_is_rfc5952)
{
    struct {
        const char *in, *out;
    } cases[] = {
        {"2001:db8:0:0:0:0:0:1", "2001:db8::1"},
        {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"}, /* one zero group stays */
        {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},          /* the longest run */
        {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},    /* the first of equal runs */
        {"0:0:0:0:0:0:0:0", "::"},
        {"0:0:0:0:0:0:0:1", "::1"},
        {"1:0:0:0:0:0:0:0", "1::"},
        {"0:1:0:1:0:1:0:1", "0:1:0:1:0:1:0:1"},
        {"ABCD:EF01:2345:6789:ABCD:EF01:2345:6789", "abcd:ef01:2345:6789:abcd:ef01:2345:6789"},
        {"0.0.0.0", "0.0.0.0"},
        {"255.255.255.255", "255.255.255.255"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct netrule_addr a = addr(cases[i].in);
        cr_assert_str_eq(fmt(&a), cases[i].out, "%s", cases[i].in);
    }
}

Test(netrule, format_cuts_like_snprintf)
{
    struct netrule_addr a = addr("2001:db8::1");
    char buf[6] = "xxxxx";
    cr_assert_eq(netrule_format(&a, buf, sizeof(buf)), 11);
    cr_assert_str_eq(buf, "2001:");
    cr_assert_eq(netrule_format(&a, buf, 0), 11);
    cr_assert_str_eq(buf, "2001:");
    struct netrule_cidr c = cidr("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    char big[NETRULE_CIDR_STRLEN];
    cr_assert_eq(netrule_format_cidr(&c, big, sizeof(big)), 43);
    cr_assert_str_eq(big, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
    c = cidr("::ffff:255.255.255.255");
    cr_assert_str_eq(fmt_cidr(&c), "255.255.255.255/32");
    /* A hand-made mapped IPv6 address is still written readably. */
    struct netrule_addr m = {.family = NETRULE_V6,
                             .bytes = {[10] = 0xff, [11] = 0xff, [12] = 1, 2, 3, 4}};
    cr_assert_str_eq(fmt(&m), "::ffff:1.2.3.4");
}

Test(netrule, formats_parse_back)
{
    const char *texts[] = {"10.0.0.0/8",    "192.0.2.7/32",
                           "0.0.0.0/0",     "::/0",
                           "::1/128",       "2001:db8::/32",
                           "fe80::1:2/127", "1:0:0:2::/64",
                           "::2:0:0/112",   "2001:db8:1:2:3:4:5:6/128"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct netrule_cidr c = cidr(texts[i]);
        cr_assert_str_eq(fmt_cidr(&c), texts[i]);
        struct netrule_cidr d = cidr(fmt_cidr(&c));
        cr_assert_eq(memcmp(&c, &d, sizeof(c)), 0);
    }
}

Test(netrule, malformed_ipv4_with_its_message)
{
    const char *bad4 = "': not an IPv4 address (four decimal parts 0 to 255: a.b.c.d)";
    char want[256];
    const char *shapes[] = {"10.1",     "1.2.3",    "1.2.3.4.5", "1..2.3",
                            ".1.2.3",   "1.2.3.",   "1.2.3.x",   "1.2.3.-4",
                            "1.2.3.+4", " 1.2.3.4", "1.2.3.4 ",  "0x1.2.3.4"};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        snprintf(want, sizeof(want), "`%s%s", shapes[i], bad4);
        refused(shapes[i], want);
    }
    refused("010.1.1.1", "`010.1.1.1': part `010' has a leading zero (octal to some tools, "
                         "decimal to others: write it without)");
    refused("1.2.3.00", "`1.2.3.00': part `00' has a leading zero (octal to some tools, "
                        "decimal to others: write it without)");
    refused("256.1.1.1", "`256.1.1.1': part `256' is over 255");
    refused("1.2.3.1000", "`1.2.3.1000': part `1000' is over 255");
    refused("1.2.3.99999999999999999999", "`1.2.3.99999999999999999999': part "
                                          "`99999999999999999999' is over 255");
    refused("localhost", "`localhost': not an IPv4 or IPv6 address (host names are not resolved)");
    refused("10", "`10': not an IPv4 or IPv6 address (host names are not resolved)");
    refused("10/8", "`10/8': not an IPv4 or IPv6 address (host names are not resolved)");
    refused("", "empty address range");
}

Test(netrule, malformed_ipv6_with_its_message)
{
    refused("1:2:3:4:5:6:7:8:9", "`1:2:3:4:5:6:7:8:9': more than 8 groups");
    refused("1:2:3:4:5:6:7:1.2.3.4", "`1:2:3:4:5:6:7:1.2.3.4': more than 8 groups");
    refused("1::2::3", "`1::2::3': `::' used more than once");
    refused("::1::", "`::1::': `::' used more than once");
    refused("12345::", "`12345::': group `12345' has more than 4 hex digits");
    refused("00000::", "`00000::': group `00000' has more than 4 hex digits");
    refused("12g::", "`12g::': group `12g' is not hex digits");
    refused("::-1", "`::-1': group `-1' is not hex digits");
    const char *empty = "': an empty group (a single `:' at the start or end, or `:::')";
    char want[256];
    const char *shapes[] = {":1::", "1::2:", ":::", "1:::2", "1:", ":", "1:2:3:4:5:6:7:8:"};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        snprintf(want, sizeof(want), "`%s%s", shapes[i], empty);
        refused(shapes[i], want);
    }
    refused("1:2:3:4:5:6:7", "`1:2:3:4:5:6:7': 7 groups and no `::' (an IPv6 address has 8)");
    refused("1:2", "`1:2': 2 groups and no `::' (an IPv6 address has 8)");
    refused("1::2:3:4:5:6:7:8", "`1::2:3:4:5:6:7:8': `::' stands for no group here (8 groups "
                                "without it)");
    refused("::1:2:3:4:5:6:7:8", "`::1:2:3:4:5:6:7:8': `::' stands for no group here (8 "
                                 "groups without it)");
    refused("1.2.3.4::", "`1.2.3.4::': a dotted IPv4 part may only end an IPv6 address");
    refused("::1.2.3", "`::1.2.3': not an IPv4 address (four decimal parts 0 to 255: a.b.c.d)");
    refused("::ffff:01.2.3.4", "`::ffff:01.2.3.4': part `01' has a leading zero (octal to some "
                               "tools, decimal to others: write it without)");
    refused("fe80::1%eth0", "`fe80::1%eth0': a zone index (`%eth0') is not part of an address "
                            "range");
    refused("fe80::1%eth0/64", "`fe80::1%eth0/64': a zone index (`%eth0') is not part of an "
                               "address range");
    refused("[::1]", "`[::1]': no brackets around an address here");
    refused("[::1]/128", "`[::1]/128': no brackets around an address here");
}

Test(netrule, malformed_prefix_with_its_message)
{
    refused("10.0.0.0/", "`10.0.0.0/': no prefix length after `/'");
    refused("10.0.0.0/33", "`10.0.0.0/33': prefix length 33 is over 32 for IPv4");
    refused("10.0.0.0/1000000", "`10.0.0.0/1000000': prefix length 1000000 is over 32 for IPv4");
    refused("::/129", "`::/129': prefix length 129 is over 128 for IPv6");
    refused("10.0.0.0/08", "`10.0.0.0/08': prefix length `08' has a leading zero");
    refused("10.0.0.0/00", "`10.0.0.0/00': prefix length `00' has a leading zero");
    refused("10.0.0.0/+8", "`10.0.0.0/+8': prefix length `+8' is not a decimal number");
    refused("10.0.0.0/-1", "`10.0.0.0/-1': prefix length `-1' is not a decimal number");
    refused("10.0.0.0/8/8", "`10.0.0.0/8/8': prefix length `8/8' is not a decimal number");
    refused("10.0.0.0/ 8", "`10.0.0.0/ 8': prefix length ` 8' is not a decimal number");
    refused("10.0.0.0/255.0.0.0", "`10.0.0.0/255.0.0.0': prefix length `255.0.0.0' is not a "
                                  "decimal number");
    refused("/8", "`/8': not an IPv4 or IPv6 address (host names are not resolved)");
}

Test(netrule, host_bits_beyond_the_prefix_refused_with_the_range_meant)
{
    refused("10.1.2.3/8", "`10.1.2.3/8' has bits set beyond the /8 prefix (did you mean "
                          "10.0.0.0/8?)");
    refused("192.168.1.7/24", "`192.168.1.7/24' has bits set beyond the /24 prefix (did you "
                              "mean 192.168.1.0/24?)");
    refused("1.2.3.4/0", "`1.2.3.4/0' has bits set beyond the /0 prefix (did you mean "
                         "0.0.0.0/0?)");
    refused("10.0.0.1/31", "`10.0.0.1/31' has bits set beyond the /31 prefix (did you mean "
                           "10.0.0.0/31?)");
    refused("2001:db8::1/32", "`2001:db8::1/32' has bits set beyond the /32 prefix (did you "
                              "mean 2001:db8::/32?)");
    refused("::1/0", "`::1/0' has bits set beyond the /0 prefix (did you mean ::/0?)");
    refused("::ffff:10.1.2.3/104", "`::ffff:10.1.2.3/104' has bits set beyond the /104 prefix "
                                   "(did you mean ::ffff:10.0.0.0/104?)");
    refused("::ffff:0:0/80", "`::ffff:0:0/80' has bits set beyond the /80 prefix (did you mean "
                             "::/80?)");
    cidr("10.0.0.0/8");
    cidr("10.0.0.2/31");
    cidr("10.0.0.1/32");
}

Test(netrule, odd_bytes_are_shown_escaped_and_long_text_cut)
{
    refused("10.0.0.\x01", "`10.0.0.\\x01': not an IPv4 address (four decimal parts 0 to 255: "
                           "a.b.c.d)");
    struct netrule_cidr c;
    char why[512];
    cr_assert_eq(netrule_parse_cidr("1.2.3.4\0", 8, &c, why, sizeof(why)), -1);
    cr_assert_str_eq(why, "`1.2.3.4\\x00': not an IPv4 address (four decimal parts 0 to 255: "
                          "a.b.c.d)");
    char longtext[NETRULE_CIDR_TEXT_MAX + 2];
    memset(longtext, '1', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    char want[256];
    snprintf(want, sizeof(want), "`%.*s...': longer than 64 bytes, not an address range",
             (int)NETRULE_CIDR_TEXT_MAX, longtext);
    refused(longtext, want);
    /* 64 bytes are still read as an address. */
    longtext[NETRULE_CIDR_TEXT_MAX] = '\0';
    snprintf(want, sizeof(want), "`%s': not an IPv4 or IPv6 address (host names are not resolved)",
             longtext);
    refused(longtext, want);
    /* A short message buffer gets a NUL-terminated prefix. */
    char small[8];
    cr_assert_eq(netrule_parse_cidr("10.1.2.3/8", 10, &c, small, sizeof(small)), -1);
    cr_assert_str_eq(small, "`10.1.2");
    cr_assert_eq(netrule_parse_cidr("10.1.2.3/8", 10, &c, NULL, 0), -1);
}

Test(netrule, overlapping_nested_and_adjacent_ranges_merge)
{
    const char *nested[] = {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "10.0.0.0/8"};
    struct netrule_set *s = set_of(nested, 4);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V4), 1);
    cr_assert(match(s, "10.0.0.0"));
    cr_assert(match(s, "10.255.255.255"));
    cr_assert_not(match(s, "9.255.255.255"));
    cr_assert_not(match(s, "11.0.0.0"));
    netrule_set_destroy(s);

    const char *adjacent[] = {"10.128.0.0/9", "10.0.0.0/9", "11.0.0.0/8"};
    s = set_of(adjacent, 3);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V4), 1);
    cr_assert(match(s, "10.127.255.255"));
    cr_assert(match(s, "10.128.0.0"));
    cr_assert(match(s, "11.255.255.255"));
    cr_assert_not(match(s, "12.0.0.0"));
    netrule_set_destroy(s);

    const char *apart[] = {"10.0.0.0/24", "10.0.2.0/24", "2001:db8::/33", "2001:db8:8000::/33",
                           "2001:db9::1"};
    s = set_of(apart, 5);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V4), 2);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V6), 2);
    cr_assert(match(s, "10.0.0.255"));
    cr_assert_not(match(s, "10.0.1.0"));
    cr_assert_not(match(s, "10.0.1.255"));
    cr_assert(match(s, "10.0.2.0"));
    cr_assert(match(s, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    cr_assert_not(match(s, "2001:db9::"));
    cr_assert(match(s, "2001:db9::1"));
    cr_assert_not(match(s, "2001:db9::2"));
    netrule_set_destroy(s);
}

Test(netrule, whole_spaces_and_single_addresses_at_the_edges)
{
    const char *all4[] = {"0.0.0.0/0"};
    struct netrule_set *s = set_of(all4, 1);
    cr_assert(match(s, "0.0.0.0"));
    cr_assert(match(s, "255.255.255.255"));
    cr_assert_not(match(s, "::"));
    cr_assert_not(match(s, "::ffff:0:0:0")); /* not mapped: IPv6 */
    netrule_set_destroy(s);

    const char *all6[] = {"::/0"};
    s = set_of(all6, 1);
    cr_assert(match(s, "::"));
    cr_assert(match(s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    cr_assert_not(match(s, "0.0.0.0")); /* ::/0 is not IPv4 */
    cr_assert_not(match(s, "10.0.0.1"));
    netrule_set_destroy(s);

    const char *edges[] = {"0.0.0.0",
                           "255.255.255.255",
                           "::",
                           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127",
                           "255.255.255.254/31"};
    s = set_of(edges, 6);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V4), 2);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V6), 2);
    cr_assert(match(s, "0.0.0.0"));
    cr_assert_not(match(s, "0.0.0.1"));
    cr_assert_not(match(s, "255.255.255.253"));
    cr_assert(match(s, "255.255.255.254"));
    cr_assert(match(s, "::"));
    cr_assert_not(match(s, "::1"));
    cr_assert(match(s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"));
    cr_assert_not(match(s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd"));
    netrule_set_destroy(s);
}

Test(netrule, mapped_clients_match_ipv4_ranges)
{
    const char *texts[] = {"192.0.2.0/24", "::ffff:198.51.100.0/120"};
    struct netrule_set *s = set_of(texts, 2);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V4), 2);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V6), 0);
    const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 77};
    struct netrule_addr a;
    netrule_addr_from_bytes(NETRULE_V6, mapped, &a);
    cr_assert(netrule_match(s, &a));
    cr_assert(match(s, "198.51.100.200"));
    cr_assert(match(s, "::ffff:198.51.100.1"));
    netrule_set_destroy(s);
}

Test(netrule, empty_and_null_sets)
{
    char err[64];
    struct netrule_set *s = netrule_set_create(NULL, NULL, 0, err, sizeof(err));
    cr_assert_not_null(s);
    cr_assert(netrule_set_empty(s));
    cr_assert(netrule_set_empty(NULL));
    cr_assert_not(match(s, "10.0.0.1"));
    cr_assert_not(match(NULL, "10.0.0.1"));
    cr_assert_eq(netrule_set_intervals(NULL, NETRULE_V4), 0);
    struct netrule_addr bogus = {.family = 5};
    cr_assert_not(netrule_match(s, &bogus));
    netrule_set_destroy(s);
    netrule_set_destroy(NULL);
}

Test(netrule, too_many_ranges_refused)
{
    struct netrule_cidr one = cidr("10.0.0.0/8");
    char err[64];
    /* Refused before the array is read. */
    cr_assert_null(netrule_set_create(&one, NULL, NETRULE_RULES_MAX + 1u, err, sizeof(err)));
    cr_assert_str_eq(err, "more than 1000000 ranges");
}

Test(netrule, a_million_ranges_build)
{
    struct netrule_cidr *cs = calloc(NETRULE_RULES_MAX, sizeof(*cs));
    cr_assert_not_null(cs);
    for (uint32_t i = 0; i < NETRULE_RULES_MAX; i++) {
        uint32_t v = 0x0a000000u + 2u * i; /* every other address of 10/8 */
        cs[i] = (struct netrule_cidr){
            .addr = {.family = NETRULE_V4,
                     .bytes = {v >> 24, v >> 16 & 255, v >> 8 & 255, v & 255}},
            .prefix_len = 32};
    }
    char err[64];
    struct netrule_set *s = netrule_set_create(cs, NULL, NETRULE_RULES_MAX, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V4), NETRULE_RULES_MAX);
    cr_assert(match(s, "10.0.0.0"));
    cr_assert_not(match(s, "10.0.0.1"));
    cr_assert(match(s, "10.30.132.126")); /* 2 * 999999 = 0x1e847e */
    cr_assert_not(match(s, "10.30.132.128"));
    netrule_set_destroy(s);
    free(cs);
}

Test(netrule, admit_allow_and_deny)
{
    struct netrule_addr in = addr("10.1.2.3"), out = addr("192.0.2.1"), v6 = addr("2001:db8::1"),
                        denied = addr("10.9.0.1");
    cr_assert(netrule_admit(NULL, NULL, &in));
    const char *allow_t[] = {"10.0.0.0/8"}, *deny_t[] = {"10.9.0.0/16", "2001:db8::/32"};
    struct netrule_set *allow = set_of(allow_t, 1), *deny = set_of(deny_t, 2);
    struct netrule_set *empty = netrule_set_create(NULL, NULL, 0, NULL, 0);
    /* With an allow_from, only its ranges; an IPv6 client needs an IPv6 one. */
    cr_assert(netrule_admit(allow, NULL, &in));
    cr_assert_not(netrule_admit(allow, NULL, &out));
    cr_assert_not(netrule_admit(allow, NULL, &v6));
    /* deny_from wins over allow_from. */
    cr_assert_not(netrule_admit(allow, deny, &denied));
    cr_assert(netrule_admit(allow, deny, &in));
    /* No (or an empty) allow: everything not denied. */
    cr_assert_not(netrule_admit(NULL, deny, &denied));
    cr_assert_not(netrule_admit(empty, deny, &v6));
    cr_assert(netrule_admit(empty, deny, &out));
    cr_assert(netrule_admit(empty, empty, &out));
    cr_assert(netrule_admit(NULL, deny, &out));
    netrule_set_destroy(allow);
    netrule_set_destroy(deny);
    netrule_set_destroy(empty);
}

Test(netrule, untils_keep_the_latest_over_each_address)
{
    struct netrule_cidr cs[] = {cidr("10.0.0.0/8"),  cidr("10.1.0.0/16"),   cidr("10.1.2.0/24"),
                                cidr("10.2.0.0/16"), cidr("2001:db8::/32"), cidr("2001:db8::1")};
    uint64_t until[] = {50, 100, 20, 0, 7, NETRULE_FOREVER};
    struct netrule_set *s = netrule_set_create(cs, until, 6, NULL, 0);
    cr_assert_not_null(s);
    struct netrule_addr a = addr("10.0.0.1");
    cr_assert_eq(netrule_until(s, &a), 50);
    a = addr("10.1.0.0");
    cr_assert_eq(netrule_until(s, &a), 100);
    a = addr("10.1.2.3"); /* inside the /24 of 20, the /16 of 100 still holds it */
    cr_assert_eq(netrule_until(s, &a), 100);
    a = addr("10.2.0.1"); /* the until-0 range is left out */
    cr_assert_eq(netrule_until(s, &a), 50);
    a = addr("10.255.255.255");
    cr_assert_eq(netrule_until(s, &a), 50);
    a = addr("11.0.0.0");
    cr_assert_eq(netrule_until(s, &a), 0);
    /* 10.0.0.0-10.0.255.255 (50), 10.1/16 (100), 10.2.0.0-10.255.255.255 (50). */
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V4), 3);
    a = addr("2001:db8::");
    cr_assert_eq(netrule_until(s, &a), 7);
    a = addr("2001:db8::1");
    cr_assert_eq(netrule_until(s, &a), NETRULE_FOREVER);
    a = addr("2001:db8::2");
    cr_assert_eq(netrule_until(s, &a), 7);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V6), 3);
    netrule_set_destroy(s);

    /* The same range twice: the later until. */
    struct netrule_cidr twice[] = {cidr("192.0.2.0/24"), cidr("192.0.2.0/24")};
    uint64_t u2[] = {5, 9};
    s = netrule_set_create(twice, u2, 2, NULL, 0);
    a = addr("192.0.2.200");
    cr_assert_eq(netrule_until(s, &a), 9);
    cr_assert_eq(netrule_set_intervals(s, NETRULE_V4), 1);
    netrule_set_destroy(s);
}

/* ---- random ranges against a scan of the list ---------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void random_addr(struct netrule_addr *a, uint8_t family)
{
    memset(a, 0, sizeof(*a));
    a->family = family;
    uint64_t hi = rnd(), lo = rnd();
    /* Few distinct leading bytes, so ranges overlap and nest. */
    if (family == NETRULE_V4) {
        hi &= 0xffffffff0fffffffu;
        memcpy(a->bytes, &hi, 4);
    } else {
        memcpy(a->bytes, &hi, 8);
        memcpy(a->bytes + 8, &lo, 8);
        a->bytes[0] &= 0x0f;
        if ((a->bytes[1] & 3) == 0) /* some near ::ffff:0:0/96 and the top */
            memset(a->bytes, a->bytes[2] & 1 ? 0xff : 0, 10);
    }
}

static void random_cidr(struct netrule_cidr *c)
{
    uint8_t family = rnd() % 4 ? NETRULE_V4 : NETRULE_V6;
    unsigned bits = family == NETRULE_V4 ? 32 : 128;
    unsigned r = (unsigned)(rnd() % 100);
    unsigned prefix = r < 2    ? (unsigned)(rnd() % 4)
                      : r < 60 ? bits - (unsigned)(rnd() % 9)
                               : (unsigned)(rnd() % (bits + 1));
    random_addr(&c->addr, family);
    for (unsigned i = prefix; i < bits; i++)
        c->addr.bytes[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    c->prefix_len = (uint8_t)prefix;
}

/* The latest until of the ranges holding a, by scanning. */
static uint64_t scan(const struct netrule_cidr *cs, const uint64_t *until, size_t n,
                     const struct netrule_addr *a)
{
    uint64_t best = 0;
    for (size_t i = 0; i < n; i++)
        if (netrule_cidr_contains(&cs[i], a) && until[i] > best)
            best = until[i];
    return best;
}

/* a plus or minus one (carry through the bytes). */
static void step(struct netrule_addr *a, int dir)
{
    int last = a->family == NETRULE_V4 ? 3 : 15;
    for (int i = last; i >= 0; i--) {
        uint8_t before = a->bytes[i];
        a->bytes[i] = (uint8_t)(before + dir);
        if ((dir > 0 && before != 0xff) || (dir < 0 && before != 0))
            break;
    }
}

static void probe(const struct netrule_set *s, const struct netrule_cidr *cs, const uint64_t *until,
                  size_t n, const struct netrule_addr *a)
{
    uint64_t want = scan(cs, until, n, a), got = netrule_until(s, a);
    cr_assert_eq(got, want, "%s: %llu, the list says %llu", fmt(a), (unsigned long long)got,
                 (unsigned long long)want);
}

Test(netrule, ten_thousand_random_ranges_agree_with_a_scan)
{
    enum { N = 10000, EDGES_EVERY = 4, PROBES = 5000 };
    struct netrule_cidr *cs = calloc(N, sizeof(*cs));
    uint64_t *until = calloc(N, sizeof(*until)), *forever = calloc(N, sizeof(*forever));
    cr_assert(cs && until && forever);
    for (size_t i = 0; i < N; i++) {
        random_cidr(&cs[i]);
        until[i] = rnd() % 8 == 0 ? NETRULE_FOREVER : rnd() % 6; /* 0 drops a range */
        forever[i] = NETRULE_FOREVER;
    }
    uint64_t *sets[] = {until, forever};
    for (int k = 0; k < 2; k++) {
        struct netrule_set *s = netrule_set_create(cs, k ? NULL : until, N, NULL, 0);
        cr_assert_not_null(s);
        for (size_t i = 0; i < N; i += EDGES_EVERY) {
            /* The edges of ranges and their neighbours. */
            struct netrule_addr a = cs[i].addr;
            probe(s, cs, sets[k], N, &a);
            step(&a, -1);
            probe(s, cs, sets[k], N, &a);
            a = cs[i].addr;
            unsigned bits = a.family == NETRULE_V4 ? 32 : 128;
            for (unsigned b = cs[i].prefix_len; b < bits; b++)
                a.bytes[b / 8] |= (uint8_t)(0x80u >> (b % 8));
            probe(s, cs, sets[k], N, &a);
            step(&a, 1);
            probe(s, cs, sets[k], N, &a);
        }
        for (size_t i = 0; i < PROBES; i++) {
            struct netrule_addr a;
            random_addr(&a, rnd() % 2 ? NETRULE_V4 : NETRULE_V6);
            probe(s, cs, sets[k], N, &a);
        }
        netrule_set_destroy(s);
    }
    free(cs);
    free(until);
    free(forever);
}
