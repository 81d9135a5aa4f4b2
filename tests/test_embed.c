/*
 * Embedding: the caller owns the OpenCL context and queue, runs its own
 * kernel, then a clnorm operation created with clnorm_create_from_queue that
 * waits on that kernel's event, then reads the result through the event
 * clnorm returned; checked against the double-precision reference. Also on
 * an out-of-order queue when the device has one.
 */
#include "th_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integer-only formula, so host and device agree bit for bit. */
static const char *fill_src =
    "__kernel void fill(__global float *x, uint off, uint n, uint salt) {\n"
    "  uint i = get_global_id(0); if (i >= n) return;\n"
    "  uint h = (i + salt) * 2654435761u; h ^= h >> 13;\n"
    "  x[off + i] = (float)(h % 20001u) * 0.001f - 10.0f + (float)((i / 37u) % 5u);\n"
    "}\n";

static float host_fill(unsigned i, unsigned salt)
{
    unsigned h = (i + salt) * 2654435761u;
    h ^= h >> 13;
    return (float)(h % 20001u) * 0.001f - 10.0f + (float)((i / 37u) % 5u);
}

typedef struct own {
    cl_platform_id plat;
    cl_device_id dev;
    cl_context cl;
    cl_program prog;
    cl_kernel fill;
} own;

static int own_setup(own *o)
{
    memset(o, 0, sizeof *o);
    /* The device the library itself chooses (CLNORM_DEVICE, else its
     * default rule): a test's own context must not wander off to another
     * platform's first device, such as a simulator. */
    o->dev = clnorm_device(th_ctx());
    if (!o->dev || clGetDeviceInfo(o->dev, CL_DEVICE_PLATFORM, sizeof o->plat, &o->plat, NULL) != CL_SUCCESS)
        return -1;
    cl_int err;
    o->cl = clCreateContext(NULL, 1, &o->dev, NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return -1;
    o->prog = clCreateProgramWithSource(o->cl, 1, &fill_src, NULL, &err);
    if (err != CL_SUCCESS || clBuildProgram(o->prog, 1, &o->dev, "", NULL, NULL) != CL_SUCCESS)
        return -1;
    o->fill = clCreateKernel(o->prog, "fill", &err);
    return err == CL_SUCCESS ? 0 : -1;
}

static void own_teardown(own *o)
{
    if (o->fill) clReleaseKernel(o->fill);
    if (o->prog) clReleaseProgram(o->prog);
    if (o->cl) clReleaseContext(o->cl);
}

/* The flow's buffers, descriptors and events: LayerNorm over M x D of x
 * (at offset 5) into y (at 9), then BatchNorm over y viewed as N=1, C=M,
 * S=D into z, with running statistics. */
enum { FLOW_M = 37, FLOW_D = 1001, FLOW_OFF = 5, FLOW_SALT = 17 };
#define FLOW_E ((size_t)FLOW_M * FLOW_D)
typedef struct flow_state {
    cl_mem xb, yb, zb, rmb, rvb;
    float rm0[FLOW_M], rv0[FLOW_M];
    clnorm_desc d, b;
    cl_event filled, normed, normed2;
} flow_state;

static void flow_alloc(own *o, flow_state *f)
{
    cl_int err;
    memset(f, 0, sizeof *f);
    f->xb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE, (FLOW_E + FLOW_OFF + 3) * 4, NULL, &err);
    f->yb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE, (FLOW_E + 9) * 4, NULL, &err);
    f->zb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE, FLOW_E * 4, NULL, &err);
    for (unsigned c = 0; c < FLOW_M; c++) {
        f->rm0[c] = 0.5f * (float)c;
        f->rv0[c] = 1.0f + 0.25f * (float)c;
    }
    f->rmb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof f->rm0, f->rm0, &err);
    f->rvb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof f->rv0, f->rv0, &err);
    th_case lc = th_case_of("layer_norm 37x1001"), bc = th_case_of("batch_norm_train 1x37x1001");
    th_case_desc(&lc, &f->d);
    th_case_desc(&bc, &f->b);
    f->d.x = (clnorm_buf){f->xb, FLOW_OFF};
    f->d.y = (clnorm_buf){f->yb, 9};
    f->b.x = f->d.y;
    f->b.y = (clnorm_buf){f->zb, 0};
    f->b.running_mean = (clnorm_buf){f->rmb, 0};
    f->b.running_var = (clnorm_buf){f->rvb, 0};
}

/* 1. the caller's own kernel; 2. clnorm waits on it; 3. a second clnorm
 * op waits on the first one's event. Returns the status. */
static clnorm_status flow_enqueue(own *o, cl_command_queue q, clnorm_ctx *ctx, flow_state *f, const char *label)
{
    cl_uint a_off = FLOW_OFF, a_n = (cl_uint)FLOW_E, a_salt = FLOW_SALT;
    clSetKernelArg(o->fill, 0, sizeof f->xb, &f->xb);
    clSetKernelArg(o->fill, 1, sizeof a_off, &a_off);
    clSetKernelArg(o->fill, 2, sizeof a_n, &a_n);
    clSetKernelArg(o->fill, 3, sizeof a_salt, &a_salt);
    size_t g = FLOW_E;
    cl_int err = clEnqueueNDRangeKernel(q, o->fill, 1, NULL, &g, NULL, 0, NULL, &f->filled);
    TH_EXPECT(err == CL_SUCCESS, "%s: fill enqueue %d", label, err);
    clnorm_status st = clnorm_forward(ctx, &f->d, 1, &f->filled, &f->normed);
    TH_EXPECT(st == CLNORM_OK && f->normed, "%s: clnorm_forward: %s (%s)", label, clnorm_status_name(st),
              clnorm_last_error(ctx));
    if (st != CLNORM_OK)
        return st;
    st = clnorm_forward(ctx, &f->b, 1, &f->normed, &f->normed2);
    TH_EXPECT(st == CLNORM_OK && f->normed2, "%s: chained clnorm_forward: %s (%s)", label, clnorm_status_name(st),
              clnorm_last_error(ctx));
    return st;
}

/* 4. read through the returned events (non-blocking reads, then wait), and
 * compare both results with the reference. */
static void flow_check(cl_command_queue q, flow_state *f, const char *label)
{
    float *y = malloc(FLOW_E * 4), *z = malloc(FLOW_E * 4), *x = malloc(FLOW_E * 4), rm[FLOW_M], rv[FLOW_M];
    cl_event reads[4];
    clEnqueueReadBuffer(q, f->yb, CL_FALSE, 9 * 4, FLOW_E * 4, y, 1, &f->normed, &reads[0]);
    clEnqueueReadBuffer(q, f->zb, CL_FALSE, 0, FLOW_E * 4, z, 1, &f->normed2, &reads[1]);
    clEnqueueReadBuffer(q, f->rmb, CL_FALSE, 0, sizeof rm, rm, 1, &f->normed2, &reads[2]);
    clEnqueueReadBuffer(q, f->rvb, CL_FALSE, 0, sizeof rv, rv, 1, &f->normed2, &reads[3]);
    clWaitForEvents(1, &reads[0]);
    clWaitForEvents(1, &reads[1]);
    clWaitForEvents(2, &reads[2]);
    for (int i = 0; i < 4; i++)
        clReleaseEvent(reads[i]);
    for (size_t i = 0; i < FLOW_E; i++)
        x[i] = host_fill((unsigned)i, FLOW_SALT);
    th_set_case("%s: LayerNorm after the caller's kernel", label);
    th_inputs in = {x, NULL, NULL, NULL, NULL};
    th_outputs out = {y, NULL, NULL, NULL, NULL};
    th_compare(&f->d, &in, &out, 1.0, 1);
    /* the BatchNorm reference runs on the library's y (its actual input) */
    th_set_case("%s: BatchNorm chained on the LayerNorm event", label);
    th_inputs inb = {y, NULL, NULL, f->rm0, f->rv0};
    th_outputs outb = {z, NULL, NULL, rm, rv};
    th_compare(&f->b, &inb, &outb, 1.0, 1);
    th_set_case("%s", "");
    free(y), free(z), free(x);
}

static void flow_release(flow_state *f)
{
    cl_event evs[3] = {f->filled, f->normed, f->normed2};
    for (int i = 0; i < 3; i++)
        if (evs[i]) clReleaseEvent(evs[i]);
    cl_mem ms[5] = {f->xb, f->yb, f->zb, f->rmb, f->rvb};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(ms[i]);
}

/* The whole flow on one queue: fill x -> (wait) LayerNorm -> (wait) read. Then
 * a second clnorm op chained on the first one's event (y1 -> BatchNorm). */
static void flow(own *o, cl_command_queue q, const char *label)
{
    flow_state f;
    flow_alloc(o, &f);
    clnorm_ctx *ctx = NULL;
    clnorm_status st = clnorm_create_from_queue(q, &ctx);
    TH_EXPECT(st == CLNORM_OK && ctx, "%s: clnorm_create_from_queue: %s", label, clnorm_status_name(st));
    if (st == CLNORM_OK) {
        TH_EXPECT(clnorm_queue(ctx) == q, "%s: clnorm_queue is not the caller's queue", label);
        TH_EXPECT(clnorm_cl_context(ctx) == o->cl, "%s: clnorm_cl_context is not the caller's context", label);
        TH_EXPECT(clnorm_device(ctx) == o->dev, "%s: clnorm_device is not the caller's device", label);
        if (flow_enqueue(o, q, ctx, &f, label) == CLNORM_OK)
            flow_check(q, &f, label);
        clnorm_destroy(ctx);
        /* the queue was retained, not taken: still usable after destroy */
        TH_EXPECT(clFinish(q) == CL_SUCCESS, "%s: the caller's queue is unusable after clnorm_destroy", label);
    }
    flow_release(&f);
}

START_TEST(in_order_queue)
{
    own o;
    th_begin();
    ck_assert_msg(own_setup(&o) == 0, "OpenCL set-up failed");
    cl_int err;
    cl_command_queue q = clCreateCommandQueue(o.cl, o.dev, 0, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    flow(&o, q, "in-order queue");
    clReleaseCommandQueue(q);
    own_teardown(&o);
    th_finish();
}
END_TEST

START_TEST(out_of_order_queue)
{
    own o;
    th_begin();
    ck_assert_msg(own_setup(&o) == 0, "OpenCL set-up failed");
    cl_command_queue_properties props = 0;
    clGetDeviceInfo(o.dev, CL_DEVICE_QUEUE_PROPERTIES, sizeof props, &props, NULL);
    if (!(props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)) {
        printf("# out-of-order queues not supported by this device: skipped\n");
    } else {
        cl_int err;
        cl_command_queue q =
            clCreateCommandQueue(o.cl, o.dev, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE | CL_QUEUE_PROFILING_ENABLE, &err);
        ck_assert_int_eq(err, CL_SUCCESS);
        for (int rep = 0; rep < 3; rep++)
            flow(&o, q, "out-of-order queue");
        clReleaseCommandQueue(q);
    }
    own_teardown(&o);
    th_finish();
}
END_TEST

/* The caller's user event gates the clnorm op: nothing runs until it is set. */
START_TEST(user_event_gate)
{
    own o;
    th_begin();
    ck_assert_msg(own_setup(&o) == 0, "OpenCL set-up failed");
    cl_int err;
    cl_command_queue q = clCreateCommandQueue(o.cl, o.dev, 0, &err);
    clnorm_ctx *ctx = NULL;
    ck_assert_int_eq(clnorm_create_from_queue(q, &ctx), CLNORM_OK);
    const size_t M = 4, D = 300, E = M * D;
    float *x = malloc(E * 4), *y = malloc(E * 4);
    th_rng r;
    th_rng_init(&r, th_next_seed());
    th_fill_normal(&r, x, E, 1, 2);
    cl_mem xb = clCreateBuffer(o.cl, CL_MEM_READ_WRITE, E * 4, NULL, &err);
    cl_mem yb = clCreateBuffer(o.cl, CL_MEM_READ_WRITE, E * 4, NULL, &err);
    cl_event gate = clCreateUserEvent(o.cl, &err), wr = NULL, done = NULL;
    /* the upload itself waits on the gate, and clnorm waits on the upload */
    clEnqueueWriteBuffer(q, xb, CL_FALSE, 0, E * 4, x, 1, &gate, &wr);
    clnorm_desc d;
    clnorm_desc_init(&d, CLNORM_RMS_NORM);
    d.rows = M;
    d.cols = D;
    d.x.mem = xb;
    d.y.mem = yb;
    clnorm_status st = clnorm_forward(ctx, &d, 1, &wr, &done);
    TH_EXPECT(st == CLNORM_OK, "clnorm_forward: %s", clnorm_status_name(st));
    if (st == CLNORM_OK) {
        cl_int es = 0;
        clFlush(q);
        clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof es, &es, NULL);
        TH_EXPECT(es != CL_COMPLETE, "clnorm's op completed before its wait list");
        clSetUserEventStatus(gate, CL_COMPLETE);
        clWaitForEvents(1, &done);
        clEnqueueReadBuffer(q, yb, CL_TRUE, 0, E * 4, y, 0, NULL, NULL);
        th_inputs in = {x, NULL, NULL, NULL, NULL};
        th_outputs out = {y, NULL, NULL, NULL, NULL};
        th_compare(&d, &in, &out, 1.0, 1);
        clReleaseEvent(done);
    } else {
        clSetUserEventStatus(gate, CL_COMPLETE);
    }
    clFinish(q);
    clReleaseEvent(gate);
    clReleaseEvent(wr);
    clReleaseMemObject(xb);
    clReleaseMemObject(yb);
    free(x);
    free(y);
    clnorm_destroy(ctx);
    clReleaseCommandQueue(q);
    own_teardown(&o);
    th_finish();
}
END_TEST

TH_MAIN("embed", 0, TH_TEST(in_order_queue), TH_TEST(out_of_order_queue), TH_TEST(user_event_gate))
