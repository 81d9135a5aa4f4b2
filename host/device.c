/*
 * Devices: which one a default context takes, the profile read from it once
 * per context, and the target macros that profile allows in the kernels.
 *
 * Every driver call here reports its own failure: a driver error during
 * device selection comes back as that error, never as "no device".
 */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* From cl_khr_icd: the ICD loader reports no platform this way. */
#define CL_PLATFORM_NOT_FOUND_KHR_ (-1001)

static int contains_ci(const char *hay, const char *needle)
{
    for (size_t i = 0; hay[i]; ++i) {
        size_t k = 0;
        while (needle[k] && hay[i + k] && tolower((unsigned char)hay[i + k]) == tolower((unsigned char)needle[k]))
            ++k;
        if (!needle[k]) return 1;
    }
    return 0;
}

static cl_int dev_string(cl_device_id d, cl_device_info what, char *buf, size_t len)
{
    buf[0] = 0;
    cl_int err = clGetDeviceInfo(d, what, len - 1, buf, NULL);
    buf[len - 1] = 0;
    /* A string longer than buf (an extension list) is cut, not an error. */
    if (err == CL_INVALID_VALUE) {
        size_t n = 0;
        err = clGetDeviceInfo(d, what, 0, NULL, &n);
        if (err == CL_SUCCESS) {
            char *tmp = malloc(n + 1);
            if (!tmp) return CL_OUT_OF_HOST_MEMORY;
            err = clGetDeviceInfo(d, what, n, tmp, NULL);
            if (err == CL_SUCCESS) {
                tmp[n] = 0;
                snprintf(buf, len, "%s", tmp);
            }
            free(tmp);
        }
    }
    return err;
}

/* Oclgrind, which reports itself as a GPU (and a CPU and an accelerator). */
static int is_simulator(const char *platform, const char *name)
{
    return contains_ci(platform, "oclgrind") || contains_ci(name, "oclgrind");
}

void clnorm_profile_features(clnorm_devinfo *d)
{
    d->features = 0;
    const int pocl = contains_ci(d->platform, "portable computing language") || contains_ci(d->vendor_platform, "pocl");
    /* PoCL compiles with its own clang: its CPU device accepts clang's
     * builtins on __global pointers and its under-aligned vector typedefs.
     * Its CPU device is the host, so the host's architecture says which
     * target builtins exist. */
    /* NVIDIA's OpenCL compiles inline PTX; its GPUs run 32-wide warps of
     * consecutive work-items. */
    if (contains_ci(d->platform, "nvidia") && !d->type_cpu && (d->simd == 32 || d->simd == 0))
        d->features |= CLNORM_FEAT_NV_SHFL;
    if (pocl && d->type_cpu) {
        d->features |= CLNORM_FEAT_PREFETCH_BUILTIN | CLNORM_FEAT_UNALIGNED_VEC;
#if defined(__x86_64__) || defined(__i386__)
        d->features |= CLNORM_FEAT_NT_STORE;
#endif
        /* 16 floats per native vector: AVX-512, where PoCL's LLVM still
         * prefers 256-bit registers unless a function asks for more, and
         * converts 16 float16 elements per instruction (F16C). */
        if (d->native_float >= 16) d->features |= CLNORM_FEAT_WIDE_VEC;
    }
}

int clnorm_target_options(const clnorm_devinfo *d, char *buf, size_t len)
{
    return snprintf(buf, len,
                    "-DCLNORM_HAS_NT_STORE=%u -DCLNORM_HAS_PREFETCH_BUILTIN=%u -DCLNORM_HAS_NV_SHFL=%u "
                    "-DCLNORM_HAS_UNALIGNED_VEC=%u -DCLNORM_HAS_WIDE_VEC=%u",
                    (d->features & CLNORM_FEAT_NT_STORE) ? 1u : 0u,
                    (d->features & CLNORM_FEAT_PREFETCH_BUILTIN) ? 1u : 0u,
                    (d->features & CLNORM_FEAT_NV_SHFL) ? 1u : 0u,
                    (d->features & CLNORM_FEAT_UNALIGNED_VEC) ? 1u : 0u, (d->features & CLNORM_FEAT_WIDE_VEC) ? 1u : 0u);
}

cl_int clnorm_read_profile(cl_device_id dev, clnorm_devinfo *d)
{
    cl_device_type type = 0;
    cl_platform_id plat = NULL;
    memset(d, 0, sizeof *d);
    cl_int err = clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof d->compute_units, &d->compute_units, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof d->max_wg, &d->max_wg, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, sizeof d->cache_bytes, &d->cache_bytes, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof d->local_bytes, &d->local_bytes, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(dev, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof d->native_float, &d->native_float,
                              NULL);
    if (err == CL_SUCCESS) err = dev_string(dev, CL_DEVICE_EXTENSIONS, d->extensions, sizeof d->extensions);
    if (err == CL_SUCCESS) err = dev_string(dev, CL_DEVICE_NAME, d->name, sizeof d->name);
    if (err == CL_SUCCESS) err = dev_string(dev, CL_DEVICE_VENDOR, d->vendor, sizeof d->vendor);
    if (err == CL_SUCCESS) err = clGetDeviceInfo(dev, CL_DEVICE_PLATFORM, sizeof plat, &plat, NULL);
    if (err == CL_SUCCESS) {
        err = clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof d->platform - 1, d->platform, NULL);
        d->platform[sizeof d->platform - 1] = 0;
    }
    if (err == CL_SUCCESS) {
        err = clGetPlatformInfo(plat, CL_PLATFORM_VENDOR, sizeof d->vendor_platform - 1, d->vendor_platform, NULL);
        d->vendor_platform[sizeof d->vendor_platform - 1] = 0;
    }
    if (err != CL_SUCCESS) return err;
    /* The SIMD width, through the vendor query its extension names (the
     * values of CL_DEVICE_WARP_SIZE_NV and CL_DEVICE_WAVEFRONT_WIDTH_AMD);
     * a failure here only leaves it unknown. */
    cl_uint w = 0;
    if (strstr(d->extensions, "cl_nv_device_attribute_query") &&
        clGetDeviceInfo(dev, 0x4003, sizeof w, &w, NULL) == CL_SUCCESS)
        d->simd = w;
    else if (strstr(d->extensions, "cl_amd_device_attribute_query") &&
             clGetDeviceInfo(dev, 0x4043, sizeof w, &w, NULL) == CL_SUCCESS)
        d->simd = w;
    if (d->compute_units == 0) d->compute_units = 1;
    if (d->max_wg == 0) d->max_wg = 1;
    /* A device that reports GPU among its types takes the GPU rules
     * (Oclgrind reports GPU, CPU and accelerator at once). */
    d->type_cpu = (type & CL_DEVICE_TYPE_CPU) && !(type & CL_DEVICE_TYPE_GPU);
    d->is_cpu = d->type_cpu;
    clnorm_profile_features(d);
    return CL_SUCCESS;
}

/* Rank for the default choice, higher first: a real GPU, then an
 * accelerator, then a CPU, then a simulator of any type (Oclgrind lists
 * itself as a GPU; nobody wants it by accident). */
static cl_int default_rank(cl_device_id dev, int *rank)
{
    cl_device_type t = 0;
    cl_platform_id plat = NULL;
    char name[256], pname[256];
    cl_int err = clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    if (err == CL_SUCCESS) err = dev_string(dev, CL_DEVICE_NAME, name, sizeof name);
    if (err == CL_SUCCESS) err = clGetDeviceInfo(dev, CL_DEVICE_PLATFORM, sizeof plat, &plat, NULL);
    if (err == CL_SUCCESS) {
        pname[0] = 0;
        err = clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof pname - 1, pname, NULL);
        pname[sizeof pname - 1] = 0;
    }
    if (err != CL_SUCCESS) return err;
    if (is_simulator(pname, name)) *rank = 1;
    else if (t & CL_DEVICE_TYPE_GPU) *rank = 4;
    else if (t & CL_DEVICE_TYPE_ACCELERATOR) *rank = 3;
    else if (t & CL_DEVICE_TYPE_CPU) *rank = 2;
    else *rank = 1;
    return CL_SUCCESS;
}

clnorm_status clnorm_pick_device(cl_device_id *out)
{
    cl_platform_id plats[16];
    cl_uint np = 0;
    *out = NULL;
    cl_int err = clGetPlatformIDs(16, plats, &np);
    if (err == CL_PLATFORM_NOT_FOUND_KHR_ || (err == CL_SUCCESS && np == 0))
        return CLNORM_ERR_NO_DEVICE;
    if (err != CL_SUCCESS)
        return (clnorm_status)err;
    if (np > 16) np = 16;
    const char *spec = getenv("CLNORM_DEVICE");
    const int by_spec = spec && *spec;
    int want_p = -1, want_d = -1;
    if (by_spec) {
        char tail = 0;
        if (sscanf(spec, "%d:%d%c", &want_p, &want_d, &tail) != 2)
            want_p = want_d = -1;
    }
    cl_device_id best = NULL;
    int best_rank = 0;
    for (cl_uint p = 0; p < np; ++p) {
        cl_device_id devs[64];
        cl_uint nd = 0;
        err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 64, devs, &nd);
        if (err == CL_DEVICE_NOT_FOUND) continue; /* a platform with no device: not a failure */
        if (err != CL_SUCCESS) return (clnorm_status)err;
        if (nd > 64) nd = 64;
        for (cl_uint d = 0; d < nd; ++d) {
            if (by_spec) {
                if (want_p >= 0) {
                    if ((cl_uint)want_p == p && (cl_uint)want_d == d) {
                        *out = devs[d];
                        return CLNORM_OK;
                    }
                    continue;
                }
                char name[256];
                if ((err = dev_string(devs[d], CL_DEVICE_NAME, name, sizeof name)) != CL_SUCCESS)
                    return (clnorm_status)err;
                if (contains_ci(name, spec)) {
                    *out = devs[d];
                    return CLNORM_OK;
                }
                continue;
            }
            int rank = 0;
            if ((err = default_rank(devs[d], &rank)) != CL_SUCCESS) return (clnorm_status)err;
            if (rank > best_rank) best = devs[d], best_rank = rank;
        }
    }
    if (by_spec) return CLNORM_ERR_DEVICE_NOT_FOUND;
    *out = best;
    return best ? CLNORM_OK : CLNORM_ERR_NO_DEVICE;
}
