/*
 * clnorm_forward: validate, plan, enqueue.
 *
 * Every operation is one of three pipelines over its reduction sets:
 *   contiguous sets        row_norm                         (one launch)
 *   contiguous, split      row_partials, merge, row_apply
 *   strided / BatchNorm    {row|col}_partials, merge, fold_table, apply_table
 * plus update_running where running statistics are tracked, and
 * fold_table + apply_table alone for inference with running statistics.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

/* ---- shape ------------------------------------------------------------- */

/* The descriptor reduced to what the planner needs. Channel norms are
 * N x C x S (S = product of spatial dims); LayerNorm/RMSNorm are rows x cols. */
typedef struct shape {
    size_t N, C, S, G, elems, sets, set_len, aff_len;
    int channel; /* BatchNorm, InstanceNorm, GroupNorm */
    int cl;      /* channels-last */
    int batch_stats; /* statistics from this batch (not running) */
    int update_running;
} shape;

static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

static int has(clnorm_buf b) { return b.mem != NULL; }

static clnorm_status describe(clnorm_ctx *c, const clnorm_desc *d, shape *s)
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

typedef struct span {
    const char *name;
    clnorm_buf b;
    size_t extent; /* elements */
    int output;
    cl_mem root;
    size_t lo, hi; /* byte range in root */
} span;

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
    if (sp->b.offset > SIZE_MAX / 4 - sp->extent || !mul_ok(sp->b.offset + sp->extent, 4, &end) ||
        end > bytes)
        return clnorm_fail(c, CLNORM_ERR_BUFFER_TOO_SMALL,
                           "%s holds %zu floats, needs offset %zu + %zu", sp->name, bytes / 4,
                           sp->b.offset, sp->extent);
    sp->root = parent ? parent : sp->b.mem;
    sp->lo = off + sp->b.offset * 4;
    sp->hi = off + end;
    return CLNORM_OK;
}

static clnorm_status validate(clnorm_ctx *c, const clnorm_desc *d, const shape *s)
{
    if (!(isfinite(d->eps) && d->eps >= 0.0f))
        return clnorm_fail(c, CLNORM_ERR_INVALID_EPS, "eps %g must be finite and >= 0", (double)d->eps);
    if (!has(d->x) || !has(d->y))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "x and y are required");
    const int lnorm = d->op == CLNORM_LAYER_NORM || d->op == CLNORM_RMS_NORM;
    if (lnorm && d->per_sample_affine)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "per-sample affine applies to channel norms only");
    if (d->op == CLNORM_RMS_NORM && has(d->mean))
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "RMSNorm has no mean to save");
    if (has(d->running_mean) != has(d->running_var))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "running_mean and running_var go together");
    if (has(d->running_mean) && d->op != CLNORM_BATCH_NORM && d->op != CLNORM_INSTANCE_NORM)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "running statistics belong to BatchNorm and InstanceNorm");
    if (d->op == CLNORM_BATCH_NORM && !d->training && !has(d->running_mean))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "BatchNorm inference needs running_mean and running_var");
    if (!s->batch_stats && (has(d->mean) || has(d->rstd)))
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "saved mean/rstd exist only with batch statistics");
    if (d->running_var_biased != 0 && d->running_var_biased != 1)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED,
                           "running_var_biased %d is not 0 (PyTorch's unbiased update) or 1 (ONNX's biased one)",
                           d->running_var_biased);
    if (s->update_running && !(d->momentum >= 0.0f && d->momentum <= 1.0f))
        return clnorm_fail(c, CLNORM_ERR_INVALID_MOMENTUM, "momentum %g is not in [0, 1]", (double)d->momentum);
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

    const int run_out = s->update_running;
    span sp[8] = {
        {"x", d->x, s->elems, 0, 0, 0, 0},
        {"y", d->y, s->elems, 1, 0, 0, 0},
        {"scale", d->scale, s->aff_len, 0, 0, 0, 0},
        {"bias", d->bias, s->aff_len, 0, 0, 0, 0},
        {"mean", d->mean, s->sets, 1, 0, 0, 0},
        {"rstd", d->rstd, s->sets, 1, 0, 0, 0},
        {"running_mean", d->running_mean, s->C, run_out, 0, 0, 0},
        {"running_var", d->running_var, s->C, run_out, 0, 0, 0},
    };
    for (int i = 0; i < 8; ++i)
        if (has(sp[i].b)) {
            clnorm_status st = check_buffer(c, &sp[i]);
            if (st != CLNORM_OK) return st;
        }
    /* Outputs may not overlap anything, except y == x exactly (in place). */
    for (int i = 0; i < 8; ++i) {
        if (!has(sp[i].b) || !sp[i].output) continue;
        for (int j = 0; j < 8; ++j) {
            if (j == i || !has(sp[j].b) || (sp[j].output && j < i)) continue;
            if (sp[i].root != sp[j].root || sp[i].hi <= sp[j].lo || sp[j].hi <= sp[i].lo) continue;
            if (i == 1 && j == 0 && sp[i].lo == sp[j].lo) continue;
            return clnorm_fail(c, CLNORM_ERR_ALIASING, "%s overlaps %s%s", sp[i].name, sp[j].name,
                               (i == 1 && j == 0) ? " (in place needs y == x exactly)" : "");
        }
    }
    return CLNORM_OK;
}

/* ---- launching --------------------------------------------------------- */

typedef struct karg {
    size_t size;
    const void *ptr;
} karg;
#define KA(v) {sizeof(v), &(v)}
#define NARGS(a) ((cl_uint)(sizeof(a) / sizeof((a)[0])))

/* The launches of one operation. The first waits on the caller's list;
 * on an out-of-order queue each waits on the one before. */
typedef struct chain {
    clnorm_ctx *c;
    cl_uint nwait;
    const cl_event *wait;
    cl_event last;
    unsigned y_flags; /* program flags for the kernels that write y */
    int want_event;   /* the caller asked for the operation's event */
    int launched;     /* a kernel of this operation has been enqueued */
} chain;

static int launch(chain *ch, const char *name, unsigned wg, unsigned lanes, unsigned flags, const karg *a,
                  cl_uint na, cl_uint dims, const size_t *gsz, const size_t *lsz)
{
    cl_kernel k;
    int st = clnorm_get_kernel(ch->c, name, wg, lanes, flags, &k);
    if (st != CLNORM_OK) return st;
    for (cl_uint i = 0; i < na; ++i) {
        cl_int err = clSetKernelArg(k, i, a[i].size, a[i].ptr);
        if (err != CL_SUCCESS) return clnorm_cl_fail(ch->c, err, "clSetKernelArg");
    }
    cl_uint nw = 0;
    const cl_event *wl = NULL;
    if (ch->last && ch->c->out_of_order)
        nw = 1, wl = &ch->last; /* the previous launch, or the opening barrier */
    else if (!ch->launched)
        nw = ch->nwait, wl = ch->wait;
    /* Events only where they are used: to chain launches on an out-of-order
     * queue, or for the caller. An in-order queue orders the launches by
     * itself, so a caller that wants no event gets no driver allocations. */
    cl_event ev = NULL;
    cl_event *evp = (ch->c->out_of_order || ch->want_event) ? &ev : NULL;
    cl_int err = clEnqueueNDRangeKernel(ch->c->queue, k, dims, NULL, gsz, lsz, nw, wl, evp);
    if (err != CL_SUCCESS) return clnorm_cl_fail(ch->c, err, "clEnqueueNDRangeKernel");
    if (ch->last) clReleaseEvent(ch->last);
    ch->last = ev;
    ch->launched = 1;
    return CLNORM_OK;
}

/* Scratch buffers: 0 partials, 1 merged statistics, 2 folded table. They
 * grow to the largest request and are reused; a context's operations are
 * ordered on its queue, so reuse is safe. */
typedef struct scratch_need {
    size_t floats[3];
} scratch_need;

static int reserve(clnorm_ctx *c, const scratch_need *n, cl_mem out[3])
{
    for (int i = 0; i < 3; ++i) {
        out[i] = NULL;
        size_t bytes = n->floats[i] * 4;
        if (!bytes) continue;
        if (bytes > c->scratch_bytes[i]) {
            cl_int err;
            cl_mem m = clCreateBuffer(c->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
            if (!m) return clnorm_cl_fail(c, err ? err : CL_MEM_OBJECT_ALLOCATION_FAILURE, "clCreateBuffer (scratch)");
            if (c->scratch[i]) clReleaseMemObject(c->scratch[i]);
            c->scratch[i] = m;
            c->scratch_bytes[i] = bytes;
        }
        out[i] = c->scratch[i];
    }
    return CLNORM_OK;
}

/* ---- plans ------------------------------------------------------------- */

/* Everything a pipeline needs, resolved from the descriptor. */
typedef struct op_args {
    cl_mem x, y, scale, bias, mean, rstd, rmean, rvar;
    cl_ulong xo, yo, so, bo, mo, ro, rmo, rvo;
    cl_float eps, momentum;
    cl_uint rms;         /* CLNORM_K_RMS for RMSNorm: program flag of launches that reduce */
    cl_uint rstd_flags;  /* program flags of launches that compute rstd from batch statistics */
    cl_uint var_biased;  /* update_running: 1 = biased batch variance (ONNX) */
} op_args;

static void resolve(const clnorm_desc *d, op_args *a)
{
    a->x = d->x.mem, a->xo = d->x.offset;
    a->y = d->y.mem, a->yo = d->y.offset;
    a->scale = d->scale.mem, a->so = d->scale.offset;
    a->bias = d->bias.mem, a->bo = d->bias.offset;
    a->mean = d->mean.mem, a->mo = d->mean.offset;
    a->rstd = d->rstd.mem, a->ro = d->rstd.offset;
    a->rmean = d->running_mean.mem, a->rmo = d->running_mean.offset;
    a->rvar = d->running_var.mem, a->rvo = d->running_var.offset;
    a->eps = d->eps, a->momentum = d->momentum;
    a->rms = d->op == CLNORM_RMS_NORM ? CLNORM_K_RMS : 0;
    /* SPEC.md: BatchNorm and InstanceNorm give rstd = 0 for var == 0 with
     * eps == 0 (PyTorch's inverse std); LayerNorm and GroupNorm give +Inf. */
    a->rstd_flags = a->rms;
    if (d->op == CLNORM_BATCH_NORM || d->op == CLNORM_INSTANCE_NORM)
        a->rstd_flags |= CLNORM_K_RSTD_ZERO;
    a->var_biased = d->running_var_biased ? 1u : 0u;
}

static size_t round_up(size_t v, size_t m) { return div_up(v, m) * m; }

/* Merge partials into per-set statistics (scratch 1) and the saved outputs. */
static int run_merge(chain *ch, const op_args *a, cl_mem part, cl_mem stats, unsigned wg, cl_uint nsets,
                     cl_uint n_inner, cl_ulong o_stride, cl_ulong i_stride, cl_uint n1, cl_ulong st1,
                     cl_uint n2, cl_ulong st2)
{
    karg ka[] = {KA(part), KA(stats), KA(a->mean), KA(a->mo), KA(a->rstd), KA(a->ro), KA(nsets),
                 KA(n_inner), KA(o_stride), KA(i_stride), KA(n1), KA(st1), KA(n2), KA(st2), KA(a->eps)};
    size_t g = round_up(nsets, wg), l = wg;
    return launch(ch, "merge_partials", wg, wg, a->rstd_flags, ka, NARGS(ka), 1, &g, &l);
}

static int run_running(chain *ch, const op_args *a, cl_mem stats, unsigned wg, cl_uint nsets, cl_uint C,
                       cl_uint navg, cl_float count)
{
    karg ka[] = {KA(stats), KA(nsets), KA(a->rmean), KA(a->rmo), KA(a->rvar), KA(a->rvo), KA(C),
                 KA(navg), KA(count), KA(a->momentum), KA(a->var_biased)};
    size_t g = round_up(C, wg), l = wg;
    return launch(ch, "update_running", wg, wg, 0, ka, NARGS(ka), 1, &g, &l);
}

/* Fold statistics (batch statistics in `stats`, or the running buffers when
 * stats is NULL) with the affine parameters into the table, then stream x
 * through it. BatchNorm statistics are per channel; InstanceNorm/GroupNorm
 * batch statistics are per (n, group), which makes the table per sample. */
static int run_fold_apply(chain *ch, const op_args *a, const shape *s, const clnorm_desc *d,
                          cl_mem stats, cl_mem table, unsigned wg)
{
    const int sample_stats = stats && d->op != CLNORM_BATCH_NORM;
    cl_uint C = (cl_uint)s->C, P = (d->per_sample_affine || sample_stats) ? (cl_uint)s->N : 1;
    cl_uint stat_p = sample_stats ? (cl_uint)s->G : 0, grp = sample_stats ? (cl_uint)(s->C / s->G) : 1;
    cl_uint aff_p = d->per_sample_affine ? C : 0;
    cl_mem mean = stats ? stats : a->rmean, var = stats ? stats : a->rvar;
    cl_ulong mo = stats ? 0 : a->rmo, vo = stats ? s->sets : a->rvo;
    {
        karg ka[] = {KA(mean), KA(mo), KA(var), KA(vo), KA(a->scale), KA(a->so), KA(a->bias), KA(a->bo),
                     KA(table), KA(P), KA(C), KA(stat_p), KA(grp), KA(aff_p), KA(a->eps)};
        size_t g[2] = {round_up(C, wg), P}, l[2] = {wg, 1};
        /* rstd of batch statistics follows the op's rule; of running
         * statistics it is 1 / sqrt(running_var + eps), as PyTorch's. */
        int st = launch(ch, "fold_table", wg, wg, stats ? a->rstd_flags : 0, ka, NARGS(ka), 2, g, l);
        if (st != CLNORM_OK) return st;
    }
    cl_uint Q = (cl_uint)(s->cl ? s->S : s->C), R = (cl_uint)(s->cl ? s->C : s->S);
    cl_uint nrows = (cl_uint)(s->N * Q), tp = P > 1, ch_is_r = s->cl, tn = P * C;
    /* Streaming rows of R: the same lane and chunk rules as row kernels. */
    clnorm_rowplan rp;
    clnorm_plan_rows(ch->c, nrows, R, &rp);
    cl_uint chunk = (cl_uint)rp.chunk;
    cl_uint per = (cl_uint)rp.per_item;
    karg ka[] = {KA(a->x), KA(a->xo), KA(a->y), KA(a->yo), KA(table), KA(nrows), KA(per), KA(Q), KA(R),
                 KA(chunk), KA(C), KA(tp), KA(ch_is_r), KA(tn)};
    size_t g[2] = {clnorm_rowplan_global(&rp, nrows), div_up(R, rp.chunk)}, l[2] = {rp.wg, 1};
    return launch(ch, "apply_table", rp.wg, rp.lanes, ch->y_flags, ka, NARGS(ka), 2, g, l);
}

/* Affine description of contiguous sets for the row kernels. */
typedef struct rowaff {
    cl_uint seg, aff_mod, elementwise;
} rowaff;

static rowaff row_affine(const clnorm_desc *d, const shape *s)
{
    rowaff r;
    if (!s->channel) {
        r.seg = (cl_uint)s->set_len, r.aff_mod = 1, r.elementwise = 1;
    } else {
        r.seg = (cl_uint)s->S, r.elementwise = 0;
        r.aff_mod = (cl_uint)(d->per_sample_affine ? s->sets : s->G);
    }
    return r;
}

/* LayerNorm, RMSNorm and channels-first InstanceNorm/GroupNorm with batch
 * statistics: contiguous sets. */
static int plan_rows(chain *ch, const clnorm_desc *d, const shape *s, const op_args *a)
{
    clnorm_rowplan rp;
    clnorm_plan_rows(ch->c, s->sets, s->set_len, &rp);
    const rowaff af = row_affine(d, s);
    cl_uint nsets = (cl_uint)s->sets, len = (cl_uint)s->set_len;
    const size_t nchunks = div_up(s->set_len, rp.chunk);
    scratch_need need = {{0, 0, 0}};
    if (rp.split) need.floats[0] = 3 * s->sets * nchunks;
    if (rp.split || s->update_running) need.floats[1] = 2 * s->sets;
    cl_mem scr[3];
    int st = reserve(ch->c, &need, scr);
    if (st != CLNORM_OK) return st;
    cl_uint per = (cl_uint)rp.per_item, lag = rp.lag;
    size_t g[2] = {clnorm_rowplan_global(&rp, s->sets), nchunks}, l[2] = {rp.wg, 1};
    if (!rp.split) {
        karg ka[] = {KA(a->x), KA(a->xo), KA(a->y), KA(a->yo), KA(a->scale), KA(a->so), KA(a->bias),
                     KA(a->bo), KA(a->mean), KA(a->mo), KA(a->rstd), KA(a->ro), KA(scr[1]), KA(nsets),
                     KA(per), KA(lag), KA(len), KA(af.seg), KA(af.aff_mod), KA(af.elementwise), KA(a->eps)};
        st = launch(ch, "row_norm", rp.wg, rp.lanes, a->rstd_flags | ch->y_flags, ka, NARGS(ka), 1, g, l);
    } else {
        cl_uint chunk = (cl_uint)rp.chunk;
        karg kp[] = {KA(a->x), KA(a->xo), KA(scr[0]), KA(nsets), KA(per), KA(len), KA(chunk)};
        st = launch(ch, "row_partials", rp.wg, rp.lanes, a->rms, kp, NARGS(kp), 2, g, l);
        if (st == CLNORM_OK)
            st = run_merge(ch, a, scr[0], scr[1], rp.wg, nsets, nsets, 0, nchunks, (cl_uint)nchunks, 1, 1, 0);
        if (st == CLNORM_OK) {
            karg ka[] = {KA(a->x), KA(a->xo), KA(a->y), KA(a->yo), KA(a->scale), KA(a->so), KA(a->bias),
                         KA(a->bo), KA(scr[1]), KA(nsets), KA(len), KA(chunk), KA(af.seg),
                         KA(af.aff_mod), KA(af.elementwise), KA(a->eps)};
            st = launch(ch, "row_apply", rp.wg, rp.lanes, a->rstd_flags | ch->y_flags, ka, NARGS(ka), 2, g, l);
        }
    }
    if (st == CLNORM_OK && s->update_running)
        st = run_running(ch, a, scr[1], rp.wg, nsets, (cl_uint)s->C, (cl_uint)s->N, (cl_float)s->S);
    return st;
}

/* BatchNorm training, and channels-last InstanceNorm/GroupNorm with batch
 * statistics: partials, merge, (running), fold, apply. */
static int plan_partials(chain *ch, const clnorm_desc *d, const shape *s, const op_args *a)
{
    const int bn = d->op == CLNORM_BATCH_NORM;
    const unsigned wg = clnorm_plan_wg(ch->c);
    const int per_sample = d->per_sample_affine || !bn;
    scratch_need need = {{0, 2 * s->sets, 3 * (per_sample ? s->N : 1) * s->C}};
    cl_mem scr[3];
    int st;
    clnorm_colplan cp;
    if (!bn && s->cl && clnorm_plan_waves(ch->c, s->N, s->S, s->C, &cp)) {
        /* CPUs: launch w reads sample w for its statistics while it writes
         * sample w-1 (col_wave in cols.cl). */
        const size_t tiles = div_up(s->C, cp.per_wi), KR = div_up(s->S, cp.rchunk);
        size_t g[2] = {round_up(tiles, cp.wg), KR}, l[2] = {cp.wg, 1};
        need.floats[0] = 3 * 2 * KR * s->C;
        need.floats[2] = 3 * cp.per_wi * tiles * KR; /* a folded table per work-item */
        if ((st = reserve(ch->c, &need, scr)) != CLNORM_OK) return st;
        cl_mem stats = s->update_running ? scr[1] : NULL;
        cl_uint N = (cl_uint)s->N, S = (cl_uint)s->S, C = (cl_uint)s->C, G = (cl_uint)s->G;
        cl_uint rc = (cl_uint)cp.rchunk, aff_ps = d->per_sample_affine ? 1 : 0;
        for (cl_uint w = 0; w <= N && st == CLNORM_OK; ++w) {
            karg ka[] = {KA(a->x),  KA(a->xo), KA(a->y),  KA(a->yo), KA(a->scale), KA(a->so), KA(a->bias),
                         KA(a->bo), KA(a->mean), KA(a->mo), KA(a->rstd), KA(a->ro), KA(stats), KA(scr[0]),
                         KA(scr[2]), KA(N), KA(S), KA(C), KA(G), KA(rc), KA(aff_ps), KA(a->eps), KA(w)};
            st = launch(ch, "col_wave", cp.wg, 1, a->rstd_flags | ch->y_flags, ka, NARGS(ka), 2, g, l);
        }
        if (st == CLNORM_OK && s->update_running)
            st = run_running(ch, a, scr[1], wg, (cl_uint)s->sets, C, N, (cl_float)s->set_len);
        return st;
    }
    /* Channels-first BatchNorm with long planes reduces rows (n, c) of S. */
    if (bn && !s->cl && !clnorm_plan_bn_use_cols(ch->c, s->S)) {
        clnorm_rowplan rp;
        clnorm_plan_rows(ch->c, s->N * s->C, s->S, &rp);
        if (!rp.split) rp.chunk = s->S;
        const size_t K = div_up(s->S, rp.chunk);
        need.floats[0] = 3 * s->N * s->C * K;
        if ((st = reserve(ch->c, &need, scr)) != CLNORM_OK) return st;
        cl_uint rows = (cl_uint)(s->N * s->C), len = (cl_uint)s->S, chunk = (cl_uint)rp.chunk;
        cl_uint per = (cl_uint)rp.per_item;
        size_t g[2] = {clnorm_rowplan_global(&rp, rows), K}, l[2] = {rp.wg, 1};
        karg kp[] = {KA(a->x), KA(a->xo), KA(scr[0]), KA(rows), KA(per), KA(len), KA(chunk)};
        st = launch(ch, "row_partials", rp.wg, rp.lanes, 0, kp, NARGS(kp), 2, g, l);
        if (st == CLNORM_OK)
            st = run_merge(ch, a, scr[0], scr[1], wg, (cl_uint)s->C, (cl_uint)s->C, 0, K, (cl_uint)s->N,
                           s->C * K, (cl_uint)K, 1);
    } else {
        /* Columns of [P][R][Cc]: channels-last x, or channels-first with
         * short planes as an N x (C*S) matrix with S columns per channel. */
        size_t P = bn ? 1 : s->N, R = s->cl ? (bn ? s->N * s->S : s->S) : s->N;
        size_t Cc = s->cl ? s->C : s->C * s->S;
        size_t per_set_cols = s->cl ? s->C / s->G : s->S;
        clnorm_plan_cols(ch->c, P, R, Cc, &cp);
        const size_t KR = div_up(R, cp.rchunk);
        need.floats[0] = 3 * P * KR * Cc;
        if ((st = reserve(ch->c, &need, scr)) != CLNORM_OK) return st;
        cl_uint Ru = (cl_uint)R, Cu = (cl_uint)Cc, rc = (cl_uint)cp.rchunk;
        karg kp[] = {KA(a->x), KA(a->xo), KA(scr[0]), KA(Ru), KA(Cu), KA(rc)};
        size_t g[3] = {round_up(div_up(Cc, cp.per_wi), cp.wg), KR, P}, l[3] = {cp.wg, 1, 1};
        st = launch(ch, "col_partials", cp.wg, cp.wg, 0, kp, NARGS(kp), 3, g, l);
        /* Set (p, k) merges chunks (stride Cc) x its per_set_cols adjacent columns. */
        cl_uint n_inner = (cl_uint)(bn ? s->C : s->G);
        if (st == CLNORM_OK)
            st = run_merge(ch, a, scr[0], scr[1], wg, (cl_uint)s->sets, n_inner, KR * Cc, per_set_cols,
                           (cl_uint)KR, Cc, (cl_uint)per_set_cols, 1);
    }
    if (st == CLNORM_OK && s->update_running)
        st = run_running(ch, a, scr[1], wg, (cl_uint)s->sets, (cl_uint)s->C, bn ? 1u : (cl_uint)s->N,
                         (cl_float)s->set_len);
    if (st == CLNORM_OK)
        st = run_fold_apply(ch, a, s, d, scr[1], scr[2], wg);
    return st;
}

/* Inference with running statistics: BatchNorm, tracked InstanceNorm. */
static int plan_running(chain *ch, const clnorm_desc *d, const shape *s, const op_args *a)
{
    const unsigned wg = clnorm_plan_wg(ch->c);
    scratch_need need = {{0, 0, 3 * (d->per_sample_affine ? s->N : 1) * s->C}};
    cl_mem scr[3];
    int st = reserve(ch->c, &need, scr);
    if (st != CLNORM_OK) return st;
    return run_fold_apply(ch, a, s, d, NULL, scr[2], wg);
}

/* The tuning key of a described call (see clnorm_tuning_key). */
static void key_of(const clnorm_desc *d, const shape *s, char *buf, size_t len)
{
    unsigned a = 0, b = 0;
    while (s->set_len >> (a + 1)) ++a;
    while (s->sets >> (b + 1)) ++b;
    snprintf(buf, len, "%s %s %s %u %u", clnorm_tuning_ops[d->op], !s->channel ? "rows" : s->cl ? "nhwc" : "nchw",
             s->batch_stats ? "batch" : "running", a, b);
}

CLNORM_API clnorm_status clnorm_tuning_key(const clnorm_desc *d, char *buf, size_t len)
{
    if (!d || !buf) return CLNORM_ERR_NULL_ARGUMENT;
    shape s;
    clnorm_status st = describe(NULL, d, &s);
    if (st != CLNORM_OK) return st;
    char k[CLNORM_TUNING_KEY_MAX];
    key_of(d, &s, k, sizeof k);
    if (strlen(k) >= len) return CLNORM_ERR_BUFFER_TOO_SMALL;
    memcpy(buf, k, strlen(k) + 1);
    return CLNORM_OK;
}

CLNORM_API clnorm_status clnorm_forward(clnorm_ctx *c, const clnorm_desc *d, cl_uint num_wait,
                                        const cl_event *wait_list, cl_event *event)
{
    if (!c) return CLNORM_ERR_NULL_ARGUMENT;
    pthread_mutex_lock(&c->lock);
    clnorm_clear_error(c);
    int st;
    chain ch = {c, num_wait, wait_list, NULL, 0, event != NULL, 0};
    shape s;
    op_args a;
    if (event) *event = NULL;
    if (!d) {
        st = clnorm_fail(c, CLNORM_ERR_NULL_ARGUMENT, "descriptor is NULL");
        goto done;
    }
    if ((num_wait > 0) != (wait_list != NULL)) {
        st = clnorm_fail(c, CLNORM_ERR_INVALID_EVENTS, "num_wait %u with %s wait list", num_wait,
                         wait_list ? "a" : "no");
        goto done;
    }
    if ((st = describe(c, d, &s)) != CLNORM_OK || (st = validate(c, d, &s)) != CLNORM_OK)
        goto done;
    resolve(d, &a);
    /* Settings the rules see for this call: forced ones, else a tuning
     * entry's, else none (the rules decide). */
    c->call_variant = c->variant;
    c->call_wg = c->forced_wg;
    if (c->ntuned && c->variant == CLNORM_VARIANT_AUTO && !c->forced_wg) {
        char key[CLNORM_TUNING_KEY_MAX];
        key_of(d, &s, key, sizeof key);
        const clnorm_tuned *t = clnorm_tuning_find(c, key);
        if (t) c->call_variant = t->variant, c->call_wg = t->wg;
    }
    ch.y_flags = clnorm_plan_stream(c, s.elems * sizeof(float)) ? CLNORM_K_STREAM : 0;
    if (c->out_of_order) {
        /* Order against earlier operations (they share the scratch). */
        cl_event b = NULL;
        cl_int err = clEnqueueBarrierWithWaitList(c->queue, num_wait, wait_list, &b);
        if (err != CL_SUCCESS) {
            st = clnorm_cl_fail(c, err, "clEnqueueBarrierWithWaitList");
            goto done;
        }
        ch.last = b;
    }
    if (!s.batch_stats)
        st = plan_running(&ch, d, &s, &a);
    else if (!s.channel || (!s.cl && d->op != CLNORM_BATCH_NORM))
        st = plan_rows(&ch, d, &s, &a);
    else
        st = plan_partials(&ch, d, &s, &a);
    if (st == CLNORM_OK && event) {
        *event = ch.last;
        ch.last = NULL;
    }
done:
    if (ch.last) clReleaseEvent(ch.last);
    pthread_mutex_unlock(&c->lock);
    return (clnorm_status)st;
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
    shape s;
    return d && describe(NULL, d, &s) == CLNORM_OK ? s.elems : 0;
}

CLNORM_API size_t clnorm_desc_sets(const clnorm_desc *d)
{
    shape s;
    return d && describe(NULL, d, &s) == CLNORM_OK ? s.sets : 0;
}
