/*
 * BatchNorm training in steps for a distributed caller (clnorm.h: "BatchNorm
 * training in steps"): the local record of a slice, the host merge of K
 * records, and the apply with the global record. The device steps are
 * stages of the planner's BatchNorm pipeline (plan.c: clnorm_plan_bn_local,
 * clnorm_plan_bn_apply) run by the executor, so they take the same kernel
 * choices, tuning and scratch as clnorm_forward.
 *
 * Compiled with -ffp-contract=off (CMakeLists.txt): the merge must give the
 * same bits on every process, so no compiler may fuse its multiply-adds
 * differently from another's.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

static int has(clnorm_buf b) { return b.mem != NULL; }

/* The shape of a split call: clnorm_describe's, with n = 0 allowed (an
 * empty slice: N, elements and count per channel 0). */
static clnorm_status split_shape(clnorm_ctx *c, const clnorm_desc *d, clnorm_shape *s)
{
    if (d->op != CLNORM_BATCH_NORM || !d->training)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "the BatchNorm split takes BatchNorm in training (op %d, training %d)",
                           (int)d->op, d->training);
    if (d->per_sample_affine)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "the BatchNorm split has no per-sample affine");
    clnorm_desc one = *d;
    if (!d->n) one.n = 1; /* the shape checks of every other dimension */
    clnorm_status st = clnorm_describe(c, &one, s);
    if (st != CLNORM_OK || d->n) return st;
    s->N = 0, s->elems = 0, s->set_len = 0;
    return CLNORM_OK;
}

/* clnorm_validate's checks that apply to a slice (the count-1 rule moves to
 * the merged count), then the buffers: x and y (n > 0 only), the affine,
 * saved and running statistics, and the record (an output of the local
 * step) or the global record (an input of the apply); NULL: neither. */
static clnorm_status split_validate(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s, const clnorm_buf *record,
                                    const clnorm_buf *global)
{
    if (d->dtype != CLNORM_FLOAT32 || d->param_dtype != CLNORM_FLOAT32)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "the BatchNorm split takes float32 storage only");
    clnorm_status st = clnorm_check_scalars(c, d);
    if (st != CLNORM_OK) return st;
    if (s->N && (!has(d->x) || !has(d->y)))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "x and y are required (n = %zu)", s->N);
    if (has(d->running_mean) != has(d->running_var))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "running_mean and running_var go together");
    if ((st = clnorm_check_running_update(c, d, s)) != CLNORM_OK) return st;
    if (s->set_len > UINT32_MAX || s->C > UINT32_MAX / 3 || s->N * s->C > UINT32_MAX || s->elems > ((size_t)1 << 46))
        return clnorm_fail(c, CLNORM_ERR_TOO_LARGE, "%zu channels of %zu elements exceed the kernels' 32-bit indexing",
                           s->C, s->set_len);
    const clnorm_buf none = {NULL, 0};
    const int n = s->N != 0, run = s->update_running;
    clnorm_span sp[9] = {
        {"x", n ? d->x : none, s->elems, 0, 0, 0, 0, 0},
        {"y", n && !record ? d->y : none, s->elems, 1, 0, 0, 0, 0},
        {"scale", d->scale, s->C, 0, 0, 0, 0, 0},
        {"bias", d->bias, s->C, 0, 0, 0, 0, 0},
        {"mean", d->mean, s->C, 1, 0, 0, 0, 0},
        {"rstd", d->rstd, s->C, 1, 0, 0, 0, 0},
        {"running_mean", d->running_mean, s->C, run, 0, 0, 0, 0},
        {"running_var", d->running_var, s->C, run, 0, 0, 0, 0},
        {record ? "record" : "global", record ? *record : global ? *global : none, 3 * s->C, record != NULL, 0, 0, 0, 0},
    };
    /* The local step writes the record only: the other outputs are not
     * its own, and overlaps among them are the apply step's to report. */
    if (record)
        for (int i = 2; i < 8; ++i) sp[i].b = none;
    return clnorm_check_spans(c, sp, 9, (const unsigned char[][2]){{1, 0}}, 1);
}

/* The settings of a split call: an empty slice launches one small kernel
 * and has no tuning key. */
static clnorm_settings split_settings(const clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s)
{
    return s->N ? clnorm_call_settings(c, d, s) : c->settings;
}

/* The split's steps (begin ... unlock): the forward's record steps and the
 * backward's sums steps, local or apply, and the validation alone. */
typedef enum { STEP_VALIDATE, STEP_LOCAL, STEP_APPLY } split_step_kind;

/* An apply step's check of the merged (forward) or global (backward) count. */
static clnorm_status check_count(clnorm_ctx *c, const clnorm_shape *s, cl_ulong count, int grad)
{
    const char *what = grad ? "global" : "merged";
    if (count == 0 || count < s->set_len)
        return clnorm_fail(c, CLNORM_ERR_INVALID_SHAPE, "%s count %llu is below this slice's %zu elements per channel",
                           what, (unsigned long long)count, s->set_len);
    if (count > UINT32_MAX)
        return clnorm_fail(c, CLNORM_ERR_TOO_LARGE, "%s count %llu exceeds %s2^32 - 1", what, (unsigned long long)count,
                           grad ? "" : "a record's ");
    if (count == 1)
        return clnorm_fail(c, CLNORM_ERR_COUNT_ONE, "expected more than 1 value per channel when training (%s count 1)",
                           what);
    return CLNORM_OK;
}

static clnorm_status grad_validate(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s, const clnorm_buf *sums,
                                   int local);

/* One step of the split: grad selects the backward's sums, kind the step;
 * b is the record or sums buffer (unused by STEP_VALIDATE), count the
 * apply's merged count. */
static clnorm_status split_step(clnorm_ctx *c, const clnorm_desc *d, int grad, split_step_kind kind, clnorm_buf b,
                                cl_ulong count, cl_uint num_wait, const cl_event *wait_list, cl_event *event)
{
    if (!c) return CLNORM_ERR_NULL_ARGUMENT;
    const int local = kind == STEP_LOCAL;
    clnorm_shape s;
    clnorm_plan plan;
    int st = clnorm_call_begin(c, d, num_wait, wait_list, event);
    if (st != CLNORM_OK || (st = split_shape(c, d, &s)) != CLNORM_OK) goto done;
    if (kind == STEP_VALIDATE) {
        st = grad ? grad_validate(c, d, &s, NULL, 0) : split_validate(c, d, &s, NULL, NULL);
        goto done;
    }
    if (!has(b)) {
        st = clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "the %s buffer is required",
                         grad ? (local ? "local sums" : "global sums") : (local ? "record" : "global record"));
        goto done;
    }
    if (!local && (st = check_count(c, &s, count, grad)) != CLNORM_OK) goto done;
    st = grad ? grad_validate(c, d, &s, &b, local) : split_validate(c, d, &s, local ? &b : NULL, local ? NULL : &b);
    if (st != CLNORM_OK) goto done;
    const clnorm_settings set = split_settings(c, d, &s);
    st = grad    ? clnorm_plan_bn_grad(&c->dev, &set, d, &s, b.offset, local ? 0 : (cl_uint)count, &plan)
         : local ? clnorm_plan_bn_local(&c->dev, &set, d, &s, b.offset, &plan)
                 : clnorm_plan_bn_apply(&c->dev, &set, d, &s, b.offset, (cl_uint)count, &plan);
    if (st != CLNORM_OK) {
        st = clnorm_fail(c, st, "no plan for this call");
        goto done;
    }
    st = clnorm_execute(c, d, b.mem, &plan, num_wait, wait_list, event);
done:
    pthread_mutex_unlock(&c->lock);
    return (clnorm_status)st;
}

static const clnorm_buf no_buf = {NULL, 0};

CLNORM_API clnorm_status clnorm_bn_validate(clnorm_ctx *c, const clnorm_desc *d)
{
    return split_step(c, d, 0, STEP_VALIDATE, no_buf, 0, 0, NULL, NULL);
}

CLNORM_API clnorm_status clnorm_bn_local_stats(clnorm_ctx *c, const clnorm_desc *d, clnorm_buf record,
                                               cl_uint num_wait, const cl_event *wait_list, cl_event *event)
{
    return split_step(c, d, 0, STEP_LOCAL, record, 0, num_wait, wait_list, event);
}

CLNORM_API clnorm_status clnorm_bn_apply_stats(clnorm_ctx *c, const clnorm_desc *d, clnorm_buf global, cl_ulong count,
                                               cl_uint num_wait, const cl_event *wait_list, cl_event *event)
{
    return split_step(c, d, 0, STEP_APPLY, global, count, num_wait, wait_list, event);
}

/* ---- the host merge -------------------------------------------------- */

static uint32_t count_of(const float *rec) /* the count word's bits */
{
    uint32_t u;
    memcpy(&u, rec + 2, sizeof u);
    return u;
}

/* clnorm_fail under ctx's lock, or the bare status without a context. */
static clnorm_status merge_fail(clnorm_ctx *c, clnorm_status st, const char *fmt, ...) CLNORM_PRINTF(3, 4);
static clnorm_status merge_fail(clnorm_ctx *c, clnorm_status st, const char *fmt, ...)
{
    if (!c) return st;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    clnorm_clear_error(c);
    clnorm_fail(c, st, "%s", msg);
    pthread_mutex_unlock(&c->lock);
    return st;
}

/* Both merges' counts: k parts of C channels of R floats, addressable. */
static clnorm_status merge_shape(clnorm_ctx *c, size_t k, size_t C, size_t R)
{
    if (!k || !C)
        return merge_fail(c, CLNORM_ERR_INVALID_SHAPE, "%zu records of %zu channels: both must be >= 1", k, C);
    if (C > SIZE_MAX / R / k)
        return merge_fail(c, CLNORM_ERR_TOO_LARGE, "%zu records of %zu channels overflow size_t", k, C);
    return CLNORM_OK;
}

CLNORM_API clnorm_status clnorm_bn_merge_stats(clnorm_ctx *c, const float *records, size_t k, size_t C, float *global,
                                               cl_ulong *count)
{
    const size_t R = CLNORM_BN_RECORD_FLOATS;
    clnorm_status st;
    if (!records || !global || !count)
        return merge_fail(c, CLNORM_ERR_NULL_ARGUMENT, "records, global and count are required");
    if ((st = merge_shape(c, k, C, R)) != CLNORM_OK) return st;
    /* Validate everything first: a BatchNorm slice has one count for all
     * of its channels (N * S), and the sum must fit the record. */
    uint64_t total = 0;
    for (size_t r = 0; r < k; ++r) {
        const float *rec = records + r * R * C;
        const uint32_t n0 = count_of(rec);
        for (size_t j = 1; j < C; ++j)
            if (count_of(rec + R * j) != n0)
                return merge_fail(c, CLNORM_ERR_INVALID_SHAPE,
                                  "record %zu: channel %zu counts %u elements, channel 0 %u (one count per slice)", r,
                                  j, (unsigned)count_of(rec + R * j), (unsigned)n0);
        total += n0;
    }
    if (total > UINT32_MAX)
        return merge_fail(c, CLNORM_ERR_TOO_LARGE, "merged count %llu exceeds a record's 2^32 - 1",
                          (unsigned long long)total);
    if (total == 0)
        return merge_fail(c, CLNORM_ERR_INVALID_SHAPE, "all %zu records are empty (count 0)", k);
    if (total == 1)
        return merge_fail(c, CLNORM_ERR_COUNT_ONE,
                          "expected more than 1 value per channel when training (merged count 1 over %zu records)", k);
    if (records < global + R * C && global < records + k * R * C)
        return merge_fail(c, CLNORM_ERR_ALIASING, "global overlaps records");
    const uint32_t tot32 = (uint32_t)total;
    for (size_t j = 0; j < C; ++j) {
        /* Chan et al.'s pairwise update in rank order, in double: the
         * difference of two float means is exact, and each step rounds far
         * below float's precision, so the one rounding that matters is the
         * final one to float. NaN in any record stays NaN (its mean or M2,
         * through d). */
        double n = 0.0, mean = 0.0, m2 = 0.0;
        for (size_t r = 0; r < k; ++r) {
            const float *e = records + r * R * C + R * j;
            const double nb = (double)count_of(e);
            if (nb == 0.0) continue; /* an empty slice */
            if (n == 0.0) {
                n = nb, mean = e[0], m2 = e[1];
                continue;
            }
            const double tot = n + nb, d = (double)e[0] - mean;
            mean += d * (nb / tot);
            m2 += (double)e[1] + d * d * (n * nb / tot);
            n = tot;
        }
        float *g = global + R * j;
        g[0] = isnan(m2) ? NAN : (float)mean; /* SPEC.md: a NaN set's mean is NaN */
        g[1] = (float)m2;
        memcpy(g + 2, &tot32, sizeof tot32);
    }
    *count = total;
    return CLNORM_OK;
}

/* ---- the backward split ------------------------------------------------
 * clnorm_bn_local_grad_sums, clnorm_bn_merge_grad_sums, clnorm_bn_apply_grad:
 * clnorm_backward's BatchNorm sums pipeline cut where the per-channel sums
 * are complete (plan.c: clnorm_plan_bn_grad). */

/* The backward's checks that apply to a slice, then the buffers: x and dy
 * (n > 0 only), scale, the saved mean and rstd (those the forward wrote,
 * from the global statistics; required), dx (n > 0 only; may be exactly dy),
 * dscale, dbias, and the sums (an output of the local step, an input of the
 * apply; NULL: neither). The local step writes only the sums: the
 * gradients' spans are the apply's to check against each other. */
static clnorm_status grad_validate(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s, const clnorm_buf *sums,
                                   int local)
{
    if (d->dtype != CLNORM_FLOAT32 || d->param_dtype != CLNORM_FLOAT32)
        return clnorm_fail(c, CLNORM_ERR_UNSUPPORTED, "the BatchNorm split takes float32 storage only");
    clnorm_status st = clnorm_check_scalars(c, d);
    if (st != CLNORM_OK) return st;
    if (s->N && (!has(d->x) || !has(d->dy)))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER, "x and dy are required (n = %zu)", s->N);
    if (s->N && !has(d->dx) && !has(d->dscale) && !has(d->dbias))
        return clnorm_fail(c, CLNORM_ERR_NOTHING_TO_DO, "dx, dscale and dbias are all absent");
    if (!has(d->mean) || !has(d->rstd))
        return clnorm_fail(c, CLNORM_ERR_MISSING_BUFFER,
                           "the backward split needs the saved mean and rstd of the forward call");
    if (s->set_len > UINT32_MAX || s->C > UINT32_MAX / 4 || s->N * s->C > UINT32_MAX || s->elems > ((size_t)1 << 46))
        return clnorm_fail(c, CLNORM_ERR_TOO_LARGE, "%zu channels of %zu elements exceed the kernels' 32-bit indexing",
                           s->C, s->set_len);
    const clnorm_buf none = {NULL, 0};
    const int n = s->N != 0;
    clnorm_span sp[9] = {
        {"x", n ? d->x : none, s->elems, 0, 0, 0, 0, 0},
        {"dy", n ? d->dy : none, s->elems, 0, 0, 0, 0, 0},
        {"scale", d->scale, s->C, 0, 0, 0, 0, 0},
        {"mean", d->mean, s->C, 0, 0, 0, 0, 0},
        {"rstd", d->rstd, s->C, 0, 0, 0, 0, 0},
        {"dx", n && !local ? d->dx : none, s->elems, 1, 0, 0, 0, 0},
        {"dscale", local ? none : d->dscale, s->C, 1, 0, 0, 0, 0},
        {"dbias", local ? none : d->dbias, s->C, 1, 0, 0, 0, 0},
        {"sums", sums ? *sums : none, 2 * s->C, local, 0, 0, 0, 0},
    };
    return clnorm_check_spans(c, sp, 9, (const unsigned char[][2]){{5, 1}}, 1);
}

CLNORM_API clnorm_status clnorm_bn_validate_grad(clnorm_ctx *c, const clnorm_desc *d)
{
    return split_step(c, d, 1, STEP_VALIDATE, no_buf, 0, 0, NULL, NULL);
}

CLNORM_API clnorm_status clnorm_bn_local_grad_sums(clnorm_ctx *c, const clnorm_desc *d, clnorm_buf sums,
                                                   cl_uint num_wait, const cl_event *wait_list, cl_event *event)
{
    return split_step(c, d, 1, STEP_LOCAL, sums, 0, num_wait, wait_list, event);
}

CLNORM_API clnorm_status clnorm_bn_apply_grad(clnorm_ctx *c, const clnorm_desc *d, clnorm_buf global, cl_ulong count,
                                              cl_uint num_wait, const cl_event *wait_list, cl_event *event)
{
    return split_step(c, d, 1, STEP_APPLY, global, count, num_wait, wait_list, event);
}

CLNORM_API clnorm_status clnorm_bn_merge_grad_sums(clnorm_ctx *c, const float *sums, size_t k, size_t C, float *global)
{
    const size_t R = CLNORM_BN_GRAD_FLOATS;
    clnorm_status st;
    if (!sums || !global) return merge_fail(c, CLNORM_ERR_NULL_ARGUMENT, "sums and global are required");
    if ((st = merge_shape(c, k, C, R)) != CLNORM_OK) return st;
    if (sums < global + R * C && global < sums + k * R * C)
        return merge_fail(c, CLNORM_ERR_ALIASING, "global overlaps sums");
    /* In rank order, in double from rank 0's value (one record gives its
     * own bits back, -0 included), rounded to float once: the same bits on
     * every process. NaN and Inf carry to their channel's sum. */
    for (size_t j = 0; j < R * C; ++j) {
        double a = sums[j];
        for (size_t r = 1; r < k; ++r) a += (double)sums[r * R * C + j];
        global[j] = (float)a;
    }
    return CLNORM_OK;
}
