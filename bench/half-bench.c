/*
 * float16/bfloat16 storage against the same run's copy bandwidth (issue 17,
 * section 1 target on PoCL: >= 0.8 of copy by bytes moved). For each case
 * and type: the median of 15 timed forward calls (after 3 warm-ups), and the
 * median of 15 clEnqueueCopyBuffer of x's bytes (2-byte elements) into y;
 * both move 2 * elements * 2 bytes, so the ratio is copy time / norm time.
 *
 *   build/bench/clnorm-half-bench
 */
#include "clnorm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}
static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
#define REPS 15

int main(void)
{
    clnorm_ctx *ctx;
    if (clnorm_create_default(&ctx) != CLNORM_OK) return 1;
    cl_command_queue q = clnorm_queue(ctx);
    struct {
        const char *name;
        clnorm_op op;
        size_t a, b, sp, groups;
    } cs[] = {{"layer_norm 4096x4096", CLNORM_LAYER_NORM, 4096, 4096, 0, 0},
              {"layer_norm 4096x768", CLNORM_LAYER_NORM, 4096, 768, 0, 0},
              {"rms_norm 4096x4096", CLNORM_RMS_NORM, 4096, 4096, 0, 0},
              {"group_norm 8x512x64x64 g32", CLNORM_GROUP_NORM, 8, 512, 64, 32}};
    const clnorm_dtype ts[2] = {CLNORM_FLOAT16, CLNORM_BFLOAT16};
    printf("case\tdtype\tnorm_ms\tcopy_ms\tGB/s\tratio_to_copy\n");
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int k = 0; k < 2; k++) {
            clnorm_desc d;
            clnorm_desc_init(&d, cs[i].op);
            if (cs[i].sp) {
                d.n = cs[i].a, d.c = cs[i].b, d.rank = 2, d.spatial[0] = d.spatial[1] = cs[i].sp, d.groups = cs[i].groups;
            } else {
                d.rows = cs[i].a, d.cols = cs[i].b;
            }
            d.dtype = d.param_dtype = ts[k];
            const size_t n = clnorm_desc_elements(&d), na = cs[i].sp ? cs[i].b : cs[i].b, bytes = n * 2;
            cl_int e;
            cl_mem x = clCreateBuffer(clnorm_cl_context(ctx), CL_MEM_READ_WRITE, bytes, NULL, &e);
            cl_mem y = clCreateBuffer(clnorm_cl_context(ctx), CL_MEM_READ_WRITE, bytes, NULL, &e);
            cl_mem p = clCreateBuffer(clnorm_cl_context(ctx), CL_MEM_READ_WRITE, na * 2, NULL, &e);
            unsigned short *h = malloc(bytes);
            for (size_t j = 0; j < n; j++) h[j] = (unsigned short)(k ? 0x3f80u + (j * 7919u) % 127u : 0x3c00u + (j * 7919u) % 1023u);
            clEnqueueWriteBuffer(q, x, CL_TRUE, 0, bytes, h, 0, NULL, NULL);
            clEnqueueWriteBuffer(q, p, CL_TRUE, 0, na * 2, h, 0, NULL, NULL);
            d.x = (clnorm_buf){x, 0}, d.y = (clnorm_buf){y, 0}, d.scale = (clnorm_buf){p, 0}, d.bias = (clnorm_buf){p, 0};
            double tn[REPS], tc[REPS];
            for (int r = -3; r < REPS; r++) {
                double t0 = now_ms();
                if (clnorm_forward(ctx, &d, 0, NULL, NULL) != CLNORM_OK) {
                    fprintf(stderr, "%s: %s\n", cs[i].name, clnorm_last_error(ctx));
                    return 1;
                }
                clFinish(q);
                double t1 = now_ms();
                clEnqueueCopyBuffer(q, x, y, 0, 0, bytes, 0, NULL, NULL);
                clFinish(q);
                double t2 = now_ms();
                if (r >= 0) tn[r] = t1 - t0, tc[r] = t2 - t1;
            }
            qsort(tn, REPS, sizeof tn[0], cmp);
            qsort(tc, REPS, sizeof tc[0], cmp);
            printf("%s\t%s\t%.3f\t%.3f\t%.1f\t%.2f\n", cs[i].name, k ? "bf16" : "f16", tn[REPS / 2], tc[REPS / 2],
                   2.0 * bytes / (tn[REPS / 2] * 1e-3) / 1e9, tc[REPS / 2] / tn[REPS / 2]);
            fflush(stdout);
            free(h);
            clReleaseMemObject(x), clReleaseMemObject(y), clReleaseMemObject(p);
        }
    clnorm_destroy(ctx);
    return 0;
}
