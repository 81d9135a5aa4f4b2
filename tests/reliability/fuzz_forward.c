/*
 * libFuzzer harness for clnorm_forward and clnorm_backward on PoCL.
 *
 * The input bytes are decoded into a case of the tests' case model
 * (tests/case.h): an operation (valid or not), a small shape (occasionally a
 * huge or zero dimension), layout, which buffers, eps and
 * momentum (from tables including NaN, Inf and out-of-range values), buffer
 * offsets, which optional buffers exist, deliberate faults (a buffer one
 * element short, overlapping outputs, a wrong event wait list, buffers an
 * operation does not use) and the data (x = base + scale * int8 / 16, with
 * optional NaN/Inf). A direction byte after the header (bit 0) makes the
 * call clnorm_backward of the same descriptor, its bits 1-3 the gradients
 * asked for (dx, dscale, dbias; none = the default of th_case.grads); dy
 * comes from the data bytes too, the saved statistics from x
 * (th_saved_stats), and the fault byte selects the backward's own faults
 * (a buffer one short, dx partially over dy or over x, dbias over dscale, a
 * gradient inside an input, unsupported extras, missing statistics, no
 * gradient, ignored buffers that must not matter).
 *
 * Checks, per input:
 *   - no crash, no sanitizer report (the fuzz build uses ASan + UBSan);
 *   - a valid call (the reference accepts the descriptor, and none of the
 *     deliberate faults was applied) returns CLNORM_OK and matches
 *     ref_forward (ref_backward) within the harness's tolerances (tests/compare.c), with every guard zone
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
 *     the test suites cover it;
 *   - backward never reads momentum (nor running_var_biased): the reference
 *     is asked with a valid momentum.
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
/* Calls checked, [backward][accepted]: printed at exit (scripts/fuzz.sh shows the line). */
static unsigned long g_calls[2][2];

static void print_counts(void)
{
    fprintf(stderr, "fuzz: checked forward %lu accepted + %lu rejected, backward %lu accepted + %lu rejected\n",
            g_calls[0][1], g_calls[0][0], g_calls[1][1], g_calls[1][0]);
}

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
    atexit(print_counts);
    return 0;
}

typedef struct snapset {
    cl_mem m[TH_ROLES + 4];
    void *s[TH_ROLES + 4];
    size_t bytes[TH_ROLES + 4];
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

/* One decoded input. */
typedef struct input {
    th_case c;       /* the call as a case */
    clnorm_desc s;   /* its descriptor, with what a case does not hold: a rank of 12, a layout for rows */
    unsigned want;   /* the buffers the bytes ask for (TH_ROLE bits), before the ops' rules */
    size_t off;
    unsigned fault;  /* low 4 bits: kind (0..6); high: which buffer */
    unsigned evmode, special, special_pos;
    double base, sc; /* x = base + sc * int8 / 16 */
    uint64_t seed;
    unsigned dir;    /* bit 0: backward; bits 1-3: dx, dscale, dbias asked for */
    reader r;        /* the rest: the data */
} input;

/* Op, flags and layout: the first three bytes. */
static void decode_op(input *in, unsigned *lay)
{
    static const int ops[8] = {CLNORM_LAYER_NORM, CLNORM_RMS_NORM, CLNORM_BATCH_NORM, CLNORM_INSTANCE_NORM,
                               CLNORM_GROUP_NORM, CLNORM_BATCH_NORM, CLNORM_GROUP_NORM, 0};
    th_case *c = &in->c;
    unsigned b0 = rb(&in->r);
    th_case_init(c, (clnorm_op)(b0 == 255 ? 6 : ops[b0 % 8]));
    unsigned f = rb(&in->r);
    c->training = f & 1;
    in->want = ((f & 4) ? TH_ROLE(TH_SCALE) : 0) | ((f & 8) ? TH_ROLE(TH_BIAS) : 0) |
               ((f & 16) ? TH_ROLE(TH_MEAN) : 0) | ((f & 32) ? TH_ROLE(TH_RSTD) : 0) | ((f & 64) ? TH_RUNNING : 0);
    c->scale = (f & 4) != 0;
    c->bias = (f & 8) != 0;
    c->stats = (f & 48) != 0;
    c->omit = ((f & 16) ? 0 : TH_ROLE(TH_MEAN)) | ((f & 32) ? 0 : TH_ROLE(TH_RSTD));
    c->running = (f & 64) ? 1 : 0; /* 0: BatchNorm always has them, as the reference asks (see the top) */
    c->flags = (f & 128) ? TH_IN_PLACE : 0;
    *lay = rb(&in->r) % 16;
    c->layout = *lay < 8 ? CLNORM_CHANNELS_FIRST : *lay < 15 ? CLNORM_CHANNELS_LAST : (clnorm_layout)2;
    c->per_sample_affine = (f & 2) && (*lay & 1);
}

/* The shape; returns the rank (beyond 3: invalid, set on the descriptor). */
static unsigned decode_shape(input *in)
{
    th_case *c = &in->c;
    reader *r = &in->r;
    int op = c->op;
    if (op == CLNORM_LAYER_NORM || op == CLNORM_RMS_NORM || op == 0 || op == 6) {
        size_t rows = dim(rb(r)), cols = dim(rb(r));
        cols *= 1 + rb(r) % 8;
        c->ndim = op == 0 || op == 6 ? 3 : 2; /* invalid ops: rows x 3 x cols */
        c->shape[0] = rows;
        c->shape[1] = c->ndim == 3 ? 3 : cols;
        c->shape[2] = cols;
        return 1;
    }
    unsigned rk = rb(r) % 9, rank = rk < 8 ? rk % 4 : 4 + rk;
    c->shape[0] = dim(rb(r));
    c->shape[1] = dim(rb(r));
    for (unsigned k = 0; k < 3; k++) c->shape[2 + k] = dim(rb(r));
    c->ndim = 2 + (rank < 3 ? rank : 3);
    unsigned g = rb(r);
    c->groups = op == CLNORM_GROUP_NORM ? (g == 0 ? 0 : 1 + (g - 1) % 12) : 0;
    return rank;
}

static void decode(input *in, const uint8_t *data, size_t size)
{
    in->r = (reader){data, size, 0};
    unsigned lay, rank;
    decode_op(in, &lay);
    rank = decode_shape(in);
    unsigned em = rb(&in->r);
    in->c.eps = k_eps[em % 8];
    in->c.momentum = k_mom[(em >> 3) % 8];
    if ((em >> 6) == 3) in->c.training = !in->c.training;
    in->off = rb(&in->r) % 5;
    in->fault = rb(&in->r);
    in->evmode = rb(&in->r) % 16;
    unsigned dmode = rb(&in->r);
    static const double bases[4] = {0.0, 3.0, -2.0, 10.0}, scales[4] = {1.0, 0.25, 4.0, 1e-3};
    in->base = bases[dmode & 3], in->sc = scales[(dmode >> 2) & 3];
    in->special = rb(&in->r), in->special_pos = rb(&in->r);
    in->seed = rb(&in->r);
    in->dir = rb(&in->r);
    if (in->dir & 1) {
        /* The backward of the same descriptor: its statistics always passed
         * (the faults take them away), its gradients from bits 1-3. */
        in->c.backward = 1;
        in->c.omit = 0;
        in->c.grads = ((in->dir & 2) ? TH_ROLE(TH_DX) : 0) | ((in->dir & 4) ? TH_ROLE(TH_DSCALE) : 0) |
                      ((in->dir & 8) ? TH_ROLE(TH_DBIAS) : 0);
    }
    th_case_desc(&in->c, &in->s);
    in->s.layout = in->c.layout;
    if (rank > 3) in->s.rank = rank;
}

/* The wait list of the call; 1 when it is a malformed one. */
static int wait_list(unsigned evmode, cl_uint *nw, const cl_event **wl, cl_event *wait_ev)
{
    if (evmode == 0) *nw = 1;
    if (evmode == 1) *wl = wait_ev;
    if (evmode == 2) {
        TH_CL(clEnqueueMarkerWithWaitList(g_q, 0, NULL, wait_ev));
        *nw = 1, *wl = wait_ev;
    }
    return evmode < 2;
}

/* Invalid or too large to run: small buffers everywhere, must be rejected untouched. */
static void run_invalid_shape(const input *in, cl_uint nw, const cl_event *wl)
{
    cl_context c = clnorm_cl_context(g_ctx);
    cl_mem bufs[TH_ROLES];
    snapset ss = {0};
    for (int i = 0; i < TH_ROLES; i++) {
        bufs[i] = th_buffer(c, 64);
        float pat[64];
        for (int k = 0; k < 64; k++) pat[k] = (float)(k * 0.5 - 7);
        th_write(g_q, bufs[i], 0, 64, pat);
    }
    clnorm_desc d = in->s;
    d.x = (clnorm_buf){bufs[0], in->off};
    d.y = in->c.flags ? d.x : (clnorm_buf){bufs[1], in->off};
    for (int r = TH_SCALE; r <= TH_RSTD; r++)
        if (in->want & TH_ROLE(r)) *th_desc_buf(&d, r) = (clnorm_buf){bufs[r], 0};
    if ((in->want & TH_RUNNING) || d.op == CLNORM_BATCH_NORM) {
        d.running_mean = (clnorm_buf){bufs[6], 0};
        d.running_var = (clnorm_buf){bufs[7], 0};
    }
    if (in->c.backward) { /* x, dy, the gradients asked for (dx may be dy), scale, and the statistics */
        d.y = (clnorm_buf){NULL, 0};
        d.bias = (clnorm_buf){NULL, 0};
        d.dy = (clnorm_buf){bufs[TH_DY], in->off};
        const unsigned g = th_case_grads(&in->c);
        d.dx = in->c.flags ? d.dy : (clnorm_buf){bufs[TH_DX], in->off};
        if (g && !(g & TH_ROLE(TH_DX))) d.dx = (clnorm_buf){NULL, 0};
        if (g & TH_ROLE(TH_DSCALE)) d.dscale = (clnorm_buf){bufs[TH_DSCALE], 0};
        if (g & TH_ROLE(TH_DBIAS)) d.dbias = (clnorm_buf){bufs[TH_DBIAS], 0};
        d.mean = (clnorm_buf){bufs[TH_MEAN], 0};
        d.rstd = (clnorm_buf){bufs[TH_RSTD], 0};
    }
    for (int i = 0; i < TH_ROLES; i++) snap_add(&ss, bufs[i]);
    cl_event out_ev = NULL;
    clnorm_status st = in->c.backward ? clnorm_backward(g_ctx, &d, nw, wl, &out_ev)
                                      : clnorm_forward(g_ctx, &d, nw, wl, &out_ev);
    if (st == CLNORM_OK) fail("invalid/oversized shape accepted", &d, st);
    if (out_ev) fail("event returned on error", &d, st);
    if (!*clnorm_last_error(g_ctx)) fail("no message", &d, st);
    TH_CL(clFinish(g_q));
    if (!snap_same(&ss)) fail("rejected call changed a buffer", &d, st);
    for (int i = 0; i < TH_ROLES; i++) clReleaseMemObject(bufs[i]);
    g_calls[in->c.backward != 0][0]++;
}

/* A valid call: x from the remaining bytes, and a NaN or an infinity. */
static void set_data(const input *in, th_call *p)
{
    float *x = th_call_host(p, TH_X);
    const size_t ne = p->len[TH_X], rest = in->r.n - in->r.i;
    for (size_t i = 0; i < ne; i++) {
        int8_t v = rest ? (int8_t)in->r.p[in->r.i + i % rest] : 0;
        x[i] = (float)(in->base + in->sc * (double)v / 16.0);
    }
    if (in->special < 24)
        x[in->special_pos % ne] = in->special < 12 ? 0.0f / 0.0f : (in->special & 1 ? -1.0f : 1.0f) / 0.0f;
    if (p->backward) {
        /* dy from the bytes too (another walk through them), a NaN or an
         * infinity in it sometimes; the saved statistics of this x. */
        float *dy = th_call_host(p, TH_DY);
        for (size_t i = 0; i < ne; i++) {
            int8_t v = rest ? (int8_t)in->r.p[in->r.i + (i * 7 + 3) % rest] : 1;
            dy[i] = (float)((double)v / 16.0);
        }
        if (in->special >= 24 && in->special < 32)
            dy[(in->special_pos * 3) % ne] = in->special < 28 ? 0.0f / 0.0f : (in->special & 1 ? -1.0f : 1.0f) / 0.0f;
        th_saved_stats(&p->d, x, th_call_host(p, TH_MEAN), th_call_host(p, TH_RSTD));
    }
    th_call_reset(p, clnorm_queue(g_ctx));
}

/* A call's deliberate faults (d starts as p's descriptor). */
typedef struct faults {
    clnorm_desc d;
    cl_mem extra[4];
    int nextra, invalid, bias_is_scale, updates_running;
} faults;

/* A buffer of n floats that the call must not have: kept for the checks
 * and the release, and the call marked invalid. */
static clnorm_buf fault_buffer(faults *fs, size_t n)
{
    fs->extra[fs->nextra] = th_buffer(clnorm_cl_context(g_ctx), n);
    fs->invalid = 1;
    return (clnorm_buf){fs->extra[fs->nextra++], 0};
}

/* A backward call's faults (kinds 0 to 9 of the fault byte's low 4 bits). */
static void fault_bwd(faults *fs, const th_call *p, int use_running, unsigned fk, unsigned fw)
{
    clnorm_desc *d = &fs->d;
    const size_t ne = p->len[TH_X], na = p->len[TH_DSCALE];
    const int op = d->op, row = op == CLNORM_LAYER_NORM || op == CLNORM_RMS_NORM;
    if (fk == 0) { /* one buffer one element short, dscale and dbias included */
        const int r = (int)(fw % TH_ROLES);
        clnorm_buf *b = th_desc_buf(d, r);
        if (b->mem) {
            b->offset = th_mem_floats(b->mem) - p->len[r] + 1;
            fs->invalid = 1;
        }
    } else if (fk == 1 && d->dx.mem && ne > 1) { /* dx partially over dy */
        d->dx = (clnorm_buf){d->dy.mem, d->dy.offset + 1 + fw % (ne - 1 < 8 ? ne - 1 : 8)};
        fs->invalid = 1;
    } else if (fk == 2 && d->dx.mem) { /* dx over x, exactly or shifted */
        d->dx = (clnorm_buf){d->x.mem, d->x.offset + fw % (ne < 8 ? ne : 8)};
        fs->invalid = 1;
    } else if (fk == 3 && d->dscale.mem && d->dbias.mem) { /* dbias over dscale */
        d->dbias = (clnorm_buf){d->dscale.mem, d->dscale.offset + fw % (na < 8 ? na : 8)};
        fs->invalid = 1;
    } else if (fk == 4 && (d->dscale.mem || d->dbias.mem)) { /* a parameter gradient inside x or dy */
        clnorm_buf *g = d->dscale.mem ? &d->dscale : &d->dbias;
        const clnorm_buf in = (fw & 1) ? d->x : d->dy;
        const size_t sh = (fw >> 1) % 4;
        if (na + sh <= ne + TH_GUARD_AFTER && sh < ne) {
            *g = (clnorm_buf){in.mem, in.offset + sh};
            fs->invalid = 1;
        }
    } else if (fk == 5) { /* what the call cannot have: unsupported */
        if (row || op == CLNORM_GROUP_NORM) { /* running statistics */
            d->running_mean = fault_buffer(fs, 64);
            d->running_var = fault_buffer(fs, 64);
        } else if (use_running) { /* saved statistics with the running ones */
            *((fw & 1) ? &d->mean : &d->rstd) = fault_buffer(fs, 64 + p->len[TH_MEAN]);
        }
        if (op == CLNORM_RMS_NORM && (fw & 2)) { /* and a saved mean for RMSNorm */
            d->mean = fault_buffer(fs, 64 + p->len[TH_MEAN]);
        }
    } else if (fk == 6) { /* ignored buffers: y over dx or dy, bias over dscale (valid) */
        d->y = d->dx.mem ? d->dx : d->dy;
        d->bias = d->dscale.mem ? d->dscale : d->x;
    } else if (fk == 7) { /* the statistics taken away */
        if (!use_running && (d->mean.mem || d->rstd.mem)) {
            if (fw & 1 || op == CLNORM_RMS_NORM) d->rstd = (clnorm_buf){NULL, 0};
            else d->mean = (clnorm_buf){NULL, 0};
            fs->invalid = 1;
        } else if (use_running) {
            d->running_var = (clnorm_buf){NULL, 0};
            if (fw & 1) d->running_mean = (clnorm_buf){NULL, 0}; /* both: BatchNorm missing, InstanceNorm batch */
            fs->invalid = 1;
        }
    } else if (fk == 8) { /* no gradient asked for */
        d->dx = d->dscale = d->dbias = (clnorm_buf){NULL, 0};
        fs->invalid = 1;
    }
}

/* Buffers: one element short, overlaps, an input inside y (kinds 0 to 4). */
static void fault_buffers(faults *fs, const th_call *p, unsigned fk, unsigned fw)
{
    clnorm_desc *d = &fs->d;
    const size_t ne = p->len[TH_X], poff = p->b[TH_X].off;
    cl_mem mx = p->b[TH_X].mem, my = p->d.y.mem;
    if (fk == 0) { /* one buffer one element short */
        clnorm_buf *b = th_desc_buf(d, (int)(fw % 8));
        if (b->mem && !(fw % 8 < 2 && my == mx)) {
            b->offset = th_mem_floats(b->mem) - p->len[fw % 8] + 1;
            fs->invalid = 1;
        }
    } else if (fk == 1 && ne > 1) { /* y overlaps x (shifted by 1..min(8, ne-1)) */
        d->y = (clnorm_buf){mx, poff + 1 + fw % (ne - 1 < 8 ? ne - 1 : 8)};
        fs->invalid = 1;
    } else if (fk == 2 && d->mean.mem && d->rstd.mem) { /* rstd over mean */
        d->rstd = (clnorm_buf){d->mean.mem, d->mean.offset + fw % (p->len[TH_MEAN] < 8 ? p->len[TH_MEAN] : 8)};
        fs->invalid = 1;
    } else if (fk == 3 && d->scale.mem) { /* an input inside y */
        size_t sh = fw % (ne < 4 ? ne : 4);
        d->scale = (clnorm_buf){my, poff + sh};
        if (p->len[TH_SCALE] + sh <= ne + TH_GUARD_AFTER) fs->invalid = 1;
        else d->scale = p->d.scale;
    } else if (fk == 4 && d->running_mean.mem) { /* running_var over running_mean (training) or inside y */
        if (fs->updates_running) d->running_var = d->running_mean;
        else d->running_mean = (clnorm_buf){my, poff};
        fs->invalid = p->len[TH_RUNNING_MEAN] <= ne + TH_GUARD_AFTER;
        if (!fs->invalid) d->running_mean = p->d.running_mean, d->running_var = p->d.running_var;
    }
}

/* Buffers the operation does not use (kind 5, and RMSNorm with a mean), and
 * scale and bias the same input (kind 6: valid). */
static void fault_extra(faults *fs, const input *in, const th_call *p, int use_running, unsigned fk)
{
    clnorm_desc *d = &fs->d;
    const int op = d->op, row = op == CLNORM_LAYER_NORM || op == CLNORM_RMS_NORM;
    if (fk == 5 && (row || op == CLNORM_GROUP_NORM)) {
        d->running_mean = fault_buffer(fs, 64);
        d->running_var = fault_buffer(fs, 64);
    } else if (fk == 5 && use_running) {
        d->mean = fault_buffer(fs, 64 + p->len[TH_MEAN]);
    } else if (fk == 6 && d->scale.mem && d->bias.mem) {
        d->bias = d->scale;
        fs->bias_is_scale = 1;
    }
    if (op == CLNORM_RMS_NORM && (in->want & TH_ROLE(TH_MEAN))) { /* RMSNorm with a mean buffer */
        d->mean = fault_buffer(fs, 64 + p->len[TH_MEAN]);
    }
}

/* The call as made, checked: accepted and right when expect_ok, else
 * rejected with every buffer as it was. */
static void call_and_check(const faults *fs, th_call *p, const clnorm_desc *dref, int expect_ok, cl_uint nw,
                           const cl_event *wl)
{
    snapset ss = {0};
    const clnorm_desc *d = &fs->d;
    for (int r = 0; !expect_ok && r < TH_ROLES; r++) snap_add(&ss, p->b[r].mem);
    for (int i = 0; !expect_ok && i < fs->nextra; i++) snap_add(&ss, fs->extra[i]);
    cl_event out_ev = NULL;
    clnorm_status st = p->backward ? clnorm_backward(g_ctx, d, nw, wl, &out_ev)
                                   : clnorm_forward(g_ctx, d, nw, wl, &out_ev);
    if (expect_ok) {
        if (st != CLNORM_OK) fail("valid call rejected", d, st);
        if (!out_ev) fail("no event returned", d, st);
        TH_CL(clWaitForEvents(1, &out_ev));
        char why[512];
        th_call q = *p;
        q.d = *d;
        q.d.momentum = dref->momentum;
        if (fs->bias_is_scale) q.in.bias = q.in.scale;
        if (th_call_check(&q, g_ctx, why, sizeof why) != 0) {
            fprintf(stderr, "%s\n", why);
            fail("result differs from the reference", d, st);
        }
    } else {
        if (st == CLNORM_OK) fail("invalid call accepted", d, st);
        if (out_ev) fail("event returned on error", d, st);
        if (!*clnorm_last_error(g_ctx)) fail("no message", d, st);
        TH_CL(clFinish(g_q));
        if (!snap_same(&ss)) fail("rejected call changed a buffer", d, st);
    }
    if (out_ev) clReleaseEvent(out_ev);
    g_calls[p->backward != 0][expect_ok != 0]++;
}

/* A backward call after its faults: the reference's verdict on what is
 * passed (momentum valid: backward does not read it), then the call. */
static void run_bwd(const faults *fs, th_call *p, cl_uint nw, const cl_event *wl)
{
    const clnorm_desc *d = &fs->d;
    clnorm_desc dref = *d;
    dref.momentum = 0.1f;
    const size_t E = p->len[TH_X], A = p->len[TH_DSCALE], S = p->len[TH_MEAN];
    double *o = malloc((E + 2 * A + 2 * S) * sizeof *o);
    if (!o) abort();
    double *m = o + E + 2 * A, *r = m + S;
    const float *hm = th_call_host(p, TH_MEAN), *hr = th_call_host(p, TH_RSTD);
    for (size_t i = 0; i < S; i++) m[i] = hm[i], r[i] = hr[i];
    const th_bwd_inputs *bi = &p->bin;
    int ref_ok = ref_backward(&dref, bi->x, bi->dy, d->scale.mem ? bi->scale : NULL, d->mean.mem ? m : NULL,
                              d->rstd.mem ? r : NULL, d->running_mean.mem ? bi->running_mean : NULL,
                              d->running_var.mem ? bi->running_var : NULL, d->dx.mem ? o : NULL,
                              d->dscale.mem ? o + E : NULL, d->dbias.mem ? o + E + A : NULL) == 0;
    free(o);
    call_and_check(fs, p, &dref, ref_ok && !fs->invalid, nw, wl);
}

/* A shape that runs: the case on guarded buffers, the faults, the call. */
static void run_shape(const input *in, int harness_invalid, cl_uint nw, const cl_event *wl)
{
    th_call p;
    if (th_call_init(&p, g_ctx, &in->c, in->off, in->seed) != 0) abort();
    p.d.layout = in->s.layout; /* a row op's too, which its case does not hold */
    set_data(in, &p);
    faults fs = {.d = p.d, .invalid = harness_invalid};
    const int use_running = th_uses_running(&p.d, (p.roles & TH_RUNNING) != 0);
    fs.updates_running = !use_running && (p.roles & TH_RUNNING) && p.d.training && !p.backward;
    if (p.backward) {
        fault_bwd(&fs, &p, use_running, in->fault & 15, in->fault >> 4);
        run_bwd(&fs, &p, nw, wl);
        for (int i = 0; i < fs.nextra; i++) clReleaseMemObject(fs.extra[i]);
        th_call_free(&p);
        return;
    }
    fault_buffers(&fs, &p, in->fault & 15, in->fault >> 4);
    fault_extra(&fs, in, &p, use_running, in->fault & 15);
    /* The reference's verdict (momentum only matters where running stats are updated). */
    clnorm_desc dref = fs.d;
    if (!fs.updates_running) dref.momentum = 0.1f;
    int ref_ok = ref_forward(&dref, p.in.x, p.in.scale, p.in.bias, p.in.running_mean, p.in.running_var, NULL, NULL,
                             NULL, NULL, NULL) == 0;
    call_and_check(&fs, &p, &dref, ref_ok && !fs.invalid, nw, wl);
    for (int i = 0; i < fs.nextra; i++) clReleaseMemObject(fs.extra[i]);
    th_call_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_cur = data;
    g_cur_size = size;
    input in;
    decode(&in, data, size);
    const clnorm_desc *s = &in.s;
    size_t ne = ref_elements(s), sets = ref_sets(s);
    int shape_ok = ne > 0 && ne <= CAP && sets > 0 && (s->op != CLNORM_GROUP_NORM || s->groups > 0);
    cl_event wait_ev = NULL;
    cl_uint nw = 0;
    const cl_event *wl = NULL;
    int harness_invalid = wait_list(in.evmode, &nw, &wl, &wait_ev);
    if (!shape_ok)
        run_invalid_shape(&in, nw, wl);
    else
        run_shape(&in, harness_invalid, nw, wl);
    if (wait_ev) clReleaseEvent(wait_ev);
    return 0;
}
