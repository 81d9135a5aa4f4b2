/* Status names and messages, from the one X-macro list in clnorm.h, and the
 * OpenCL error codes passed through. */
#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>

#define CL_ERRORS(X)                                                                      \
    X(CL_DEVICE_NOT_FOUND) X(CL_DEVICE_NOT_AVAILABLE) X(CL_COMPILER_NOT_AVAILABLE)       \
    X(CL_MEM_OBJECT_ALLOCATION_FAILURE) X(CL_OUT_OF_RESOURCES) X(CL_OUT_OF_HOST_MEMORY) \
    X(CL_PROFILING_INFO_NOT_AVAILABLE) X(CL_MEM_COPY_OVERLAP) X(CL_IMAGE_FORMAT_MISMATCH) \
    X(CL_IMAGE_FORMAT_NOT_SUPPORTED) X(CL_BUILD_PROGRAM_FAILURE) X(CL_MAP_FAILURE)       \
    X(CL_MISALIGNED_SUB_BUFFER_OFFSET) X(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)  \
    X(CL_COMPILE_PROGRAM_FAILURE) X(CL_LINKER_NOT_AVAILABLE) X(CL_LINK_PROGRAM_FAILURE) \
    X(CL_DEVICE_PARTITION_FAILED) X(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)                   \
    X(CL_INVALID_VALUE) X(CL_INVALID_DEVICE_TYPE) X(CL_INVALID_PLATFORM)                \
    X(CL_INVALID_DEVICE) X(CL_INVALID_CONTEXT) X(CL_INVALID_QUEUE_PROPERTIES)           \
    X(CL_INVALID_COMMAND_QUEUE) X(CL_INVALID_HOST_PTR) X(CL_INVALID_MEM_OBJECT)         \
    X(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) X(CL_INVALID_IMAGE_SIZE) X(CL_INVALID_SAMPLER) \
    X(CL_INVALID_BINARY) X(CL_INVALID_BUILD_OPTIONS) X(CL_INVALID_PROGRAM)              \
    X(CL_INVALID_PROGRAM_EXECUTABLE) X(CL_INVALID_KERNEL_NAME)                          \
    X(CL_INVALID_KERNEL_DEFINITION) X(CL_INVALID_KERNEL) X(CL_INVALID_ARG_INDEX)        \
    X(CL_INVALID_ARG_VALUE) X(CL_INVALID_ARG_SIZE) X(CL_INVALID_KERNEL_ARGS)            \
    X(CL_INVALID_WORK_DIMENSION) X(CL_INVALID_WORK_GROUP_SIZE) X(CL_INVALID_WORK_ITEM_SIZE) \
    X(CL_INVALID_GLOBAL_OFFSET) X(CL_INVALID_EVENT_WAIT_LIST) X(CL_INVALID_EVENT)       \
    X(CL_INVALID_OPERATION) X(CL_INVALID_GL_OBJECT) X(CL_INVALID_BUFFER_SIZE)           \
    X(CL_INVALID_MIP_LEVEL) X(CL_INVALID_GLOBAL_WORK_SIZE) X(CL_INVALID_PROPERTY)       \
    X(CL_INVALID_IMAGE_DESCRIPTOR) X(CL_INVALID_COMPILER_OPTIONS)                       \
    X(CL_INVALID_LINKER_OPTIONS) X(CL_INVALID_DEVICE_PARTITION_COUNT)

static const char *cl_error_name(int err)
{
    switch (err) {
#define CLNORM_X_CL(name) case name: return #name;
        CL_ERRORS(CLNORM_X_CL)
#undef CLNORM_X_CL
    default: return "CL_UNKNOWN_ERROR";
    }
}

CLNORM_API const char *clnorm_status_name(int status)
{
    if (status < 0)
        return cl_error_name(status);
    switch (status) {
#define CLNORM_X_NAME(name, value, text) case value: return #name;
        CLNORM_STATUS_LIST(CLNORM_X_NAME)
#undef CLNORM_X_NAME
    default: return "CLNORM_UNKNOWN_STATUS";
    }
}

CLNORM_API const char *clnorm_status_string(int status)
{
    if (status < 0)
        return cl_error_name(status); /* the OpenCL name is the clearest message */
    switch (status) {
#define CLNORM_X_TEXT(name, value, text) case value: return text;
        CLNORM_STATUS_LIST(CLNORM_X_TEXT)
#undef CLNORM_X_TEXT
    default: return "unknown status";
    }
}

CLNORM_API int clnorm_is_cl_error(int status) { return status < 0; }

clnorm_msgs *clnorm_msgs_of(clnorm_ctx *ctx, int create)
{
    const pthread_t self = pthread_self();
    for (clnorm_msgs *m = ctx->msgs; m; m = m->next)
        if (pthread_equal(m->thread, self)) return m;
    if (!create) return NULL;
    clnorm_msgs *m = calloc(1, sizeof *m);
    if (!m) return NULL; /* the message is lost; the status still says what failed */
    m->thread = self;
    m->next = ctx->msgs;
    ctx->msgs = m;
    return m;
}

void clnorm_clear_error(clnorm_ctx *ctx)
{
    clnorm_msgs *m = clnorm_msgs_of(ctx, 0);
    if (m) m->error[0] = 0;
}

clnorm_status clnorm_fail(clnorm_ctx *ctx, clnorm_status st, const char *fmt, ...)
{
    clnorm_msgs *m = ctx ? clnorm_msgs_of(ctx, 1) : NULL;
    if (m) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->error, sizeof m->error, fmt, ap);
        va_end(ap);
    }
    return st;
}

int clnorm_cl_fail(clnorm_ctx *ctx, cl_int err, const char *what)
{
    clnorm_msgs *m = ctx ? clnorm_msgs_of(ctx, 1) : NULL;
    if (m) snprintf(m->error, sizeof m->error, "%s failed: %s (%d)", what, cl_error_name(err), (int)err);
    return err;
}
