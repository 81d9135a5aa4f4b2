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

/* The whole flow on one queue: fill x -> (wait) LayerNorm -> (wait) read. Then
 * a second clnorm op chained on the first one's event (y1 -> BatchNorm). */
static void flow(own *o, cl_command_queue q, const char *label)
{
    const unsigned M = 37, D = 1001, off = 5, salt = 17;
    const size_t E = (size_t)M * D;
    cl_int err;
    cl_mem xb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE, (E + off + 3) * 4, NULL, &err);
    cl_mem yb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE, (E + 9) * 4, NULL, &err);
    cl_mem zb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE, E * 4, NULL, &err);
    float rm0[37], rv0[37];
    for (unsigned c = 0; c < M; c++) {
        rm0[c] = 0.5f * (float)c;
        rv0[c] = 1.0f + 0.25f * (float)c;
    }
    cl_mem rmb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof rm0, rm0, &err);
    cl_mem rvb = clCreateBuffer(o->cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof rv0, rv0, &err);
    clnorm_ctx *ctx = NULL;
    clnorm_status st = clnorm_create_from_queue(q, &ctx);
    TH_EXPECT(st == CLNORM_OK && ctx, "%s: clnorm_create_from_queue: %s", label, clnorm_status_name(st));
    if (st != CLNORM_OK)
        goto out;
    TH_EXPECT(clnorm_queue(ctx) == q, "%s: clnorm_queue is not the caller's queue", label);
    TH_EXPECT(clnorm_cl_context(ctx) == o->cl, "%s: clnorm_cl_context is not the caller's context", label);
    TH_EXPECT(clnorm_device(ctx) == o->dev, "%s: clnorm_device is not the caller's device", label);

    /* 1. the caller's own kernel */
    cl_uint a_off = off, a_n = (cl_uint)E, a_salt = salt;
    clSetKernelArg(o->fill, 0, sizeof xb, &xb);
    clSetKernelArg(o->fill, 1, sizeof a_off, &a_off);
    clSetKernelArg(o->fill, 2, sizeof a_n, &a_n);
    clSetKernelArg(o->fill, 3, sizeof a_salt, &a_salt);
    size_t g = E;
    cl_event filled = NULL, normed = NULL, normed2 = NULL, read = NULL, read2 = NULL, read3 = NULL;
    err = clEnqueueNDRangeKernel(q, o->fill, 1, NULL, &g, NULL, 0, NULL, &filled);
    TH_EXPECT(err == CL_SUCCESS, "%s: fill enqueue %d", label, err);

    /* 2. clnorm waits on it */
    clnorm_desc d;
    clnorm_desc_init(&d, CLNORM_LAYER_NORM);
    d.rows = M;
    d.cols = D;
    d.x.mem = xb;
    d.x.offset = off;
    d.y.mem = yb;
    d.y.offset = 9;
    st = clnorm_forward(ctx, &d, 1, &filled, &normed);
    TH_EXPECT(st == CLNORM_OK && normed, "%s: clnorm_forward: %s (%s)", label, clnorm_status_name(st),
              clnorm_last_error(ctx));

    /* 3. a second clnorm op waits on the first one's event: BatchNorm training
       over y viewed as N=1, C=M, S=D, running stats updated */
    clnorm_desc b;
    clnorm_desc_init(&b, CLNORM_BATCH_NORM);
    b.n = 1;
    b.c = M;
    b.rank = 1;
    b.spatial[0] = D;
    b.x = d.y;
    b.y.mem = zb;
    b.running_mean.mem = rmb;
    b.running_var.mem = rvb;
    if (st == CLNORM_OK) {
        st = clnorm_forward(ctx, &b, 1, &normed, &normed2);
        TH_EXPECT(st == CLNORM_OK && normed2, "%s: chained clnorm_forward: %s (%s)", label, clnorm_status_name(st),
                  clnorm_last_error(ctx));
    }

    /* 4. read through the returned events (non-blocking reads, then wait) */
    float *y = malloc(E * 4), *z = malloc(E * 4), *x = malloc(E * 4), rm[37], rv[37];
    if (st == CLNORM_OK) {
        clEnqueueReadBuffer(q, yb, CL_FALSE, 9 * 4, E * 4, y, 1, &normed, &read);
        clEnqueueReadBuffer(q, zb, CL_FALSE, 0, E * 4, z, 1, &normed2, &read2);
        cl_event both[2];
        clEnqueueReadBuffer(q, rmb, CL_FALSE, 0, sizeof rm, rm, 1, &normed2, &both[0]);
        clEnqueueReadBuffer(q, rvb, CL_FALSE, 0, sizeof rv, rv, 1, &normed2, &both[1]);
        clWaitForEvents(1, &read);
        clWaitForEvents(1, &read2);
        clWaitForEvents(2, both);
        clReleaseEvent(both[0]);
        clReleaseEvent(both[1]);
        read3 = NULL;
        for (size_t i = 0; i < E; i++)
            x[i] = host_fill((unsigned)i, salt);
        th_set_case("%s: LayerNorm after the caller's kernel", label);
        th_inputs in = {x, NULL, NULL, NULL, NULL};
        th_outputs out = {y, NULL, NULL, NULL, NULL};
        th_compare(&d, &in, &out, 1.0, 1);
        /* the BatchNorm reference runs on the library's y (its actual input) */
        th_set_case("%s: BatchNorm chained on the LayerNorm event", label);
        th_inputs inb = {y, NULL, NULL, rm0, rv0};
        th_outputs outb = {z, NULL, NULL, rm, rv};
        th_compare(&b, &inb, &outb, 1.0, 1);
        th_set_case("%s", "");
    }
    free(y); free(z); free(x);
    (void)read3;
    if (filled) clReleaseEvent(filled);
    if (normed) clReleaseEvent(normed);
    if (normed2) clReleaseEvent(normed2);
    if (read) clReleaseEvent(read);
    if (read2) clReleaseEvent(read2);
    clnorm_destroy(ctx);
    /* the queue was retained, not taken: still usable after destroy */
    TH_EXPECT(clFinish(q) == CL_SUCCESS, "%s: the caller's queue is unusable after clnorm_destroy", label);
out:
    clReleaseMemObject(xb);
    clReleaseMemObject(yb);
    clReleaseMemObject(zb);
    clReleaseMemObject(rmb);
    clReleaseMemObject(rvb);
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
