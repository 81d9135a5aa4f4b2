/*
 * Synchronized BatchNorm forward (clnorm_mpi_bn_forward) against local
 * BatchNorm (clnorm_forward) on the same per-process slice, and the
 * synchronized backward (clnorm_mpi_bn_backward: dx, dscale, dbias) against
 * the local one (clnorm_backward), as ratios in one run, for the standard
 * suite's BatchNorm training shapes (th_suite); a "fwd" and a "bwd" row per
 * shape:
 *
 *   mpirun -np 2 build/bench/syncbn-bench [--reps N] [--max-elems E]
 *
 * Each shape is the whole batch; process r holds its share of the samples
 * (N / np, the remainder to the last). Every repetition times, each after
 * a barrier and to clFinish, the local call and the synchronized one, in
 * alternating order;
 * a step is as slow as its slowest process, so each time is the maximum
 * over processes, and the report gives the medians and local / sync (1.0:
 * synchronization is free; the target is >= 0.8 on PoCL).
 * --max-elems halves the shapes (th_case_reduce) for a quick run.
 */
#include "clnorm_mpi.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, np, reps = 15;
    size_t max_elems = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--max-elems")) max_elems = (size_t)atoll(argv[i + 1]);
    }
    if (reps < 1) reps = 1;
    clnorm_ctx *ctx = th_ctx();
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    if (rank == 0)
        printf("# syncbn-bench: %d processes, %d repetitions, device %s\n"
               "# %-40s %10s %10s %8s\n", np, reps, th_device_name(), "whole batch (per-process slice)",
               "local ms", "sync ms", "ratio");
    double *tl = malloc((size_t)reps * sizeof *tl), *ts = malloc((size_t)reps * sizeof *ts);
    int failed = 0;
    for (size_t k = 0; k < th_suite_count; ++k) {
        th_case c = th_suite[k];
        if (c.op != CLNORM_BATCH_NORM || !c.training) continue;
        if (max_elems) th_case_reduce(&c, max_elems);
        clnorm_desc d;
        th_case_desc(&c, &d);
        const size_t whole = d.n, share = whole / (size_t)np;
        d.n = rank == np - 1 ? whole - share * (size_t)(np - 1) : share;
        const size_t C = d.c, E = clnorm_desc_elements(&d);
        cl_mem X = th_buffer(cl, E), Y = th_buffer(cl, E), P = th_buffer(cl, 8 * C);
        cl_mem DY = th_buffer(cl, E), DX = th_buffer(cl, E);
        float *x = malloc(E * sizeof *x), *p = malloc(6 * C * sizeof *p);
        th_rng rng;
        th_rng_init(&rng, 1 + (uint64_t)rank);
        th_fill_normal(&rng, x, E, 0.5, 2.0);
        for (size_t i = 0; i < 6 * C; ++i) p[i] = i < 5 * C ? 1.0f : 0.5f;
        th_write(q, X, 0, E, x);
        th_fill_normal(&rng, x, E, 0.0, 1.0);
        th_write(q, DY, 0, E, x);
        th_write(q, P, 0, 6 * C, p);
        /* PyTorch's training call: affine, saved statistics, running statistics */
        d.x = (clnorm_buf){X, 0}, d.y = (clnorm_buf){Y, 0};
        d.scale = (clnorm_buf){P, 0}, d.bias = (clnorm_buf){P, C}, d.mean = (clnorm_buf){P, 2 * C};
        d.rstd = (clnorm_buf){P, 3 * C}, d.running_mean = (clnorm_buf){P, 4 * C}, d.running_var = (clnorm_buf){P, 5 * C};
        /* the backward's: dy, dx, dscale, dbias (PyTorch's output_mask all set) */
        d.dy = (clnorm_buf){DY, 0}, d.dx = (clnorm_buf){DX, 0};
        d.dscale = (clnorm_buf){P, 6 * C}, d.dbias = (clnorm_buf){P, 7 * C};
        for (int bwd = 0; bwd < 2; ++bwd) {
            for (int r = -2; r < reps; ++r) { /* two warm-up rounds: program builds, scratch */
                /* Alternate which call goes first: the second finds caches and
                 * pages as the first left them. */
                double t[2];
                int st = 0, st2 = 0;
                for (int j = 0; j < 2; ++j) {
                    const int sync = (j + r) % 2;
                    MPI_Barrier(MPI_COMM_WORLD);
                    const double t0 = now_s();
                    const int s1 = bwd ? (sync ? clnorm_mpi_bn_backward(ctx, &d, MPI_COMM_WORLD, 0, NULL, NULL)
                                               : clnorm_backward(ctx, &d, 0, NULL, NULL))
                                       : (sync ? clnorm_mpi_bn_forward(ctx, &d, MPI_COMM_WORLD, 0, NULL, NULL)
                                               : clnorm_forward(ctx, &d, 0, NULL, NULL));
                    clFinish(q);
                    t[sync] = now_s() - t0;
                    if (sync) st2 = s1; else st = s1;
                }
                if (st || st2) {
                    fprintf(stderr, "rank %d: %s / %s: %s\n", rank, clnorm_status_name(st), clnorm_status_name(st2),
                            clnorm_last_error(ctx));
                    failed = 1;
                }
                MPI_Allreduce(MPI_IN_PLACE, t, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                if (r >= 0) tl[r] = t[0], ts[r] = t[1];
            }
            const double ml = median(tl, reps), ms = median(ts, reps);
            if (rank == 0) {
                char lab[96], shape[48];
                th_case_label(&c, lab, sizeof lab);
                snprintf(shape, sizeof shape, " (n=%zu)", d.n);
                strncat(lab, shape, sizeof lab - strlen(lab) - 1);
                printf("  %s %-36s %10.3f %10.3f %8.3f\n", bwd ? "bwd" : "fwd", lab, 1e3 * ml, 1e3 * ms, ml / ms);
            }
        }
        clReleaseMemObject(X), clReleaseMemObject(Y), clReleaseMemObject(P);
        clReleaseMemObject(DY), clReleaseMemObject(DX);
        free(x), free(p);
    }
    free(tl), free(ts);
    th_ctx_release();
    MPI_Finalize();
    return failed;
}
