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
#define COL_TILE 64 /* CPUs: vectors of columns per work-item */
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
                  uint R, uint C, uint rchunk, uint rsub)
{
    const uint kr = get_global_id(1), p = get_global_id(2);
    const uint nchunks = get_global_size(1);
    const uint r0 = kr * rchunk, r1 = min(R, r0 + rchunk);
    const ulong out = ((ulong)p * nchunks + kr) * C;
    __global const float *xp = x + xo + (ulong)p * R * C;
#if COLS_VEC
    /* CPUs: a work-item owns a tile of COL_TILE vectors (the host passes
     * 64: 1024 columns) and walks its rows in order: each row of the tile is
     * one contiguous read of up to 4 KiB, which the hardware prefetcher
     * streams. It takes its rows in sub-tiles of rsub rows that stay in L2
     * for the second pass, and merges the sub-tiles' statistics itself
     * (Chan, as chan_add, one weight for all columns), so the merge kernel
     * sees one partial per work-item instead of one per sub-tile. */
    const uint c0 = get_global_id(0) * (COL_TILE * VEC);
    if (c0 >= C)
        return;
    const uint nvec = min((uint)COL_TILE, (C - c0) / VEC);
    /* Per vector j, side by side (separate arrays 4 KiB apart would alias
     * in the store buffer): the sub-tile's shift, then mean (K), its sum,
     * then M2 (S), and the running reference mean (K0), mean relative to
     * it (REL) and M2 (Q). */
    floatv st[5 * COL_TILE];
#define K_(j) st[5 * (j)]
#define S_(j) st[5 * (j) + 1]
#define K0_(j) st[5 * (j) + 2]
#define REL_(j) st[5 * (j) + 3]
#define Q_(j) st[5 * (j) + 4]
    for (uint a = r0; a < r1; a += rsub) {
        const uint b = min(r1, a + rsub);
        __global const float *row = xp + (ulong)a * C + c0;
        for (uint j = 0; j < nvec; ++j) {
            K_(j) = LOADV(j, row);
            S_(j) = 0.0f;
        }
        for (uint r = a; r < b; ++r, row += C)
            for (uint j = 0; j < nvec; ++j)
                S_(j) += LOADV(j, row) - K_(j);
        const float nb = (float)(b - a);
        for (uint j = 0; j < nvec; ++j)
            K_(j) += S_(j) / nb; /* the mean, as in the scalar path */
        /* The second pass walks the sub-tile (in L2) in bands of two
         * vectors, so its accumulators stay in registers; each column still
         * sums its rows in order. */
        for (uint j = 0; j < nvec; j += 2) {
            const uint j2 = min(j + 1, nvec - 1); /* an odd last band repeats its vector */
            const floatv k0 = K_(j), k1 = K_(j2);
            floatv q0 = 0.0f, q1 = 0.0f;
            row = xp + (ulong)a * C + c0;
            for (uint r = a; r < b; ++r, row += C) {
                const floatv d0 = LOADV(j, row) - k0, d1 = LOADV(j2, row) - k1;
                q0 += d0 * d0;
                q1 += d1 * d1;
            }
            S_(j) = q0;
            S_(j2) = q1;
        }
        if (a == r0) {
            for (uint j = 0; j < nvec; ++j) {
                K0_(j) = K_(j);
                REL_(j) = 0.0f;
                Q_(j) = S_(j);
            }
        } else {
            const float na = (float)(a - r0), w = nb / (na + nb);
            for (uint j = 0; j < nvec; ++j) {
                const floatv d = (K_(j) - K0_(j)) - REL_(j);
                REL_(j) += d * w;
                Q_(j) += S_(j) + d * d * (na * w);
            }
        }
    }
    for (uint j = 0; j < nvec; ++j) {
        float mv[VEC], qv[VEC];
        STOREV(K0_(j) + REL_(j), 0, mv);
        STOREV(Q_(j), 0, qv);
        for (uint t = 0; t < VEC; ++t)
            put_partial(part, out + c0 + j * VEC + t, r1 - r0, mv[t], qv[t]);
    }
#undef K_
#undef S_
#undef K0_
#undef REL_
#undef Q_
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
