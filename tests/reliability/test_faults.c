/*
 * Fault injection. For each operation family, count the OpenCL calls of each
 * kind along the operation's path in a clean run, then make each one of them
 * fail in turn (the k-th call of that kind, for every k). The families are
 * forward calls and backward calls (issue 16), one backward family per path
 * of clnorm_plan_backward (bwd_rows whole, its split phases, with
 * bwd_params; the sums pipeline through row or column sums, bwd_merge,
 * bwd_table and bwd_apply; running statistics with dx only), each checked
 * to take that path (the interposer's kernel trace). Each time:
 *   - clnorm_forward, clnorm_backward (or clnorm_create_*) returns an error: the injected
 *     OpenCL code passed through unchanged, or CLNORM_ERR_BUILD_FAILED for a
 *     failed build (CLNORM_ERR_INVALID_BUFFER for a failed buffer query during
 *     validation), with a message, and no event;
 *   - the context works for the next call (result checked against the
 *     reference);
 *   - no OpenCL object leaks: live objects on the context equal a clean run's
 *     after the retry, and return to the baseline after clnorm_destroy (the
 *     library caches programs, kernels and scratch per context).
 * Host-memory leaks on these paths are caught by LeakSanitizer in the
 * sanitizer build (scripts/sanitize.sh runs this test there).
 *
 * Calls made once per context (program creation and build, kernel creation,
 * scratch allocation) are failed on a fresh context each time; calls made on
 * every operation (kernel arguments, enqueues, retains) on a warm context.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interpose.h"
#include "th_check.h"

static unsigned long g_points;   /* fault points injected */
static unsigned long g_bwd_points; /* of those, on backward calls */
static unsigned long g_tolerated; /* faults the library absorbed (result still correct) */
static unsigned long g_per_kind[FI_KIND_COUNT];

typedef struct family {
    const char *name, *spec; /* spec: the case (th_case_parse); "bwd" in it: a clnorm_backward call */
    clnorm_variant variant;
    int want_event;
    const char *path; /* backward: the kernels its clean run must enqueue, in order (the path under test) */
} family;

static const family g_fam[] = {
    {"LayerNorm", "layer_norm 6x100 affine stats", CLNORM_VARIANT_AUTO, 1, NULL},
    {"LayerNorm split", "layer_norm 2x5000 affine stats", CLNORM_VARIANT_SPLIT, 0, NULL},
    {"RMSNorm", "rms_norm 3x64 scale stats", CLNORM_VARIANT_AUTO, 1, NULL},
    {"BatchNorm training", "batch_norm_train 4x5x6x7 nchw affine stats running", CLNORM_VARIANT_AUTO, 1, NULL},
    {"BatchNorm inference", "batch_norm_infer 3x8x10 nhwc affine running", CLNORM_VARIANT_AUTO, 0, NULL},
    {"InstanceNorm tracked", "instance_norm 2x3x5x5 nchw affine stats running", CLNORM_VARIANT_AUTO, 0, NULL},
    {"GroupNorm channels-last", "group_norm 2x12x4x5 nhwc G=3 affine stats", CLNORM_VARIANT_AUTO, 1, NULL},
    {"GroupNorm split", "group_norm 2x4x3000 nchw G=2 affine", CLNORM_VARIANT_SPLIT, 0, NULL},
    /* Backward (issue 16), one family per path of clnorm_plan_backward. */
    {"bwd LayerNorm rows+params", "layer_norm 40x100 affine stats bwd", CLNORM_VARIANT_AUTO, 1,
     "bwd_rows bwd_params"},
    {"bwd LayerNorm rows whole", "layer_norm 6x100 scale stats bwd dx dscale", CLNORM_VARIANT_AUTO, 0, "bwd_rows"},
    {"bwd RMSNorm rows split", "rms_norm 2x5000 scale stats bwd", CLNORM_VARIANT_SPLIT, 1, "bwd_rows bwd_rows"},
    {"bwd GroupNorm rows+params", "group_norm 2x12x4x5 nchw G=3 affine stats inplace bwd", CLNORM_VARIANT_AUTO, 0,
     "bwd_rows bwd_params"},
    {"bwd BatchNorm row sums", "batch_norm_train 2x3x700 nchw affine stats bwd", CLNORM_VARIANT_AUTO, 1,
     "bwd_row_sums bwd_merge bwd_table bwd_apply"},
    {"bwd BatchNorm col sums", "batch_norm_train 4x5x6x7 nhwc affine stats bwd", CLNORM_VARIANT_AUTO, 0,
     "bwd_col_sums bwd_merge bwd_table bwd_apply"},
    {"bwd BatchNorm running dx only", "batch_norm_infer 3x8x10 nhwc affine running bwd dx", CLNORM_VARIANT_AUTO, 1,
     "bwd_table bwd_apply"},
    {"bwd InstanceNorm running all", "instance_norm_infer 2x3x5x5 nchw affine running bwd", CLNORM_VARIANT_AUTO, 0,
     "bwd_merge bwd_table bwd_apply"},
};
#define N_FAMILIES (int)(sizeof g_fam / sizeof g_fam[0])

/* The family's call on context c: offset 3 (0 with zero_off), seed. */
static void family_call(th_call *p, clnorm_ctx *c, const family *f, int zero_off, uint64_t seed)
{
    th_case k = th_case_of(f->spec);
    ck_assert_int_eq(th_call_init(p, c, &k, zero_off ? 0 : 3, seed), 0);
}

static int once_per_context(fi_kind k)
{
    return k == FI_CREATE_PROGRAM || k == FI_BUILD_PROGRAM || k == FI_CREATE_KERNEL || k == FI_CREATE_BUFFER ||
           k == FI_CREATE_SUB_BUFFER || k == FI_GET_PROGRAM_INFO || k == FI_GET_KERNEL_INFO ||
           k == FI_GET_DEVICE_INFO;
}

/* Kinds never failed: releases (a failing release cannot be handled) and
 * waits (the library never waits). */
static int injectable(fi_kind k) { return k != FI_RELEASE && k != FI_WAIT; }

static clnorm_ctx *new_ctx(const family *f)
{
    clnorm_ctx *c = NULL;
    clnorm_status st = clnorm_create_default(&c);
    ck_assert_msg(st == CLNORM_OK, "clnorm_create_default: %s", clnorm_status_name(st));
    ck_assert_int_eq(clnorm_set_variant(c, f->variant, 0), CLNORM_OK);
    return c;
}

/* The family's call: clnorm_forward, or clnorm_backward for a backward case. */
static clnorm_status forward(clnorm_ctx *c, th_call *p, const family *f, cl_event *ev_out)
{
    cl_event ev = NULL;
    clnorm_status st = p->backward ? clnorm_backward(c, &p->d, 0, NULL, f->want_event ? &ev : NULL)
                                   : clnorm_forward(c, &p->d, 0, NULL, f->want_event ? &ev : NULL);
    if (ev_out) *ev_out = ev;
    else if (ev) clReleaseEvent(ev);
    return st;
}

static void check_status(const family *f, fi_kind kind, unsigned long k, int err, clnorm_status st, clnorm_ctx *c,
                         th_call *p, cl_event ev)
{
    const char *msg = clnorm_last_error(c);
    if (st == CLNORM_OK) {
        /* Absorbed (e.g. an optional query): the result must still be right. */
        char why[512];
        if (ev) clReleaseEvent(ev);
        ck_assert_msg(th_call_check(p, c, why, sizeof why) == 0, "%s: %s #%lu failed (%d) but call returned OK "
                      "with a wrong result: %s", f->name, fi_kind_name(kind), k, err, why);
        g_tolerated++;
        printf("  absorbed: %s %s #%lu (%s)\n", f->name, fi_kind_name(kind), k, clnorm_status_name(err));
        return;
    }
    ck_assert_msg(ev == NULL, "%s: %s #%lu: event returned with an error", f->name, fi_kind_name(kind), k);
    int ok = (int)st == err || (err == CL_BUILD_PROGRAM_FAILURE && st == CLNORM_ERR_BUILD_FAILED) ||
             (kind == FI_GET_MEM_INFO && st == CLNORM_ERR_INVALID_BUFFER);
    ck_assert_msg(ok, "%s: %s #%lu failed with %s, clnorm returned %s (%d) \"%s\"", f->name, fi_kind_name(kind), k,
                  clnorm_status_name(err), clnorm_status_name(st), (int)st, msg);
    ck_assert_msg(*msg, "%s: %s #%lu: no message", f->name, fi_kind_name(kind), k);
    ck_assert_msg((int)st != err || err >= 0 || st < 0, "%s: %s #%lu: status %s is not < 0", f->name,
                  fi_kind_name(kind), k, clnorm_status_name(st));
    if (st == CLNORM_ERR_BUILD_FAILED)
        ck_assert_ptr_nonnull(clnorm_build_log(c));
}

static void retry_ok(const family *f, fi_kind kind, unsigned long k, clnorm_ctx *c, th_call *p)
{
    char why[512];
    th_call_reset(p, clnorm_queue(c));
    clnorm_status st = forward(c, p, f, NULL);
    ck_assert_msg(st == CLNORM_OK, "%s: after %s #%lu failed, the next call returned %s: %s", f->name,
                  fi_kind_name(kind), k, clnorm_status_name(st), clnorm_last_error(c));
    ck_assert_msg(th_call_check(p, c, why, sizeof why) == 0, "%s: after %s #%lu failed, next result wrong: %s",
                  f->name, fi_kind_name(kind), k, why);
}

static void expect_same(const fi_snapshot *a, const char *fname, const char *when, fi_kind kind, unsigned long k)
{
    fi_snapshot b;
    char diff[160];
    fi_snap(&b);
    ck_assert_msg(!fi_snap_diff(a, &b, diff, sizeof diff), "%s: %s #%lu: live OpenCL objects %s: %s", fname,
                  fi_kind_name(kind), k, when, diff);
}

static int error_for(fi_kind kind, unsigned long k)
{
    /* Alternate the default error with CL_OUT_OF_HOST_MEMORY. */
    return (k % 2 == 0) ? CL_OUT_OF_HOST_MEMORY : fi_default_error(kind);
}

/* Clean runs: the counts of each kind in a first (cold) and a second
 * (warm) call, and the live objects of a warm context (warm). */
static void clean_runs(const family *f, const fi_snapshot *base, unsigned long *cold, unsigned long *hot,
                       fi_snapshot *warm)
{
    char why[512];
    th_call p;
    clnorm_ctx *c = new_ctx(f);
    family_call(&p, c, f, 0, 77);
    fi_reset_counts();
    fi_trace_kernels(1);
    ck_assert_int_eq(forward(c, &p, f, NULL), CLNORM_OK);
    for (int i = 0; i < FI_KIND_COUNT; i++) cold[i] = fi_count((fi_kind)i);
    char path[1024];
    snprintf(path, sizeof path, "%s", fi_kernel_trace());
    fi_trace_kernels(0);
    /* A backward family tests the path it names: the plan must still take it. */
    ck_assert_msg(!f->path || strstr(path, f->path) != NULL, "%s: kernels \"%s\", expected the path \"%s\"",
                  f->name, path, f->path);
    ck_assert_msg(th_call_check(&p, c, why, sizeof why) == 0, "%s clean: %s", f->name, why);
    th_call_reset(&p, clnorm_queue(c));
    fi_reset_counts();
    ck_assert_int_eq(forward(c, &p, f, NULL), CLNORM_OK);
    for (int i = 0; i < FI_KIND_COUNT; i++) hot[i] = fi_count((fi_kind)i);
    ck_assert_msg(th_call_check(&p, c, why, sizeof why) == 0, "%s clean warm: %s", f->name, why);
    fi_snap(warm);
    th_call_free(&p);
    clnorm_destroy(c);
    expect_same(base, f->name, "after a clean run and destroy", FI_KIND_COUNT, 0);
    printf("%-26s cold path:", f->name);
    for (int i = 0; i < FI_KIND_COUNT; i++)
        if (cold[i]) printf(" %s=%lu", fi_kind_name((fi_kind)i), cold[i]);
    printf("\n%-26s kernels: %s\n", "", path);
}

/* Fails the k-th call of kind on p's forward: the error is passed on, or
 * absorbed with a correct result. */
static void inject(const family *f, clnorm_ctx *c, th_call *p, fi_kind kind, unsigned long k, const char *when)
{
    int err = error_for(kind, k);
    cl_event ev = NULL;
    fi_reset_counts();
    fi_arm(kind, k, err);
    clnorm_status st = forward(c, p, f, f->want_event ? &ev : NULL);
    int fired = fi_fired();
    fi_disarm();
    ck_assert_msg(fired, "%s: %s%s #%lu not reached (path changed?)", f->name, when, fi_kind_name(kind), k);
    check_status(f, kind, k, err, st, c, p, ev);
    g_points++;
    g_bwd_points += p->backward != 0;
    g_per_kind[kind]++;
}

/* Once-per-context calls: a fresh context per fault point. */
static void inject_cold(const family *f, const unsigned long *cold, const fi_snapshot *base, const fi_snapshot *warm)
{
    for (int ki = 0; ki < FI_KIND_COUNT; ki++) {
        fi_kind kind = (fi_kind)ki;
        if (!injectable(kind) || !once_per_context(kind)) continue;
        for (unsigned long k = 1; k <= cold[ki]; k++) {
            th_call p;
            clnorm_ctx *c = new_ctx(f);
            family_call(&p, c, f, 0, 77);
            inject(f, c, &p, kind, k, "");
            retry_ok(f, kind, k, c, &p);
            /* The retry built what the failed call did not: same live objects as a clean warm context. */
            expect_same(warm, f->name, "after the retry, vs a clean run", kind, k);
            th_call_free(&p);
            clnorm_destroy(c);
            expect_same(base, f->name, "after destroy", kind, k);
        }
    }
}

/* Per-call kinds: a warm context, the k-th call of the warm path. */
static void inject_warm(const family *f, const unsigned long *hot, const fi_snapshot *base)
{
    th_call p;
    clnorm_ctx *c = new_ctx(f);
    family_call(&p, c, f, 0, 77);
    ck_assert_int_eq(forward(c, &p, f, NULL), CLNORM_OK);
    TH_CL(clFinish(clnorm_queue(c)));
    fi_snapshot steady;
    fi_snap(&steady);
    for (int ki = 0; ki < FI_KIND_COUNT; ki++) {
        fi_kind kind = (fi_kind)ki;
        if (!injectable(kind) || once_per_context(kind)) continue;
        for (unsigned long k = 1; k <= hot[ki]; k++) {
            th_call_reset(&p, clnorm_queue(c));
            inject(f, c, &p, kind, k, "warm ");
            TH_CL(clFinish(clnorm_queue(c)));
            expect_same(&steady, f->name, "after the failed call", kind, k);
            retry_ok(f, kind, k, c, &p);
            expect_same(&steady, f->name, "after the retry", kind, k);
        }
    }
    th_call_free(&p);
    clnorm_destroy(c);
    expect_same(base, f->name, "after destroy (warm faults)", FI_KIND_COUNT, 0);
}

static void run_family(const family *f)
{
    fi_snapshot base, warm;
    unsigned long cold[FI_KIND_COUNT], hot[FI_KIND_COUNT];
    fi_snap(&base);
    clean_runs(f, &base, cold, hot, &warm);
    inject_cold(f, cold, &base, &warm);
    inject_warm(f, hot, &base);
    ck_assert_uint_eq(fi_unknown_releases(), 0);
}

START_TEST(test_family)
{
    run_family(&g_fam[_i]);
}
END_TEST

/* Context creation: every call on clnorm_create_default's path, and on
 * clnorm_create_from_queue's. */
START_TEST(test_create)
{
    fi_snapshot base;
    fi_snap(&base);
    unsigned long cnt[FI_KIND_COUNT];
    clnorm_ctx *c = NULL;
    fi_reset_counts();
    ck_assert_int_eq(clnorm_create_default(&c), CLNORM_OK);
    for (int i = 0; i < FI_KIND_COUNT; i++) cnt[i] = fi_count((fi_kind)i);
    cl_command_queue q = clnorm_queue(c);
    clRetainCommandQueue(q);
    clnorm_destroy(c);
    /* create_from_queue with the caller's queue */
    unsigned long cntq[FI_KIND_COUNT];
    fi_reset_counts();
    ck_assert_int_eq(clnorm_create_from_queue(q, &c), CLNORM_OK);
    for (int i = 0; i < FI_KIND_COUNT; i++) cntq[i] = fi_count((fi_kind)i);
    clnorm_destroy(c);
    fi_snapshot withq;
    fi_snap(&withq);

    printf("%-26s path:", "clnorm_create_default");
    for (int i = 0; i < FI_KIND_COUNT; i++)
        if (cnt[i]) printf(" %s=%lu", fi_kind_name((fi_kind)i), cnt[i]);
    printf("\n");
    for (int pass = 0; pass < 2; pass++) {
        unsigned long *n = pass ? cntq : cnt;
        for (int ki = 0; ki < FI_KIND_COUNT; ki++) {
            fi_kind kind = (fi_kind)ki;
            if (!injectable(kind)) continue;
            for (unsigned long k = 1; k <= n[ki]; k++) {
                int err = error_for(kind, k);
                c = (clnorm_ctx *)(uintptr_t)1;
                fi_reset_counts();
                fi_arm(kind, k, err);
                clnorm_status st = pass ? clnorm_create_from_queue(q, &c) : clnorm_create_default(&c);
                int fired = fi_fired();
                fi_disarm();
                ck_assert_msg(fired, "create: %s #%lu not reached", fi_kind_name(kind), k);
                if (st == CLNORM_OK) {
                    /* absorbed: the context must work */
                    th_call p;
                    th_case lc = th_case_of("layer_norm 3x50 affine stats");
                    char why[512];
                    ck_assert_int_eq(th_call_init(&p, c, &lc, 1, 5), 0);
                    int r = th_call_run(&p, c, why, sizeof why);
                    th_call_free(&p);
                    clnorm_destroy(c);
                    ck_assert_msg(r == 0, "create: %s #%lu failed, create returned OK, but the context fails: %s",
                                  fi_kind_name(kind), k, why);
                    g_tolerated++;
                    printf("  absorbed: %s %s #%lu (%s)\n", pass ? "create_from_queue" : "create_default",
                           fi_kind_name(kind), k, clnorm_status_name(err));
                } else {
                    ck_assert_msg(c == NULL, "create: %s #%lu: *out not NULL on error", fi_kind_name(kind), k);
                    ck_assert_msg((int)st == err || st == CLNORM_ERR_NO_DEVICE,
                                  "create: %s #%lu failed with %s, got %s", fi_kind_name(kind), k,
                                  clnorm_status_name(err), clnorm_status_name(st));
                    /* clnorm_status is signed: an OpenCL error compares below 0 as it is. */
                    ck_assert_msg(err >= 0 || st < 0, "create: %s #%lu: status %s is not < 0",
                                  fi_kind_name(kind), k, clnorm_status_name(st));
                }
                expect_same(&withq, pass ? "create_from_queue" : "create_default", "after a failed create", kind,
                            k);
                g_points++;
                g_per_kind[ki]++;
            }
        }
    }
    clReleaseCommandQueue(q);
    /* the queue's context: released by the library's destroy already; the
     * queue was the last reference we held. */
    expect_same(&base, "create", "at the end", FI_KIND_COUNT, 0);
}
END_TEST

/* A real build failure path: the injected CL_BUILD_PROGRAM_FAILURE gives
 * CLNORM_ERR_BUILD_FAILED and a build log string (possibly empty), then the
 * next call builds and works. Covered per family above; here the status is
 * recorded once explicitly. */
START_TEST(test_build_failed_status)
{
    const family *f = &g_fam[0];
    clnorm_ctx *c = new_ctx(f);
    th_call p;
    family_call(&p, c, f, 1, 3);
    fi_reset_counts();
    fi_arm(FI_BUILD_PROGRAM, 1, CL_BUILD_PROGRAM_FAILURE);
    clnorm_status st = clnorm_forward(c, &p.d, 0, NULL, NULL);
    fi_disarm();
    ck_assert_int_eq(st, CLNORM_ERR_BUILD_FAILED);
    ck_assert_ptr_nonnull(clnorm_build_log(c));
    ck_assert_msg(strstr(clnorm_last_error(c), "build") != NULL, "message: %s", clnorm_last_error(c));
    retry_ok(f, FI_BUILD_PROGRAM, 1, c, &p);
    th_call_free(&p);
    clnorm_destroy(c);
}
END_TEST

/* NVIDIA's inline PTX is the one target feature no driver has run yet: a
 * build that fails with it on is retried without it (program.c). Forced on
 * PoCL with CLNORM_FORCE_FEATURES, where the PTX builds for x86 and computes
 * garbage (so no real rejection can be had here), an injected failure of the
 * first build must make the library build the portable sums: the call
 * succeeds and is right, and so is the next. Without the fallback it fails. */
START_TEST(test_ptx_fallback)
{
    const family f = {"LayerNorm, 32-lane segments", "layer_norm 7x129 affine stats", CLNORM_VARIANT_SUBGROUP, 1,
                      NULL};
    setenv("CLNORM_FORCE_FEATURES", "nv_shfl", 1);
    setenv("CLNORM_DEVICE_CLASS", "gpu", 1);
    clnorm_ctx *c = NULL;
    clnorm_status st = clnorm_create_default(&c);
    unsetenv("CLNORM_FORCE_FEATURES");
    unsetenv("CLNORM_DEVICE_CLASS");
    ck_assert_int_eq(st, CLNORM_OK);
    ck_assert_int_eq(clnorm_set_variant(c, f.variant, 64), CLNORM_OK);
    th_call p;
    char why[512];
    family_call(&p, c, &f, 1, 11);
    fi_reset_counts();
    fi_arm(FI_BUILD_PROGRAM, 1, CL_BUILD_PROGRAM_FAILURE);
    st = forward(c, &p, &f, NULL);
    int fired = fi_fired();
    fi_disarm();
    ck_assert_msg(fired, "the first build was not reached");
    ck_assert_msg(st == CLNORM_OK, "the build without the PTX was not tried: %s (%s)", clnorm_status_name(st),
                  clnorm_last_error(c));
    ck_assert_msg(th_call_check(&p, c, why, sizeof why) == 0, "after the fallback: %s", why);
    retry_ok(&f, FI_BUILD_PROGRAM, 1, c, &p);
    th_call_free(&p);
    clnorm_destroy(c);
}
END_TEST

int main(void)
{
    unsetenv("CLNORM_FORCE_FEATURES");
    const th_test tests[] = {TH_TCASE("inject"), TH_TEST(test_create), TH_TEST(test_build_failed_status),
                             TH_TEST(test_ptx_fallback),
                             TH_LOOP(test_family, N_FAMILIES)};
    int rc = th_main("faults", 600, tests, sizeof tests / sizeof tests[0]);
    printf("faults: %lu fault points injected, %lu on backward calls (%lu absorbed by the library with a correct "
           "result)\n", g_points, g_bwd_points, g_tolerated);
    for (int i = 0; i < FI_KIND_COUNT; i++)
        if (g_per_kind[i]) printf("  %-55s %lu\n", fi_kind_name((fi_kind)i), g_per_kind[i]);
    return rc;
}
