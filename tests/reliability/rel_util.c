/* Helpers for the reliability tests; see rel_util.h. */
#include "rel_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rel_rng_seed(rel_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull; }
uint64_t rel_rng_next(rel_rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
double rel_rng_uniform(rel_rng *r) { return (double)(rel_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
double rel_rng_normal(rel_rng *r)
{
    double u = rel_rng_uniform(r), v = rel_rng_uniform(r);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

void rel_die(const char *file, int line, const char *what, int err)
{
    fprintf(stderr, "%s:%d: %s failed with %d\n", file, line, what, err);
    abort();
}

cl_mem rel_buffer(cl_context c, size_t floats)
{
    cl_int e = CL_SUCCESS;
    cl_mem m = clCreateBuffer(c, CL_MEM_READ_WRITE, (floats ? floats : 1) * sizeof(float), NULL, &e);
    if (!m || e != CL_SUCCESS) rel_die(__FILE__, __LINE__, "clCreateBuffer", e);
    return m;
}
void rel_write(cl_command_queue q, cl_mem m, size_t first, size_t n, const float *src)
{
    if (n) REL_CL(clEnqueueWriteBuffer(q, m, CL_TRUE, first * sizeof(float), n * sizeof(float), src, 0, NULL, NULL));
}
void rel_read(cl_command_queue q, cl_mem m, size_t first, size_t n, float *dst)
{
    if (n) REL_CL(clEnqueueReadBuffer(q, m, CL_TRUE, first * sizeof(float), n * sizeof(float), dst, 0, NULL, NULL));
}
size_t rel_mem_floats(cl_mem m)
{
    size_t bytes = 0;
    REL_CL(clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof bytes, &bytes, NULL));
    return bytes / sizeof(float);
}
void *rel_snapshot(cl_command_queue q, cl_mem m, size_t *bytes)
{
    REL_CL(clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof *bytes, bytes, NULL));
    void *p = malloc(*bytes);
    if (!p) abort();
    REL_CL(clEnqueueReadBuffer(q, m, CL_TRUE, 0, *bytes, p, 0, NULL, NULL));
    return p;
}
int rel_same_bytes(cl_command_queue q, cl_mem m, const void *snap, size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) abort();
    REL_CL(clEnqueueReadBuffer(q, m, CL_TRUE, 0, bytes, p, 0, NULL, NULL));
    int same = memcmp(p, snap, bytes) == 0;
    free(p);
    return same;
}

long rel_env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    return *end ? dflt : v;
}

void rel_shape_layer(clnorm_desc *d, size_t rows, size_t cols)
{
    clnorm_desc_init(d, CLNORM_LAYER_NORM);
    d->rows = rows;
    d->cols = cols;
}
void rel_shape_rms(clnorm_desc *d, size_t rows, size_t cols)
{
    clnorm_desc_init(d, CLNORM_RMS_NORM);
    d->rows = rows;
    d->cols = cols;
}
void rel_shape_channel(clnorm_desc *d, clnorm_op op, clnorm_layout layout, size_t n, size_t c, unsigned rank,
                       size_t s0, size_t s1, size_t s2, size_t groups, int training)
{
    clnorm_desc_init(d, op);
    d->layout = layout;
    d->n = n;
    d->c = c;
    d->rank = rank;
    d->spatial[0] = rank > 0 ? s0 : 0;
    d->spatial[1] = rank > 1 ? s1 : 0;
    d->spatial[2] = rank > 2 ? s2 : 0;
    d->groups = op == CLNORM_GROUP_NORM ? groups : 0;
    d->training = training;
}

static float poison_value(void)
{
    uint32_t b = REL_POISON_BITS;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Writes a buffer of off + n + REL_GUARD floats: poison, data (or poison if data is NULL), poison. */
static void put_guarded(cl_command_queue q, cl_mem m, size_t off, size_t n, const float *data)
{
    size_t total = off + n + REL_GUARD;
    float *h = malloc(total * sizeof *h);
    if (!h) abort();
    float pv = poison_value();
    for (size_t i = 0; i < total; i++) h[i] = pv;
    if (data) memcpy(h + off, data, n * sizeof *h);
    rel_write(q, m, 0, total, h);
    free(h);
}

static float *gen(rel_rng *r, size_t n, double base, double scale, double lo)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) abort();
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo > 0 ? lo + rel_rng_uniform(r) * scale : base + scale * rel_rng_normal(r));
    return v;
}

int rel_problem_init(rel_problem *p, clnorm_ctx *ctx, const clnorm_desc *ds, unsigned flags, size_t off,
                     uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->d = *ds;
    p->flags = flags;
    p->off = off;
    p->ne = ref_elements(ds);
    p->nsets = ref_sets(ds);
    if (!p->ne || !p->nsets) return -1;
    int row = ds->op == CLNORM_LAYER_NORM || ds->op == CLNORM_RMS_NORM;
    p->nc = row ? 0 : ds->c;
    p->naff = ref_affine_len(ds);
    if (ds->op == CLNORM_BATCH_NORM) p->flags |= REL_RUNNING;
    if (row || ds->op == CLNORM_GROUP_NORM) p->flags &= ~REL_RUNNING;
    if (ds->op == CLNORM_RMS_NORM) p->flags &= ~REL_MEAN;
    int use_running = (ds->op == CLNORM_BATCH_NORM && !ds->training) ||
                      (ds->op == CLNORM_INSTANCE_NORM && !ds->training && (p->flags & REL_RUNNING));
    if (use_running) p->flags &= ~REL_STATS; /* no saved statistics in inference */

    rel_rng r;
    rel_rng_seed(&r, seed);
    p->data_base = (double)(seed % 7) - 3.0;
    p->x = gen(&r, p->ne, p->data_base, 1.0 + (double)(seed % 3), 0);
    p->scale = gen(&r, p->naff, 0, 1.0, 0.5);
    p->bias = gen(&r, p->naff, 0, 1.0, 0);
    p->rm = gen(&r, p->nc, 0, 0.5, 0);
    p->rv = gen(&r, p->nc, 0, 1.0, 0.5);

    cl_context c = clnorm_cl_context(ctx);
    p->mx = rel_buffer(c, off + p->ne + REL_GUARD);
    p->my = (flags & REL_INPLACE) ? p->mx : rel_buffer(c, off + p->ne + REL_GUARD);
    if (p->flags & REL_SCALE) p->mscale = rel_buffer(c, off + p->naff + REL_GUARD);
    if (p->flags & REL_BIAS) p->mbias = rel_buffer(c, off + p->naff + REL_GUARD);
    if (p->flags & REL_MEAN) p->mmean = rel_buffer(c, off + p->nsets + REL_GUARD);
    if (p->flags & REL_RSTD) p->mrstd = rel_buffer(c, off + p->nsets + REL_GUARD);
    if (p->flags & REL_RUNNING) {
        p->mrm = rel_buffer(c, off + p->nc + REL_GUARD);
        p->mrv = rel_buffer(c, off + p->nc + REL_GUARD);
    }
    clnorm_desc *d = &p->d;
    d->x = (clnorm_buf){p->mx, off};
    d->y = (clnorm_buf){p->my, off};
    d->scale = (clnorm_buf){p->mscale, p->mscale ? off : 0};
    d->bias = (clnorm_buf){p->mbias, p->mbias ? off : 0};
    d->mean = (clnorm_buf){p->mmean, p->mmean ? off : 0};
    d->rstd = (clnorm_buf){p->mrstd, p->mrstd ? off : 0};
    d->running_mean = (clnorm_buf){p->mrm, p->mrm ? off : 0};
    d->running_var = (clnorm_buf){p->mrv, p->mrv ? off : 0};
    rel_problem_reset(p, ctx);
    return 0;
}

void rel_problem_reset(rel_problem *p, clnorm_ctx *ctx)
{
    cl_command_queue q = clnorm_queue(ctx);
    REL_CL(clFinish(q));
    put_guarded(q, p->mx, p->off, p->ne, p->x);
    if (p->my != p->mx) put_guarded(q, p->my, p->off, p->ne, NULL);
    if (p->mscale) put_guarded(q, p->mscale, p->off, p->naff, p->scale);
    if (p->mbias) put_guarded(q, p->mbias, p->off, p->naff, p->bias);
    if (p->mmean) put_guarded(q, p->mmean, p->off, p->nsets, NULL);
    if (p->mrstd) put_guarded(q, p->mrstd, p->off, p->nsets, NULL);
    if (p->mrm) put_guarded(q, p->mrm, p->off, p->nc, p->rm);
    if (p->mrv) put_guarded(q, p->mrv, p->off, p->nc, p->rv);
}

void rel_problem_free(rel_problem *p)
{
    cl_mem ms[] = {p->mx, p->my != p->mx ? p->my : NULL, p->mscale, p->mbias, p->mmean, p->mrstd, p->mrm, p->mrv};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (ms[i]) clReleaseMemObject(ms[i]);
    free(p->x); free(p->scale); free(p->bias); free(p->rm); free(p->rv);
    memset(p, 0, sizeof *p);
}

/* Reads a guarded buffer; checks the guards; returns the extent (malloc'ed) or NULL with why. */
static float *get_guarded(cl_command_queue q, cl_mem m, size_t off, size_t n, const char *name, char *why,
                          size_t len)
{
    size_t total = off + n + REL_GUARD;
    float *h = malloc(total * sizeof *h);
    if (!h) abort();
    rel_read(q, m, 0, total, h);
    for (size_t i = 0; i < total; i++) {
        if (i == off) i = off + n;
        if (i >= total) break;
        uint32_t b;
        memcpy(&b, &h[i], sizeof b);
        if (b != REL_POISON_BITS) {
            snprintf(why, len, "%s: guard element %zu (extent %zu..%zu) overwritten with %g", name, i, off,
                     off + n, (double)h[i]);
            free(h);
            return NULL;
        }
    }
    memmove(h, h + off, n * sizeof *h);
    return h;
}

/* Tolerances. Every output is compared as |got - ref| <= tol, ref from
 * ref_forward in double. float32 rounding (u = 2^-24 ~ 6e-8) enters through
 * (a) x - mean: error ~ u * (|x| + |mean|), amplified by rstd * |scale|;
 * (b) the mean and variance sums: relative error <= count * u for a serial
 *     sum, far less for tree/pairwise sums; we allow count * u / 2 plus a
 *     constant of 32 u for the final operations (sqrt, divide, fma chains);
 * (c) the final scale and bias: ~u * (|y| + |bias|).
 * So tol = rel * ((|x| + |mean|) * rstd * |scale| + |scale| + |bias| + |y|),
 * the |scale| term for the sums' error ~ u * mean(|x|) <= u * (|mean| + std),
 * rel = u * (32 + count / 2). The data are N(base, sd) with |base| <= 3, so
 * |mean| * rstd <= ~4 and the naive E[x^2] - E[x]^2 formula would still pass
 * here: cancellation is the core suites' job, these tests are about validity,
 * faults, leaks and memory safety. NaN must match NaN, infinities exactly. */
static int close_enough(double got, double ref, double tol)
{
    if (isnan(ref)) return isnan(got);
    if (isinf(ref)) return got == ref;
    if (!isfinite(got)) return 0;
    return fabs(got - ref) <= tol;
}

int rel_problem_check(rel_problem *p, clnorm_ctx *ctx, char *why, size_t len)
{
    const clnorm_desc *d = &p->d;
    cl_command_queue q = clnorm_queue(ctx);
    int rc = -1;
    REL_CL(clFinish(q));
    const double SENT = -12345.678;
    double *yr = malloc(p->ne * sizeof *yr), *mr = malloc(p->nsets * sizeof *mr),
           *sr = malloc(p->nsets * sizeof *sr), *rmr = malloc((p->nc + 1) * sizeof *rmr),
           *rvr = malloc((p->nc + 1) * sizeof *rvr);
    float *y = NULL, *mean = NULL, *rstd = NULL, *rm = NULL, *rv = NULL, *sc = NULL, *bi = NULL, *xx = NULL;
    if (!yr || !mr || !sr || !rmr || !rvr) abort();
    for (size_t i = 0; i < p->nsets; i++) mr[i] = sr[i] = SENT;
    for (size_t i = 0; i < p->nc; i++) rmr[i] = rvr[i] = SENT;
    const float *rmin = (p->flags & REL_RUNNING) ? p->rm : NULL, *rvin = (p->flags & REL_RUNNING) ? p->rv : NULL;
    if (ref_forward(d, p->x, p->mscale ? p->scale : NULL, p->mbias ? p->bias : NULL, rmin, rvin, yr, mr, sr, rmr,
                    rvr) != 0) {
        snprintf(why, len, "reference rejects the descriptor");
        goto out;
    }
    if (!(y = get_guarded(q, p->my, p->off, p->ne, "y", why, len))) goto out;
    if (p->my != p->mx && !(xx = get_guarded(q, p->mx, p->off, p->ne, "x", why, len))) goto out;
    if (xx && memcmp(xx, p->x, p->ne * sizeof *xx) != 0) {
        snprintf(why, len, "input x was modified");
        goto out;
    }
    if (p->mscale) {
        if (!(sc = get_guarded(q, p->mscale, p->off, p->naff, "scale", why, len))) goto out;
        if (memcmp(sc, p->scale, p->naff * sizeof *sc)) { snprintf(why, len, "input scale was modified"); goto out; }
    }
    if (p->mbias) {
        if (!(bi = get_guarded(q, p->mbias, p->off, p->naff, "bias", why, len))) goto out;
        if (memcmp(bi, p->bias, p->naff * sizeof *bi)) { snprintf(why, len, "input bias was modified"); goto out; }
    }
    if (p->mmean && !(mean = get_guarded(q, p->mmean, p->off, p->nsets, "mean", why, len))) goto out;
    if (p->mrstd && !(rstd = get_guarded(q, p->mrstd, p->off, p->nsets, "rstd", why, len))) goto out;
    if (p->mrm && !(rm = get_guarded(q, p->mrm, p->off, p->nc, "running_mean", why, len))) goto out;
    if (p->mrv && !(rv = get_guarded(q, p->mrv, p->off, p->nc, "running_var", why, len))) goto out;

    const double u = 1.0 / 16777216.0;
    const int use_running = (d->op == CLNORM_BATCH_NORM && !d->training) ||
                            (d->op == CLNORM_INSTANCE_NORM && !d->training && rmin);
    const size_t count = use_running ? 1 : ref_count_per_set(d);
    const double rel = u * (32.0 + (double)count / 2.0);
    for (size_t i = 0; i < p->ne; i++) {
        size_t set, aff, ch;
        ref_locate(d, i, &set, &aff, &ch);
        double mu, r;
        if (use_running) {
            mu = p->rm[ch];
            r = 1.0 / sqrt((double)p->rv[ch] + (double)d->eps);
        } else {
            mu = d->op == CLNORM_RMS_NORM ? 0.0 : mr[set];
            r = sr[set];
        }
        double s = p->mscale ? fabs((double)p->scale[aff]) : 1.0, b = p->mbias ? fabs((double)p->bias[aff]) : 0.0;
        /* The mean's rounding error scales with the mean of |x|, not |mean|:
         * for mixed signs it is ~u * (|mean| + std) per step, i.e. up to
         * rel * scale in normalized units (std * rstd <= 1): the "+ s" term. */
        double tol = rel * ((fabs((double)p->x[i]) + fabs(mu)) * r * s + s + b + fabs(yr[i])) + 1e-30;
        if (!close_enough(y[i], yr[i], tol)) {
            snprintf(why, len,
                     "y[%zu] (set %zu) = %.9g, reference %.9g, tol %.3g (x %.9g, set mean %.9g, rstd %.9g, "
                     "|scale| %.9g, |bias| %.9g)",
                     i, set, (double)y[i], yr[i], tol, (double)p->x[i], mu, r, s, b);
            goto out;
        }
    }
    for (size_t s = 0; s < p->nsets; s++) {
        if (mean) {
            if (mr[s] == SENT) { snprintf(why, len, "reference produced no mean"); goto out; }
            double sd = sr[s] > 0 && isfinite(sr[s]) ? 1.0 / sr[s] : 0.0;
            /* A set holding +-Inf: the reference writes NaN (SPEC: the set's
             * outputs are NaN), the library the mean itself (+-Inf), as PyTorch
             * does. Reported as a contract ambiguity; both accepted here. */
            int inf_mean = isnan(mr[s]) && isinf(mean[s]);
            if (!inf_mean && !close_enough(mean[s], mr[s], rel * (fabs(mr[s]) + sd) + 1e-30)) {
                snprintf(why, len, "mean[%zu] = %.9g, reference %.9g", s, (double)mean[s], mr[s]);
                goto out;
            }
        }
        if (rstd) {
            if (sr[s] == SENT) { snprintf(why, len, "reference produced no rstd"); goto out; }
            double m = d->op == CLNORM_RMS_NORM ? 0.0 : fabs(mr[s]);
            double tol = rel * fabs(sr[s]) * (2.0 + 2.0 * m * (isfinite(sr[s]) ? sr[s] : 0.0)) + 1e-30;
            if (!close_enough(rstd[s], sr[s], tol)) {
                snprintf(why, len, "rstd[%zu] = %.9g, reference %.9g", s, (double)rstd[s], sr[s]);
                goto out;
            }
        }
    }
    for (size_t c = 0; c < p->nc && rm; c++) {
        if (rmr[c] == SENT || rvr[c] == SENT) { snprintf(why, len, "reference produced no running stats"); goto out; }
        /* running = (1-m) r + m * batch: the batch term carries the statistic's error. */
        double tm = rel * (fabs(rmr[c]) + fabs((double)p->rm[c]) + 1.0 + fabs(p->data_base)) * 4.0;
        double tv = rel * (fabs(rvr[c]) + fabs((double)p->rv[c]) + 1.0) * 4.0;
        if (!(isnan(rmr[c]) && isinf(rm[c])) /* as for the saved mean above */ && !close_enough(rm[c], rmr[c], tm)) {
            snprintf(why, len, "running_mean[%zu] = %.9g, reference %.9g", c, (double)rm[c], rmr[c]);
            goto out;
        }
        if (!close_enough(rv[c], rvr[c], tv)) {
            snprintf(why, len, "running_var[%zu] = %.9g, reference %.9g", c, (double)rv[c], rvr[c]);
            goto out;
        }
    }
    rc = 0;
out:
    free(yr); free(mr); free(sr); free(rmr); free(rvr);
    free(y); free(mean); free(rstd); free(rm); free(rv); free(sc); free(bi); free(xx);
    return rc;
}

int rel_problem_run(rel_problem *p, clnorm_ctx *ctx, char *why, size_t len)
{
    clnorm_status st = clnorm_forward(ctx, &p->d, 0, NULL, NULL);
    if (st != CLNORM_OK) {
        snprintf(why, len, "clnorm_forward returned %s (%d): %s", clnorm_status_name(st), (int)st,
                 clnorm_last_error(ctx));
        return (int)st;
    }
    return rel_problem_check(p, ctx, why, len) == 0 ? 0 : -1000;
}
