/*
 * Kernel selection rules, all in one place. Inputs: the device (type,
 * compute units, maximum work-group size) and the shape of the reduction
 * sets. See docs/performance.md for the measurements behind the numbers.
 * A variant or work-group size in force for the call (c->call_variant,
 * c->call_wg: forced by the user, or a tuning file's entry) overrides the
 * rule that would choose it.
 */
#include "internal.h"

static size_t pow2_floor(size_t v)
{
    size_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

/* Work-groups wanted in flight: a few per compute unit hides imbalance. */
static size_t groups_wanted(const clnorm_ctx *c)
{
    return (size_t)c->dev.compute_units * (c->dev.is_cpu ? 4 : 8);
}

unsigned clnorm_plan_wg(const clnorm_ctx *c)
{
    size_t wg = c->call_wg ? c->call_wg : (c->dev.is_cpu ? 64 : 256);
    if (wg > c->dev.max_wg) wg = pow2_floor(c->dev.max_wg);
    return (unsigned)wg;
}

void clnorm_plan_rows(const clnorm_ctx *c, size_t nsets, size_t len, clnorm_rowplan *p)
{
    unsigned wg = clnorm_plan_wg(c);
    clnorm_variant v = c->call_variant;
    p->split = 0;
    p->chunk = len;
    p->per_item = 1;
    /* row_norm's CPU pipeline keeps three sets in flight per work-item when
     * a set is at most 1/16 of the cache (measured: 1 MiB sets gain from it,
     * 4 MiB sets lose 0.2 of copy bandwidth, re-read from DRAM); larger
     * sets, or an unknown cache, take the two-deep pipeline with pieces. */
    p->lag = c->dev.cache_bytes && (cl_ulong)len * 4 * 16 <= c->dev.cache_bytes ? 2 : 1;
    if (v == CLNORM_VARIANT_AUTO) {
        if (nsets < (size_t)c->dev.compute_units * 2 && len >= 65536)
            /* Too few sets to fill the device, each long enough to be worth
             * two more launches: split them across work-groups. */
            v = CLNORM_VARIANT_SPLIT;
        else if (c->dev.is_cpu)
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
        if (c->dev.is_cpu) {
            /* A work-item takes a run of consecutive sets, so that rows.cl
             * can pipeline them; a few runs per compute unit balance the
             * load, and each run is its own work-group. The pipeline's
             * first two and last two steps are not overlapped, so with few
             * sets a run still gets up to 16 (two runs per unit). */
            p->per_item = div_up(nsets, groups_wanted(c));
            size_t deep = div_up(nsets, (size_t)c->dev.compute_units * 2);
            if (deep > 16) deep = 16;
            if (p->per_item < deep) p->per_item = deep;
            if (!c->call_wg) wg = 1;
        } else if (!c->call_wg) {
            /* Several work-groups per compute unit even with few sets. */
            size_t per = nsets / groups_wanted(c);
            wg = (unsigned)(per < 1 ? 1 : pow2_floor(per < wg ? per : wg));
        }
        break;
    case CLNORM_VARIANT_SUBGROUP: p->lanes = wg < 32 ? wg : 32; break;
    case CLNORM_VARIANT_SPLIT: {
        /* CPUs: one work-item per chunk; GPUs: a work-group per chunk. */
        if (c->dev.is_cpu && !c->call_wg) wg = 1;
        p->lanes = wg;
        size_t per_set = div_up(groups_wanted(c), nsets);
        /* Whole rounds of chunks per compute unit: 3 sets x 3 chunks on 2
         * units would leave one unit idle for a ninth of the run. */
        while ((nsets * per_set) % c->dev.compute_units && per_set < 4 * groups_wanted(c))
            ++per_set;
        size_t chunk = div_up(len, per_set);
        if (chunk < 4096) chunk = 4096;
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
size_t clnorm_rowplan_global(const clnorm_rowplan *p, size_t nsets)
{
    const size_t items = div_up(nsets, p->per_item), spw = p->wg / p->lanes;
    return div_up(items, spw) * p->wg;
}

void clnorm_plan_cols(const clnorm_ctx *c, size_t P, size_t R, size_t C, clnorm_colplan *p)
{
    /* CPUs: a work-item streams a tile of up to 1024 columns (4 KiB of a
     * row) row by row; GPUs: one column per work-item, coalesced. */
    p->per_wi = c->dev.is_cpu ? CLNORM_CPU_COL_TILE : 1;
    const size_t items = div_up(C, p->per_wi);
    size_t wg = clnorm_plan_wg(c);
    /* CPUs: each work-item keeps a tile's statistics in private memory
     * (12 KiB), which PoCL allocates for the whole work-group on a worker
     * thread's stack: 512 work-items overflowed it. A forced or tuned size
     * is capped here; beyond a few work-items they only idle anyway. */
    if (c->dev.is_cpu && wg > CLNORM_CPU_COL_WG_MAX) wg = CLNORM_CPU_COL_WG_MAX;
    if (c->dev.is_cpu && !c->call_wg) {
        size_t w = 1;
        while (w < items && w < wg) w *= 2;
        wg = w;
    }
    p->wg = (unsigned)wg;
    /* Enough row chunks to occupy the device; on GPUs the second pass over
     * a chunk should hit the cache: 256 KiB per tile. (CPUs take a chunk
     * in blocks of a few rows whose second pass hits L1, and merge them
     * themselves: one partial per work-item.) */
    const size_t tile = p->per_wi > 1 ? p->per_wi : wg; /* columns one work-group covers */
    const size_t tile_cols = C < tile ? C : tile;
    size_t chunks = div_up(groups_wanted(c) * 4, P * div_up(items, wg));
    size_t rchunk = div_up(R, chunks);
    size_t cache_rows = (256 * 1024) / (4 * tile_cols);
    if (cache_rows < 16) cache_rows = 16;
    if (!c->dev.is_cpu && rchunk > cache_rows) rchunk = cache_rows;
    if (rchunk < 16) rchunk = 16;
    if (rchunk > R) rchunk = R;
    p->rchunk = rchunk;
}

int clnorm_plan_stream(const clnorm_ctx *c, size_t y_bytes)
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
    if (c->stream >= 0) return c->stream;
    return c->dev.is_cpu && c->dev.cache_bytes && 4 * (cl_ulong)y_bytes >= c->dev.cache_bytes;
}

int clnorm_plan_bn_use_cols(const clnorm_ctx *c, size_t S)
{
    (void)c;
    /* Channels-first planes shorter than this make row reductions mostly
     * overhead; treat the N x (C*S) matrix as columns instead. */
    return S < 64;
}

int clnorm_plan_waves(const clnorm_ctx *c, size_t N, size_t S, size_t C, clnorm_colplan *p)
{
    /* CPUs, where reads and writes overlap only within a core; whole
     * vectors of columns; 2 to 16 samples (one sample has nothing to
     * overlap; 17 launches at most) of at least 1 MiB each, so that the
     * launches stay a small part of the run. Otherwise the partials
     * pipeline. */
    if (!c->dev.is_cpu || (c->call_variant != CLNORM_VARIANT_AUTO && c->call_variant != CLNORM_VARIANT_WI) ||
        C % 16 || N < 2 || N > 16 || (cl_ulong)S * C * 4 < (1u << 20))
        return 0;
    clnorm_plan_cols(c, 1, S, C, p);
    /* Two row chunks per compute unit: every work-item merges the
     * previous sample's partials for its tile, so more chunks cost more
     * merging, fewer leave a unit idle when the other is slowed. */
    const size_t chunks = div_up((size_t)c->dev.compute_units * 2, div_up(C, p->per_wi));
    size_t rchunk = div_up(S, chunks);
    if (rchunk < 16) rchunk = 16;
    if (rchunk > S) rchunk = S;
    p->rchunk = rchunk;
    return 1;
}
