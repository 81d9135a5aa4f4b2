/*
 * The harness's one buffer scheme (see common.h): a call on guarded device
 * buffers (th_call), th_run on top of it, and the case driver.
 */
#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Failures of the buffer scheme: into why (the first), or th_fail. */
typedef struct sink {
    char *why;
    size_t len;
    unsigned long n;
} sink;

static void sink_fail(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sink_fail(sink *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->n++;
    if (!s->why)
        th_fail("%s", msg);
    else if (s->n == 1)
        snprintf(s->why, s->len, "%s", msg);
}

/* ------------------------------------------------------------------ */
/* guarded device buffers                                              */
/* ------------------------------------------------------------------ */
static th_rng g_hrng; /* harness rng: offsets and guard sizes */
static int g_hrng_init;

/* Offset and guard after of a buffer: fixed, or drawn (TH_RANDOM_PLACE). */
static void place(size_t fixed, unsigned flags, size_t *off, size_t *post)
{
    if (fixed != TH_RANDOM_PLACE) {
        *off = fixed;
        *post = TH_GUARD_AFTER;
        return;
    }
    if (!g_hrng_init) {
        th_rng_init(&g_hrng, th_next_seed() ^ 0xabcdefull);
        g_hrng_init = 1;
    }
    if (flags & TH_SMALL_OFFSETS)
        *off = 1 + th_rng_below(&g_hrng, 3);
    else if (th_rng_below(&g_hrng, 8) == 0)
        *off = 1000 + th_rng_below(&g_hrng, 64); /* sometimes far in */
    else
        *off = 1 + th_rng_below(&g_hrng, 40); /* never 0: offsets must be honoured */
    *post = 1 + th_rng_below(&g_hrng, 40);
}

static int gbuf_create(cl_context cl, th_gbuf *b, const char *name, size_t len, const float *payload, int is_input,
                       int is_output, size_t off, size_t post, sink *s)
{
    memset(b, 0, sizeof *b);
    b->name = name;
    b->off = off;
    b->len = len;
    b->total = off + len + post;
    b->is_input = is_input;
    b->is_output = is_output;
    b->init = malloc(b->total * sizeof(float));
    if (!b->init) {
        sink_fail(s, "out of host memory");
        return -1;
    }
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
        sink_fail(s, "clCreateBuffer(%s, %zu floats) failed: %d", name, b->total, err);
        b->mem = NULL;
        return -1;
    }
    return 0;
}

static void gbuf_free(th_gbuf *b)
{
    if (b->mem)
        clReleaseMemObject(b->mem);
    free(b->init);
    memset(b, 0, sizeof *b);
}

static void gbuf_report(const th_gbuf *b, const float *back, size_t i, sink *s)
{
    if (i >= b->off && i < b->off + b->len)
        sink_fail(s, "%s[%zu] modified: 0x%08x (%g) was 0x%08x (%g)%s", b->name, i - b->off, th_bits(back[i]),
                  back[i], th_bits(b->init[i]), b->init[i],
                  b->is_output ? " (output of a rejected call)" : " (input)");
    else
        sink_fail(s, "%s guard overwritten at %s%zu: 0x%08x (%g)", b->name, i < b->off ? "offset-" : "end+",
                  i < b->off ? b->off - i : i - b->off - b->len, th_bits(back[i]), back[i]);
}

/* Reads b back into back (total floats) and checks the guards and, for
 * pure inputs or when `untouched`, the whole payload. Returns the number of
 * problems (three reported at most). */
static unsigned long gbuf_check(cl_command_queue q, const th_gbuf *b, float *back, int untouched, sink *s)
{
    cl_int err = clEnqueueReadBuffer(q, b->mem, CL_TRUE, 0, b->total * sizeof(float), back, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        sink_fail(s, "clEnqueueReadBuffer(%s) failed: %d", b->name, err);
        return 1;
    }
    unsigned long bad = 0;
    for (size_t i = 0; i < b->total; i++) {
        int in_payload = i >= b->off && i < b->off + b->len;
        if (in_payload && !untouched)
            continue;
        if (th_bits(back[i]) != th_bits(b->init[i]) && bad++ < 3)
            gbuf_report(b, back, i, s);
    }
    return bad;
}

/* ------------------------------------------------------------------ */
/* a call on guarded buffers                                           */
/* ------------------------------------------------------------------ */
static const float *input_of(const th_call *k, int role)
{
    if (role < 0 || role >= TH_ROLES)
        return NULL;
    if (k->backward) {
        const th_bwd_inputs *in = &k->bin;
        const float *const ins[TH_ROLES] = {in->x,    NULL,     in->scale,        NULL,
                                            in->mean, in->rstd, in->running_mean, in->running_var,
                                            in->dy,   NULL,     NULL,             NULL};
        return ins[role];
    }
    const th_inputs *in = &k->in;
    const float *const ins[TH_ROLES] = {in->x, NULL, in->scale, in->bias, NULL, NULL, in->running_mean,
                                        in->running_var};
    return ins[role];
}

/* Where an output role is read back to: forward y (x in place), the saved
 * and running statistics; backward dx (dy in place), dscale, dbias. */
static float *output_of(const th_call *k, int role)
{
    if (role < 0 || role >= TH_ROLES)
        return NULL;
    if (k->backward) {
        const th_bwd_outputs *o = &k->bout;
        if (role == TH_DY)
            return k->in_place ? o->dx : NULL;
        return role == TH_DX ? o->dx : role == TH_DSCALE ? o->dscale : role == TH_DBIAS ? o->dbias : NULL;
    }
    const th_outputs *out = &k->out;
    float *const outs[TH_ROLES] = {k->in_place ? out->y : NULL, out->y, NULL, NULL, out->mean, out->rstd,
                                   out->running_mean, out->running_var};
    return outs[role];
}

/* Creates the guarded buffers of k->roles; k->d, in/out (or bin/bout),
 * in_place and backward are set. */
static int setup_buffers(th_call *k, cl_context cl, unsigned flags, size_t off, sink *s)
{
    const int alias = k->backward ? TH_DY : TH_X, aliased = k->backward ? TH_DX : TH_Y;
    th_desc_lengths(&k->d, k->len);
    for (int r = 0; r < TH_ROLES; r++) {
        *th_desc_buf(&k->d, r) = (clnorm_buf){NULL, 0};
        if (!(k->roles & TH_ROLE(r)) || (r == aliased && k->in_place))
            continue;
        size_t o, post;
        place(off, flags, &o, &post);
        const float *payload = input_of(k, r);
        int is_in = r == TH_X || r == TH_DY || payload != NULL;
        int is_out = r == alias ? k->in_place
                     : k->backward ? (TH_GRADS & TH_ROLE(r)) != 0
                                   : r != TH_SCALE && r != TH_BIAS;
        const char *name = r == alias && k->in_place ? (k->backward ? "dy(=dx)" : "x(=y)") : th_role_name(r);
        if (gbuf_create(cl, &k->b[r], name, k->len[r], payload, is_in, is_out, o, post, s) != 0) {
            th_call_free(k);
            return -1;
        }
        *th_desc_buf(&k->d, r) = (clnorm_buf){k->b[r].mem, k->b[r].off};
    }
    if (k->in_place)
        *th_desc_buf(&k->d, aliased) = *th_desc_buf(&k->d, alias);
    return 0;
}

int th_call_setup(th_call *k, cl_context cl, const clnorm_desc *shape, unsigned roles, unsigned flags, size_t off,
                  const th_inputs *in, const th_outputs *out, char *why, size_t len)
{
    sink s = {why, len, 0};
    memset(k, 0, sizeof *k);
    k->d = *shape;
    k->in_place = (flags & TH_IN_PLACE) != 0;
    k->roles = (roles | TH_XY) & ~TH_BACKWARD_ROLES;
    k->in = *in;
    k->out = *out;
    return setup_buffers(k, cl, flags, off, &s);
}

int th_call_setup_bwd(th_call *k, cl_context cl, const clnorm_desc *shape, unsigned roles, unsigned flags,
                      size_t off, const th_bwd_inputs *in, const th_bwd_outputs *out, char *why, size_t len)
{
    sink s = {why, len, 0};
    memset(k, 0, sizeof *k);
    k->d = *shape;
    k->backward = 1;
    k->in_place = (flags & TH_IN_PLACE) != 0;
    k->roles = (roles | TH_ROLE(TH_X) | TH_ROLE(TH_DY)) & ~(TH_ROLE(TH_Y) | TH_ROLE(TH_BIAS));
    if (k->in_place)
        k->roles |= TH_ROLE(TH_DX);
    k->bin = *in;
    k->bout = *out;
    return setup_buffers(k, cl, flags, off, &s);
}

/* The host arrays of a call: inputs x, scale, bias, running mean and
 * variance, then outputs y, mean, rstd, running mean and variance. */
typedef struct host {
    float *a[10];
} host;

/* Allocates h for d, generates the inputs from r (kind) and points in and
 * out at the arrays of the roles passed. */
static void host_init(host *h, th_rng *r, const clnorm_desc *d, th_kind kind, unsigned roles, th_inputs *in,
                      th_outputs *out)
{
    static const int role_of[10] = {TH_X, TH_SCALE, TH_BIAS, TH_RUNNING_MEAN, TH_RUNNING_VAR,
                                    TH_Y, TH_MEAN,  TH_RSTD, TH_RUNNING_MEAN, TH_RUNNING_VAR};
    size_t len[TH_ROLES];
    th_desc_lengths(d, len);
    for (int i = 0; i < 10; i++)
        if (!(h->a[i] = malloc(len[role_of[i]] * sizeof(float))))
            th_die(__FILE__, __LINE__, "malloc", 0);
    th_gen_inputs(r, d, kind, h->a[0], h->a[1], h->a[2], h->a[3], h->a[4]);
    float *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = (roles & TH_ROLE(role_of[i])) || i == 0 || i == 5 ? h->a[i] : NULL;
    *in = (th_inputs){p[0], p[1], p[2], p[3], p[4]};
    *out = (th_outputs){p[5], p[6], p[7], p[8], p[9]};
}

static void host_free(host *h)
{
    for (int i = 0; i < 10; i++)
        free(h->a[i]);
}

/* The host arrays of a backward call, slot by slot: inputs x, scale,
 * running mean and variance, dy, saved mean and rstd; outputs dx, dscale,
 * dbias. */
static const int bwd_role_of[10] = {TH_X,    TH_SCALE, TH_RUNNING_MEAN, TH_RUNNING_VAR, TH_DY,
                                    TH_MEAN, TH_RSTD,  TH_DX,           TH_DSCALE,      TH_DBIAS};

/* host_init for a backward call: the forward's inputs drawn as th_gen_inputs
 * does (bias drawn, not kept), then dy N(0, 1); the saved statistics of the
 * data (th_saved_stats), which a caller may replace by a forward's. */
static void host_init_bwd(host *h, th_rng *r, const clnorm_desc *d, th_kind kind, unsigned roles, int in_place,
                          th_bwd_inputs *in, th_bwd_outputs *out)
{
    size_t len[TH_ROLES];
    th_desc_lengths(d, len);
    for (int i = 0; i < 10; i++)
        if (!(h->a[i] = malloc(len[bwd_role_of[i]] * sizeof(float))))
            th_die(__FILE__, __LINE__, "malloc", 0);
    th_gen_inputs(r, d, kind, h->a[0], h->a[1], NULL, h->a[2], h->a[3]);
    th_fill_normal(r, h->a[4], len[TH_DY], 0.0, 1.0);
    th_saved_stats(d, h->a[0], h->a[5], h->a[6]);
    float *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = (roles & TH_ROLE(bwd_role_of[i])) || i == 0 || i == 4 || (i == 7 && in_place) ? h->a[i] : NULL;
    *in = (th_bwd_inputs){p[0], p[4], p[1], p[5], p[6], p[2], p[3]};
    *out = (th_bwd_outputs){p[7], p[8], p[9]};
}

int th_call_init(th_call *k, clnorm_ctx *ctx, const th_case *c, size_t off, uint64_t seed)
{
    memset(k, 0, sizeof *k);
    clnorm_desc shape;
    if (c->dtype != CLNORM_FLOAT32 || c->param_dtype != CLNORM_FLOAT32)
        return -1; /* the harness's buffers are float32; 16-bit storage: test_half.c */
    if (th_case_desc(c, &shape) != 0 || ref_elements(&shape) == 0 || ref_sets(&shape) == 0)
        return -1;
    host *h = calloc(1, sizeof *h);
    if (!h)
        th_die(__FILE__, __LINE__, "calloc", 0);
    th_rng r;
    th_rng_init(&r, seed);
    unsigned roles = th_case_roles(c);
    char why[512];
    int rc;
    if (c->backward) {
        th_bwd_inputs in;
        th_bwd_outputs out;
        host_init_bwd(h, &r, &shape, c->kind, roles, (c->flags & TH_IN_PLACE) != 0, &in, &out);
        rc = th_call_setup_bwd(k, clnorm_cl_context(ctx), &shape, roles, c->flags, off, &in, &out, why, sizeof why);
    } else {
        th_inputs in;
        th_outputs out;
        host_init(h, &r, &shape, c->kind, roles, &in, &out);
        rc = th_call_setup(k, clnorm_cl_context(ctx), &shape, roles, c->flags, off, &in, &out, why, sizeof why);
    }
    if (rc != 0)
        th_die(__FILE__, __LINE__, why, 0);
    k->owned = h;
    return 0;
}

void th_call_reset(th_call *k, cl_command_queue q)
{
    TH_CL(clFinish(q));
    for (int r = 0; r < TH_ROLES; r++) {
        th_gbuf *b = &k->b[r];
        if (!b->mem)
            continue;
        const float *payload = input_of(k, r);
        if (payload) /* the host copy may have changed since (the fuzzer's data) */
            memcpy(b->init + b->off, payload, b->len * sizeof(float));
        th_write(q, b->mem, 0, b->total, b->init);
    }
}

unsigned long th_call_readback(th_call *k, cl_command_queue q, int rejected, char *why, size_t len)
{
    sink s = {why, len, 0};
    unsigned long problems = 0;
    TH_CL(clFinish(q));
    for (int r = 0; r < TH_ROLES; r++) {
        const th_gbuf *b = &k->b[r];
        if (!b->mem)
            continue;
        float *back = malloc(b->total * sizeof *back);
        if (!back)
            th_die(__FILE__, __LINE__, "malloc", 0);
        unsigned long bad = gbuf_check(q, b, back, rejected || !b->is_output, &s);
        float *out = output_of(k, r);
        if (!bad && !rejected && out && b->is_output)
            memcpy(out, back + b->off, b->len * sizeof *out);
        problems += bad;
        free(back);
    }
    return problems;
}

int th_call_check(th_call *k, clnorm_ctx *ctx, char *why, size_t len)
{
    if (th_call_readback(k, clnorm_queue(ctx), 0, why, len) != 0)
        return -1;
    if (k->backward)
        return th_compare_bwd_why(&k->d, &k->bin, &k->bout, 1.0, why, len) == 0 ? 0 : -1;
    return th_compare_why(&k->d, &k->in, &k->out, 1.0, why, len) == 0 ? 0 : -1;
}

int th_call_run(th_call *k, clnorm_ctx *ctx, char *why, size_t len)
{
    clnorm_status st = k->backward ? clnorm_backward(ctx, &k->d, 0, NULL, NULL)
                                   : clnorm_forward(ctx, &k->d, 0, NULL, NULL);
    if (st != CLNORM_OK) {
        snprintf(why, len, "%s returned %s (%d): %s", k->backward ? "clnorm_backward" : "clnorm_forward",
                 clnorm_status_name(st), (int)st, clnorm_last_error(ctx));
        return (int)st;
    }
    return th_call_check(k, ctx, why, len) == 0 ? 0 : TH_MISMATCH;
}

float *th_call_host(th_call *k, int role)
{
    static const int slot[TH_ROLES] = {0, -1, 1, 2, -1, -1, 3, 4, -1, -1, -1, -1};
    static const int bwd_slot[TH_ROLES] = {0, -1, 1, -1, 5, 6, 2, 3, 4, -1, -1, -1}; /* bwd_role_of's inputs */
    host *h = k->owned;
    if (!h || role < 0 || role >= TH_ROLES)
        return NULL;
    int i = k->backward ? bwd_slot[role] : slot[role];
    return i >= 0 ? h->a[i] : NULL;
}

void th_call_free(th_call *k)
{
    for (int r = 0; r < TH_ROLES; r++)
        gbuf_free(&k->b[r]);
    if (k->owned)
        host_free(k->owned);
    free(k->owned);
    memset(k, 0, sizeof *k);
}

/* ------------------------------------------------------------------ */
/* th_run                                                              */
/* ------------------------------------------------------------------ */
/* The roles of a call given host arrays: which ones are there. */
static unsigned roles_of_io(const th_inputs *in, const th_outputs *out)
{
    unsigned r = TH_XY;
    r |= in->scale ? TH_ROLE(TH_SCALE) : 0;
    r |= in->bias ? TH_ROLE(TH_BIAS) : 0;
    r |= out->mean ? TH_ROLE(TH_MEAN) : 0;
    r |= out->rstd ? TH_ROLE(TH_RSTD) : 0;
    r |= in->running_mean ? TH_ROLE(TH_RUNNING_MEAN) : 0;
    r |= in->running_var ? TH_ROLE(TH_RUNNING_VAR) : 0;
    return r;
}

/* clnorm_forward on k, with or without an event, waited for. */
static int forward_waited(clnorm_ctx *ctx, const th_call *k, unsigned flags)
{
    cl_event ev = NULL;
    int st = clnorm_forward(ctx, &k->d, 0, NULL, (flags & TH_NO_EVENT) ? NULL : &ev);
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
    if (st != CLNORM_OK && ev)
        th_fail("clnorm_forward failed (%d) but set an event", st);
    if (ev)
        clReleaseEvent(ev);
    clFinish(clnorm_queue(ctx));
    return st;
}

int th_run(clnorm_ctx *ctx, const clnorm_desc *shape, const th_inputs *in, th_outputs *out, unsigned flags)
{
    th_call k;
    th_outputs o = *out;
    if (!in->running_mean)
        o.running_mean = NULL;
    if (!in->running_var)
        o.running_var = NULL;
    if (th_call_setup(&k, clnorm_cl_context(ctx), shape, roles_of_io(in, out), flags, TH_RANDOM_PLACE, in, &o, NULL,
                      0) != 0)
        return TH_HARNESS_FAILED;
    th_cases++;
    int st = forward_waited(ctx, &k, flags);
    unsigned long problems = th_call_readback(&k, clnorm_queue(ctx), st != CLNORM_OK, NULL, 0);
    th_call_free(&k);
    return problems ? TH_HARNESS_FAILED : st;
}

int th_run_ok(clnorm_ctx *ctx, const clnorm_desc *d, const th_inputs *in, th_outputs *out, unsigned flags,
              int compare)
{
    int st = th_run(ctx, d, in, out, flags);
    if (st != CLNORM_OK && st != TH_HARNESS_FAILED)
        th_fail("clnorm_forward: %d %s (%s)", st, clnorm_status_name(st), clnorm_last_error(ctx));
    if (st == CLNORM_OK && compare)
        th_compare(d, in, out, 1.0, 1);
    return st;
}

/* The roles of a backward call given host arrays. */
static unsigned roles_of_bwd(const th_bwd_inputs *in, const th_bwd_outputs *out)
{
    unsigned r = TH_ROLE(TH_X) | TH_ROLE(TH_DY);
    r |= in->scale ? TH_ROLE(TH_SCALE) : 0;
    r |= in->mean ? TH_ROLE(TH_MEAN) : 0;
    r |= in->rstd ? TH_ROLE(TH_RSTD) : 0;
    r |= in->running_mean ? TH_ROLE(TH_RUNNING_MEAN) : 0;
    r |= in->running_var ? TH_ROLE(TH_RUNNING_VAR) : 0;
    r |= out->dx ? TH_ROLE(TH_DX) : 0;
    r |= out->dscale ? TH_ROLE(TH_DSCALE) : 0;
    r |= out->dbias ? TH_ROLE(TH_DBIAS) : 0;
    return r;
}

/* clnorm_backward on k, with or without an event, waited for. */
static int backward_waited(clnorm_ctx *ctx, const th_call *k, unsigned flags)
{
    cl_event ev = NULL;
    int st = clnorm_backward(ctx, &k->d, 0, NULL, (flags & TH_NO_EVENT) ? NULL : &ev);
    if (st == CLNORM_OK && !(flags & TH_NO_EVENT)) {
        cl_int es = 0, err = ev ? clWaitForEvents(1, &ev) : CL_INVALID_EVENT;
        if (ev)
            clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof es, &es, NULL);
        if (err != CL_SUCCESS || es != CL_COMPLETE)
            th_fail("event of clnorm_backward: %s, wait %d, status %d", ev ? "set" : "missing", err, es);
    }
    if (st != CLNORM_OK && ev)
        th_fail("clnorm_backward failed (%d) but set an event", st);
    if (ev)
        clReleaseEvent(ev);
    clFinish(clnorm_queue(ctx));
    return st;
}

int th_run_bwd(clnorm_ctx *ctx, const clnorm_desc *shape, const th_bwd_inputs *in, th_bwd_outputs *out,
               unsigned flags)
{
    th_call k;
    if (th_call_setup_bwd(&k, clnorm_cl_context(ctx), shape, roles_of_bwd(in, out), flags, TH_RANDOM_PLACE, in,
                          out, NULL, 0) != 0)
        return TH_HARNESS_FAILED;
    th_cases++;
    int st = backward_waited(ctx, &k, flags);
    unsigned long problems = th_call_readback(&k, clnorm_queue(ctx), st != CLNORM_OK, NULL, 0);
    th_call_free(&k);
    return problems ? TH_HARNESS_FAILED : st;
}

/* ------------------------------------------------------------------ */
/* case driver                                                         */
/* ------------------------------------------------------------------ */
/* The case's line for failure messages. */
static void case_label(const th_case *c, const clnorm_desc *d, unsigned roles, uint64_t seed)
{
    char shape[160], saved[512];
    th_desc_label(d, shape, sizeof shape);
    snprintf(saved, sizeof saved, "%s", th_case_name());
    char grads[40] = "";
    if (c->backward)
        snprintf(grads, sizeof grads, " bwd dx=%d dscale=%d dbias=%d", (roles & TH_ROLE(TH_DX)) != 0,
                 (roles & TH_ROLE(TH_DSCALE)) != 0, (roles & TH_ROLE(TH_DBIAS)) != 0);
    th_set_case("%s%s%s%s data=%s eps=%g scale=%d bias=%d stats=%d running=%d inplace=%d seed=%llu", saved,
                saved[0] ? " " : "", shape, grads, th_kind_name(c->kind), (double)d->eps, c->scale, c->bias,
                c->stats, (roles & TH_RUNNING) != 0, !!(c->flags & TH_IN_PLACE), (unsigned long long)seed);
}

/* The verdict on a run of d: 0 = pass. */
static int judge(clnorm_ctx *ctx, const clnorm_desc *d, const th_inputs *in, const th_outputs *out, int st)
{
    int expect_ok = ref_forward(d, in->x, in->scale, in->bias, in->running_mean, in->running_var, NULL, NULL, NULL,
                                NULL, NULL) == 0;
    if (st == TH_HARNESS_FAILED)
        return 1;
    if (!expect_ok) {
        if (st == CLNORM_OK)
            th_fail("expected a rejection, got CLNORM_OK");
        return st == CLNORM_OK;
    }
    if (st != CLNORM_OK) {
        th_fail("clnorm_forward: %d %s (%s)", st, clnorm_status_name(st), clnorm_last_error(ctx));
        return 1;
    }
    return th_compare(d, in, out, 1.0, 1) != 0;
}

/* The saved statistics of a backward case from a library forward of the
 * same x (y discarded), over the ones th_saved_stats put there; a rejected
 * forward leaves those (the backward must be rejected too). */
static void forward_stats(clnorm_ctx *ctx, const clnorm_desc *d, const th_bwd_inputs *bin, float *mean, float *rstd)
{
    size_t E = ref_elements(d);
    float *y = malloc((E ? E : 1) * sizeof *y);
    if (!y)
        th_die(__FILE__, __LINE__, "malloc", 0);
    clnorm_desc f = *d;
    if (f.op == CLNORM_INSTANCE_NORM && !bin->running_mean)
        f.training = 1; /* the batch statistics an inference InstanceNorm without running ones uses */
    th_inputs in = {bin->x, bin->scale, NULL, NULL, NULL};
    th_outputs out = {y, f.op == CLNORM_RMS_NORM ? NULL : mean, rstd, NULL, NULL};
    (void)th_run(ctx, &f, &in, &out, 0);
    free(y);
}

/* The verdict on a backward run of d: 0 = pass. */
static int judge_bwd(clnorm_ctx *ctx, const clnorm_desc *d, const th_bwd_inputs *in, const th_bwd_outputs *out,
                     int st)
{
    size_t E = ref_elements(d) + 1, A = ref_affine_len(d) + 1, sets = ref_sets(d) + 1;
    double *dx = malloc(E * sizeof *dx), *ds = malloc(A * sizeof *ds), *db = malloc(A * sizeof *db);
    double *m = malloc(sets * sizeof *m), *r = malloc(sets * sizeof *r);
    if (!dx || !ds || !db || !m || !r)
        th_die(__FILE__, __LINE__, "malloc", 0);
    for (size_t s = 0; s + 1 < sets; s++) {
        m[s] = in->mean ? in->mean[s] : 0;
        r[s] = in->rstd ? in->rstd[s] : 0;
    }
    int expect_ok = ref_backward(d, in->x, in->dy, in->scale, in->mean ? m : NULL, in->rstd ? r : NULL,
                                 in->running_mean, in->running_var, out->dx ? dx : NULL, out->dscale ? ds : NULL,
                                 out->dbias ? db : NULL) == 0;
    free(dx), free(ds), free(db), free(m), free(r);
    if (st == TH_HARNESS_FAILED)
        return 1;
    if (!expect_ok) {
        if (st == CLNORM_OK)
            th_fail("expected a rejection, got CLNORM_OK");
        return st == CLNORM_OK;
    }
    if (st != CLNORM_OK) {
        th_fail("clnorm_backward: %d %s (%s)", st, clnorm_status_name(st), clnorm_last_error(ctx));
        return 1;
    }
    return th_compare_bwd(d, in, out, 1.0, 1) != 0;
}

static int check_case_bwd(clnorm_ctx *ctx, const th_case *c, const clnorm_desc *d, th_rng *r)
{
    unsigned roles = th_case_roles(c);
    host h;
    th_bwd_inputs in;
    th_bwd_outputs out;
    int in_place = (c->flags & TH_IN_PLACE) != 0;
    host_init_bwd(&h, r, d, c->kind, roles, in_place, &in, &out);
    if (ref_backward_uses_batch(d, in.running_mean != NULL))
        forward_stats(ctx, d, &in, h.a[5], h.a[6]);
    if (in_place)
        memcpy(h.a[7], in.dy, ref_elements(d) * sizeof(float)); /* dx starts as dy: what the device holds */
    int fails = judge_bwd(ctx, d, &in, &out, th_run_bwd(ctx, d, &in, &out, c->flags));
    host_free(&h);
    return fails;
}

int th_check_case(clnorm_ctx *ctx, const th_case *c)
{
    clnorm_desc d;
    if (th_case_desc(c, &d) != 0) {
        th_fail("a case without a shape for its op");
        return 1;
    }
    if (c->dtype != CLNORM_FLOAT32 || c->param_dtype != CLNORM_FLOAT32) {
        th_fail("a 16-bit case in the float32 harness (test_half.c has the 16-bit buffers)");
        return 1;
    }
    if (c->backward) {
        uint64_t seed = th_next_seed();
        th_rng r;
        th_rng_init(&r, seed);
        char saved[512];
        snprintf(saved, sizeof saved, "%s", th_case_name());
        case_label(c, &d, th_case_roles(c), seed);
        int fails = check_case_bwd(ctx, c, &d, &r);
        th_set_case("%s", saved);
        return fails;
    }
    uint64_t seed = th_next_seed();
    th_rng r;
    th_rng_init(&r, seed);
    unsigned roles = th_case_roles(c);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", th_case_name());
    case_label(c, &d, roles, seed);
    host h;
    th_inputs in;
    th_outputs out;
    host_init(&h, &r, &d, c->kind, roles, &in, &out);
    int fails = judge(ctx, &d, &in, &out, th_run(ctx, &d, &in, &out, c->flags));
    th_set_case("%s", saved);
    host_free(&h);
    return fails;
}

static void nan_inf_cases(clnorm_ctx *ctx, const th_case *cases, size_t n, const float *eps, size_t rot)
{
    for (size_t i = 0; i < n; i++) {
        th_case c = cases[i];
        c.kind = TH_NANINF;
        if (eps)
            c.eps = eps[(i + rot) % 3];
        th_check_case(ctx, &c);
    }
}

void th_nan_inf_isolation(clnorm_ctx *ctx, const th_case *cases, size_t n, int all_variants, const float *eps)
{
    if (!all_variants) {
        nan_inf_cases(ctx, cases, n, eps, 0);
        return;
    }
    TH_FOR_EACH_VARIANT(ctx, vi) {
        th_set_case("variant=%s", th_variant_str(th_variants[vi]));
        nan_inf_cases(ctx, cases, n, eps, vi);
    }
    th_set_case("%s", "");
}
