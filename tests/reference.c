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
static int ref_validate(const clnorm_desc *d, const float *rm, const float *rv)
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
    if ((rm == NULL) != (rv == NULL))
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

int ref_forward(const clnorm_desc *d, const float *x, const float *scale, const float *bias,
                const float *running_mean_in, const float *running_var_in,
                double *y, double *mean, double *rstd, double *running_mean_out, double *running_var_out)
{
    if (!d || !x)
        return -1;
    if (ref_validate(d, running_mean_in, running_var_in) != 0)
        return -1;

    const size_t E = ref_elements(d), sets = ref_sets(d), count = E / sets;
    const double eps = (double)d->eps, mom = (double)d->momentum;
    const size_t C = is_row_op(d->op) ? 0 : d->c;
    size_t set, aff, ch;

    /* Which statistics normalize y: batch/instance/group statistics, or the running ones. */
    int use_running = 0;
    if (d->op == CLNORM_BATCH_NORM && !d->training)
        use_running = 1;
    if (d->op == CLNORM_INSTANCE_NORM && !d->training && running_mean_in)
        use_running = 1;

    if (use_running) {
        for (size_t i = 0; i < E; i++) {
            ref_locate(d, i, &set, &aff, &ch);
            double r = 1.0 / sqrt((double)running_var_in[ch] + eps);
            double v = ((double)x[i] - (double)running_mean_in[ch]) * r;
            if (scale)
                v *= (double)scale[aff];
            if (bias)
                v += (double)bias[aff];
            if (y)
                y[i] = v;
        }
        for (size_t c = 0; c < C; c++) {
            if (running_mean_out)
                running_mean_out[c] = running_mean_in[c];
            if (running_var_out)
                running_var_out[c] = running_var_in[c];
        }
        return 0;
    }

    double *sum = calloc(sets, sizeof *sum);
    double *m2 = calloc(sets, sizeof *m2);
    double *mu = calloc(sets, sizeof *mu);
    double *rs = calloc(sets, sizeof *rs);
    float *first = malloc(sets * sizeof *first);
    unsigned char *bad = calloc(sets, 1), *constant = malloc(sets), *seen = calloc(sets, 1);
    unsigned char *has_nan = calloc(sets, 1);
    if (!sum || !m2 || !mu || !rs || !first || !bad || !constant || !seen || !has_nan) {
        free(sum); free(m2); free(mu); free(rs); free(first); free(bad); free(constant); free(seen);
        free(has_nan);
        return -2;
    }
    memset(constant, 1, sets);

    /* Pass 1: sums (or sums of squares for RMSNorm), non-finite and constant detection. */
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        double v = (double)x[i];
        if (!isfinite(v))
            bad[set] = 1;
        if (isnan(v))
            has_nan[set] = 1;
        if (!seen[set]) {
            seen[set] = 1;
            first[set] = x[i];
        } else if (x[i] != first[set]) {
            constant[set] = 0;
        }
        sum[set] += d->op == CLNORM_RMS_NORM ? v * v : v;
    }
    for (size_t s = 0; s < sets; s++) {
        if (d->op == CLNORM_RMS_NORM)
            mu[s] = 0.0;
        else if (constant[s])
            mu[s] = (double)first[s]; /* exact: a constant set has var == 0 exactly */
        else
            mu[s] = sum[s] / (double)count;
    }
    /* Pass 2: sum of squared deviations from the mean. */
    if (d->op != CLNORM_RMS_NORM) {
        for (size_t i = 0; i < E; i++) {
            ref_locate(d, i, &set, &aff, &ch);
            double dv = (double)x[i] - mu[set];
            m2[set] += dv * dv;
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
     *    LayerNorm and GroupNorm give rstd = +Inf and y = 0 * Inf = NaN. */
    const int rstd_zero = d->op == CLNORM_BATCH_NORM || d->op == CLNORM_INSTANCE_NORM;
    for (size_t s = 0; s < sets; s++) {
        double var;
        if (d->op == CLNORM_RMS_NORM) {
            var = sum[s] / (double)count; /* mean of squares */
            bad[s] = has_nan[s];
        } else {
            var = constant[s] ? 0.0 : m2[s] / (double)count; /* biased */
        }
        if (bad[s]) {
            mu[s] = NAN;
            rs[s] = NAN;
            m2[s] = NAN; /* reused below as the biased variance */
        } else {
            if (rstd_zero && var == 0.0 && eps == 0.0)
                rs[s] = 0.0;
            else
                rs[s] = 1.0 / sqrt(var + eps); /* RMS with Inf: 0 */
            m2[s] = var;
        }
        if (mean && d->op != CLNORM_RMS_NORM)
            mean[s] = mu[s];
        if (rstd)
            rstd[s] = rs[s];
    }
    /* Normalize. */
    if (y) {
        for (size_t i = 0; i < E; i++) {
            ref_locate(d, i, &set, &aff, &ch);
            double v;
            if (bad[set])
                v = NAN;
            else
                v = ((double)x[i] - mu[set]) * rs[set];
            if (scale)
                v *= (double)scale[aff];
            if (bias)
                v += (double)bias[aff];
            y[i] = v;
        }
    }
    /* Running statistics (BatchNorm training; InstanceNorm training with tracked stats).
     * running_var_biased = 0: the batch variance enters unbiased, times
     * count / (count - 1) (PyTorch); 1: biased (ONNX BatchNormalization-14/15). */
    const double vscale = d->running_var_biased ? 1.0 : (double)count / (double)(count - 1);
    if (is_channel_op(d->op) && running_mean_in && running_var_in && d->op != CLNORM_GROUP_NORM) {
        for (size_t c = 0; c < C; c++) {
            double bm, bv; /* batch mean and unbiased batch variance of channel c */
            if (d->op == CLNORM_BATCH_NORM) {
                bm = mu[c];
                bv = m2[c] * vscale;
            } else {
                bm = 0.0;
                bv = 0.0;
                for (size_t n = 0; n < d->n; n++) {
                    bm += mu[n * C + c];
                    bv += m2[n * C + c] * vscale;
                }
                bm /= (double)d->n;
                bv /= (double)d->n;
            }
            if (running_mean_out)
                running_mean_out[c] = (1.0 - mom) * (double)running_mean_in[c] + mom * bm;
            if (running_var_out)
                running_var_out[c] = (1.0 - mom) * (double)running_var_in[c] + mom * bv;
        }
    }
    free(sum); free(m2); free(mu); free(rs); free(first); free(bad); free(constant); free(seen);
    free(has_nan);
    return 0;
}
