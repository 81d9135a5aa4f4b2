/* Library-internal declarations shared by the host sources. */
#ifndef CLNORM_INTERNAL_H
#define CLNORM_INTERNAL_H

#include "clnorm.h"
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
typedef struct clnorm_devinfo {
    cl_uint compute_units;
    size_t max_wg;
    cl_ulong cache_bytes; /* global memory cache (last level); 0 if unknown */
    int is_cpu;   /* CPU-class rules (CLNORM_DEVICE_CLASS may override) */
    int type_cpu; /* the device reports CL_DEVICE_TYPE_CPU */
    int simulator; /* Oclgrind: never the default choice */
    unsigned features; /* CLNORM_FEAT_*: what the target macros may switch on */
    char name[256], vendor[128], platform[128], vendor_platform[128];
} clnorm_devinfo;

/* Device choice and profile (device.c). */
clnorm_status clnorm_pick_device(cl_device_id *out);
cl_int clnorm_read_profile(cl_device_id dev, clnorm_devinfo *d);
/* The features a profile's platform, vendor and type allow (sets
 * d->features and d->simulator from the strings; pure). */
void clnorm_profile_features(clnorm_devinfo *d);
/* The -D options that switch the kernels' target features (common.cl's
 * "target features") on or off for d; snprintf's result. */
int clnorm_target_options(const clnorm_devinfo *d, char *buf, size_t len);

/* Program options beyond work-group size and lanes (bits of `flags`). */
#define CLNORM_K_RMS 1u    /* statistics are the mean of squares */
#define CLNORM_K_STREAM 2u /* y is written with streaming stores */
#define CLNORM_K_RSTD_ZERO 4u /* var == 0 with eps == 0 gives rstd 0 (BatchNorm, InstanceNorm) */
/* Every flag bit above: the kernel check (tests/kernel_options.c) builds each
 * combination. A new bit must be added here. */
#define CLNORM_K_ALL (CLNORM_K_RMS | CLNORM_K_STREAM | CLNORM_K_RSTD_ZERO)

/* One compiled program per option set; kernels are created once and reused
 * (every call holds the context lock while it sets arguments and enqueues). */
#define CLNORM_MAX_KERNELS 9
typedef struct clnorm_program {
    unsigned wg, lanes, tree, flags;
    cl_program program;
    cl_kernel kernels[CLNORM_MAX_KERNELS];
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
    clnorm_variant variant; /* forced variant, or AUTO */
    size_t forced_wg;       /* forced work-group size, or 0 */
    /* What the rules see for the call being planned (set under the lock by
     * clnorm_forward): the forced settings, else the tuning entry's. */
    clnorm_variant call_variant;
    size_t call_wg;
    clnorm_tuned *tuned; /* entries for this device; NULL if none */
    size_t ntuned;
    int stream;             /* streaming stores: -1 by the rule, 0 never, 1 always (CLNORM_STREAM) */
    pthread_mutex_t lock;
    clnorm_program *programs;
    cl_mem scratch[3]; /* partials, merged statistics, folded table; grow, never shrink */
    size_t scratch_bytes[3];
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
/* Operation names in tuning keys, indexed by clnorm_op ([0] is ""). */
extern const char *const clnorm_tuning_ops[CLNORM_GROUP_NORM + 1];

/* The kernel files of the one program, in the order they are concatenated
 * (kernels/NAME.cl; common.cl first). */
#define CLNORM_PROGRAM_FILES 5
extern const char *const clnorm_program_files[CLNORM_PROGRAM_FILES];

/* The complete build options of the program for (wg, lanes, tree, flags)
 * on device d; snprintf's result. Pure: the kernel check enumerates them. */
int clnorm_build_options(const clnorm_devinfo *d, unsigned wg, unsigned lanes, unsigned tree, unsigned flags,
                         char *buf, size_t len);

/* Kernel lookup; compiles the program on first use. */
int clnorm_get_kernel(clnorm_ctx *ctx, const char *name, unsigned wg, unsigned lanes,
                      unsigned flags, cl_kernel *out);

/* Selection rules (select.c). */
typedef struct clnorm_rowplan {
    unsigned wg, lanes;   /* work-group size, work-items per set */
    int split;            /* 1: partials + merge + apply */
    size_t chunk;         /* elements per chunk when split */
    size_t per_item;      /* lanes == 1: consecutive sets per work-item */
    unsigned lag;         /* lanes == 1: pipeline depth of row_norm (rows.cl): 2 or 1 */
} clnorm_rowplan;
size_t clnorm_rowplan_global(const clnorm_rowplan *p, size_t nsets);
void clnorm_plan_rows(const clnorm_ctx *ctx, size_t nsets, size_t len, clnorm_rowplan *p);
unsigned clnorm_plan_wg(const clnorm_ctx *ctx);
typedef struct clnorm_colplan {
    unsigned wg;   /* work-group size */
    size_t per_wi; /* columns per work-item */
    size_t rchunk; /* rows per partial */
} clnorm_colplan;
/* CPUs: columns per col_partials work-item (COL_TILE vectors of 16). */
#define CLNORM_CPU_COL_TILE 1024
/* CPUs: the largest work-group of the column kernels (select.c). */
#define CLNORM_CPU_COL_WG_MAX 64
void clnorm_plan_cols(const clnorm_ctx *ctx, size_t P, size_t R, size_t C, clnorm_colplan *p);
int clnorm_plan_bn_use_cols(const clnorm_ctx *ctx, size_t S);
/* col_wave (cols.cl): channels-last InstanceNorm/GroupNorm on CPUs, one launch
 * per sample plus one; 0 where the partials pipeline serves better. */
int clnorm_plan_waves(const clnorm_ctx *ctx, size_t N, size_t S, size_t C, clnorm_colplan *p);
int clnorm_plan_stream(const clnorm_ctx *ctx, size_t y_bytes);

extern const struct clnorm_kernel_source {
    const char *name;
    const char *text;
} clnorm_kernel_sources[];

#endif
