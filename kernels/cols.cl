/*
 * Strided reduction sets, seen as columns of x viewed as [P][R][C] with C
 * contiguous: channels-last BatchNorm (P = 1, R = N*S), channels-last
 * InstanceNorm and GroupNorm (P = N, R = S; a group is C/G adjacent columns),
 * and channels-first BatchNorm with small planes (P = 1, R = N, C*S columns,
 * S adjacent columns per channel).
 *
 * Work-item c owns column c, so loads along C are coalesced on GPUs and
 * vectorize across work-items on CPUs. Dimension 1 splits the rows into
 * chunks of `rchunk`; each (p, chunk, c) leaves one partial at index
 * (p*nchunks + chunk)*C + c, merged later in a fixed order. No barriers.
 */
/* Two passes over rows [r0, r1) of column(s) at col (they stay in cache),
 * shifted by the first value; T is float or floatv. */
#define COLUMN_STATS(T, LOAD)                                                    \
    {                                                                            \
        const T k = LOAD(r0);                                                    \
        T s = 0.0f, q = 0.0f;                                                    \
        for (uint r = r0; r < r1; ++r)                                           \
            s += LOAD(r) - k;                                                    \
        mu = k + s / (float)(r1 - r0);                                           \
        for (uint r = r0; r < r1; ++r) {                                         \
            const T d = LOAD(r) - mu;                                            \
            q += d * d;                                                          \
        }                                                                        \
        m2 = q;                                                                  \
    }

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void col_partials(__global const float *x, ulong xo, __global float *part,
                  uint R, uint C, uint rchunk)
{
    const uint kr = get_global_id(1), p = get_global_id(2);
    const uint nchunks = get_global_size(1);
    const uint r0 = kr * rchunk, r1 = min(R, r0 + rchunk);
    const ulong out = ((ulong)p * nchunks + kr) * C;
    __global const float *xp = x + xo + (ulong)p * R * C;
#if COLS_VEC
    const uint c0 = get_global_id(0) * VEC;
    if (c0 >= C)
        return;
    if (c0 + VEC <= C) {
        floatv mu, m2;
#define LOAD_V(r) LOADV(0, xp + (ulong)(r) * C + c0)
        COLUMN_STATS(floatv, LOAD_V)
        float mv[VEC], qv[VEC];
        STOREV(mu, 0, mv);
        STOREV(m2, 0, qv);
        for (uint j = 0; j < VEC; ++j)
            put_partial(part, out + c0 + j, r1 - r0, mv[j], qv[j]);
        return;
    }
    for (uint c = c0; c < C; ++c) {
#else
    {
        const uint c = get_global_id(0);
        if (c >= C)
            return;
#endif
        float mu, m2;
#define LOAD_S(r) xp[(ulong)(r) * C + c]
        COLUMN_STATS(float, LOAD_S)
        put_partial(part, out + c, r1 - r0, mu, m2);
    }
}
