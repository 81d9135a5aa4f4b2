/* Library-internal declarations shared by the host sources. */
#ifndef CLNORM_INTERNAL_H
#define CLNORM_INTERNAL_H

#include "clnorm.h"
#include "kernels.h"
#include <pthread.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CLNORM_API __attribute__((visibility("default")))
#define CLNORM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLNORM_API
#define CLNORM_PRINTF(f, a)
#endif

/* What clnorm knows of a device: read once per context (device.c), plain
 * data afterwards. */
#define CLNORM_FEAT_NT_STORE 1u        /* kernels may use clang/x86 streaming stores */
#define CLNORM_FEAT_PREFETCH_BUILTIN 2u /* kernels may use __builtin_prefetch on __global */
#define CLNORM_FEAT_NV_SHFL 4u          /* kernels may use inline PTX warp shuffles (NVIDIA GPUs) */
#define CLNORM_FEAT_UNALIGNED_VEC 8u    /* kernels may use clang's under-aligned vector typedefs */
#define CLNORM_FEAT_WIDE_VEC 16u        /* kernels may ask clang for 512-bit vector registers and _Float16 vectors */
typedef struct clnorm_devinfo {
    cl_uint compute_units;
    size_t max_wg;
    cl_ulong cache_bytes; /* global memory cache (last level); 0 if unknown */
    cl_ulong local_bytes; /* __local memory per work-group */
    unsigned simd;        /* warp/wavefront width where the vendor reports it; 0 if unknown */
    cl_uint native_float; /* CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT: 16 with 512-bit registers */
    int is_cpu;   /* CPU-class rules (CLNORM_DEVICE_CLASS may override) */
    int type_cpu; /* the device reports CL_DEVICE_TYPE_CPU */
    unsigned features; /* CLNORM_FEAT_*: what the target macros may switch on */
    char name[256], vendor[128], platform[128], vendor_platform[128];
    char extensions[2048];
} clnorm_devinfo;

/* The descriptor reduced to what the planner needs (desc.c). Channel norms
 * are N x C x S (S = product of spatial dims); LayerNorm/RMSNorm are rows x
 * cols. */
typedef struct clnorm_shape {
    size_t N, C, S, G, elems, sets, set_len, aff_len;
    int channel;        /* BatchNorm, InstanceNorm, GroupNorm */
    int cl;             /* channels-last (or one spatial element) */
    int batch_stats;    /* statistics from this batch (not running) */
    int update_running;
} clnorm_shape;
/* Shape checks only (pure; c may be NULL for no message). */
clnorm_status clnorm_describe(clnorm_ctx *c, const clnorm_desc *d, clnorm_shape *s);
/* Everything else: scalars, buffers (queried, never written), aliasing. */
clnorm_status clnorm_validate(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s);
/* The same for a backward call (clnorm_backward). */
clnorm_status clnorm_validate_backward(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s);
/* Pieces of those checks that the BatchNorm split (syncbn.c) shares: valid
 * storage types and eps finite and >= 0; running_var_biased 0 or 1, and momentum in [0, 1] when
 * the running statistics are updated. */
clnorm_status clnorm_check_scalars(clnorm_ctx *c, const clnorm_desc *d);
clnorm_status clnorm_check_running_update(clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s);

/* What the caller asked of the planner for one call: a forced variant and
 * work-group size (clnorm_set_variant, CLNORM_VARIANT, or a tuning file's
 * entry), and the streaming-store override (CLNORM_STREAM). */
typedef struct clnorm_settings {
    clnorm_variant variant; /* AUTO: by rule */
    size_t wg;              /* 0: by rule */
    int stream;             /* -1 by rule, 0 never, 1 always */
} clnorm_settings;

/* Device choice and profile (device.c). */
clnorm_status clnorm_pick_device(cl_device_id *out);
cl_int clnorm_read_profile(cl_device_id dev, clnorm_devinfo *d);
/* The features a profile's platform, vendor and type allow (sets
 * d->features from the strings; pure). */
void clnorm_profile_features(clnorm_devinfo *d);
/* The -D options that switch the kernels' target features (common.cl's
 * "target features") on or off for d; snprintf's result. */
/* Room for clnorm_target_options' string (program.c and test_plan use it). */
#define CLNORM_TARGET_OPTIONS_MAX 192
int clnorm_target_options(const clnorm_devinfo *d, char *buf, size_t len);

/* Program options beyond work-group size and lanes (bits of `flags`). */
#define CLNORM_K_RMS 1u    /* statistics are the mean of squares */
#define CLNORM_K_STREAM 2u /* y is written with streaming stores */
#define CLNORM_K_RSTD_ZERO 4u /* var == 0 with eps == 0 gives rstd 0 (BatchNorm, InstanceNorm) */
#define CLNORM_K_LP 8u /* LpNormalization: rstd = 1 / ||x||_p, p = 2 with RMS, else 1 (common.cl) */
/* Every flag bit above: the kernel check (tests/kernel_options.c) builds each
 * combination. A new bit must be added here. */
#define CLNORM_K_ALL (CLNORM_K_RMS | CLNORM_K_STREAM | CLNORM_K_RSTD_ZERO | CLNORM_K_LP)

/* A program's options beyond the device's: work-group size, work-items per
 * set, tree sums, and CLNORM_K_* flags. */
typedef struct clnorm_progkey {
    unsigned wg, lanes, tree, flags;
    /* Storage types (common.cl XT, PT): clnorm_dtype of x/y and of scale/bias
     * (pt is 0 or xt). Every combination is a program of its own. */
    unsigned xt, pt;
} clnorm_progkey;

/* One compiled program per key; kernels are created once and reused (every
 * call holds the context lock while it sets arguments and enqueues). */
typedef struct clnorm_program {
    clnorm_progkey key;
    cl_program program;
    cl_kernel kernels[CLNORM_KERNEL_COUNT];
    struct clnorm_program *next;
} clnorm_program;

/* A tuning file's entry for this context's device (tuning.c). */
#define CLNORM_TUNING_KEY_MAX 64
typedef struct clnorm_tuned {
    char key[CLNORM_TUNING_KEY_MAX]; /* clnorm_tuning_key() of the calls it serves */
    clnorm_variant variant;
    size_t wg; /* 0 = by rule */
} clnorm_tuned;

/* One thread's messages on a context. A record is written and read only by
 * its own thread (the list is walked under the context lock) and lives until
 * clnorm_destroy, so the strings clnorm_last_error and clnorm_build_log
 * return are never written by another thread's call: a context shared by
 * threads reports each thread its own last failure. Records are allocated on
 * a thread's first failure only, never on a successful call. */
typedef struct clnorm_msgs {
    pthread_t thread;
    char error[512];
    char *build_log;
    struct clnorm_msgs *next;
} clnorm_msgs;

struct clnorm_ctx {
    cl_context context;
    cl_device_id device;
    cl_command_queue queue;
    int out_of_order;
    clnorm_devinfo dev;
    /* The user's standing settings (clnorm_set_variant, CLNORM_VARIANT,
     * CLNORM_STREAM); a call's settings are these, or a tuning entry's. */
    clnorm_settings settings;
    clnorm_tuned *tuned; /* entries for this device; NULL if none */
    size_t ntuned;
    pthread_mutex_t lock;
    clnorm_program *programs;
    /* Scratch by clnorm_src order (PART, STATS, TABLE); grow, never shrink. */
    cl_mem scratch[CLNORM_SCRATCH_COUNT];
    size_t scratch_bytes[CLNORM_SCRATCH_COUNT];
    clnorm_msgs *msgs; /* per thread; see clnorm_msgs */
};

/* Status helpers: set the calling thread's message on the context (the caller
 * holds the lock, or the context is not shared yet) and return the status. */
clnorm_msgs *clnorm_msgs_of(clnorm_ctx *ctx, int create);
void clnorm_clear_error(clnorm_ctx *ctx);
clnorm_status clnorm_fail(clnorm_ctx *ctx, clnorm_status st, const char *fmt, ...) CLNORM_PRINTF(3, 4);
int clnorm_cl_fail(clnorm_ctx *ctx, cl_int err, const char *what);

/* A variant's name (clnorm_variant_name) to its value; 0 or -1. */
int clnorm_parse_variant(const char *s, clnorm_variant *v);

/* Tuning file (tuning.c): the entries of `path` for c's device into *out
 * (NULL and 0 when it has none); on error a message in c and nothing
 * allocated. The entry for a key, or NULL. */
clnorm_status clnorm_tuning_read(clnorm_ctx *c, const char *path, clnorm_tuned **out, size_t *n);
const clnorm_tuned *clnorm_tuning_find(const clnorm_ctx *c, const char *key);
/* The key of calls like d (shape s), as clnorm_tuning_key gives it. */
void clnorm_tuning_key_of(const clnorm_desc *d, const clnorm_shape *s, char *buf, size_t len);
/* Operation names in tuning keys, indexed by clnorm_op ([0] is ""). */
extern const char *const clnorm_tuning_ops[CLNORM_GROUP_NORM + 1];

/* The kernel files of the one program, in the order they are concatenated
 * (kernels/NAME.cl; common.cl first). */
#define CLNORM_PROGRAM_FILES 6
extern const char *const clnorm_program_files[CLNORM_PROGRAM_FILES];

/* Programs (program.c). The complete build options of the program for key
 * on device d; snprintf's result. Pure: the kernel check enumerates them. */
int clnorm_build_options(const clnorm_devinfo *d, const clnorm_progkey *key, char *buf, size_t len);
/* Kernel lookup; compiles the program on first use. */
int clnorm_get_kernel(clnorm_ctx *ctx, const clnorm_progkey *key, clnorm_kernel_id id, cl_kernel *out);
void clnorm_programs_free(clnorm_ctx *ctx);

/* CPUs: columns per col_partials work-item (COL_TILE vectors of 16). */
#define CLNORM_CPU_COL_TILE 1024
/* CPUs: the largest work-group of the column kernels (plan.c). */
#define CLNORM_CPU_COL_WG_MAX 64
/* GPUs: float4 vectors per lane of a row held in registers (rows.cl CACHE_V). */
#define CLNORM_GPU_CACHE_V 8

/* ---- plans (plan.c) -------------------------------------------------------
 * One launch: the kernel, its program, the range, its arguments, and the
 * properties tests/test_plan.c checks. */
typedef struct clnorm_launch {
    clnorm_kernel_id kernel;
    clnorm_progkey prog;
    cl_uint dims;
    size_t global[3], local[3];
    clnorm_kargs args;
    /* Elements between the addresses consecutive work-items of dimension 0
     * read in the main loop (VEC: coalesced vectors; 1: a column each;
     * 0: the kernel reads no x). */
    size_t item_stride;
    size_t local_bytes; /* __local memory the launch declares */
} clnorm_launch;

#define CLNORM_PLAN_MAX 24
typedef struct clnorm_plan {
    unsigned n;
    clnorm_launch launch[CLNORM_PLAN_MAX];
    size_t scratch_floats[CLNORM_SCRATCH_COUNT]; /* by clnorm_src order: PART, STATS, TABLE */
    unsigned x_reads; /* passes of the kernels over x in global memory */
} clnorm_plan;

/* The plan of one forward call (validated descriptor d of shape s). */
clnorm_status clnorm_plan_forward(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                  const clnorm_shape *s, clnorm_plan *p);
/* The plan of one backward call (d validated by clnorm_validate_backward). */
clnorm_status clnorm_plan_backward(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                   const clnorm_shape *s, clnorm_plan *p);

/* The BatchNorm split's stages (syncbn.c): the local record of a slice
 * (s->N may be 0: an empty slice) into the record at record_offset of
 * CLNORM_SRC_RECORD, and the apply with the global record there, count
 * elements per channel over every process. */
clnorm_status clnorm_plan_bn_local(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                   const clnorm_shape *s, size_t record_offset, clnorm_plan *p);
clnorm_status clnorm_plan_bn_apply(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                   const clnorm_shape *s, size_t record_offset, cl_uint count, clnorm_plan *p);

/* The backward split's stages (syncbn.c): count 0, the local sums of a
 * slice (s->N may be 0) into the record at record_offset (2 * C floats: sum
 * dy, then sum dy * xhat per channel); count > 0, dscale/dbias and dx of
 * the slice from the global sums there, count elements per channel. */
clnorm_status clnorm_plan_bn_grad(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_desc *d,
                                  const clnorm_shape *s, size_t record_offset, cl_uint count, clnorm_plan *p);
/* The prologue of every public call that enqueues: takes the context lock
 * (the caller releases it), clears this thread's message, sets *event to
 * NULL, and checks the descriptor (any type) and the wait list. */
clnorm_status clnorm_call_begin(clnorm_ctx *c, const void *desc, cl_uint num_wait, const cl_event *wait_list,
                                cl_event *event);
/* The executor (exec.c). The settings of a call of d (shape s): the
 * user's forced ones, else a tuning entry's, else none. Running plan p of
 * descriptor d, record bound to CLNORM_SRC_RECORD (NULL: none), with
 * clnorm_forward's event rules; the caller holds the context's lock. */
clnorm_settings clnorm_call_settings(const clnorm_ctx *c, const clnorm_desc *d, const clnorm_shape *s);
int clnorm_execute(clnorm_ctx *c, const clnorm_desc *d, cl_mem record, const clnorm_plan *p, cl_uint num_wait,
                   const cl_event *wait_list, cl_event *event);

/* Validation of buffers (desc.c): each span (name, buffer, extent in
 * floats, whether written) present is checked as clnorm_validate checks
 * its own (a valid buffer of this context, large enough), then no output
 * may overlap another span, except the (output, input) index pairs of
 * `pairs`, which may coincide exactly (in place: y over x, dx over dy). */
typedef struct clnorm_span {
    const char *name;
    clnorm_buf b;
    size_t extent;
    int output;
    cl_mem root;   /* filled: the buffer a sub-buffer belongs to */
    size_t lo, hi; /* filled: byte range in root */
    size_t esize;  /* bytes per element; 0 = 4 (float32) */
} clnorm_span;
clnorm_status clnorm_check_spans(clnorm_ctx *c, clnorm_span *sp, int n, const unsigned char (*pairs)[2], int npairs);

/* BatchNorm folding (deploy.c, plan.c). The fold's buffers travel in a
 * descriptor's slots, so that the executor binds them as any call's: x =
 * weight, y = weight_out, scale, bias, running_mean, running_var as named,
 * mean = conv_bias, rstd = bias_out. */
clnorm_desc clnorm_fold_as_desc(const clnorm_fold_desc *f);
clnorm_status clnorm_validate_fold(clnorm_ctx *c, const clnorm_fold_desc *f);
clnorm_status clnorm_plan_fold(const clnorm_devinfo *dev, const clnorm_settings *set, const clnorm_fold_desc *f,
                               clnorm_plan *p);

extern const struct clnorm_kernel_source {
    const char *name;
    const char *text;
} clnorm_kernel_sources[];

#endif
