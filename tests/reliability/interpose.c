/*
 * OpenCL interposer: fault injection and live-object counting. See
 * interpose.h. Linked only into the reliability test executables (which are
 * built with ENABLE_EXPORTS so these definitions take precedence over
 * libOpenCL for libclnorm.so).
 */
#define _GNU_SOURCE
#define CL_TARGET_OPENCL_VERSION 300
#define CL_USE_DEPRECATED_OPENCL_1_0_APIS
#define CL_USE_DEPRECATED_OPENCL_1_1_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_2_0_APIS
#include <CL/cl.h>
#include <CL/cl_ext.h>

#include "interpose.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

/* ---- call counting and fault injection -------------------------------- */

static unsigned long g_count[FI_KIND_COUNT];
static unsigned long g_enqueues;
static unsigned long g_enqueue_events;
static int g_armed_kind = -1;
static unsigned long g_armed_k;
static int g_armed_err;
static int g_fired;
static int g_no_platform;

static const char *const g_kind_names[] = {
#define FI_X(k, s) s,
    FI_KIND_LIST(FI_X)
#undef FI_X
};
static const char *const g_obj_names[] = {"context", "queue", "mem", "program", "kernel", "event"};

const char *fi_kind_name(fi_kind k) { return (unsigned)k < FI_KIND_COUNT ? g_kind_names[k] : "?"; }
const char *fi_obj_name(fi_obj o) { return (unsigned)o < FI_OBJ_COUNT ? g_obj_names[o] : "?"; }

void fi_reset_counts(void)
{
    for (int i = 0; i < FI_KIND_COUNT; i++)
        __atomic_store_n(&g_count[i], 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_enqueues, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_enqueue_events, 0, __ATOMIC_SEQ_CST);
}
unsigned long fi_count(fi_kind k) { return __atomic_load_n(&g_count[k], __ATOMIC_SEQ_CST); }
unsigned long fi_enqueues(void) { return __atomic_load_n(&g_enqueues, __ATOMIC_SEQ_CST); }
unsigned long fi_enqueue_events(void) { return __atomic_load_n(&g_enqueue_events, __ATOMIC_SEQ_CST); }

int fi_default_error(fi_kind kind)
{
    switch (kind) {
    case FI_CREATE_BUFFER:
    case FI_CREATE_SUB_BUFFER: return CL_MEM_OBJECT_ALLOCATION_FAILURE;
    case FI_BUILD_PROGRAM: return CL_BUILD_PROGRAM_FAILURE;
    default: return CL_OUT_OF_RESOURCES;
    }
}

void fi_arm(fi_kind kind, unsigned long k, int err)
{
    __atomic_store_n(&g_fired, 0, __ATOMIC_SEQ_CST);
    g_armed_k = k;
    g_armed_err = err ? err : fi_default_error(kind);
    __atomic_store_n(&g_armed_kind, (int)kind, __ATOMIC_SEQ_CST);
}
void fi_disarm(void) { __atomic_store_n(&g_armed_kind, -1, __ATOMIC_SEQ_CST); }
int fi_fired(void) { return __atomic_load_n(&g_fired, __ATOMIC_SEQ_CST); }
void fi_set_no_platform(int on) { __atomic_store_n(&g_no_platform, on, __ATOMIC_SEQ_CST); }

/* Count one call of `kind`; returns the error to inject, or 0. */
static cl_int hit(fi_kind kind)
{
    unsigned long n = __atomic_add_fetch(&g_count[kind], 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&g_armed_kind, __ATOMIC_SEQ_CST) == (int)kind && n == g_armed_k) {
        __atomic_store_n(&g_fired, 1, __ATOMIC_SEQ_CST);
        return (cl_int)g_armed_err;
    }
    return 0;
}
static cl_int hit_enqueue(fi_kind kind)
{
    __atomic_add_fetch(&g_enqueues, 1, __ATOMIC_SEQ_CST);
    return hit(kind);
}

/* ---- live objects ------------------------------------------------------ */

typedef struct obj_entry {
    const void *ptr;
    fi_obj kind;
    long refs;
    struct obj_entry *next;
} obj_entry;

#define NBUCKET 4096
static obj_entry *g_table[NBUCKET];
static long g_live[FI_OBJ_COUNT];
static unsigned long g_unknown_releases;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t bucket(const void *p) { return (size_t)(((uintptr_t)p >> 4) * 2654435761u) % NBUCKET; }

static obj_entry **find_slot(const void *p)
{
    obj_entry **pp = &g_table[bucket(p)];
    while (*pp && (*pp)->ptr != p)
        pp = &(*pp)->next;
    return pp;
}

static void obj_add(fi_obj kind, const void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&g_lock);
    obj_entry **pp = find_slot(p);
    if (*pp) {
        (*pp)->refs++;
    } else {
        obj_entry *e = malloc(sizeof *e);
        if (e) {
            e->ptr = p;
            e->kind = kind;
            e->refs = 1;
            e->next = NULL;
            *pp = e;
            g_live[kind]++;
        }
    }
    pthread_mutex_unlock(&g_lock);
}

static void obj_release(const void *p)
{
    pthread_mutex_lock(&g_lock);
    obj_entry **pp = find_slot(p);
    if (!*pp) {
        g_unknown_releases++;
    } else if (--(*pp)->refs == 0) {
        obj_entry *e = *pp;
        *pp = e->next;
        g_live[e->kind]--;
        free(e);
    }
    pthread_mutex_unlock(&g_lock);
}

long fi_live(fi_obj o)
{
    pthread_mutex_lock(&g_lock);
    long v = g_live[o];
    pthread_mutex_unlock(&g_lock);
    return v;
}
long fi_live_total(void)
{
    long t = 0;
    for (int i = 0; i < FI_OBJ_COUNT; i++)
        t += fi_live((fi_obj)i);
    return t;
}
void fi_snap(fi_snapshot *s)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < FI_OBJ_COUNT; i++)
        s->n[i] = g_live[i];
    pthread_mutex_unlock(&g_lock);
}
int fi_snap_diff(const fi_snapshot *a, const fi_snapshot *b, char *buf, size_t len)
{
    int differ = 0;
    size_t used = 0;
    if (len)
        buf[0] = 0;
    for (int i = 0; i < FI_OBJ_COUNT; i++) {
        long d = b->n[i] - a->n[i];
        if (d) {
            differ = 1;
            if (used < len)
                used += (size_t)snprintf(buf + used, len - used, "%s%s %+ld", used ? ", " : "",
                                         g_obj_names[i], d);
        }
    }
    return differ;
}
unsigned long fi_unknown_releases(void)
{
    pthread_mutex_lock(&g_lock);
    unsigned long v = g_unknown_releases;
    pthread_mutex_unlock(&g_lock);
    return v;
}

static char g_fake_mem_storage[64];
void *fi_invalid_mem(void) { return g_fake_mem_storage; }
static int is_fake(const void *m) { return m == (const void *)g_fake_mem_storage; }

/* ---- forwarding -------------------------------------------------------- */

static void *real_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "interpose: dlsym(RTLD_NEXT, %s) failed: %s\n", name, dlerror());
        abort();
    }
    return p;
}
/* Resolved lazily; the race on first use is benign (every thread stores the same value). */
#define REAL(fn)                                                                     \
    static __typeof__(&fn) real_;                                                    \
    __typeof__(&fn) r_ = __atomic_load_n(&real_, __ATOMIC_ACQUIRE);                  \
    if (!r_) {                                                                       \
        r_ = (__typeof__(&fn))real_sym(#fn);                                         \
        __atomic_store_n(&real_, r_, __ATOMIC_RELEASE);                              \
    }

#define FAIL_RET(kind)                                                               \
    do {                                                                             \
        cl_int e_ = hit(kind);                                                       \
        if (e_) return e_;                                                           \
    } while (0)
#define FAIL_PTR(kind)                                                               \
    do {                                                                             \
        cl_int e_ = hit(kind);                                                       \
        if (e_) {                                                                    \
            if (errcode_ret) *errcode_ret = e_;                                      \
            return NULL;                                                             \
        }                                                                            \
    } while (0)

/* Platform and device */
CL_API_ENTRY cl_int CL_API_CALL clGetPlatformIDs(cl_uint n, cl_platform_id *p, cl_uint *np)
{
    REAL(clGetPlatformIDs);
    FAIL_RET(FI_GET_PLATFORM_IDS);
    if (__atomic_load_n(&g_no_platform, __ATOMIC_SEQ_CST)) {
        if (np) *np = 0;
        return CL_PLATFORM_NOT_FOUND_KHR;
    }
    return r_(n, p, np);
}
CL_API_ENTRY cl_int CL_API_CALL clGetPlatformInfo(cl_platform_id p, cl_platform_info i, size_t s, void *v,
                                                  size_t *r)
{
    REAL(clGetPlatformInfo);
    FAIL_RET(FI_GET_PLATFORM_INFO);
    return r_(p, i, s, v, r);
}
CL_API_ENTRY cl_int CL_API_CALL clGetDeviceIDs(cl_platform_id p, cl_device_type t, cl_uint n, cl_device_id *d,
                                               cl_uint *nd)
{
    REAL(clGetDeviceIDs);
    FAIL_RET(FI_GET_DEVICE_IDS);
    return r_(p, t, n, d, nd);
}
CL_API_ENTRY cl_int CL_API_CALL clGetDeviceInfo(cl_device_id d, cl_device_info i, size_t s, void *v, size_t *r)
{
    REAL(clGetDeviceInfo);
    FAIL_RET(FI_GET_DEVICE_INFO);
    return r_(d, i, s, v, r);
}

/* Context */
CL_API_ENTRY cl_context CL_API_CALL clCreateContext(const cl_context_properties *props, cl_uint nd,
                                                    const cl_device_id *devs,
                                                    void(CL_CALLBACK *cb)(const char *, const void *, size_t,
                                                                          void *),
                                                    void *ud, cl_int *errcode_ret)
{
    REAL(clCreateContext);
    FAIL_PTR(FI_CREATE_CONTEXT);
    cl_context c = r_(props, nd, devs, cb, ud, errcode_ret);
    obj_add(FI_OBJ_CONTEXT, c);
    return c;
}
CL_API_ENTRY cl_context CL_API_CALL clCreateContextFromType(const cl_context_properties *props, cl_device_type t,
                                                            void(CL_CALLBACK *cb)(const char *, const void *,
                                                                                  size_t, void *),
                                                            void *ud, cl_int *errcode_ret)
{
    REAL(clCreateContextFromType);
    FAIL_PTR(FI_CREATE_CONTEXT);
    cl_context c = r_(props, t, cb, ud, errcode_ret);
    obj_add(FI_OBJ_CONTEXT, c);
    return c;
}
CL_API_ENTRY cl_int CL_API_CALL clGetContextInfo(cl_context c, cl_context_info i, size_t s, void *v, size_t *r)
{
    REAL(clGetContextInfo);
    FAIL_RET(FI_GET_CONTEXT_INFO);
    return r_(c, i, s, v, r);
}

/* Retain / release, one pair per object kind */
#define RETAIN_RELEASE(Type, Name, OBJ)                                              \
    CL_API_ENTRY cl_int CL_API_CALL clRetain##Name(Type o)                           \
    {                                                                                \
        REAL(clRetain##Name);                                                        \
        FAIL_RET(FI_RETAIN);                                                         \
        cl_int e = r_(o);                                                            \
        if (e == CL_SUCCESS) obj_add(OBJ, o);                                        \
        return e;                                                                    \
    }                                                                                \
    CL_API_ENTRY cl_int CL_API_CALL clRelease##Name(Type o)                          \
    {                                                                                \
        REAL(clRelease##Name);                                                       \
        (void)hit(FI_RELEASE); /* counted, never failed */                           \
        cl_int e = r_(o);                                                            \
        if (e == CL_SUCCESS) obj_release(o);                                         \
        return e;                                                                    \
    }
RETAIN_RELEASE(cl_context, Context, FI_OBJ_CONTEXT)
RETAIN_RELEASE(cl_command_queue, CommandQueue, FI_OBJ_QUEUE)
RETAIN_RELEASE(cl_program, Program, FI_OBJ_PROGRAM)
RETAIN_RELEASE(cl_kernel, Kernel, FI_OBJ_KERNEL)
RETAIN_RELEASE(cl_event, Event, FI_OBJ_EVENT)

CL_API_ENTRY cl_int CL_API_CALL clRetainMemObject(cl_mem o)
{
    REAL(clRetainMemObject);
    if (is_fake(o)) return CL_INVALID_MEM_OBJECT;
    FAIL_RET(FI_RETAIN);
    cl_int e = r_(o);
    if (e == CL_SUCCESS) obj_add(FI_OBJ_MEM, o);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clReleaseMemObject(cl_mem o)
{
    REAL(clReleaseMemObject);
    if (is_fake(o)) return CL_INVALID_MEM_OBJECT;
    (void)hit(FI_RELEASE);
    cl_int e = r_(o);
    if (e == CL_SUCCESS) obj_release(o);
    return e;
}

/* Queues */
CL_API_ENTRY cl_command_queue CL_API_CALL clCreateCommandQueue(cl_context c, cl_device_id d,
                                                               cl_command_queue_properties p, cl_int *errcode_ret)
{
    REAL(clCreateCommandQueue);
    FAIL_PTR(FI_CREATE_QUEUE);
    cl_command_queue q = r_(c, d, p, errcode_ret);
    obj_add(FI_OBJ_QUEUE, q);
    return q;
}
CL_API_ENTRY cl_command_queue CL_API_CALL clCreateCommandQueueWithProperties(cl_context c, cl_device_id d,
                                                                             const cl_queue_properties *p,
                                                                             cl_int *errcode_ret)
{
    REAL(clCreateCommandQueueWithProperties);
    FAIL_PTR(FI_CREATE_QUEUE);
    cl_command_queue q = r_(c, d, p, errcode_ret);
    obj_add(FI_OBJ_QUEUE, q);
    return q;
}
CL_API_ENTRY cl_int CL_API_CALL clGetCommandQueueInfo(cl_command_queue q, cl_command_queue_info i, size_t s,
                                                      void *v, size_t *r)
{
    REAL(clGetCommandQueueInfo);
    FAIL_RET(FI_GET_QUEUE_INFO);
    return r_(q, i, s, v, r);
}
CL_API_ENTRY cl_int CL_API_CALL clFlush(cl_command_queue q)
{
    REAL(clFlush);
    FAIL_RET(FI_WAIT);
    return r_(q);
}
CL_API_ENTRY cl_int CL_API_CALL clFinish(cl_command_queue q)
{
    REAL(clFinish);
    FAIL_RET(FI_WAIT);
    return r_(q);
}

/* Memory objects */
CL_API_ENTRY cl_mem CL_API_CALL clCreateBuffer(cl_context c, cl_mem_flags f, size_t size, void *host,
                                               cl_int *errcode_ret)
{
    REAL(clCreateBuffer);
    FAIL_PTR(FI_CREATE_BUFFER);
    cl_mem m = r_(c, f, size, host, errcode_ret);
    obj_add(FI_OBJ_MEM, m);
    return m;
}
CL_API_ENTRY cl_mem CL_API_CALL clCreateSubBuffer(cl_mem b, cl_mem_flags f, cl_buffer_create_type t,
                                                  const void *info, cl_int *errcode_ret)
{
    REAL(clCreateSubBuffer);
    if (is_fake(b)) {
        if (errcode_ret) *errcode_ret = CL_INVALID_MEM_OBJECT;
        return NULL;
    }
    FAIL_PTR(FI_CREATE_SUB_BUFFER);
    cl_mem m = r_(b, f, t, info, errcode_ret);
    obj_add(FI_OBJ_MEM, m);
    return m;
}
CL_API_ENTRY cl_int CL_API_CALL clGetMemObjectInfo(cl_mem m, cl_mem_info i, size_t s, void *v, size_t *r)
{
    REAL(clGetMemObjectInfo);
    if (is_fake(m)) return CL_INVALID_MEM_OBJECT;
    FAIL_RET(FI_GET_MEM_INFO);
    return r_(m, i, s, v, r);
}

/* Programs */
CL_API_ENTRY cl_program CL_API_CALL clCreateProgramWithSource(cl_context c, cl_uint n, const char **s,
                                                              const size_t *l, cl_int *errcode_ret)
{
    REAL(clCreateProgramWithSource);
    FAIL_PTR(FI_CREATE_PROGRAM);
    cl_program p = r_(c, n, s, l, errcode_ret);
    obj_add(FI_OBJ_PROGRAM, p);
    return p;
}
CL_API_ENTRY cl_program CL_API_CALL clCreateProgramWithBinary(cl_context c, cl_uint n, const cl_device_id *d,
                                                              const size_t *l, const unsigned char **b,
                                                              cl_int *st, cl_int *errcode_ret)
{
    REAL(clCreateProgramWithBinary);
    FAIL_PTR(FI_CREATE_PROGRAM);
    cl_program p = r_(c, n, d, l, b, st, errcode_ret);
    obj_add(FI_OBJ_PROGRAM, p);
    return p;
}
CL_API_ENTRY cl_int CL_API_CALL clBuildProgram(cl_program p, cl_uint n, const cl_device_id *d, const char *o,
                                               void(CL_CALLBACK *cb)(cl_program, void *), void *ud)
{
    REAL(clBuildProgram);
    FAIL_RET(FI_BUILD_PROGRAM);
    return r_(p, n, d, o, cb, ud);
}
CL_API_ENTRY cl_int CL_API_CALL clCompileProgram(cl_program p, cl_uint n, const cl_device_id *d, const char *o,
                                                 cl_uint nh, const cl_program *h, const char **hn,
                                                 void(CL_CALLBACK *cb)(cl_program, void *), void *ud)
{
    REAL(clCompileProgram);
    FAIL_RET(FI_BUILD_PROGRAM);
    return r_(p, n, d, o, nh, h, hn, cb, ud);
}
CL_API_ENTRY cl_program CL_API_CALL clLinkProgram(cl_context c, cl_uint n, const cl_device_id *d, const char *o,
                                                  cl_uint np, const cl_program *ps,
                                                  void(CL_CALLBACK *cb)(cl_program, void *), void *ud,
                                                  cl_int *errcode_ret)
{
    REAL(clLinkProgram);
    FAIL_PTR(FI_BUILD_PROGRAM);
    cl_program p = r_(c, n, d, o, np, ps, cb, ud, errcode_ret);
    obj_add(FI_OBJ_PROGRAM, p);
    return p;
}
CL_API_ENTRY cl_int CL_API_CALL clGetProgramInfo(cl_program p, cl_program_info i, size_t s, void *v, size_t *r)
{
    REAL(clGetProgramInfo);
    FAIL_RET(FI_GET_PROGRAM_INFO);
    return r_(p, i, s, v, r);
}
CL_API_ENTRY cl_int CL_API_CALL clGetProgramBuildInfo(cl_program p, cl_device_id d, cl_program_build_info i,
                                                      size_t s, void *v, size_t *r)
{
    REAL(clGetProgramBuildInfo);
    FAIL_RET(FI_GET_PROGRAM_INFO);
    return r_(p, d, i, s, v, r);
}

/* Kernels */
CL_API_ENTRY cl_kernel CL_API_CALL clCreateKernel(cl_program p, const char *name, cl_int *errcode_ret)
{
    REAL(clCreateKernel);
    FAIL_PTR(FI_CREATE_KERNEL);
    cl_kernel k = r_(p, name, errcode_ret);
    obj_add(FI_OBJ_KERNEL, k);
    return k;
}
CL_API_ENTRY cl_int CL_API_CALL clCreateKernelsInProgram(cl_program p, cl_uint n, cl_kernel *ks, cl_uint *nret)
{
    REAL(clCreateKernelsInProgram);
    FAIL_RET(FI_CREATE_KERNEL);
    cl_uint got = 0;
    cl_int e = r_(p, n, ks, &got);
    if (nret) *nret = got;
    if (e == CL_SUCCESS && ks)
        for (cl_uint i = 0; i < got && i < n; i++)
            obj_add(FI_OBJ_KERNEL, ks[i]);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clSetKernelArg(cl_kernel k, cl_uint i, size_t s, const void *v)
{
    REAL(clSetKernelArg);
    if (v && s == sizeof(cl_mem) && is_fake(*(void *const *)v)) return CL_INVALID_MEM_OBJECT;
    FAIL_RET(FI_SET_KERNEL_ARG);
    return r_(k, i, s, v);
}
CL_API_ENTRY cl_int CL_API_CALL clGetKernelInfo(cl_kernel k, cl_kernel_info i, size_t s, void *v, size_t *r)
{
    REAL(clGetKernelInfo);
    FAIL_RET(FI_GET_KERNEL_INFO);
    return r_(k, i, s, v, r);
}
CL_API_ENTRY cl_int CL_API_CALL clGetKernelWorkGroupInfo(cl_kernel k, cl_device_id d,
                                                         cl_kernel_work_group_info i, size_t s, void *v,
                                                         size_t *r)
{
    REAL(clGetKernelWorkGroupInfo);
    FAIL_RET(FI_GET_KERNEL_INFO);
    return r_(k, d, i, s, v, r);
}

/* Events */
#define TRACK_EVENT(ev, e)                                                           \
    do {                                                                             \
        if ((e) == CL_SUCCESS && (ev)) {                                             \
            obj_add(FI_OBJ_EVENT, *(ev));                                            \
            __atomic_add_fetch(&g_enqueue_events, 1, __ATOMIC_SEQ_CST);              \
        }                                                                            \
    } while (0)

CL_API_ENTRY cl_event CL_API_CALL clCreateUserEvent(cl_context c, cl_int *errcode_ret)
{
    REAL(clCreateUserEvent);
    FAIL_PTR(FI_CREATE_USER_EVENT);
    cl_event e = r_(c, errcode_ret);
    obj_add(FI_OBJ_EVENT, e);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clSetUserEventStatus(cl_event ev, cl_int st)
{
    REAL(clSetUserEventStatus);
    FAIL_RET(FI_EVENT_OTHER);
    return r_(ev, st);
}
CL_API_ENTRY cl_int CL_API_CALL clGetEventInfo(cl_event ev, cl_event_info i, size_t s, void *v, size_t *r)
{
    REAL(clGetEventInfo);
    FAIL_RET(FI_EVENT_OTHER);
    return r_(ev, i, s, v, r);
}
CL_API_ENTRY cl_int CL_API_CALL clSetEventCallback(cl_event ev, cl_int t,
                                                   void(CL_CALLBACK *cb)(cl_event, cl_int, void *), void *ud)
{
    REAL(clSetEventCallback);
    FAIL_RET(FI_EVENT_OTHER);
    return r_(ev, t, cb, ud);
}
CL_API_ENTRY cl_int CL_API_CALL clWaitForEvents(cl_uint n, const cl_event *l)
{
    REAL(clWaitForEvents);
    FAIL_RET(FI_WAIT);
    return r_(n, l);
}

/* Kernel trace: the function names of the kernels enqueued while on (the
 * real clGetKernelInfo, neither counted nor failed). */
static int g_trace_on;
static char g_trace[1024];
static pthread_mutex_t g_trace_lock = PTHREAD_MUTEX_INITIALIZER;
void fi_trace_kernels(int on)
{
    pthread_mutex_lock(&g_trace_lock);
    g_trace[0] = 0;
    g_trace_on = on;
    pthread_mutex_unlock(&g_trace_lock);
}
const char *fi_kernel_trace(void) { return g_trace; }
static void trace_kernel(cl_kernel k)
{
    pthread_mutex_lock(&g_trace_lock);
    if (g_trace_on) {
        REAL(clGetKernelInfo);
        char name[128] = "?";
        if (r_(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL) != CL_SUCCESS) snprintf(name, sizeof name, "?");
        size_t n = strlen(g_trace);
        snprintf(g_trace + n, sizeof g_trace - n, "%s%s", n ? " " : "", name);
    }
    pthread_mutex_unlock(&g_trace_lock);
}

/* Enqueues */
CL_API_ENTRY cl_int CL_API_CALL clEnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dim,
                                                       const size_t *off, const size_t *gws, const size_t *lws,
                                                       cl_uint nw, const cl_event *wl, cl_event *ev)
{
    REAL(clEnqueueNDRangeKernel);
    cl_int f = hit_enqueue(FI_ENQUEUE_NDRANGE);
    if (f) return f;
    cl_int e = r_(q, k, dim, off, gws, lws, nw, wl, ev);
    TRACK_EVENT(ev, e);
    if (e == CL_SUCCESS) trace_kernel(k);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueTask(cl_command_queue q, cl_kernel k, cl_uint nw, const cl_event *wl,
                                              cl_event *ev)
{
    REAL(clEnqueueTask);
    cl_int f = hit_enqueue(FI_ENQUEUE_NDRANGE);
    if (f) return f;
    cl_int e = r_(q, k, nw, wl, ev);
    TRACK_EVENT(ev, e);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueReadBuffer(cl_command_queue q, cl_mem b, cl_bool bl, size_t off,
                                                    size_t sz, void *p, cl_uint nw, const cl_event *wl,
                                                    cl_event *ev)
{
    REAL(clEnqueueReadBuffer);
    if (is_fake(b)) return CL_INVALID_MEM_OBJECT;
    cl_int f = hit_enqueue(FI_ENQUEUE_MEM);
    if (f) return f;
    cl_int e = r_(q, b, bl, off, sz, p, nw, wl, ev);
    TRACK_EVENT(ev, e);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueWriteBuffer(cl_command_queue q, cl_mem b, cl_bool bl, size_t off,
                                                     size_t sz, const void *p, cl_uint nw, const cl_event *wl,
                                                     cl_event *ev)
{
    REAL(clEnqueueWriteBuffer);
    if (is_fake(b)) return CL_INVALID_MEM_OBJECT;
    cl_int f = hit_enqueue(FI_ENQUEUE_MEM);
    if (f) return f;
    cl_int e = r_(q, b, bl, off, sz, p, nw, wl, ev);
    TRACK_EVENT(ev, e);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueFillBuffer(cl_command_queue q, cl_mem b, const void *pat, size_t ps,
                                                    size_t off, size_t sz, cl_uint nw, const cl_event *wl,
                                                    cl_event *ev)
{
    REAL(clEnqueueFillBuffer);
    if (is_fake(b)) return CL_INVALID_MEM_OBJECT;
    cl_int f = hit_enqueue(FI_ENQUEUE_MEM);
    if (f) return f;
    cl_int e = r_(q, b, pat, ps, off, sz, nw, wl, ev);
    TRACK_EVENT(ev, e);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueCopyBuffer(cl_command_queue q, cl_mem s, cl_mem d, size_t so, size_t dof,
                                                    size_t sz, cl_uint nw, const cl_event *wl, cl_event *ev)
{
    REAL(clEnqueueCopyBuffer);
    if (is_fake(s) || is_fake(d)) return CL_INVALID_MEM_OBJECT;
    cl_int f = hit_enqueue(FI_ENQUEUE_MEM);
    if (f) return f;
    cl_int e = r_(q, s, d, so, dof, sz, nw, wl, ev);
    TRACK_EVENT(ev, e);
    return e;
}
CL_API_ENTRY void *CL_API_CALL clEnqueueMapBuffer(cl_command_queue q, cl_mem b, cl_bool bl, cl_map_flags fl,
                                                  size_t off, size_t sz, cl_uint nw, const cl_event *wl,
                                                  cl_event *ev, cl_int *errcode_ret)
{
    REAL(clEnqueueMapBuffer);
    cl_int f = is_fake(b) ? CL_INVALID_MEM_OBJECT : hit_enqueue(FI_ENQUEUE_MEM);
    if (f) {
        if (errcode_ret) *errcode_ret = f;
        return NULL;
    }
    cl_int e = CL_SUCCESS;
    void *p = r_(q, b, bl, fl, off, sz, nw, wl, ev, &e);
    if (errcode_ret) *errcode_ret = e;
    TRACK_EVENT(ev, e);
    return p;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueUnmapMemObject(cl_command_queue q, cl_mem b, void *p, cl_uint nw,
                                                        const cl_event *wl, cl_event *ev)
{
    REAL(clEnqueueUnmapMemObject);
    if (is_fake(b)) return CL_INVALID_MEM_OBJECT;
    cl_int f = hit_enqueue(FI_ENQUEUE_MEM);
    if (f) return f;
    cl_int e = r_(q, b, p, nw, wl, ev);
    TRACK_EVENT(ev, e);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueMarkerWithWaitList(cl_command_queue q, cl_uint nw, const cl_event *wl,
                                                            cl_event *ev)
{
    REAL(clEnqueueMarkerWithWaitList);
    cl_int f = hit_enqueue(FI_ENQUEUE_SYNC);
    if (f) return f;
    cl_int e = r_(q, nw, wl, ev);
    TRACK_EVENT(ev, e);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueBarrierWithWaitList(cl_command_queue q, cl_uint nw, const cl_event *wl,
                                                             cl_event *ev)
{
    REAL(clEnqueueBarrierWithWaitList);
    cl_int f = hit_enqueue(FI_ENQUEUE_SYNC);
    if (f) return f;
    cl_int e = r_(q, nw, wl, ev);
    TRACK_EVENT(ev, e);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueMarker(cl_command_queue q, cl_event *ev)
{
    REAL(clEnqueueMarker);
    cl_int f = hit_enqueue(FI_ENQUEUE_SYNC);
    if (f) return f;
    cl_int e = r_(q, ev);
    TRACK_EVENT(ev, e);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueBarrier(cl_command_queue q)
{
    REAL(clEnqueueBarrier);
    cl_int f = hit_enqueue(FI_ENQUEUE_SYNC);
    if (f) return f;
    return r_(q);
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueWaitForEvents(cl_command_queue q, cl_uint n, const cl_event *l)
{
    REAL(clEnqueueWaitForEvents);
    cl_int f = hit_enqueue(FI_ENQUEUE_SYNC);
    if (f) return f;
    return r_(q, n, l);
}
