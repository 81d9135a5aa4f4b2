/*
 * clnorm-fused-bench: the fused residual add + LayerNorm/RMSNorm (issue 17
 * §2) against the unfused pair, as a ratio in one run, on the standard
 * suite's LayerNorm and RMSNorm shapes (tests/case.c) with their scale,
 * bias and saved statistics.
 *
 *   unfused   an add kernel h = x + r (float4 per work-item, built here),
 *             then clnorm_forward of h
 *   fused     clnorm_forward with residual r and h_out (h written, as
 *             vLLM's fused_add_rms_norm): the ratio unfused / fused
 *   fused-noh the same without h_out (y only)
 *
 * Each is timed by wall clock around enqueue + clFinish, median of --reps
 * (default 9) after 2 warm-up runs, alternating the three per repetition so
 * that drift hits them alike. Caches are not flushed between runs; the
 * larger shapes (64 MiB per tensor) stream from DRAM regardless.
 * Usage: clnorm-fused-bench [reps]
 */
#define _POSIX_C_SOURCE 200809L
#include "case.h"
#include "clnorm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *add_src =
    "__kernel void add4(__global const float4 *x, __global const float4 *r, __global float4 *h, uint n4)\n"
    "{ const uint i = get_global_id(0); if (i < n4) h[i] = x[i] + r[i]; }\n";

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define CHECK(c, what)                                                                                   \
    do {                                                                                                 \
        if (!(c)) {                                                                                      \
            fprintf(stderr, "clnorm-fused-bench: %s failed\n", what);                                    \
            exit(1);                                                                                     \
        }                                                                                                \
    } while (0)

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 9;
    clnorm_ctx *ctx;
    CHECK(clnorm_create_default(&ctx) == CLNORM_OK, "clnorm_create_default");
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    cl_device_id dev = clnorm_device(ctx);
    char name[256] = "";
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name, name, NULL);
    cl_int err;
    cl_program prog = clCreateProgramWithSource(cl, 1, &add_src, NULL, &err);
    CHECK(prog && clBuildProgram(prog, 1, &dev, "-cl-std=CL1.2", NULL, NULL) == CL_SUCCESS, "add kernel build");
    cl_kernel add = clCreateKernel(prog, "add4", &err);
    CHECK(add, "clCreateKernel");
    printf("# device: %s; median of %d runs, wall clock, ms\n", name, reps);
    printf("%-24s %10s %10s %10s %14s %14s\n", "case", "unfused", "fused", "fused-noh", "unfused/fused",
           "unfused/noh");
    for (size_t ci = 0; ci < th_suite_count; ci++) {
        const th_case *c = &th_suite[ci];
        if (c->op != CLNORM_LAYER_NORM && c->op != CLNORM_RMS_NORM) continue;
        const size_t rows = c->shape[0], cols = c->shape[1], n = rows * cols;
        float *host = malloc(n * sizeof *host);
        for (size_t i = 0; i < n; i++) host[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        cl_mem mx = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n * 4, host, &err);
        cl_mem mr = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n * 4, host, &err);
        cl_mem mh = clCreateBuffer(cl, CL_MEM_READ_WRITE, n * 4, NULL, &err);
        cl_mem my = clCreateBuffer(cl, CL_MEM_READ_WRITE, n * 4, NULL, &err);
        cl_mem ms = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, cols * 4, host, &err);
        cl_mem mb = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, cols * 4, host, &err);
        cl_mem mm = clCreateBuffer(cl, CL_MEM_READ_WRITE, rows * 4, NULL, &err);
        cl_mem mv = clCreateBuffer(cl, CL_MEM_READ_WRITE, rows * 4, NULL, &err);
        CHECK(mx && mr && mh && my && ms && mb && mm && mv, "clCreateBuffer");
        free(host);
        clnorm_desc norm;
        clnorm_desc_init(&norm, c->op);
        norm.rows = rows, norm.cols = cols;
        norm.x = (clnorm_buf){mh, 0}, norm.y = (clnorm_buf){my, 0}, norm.scale = (clnorm_buf){ms, 0};
        if (c->bias) norm.bias = (clnorm_buf){mb, 0};
        if (c->op == CLNORM_LAYER_NORM) norm.mean = (clnorm_buf){mm, 0};
        norm.rstd = (clnorm_buf){mv, 0};
        clnorm_desc fused = norm, noh;
        fused.x = (clnorm_buf){mx, 0}, fused.residual = (clnorm_buf){mr, 0}, fused.h_out = (clnorm_buf){mh, 0};
        noh = fused;
        noh.h_out.mem = NULL;
        const cl_uint n4 = (cl_uint)(n / 4);
        const size_t g = n4;
        clSetKernelArg(add, 0, sizeof mx, &mx);
        clSetKernelArg(add, 1, sizeof mr, &mr);
        clSetKernelArg(add, 2, sizeof mh, &mh);
        clSetKernelArg(add, 3, sizeof n4, &n4);
        double t[3][64];
        const int nr = reps > 64 ? 64 : reps;
        for (int rep = -2; rep < nr; rep++)
            for (int k = 0; k < 3; k++) {
                clFinish(q);
                const double t0 = now_ms();
                if (k == 0) {
                    CHECK(clEnqueueNDRangeKernel(q, add, 1, NULL, &g, NULL, 0, NULL, NULL) == CL_SUCCESS, "add");
                    CHECK(clnorm_forward(ctx, &norm, 0, NULL, NULL) == CLNORM_OK, "norm");
                } else {
                    CHECK(clnorm_forward(ctx, k == 1 ? &fused : &noh, 0, NULL, NULL) == CLNORM_OK, "fused");
                }
                clFinish(q);
                if (rep >= 0) t[k][rep] = now_ms() - t0;
            }
        double med[3];
        for (int k = 0; k < 3; k++) {
            qsort(t[k], (size_t)nr, sizeof(double), cmp);
            med[k] = t[k][nr / 2];
        }
        char label[64];
        snprintf(label, sizeof label, "%s %zux%zu", c->op == CLNORM_LAYER_NORM ? "layer_norm" : "rms_norm", rows,
                 cols);
        printf("%-24s %10.3f %10.3f %10.3f %14.2f %14.2f\n", label, med[0], med[1], med[2], med[0] / med[1],
               med[0] / med[2]);
        fflush(stdout);
        cl_mem all[] = {mx, mr, mh, my, ms, mb, mm, mv};
        for (int i = 0; i < 8; i++) clReleaseMemObject(all[i]);
    }
    clReleaseKernel(add);
    clReleaseProgram(prog);
    clnorm_destroy(ctx);
    return 0;
}
