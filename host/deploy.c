/*
 * Deployment entry points built on the one computation: BatchNorm folded
 * into a convolution (clnorm_fold_batch_norm). Validation (desc.c), plan
 * (plan.c) and executor (exec.c) are the ones clnorm_forward uses.
 */
#include "internal.h"

#include <string.h>

CLNORM_API void clnorm_fold_desc_init(clnorm_fold_desc *f)
{
    if (!f) return;
    memset(f, 0, sizeof *f);
    f->eps = 1e-5f;
}

clnorm_desc clnorm_fold_as_desc(const clnorm_fold_desc *f)
{
    clnorm_desc d;
    memset(&d, 0, sizeof d);
    d.x = f->weight, d.y = f->weight_out, d.scale = f->scale, d.bias = f->bias;
    d.running_mean = f->running_mean, d.running_var = f->running_var;
    d.mean = f->conv_bias, d.rstd = f->bias_out;
    return d;
}

CLNORM_API clnorm_status clnorm_fold_batch_norm(clnorm_ctx *c, const clnorm_fold_desc *f, cl_uint num_wait,
                                                const cl_event *wait_list, cl_event *event)
{
    if (!c) return CLNORM_ERR_NULL_ARGUMENT;
    clnorm_plan plan;
    int st = clnorm_call_begin(c, f, num_wait, wait_list, event);
    if (st == CLNORM_OK && (st = clnorm_validate_fold(c, f)) == CLNORM_OK &&
        (st = clnorm_plan_fold(&c->dev, &c->settings, f, &plan)) == CLNORM_OK) {
        const clnorm_desc d = clnorm_fold_as_desc(f);
        st = clnorm_execute(c, &d, NULL, &plan, num_wait, wait_list, event);
    }
    pthread_mutex_unlock(&c->lock);
    return (clnorm_status)st;
}

/* ---- ONNX MeanVarianceNormalization and LpNormalization -----------------
 * The tensor's axes, size-1 axes dropped, merged into runs of reduced (R)
 * and kept (K) axes; the run pattern names the existing operation whose
 * reduction sets they are (clnorm.h lists them). */

typedef struct runs {
    unsigned n;
    int reduced[CLNORM_MAX_DIMS];
    size_t size[CLNORM_MAX_DIMS];
    size_t elems, rsize; /* all elements; one set's */
} runs;

static clnorm_status make_runs(clnorm_ctx *c, unsigned ndim, const size_t *dims, unsigned mask, runs *r)
{
    memset(r, 0, sizeof *r);
    if (!dims) return clnorm_fail(c, CLNORM_ERR_NULL_ARGUMENT, "dims is NULL");
    if (ndim == 0 || ndim > CLNORM_MAX_DIMS)
        return clnorm_fail(c, CLNORM_ERR_INVALID_SHAPE, "ndim %u is not in 1..%d", ndim, CLNORM_MAX_DIMS);
    if (mask >> ndim)
        return clnorm_fail(c, CLNORM_ERR_INVALID_SHAPE, "axes mask 0x%x names an axis >= ndim %u", mask, ndim);
    r->elems = r->rsize = 1;
    for (unsigned k = 0; k < ndim; ++k) {
        if (dims[k] == 0) return clnorm_fail(c, CLNORM_ERR_INVALID_SHAPE, "dims[%u] is 0", k);
        if (dims[k] > SIZE_MAX / r->elems)
            return clnorm_fail(c, CLNORM_ERR_TOO_LARGE, "the element count overflows size_t");
        r->elems *= dims[k];
        const int red = (mask >> k) & 1u;
        if (red) r->rsize *= dims[k];
        if (dims[k] == 1) continue; /* belongs to no set boundary */
        if (r->n && r->reduced[r->n - 1] == red) {
            r->size[r->n - 1] *= dims[k];
        } else {
            r->reduced[r->n] = red, r->size[r->n] = dims[k];
            ++r->n;
        }
    }
    return CLNORM_OK;
}

/* d for the sets of r, or UNSUPPORTED. lp (LpNormalization, one reduced
 * run): an outer axis is a channels-last InstanceNorm column set (R K as
 * K R K with one sample), whose column kernels have the mean-free
 * statistics; BatchNorm's pipelines (R K for MVN) do not. */
static clnorm_status desc_of_runs(clnorm_ctx *c, const runs *r, int lp, const char *what, clnorm_desc *d)
{
    char pat[CLNORM_MAX_DIMS + 1];
    for (unsigned k = 0; k < r->n; ++k) pat[k] = r->reduced[k] ? 'R' : 'K';
    pat[r->n] = 0;
    if (r->rsize == 1) {
        /* One-element sets (every reduced axis of size 1): rows of 1. */
        clnorm_desc_init(d, CLNORM_LAYER_NORM);
        d->rows = r->elems, d->cols = 1;
    } else if (strcmp(pat, "R") == 0 || strcmp(pat, "KR") == 0) {
        clnorm_desc_init(d, CLNORM_LAYER_NORM);
        d->rows = r->n == 1 ? 1 : r->size[0], d->cols = r->size[r->n - 1];
    } else if (!lp && (strcmp(pat, "RK") == 0 || strcmp(pat, "RKR") == 0)) {
        /* Per channel over (n, spatial): BatchNorm's sets, batch statistics. */
        clnorm_desc_init(d, CLNORM_BATCH_NORM);
        d->n = r->size[0], d->c = r->size[1], d->rank = r->n == 3, d->spatial[0] = r->n == 3 ? r->size[2] : 0;
    } else if (strcmp(pat, "KRK") == 0 || strcmp(pat, "RK") == 0) {
        /* Per (n, c) over the middle: channels-last InstanceNorm (R K: one
         * sample); training = 0 without running statistics is batch
         * statistics with no count check. */
        const unsigned k = pat[0] == 'K';
        clnorm_desc_init(d, CLNORM_INSTANCE_NORM);
        d->layout = CLNORM_CHANNELS_LAST, d->training = 0;
        d->n = k ? r->size[0] : 1, d->rank = 1, d->spatial[0] = r->size[k], d->c = r->size[k + 1];
    } else {
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED,
                           "%s: reduced (R) and kept (K) axes in the pattern %s (size-1 axes dropped) are not "
                           "one of the supported reduction sets (R, KR, RK, RKR, KRK)",
                           what, pat);
    }
    return CLNORM_OK;
}

/* The frame of clnorm_desc_mvn and clnorm_desc_lp_norm: c (may be NULL)
 * locked with its message cleared, d required, and written only when the
 * builder succeeded. */
static clnorm_status desc_begin(clnorm_ctx *c, const clnorm_desc *d)
{
    if (c) {
        pthread_mutex_lock(&c->lock);
        clnorm_clear_error(c);
    }
    return d ? CLNORM_OK : clnorm_fail(c, CLNORM_ERR_NULL_ARGUMENT, "descriptor is NULL");
}

static clnorm_status desc_end(clnorm_ctx *c, clnorm_desc *d, const clnorm_desc *t, clnorm_status st)
{
    if (st == CLNORM_OK) *d = *t;
    if (c) pthread_mutex_unlock(&c->lock);
    return st;
}

static clnorm_status mvn_of(clnorm_ctx *c, unsigned ndim, const size_t *dims, unsigned axes_mask, clnorm_desc *t)
{
    runs r;
    clnorm_status st = make_runs(c, ndim, dims, axes_mask, &r);
    if (st != CLNORM_OK) return st;
    if (!axes_mask) return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "MeanVarianceNormalization over no axis");
    if ((st = desc_of_runs(c, &r, 0, "MeanVarianceNormalization", t)) == CLNORM_OK)
        t->eps = CLNORM_MVN_EPS; /* ONNX's 1e-9 added to the standard deviation, moved inside the root */
    return st;
}

static clnorm_status lp_of(clnorm_ctx *c, unsigned ndim, const size_t *dims, int axis, int p, clnorm_desc *t)
{
    const int ax = axis < 0 ? axis + (int)ndim : axis;
    runs r;
    clnorm_status st;
    if (p != 1 && p != 2)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "LpNormalization p = %d: only 1 and 2 exist (ONNX)", p);
    if (ndim == 0 || ndim > CLNORM_MAX_DIMS || ax < 0 || ax >= (int)ndim)
        return clnorm_fail(c, CLNORM_ERR_INVALID_SHAPE, "axis %d is not an axis of a %u-dim tensor", axis, ndim);
    if ((st = make_runs(c, ndim, dims, 1u << ax, &r)) == CLNORM_OK &&
        (st = desc_of_runs(c, &r, 1, "LpNormalization", t)) == CLNORM_OK)
        t->lp = p;
    return st;
}

CLNORM_API clnorm_status clnorm_desc_mvn(clnorm_ctx *c, clnorm_desc *d, unsigned ndim, const size_t *dims,
                                         unsigned axes_mask)
{
    clnorm_desc t;
    clnorm_status st = desc_begin(c, d);
    if (st == CLNORM_OK) st = mvn_of(c, ndim, dims, axes_mask, &t);
    return desc_end(c, d, &t, st);
}

CLNORM_API clnorm_status clnorm_desc_lp_norm(clnorm_ctx *c, clnorm_desc *d, unsigned ndim, const size_t *dims,
                                             int axis, int p)
{
    clnorm_desc t;
    clnorm_status st = desc_begin(c, d);
    if (st == CLNORM_OK) st = lp_of(c, ndim, dims, axis, p, &t);
    return desc_end(c, d, &t, st);
}
