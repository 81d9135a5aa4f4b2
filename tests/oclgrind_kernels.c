/*
 * clnorm's kernels under Oclgrind's checks: out-of-bounds accesses, races in
 * local and global memory, barrier divergence, uninitialized values, and
 * OpenCL API errors. The CTest entry oclgrind_kernels runs this program
 * through tests/oclgrind_check.cmake, once per device class:
 *   oclgrind --data-races --uninitialized --check-api
 *            --build-options -cl-opt-disable oclgrind_kernels gpu
 *   oclgrind --data-races --check-api oclgrind_kernels cpu
 * (that file says why the CPU run goes without --uninitialized), and fails
 * on any Oclgrind report, a failed comparison or a non-zero exit status.
 *
 * Every case of the table below runs under the rules of each class it
 * lists: the GPU rules (float4 loads, tree sums, rows cached in registers,
 * one column per work-item) and the CPU rules (16-wide vectors, serial
 * segment sums, pipelined rows, column tiles, col_wave), forced with
 * CLNORM_DEVICE_CLASS, which a context reads when it is created. Oclgrind
 * reports every device type at once (GPU, CPU and accelerator), so without
 * the variable clnorm's profile would take it for a CPU.
 *
 * Buffers are tight, so that Oclgrind sees a stray access: each is exactly
 * offset + payload floats, and outputs are never written by the host. A
 * read past the end is out of bounds; a read of an output (or of scratch)
 * before the kernels wrote it is an uninitialized value; a read of an
 * input's offset prefix gets NaN, which the comparison catches.
 * Every result is compared with the double-precision reference
 * (tests/reference.c) with th_compare's tolerances.
 *
 * float16/bfloat16 storage (the "half" rows): the same check functions put
 * x, y, residual, h_out, dy and dx on tight
 * buffers of 16-bit elements (scale and bias of param_dtype; statistics
 * and gradients of the parameters float32), with a 16-bit NaN before an
 * input's payload, and compare with the reference on the widened inputs
 * with th_storage_tol (th_compare_storage, th_compare_storage_bwd).
 *
 * Kernel families join by adding rows to og_cases with their own `check`
 * function (og_check_forward, og_check_backward: in a backward row, `stats`
 * asks for dx, `scale` for dscale, `bias` for dbias), so that they run
 * under the same checks, classes and variants.
 *
 * The one large shape: col_wave (channels-last InstanceNorm/GroupNorm on
 * CPUs) runs only with 2..16 samples of C a multiple of 16 and at least
 * 1 MiB each; under --data-races such a case takes Oclgrind a few seconds.
 * Unreachable here: row_norm's CPU pipeline at lag 2 and streaming stores,
 * which need a reported cache size (Oclgrind reports none).
 */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the case table ----------------------------------------------------- */

enum { OG_GPU = 1, OG_CPU = 2, OG_BOTH = OG_GPU | OG_CPU };
enum {
    OG_IN_PLACE = 1, /* y is x */
    OG_OFFSET = 2,   /* every buffer at a non-zero element offset */
    OG_DX_ONLY = 4,  /* backward: scale passed, dscale not asked for */
    OG_RESID = 8,    /* LayerNorm/RMSNorm: the fused residual add, with h_out */
    OG_NOH = 16      /* the fused residual add without h_out (the CPU pipeline re-adds x and r) */
};
/* Variant sets, as bits of th_variants (common.c, in this order): AUTO, WG,
 * SUBGROUP, WI, SPLIT, WG with 32 work-items, SPLIT with 64. */
#define V_AUTO 0x01u
#define V_SPLIT 0x10u
#define V_SPLITS 0x50u /* SPLIT, SPLIT/64 */
#define V_ALL 0x7fu

typedef struct og_case og_case;
struct og_case {
    const char *label;
    int (*check)(clnorm_ctx *ctx, const og_case *c); /* runs one case; 0 = pass */
    unsigned classes;                                 /* OG_GPU, OG_CPU */
    unsigned variants;                                /* bits of th_variants */
    clnorm_desc d;                                    /* op, shape, scalars */
    int scale, bias, stats;                           /* pass these buffers */
    int running;                                      /* 1: running stats; 0: BatchNorm only; -1: none */
    unsigned flags;                                   /* OG_IN_PLACE, OG_OFFSET */
    th_kind kind;
};

static int og_check_forward(clnorm_ctx *ctx, const og_case *c);
static int og_check_backward(clnorm_ctx *ctx, const og_case *c);
static int og_check_lp(clnorm_ctx *ctx, const og_case *c);

#define ROWS(o, r, cl) {.op = (o), .rows = (r), .cols = (cl), .eps = 1e-5f, .momentum = 0.1f, .training = 1, .groups = 1}
#define CHAN(o, lay, N, C, G, train, rk, s0, s1)                                                           \
    {.op = (o), .layout = (lay), .n = (N), .c = (C), .groups = (G), .training = (train), .rank = (rk),    \
     .spatial = {(s0), (s1), 0}, .eps = 1e-5f, .momentum = 0.1f}
/* 16-bit storage: x (and y, residual, h_out, dy, dx) of type t, scale and
 * bias of pt (CLNORM_FLOAT32 or t). */
#define HROWS(o, r, cl, t, pt)                                                                            \
    {.op = (o), .rows = (r), .cols = (cl), .eps = 1e-5f, .momentum = 0.1f, .training = 1, .groups = 1,    \
     .dtype = (t), .param_dtype = (pt)}
#define HCHAN(o, lay, N, C, G, train, rk, s0, s1, t, pt)                                                  \
    {.op = (o), .layout = (lay), .n = (N), .c = (C), .groups = (G), .training = (train), .rank = (rk),    \
     .spatial = {(s0), (s1), 0}, .eps = 1e-5f, .momentum = 0.1f, .dtype = (t), .param_dtype = (pt)}
#define F16 CLNORM_FLOAT16
#define BF16 CLNORM_BFLOAT16
#define F32 CLNORM_FLOAT32
#define HFWD og_check_forward  /* the same checks; a 16-bit dtype picks the storage comparison */
#define HBWD og_check_backward
#define FWD og_check_forward
#define BWD og_check_backward /* scale: dscale too; bias: dbias too; OG_IN_PLACE: dx is dy */
#define LPN og_check_lp        /* LpNormalization; the descriptor's lp is p */
#define LPROWS(r, cl, p) {.op = CLNORM_LAYER_NORM, .rows = (r), .cols = (cl), .training = 1, .groups = 1, .lp = (p)}
#define LPCOLS(N, S, C, p)                                                                                  \
    {.op = CLNORM_INSTANCE_NORM, .layout = CLNORM_CHANNELS_LAST, .n = (N), .c = (C), .groups = 1,          \
     .rank = 1, .spatial = {(S), 0, 0}, .lp = (p)}
#define LN CLNORM_LAYER_NORM
#define RMS CLNORM_RMS_NORM
#define BN CLNORM_BATCH_NORM
#define IN CLNORM_INSTANCE_NORM
#define GN CLNORM_GROUP_NORM
#define NCHW CLNORM_CHANNELS_FIRST
#define NHWC CLNORM_CHANNELS_LAST

/* label, check, classes, variants, descriptor, scale, bias, stats, running, flags, data */
static const og_case og_cases[] = {
    /* Contiguous sets (row_norm): rows with a tail past the last vector;
     * 1500 columns exceed what SUBGROUP and WG/32 hold in registers (GPU:
     * lanes x 32 floats), so both the cached and the re-reading paths run. */
    {"LN 7x301", FWD, OG_BOTH, V_ALL, ROWS(LN, 7, 301), 1, 1, 1, 0, 0, TH_NORMAL},
    {"LN 3x1500", FWD, OG_BOTH, V_ALL, ROWS(LN, 3, 1500), 1, 1, 1, 0, 0, TH_OFFSET_1E4},
    {"RMS 5x257", FWD, OG_BOTH, V_ALL, ROWS(RMS, 5, 257), 1, 0, 1, 0, 0, TH_NORMAL},
    {"LN in place, offsets", FWD, OG_BOTH, V_ALL, ROWS(LN, 4, 67), 1, 1, 1, 0, OG_IN_PLACE | OG_OFFSET,
     TH_NORMAL},
    {"LN no affine, no stats", FWD, OG_BOTH, V_AUTO, ROWS(LN, 3, 100), 0, 0, 0, 0, 0, TH_MIXED_CONSTANT},
    {"LN fused add, no h_out", FWD, OG_BOTH, V_AUTO | V_SPLIT, ROWS(LN, 4, 301), 1, 1, 1, 0, OG_NOH, TH_NORMAL},
    /* Split sets: row_partials, merge_partials, row_apply (2 chunks of 4096
     * and more); AUTO on CPUs takes a 5000-element row in pieces. */
    {"LN split 2x5000", FWD, OG_BOTH, V_SPLITS | V_AUTO, ROWS(LN, 2, 5000), 1, 1, 1, 0, 0, TH_NORMAL},
    {"RMS split 2x5000", FWD, OG_BOTH, V_SPLIT, ROWS(RMS, 2, 5000), 1, 1, 1, 0, OG_OFFSET, TH_NORMAL},
    {"IN split, running", FWD, OG_BOTH, V_SPLIT, CHAN(IN, NCHW, 2, 1, 1, 1, 2, 50, 90), 1, 1, 1, 1, 0,
     TH_NORMAL},

    /* Channels-first InstanceNorm/GroupNorm with batch statistics are rows
     * too; tracked InstanceNorm adds update_running, its inference
     * fold_table + apply_table. */
    {"IN nchw", FWD, OG_BOTH, V_ALL, CHAN(IN, NCHW, 2, 3, 1, 1, 2, 5, 7), 1, 1, 1, 0, 0, TH_NORMAL},
    {"IN nchw running", FWD, OG_BOTH, V_ALL, CHAN(IN, NCHW, 2, 3, 1, 1, 2, 5, 7), 1, 1, 1, 1, OG_OFFSET,
     TH_NORMAL},
    {"IN nchw running inference", FWD, OG_BOTH, V_AUTO, CHAN(IN, NCHW, 2, 3, 1, 0, 2, 5, 7), 1, 1, 0, 1, 0,
     TH_NORMAL},
    {"IN nchw per-sample affine", FWD, OG_BOTH, V_AUTO,
     {.op = IN, .n = 2, .c = 3, .rank = 1, .spatial = {33}, .groups = 1, .training = 1, .per_sample_affine = 1,
      .eps = 1e-5f, .momentum = 0.1f},
     1, 1, 1, 0, 0, TH_NORMAL},
    /* Planes of whole vectors (S a multiple of 4): per-channel affine from
     * registers on GPUs. */
    {"IN nchw S=36 per-sample affine, in place", FWD, OG_BOTH, V_ALL,
     {.op = IN, .n = 2, .c = 3, .rank = 2, .spatial = {4, 9}, .groups = 1, .training = 1, .per_sample_affine = 1,
      .eps = 1e-5f, .momentum = 0.1f},
     1, 1, 1, 0, OG_IN_PLACE, TH_NORMAL},
    {"GN nchw in place", FWD, OG_BOTH, V_ALL, CHAN(GN, NCHW, 2, 6, 3, 1, 2, 4, 5), 1, 1, 1, 0, OG_IN_PLACE,
     TH_NORMAL},
    {"GN nchw", FWD, OG_BOTH, V_ALL, CHAN(GN, NCHW, 2, 6, 3, 1, 2, 4, 5), 1, 1, 1, 0, 0, TH_NORMAL},

    /* Channels-last InstanceNorm/GroupNorm: col_partials, merge, fold, apply. */
    {"IN nhwc", FWD, OG_BOTH, V_AUTO, CHAN(IN, NHWC, 2, 5, 1, 1, 2, 6, 7), 1, 1, 1, 0, 0, TH_NORMAL},
    {"IN nhwc running", FWD, OG_BOTH, V_AUTO, CHAN(IN, NHWC, 2, 5, 1, 1, 2, 6, 7), 1, 1, 1, 1, OG_OFFSET,
     TH_NORMAL},
    {"IN nhwc running inference", FWD, OG_BOTH, V_AUTO, CHAN(IN, NHWC, 2, 5, 1, 0, 2, 6, 7), 1, 1, 0, 1, 0,
     TH_NORMAL},
    {"GN nhwc", FWD, OG_BOTH, V_AUTO, CHAN(GN, NHWC, 2, 8, 4, 1, 2, 5, 6), 1, 1, 1, 0, 0, TH_NORMAL},
    /* CPUs: col_wave, N + 1 launches that read sample w while writing
     * sample w - 1 (1 MiB per sample, the rule's minimum). */
    {"GN nhwc col_wave", FWD, OG_CPU, V_AUTO, CHAN(GN, NHWC, 2, 32, 8, 1, 2, 64, 128), 1, 1, 1, 0, 0, TH_NORMAL},
    {"IN nhwc col_wave running", FWD, OG_CPU, V_AUTO, CHAN(IN, NHWC, 3, 16, 1, 1, 2, 128, 128), 1, 1, 1, 1,
     OG_OFFSET, TH_NORMAL},
    /* CPU column tiles: 40 columns are 2 vectors of 16 and a scalar tail;
     * 40 rows are blocks of 8 with the next block prefetched. */
    {"GN nhwc 40 channels", FWD, OG_BOTH, V_AUTO, CHAN(GN, NHWC, 2, 40, 5, 1, 2, 5, 8), 1, 1, 1, 0, 0,
     TH_NORMAL},

    /* BatchNorm: channels-first with short planes as columns (S < 64),
     * with long planes as rows (row_partials), channels-last as columns,
     * rank 0; training with running statistics (update_running) and
     * inference from them (fold_table + apply_table). */
    {"BN nchw short planes", FWD, OG_BOTH, V_AUTO, CHAN(BN, NCHW, 3, 4, 1, 1, 2, 5, 5), 1, 1, 1, 1, 0,
     TH_NORMAL},
    {"BN nchw long planes", FWD, OG_BOTH, V_ALL, CHAN(BN, NCHW, 2, 3, 1, 1, 2, 9, 9), 1, 1, 1, 1, OG_OFFSET,
     TH_NORMAL},
    {"BN nchw inference", FWD, OG_BOTH, V_AUTO, CHAN(BN, NCHW, 2, 3, 1, 0, 2, 9, 9), 1, 1, 0, 1, 0, TH_NORMAL},
    {"BN nhwc", FWD, OG_BOTH, V_AUTO, CHAN(BN, NHWC, 3, 5, 1, 1, 2, 4, 6), 1, 1, 1, 1, 0, TH_NORMAL},
    {"BN nhwc no running", FWD, OG_BOTH, V_AUTO, CHAN(BN, NHWC, 3, 5, 1, 1, 2, 4, 6), 0, 1, 1, -1, 0,
     TH_NORMAL},
    {"BN nhwc in place", FWD, OG_BOTH, V_AUTO, CHAN(BN, NHWC, 3, 5, 1, 1, 2, 4, 6), 1, 1, 1, 1, OG_IN_PLACE,
     TH_NORMAL},
    {"BN nhwc inference", FWD, OG_BOTH, V_AUTO, CHAN(BN, NHWC, 3, 5, 1, 0, 2, 4, 6), 1, 1, 0, 1, 0, TH_NORMAL},
    {"BN rank 0", FWD, OG_BOTH, V_AUTO, CHAN(BN, NCHW, 8, 5, 1, 1, 0, 0, 0), 1, 1, 1, 1, OG_OFFSET, TH_NORMAL},
    {"BN rank 0 inference", FWD, OG_BOTH, V_AUTO, CHAN(BN, NCHW, 8, 5, 1, 0, 0, 0, 0), 1, 1, 0, 1, 0,
     TH_NORMAL},
    /* CPU column tiles of 1024 columns: a second tile of one vector and a
     * scalar tail. */
    {"BN rank 0 1041 channels", FWD, OG_BOTH, V_AUTO, CHAN(BN, NCHW, 3, 1041, 1, 1, 0, 0, 0), 1, 1, 1, 1, 0,
     TH_NORMAL},
    /* Backward (kernels/backward.cl): bwd_rows whole and split (phases 1
     * and 2), bwd_params, the sums/merge/table/apply pipeline, running
     * statistics, in place. */
    {"bwd LN 7x301", BWD, OG_BOTH, V_AUTO, ROWS(LN, 7, 301), 1, 1, 1, 0, OG_OFFSET, TH_NORMAL},
    {"bwd RMS 5x257 in place", BWD, OG_BOTH, V_AUTO, ROWS(RMS, 5, 257), 1, 1, 1, 0, OG_IN_PLACE, TH_NORMAL},
    {"bwd LN split 2x5000", BWD, OG_BOTH, V_AUTO | V_SPLIT, ROWS(LN, 2, 5000), 1, 1, 1, 0, 0, TH_OFFSET_1E4},
    {"bwd LN 40x33 dx only", BWD, OG_BOTH, V_AUTO, ROWS(LN, 40, 33), 0, 0, 1, 0, 0, TH_NORMAL},
    {"bwd GN nchw", BWD, OG_BOTH, V_AUTO, CHAN(GN, NCHW, 2, 6, 3, 1, 2, 4, 5), 1, 1, 1, 0, OG_OFFSET, TH_NORMAL},
    {"bwd IN nchw split", BWD, OG_BOTH, V_SPLIT, CHAN(IN, NCHW, 2, 1, 1, 1, 2, 50, 90), 1, 1, 1, 0, 0,
     TH_NORMAL},
    {"bwd GN nhwc", BWD, OG_BOTH, V_AUTO, CHAN(GN, NHWC, 2, 8, 4, 1, 2, 5, 6), 1, 1, 1, 0, OG_IN_PLACE,
     TH_NORMAL},
    {"bwd BN nchw long planes", BWD, OG_BOTH, V_AUTO, CHAN(BN, NCHW, 2, 3, 1, 1, 2, 9, 9), 1, 1, 1, -1,
     OG_OFFSET, TH_NORMAL},
    {"bwd BN nchw short planes", BWD, OG_BOTH, V_AUTO, CHAN(BN, NCHW, 3, 4, 1, 1, 2, 5, 5), 1, 1, 1, -1, 0,
     TH_NORMAL},
    {"bwd BN nhwc", BWD, OG_BOTH, V_AUTO, CHAN(BN, NHWC, 3, 5, 1, 1, 2, 4, 6), 1, 1, 1, -1, 0, TH_NORMAL},
    {"bwd BN rank 0 1041 channels", BWD, OG_BOTH, V_AUTO, CHAN(BN, NCHW, 3, 1041, 1, 1, 0, 0, 0), 1, 1, 1, -1,
     0, TH_NORMAL},
    {"bwd BN nhwc inference", BWD, OG_BOTH, V_AUTO, CHAN(BN, NHWC, 3, 5, 1, 0, 2, 4, 6), 1, 1, 0, 1, OG_OFFSET,
     TH_NORMAL},
    {"bwd BN inference dx only", BWD, OG_BOTH, V_AUTO, CHAN(BN, NCHW, 2, 3, 1, 0, 2, 9, 9), 1, 0, 1, 1,
     OG_DX_ONLY, TH_NORMAL},
    {"bwd IN nhwc running inference", BWD, OG_BOTH, V_AUTO, CHAN(IN, NHWC, 2, 5, 1, 0, 2, 6, 7), 1, 1, 0, 1, 0,
     TH_NORMAL},

    /* LpNormalization (the RMS statistics with LP): rows (row_norm, the
     * split pipeline), and sets along an outer axis as channels-last
     * InstanceNorm's columns: col_partials (GPU: a column per work-item;
     * CPU: tiles, a 21-channel scalar tail), merge, fold, apply, and
     * col_wave on CPUs (1 MiB samples of 16 channels). */
    {"LP rows p2 7x301", LPN, OG_BOTH, V_AUTO, LPROWS(7, 301, 2), 0, 0, 0, 0, OG_OFFSET, TH_NORMAL},
    {"LP rows p1 split 2x5000", LPN, OG_BOTH, V_SPLIT, LPROWS(2, 5000, 1), 0, 0, 0, 0, 0, TH_NORMAL},
    {"LP cols p1 2x37x21", LPN, OG_BOTH, V_AUTO, LPCOLS(2, 37, 21, 1), 0, 0, 0, 0, OG_OFFSET, TH_NORMAL},
    {"LP cols p2 1x300x5", LPN, OG_BOTH, V_AUTO, LPCOLS(1, 300, 5, 2), 0, 0, 0, 0, 0, TH_NORMAL},
    {"LP cols p2 col_wave", LPN, OG_CPU, V_AUTO, LPCOLS(2, 16384, 16, 2), 0, 0, 0, 0, 0, TH_NORMAL},

    /* float16/bfloat16 storage (LDX/STX, LDXV/STXV, LDP in common.cl):
     * 16-bit x, y, residual, h_out, dy, dx on tight 16-bit buffers, params
     * in float32 or x's type, against the reference on the widened inputs
     * with th_storage_tol (og_check_forward/backward on 16-bit buffers). Row tails past
     * the last vector (301, 257, 67 columns), odd channel counts for the
     * column kernels. */
    {"half LN f16 7x301", HFWD, OG_BOTH, V_AUTO | 0x0eu, HROWS(LN, 7, 301, F16, F32), 1, 1, 1, 0, 0, TH_NORMAL},
    {"half LN bf16 in place, offsets", HFWD, OG_BOTH, V_AUTO, HROWS(LN, 4, 67, BF16, BF16), 1, 1, 1, 0,
     OG_IN_PLACE | OG_OFFSET, TH_NORMAL},
    {"half LN bf16 split 2x5000", HFWD, OG_BOTH, V_SPLIT, HROWS(LN, 2, 5000, BF16, F32), 1, 1, 1, 0, 0,
     TH_NORMAL},
    {"half RMS f16 fused add", HFWD, OG_BOTH, V_AUTO, HROWS(RMS, 5, 257, F16, F16), 1, 0, 1, 0,
     OG_RESID | OG_OFFSET, TH_NORMAL},
    {"half RMS bf16 fused add", HFWD, OG_BOTH, V_AUTO, HROWS(RMS, 5, 257, BF16, F32), 1, 0, 1, 0, OG_RESID,
     TH_NORMAL},
    {"half LN f16 fused add, no h_out", HFWD, OG_BOTH, V_AUTO, HROWS(LN, 5, 257, F16, F32), 1, 1, 1, 0,
     OG_NOH | OG_OFFSET, TH_NORMAL},
    {"half GN nchw f16", HFWD, OG_BOTH, V_AUTO, HCHAN(GN, NCHW, 2, 6, 3, 1, 2, 4, 5, F16, F32), 1, 1, 1, 0, 0,
     TH_NORMAL},
    {"half GN nchw bf16 in place", HFWD, OG_BOTH, V_AUTO, HCHAN(GN, NCHW, 2, 6, 3, 1, 2, 4, 5, BF16, BF16), 1, 1,
     1, 0, OG_IN_PLACE, TH_NORMAL},
    {"half GN nhwc f16", HFWD, OG_BOTH, V_AUTO, HCHAN(GN, NHWC, 2, 8, 4, 1, 2, 5, 6, F16, F16), 1, 1, 1, 0, 0,
     TH_NORMAL},
    {"half GN nhwc bf16 40 channels", HFWD, OG_BOTH, V_AUTO, HCHAN(GN, NHWC, 2, 40, 5, 1, 2, 5, 8, BF16, F32), 1,
     1, 1, 0, OG_OFFSET, TH_NORMAL},
    {"half BN nhwc f16", HFWD, OG_BOTH, V_AUTO, HCHAN(BN, NHWC, 3, 5, 1, 1, 2, 4, 6, F16, F32), 1, 1, 1, 1, 0,
     TH_NORMAL},
    {"half BN nhwc bf16", HFWD, OG_BOTH, V_AUTO, HCHAN(BN, NHWC, 3, 5, 1, 1, 2, 4, 6, BF16, BF16), 1, 1, 1, 1,
     OG_OFFSET, TH_NORMAL},
    {"half BN nhwc inference f16", HFWD, OG_BOTH, V_AUTO, HCHAN(BN, NHWC, 3, 5, 1, 0, 2, 4, 6, F16, F16), 1, 1, 0,
     1, OG_OFFSET, TH_NORMAL},
    {"half BN nhwc inference bf16", HFWD, OG_BOTH, V_AUTO, HCHAN(BN, NHWC, 3, 5, 1, 0, 2, 4, 6, BF16, F32), 1, 1,
     0, 1, 0, TH_NORMAL},
    {"half IN nchw f16", HFWD, OG_BOTH, V_AUTO, HCHAN(IN, NCHW, 2, 3, 1, 1, 2, 5, 7, F16, F16), 1, 1, 1, 0, 0,
     TH_NORMAL},
    {"half IN nchw bf16", HFWD, OG_BOTH, V_AUTO, HCHAN(IN, NCHW, 2, 3, 1, 1, 2, 5, 7, BF16, F32), 1, 1, 1, 0,
     OG_OFFSET, TH_NORMAL},
    {"half bwd LN f16", HBWD, OG_BOTH, V_AUTO, HROWS(LN, 7, 301, F16, F32), 1, 1, 1, 0, OG_OFFSET, TH_NORMAL},
    {"half bwd LN bf16 in place", HBWD, OG_BOTH, V_AUTO, HROWS(LN, 7, 301, BF16, BF16), 1, 1, 1, 0, OG_IN_PLACE,
     TH_NORMAL},
    {"half bwd BN nhwc f16", HBWD, OG_BOTH, V_AUTO, HCHAN(BN, NHWC, 3, 5, 1, 1, 2, 4, 6, F16, F16), 1, 1, 1, -1,
     0, TH_NORMAL},
    {"half bwd BN nhwc bf16", HBWD, OG_BOTH, V_AUTO, HCHAN(BN, NHWC, 3, 5, 1, 1, 2, 4, 6, BF16, F32), 1, 1, 1, -1,
     OG_OFFSET, TH_NORMAL},
};
static const size_t og_case_count = sizeof og_cases / sizeof og_cases[0];

/* ---- running one forward case on tight buffers --------------------------- */

typedef struct og_buf {
    cl_mem mem;
    size_t off, len;
} og_buf;

/* A buffer of exactly off + len elements of type t (4 or 2 bytes): an
 * output (payload NULL) is left uninitialized; an input gets the payload,
 * rounded to t, at off and a NaN guard of t before it (16-bit: quiet NaNs
 * with a payload). (Not a write of the payload alone at offset off:
 * Oclgrind 21.10 then marks bytes [0, len) initialized instead of [off,
 * off + len), and reports reads of the last off elements as uninitialized
 * values.) */
static int og_buf_make(clnorm_ctx *ctx, og_buf *b, clnorm_dtype t, size_t off, size_t len, const float *payload)
{
    const size_t es = clnorm_dtype_size(t), bytes = (off + len) * es;
    cl_int err;
    b->off = off;
    b->len = len;
    b->mem = clCreateBuffer(clnorm_cl_context(ctx), CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (!b->mem) {
        th_fail("clCreateBuffer(%zu %s elements): %d", off + len, th_dtype_name(t), err);
        return -1;
    }
    if (payload) {
        unsigned char *all = malloc(bytes);
        if (!all) {
            th_fail("out of host memory");
            return -1;
        }
        for (size_t i = 0; i < off + len; i++) {
            const float v = i < off ? th_from_bits(TH_GUARD_BITS) : payload[i - off];
            const uint16_t h = i < off ? (t == CLNORM_FLOAT16 ? 0x7e5au : 0x7fdau) : es == 2 ? th_to16(t, v) : 0;
            memcpy(all + i * es, es == 4 ? (const void *)&v : (const void *)&h, es);
        }
        err = clEnqueueWriteBuffer(clnorm_queue(ctx), b->mem, CL_TRUE, 0, bytes, all, 0, NULL, NULL);
        free(all);
        if (err != CL_SUCCESS) {
            th_fail("clEnqueueWriteBuffer: %d", err);
            return -1;
        }
    }
    return 0;
}

/* Reads a buffer of type t back, widened to float. */
static int og_buf_read(clnorm_ctx *ctx, const og_buf *b, clnorm_dtype t, float *out)
{
    const size_t es = clnorm_dtype_size(t);
    unsigned char *raw = malloc((b->len ? b->len : 1) * es);
    if (!raw) {
        th_fail("out of host memory");
        return -1;
    }
    cl_int err = clEnqueueReadBuffer(clnorm_queue(ctx), b->mem, CL_TRUE, b->off * es, b->len * es, raw, 0, NULL,
                                     NULL);
    if (err != CL_SUCCESS) {
        th_fail("clEnqueueReadBuffer: %d", err);
    } else {
        for (size_t i = 0; i < b->len; i++) {
            uint16_t h;
            memcpy(es == 4 ? (void *)&out[i] : (void *)&h, raw + i * es, es);
            if (es == 2) out[i] = th_from16(t, h);
        }
    }
    free(raw);
    return err == CL_SUCCESS ? 0 : -1;
}

static clnorm_buf og_ref(const og_buf *b)
{
    clnorm_buf r = {b->mem, b->off};
    return r;
}

static int is_rows(const clnorm_desc *d) { return d->op == CLNORM_LAYER_NORM || d->op == CLNORM_RMS_NORM; }

#define OG_HALF_AMP 3.0 /* 16-bit rows: x ~ N(1.5, 3), as test_half */

/* A forward case on tight buffers: x (residual, y, h_out) of d.dtype, scale
 * and bias of d.param_dtype, statistics float32. float32 rows draw x by
 * their kind and compare with th_compare; 16-bit rows draw normal data
 * rounded to the types and compare on the widened inputs with
 * th_compare_storage (with OG_RESID, x + residual rounded to the type, which
 * h_out must hold bit for bit). */
static int og_check_forward(clnorm_ctx *ctx, const og_case *c)
{
    const clnorm_desc *shape = &c->d;
    const clnorm_dtype t = shape->dtype, pt = shape->param_dtype;
    th_rng r;
    th_rng_init(&r, th_next_seed());
    const size_t E = ref_elements(shape), sets = ref_sets(shape), aff = ref_affine_len(shape);
    const size_t C = is_rows(shape) ? 1 : shape->c;
    if (!E || !sets) {
        th_fail("an invalid shape (a bad table entry)");
        return 1;
    }
    const int running = c->running > 0 || (c->running == 0 && shape->op == CLNORM_BATCH_NORM);
    const int train = is_rows(shape) || shape->op == CLNORM_GROUP_NORM || shape->training;
    const int want_mean = c->stats && train && shape->op != CLNORM_RMS_NORM, want_rstd = c->stats && train;
    const int resid = (c->flags & (OG_RESID | OG_NOH)) != 0, keep_h = (c->flags & OG_RESID) != 0;
    float *x = malloc(E * sizeof *x), *y = malloc(E * sizeof *y), *res = malloc(E * sizeof *res);
    float *h = malloc(E * sizeof *h), *gh = malloc(E * sizeof *gh);
    float *scale = malloc(aff * sizeof *scale), *bias = malloc(aff * sizeof *bias);
    float *rm = malloc(C * sizeof *rm), *rv = malloc(C * sizeof *rv);
    float *rmo = malloc(C * sizeof *rmo), *rvo = malloc(C * sizeof *rvo);
    float *mean = malloc(sets * sizeof *mean), *rstd = malloc(sets * sizeof *rstd);
    enum { BX, BY, BS, BB, BM, BR, BRM, BRV, BRES, BH, NB };
    og_buf b[NB];
    memset(b, 0, sizeof b);
    int fails = 1;
    if (!x || !y || !res || !h || !gh || !scale || !bias || !rm || !rv || !rmo || !rvo || !mean || !rstd) {
        th_fail("out of host memory");
        goto out;
    }
    if (t == CLNORM_FLOAT32) {
        th_fill(&r, shape, c->kind, x);
    } else {
        th_fill_normal(&r, x, E, 0.5 * OG_HALF_AMP, OG_HALF_AMP);
        th_quantize(t, x, E);
    }
    th_fill_normal(&r, res, E, 0.0, OG_HALF_AMP);
    th_quantize(t, res, E);
    for (size_t i = 0; i < E; i++)
        h[i] = !resid ? x[i] : t == CLNORM_FLOAT32 ? x[i] + res[i] : th_from16(t, th_to16(t, x[i] + res[i]));
    th_fill_normal(&r, scale, aff, 1.0, 0.5);
    th_fill_normal(&r, bias, aff, 0.0, 1.0);
    th_quantize(pt, scale, aff);
    th_quantize(pt, bias, aff);
    th_fill_normal(&r, rm, C, c->kind == TH_OFFSET_1E4 ? 1e4 : 0.0, 1.0);
    th_fill_uniform(&r, rv, C, 0.5, 2.0);
    if (ref_forward(shape, h, c->scale ? scale : NULL, c->bias ? bias : NULL, running ? rm : NULL,
                    running ? rv : NULL, NULL, NULL, NULL, NULL, NULL) != 0) {
        th_fail("the reference rejects this case (a bad table entry)");
        goto out;
    }

    /* Distinct offsets per buffer, so that a kernel using the wrong one reads
     * uninitialized memory or out of bounds. */
    const int offs = (c->flags & OG_OFFSET) != 0;
    int bad = og_buf_make(ctx, &b[BX], t, offs ? 3 : 0, E, x);
    if (!(c->flags & OG_IN_PLACE))
        bad |= og_buf_make(ctx, &b[BY], t, offs ? 5 : 0, E, NULL);
    if (c->scale) bad |= og_buf_make(ctx, &b[BS], pt, offs ? 7 : 0, aff, scale);
    if (c->bias) bad |= og_buf_make(ctx, &b[BB], pt, offs ? 2 : 0, aff, bias);
    if (want_mean) bad |= og_buf_make(ctx, &b[BM], CLNORM_FLOAT32, offs ? 1 : 0, sets, NULL);
    if (want_rstd) bad |= og_buf_make(ctx, &b[BR], CLNORM_FLOAT32, offs ? 4 : 0, sets, NULL);
    if (running) {
        bad |= og_buf_make(ctx, &b[BRM], CLNORM_FLOAT32, offs ? 6 : 0, C, rm);
        bad |= og_buf_make(ctx, &b[BRV], CLNORM_FLOAT32, offs ? 9 : 0, C, rv);
    }
    if (resid) {
        bad |= og_buf_make(ctx, &b[BRES], t, offs ? 11 : 0, E, res);
        if (keep_h) bad |= og_buf_make(ctx, &b[BH], t, offs ? 13 : 0, E, NULL);
    }
    if (bad)
        goto out;

    clnorm_desc d = *shape;
    d.x = og_ref(&b[BX]);
    d.y = (c->flags & OG_IN_PLACE) ? d.x : og_ref(&b[BY]);
    d.scale = og_ref(&b[BS]);
    d.bias = og_ref(&b[BB]);
    d.mean = og_ref(&b[BM]);
    d.rstd = og_ref(&b[BR]);
    d.running_mean = og_ref(&b[BRM]);
    d.running_var = og_ref(&b[BRV]);
    d.residual = og_ref(&b[BRES]);
    d.h_out = og_ref(&b[BH]);
    cl_event ev = NULL;
    th_cases++;
    clnorm_status st = clnorm_forward(ctx, &d, 0, NULL, &ev);
    if (st != CLNORM_OK) {
        th_fail("clnorm_forward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
        goto out;
    }
    cl_int err = clWaitForEvents(1, &ev);
    clReleaseEvent(ev);
    if (err != CL_SUCCESS) {
        th_fail("clWaitForEvents: %d", err);
        goto out;
    }
    bad = og_buf_read(ctx, (c->flags & OG_IN_PLACE) ? &b[BX] : &b[BY], t, y);
    if (want_mean) bad |= og_buf_read(ctx, &b[BM], CLNORM_FLOAT32, mean);
    if (want_rstd) bad |= og_buf_read(ctx, &b[BR], CLNORM_FLOAT32, rstd);
    if (running) bad |= og_buf_read(ctx, &b[BRM], CLNORM_FLOAT32, rmo) | og_buf_read(ctx, &b[BRV], CLNORM_FLOAT32, rvo);
    if (keep_h) bad |= og_buf_read(ctx, &b[BH], t, gh);
    if (bad)
        goto out;
    th_inputs in = {h, c->scale ? scale : NULL, c->bias ? bias : NULL, running ? rm : NULL, running ? rv : NULL};
    th_outputs got = {y, want_mean ? mean : NULL, want_rstd ? rstd : NULL, running ? rmo : NULL,
                      running ? rvo : NULL};
    unsigned long nb = t == CLNORM_FLOAT32 ? th_compare(shape, &in, &got, 1.0, 1)
                                           : th_compare_storage(&d, &in, &got, OG_HALF_AMP, 1);
    for (size_t i = 0; keep_h && i < E; i++)
        if (th_bits(gh[i]) != th_bits(h[i]) && nb++ < 3)
            th_fail("h_out[%zu] = %.9g, want %.9g (x + residual rounded to %s)", i, (double)gh[i], (double)h[i],
                    th_dtype_name(t));
    fails = nb != 0;
out:
    for (int i = 0; i < NB; i++)
        if (b[i].mem)
            clReleaseMemObject(b[i].mem);
    free(x); free(y); free(res); free(h); free(gh); free(scale); free(bias); free(rm); free(rv); free(rmo);
    free(rvo); free(mean); free(rstd);
    return fails;
}

/* An LpNormalization case (a descriptor as clnorm_desc_lp_norm builds it:
 * LayerNorm rows, or channels-last InstanceNorm sets for an outer axis) on
 * a tight x and y, compared with th_compare_lp on the ONNX view of the
 * tensor: [rows][cols] along axis 1, or [n][S][C] along axis 1. */
static int og_check_lp(clnorm_ctx *ctx, const og_case *c)
{
    th_rng r;
    th_rng_init(&r, th_next_seed());
    const int rows = c->d.op == CLNORM_LAYER_NORM;
    const size_t dims[3] = {rows ? c->d.rows : c->d.n, rows ? c->d.cols : c->d.spatial[0], rows ? 1 : c->d.c};
    const size_t E = dims[0] * dims[1] * dims[2];
    float *x = malloc(E * sizeof *x), *y = malloc(E * sizeof *y);
    og_buf bx = {0, 0, 0}, by = {0, 0, 0};
    int fails = 1;
    if (!x || !y) {
        th_fail("out of host memory");
        goto out;
    }
    th_fill_normal(&r, x, E, 0.5, 2.0);
    const int offs = (c->flags & OG_OFFSET) != 0;
    if (og_buf_make(ctx, &bx, CLNORM_FLOAT32, offs ? 3 : 0, E, x) || og_buf_make(ctx, &by, CLNORM_FLOAT32, offs ? 5 : 0, E, NULL))
        goto out;
    clnorm_desc d = c->d;
    d.x = og_ref(&bx);
    d.y = og_ref(&by);
    cl_event ev = NULL;
    th_cases++;
    clnorm_status st = clnorm_forward(ctx, &d, 0, NULL, &ev);
    if (st != CLNORM_OK) {
        th_fail("clnorm_forward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
        goto out;
    }
    cl_int err = clWaitForEvents(1, &ev);
    clReleaseEvent(ev);
    if (err != CL_SUCCESS) {
        th_fail("clWaitForEvents: %d", err);
        goto out;
    }
    if (og_buf_read(ctx, &by, CLNORM_FLOAT32, y) == 0)
        fails = th_compare_lp(3, dims, 1, c->d.lp, x, y) != 0;
out:
    if (bx.mem) clReleaseMemObject(bx.mem);
    if (by.mem) clReleaseMemObject(by.mem);
    free(x), free(y);
    return fails;
}

/* A backward case: saved statistics as an exact forward writes them
 * (th_saved_stats of the widened x) with batch statistics, else running
 * statistics; x, dy, scale and the statistics on tight input buffers (x, dy
 * and dx of d.dtype, scale of d.param_dtype), dx (unless in place), dscale
 * (with scale, unless OG_DX_ONLY) and dbias (with bias) on tight output
 * buffers, dscale and dbias float32. float32 rows compare with
 * th_compare_bwd, 16-bit rows with th_compare_storage_bwd. */
static int og_check_backward(clnorm_ctx *ctx, const og_case *c)
{
    const clnorm_desc *shape = &c->d;
    const clnorm_dtype t = shape->dtype, pt = shape->param_dtype;
    th_rng r;
    th_rng_init(&r, th_next_seed());
    const size_t E = ref_elements(shape), sets = ref_sets(shape), aff = ref_affine_len(shape);
    const size_t C = is_rows(shape) ? 1 : shape->c;
    const int running = c->running > 0;
    const int batch = ref_backward_uses_batch(shape, running);
    const int want_mean = batch && shape->op != CLNORM_RMS_NORM;
    float *x = malloc(E * sizeof *x), *dy = malloc(E * sizeof *dy), *dx = malloc(E * sizeof *dx);
    float *scale = malloc(aff * sizeof *scale), *ds = malloc(aff * sizeof *ds), *db = malloc(aff * sizeof *db);
    float *rm = malloc(C * sizeof *rm), *rv = malloc(C * sizeof *rv);
    float *mean = malloc(sets * sizeof *mean), *rstd = malloc(sets * sizeof *rstd);
    enum { BX, BDY, BDX, BS, BDS, BDB, BM, BR, BRM, BRV, NB };
    og_buf b[NB];
    memset(b, 0, sizeof b);
    int fails = 1;
    if (!x || !dy || !dx || !scale || !ds || !db || !rm || !rv || !mean || !rstd) {
        th_fail("out of host memory");
        goto out;
    }
    if (t == CLNORM_FLOAT32)
        th_fill(&r, shape, c->kind, x);
    else
        th_fill_normal(&r, x, E, 1.0, 2.0);
    th_fill_normal(&r, dy, E, 0.0, 1.0);
    th_fill_normal(&r, scale, aff, 1.0, 0.5);
    th_quantize(t, x, E);
    th_quantize(t, dy, E);
    th_quantize(pt, scale, aff);
    th_fill_normal(&r, rm, C, c->kind == TH_OFFSET_1E4 ? 1e4 : 0.0, 1.0);
    th_fill_uniform(&r, rv, C, 0.5, 2.0);
    if (batch) th_saved_stats(shape, x, want_mean ? mean : NULL, rstd);
    const int offs = (c->flags & OG_OFFSET) != 0, in_place = (c->flags & OG_IN_PLACE) != 0;
    int bad = og_buf_make(ctx, &b[BX], t, offs ? 3 : 0, E, x);
    bad |= og_buf_make(ctx, &b[BDY], t, offs ? 8 : 0, E, dy);
    if (c->stats && !in_place) bad |= og_buf_make(ctx, &b[BDX], t, offs ? 5 : 0, E, NULL);
    if (c->scale) bad |= og_buf_make(ctx, &b[BS], pt, offs ? 7 : 0, aff, scale);
    const int want_ds = c->scale && !(c->flags & OG_DX_ONLY);
    if (want_ds) bad |= og_buf_make(ctx, &b[BDS], CLNORM_FLOAT32, offs ? 10 : 0, aff, NULL);
    if (c->bias) bad |= og_buf_make(ctx, &b[BDB], CLNORM_FLOAT32, offs ? 2 : 0, aff, NULL);
    if (want_mean) bad |= og_buf_make(ctx, &b[BM], CLNORM_FLOAT32, offs ? 1 : 0, sets, mean);
    if (batch) bad |= og_buf_make(ctx, &b[BR], CLNORM_FLOAT32, offs ? 4 : 0, sets, rstd);
    if (running) {
        bad |= og_buf_make(ctx, &b[BRM], CLNORM_FLOAT32, offs ? 6 : 0, C, rm);
        bad |= og_buf_make(ctx, &b[BRV], CLNORM_FLOAT32, offs ? 9 : 0, C, rv);
    }
    if (bad)
        goto out;
    clnorm_desc d = *shape;
    d.x = og_ref(&b[BX]);
    d.dy = og_ref(&b[BDY]);
    d.dx = c->stats && in_place ? d.dy : og_ref(&b[BDX]);
    d.scale = og_ref(&b[BS]);
    d.dscale = og_ref(&b[BDS]);
    d.dbias = og_ref(&b[BDB]);
    d.mean = og_ref(&b[BM]);
    d.rstd = og_ref(&b[BR]);
    d.running_mean = og_ref(&b[BRM]);
    d.running_var = og_ref(&b[BRV]);
    cl_event ev = NULL;
    th_cases++;
    clnorm_status st = clnorm_backward(ctx, &d, 0, NULL, &ev);
    if (st != CLNORM_OK) {
        th_fail("clnorm_backward: %s (%s)", clnorm_status_name(st), clnorm_last_error(ctx));
        goto out;
    }
    cl_int err = clWaitForEvents(1, &ev);
    clReleaseEvent(ev);
    if (err != CL_SUCCESS) {
        th_fail("clWaitForEvents: %d", err);
        goto out;
    }
    const int has_dx = d.dx.mem != NULL;
    if (has_dx) bad |= og_buf_read(ctx, in_place ? &b[BDY] : &b[BDX], t, dx);
    if (want_ds) bad |= og_buf_read(ctx, &b[BDS], CLNORM_FLOAT32, ds);
    if (c->bias) bad |= og_buf_read(ctx, &b[BDB], CLNORM_FLOAT32, db);
    th_bwd_inputs in = {x, dy, c->scale ? scale : NULL, want_mean ? mean : NULL, batch ? rstd : NULL,
                        running ? rm : NULL, running ? rv : NULL};
    th_bwd_outputs got = {has_dx ? dx : NULL, want_ds ? ds : NULL, c->bias ? db : NULL};
    if (!bad)
        fails = (t == CLNORM_FLOAT32 ? th_compare_bwd(shape, &in, &got, 1.0, 1)
                                     : th_compare_storage_bwd(&d, &in, &got, 1)) != 0;
out:
    for (int i = 0; i < NB; i++)
        if (b[i].mem)
            clReleaseMemObject(b[i].mem);
    free(x); free(dy); free(dx); free(scale); free(ds); free(db); free(rm); free(rv); free(mean); free(rstd);
    return fails;
}

/* ---- driver -------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A context on Oclgrind's device with the rules of class cls ("gpu"/"cpu"),
 * or NULL (reported). Says which device once per class (say). */
static clnorm_ctx *og_context(const char *cls, int say)
{
    if (setenv("CLNORM_DEVICE_CLASS", cls, 1) != 0) {
        fprintf(stderr, "setenv failed\n");
        return NULL;
    }
    clnorm_ctx *ctx = NULL;
    clnorm_status st = clnorm_create_default(&ctx);
    if (st != CLNORM_OK) {
        fprintf(stderr, "clnorm_create_default (%s rules): %s\n", cls, clnorm_status_name(st));
        return NULL;
    }
    char name[256] = "", plat[256] = "";
    cl_platform_id p = NULL;
    cl_device_id dev = clnorm_device(ctx);
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
    if (clGetDeviceInfo(dev, CL_DEVICE_PLATFORM, sizeof p, &p, NULL) == CL_SUCCESS)
        clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof plat - 1, plat, NULL);
    if (say)
        printf("# device: %s (platform %s), %s rules\n", name, plat, cls);
    if (!strstr(name, "Oclgrind") && !strstr(plat, "Oclgrind")) {
        fprintf(stderr, "not Oclgrind's device (%s / %s): run this program under oclgrind\n", name, plat);
        clnorm_destroy(ctx);
        return NULL;
    }
    return ctx;
}

/*
 * Every run (a case under one variant) gets a fresh context, hence a fresh
 * OpenCL context and a fresh Oclgrind device memory. Oclgrind 21.10 reuses
 * the number of a released buffer for the next one created, and its
 * --uninitialized shadow memory keeps the released buffer's size and state
 * for it: a new buffer would inherit "initialized" (hiding real reads of
 * unwritten memory) or too small a shadow (reporting clean data). clnorm
 * releases its scratch buffers when they grow, so within one context this
 * happens between the cases.
 *
 * Arguments: the classes to run ("gpu", "cpu"; none: both) and the labels
 * of the cases to run (none: all), for debugging.
 */
int main(int argc, char **argv)
{
    int any_class = 0, any_label = 0;
    for (int a = 1; a < argc; ++a) {
        if (strcmp(argv[a], "gpu") == 0 || strcmp(argv[a], "cpu") == 0)
            any_class = 1;
        else
            any_label = 1;
    }
    static const struct { const char *name; unsigned bit; } classes[] = {{"gpu", OG_GPU}, {"cpu", OG_CPU}};
    unsigned long failed = 0, run = 0;
    const double t0 = now_s();
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t k = 0; k < sizeof classes / sizeof classes[0]; ++k) {
        int wanted = !any_class;
        for (int a = 1; a < argc; ++a)
            wanted |= strcmp(argv[a], classes[k].name) == 0;
        if (!wanted)
            continue;
        const double tc = now_s();
        int said = 0;
        for (size_t i = 0; i < og_case_count; ++i) {
            const og_case *c = &og_cases[i];
            int picked = !any_label;
            for (int a = 1; a < argc; ++a)
                picked |= strcmp(c->label, argv[a]) == 0;
            if (!(c->classes & classes[k].bit) || !picked)
                continue;
            for (size_t vi = 0; vi < th_variant_count; ++vi) {
                if (!(c->variants & (1u << vi)) || !th_variant_enabled(vi))
                    continue;
                clnorm_ctx *ctx = og_context(classes[k].name, !said);
                if (!ctx)
                    return 2;
                said = 1;
                th_set_case("%s rules, %s, %s", classes[k].name, c->label, th_variant_str(th_variants[vi]));
                const double ts = now_s();
                int f = th_use_variant(ctx, th_variants[vi]) != 0 || c->check(ctx, c) != 0;
                clnorm_destroy(ctx);
                printf("%s %s (%.1f s)\n", f ? "FAIL" : "ok  ", th_case_name(), now_s() - ts);
                failed += (unsigned long)f;
                run++;
            }
        }
        printf("# %s rules: %.1f s\n", classes[k].name, now_s() - tc);
    }
    printf("# oclgrind_kernels: %lu runs, %lu failed, %.1f s\n", run, failed, now_s() - t0);
    return failed ? 1 : 0;
}
