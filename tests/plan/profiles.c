/* The recorded profiles (see profiles.h). */
#include "profiles.h"

#include <stdio.h>
#include <string.h>

static void fill(test_profile *t, const char *label, const char *source, const char *platform, const char *name,
                 const char *vendor, int cpu, cl_uint cus, size_t max_wg, cl_ulong cache, cl_ulong local,
                 unsigned simd, cl_uint native_float, const char *ext)
{
    memset(t, 0, sizeof *t);
    t->label = label;
    t->source = source;
    clnorm_devinfo *d = &t->dev;
    snprintf(d->platform, sizeof d->platform, "%s", platform);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->vendor, sizeof d->vendor, "%s", vendor);
    snprintf(d->extensions, sizeof d->extensions, "%s", ext);
    d->type_cpu = d->is_cpu = cpu;
    d->compute_units = cus;
    d->max_wg = max_wg;
    d->cache_bytes = cache;
    d->local_bytes = local;
    d->simd = simd;
    d->native_float = native_float;
    clnorm_profile_features(d);
}

size_t test_profiles(test_profile *out, size_t max)
{
    test_profile all[5];
    /* ../shared/measurements/h200-2026-11-30/clinfo-nvidia.txt: NVIDIA's
     * OpenCL 3.0 (CUDA 13.0) platform, OpenCL C 1.2, no sub-groups, no
     * cl_khr_fp16. Its global cache size was not recorded: 0 (unknown). */
    fill(&all[0], "NVIDIA H200", "measured: clinfo of 2026-11-30", "NVIDIA CUDA", "NVIDIA H200", "NVIDIA Corporation",
         0, 132, 1024, 0, 48 * 1024, 32, 1,
         "cl_khr_global_int32_base_atomics cl_khr_fp64 cl_khr_byte_addressable_store cl_khr_icd "
         "cl_nv_compiler_options cl_nv_device_attribute_query cl_nv_pragma_unroll cl_khr_int64_base_atomics");
    /* This machine's PoCL 3.1 CPU device (clinfo on the CI machine kind). */
    fill(&all[1], "PoCL CPU (2 cores)", "measured: clinfo here", "Portable Computing Language",
         "pthread-haswell-AMD EPYC", "AuthenticAMD", 1, 2, 4096, 32u << 20, 512 * 1024, 0, 8,
         "cl_khr_byte_addressable_store cl_khr_global_int32_base_atomics cl_khr_3d_image_writes cl_khr_fp64");
    /* AMD Instinct MI210 (CDNA2): 104 compute units, 64-wide wavefronts,
     * 64 KiB LDS, 8 MiB L2, work-groups up to 256 under ROCm's OpenCL. From
     * AMD's CDNA2 documents; unmeasured. */
    fill(&all[2], "AMD MI210 (64-wide)", "unmeasured: AMD CDNA2 documentation", "AMD Accelerated Parallel Processing",
         "gfx90a", "Advanced Micro Devices, Inc.", 0, 104, 256, 8u << 20, 64 * 1024, 64, 1,
         "cl_khr_fp64 cl_khr_byte_addressable_store cl_amd_device_attribute_query cl_khr_fp16 cl_khr_subgroups");
    /* Intel Arc A770 (Xe-HPG): 512 EUs reported as compute units, SIMD8-32,
     * 64 KiB shared local memory, 16 MiB L2, work-groups up to 1024. From
     * Intel's Xe-HPG documents; unmeasured. */
    fill(&all[3], "Intel Arc A770", "unmeasured: Intel Xe-HPG documentation", "Intel(R) OpenCL Graphics",
         "Intel(R) Arc(TM) A770 Graphics", "Intel(R) Corporation", 0, 512, 1024, 16u << 20, 64 * 1024, 0, 1,
         "cl_khr_fp64 cl_khr_fp16 cl_khr_subgroups cl_intel_subgroups cl_intel_required_subgroup_size");
    /* PoCL 3.1 on a 2-core VM of a Xeon (clinfo here, 2026-12-07): the
     * whole socket's 260 MiB L3 reported as the device's cache; AVX-512
     * (native vectors of 16 floats). */
    fill(&all[4], "PoCL CPU (2 cores, 260 MiB L3)", "measured: clinfo here, 2026-12-07", "Portable Computing Language",
         "pthread-skylake-avx512-Intel(R) Xeon(R) Processor", "GenuineIntel", 1, 2, 4096, 260u << 20, 2u << 20, 0, 16,
         "cl_khr_byte_addressable_store cl_khr_global_int32_base_atomics cl_khr_3d_image_writes cl_khr_fp64");
    size_t n = max < 5 ? max : 5;
    for (size_t i = 0; i < n; ++i) out[i] = all[i];
    return n;
}
