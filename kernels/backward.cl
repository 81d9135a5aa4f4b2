/*
 * Backward passes (SPEC.md, Backward). Per set with count m, saved mean and
 * rstd r, xhat = (x - mean) * r and g = dy * scale:
 *   dx = r * (g - mean(g) - xhat * mean(g * xhat))     (RMS: no mean(g) term, mean 0)
 *   dscale = sum dy * xhat, dbias = sum dy over the elements sharing a parameter.
 * Every sum is taken in a fixed order (blocks of vectors, then partials
 * summed in index order): the same bits every run, no atomics.
 *
 * Contiguous sets (bwd_rows): one pass reads x and dy for the set's sums
 * (and the parameter-gradient partials), a second, from cache, writes dx.
 * Strided sets and BatchNorm: {row|col} sums of dy and dy * xhat per
 * (sample, channel) and chunk, bwd_merge sums the chunks, bwd_table turns
 * them into the parameter gradients and a per-(sample, channel) table
 * (mean, A, B, C), and bwd_apply streams dx = A * dy - B * (x - mean) - C.
 * Sums that mix with x are taken about the saved mean, so a large common
 * offset (mean 1e4, spread 1e-2) does not cancel.
 *
 * Partials hold pairs (sum dy, sum dy * xhat). dx may be exactly dy: every
 * element's dx is written by the work-item that read its dy, after its
 * set's sums.
 */
WIDE_BEGIN

/* Sums over [0, n) of this lane's elements of one stretch with a constant
 * scale: *sdy += sum dy, *sdx += sum dy * (x - m). Vectors first (blocks of
 * 64 with two accumulators; any element order, so the even/odd one where it
 * is on), then the tail, lane l taking l, l + LANES... */
inline void span_sums(__global const xs_t *px, __global const xs_t *pd, uint n, uint lane, float m,
                      float *sdy, float *sdx)
{
    const uint nv = n / VEC;
    floatv a = 0.0f, b = 0.0f;
    for (uint vb = lane; vb < nv; vb += 64 * LANES) {
        floatv a0 = 0.0f, a1 = 0.0f, b0 = 0.0f, b1 = 0.0f;
        const uint ve = min(nv, vb + 64 * LANES);
        uint v = vb;
        for (; v + LANES < ve; v += 2 * LANES) {
            const floatv d0 = LDXV_EO(v, pd), d1 = LDXV_EO(v + LANES, pd);
            a0 += d0, a1 += d1;
            b0 += d0 * (LDXV_EO(v, px) - m), b1 += d1 * (LDXV_EO(v + LANES, px) - m);
        }
        if (v < ve) {
            const floatv d0 = LDXV_EO(v, pd);
            a0 += d0;
            b0 += d0 * (LDXV_EO(v, px) - m);
        }
        a += a0 + a1, b += b0 + b1;
    }
    float ta = 0.0f, tb = 0.0f;
    for (uint e = nv * VEC + lane; e < n; e += LANES) {
        ta += LDX(e, pd);
        tb += LDX(e, pd) * (LDX(e, px) - m);
    }
    *sdy += HSUM(a) + ta;
    *sdx += HSUM(b) + tb;
}

/* dx = a * dy - b * (x - m) - c over one stretch of n elements: x, dy,
 * dx and the per-element scale s at its start (a is then r and multiplies
 * s). x NULL: no x term (an affine backward; an infinite x must not make
 * 0 * Inf); s NULL: none. */
typedef struct {
    __global const xs_t *x, *d;
    __global xs_t *dx;
    __global const ps_t *s;
    uint n;
    float m, a, b, c;
} dxjob_t;
/* No job: dx NULL, which the pipelines test before writing. */
#define DXJOB_NONE {0, 0, 0, 0, 0, 0.0f, 0.0f, 0.0f, 0.0f}

/* One vector of job J; X, SV: literal J.x != NULL, J.s != NULL. Literal
 * flags give loops without per-vector tests of absent streams, which cost
 * as much as 16-bit conversions on CPUs (as in rows.cl). Every stream of a
 * job is elementwise: its vectors may take the even/odd order (common.cl). */
#define DX_STEP_(v, J, X, SV)                                                   \
    {                                                                           \
        floatv g_ = LDXV_EO(v, J.d) * J.a;                                      \
        if (SV) g_ *= LDPV_EO(v, J.s);                                          \
        if (X) g_ -= (LDXV_EO(v, J.x) - J.m) * J.b;                            \
        STOREY_EO(g_ - J.c, v, J.dx);                                           \
    }

/* Elements [e0, j.n) of job j, lane l taking l, l + LANES, ... */
inline void dx_tail(dxjob_t j, uint e0, uint lane)
{
    for (uint e = e0 + lane; e < j.n; e += LANES) {
        const float g = LDX(e, j.d) * j.a * (j.s ? LDP(e, j.s) : 1.0f);
        STX(j.x ? g - (LDX(e, j.x) - j.m) * j.b - j.c : g - j.c, e, j.dx);
    }
}

/* Job j, this lane's elements. */
#define DX_LOOP_(X, SV)                                                         \
    for (uint v = lane; v < nv; v += LANES)                                     \
        DX_STEP_(v, j, X, SV)
inline void span_dx(dxjob_t j, uint lane)
{
    const uint nv = j.n / VEC;
    if (j.x && j.s)
        DX_LOOP_(1, 1)
    else if (j.x)
        DX_LOOP_(1, 0)
    else if (j.s)
        DX_LOOP_(0, 1)
    else
        DX_LOOP_(0, 0)
    dx_tail(j, nv * VEC, lane);
}

/* Elementwise (LayerNorm/RMSNorm) pass 1 over a row: the row's sums of
 * g = dy * scale and g * (x - m), and this item's column partials of dy and
 * dy * xhat at pc0 (sum dy) and pc1 (sum dy * xhat), each optional, written
 * by the item's first row (first) and accumulated after. Blocks of 64
 * vectors with two accumulators per sum, in the same order in every case.
 * With q.dx (CPUs, LANES == 1), the same loop writes dx of the previous row
 * (job q, of the same length, with a scale where this row has one):
 * bwd_rows' pipeline. Without partials (P == 0) the row's loads take the
 * even/odd order (common.cl); partials are columns in memory order. */
/* x's (parameters') vector v in memory order where partials are kept (P),
 * else in the even/odd order */
#define LDXV_P_(v, p, P) (P ? LDXV(v, p) : LDXV_EO(v, p))
#define LDPV_P_(v, p, P) (P ? LDPV(v, p) : LDPV_EO(v, p))
#define SUMS_STEP_(v, a_, b_, SV, P, FIRST, D)                                  \
    {                                                                           \
        PREFETCH_AHEAD(pd + (v) * VEC);                                         \
        PREFETCH_AHEAD(px + (v) * VEC);                                         \
        const floatv d_ = LDXV_P_(v, pd, P);                                    \
        const floatv xc_ = LDXV_P_(v, px, P) - m;                               \
        const floatv g_ = SV ? d_ * LDPV_P_(v, sv, P) : d_;                     \
        a_ += g_;                                                               \
        b_ += g_ * xc_;                                                         \
        if (P == 1 || (P == 2 && pc0))                                          \
            F32_STV(FIRST ? d_ : F32_LDV(v, pc0) + d_, v, pc0);                 \
        if (P == 1 || (P == 2 && pc1)) {                                        \
            const floatv dh_ = d_ * (xc_ * r);                                  \
            F32_STV(FIRST ? dh_ : F32_LDV(v, pc1) + dh_, v, pc1);               \
        }                                                                       \
        if (D)                                                                  \
            DX_STEP_(v, q, 1, SV)                                               \
    }
/* SV: per-element scale; P: 0 no partials, 1 both, 2 tests per vector;
 * FIRST: the item's first row (literal, or `first`); D: job q. */
#define SUMS_LOOP_(SV, P, FIRST, D)                                             \
    for (uint vb = lane; vb < nv; vb += 64 * LANES) {                           \
        floatv a0 = 0.0f, a1 = 0.0f, b0 = 0.0f, b1 = 0.0f;                      \
        const uint ve = min(nv, vb + 64 * LANES);                               \
        uint v = vb;                                                            \
        for (; v + LANES < ve; v += 2 * LANES) {                                \
            SUMS_STEP_(v, a0, b0, SV, P, FIRST, D)                              \
            SUMS_STEP_(v + LANES, a1, b1, SV, P, FIRST, D)                      \
        }                                                                       \
        if (v < ve)                                                             \
            SUMS_STEP_(v, a0, b0, SV, P, FIRST, D)                              \
        a += a0 + a1, b += b0 + b1;                                             \
    }
/* The cases of SUMS_LOOP_ with literal flags: both partials (LayerNorm
 * with its gradients) or none, either scale case; the rest tests. */
#define SUMS_CASES_(FIRST, D)                                                   \
    if (pc0 && pc1 && sv)                                                       \
        SUMS_LOOP_(1, 1, FIRST, D)                                              \
    else if (pc0 && pc1)                                                        \
        SUMS_LOOP_(0, 1, FIRST, D)                                              \
    else if (!pc0 && !pc1 && sv)                                                \
        SUMS_LOOP_(1, 0, 0, D)                                                  \
    else if (!pc0 && !pc1)                                                      \
        SUMS_LOOP_(0, 0, 0, D)                                                  \
    else                                                                        \
        SUMS_LOOP_(sv != 0, 2, FIRST, D)
inline void row_sums_ew(__global const xs_t *px, __global const xs_t *pd, uint n, uint lane, float m,
                        float r, __global const ps_t *sv, __global float *pc0, __global float *pc1,
                        int first, float *sg, float *sgx, dxjob_t q)
{
    const uint nv = n / VEC;
    floatv a = 0.0f, b = 0.0f;
    if (!q.dx)
        SUMS_CASES_(first, 0)
    else if (!first) /* the pipeline's steps after an item's first row */
        SUMS_CASES_(0, 1)
    else
        SUMS_LOOP_(sv != 0, 2, first, 1)
    float ta = 0.0f, tb = 0.0f;
    for (uint e = nv * VEC + lane; e < n; e += LANES) {
        const float d = LDX(e, pd), xc = LDX(e, px) - m, g = sv ? d * LDP(e, sv) : d;
        ta += g;
        tb += g * xc;
        if (pc0)
            pc0[e] = first ? d : pc0[e] + d;
        if (pc1)
            pc1[e] = first ? d * (xc * r) : pc1[e] + d * (xc * r);
    }
    if (q.dx)
        dx_tail(q, nv * VEC, lane);
    *sg += HSUM(a) + ta;
    *sgx += HSUM(b) + tb;
}

/* The dx job of a set whose sums over its len elements are sg (of g) and
 * sgx (of g * (x - m)): dx = r*g - r*mean(g) - (x - m) * r^2 * mean(g * xhat),
 * as SPEC.md, over the n elements at px, pd, pdx, sv. */
inline dxjob_t dx_job(__global const xs_t *px, __global const xs_t *pd, __global xs_t *pdx,
                      __global const ps_t *sv, uint n, uint len, float m, float r, float sg, float sgx)
{
    const float cnt = (float)len, mgx = sgx * r / cnt;
    const dxjob_t j = {px, pd, pdx, sv, n, m, r, r * r * mgx, RMS ? 0.0f : r * (sg / cnt)};
    return j;
}

/* Job j's elements [e, e + n). */
inline dxjob_t dx_sub(dxjob_t j, uint e, uint n)
{
    j.x += e, j.d += e, j.dx += e, j.n = n;
    if (j.s) j.s += e;
    return j;
}

/* CPUs (LANES == 1), elementwise sets with column partials (bwd_rows' pipe
 * > 1, by the host's rule): rows [i0, i1) go in groups of `group` (at most
 * GROUP_MAX), block by block of GROUP_BLK elements, so that a block of the
 * partials is read and written once per group rather than once per row:
 * it stays in L1 across the group's rows. Long rows' partials (2 floats
 * per column) are most of the traffic otherwise (LayerNorm 64x262144
 * float16: 7.4 ms with them, 4.2 without). A group's dx is written during
 * the next group's blocks, as bwd_rows' pipeline does per row. Each row's
 * sums add its blocks' sums in order: the same bits every run. */
#ifndef GROUP_MAX
#define GROUP_MAX 4
#endif
#define GROUP_BLK (64 * VEC)
inline void bwd_rows_grouped(__global const xs_t *x, __global const xs_t *dy, __global xs_t *dx,
                             __global const ps_t *sv, __global const float *mean, __global const float *rstd,
                             __global float *pc0, __global float *pc1, uint i0, uint i1, uint len, uint group)
{
    const dxjob_t none = DXJOB_NONE;
    dxjob_t pend[GROUP_MAX];
    uint npend = 0;
    group = min(group, (uint)GROUP_MAX);
    for (uint g0 = i0; g0 < i1; g0 += group) {
        const uint ng = min(group, i1 - g0), nk = max(ng, npend);
        float m[GROUP_MAX], r[GROUP_MAX], sg[GROUP_MAX], sgx[GROUP_MAX];
        for (uint k = 0; k < ng; ++k) {
            r[k] = rstd[g0 + k];
            m[k] = RMS ? 0.0f : mean[g0 + k];
            sg[k] = 0.0f, sgx[k] = 0.0f;
        }
        for (uint e = 0; e < len; e += GROUP_BLK) {
            const uint nb = min((uint)GROUP_BLK, len - e);
            for (uint k = 0; k < nk; ++k) {
                const dxjob_t q = k < npend ? dx_sub(pend[k], e, nb) : none;
                if (k >= ng) {
                    span_dx(q, 0);
                    continue;
                }
                const ulong base = (ulong)(g0 + k) * len + e;
                row_sums_ew(x + base, dy + base, nb, 0, m[k], r[k], sv ? sv + e : 0, pc0 ? pc0 + e : 0,
                            pc1 ? pc1 + e : 0, g0 == i0 && k == 0, &sg[k], &sgx[k], q);
            }
        }
        for (uint k = 0; k < ng; ++k) {
            const ulong base = (ulong)(g0 + k) * len;
            pend[k] = dx_job(x + base, dy + base, dx + base, sv, len, len, m[k], r[k], sg[k], sgx[k]);
        }
        npend = ng;
    }
    for (uint k = 0; k < npend; ++k)
        span_dx(pend[k], 0);
}

/*
 * Contiguous sets: set i is x[i*len, (i+1)*len), with its saved mean and
 * rstd; affine as rows.cl (elementwise, or per segment of seg elements with
 * parameter (i % aff_mod) * (len/seg) + segment). Item t (LANES lanes) takes
 * sets [t*per_item, (t+1)*per_item); every item of a work-group runs the same
 * number of steps (sets past the end take part in the barriers only).
 * Parameter-gradient partials, each optional: sum dy into p0 and sum
 * dy * xhat into p1 (at offsets p0o, p1o): elementwise, the item's column
 * partials at t * pstride (pstride 0 with a single item: straight into
 * dbias and dscale); channel segments, segment j = i*(len/seg) + k (the
 * (n, c) pair of a channel-first InstanceNorm/GroupNorm) at j.
 *
 * phase 0: whole sets, the sums and dx in one launch. Split sets (too few
 * to fill the device; elementwise only): dimension 1 takes chunks of
 * `chunk` elements; phase 1 leaves each (set, chunk) pair of sums at
 * sums[2 * (i * nchunks + c)] (and the column partials of its chunk), phase
 * 2 adds a set's pairs in order and writes the chunk's dx.
 *
 * pipe (CPUs, LANES == 1: whole elementwise sets that stay cached for one
 * step): row q's dx is left as a job for step q + 1, whose sums loop writes
 * it while it streams row q + 1 in, so that reads and writes are in flight
 * together as in a copy (row_norm's pipeline in rows.cl); the item's last
 * is written after its loop. pipe > 1 (with column partials): the same
 * pipeline over groups of `pipe` rows (bwd_rows_grouped).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bwd_rows(__global const xs_t *x, ulong xo, __global const xs_t *dy, ulong dyo, __global xs_t *dx,
              ulong dxo, __global const ps_t *scale, ulong so, __global const float *mean, ulong mo,
              __global const float *rstd, ulong ro, __global float *p0, ulong p0o, __global float *p1, ulong p1o,
              ulong pstride, __global float *sums, uint nsets, uint per_item, uint len, uint chunk, uint phase,
              uint seg, uint aff_mod, uint elementwise, uint pipe)
{
    __local float buf[WG];
    /* no barrier with LANES == 1: items may stop at their last set */
    const int piped = LANES == 1 && pipe && elementwise && phase == 0;
    dxjob_t pend = DXJOB_NONE;
    const uint t = get_global_id(0) / LANES, lane = get_local_id(0) % LANES;
    const uint ck = get_global_id(1), nchunks = get_global_size(1);
    const uint e0 = ck * chunk, e1 = min(len, e0 + chunk);
    __global const ps_t *sc = scale ? scale + so : 0;
    const uint nseg = elementwise ? 1 : len / seg;
    if (piped && pipe > 1) {
        const ulong at = (ulong)t * pstride;
        bwd_rows_grouped(x + xo, dy + dyo, dx + dxo, sc, mean ? mean + mo : 0, rstd + ro, p0 ? p0 + p0o + at : 0,
                         p1 ? p1 + p1o + at : 0, min(nsets, t * per_item), min(nsets, (t + 1) * per_item), len,
                         pipe);
        STOREY_END();
        return;
    }
    for (uint q = 0; q < per_item; ++q) {
        const uint i = t * per_item + q;
        const int active = i < nsets;
        if (piped && !active)
            break;
        const uint ic = active ? i : nsets - 1, n = active ? e1 - e0 : 0;
        const ulong base = (ulong)ic * len + e0;
        __global const xs_t *px = x + xo + base, *pd = dy + dyo + base;
        __global const ps_t *sv = sc && elementwise ? sc + e0 : 0;
        const float r = rstd[ro + ic];
#if RMS
        const float m = 0.0f;
#else
        const float m = mean[mo + ic];
#endif
        float sg = 0.0f, sgx = 0.0f;
        if (phase == 2) {
            /* uniform: no barrier in this branch */
            for (uint k = 0; k < nchunks; ++k) {
                sg += sums[2 * ((ulong)ic * nchunks + k)];
                sgx += sums[2 * ((ulong)ic * nchunks + k) + 1];
            }
        } else if (elementwise) {
            const ulong at = (ulong)t * pstride + e0;
            float a = 0.0f, b = 0.0f;
            row_sums_ew(px, pd, n, lane, m, r, sv, p0 ? p0 + p0o + at : 0, p1 ? p1 + p1o + at : 0, q == 0, &a,
                        &b, pend);
            sg = seg_sum(a, buf);
            sgx = seg_sum(b, buf);
            if (phase == 1) {
                if (active && lane == 0) {
                    sums[2 * ((ulong)i * nchunks + ck)] = sg;
                    sums[2 * ((ulong)i * nchunks + ck) + 1] = sgx;
                }
                continue;
            }
        } else {
            for (uint k = 0; k < nseg; ++k) {
                float a = 0.0f, b = 0.0f;
                span_sums(px + k * seg, pd + k * seg, n ? seg : 0, lane, m, &a, &b);
                a = seg_sum(a, buf);
                b = seg_sum(b, buf);
                const float s = sc ? LDP((ic % aff_mod) * nseg + k, sc) : 1.0f;
                sg += s * a;
                sgx += s * b;
                if (active && lane == 0) {
                    if (p0) p0[p0o + i * nseg + k] = a;
                    if (p1) p1[p1o + i * nseg + k] = b * r;
                }
            }
        }
        if (dx && active) {
            __global xs_t *pdx = dx + dxo + base;
            const dxjob_t j = dx_job(px, pd, pdx, sv, n, len, m, r, sg, sgx);
            if (piped)
                pend = j;
            else if (elementwise)
                span_dx(j, lane);
            else
                for (uint k = 0; k < nseg; ++k) {
                    dxjob_t js = dx_sub(j, k * seg, seg);
                    js.a = r * (sc ? LDP((ic % aff_mod) * nseg + k, sc) : 1.0f);
                    span_dx(js, lane);
                }
        }
    }
    if (pend.dx)
        span_dx(pend, lane);
    STOREY_END();
}

/*
 * Parameter gradients from bwd_rows' partials, fixed order: dbias[j] sums
 * part[b * J + j] and dscale[j] part[hoff + b * J + j] over b < B
 * (LayerNorm: B items' column partials; channel sets: the N samples' (n, c)
 * partials of a shared affine).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bwd_params(__global const float *part, ulong hoff, __global float *dscale, ulong dso, __global float *dbias,
                ulong dbo, uint J, uint B)
{
    const uint j = get_global_id(0);
    if (j >= J)
        return;
    float a = 0.0f, b = 0.0f;
    for (uint k = 0; k < B; ++k) {
        a += part[(ulong)k * J + j];
        b += part[hoff + (ulong)k * J + j];
    }
    if (dbias) dbias[dbo + j] = a;
    if (dscale) dscale[dso + j] = b;
}

/* The statistics of set s: saved (mean, rstd), or running (mean, var) with
 * rstd = 1 / sqrt(var + eps) when from_var (PyTorch's inference rstd). */
inline float2 set_stats(__global const float *mean, ulong mo, __global const float *rs, ulong ro, uint s,
                        uint from_var, float eps)
{
#if RMS
    const float m = 0.0f;
#else
    const float m = mean[mo + s];
#endif
    const float v = rs[ro + s];
    return (float2)(m, from_var ? 1.0f / sqrt(v + eps) : v);
}

/*
 * Sums of dy and dy * xhat over chunk c (dimension 1) of row j (rows of len
 * contiguous elements, e.g. the (n, c) planes of channels-first x), whose
 * set is (j / rdiv) % rmod; the pair goes to partial j * nchunks + c
 * (interleaved pairs). LANES == 1: a work-item takes per_item rows.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bwd_row_sums(__global const xs_t *x, ulong xo, __global const xs_t *dy, ulong dyo,
                  __global const float *mean, ulong mo, __global const float *rs, ulong ro, __global float *part,
                  uint nrows, uint per_item, uint len, uint chunk, uint rdiv, uint rmod, uint from_var, float eps)
{
    __local float buf[WG];
    const uint c = get_global_id(1), nchunks = get_global_size(1);
    const uint t = get_global_id(0) / LANES, lane = get_local_id(0) % LANES;
    const uint e0 = c * chunk, e1 = min(len, e0 + chunk);
    for (uint q = 0; q < per_item; ++q) {
        const uint j = t * per_item + q;
        const int active = j < nrows;
        const uint jc = active ? j : nrows - 1;
        const float2 st = set_stats(mean, mo, rs, ro, (jc / rdiv) % rmod, from_var, eps);
        const ulong base = (ulong)jc * len + e0;
        float a = 0.0f, b = 0.0f;
        span_sums(x + xo + base, dy + dyo + base, active ? e1 - e0 : 0, lane, st.x, &a, &b);
        a = seg_sum(a, buf);
        b = seg_sum(b, buf);
        if (active && lane == 0) {
            part[2 * ((ulong)j * nchunks + c)] = a;
            part[2 * ((ulong)j * nchunks + c) + 1] = b * st.y;
        }
    }
}

#ifndef COL_TILE
#define COL_TILE 64 /* CPUs: vectors of columns per work-item (as cols.cl) */
#endif

/*
 * Columns of x and dy viewed as [P][R][C] (as col_partials in cols.cl):
 * column col of sample p belongs to set p * stat_p + col / colgrp. Each
 * (p, row chunk kr, column) leaves its pair at partial (p*nchunks + kr)*C +
 * col (interleaved pairs). GPUs: a column per work-item, coalesced; CPUs
 * (COLS_VEC): a tile of COL_TILE vectors per work-item, row by row.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bwd_col_sums(__global const xs_t *x, ulong xo, __global const xs_t *dy, ulong dyo,
                  __global const float *mean, ulong mo, __global const float *rs, ulong ro, __global float *part,
                  uint R, uint C, uint rchunk, uint colgrp, uint stat_p, uint from_var, float eps)
{
    const uint kr = get_global_id(1), p = get_global_id(2), nchunks = get_global_size(1);
    const uint r0 = kr * rchunk, r1 = min(R, r0 + rchunk);
    const ulong out = ((ulong)p * nchunks + kr) * C, at = (ulong)p * R * C;
    __global const xs_t *xp = x + xo + at, *dp = dy + dyo + at;
#if COLS_VEC
    const uint c0 = get_global_id(0) * (COL_TILE * VEC);
    if (c0 >= C)
        return;
    const uint nvec = min((uint)COL_TILE, (C - c0) / VEC);
    floatv mv[COL_TILE], sa[COL_TILE], sb[COL_TILE];
    for (uint v = 0; v < nvec; ++v) {
        float m[VEC];
        for (uint l = 0; l < VEC; ++l)
            m[l] = set_stats(mean, mo, rs, ro, p * stat_p + (c0 + v * VEC + l) / colgrp, from_var, eps).x;
        mv[v] = LOADV(0, m);
        sa[v] = 0.0f, sb[v] = 0.0f;
    }
    for (uint r = r0; r < r1; ++r) {
        __global const xs_t *xr = xp + (ulong)r * C + c0, *dr = dp + (ulong)r * C + c0;
        for (uint v = 0; v < nvec; ++v) {
            const floatv d = LDXV(v, dr);
            sa[v] += d;
            sb[v] += d * (LDXV(v, xr) - mv[v]);
        }
    }
    for (uint v = 0; v < nvec; ++v) {
        float a[VEC], b[VEC];
        STOREV(sa[v], 0, a);
        STOREV(sb[v], 0, b);
        for (uint l = 0; l < VEC; ++l) {
            const uint col = c0 + v * VEC + l;
            const float r = set_stats(mean, mo, rs, ro, p * stat_p + col / colgrp, from_var, eps).y;
            part[2 * (out + col)] = a[l];
            part[2 * (out + col) + 1] = b[l] * r;
        }
    }
    for (uint col = c0 + nvec * VEC; col < min(C, c0 + COL_TILE * VEC); ++col) {
#else
    {
        const uint col = get_global_id(0);
        if (col >= C)
            return;
#endif
        const float2 st = set_stats(mean, mo, rs, ro, p * stat_p + col / colgrp, from_var, eps);
        float a = 0.0f, b = 0.0f;
        for (uint r = r0; r < r1; ++r) {
            const float d = LDX((ulong)r * C + col, dp);
            a += d;
            b += d * (LDX((ulong)r * C + col, xp) - st.x);
        }
        part[2 * (out + col)] = a;
        part[2 * (out + col) + 1] = b * st.y;
    }
}

/*
 * Entry e = eo * n_inner + ei (a (sample, channel) pair, or a channel) sums
 * its partials at eo*o_stride + ei*i_stride + j1*st1 + j2*st2 (j1 < n1,
 * j2 < n2) in that order: stats[so + e] = sum dy, stats[so + nent + e] = sum
 * dy*xhat (so: 0 for the scratch statistics, the record's offset for the
 * BatchNorm split's local sums, clnorm_bn_local_grad_sums). n1 or n2 zero
 * (an empty slice): zeros, part not read.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bwd_merge(__global const float *part, __global float *stats, ulong so, uint nent, uint n_inner,
               ulong o_stride, ulong i_stride, uint n1, ulong st1, uint n2, ulong st2)
{
    const uint e = get_global_id(0);
    if (e >= nent)
        return;
    const ulong base = (ulong)(e / n_inner) * o_stride + (ulong)(e % n_inner) * i_stride;
    float a = 0.0f, b = 0.0f;
    for (uint j1 = 0; j1 < n1; ++j1)
        for (uint j2 = 0; j2 < n2; ++j2) {
            const ulong k = 2 * (base + j1 * st1 + j2 * st2);
            a += part[k];
            b += part[k + 1];
        }
    stats[so + e] = a;
    stats[so + nent + e] = b;
}

/*
 * Per (sample p, channel c) of P x C entries (work-item (c, p)): the set's
 * sums from stats (entries (p', c') of the set: its C/G channels of sample p
 * for InstanceNorm/GroupNorm, stat_p = G; every sample for BatchNorm,
 * stat_p = 0), and the table row dx = A*dy - B*(x - M) - Cc at
 * table[{0,1,2,3} * P*C + p*C + c]. With stats == NULL (running statistics,
 * dx only) the op is affine: B = Cc = 0. Parameter gradients: per entry
 * when aff_p (per-sample affine, or P = 1), else summed over p in order by
 * the p == 0 items. stats start at sto (the BatchNorm split: the global
 * sums of every process, clnorm_bn_apply_grad; count is then the global
 * count).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bwd_table(__global const float *stats, ulong sto, __global const ps_t *scale, ulong so, __global const float *mean,
               ulong mo, __global const float *rs, ulong ro, __global float *table, __global float *dscale,
               ulong dso, __global float *dbias, ulong dbo, uint P, uint C, uint G, uint stat_p, uint aff_p,
               uint affine_only, uint from_var, float count, float eps)
{
    const uint c = get_global_id(0), p = get_global_id(1);
    if (c >= C)
        return;
    const uint grp = C / G, g = c / grp, nent = P * C;
    const uint s = p * stat_p + g;
    const float2 st = set_stats(mean, mo, rs, ro, s, from_var, eps);
    const ulong sp = aff_p ? (ulong)p * C : 0; /* the entry's parameters */
    const float sc = scale ? LDP(so + sp + c, scale) : 1.0f;
    float bb = 0.0f, cc = 0.0f;
    if (!affine_only) {
        /* The set's sums of g and g * xhat: its channels, and every sample
         * when the set spans them (BatchNorm with per-sample parameters). */
        const uint q0 = stat_p ? p : 0, q1 = stat_p ? p + 1 : P;
        float sg = 0.0f, sgx = 0.0f;
        for (uint q = q0; q < q1; ++q)
            for (uint k = g * grp; k < g * grp + grp; ++k) {
                const float w = scale ? LDP(so + (aff_p ? (ulong)q * C : 0) + k, scale) : 1.0f;
                sg += w * stats[sto + q * C + k];
                sgx += w * stats[sto + nent + q * C + k];
            }
        bb = st.y * sgx / count;
        cc = RMS ? 0.0f : st.y * sg / count;
    }
    table[p * C + c] = st.x;
    table[nent + p * C + c] = st.y * sc;
    table[2 * nent + p * C + c] = st.y * bb;
    table[3 * nent + p * C + c] = cc;
    if (!stats || (!aff_p && p > 0))
        return;
    float a = 0.0f, b = 0.0f;
    for (uint q = aff_p ? p : 0; q < (aff_p ? p + 1 : P); ++q) {
        a += stats[sto + q * C + c];
        b += stats[sto + nent + q * C + c];
    }
    if (dbias) dbias[dbo + sp + c] = a;
    if (dscale) dscale[dso + sp + c] = b;
}

/*
 * dx = A*dy - B*(x - M) - Cc from the table (bwd_table), streamed over rows
 * of R elements as apply_table in apply.cl: row i = (p, q) of [P][Q]; the
 * channel is q (ch_is_r = 0) or the position in the row (ch_is_r = 1); the
 * table row is p when tp. use_x = 0: B is 0 everywhere, x is not read.
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void bwd_apply(__global const xs_t *x, ulong xo, __global const xs_t *dy, ulong dyo, __global xs_t *dx,
               ulong dxo, __global const float *table, uint nrows, uint per_item, uint Q, uint R, uint chunk,
               uint C, uint tp, uint ch_is_r, uint tn, uint use_x)
{
    const uint i0 = get_global_id(0) / LANES * per_item, lane = get_local_id(0) % LANES;
    const uint i1 = min(nrows, i0 + per_item);
    const uint c = get_global_id(1);
    const uint e0 = c * chunk, e1 = min(R, e0 + chunk);
    for (uint i = i0; i < i1; ++i) {
        const uint p = i / Q, q = i % Q;
        const ulong base = (ulong)i * R;
        const uint t = p * tp * C;
        __global const xs_t *px = x + xo + base, *pd = dy + dyo + base;
        __global xs_t *po = dx + dxo + base;
        if (!ch_is_r) {
            const float m = table[t + q], a = table[tn + t + q], b = table[2 * tn + t + q];
            const float cc = table[3 * tn + t + q];
            const dxjob_t j = {use_x ? px + e0 : 0, pd + e0, po + e0, 0, e1 - e0, m, a, b, cc};
            span_dx(j, lane);
            continue;
        }
        __global const float *tm = table + t, *ta = table + tn + t, *tb = table + 2 * tn + t;
        __global const float *tc = table + 3 * tn + t;
        const uint nv = (e1 - e0) / VEC;
        for (uint v = lane; v < nv; v += LANES) {
            const uint e = e0 + v * VEC;
            floatv u = LDXV(0, pd + e) * LOADV(0, ta + e) - LOADV(0, tc + e);
            if (use_x)
                u -= (LDXV(0, px + e) - LOADV(0, tm + e)) * LOADV(0, tb + e);
            STOREY(u, v, po + e0);
        }
        for (uint e = e0 + nv * VEC + lane; e < e1; e += LANES) {
            float u = LDX(e, pd) * ta[e] - tc[e];
            if (use_x)
                u -= (LDX(e, px) - tm[e]) * tb[e];
            STX(u, e, po);
        }
    }
    STOREY_END();
}
WIDE_END
