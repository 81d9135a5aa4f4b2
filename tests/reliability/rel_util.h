/*
 * Helpers shared by the reliability tests: a "problem" (descriptor plus
 * device buffers with guard zones, host copies of the inputs) that can be
 * run through clnorm_forward and checked against the double-precision
 * reference (tests/reference.h, ref_forward), byte snapshots of buffers, and
 * a small deterministic RNG. The reference is the only source of expected
 * values; nothing here recomputes a normalization.
 */
#ifndef CLNORM_REL_UTIL_H
#define CLNORM_REL_UTIL_H

#include "clnorm.h"
#include "reference.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Guard zone (floats) after every buffer's extent; the region before the
 * offset is a guard too. Guards hold a NaN bit pattern no kernel produces. */
#define REL_GUARD 16
#define REL_POISON_BITS 0x7fc0dead

typedef struct rel_rng { uint64_t s; } rel_rng;
void rel_rng_seed(rel_rng *r, uint64_t seed);
uint64_t rel_rng_next(rel_rng *r);
double rel_rng_uniform(rel_rng *r); /* [0, 1) */
double rel_rng_normal(rel_rng *r);

/* Abort with a message if an OpenCL call failed (test infrastructure only). */
#define REL_CL(call)                                                                                 \
    do {                                                                                             \
        cl_int e__ = (call);                                                                         \
        if (e__ != CL_SUCCESS) rel_die(__FILE__, __LINE__, #call, e__);                              \
    } while (0)
void rel_die(const char *file, int line, const char *what, int err);

cl_mem rel_buffer(cl_context c, size_t floats);
void rel_write(cl_command_queue q, cl_mem m, size_t first, size_t n, const float *src);
void rel_read(cl_command_queue q, cl_mem m, size_t first, size_t n, float *dst);
size_t rel_mem_floats(cl_mem m);
/* Whole-buffer byte snapshot (malloc'ed); compare with rel_same_bytes. */
void *rel_snapshot(cl_command_queue q, cl_mem m, size_t *bytes);
int rel_same_bytes(cl_command_queue q, cl_mem m, const void *snap, size_t bytes);

/* Which buffers a problem passes. */
enum {
    REL_SCALE = 1 << 0,
    REL_BIAS = 1 << 1,
    REL_MEAN = 1 << 2,
    REL_RSTD = 1 << 3,
    REL_RUNNING = 1 << 4,
    REL_INPLACE = 1 << 5, /* y is exactly x */
    REL_AFFINE = REL_SCALE | REL_BIAS,
    REL_STATS = REL_MEAN | REL_RSTD
};

typedef struct rel_problem {
    clnorm_desc d;   /* shape, flags, eps, momentum; buffers filled by rel_problem_init */
    unsigned flags;  /* REL_* */
    size_t off;      /* element offset used for every buffer */
    size_t ne, nsets, naff, nc;
    float *x, *scale, *bias, *rm, *rv; /* host inputs (rm/rv: initial running stats) */
    cl_mem mx, my, mscale, mbias, mmean, mrstd, mrm, mrv; /* owned (my may equal mx) */
    double data_base; /* mean offset of the generated data */
} rel_problem;

/* d_shape: a descriptor with op, shape, layout, groups, training, eps,
 * momentum, per_sample_affine set (buffers ignored). Creates the buffers in
 * the ctx's context, generates data, writes inputs, poisons outputs and
 * guards. Returns 0, or -1 if the shape is invalid per the reference. */
int rel_problem_init(rel_problem *p, clnorm_ctx *ctx, const clnorm_desc *d_shape, unsigned flags, size_t off,
                     uint64_t seed);
/* Rewrites inputs (running stats back to their initial values, x for
 * in-place) and re-poisons outputs and guards. */
void rel_problem_reset(rel_problem *p, clnorm_ctx *ctx);
/* Waits for the queue, reads everything back, runs ref_forward and
 * compares (tolerances in rel_util.c), checks guards and untouched inputs.
 * Returns 0, or -1 with a description in why. */
int rel_problem_check(rel_problem *p, clnorm_ctx *ctx, char *why, size_t len);
void rel_problem_free(rel_problem *p);

/* Convenience: run clnorm_forward on p (no events) and check. Returns the
 * status if not OK (why filled), -1000 on a mismatch, 0 on success. */
int rel_problem_run(rel_problem *p, clnorm_ctx *ctx, char *why, size_t len);

/* Descriptor shapes used across the tests. */
void rel_shape_layer(clnorm_desc *d, size_t rows, size_t cols);
void rel_shape_rms(clnorm_desc *d, size_t rows, size_t cols);
void rel_shape_channel(clnorm_desc *d, clnorm_op op, clnorm_layout layout, size_t n, size_t c, unsigned rank,
                       size_t s0, size_t s1, size_t s2, size_t groups, int training);

/* Environment integer with default. */
long rel_env_long(const char *name, long dflt);

#ifdef __cplusplus
}
#endif
#endif
