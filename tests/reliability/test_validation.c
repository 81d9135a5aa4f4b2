/*
 * Validation: every status the API can produce from bad input, with a
 * specific message, nothing enqueued (counted by the interposer) and every
 * buffer, outputs and running statistics included, byte-identical after the
 * rejected call. Also the accepted cases next to the rejected ones: y == x
 * exactly (in place) and inputs overlapping inputs.
 *
 * Check runs with CK_NOFORK and one clnorm context per process: OpenCL state
 * does not survive fork().
 */
#define _GNU_SOURCE
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "interpose.h"
#include "th_check.h"

static clnorm_ctx *g_ctx;
static cl_command_queue g_q;
static cl_context g_cl;
static unsigned long g_rejections; /* rejected calls checked */
static unsigned g_status_seen[CLNORM_STATUS_END_];
static int g_backward;              /* expect_reject_ex calls clnorm_backward */
static unsigned long g_bwd_rejections;
static unsigned g_bwd_status_seen[CLNORM_STATUS_END_];

/* Buffers of a descriptor (distinct, non-NULL), plus extras. */
static size_t collect(const clnorm_desc *d, cl_mem *out, const cl_mem *extra, size_t nextra)
{
    size_t n = 0;
    for (size_t i = 0; i < TH_ROLES + nextra; i++) { /* every role: the backward's four too */
        cl_mem m = i < TH_ROLES ? th_desc_buf((clnorm_desc *)d, (int)i)->mem : extra[i - TH_ROLES];
        if (!m || m == (cl_mem)fi_invalid_mem()) continue;
        cl_context mc = NULL; /* a buffer of another context cannot be read on our queue */
        TH_CL(clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof mc, &mc, NULL));
        if (mc != g_cl) continue;
        int dup = 0;
        for (size_t j = 0; j < n; j++) dup |= out[j] == m;
        if (!dup) out[n++] = m;
    }
    return n;
}

/* The core assertion: rejected with `want`, a message naming the problem
 * (every needle, case-insensitive), no work enqueued, no object created, the
 * event left NULL, every buffer byte-identical. */
static void reject_core(int backward, const char *what, const clnorm_desc *d, cl_uint nw, const cl_event *wl,
                        int want, const char *const *needles, const cl_mem *extra, size_t nextra)
{
    g_backward = backward;
    cl_mem mems[TH_ROLES + 4];
    size_t nm = d ? collect(d, mems, extra, nextra) : 0;
    void *snaps[TH_ROLES + 4];
    size_t bytes[TH_ROLES + 4];
    for (size_t i = 0; i < nm; i++) snaps[i] = th_snapshot(g_q, mems[i], &bytes[i]);
    TH_CL(clFinish(g_q));
    fi_snapshot before, after;
    fi_snap(&before);
    fi_reset_counts();
    cl_event ev = (cl_event)(uintptr_t)0x1; /* must come back NULL */
    clnorm_status st = g_backward ? clnorm_backward(g_ctx, d, nw, wl, &ev) : clnorm_forward(g_ctx, d, nw, wl, &ev);
    unsigned long enq = fi_enqueues(), created = fi_count(FI_CREATE_BUFFER) + fi_count(FI_CREATE_PROGRAM) +
                                                  fi_count(FI_BUILD_PROGRAM) + fi_count(FI_SET_KERNEL_ARG);
    fi_snap(&after);
    const char *msg = clnorm_last_error(g_ctx);
    ck_assert_msg((int)st == want, "%s: got %s (%d) \"%s\", want %s (%d)", what, clnorm_status_name(st), (int)st,
                  msg, clnorm_status_name(want), want);
    ck_assert_msg(msg && *msg, "%s: empty clnorm_last_error", what);
    ck_assert_msg(strcmp(msg, clnorm_status_string(want)) != 0, "%s: message \"%s\" is only the generic text",
                  what, msg);
    for (size_t i = 0; needles && needles[i]; i++)
        ck_assert_msg(strcasestr(msg, needles[i]) != NULL, "%s: message \"%s\" does not mention \"%s\"", what, msg,
                      needles[i]);
    ck_assert_msg(ev == NULL, "%s: event not NULL after a rejected call", what);
    ck_assert_msg(enq == 0, "%s: %lu commands enqueued by a rejected call", what, enq);
    ck_assert_msg(created == 0, "%s: buffers/programs/kernel args touched by a rejected call", what);
    char diff[128];
    ck_assert_msg(!fi_snap_diff(&before, &after, diff, sizeof diff), "%s: live objects changed: %s", what, diff);
    TH_CL(clFinish(g_q));
    for (size_t i = 0; i < nm; i++) {
        ck_assert_msg(th_same_bytes(g_q, mems[i], snaps[i], bytes[i]), "%s: buffer %zu changed", what, i);
        free(snaps[i]);
    }
    g_rejections++;
    if (want > 0 && want < CLNORM_STATUS_END_) g_status_seen[want]++;
    if (g_backward) g_bwd_rejections++;
    if (g_backward && want > 0 && want < CLNORM_STATUS_END_) g_bwd_status_seen[want]++;
}
static void expect_reject_ex(const char *what, const clnorm_desc *d, cl_uint nw, const cl_event *wl, int want,
                             const char *const *needles, const cl_mem *extra, size_t nextra)
{
    reject_core(0, what, d, nw, wl, want, needles, extra, nextra);
}
#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})
static void expect_reject(const char *what, const clnorm_desc *d, int want, const char *const *needles)
{
    expect_reject_ex(what, d, 0, NULL, want, needles, NULL, 0);
}

/* ---- valid base problems (each test mutates one thing) --------------- */

enum { P_LN, P_RMS, P_BN_TRAIN, P_BN_INFER, P_IN_TRACKED, P_GN_CL, P_COUNT };
static th_call g_p[P_COUNT];
/* The base problems: name, case, every buffer's offset, seed. */
static const struct {
    const char *name, *spec;
    size_t off;
    uint64_t seed;
} g_pdef[P_COUNT] = {
    {"LayerNorm", "layer_norm 5x33 affine stats", 3, 11},
    {"RMSNorm", "rms_norm 4x17 affine stats", 2, 12},
    {"BatchNorm training", "batch_norm_train 3x6x4x5 nchw affine stats running", 5, 13},
    {"BatchNorm inference", "batch_norm_infer 2x7x9 nhwc affine running", 1, 14},
    {"InstanceNorm tracked", "instance_norm 2x4x2x3x2 nchw affine stats running", 4, 15},
    {"GroupNorm channels-last", "group_norm 2x64x3x3 nhwc G=8 affine stats", 2, 16},
};

static void setup_problems(void)
{
    for (int i = 0; i < P_COUNT; i++) {
        th_case c = th_case_of(g_pdef[i].spec);
        if (th_call_init(&g_p[i], g_ctx, &c, g_pdef[i].off, g_pdef[i].seed) != 0) {
            fprintf(stderr, "setup failed: %s\n", g_pdef[i].spec);
            exit(1);
        }
    }
}

static void teardown_problems(void)
{
    for (int i = 0; i < P_COUNT; i++) th_call_free(&g_p[i]);
}

/* Each base problem is valid and correct (so a rejection is due to the one mutation). */
START_TEST(test_base_problems_valid)
{
    char why[512];
    for (int i = 0; i < P_COUNT; i++) {
        th_call_reset(&g_p[i], clnorm_queue(g_ctx));
        int r = th_call_run(&g_p[i], g_ctx, why, sizeof why);
        ck_assert_msg(r == 0, "%s: %s", g_pdef[i].name, why);
    }
}
END_TEST

START_TEST(test_null_arguments)
{
    clnorm_desc d = g_p[P_LN].d;
    cl_event ev = NULL;
    ck_assert_int_eq(clnorm_forward(NULL, &d, 0, NULL, &ev), CLNORM_ERR_NULL_ARGUMENT);
    expect_reject("NULL descriptor", NULL, CLNORM_ERR_NULL_ARGUMENT, NEEDLES("descriptor"));
    ck_assert_int_eq(clnorm_set_variant(NULL, CLNORM_VARIANT_AUTO, 0), CLNORM_ERR_NULL_ARGUMENT);
    ck_assert_int_eq(clnorm_create_from_queue(NULL, &(clnorm_ctx *){NULL}), CLNORM_ERR_NULL_ARGUMENT);
    ck_assert_int_eq(clnorm_create_from_queue(g_q, NULL), CLNORM_ERR_NULL_ARGUMENT);
    ck_assert_int_eq(clnorm_create_default(NULL), CLNORM_ERR_NULL_ARGUMENT);
    clnorm_destroy(NULL);
    ck_assert_ptr_eq(clnorm_queue(NULL), NULL);
    ck_assert_str_eq(clnorm_last_error(NULL), "");
    ck_assert_str_eq(clnorm_build_log(NULL), "");
    ck_assert_uint_eq(clnorm_desc_elements(NULL), 0);
    ck_assert_uint_eq(clnorm_desc_sets(NULL), 0);
    clnorm_desc_init(NULL, CLNORM_LAYER_NORM);
    g_status_seen[CLNORM_ERR_NULL_ARGUMENT]++;
}
END_TEST

START_TEST(test_missing_buffers)
{
    for (int i = 0; i < P_COUNT; i++) {
        clnorm_desc d = g_p[i].d;
        d.x.mem = NULL;
        expect_reject("missing x", &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("x"));
        d = g_p[i].d;
        d.y.mem = NULL;
        expect_reject("missing y", &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("y"));
    }
    clnorm_desc d = g_p[P_BN_INFER].d;
    d.running_mean.mem = d.running_var.mem = NULL;
    expect_reject("BatchNorm inference without running stats", &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("running"));
    for (int i = P_BN_TRAIN; i <= P_IN_TRACKED; i++) {
        d = g_p[i].d;
        d.running_var.mem = NULL;
        expect_reject("running_mean without running_var", &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("running_var"));
        d = g_p[i].d;
        d.running_mean.mem = NULL;
        expect_reject("running_var without running_mean", &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("running_mean"));
    }
}
END_TEST

START_TEST(test_invalid_op)
{
    const int ops[] = {0, 6, 7, -1, 1000};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        clnorm_desc d = g_p[P_LN].d;
        d.op = (clnorm_op)ops[i];
        char num[16];
        snprintf(num, sizeof num, "%d", ops[i]);
        expect_reject("invalid op", &d, CLNORM_ERR_INVALID_OP, NEEDLES("op", num));
    }
}
END_TEST

START_TEST(test_zero_dimensions)
{
    clnorm_desc d = g_p[P_LN].d;
    d.rows = 0;
    expect_reject("rows 0", &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("rows"));
    d = g_p[P_RMS].d;
    d.cols = 0;
    expect_reject("cols 0", &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("cols"));
    for (int i = P_BN_TRAIN; i < P_COUNT; i++) {
        d = g_p[i].d;
        d.n = 0;
        expect_reject("n 0", &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("n"));
        d = g_p[i].d;
        d.c = 0;
        expect_reject("c 0", &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("c"));
        for (unsigned k = 0; k < g_p[i].d.rank; k++) {
            d = g_p[i].d;
            d.spatial[k] = 0;
            expect_reject("spatial[k] 0", &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("spatial"));
        }
    }
}
END_TEST

START_TEST(test_size_overflow)
{
    clnorm_desc d = g_p[P_LN].d;
    d.rows = SIZE_MAX / 2;
    d.cols = 3;
    expect_reject("rows*cols overflow", &d, CLNORM_ERR_TOO_LARGE, NEEDLES("overflow"));
    d.rows = (size_t)1 << 33;
    d.cols = (size_t)1 << 33;
    expect_reject("rows*cols overflow (2^66)", &d, CLNORM_ERR_TOO_LARGE, NEEDLES("overflow"));
    d = g_p[P_BN_TRAIN].d;
    d.n = SIZE_MAX / 4;
    d.c = 8;
    expect_reject("n*c overflow", &d, CLNORM_ERR_TOO_LARGE, NEEDLES("overflow"));
    d = g_p[P_IN_TRACKED].d; /* rank 3 */
    d.spatial[0] = (size_t)1 << 30;
    d.spatial[1] = (size_t)1 << 30;
    d.spatial[2] = (size_t)1 << 10;
    expect_reject("spatial product overflow", &d, CLNORM_ERR_TOO_LARGE, NEEDLES("overflow"));
    d = g_p[P_GN_CL].d; /* n 2, c 64, rank 2 */
    d.spatial[0] = (size_t)1 << 31;
    d.spatial[1] = (size_t)1 << 27;
    expect_reject("n*c*spatial overflow", &d, CLNORM_ERR_TOO_LARGE, NEEDLES("overflow"));
}
END_TEST

/* Counts that do not overflow size_t but exceed what the kernels index
 * (README: 32-bit set length, set count and N*C; at most 2^46 elements). The
 * buffers are small: the size limit must be reported, not BUFFER_TOO_SMALL. */
START_TEST(test_too_large_for_kernels)
{
    clnorm_desc d = g_p[P_LN].d;
    d.rows = 1;
    d.cols = ((size_t)1 << 32) + 1;
    expect_reject("cols 2^32+1", &d, CLNORM_ERR_TOO_LARGE, NEEDLES("4294967297"));
    d.rows = ((size_t)1 << 32) + 1;
    d.cols = 1;
    expect_reject("rows 2^32+1", &d, CLNORM_ERR_TOO_LARGE, NEEDLES("4294967297"));
    d.rows = (size_t)1 << 24;
    d.cols = (size_t)1 << 23;
    expect_reject("2^47 elements", &d, CLNORM_ERR_TOO_LARGE, NULL);
    d = g_p[P_BN_TRAIN].d; /* BatchNorm set = N*S */
    d.n = (size_t)1 << 20;
    d.spatial[0] = (size_t)1 << 7;
    d.spatial[1] = (size_t)1 << 6;
    expect_reject("BatchNorm set of 2^33", &d, CLNORM_ERR_TOO_LARGE, NULL);
    d = g_p[P_IN_TRACKED].d;
    d.n = (size_t)1 << 17;
    d.c = (size_t)1 << 16;
    d.rank = 0;
    d.spatial[0] = d.spatial[1] = d.spatial[2] = 0;
    expect_reject("N*C of 2^33", &d, CLNORM_ERR_TOO_LARGE, NULL);
}
END_TEST

/* Each buffer one element too short (by size and by offset), and an offset
 * whose offset + extent overflows. */
START_TEST(test_buffer_too_small)
{
    static const char *const names[8] = {"x", "y", "scale", "bias", "mean", "rstd", "running_mean", "running_var"};
    for (int i = 0; i < P_COUNT; i++) {
        for (int b = 0; b < 8; b++) {
            clnorm_desc d = g_p[i].d;
            clnorm_buf *bs[8] = {&d.x, &d.y, &d.scale, &d.bias, &d.mean, &d.rstd, &d.running_mean, &d.running_var};
            if (!bs[b]->mem) continue;
            size_t floats = th_mem_floats(bs[b]->mem);
            size_t extent = g_p[i].len[b];
            char what[96];
            /* offset + extent = size + 1 */
            bs[b]->offset = floats - extent + 1;
            if (b == 0 && d.y.mem == d.x.mem) d.y.offset = d.x.offset; /* keep y == x exact when in place */
            snprintf(what, sizeof what, "%s: %s one short", g_pdef[i].name, names[b]);
            expect_reject(what, &d, CLNORM_ERR_BUFFER_TOO_SMALL, NEEDLES(names[b]));
            bs[b]->offset = SIZE_MAX - 2;
            snprintf(what, sizeof what, "%s: %s offset SIZE_MAX-2", g_pdef[i].name, names[b]);
            expect_reject(what, &d, CLNORM_ERR_BUFFER_TOO_SMALL, NEEDLES(names[b]));
            bs[b]->offset = SIZE_MAX / 4;
            snprintf(what, sizeof what, "%s: %s offset SIZE_MAX/4", g_pdef[i].name, names[b]);
            expect_reject(what, &d, CLNORM_ERR_BUFFER_TOO_SMALL, NEEDLES(names[b]));
        }
    }
    /* A genuinely small buffer: per-sample affine needs n*c, not c. */
    clnorm_desc d = g_p[P_GN_CL].d;
    d.per_sample_affine = 1;
    expect_reject("per-sample scale of c elements", &d, CLNORM_ERR_BUFFER_TOO_SMALL, NEEDLES("scale"));
}
END_TEST

START_TEST(test_invalid_eps)
{
    const float bad[] = {NAN, INFINITY, -INFINITY, -1e-5f, -1.0f, -1e-38f};
    for (int i = 0; i < P_COUNT; i++)
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            clnorm_desc d = g_p[i].d;
            d.eps = bad[k];
            expect_reject("bad eps", &d, CLNORM_ERR_INVALID_EPS, NEEDLES("eps"));
        }
}
END_TEST

/* momentum is validated where running statistics are updated. */
START_TEST(test_invalid_momentum)
{
    const float bad[] = {-0.1f, 1.5f, 1.0000001f, -1e-30f, NAN, INFINITY, -INFINITY};
    const int which[] = {P_BN_TRAIN, P_IN_TRACKED};
    for (size_t w = 0; w < 2; w++)
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            clnorm_desc d = g_p[which[w]].d;
            d.momentum = bad[k];
            expect_reject("bad momentum", &d, CLNORM_ERR_INVALID_MOMENTUM, NEEDLES("momentum"));
        }
    /* The bounds themselves are legal. */
    char why[512];
    for (int m = 0; m <= 1; m++) {
        th_call *p = &g_p[P_BN_TRAIN];
        th_call_reset(p, clnorm_queue(g_ctx));
        p->d.momentum = (float)m;
        int r = th_call_run(p, g_ctx, why, sizeof why);
        p->d.momentum = 0.1f;
        ck_assert_msg(r == 0, "momentum %d: %s", m, why);
    }
}
END_TEST

START_TEST(test_invalid_groups)
{
    clnorm_desc d = g_p[P_GN_CL].d; /* c = 64 */
    d.groups = 0;
    expect_reject("groups 0", &d, CLNORM_ERR_INVALID_GROUPS, NEEDLES("0", "64"));
    d.groups = 3;
    expect_reject("groups 3 of 64", &d, CLNORM_ERR_INVALID_GROUPS, NEEDLES("3", "64"));
    d.groups = 128;
    expect_reject("groups 128 of 64", &d, CLNORM_ERR_INVALID_GROUPS, NEEDLES("128", "64"));
    d.groups = 65;
    expect_reject("groups 65 of 64", &d, CLNORM_ERR_INVALID_GROUPS, NEEDLES("65", "64"));
    d.groups = SIZE_MAX;
    expect_reject("groups SIZE_MAX", &d, CLNORM_ERR_INVALID_GROUPS, NULL);
}
END_TEST

START_TEST(test_invalid_layout_and_rank)
{
    const int layouts[] = {2, 3, -1, 100};
    const unsigned ranks[] = {4, 5, 100, 0xffffffffu};
    for (int i = P_BN_TRAIN; i < P_COUNT; i++) {
        for (size_t k = 0; k < 4; k++) {
            clnorm_desc d = g_p[i].d;
            d.layout = (clnorm_layout)layouts[k];
            expect_reject("bad layout", &d, CLNORM_ERR_INVALID_LAYOUT, NEEDLES("layout"));
            d = g_p[i].d;
            d.rank = ranks[k];
            expect_reject("bad rank", &d, CLNORM_ERR_INVALID_RANK, NEEDLES("rank"));
        }
    }
}
END_TEST

START_TEST(test_count_one)
{
    clnorm_desc d = g_p[P_BN_TRAIN].d; /* BatchNorm training, N*S == 1 */
    d.n = 1;
    d.rank = 0;
    d.spatial[0] = d.spatial[1] = 0;
    expect_reject("BatchNorm training N=1 rank 0", &d, CLNORM_ERR_COUNT_ONE, NEEDLES("1"));
    d.rank = 2;
    d.spatial[0] = d.spatial[1] = 1;
    expect_reject("BatchNorm training N=1 1x1", &d, CLNORM_ERR_COUNT_ONE, NEEDLES("1"));
    d = g_p[P_IN_TRACKED].d; /* InstanceNorm training, S == 1 */
    d.spatial[0] = d.spatial[1] = d.spatial[2] = 1;
    expect_reject("InstanceNorm training S=1", &d, CLNORM_ERR_COUNT_ONE, NEEDLES("spatial"));
    /* BatchNorm inference with N*S == 1 is fine (no statistics). */
    th_call p;
    th_case c = th_case_of("batch_norm_infer 1x5 affine running");
    ck_assert_int_eq(th_call_init(&p, g_ctx, &c, 2, 21), 0);
    char why[512];
    int r = th_call_run(&p, g_ctx, why, sizeof why);
    th_call_free(&p);
    ck_assert_msg(r == 0, "BatchNorm inference N=1: %s", why);
}
END_TEST

START_TEST(test_foreign_buffer)
{
    cl_device_id dev = clnorm_device(g_ctx);
    cl_int e;
    cl_context other = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
    ck_assert_msg(other != NULL, "clCreateContext: %d", e);
    cl_mem big = th_buffer(other, 1 << 16);
    static const char *const names[8] = {"x", "y", "scale", "bias", "mean", "rstd", "running_mean", "running_var"};
    for (int i = 0; i < P_COUNT; i++)
        for (int b = 0; b < 8; b++) {
            clnorm_desc d = g_p[i].d;
            clnorm_buf *bs[8] = {&d.x, &d.y, &d.scale, &d.bias, &d.mean, &d.rstd, &d.running_mean, &d.running_var};
            if (!bs[b]->mem) continue;
            bs[b]->mem = big;
            bs[b]->offset = 0;
            expect_reject_ex("foreign buffer", &d, 0, NULL, CLNORM_ERR_FOREIGN_BUFFER, NEEDLES(names[b]), &big, 1);
        }
    clReleaseMemObject(big);
    clReleaseContext(other);
}
END_TEST

START_TEST(test_invalid_buffer)
{
    for (int b = 0; b < 4; b++) {
        clnorm_desc d = g_p[P_LN].d;
        clnorm_buf *bs[4] = {&d.x, &d.y, &d.scale, &d.rstd};
        bs[b]->mem = (cl_mem)fi_invalid_mem();
        expect_reject("invalid cl_mem", &d, CLNORM_ERR_INVALID_BUFFER, NEEDLES("not a valid buffer"));
    }
}
END_TEST

START_TEST(test_invalid_events)
{
    clnorm_desc d = g_p[P_LN].d;
    expect_reject_ex("num_wait 1, NULL list", &d, 1, NULL, CLNORM_ERR_INVALID_EVENTS, NEEDLES("num_wait"), NULL, 0);
    expect_reject_ex("num_wait 5, NULL list", &d, 5, NULL, CLNORM_ERR_INVALID_EVENTS, NEEDLES("5"), NULL, 0);
    cl_event dummy = NULL;
    expect_reject_ex("num_wait 0, a list", &d, 0, &dummy, CLNORM_ERR_INVALID_EVENTS, NEEDLES("num_wait"), NULL, 0);
}
END_TEST

/* Options that exist but not for this operation. */
START_TEST(test_unsupported)
{
    clnorm_desc d = g_p[P_LN].d;
    d.per_sample_affine = 1;
    expect_reject("LayerNorm per-sample affine", &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("per-sample"));
    d = g_p[P_RMS].d;
    d.mean = g_p[P_LN].d.mean;
    expect_reject("RMSNorm mean", &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("mean"));
    d = g_p[P_LN].d;
    d.running_mean = g_p[P_BN_TRAIN].d.running_mean;
    d.running_var = g_p[P_BN_TRAIN].d.running_var;
    expect_reject("LayerNorm running stats", &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("running"));
    d = g_p[P_GN_CL].d;
    d.running_mean = g_p[P_BN_INFER].d.running_mean; /* 7 channels: too small too, but unsupported comes first */
    d.running_var = g_p[P_BN_INFER].d.running_var;
    expect_reject("GroupNorm running stats", &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("running"));
    d = g_p[P_BN_INFER].d;
    d.mean = g_p[P_BN_TRAIN].d.mean;
    expect_reject("BatchNorm inference saved mean", &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("mean"));
    d = g_p[P_BN_INFER].d;
    d.rstd = g_p[P_BN_TRAIN].d.rstd;
    expect_reject("BatchNorm inference saved rstd", &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("rstd"));
    d = g_p[P_IN_TRACKED].d;
    d.training = 0; /* inference with running stats: no saved statistics */
    expect_reject("InstanceNorm tracked inference saved stats", &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("mean"));
}
END_TEST

/* Overlaps within buffers. Outputs: y, mean, rstd, and running stats when updated. */
static void aliasing_in_buffers(void)
{
    th_call *ln = &g_p[P_LN], *bn = &g_p[P_BN_TRAIN], *bi = &g_p[P_BN_INFER];
    clnorm_desc d = ln->d;
    d.y.offset = d.x.offset + 1; /* y = x shifted: partial overlap */
    d.y.mem = d.x.mem;
    expect_reject("y overlaps x (+1)", &d, CLNORM_ERR_ALIASING, NEEDLES("y", "x"));
    d.y.offset = d.x.offset + TH_GUARD_AFTER; /* as far as the buffer allows */
    expect_reject("y overlaps x (+16)", &d, CLNORM_ERR_ALIASING, NEEDLES("y", "x"));
    d.x.offset = ln->b[TH_X].off + 1; /* x shifted, y at off */
    d.y.offset = ln->b[TH_X].off;
    expect_reject("x overlaps y (-1)", &d, CLNORM_ERR_ALIASING, NEEDLES("y", "x"));
    /* mean and rstd in one buffer, overlapping */
    d = ln->d;
    d.rstd = d.mean;
    expect_reject("rstd == mean", &d, CLNORM_ERR_ALIASING, NEEDLES("mean", "rstd"));
    d.rstd.offset = d.mean.offset + ln->len[TH_MEAN] - 1;
    expect_reject("rstd overlaps mean end", &d, CLNORM_ERR_ALIASING, NEEDLES("mean", "rstd"));
    /* mean inside y */
    d = ln->d;
    d.mean = d.y;
    expect_reject("mean inside y", &d, CLNORM_ERR_ALIASING, NEEDLES("mean", "y"));
    /* rstd inside x (output over an input) */
    d = ln->d;
    d.rstd = (clnorm_buf){d.x.mem, d.x.offset + 7};
    expect_reject("rstd inside x", &d, CLNORM_ERR_ALIASING, NEEDLES("rstd", "x"));
    /* y over scale / bias (inputs) */
    d = ln->d;
    d.scale = (clnorm_buf){d.y.mem, d.y.offset + 2};
    expect_reject("scale inside y", &d, CLNORM_ERR_ALIASING, NEEDLES("scale", "y"));
    d = ln->d;
    d.bias = (clnorm_buf){d.y.mem, d.y.offset};
    expect_reject("bias inside y", &d, CLNORM_ERR_ALIASING, NEEDLES("bias", "y"));
    /* BatchNorm training: running stats are read and written */
    d = bn->d;
    d.running_var = d.running_mean;
    expect_reject("running_var == running_mean", &d, CLNORM_ERR_ALIASING, NEEDLES("running"));
    d = bn->d;
    d.running_mean = (clnorm_buf){d.x.mem, d.x.offset};
    expect_reject("running_mean inside x (training)", &d, CLNORM_ERR_ALIASING, NEEDLES("running_mean", "x"));
    d = bn->d;
    d.mean = d.running_var;
    expect_reject("mean == running_var", &d, CLNORM_ERR_ALIASING, NEEDLES("mean", "running_var"));
    d = bn->d;
    d.scale = d.running_mean;
    expect_reject("scale == running_mean (training)", &d, CLNORM_ERR_ALIASING, NEEDLES("scale", "running_mean"));
    /* BatchNorm inference: y over running stats (inputs there) */
    d = bi->d;
    d.running_mean = (clnorm_buf){d.y.mem, d.y.offset + 3};
    expect_reject("running_mean inside y (inference)", &d, CLNORM_ERR_ALIASING, NEEDLES("running_mean", "y"));
}

/* Overlaps through sub-buffers: x is a sub-buffer of P, y is P itself or another sub-buffer. */
static void aliasing_sub_buffers(void)
{
    th_call *ln = &g_p[P_LN];
    clnorm_desc d;
    cl_uint align_bits = 0;
    TH_CL(clGetDeviceInfo(clnorm_device(g_ctx), CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits,
                           NULL));
    size_t align = align_bits / 8, n = ln->len[TH_X];
    size_t total = 4 * align + 4 * n * sizeof(float);
    cl_mem parent = th_buffer(g_cl, total / sizeof(float));
    cl_buffer_region r1 = {align, n * sizeof(float) + align};
    cl_buffer_region r2 = {2 * align, n * sizeof(float)};
    cl_int e;
    cl_mem sub1 = clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r1, &e);
    ck_assert_msg(sub1 != NULL, "clCreateSubBuffer %d", e);
    cl_mem sub2 = clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r2, &e);
    ck_assert_msg(sub2 != NULL, "clCreateSubBuffer %d", e);
    cl_mem extra[3] = {parent, sub1, sub2};
    d = ln->d;
    d.x = (clnorm_buf){sub1, 0};
    d.y = (clnorm_buf){parent, align / sizeof(float) + 5}; /* y starts 5 floats into x */
    expect_reject_ex("y (parent) overlaps x (sub-buffer)", &d, 0, NULL, CLNORM_ERR_ALIASING, NEEDLES("y", "x"),
                     extra, 3);
    d.x = (clnorm_buf){sub1, 3};
    d.y = (clnorm_buf){sub2, 0}; /* x covers [align+12, align+12+4n), y [2 align, 2 align + 4n) */
    expect_reject_ex("y (sub-buffer) overlaps x (sub-buffer)", &d, 0, NULL, CLNORM_ERR_ALIASING,
                     NEEDLES("y", "x"), extra, 3);
    d = ln->d;
    d.mean = (clnorm_buf){sub2, 1};
    d.rstd = (clnorm_buf){parent, 2 * align / sizeof(float)};
    expect_reject_ex("rstd (parent) overlaps mean (sub-buffer)", &d, 0, NULL, CLNORM_ERR_ALIASING,
                     NEEDLES("mean", "rstd"), extra, 3);
    /* Disjoint parts of one parent through sub-buffers are fine. */
    d = ln->d;
    d.x = (clnorm_buf){sub1, 0};
    d.y = (clnorm_buf){parent, (2 * align + n * sizeof(float) + align) / sizeof(float)};
    clnorm_status st = clnorm_forward(g_ctx, &d, 0, NULL, NULL);
    ck_assert_msg(st == CLNORM_OK, "disjoint sub-buffers rejected: %s", clnorm_last_error(g_ctx));
    TH_CL(clFinish(g_q));
    clReleaseMemObject(sub2);
    clReleaseMemObject(sub1);
    clReleaseMemObject(parent);
}

START_TEST(test_aliasing)
{
    aliasing_in_buffers();
    aliasing_sub_buffers();
}
END_TEST

/* y == x exactly is in place and must equal the out-of-place result. */
START_TEST(test_in_place)
{
    static const struct {
        const char *spec;
        clnorm_variant v;
    } cases[] = {
        {"layer_norm 7x300 affine stats inplace", CLNORM_VARIANT_AUTO},
        {"layer_norm 7x300 affine stats inplace", CLNORM_VARIANT_WG},
        {"layer_norm 7x300 affine stats inplace", CLNORM_VARIANT_SUBGROUP},
        {"layer_norm 7x300 affine stats inplace", CLNORM_VARIANT_WI},
        {"layer_norm 7x300 affine stats inplace", CLNORM_VARIANT_SPLIT},
        {"rms_norm 3x129 scale stats inplace", CLNORM_VARIANT_SPLIT},
        {"batch_norm_train 4x3x5x7 nchw affine stats running inplace", CLNORM_VARIANT_AUTO},
        {"batch_norm_train 4x3x5x7 nhwc affine running inplace", CLNORM_VARIANT_SPLIT},
        {"batch_norm_infer 4x3x5 nhwc affine running inplace", CLNORM_VARIANT_AUTO},
        {"instance_norm 2x3x50 nchw affine stats running inplace", CLNORM_VARIANT_WG},
        {"group_norm 2x12x3x4 nhwc G=4 affine stats inplace", CLNORM_VARIANT_AUTO},
        {"group_norm 2x12x3x4 nchw G=3 affine inplace", CLNORM_VARIANT_SPLIT},
    };
    char why[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        th_call p;
        th_case c = th_case_of(cases[i].spec);
        ck_assert_int_eq(clnorm_set_variant(g_ctx, cases[i].v, 0), CLNORM_OK);
        ck_assert_int_eq(th_call_init(&p, g_ctx, &c, 3, 100 + i), 0);
        int r = th_call_run(&p, g_ctx, why, sizeof why);
        th_call_free(&p);
        ck_assert_int_eq(clnorm_set_variant(g_ctx, CLNORM_VARIANT_AUTO, 0), CLNORM_OK);
        ck_assert_msg(r == 0, "in-place case %zu (%s, variant %s): %s", i, cases[i].spec,
                      clnorm_variant_name(cases[i].v), why);
    }
}
END_TEST

/* Inputs may overlap inputs: scale == bias, and scale inside x. */
START_TEST(test_inputs_may_overlap)
{
    th_call *p = &g_p[P_LN];
    char why[512];
    th_call_reset(p, clnorm_queue(g_ctx));
    clnorm_desc saved = p->d;
    /* bias := the scale buffer; the host copy must say so for the reference */
    p->d.bias = p->d.scale;
    p->in.bias = p->in.scale;
    int r = th_call_run(p, g_ctx, why, sizeof why);
    p->in.bias = th_call_host(p, TH_BIAS);
    p->d = saved;
    ck_assert_msg(r == 0, "scale == bias: %s", why);
}
END_TEST

START_TEST(test_set_variant_validation)
{
    ck_assert_int_eq(clnorm_set_variant(g_ctx, (clnorm_variant)CLNORM_VARIANT_COUNT, 0), CLNORM_ERR_INVALID_VARIANT);
    ck_assert_msg(*clnorm_last_error(g_ctx), "no message for a bad variant");
    ck_assert_int_eq(clnorm_set_variant(g_ctx, (clnorm_variant)-1, 0), CLNORM_ERR_INVALID_VARIANT);
    ck_assert_int_eq(clnorm_set_variant(g_ctx, CLNORM_VARIANT_WG, 3), CLNORM_ERR_INVALID_VARIANT);
    ck_assert_msg(strstr(clnorm_last_error(g_ctx), "3") != NULL, "message \"%s\"", clnorm_last_error(g_ctx));
    ck_assert_int_eq(clnorm_set_variant(g_ctx, CLNORM_VARIANT_WG, (size_t)1 << 40), CLNORM_ERR_INVALID_VARIANT);
    /* 1 is a power of two: one work-item per group is a valid forced size. */
    ck_assert_int_eq(clnorm_set_variant(g_ctx, CLNORM_VARIANT_WG, 1), CLNORM_OK);
    ck_assert_int_eq(clnorm_set_variant(g_ctx, CLNORM_VARIANT_AUTO, 0), CLNORM_OK);
    g_status_seen[CLNORM_ERR_INVALID_VARIANT]++;
}
END_TEST

/* Context creation: device selection failures (CLNORM_DEVICE, no platform). */
START_TEST(test_create_errors)
{
    const char *old = getenv("CLNORM_DEVICE");
    char *saved = old ? strdup(old) : NULL;
    clnorm_ctx *c = (clnorm_ctx *)(uintptr_t)1;
    fi_snapshot a, b;
    fi_snap(&a);
    setenv("CLNORM_DEVICE", "no-such-device-anywhere", 1);
    ck_assert_int_eq(clnorm_create_default(&c), CLNORM_ERR_DEVICE_NOT_FOUND);
    ck_assert_ptr_eq(c, NULL);
    setenv("CLNORM_DEVICE", "9:0", 1);
    ck_assert_int_eq(clnorm_create_default(&c), CLNORM_ERR_DEVICE_NOT_FOUND);
    setenv("CLNORM_DEVICE", "0:9", 1);
    ck_assert_int_eq(clnorm_create_default(&c), CLNORM_ERR_DEVICE_NOT_FOUND);
    if (saved) setenv("CLNORM_DEVICE", saved, 1); else unsetenv("CLNORM_DEVICE");
    free(saved);
    fi_set_no_platform(1);
    clnorm_status st = clnorm_create_default(&c);
    fi_set_no_platform(0);
    ck_assert_msg(st == CLNORM_ERR_NO_DEVICE, "no platform: got %s", clnorm_status_name(st));
    ck_assert_ptr_eq(c, NULL);
    fi_snap(&b);
    char diff[128];
    ck_assert_msg(!fi_snap_diff(&a, &b, diff, sizeof diff), "failed creation leaked: %s", diff);
    g_status_seen[CLNORM_ERR_DEVICE_NOT_FOUND]++;
    g_status_seen[CLNORM_ERR_NO_DEVICE]++;
    /* The variant env var is validated at creation. */
    setenv("CLNORM_VARIANT", "bogus", 1);
    st = clnorm_create_default(&c);
    unsetenv("CLNORM_VARIANT");
    ck_assert_msg(st == CLNORM_ERR_INVALID_VARIANT, "CLNORM_VARIANT=bogus: got %s", clnorm_status_name(st));
    ck_assert_ptr_eq(c, NULL);
    fi_snap(&b);
    ck_assert_msg(!fi_snap_diff(&a, &b, diff, sizeof diff), "failed creation leaked: %s", diff);
}
END_TEST

START_TEST(test_status_strings)
{
#define CHECK_X(name, value, text)                                                                       \
    ck_assert_str_eq(clnorm_status_string(value), text);                                                 \
    ck_assert_str_eq(clnorm_status_name(value), #name);                                                  \
    ck_assert_int_eq(clnorm_is_cl_error(value), 0);
    CLNORM_STATUS_LIST(CHECK_X)
#undef CHECK_X
    ck_assert_str_eq(clnorm_status_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
    ck_assert_int_ne(clnorm_is_cl_error(CL_OUT_OF_RESOURCES), 0);
    ck_assert_ptr_nonnull(clnorm_status_string(12345));
    ck_assert_ptr_nonnull(clnorm_status_name(-12345));
    ck_assert_ptr_nonnull(clnorm_status_string(CLNORM_STATUS_END_));
}
END_TEST

/* A rejected call does not disturb the next good one (the message is reset too). */
START_TEST(test_recovers_after_rejections)
{
    char why[512];
    for (int i = 0; i < P_COUNT; i++) {
        clnorm_desc d = g_p[i].d;
        d.eps = -1.0f;
        ck_assert_int_eq(clnorm_forward(g_ctx, &d, 0, NULL, NULL), CLNORM_ERR_INVALID_EPS);
        th_call_reset(&g_p[i], clnorm_queue(g_ctx));
        int r = th_call_run(&g_p[i], g_ctx, why, sizeof why);
        ck_assert_msg(r == 0, "%s after a rejection: %s", g_pdef[i].name, why);
        ck_assert_str_eq(clnorm_last_error(g_ctx), "");
    }
}
END_TEST


/* SPEC.md: NaN or Inf in a set makes the set's outputs NaN. For RMSNorm the
 * mean of squares is Inf, and rstd = 0 would give finite outputs (found by
 * this suite, fixed in the kernels). */
START_TEST(test_rms_inf_row)
{
    char why[512];
    th_case c = th_case_of("rms_norm 2x64 affine stats");
    for (int sign = 0; sign < 2; sign++) {
        th_call p;
        ck_assert_int_eq(th_call_init(&p, g_ctx, &c, 1, 5), 0);
        th_call_host(&p, TH_X)[3] = sign ? -INFINITY : INFINITY;
        th_call_reset(&p, clnorm_queue(g_ctx));
        int r = th_call_run(&p, g_ctx, why, sizeof why);
        th_call_free(&p);
        ck_assert_msg(r == 0, "RMSNorm row with %cInf: %s", sign ? '-' : '+', why);
    }
}
END_TEST

/* ==== backward (issue 16): clnorm_backward's rejections ==================
 * Every status clnorm_validate_backward can return, on base problems of
 * every statistics mode, with the same assertions as forward (status,
 * message, nothing enqueued or created, no event, every buffer byte for
 * byte) plus the harness's rejection readback of the base call (every
 * payload and guard as uploaded: th_call_readback with rejected = 1). */

enum { B_LN, B_RMS, B_BN_TRAIN, B_BN_INFER, B_IN_INFER, B_GN_CL, B_GN_PSA, B_COUNT };
static th_call g_b[B_COUNT];
static const struct {
    const char *name, *spec;
    size_t off;
    uint64_t seed;
} g_bdef[B_COUNT] = {
    {"bwd LayerNorm", "layer_norm 5x33 affine stats bwd", 3, 21},
    {"bwd RMSNorm", "rms_norm 4x17 scale stats bwd", 2, 22},
    {"bwd BatchNorm training", "batch_norm_train 3x6x4x5 nchw affine stats bwd", 5, 23},
    {"bwd BatchNorm inference", "batch_norm_infer 2x7x9 nhwc affine running bwd", 1, 24},
    {"bwd InstanceNorm inference tracked", "instance_norm_infer 2x4x2x3x2 nchw affine running bwd", 4, 25},
    {"bwd GroupNorm channels-last", "group_norm 2x64x3x3 nhwc G=8 affine stats bwd", 2, 26},
    {"bwd GroupNorm per-sample affine", "group_norm 2x6x5 nchw G=3 affine stats psa bwd", 3, 27},
};
static const int k_batch_b[] = {B_LN, B_RMS, B_BN_TRAIN, B_GN_CL, B_GN_PSA}; /* saved statistics */

static void setup_bwd_problems(void)
{
    for (int i = 0; i < B_COUNT; i++) {
        th_case c = th_case_of(g_bdef[i].spec);
        if (th_call_init(&g_b[i], g_ctx, &c, g_bdef[i].off, g_bdef[i].seed) != 0) {
            fprintf(stderr, "setup failed: %s\n", g_bdef[i].spec);
            exit(1);
        }
    }
}

static void teardown_bwd_problems(void)
{
    for (int i = 0; i < B_COUNT; i++) th_call_free(&g_b[i]);
}

/* Every base call's buffers as uploaded (a test's accepted calls write dx). */
static void bwd_fresh(void)
{
    for (int i = 0; i < B_COUNT; i++) th_call_reset(&g_b[i], g_q);
}

/* expect_reject_ex for clnorm_backward, then the harness's rejection
 * readback of base call k (NULL: none). */
static void expect_reject_bwd_ex(const char *what, th_call *k, const clnorm_desc *d, cl_uint nw, const cl_event *wl,
                                 int want, const char *const *needles, const cl_mem *extra, size_t nextra)
{
    reject_core(1, what, d, nw, wl, want, needles, extra, nextra);
    if (k) {
        char why[512] = "";
        ck_assert_msg(th_call_readback(k, g_q, 1, why, sizeof why) == 0, "%s: a buffer changed: %s", what, why);
    }
}
static void expect_reject_bwd(const char *what, int i, const clnorm_desc *d, int want, const char *const *needles)
{
    char full[200];
    snprintf(full, sizeof full, "%s: %s", g_bdef[i].name, what);
    expect_reject_bwd_ex(full, &g_b[i], d, 0, NULL, want, needles, NULL, 0);
}

START_TEST(test_bwd_base_problems_valid)
{
    char why[512];
    bwd_fresh();
    for (int i = 0; i < B_COUNT; i++) {
        int r = th_call_run(&g_b[i], g_ctx, why, sizeof why);
        ck_assert_msg(r == 0, "%s: %s", g_bdef[i].name, why);
    }
    bwd_fresh();
}
END_TEST

START_TEST(test_bwd_null_and_events)
{
    bwd_fresh();
    clnorm_desc d = g_b[B_LN].d;
    cl_event ev = (cl_event)(uintptr_t)0x1;
    ck_assert_int_eq(clnorm_backward(NULL, &d, 0, NULL, &ev), CLNORM_ERR_NULL_ARGUMENT);
    expect_reject_bwd_ex("bwd NULL descriptor", NULL, NULL, 0, NULL, CLNORM_ERR_NULL_ARGUMENT,
                         NEEDLES("descriptor"), NULL, 0);
    expect_reject_bwd_ex("bwd num_wait 1, NULL list", &g_b[B_LN], &d, 1, NULL, CLNORM_ERR_INVALID_EVENTS,
                         NEEDLES("num_wait"), NULL, 0);
    cl_event dummy = NULL;
    expect_reject_bwd_ex("bwd num_wait 0, a list", &g_b[B_BN_INFER], &g_b[B_BN_INFER].d, 0, &dummy,
                         CLNORM_ERR_INVALID_EVENTS, NEEDLES("num_wait"), NULL, 0);
}
END_TEST

START_TEST(test_bwd_missing_and_nothing)
{
    bwd_fresh();
    for (int i = 0; i < B_COUNT; i++) {
        clnorm_desc d = g_b[i].d;
        d.x.mem = NULL;
        expect_reject_bwd("no x", i, &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("x", "dy"));
        d = g_b[i].d;
        d.dy.mem = NULL;
        expect_reject_bwd("no dy", i, &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("dy"));
        d = g_b[i].d;
        d.dx.mem = d.dscale.mem = d.dbias.mem = NULL;
        expect_reject_bwd("no gradient", i, &d, CLNORM_ERR_NOTHING_TO_DO, NEEDLES("dx", "dscale", "dbias"));
    }
    /* Batch statistics: the saved ones are required. */
    for (size_t k = 0; k < sizeof k_batch_b / sizeof k_batch_b[0]; k++) {
        const int i = k_batch_b[k];
        clnorm_desc d = g_b[i].d;
        d.rstd.mem = NULL;
        expect_reject_bwd("no saved rstd", i, &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("saved", "rstd"));
        if (i == B_RMS) continue;
        d = g_b[i].d;
        d.mean.mem = NULL;
        expect_reject_bwd("no saved mean", i, &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("saved", "mean"));
        d.rstd.mem = NULL;
        expect_reject_bwd("no saved mean and rstd", i, &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("saved"));
    }
    /* InstanceNorm inference without running statistics normalizes with the
     * batch's: then it needs saved ones. */
    clnorm_desc d = g_b[B_IN_INFER].d;
    d.running_mean.mem = d.running_var.mem = NULL;
    expect_reject_bwd("untracked: batch statistics, no saved ones", B_IN_INFER, &d, CLNORM_ERR_MISSING_BUFFER,
                      NEEDLES("saved"));
    /* BatchNorm inference: the running statistics are required, as a pair. */
    d = g_b[B_BN_INFER].d;
    d.running_mean.mem = d.running_var.mem = NULL;
    expect_reject_bwd("no running statistics", B_BN_INFER, &d, CLNORM_ERR_MISSING_BUFFER, NEEDLES("running"));
    for (int i = B_BN_INFER; i <= B_IN_INFER; i++) {
        d = g_b[i].d;
        d.running_var.mem = NULL;
        expect_reject_bwd("running_mean without running_var", i, &d, CLNORM_ERR_MISSING_BUFFER,
                          NEEDLES("running_var"));
        d = g_b[i].d;
        d.running_mean.mem = NULL;
        expect_reject_bwd("running_var without running_mean", i, &d, CLNORM_ERR_MISSING_BUFFER,
                          NEEDLES("running_mean"));
    }
    /* With batch statistics the running ones are ignored, but still go together. */
    d = g_b[B_BN_TRAIN].d;
    d.running_mean = g_b[B_BN_INFER].d.running_mean;
    expect_reject_bwd("running_mean alone (batch statistics)", B_BN_TRAIN, &d, CLNORM_ERR_MISSING_BUFFER,
                      NEEDLES("running"));
}
END_TEST

START_TEST(test_bwd_unsupported)
{
    bwd_fresh();
    clnorm_desc d = g_b[B_RMS].d;
    d.mean = g_b[B_LN].d.mean;
    expect_reject_bwd("a saved mean for RMSNorm", B_RMS, &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("RMSNorm", "mean"));
    for (int i = B_BN_INFER; i <= B_IN_INFER; i++) {
        d = g_b[i].d;
        d.mean = g_b[B_BN_TRAIN].d.mean;
        expect_reject_bwd("saved mean with running statistics", i, &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("saved"));
        d = g_b[i].d;
        d.rstd = g_b[B_GN_CL].d.rstd;
        expect_reject_bwd("saved rstd with running statistics", i, &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("saved"));
    }
    for (int i = B_LN; i <= B_RMS; i++) {
        d = g_b[i].d;
        d.per_sample_affine = 1;
        expect_reject_bwd("per-sample affine on a row norm", i, &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("per-sample"));
        d = g_b[i].d;
        d.running_mean = g_b[B_BN_INFER].d.running_mean;
        d.running_var = g_b[B_BN_INFER].d.running_var;
        expect_reject_bwd("running statistics on a row norm", i, &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("running"));
    }
    for (int i = B_GN_CL; i <= B_GN_PSA; i++) {
        d = g_b[i].d;
        d.running_mean = g_b[B_BN_INFER].d.running_mean;
        d.running_var = g_b[B_BN_INFER].d.running_var;
        expect_reject_bwd("GroupNorm running statistics", i, &d, CLNORM_ERR_UNSUPPORTED, NEEDLES("running"));
    }
}
END_TEST

START_TEST(test_bwd_scalars_and_shapes)
{
    bwd_fresh();
    const float bad_eps[] = {NAN, INFINITY, -INFINITY, -1e-5f, -1e-38f};
    for (int i = 0; i < B_COUNT; i++)
        for (size_t k = 0; k < sizeof bad_eps / sizeof bad_eps[0]; k++) {
            clnorm_desc d = g_b[i].d;
            d.eps = bad_eps[k];
            expect_reject_bwd("bad eps", i, &d, CLNORM_ERR_INVALID_EPS, NEEDLES("eps"));
        }
    const int ops[] = {0, 6, -1};
    for (size_t k = 0; k < 3; k++) {
        clnorm_desc d = g_b[B_LN].d;
        d.op = (clnorm_op)ops[k];
        expect_reject_bwd("invalid op", B_LN, &d, CLNORM_ERR_INVALID_OP, NEEDLES("op"));
    }
    clnorm_desc d = g_b[B_LN].d;
    d.rows = 0;
    expect_reject_bwd("rows 0", B_LN, &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("rows"));
    d = g_b[B_RMS].d;
    d.cols = 0;
    expect_reject_bwd("cols 0", B_RMS, &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("cols"));
    d = g_b[B_LN].d;
    d.rows = SIZE_MAX / 2;
    d.cols = 3;
    expect_reject_bwd("rows*cols overflow", B_LN, &d, CLNORM_ERR_TOO_LARGE, NEEDLES("overflow"));
    d = g_b[B_LN].d;
    d.rows = 1;
    d.cols = ((size_t)1 << 32) + 1;
    expect_reject_bwd("cols 2^32+1", B_LN, &d, CLNORM_ERR_TOO_LARGE, NEEDLES("4294967297"));
    for (int i = B_BN_TRAIN; i < B_COUNT; i++) {
        d = g_b[i].d;
        d.n = 0;
        expect_reject_bwd("n 0", i, &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("n"));
        d = g_b[i].d;
        d.c = 0;
        expect_reject_bwd("c 0", i, &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("c"));
        if (g_b[i].d.rank) {
            d = g_b[i].d;
            d.spatial[0] = 0;
            expect_reject_bwd("spatial[0] 0", i, &d, CLNORM_ERR_INVALID_SHAPE, NEEDLES("spatial"));
        }
        d = g_b[i].d;
        d.layout = (clnorm_layout)2;
        expect_reject_bwd("bad layout", i, &d, CLNORM_ERR_INVALID_LAYOUT, NEEDLES("layout"));
        d = g_b[i].d;
        d.rank = 4;
        expect_reject_bwd("bad rank", i, &d, CLNORM_ERR_INVALID_RANK, NEEDLES("rank"));
        d = g_b[i].d;
        d.n = SIZE_MAX / 4;
        d.c = 8;
        expect_reject_bwd("n*c overflow", i, &d, CLNORM_ERR_TOO_LARGE, NEEDLES("overflow"));
    }
    const size_t bad_groups[] = {0, 3, 128, SIZE_MAX};
    for (size_t k = 0; k < 4; k++) {
        d = g_b[B_GN_CL].d; /* c = 64 */
        d.groups = bad_groups[k];
        expect_reject_bwd("bad groups", B_GN_CL, &d, CLNORM_ERR_INVALID_GROUPS, NEEDLES("group"));
    }
    /* Training with one value per set. */
    d = g_b[B_BN_TRAIN].d;
    d.n = 1;
    d.rank = 0;
    expect_reject_bwd("BatchNorm training N*S = 1", B_BN_TRAIN, &d, CLNORM_ERR_COUNT_ONE, NEEDLES("1"));
    d = g_b[B_IN_INFER].d;
    d.training = 1;
    d.spatial[0] = d.spatial[1] = d.spatial[2] = 1;
    expect_reject_bwd("InstanceNorm training S = 1", B_IN_INFER, &d, CLNORM_ERR_COUNT_ONE, NEEDLES("spatial"));
}
END_TEST

/* Each buffer one element short (and offsets that overflow), dscale and dbias included. */
START_TEST(test_bwd_buffer_too_small)
{
    bwd_fresh();
    for (int i = 0; i < B_COUNT; i++)
        for (int r = 0; r < TH_ROLES; r++) {
            clnorm_desc d = g_b[i].d;
            clnorm_buf *b = th_desc_buf(&d, r);
            if (!b->mem) continue;
            char what[96];
            b->offset = th_mem_floats(b->mem) - g_b[i].len[r] + 1;
            snprintf(what, sizeof what, "%s one short", th_role_name(r));
            expect_reject_bwd(what, i, &d, CLNORM_ERR_BUFFER_TOO_SMALL, NEEDLES(th_role_name(r)));
            b->offset = SIZE_MAX - 2;
            snprintf(what, sizeof what, "%s offset SIZE_MAX-2", th_role_name(r));
            expect_reject_bwd(what, i, &d, CLNORM_ERR_BUFFER_TOO_SMALL, NEEDLES(th_role_name(r)));
        }
    /* Per-sample affine: dscale and dbias need n*c, not c. */
    clnorm_desc d = g_b[B_GN_CL].d;
    d.per_sample_affine = 1;
    expect_reject_bwd("per-sample scale of c", B_GN_CL, &d, CLNORM_ERR_BUFFER_TOO_SMALL, NEEDLES("scale"));
    d.scale.mem = NULL;
    expect_reject_bwd("per-sample dscale of c", B_GN_CL, &d, CLNORM_ERR_BUFFER_TOO_SMALL, NEEDLES("dscale"));
    d.dscale.mem = NULL;
    expect_reject_bwd("per-sample dbias of c", B_GN_CL, &d, CLNORM_ERR_BUFFER_TOO_SMALL, NEEDLES("dbias"));
}
END_TEST

START_TEST(test_bwd_foreign_and_invalid_buffers)
{
    bwd_fresh();
    cl_device_id dev = clnorm_device(g_ctx);
    cl_int e;
    cl_context other = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
    ck_assert_msg(other != NULL, "clCreateContext: %d", e);
    cl_mem big = th_buffer(other, 1 << 14);
    for (int i = 0; i < B_COUNT; i++)
        for (int r = 0; r < TH_ROLES; r++) {
            clnorm_desc d = g_b[i].d;
            clnorm_buf *b = th_desc_buf(&d, r);
            if (!b->mem) continue;
            *b = (clnorm_buf){big, 0};
            char what[96];
            snprintf(what, sizeof what, "%s: foreign %s", g_bdef[i].name, th_role_name(r));
            expect_reject_bwd_ex(what, &g_b[i], &d, 0, NULL, CLNORM_ERR_FOREIGN_BUFFER, NEEDLES(th_role_name(r)),
                                 &big, 1);
        }
    clReleaseMemObject(big);
    clReleaseContext(other);
    const int which[] = {B_LN, B_BN_INFER};
    for (size_t w = 0; w < 2; w++)
        for (int r = 0; r < TH_ROLES; r++) {
            clnorm_desc d = g_b[which[w]].d;
            clnorm_buf *b = th_desc_buf(&d, r);
            if (!b->mem) continue;
            b->mem = (cl_mem)fi_invalid_mem();
            char what[96];
            snprintf(what, sizeof what, "invalid cl_mem as %s", th_role_name(r));
            expect_reject_bwd(what, which[w], &d, CLNORM_ERR_INVALID_BUFFER, NEEDLES(th_role_name(r), "not a valid"));
        }
}
END_TEST

/* dx may be exactly dy, nothing else; dscale and dbias overlap nothing. */
START_TEST(test_bwd_aliasing)
{
    bwd_fresh();
    for (int k = 0; k < 3; k++) {
        const int i = k == 0 ? B_LN : k == 1 ? B_BN_TRAIN : B_GN_PSA;
        th_call *p = &g_b[i];
        clnorm_desc d = p->d;
        d.dx = d.x;
        expect_reject_bwd("dx is x", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dx", "x"));
        d = p->d;
        d.dx = (clnorm_buf){d.x.mem, d.x.offset + 1};
        expect_reject_bwd("dx over x (+1)", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dx", "x"));
        d = p->d;
        d.dx = (clnorm_buf){d.dy.mem, d.dy.offset + 1};
        expect_reject_bwd("dx partially over dy (+1)", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dx", "dy", "in place"));
        d = p->d;
        d.dx = (clnorm_buf){d.dy.mem, d.dy.offset + TH_GUARD_AFTER};
        expect_reject_bwd("dx partially over dy (+16)", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dx", "dy"));
        d = p->d;
        d.dy = (clnorm_buf){p->b[TH_DY].mem, p->b[TH_DY].off + 1};
        d.dx = (clnorm_buf){p->b[TH_DY].mem, p->b[TH_DY].off};
        expect_reject_bwd("dx partially over dy (-1)", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dx", "dy"));
        d = p->d;
        d.scale = (clnorm_buf){d.dx.mem, d.dx.offset + 1};
        expect_reject_bwd("scale inside dx", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dx", "scale"));
        d = p->d;
        d.mean = (clnorm_buf){d.dx.mem, d.dx.offset};
        expect_reject_bwd("mean inside dx", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dx", "mean"));
        d = p->d;
        d.rstd = (clnorm_buf){d.dx.mem, d.dx.offset + 2};
        expect_reject_bwd("rstd inside dx", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dx", "rstd"));
        d = p->d;
        d.dbias = d.dscale;
        expect_reject_bwd("dbias is dscale", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dscale", "dbias"));
        d = p->d;
        d.dbias = (clnorm_buf){d.dscale.mem, d.dscale.offset + (p->len[TH_DSCALE] - 1 < TH_GUARD_AFTER
                                                                    ? p->len[TH_DSCALE] - 1
                                                                    : TH_GUARD_AFTER)};
        expect_reject_bwd("dbias over dscale's end", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dscale", "dbias"));
        d = p->d;
        d.dscale = (clnorm_buf){d.dy.mem, d.dy.offset};
        expect_reject_bwd("dscale over dy", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dscale", "dy"));
        d = p->d;
        d.dbias = (clnorm_buf){d.x.mem, d.x.offset + 3};
        expect_reject_bwd("dbias inside x", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dbias", "x"));
        d = p->d;
        d.dscale = (clnorm_buf){d.dx.mem, d.dx.offset + 1};
        expect_reject_bwd("dscale inside dx", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dscale", "dx"));
        d = p->d;
        d.dbias = (clnorm_buf){d.dx.mem, d.dx.offset};
        expect_reject_bwd("dbias inside dx", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dbias", "dx"));
        d = p->d;
        d.dscale = d.scale;
        expect_reject_bwd("dscale is scale", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dscale", "scale"));
        d = p->d;
        if (p->len[TH_RSTD] >= p->len[TH_DSCALE]) d.dscale = d.rstd;
        else d.rstd = d.dscale; /* fewer sets than parameters: rstd inside dscale */
        expect_reject_bwd("dscale over rstd", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dscale", "rstd"));
        d = p->d; /* in place with dx only */
        d.dx = d.dy;
        d.dbias = (clnorm_buf){d.dy.mem, d.dy.offset + 1};
        expect_reject_bwd("in place, dbias inside dy", i, &d, CLNORM_ERR_ALIASING, NEEDLES("dbias"));
    }
    /* Running statistics are inputs of an inference backward. */
    th_call *p = &g_b[B_BN_INFER];
    clnorm_desc d = p->d;
    d.running_mean = (clnorm_buf){d.dx.mem, d.dx.offset + 2};
    expect_reject_bwd("running_mean inside dx", B_BN_INFER, &d, CLNORM_ERR_ALIASING, NEEDLES("dx", "running_mean"));
    d = p->d;
    d.dscale = d.running_var;
    expect_reject_bwd("dscale is running_var", B_BN_INFER, &d, CLNORM_ERR_ALIASING,
                      NEEDLES("dscale", "running_var"));
    d = p->d;
    d.dbias = d.running_mean;
    expect_reject_bwd("dbias is running_mean", B_BN_INFER, &d, CLNORM_ERR_ALIASING,
                      NEEDLES("dbias", "running_mean"));

    /* Through sub-buffers of one parent. */
    cl_uint align_bits = 0;
    TH_CL(clGetDeviceInfo(clnorm_device(g_ctx), CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits,
                          NULL));
    const size_t align = align_bits / 8, n = g_b[B_LN].len[TH_X];
    cl_mem parent = th_buffer(g_cl, (4 * align + 4 * n * sizeof(float)) / sizeof(float));
    cl_buffer_region r1 = {align, n * sizeof(float) + align}, r2 = {2 * align, n * sizeof(float)};
    cl_int e;
    cl_mem sub1 = clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r1, &e);
    ck_assert_msg(sub1 != NULL, "clCreateSubBuffer %d", e);
    cl_mem sub2 = clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r2, &e);
    ck_assert_msg(sub2 != NULL, "clCreateSubBuffer %d", e);
    cl_mem extra[3] = {parent, sub1, sub2};
    d = g_b[B_LN].d;
    d.dy = (clnorm_buf){sub1, 0};
    d.dx = (clnorm_buf){parent, align / sizeof(float) + 5};
    expect_reject_bwd_ex("bwd: dx (parent) partially over dy (sub-buffer)", &g_b[B_LN], &d, 0, NULL,
                         CLNORM_ERR_ALIASING, NEEDLES("dx", "dy"), extra, 3);
    d = g_b[B_LN].d;
    d.x = (clnorm_buf){sub1, 3};
    d.dx = (clnorm_buf){sub2, 0};
    expect_reject_bwd_ex("bwd: dx (sub-buffer) over x (sub-buffer)", &g_b[B_LN], &d, 0, NULL, CLNORM_ERR_ALIASING,
                         NEEDLES("dx", "x"), extra, 3);
    d = g_b[B_LN].d;
    d.dscale = (clnorm_buf){sub2, 1};
    d.dbias = (clnorm_buf){parent, 2 * align / sizeof(float)};
    expect_reject_bwd_ex("bwd: dbias (parent) over dscale (sub-buffer)", &g_b[B_LN], &d, 0, NULL,
                         CLNORM_ERR_ALIASING, NEEDLES("dscale", "dbias"), extra, 3);
    clReleaseMemObject(sub2);
    clReleaseMemObject(sub1);
    clReleaseMemObject(parent);
}
END_TEST

/* The same rejections through th_run_bwd: host arrays uploaded into guarded
 * buffers at random offsets, the rejected call waited for, every buffer read
 * back and compared with what was uploaded (its rejection readback). */
START_TEST(test_bwd_run_rejections)
{
    enum { CAPF = 4096 };
    static const struct {
        const char *spec;
        int change; /* 0 none; 1 eps -1; 2 n = 1 (BatchNorm); 3 groups 5; 4 layout 2; 5 psa; 6 rank 4 */
        int drop;   /* 0 none; 1 the saved mean; 2 every output; 3 running_var */
        int add;    /* 0 none; 1 a saved mean (RMSNorm); 2 saved stats in running mode */
        unsigned flags;
        int want;
    } cases[] = {
        {"layer_norm 4x9 affine stats bwd", 0, 2, 0, 0, CLNORM_ERR_NOTHING_TO_DO},
        {"layer_norm 4x9 affine stats bwd", 0, 1, 0, 0, CLNORM_ERR_MISSING_BUFFER},
        {"rms_norm 3x8 scale stats bwd", 0, 0, 1, 0, CLNORM_ERR_UNSUPPORTED},
        {"batch_norm_infer 2x3x4 nhwc affine running bwd", 0, 0, 2, 0, CLNORM_ERR_UNSUPPORTED},
        {"batch_norm_infer 2x3x4 nhwc affine running bwd", 0, 3, 0, 0, CLNORM_ERR_MISSING_BUFFER},
        {"layer_norm 4x9 affine stats bwd", 1, 0, 0, TH_IN_PLACE, CLNORM_ERR_INVALID_EPS},
        {"batch_norm_train 2x3 affine stats bwd", 2, 0, 0, TH_IN_PLACE, CLNORM_ERR_COUNT_ONE},
        {"group_norm 2x12x5 G=4 affine stats bwd", 3, 0, 0, 0, CLNORM_ERR_INVALID_GROUPS},
        {"group_norm 2x12x5 nhwc G=4 affine stats bwd", 4, 0, 0, 0, CLNORM_ERR_INVALID_LAYOUT},
        {"instance_norm_infer 2x3x5 affine running bwd", 6, 0, 0, 0, CLNORM_ERR_INVALID_RANK},
        {"layer_norm 4x9 affine stats bwd", 5, 0, 0, 0, CLNORM_ERR_UNSUPPORTED},
    };
    float *a[10];
    for (int j = 0; j < 10; j++) {
        a[j] = malloc(CAPF * sizeof(float));
        ck_assert_ptr_nonnull(a[j]);
    }
    th_rng rng;
    th_rng_init(&rng, 1234);
    th_begin();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        th_case c = th_case_of(cases[i].spec);
        clnorm_desc d;
        ck_assert_int_eq(th_case_desc(&c, &d), 0);
        ck_assert_uint_le(ref_elements(&d), CAPF);
        th_fill_normal(&rng, a[0], CAPF, 0.5, 2.0); /* x */
        th_fill_normal(&rng, a[1], CAPF, 0.0, 1.0); /* dy */
        th_fill_normal(&rng, a[2], CAPF, 1.0, 0.5); /* scale */
        th_saved_stats(&d, a[0], a[3], a[4]);        /* mean, rstd */
        th_fill_normal(&rng, a[5], CAPF, 0.0, 1.0); /* running_mean */
        th_fill_uniform(&rng, a[6], CAPF, 0.5, 2.0); /* running_var */
        const int running = c.training == 0 && c.running >= 0;
        th_bwd_inputs in = {a[0], a[1], a[2], running ? NULL : a[3], running ? NULL : a[4],
                            running ? a[5] : NULL, running ? a[6] : NULL};
        if (d.op == CLNORM_RMS_NORM) in.mean = NULL;
        th_bwd_outputs out = {a[7], a[8], a[9]};
        switch (cases[i].change) {
        case 1: d.eps = -1.0f; break;
        case 2: d.n = 1; break;
        case 3: d.groups = 5; break;
        case 4: d.layout = (clnorm_layout)2; break;
        case 5: d.per_sample_affine = 1; break;
        case 6: d.rank = 4; break;
        default: break;
        }
        if (cases[i].drop == 1) in.mean = NULL;
        if (cases[i].drop == 2) out = (th_bwd_outputs){NULL, NULL, NULL};
        if (cases[i].drop == 3) in.running_var = NULL;
        if (cases[i].add == 1) in.mean = a[3];
        if (cases[i].add == 2) in.rstd = a[4];
        if (cases[i].flags & TH_IN_PLACE) memcpy(a[7], a[1], CAPF * sizeof(float));
        th_set_case("th_run_bwd case %zu: %s", i, cases[i].spec);
        int st = th_run_bwd(g_ctx, &d, &in, &out, cases[i].flags);
        TH_EXPECT(st == cases[i].want, "got %s (%d), want %s: %s", clnorm_status_name(st), st,
                  clnorm_status_name(cases[i].want), clnorm_last_error(g_ctx));
        if (st == cases[i].want) g_bwd_status_seen[st]++, g_bwd_rejections++;
    }
    th_set_case("%s", "");
    for (int j = 0; j < 10; j++) free(a[j]);
    th_finish();
}
END_TEST

/* Accepted: dx exactly dy (in place) gives the out-of-place bits, on every
 * backward path; and the buffers backward ignores (y, bias, the running
 * statistics with batch statistics, momentum) may hold anything. */
START_TEST(test_bwd_in_place)
{
    static const struct {
        const char *spec;
        clnorm_variant v;
    } cases[] = {
        {"layer_norm 7x300 affine stats bwd", CLNORM_VARIANT_AUTO},
        {"layer_norm 7x300 affine stats bwd", CLNORM_VARIANT_WI},
        {"layer_norm 40x100 affine stats bwd", CLNORM_VARIANT_AUTO},
        {"rms_norm 3x129 scale stats bwd", CLNORM_VARIANT_SPLIT},
        {"layer_norm 2x5000 scale stats bwd dx", CLNORM_VARIANT_SPLIT},
        {"batch_norm_train 2x3x700 nchw affine stats bwd", CLNORM_VARIANT_AUTO},
        {"batch_norm_train 4x3x5x7 nhwc affine stats bwd", CLNORM_VARIANT_AUTO},
        {"batch_norm_infer 4x3x5 nhwc affine running bwd dx", CLNORM_VARIANT_AUTO},
        {"instance_norm_infer 2x3x50 nchw affine running bwd", CLNORM_VARIANT_AUTO},
        {"instance_norm 2x3x50 nchw affine stats bwd dx dbias", CLNORM_VARIANT_WG},
        {"group_norm 2x12x3x4 nhwc G=4 affine stats bwd", CLNORM_VARIANT_AUTO},
        {"group_norm 2x12x3x4 nchw G=3 affine stats psa bwd", CLNORM_VARIANT_AUTO},
    };
    char why[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        th_call out_of_place, in_place;
        th_case c = th_case_of(cases[i].spec);
        ck_assert_int_eq(clnorm_set_variant(g_ctx, cases[i].v, 0), CLNORM_OK);
        ck_assert_int_eq(th_call_init(&out_of_place, g_ctx, &c, 3, 300 + i), 0);
        int r = th_call_run(&out_of_place, g_ctx, why, sizeof why);
        ck_assert_msg(r == 0, "bwd case %zu (%s) out of place: %s", i, cases[i].spec, why);
        c.flags |= TH_IN_PLACE;
        ck_assert_int_eq(th_call_init(&in_place, g_ctx, &c, 3, 300 + i), 0);
        r = th_call_run(&in_place, g_ctx, why, sizeof why);
        ck_assert_int_eq(clnorm_set_variant(g_ctx, CLNORM_VARIANT_AUTO, 0), CLNORM_OK);
        ck_assert_msg(r == 0, "bwd case %zu (%s, variant %s) in place: %s", i, cases[i].spec,
                      clnorm_variant_name(cases[i].v), why);
        const size_t E = out_of_place.len[TH_DX], A = out_of_place.len[TH_DSCALE];
        ck_assert_msg(memcmp(out_of_place.bout.dx, in_place.bout.dx, E * sizeof(float)) == 0,
                      "bwd case %zu (%s): dx in place differs from out of place", i, cases[i].spec);
        if (out_of_place.bout.dscale)
            ck_assert_msg(!memcmp(out_of_place.bout.dscale, in_place.bout.dscale, A * sizeof(float)),
                          "bwd case %zu (%s): dscale in place differs", i, cases[i].spec);
        if (out_of_place.bout.dbias)
            ck_assert_msg(!memcmp(out_of_place.bout.dbias, in_place.bout.dbias, A * sizeof(float)),
                          "bwd case %zu (%s): dbias in place differs", i, cases[i].spec);
        th_call_free(&in_place);
        th_call_free(&out_of_place);
    }
}
END_TEST

START_TEST(test_bwd_ignored_buffers)
{
    char why[512];
    bwd_fresh();
    th_call *p = &g_b[B_BN_TRAIN];
    clnorm_desc d = p->d;
    d.y = (clnorm_buf){(cl_mem)fi_invalid_mem(), 0};          /* never looked at */
    d.bias = (clnorm_buf){d.dx.mem, d.dx.offset};             /* over an output: ignored */
    d.running_mean = (clnorm_buf){d.dx.mem, d.dx.offset + 1}; /* batch statistics: ignored */
    d.running_var = (clnorm_buf){d.dscale.mem, d.dscale.offset};
    d.momentum = NAN;
    d.running_var_biased = 7;
    clnorm_status st = clnorm_backward(g_ctx, &d, 0, NULL, NULL);
    ck_assert_msg(st == CLNORM_OK, "backward with ignored buffers: %s: %s", clnorm_status_name(st),
                  clnorm_last_error(g_ctx));
    int r = th_call_check(p, g_ctx, why, sizeof why); /* against the reference of the plain descriptor */
    ck_assert_msg(r == 0, "backward with ignored buffers: %s", why);
    /* A rejected backward does not disturb the next good one, nor its message. */
    d = g_b[B_GN_CL].d;
    d.eps = -1.0f;
    ck_assert_int_eq(clnorm_backward(g_ctx, &d, 0, NULL, NULL), CLNORM_ERR_INVALID_EPS);
    th_call_reset(&g_b[B_GN_CL], g_q);
    r = th_call_run(&g_b[B_GN_CL], g_ctx, why, sizeof why);
    ck_assert_msg(r == 0, "after a rejected backward: %s", why);
    ck_assert_str_eq(clnorm_last_error(g_ctx), "");
    bwd_fresh();
}
END_TEST

static void report(void)
{
    int covered = 0;
    printf("validation: %lu rejected calls checked; statuses covered:", g_rejections);
    for (int s = 1; s < CLNORM_STATUS_END_; s++)
        if (g_status_seen[s]) {
            covered++;
            printf(" %s", clnorm_status_name(s));
        }
    printf(" (%d of %d)\n", covered, CLNORM_STATUS_END_ - 1);
    covered = 0;
    printf("validation: backward: %lu rejected calls checked; statuses covered:", g_bwd_rejections);
    for (int s = 1; s < CLNORM_STATUS_END_; s++)
        if (g_bwd_status_seen[s]) {
            covered++;
            printf(" %s", clnorm_status_name(s));
        }
    printf(" (%d)\n", covered);
}

int main(void)
{
    clnorm_status st = clnorm_create_default(&g_ctx);
    if (st != CLNORM_OK) {
        fprintf(stderr, "clnorm_create_default: %s\n", clnorm_status_name(st));
        return 1;
    }
    g_q = clnorm_queue(g_ctx);
    g_cl = clnorm_cl_context(g_ctx);
    setup_problems();
    setup_bwd_problems();

    const th_test tests[] = {
        TH_TCASE("reject"),
        TH_TEST(test_base_problems_valid),    TH_TEST(test_null_arguments),   TH_TEST(test_missing_buffers),
        TH_TEST(test_invalid_op),             TH_TEST(test_zero_dimensions),  TH_TEST(test_size_overflow),
        TH_TEST(test_too_large_for_kernels),  TH_TEST(test_buffer_too_small), TH_TEST(test_invalid_eps),
        TH_TEST(test_invalid_momentum),       TH_TEST(test_invalid_groups),   TH_TEST(test_invalid_layout_and_rank),
        TH_TEST(test_count_one),              TH_TEST(test_foreign_buffer),   TH_TEST(test_invalid_buffer),
        TH_TEST(test_invalid_events),         TH_TEST(test_unsupported),      TH_TEST(test_aliasing),
        TH_TEST(test_set_variant_validation), TH_TEST(test_create_errors),    TH_TEST(test_status_strings),
        TH_TCASE("accept"),
        TH_TEST(test_in_place),               TH_TEST(test_inputs_may_overlap), TH_TEST(test_recovers_after_rejections),
        TH_TEST(test_rms_inf_row),
        TH_TCASE("backward reject"),
        TH_TEST(test_bwd_base_problems_valid), TH_TEST(test_bwd_null_and_events), TH_TEST(test_bwd_missing_and_nothing),
        TH_TEST(test_bwd_unsupported),         TH_TEST(test_bwd_scalars_and_shapes),
        TH_TEST(test_bwd_buffer_too_small),    TH_TEST(test_bwd_foreign_and_invalid_buffers),
        TH_TEST(test_bwd_aliasing),            TH_TEST(test_bwd_run_rejections),
        TH_TCASE("backward accept"),
        TH_TEST(test_bwd_in_place),            TH_TEST(test_bwd_ignored_buffers),
    };
    int rc = th_main("validation", 120, tests, sizeof tests / sizeof tests[0]);
    report();
    teardown_problems();
    teardown_bwd_problems();
    clnorm_destroy(g_ctx);
    return rc;
}
