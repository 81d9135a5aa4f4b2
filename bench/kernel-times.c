/*
 * Per-kernel device times for any OpenCL program, as an LD_PRELOAD library:
 *
 *   LD_PRELOAD=build/bench/libclnorm_kernel_times.so \
 *       build/bench/clnorm-bench --no-gate --op group_norm --shape 2x512x64x64 --layout nhwc --groups 32
 *
 * It wraps clEnqueueNDRangeKernel, waits for each kernel (so kernels run
 * one at a time: use it to see where an operation's time goes, not to time
 * the operation) and at exit prints, per kernel name, the count and the
 * total and mean of END - START from profiling events (the queue must have
 * profiling enabled, as clnorm-bench's has). Waiting inside the enqueue
 * would deadlock behind a user-event gate, hence --no-gate.
 *
 * KERNEL_TIMES_SEQ=1 counts consecutive launches of one kernel apart, as
 * name#0, name#1, ... (for example the N + 1 launches of col_wave).
 * KERNEL_TIMES_TRACE=FILE writes every kernel's name to FILE, one line per
 * launch, in launch order (CTest bench_outputs checks run order with it).
 */
#define _GNU_SOURCE
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAMES 64

static struct {
    char name[64];
    double ms;
    long n;
} tab[MAX_NAMES];
static int ntab;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

typedef cl_int (*enqueue_fn)(cl_command_queue, cl_kernel, cl_uint, const size_t *, const size_t *,
                             const size_t *, cl_uint, const cl_event *, cl_event *);

static void report(void)
{
    for (int i = 0; i < ntab; ++i)
        fprintf(stderr, "kernel-times: %-16s n=%6ld total %10.3f ms  mean %9.4f ms\n", tab[i].name, tab[i].n,
                tab[i].ms, tab[i].ms / (double)tab[i].n);
}

static const char *seq_name(const char *name);

static void record(const char *raw, double ms)
{
    pthread_mutex_lock(&lock);
    static FILE *trace;
    static int trace_tried;
    if (!trace_tried) {
        const char *path = getenv("KERNEL_TIMES_TRACE");
        trace_tried = 1;
        if (path && *path) trace = fopen(path, "w");
    }
    if (trace) {
        fprintf(trace, "%s\n", raw);
        fflush(trace);
    }
    const char *name = seq_name(raw);
    int i = 0;
    while (i < ntab && strcmp(tab[i].name, name) != 0) ++i;
    if (i == ntab && ntab < MAX_NAMES) {
        snprintf(tab[ntab].name, sizeof tab[ntab].name, "%s", name);
        if (ntab++ == 0) atexit(report);
    }
    if (i < ntab) tab[i].ms += ms, tab[i].n++;
    pthread_mutex_unlock(&lock);
}

/* name, or with KERNEL_TIMES_SEQ set, name#k for the k-th consecutive
 * launch of that kernel. Called under the lock. */
static const char *seq_name(const char *name)
{
    static char prev[64], out[64];
    static int run;
    if (!getenv("KERNEL_TIMES_SEQ")) return name;
    run = strcmp(prev, name) == 0 ? run + 1 : 0;
    snprintf(prev, sizeof prev, "%s", name);
    snprintf(out, sizeof out, "%.48s#%d", name, run);
    return out;
}

cl_int clEnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dims, const size_t *off,
                              const size_t *gsz, const size_t *lsz, cl_uint nwait, const cl_event *wait,
                              cl_event *event)
{
    static enqueue_fn real;
    if (!real) real = (enqueue_fn)dlsym(RTLD_NEXT, "clEnqueueNDRangeKernel");
    if (!real) return CL_INVALID_OPERATION;
    cl_event e = NULL;
    cl_int r = real(q, k, dims, off, gsz, lsz, nwait, wait, &e);
    if (r != CL_SUCCESS) return r;
    char name[64] = "?";
    clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name - 1, name, NULL);
    cl_ulong t0 = 0, t1 = 0;
    if (clWaitForEvents(1, &e) == CL_SUCCESS &&
        clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) == CL_SUCCESS &&
        clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) == CL_SUCCESS)
        record(name, (double)(t1 - t0) * 1e-6);
    if (event)
        *event = e;
    else
        clReleaseEvent(e);
    return r;
}
