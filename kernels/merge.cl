/*
 * Small per-set, per-channel and per-parameter kernels around the passes
 * over x: merging partials, updating running statistics, folding statistics
 * and affine parameters into a per-(n, c) table for the streaming apply
 * kernel, and widening 16-bit parameters for the CPU row kernels.
 */
WIDE_BEGIN

/* A merged set's outputs: stats[s] = mean, stats[nsets + s] = biased
 * variance (RMS: mean of squares), and the optional saved mean and rstd. */
inline void put_set(__global float *stats, uint nsets, uint s, float mean, float var, __global float *mean_out,
                    ulong mo, __global float *rstd_out, ulong ro, float eps)
{
    stats[s] = mean;
    stats[nsets + s] = var;
    if (mean_out) mean_out[mo + s] = mean;
    if (rstd_out) rstd_out[ro + s] = rstd_of(var, eps);
}

/*
 * One work-item per set merges its partials in a fixed order (merge_set in
 * common.cl), so no E[x^2] - E[x]^2 cancellation and no atomics. Set
 * s = so * n_inner + si has its partials at so*o_stride + si*i_stride +
 * j1*st1 + j2*st2 for j1 < n1, j2 < n2. Writes stats[s] = mean and
 * stats[nsets + s] = biased variance (RMS: mean of squares, mean 0), and
 * the optional saved mean and rstd.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void merge_partials(__global const float *part, __global float *stats,
                    __global float *mean_out, ulong mo, __global float *rstd_out, ulong ro,
                    uint nsets, uint n_inner, ulong o_stride, ulong i_stride,
                    uint n1, ulong st1, uint n2, ulong st2, float eps)
{
    const uint s = get_global_id(0);
    if (s >= nsets)
        return;
    const ulong base = (ulong)(s / n_inner) * o_stride + (ulong)(s % n_inner) * i_stride;
    float mean, var;
    merge_set(part, base, n1, st1, n2, st2, &mean, &var);
    put_set(stats, nsets, s, mean, var, mean_out, mo, rstd_out, ro, eps);
}

/*
 * GPUs: the same merge with a work-group per set (merge_partials would run
 * one work-item per channel over thousands of partials: 256 work-items on a
 * 132-unit H200 for channels-last BatchNorm). Lane l takes the set's
 * partials l, l + WG, ... (flat index j = j1 * n2 + j2) in order, merging
 * (count, mean, M2) relative to the set's first partial's mean K with
 * Chan's update; the lanes' results are then combined pairwise in a fixed
 * tree. Every step is an exact merge in a fixed order: the same bits every
 * run. RMS: count-weighted sums of the partials' means of squares, which
 * stay Inf (not NaN) when one is Inf. Arguments and outputs as
 * merge_partials; launched with one work-group per set.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void merge_sets(__global const float *part, __global float *stats,
                __global float *mean_out, ulong mo, __global float *rstd_out, ulong ro,
                uint nsets, uint n_inner, ulong o_stride, ulong i_stride,
                uint n1, ulong st1, uint n2, ulong st2, float eps)
{
    __local uint lc[WG];
    __local float lr[WG], lq[WG];
    const uint s = get_group_id(0), l = get_local_id(0);
    const ulong base = (ulong)(s / n_inner) * o_stride + (ulong)(s % n_inner) * i_stride;
    const uint n = n1 * n2;
#if RMS
    const float K = 0.0f;
#else
    const float K = part[PART_STRIDE * base];
#endif
    chan_t a = {0, 0.0f, 0.0f};
    for (uint j = l; j < n; j += WG) {
        __global const float *e = part + PART_STRIDE * (base + (ulong)(j / n2) * st1 + (ulong)(j % n2) * st2);
        const uint c = as_uint(e[2]);
        if (!c)
            continue;
#if RMS
        a.rel += (float)c * e[0]; /* a sum here; divided once at the end */
        a.n += c;
#else
        chan_add(&a, c, e[0] - K, e[1]);
#endif
    }
    lc[l] = a.n, lr[l] = a.rel, lq[l] = a.m2;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = WG / 2; h > 0; h >>= 1) {
        if (l < h && lc[l + h]) {
#if RMS
            lr[l] += lr[l + h];
            lc[l] += lc[l + h];
#else
            chan_t m = {lc[l], lr[l], lq[l]};
            if (m.n) {
                chan_add(&m, lc[l + h], lr[l + h], lq[l + h]);
            } else {
                m.n = lc[l + h], m.rel = lr[l + h], m.m2 = lq[l + h];
            }
            lc[l] = m.n, lr[l] = m.rel, lq[l] = m.m2;
#endif
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0 && s < nsets) {
#if RMS
        const float var = lr[0] / (float)lc[0], mean = 0.0f;
#else
        const float var = lq[0] / (float)lc[0], mean = checked_mean(K + lr[0], var);
#endif
        put_set(stats, nsets, s, mean, var, mean_out, mo, rstd_out, ro, eps);
    }
}

/*
 * Running statistics of channel c from the batch statistics in `stats`
 * (layout as merge_partials writes it, sets numbered n*C + c). navg = 1 for
 * BatchNorm; InstanceNorm averages its navg = N per-instance statistics.
 * count is the number of elements behind each set's variance. biased = 0:
 * the batch variance enters as the unbiased estimate (PyTorch); 1: as the
 * biased one (ONNX BatchNormalization-14/15, training_mode = 1).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void update_running(__global const float *stats, uint nsets,
                    __global float *rmean, ulong rmo, __global float *rvar, ulong rvo,
                    uint C, uint navg, float count, float momentum, uint biased)
{
    const uint c = get_global_id(0);
    if (c >= C)
        return;
    float m = 0.0f, v = 0.0f;
    for (uint k = 0; k < navg; ++k) {
        m += stats[k * C + c];
        v += stats[nsets + k * C + c];
    }
    m /= (float)navg;
    v /= (float)navg;
    if (!biased)
        v *= count / (count - 1.0f); /* unbiased, as PyTorch */
    rmean[rmo + c] = (1.0f - momentum) * rmean[rmo + c] + momentum * m;
    rvar[rvo + c] = (1.0f - momentum) * rvar[rvo + c] + momentum * v;
}

/*
 * Table entry (p, c) for the apply kernel: the statistics of the set that
 * channel c of sample p falls in (set p*stat_p + c/grp; stat_p = 0 for
 * BatchNorm), and the affine parameters (index p*aff_p + c; aff_p = C for
 * per-sample affine). Folding gives the apply kernel one subtract and one
 * multiply-add per element; the mean stays separate from the multiplier so
 * that large offsets lose no more precision than the fused row kernel.
 * mean/var are batch statistics from `stats` or the running statistics.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void fold_table(__global const float *mean, ulong mo, __global const float *var, ulong vo,
                __global const ps_t *scale, ulong so, __global const ps_t *bias, ulong bo,
                __global float *table, uint P, uint C, uint stat_p, uint grp, uint aff_p, float eps)
{
    const uint c = get_global_id(0), p = get_global_id(1);
    if (c >= C)
        return;
    const uint s = p * stat_p + c / grp, a_i = p * aff_p + c, t = p * C + c, tn = P * C;
    fold_entry(table, t, tn, mean[mo + s], rstd_of(var[vo + s], eps), scale, so + a_i, bias, bo + a_i);
}

/*
 * Elementwise 16-bit scale and bias widened to float32 once per call, for
 * the CPU row kernels to read as float32 parameters (PT 0) instead of
 * converting them again for every row: table[e] = scale[e], table[n + e] =
 * bias[e]; an absent one is not written. Widening is exact, so the rows
 * compute the same bits either way.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void widen_params(__global const ps_t *scale, ulong so, __global const ps_t *bias, ulong bo,
                  __global float *table, uint n)
{
    const uint e = get_global_id(0);
    if (e >= n)
        return;
    if (scale) table[e] = LDP(so + e, scale);
    if (bias) table[n + e] = LDP(bo + e, bias);
}

/*
 * BatchNorm split for a distributed caller (clnorm_bn_local_stats): the
 * partials of this process's slice merged per channel into a record,
 * record[3c] = mean, record[3c + 1] = M2 (sum of squared deviations from the
 * mean), record[3c + 2] = count as the bits of a uint (exact to 2^32 - 1,
 * where a float count would round above 2^24). Partials are addressed as
 * merge_partials' (same arguments), merged by merge_set_m2 in the same fixed
 * order, so the record holds exactly the statistics the one-call path
 * would normalize this slice with. n1 = 0: an empty slice, whose record is
 * (0, 0, count 0), read as "no elements" by every merge. A NaN or Inf in
 * the slice makes M2 and the mean NaN (checked_mean), which every merge
 * carries on to that channel alone.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void merge_record(__global const float *part, __global float *record, ulong ro, uint nsets, uint n_inner,
                  ulong o_stride, ulong i_stride, uint n1, ulong st1, uint n2, ulong st2)
{
    const uint s = get_global_id(0);
    if (s >= nsets)
        return;
    __global float *r = record + ro + 3 * (ulong)s;
    float mean = 0.0f, m2 = 0.0f;
    uint cnt = 0;
    if (n1 && n2) {
        const ulong base = (ulong)(s / n_inner) * o_stride + (ulong)(s % n_inner) * i_stride;
        cnt = (uint)merge_set_m2(part, base, n1, st1, n2, st2, &mean, &m2);
        mean = checked_mean(mean, m2);
    }
    r[0] = mean;
    r[1] = m2;
    r[2] = as_float(cnt);
}

/*
 * clnorm_bn_apply_stats: the global record of channel c (as merge_record
 * writes it, merged over every process) into the batch statistics that
 * update_running and fold_table read (stats[c] = mean, stats[C + c] =
 * biased variance M2 / count) and the saved mean and rstd (put_set, with the
 * one-call path's rstd rule). count is the merged count per channel, which
 * the host validated; the record's own count word is not read.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void record_stats(__global const float *record, ulong ro, uint count, __global float *stats,
                  __global float *mean_out, ulong mo, __global float *rstd_out, ulong rso, uint C, float eps)
{
    const uint c = get_global_id(0);
    if (c >= C)
        return;
    __global const float *r = record + ro + 3 * (ulong)c;
    const float var = r[1] / (float)count;
    put_set(stats, C, c, checked_mean(r[0], var), var, mean_out, mo, rstd_out, rso, eps);
}

/*
 * BatchNorm folded into the preceding convolution (clnorm_fold_batch_norm):
 * work-item (e, o) scales weight e of output channel o (K weights per
 * channel, contiguous) by a = scale[o] * rstd, rstd = 1 / sqrt(var[o] + eps)
 * as rstd_of gives it (built without flags: as BatchNorm inference's
 * fold_table, so both normalize with the same multiplier), and work-item
 * (0, o) writes the folded bias. Each element is read and written by one
 * work-item, so outputs may be exactly their inputs (in place). Absent
 * cbias, scale and bias count as 0, 1 and 0.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void fold_conv_bn(__global const float *w, ulong wo, __global const float *cbias, ulong cbo,
                  __global const float *scale, ulong so, __global const float *bias, ulong bo,
                  __global const float *rmean, ulong rmo, __global const float *rvar, ulong rvo,
                  __global float *w_out, ulong woo, __global float *b_out, ulong boo, uint K, float eps)
{
    const uint e = get_global_id(0), o = get_global_id(1);
    if (e >= K)
        return;
    const float r = rstd_of(rvar[rvo + o], eps), a = scale ? r * scale[so + o] : r;
    const ulong i = (ulong)o * K + e;
    w_out[woo + i] = w[wo + i] * a;
    if (e == 0) {
        const float b = cbias ? cbias[cbo + o] : 0.0f;
        b_out[boo + o] = (b - rmean[rmo + o]) * a + (bias ? bias[bo + o] : 0.0f);
    }
}
WIDE_END
