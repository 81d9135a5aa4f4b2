/*
 * The program cache: one program per (device, clnorm_progkey), built from
 * the embedded kernel files with -D options on first use, its kernels
 * created once. The build options come from one pure function, which the
 * kernel portability check also enumerates.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const clnorm_kernel_names[CLNORM_KERNEL_COUNT] = {
#define CLNORM_X_NAME(name) #name,
    CLNORM_KERNEL_LIST(CLNORM_X_NAME)
#undef CLNORM_X_NAME
};

static const char *source_of(const char *name)
{
    for (const struct clnorm_kernel_source *s = clnorm_kernel_sources; s->name; ++s)
        if (strcmp(s->name, name) == 0) return s->text;
    return NULL;
}

const char *const clnorm_program_files[CLNORM_PROGRAM_FILES] = {"common", "rows", "cols", "merge", "apply", "backward"};

int clnorm_build_options(const clnorm_devinfo *d, const clnorm_progkey *k, char *buf, size_t len)
{
    const unsigned wg = k->wg, lanes = k->lanes, tree = k->tree, flags = k->flags;
    /* CPUs: explicit 16-wide vectors, columns per work-item, serial segment
     * sums, rows re-read from cache; GPUs: float4 loads, a column per
     * work-item, tree sums, rows of up to lanes * 4 * CLNORM_GPU_CACHE_V floats in registers. */
    const unsigned cpu = d->is_cpu ? 1u : 0u;
    char target[CLNORM_TARGET_OPTIONS_MAX];
    clnorm_target_options(d, target, sizeof target);
    return snprintf(buf, len,
                    "-cl-std=CL1.2 -DWG=%u -DLANES=%u -DTREE=%u -DRMS=%u -DSTREAM=%u -DRSTD_ZERO=%u -DVEC=%u "
                    "-DCOLS_VEC=%u -DCOL_TILE=%u -DCACHE_V=%u -DLP=%u -DXT=%u -DPT=%u %s",
                    wg, lanes, tree, (flags & CLNORM_K_RMS) ? 1u : 0u, (flags & CLNORM_K_STREAM) ? 1u : 0u,
                    (flags & CLNORM_K_RSTD_ZERO) ? 1u : 0u,
                    cpu ? 16u : 4u, cpu, cpu ? CLNORM_CPU_COL_TILE / 16u : 1u, cpu || lanes == 1 ? 0u : (unsigned)CLNORM_GPU_CACHE_V,
                    (flags & CLNORM_K_LP) ? 1u : 0u, k->xt, k->pt, target);
}

static int build_with_options(clnorm_ctx *c, clnorm_program *p)
{
    const char *srcs[CLNORM_PROGRAM_FILES];
    for (int i = 0; i < CLNORM_PROGRAM_FILES; ++i)
        if (!(srcs[i] = source_of(clnorm_program_files[i])))
            return clnorm_fail(c, CLNORM_ERR_BUILD_FAILED, "kernel source %s.cl is not embedded",
                               clnorm_program_files[i]);
    cl_int err;
    p->program = clCreateProgramWithSource(c->context, CLNORM_PROGRAM_FILES, srcs, NULL, &err);
    if (!p->program)
        return clnorm_cl_fail(c, err ? err : CL_OUT_OF_HOST_MEMORY, "clCreateProgramWithSource");
    char opts[512];
    clnorm_build_options(&c->dev, &p->key, opts, sizeof opts);
    err = clBuildProgram(p->program, 1, &c->device, opts, NULL, NULL);
    if (err != CL_SUCCESS) {
        size_t n = 0;
        clnorm_msgs *m = clnorm_msgs_of(c, 1);
        if (m) {
            free(m->build_log);
            m->build_log = NULL;
            if (clGetProgramBuildInfo(p->program, c->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) == CL_SUCCESS &&
                (m->build_log = malloc(n + 1)) != NULL) {
                m->build_log[0] = 0;
                clGetProgramBuildInfo(p->program, c->device, CL_PROGRAM_BUILD_LOG, n, m->build_log, NULL);
                m->build_log[n] = 0;
            }
        }
        clReleaseProgram(p->program);
        p->program = NULL;
        if (err == CL_BUILD_PROGRAM_FAILURE)
            return clnorm_fail(c, CLNORM_ERR_BUILD_FAILED, "building kernels with \"%s\" failed", opts);
        return clnorm_cl_fail(c, err, "clBuildProgram");
    }
    return CLNORM_OK;
}

/* NVIDIA's inline PTX is the one target feature no driver has run yet: a
 * build that fails with it on is retried once without it, and the context
 * keeps the portable warp sums from then on (the failed build's log stays
 * readable through clnorm_build_log). Other features fail the call. */
static int build_program(clnorm_ctx *c, clnorm_program *p)
{
    int st = build_with_options(c, p);
    if (st == CLNORM_ERR_BUILD_FAILED && (c->dev.features & CLNORM_FEAT_NV_SHFL)) {
        c->dev.features &= ~CLNORM_FEAT_NV_SHFL;
        st = build_with_options(c, p);
        if (st == CLNORM_OK) clnorm_clear_error(c);
    }
    return st;
}

int clnorm_get_kernel(clnorm_ctx *c, const clnorm_progkey *key, clnorm_kernel_id id, cl_kernel *out)
{
    clnorm_program *p = c->programs;
    while (p && memcmp(&p->key, key, sizeof *key) != 0)
        p = p->next;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return clnorm_fail(c, CLNORM_ERR_OUT_OF_MEMORY, "out of host memory");
        p->key = *key;
        int st = build_program(c, p);
        if (st != CLNORM_OK) {
            free(p);
            return st;
        }
        p->next = c->programs;
        c->programs = p;
    }
    if (!p->kernels[id]) {
        cl_int err;
        cl_kernel k = clCreateKernel(p->program, clnorm_kernel_names[id], &err);
        if (!k) return clnorm_cl_fail(c, err ? err : CL_OUT_OF_HOST_MEMORY, "clCreateKernel");
        p->kernels[id] = k;
    }
    *out = p->kernels[id];
    return CLNORM_OK;
}

void clnorm_programs_free(clnorm_ctx *c)
{
    clnorm_program *p = c->programs;
    while (p) {
        clnorm_program *next = p->next;
        for (int i = 0; i < CLNORM_KERNEL_COUNT; ++i)
            if (p->kernels[i]) clReleaseKernel(p->kernels[i]);
        clReleaseProgram(p->program);
        free(p);
        p = next;
    }
    c->programs = NULL;
}
