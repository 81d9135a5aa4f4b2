/*
 * float16 and bfloat16 storage (clnorm_desc.dtype, param_dtype; SPEC.md,
 * Storage types). Its own guarded buffers, since the shared harness moves
 * float32: every buffer is a payload at a non-zero element offset with guard
 * elements before and after; outputs are poisoned before each call; after
 * it, guards must be intact, inputs untouched, outputs fully written (no
 * poison left), and after a rejected call nothing written at all.
 *
 * Forward of every op and layout (LayerNorm, RMSNorm, the fused add,
 * BatchNorm training and inference, InstanceNorm, GroupNorm, channels first
 * and last), with parameters in float32 or x's type, on every variant
 * (CLNORM_TEST_VARIANTS) and whichever device class the run has
 * (CLNORM_DEVICE_CLASS=gpu: a second CTest entry), against the double
 * reference on the widened inputs with th_storage_tol (compare.c). Special
 * values on the final store: float16 overflow to Inf (and 65504 below the
 * halfway point), bfloat16 ties to even, NaN and Inf. The set of 2^20
 * elements with |x| up to 60000 (the OpenVINO fp16 RMSNorm overflow).
 * Backward (dx in x's type; dscale/dbias float32) against ref_backward.
 */
#include "th_check.h"

#include <math.h>
#include <string.h>

#define OFF th_test_offset(3) /* 3: misaligned rows; the _stream reruns ask for 8 */
#define GUARD 5
#define G16 0xdeadu   /* 16-bit guard */
#define P16 0x7bdeu   /* 16-bit poison: finite in both types */

/* ---- guarded buffers ---- */
typedef struct gb {
    cl_mem m;
    size_t n, es; /* payload elements, bytes per element */
    int input;
    unsigned char *init; /* the whole buffer as uploaded */
} gb;

/* A buffer of n elements of type t (float32 when t is 0) holding src (widened
 * floats, rounded to t), or poison when src is NULL. */
static gb gb_put(clnorm_dtype t, const float *src, size_t n)
{
    clnorm_ctx *ctx = th_ctx();
    gb b = {NULL, n, clnorm_dtype_size(t), src != NULL, NULL};
    const size_t total = (OFF + n + GUARD) * b.es;
    b.init = malloc(total);
    for (size_t i = 0; i < OFF + n + GUARD; i++) {
        const int pay = i >= OFF && i < OFF + n;
        if (b.es == 4) {
            const float v = pay ? (src ? src[i - OFF] : th_from_bits(TH_POISON_BITS)) : th_from_bits(TH_GUARD_BITS);
            memcpy(b.init + 4 * i, &v, 4);
        } else {
            const uint16_t v = pay ? (src ? th_to16(t, src[i - OFF]) : (uint16_t)P16) : (uint16_t)G16;
            memcpy(b.init + 2 * i, &v, 2);
        }
    }
    cl_int err;
    b.m = clCreateBuffer(clnorm_cl_context(ctx), CL_MEM_READ_WRITE, total, NULL, &err);
    if (!b.m) th_die(__FILE__, __LINE__, "clCreateBuffer", err);
    TH_CL(clEnqueueWriteBuffer(clnorm_queue(ctx), b.m, CL_TRUE, 0, total, b.init, 0, NULL, NULL));
    return b;
}

/* Reads b back, checks guards (and an input's payload; untouched when
 * rejected) and widens the payload into out (may be NULL). 0 = fine. */
static int gb_get(gb *b, clnorm_dtype t, float *out, const char *name, int rejected)
{
    if (!b->m) return 0;
    const size_t total = (OFF + b->n + GUARD) * b->es;
    unsigned char *h = malloc(total);
    TH_CL(clEnqueueReadBuffer(clnorm_queue(th_ctx()), b->m, CL_TRUE, 0, total, h, 0, NULL, NULL));
    int bad = 0;
    for (size_t i = 0; i < OFF + b->n + GUARD && !bad; i++) {
        const int pay = i >= OFF && i < OFF + b->n;
        const int same = memcmp(h + i * b->es, b->init + i * b->es, b->es) == 0;
        if (!pay || b->input || rejected) {
            if (!same) {
                th_fail("%s: %s at %zu changed", name, pay ? (rejected ? "payload (rejected call)" : "input") : "guard",
                        i);
                bad = 1;
            }
        } else if (same && b->es == 2) { /* poison left: not written */
            th_fail("%s[%zu] not written", name, i - OFF);
            bad = 1;
        }
    }
    if (out)
        for (size_t i = 0; i < b->n; i++) {
            if (b->es == 4) {
                memcpy(&out[i], h + 4 * (OFF + i), 4);
            } else {
                uint16_t v;
                memcpy(&v, h + 2 * (OFF + i), 2);
                out[i] = th_from16(t, v);
            }
        }
    free(h);
    return bad;
}
static void gb_free(gb *b)
{
    if (b->m) clReleaseMemObject(b->m);
    free(b->init);
    memset(b, 0, sizeof *b);
}
static clnorm_buf at(const gb *b) { return (clnorm_buf){b->m, b->m ? OFF : 0}; }

/* ---- forward cases ---- */
typedef struct fcase {
    clnorm_op op;
    size_t a, b;           /* LayerNorm/RMSNorm: rows, cols; channel norms: n, c */
    size_t sp0, sp1;       /* spatial (rank 2; 0 = rank 0) */
    clnorm_layout layout;
    int training, groups, resid; /* resid: 1 = fused add with h_out, 2 = without (h re-added) */
} fcase;

static unsigned long run_forward(clnorm_ctx *ctx, const fcase *fc, clnorm_dtype t, clnorm_dtype pt, th_rng *r,
                                 double amp)
{
    clnorm_desc d;
    clnorm_desc_init(&d, fc->op);
    const int lnorm = fc->op == CLNORM_LAYER_NORM || fc->op == CLNORM_RMS_NORM;
    if (lnorm) {
        d.rows = fc->a, d.cols = fc->b;
    } else {
        d.n = fc->a, d.c = fc->b, d.layout = fc->layout, d.training = fc->training;
        if (fc->sp0) d.rank = 2, d.spatial[0] = fc->sp0, d.spatial[1] = fc->sp1;
        if (fc->op == CLNORM_GROUP_NORM) d.groups = (size_t)fc->groups;
    }
    d.dtype = t, d.param_dtype = pt;
    const size_t n = clnorm_desc_elements(&d), sets = clnorm_desc_sets(&d), na = ref_affine_len(&d);
    const size_t C = lnorm ? 1 : fc->b;
    const int running = fc->op == CLNORM_BATCH_NORM || (fc->op == CLNORM_INSTANCE_NORM && !fc->training);
    float *x = malloc(n * 4), *res = fc->resid ? malloc(n * 4) : NULL, *h = fc->resid ? malloc(n * 4) : NULL;
    float *sc = malloc(na * 4), *bi = malloc(na * 4), *rm = malloc(C * 4), *rv = malloc(C * 4);
    th_fill_normal(r, x, n, 0.5 * amp, amp);
    th_quantize(t, x, n);
    if (res) {
        th_fill_normal(r, res, n, 0.0, amp);
        th_quantize(t, res, n);
        for (size_t i = 0; i < n; i++) h[i] = th_from16(t, th_to16(t, x[i] + res[i])); /* the unfused add's h */
    }
    th_fill_normal(r, sc, na, 1.0, 0.5);
    th_fill_normal(r, bi, na, 0.0, 1.0);
    th_quantize(pt, sc, na);
    th_quantize(pt, bi, na);
    th_fill_normal(r, rm, C, 0.0, 1.0);
    th_fill_uniform(r, rv, C, 0.5, 2.0);
    gb bx = gb_put(t, x, n), by = gb_put(t, NULL, n), bs = gb_put(pt, sc, na), bb = gb_put(pt, bi, na);
    gb bm = {0}, brs = {0}, brm = {0}, brv = {0}, br = {0}, bh = {0};
    const int batch = !(fc->op == CLNORM_BATCH_NORM && !fc->training) && !(fc->op == CLNORM_INSTANCE_NORM && !fc->training);
    if (batch) {
        if (fc->op != CLNORM_RMS_NORM) bm = gb_put(0, NULL, sets);
        brs = gb_put(0, NULL, sets);
    }
    if (running) brm = gb_put(0, rm, C), brv = gb_put(0, rv, C), brm.input = brv.input = !fc->training;
    if (res) br = gb_put(t, res, n);
    if (res && fc->resid == 1) bh = gb_put(t, NULL, n);
    d.x = at(&bx), d.y = at(&by), d.scale = at(&bs), d.bias = at(&bb), d.mean = at(&bm), d.rstd = at(&brs);
    d.running_mean = at(&brm), d.running_var = at(&brv), d.residual = at(&br), d.h_out = at(&bh);
    clnorm_status st = clnorm_forward(ctx, &d, 0, NULL, NULL);
    unsigned long bad = 0;
    if (st != CLNORM_OK) {
        th_fail("forward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
        bad = 1;
    } else {
        float *y = malloc(n * 4), *gh = res ? malloc(n * 4) : NULL, *m = malloc(sets * 4), *rs = malloc(sets * 4);
        float *grm = malloc(C * 4), *grv = malloc(C * 4);
        bad += (unsigned long)gb_get(&bx, t, NULL, "x", 0) + (unsigned long)gb_get(&by, t, y, "y", 0);
        bad += (unsigned long)gb_get(&bs, pt, NULL, "scale", 0) + (unsigned long)gb_get(&bb, pt, NULL, "bias", 0);
        bad += (unsigned long)gb_get(&bm, 0, m, "mean", 0) + (unsigned long)gb_get(&brs, 0, rs, "rstd", 0);
        bad += (unsigned long)gb_get(&brm, 0, grm, "running_mean", 0) + (unsigned long)gb_get(&brv, 0, grv, "running_var", 0);
        bad += (unsigned long)gb_get(&br, t, NULL, "residual", 0) + (unsigned long)gb_get(&bh, t, gh, "h_out", 0);
        const th_inputs in = {res ? h : x, sc, bi, running ? rm : NULL, running ? rv : NULL};
        const th_outputs got = {y, batch && fc->op != CLNORM_RMS_NORM ? m : NULL, batch ? rs : NULL,
                                running ? grm : NULL, running ? grv : NULL};
        bad += th_compare_storage(&d, &in, &got, amp, 1);
        unsigned long nb = 0;
        if (res && fc->resid == 1)
            for (size_t i = 0; i < n && nb < 3; i++)
                if (th_bits(gh[i]) != th_bits(h[i]) && !(isnan(gh[i]) && isnan(h[i]))) {
                    th_fail("h_out[%zu] = %.9g, want %.9g (x + r rounded to %s)", i, (double)gh[i], (double)h[i],
                            th_dtype_name(t));
                    nb++;
                }
        bad += nb;
        free(y), free(gh), free(m), free(rs), free(grm), free(grv);
    }
    gb *all[] = {&bx, &by, &bs, &bb, &bm, &brs, &brm, &brv, &br, &bh};
    for (int i = 0; i < 10; i++) gb_free(all[i]);
    free(x), free(res), free(h), free(sc), free(bi), free(rm), free(rv);
    return bad;
}

static const fcase fcases[] = {
    {CLNORM_LAYER_NORM, 4, 5, 0, 0, 0, 1, 0, 0},
    {CLNORM_LAYER_NORM, 33, 768, 0, 0, 0, 1, 0, 0},
    {CLNORM_LAYER_NORM, 3, 70001, 0, 0, 0, 1, 0, 0},
    {CLNORM_RMS_NORM, 7, 4097, 0, 0, 0, 1, 0, 0},
    {CLNORM_RMS_NORM, 2, 70000, 0, 0, 0, 1, 0, 0},
    {CLNORM_LAYER_NORM, 40, 1000, 0, 0, 0, 1, 0, 1},
    {CLNORM_RMS_NORM, 5, 4099, 0, 0, 0, 1, 0, 1},
    {CLNORM_LAYER_NORM, 40, 1000, 0, 0, 0, 1, 0, 2},
    {CLNORM_RMS_NORM, 3, 4099, 0, 0, 0, 1, 0, 2},
    {CLNORM_RMS_NORM, 2, 70000, 0, 0, 0, 1, 0, 1},
    {CLNORM_BATCH_NORM, 4, 6, 7, 9, CLNORM_CHANNELS_FIRST, 1, 0, 0},
    {CLNORM_BATCH_NORM, 4, 6, 7, 9, CLNORM_CHANNELS_LAST, 1, 0, 0},
    {CLNORM_BATCH_NORM, 3, 32, 16, 16, CLNORM_CHANNELS_LAST, 1, 0, 0},
    {CLNORM_BATCH_NORM, 4, 6, 7, 9, CLNORM_CHANNELS_FIRST, 0, 0, 0},
    {CLNORM_BATCH_NORM, 4, 48, 5, 5, CLNORM_CHANNELS_LAST, 0, 0, 0},
    {CLNORM_BATCH_NORM, 8, 10, 0, 0, CLNORM_CHANNELS_FIRST, 1, 0, 0},
    {CLNORM_INSTANCE_NORM, 2, 5, 9, 13, CLNORM_CHANNELS_FIRST, 1, 0, 0},
    {CLNORM_INSTANCE_NORM, 2, 48, 9, 13, CLNORM_CHANNELS_LAST, 1, 0, 0},
    {CLNORM_INSTANCE_NORM, 2, 5, 9, 13, CLNORM_CHANNELS_FIRST, 0, 0, 0},
    {CLNORM_GROUP_NORM, 2, 12, 8, 9, CLNORM_CHANNELS_FIRST, 1, 3, 0},
    {CLNORM_GROUP_NORM, 3, 64, 16, 16, CLNORM_CHANNELS_LAST, 1, 8, 0},
    {CLNORM_GROUP_NORM, 4, 32, 64, 64, CLNORM_CHANNELS_LAST, 1, 4, 0},
    /* CPUs widen float16 parameters first in calls of 64 rows and 2^20
     * elements or more (plan.c, add_widen): case 23 takes x's type for
     * them (the rotation in half_forward_every_op: odd cases, with an even
     * count), case 22 float32. */
    {CLNORM_RMS_NORM, 64, 16411, 0, 0, 0, 1, 0, 2},
    {CLNORM_LAYER_NORM, 64, 16411, 0, 0, 0, 1, 0, 0},
};

START_TEST(half_forward_every_op)
{
    th_begin();
    clnorm_ctx *ctx = th_ctx();
    th_rng r;
    th_rng_init(&r, th_next_seed());
    unsigned rot = 0;
    TH_FOR_EACH_VARIANT(ctx, vi)
    {
        for (size_t i = 0; i < sizeof fcases / sizeof fcases[0]; i++)
            for (int k = 0; k < 2; k++, rot++) {
                const clnorm_dtype t = k ? CLNORM_BFLOAT16 : CLNORM_FLOAT16;
                const clnorm_dtype pt = (rot / 2) % 2 ? t : CLNORM_FLOAT32;
                th_set_case("%s x=%s params=%s case %zu%s", th_variant_str(th_variants[vi]), th_dtype_name(t), th_dtype_name(pt), i,
                            fcases[i].resid ? " fused add" : "");
                run_forward(ctx, &fcases[i], t, pt, &r, 3.0);
            }
    }
    th_finish();
}
END_TEST

/* 2^20 elements with |x| up to 60000 in one set: the sum of squares (1.2e15)
 * overflows float16 and is fine in float32 (the OpenVINO fp16 RMSNorm bug
 * overflowed at 65792 elements). RMSNorm and LayerNorm, both types. */
START_TEST(half_large_sets)
{
    th_begin();
    clnorm_ctx *ctx = th_ctx();
    th_rng r;
    th_rng_init(&r, th_next_seed());
    const clnorm_op ops[2] = {CLNORM_RMS_NORM, CLNORM_LAYER_NORM};
    for (int o = 0; o < 2; o++)
        for (int k = 0; k < 2; k++) {
            const clnorm_dtype t = k ? CLNORM_BFLOAT16 : CLNORM_FLOAT16;
            clnorm_desc d;
            clnorm_desc_init(&d, ops[o]);
            d.rows = 2, d.cols = (size_t)1 << 20, d.dtype = t;
            const size_t n = d.rows * d.cols;
            float *x = malloc(n * 4), *y = malloc(n * 4), *rs = malloc(8);
            th_fill_uniform(&r, x, n, -60000.0, 60000.0);
            x[5] = 60000.0f, x[n - 1] = -60000.0f;
            th_quantize(t, x, n);
            th_set_case("%s %s 2 x 2^20, |x| <= 60000", ops[o] == CLNORM_RMS_NORM ? "rms_norm" : "layer_norm", th_dtype_name(t));
            gb bx = gb_put(t, x, n), by = gb_put(t, NULL, n), brs = gb_put(0, NULL, 2);
            d.x = at(&bx), d.y = at(&by), d.rstd = at(&brs);
            clnorm_status st = clnorm_forward(ctx, &d, 0, NULL, NULL);
            TH_EXPECT(st == CLNORM_OK, "forward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
            if (st == CLNORM_OK) {
                gb_get(&bx, t, NULL, "x", 0), gb_get(&by, t, y, "y", 0), gb_get(&brs, 0, rs, "rstd", 0);
                double *ry = malloc(n * 8), rr[2], rm[2];
                ref_forward(&d, x, NULL, NULL, NULL, NULL, ry, rm, rr, NULL, NULL);
                unsigned long nb = 0;
                for (size_t i = 0; i < n && nb < 3; i++)
                    if (!th_close_storage(t, ry[i], y[i], 2e-5 * (1.0 + fabs(ry[i])))) {
                        th_fail("y[%zu] = %.9g, reference %.9g", i, (double)y[i], ry[i]);
                        nb++;
                    }
                for (int s = 0; s < 2; s++)
                    TH_EXPECT(th_close(rr[s], rs[s], 1e-4 * rr[s]), "rstd[%d] = %g, reference %g", s, (double)rs[s],
                              rr[s]);
                free(ry);
            }
            gb_free(&bx), gb_free(&by), gb_free(&brs);
            free(x), free(y), free(rs);
        }
    th_finish();
}
END_TEST

/* The final store's rounding, seen through BatchNorm inference with running
 * mean 0, variance 1, eps 0 and no scale: y = x + bias exactly in float32
 * (bias float32), so y's stored bits are the storage type's rounding of a
 * known float. */
START_TEST(half_store_rounding)
{
    th_begin();
    clnorm_ctx *ctx = th_ctx();
    typedef struct {
        float x, b, want;
    } sv;
    /* float16: ulp(1) = 2^-10; ties to even; 65504 + 15 stays 65504, from
     * 65520 Inf; NaN and Inf pass. */
    const sv h[] = {{1.0f, 0x1p-11f, 1.0f},
                    {1.0f + 0x1p-10f, 0x1p-11f, 1.0f + 0x1p-9f},
                    {1.0f, 0x1.8p-11f, 1.0f + 0x1p-10f},
                    {60000.0f, 5504.0f, 65504.0f},
                    {60000.0f, 5519.0f, 65504.0f},
                    {60000.0f, 5520.0f, INFINITY},
                    {-60000.0f, -6000.0f, -INFINITY},
                    {0.0f, 0x1p-25f, 0.0f},
                    {0.0f, 0x1.8p-25f, 0x1p-24f},
                    {NAN, 0.0f, NAN},
                    {INFINITY, 1.0f, INFINITY}};
    /* bfloat16: ulp(1) = 2^-7; ties to even; above the largest finite
     * (0x7f7f) past the halfway point rounds to Inf; NaN stays NaN. */
    const sv b[] = {{1.0f, 0x1p-8f, 1.0f},
                    {1.0f + 0x1p-7f, 0x1p-8f, 1.0f + 0x1p-6f},
                    {1.0f, 0x1.8p-8f, 1.0f + 0x1p-7f},
                    {0x1.fep127f, 0x1p119f, INFINITY},
                    {0x1.fep127f, 0x1p118f, 0x1.fep127f},
                    {-0x1.fep127f, -0x1p119f, -INFINITY},
                    {NAN, 0.0f, NAN},
                    {-INFINITY, 1.0f, -INFINITY}};
    for (int k = 0; k < 2; k++) {
        const clnorm_dtype t = k ? CLNORM_BFLOAT16 : CLNORM_FLOAT16;
        const sv *v = k ? b : h;
        const size_t C = k ? sizeof b / sizeof b[0] : sizeof h / sizeof h[0];
        TH_FOR_EACH_VARIANT(ctx, vi)
        for (int lay = 0; lay < 2; lay++) {
            th_set_case("%s store rounding %s %s", th_dtype_name(t), lay ? "nhwc" : "nchw", th_variant_str(th_variants[vi]));
            clnorm_desc d;
            clnorm_desc_init(&d, CLNORM_BATCH_NORM);
            d.n = 2, d.c = C, d.rank = 1, d.spatial[0] = 3, d.training = 0, d.eps = 0.0f, d.dtype = t;
            d.layout = lay ? CLNORM_CHANNELS_LAST : CLNORM_CHANNELS_FIRST;
            const size_t n = 2 * C * 3;
            float *x = malloc(n * 4), *y = malloc(n * 4), bias[16], rm[16], rv[16];
            for (size_t i = 0; i < n; i++) {
                size_t set, aff, ch;
                ref_locate(&d, i, &set, &aff, &ch);
                x[i] = v[ch].x;
            }
            for (size_t c = 0; c < C; c++) bias[c] = v[c].b, rm[c] = 0.0f, rv[c] = 1.0f;
            gb bx = gb_put(t, x, n), by = gb_put(t, NULL, n), bb = gb_put(0, bias, C), brm = gb_put(0, rm, C),
               brv = gb_put(0, rv, C);
            d.x = at(&bx), d.y = at(&by), d.bias = at(&bb), d.running_mean = at(&brm), d.running_var = at(&brv);
            clnorm_status st = clnorm_forward(ctx, &d, 0, NULL, NULL);
            TH_EXPECT(st == CLNORM_OK, "forward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
            if (st == CLNORM_OK) {
                gb_get(&bx, t, NULL, "x", 0), gb_get(&brm, 0, NULL, "rm", 0), gb_get(&brv, 0, NULL, "rv", 0);
                gb_get(&by, t, y, "y", 0);
                for (size_t i = 0; i < n; i++) {
                    size_t set, aff, ch;
                    ref_locate(&d, i, &set, &aff, &ch);
                    const float w = v[ch].want;
                    TH_EXPECT(isnan(w) ? isnan(y[i]) : th_bits(y[i]) == th_bits(w),
                              "channel %zu: %a + %a stored as %a, want %a", ch, (double)v[ch].x, (double)v[ch].b,
                              (double)y[i], (double)w);
                }
            }
            gb *all[] = {&bx, &by, &bb, &brm, &brv};
            for (int i = 0; i < 5; i++) gb_free(all[i]);
            free(x), free(y);
        }
    }
    th_finish();
}
END_TEST

/* Backward: dy, dx in x's type, scale in float32 or x's type; the saved
 * statistics from the library's own forward of the same (widened) x. */
START_TEST(half_backward)
{
    th_begin();
    clnorm_ctx *ctx = th_ctx();
    th_rng r;
    th_rng_init(&r, th_next_seed());
    const fcase bc[] = {
        {CLNORM_LAYER_NORM, 6, 77, 0, 0, 0, 1, 0, 0},
        {CLNORM_RMS_NORM, 3, 4100, 0, 0, 0, 1, 0, 0},
        {CLNORM_LAYER_NORM, 2, 70000, 0, 0, 0, 1, 0, 0},
        /* CPUs: rows in pairs (partials of 1 MiB a row), 16 + 3 a work-item */
        {CLNORM_LAYER_NORM, 19, 131101, 0, 0, 0, 1, 0, 0},
        {CLNORM_BATCH_NORM, 4, 6, 7, 9, CLNORM_CHANNELS_FIRST, 1, 0, 0},
        {CLNORM_BATCH_NORM, 4, 32, 5, 5, CLNORM_CHANNELS_LAST, 1, 0, 0},
        {CLNORM_BATCH_NORM, 4, 6, 7, 9, CLNORM_CHANNELS_FIRST, 0, 0, 0},
        {CLNORM_INSTANCE_NORM, 2, 5, 9, 13, CLNORM_CHANNELS_FIRST, 1, 0, 0},
        {CLNORM_GROUP_NORM, 2, 12, 8, 9, CLNORM_CHANNELS_FIRST, 1, 3, 0},
        {CLNORM_GROUP_NORM, 3, 64, 6, 6, CLNORM_CHANNELS_LAST, 1, 8, 0},
        /* 64 rows and 2^20 elements or more: parameters widened first on
         * CPUs (case 11 takes x's type for them, case 10 float32) */
        {CLNORM_RMS_NORM, 66, 260, 0, 0, 0, 1, 0, 0},
        {CLNORM_LAYER_NORM, 64, 16411, 0, 0, 0, 1, 0, 0},
    };
    unsigned rot = 0;
    TH_FOR_EACH_VARIANT(ctx, vi)
    for (size_t i = 0; i < sizeof bc / sizeof bc[0]; i++)
        for (int k = 0; k < 2; k++, rot++) {
            const fcase *fc = &bc[i];
            const clnorm_dtype t = k ? CLNORM_BFLOAT16 : CLNORM_FLOAT16, pt = (rot / 2) % 2 ? t : CLNORM_FLOAT32;
            th_set_case("backward %s x=%s params=%s case %zu", th_variant_str(th_variants[vi]), th_dtype_name(t), th_dtype_name(pt), i);
            clnorm_desc d;
            clnorm_desc_init(&d, fc->op);
            const int lnorm = fc->op == CLNORM_LAYER_NORM || fc->op == CLNORM_RMS_NORM;
            if (lnorm) {
                d.rows = fc->a, d.cols = fc->b;
            } else {
                d.n = fc->a, d.c = fc->b, d.layout = fc->layout, d.training = fc->training;
                if (fc->sp0) d.rank = 2, d.spatial[0] = fc->sp0, d.spatial[1] = fc->sp1;
                if (fc->op == CLNORM_GROUP_NORM) d.groups = (size_t)fc->groups;
            }
            d.dtype = t, d.param_dtype = pt;
            const size_t n = clnorm_desc_elements(&d), sets = clnorm_desc_sets(&d), na = ref_affine_len(&d);
            const size_t C = lnorm ? 1 : fc->b;
            const int batch = fc->training;
            float *x = malloc(n * 4), *dy = malloc(n * 4), *sc = malloc(na * 4), *rm = malloc(C * 4), *rv = malloc(C * 4);
            th_fill_normal(&r, x, n, 1.0, 2.0);
            th_fill_normal(&r, dy, n, 0.0, 1.0);
            th_fill_normal(&r, sc, na, 1.0, 0.5);
            th_fill_normal(&r, rm, C, 0.0, 1.0);
            th_fill_uniform(&r, rv, C, 0.5, 2.0);
            th_quantize(t, x, n), th_quantize(t, dy, n), th_quantize(pt, sc, na);
            float *m = malloc(sets * 4), *rs = malloc(sets * 4);
            gb bx = gb_put(t, x, n), bs = gb_put(pt, sc, na), bm = {0}, brs = {0}, brm = {0}, brv = {0};
            if (batch) { /* the forward's saved statistics */
                gb by = gb_put(t, NULL, n);
                if (fc->op != CLNORM_RMS_NORM) bm = gb_put(0, NULL, sets);
                brs = gb_put(0, NULL, sets);
                d.x = at(&bx), d.y = at(&by), d.mean = at(&bm), d.rstd = at(&brs);
                clnorm_status st = clnorm_forward(ctx, &d, 0, NULL, NULL);
                TH_EXPECT(st == CLNORM_OK, "forward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
                gb_get(&bm, 0, m, "mean", 0), gb_get(&brs, 0, rs, "rstd", 0);
                gb_free(&by), gb_free(&bm), gb_free(&brs);
                if (fc->op != CLNORM_RMS_NORM) bm = gb_put(0, m, sets); /* now inputs */
                brs = gb_put(0, rs, sets);
                d.y = (clnorm_buf){0, 0};
            } else {
                brm = gb_put(0, rm, C), brv = gb_put(0, rv, C);
            }
            gb bdy = gb_put(t, dy, n), bdx = gb_put(t, NULL, n), bds = gb_put(0, NULL, na), bdb = gb_put(0, NULL, na);
            d.x = at(&bx), d.dy = at(&bdy), d.dx = at(&bdx), d.scale = at(&bs), d.mean = at(&bm), d.rstd = at(&brs);
            d.running_mean = at(&brm), d.running_var = at(&brv), d.dscale = at(&bds), d.dbias = at(&bdb);
            clnorm_status st = clnorm_backward(ctx, &d, 0, NULL, NULL);
            TH_EXPECT(st == CLNORM_OK, "backward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
            if (st == CLNORM_OK) {
                float *dx = malloc(n * 4), *ds = malloc(na * 4), *db = malloc(na * 4);
                gb_get(&bx, t, NULL, "x", 0), gb_get(&bdy, t, NULL, "dy", 0), gb_get(&bs, pt, NULL, "scale", 0);
                gb_get(&bm, 0, NULL, "mean", 0), gb_get(&brs, 0, NULL, "rstd", 0);
                gb_get(&bdx, t, dx, "dx", 0), gb_get(&bds, 0, ds, "dscale", 0), gb_get(&bdb, 0, db, "dbias", 0);
                const th_bwd_inputs in = {x, dy, sc, batch && fc->op != CLNORM_RMS_NORM ? m : NULL,
                                          batch ? rs : NULL, batch ? NULL : rm, batch ? NULL : rv};
                const th_bwd_outputs got = {dx, ds, db};
                th_compare_storage_bwd(&d, &in, &got, 1);
                free(dx), free(ds), free(db);
            }
            gb *all[] = {&bx, &bs, &bm, &brs, &brm, &brv, &bdy, &bdx, &bds, &bdb};
            for (int j = 0; j < 10; j++) gb_free(all[j]);
            free(x), free(dy), free(sc), free(rm), free(rv), free(m), free(rs);
        }
    th_finish();
}
END_TEST

/* Validation counts bytes by element size; nothing is written on a reject. */
START_TEST(half_rejections)
{
    th_begin();
    clnorm_ctx *ctx = th_ctx();
    const size_t rows = 4, cols = 16, n = rows * cols;
    float x[64];
    for (size_t i = 0; i < n; i++) x[i] = (float)i;
    gb bx = gb_put(CLNORM_FLOAT16, x, n), by = gb_put(CLNORM_FLOAT16, NULL, n), bs = gb_put(CLNORM_BFLOAT16, x, cols);
    clnorm_desc ok;
    clnorm_desc_init(&ok, CLNORM_LAYER_NORM);
    ok.rows = rows, ok.cols = cols, ok.dtype = CLNORM_FLOAT16;
    ok.x = at(&bx), ok.y = at(&by);
    th_reject cs[6];
    size_t k = 0;
#define CASE(w, st, ...) TH_REJECT(cs, k, ok, clnorm_desc, d, w, st, __VA_ARGS__)
    CASE("x past its end (16-bit elements)", CLNORM_ERR_BUFFER_TOO_SMALL, d->x.offset = OFF + GUARD + 1);
    CASE("y read as float32", CLNORM_ERR_BUFFER_TOO_SMALL, d->dtype = CLNORM_FLOAT32);
    CASE("bfloat16 params with float16 x", CLNORM_ERR_UNSUPPORTED, d->scale = at(&bs);
         d->param_dtype = CLNORM_BFLOAT16);
    CASE("unknown dtype", CLNORM_ERR_UNSUPPORTED, d->dtype = (clnorm_dtype)3);
    CASE("y overlapping x by one element", CLNORM_ERR_ALIASING, d->y = (clnorm_buf){bx.m, OFF + 1});
#undef CASE
    th_expect_rejections(ctx, cs, k);
    th_set_case("after rejections");
    gb_get(&bx, CLNORM_FLOAT16, NULL, "x", 1), gb_get(&by, CLNORM_FLOAT16, NULL, "y", 1);
    gb_get(&bs, CLNORM_BFLOAT16, NULL, "scale", 1);
    th_set_case("exact 16-bit extent accepted");
    clnorm_status st = clnorm_forward(ctx, &ok, 0, NULL, NULL);
    TH_EXPECT(st == CLNORM_OK, "got %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
    gb_get(&by, CLNORM_FLOAT16, NULL, "y", 0);
    gb_free(&bx), gb_free(&by), gb_free(&bs);
    th_finish();
}
END_TEST

TH_MAIN("half", 600, TH_TEST(half_store_rounding), TH_TEST(half_rejections), TH_TEST(half_forward_every_op),
        TH_TEST(half_large_sets), TH_TEST(half_backward))
