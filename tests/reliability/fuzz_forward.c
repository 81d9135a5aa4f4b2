/*
 * libFuzzer harness for clnorm_forward on PoCL.
 *
 * The input bytes are decoded into an operation (valid or not), a small
 * shape (occasionally a huge or zero dimension), layout, flags, eps and
 * momentum (from tables including NaN, Inf and out-of-range values), buffer
 * offsets, which optional buffers exist, deliberate faults (a buffer one
 * element short, overlapping outputs, a wrong event wait list, buffers an
 * operation does not use) and the data (x = base + scale * int8 / 16, with
 * optional NaN/Inf).
 *
 * Checks, per input:
 *   - no crash, no sanitizer report (the fuzz build uses ASan + UBSan);
 *   - a valid call (the reference accepts the descriptor, and none of the
 *     deliberate faults was applied) returns CLNORM_OK and matches
 *     ref_forward within the harness's tolerances (tests/compare.c), with every guard zone
 *     and input untouched;
 *   - an invalid call returns a non-zero status, a message, no event, and
 *     every buffer byte-identical.
 * Any violation aborts (libFuzzer saves the input as a crash).
 *
 * Known library/contract differences accounted for (see the final report):
 *   - momentum is validated only where running statistics are updated, the
 *     reference always validates it: the reference is asked with a valid
 *     momentum where the operation does not use it;
 *   - BatchNorm training without running statistics is accepted (as in
 *     PyTorch); the reference rejects it, so it is not generated here and
 *     the test suites cover it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define CAP 6000 /* max elements of a call that is actually run */

static clnorm_ctx *g_ctx;
static cl_command_queue g_q;

typedef struct reader {
    const uint8_t *p;
    size_t n, i;
} reader;
static unsigned rb(reader *r) { return r->i < r->n ? r->p[r->i++] : 0; }

static size_t dim(unsigned b)
{
    if (b == 0) return 0;
    if (b == 255) return (size_t)1 << 40;
    if (b == 254) return ((size_t)1 << 32) + 1;
    return 1 + (b - 1) % 40;
}

static const uint8_t *g_cur;
static size_t g_cur_size;

static void fail(const char *what, const clnorm_desc *d, int st)
{
    /* Save the input ourselves: a check failure ends in abort(), which
     * libFuzzer does not always turn into a crash artifact here. */
    const char *dir = getenv("CLNORM_FUZZ_FAILURE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/clnorm-fuzz-failure-%d.bin", dir && *dir ? dir : ".", (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fwrite(g_cur, 1, g_cur_size, fp);
        fclose(fp);
        fprintf(stderr, "input saved to %s\n", path);
    }
    fprintf(stderr, "FUZZ CHECK FAILED: %s\n  op %d layout %d rows %zu cols %zu n %zu c %zu rank %u s %zu,%zu,%zu "
            "groups %zu training %d psa %d eps %g momentum %g status %s (%d) \"%s\"\n",
            what, d->op, d->layout, d->rows, d->cols, d->n, d->c, d->rank, d->spatial[0], d->spatial[1],
            d->spatial[2], d->groups, d->training, d->per_sample_affine, (double)d->eps, (double)d->momentum,
            clnorm_status_name(st), st, clnorm_last_error(g_ctx));
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (clnorm_create_default(&g_ctx) != CLNORM_OK) {
        fprintf(stderr, "clnorm_create_default failed\n");
        abort();
    }
    g_q = clnorm_queue(g_ctx);
    return 0;
}

typedef struct snapset {
    cl_mem m[12];
    void *s[12];
    size_t bytes[12];
    int n;
} snapset;
static void snap_add(snapset *ss, cl_mem m)
{
    if (!m) return;
    for (int i = 0; i < ss->n; i++)
        if (ss->m[i] == m) return;
    ss->m[ss->n] = m;
    ss->s[ss->n] = th_snapshot(g_q, m, &ss->bytes[ss->n]);
    ss->n++;
}
static int snap_same(snapset *ss)
{
    int same = 1;
    for (int i = 0; i < ss->n; i++) {
        same &= th_same_bytes(g_q, ss->m[i], ss->s[i], ss->bytes[i]);
        free(ss->s[i]);
    }
    ss->n = 0;
    return same;
}

static const float k_eps[8] = {1e-5f, 0.0f, 1e-3f, 1.0f, 0.1f, -1e-3f, 0.0f / 0.0f, 1.0f / 0.0f};
static const float k_mom[8] = {0.1f, 0.0f, 1.0f, 0.5f, -0.1f, 1.5f, 0.0f / 0.0f, 0.01f};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    g_cur = data;
    g_cur_size = size;
    clnorm_desc s;
    static const int ops[8] = {CLNORM_LAYER_NORM, CLNORM_RMS_NORM, CLNORM_BATCH_NORM, CLNORM_INSTANCE_NORM,
                               CLNORM_GROUP_NORM, CLNORM_BATCH_NORM, CLNORM_GROUP_NORM, 0};
    unsigned b0 = rb(&r);
    int op = ops[b0 % 8];
    if (b0 == 255) op = 6;
    clnorm_desc_init(&s, (clnorm_op)op);
    unsigned f = rb(&r);
    s.training = f & 1;
    unsigned fl = 0;
    if (f & 4) fl |= TH_ROLE(TH_SCALE);
    if (f & 8) fl |= TH_ROLE(TH_BIAS);
    if (f & 16) fl |= TH_ROLE(TH_MEAN);
    if (f & 32) fl |= TH_ROLE(TH_RSTD);
    if (f & 64) fl |= TH_RUNNING;
    const unsigned call_flags = (f & 128) ? TH_IN_PLACE : 0;
    unsigned lay = rb(&r) % 16;
    s.layout = lay < 8 ? CLNORM_CHANNELS_FIRST : lay < 15 ? CLNORM_CHANNELS_LAST : (clnorm_layout)2;
    s.per_sample_affine = (f & 2) && (lay & 1);
    if (op == CLNORM_LAYER_NORM || op == CLNORM_RMS_NORM || op == 0 || op == 6) {
        s.rows = dim(rb(&r));
        s.cols = dim(rb(&r)) * (1 + rb(&r) % 8);
        if (op == 0 || op == 6) s.n = s.rows, s.c = 3, s.rank = 1, s.spatial[0] = s.cols;
    } else {
        unsigned rk = rb(&r) % 9;
        s.rank = rk < 8 ? rk % 4 : 4 + rk;
        s.n = dim(rb(&r));
        s.c = dim(rb(&r));
        for (unsigned k = 0; k < 3; k++) {
            size_t v = dim(rb(&r));
            if (k < s.rank) s.spatial[k] = v;
        }
        unsigned g = rb(&r);
        s.groups = op == CLNORM_GROUP_NORM ? (g == 0 ? 0 : 1 + (g - 1) % 12) : 0;
    }
    unsigned em = rb(&r);
    s.eps = k_eps[em % 8];
    s.momentum = k_mom[(em >> 3) % 8];
    if ((em >> 6) == 3) s.training = !s.training;
    size_t off = rb(&r) % 5;
    unsigned fault = rb(&r);    /* low 4 bits: kind (0..5 faults); high: which buffer */
    unsigned evmode = rb(&r) % 16;
    unsigned dmode = rb(&r);
    static const double bases[4] = {0.0, 3.0, -2.0, 10.0}, scales[4] = {1.0, 0.25, 4.0, 1e-3};
    double base = bases[dmode & 3], sc = scales[(dmode >> 2) & 3];
    unsigned special = rb(&r), special_pos = rb(&r);
    uint64_t seed = rb(&r);

    size_t ne = ref_elements(&s), sets = ref_sets(&s);
    int shape_ok = ne > 0 && ne <= CAP && sets > 0 && (op != CLNORM_GROUP_NORM || s.groups > 0);
    int harness_invalid = 0;
    snapset ss = {0};
    cl_mem extra[4] = {0};
    int nextra = 0;
    cl_event wait_ev = NULL, out_ev = NULL;
    cl_uint nw = 0;
    const cl_event *wl = NULL;
    if (evmode == 0) nw = 1, harness_invalid = 1;
    if (evmode == 1) wl = &wait_ev, harness_invalid = 1;
    if (evmode == 2) {
        TH_CL(clEnqueueMarkerWithWaitList(g_q, 0, NULL, &wait_ev));
        nw = 1, wl = &wait_ev;
    }

    if (!shape_ok) {
        /* Invalid or too large to run: small buffers everywhere, must be rejected untouched. */
        cl_context c = clnorm_cl_context(g_ctx);
        cl_mem bufs[8];
        for (int i = 0; i < 8; i++) {
            bufs[i] = th_buffer(c, 64);
            float pat[64];
            for (int k = 0; k < 64; k++) pat[k] = (float)(k * 0.5 - 7);
            th_write(g_q, bufs[i], 0, 64, pat);
        }
        clnorm_desc d = s;
        d.x = (clnorm_buf){bufs[0], off};
        d.y = call_flags ? d.x : (clnorm_buf){bufs[1], off};
        if (fl & TH_ROLE(TH_SCALE)) d.scale = (clnorm_buf){bufs[2], 0};
        if (fl & TH_ROLE(TH_BIAS)) d.bias = (clnorm_buf){bufs[3], 0};
        if (fl & TH_ROLE(TH_MEAN)) d.mean = (clnorm_buf){bufs[4], 0};
        if (fl & TH_ROLE(TH_RSTD)) d.rstd = (clnorm_buf){bufs[5], 0};
        if ((fl & TH_RUNNING) || op == CLNORM_BATCH_NORM) {
            d.running_mean = (clnorm_buf){bufs[6], 0};
            d.running_var = (clnorm_buf){bufs[7], 0};
        }
        for (int i = 0; i < 8; i++) snap_add(&ss, bufs[i]);
        clnorm_status st = clnorm_forward(g_ctx, &d, nw, wl, &out_ev);
        if (st == CLNORM_OK) fail("invalid/oversized shape accepted", &d, st);
        if (out_ev) fail("event returned on error", &d, st);
        if (!*clnorm_last_error(g_ctx)) fail("no message", &d, st);
        TH_CL(clFinish(g_q));
        if (!snap_same(&ss)) fail("rejected call changed a buffer", &d, st);
        for (int i = 0; i < 8; i++) clReleaseMemObject(bufs[i]);
        if (wait_ev) clReleaseEvent(wait_ev);
        return 0;
    }

    th_call p;
    if (op == CLNORM_BATCH_NORM) fl |= TH_RUNNING; /* as the reference asks (see the top) */
    if (th_call_init(&p, g_ctx, &s, fl, call_flags, off, seed) != 0) abort();
    float *x = th_call_host(&p, TH_X);
    const size_t nsets = p.len[TH_MEAN], naff = p.len[TH_SCALE], nc = p.len[TH_RUNNING_MEAN];
    const size_t poff = p.b[TH_X].off;
    cl_mem mx = p.b[TH_X].mem, my = p.d.y.mem;
    /* Data from the remaining bytes. */
    size_t rest = r.n - r.i;
    for (size_t i = 0; i < ne; i++) {
        int8_t v = rest ? (int8_t)r.p[r.i + i % rest] : 0;
        x[i] = (float)(base + sc * (double)v / 16.0);
    }
    if (special < 24) x[special_pos % ne] = special < 12 ? 0.0f / 0.0f : (special & 1 ? -1.0f : 1.0f) / 0.0f;
    th_call_reset(&p, clnorm_queue(g_ctx));

    clnorm_desc d = p.d;
    const int row = op == CLNORM_LAYER_NORM || op == CLNORM_RMS_NORM;
    const int use_running = (op == CLNORM_BATCH_NORM && !s.training) ||
                            (op == CLNORM_INSTANCE_NORM && !s.training && (p.roles & TH_RUNNING));
    const int updates_running = !use_running && (p.roles & TH_RUNNING) && s.training;
    cl_context c = clnorm_cl_context(g_ctx);
    unsigned fk = fault & 15, fw = fault >> 4;
    int bias_is_scale = 0;
    switch (fk) {
    case 0: { /* one buffer one element short */
        clnorm_buf *bs[8] = {&d.x, &d.y, &d.scale, &d.bias, &d.mean, &d.rstd, &d.running_mean, &d.running_var};
        const size_t *ext = p.len;
        clnorm_buf *b = bs[fw % 8];
        if (b->mem && !(fw % 8 < 2 && my == mx)) {
            b->offset = th_mem_floats(b->mem) - ext[fw % 8] + 1;
            harness_invalid = 1;
        }
        break;
    }
    case 1: /* y overlaps x (shifted by 1..min(8, ne-1)) */
        if (ne > 1) {
            d.y = (clnorm_buf){mx, poff + 1 + fw % (ne - 1 < 8 ? ne - 1 : 8)};
            harness_invalid = 1;
        }
        break;
    case 2: /* rstd over mean */
        if (d.mean.mem && d.rstd.mem) {
            d.rstd = (clnorm_buf){d.mean.mem, d.mean.offset + fw % (nsets < 8 ? nsets : 8)};
            harness_invalid = 1;
        }
        break;
    case 3: /* an input inside y */
        if (d.scale.mem) {
            size_t sh = fw % (ne < 4 ? ne : 4);
            d.scale = (clnorm_buf){my, poff + sh};
            if (naff + sh <= ne + TH_GUARD_AFTER) harness_invalid = 1;
            else d.scale = p.d.scale;
        }
        break;
    case 4: /* running_var over running_mean (training) or inside y (inference) */
        if (d.running_mean.mem) {
            if (updates_running) d.running_var = d.running_mean;
            else d.running_mean = (clnorm_buf){my, poff};
            harness_invalid = nc <= ne + TH_GUARD_AFTER;
            if (!harness_invalid) d.running_mean = p.d.running_mean, d.running_var = p.d.running_var;
        }
        break;
    case 5: /* a buffer the operation does not use */
        if (row || op == CLNORM_GROUP_NORM) {
            extra[nextra] = th_buffer(c, 64);
            extra[nextra + 1] = th_buffer(c, 64);
            d.running_mean = (clnorm_buf){extra[nextra], 0};
            d.running_var = (clnorm_buf){extra[nextra + 1], 0};
            nextra += 2;
            harness_invalid = 1;
        } else if (use_running) {
            extra[nextra] = th_buffer(c, 64 + nsets);
            d.mean = (clnorm_buf){extra[nextra++], 0};
            harness_invalid = 1;
        }
        break;
    case 6: /* scale and bias the same input: valid */
        if (d.scale.mem && d.bias.mem) {
            d.bias = d.scale;
            bias_is_scale = 1;
        }
        break;
    default: break;
    }
    if (op == CLNORM_RMS_NORM && (f & 16)) { /* RMSNorm with a mean buffer */
        extra[nextra] = th_buffer(c, 64 + nsets);
        d.mean = (clnorm_buf){extra[nextra++], 0};
        harness_invalid = 1;
    }

    /* The reference's verdict (momentum only matters where running stats are updated). */
    clnorm_desc dref = d;
    if (!updates_running) dref.momentum = 0.1f;
    int ref_ok = ref_forward(&dref, p.in.x, p.in.scale, p.in.bias, p.in.running_mean, p.in.running_var, NULL, NULL,
                             NULL, NULL, NULL) == 0;
    int expect_ok = ref_ok && !harness_invalid;

    if (!expect_ok) {
        cl_mem all[] = {mx, my, p.b[TH_SCALE].mem, p.b[TH_BIAS].mem, p.b[TH_MEAN].mem, p.b[TH_RSTD].mem,
                        p.b[TH_RUNNING_MEAN].mem, p.b[TH_RUNNING_VAR].mem, extra[0], extra[1], extra[2]};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) snap_add(&ss, all[i]);
    }
    clnorm_status st = clnorm_forward(g_ctx, &d, nw, wl, &out_ev);
    if (expect_ok) {
        if (st != CLNORM_OK) fail("valid call rejected", &d, st);
        if (!out_ev) fail("no event returned", &d, st);
        TH_CL(clWaitForEvents(1, &out_ev));
        char why[512];
        th_call q = p;
        q.d = d;
        q.d.momentum = dref.momentum;
        if (bias_is_scale) q.in.bias = q.in.scale;
        if (th_call_check(&q, g_ctx, why, sizeof why) != 0) {
            fprintf(stderr, "%s\n", why);
            fail("result differs from the reference", &d, st);
        }
    } else {
        if (st == CLNORM_OK) {
            fprintf(stderr, "ref_ok %d harness_invalid %d (fault %u, evmode %u)\n", ref_ok, harness_invalid, fk,
                    evmode);
            fail("invalid call accepted", &d, st);
        }
        if (out_ev) fail("event returned on error", &d, st);
        if (!*clnorm_last_error(g_ctx)) fail("no message", &d, st);
        TH_CL(clFinish(g_q));
        if (!snap_same(&ss)) fail("rejected call changed a buffer", &d, st);
    }
    if (out_ev) clReleaseEvent(out_ev);
    if (wait_ev) clReleaseEvent(wait_ev);
    for (int i = 0; i < nextra; i++) clReleaseMemObject(extra[i]);
    th_call_free(&p);
    return 0;
}
