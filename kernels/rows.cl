/*
 * Contiguous reduction sets: LayerNorm and RMSNorm rows, channels-first
 * InstanceNorm (one (n,c) plane) and GroupNorm (C/G planes), and the rows
 * that channels-first BatchNorm statistics are built from.
 *
 * Set i is x[i*len, (i+1)*len). LANES work-items share a set; dimension 1 of
 * the range splits a set into chunks of `chunk` elements when one set is too
 * long or there are too few sets to fill the device.
 *
 * Affine: elementwise (LayerNorm: scale[e]) or per segment of `seg` elements
 * (channel norms: the set is len/seg channel planes of seg = S elements; the
 * parameter index is (i % aff_mod) * (len/seg) + plane, which is the channel
 * for aff_mod = groups and n*C + c for aff_mod = number of sets, i.e.
 * per-sample affine).
 */

typedef struct {
    __global const float *scale, *bias;
    uint seg, aff_mod, elementwise;
} affine_t;

/* y[e] for e in [e0, e1) of set i, given its mean and rstd. */
inline void apply_range(__global const float *x, __global float *y, uint e0, uint e1,
                        uint lane, uint i, uint len, float mean, float rstd, affine_t af)
{
    if (af.elementwise) {
        norm_span(x, y, e0, e1, lane, mean, rstd, 0.0f, 0, af.scale, af.bias);
        return;
    }
    const uint nseg = len / af.seg;
    for (uint k = e0 / af.seg; k * af.seg < e1; ++k) {
        const uint j0 = max(k * af.seg, e0), j1 = min(k * af.seg + af.seg, e1);
        const uint p = (i % af.aff_mod) * nseg + k;
        const float a = af.scale ? rstd * af.scale[p] : rstd;
        const float b = af.bias ? af.bias[p] : 0.0f;
        norm_span(x, y, j0, j1, lane, mean, a, b, 0, 0, 0);
    }
}

#if CACHE_V > 0
/* GPUs: a row of up to LANES * VEC * CACHE_V elements is held in registers,
 * so it is read from global memory once for the statistics and the output.
 * Elementwise affine only (LayerNorm/RMSNorm); n = 0 for padding items. */
inline void row_norm_cached(__global const float *px, __global float *py, uint n, uint lane,
                            __local float *buf, __global const float *sc, __global const float *bi,
                            float eps, float *mean_o, float *rstd_o, float *var_o)
{
    const uint nv = n / VEC, tail = n - nv * VEC;
    floatv r[CACHE_V];
    for (uint j = 0; j < CACHE_V; ++j) {
        const uint v = lane + j * LANES;
        r[j] = v < nv ? LOADV(v, px) : (floatv)0.0f;
    }
    const float tl = lane < tail ? px[nv * VEC + lane] : 0.0f;
    floatv a = 0.0f;
#if RMS
    for (uint j = 0; j < CACHE_V; ++j)
        a += r[j] * r[j]; /* padding is 0 */
    const float var = seg_sum(HSUM(a) + tl * tl, buf) / (float)n;
    const float mean = 0.0f;
#else
    const float k = n ? px[0] : 0.0f;
    for (uint j = 0; j < CACHE_V; ++j)
        if (lane + j * LANES < nv) a += r[j] - k;
    const float mu = k + seg_sum(HSUM(a) + (lane < tail ? tl - k : 0.0f), buf) / (float)n;
    a = 0.0f;
    for (uint j = 0; j < CACHE_V; ++j)
        if (lane + j * LANES < nv) a += (r[j] - mu) * (r[j] - mu);
    const float var = seg_sum(HSUM(a) + (lane < tail ? (tl - mu) * (tl - mu) : 0.0f), buf) / (float)n;
    const float mean = checked_mean(mu, var);
#endif
    const float rstd = rstd_of(var, eps);
    for (uint j = 0; j < CACHE_V; ++j) {
        const uint v = lane + j * LANES;
        if (v < nv) {
            floatv u = (r[j] - mean) * rstd;
            if (sc) u *= LOADV(v, sc);
            if (bi) u += LOADV(v, bi);
            STOREV(u, v, py);
        }
    }
    if (lane < tail) {
        const uint e = nv * VEC + lane;
        float u = (tl - mean) * rstd;
        if (sc) u *= sc[e];
        py[e] = bi ? u + bi[e] : u;
    }
    *mean_o = mean, *rstd_o = rstd, *var_o = var;
}
#endif

/* Statistics and normalization of whole sets in one launch. Saved statistics
 * (mean, rstd) are optional, and so is `stats` (mean at [i], biased variance
 * at [nsets + i]), which running-statistics updates read. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void row_norm(__global const float *x, ulong xo, __global float *y, ulong yo,
              __global const float *scale, ulong so, __global const float *bias, ulong bo,
              __global float *mean_out, ulong mo, __global float *rstd_out, ulong ro,
              __global float *stats,
              uint nsets, uint len, uint seg, uint aff_mod, uint elementwise, float eps)
{
    __local float buf[WG];
    const uint i = get_global_id(0) / LANES, lane = get_local_id(0) % LANES;
#if LANES == 1
    if (i >= nsets)
        return;
#endif
    /* Padding work-items past the last set take part in the barriers only;
     * no early return after a barrier (PoCL mishandles it in branches). */
    const int active = i < nsets;
    const ulong base = (ulong)min(i, nsets - 1) * len;
    float mean, var, rstd;
#if CACHE_V > 0
    if (elementwise && len <= LANES * VEC * CACHE_V) { /* uniform over the launch */
        row_norm_cached(x + xo + base, y + yo + base, active ? len : 0, lane, buf,
                        scale ? scale + so : 0, bias ? bias + bo : 0, eps, &mean, &rstd, &var);
    } else
#endif
    {
        float m2;
        range_stats(x + xo + base, 0, active ? len : 0, lane, buf, &mean, &m2);
        var = RMS ? mean : m2 / (float)len;
        rstd = rstd_of(var, eps);
        mean = RMS ? 0.0f : checked_mean(mean, var);
        const affine_t af = { scale ? scale + so : 0, bias ? bias + bo : 0, seg, aff_mod, elementwise };
        if (active)
            apply_range(x + xo + base, y + yo + base, 0, len, lane, i, len, mean, rstd, af);
    }
    if (active && lane == 0) {
        if (mean_out) mean_out[mo + i] = mean;
        if (rstd_out) rstd_out[ro + i] = rstd;
        if (stats) { stats[i] = mean; stats[nsets + i] = var; }
    }
}

/* Partial statistics of chunk c of set i, stored at partial index i*nchunks + c. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void row_partials(__global const float *x, ulong xo, __global float *part,
                  uint nsets, uint len, uint chunk)
{
    __local float buf[WG];
    const uint i = get_global_id(0) / LANES, lane = get_local_id(0) % LANES;
    const uint c = get_global_id(1), nchunks = get_global_size(1);
#if LANES == 1
    if (i >= nsets)
        return;
#endif
    const uint ic = min(i, nsets - 1);
    const uint e0 = c * chunk, e1 = i < nsets ? min(len, e0 + chunk) : e0;
    float mean, m2;
    range_stats(x + xo + (ulong)ic * len, e0, e1, lane, buf, &mean, &m2);
    if (i < nsets && lane == 0)
        put_partial(part, (ulong)i * nchunks + c, e1 - e0, mean, m2);
}

/* Normalization of chunk c of set i with statistics already merged: stats
 * holds the mean of set i at [i] and its biased variance (RMS: mean of
 * squares) at [nsets + i]. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void row_apply(__global const float *x, ulong xo, __global float *y, ulong yo,
               __global const float *scale, ulong so, __global const float *bias, ulong bo,
               __global const float *stats, uint nsets, uint len, uint chunk,
               uint seg, uint aff_mod, uint elementwise, float eps)
{
    const uint i = get_global_id(0) / LANES, lane = get_local_id(0) % LANES;
    const uint c = get_global_id(1);
    if (i >= nsets)
        return;
    const uint e0 = c * chunk, e1 = min(len, e0 + chunk);
    const ulong base = (ulong)i * len;
    const affine_t af = { scale ? scale + so : 0, bias ? bias + bo : 0, seg, aff_mod, elementwise };
    apply_range(x + xo + base, y + yo + base, e0, e1, lane, i, len,
                stats[i], rstd_of(stats[nsets + i], eps), af);
}
