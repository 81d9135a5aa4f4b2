/*
 * Streaming normalization with a folded table (see fold_table): x viewed as
 * [P][Q][R], R contiguous; the channel is q (channels-first) or r
 * (channels-last); the table row is p when the table is per sample (tp = 1)
 * and 0 otherwise. y = (x - m) * a + b. In place (y == x) is safe.
 */
/* The local size is chosen per shape by the host (see select.c). */
__kernel void apply_table(__global const float *x, ulong xo, __global float *y, ulong yo,
                 __global const float *table, uint Q, uint R, uint C, uint tp, uint ch_is_r,
                 uint tn)
{
    const uint r = get_global_id(0), q = get_global_id(1), p = get_global_id(2);
    if (r >= R || q >= Q)
        return;
    const uint t = p * tp * C + (ch_is_r ? r : q);
    const ulong e = ((ulong)p * Q + q) * R + r;
    y[yo + e] = (x[xo + e] - table[t]) * table[tn + t] + table[2 * tn + t];
}
