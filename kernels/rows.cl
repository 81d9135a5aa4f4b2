/*
 * Contiguous reduction sets: LayerNorm and RMSNorm rows, channels-first
 * InstanceNorm (one (n,c) plane) and GroupNorm (C/G planes), and the rows
 * that channels-first BatchNorm statistics are built from.
 *
 * Set i is x[i*len, (i+1)*len). LANES work-items share a set; dimension 1 of
 * the range splits a set into chunks of `chunk` elements when one set is too
 * long or there are too few sets to fill the device.
 *
 * Affine: elementwise (LayerNorm: scale[e]) or per segment of `seg` elements
 * (channel norms: the set is len/seg channel planes of seg = S elements; the
 * parameter index is (i % aff_mod) * (len/seg) + plane, which is the channel
 * for aff_mod = groups and n*C + c for aff_mod = number of sets, i.e.
 * per-sample affine).
 */
WIDE_BEGIN

typedef struct {
    __global const ps_t *scale, *bias;
    uint seg, aff_mod, elementwise;
} affine_t;

/* y[e] for e in [e0, e1) of set i, given its mean and rstd. */
inline void apply_range(__global const xs_t *x, __global xs_t *y, uint e0, uint e1,
                        uint lane, uint i, uint len, float mean, float rstd, affine_t af)
{
    if (af.elementwise) {
        norm_span_p(x, y, e0, e1, lane, mean, rstd, 0.0f, 0, af.scale, af.bias);
        return;
    }
    const uint nseg = len / af.seg;
    for (uint k = e0 / af.seg; k * af.seg < e1; ++k) {
        const uint j0 = max(k * af.seg, e0), j1 = min(k * af.seg + af.seg, e1);
        const uint p = (i % af.aff_mod) * nseg + k;
        const float a = af.scale ? rstd * LDP(p, af.scale) : rstd;
        const float b = af.bias ? LDP(p, af.bias) : 0.0f;
        norm_span_p(x, y, j0, j1, lane, mean, a, b, 0, 0, 0);
    }
}

/* Vector v (element e) of a set at p, or with a residual r (NULL: none) of
 * the fused add h = p + r, rounded to x's type as a stored h would be;
 * ADDV_ the add alone, loading by LD (LDXV, or LDXV_EO in the even/odd
 * order of the CPU pipeline: common.cl). */
#define ADDV_(LD, v, p, r) RNDXV(LD(v, p) + LD(v, r))
#define LDH_(v, p, r) ((r) ? ADDV_(LDXV, v, p, r) : LDXV(v, p))
#define LDH_EO_(v, p, r) ((r) ? ADDV_(LDXV_EO, v, p, r) : LDXV_EO(v, p))
#define LDH1_(e, p, r) ((r) ? RNDX(LDX(e, p) + LDX(e, r)) : LDX(e, p))

/* Fused residual add: h = x + r over [e0, e1) of a set, lane l taking the
 * vectors norm_span gives it. The caller fences before other lanes read h. */
inline void add_span(__global const xs_t *x, __global const xs_t *r, __global xs_t *h, uint e0, uint e1,
                     uint lane)
{
    const uint n = e1 - e0, nv = n / VEC;
    x += e0, r += e0, h += e0;
    for (uint v = lane; v < nv; v += LANES)
        STXV(LDXV(v, x) + LDXV(v, r), v, h);
    for (uint e = nv * VEC + lane; e < n; e += LANES)
        STX(LDX(e, x) + LDX(e, r), e, h);
}

#if CACHE_V > 0
/* GPUs: a row of up to LANES * VEC * CACHE_V elements is held in registers,
 * so it is read from global memory once for the statistics and the output.
 * Affine: elementwise (LayerNorm/RMSNorm), or per channel plane of set i
 * when a plane is whole vectors (af.seg % VEC == 0: channels-first
 * InstanceNorm/GroupNorm), so that no vector straddles two channels. n = 0
 * for padding items. */
inline void row_norm_cached(__global const xs_t *px, __global xs_t *py, uint n, uint lane,
                            __local float *buf, affine_t af, uint i, float eps, float *mean_o, float *rstd_o,
                            float *var_o, __global const xs_t *pr, __global xs_t *ph)
{
    __global const ps_t *sc = af.elementwise ? af.scale : 0, *bi = af.elementwise ? af.bias : 0;
    const uint nv = n / VEC, tail = n - nv * VEC;
    floatv r[CACHE_V];
    for (uint j = 0; j < CACHE_V; ++j) {
        const uint v = lane + j * LANES;
        /* fused residual add (pr): h stays in registers, rounded as stored */
        r[j] = v < nv ? LDH_(v, px, pr) : (floatv)0.0f;
        if (ph && v < nv) STXV(r[j], v, ph);
    }
    const float tl = lane < tail ? LDH1_(nv * VEC + lane, px, pr) : 0.0f;
    if (ph && lane < tail) STX(tl, nv * VEC + lane, ph);
    floatv a = 0.0f;
#if RMS
    for (uint j = 0; j < CACHE_V; ++j)
        a += STAT(r[j], 0.0f); /* padding is 0 */
    const float var = seg_sum(HSUM(a) + STAT(tl, 0.0f), buf) / (float)n;
    const float mean = 0.0f;
#else
    const float k = n ? LDH1_(0, px, pr) : 0.0f;
    for (uint j = 0; j < CACHE_V; ++j)
        if (lane + j * LANES < nv) a += r[j] - k;
    const float mu = k + seg_sum(HSUM(a) + (lane < tail ? tl - k : 0.0f), buf) / (float)n;
    a = 0.0f;
    for (uint j = 0; j < CACHE_V; ++j)
        if (lane + j * LANES < nv) a += (r[j] - mu) * (r[j] - mu);
    const float var = seg_sum(HSUM(a) + (lane < tail ? (tl - mu) * (tl - mu) : 0.0f), buf) / (float)n;
    const float mean = checked_mean(mu, var);
#endif
    const float rstd = rstd_of(var, eps);
    /* In place (y == x), lane 0 now overwrites px[0], which every lane read
     * as the shift k: seg_sum's local-memory barriers do not order global
     * accesses (Oclgrind reports a race), a global fence does. */
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (uint j = 0; j < CACHE_V; ++j) {
        const uint v = lane + j * LANES;
        if (v < nv) {
            floatv u;
            if (af.elementwise) {
                u = (r[j] - mean) * rstd;
                if (sc) u *= LDPV(v, sc);
                if (bi) u += LDPV(v, bi);
            } else { /* as apply_range: (x - mean) * (rstd * scale) + bias */
                const uint p = (i % af.aff_mod) * (n / af.seg) + v * VEC / af.seg;
                u = (r[j] - mean) * (af.scale ? rstd * LDP(p, af.scale) : rstd);
                u += af.bias ? LDP(p, af.bias) : 0.0f;
            }
            STXV(u, v, py);
        }
    }
    if (lane < tail) {
        const uint e = nv * VEC + lane;
        float u = (tl - mean) * rstd;
        if (sc) u *= LDP(e, sc);
        STX(bi ? u + LDP(e, bi) : u, e, py);
    }
    *mean_o = mean, *rstd_o = rstd, *var_o = var;
}
#endif

#if LANES == 1
/* CPUs: a work-item owns sets [i0, i1) and runs them as a pipeline, one
 * loop per set, so that reads and writes are in flight together, as in a
 * copy, instead of a read-only phase and a write-only phase per set.
 *
 * lag 2 (sets that fit the cache three at a time): the shifted sum of set t
 * streams it from memory while set t-1, still cached, gets its variance
 * pass against its true mean, and set t-2 is written.
 *
 * lag 1 (larger sets, which would come back from DRAM two sets later): set
 * t is taken in pieces of PIECE elements; each piece's sum streams it while
 * the same piece of set t-1 is written, then its variance pass re-reads it
 * from L1, and the pieces' statistics are merged with chan_add. */
#ifndef PIECE
#define PIECE 4096
#endif

/* One stretch [j0, j1) of the three sets, each optional (NULL): *s += the
 * sum of STAT over xs (shift k), *q += the squared deviations of xm from mm,
 * and y = (xa - m) * a * sv + b (bv) over xa, per-element sv, bv when given.
 * Fused residual add: with rs (rm, ra) the xs (xm, xa) stream is h = x + r,
 * rounded as stored, x and r re-read from cache by each pass; h is stored
 * to ha by the xa pass, each set's last, so that h_out may be exactly x or
 * r, and both h and y may take streaming stores; or else (hs) by the xs
 * pass, for later passes to read h itself. Blocks of 64 vectors
 * with two accumulators per sum; the order of each sum does not depend on
 * which other streams are present. Every stream is elementwise, so vectors
 * take the even/odd order where it is on (common.cl: bfloat16 on AVX2). */
#define STAGES_(v, sacc, qacc, S, M, A, F, SV, BV)                              \
    {                                                                           \
        if (S) {                                                                \
            PREFETCH_AHEAD(ps + (v) * VEC);                                     \
            const floatv u_ = LDF_(v, ps, pr, F);                               \
            if (F == 2 && hs) STXV_EO(u_, v, ph);                               \
            sacc += STAT(u_, k);                                                \
        }                                                                       \
        if (M) {                                                                \
            const floatv d_ = LDF_(v, pm, prm, F) - mm;                         \
            qacc += d_ * d_;                                                    \
        }                                                                       \
        if (A) {                                                                \
            const floatv h_ = LDF_(v, pa, pra, F);                              \
            floatv w_ = (h_ - m) * a;                                           \
            if (SV) w_ *= LDPV_EO(v, sv);                                       \
            if (F && ha) STOREY_EO(h_, v, pha);                                 \
            STOREY_EO(BV ? w_ + LDPV_EO(v, bv) : w_ + b, v, py);                \
        }                                                                       \
    }
/* F: 0 no fused add; 1 every present stream has its residual, and h is
 * stored, if at all, by the xa pass; 2 anything (tests per vector). */
#define LDF_(v, p, r, F) (F == 0 ? LDXV_EO(v, p) : F == 1 ? ADDV_(LDXV_EO, v, p, r) : LDH_EO_(v, p, r))
/* The vectors of the stretch into sa, qa. S, M, A: which streams are
 * present; F as above; SV, BV: per-element scale and bias. Literal flags
 * give a loop without the tests (below). */
#define SPAN_LOOP_(S, M, A, F, SV, BV)                                          \
    for (uint vb = 0; vb < nv; vb += 64) {                                      \
        floatv s0 = 0.0f, s1 = 0.0f, q0 = 0.0f, q1 = 0.0f;                      \
        const uint ve = min(nv, vb + 64);                                       \
        uint v = vb;                                                            \
        for (; v + 1 < ve; v += 2) {                                            \
            STAGES_(v, s0, q0, S, M, A, F, SV, BV)                              \
            STAGES_(v + 1, s1, q1, S, M, A, F, SV, BV)                          \
        }                                                                       \
        if (v < ve)                                                             \
            STAGES_(v, s0, q0, S, M, A, F, SV, BV)                              \
        sa += s0 + s1;                                                          \
        qa += q0 + q1;                                                          \
    }
/* Per-element scale and bias, scale alone, or neither (LayerNorm, RMSNorm,
 * the channel norms); a bias alone takes the general loop. */
#define SPAN_AFFINE_(S, M, A, F)                                                \
    if (sv && bv)                                                               \
        SPAN_LOOP_(S, M, A, F, 1, 1)                                            \
    else if (sv)                                                                \
        SPAN_LOOP_(S, M, A, F, 1, 0)                                            \
    else if (!bv)                                                               \
        SPAN_LOOP_(S, M, A, F, 0, 0)                                            \
    else                                                                        \
        SPAN_LOOP_(S, M, A, 2, 0, 1)
inline void pipe_span(__global const xs_t *xs, float k, __global const xs_t *xm, float mm,
                      __global const xs_t *xa, __global xs_t *ya, uint j0, uint j1, float m, float a,
                      float b, __global const ps_t *sv, __global const ps_t *bv, float *s, float *q,
                      __global const xs_t *rs, __global xs_t *hs, __global const xs_t *rm,
                      __global const xs_t *ra, __global xs_t *ha)
{
    __global const xs_t *ps = xs + j0, *pm = xm + j0, *pa = xa + j0;
    /* residuals: NULL where absent (LDH_ reads x alone) */
    __global const xs_t *pr = rs ? rs + j0 : 0, *prm = rm ? rm + j0 : 0, *pra = ra ? ra + j0 : 0;
    __global xs_t *ph = hs + j0, *pha = ha + j0;
    __global xs_t *py = ya + j0;
    if (sv) sv += j0;
    if (bv) bv += j0;
    const uint n = j1 - j0, nv = n / VEC;
    floatv sa = 0.0f, qa = 0.0f;
    /* The pipeline's steady steps, as loops of their own: per-vector tests
     * of absent streams cost as much as the conversions of 16-bit storage.
     * The fused add's are those where every stream carries its residual
     * and h is stored by the last pass or not at all (lag 2, or lag 1
     * without h_out). Each takes SPAN_AFFINE_'s affine cases; everything
     * else takes the general loop. */
    const int plain = !rs && !rm && !ra && !hs && !ha;
    const int fused = !hs && xs && rs && xa && ra && (!xm || rm);
    if (plain && xs && xm && xa)
        SPAN_AFFINE_(1, 1, 1, 0)
    else if (plain && xs && !xm && xa)
        SPAN_AFFINE_(1, 0, 1, 0)
    else if (plain && !xs && xm && !xa)
        SPAN_LOOP_(0, 1, 0, 0, 0, 0)
    else if (fused && xm)
        SPAN_AFFINE_(1, 1, 1, 1)
    else if (fused)
        SPAN_AFFINE_(1, 0, 1, 1)
    else
        SPAN_LOOP_(xs != 0, xm != 0, xa != 0, 2, sv != 0, bv != 0)
    float st = 0.0f, qt = 0.0f;
    for (uint e = nv * VEC; e < n; ++e) {
        if (xs) {
            const float u = LDH1_(e, ps, pr);
            if (hs) STX(u, e, ph);
            st += STAT(u, k);
        }
        if (xm) {
            const float d = LDH1_(e, pm, prm) - mm;
            qt += d * d;
        }
        if (xa) {
            const float h = LDH1_(e, pa, pra);
            const float w = (h - m) * a * (sv ? LDP(e, sv) : 1.0f);
            if (ha) STX(h, e, pha);
            STX(bv ? w + LDP(e, bv) : w + b, e, py);
        }
    }
    *s += HSUM(sa) + st;
    *q += HSUM(qa) + qt;
}

/* One loop over a set's length, segment by segment for channel affine (set
 * ia's parameters). lag 2: *r1 = the shifted sum of xs (shift xs[0]), *r2 =
 * the squared deviations of xm from mm. lag 1 (xm unused): *r1 = the mean
 * of xs (RMS: of its squares), *r2 = its M2, merged over pieces. */
inline void pipe_pass(uint lag, __global const xs_t *xs, __global const xs_t *xm, float mm,
                      __global const xs_t *xa, __global xs_t *ya, uint ia, uint len, float mean,
                      float rstd, affine_t af, float *r1, float *r2, __global const xs_t *rs,
                      __global xs_t *hs, __global const xs_t *rm, __global const xs_t *ra,
                      __global xs_t *ha)
{
    /* rs, hs, rm, ra, ha: the fused residual add, as pipe_span's; lag 1's
     * variance pass re-reads xs + rs, or hs where the xs pass stored h. */
    if (!xs) rs = 0, hs = 0;
    __global const xs_t *xv = hs ? hs : xs, *rv = hs ? 0 : rs;
    const uint seg = af.elementwise ? len : af.seg, nseg = len / seg;
    const uint piece = lag == 1 ? PIECE : len;
    __global const ps_t *sv = af.elementwise ? af.scale : 0, *bv = af.elementwise ? af.bias : 0;
    float s = 0.0f, q = 0.0f, K = 0.0f;
    chan_t st = {0, 0.0f, 0.0f};
    for (uint g = 0; g < nseg; ++g) {
        float a = rstd, b = 0.0f;
        if (xa && !af.elementwise) {
            const uint p = (ia % af.aff_mod) * nseg + g;
            if (af.scale) a *= LDP(p, af.scale);
            if (af.bias) b = LDP(p, af.bias);
        }
        for (uint j0 = g * seg; j0 < (g + 1) * seg; j0 += piece) {
            const uint j1 = min(j0 + piece, (g + 1) * seg);
            if (lag == 2) {
                const float k0 = xs ? LDH1_(0, xs, rs) : 0.0f;
                pipe_span(xs, k0, xm, mm, xa, ya, j0, j1, mean, a, b, sv, bv, &s, &q, rs, hs, rm, ra, ha);
                continue;
            }
            const float k = xs ? LDH1_(j0, xs, rs) : 0.0f;
            float ps = 0.0f, pq = 0.0f;
            pipe_span(xs, k, 0, 0.0f, xa, ya, j0, j1, mean, a, b, sv, bv, &ps, &pq, rs, hs, 0, ra, ha);
            if (!xs)
                continue;
#if RMS
            s += ps;
#else
            const float n = (float)(j1 - j0), mu = k + ps / n;
            pipe_span(0, 0.0f, xv, mu, 0, 0, j0, j1, 0.0f, 0.0f, 0.0f, 0, 0, &ps, &pq, 0, 0, rv, 0, 0);
            if (!st.n)
                K = mu;
            chan_add(&st, j1 - j0, mu - K, pq);
#endif
        }
    }
    if (lag == 2) {
        *r1 = s, *r2 = q;
    } else {
        *r1 = RMS ? s / (float)len : K + st.rel;
        *r2 = st.m2;
    }
}
#endif

/* Statistics and normalization of whole sets in one launch. Saved statistics
 * (mean, rstd) are optional, and so is `stats` (mean at [i], biased variance
 * at [nsets + i]), which running-statistics updates read. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void row_norm(__global const xs_t *x, ulong xo, __global xs_t *y, ulong yo,
              __global const ps_t *scale, ulong so, __global const ps_t *bias, ulong bo,
              __global float *mean_out, ulong mo, __global float *rstd_out, ulong ro,
              __global float *stats, uint nsets, uint per_item, uint lag,
              uint len, uint seg, uint aff_mod, uint elementwise, float eps,
              __global const xs_t *res, ulong rso, __global xs_t *hout, ulong hoo)
{
    const affine_t af = { scale ? scale + so : 0, bias ? bias + bo : 0, seg, aff_mod, elementwise };
    /* Fused residual add (res given): the set is h = x + res. The host
     * passes hout = y when h is not asked for. Work-group kernels write h
     * to hout in their first pass and the later passes read it back; the
     * CPU pipeline re-adds the cached x and res in every pass and stores h
     * (to a real h_out only) in the last, beside y: each output is written
     * once, with streaming stores where y takes them. At lag 1 with h_out
     * (sets too large to stay cached: re-adding would re-read two of them
     * from beyond the core's cache) the first pass stores h and the later
     * passes read it, as the work-group kernels do. */
    __global const xs_t *rb = res ? res + rso : 0;
    __global xs_t *hb = res ? hout + hoo : 0;
#if LANES == 1
    /* Sets [i0, i1), pipelined (above): step t reads set t and writes set
     * t - lag; after it, set t + 1 - lag has its statistics. */
    const uint i0 = get_global_id(0) * per_item;
    if (i0 >= nsets)
        return;
    const uint i1 = min(nsets, i0 + per_item);
    __global xs_t *hk = rb && hb != y + yo ? hb : 0; /* h_out, if given */
    const int h_first = hk && lag == 1;
    __global const xs_t *xb = x + xo, *vb = h_first ? hk : xb; /* vb (+ vr): what re-reads see */
    __global const xs_t *vr = h_first ? 0 : rb;
    float mu1 = 0.0f;                  /* lag 2: shifted mean (RMS: mean of squares) of set t-1 */
    float mean_a = 0.0f, rstd_a = 0.0f; /* statistics of the set written next */
    for (uint t = i0; t < i1 + lag; ++t) {
        const int has_s = t < i1, has_m = !RMS && lag == 2 && t > i0 && t - 1 < i1;
        const int has_a = t >= i0 + lag;
        __global const xs_t *xs = has_s ? xb + (ulong)t * len : 0;
        __global const xs_t *xm = has_m ? vb + (ulong)(t - 1) * len : 0;
        __global const xs_t *xa = has_a ? vb + (ulong)(t - lag) * len : 0;
        float r1, r2;
        pipe_pass(lag, xs, xm, mu1, xa, has_a ? y + yo + (ulong)(t - lag) * len : 0, t - lag, len,
                  mean_a, rstd_a, af, &r1, &r2, rb ? rb + (ulong)t * len : 0,
                  h_first && has_s ? hk + (ulong)t * len : 0, vr && has_m ? vr + (ulong)(t - 1) * len : 0,
                  vr && has_a ? vr + (ulong)(t - lag) * len : 0,
                  hk && !h_first && has_a ? hk + (ulong)(t - lag) * len : 0);
        if (t + 1 >= i0 + lag && t + 1 - lag < i1) { /* set f is complete */
            const uint f = t + 1 - lag;
            const float mu = lag == 1 ? r1 : mu1;
            const float var = RMS ? mu : r2 / (float)len;
            const float mean = RMS ? 0.0f : checked_mean(mu, var), rstd = rstd_of(var, eps);
            if (mean_out) mean_out[mo + f] = mean;
            if (rstd_out) rstd_out[ro + f] = rstd;
            if (stats) { stats[f] = mean; stats[nsets + f] = var; }
            mean_a = mean, rstd_a = rstd;
        }
        if (lag == 2 && has_s)
            mu1 = RMS ? r1 / (float)len : LDH1_((ulong)t * len, vb, vr) + r1 / (float)len;
    }
#else
    __local float buf[WG];
    const uint i = get_global_id(0) / LANES, lane = get_local_id(0) % LANES;
    /* Padding work-items past the last set take part in the barriers only;
     * no early return after a barrier (PoCL mishandles it in branches). */
    const int active = i < nsets;
    const ulong base = (ulong)min(i, nsets - 1) * len;
    float mean, var, rstd;
#if CACHE_V > 0
    if ((elementwise || seg % VEC == 0) && len <= LANES * VEC * CACHE_V) { /* uniform over the launch */
        /* h is written only where it was asked for: y gets the norm anyway. */
        row_norm_cached(x + xo + base, y + yo + base, active ? len : 0, lane, buf, af, i, eps, &mean, &rstd,
                        &var, rb ? rb + base : 0, rb && hb != y + yo ? hb + base : 0);
    } else
#endif
    {
        float m2;
        __global const xs_t *xs = x + xo + base;
        if (rb) { /* h first, visible to the set's other lanes after the fence */
            add_span(xs, rb + base, hb + base, 0, active ? len : 0, lane);
            barrier(CLK_GLOBAL_MEM_FENCE);
            xs = hb + base;
        }
        range_stats(xs, 0, active ? len : 0, lane, buf, &mean, &m2);
        var = RMS ? mean : m2 / (float)len;
        rstd = rstd_of(var, eps);
        mean = RMS ? 0.0f : checked_mean(mean, var);
        /* In place, lane 0 overwrites the set's first element, every lane's
         * shift in range_stats: order those global reads first (as in
         * row_norm_cached). */
        barrier(CLK_GLOBAL_MEM_FENCE);
        if (active)
            apply_range(xs, y + yo + base, 0, len, lane, i, len, mean, rstd, af);
    }
    if (active && lane == 0) {
        if (mean_out) mean_out[mo + i] = mean;
        if (rstd_out) rstd_out[ro + i] = rstd;
        if (stats) { stats[i] = mean; stats[nsets + i] = var; }
    }
#endif
    STOREY_END();
}

/* Partial statistics of chunk c of set i, stored at partial index
 * i*nchunks + c. With LANES == 1 a work-item takes per_item consecutive
 * sets (else per_item is 1). */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void row_partials(__global const xs_t *x, ulong xo, __global float *part,
                  uint nsets, uint per_item, uint len, uint chunk,
                  __global const xs_t *res, ulong rso, __global xs_t *hout, ulong hoo)
{
    /* Fused residual add: the chunk's h = x + res goes to hout (h_out or y),
     * where row_apply reads it; the statistics are h's. */
    __local float buf[WG];
    const uint c = get_global_id(1), nchunks = get_global_size(1);
    const uint e0 = c * chunk;
    float mean, m2;
#if LANES == 1
    const uint i0 = get_global_id(0) * per_item, i1 = min(nsets, i0 + per_item);
    const uint e1 = min(len, e0 + chunk);
    for (uint i = i0; i < i1; ++i) {
        __global const xs_t *xs = x + xo + (ulong)i * len;
        if (res) {
            add_span(xs, res + rso + (ulong)i * len, hout + hoo + (ulong)i * len, e0, e1, 0);
            xs = hout + hoo + (ulong)i * len;
        }
        range_stats(xs, e0, e1, 0, buf, &mean, &m2);
        put_partial(part, (ulong)i * nchunks + c, e1 - e0, mean, m2);
    }
#else
    const uint i = get_global_id(0) / LANES, lane = get_local_id(0) % LANES;
    const uint ic = min(i, nsets - 1);
    const uint e1 = i < nsets ? min(len, e0 + chunk) : e0;
    __global const xs_t *xs = x + xo + (ulong)ic * len;
    if (res) { /* uniform: every lane reaches the fence */
        add_span(xs, res + rso + (ulong)ic * len, hout + hoo + (ulong)ic * len, e0, e1, lane);
        barrier(CLK_GLOBAL_MEM_FENCE);
        xs = hout + hoo + (ulong)ic * len;
    }
    range_stats(xs, e0, e1, lane, buf, &mean, &m2);
    if (i < nsets && lane == 0)
        put_partial(part, (ulong)i * nchunks + c, e1 - e0, mean, m2);
#endif
}

/* Normalization of chunk c of set i with statistics already merged: stats
 * holds the mean of set i at [i] and its biased variance (RMS: mean of
 * squares) at [nsets + i]. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void row_apply(__global const xs_t *x, ulong xo, __global xs_t *y, ulong yo,
               __global const ps_t *scale, ulong so, __global const ps_t *bias, ulong bo,
               __global const float *stats, uint nsets, uint len, uint chunk,
               uint seg, uint aff_mod, uint elementwise, float eps)
{
    const uint i = get_global_id(0) / LANES, lane = get_local_id(0) % LANES;
    const uint c = get_global_id(1);
    if (i >= nsets)
        return;
    const uint e0 = c * chunk, e1 = min(len, e0 + chunk);
    const ulong base = (ulong)i * len;
    const affine_t af = { scale ? scale + so : 0, bias ? bias + bo : 0, seg, aff_mod, elementwise };
    apply_range(x + xo + base, y + yo + base, e0, e1, lane, i, len,
                stats[i], rstd_of(stats[nsets + i], eps), af);
    STOREY_END();
}
WIDE_END
