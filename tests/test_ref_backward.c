/*
 * The backward reference (ref_backward, tests/reference.c) against central
 * finite differences of the double-precision forward (ref_forward_d), for
 * every op, both layouts, spatial ranks 0-3, per-sample affine on and off,
 * scale present and absent; plus a few cases checkable by hand.
 *
 * Needs no OpenCL device: links only the reference and Check. Fresh random
 * data per check from a seed printed on failure (CLNORM_TEST_SEED=<n> fixes
 * the base, as in the other suites).
 *
 * The finite differences. With L(x) = sum_j dy_j * y_j(x), dL/dx_i is what
 * the backward returns as dx_i (and likewise dL/dscale_k = dscale_k,
 * dL/dbias_k = dbias_k). The central difference
 *     (L(x + h e_i) - L(x - h e_i)) / 2h
 * has two errors:
 *  - truncation, h^2/6 * L''' (x_i). A set's outputs depend on x_i through
 *    xhat = (x - mean) * rstd, whose natural length is sigma = 1/rstd =
 *    sqrt(var + eps) (RMSNorm: sqrt(mean(x^2) + eps)): each x-derivative of
 *    xhat brings a factor rstd times an O(1) function of the xhat, also for
 *    count-2 sets (xhat = d / sqrt(d^2 + eps), d the half difference) and
 *    small eps. So h = delta * sigma of the element's set, and the
 *    truncation error relative to the natural size of dx_i, rstd * |g|
 *    (g = dy * scale), is about delta^2 * K / 6 with K of order 1-10.
 *  - rounding: each y_j carries a few eps_double * |y_j| of error, which
 *    the difference divides by 2h: eps_double * sum_j |dy_j y_j| / h.
 *    The difference is summed as sum_j dy_j * (y+_j - y-_j), so sets that x_i
 *    does not touch give exactly 0 and only x_i's set counts. dy and scale
 *    are drawn with 0.25 <= |dy| <= 1 and 0.5 <= |scale| <= 1.5, so
 *    |g| >= 1/8 and no set's g is tiny next to its y. With at most
 *    MAX_E = 256 elements and |y| <= 25 (|xhat| <= sqrt(count)), relative to
 *    rstd * |g| that is at most 1.1e-16 * 256 * 25 / (delta * 1/8) ~ 6e-12
 *    / delta, and typically ~100 times less (the terms do not all align).
 * delta = 1e-4 balances them: truncation ~1e-8 at most, rounding ~1e-9
 * (6e-8 at the very worst); the worst seen over 150 seeds (~150,000
 * checks) is 3e-9. TOL = 1e-6 leaves a margin of 15 over the worst-case
 * bounds and of 300 over what is seen, while a wrong formula (a term
 * dropped, a mean over the wrong count) is off by 1e-3 to 1.
 * y is linear in scale and bias: their central differences have no
 * truncation error at all, so their step is large (0.5) and only rounding,
 * ~eps_double * sum |dy y| / 0.5, remains.
 * The running-statistics modes are affine in x: no truncation error either.
 *
 * Errors are relative to the magnitude of the terms, not to the result
 * (which cancels to ~0 in e.g. a count-2 set with small eps):
 *   dx_i:     |fd - ref| / (|ref| + rstd_set * rms over the set of g)
 *   dscale_k: |fd - ref| / (|ref| + sum_{j -> k} |dy_j * xhat_j|)
 *   dbias_k:  |fd - ref| / (|ref| + sum_{j -> k} |dy_j|)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reference.h"

#define MAX_E 256      /* elements per check: keeps the 2*E forwards per check fast */
#define DELTA 1e-4     /* x step, relative to the set's sigma (see above) */
#define H_AFFINE 0.5   /* scale and bias step: y is linear in them */
#define TOL 1e-6       /* see above */

/* ---------- RNG (splitmix64) and seeds ---------- */
static uint64_t rng_state;
static uint64_t seed_base;
static unsigned long seed_counter;
static uint64_t rng_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_uniform(double lo, double hi) { return lo + (hi - lo) * (double)(rng_u64() >> 11) * 0x1.0p-53; }
static size_t rng_range(size_t lo, size_t hi) { return lo + (size_t)(rng_u64() % (hi - lo + 1)); } /* [lo, hi] */
static uint64_t next_seed(void)
{
    if (!seed_base) {
        const char *e = getenv("CLNORM_TEST_SEED");
        seed_base = e && *e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL);
        if (!seed_base)
            seed_base = 1;
    }
    uint64_t s = seed_base + seed_counter++;
    rng_state = s;
    return s;
}

/* ---------- the modes ---------- */
typedef enum {
    M_LN, M_RMS, M_BN_TRAIN, M_BN_INF, M_IN_TRAIN, M_IN_INF_RUN, M_IN_INF_BATCH, M_GN_1, M_GN_C, M_GN_MID, M_COUNT
} mode;
static const char *const mode_name[M_COUNT] = {
    "layer_norm", "rms_norm", "batch_norm training", "batch_norm inference", "instance_norm training",
    "instance_norm inference, running stats", "instance_norm inference, batch stats", "group_norm G=1",
    "group_norm G=C", "group_norm 1<G<C"};
static int is_rows(mode m) { return m == M_LN || m == M_RMS; }
static int uses_running(mode m) { return m == M_BN_INF || m == M_IN_INF_RUN; }

/* Worst relative error seen per mode: dx, dscale, dbias. */
static double worst[M_COUNT][3];
static unsigned long checks[M_COUNT];
static unsigned long failures;

static void report(const char *what, uint64_t seed, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(const char *what, uint64_t seed, const char *fmt, ...)
{
    va_list ap;
    if (++failures > 30)
        return;
    printf("FAIL %s (seed %llu; base %llu, CLNORM_TEST_SEED=%llu reruns the base): ", what,
           (unsigned long long)seed, (unsigned long long)seed_base, (unsigned long long)seed_base);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static void desc_base(clnorm_desc *d, clnorm_op op)
{
    memset(d, 0, sizeof *d);
    d->op = op;
    d->eps = 1e-5f;
    d->momentum = 0.1f;
    d->groups = 1;
    d->training = 1;
}

/* A random valid shape for mode m. want: 0 any, 1 count 2 per set, 2 an odd count >= 3 (tried for a while, else
 * any); returns 0 if none exists (InstanceNorm training at rank 0). Sizes 1..5 per dim (group_norm 1<G<C: C 4
 * or 6, the composite sizes around that range), at most MAX_E elements. */
static int gen_shape(clnorm_desc *d, mode m, int layout, unsigned rank, int psa, int want)
{
    static const clnorm_op ops[M_COUNT] = {CLNORM_LAYER_NORM, CLNORM_RMS_NORM, CLNORM_BATCH_NORM, CLNORM_BATCH_NORM,
                                           CLNORM_INSTANCE_NORM, CLNORM_INSTANCE_NORM, CLNORM_INSTANCE_NORM,
                                           CLNORM_GROUP_NORM, CLNORM_GROUP_NORM, CLNORM_GROUP_NORM};
    for (int tries = 0; tries < 4000; tries++) {
        desc_base(d, ops[m]);
        d->training = m == M_BN_INF || m == M_IN_INF_RUN || m == M_IN_INF_BATCH ? 0 : 1;
        if (is_rows(m)) {
            d->rows = rng_range(1, 5);
            d->cols = rng_range(1, 5);
        } else {
            d->layout = layout ? CLNORM_CHANNELS_LAST : CLNORM_CHANNELS_FIRST;
            d->per_sample_affine = psa;
            d->rank = rank;
            d->n = rng_range(1, 5);
            d->c = m == M_GN_MID ? (rng_u64() & 1 ? 4 : 6) : rng_range(1, 5);
            for (unsigned k = 0; k < rank; k++)
                d->spatial[k] = rng_range(1, 5);
            if (m == M_GN_C)
                d->groups = d->c;
            else if (m == M_GN_MID)
                d->groups = d->c == 4 ? 2 : (rng_u64() & 1 ? 2 : 3);
        }
        size_t E = ref_elements(d), S = is_rows(m) ? 1 : ref_spatial(d), cnt = ref_count_per_set(d);
        if (E == 0 || E > MAX_E)
            continue;
        if (m == M_BN_TRAIN && d->n * S < 2)
            continue;
        if (m == M_IN_TRAIN && S < 2) {
            if (rank == 0)
                return 0;
            continue;
        }
        if (tries < 3000 && ((want == 1 && cnt != 2) || (want == 2 && (cnt < 3 || cnt % 2 == 0))))
            continue;
        return 1;
    }
    return 0;
}

/* One random check of mode m on d: data, the reference backward, the finite differences. */
static void fd_check(mode m, clnorm_desc *d, int has_scale, uint64_t seed)
{
    const size_t E = ref_elements(d), A = ref_affine_len(d), C = is_rows(m) ? 0 : d->c, sets = ref_sets(d);
    const int running = uses_running(m);
    float *x = malloc(E * sizeof *x), *dy = malloc(E * sizeof *dy), scale[64], rm[8], rv[8];
    double *xd = malloc(E * sizeof *xd), *yp = malloc(E * sizeof *yp), *ym = malloc(E * sizeof *ym);
    double *xhat = malloc(E * sizeof *xhat), *dx = malloc(E * sizeof *dx), *rs_el = malloc(E * sizeof *rs_el);
    double sd[64], bd[64], rmd[8], rvd[8], dscale[64], dbias[64], mean[256], rstd[256], gss[256];
    if (!x || !dy || !xd || !yp || !ym || !xhat || !dx || !rs_el || A > 64 || C > 8 || sets > 256) {
        report(mode_name[m], seed, "allocation or sizes");
        goto out;
    }
    /* Data of order 1; sometimes offset (mean subtraction matters) or narrow (eps matters). */
    const double offset = rng_u64() & 1 ? 0.0 : rng_uniform(-3.0, 3.0);
    const double spread = rng_u64() % 3 ? 1.0 : 0.05;
    for (size_t i = 0; i < E; i++) {
        x[i] = (float)(offset + spread * rng_uniform(-1.0, 1.0));
        dy[i] = (float)(rng_uniform(0.25, 1.0) * (rng_u64() & 1 ? 1 : -1));
        xd[i] = x[i];
    }
    for (size_t k = 0; k < A; k++) {
        scale[k] = (float)(rng_uniform(0.5, 1.5) * (rng_u64() & 1 ? 1 : -1));
        sd[k] = has_scale ? scale[k] : 1.0;
        bd[k] = rng_uniform(-1.0, 1.0);
    }
    for (size_t c = 0; c < C; c++) {
        rm[c] = (float)rng_uniform(-1.0, 1.0);
        rv[c] = (float)rng_uniform(0.05, 2.0);
        rmd[c] = rm[c];
        rvd[c] = rv[c];
    }
    /* The forward the backward differentiates; the running statistics are read only in running mode (in
       training they are passed to the backward now and then, which must ignore them). */
    const float *brm = running || (d->training && m != M_GN_1 && m != M_GN_C && m != M_GN_MID && !is_rows(m) &&
                                   (rng_u64() & 1)) ? rm : NULL;
    const float *brv = brm ? rv : NULL;
    const double *frm = running ? rmd : NULL, *frv = running ? rvd : NULL;
    if (ref_forward(d, x, has_scale ? scale : NULL, NULL, running ? rm : NULL, running ? rv : NULL, NULL, mean,
                    rstd, NULL, NULL) != 0 ||
        ref_backward(d, x, dy, has_scale ? scale : NULL, mean, rstd, brm, brv, dx, dscale, dbias) != 0 ||
        ref_forward_d(d, xd, NULL, NULL, frm, frv, xhat, NULL, NULL, NULL, NULL) != 0) {
        report(mode_name[m], seed, "a reference call rejected a valid descriptor");
        goto out;
    }
    /* Each element's rstd (its set's, or its channel's running one) and each set's rms of g. */
    size_t set, aff, ch;
    memset(gss, 0, sizeof gss);
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        rs_el[i] = running ? 1.0 / sqrt((double)rv[ch] + (double)d->eps) : rstd[set];
        double g = (double)dy[i] * sd[aff];
        gss[set] += g * g;
    }
    const size_t cnt = E / sets;
    double w[3] = {0, 0, 0};
    size_t wi[3] = {0, 0, 0};
    /* dx */
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        const double x0 = xd[i], h = DELTA / rs_el[i];
        xd[i] = x0 + h;
        const double xp = xd[i];
        ref_forward_d(d, xd, sd, bd, frm, frv, yp, NULL, NULL, NULL, NULL);
        xd[i] = x0 - h;
        const double xm = xd[i];
        ref_forward_d(d, xd, sd, bd, frm, frv, ym, NULL, NULL, NULL, NULL);
        xd[i] = x0;
        double diff = 0.0;
        for (size_t j = 0; j < E; j++)
            diff += (double)dy[j] * (yp[j] - ym[j]);
        const double fd = diff / (xp - xm); /* the steps taken, after rounding */
        const double den = fabs(dx[i]) + rs_el[i] * sqrt(gss[set] / (double)cnt) + 1e-300;
        const double e = fabs(fd - dx[i]) / den;
        if (!(e <= w[0]))
            w[0] = e, wi[0] = i;
    }
    /* dscale and dbias: perturb one parameter; the magnitudes are summed over the elements sharing it. */
    for (int which = 1; which <= 2; which++) {
        double *p = which == 1 ? sd : bd;
        const double *ref = which == 1 ? dscale : dbias;
        for (size_t k = 0; k < A; k++) {
            const double p0 = p[k];
            p[k] = p0 + H_AFFINE;
            ref_forward_d(d, xd, sd, bd, frm, frv, yp, NULL, NULL, NULL, NULL);
            p[k] = p0 - H_AFFINE;
            ref_forward_d(d, xd, sd, bd, frm, frv, ym, NULL, NULL, NULL, NULL);
            p[k] = p0;
            double diff = 0.0, mag = 0.0;
            for (size_t j = 0; j < E; j++) {
                diff += (double)dy[j] * (yp[j] - ym[j]);
                ref_locate(d, j, &set, &aff, &ch);
                if (aff == k)
                    mag += fabs((double)dy[j] * (which == 1 ? xhat[j] : 1.0));
            }
            const double fd = diff / (2.0 * H_AFFINE);
            const double e = fabs(fd - ref[k]) / (fabs(ref[k]) + mag + 1e-300);
            if (!(e <= w[which]))
                w[which] = e, wi[which] = k;
        }
    }
    static const char *const out_name[3] = {"dx", "dscale", "dbias"};
    for (int o = 0; o < 3; o++) {
        if (!(w[o] <= worst[m][o]))
            worst[m][o] = w[o];
        if (!(w[o] <= TOL))
            report(mode_name[m], seed,
                 "%s[%zu] relative error %.3g > %.1g; layout %d rank %u n %zu c %zu spatial %zux%zux%zu rows %zu "
                 "cols %zu groups %zu psa %d scale %d eps %g",
                 out_name[o], wi[o], w[o], TOL, (int)d->layout, d->rank, d->n, d->c, d->spatial[0], d->spatial[1],
                 d->spatial[2], d->rows, d->cols, d->groups, d->per_sample_affine, has_scale, (double)d->eps);
    }
    checks[m]++;
out:
    free(x); free(dy); free(xd); free(yp); free(ym); free(xhat); free(dx); free(rs_el);
}

/* Every mode over layouts, ranks, per-sample affine and scale presence; for each, one count-2 shape, one odd
 * count and two random ones, each with fresh data; eps 0.1 on every third check. */
START_TEST(test_fd_all_ops)
{
    memset(worst, 0, sizeof worst);
    memset(checks, 0, sizeof checks);
    failures = 0;
    for (int m = 0; m < M_COUNT; m++) {
        const int nl = is_rows((mode)m) ? 1 : 2, nr = is_rows((mode)m) ? 1 : 4, np = is_rows((mode)m) ? 1 : 2;
        const int reps = is_rows((mode)m) ? 24 : 4;
        unsigned long k = 0;
        for (int layout = 0; layout < nl; layout++)
            for (int rank = 0; rank < nr; rank++)
                for (int psa = 0; psa < np; psa++)
                    for (int has_scale = 0; has_scale < 2; has_scale++)
                        for (int rep = 0; rep < reps; rep++, k++) {
                            uint64_t seed = next_seed();
                            clnorm_desc d;
                            if (!gen_shape(&d, (mode)m, layout, (unsigned)rank, psa, rep < 2 ? rep + 1 : 0)) {
                                /* InstanceNorm training at rank 0 (S == 1): must be rejected */
                                float x1[25] = {0}, dy1[25] = {0};
                                double dx1[25], r1[25] = {0}, m1[25] = {0};
                                d.n = 1, d.c = 1;
                                if (ref_backward(&d, x1, dy1, NULL, m1, r1, NULL, NULL, dx1, NULL, NULL) != -1)
                                    report(mode_name[m], seed, "S == 1 training not rejected");
                                continue;
                            }
                            if (k % 3 == 2)
                                d.eps = 0.1f;
                            fd_check((mode)m, &d, has_scale, seed);
                        }
    }
    printf("# worst finite-difference relative error (tolerance %.0e), dx / dscale / dbias:\n", TOL);
    for (int m = 0; m < M_COUNT; m++)
        printf("#   %-40s %9.2e %9.2e %9.2e  (%lu checks)\n", mode_name[m], worst[m][0], worst[m][1], worst[m][2],
               checks[m]);
    ck_assert_msg(failures == 0, "%lu failed checks (see FAIL lines above)", failures);
}
END_TEST

/* ---------- by hand ---------- */

static void channel_index_setup(clnorm_desc *d, clnorm_op op, int layout, size_t n, size_t c, size_t s)
{
    desc_base(d, op);
    d->layout = layout ? CLNORM_CHANNELS_LAST : CLNORM_CHANNELS_FIRST;
    d->n = n, d->c = c, d->rank = 1, d->spatial[0] = s;
}
/* Element (n, c, s)'s index, written out here rather than through ref_locate. */
static size_t idx(const clnorm_desc *d, size_t n, size_t c, size_t s)
{
    const size_t S = d->spatial[0], C = d->c;
    return d->layout == CLNORM_CHANNELS_LAST ? (n * S + s) * C + c : (n * C + c) * S + s;
}

/* BatchNorm inference is affine: dx = dy * scale / sqrt(var + eps). With eps = 0 and var 1/4, 4, 1 every value
 * is a small dyadic rational, so dx, dscale and dbias are exact; with eps = 1e-5 dx agrees to rounding. */
START_TEST(test_bn_inference_by_hand)
{
    for (int layout = 0; layout < 2; layout++) {
        clnorm_desc d;
        channel_index_setup(&d, CLNORM_BATCH_NORM, layout, 2, 3, 2);
        d.training = 0;
        const float rm[3] = {0.5f, -1.0f, 0.0f}, rv[3] = {0.25f, 4.0f, 1.0f}, scale[3] = {2.0f, -1.0f, 0.5f};
        float x[12], dy[12];
        for (size_t i = 0; i < 12; i++) {
            x[i] = (float)((int)(i * 7 % 11) - 5) / 4.0f;
            dy[i] = (float)((int)(i * 5 % 9) - 4) / 8.0f;
        }
        double dx[12], ds[3], db[3];
        for (int e = 0; e < 2; e++) {
            d.eps = e ? 1e-5f : 0.0f;
            ck_assert_int_eq(ref_backward(&d, x, dy, scale, NULL, NULL, rm, rv, dx, ds, db), 0);
            for (size_t c = 0; c < 3; c++) {
                double sdy = 0.0, sdyx = 0.0;
                for (size_t n = 0; n < 2; n++)
                    for (size_t s = 0; s < 2; s++) {
                        size_t i = idx(&d, n, c, s);
                        double want = (double)dy[i] * scale[c] / sqrt((double)rv[c] + (double)d.eps);
                        if (e == 0)
                            ck_assert_msg(dx[i] == want, "dx[%zu] = %.17g, want %.17g", i, dx[i], want);
                        else
                            ck_assert_msg(fabs(dx[i] - want) <= 4e-16 * fabs(want), "dx[%zu] = %.17g, want %.17g",
                                          i, dx[i], want);
                        sdy += dy[i];
                        sdyx += (double)dy[i] * ((double)x[i] - rm[c]) / sqrt((double)rv[c]);
                    }
                ck_assert_msg(db[c] == sdy, "dbias[%zu] = %.17g, want %.17g", c, db[c], sdy);
                if (e == 0)
                    ck_assert_msg(ds[c] == sdyx, "dscale[%zu] = %.17g, want %.17g", c, ds[c], sdyx);
            }
        }
    }
}
END_TEST

/* LayerNorm over x = (-1, 0, 1), eps = 0: mean 0, var 2/3, r = rstd = sqrt(3/2), xhat = (-r, 0, r). With
 * dy = (1, 0, 0) and no scale: mean(g) = 1/3, mean(g xhat) = -r/3, so
 * dx = r * ((1, 0, 0) - 1/3 + xhat * r/3) = r * (1 - 1/3 - 1/2, -1/3, -1/3 + 1/2) = r * (1/6, -1/3, 1/6);
 * dscale = dy * xhat = (-r, 0, 0), dbias = dy. Then count-2 sets with eps = 0: xhat = (-1, 1) whatever x,
 * so y does not move with x and dx = 0 (exactly, with dyadic dy and scale). */
START_TEST(test_layer_norm_by_hand)
{
    clnorm_desc d;
    desc_base(&d, CLNORM_LAYER_NORM);
    d.eps = 0.0f;
    d.rows = 1, d.cols = 3;
    const float x[3] = {-1.0f, 0.0f, 1.0f}, dy[3] = {1.0f, 0.0f, 0.0f};
    double mean[1], rstd[1], dx[3], ds[3], db[3];
    ck_assert_int_eq(ref_forward(&d, x, NULL, NULL, NULL, NULL, NULL, mean, rstd, NULL, NULL), 0);
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, NULL, NULL, dx, ds, db), 0);
    const double r = sqrt(1.5), want[3] = {r / 6.0, -r / 3.0, r / 6.0}, wds[3] = {-r, 0.0, 0.0};
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(fabs(dx[i] - want[i]) <= 1e-15, "dx[%d] = %.17g, want %.17g", i, dx[i], want[i]);
        ck_assert_msg(fabs(ds[i] - wds[i]) <= 1e-15, "dscale[%d] = %.17g, want %.17g", i, ds[i], wds[i]);
        ck_assert_msg(db[i] == dy[i], "dbias[%d] = %.17g, want %g", i, db[i], (double)dy[i]);
    }
    /* count 2, eps = 0: rows (1, 3) and (-2, 6); dy dyadic so the cancellation is exact */
    d.rows = 2, d.cols = 2;
    const float x2[4] = {1.0f, 3.0f, -2.0f, 6.0f}, dy2[4] = {0.75f, -0.25f, 0.5f, 0.125f}, sc[2] = {2.0f, -0.5f};
    double m2[2], r2[2], dx2[4];
    ck_assert_int_eq(ref_forward(&d, x2, sc, NULL, NULL, NULL, NULL, m2, r2, NULL, NULL), 0);
    ck_assert_int_eq(ref_backward(&d, x2, dy2, sc, m2, r2, NULL, NULL, dx2, NULL, NULL), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(dx2[i] == 0.0, "count-2 dx[%d] = %.17g, want 0", i, dx2[i]);
}
END_TEST

/* RMSNorm of x = (3, 4), eps = 0: mean(x^2) = 12.5, r = 1/sqrt(12.5), r^2 = 0.08, xhat = (3r, 4r). dy = (1, 0):
 * mean(g xhat) = 3r/2, dx = r * ((1, 0) - xhat * 3r/2) = r * (1 - 0.36, -0.48) = r * (0.64, -0.48) (no mean(g)
 * term). The mean argument is ignored and may be NULL. */
START_TEST(test_rms_norm_by_hand)
{
    clnorm_desc d;
    desc_base(&d, CLNORM_RMS_NORM);
    d.eps = 0.0f;
    d.rows = 1, d.cols = 2;
    const float x[2] = {3.0f, 4.0f}, dy[2] = {1.0f, 0.0f};
    double rstd[1], dx[2];
    ck_assert_int_eq(ref_forward(&d, x, NULL, NULL, NULL, NULL, NULL, NULL, rstd, NULL, NULL), 0);
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, NULL, rstd, NULL, NULL, dx, NULL, NULL), 0);
    const double r = 1.0 / sqrt(12.5), want[2] = {0.64 * r, -0.48 * r};
    for (int i = 0; i < 2; i++)
        ck_assert_msg(fabs(dx[i] - want[i]) <= 1e-15, "dx[%d] = %.17g, want %.17g", i, dx[i], want[i]);
}
END_TEST

/* dbias is the plain sum of dy over the elements sharing the parameter (index written out here): BatchNorm
 * per channel over (n, s), GroupNorm per channel or per (n, c) with per-sample affine; both layouts. */
START_TEST(test_dbias_plain_sum)
{
    for (int layout = 0; layout < 2; layout++)
        for (int op = 0; op < 3; op++) {
            clnorm_desc d;
            channel_index_setup(&d, op == 0 ? CLNORM_BATCH_NORM : CLNORM_GROUP_NORM, layout, 3, 4, 5);
            d.groups = 2;
            d.per_sample_affine = op == 2;
            float x[60], dy[60];
            for (size_t i = 0; i < 60; i++) {
                x[i] = (float)sin((double)i);
                dy[i] = (float)((int)(i * 13 % 17) - 8) / 16.0f;
            }
            double mean[6], rstd[6], db[12];
            ck_assert_int_eq(ref_forward(&d, x, NULL, NULL, NULL, NULL, NULL, mean, rstd, NULL, NULL), 0);
            ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, NULL, NULL, NULL, NULL, db), 0);
            for (size_t c = 0; c < 4; c++)
                for (size_t n0 = 0; n0 < (d.per_sample_affine ? 3u : 1u); n0++) {
                    double want = 0.0;
                    for (size_t n = 0; n < 3; n++)
                        for (size_t s = 0; s < 5; s++)
                            if (!d.per_sample_affine || n == n0)
                                want += dy[idx(&d, n, c, s)];
                    size_t k = d.per_sample_affine ? n0 * 4 + c : c;
                    ck_assert_msg(db[k] == want, "layout %d op %d dbias[%zu] = %.17g, want %.17g", layout, op, k,
                                  db[k], want);
                }
        }
}
END_TEST

/* With batch statistics the running statistics are not read: the same bits with and without them. */
START_TEST(test_batch_mode_ignores_running)
{
    clnorm_desc d;
    channel_index_setup(&d, CLNORM_BATCH_NORM, 0, 2, 3, 4);
    float x[24], dy[24], rm[3] = {100.0f, -7.0f, 3.0f}, rv[3] = {9.0f, 0.5f, 2.0f};
    for (size_t i = 0; i < 24; i++)
        x[i] = (float)cos(0.7 * (double)i), dy[i] = (float)sin(1.3 * (double)i);
    double mean[3], rstd[3], a[24], b[24], as[3], bs[3], ab[3], bb[3];
    for (int op = 0; op < 2; op++) {
        if (op == 1) { /* InstanceNorm training */
            d.op = CLNORM_INSTANCE_NORM;
        }
        double mean2[6], rstd2[6];
        ck_assert_int_eq(ref_forward(&d, x, NULL, NULL, NULL, NULL, NULL, op ? mean2 : mean, op ? rstd2 : rstd,
                                     NULL, NULL), 0);
        const double *mu = op ? mean2 : mean, *rs = op ? rstd2 : rstd;
        ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mu, rs, NULL, NULL, a, as, ab), 0);
        ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mu, rs, rm, rv, b, bs, bb), 0);
        ck_assert(memcmp(a, b, sizeof a) == 0 && memcmp(as, bs, sizeof as) == 0 && memcmp(ab, bb, sizeof ab) == 0);
    }
}
END_TEST

/* A NaN or Inf in a set makes that set's statistics NaN in the forward, and the backward's formula then gives
 * NaN for that set's dx and for every parameter sum it enters; the other sets stay finite. */
START_TEST(test_special_values_propagate)
{
    clnorm_desc d;
    channel_index_setup(&d, CLNORM_INSTANCE_NORM, 1, 2, 2, 3);
    float x[12], dy[12];
    for (size_t i = 0; i < 12; i++)
        x[i] = (float)i * 0.25f, dy[i] = 1.0f - (float)i * 0.125f;
    x[idx(&d, 1, 0, 2)] = INFINITY; /* set (n 1, c 0) */
    double mean[4], rstd[4], dx[12], ds[2], db[2];
    d.per_sample_affine = 0;
    ck_assert_int_eq(ref_forward(&d, x, NULL, NULL, NULL, NULL, NULL, mean, rstd, NULL, NULL), 0);
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, NULL, NULL, dx, ds, db), 0);
    for (size_t n = 0; n < 2; n++)
        for (size_t c = 0; c < 2; c++)
            for (size_t s = 0; s < 3; s++) {
                double v = dx[idx(&d, n, c, s)];
                ck_assert_msg(n == 1 && c == 0 ? isnan(v) : isfinite(v), "dx(%zu, %zu, %zu) = %g", n, c, s, v);
            }
    ck_assert(isnan(ds[0]) && isfinite(ds[1]) && isfinite(db[0]) && isfinite(db[1]));
}
END_TEST

/* What the library must reject is rejected, and nothing is written then. */
START_TEST(test_rejections)
{
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, dy[8] = {1, 1, 1, 1, 1, 1, 1, 1}, rm[4] = {0}, rv[4] = {1, 1, 1, 1};
    double mean[8] = {0}, rstd[8] = {1, 1, 1, 1, 1, 1, 1, 1}, dx[8], ds[4], db[4];
    for (int i = 0; i < 8; i++)
        dx[i] = -7.0;
    clnorm_desc d;
    channel_index_setup(&d, CLNORM_BATCH_NORM, 0, 2, 2, 2);
    d.training = 0; /* BatchNorm inference without running statistics */
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, NULL, NULL, dx, ds, db), -1);
    ck_assert_int_eq(ref_backward_uses_batch(&d, 1), 0);
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, NULL, NULL, rm, rv, dx, ds, db), 0);
    for (int i = 0; i < 8; i++)
        dx[i] = -7.0;
    d.training = 1, d.n = 1, d.rank = 0; /* BatchNorm training with N * S == 1 */
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, NULL, NULL, dx, ds, db), -1);
    channel_index_setup(&d, CLNORM_INSTANCE_NORM, 0, 2, 2, 1); /* InstanceNorm training with S == 1 */
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, NULL, NULL, dx, ds, db), -1);
    d.training = 0; /* ... is fine in inference, with batch statistics */
    ck_assert_int_eq(ref_backward_uses_batch(&d, 0), 1);
    ck_assert_int_eq(ref_backward_uses_batch(&d, 1), 0);
    for (int i = 0; i < 4; i++) /* count-1 sets: xhat = 0 and dx = rstd * (g - g) = 0 */
        mean[i] = x[i], rstd[i] = 1.0 / sqrt(1e-5);
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, NULL, NULL, dx, ds, db), 0);
    for (int i = 0; i < 4; i++)
        ck_assert(dx[i] == 0.0);
    for (int i = 0; i < 8; i++)
        dx[i] = -7.0;
    channel_index_setup(&d, CLNORM_GROUP_NORM, 0, 1, 4, 2);
    d.groups = 3; /* not dividing C */
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, NULL, NULL, dx, ds, db), -1);
    d.groups = 2;
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, NULL, NULL, NULL, dx, ds, db), -1); /* no rstd */
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, NULL, rstd, NULL, NULL, dx, ds, db), -1); /* no mean */
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, rm, rv, dx, ds, db), -1); /* GN has no running */
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, mean, rstd, NULL, NULL, NULL, NULL, NULL), -1); /* no output */
    ck_assert_int_eq(ref_backward(&d, x, NULL, NULL, mean, rstd, NULL, NULL, dx, ds, db), -1); /* no dy */
    for (int i = 0; i < 8; i++)
        ck_assert(dx[i] == -7.0);
    desc_base(&d, CLNORM_RMS_NORM);
    d.rows = 2, d.cols = 4;
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, NULL, rstd, NULL, NULL, dx, NULL, NULL), 0); /* no mean: fine */
    d.per_sample_affine = 1; /* a channel-norm option */
    ck_assert_int_eq(ref_backward(&d, x, dy, NULL, NULL, rstd, NULL, NULL, dx, NULL, NULL), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ref_backward");
    TCase *tc = tcase_create("ref_backward");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bn_inference_by_hand);
    tcase_add_test(tc, test_layer_norm_by_hand);
    tcase_add_test(tc, test_rms_norm_by_hand);
    tcase_add_test(tc, test_dbias_plain_sum);
    tcase_add_test(tc, test_batch_mode_ignores_running);
    tcase_add_test(tc, test_special_values_propagate);
    tcase_add_test(tc, test_rejections);
    tcase_add_test(tc, test_fd_all_ops);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* the worst-error table prints in order with the rest */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    srunner_run_all(sr, CK_VERBOSE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int failed = srunner_ntests_failed(sr), run = srunner_ntests_run(sr);
    printf("# test_ref_backward: %d Check tests, %d failed; seed base %llu; %.1f s\n", run, failed,
           (unsigned long long)seed_base,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
