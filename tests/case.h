/*
 * The case model: one description of a call of clnorm, used by the Check
 * suites, the reliability tests, the fuzzer's decoder and clnorm-bench (its
 * standard suite, --op, --check and --tune). A case is built into a
 * clnorm_desc by th_case_desc and, with host data, into a call on guarded
 * buffers by the harness (common.h: th_check_case, th_call_init).
 *
 * Free of OpenCL calls and of the reference, so that tests/plan/ can compile
 * it alone against the static library.
 *
 * Shapes are written in PyTorch's logical order, whatever the layout:
 *   LayerNorm / RMSNorm:  M x D             (rows = product of leading dims, cols = last)
 *   channel norms:        N x C [x S1 [x S2 [x S3]]]   (rank = dims - 2)
 * so "32x256x64x64 nhwc" is N=32, C=256, H=W=64 stored channels-last.
 * A case is a forward call, or with `backward` set the backward call of
 * that forward (clnorm_backward: dx, dscale, dbias from dy, x, scale and
 * the statistics the forward normalized with).
 *
 * The storage type (issue 17): dtype is clnorm_desc.dtype (x, y, dy, dx),
 * param_dtype clnorm_desc.param_dtype (scale, bias); 0 = float32, so a
 * case that never names a type is the float32 case it always was (same
 * label, descriptor and bytes). The words "f16" and "bf16" set both: a
 * model converted with .half() / .to(torch.bfloat16), or loaded with
 * torch_dtype=float16, holds its LayerNorm/RMSNorm/GroupNorm weights in
 * the same type as its activations (torch.autocast instead runs layer_norm
 * and group_norm entirely in float32). "params=f32" keeps scale and bias in
 * float32 (the mixed form clnorm_desc also accepts).
 */
#ifndef CLNORM_TEST_CASE_H
#define CLNORM_TEST_CASE_H

#include <stddef.h>

#include "clnorm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TH_MAX_DIMS 5

/* Data a test generates for x (common.c, th_fill). */
typedef enum th_kind {
    TH_NORMAL = 0,       /* N(mu, sigma) with mu in [-2, 2], sigma in [0.5, 2] */
    TH_UNIFORM_1E4,      /* uniform[0, 1) * 1e4 (the classic demo) */
    TH_OFFSET_1E4,       /* 1e4 + N(0, 1e-2): |mean|/std = 1e6, kills E[x^2]-E[x]^2 */
    TH_CONSTANT,         /* every set constant (values k/4, k in -15..15, exactly summable) */
    TH_MIXED_CONSTANT,   /* every other set constant, the rest normal */
    TH_NANINF,           /* normal; one set holds a NaN, another +Inf, a third -Inf */
    TH_KIND_COUNT
} th_kind;

/* How a call is made. */
enum {
    TH_IN_PLACE = 1,       /* y is exactly x (same mem, same offset); backward: dx is exactly dy */
    TH_NO_EVENT = 2,       /* do not ask for an event; use clFinish instead */
    TH_SMALL_OFFSETS = 4,  /* offsets 1..3 only (default: 1..40, sometimes ~1000) */
};

typedef struct th_case {
    /* the operation and its shape */
    clnorm_op op;
    int training;          /* BatchNorm/InstanceNorm: batch statistics (1) or running (0) */
    clnorm_layout layout;  /* channel norms only */
    unsigned ndim;
    size_t shape[TH_MAX_DIMS];
    size_t groups;         /* GroupNorm; th_case_check defaults 0 to 32 (or 1) */
    float eps, momentum;   /* clnorm_desc_init's defaults */
    int per_sample_affine, running_var_biased;
    /* which buffers the call passes */
    int scale, bias;       /* pass scale / bias */
    int stats;             /* saved mean (not RMSNorm) and rstd (with batch statistics) */
    int running;           /* running statistics: 1 pass; 0 only for BatchNorm; -1 never */
    unsigned omit;         /* TH_ROLE bits never passed (the fuzzer's combinations) */
    /* the direction */
    int backward;          /* 0: clnorm_forward; 1: clnorm_backward of the same descriptor */
    unsigned grads;        /* backward: TH_GRADS bits asked for; 0 = dx, plus dscale with scale and
                              dbias with bias (PyTorch's output_mask for a layer with those parameters) */
    /* the storage types (0 = float32): x, y, dy, dx; scale, bias */
    clnorm_dtype dtype, param_dtype;
    /* the data and how the call is made (tests) */
    th_kind kind;
    unsigned flags;        /* TH_IN_PLACE, ... */
} th_case;

/* A case of op: training, channels-first, clnorm_desc_init's scalars, no
 * optional buffer, normal data, no shape yet. */
void th_case_init(th_case *c, clnorm_op op);
/* The same with a shape: rows x cols (LayerNorm/RMSNorm), or N x C x
 * spatial (rank dims) for a channel norm in layout. */
void th_case_rows(th_case *c, clnorm_op op, size_t rows, size_t cols);
typedef struct th_shape {
    size_t n, c;
    unsigned rank;
    size_t s[3];
} th_shape;
void th_case_channels(th_case *c, clnorm_op op, clnorm_layout layout, const th_shape *s);
/* The descriptor of th_case_channels(op, layout, s). */
clnorm_desc th_shape_desc(clnorm_op op, clnorm_layout layout, const th_shape *s);
/* Scale, bias (not for RMSNorm, whose torch.nn.functional.rms_norm has a
 * weight only) and saved statistics, as PyTorch's native_* calls: every
 * case of the benchmark. Call after the op is known. */
void th_case_full(th_case *c);

/* Names: "layer_norm", "rms_norm", "batch_norm_train", "batch_norm_infer",
 * "instance_norm", "instance_norm_infer", "group_norm". Layouts: "rows"
 * (LayerNorm/RMSNorm), "nchw", "nhwc". */
const char *th_op_name(const th_case *c);
const char *th_layout_name(const th_case *c);

/* Parsers; each returns 0 on success, -1 on a malformed value.
 * op: the names above, plus "batch_norm" (= train), "batch_norm_inference",
 *   "layernorm", "rmsnorm", "groupnorm", "instancenorm", "bn", "ln", "gn", "in";
 *   training follows the name (an inference InstanceNorm tracks running
 *   statistics).
 * shape: "4096x4096", "32x256x64x64" (also ',' as separator).
 * layout: nchw|nhwc|cf|cl|channels_first|channels_last|first|last. */
int th_parse_op(const char *s, th_case *c);
int th_parse_shape(const char *s, th_case *c);
int th_parse_layout(const char *s, clnorm_layout *layout);
/* A case from one line: "OP SHAPE [LAYOUT] [G=n] [WORD...]", th_case_label's
 * form followed by words: affine (scale and bias), scale, bias, stats,
 * running, no-running, psa, inplace, eps=E, momentum=M; f16 (fp16, float16)
 * or bf16 (bfloat16) for the storage type of x, y, dy, dx and the parameters,
 * params=f32 for float32 scale and bias; backward (or bwd)
 * for the backward call, and dx, dscale, dbias for the gradients it asks
 * for (each implies backward; none named = the default of th_case.grads).
 * 0, or -1 with a message in err. */
int th_case_parse(th_case *c, const char *line, char *err, size_t errlen);

/* Checks the dimension count for the op and fills defaults (groups = 32 for
 * GroupNorm when 0, 1 where 32 does not divide C). Returns 0, or -1 with a
 * message in err. */
int th_case_check(th_case *c, char *err, size_t errlen);

/* The storage type's word in labels: "f32", "f16", "bf16". */
const char *th_dtype_name(clnorm_dtype t);
/* "f16", "fp16", "float16", "half", "bf16", "bfloat16", "f32", "fp32",
 * "float32", "float" (case-insensitive). 0, or -1. */
int th_parse_dtype(const char *s, clnorm_dtype *t);

/* "4096x4096" */
void th_shape_string(const th_case *c, char *buf, size_t len);
/* "group_norm 2x512x64x64 nhwc G=32", then " bwd" for a backward case and
 * the gradients when asked for explicitly (" bwd dx dscale"), then the
 * storage type of a 16-bit case (" f16", " bf16", and " params=f32" for
 * float32 parameters): a line th_case_parse reads back to the same case;
 * returns buf. A float32 forward case's label is as before the backward and
 * the storage types existed. */
const char *th_case_label(const th_case *c, char *buf, size_t len);

/* The descriptor of c: shape and scalars, buffers absent. 0, or -1 for a
 * dimension count the op cannot have. */
int th_case_desc(const th_case *c, clnorm_desc *d);
/* The case of a descriptor (shapes as rows x cols, N x C x spatial). */
void th_case_of_desc(th_case *c, const clnorm_desc *d);

/* ---------- the buffers of a call ---------- */
/* Roles of the buffers of a call, in clnorm_desc's order (the backward's
 * four after the forward's eight, whose numbers never change). */
enum th_role {
    TH_X, TH_Y, TH_SCALE, TH_BIAS, TH_MEAN, TH_RSTD, TH_RUNNING_MEAN, TH_RUNNING_VAR,
    TH_DY, TH_DX, TH_DSCALE, TH_DBIAS,
    TH_ROLES
};
#define TH_ROLE(r) (1u << (r))
#define TH_AFFINE (TH_ROLE(TH_SCALE) | TH_ROLE(TH_BIAS))
#define TH_STATS (TH_ROLE(TH_MEAN) | TH_ROLE(TH_RSTD))
#define TH_RUNNING (TH_ROLE(TH_RUNNING_MEAN) | TH_ROLE(TH_RUNNING_VAR))
#define TH_XY (TH_ROLE(TH_X) | TH_ROLE(TH_Y))
#define TH_GRADS (TH_ROLE(TH_DX) | TH_ROLE(TH_DSCALE) | TH_ROLE(TH_DBIAS)) /* a backward call's outputs */
#define TH_BACKWARD_ROLES (TH_ROLE(TH_DY) | TH_GRADS) /* any of them in `want`: a backward call */
const char *th_role_name(int role);  /* "x", "y", "scale", ..., "running_var", "dy", "dx", "dscale", "dbias" */
clnorm_buf *th_desc_buf(clnorm_desc *d, int role);
/* Whether d normalizes with the running statistics (BatchNorm inference,
 * InstanceNorm inference given them) rather than the batch's. */
int th_uses_running(const clnorm_desc *d, int has_running);
/* The roles a call of d passes when it asks for `want` (TH_ROLE bits), by
 * the ops' rules. Forward (no TH_BACKWARD_ROLES bit in want): x and y
 * always; running statistics never for LayerNorm, RMSNorm and GroupNorm;
 * saved statistics only with batch statistics, and no mean for RMSNorm.
 * Backward (a TH_BACKWARD_ROLES bit in want): x and dy always, the
 * gradients asked for, scale if asked, never y or bias (backward ignores
 * them); with batch statistics the saved mean and rstd asked for (no mean
 * for RMSNorm) and no running statistics (ignored); with the running ones
 * (th_uses_running) those and no saved statistics. */
unsigned th_roles(const clnorm_desc *d, unsigned want);
/* The roles case c passes: th_roles of what it asks for, less c->omit.
 * A backward case always asks for the statistics its forward normalized
 * with (saved or running: clnorm_backward requires them; c->omit takes
 * them away) and for its gradients (th_case_grads). */
unsigned th_case_roles(const th_case *c);
/* The TH_GRADS bits a backward case asks for (c->grads, or its default);
 * 0 for a forward case. */
unsigned th_case_grads(const th_case *c);
/* Payload floats per role for shape d: elements (x, y, dy, dx), affine
 * length (scale, bias, dscale, dbias), set count, channels; never 0, and
 * generous for a shape the library must reject. */
void th_desc_lengths(const clnorm_desc *d, size_t len[TH_ROLES]);
/* Elements of each buffer case c passes; 0 = absent. */
void th_case_buffer_elems(const th_case *c, size_t elems[TH_ROLES]);
size_t th_case_elements(const th_case *c);
/* How many times each buffer is moved across memory in the effective byte
 * count. Forward: x read once, y written once, scale/bias read once, saved
 * stats written once, running stats read and written in training (2), read
 * in inference (1). Backward (the Triton tutorial's and Liger's model, 3x
 * the tensor for a row norm): x and dy read once, dx written once, scale,
 * the statistics (saved or running) read once, dscale/dbias written once. */
void th_case_buffer_traffic(const th_case *c, unsigned traffic[TH_ROLES]);
/* Bytes per element of each role: clnorm_dtype_size(dtype) for x, y, dy,
 * dx; of param_dtype for scale and bias; 4 for the rest (statistics,
 * running statistics, dscale and dbias are always float32). */
void th_case_elem_sizes(const th_case *c, size_t size[TH_ROLES]);
/* Effective bytes: sum over roles of elems * traffic * element size
 * (th_case_elem_sizes; 2-byte elements for a 16-bit case). */
double th_case_bytes(const th_case *c);

/* ---------- the benchmark's standard suite (issue 4, float32) ---------- */
extern const th_case th_suite[];
extern const size_t th_suite_count;
/* The suite's half-precision cases (issue 17): each LayerNorm, RMSNorm
 * and GroupNorm case of th_suite in float16, then each in bfloat16, with
 * parameters in the same type. Writes at most max cases to out; returns
 * how many there are. */
size_t th_suite_half(th_case *out, size_t max);
/* Halves c's largest dimension, but for the channels (C) and the row
 * length (D), until it has at most max_elems elements: the suite's shapes
 * at a size the tests can afford, with the same op, layout, groups, row
 * length and channel count. */
void th_case_reduce(th_case *c, size_t max_elems);

#ifdef __cplusplus
}
#endif
#endif
