/*
 * Threads. The API allows any number of contexts at once and a context to be
 * used from several threads (each call holds the context's lock while it
 * validates and enqueues). Both are stressed here, every result checked
 * against the reference:
 *   - separate: NTHREADS threads, each with its own context, shapes and
 *     buffers;
 *   - shared: NTHREADS threads on one context (one queue), each with its
 *     own buffers, waiting on the event clnorm_forward returns; one more
 *     thread meanwhile switches kernel variants and makes rejected calls;
 *   - shared with a caller-provided out-of-order queue, when the device
 *     supports one (the library chains its launches with events).
 * Every thread mixes forward and backward calls (issue 16: the backward's
 * own kernels, scratch and in-place dx), and the disturbing thread makes
 * rejected backward calls too.
 * Live OpenCL objects return to the baseline afterwards.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interpose.h"
#include "th_check.h"

#define NTHREADS 4
static long g_iters;

typedef struct worker {
    int id;
    clnorm_ctx *ctx; /* shared, or NULL: create one */
    long iters;
    int failed;
    char why[600];
    unsigned long checked, bwd_checked;
} worker;

/* Thread id's shape for iteration it. */
static th_case shape_for(int id, long it)
{
    char spec[128];
    switch ((id + it) % 10) {
    case 6: snprintf(spec, sizeof spec, "layer_norm %dx%d affine stats bwd", 20 + id, 40 + 3 * id); break;
    case 7: snprintf(spec, sizeof spec, "batch_norm_train 3x%dx7 nhwc affine stats bwd", 4 + id); break;
    case 8: snprintf(spec, sizeof spec, "group_norm 2x8x3x3 nchw G=2 affine stats inplace bwd"); break;
    case 9: snprintf(spec, sizeof spec, "batch_norm_infer 2x%dx5 nchw affine running bwd dx", 3 + id); break;
    case 0: snprintf(spec, sizeof spec, "layer_norm %dx%d affine stats", 3 + id, 50 + 7 * id); break;
    case 1: snprintf(spec, sizeof spec, "rms_norm 2x%d scale stats", 300 + id); break;
    case 2: snprintf(spec, sizeof spec, "batch_norm_train 3x%dx6 nhwc affine stats running", 5 + id); break;
    case 3: snprintf(spec, sizeof spec, "group_norm 2x8x3x3 nchw G=4 affine stats"); break;
    case 4: snprintf(spec, sizeof spec, "instance_norm 2x3x4x2 nhwc affine running"); break;
    default: snprintf(spec, sizeof spec, "batch_norm_infer 2x4x3x3 nchw affine running"); break;
    }
    return th_case_of(spec);
}

static void *work(void *arg)
{
    worker *w = arg;
    clnorm_ctx *c = w->ctx;
    int own = c == NULL;
    clnorm_status cst = own ? clnorm_create_default(&c) : CLNORM_OK;
    if (cst != CLNORM_OK) {
        w->failed = 1;
        snprintf(w->why, sizeof w->why, "thread %d: clnorm_create_default failed: %s", w->id,
                 clnorm_status_name(cst));
        return NULL;
    }
    for (long it = 0; it < w->iters && !w->failed; it++) {
        th_call p;
        th_case k = shape_for(w->id, it);
        if (th_call_init(&p, c, &k, (size_t)(it % 4), (uint64_t)(w->id * 100000 + it)) != 0) {
            w->failed = 1;
            snprintf(w->why, sizeof w->why, "thread %d: bad shape", w->id);
            break;
        }
        for (int rep = 0; rep < 3 && !w->failed; rep++) {
            if (rep) th_call_reset(&p, clnorm_queue(c));
            cl_event ev = NULL;
            clnorm_status st = p.backward ? clnorm_backward(c, &p.d, 0, NULL, &ev)
                                          : clnorm_forward(c, &p.d, 0, NULL, &ev);
            if (st != CLNORM_OK) {
                w->failed = 1;
                snprintf(w->why, sizeof w->why, "thread %d it %ld: %s", w->id, it, clnorm_status_name(st));
                break;
            }
            /* This thread never failed on the context: whatever the
             * disturbing thread's rejected calls wrote is not its message. */
            if (*clnorm_last_error(c)) {
                w->failed = 1;
                snprintf(w->why, sizeof w->why, "thread %d it %ld: another thread's message: %s", w->id, it,
                         clnorm_last_error(c));
            }
            cl_int e = clWaitForEvents(1, &ev);
            clReleaseEvent(ev);
            char why[512];
            if (e != CL_SUCCESS || th_call_check(&p, c, why, sizeof why) != 0) {
                w->failed = 1;
                snprintf(w->why, sizeof w->why, "thread %d it %ld rep %d: %s", w->id, it, rep,
                         e != CL_SUCCESS ? "clWaitForEvents failed" : why);
            }
            w->checked++;
            w->bwd_checked += p.backward != 0;
        }
        th_call_free(&p);
    }
    if (own) clnorm_destroy(c);
    return NULL;
}

/* Meanwhile on the shared context: variant switches and rejected calls. */
typedef struct disturber {
    clnorm_ctx *ctx;
    volatile int stop;
    unsigned long calls;
    int failed;
} disturber;

static void *disturb(void *arg)
{
    disturber *d = arg;
    th_case k = th_case_of("layer_norm 4x4 eps=-1");
    clnorm_desc bad;
    th_case_desc(&k, &bad);
    /* A backward asking for nothing: rejected before any buffer is looked at. */
    clnorm_desc nothing;
    th_case kb = th_case_of("layer_norm 4x4 bwd");
    th_case_desc(&kb, &nothing);
    nothing.x.mem = nothing.dy.mem = (cl_mem)fi_invalid_mem();
    while (!__atomic_load_n(&d->stop, __ATOMIC_SEQ_CST)) {
        clnorm_variant v = (clnorm_variant)(d->calls % CLNORM_VARIANT_COUNT);
        if (clnorm_set_variant(d->ctx, v, 0) != CLNORM_OK) d->failed = 1;
        /* Each rejection leaves this thread's own message (per-thread
         * messages: the workers' calls meanwhile must not overwrite it). */
        if (clnorm_forward(d->ctx, &bad, 0, NULL, NULL) != CLNORM_ERR_INVALID_EPS ||
            !strstr(clnorm_last_error(d->ctx), "eps"))
            d->failed = 1;
        if (clnorm_set_variant(d->ctx, CLNORM_VARIANT_AUTO, 3) != CLNORM_ERR_INVALID_VARIANT ||
            !strstr(clnorm_last_error(d->ctx), "work-group size 3"))
            d->failed = 1;
        if (clnorm_backward(d->ctx, &nothing, 0, NULL, NULL) != CLNORM_ERR_NOTHING_TO_DO ||
            !strstr(clnorm_last_error(d->ctx), "dx"))
            d->failed = 1;
        if (clnorm_forward(d->ctx, NULL, 0, NULL, NULL) != CLNORM_ERR_NULL_ARGUMENT ||
            !strstr(clnorm_last_error(d->ctx), "descriptor"))
            d->failed = 1;
        d->calls++;
        sched_yield();
    }
    return NULL;
}

static void run_workers(const char *label, clnorm_ctx *shared, int with_disturber)
{
    pthread_t th[NTHREADS], dt;
    worker w[NTHREADS];
    disturber dist = {shared, 0, 0, 0};
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){.id = i, .ctx = shared, .iters = g_iters};
        ck_assert_int_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    if (with_disturber) ck_assert_int_eq(pthread_create(&dt, NULL, disturb, &dist), 0);
    unsigned long checked = 0, bwd = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        checked += w[i].checked;
        bwd += w[i].bwd_checked;
    }
    if (with_disturber) {
        __atomic_store_n(&dist.stop, 1, __ATOMIC_SEQ_CST);
        pthread_join(dt, NULL);
    }
    for (int i = 0; i < NTHREADS; i++) ck_assert_msg(!w[i].failed, "%s", w[i].why);
    ck_assert_msg(!dist.failed, "the disturbing thread saw a wrong status");
    printf("threads: %s: %d threads, %lu results checked (%lu backward)", label, NTHREADS, checked, bwd);
    if (with_disturber) printf(", %lu variant switches + rejected calls meanwhile", dist.calls);
    printf("\n");
}

START_TEST(test_separate_contexts)
{
    fi_snapshot a, b;
    char diff[160];
    fi_snap(&a);
    run_workers("separate contexts", NULL, 0);
    fi_snap(&b);
    ck_assert_msg(!fi_snap_diff(&a, &b, diff, sizeof diff), "live OpenCL objects %s", diff);
}
END_TEST

START_TEST(test_shared_context)
{
    fi_snapshot a, b;
    char diff[160];
    fi_snap(&a);
    clnorm_ctx *c = NULL;
    ck_assert_int_eq(clnorm_create_default(&c), CLNORM_OK);
    run_workers("shared context", c, 1);
    clnorm_destroy(c);
    fi_snap(&b);
    ck_assert_msg(!fi_snap_diff(&a, &b, diff, sizeof diff), "live OpenCL objects %s", diff);
}
END_TEST

START_TEST(test_shared_out_of_order_queue)
{
    fi_snapshot a, b;
    char diff[160];
    fi_snap(&a);
    clnorm_ctx *tmp = NULL;
    ck_assert_int_eq(clnorm_create_default(&tmp), CLNORM_OK);
    cl_device_id dev = clnorm_device(tmp);
    cl_command_queue_properties props = 0;
    TH_CL(clGetDeviceInfo(dev, CL_DEVICE_QUEUE_PROPERTIES, sizeof props, &props, NULL));
    cl_context cl = clnorm_cl_context(tmp);
    if (!(props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)) {
        clnorm_destroy(tmp);
        printf("threads: device has no out-of-order queues; skipped\n");
        return;
    }
    cl_int e;
    cl_command_queue q = clCreateCommandQueue(cl, dev, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &e);
    ck_assert_msg(q != NULL, "clCreateCommandQueue %d", e);
    clnorm_ctx *c = NULL;
    ck_assert_int_eq(clnorm_create_from_queue(q, &c), CLNORM_OK);
    clReleaseCommandQueue(q);
    clnorm_destroy(tmp);
    run_workers("shared context, out-of-order queue", c, 1);
    clnorm_destroy(c);
    fi_snap(&b);
    ck_assert_msg(!fi_snap_diff(&a, &b, diff, sizeof diff), "live OpenCL objects %s", diff);
}
END_TEST

int main(void)
{
    g_iters = th_env_long("CLNORM_THREADS_ITERS", 40);
    /* Initialise the OpenCL platform layer once before any thread starts.
     * PoCL 3.1 (Debian 12) races in its first-time device initialisation:
     * four threads that each call clGetPlatformIDs, clGetDeviceIDs,
     * clCreateContext, clCreateBuffer at process start get CL_DEVICE_NOT_FOUND
     * or CL_INVALID_BUFFER_SIZE about half the time, without clnorm involved
     * (reproduced with plain OpenCL calls); after one complete initialisation
     * the same program never fails. clnorm itself has no global state. */
    clnorm_ctx *warm = NULL;
    if (clnorm_create_default(&warm) != CLNORM_OK) {
        fprintf(stderr, "clnorm_create_default failed\n");
        return 1;
    }
    clnorm_destroy(warm);
    const th_test tests[] = {TH_TEST(test_separate_contexts), TH_TEST(test_shared_context),
                             TH_TEST(test_shared_out_of_order_queue)};
    return th_main("threads", 600, tests, sizeof tests / sizeof tests[0]);
}
