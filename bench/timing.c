/* clnorm-bench's timing: see bench.h, and clnorm-bench.c for the method. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *cl_err_name(cl_int e) { return clnorm_status_name((int)e); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One gated run of fn(arg). Returns seconds, or < 0 with r->err set. */
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

int run_wait(enqueue_fn fn, void *arg, char *err, size_t errlen) {
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
 * come from the same stretch of time, whatever else the machine does. */
static double min_of(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

int measure(runner *r, enqueue_fn fn, void *arg, enqueue_fn pair_fn, void *pair_arg, int warmup, int reps,
            timing *out) {
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
    out->min_ms = min_of(t, reps);
    out->med_ms = median(t, reps);
    out->pair_min = pair_fn ? min_of(tp, reps) : 0;
    out->pair_med = pair_fn ? median(tp, reps) : 0;
    out->own_med = nown == reps ? median(town, nown) : -1;
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

int enqueue_copy(void *p, cl_event *done, char *err, size_t errlen) {
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
const copy_method copy_methods[] = {
    {"copy_buffer", 0, 0, "clEnqueueCopyBuffer"},
    {"copy4", 4, 1, "float4 kernel, one vector per work-item"},
    {"copy4_stride", 4, 4, "float4 kernel, grid-stride, 4 vectors per work-item"},
    {"copy1", 1, 1, "float kernel, one per work-item"},
    {"copy8", 8, 1, "float8 kernel, one vector per work-item"},
    {"copy16", 16, 1, "float16 kernel, one vector per work-item"},
};
const int n_copy_methods = (int)(sizeof copy_methods / sizeof copy_methods[0]);
_Static_assert(sizeof copy_methods / sizeof copy_methods[0] <= MAX_COPY_METHODS, "MAX_COPY_METHODS too small");
#define N_COPY_METHODS n_copy_methods

int copy_method_index(const char *name) {
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
    int alive[MAX_COPY_METHODS];
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
    copy_arg ca[MAX_COPY_METHODS];
    int ok[MAX_COPY_METHODS], best = -1, fixed = forced ? copy_method_index(forced) : -1;
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


int enqueue_op(void *p, cl_event *done, char *err, size_t errlen) {
    op_arg *a = p;
    const char *fn = a->backward ? "clnorm_backward" : "clnorm_forward";
    clnorm_status s =
        a->backward ? clnorm_backward(a->cx, a->d, 0, NULL, done) : clnorm_forward(a->cx, a->d, 0, NULL, done);
    if (s != CLNORM_OK) {
        snprintf(err, errlen, "%s: %s (%s): %s", fn, clnorm_status_name(s), clnorm_status_string(s),
                 clnorm_last_error(a->cx));
        if (s == CLNORM_ERR_BUILD_FAILED && clnorm_build_log(a->cx))
            fprintf(stderr, "build log:\n%s\n", clnorm_build_log(a->cx));
        return -1;
    }
    if (!*done) {
        snprintf(err, errlen, "%s returned no event", fn);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ setup and the copy reference */

cl_int timing_setup(runner *r, const devinfo *dev, int warm_cache, cl_program *prog, cl_mem *scratch) {
    cl_int e;
    *scratch = NULL;
    *prog = clCreateProgramWithSource(r->ctx, 1, (const char *[]){COPY_SRC}, NULL, &e);
    if (e == CL_SUCCESS) e = clBuildProgram(*prog, 1, &dev->device, "", NULL, NULL);
    if (e == CL_SUCCESS) r->stamp = clCreateKernel(*prog, "stamp", &e);
    if (e != CL_SUCCESS || warm_cache) return e;
    size_t scrub_bytes = (size_t)256 << 20;
    if (dev->cache * 8 > scrub_bytes) scrub_bytes = (size_t)(dev->cache * 8);
    if (dev->global_mem && scrub_bytes > dev->global_mem / 8) scrub_bytes = (size_t)(dev->global_mem / 8);
    scrub_bytes &= ~(size_t)15;
    float v = 0.5f;
    *scratch = clCreateBuffer(r->ctx, CL_MEM_READ_WRITE, scrub_bytes, NULL, &e);
    if (e == CL_SUCCESS) r->scrub = clCreateKernel(*prog, "scrub4", &e);
    if (e == CL_SUCCESS) e = clSetKernelArg(r->scrub, 0, sizeof(cl_mem), scratch);
    if (e == CL_SUCCESS) e = clSetKernelArg(r->scrub, 1, sizeof(float), &v);
    r->scrub_global = scrub_bytes / 16;
    return e;
}

void timing_release(runner *r, cl_program prog, cl_mem scratch) {
    if (r->scrub) clReleaseKernel(r->scrub);
    if (r->stamp) clReleaseKernel(r->stamp);
    r->scrub = r->stamp = NULL;
    if (scratch) clReleaseMemObject(scratch);
    if (prog) clReleaseProgram(prog);
}

double copy_gbps_of(const copy_ref *c, double ms) { return 2.0 * c->elems * sizeof(float) / (ms * 1e-3) / 1e9; }

/* The streaming-store copy's GB/s, where the compiler has such stores; 0 otherwise. */
static double stream_copy_gbps(runner *r, const options *o, const devinfo *dev, const copy_ref *c, cl_mem src,
                               cl_mem dst) {
    cl_int es;
    cl_program ps = clCreateProgramWithSource(r->ctx, 1, (const char *[]){COPY_STREAM_SRC}, NULL, &es);
    cl_kernel ks = NULL;
    if (es == CL_SUCCESS) es = clBuildProgram(ps, 1, &dev->device, "", NULL, NULL);
    if (es == CL_SUCCESS) ks = clCreateKernel(ps, "copy4_stream", &es);
    if (es == CL_SUCCESS) es = clSetKernelArg(ks, 0, sizeof(cl_mem), &src);
    if (es == CL_SUCCESS) es = clSetKernelArg(ks, 1, sizeof(cl_mem), &dst);
    double gbps = 0;
    timing t;
    copy_arg cs = {.q = r->q, .k = ks, .global = c->elems / 4};
    if (es == CL_SUCCESS && measure(r, enqueue_copy, &cs, NULL, NULL, o->warmup, o->reps, &t) == 0)
        gbps = copy_gbps_of(c, t.med_ms);
    if (ks) clReleaseKernel(ks);
    if (ps) clReleaseProgram(ps);
    return gbps;
}

int copy_ref_measure(copy_ref *c, runner *r, const options *o, const devinfo *dev, cl_program prog, cl_mem src,
                     cl_mem dst) {
    progress("%s: %s (%.0f MiB)", dev->name, o->copy_method ? "copy bandwidth" : "choosing the copy method",
             c->elems * 4.0 / (1 << 20));
    c->method = choose_copy_method(r, o->copy_method, o->warmup, o->reps, prog, src, dst, c->elems, &c->arg,
                                   c->method_gbps);
    if (c->method < 0) return -1;
    progress("%s: copy bandwidth (%s, %.0f MiB)", dev->name, copy_methods[c->method].name,
             c->elems * 4.0 / (1 << 20));
    if (measure(r, enqueue_copy, &c->arg, NULL, NULL, o->warmup, o->reps, &c->t) != 0) return -1;
    c->gbps = copy_gbps_of(c, c->t.med_ms);
    c->stream_gbps = stream_copy_gbps(r, o, dev, c, src, dst);
    return 0;
}

void copy_ref_again(copy_ref *c, runner *r, const options *o) {
    timing t;
    c->end_gbps = measure(r, enqueue_copy, &c->arg, NULL, NULL, 1, o->reps, &t) == 0 ? copy_gbps_of(c, t.med_ms) : 0;
}

void copy_ref_release(copy_ref *c) { copy_arg_release(&c->arg); }
