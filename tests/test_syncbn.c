/*
 * The BatchNorm split (clnorm_bn_local_stats, clnorm_bn_merge_stats,
 * clnorm_bn_apply_stats) without MPI: one process plays K ranks, each
 * holding an uneven slice of one batch along n (one of them empty). Every
 * "rank" writes its own saved and running statistics; they must be
 * bit-identical across ranks, the assembled y and the statistics must match
 * the double reference of the whole batch (th_compare) and clnorm_forward
 * on the whole batch, and with one rank holding everything the split must
 * be clnorm_forward bit for bit on a CPU device (the same partials, merge
 * order and kernels; GPU rules merge with a work-group per set instead).
 *
 * Tolerance. compare.c's model bounds the one-call path's error against
 * the double reference: a mean merged from float partials in a tree loses
 * about 0.5 u |mu| per level (dm = u ((3 + log2(n)/4) |mu| + s_n sigma)),
 * the variance 2 sigma dm plus the summation term. The split adds two
 * roundings to float on the way (the local record's mean and M2, the global
 * record's after a merge in double, whose own error is ~1e-16 relative): at
 * most u |mu| on the mean and 2u on M2, the same order as one more merge
 * level, which the model's log2(n)/4 levels and its constant 3 already
 * cover for every n >= 2. So the split is checked with the reference's own
 * tolerance (th_compare, tol_scale 1), and against clnorm_forward with
 * twice it (th_compare_y: each within one tolerance of the reference).
 * Validation: every rejected call leaves every buffer as it was.
 *
 * The backward split (clnorm_bn_local_grad_sums, clnorm_bn_merge_grad_sums,
 * clnorm_bn_apply_grad) the same way, over 1 to 4 ranks (one empty), with
 * dx in place now and then and without scale now and then: against
 * ref_backward and clnorm_backward with the tolerance derived in
 * syncbn_bwd.h, dscale/dbias bit-identical across ranks, and clnorm_backward's
 * bits with one rank on a CPU device.
 */
#include "th_check.h"
#include "syncbn_bwd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define KMAX 4

/* Slices of n samples over k ranks: uneven (weights 3, 0, 1, 2: rank 1
 * always empty when k > 1), the rest to the last rank. */
static void split_n(size_t n, size_t k, size_t *ns)
{
    static const size_t w[KMAX] = {3, 0, 1, 2};
    size_t wsum = 0, used = 0;
    for (size_t r = 0; r < k; ++r) wsum += w[r];
    for (size_t r = 0; r < k; ++r) {
        ns[r] = r + 1 == k ? n - used : n * w[r] / wsum;
        used += ns[r];
    }
}

static size_t spatial_of(const clnorm_desc *d)
{
    size_t S = 1;
    for (unsigned i = 0; i < d->rank; ++i) S *= d->spatial[i];
    return S;
}

static void poison(cl_command_queue q, cl_mem m, size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; ++i) p[i] = th_from_bits(TH_POISON_BITS);
    th_write(q, m, 0, n, p);
    free(p);
}

static void readf(cl_command_queue q, cl_mem m, size_t first, size_t n, float *dst)
{
    if (n) TH_CL(clEnqueueReadBuffer(q, m, CL_TRUE, first * 4, n * 4, dst, 0, NULL, NULL));
}

/* The outputs of the split over k ranks: y of the whole batch, and every
 * rank's saved and running statistics (rank r at r * C). */
typedef struct split_out {
    float *y, *mean, *rstd, *rm, *rv;
} split_out;

/* The split of batch d (buffers ignored) over ranks holding ns[r] samples,
 * on inputs in. Returns the first failing status (reported). */
static int run_split(clnorm_ctx *ctx, const clnorm_desc *d, const size_t *ns, size_t k, const th_inputs *in,
                     split_out *out)
{
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    const size_t C = d->c, S = spatial_of(d), E = d->n * C * S, R = CLNORM_BN_RECORD_FLOATS;
    const size_t xo = 3; /* non-zero offsets everywhere */
    cl_mem X = th_buffer(cl, E + xo), Y = th_buffer(cl, E + xo), SC = th_buffer(cl, C), B = th_buffer(cl, C);
    cl_mem M = th_buffer(cl, k * C), RS = th_buffer(cl, k * C), RM = th_buffer(cl, k * C), RV = th_buffer(cl, k * C);
    cl_mem REC = th_buffer(cl, k * R * C + 1), G = th_buffer(cl, R * C + 2);
    th_write(q, X, xo, E, in->x);
    th_write(q, SC, 0, C, in->scale);
    th_write(q, B, 0, C, in->bias);
    for (size_t r = 0; r < k; ++r) {
        th_write(q, RM, r * C, C, in->running_mean);
        th_write(q, RV, r * C, C, in->running_var);
    }
    poison(q, Y, E + xo);
    poison(q, M, k * C);
    poison(q, RS, k * C);
    poison(q, REC, k * R * C + 1);
    poison(q, G, R * C + 2);
    clnorm_desc dr[KMAX];
    int st = CLNORM_OK;
    for (size_t r = 0, n0 = 0; r < k; n0 += ns[r], ++r) {
        dr[r] = *d;
        dr[r].n = ns[r];
        /* an empty slice passes no x and y: they are not read */
        dr[r].x = ns[r] ? (clnorm_buf){X, xo + n0 * C * S} : (clnorm_buf){NULL, 0};
        dr[r].y = ns[r] ? (clnorm_buf){Y, xo + n0 * C * S} : (clnorm_buf){NULL, 0};
        dr[r].scale = (clnorm_buf){SC, 0};
        dr[r].bias = (clnorm_buf){B, 0};
        dr[r].mean = (clnorm_buf){M, r * C};
        dr[r].rstd = (clnorm_buf){RS, r * C};
        dr[r].running_mean = (clnorm_buf){RM, r * C};
        dr[r].running_var = (clnorm_buf){RV, r * C};
        if (st == CLNORM_OK && (st = clnorm_bn_local_stats(ctx, &dr[r], (clnorm_buf){REC, 1 + r * R * C}, 0, NULL, NULL)))
            th_fail("local_stats rank %zu: %s (%s)", r, clnorm_status_name(st), clnorm_last_error(ctx));
    }
    float *rec = malloc(k * R * C * sizeof *rec), *glob = malloc(R * C * sizeof *glob);
    cl_ulong count = 0;
    if (st == CLNORM_OK) {
        readf(q, REC, 1, k * R * C, rec);
        if ((st = clnorm_bn_merge_stats(ctx, rec, k, C, glob, &count)))
            th_fail("merge: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
        TH_EXPECT(st || count == d->n * S, "merged count %llu, want %zu", (unsigned long long)count, d->n * S);
    }
    if (st == CLNORM_OK) th_write(q, G, 2, R * C, glob);
    for (size_t r = 0; r < k && st == CLNORM_OK; ++r)
        if ((st = clnorm_bn_apply_stats(ctx, &dr[r], (clnorm_buf){G, 2}, count, 0, NULL, NULL)))
            th_fail("apply rank %zu: %s (%s)", r, clnorm_status_name(st), clnorm_last_error(ctx));
    TH_CL(clFinish(q));
    readf(q, Y, xo, E, out->y);
    readf(q, M, 0, k * C, out->mean);
    readf(q, RS, 0, k * C, out->rstd);
    readf(q, RM, 0, k * C, out->rm);
    readf(q, RV, 0, k * C, out->rv);
    free(rec);
    free(glob);
    cl_mem all[] = {X, Y, SC, B, M, RS, RM, RV, REC, G};
    for (size_t i = 0; i < NELEM(all); ++i) clReleaseMemObject(all[i]);
    return st;
}

static int is_cpu_device(clnorm_ctx *ctx)
{
    cl_device_type t = 0;
    TH_CL(clGetDeviceInfo(clnorm_device(ctx), CL_DEVICE_TYPE, sizeof t, &t, NULL));
    return (t & CL_DEVICE_TYPE_CPU) && !getenv("CLNORM_DEVICE_CLASS");
}

/* One batch over k ranks, against the reference and clnorm_forward. */
static void check_split(clnorm_ctx *ctx, clnorm_desc d, size_t k, th_kind kind)
{
    char lab[128];
    size_t ns[KMAX];
    split_n(d.n, k, ns);
    th_set_case("%s k=%zu slices %zu,%zu,%zu,%zu kind=%s", th_desc_label(&d, lab, sizeof lab), k, ns[0],
                k > 1 ? ns[1] : 0, k > 2 ? ns[2] : 0, k > 3 ? ns[3] : 0, th_kind_name(kind));
    size_t len[TH_ROLES];
    th_desc_lengths(&d, len);
    const size_t E = len[TH_X], C = d.c;
    float *x = malloc(E * 4), *sc = malloc(C * 4), *b = malloc(C * 4), *rm = malloc(C * 4), *rv = malloc(C * 4);
    th_rng rng;
    th_rng_init(&rng, th_next_seed());
    th_gen_inputs(&rng, &d, kind, x, sc, b, rm, rv);
    th_inputs in = {x, sc, b, rm, rv};
    split_out o = {malloc(E * 4), malloc(k * C * 4), malloc(k * C * 4), malloc(k * C * 4), malloc(k * C * 4)};
    if (run_split(ctx, &d, ns, k, &in, &o) == CLNORM_OK) {
        /* every rank's statistics are rank 0's, bit for bit */
        for (size_t r = 1; r < k; ++r) {
            TH_EXPECT(!memcmp(o.mean, o.mean + r * C, C * 4), "saved mean of rank %zu differs from rank 0's", r);
            TH_EXPECT(!memcmp(o.rstd, o.rstd + r * C, C * 4), "saved rstd of rank %zu differs from rank 0's", r);
            TH_EXPECT(!memcmp(o.rm, o.rm + r * C, C * 4), "running mean of rank %zu differs from rank 0's", r);
            TH_EXPECT(!memcmp(o.rv, o.rv + r * C, C * 4), "running var of rank %zu differs from rank 0's", r);
        }
        th_outputs got = {o.y, o.mean, o.rstd, o.rm, o.rv};
        th_compare(&d, &in, &got, 1.0, 1);
        /* the one-call path on the whole batch */
        th_outputs one = {malloc(E * 4), malloc(C * 4), malloc(C * 4), malloc(C * 4), malloc(C * 4)};
        if (th_run_ok(ctx, &d, &in, &one, 0, 0) == CLNORM_OK) {
            th_compare_y(&d, &in, one.y, o.y, E, 1.0, 1);
            if (k == 1 && is_cpu_device(ctx)) {
                TH_EXPECT(!memcmp(one.y, o.y, E * 4), "one rank: y differs from clnorm_forward's bits");
                TH_EXPECT(!memcmp(one.mean, o.mean, C * 4) && !memcmp(one.rstd, o.rstd, C * 4),
                          "one rank: saved statistics differ from clnorm_forward's bits");
                TH_EXPECT(!memcmp(one.running_mean, o.rm, C * 4) && !memcmp(one.running_var, o.rv, C * 4),
                          "one rank: running statistics differ from clnorm_forward's bits");
            }
        }
        free(one.y), free(one.mean), free(one.rstd), free(one.running_mean), free(one.running_var);
    }
    free(o.y), free(o.mean), free(o.rstd), free(o.rm), free(o.rv);
    free(x), free(sc), free(b), free(rm), free(rv);
}

/* Both layouts, rank 0..3, short planes (columns) and long ones (rows of S
 * for channels-first), over 1, 3 and 4 ranks, normal data, mean 1e4 with
 * spread 1e-2, NaN/Inf in one slice's channels, constant channels. */
START_TEST(split_matches_whole_batch)
{
    static const th_shape shapes[] = {
        {7, 3, 0, {0}}, {6, 5, 1, {70}}, {5, 4, 2, {5, 7}}, {4, 16, 3, {2, 3, 5}}, {9, 33, 2, {8, 9}},
    };
    static const th_kind kinds[] = {TH_NORMAL, TH_OFFSET_1E4, TH_NANINF, TH_MIXED_CONSTANT};
    static const size_t ks[] = {1, 3, 4};
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    unsigned rot = 0;
    for (size_t si = 0; si < NELEM(shapes); ++si)
        for (int lay = 0; lay < 2; ++lay)
            for (size_t ki = 0; ki < NELEM(kinds); ++ki, ++rot) {
                clnorm_desc d = th_shape_desc(CLNORM_BATCH_NORM, (clnorm_layout)lay, &shapes[si]);
                d.running_var_biased = rot % 5 == 2; /* ONNX's update now and then */
                d.eps = rot % 7 == 3 ? 0.0f : 1e-5f;
                d.momentum = rot % 3 == 1 ? 0.3f : 0.1f;
                check_split(ctx, d, ks[rot % NELEM(ks)], kinds[ki]);
            }
    th_finish();
}
END_TEST

/* The merge on its own: rank order, empty records, mean 1e4 with a spread
 * far below float's resolution of the sum, NaN confined to its channel. */
START_TEST(merge_exact)
{
    th_begin();
    /* three records of 2 channels: counts 4, 0, 6; channel 1 NaN in rank 2 */
    float rec[3][6] = {{1e4f, 4e-4f, 0, 1.0f, 2.0f, 0}, {0, 0, 0, 0, 0, 0}, {10000.01f, 6e-4f, 0, NAN, NAN, 0}};
    const unsigned cnt[3] = {4, 0, 6};
    for (int r = 0; r < 3; ++r)
        for (int j = 0; j < 2; ++j) memcpy(&rec[r][3 * j + 2], &cnt[r], 4);
    float g[6];
    cl_ulong n = 0;
    ck_assert_int_eq(clnorm_bn_merge_stats(NULL, &rec[0][0], 3, 2, g, &n), CLNORM_OK);
    ck_assert_uint_eq(n, 10);
    unsigned gc;
    memcpy(&gc, &g[2], 4);
    ck_assert_uint_eq(gc, 10);
    /* exact: mean = 1e4 + 0.6 * d, M2 = 4e-4 + 6e-4 + d^2 * 4 * 6 / 10, d = the two float means' difference */
    const double d = (double)10000.01f - 1e4;
    TH_EXPECT(fabs(g[0] - (1e4 + 0.6 * d)) <= 1e4 * 6e-8, "merged mean %.9g", g[0]);
    const double m2 = (double)4e-4f + (double)6e-4f + d * d * 2.4;
    TH_EXPECT(fabs(g[1] - m2) <= 1e-6 * m2, "merged M2 %.9g, want %.9g (the spread survives)", g[1], m2);
    TH_EXPECT(isnan(g[3]) && isnan(g[4]), "channel 1 must be NaN");
    th_finish();
}
END_TEST

/* Poisons the n buffers of all and snapshots them (th_snapshot), for
 * expect_untouched after the rejected calls. */
static void poison_snapshot(cl_command_queue q, const cl_mem *all, size_t n, void **snap, size_t *bytes)
{
    for (size_t i = 0; i < n; ++i) poison(q, all[i], th_mem_floats(all[i]));
    for (size_t i = 0; i < n; ++i) snap[i] = th_snapshot(q, all[i], &bytes[i]);
}

/* After the queue drains, every buffer as poison_snapshot left it; frees
 * the snapshots. */
static void expect_untouched(cl_command_queue q, const cl_mem *all, size_t n, void **snap, const size_t *bytes)
{
    TH_CL(clFinish(q));
    for (size_t i = 0; i < n; ++i) {
        ck_assert_msg(th_same_bytes(q, all[i], snap[i], bytes[i]), "buffer %zu written by a rejected call", i);
        free(snap[i]);
    }
}

/* Rejected calls write nothing: merge and apply. */
START_TEST(validation)
{
    clnorm_ctx *ctx = th_ctx();
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    th_begin();
    /* merge: channels disagreeing on the count, merged count 1, all empty */
    float rec[2][6] = {{0}}, g[6];
    const unsigned c4 = 4, c5 = 5, c1 = 1, c0 = 0;
    for (int j = 0; j < 6; ++j) g[j] = th_from_bits(TH_POISON_BITS);
    memcpy(&rec[0][2], &c4, 4), memcpy(&rec[0][5], &c5, 4);
    cl_ulong n = 77;
    ck_assert_int_eq(clnorm_bn_merge_stats(ctx, &rec[0][0], 2, 2, g, &n), CLNORM_ERR_INVALID_SHAPE);
    ck_assert_msg(strstr(clnorm_last_error(ctx), "record 0") != NULL, "message: %s", clnorm_last_error(ctx));
    memcpy(&rec[0][2], &c1, 4), memcpy(&rec[0][5], &c1, 4);
    memcpy(&rec[1][2], &c0, 4), memcpy(&rec[1][5], &c0, 4);
    ck_assert_int_eq(clnorm_bn_merge_stats(ctx, &rec[0][0], 2, 2, g, &n), CLNORM_ERR_COUNT_ONE);
    memcpy(&rec[0][2], &c0, 4), memcpy(&rec[0][5], &c0, 4);
    ck_assert_int_eq(clnorm_bn_merge_stats(NULL, &rec[0][0], 2, 2, g, &n), CLNORM_ERR_INVALID_SHAPE);
    ck_assert_int_eq(clnorm_bn_merge_stats(NULL, NULL, 2, 2, g, &n), CLNORM_ERR_NULL_ARGUMENT);
    ck_assert_int_eq(clnorm_bn_merge_stats(NULL, &rec[0][0], 0, 2, g, &n), CLNORM_ERR_INVALID_SHAPE);
    ck_assert_uint_eq(n, 77);
    for (int j = 0; j < 6; ++j) ck_assert_uint_eq(th_bits(g[j]), TH_POISON_BITS);

    /* device steps: every buffer untouched */
    th_shape sh = {2, 3, 1, {5}};
    clnorm_desc d = th_shape_desc(CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, &sh);
    cl_mem X = th_buffer(cl, 30), Y = th_buffer(cl, 30), M = th_buffer(cl, 3), RM = th_buffer(cl, 3),
           RV = th_buffer(cl, 3), REC = th_buffer(cl, 9);
    cl_mem all[] = {X, Y, M, RM, RV, REC};
    void *snap[NELEM(all)];
    size_t bytes[NELEM(all)];
    poison_snapshot(q, all, NELEM(all), snap, bytes);
    d.x = (clnorm_buf){X, 0}, d.y = (clnorm_buf){Y, 0}, d.mean = (clnorm_buf){M, 0};
    d.running_mean = (clnorm_buf){RM, 0}, d.running_var = (clnorm_buf){RV, 0};
    const clnorm_buf recb = {REC, 0};
    ck_assert_int_eq(clnorm_bn_apply_stats(ctx, &d, recb, 1, 0, NULL, NULL), CLNORM_ERR_INVALID_SHAPE); /* < 10 */
    d.n = 1, d.spatial[0] = 1;
    ck_assert_int_eq(clnorm_bn_apply_stats(ctx, &d, recb, 1, 0, NULL, NULL), CLNORM_ERR_COUNT_ONE);
    ck_assert_int_eq(clnorm_bn_apply_stats(ctx, &d, recb, 0, 0, NULL, NULL), CLNORM_ERR_INVALID_SHAPE);
    ck_assert_int_eq(clnorm_bn_apply_stats(ctx, &d, recb, (cl_ulong)1 << 33, 0, NULL, NULL), CLNORM_ERR_TOO_LARGE);
    d.n = 2, d.spatial[0] = 5;
    ck_assert_int_eq(clnorm_bn_apply_stats(ctx, &d, (clnorm_buf){NULL, 0}, 10, 0, NULL, NULL),
                     CLNORM_ERR_MISSING_BUFFER);
    ck_assert_int_eq(clnorm_bn_apply_stats(ctx, &d, (clnorm_buf){REC, 1}, 10, 0, NULL, NULL),
                     CLNORM_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(clnorm_bn_apply_stats(ctx, &d, (clnorm_buf){Y, 0}, 10, 0, NULL, NULL), CLNORM_ERR_ALIASING);
    ck_assert_int_eq(clnorm_bn_local_stats(ctx, &d, (clnorm_buf){X, 20}, 0, NULL, NULL), CLNORM_ERR_ALIASING);
    ck_assert_int_eq(clnorm_bn_local_stats(ctx, &d, (clnorm_buf){NULL, 0}, 0, NULL, NULL), CLNORM_ERR_MISSING_BUFFER);
    d.eps = -1.0f;
    ck_assert_int_eq(clnorm_bn_validate(ctx, &d), CLNORM_ERR_INVALID_EPS);
    ck_assert_int_eq(clnorm_bn_local_stats(ctx, &d, recb, 0, NULL, NULL), CLNORM_ERR_INVALID_EPS);
    d.eps = 1e-5f, d.training = 0;
    ck_assert_int_eq(clnorm_bn_validate(ctx, &d), CLNORM_ERR_UNSUPPORTED);
    d.training = 1, d.op = CLNORM_INSTANCE_NORM;
    ck_assert_int_eq(clnorm_bn_local_stats(ctx, &d, recb, 0, NULL, NULL), CLNORM_ERR_UNSUPPORTED);
    d.op = CLNORM_BATCH_NORM;
    ck_assert_int_eq(clnorm_bn_validate(ctx, &d), CLNORM_OK);
    /* an empty slice needs neither x nor y */
    d.n = 0, d.x.mem = d.y.mem = NULL;
    ck_assert_int_eq(clnorm_bn_validate(ctx, &d), CLNORM_OK);
    expect_untouched(q, all, NELEM(all), snap, bytes);
    /* the empty slice's record is (0, 0, count 0) */
    ck_assert_int_eq(clnorm_bn_local_stats(ctx, &d, recb, 0, NULL, NULL), CLNORM_OK);
    float r[9];
    readf(q, REC, 0, 9, r);
    for (int j = 0; j < 9; ++j) ck_assert_uint_eq(th_bits(r[j]), 0);
    for (size_t i = 0; i < NELEM(all); ++i) clReleaseMemObject(all[i]);
    th_finish();
}
END_TEST


/* ---- the backward split ------------------------------------------------
 * clnorm_bn_local_grad_sums, clnorm_bn_merge_grad_sums, clnorm_bn_apply_grad
 * over k simulated ranks, with the saved statistics of the whole batch's
 * forward (the global ones every rank holds after the forward split): dx
 * of the whole batch assembled from the slices, every rank's dscale/dbias
 * (bit-identical across ranks), against ref_backward and clnorm_backward
 * with the tolerance derived in syncbn_bwd.h; with one rank on a CPU
 * device, clnorm_backward's bits. */

/* The split backward of batch d over ranks holding ns[r] samples; dx into
 * dx (E), rank r's dscale/dbias at r * C. inplace: dx over dy. */
static int run_split_bwd(clnorm_ctx *ctx, const clnorm_desc *d, const size_t *ns, size_t k, const float *x,
                         const float *dy, const float *sc, const float *mean, const float *rstd, int inplace,
                         float *dx, float *ds, float *db)
{
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    const size_t C = d->c, S = spatial_of(d), E = d->n * C * S, G2 = CLNORM_BN_GRAD_FLOATS * C;
    const size_t xo = 5;
    cl_mem X = th_buffer(cl, E + xo), DY = th_buffer(cl, E + xo), DX = th_buffer(cl, E + xo), SC = th_buffer(cl, C);
    cl_mem M = th_buffer(cl, C + 1), RS = th_buffer(cl, C + 2), DS = th_buffer(cl, k * C), DB = th_buffer(cl, k * C);
    cl_mem SUM = th_buffer(cl, k * G2 + 1), G = th_buffer(cl, G2 + 3);
    th_write(q, X, xo, E, x), th_write(q, DY, xo, E, dy);
    if (sc) th_write(q, SC, 0, C, sc);
    th_write(q, M, 1, C, mean), th_write(q, RS, 2, C, rstd);
    poison(q, DX, E + xo), poison(q, DS, k * C), poison(q, DB, k * C), poison(q, SUM, k * G2 + 1);
    poison(q, G, G2 + 3);
    cl_mem OUT = inplace ? DY : DX;
    clnorm_desc dr[KMAX];
    int st = CLNORM_OK;
    for (size_t r = 0, n0 = 0; r < k; n0 += ns[r], ++r) {
        dr[r] = *d;
        dr[r].n = ns[r];
        const size_t at = xo + n0 * C * S;
        /* an empty slice passes no x, dy or dx */
        dr[r].x = ns[r] ? (clnorm_buf){X, at} : (clnorm_buf){NULL, 0};
        dr[r].dy = ns[r] ? (clnorm_buf){DY, at} : (clnorm_buf){NULL, 0};
        dr[r].dx = ns[r] ? (clnorm_buf){OUT, at} : (clnorm_buf){NULL, 0};
        dr[r].scale = sc ? (clnorm_buf){SC, 0} : (clnorm_buf){NULL, 0};
        dr[r].mean = (clnorm_buf){M, 1}, dr[r].rstd = (clnorm_buf){RS, 2};
        dr[r].dscale = (clnorm_buf){DS, r * C}, dr[r].dbias = (clnorm_buf){DB, r * C};
        if (st == CLNORM_OK &&
            (st = clnorm_bn_local_grad_sums(ctx, &dr[r], (clnorm_buf){SUM, 1 + r * G2}, 0, NULL, NULL)))
            th_fail("local_grad_sums rank %zu: %s (%s)", r, clnorm_status_name(st), clnorm_last_error(ctx));
    }
    float *sums = malloc(k * G2 * 4), *glob = malloc(G2 * 4);
    if (st == CLNORM_OK) {
        readf(q, SUM, 1, k * G2, sums);
        if ((st = clnorm_bn_merge_grad_sums(ctx, sums, k, C, glob)))
            th_fail("merge_grad_sums: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
    }
    if (st == CLNORM_OK) th_write(q, G, 3, G2, glob);
    for (size_t r = 0; r < k && st == CLNORM_OK; ++r)
        if ((st = clnorm_bn_apply_grad(ctx, &dr[r], (clnorm_buf){G, 3}, d->n * S, 0, NULL, NULL)))
            th_fail("apply_grad rank %zu: %s (%s)", r, clnorm_status_name(st), clnorm_last_error(ctx));
    TH_CL(clFinish(q));
    readf(q, OUT, xo, E, dx);
    readf(q, DS, 0, k * C, ds);
    readf(q, DB, 0, k * C, db);
    free(sums), free(glob);
    cl_mem all[] = {X, DY, DX, SC, M, RS, DS, DB, SUM, G};
    for (size_t i = 0; i < NELEM(all); ++i) clReleaseMemObject(all[i]);
    return st;
}

static void check_split_bwd(clnorm_ctx *ctx, clnorm_desc d, size_t k, th_kind kind, int inplace, int noscale)
{
    char lab[128];
    size_t ns[KMAX];
    split_n(d.n, k, ns);
    th_set_case("backward %s k=%zu slices %zu,%zu,%zu,%zu kind=%s%s%s", th_desc_label(&d, lab, sizeof lab), k, ns[0],
                k > 1 ? ns[1] : 0, k > 2 ? ns[2] : 0, k > 3 ? ns[3] : 0, th_kind_name(kind),
                inplace ? " in place" : "", noscale ? " no scale" : "");
    size_t len[TH_ROLES];
    th_desc_lengths(&d, len);
    const size_t E = len[TH_X], C = d.c;
    float *x = malloc(E * 4), *dy = malloc(E * 4), *sc = malloc(C * 4), *b = malloc(C * 4), *rm = malloc(C * 4),
          *rv = malloc(C * 4);
    th_rng rng;
    th_rng_init(&rng, th_next_seed());
    th_gen_inputs(&rng, &d, kind, x, sc, b, rm, rv);
    th_fill_normal(&rng, dy, E, 0.1, 1.0);
    th_inputs in = {x, sc, b, rm, rv};
    /* the saved statistics of the whole batch */
    th_outputs fw = {malloc(E * 4), malloc(C * 4), malloc(C * 4), malloc(C * 4), malloc(C * 4)};
    float *dx = malloc(E * 4), *ds = malloc(k * C * 4), *db = malloc(k * C * 4);
    float *dx1 = malloc(E * 4), *ds1 = malloc(C * 4), *db1 = malloc(C * 4);
    const float *scp = noscale ? NULL : sc;
    bwd_ref ref;
    if (th_run_ok(ctx, &d, &in, &fw, 0, 0) == CLNORM_OK &&
        run_split_bwd(ctx, &d, ns, k, x, dy, scp, fw.mean, fw.rstd, inplace, dx, ds, db) == CLNORM_OK &&
        bwd_one_call(ctx, &d, x, dy, scp, fw.mean, fw.rstd, dx1, ds1, db1) == CLNORM_OK) {
        for (size_t r = 1; r < k; ++r)
            TH_EXPECT(!memcmp(ds, ds + r * C, C * 4) && !memcmp(db, db + r * C, C * 4),
                      "dscale/dbias of rank %zu differ from rank 0's", r);
        TH_EXPECT(bwd_ref_make(&d, x, dy, scp, fw.mean, fw.rstd, &ref) == 0, "ref_backward rejected the case");
        bwd_compare_ref(&ref, E, C, dx, ds, db);
        bwd_compare_ref(&ref, E, C, dx1, ds1, db1);
        bwd_compare_pair(&ref, E, C, dx1, ds1, db1, dx, ds, db);
        bwd_ref_free(&ref);
        if (k == 1 && is_cpu_device(ctx))
            TH_EXPECT(!memcmp(dx, dx1, E * 4) && !memcmp(ds, ds1, C * 4) && !memcmp(db, db1, C * 4),
                      "one rank: dx/dscale/dbias differ from clnorm_backward's bits");
    }
    free(fw.y), free(fw.mean), free(fw.rstd), free(fw.running_mean), free(fw.running_var);
    free(dx), free(ds), free(db), free(dx1), free(ds1), free(db1);
    free(x), free(dy), free(sc), free(b), free(rm), free(rv);
}

START_TEST(split_backward_matches_whole_batch)
{
    static const th_shape shapes[] = {
        {7, 3, 0, {0}}, {6, 5, 1, {70}}, {5, 4, 2, {5, 7}}, {4, 16, 3, {2, 3, 5}}, {9, 33, 2, {8, 9}},
    };
    static const th_kind kinds[] = {TH_NORMAL, TH_OFFSET_1E4, TH_NANINF};
    static const size_t ks[] = {1, 2, 3, 4};
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    unsigned rot = 0;
    for (size_t si = 0; si < NELEM(shapes); ++si)
        for (int lay = 0; lay < 2; ++lay)
            for (size_t ki = 0; ki < NELEM(kinds); ++ki, ++rot) {
                clnorm_desc d = th_shape_desc(CLNORM_BATCH_NORM, (clnorm_layout)lay, &shapes[si]);
                d.eps = rot % 7 == 3 ? 0.0f : 1e-5f;
                check_split_bwd(ctx, d, ks[rot % NELEM(ks)], kinds[ki], rot % 3 == 1, rot % 5 == 4);
            }
    th_finish();
}
END_TEST

/* The sums' merge: rank order in double, one record's own bits, NaN kept to
 * its channel; rejected calls write nothing; the device steps' validation. */
START_TEST(grad_validation)
{
    clnorm_ctx *ctx = th_ctx();
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    th_begin();
    /* 3 records of 2 channels: [sum dy c0, c1, sum dy*xhat c0, c1] */
    const float rec[3][4] = {{1e8f, -0.0f, 1.0f, NAN}, {1.0f, 2.0f, 3.0f, 4.0f}, {-1e8f, 0.5f, 0.25f, 1.0f}};
    float g[4], p[4];
    for (int j = 0; j < 4; ++j) p[j] = g[j] = th_from_bits(TH_POISON_BITS);
    ck_assert_int_eq(clnorm_bn_merge_grad_sums(NULL, &rec[0][0], 3, 2, g), CLNORM_OK);
    ck_assert(g[0] == 1.0f); /* in float, 1e8 + 1 - 1e8 would be 0 */
    ck_assert(g[1] == 2.5f && g[2] == 4.25f && isnan(g[3]));
    ck_assert_int_eq(clnorm_bn_merge_grad_sums(NULL, &rec[0][0], 1, 2, g), CLNORM_OK);
    ck_assert(!memcmp(g, rec[0], 2 * 4) && g[2] == 1.0f && isnan(g[3])); /* -0 stays -0 */
    ck_assert_int_eq(clnorm_bn_merge_grad_sums(ctx, NULL, 3, 2, p), CLNORM_ERR_NULL_ARGUMENT);
    ck_assert_int_eq(clnorm_bn_merge_grad_sums(ctx, &rec[0][0], 0, 2, p), CLNORM_ERR_INVALID_SHAPE);
    ck_assert_int_eq(clnorm_bn_merge_grad_sums(ctx, &rec[0][0], 3, 0, p), CLNORM_ERR_INVALID_SHAPE);
    float al[8] = {0};
    ck_assert_int_eq(clnorm_bn_merge_grad_sums(ctx, al, 1, 2, al + 2), CLNORM_ERR_ALIASING);
    for (int j = 0; j < 4; ++j) ck_assert_uint_eq(th_bits(p[j]), TH_POISON_BITS);

    /* device steps: every buffer untouched */
    th_shape sh = {2, 3, 1, {5}};
    clnorm_desc d = th_shape_desc(CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, &sh);
    cl_mem X = th_buffer(cl, 30), DY = th_buffer(cl, 30), DX = th_buffer(cl, 30), M = th_buffer(cl, 3),
           RS = th_buffer(cl, 3), DS = th_buffer(cl, 3), DB = th_buffer(cl, 3), SUM = th_buffer(cl, 6);
    cl_mem all[] = {X, DY, DX, M, RS, DS, DB, SUM};
    void *snap[NELEM(all)];
    size_t bytes[NELEM(all)];
    poison_snapshot(q, all, NELEM(all), snap, bytes);
    d.x = (clnorm_buf){X, 0}, d.dy = (clnorm_buf){DY, 0}, d.dx = (clnorm_buf){DX, 0};
    d.mean = (clnorm_buf){M, 0}, d.rstd = (clnorm_buf){RS, 0};
    d.dscale = (clnorm_buf){DS, 0}, d.dbias = (clnorm_buf){DB, 0};
    const clnorm_buf sb = {SUM, 0};
    ck_assert_int_eq(clnorm_bn_validate_grad(ctx, &d), CLNORM_OK);
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, sb, 9, 0, NULL, NULL), CLNORM_ERR_INVALID_SHAPE); /* < 10 */
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, sb, 0, 0, NULL, NULL), CLNORM_ERR_INVALID_SHAPE);
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, sb, (cl_ulong)1 << 33, 0, NULL, NULL), CLNORM_ERR_TOO_LARGE);
    d.n = 1, d.spatial[0] = 1;
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, sb, 1, 0, NULL, NULL), CLNORM_ERR_COUNT_ONE);
    d.n = 2, d.spatial[0] = 5;
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, (clnorm_buf){NULL, 0}, 10, 0, NULL, NULL),
                     CLNORM_ERR_MISSING_BUFFER);
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, (clnorm_buf){SUM, 1}, 10, 0, NULL, NULL),
                     CLNORM_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, (clnorm_buf){DX, 0}, 10, 0, NULL, NULL), CLNORM_ERR_ALIASING);
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, (clnorm_buf){DS, 0}, 10, 0, NULL, NULL),
                     CLNORM_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(clnorm_bn_local_grad_sums(ctx, &d, (clnorm_buf){DY, 20}, 0, NULL, NULL), CLNORM_ERR_ALIASING);
    ck_assert_int_eq(clnorm_bn_local_grad_sums(ctx, &d, (clnorm_buf){NULL, 0}, 0, NULL, NULL),
                     CLNORM_ERR_MISSING_BUFFER);
    d.dx = (clnorm_buf){X, 0}; /* over x */
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, sb, 10, 0, NULL, NULL), CLNORM_ERR_ALIASING);
    d.dx = (clnorm_buf){NULL, 0}, d.dscale = d.dbias = d.dx;
    ck_assert_int_eq(clnorm_bn_validate_grad(ctx, &d), CLNORM_ERR_NOTHING_TO_DO);
    ck_assert_int_eq(clnorm_bn_local_grad_sums(ctx, &d, sb, 0, NULL, NULL), CLNORM_ERR_NOTHING_TO_DO);
    d.dx = (clnorm_buf){DX, 0}, d.dscale = (clnorm_buf){DS, 0}, d.dbias = (clnorm_buf){DB, 0}, d.rstd.mem = NULL;
    ck_assert_int_eq(clnorm_bn_local_grad_sums(ctx, &d, sb, 0, NULL, NULL), CLNORM_ERR_MISSING_BUFFER);
    d.rstd.mem = RS, d.dy.mem = NULL;
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, sb, 10, 0, NULL, NULL), CLNORM_ERR_MISSING_BUFFER);
    d.dy.mem = DY, d.eps = -1.0f;
    ck_assert_int_eq(clnorm_bn_validate_grad(ctx, &d), CLNORM_ERR_INVALID_EPS);
    d.eps = 1e-5f, d.training = 0;
    ck_assert_int_eq(clnorm_bn_local_grad_sums(ctx, &d, sb, 0, NULL, NULL), CLNORM_ERR_UNSUPPORTED);
    d.training = 1, d.per_sample_affine = 1;
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, sb, 10, 0, NULL, NULL), CLNORM_ERR_UNSUPPORTED);
    d.per_sample_affine = 0;
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, sb, 10, 1, NULL, NULL), CLNORM_ERR_INVALID_EVENTS);
    expect_untouched(q, all, NELEM(all), snap, bytes);
    /* an empty slice: no x, dy, dx; zero sums; the apply writes dscale and
     * dbias from the global sums */
    d.n = 0, d.x.mem = d.dy.mem = d.dx.mem = NULL;
    ck_assert_int_eq(clnorm_bn_validate_grad(ctx, &d), CLNORM_OK);
    ck_assert_int_eq(clnorm_bn_local_grad_sums(ctx, &d, sb, 0, NULL, NULL), CLNORM_OK);
    float r[6];
    readf(q, SUM, 0, 6, r);
    for (int j = 0; j < 6; ++j) ck_assert_uint_eq(th_bits(r[j]), 0);
    const float gs[6] = {1, 2, 3, 4, 5, 6};
    th_write(q, SUM, 0, 6, gs);
    cl_event ev = NULL;
    ck_assert_int_eq(clnorm_bn_apply_grad(ctx, &d, sb, 10, 0, NULL, &ev), CLNORM_OK);
    ck_assert(ev != NULL);
    TH_CL(clWaitForEvents(1, &ev));
    clReleaseEvent(ev);
    readf(q, DB, 0, 3, r), readf(q, DS, 0, 3, r + 3);
    ck_assert_msg(!memcmp(r, gs, 6 * 4), "empty slice: dbias %g %g %g dscale %g %g %g", r[0], r[1], r[2], r[3], r[4], r[5]);
    for (size_t i = 0; i < NELEM(all); ++i) clReleaseMemObject(all[i]);
    th_finish();
}
END_TEST

TH_MAIN("syncbn", 300, TH_TEST(merge_exact), TH_TEST(validation), TH_TEST(split_matches_whole_batch),
        TH_TEST(grad_validation), TH_TEST(split_backward_matches_whole_batch))
