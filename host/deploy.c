/*
 * Deployment entry points built on the one computation: BatchNorm folded
 * into a convolution (clnorm_fold_batch_norm). Validation (desc.c), plan
 * (plan.c) and executor (exec.c) are the ones clnorm_forward uses.
 */
#include "internal.h"

#include <string.h>

CLNORM_API void clnorm_fold_desc_init(clnorm_fold_desc *f)
{
    if (!f) return;
    memset(f, 0, sizeof *f);
    f->eps = 1e-5f;
}

clnorm_desc clnorm_fold_as_desc(const clnorm_fold_desc *f)
{
    clnorm_desc d;
    memset(&d, 0, sizeof d);
    d.x = f->weight, d.y = f->weight_out, d.scale = f->scale, d.bias = f->bias;
    d.running_mean = f->running_mean, d.running_var = f->running_var;
    d.mean = f->conv_bias, d.rstd = f->bias_out;
    return d;
}

CLNORM_API clnorm_status clnorm_fold_batch_norm(clnorm_ctx *c, const clnorm_fold_desc *f, cl_uint num_wait,
                                                const cl_event *wait_list, cl_event *event)
{
    if (!c) return CLNORM_ERR_NULL_ARGUMENT;
    pthread_mutex_lock(&c->lock);
    clnorm_clear_error(c);
    int st;
    clnorm_plan plan;
    if (event) *event = NULL;
    if (!f) {
        st = clnorm_fail(c, CLNORM_ERR_NULL_ARGUMENT, "fold descriptor is NULL");
    } else if ((num_wait > 0) != (wait_list != NULL)) {
        st = clnorm_fail(c, CLNORM_ERR_INVALID_EVENTS, "num_wait %u with %s wait list", num_wait,
                         wait_list ? "a" : "no");
    } else if ((st = clnorm_validate_fold(c, f)) == CLNORM_OK &&
               (st = clnorm_plan_fold(&c->dev, &c->settings, f, &plan)) == CLNORM_OK) {
        const clnorm_desc d = clnorm_fold_as_desc(f);
        st = clnorm_enqueue_plan(c, &d, &plan, num_wait, wait_list, event);
    }
    pthread_mutex_unlock(&c->lock);
    return (clnorm_status)st;
}
