/*
 * The kernels, listed once: each with its parameters in the order of its
 * __kernel signature in kernels/ (the .cl files). The list yields the kernel ids, their
 * names, one argument struct per kernel (plans fill it by field name, so a
 * misspelt or missing argument is a compile error) and the setters that
 * pass a struct to clSetKernelArg in signature order (exec.c).
 *
 * Parameter types: MEM is a buffer named by its source (the call's buffers
 * or a scratch buffer; resolved when the plan runs), ULONG, UINT, FLOAT.
 */
#ifndef CLNORM_KERNELS_H
#define CLNORM_KERNELS_H

#include "clnorm.h"

/* Where a MEM argument comes from. NONE passes a NULL buffer (an absent
 * optional one). Scratch: PART = partials, STATS = merged statistics,
 * TABLE = folded table. */
typedef enum clnorm_src {
    CLNORM_SRC_NONE = 0,
    CLNORM_SRC_X,
    CLNORM_SRC_Y,
    CLNORM_SRC_SCALE,
    CLNORM_SRC_BIAS,
    CLNORM_SRC_MEAN,
    CLNORM_SRC_RSTD,
    CLNORM_SRC_RMEAN,
    CLNORM_SRC_RVAR,
    CLNORM_SRC_PART,
    CLNORM_SRC_STATS,
    CLNORM_SRC_TABLE,
    CLNORM_SRC_DY,
    CLNORM_SRC_DX,
    CLNORM_SRC_DSCALE,
    CLNORM_SRC_DBIAS,
    CLNORM_SRC_RECORD, /* the BatchNorm split's record (clnorm_bn_local_stats, clnorm_bn_apply_stats) */
    CLNORM_SRC_RES,  /* the residual (fused add) */
    CLNORM_SRC_HOUT  /* h_out */
} clnorm_src;
#define CLNORM_SCRATCH_COUNT 3 /* PART, STATS, TABLE */

#define CLNORM_T_MEM clnorm_src
#define CLNORM_T_ULONG cl_ulong
#define CLNORM_T_UINT cl_uint
#define CLNORM_T_FLOAT cl_float

/* rows.cl */
#define CLNORM_ARGS_row_norm(A)                                                                          \
    A(MEM, x) A(ULONG, xo) A(MEM, y) A(ULONG, yo) A(MEM, scale) A(ULONG, so) A(MEM, bias) A(ULONG, bo)   \
    A(MEM, mean_out) A(ULONG, mo) A(MEM, rstd_out) A(ULONG, ro) A(MEM, stats) A(UINT, nsets)             \
    A(UINT, per_item) A(UINT, lag) A(UINT, len) A(UINT, seg) A(UINT, aff_mod) A(UINT, elementwise)       \
    A(FLOAT, eps) A(MEM, res) A(ULONG, rso) A(MEM, hout) A(ULONG, hoo)
#define CLNORM_ARGS_row_partials(A)                                                                      \
    A(MEM, x) A(ULONG, xo) A(MEM, part) A(UINT, nsets) A(UINT, per_item) A(UINT, len) A(UINT, chunk)     \
    A(MEM, res) A(ULONG, rso) A(MEM, hout) A(ULONG, hoo)
#define CLNORM_ARGS_row_apply(A)                                                                         \
    A(MEM, x) A(ULONG, xo) A(MEM, y) A(ULONG, yo) A(MEM, scale) A(ULONG, so) A(MEM, bias) A(ULONG, bo)   \
    A(MEM, stats) A(UINT, nsets) A(UINT, len) A(UINT, chunk) A(UINT, seg) A(UINT, aff_mod)               \
    A(UINT, elementwise) A(FLOAT, eps)
/* cols.cl */
#define CLNORM_ARGS_col_partials(A) A(MEM, x) A(ULONG, xo) A(MEM, part) A(UINT, R) A(UINT, C) A(UINT, rchunk)
#define CLNORM_ARGS_col_wave(A)                                                                          \
    A(MEM, x) A(ULONG, xo) A(MEM, y) A(ULONG, yo) A(MEM, scale) A(ULONG, so) A(MEM, bias) A(ULONG, bo)   \
    A(MEM, mean_out) A(ULONG, mo) A(MEM, rstd_out) A(ULONG, ro) A(MEM, stats) A(MEM, part)               \
    A(MEM, table) A(UINT, N) A(UINT, S) A(UINT, C) A(UINT, G) A(UINT, rchunk) A(UINT, aff_ps)            \
    A(FLOAT, eps) A(UINT, w)
/* merge.cl */
#define CLNORM_ARGS_merge_partials(A)                                                                    \
    A(MEM, part) A(MEM, stats) A(MEM, mean_out) A(ULONG, mo) A(MEM, rstd_out) A(ULONG, ro)               \
    A(UINT, nsets) A(UINT, n_inner) A(ULONG, o_stride) A(ULONG, i_stride) A(UINT, n1) A(ULONG, st1)      \
    A(UINT, n2) A(ULONG, st2) A(FLOAT, eps)
#define CLNORM_ARGS_merge_sets(A) CLNORM_ARGS_merge_partials(A)
#define CLNORM_ARGS_update_running(A)                                                                    \
    A(MEM, stats) A(UINT, nsets) A(MEM, rmean) A(ULONG, rmo) A(MEM, rvar) A(ULONG, rvo) A(UINT, C)       \
    A(UINT, navg) A(FLOAT, count) A(FLOAT, momentum) A(UINT, biased)
#define CLNORM_ARGS_fold_table(A)                                                                        \
    A(MEM, mean) A(ULONG, mo) A(MEM, var) A(ULONG, vo) A(MEM, scale) A(ULONG, so) A(MEM, bias)           \
    A(ULONG, bo) A(MEM, table) A(UINT, P) A(UINT, C) A(UINT, stat_p) A(UINT, grp) A(UINT, aff_p)         \
    A(FLOAT, eps)
/* merge.cl: 16-bit elementwise scale and bias widened once per call */
#define CLNORM_ARGS_widen_params(A)                                                                      \
    A(MEM, scale) A(ULONG, so) A(MEM, bias) A(ULONG, bo) A(MEM, table) A(UINT, n)
/* merge.cl: the BatchNorm split (clnorm_bn_local_stats, clnorm_bn_apply_stats) */
#define CLNORM_ARGS_merge_record(A)                                                                      \
    A(MEM, part) A(MEM, record) A(ULONG, ro) A(UINT, nsets) A(UINT, n_inner) A(ULONG, o_stride)          \
    A(ULONG, i_stride) A(UINT, n1) A(ULONG, st1) A(UINT, n2) A(ULONG, st2)
#define CLNORM_ARGS_record_stats(A)                                                                      \
    A(MEM, record) A(ULONG, ro) A(UINT, count) A(MEM, stats) A(MEM, mean_out) A(ULONG, mo)              \
    A(MEM, rstd_out) A(ULONG, rso) A(UINT, C) A(FLOAT, eps)
/* merge.cl: BatchNorm folded into a convolution (clnorm_fold_batch_norm). */
#define CLNORM_ARGS_fold_conv_bn(A)                                                                      \
    A(MEM, w) A(ULONG, wo) A(MEM, cbias) A(ULONG, cbo) A(MEM, scale) A(ULONG, so) A(MEM, bias)           \
    A(ULONG, bo) A(MEM, rmean) A(ULONG, rmo) A(MEM, rvar) A(ULONG, rvo) A(MEM, w_out) A(ULONG, woo)      \
    A(MEM, b_out) A(ULONG, boo) A(UINT, K) A(FLOAT, eps)
/* apply.cl */
#define CLNORM_ARGS_apply_table(A)                                                                       \
    A(MEM, x) A(ULONG, xo) A(MEM, y) A(ULONG, yo) A(MEM, table) A(UINT, nrows) A(UINT, per_item)         \
    A(UINT, Q) A(UINT, R) A(UINT, chunk) A(UINT, C) A(UINT, tp) A(UINT, ch_is_r) A(UINT, tn)

/* backward.cl */
#define CLNORM_ARGS_bwd_rows(A)                                                                          \
    A(MEM, x) A(ULONG, xo) A(MEM, dy) A(ULONG, dyo) A(MEM, dx) A(ULONG, dxo) A(MEM, scale) A(ULONG, so)  \
    A(MEM, mean) A(ULONG, mo) A(MEM, rstd) A(ULONG, ro) A(MEM, p0) A(ULONG, p0o) A(MEM, p1) A(ULONG, p1o) \
    A(ULONG, pstride) A(MEM, sums) A(UINT, nsets) A(UINT, per_item) A(UINT, len) A(UINT, chunk)          \
    A(UINT, phase) A(UINT, seg) A(UINT, aff_mod) A(UINT, elementwise) A(UINT, pipe)
#define CLNORM_ARGS_bwd_params(A)                                                                        \
    A(MEM, part) A(ULONG, hoff) A(MEM, dscale) A(ULONG, dso) A(MEM, dbias) A(ULONG, dbo) A(UINT, J)      \
    A(UINT, B)
#define CLNORM_ARGS_bwd_row_sums(A)                                                                      \
    A(MEM, x) A(ULONG, xo) A(MEM, dy) A(ULONG, dyo) A(MEM, mean) A(ULONG, mo) A(MEM, rs) A(ULONG, ro)    \
    A(MEM, part) A(UINT, nrows) A(UINT, per_item) A(UINT, len) A(UINT, chunk) A(UINT, rdiv) A(UINT, rmod) \
    A(UINT, from_var) A(FLOAT, eps)
#define CLNORM_ARGS_bwd_col_sums(A)                                                                      \
    A(MEM, x) A(ULONG, xo) A(MEM, dy) A(ULONG, dyo) A(MEM, mean) A(ULONG, mo) A(MEM, rs) A(ULONG, ro)    \
    A(MEM, part) A(UINT, R) A(UINT, C) A(UINT, rchunk) A(UINT, colgrp) A(UINT, stat_p) A(UINT, from_var) \
    A(FLOAT, eps)
#define CLNORM_ARGS_bwd_merge(A)                                                                         \
    A(MEM, part) A(MEM, stats) A(ULONG, so) A(UINT, nent) A(UINT, n_inner) A(ULONG, o_stride)            \
    A(ULONG, i_stride) A(UINT, n1) A(ULONG, st1) A(UINT, n2) A(ULONG, st2)
#define CLNORM_ARGS_bwd_table(A)                                                                         \
    A(MEM, stats) A(ULONG, sto) A(MEM, scale) A(ULONG, so) A(MEM, mean) A(ULONG, mo) A(MEM, rs)          \
    A(ULONG, ro) A(MEM, table) A(MEM, dscale) A(ULONG, dso) A(MEM, dbias) A(ULONG, dbo) A(UINT, P)       \
    A(UINT, C) A(UINT, G) A(UINT, stat_p) A(UINT, aff_p) A(UINT, affine_only) A(UINT, from_var)          \
    A(FLOAT, count) A(FLOAT, eps)
#define CLNORM_ARGS_bwd_apply(A)                                                                         \
    A(MEM, x) A(ULONG, xo) A(MEM, dy) A(ULONG, dyo) A(MEM, dx) A(ULONG, dxo) A(MEM, table)               \
    A(UINT, nrows) A(UINT, per_item) A(UINT, Q) A(UINT, R) A(UINT, chunk) A(UINT, C) A(UINT, tp)         \
    A(UINT, ch_is_r) A(UINT, tn) A(UINT, use_x)

/* Every kernel, in one list. */
#define CLNORM_KERNEL_LIST(K)                                                                            \
    K(row_norm) K(row_partials) K(row_apply) K(col_partials) K(col_wave) K(merge_partials) K(merge_sets) \
    K(update_running) K(fold_table) K(widen_params) K(apply_table) K(merge_record) K(record_stats) K(fold_conv_bn)     \
    K(bwd_rows) K(bwd_params) K(bwd_row_sums) K(bwd_col_sums) K(bwd_merge) K(bwd_table) K(bwd_apply)

typedef enum clnorm_kernel_id {
#define CLNORM_X_KID(name) CLNORM_KID_##name,
    CLNORM_KERNEL_LIST(CLNORM_X_KID)
#undef CLNORM_X_KID
    CLNORM_KERNEL_COUNT
} clnorm_kernel_id;

#define CLNORM_X_FIELD(type, field) CLNORM_T_##type field;
#define CLNORM_X_STRUCT(name) typedef struct clnorm_args_##name { CLNORM_ARGS_##name(CLNORM_X_FIELD) } clnorm_args_##name;
CLNORM_KERNEL_LIST(CLNORM_X_STRUCT)
#undef CLNORM_X_STRUCT

/* The arguments of any one launch. */
typedef union clnorm_kargs {
#define CLNORM_X_MEMBER(name) clnorm_args_##name name;
    CLNORM_KERNEL_LIST(CLNORM_X_MEMBER)
#undef CLNORM_X_MEMBER
} clnorm_kargs;

/* Kernel names, indexed by clnorm_kernel_id (exec.c). */
extern const char *const clnorm_kernel_names[CLNORM_KERNEL_COUNT];

#endif
