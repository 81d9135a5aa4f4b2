/*
 * Prints every kernel build option set the library can emit, one per line,
 * for the kernel check (scripts/check-kernels.sh), from the library's own
 * clnorm_build_options: no second copy of the rules to drift.
 *
 * First line: "files<TAB>" and the program's kernel files in build order.
 * Then one line per option set: "TARGETS<TAB>OPTIONS". TARGETS is "portable"
 * when the options switch on no target feature (compiled for nvptx64 and
 * spir64: what NVIDIA's and other GPU drivers accept), "nvptx" when they
 * switch on NVIDIA's inline PTX (nvptx64 only), "x86" when they switch on
 * PoCL's clang/x86 builtins.
 *
 * Devices are recorded profiles, not the machine's: NVIDIA's H200 (GPU
 * rules, inline PTX), PoCL's CPU device on AVX-512 (CPU rules, its
 * features), a GPU with no target feature (the portable kernels every other
 * driver gets), each of them under CLNORM_DEVICE_CLASS's other class too,
 * and PoCL's CPU device on AVX2 (256-bit code). Work-group sizes: those
 * whose code differs (wgs below; a tuning file or clnorm_set_variant may
 * force any power of two, which compiles one of these paths); lanes: 1, 32
 * (or the group when smaller) and the whole group, which is what the row,
 * column and merge plans launch with; tree: GPU rules only; flags: every
 * subset of CLNORM_K_ALL that a plan can hold; storage types: every (x,
 * parameter) pair of clnorm_dtype the API accepts, at the rules' sizes.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static void profile(clnorm_devinfo *d, const char *platform, const char *name, int type_cpu, size_t max_wg,
                    cl_uint native_float)
{
    memset(d, 0, sizeof *d);
    snprintf(d->platform, sizeof d->platform, "%s", platform);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->type_cpu = type_cpu;
    d->is_cpu = type_cpu;
    d->compute_units = 1;
    d->max_wg = max_wg;
    d->native_float = native_float;
    clnorm_profile_features(d);
}

/* Work-group sizes whose code differs: a single work-item (LANES 1), a pair
 * (tree sums of two), a warp (32: the shuffles' minimum), the rules'
 * defaults (64 on CPUs, 256 on GPUs) and the profiles' maxima. Sizes in
 * between compile the same code with another constant; listing every power
 * of two (as before the storage types) made the check 8400 option sets. */
static const unsigned wgs[] = {1, 2, 32, 64, 256, 1024, 4096};

/* only16: the 16-bit storage types only (a profile whose float32 code is
 * another profile's). */
static void emit(const clnorm_devinfo *d, int only16)
{
    char opts[512];
    const unsigned tree = d->is_cpu ? 0u : 1u;
    /* Storage types: x's (XT) by the parameters' (PT: float32 or x's type),
     * every pair the API accepts. */
    static const unsigned types[5][2] = {{0, 0}, {1, 0}, {1, 1}, {2, 0}, {2, 2}};
    for (size_t wi = 0; wi < sizeof wgs / sizeof wgs[0] && wgs[wi] <= d->max_wg; ++wi) {
        const unsigned wg = wgs[wi];
        const unsigned lanes_set[3] = {1u, wg < 32 ? wg : 32u, wg};
        /* 16-bit types at the rules' own sizes (1, 64, 256): their loads
         * and stores do not depend on the group size. */
        const int all_types = wg == 1 || wg == 64 || wg == 256;
        for (int li = 0; li < 3; ++li) {
            if (li > 0 && lanes_set[li] == lanes_set[li - 1]) continue;
            for (unsigned flags = 0; flags <= CLNORM_K_ALL; ++flags) {
                if (flags & ~CLNORM_K_ALL) continue;
                /* RMS is RMSNorm's and RSTD_ZERO BatchNorm's and
                 * InstanceNorm's (plan.c): no plan has both. */
                if ((flags & CLNORM_K_RMS) && (flags & CLNORM_K_RSTD_ZERO)) continue;
                /* LP is LpNormalization's, whose rule for a zero norm replaces
                 * RSTD_ZERO (plan.c): never with it. */
                if ((flags & CLNORM_K_LP) && (flags & CLNORM_K_RSTD_ZERO)) continue;
                /* STREAM switches streaming stores on only where the target
                 * has them (common.cl: STREAM_ON); elsewhere it compiles
                 * the plain stores STREAM = 0 does. */
                if ((flags & CLNORM_K_STREAM) && !(d->features & CLNORM_FEAT_NT_STORE)) continue;
                for (int ti = 0; ti < 5; ++ti) {
                    if (ti > 0 && !all_types) continue;
                    if (ti == 0 && only16) continue;
                    /* 16-bit streaming stores (common.cl, STOREY) do not
                     * depend on the group: at the CPU rules' 64 only. */
                    if (ti > 0 && (flags & CLNORM_K_STREAM) && wg != 64) continue;
                    const clnorm_progkey key = {wg, lanes_set[li], tree, flags, types[ti][0], types[ti][1]};
                    clnorm_build_options(d, &key, opts, sizeof opts);
                    const char *t = (d->features & CLNORM_FEAT_NV_SHFL) ? "nvptx" : d->features ? "x86" : "portable";
                    printf("%s\t%s\n", t, opts);
                }
            }
        }
    }
}

int main(void)
{
    clnorm_devinfo d;
    printf("files\t");
    for (int i = 0; i < CLNORM_PROGRAM_FILES; ++i)
        printf("%s%s", i ? " " : "", clnorm_program_files[i]);
    printf("\n");
    /* NVIDIA H200 (../shared/measurements/h200-2026-11-30/clinfo-nvidia.txt). */
    profile(&d, "NVIDIA CUDA", "NVIDIA H200", 0, 1024, 1);
    emit(&d, 0);
    d.is_cpu = 1; /* CLNORM_DEVICE_CLASS=cpu there: the CPU kernels */
    emit(&d, 0);
    /* A GPU without target features (Oclgrind's platform, say). */
    profile(&d, "Oclgrind", "Oclgrind Simulator", 0, 1024, 4);
    emit(&d, 0);
    d.is_cpu = 1;
    emit(&d, 0);
    /* PoCL's CPU device on AVX-512 (max work-group 4096, 16 floats per
     * native vector): every x86 feature on. */
    profile(&d, "Portable Computing Language", "pthread-skylake-avx512", 1, 4096, 16);
    emit(&d, 0);
    d.is_cpu = 0; /* CLNORM_DEVICE_CLASS=gpu there */
    emit(&d, 0);
    /* PoCL's CPU device on AVX2 (8 floats per native vector): 256-bit code,
     * bfloat16's even/odd vectors (common.cl), 16-bit types only: its
     * float32 code is the AVX-512 profile's (512-bit registers are asked
     * for 16-bit types only). Its GPU class (not emitted) differs from the
     * AVX-512 profile's only by that attribute. */
    profile(&d, "Portable Computing Language", "pthread-haswell", 1, 4096, 8);
    emit(&d, 1);
    return 0;
}
