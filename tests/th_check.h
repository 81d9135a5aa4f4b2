/*
 * The harness's Check glue, for the Check executables (tests/test_*.c,
 * tests/reliability/test_*.c): th_finish ends a test that reported through
 * th_fail, and th_main is every executable's main and teardown. Header-only
 * so that the test-support library (common.h) needs no Check, and
 * clnorm-bench links it without.
 */
#ifndef CLNORM_TEST_TH_CHECK_H
#define CLNORM_TEST_TH_CHECK_H

#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common.h"

/* Asserts that the current test reported no failure (th_fail). */
#define th_finish()                                                                                  \
    do {                                                                                             \
        unsigned long th_f_ = th_end();                                                              \
        ck_assert_msg(th_f_ == 0, "%lu failed checks (see FAIL lines above)", th_f_);                \
    } while (0)

/* Rejection tables: each row is a valid descriptor `ok` (of type T) with a
 * few fields changed, and the status a call must give. TH_REJECT appends
 * row k of cs (fields what, want, d), then runs the statements with v
 * pointing at the row's copy. */
#define TH_REJECT(cs, k, ok, T, v, w, st, ...)                                                          \
    do {                                                                                             \
        (cs)[k].what = (w), (cs)[k].want = (st), (cs)[k].d = (ok);                                   \
        T *v = &(cs)[k].d;                                                                           \
        __VA_ARGS__;                                                                                 \
        (k)++;                                                                                       \
    } while (0)

/* A forward call's rejection table row (TH_REJECT with T = clnorm_desc). */
typedef struct th_reject {
    const char *what;
    clnorm_status want;
    clnorm_desc d;
} th_reject;

/* clnorm_forward of each of the n rows must give the row's status. */
static inline void th_expect_rejections(clnorm_ctx *ctx, const th_reject *cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        th_set_case("%s", cs[i].what);
        clnorm_status st = clnorm_forward(ctx, &cs[i].d, 0, NULL, NULL);
        TH_EXPECT(st == cs[i].want, "got %s, want %s (%s)", clnorm_status_name(st), clnorm_status_name(cs[i].want),
                  clnorm_last_error(ctx));
    }
}

/* One row of an executable's test list: a test (loops > 0 runs it with _i
 * from 0 to loops - 1), or the start of a new Check test case (tcase). */
typedef struct th_test {
    const TTest *test;
    int loops;
    const char *tcase;
} th_test;
#define TH_TEST(t) {(t), 1, NULL}
#define TH_LOOP(t, n) {(t), (n), NULL}
#define TH_TCASE(name) {NULL, 0, (name)}

static inline double th_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/*
 * The main of a Check executable: runs tests[0..n-1] in one suite named
 * name, without forking (OpenCL state does not survive fork), each test case
 * with the given timeout (0 = none); prints "# <name>: N Check tests, F
 * failed[; M library calls checked; seed base S]; T s"; releases the
 * process context (th_ctx). Returns the process exit status.
 */
static inline int th_main(const char *name, int timeout, const th_test *tests, size_t n)
{
    Suite *s = suite_create(name);
    TCase *tc = NULL;
    for (size_t i = 0; i < n; i++) {
        if (tests[i].tcase || !tc) {
            tc = tcase_create(tests[i].tcase ? tests[i].tcase : name);
            tcase_set_timeout(tc, timeout);
            suite_add_tcase(s, tc);
        }
        if (tests[i].test)
            _tcase_add_test(tc, tests[i].test, 0, 0, 0, tests[i].loops);
    }
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    double t0 = th_now_s();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr), run = srunner_ntests_run(sr);
    printf("# test_%s: %d Check tests, %d failed", name, run, failed);
    if (th_cases) /* the suites that check through th_check_case/th_run */
        printf("; %lu library calls checked; seed base %llu", th_cases, (unsigned long long)th_seed_base());
    printf("; %.1f s\n", th_now_s() - t0);
    srunner_free(sr);
    th_ctx_release();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#define TH_MAIN(name, timeout, ...)                                                                  \
    int main(void)                                                                                   \
    {                                                                                                \
        const th_test tests_[] = {__VA_ARGS__};                                                      \
        return th_main((name), (timeout), tests_, sizeof tests_ / sizeof tests_[0]);                 \
    }

#endif
