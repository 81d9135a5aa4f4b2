/*
 * Synchronized BatchNorm over MPI (clnorm_mpi), as PyTorch's SyncBatchNorm:
 * a batch of N samples is spread over the processes, each normalizes its
 * own slice with the statistics of the whole batch.
 *
 *   mpicc syncbn_mpi.c -lclnorm_mpi -lclnorm -lOpenCL -lm
 *   mpirun -np 3 ./a.out
 *
 * Every process builds the same batch, takes its slice of samples (uneven;
 * rank 1 of 3 or more holds none), runs clnorm_mpi_bn_forward, then checks
 * its y and its saved and running statistics against one process's
 * BatchNorm of the whole batch (clnorm_forward). Exits 0 only on a match.
 */
#include <clnorm_mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N 10 /* samples in the batch */
#define C 16 /* channels */
#define S 64 /* spatial positions (8 x 8) */

/* One BatchNorm over n samples of x (host arrays in, results out). sync:
 * over comm with clnorm_mpi, else clnorm_forward. */
static clnorm_status batch_norm(clnorm_ctx *ctx, MPI_Comm comm, int sync, size_t n, const float *x, float *y,
                                float *mean, float *rstd, float *rmean, float *rvar)
{
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    const size_t E = n * C * S, bytes = (E ? E : 1) * sizeof(float);
    cl_int err;
    cl_mem X = clCreateBuffer(cl, CL_MEM_READ_WRITE, bytes, NULL, &err);
    cl_mem Y = clCreateBuffer(cl, CL_MEM_READ_WRITE, bytes, NULL, &err);
    cl_mem stats = clCreateBuffer(cl, CL_MEM_READ_WRITE, 4 * C * sizeof(float), NULL, &err);
    if (E) clEnqueueWriteBuffer(q, X, CL_TRUE, 0, bytes, x, 0, NULL, NULL);
    clEnqueueWriteBuffer(q, stats, CL_TRUE, 2 * C * sizeof(float), C * sizeof(float), rmean, 0, NULL, NULL);
    clEnqueueWriteBuffer(q, stats, CL_TRUE, 3 * C * sizeof(float), C * sizeof(float), rvar, 0, NULL, NULL);

    clnorm_desc d;
    clnorm_desc_init(&d, CLNORM_BATCH_NORM); /* training, eps 1e-5, momentum 0.1 */
    d.layout = CLNORM_CHANNELS_FIRST;
    d.n = n, d.c = C, d.rank = 2, d.spatial[0] = 8, d.spatial[1] = 8;
    if (n) d.x = (clnorm_buf){X, 0}, d.y = (clnorm_buf){Y, 0}; /* an empty slice passes none */
    d.mean = (clnorm_buf){stats, 0}, d.rstd = (clnorm_buf){stats, C};
    d.running_mean = (clnorm_buf){stats, 2 * C}, d.running_var = (clnorm_buf){stats, 3 * C};
    clnorm_status st = sync ? clnorm_mpi_bn_forward(ctx, &d, comm, 0, NULL, NULL) : clnorm_forward(ctx, &d, 0, NULL, NULL);
    if (st != CLNORM_OK) fprintf(stderr, "%s: %s (%s)\n", sync ? "clnorm_mpi_bn_forward" : "clnorm_forward",
                                 clnorm_status_name(st), clnorm_last_error(ctx));
    clFinish(q);
    if (E) clEnqueueReadBuffer(q, Y, CL_TRUE, 0, bytes, y, 0, NULL, NULL);
    float all[4 * C];
    clEnqueueReadBuffer(q, stats, CL_TRUE, 0, sizeof all, all, 0, NULL, NULL);
    for (int c = 0; c < C; c++)
        mean[c] = all[c], rstd[c] = all[C + c], rmean[c] = all[2 * C + c], rvar[c] = all[3 * C + c];
    clReleaseMemObject(X);
    clReleaseMemObject(Y);
    clReleaseMemObject(stats);
    return st;
}

/* Largest |a - b| / (1 + |b|) over n values. */
static double worst(const float *a, const float *b, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
        if (!(e <= w)) w = e; /* NaN counts as worst */
    }
    return w;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    clnorm_ctx *ctx;
    if (clnorm_create_default(&ctx) != CLNORM_OK) {
        fprintf(stderr, "rank %d: no OpenCL device\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* The batch, the same on every process: channel c has mean 3c - 20. */
    static float x[N * C * S], y_all[N * C * S], y[N * C * S];
    for (int i = 0; i < N * C * S; i++)
        x[i] = (float)(3 * ((i / S) % C) - 20) + 2.0f * sinf(0.37f * (float)i);
    /* This process's slice: rank 0 takes half, rank 1 none (from 3
     * processes on), the others share the rest. */
    size_t n0 = 0, n = 0;
    for (int r = 0, left = N; r <= rank; r++) {
        size_t take = r == size - 1 ? (size_t)left : r == 0 ? N / 2 : (r == 1 && size > 2) ? 0 : (size_t)left / (size - r);
        if (r == rank) n = take; else n0 += take;
        left -= (int)take;
    }
    float m[C], rs[C], rm[C], rv[C], m1[C], rs1[C], rm1[C], rv1[C];
    for (int c = 0; c < C; c++) rm[c] = rm1[c] = 0.0f, rv[c] = rv1[c] = 1.0f;
    clnorm_status st = batch_norm(ctx, MPI_COMM_WORLD, 1, n, x + n0 * C * S, y, m, rs, rm, rv);
    clnorm_status st1 = batch_norm(ctx, MPI_COMM_WORLD, 0, N, x, y_all, m1, rs1, rm1, rv1);
    double e = fmax(fmax(worst(y, y_all + n0 * C * S, n * C * S), worst(m, m1, C)),
                    fmax(worst(rs, rs1, C), fmax(worst(rm, rm1, C), worst(rv, rv1, C))));
    int ok = st == CLNORM_OK && st1 == CLNORM_OK && e < 1e-5, all_ok;
    printf("rank %d of %d: samples [%zu, %zu), largest relative difference from the whole batch %.2g%s\n", rank, size,
           n0, n0 + n, e, ok ? "" : "  FAILED");
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    clnorm_destroy(ctx);
    MPI_Finalize();
    return all_ok ? 0 : 1;
}
