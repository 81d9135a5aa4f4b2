/*
 * clnorm: normalization layers (LayerNorm, RMSNorm, BatchNorm, InstanceNorm,
 * GroupNorm) as OpenCL kernels.
 *
 * All norms are one computation, y = (x - mean) * rstd * scale + bias, over
 * different reduction sets; one descriptor (clnorm_desc) describes every
 * operation and one entry point (clnorm_forward) runs it. Semantics follow
 * PyTorch's torch.nn.functional (see README.md and SPEC.md).
 *
 * No global state: everything lives in a clnorm_ctx. Calls only enqueue
 * work on the context's queue; they never wait for the device.
 */
#ifndef CLNORM_H
#define CLNORM_H

#define CL_TARGET_OPENCL_VERSION 120
#include <stddef.h>
#ifdef __APPLE__
#include <OpenCL/cl.h>
#else
#include <CL/cl.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define CLNORM_VERSION_MAJOR 0
#define CLNORM_VERSION_MINOR 1
#define CLNORM_VERSION_PATCH 0

/*
 * Status codes. 0 is success, positive values are clnorm's own (stable
 * numbers, never reused), and negative values are OpenCL error codes passed
 * through unchanged (CL_OUT_OF_RESOURCES is returned as -5, and so on), so a
 * caller can tell the two apart with clnorm_is_cl_error().
 */
#define CLNORM_STATUS_LIST(X)                                                          \
    X(CLNORM_OK,                  0, "success")                                        \
    X(CLNORM_ERR_NULL_ARGUMENT,   1, "a required pointer argument is NULL")           \
    X(CLNORM_ERR_MISSING_BUFFER,  2, "a required buffer is missing")                  \
    X(CLNORM_ERR_INVALID_OP,      3, "unknown operation")                             \
    X(CLNORM_ERR_INVALID_SHAPE,   4, "a dimension is zero or inconsistent")           \
    X(CLNORM_ERR_TOO_LARGE,       5, "sizes overflow or exceed what the kernels index") \
    X(CLNORM_ERR_BUFFER_TOO_SMALL,6, "a buffer is smaller than offset plus extent")   \
    X(CLNORM_ERR_INVALID_EPS,     7, "eps must be finite and >= 0")                   \
    X(CLNORM_ERR_INVALID_MOMENTUM,8, "momentum must be in [0, 1]")                    \
    X(CLNORM_ERR_INVALID_GROUPS,  9, "group count must be >= 1 and divide the channels") \
    X(CLNORM_ERR_INVALID_LAYOUT, 10, "unknown layout")                                \
    X(CLNORM_ERR_INVALID_RANK,   11, "spatial rank must be 0..3")                     \
    X(CLNORM_ERR_COUNT_ONE,      12, "training needs more than one value per set")    \
    X(CLNORM_ERR_FOREIGN_BUFFER, 13, "a buffer belongs to another OpenCL context")    \
    X(CLNORM_ERR_ALIASING,       14, "an output overlaps an input or another output") \
    X(CLNORM_ERR_INVALID_EVENTS, 15, "event wait list and count disagree")            \
    X(CLNORM_ERR_NO_DEVICE,      16, "no OpenCL device found")                        \
    X(CLNORM_ERR_DEVICE_NOT_FOUND,17, "CLNORM_DEVICE matches no device")              \
    X(CLNORM_ERR_BUILD_FAILED,   18, "kernel program build failed (see clnorm_build_log)") \
    X(CLNORM_ERR_OUT_OF_MEMORY,  19, "host memory allocation failed")                 \
    X(CLNORM_ERR_UNSUPPORTED,    20, "option not supported for this operation")      \
    X(CLNORM_ERR_INVALID_VARIANT,21, "unknown kernel variant or tuning value")        \
    X(CLNORM_ERR_INVALID_BUFFER, 22, "a buffer is not a valid OpenCL memory object")  \
    X(CLNORM_ERR_TUNING_FILE,    23, "tuning file missing, unreadable or malformed")  \
    X(CLNORM_ERR_NOTHING_TO_DO,  24, "a backward call asks for no gradient")         \
    X(CLNORM_ERR_PEER_FAILED,    25, "another process of the group failed (clnorm_mpi)") \
    X(CLNORM_ERR_MPI,            26, "an MPI call failed (clnorm_mpi)")

typedef enum clnorm_status {
#define CLNORM_X_ENUM(name, value, text) name = value,
    CLNORM_STATUS_LIST(CLNORM_X_ENUM)
#undef CLNORM_X_ENUM
    CLNORM_STATUS_END_, /* one past the largest clnorm status; not a status */
    /* Not a status: the most negative int, so that the enum's underlying
     * type is signed (C gives an enum with no negative enumerator an
     * unsigned type on GCC) and `st < 0` is true for an OpenCL error. */
    CLNORM_STATUS_MIN_ = -2147483647 - 1
} clnorm_status;

/* Message for any status, clnorm's or OpenCL's. Never NULL. */
const char *clnorm_status_string(int status);
/* Symbolic name ("CLNORM_ERR_ALIASING", "CL_OUT_OF_RESOURCES"). Never NULL. */
const char *clnorm_status_name(int status);
/* Non-zero when status is an OpenCL error code passed through. */
int clnorm_is_cl_error(int status);

typedef struct clnorm_ctx clnorm_ctx;

/* A buffer and an offset into it, counted in elements (not bytes) of the
 * buffer's type (float32 unless clnorm_desc.dtype/param_dtype say otherwise).
 * mem == NULL means "absent" for optional buffers. */
typedef struct clnorm_buf {
    cl_mem mem;
    size_t offset;
} clnorm_buf;

typedef enum clnorm_op {
    CLNORM_LAYER_NORM = 1,    /* rows x cols, normalized over cols; elementwise affine (cols) */
    CLNORM_RMS_NORM = 2,      /* as LayerNorm without mean subtraction */
    CLNORM_BATCH_NORM = 3,    /* per channel over (N, spatial); training or inference */
    CLNORM_INSTANCE_NORM = 4, /* per (n, c) over spatial */
    CLNORM_GROUP_NORM = 5     /* per (n, group) over (C/G channels, spatial) */
} clnorm_op;

/* Storage types (SPEC.md, Storage types): x, y, residual, h_out, dy and dx
 * are of clnorm_desc.dtype; scale and bias of param_dtype, which is
 * CLNORM_FLOAT32 or dtype. Statistics, accumulation, the saved mean/rstd,
 * the running statistics and the parameter gradients dscale/dbias are always
 * float32. Loads widen exactly; the one rounding is each store (y, h_out,
 * dx: round to nearest even). float16 is IEEE binary16 (torch.float16, ONNX
 * FLOAT16), through OpenCL's core vload_half/vstore_half: no device needs
 * cl_khr_fp16. bfloat16 is the top 16 bits of a float32 (torch.bfloat16,
 * ONNX BFLOAT16): NaN stays a quiet NaN, Inf stays Inf, overflow rounds to
 * Inf. Offsets count elements of the buffer's own type. */
typedef enum clnorm_dtype {
    CLNORM_FLOAT32 = 0,
    CLNORM_FLOAT16 = 1,
    CLNORM_BFLOAT16 = 2
} clnorm_dtype;
/* Bytes per element of t (0 for an unknown type). */
size_t clnorm_dtype_size(clnorm_dtype t);

typedef enum clnorm_layout {
    CLNORM_CHANNELS_FIRST = 0, /* N, C, S1..Sk (PyTorch default, NCHW) */
    CLNORM_CHANNELS_LAST = 1   /* N, S1..Sk, C (channels_last, NHWC) */
} clnorm_layout;

/*
 * One description of a forward normalization. Fields an operation does not
 * use must be left zero/NULL. Start from clnorm_desc_init().
 *
 * Shapes
 *   LayerNorm, RMSNorm: rows, cols (x is rows*cols, row-major; LayerNorm over
 *     the last m dims is cols = product of those dims).
 *   Channel norms: n, c, rank (0..3), spatial[0..rank-1], layout.
 * Buffers (float32, offsets in elements)
 *   x, y            required; y may be exactly x (same mem, same offset).
 *   scale, bias     optional. LayerNorm/RMSNorm: cols elements. Channel norms:
 *                   c elements, or n*c when per_sample_affine is set.
 *   mean, rstd      optional saved statistics, one float per set (training
 *                   mode only; RMSNorm has no mean). Sets: LayerNorm rows,
 *                   BatchNorm c, InstanceNorm n*c, GroupNorm n*groups.
 *   running_mean, running_var   c elements, both or neither. BatchNorm:
 *                   required in inference; optional in training, where they
 *                   are updated (PyTorch allows None). InstanceNorm: optional
 *                   (track_running_stats); updated in training, used in
 *                   inference when given.
 * Scalars
 *   eps             finite, >= 0, added inside the square root.
 *   momentum        in [0, 1], PyTorch convention (ONNX momentum m = 1 - this).
 *   running_var_biased  which batch variance updates running_var: 0 (the
 *                   default from clnorm_desc_init) = the unbiased estimate,
 *                   count / (count - 1) times the biased one (PyTorch); 1 =
 *                   the biased one (ONNX BatchNormalization-14/15 with
 *                   training_mode = 1). Other values: CLNORM_ERR_UNSUPPORTED.
 *   training        BatchNorm / InstanceNorm: batch statistics (1) or running (0).
 *   groups          GroupNorm: G, dividing c.
 *
 * Backward (clnorm_backward; clnorm_forward ignores these four, and
 * clnorm_backward ignores y, bias and, with batch statistics, the running
 * statistics: the same descriptor serves both directions)
 *   dy              required, x's shape and layout.
 *   dx              optional, x's shape; may be exactly dy (in place), may
 *                   not overlap anything else (x included).
 *   dscale, dbias   optional parameter gradients, scale's length (cols, c,
 *                   or n*c with per_sample_affine), float32.
 *   At least one of dx, dscale, dbias (PyTorch's output_mask). The
 *   statistics are those the forward call normalized with: with batch
 *   statistics the saved mean and rstd (rstd only for RMSNorm), required;
 *   otherwise (BatchNorm inference, InstanceNorm inference with running
 *   statistics) running_mean and running_var with eps.
 */
typedef struct clnorm_desc {
    clnorm_op op;
    clnorm_layout layout;
    size_t rows, cols;
    size_t n, c;
    unsigned rank;
    size_t spatial[3];
    size_t groups;
    int training;
    int per_sample_affine;
    float eps;
    float momentum;
    int running_var_biased;
    clnorm_buf x, y, scale, bias, mean, rstd, running_mean, running_var;
    clnorm_buf dy, dx, dscale, dbias; /* backward only */
    /* LpNormalization (set by clnorm_desc_lp_norm): 0 = off; 1 or 2 = the
     * op's sets (LayerNorm rows, or channels-last InstanceNorm's sets with
     * batch statistics) normalized by their Lp norm, y = x / ||x||_p with
     * no mean subtracted, 0 where the norm is 0; eps is ignored, the op's
     * scale and bias apply after, a saved rstd is 1 / ||x||_p. */
    int lp;
    /* Fused residual add (LayerNorm, RMSNorm; SPEC.md): with residual, the
     * norm is of h = x + residual (float32 add), y = norm(h), in one pass
     * that reads x and residual once each. h_out, optional, receives h (the
     * next block's residual, as vLLM's fused_add_rms_norm); it may be exactly
     * x or exactly residual (in place), and y may be exactly x or exactly
     * residual; y and h_out may not overlap each other, nor anything else. */
    clnorm_buf residual, h_out;
    /* Storage types (above): dtype of x, y, residual, h_out, dy, dx;
     * param_dtype of scale and bias (CLNORM_FLOAT32 or dtype). Zero (the
     * clnorm_desc_init default) is float32 for both. Other values:
     * CLNORM_ERR_UNSUPPORTED. */
    clnorm_dtype dtype, param_dtype;
} clnorm_desc;

/* Zero the descriptor and set op, eps = 1e-5, momentum = 0.1, training = 1,
 * groups = 1. */
void clnorm_desc_init(clnorm_desc *d, clnorm_op op);
/* Element count of x, and number of reduction sets (0 if the shape is
 * invalid, e.g. groups not dividing c). */
size_t clnorm_desc_elements(const clnorm_desc *d);
size_t clnorm_desc_sets(const clnorm_desc *d);

/*
 * Contexts.
 * clnorm_create_from_queue: uses the caller's queue (retained), its context
 *   and device. Any queue works; out-of-order queues are chained internally.
 * clnorm_create_default: CLNORM_DEVICE ("P:D" platform:device indices, or a
 *   case-insensitive substring of the device name), else the first device of
 *   the best rank: GPU, accelerator, CPU, then a simulator such as Oclgrind;
 *   creates its own context and an in-order queue with profiling enabled. A
 *   driver error while choosing is returned as that OpenCL status.
 * clnorm_destroy accepts NULL. A context may be used from several threads:
 *   each call holds the context's lock while it validates and enqueues.
 */
clnorm_status clnorm_create_from_queue(cl_command_queue queue, clnorm_ctx **out);
clnorm_status clnorm_create_default(clnorm_ctx **out);
void clnorm_destroy(clnorm_ctx *ctx);

cl_command_queue clnorm_queue(const clnorm_ctx *ctx);
cl_context clnorm_cl_context(const clnorm_ctx *ctx);
cl_device_id clnorm_device(const clnorm_ctx *ctx);

/* Last error message of the calling thread's calls on this context (what
 * was wrong, with values), "" if none: on a context shared by threads each
 * thread sees its own, as with errno. Valid until this thread's next call on
 * the context. */
const char *clnorm_last_error(const clnorm_ctx *ctx);
/* Build log of the calling thread's last failed program build on this
 * context, "" if none; valid as clnorm_last_error's message. */
const char *clnorm_build_log(const clnorm_ctx *ctx);

/*
 * Kernel variants for contiguous reduction sets (LayerNorm, RMSNorm and the
 * channels-first InstanceNorm/GroupNorm and BatchNorm statistics). AUTO picks
 * by a tuning file's entry (clnorm_set_tuning) or else by the rules in
 * host/plan.c; CLNORM_VARIANT (env, read at context
 * creation: "auto", "wg", "subgroup", "wi", "split") or clnorm_set_variant()
 * forces one for experiments and tests. Channels-last InstanceNorm/GroupNorm
 * on CPUs: AUTO and WI allow the wave pipeline where the rules pick it; the
 * other variants force the partials pipeline.
 */
typedef enum clnorm_variant {
    CLNORM_VARIANT_AUTO = 0,
    CLNORM_VARIANT_WG = 1,       /* one work-group per set */
    CLNORM_VARIANT_SUBGROUP = 2, /* 32 work-items per set, several sets per group */
    CLNORM_VARIANT_WI = 3,       /* one work-item per set, looping serially */
    CLNORM_VARIANT_SPLIT = 4     /* a set split across work-groups, partials merged in fixed order */
} clnorm_variant;
#define CLNORM_VARIANT_COUNT 5

/* work_group_size 0 = by rule; else a power of two <= the device maximum. */
clnorm_status clnorm_set_variant(clnorm_ctx *ctx, clnorm_variant v, size_t work_group_size);
const char *clnorm_variant_name(clnorm_variant v);
/* The variant whose clnorm_variant_name is name, into *v: CLNORM_OK,
 * CLNORM_ERR_NULL_ARGUMENT, or CLNORM_ERR_INVALID_VARIANT for another name. */
clnorm_status clnorm_variant_from_name(const char *name, clnorm_variant *v);

/*
 * Tuning (the CLBlast approach, for devices the rules in host/plan.c were
 * not measured on). `clnorm-bench --tune FILE` times every variant and
 * work-group size per benchmark case against the rules, checks the winners'
 * outputs, and writes a text file of the settings that beat the rules by 5%
 * or more (twice: a second, longer measurement confirms), per device. A context reads the entries for its own device (by
 * CL_DEVICE_NAME) from the file named by CLNORM_TUNING at creation, or from
 * clnorm_set_tuning(ctx, path); NULL drops them. A call whose key (below)
 * has an entry then runs as if clnorm_set_variant(entry's variant, its
 * work-group size) were in force; a variant or work-group size forced with
 * CLNORM_VARIANT or clnorm_set_variant takes precedence over the file.
 * Errors (CLNORM_ERR_TUNING_FILE: missing or unreadable file, a malformed
 * line, an unknown name, a work-group size the device cannot run, a key
 * twice for one device; the message names the line) leave the context's
 * entries as they were; with CLNORM_TUNING they fail context creation.
 *
 * File: a first line CLNORM_TUNING_HEADER, then one entry per line, four
 * tab-separated fields: device name, key, variant name, work-group size
 * (0 = by rule). '#' starts a comment line.
 */
#define CLNORM_TUNING_HEADER "clnorm-tuning 1"
clnorm_status clnorm_set_tuning(clnorm_ctx *ctx, const char *path);

/* The key of calls like d, into buf (len bytes; 64 are always enough): the
 * operation, the layout as computed ("rows" for LayerNorm/RMSNorm; "nchw" or
 * "nhwc", a channels-first tensor with one spatial element counting as
 * "nhwc"), whose statistics ("batch" or "running"), then floor(log2) of the
 * reduction set length and of the set count, e.g. "layer_norm rows batch 9
 * 12" for a 4096 x 768 LayerNorm. Errors: as clnorm_forward's shape checks,
 * CLNORM_ERR_NULL_ARGUMENT, CLNORM_ERR_BUFFER_TOO_SMALL when len is short. */
clnorm_status clnorm_tuning_key(const clnorm_desc *d, char *buf, size_t len);

/*
 * Enqueue one forward normalization. Validates everything first; on any
 * validation error nothing is enqueued and no buffer is written. Waits on
 * wait_list; if event is non-NULL it receives an event for the completion of
 * the whole operation (release it with clReleaseEvent).
 */
clnorm_status clnorm_forward(clnorm_ctx *ctx, const clnorm_desc *d,
                             cl_uint num_wait, const cl_event *wait_list,
                             cl_event *event);

/*
 * Enqueue the backward pass of the forward normalization d describes
 * (SPEC.md, Backward): dx, dscale and dbias from dy, x, scale and the
 * statistics the forward pass used (see clnorm_desc). Parameter gradients
 * are sums in a fixed order, with no atomics: the same bits every run.
 * Validation, events and errors as clnorm_forward; CLNORM_ERR_NOTHING_TO_DO
 * when dx, dscale and dbias are all absent.
 */
clnorm_status clnorm_backward(clnorm_ctx *ctx, const clnorm_desc *d,
                              cl_uint num_wait, const cl_event *wait_list,
                              cl_event *event);

/*
 * BatchNorm training in steps, for a caller that spreads one batch over
 * several processes or devices and moves the statistics itself (clnorm_mpi
 * does it over MPI; see README.md, "Synchronized BatchNorm"). PyTorch's
 * SyncBatchNorm does the same with batch_norm_stats,
 * batch_norm_gather_stats_with_counts and batch_norm_elemt:
 *
 *   1. clnorm_bn_local_stats: the per-channel record of this process's
 *      slice (its own x, N_r samples), on the device;
 *   2. the caller moves the K records (3*C floats each) to every process,
 *      and clnorm_bn_merge_stats merges them on the host, in rank order,
 *      into the global record: every process gets the same bits;
 *   3. the caller puts the global record in a device buffer, and
 *      clnorm_bn_apply_stats normalizes the slice with it, writes the saved
 *      mean/rstd and updates the running statistics with the global count.
 *
 * With one process this is clnorm_forward, which stays the one-call path.
 * The descriptor is the slice's: BatchNorm, training = 1, per_sample_affine
 * = 0 (else CLNORM_ERR_UNSUPPORTED), x of shape n x c x spatial in either
 * layout, rank 0..3. n = 0 is legal here (an empty slice): x and y are then
 * not read and may be absent; the record says count 0, and the apply step
 * still writes the saved and running statistics, as every process does. A
 * slice with one element per channel is legal; only the merged count must
 * exceed 1.
 *
 * Record (CLNORM_BN_RECORD_FLOATS floats per channel, channel c at 3*c):
 * the mean, M2 (the sum of squared deviations from that mean, so that
 * records merge exactly, Chan et al.) and the count, stored as the bits of a
 * 32-bit unsigned integer (read it with memcpy), not as a float: a float
 * count would round above 2^24 elements, the bits stay exact to 2^32 - 1.
 * Records are host-endian and meant for processes of one architecture. An
 * empty slice's record is (0, 0, count 0). A NaN or Inf in a slice makes
 * that channel's mean and M2 NaN; the merge carries it to that channel
 * only. The backward split (below) has a record of its own.
 */
#define CLNORM_BN_RECORD_FLOATS 3

/* Checks d as clnorm_bn_local_stats and clnorm_bn_apply_stats will (all
 * but the records and the global count), enqueues nothing: a distributed
 * caller learns a bad call before it enters a collective. */
clnorm_status clnorm_bn_validate(clnorm_ctx *ctx, const clnorm_desc *d);

/* Step 1: the record of d's slice into record (c * CLNORM_BN_RECORD_FLOATS
 * floats at record.offset; may not overlap x). Reads x only (y, affine,
 * saved and running statistics are not touched). The partials and their
 * merge are clnorm_forward's, so the record holds the statistics the
 * one-call path computes for the same slice. Events and errors as
 * clnorm_forward's. */
clnorm_status clnorm_bn_local_stats(clnorm_ctx *ctx, const clnorm_desc *d, clnorm_buf record,
                                    cl_uint num_wait, const cl_event *wait_list, cl_event *event);

/* Step 2, on the host: merges the k records at records (k * c *
 * CLNORM_BN_RECORD_FLOATS floats, record r at r * 3 * c: rank r's) in that
 * order into global (3 * c floats; may not overlap records) and the merged
 * count per channel into *count. Chan's exact pairwise update in double
 * precision, rounded to float once: a large common mean (1e4 with spread
 * 1e-2) keeps its spread. Pure and deterministic: the same inputs give the
 * same bits on every process. Records with count 0 are skipped. ctx may be
 * NULL (no message). Nothing is written unless it returns CLNORM_OK:
 *   CLNORM_ERR_NULL_ARGUMENT    records, global or count NULL;
 *   CLNORM_ERR_INVALID_SHAPE    k or c is 0, a record's channels disagree on
 *                               the count (a BatchNorm slice has N*S per
 *                               channel), or every record is empty;
 *   CLNORM_ERR_TOO_LARGE        the merged count exceeds 2^32 - 1;
 *   CLNORM_ERR_COUNT_ONE        the merged count is 1 (training needs more).
 */
clnorm_status clnorm_bn_merge_stats(clnorm_ctx *ctx, const float *records, size_t k, size_t c, float *global,
                                    cl_ulong *count);

/* Step 3: normalizes d's slice x into y with the global record (c *
 * CLNORM_BN_RECORD_FLOATS floats at global.offset, as clnorm_bn_merge_stats
 * wrote it, read-only) whose merged count per channel is count (its own
 * count words are not read: the host validates the count before anything
 * is written). Writes the saved mean and rstd when given, and updates the
 * running statistics when given, with count: the unbiased variance (count /
 * (count - 1)), or the biased one with running_var_biased = 1 (ONNX). The
 * folding and the apply kernel are clnorm_forward's. Errors as
 * clnorm_forward's, and CLNORM_ERR_COUNT_ONE for count 1,
 * CLNORM_ERR_INVALID_SHAPE for count 0 or below this slice's own n * S,
 * CLNORM_ERR_TOO_LARGE above 2^32 - 1. */
clnorm_status clnorm_bn_apply_stats(clnorm_ctx *ctx, const clnorm_desc *d, clnorm_buf global, cl_ulong count,
                                    cl_uint num_wait, const cl_event *wait_list, cl_event *event);

/*
 * The backward of BatchNorm training in steps, PyTorch's SyncBatchNorm
 * backward (batch_norm_backward_reduce, the all-reduce of its sums,
 * batch_norm_backward_elemt):
 *
 *   1. clnorm_bn_local_grad_sums: per channel, sum dy and sum dy * xhat
 *      over this process's slice, into a small device buffer;
 *   2. the caller moves the K sums (2*C floats each) to every process, and
 *      clnorm_bn_merge_grad_sums adds them on the host in rank order: every
 *      process gets the same bits;
 *   3. the caller puts the global sums in a device buffer, and
 *      clnorm_bn_apply_grad writes dscale = global sum dy * xhat and dbias =
 *      global sum dy (the same on every process) and dx of the slice from
 *      the global sums and the global count.
 *
 * With one process this is clnorm_backward, which stays the one-call path
 * and runs the same kernels: on a CPU device the split with one process
 * gives its bits. The descriptor is the slice's, as for the forward split,
 * with the backward's buffers (clnorm_desc): dy (x's shape), dx (optional,
 * may be exactly dy), dscale and dbias (optional, C floats), scale
 * (optional), and the saved mean and rstd that clnorm_bn_apply_stats wrote
 * (the global statistics; required). xhat = (x - mean) * rstd. n = 0 is
 * legal (an empty slice): x, dy and dx are not read or written and may be
 * absent, the sums are 0, and the apply still writes dscale and dbias. A
 * slice with n > 0 must ask for at least one of dx, dscale and dbias
 * (CLNORM_ERR_NOTHING_TO_DO). y, bias and the running statistics are not
 * used.
 *
 * Sums (CLNORM_BN_GRAD_FLOATS floats per channel): [0, C) sum dy per
 * channel, [C, 2C) sum dy * xhat. NaN or Inf in a slice's x or dy carries
 * to that channel's sums only.
 */
#define CLNORM_BN_GRAD_FLOATS 2

/* Checks d as clnorm_bn_local_grad_sums and clnorm_bn_apply_grad will (all
 * but the sums buffers and the global count), enqueues nothing. */
clnorm_status clnorm_bn_validate_grad(clnorm_ctx *ctx, const clnorm_desc *d);

/* Step 1: the sums of d's slice into sums (2 * c floats at sums.offset; may
 * not overlap x or dy). Reads x, dy and the saved mean and rstd; writes
 * nothing else. The partial sums and their merge are clnorm_backward's.
 * Events and errors as clnorm_backward's. */
clnorm_status clnorm_bn_local_grad_sums(clnorm_ctx *ctx, const clnorm_desc *d, clnorm_buf sums, cl_uint num_wait,
                                        const cl_event *wait_list, cl_event *event);

/* Step 2, on the host: adds the k sums at sums (k * 2 * c floats, process
 * r's at r * 2 * c) in that order into global (2 * c floats; may not
 * overlap sums), in double from process 0's value, rounded to float once.
 * Pure and deterministic: the same inputs give the same bits on every
 * process; one record gives its own bits. ctx may be NULL (no message).
 * Nothing is written unless it returns CLNORM_OK: CLNORM_ERR_NULL_ARGUMENT,
 * CLNORM_ERR_INVALID_SHAPE (k or c 0), CLNORM_ERR_TOO_LARGE,
 * CLNORM_ERR_ALIASING. */
clnorm_status clnorm_bn_merge_grad_sums(clnorm_ctx *ctx, const float *sums, size_t k, size_t c, float *global);

/* Step 3: dscale and dbias (when given) from the global sums (2 * c floats
 * at global.offset, read-only), and dx of d's slice (when given and n > 0)
 * with count, the number of elements per channel over every process (the
 * forward's merged count). The table and dx kernels are clnorm_backward's.
 * Errors as clnorm_backward's, and CLNORM_ERR_COUNT_ONE for count 1,
 * CLNORM_ERR_INVALID_SHAPE for count 0 or below this slice's own n * S,
 * CLNORM_ERR_TOO_LARGE above 2^32 - 1. */
clnorm_status clnorm_bn_apply_grad(clnorm_ctx *ctx, const clnorm_desc *d, clnorm_buf global, cl_ulong count,
                                   cl_uint num_wait, const cl_event *wait_list, cl_event *event);

/*
 * BatchNorm folding (deployment): BatchNorm inference after a convolution,
 * folded into the convolution's weights and bias on the device, as
 * torch.nn.utils.fusion.fuse_conv_bn_weights and ONNX optimizers'
 * fuse_bn_into_conv do:
 *   a[o]  = scale[o] / sqrt(running_var[o] + eps)
 *   W'[o] = W[o] * a[o]                          (every weight of output channel o)
 *   b'[o] = (b[o] - running_mean[o]) * a[o] + bias[o]
 * a[o] is computed exactly as clnorm_forward's BatchNorm inference computes
 * its multiplier (rstd * scale), so the folded convolution normalizes as
 * clnorm's own BatchNorm would.
 *
 * Weights are laid out with the output channel first (PyTorch's and ONNX's
 * OIHW, OIW, OIDHW): out_channels rows of per_channel contiguous weights,
 * per_channel = (in_channels / groups) * kernel elements; grouped and
 * depthwise convolutions are the same layout with a smaller per_channel.
 * (A ConvTranspose's IOHW weights are not this layout.) Buffers are float32
 * with element offsets:
 *   weight       required, out_channels * per_channel;
 *   conv_bias    optional, out_channels (absent: the convolution has none, 0);
 *   scale, bias  optional, out_channels (absent: 1 and 0), BatchNorm's;
 *   running_mean, running_var   required, out_channels;
 *   weight_out   required, weight's size; may be exactly weight (in place);
 *   bias_out     required, out_channels; may be exactly conv_bias (in place).
 * No other overlap of an output with anything (CLNORM_ERR_ALIASING). eps as
 * clnorm_desc's. Validation, events and errors as clnorm_forward.
 */
typedef struct clnorm_fold_desc {
    size_t out_channels, per_channel;
    float eps;
    clnorm_buf weight, conv_bias, scale, bias, running_mean, running_var;
    clnorm_buf weight_out, bias_out;
} clnorm_fold_desc;
/* Zero the descriptor and set eps = 1e-5 (PyTorch's BatchNorm default). */
void clnorm_fold_desc_init(clnorm_fold_desc *f);
clnorm_status clnorm_fold_batch_norm(clnorm_ctx *ctx, const clnorm_fold_desc *f,
                                     cl_uint num_wait, const cl_event *wait_list,
                                     cl_event *event);

/*
 * ONNX MeanVarianceNormalization and LpNormalization. Neither is a new
 * computation: each is the common form over other reduction sets, so these
 * functions only build a clnorm_desc (clnorm_desc_init first; the caller
 * then sets x and y, optionally in place, and calls clnorm_forward). x is a
 * contiguous row-major tensor of ndim <= CLNORM_MAX_DIMS dims (ONNX's
 * layout). Dims of size 1 are dropped; what is left must be a pattern the
 * existing kernels reduce, else CLNORM_ERR_UNSUPPORTED with a message:
 *
 * clnorm_desc_mvn: axes_mask bit k set = axis k is reduced (ONNX's default
 *   axes [0, 2, 3] is CLNORM_MVN_DEFAULT_AXES). y = (x - mean) / sqrt(var),
 *   over the reduced axes, var biased, no affine. With the reduced (R) and
 *   kept (K) runs of axes:
 *     R, or K R        LayerNorm over the trailing R (rows = the K product)
 *     R K, or R K R    BatchNorm training (channel = the K product, N = the
 *                      leading R, spatial = the trailing R); no running stats
 *     K R K            channels-last InstanceNorm (n, spatial, c)
 *   anything else (K R K R, ...) is unsupported. ONNX divides by
 *   sqrt(var) + 1e-9; these use eps = 1e-18 inside the root, 1/sqrt(var +
 *   1e-18), which differs from ONNX's by a relative 1e-9 / std at most (below
 *   float rounding for std >= 0.017, up to 1.2e-7 at std = 0.008) and gives
 *   0, like ONNX, for a constant set. A zero mask is unsupported.
 * clnorm_desc_lp_norm: ONNX LpNormalization, p = 1 or 2 along axis (ONNX's
 *   -1 = the last; negative counts from the end): y = x / ||x||_p, 0 where
 *   the norm is 0 (as ONNX's reference), on any axis: the innermost of
 *   size > 1 gives LayerNorm rows (K R, R), an outer one channels-last
 *   InstanceNorm's sets (K R K; R K as one sample), each with d->lp = p.
 * ctx may be NULL; given, it receives the error message. Errors:
 * CLNORM_ERR_NULL_ARGUMENT, CLNORM_ERR_INVALID_SHAPE (ndim 0 or >
 * CLNORM_MAX_DIMS, a dim of 0, an axis out of range), CLNORM_ERR_TOO_LARGE,
 * CLNORM_ERR_UNSUPPORTED (p, or the pattern).
 */
#define CLNORM_MAX_DIMS 8
#define CLNORM_MVN_DEFAULT_AXES 0xdu /* axes 0, 2, 3 */
#define CLNORM_MVN_EPS 1e-18f
clnorm_status clnorm_desc_mvn(clnorm_ctx *ctx, clnorm_desc *d, unsigned ndim, const size_t *dims,
                              unsigned axes_mask);
clnorm_status clnorm_desc_lp_norm(clnorm_ctx *ctx, clnorm_desc *d, unsigned ndim, const size_t *dims, int axis,
                                  int p);

#ifdef __cplusplus
}
#endif
#endif /* CLNORM_H */
