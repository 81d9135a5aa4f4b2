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

/* What the forward and the backward do differently inside the one protocol
 * (bn_sync): the size of a process's part, whether its count travels in the
 * exchange, and the split's three steps. */
typedef struct {
    size_t per_c; /* floats per channel in a part: a record or sums */
    size_t head;  /* header words before the part: the status, and the count when 2 */
    clnorm_status (*validate)(clnorm_ctx *ctx, const clnorm_desc *d);
    clnorm_status (*local)(clnorm_ctx *ctx, const clnorm_desc *d, clnorm_buf part, cl_uint num_wait,
                           const cl_event *wait_list, cl_event *event);
    /* parts: k parts in rank order; sent: the sum of the counts sent (0
     * when head is 1); *count: the global count for apply. */
    clnorm_status (*merge)(clnorm_ctx *ctx, const float *parts, size_t k, size_t c, uint64_t sent, float *global,
                           cl_ulong *count);
    clnorm_status (*apply)(clnorm_ctx *ctx, const clnorm_desc *d, clnorm_buf global, cl_ulong count, cl_uint num_wait,
                           const cl_event *wait_list, cl_event *event);
} bn_direction;

static clnorm_status merge_fwd(clnorm_ctx *ctx, const float *records, size_t k, size_t c, uint64_t sent,
                               float *global, cl_ulong *count)
{
    (void)sent; /* the records carry their counts */
    return clnorm_bn_merge_stats(ctx, records, k, c, global, count);
}

static clnorm_status merge_bwd(clnorm_ctx *ctx, const float *sums, size_t k, size_t c, uint64_t sent, float *global,
                               cl_ulong *count)
{
    /* The global count: the same sum on every process, so the same verdict. */
    if (sent > UINT32_MAX || sent < 2)
        return sent > UINT32_MAX ? CLNORM_ERR_TOO_LARGE : sent ? CLNORM_ERR_COUNT_ONE : CLNORM_ERR_INVALID_SHAPE;
    *count = sent;
    return clnorm_bn_merge_grad_sums(ctx, sums, k, c, global);
}

/* The forward's exchange per process: its status, then its record
 * (CLNORM_BN_RECORD_FLOATS * C). */
static const bn_direction bn_fwd = {CLNORM_BN_RECORD_FLOATS, 1, clnorm_bn_validate, clnorm_bn_local_stats, merge_fwd,
                                    clnorm_bn_apply_stats};

/* The backward's exchange per process: its status, its count per channel
 * (n * S, as uint32 bits), then its sums (CLNORM_BN_GRAD_FLOATS * C). */
static const bn_direction bn_bwd = {CLNORM_BN_GRAD_FLOATS,    2,         clnorm_bn_validate_grad,
                                    clnorm_bn_local_grad_sums, merge_bwd, clnorm_bn_apply_grad};

/* The agree-then-allgather protocol of both directions. */
static clnorm_status bn_sync(const bn_direction *dir, clnorm_ctx *ctx, const clnorm_desc *d, MPI_Comm comm,
                             cl_uint num_wait, const cl_event *wait_list, cl_event *event)
{
    int np = 0;
    if (event) *event = NULL;
    if (MPI_Comm_size(comm, &np) != MPI_SUCCESS) return CLNORM_ERR_MPI;
    /* 1. This process's own checks and allocations, before any collective. */
    clnorm_status st = ctx && d ? dir->validate(ctx, d) : CLNORM_ERR_NULL_ARGUMENT;
    if (st == CLNORM_OK && (num_wait > 0) != (wait_list != NULL)) st = CLNORM_ERR_INVALID_EVENTS;
    const size_t C = st == CLNORM_OK ? d->c : 0, P = dir->per_c * C, head = dir->head, slot = head + P;
    uint32_t mycount = 0;
    if (st == CLNORM_OK && head > 1) {
        size_t per = d->n; /* n * S: validated below 2^32 */
        for (unsigned i = 0; i < d->rank; ++i) per *= d->spatial[i];
        mycount = (uint32_t)per;
    }
    float *mine = NULL, *all = NULL, *parts = NULL, *global = NULL;
    cl_mem buf = NULL;
    cl_event local_done = NULL;
    if (st == CLNORM_OK) {
        mine = malloc(slot * sizeof *mine);
        all = malloc((size_t)np * slot * sizeof *all);
        parts = malloc((size_t)np * P * sizeof *parts);
        global = malloc(P * sizeof *global);
        if (!mine || !all || !parts || !global) st = CLNORM_ERR_OUT_OF_MEMORY;
    }
    if (st == CLNORM_OK) {
        /* the local part at 0, the global one at P */
        cl_int err = CL_SUCCESS;
        buf = clCreateBuffer(clnorm_cl_context(ctx), CL_MEM_READ_WRITE, 2 * P * sizeof(float), NULL, &err);
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
    /* 3. The local part, read to the host (the read waits for it). */
    st = dir->local(ctx, d, (clnorm_buf){buf, 0}, num_wait, wait_list, &local_done);
    if (st == CLNORM_OK) {
        cl_int err = clEnqueueReadBuffer(clnorm_queue(ctx), buf, CL_TRUE, 0, P * sizeof(float), mine + head, 1,
                                         &local_done, NULL);
        if (err != CL_SUCCESS) st = (clnorm_status)err;
    }
    int32_t word = (int32_t)st;
    memcpy(mine, &word, sizeof word);
    if (head > 1) memcpy(mine + 1, &mycount, sizeof mycount);
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
    uint64_t sent = 0;
    for (int r = 0; r < np; ++r) {
        memcpy(&word, all + (size_t)r * slot, sizeof word);
        if (word != CLNORM_OK && st == CLNORM_OK) st = CLNORM_ERR_PEER_FAILED;
        if (head > 1) {
            uint32_t cr;
            memcpy(&cr, all + (size_t)r * slot + 1, sizeof cr);
            sent += cr;
        }
        memcpy(parts + (size_t)r * P, all + (size_t)r * slot + head, P * sizeof(float));
    }
    if (st != CLNORM_OK) goto done;
    /* 5. Merge in rank order: every process computes the same bits. */
    cl_ulong count = 0;
    if ((st = dir->merge(ctx, parts, (size_t)np, C, sent, global, &count)) != CLNORM_OK) goto done;
    /* 6. Apply the global part (the blocking write keeps global's host copy
     * valid until the device has it). */
    cl_int err = clEnqueueWriteBuffer(clnorm_queue(ctx), buf, CL_TRUE, P * sizeof(float), P * sizeof(float), global, 0,
                                      NULL, NULL);
    if (err != CL_SUCCESS) {
        st = (clnorm_status)err;
        goto done;
    }
    st = dir->apply(ctx, d, (clnorm_buf){buf, P}, count, 0, NULL, event);
done:
    /* Released at once: OpenCL keeps the buffer until the launches that use
     * it have finished. */
    if (local_done) clReleaseEvent(local_done);
    if (buf) clReleaseMemObject(buf);
    free(mine);
    free(all);
    free(parts);
    free(global);
    return st;
}

__attribute__((visibility("default"))) clnorm_status clnorm_mpi_bn_forward(clnorm_ctx *ctx, const clnorm_desc *d,
                                                                           MPI_Comm comm, cl_uint num_wait,
                                                                           const cl_event *wait_list, cl_event *event)
{
    return bn_sync(&bn_fwd, ctx, d, comm, num_wait, wait_list, event);
}

__attribute__((visibility("default"))) clnorm_status clnorm_mpi_bn_backward(clnorm_ctx *ctx, const clnorm_desc *d,
                                                                            MPI_Comm comm, cl_uint num_wait,
                                                                            const cl_event *wait_list,
                                                                            cl_event *event)
{
    return bn_sync(&bn_bwd, ctx, d, comm, num_wait, wait_list, event);
}
