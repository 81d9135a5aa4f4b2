/*
 * The planner: (device profile, settings, descriptor) in, a complete plan
 * out. Pure: no OpenCL calls, no context; the executor (exec.c) only runs
 * what it decides, and tests/test_plan.c checks its plans on recorded
 * device profiles without a device.
 *
 * Two parts: the rules (work-group sizes, variants, chunking, from the
 * device and the shape; see docs/performance.md for the measurements behind
 * the numbers; a variant or work-group size in the settings overrides the
 * rule that would choose it), then the pipelines, which turn an operation
 * into launches:
 *   contiguous sets        row_norm                         (one launch)
 *   contiguous, split      row_partials, merge, row_apply
 *   strided / BatchNorm    {row|col}_partials, merge, fold_table, apply_table
 * plus update_running where running statistics are tracked, and
 * fold_table + apply_table alone for inference with running statistics.
 * The BatchNorm split (a distributed caller's steps) reuses the strided
 * pipeline's stages: {row|col}_partials, merge_record for the local
 * record; record_stats, update_running, fold_table, apply_table to apply
 * the global one.
 */
#include "internal.h"

#include <string.h>

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

/* ---- rules --------------------------------------------------------------- */

typedef struct rules {
    const clnorm_devinfo *dev;
    const clnorm_settings *set;
    size_t esize; /* bytes per element of x and y (clnorm_dtype_size): the cache and streaming rules' */
    cl_ulong cache; /* the last-level cache the rules count on (cache_share); 0 if unknown */
} rules;

/* CPUs: a host reports its whole socket's last-level cache, which the
 * device's cores share with the socket's other cores (and, in a VM, with
 * other tenants). The rules count on 16 MiB per compute unit at most: the
 * share of the 2-core EPYC VM (32 MiB L3) they were measured on. A 2-core
 * VM of a Xeon reported the whole 260 MiB: 64 MiB outputs then took plain
 * stores (LayerNorm 4096x4096, float32: 0.69 of copy instead of 1.0).
 * GPUs: as reported. */
static cl_ulong cache_share(const clnorm_devinfo *dev)
{
    const cl_ulong cap = (cl_ulong)dev->compute_units << 24;
    return dev->is_cpu && dev->cache_bytes > cap ? cap : dev->cache_bytes;
}

static rules rules_of(const clnorm_devinfo *dev, const clnorm_settings *set, size_t esize)
{
    const rules r = {dev, set, esize, cache_share(dev)};
    return r;
}

typedef struct rowplan {
    unsigned wg, lanes;   /* work-group size, work-items per set */
    int split;            /* 1: partials + merge + apply */
    size_t chunk;         /* elements per chunk when split */
    size_t per_item;      /* lanes == 1: consecutive sets per work-item */
    unsigned lag;         /* lanes == 1: pipeline depth of row_norm (rows.cl): 2 or 1 */
} rowplan;

typedef struct colplan {
    unsigned wg;   /* work-group size */
    size_t per_wi; /* columns per work-item */
    size_t rchunk; /* rows per partial */
} colplan;

/* Elements per vector load: the program's VEC (clnorm_build_options). */
static size_t vec_of(const rules *r) { return r->dev->is_cpu ? 16 : 4; }

static size_t pow2_floor(size_t v)
{
    size_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}


/* Work-groups wanted in flight: a few per compute unit hides imbalance. */
static size_t groups_wanted(const rules *r)
{
    return (size_t)r->dev->compute_units * (r->dev->is_cpu ? 4 : 8);
}

static unsigned plan_wg(const rules *r)
{
    size_t wg = r->set->wg ? r->set->wg : (r->dev->is_cpu ? 64 : 256);
    if (wg > r->dev->max_wg) wg = pow2_floor(r->dev->max_wg);
    return (unsigned)wg;
}

/* cacheable: the sets take elementwise affine, so row_norm may hold one in
 * registers on a GPU (row_cached). */
static void plan_rows_rule(const rules *r, size_t nsets, size_t len, int cacheable, rowplan *p)
{
    unsigned wg = plan_wg(r);
    clnorm_variant v = r->set->variant;
    p->split = 0;
    p->chunk = len;
    p->per_item = 1;
    /* row_norm's CPU pipeline keeps three sets in flight per work-item when
     * a set is at most 1/16 of the cache (measured: 1 MiB sets gain from it,
     * 4 MiB sets lose 0.2 of copy bandwidth, re-read from DRAM); larger
     * sets, or an unknown cache, take the two-deep pipeline with pieces. */
    p->lag = r->cache && (cl_ulong)len * r->esize * 16 <= r->cache ? 2 : 1;
    if (v == CLNORM_VARIANT_AUTO) {
        if (nsets < (size_t)r->dev->compute_units * 2 && len >= 65536)
            /* Too few sets to fill the device, each long enough to be worth
             * two more launches: split them across work-groups. */
            v = CLNORM_VARIANT_SPLIT;
        else if (!r->dev->is_cpu && nsets < (size_t)r->dev->compute_units * 4 && len >= 8192 &&
                 !(cacheable && len <= (size_t)wg * 4 * CLNORM_GPU_CACHE_V))
            /* GPUs: fewer sets than 4 work-groups per compute unit, each
             * read from global memory three times anyway (not held in
             * registers): chunks across work-groups fill the device. On the
             * H200, InstanceNorm 8x64x256x256 (512 sets) ran 1.24x faster
             * split (tune.txt of 2026-11-30). */
            v = CLNORM_VARIANT_SPLIT;
        else if (r->dev->is_cpu)
            /* CPUs: a work-item streams its own set with explicit vectors;
             * the set stays in its core's cache across the passes, and no
             * barrier is needed (PoCL runs each barrier as a loop). */
            v = CLNORM_VARIANT_WI;
        else if (len <= 1024)
            v = CLNORM_VARIANT_SUBGROUP;
        else
            v = CLNORM_VARIANT_WG;
    }
    switch (v) {
    case CLNORM_VARIANT_WI:
        p->lanes = 1;
        if (r->dev->is_cpu) {
            /* A work-item takes a run of consecutive sets, so that rows.cl
             * can pipeline them; a few runs per compute unit balance the
             * load, and each run is its own work-group. The pipeline's
             * first two and last two steps are not overlapped, so with few
             * sets a run still gets up to 16 (two runs per unit). */
            p->per_item = div_up(nsets, groups_wanted(r));
            size_t deep = div_up(nsets, (size_t)r->dev->compute_units * 2);
            if (deep > 16) deep = 16;
            if (p->per_item < deep) p->per_item = deep;
            if (!r->set->wg) wg = 1;
        } else if (!r->set->wg) {
            /* Several work-groups per compute unit even with few sets. */
            size_t per = nsets / groups_wanted(r);
            wg = (unsigned)(per < 1 ? 1 : pow2_floor(per < wg ? per : wg));
        }
        break;
    case CLNORM_VARIANT_SUBGROUP: p->lanes = wg < 32 ? wg : 32; break;
    case CLNORM_VARIANT_SPLIT: {
        /* CPUs: one work-item per chunk; GPUs: a work-group per chunk. */
        if (r->dev->is_cpu && !r->set->wg) wg = 1;
        p->lanes = wg;
        size_t per_set = div_up(groups_wanted(r), nsets);
        /* Whole rounds of chunks per compute unit: 3 sets x 3 chunks on 2
         * units would leave one unit idle for a ninth of the run. */
        while ((nsets * per_set) % r->dev->compute_units && per_set < 4 * groups_wanted(r))
            ++per_set;
        if (!r->dev->is_cpu && per_set * nsets < 4 * (size_t)r->dev->compute_units)
            per_set = div_up(4 * (size_t)r->dev->compute_units, nsets);
        size_t chunk = div_up(len, per_set);
        /* At least 4096 elements (CPUs) or two vectors per lane (GPUs) a chunk. */
        const size_t min_chunk = r->dev->is_cpu ? 4096 : 2 * (size_t)wg * vec_of(r);
        if (chunk < min_chunk) chunk = min_chunk;
        chunk = div_up(chunk, 64) * 64;
        if (chunk >= len) chunk = len;
        p->chunk = chunk;
        p->split = 1;
        break;
    }
    default: p->lanes = wg; break;
    }
    p->wg = wg;
}

/* Dimension 0 of the NDRange for nsets sets under plan p. */
static size_t rowplan_global(const rowplan *p, size_t nsets)
{
    const size_t items = div_up(nsets, p->per_item), spw = p->wg / p->lanes;
    return div_up(items, spw) * p->wg;
}

static void plan_cols(const rules *r, size_t P, size_t R, size_t C, colplan *p)
{
    /* CPUs: a work-item streams a tile of up to 1024 columns (4 KiB of a
     * row) row by row; GPUs: one column per work-item, coalesced. */
    p->per_wi = r->dev->is_cpu ? CLNORM_CPU_COL_TILE : 1;
    const size_t items = div_up(C, p->per_wi);
    size_t wg = plan_wg(r);
    /* CPUs: each work-item keeps a tile's statistics in private memory
     * (12 KiB), which PoCL allocates for the whole work-group on a worker
     * thread's stack: 512 work-items overflowed it. A forced or tuned size
     * is capped here; beyond a few work-items they only idle anyway. */
    if (r->dev->is_cpu && wg > CLNORM_CPU_COL_WG_MAX) wg = CLNORM_CPU_COL_WG_MAX;
    if (!r->set->wg) {
        /* As wide as the columns (GPUs: at least a warp of 32, or the
         * device maximum): a 256-wide group over 64 channels would idle
         * three quarters of its lanes; more row chunks make up the count. */
        size_t w = 1, floor = r->dev->is_cpu ? 1 : 32;
        while ((w < items || w < floor) && w < wg) w *= 2;
        wg = w;
    }
    p->wg = (unsigned)wg;
    /* Enough row chunks to occupy the device; on GPUs the second pass over
     * a chunk should hit the cache: 256 KiB per tile. (CPUs take a chunk
     * in blocks of a few rows whose second pass hits L1, and merge them
     * themselves: one partial per work-item.) */
    const size_t tile = p->per_wi > 1 ? p->per_wi : wg; /* columns one work-group covers */
    const size_t tile_cols = C < tile ? C : tile;
    /* GPUs: 8 work-groups per compute unit (groups_wanted); more chunks
     * only add partials to write and merge. */
    size_t chunks = div_up(groups_wanted(r) * (r->dev->is_cpu ? 4 : 1), P * div_up(items, wg));
    size_t rchunk = div_up(R, chunks);
    size_t cache_rows = (256 * 1024) / (4 * tile_cols);
    if (cache_rows < 16) cache_rows = 16;
    if (!r->dev->is_cpu && rchunk > cache_rows) rchunk = cache_rows;
    /* GPUs take shorter chunks (down to 4 rows of a column each) where a
     * device of many compute units would otherwise idle. */
    if (rchunk < (r->dev->is_cpu ? 16u : 4u)) rchunk = r->dev->is_cpu ? 16 : 4;
    if (rchunk > R) rchunk = R;
    p->rchunk = rchunk;
}

static int plan_stream(const rules *r, size_t y_bytes)
{
    /* CPUs: an output of a quarter of the last-level cache or more is
     * written with streaming stores, which skip the read-for-ownership of
     * each line (a third of a plain store's traffic) and leave x's lines
     * alone. The threshold is close to recent glibc memcpy's (about a
     * quarter of L3); beyond it, the output shares the cache with
     * an input at least as large and with other cores, and little of it is
     * left for its reader. Measured: LayerNorm 4096x768 (12 MiB out of a
     * 32 MiB cache) 0.73-0.91 -> 0.92-0.98 of copy. Smaller outputs stay
     * cached for the next layer. */
    if (r->set->stream >= 0) return r->set->stream;
    return r->dev->is_cpu && r->cache && 4 * (cl_ulong)y_bytes >= r->cache;
}

static int plan_bn_use_cols(const rules *r, size_t S)
{
    (void)r;
    /* Channels-first planes shorter than this make row reductions mostly
     * overhead; treat the N x (C*S) matrix as columns instead. */
    return S < 64;
}

static int plan_waves(const rules *r, size_t N, size_t S, size_t C, colplan *p)
{
    /* CPUs, where reads and writes overlap only within a core; whole
     * vectors of columns; 2 to 16 samples (one sample has nothing to
     * overlap; 17 launches at most) of at least 1 MiB each, so that the
     * launches stay a small part of the run. Otherwise the partials
     * pipeline. */
    if (!r->dev->is_cpu || (r->set->variant != CLNORM_VARIANT_AUTO && r->set->variant != CLNORM_VARIANT_WI) ||
        C % 16 || N < 2 || N > 16 || (cl_ulong)S * C * r->esize < (1u << 20))
        return 0;
    plan_cols(r, 1, S, C, p);
    /* Two row chunks per compute unit: every work-item merges the
     * previous sample's partials for its tile, so more chunks cost more
     * merging, fewer leave a unit idle when the other is slowed. */
    const size_t chunks = div_up((size_t)r->dev->compute_units * 2, div_up(C, p->per_wi));
    size_t rchunk = div_up(S, chunks);
    if (rchunk < 16) rchunk = 16;
    if (rchunk > S) rchunk = S;
    p->rchunk = rchunk;
    return 1;
}

/* GPUs: row_norm holds a set of up to lanes * VEC * CLNORM_GPU_CACHE_V
 * elements in registers, with elementwise affine or channel planes of whole
 * vectors (rows.cl: row_norm_cached). */
static int row_cacheable(const rules *r, const clnorm_shape *s) { return !s->channel || s->S % vec_of(r) == 0; }
static int row_cached(const rules *r, const rowplan *rp, const clnorm_shape *s)
{
    return !r->dev->is_cpu && rp->lanes > 1 && row_cacheable(r, s) &&
           s->set_len <= (size_t)rp->lanes * vec_of(r) * CLNORM_GPU_CACHE_V;
}

/* ---- pipelines ----------------------------------------------------------
 * Each pipeline appends launches to the plan. Buffers are named by source;
 * the executor binds them. Program flags: RMS statistics, the op's rstd rule,
 * streaming stores for kernels that write y. */

typedef struct builder {
    const rules *r;
    const clnorm_desc *d;
    const clnorm_shape *s;
    clnorm_plan *p;
    unsigned rms;        /* CLNORM_K_RMS for RMSNorm: program flag of launches that reduce */
    unsigned rstd_flags; /* program flags of launches that compute rstd from batch statistics */
    unsigned y_flags;    /* program flags of launches that write y */
    int overflow;        /* more launches than CLNORM_PLAN_MAX */
    size_t record_offset; /* the BatchNorm split: the record's offset in its buffer */
    cl_uint count;        /* the BatchNorm split's apply: the global count per channel */
    float eps;           /* the kernels' eps argument: d->eps, or LpNormalization's count (below) */
} builder;

/* Which part of the backward sums pipeline a plan holds (pipe_bwd_partials):
 * all of it (clnorm_backward), or the BatchNorm split's halves, cut where
 * the per-channel sums are complete: the local sums of a slice into the
 * record (clnorm_bn_local_grad_sums), or the table and dx from the global
 * sums in the record (clnorm_bn_apply_grad). */
typedef enum bwd_stage { BWD_ALL, BWD_LOCAL, BWD_APPLY } bwd_stage;

static size_t round_up(size_t v, size_t m) { return div_up(v, m) * m; }

static clnorm_src src_of(clnorm_buf b, clnorm_src s) { return b.mem ? s : CLNORM_SRC_NONE; }

/* The next launch of the plan; its arguments are filled by the caller. */
static clnorm_launch *add(builder *b, clnorm_kernel_id k, unsigned wg, unsigned lanes, unsigned flags,
                          cl_uint dims, const size_t *g, const size_t *l, size_t item_stride)
{
    /* The pipelines stay far below the bound (col_wave: 17 launches and one
     * more); past it the last slot is reused and the plan rejected. */
    if (b->p->n >= CLNORM_PLAN_MAX) {
        b->overflow = 1;
        b->p->n = CLNORM_PLAN_MAX - 1;
    }
    clnorm_launch *L = &b->p->launch[b->p->n++];
    memset(L, 0, sizeof *L);
    L->kernel = k;
    L->prog.wg = wg, L->prog.lanes = lanes, L->prog.flags = flags;
    L->prog.tree = b->r->dev->is_cpu ? 0u : 1u;
    if (b->d) /* the storage types; the fold (no descriptor) is float32 */
        L->prog.xt = (unsigned)b->d->dtype, L->prog.pt = (unsigned)b->d->param_dtype;
    L->dims = dims;
    for (cl_uint i = 0; i < 3; ++i) {
        L->global[i] = i < dims ? g[i] : 1;
        L->local[i] = i < dims ? l[i] : 1;
    }
    L->item_stride = item_stride;
    /* Row kernels with lanes share a set through local memory (seg_sum). */
    L->local_bytes = (k == CLNORM_KID_row_norm || k == CLNORM_KID_row_partials || k == CLNORM_KID_bwd_rows ||
                      k == CLNORM_KID_bwd_row_sums) && lanes > 1
                         ? 4u * wg
                     : k == CLNORM_KID_merge_sets                                             ? 12u * wg
                                                                                              : 0;
    return L;
}

/* Merge partials (scratch PART) into per-set statistics (STATS) and the
 * saved outputs, one work-item per set in a fixed order. */
static void add_merge(builder *b, unsigned wg, cl_uint nsets, cl_uint n_inner, cl_ulong o_stride, cl_ulong i_stride,
                      cl_uint n1, cl_ulong st1, cl_uint n2, cl_ulong st2)
{
    const clnorm_desc *d = b->d;
    clnorm_kernel_id k = CLNORM_KID_merge_partials;
    size_t g = round_up(nsets, wg), l = wg;
    if (!b->r->dev->is_cpu) {
        /* GPUs: a work-group per set (merge_sets), as many lanes as it has
         * partials up to the work-group size. */
        unsigned lanes = 1;
        while (lanes < (size_t)n1 * n2 && lanes < wg) lanes *= 2;
        k = CLNORM_KID_merge_sets, wg = lanes, g = (size_t)nsets * lanes, l = lanes;
    }
    clnorm_launch *L = add(b, k, wg, wg, b->rstd_flags, 1, &g, &l, 0);
    /* merge_sets takes merge_partials' arguments (kernels.h). */
    L->args.merge_partials = (clnorm_args_merge_partials){
        .part = CLNORM_SRC_PART, .stats = CLNORM_SRC_STATS, .mean_out = src_of(d->mean, CLNORM_SRC_MEAN),
        .mo = d->mean.offset, .rstd_out = src_of(d->rstd, CLNORM_SRC_RSTD), .ro = d->rstd.offset,
        .nsets = nsets, .n_inner = n_inner, .o_stride = o_stride, .i_stride = i_stride,
        .n1 = n1, .st1 = st1, .n2 = n2, .st2 = st2, .eps = b->eps};
}

static void add_running(builder *b, unsigned wg, cl_uint nsets, cl_uint C, cl_uint navg, cl_float count)
{
    const clnorm_desc *d = b->d;
    size_t g = round_up(C, wg), l = wg;
    clnorm_launch *L = add(b, CLNORM_KID_update_running, wg, wg, 0, 1, &g, &l, 0);
    L->args.update_running = (clnorm_args_update_running){
        .stats = CLNORM_SRC_STATS, .nsets = nsets, .rmean = CLNORM_SRC_RMEAN, .rmo = d->running_mean.offset,
        .rvar = CLNORM_SRC_RVAR, .rvo = d->running_var.offset, .C = C, .navg = navg, .count = count,
        .momentum = d->momentum, .biased = d->running_var_biased ? 1u : 0u};
}

/* Streaming rows of R elements (the apply kernels): the row kernels' lane
 * and chunk rules, without a merge. */
static void plan_stream_rows(const rules *r, size_t nrows, size_t R, rowplan *rp)
{
    plan_rows_rule(r, nrows, R, 0, rp);
    if (rp->split) { /* streaming needs no merge: only the chunking is kept */
        rp->split = 0;
    } else if (!r->dev->is_cpu) {
        /* GPUs: chunk the rows until there are 4 work-groups per compute
         * unit; a streaming kernel loses nothing by it. */
        const size_t groups = rowplan_global(rp, nrows) / rp->wg, want = 4 * (size_t)r->dev->compute_units;
        const size_t step = (size_t)rp->lanes * vec_of(r);
        if (groups < want && R > step) {
            size_t chunk = div_up(div_up(R, div_up(want, groups)), step) * step;
            if (chunk < R) rp->chunk = chunk;
        }
    }
}

/* Fold statistics (batch statistics in STATS, or the running buffers) with
 * the affine parameters into the table, then stream x through it. BatchNorm
 * statistics are per channel; InstanceNorm/GroupNorm batch statistics are per
 * (n, group), which makes the table per sample. */
static void add_fold_apply(builder *b, int batch, unsigned wg)
{
    const clnorm_desc *d = b->d;
    const clnorm_shape *s = b->s;
    const int sample_stats = batch && d->op != CLNORM_BATCH_NORM;
    cl_uint C = (cl_uint)s->C, P = (d->per_sample_affine || sample_stats) ? (cl_uint)s->N : 1;
    {
        size_t g[2] = {round_up(C, wg), P}, l[2] = {wg, 1};
        /* rstd of batch statistics follows the op's rule; of running
         * statistics it is 1 / sqrt(running_var + eps), as PyTorch's. */
        clnorm_launch *L = add(b, CLNORM_KID_fold_table, wg, wg, batch ? b->rstd_flags : 0, 2, g, l, 0);
        L->args.fold_table = (clnorm_args_fold_table){
            .mean = batch ? CLNORM_SRC_STATS : CLNORM_SRC_RMEAN, .mo = batch ? 0 : d->running_mean.offset,
            .var = batch ? CLNORM_SRC_STATS : CLNORM_SRC_RVAR, .vo = batch ? s->sets : d->running_var.offset,
            .scale = src_of(d->scale, CLNORM_SRC_SCALE), .so = d->scale.offset,
            .bias = src_of(d->bias, CLNORM_SRC_BIAS), .bo = d->bias.offset, .table = CLNORM_SRC_TABLE,
            .P = P, .C = C, .stat_p = sample_stats ? (cl_uint)s->G : 0,
            .grp = sample_stats ? (cl_uint)(s->C / s->G) : 1, .aff_p = d->per_sample_affine ? C : 0,
            .eps = b->eps};
    }
    cl_uint Q = (cl_uint)(s->cl ? s->S : s->C), R = (cl_uint)(s->cl ? s->C : s->S);
    cl_uint nrows = (cl_uint)(s->N * Q);
    rowplan rp;
    plan_stream_rows(b->r, nrows, R, &rp);
    size_t g[2] = {rowplan_global(&rp, nrows), div_up(R, rp.chunk)}, l[2] = {rp.wg, 1};
    clnorm_launch *L = add(b, CLNORM_KID_apply_table, rp.wg, rp.lanes, b->y_flags, 2, g, l,
                           rp.lanes > 1 ? vec_of(b->r) : (size_t)R * rp.per_item);
    L->args.apply_table = (clnorm_args_apply_table){
        .x = CLNORM_SRC_X, .xo = d->x.offset, .y = CLNORM_SRC_Y, .yo = d->y.offset, .table = CLNORM_SRC_TABLE,
        .nrows = nrows, .per_item = (cl_uint)rp.per_item, .Q = Q, .R = R, .chunk = (cl_uint)rp.chunk, .C = C,
        .tp = P > 1, .ch_is_r = (cl_uint)s->cl, .tn = P * C};
    b->p->x_reads += 1;
}

/* Affine description of contiguous sets for the row kernels. */
typedef struct rowaff {
    cl_uint seg, aff_mod, elementwise;
} rowaff;

static rowaff row_affine(const clnorm_desc *d, const clnorm_shape *s)
{
    rowaff a;
    if (!s->channel) {
        a.seg = (cl_uint)s->set_len, a.aff_mod = 1, a.elementwise = 1;
    } else {
        a.seg = (cl_uint)s->S, a.elementwise = 0;
        a.aff_mod = (cl_uint)(d->per_sample_affine ? s->sets : s->G);
    }
    return a;
}

/* CPUs: float16 elementwise scale and bias widened to float32 once per call
 * (widen_params, into TABLE: scale at 0, bias at len) where a pipeline
 * (lanes 1) would convert them again for each of many rows; the row launch
 * then reads float32 parameters (program pt 0; the widening is exact, so
 * the bits are the same). On the AVX2 EPYC VM, LayerNorm 4096x4096 float16
 * forward ran about 3.7 ms with float16 parameters and 3.1 ms with float32
 * ones (four alternating runs of clnorm-bench --param-dtype f32): the
 * conversions of x, read three times, and of both parameters bound it.
 * bfloat16 parameters are not widened: their widening is one shift, and the
 * even/odd loops would pay a shuffle per float32 load instead. The launch
 * costs about 23 us on PoCL (RMSNorm 64x4096 float16: 14.6 -> 11.0 GB/s when
 * widened), so calls of fewer than 2^20 elements keep their conversions.
 * scripts/ab-bench.sh -r 6, float16 forward, median ratio to copy without ->
 * with: LayerNorm 4096x4096 0.632 -> 0.731, 2048x8192 0.737 -> 0.785,
 * 4096x768 0.552 -> 0.611, 65536x256 0.405 -> 0.435. bias: whether
 * the row launch reads it (the backward reads scale alone). Returns where the
 * row launch reads its parameters: TABLE when widened, else the call's own. */
#define CLNORM_WIDEN_MIN_SETS 64
#define CLNORM_WIDEN_MIN_ELEMS ((size_t)1 << 20)
typedef struct paramsrc {
    clnorm_src scale, bias;
    cl_ulong so, bo;
    unsigned pt; /* the row program's parameter type */
} paramsrc;
static paramsrc add_widen(builder *b, const rowplan *rp, const rowaff *af, int bias)
{
    const clnorm_desc *d = b->d;
    const clnorm_shape *s = b->s;
    paramsrc ps = {src_of(d->scale, CLNORM_SRC_SCALE), bias ? src_of(d->bias, CLNORM_SRC_BIAS) : CLNORM_SRC_NONE,
                   d->scale.offset, d->bias.offset, (unsigned)d->param_dtype};
    if (!b->r->dev->is_cpu || rp->lanes != 1 || rp->split || !af->elementwise ||
        d->param_dtype != CLNORM_FLOAT16 || (!ps.scale && !ps.bias) || s->sets < CLNORM_WIDEN_MIN_SETS ||
        s->elems < CLNORM_WIDEN_MIN_ELEMS)
        return ps;
    const unsigned wg = plan_wg(b->r);
    size_t g = round_up(s->set_len, wg), l = wg;
    clnorm_launch *L = add(b, CLNORM_KID_widen_params, wg, wg, 0, 1, &g, &l, 0);
    L->args.widen_params = (clnorm_args_widen_params){.scale = ps.scale, .so = ps.so, .bias = ps.bias, .bo = ps.bo,
                                                       .table = CLNORM_SRC_TABLE, .n = (cl_uint)s->set_len};
    b->p->scratch_floats[2] = 2 * s->set_len;
    const paramsrc wide = {ps.scale ? CLNORM_SRC_TABLE : CLNORM_SRC_NONE, ps.bias ? CLNORM_SRC_TABLE : CLNORM_SRC_NONE,
                           0, s->set_len, CLNORM_FLOAT32};
    return wide;
}

/* LayerNorm, RMSNorm and channels-first InstanceNorm/GroupNorm with batch
 * statistics: contiguous sets. */
static void pipe_rows(builder *b)
{
    const clnorm_desc *d = b->d;
    const clnorm_shape *s = b->s;
    rowplan rp;
    plan_rows_rule(b->r, s->sets, s->set_len, row_cacheable(b->r, s), &rp);
    const rowaff af = row_affine(d, s);
    cl_uint nsets = (cl_uint)s->sets, len = (cl_uint)s->set_len;
    const size_t nchunks = div_up(s->set_len, rp.chunk);
    if (rp.split) b->p->scratch_floats[0] = 3 * s->sets * nchunks;
    if (rp.split || s->update_running) b->p->scratch_floats[1] = 2 * s->sets;
    const clnorm_src stats = b->p->scratch_floats[1] ? CLNORM_SRC_STATS : CLNORM_SRC_NONE;
    size_t g[2] = {rowplan_global(&rp, s->sets), nchunks}, l[2] = {rp.wg, 1};
    const size_t stride = rp.lanes > 1 ? vec_of(b->r) : (size_t)len * rp.per_item;
    /* Fused residual add: the first pass over a set reads x and the residual
     * once and writes h = x + residual to h_out, or to y when h is not asked
     * for (y is then normalized in place); later passes read h there. */
    const int fused = d->residual.mem != NULL;
    const clnorm_src res = fused ? CLNORM_SRC_RES : CLNORM_SRC_NONE;
    const clnorm_src hsrc = !fused ? CLNORM_SRC_NONE : d->h_out.mem ? CLNORM_SRC_HOUT : CLNORM_SRC_Y;
    const cl_ulong hoff = d->h_out.mem ? d->h_out.offset : d->y.offset;
    /* The CPU pipeline re-reads x and the residual of a fused set from
     * cache: its cache share is twice a set's, so the fused add takes lag 1
     * from half the set size the lag rule's 1/16 of the cache allows.
     * clnorm-fused-bench, LayerNorm 64x262144 (1 MiB rows, 1/32 of this
     * machine's 32 MiB) on PoCL, three alternating runs: unfused/fused
     * 0.98-1.03 at lag 2, 1.22-1.23 at lag 1; fused-noh 1.31-1.35 and
     * 1.43-1.54. */
    if (fused && (cl_ulong)len * b->r->esize * 32 >= b->r->cache) rp.lag = 1;
    if (!rp.split) {
        /* Work-group kernels keep h in y when h_out is absent: y's lines
         * are written (h) and read back from cache before y is stored, so a
         * streaming store would first flush them and write y to memory
         * twice. (The CPU pipeline, lanes 1, re-adds x and the residual
         * instead.) */
        const unsigned yf =
            fused && !d->h_out.mem && rp.lanes > 1 ? b->y_flags & ~CLNORM_K_STREAM : b->y_flags;
        const paramsrc ps = add_widen(b, &rp, &af, 1);
        clnorm_launch *L = add(b, CLNORM_KID_row_norm, rp.wg, rp.lanes, b->rstd_flags | yf, 1, g, l, stride);
        L->prog.pt = ps.pt;
        L->args.row_norm = (clnorm_args_row_norm){
            .x = CLNORM_SRC_X, .xo = d->x.offset, .y = CLNORM_SRC_Y, .yo = d->y.offset,
            .scale = ps.scale, .so = ps.so, .bias = ps.bias, .bo = ps.bo,
            .mean_out = src_of(d->mean, CLNORM_SRC_MEAN), .mo = d->mean.offset,
            .rstd_out = src_of(d->rstd, CLNORM_SRC_RSTD), .ro = d->rstd.offset, .stats = stats, .nsets = nsets,
            .per_item = (cl_uint)rp.per_item, .lag = rp.lag, .len = len, .seg = af.seg, .aff_mod = af.aff_mod,
            .elementwise = af.elementwise, .eps = b->eps, .res = res, .rso = d->residual.offset, .hout = hsrc,
            .hoo = hoff};
        /* GPUs hold a row of up to lanes * VEC * CACHE_V elements in
         * registers (rows.cl: row_norm_cached): one read of x. */
        b->p->x_reads += row_cached(b->r, &rp, s) ? 1 : 3;
    } else {
        cl_uint chunk = (cl_uint)rp.chunk;
        clnorm_launch *L = add(b, CLNORM_KID_row_partials, rp.wg, rp.lanes, b->rms, 2, g, l, stride);
        L->args.row_partials = (clnorm_args_row_partials){
            .x = CLNORM_SRC_X, .xo = d->x.offset, .part = CLNORM_SRC_PART, .nsets = nsets,
            .per_item = (cl_uint)rp.per_item, .len = len, .chunk = chunk, .res = res, .rso = d->residual.offset,
            .hout = hsrc, .hoo = hoff};
        add_merge(b, rp.wg, nsets, nsets, 0, nchunks, (cl_uint)nchunks, 1, 1, 0);
        L = add(b, CLNORM_KID_row_apply, rp.wg, rp.lanes, b->rstd_flags | b->y_flags, 2, g, l, stride);
        L->args.row_apply = (clnorm_args_row_apply){
            .x = fused ? hsrc : CLNORM_SRC_X, .xo = fused ? hoff : d->x.offset, .y = CLNORM_SRC_Y, .yo = d->y.offset,
            .scale = src_of(d->scale, CLNORM_SRC_SCALE), .so = d->scale.offset,
            .bias = src_of(d->bias, CLNORM_SRC_BIAS), .bo = d->bias.offset, .stats = CLNORM_SRC_STATS,
            .nsets = nsets, .len = len, .chunk = chunk, .seg = af.seg, .aff_mod = af.aff_mod,
            .elementwise = af.elementwise, .eps = b->eps};
        b->p->x_reads += 3;
    }
    if (s->update_running)
        add_running(b, rp.wg, nsets, (cl_uint)s->C, (cl_uint)s->N, (cl_float)s->S);
}

/* Merge partials into the BatchNorm split's record (CLNORM_SRC_RECORD; see
 * merge_record in merge.cl) instead of the statistics: add_merge's
 * arguments, one work-item per channel on every device (a record is read by
 * the host, and the channels are many). */
static void add_record(builder *b, unsigned wg, cl_uint nsets, cl_uint n_inner, cl_ulong o_stride, cl_ulong i_stride,
                       cl_uint n1, cl_ulong st1, cl_uint n2, cl_ulong st2)
{
    size_t g = round_up(nsets, wg), l = wg;
    clnorm_launch *L = add(b, CLNORM_KID_merge_record, wg, wg, 0, 1, &g, &l, 0);
    L->args.merge_record = (clnorm_args_merge_record){
        .part = n1 && n2 ? CLNORM_SRC_PART : CLNORM_SRC_NONE, .record = CLNORM_SRC_RECORD,
        .ro = b->record_offset, .nsets = nsets, .n_inner = n_inner, .o_stride = o_stride, .i_stride = i_stride,
        .n1 = n1, .st1 = st1, .n2 = n2, .st2 = st2};
}

/* The statistics of strided sets: partials over x (rows of S for
 * channels-first BatchNorm with long planes, else columns), then their
 * merge, into the statistics and saved outputs (add_merge) or, for the
 * BatchNorm split (record = 1), into the record (add_record). */
/* A column launch over [P][R][Cc] (col_partials, bwd_col_sums): its plan
 * in *cp, its KR row chunks in *KR, and its scratch (floats floats per
 * partial: 3 for the forward's, 2 for the backward's sums) in need[0]. */
static clnorm_launch *add_cols(builder *b, clnorm_kernel_id k, unsigned flags, size_t P, size_t R, size_t Cc,
                               size_t floats, colplan *cp, size_t *KR)
{
    plan_cols(b->r, P, R, Cc, cp);
    *KR = div_up(R, cp->rchunk);
    b->p->scratch_floats[0] = floats * P * *KR * Cc;
    size_t g[3] = {round_up(div_up(Cc, cp->per_wi), cp->wg), *KR, P}, l[3] = {cp->wg, 1, 1};
    return add(b, k, cp->wg, cp->wg, flags, 3, g, l, cp->per_wi);
}

static void add_stats_stage(builder *b, unsigned wg, int record)
{
    const clnorm_desc *d = b->d;
    const clnorm_shape *s = b->s;
    const int bn = d->op == CLNORM_BATCH_NORM;
    size_t *need = b->p->scratch_floats;
    void (*merge)(builder *, unsigned, cl_uint, cl_uint, cl_ulong, cl_ulong, cl_uint, cl_ulong, cl_uint, cl_ulong) =
        record ? add_record : add_merge;
    colplan cp;
    if (bn && !s->cl && !plan_bn_use_cols(b->r, s->S)) {
        /* Channels-first BatchNorm with long planes reduces rows (n, c) of S. */
        rowplan rp;
        plan_rows_rule(b->r, s->N * s->C, s->S, 0, &rp);
        if (!rp.split) rp.chunk = s->S;
        const size_t K = div_up(s->S, rp.chunk);
        need[0] = 3 * s->N * s->C * K;
        cl_uint rows = (cl_uint)(s->N * s->C);
        size_t g[2] = {rowplan_global(&rp, rows), K}, l[2] = {rp.wg, 1};
        clnorm_launch *L = add(b, CLNORM_KID_row_partials, rp.wg, rp.lanes, b->rms, 2, g, l,
                               rp.lanes > 1 ? vec_of(b->r) : s->S * rp.per_item);
        L->args.row_partials = (clnorm_args_row_partials){
            .x = CLNORM_SRC_X, .xo = d->x.offset, .part = CLNORM_SRC_PART, .nsets = rows,
            .per_item = (cl_uint)rp.per_item, .len = (cl_uint)s->S, .chunk = (cl_uint)rp.chunk};
        merge(b, wg, (cl_uint)s->C, (cl_uint)s->C, 0, K, (cl_uint)s->N, s->C * K, (cl_uint)K, 1);
    } else {
        /* Columns of [P][R][Cc]: channels-last x, or channels-first with
         * short planes as an N x (C*S) matrix with S columns per channel. */
        size_t P = bn ? 1 : s->N, R = s->cl ? (bn ? s->N * s->S : s->S) : s->N;
        size_t Cc = s->cl ? s->C : s->C * s->S;
        size_t per_set_cols = s->cl ? s->C / s->G : s->S;
        size_t KR;
        clnorm_launch *L = add_cols(b, CLNORM_KID_col_partials, b->rms, P, R, Cc, 3, &cp, &KR);
        L->args.col_partials = (clnorm_args_col_partials){
            .x = CLNORM_SRC_X, .xo = d->x.offset, .part = CLNORM_SRC_PART, .R = (cl_uint)R, .C = (cl_uint)Cc,
            .rchunk = (cl_uint)cp.rchunk};
        /* Set (p, k) merges chunks (stride Cc) x its per_set_cols adjacent columns. */
        merge(b, wg, (cl_uint)s->sets, (cl_uint)(bn ? s->C : s->G), KR * Cc, per_set_cols, (cl_uint)KR, Cc,
              (cl_uint)per_set_cols, 1);
    }
}

/* BatchNorm training, and channels-last InstanceNorm/GroupNorm with batch
 * statistics: partials, merge, (running), fold, apply. */
static void pipe_partials(builder *b)
{
    const clnorm_desc *d = b->d;
    const clnorm_shape *s = b->s;
    const int bn = d->op == CLNORM_BATCH_NORM;
    const unsigned wg = plan_wg(b->r);
    const int per_sample = d->per_sample_affine || !bn;
    size_t *need = b->p->scratch_floats;
    need[1] = 2 * s->sets;
    need[2] = 3 * (per_sample ? s->N : 1) * s->C;
    colplan cp;
    if (!bn && s->cl && plan_waves(b->r, s->N, s->S, s->C, &cp)) {
        /* CPUs: launch w reads sample w for its statistics while it writes
         * sample w-1 (col_wave in cols.cl). */
        const size_t tiles = div_up(s->C, cp.per_wi), KR = div_up(s->S, cp.rchunk);
        size_t g[2] = {round_up(tiles, cp.wg), KR}, l[2] = {cp.wg, 1};
        need[0] = 3 * 2 * KR * s->C;
        need[2] = 3 * cp.per_wi * tiles * KR; /* a folded table per work-item */
        if (!s->update_running) need[1] = 0;
        cl_uint N = (cl_uint)s->N;
        for (cl_uint w = 0; w <= N; ++w) {
            clnorm_launch *L = add(b, CLNORM_KID_col_wave, cp.wg, 1, b->rstd_flags | b->y_flags, 2, g, l,
                                   cp.per_wi);
            L->args.col_wave = (clnorm_args_col_wave){
                .x = CLNORM_SRC_X, .xo = d->x.offset, .y = CLNORM_SRC_Y, .yo = d->y.offset,
                .scale = src_of(d->scale, CLNORM_SRC_SCALE), .so = d->scale.offset,
                .bias = src_of(d->bias, CLNORM_SRC_BIAS), .bo = d->bias.offset,
                .mean_out = src_of(d->mean, CLNORM_SRC_MEAN), .mo = d->mean.offset,
                .rstd_out = src_of(d->rstd, CLNORM_SRC_RSTD), .ro = d->rstd.offset,
                .stats = s->update_running ? CLNORM_SRC_STATS : CLNORM_SRC_NONE, .part = CLNORM_SRC_PART,
                .table = CLNORM_SRC_TABLE, .N = N, .S = (cl_uint)s->S, .C = (cl_uint)s->C, .G = (cl_uint)s->G,
                .rchunk = (cl_uint)cp.rchunk, .aff_ps = d->per_sample_affine ? 1u : 0u, .eps = b->eps, .w = w};
        }
        b->p->x_reads += 2;
        if (s->update_running)
            add_running(b, wg, (cl_uint)s->sets, (cl_uint)s->C, N, (cl_float)s->set_len);
        return;
    }
    add_stats_stage(b, wg, 0);
    b->p->x_reads += 2; /* statistics (a second pass from cache) */
    if (s->update_running)
        add_running(b, wg, (cl_uint)s->sets, (cl_uint)s->C, bn ? 1u : (cl_uint)s->N, (cl_float)s->set_len);
    add_fold_apply(b, 1, wg);
}

/* Inference with running statistics: BatchNorm, tracked InstanceNorm. */
static void pipe_running(builder *b)
{
    b->p->scratch_floats[2] = 3 * (b->d->per_sample_affine ? b->s->N : 1) * b->s->C;
    add_fold_apply(b, 0, plan_wg(b->r));
}

/* A builder for a call of d (shape s) on the plan p, with the program flags
 * of the op. */
static builder builder_start(const rules *r, const clnorm_desc *d, const clnorm_shape *s, clnorm_plan *p)
{
    memset(p, 0, sizeof *p);
    builder b = {r, d, s, p, 0, 0, 0, 0, 0, 0, d->eps};
    b.rms = d->op == CLNORM_RMS_NORM ? CLNORM_K_RMS : 0;
    if (d->lp) {
        /* LpNormalization: the RMS statistics without a mean (p = 2: mean of
         * squares; p = 1, LP alone: mean of |x|); rstd_of turns the mean into
         * 1 / ||x||_p with the count, which travels as eps (unused by LP). */
        b.rms = d->lp == 2 ? CLNORM_K_RMS | CLNORM_K_LP : CLNORM_K_LP;
        b.eps = (float)s->set_len;
    }
    /* SPEC.md: BatchNorm and InstanceNorm give rstd = 0 for var == 0 with
     * eps == 0 (PyTorch's inverse std); LayerNorm and GroupNorm give +Inf.
     * LP has its own rule (0 where the norm is 0), whatever the op. */
    b.rstd_flags = b.rms;
    if (!d->lp && (d->op == CLNORM_BATCH_NORM || d->op == CLNORM_INSTANCE_NORM))
        b.rstd_flags |= CLNORM_K_RSTD_ZERO;
    b.y_flags = plan_stream(r, s->elems * r->esize) ? CLNORM_K_STREAM : 0;
    return b;
}

clnorm_status clnorm_plan_forward(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                  const clnorm_shape *s, clnorm_plan *p)
{
    const rules r = rules_of(dev, set, clnorm_dtype_size(d->dtype));
    builder b = builder_start(&r, d, s, p);
    if (!s->batch_stats)
        pipe_running(&b);
    else if (!s->channel || (!s->cl && d->op != CLNORM_BATCH_NORM))
        pipe_rows(&b);
    else
        pipe_partials(&b);
    return b.overflow ? CLNORM_ERR_TOO_LARGE : CLNORM_OK;
}

/* ---- backward -------------------------------------------------------------
 * Contiguous sets with batch statistics (LayerNorm, RMSNorm, channels-first
 * InstanceNorm/GroupNorm): bwd_rows, one launch, plus bwd_params for the
 * parameter gradients. Everything else (BatchNorm, channels-last sets,
 * running statistics, and channel sets the row rule would split): sums of
 * dy and dy * xhat per (sample, channel) and chunk, bwd_merge, bwd_table,
 * bwd_apply. */

static int wants_grads(const clnorm_desc *d) { return d->dscale.mem || d->dbias.mem; }

static void add_bwd_params(builder *b, unsigned wg, cl_uint J, cl_uint B)
{
    const clnorm_desc *d = b->d;
    size_t g = round_up(J, wg), l = wg;
    clnorm_launch *L = add(b, CLNORM_KID_bwd_params, wg, wg, 0, 1, &g, &l, 0);
    L->args.bwd_params = (clnorm_args_bwd_params){
        .part = CLNORM_SRC_PART, .hoff = (cl_ulong)J * B, .dscale = src_of(d->dscale, CLNORM_SRC_DSCALE),
        .dso = d->dscale.offset, .dbias = src_of(d->dbias, CLNORM_SRC_DBIAS), .dbo = d->dbias.offset, .J = J,
        .B = B};
}

static void pipe_bwd_rows(builder *b, rowplan rp)
{
    const clnorm_desc *d = b->d;
    const clnorm_shape *s = b->s;
    const rowaff af = row_affine(d, s);
    const int grads = wants_grads(d);
    if (!s->channel && (grads || rp.split)) {
        /* Sets the row rule splits (too few to fill the device; see
         * clnorm_plan_backward): one item runs every set along dimension 1's
         * chunks, so its column partials are the gradients themselves;
         * phase 1 sums, phase 2 writes dx. Otherwise, for column partials,
         * an item takes at least 16 rows (GPUs: 4 to 16), so that they
         * (2 * cols floats per item) stay within an eighth (a half) of the
         * tensor. */
        const size_t min_rows = s->sets < 16 ? s->sets : 16;
        if (rp.split) rp.per_item = s->sets;
        if (rp.per_item < min_rows) rp.per_item = min_rows;
        if (!b->r->dev->is_cpu && b->r->set->variant == CLNORM_VARIANT_AUTO) {
            /* GPUs: one item per work-group, about 4 work-groups per
             * compute unit; where the rows are too few for that, they are
             * also chunked (phases 1 and 2) until there are. */
            const size_t want = 4 * (size_t)b->r->dev->compute_units;
            rp.lanes = rp.wg;
            const size_t step = (size_t)rp.lanes * vec_of(b->r), kmax = s->set_len / step ? s->set_len / step : 1;
            /* Fewer rows an item (down to 4) where even one-step chunks of
             * 16 rows would leave the device short of work-groups. */
            size_t per = s->sets / div_up(want, kmax);
            if (per > min_rows) per = min_rows;
            if (per < 4) per = s->sets < 4 ? s->sets : 4;
            rp.per_item = s->sets / want > per ? s->sets / want : per;
            rp.split = 0;
            const size_t items = div_up(s->sets, rp.per_item);
            if (items < want && s->set_len >= 2 * step) {
                size_t k = div_up(want, items);
                if (k > s->set_len / step) k = s->set_len / step;
                /* whole steps, rounded down: at least k chunks */
                rp.chunk = div_up(s->set_len, k) / step * step;
                rp.split = rp.chunk < s->set_len;
            }
        }
    }
    if (!rp.split) rp.chunk = s->set_len;
    const size_t items = div_up(s->sets, rp.per_item), nchunks = div_up(s->set_len, rp.chunk);
    /* Partials (sum dy, then sum dy * xhat), except where each gradient is
     * one item's own: a single item's column sums, or per-sample affine. */
    const int direct = s->channel ? d->per_sample_affine : items == 1;
    const size_t half = s->channel ? s->N * s->C : items * s->set_len;
    if (grads && !direct) b->p->scratch_floats[0] = 2 * half;
    if (rp.split) b->p->scratch_floats[1] = 2 * s->sets * nchunks;
    size_t g[2] = {rowplan_global(&rp, s->sets), rp.split ? nchunks : 1}, l[2] = {rp.wg, 1};
    const clnorm_src p0 = direct ? src_of(d->dbias, CLNORM_SRC_DBIAS) : grads ? CLNORM_SRC_PART : CLNORM_SRC_NONE;
    const clnorm_src p1 = direct ? src_of(d->dscale, CLNORM_SRC_DSCALE) : grads ? CLNORM_SRC_PART : CLNORM_SRC_NONE;
    /* CPUs: rows that the forward pipeline would keep three in flight (lag
     * 2) stay cached for one step of bwd_rows' pipeline, which writes row
     * q's dx while it streams row q + 1 in. Where a row's column partials
     * (8 bytes a column) reach 1 MiB, the pipeline takes rows in pairs,
     * block by block, so that the partials are read and written once per
     * pair (bwd_rows_grouped). Measured on LayerNorm 64x262144 float16:
     * 0.55-0.57 of copy by rows, 0.61-0.64 in pairs; groups of 4 or more
     * re-read their rows from beyond L2 and gained no more; 8192-column
     * rows, whose partials stay in L2, lost up to 0.1. */
    const int long_rows = (cl_ulong)s->set_len * 8 >= (1u << 20);
    const cl_uint pipe = rp.lanes == 1 && !rp.split && af.elementwise && rp.lag == 2 && d->dx.mem
                             ? (grads && long_rows ? 2 : 1)
                             : 0;
    const paramsrc ps = add_widen(b, &rp, &af, 0);
    for (cl_uint phase = rp.split ? 1 : 0; phase <= (rp.split ? 2u : 0u); ++phase) {
        clnorm_launch *L = add(b, CLNORM_KID_bwd_rows, rp.wg, rp.lanes, b->rms | b->y_flags, 2, g, l,
                               rp.lanes > 1 ? vec_of(b->r) : s->set_len * rp.per_item);
        L->prog.pt = ps.pt;
        L->args.bwd_rows = (clnorm_args_bwd_rows){
            .x = CLNORM_SRC_X, .xo = d->x.offset, .dy = CLNORM_SRC_DY, .dyo = d->dy.offset,
            .dx = phase == 1 ? CLNORM_SRC_NONE : src_of(d->dx, CLNORM_SRC_DX), .dxo = d->dx.offset,
            .scale = ps.scale, .so = ps.so,
            .mean = src_of(d->mean, CLNORM_SRC_MEAN), .mo = d->mean.offset, .rstd = CLNORM_SRC_RSTD,
            .ro = d->rstd.offset, .p0 = phase < 2 ? p0 : CLNORM_SRC_NONE, .p0o = direct ? d->dbias.offset : 0,
            .p1 = phase < 2 ? p1 : CLNORM_SRC_NONE, .p1o = direct ? d->dscale.offset : half,
            .pstride = direct ? 0 : s->set_len, .sums = rp.split ? CLNORM_SRC_STATS : CLNORM_SRC_NONE,
            .nsets = (cl_uint)s->sets, .per_item = (cl_uint)rp.per_item, .len = (cl_uint)s->set_len,
            .chunk = (cl_uint)rp.chunk, .phase = phase, .seg = af.seg, .aff_mod = af.aff_mod,
            .elementwise = af.elementwise, .pipe = pipe};
        b->p->x_reads += phase == 1 ? 1 : 2; /* phase 0's second pass from cache */
    }
    if (!grads || direct) return;
    if (!s->channel)
        add_bwd_params(b, plan_wg(b->r), (cl_uint)s->set_len, (cl_uint)items);
    else
        add_bwd_params(b, plan_wg(b->r), (cl_uint)s->C, (cl_uint)s->N);
}

/* Sums of partials per entry into the statistics (STATS), or for the
 * BatchNorm split's local stage into the record at its offset; n1 or n2 0:
 * zeros (an empty slice). */
static void add_bwd_merge(builder *b, bwd_stage stage, unsigned wg, cl_uint nent, cl_uint n_inner,
                          cl_ulong o_stride, cl_ulong i_stride, cl_uint n1, cl_ulong st1, cl_uint n2, cl_ulong st2)
{
    size_t g = round_up(nent, wg), l = wg;
    const int rec = stage == BWD_LOCAL;
    clnorm_launch *L = add(b, CLNORM_KID_bwd_merge, wg, wg, 0, 1, &g, &l, 0);
    L->args.bwd_merge = (clnorm_args_bwd_merge){
        .part = n1 && n2 ? CLNORM_SRC_PART : CLNORM_SRC_NONE, .stats = rec ? CLNORM_SRC_RECORD : CLNORM_SRC_STATS,
        .so = rec ? b->record_offset : 0, .nent = nent, .n_inner = n_inner, .o_stride = o_stride,
        .i_stride = i_stride, .n1 = n1, .st1 = st1, .n2 = n2, .st2 = st2};
}

static void pipe_bwd_partials(builder *b, bwd_stage stage)
{
    const clnorm_desc *d = b->d;
    const clnorm_shape *s = b->s;
    const int bn = d->op == CLNORM_BATCH_NORM, batch = s->batch_stats, grads = wants_grads(d);
    const unsigned wg = plan_wg(b->r);
    /* Entries (p, c): per sample where the statistics or the parameters
     * are, else per channel. */
    const size_t P = (d->per_sample_affine || (batch && !bn)) ? s->N : 1, C = s->C;
    const cl_uint stat_p = batch && !bn ? (cl_uint)s->G : 0;
    const clnorm_src msrc = batch ? src_of(d->mean, CLNORM_SRC_MEAN) : CLNORM_SRC_RMEAN;
    const clnorm_src rsrc = batch ? CLNORM_SRC_RSTD : CLNORM_SRC_RVAR;
    const cl_ulong mo = batch ? d->mean.offset : d->running_mean.offset;
    const cl_ulong ro = batch ? d->rstd.offset : d->running_var.offset;
    size_t *need = b->p->scratch_floats;
    const int sums = batch || grads;
    if (stage == BWD_LOCAL && !s->N) {
        /* an empty slice: zero sums, nothing read */
        add_bwd_merge(b, stage, wg, (cl_uint)C, (cl_uint)C, 0, 0, 0, 0, 0, 0);
        return;
    }
    if (sums && stage != BWD_APPLY) {
        need[1] = stage == BWD_LOCAL ? 0 : 2 * P * C;
        if (!s->cl && !plan_bn_use_cols(b->r, s->S)) {
            /* Rows: the (n, c) planes of S, chunked where the row rule splits. */
            rowplan rp;
            plan_stream_rows(b->r, s->N * C, s->S, &rp);
            const size_t K = div_up(s->S, rp.chunk), rows = s->N * C;
            need[0] = 2 * rows * K;
            size_t g[2] = {rowplan_global(&rp, rows), K}, l[2] = {rp.wg, 1};
            clnorm_launch *L = add(b, CLNORM_KID_bwd_row_sums, rp.wg, rp.lanes, 0, 2, g, l,
                                   rp.lanes > 1 ? vec_of(b->r) : s->S * rp.per_item);
            L->args.bwd_row_sums = (clnorm_args_bwd_row_sums){
                .x = CLNORM_SRC_X, .xo = d->x.offset, .dy = CLNORM_SRC_DY, .dyo = d->dy.offset, .mean = msrc,
                .mo = mo, .rs = rsrc, .ro = ro, .part = CLNORM_SRC_PART, .nrows = (cl_uint)rows,
                .per_item = (cl_uint)rp.per_item, .len = (cl_uint)s->S, .chunk = (cl_uint)rp.chunk,
                .rdiv = stat_p ? (cl_uint)(C / s->G) : 1, .rmod = stat_p ? (cl_uint)(s->N * s->G) : (cl_uint)C,
                .from_var = !batch, .eps = d->eps};
            if (P == 1) /* channel c: every sample's row, every chunk */
                add_bwd_merge(b, stage, wg, (cl_uint)C, (cl_uint)C, 0, K, (cl_uint)s->N, C * K, (cl_uint)K, 1);
            else /* entry (n, c) is row n*C + c */
                add_bwd_merge(b, stage, wg, (cl_uint)(P * C), (cl_uint)(P * C), 0, K, (cl_uint)K, 1, 1, 0);
        } else {
            /* Columns of [P][R][Cc]: channels-last (C columns), or channels-
             * first short planes (C*S columns, S per channel). */
            const size_t cpc = s->cl ? 1 : s->S, Cc = C * cpc;
            const size_t R = s->elems / (P * Cc);
            colplan cp;
            size_t KR;
            clnorm_launch *L = add_cols(b, CLNORM_KID_bwd_col_sums, 0, P, R, Cc, 2, &cp, &KR);
            L->args.bwd_col_sums = (clnorm_args_bwd_col_sums){
                .x = CLNORM_SRC_X, .xo = d->x.offset, .dy = CLNORM_SRC_DY, .dyo = d->dy.offset, .mean = msrc,
                .mo = mo, .rs = rsrc, .ro = ro, .part = CLNORM_SRC_PART, .R = (cl_uint)R, .C = (cl_uint)Cc,
                .rchunk = (cl_uint)cp.rchunk, .colgrp = (cl_uint)(cpc * (stat_p ? C / s->G : 1)),
                .stat_p = stat_p, .from_var = !batch, .eps = d->eps};
            add_bwd_merge(b, stage, wg, (cl_uint)(P * C), (cl_uint)C, KR * Cc, cpc, (cl_uint)KR, Cc,
                          (cl_uint)cpc, 1);
        }
        b->p->x_reads += 1;
    }
    if (stage == BWD_LOCAL) return;
    /* The split's apply runs the table even for an empty slice and no
     * output: its dscale/dbias (when given), and an event for the caller. */
    if (!d->dx.mem && !grads && stage != BWD_APPLY) return;
    const int rec = stage == BWD_APPLY;
    need[2] = 4 * P * C;
    {
        size_t g[2] = {round_up(C, wg), P}, l[2] = {wg, 1};
        clnorm_launch *L = add(b, CLNORM_KID_bwd_table, wg, wg, b->rms, 2, g, l, 0);
        L->args.bwd_table = (clnorm_args_bwd_table){
            .stats = rec ? CLNORM_SRC_RECORD : sums ? CLNORM_SRC_STATS : CLNORM_SRC_NONE,
            .sto = rec ? b->record_offset : 0, .scale = src_of(d->scale, CLNORM_SRC_SCALE),
            .so = d->scale.offset, .mean = msrc, .mo = mo, .rs = rsrc, .ro = ro, .table = CLNORM_SRC_TABLE,
            .dscale = src_of(d->dscale, CLNORM_SRC_DSCALE), .dso = d->dscale.offset,
            .dbias = src_of(d->dbias, CLNORM_SRC_DBIAS), .dbo = d->dbias.offset, .P = (cl_uint)P,
            .C = (cl_uint)C, .G = (cl_uint)s->G, .stat_p = stat_p, .aff_p = d->per_sample_affine ? 1u : 0u,
            .affine_only = !batch, .from_var = !batch,
            .count = rec ? (cl_float)b->count : (cl_float)s->set_len, .eps = d->eps};
    }
    if (!d->dx.mem || !s->N) return;
    const cl_uint Q = (cl_uint)(s->cl ? s->S : C), R = (cl_uint)(s->cl ? C : s->S);
    const cl_uint nrows = (cl_uint)(s->N * Q);
    rowplan rp;
    plan_stream_rows(b->r, nrows, R, &rp);
    size_t g[2] = {rowplan_global(&rp, nrows), div_up(R, rp.chunk)}, l[2] = {rp.wg, 1};
    clnorm_launch *L = add(b, CLNORM_KID_bwd_apply, rp.wg, rp.lanes, 0, 2, g, l,
                           rp.lanes > 1 ? vec_of(b->r) : (size_t)R * rp.per_item);
    L->args.bwd_apply = (clnorm_args_bwd_apply){
        .x = CLNORM_SRC_X, .xo = d->x.offset, .dy = CLNORM_SRC_DY, .dyo = d->dy.offset, .dx = CLNORM_SRC_DX,
        .dxo = d->dx.offset, .table = CLNORM_SRC_TABLE, .nrows = nrows, .per_item = (cl_uint)rp.per_item, .Q = Q,
        .R = R, .chunk = (cl_uint)rp.chunk, .C = (cl_uint)C, .tp = P > 1, .ch_is_r = (cl_uint)s->cl,
        .tn = (cl_uint)(P * C), .use_x = (cl_uint)batch};
    b->p->x_reads += 1;
}

clnorm_status clnorm_plan_backward(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                   const clnorm_shape *s, clnorm_plan *p)
{
    const rules r = rules_of(dev, set, clnorm_dtype_size(d->dtype));
    builder b = builder_start(&r, d, s, p);
    /* dx is the output streamed (rstd comes saved: no rstd rule). */
    b.rstd_flags = 0;
    b.y_flags = d->dx.mem && b.y_flags ? CLNORM_K_STREAM : 0;
    /* Contiguous sets go to bwd_rows, split there where they are too few
     * (LayerNorm/RMSNorm: elementwise parameters); split channel sets take
     * the sums pipeline, whose tables are per (sample, channel). */
    rowplan rp = {0, 0, 0, 0, 0, 0};
    const int rows = s->batch_stats && (!s->channel || (!s->cl && d->op != CLNORM_BATCH_NORM));
    if (rows) plan_rows_rule(&r, s->sets, s->set_len, 0, &rp);
    if (rows && (!rp.split || !s->channel))
        pipe_bwd_rows(&b, rp);
    else
        pipe_bwd_partials(&b, BWD_ALL);
    return b.overflow ? CLNORM_ERR_TOO_LARGE : CLNORM_OK;
}

/* ---- the BatchNorm split (clnorm_bn_local_stats, clnorm_bn_apply_stats) ---
 * The one-call BatchNorm pipeline cut where the statistics are complete:
 * the local stage is pipe_partials' statistics stage merging into a record,
 * the apply stage its running update, fold and apply, fed by the global
 * record. An empty slice (s->N == 0) launches nothing that reads x. */

clnorm_status clnorm_plan_bn_local(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                   const clnorm_shape *s, size_t record_offset, clnorm_plan *p)
{
    const rules r = rules_of(dev, set, clnorm_dtype_size(d->dtype));
    builder b = builder_start(&r, d, s, p);
    b.record_offset = record_offset;
    const unsigned wg = plan_wg(&r);
    if (!s->N) {
        add_record(&b, wg, (cl_uint)s->C, (cl_uint)s->C, 0, 0, 0, 0, 0, 0);
    } else {
        add_stats_stage(&b, wg, 1);
        p->x_reads += 2;
    }
    return b.overflow ? CLNORM_ERR_TOO_LARGE : CLNORM_OK;
}

clnorm_status clnorm_plan_bn_apply(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                   const clnorm_shape *s, size_t record_offset, cl_uint count, clnorm_plan *p)
{
    const rules r = rules_of(dev, set, clnorm_dtype_size(d->dtype));
    builder b = builder_start(&r, d, s, p);
    const unsigned wg = plan_wg(&r);
    const cl_uint C = (cl_uint)s->C;
    p->scratch_floats[1] = 2 * s->C;
    p->scratch_floats[2] = 3 * s->C;
    size_t g = round_up(C, wg), l = wg;
    clnorm_launch *L = add(&b, CLNORM_KID_record_stats, wg, wg, b.rstd_flags, 1, &g, &l, 0);
    L->args.record_stats = (clnorm_args_record_stats){
        .record = CLNORM_SRC_RECORD, .ro = record_offset, .count = count, .stats = CLNORM_SRC_STATS,
        .mean_out = src_of(d->mean, CLNORM_SRC_MEAN), .mo = d->mean.offset,
        .rstd_out = src_of(d->rstd, CLNORM_SRC_RSTD), .rso = d->rstd.offset, .C = C, .eps = d->eps};
    /* The global count, as the one-call path passes its own: the same
     * unbiased correction bit for bit when one process holds the batch. */
    if (s->update_running) add_running(&b, wg, C, C, 1, (cl_float)count);
    if (s->N) add_fold_apply(&b, 1, wg);
    return b.overflow ? CLNORM_ERR_TOO_LARGE : CLNORM_OK;
}

/* The backward split (clnorm_bn_local_grad_sums, clnorm_bn_apply_grad):
 * pipe_bwd_partials cut where the per-channel sums are complete, as
 * clnorm_backward runs it for BatchNorm (the sums stage merging into the
 * record instead of the statistics; the table reading the global sums
 * there, with the global count). */
clnorm_status clnorm_plan_bn_grad(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                  const clnorm_shape *s, size_t record_offset, cl_uint count, clnorm_plan *p)
{
    const rules r = rules_of(dev, set, clnorm_dtype_size(d->dtype));
    builder b = builder_start(&r, d, s, p);
    b.rstd_flags = 0; /* as clnorm_plan_backward */
    b.y_flags = d->dx.mem && b.y_flags ? CLNORM_K_STREAM : 0;
    b.record_offset = record_offset;
    b.count = count;
    pipe_bwd_partials(&b, count ? BWD_APPLY : BWD_LOCAL);
    return b.overflow ? CLNORM_ERR_TOO_LARGE : CLNORM_OK;
}

/* ---- BatchNorm folding (clnorm_fold_batch_norm) ---------------------------
 * One launch of fold_conv_bn: a row of work-groups per output channel over
 * its weights. Its buffers travel in the slots clnorm_fold_as_desc puts them
 * in (internal.h), so the executor binds them as any call's. */
clnorm_status clnorm_plan_fold(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_fold_desc *f,
                               clnorm_plan *p)
{
    const rules r = rules_of(dev, set, 4);
    memset(p, 0, sizeof *p);
    builder b = {&r, NULL, NULL, p, 0, 0, 0, 0, 0, 0, 0.0f};
    /* Small weight rows (depthwise 3x3: 9) get a small group rather than 64
     * idle work-items each. */
    unsigned wg = plan_wg(&r);
    while (wg > 1 && wg / 2 >= f->per_channel) wg /= 2;
    size_t g[2] = {round_up(f->per_channel, wg), f->out_channels}, l[2] = {wg, 1};
    clnorm_launch *L = add(&b, CLNORM_KID_fold_conv_bn, wg, wg, 0, 2, g, l, 1);
    L->args.fold_conv_bn = (clnorm_args_fold_conv_bn){
        .w = CLNORM_SRC_X, .wo = f->weight.offset, .cbias = src_of(f->conv_bias, CLNORM_SRC_MEAN),
        .cbo = f->conv_bias.offset, .scale = src_of(f->scale, CLNORM_SRC_SCALE), .so = f->scale.offset,
        .bias = src_of(f->bias, CLNORM_SRC_BIAS), .bo = f->bias.offset, .rmean = CLNORM_SRC_RMEAN,
        .rmo = f->running_mean.offset, .rvar = CLNORM_SRC_RVAR, .rvo = f->running_var.offset,
        .w_out = CLNORM_SRC_Y, .woo = f->weight_out.offset, .b_out = CLNORM_SRC_RSTD, .boo = f->bias_out.offset,
        .K = (cl_uint)f->per_channel, .eps = f->eps};
    return CLNORM_OK;
}
