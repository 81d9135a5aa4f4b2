/*
 * clnorm_mpi: synchronized BatchNorm (forward and backward) over MPI, PyTorch's SyncBatchNorm for
 * clnorm. A small library of its own (libclnorm_mpi, built when CMake finds
 * MPI) on top of libclnorm's BatchNorm split (clnorm.h: clnorm_bn_*), so
 * that libclnorm itself never depends on MPI.
 */
#ifndef CLNORM_MPI_H
#define CLNORM_MPI_H

#include <mpi.h>

#include "clnorm.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * BatchNorm training forward over the batch that the processes of comm hold
 * together, each its slice d along n (d: clnorm_bn_local_stats' descriptor
 * of this process's slice; n = 0 for an empty one). Every process of comm
 * must call it, with the same C, eps, momentum and running_var_biased;
 * comm may be any communicator, a sub-communicator being a process group
 * (PyTorch's process_group). Steps: every process validates its call
 * (clnorm_bn_validate) and allocates what it needs, and one MPI_Allreduce
 * tells every process whether all of them can go on and whether they agree
 * on C; then the local record (clnorm_bn_local_stats) is read to the host
 * and exchanged with one MPI_Allgather of 3*C floats and a status word per
 * process; the records are merged in rank order (clnorm_bn_merge_stats:
 * the same bits on every process); the global record is written to the
 * device and applied (clnorm_bn_apply_stats). y, the saved mean/rstd and
 * the running statistics are then what clnorm_forward gives on the whole
 * batch, and the statistics are bit-identical on every process.
 *
 * Unlike clnorm's other calls it waits: for the local record (a blocking
 * read) and for the collectives. The application's event is returned in
 * event (the apply's launches; release it with clReleaseEvent).
 *
 * Errors. A process whose own call is bad returns its status (nothing
 * written); every other process returns CLNORM_ERR_PEER_FAILED, and none
 * enters the data exchange, so none hangs. Disagreeing channel counts give
 * CLNORM_ERR_INVALID_SHAPE everywhere. A failure while computing the local
 * record (a driver error) travels in the status word of the exchange: its
 * process returns it, the others CLNORM_ERR_PEER_FAILED. A merged count of 1
 * is CLNORM_ERR_COUNT_ONE everywhere. A failure of the final, local apply
 * (a driver error after the exchange) is that process's alone. An MPI call
 * that fails with an error handler that returns (the default handler
 * aborts the job) gives CLNORM_ERR_MPI.
 */
clnorm_status clnorm_mpi_bn_forward(clnorm_ctx *ctx, const clnorm_desc *d, MPI_Comm comm, cl_uint num_wait,
                                    const cl_event *wait_list, cl_event *event);

/*
 * BatchNorm training backward over the batch the processes of comm hold
 * together, each its slice d along n (d: clnorm_bn_local_grad_sums'
 * descriptor of this process's slice, with dy, the optional dx, dscale and
 * dbias, and the saved mean and rstd that clnorm_mpi_bn_forward wrote; n =
 * 0 for an empty slice). Every process of comm must call it, with the same
 * C and eps. PyTorch's SyncBatchNorm backward: the same pattern as
 * clnorm_mpi_bn_forward. Every process validates its call
 * (clnorm_bn_validate_grad) and allocates, and one MPI_Allreduce tells every
 * process whether all can go on and agree on C; then the local sums
 * (clnorm_bn_local_grad_sums, 2*C floats) are read to the host and
 * exchanged with one MPI_Allgather of them, a status word and the slice's
 * count n * S per process; the sums are added in rank order
 * (clnorm_bn_merge_grad_sums: the same bits on every process), written to
 * the device and applied (clnorm_bn_apply_grad) with the summed count. dx
 * of the slice, dscale and dbias are then what clnorm_backward gives on the
 * whole batch, and dscale and dbias are bit-identical on every process.
 *
 * Waits, events and errors as clnorm_mpi_bn_forward's; a global count of 1
 * is CLNORM_ERR_COUNT_ONE everywhere.
 */
clnorm_status clnorm_mpi_bn_backward(clnorm_ctx *ctx, const clnorm_desc *d, MPI_Comm comm, cl_uint num_wait,
                                     const cl_event *wait_list, cl_event *event);

#ifdef __cplusplus
}
#endif
#endif /* CLNORM_MPI_H */
