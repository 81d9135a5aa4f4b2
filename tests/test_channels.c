/*
 * Channel norms (BatchNorm training/inference with running statistics,
 * InstanceNorm, GroupNorm, per-sample affine) in both layouts and spatial
 * ranks 0..3, against the double-precision reference, on every kernel
 * variant; equivalences between ops and layouts; the split path; error cases
 * leave every buffer byte-identical.
 */
#include "th_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* N = 1, S = 1, C = 1, primes, every rank. */
static const th_shape shapes[] = {
    {2, 3, 0, {0}},          {1, 5, 1, {7}},        {4, 3, 1, {1}},        {3, 1, 2, {5, 7}},
    {2, 7, 2, {11, 13}},     {5, 4, 3, {2, 3, 5}},  {1, 1, 1, {2}},        {16, 32, 2, {8, 8}},
    {2, 6, 1, {1000}},       {13, 3, 3, {1, 1, 1}}, {1, 2, 2, {31, 37}},   {3, 64, 0, {0}},
};

static const float epss[] = {0.0f, 1e-5f, 1.0f};
static const float moms[] = {0.1f, 0.0f, 1.0f, 0.3f};

/* One op over the shape list, both layouts, rotating data kinds, eps, flags. */
static void run_op_matrix(clnorm_op op, int training, int vi, int psa)
{
    clnorm_ctx *ctx = th_ctx();
    th_variant v = th_variants[vi];
    th_begin();
    if (!th_variant_select(ctx, (size_t)vi))
        return; /* not enabled (CLNORM_TEST_VARIANTS) */
    unsigned rot = (unsigned)vi * 3u + (unsigned)op;
    for (size_t si = 0; si < NELEM(shapes); si++) {
        for (int lay = 0; lay < 2; lay++) {
            size_t S = 1;
            for (unsigned k = 0; k < shapes[si].rank; k++)
                S *= shapes[si].s[k];
            int nk = vi == 0 ? TH_KIND_COUNT : 2;
            for (int k = 0; k < nk; k++, rot++) {
                th_case c;
                th_case_channels(&c, op, (clnorm_layout)lay, &shapes[si]);
                c.training = training;
                c.per_sample_affine = psa;
                c.eps = epss[rot % 3];
                c.momentum = moms[rot % 4];
                c.kind = nk == TH_KIND_COUNT ? (th_kind)k : (th_kind)((rot * 7u + k) % TH_KIND_COUNT);
                c.scale = (rot / 3) % 3 != 0;
                c.bias = (rot / 2) % 3 != 0;
                c.stats = (rot % 5) != 0;
                if (op == CLNORM_GROUP_NORM) {
                    /* G = 1, G = C, and a proper divisor when there is one */
                    size_t C = c.shape[1], opts[3] = {1, C, 1};
                    for (size_t g = 2; g < C; g++)
                        if (C % g == 0) {
                            opts[2] = g;
                            break;
                        }
                    c.groups = opts[rot % 3];
                }
                if (op == CLNORM_INSTANCE_NORM) {
                    c.running = (rot % 2) ? 1 : -1; /* tracked stats or not */
                    if (training && S == 1)
                        continue; /* rejected, covered by error_cases */
                }
                if (op == CLNORM_BATCH_NORM && training) {
                    if (c.shape[0] * S == 1)
                        continue; /* rejected, covered by error_cases */
                    if (rot % 7 == 6)
                        c.running = -1; /* training without running stats (PyTorch allows it) */
                }
                c.flags = (rot % 9 == 4) ? TH_IN_PLACE : 0;
                th_set_case("variant=%s", th_variant_str(v));
                th_check_case(ctx, &c);
            }
        }
    }
    clnorm_set_variant(ctx, CLNORM_VARIANT_AUTO, 0);
    th_finish();
}

START_TEST(bn_training) { run_op_matrix(CLNORM_BATCH_NORM, 1, _i, 0); }
END_TEST
START_TEST(bn_inference) { run_op_matrix(CLNORM_BATCH_NORM, 0, _i, 0); }
END_TEST
START_TEST(in_training) { run_op_matrix(CLNORM_INSTANCE_NORM, 1, _i, 0); }
END_TEST
START_TEST(in_inference) { run_op_matrix(CLNORM_INSTANCE_NORM, 0, _i, 0); }
END_TEST
START_TEST(gn) { run_op_matrix(CLNORM_GROUP_NORM, 1, _i, 0); }
END_TEST
/* per-sample affine (AdaIN, conditional norms): BN, IN, GN */
START_TEST(per_sample_affine)
{
    run_op_matrix(CLNORM_INSTANCE_NORM, 1, 0, 1);
    run_op_matrix(CLNORM_GROUP_NORM, 1, 0, 1);
    run_op_matrix(CLNORM_BATCH_NORM, 1, 0, 1);
    run_op_matrix(CLNORM_BATCH_NORM, 0, 0, 1);
    run_op_matrix(CLNORM_INSTANCE_NORM, 0, 0, 1);
}
END_TEST

/* GroupNorm: primes and every divisor of a few channel counts. */
START_TEST(gn_group_counts)
{
    clnorm_ctx *ctx = th_ctx();
    static const size_t Cs[] = {1, 2, 15, 14, 35, 64, 13};
    th_begin();
    unsigned rot = 0;
    for (size_t ci = 0; ci < NELEM(Cs); ci++)
        for (size_t g = 1; g <= Cs[ci]; g++) {
            if (Cs[ci] % g)
                continue;
            th_shape s = {3, Cs[ci], 2, {5, 3, 0}};
            th_case c;
            th_case_channels(&c, CLNORM_GROUP_NORM, (clnorm_layout)(rot % 2), &s);
            c.groups = g;
            c.kind = (th_kind)(rot % TH_KIND_COUNT);
            c.scale = c.bias = c.stats = 1;
            rot++;
            th_check_case(ctx, &c);
        }
    th_finish();
}
END_TEST

/* Running statistics after 3 consecutive training steps, for momentum 0, 1
 * and two others, BatchNorm and InstanceNorm, both layouts; then inference
 * with the trained statistics. */
START_TEST(running_stats_three_steps)
{
    clnorm_ctx *ctx = th_ctx();
    static const th_shape ss[] = {{4, 3, 2, {5, 7}}, {2, 5, 1, {1000}}, {8, 16, 0, {0}}, {3, 2, 3, {2, 3, 4}}};
    th_begin();
    th_rng r;
    uint64_t seed = th_next_seed();
    th_rng_init(&r, seed);
    for (int opi = 0; opi < 2; opi++)
        for (size_t si = 0; si < NELEM(ss); si++)
            for (size_t mi = 0; mi < NELEM(moms); mi++)
                for (int lay = 0; lay < 2; lay++) {
                    clnorm_op op = opi ? CLNORM_INSTANCE_NORM : CLNORM_BATCH_NORM;
                    if (op == CLNORM_INSTANCE_NORM && ss[si].rank == 0)
                        continue;
                    clnorm_desc d = th_shape_desc(op, (clnorm_layout)lay, &ss[si]);
                    d.momentum = moms[mi];
                    size_t E = ref_elements(&d), C = d.c, sets = ref_sets(&d);
                    float *x = malloc(E * 4), *y = malloc(E * 4), *sc = malloc(C * 4), *bi = malloc(C * 4);
                    float *mean = malloc(sets * 4), *rstd = malloc(sets * 4);
                    float lib_rm[64], lib_rv[64], ref_rm[64], ref_rv[64], out_rm[64], out_rv[64];
                    double drm[64], drv[64];
                    th_gen_inputs(&r, &d, TH_NORMAL, NULL, sc, bi, lib_rm, lib_rv);
                    memcpy(ref_rm, lib_rm, C * 4);
                    memcpy(ref_rv, lib_rv, C * 4);
                    for (int step = 1; step <= 3; step++) {
                        th_set_case("3 steps: %s %s momentum=%g shape#%zu step %d seed=%llu",
                                    opi ? "IN" : "BN", lay ? "NHWC" : "NCHW", (double)d.momentum, si, step,
                                    (unsigned long long)seed);
                        th_fill(&r, &d, (th_kind)(step == 2 ? TH_UNIFORM_1E4 : TH_NORMAL), x);
                        th_inputs in = {x, sc, bi, lib_rm, lib_rv};
                        th_outputs out = {y, mean, rstd, out_rm, out_rv};
                        int st = th_run(ctx, &d, &in, &out, 0);
                        if (st != CLNORM_OK) {
                            th_fail("status %d %s: %s", st, clnorm_status_name(st), clnorm_last_error(ctx));
                            break;
                        }
                        /* this step against the reference from the library's own inputs */
                        th_compare(&d, &in, &out, 1.0, 1);
                        /* the chain against the reference's own chain */
                        th_inputs rin = {x, sc, bi, ref_rm, ref_rv};
                        ref_forward(&d, x, sc, bi, ref_rm, ref_rv, NULL, NULL, NULL, drm, drv);
                        th_outputs chain = {NULL, NULL, NULL, out_rm, out_rv};
                        th_compare(&d, &rin, &chain, 2.0 * step, 1);
                        for (size_t c = 0; c < C; c++) {
                            ref_rm[c] = (float)drm[c];
                            ref_rv[c] = (float)drv[c];
                        }
                        if (d.momentum == 0.0f)
                            for (size_t c = 0; c < C; c++)
                                TH_EXPECT(out_rm[c] == lib_rm[c] && out_rv[c] == lib_rv[c],
                                          "momentum 0 changed running stats of channel %zu", c);
                        memcpy(lib_rm, out_rm, C * 4);
                        memcpy(lib_rv, out_rv, C * 4);
                    }
                    /* inference with the trained statistics */
                    th_set_case("inference after training: %s %s momentum=%g shape#%zu seed=%llu",
                                opi ? "IN" : "BN", lay ? "NHWC" : "NCHW", (double)d.momentum, si,
                                (unsigned long long)seed);
                    d.training = 0;
                    th_fill(&r, &d, TH_NORMAL, x);
                    th_inputs in = {x, sc, bi, lib_rm, lib_rv};
                    th_outputs out = {y, NULL, NULL, out_rm, out_rv};
                    int st = th_run(ctx, &d, &in, &out, 0);
                    TH_EXPECT(st == CLNORM_OK, "inference status %d %s", st, clnorm_status_name(st));
                    if (st == CLNORM_OK) {
                        th_compare(&d, &in, &out, 1.0, 1);
                        TH_EXPECT(memcmp(out_rm, lib_rm, C * 4) == 0 && memcmp(out_rv, lib_rv, C * 4) == 0,
                                  "inference modified the running statistics");
                    }
                    free(x); free(y); free(sc); free(bi); free(mean); free(rstd);
                }
    th_finish();
}
END_TEST

/* Host permutation between N,C,S and N,S,C. */
static void to_last(const float *a, float *b, size_t N, size_t C, size_t S)
{
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++)
            for (size_t s = 0; s < S; s++)
                b[(n * S + s) * C + c] = a[(n * C + c) * S + s];
}

/* The equivalences' data for one shape: x (and permuted), outputs a and b,
 * affine (and expanded over S), running statistics. */
typedef struct eqv {
    th_shape s;
    size_t S, E, C;
    float *x, *xl, *ya, *yb, *yp, *sc, *bi, *rm, *rv, *sce, *bie;
    float ma[2048], mb[2048], ra[2048], rb[2048], rma[64], rva[64], rmb[64], rvb[64];
} eqv;

static void eqv_init(eqv *w, const th_shape *s, th_rng *r)
{
    w->s = *s;
    w->S = 1;
    for (unsigned k = 0; k < s->rank; k++)
        w->S *= s->s[k];
    w->E = s->n * s->c * w->S, w->C = s->c;
    size_t E = w->E, C = w->C, S = w->S;
    w->x = malloc(E * 4), w->xl = malloc(E * 4), w->ya = malloc(E * 4), w->yb = malloc(E * 4);
    w->yp = malloc(E * 4), w->sc = malloc(C * 4), w->bi = malloc(C * 4), w->rm = malloc(C * 4);
    w->rv = malloc(C * 4), w->sce = malloc(C * S * 4), w->bie = malloc(C * S * 4);
    th_fill_normal(r, w->sc, C, 1, 0.5);
    th_fill_normal(r, w->bi, C, 0, 1);
    th_fill_normal(r, w->rm, C, 0, 1);
    th_fill_uniform(r, w->rv, C, 0.5, 2);
}

static void eqv_free(eqv *w)
{
    free(w->x), free(w->xl), free(w->ya), free(w->yb), free(w->yp), free(w->sc), free(w->bi), free(w->rm);
    free(w->rv), free(w->sce), free(w->bie);
}

/* Runs a and b; 1 if both succeeded, each compared with the reference. */
static int run_pair(clnorm_ctx *ctx, const clnorm_desc *da, const th_inputs *ia, th_outputs *oa,
                    const clnorm_desc *db, const th_inputs *ib, th_outputs *ob)
{
    int s1 = th_run(ctx, da, ia, oa, 0), s2 = th_run(ctx, db, ib, ob, 0);
    TH_EXPECT(s1 == CLNORM_OK && s2 == CLNORM_OK, "status %d / %d", s1, s2);
    if (s1 != CLNORM_OK || s2 != CLNORM_OK)
        return 0;
    th_compare(da, ia, oa, 1.0, 1);
    th_compare(db, ib, ob, 1.0, 1);
    return 1;
}

/* channels-last on permuted data equals channels-first (y and saved stats). */
static void eqv_layouts(clnorm_ctx *ctx, eqv *w, clnorm_op op, th_rng *r)
{
    clnorm_desc df = th_shape_desc(op, CLNORM_CHANNELS_FIRST, &w->s);
    clnorm_desc dl = th_shape_desc(op, CLNORM_CHANNELS_LAST, &w->s);
    df.groups = dl.groups = op == CLNORM_GROUP_NORM ? (w->C % 2 ? 1 : 2) : 0;
    th_fill(r, &df, TH_NORMAL, w->x);
    to_last(w->x, w->xl, w->s.n, w->C, w->S);
    int running = op != CLNORM_GROUP_NORM;
    th_inputs inf = {w->x, w->sc, w->bi, running ? w->rm : NULL, running ? w->rv : NULL};
    th_inputs inl = {w->xl, w->sc, w->bi, running ? w->rm : NULL, running ? w->rv : NULL};
    th_outputs of = {w->ya, w->ma, w->ra, w->rma, w->rva}, ol = {w->yb, w->mb, w->rb, w->rmb, w->rvb};
    if (!run_pair(ctx, &df, &inf, &of, &dl, &inl, &ol))
        return;
    to_last(w->ya, w->yp, w->s.n, w->C, w->S); /* channels-first result, permuted */
    th_compare_y(&dl, &inl, w->yp, w->yb, w->E, 1.0, 1);
    for (size_t k = 0, sets = ref_sets(&df); k < sets; k++) {
        TH_EXPECT(th_close(w->ma[k], w->mb[k], 1e-5 * (1 + fabs(w->ma[k]))), "mean[%zu] %g vs %g", k,
                  (double)w->ma[k], (double)w->mb[k]);
        TH_EXPECT(th_close(w->ra[k], w->rb[k], 1e-5 * fabs(w->ra[k])), "rstd[%zu] %g vs %g", k, (double)w->ra[k],
                  (double)w->rb[k]);
    }
}

/* GroupNorm G = C equals InstanceNorm (affine per channel). */
static void eqv_gn_in(clnorm_ctx *ctx, eqv *w, clnorm_layout lay, th_rng *r)
{
    clnorm_desc dg = th_shape_desc(CLNORM_GROUP_NORM, lay, &w->s);
    clnorm_desc di = th_shape_desc(CLNORM_INSTANCE_NORM, lay, &w->s);
    dg.groups = w->C;
    th_fill(r, &dg, TH_UNIFORM_1E4, w->x);
    th_inputs in = {w->x, w->sc, w->bi, NULL, NULL};
    th_outputs og = {w->ya, w->ma, w->ra, NULL, NULL}, oi = {w->yb, w->mb, w->rb, NULL, NULL};
    if (run_pair(ctx, &dg, &in, &og, &di, &in, &oi))
        th_compare_y(&di, &in, w->ya, w->yb, w->E, 1.0, 1);
}

/* GroupNorm G = 1 equals LayerNorm over (C, S) with the affine expanded. */
static void eqv_gn_ln(clnorm_ctx *ctx, eqv *w, clnorm_layout lay, th_rng *r)
{
    clnorm_desc dg = th_shape_desc(CLNORM_GROUP_NORM, lay, &w->s), dln;
    dg.groups = 1;
    th_case lc;
    th_case_rows(&lc, CLNORM_LAYER_NORM, w->s.n, w->C * w->S);
    th_case_desc(&lc, &dln);
    for (size_t c = 0; c < w->C; c++)
        for (size_t k = 0; k < w->S; k++) {
            size_t j = lay ? k * w->C + c : c * w->S + k;
            w->sce[j] = w->sc[c];
            w->bie[j] = w->bi[c];
        }
    th_fill(r, &dg, TH_NORMAL, w->x);
    th_inputs ing = {w->x, w->sc, w->bi, NULL, NULL}, inl = {w->x, w->sce, w->bie, NULL, NULL};
    th_outputs og = {w->ya, w->ma, w->ra, NULL, NULL}, ol = {w->yb, w->mb, w->rb, NULL, NULL};
    if (run_pair(ctx, &dg, &ing, &og, &dln, &inl, &ol))
        th_compare_y(&dln, &inl, w->ya, w->yb, w->E, 1.0, 1);
}

/* channels-last on permuted data equals channels-first (y and saved stats),
 * for every op, and GroupNorm G = C equals InstanceNorm, G = 1 equals
 * LayerNorm over (C, S) with the per-channel affine expanded. */
START_TEST(equivalences)
{
    clnorm_ctx *ctx = th_ctx();
    static const th_shape ss[] = {{2, 3, 2, {5, 7}}, {3, 8, 1, {64}}, {1, 13, 3, {2, 3, 5}}, {4, 6, 0, {0}},
                                  {2, 32, 2, {16, 16}}};
    static const clnorm_op ops[] = {CLNORM_BATCH_NORM, CLNORM_INSTANCE_NORM, CLNORM_GROUP_NORM};
    th_begin();
    th_rng r;
    uint64_t seed = th_next_seed();
    th_rng_init(&r, seed);
    TH_FOR_EACH_VARIANT(ctx, vi) {
        const char *v = th_variant_str(th_variants[vi]);
        for (size_t si = 0; si < NELEM(ss); si++) {
            eqv w;
            eqv_init(&w, &ss[si], &r);
            for (size_t o = 0; o < NELEM(ops); o++) {
                if (ops[o] == CLNORM_INSTANCE_NORM && w.S == 1)
                    continue;
                th_set_case("NHWC == NCHW: variant=%s op=%d shape#%zu seed=%llu", v, (int)ops[o], si,
                            (unsigned long long)seed);
                eqv_layouts(ctx, &w, ops[o], &r);
            }
            for (int lay = 0; lay < 2; lay++) {
                th_set_case("GN(G=C) == IN: variant=%s %s shape#%zu seed=%llu", v, lay ? "NHWC" : "NCHW", si,
                            (unsigned long long)seed);
                if (w.S > 1)
                    eqv_gn_in(ctx, &w, (clnorm_layout)lay, &r);
                th_set_case("GN(G=1) == LN: variant=%s %s shape#%zu seed=%llu", v, lay ? "NHWC" : "NCHW", si,
                            (unsigned long long)seed);
                eqv_gn_ln(ctx, &w, (clnorm_layout)lay, &r);
            }
            eqv_free(&w);
        }
    }
    th_finish();
}
END_TEST

/* Adds one N(0, 1) step to each run of `every` consecutive elements of x:
 * the pieces a kernel merges then have different means, so a merge that
 * drops its between-means term fails. */
static void add_steps(th_rng *r, float *x, size_t n, size_t every)
{
    for (size_t i0 = 0; i0 < n; i0 += every) {
        const float step = (float)th_rng_normal(r);
        for (size_t i = i0; i < i0 + every && i < n; ++i)
            x[i] += step;
    }
}

/* A BatchNorm channel with more than 8M elements: the split path, with
 * (count, mean, M2) partials merged in a fixed order. Run twice for
 * determinism. */
START_TEST(bn_split_large_channel)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    th_shape s = {2, 1, 1, {4200000}};
    clnorm_desc d = th_shape_desc(CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, &s);
    size_t E = ref_elements(&d);
    float *x = malloc(E * 4), *y = malloc(E * 4), *y2 = malloc(E * 4);
    float sc = 1.5f, bi = -0.25f, rm = 1e4f, rv = 1.0f, m1, r1, m2, r2, rmo, rvo, rmo2, rvo2;
    th_rng r;
    uint64_t seed = th_next_seed();
    th_rng_init(&r, seed);
    th_set_case("BN split: 1 channel x %zu elements, 1e4+N(0,1e-2), seed=%llu", E, (unsigned long long)seed);
    th_fill(&r, &d, TH_OFFSET_1E4, x);
    th_inputs in = {x, &sc, &bi, &rm, &rv};
    th_outputs o1 = {y, &m1, &r1, &rmo, &rvo}, o2 = {y2, &m2, &r2, &rmo2, &rvo2};
    int st = th_run_ok(ctx, &d, &in, &o1, TH_SMALL_OFFSETS, 1);
    if (st == CLNORM_OK) {
        st = th_run(ctx, &d, &in, &o2, TH_SMALL_OFFSETS);
        TH_EXPECT(st == CLNORM_OK && memcmp(y, y2, E * 4) == 0 && m1 == m2 && r1 == r2 && rmo == rmo2 &&
                      rvo == rvo2,
                  "two identical split runs differ");
    }
    /* channels-last, 2 channels of 4.2M each, uniform*1e4 */
    th_shape s2 = {2100000, 2, 1, {2}};
    clnorm_desc dl = th_shape_desc(CLNORM_BATCH_NORM, CLNORM_CHANNELS_LAST, &s2);
    float sc2[2] = {1, 2}, bi2[2] = {0, 1}, rm2[2] = {0, 0}, rv2[2] = {1, 1}, mm[2], rr[2], rmo3[2], rvo3[2];
    th_set_case("BN split NHWC: 2 channels x %zu elements, uniform*1e4, seed=%llu", E / 2, (unsigned long long)seed);
    th_fill(&r, &dl, TH_UNIFORM_1E4, x);
    th_inputs in2 = {x, sc2, bi2, rm2, rv2};
    th_outputs o3 = {y, mm, rr, rmo3, rvo3};
    th_run_ok(ctx, &dl, &in2, &o3, TH_SMALL_OFFSETS, 1);
    /* channels-last, 50 channels (3 vectors of 16 and 2 single columns on
     * CPUs) x 45000 rows, 1e4 + N(0, 1e-2) + a N(0, 1) step every 16 rows:
     * a CPU work-item merges hundreds of 8-row blocks of its rows itself
     * (and a shorter last block where its chunk is not a multiple of 8), and
     * the steps make the blocks' means differ, so the merge's between-means
     * term matters. */
    th_shape s3 = {45000, 50, 0, {0}};
    clnorm_desc d3 = th_shape_desc(CLNORM_BATCH_NORM, CLNORM_CHANNELS_LAST, &s3);
    float sc3[50], bi3[50], rm3[50], rv3[50], mm3[50], rr3[50], rmo4[50], rvo4[50];
    for (int c = 0; c < 50; ++c)
        sc3[c] = 1.0f + 0.01f * (float)c, bi3[c] = -0.5f + 0.02f * (float)c, rm3[c] = 1e4f, rv3[c] = 1.0f;
    th_set_case("BN NHWC blocks: 45000 x 50, 1e4+N(0,1e-2)+steps, seed=%llu", (unsigned long long)seed);
    th_fill(&r, &d3, TH_OFFSET_1E4, x);
    add_steps(&r, x, 45000 * 50, 16 * 50); /* a step per 16 rows */
    th_inputs in3 = {x, sc3, bi3, rm3, rv3};
    th_outputs o4 = {y, mm3, rr3, rmo4, rvo4};
    th_run_ok(ctx, &d3, &in3, &o4, TH_SMALL_OFFSETS, 1);
    free(x); free(y); free(y2);
    th_finish();
}
END_TEST

/* Sets too long for the CPU pipeline to keep three in flight (rows.cl, lag
 * 1: more than 1/16 of a 32 MiB cache): statistics per 4096-element piece,
 * merged with Chan's update. Data 1e4 + N(0, 1e-2) + a N(0, 1) step every
 * 1000 elements, so the pieces' means differ and the merge's between-means
 * term carries most of the variance. LayerNorm (elementwise affine, 5 rows,
 * length not a multiple of 16), RMSNorm, and InstanceNorm with per-channel
 * affine (4 planes). */
START_TEST(long_sets_pipeline)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    const size_t D = 600011, M = 5;
    float *x = malloc(M * D * 4), *y = malloc(M * D * 4), *sc = malloc(D * 4), *bi = malloc(D * 4);
    float mean[5], rstd[5];
    th_rng r;
    uint64_t seed = th_next_seed();
    th_rng_init(&r, seed);
    th_fill_normal(&r, x, M * D, 1e4, 1e-2);
    add_steps(&r, x, M * D, 1000);
    th_fill_uniform(&r, sc, D, 0.5, 1.5);
    th_fill_uniform(&r, bi, D, -1.0, 1.0);
    static const clnorm_op ops[] = {CLNORM_LAYER_NORM, CLNORM_RMS_NORM};
    for (int k = 0; k < 2; ++k) {
        clnorm_desc d;
        clnorm_desc_init(&d, ops[k]);
        d.rows = M;
        d.cols = D;
        th_set_case("%s %zux%zu, 1e4+N(0,1e-2)+steps, seed=%llu", ops[k] == CLNORM_RMS_NORM ? "RMS" : "LN", M, D,
                    (unsigned long long)seed);
        th_inputs in = {x, sc, ops[k] == CLNORM_RMS_NORM ? NULL : bi, NULL, NULL};
        th_outputs o = {y, ops[k] == CLNORM_RMS_NORM ? NULL : mean, rstd, NULL, NULL};
        th_run_ok(ctx, &d, &in, &o, TH_SMALL_OFFSETS, 1);
    }
    th_shape s = {1, 4, 2, {768, 800}}; /* planes of 614400 */
    clnorm_desc di = th_shape_desc(CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_FIRST, &s);
    float isc[4] = {0.5f, 1.0f, 1.5f, 2.0f}, ibi[4] = {-1.0f, 0.0f, 0.5f, 1.0f}, im[4], ir[4];
    th_set_case("IN 1x4x768x800, 1e4+N(0,1e-2)+steps, seed=%llu", (unsigned long long)seed);
    th_inputs in = {x, isc, ibi, NULL, NULL};
    th_outputs o = {y, im, ir, NULL, NULL};
    th_run_ok(ctx, &di, &in, &o, TH_SMALL_OFFSETS, 1);
    free(x); free(y); free(sc); free(bi);
    th_finish();
}
END_TEST

/* Channels-last InstanceNorm/GroupNorm with 2..16 samples of at least 1 MiB
 * and C a multiple of 16: on CPUs, the wave pipeline (col_wave: launch w
 * reads sample w's statistics while it writes sample w-1). Every data kind;
 * groups narrower than a vector, one vector wide, and the whole row; a
 * group straddling the 1024-column tile (C = 1040, 80 per group); 16
 * samples; running statistics and per-sample affine. Then columns with
 * their own offsets and N(0, 1) steps every 16 rows, so that the merge's
 * between-means terms (across columns and row chunks) carry most of the
 * variance; run twice for determinism. */
START_TEST(wave_pipeline)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    static const struct { th_shape s; clnorm_op op; size_t groups; int psa; } cases[] = {
        {{3, 64, 1, {4099}}, CLNORM_GROUP_NORM, 8, 0},   {{3, 64, 1, {4099}}, CLNORM_GROUP_NORM, 4, 1},
        {{2, 64, 2, {67, 62}}, CLNORM_GROUP_NORM, 1, 0}, {{2, 1040, 1, {257}}, CLNORM_GROUP_NORM, 13, 0},
        {{2, 32, 2, {97, 89}}, CLNORM_INSTANCE_NORM, 32, 1}, {{16, 16, 1, {16411}}, CLNORM_INSTANCE_NORM, 16, 0},
    };
    unsigned rot = 0;
    for (size_t i = 0; i < NELEM(cases); i++)
        for (int k = 0; k < TH_KIND_COUNT; k++, rot++) {
            if (cases[i].s.n == 16 && k % 2) continue; /* the largest case: half the kinds */
            th_case c;
            th_case_channels(&c, cases[i].op, CLNORM_CHANNELS_LAST, &cases[i].s);
            c.groups = cases[i].groups;
            c.per_sample_affine = cases[i].psa;
            c.eps = epss[rot % 3];
            c.kind = (th_kind)k;
            c.scale = rot % 3 != 1;
            c.bias = rot % 4 != 2;
            c.stats = rot % 5 != 3;
            c.running = cases[i].op == CLNORM_INSTANCE_NORM && rot % 2 ? 1 : -1;
            c.flags = rot % 7 == 5 ? TH_IN_PLACE : 0;
            th_set_case("wave %s", cases[i].op == CLNORM_GROUP_NORM ? "GN" : "IN");
            th_check_case(ctx, &c);
        }

    th_shape s = {3, 64, 1, {4099}};
    clnorm_desc d = th_shape_desc(CLNORM_GROUP_NORM, CLNORM_CHANNELS_LAST, &s);
    d.groups = 4;
    const size_t E = ref_elements(&d), C = 64;
    float *x = malloc(E * 4), *y = malloc(E * 4), *y2 = malloc(E * 4);
    float sc[64], bi[64], m1[12], r1[12], m2[12], r2[12];
    th_rng r;
    uint64_t seed = th_next_seed();
    th_rng_init(&r, seed);
    th_set_case("wave GN NHWC 3x64x4099 G=4, 1e4+N(0,1e-2)+column offsets+steps, seed=%llu",
                (unsigned long long)seed);
    th_fill_normal(&r, x, E, 1e4, 1e-2);
    for (size_t c = 0; c < C; ++c) {
        sc[c] = (float)th_rng_uniform(&r) + 0.5f, bi[c] = (float)th_rng_uniform(&r) - 0.5f;
        const float off = (float)th_rng_normal(&r);
        for (size_t i = c; i < E; i += C)
            x[i] += off;
    }
    add_steps(&r, x, E, 16 * C); /* a step per 16 rows */
    th_inputs in = {x, sc, bi, NULL, NULL};
    th_outputs o1 = {y, m1, r1, NULL, NULL}, o2 = {y2, m2, r2, NULL, NULL};
    int st = th_run_ok(ctx, &d, &in, &o1, TH_SMALL_OFFSETS, 1);
    if (st == CLNORM_OK) {
        st = th_run(ctx, &d, &in, &o2, TH_SMALL_OFFSETS);
        TH_EXPECT(st == CLNORM_OK && memcmp(y, y2, E * 4) == 0 && memcmp(m1, m2, sizeof m1) == 0 &&
                      memcmp(r1, r2, sizeof r1) == 0,
                  "two identical wave runs differ");
    }
    free(x); free(y); free(y2);
    th_finish();
}
END_TEST

/* The largest work-group sizes a user may force (or a tuning file ask
 * for) on the column paths: PoCL allocates a CPU work-item's private tile
 * statistics for the whole work-group on a worker thread's stack, and 512
 * of them overflowed it (a crash), so plan.c caps them. */
START_TEST(large_forced_work_groups)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    size_t maxwg = 0;
    clGetDeviceInfo(clnorm_device(ctx), CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof maxwg, &maxwg, NULL);
    static const struct { th_shape s; clnorm_op op; clnorm_layout lay; size_t groups; } cases[] = {
        {{2, 64, 2, {16, 16}}, CLNORM_GROUP_NORM, CLNORM_CHANNELS_LAST, 8},
        {{2, 64, 2, {16, 16}}, CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_LAST, 1},
        {{5, 64, 2, {8, 9}}, CLNORM_BATCH_NORM, CLNORM_CHANNELS_LAST, 1},
        {{7, 19, 1, {5}}, CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, 1}, /* short planes: columns */
    };
    static const clnorm_variant vs[] = {CLNORM_VARIANT_AUTO, CLNORM_VARIANT_WI, CLNORM_VARIANT_WG};
    for (size_t w = 512; w <= 1024 && w <= maxwg; w *= 2)
        for (size_t v = 0; v < NELEM(vs); v++) {
            TH_EXPECT(clnorm_set_variant(ctx, vs[v], w) == CLNORM_OK, "set_variant(%s, %zu)",
                      clnorm_variant_name(vs[v]), w);
            for (size_t i = 0; i < NELEM(cases); i++) {
                th_case c;
                th_case_channels(&c, cases[i].op, cases[i].lay, &cases[i].s);
                c.groups = cases[i].groups;
                c.kind = (th_kind)((v + i) % TH_KIND_COUNT);
                c.scale = c.bias = c.stats = 1;
                c.running = cases[i].op == CLNORM_BATCH_NORM ? 1 : -1;
                th_set_case("%s:%zu case %zu", clnorm_variant_name(vs[v]), w, i);
                th_check_case(ctx, &c);
            }
        }
    clnorm_set_variant(ctx, CLNORM_VARIANT_AUTO, 0);
    th_finish();
}
END_TEST

/* Rejected calls: specific status, and every buffer (outputs, running
 * statistics) byte-identical afterwards (th_run checks that on any rejection). */
START_TEST(error_cases)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    struct {
        clnorm_op op;
        th_shape s;
        size_t groups;
        int training;
        float momentum;
        int expect;
        const char *what;
    } cases[] = {
        {CLNORM_BATCH_NORM, {1, 4, 0, {0}}, 0, 1, 0.1f, CLNORM_ERR_COUNT_ONE, "BN training N=1 S=1 (rank 0)"},
        {CLNORM_BATCH_NORM, {1, 3, 2, {1, 1}}, 0, 1, 0.1f, CLNORM_ERR_COUNT_ONE, "BN training N=1 S=1x1"},
        {CLNORM_INSTANCE_NORM, {4, 3, 1, {1}}, 0, 1, 0.1f, CLNORM_ERR_COUNT_ONE, "IN training S=1"},
        {CLNORM_GROUP_NORM, {2, 6, 1, {5}}, 4, 1, 0.1f, CLNORM_ERR_INVALID_GROUPS, "GN G=4 C=6"},
        {CLNORM_GROUP_NORM, {2, 7, 1, {5}}, 2, 1, 0.1f, CLNORM_ERR_INVALID_GROUPS, "GN G=2 C=7"},
        {CLNORM_GROUP_NORM, {2, 6, 1, {5}}, 0, 1, 0.1f, CLNORM_ERR_INVALID_GROUPS, "GN G=0"},
        {CLNORM_GROUP_NORM, {2, 6, 1, {5}}, 12, 1, 0.1f, CLNORM_ERR_INVALID_GROUPS, "GN G=12 > C"},
        {CLNORM_BATCH_NORM, {2, 3, 1, {5}}, 0, 1, 1.5f, CLNORM_ERR_INVALID_MOMENTUM, "BN momentum 1.5"},
        {CLNORM_BATCH_NORM, {2, 3, 1, {5}}, 0, 1, -0.1f, CLNORM_ERR_INVALID_MOMENTUM, "BN momentum -0.1"},
        {CLNORM_INSTANCE_NORM, {2, 3, 1, {5}}, 0, 1, NAN, CLNORM_ERR_INVALID_MOMENTUM, "IN momentum NaN"},
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        for (int lay = 0; lay < 2; lay++) {
            clnorm_desc d = th_shape_desc(cases[i].op, (clnorm_layout)lay, &cases[i].s);
            d.groups = cases[i].groups;
            d.training = cases[i].training;
            d.momentum = cases[i].momentum;
            size_t E = ref_elements(&d);
            float *x = malloc(E * 4), *y = malloc(E * 4), sc[64], bi[64], rm[64], rv[64], mean[64], rstd[64],
                  orm[64], orv[64];
            th_rng r;
            th_rng_init(&r, th_next_seed());
            th_gen_inputs(&r, &d, TH_NORMAL, x, sc, bi, rm, rv);
            int running = cases[i].op != CLNORM_GROUP_NORM;
            th_inputs in = {x, sc, bi, running ? rm : NULL, running ? rv : NULL};
            th_outputs out = {y, mean, rstd, orm, orv};
            th_set_case("error case: %s %s", cases[i].what, lay ? "NHWC" : "NCHW");
            TH_EXPECT(ref_forward(&d, x, sc, bi, in.running_mean, in.running_var, NULL, NULL, NULL, NULL, NULL) != 0,
                      "the reference accepts it");
            int st = th_run(ctx, &d, &in, &out, 0); /* also checks every buffer is untouched */
            TH_EXPECT(st == cases[i].expect, "status %d (%s), expected %d (%s); message: %s", st,
                      clnorm_status_name(st), cases[i].expect, clnorm_status_name(cases[i].expect),
                      clnorm_last_error(ctx));
            TH_EXPECT(clnorm_last_error(ctx)[0] != 0, "no error message");
            /* in place too: x must stay as it was */
            st = th_run(ctx, &d, &in, &out, TH_IN_PLACE);
            TH_EXPECT(st == cases[i].expect, "in place: status %d (%s)", st, clnorm_status_name(st));
            free(x);
            free(y);
        }
    }
    th_finish();
}
END_TEST

/* NaN/Inf isolation per set for every channel op (set = channel, instance, group). */
START_TEST(nan_inf_isolation)
{
    clnorm_ctx *ctx = th_ctx();
    static const th_shape ss[] = {{3, 4, 1, {6}}, {4, 6, 2, {3, 3}}, {2, 5, 0, {0}}};
    th_case cases[NELEM(ss) * 2 * 3];
    size_t n = 0;
    for (size_t si = 0; si < NELEM(ss); si++)
        for (int lay = 0; lay < 2; lay++)
            for (int op = CLNORM_BATCH_NORM; op <= CLNORM_GROUP_NORM; op++) {
                if (op == CLNORM_INSTANCE_NORM && ss[si].rank == 0)
                    continue;
                th_case *c = &cases[n++];
                th_case_channels(c, (clnorm_op)op, (clnorm_layout)lay, &ss[si]);
                c->groups = ss[si].c % 2 ? 1 : 2;
                c->scale = c->bias = c->stats = 1;
                c->running = op == CLNORM_GROUP_NORM ? -1 : 1;
            }
    th_begin();
    th_nan_inf_isolation(ctx, cases, n, 0, NULL);
    th_finish();
}
END_TEST

TH_MAIN("channels", 0, TH_LOOP(bn_training, (int)th_variant_count), TH_LOOP(bn_inference, 2),
        TH_LOOP(in_training, (int)th_variant_count), TH_LOOP(in_inference, 2), TH_LOOP(gn, (int)th_variant_count),
        TH_TEST(per_sample_affine), TH_TEST(gn_group_counts), TH_TEST(running_stats_three_steps),
        TH_TEST(equivalences), TH_TEST(nan_inf_isolation), TH_TEST(error_cases), TH_TEST(bn_split_large_channel),
        TH_TEST(long_sets_pipeline), TH_TEST(wave_pipeline), TH_TEST(large_forced_work_groups))
