/*
 * Synchronized BatchNorm forward and backward over MPI (include/clnorm_mpi.h): the
 * BatchNorm split of libclnorm with one small allgather between its steps.
 * The order of the collectives is the same on every process whatever fails,
 * so that no process waits in a collective another never enters: the
 * agreement (MPI_Allreduce) is always made, and the exchange
 * (MPI_Allgather) whenever the agreement passed, carrying a failure in its
 * status word instead of skipping it.
 */
#include "clnorm_mpi.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define R CLNORM_BN_RECORD_FLOATS

/* What one process sends in the exchange: its status, then its record. */
static size_t slot_floats(size_t C) { return 1 + R * C; }

__attribute__((visibility("default"))) clnorm_status clnorm_mpi_bn_forward(clnorm_ctx *ctx, const clnorm_desc *d,
                                                                           MPI_Comm comm, cl_uint num_wait,
                                                                           const cl_event *wait_list, cl_event *event)
{
    int np = 0;
    if (event) *event = NULL;
    if (MPI_Comm_size(comm, &np) != MPI_SUCCESS) return CLNORM_ERR_MPI;
    /* 1. This process's own checks and allocations, before any collective. */
    clnorm_status st = ctx && d ? clnorm_bn_validate(ctx, d) : CLNORM_ERR_NULL_ARGUMENT;
    if (st == CLNORM_OK && (num_wait > 0) != (wait_list != NULL)) st = CLNORM_ERR_INVALID_EVENTS;
    const size_t C = st == CLNORM_OK ? d->c : 0, slot = slot_floats(C);
    float *mine = NULL, *all = NULL, *records = NULL, *global = NULL;
    cl_mem buf = NULL;
    cl_event local_done = NULL;
    if (st == CLNORM_OK) {
        mine = malloc(slot * sizeof *mine);
        all = malloc((size_t)np * slot * sizeof *all);
        records = malloc((size_t)np * R * C * sizeof *records);
        global = malloc(R * C * sizeof *global);
        if (!mine || !all || !records || !global) st = CLNORM_ERR_OUT_OF_MEMORY;
    }
    if (st == CLNORM_OK) {
        /* the local record at 0, the global one at R * C */
        cl_int err = CL_SUCCESS;
        buf = clCreateBuffer(clnorm_cl_context(ctx), CL_MEM_READ_WRITE, 2 * R * C * sizeof(float), NULL, &err);
        if (!buf) st = (clnorm_status)(err ? err : CL_MEM_OBJECT_ALLOCATION_FAILURE);
    }
    /* 2. Agreement: has anyone failed, and is C the same everywhere? */
    long long v[3] = {st != CLNORM_OK, (long long)C, -(long long)C};
    int mpi = MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_LONG_LONG, MPI_MAX, comm);
    if (mpi != MPI_SUCCESS) {
        st = CLNORM_ERR_MPI;
        goto done;
    }
    if (v[0]) {
        if (st == CLNORM_OK) st = CLNORM_ERR_PEER_FAILED;
        goto done;
    }
    if (v[1] != -v[2]) {
        st = CLNORM_ERR_INVALID_SHAPE; /* processes disagree on the channel count */
        goto done;
    }
    /* 3. The local record, read to the host (the read waits for it). */
    st = clnorm_bn_local_stats(ctx, d, (clnorm_buf){buf, 0}, num_wait, wait_list, &local_done);
    if (st == CLNORM_OK) {
        cl_int err = clEnqueueReadBuffer(clnorm_queue(ctx), buf, CL_TRUE, 0, R * C * sizeof(float), mine + 1, 1,
                                         &local_done, NULL);
        if (err != CL_SUCCESS) st = (clnorm_status)err;
    }
    int32_t word = (int32_t)st;
    memcpy(mine, &word, sizeof word);
    /* 4. The exchange, as bytes: counts are uint bits and NaN payloads must
     * arrive as they left. */
    if (slot * sizeof(float) > INT32_MAX) {
        st = CLNORM_ERR_TOO_LARGE; /* the same C everywhere: the same answer */
        goto done;
    }
    mpi = MPI_Allgather(mine, (int)(slot * sizeof(float)), MPI_BYTE, all, (int)(slot * sizeof(float)), MPI_BYTE, comm);
    if (mpi != MPI_SUCCESS) {
        st = CLNORM_ERR_MPI;
        goto done;
    }
    for (int r = 0; r < np; ++r) {
        memcpy(&word, all + (size_t)r * slot, sizeof word);
        if (word != CLNORM_OK && st == CLNORM_OK) st = CLNORM_ERR_PEER_FAILED;
        memcpy(records + (size_t)r * R * C, all + (size_t)r * slot + 1, R * C * sizeof(float));
    }
    if (st != CLNORM_OK) goto done;
    /* 5. Merge in rank order: every process computes the same bits. */
    cl_ulong count = 0;
    if ((st = clnorm_bn_merge_stats(ctx, records, (size_t)np, C, global, &count)) != CLNORM_OK) goto done;
    /* 6. Apply the global record (the blocking write keeps global's host
     * copy valid until the device has it). */
    cl_int err = clEnqueueWriteBuffer(clnorm_queue(ctx), buf, CL_TRUE, R * C * sizeof(float), R * C * sizeof(float),
                                      global, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        st = (clnorm_status)err;
        goto done;
    }
    st = clnorm_bn_apply_stats(ctx, d, (clnorm_buf){buf, R * C}, count, 0, NULL, event);
done:
    /* Released at once: OpenCL keeps the buffer until the launches that use
     * it have finished. */
    if (local_done) clReleaseEvent(local_done);
    if (buf) clReleaseMemObject(buf);
    free(mine);
    free(all);
    free(records);
    free(global);
    return st;
}

/* The backward's exchange per process: its status, its count per channel
 * (n * S, as uint32 bits), then its sums (CLNORM_BN_GRAD_FLOATS * C). */
#define G CLNORM_BN_GRAD_FLOATS

__attribute__((visibility("default"))) clnorm_status clnorm_mpi_bn_backward(clnorm_ctx *ctx, const clnorm_desc *d,
                                                                            MPI_Comm comm, cl_uint num_wait,
                                                                            const cl_event *wait_list,
                                                                            cl_event *event)
{
    int np = 0;
    if (event) *event = NULL;
    if (MPI_Comm_size(comm, &np) != MPI_SUCCESS) return CLNORM_ERR_MPI;
    /* 1. This process's own checks and allocations, before any collective. */
    clnorm_status st = ctx && d ? clnorm_bn_validate_grad(ctx, d) : CLNORM_ERR_NULL_ARGUMENT;
    if (st == CLNORM_OK && (num_wait > 0) != (wait_list != NULL)) st = CLNORM_ERR_INVALID_EVENTS;
    const size_t C = st == CLNORM_OK ? d->c : 0, slot = 2 + G * C;
    uint32_t mycount = 0;
    if (st == CLNORM_OK) {
        size_t per = d->n; /* n * S: validated below 2^32 */
        for (unsigned i = 0; i < d->rank; ++i) per *= d->spatial[i];
        mycount = (uint32_t)per;
    }
    float *mine = NULL, *all = NULL, *sums = NULL, *global = NULL;
    cl_mem buf = NULL;
    cl_event local_done = NULL;
    if (st == CLNORM_OK) {
        mine = malloc(slot * sizeof *mine);
        all = malloc((size_t)np * slot * sizeof *all);
        sums = malloc((size_t)np * G * C * sizeof *sums);
        global = malloc(G * C * sizeof *global);
        if (!mine || !all || !sums || !global) st = CLNORM_ERR_OUT_OF_MEMORY;
    }
    if (st == CLNORM_OK) {
        /* the local sums at 0, the global ones at G * C */
        cl_int err = CL_SUCCESS;
        buf = clCreateBuffer(clnorm_cl_context(ctx), CL_MEM_READ_WRITE, 2 * G * C * sizeof(float), NULL, &err);
        if (!buf) st = (clnorm_status)(err ? err : CL_MEM_OBJECT_ALLOCATION_FAILURE);
    }
    /* 2. Agreement: has anyone failed, and is C the same everywhere? */
    long long v[3] = {st != CLNORM_OK, (long long)C, -(long long)C};
    int mpi = MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_LONG_LONG, MPI_MAX, comm);
    if (mpi != MPI_SUCCESS) {
        st = CLNORM_ERR_MPI;
        goto done;
    }
    if (v[0]) {
        if (st == CLNORM_OK) st = CLNORM_ERR_PEER_FAILED;
        goto done;
    }
    if (v[1] != -v[2]) {
        st = CLNORM_ERR_INVALID_SHAPE; /* processes disagree on the channel count */
        goto done;
    }
    /* 3. The local sums, read to the host (the read waits for them). */
    st = clnorm_bn_local_grad_sums(ctx, d, (clnorm_buf){buf, 0}, num_wait, wait_list, &local_done);
    if (st == CLNORM_OK) {
        cl_int err = clEnqueueReadBuffer(clnorm_queue(ctx), buf, CL_TRUE, 0, G * C * sizeof(float), mine + 2, 1,
                                         &local_done, NULL);
        if (err != CL_SUCCESS) st = (clnorm_status)err;
    }
    int32_t word = (int32_t)st;
    memcpy(mine, &word, sizeof word);
    memcpy(mine + 1, &mycount, sizeof mycount);
    /* 4. The exchange, as bytes (NaN payloads arrive as they left). */
    if (slot * sizeof(float) > INT32_MAX) {
        st = CLNORM_ERR_TOO_LARGE; /* the same C everywhere: the same answer */
        goto done;
    }
    mpi = MPI_Allgather(mine, (int)(slot * sizeof(float)), MPI_BYTE, all, (int)(slot * sizeof(float)), MPI_BYTE, comm);
    if (mpi != MPI_SUCCESS) {
        st = CLNORM_ERR_MPI;
        goto done;
    }
    uint64_t count = 0;
    for (int r = 0; r < np; ++r) {
        uint32_t cr;
        memcpy(&word, all + (size_t)r * slot, sizeof word);
        memcpy(&cr, all + (size_t)r * slot + 1, sizeof cr);
        if (word != CLNORM_OK && st == CLNORM_OK) st = CLNORM_ERR_PEER_FAILED;
        count += cr;
        memcpy(sums + (size_t)r * G * C, all + (size_t)r * slot + 2, G * C * sizeof(float));
    }
    if (st != CLNORM_OK) goto done;
    /* The global count: the same sum on every process, so the same verdict. */
    if (count > UINT32_MAX || count < 2) {
        st = count > UINT32_MAX ? CLNORM_ERR_TOO_LARGE : count ? CLNORM_ERR_COUNT_ONE : CLNORM_ERR_INVALID_SHAPE;
        goto done;
    }
    /* 5. Sum in rank order: every process computes the same bits. */
    if ((st = clnorm_bn_merge_grad_sums(ctx, sums, (size_t)np, C, global)) != CLNORM_OK) goto done;
    /* 6. Apply the global sums (the blocking write keeps global's host copy
     * valid until the device has it). */
    cl_int err = clEnqueueWriteBuffer(clnorm_queue(ctx), buf, CL_TRUE, G * C * sizeof(float), G * C * sizeof(float),
                                      global, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        st = (clnorm_status)err;
        goto done;
    }
    st = clnorm_bn_apply_grad(ctx, d, (clnorm_buf){buf, G * C}, count, 0, NULL, event);
done:
    if (local_done) clReleaseEvent(local_done);
    if (buf) clReleaseMemObject(buf);
    free(mine);
    free(all);
    free(sums);
    free(global);
    return st;
}
