/*
 * The backward checks test_syncbn.c and test_syncbn_mpi.c share: the
 * one-call clnorm_backward of a whole batch, the double reference
 * (ref_backward) with a tolerance per output, and the comparisons.
 *
 * Tolerance (u = 2^-24). Both the one-call path and the split take the same
 * saved mean M and rstd r per channel (inputs of a backward), so only the
 * backward's own arithmetic is bounded. Per channel c with m = N*S elements:
 *  - dbias = sum dy. Any order of float additions of m terms (the kernels'
 *    vector lanes, chunks and merges, the split's per-process sums and
 *    their rank-order sum, exact in double and rounded once) errs by at
 *    most (m - 1) u sum|dy| to first order (Higham, 4.2); one more rounding
 *    (the host merge): E_dy = (m + 4) u sum|dy|.
 *  - dscale = sum dy * xhat: each term dy * (x - M) is formed with two
 *    roundings and its partial multiplied by r with a third, then summed as
 *    above: E_gx = (m + 6) u sum|dy * (x - M) * r|.
 *  - dx = r s dy - r (r s Sgx / m) (x - M) - r s Sdy / m: a few roundings of
 *    each term (8u of the sum of their magnitudes) plus the sums' errors
 *    carried through their coefficients: r^2 |s| |x - M| E_gx / m + r |s|
 *    E_dy / m.
 * A mean of 1e4 with spread 1e-2 changes none of it: x - M of two floats
 * within a factor of 2 is exact (Sterbenz), so nothing cancels. NaN and Inf
 * must match the reference's (th_close). Two float results (split against
 * one-call) are each within the tolerance of the reference: twice it
 * between them.
 */
#ifndef SYNCBN_BWD_H
#define SYNCBN_BWD_H

#include "common.h"
#include "reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bwd_ref {
    double *dx, *dscale, *dbias; /* the reference */
    double *tdx, *tds, *tdb;     /* the tolerances above */
} bwd_ref;

static void bwd_ref_free(bwd_ref *r)
{
    free(r->dx), free(r->dscale), free(r->dbias), free(r->tdx), free(r->tds), free(r->tdb);
}

/* The reference and tolerances of BatchNorm training backward d on x, dy,
 * scale (NULL: none), with the saved float mean and rstd. 0 on success. */
static int bwd_ref_make(const clnorm_desc *d, const float *x, const float *dy, const float *sc, const float *mean,
                        const float *rstd, bwd_ref *r)
{
    const size_t E = ref_elements(d), C = d->c, m = ref_count_per_set(d);
    const double u = ldexp(1.0, -24);
    r->dx = malloc(E * 8), r->dscale = malloc(C * 8), r->dbias = malloc(C * 8);
    r->tdx = malloc(E * 8), r->tds = calloc(C, 8), r->tdb = calloc(C, 8);
    double *md = malloc(C * 8), *rd = malloc(C * 8);
    for (size_t c = 0; c < C; ++c) md[c] = mean[c], rd[c] = rstd[c];
    int st = ref_backward(d, x, dy, sc, md, rd, NULL, NULL, r->dx, r->dscale, r->dbias);
    for (size_t i = 0; i < E; ++i) { /* sum|dy|, sum|dy (x - M) r| */
        size_t set, aff, c;
        ref_locate(d, i, &set, &aff, &c);
        r->tdb[c] += fabs((double)dy[i]);
        r->tds[c] += fabs((double)dy[i] * ((double)x[i] - md[c]) * rd[c]);
    }
    for (size_t c = 0; c < C; ++c) r->tdb[c] *= (m + 4) * u, r->tds[c] *= (m + 6) * u;
    for (size_t i = 0; i < E; ++i) {
        size_t set, aff, c;
        ref_locate(d, i, &set, &aff, &c);
        const double s = sc ? fabs((double)sc[c]) : 1.0, rr = fabs(rd[c]), xm = fabs((double)x[i] - md[c]);
        const double a = rr * s * fabs((double)dy[i]), b = rr * rr * s * fabs(r->dscale[c]) / m * xm,
                     cc = rr * s * fabs(r->dbias[c]) / m;
        r->tdx[i] = 8 * u * (a + b + cc) + rr * rr * s * xm * r->tds[c] / m + rr * s * r->tdb[c] / m;
        if (!isfinite(r->tdx[i])) r->tdx[i] = 0; /* a non-finite reference is matched exactly */
    }
    for (size_t c = 0; c < C; ++c) {
        if (!isfinite(r->tds[c])) r->tds[c] = 0;
        if (!isfinite(r->tdb[c])) r->tdb[c] = 0;
    }
    free(md), free(rd);
    return st;
}

/* got against the reference (scale 1) or another float result (b, scale
 * 2); reports the first 3 mismatches. Returns the mismatches. */
static unsigned long bwd_cmp(const char *what, const double *expect, const float *b, const float *got,
                             const double *tol, size_t n, double scale)
{
    unsigned long bad = 0;
    for (size_t i = 0; i < n; ++i) {
        const double e = expect ? expect[i] : (double)b[i];
        if (th_close(e, got[i], scale * tol[i])) continue;
        if (++bad <= 3)
            th_fail("%s[%zu]: expected %.9g, got %.9g, tol %.3g", what, i, e, (double)got[i], scale * tol[i]);
    }
    return bad;
}

/* dx, dscale, dbias (E, C, C floats) against the reference. */
static unsigned long bwd_compare_ref(const bwd_ref *r, size_t E, size_t C, const float *dx, const float *ds,
                                     const float *db)
{
    return bwd_cmp("dx", r->dx, NULL, dx, r->tdx, E, 1) + bwd_cmp("dscale", r->dscale, NULL, ds, r->tds, C, 1) +
           bwd_cmp("dbias", r->dbias, NULL, db, r->tdb, C, 1);
}

/* Two float results against each other: twice the tolerance. */
static unsigned long bwd_compare_pair(const bwd_ref *r, size_t E, size_t C, const float *dx1, const float *ds1,
                                      const float *db1, const float *dx2, const float *ds2, const float *db2)
{
    return bwd_cmp("dx vs one-call", NULL, dx1, dx2, r->tdx, E, 2) +
           bwd_cmp("dscale vs one-call", NULL, ds1, ds2, r->tds, C, 2) +
           bwd_cmp("dbias vs one-call", NULL, db1, db2, r->tdb, C, 2);
}

/* clnorm_backward of the whole batch d (buffers ignored) with the saved
 * mean and rstd, into dx, dscale, dbias (E, C, C floats). Returns the
 * status (reported). */
static int bwd_one_call(clnorm_ctx *ctx, const clnorm_desc *d, const float *x, const float *dy, const float *sc,
                        const float *mean, const float *rstd, float *dx, float *ds, float *db)
{
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    const size_t E = ref_elements(d), C = d->c;
    cl_mem X = th_buffer(cl, E), DY = th_buffer(cl, E), DX = th_buffer(cl, E), SC = th_buffer(cl, C);
    cl_mem M = th_buffer(cl, C), RS = th_buffer(cl, C), DS = th_buffer(cl, C), DB = th_buffer(cl, C);
    th_write(q, X, 0, E, x), th_write(q, DY, 0, E, dy), th_write(q, M, 0, C, mean), th_write(q, RS, 0, C, rstd);
    if (sc) th_write(q, SC, 0, C, sc);
    clnorm_desc w = *d;
    w.x = (clnorm_buf){X, 0}, w.dy = (clnorm_buf){DY, 0}, w.dx = (clnorm_buf){DX, 0};
    w.scale = sc ? (clnorm_buf){SC, 0} : (clnorm_buf){NULL, 0};
    w.mean = (clnorm_buf){M, 0}, w.rstd = (clnorm_buf){RS, 0};
    w.dscale = (clnorm_buf){DS, 0}, w.dbias = (clnorm_buf){DB, 0};
    w.y = w.bias = w.running_mean = w.running_var = (clnorm_buf){NULL, 0};
    int st = clnorm_backward(ctx, &w, 0, NULL, NULL);
    if (st != CLNORM_OK) th_fail("clnorm_backward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
    TH_CL(clFinish(q));
    TH_CL(clEnqueueReadBuffer(q, DX, CL_TRUE, 0, E * 4, dx, 0, NULL, NULL));
    TH_CL(clEnqueueReadBuffer(q, DS, CL_TRUE, 0, C * 4, ds, 0, NULL, NULL));
    TH_CL(clEnqueueReadBuffer(q, DB, CL_TRUE, 0, C * 4, db, 0, NULL, NULL));
    cl_mem all[] = {X, DY, DX, SC, M, RS, DS, DB};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) clReleaseMemObject(all[i]);
    return st;
}

#endif /* SYNCBN_BWD_H */
