/*
 * clnorm_forward and clnorm_backward: validate, plan, execute. The executor decides nothing: it
 * reserves the plan's scratch, binds each launch's buffer sources to the
 * call's buffers or the scratch, sets the arguments in the order the kernel
 * table gives (kernels.h) and chains the launches on the context's queue.
 */
#include "internal.h"

#include <string.h>

/* The launches of one operation. The first waits on the caller's list; on
 * an out-of-order queue each waits on the one before. */
typedef struct chain {
    clnorm_ctx *c;
    const clnorm_desc *d;
    cl_mem record; /* CLNORM_SRC_RECORD: the BatchNorm split's record, or NULL */
    cl_mem scratch[CLNORM_SCRATCH_COUNT];
    cl_uint nwait;
    const cl_event *wait;
    cl_event last;
    int want_event; /* the caller asked for the operation's event */
    int launched;   /* a kernel of this operation has been enqueued */
} chain;

/* Scratch buffers grow to the largest request and are reused; a context's
 * operations are ordered on its queue, so reuse is safe. */
static int reserve(clnorm_ctx *c, const clnorm_plan *p, cl_mem out[CLNORM_SCRATCH_COUNT])
{
    for (int i = 0; i < CLNORM_SCRATCH_COUNT; ++i) {
        out[i] = NULL;
        size_t bytes = p->scratch_floats[i] * 4;
        if (!bytes) continue;
        if (bytes > c->scratch_bytes[i]) {
            cl_int err;
            cl_mem m = clCreateBuffer(c->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
            if (!m) return clnorm_cl_fail(c, err ? err : CL_MEM_OBJECT_ALLOCATION_FAILURE, "clCreateBuffer (scratch)");
            if (c->scratch[i]) clReleaseMemObject(c->scratch[i]);
            c->scratch[i] = m;
            c->scratch_bytes[i] = bytes;
        }
        out[i] = c->scratch[i];
    }
    return CLNORM_OK;
}

static cl_mem bind(const chain *ch, clnorm_src s)
{
    const clnorm_desc *d = ch->d;
    switch (s) {
    case CLNORM_SRC_X: return d->x.mem;
    case CLNORM_SRC_Y: return d->y.mem;
    case CLNORM_SRC_SCALE: return d->scale.mem;
    case CLNORM_SRC_BIAS: return d->bias.mem;
    case CLNORM_SRC_MEAN: return d->mean.mem;
    case CLNORM_SRC_RSTD: return d->rstd.mem;
    case CLNORM_SRC_RMEAN: return d->running_mean.mem;
    case CLNORM_SRC_RVAR: return d->running_var.mem;
    case CLNORM_SRC_PART: return ch->scratch[0];
    case CLNORM_SRC_STATS: return ch->scratch[1];
    case CLNORM_SRC_TABLE: return ch->scratch[2];
    case CLNORM_SRC_DY: return d->dy.mem;
    case CLNORM_SRC_DX: return d->dx.mem;
    case CLNORM_SRC_DSCALE: return d->dscale.mem;
    case CLNORM_SRC_DBIAS: return d->dbias.mem;
    case CLNORM_SRC_RECORD: return ch->record;
    case CLNORM_SRC_RES: return d->residual.mem;
    case CLNORM_SRC_HOUT: return d->h_out.mem;
    default: return NULL;
    }
}

/* One setter per kernel, from the table: arguments in signature order, each
 * with its own type's size. */
#define CLNORM_SET_MEM(v) (m_ = bind(ch, (v)), clSetKernelArg(k, i_++, sizeof m_, &m_))
#define CLNORM_SET_ULONG(v) clSetKernelArg(k, i_++, sizeof(cl_ulong), &(v))
#define CLNORM_SET_UINT(v) clSetKernelArg(k, i_++, sizeof(cl_uint), &(v))
#define CLNORM_SET_FLOAT(v) clSetKernelArg(k, i_++, sizeof(cl_float), &(v))
#define CLNORM_X_SET(type, field)                                                                        \
    if (err == CL_SUCCESS) err = CLNORM_SET_##type(a->field);
#define CLNORM_X_SETTER(name)                                                                            \
    static cl_int set_##name(const chain *ch, cl_kernel k, const clnorm_args_##name *a)                 \
    {                                                                                                    \
        cl_int err = CL_SUCCESS;                                                                         \
        cl_uint i_ = 0;                                                                                  \
        cl_mem m_;                                                                                       \
        (void)m_;                                                                                        \
        CLNORM_ARGS_##name(CLNORM_X_SET) return err;                                                     \
    }
CLNORM_KERNEL_LIST(CLNORM_X_SETTER)

static cl_int set_args(const chain *ch, cl_kernel k, const clnorm_launch *L)
{
    switch (L->kernel) {
#define CLNORM_X_CASE(name)                                                                              \
    case CLNORM_KID_##name: return set_##name(ch, k, &L->args.name);
        CLNORM_KERNEL_LIST(CLNORM_X_CASE)
#undef CLNORM_X_CASE
    default: return CL_INVALID_KERNEL;
    }
}

static int launch(chain *ch, const clnorm_launch *L)
{
    cl_kernel k;
    int st = clnorm_get_kernel(ch->c, &L->prog, L->kernel, &k);
    if (st != CLNORM_OK) return st;
    cl_int err = set_args(ch, k, L);
    if (err != CL_SUCCESS) return clnorm_cl_fail(ch->c, err, "clSetKernelArg");
    cl_uint nw = 0;
    const cl_event *wl = NULL;
    if (ch->last && ch->c->out_of_order)
        nw = 1, wl = &ch->last; /* the previous launch, or the opening barrier */
    else if (!ch->launched)
        nw = ch->nwait, wl = ch->wait;
    /* Events only where they are used: to chain launches on an out-of-order
     * queue, or for the caller. An in-order queue orders the launches by
     * itself, so a caller that wants no event gets no driver allocations. */
    cl_event ev = NULL;
    cl_event *evp = (ch->c->out_of_order || ch->want_event) ? &ev : NULL;
    err = clEnqueueNDRangeKernel(ch->c->queue, k, L->dims, NULL, L->global, L->local, nw, wl, evp);
    if (err != CL_SUCCESS) return clnorm_cl_fail(ch->c, err, "clEnqueueNDRangeKernel");
    if (ch->last) clReleaseEvent(ch->last);
    ch->last = ev;
    ch->launched = 1;
    return CLNORM_OK;
}

static int execute(chain *ch, const clnorm_plan *p)
{
    int st = reserve(ch->c, p, ch->scratch);
    if (st != CLNORM_OK) return st;
    if (ch->c->out_of_order) {
        /* Order against earlier operations (they share the scratch). */
        cl_event b = NULL;
        cl_int err = clEnqueueBarrierWithWaitList(ch->c->queue, ch->nwait, ch->wait, &b);
        if (err != CL_SUCCESS) return clnorm_cl_fail(ch->c, err, "clEnqueueBarrierWithWaitList");
        ch->last = b;
    }
    for (unsigned i = 0; i < p->n && st == CLNORM_OK; ++i)
        st = launch(ch, &p->launch[i]);
    return st;
}

/* The settings of this call: the user's forced ones, else a tuning entry's
 * for the call's key, else none (the rules decide). */
clnorm_settings clnorm_call_settings(const clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s)
{
    clnorm_settings set = c->settings;
    if (c->ntuned && set.variant == CLNORM_VARIANT_AUTO && !set.wg) {
        char key[CLNORM_TUNING_KEY_MAX];
        clnorm_tuning_key_of(d, s, key, sizeof key);
        const clnorm_tuned *t = clnorm_tuning_find(c, key);
        if (t) set.variant = t->variant, set.wg = t->wg;
    }
    return set;
}

int clnorm_execute(clnorm_ctx *c, const clnorm_desc *d, cl_mem record, const clnorm_plan *p, cl_uint num_wait,
                   const cl_event *wait_list, cl_event *event)
{
    chain ch = {c, d, record, {NULL, NULL, NULL}, num_wait, wait_list, NULL, event != NULL, 0};
    int st = execute(&ch, p);
    if (st == CLNORM_OK && event) {
        *event = ch.last;
        ch.last = NULL;
    }
    if (ch.last) clReleaseEvent(ch.last);
    return st;
}

clnorm_status clnorm_call_begin(clnorm_ctx *c, const void *desc, cl_uint num_wait, const cl_event *wait_list,
                                cl_event *event)
{
    pthread_mutex_lock(&c->lock);
    clnorm_clear_error(c);
    if (event) *event = NULL;
    if (!desc) return clnorm_fail(c, CLNORM_ERR_NULL_ARGUMENT, "descriptor is NULL");
    if ((num_wait > 0) != (wait_list != NULL))
        return clnorm_fail(c, CLNORM_ERR_INVALID_EVENTS, "num_wait %u with %s wait list", num_wait,
                           wait_list ? "a" : "no");
    return CLNORM_OK;
}

/* One call in either direction: validate, plan, execute. */
static clnorm_status run_call(clnorm_ctx *c, const clnorm_desc *d, int backward, cl_uint num_wait,
                              const cl_event *wait_list, cl_event *event)
{
    if (!c) return CLNORM_ERR_NULL_ARGUMENT;
    clnorm_shape s;
    clnorm_plan plan; /* about 6 KiB */
    int st = clnorm_call_begin(c, d, num_wait, wait_list, event);
    if (st != CLNORM_OK) goto done;
    if ((st = clnorm_describe(c, d, &s)) != CLNORM_OK ||
        (st = backward ? clnorm_validate_backward(c, d, &s) : clnorm_validate(c, d, &s)) != CLNORM_OK)
        goto done;
    const clnorm_settings set = clnorm_call_settings(c, d, &s);
    st = backward ? clnorm_plan_backward(&c->dev, &set, d, &s, &plan) : clnorm_plan_forward(&c->dev, &set, d, &s, &plan);
    if (st != CLNORM_OK) {
        st = clnorm_fail(c, st, "no plan for this call");
        goto done;
    }
    st = clnorm_execute(c, d, NULL, &plan, num_wait, wait_list, event);
done:
    pthread_mutex_unlock(&c->lock);
    return (clnorm_status)st;
}

CLNORM_API clnorm_status clnorm_forward(clnorm_ctx *c, const clnorm_desc *d, cl_uint num_wait,
                                        const cl_event *wait_list, cl_event *event)
{
    return run_call(c, d, 0, num_wait, wait_list, event);
}

CLNORM_API clnorm_status clnorm_backward(clnorm_ctx *c, const clnorm_desc *d, cl_uint num_wait,
                                         const cl_event *wait_list, cl_event *event)
{
    return run_call(c, d, 1, num_wait, wait_list, event);
}
