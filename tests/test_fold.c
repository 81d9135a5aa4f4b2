/*
 * BatchNorm folding (clnorm_fold_batch_norm): a convolution followed by
 * BatchNorm inference, in double precision here, must equal the convolution
 * with the folded weights and bias the device wrote; plain, grouped,
 * depthwise and 1x1 convolutions, with and without conv bias, BN scale and
 * bias, in place; and the rejections, which write nothing.
 */
#include "th_check.h"

#include <math.h>
#include <string.h>

#define OFF 5   /* payload offset in its buffer, in floats */
#define GUARD 7 /* guard floats after the payload */

/* A buffer holding n floats of src (or poison) at OFF, guards around. */
static cl_mem put(clnorm_ctx *ctx, const float *src, size_t n)
{
    cl_command_queue q = clnorm_queue(ctx);
    const size_t total = OFF + n + GUARD;
    float *h = malloc(total * sizeof *h);
    for (size_t i = 0; i < total; i++) h[i] = th_from_bits(TH_GUARD_BITS);
    for (size_t i = 0; i < n; i++) h[OFF + i] = src ? src[i] : th_from_bits(TH_POISON_BITS);
    cl_mem m = th_buffer(clnorm_cl_context(ctx), total);
    th_write(q, m, 0, total, h);
    free(h);
    return m;
}

/* Reads n floats at OFF into dst (may be NULL) and checks the guards. */
static void get(clnorm_ctx *ctx, cl_mem m, float *dst, size_t n, const char *name)
{
    const size_t total = OFF + n + GUARD;
    float *h = malloc(total * sizeof *h);
    TH_CL(clEnqueueReadBuffer(clnorm_queue(ctx), m, CL_TRUE, 0, total * sizeof *h, h, 0, NULL, NULL));
    for (size_t i = 0; i < total; i++)
        if ((i < OFF || i >= OFF + n) && th_bits(h[i]) != TH_GUARD_BITS) {
            th_fail("%s: guard at %zu overwritten", name, i);
            break;
        }
    if (dst) memcpy(dst, h + OFF, n * sizeof *h);
    free(h);
}

typedef struct conv {
    size_t n, cin, h, w, cout, groups, kh, kw, pad;
} conv;

/* y[n][o][i][j] = b[o] + sum over the group's input channels and the kernel
 * window (zero padding, stride 1) of x * W, in double. */
static void conv_ref(const conv *cv, const float *x, const double *W, const double *b, double *y)
{
    const size_t cg = cv->cin / cv->groups, og = cv->cout / cv->groups;
    const size_t oh = cv->h + 2 * cv->pad - cv->kh + 1, ow = cv->w + 2 * cv->pad - cv->kw + 1;
    for (size_t n = 0; n < cv->n; n++)
        for (size_t o = 0; o < cv->cout; o++)
            for (size_t i = 0; i < oh; i++)
                for (size_t j = 0; j < ow; j++) {
                    double s = b ? b[o] : 0.0;
                    const size_t g = o / og;
                    for (size_t c = 0; c < cg; c++)
                        for (size_t u = 0; u < cv->kh; u++)
                            for (size_t v = 0; v < cv->kw; v++) {
                                const long r = (long)(i + u) - (long)cv->pad, t = (long)(j + v) - (long)cv->pad;
                                if (r < 0 || t < 0 || r >= (long)cv->h || t >= (long)cv->w) continue;
                                s += (double)x[((n * cv->cin + g * cg + c) * cv->h + (size_t)r) * cv->w + (size_t)t] *
                                     W[((o * cg + c) * cv->kh + u) * cv->kw + v];
                            }
                    y[((n * cv->cout + o) * oh + i) * ow + j] = s;
                }
}

enum { F_CBIAS = 1, F_SCALE = 2, F_BIAS = 4, F_INPLACE = 8 };

/*
 * Tolerance. u = 2^-24, a float rounding's relative bound. The device's
 * multiplier a = scale * (1 / sqrt(var + eps)): var + eps 1u, sqrt up to 3
 * ulp (OpenCL 1.2's bound; 1 ulp = 2u near the value) 6u, the reciprocal
 * 2.5 ulp 5u, the product with scale 1u: 13u. W' = W * a adds 1u: 14u
 * relative per weight. b' = (b - mean) * a + bias: the difference 1u, a
 * 13u, the product 1u, the sum 1u of its result: within 16u of
 * |b - mean| |a| + |bias|. The convolution of the folded weights is summed
 * here in double from the stored W' and b', so its error is the sum of
 * theirs: |conv' - conv_then_bn| <= 14u sum|x W a| + 16u (|b - mean| |a| +
 * |bias|), below 20u of the sum of those magnitudes, which is the check.
 * (The double sums' own rounding is ~1e-16 relative, negligible.)
 */
#define FOLD_U (1.0 / 16777216.0)

static void check_conv(const conv *cv, unsigned flags, th_rng *r)
{
    clnorm_ctx *ctx = th_ctx();
    const size_t O = cv->cout, K = (cv->cin / cv->groups) * cv->kh * cv->kw, OK = O * K;
    th_set_case("conv %zux%zux%zux%zu -> %zu groups %zu k %zux%zu flags %u", cv->n, cv->cin, cv->h, cv->w, O,
                cv->groups, cv->kh, cv->kw, flags);
    const size_t xn = cv->n * cv->cin * cv->h * cv->w;
    float *x = malloc(xn * sizeof *x), *W = malloc(OK * sizeof *W), *Wf = malloc(OK * sizeof *Wf);
    float cb[256], sc[256], bi[256], rm[256], rv[256], bf[256];
    th_fill_normal(r, x, xn, 0.0, 1.0);
    th_fill_normal(r, W, OK, 0.0, 1.0 / sqrt((double)K));
    th_fill_normal(r, cb, O, 0.0, 0.5);
    th_fill_normal(r, sc, O, 1.0, 0.5);
    th_fill_normal(r, bi, O, 0.0, 1.0);
    th_fill_normal(r, rm, O, 0.0, 1.0);
    th_fill_uniform(r, rv, O, 0.05, 3.0);
    const float eps = 1e-3f;

    clnorm_fold_desc f;
    clnorm_fold_desc_init(&f);
    f.out_channels = O, f.per_channel = K, f.eps = eps;
    cl_mem mw = put(ctx, W, OK), mcb = flags & F_CBIAS ? put(ctx, cb, O) : NULL;
    cl_mem msc = flags & F_SCALE ? put(ctx, sc, O) : NULL, mbi = flags & F_BIAS ? put(ctx, bi, O) : NULL;
    cl_mem mrm = put(ctx, rm, O), mrv = put(ctx, rv, O);
    const int inplace = flags & F_INPLACE;
    cl_mem mwo = inplace ? mw : put(ctx, NULL, OK);
    cl_mem mbo = inplace && mcb ? mcb : put(ctx, NULL, O);
    f.weight = (clnorm_buf){mw, OFF}, f.conv_bias = (clnorm_buf){mcb, OFF};
    f.scale = (clnorm_buf){msc, OFF}, f.bias = (clnorm_buf){mbi, OFF};
    f.running_mean = (clnorm_buf){mrm, OFF}, f.running_var = (clnorm_buf){mrv, OFF};
    f.weight_out = (clnorm_buf){mwo, OFF}, f.bias_out = (clnorm_buf){mbo, OFF};
    cl_event ev = NULL;
    clnorm_status st = clnorm_fold_batch_norm(ctx, &f, 0, NULL, &ev);
    TH_EXPECT(st == CLNORM_OK, "fold: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
    if (ev) {
        clWaitForEvents(1, &ev);
        clReleaseEvent(ev);
    }
    get(ctx, mwo, Wf, OK, "weight_out");
    get(ctx, mbo, bf, O, "bias_out");
    if (!inplace) {
        float *back = malloc(OK * sizeof *back);
        get(ctx, mw, back, OK, "weight");
        TH_EXPECT(memcmp(back, W, OK * sizeof *W) == 0, "weight was modified");
        free(back);
    }

    /* conv then BatchNorm, and the conv of the folded parameters, in double */
    double *Wd = malloc(OK * sizeof *Wd), *Wfd = malloc(OK * sizeof *Wfd), bd[256], bfd[256], a[256];
    for (size_t o = 0; o < O; o++) {
        a[o] = (flags & F_SCALE ? sc[o] : 1.0) / sqrt((double)rv[o] + (double)eps);
        bd[o] = flags & F_CBIAS ? cb[o] : 0.0;
        bfd[o] = bf[o];
    }
    for (size_t i = 0; i < OK; i++) Wd[i] = W[i], Wfd[i] = Wf[i];
    const size_t oh = cv->h + 2 * cv->pad - cv->kh + 1, ow = cv->w + 2 * cv->pad - cv->kw + 1;
    const size_t yn = cv->n * O * oh * ow;
    double *y0 = malloc(yn * sizeof *y0), *y1 = malloc(yn * sizeof *y1), *mag = malloc(yn * sizeof *mag);
    double *Wabs = malloc(OK * sizeof *Wabs);
    float *xabs = malloc(xn * sizeof *xabs);
    for (size_t i = 0; i < xn; i++) xabs[i] = fabsf(x[i]);
    for (size_t i = 0; i < OK; i++) Wabs[i] = fabs(Wd[i] * a[i / K]);
    conv_ref(cv, x, Wd, bd, y0);
    conv_ref(cv, x, Wfd, bfd, y1);
    conv_ref(cv, xabs, Wabs, NULL, mag);
    unsigned long bad = 0;
    for (size_t i = 0; i < yn; i++) {
        const size_t o = (i / (oh * ow)) % O;
        const double bn = (y0[i] - rm[o]) * a[o] + (flags & F_BIAS ? bi[o] : 0.0);
        const double tol =
            20.0 * FOLD_U * (mag[i] + fabs((bd[o] - rm[o]) * a[o]) + (flags & F_BIAS ? fabs(bi[o]) : 0.0));
        if (!th_close(bn, y1[i], tol) && bad++ < 3)
            th_fail("output %zu (channel %zu): conv then BN %.9g, folded conv %.9g, tol %.3g", i, o, bn, y1[i], tol);
    }
    free(Wd), free(Wfd), free(y0), free(y1), free(mag), free(Wabs), free(xabs), free(x), free(W), free(Wf);
    cl_mem all[] = {mw, mcb, msc, mbi, mrm, mrv, mwo, mbo};
    for (int i = 0; i < 8; i++)
        if (all[i] && !(i == 6 && mwo == mw) && !(i == 7 && mbo == mcb)) clReleaseMemObject(all[i]);
}

START_TEST(fold_matches_conv_then_bn)
{
    th_begin();
    th_rng r;
    th_rng_init(&r, th_next_seed());
    const conv cs[] = {
        {2, 3, 7, 6, 8, 1, 3, 3, 1},    /* plain 3x3, padded */
        {2, 8, 5, 5, 16, 4, 3, 3, 1},   /* grouped */
        {2, 16, 6, 5, 16, 16, 3, 3, 1}, /* depthwise */
        {1, 64, 4, 4, 32, 1, 1, 1, 0},  /* 1x1 (pointwise) */
        {1, 32, 9, 9, 24, 2, 5, 5, 2},  /* 5x5 grouped: 400 weights per channel */
        {2, 5, 1, 11, 6, 1, 1, 3, 0},   /* a 1-D convolution (OIW) */
    };
    const unsigned fl[] = {F_CBIAS | F_SCALE | F_BIAS, 0, F_SCALE, F_CBIAS | F_BIAS,
                           F_CBIAS | F_SCALE | F_BIAS | F_INPLACE, F_SCALE | F_BIAS | F_INPLACE};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (size_t j = 0; j < sizeof fl / sizeof fl[0]; j++) check_conv(&cs[i], fl[j], &r);
    th_finish();
}
END_TEST

/* A zero variance with eps = 0 folds as BatchNorm inference normalizes:
 * rstd = +Inf (SPEC.md, running statistics), so weights become +-Inf or
 * NaN; the fold does not invent a rule of its own. Large K runs a row of
 * several work-groups per channel. */
START_TEST(fold_large_rows_and_specials)
{
    th_begin();
    clnorm_ctx *ctx = th_ctx();
    th_rng r;
    th_rng_init(&r, th_next_seed());
    const size_t O = 3, K = 4608 + 3; /* 512x3x3 and a tail */
    float *W = malloc(O * K * sizeof *W), *Wf = malloc(O * K * sizeof *Wf);
    th_fill_normal(&r, W, O * K, 0.0, 1.0);
    W[K] = 0.0f;
    const float rm[3] = {0.5f, -1.0f, 2.0f}, rv[3] = {2.0f, 0.0f, 1e-30f}, sc[3] = {-3.0f, 1.0f, 1.0f};
    cl_mem mw = put(ctx, W, O * K), mwo = put(ctx, NULL, O * K), mbo = put(ctx, NULL, O);
    cl_mem mrm = put(ctx, rm, O), mrv = put(ctx, rv, O), msc = put(ctx, sc, O);
    clnorm_fold_desc f;
    clnorm_fold_desc_init(&f);
    f.out_channels = O, f.per_channel = K, f.eps = 0.0f;
    f.weight = (clnorm_buf){mw, OFF}, f.weight_out = (clnorm_buf){mwo, OFF}, f.bias_out = (clnorm_buf){mbo, OFF};
    f.running_mean = (clnorm_buf){mrm, OFF}, f.running_var = (clnorm_buf){mrv, OFF}, f.scale = (clnorm_buf){msc, OFF};
    clnorm_status st = clnorm_fold_batch_norm(ctx, &f, 0, NULL, NULL);
    TH_EXPECT(st == CLNORM_OK, "fold: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
    float b[3];
    get(ctx, mwo, Wf, O * K, "weight_out");
    get(ctx, mbo, b, O, "bias_out");
    for (size_t o = 0; o < O; o++) {
        const double a = sc[o] / sqrt((double)rv[o]);
        for (size_t e = 0; e < K; e++) {
            const size_t i = o * K + e;
            const double want = W[i] == 0.0f && isinf(a) ? NAN : (double)W[i] * a;
            if (!th_close(want, Wf[i], 14.0 * FOLD_U * fabs(want))) {
                th_fail("W'[%zu][%zu] = %.9g, want %.9g", o, e, Wf[i], want);
                break;
            }
        }
        const double wb = -rm[o] * a;
        TH_EXPECT(th_close(wb, b[o], 16.0 * FOLD_U * fabs(wb)), "b'[%zu] = %.9g, want %.9g", o, b[o], wb);
    }
    free(W), free(Wf);
    cl_mem all[] = {mw, mwo, mbo, mrm, mrv, msc};
    for (int i = 0; i < 6; i++) clReleaseMemObject(all[i]);
    th_finish();
}
END_TEST

/* Each rejection: the status, a message, and no buffer written. */
START_TEST(fold_rejections)
{
    th_begin();
    clnorm_ctx *ctx = th_ctx();
    const size_t O = 4, K = 18;
    float W[72], v[4] = {1, 2, 3, 4};
    for (int i = 0; i < 72; i++) W[i] = (float)i;
    cl_mem mw = put(ctx, W, O * K), mwo = put(ctx, NULL, O * K), mbo = put(ctx, NULL, O);
    cl_mem mrm = put(ctx, v, O), mrv = put(ctx, v, O), big = put(ctx, NULL, 2 * O * K);
    clnorm_fold_desc ok;
    clnorm_fold_desc_init(&ok);
    ok.out_channels = O, ok.per_channel = K;
    ok.weight = (clnorm_buf){mw, OFF}, ok.weight_out = (clnorm_buf){mwo, OFF}, ok.bias_out = (clnorm_buf){mbo, OFF};
    ok.running_mean = (clnorm_buf){mrm, OFF}, ok.running_var = (clnorm_buf){mrv, OFF};
    TH_EXPECT(clnorm_fold_batch_norm(ctx, NULL, 0, NULL, NULL) == CLNORM_ERR_NULL_ARGUMENT, "NULL descriptor");
    TH_EXPECT(clnorm_fold_batch_norm(NULL, &ok, 0, NULL, NULL) == CLNORM_ERR_NULL_ARGUMENT, "NULL context");
    struct {
        const char *what;
        clnorm_status want;
        clnorm_fold_desc d;
    } cs[12];
    size_t n = 0;
#define CASE(w, st, ...) TH_REJECT(cs, n, ok, clnorm_fold_desc, f, w, st, __VA_ARGS__)
    CASE("zero channels", CLNORM_ERR_INVALID_SHAPE, f->out_channels = 0);
    CASE("zero weights per channel", CLNORM_ERR_INVALID_SHAPE, f->per_channel = 0);
    CASE("NaN eps", CLNORM_ERR_INVALID_EPS, f->eps = NAN);
    CASE("negative eps", CLNORM_ERR_INVALID_EPS, f->eps = -1e-5f);
    CASE("no weight_out", CLNORM_ERR_MISSING_BUFFER, f->weight_out.mem = NULL);
    CASE("no running_var", CLNORM_ERR_MISSING_BUFFER, f->running_var.mem = NULL);
    CASE("weight too small", CLNORM_ERR_BUFFER_TOO_SMALL, f->per_channel = K + 10);
    CASE("weight_out shifted over weight", CLNORM_ERR_ALIASING, f->weight_out = (clnorm_buf){mw, OFF + 1});
    CASE("bias_out over running_mean", CLNORM_ERR_ALIASING, f->bias_out = f->running_mean);
    CASE("bias_out inside weight_out", CLNORM_ERR_ALIASING, f->weight_out = (clnorm_buf){big, 0};
         f->bias_out = (clnorm_buf){big, O * K - 1});
    CASE("weight_out over scale", CLNORM_ERR_ALIASING, f->scale = (clnorm_buf){mwo, OFF + 3});
    CASE("absent conv_bias is no in-place target", CLNORM_ERR_ALIASING, f->bias_out = (clnorm_buf){mw, OFF});
#undef CASE
    for (size_t i = 0; i < n; i++) {
        th_set_case("%s", cs[i].what);
        cl_event ev = (cl_event)1;
        clnorm_status st = clnorm_fold_batch_norm(ctx, &cs[i].d, 0, NULL, &ev);
        TH_EXPECT(st == cs[i].want, "got %s, want %s", clnorm_status_name(st), clnorm_status_name(cs[i].want));
        TH_EXPECT(ev == NULL, "event set on a rejected call");
        TH_EXPECT(clnorm_last_error(ctx)[0] != 0, "no message");
    }
    th_set_case("after rejections");
    float o[72];
    get(ctx, mwo, o, O * K, "weight_out");
    for (size_t i = 0; i < O * K; i++)
        if (th_bits(o[i]) != TH_POISON_BITS) {
            th_fail("weight_out[%zu] written by a rejected call", i);
            break;
        }
    get(ctx, mbo, o, O, "bias_out");
    for (size_t i = 0; i < O; i++)
        TH_EXPECT(th_bits(o[i]) == TH_POISON_BITS, "bias_out[%zu] written by a rejected call", i);
    get(ctx, mw, o, O * K, "weight");
    TH_EXPECT(memcmp(o, W, sizeof W) == 0, "weight modified");
    cl_mem all[] = {mw, mwo, mbo, mrm, mrv, big};
    for (int i = 0; i < 6; i++) clReleaseMemObject(all[i]);
    th_finish();
}
END_TEST

TH_MAIN("fold", 120, TH_TEST(fold_matches_conv_then_bn), TH_TEST(fold_large_rows_and_specials),
        TH_TEST(fold_rejections))
