/*
 * The benchmark suite: one description of a case (operation, logical shape,
 * layout, groups, which optional buffers are present), the standard suite of
 * issue 4, command-line parsing of a case, and the effective byte count.
 *
 * Small and free of OpenCL calls so that tests can share it: a case becomes a
 * clnorm_desc (shape fields only) with bench_case_desc(), and the sizes of
 * the buffers it needs come from bench_case_buffer_elems().
 *
 * Shapes are always written in PyTorch's logical order, whatever the layout:
 *   LayerNorm / RMSNorm:  M x D             (rows = product of leading dims, cols = last)
 *   channel norms:        N x C [x S1 [x S2 [x S3]]]   (rank = dims - 2)
 * so "32x256x64x64 nhwc" is N=32, C=256, H=W=64 stored channels-last.
 */
#ifndef CLNORM_BENCH_SUITE_H
#define CLNORM_BENCH_SUITE_H

#include "clnorm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_MAX_DIMS 5

typedef struct bench_case {
    clnorm_op op;
    int training;          /* BatchNorm/InstanceNorm: batch statistics (1) or running (0) */
    clnorm_layout layout;  /* channel norms only */
    unsigned ndim;
    size_t shape[BENCH_MAX_DIMS];
    size_t groups;         /* GroupNorm; 0 = default (32) */
    int affine;            /* scale and bias present */
    int save_stats;        /* saved mean/rstd written (training-mode ops) */
    int running_stats;     /* InstanceNorm: track running statistics */
} bench_case;

/* Buffers a case may use, in clnorm_desc order. */
enum bench_role {
    BENCH_X, BENCH_Y, BENCH_SCALE, BENCH_BIAS, BENCH_MEAN, BENCH_RSTD,
    BENCH_RUNNING_MEAN, BENCH_RUNNING_VAR, BENCH_ROLES
};

extern const bench_case bench_suite[];
extern const size_t bench_suite_count;

/* A case with defaults for op (affine on, saved statistics on, training). */
void bench_case_init(bench_case *c, clnorm_op op, int training);

/* Names: "layer_norm", "rms_norm", "batch_norm_train", "batch_norm_infer",
 * "instance_norm", "group_norm". Layouts: "rows" (LayerNorm/RMSNorm), "nchw", "nhwc". */
const char *bench_op_name(const bench_case *c);
const char *bench_layout_name(const bench_case *c);
const char *bench_role_name(int role);

/* Parsers; each returns 0 on success, -1 on a malformed value.
 * op: the names above, plus "batch_norm" (= train), "batch_norm_inference",
 *   "layernorm", "rmsnorm", "groupnorm", "instancenorm", "bn", "ln", "gn", "in".
 * shape: "4096x4096", "32x256x64x64" (also ',' as separator).
 * layout: nchw|nhwc|cf|cl|channels_first|channels_last|first|last. */
int bench_parse_op(const char *s, bench_case *c);
int bench_parse_shape(const char *s, bench_case *c);
int bench_parse_layout(const char *s, clnorm_layout *layout);

/* Checks the dimension count for the op and fills defaults (groups = 32 for
 * GroupNorm when 0). Returns 0, or -1 with a message in err. */
int bench_case_check(bench_case *c, char *err, size_t errlen);

/* "4096x4096" */
void bench_shape_string(const bench_case *c, char *buf, size_t len);
/* "group_norm 2x512x64x64 nhwc G=32" */
void bench_case_label(const bench_case *c, char *buf, size_t len);

/* Shape and scalar fields of a descriptor (buffers left absent). 0 or -1. */
int bench_case_desc(const bench_case *c, clnorm_desc *d);
/* Point one role of a descriptor at a buffer. */
void bench_desc_set(clnorm_desc *d, int role, clnorm_buf b);

size_t bench_case_elements(const bench_case *c);
size_t bench_case_sets(const bench_case *c);
/* Elements of each buffer the case uses; 0 = absent. */
void bench_case_buffer_elems(const bench_case *c, size_t elems[BENCH_ROLES]);
/* How many times each buffer is moved across memory in the effective byte
 * count: x read once, y written once, scale/bias read once, saved stats
 * written once, running stats read and written in training (2), read in
 * inference (1). */
void bench_case_buffer_traffic(const bench_case *c, unsigned traffic[BENCH_ROLES]);
/* Effective bytes: sum over roles of elems * traffic * sizeof(float). */
double bench_case_bytes(const bench_case *c);

#ifdef __cplusplus
}
#endif
#endif
