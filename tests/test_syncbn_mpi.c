/*
 * clnorm_mpi_bn_forward under mpirun (CTest: syncbn_mpi_np1..4 and
 * syncbn_mpi_failing_rank). Every process generates the same whole batch
 * from one seed and normalizes its own uneven slice along n (with 3 or 4
 * processes rank 1's slice is empty), synchronized over MPI_COMM_WORLD and
 * over a sub-communicator. Checks, on every process:
 *  - y of its slice, the saved and the running statistics against the double
 *    reference of the whole batch (th_compare, the harness's derived
 *    tolerance: tests/test_syncbn.c says why the split stays within it) and
 *    against clnorm_forward on the whole batch (twice that tolerance);
 *  - the statistics bit-identical on every process (an allgather of them),
 *    and every output bit-identical over a repeated run;
 *  - both layouts, rank 0..3, mean 1e4 with spread 1e-2, NaN/Inf in one
 *    slice's channels.
 * "fail" mode: the last process passes a bad call (eps < 0, then an x
 * buffer too small); it must get its own status and every other process
 * CLNORM_ERR_PEER_FAILED, nothing written anywhere, no hang (CTest's
 * timeout), and a good call afterwards must work.
 * Backward (clnorm_mpi_bn_backward), after each forward case, with the
 * saved statistics the synchronized forward wrote: dx of the slice, dscale
 * and dbias against ref_backward and clnorm_backward on the whole batch
 * (the tolerance derived in syncbn_bwd.h), dscale/dbias bit-identical on
 * every process, everything bit-identical over a repeated run; "fail" mode
 * makes the same bad calls of the backward.
 * Exit status 0 on every process when all processes passed.
 */
#include "clnorm_mpi.h"
#include "common.h"
#include "syncbn_bwd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int g_rank, g_size;

/* Slices of n samples over k processes: weights 3, 0, 1, 2 (rank 1 empty)
 * from 3 processes on, 2, 1 for two; the rest to the last. */
static void split_n(size_t n, int k, size_t *ns)
{
    static const size_t w4[4] = {3, 0, 1, 2}, w2[2] = {2, 1};
    const size_t *w = k == 2 ? w2 : w4;
    size_t wsum = 0, used = 0;
    for (int r = 0; r < k; ++r) wsum += w[r % 4];
    for (int r = 0; r < k; ++r) {
        ns[r] = r + 1 == k ? n - used : n * w[r % 4] / wsum;
        used += ns[r];
    }
}

typedef struct outs {
    float *y, *mean, *rstd, *rm, *rv; /* y: this slice; statistics: C each */
} outs;

/* One synchronized call of this process's slice [n0, n0 + n) of batch d on
 * inputs in, into o. Buffers are fresh: outputs poisoned, running
 * statistics from in. bad: 1 = eps < 0, 2 = x too small. */
static int run_sync(clnorm_ctx *ctx, MPI_Comm comm, const clnorm_desc *d, size_t n0, size_t n, const th_inputs *in,
                    outs *o, int bad, int *untouched)
{
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    const size_t C = d->c, S = ref_spatial(d), E = n * C * S;
    cl_mem X = th_buffer(cl, E + 1), Y = th_buffer(cl, E + 1), SC = th_buffer(cl, C), B = th_buffer(cl, C);
    cl_mem M = th_buffer(cl, C), RS = th_buffer(cl, C), RM = th_buffer(cl, C), RV = th_buffer(cl, C);
    th_write(q, X, 1, E, in->x + n0 * C * S);
    th_write(q, SC, 0, C, in->scale);
    th_write(q, B, 0, C, in->bias);
    th_write(q, RM, 0, C, in->running_mean);
    th_write(q, RV, 0, C, in->running_var);
    const size_t np = E + 1 > C ? E + 1 : C; /* poison for y and for the saved statistics */
    float *p = malloc(np * 4);
    for (size_t i = 0; i < np; ++i) p[i] = th_from_bits(TH_POISON_BITS);
    th_write(q, Y, 0, E + 1, p);
    th_write(q, M, 0, C, p);
    th_write(q, RS, 0, C, p);
    clnorm_desc dr = *d;
    dr.n = n;
    dr.x = n ? (clnorm_buf){X, 1} : (clnorm_buf){NULL, 0};
    dr.y = n ? (clnorm_buf){Y, 1} : (clnorm_buf){NULL, 0};
    dr.scale = (clnorm_buf){SC, 0}, dr.bias = (clnorm_buf){B, 0};
    dr.mean = (clnorm_buf){M, 0}, dr.rstd = (clnorm_buf){RS, 0};
    dr.running_mean = (clnorm_buf){RM, 0}, dr.running_var = (clnorm_buf){RV, 0};
    if (bad == 1) dr.eps = -1.0f;
    if (bad == 2) dr.n = n + 1, dr.x.mem = X, dr.y.mem = Y; /* one sample more than the buffers hold */
    cl_event ev = NULL;
    int st = clnorm_mpi_bn_forward(ctx, &dr, comm, 0, NULL, &ev);
    if (ev) {
        TH_CL(clWaitForEvents(1, &ev));
        clReleaseEvent(ev);
    }
    TH_CL(clFinish(q));
    if (E) TH_CL(clEnqueueReadBuffer(q, Y, CL_TRUE, 4, E * 4, o->y, 0, NULL, NULL));
    TH_CL(clEnqueueReadBuffer(q, M, CL_TRUE, 0, C * 4, o->mean, 0, NULL, NULL));
    TH_CL(clEnqueueReadBuffer(q, RS, CL_TRUE, 0, C * 4, o->rstd, 0, NULL, NULL));
    TH_CL(clEnqueueReadBuffer(q, RM, CL_TRUE, 0, C * 4, o->rm, 0, NULL, NULL));
    TH_CL(clEnqueueReadBuffer(q, RV, CL_TRUE, 0, C * 4, o->rv, 0, NULL, NULL));
    if (untouched) { /* a rejected call: poison and running statistics as uploaded */
        *untouched = !memcmp(o->rm, in->running_mean, C * 4) && !memcmp(o->rv, in->running_var, C * 4);
        for (size_t i = 0; i < E; ++i) *untouched &= th_bits(o->y[i]) == TH_POISON_BITS;
        for (size_t i = 0; i < C; ++i)
            *untouched &= th_bits(o->mean[i]) == TH_POISON_BITS && th_bits(o->rstd[i]) == TH_POISON_BITS;
    }
    free(p);
    cl_mem all[] = {X, Y, SC, B, M, RS, RM, RV};
    for (size_t i = 0; i < NELEM(all); ++i) clReleaseMemObject(all[i]);
    return st;
}

/* One synchronized backward of this process's slice [n0, n0 + n) of batch d
 * (x, dy whole; saved mean/rstd), into dx (the slice), ds, db. bad: 1 =
 * eps < 0, 2 = dy too small. untouched: whether every output kept its
 * poison. */
static int run_sync_bwd(clnorm_ctx *ctx, MPI_Comm comm, const clnorm_desc *d, size_t n0, size_t n, const float *x,
                        const float *dy, const float *sc, const float *mean, const float *rstd, float *dx, float *ds,
                        float *db, int bad, int *untouched)
{
    cl_context cl = clnorm_cl_context(ctx);
    cl_command_queue q = clnorm_queue(ctx);
    const size_t C = d->c, S = ref_spatial(d), E = n * C * S;
    cl_mem X = th_buffer(cl, E + 1), DY = th_buffer(cl, E + 1), DX = th_buffer(cl, E + 1), SC = th_buffer(cl, C);
    cl_mem M = th_buffer(cl, C), RS = th_buffer(cl, C), DS = th_buffer(cl, C), DB = th_buffer(cl, C);
    th_write(q, X, 1, E, x + n0 * C * S), th_write(q, DY, 1, E, dy + n0 * C * S);
    th_write(q, SC, 0, C, sc), th_write(q, M, 0, C, mean), th_write(q, RS, 0, C, rstd);
    const size_t np = E + 1 > C ? E + 1 : C;
    float *p = malloc(np * 4);
    for (size_t i = 0; i < np; ++i) p[i] = th_from_bits(TH_POISON_BITS);
    th_write(q, DX, 0, E + 1, p), th_write(q, DS, 0, C, p), th_write(q, DB, 0, C, p);
    clnorm_desc dr = *d;
    dr.n = n;
    dr.x = n ? (clnorm_buf){X, 1} : (clnorm_buf){NULL, 0};
    dr.dy = n ? (clnorm_buf){DY, 1} : (clnorm_buf){NULL, 0};
    dr.dx = n ? (clnorm_buf){DX, 1} : (clnorm_buf){NULL, 0};
    dr.scale = (clnorm_buf){SC, 0}, dr.mean = (clnorm_buf){M, 0}, dr.rstd = (clnorm_buf){RS, 0};
    dr.dscale = (clnorm_buf){DS, 0}, dr.dbias = (clnorm_buf){DB, 0};
    if (bad == 1) dr.eps = -1.0f;
    if (bad == 2) dr.n = n + 1, dr.x.mem = X, dr.dy.mem = DY, dr.dx.mem = DX; /* a sample more than the buffers */
    cl_event ev = NULL;
    int st = clnorm_mpi_bn_backward(ctx, &dr, comm, 0, NULL, &ev);
    if (ev) {
        TH_CL(clWaitForEvents(1, &ev));
        clReleaseEvent(ev);
    }
    TH_CL(clFinish(q));
    if (E) TH_CL(clEnqueueReadBuffer(q, DX, CL_TRUE, 4, E * 4, dx, 0, NULL, NULL));
    TH_CL(clEnqueueReadBuffer(q, DS, CL_TRUE, 0, C * 4, ds, 0, NULL, NULL));
    TH_CL(clEnqueueReadBuffer(q, DB, CL_TRUE, 0, C * 4, db, 0, NULL, NULL));
    if (untouched) {
        *untouched = 1;
        for (size_t i = 0; i < E; ++i) *untouched &= th_bits(dx[i]) == TH_POISON_BITS;
        for (size_t i = 0; i < C; ++i)
            *untouched &= th_bits(ds[i]) == TH_POISON_BITS && th_bits(db[i]) == TH_POISON_BITS;
    }
    free(p);
    cl_mem all[] = {X, DY, DX, SC, M, RS, DS, DB};
    for (size_t i = 0; i < NELEM(all); ++i) clReleaseMemObject(all[i]);
    return st;
}

/* The synchronized backward of batch d over comm with the saved statistics
 * mean/rstd (those every process's synchronized forward wrote). */
static void check_backward(clnorm_ctx *ctx, MPI_Comm comm, const clnorm_desc *d, const size_t *ns, int rank, int size,
                           const float *x, const float *sc, const float *mean, const float *rstd, uint64_t seed)
{
    size_t len[TH_ROLES], n0 = 0;
    th_desc_lengths(d, len);
    for (int r = 0; r < rank; ++r) n0 += ns[r];
    const size_t E = len[TH_X], C = d->c, S = ref_spatial(d), off = n0 * C * S, mine = ns[rank] * C * S;
    float *dy = malloc(E * 4);
    th_rng rng;
    th_rng_init(&rng, seed ^ 0x5bd1e995u); /* the same dy on every process */
    th_fill_normal(&rng, dy, E, 0.1, 1.0);
    float *dx = malloc((mine ? mine : 1) * 4), *ds = malloc(C * 4), *db = malloc(C * 4);
    float *dx2 = malloc((mine ? mine : 1) * 4), *ds2 = malloc(C * 4), *db2 = malloc(C * 4);
    int st = run_sync_bwd(ctx, comm, d, n0, ns[rank], x, dy, sc, mean, rstd, dx, ds, db, 0, NULL);
    int st2 = run_sync_bwd(ctx, comm, d, n0, ns[rank], x, dy, sc, mean, rstd, dx2, ds2, db2, 0, NULL);
    TH_EXPECT(st == CLNORM_OK && st2 == CLNORM_OK, "clnorm_mpi_bn_backward: %s, then %s (%s)",
              clnorm_status_name(st), clnorm_status_name(st2), clnorm_last_error(ctx));
    if (st == CLNORM_OK && st2 == CLNORM_OK) {
        TH_EXPECT(!memcmp(dx, dx2, mine * 4) && !memcmp(ds, ds2, C * 4) && !memcmp(db, db2, C * 4),
                  "backward: a repeated run gave other bits");
        float *mine2 = malloc(2 * C * 4), *every = malloc((size_t)size * 2 * C * 4);
        memcpy(mine2, ds, C * 4), memcpy(mine2 + C, db, C * 4);
        MPI_Allgather(mine2, (int)(2 * C * 4), MPI_BYTE, every, (int)(2 * C * 4), MPI_BYTE, comm);
        for (int r = 1; r < size; ++r)
            TH_EXPECT(!memcmp(every, every + (size_t)r * 2 * C, 2 * C * 4),
                      "dscale/dbias of rank %d differ from rank 0's", r);
        free(mine2), free(every);
        /* whole batch: clnorm_backward's dx with this slice replaced by ours */
        float *dx1 = malloc(E * 4), *ds1 = malloc(C * 4), *db1 = malloc(C * 4), *all = malloc(E * 4);
        bwd_ref ref;
        if (bwd_one_call(ctx, d, x, dy, sc, mean, rstd, dx1, ds1, db1) == CLNORM_OK) {
            memcpy(all, dx1, E * 4);
            memcpy(all + off, dx, mine * 4);
            TH_EXPECT(bwd_ref_make(d, x, dy, sc, mean, rstd, &ref) == 0, "ref_backward rejected the case");
            bwd_compare_ref(&ref, E, C, all, ds, db);
            bwd_compare_pair(&ref, E, C, dx1, ds1, db1, all, ds, db);
            bwd_ref_free(&ref);
        }
        free(dx1), free(ds1), free(db1), free(all);
    }
    free(dy), free(dx), free(ds), free(db), free(dx2), free(ds2), free(db2);
}

static outs outs_alloc(size_t E, size_t C)
{
    outs o = {malloc((E ? E : 1) * 4), malloc(C * 4), malloc(C * 4), malloc(C * 4), malloc(C * 4)};
    return o;
}
static void outs_free(outs *o) { free(o->y), free(o->mean), free(o->rstd), free(o->rm), free(o->rv); }

/* One batch synchronized over comm (this process is rank `rank` of `size`). */
static void check_case(clnorm_ctx *ctx, MPI_Comm comm, clnorm_desc d, th_kind kind, uint64_t seed)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    char lab[128];
    size_t ns[64], n0 = 0;
    split_n(d.n, size, ns);
    for (int r = 0; r < rank; ++r) n0 += ns[r];
    th_set_case("%s kind=%s np=%d rank %d slice [%zu, %zu)", th_desc_label(&d, lab, sizeof lab), th_kind_name(kind),
                size, rank, n0, n0 + ns[rank]);
    size_t len[TH_ROLES];
    th_desc_lengths(&d, len);
    const size_t E = len[TH_X], C = d.c, S = ref_spatial(&d), off = n0 * C * S, mine = ns[rank] * C * S;
    float *x = malloc(E * 4), *sc = malloc(C * 4), *b = malloc(C * 4), *rm = malloc(C * 4), *rv = malloc(C * 4);
    th_rng rng;
    th_rng_init(&rng, seed); /* the same batch on every process */
    th_gen_inputs(&rng, &d, kind, x, sc, b, rm, rv);
    th_inputs in = {x, sc, b, rm, rv};
    outs o = outs_alloc(mine, C), o2 = outs_alloc(mine, C);
    int st = run_sync(ctx, comm, &d, n0, ns[rank], &in, &o, 0, NULL);
    int st2 = run_sync(ctx, comm, &d, n0, ns[rank], &in, &o2, 0, NULL);
    TH_EXPECT(st == CLNORM_OK && st2 == CLNORM_OK, "clnorm_mpi_bn_forward: %s, then %s (%s)", clnorm_status_name(st),
              clnorm_status_name(st2), clnorm_last_error(ctx));
    if (st == CLNORM_OK && st2 == CLNORM_OK) {
        TH_EXPECT(!memcmp(o.y, o2.y, mine * 4) && !memcmp(o.mean, o2.mean, C * 4) && !memcmp(o.rstd, o2.rstd, C * 4) &&
                      !memcmp(o.rm, o2.rm, C * 4) && !memcmp(o.rv, o2.rv, C * 4),
                  "a repeated run gave other bits");
        /* the statistics of every process, bit for bit */
        float *mystats = malloc(4 * C * 4), *every = malloc((size_t)size * 4 * C * 4);
        memcpy(mystats, o.mean, C * 4), memcpy(mystats + C, o.rstd, C * 4);
        memcpy(mystats + 2 * C, o.rm, C * 4), memcpy(mystats + 3 * C, o.rv, C * 4);
        MPI_Allgather(mystats, (int)(4 * C * 4), MPI_BYTE, every, (int)(4 * C * 4), MPI_BYTE, comm);
        for (int r = 1; r < size; ++r)
            TH_EXPECT(!memcmp(every, every + (size_t)r * 4 * C, 4 * C * 4),
                      "saved/running statistics of rank %d differ from rank 0's", r);
        /* whole batch: clnorm_forward's y with this slice replaced by ours */
        th_outputs one = {malloc(E * 4), malloc(C * 4), malloc(C * 4), malloc(C * 4), malloc(C * 4)};
        if (th_run_ok(ctx, &d, &in, &one, 0, 0) == CLNORM_OK) {
            float *y = malloc(E * 4);
            memcpy(y, one.y, E * 4);
            memcpy(y + off, o.y, mine * 4);
            th_outputs got = {y, o.mean, o.rstd, o.rm, o.rv};
            th_compare(&d, &in, &got, 1.0, 1);
            th_compare_y(&d, &in, one.y, y, E, 1.0, 1);
            free(y);
        }
        free(one.y), free(one.mean), free(one.rstd), free(one.running_mean), free(one.running_var);
        free(mystats), free(every);
        th_set_case("backward %s kind=%s np=%d rank %d slice [%zu, %zu)", lab, th_kind_name(kind), size, rank, n0,
                    n0 + ns[rank]);
        check_backward(ctx, comm, &d, ns, rank, size, x, sc, o.mean, o.rstd, seed);
    }
    outs_free(&o), outs_free(&o2);
    free(x), free(sc), free(b), free(rm), free(rv);
}

static void run_checks(clnorm_ctx *ctx)
{
    static const th_shape shapes[] = {
        {7, 3, 0, {0}}, {6, 5, 1, {70}}, {5, 4, 2, {5, 7}}, {4, 16, 3, {2, 3, 5}}, {9, 33, 2, {8, 9}},
    };
    static const th_kind kinds[] = {TH_NORMAL, TH_OFFSET_1E4, TH_NANINF};
    uint64_t seed = (uint64_t)th_env_long("CLNORM_TEST_SEED", 20260118);
    for (size_t si = 0; si < NELEM(shapes); ++si)
        for (int lay = 0; lay < 2; ++lay)
            for (size_t ki = 0; ki < NELEM(kinds); ++ki) {
                clnorm_desc d = th_shape_desc(CLNORM_BATCH_NORM, (clnorm_layout)lay, &shapes[si]);
                d.running_var_biased = (si + ki) % 4 == 3;
                check_case(ctx, MPI_COMM_WORLD, d, kinds[ki], seed++);
            }
    /* A sub-communicator as the process group: even and odd ranks each
     * synchronize their own batch. */
    MPI_Comm half;
    MPI_Comm_split(MPI_COMM_WORLD, g_rank % 2, g_rank, &half);
    th_shape sh = {6, 8, 2, {4, 5}};
    check_case(ctx, half, th_shape_desc(CLNORM_BATCH_NORM, CLNORM_CHANNELS_LAST, &sh), TH_NORMAL, seed + (g_rank % 2));
    MPI_Comm_free(&half);
}

/* The last process makes a bad call; every process must return at once. */
static void run_failing(clnorm_ctx *ctx)
{
    th_shape sh = {5, 4, 1, {6}};
    clnorm_desc d = th_shape_desc(CLNORM_BATCH_NORM, CLNORM_CHANNELS_FIRST, &sh);
    size_t len[TH_ROLES], ns[64], n0 = 0;
    th_desc_lengths(&d, len);
    split_n(d.n, g_size, ns);
    for (int r = 0; r < g_rank; ++r) n0 += ns[r];
    const size_t C = d.c;
    float *x = malloc(len[TH_X] * 4), *sc = malloc(C * 4), *b = malloc(C * 4), *rm = malloc(C * 4), *rv = malloc(C * 4);
    th_rng rng;
    th_rng_init(&rng, 7);
    th_gen_inputs(&rng, &d, TH_NORMAL, x, sc, b, rm, rv);
    th_inputs in = {x, sc, b, rm, rv};
    outs o = outs_alloc(ns[g_rank] * C * 6, C);
    const int last = g_rank == g_size - 1;
    for (int bad = 1; bad <= 2; ++bad) {
        int untouched = 0;
        th_set_case("failing rank %d, bad call %d, this rank %d", g_size - 1, bad, g_rank);
        int st = run_sync(ctx, MPI_COMM_WORLD, &d, n0, ns[g_rank], &in, &o, last ? bad : 0, &untouched);
        const int want = !last ? CLNORM_ERR_PEER_FAILED : bad == 1 ? CLNORM_ERR_INVALID_EPS : CLNORM_ERR_BUFFER_TOO_SMALL;
        TH_EXPECT(st == want, "status %s, want %s", clnorm_status_name(st), clnorm_status_name(want));
        TH_EXPECT(untouched, "a failed synchronized call wrote a buffer");
    }
    th_set_case("after the failures, rank %d", g_rank);
    TH_EXPECT(run_sync(ctx, MPI_COMM_WORLD, &d, n0, ns[g_rank], &in, &o, 0, NULL) == CLNORM_OK,
              "a good call after the failures failed: %s", clnorm_last_error(ctx));
    /* the backward with the statistics of that good forward */
    float *dy = malloc(len[TH_X] * 4), *dx = malloc(len[TH_X] * 4), *ds = malloc(C * 4), *db = malloc(C * 4);
    th_fill_normal(&rng, dy, len[TH_X], 0.0, 1.0);
    for (int bad = 1; bad <= 2; ++bad) {
        int untouched = 0;
        th_set_case("backward: failing rank %d, bad call %d, this rank %d", g_size - 1, bad, g_rank);
        int st = run_sync_bwd(ctx, MPI_COMM_WORLD, &d, n0, ns[g_rank], x, dy, sc, o.mean, o.rstd, dx, ds, db,
                              last ? bad : 0, &untouched);
        const int want = !last ? CLNORM_ERR_PEER_FAILED : bad == 1 ? CLNORM_ERR_INVALID_EPS : CLNORM_ERR_BUFFER_TOO_SMALL;
        TH_EXPECT(st == want, "status %s, want %s", clnorm_status_name(st), clnorm_status_name(want));
        TH_EXPECT(untouched, "a failed synchronized backward wrote a buffer");
    }
    th_set_case("backward after the failures, rank %d", g_rank);
    TH_EXPECT(run_sync_bwd(ctx, MPI_COMM_WORLD, &d, n0, ns[g_rank], x, dy, sc, o.mean, o.rstd, dx, ds, db, 0, NULL) ==
                  CLNORM_OK,
              "a good backward after the failures failed: %s", clnorm_last_error(ctx));
    free(dy), free(dx), free(ds), free(db);
    outs_free(&o);
    free(x), free(sc), free(b), free(rm), free(rv);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const int failing = argc > 1 && !strcmp(argv[1], "fail");
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    if (failing)
        run_failing(ctx);
    else
        run_checks(ctx);
    long f = (long)th_end(), worst = 0;
    MPI_Allreduce(&f, &worst, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("# test_syncbn_mpi %s: %d processes, %s\n", failing ? "fail" : "checks", g_size,
               worst ? "FAILED (see FAIL lines)" : "all passed");
    th_ctx_release();
    MPI_Finalize();
    return worst ? EXIT_FAILURE : EXIT_SUCCESS;
}
