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
 * rules, inline PTX), PoCL's CPU device (CPU rules, its features), a GPU with
 * no target feature (the portable kernels every other driver gets), and each
 * of them under CLNORM_DEVICE_CLASS's other class. Work-group sizes: every power of two up
 * to the profile's maximum (a tuning file or clnorm_set_variant may force
 * any); lanes: 1, 32 (or the group when smaller) and the whole group, which
 * is what the row, column and merge plans launch with; tree: GPU rules only;
 * flags: every subset of CLNORM_K_ALL that a plan can hold; storage types:
 * every (x, parameter) pair of clnorm_dtype the API accepts.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static void profile(clnorm_devinfo *d, const char *platform, const char *name, int type_cpu, size_t max_wg)
{
    memset(d, 0, sizeof *d);
    snprintf(d->platform, sizeof d->platform, "%s", platform);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->type_cpu = type_cpu;
    d->is_cpu = type_cpu;
    d->compute_units = 1;
    d->max_wg = max_wg;
    clnorm_profile_features(d);
}

static void emit(const clnorm_devinfo *d)
{
    char opts[512];
    const unsigned tree = d->is_cpu ? 0u : 1u;
    for (unsigned wg = 1; wg <= d->max_wg; wg *= 2) {
        const unsigned lanes_set[3] = {1u, wg < 32 ? wg : 32u, wg};
        for (int li = 0; li < 3; ++li) {
            if (li > 0 && lanes_set[li] == lanes_set[li - 1]) continue;
            for (unsigned flags = 0; flags <= CLNORM_K_ALL; ++flags) {
                if (flags & ~CLNORM_K_ALL) continue;
                /* RMS is RMSNorm's and RSTD_ZERO BatchNorm's and
                 * InstanceNorm's (plan.c): no plan has both. */
                if ((flags & CLNORM_K_RMS) && (flags & CLNORM_K_RSTD_ZERO)) continue;
                /* LP is LpNormalization's (LayerNorm rows): never with RSTD_ZERO. */
                if ((flags & CLNORM_K_LP) && (flags & CLNORM_K_RSTD_ZERO)) continue;
                /* Storage types: x's (XT) by the parameters' (PT: float32
                 * or x's type), every pair a plan can hold. */
                static const unsigned types[5][2] = {{0, 0}, {1, 0}, {1, 1}, {2, 0}, {2, 2}};
                for (int ti = 0; ti < 5; ++ti) {
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
    profile(&d, "NVIDIA CUDA", "NVIDIA H200", 0, 1024);
    emit(&d);
    d.is_cpu = 1; /* CLNORM_DEVICE_CLASS=cpu there: the CPU kernels */
    emit(&d);
    /* A GPU without target features (Oclgrind's platform, say). */
    profile(&d, "Oclgrind", "Oclgrind Simulator", 0, 1024);
    emit(&d);
    d.is_cpu = 1;
    emit(&d);
    /* PoCL's CPU device (max work-group 4096). */
    profile(&d, "Portable Computing Language", "pthread-cpu", 1, 4096);
    emit(&d);
    d.is_cpu = 0; /* CLNORM_DEVICE_CLASS=gpu there */
    emit(&d);
    return 0;
}
