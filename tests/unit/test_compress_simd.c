/* test_compress_simd.c — the F16C/AVX2 loops of compress.c give the bits
 * of the portable ones, encoding and decoding, for fp16, bf16 and int8. On
 * a CPU without them (or with PS_COMPRESS_PORTABLE=1) there is nothing to
 * compare: it exits 77, which ctest reports as skipped. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "compress_edges.h"

#define SKIP 77 /* the test's SKIP_RETURN_CODE (tests/CMakeLists.txt) */

START_TEST(vector_loops_give_the_portable_bits)
{
    static float x[N], a_dec[N], b_dec[N], scratch[N];
    static unsigned char a[8 * N], b[8 * N];
    fill_edges(x, N);
    for (int t = PS_COMPRESS_FP16; t <= PS_COMPRESS_INT8; t++) {
        const ps_compress_ops *v = ps_compress_ops_get((ps_compress_type)t);
        const ps_compress_ops *p = ps_compress_ops_portable((ps_compress_type)t);
        ck_assert_msg(v->encode != p->encode && v->decode != p->decode,
                      "%s: the vector loops are not in use", p->name);
        for (size_t n = 0; n <= N; n += (n < 40 ? 1 : 97)) {
            size_t bytes = p->bytes(n, 0);
            memset(a, 0xaa, bytes);
            memset(b, 0x55, bytes);
            ck_assert_int_eq(v->encode(x, n, 0, a, scratch), 0);
            ck_assert_int_eq(p->encode(x, n, 0, b, scratch), 0);
            ck_assert_msg(memcmp(a, b, bytes) == 0, "%s, n = %zu: encodings differ", p->name, n);
            v->decode(a, bytes, a_dec, n);
            p->decode(b, bytes, b_dec, n);
            ck_assert_msg(memcmp(a_dec, b_dec, n * sizeof(float)) == 0,
                          "%s, n = %zu: decodings differ", p->name, n);
        }
    }
}
END_TEST

int main(void)
{
    if (!ps_compress_simd()) {
        const char *portable = getenv("PS_COMPRESS_PORTABLE");
        if (portable != NULL && strcmp(portable, "1") == 0)
            printf("skipped: PS_COMPRESS_PORTABLE=1 keeps the portable loops\n");
        else
            printf("skipped: this CPU has no AVX2 and F16C, so no vector loops to compare\n");
        return SKIP;
    }
    Suite *s = suite_create("compress_simd");
    TCase *tc = tcase_create("compress_simd");
    tcase_add_test(tc, vector_loops_give_the_portable_bits);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
