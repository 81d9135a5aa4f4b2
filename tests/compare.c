/*
 * The harness's one tolerance model and one comparison: see common.h.
 */
#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Tolerances, from float32 error analysis. u = 2^-24 is the unit roundoff of
 * float32. For a set with count n, mean mu and (biased) standard deviation
 * sigma, as computed by the double reference:
 *
 * 0. Summation. A float sum of n terms has relative error <= u*log2(n) when
 *    done as a tree/pairwise reduction; a serial loop (one work-item walking
 *    a chunk) has a worst case of u*n but errors that behave like a random
 *    walk, about u*sqrt(n), on data whose terms do not all share one
 *    magnitude. We allow
 *        s_n = 8 + 2 log2(n) + sqrt(n)        (in units of u)
 *    i.e. 1072 u = 6.4e-5 relative at n = 2^20. Serial float sums of n
 *    nearly equal terms (sum x^2 of 1e4 + N(0,1e-2)) drift systematically,
 *    ~u*n, and fail this on long rows; that is an accuracy bug.
 * 1. The library's mean m^ is a float. Even a perfect sum rounds it once:
 *    |m^ - mu| <= u|mu|. Merging float partial means (Chan) in a tree rounds
 *    once more per level, about 0.5 u|mu| each, and summing x - (any element)
 *    instead of x keeps the rest proportional to sigma. So we allow
 *        dm = u * ((3 + log2(n)/4) |mu| + s_n sigma).
 *    This is the term that scales with |mu|/sigma: x - m^ loses dm in absolute
 *    terms however well it is computed, dm/sigma = O(u |mu|/sigma) in xhat
 *    units (0.36 on 1e4 + N(0,1e-2) with n = 4096, where |mu|/sigma = 1e6; the
 *    rounding of the mean alone is 0.06 and of x itself 0.05). A plain (unshifted) serial float
 *    sum loses ~u sqrt(n)|mu| and fails this on such data; E[x^2]-E[x]^2 loses
 *    ~u mu^2/sigma^2 in the *variance* (6e4 relative there) and fails it by
 *    orders of magnitude, which naive_formula_is_rejected checks.
 * 2. The variance is computed around m^: sum (x - m^)^2 / n = var + (mu - m^)^2,
 *    plus the rounding of the squares and the sum (s_n). Merging (count, mean,
 *    M2) partials (Chan et al.), which the split and strided paths must do,
 *    adds delta^2 n_a n_b / n with delta = mean_b - mean_a = O(sigma), whose
 *    float partial means carry O(dm) each: a first-order error 2 sigma dm in
 *    var. rstd = 1/sqrt(var+eps) halves relative errors but adds the sqrt and
 *    division (OpenCL allows a few ulp for each):
 *        er = u * s_n + (dm sigma + dm^2) / (var + eps)   (relative, rstd)
 * 3. y = (x - m^) * r^ * s + b:
 *        |dy| <= |s| * (|xhat| * (er + 4u) + dm * rstd) + 4u * (|y| + |b|)
 *    (the last term: rounding of the product and of the bias addition).
 * RMSNorm: no mean; er = u * s_n on mean(x^2) (positive terms):
 *        |dy| <= |s| * |x rstd| * (er + 4u) + 4u (|y| + |b|).
 * Inference with running statistics (the library may fold everything into one
 * multiply-add per channel, y = x*A + B with A = s r, B = b - rm A), which
 * cancels when |rm A| >> |y|:
 *        |dy| <= 8u * (|x A| + |rm A| + |b| + |y|).
 * Running statistics: (1 - m) rm + m * batch_mean has the error of batch_mean
 * times m, plus (8 + 2 log2 N) u of the operands (N = the instances averaged
 * for InstanceNorm); the running variance has m * |unbiased var| * ev, where
 * ev = 2u s_n + 2 dm/sigma + dm^2/var is the relative error of the variance itself (eps
 * does not damp it there).
 * Saved statistics: |mean^ - mu| <= dm, |rstd^ - rstd| <= er * rstd.
 *
 * Non-finite expectations are exact: expected NaN requires NaN, expected +-Inf
 * requires the same infinity. A finite expectation requires a finite value.
 *
 * This is the model of every comparison with the reference: the Check
 * suites, the reliability tests, the fuzzer and clnorm-bench --check and
 * --tune. It is derived from the data of each set, so it holds for any data
 * (mean 1e4 with spread 1e-2 as for N(0, 1)); tol_scale widens it where a
 * test compounds errors on purpose (running statistics chained over steps).
 */
#define U32 (1.0 / 16777216.0)

int th_close(double expect, double got, double tol)
{
    if (isnan(expect))
        return isnan(got);
    if (isinf(expect))
        return got == expect;
    if (!isfinite(got))
        return 0;
    return fabs(got - expect) <= tol;
}

/* Where mismatches go: th_fail (the first four, when report) or, when why
 * is set, a description of the first one. */
typedef struct mism {
    unsigned long n;
    int report;
    char *why;
    size_t len;
} mism;

static void mismatch(mism *m, const char *what, size_t i, double expect, double got, double tol)
{
    m->n++;
    if (m->why && m->n == 1)
        snprintf(m->why, m->len, "%s[%zu]: expected %.9g, got %.9g (0x%08x), |diff| %.3g > tol %.3g", what, i, expect,
                 got, th_bits((float)got), fabs(got - expect), tol);
    else if (!m->why && m->report && m->n <= 4)
        th_fail("%s[%zu]: expected %.9g, got %.9g (0x%08x), |diff| %.3g > tol %.3g", what, i, expect, got,
                th_bits((float)got), fabs(got - expect), tol);
}

static void problem(mism *m, const char *what)
{
    m->n++;
    if (m->why && m->n == 1)
        snprintf(m->why, m->len, "%s", what);
    else if (!m->why && m->report)
        th_fail("%s", what);
}

static void expect_close(mism *m, const char *what, size_t i, double expect, double got, double tol)
{
    if (!th_close(expect, got, tol))
        mismatch(m, what, i, expect, got, tol);
}

typedef struct setinfo {
    double mu, sigma2, msq, dm, er, ev, rstd;
    size_t count;
} setinfo;

static int is_row(const clnorm_desc *d) { return d->op == CLNORM_LAYER_NORM || d->op == CLNORM_RMS_NORM; }

/* The error budget of one set (see above), from its exact statistics. */
static void set_budget(const clnorm_desc *d, setinfo *p)
{
    double n = (double)p->count, sn = 8 + 2 * log2(n) + sqrt(n), eps = d->eps;
    p->sigma2 /= n;
    p->msq /= n;
    if (d->op == CLNORM_RMS_NORM) {
        p->dm = 0;
        p->er = U32 * sn;
        p->rstd = 1.0 / sqrt(p->msq + eps);
        return;
    }
    double sg = sqrt(p->sigma2);
    p->dm = U32 * ((3 + 0.25 * log2(n)) * fabs(p->mu) + sn * sg);
    p->er = U32 * sn + (p->sigma2 + eps > 0 ? (p->dm * sg + p->dm * p->dm) / (p->sigma2 + eps) : 0);
    /* relative error of the variance itself (running_var): eps does not damp it */
    p->ev = 2 * U32 * sn + (p->sigma2 > 0 ? 2 * p->dm / sg + p->dm * p->dm / p->sigma2 : 0);
    /* SPEC.md: BatchNorm/InstanceNorm give rstd 0 where var + eps == 0 */
    int zero = (d->op == CLNORM_BATCH_NORM || d->op == CLNORM_INSTANCE_NORM) && p->sigma2 + eps == 0;
    p->rstd = zero ? 0.0 : 1.0 / sqrt(p->sigma2 + eps);
}

static setinfo *set_stats(const clnorm_desc *d, const float *x)
{
    size_t E = ref_elements(d), sets = ref_sets(d), set, aff, ch;
    setinfo *si = calloc(sets ? sets : 1, sizeof *si);
    if (!si)
        return NULL;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        si[set].mu += x[i];
        si[set].msq += (double)x[i] * x[i];
        si[set].count++;
    }
    for (size_t s = 0; s < sets; s++)
        si[s].mu /= (double)si[s].count;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        double dv = x[i] - si[set].mu;
        si[set].sigma2 += dv * dv;
    }
    for (size_t s = 0; s < sets; s++)
        set_budget(d, &si[s]);
    return si;
}

/* Per-element tolerance for y. */
static double tol_y(const clnorm_desc *d, const th_inputs *in, const setinfo *si, size_t i, double expect)
{
    size_t set, aff, ch;
    ref_locate(d, i, &set, &aff, &ch);
    double s = in->scale ? fabs((double)in->scale[aff]) : 1.0;
    double b = in->bias ? fabs((double)in->bias[aff]) : 0.0;
    double x = in->x[i];
    if (th_uses_running(d, in->running_mean != NULL)) {
        double r = 1.0 / sqrt((double)in->running_var[ch] + (double)d->eps);
        double A = s * r;
        return 8 * U32 * (fabs(x * A) + fabs((double)in->running_mean[ch] * A) + b + fabs(expect)) + 1e-30;
    }
    const setinfo *p = &si[set];
    if (d->op == CLNORM_RMS_NORM)
        return s * fabs(x * p->rstd) * (p->er + 4 * U32) + 4 * U32 * (fabs(expect) + b) + 1e-30;
    double xhat = fabs((x - p->mu) * p->rstd);
    return s * (xhat * (p->er + 4 * U32) + p->dm * p->rstd) + 4 * U32 * (fabs(expect) + b) + 1e-30;
}

/* The reference's outputs of one call. */
typedef struct refout {
    double *y, *mean, *rstd, *rm, *rv;
} refout;

static void refout_free(refout *r)
{
    free(r->y);
    free(r->mean);
    free(r->rstd);
    free(r->rm);
    free(r->rv);
}

/* 0, or -1 (out of memory, or the reference rejects d) with the problem recorded in m. */
static int refout_compute(refout *r, const clnorm_desc *d, const th_inputs *in, mism *m)
{
    size_t E = ref_elements(d), sets = ref_sets(d), C = is_row(d) ? 0 : d->c;
    r->y = malloc((E + 1) * sizeof *r->y);
    r->mean = malloc((sets + 1) * sizeof *r->mean);
    r->rstd = malloc((sets + 1) * sizeof *r->rstd);
    r->rm = malloc((C + 1) * sizeof *r->rm);
    r->rv = malloc((C + 1) * sizeof *r->rv);
    if (!r->y || !r->mean || !r->rstd || !r->rm || !r->rv) {
        problem(m, "out of host memory");
        return -1;
    }
    if (ref_forward(d, in->x, in->scale, in->bias, in->running_mean, in->running_var, r->y, r->mean, r->rstd, r->rm,
                    r->rv) != 0) {
        problem(m, "reference rejects this descriptor (th_compare called on an invalid case)");
        return -1;
    }
    return 0;
}

static void compare_stats(mism *m, const clnorm_desc *d, const setinfo *si, const refout *r, const th_outputs *got,
                          double tol_scale)
{
    for (size_t s = 0; s < ref_sets(d); s++) {
        if (got->mean && d->op != CLNORM_RMS_NORM)
            expect_close(m, "mean", s, r->mean[s], got->mean[s], si[s].dm * tol_scale + 1e-30);
        if (got->rstd)
            expect_close(m, "rstd", s, r->rstd[s], got->rstd[s], si[s].er * fabs(r->rstd[s]) * tol_scale + 1e-30);
    }
}

/* The running statistics' budgets of channel c (see above): the per-set
 * budgets of the sets of channel c, aggregated. */
static void running_budget(const clnorm_desc *d, const th_inputs *in, const setinfo *si, size_t c, double *tm,
                           double *tv)
{
    double dm = 0, ev = 0, amu = 0, avar = 0, N = 1;
    size_t C = d->c;
    if (d->op == CLNORM_BATCH_NORM) {
        dm = si[c].dm;
        ev = si[c].ev;
        amu = fabs(si[c].mu);
        avar = si[c].sigma2 * (double)si[c].count / (double)(si[c].count - 1);
    } else {
        N = (double)d->n;
        for (size_t n = 0; n < d->n; n++) {
            const setinfo *p = &si[n * C + c];
            dm = fmax(dm, p->dm);
            ev = fmax(ev, p->ev);
            amu = fmax(amu, fabs(p->mu));
            avar = fmax(avar, p->sigma2 * (double)p->count / (double)(p->count - 1));
        }
    }
    double k = (8 + 2 * log2(N)) * U32, mom = d->momentum;
    *tm = k * (fabs((double)in->running_mean[c]) + amu) + mom * dm;
    *tv = k * (fabs((double)in->running_var[c]) + avar) + mom * avar * ev;
}

static void compare_running(mism *m, const clnorm_desc *d, const th_inputs *in, const setinfo *si, const refout *r,
                            const th_outputs *got, double tol_scale)
{
    if (is_row(d) || !in->running_mean || !in->running_var || d->op == CLNORM_GROUP_NORM)
        return;
    for (size_t c = 0; c < d->c; c++) {
        double tm = 0, tv = 0; /* with the running statistics: copied unchanged */
        if (si)
            running_budget(d, in, si, c, &tm, &tv);
        if (got->running_mean)
            expect_close(m, "running_mean", c, r->rm[c], got->running_mean[c], tm * tol_scale + 1e-30);
        if (got->running_var)
            expect_close(m, "running_var", c, r->rv[c], got->running_var[c], tv * tol_scale + 1e-30);
    }
}

static unsigned long compare(const clnorm_desc *d, const th_inputs *in, const th_outputs *got, double tol_scale,
                             mism *m)
{
    refout r = {0};
    setinfo *si = NULL;
    int running_mode = th_uses_running(d, in->running_mean != NULL);
    if (refout_compute(&r, d, in, m) != 0)
        goto out;
    if (!running_mode && !(si = set_stats(d, in->x))) {
        problem(m, "out of host memory");
        goto out;
    }
    if (got->y)
        for (size_t i = 0, E = ref_elements(d); i < E; i++)
            expect_close(m, "y", i, r.y[i], got->y[i],
                         th_storage_tol(d->dtype, r.y[i], tol_y(d, in, si, i, r.y[i]) * tol_scale));
    if (!running_mode)
        compare_stats(m, d, si, &r, got, tol_scale);
    compare_running(m, d, in, si, &r, got, tol_scale);
    if (m->report && !m->why && m->n > 4)
        th_fail("... %lu mismatches in all", m->n);
out:
    refout_free(&r);
    free(si);
    return m->n;
}

unsigned long th_compare(const clnorm_desc *d, const th_inputs *in, const th_outputs *got, double tol_scale,
                         int report)
{
    mism m = {0, report, NULL, 0};
    return compare(d, in, got, tol_scale, &m);
}

unsigned long th_compare_why(const clnorm_desc *d, const th_inputs *in, const th_outputs *got, double tol_scale,
                             char *why, size_t len)
{
    mism m = {0, 0, why, len};
    if (why && len)
        why[0] = 0;
    return compare(d, in, got, tol_scale, &m);
}

unsigned long th_compare_y(const clnorm_desc *d, const th_inputs *in, const float *expected, const float *got,
                           size_t n, double tol_scale, int report)
{
    mism m = {0, report, NULL, 0};
    int running_mode = th_uses_running(d, in->running_mean != NULL);
    setinfo *si = running_mode ? NULL : set_stats(d, in->x);
    for (size_t i = 0; i < n; i++)
        expect_close(&m, "y (a vs b)", i, expected[i], got[i], 2 * tol_y(d, in, si, i, expected[i]) * tol_scale);
    if (report && m.n > 4)
        th_fail("... %lu mismatches in all", m.n);
    free(si);
    return m.n;
}

/* ------------------------------------------------------------------ */
/* backward                                                            */
/* ------------------------------------------------------------------ */
/*
 * LpNormalization against ref_lp_norm. The device sums |x| or x^2 (terms of
 * one sign) in float: each partial sum's relative error is at most u times
 * the number of additions on its longest path. For the row kernels' sums
 * (blocks of 64 vectors in up to four chains, then the blocks, the lanes and
 * partials; rows.cl, common.cl) that stays below 128 + n/32; the column
 * kernels' (cols.cl: one chain per chunk of rows, or a running mean of
 * 8-row blocks, then the merge) below 128 + n. Then the mean and the
 * product with the count (2u), sqrt (3 ulp = 6u; its half for the relative
 * error of the norm from the sum's), the reciprocal (2.5 ulp = 5u) and the
 * final product (1u): |y - ref| <= u (16 + 128 + n') |ref| with n' = n/32
 * for a set along the innermost axis and n for one along an outer axis,
 * doubled for margin.
 */
unsigned long th_compare_lp(unsigned ndim, const size_t *dims, unsigned axis, int p, const float *x,
                            const float *got)
{
    size_t n = 1, inner = 1;
    for (unsigned k = 0; k < ndim; k++) n *= dims[k];
    for (unsigned k = axis + 1; k < ndim; k++) inner *= dims[k];
    const double len = (double)dims[axis];
    double *ref = malloc(n * sizeof *ref);
    if (!ref || ref_lp_norm(ndim, dims, axis, p, x, ref) != 0) {
        free(ref);
        th_fail("th_compare_lp: out of host memory");
        return 1;
    }
    const double rel = 2.0 * U32 * (16.0 + 128.0 + (inner > 1 ? len : len / 32.0));
    unsigned long bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!th_close(ref[i], got[i], rel * fabs(ref[i])) && bad++ < 3)
            th_fail("element %zu: x %.9g, want %.9g, got %.9g", i, (double)x[i], ref[i], (double)got[i]);
    free(ref);
    return bad;
}

/*
 * Backward tolerances. The reference (ref_backward) is fed the very
 * statistics the library reads: the saved float mean m^ and rstd r^ of each
 * set, widened (or the running statistics). So no error of the statistics
 * enters; only the backward's own float arithmetic does, and it is bounded
 * term by term, with u = 2^-24 and s_k = 8 + 2 log2(k) + sqrt(k) the
 * summation allowance of section 0 above for a float sum of k terms. Per
 * set (count m), in double from the reference's own values: g_i = dy_i s_i,
 * xhat_i = (x_i - m^) r^, A = mean(g), B = mean(g xhat), G = mean|g|,
 * H = mean|g xhat|.
 *
 * 1. xhat. x_i - m^ of two floats is exact when they are within a factor 2
 *    (Sterbenz; the mean-1e4 data) and rounds once otherwise, then one
 *    multiply by r^: |d xhat_i| <= 2u |xhat_i|. Note what is NOT allowed: a
 *    rounding at the magnitude of x or m^ times r^ (folding the mean into a
 *    multiply-add, x r^ - m^ r^; or dscale as r^ (sum dy x - m^ sum dy)).
 *    On 1e4 + N(0, 1e-2) data r^ = 100, so that costs u |m^| r^ = 0.06 in
 *    xhat units per element, 6% of dx: the catastrophic cancellation that
 *    data is there to catch, as E[x^2] - E[x]^2 is for the forward.
 * 2. The sums: |dA| <= u s_m G (and the division by m, 1u), |dB| <= u
 *    (s_m + 4) H (the product g xhat carries g's, xhat's and its own
 *    rounding, 4u with item 1).
 * 3. dx_i = r^ (g_i - A - xhat_i B), each operation rounding once more:
 *        |d dx_i| <= r^ (3u |g_i| + 2u |A| + |dA| + |xhat_i| |dB|
 *                        + 4u |xhat_i B|) + 2u |dx_i|.
 *    r^ multiplies everything: the absolute error grows with rstd (100 on
 *    the 1e4 data) exactly as dx does, so the bound stays relative to
 *    r^ |g|, and a formula error (a missing term, a wrong m, a wrong set)
 *    is O(r^ G), orders of magnitude above it. RMSNorm: A = 0, xhat = x r^.
 * 4. dscale_j = sum over the K elements sharing parameter j (every set
 *    that shares it, partials in a fixed order) of dy_i xhat_i; dbias_j =
 *    sum of dy_i. A two-level sum of K terms is within s_K:
 *        |d dscale_j| <= u (s_K + 4) sum |dy_i xhat_i|,
 *        |d dbias_j|  <= u s_K sum |dy_i|.
 * Running statistics (inference; the op is affine): r_c = 1/sqrt(rv + eps)
 * in float is within 6u (sqrt, division or rsqrt: OpenCL's ulp limits);
 * dx_i = dy_i s r_c within 10u |dx_i|; dscale's terms dy (x - rm) r_c may
 * fold as the forward's inference does (x r_c - rm r_c), 2u (|x| + |rm|) r_c
 * each, which the data keeps small (rm has x's magnitude, rv ~ 1):
 *        |d dscale_j| <= sum |dy_i| (u (s_K + 10) |xhat_i| + 2u (|x_i| + |rm|) r_c).
 * Non-finite expectations are exact, as for the forward (th_close): a NaN
 * in one set makes that set's dx and the dscale of its parameters NaN
 * (dbias, a sum of dy, stays finite), and nothing else.
 */
void th_saved_stats(const clnorm_desc *d, const float *x, float *mean, float *rstd)
{
    setinfo *si = set_stats(d, x);
    if (!si)
        th_die(__FILE__, __LINE__, "malloc", 0);
    for (size_t s = 0, sets = ref_sets(d); s < sets; s++) {
        if (mean)
            mean[s] = d->op == CLNORM_RMS_NORM ? 0.0f : (float)si[s].mu;
        rstd[s] = (float)si[s].rstd;
    }
    free(si);
}

/* Per-set sums of the backward's budget (item 2), from the saved statistics. */
typedef struct bwdset {
    double sg, sgx, ag, agx; /* sum g, sum g xhat, sum |g|, sum |g xhat| */
    size_t m;
} bwdset;

/* Per-parameter accumulators (item 4). */
typedef struct bwdpar {
    double k, ady, adyx, fold; /* count, sum |dy|, sum |dy xhat|, sum |dy| (|x| + |rm|) r_c (running) */
} bwdpar;

static double bwd_rstd_at(const clnorm_desc *d, const th_bwd_inputs *in, int batch, size_t set, size_t ch)
{
    if (batch)
        return in->rstd ? (double)in->rstd[set] : 0.0;
    return 1.0 / sqrt((double)in->running_var[ch] + (double)d->eps);
}

static double bwd_mean_at(const clnorm_desc *d, const th_bwd_inputs *in, int batch, size_t set, size_t ch)
{
    if (!batch)
        return (double)in->running_mean[ch];
    return d->op == CLNORM_RMS_NORM || !in->mean ? 0.0 : (double)in->mean[set];
}

static unsigned long compare_bwd(const clnorm_desc *d, const th_bwd_inputs *in, const th_bwd_outputs *got,
                                 double tol_scale, mism *m)
{
    size_t E = ref_elements(d), sets = ref_sets(d), A = ref_affine_len(d), set, aff, ch;
    int batch = ref_backward_uses_batch(d, in->running_mean != NULL);
    double *dx = malloc((E + 1) * sizeof *dx), *ds = malloc((A + 1) * sizeof *ds), *db = malloc((A + 1) * sizeof *db);
    double *sm = malloc((sets + 1) * sizeof *sm), *sr = malloc((sets + 1) * sizeof *sr);
    bwdset *bs = calloc(sets + 1, sizeof *bs);
    bwdpar *bp = calloc(A + 1, sizeof *bp);
    if (!dx || !ds || !db || !sm || !sr || !bs || !bp) {
        problem(m, "out of host memory");
        goto out;
    }
    for (size_t s = 0; s < sets; s++) {
        sm[s] = in->mean ? in->mean[s] : 0;
        sr[s] = in->rstd ? in->rstd[s] : 0;
    }
    if (ref_backward(d, in->x, in->dy, in->scale, in->mean ? sm : NULL, in->rstd ? sr : NULL, in->running_mean,
                     in->running_var, dx, ds, db) != 0) {
        problem(m, "reference rejects this descriptor (th_compare_bwd called on an invalid case)");
        goto out;
    }
    for (size_t i = 0; i < E; i++) { /* item 2's sums, item 4's magnitudes */
        ref_locate(d, i, &set, &aff, &ch);
        double r = bwd_rstd_at(d, in, batch, set, ch), xh = ((double)in->x[i] - bwd_mean_at(d, in, batch, set, ch)) * r;
        double g = (double)in->dy[i] * (in->scale ? (double)in->scale[aff] : 1.0);
        bwdset *b = &bs[set];
        b->m++, bp[aff].k += 1, bp[aff].ady += fabs((double)in->dy[i]);
        if (!isfinite(xh) || !isfinite(g))
            continue; /* the expectations depending on it are non-finite, hence exact */
        b->sg += g, b->sgx += g * xh, b->ag += fabs(g), b->agx += fabs(g * xh);
        bp[aff].adyx += fabs((double)in->dy[i] * xh);
        if (!batch)
            bp[aff].fold += fabs((double)in->dy[i]) * (fabs((double)in->x[i]) + fabs((double)in->running_mean[ch])) * r;
    }
    if (got->dx) {
        for (size_t i = 0; i < E; i++) {
            ref_locate(d, i, &set, &aff, &ch);
            double tol;
            if (!batch) {
                tol = 10 * U32 * fabs(dx[i]);
            } else {
                const bwdset *b = &bs[set];
                double n = b->m ? (double)b->m : 1.0, sn = 8 + 2 * log2(n) + sqrt(n);
                double r = fabs(bwd_rstd_at(d, in, 1, set, ch));
                double xh = fabs(((double)in->x[i] - bwd_mean_at(d, in, 1, set, ch)) * r);
                double g = fabs((double)in->dy[i] * (in->scale ? (double)in->scale[aff] : 1.0));
                double Am = d->op == CLNORM_RMS_NORM ? 0.0 : fabs(b->sg / n), Bm = fabs(b->sgx / n);
                double dA = d->op == CLNORM_RMS_NORM ? 0.0 : U32 * (sn + 1) * b->ag / n;
                double dB = U32 * (sn + 4) * b->agx / n;
                tol = r * (3 * U32 * g + 2 * U32 * Am + dA + xh * dB + 4 * U32 * xh * Bm) + 2 * U32 * fabs(dx[i]);
            }
            expect_close(m, "dx", i, dx[i], got->dx[i], th_storage_tol(d->dtype, dx[i], tol * tol_scale + 1e-30));
        }
    }
    for (size_t j = 0; j < A; j++) {
        double K = bp[j].k ? bp[j].k : 1.0, sK = 8 + 2 * log2(K) + sqrt(K);
        if (got->dscale)
            expect_close(m, "dscale", j, ds[j], got->dscale[j],
                         U32 * ((sK + (batch ? 4 : 10)) * bp[j].adyx + 2 * bp[j].fold) * tol_scale + 1e-30);
        if (got->dbias)
            expect_close(m, "dbias", j, db[j], got->dbias[j], U32 * sK * bp[j].ady * tol_scale + 1e-30);
    }
    if (m->report && !m->why && m->n > 4)
        th_fail("... %lu mismatches in all", m->n);
out:
    free(dx), free(ds), free(db), free(sm), free(sr), free(bs), free(bp);
    return m->n;
}

unsigned long th_compare_bwd(const clnorm_desc *d, const th_bwd_inputs *in, const th_bwd_outputs *got,
                             double tol_scale, int report)
{
    mism m = {0, report, NULL, 0};
    return compare_bwd(d, in, got, tol_scale, &m);
}

unsigned long th_compare_bwd_why(const clnorm_desc *d, const th_bwd_inputs *in, const th_bwd_outputs *got,
                                 double tol_scale, char *why, size_t len)
{
    mism m = {0, 0, why, len};
    if (why && len)
        why[0] = 0;
    return compare_bwd(d, in, got, tol_scale, &m);
}

/*
 * Storage types (clnorm_desc.dtype; SPEC.md, Storage types). The library
 * widens 16-bit inputs exactly, computes in float32 as for float32 data and
 * rounds once, on the final store. The reference is ref_forward (double) on
 * the same widened inputs, so the error of a stored output is
 *     |got - ref| <= |f32 result - ref| + |round_t(f32 result) - f32 result|.
 * The first term is the float32 model's (the caller's f32tol). The second is
 * round to nearest even into the storage type: at most half an ulp of the
 * type, i.e. u_t = 2^-p relative for a p+1-bit significand (float16: 11
 * bits, u = 2^-11; bfloat16: 8 bits, u = 2^-8), of |f32 result| <= |ref| +
 * f32tol; below the smallest normal float16 (2^-14) the spacing is fixed at
 * 2^-24, so half of it, 2^-25, is the absolute floor (bfloat16 shares
 * float32's exponent range: its subnormal floor, 2^-134, is below anything
 * the tests compare). Hence
 *     tol = f32tol + u_t * (|ref| + f32tol) + floor_t.
 * Overflow is the caller's: a float16 result above 65504 rounds to +-Inf
 * from 65520 (the halfway point to 2^16) up, and to 65504 below it.
 * th_compare and th_compare_bwd apply it to y and dx of a descriptor with a
 * 16-bit dtype (the inputs passed widened, the outputs as stored, widened):
 * clnorm-bench --check on its half-precision rows; for float32 it is f32tol.
 */
double th_storage_tol(clnorm_dtype t, double ref, double f32tol)
{
    if (t == CLNORM_FLOAT16) return f32tol + ldexp(1.0, -11) * (fabs(ref) + f32tol) + ldexp(1.0, -25);
    if (t == CLNORM_BFLOAT16) return f32tol + ldexp(1.0, -8) * (fabs(ref) + f32tol);
    return f32tol;
}

/* got (a value as stored in t) against the reference ref (th_storage_tol),
 * float16 overflow included: past 65504 a result must be the rounding of
 * some value within the float32 tolerance (65504 below 65520, Inf from it). */
int th_close_storage(clnorm_dtype t, double ref, float got, double f32tol)
{
    if (isnan(ref)) return isnan(got);
    if (t == CLNORM_FLOAT16 && fabs(ref) > 65504.0) {
        const double lo = fabs(ref) - th_storage_tol(t, ref, f32tol);
        if (isinf(got)) return (got > 0) == (ref > 0) && fabs(ref) + f32tol >= 65520.0;
        return fabsf(got) == 65504.0f && (got > 0) == (ref > 0) && lo < 65520.0;
    }
    if (isinf(ref)) return got == ref;
    return isfinite(got) && fabs(got - ref) <= th_storage_tol(t, ref, f32tol);
}

/* A forward of 16-bit data (d->dtype) against ref_forward on the widened
 * inputs: y by th_close_storage with the float32 tolerance 2e-5 (1 + |ref|),
 * the saved statistics (float32) within 1e-5 (|mean| + amp), amp the scale
 * of the data, and 1e-4 |rstd|; running statistics after training within
 * 1e-4 (1 + |ref|). Outputs NULL in got are not compared. */
unsigned long th_compare_storage(const clnorm_desc *d, const th_inputs *in, const th_outputs *got, double amp,
                                 int report)
{
    const size_t n = ref_elements(d), sets = ref_sets(d);
    const size_t C = (d->op == CLNORM_LAYER_NORM || d->op == CLNORM_RMS_NORM) ? 1 : d->c;
    double *ry = malloc((n ? n : 1) * sizeof *ry), *rm = malloc((sets ? sets : 1) * sizeof *rm);
    double *rs = malloc((sets ? sets : 1) * sizeof *rs), *rrm = malloc(C * sizeof *rrm),
           *rrv = malloc(C * sizeof *rrv);
    unsigned long bad = 0;
#define TH_SBAD(...)                                                                                 \
    do {                                                                                             \
        if (report && bad < 3) th_fail(__VA_ARGS__);                                                 \
        bad++;                                                                                       \
    } while (0)
    if (!ry || !rm || !rs || !rrm || !rrv) {
        TH_SBAD("out of host memory");
    } else if (ref_forward(d, in->x, in->scale, in->bias, in->running_mean, in->running_var, ry, rm, rs, rrm,
                           rrv) != 0) {
        TH_SBAD("the reference rejects the case");
    } else {
        for (size_t i = 0; i < n; i++)
            if (!th_close_storage(d->dtype, ry[i], got->y[i], 2e-5 * (1.0 + fabs(ry[i]))))
                TH_SBAD("y[%zu] = %.9g, reference %.9g (%s)", i, (double)got->y[i], ry[i], th_dtype_name(d->dtype));
        for (size_t s = 0; s < sets; s++) {
            if (got->mean && d->op != CLNORM_RMS_NORM && !th_close(rm[s], got->mean[s], 1e-5 * (fabs(rm[s]) + amp)))
                TH_SBAD("mean[%zu] = %.9g, reference %.9g", s, (double)got->mean[s], rm[s]);
            if (got->rstd && !th_close(rs[s], got->rstd[s], 1e-4 * fabs(rs[s])))
                TH_SBAD("rstd[%zu] = %.9g, reference %.9g", s, (double)got->rstd[s], rs[s]);
        }
        if (d->training && in->running_mean && got->running_mean && got->running_var)
            for (size_t c = 0; c < C; c++)
                if (!th_close(rrm[c], got->running_mean[c], 1e-4 * (1 + fabs(rrm[c]))) ||
                    !th_close(rrv[c], got->running_var[c], 1e-4 * (1 + fabs(rrv[c]))))
                    TH_SBAD("running stats [%zu] = %g %g, reference %g %g", c, (double)got->running_mean[c],
                            (double)got->running_var[c], rrm[c], rrv[c]);
    }
    free(ry), free(rm), free(rs), free(rrm), free(rrv);
    return bad;
}

/* A backward of 16-bit data against ref_backward on the widened inputs
 * (saved statistics when in->rstd is given, else the running ones): dx by
 * th_close_storage with the float32 tolerance 2e-5 (1 + max |dx|), dscale
 * and dbias (float32) within 1e-5 (1 + max |dscale|, |dbias|). */
unsigned long th_compare_storage_bwd(const clnorm_desc *d, const th_bwd_inputs *in, const th_bwd_outputs *got,
                                     int report)
{
    const size_t n = ref_elements(d), sets = ref_sets(d), na = ref_affine_len(d);
    double *md = malloc((sets ? sets : 1) * sizeof *md), *rd = malloc((sets ? sets : 1) * sizeof *rd);
    double *rdx = malloc((n ? n : 1) * sizeof *rdx), *rds = malloc((na ? na : 1) * sizeof *rds),
           *rdb = malloc((na ? na : 1) * sizeof *rdb);
    unsigned long bad = 0;
    const int batch = in->rstd != NULL;
    if (!md || !rd || !rdx || !rds || !rdb) {
        TH_SBAD("out of host memory");
        goto out;
    }
    for (size_t s = 0; s < sets && batch; s++) md[s] = in->mean ? in->mean[s] : 0.0, rd[s] = in->rstd[s];
    if (ref_backward(d, in->x, in->dy, in->scale, batch ? md : NULL, batch ? rd : NULL,
                     batch ? NULL : in->running_mean, batch ? NULL : in->running_var, rdx, rds, rdb) != 0) {
        TH_SBAD("the reference rejects the case");
        goto out;
    }
    double mx = 0.0, ms = 0.0;
    for (size_t e = 0; e < n; e++) mx = fmax(mx, fabs(rdx[e]));
    for (size_t e = 0; e < na; e++) ms = fmax(ms, fmax(fabs(rds[e]), fabs(rdb[e])));
    for (size_t e = 0; e < n && got->dx; e++)
        if (!th_close_storage(d->dtype, rdx[e], got->dx[e], 2e-5 * (1.0 + mx)))
            TH_SBAD("dx[%zu] = %.9g, reference %.9g (%s)", e, (double)got->dx[e], rdx[e], th_dtype_name(d->dtype));
    for (size_t e = 0; e < na; e++) {
        if (got->dscale && !th_close(rds[e], got->dscale[e], 1e-5 * (1.0 + ms)))
            TH_SBAD("dscale[%zu] = %.9g, reference %.9g", e, (double)got->dscale[e], rds[e]);
        if (got->dbias && !th_close(rdb[e], got->dbias[e], 1e-5 * (1.0 + ms)))
            TH_SBAD("dbias[%zu] = %.9g, reference %.9g", e, (double)got->dbias[e], rdb[e]);
    }
#undef TH_SBAD
out:
    free(md), free(rd), free(rdx), free(rds), free(rdb);
    return bad;
}
