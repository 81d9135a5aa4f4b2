/*
 * clnorm_backward against the double-precision reference (ref_backward),
 * issue 16's matrix: every op (LayerNorm, RMSNorm, BatchNorm training and
 * inference, InstanceNorm training and inference with and without running
 * statistics, GroupNorm), both layouts, rank 0-3, per-sample affine, scale
 * present or absent, each gradient alone and all together; sizes 1, primes,
 * non-multiples of a work-group, sets longer than a work-group, the split
 * paths; normal, mean-1e4, constant and NaN/Inf data; every variant;
 * determinism, in place, aliasing and the backward's own rejections.
 *
 * Every check goes through the harness (call.c): guarded buffers at random
 * non-zero offsets (now and then ~1000 in), poisoned outputs, inputs (dy and
 * the saved statistics included) checked untouched, every buffer checked
 * byte-identical on a rejection. th_check_case runs the library's forward
 * first for the saved statistics, draws dy fresh, then the backward.
 */
#include "th_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define DX TH_ROLE(TH_DX)
#define DS TH_ROLE(TH_DSCALE)
#define DB TH_ROLE(TH_DBIAS)

/* The gradient sets every shape runs: all three, then each alone. */
static const unsigned grad_sets[] = {DX | DS | DB, DX, DS, DB};

static th_case bwd_rows(clnorm_op op, size_t rows, size_t cols)
{
    th_case c;
    th_case_rows(&c, op, rows, cols);
    c.backward = 1;
    return c;
}

static th_case bwd_channels(const char *op, clnorm_layout layout, size_t n, size_t ch, unsigned rank, const size_t *s,
                            size_t groups)
{
    th_case c;
    th_shape sh = {n, ch, rank, {rank > 0 ? s[0] : 1, rank > 1 ? s[1] : 1, rank > 2 ? s[2] : 1}};
    th_case tmp;
    th_case_init(&tmp, CLNORM_LAYER_NORM);
    if (th_parse_op(op, &tmp) != 0)
        abort();
    th_case_channels(&c, tmp.op, layout, &sh);
    c.training = tmp.training;
    c.running = tmp.running;
    c.groups = groups;
    c.backward = 1;
    char err[200];
    if (th_case_check(&c, err, sizeof err) != 0) {
        fprintf(stderr, "bwd_channels: %s\n", err);
        abort();
    }
    return c;
}

/* ------------------------------------------------------------------ */
/* LayerNorm and RMSNorm                                               */
/* ------------------------------------------------------------------ */
/* Sizes 1, primes, non-multiples of 32/64/256, rows longer than a
 * work-group (4099), and few long rows (the split path on GPU rules). */
static const size_t row_shapes[][2] = {{1, 1}, {1, 7},   {3, 1},    {5, 13},  {7, 127}, {4, 257},
                                       {33, 64}, {2, 1000}, {3, 4099}, {1, 70001}, {130, 31}};

static void rows_matrix(clnorm_op op)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    unsigned rot = 0;
    for (size_t i = 0; i < NELEM(row_shapes); i++)
        for (size_t g = 0; g < NELEM(grad_sets); g++)
            for (int scale = 0; scale <= 1; scale++, rot++) {
                th_case c = bwd_rows(op, row_shapes[i][0], row_shapes[i][1]);
                c.grads = grad_sets[g];
                c.scale = scale;
                c.eps = rot % 5 == 4 ? 1.0f : 1e-5f;
                th_check_case(ctx, &c);
            }
    th_finish();
}

START_TEST(ln_matrix) { rows_matrix(CLNORM_LAYER_NORM); }
END_TEST

START_TEST(rms_matrix) { rows_matrix(CLNORM_RMS_NORM); }
END_TEST

/* ------------------------------------------------------------------ */
/* channel norms                                                       */
/* ------------------------------------------------------------------ */
/* N, C and the spatial dims per rank: sizes 1, primes, a set longer than a
 * work-group (rank 1, 2 x 3 x 517). */
typedef struct chshape {
    size_t n, c;
    unsigned rank;
    size_t s[3];
} chshape;
static const chshape ch_shapes[] = {
    {1, 1, 0, {0}},       {7, 3, 0, {0}},        {2, 3, 1, {5}},       {3, 2, 1, {1}},
    {2, 3, 1, {517}},     {2, 4, 2, {3, 5}},     {3, 5, 2, {7, 11}},   {2, 3, 3, {2, 3, 5}},
    {1, 6, 3, {1, 1, 1}}, {4, 32, 2, {3, 3}},
};
static const char *const ch_ops[] = {"batch_norm_train", "batch_norm_infer", "instance_norm", "instance_norm_infer",
                                     "instance_norm_infer_norunning", "group_norm"};

/* One op over the shapes, both layouts, psa on and off, the gradient sets
 * and scale present/absent (rotated so that every combination appears on
 * some shape). GroupNorm's G: 1, C, and a divisor in between. */
static void channels_matrix(const char *opname)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    int no_running = strcmp(opname, "instance_norm_infer_norunning") == 0;
    unsigned rot = 0;
    for (size_t i = 0; i < NELEM(ch_shapes); i++)
        for (int layout = 0; layout <= 1; layout++)
            for (int psa = 0; psa <= 1; psa++)
                for (size_t g = 0; g < NELEM(grad_sets); g++, rot++) {
                    const chshape *s = &ch_shapes[i];
                    size_t groups = 0;
                    if (!strcmp(opname, "group_norm")) {
                        size_t opts[3] = {1, s->c, s->c % 2 == 0 ? 2 : s->c};
                        groups = opts[rot % 3];
                    }
                    th_case c = bwd_channels(no_running ? "instance_norm_infer" : opname, (clnorm_layout)layout, s->n,
                                             s->c, s->rank, s->s, groups);
                    if (no_running)
                        c.running = -1;
                    c.per_sample_affine = psa;
                    c.grads = grad_sets[g];
                    c.scale = (rot / 4) % 2 == 0 || g > 0; /* absent on a quarter of the all-gradients runs */
                    if (g == 0 && (rot / 4) % 2)
                        c.scale = 0;
                    th_check_case(ctx, &c);
                }
    th_finish();
}

START_TEST(bn_train_matrix) { channels_matrix(ch_ops[0]); }
END_TEST
START_TEST(bn_infer_matrix) { channels_matrix(ch_ops[1]); }
END_TEST
START_TEST(in_train_matrix) { channels_matrix(ch_ops[2]); }
END_TEST
START_TEST(in_infer_running_matrix) { channels_matrix(ch_ops[3]); }
END_TEST
START_TEST(in_infer_batch_matrix) { channels_matrix(ch_ops[4]); }
END_TEST
START_TEST(gn_matrix) { channels_matrix(ch_ops[5]); }
END_TEST

/* Few long sets: on GPU rules these take the sums/merge/table/apply
 * pipeline (split sets), on CPU rules the column blocks; the gradients all
 * together, scale on. */
static const char *const split_cases[] = {
    "group_norm 1x64x9000 G=4 bwd",         "group_norm 1x64x9000 nhwc G=4 bwd",
    "batch_norm_train 2x3x40000 bwd",       "batch_norm_train 2x3x40000 nhwc bwd",
    "instance_norm 1x2x30000 bwd",          "instance_norm 1x2x30000 nhwc bwd",
    "batch_norm_infer 2x3x40000 nhwc bwd",  "layer_norm 2x100000 bwd",
    "rms_norm 1x100003 bwd",                "group_norm 2x6x70x70 nhwc G=3 psa bwd",
    "batch_norm_train 8192x3 bwd",          "batch_norm_train 300x40x7 nhwc bwd",
};

/* Each case line with a scale and every gradient; the first on data of
 * kind k0. */
static void check_lines(const char *const *lines, size_t n, th_kind k0)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    for (size_t i = 0; i < n; i++) {
        th_case c = th_case_of(lines[i]);
        c.scale = 1;
        c.grads = DX | DS | DB;
        if (i == 0) c.kind = k0;
        th_check_case(ctx, &c);
    }
    th_finish();
}

START_TEST(split_paths) { check_lines(split_cases, NELEM(split_cases), TH_NORMAL); }
END_TEST

/* Rows whose column partials reach 1 MiB: on CPUs bwd_rows takes them in
 * pairs, block by block (bwd_rows_grouped; test_plan checks the rule).
 * Odd row counts leave a last group of one; 19 rows are two work-items'
 * partials (16 and 3 rows), 5 rows one item's, written straight into
 * dscale/dbias; lengths are primes, so each row ends in a partial block
 * and a scalar tail. In place (dx over dy) and the 1e4 offset too; 16-bit
 * storage in test_half.c. */
static const char *const pair_cases[] = {
    "layer_norm 5x131101 bwd",
    "rms_norm 19x131101 bwd",
    "layer_norm 19x131101 inplace bwd",
};

START_TEST(row_pairs) { check_lines(pair_cases, NELEM(pair_cases), TH_OFFSET_1E4); }
END_TEST

/* ------------------------------------------------------------------ */
/* data                                                                */
/* ------------------------------------------------------------------ */
/* A case of every op for the data, variant, determinism and in-place
 * tests: small, with sets of a few hundred (the 1e4 data's cancellation
 * needs a set to cancel over). */
static const char *const op_cases[] = {
    "layer_norm 9x300 bwd",
    "rms_norm 9x300 bwd",
    "batch_norm_train 4x3x75 bwd",
    "batch_norm_train 4x3x75 nhwc bwd",
    "batch_norm_infer 4x3x75 nhwc bwd",
    "instance_norm 2x3x130 bwd",
    "instance_norm_infer 2x3x130 nhwc bwd",
    "instance_norm_infer 2x3x130 no-running bwd",
    "group_norm 2x8x7x9 G=4 bwd",
    "group_norm 2x8x7x9 nhwc G=2 psa bwd",
};

static th_case op_case(size_t i)
{
    th_case c = th_case_of(op_cases[i]);
    char err[200];
    th_case_check(&c, err, sizeof err);
    c.scale = 1;
    c.grads = DX | DS | DB;
    return c;
}

/* Normal, uniform*1e4, 1e4 + N(0, 1e-2) (rstd ~ 100: the cancellation the
 * tolerance forbids), constant sets (var 0: with eps = 0 BatchNorm and
 * InstanceNorm have rstd 0, dx 0), every other set constant. */
START_TEST(data_kinds)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    static const th_kind kinds[] = {TH_NORMAL, TH_UNIFORM_1E4, TH_OFFSET_1E4, TH_CONSTANT, TH_MIXED_CONSTANT};
    for (size_t i = 0; i < NELEM(op_cases); i++)
        for (size_t k = 0; k < NELEM(kinds); k++)
            for (int eps0 = 0; eps0 <= (kinds[k] == TH_CONSTANT || kinds[k] == TH_MIXED_CONSTANT); eps0++) {
                th_case c = op_case(i);
                c.kind = kinds[k];
                if (eps0)
                    c.eps = 0.0f;
                th_check_case(ctx, &c);
            }
    /* the 1e4 data on long sets too, where a plain float sum drifts */
    static const char *const long_cases[] = {"layer_norm 2x20000 bwd", "batch_norm_train 2x2x9000 nhwc bwd",
                                             "group_norm 1x8x5000 G=2 bwd"};
    for (size_t i = 0; i < NELEM(long_cases); i++) {
        th_case c = th_case_of(long_cases[i]);
        c.scale = 1;
        c.kind = TH_OFFSET_1E4;
        th_check_case(ctx, &c);
    }
    th_finish();
}
END_TEST

/* A NaN in one set, +Inf in another, -Inf in a third (x; dy finite), on
 * every variant: those sets' dx and their parameters' dscale are NaN, every
 * other value finite and within tolerance (th_close is exact on non-finite
 * expectations and demands finite values elsewhere); dbias, a sum of dy,
 * stays finite. Inference with running statistics: dx does not read x, so
 * only dscale carries the NaN. */
START_TEST(nan_inf_isolation)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    TH_FOR_EACH_VARIANT(ctx, vi) {
        th_set_case("variant=%s", th_variant_str(th_variants[vi]));
        for (size_t i = 0; i < NELEM(op_cases); i++) {
            th_case c = op_case(i);
            c.kind = TH_NANINF;
            th_check_case(ctx, &c);
        }
    }
    th_finish();
}
END_TEST

/* Case i of op_cases followed by more (with a scale), and whether variant
 * vi skips it: the long cases run on AUTO and SPLIT only (time). */
static th_case op_or_more(size_t i, const char *const *more)
{
    th_case c = i < NELEM(op_cases) ? op_case(i) : th_case_of(more[i - NELEM(op_cases)]);
    c.scale = 1;
    return c;
}

static int long_case_skipped(size_t i, size_t vi)
{
    return i >= NELEM(op_cases) && th_variants[vi].v != CLNORM_VARIANT_AUTO && th_variants[vi].v != CLNORM_VARIANT_SPLIT;
}

/* ------------------------------------------------------------------ */
/* variants                                                            */
/* ------------------------------------------------------------------ */
/* Every variant (clnorm_set_variant: AUTO, WG, SUBGROUP, WI, SPLIT and two
 * forced work-group sizes) on every op case and a few sets longer than the
 * forced work-groups, each gradient set. */
START_TEST(every_variant)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    static const char *const more[] = {"layer_norm 3x1031 bwd", "batch_norm_train 3x2x700 bwd",
                                       "group_norm 1x6x900 nhwc G=3 bwd"};
    TH_FOR_EACH_VARIANT(ctx, vi) {
        th_set_case("variant=%s", th_variant_str(th_variants[vi]));
        for (size_t i = 0; i < NELEM(op_cases) + NELEM(more); i++)
            for (size_t g = 0; g < NELEM(grad_sets); g++) {
                th_case c = op_or_more(i, more);
                c.grads = grad_sets[g];
                th_check_case(ctx, &c);
            }
    }
    th_finish();
}
END_TEST

/* ------------------------------------------------------------------ */
/* determinism and in place                                            */
/* ------------------------------------------------------------------ */
/* The outputs of a run of k, copied (dx, dscale, dbias; NULL where absent). */
typedef struct grads {
    float *dx, *ds, *db;
} grads;

static int run_copy(th_call *k, clnorm_ctx *ctx, grads *out, size_t E, size_t A)
{
    char why[512];
    th_call_reset(k, clnorm_queue(ctx));
    int rc = th_call_run(k, ctx, why, sizeof why);
    th_cases++;
    if (rc != 0) {
        th_fail("%s", why);
        return -1;
    }
    out->dx = k->bout.dx ? malloc(E * sizeof(float)) : NULL;
    out->ds = k->bout.dscale ? malloc(A * sizeof(float)) : NULL;
    out->db = k->bout.dbias ? malloc(A * sizeof(float)) : NULL;
    if (out->dx)
        memcpy(out->dx, k->bout.dx, E * sizeof(float));
    if (out->ds)
        memcpy(out->ds, k->bout.dscale, A * sizeof(float));
    if (out->db)
        memcpy(out->db, k->bout.dbias, A * sizeof(float));
    return 0;
}

static void grads_free(grads *g)
{
    free(g->dx), free(g->ds), free(g->db);
    memset(g, 0, sizeof *g);
}

/* First differing element of a and b, bit for bit; (size_t)-1 if none. */
static size_t first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (th_bits(a[i]) != th_bits(b[i]))
            return i;
    return (size_t)-1;
}

static void expect_same_bits(const char *what, const float *a, const float *b, size_t n)
{
    if (!a || !b)
        return;
    size_t i = first_diff(a, b, n);
    TH_EXPECT(i == (size_t)-1, "%s[%zu] differs: 0x%08x then 0x%08x", what, i, th_bits(a[i == (size_t)-1 ? 0 : i]),
              th_bits(b[i == (size_t)-1 ? 0 : i]));
}

/* The three gradients of a and b bit for bit, named with suffix. */
static void expect_same_grads(const char *suffix, const grads *a, const grads *b, size_t E, size_t A)
{
    char what[64];
    snprintf(what, sizeof what, "dx%s", suffix);
    expect_same_bits(what, a->dx, b->dx, E);
    snprintf(what, sizeof what, "dscale%s", suffix);
    expect_same_bits(what, a->ds, b->ds, A);
    snprintf(what, sizeof what, "dbias%s", suffix);
    expect_same_bits(what, a->db, b->db, A);
}

/* Names the case (after the variant vi's name unless vi < 0) and makes
 * its call; 0 when made, else a failure recorded. */
static int labelled_call(th_call *k, clnorm_ctx *ctx, const th_case *c, int vi, size_t place, uint64_t seed)
{
    char label[160];
    th_case_label(c, label, sizeof label);
    if (vi < 0)
        th_set_case("%s", label);
    else
        th_set_case("variant=%s %s", th_variant_str(th_variants[vi]), label);
    if (th_call_init(k, ctx, c, place, seed) != 0) {
        th_fail("th_call_init rejected the case");
        return -1;
    }
    return 0;
}

/* The parameter gradients are fixed-order sums (no atomics) and dx is per
 * element: the same call twice gives the same bits, on every variant and
 * on the split paths. */
START_TEST(determinism)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    static const char *const more[] = {"group_norm 1x64x9000 G=4 bwd", "batch_norm_train 2x3x40000 nhwc bwd",
                                       "layer_norm 2x50000 bwd"};
    TH_FOR_EACH_VARIANT(ctx, vi) {
        for (size_t i = 0; i < NELEM(op_cases) + NELEM(more); i++) {
            if (long_case_skipped(i, vi))
                continue;
            th_case c = op_or_more(i, more);
            c.grads = DX | DS | DB;
            th_call k;
            if (labelled_call(&k, ctx, &c, (int)vi, TH_RANDOM_PLACE, th_next_seed()) != 0)
                continue;
            size_t E = k.len[TH_X], A = k.len[TH_DSCALE];
            grads a = {0}, b = {0};
            if (run_copy(&k, ctx, &a, E, A) == 0 && run_copy(&k, ctx, &b, E, A) == 0)
                expect_same_grads("", &a, &b, E, A);
            grads_free(&a), grads_free(&b);
            th_call_free(&k);
        }
    }
    th_set_case("%s", "");
    th_finish();
}
END_TEST

/* dx exactly dy (same mem, same offset) is allowed on every path (SPEC:
 * each element's dx is written by the work-item that read its dy, after
 * the set's sums): the same data in place and out of place give the same
 * bits, and both match the reference (th_call_run compares). */
START_TEST(in_place)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    static const char *const more[] = {"group_norm 1x64x9000 G=4 bwd", "group_norm 1x64x9000 nhwc G=4 bwd",
                                       "batch_norm_train 2x3x40000 bwd", "layer_norm 2x50000 bwd",
                                       "rms_norm 3x1031 bwd"};
    TH_FOR_EACH_VARIANT(ctx, vi) {
        for (size_t i = 0; i < NELEM(op_cases) + NELEM(more); i++) {
            if (long_case_skipped(i, vi))
                continue;
            th_case c = op_or_more(i, more);
            c.grads = i % 2 ? DX : DX | DS | DB; /* in place alone and with the parameter gradients */
            char label[160];
            th_set_case("variant=%s %s", th_variant_str(th_variants[vi]), th_case_label(&c, label, sizeof label));
            uint64_t seed = th_next_seed();
            th_call out, in;
            th_case ci = c;
            ci.flags |= TH_IN_PLACE;
            if (th_call_init(&out, ctx, &c, TH_RANDOM_PLACE, seed) != 0 ||
                th_call_init(&in, ctx, &ci, TH_RANDOM_PLACE, seed) != 0) {
                th_fail("th_call_init rejected the case");
                continue;
            }
            TH_EXPECT(in.d.dx.mem == in.d.dy.mem && in.d.dx.offset == in.d.dy.offset, "harness: dx is not dy");
            size_t E = out.len[TH_X], A = out.len[TH_DSCALE];
            grads a = {0}, b = {0};
            if (run_copy(&out, ctx, &a, E, A) == 0 && run_copy(&in, ctx, &b, E, A) == 0)
                expect_same_grads(" (in place vs out of place)", &a, &b, E, A);
            grads_free(&a), grads_free(&b);
            th_call_free(&out);
            th_call_free(&in);
        }
    }
    th_set_case("%s", "");
    th_finish();
}
END_TEST

/* ------------------------------------------------------------------ */
/* rejections                                                          */
/* ------------------------------------------------------------------ */
/* Runs clnorm_backward on k->d as modified by the caller, expecting
 * status `want`; then every buffer of k must be byte-identical to what was
 * uploaded (th_call_readback with rejected = 1: inputs, outputs, guards),
 * no event given, a message set. */
static void expect_rejected(clnorm_ctx *ctx, th_call *k, const clnorm_desc *d, clnorm_status want, const char *what)
{
    th_call_reset(k, clnorm_queue(ctx));
    cl_event ev = NULL;
    clnorm_status st = clnorm_backward(ctx, d, 0, NULL, &ev);
    th_cases++;
    TH_EXPECT(st == want, "%s: expected %s, got %s (%s)", what, clnorm_status_name(want), clnorm_status_name(st),
              clnorm_last_error(ctx));
    TH_EXPECT(ev == NULL, "%s: an event on a rejected call", what);
    if (ev)
        clReleaseEvent(ev);
    TH_EXPECT(st == CLNORM_OK || *clnorm_last_error(ctx), "%s: no message", what);
    char why[512];
    unsigned long bad = th_call_readback(k, clnorm_queue(ctx), 1, why, sizeof why);
    TH_EXPECT(bad == 0, "%s: a buffer changed on a rejected call: %s", what, why);
}

/* dx overlapping x (exactly, or shifted), dx partially overlapping dy (dx =
 * dy + 1, dy + 1 = dx), dscale/dbias overlapping each other, x, dy or the
 * saved statistics: CLNORM_ERR_ALIASING, nothing written. */
START_TEST(aliasing)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    for (size_t i = 0; i < NELEM(op_cases); i++) {
        th_case c = op_case(i);
        th_call k;
        if (labelled_call(&k, ctx, &c, -1, 8, th_next_seed()) != 0) /* offset 8: room to shift back */
            continue;
        clnorm_desc d = k.d;
        d.dx = d.x;
        expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dx is x");
        d = k.d;
        d.dx = (clnorm_buf){d.x.mem, d.x.offset + 1};
        expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dx overlaps x (+1)");
        d = k.d;
        d.dx = (clnorm_buf){d.x.mem, d.x.offset - 1};
        expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dx overlaps x (-1)");
        d = k.d;
        d.dx = (clnorm_buf){d.dy.mem, d.dy.offset + 1};
        expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dx is dy shifted by +1");
        d = k.d;
        d.dx = (clnorm_buf){d.dy.mem, d.dy.offset - 1};
        expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dx is dy shifted by -1");
        d = k.d;
        d.dbias = d.dscale;
        expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dbias is dscale");
        d = k.d;
        d.dscale = (clnorm_buf){d.dx.mem, d.dx.offset};
        expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dscale inside dx");
        d = k.d;
        d.dbias = (clnorm_buf){d.dy.mem, d.dy.offset + 2};
        expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dbias inside dy");
        d = k.d;
        d.dscale = (clnorm_buf){d.x.mem, d.x.offset};
        expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dscale inside x");
        if (d.rstd.mem && k.len[TH_RSTD] >= k.len[TH_DSCALE]) { /* rstd long enough to hold dscale */
            d = k.d;
            d.dscale = d.rstd;
            expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dscale is rstd");
        }
        if (d.scale.mem) {
            d = k.d;
            d.dscale = d.scale;
            expect_rejected(ctx, &k, &d, CLNORM_ERR_ALIASING, "dscale is scale");
        }
        th_call_free(&k);
    }
    th_set_case("%s", "");
    th_finish();
}
END_TEST

/* With batch statistics the saved mean and rstd are required (RMSNorm:
 * rstd; a mean for RMSNorm is unsupported, as in forward), and dy always:
 * CLNORM_ERR_MISSING_BUFFER. No gradient asked for: CLNORM_ERR_NOTHING_TO_DO.
 * Nothing written either way. */
START_TEST(missing_and_nothing)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    for (size_t i = 0; i < NELEM(op_cases); i++) {
        th_case c = op_case(i);
        th_call k;
        if (labelled_call(&k, ctx, &c, -1, TH_RANDOM_PLACE, th_next_seed()) != 0)
            continue;
        clnorm_desc d = k.d;
        int batch = ref_backward_uses_batch(&d, d.running_mean.mem != NULL);
        TH_EXPECT(batch == (d.rstd.mem != NULL), "harness: saved statistics passed %d, batch %d", d.rstd.mem != NULL,
                  batch);
        if (batch) {
            d.rstd = (clnorm_buf){NULL, 0};
            expect_rejected(ctx, &k, &d, CLNORM_ERR_MISSING_BUFFER, "no rstd");
            if (c.op != CLNORM_RMS_NORM) {
                d = k.d;
                d.mean = (clnorm_buf){NULL, 0};
                expect_rejected(ctx, &k, &d, CLNORM_ERR_MISSING_BUFFER, "no mean");
            } else {
                cl_mem mean = th_buffer(clnorm_cl_context(ctx), k.len[TH_RSTD]);
                d = k.d;
                d.mean = (clnorm_buf){mean, 0};
                expect_rejected(ctx, &k, &d, CLNORM_ERR_UNSUPPORTED, "a mean for RMSNorm");
                clReleaseMemObject(mean);
            }
        }
        d = k.d;
        d.dy = (clnorm_buf){NULL, 0};
        expect_rejected(ctx, &k, &d, CLNORM_ERR_MISSING_BUFFER, "no dy");
        d = k.d;
        d.dx = d.dscale = d.dbias = (clnorm_buf){NULL, 0};
        expect_rejected(ctx, &k, &d, CLNORM_ERR_NOTHING_TO_DO, "no gradient asked for");
        th_call_free(&k);
    }
    th_set_case("%s", "");
    th_finish();
}
END_TEST

/* The same case through th_check_case with the saved statistics omitted:
 * the harness expects the rejection from the reference (ref_backward), and
 * checks every buffer unchanged. */
START_TEST(missing_stats_through_driver)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    for (size_t i = 0; i < NELEM(op_cases); i++) {
        th_case c = op_case(i);
        c.omit = TH_STATS;
        th_check_case(ctx, &c);
    }
    th_finish();
}
END_TEST

/* Backward ignores y, bias and, with batch statistics, the running ones:
 * passing them (holding NaN) changes no bit of the result and they come back
 * untouched. */
START_TEST(ignored_buffers)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    for (size_t i = 0; i < NELEM(op_cases); i++) {
        th_case c = op_case(i);
        th_call k;
        if (labelled_call(&k, ctx, &c, -1, TH_RANDOM_PLACE, th_next_seed()) != 0)
            continue;
        size_t E = k.len[TH_X], A = k.len[TH_DSCALE];
        grads a = {0}, b = {0};
        int ok = run_copy(&k, ctx, &a, E, A) == 0;
        /* extra buffers of NaN; the running ones only where batch statistics are used */
        size_t C = c.op == CLNORM_LAYER_NORM || c.op == CLNORM_RMS_NORM ? 1 : c.shape[1];
        float *nan = malloc((E > A ? E : A) * sizeof(float));
        for (size_t j = 0; j < (E > A ? E : A); j++)
            nan[j] = NAN;
        cl_context cl = clnorm_cl_context(ctx);
        cl_mem y = th_buffer(cl, E), bias = th_buffer(cl, A), rm = th_buffer(cl, C), rv = th_buffer(cl, C);
        th_write(clnorm_queue(ctx), y, 0, E, nan);
        th_write(clnorm_queue(ctx), bias, 0, A, nan);
        clnorm_desc saved = k.d;
        k.d.y = (clnorm_buf){y, 0};
        if (c.op != CLNORM_RMS_NORM)
            k.d.bias = (clnorm_buf){bias, 0};
        /* training only: in inference, running statistics given are used (InstanceNorm) or already there */
        if (k.d.training && (c.op == CLNORM_BATCH_NORM || c.op == CLNORM_INSTANCE_NORM)) {
            th_write(clnorm_queue(ctx), rm, 0, C, nan);
            th_write(clnorm_queue(ctx), rv, 0, C, nan);
            k.d.running_mean = (clnorm_buf){rm, 0};
            k.d.running_var = (clnorm_buf){rv, 0};
        }
        ok = ok && run_copy(&k, ctx, &b, E, A) == 0;
        if (ok) {
            expect_same_bits("dx (with ignored buffers)", a.dx, b.dx, E);
            expect_same_bits("dscale (with ignored buffers)", a.ds, b.ds, A);
            expect_same_bits("dbias (with ignored buffers)", a.db, b.db, A);
        }
        size_t bytes;
        void *snap = th_snapshot(clnorm_queue(ctx), y, &bytes);
        for (size_t j = 0; j < E; j++)
            TH_EXPECT(isnan(((float *)snap)[j]), "y[%zu] written by backward", j);
        free(snap);
        k.d = saved;
        clReleaseMemObject(y), clReleaseMemObject(bias), clReleaseMemObject(rm), clReleaseMemObject(rv);
        free(nan);
        grads_free(&a), grads_free(&b);
        th_call_free(&k);
    }
    th_set_case("%s", "");
    th_finish();
}
END_TEST

/* The case model speaks backward: a line with "bwd" and gradient words
 * parses, labels and reads back to the same direction, gradients and roles;
 * the effective bytes of a LayerNorm backward are 3x the tensor plus the
 * parameter and statistic vectors (issue 16). */
START_TEST(case_model)
{
    th_begin();
    th_case c = th_case_of("layer_norm 64x256 scale bwd dx dscale");
    TH_EXPECT(c.backward == 1 && c.grads == (DX | DS), "parse: backward %d grads %#x", c.backward, c.grads);
    char label[160], err[200];
    th_case_label(&c, label, sizeof label);
    TH_EXPECT(!strcmp(label, "layer_norm 64x256 bwd dx dscale"), "label \"%s\"", label);
    th_case r;
    TH_EXPECT(th_case_parse(&r, label, err, sizeof err) == 0 && r.backward && r.grads == c.grads, "label reads back");
    unsigned roles = th_case_roles(&c);
    TH_EXPECT(roles == (TH_ROLE(TH_X) | TH_ROLE(TH_DY) | TH_ROLE(TH_SCALE) | TH_STATS | DX | DS), "roles %#x", roles);
    double want = (3.0 * 64 * 256 + 2 * 256 + 2 * 64) * 4; /* x, dy, dx; scale, dscale; mean, rstd */
    TH_EXPECT(th_case_bytes(&c) == want, "bytes %.0f, want %.0f", th_case_bytes(&c), want);
    th_case f = th_case_of("batch_norm_infer 2x3x4 affine bwd");
    roles = th_case_roles(&f);
    TH_EXPECT(roles == (TH_ROLE(TH_X) | TH_ROLE(TH_DY) | TH_ROLE(TH_SCALE) | TH_RUNNING | DX | DS | DB),
              "inference roles %#x", roles);
    th_case g = th_case_of("layer_norm 64x256 affine stats");
    TH_EXPECT(th_case_bytes(&g) == (2.0 * 64 * 256 + 2 * 256 + 2 * 64) * 4, "forward bytes unchanged: %.0f",
              th_case_bytes(&g));
    th_finish();
}
END_TEST

/* The tolerance model (compare.c) both ways, with no device: the
 * reference rounded to float passes; a mean off by one ulp (what folding
 * the mean into a multiply-add, x r - m r, costs) fails dx and dscale on
 * 1e4 + N(0, 1e-2) data; dx without its mean(g) term fails on normal data. */
START_TEST(tolerance_is_tight)
{
    th_begin();
    static const char *const cases[] = {"layer_norm 8x4096", "batch_norm_train 4x3x500 nhwc", "group_norm 2x8x300 G=2"};
    for (size_t ci = 0; ci < NELEM(cases); ci++)
        for (int k = 0; k < 2; k++) {
            th_case c = th_case_of(cases[ci]);
            char err[200];
            th_case_check(&c, err, sizeof err);
            clnorm_desc d;
            th_case_desc(&c, &d);
            th_set_case("%s %s", cases[ci], k ? "1e4+N(0,1e-2)" : "normal");
            size_t E = ref_elements(&d), A = ref_affine_len(&d), S = ref_sets(&d), set, aff, ch;
            float *x = malloc(E * 4), *dy = malloc(E * 4), *sc = malloc(A * 4), *m = malloc(S * 4), *r = malloc(S * 4);
            float *fdx = malloc(E * 4), *fds = malloc(A * 4), *fdb = malloc(A * 4), *m1 = malloc(S * 4);
            double *dx = malloc(E * 8), *ds = malloc(A * 8), *db = malloc(A * 8), *md = malloc(S * 8),
                   *rd = malloc(S * 8), *ag = calloc(S, 8), *cnt = calloc(S, 8);
            th_rng rng;
            th_rng_init(&rng, th_next_seed());
            th_gen_inputs(&rng, &d, k ? TH_OFFSET_1E4 : TH_NORMAL, x, sc, NULL, NULL, NULL);
            th_fill_normal(&rng, dy, E, 0.0, 1.0);
            th_saved_stats(&d, x, m, r);
            for (size_t s = 0; s < S; s++)
                md[s] = m[s], rd[s] = r[s], m1[s] = nextafterf(m[s], INFINITY);
            th_bwd_inputs in = {x, dy, sc, m, r, NULL, NULL};
            ck_assert(ref_backward(&d, x, dy, sc, md, rd, NULL, NULL, dx, ds, db) == 0);
            for (size_t i = 0; i < E; i++)
                fdx[i] = (float)dx[i];
            for (size_t j = 0; j < A; j++)
                fds[j] = (float)ds[j], fdb[j] = (float)db[j];
            th_bwd_outputs good = {fdx, fds, fdb};
            TH_EXPECT(th_compare_bwd(&d, &in, &good, 1.0, 1) == 0, "the rounded reference fails");
            if (k) { /* the mean one ulp off */
                for (size_t s = 0; s < S; s++)
                    md[s] = m1[s];
                ck_assert(ref_backward(&d, x, dy, sc, md, rd, NULL, NULL, dx, ds, db) == 0);
                for (size_t i = 0; i < E; i++)
                    fdx[i] = (float)dx[i];
                for (size_t j = 0; j < A; j++)
                    fds[j] = (float)ds[j];
                th_bwd_outputs bx = {fdx, NULL, NULL}, bs = {NULL, fds, NULL};
                TH_EXPECT(th_compare_bwd(&d, &in, &bx, 1.0, 0) > 0, "dx with the mean one ulp off passes");
                TH_EXPECT(th_compare_bwd(&d, &in, &bs, 1.0, 0) > 0, "dscale with the mean one ulp off passes");
            } else { /* dx = r (g - xhat B): mean(g) forgotten */
                for (size_t i = 0; i < E; i++) {
                    ref_locate(&d, i, &set, &aff, &ch);
                    ag[set] += (double)dy[i] * sc[aff], cnt[set] += 1;
                }
                for (size_t i = 0; i < E; i++) {
                    ref_locate(&d, i, &set, &aff, &ch);
                    fdx[i] = (float)(dx[i] + rd[set] * ag[set] / cnt[set]);
                }
                th_bwd_outputs bx = {fdx, NULL, NULL};
                TH_EXPECT(th_compare_bwd(&d, &in, &bx, 1.0, 0) > 0, "dx without mean(g) passes");
            }
            free(x), free(dy), free(sc), free(m), free(r), free(fdx), free(fds), free(fdb), free(m1);
            free(dx), free(ds), free(db), free(md), free(rd), free(ag), free(cnt);
        }
    th_finish();
}
END_TEST

/* Test cases by concern (CK_RUN_CASE=matrix runs one). */
TH_MAIN("backward", 0, TH_TCASE("model"), TH_TEST(case_model), TH_TEST(tolerance_is_tight), TH_TCASE("matrix"), TH_TEST(ln_matrix),
        TH_TEST(rms_matrix), TH_TEST(bn_train_matrix), TH_TEST(bn_infer_matrix), TH_TEST(in_train_matrix),
        TH_TEST(in_infer_running_matrix), TH_TEST(in_infer_batch_matrix), TH_TEST(gn_matrix), TH_TCASE("split"),
        TH_TEST(split_paths), TH_TEST(row_pairs), TH_TCASE("data"), TH_TEST(data_kinds), TH_TEST(nan_inf_isolation),
        TH_TCASE("variants"), TH_TEST(every_variant), TH_TEST(determinism), TH_TEST(in_place),
        TH_TCASE("rejections"), TH_TEST(aliasing), TH_TEST(missing_and_nothing),
        TH_TEST(missing_stats_through_driver), TH_TEST(ignored_buffers))
