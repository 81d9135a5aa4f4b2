/*
 * OpenCL interposer for the reliability tests.
 *
 * interpose.c defines the OpenCL entry points that libclnorm uses
 * (clCreateBuffer, clBuildProgram, clEnqueueNDRangeKernel, clRetain* and
 * clRelease*, ...) inside the test executable. The executable is linked with
 * -rdynamic, so the dynamic linker resolves libclnorm.so's calls to these
 * definitions first; each forwards to the real function from libOpenCL with
 * dlsym(RTLD_NEXT, ...). PoCL calls its own internal POcl* functions, so only
 * the library's (and the test's) calls are seen.
 *
 * It does two things:
 *   - counts calls per kind and can make the k-th call of a kind fail with a
 *     given error (fault injection);
 *   - keeps the API-level reference count of every OpenCL object created or
 *     retained through it, so a test can count live objects (leak checks).
 */
#ifndef CLNORM_REL_INTERPOSE_H
#define CLNORM_REL_INTERPOSE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FI_KIND_LIST(X)                                                      \
    X(FI_GET_PLATFORM_IDS, "clGetPlatformIDs")                               \
    X(FI_GET_DEVICE_IDS, "clGetDeviceIDs")                                   \
    X(FI_GET_DEVICE_INFO, "clGetDeviceInfo")                                 \
    X(FI_GET_PLATFORM_INFO, "clGetPlatformInfo")                             \
    X(FI_CREATE_CONTEXT, "clCreateContext*")                                 \
    X(FI_GET_CONTEXT_INFO, "clGetContextInfo")                               \
    X(FI_CREATE_QUEUE, "clCreateCommandQueue*")                              \
    X(FI_GET_QUEUE_INFO, "clGetCommandQueueInfo")                            \
    X(FI_CREATE_BUFFER, "clCreateBuffer")                                    \
    X(FI_CREATE_SUB_BUFFER, "clCreateSubBuffer")                             \
    X(FI_GET_MEM_INFO, "clGetMemObjectInfo")                                 \
    X(FI_CREATE_PROGRAM, "clCreateProgramWith*")                             \
    X(FI_BUILD_PROGRAM, "clBuildProgram/clCompileProgram/clLinkProgram")     \
    X(FI_GET_PROGRAM_INFO, "clGetProgram(Build)Info")                        \
    X(FI_CREATE_KERNEL, "clCreateKernel*")                                   \
    X(FI_SET_KERNEL_ARG, "clSetKernelArg")                                   \
    X(FI_GET_KERNEL_INFO, "clGetKernel(WorkGroup)Info")                      \
    X(FI_ENQUEUE_NDRANGE, "clEnqueueNDRangeKernel/clEnqueueTask")            \
    X(FI_ENQUEUE_MEM, "clEnqueue{Read,Write,Fill,Copy,Map,Unmap}*")          \
    X(FI_ENQUEUE_SYNC, "clEnqueueMarker*/clEnqueueBarrier*/WaitForEvents")   \
    X(FI_CREATE_USER_EVENT, "clCreateUserEvent")                             \
    X(FI_EVENT_OTHER, "clGetEventInfo/clSetEventCallback/clSetUserEventStatus") \
    X(FI_WAIT, "clWaitForEvents/clFlush/clFinish")                           \
    X(FI_RETAIN, "clRetain*")                                                \
    X(FI_RELEASE, "clRelease*")

typedef enum fi_kind {
#define FI_X(k, s) k,
    FI_KIND_LIST(FI_X)
#undef FI_X
    FI_KIND_COUNT
} fi_kind;

/* Object kinds tracked for leak counting. */
typedef enum fi_obj {
    FI_OBJ_CONTEXT, FI_OBJ_QUEUE, FI_OBJ_MEM, FI_OBJ_PROGRAM, FI_OBJ_KERNEL, FI_OBJ_EVENT,
    FI_OBJ_COUNT
} fi_obj;

const char *fi_kind_name(fi_kind k);
const char *fi_obj_name(fi_obj o);

/* Calls of each kind since the last fi_reset_counts(). */
void fi_reset_counts(void);
unsigned long fi_count(fi_kind k);
/* Enqueue calls of any kind since the last reset (NDRange, memory, sync). */
unsigned long fi_enqueues(void);
/* Events that enqueue calls returned since the last reset. */
unsigned long fi_enqueue_events(void);

/* Make the k-th call (1-based, counted from the last fi_reset_counts()) of
 * kind `kind` fail with `err` (0 = the default error for that kind). Only one
 * fault is armed at a time; fi_disarm() removes it. fi_fired() says whether
 * the armed fault was hit. */
void fi_arm(fi_kind kind, unsigned long k, int err);
void fi_disarm(void);
int fi_fired(void);
/* Default injected error for a kind: CL_MEM_OBJECT_ALLOCATION_FAILURE for
 * buffer creation, CL_BUILD_PROGRAM_FAILURE for builds, CL_OUT_OF_RESOURCES
 * otherwise. */
int fi_default_error(fi_kind kind);

/* Number of OpenCL objects with an API-level reference count > 0 (created or
 * retained through the interposer and not yet released), of one kind or all. */
long fi_live(fi_obj o);
long fi_live_total(void);
/* Snapshot of the live counts per kind, and a printable difference. */
typedef struct fi_snapshot { long n[FI_OBJ_COUNT]; } fi_snapshot;
void fi_snap(fi_snapshot *s);
/* Writes e.g. "mem +1 kernel +2" into buf; returns 1 if a and b differ. */
int fi_snap_diff(const fi_snapshot *a, const fi_snapshot *b, char *buf, size_t len);
/* Releases of objects the interposer never saw created, and releases that
 * took a count below zero (both indicate a bug: over-release). */
unsigned long fi_unknown_releases(void);

/* A fake cl_mem handle that every interposed function taking a memory
 * object answers with CL_INVALID_MEM_OBJECT (without forwarding it), to test
 * CLNORM_ERR_INVALID_BUFFER safely. */
void *fi_invalid_mem(void);

/* Kernel trace: while on, the function names of the kernels enqueued
 * successfully, space-separated in order ("bwd_rows bwd_params"); turning it
 * on or off clears it. Read it while no other thread enqueues. */
void fi_trace_kernels(int on);
const char *fi_kernel_trace(void);

/* Make clGetPlatformIDs report no platform (CL_PLATFORM_NOT_FOUND_KHR) while set. */
void fi_set_no_platform(int on);

#ifdef __cplusplus
}
#endif
#endif
