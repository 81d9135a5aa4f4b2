/*
 * Plain scalar CPU reference for clnorm_forward and clnorm_backward, in double precision.
 * Written independently of the kernels, straight from ../shared/SPEC.md.
 */
#ifndef CLNORM_TEST_REFERENCE_H
#define CLNORM_TEST_REFERENCE_H
#include "clnorm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Computes what clnorm_forward(d) must produce, on host arrays. Shapes, flags, eps, momentum and
   running_var_biased come from d; special values (NaN/Inf, constant sets with eps = 0) follow SPEC.md op by op;
   its cl_mem fields are ignored except that an optional input is "present" when the pointer passed here is non-NULL.
   x: clnorm_desc_elements(d) floats in d's layout. scale/bias: NULL = absent (cols for LN/RMS; C, or N*C with per_sample_affine).
   running_mean_in/var_in: C floats or NULL. Outputs (any may be NULL): y (elements), mean/rstd (clnorm_desc_sets(d) each; RMS: mean unused),
   running_mean_out/var_out (C each, the updated running stats in training, copies of the input in inference).
   Returns 0, or -1 for a descriptor the library must reject (e.g. training with count 1, groups not dividing C).
   Outputs that the operation does not produce (saved mean/rstd in inference, mean for RMSNorm, running stats when
   none are given) are left untouched. */
int ref_forward(const clnorm_desc *d, const float *x, const float *scale, const float *bias,
                const float *running_mean_in, const float *running_var_in,
                double *y, double *mean, double *rstd, double *running_mean_out, double *running_var_out);

/* ref_forward on double inputs (the same code, reading doubles; ref_forward is this with its floats widened):
   what a finite-difference check of the backward differentiates. Arguments and results as ref_forward's. */
int ref_forward_d(const clnorm_desc *d, const double *x, const double *scale, const double *bias,
                  const double *running_mean_in, const double *running_var_in,
                  double *y, double *mean, double *rstd, double *running_mean_out, double *running_var_out);

/* Backward reference (SPEC.md, Backward), in double, from the statistics the forward call normalized with.
   With batch statistics (ref_backward_uses_batch(d, running_mean != NULL)): mean and rstd, one double per set
   (ref_sets(d)); RMSNorm ignores mean (may be NULL). Otherwise (BatchNorm with training = 0; InstanceNorm with
   training = 0 and running statistics given) running_mean/running_var (C floats each) with d->eps:
   rstd_c = 1/sqrt(running_var[c] + eps), and the op is affine in x.
   x, dy: ref_elements(d) floats in d's layout. scale: NULL = absent (all 1); ref_affine_len(d) floats.
   Outputs, each may be NULL: dx (elements), dscale, dbias (ref_affine_len(d) each; sums in double).
   Returns 0, or -1 for a descriptor the library must reject (same rules as ref_forward; also x or dy NULL,
   the saved statistics missing in batch mode, or all three outputs NULL: CLNORM_ERR_NOTHING_TO_DO), with
   nothing written; -2 if out of memory. With batch statistics the running statistics are only validated
   (paired, BatchNorm/InstanceNorm only, momentum in [0, 1] in training), as ref_forward does, never read. */
int ref_backward(const clnorm_desc *d, const float *x, const float *dy, const float *scale,
                 const double *mean, const double *rstd, const float *running_mean, const float *running_var,
                 double *dx, double *dscale, double *dbias);
/* Whether a backward of d uses batch statistics (saved mean/rstd) rather than running ones. */
int ref_backward_uses_batch(const clnorm_desc *d, int has_running);

/* The reference's own view of the shape (independent of the library's helpers).
   All return 0 for an invalid shape. */
size_t ref_elements(const clnorm_desc *d);
size_t ref_sets(const clnorm_desc *d);
size_t ref_count_per_set(const clnorm_desc *d);
size_t ref_spatial(const clnorm_desc *d);   /* S = S1*..*Sk (1 for rank 0) */
/* Number of affine parameters expected (cols, C or N*C). */
size_t ref_affine_len(const clnorm_desc *d);
/* Set index and affine index of element i of x (channel norms and row norms). */
void ref_locate(const clnorm_desc *d, size_t i, size_t *set, size_t *affine, size_t *channel);

/* ONNX MeanVarianceNormalization (axes_mask bit k = axis k reduced) and
   LpNormalization (p = 1 or 2 along axis) of a row-major tensor, in double,
   from the operator definitions: MVN divides by sqrt(var) + 1e-9 as ONNX
   does (std: NULL, or each element's set's standard deviation); LpNorm gives
   0 where the norm is 0, as ONNX's reference. 0, or -1 on
   allocation failure. */
int ref_mvn(unsigned ndim, const size_t *dims, unsigned axes_mask, const float *x, double *y, double *std);
int ref_lp_norm(unsigned ndim, const size_t *dims, unsigned axis, int p, const float *x, double *y);

#ifdef __cplusplus
}
#endif
#endif
