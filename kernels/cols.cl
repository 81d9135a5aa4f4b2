/*
 * Strided reduction sets, seen as columns of x viewed as [P][R][C] with C
 * contiguous: channels-last BatchNorm (P = 1, R = N*S), channels-last
 * InstanceNorm and GroupNorm (P = N, R = S; a group is C/G adjacent columns),
 * and channels-first BatchNorm with small planes (P = 1, R = N, C*S columns,
 * S adjacent columns per channel).
 *
 * On GPUs work-item c owns column c, so loads along C are coalesced; on
 * CPUs a work-item owns a tile of columns (below). Dimension 1 splits the rows into
 * chunks of `rchunk`; each (p, chunk, c) leaves one partial at index
 * (p*nchunks + chunk)*C + c, merged later in a fixed order. No barriers.
 */
#ifndef COL_TILE
#define COL_TILE 16 /* CPUs: vectors of columns per work-item */
#endif

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
    /* CPUs: a work-item owns a tile of COL_TILE vectors (256 columns) and
     * walks its rows in order: each row of the tile is one contiguous 1 KiB
     * read, which the hardware prefetcher streams. */
    const uint c0 = get_global_id(0) * (COL_TILE * VEC);
    if (c0 >= C)
        return;
    const uint nvec = min((uint)COL_TILE, (C - c0) / VEC);
    const float n = (float)(r1 - r0);
    floatv k[COL_TILE], s[COL_TILE];
    __global const float *row = xp + (ulong)r0 * C + c0;
    for (uint j = 0; j < nvec; ++j) {
        k[j] = LOADV(j, row);
        s[j] = 0.0f;
    }
    for (uint r = r0; r < r1; ++r, row += C)
        for (uint j = 0; j < nvec; ++j)
            s[j] += LOADV(j, row) - k[j];
    for (uint j = 0; j < nvec; ++j) {
        k[j] += s[j] / n; /* the mean, as in the scalar path */
        s[j] = 0.0f;
    }
    row = xp + (ulong)r0 * C + c0;
    for (uint r = r0; r < r1; ++r, row += C)
        for (uint j = 0; j < nvec; ++j) {
            const floatv d = LOADV(j, row) - k[j];
            s[j] += d * d;
        }
    for (uint j = 0; j < nvec; ++j) {
        float mv[VEC], qv[VEC];
        STOREV(k[j], 0, mv);
        STOREV(s[j], 0, qv);
        for (uint t = 0; t < VEC; ++t)
            put_partial(part, out + c0 + j * VEC + t, r1 - r0, mv[t], qv[t]);
    }
    /* Columns past the last full vector (C not a multiple of VEC). */
    for (uint c = c0 + nvec * VEC; c < min(C, c0 + COL_TILE * VEC); ++c) {
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
