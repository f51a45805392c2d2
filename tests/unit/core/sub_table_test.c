#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sub_table.h"

#define U(s) ((const uint8_t *)(s))

static struct sub_table t;

static void fini(void)
{
    sub_table_fini(&t);
}

Test(sub_table, empty_finds_nothing, .fini = fini)
{
    cr_assert_null(sub_table_find(&t, NULL, 0, U("a"), 1));
    uint32_t pos = 0;
    cr_assert_null(sub_table_next(&t, &pos, NULL));
}

Test(sub_table, plain_and_shared_are_different_keys, .fini = fini)
{
    struct sub_entry *a = sub_table_add(&t, NULL, 0, U("x/y"), 3, 1);
    struct sub_entry *b = sub_table_add(&t, U("g"), 1, U("x/y"), 3, 2);
    cr_assert(a && b && a != b);
    cr_assert_eq(sub_table_find(&t, NULL, 0, U("x/y"), 3), a);
    cr_assert_eq(sub_table_find(&t, U("g"), 1, U("x/y"), 3), b);
    cr_assert_null(sub_table_find(&t, U("h"), 1, U("x/y"), 3));
    /* The separator keeps (group, filter) pairs apart. */
    cr_assert_null(sub_table_find(&t, U("gx"), 2, U("/y"), 2));
    cr_assert_eq(t.count, 2);
}

Test(sub_table, many_entries_grow_remove_and_iterate, .fini = fini)
{
    char f[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(f, sizeof(f), "t/%d", i);
        cr_assert_not_null(sub_table_add(&t, NULL, 0, U(f), (size_t)n, (uint64_t)i));
    }
    cr_assert_eq(t.count, 10000);
    cr_assert_geq(t.mask + 1, 10000u, "the table grew with its entries");
    for (int i = 0; i < 10000; i += 2) {
        int n = snprintf(f, sizeof(f), "t/%d", i);
        struct sub_entry *e = sub_table_find(&t, NULL, 0, U(f), (size_t)n);
        cr_assert_not_null(e);
        cr_assert_eq(e->opts, (uint64_t)i);
        sub_table_remove(&t, e);
    }
    cr_assert_eq(t.count, 5000);
    uint32_t pos = 0, seen = 0;
    uint64_t sum = 0;
    for (struct sub_entry *e = NULL; (e = sub_table_next(&t, &pos, e));) {
        seen++;
        sum += e->opts;
        cr_assert(e->opts % 2 == 1, "only odd ones are left");
    }
    cr_assert_eq(seen, 5000);
    cr_assert_eq(sum, 25000000ull, "1 + 3 + ... + 9999");
}
