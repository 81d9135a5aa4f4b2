/*
 * PyTorch's and ONNX's special values (../shared/SPEC.md, "Common form" and
 * "Running statistics"), against the double-precision reference, on every
 * kernel variant, with guarded and poisoned buffers:
 *
 *  - RMSNorm rows holding +-Inf (no NaN): rstd = 0, finite elements give
 *    0 * scale + bias, infinite ones NaN; a row holding NaN is NaN throughout;
 *  - BatchNorm and InstanceNorm on constant sets with eps = 0: rstd = 0 and
 *    y = bias; LayerNorm and GroupNorm give NaN there (rstd = +Inf);
 *  - running_var_biased: PyTorch's unbiased running_var update (0) and
 *    ONNX's biased one (1), and the rejection of any other value;
 *  - the reference itself against values worked out by hand for PyTorch's
 *    functions, so that the reference and the kernels cannot be wrong
 *    together.
 */
#include "th_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *shape_str(const clnorm_desc *d)
{
    static char buf[160];
    return th_desc_label(d, buf, sizeof buf);
}

/* Set `set` of x (per ref_locate) to v everywhere. */
static void fill_set(const clnorm_desc *d, float *x, size_t set, float v)
{
    size_t E = ref_elements(d), s, a, ch;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &s, &a, &ch);
        if (s == set)
            x[i] = v;
    }
}

/* Puts v at the k-th element (in memory order) of set `set`; k wraps. */
static void put_at(const clnorm_desc *d, float *x, size_t set, size_t k, float v)
{
    size_t E = ref_elements(d), count = ref_count_per_set(d), s, a, ch, seen = 0;
    k %= count;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &s, &a, &ch);
        if (s == set && seen++ == k) {
            x[i] = v;
            return;
        }
    }
}

/* ------------------------------------------------------------------ */
/* RMSNorm rows with +-Inf                                             */
/* ------------------------------------------------------------------ */

enum { R_CLEAN, R_PINF, R_NINF, R_BOTH, R_INF_NAN, R_INF_FIRST, R_NAN, R_PATTERNS };
static const char *const rpat_names[] = {"clean", "+Inf", "-Inf", "+Inf,-Inf", "Inf+NaN", "+Inf at 0", "NaN"};

/* Row `row` of x (D elements, N(0,1) already) gets pattern p: one to three
 * infinities at random places (the first, the last element sometimes). */
static void apply_pattern(th_rng *r, float *xr, size_t D, int p)
{
    size_t k = 1 + th_rng_below(r, 3);
    for (size_t j = 0; j < k; j++) {
        size_t e = th_rng_below(r, D);
        if (j == 1 && th_rng_below(r, 2)) e = D - 1;
        switch (p) {
        case R_PINF: xr[e] = INFINITY; break;
        case R_NINF: xr[e] = -INFINITY; break;
        case R_BOTH: xr[e] = j % 2 ? -INFINITY : INFINITY; break;
        case R_INF_NAN: xr[e] = j % 2 ? NAN : INFINITY; break;
        case R_INF_FIRST: xr[e] = INFINITY; break;
        case R_NAN: xr[e] = NAN; break;
        default: break;
        }
    }
    if (p == R_BOTH) { /* both signs for certain */
        xr[0] = INFINITY;
        xr[D - 1] = -INFINITY;
    }
    if (p == R_INF_NAN) {
        xr[D - 1] = -INFINITY;
        xr[th_rng_below(r, D - 1)] = NAN;
    }
    if (p == R_INF_FIRST)
        xr[0] = INFINITY;
}

static int has_nan(const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(a[i])) return 1;
    return 0;
}

static int has_inf(const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isinf(a[i])) return 1;
    return 0;
}

/* One call of RMSNorm on rows with the patterns pats[0..M-1], then the
 * reference comparison and the rules stated directly. */
static void rms_inf_call(clnorm_ctx *ctx, size_t D, const int *pats, size_t M, float eps, int with_bias)
{
    uint64_t seed = th_next_seed();
    th_rng r;
    th_rng_init(&r, seed);
    clnorm_desc d;
    clnorm_desc_init(&d, CLNORM_RMS_NORM);
    d.rows = M;
    d.cols = D;
    d.eps = eps;
    size_t E = M * D;
    float *x = malloc(E * 4), *y = malloc(E * 4), *sc = malloc(D * 4), *bi = malloc(D * 4), rstd[8];
    th_fill_normal(&r, x, E, 0.5, 1.5);
    th_fill_normal(&r, sc, D, 1.0, 0.5);
    th_fill_normal(&r, bi, D, 0.0, 1.0);
    char pl[128] = "";
    for (size_t m = 0; m < M; m++) {
        apply_pattern(&r, x + m * D, D, pats[m]);
        snprintf(pl + strlen(pl), sizeof pl - strlen(pl), "%s%s", m ? "," : "", rpat_names[pats[m]]);
    }
    char saved[512];
    snprintf(saved, sizeof saved, "%s", th_case_name());
    th_set_case("%s RMS %zux%zu eps=%g bias=%d rows=[%s] seed=%llu", saved, M, D, (double)eps, with_bias, pl,
                (unsigned long long)seed);
    th_inputs in = {x, sc, with_bias ? bi : NULL, NULL, NULL};
    th_outputs out = {y, NULL, rstd, NULL, NULL};
    if (th_run_ok(ctx, &d, &in, &out, 0, 1) == CLNORM_OK) {
        for (size_t m = 0; m < M; m++) {
            const float *xr = x + m * D, *yr = y + m * D;
            if (has_nan(xr, D)) {
                TH_EXPECT(isnan(rstd[m]), "row %zu (%s) holds NaN: rstd %g, expected NaN", m, rpat_names[pats[m]],
                          (double)rstd[m]);
                for (size_t e = 0; e < D; e++)
                    if (!isnan(yr[e])) {
                        th_fail("row %zu (%s) holds NaN: y[%zu] = %g, expected NaN", m, rpat_names[pats[m]], e,
                                (double)yr[e]);
                        break;
                    }
            } else if (has_inf(xr, D)) {
                TH_EXPECT(rstd[m] == 0.0f, "row %zu (%s): rstd %g, expected 0", m, rpat_names[pats[m]],
                          (double)rstd[m]);
                for (size_t e = 0; e < D; e++) {
                    float want = with_bias ? bi[e] : 0.0f;
                    if (isinf(xr[e]) ? !isnan(yr[e]) : yr[e] != want) {
                        th_fail("row %zu (%s): x[%zu] = %g gives y %g, expected %g", m, rpat_names[pats[m]], e,
                                (double)xr[e], (double)yr[e], isinf(xr[e]) ? NAN : (double)want);
                        break;
                    }
                }
            }
        }
    }
    th_set_case("%s", saved);
    free(x); free(y); free(sc); free(bi);
}

/* Row lengths: 1, a prime, longer than a work-group, and one long enough
 * that AUTO splits it across work-groups (plan.c: len >= 65536 with fewer
 * rows than two per compute unit); SPLIT splits every length over 4096. */
START_TEST(rms_inf_rows)
{
    clnorm_ctx *ctx = th_ctx();
    static const size_t Ds[] = {1, 37, 1031, 70001};
    th_begin();
    unsigned rot = 0;
    TH_FOR_EACH_VARIANT(ctx, vi) {
        th_set_case("variant=%s", th_variant_str(th_variants[vi]));
        for (size_t di = 0; di < NELEM(Ds); di++) {
            size_t D = Ds[di];
            int pats[R_PATTERNS], M = 0;
            for (int p = 0; p < R_PATTERNS; p++)
                if (D > 1 || (p != R_BOTH && p != R_INF_NAN)) /* one element holds one value */
                    pats[M++] = p;
            /* long rows: three per call, so that AUTO takes the split path */
            size_t per = D >= 65536 ? 3 : (size_t)M;
            for (size_t m0 = 0; m0 < (size_t)M; m0 += per, rot++) {
                size_t cnt = (size_t)M - m0 < per ? (size_t)M - m0 : per;
                rms_inf_call(ctx, D, pats + m0, cnt, rot % 2 ? 1e-5f : 0.0f, (rot / 2) % 2 == 0);
            }
        }
    }
    th_finish();
}
END_TEST

/* ------------------------------------------------------------------ */
/* constant sets with eps = 0                                          */
/* ------------------------------------------------------------------ */

enum { S_CONST, S_NORMAL, S_ZERO, S_NAN, S_INF, S_CONST_NEG, S_KINDS };
static const char *const skind_names[] = {"constant", "normal", "zeros", "NaN", "Inf", "constant<0"};

/* x: normal everywhere, then set s gets kind kinds[s]. Constants are k/4,
 * exact in float and in any sum. */
static void fill_sets(th_rng *r, const clnorm_desc *d, float *x, unsigned char *kinds)
{
    size_t E = ref_elements(d), sets = ref_sets(d);
    th_fill_normal(r, x, E, 1.0, 2.0);
    unsigned off = (unsigned)th_rng_below(r, S_KINDS);
    for (size_t s = 0; s < sets; s++) {
        int k = (int)((s + off) % S_KINDS);
        kinds[s] = (unsigned char)k;
        switch (k) {
        case S_CONST: fill_set(d, x, s, (float)(1 + th_rng_below(r, 15)) / 4.0f); break;
        case S_CONST_NEG: fill_set(d, x, s, -(float)(1 + th_rng_below(r, 60)) / 4.0f); break;
        case S_ZERO: fill_set(d, x, s, 0.0f); break;
        case S_NAN: put_at(d, x, s, th_rng_below(r, 1000), NAN); break;
        case S_INF: put_at(d, x, s, th_rng_below(r, 1000), th_rng_below(r, 2) ? INFINITY : -INFINITY); break;
        default: break;
        }
    }
}

/* One call with eps = 0 on sets of every kind: the reference comparison,
 * then the rule stated directly. rstd_zero: BatchNorm/InstanceNorm (y =
 * bias, rstd 0) or LayerNorm/GroupNorm (y NaN, rstd +Inf). */
static void const_eps0_call(clnorm_ctx *ctx, clnorm_desc d, int running)
{
    uint64_t seed = th_next_seed();
    th_rng r;
    th_rng_init(&r, seed);
    d.eps = 0.0f;
    const int rstd_zero = d.op == CLNORM_BATCH_NORM || d.op == CLNORM_INSTANCE_NORM;
    size_t E = ref_elements(&d), sets = ref_sets(&d), aff = ref_affine_len(&d), C = d.c ? d.c : 1;
    float *x = malloc(E * 4), *y = malloc(E * 4), *sc = malloc(aff * 4), *bi = malloc(aff * 4);
    float *mean = malloc(sets * 4), *rstd = malloc(sets * 4), *rm = malloc(C * 4), *rv = malloc(C * 4),
          *orm = malloc(C * 4), *orv = malloc(C * 4);
    unsigned char *kinds = malloc(sets);
    fill_sets(&r, &d, x, kinds);
    th_gen_inputs(&r, &d, TH_NORMAL, NULL, sc, bi, rm, rv);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", th_case_name());
    th_set_case("%s %s eps=0 running=%d seed=%llu", saved, shape_str(&d), running, (unsigned long long)seed);
    th_inputs in = {x, sc, bi, running ? rm : NULL, running ? rv : NULL};
    th_outputs out = {y, mean, rstd, running ? orm : NULL, running ? orv : NULL};
    if (th_run_ok(ctx, &d, &in, &out, 0, 1) == CLNORM_OK) {
        unsigned long bad = 0;
        for (size_t i = 0; i < E && bad < 3; i++) {
            size_t s, a, ch;
            ref_locate(&d, i, &s, &a, &ch);
            int k = kinds[s];
            if (k == S_NAN || k == S_INF) {
                if (!isnan(y[i]))
                    bad++, th_fail("set %zu (%s): y[%zu] = %g, expected NaN", s, skind_names[k], i, (double)y[i]);
            } else if (k != S_NORMAL) {
                if (rstd_zero ? y[i] != bi[a] : !isnan(y[i]))
                    bad++, th_fail("set %zu (%s): y[%zu] = %g, expected %g", s, skind_names[k], i, (double)y[i],
                                   rstd_zero ? (double)bi[a] : NAN);
            }
        }
        for (size_t s = 0; s < sets; s++) {
            int k = kinds[s];
            if (k == S_NAN || k == S_INF) {
                TH_EXPECT(isnan(rstd[s]) && isnan(mean[s]), "set %zu (%s): mean %g rstd %g, expected NaN", s,
                          skind_names[k], (double)mean[s], (double)rstd[s]);
            } else if (k != S_NORMAL) {
                float v = 0.0f;
                for (size_t i = 0; i < E; i++) {
                    size_t ss, a, ch;
                    ref_locate(&d, i, &ss, &a, &ch);
                    if (ss == s) { v = x[i]; break; }
                }
                TH_EXPECT(mean[s] == v, "set %zu (%s): mean %g, expected %g", s, skind_names[k], (double)mean[s],
                          (double)v);
                TH_EXPECT(rstd_zero ? rstd[s] == 0.0f : rstd[s] == INFINITY,
                          "set %zu (%s): rstd %g, expected %s", s, skind_names[k], (double)rstd[s],
                          rstd_zero ? "0" : "+Inf");
            }
        }
    }
    th_set_case("%s", saved);
    free(x); free(y); free(sc); free(bi); free(mean); free(rstd); free(rm); free(rv); free(orm); free(orv);
    free(kinds);
}

/* BatchNorm (training) in both layouts, rank 0 and 2, short planes (the
 * column path) and long ones (row partials); InstanceNorm (training, with
 * and without tracked statistics) in both layouts, including a shape where
 * CPUs take the wave pipeline (channels-last, C % 16 == 0, 1 MiB samples). */
START_TEST(bn_in_constant_eps0)
{
    clnorm_ctx *ctx = th_ctx();
    static const th_shape bn_shapes[] = {{6, 7, 0, {0}}, {4, 6, 2, {3, 5}}, {2, 6, 2, {40, 50}}, {3, 5, 1, {9}}};
    static const th_shape in_shapes[] = {{3, 4, 2, {5, 7}}, {2, 3, 1, {5000}}, {4, 6, 1, {2}}};
    static const th_shape wave_shape = {2, 16, 2, {128, 128}};
    th_begin();
    unsigned rot = 0;
    TH_FOR_EACH_VARIANT(ctx, vi) {
        th_set_case("variant=%s", th_variant_str(th_variants[vi]));
        for (int lay = 0; lay < 2; lay++) {
            for (size_t i = 0; i < NELEM(bn_shapes); i++)
                const_eps0_call(ctx, th_shape_desc(CLNORM_BATCH_NORM, (clnorm_layout)lay, &bn_shapes[i]),
                                (rot++ % 3) != 0);
            for (size_t i = 0; i < NELEM(in_shapes); i++)
                const_eps0_call(ctx, th_shape_desc(CLNORM_INSTANCE_NORM, (clnorm_layout)lay, &in_shapes[i]),
                                rot++ % 2);
        }
        if (vi == 0 || th_variants[vi].v == CLNORM_VARIANT_WI)
            const_eps0_call(ctx, th_shape_desc(CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_LAST, &wave_shape), 1);
    }
    th_finish();
}
END_TEST

/* LayerNorm and GroupNorm keep PyTorch's NaN (rstd = +Inf) on constant sets
 * with eps = 0. */
START_TEST(ln_gn_constant_eps0)
{
    clnorm_ctx *ctx = th_ctx();
    static const size_t Ds[] = {2, 37, 1031, 70001};
    static const th_shape gn_shapes[] = {{2, 6, 2, {4, 4}}, {3, 12, 1, {1}}, {2, 4, 1, {3000}}};
    th_begin();
    TH_FOR_EACH_VARIANT(ctx, vi) {
        th_set_case("variant=%s", th_variant_str(th_variants[vi]));
        for (size_t di = 0; di < NELEM(Ds); di++) {
            clnorm_desc d;
            clnorm_desc_init(&d, CLNORM_LAYER_NORM);
            d.rows = Ds[di] >= 65536 ? 3 : S_KINDS;
            d.cols = Ds[di];
            const_eps0_call(ctx, d, 0);
        }
        for (int lay = 0; lay < 2; lay++)
            for (size_t i = 0; i < NELEM(gn_shapes); i++) {
                clnorm_desc d = th_shape_desc(CLNORM_GROUP_NORM, (clnorm_layout)lay, &gn_shapes[i]);
                d.groups = gn_shapes[i].c / 2;
                const_eps0_call(ctx, d, 0);
            }
    }
    th_finish();
}
END_TEST

/* ------------------------------------------------------------------ */
/* running_var_biased                                                  */
/* ------------------------------------------------------------------ */

/* The running statistics SPEC.md states, computed here from scratch in
 * double (not through ref_forward): per set mean and biased variance, then
 * the channel's batch mean and (un)biased variance. */
static void expected_running(const clnorm_desc *d, const float *x, const float *rm, const float *rv, double *erm,
                             double *erv)
{
    size_t E = ref_elements(d), sets = ref_sets(d), cnt = ref_count_per_set(d), C = d->c;
    double *m = calloc(sets, sizeof *m), *q = calloc(sets, sizeof *q);
    for (size_t i = 0; i < E; i++) {
        size_t s, a, ch;
        ref_locate(d, i, &s, &a, &ch);
        m[s] += x[i];
    }
    for (size_t s = 0; s < sets; s++)
        m[s] /= (double)cnt;
    for (size_t i = 0; i < E; i++) {
        size_t s, a, ch;
        ref_locate(d, i, &s, &a, &ch);
        q[s] += (x[i] - m[s]) * (x[i] - m[s]);
    }
    const double mom = d->momentum, f = d->running_var_biased ? 1.0 : (double)cnt / (double)(cnt - 1);
    for (size_t c = 0; c < C; c++) {
        double bm = 0, bv = 0;
        size_t navg = d->op == CLNORM_BATCH_NORM ? 1 : d->n;
        for (size_t k = 0; k < navg; k++) {
            size_t s = d->op == CLNORM_BATCH_NORM ? c : k * C + c;
            bm += m[s];
            bv += q[s] / (double)cnt * f;
        }
        erm[c] = (1 - mom) * rm[c] + mom * bm / (double)navg;
        erv[c] = (1 - mom) * rv[c] + mom * bv / (double)navg;
    }
    free(m);
    free(q);
}

START_TEST(running_var_biased)
{
    clnorm_ctx *ctx = th_ctx();
    struct {
        clnorm_op op;
        clnorm_layout lay;
        th_shape s;
    } cases[] = {
        {CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, {3, 5, 0, {0}}},       /* count 3 */
        {CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, {2, 4, 2, {3, 5}}},    /* short planes: columns */
        {CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, {2, 3, 1, {5000}}},    /* long planes: row partials */
        {CLNORM_BATCH_NORM, CLNORM_CHANNELS_LAST, {4, 6, 2, {2, 3}}},
        {CLNORM_BATCH_NORM, CLNORM_CHANNELS_LAST, {1, 3, 1, {2}}},        /* count 2 */
        {CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_FIRST, {3, 4, 1, {3}}},    /* count 3 */
        {CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_FIRST, {2, 3, 2, {40, 50}}},
        {CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_LAST, {4, 5, 2, {2, 2}}},
        {CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_LAST, {2, 16, 2, {128, 128}}}, /* CPU wave pipeline */
    };
    static const float moms[] = {0.25f, 1.0f, 0.1f};
    th_begin();
    unsigned rot = 0;
    TH_FOR_EACH_VARIANT(ctx, vi) {
        for (size_t i = 0; i < NELEM(cases); i++) {
            if (cases[i].s.s[0] == 128 && !(vi == 0 || th_variants[vi].v == CLNORM_VARIANT_WI))
                continue; /* the large case only where it takes the wave pipeline */
            for (int biased = 0; biased < 2; biased++, rot++) {
                clnorm_desc d = th_shape_desc(cases[i].op, cases[i].lay, &cases[i].s);
                d.momentum = moms[rot % NELEM(moms)];
                d.eps = rot % 2 ? 1e-5f : 0.0f;
                d.running_var_biased = biased;
                uint64_t seed = th_next_seed();
                th_rng r;
                th_rng_init(&r, seed);
                size_t E = ref_elements(&d), C = d.c, sets = ref_sets(&d);
                float *x = malloc(E * 4), *y = malloc(E * 4), *mean = malloc(sets * 4), *rstd = malloc(sets * 4);
                float sc[16], bi[16], rm[16], rv[16], orm[16], orv[16];
                double erm[16], erv[16];
                th_gen_inputs(&r, &d, TH_NORMAL, NULL, sc, bi, rm, rv);
                th_fill_normal(&r, x, E, 0.5, 2.0);
                th_set_case("variant=%s %s running_var_biased=%d momentum=%g eps=%g seed=%llu",
                            th_variant_str(th_variants[vi]), shape_str(&d), biased, (double)d.momentum,
                            (double)d.eps, (unsigned long long)seed);
                th_inputs in = {x, sc, bi, rm, rv};
                th_outputs out = {y, mean, rstd, orm, orv};
                if (th_run_ok(ctx, &d, &in, &out, 0, 1) == CLNORM_OK) {
                    expected_running(&d, x, rm, rv, erm, erv);
                    for (size_t c = 0; c < C; c++) {
                        TH_EXPECT(th_close(erv[c], orv[c], 2e-5 * (fabs(erv[c]) + 1)),
                                  "running_var[%zu] = %.9g, expected %.9g", c, (double)orv[c], erv[c]);
                        TH_EXPECT(th_close(erm[c], orm[c], 2e-5 * (fabs(erm[c]) + 1)),
                                  "running_mean[%zu] = %.9g, expected %.9g", c, (double)orm[c], erm[c]);
                    }
                }
                free(x); free(y); free(mean); free(rstd);
            }
        }
    }
    th_finish();
}
END_TEST

/* Any running_var_biased other than 0 and 1 is rejected before anything is
 * written (th_run checks every buffer byte for byte on a rejection), with a
 * message, whatever the op. */
START_TEST(running_var_biased_rejected)
{
    clnorm_ctx *ctx = th_ctx();
    static const int bad[] = {2, -1, 7};
    static const th_shape s = {2, 3, 1, {5}};
    th_begin();
    for (size_t b = 0; b < NELEM(bad); b++)
        for (int opi = 0; opi < 4; opi++) {
            static const clnorm_op ops[] = {CLNORM_BATCH_NORM, CLNORM_INSTANCE_NORM, CLNORM_LAYER_NORM,
                                            CLNORM_BATCH_NORM};
            clnorm_desc d = th_shape_desc(ops[opi], (clnorm_layout)(opi % 2), &s);
            if (ops[opi] == CLNORM_LAYER_NORM) {
                clnorm_desc_init(&d, CLNORM_LAYER_NORM);
                d.rows = 3;
                d.cols = 10;
            }
            if (opi == 3) d.training = 0; /* BatchNorm inference: no update, still rejected */
            d.running_var_biased = bad[b];
            int running = ops[opi] != CLNORM_LAYER_NORM;
            size_t E = ref_elements(&d);
            float x[64], y[64], sc[16], bi[16], rm[16] = {0}, rv[16], mean[16], rstd[16], orm[16], orv[16];
            th_rng r;
            th_rng_init(&r, th_next_seed());
            th_fill_normal(&r, x, E, 0, 1);
            th_fill_normal(&r, sc, 16, 1, 0.5);
            th_fill_normal(&r, bi, 16, 0, 1);
            th_fill_uniform(&r, rv, 16, 0.5, 2);
            th_inputs in = {x, sc, bi, running ? rm : NULL, running ? rv : NULL};
            th_outputs out = {y, d.training ? mean : NULL, d.training ? rstd : NULL, orm, orv};
            th_set_case("running_var_biased=%d %s training=%d", bad[b], shape_str(&d), d.training);
            TH_EXPECT(ref_forward(&d, x, sc, bi, in.running_mean, in.running_var, NULL, NULL, NULL, NULL, NULL) != 0,
                      "the reference accepts it");
            int st = th_run(ctx, &d, &in, &out, 0);
            TH_EXPECT(st == CLNORM_ERR_UNSUPPORTED, "status %d (%s), expected CLNORM_ERR_UNSUPPORTED; message: %s",
                      st, clnorm_status_name(st), clnorm_last_error(ctx));
            TH_EXPECT(strstr(clnorm_last_error(ctx), "running_var_biased") != NULL,
                      "message does not name running_var_biased: \"%s\"", clnorm_last_error(ctx));
            st = th_run(ctx, &d, &in, &out, TH_IN_PLACE);
            TH_EXPECT(st == CLNORM_ERR_UNSUPPORTED, "in place: status %d (%s)", st, clnorm_status_name(st));
        }
    th_finish();
}
END_TEST

/* ------------------------------------------------------------------ */
/* the reference against values worked out by hand                    */
/* ------------------------------------------------------------------ */

/* Each case is a PyTorch call; the expected numbers were worked out by hand
 * from SPEC.md's formulas, in double with Python's float arithmetic (no
 * numpy), eps as its float32 value 9.999999747378752e-06 (clnorm's eps is a
 * float), e.g. 1 / math.sqrt(1 + 9.999999747378752e-06). PyTorch computes
 * in float32, so it agrees with them to float rounding. Momenta are powers
 * of two so that they are exact in float. */
#define HMAX 8
typedef struct hand {
    const char *what;
    clnorm_op op;
    clnorm_layout lay;
    size_t n_or_rows, c_or_cols;
    unsigned rank;
    size_t s0, groups;
    float eps, momentum;
    int biased;
    int has_scale, has_bias, has_running;
    float x[HMAX], scale[HMAX], bias[HMAX], rm[HMAX], rv[HMAX];
    double y[HMAX], mean[HMAX], rstd[HMAX], rm_out[HMAX], rv_out[HMAX];
} hand;

#define EPS5 1e-5f
static const hand hands[] = {
    /* F.batch_norm(torch.tensor([[1., 2.], [3., 4.]]), rm=zeros(2), rv=ones(2), training=True,
     * momentum=0.25, eps=1e-5): per channel values (1, 3) and (2, 4), mean 2 and 3, biased var 1
     * (unbiased 2), y = -+1/sqrt(1 + eps); torch.native_batch_norm's save_invstd = 1/sqrt(1 + eps);
     * running_mean = 0.75*0 + 0.25*mean = (0.5, 0.75); running_var = 0.75*1 + 0.25*2 = 1.25. */
    {"BN [[1,2],[3,4]] PyTorch", CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, 2, 2, 0, 0, 0, EPS5, 0.25f, 0, 0, 0, 1,
     {1, 2, 3, 4}, {0}, {0}, {0, 0}, {1, 1},
     {-0.9999950000376261, -0.9999950000376261, 0.9999950000376261, 0.9999950000376261}, {2, 3},
     {0.9999950000376261, 0.9999950000376261}, {0.5, 0.75}, {1.25, 1.25}},
    /* The same as ONNX BatchNormalization-15 (training_mode=1, momentum=0.75): running_var =
     * 0.75*1 + 0.25*biased var 1 = 1.0; everything else as above. */
    {"BN [[1,2],[3,4]] ONNX", CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, 2, 2, 0, 0, 0, EPS5, 0.25f, 1, 0, 0, 1,
     {1, 2, 3, 4}, {0}, {0}, {0, 0}, {1, 1},
     {-0.9999950000376261, -0.9999950000376261, 0.9999950000376261, 0.9999950000376261}, {2, 3},
     {0.9999950000376261, 0.9999950000376261}, {0.5, 0.75}, {1.0, 1.0}},
    /* F.batch_norm(torch.tensor([[5., 1.], [5., 3.]]), None, None, weight=[2, 3], bias=[0.5, -1],
     * training=True, eps=0): channel 0 is constant, var 0, invstd 0 (PyTorch), y = bias = 0.5;
     * channel 1: mean 2, var 1, invstd 1, y = (1-2)*3 - 1 = -4 and (3-2)*3 - 1 = 2. */
    {"BN constant channel eps=0", CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, 2, 2, 0, 0, 0, 0.0f, 0.1f, 0, 1, 1, 0,
     {5, 1, 5, 3}, {2, 3}, {0.5f, -1}, {0}, {0}, {0.5, -4, 0.5, 2}, {5, 2}, {0, 1}, {0}, {0}},
    /* F.instance_norm(torch.tensor([[[1., 2., 3.]], [[2., 4., 6.]]]), rm=zeros(1), rv=ones(1),
     * use_input_stats=True, momentum=0.25, eps=1e-5): instances mean 2 and 4, biased var 2/3 and 8/3
     * (unbiased 1 and 4); y = (x - mean)/sqrt(var + eps); running_mean = 0.25 * (2+4)/2 = 0.75,
     * running_var = 0.75 + 0.25 * (1+4)/2 = 1.375. */
    {"IN tracked PyTorch", CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_FIRST, 2, 1, 1, 3, 0, EPS5, 0.25f, 0, 0, 0, 1,
     {1, 2, 3, 2, 4, 6}, {0}, {0}, {0}, {1},
     {-1.2247356859086223, 0, 1.2247356859086223, -1.2247425750014718, 0, 1.2247425750014718}, {2, 4},
     {1.2247356859086223, 0.6123712875007359}, {0.75}, {1.375}},
    /* The same with the biased update: running_var = 0.75 + 0.25 * (2/3 + 8/3)/2 = 1.1666666666666667. */
    {"IN tracked biased", CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_FIRST, 2, 1, 1, 3, 0, EPS5, 0.25f, 1, 0, 0, 1,
     {1, 2, 3, 2, 4, 6}, {0}, {0}, {0}, {1},
     {-1.2247356859086223, 0, 1.2247356859086223, -1.2247425750014718, 0, 1.2247425750014718}, {2, 4},
     {1.2247356859086223, 0.6123712875007359}, {0.75}, {1.1666666666666667}},
    /* F.instance_norm(torch.tensor([[[7., 7.], [1., 2.]]]), weight=[3, 1], bias=[0.25, -0.5], eps=0):
     * instance (0, 0) is constant: invstd 0, y = 0.25; (0, 1): mean 1.5, var 0.25, invstd 2,
     * y = (1-1.5)*2*1 - 0.5 = -1.5 and 0.5. */
    {"IN constant instance eps=0", CLNORM_INSTANCE_NORM, CLNORM_CHANNELS_FIRST, 1, 2, 1, 2, 0, 0.0f, 0.1f, 0, 1, 1, 0,
     {7, 7, 1, 2}, {3, 1}, {0.25f, -0.5f}, {0}, {0}, {0.25, 0.25, -1.5, 0.5}, {7, 1.5}, {0, 2}, {0}, {0}},
    /* F.layer_norm(torch.tensor([[1., 2., 3., 4.]]), [4], eps=1e-5): mean 2.5, var 1.25,
     * rstd = 1/sqrt(1.25 + eps) = 0.8944236133127084, y = (x - 2.5) * rstd. */
    {"LN [1,2,3,4]", CLNORM_LAYER_NORM, CLNORM_CHANNELS_FIRST, 1, 4, 0, 0, 0, EPS5, 0.1f, 0, 0, 0, 0,
     {1, 2, 3, 4}, {0}, {0}, {0}, {0},
     {-1.3416354199690625, -0.4472118066563542, 0.4472118066563542, 1.3416354199690625}, {2.5},
     {0.8944236133127084}, {0}, {0}},
    /* F.layer_norm(torch.tensor([[3., 3.]]), [2], eps=0): var 0, rstd +Inf (native_layer_norm),
     * y = 0 * Inf = NaN. */
    {"LN constant eps=0", CLNORM_LAYER_NORM, CLNORM_CHANNELS_FIRST, 1, 2, 0, 0, 0, 0.0f, 0.1f, 0, 0, 0, 0,
     {3, 3}, {0}, {0}, {0}, {0}, {NAN, NAN}, {3}, {INFINITY}, {0}, {0}},
    /* F.rms_norm(torch.tensor([[1., 2., 3., 4.]]), [4], eps=0): mean(x^2) = 7.5, rstd =
     * 1/sqrt(7.5) = 0.3651483716701107, y = x * rstd. */
    {"RMS [1,2,3,4]", CLNORM_RMS_NORM, CLNORM_CHANNELS_FIRST, 1, 4, 0, 0, 0, 0.0f, 0.1f, 0, 0, 0, 0,
     {1, 2, 3, 4}, {0}, {0}, {0}, {0},
     {0.3651483716701107, 0.7302967433402214, 1.0954451150103321, 1.4605934866804429}, {0},
     {0.3651483716701107}, {0}, {0}},
    /* F.rms_norm(torch.tensor([[1., inf, -2.]]), [3], weight=[2, 2, 2], eps=1e-5): mean(x^2) = Inf,
     * rsqrt = 0, y = (1*0*2, inf*0*2, -2*0*2) = (0, NaN, -0). */
    {"RMS with +Inf", CLNORM_RMS_NORM, CLNORM_CHANNELS_FIRST, 1, 3, 0, 0, 0, EPS5, 0.1f, 0, 1, 0, 0,
     {1, INFINITY, -2}, {2, 2, 2}, {0}, {0}, {0}, {0, NAN, 0}, {0}, {0}, {0}, {0}},
    /* F.rms_norm(torch.tensor([[-inf, 3., nan]]), [3]): NaN in the row, NaN throughout. */
    {"RMS with -Inf and NaN", CLNORM_RMS_NORM, CLNORM_CHANNELS_FIRST, 1, 3, 0, 0, 0, EPS5, 0.1f, 0, 0, 0, 0,
     {-INFINITY, 3, NAN}, {0}, {0}, {0}, {0}, {NAN, NAN, NAN}, {0}, {NAN}, {0}, {0}},
    /* F.group_norm(torch.tensor([[[3., 3.], [3., 3.]]]), 1, eps=0): var 0, rstd +Inf, y NaN. */
    {"GN constant eps=0", CLNORM_GROUP_NORM, CLNORM_CHANNELS_FIRST, 1, 2, 1, 2, 1, 0.0f, 0.1f, 0, 0, 0, 0,
     {3, 3, 3, 3}, {0}, {0}, {0}, {0}, {NAN, NAN, NAN, NAN}, {3}, {INFINITY}, {0}, {0}},
};

/* Relative closeness for the hand values. */
static int near(double want, double got, double rel) { return th_close(want, got, rel * (fabs(want) + 1e-3)); }

static clnorm_desc hand_desc(const hand *h)
{
    clnorm_desc d;
    clnorm_desc_init(&d, h->op);
    if (h->op == CLNORM_LAYER_NORM || h->op == CLNORM_RMS_NORM) {
        d.rows = h->n_or_rows;
        d.cols = h->c_or_cols;
    } else {
        d.layout = h->lay;
        d.n = h->n_or_rows;
        d.c = h->c_or_cols;
        d.rank = h->rank;
        d.spatial[0] = h->s0;
        d.groups = h->groups ? h->groups : 1;
    }
    d.eps = h->eps;
    d.momentum = h->momentum;
    d.running_var_biased = h->biased;
    return d;
}

/* which: 0 the reference (rel 1e-12), 1 the library (float32: rel 1e-6). */
static void check_hand(const hand *h, int lib, const float *y, const float *mean, const float *rstd,
                       const float *rmo, const float *rvo, const double *dy, const double *dmean,
                       const double *drstd, const double *drm, const double *drv)
{
    clnorm_desc d = hand_desc(h);
    size_t E = ref_elements(&d), sets = ref_sets(&d), C = h->has_running ? d.c : 0;
    double rel = lib ? 1e-6 : 1e-12;
    for (size_t i = 0; i < E; i++) {
        double g = lib ? y[i] : dy[i];
        TH_EXPECT(near(h->y[i], g, rel), "y[%zu] = %.17g, expected %.17g", i, g, h->y[i]);
        if (h->y[i] == 0 && !isnan(g))
            TH_EXPECT(g == 0, "y[%zu] = %.17g, expected 0", i, g);
    }
    for (size_t s = 0; s < sets; s++) {
        if (h->op != CLNORM_RMS_NORM) {
            double g = lib ? mean[s] : dmean[s];
            TH_EXPECT(near(h->mean[s], g, rel), "mean[%zu] = %.17g, expected %.17g", s, g, h->mean[s]);
        }
        double g = lib ? rstd[s] : drstd[s];
        TH_EXPECT(near(h->rstd[s], g, rel), "rstd[%zu] = %.17g, expected %.17g", s, g, h->rstd[s]);
        if (h->rstd[s] == 0)
            TH_EXPECT(g == 0, "rstd[%zu] = %.17g, expected exactly 0", s, g);
    }
    for (size_t c = 0; c < C; c++) {
        double gm = lib ? rmo[c] : drm[c], gv = lib ? rvo[c] : drv[c];
        TH_EXPECT(near(h->rm_out[c], gm, rel), "running_mean[%zu] = %.17g, expected %.17g", c, gm, h->rm_out[c]);
        TH_EXPECT(near(h->rv_out[c], gv, rel), "running_var[%zu] = %.17g, expected %.17g", c, gv, h->rv_out[c]);
    }
}

START_TEST(reference_hand_values)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    for (size_t k = 0; k < NELEM(hands); k++) {
        const hand *h = &hands[k];
        clnorm_desc d = hand_desc(h);
        const float *sc = h->has_scale ? h->scale : NULL, *bi = h->has_bias ? h->bias : NULL;
        const float *rm = h->has_running ? h->rm : NULL, *rv = h->has_running ? h->rv : NULL;
        double dy[HMAX], dmean[HMAX], drstd[HMAX], drm[HMAX], drv[HMAX];
        th_set_case("hand: %s (reference)", h->what);
        int rr = ref_forward(&d, h->x, sc, bi, rm, rv, dy, dmean, drstd, drm, drv);
        TH_EXPECT(rr == 0, "the reference rejects it (%d)", rr);
        if (rr == 0)
            check_hand(h, 0, NULL, NULL, NULL, NULL, NULL, dy, dmean, drstd, drm, drv);
        th_set_case("hand: %s (library)", h->what);
        float y[HMAX], mean[HMAX], rstd[HMAX], rmo[HMAX], rvo[HMAX];
        th_inputs in = {h->x, sc, bi, rm, rv};
        th_outputs out = {y, h->op == CLNORM_RMS_NORM ? NULL : mean, rstd, rmo, rvo};
        /* on every variant: tiny sets take the same kernels as large ones */
        TH_FOR_EACH_VARIANT(ctx, vi) {
            th_set_case("hand: %s (library, variant=%s)", h->what, th_variant_str(th_variants[vi]));
            if (th_run_ok(ctx, &d, &in, &out, 0, 0) != CLNORM_OK)
                continue;
            check_hand(h, 1, y, mean, rstd, rmo, rvo, NULL, NULL, NULL, NULL, NULL);
        }
    }
    th_finish();
}
END_TEST

TH_MAIN("semantics", 0, TH_TEST(reference_hand_values), TH_TEST(running_var_biased_rejected),
        TH_TEST(rms_inf_rows), TH_TEST(bn_in_constant_eps0), TH_TEST(ln_gn_constant_eps0), TH_TEST(running_var_biased))
