/*
 * The test harness of clnorm, shared by the Check suites (tests/), the
 * reliability tests and the fuzzer (tests/reliability/) and clnorm-bench
 * --check and --tune (bench/). Free of Check: the Check glue (th_finish,
 * th_main) is in th_check.h.
 *
 *  - one clnorm context per test process (th_ctx), created with
 *    clnorm_create_default;
 *  - one RNG (splitmix64, th_rng), seeded per check; the seed is printed on
 *    failure and can be fixed with CLNORM_TEST_SEED=<n>;
 *  - data generators (normal, uniform*1e4, 1e4 + N(0,1e-2), constant sets,
 *    NaN/Inf sets) and one generator of a call's inputs (th_gen_inputs);
 *  - one buffer scheme (call.c): every device buffer, input or output,
 *    lives inside a larger buffer at a non-zero element offset, with guard
 *    regions before and after holding TH_GUARD_BITS; output payloads hold
 *    TH_POISON_BITS before every run, so an unwritten element is caught
 *    (also where NaN is expected); guards are checked byte for byte after
 *    every run, inputs must come back untouched, and every buffer after a
 *    rejected call;
 *  - one tolerance model and one comparison (compare.c, derived there from
 *    float32 error analysis): th_close for a value, th_compare for a call's
 *    outputs against the double-precision reference (reference.h).
 */
#ifndef CLNORM_TEST_COMMON_H
#define CLNORM_TEST_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "case.h"
#include "clnorm.h"
#include "reference.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------- process-wide context ---------- */
clnorm_ctx *th_ctx(void);          /* created on first use; aborts the process if it cannot be */
void th_ctx_release(void);
const char *th_device_name(void);

/* ---------- soft assertions ---------- */
/* Failures are counted and printed (first 50 per test); a test ends with
 * th_finish() (th_check.h) which ck_asserts that none happened. This lets
 * one Check test run a whole matrix and report every failing case, not only
 * the first. Not thread-safe: threads report through a message buffer
 * (th_call_check, th_compare_why). */
extern unsigned long th_failures;   /* in the current test */
extern unsigned long th_cases;      /* library calls run by th_run in this process */
void th_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define TH_EXPECT(cond, ...) do { if (!(cond)) th_fail(__VA_ARGS__); } while (0)
void th_begin(void);
/* The failures of the current test; resets the count (th_finish asserts on it). */
unsigned long th_end(void);
/* A one-line description of the case being run (prefixed to failure messages). */
void th_set_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *th_case_name(void);
/* The seed base of this process (0 until th_next_seed first runs). */
uint64_t th_seed_base(void);

/* ---------- random numbers: splitmix64 ---------- */
typedef struct { uint64_t s; } th_rng;
/* Element offset of a suite's buffers: CLNORM_TEST_OFFSET, else def (an
 * odd default leaves rows misaligned; the streaming-store reruns ask for 8,
 * which aligns 16-bit and float32 rows to 16 bytes, so that the streaming
 * path runs). */
size_t th_test_offset(size_t def);
uint64_t th_next_seed(void);              /* per-check seed: base (time or CLNORM_TEST_SEED) + counter */
void th_rng_init(th_rng *r, uint64_t seed);
uint64_t th_rng_u64(th_rng *r);
double th_rng_uniform(th_rng *r);         /* [0, 1) */
double th_rng_normal(th_rng *r);          /* N(0, 1) */
size_t th_rng_below(th_rng *r, size_t n); /* [0, n) */

/* ---------- data ---------- */
const char *th_kind_name(th_kind k);
/* Fills x (ref_elements(d) floats) by the reduction sets of d. */
void th_fill(th_rng *r, const clnorm_desc *d, th_kind k, float *x);
void th_fill_normal(th_rng *r, float *a, size_t n, double mu, double sigma);
void th_fill_uniform(th_rng *r, float *a, size_t n, double lo, double hi);

/* ---------- a call's buffers (roles: case.h) ---------- */
/* Host-side inputs; NULL = absent. running_mean/var: the values uploaded into the
 * running-stat buffers (which are also outputs). */
typedef struct th_inputs {
    const float *x, *scale, *bias, *running_mean, *running_var;
} th_inputs;
/* Host-side outputs; a NULL pointer means "do not pass that buffer". y is always
 * required. running_mean/var receive the running-stat buffers after the call
 * (only read when the inputs have them). */
typedef struct th_outputs {
    float *y, *mean, *rstd, *running_mean, *running_var;
} th_outputs;

/* Generates the inputs of a call of d from r: x by kind, scale N(1, 0.5),
 * bias N(0, 1), running mean N(0, 1) (+1e4 or +5e3 with the 1e4 kinds, the
 * magnitude of the data), running variance U(0.5, 2). Arrays of the lengths
 * th_desc_lengths gives; any may be NULL (not generated, the draws still made). */
void th_gen_inputs(th_rng *r, const clnorm_desc *d, th_kind kind, float *x, float *scale, float *bias, float *rm,
                   float *rv);

/* The poison and guard scheme (call.c). */
#define TH_POISON_BITS 0x7f7edeadu /* output payloads before a call: 3.38e38, finite */
#define TH_GUARD_BITS  0x7fc0deadu /* guard regions around every payload: a quiet NaN with a payload */
#define TH_GUARD_AFTER 16          /* guard floats after each payload at a fixed offset (th_call_init) */

/* One call on guarded device buffers (call.c): the descriptor, with every
 * buffer of its roles inside a larger buffer (guards before and after),
 * the host inputs and the host outputs that th_call_check reads back into.
 * b[TH_Y] is unused in place (y is x). Host arrays are the caller's
 * (th_call_setup) or owned (th_call_init). */
typedef struct th_gbuf {
    const char *name;
    cl_mem mem;
    size_t off, len, total; /* guard [0, off), payload [off, off + len), guard [off + len, total) */
    float *init;            /* what was uploaded: guards and payload (or poison) */
    int is_input, is_output;
} th_gbuf;
/* A backward call's host arrays (roles: case.h); NULL = absent. Inputs: x,
 * dy, scale, the saved statistics (one float per set, what the forward wrote)
 * and the running statistics (C each, used in inference); outputs: dx,
 * dscale, dbias (NULL = not asked for). */
typedef struct th_bwd_inputs {
    const float *x, *dy, *scale, *mean, *rstd, *running_mean, *running_var;
} th_bwd_inputs;
typedef struct th_bwd_outputs {
    float *dx, *dscale, *dbias;
} th_bwd_outputs;

typedef struct th_call {
    clnorm_desc d;
    unsigned roles;          /* TH_ROLE bits passed */
    int in_place;            /* forward: y is x; backward: dx is dy */
    size_t len[TH_ROLES];    /* payload floats per role */
    th_gbuf b[TH_ROLES];
    th_inputs in;
    th_outputs out;
    void *owned;             /* host arrays th_call_init allocated */
    int backward;            /* a clnorm_backward call: bin and bout, not in and out */
    th_bwd_inputs bin;
    th_bwd_outputs bout;
} th_call;

/* Creates the guarded buffers of `roles` (TH_IN_PLACE in flags: y is x) in
 * cl, uploads in's arrays and poisons the outputs. off: every payload's
 * offset, with TH_GUARD_AFTER floats after it; TH_RANDOM_PLACE: offsets and
 * guards drawn by the harness (not thread-safe; TH_SMALL_OFFSETS honoured).
 * in and out stay the caller's. 0, or -1 with why filled (th_fail when why
 * is NULL). */
#define TH_RANDOM_PLACE ((size_t)-1)
int th_call_setup(th_call *k, cl_context cl, const clnorm_desc *shape, unsigned roles, unsigned flags, size_t off,
                  const th_inputs *in, const th_outputs *out, char *why, size_t len);
/* The same for a backward call: roles are TH_ROLE bits (x and dy always
 * passed; b[TH_DX] unused in place, where dx is dy); every input, the saved
 * statistics included, must come back untouched, dy too unless in place. */
int th_call_setup_bwd(th_call *k, cl_context cl, const clnorm_desc *shape, unsigned roles, unsigned flags,
                      size_t off, const th_bwd_inputs *in, const th_bwd_outputs *out, char *why, size_t len);
/* Case c as a call: th_call_setup of its descriptor and roles
 * (th_case_roles) and flags, with inputs generated from seed (c->kind) and
 * outputs allocated, owned by k. 0, or -1 if the reference rejects the
 * shape. A backward case (c->backward) gets th_call_setup_bwd, dy drawn
 * N(0, 1) after the forward's inputs, and saved statistics from the data
 * (th_saved_stats: what an exact forward writes), not from a device call. */
int th_call_init(th_call *k, clnorm_ctx *ctx, const th_case *c, size_t off, uint64_t seed);
/* Uploads everything again: inputs (running statistics back to their start,
 * x for in place), poison, guards. */
void th_call_reset(th_call *k, cl_command_queue q);
/* Reads every buffer back (after clFinish): guards untouched, inputs
 * untouched, every payload untouched when `rejected`; copies the outputs
 * into k->out. Returns the number of problems, the first described in why
 * (th_fail for each when why is NULL). */
unsigned long th_call_readback(th_call *k, cl_command_queue q, int rejected, char *why, size_t len);
/* th_call_readback, then th_compare_why of k->d, k->in, k->out
 * (th_compare_bwd_why of k->bin, k->bout for a backward call). 0 = pass. */
int th_call_check(th_call *k, clnorm_ctx *ctx, char *why, size_t len);
/* clnorm_forward (clnorm_backward for a backward call) on k->d (no event),
 * then th_call_check: 0; the status when not OK (why filled); TH_MISMATCH
 * when the result is wrong. */
#define TH_MISMATCH (-1000)
int th_call_run(th_call *k, clnorm_ctx *ctx, char *why, size_t len);
/* The host input of role (x, scale, bias, running_mean, running_var; for a
 * backward call x, dy, scale, mean, rstd, running_mean, running_var) that
 * th_call_init owns, to change before th_call_reset; NULL otherwise. */
float *th_call_host(th_call *k, int role);
void th_call_free(th_call *k);

/* Harness failure (guard overwritten, input modified, output left unwritten on a
 * rejected call modified, OpenCL error in the harness itself): reported through
 * th_fail and returned as this value. */
#define TH_HARNESS_FAILED 100000

/* Uploads the inputs into guarded buffers, poisons the outputs, runs
 * clnorm_forward(ctx, shape + buffers), waits on the returned event, reads
 * everything back, and checks guards and inputs. When the call is rejected it
 * also checks that every buffer (outputs and running stats included) is
 * byte-identical to what was uploaded. Returns the clnorm status, or
 * TH_HARNESS_FAILED. shape: a descriptor with the op, shape and scalars; its
 * buffer fields are ignored. Counts the call in th_cases. */
int th_run(clnorm_ctx *ctx, const clnorm_desc *shape, const th_inputs *in, th_outputs *out, unsigned flags);

/* th_run for clnorm_backward: the backward inputs (saved statistics
 * included) uploaded into guarded buffers, dx/dscale/dbias poisoned (dx is
 * dy with TH_IN_PLACE: out->dx receives it), the call waited for, every
 * buffer read back and checked (inputs untouched, everything untouched on a
 * rejection). Returns the clnorm status, or TH_HARNESS_FAILED. */
int th_run_bwd(clnorm_ctx *ctx, const clnorm_desc *shape, const th_bwd_inputs *in, th_bwd_outputs *out,
               unsigned flags);

/* th_run, expecting success: another status is reported (th_fail; the
 * harness's own failures are reported already), and on success the outputs
 * are compared with the reference (th_compare, reporting) when compare is
 * set. Returns the status. */
int th_run_ok(clnorm_ctx *ctx, const clnorm_desc *d, const th_inputs *in, th_outputs *out, unsigned flags,
              int compare);

/* ---------- comparison against the reference (compare.c) ---------- */
/* The one comparison: expect (the reference, in double) against got with
 * absolute tolerance tol. NaN must be NaN, an infinity the same infinity, a
 * finite value finite and within tol. */
int th_close(double expect, double got, double tol);
/* Compares library outputs (got) with ref_forward on the same inputs, with the
 * tolerances documented in compare.c. running stats in got are compared when
 * in has them. Returns the number of mismatches (0 = pass) and, when report is
 * non-zero, reports the first few through th_fail. tol_scale multiplies every
 * tolerance (1 normally). */
unsigned long th_compare(const clnorm_desc *d, const th_inputs *in, const th_outputs *got,
                         double tol_scale, int report);
/* The same, thread-safe: the first mismatch is described in why. */
unsigned long th_compare_why(const clnorm_desc *d, const th_inputs *in, const th_outputs *got, double tol_scale,
                             char *why, size_t len);
/* Compares two library results a and b of the same descriptor with twice the
 * reference tolerance (for "op A equals op B" checks). Returns mismatches. */
unsigned long th_compare_y(const clnorm_desc *d, const th_inputs *in, const float *expected,
                           const float *got, size_t n, double tol_scale, int report);

/* Backward: compares dx, dscale, dbias (those in got) with ref_backward on
 * the same inputs (the saved statistics in `in` widened, as the library
 * reads them), under the backward tolerances derived in compare.c. Returns
 * mismatches; reports the first few when report is set. */
unsigned long th_compare_bwd(const clnorm_desc *d, const th_bwd_inputs *in, const th_bwd_outputs *got,
                             double tol_scale, int report);
unsigned long th_compare_bwd_why(const clnorm_desc *d, const th_bwd_inputs *in, const th_bwd_outputs *got,
                                 double tol_scale, char *why, size_t len);
/* The tolerance of a value stored as type t (clnorm_dtype) whose float32
 * computation has tolerance f32tol against the double reference ref on the
 * same widened inputs: f32tol plus half an ulp of t (derived in compare.c). */
double th_storage_tol(clnorm_dtype t, double ref, double f32tol);
/* got, a value stored as t, against ref: NaN for NaN, the same infinity,
 * float16 overflow as the store rounds it (65504 below 65520, Inf from it),
 * else within th_storage_tol(t, ref, f32tol). 1 = close. */
int th_close_storage(clnorm_dtype t, double ref, float got, double f32tol);
/* The comparisons of a call on 16-bit data (d->dtype; parameters of
 * d->param_dtype), every array widened to float: the forward's y (in->x is
 * what was normalized: x, or x + residual as stored in h_out) and saved and
 * running statistics, amp the scale of the data (the mean's tolerance); the
 * backward's dx, dscale and dbias (saved statistics when in->rstd is given).
 * Tolerances in compare.c. Mismatches; the first few reported when report. */
unsigned long th_compare_storage(const clnorm_desc *d, const th_inputs *in, const th_outputs *got, double amp,
                                 int report);
unsigned long th_compare_storage_bwd(const clnorm_desc *d, const th_bwd_inputs *in, const th_bwd_outputs *got,
                                     int report);
/* LpNormalization (clnorm_desc_lp_norm of ndim, dims, axis, p) on x: got
 * against ref_lp_norm, with the bound derived in compare.c. Mismatches; the
 * first few reported through th_fail. */
unsigned long th_compare_lp(unsigned ndim, const size_t *dims, unsigned axis, int p, const float *x,
                            const float *got);
/* The saved statistics an exact forward of d on x writes, rounded to float:
 * the mean and biased variance in double, rstd = 1/sqrt(var + eps) (0 where
 * BatchNorm/InstanceNorm have var + eps == 0; RMSNorm: 1/sqrt(mean(x^2) +
 * eps), mean 0). ref_sets(d) floats each; mean may be NULL. */
void th_saved_stats(const clnorm_desc *d, const float *x, float *mean, float *rstd);

/* ---------- the case driver ---------- */
/* Generates fresh data with a new seed, runs the library, compares with the
 * reference (or checks the rejection when the reference rejects). Returns 0 on
 * pass. A backward case: x and the rest as for the forward, dy N(0, 1) drawn
 * fresh, the saved statistics from a library forward of the same x (batch
 * statistics), then clnorm_backward on guarded buffers against ref_backward. */
int th_check_case(clnorm_ctx *ctx, const th_case *c);
/* NaN/Inf isolation: each case with TH_NANINF data (a NaN in one set, +Inf
 * in the next, -Inf in a third) on every enabled variant (all_variants) or
 * the context's setting: the sets holding them are NaN throughout (y and
 * saved statistics), the others exact. eps: NULL, or three values rotated
 * over cases and variants. */
void th_nan_inf_isolation(clnorm_ctx *ctx, const th_case *cases, size_t n, int all_variants, const float *eps);

/* Kernel variants to loop over: AUTO, WG, SUBGROUP, WI, SPLIT, plus a few
 * explicit work-group sizes. */
typedef struct th_variant { clnorm_variant v; size_t wgs; } th_variant;
extern const th_variant th_variants[];
extern const size_t th_variant_count;
/* Whether th_variants[i] is enabled: CLNORM_TEST_VARIANTS="0,4" (indices into
 * th_variants) restricts the variant loops, e.g. for a second CTest run under
 * CLNORM_DEVICE_CLASS=gpu; default: all. */
int th_variant_enabled(size_t i);
/* Sets the variant; returns 0 on success (reports through th_fail otherwise). */
int th_use_variant(clnorm_ctx *ctx, th_variant v);
/* th_variants[vi] is enabled and now set on ctx (1), or skipped (0). */
int th_variant_select(clnorm_ctx *ctx, size_t vi);
/* Advances *vi to the next variant th_variant_select accepts (start from
 * (size_t)-1); after the last one ctx is back on AUTO and it returns 0. */
int th_variant_next(clnorm_ctx *ctx, size_t *vi);
/* The loop over variants every suite writes: vi indexes th_variants. */
#define TH_FOR_EACH_VARIANT(ctx, vi) for (size_t vi = (size_t)-1; th_variant_next((ctx), &vi);)
const char *th_variant_str(th_variant v);

/* The case of a line (th_case_parse); aborts on a malformed one. */
th_case th_case_of(const char *line);
/* "layer_norm 4x5", "batch_norm_train 2x3x5 nhwc psa=0 mom=0.1": the
 * shape of d for messages (th_case_label and the scalars); returns buf. */
const char *th_desc_label(const clnorm_desc *d, char *buf, size_t len);

/* ---------- 16-bit storage on the host (common.c) ---------- */
/* float to float16 (round to nearest even, overflow to Inf from 65520) or
 * bfloat16 (nearest even, NaN kept quiet), and back; t is CLNORM_FLOAT16 or
 * CLNORM_BFLOAT16. th_quantize rounds n floats to t in place (nothing for
 * CLNORM_FLOAT32); th_dtype_name (case.h): "f16", "bf16", "f32". */
uint16_t th_to16(clnorm_dtype t, float f);
float th_from16(clnorm_dtype t, uint16_t h);
void th_quantize(clnorm_dtype t, float *a, size_t n);

/* ---------- small helpers ---------- */
uint32_t th_bits(float f);
float th_from_bits(uint32_t b);
/* An environment variable as an integer; dflt when unset or not a number. */
long th_env_long(const char *name, long dflt);
/* OpenCL calls of the harness itself: abort with a message on an error. */
#define TH_CL(call)                                                                                  \
    do {                                                                                             \
        cl_int e__ = (call);                                                                         \
        if (e__ != CL_SUCCESS) th_die(__FILE__, __LINE__, #call, e__);                               \
    } while (0)
void th_die(const char *file, int line, const char *what, int err) __attribute__((noreturn));
cl_mem th_buffer(cl_context c, size_t floats);  /* read-write, at least one float; aborts on failure */
void th_write(cl_command_queue q, cl_mem m, size_t first, size_t n, const float *src);
size_t th_mem_floats(cl_mem m);
/* Whole-buffer byte snapshot (malloc'ed): the state a rejected call must
 * leave; th_same_bytes compares a buffer with it. */
void *th_snapshot(cl_command_queue q, cl_mem m, size_t *bytes);
int th_same_bytes(cl_command_queue q, cl_mem m, const void *snap, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
