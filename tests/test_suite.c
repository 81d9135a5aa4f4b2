/*
 * clnorm-bench's standard suite (th_suite, tests/case.c) against the
 * double-precision reference: every case as the benchmark runs it (its op,
 * layout, groups and buffers: scale, bias, saved and running statistics),
 * on the guarded, poisoned buffers of the harness, with normal data and
 * with 1e4 + N(0, 1e-2). A case larger than CLNORM_TEST_SUITE_ELEMS
 * elements (default 2^22; 0 = every case at its real size) is reduced by
 * th_case_reduce, which keeps the op, layout, groups, row length and
 * channel count; the tolerances are the harness's (tests/compare.c).
 */
#include "th_check.h"

#include <stdio.h>
#include <string.h>

START_TEST(suite_case)
{
    clnorm_ctx *ctx = th_ctx();
    th_case c = th_suite[_i];
    long max = th_env_long("CLNORM_TEST_SUITE_ELEMS", 1L << 22);
    if (max > 0)
        th_case_reduce(&c, (size_t)max);
    char real[160], run[160];
    th_case_label(&th_suite[_i], real, sizeof real);
    th_case_label(&c, run, sizeof run);
    printf("# suite case %d: %s%s%s\n", _i, real, max > 0 && strcmp(real, run) ? ", run as " : "",
           max > 0 && strcmp(real, run) ? run : "");
    th_begin();
    static const th_kind kinds[] = {TH_NORMAL, TH_OFFSET_1E4};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        c.kind = kinds[k];
        th_set_case("suite case %d: %s, run as %s", _i, real, run);
        th_check_case(ctx, &c);
    }
    th_finish();
}
END_TEST

TH_MAIN("suite", 0, TH_LOOP(suite_case, (int)th_suite_count))
