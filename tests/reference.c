/*
 * Double-precision CPU reference for every clnorm operation (see reference.h).
 *
 * Deliberately naive: one scalar loop over the elements per pass, statistics
 * accumulated per set in double, two passes (mean, then sum of squared
 * deviations), exactly as ../shared/SPEC.md states the semantics. Nothing
 * here is shared with host/ or kernels/.
 */
#include "reference.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

/* An input array of either precision: ref_forward reads floats and ref_forward_d doubles through the same
 * code, so both compute the same thing, and ref_forward needs no double copy of x. */
typedef struct ref_in {
    const float *f;
    const double *d;
} ref_in;
static ref_in in_f(const float *p) { ref_in a = {p, NULL}; return a; }
static ref_in in_d(const double *p) { ref_in a = {NULL, p}; return a; }
static int in_has(ref_in a) { return a.f != NULL || a.d != NULL; }
static double in_at(ref_in a, size_t i) { return a.d ? a.d[i] : (double)a.f[i]; }

static int is_row_op(clnorm_op op) { return op == CLNORM_LAYER_NORM || op == CLNORM_RMS_NORM; }
static int is_channel_op(clnorm_op op)
{
    return op == CLNORM_BATCH_NORM || op == CLNORM_INSTANCE_NORM || op == CLNORM_GROUP_NORM;
}

size_t ref_spatial(const clnorm_desc *d)
{
    size_t s = 1;
    if (d->rank > 3)
        return 0;
    for (unsigned k = 0; k < d->rank; k++) {
        if (d->spatial[k] == 0 || !mul_ok(s, d->spatial[k], &s))
            return 0;
    }
    return s;
}

size_t ref_elements(const clnorm_desc *d)
{
    size_t e;
    if (is_row_op(d->op)) {
        if (d->rows == 0 || d->cols == 0 || !mul_ok(d->rows, d->cols, &e))
            return 0;
        return e;
    }
    if (!is_channel_op(d->op))
        return 0;
    size_t s = ref_spatial(d);
    if (s == 0 || d->n == 0 || d->c == 0)
        return 0;
    if (!mul_ok(d->n, d->c, &e) || !mul_ok(e, s, &e))
        return 0;
    return e;
}

size_t ref_sets(const clnorm_desc *d)
{
    if (ref_elements(d) == 0)
        return 0;
    switch (d->op) {
    case CLNORM_LAYER_NORM:
    case CLNORM_RMS_NORM: return d->rows;
    case CLNORM_BATCH_NORM: return d->c;
    case CLNORM_INSTANCE_NORM: return d->n * d->c;
    case CLNORM_GROUP_NORM:
        if (d->groups == 0 || d->c % d->groups != 0)
            return 0;
        return d->n * d->groups;
    default: return 0;
    }
}

size_t ref_count_per_set(const clnorm_desc *d)
{
    size_t sets = ref_sets(d);
    return sets ? ref_elements(d) / sets : 0;
}

size_t ref_affine_len(const clnorm_desc *d)
{
    if (is_row_op(d->op))
        return d->cols;
    return d->per_sample_affine ? d->n * d->c : d->c;
}

void ref_locate(const clnorm_desc *d, size_t i, size_t *set, size_t *affine, size_t *channel)
{
    if (is_row_op(d->op)) {
        *set = i / d->cols;
        *affine = i % d->cols;
        *channel = *affine;
        return;
    }
    size_t S = ref_spatial(d), C = d->c, n, c;
    if (d->layout == CLNORM_CHANNELS_LAST) {
        c = i % C;
        n = i / C / S;
    } else {
        c = (i / S) % C;
        n = i / S / C;
    }
    *channel = c;
    *affine = d->per_sample_affine ? n * C + c : c;
    switch (d->op) {
    case CLNORM_BATCH_NORM: *set = c; break;
    case CLNORM_INSTANCE_NORM: *set = n * C + c; break;
    default: *set = n * d->groups + c / (C / d->groups); break;
    }
}

/* Validation: what the library must reject. */
static int ref_validate(const clnorm_desc *d, int rm, int rv) /* rm, rv: running stats present */
{
    if (!is_row_op(d->op) && !is_channel_op(d->op))
        return -1;
    if (!isfinite(d->eps) || d->eps < 0.0f)
        return -1;
    if (d->running_var_biased != 0 && d->running_var_biased != 1)
        return -1; /* 0: PyTorch's unbiased running_var update, 1: ONNX's biased one */
    if (is_channel_op(d->op)) {
        if (d->layout != CLNORM_CHANNELS_FIRST && d->layout != CLNORM_CHANNELS_LAST)
            return -1;
        if (d->rank > 3)
            return -1;
    } else if (d->per_sample_affine) {
        return -1; /* per-sample affine is a channel-norm option */
    }
    if (ref_elements(d) == 0)
        return -1;
    if (d->op == CLNORM_GROUP_NORM && (d->groups == 0 || d->c % d->groups != 0))
        return -1;
    if (rm != rv)
        return -1; /* running stats come as a pair */
    if (rm && d->op != CLNORM_BATCH_NORM && d->op != CLNORM_INSTANCE_NORM)
        return -1; /* only BatchNorm and InstanceNorm have running statistics */
    /* momentum matters (and is checked) only where running stats are updated */
    if (rm && d->training && !(d->momentum >= 0.0f && d->momentum <= 1.0f))
        return -1;
    if (d->op == CLNORM_BATCH_NORM) {
        if (!d->training && !rm)
            return -1; /* BatchNorm inference normalizes with the running stats */
        if (d->training && d->n * ref_spatial(d) == 1)
            return -1; /* PyTorch: "Expected more than 1 value per channel when training" */
    }
    if (d->op == CLNORM_INSTANCE_NORM && d->training && ref_spatial(d) == 1)
        return -1; /* PyTorch: "Expected more than 1 spatial element when training" */
    return 0;
}

/* Inference with the running statistics: y = (x - rm) / sqrt(rv + eps)
 * * scale + bias; the running statistics come out as they went in. */
static void ref_apply_running(const clnorm_desc *d, ref_in x, ref_in scale, ref_in bias, ref_in rm, ref_in rv,
                              double *y, double *rm_out, double *rv_out)
{
    const size_t E = ref_elements(d), C = d->c;
    size_t set, aff, ch;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        double r = 1.0 / sqrt(in_at(rv, ch) + (double)d->eps);
        double v = (in_at(x, i) - in_at(rm, ch)) * r;
        if (in_has(scale))
            v *= in_at(scale, aff);
        if (in_has(bias))
            v += in_at(bias, aff);
        if (y)
            y[i] = v;
    }
    for (size_t c = 0; c < C; c++) {
        if (rm_out)
            rm_out[c] = in_at(rm, c);
        if (rv_out)
            rv_out[c] = in_at(rv, c);
    }
}

/* Per-set statistics of the batch. */
typedef struct ref_stats {
    size_t sets, count;
    double *sum, *m2, *mu, *rs; /* m2: the biased variance once ref_finish ran */
    double *first; /* a float input widens exactly, so comparing in double is comparing the floats */
    unsigned char *bad, *constant, *seen, *has_nan;
} ref_stats;

static void ref_stats_free(ref_stats *st)
{
    free(st->sum); free(st->m2); free(st->mu); free(st->rs); free(st->first); free(st->bad); free(st->constant);
    free(st->seen); free(st->has_nan);
}

static int ref_stats_alloc(ref_stats *st, size_t sets, size_t count)
{
    memset(st, 0, sizeof *st);
    st->sets = sets, st->count = count;
    st->sum = calloc(sets, sizeof *st->sum);
    st->m2 = calloc(sets, sizeof *st->m2);
    st->mu = calloc(sets, sizeof *st->mu);
    st->rs = calloc(sets, sizeof *st->rs);
    st->first = malloc(sets * sizeof *st->first);
    st->bad = calloc(sets, 1), st->constant = malloc(sets), st->seen = calloc(sets, 1);
    st->has_nan = calloc(sets, 1);
    if (!st->sum || !st->m2 || !st->mu || !st->rs || !st->first || !st->bad || !st->constant || !st->seen ||
        !st->has_nan) {
        ref_stats_free(st);
        return -1;
    }
    memset(st->constant, 1, sets);
    return 0;
}

/* Pass 1: sums (or sums of squares for RMSNorm), non-finite and constant
 * detection, the means. Pass 2: sum of squared deviations from the mean. */
static void ref_passes(const clnorm_desc *d, ref_in x, ref_stats *st)
{
    const size_t E = ref_elements(d);
    size_t set, aff, ch;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        double v = in_at(x, i);
        if (!isfinite(v))
            st->bad[set] = 1;
        if (isnan(v))
            st->has_nan[set] = 1;
        if (!st->seen[set]) {
            st->seen[set] = 1;
            st->first[set] = v;
        } else if (v != st->first[set]) {
            st->constant[set] = 0;
        }
        st->sum[set] += d->op == CLNORM_RMS_NORM ? v * v : v;
    }
    for (size_t s = 0; s < st->sets; s++) {
        if (d->op == CLNORM_RMS_NORM)
            st->mu[s] = 0.0;
        else if (st->constant[s])
            st->mu[s] = st->first[s]; /* exact: a constant set has var == 0 exactly */
        else
            st->mu[s] = st->sum[s] / (double)st->count;
    }
    if (d->op == CLNORM_RMS_NORM)
        return;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        double dv = in_at(x, i) - st->mu[set];
        st->m2[set] += dv * dv;
    }
}

/* SPEC.md's special values:
 *  - LayerNorm, GroupNorm, BatchNorm, InstanceNorm: NaN or +-Inf in a set
 *    makes the set NaN (statistics and y).
 *  - RMSNorm: only NaN does; +-Inf without NaN gives mean(x^2) = +Inf and
 *    rstd = 1 / sqrt(Inf) = 0, so finite x give 0 * scale + bias and
 *    infinite x give Inf * 0 = NaN (x^2 of a finite float never
 *    overflows in double).
 *  - var + eps == 0 (a constant set with eps = 0): BatchNorm and
 *    InstanceNorm give rstd = 0 (PyTorch's inverse std) and y = bias;
 *    LayerNorm and GroupNorm give rstd = +Inf and y = 0 * Inf = NaN.
 * Fills rs, the saved mean and rstd, and m2 with the biased variance. */
static void ref_finish(const clnorm_desc *d, ref_stats *st, double *mean, double *rstd)
{
    const int rstd_zero = d->op == CLNORM_BATCH_NORM || d->op == CLNORM_INSTANCE_NORM;
    const double eps = (double)d->eps;
    for (size_t s = 0; s < st->sets; s++) {
        double var;
        if (d->op == CLNORM_RMS_NORM) {
            var = st->sum[s] / (double)st->count; /* mean of squares */
            st->bad[s] = st->has_nan[s];
        } else {
            var = st->constant[s] ? 0.0 : st->m2[s] / (double)st->count; /* biased */
        }
        if (st->bad[s]) {
            st->mu[s] = NAN;
            st->rs[s] = NAN;
            st->m2[s] = NAN;
        } else {
            if (rstd_zero && var == 0.0 && eps == 0.0)
                st->rs[s] = 0.0;
            else
                st->rs[s] = 1.0 / sqrt(var + eps); /* RMS with Inf: 0 */
            st->m2[s] = var;
        }
        if (mean && d->op != CLNORM_RMS_NORM)
            mean[s] = st->mu[s];
        if (rstd)
            rstd[s] = st->rs[s];
    }
}

static void ref_normalize(const clnorm_desc *d, ref_in x, ref_in scale, ref_in bias, const ref_stats *st,
                          double *y)
{
    const size_t E = ref_elements(d);
    size_t set, aff, ch;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        double v = st->bad[set] ? NAN : (in_at(x, i) - st->mu[set]) * st->rs[set];
        if (in_has(scale))
            v *= in_at(scale, aff);
        if (in_has(bias))
            v += in_at(bias, aff);
        y[i] = v;
    }
}

/* Running statistics (BatchNorm training; InstanceNorm training with
 * tracked stats). running_var_biased = 0: the batch variance enters
 * unbiased, times count / (count - 1) (PyTorch); 1: biased (ONNX
 * BatchNormalization-14/15). */
static void ref_update_running(const clnorm_desc *d, const ref_stats *st, ref_in rm, ref_in rv, double *rm_out,
                               double *rv_out)
{
    const double vscale = d->running_var_biased ? 1.0 : (double)st->count / (double)(st->count - 1);
    const double mom = (double)d->momentum;
    const size_t C = d->c;
    for (size_t c = 0; c < C; c++) {
        double bm = 0.0, bv = 0.0; /* batch mean and unbiased batch variance of channel c */
        if (d->op == CLNORM_BATCH_NORM) {
            bm = st->mu[c];
            bv = st->m2[c] * vscale;
        } else {
            for (size_t n = 0; n < d->n; n++) {
                bm += st->mu[n * C + c];
                bv += st->m2[n * C + c] * vscale;
            }
            bm /= (double)d->n;
            bv /= (double)d->n;
        }
        if (rm_out)
            rm_out[c] = (1.0 - mom) * in_at(rm, c) + mom * bm;
        if (rv_out)
            rv_out[c] = (1.0 - mom) * in_at(rv, c) + mom * bv;
    }
}

static int ref_forward_in(const clnorm_desc *d, ref_in x, ref_in scale, ref_in bias, ref_in rm_in, ref_in rv_in,
                          double *y, double *mean, double *rstd, double *running_mean_out, double *running_var_out)
{
    if (!d || !in_has(x))
        return -1;
    if (ref_validate(d, in_has(rm_in), in_has(rv_in)) != 0)
        return -1;
    /* Which statistics normalize y: batch/instance/group statistics, or the running ones. */
    if ((d->op == CLNORM_BATCH_NORM && !d->training) ||
        (d->op == CLNORM_INSTANCE_NORM && !d->training && in_has(rm_in))) {
        ref_apply_running(d, x, scale, bias, rm_in, rv_in, y, running_mean_out, running_var_out);
        return 0;
    }
    ref_stats st;
    const size_t sets = ref_sets(d);
    if (ref_stats_alloc(&st, sets, ref_elements(d) / sets) != 0)
        return -2;
    ref_passes(d, x, &st);
    ref_finish(d, &st, mean, rstd);
    if (y)
        ref_normalize(d, x, scale, bias, &st, y);
    if (is_channel_op(d->op) && in_has(rm_in) && in_has(rv_in) && d->op != CLNORM_GROUP_NORM)
        ref_update_running(d, &st, rm_in, rv_in, running_mean_out, running_var_out);
    ref_stats_free(&st);
    return 0;
}

int ref_forward(const clnorm_desc *d, const float *x, const float *scale, const float *bias,
                const float *running_mean_in, const float *running_var_in,
                double *y, double *mean, double *rstd, double *running_mean_out, double *running_var_out)
{
    return ref_forward_in(d, in_f(x), in_f(scale), in_f(bias), in_f(running_mean_in), in_f(running_var_in), y, mean,
                          rstd, running_mean_out, running_var_out);
}

int ref_forward_d(const clnorm_desc *d, const double *x, const double *scale, const double *bias,
                  const double *running_mean_in, const double *running_var_in,
                  double *y, double *mean, double *rstd, double *running_mean_out, double *running_var_out)
{
    return ref_forward_in(d, in_d(x), in_d(scale), in_d(bias), in_d(running_mean_in), in_d(running_var_in), y, mean,
                          rstd, running_mean_out, running_var_out);
}

/* ---------- backward (SPEC.md, Backward) ---------- */

int ref_backward_uses_batch(const clnorm_desc *d, int has_running)
{
    if (d->op == CLNORM_BATCH_NORM)
        return d->training != 0;
    if (d->op == CLNORM_INSTANCE_NORM)
        return d->training || !has_running;
    return 1; /* LayerNorm, RMSNorm, GroupNorm have no running statistics */
}

/* The running-statistics backward: y = (x - rm) * rstd_c * scale + bias is affine in x, so dx is dy scaled and
 * nothing couples the elements. */
static void ref_backward_running(const clnorm_desc *d, const float *x, const float *dy, const float *scale,
                                 const float *rm, const float *rv, double *dx, double *dscale, double *dbias)
{
    const size_t E = ref_elements(d);
    size_t set, aff, ch;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        const double r = 1.0 / sqrt((double)rv[ch] + (double)d->eps); /* as the forward computes it */
        const double g = (double)dy[i] * (scale ? (double)scale[aff] : 1.0);
        if (dx)
            dx[i] = g * r;
        if (dscale)
            dscale[aff] += (double)dy[i] * (((double)x[i] - (double)rm[ch]) * r);
        if (dbias)
            dbias[aff] += (double)dy[i];
    }
}

int ref_backward(const clnorm_desc *d, const float *x, const float *dy, const float *scale,
                 const double *mean, const double *rstd, const float *running_mean, const float *running_var,
                 double *dx, double *dscale, double *dbias)
{
    if (!d || !x || !dy)
        return -1;
    if (!dx && !dscale && !dbias)
        return -1; /* the library's CLNORM_ERR_NOTHING_TO_DO */
    if (ref_validate(d, running_mean != NULL, running_var != NULL) != 0)
        return -1;
    const int batch = ref_backward_uses_batch(d, running_mean != NULL);
    const int rms = d->op == CLNORM_RMS_NORM;
    if (batch && (!rstd || (!rms && !mean)))
        return -1; /* the saved statistics are required */
    const size_t E = ref_elements(d), A = ref_affine_len(d);
    if (!batch) {
        for (size_t k = 0; k < A; k++) {
            if (dscale)
                dscale[k] = 0.0;
            if (dbias)
                dbias[k] = 0.0;
        }
        ref_backward_running(d, x, dy, scale, running_mean, running_var, dx, dscale, dbias);
        return 0;
    }
    const size_t sets = ref_sets(d), m = E / sets;
    /* Per set: sum of g and of g * xhat, for mean(g) and mean(g * xhat). */
    double *sg = calloc(sets, sizeof *sg), *sgx = calloc(sets, sizeof *sgx);
    if (!sg || !sgx) {
        free(sg);
        free(sgx);
        return -2;
    }
    for (size_t k = 0; k < A; k++) {
        if (dscale)
            dscale[k] = 0.0;
        if (dbias)
            dbias[k] = 0.0;
    }
    size_t set, aff, ch;
    /* Pass 1, in element order (a fixed order, so the sums are reproducible): the set sums and the parameter
     * sums, which run over every set sharing the parameter. */
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        const double xhat = rms ? (double)x[i] * rstd[set] : ((double)x[i] - mean[set]) * rstd[set];
        const double g = (double)dy[i] * (scale ? (double)scale[aff] : 1.0);
        sg[set] += g;
        sgx[set] += g * xhat;
        if (dscale)
            dscale[aff] += (double)dy[i] * xhat;
        if (dbias)
            dbias[aff] += (double)dy[i];
    }
    /* Pass 2: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); RMSNorm has no mean(g) term (no mean was
     * subtracted in the forward). */
    if (dx) {
        for (size_t i = 0; i < E; i++) {
            ref_locate(d, i, &set, &aff, &ch);
            const double xhat = rms ? (double)x[i] * rstd[set] : ((double)x[i] - mean[set]) * rstd[set];
            const double g = (double)dy[i] * (scale ? (double)scale[aff] : 1.0);
            const double mgx = sgx[set] / (double)m;
            dx[i] = rms ? rstd[set] * (g - xhat * mgx) : rstd[set] * (g - sg[set] / (double)m - xhat * mgx);
        }
    }
    free(sg);
    free(sgx);
    return 0;
}

/* ---- ONNX MeanVarianceNormalization and LpNormalization ----------------
 * Straight from the ONNX operator definitions, on a row-major tensor of
 * ndim dims, in double: a set is the elements that share their kept (not
 * reduced) coordinates. */

/* The set of element i: its kept coordinates as one index. */
static size_t onnx_set_of(unsigned ndim, const size_t *dims, unsigned mask, size_t i)
{
    size_t set = 0, mul = 1;
    for (unsigned k = ndim; k-- > 0;) {
        const size_t coord = i % dims[k];
        i /= dims[k];
        if (!((mask >> k) & 1u)) {
            set += coord * mul;
            mul *= dims[k];
        }
    }
    return set;
}

static size_t onnx_counts(unsigned ndim, const size_t *dims, unsigned mask, size_t *elems)
{
    size_t sets = 1, n = 1;
    for (unsigned k = 0; k < ndim; ++k) {
        n *= dims[k];
        if (!((mask >> k) & 1u)) sets *= dims[k];
    }
    *elems = n;
    return sets;
}

int ref_mvn(unsigned ndim, const size_t *dims, unsigned axes_mask, const float *x, double *y, double *std)
{
    size_t n;
    const size_t sets = onnx_counts(ndim, dims, axes_mask, &n), count = n / sets;
    double *m = calloc(sets, sizeof *m), *v = calloc(sets, sizeof *v);
    if (!m || !v) {
        free(m), free(v);
        return -1;
    }
    for (size_t i = 0; i < n; ++i) m[onnx_set_of(ndim, dims, axes_mask, i)] += x[i];
    for (size_t s = 0; s < sets; ++s) m[s] /= (double)count;
    for (size_t i = 0; i < n; ++i) {
        const size_t s = onnx_set_of(ndim, dims, axes_mask, i);
        v[s] += (x[i] - m[s]) * (x[i] - m[s]);
    }
    /* ONNX: (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9); the variance here is
     * the same quantity computed without cancellation. */
    for (size_t i = 0; i < n; ++i) {
        const size_t s = onnx_set_of(ndim, dims, axes_mask, i);
        y[i] = (x[i] - m[s]) / (sqrt(v[s] / (double)count) + 1e-9);
        if (std) std[i] = sqrt(v[s] / (double)count);
    }
    free(m), free(v);
    return 0;
}

int ref_lp_norm(unsigned ndim, const size_t *dims, unsigned axis, int p, const float *x, double *y)
{
    size_t n;
    const unsigned mask = 1u << axis;
    const size_t sets = onnx_counts(ndim, dims, mask, &n);
    double *nrm = calloc(sets, sizeof *nrm);
    if (!nrm) return -1;
    for (size_t i = 0; i < n; ++i)
        nrm[onnx_set_of(ndim, dims, mask, i)] += p == 1 ? fabs((double)x[i]) : (double)x[i] * x[i];
    /* ONNX's reference: x / norm, and 0 where the norm is 0. */
    for (size_t i = 0; i < n; ++i) {
        const double d = p == 1 ? nrm[onnx_set_of(ndim, dims, mask, i)] : sqrt(nrm[onnx_set_of(ndim, dims, mask, i)]);
        y[i] = d == 0.0 ? 0.0 : x[i] / d;
    }
    free(nrm);
    return 0;
}
