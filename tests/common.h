/*
 * Shared test harness for the clnorm Check suites (and tests/reliability/).
 *
 *  - one clnorm context per test process (th_ctx), created with
 *    clnorm_create_default; Check must run with CK_NOFORK (th_run_suite does);
 *  - every device buffer, input or output, lives inside a larger buffer at a
 *    non-zero element offset, with guard regions before and after filled with
 *    a NaN bit pattern; the guards are checked byte for byte after every run,
 *    and inputs must come back untouched;
 *  - output payloads are poisoned with a huge finite value before every run,
 *    so an unwritten element is caught (also where NaN is expected);
 *  - data generators (normal, uniform*1e4, 1e4 + N(0,1e-2), constant sets,
 *    NaN/Inf sets), seeded per check; the seed is printed on failure and can
 *    be fixed with CLNORM_TEST_SEED=<n>;
 *  - th_compare: library outputs against the double-precision reference, with
 *    tolerances derived in common.c from float32 error analysis.
 */
#ifndef CLNORM_TEST_COMMON_H
#define CLNORM_TEST_COMMON_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "clnorm.h"
#include "reference.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------- process-wide context ---------- */
clnorm_ctx *th_ctx(void);          /* created on first use; aborts the process if it cannot be */
void th_ctx_release(void);
const char *th_device_name(void);

/* Run a Check suite without forking (OpenCL state does not survive fork),
 * print the summary, return the process exit status. */
int th_run_suite(Suite *s, const char *name);

/* ---------- soft assertions ---------- */
/* Failures are counted and printed (first 50 per test); a test ends with
 * th_finish() which ck_asserts that none happened. This lets one Check test
 * run a whole matrix and report every failing case, not only the first. */
extern unsigned long th_failures;   /* in the current test */
extern unsigned long th_cases;      /* cases run in this process */
void th_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define TH_EXPECT(cond, ...) do { if (!(cond)) th_fail(__VA_ARGS__); } while (0)
void th_begin(void);
void th_finish(void);
/* A one-line description of the case being run (prefixed to failure messages). */
void th_set_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *th_case_name(void);

/* ---------- random numbers ---------- */
typedef struct { uint64_t s; } th_rng;
uint64_t th_next_seed(void);              /* per-check seed: base (time or CLNORM_TEST_SEED) + counter */
void th_rng_init(th_rng *r, uint64_t seed);
uint64_t th_rng_u64(th_rng *r);
double th_rng_uniform(th_rng *r);         /* [0, 1) */
double th_rng_normal(th_rng *r);          /* N(0, 1) */
size_t th_rng_below(th_rng *r, size_t n); /* [0, n) */

/* ---------- data ---------- */
typedef enum th_kind {
    TH_NORMAL = 0,       /* N(mu, sigma) with mu in [-2, 2], sigma in [0.5, 2] */
    TH_UNIFORM_1E4,      /* uniform[0, 1) * 1e4 (the classic demo) */
    TH_OFFSET_1E4,       /* 1e4 + N(0, 1e-2): |mean|/std = 1e6, kills E[x^2]-E[x]^2 */
    TH_CONSTANT,         /* every set constant (values k/4, k in -15..15, exactly summable) */
    TH_MIXED_CONSTANT,   /* every other set constant, the rest normal */
    TH_NANINF,           /* normal; one set holds a NaN, another +Inf, a third -Inf */
    TH_KIND_COUNT
} th_kind;
const char *th_kind_name(th_kind k);
/* Fills x (ref_elements(d) floats) by the reduction sets of d. */
void th_fill(th_rng *r, const clnorm_desc *d, th_kind k, float *x);
void th_fill_normal(th_rng *r, float *a, size_t n, double mu, double sigma);
void th_fill_uniform(th_rng *r, float *a, size_t n, double lo, double hi);

/* ---------- running the library on guarded buffers ---------- */
#define TH_POISON_BITS 0x7f7edeadu /* output payload poison: 3.38e38, finite */
#define TH_GUARD_BITS  0x7fc0deadu /* guard regions: a quiet NaN with a payload */

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

enum {
    TH_IN_PLACE = 1,       /* y is exactly x (same mem, same offset) */
    TH_NO_EVENT = 2,       /* do not ask for an event; use clFinish instead */
    TH_SMALL_OFFSETS = 4,  /* offsets 1..3 only (default: 1..40, sometimes ~1000) */
};
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
 * buffer fields are ignored. */
int th_run(clnorm_ctx *ctx, const clnorm_desc *shape, const th_inputs *in, th_outputs *out, unsigned flags);

/* ---------- comparison against the reference ---------- */
/* Compares library outputs (got) with ref_forward on the same inputs, with the
 * tolerances documented in common.c. running stats in got are compared when
 * in has them. Returns the number of mismatches (0 = pass) and, when report is
 * non-zero, reports the first few through th_fail. tol_scale multiplies every
 * tolerance (1 normally). */
unsigned long th_compare(const clnorm_desc *d, const th_inputs *in, const th_outputs *got,
                         double tol_scale, int report);
/* Compares two library results a and b of the same descriptor with twice the
 * reference tolerance (for "op A equals op B" checks). Returns mismatches. */
unsigned long th_compare_y(const clnorm_desc *d, const th_inputs *in, const float *expected,
                           const float *got, size_t n, double tol_scale, int report);

/* ---------- the common case driver ---------- */
typedef struct th_case {
    clnorm_desc d;            /* op, shape, scalars (buffers ignored) */
    th_kind kind;
    int scale, bias;          /* pass scale / bias */
    int stats;                /* pass saved mean (not RMS) and rstd (training ops only) */
    int running;              /* 1: pass running stats; 0: only for BatchNorm; -1: never */
    unsigned flags;           /* TH_IN_PLACE, ... */
} th_case;
/* Generates fresh data with a new seed, runs the library, compares with the
 * reference (or checks the rejection when the reference rejects). Returns 0 on
 * pass. */
int th_check_case(clnorm_ctx *ctx, const th_case *c);

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

/* Float helpers */
uint32_t th_bits(float f);
float th_from_bits(uint32_t b);

#ifdef __cplusplus
}
#endif
#endif
