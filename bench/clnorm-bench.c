/*
 * clnorm-bench: throughput of every norm on every OpenCL device, as effective
 * GB/s and as a ratio to the same run's copy bandwidth: the fastest of
 * clEnqueueCopyBuffer and a few copy kernels, chosen once per device in a
 * short calibration (choose_copy_method).
 *
 * Directions (issue 16): each case runs forward and then backward
 * (--direction). A backward row times clnorm_backward of the same
 * descriptor with dy, dx and, for an affine case, dscale and dbias
 * (PyTorch's output_mask); one untimed forward first writes the saved
 * statistics it reads. Its effective bytes are the case model's (x and dy
 * read, dx written, parameters, statistics and gradients once: 3x the
 * tensor, the Triton tutorial's and Liger's model), its ratio against the
 * same interleaved copies as a forward row.
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
 *
 * This file: main, the devices, and the run on one device in named steps
 * (open, buffers, timing setup, the copy reference, the cases or the tuner,
 * the report); bench.h lists the other files, one per concern.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ devices */

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

const char *type_name(cl_device_type t) {
    if (t & CL_DEVICE_TYPE_GPU) return "GPU";
    if (t & CL_DEVICE_TYPE_CPU) return "CPU";
    if (t & CL_DEVICE_TYPE_ACCELERATOR) return "ACC";
    return "other";
}

int ci_contains(const char *hay, const char *needle) {
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

/* ------------------------------------------------------------------ data and --check */

/* The data: uniform in each role's range, from the harness's RNG
 * (tests/common.h), stored in the type the case reads the role in (float32,
 * or a 16-bit case's float16/bfloat16 for x, y, dy, dx, scale and bias:
 * th_case_elem_sizes). One buffer per role serves every case: it is sized
 * for float32 elements, and refilled in another type when a case reads that
 * role in another type than the data it holds (the suite keeps each type's
 * rows together, so that happens once per type). */
static th_rng data_rng;

static const float role_lo[TH_ROLES] = {[TH_X] = -2.0f, [TH_Y] = -1.0f, [TH_SCALE] = 0.5f, [TH_BIAS] = -0.5f,
                                        [TH_MEAN] = -1.0f, [TH_RSTD] = 0.5f, [TH_RUNNING_MEAN] = -0.5f,
                                        [TH_RUNNING_VAR] = 0.5f, [TH_DY] = -1.0f, [TH_DX] = -1.0f,
                                        [TH_DSCALE] = -1.0f, [TH_DBIAS] = -1.0f};
static const float role_hi[TH_ROLES] = {[TH_X] = 3.0f, [TH_Y] = 1.0f, [TH_SCALE] = 1.5f, [TH_BIAS] = 0.5f,
                                        [TH_MEAN] = 1.0f, [TH_RSTD] = 1.5f, [TH_RUNNING_MEAN] = 0.5f,
                                        [TH_RUNNING_VAR] = 2.0f, [TH_DY] = 1.0f, [TH_DX] = 1.0f,
                                        [TH_DSCALE] = 1.0f, [TH_DBIAS] = 1.0f};

/* The buffers' data: what each role's buffer holds (set by alloc_buffers). */
static struct {
    cl_command_queue q;
    cl_mem *mem;
    size_t elems[TH_ROLES];
    clnorm_dtype type[TH_ROLES];
} data;

/* The storage type of role r in case c. */
static clnorm_dtype role_type(const th_case *c, int r) {
    if (r == TH_X || r == TH_Y || r == TH_DY || r == TH_DX) return c->dtype;
    if (r == TH_SCALE || r == TH_BIAS) return c->param_dtype;
    return CLNORM_FLOAT32;
}

/* Fills elems elements of type t of m with uniform [lo, hi) data, in chunks
 * so that host memory stays small. 0, or -1 with err set. */
static int fill_buffer(cl_command_queue q, cl_mem m, size_t elems, clnorm_dtype t, float lo, float hi, char *err,
                       size_t errlen) {
    const size_t chunk = (size_t)1 << 22, es = clnorm_dtype_size(t);
    float *h = malloc(chunk * sizeof(float));
    uint16_t *h16 = es == 2 ? malloc(chunk * sizeof(uint16_t)) : NULL;
    if (!h || (es == 2 && !h16)) {
        free(h);
        snprintf(err, errlen, "out of host memory");
        return -1;
    }
    int rc = 0;
    for (size_t off = 0; off < elems && rc == 0; off += chunk) {
        size_t n = elems - off < chunk ? elems - off : chunk;
        th_fill_uniform(&data_rng, h, n, lo, hi);
        if (h16)
            for (size_t i = 0; i < n; i++) h16[i] = th_to16(t, h[i]);
        cl_int e = clEnqueueWriteBuffer(q, m, CL_TRUE, off * es, n * es, h16 ? (void *)h16 : (void *)h, 0, NULL, NULL);
        if (e != CL_SUCCESS) {
            snprintf(err, errlen, "clEnqueueWriteBuffer: %s", cl_err_name(e));
            rc = -1;
        }
    }
    free(h);
    free(h16);
    return rc;
}

static cl_mem make_buffer(cl_context ctx, cl_command_queue q, size_t elems, float lo, float hi, char *err,
                          size_t errlen) {
    cl_int e;
    size_t bytes = (elems ? elems : 1) * sizeof(float); /* the widest type */
    cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &e);
    if (e != CL_SUCCESS) {
        snprintf(err, errlen, "clCreateBuffer(%zu bytes): %s", bytes, cl_err_name(e));
        return NULL;
    }
    if (fill_buffer(q, m, elems, CLNORM_FLOAT32, lo, hi, err, errlen) != 0) {
        clReleaseMemObject(m);
        return NULL;
    }
    return m;
}

/* The buffers of case c hold data of the types c reads them in (refilled
 * where they do not). 0, or -1 with err set. */
static int data_for(const th_case *c, char *err, size_t errlen) {
    if (!data.mem) return 0;
    th_case fwd = *c; /* a backward case runs its forward on the same buffers */
    fwd.backward = 0;
    size_t el[TH_ROLES], elf[TH_ROLES];
    th_case_buffer_elems(c, el);
    th_case_buffer_elems(&fwd, elf);
    for (int k = 0; k < TH_ROLES; k++) {
        const clnorm_dtype t = role_type(c, k);
        if ((!el[k] && !elf[k]) || !data.mem[k] || data.type[k] == t) continue;
        progress("refilling %s with %s data", th_role_name(k), th_dtype_name(t));
        if (fill_buffer(data.q, data.mem[k], data.elems[k], t, role_lo[k], role_hi[k], err, errlen) != 0) return -1;
        data.type[k] = t;
    }
    return 0;
}

/* ------------------------------------------------------------------ --check */

/* elems elements of type t of m, widened to float in *out. */
static int read_back(cl_command_queue q, cl_mem m, size_t elems, clnorm_dtype t, float **out, char *err,
                     size_t errlen) {
    const size_t es = clnorm_dtype_size(t);
    *out = malloc((elems ? elems : 1) * sizeof(float));
    if (!*out) {
        snprintf(err, errlen, "out of host memory");
        return -1;
    }
    cl_int e = clEnqueueReadBuffer(q, m, CL_TRUE, 0, elems * es, *out, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        snprintf(err, errlen, "clEnqueueReadBuffer: %s", cl_err_name(e));
        return -1;
    }
    if (es == 2) { /* in place, from the end: element i's 2 bytes lie below float i */
        const uint16_t *h = (const uint16_t *)(void *)*out;
        for (size_t i = elems; i-- > 0;) {
            uint16_t v;
            memcpy(&v, (const char *)h + 2 * i, 2);
            (*out)[i] = th_from16(t, v);
        }
    }
    return 0;
}

/* Compares y and the saved statistics (a backward case: dx, dscale and
 * dbias), every element, with the project's double-precision reference
 * (tests/reference.c) under the tests' tolerance model (tests/compare.c;
 * a 16-bit case's y or dx read back widened, against the reference on the
 * widened inputs with th_storage_tol's half ulp of the type on top). Running statistics are not compared: the timed
 * runs have updated them many times; inference reads them as they are. A
 * sanity check of the timed kernels, not the precision tests (those are in
 * tests/). 0 = agrees; -1 = error/mismatch. */
static int check_case(cl_command_queue q, const th_case *c, const clnorm_desc *d, cl_mem mem[TH_ROLES],
                      char *err, size_t errlen) {
    size_t el[TH_ROLES];
    th_case_buffer_elems(c, el);
    float *h[TH_ROLES] = {0};
    int rc = 0;
    for (int k = 0; k < TH_ROLES && rc == 0; k++)
        if (el[k]) rc = read_back(q, mem[k], el[k], role_type(c, k), &h[k], err, errlen);
    if (rc == 0 && c->backward) {
        /* dx, dscale, dbias against ref_backward from the same x, dy, scale
         * and the statistics the backward read (tests/compare.c's backward
         * tolerances) */
        th_bwd_inputs in = {h[TH_X], h[TH_DY], h[TH_SCALE], h[TH_MEAN], h[TH_RSTD], h[TH_RUNNING_MEAN],
                            h[TH_RUNNING_VAR]};
        th_bwd_outputs got = {h[TH_DX], h[TH_DSCALE], h[TH_DBIAS]};
        if (th_compare_bwd_why(d, &in, &got, 1.0, err, errlen) != 0) rc = -1;
    } else if (rc == 0) {
        const int running = th_uses_running(d, h[TH_RUNNING_MEAN] != NULL);
        th_inputs in = {h[TH_X], h[TH_SCALE], h[TH_BIAS], running ? h[TH_RUNNING_MEAN] : NULL,
                        running ? h[TH_RUNNING_VAR] : NULL};
        th_outputs got = {h[TH_Y], h[TH_MEAN], h[TH_RSTD], NULL, NULL};
        if (th_compare_why(d, &in, &got, 1.0, err, errlen) != 0) rc = -1;
    }
    for (int k = 0; k < TH_ROLES; k++) free(h[k]);
    return rc;
}

/* One more run of the case under cx's settings, then check_case: timed
 * runs leave y overwritten by the paired runs. 0 = agrees. */
int run_and_check(cl_command_queue q, op_arg *oa, const th_case *c, cl_mem mem[TH_ROLES], char *err,
                         size_t errlen) {
    if (run_wait(enqueue_op, oa, err, errlen) != 0) return -1;
    return check_case(q, c, oa->d, mem, err, errlen);
}

int case_desc_on(const th_case *c, cl_mem mem[TH_ROLES], clnorm_desc *d) {
    char err[256];
    if (th_case_desc(c, d) != 0) return -1;
    if (mem == data.mem && data_for(c, err, sizeof err) != 0) {
        progress_done();
        fprintf(stderr, "%s: %s\n", prog, err);
        return -1;
    }
    size_t el[TH_ROLES];
    th_case_buffer_elems(c, el);
    for (int k = 0; k < TH_ROLES; k++)
        if (el[k]) *th_desc_buf(d, k) = (clnorm_buf){mem[k], 0};
    return 0;
}

/* ------------------------------------------------------------------ one device */

/* Everything a run on one device holds. */
typedef struct device_run {
    const options *o;
    const devinfo *dev;
    runner r;
    clnorm_ctx *cx;
    cl_mem mem[TH_ROLES];
    cl_program prog_copy;
    cl_mem scratch;
    copy_ref copy;
    char vbuf[64];
    const char *vlabel;
} device_run;

/* Step 1: an OpenCL context and profiling queue on the device, and a clnorm
 * context on that queue with the variant asked for. 0 or -1. */
static int open_device(device_run *dr) {
    cl_int e;
    const devinfo *dev = dr->dev;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)dev->platform, 0};
    dr->r.mode = dr->o->timing_wall ? TIME_WALL : TIME_EVENTS;
    dr->r.gate = !dr->o->no_gate;
    dr->r.ctx = clCreateContext(props, 1, &dev->device, NULL, NULL, &e);
    if (e != CL_SUCCESS) {
        fprintf(stderr, "%s: %s: clCreateContext: %s\n", prog, dev->name, cl_err_name(e));
        return -1;
    }
    dr->r.q = clCreateCommandQueue(dr->r.ctx, dev->device, CL_QUEUE_PROFILING_ENABLE, &e);
    if (e != CL_SUCCESS) {
        fprintf(stderr, "%s: %s: clCreateCommandQueue: %s\n", prog, dev->name, cl_err_name(e));
        return -1;
    }
    clnorm_status st = clnorm_create_from_queue(dr->r.q, &dr->cx);
    if (st != CLNORM_OK) {
        fprintf(stderr, "%s: %s: clnorm_create_from_queue: %s (%s)\n", prog, dev->name, clnorm_status_name(st),
                clnorm_status_string(st));
        return -1;
    }
    dr->vlabel = variant_label(dr->o, dr->vbuf, sizeof dr->vbuf);
    if (dr->o->variant_set && (st = clnorm_set_variant(dr->cx, dr->o->variant, dr->o->wg)) != CLNORM_OK) {
        fprintf(stderr, "%s: clnorm_set_variant(%s, %zu): %s: %s\n", prog, clnorm_variant_name(dr->o->variant),
                dr->o->wg, clnorm_status_name(st), clnorm_last_error(dr->cx));
        return -1;
    }
    return 0;
}

/* The copy's length: --copy-elems, or the standard suite's largest x. */
static size_t copy_elems_of(const options *o) {
    size_t n = o->copy_elems;
    for (size_t i = 0; !o->copy_elems && i < th_suite_count; i++) {
        size_t e = th_case_elements(&th_suite[i]);
        n = e > n ? e : n;
    }
    return (n + COPY_ELEMS_MULTIPLE - 1) / COPY_ELEMS_MULTIPLE * COPY_ELEMS_MULTIPLE;
}

/* Step 2: one buffer per role, sized to the largest case (x and y to the
 * copy too) and, for a backward case, to its forward too (run first for the
 * statistics), filled once with random data. 0 or -1. */
static int alloc_buffers(device_run *dr) {
    const options *o = dr->o;
    size_t need[TH_ROLES] = {0};
    for (size_t i = 0; i < o->n_cases; i++) {
        th_case fwd = o->cases[i];
        fwd.backward = 0;
        size_t el[TH_ROLES], elf[TH_ROLES];
        th_case_buffer_elems(&o->cases[i], el);
        th_case_buffer_elems(&fwd, elf);
        for (int k = 0; k < TH_ROLES; k++) {
            need[k] = el[k] > need[k] ? el[k] : need[k];
            need[k] = elf[k] > need[k] ? elf[k] : need[k];
        }
    }
    dr->copy.elems = copy_elems_of(o);
    if (need[TH_X] < dr->copy.elems) need[TH_X] = dr->copy.elems;
    if (need[TH_Y] < dr->copy.elems) need[TH_Y] = dr->copy.elems;
    char err[2048];
    size_t total = 0;
    for (int k = 0; k < TH_ROLES; k++) total += need[k];
    progress("%s: allocating and filling %.0f MiB of random data", dr->dev->name, (double)total * 4.0 / (1 << 20));
    for (int k = 0; k < TH_ROLES; k++) {
        if (!need[k]) continue;
        dr->mem[k] = make_buffer(dr->r.ctx, dr->r.q, need[k], role_lo[k], role_hi[k], err, sizeof err);
        if (!dr->mem[k]) {
            progress_done();
            fprintf(stderr, "%s: %s: %s buffer: %s\n", prog, dr->dev->name, th_role_name(k), err);
            return -1;
        }
        data.elems[k] = need[k];
        data.type[k] = CLNORM_FLOAT32;
    }
    data.q = dr->r.q;
    data.mem = dr->mem;
    return 0;
}

/* A backward case's forward, once and untimed, so that the saved mean and
 * rstd the backward reads are those of this x (with the running statistics
 * it only writes y). 0, or -1 with err set. */
static int run_forward_of(device_run *dr, const th_case *c, char *err, size_t errlen) {
    th_case fwd = *c;
    fwd.backward = 0;
    clnorm_desc d;
    if (case_desc_on(&fwd, dr->mem, &d) != 0) {
        snprintf(err, errlen, "bad forward case");
        return -1;
    }
    op_arg oa = {dr->cx, &d, 0};
    return run_wait(enqueue_op, &oa, err, errlen);
}

/* One case, timed paired with the copy (or against the first copy with
 * --copy-once), then --check. A backward case runs its forward first,
 * outside the timed runs. 0, or -1 (reported) with rs->ok 0. */
static int run_case(device_run *dr, result *rs, size_t i) {
    const options *o = dr->o;
    const copy_ref *cr = &dr->copy;
    char label[160], cerr[512];
    th_case_label(&rs->c, label, sizeof label);
    progress("%s: [%zu/%zu] %s", dr->dev->name, i + 1, o->n_cases, label);
    clnorm_desc d;
    if (case_desc_on(&rs->c, dr->mem, &d) != 0) {
        progress_done();
        fprintf(stderr, "%s: %s: bad case\n", prog, label);
        return -1;
    }
    op_arg oa = {dr->cx, &d, rs->c.backward};
    if (rs->c.backward && run_forward_of(dr, &rs->c, cerr, sizeof cerr) != 0) {
        progress_done();
        fprintf(stderr, "%s: %s: %s: the forward for the statistics: %s\n", prog, dr->dev->name, label, cerr);
        return -1;
    }
    timing t;
    if (measure(&dr->r, enqueue_op, &oa, o->copy_once ? NULL : enqueue_copy, (void *)&cr->arg, o->warmup, o->reps,
                &t) != 0) {
        progress_done();
        fprintf(stderr, "%s: %s: %s: %s\n", prog, dr->dev->name, label, dr->r.err);
        return -1;
    }
    rs->median_ms = t.med_ms, rs->min_ms = t.min_ms;
    rs->bytes = th_case_bytes(&rs->c);
    rs->gbps = rs->bytes / (rs->median_ms * 1e-3) / 1e9;
    rs->copy_gbps = o->copy_once ? cr->gbps : copy_gbps_of(cr, t.pair_med);
    rs->ratio = rs->gbps / rs->copy_gbps;
    rs->ratio_min = rs->bytes / (rs->min_ms * 1e-3) / 1e9 / copy_gbps_of(cr, o->copy_once ? cr->t.min_ms : t.pair_min);
    rs->copy_stream_gbps = cr->stream_gbps;
    rs->copy_method = copy_methods[cr->method].name;
    if (o->check && run_and_check(dr->r.q, &oa, &rs->c, dr->mem, cerr, sizeof cerr) != 0) {
        progress_done();
        fprintf(stderr, "%s: %s: %s: CHECK FAILED: %s\n", prog, dr->dev->name, label, cerr);
        return -1;
    }
    rs->ok = 1;
    return 0;
}

/* Step 4: the copy reference, every case, the copy again, the report.
 * Returns the number of failures. */
static int bench_device(device_run *dr, FILE *csv) {
    const options *o = dr->o;
    if (copy_ref_measure(&dr->copy, &dr->r, o, dr->dev, dr->prog_copy, dr->mem[TH_X], dr->mem[TH_Y]) != 0) {
        progress_done();
        fprintf(stderr, "%s: %s: copy bandwidth: %s\n", prog, dr->dev->name, dr->r.err);
        return 1;
    }
    device_report rep = {o, dr->dev, &dr->r, &dr->copy, dr->vlabel, csv};
    result *res = calloc(o->n_cases, sizeof *res);
    if (!res) die("out of host memory");
    int failures = 0;
    for (size_t i = 0; i < o->n_cases; i++) {
        res[i].c = o->cases[i];
        if (run_case(dr, &res[i], i) != 0) failures++;
        else report_row(&rep, &res[i]);
    }
    progress("%s: copy bandwidth again", dr->dev->name);
    copy_ref_again(&dr->copy, &dr->r, o);
    progress_done();
    failures += report_device(&rep, res, o->n_cases);
    free(res);
    return failures;
}

static void close_device(device_run *dr) {
    memset(&data, 0, sizeof data);
    copy_ref_release(&dr->copy);
    timing_release(&dr->r, dr->prog_copy, dr->scratch);
    for (int k = 0; k < TH_ROLES; k++)
        if (dr->mem[k]) clReleaseMemObject(dr->mem[k]);
    clnorm_destroy(dr->cx);
    if (dr->r.q) clReleaseCommandQueue(dr->r.q);
    if (dr->r.ctx) clReleaseContext(dr->r.ctx);
}

static int run_device(const options *o, const devinfo *dev, FILE *csv) {
    device_run dr = {.o = o, .dev = dev};
    int failures = open_device(&dr) != 0 || alloc_buffers(&dr) != 0;
    if (!failures) { /* step 3 */
        cl_int e = timing_setup(&dr.r, dev, o->warm_cache, &dr.prog_copy, &dr.scratch);
        if (e != CL_SUCCESS) {
            progress_done();
            fprintf(stderr, "%s: %s: copy kernel: %s\n", prog, dev->name, cl_err_name(e));
            failures = 1;
        }
    }
    if (!failures)
        failures = o->tune ? tune_device(o, &dr.r, dev, dr.cx, dr.mem) : bench_device(&dr, csv);
    close_device(&dr);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ main */

/* The devices to run on: --all-devices, --device, or the library's default.
 * Returns how many (in chosen), or -1 with the exit status in *rc. */
static int choose_devices(const options *o, const devinfo *devs, int ndev, int *chosen, int *rc) {
    int n = 0;
    if (o->all_devices) {
        for (int i = 0; i < ndev; i++) chosen[n++] = i;
        return n;
    }
    for (int s = 0; s < o->n_device_sel; s++) {
        int k = find_device(devs, ndev, o->device_sel[s]);
        if (k < 0) {
            fprintf(stderr, "%s: --device '%s' matches no device; available:\n", prog, o->device_sel[s]);
            print_devices(devs, ndev);
            *rc = 2;
            return -1;
        }
        chosen[n++] = k;
    }
    if (o->n_device_sel) return n;
    clnorm_ctx *cx = NULL;
    clnorm_status st = clnorm_create_default(&cx);
    if (st != CLNORM_OK) {
        const char *tf = st == CLNORM_ERR_TUNING_FILE ? getenv("CLNORM_TUNING") : NULL;
        fprintf(stderr, "%s: clnorm_create_default: %s (%s)%s%s%s%s\n", prog, clnorm_status_name(st),
                clnorm_status_string(st), getenv("CLNORM_DEVICE") ? "; CLNORM_DEVICE=" : "",
                getenv("CLNORM_DEVICE") ? getenv("CLNORM_DEVICE") : "", tf ? "; CLNORM_TUNING=" : "", tf ? tf : "");
        *rc = 1;
        return -1;
    }
    cl_device_id id = clnorm_device(cx);
    clnorm_destroy(cx);
    for (int i = 0; i < ndev; i++)
        if (devs[i].device == id) chosen[n++] = i;
    if (n == 0) die("the library's default device is not in the platform list");
    return n;
}

/* The output files (--csv FILE, --tune FILE) opened, their headers written. */
static FILE *open_outputs(options *o) {
    FILE *csv = NULL;
    if (o->csv_file) {
        csv = fopen(o->csv_file, "w");
        if (!csv) die("cannot write %s: %s", o->csv_file, strerror(errno));
        fputs(CSV_HEADER, csv);
    }
    if (o->csv_stdout) fputs(CSV_HEADER, stdout);
    if (o->tune_path) {
        o->tune = fopen(o->tune_path, "w");
        if (!o->tune) die("cannot write %s: %s", o->tune_path, strerror(errno));
        tune_file_header(o->tune);
    }
    return csv;
}

static int close_outputs(const options *o, FILE *csv) {
    int rc = 0;
    if (o->tune) {
        if (fclose(o->tune) != 0) {
            fprintf(stderr, "%s: writing %s failed\n", prog, o->tune_path);
            rc = 1;
        } else {
            fprintf(stderr, "%s: wrote %s; use it with CLNORM_TUNING=%s\n", prog, o->tune_path, o->tune_path);
        }
    }
    if (csv && fclose(csv) != 0) {
        fprintf(stderr, "%s: writing %s failed\n", prog, o->csv_file);
        rc = 1;
    }
    return rc;
}

int main(int argc, char **argv) {
    static options o;
    static devinfo devs[MAX_DEVICES];
    int done, rc = parse_options(argc, argv, &o, &done), chosen[MAX_DEVICES];
    if (done) return rc;
    th_rng_init(&data_rng, 1);
    if (o.suite_json) {
        print_suite_json(&o);
        return 0;
    }
    progress_init(o.quiet);
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
    int nchosen = choose_devices(&o, devs, ndev, chosen, &rc);
    if (nchosen < 0) return rc;
    FILE *csv = open_outputs(&o);
    for (int i = 0; i < nchosen; i++) rc |= run_device(&o, &devs[chosen[i]], csv);
    return rc | close_outputs(&o, csv);
}
