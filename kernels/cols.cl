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
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void col_partials(__global const float *x, ulong xo, __global float *part,
                  uint R, uint C, uint rchunk)
{
    const uint c = get_global_id(0), kr = get_global_id(1), p = get_global_id(2);
    if (c >= C)
        return;
    const uint nchunks = get_global_size(1);
    const uint r0 = kr * rchunk, r1 = min(R, r0 + rchunk);
    __global const float *col = x + xo + (ulong)p * R * C + c;
    /* Two passes over the chunk (it stays in cache), shifted by its first value. */
    const float k = col[(ulong)r0 * C];
    float s = 0.0f;
    for (uint r = r0; r < r1; ++r)
        s += col[(ulong)r * C] - k;
    const float mu = k + s / (float)(r1 - r0);
    float q = 0.0f;
    for (uint r = r0; r < r1; ++r) {
        const float d = col[(ulong)r * C] - mu;
        q += d * d;
    }
    put_partial(part, ((ulong)p * nchunks + kr) * C + c, r1 - r0, mu, q);
}
