/*
 * Fused residual add for LayerNorm and RMSNorm (clnorm_desc.residual,
 * h_out): y must be the reference norm of h = x + r (h rounded to float32 as
 * an unfused add: the reference takes the float sum), with the library's
 * tolerance model (th_compare); h_out must hold exactly x + r. On every
 * variant (the pipelined CPU rows, work-group, sub-group and split paths),
 * h_out separate, absent, or in place over x or r, y in place over x or r;
 * and the aliasing rules.
 */
#include "th_check.h"

#include <math.h>
#include <string.h>

#define OFF th_test_offset(3) /* 3: misaligned rows; the _stream reruns ask for 8 */
#define GUARD 5

static cl_mem put(const float *src, size_t n)
{
    clnorm_ctx *ctx = th_ctx();
    const size_t total = OFF + n + GUARD;
    float *h = malloc(total * sizeof *h);
    for (size_t i = 0; i < total; i++) h[i] = th_from_bits(TH_GUARD_BITS);
    for (size_t i = 0; i < n; i++) h[OFF + i] = src ? src[i] : th_from_bits(TH_POISON_BITS);
    cl_mem m = th_buffer(clnorm_cl_context(ctx), total);
    th_write(clnorm_queue(ctx), m, 0, total, h);
    free(h);
    return m;
}

static void get(cl_mem m, float *dst, size_t n, const char *name)
{
    const size_t total = OFF + n + GUARD;
    float *h = malloc(total * sizeof *h);
    TH_CL(clEnqueueReadBuffer(clnorm_queue(th_ctx()), m, CL_TRUE, 0, total * sizeof *h, h, 0, NULL, NULL));
    for (size_t i = 0; i < total; i++)
        if ((i < OFF || i >= OFF + n) && th_bits(h[i]) != TH_GUARD_BITS) {
            th_fail("%s: guard at %zu overwritten", name, i);
            break;
        }
    memcpy(dst, h + OFF, n * sizeof *h);
    free(h);
}

/* Where h goes and where y goes. */
enum { H_NONE, H_OWN, H_OVER_X, H_OVER_R };
enum { Y_OWN, Y_OVER_X, Y_OVER_R };

static void check(clnorm_op op, size_t rows, size_t cols, int hmode, int ymode, int affine, th_rng *r)
{
    clnorm_ctx *ctx = th_ctx();
    const size_t n = rows * cols;
    th_set_case("%s %zux%zu h %d y %d affine %d", op == CLNORM_RMS_NORM ? "rms" : "ln", rows, cols, hmode, ymode,
                affine);
    float *x = malloc(n * sizeof *x), *res = malloc(n * sizeof *res), *h = malloc(n * sizeof *h);
    float *y = malloc(n * sizeof *y), *hg = malloc(n * sizeof *hg), *sc = malloc(cols * sizeof *sc);
    float *bi = malloc(cols * sizeof *bi);
    th_fill_normal(r, x, n, 0.3, 1.0);
    th_fill_normal(r, res, n, -0.2, 2.0);
    th_fill_normal(r, sc, cols, 1.0, 0.5);
    th_fill_normal(r, bi, cols, 0.0, 1.0);
    for (size_t i = 0; i < n; i++) h[i] = x[i] + res[i]; /* the unfused add, in float */
    cl_mem mx = put(x, n), mr = put(res, n);
    cl_mem my = ymode == Y_OVER_X ? mx : ymode == Y_OVER_R ? mr : put(NULL, n);
    cl_mem mh = hmode == H_OWN ? put(NULL, n) : hmode == H_OVER_X ? mx : hmode == H_OVER_R ? mr : NULL;
    cl_mem ms = affine ? put(sc, cols) : NULL, mb = affine ? put(bi, cols) : NULL;
    clnorm_desc d;
    clnorm_desc_init(&d, op);
    d.rows = rows, d.cols = cols;
    d.x = (clnorm_buf){mx, OFF}, d.y = (clnorm_buf){my, OFF}, d.residual = (clnorm_buf){mr, OFF};
    d.h_out = (clnorm_buf){mh, OFF}, d.scale = (clnorm_buf){ms, OFF}, d.bias = (clnorm_buf){mb, OFF};
    clnorm_status st = clnorm_forward(ctx, &d, 0, NULL, NULL);
    TH_EXPECT(st == CLNORM_OK, "forward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
    if (st == CLNORM_OK) {
        get(my, y, n, "y");
        clnorm_desc shape = d; /* the reference of norm(h), h in float */
        th_inputs in = {h, affine ? sc : NULL, affine ? bi : NULL, NULL, NULL};
        th_outputs out = {y, NULL, NULL, NULL, NULL};
        th_compare(&shape, &in, &out, 1.0, 1);
        if (mh) {
            get(mh, hg, n, "h_out");
            TH_EXPECT(memcmp(hg, h, n * sizeof *h) == 0, "h_out is not x + r bit for bit");
        }
        if (ymode != Y_OVER_X && hmode != H_OVER_X) {
            get(mx, hg, n, "x");
            TH_EXPECT(memcmp(hg, x, n * sizeof *x) == 0, "x modified");
        }
        if (ymode != Y_OVER_R && hmode != H_OVER_R) {
            get(mr, hg, n, "residual");
            TH_EXPECT(memcmp(hg, res, n * sizeof *res) == 0, "residual modified");
        }
    }
    cl_mem all[] = {mx, mr, my, mh, ms, mb};
    for (int i = 0; i < 6; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= all[j] == all[i];
        if (all[i] && !dup) clReleaseMemObject(all[i]);
    }
    free(x), free(res), free(h), free(y), free(hg), free(sc), free(bi);
}

START_TEST(fused_add_matches_add_then_norm)
{
    th_begin();
    clnorm_ctx *ctx = th_ctx();
    th_rng r;
    th_rng_init(&r, th_next_seed());
    /* 2 x 600000: sets over a sixteenth of a 32 MiB cache, which the CPU
     * pipeline takes at lag 1 (in pieces); the others at lag 2. */
    const size_t shapes[][2] = {{1, 1}, {3, 7}, {64, 768}, {5, 4097}, {2, 70000}, {40, 1000}, {2, 600000}};
    unsigned rot = 0;
    TH_FOR_EACH_VARIANT(ctx, vi)
    {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int op = 0; op < 2; op++, rot++)
                for (int hy = 0; hy < 12; hy++) {
                    /* AUTO (the CPU pipeline here, which re-adds x and r
                     * where h is not kept): every placement of h and y;
                     * the other variants one each, in rotation. */
                    const int hmode = vi == 0 ? hy % 4 : (int)(rot % 4);
                    const int ymode = vi == 0 ? hy / 4 : (int)((rot / 4) % 3);
                    if (vi != 0 && hy) break;
                    /* the lag-1 shape: AUTO only, every other placement */
                    if (shapes[s][1] == 600000 && (vi != 0 || (hy + op) % 2)) continue;
                    if ((hmode == H_OVER_X && ymode == Y_OVER_X) || (hmode == H_OVER_R && ymode == Y_OVER_R))
                        continue; /* y and h_out on one buffer: rejected (below) */
                    check(op ? CLNORM_RMS_NORM : CLNORM_LAYER_NORM, shapes[s][0], shapes[s][1], hmode, ymode,
                          (int)((rot + (unsigned)hy) % 3 != 0), &r);
                }
    }
    th_finish();
}
END_TEST

START_TEST(fused_add_rejections)
{
    th_begin();
    clnorm_ctx *ctx = th_ctx();
    const size_t n = 4 * 16;
    cl_mem mx = put(NULL, n), mr = put(NULL, n), my = put(NULL, n), mh = put(NULL, n), big = put(NULL, 3 * n);
    clnorm_desc ok;
    clnorm_desc_init(&ok, CLNORM_RMS_NORM);
    ok.rows = 4, ok.cols = 16;
    ok.x = (clnorm_buf){mx, OFF}, ok.y = (clnorm_buf){my, OFF}, ok.residual = (clnorm_buf){mr, OFF};
    ok.h_out = (clnorm_buf){mh, OFF};
    th_reject cs[8];
    size_t k = 0;
#define CASE(w, st, ...) TH_REJECT(cs, k, ok, clnorm_desc, d, w, st, __VA_ARGS__)
    CASE("y == h_out", CLNORM_ERR_ALIASING, d->h_out = d->y);
    CASE("y and h_out both over x", CLNORM_ERR_ALIASING, d->h_out = d->x; d->y = d->x);
    CASE("h_out shifted over residual", CLNORM_ERR_ALIASING, d->h_out = (clnorm_buf){mr, OFF + 1});
    CASE("y overlapping h_out", CLNORM_ERR_ALIASING, d->y = (clnorm_buf){big, 0}; d->h_out = (clnorm_buf){big, n / 2});
    CASE("h_out without residual", CLNORM_ERR_MISSING_BUFFER, d->residual.mem = NULL);
    CASE("residual too small", CLNORM_ERR_BUFFER_TOO_SMALL, d->residual = (clnorm_buf){mr, OFF + GUARD + 1});
    CASE("residual on BatchNorm", CLNORM_ERR_UNSUPPORTED, d->op = CLNORM_BATCH_NORM; d->n = 4; d->c = 16;
         d->h_out.mem = NULL);
#undef CASE
    th_expect_rejections(ctx, cs, k);
    th_set_case("after rejections");
    float o[3 * 64];
    cl_mem outs[] = {my, mh};
    for (int b = 0; b < 2; b++) {
        get(outs[b], o, n, b ? "h_out" : "y");
        for (size_t i = 0; i < n; i++)
            if (th_bits(o[i]) != TH_POISON_BITS) {
                th_fail("%s[%zu] written by a rejected call", b ? "h_out" : "y", i);
                break;
            }
    }
    cl_mem all[] = {mx, mr, my, mh, big};
    for (int i = 0; i < 5; i++) clReleaseMemObject(all[i]);
    th_finish();
}
END_TEST

TH_MAIN("fused", 300, TH_TEST(fused_add_matches_add_then_norm), TH_TEST(fused_add_rejections))
