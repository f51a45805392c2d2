#include <criterion/criterion.h>

#include "siphash.h"

/* The reference key 00 01 .. 0f (little-endian words). */
static const uint64_t key[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};

Test(siphash, reference_vectors)
{
    uint8_t in[64];
    for (unsigned i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    /* From the SipHash paper (appendix A) and the reference vectors.h:
     * lengths 0, 7, 8 and 15 (the paper's example), 63. */
    cr_assert_eq(siphash24(key, in, 0), 0x726fdb47dd0e0e31ull);
    cr_assert_eq(siphash24(key, in, 7), 0xab0200f58b01d137ull);
    cr_assert_eq(siphash24(key, in, 8), 0x93f5f5799a932462ull);
    cr_assert_eq(siphash24(key, in, 15), 0xa129ca6149be45e5ull);
    cr_assert_eq(siphash24(key, in, 63), 0x958a324ceb064572ull);
}

Test(siphash, key_changes_everything)
{
    const uint64_t other[2] = {key[0] ^ 1, key[1]};
    cr_assert_neq(siphash24(key, "group", 5), siphash24(other, "group", 5));
}
