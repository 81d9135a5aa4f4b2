/*
 * clnorm-bench: throughput of every norm on every OpenCL device, as effective
 * GB/s and as a ratio to the same run's copy bandwidth: the fastest of
 * clEnqueueCopyBuffer and a few copy kernels, chosen once per device in a
 * short calibration (choose_copy_method).
 *
 * Timing (see docs/performance.md): each run is gated by a user event. The
 * bench enqueues an empty "stamp" kernel that waits on the gate, then the
 * operation, flushes, and opens the gate, so host-side enqueue time is not
 * counted. The run time is CL_PROFILING_COMMAND_END of the operation's event
 * (which completes with the whole operation, however many kernels it
 * launches) minus CL_PROFILING_COMMAND_END of the stamp: it includes the
 * launch gaps of a multi-kernel operation. (A kernel rather than a marker,
 * because every implementation profiles kernels.) Where profiling data is
 * unusable the bench falls back to wall-clock time from opening the gate to
 * clWaitForEvents, and says so ("timing": "wall"). The table header shows the
 * method's overhead: the copy's stamp-to-end time minus its own
 * start-to-end time. --no-gate drops the user event.
 * Warm-up runs first, then the median (and minimum) of --reps runs.
 *
 * Caches are cold for every run (as in Triton's do_bench): before each run,
 * outside the timed window, a kernel writes a scratch buffer of
 * max(256 MiB, 8 x CL_DEVICE_GLOBAL_MEM_CACHE_SIZE), so cases whose x and y
 * fit in the last-level cache are not measured against the cache while the
 * copy reference runs from DRAM. --warm-cache turns this off (and then
 * re-warms a case that a paired copy run has just evicted; see measure()).
 */
#define _POSIX_C_SOURCE 200809L
#include "suite.h"
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEVICES 64
#define MAX_CASES 256

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
    bench_case cases[MAX_CASES];
    size_t n_cases;
    size_t copy_elems;  /* 0 = the suite's largest x */
    const char *copy_method; /* --copy-method; NULL = the fastest in a calibration */
    FILE *tune;         /* --tune: the tuning file being written; NULL = benchmark */
} options;

typedef struct result {
    bench_case c;
    double median_ms, min_ms, gbps, ratio, bytes;
    double copy_gbps;  /* the copy bandwidth this case's ratio is against */
    double ratio_min;  /* fastest op run over fastest copy run (noise on a shared machine only slows) */
    double copy_stream_gbps; /* the device's streaming-store copy, for reference; 0 = not available */
    const char *copy_method; /* the copy_methods[] name copy_gbps was measured with */
    int ok;
} result;

static const char *prog = "clnorm-bench";
static int progress_tty, progress_quiet;
static const char *cache_mode = "cold";

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *cl_err_name(cl_int e) { return clnorm_status_name((int)e); }

/* ------------------------------------------------------------------ devices */

static int list_devices(devinfo *out, int max) {
    cl_uint np = 0;
    if (clGetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0) return 0;
    cl_platform_id plats[32];
    if (np > 32) np = 32;
    if (clGetPlatformIDs(np, plats, NULL) != CL_SUCCESS) return 0;
    int n = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS) continue;
        cl_device_id devs[MAX_DEVICES];
        if (nd > MAX_DEVICES) nd = MAX_DEVICES;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL) != CL_SUCCESS) continue;
        for (cl_uint d = 0; d < nd && n < max; d++) {
            devinfo *di = &out[n++];
            memset(di, 0, sizeof *di);
            di->platform = plats[p];
            di->device = devs[d];
            di->pi = p;
            di->di = d;
            clGetPlatformInfo(plats[p], CL_PLATFORM_NAME, sizeof di->platform_name, di->platform_name, NULL);
            clGetDeviceInfo(devs[d], CL_DEVICE_NAME, sizeof di->name, di->name, NULL);
            clGetDeviceInfo(devs[d], CL_DEVICE_TYPE, sizeof di->type, &di->type, NULL);
            clGetDeviceInfo(devs[d], CL_DEVICE_MAX_COMPUTE_UNITS, sizeof di->units, &di->units, NULL);
            clGetDeviceInfo(devs[d], CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof di->max_wg, &di->max_wg, NULL);
            clGetDeviceInfo(devs[d], CL_DEVICE_GLOBAL_MEM_SIZE, sizeof di->global_mem, &di->global_mem, NULL);
            clGetDeviceInfo(devs[d], CL_DEVICE_LOCAL_MEM_SIZE, sizeof di->local_mem, &di->local_mem, NULL);
            clGetDeviceInfo(devs[d], CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, sizeof di->cache, &di->cache, NULL);
        }
    }
    return n;
}

static const char *type_name(cl_device_type t) {
    if (t & CL_DEVICE_TYPE_GPU) return "GPU";
    if (t & CL_DEVICE_TYPE_CPU) return "CPU";
    if (t & CL_DEVICE_TYPE_ACCELERATOR) return "ACC";
    return "other";
}

static int ci_contains(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    if (n == 0) return 1;
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return 1;
    }
    return 0;
}

/* "P:D" or a case-insensitive substring of the device name; -1 if none. */
static int find_device(const devinfo *devs, int n, const char *sel) {
    unsigned p, d;
    char tail;
    if (sscanf(sel, "%u:%u%c", &p, &d, &tail) == 2) {
        for (int i = 0; i < n; i++)
            if (devs[i].pi == p && devs[i].di == d) return i;
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (ci_contains(devs[i].name, sel)) return i;
    return -1;
}

static void print_devices(const devinfo *devs, int n) {
    printf("%-5s %-5s %-4s %-6s %-9s %-40s %s\n", "P:D", "type", "CUs", "maxWG", "mem MiB", "device",
           "platform");
    for (int i = 0; i < n; i++)
        printf("%u:%-3u %-5s %-4u %-6zu %-9llu %-40s %s\n", devs[i].pi, devs[i].di, type_name(devs[i].type),
               devs[i].units, devs[i].max_wg, (unsigned long long)(devs[i].global_mem >> 20), devs[i].name,
               devs[i].platform_name);
}

/* ------------------------------------------------------------------ output */

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void csv_field(FILE *f, const char *s) {
    if (strpbrk(s, ",\"\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"') fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
}

static const char CSV_HEADER[] =
    "device,platform,op,layout,shape,groups,label,median_ms,min_ms,gbps,copy_gbps,ratio,ratio_min,bytes,reps,variant,"
    "timing,cache,copy_stream_gbps,copy_method\n";

static void csv_row(FILE *f, const devinfo *dev, const result *r, int reps, const char *variant,
                    const char *timing) {
    double copy_gbps = r->copy_gbps;
    char shape[96], label[160];
    bench_shape_string(&r->c, shape, sizeof shape);
    bench_case_label(&r->c, label, sizeof label);
    csv_field(f, dev->name);
    fputc(',', f);
    csv_field(f, dev->platform_name);
    fprintf(f, ",%s,%s,%s,%zu,", bench_op_name(&r->c), bench_layout_name(&r->c), shape, r->c.groups);
    csv_field(f, label);
    fprintf(f, ",%.6f,%.6f,%.3f,%.3f,%.4f,%.4f,%.0f,%d,%s,%s,%s,", r->median_ms, r->min_ms, r->gbps, copy_gbps,
            r->ratio, r->ratio_min, r->bytes, reps, variant, timing, cache_mode);
    if (r->copy_stream_gbps > 0) fprintf(f, "%.3f", r->copy_stream_gbps);
    fprintf(f, ",%s\n", r->copy_method);
}

static void json_row(FILE *f, const devinfo *dev, const result *r, int reps, const char *variant,
                     const char *timing) {
    double copy_gbps = r->copy_gbps;
    char label[160];
    bench_case_label(&r->c, label, sizeof label);
    fputs("{\"device\":", f);
    json_string(f, dev->name);
    fputs(",\"platform\":", f);
    json_string(f, dev->platform_name);
    fprintf(f, ",\"device_index\":\"%u:%u\",\"device_type\":\"%s\",\"op\":\"%s\",\"layout\":\"%s\",\"shape\":[",
            dev->pi, dev->di, type_name(dev->type), bench_op_name(&r->c), bench_layout_name(&r->c));
    for (unsigned i = 0; i < r->c.ndim; i++) fprintf(f, "%s%zu", i ? "," : "", r->c.shape[i]);
    fprintf(f, "],\"groups\":%zu,\"training\":%d,\"affine\":%d,\"save_stats\":%d,\"label\":", r->c.groups,
            r->c.training, r->c.affine, r->c.save_stats);
    json_string(f, label);
    if (r->copy_stream_gbps > 0)
        fprintf(f, ",\"copy_stream_gbps\":%.3f", r->copy_stream_gbps);
    else
        fputs(",\"copy_stream_gbps\":null", f);
    fprintf(f,
            ",\"median_ms\":%.6f,\"min_ms\":%.6f,\"gbps\":%.3f,\"copy_gbps\":%.3f,\"ratio\":%.4f,"
            "\"ratio_min\":%.4f,\"bytes\":%.0f,\"reps\":%d,\"variant\":\"%s\",\"timing\":\"%s\",\"cache\":\"%s\","
            "\"copy_method\":\"%s\"}\n",
            r->median_ms, r->min_ms, r->gbps, copy_gbps, r->ratio, r->ratio_min, r->bytes, reps, variant, timing,
            cache_mode, r->copy_method);
    fflush(f);
}

static void progress(const char *fmt, ...) {
    char line[256];
    va_list ap;
    if (progress_quiet) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (progress_tty) fprintf(stderr, "\r\033[K%s", line);
    else fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

static void progress_done(void) {
    if (progress_tty) fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

/* ------------------------------------------------------------------ timing */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

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

/* One gated run of enqueue(arg). Returns seconds, or < 0 with r->err set. */
typedef int (*enqueue_fn)(void *arg, cl_event *done, char *err, size_t errlen);

static double timed_run(runner *r, enqueue_fn fn, void *arg) {
    cl_int e;
    r->last_own = -1;
    if (r->scrub) {
        e = clEnqueueNDRangeKernel(r->q, r->scrub, 1, NULL, &r->scrub_global, NULL, 0, NULL, NULL);
        if (e == CL_SUCCESS) e = clFinish(r->q);
        if (e != CL_SUCCESS) {
            snprintf(r->err, sizeof r->err, "cache scrub kernel: %s", cl_err_name(e));
            return -1;
        }
    }
    cl_event gate = NULL;
    if (r->gate) {
        gate = clCreateUserEvent(r->ctx, &e);
        if (e != CL_SUCCESS) {
            snprintf(r->err, sizeof r->err, "clCreateUserEvent: %s", cl_err_name(e));
            return -1;
        }
    }
    cl_event stamp = NULL, done = NULL;
    size_t one = 1;
    e = clEnqueueNDRangeKernel(r->q, r->stamp, 1, NULL, &one, &one, gate ? 1 : 0, gate ? &gate : NULL, &stamp);
    if (e != CL_SUCCESS) {
        if (gate) {
            clSetUserEventStatus(gate, CL_COMPLETE);
            clReleaseEvent(gate);
        }
        snprintf(r->err, sizeof r->err, "stamp kernel: %s", cl_err_name(e));
        return -1;
    }
    if (fn(arg, &done, r->err, sizeof r->err) != 0) {
        if (gate) clSetUserEventStatus(gate, CL_COMPLETE);
        clFinish(r->q);
        clReleaseEvent(stamp);
        if (gate) clReleaseEvent(gate);
        return -1;
    }
    clFlush(r->q);
    double t0 = now_s();
    if (gate) clSetUserEventStatus(gate, CL_COMPLETE);
    e = clWaitForEvents(1, &done);
    double t1 = now_s();
    double secs = t1 - t0;
    if (e != CL_SUCCESS) {
        snprintf(r->err, sizeof r->err, "clWaitForEvents: %s", cl_err_name(e));
        secs = -1;
    } else if (r->mode == TIME_EVENTS) {
        cl_ulong s_end = 0, d_start = 0, d_end = 0;
        cl_int e1 = clGetEventProfilingInfo(stamp, CL_PROFILING_COMMAND_END, sizeof s_end, &s_end, NULL);
        cl_int e2 = clGetEventProfilingInfo(done, CL_PROFILING_COMMAND_END, sizeof d_end, &d_end, NULL);
        cl_int e3 = clGetEventProfilingInfo(done, CL_PROFILING_COMMAND_START, sizeof d_start, &d_start, NULL);
        if (e1 != CL_SUCCESS || e2 != CL_SUCCESS || s_end == 0 || d_end <= s_end) {
            fprintf(stderr, "%s: profiling data unusable (stamp %s, op %s); using wall-clock timing\n", prog,
                    cl_err_name(e1), cl_err_name(e2));
            r->mode = TIME_WALL;
        } else {
            secs = (double)(d_end - s_end) * 1e-9;
            if (e3 == CL_SUCCESS && d_start > 0 && d_start <= d_end) r->last_own = (double)(d_end - d_start) * 1e-9;
        }
    }
    clFinish(r->q);
    clReleaseEvent(done);
    clReleaseEvent(stamp);
    if (gate) clReleaseEvent(gate);
    return secs;
}

/* One untimed run of fn, waited for. 0 or -1 with err set. */
static int run_wait(enqueue_fn fn, void *arg, char *err, size_t errlen) {
    cl_event done = NULL;
    if (fn(arg, &done, err, errlen) != 0) return -1;
    cl_int e = clWaitForEvents(1, &done);
    clReleaseEvent(done);
    if (e != CL_SUCCESS) {
        snprintf(err, errlen, "clWaitForEvents: %s", cl_err_name(e));
        return -1;
    }
    return 0;
}

/* Runs warmup + reps of fn; fills its median and min in ms. With pair_fn,
 * each timed run of fn is paired with a timed run of pair_fn (alternating
 * which goes first), and pair_med gets pair_fn's median: both medians then
 * come from the same stretch of time, whatever else the machine does.
 * 0 or -1. */
static int measure(runner *r, enqueue_fn fn, void *arg, enqueue_fn pair_fn, void *pair_arg, int warmup, int reps,
                   double *med_ms, double *min_ms, double *pair_med, double *pair_min, double *own_med) {
    for (int i = 0; i < warmup; i++) {
        if (timed_run(r, fn, arg) < 0) return -1;
        if (pair_fn && timed_run(r, pair_fn, pair_arg) < 0) return -1;
    }
    double *t = malloc(sizeof(double) * 3 * (size_t)reps);
    if (!t) {
        snprintf(r->err, sizeof r->err, "out of host memory");
        return -1;
    }
    double *tp = t + reps, *town = t + 2 * reps;
    int nown = 0;
    timing_mode mode0 = r->mode;
    /* Warm caches (no scrub): a run of fn right after a pair run would
     * start from the pair's data (the reference copy streams far more than
     * the cache holds), so an untimed run of fn first puts its own back. */
    const int rewarm = !r->scrub && pair_fn;
    int after_pair = pair_fn != NULL && warmup > 0;
    for (int i = 0; i < reps; i++) {
        double s = 0, sp = 0;
        if (pair_fn && (i & 1)) {
            sp = timed_run(r, pair_fn, pair_arg);
            after_pair = 1;
        }
        if (sp >= 0 && rewarm && after_pair && run_wait(fn, arg, r->err, sizeof r->err) < 0) sp = -1;
        if (sp >= 0) s = timed_run(r, fn, arg);
        after_pair = 0;
        double own = r->last_own;
        if (pair_fn && !(i & 1) && s >= 0) {
            sp = timed_run(r, pair_fn, pair_arg);
            after_pair = 1;
        }
        if (s < 0 || sp < 0) {
            free(t);
            return -1;
        }
        if (r->mode != mode0) { /* switched to wall clock: restart the sample */
            mode0 = r->mode;
            i = -1;
            continue;
        }
        t[i] = s * 1e3;
        tp[i] = sp * 1e3;
        if (own >= 0) town[nown++] = own * 1e3;
    }
    double mn = t[0];
    for (int i = 1; i < reps; i++) mn = t[i] < mn ? t[i] : mn;
    *min_ms = mn;
    *med_ms = median(t, reps);
    if (pair_fn && pair_med) *pair_med = median(tp, reps);
    if (own_med) *own_med = nown == reps ? median(town, nown) : -1;
    if (pair_fn && pair_min) {
        double m = tp[0];
        for (int i = 1; i < reps; i++) m = tp[i] < m ? tp[i] : m;
        *pair_min = m;
    }
    free(t);
    return 0;
}

/* ------------------------------------------------------------------ copy kernel */

/* The copy kernels the yardstick is chosen from (copy_methods below), then
 * the stamp and the cache scrub. OpenCL C 1.2 only: every one builds on
 * every device. */
static const char COPY_SRC[] =
    "__kernel void copy4(__global const float4 *restrict a, __global float4 *restrict b) {\n"
    "    size_t i = get_global_id(0);\n"
    "    b[i] = a[i];\n"
    "}\n"
    "__kernel void copy1(__global const float *restrict a, __global float *restrict b) {\n"
    "    size_t i = get_global_id(0);\n"
    "    b[i] = a[i];\n"
    "}\n"
    "__kernel void copy8(__global const float8 *restrict a, __global float8 *restrict b) {\n"
    "    size_t i = get_global_id(0);\n"
    "    b[i] = a[i];\n"
    "}\n"
    "__kernel void copy16(__global const float16 *restrict a, __global float16 *restrict b) {\n"
    "    size_t i = get_global_id(0);\n"
    "    b[i] = a[i];\n"
    "}\n"
    /* n float4s, a few per work-item, consecutive work-items on consecutive
     * vectors in each step */
    "__kernel void copy4_stride(__global const float4 *restrict a, __global float4 *restrict b, ulong n) {\n"
    "    size_t step = get_global_size(0);\n"
    "    for (size_t i = get_global_id(0); i < n; i += step) b[i] = a[i];\n"
    "}\n"
    "__kernel void stamp(void) {}\n"
    /* v + a constant vector, not (float4)(v, v + 1.0f, ...): Oclgrind
     * rewrites a store of a vector built lane by lane (an insertelement
     * chain that starts from undef) into a store of undef followed by four
     * scalar stores, and --uninitialized then reports "Uninitialized value
     * written to global memory" here. v itself is set (clSetKernelArg). */
    "__kernel void scrub4(__global float4 *b, float v) {\n"
    "    size_t i = get_global_id(0);\n"
    "    b[i] = v + (float4)(0.0f, 1.0f, 2.0f, 3.0f);\n"
    "}\n";

/* The same copy with non-temporal stores, where the compiler has them (it
 * fails to build elsewhere and is then skipped). Reported for reference:
 * clnorm streams large outputs on CPUs, so its ratios to the plain copy can
 * exceed 1; this shows the ceiling that streaming stores allow. */
static const char COPY_STREAM_SRC[] =
    "#if !defined(__has_builtin)\n#error no __has_builtin\n#elif !__has_builtin(__builtin_nontemporal_store)\n"
    "#error no streaming stores\n#endif\n"
    "__kernel void copy4_stream(__global const float4 *restrict a, __global float4 *restrict b) {\n"
    "    size_t i = get_global_id(0);\n"
    "    __builtin_nontemporal_store(a[i], b + i);\n"
    "}\n";

typedef struct copy_arg {
    cl_command_queue q;
    cl_kernel k;       /* NULL: clEnqueueCopyBuffer of src to dst */
    size_t global;
    cl_mem src, dst;   /* for clEnqueueCopyBuffer */
    size_t bytes;
} copy_arg;

static int enqueue_copy(void *p, cl_event *done, char *err, size_t errlen) {
    copy_arg *a = p;
    cl_int e = a->k ? clEnqueueNDRangeKernel(a->q, a->k, 1, NULL, &a->global, NULL, 0, NULL, done)
                    : clEnqueueCopyBuffer(a->q, a->src, a->dst, 0, 0, a->bytes, 0, NULL, done);
    if (e != CL_SUCCESS) {
        snprintf(err, errlen, "%s: %s", a->k ? "copy kernel launch" : "clEnqueueCopyBuffer", cl_err_name(e));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ the yardstick */

/* The ways to copy x to y that the copy bandwidth is the best of (issue 14):
 * the device's own clEnqueueCopyBuffer and a few kernels, from scalar to
 * float16 (CPUs like wide vectors, GPUs one float4 per work-item) and a
 * grid-stride float4 copy. The name is the kernel's (kernel-times traces
 * it) and the copy_method field of --json and --csv. */
typedef struct copy_method {
    const char *name;
    unsigned vec;      /* floats per load; 0 = clEnqueueCopyBuffer */
    unsigned per_item; /* vectors per work-item (grid-stride when > 1) */
    const char *what;
} copy_method;

static const copy_method copy_methods[] = {
    {"copy_buffer", 0, 0, "clEnqueueCopyBuffer"},
    {"copy4", 4, 1, "float4 kernel, one vector per work-item"},
    {"copy4_stride", 4, 4, "float4 kernel, grid-stride, 4 vectors per work-item"},
    {"copy1", 1, 1, "float kernel, one per work-item"},
    {"copy8", 8, 1, "float8 kernel, one vector per work-item"},
    {"copy16", 16, 1, "float16 kernel, one vector per work-item"},
};
#define N_COPY_METHODS (int)(sizeof copy_methods / sizeof copy_methods[0])
#define COPY_CALIBRATION_REPS 5
/* Every method's copy is this many floats: a multiple of the widest vector
 * times the grid-stride count. */
#define COPY_ELEMS_MULTIPLE 16

static int copy_method_index(const char *name) {
    for (int m = 0; m < N_COPY_METHODS; m++)
        if (strcmp(name, copy_methods[m].name) == 0) return m;
    return -1;
}

/* The run of method m over elems floats of src into dst: a kernel of
 * prog (released by copy_arg_release), or the buffer copy. */
static cl_int copy_arg_init(copy_arg *a, int m, cl_command_queue q, cl_program prog, cl_mem src, cl_mem dst,
                            size_t elems) {
    const copy_method *cm = &copy_methods[m];
    cl_int e = CL_SUCCESS;
    memset(a, 0, sizeof *a);
    a->q = q, a->src = src, a->dst = dst, a->bytes = elems * sizeof(float);
    if (!cm->vec) return CL_SUCCESS;
    a->global = elems / cm->vec / cm->per_item;
    a->k = clCreateKernel(prog, cm->name, &e);
    if (e == CL_SUCCESS) e = clSetKernelArg(a->k, 0, sizeof(cl_mem), &src);
    if (e == CL_SUCCESS) e = clSetKernelArg(a->k, 1, sizeof(cl_mem), &dst);
    if (e == CL_SUCCESS && cm->per_item > 1) {
        cl_ulong n = elems / cm->vec;
        e = clSetKernelArg(a->k, 2, sizeof n, &n);
    }
    if (e != CL_SUCCESS && a->k) {
        clReleaseKernel(a->k);
        a->k = NULL;
    }
    return e;
}

static void copy_arg_release(copy_arg *a) {
    if (a->k) clReleaseKernel(a->k);
    a->k = NULL;
}

/* Times every method in ca[] (ok[m] = usable) round-robin, one untimed
 * round then reps rounds, with the runner's timing and cache method, and
 * fills gbps[m] with the median (0 = failed). Round-robin, so that a
 * stretch of a busy machine slows every method alike. Returns the fastest
 * method, or -1 with r->err set if none ran. */
static int calibrate_copy(runner *r, copy_arg *ca, const int *ok, int warmup, int reps, double *gbps) {
    double *t = malloc(sizeof(double) * N_COPY_METHODS * (size_t)reps);
    if (!t) {
        snprintf(r->err, sizeof r->err, "out of host memory");
        return -1;
    }
    int alive[N_COPY_METHODS];
    for (int m = 0; m < N_COPY_METHODS; m++) alive[m] = ok[m];
    timing_mode mode0 = r->mode;
    for (int i = warmup ? -1 : 0; i < reps; i++) {
        for (int m = 0; m < N_COPY_METHODS; m++) {
            if (!alive[m]) continue;
            double s = timed_run(r, enqueue_copy, &ca[m]);
            if (s < 0) alive[m] = 0; /* this method does not run here */
            else if (i >= 0) t[m * reps + i] = s;
        }
        if (r->mode != mode0) { /* switched to wall clock: restart the sample */
            mode0 = r->mode;
            i = -1;
        }
    }
    int best = -1;
    for (int m = 0; m < N_COPY_METHODS; m++) {
        gbps[m] = alive[m] ? 2.0 * ca[m].bytes / median(t + m * reps, reps) / 1e9 : 0;
        if (alive[m] && (best < 0 || gbps[m] > gbps[best])) best = m;
    }
    free(t);
    if (best < 0 && !r->err[0]) snprintf(r->err, sizeof r->err, "no copy method ran");
    return best;
}

/* The yardstick of this device: the method named by --copy-method, or the
 * fastest in a short calibration of all of them (gbps[m] its GB/s, 0 where
 * not measured). Fills *out with the winner's run (the caller releases it)
 * and returns its index; -1 with r->err set on failure. */
static int choose_copy_method(runner *r, const char *forced, int warmup, int reps, cl_program prog, cl_mem src,
                              cl_mem dst, size_t elems, copy_arg *out, double *gbps) {
    copy_arg ca[N_COPY_METHODS];
    int ok[N_COPY_METHODS], best = -1, fixed = forced ? copy_method_index(forced) : -1;
    for (int m = 0; m < N_COPY_METHODS; m++) {
        gbps[m] = 0;
        ok[m] = (fixed < 0 || m == fixed) &&
                copy_arg_init(&ca[m], m, r->q, prog, src, dst, elems) == CL_SUCCESS;
    }
    if (fixed >= 0) {
        best = ok[fixed] ? fixed : -1;
        if (best < 0) snprintf(r->err, sizeof r->err, "copy method %s cannot run here", forced);
    } else {
        reps = reps < COPY_CALIBRATION_REPS ? reps : COPY_CALIBRATION_REPS;
        best = calibrate_copy(r, ca, ok, warmup, reps, gbps);
    }
    for (int m = 0; m < N_COPY_METHODS; m++)
        if (ok[m] && m != best) copy_arg_release(&ca[m]);
    if (best >= 0) *out = ca[best];
    return best;
}

/* The table header's line on the calibration: every method's GB/s and the
 * winner, or that --copy-method chose. */
static void print_copy_methods(int chosen, const double *gbps, int forced, int reps) {
    if (forced) {
        printf("Copy method: %s, set by --copy-method (no calibration)\n", copy_methods[chosen].name);
        return;
    }
    printf("Copy method: %s, the fastest in a calibration (GB/s, median of %d round-robin runs each):",
           copy_methods[chosen].name, reps < COPY_CALIBRATION_REPS ? reps : COPY_CALIBRATION_REPS);
    for (int m = 0; m < N_COPY_METHODS; m++) {
        if (gbps[m] > 0) printf("%s %s %.2f", m ? "," : "", copy_methods[m].name, gbps[m]);
        else printf("%s %s failed", m ? "," : "", copy_methods[m].name);
    }
    putchar('\n');
}

typedef struct op_arg {
    clnorm_ctx *cx;
    const clnorm_desc *d;
} op_arg;

static int enqueue_op(void *p, cl_event *done, char *err, size_t errlen) {
    op_arg *a = p;
    clnorm_status s = clnorm_forward(a->cx, a->d, 0, NULL, done);
    if (s != CLNORM_OK) {
        snprintf(err, errlen, "clnorm_forward: %s (%s): %s", clnorm_status_name(s), clnorm_status_string(s),
                 clnorm_last_error(a->cx));
        if (s == CLNORM_ERR_BUILD_FAILED && clnorm_build_log(a->cx))
            fprintf(stderr, "build log:\n%s\n", clnorm_build_log(a->cx));
        return -1;
    }
    if (!*done) {
        snprintf(err, errlen, "clnorm_forward returned no event");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ data */

/* The data: uniform in each role's range, from the harness's RNG (tests/common.h). */
static th_rng data_rng;

static cl_mem make_buffer(cl_context ctx, cl_command_queue q, size_t elems, float lo, float hi, char *err,
                          size_t errlen) {
    cl_int e;
    size_t bytes = (elems ? elems : 1) * sizeof(float);
    cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &e);
    if (e != CL_SUCCESS) {
        snprintf(err, errlen, "clCreateBuffer(%zu bytes): %s", bytes, cl_err_name(e));
        return NULL;
    }
    /* fill in chunks so host memory stays small */
    size_t chunk = (size_t)1 << 22;
    float *h = malloc(chunk * sizeof(float));
    if (!h) {
        clReleaseMemObject(m);
        snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    for (size_t off = 0; off < elems; off += chunk) {
        size_t n = elems - off < chunk ? elems - off : chunk;
        th_fill_uniform(&data_rng, h, n, lo, hi);
        e = clEnqueueWriteBuffer(q, m, CL_TRUE, off * sizeof(float), n * sizeof(float), h, 0, NULL, NULL);
        if (e != CL_SUCCESS) {
            snprintf(err, errlen, "clEnqueueWriteBuffer: %s", cl_err_name(e));
            free(h);
            clReleaseMemObject(m);
            return NULL;
        }
    }
    free(h);
    return m;
}

/* ------------------------------------------------------------------ --check */

static int read_back(cl_command_queue q, cl_mem m, size_t elems, float **out, char *err, size_t errlen) {
    *out = malloc((elems ? elems : 1) * sizeof(float));
    if (!*out) {
        snprintf(err, errlen, "out of host memory");
        return -1;
    }
    cl_int e = clEnqueueReadBuffer(q, m, CL_TRUE, 0, elems * sizeof(float), *out, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        snprintf(err, errlen, "clEnqueueReadBuffer: %s", cl_err_name(e));
        return -1;
    }
    return 0;
}

/* Compares y and the saved statistics, every element, with the project's
 * double-precision reference (tests/reference.c) under the tests' tolerance
 * model (tests/compare.c). Running statistics are not compared: the timed
 * runs have updated them many times; inference reads them as they are. A
 * sanity check of the timed kernels, not the precision tests (those are in
 * tests/). 0 = agrees; -1 = error/mismatch. */
static int check_case(cl_command_queue q, const bench_case *c, const clnorm_desc *d, cl_mem mem[BENCH_ROLES],
                      char *err, size_t errlen) {
    size_t el[BENCH_ROLES];
    bench_case_buffer_elems(c, el);
    float *h[BENCH_ROLES] = {0};
    int rc = 0;
    for (int k = 0; k < BENCH_ROLES && rc == 0; k++)
        if (el[k]) rc = read_back(q, mem[k], el[k], &h[k], err, errlen);
    if (rc == 0) {
        const int running = th_uses_running(d, h[BENCH_RUNNING_MEAN] != NULL);
        th_inputs in = {h[BENCH_X], h[BENCH_SCALE], h[BENCH_BIAS], running ? h[BENCH_RUNNING_MEAN] : NULL,
                        running ? h[BENCH_RUNNING_VAR] : NULL};
        th_outputs got = {h[BENCH_Y], h[BENCH_MEAN], h[BENCH_RSTD], NULL, NULL};
        if (th_compare_why(d, &in, &got, 1.0, err, errlen) != 0) rc = -1;
    }
    for (int k = 0; k < BENCH_ROLES; k++) free(h[k]);
    return rc;
}

/* One more run of the case under cx's settings, then check_case: timed
 * runs leave y overwritten by the paired runs. 0 = agrees. */
static int run_and_check(cl_command_queue q, op_arg *oa, const bench_case *c, cl_mem mem[BENCH_ROLES], char *err,
                         size_t errlen) {
    if (run_wait(enqueue_op, oa, err, errlen) != 0) return -1;
    return check_case(q, c, oa->d, mem, err, errlen);
}

/* ------------------------------------------------------------------ per device */

static const char *variant_label(const options *o, char *buf, size_t len) {
    if (!o->variant_set) return "auto";
    if (o->wg) snprintf(buf, len, "%s:%zu", clnorm_variant_name(o->variant), o->wg);
    else snprintf(buf, len, "%s", clnorm_variant_name(o->variant));
    return buf;
}

static void sanitize(const char *in, char *out, size_t len) {
    size_t j = 0;
    int dash = 0;
    for (; *in && j + 1 < len; in++) {
        unsigned char ch = (unsigned char)*in;
        if (isalnum(ch) || ch == '.' || ch == '_') {
            out[j++] = (char)ch;
            dash = 0;
        } else if (!dash && j > 0) {
            out[j++] = '-';
            dash = 1;
        }
    }
    while (j > 0 && out[j - 1] == '-') j--;
    out[j] = 0;
    if (j == 0) snprintf(out, len, "device");
}

/* ------------------------------------------------------------------ tuner */

/* --tune, one case: every variant and work-group size (cx) against the
 * rules (rules_cx), each measured paired with the rules in the same runs so
 * that the machine's drift cancels. The fastest candidate at least 5%
 * faster than the rules, whose output passes the reference check and whose
 * gain holds in a longer second measurement, becomes the case's entry in
 * o->tune (device name, clnorm_tuning_key, variant, work-group size). 0, or
 * -1 if the case could not be measured at all. */
#define TUNE_MIN_GAIN 0.95

/* Median ms of cx's run of d under (v, wg) and of rules_cx's, paired run
 * for run; 0 or -1. */
static int tune_pair(runner *r, clnorm_ctx *cx, clnorm_ctx *rules_cx, const clnorm_desc *d, clnorm_variant v,
                     size_t wg, int reps, double *ms, double *rules_ms) {
    op_arg oc = {cx, d}, orules = {rules_cx, d};
    double mn, pmn;
    if (clnorm_set_variant(cx, v, wg) != CLNORM_OK) return -1;
    return measure(r, enqueue_op, &oc, enqueue_op, &orules, 1, reps, ms, &mn, rules_ms, &pmn, NULL);
}

static int tune_case(const options *o, runner *r, const devinfo *dev, clnorm_ctx *cx, clnorm_ctx *rules_cx,
                     const bench_case *c, const clnorm_desc *d, cl_mem mem[BENCH_ROLES], const char *label,
                     char (*done)[64], size_t *ndone) {
    char key[64];
    clnorm_status st = clnorm_tuning_key(d, key, sizeof key);
    if (st != CLNORM_OK) {
        progress_done();
        fprintf(stderr, "%s: %s: clnorm_tuning_key: %s\n", prog, label, clnorm_status_name(st));
        return -1;
    }
    /* One entry per key and device (the library refuses a second): a case
     * in the bucket of an earlier one is not tuned again. */
    for (size_t i = 0; i < *ndone; i++)
        if (strcmp(done[i], key) == 0) {
            printf("%-40s %-30s (tuned with an earlier case of the same key)\n", label, key);
            return 0;
        }
    snprintf(done[(*ndone)++], 64, "%s", key);
    enum { MAXC = 4 * 8 };
    struct cand {
        clnorm_variant v;
        size_t wg;
        double ms, rules_ms, ratio;
    } cand[MAXC];
    int n = 0;
    static const clnorm_variant vs[] = {CLNORM_VARIANT_WG, CLNORM_VARIANT_SUBGROUP, CLNORM_VARIANT_WI,
                                        CLNORM_VARIANT_SPLIT};
    static const size_t wgs[] = {0, 32, 64, 128, 256, 512, 1024};
    op_arg oc = {cx, d};
    /* The control: the rules in cx against the rules in rules_cx. The same
     * plan in two contexts measured up to 7% apart here (scratch placement,
     * run order); candidates' ratios are taken relative to it. */
    double ctl_ms, ctl_rules;
    progress("%s: tuning %s: control", dev->name, label);
    if (tune_pair(r, cx, rules_cx, d, CLNORM_VARIANT_AUTO, 0, o->reps, &ctl_ms, &ctl_rules) != 0) {
        progress_done();
        fprintf(stderr, "%s: %s: %s: %s\n", prog, dev->name, label, r->err);
        return -1;
    }
    const double control = ctl_ms / ctl_rules;
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        for (size_t k = 0; k < sizeof wgs / sizeof wgs[0]; k++) {
            if (wgs[k] > dev->max_wg) continue;
            progress("%s: tuning %s: %s:%zu", dev->name, label, clnorm_variant_name(vs[i]), wgs[k]);
            struct cand *t = &cand[n];
            /* One pair first: a candidate twice as slow as the rules (the
             * work-group variants on CPUs, up to 14x) is not worth more. */
            if (tune_pair(r, cx, rules_cx, d, vs[i], wgs[k], 1, &t->ms, &t->rules_ms) != 0)
                continue; /* this candidate cannot run the case */
            if (t->ms < 2 * t->rules_ms &&
                tune_pair(r, cx, rules_cx, d, vs[i], wgs[k], o->reps, &t->ms, &t->rules_ms) != 0)
                continue;
            t->v = vs[i], t->wg = wgs[k], t->ratio = t->ms / t->rules_ms / control;
            n++;
        }
    if (n == 0) {
        progress_done();
        fprintf(stderr, "%s: %s: %s: no candidate ran: %s\n", prog, dev->name, label, r->err);
        return -1;
    }
    for (int i = 1; i < n; i++) /* fastest first */
        for (int j = i; j > 0 && cand[j].ratio < cand[j - 1].ratio; j--) {
            struct cand tmp = cand[j];
            cand[j] = cand[j - 1], cand[j - 1] = tmp;
        }
    /* Candidates that measured clearly faster, fastest first (three at
     * most): the output must pass the reference check, and the gain must
     * hold in a second, longer paired measurement, since five runs of a
     * candidate that is the rules' own choice can come out 10% apart. */
    int win = -1;
    char cerr[512] = "";
    for (int i = 0; i < n && i < 3 && cand[i].ratio <= TUNE_MIN_GAIN && win < 0; i++) {
        char vw[32];
        snprintf(vw, sizeof vw, "%s:%zu", clnorm_variant_name(cand[i].v), cand[i].wg);
        snprintf(cerr, sizeof cerr, "clnorm_set_variant failed");
        if (clnorm_set_variant(cx, cand[i].v, cand[i].wg) != CLNORM_OK ||
            run_and_check(r->q, &oc, c, mem, cerr, sizeof cerr) != 0) {
            progress_done();
            fprintf(stderr, "%s: %s: %s: %s was faster but wrong (%s); not used\n", prog, dev->name, label, vw,
                    cerr);
            continue;
        }
        progress("%s: tuning %s: confirming %s", dev->name, label, vw);
        const int reps2 = o->reps * 3 < 15 ? 15 : o->reps * 3;
        double ms, rules_ms, cms, crules;
        if (tune_pair(r, cx, rules_cx, d, CLNORM_VARIANT_AUTO, 0, reps2, &cms, &crules) != 0 ||
            tune_pair(r, cx, rules_cx, d, cand[i].v, cand[i].wg, reps2, &ms, &rules_ms) != 0)
            continue;
        cand[i].ms = ms, cand[i].rules_ms = rules_ms, cand[i].ratio = ms / rules_ms / (cms / crules);
        if (cand[i].ratio <= TUNE_MIN_GAIN) win = i;
    }
    clnorm_set_variant(cx, CLNORM_VARIANT_AUTO, 0);
    progress_done();
    const struct cand *b = &cand[win >= 0 ? win : 0];
    char vw[32];
    snprintf(vw, sizeof vw, "%s:%zu", clnorm_variant_name(b->v), b->wg);
    printf("%-40s %-30s %9.3f  %-12s %9.3f %7.2fx %7.2f  %s\n", label, key, b->rules_ms, vw, b->ms, 1 / b->ratio,
           control, win >= 0 ? "yes" : "-");
    if (win >= 0)
        fprintf(o->tune, "# %s: %s %.3f ms, the rules %.3f ms (paired runs), %.2fx against the control\n"
                "%s\t%s\t%s\t%zu\n", label, vw, b->ms, b->rules_ms, 1 / b->ratio, dev->name, key,
                clnorm_variant_name(b->v), b->wg);
    fflush(stdout);
    return 0;
}

static int run_device(const options *o, const devinfo *dev, FILE *csv) {
    int failures = 0;
    char err[2048];
    cl_int e;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)dev->platform, 0};
    runner r = {0};
    r.mode = o->timing_wall ? TIME_WALL : TIME_EVENTS;
    r.gate = !o->no_gate;
    r.ctx = clCreateContext(props, 1, &dev->device, NULL, NULL, &e);
    if (e != CL_SUCCESS) {
        fprintf(stderr, "%s: %s: clCreateContext: %s\n", prog, dev->name, cl_err_name(e));
        return 1;
    }
    r.q = clCreateCommandQueue(r.ctx, dev->device, CL_QUEUE_PROFILING_ENABLE, &e);
    if (e != CL_SUCCESS) {
        fprintf(stderr, "%s: %s: clCreateCommandQueue: %s\n", prog, dev->name, cl_err_name(e));
        clReleaseContext(r.ctx);
        return 1;
    }
    clnorm_ctx *cx = NULL;
    clnorm_status st = clnorm_create_from_queue(r.q, &cx);
    if (st != CLNORM_OK) {
        fprintf(stderr, "%s: %s: clnorm_create_from_queue: %s (%s)\n", prog, dev->name, clnorm_status_name(st),
                clnorm_status_string(st));
        clReleaseCommandQueue(r.q);
        clReleaseContext(r.ctx);
        return 1;
    }
    char vbuf[64];
    const char *vlabel = variant_label(o, vbuf, sizeof vbuf);
    if (o->variant_set) {
        st = clnorm_set_variant(cx, o->variant, o->wg);
        if (st != CLNORM_OK) {
            fprintf(stderr, "%s: clnorm_set_variant(%s, %zu): %s: %s\n", prog, clnorm_variant_name(o->variant),
                    o->wg, clnorm_status_name(st), clnorm_last_error(cx));
            failures = 1;
            goto out;
        }
    }

    /* Buffers: one pool per role, sized to the largest case, filled once. */
    size_t need[BENCH_ROLES] = {0};
    for (size_t i = 0; i < o->n_cases; i++) {
        size_t el[BENCH_ROLES];
        bench_case_buffer_elems(&o->cases[i], el);
        for (int k = 0; k < BENCH_ROLES; k++) need[k] = el[k] > need[k] ? el[k] : need[k];
    }
    size_t copy_elems = o->copy_elems;
    if (!copy_elems) {
        for (size_t i = 0; i < bench_suite_count; i++) {
            size_t n = bench_case_elements(&bench_suite[i]);
            copy_elems = n > copy_elems ? n : copy_elems;
        }
    }
    copy_elems = (copy_elems + COPY_ELEMS_MULTIPLE - 1) / COPY_ELEMS_MULTIPLE * COPY_ELEMS_MULTIPLE;
    if (need[BENCH_X] < copy_elems) need[BENCH_X] = copy_elems;
    if (need[BENCH_Y] < copy_elems) need[BENCH_Y] = copy_elems;
    static const float lo[BENCH_ROLES] = {-2.0f, -1.0f, 0.5f, -0.5f, -1.0f, 0.5f, -0.5f, 0.5f};
    static const float hi[BENCH_ROLES] = {3.0f, 1.0f, 1.5f, 0.5f, 1.0f, 1.5f, 0.5f, 2.0f};
    cl_mem mem[BENCH_ROLES] = {0};
    progress("%s: allocating and filling %.0f MiB of random data", dev->name,
             (double)(need[BENCH_X] + need[BENCH_Y]) * 4.0 / (1 << 20));
    for (int k = 0; k < BENCH_ROLES; k++) {
        if (!need[k]) continue;
        mem[k] = make_buffer(r.ctx, r.q, need[k], lo[k], hi[k], err, sizeof err);
        if (!mem[k]) {
            progress_done();
            fprintf(stderr, "%s: %s: %s buffer: %s\n", prog, dev->name, bench_role_name(k), err);
            failures = 1;
            goto out_mem;
        }
    }

    /* Copy bandwidth, measured before the cases (the reference of every
     * ratio) and again after them, to show how much the machine drifted. */
    double copy_gbps = 0, copy_med = 0, copy_min = 0, copy_end_gbps = 0, copy_own = -1;
    cl_program prog_copy = clCreateProgramWithSource(r.ctx, 1, (const char *[]){COPY_SRC}, NULL, &e);
    copy_arg ca = {0};
    if (e == CL_SUCCESS) e = clBuildProgram(prog_copy, 1, &dev->device, "", NULL, NULL);
    if (e == CL_SUCCESS) r.stamp = clCreateKernel(prog_copy, "stamp", &e);
    cl_mem scratch = NULL;
    size_t scrub_bytes = 0;
    if (e == CL_SUCCESS && !o->warm_cache) {
        scrub_bytes = (size_t)256 << 20;
        if (dev->cache * 8 > scrub_bytes) scrub_bytes = (size_t)(dev->cache * 8);
        if (dev->global_mem && scrub_bytes > dev->global_mem / 8) scrub_bytes = (size_t)(dev->global_mem / 8);
        scrub_bytes &= ~(size_t)15;
        float v = 0.5f;
        scratch = clCreateBuffer(r.ctx, CL_MEM_READ_WRITE, scrub_bytes, NULL, &e);
        if (e == CL_SUCCESS) r.scrub = clCreateKernel(prog_copy, "scrub4", &e);
        if (e == CL_SUCCESS) e = clSetKernelArg(r.scrub, 0, sizeof(cl_mem), &scratch);
        if (e == CL_SUCCESS) e = clSetKernelArg(r.scrub, 1, sizeof(float), &v);
        r.scrub_global = scrub_bytes / 16;
    }
    if (e != CL_SUCCESS) {
        progress_done();
        fprintf(stderr, "%s: %s: copy kernel: %s\n", prog, dev->name, cl_err_name(e));
        failures = 1;
        goto out_copy;
    }
    if (o->tune) {
        /* The rules in a second context on the same queue; neither reads a
         * tuning file, so the file written is complete by itself. */
        clnorm_ctx *rules_cx = NULL;
        st = clnorm_create_from_queue(r.q, &rules_cx);
        if (st == CLNORM_OK) st = clnorm_set_tuning(rules_cx, NULL);
        if (st == CLNORM_OK) st = clnorm_set_tuning(cx, NULL);
        if (st != CLNORM_OK) {
            fprintf(stderr, "%s: %s: tuning contexts: %s\n", prog, dev->name, clnorm_status_name(st));
            clnorm_destroy(rules_cx);
            failures = 1;
            goto out_copy;
        }
        printf("\nTuning %s [%s]: %s, median of %d runs, each candidate paired with the rules;\n"
               "an entry where one is %.0f%% faster or more, again in a longer rerun, and passes the reference check\n\n",
               dev->name, type_name(dev->type), r.mode == TIME_EVENTS ? "profiling events" : "wall clock", o->reps,
               (1 - TUNE_MIN_GAIN) * 100);
        printf("%-40s %-30s %9s  %-12s %9s %8s %7s  %s\n", "case", "key", "rules ms", "best", "best ms", "speed-up",
               "control", "entry");
        char(*keys)[64] = calloc(o->n_cases, 64);
        size_t nkeys = 0;
        if (!keys) die("out of host memory");
        for (size_t i = 0; i < o->n_cases; i++) {
            char label[160];
            bench_case_label(&o->cases[i], label, sizeof label);
            clnorm_desc d;
            if (bench_case_desc(&o->cases[i], &d) != 0) {
                fprintf(stderr, "%s: %s: bad case\n", prog, label);
                failures++;
                continue;
            }
            size_t el[BENCH_ROLES];
            bench_case_buffer_elems(&o->cases[i], el);
            for (int k = 0; k < BENCH_ROLES; k++)
                if (el[k]) bench_desc_set(&d, k, (clnorm_buf){mem[k], 0});
            if (tune_case(o, &r, dev, cx, rules_cx, &o->cases[i], &d, mem, label, keys, &nkeys) != 0) failures++;
        }
        clnorm_destroy(rules_cx);
        free(keys);
        goto out_copy;
    }
    double method_gbps[N_COPY_METHODS];
    progress("%s: %s (%.0f MiB)", dev->name, o->copy_method ? "copy bandwidth" : "choosing the copy method",
             copy_elems * 4.0 / (1 << 20));
    const int copy_m = choose_copy_method(&r, o->copy_method, o->warmup, o->reps, prog_copy, mem[BENCH_X],
                                          mem[BENCH_Y], copy_elems, &ca, method_gbps);
    if (copy_m < 0) {
        progress_done();
        fprintf(stderr, "%s: %s: copy bandwidth: %s\n", prog, dev->name, r.err);
        failures = 1;
        goto out_copy;
    }
    progress("%s: copy bandwidth (%s, %.0f MiB)", dev->name, copy_methods[copy_m].name, copy_elems * 4.0 / (1 << 20));
    if (measure(&r, enqueue_copy, &ca, NULL, NULL, o->warmup, o->reps, &copy_med, &copy_min, NULL, NULL, &copy_own) != 0) {
        progress_done();
        fprintf(stderr, "%s: %s: %s\n", prog, dev->name, r.err);
        failures = 1;
        goto out_copy;
    }
    copy_gbps = 2.0 * copy_elems * sizeof(float) / (copy_med * 1e-3) / 1e9;
    double copy_stream_gbps = 0;
    {
        cl_int es;
        cl_program ps = clCreateProgramWithSource(r.ctx, 1, (const char *[]){COPY_STREAM_SRC}, NULL, &es);
        cl_kernel ks = NULL;
        if (es == CL_SUCCESS) es = clBuildProgram(ps, 1, &dev->device, "", NULL, NULL);
        if (es == CL_SUCCESS) ks = clCreateKernel(ps, "copy4_stream", &es);
        if (es == CL_SUCCESS) es = clSetKernelArg(ks, 0, sizeof(cl_mem), &mem[BENCH_X]);
        if (es == CL_SUCCESS) es = clSetKernelArg(ks, 1, sizeof(cl_mem), &mem[BENCH_Y]);
        double sm = 0, smin = 0;
        copy_arg cs = {.q = r.q, .k = ks, .global = copy_elems / 4};
        if (es == CL_SUCCESS &&
            measure(&r, enqueue_copy, &cs, NULL, NULL, o->warmup, o->reps, &sm, &smin, NULL, NULL, NULL) == 0)
            copy_stream_gbps = 2.0 * copy_elems * sizeof(float) / (sm * 1e-3) / 1e9;
        if (ks) clReleaseKernel(ks);
        if (ps) clReleaseProgram(ps);
    }

    result *res = calloc(o->n_cases, sizeof *res);
    if (!res) die("out of host memory");
    for (size_t i = 0; i < o->n_cases; i++) {
        result *rs = &res[i];
        rs->c = o->cases[i];
        char label[160];
        bench_case_label(&rs->c, label, sizeof label);
        progress("%s: [%zu/%zu] %s", dev->name, i + 1, o->n_cases, label);
        clnorm_desc d;
        if (bench_case_desc(&rs->c, &d) != 0) {
            progress_done();
            fprintf(stderr, "%s: %s: bad case\n", prog, label);
            failures++;
            continue;
        }
        size_t el[BENCH_ROLES];
        bench_case_buffer_elems(&rs->c, el);
        for (int k = 0; k < BENCH_ROLES; k++)
            if (el[k]) bench_desc_set(&d, k, (clnorm_buf){mem[k], 0});
        op_arg oa = {cx, &d};
        double pair_copy_ms = 0, pair_copy_min = 0;
        if (measure(&r, enqueue_op, &oa, o->copy_once ? NULL : enqueue_copy, &ca, o->warmup, o->reps,
                    &rs->median_ms, &rs->min_ms, &pair_copy_ms, &pair_copy_min, NULL) != 0) {
            progress_done();
            fprintf(stderr, "%s: %s: %s: %s\n", prog, dev->name, label, r.err);
            failures++;
            continue;
        }
        rs->bytes = bench_case_bytes(&rs->c);
        rs->gbps = rs->bytes / (rs->median_ms * 1e-3) / 1e9;
        rs->copy_gbps = o->copy_once ? copy_gbps : 2.0 * copy_elems * sizeof(float) / (pair_copy_ms * 1e-3) / 1e9;
        rs->ratio = rs->gbps / rs->copy_gbps;
        {
            double cmin = o->copy_once ? copy_min : pair_copy_min;
            double copy_best = 2.0 * copy_elems * sizeof(float) / (cmin * 1e-3) / 1e9;
            rs->ratio_min = rs->bytes / (rs->min_ms * 1e-3) / 1e9 / copy_best;
        }
        rs->copy_stream_gbps = copy_stream_gbps;
        rs->copy_method = copy_methods[copy_m].name;
        rs->ok = 1;
        if (o->check) {
            char cerr[512];
            if (run_and_check(r.q, &oa, &rs->c, mem, cerr, sizeof cerr) != 0) {
                progress_done();
                fprintf(stderr, "%s: %s: %s: CHECK FAILED: %s\n", prog, dev->name, label, cerr);
                rs->ok = 0;
                failures++;
                continue;
            }
        }
        const char *timing = r.mode == TIME_EVENTS ? "events" : "wall";
        if (o->json) json_row(stdout, dev, rs, o->reps, vlabel, timing);
        if (o->csv_stdout) csv_row(stdout, dev, rs, o->reps, vlabel, timing);
        if (csv) csv_row(csv, dev, rs, o->reps, vlabel, timing);
    }
    {
        double med2, min2;
        progress("%s: copy bandwidth again", dev->name);
        if (measure(&r, enqueue_copy, &ca, NULL, NULL, 1, o->reps, &med2, &min2, NULL, NULL, NULL) == 0)
            copy_end_gbps = 2.0 * copy_elems * sizeof(float) / (med2 * 1e-3) / 1e9;
    }
    progress_done();
    if (copy_end_gbps > 0 && fabs(copy_end_gbps / copy_gbps - 1.0) > 0.15)
        fprintf(stderr, "%s: warning: copy bandwidth drifted from %.2f to %.2f GB/s during the run (busy machine?); %s\n",
                prog, copy_gbps, copy_end_gbps,
                o->copy_once ? "ratios are against the first value" : "each ratio is against the copies run between its own runs");

    const char *timing = r.mode == TIME_EVENTS ? "events" : "wall";
    if (o->csv_dir) {
        char fname[300], path[4096];
        sanitize(dev->name, fname, sizeof fname);
        snprintf(path, sizeof path, "%s/%s.csv", o->csv_dir, fname);
        FILE *f = fopen(path, "w");
        if (!f) {
            fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
            failures++;
        } else {
            fputs(CSV_HEADER, f);
            for (size_t i = 0; i < o->n_cases; i++)
                if (res[i].ok) csv_row(f, dev, &res[i], o->reps, vlabel, timing);
            fclose(f);
            fprintf(stderr, "%s: wrote %s\n", prog, path);
        }
    }
    if (!o->json && !o->csv_stdout) {
        printf("\nDevice %u:%u: %s [%s, %s, %u CUs]\n", dev->pi, dev->di, dev->name, dev->platform_name,
               type_name(dev->type), dev->units);
        printf("Copy bandwidth: %.2f GB/s (%s: %s; %.1f MB read + written; median %.3f ms, min %.3f ms;"
               " %.2f GB/s again after the cases)\n",
               copy_gbps, copy_methods[copy_m].name, copy_methods[copy_m].what, copy_elems * 4.0 * 2 / 1e6, copy_med,
               copy_min, copy_end_gbps);
        print_copy_methods(copy_m, method_gbps, o->copy_method != NULL, o->reps);
        if (copy_stream_gbps > 0)
            printf("Copy with streaming stores: %.2f GB/s (for reference: clnorm streams large outputs on CPUs,"
                   " so ratios to the plain copy can pass 1)\n", copy_stream_gbps);
        printf("Timing: %s%s, warm-up %d, median of %d runs; caches %s; variant %s\n",
               r.mode == TIME_EVENTS ? "profiling events (end of an empty stamp kernel to end of the op)" : "wall clock",
               r.gate ? ", gated" : "", o->warmup, o->reps, r.scrub ? "scrubbed before each run (cold)" : "warm", vlabel);
        if (copy_own > 0)
            printf("Timing overhead: %.1f us (copy: %.3f ms stamp-to-end vs %.3f ms its own start-to-end)\n",
                   (copy_med - copy_own) * 1e3, copy_med, copy_own);
        printf("Ratio: GB/s over %s;\n       ratio(min): fastest run over fastest copy run (interference only slows runs)\n\n",
               o->copy_once ? "the copy bandwidth above"
               : "the median copy bandwidth of copy runs interleaved with the case's runs (column copy)");
        printf("%-18s %-6s %-15s %5s %10s %10s %9s %7s %7s %9s\n", "op", "layout", "shape", "G", "median ms", "min ms",
               "GB/s", "copy", "ratio", "ratio(min)");
        for (size_t i = 0; i < o->n_cases; i++) {
            char shape[96];
            bench_shape_string(&res[i].c, shape, sizeof shape);
            char g[16] = "-";
            if (res[i].c.op == CLNORM_GROUP_NORM) snprintf(g, sizeof g, "%zu", res[i].c.groups);
            if (res[i].ok)
                printf("%-18s %-6s %-15s %5s %10.3f %10.3f %9.2f %7.2f %7.3f %9.3f\n", bench_op_name(&res[i].c),
                       bench_layout_name(&res[i].c), shape, g, res[i].median_ms, res[i].min_ms, res[i].gbps,
                       res[i].copy_gbps, res[i].ratio, res[i].ratio_min);
            else
                printf("%-18s %-6s %-15s %5s %10s %10s %9s %7s %7s %9s\n", bench_op_name(&res[i].c),
                       bench_layout_name(&res[i].c), shape, g, "FAILED", "-", "-", "-", "-", "-");
        }
        fflush(stdout);
    }
    free(res);

out_copy:
    if (r.scrub) clReleaseKernel(r.scrub);
    if (r.stamp) clReleaseKernel(r.stamp);
    if (scratch) clReleaseMemObject(scratch);
    copy_arg_release(&ca);
    if (prog_copy) clReleaseProgram(prog_copy);
out_mem:
    for (int k = 0; k < BENCH_ROLES; k++)
        if (mem[k]) clReleaseMemObject(mem[k]);
out:
    clnorm_destroy(cx);
    clReleaseCommandQueue(r.q);
    clReleaseContext(r.ctx);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ command line */

/* The library's variant names, separated by sep: "auto wg subgroup wi split". */
static const char *variant_list(const char *sep) {
    static char buf[128];
    size_t used = 0;
    for (int i = 0; i < CLNORM_VARIANT_COUNT && used < sizeof buf; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", i ? sep : "",
                                 clnorm_variant_name((clnorm_variant)i));
    return buf;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options]\n"
            "  --list                 list OpenCL platforms and devices (P:D indices) and exit\n"
            "  --device P:D|NAME      device by platform:device index or name substring (repeatable);\n"
            "                         default: the library default (CLNORM_DEVICE, else first GPU, else first)\n"
            "  --all-devices          every device of every platform\n"
            "  --op OP --shape AxBx.. [--layout nchw|nhwc] [--groups G] [--inference] [--no-affine] [--no-stats]\n"
            "                         one case instead of the standard suite (repeat --op to add cases;\n"
            "                         ops: layer_norm rms_norm batch_norm_train batch_norm_infer group_norm\n"
            "                         instance_norm; shapes in PyTorch order, N x C x spatial for channel norms)\n"
            "  --filter SUBSTR        run only suite cases whose label contains SUBSTR (repeatable)\n"
            "  --reps N               timed runs per case (default 20; the median is reported)\n"
            "  --warmup N             untimed runs first (default 3)\n"
            "  --variant V[:WG]       force a kernel variant (%s), optional work-group size\n"
            "  --wg N                 work-group size with --variant\n"
            "  --copy-elems N         float count of the copy-bandwidth reference (default: largest suite x)\n"
            "  --copy-method M        how the reference copy is made: auto (default) times clEnqueueCopyBuffer\n"
            "                         and the copy kernels copy4 copy4_stride copy1 copy8 copy16 once per\n"
            "                         device (a few runs each, medians) and uses only the fastest from then\n"
            "                         on; or one of those names, without the calibration\n"
            "  --copy-once            ratios against the copy bandwidth measured first only (default: against\n"
            "                         copy runs interleaved with each case's runs, robust on a busy machine)\n"
            "  --wall                 time with the wall clock instead of profiling events\n"
            "  --no-gate              do not hold each run on a user event until it is fully enqueued\n"
            "  --check                after timing, compare all of y/mean/rstd with the double-precision\n"
            "                         reference of tests/reference.c, with the tests' tolerances (a fast\n"
            "                         wrong kernel fails the case)\n"
            "  --warm-cache           do not scrub the caches before each run (default: scrub, cold caches)\n"
            "  --json                 one JSON object per case per line on stdout (no table)\n"
            "  --csv [FILE]           CSV to FILE (with a header), or to stdout instead of the table\n"
            "  --csv-dir DIR          one CSV per device: DIR/<device>.csv\n"
            "  --suite-json           print the selected cases as JSON lines (with bytes) and exit\n"
            "  --quiet                no progress line on stderr\n"
            "  --tune FILE            instead of the benchmark: time every variant and work-group size of each\n"
            "                         case against the rules (--reps per candidate, default 5) and write the\n"
            "                         ones >= 5%% faster (and again in a longer rerun) that pass the\n"
            "                         reference check to FILE, for\n"
            "                         CLNORM_TUNING=FILE or clnorm_set_tuning() (see include/clnorm.h)\n",
            prog, variant_list(" "));
}

static int parse_variant(const char *s, clnorm_variant *v, size_t *wg) {
    char name[32];
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    if (len >= sizeof name) return -1;
    memcpy(name, s, len);
    name[len] = 0;
    if (clnorm_variant_from_name(name, v) != CLNORM_OK) return -1;
    if (colon) {
        char *end;
        unsigned long w = strtoul(colon + 1, &end, 10);
        if (*end || w == 0) return -1;
        *wg = w;
    }
    return 0;
}

static long parse_long(const char *opt, const char *s, long min) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min) die("%s: bad value '%s' (integer >= %ld)", opt, s, min);
    return v;
}

int main(int argc, char **argv) {
    static options o;
    o.reps = 20;
    o.warmup = 3;
    const char *filters[64];
    int n_filters = 0;
    const char *tune_path = NULL;
    int reps_set = 0;
    bench_case *cur = NULL; /* case being built from --op */
    progress_tty = isatty(2);
    th_rng_init(&data_rng, 1);

#define NEED_ARG()                                                                      \
    do {                                                                                \
        if (i + 1 >= argc) die("%s needs a value (see --help)", a);                     \
    } while (0)
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--list")) {
            o.list = 1;
        } else if (!strcmp(a, "--device") || !strcmp(a, "-d")) {
            NEED_ARG();
            if (o.n_device_sel == MAX_DEVICES) die("too many --device");
            o.device_sel[o.n_device_sel++] = argv[++i];
        } else if (!strcmp(a, "--all-devices")) {
            o.all_devices = 1;
        } else if (!strcmp(a, "--op")) {
            NEED_ARG();
            if (o.n_cases == MAX_CASES) die("too many cases");
            cur = &o.cases[o.n_cases++];
            bench_case_init(cur, CLNORM_LAYER_NORM, 1);
            if (bench_parse_op(argv[++i], cur) != 0) die("unknown op '%s'", argv[i]);
        } else if (!strcmp(a, "--shape")) {
            NEED_ARG();
            if (!cur) die("--shape must follow --op");
            if (bench_parse_shape(argv[++i], cur) != 0) die("bad shape '%s' (e.g. 32x256x64x64)", argv[i]);
        } else if (!strcmp(a, "--layout")) {
            NEED_ARG();
            if (!cur) die("--layout must follow --op");
            if (bench_parse_layout(argv[++i], &cur->layout) != 0) die("bad layout '%s' (nchw|nhwc)", argv[i]);
        } else if (!strcmp(a, "--groups") || !strcmp(a, "-G")) {
            NEED_ARG();
            if (!cur) die("--groups must follow --op");
            cur->groups = (size_t)parse_long(a, argv[++i], 1);
        } else if (!strcmp(a, "--inference")) {
            if (!cur) die("--inference must follow --op");
            cur->training = 0;
            if (cur->op == CLNORM_INSTANCE_NORM) cur->running_stats = 1;
        } else if (!strcmp(a, "--running-stats")) {
            if (!cur) die("--running-stats must follow --op");
            cur->running_stats = 1;
        } else if (!strcmp(a, "--no-affine")) {
            if (!cur) die("--no-affine must follow --op");
            cur->affine = 0;
        } else if (!strcmp(a, "--no-stats")) {
            if (!cur) die("--no-stats must follow --op");
            cur->save_stats = 0;
        } else if (!strcmp(a, "--filter")) {
            NEED_ARG();
            if (n_filters == 64) die("too many --filter");
            filters[n_filters++] = argv[++i];
        } else if (!strcmp(a, "--reps")) {
            NEED_ARG();
            o.reps = (int)parse_long(a, argv[++i], 1);
            reps_set = 1;
        } else if (!strcmp(a, "--warmup")) {
            NEED_ARG();
            o.warmup = (int)parse_long(a, argv[++i], 0);
        } else if (!strcmp(a, "--variant")) {
            NEED_ARG();
            if (parse_variant(argv[++i], &o.variant, &o.wg) != 0)
                die("bad variant '%s' (%s[:WG])", argv[i], variant_list("|"));
            o.variant_set = 1;
        } else if (!strcmp(a, "--wg")) {
            NEED_ARG();
            o.wg = (size_t)parse_long(a, argv[++i], 1);
        } else if (!strcmp(a, "--copy-elems")) {
            NEED_ARG();
            o.copy_elems = (size_t)parse_long(a, argv[++i], 4);
        } else if (!strcmp(a, "--warm-cache")) {
            o.warm_cache = 1;
            cache_mode = "warm";
        } else if (!strcmp(a, "--copy-method")) {
            NEED_ARG();
            o.copy_method = argv[++i];
            if (!strcmp(o.copy_method, "auto")) o.copy_method = NULL;
            else if (copy_method_index(o.copy_method) < 0) {
                fprintf(stderr, "%s: unknown copy method '%s'; one of: auto", prog, o.copy_method);
                for (int m = 0; m < N_COPY_METHODS; m++) fprintf(stderr, " %s", copy_methods[m].name);
                fputc('\n', stderr);
                return 2;
            }
        } else if (!strcmp(a, "--copy-once")) {
            o.copy_once = 1;
        } else if (!strcmp(a, "--no-gate")) {
            o.no_gate = 1;
        } else if (!strcmp(a, "--check")) {
            o.check = 1;
        } else if (!strcmp(a, "--wall")) {
            o.timing_wall = 1;
        } else if (!strcmp(a, "--json")) {
            o.json = 1;
        } else if (!strcmp(a, "--csv")) {
            if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) o.csv_file = argv[++i];
            else o.csv_stdout = 1;
        } else if (!strncmp(a, "--csv=", 6)) {
            o.csv_file = a + 6;
        } else if (!strcmp(a, "--csv-dir")) {
            NEED_ARG();
            o.csv_dir = argv[++i];
        } else if (!strcmp(a, "--suite-json")) {
            o.suite_json = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o.quiet = 1;
        } else if (!strcmp(a, "--tune")) {
            NEED_ARG();
            tune_path = argv[++i];
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
            usage(stderr);
            return 2;
        }
    }
    if (o.wg && !o.variant_set) {
        o.variant_set = 1;
        o.variant = CLNORM_VARIANT_AUTO;
    }
    if (o.json && o.csv_stdout) die("--json and --csv without a file both write stdout; pick one");
    if (tune_path) {
        if (o.variant_set) die("--tune measures every variant; drop --variant/--wg");
        if (o.json || o.csv_stdout || o.csv_file || o.csv_dir) die("--tune prints its own table; drop --json/--csv");
        if (!reps_set) o.reps = 5; /* per candidate, paired with the rules: ~60 runs per case */
    } else if (o.reps < 10 && !o.quiet) fprintf(stderr, "%s: note: --reps %d is below the suite's minimum of 10\n", prog, o.reps);

    char err[256];
    if (o.n_cases == 0) {
        for (size_t i = 0; i < bench_suite_count; i++) {
            char label[160];
            bench_case_label(&bench_suite[i], label, sizeof label);
            int keep = n_filters == 0;
            for (int f = 0; f < n_filters && !keep; f++) keep = ci_contains(label, filters[f]);
            if (keep) o.cases[o.n_cases++] = bench_suite[i];
        }
        if (o.n_cases == 0) die("--filter matches no suite case");
    } else {
        for (size_t i = 0; i < o.n_cases; i++) {
            if (bench_case_check(&o.cases[i], err, sizeof err) != 0)
                die("case %zu (%s): %s", i + 1, bench_op_name(&o.cases[i]), err);
        }
    }

    if (o.suite_json) {
        for (size_t i = 0; i < o.n_cases; i++) {
            const bench_case *c = &o.cases[i];
            char label[160];
            bench_case_label(c, label, sizeof label);
            printf("{\"op\":\"%s\",\"layout\":\"%s\",\"shape\":[", bench_op_name(c), bench_layout_name(c));
            for (unsigned k = 0; k < c->ndim; k++) printf("%s%zu", k ? "," : "", c->shape[k]);
            printf("],\"groups\":%zu,\"training\":%d,\"affine\":%d,\"save_stats\":%d,\"label\":", c->groups,
                   c->training, c->affine, c->save_stats);
            json_string(stdout, label);
            printf(",\"bytes\":%.0f}\n", bench_case_bytes(c));
        }
        return 0;
    }

    if (o.quiet) progress_quiet = 1;
    static devinfo devs[MAX_DEVICES];
    int ndev = list_devices(devs, MAX_DEVICES);
    if (o.list) {
        if (ndev == 0) {
            fprintf(stderr, "%s: no OpenCL platform or device found\n", prog);
            return 1;
        }
        print_devices(devs, ndev);
        return 0;
    }
    if (ndev == 0) die("no OpenCL platform or device found");

    int chosen[MAX_DEVICES], nchosen = 0;
    if (o.all_devices) {
        for (int i = 0; i < ndev; i++) chosen[nchosen++] = i;
    } else if (o.n_device_sel) {
        for (int s = 0; s < o.n_device_sel; s++) {
            int k = find_device(devs, ndev, o.device_sel[s]);
            if (k < 0) {
                fprintf(stderr, "%s: --device '%s' matches no device; available:\n", prog, o.device_sel[s]);
                print_devices(devs, ndev);
                return 2;
            }
            chosen[nchosen++] = k;
        }
    } else {
        clnorm_ctx *cx = NULL;
        clnorm_status st = clnorm_create_default(&cx);
        if (st != CLNORM_OK) {
            const char *tf = st == CLNORM_ERR_TUNING_FILE ? getenv("CLNORM_TUNING") : NULL;
            fprintf(stderr, "%s: clnorm_create_default: %s (%s)%s%s%s%s\n", prog, clnorm_status_name(st),
                    clnorm_status_string(st), getenv("CLNORM_DEVICE") ? "; CLNORM_DEVICE=" : "",
                    getenv("CLNORM_DEVICE") ? getenv("CLNORM_DEVICE") : "", tf ? "; CLNORM_TUNING=" : "",
                    tf ? tf : "");
            return 1;
        }
        cl_device_id id = clnorm_device(cx);
        clnorm_destroy(cx);
        for (int i = 0; i < ndev; i++)
            if (devs[i].device == id) chosen[nchosen++] = i;
        if (nchosen == 0) die("the library's default device is not in the platform list");
    }

    FILE *csv = NULL;
    if (o.csv_file) {
        csv = fopen(o.csv_file, "w");
        if (!csv) die("cannot write %s: %s", o.csv_file, strerror(errno));
        fputs(CSV_HEADER, csv);
    }
    if (o.csv_stdout) fputs(CSV_HEADER, stdout);
    if (tune_path) {
        o.tune = fopen(tune_path, "w");
        if (!o.tune) die("cannot write %s: %s", tune_path, strerror(errno));
        fputs(CLNORM_TUNING_HEADER "\n# written by clnorm-bench --tune; read through CLNORM_TUNING=<this file>"
              " or\n# clnorm_set_tuning(); fields: device, key (clnorm_tuning_key), variant, work-group size\n",
              o.tune);
    }
    int rc = 0;
    for (int i = 0; i < nchosen; i++) rc |= run_device(&o, &devs[chosen[i]], csv);
    if (o.tune) {
        if (fclose(o.tune) != 0) {
            fprintf(stderr, "%s: writing %s failed\n", prog, tune_path);
            rc = 1;
        } else {
            fprintf(stderr, "%s: wrote %s; use it with CLNORM_TUNING=%s\n", prog, tune_path, tune_path);
        }
    }
    if (csv && fclose(csv) != 0) {
        fprintf(stderr, "%s: writing %s failed\n", prog, o.csv_file);
        rc = 1;
    }
    return rc;
}
