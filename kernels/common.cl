/*
 * Shared by every kernel family: the host compiles each family's file with
 * this one in front of it. Tuning values arrive as -D options; the defaults
 * below let each family compile standalone for inspection.
 */
#ifndef WG
#define WG 256 /* work-group size, a power of two */
#endif
#ifndef LANES
#define LANES WG /* work-items cooperating on one set: WG, a power-of-two divisor, or 1 */
#endif
#ifndef TREE
/* 1: log-depth tree (GPUs). 0: the first lane of a segment sums it in order;
 * on CPU devices every barrier ends a loop over the work-group, so fewer
 * barriers win there. Either way the order is fixed: results are bitwise
 * reproducible. */
#define TREE 1
#endif
#ifndef RMS
#define RMS 0 /* 1: statistics are the mean of squares (RMSNorm) */
#endif

#define SETS_PER_WG (WG / LANES)

/* A partial statistic of a stretch of one set: count, mean (RMS: mean of
 * squares) and M2 = sum of squared deviations from that mean. Stored as three
 * floats, the count's bits as a uint, so that 2^32 elements stay exact. */
#define PART_STRIDE 3

inline void put_partial(__global float *p, ulong i, uint count, float mean, float m2)
{
    p[PART_STRIDE * i + 0] = mean;
    p[PART_STRIDE * i + 1] = m2;
    p[PART_STRIDE * i + 2] = as_float(count);
}

/* Sum v over the LANES work-items of this item's segment. Every lane gets
 * the same bits. All work-items of the group must call it. */
inline float seg_sum(float v, __local float *buf)
{
#if LANES == 1
    (void)buf;
    return v;
#else
    const uint lid = get_local_id(0);
    const uint base = lid - lid % LANES;
    buf[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
#if TREE
    for (uint s = LANES / 2; s > 0; s >>= 1) {
        if (lid - base < s)
            buf[lid] += buf[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#else
    if (lid == base) {
        float a = buf[base];
        for (uint i = 1; i < LANES; ++i)
            a += buf[base + i];
        buf[base] = a;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
    const float r = buf[base];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
#endif
}

/* Statistics of x[e0, e1) of one set, shared by its LANES lanes.
 * Two passes: the mean first, then the squared deviations from it. The first
 * pass sums x - x[e0] rather than x, so a large common offset (mean 1e4,
 * spread 1e-2) does not swamp the float accumulators. */
inline void range_stats(__global const float *x, uint e0, uint e1, uint lane,
                        __local float *buf, float *mean, float *m2)
{
    const float n = (float)(e1 - e0);
#if RMS
    float s = 0.0f;
    for (uint e = e0 + lane; e < e1; e += LANES) {
        const float v = x[e];
        s += v * v;
    }
    *mean = seg_sum(s, buf) / n;
    *m2 = 0.0f;
#else
    const float k = x[e0];
    float s = 0.0f;
    for (uint e = e0 + lane; e < e1; e += LANES)
        s += x[e] - k;
    const float mu = k + seg_sum(s, buf) / n;
    float q = 0.0f;
    for (uint e = e0 + lane; e < e1; e += LANES) {
        const float d = x[e] - mu;
        q += d * d;
    }
    *mean = mu;
    *m2 = seg_sum(q, buf);
#endif
}

/* rstd from a biased variance (RMS: mean of squares). The one place it is
 * computed, so saved and applied statistics agree bit for bit. */
inline float rstd_of(float var, float eps)
{
    return 1.0f / sqrt(var + eps);
}
