/*
 * Descriptors: the shape a descriptor describes (describe, pure) and the
 * validation of a call against it (validate: buffers are queried, nothing is
 * enqueued or written), and the public descriptor helpers.
 */
#include "internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

static int has(clnorm_buf b) { return b.mem != NULL; }

clnorm_status clnorm_describe(clnorm_ctx *c, const clnorm_desc *d, clnorm_shape *s)
{
    memset(s, 0, sizeof *s);
    switch (d->op) {
    case CLNORM_LAYER_NORM:
    case CLNORM_RMS_NORM:
        if (d->rows == 0 || d->cols == 0)
            return clnorm_fail(c, CLNORM_ERR_INVALID_SHAPE, "rows (%zu) and cols (%zu) must be >= 1",
                               d->rows, d->cols);
        if (!mul_ok(d->rows, d->cols, &s->elems))
            return clnorm_fail(c, CLNORM_ERR_TOO_LARGE, "rows*cols overflows size_t");
        s->N = d->rows, s->C = 1, s->S = d->cols, s->G = 1;
        s->sets = d->rows, s->set_len = d->cols, s->aff_len = d->cols;
        s->batch_stats = 1;
        return CLNORM_OK;
    case CLNORM_BATCH_NORM:
    case CLNORM_INSTANCE_NORM:
    case CLNORM_GROUP_NORM:
        break;
    default:
        return clnorm_fail(c, CLNORM_ERR_INVALID_OP, "op %d is not a clnorm_op", (int)d->op);
    }
    s->channel = 1;
    if (d->layout != CLNORM_CHANNELS_FIRST && d->layout != CLNORM_CHANNELS_LAST)
        return clnorm_fail(c, CLNORM_ERR_INVALID_LAYOUT, "layout %d is not a clnorm_layout", (int)d->layout);
    if (d->rank > 3)
        return clnorm_fail(c, CLNORM_ERR_INVALID_RANK, "spatial rank %u is not in 0..3", d->rank);
    if (d->n == 0 || d->c == 0)
        return clnorm_fail(c, CLNORM_ERR_INVALID_SHAPE, "n (%zu) and c (%zu) must be >= 1", d->n, d->c);
    s->S = 1;
    for (unsigned k = 0; k < d->rank; ++k) {
        if (d->spatial[k] == 0)
            return clnorm_fail(c, CLNORM_ERR_INVALID_SHAPE, "spatial[%u] is 0", k);
        if (!mul_ok(s->S, d->spatial[k], &s->S))
            return clnorm_fail(c, CLNORM_ERR_TOO_LARGE, "spatial size overflows size_t");
    }
    s->N = d->n, s->C = d->c;
    size_t nc;
    if (!mul_ok(s->N, s->C, &nc) || !mul_ok(nc, s->S, &s->elems))
        return clnorm_fail(c, CLNORM_ERR_TOO_LARGE, "n*c*spatial overflows size_t");
    s->cl = d->layout == CLNORM_CHANNELS_LAST || s->S == 1; /* with S = 1 both layouts are N x C */
    s->aff_len = d->per_sample_affine ? nc : s->C;
    if (d->op == CLNORM_GROUP_NORM) {
        if (d->groups == 0 || s->C % d->groups != 0)
            return clnorm_fail(c, CLNORM_ERR_INVALID_GROUPS, "group count %zu does not divide %zu channels",
                               d->groups, s->C);
        s->G = d->groups;
    } else {
        s->G = s->C;
    }
    if (d->op == CLNORM_BATCH_NORM) {
        s->sets = s->C;
        s->set_len = s->N * s->S;
        s->batch_stats = d->training;
        s->update_running = d->training && has(d->running_mean);
    } else {
        s->sets = s->N * s->G;
        s->set_len = (s->C / s->G) * s->S;
        s->batch_stats = d->op == CLNORM_GROUP_NORM || d->training || !has(d->running_mean);
        s->update_running = d->op == CLNORM_INSTANCE_NORM && d->training && has(d->running_mean);
    }
    return CLNORM_OK;
}

/* ---- validation -------------------------------------------------------- */

typedef clnorm_span span;

static clnorm_status check_buffer(clnorm_ctx *c, span *sp)
{
    cl_context bc = NULL;
    size_t bytes = 0, off = 0;
    cl_mem parent = NULL;
    cl_int err = clGetMemObjectInfo(sp->b.mem, CL_MEM_CONTEXT, sizeof bc, &bc, NULL);
    if (err == CL_SUCCESS) err = clGetMemObjectInfo(sp->b.mem, CL_MEM_SIZE, sizeof bytes, &bytes, NULL);
    if (err == CL_SUCCESS)
        err = clGetMemObjectInfo(sp->b.mem, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL);
    if (err == CL_SUCCESS && parent)
        err = clGetMemObjectInfo(sp->b.mem, CL_MEM_OFFSET, sizeof off, &off, NULL);
    if (err == CL_INVALID_MEM_OBJECT)
        return clnorm_fail(c, CLNORM_ERR_INVALID_BUFFER, "%s is not a valid buffer", sp->name);
    if (err != CL_SUCCESS) /* a failing driver, not a bad argument: pass it through */
        return clnorm_cl_fail(c, err, "clGetMemObjectInfo");
    if (bc != c->context)
        return clnorm_fail(c, CLNORM_ERR_FOREIGN_BUFFER, "%s belongs to another OpenCL context", sp->name);
    size_t end;
    const size_t es = sp->esize ? sp->esize : 4;
    if (sp->b.offset > SIZE_MAX / es - sp->extent || !mul_ok(sp->b.offset + sp->extent, es, &end) ||
        end > bytes)
        return clnorm_fail(c, CLNORM_ERR_BUFFER_TOO_SMALL,
                           "%s holds %zu %s, needs offset %zu + %zu", sp->name, bytes / es,
                           es == 4 ? "floats" : "16-bit elements", sp->b.offset, sp->extent);
    sp->root = parent ? parent : sp->b.mem;
    sp->lo = off + sp->b.offset * es;
    sp->hi = off + end;
    return CLNORM_OK;
}

CLNORM_API size_t clnorm_dtype_size(clnorm_dtype t)
{
    return t == CLNORM_FLOAT32 ? 4 : t == CLNORM_FLOAT16 || t == CLNORM_BFLOAT16 ? 2 : 0;
}

/* Bytes per element of x's and of the parameters' types (d's types valid). */
static void set_esize(clnorm_span *sp, int n, const clnorm_desc *d, const unsigned char *kind)
{
    for (int i = 0; i < n; ++i)
        sp[i].esize = kind[i] == 'x' ? clnorm_dtype_size(d->dtype) : kind[i] == 'p' ? clnorm_dtype_size(d->param_dtype) : 4;
}

/* Storage types and eps, which every call checks first. */
clnorm_status clnorm_check_scalars(clnorm_ctx *c, const clnorm_desc *d)
{
    if (!clnorm_dtype_size(d->dtype))
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "dtype %d is not a clnorm_dtype", (int)d->dtype);
    if (d->param_dtype != CLNORM_FLOAT32 && d->param_dtype != d->dtype)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "param_dtype %d must be float32 (0) or x's dtype (%d)",
                           (int)d->param_dtype, (int)d->dtype);
    if (!(isfinite(d->eps) && d->eps >= 0.0f))
        return clnorm_fail(c, CLNORM_ERR_INVALID_EPS, "eps %g must be finite and >= 0", (double)d->eps);
    return CLNORM_OK;
}

clnorm_status clnorm_check_running_update(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s)
{
    if (d->running_var_biased != 0 && d->running_var_biased != 1)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED,
                           "running_var_biased %d is not 0 (PyTorch's unbiased update) or 1 (ONNX's biased one)",
                           d->running_var_biased);
    if (s->update_running && !(d->momentum >= 0.0f && d->momentum <= 1.0f))
        return clnorm_fail(c, CLNORM_ERR_INVALID_MOMENTUM, "momentum %g is not in [0, 1]", (double)d->momentum);
    return CLNORM_OK;
}

/* The checks forward and backward share: scalars and shape rules. */
static clnorm_status check_common(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s)
{
    clnorm_status st = clnorm_check_scalars(c, d);
    if (st != CLNORM_OK) return st;
    const int lnorm = d->op == CLNORM_LAYER_NORM || d->op == CLNORM_RMS_NORM;
    if (lnorm && d->per_sample_affine)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "per-sample affine applies to channel norms only");
    if (has(d->running_mean) != has(d->running_var))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "running_mean and running_var go together");
    if (has(d->running_mean) && d->op != CLNORM_BATCH_NORM && d->op != CLNORM_INSTANCE_NORM)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "running statistics belong to BatchNorm and InstanceNorm");
    if (d->op == CLNORM_BATCH_NORM && !d->training && !has(d->running_mean))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "BatchNorm inference needs running_mean and running_var");
    if (s->set_len > UINT32_MAX || s->sets > UINT32_MAX || s->N * s->C > UINT32_MAX ||
        s->elems > ((size_t)1 << 46))
        return clnorm_fail(c, CLNORM_ERR_TOO_LARGE,
                           "%zu sets of %zu elements exceed the kernels' 32-bit set indexing", s->sets,
                           s->set_len);
    if (d->op == CLNORM_BATCH_NORM && d->training && s->set_len == 1)
        return clnorm_fail(c, CLNORM_ERR_COUNT_ONE,
                           "expected more than 1 value per channel when training (N*S = 1)");
    if (d->op == CLNORM_INSTANCE_NORM && d->training && s->S == 1)
        return clnorm_fail(c, CLNORM_ERR_COUNT_ONE,
                           "expected more than 1 spatial element when training InstanceNorm");
    return CLNORM_OK;
}

/* Checks every present buffer of sp, then that no output overlaps another
 * buffer, except the (output, input) index pairs of `pairs`, which may
 * coincide exactly (in place). */
clnorm_status clnorm_check_spans(clnorm_ctx *c, span *sp, int n, const unsigned char (*pairs)[2], int npairs)
{
    for (int i = 0; i < n; ++i)
        if (has(sp[i].b)) {
            clnorm_status st = check_buffer(c, &sp[i]);
            if (st != CLNORM_OK) return st;
        }
    for (int i = 0; i < n; ++i) {
        if (!has(sp[i].b) || !sp[i].output) continue;
        for (int j = 0; j < n; ++j) {
            if (j == i || !has(sp[j].b) || (sp[j].output && j < i)) continue;
            if (sp[i].root != sp[j].root || sp[i].hi <= sp[j].lo || sp[j].hi <= sp[i].lo) continue;
            int pair = 0;
            for (int k = 0; k < npairs; ++k) pair |= pairs[k][0] == i && pairs[k][1] == j;
            if (pair && sp[i].lo == sp[j].lo) continue;
            return clnorm_fail(c, CLNORM_ERR_ALIASING, "%s overlaps %s%s", sp[i].name, sp[j].name,
                               pair ? " (in place needs the same buffer and offset)" : "");
        }
    }
    return CLNORM_OK;
}

clnorm_status clnorm_validate(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s)
{
    clnorm_status st = check_common(c, d, s);
    if (st != CLNORM_OK) return st;
    if (!has(d->x) || !has(d->y))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "x and y are required");
    if (d->op == CLNORM_RMS_NORM && has(d->mean))
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "RMSNorm has no mean to save");
    if (d->lp != 0) { /* LpNormalization (clnorm_desc_lp_norm) */
        if (d->lp != 1 && d->lp != 2)
            return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "lp %d is not 0, 1 or 2", d->lp);
        const int cols = d->op == CLNORM_INSTANCE_NORM && d->layout == CLNORM_CHANNELS_LAST;
        if (d->op != CLNORM_LAYER_NORM && !cols)
            return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED,
                               "LpNormalization runs on LayerNorm rows or channels-last InstanceNorm sets only");
        if (!s->batch_stats)
            return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "LpNormalization takes no running statistics");
        if (has(d->mean))
            return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "LpNormalization has no mean to save");
    }
    const int lnorm = d->op == CLNORM_LAYER_NORM || d->op == CLNORM_RMS_NORM;
    if ((has(d->residual) || has(d->h_out)) && !lnorm)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "the fused residual add is LayerNorm's and RMSNorm's");
    if (has(d->h_out) && !has(d->residual))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "h_out needs a residual to add");
    if (!s->batch_stats && (has(d->mean) || has(d->rstd)))
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "saved mean/rstd exist only with batch statistics");
    if ((st = clnorm_check_running_update(c, d, s)) != CLNORM_OK) return st;

    const int run_out = s->update_running;
    span sp[10] = {
        {"x", d->x, s->elems, 0, 0, 0, 0, 0},
        {"y", d->y, s->elems, 1, 0, 0, 0, 0},
        {"scale", d->scale, s->aff_len, 0, 0, 0, 0, 0},
        {"bias", d->bias, s->aff_len, 0, 0, 0, 0, 0},
        {"mean", d->mean, s->sets, 1, 0, 0, 0, 0},
        {"rstd", d->rstd, s->sets, 1, 0, 0, 0, 0},
        {"running_mean", d->running_mean, s->C, run_out, 0, 0, 0, 0},
        {"running_var", d->running_var, s->C, run_out, 0, 0, 0, 0},
        {"residual", d->residual, s->elems, 0, 0, 0, 0, 0},
        {"h_out", d->h_out, s->elems, 1, 0, 0, 0, 0},
    };
    /* In place: y or h_out exactly over x or the residual. */
    static const unsigned char pairs[][2] = {{1, 0}, {1, 8}, {9, 0}, {9, 8}};
    set_esize(sp, 10, d, (const unsigned char *)"xxppffffxx");
    return clnorm_check_spans(c, sp, 10, pairs, 4);
}

/* Backward (SPEC.md, Backward): the forward's shape rules and scalars, then
 * the buffers a backward call reads and writes. dx may be exactly dy: every
 * path writes an element's dx from the work-item that read its dy, after
 * the set's sums (docs in clnorm.h). */
clnorm_status clnorm_validate_backward(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s)
{
    clnorm_status st = check_common(c, d, s);
    if (st != CLNORM_OK) return st;
    if (!has(d->x) || !has(d->dy))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "backward needs x and dy");
    if (!has(d->dx) && !has(d->dscale) && !has(d->dbias))
        return clnorm_fail(c, CLNORM_ERR_NOTHING_TO_DO, "dx, dscale and dbias are all absent");
    if (d->lp != 0)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "LpNormalization has no backward pass here");
    if (has(d->residual) || has(d->h_out))
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED,
                           "a backward call takes the fused add's sum h as x, and no residual or h_out");
    if (s->batch_stats) {
        if (d->op == CLNORM_RMS_NORM && has(d->mean))
            return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "RMSNorm has no saved mean");
        if (!has(d->rstd) || (d->op != CLNORM_RMS_NORM && !has(d->mean)))
            return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER,
                               "backward with batch statistics needs the saved %s from the forward call",
                               d->op == CLNORM_RMS_NORM ? "rstd" : "mean and rstd");
    } else if (has(d->mean) || has(d->rstd)) {
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "saved mean/rstd exist only with batch statistics");
    }

    const int batch = s->batch_stats;
    span sp[10] = {
        {"x", d->x, s->elems, 0, 0, 0, 0, 0},
        {"dy", d->dy, s->elems, 0, 0, 0, 0, 0},
        {"scale", d->scale, s->aff_len, 0, 0, 0, 0, 0},
        {"mean", batch ? d->mean : (clnorm_buf){0, 0}, s->sets, 0, 0, 0, 0, 0},
        {"rstd", batch ? d->rstd : (clnorm_buf){0, 0}, s->sets, 0, 0, 0, 0, 0},
        {"running_mean", batch ? (clnorm_buf){0, 0} : d->running_mean, s->C, 0, 0, 0, 0, 0},
        {"running_var", batch ? (clnorm_buf){0, 0} : d->running_var, s->C, 0, 0, 0, 0, 0},
        {"dx", d->dx, s->elems, 1, 0, 0, 0, 0},
        {"dscale", d->dscale, s->aff_len, 1, 0, 0, 0, 0},
        {"dbias", d->dbias, s->aff_len, 1, 0, 0, 0, 0},
    };
    static const unsigned char pairs[][2] = {{7, 1}}; /* dx exactly over dy */
    set_esize(sp, 10, d, (const unsigned char *)"xxpffffxff");
    return clnorm_check_spans(c, sp, 10, pairs, 1);
}

/* ---- descriptor helpers ------------------------------------------------ */

CLNORM_API void clnorm_desc_init(clnorm_desc *d, clnorm_op op)
{
    if (!d) return;
    memset(d, 0, sizeof *d);
    d->op = op;
    d->eps = 1e-5f;
    d->momentum = 0.1f;
    d->training = 1;
    d->groups = 1;
}

CLNORM_API size_t clnorm_desc_elements(const clnorm_desc *d)
{
    clnorm_shape s;
    return d && clnorm_describe(NULL, d, &s) == CLNORM_OK ? s.elems : 0;
}

CLNORM_API size_t clnorm_desc_sets(const clnorm_desc *d)
{
    clnorm_shape s;
    return d && clnorm_describe(NULL, d, &s) == CLNORM_OK ? s.sets : 0;
}

/* ---- BatchNorm folding (clnorm_fold_batch_norm) ------------------------ */

clnorm_status clnorm_validate_fold(clnorm_ctx *c, const clnorm_fold_desc *f)
{
    const size_t O = f->out_channels, K = f->per_channel;
    size_t OK;
    if (O == 0 || K == 0)
        return clnorm_fail(c, CLNORM_ERR_INVALID_SHAPE, "out_channels (%zu) and per_channel (%zu) must be >= 1", O,
                           K);
    if (!mul_ok(O, K, &OK) || K > UINT32_MAX || OK > ((size_t)1 << 46))
        return clnorm_fail(c, CLNORM_ERR_TOO_LARGE, "%zu x %zu weights exceed the kernel's indexing", O, K);
    if (!(isfinite(f->eps) && f->eps >= 0.0f))
        return clnorm_fail(c, CLNORM_ERR_INVALID_EPS, "eps %g must be finite and >= 0", (double)f->eps);
    if (!has(f->weight) || !has(f->weight_out) || !has(f->bias_out))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "weight, weight_out and bias_out are required");
    if (!has(f->running_mean) || !has(f->running_var))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "running_mean and running_var are required");
    span sp[8] = {
        {"weight", f->weight, OK, 0, 0, 0, 0, 0},
        {"conv_bias", f->conv_bias, O, 0, 0, 0, 0, 0},
        {"scale", f->scale, O, 0, 0, 0, 0, 0},
        {"bias", f->bias, O, 0, 0, 0, 0, 0},
        {"running_mean", f->running_mean, O, 0, 0, 0, 0, 0},
        {"running_var", f->running_var, O, 0, 0, 0, 0, 0},
        {"weight_out", f->weight_out, OK, 1, 0, 0, 0, 0},
        {"bias_out", f->bias_out, O, 1, 0, 0, 0, 0},
    };
    for (int i = 0; i < 8; ++i)
        if (has(sp[i].b)) {
            clnorm_status st = check_buffer(c, &sp[i]);
            if (st != CLNORM_OK) return st;
        }
    /* Outputs overlap nothing, except each exactly its own input (in place:
     * weight_out == weight, bias_out == conv_bias). */
    for (int i = 6; i < 8; ++i)
        for (int j = 0; j < 8; ++j) {
            if (j == i || !has(sp[j].b)) continue;
            if (sp[i].root != sp[j].root || sp[i].hi <= sp[j].lo || sp[j].hi <= sp[i].lo) continue;
            const int own = j == i - 6; /* weight_out's input is weight, bias_out's conv_bias */
            if (own && sp[i].lo == sp[j].lo) continue;
            return clnorm_fail(c, CLNORM_ERR_ALIASING, "%s overlaps %s%s", sp[i].name, sp[j].name,
                               own ? " (in place needs the same offset)" : "");
        }
    return CLNORM_OK;
}
