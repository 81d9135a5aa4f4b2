/*
 * Shared test harness: see common.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* process-wide context                                                */
/* ------------------------------------------------------------------ */
static clnorm_ctx *g_ctx;
static uint64_t g_seed_base, g_seed_counter;
static int g_seed_init;
static char g_devname[256];

clnorm_ctx *th_ctx(void)
{
    if (g_ctx)
        return g_ctx;
    clnorm_status st = clnorm_create_default(&g_ctx);
    if (st != CLNORM_OK || !g_ctx) {
        fprintf(stderr, "clnorm_create_default failed: %d %s (%s)\n", (int)st, clnorm_status_name(st),
                clnorm_status_string(st));
        exit(2);
    }
    cl_device_id dev = clnorm_device(g_ctx);
    if (clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof g_devname - 1, g_devname, NULL) != CL_SUCCESS)
        strcpy(g_devname, "?");
    printf("# device: %s\n", g_devname);
    return g_ctx;
}

void th_ctx_release(void)
{
    clnorm_destroy(g_ctx);
    g_ctx = NULL;
}

const char *th_device_name(void) { return g_devname; }

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int th_run_suite(Suite *s, const char *name)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* OpenCL state does not survive fork */
    double t0 = now_s();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    int run = srunner_ntests_run(sr);
    printf("# %s: %d Check tests, %d failed", name, run, failed);
    if (th_cases) /* the suites that check through th_check_case/th_run */
        printf("; %lu library calls checked; seed base %llu", th_cases, (unsigned long long)g_seed_base);
    printf("; %.1f s\n", now_s() - t0);
    srunner_free(sr);
    th_ctx_release();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ------------------------------------------------------------------ */
/* soft assertions                                                     */
/* ------------------------------------------------------------------ */
unsigned long th_failures;
unsigned long th_cases;
static char g_case[512];

void th_set_case(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_case, sizeof g_case, fmt, ap);
    va_end(ap);
}

const char *th_case_name(void) { return g_case; }

static unsigned long th_print_limit(void)
{
    static unsigned long lim;
    if (!lim) {
        const char *e = getenv("CLNORM_TEST_MAX_FAILS");
        lim = e ? strtoul(e, NULL, 0) : 50;
        if (!lim)
            lim = 1;
    }
    return lim;
}

void th_fail(const char *fmt, ...)
{
    th_failures++;
    if (th_failures > th_print_limit())
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL [%s] ", g_case);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (th_failures == th_print_limit())
        printf("FAIL ... (further failures in this test not printed)\n");
    fflush(stdout);
}

void th_begin(void)
{
    th_failures = 0;
    g_case[0] = 0;
}

void th_finish(void)
{
    unsigned long f = th_failures;
    th_failures = 0;
    ck_assert_msg(f == 0, "%lu failed checks (see FAIL lines above)", f);
}

/* ------------------------------------------------------------------ */
/* random numbers: splitmix64                                          */
/* ------------------------------------------------------------------ */

uint64_t th_next_seed(void)
{
    if (!g_seed_init) {
        const char *e = getenv("CLNORM_TEST_SEED");
        g_seed_base = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) * 1000003u;
        g_seed_init = 1;
        printf("# seed base %llu (CLNORM_TEST_SEED=%llu reproduces this run)\n", (unsigned long long)g_seed_base,
               (unsigned long long)g_seed_base);
    }
    return g_seed_base + g_seed_counter++;
}

void th_rng_init(th_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 0x1234567ull; }

uint64_t th_rng_u64(th_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double th_rng_uniform(th_rng *r) { return (double)(th_rng_u64(r) >> 11) * 0x1.0p-53; }

double th_rng_normal(th_rng *r)
{
    double u1 = th_rng_uniform(r), u2 = th_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

size_t th_rng_below(th_rng *r, size_t n) { return n ? (size_t)(th_rng_u64(r) % n) : 0; }

/* ------------------------------------------------------------------ */
/* data                                                                */
/* ------------------------------------------------------------------ */
static const char *const kind_names[] = {"normal", "uniform*1e4", "1e4+N(0,1e-2)", "constant", "mixed-constant",
                                         "nan/inf"};
const char *th_kind_name(th_kind k) { return (unsigned)k < TH_KIND_COUNT ? kind_names[k] : "?"; }

void th_fill_normal(th_rng *r, float *a, size_t n, double mu, double sigma)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (float)(mu + sigma * th_rng_normal(r));
}

void th_fill_uniform(th_rng *r, float *a, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (float)(lo + (hi - lo) * th_rng_uniform(r));
}

/* Puts value v at a random element of set `target`. */
static void put_in_set(th_rng *r, const clnorm_desc *d, float *x, size_t E, size_t target, float v)
{
    size_t count = ref_count_per_set(d), pick = th_rng_below(r, count), seen = 0, set, aff, ch;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        if (set == target && seen++ == pick) {
            x[i] = v;
            return;
        }
    }
}

void th_fill(th_rng *r, const clnorm_desc *d, th_kind k, float *x)
{
    size_t E = ref_elements(d), sets = ref_sets(d), set, aff, ch;
    if (E == 0)
        return;
    if (sets == 0) /* shapes the library must reject: any data will do */
        k = TH_NORMAL;
    switch (k) {
    case TH_UNIFORM_1E4:
        th_fill_uniform(r, x, E, 0.0, 1e4);
        break;
    case TH_OFFSET_1E4:
        th_fill_normal(r, x, E, 1e4, 1e-2);
        break;
    case TH_CONSTANT:
    case TH_MIXED_CONSTANT: {
        /* constant values k/4, |k| <= 15: exact in float, and any sum of up to 2^20 of
           them is exact too, so a correct implementation gets var == 0 exactly */
        float *cv = malloc(sets * sizeof *cv);
        for (size_t s = 0; s < sets; s++)
            cv[s] = (float)((int)th_rng_below(r, 31) - 15) * 0.25f;
        double mu = 2.0 * th_rng_uniform(r) - 1.0, sg = 0.5 + th_rng_uniform(r);
        for (size_t i = 0; i < E; i++) {
            ref_locate(d, i, &set, &aff, &ch);
            x[i] = (k == TH_CONSTANT || set % 2 == 0) ? cv[set] : (float)(mu + sg * th_rng_normal(r));
        }
        free(cv);
        break;
    }
    case TH_NANINF:
    case TH_NORMAL:
    default: {
        double mu = 4.0 * th_rng_uniform(r) - 2.0, sg = 0.5 + 1.5 * th_rng_uniform(r);
        th_fill_normal(r, x, E, mu, sg);
        if (k == TH_NANINF) {
            /* set 0 (or a random one) gets a NaN, the next +Inf, the one after -Inf */
            size_t s0 = th_rng_below(r, sets);
            put_in_set(r, d, x, E, s0, NAN);
            if (sets > 1)
                put_in_set(r, d, x, E, (s0 + 1) % sets, INFINITY);
            if (sets > 2)
                put_in_set(r, d, x, E, (s0 + 2) % sets, -INFINITY);
        }
        break;
    }
    }
}

uint32_t th_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

float th_from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* ------------------------------------------------------------------ */
/* guarded device buffers                                              */
/* ------------------------------------------------------------------ */
typedef struct gbuf {
    const char *name;
    cl_mem mem;
    size_t off, len, total;
    float *init; /* what was uploaded (guards + payload) */
    float *back; /* what was read back */
    int is_input, is_output;
} gbuf;

static th_rng g_hrng; /* harness rng: offsets and guard sizes */
static int g_hrng_init;

static size_t pick_offset(unsigned flags)
{
    if (!g_hrng_init) {
        th_rng_init(&g_hrng, th_next_seed() ^ 0xabcdefull);
        g_hrng_init = 1;
    }
    if (flags & TH_SMALL_OFFSETS)
        return 1 + th_rng_below(&g_hrng, 3);
    if (th_rng_below(&g_hrng, 8) == 0)
        return 1000 + th_rng_below(&g_hrng, 64); /* sometimes far in */
    return 1 + th_rng_below(&g_hrng, 40);        /* never 0: offsets must be honoured */
}

static int gbuf_create(cl_context cl, gbuf *b, const char *name, size_t len, const float *payload, int is_input,
                       int is_output, unsigned flags)
{
    memset(b, 0, sizeof *b);
    b->name = name;
    b->off = pick_offset(flags);
    b->len = len;
    size_t post = 1 + th_rng_below(&g_hrng, 40);
    b->total = b->off + len + post;
    b->is_input = is_input;
    b->is_output = is_output;
    b->init = malloc(b->total * sizeof(float));
    b->back = malloc(b->total * sizeof(float));
    if (!b->init || !b->back)
        return -1;
    float guard = th_from_bits(TH_GUARD_BITS), poison = th_from_bits(TH_POISON_BITS);
    for (size_t i = 0; i < b->total; i++)
        b->init[i] = guard;
    if (payload)
        memcpy(b->init + b->off, payload, len * sizeof(float));
    else
        for (size_t i = 0; i < len; i++)
            b->init[b->off + i] = poison;
    cl_int err;
    b->mem = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, b->total * sizeof(float), b->init, &err);
    if (err != CL_SUCCESS) {
        th_fail("clCreateBuffer(%s, %zu floats) failed: %d", name, b->total, err);
        return -1;
    }
    return 0;
}

static void gbuf_free(gbuf *b)
{
    if (b->mem)
        clReleaseMemObject(b->mem);
    free(b->init);
    free(b->back);
    memset(b, 0, sizeof *b);
}

static clnorm_buf gbuf_ref(const gbuf *b)
{
    clnorm_buf r = {b->mem, b->off};
    return r;
}

/* Reads back and checks the guards (and, for pure inputs or when `untouched`
 * is set, the whole payload). Returns the number of problems. */
static int gbuf_check(cl_command_queue q, gbuf *b, int untouched)
{
    cl_int err = clEnqueueReadBuffer(q, b->mem, CL_TRUE, 0, b->total * sizeof(float), b->back, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        th_fail("clEnqueueReadBuffer(%s) failed: %d", b->name, err);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < b->total; i++) {
        int in_payload = i >= b->off && i < b->off + b->len;
        if (in_payload && !untouched)
            continue;
        if (th_bits(b->back[i]) != th_bits(b->init[i])) {
            if (bad < 3) {
                if (in_payload)
                    th_fail("%s[%zu] modified: 0x%08x (%g) was 0x%08x (%g)%s", b->name, i - b->off,
                            th_bits(b->back[i]), b->back[i], th_bits(b->init[i]), b->init[i],
                            b->is_output ? " (output of a rejected call)" : " (input)");
                else
                    th_fail("%s guard overwritten at %s%zu: 0x%08x (%g)", b->name,
                            i < b->off ? "offset-" : "end+", i < b->off ? b->off - i : i - b->off - b->len,
                            th_bits(b->back[i]), b->back[i]);
            }
            bad++;
        }
    }
    return bad;
}

int th_run(clnorm_ctx *ctx, const clnorm_desc *shape, const th_inputs *in, th_outputs *out, unsigned flags)
{
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    clnorm_desc d = *shape;

    size_t E = ref_elements(shape), sets = ref_sets(shape), aff = ref_affine_len(shape);
    size_t C = (shape->op == CLNORM_LAYER_NORM || shape->op == CLNORM_RMS_NORM) ? 0 : shape->c;
    if (E == 0)
        E = 1;
    if (sets == 0) /* a shape the library must reject: size generously */
        sets = (shape->n * shape->c) != 0 ? shape->n * shape->c : (shape->rows ? shape->rows : 1);
    if (aff == 0)
        aff = 1;
    if (C == 0)
        C = 1;

    enum { BX, BY, BSCALE, BBIAS, BMEAN, BRSTD, BRM, BRV, NB };
    gbuf b[NB];
    memset(b, 0, sizeof b);
    int rc = TH_HARNESS_FAILED, setup = 0;
    int in_place = (flags & TH_IN_PLACE) != 0;

    setup |= gbuf_create(cl, &b[BX], in_place ? "x(=y)" : "x", E, in->x, 1, in_place, flags);
    if (!in_place && out->y)
        setup |= gbuf_create(cl, &b[BY], "y", E, NULL, 0, 1, flags);
    if (in->scale)
        setup |= gbuf_create(cl, &b[BSCALE], "scale", aff, in->scale, 1, 0, flags);
    if (in->bias)
        setup |= gbuf_create(cl, &b[BBIAS], "bias", aff, in->bias, 1, 0, flags);
    if (out->mean)
        setup |= gbuf_create(cl, &b[BMEAN], "mean", sets, NULL, 0, 1, flags);
    if (out->rstd)
        setup |= gbuf_create(cl, &b[BRSTD], "rstd", sets, NULL, 0, 1, flags);
    if (in->running_mean)
        setup |= gbuf_create(cl, &b[BRM], "running_mean", C, in->running_mean, 1, 1, flags);
    if (in->running_var)
        setup |= gbuf_create(cl, &b[BRV], "running_var", C, in->running_var, 1, 1, flags);
    if (setup)
        goto done;

    d.x = gbuf_ref(&b[BX]);
    d.y = in_place ? d.x : gbuf_ref(&b[BY]);
    d.scale = gbuf_ref(&b[BSCALE]);
    d.bias = gbuf_ref(&b[BBIAS]);
    d.mean = gbuf_ref(&b[BMEAN]);
    d.rstd = gbuf_ref(&b[BRSTD]);
    d.running_mean = gbuf_ref(&b[BRM]);
    d.running_var = gbuf_ref(&b[BRV]);

    cl_event ev = NULL;
    th_cases++;
    int st = clnorm_forward(ctx, &d, 0, NULL, (flags & TH_NO_EVENT) ? NULL : &ev);
    if (st == CLNORM_OK && !(flags & TH_NO_EVENT)) {
        if (!ev) {
            th_fail("clnorm_forward returned OK but no event");
        } else {
            cl_int err = clWaitForEvents(1, &ev);
            cl_int es = 0;
            clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof es, &es, NULL);
            if (err != CL_SUCCESS || es != CL_COMPLETE)
                th_fail("event of clnorm_forward: wait %d, status %d", err, es);
        }
    }
    if (st != CLNORM_OK && ev) {
        th_fail("clnorm_forward failed (%d) but set an event", st);
        clReleaseEvent(ev);
        ev = NULL;
    }
    if (ev)
        clReleaseEvent(ev);
    clFinish(q);

    int problems = 0;
    for (int i = 0; i < NB; i++) {
        if (!b[i].mem)
            continue;
        int untouched = st != CLNORM_OK || !b[i].is_output;
        problems += gbuf_check(q, &b[i], untouched);
    }
    if (problems) {
        rc = TH_HARNESS_FAILED;
        goto done;
    }
    /* copy payloads out */
    if (out->y)
        memcpy(out->y, b[in_place ? BX : BY].back + b[in_place ? BX : BY].off, E * sizeof(float));
    if (out->mean)
        memcpy(out->mean, b[BMEAN].back + b[BMEAN].off, sets * sizeof(float));
    if (out->rstd)
        memcpy(out->rstd, b[BRSTD].back + b[BRSTD].off, sets * sizeof(float));
    if (out->running_mean && b[BRM].mem)
        memcpy(out->running_mean, b[BRM].back + b[BRM].off, C * sizeof(float));
    if (out->running_var && b[BRV].mem)
        memcpy(out->running_var, b[BRV].back + b[BRV].off, C * sizeof(float));
    rc = st;
done:
    for (int i = 0; i < NB; i++)
        gbuf_free(&b[i]);
    return rc;
}

/* ------------------------------------------------------------------ */
/* comparison                                                          */
/* ------------------------------------------------------------------ */
/*
 * Tolerances, from float32 error analysis. u = 2^-24 is the unit roundoff of
 * float32. For a set with count n, mean mu and (biased) standard deviation
 * sigma, as computed by the double reference:
 *
 * 0. Summation. A float sum of n terms has relative error <= u*log2(n) when
 *    done as a tree/pairwise reduction; a serial loop (one work-item walking
 *    a chunk) has a worst case of u*n but errors that behave like a random
 *    walk, about u*sqrt(n), on data whose terms do not all share one
 *    magnitude. We allow
 *        s_n = 8 + 2 log2(n) + sqrt(n)        (in units of u)
 *    i.e. 1072 u = 6.4e-5 relative at n = 2^20. Serial float sums of n
 *    nearly equal terms (sum x^2 of 1e4 + N(0,1e-2)) drift systematically,
 *    ~u*n, and fail this on long rows; that is an accuracy bug.
 * 1. The library's mean m^ is a float. Even a perfect sum rounds it once:
 *    |m^ - mu| <= u|mu|. Merging float partial means (Chan) in a tree rounds
 *    once more per level, about 0.5 u|mu| each, and summing x - (any element)
 *    instead of x keeps the rest proportional to sigma. So we allow
 *        dm = u * ((3 + log2(n)/4) |mu| + s_n sigma).
 *    This is the term that scales with |mu|/sigma: x - m^ loses dm in absolute
 *    terms however well it is computed, dm/sigma = O(u |mu|/sigma) in xhat
 *    units (0.36 on 1e4 + N(0,1e-2) with n = 4096, where |mu|/sigma = 1e6; the
 *    rounding of the mean alone is 0.06 and of x itself 0.05). A plain (unshifted) serial float
 *    sum loses ~u sqrt(n)|mu| and fails this on such data; E[x^2]-E[x]^2 loses
 *    ~u mu^2/sigma^2 in the *variance* (6e4 relative there) and fails it by
 *    orders of magnitude, which naive_formula_is_rejected checks.
 * 2. The variance is computed around m^: sum (x - m^)^2 / n = var + (mu - m^)^2,
 *    plus the rounding of the squares and the sum (s_n). Merging (count, mean,
 *    M2) partials (Chan et al.), which the split and strided paths must do,
 *    adds delta^2 n_a n_b / n with delta = mean_b - mean_a = O(sigma), whose
 *    float partial means carry O(dm) each: a first-order error 2 sigma dm in
 *    var. rstd = 1/sqrt(var+eps) halves relative errors but adds the sqrt and
 *    division (OpenCL allows a few ulp for each):
 *        er = u * s_n + (dm sigma + dm^2) / (var + eps)   (relative, rstd)
 * 3. y = (x - m^) * r^ * s + b:
 *        |dy| <= |s| * (|xhat| * (er + 4u) + dm * rstd) + 4u * (|y| + |b|)
 *    (the last term: rounding of the product and of the bias addition).
 * RMSNorm: no mean; er = u * s_n on mean(x^2) (positive terms):
 *        |dy| <= |s| * |x rstd| * (er + 4u) + 4u (|y| + |b|).
 * Inference with running statistics (the library may fold everything into one
 * multiply-add per channel, y = x*A + B with A = s r, B = b - rm A), which
 * cancels when |rm A| >> |y|:
 *        |dy| <= 8u * (|x A| + |rm A| + |b| + |y|).
 * Running statistics: (1 - m) rm + m * batch_mean has the error of batch_mean
 * times m, plus (8 + 2 log2 N) u of the operands (N = the instances averaged
 * for InstanceNorm); the running variance has m * |unbiased var| * ev, where
 * ev = 2u s_n + 2 dm/sigma + dm^2/var is the relative error of the variance itself (eps
 * does not damp it there).
 * Saved statistics: |mean^ - mu| <= dm, |rstd^ - rstd| <= er * rstd.
 *
 * Non-finite expectations are exact: expected NaN requires NaN, expected +-Inf
 * requires the same infinity. A finite expectation requires a finite value.
 */
#define U32 (1.0 / 16777216.0)

typedef struct setinfo {
    double mu, sigma2, msq, dm, er, ev, rstd;
    size_t count;
} setinfo;

static int is_row(const clnorm_desc *d) { return d->op == CLNORM_LAYER_NORM || d->op == CLNORM_RMS_NORM; }

static int uses_running(const clnorm_desc *d, const th_inputs *in)
{
    return (d->op == CLNORM_BATCH_NORM && !d->training) ||
           (d->op == CLNORM_INSTANCE_NORM && !d->training && in->running_mean);
}

static setinfo *set_stats(const clnorm_desc *d, const float *x)
{
    size_t E = ref_elements(d), sets = ref_sets(d), set, aff, ch;
    setinfo *si = calloc(sets, sizeof *si);
    if (!si)
        return NULL;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        si[set].mu += x[i];
        si[set].msq += (double)x[i] * x[i];
        si[set].count++;
    }
    for (size_t s = 0; s < sets; s++)
        si[s].mu /= (double)si[s].count;
    for (size_t i = 0; i < E; i++) {
        ref_locate(d, i, &set, &aff, &ch);
        double dv = x[i] - si[set].mu;
        si[set].sigma2 += dv * dv;
    }
    for (size_t s = 0; s < sets; s++) {
        setinfo *p = &si[s];
        double n = (double)p->count, sn = 8 + 2 * log2(n) + sqrt(n);
        p->sigma2 /= n;
        p->msq /= n;
        double eps = d->eps;
        if (d->op == CLNORM_RMS_NORM) {
            p->dm = 0;
            p->er = U32 * sn;
            p->rstd = 1.0 / sqrt(p->msq + eps);
        } else {
            double sg = sqrt(p->sigma2);
            p->dm = U32 * ((3 + 0.25 * log2(n)) * fabs(p->mu) + sn * sg);
            p->er = U32 * sn + (p->sigma2 + eps > 0 ? (p->dm * sg + p->dm * p->dm) / (p->sigma2 + eps) : 0);
            /* relative error of the variance itself (running_var): eps does not damp it */
            p->ev = 2 * U32 * sn + (p->sigma2 > 0 ? 2 * p->dm / sg + p->dm * p->dm / p->sigma2 : 0);
            /* SPEC.md: BatchNorm/InstanceNorm give rstd 0 where var + eps == 0 */
            int zero = (d->op == CLNORM_BATCH_NORM || d->op == CLNORM_INSTANCE_NORM) && p->sigma2 + eps == 0;
            p->rstd = zero ? 0.0 : 1.0 / sqrt(p->sigma2 + eps);
        }
    }
    return si;
}

static int close_enough(double expect, double got, double tol)
{
    if (isnan(expect))
        return isnan(got);
    if (isinf(expect))
        return got == expect;
    if (!isfinite(got))
        return 0;
    return fabs(got - expect) <= tol;
}

/* Per-element tolerance for y. */
static double tol_y(const clnorm_desc *d, const th_inputs *in, const setinfo *si, size_t i, double expect)
{
    size_t set, aff, ch;
    ref_locate(d, i, &set, &aff, &ch);
    double s = in->scale ? fabs((double)in->scale[aff]) : 1.0;
    double b = in->bias ? fabs((double)in->bias[aff]) : 0.0;
    double x = in->x[i];
    if (uses_running(d, in)) {
        double r = 1.0 / sqrt((double)in->running_var[ch] + (double)d->eps);
        double A = s * r;
        return 8 * U32 * (fabs(x * A) + fabs((double)in->running_mean[ch] * A) + b + fabs(expect)) + 1e-30;
    }
    const setinfo *p = &si[set];
    if (d->op == CLNORM_RMS_NORM)
        return s * fabs(x * p->rstd) * (p->er + 4 * U32) + 4 * U32 * (fabs(expect) + b) + 1e-30;
    double xhat = fabs((x - p->mu) * p->rstd);
    return s * (xhat * (p->er + 4 * U32) + p->dm * p->rstd) + 4 * U32 * (fabs(expect) + b) + 1e-30;
}

typedef struct mism {
    unsigned long n;
    int report;
} mism;

static void mismatch(mism *m, const char *what, size_t i, double expect, double got, double tol)
{
    m->n++;
    if (m->report && m->n <= 4)
        th_fail("%s[%zu]: expected %.9g, got %.9g (0x%08x), |diff| %.3g > tol %.3g", what, i, expect, got,
                th_bits((float)got), fabs(got - expect), tol);
}

unsigned long th_compare(const clnorm_desc *d, const th_inputs *in, const th_outputs *got, double tol_scale,
                         int report)
{
    mism m = {0, report};
    size_t E = ref_elements(d), sets = ref_sets(d), C = is_row(d) ? 0 : d->c;
    double *y = malloc(E * sizeof *y), *mean = malloc(sets * sizeof *mean), *rstd = malloc(sets * sizeof *rstd);
    double *rmo = malloc((C + 1) * sizeof *rmo), *rvo = malloc((C + 1) * sizeof *rvo);
    setinfo *si = NULL;
    if (!y || !mean || !rstd || !rmo || !rvo) {
        th_fail("out of host memory");
        m.n++;
        goto out;
    }
    int rr = ref_forward(d, in->x, in->scale, in->bias, in->running_mean, in->running_var, y, mean, rstd, rmo, rvo);
    if (rr != 0) {
        if (report)
            th_fail("reference rejects this descriptor (th_compare called on an invalid case)");
        m.n++;
        goto out;
    }
    int running_mode = uses_running(d, in);
    if (!running_mode) {
        si = set_stats(d, in->x);
        if (!si) {
            m.n++;
            goto out;
        }
    }
    if (got->y) {
        for (size_t i = 0; i < E; i++) {
            double t = tol_y(d, in, si, i, y[i]) * tol_scale;
            if (!close_enough(y[i], got->y[i], t))
                mismatch(&m, "y", i, y[i], got->y[i], t);
        }
    }
    if (!running_mode) {
        for (size_t s = 0; s < sets; s++) {
            if (got->mean && d->op != CLNORM_RMS_NORM) {
                double t = si[s].dm * tol_scale + 1e-30;
                if (!close_enough(mean[s], got->mean[s], t))
                    mismatch(&m, "mean", s, mean[s], got->mean[s], t);
            }
            if (got->rstd) {
                double t = si[s].er * fabs(rstd[s]) * tol_scale + 1e-30;
                if (!close_enough(rstd[s], got->rstd[s], t))
                    mismatch(&m, "rstd", s, rstd[s], got->rstd[s], t);
            }
        }
    }
    if (C && in->running_mean && in->running_var && d->op != CLNORM_GROUP_NORM) {
        double mom = d->momentum;
        for (size_t c = 0; c < C; c++) {
            double tm, tv;
            if (running_mode) {
                tm = tv = 0; /* must be copied unchanged */
            } else {
                /* aggregate the per-set budgets of the sets of channel c */
                double dm = 0, ev = 0, amu = 0, avar = 0, N = 1;
                size_t cnt;
                if (d->op == CLNORM_BATCH_NORM) {
                    dm = si[c].dm;
                    ev = si[c].ev;
                    amu = fabs(si[c].mu);
                    cnt = si[c].count;
                    avar = si[c].sigma2 * (double)cnt / (double)(cnt - 1);
                } else {
                    N = (double)d->n;
                    for (size_t n = 0; n < d->n; n++) {
                        const setinfo *p = &si[n * C + c];
                        dm = fmax(dm, p->dm);
                        ev = fmax(ev, p->ev);
                        amu = fmax(amu, fabs(p->mu));
                        avar = fmax(avar, p->sigma2 * (double)p->count / (double)(p->count - 1));
                    }
                }
                double k = (8 + 2 * log2(N)) * U32;
                tm = k * (fabs((double)in->running_mean[c]) + amu) + mom * dm;
                tv = k * (fabs((double)in->running_var[c]) + avar) + mom * avar * ev;
            }
            if (got->running_mean && !close_enough(rmo[c], got->running_mean[c], tm * tol_scale + 1e-30))
                mismatch(&m, "running_mean", c, rmo[c], got->running_mean[c], tm * tol_scale);
            if (got->running_var && !close_enough(rvo[c], got->running_var[c], tv * tol_scale + 1e-30))
                mismatch(&m, "running_var", c, rvo[c], got->running_var[c], tv * tol_scale);
        }
    }
    if (report && m.n > 4)
        th_fail("... %lu mismatches in all", m.n);
out:
    free(y);
    free(mean);
    free(rstd);
    free(rmo);
    free(rvo);
    free(si);
    return m.n;
}

unsigned long th_compare_y(const clnorm_desc *d, const th_inputs *in, const float *expected, const float *got,
                           size_t n, double tol_scale, int report)
{
    mism m = {0, report};
    int running_mode = uses_running(d, in);
    setinfo *si = running_mode ? NULL : set_stats(d, in->x);
    for (size_t i = 0; i < n; i++) {
        double t = 2 * tol_y(d, in, si, i, expected[i]) * tol_scale;
        if (!close_enough(expected[i], got[i], t))
            mismatch(&m, "y (a vs b)", i, expected[i], got[i], t);
    }
    if (report && m.n > 4)
        th_fail("... %lu mismatches in all", m.n);
    free(si);
    return m.n;
}

/* ------------------------------------------------------------------ */
/* case driver                                                         */
/* ------------------------------------------------------------------ */
static int training_op(const clnorm_desc *d)
{
    switch (d->op) {
    case CLNORM_LAYER_NORM:
    case CLNORM_RMS_NORM:
    case CLNORM_GROUP_NORM: return 1;
    default: return d->training;
    }
}

static const char *op_name(clnorm_op op)
{
    switch (op) {
    case CLNORM_LAYER_NORM: return "LN";
    case CLNORM_RMS_NORM: return "RMS";
    case CLNORM_BATCH_NORM: return "BN";
    case CLNORM_INSTANCE_NORM: return "IN";
    case CLNORM_GROUP_NORM: return "GN";
    }
    return "?";
}

int th_check_case(clnorm_ctx *ctx, const th_case *c)
{
    const clnorm_desc *d = &c->d;
    uint64_t seed = th_next_seed();
    th_rng r;
    th_rng_init(&r, seed);
    size_t E = ref_elements(d), sets = ref_sets(d), aff = ref_affine_len(d);
    size_t C = is_row(d) ? 1 : d->c;
    if (E == 0)
        E = 1;
    if (sets == 0)
        sets = (d->n * d->c) != 0 ? d->n * d->c : 1;
    int running = c->running > 0 || (c->running == 0 && d->op == CLNORM_BATCH_NORM);
    char shape[160];
    if (is_row(d))
        snprintf(shape, sizeof shape, "%s rows=%zu cols=%zu", op_name(d->op), d->rows, d->cols);
    else
        snprintf(shape, sizeof shape, "%s %s n=%zu c=%zu S=(%zu,%zu,%zu)[rank %u] G=%zu train=%d psa=%d mom=%g",
                 op_name(d->op), d->layout == CLNORM_CHANNELS_LAST ? "NHWC" : "NCHW", d->n, d->c,
                 d->rank > 0 ? d->spatial[0] : 0, d->rank > 1 ? d->spatial[1] : 0, d->rank > 2 ? d->spatial[2] : 0,
                 d->rank, d->groups, d->training, d->per_sample_affine, (double)d->momentum);
    char saved_case[512];
    snprintf(saved_case, sizeof saved_case, "%s", th_case_name());
    th_set_case("%s%s%s data=%s eps=%g scale=%d bias=%d stats=%d running=%d inplace=%d seed=%llu", saved_case,
                saved_case[0] ? " " : "", shape, th_kind_name(c->kind), (double)d->eps, c->scale, c->bias, c->stats,
                running, !!(c->flags & TH_IN_PLACE), (unsigned long long)seed);

    float *x = malloc(E * sizeof *x), *y = malloc(E * sizeof *y);
    float *scale = malloc(aff * sizeof *scale), *bias = malloc(aff * sizeof *bias);
    float *rm = malloc(C * sizeof *rm), *rv = malloc(C * sizeof *rv), *rmo = malloc(C * sizeof *rmo),
          *rvo = malloc(C * sizeof *rvo);
    float *mean = malloc(sets * sizeof *mean), *rstd = malloc(sets * sizeof *rstd);
    int fails = 0;
    if (!x || !y || !scale || !bias || !rm || !rv || !rmo || !rvo || !mean || !rstd) {
        th_fail("out of host memory");
        fails = 1;
        goto out;
    }
    th_fill(&r, d, c->kind, x);
    th_fill_normal(&r, scale, aff, 1.0, 0.5);
    th_fill_normal(&r, bias, aff, 0.0, 1.0);
    th_fill_normal(&r, rm, C, 0.0, 1.0);
    th_fill_uniform(&r, rv, C, 0.5, 2.0);
    if (c->kind == TH_OFFSET_1E4 || c->kind == TH_UNIFORM_1E4) /* running stats of the same magnitude */
        for (size_t i = 0; i < C; i++)
            rm[i] += c->kind == TH_OFFSET_1E4 ? 1e4f : 5e3f;

    th_inputs in = {x, c->scale ? scale : NULL, c->bias ? bias : NULL, running ? rm : NULL, running ? rv : NULL};
    int want_stats = c->stats && training_op(d);
    th_outputs out = {y, want_stats && d->op != CLNORM_RMS_NORM ? mean : NULL, want_stats ? rstd : NULL,
                      running ? rmo : NULL, running ? rvo : NULL};
    int expect_ok = ref_forward(d, x, in.scale, in.bias, in.running_mean, in.running_var, NULL, NULL, NULL, NULL,
                                NULL) == 0;
    int st = th_run(ctx, d, &in, &out, c->flags);
    if (st == TH_HARNESS_FAILED) {
        fails = 1;
    } else if (!expect_ok) {
        if (st == CLNORM_OK) {
            th_fail("expected a rejection, got CLNORM_OK");
            fails = 1;
        }
    } else if (st != CLNORM_OK) {
        th_fail("clnorm_forward: %d %s (%s)", st, clnorm_status_name(st), clnorm_last_error(ctx));
        fails = 1;
    } else if (th_compare(d, &in, &out, 1.0, 1) != 0) {
        fails = 1;
    }
out:
    th_set_case("%s", saved_case);
    free(x); free(y); free(scale); free(bias); free(rm); free(rv); free(rmo); free(rvo);
    free(mean); free(rstd);
    return fails;
}

/* ------------------------------------------------------------------ */
/* variants                                                            */
/* ------------------------------------------------------------------ */
const th_variant th_variants[] = {
    {CLNORM_VARIANT_AUTO, 0}, {CLNORM_VARIANT_WG, 0},    {CLNORM_VARIANT_SUBGROUP, 0}, {CLNORM_VARIANT_WI, 0},
    {CLNORM_VARIANT_SPLIT, 0}, {CLNORM_VARIANT_WG, 32},  {CLNORM_VARIANT_SPLIT, 64},
};
const size_t th_variant_count = sizeof th_variants / sizeof th_variants[0];

int th_variant_enabled(size_t i)
{
    const char *e = getenv("CLNORM_TEST_VARIANTS");
    if (!e || !*e)
        return 1;
    for (const char *p = e; *p;) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p)
            break;
        if (v == i)
            return 1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

const char *th_variant_str(th_variant v)
{
    static char buf[64];
    const char *n = clnorm_variant_name(v.v);
    if (v.wgs)
        snprintf(buf, sizeof buf, "%s/wg%zu", n ? n : "?", v.wgs);
    else
        snprintf(buf, sizeof buf, "%s", n ? n : "?");
    return buf;
}

int th_variant_select(clnorm_ctx *ctx, size_t vi)
{
    return th_variant_enabled(vi) && th_use_variant(ctx, th_variants[vi]) == 0;
}

int th_variant_next(clnorm_ctx *ctx, size_t *vi)
{
    while (++*vi < th_variant_count)
        if (th_variant_select(ctx, *vi))
            return 1;
    clnorm_set_variant(ctx, CLNORM_VARIANT_AUTO, 0);
    return 0;
}

int th_use_variant(clnorm_ctx *ctx, th_variant v)
{
    clnorm_status st = clnorm_set_variant(ctx, v.v, v.wgs);
    if (st != CLNORM_OK) {
        th_fail("clnorm_set_variant(%d, %zu): %s (%s)", (int)v.v, v.wgs, clnorm_status_name(st),
                clnorm_last_error(ctx));
        return -1;
    }
    return 0;
}
