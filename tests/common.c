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

unsigned long th_end(void)
{
    unsigned long f = th_failures;
    th_failures = 0;
    return f;
}

uint64_t th_seed_base(void) { return g_seed_base; }

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

void th_gen_inputs(th_rng *r, const clnorm_desc *d, th_kind kind, float *x, float *scale, float *bias, float *rm,
                   float *rv)
{
    size_t len[TH_ROLES], most = 0;
    th_desc_lengths(d, len);
    for (int k = 0; k < TH_ROLES; k++)
        most = len[k] > most ? len[k] : most;
    float *tmp = malloc(most * sizeof *tmp);
    if (!tmp)
        th_die(__FILE__, __LINE__, "malloc", 0);
    /* Every draw is made even for an array not wanted, so that the rest
       come out the same whichever arrays a caller asks for. */
    th_fill(r, d, kind, x ? x : tmp);
    th_fill_normal(r, scale ? scale : tmp, len[TH_SCALE], 1.0, 0.5);
    th_fill_normal(r, bias ? bias : tmp, len[TH_BIAS], 0.0, 1.0);
    th_fill_normal(r, rm ? rm : tmp, len[TH_RUNNING_MEAN], 0.0, 1.0);
    th_fill_uniform(r, rv ? rv : tmp, len[TH_RUNNING_VAR], 0.5, 2.0);
    if (rm && (kind == TH_OFFSET_1E4 || kind == TH_UNIFORM_1E4)) /* running stats of the same magnitude */
        for (size_t i = 0; i < len[TH_RUNNING_MEAN]; i++)
            rm[i] += kind == TH_OFFSET_1E4 ? 1e4f : 5e3f;
    free(tmp);
}

/* ------------------------------------------------------------------ */
/* 16-bit storage types on the host (independent of the kernels)       */
/* ------------------------------------------------------------------ */
static uint16_t f16_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint32_t s = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(s | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(s | 0x7c00u); /* >= 65520 and Inf */
    if (a >= 0x38800000u) {                                /* normal */
        const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
        return (uint16_t)(s | ((r - 0x38000000u) >> 13));
    }
    /* subnormal: multiples of 2^-24, nearest even */
    const double v = (double)fabsf(f) * 16777216.0;
    double q = floor(v);
    if (v - q > 0.5 || (v - q == 0.5 && fmod(q, 2.0) != 0.0)) q += 1.0;
    return (uint16_t)(s | (uint32_t)q);
}
static float f16_to(uint16_t h)
{
    const int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000u) ? -v : v;
}
static uint16_t bf_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static float bf_to(uint16_t b)
{
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
uint16_t th_to16(clnorm_dtype t, float f) { return t == CLNORM_FLOAT16 ? f16_of(f) : bf_of(f); }
float th_from16(clnorm_dtype t, uint16_t h) { return t == CLNORM_FLOAT16 ? f16_to(h) : bf_to(h); }
void th_quantize(clnorm_dtype t, float *a, size_t n)
{
    if (t != CLNORM_FLOAT32)
        for (size_t i = 0; i < n; i++) a[i] = th_from16(t, th_to16(t, a[i]));
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

/* ------------------------------------------------------------------ */
/* labels                                                              */
/* ------------------------------------------------------------------ */
th_case th_case_of(const char *line)
{
    th_case c;
    char err[300];
    if (th_case_parse(&c, line, err, sizeof err) != 0) {
        fprintf(stderr, "th_case_of: %s\n", err);
        abort();
    }
    return c;
}

const char *th_desc_label(const clnorm_desc *d, char *buf, size_t len)
{
    th_case c;
    th_case_of_desc(&c, d);
    th_case_label(&c, buf, len);
    size_t used = strlen(buf);
    if (d->op != CLNORM_LAYER_NORM && d->op != CLNORM_RMS_NORM && used < len)
        snprintf(buf + used, len - used, "%s psa=%d mom=%g",
                 d->layout == CLNORM_CHANNELS_LAST && d->rank == 0 ? " nhwc" : "", d->per_sample_affine,
                 (double)d->momentum);
    return buf;
}

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */
long th_env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    return *end ? dflt : v;
}

void th_die(const char *file, int line, const char *what, int err)
{
    fprintf(stderr, "%s:%d: %s failed with %d\n", file, line, what, err);
    abort();
}

cl_mem th_buffer(cl_context c, size_t floats)
{
    cl_int e = CL_SUCCESS;
    cl_mem m = clCreateBuffer(c, CL_MEM_READ_WRITE, (floats ? floats : 1) * sizeof(float), NULL, &e);
    if (!m || e != CL_SUCCESS)
        th_die(__FILE__, __LINE__, "clCreateBuffer", e);
    return m;
}

void th_write(cl_command_queue q, cl_mem m, size_t first, size_t n, const float *src)
{
    if (n)
        TH_CL(clEnqueueWriteBuffer(q, m, CL_TRUE, first * sizeof(float), n * sizeof(float), src, 0, NULL, NULL));
}

size_t th_mem_floats(cl_mem m)
{
    size_t bytes = 0;
    TH_CL(clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof bytes, &bytes, NULL));
    return bytes / sizeof(float);
}

void *th_snapshot(cl_command_queue q, cl_mem m, size_t *bytes)
{
    TH_CL(clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof *bytes, bytes, NULL));
    void *p = malloc(*bytes);
    if (!p)
        th_die(__FILE__, __LINE__, "malloc", 0);
    TH_CL(clEnqueueReadBuffer(q, m, CL_TRUE, 0, *bytes, p, 0, NULL, NULL));
    return p;
}

int th_same_bytes(cl_command_queue q, cl_mem m, const void *snap, size_t bytes)
{
    void *p = malloc(bytes);
    if (!p)
        th_die(__FILE__, __LINE__, "malloc", 0);
    TH_CL(clEnqueueReadBuffer(q, m, CL_TRUE, 0, bytes, p, 0, NULL, NULL));
    int same = memcmp(p, snap, bytes) == 0;
    free(p);
    return same;
}

size_t th_test_offset(size_t def)
{
    const char *e = getenv("CLNORM_TEST_OFFSET");
    return e && *e ? (size_t)strtoul(e, NULL, 10) : def;
}
