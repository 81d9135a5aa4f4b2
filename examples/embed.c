/*
 * Minimal embedding example: the application owns the OpenCL context and
 * queue; clnorm runs a LayerNorm on it.
 *
 *   cc embed.c -lclnorm -lOpenCL -lm
 *
 * Exits 0 only when the result matches a plain CPU LayerNorm.
 */
#include <clnorm.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define ROWS 4
#define COLS 1000

int main(void)
{
    /* 1. The application's own OpenCL set-up. An engine has its device
     *    already; this example borrows clnorm's default choice (CLNORM_DEVICE,
     *    else a real GPU, else a CPU; never a simulator by default). */
    clnorm_ctx *probe;
    clnorm_status st = clnorm_create_default(&probe);
    if (st != CLNORM_OK) {
        fprintf(stderr, "no OpenCL device: %s\n", clnorm_status_name(st));
        return 1;
    }
    cl_device_id device = clnorm_device(probe);
    cl_int err = clRetainDevice(device);
    clnorm_destroy(probe);
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &err);

    /* 2. Data: x is ROWS x COLS, row r has mean r + 10 and a spread of a few units. */
    static float x[ROWS * COLS], y[ROWS * COLS], gamma[COLS], beta[COLS];
    for (int i = 0; i < ROWS * COLS; i++)
        x[i] = 10.0f + (float)(i / COLS) + 3.0f * sinf(0.1f * (float)i);
    for (int j = 0; j < COLS; j++) {
        gamma[j] = 1.0f + 0.001f * (float)j;
        beta[j] = 0.5f;
    }
    cl_mem xb = clCreateBuffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof x, x, &err);
    cl_mem yb = clCreateBuffer(context, CL_MEM_WRITE_ONLY, sizeof y, NULL, &err);
    cl_mem gb = clCreateBuffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof gamma, gamma, &err);
    cl_mem bb = clCreateBuffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof beta, beta, &err);

    /* 3. clnorm on the application's queue. */
    clnorm_ctx *ctx;
    st = clnorm_create_from_queue(queue, &ctx);
    if (st != CLNORM_OK) {
        fprintf(stderr, "clnorm_create_from_queue: %s\n", clnorm_status_string(st));
        return 1;
    }
    clnorm_desc d;
    clnorm_desc_init(&d, CLNORM_LAYER_NORM); /* eps = 1e-5 */
    d.rows = ROWS;
    d.cols = COLS;
    d.x.mem = xb;
    d.y.mem = yb;
    d.scale.mem = gb;
    d.bias.mem = bb;
    cl_event done;
    st = clnorm_forward(ctx, &d, 0, NULL, &done);
    if (st != CLNORM_OK) {
        fprintf(stderr, "clnorm_forward: %s (%s)\n", clnorm_status_name(st), clnorm_last_error(ctx));
        return 1;
    }
    /* 4. Read the result once the operation's event has completed. */
    err = clEnqueueReadBuffer(queue, yb, CL_TRUE, 0, sizeof y, y, 1, &done, NULL);
    clReleaseEvent(done);

    /* 5. Check against a plain CPU LayerNorm (double precision, two passes). */
    double worst = 0.0;
    for (int r = 0; r < ROWS; r++) {
        double mean = 0.0, var = 0.0;
        for (int j = 0; j < COLS; j++)
            mean += x[r * COLS + j];
        mean /= COLS;
        for (int j = 0; j < COLS; j++)
            var += (x[r * COLS + j] - mean) * (x[r * COLS + j] - mean);
        var /= COLS;
        double rstd = 1.0 / sqrt(var + 1e-5);
        for (int j = 0; j < COLS; j++) {
            double want = (x[r * COLS + j] - mean) * rstd * gamma[j] + beta[j];
            double diff = fabs(want - y[r * COLS + j]);
            if (!(diff <= worst))
                worst = isnan(diff) ? INFINITY : diff;
        }
    }
    printf("device: clnorm on the application's queue\n");
    for (int r = 0; r < ROWS; r++)
        printf("row %d: y[0..3] = %.6f %.6f %.6f %.6f\n", r, y[r * COLS], y[r * COLS + 1], y[r * COLS + 2],
               y[r * COLS + 3]);
    printf("max |y - reference| = %.3g\n", worst);

    clnorm_destroy(ctx);
    clReleaseMemObject(xb);
    clReleaseMemObject(yb);
    clReleaseMemObject(gb);
    clReleaseMemObject(bb);
    clReleaseCommandQueue(queue);
    clReleaseContext(context);
    clReleaseDevice(device); /* root devices are not counted; balanced all the same */
    /* float32 gives about 1e-6 here (|mean|/std < 7, |y| < 5); 1e-4 leaves room
       for any summation order and nothing for a wrong result. */
    int ok = err == CL_SUCCESS && worst < 1e-4;
    printf("%s\n", ok ? "OK" : "WRONG RESULT");
    return ok ? 0 : 1;
}
