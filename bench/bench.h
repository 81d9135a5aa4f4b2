/*
 * clnorm-bench's parts, one file per concern (see clnorm-bench.c for what
 * the benchmark measures and how):
 *   cli.c     the command line: options, the cases to run, usage;
 *   timing.c  timed runs (profiling events or the wall clock, the user-event
 *             gate, cache scrubbing), medians, runs paired with the copy,
 *             and the copy reference with its calibration;
 *   report.c  progress, the table, JSON and CSV;
 *   tune.c    --tune: every variant and work-group size against the rules;
 *   clnorm-bench.c  main, devices, and the run on one device in named steps.
 */
#ifndef CLNORM_BENCH_H
#define CLNORM_BENCH_H

#include <stdio.h>

#include "common.h"
#include "case.h"

#define MAX_DEVICES 64
#define MAX_CASES 256

/* ------------------------------------------------------------------ devices */
typedef struct devinfo {
    cl_platform_id platform;
    cl_device_id device;
    unsigned pi, di;
    char name[256];
    char platform_name[256];
    cl_device_type type;
    cl_uint units;
    size_t max_wg;
    cl_ulong global_mem, local_mem, cache;
} devinfo;
const char *type_name(cl_device_type t);
int ci_contains(const char *hay, const char *needle);

/* ------------------------------------------------------------------ options (cli.c) */
typedef struct options {
    int list, all_devices, json, csv_stdout, quiet, suite_json;
    const char *csv_file, *csv_dir;
    const char *device_sel[MAX_DEVICES];
    int n_device_sel;
    int reps, warmup;
    int variant_set;
    clnorm_variant variant;
    size_t wg;
    int timing_wall;  /* force wall-clock timing */
    int warm_cache;   /* no cache scrub between runs */
    int copy_once;    /* ratios against the first copy measurement, not interleaved copies */
    int check;        /* compare outputs with the double-precision reference */
    int no_gate;      /* do not hold runs on a user event */
    unsigned direction; /* DIR_FORWARD | DIR_BACKWARD: which calls of each case run (--direction) */
    int direction_set;
    th_case cases[MAX_CASES];
    size_t n_cases;
    size_t copy_elems;  /* 0 = the suite's largest x */
    const char *copy_method; /* --copy-method; NULL = the fastest in a calibration */
    const char *tune_path;   /* --tune FILE */
    FILE *tune;         /* --tune: the tuning file being written; NULL = benchmark */
} options;

/* --direction: each case's forward call, its backward call (the case with
 * th_case.backward set: clnorm_backward after one untimed forward for the
 * statistics), or both, forward row first (the default). */
enum { DIR_FORWARD = 1, DIR_BACKWARD = 2, DIR_BOTH = 3 };

extern const char *prog;
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Fills o from the command line (exits on --help and on errors), with the
 * cases to run (--op ... or the standard suite, --filter). Returns 0, or
 * the exit status of a finished run (--help: 0 with *done set). */
int parse_options(int argc, char **argv, options *o, int *done);
/* "auto", or "wg:64" */
const char *variant_label(const options *o, char *buf, size_t len);

/* ------------------------------------------------------------------ timing (timing.c) */
typedef enum { TIME_EVENTS, TIME_WALL } timing_mode;

typedef struct runner {
    cl_context ctx;
    cl_command_queue q;
    timing_mode mode;
    cl_kernel scrub;      /* NULL: warm caches */
    cl_kernel stamp;      /* empty kernel whose end starts the timed window */
    int gate;             /* hold the stamp on a user event until everything is enqueued */
    double last_own;      /* START..END of the last run's own event, seconds; < 0 if unknown */
    size_t scrub_global;  /* float4 count */
    char err[1024];
} runner;

/* What a timed run enqueues: 0, or -1 with err filled. */
typedef int (*enqueue_fn)(void *arg, cl_event *done, char *err, size_t errlen);
double now_s(void);
const char *cl_err_name(cl_int e);
/* One untimed run of fn, waited for. 0 or -1 with err set. */
int run_wait(enqueue_fn fn, void *arg, char *err, size_t errlen);
/* The median and minimum (ms) of reps timed runs of fn after warmup ones;
 * with pair_fn each run of fn is paired with one of pair_fn in the same
 * stretch of time, whose median and minimum go to pair_med and pair_min;
 * own_med: the median of the runs' own start-to-end times (-1 if unknown).
 * 0 or -1 with r->err set. */
typedef struct timing {
    double med_ms, min_ms, pair_med, pair_min, own_med;
} timing;
int measure(runner *r, enqueue_fn fn, void *arg, enqueue_fn pair_fn, void *pair_arg, int warmup, int reps,
            timing *t);

/* clnorm_forward of d on cx, or clnorm_backward with backward set: an
 * enqueue_fn. */
typedef struct op_arg {
    clnorm_ctx *cx;
    const clnorm_desc *d;
    int backward;
} op_arg;
int enqueue_op(void *p, cl_event *done, char *err, size_t errlen);

/* The copy reference: a copy of x to y by the fastest of the copy methods
 * (or the one --copy-method names), its GB/s before and after the cases,
 * and the streaming-store copy for reference. */
typedef struct copy_arg {
    cl_command_queue q;
    cl_kernel k;       /* NULL: clEnqueueCopyBuffer of src to dst */
    size_t global;
    cl_mem src, dst;   /* for clEnqueueCopyBuffer */
    size_t bytes;
} copy_arg;
int enqueue_copy(void *p, cl_event *done, char *err, size_t errlen);

typedef struct copy_method {
    const char *name;
    unsigned vec;      /* floats per load; 0 = clEnqueueCopyBuffer */
    unsigned per_item; /* vectors per work-item (grid-stride when > 1) */
    const char *what;
} copy_method;
extern const copy_method copy_methods[];
extern const int n_copy_methods;
#define MAX_COPY_METHODS 8
#define COPY_CALIBRATION_REPS 5
/* Every method's copy is a multiple of this many floats: the widest vector
 * times the grid-stride count. */
#define COPY_ELEMS_MULTIPLE 16
int copy_method_index(const char *name);

typedef struct copy_ref {
    size_t elems;                    /* floats copied */
    int method;                      /* copy_methods[] index */
    double method_gbps[MAX_COPY_METHODS]; /* the calibration (0: failed or not run) */
    timing t;                        /* of the chosen method, before the cases */
    double gbps, end_gbps, stream_gbps;
    copy_arg arg;                    /* the chosen method's run */
} copy_ref;
/* The program with the copy kernels, the stamp and the scrub kernel; the
 * runner's stamp and (unless warm) scrub set up on a scratch buffer of
 * max(256 MiB, 8 x the device's cache). CL_SUCCESS or the error. */
cl_int timing_setup(runner *r, const devinfo *dev, int warm_cache, cl_program *prog, cl_mem *scratch);
void timing_release(runner *r, cl_program prog, cl_mem scratch);
/* Chooses (calibration or --copy-method) and measures the copy of elems
 * floats of src into dst, and the streaming copy. 0, or -1 with r->err. */
int copy_ref_measure(copy_ref *c, runner *r, const options *o, const devinfo *dev, cl_program prog, cl_mem src,
                     cl_mem dst);
/* The copy again after the cases (end_gbps; 0 if it failed). */
void copy_ref_again(copy_ref *c, runner *r, const options *o);
double copy_gbps_of(const copy_ref *c, double ms);
void copy_ref_release(copy_ref *c);

/* ------------------------------------------------------------------ reporting (report.c) */
typedef struct result {
    th_case c;
    double median_ms, min_ms, gbps, ratio, bytes;
    double copy_gbps;  /* the copy bandwidth this case's ratio is against */
    double ratio_min;  /* fastest op run over fastest copy run (noise on a shared machine only slows) */
    double copy_stream_gbps; /* the device's streaming-store copy, for reference; 0 = not available */
    const char *copy_method; /* the copy_methods[] name copy_gbps was measured with */
    int ok;
} result;

extern const char *cache_mode;       /* "cold" or "warm" */
void progress_init(int quiet);
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void progress_done(void);
void print_devices(const devinfo *devs, int n);
extern const char CSV_HEADER[];
void csv_row(FILE *f, const devinfo *dev, const result *r, int reps, const char *variant, const char *timing);
void json_row(FILE *f, const devinfo *dev, const result *r, int reps, const char *variant, const char *timing);
/* --suite-json: the selected cases with their bytes. */
void print_suite_json(const options *o);
/* One device's results: every row to the outputs asked for as it comes
 * (report_row), then the CSV per device and the table (report_device). */
typedef struct device_report {
    const options *o;
    const devinfo *dev;
    const runner *r;
    const copy_ref *copy;
    const char *vlabel;
    FILE *csv;
} device_report;
void report_row(const device_report *rep, const result *rs);
int report_device(const device_report *rep, const result *res, size_t n);

/* ------------------------------------------------------------------ tuning (tune.c) */
#define TUNE_MIN_GAIN 0.95
/* The tuning file's header lines (CLNORM_TUNING_HEADER first). */
void tune_file_header(FILE *f);
/* --tune on one device: every case of o (descriptors on mem). 0, or the
 * number of cases that could not be tuned. */
int tune_device(const options *o, runner *r, const devinfo *dev, clnorm_ctx *cx, cl_mem mem[TH_ROLES]);

/* ------------------------------------------------------------------ cases on the device (clnorm-bench.c) */
/* d of case c with its buffers on mem (offset 0); 0 or -1. A backward case
 * and its forward (the same case with backward = 0) share mem, so the
 * forward's saved statistics are the ones the backward reads. */
int case_desc_on(const th_case *c, cl_mem mem[TH_ROLES], clnorm_desc *d);
/* One more run of oa under its context's settings, then the outputs
 * against the reference (tests/compare.c; a backward case's dx, dscale
 * and dbias against ref_backward under the backward tolerances); 0 =
 * agrees, else err says why. */
int run_and_check(cl_command_queue q, op_arg *oa, const th_case *c, cl_mem mem[TH_ROLES], char *err,
                  size_t errlen);

#endif
