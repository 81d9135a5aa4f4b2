/*
 * Kernel selection rules, all in one place. Inputs: the device (type,
 * compute units, maximum work-group size) and the shape of the reduction
 * sets. See docs/performance.md for the measurements behind the numbers.
 */
#include "internal.h"

static size_t pow2_floor(size_t v)
{
    size_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}

static size_t pow2_ceil(size_t v)
{
    size_t p = 1;
    while (p < v) p *= 2;
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
    size_t wg = c->forced_wg ? c->forced_wg : (c->dev.is_cpu ? 64 : 256);
    if (wg > c->dev.max_wg) wg = pow2_floor(c->dev.max_wg);
    return (unsigned)wg;
}

void clnorm_plan_rows(const clnorm_ctx *c, size_t nsets, size_t len, clnorm_rowplan *p)
{
    const unsigned wg = clnorm_plan_wg(c);
    clnorm_variant v = c->variant;
    p->wg = wg;
    p->split = 0;
    p->chunk = len;
    if (v == CLNORM_VARIANT_AUTO) {
        /* Too few sets to fill the device, each long enough to be worth two
         * more launches: split them across work-groups. */
        if (nsets < (size_t)c->dev.compute_units * 2 && len >= 65536)
            v = CLNORM_VARIANT_SPLIT;
        else if (len < 64 && nsets >= wg * groups_wanted(c))
            /* Short sets: one work-item each wastes no lanes on reductions. */
            v = CLNORM_VARIANT_WI;
        else if (!c->dev.is_cpu && len <= 1024)
            v = CLNORM_VARIANT_SUBGROUP;
        else
            v = CLNORM_VARIANT_WG;
    }
    switch (v) {
    case CLNORM_VARIANT_WI: p->lanes = 1; break;
    case CLNORM_VARIANT_SUBGROUP: p->lanes = wg < 32 ? wg : 32; break;
    case CLNORM_VARIANT_SPLIT: {
        p->lanes = wg;
        size_t per_set = div_up(groups_wanted(c), nsets);
        size_t chunk = div_up(len, per_set);
        if (chunk < 4096) chunk = 4096;
        chunk = div_up(chunk, wg) * wg;
        if (chunk >= len) chunk = len;
        p->chunk = chunk;
        p->split = 1;
        break;
    }
    default: p->lanes = wg; break;
    }
}

size_t clnorm_plan_col_chunk(const clnorm_ctx *c, size_t P, size_t R, size_t C)
{
    const size_t wg = clnorm_plan_wg(c);
    /* Enough chunks of rows to occupy the device, each small enough that
     * the second pass over it hits the cache. */
    size_t col_groups = P * div_up(C, wg);
    size_t chunks = div_up(groups_wanted(c) * 4, col_groups);
    size_t rchunk = div_up(R, chunks);
    size_t cache_rows = (256 * 1024) / (4 * (C < wg ? C : wg));
    if (rchunk > cache_rows) rchunk = cache_rows;
    if (rchunk < 16) rchunk = 16;
    if (rchunk > R) rchunk = R;
    return rchunk;
}

int clnorm_plan_bn_use_cols(const clnorm_ctx *c, size_t S)
{
    (void)c;
    /* Channels-first planes shorter than this make row reductions mostly
     * overhead; treat the N x (C*S) matrix as columns instead. */
    return S < 64;
}

void clnorm_plan_apply_local(const clnorm_ctx *c, size_t R, size_t Q, size_t local[2])
{
    const size_t wg = clnorm_plan_wg(c);
    size_t lx = pow2_ceil(R);
    if (lx > wg) lx = wg;
    size_t ly = wg / lx;
    if (ly > pow2_ceil(Q)) ly = pow2_ceil(Q);
    local[0] = lx;
    local[1] = ly;
}
