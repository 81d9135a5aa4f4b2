/*
 * Strided reduction sets, seen as columns of x viewed as [P][R][C] with C
 * contiguous: channels-last BatchNorm (P = 1, R = N*S), channels-last
 * InstanceNorm and GroupNorm (P = N, R = S; a group is C/G adjacent columns),
 * and channels-first BatchNorm with small planes (P = 1, R = N, C*S columns,
 * S adjacent columns per channel).
 *
 * col_partials: on GPUs work-item c owns column c, so loads along C are
 * coalesced; on CPUs a work-item owns a tile of columns (below). Dimension 1
 * splits the rows into chunks of `rchunk`; each (p, chunk, c) leaves one
 * partial at index (p*nchunks + chunk)*C + c, merged later in a fixed order.
 * No barriers.
 *
 * col_wave (CPUs): channels-last InstanceNorm/GroupNorm in N + 1 launches
 * that overlap one sample's statistics with the previous one's output.
 *
 * With RMS (LpNormalization along an outer axis, as channels-last
 * InstanceNorm's sets) the partials hold the mean of STAT (|x| or x^2) and
 * M2 = 0, as the row kernels' (common.cl).
 */
WIDE_BEGIN
#ifndef COL_TILE
#define COL_TILE 64 /* CPUs: vectors of columns per col_partials work-item */
#endif

/* Two passes over rows [r0, r1) of column(s) at col (they stay in cache),
 * shifted by the first value; T is float or floatv. RMS (RMSNorm's and
 * LpNormalization's mean-free statistics): one pass, the mean of STAT. */
#if RMS
#define COLUMN_STATS(T, LOAD)                                                    \
    {                                                                            \
        T s = 0.0f;                                                              \
        for (uint r = r0; r < r1; ++r)                                           \
            s += STAT(LOAD(r), 0.0f);                                            \
        mu = s / (float)(r1 - r0);                                               \
        m2 = 0.0f;                                                               \
    }
#else
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
#endif

/* Rows of a band being written while another band's statistics stream in:
 * y = (x - m) * a + b with per-column m, a, b (a folded table row). */
typedef struct {
    __global const xs_t *x;
    __global const float *m, *a, *b;
    __global xs_t *y;
    uint n; /* columns; 0: nothing to write */
} col_write_t;

/* Per column vector j of a tile, side by side (separate arrays 4 KiB apart
 * would alias in the store buffer): the reference (K0, the tile's first
 * row), the running mean relative to it (REL) and the running M2 (Q). */
#define K0_(j) st[3 * (j)]
#define REL_(j) st[3 * (j) + 1]
#define Q_(j) st[3 * (j) + 2]

#ifndef COL_RB
#define COL_RB 8 /* CPUs: rows per block of a column tile */
#endif
#ifndef COL_PF
#define COL_PF 1 /* CPUs: blocks ahead that are prefetched; 0: none */
#endif

/* Statistics of the nb rows of a block at `row` (row stride C, first row
 * a), merged into the tile's (K0, REL, Q); na rows are merged so far. Column
 * vector by column vector: its shifted sum (first pass, from memory), the
 * block's mean, the M2 about that mean (second pass, from L1), then Chan's
 * update (as chan_add). Walking a block by columns hides the rows' order
 * from the hardware prefetcher, so if pf the block COL_PF blocks ahead is
 * prefetched in address order, nb lines per vector, which covers it (a
 * vector is one 64-byte line). With a write hook (col_wave) the block's rows
 * of w's tile are written spread over the vectors, row i before vector
 * ceil(i * nvec / nb), so that reads and writes stay interleaved. The
 * statistics are per column, so the tile's vectors take the even/odd order
 * where it is on (common.cl), and put_tile_partials puts each column back
 * in place. Always inlined: called with nb = COL_RB, its loops unroll. */
inline __attribute__((always_inline)) void col_block(__global const xs_t *row, uint C, uint a,
                                                     uint nb, uint nvec, float na, int pf,
                                                     floatv *st, const col_write_t *w)
{
    __global const xs_t *ahead = row + COL_PF * nb * C;
    uint pr = 0, pc = 0; /* next line of the block ahead: row, vector */
    uint wi = 0;         /* next row to write */
    for (uint j = 0; j < nvec; ++j) {
        if (w && w->n)
            for (; wi < nb && wi * nvec <= j * nb; ++wi)
                norm_span(w->x + (ulong)(a + wi) * C, w->y + (ulong)(a + wi) * C, 0, w->n, 0, 0.0f,
                          1.0f, 0.0f, w->m, w->a, w->b);
        if (pf)
            for (uint i = 0; i < nb; ++i) {
                PREFETCH_LINE(ahead + (ulong)pr * C + pc * VEC);
                if (++pc == nvec) {
                    pc = 0;
                    ++pr;
                }
            }
        const floatv k0 = K0_(j);
        floatv s = 0.0f, q = 0.0f;
        for (uint i = 0; i < nb; ++i)
            s += STAT(LDXV_EO(j, row + i * C), k0);
        const floatv mb = s / (float)nb;
#if !RMS /* RMS: the mean of STAT is the whole statistic */
        for (uint i = 0; i < nb; ++i) {
            const floatv d = (LDXV_EO(j, row + i * C) - k0) - mb;
            q += d * d;
        }
#endif
        if (na == 0.0f) {
            REL_(j) = mb;
            Q_(j) = q;
        } else {
            const float wb = (float)nb / (na + (float)nb);
            const floatv d = mb - REL_(j);
            REL_(j) += d * wb;
#if !RMS
            Q_(j) += q + d * d * (na * wb);
#endif
        }
    }
    if (w && w->n)
        for (; wi < nb; ++wi)
            norm_span(w->x + (ulong)(a + wi) * C, w->y + (ulong)(a + wi) * C, 0, w->n, 0, 0.0f,
                      1.0f, 0.0f, w->m, w->a, w->b);
}

/* CPUs: statistics of rows [r0, r1) of nvec column vectors at xp (row
 * stride C) into st, in blocks of COL_RB rows, and, if w && w->n, the same
 * rows of w's tile written meanwhile (col_wave: the core reads one sample
 * while it writes another). */
inline void col_tile_stats(__global const xs_t *xp, uint C, uint r0, uint r1, uint nvec,
                           floatv *st, const col_write_t *w)
{
    __global const xs_t *row = xp + (ulong)r0 * C;
    for (uint j = 0; j < nvec; ++j)
        K0_(j) = RMS ? (floatv)0.0f : LDXV_EO(j, row); /* RMS: no shift (STAT ignores it) */
    float na = 0.0f;
    for (uint a = r0; a < r1; a += COL_RB, row += COL_RB * C) {
        const uint nb = min((uint)COL_RB, r1 - a);
        if (nb == COL_RB) /* a constant count: the block's loops unroll */
            col_block(row, C, a, COL_RB, nvec, na, COL_PF && a + (COL_PF + 1) * COL_RB <= r1, st, w);
        else
            col_block(row, C, a, nb, nvec, na, 0, st, w);
        na += (float)nb;
    }
}

/* The tile's per-column statistics (count n each) as partials out, out+1,
 * ...; the tile's vectors may be in even/odd order (common.cl), element t
 * then being column 2t or 2(t - VEC/2) + 1 of its vector. */
inline void put_tile_partials(__global float *part, ulong out, uint nvec, uint n, const floatv *st)
{
    for (uint j = 0; j < nvec; ++j) {
        float mv[VEC], qv[VEC];
        STOREV(K0_(j) + REL_(j), 0, mv);
        STOREV(Q_(j), 0, qv);
        for (uint t = 0; t < VEC; ++t) {
            const uint c = EO_ON ? (t < VEC / 2 ? 2 * t : 2 * (t - VEC / 2) + 1) : t;
            put_partial(part, out + j * VEC + c, n, mv[t], qv[t]);
        }
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void col_partials(__global const xs_t *x, ulong xo, __global float *part,
                  uint R, uint C, uint rchunk)
{
    const uint kr = get_global_id(1), p = get_global_id(2);
    const uint nchunks = get_global_size(1);
    const uint r0 = kr * rchunk, r1 = min(R, r0 + rchunk);
    const ulong out = ((ulong)p * nchunks + kr) * C;
    __global const xs_t *xp = x + xo + (ulong)p * R * C;
#if COLS_VEC
    /* CPUs: a work-item owns a tile of COL_TILE vectors (the host passes
     * 64: 1024 columns) and merges its blocks itself, so the merge kernel
     * sees one partial per work-item. */
    const uint c0 = get_global_id(0) * (COL_TILE * VEC);
    if (c0 >= C)
        return;
    const uint nvec = min((uint)COL_TILE, (C - c0) / VEC);
    floatv st[3 * COL_TILE];
    col_tile_stats(xp + c0, C, r0, r1, nvec, st, 0);
    put_tile_partials(part, out + c0, nvec, r1 - r0, st);
    /* Columns past the last full vector (C not a multiple of VEC). */
    for (uint c = c0 + nvec * VEC; c < min(C, c0 + COL_TILE * VEC); ++c) {
#else
    {
        const uint c = get_global_id(0);
        if (c >= C)
            return;
#endif
        float mu, m2;
#define LOAD_S(r) LDX((ulong)(r) * C + c, xp)
        COLUMN_STATS(float, LOAD_S)
        put_partial(part, out + c, r1 - r0, mu, m2);
    }
}

/*
 * Channels-last InstanceNorm/GroupNorm on CPUs, in waves: x is [N][S][C] and
 * a set (n, group) spans all S rows of sample n, so its statistics are
 * complete only after a pass over the whole sample. Done as partials, merge
 * and apply, the statistics pass only reads and the apply pass mostly
 * writes, and the two never overlap. Launch w (w = 0..N) instead reads
 * sample w for its partials while it writes sample w-1, whose partials the
 * launch before left: each core reads and writes at once, as a copy does,
 * and only the first and last launches do one without the other. Sample
 * w-1's x comes back from the last-level cache.
 *
 * The grid is col_partials' for one sample: tiles of columns (dimension 0)
 * by chunks of rows (dimension 1). Each work-item first merges sample w-1's
 * partials for the groups its tile touches (every work-item merges the
 * same way, so they agree bit for bit) into its own folded table (as
 * fold_table's, 3*TILE floats per work-item), then takes its rows in blocks.
 * Partials alternate between two halves of `part` (w % 2). Requires C a
 * multiple of VEC, and LANES = 1 (each work-item writes all of its rows'
 * vectors); the host sees to both.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void col_wave(__global const xs_t *x, ulong xo, __global xs_t *y, ulong yo,
              __global const ps_t *scale, ulong so, __global const ps_t *bias, ulong bo,
              __global float *mean_out, ulong mo, __global float *rstd_out, ulong ro,
              __global float *stats, __global float *part, __global float *table, uint N, uint S,
              uint C, uint G, uint rchunk, uint aff_ps, float eps, uint w)
{
    const uint TILE = COL_TILE * VEC;
    const uint kr = get_global_id(1), nk = get_global_size(1), gw = C / G;
    const uint c0 = get_global_id(0) * TILE;
    if (c0 >= C)
        return;
    const uint c1 = min(C, c0 + TILE), r0 = kr * rchunk, r1 = min(S, r0 + rchunk);
    col_write_t wr = {0, 0, 0, 0, 0, 0};
    if (w > 0) {
        const uint n = w - 1;
        const uint tiles = (C + TILE - 1) / TILE;
        __global float *tm = table + ((ulong)kr * tiles + get_global_id(0)) * 3 * TILE;
        __global const float *pp = part + (ulong)(n % 2) * nk * C * PART_STRIDE;
        for (uint g = c0 / gw; g * gw < c1; ++g) {
            float mean, var;
            merge_set(pp, g * gw, nk, C, gw, 1, &mean, &var);
            const float r = rstd_of(var, eps);
            const uint set = n * G + g;
            if (kr == 0 && g * gw >= c0) { /* the set's first column is in this tile */
                if (mean_out) mean_out[mo + set] = mean;
                if (rstd_out) rstd_out[ro + set] = r;
                if (stats) {
                    stats[set] = mean;
                    stats[N * G + set] = var;
                }
            }
            for (uint c = max(c0, g * gw); c < min(c1, g * gw + gw); ++c)
                fold_entry(tm, c - c0, TILE, mean, r, scale, so + (aff_ps ? n * C : 0) + c, bias,
                           bo + (aff_ps ? n * C : 0) + c);
        }
        const ulong at = (ulong)n * S * C + c0; /* row 0: the hook adds r * C */
        wr.x = x + xo + at;
        wr.y = y + yo + at;
        wr.m = tm;
        wr.a = tm + TILE;
        wr.b = tm + 2 * TILE;
        wr.n = c1 - c0;
    }
    const uint nvec = w < N ? (c1 - c0) / VEC : 0;
    __global const xs_t *xs = x + xo + (ulong)(w < N ? w : 0) * S * C + c0;
    floatv st[3 * COL_TILE];
    col_tile_stats(xs, C, r0, r1, nvec, st, &wr);
    put_tile_partials(part, ((ulong)(w % 2) * nk + kr) * C + c0, nvec, r1 - r0, st);
    STOREY_END();
}
#undef K0_
#undef REL_
#undef Q_
WIDE_END
