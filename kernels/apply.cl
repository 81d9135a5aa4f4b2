/*
 * Streaming normalization with a folded table (see fold_table in merge.cl).
 * x is rows of R contiguous elements, row i = (p, q) of [P][Q]; chunks of
 * `chunk` elements split long rows (dimension 1). The channel is q
 * (channels-first: one table entry per row) or the position in the row
 * (channels-last: table rows run along x). The table row is p when the
 * table is per sample (tp = 1), else 0. y = (x - m) * a + b; y == x is safe.
 */
WIDE_BEGIN
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void apply_table(__global const xs_t *x, ulong xo, __global xs_t *y, ulong yo,
                 __global const float *table, uint nrows, uint per_item, uint Q, uint R, uint chunk,
                 uint C, uint tp, uint ch_is_r, uint tn)
{
    /* Rows [i0, i1): per_item consecutive rows per work-item (CPUs), else 1. */
    const uint i0 = get_global_id(0) / LANES * per_item, lane = get_local_id(0) % LANES;
    const uint i1 = min(nrows, i0 + per_item);
    const uint c = get_global_id(1);
    const uint e0 = c * chunk, e1 = min(R, e0 + chunk);
    for (uint i = i0; i < i1; ++i) {
        const uint p = i / Q, q = i % Q;
        const ulong base = (ulong)i * R;
        const uint t = p * tp * C;
        if (ch_is_r)
            norm_span(x + xo + base, y + yo + base, e0, e1, lane, 0.0f, 1.0f, 0.0f, table + t,
                      table + tn + t, table + 2 * tn + t);
        else
            norm_span(x + xo + base, y + yo + base, e0, e1, lane, table[t + q], table[tn + t + q],
                      table[2 * tn + t + q], 0, 0, 0);
    }
    STOREY_END();
}
WIDE_END
