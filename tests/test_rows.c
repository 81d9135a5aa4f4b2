/*
 * LayerNorm and RMSNorm forward against the double-precision reference
 * (issue 2's matrix), on every kernel variant, with guarded and poisoned
 * buffers at non-zero offsets; determinism; in place; the naive
 * E[x^2]-E[x]^2 formula is rejected by the tolerances.
 */
#include "th_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t Ds[] = {1, 2, 3, 7, 31, 64, 127, 256, 1000, 4096, 65537, 1048576};
static const size_t Ms[] = {1, 3, 64, 1000};
static const float epss[] = {0.0f, 1e-5f, 1.0f};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Size classes keep the suite within its time budget on a 2-core PoCL
 * machine: small shapes get every data kind on every variant; medium ones
 * every kind on AUTO and two rotating kinds elsewhere; the large ones
 * (over 1.1M elements) run on AUTO, SPLIT and WG only, two kinds each. */
#define SMALL_ELEMS ((size_t)1 << 16)
#define LARGE_ELEMS ((size_t)1100000)
#define MAX_ELEMS ((size_t)4300000)

static void run_matrix(clnorm_op op, int vi)
{
    clnorm_ctx *ctx = th_ctx();
    th_variant v = th_variants[vi];
    th_begin();
    if (!th_variant_select(ctx, (size_t)vi))
        return; /* not enabled (CLNORM_TEST_VARIANTS) */
    unsigned rot = (unsigned)vi * 5u; /* rotates eps/flags/kinds so variants see different combinations */
    for (size_t di = 0; di < NELEM(Ds); di++) {
        for (size_t mi = 0; mi < NELEM(Ms); mi++) {
            size_t D = Ds[di], M = Ms[mi], E = D * M;
            if (E > MAX_ELEMS)
                continue;
            int large = E > LARGE_ELEMS, small = E <= SMALL_ELEMS;
            if (large && !(v.v == CLNORM_VARIANT_AUTO || (v.v == CLNORM_VARIANT_SPLIT && v.wgs == 0) ||
                           (v.v == CLNORM_VARIANT_WG && v.wgs == 0)))
                continue;
            int nk = (small || v.v == CLNORM_VARIANT_AUTO) && !large ? TH_KIND_COUNT : 2;
            for (int k = 0; k < nk; k++, rot++) {
                th_kind kind = nk == TH_KIND_COUNT ? (th_kind)k : (th_kind)((rot * 7u + k) % TH_KIND_COUNT);
                th_case c;
                th_case_rows(&c, op, M, D);
                c.eps = epss[rot % 3];
                c.kind = kind;
                c.scale = (rot / 3) & 1;
                c.bias = (rot / 6) & 1;
                c.stats = ((rot / 12) & 3) != 0; /* mostly with stats */
                c.flags = (rot % 11 == 3) ? TH_IN_PLACE : 0;
                th_set_case("variant=%s", th_variant_str(v));
                th_check_case(ctx, &c);
            }
        }
    }
    clnorm_set_variant(ctx, CLNORM_VARIANT_AUTO, 0);
    th_finish();
}

START_TEST(ln_matrix) { run_matrix(CLNORM_LAYER_NORM, _i); }
END_TEST

START_TEST(rms_matrix) { run_matrix(CLNORM_RMS_NORM, _i); }
END_TEST

/* Every flag combination (scale, bias, stats) x every eps on a fixed shape and
 * every variant, so no combination depends on the rotation above. */
START_TEST(flags_eps_all_combinations)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    TH_FOR_EACH_VARIANT(ctx, vi) {
        for (int op = CLNORM_LAYER_NORM; op <= CLNORM_RMS_NORM; op++)
            for (unsigned f = 0; f < 8; f++)
                for (size_t e = 0; e < NELEM(epss); e++) {
                    th_case c;
                    th_case_rows(&c, (clnorm_op)op, 5, 300);
                    c.eps = epss[e];
                    c.kind = (th_kind)((f + e) % TH_KIND_COUNT);
                    c.scale = f & 1;
                    c.bias = (f >> 1) & 1;
                    c.stats = (f >> 2) & 1;
                    th_set_case("variant=%s", th_variant_str(th_variants[vi]));
                    th_check_case(ctx, &c);
                }
    }
    th_finish();
}
END_TEST

/* y == x (same buffer, same offset) on every variant, including split rows. */
START_TEST(in_place)
{
    clnorm_ctx *ctx = th_ctx();
    static const size_t shapes[][2] = {{3, 7}, {64, 1000}, {1, 65537}, {1000, 31}, {2, 300000}};
    th_begin();
    TH_FOR_EACH_VARIANT(ctx, vi) {
        for (size_t s = 0; s < NELEM(shapes); s++)
            for (int op = CLNORM_LAYER_NORM; op <= CLNORM_RMS_NORM; op++) {
                th_case c;
                th_case_rows(&c, (clnorm_op)op, shapes[s][0], shapes[s][1]);
                c.kind = (th_kind)((s + vi) % TH_KIND_COUNT);
                c.scale = c.bias = c.stats = 1;
                c.flags = TH_IN_PLACE;
                th_set_case("variant=%s", th_variant_str(th_variants[vi]));
                th_check_case(ctx, &c);
            }
    }
    th_finish();
}
END_TEST

/* The same input twice gives identical bits (y, mean, rstd), per variant. */
START_TEST(determinism)
{
    clnorm_ctx *ctx = th_ctx();
    static const size_t shapes[][2] = {{64, 4096}, {3, 65537}, {1000, 1000}, {1, 1048576}};
    th_begin();
    th_rng r;
    th_rng_init(&r, th_next_seed());
    TH_FOR_EACH_VARIANT(ctx, vi) {
        for (size_t s = 0; s < NELEM(shapes); s++) {
            size_t M = shapes[s][0], D = shapes[s][1], E = M * D;
            if (E > 1100000 && vi > 4)
                continue;
            clnorm_desc d;
            clnorm_desc_init(&d, s % 2 ? CLNORM_RMS_NORM : CLNORM_LAYER_NORM);
            d.rows = M;
            d.cols = D;
            float *x = malloc(E * 4), *sc = malloc(D * 4), *y1 = malloc(E * 4), *y2 = malloc(E * 4);
            float *m1 = malloc(M * 4), *m2 = malloc(M * 4), *r1 = malloc(M * 4), *r2 = malloc(M * 4);
            th_fill(&r, &d, TH_UNIFORM_1E4, x);
            th_fill_normal(&r, sc, D, 1, 0.5);
            th_inputs in = {x, sc, sc, NULL, NULL};
            int rms = d.op == CLNORM_RMS_NORM;
            th_outputs o1 = {y1, rms ? NULL : m1, r1, NULL, NULL}, o2 = {y2, rms ? NULL : m2, r2, NULL, NULL};
            th_set_case("determinism variant=%s rows=%zu cols=%zu", th_variant_str(th_variants[vi]), M, D);
            int s1 = th_run(ctx, &d, &in, &o1, 0), s2 = th_run(ctx, &d, &in, &o2, 0);
            TH_EXPECT(s1 == CLNORM_OK && s2 == CLNORM_OK, "status %d / %d", s1, s2);
            if (s1 == CLNORM_OK && s2 == CLNORM_OK) {
                TH_EXPECT(memcmp(y1, y2, E * 4) == 0, "y differs between two identical runs");
                TH_EXPECT(rms || memcmp(m1, m2, M * 4) == 0, "mean differs between two identical runs");
                TH_EXPECT(memcmp(r1, r2, M * 4) == 0, "rstd differs between two identical runs");
                th_compare(&d, &in, &o1, 1.0, 1);
            }
            free(x); free(sc); free(y1); free(y2); free(m1); free(m2); free(r1); free(r2);
        }
    }
    th_finish();
}
END_TEST

/* Every power-of-two work-group size up to the device maximum, per variant. */
START_TEST(work_group_sizes)
{
    clnorm_ctx *ctx = th_ctx();
    size_t maxwg = 0;
    clGetDeviceInfo(clnorm_device(ctx), CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof maxwg, &maxwg, NULL);
    th_begin();
    for (int v = CLNORM_VARIANT_WG; v <= CLNORM_VARIANT_SPLIT; v++) {
        for (size_t w = 2; w <= maxwg && w <= 1024; w *= 2) {
            th_variant tv = {(clnorm_variant)v, w};
            if (th_use_variant(ctx, tv) != 0)
                continue;
            th_case c;
            th_case_rows(&c, (w & 0x55) ? CLNORM_LAYER_NORM : CLNORM_RMS_NORM, 3,
                         v == CLNORM_VARIANT_SPLIT ? 20011 : 1000);
            c.kind = TH_NORMAL;
            c.scale = c.bias = c.stats = 1;
            th_set_case("variant=%s", th_variant_str(tv));
            th_check_case(ctx, &c);
        }
    }
    /* 1 is a power of two and within every device's maximum (clnorm.h) */
    TH_EXPECT(clnorm_set_variant(ctx, CLNORM_VARIANT_WG, 1) == CLNORM_OK, "work-group size 1 refused: %s",
              clnorm_last_error(ctx));
    /* not a power of two and too large requests are refused */
    TH_EXPECT(clnorm_set_variant(ctx, CLNORM_VARIANT_WG, 3) == CLNORM_ERR_INVALID_VARIANT, "wgs 3 accepted");
    TH_EXPECT(clnorm_set_variant(ctx, CLNORM_VARIANT_WG, maxwg * 2) == CLNORM_ERR_INVALID_VARIANT,
              "wgs > device max accepted");
    TH_EXPECT(clnorm_set_variant(ctx, (clnorm_variant)77, 0) == CLNORM_ERR_INVALID_VARIANT, "variant 77 accepted");
    clnorm_set_variant(ctx, CLNORM_VARIANT_AUTO, 0);
    th_finish();
}
END_TEST

/* Host float implementations, to show what the tolerances accept/reject. */
static void naive_float(const float *x, size_t M, size_t D, float eps, float *y)
{
    for (size_t r = 0; r < M; r++) {
        const float *xr = x + r * D;
        float s1 = 0.0f, s2 = 0.0f;
        for (size_t j = 0; j < D; j++) {
            s1 += xr[j];
            s2 += xr[j] * xr[j];
        }
        float mean = s1 / (float)D, var = s2 / (float)D - mean * mean; /* E[x^2] - E[x]^2 */
        float rstd = 1.0f / sqrtf(var + eps);
        for (size_t j = 0; j < D; j++)
            y[r * D + j] = (xr[j] - mean) * rstd;
    }
}

static float pairwise(const float *a, size_t n, float shift, int sq)
{
    if (n <= 8) {
        float s = 0.0f;
        for (size_t i = 0; i < n; i++) {
            float v = a[i] - shift;
            s += sq ? v * v : v;
        }
        return s;
    }
    return pairwise(a, n / 2, shift, sq) + pairwise(a + n / 2, n - n / 2, shift, sq);
}

static void two_pass_float(const float *x, size_t M, size_t D, float eps, float *y)
{
    for (size_t r = 0; r < M; r++) {
        const float *xr = x + r * D;
        /* shifted by the first element, as a careful implementation does */
        float mean = xr[0] + pairwise(xr, D, xr[0], 0) / (float)D;
        float var = pairwise(xr, D, mean, 1) / (float)D;
        float rstd = 1.0f / sqrtf(var + eps);
        for (size_t j = 0; j < D; j++)
            y[r * D + j] = (xr[j] - mean) * rstd;
    }
}

START_TEST(naive_formula_is_rejected)
{
    th_begin();
    const size_t M = 64, D = 4096, E = M * D;
    float *x = malloc(E * 4), *y = malloc(E * 4);
    th_rng r;
    for (size_t e = 0; e < 2; e++) {
        clnorm_desc d;
        clnorm_desc_init(&d, CLNORM_LAYER_NORM);
        d.rows = M;
        d.cols = D;
        d.eps = e ? 1e-5f : 0.0f;
        uint64_t seed = th_next_seed();
        th_rng_init(&r, seed);
        th_set_case("naive formula, eps=%g seed=%llu", (double)d.eps, (unsigned long long)seed);
        th_inputs in = {x, NULL, NULL, NULL, NULL};
        th_outputs out = {y, NULL, NULL, NULL, NULL};
        th_fill(&r, &d, TH_OFFSET_1E4, x);
        naive_float(x, M, D, d.eps, y);
        unsigned long bad = th_compare(&d, &in, &out, 1.0, 0);
        TH_EXPECT(bad > E / 100, "E[x^2]-E[x]^2 in float passes the tolerance on 1e4+N(0,1e-2) (%lu of %zu rejected)",
                  bad, E);
        /* and a straightforward float two-pass (pairwise sums) passes it: the
           tolerance is not unreachable */
        two_pass_float(x, M, D, d.eps, y);
        bad = th_compare(&d, &in, &out, 1.0, 1);
        TH_EXPECT(bad == 0, "a float two-pass implementation fails the tolerance (%lu mismatches)", bad);
        /* on benign data both formulas are fine; the tolerance is not simply tight everywhere */
        th_fill(&r, &d, TH_NORMAL, x);
        two_pass_float(x, M, D, d.eps, y);
        TH_EXPECT(th_compare(&d, &in, &out, 1.0, 1) == 0, "two-pass float fails on normal data");
    }
    free(x);
    free(y);
    th_finish();
}
END_TEST

/* NaN/Inf in one row: that row is all NaN (y, mean, rstd), the others exact,
 * on every variant and a long-row split shape. */
START_TEST(nan_inf_isolation)
{
    static const size_t shapes[][2] = {{3, 1}, {4, 2}, {5, 1000}, {7, 70001}};
    th_case cases[2 * NELEM(shapes)];
    for (size_t i = 0; i < NELEM(cases); i++) {
        th_case_rows(&cases[i], i % 2 ? CLNORM_RMS_NORM : CLNORM_LAYER_NORM, shapes[i / 2][0],
                     shapes[i / 2][1]);
        cases[i].scale = cases[i].bias = cases[i].stats = 1;
    }
    th_begin();
    th_nan_inf_isolation(th_ctx(), cases, NELEM(cases), 1, epss);
    th_finish();
}
END_TEST

/* Without an event: the result is there after clFinish on the queue. */
START_TEST(no_event)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    th_case c;
    th_case_rows(&c, CLNORM_LAYER_NORM, 10, 4096);
    c.scale = c.bias = c.stats = 1;
    c.flags = TH_NO_EVENT;
    th_check_case(ctx, &c);
    th_finish();
}
END_TEST

TH_MAIN("rows", 0, TH_TEST(naive_formula_is_rejected), TH_LOOP(ln_matrix, (int)th_variant_count),
        TH_LOOP(rms_matrix, (int)th_variant_count), TH_TEST(flags_eps_all_combinations), TH_TEST(in_place),
        TH_TEST(determinism), TH_TEST(work_group_sizes), TH_TEST(nan_inf_isolation), TH_TEST(no_event))
