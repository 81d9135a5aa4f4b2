/* Contexts: creation and destruction, the user's settings, accessors. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int clnorm_parse_variant(const char *s, clnorm_variant *v)
{
    for (int i = 0; i < CLNORM_VARIANT_COUNT; ++i)
        if (strcmp(s, clnorm_variant_name((clnorm_variant)i)) == 0) {
            *v = (clnorm_variant)i;
            return 0;
        }
    return -1;
}

/* Common tail of both constructors: the context owns one reference each to
 * context, queue and device info. */
static clnorm_status ctx_init(clnorm_ctx *c)
{
    cl_command_queue_properties props = 0;
    cl_int err = clGetCommandQueueInfo(c->queue, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL);
    c->out_of_order = (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) != 0;
    if (err == CL_SUCCESS)
        err = clnorm_read_profile(c->device, &c->dev);
    if (err != CL_SUCCESS)
        return (clnorm_status)err;
    if (pthread_mutex_init(&c->lock, NULL) != 0)
        return CLNORM_ERR_OUT_OF_MEMORY;
    /* Environment is read here, once, into the context: no global state. */
    const char *v = getenv("CLNORM_VARIANT");
    /* CLNORM_DEVICE_CLASS=gpu|cpu makes the rules treat the device as that
     * class: the tests run the GPU kernels' code paths on PoCL this way. */
    const char *dc = getenv("CLNORM_DEVICE_CLASS");
    /* CLNORM_FORCE_FEATURES=nv_shfl switches a target feature on where the
     * device was not given it: the tests build NVIDIA's inline PTX on PoCL
     * this way, to exercise the portable fallback (program.c).
     * =no_wide_vec switches 512-bit code off, so that an AVX-512 host also
     * tests the kernels' 256-bit forms (common.cl: bfloat16's even/odd
     * vectors). */
    const char *ff = getenv("CLNORM_FORCE_FEATURES");
    /* CLNORM_STREAM=on|off overrides the streaming-store rule (plan.c). */
    const char *sm = getenv("CLNORM_STREAM");
    int bad = v && *v && clnorm_parse_variant(v, &c->settings.variant) != 0;
    c->settings.stream = -1;
    if (sm && *sm) {
        if (strcmp(sm, "on") == 0) c->settings.stream = 1;
        else if (strcmp(sm, "off") == 0) c->settings.stream = 0;
        else if (strcmp(sm, "auto") != 0) bad = 1;
    }
    if (ff && *ff) {
        if (strcmp(ff, "nv_shfl") == 0) c->dev.features |= CLNORM_FEAT_NV_SHFL;
        else if (strcmp(ff, "no_wide_vec") == 0) c->dev.features &= ~(unsigned)CLNORM_FEAT_WIDE_VEC;
        else if (strcmp(ff, "none") != 0) bad = 1;
    }
    if (dc && *dc) {
        if (strcmp(dc, "gpu") == 0) c->dev.is_cpu = 0;
        else if (strcmp(dc, "cpu") == 0) c->dev.is_cpu = 1;
        else bad = 1;
    }
    clnorm_status st = CLNORM_ERR_INVALID_VARIANT;
    if (bad)
        goto fail;
    /* CLNORM_TUNING: a tuning file (clnorm-bench --tune) to read now. */
    const char *tf = getenv("CLNORM_TUNING");
    if (tf && *tf && (st = clnorm_tuning_read(c, tf, &c->tuned, &c->ntuned)) != CLNORM_OK)
        goto fail;
    return CLNORM_OK;
fail:
    pthread_mutex_destroy(&c->lock);
    return st;
}

static void free_msgs(clnorm_ctx *c)
{
    while (c->msgs) {
        clnorm_msgs *next = c->msgs->next;
        free(c->msgs->build_log);
        free(c->msgs);
        c->msgs = next;
    }
}

CLNORM_API clnorm_status clnorm_create_from_queue(cl_command_queue queue, clnorm_ctx **out)
{
    if (!out) return CLNORM_ERR_NULL_ARGUMENT;
    *out = NULL;
    if (!queue) return CLNORM_ERR_NULL_ARGUMENT;
    clnorm_ctx *c = calloc(1, sizeof *c);
    if (!c) return CLNORM_ERR_OUT_OF_MEMORY;
    cl_int err = clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof c->context, &c->context, NULL);
    if (err == CL_SUCCESS)
        err = clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof c->device, &c->device, NULL);
    if (err != CL_SUCCESS) {
        free(c);
        return err;
    }
    err = clRetainCommandQueue(queue);
    if (err != CL_SUCCESS) {
        free(c);
        return err;
    }
    err = clRetainContext(c->context);
    if (err != CL_SUCCESS) {
        clReleaseCommandQueue(queue);
        free(c);
        return err;
    }
    c->queue = queue;
    clnorm_status st = ctx_init(c);
    if (st != CLNORM_OK)
        goto fail;
    *out = c;
    return CLNORM_OK;
fail:
    clReleaseCommandQueue(c->queue);
    clReleaseContext(c->context);
    free_msgs(c); /* ctx_init's failure message has nowhere to go */
    free(c);
    return st;
}

CLNORM_API clnorm_status clnorm_create_default(clnorm_ctx **out)
{
    if (!out) return CLNORM_ERR_NULL_ARGUMENT;
    *out = NULL;
    cl_device_id dev = NULL;
    cl_context context = NULL;
    cl_command_queue queue = NULL;
    cl_int err;
    clnorm_status st = clnorm_pick_device(&dev);
    if (st != CLNORM_OK) return st;
    context = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    if (!context) return err ? err : CL_OUT_OF_HOST_MEMORY;
    queue = clCreateCommandQueue(context, dev, CL_QUEUE_PROFILING_ENABLE, &err);
    if (!queue) {
        st = err ? err : CL_OUT_OF_HOST_MEMORY;
        goto fail;
    }
    st = clnorm_create_from_queue(queue, out);
fail:
    /* The new clnorm context holds its own references (or failed). */
    if (queue) clReleaseCommandQueue(queue);
    clReleaseContext(context);
    return st;
}

CLNORM_API void clnorm_destroy(clnorm_ctx *c)
{
    if (!c) return;
    clnorm_programs_free(c);
    for (int i = 0; i < CLNORM_SCRATCH_COUNT; ++i)
        if (c->scratch[i]) clReleaseMemObject(c->scratch[i]);
    clReleaseCommandQueue(c->queue);
    clReleaseContext(c->context);
    pthread_mutex_destroy(&c->lock);
    free(c->tuned);
    free_msgs(c);
    free(c);
}

CLNORM_API cl_command_queue clnorm_queue(const clnorm_ctx *c) { return c ? c->queue : NULL; }
CLNORM_API cl_context clnorm_cl_context(const clnorm_ctx *c) { return c ? c->context : NULL; }
CLNORM_API cl_device_id clnorm_device(const clnorm_ctx *c) { return c ? c->device : NULL; }
/* The calling thread's record, found under the lock (another thread may be
 * adding its own); only this thread writes it, so it is read after. The
 * lock is mutable state of a const context. */
static const clnorm_msgs *own_msgs(const clnorm_ctx *c)
{
    clnorm_ctx *w = (clnorm_ctx *)c;
    pthread_mutex_lock(&w->lock);
    const clnorm_msgs *m = clnorm_msgs_of(w, 0);
    pthread_mutex_unlock(&w->lock);
    return m;
}
CLNORM_API const char *clnorm_last_error(const clnorm_ctx *c)
{
    const clnorm_msgs *m = c ? own_msgs(c) : NULL;
    return m ? m->error : "";
}
CLNORM_API const char *clnorm_build_log(const clnorm_ctx *c)
{
    const clnorm_msgs *m = c ? own_msgs(c) : NULL;
    return m && m->build_log ? m->build_log : "";
}

CLNORM_API const char *clnorm_variant_name(clnorm_variant v)
{
    static const char *const names[CLNORM_VARIANT_COUNT] = {"auto", "wg", "subgroup", "wi", "split"};
    return (unsigned)v < CLNORM_VARIANT_COUNT ? names[v] : "invalid";
}

CLNORM_API clnorm_status clnorm_variant_from_name(const char *name, clnorm_variant *v)
{
    if (!name || !v) return CLNORM_ERR_NULL_ARGUMENT;
    return clnorm_parse_variant(name, v) == 0 ? CLNORM_OK : CLNORM_ERR_INVALID_VARIANT;
}

CLNORM_API clnorm_status clnorm_set_variant(clnorm_ctx *c, clnorm_variant v, size_t wg)
{
    if (!c) return CLNORM_ERR_NULL_ARGUMENT;
    /* The lock covers the message too: another thread may be in a call. */
    pthread_mutex_lock(&c->lock);
    clnorm_status st = CLNORM_OK;
    if ((unsigned)v >= CLNORM_VARIANT_COUNT)
        st = clnorm_fail(c, CLNORM_ERR_INVALID_VARIANT, "variant %d is not a clnorm_variant", (int)v);
    else if (wg && ((wg & (wg - 1)) || wg > c->dev.max_wg))
        st = clnorm_fail(c, CLNORM_ERR_INVALID_VARIANT, "work-group size %zu is not a power of two in [1, %zu]", wg,
                         c->dev.max_wg);
    else
        c->settings.variant = v, c->settings.wg = wg;
    pthread_mutex_unlock(&c->lock);
    return st;
}
