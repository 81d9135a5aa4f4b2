/*
 * Shared by every kernel family: the host compiles each family's file with
 * this one in front of it. Tuning values arrive as -D options; the defaults
 * below let each family compile standalone for inspection.
 */
#ifndef WG
#define WG 256 /* work-group size, a power of two */
#endif
#ifndef LANES
#define LANES WG /* work-items cooperating on one set: WG, a power-of-two divisor, or 1 */
#endif
#ifndef TREE
/* 1: log-depth tree (GPUs). 0: the first lane of a segment sums it in order;
 * on CPU devices every barrier ends a loop over the work-group, so fewer
 * barriers win there. Either way the order is fixed: results are bitwise
 * reproducible. */
#define TREE 1
#endif
#ifndef RMS
#define RMS 0 /* 1: statistics are the mean of squares (RMSNorm) */
#endif
#ifndef LP
/* 1: LpNormalization (ONNX): no mean, and rstd_of gives 1 / ||x||_p, 0
 * where the norm is 0, from the statistic's mean and the count, which the
 * host passes as eps. p = 2 with RMS (the mean of squares); p = 1 without
 * (the mean of |x|, which then takes RMS's mean-free paths). */
#define LP 0
#endif
#if LP && RMS
#define LP_P 2
#elif LP
#define LP_P 1
#undef RMS
#define RMS 1
#else
#define LP_P 0
#endif
#ifndef RSTD_ZERO
/* 1: a zero variance with eps = 0 gives rstd = 0, not +Inf (BatchNorm and
 * InstanceNorm with batch statistics, as PyTorch's inverse std). */
#define RSTD_ZERO 0
#endif
#ifndef COLS_VEC
/* col_partials: 1 = each work-item owns VEC adjacent columns (CPUs, where
 * the work-item loop is not vectorized across an inner loop); 0 = one column
 * per work-item (GPUs, coalesced across work-items). */
#define COLS_VEC 0
#endif
#ifndef CACHE_V
/* row_norm: vectors per lane held in registers when a row fits (GPUs);
 * 0 = re-read the row, which on CPUs comes from the core's cache. */
#define CACHE_V 0
#endif
#ifndef VEC
/* Elements per load: 4 gives coalesced float4 loads on GPUs; 16 gives CPU
 * devices explicit vectors, two AVX registers wide, i.e. two independent
 * accumulator chains (a float reduction loop is otherwise left scalar, since
 * reassociating it would change the result). */
#define VEC 4
#endif

#if VEC == 1
typedef float floatv;
#define LOADV(i, p) ((p)[i])
#define STOREV(v, i, p) ((p)[i] = (v))
#define HSUM(v) (v)
#elif VEC == 4
typedef float4 floatv;
#define LOADV(i, p) vload4(i, p)
#define STOREV(v, i, p) vstore4(v, i, p)
#define HSUM(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#elif VEC == 8
typedef float8 floatv;
#define LOADV(i, p) vload8(i, p)
#define STOREV(v, i, p) vstore8(v, i, p)
#define HSUM(v) ((((v).s0 + (v).s1) + ((v).s2 + (v).s3)) + (((v).s4 + (v).s5) + ((v).s6 + (v).s7)))
#elif VEC == 16
typedef float16 floatv;
/* Two float8 halves: PoCL's vload16/vstore16 are out-of-line calls on AVX2. */
#define LOADV(i, p) ((float16)(vload8(2 * (i), p), vload8(2 * (i) + 1, p)))
#define STOREV(v, i, p) (vstore8((v).lo, 2 * (i), p), vstore8((v).hi, 2 * (i) + 1, p))
#define HSUM8(v) ((((v).s0 + (v).s1) + ((v).s2 + (v).s3)) + (((v).s4 + (v).s5) + ((v).s6 + (v).s7)))
#define HSUM(v) (HSUM8((v).lo) + HSUM8((v).hi))
#else
#error "VEC must be 1, 4, 8 or 16"
#endif

/* ---- storage types --------------------------------------------------------
 * XT: the storage type of x, y, the residual, h_out, dy and dx; PT: that of
 * scale and bias (0 or XT). 0 = float32, 1 = float16 (through the core
 * vload_half/vstore_half_rte functions: no cl_khr_fp16, which NVIDIA lacks;
 * a pointer to half is legal without it), 2 = bfloat16 (ushort bit patterns,
 * the top half of a float32). Loads widen exactly; every computation is in
 * float; a store rounds to nearest even (bfloat16: NaN stays a quiet NaN,
 * Inf stays Inf, overflow rounds to Inf as RNE does). LDX/STX are the
 * scalar loads and stores of x's type, LDXV/STXV its VEC-wide vectors (as
 * LOADV/STOREV, which stay float32: scratch and private arrays), LDP/LDPV
 * the parameters'; RNDX/RNDXV round a float to x's type and back (the
 * fused add's h, which an unfused add would have stored). With XT = PT = 0
 * every macro is the float32 code it replaced. */
#ifndef XT
#define XT 0
#endif
#ifndef PT
#define PT 0
#endif
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#if XT == 0
typedef float xs_t;
#elif XT == 1
typedef half xs_t;
#elif XT == 2
typedef ushort xs_t;
#else
#error "XT must be 0, 1 or 2"
#endif
#if PT == 0
typedef float ps_t;
#elif PT == 1
typedef half ps_t;
#elif PT == 2
typedef ushort ps_t;
#else
#error "PT must be 0, 1 or 2"
#endif

#if defined(CLNORM_CHECK_HALF_DECLS) && (XT == 1 || PT == 1)
/* The offline check only (scripts/check-kernels.sh, nvptx64): clang leaves
 * the core vload_half/vstore_half functions undeclared for that target,
 * which NVIDIA's driver has (OpenCL 1.2 core, 6.12.7). No host build
 * defines this. */
#define HDECL_(R, NAME, ...) R __attribute__((overloadable)) NAME(__VA_ARGS__);
HDECL_(float, vload_half, size_t, const __global half *)
HDECL_(float4, vload_half4, size_t, const __global half *)
HDECL_(float8, vload_half8, size_t, const __global half *)
HDECL_(void, vstore_half_rte, float, size_t, __global half *)
HDECL_(void, vstore_half4_rte, float4, size_t, __global half *)
HDECL_(void, vstore_half8_rte, float8, size_t, __global half *)
HDECL_(float8, vload_half8, size_t, const __private half *)
HDECL_(void, vstore_half8_rte, float8, size_t, __private half *)
#endif

#if XT == 1 || PT == 1
/* 8 float16 elements from or to their bits in registers. */
inline float8 f16_ld8_(ushort8 b)
{
    return vload_half8(0, (__private const half *)&b);
}
inline ushort8 f16_bits8_(float8 v)
{
    ushort8 t; /* vstore_half8_rte's rounding */
    vstore_half8_rte(v, 0, (__private half *)&t);
    return t;
}
#endif

#if XT == 2 || PT == 2
/* float to bfloat16 bits, round to nearest even; NaN quiet (bit 6 set). NaN
 * is tested on the bits: isnan is an out-of-line call on some targets.
 * NAME_top keeps the rounded bits in the top half of each word (AVX2's
 * narrowings join two vectors' tops), NAME narrows them. */
#define DEF_BF16(NAME, F, U, US)                                                  \
    inline U CAT(NAME, _top)(F v)                                                \
    {                                                                            \
        const U u = CAT(as_, U)(v);                                              \
        const U r = u + 0x7fffu + ((u >> 16) & 1u);                              \
        return select(r, u | 0x400000u, CAT(as_, U)((u & 0x7fffffffu) > 0x7f800000u)); \
    }                                                                            \
    inline US NAME(F v) { return CAT(convert_, US)(CAT(NAME, _top)(v) >> 16); }
DEF_BF16(bf16_1, float, uint, ushort)
DEF_BF16(bf16_4, float4, uint4, ushort4)
DEF_BF16(bf16_8, float8, uint8, ushort8)
#define BF16_LD1(i, p) as_float((uint)(p)[i] << 16)
#define BF16_LD4(i, p) as_float4(convert_uint4(vload4(i, p)) << 16)
#define BF16_LD8(i, p) as_float8(convert_uint8(U16_LD8(i, p)) << 16)
#endif

/* Scalar load and store of type code T. */
#define LDS_0(i, p) ((p)[i])
#define STS_0(v, i, p) ((p)[i] = (v))
#define LDS_1(i, p) vload_half(i, p)
#define STS_1(v, i, p) vstore_half_rte(v, i, p)
#define LDS_2(i, p) BF16_LD1(i, p)
#define STS_2(v, i, p) ((p)[i] = bf16_1(v))
/* Vectors of VEC elements of type code T. */
#define LDV_0(i, p) F32_LDV(i, p)
#define STV_0(v, i, p) F32_STV(v, i, p)
#if VEC == 1
#define LDV_1(i, p) vload_half(i, p)
#define STV_1(v, i, p) vstore_half_rte(v, i, p)
#define LDV_2(i, p) BF16_LD1(i, p)
#define STV_2(v, i, p) ((p)[i] = bf16_1(v))
#elif VEC == 4
#define LDV_1(i, p) vload_half4(i, p)
#define STV_1(v, i, p) vstore_half4_rte(v, i, p)
#define LDV_2(i, p) BF16_LD4(i, p)
#define STV_2(v, i, p) vstore4(bf16_4(v), i, p)
#elif VEC == 8
#define LDV_1(i, p) vload_half8(i, p)
#define STV_1(v, i, p) vstore_half8_rte(v, i, p)
#define LDV_2(i, p) BF16_LD8(i, p)
#define STV_2(v, i, p) U16_ST8(bf16_8(v), i, p)
#else /* 16: two halves of 8, as LOADV, or one vector with 512-bit registers (F16_LD16, BF16_LD16) */
#define LDV_1(i, p) F16_LD16(i, p)
#define STV_1(v, i, p) F16_ST16(v, i, p)
#define LDV_2(i, p) BF16_LD16(i, p)
#define STV_2(v, i, p) BF16_ST16(v, i, p)
#endif
#define LDX(i, p) CAT(LDS_, XT)(i, p)
#define STX(v, i, p) CAT(STS_, XT)(v, i, p)
#define LDXV(i, p) CAT(LDV_, XT)(i, p)
#define STXV(v, i, p) CAT(STV_, XT)(v, i, p)
#define LDP(i, p) CAT(LDS_, PT)(i, p)
#define LDPV(i, p) CAT(LDV_, PT)(i, p)

#if XT == 0
#define RNDX(f) (f)
#define RNDXV(v) (v)
#elif XT == 2
#define RNDX(f) as_float((uint)bf16_1(f) << 16)
#if VEC == 1
#define RNDXV(v) RNDX(v)
#elif VEC == 4
#define RNDXV(v) as_float4(convert_uint4(bf16_4(v)) << 16)
#elif VEC == 8
#define RNDXV(v) as_float8(convert_uint8(bf16_8(v)) << 16)
#else
#define RNDXV(v) ((float16)(as_float8(convert_uint8(bf16_8((v).lo)) << 16), as_float8(convert_uint8(bf16_8((v).hi)) << 16)))
#endif
#else /* float16: round to 11 significant bits, 2^-24 steps below 2^-14, Inf from 65520 */
#define DEF_RND_HALF(NAME, F, U)                                                  \
    inline F NAME(F f)                                                           \
    {                                                                            \
        const U u = CAT(as_, U)(f), a = u & 0x7fffffffu, s = u ^ a;              \
        U n = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;                        \
        const F sub = (CAT(as_, F)(a) + 0.5f) - 0.5f;                            \
        n = select(n, CAT(as_, U)(sub), CAT(as_, U)(a < 0x38800000u));           \
        n = select(n, (U)0x7f800000u, CAT(as_, U)(a >= 0x477ff000u));            \
        n = select(n, a, CAT(as_, U)(a > 0x7f800000u));                          \
        return CAT(as_, F)(s | n);                                               \
    }
DEF_RND_HALF(rnd_half_1, float, uint)
#define RNDX(f) rnd_half_1(f)
#if VEC == 1
#define RNDXV(v) rnd_half_1(v)
#elif VEC == 4
DEF_RND_HALF(rnd_half_4, float4, uint4)
#define RNDXV(v) rnd_half_4(v)
#elif VEC == 8
DEF_RND_HALF(rnd_half_8, float8, uint8)
#define RNDXV(v) rnd_half_8(v)
#else /* F16_RND16 (target section): two halves of 8, or one narrowing and widening */
DEF_RND_HALF(rnd_half_8, float8, uint8)
#define RNDXV(v) F16_RND16(v)
#endif
#endif

#ifndef STREAM
/* 1: write y with non-temporal (streaming) stores where the target has
 * them (CLNORM_HAS_NT_STORE below). The host asks for it on CPUs when y is
 * a quarter of the cache or more: a written line is then not first read
 * from memory (read-for-ownership), and x's lines are not evicted by y's. */
#define STREAM 0
#endif

/* ---- target features ------------------------------------------------------
 * The one place for anything beyond OpenCL C 1.2's built-ins and the
 * extensions a device reports: compiler builtins and clang's own types,
 * non-temporal stores, prefetch hints, vendor extensions, inline assembly.
 * Each sits behind a CLNORM_HAS_* macro that the host defines only for
 * devices known to accept it (host/device.c, clnorm_target_options), and
 * each has a portable fallback. NVIDIA's compiler, for one, rejects builtins
 * that PoCL's clang accepts. scripts/check-kernels.sh fails on such a
 * construct anywhere else.
 */
#ifndef CLNORM_HAS_NT_STORE
#define CLNORM_HAS_NT_STORE 0 /* clang's __builtin_nontemporal_store and x86's sfence (PoCL on x86) */
#endif
#ifndef CLNORM_HAS_PREFETCH_BUILTIN
#define CLNORM_HAS_PREFETCH_BUILTIN 0 /* clang's __builtin_prefetch on a __global pointer (PoCL) */
#endif
#ifndef CLNORM_HAS_NV_SHFL
#define CLNORM_HAS_NV_SHFL 0 /* NVIDIA: inline PTX shfl.sync, 32-wide warps of consecutive work-items */
#endif
#ifndef CLNORM_HAS_UNALIGNED_VEC
#define CLNORM_HAS_UNALIGNED_VEC 0 /* clang's vector typedefs aligned below their size (PoCL) */
#endif
#ifndef CLNORM_HAS_WIDE_VEC
#define CLNORM_HAS_WIDE_VEC 0 /* clang's min_vector_width and _Float16 vectors: 16 floats per register (PoCL on AVX-512) */
#endif

/* target: begin */
#if CLNORM_HAS_UNALIGNED_VEC
/* 8 ushorts (bfloat16 bits) at any element offset as one unaligned vector
 * load or store: PoCL's vload8/vstore8 of ushort go piecewise (four 32-bit
 * inserts per load, eight 16-bit stores per store), which made bfloat16
 * rows slower than float32 ones. */
typedef ushort8 __attribute__((aligned(2))) ushort8_u_;
#define U16_LD8(i, p) (*(__global const ushort8_u_ *)((p) + 8 * (size_t)(i)))
#define U16_ST8(v, i, p) (*(__global ushort8_u_ *)((p) + 8 * (size_t)(i)) = (v))
/* float16 the same way, converted in registers (f16_ld8_, f16_bits8_):
 * PoCL's vload_half8 and vstore_half8_rte access memory as ushort8, i.e.
 * as if 16-byte aligned (seen: an aligned vmovaps store that faulted on a
 * row at a 2-byte offset once the kernels used 512-bit registers). */
#define F16_LD8(i, p) f16_ld8_(U16_LD8(i, (__global const ushort *)(p)))
#define F16_ST8(v, i, p) U16_ST8(f16_bits8_(v), i, (__global ushort *)(p))
#else
#define U16_LD8(i, p) vload8(i, p)
#define U16_ST8(v, i, p) vstore8(v, i, p)
#define F16_LD8(i, p) vload_half8(i, p)
#define F16_ST8(v, i, p) vstore_half8_rte(v, i, p)
#endif
#if CLNORM_HAS_WIDE_VEC && (XT == 1 || XT == 2)
/* PoCL's LLVM prefers 256-bit registers on AVX-512 CPUs, so it splits each
 * 16-float vector in two; functions marked min_vector_width(512) get whole 512-bit
 * registers. That halves the widening shuffles of bfloat16 and the float16
 * conversions (F16_LD16 below), whose rows are compute-bound in 256-bit
 * code (bfloat16 rows 1.00-1.34x, with the streaming stores below; float16
 * backward rows 1.09-1.15x). float32 keeps 256-bit code: there it made some
 * backward rows 0.79-0.90x as fast. Every kernel file brackets its
 * functions with WIDE_BEGIN and WIDE_END. */
#define WIDE_BEGIN _Pragma("clang attribute push (__attribute__((min_vector_width(512))), apply_to = function)")
#define WIDE_END _Pragma("clang attribute pop")
#else
#define WIDE_BEGIN
#define WIDE_END
#endif
#if CLNORM_HAS_UNALIGNED_VEC && VEC == 16
typedef ushort16 __attribute__((aligned(2))) ushort16_u_;
#endif
#if CLNORM_HAS_WIDE_VEC && CLNORM_HAS_UNALIGNED_VEC && VEC == 16 && (XT == 1 || PT == 1) && defined(__FLT16_MAX__)
/* 16 float16 elements as one vector, converted by clang's _Float16
 * vectors in one instruction each way (vcvtph2ps/vcvtps2ph on a 512-bit
 * register); PoCL's vload_half16 converts two halves and joins them. The
 * narrowing rounds to nearest even, as vstore_half_rte. clang has _Float16
 * on x86 from version 15 (PoCL 3.1's), and says so by __FLT16_MAX__. */
typedef _Float16 f16x16_ __attribute__((ext_vector_type(16)));
#define f16_ld16_(b) __builtin_convertvector(__builtin_bit_cast(f16x16_, (ushort16)(b)), float16)
#define f16_bits16_(v) __builtin_bit_cast(ushort16, __builtin_convertvector((float16)(v), f16x16_))
#define F16_LD16(i, p) f16_ld16_(*(__global const ushort16_u_ *)((__global const ushort *)(p) + 16 * (size_t)(i)))
#define F16_ST16(v, i, p) (*(__global ushort16_u_ *)((__global ushort *)(p) + 16 * (size_t)(i)) = f16_bits16_(v))
#define F16_BITS16(v) as_uint8(f16_bits16_(v))
#define F16_RND16(v) f16_ld16_(f16_bits16_(v))
#else
#define F16_LD16(i, p) ((float16)(F16_LD8(2 * (i), p), F16_LD8(2 * (i) + 1, p)))
#define F16_ST16(v, i, p) (F16_ST8((v).lo, 2 * (i), p), F16_ST8((v).hi, 2 * (i) + 1, p))
#define F16_BITS16(v) ((uint8)(as_uint4(f16_bits8_((v).lo)), as_uint4(f16_bits8_((v).hi))))
/* a 16-wide argument changes the ABI without AVX-512 (PoCL warns) */
#define F16_RND16(v) ((float16)(rnd_half_8((v).lo), rnd_half_8((v).hi)))
#endif
#if CLNORM_HAS_WIDE_VEC && CLNORM_HAS_UNALIGNED_VEC && VEC == 16 && (XT == 2 || PT == 2)
/* 16 bfloat16 elements as one vector: one widening to a 512-bit register,
 * one narrowing back. */
#define BF16_LD16(i, p) as_float16(convert_uint16(*(__global const ushort16_u_ *)((p) + 16 * (size_t)(i))) << 16)
#define BF16_ST16(v, i, p) (*(__global ushort16_u_ *)((p) + 16 * (size_t)(i)) = bf16_16(v))
#define BF16_BITS16(v) as_uint8(bf16_16(v))
DEF_BF16(bf16_16, float16, uint16, ushort16)
#else
#define BF16_LD16(i, p) ((float16)(BF16_LD8(2 * (i), p), BF16_LD8(2 * (i) + 1, p)))
#if CLNORM_HAS_UNALIGNED_VEC && VEC == 16 && (XT == 2 || PT == 2)
/* 256-bit registers (AVX2): both halves' rounded tops (bf16_8_top) narrow
 * together (one 256-bit pack and one permute for 16 elements, where two
 * bf16_8 took a pack and an extract each). */
inline ushort16 bf16_pack16_(float8 lo, float8 hi)
{
    return convert_ushort16((uint16)(bf16_8_top(lo), bf16_8_top(hi)) >> 16);
}
#define BF16_ST16(v, i, p) (*(__global ushort16_u_ *)((p) + 16 * (size_t)(i)) = bf16_pack16_((v).lo, (v).hi))
#define BF16_BITS16(v) as_uint8(bf16_pack16_((v).lo, (v).hi))
#else
#define BF16_ST16(v, i, p) (U16_ST8(bf16_8((v).lo), 2 * (i), p), U16_ST8(bf16_8((v).hi), 2 * (i) + 1, p))
#define BF16_BITS16(v) ((uint8)(as_uint4(bf16_8((v).lo)), as_uint4(bf16_8((v).hi))))
#endif
#endif
#if CLNORM_HAS_UNALIGNED_VEC && !CLNORM_HAS_WIDE_VEC && VEC == 16 && XT == 2
/* bfloat16 in even/odd order (256-bit registers: AVX2). The _EO vectors
 * (LDXV_EO, STXV_EO, LDPV_EO, STOREY_EO) of the loops whose streams are all
 * elementwise (row_norm's pipeline; bwd_rows' dx jobs, and its sums where
 * no column partials are kept; the column tiles' statistics, which put
 * each column back in place) hold elements 0, 2, .., 14 in .lo and 1, 3,
 * .., 15 in .hi: as 32-bit words of bfloat16 pairs, the even elements are
 * the words shifted left and the odd ones the words masked, one
 * instruction for 8 elements, where the natural order takes a
 * zero-extension and a shift; a store joins the rounded halves with a
 * shift and a blend instead of two pack-and-extract narrowings. Every
 * stream of such a loop takes this order (float32 parameters by .even and
 * .odd), its sums do not depend on the order, and its tail is scalar. On
 * the EPYC VM, bfloat16 rows' ratio to copy went from 0.41 to 0.64
 * (LayerNorm 4096x4096, medians of three runs; docs/performance.md). */
#define EO_ON 1
#define U16_LD16_EO_(i, p) as_uint8(*(__global const ushort16_u_ *)((p) + 16 * (size_t)(i)))
#define BF16_LD16_EO(i, p) ((float16)(as_float8(U16_LD16_EO_(i, p) << 16), as_float8(U16_LD16_EO_(i, p) & 0xffff0000u)))
/* Both halves' rounded bits as 16 bfloat16 in memory order. */
inline uint8 bf16_bits_eo_(float8 even, float8 odd)
{
    return (bf16_8_top(even) >> 16) | (bf16_8_top(odd) & 0xffff0000u);
}
#define BF16_BITS16_EO(v) bf16_bits_eo_((v).lo, (v).hi)
#define BF16_ST16_EO(v, i, p) (*(__global ushort16_u_ *)((p) + 16 * (size_t)(i)) = as_ushort16(BF16_BITS16_EO(v)))
#define LDXV_EO(i, p) BF16_LD16_EO(i, p)
#define STXV_EO(v, i, p) BF16_ST16_EO(v, i, p)
#if PT == 2
#define LDPV_EO(i, p) BF16_LD16_EO(i, p)
#else
#define LDPV_EO(i, p) ((float16)(F32_LDV(i, p).even, F32_LDV(i, p).odd))
#endif
#else /* elsewhere the _EO vectors are the plain ones */
#define EO_ON 0
#define LDXV_EO(i, p) LDXV(i, p)
#define STXV_EO(v, i, p) STXV(v, i, p)
#define LDPV_EO(i, p) LDPV(i, p)
#endif
#if CLNORM_HAS_UNALIGNED_VEC && VEC == 16
/* The same for float32 vectors of x's type: PoCL's vload8 of float went
 * piecewise too (8- and 16-byte inserts) in loops of several streams. */
typedef float16 __attribute__((aligned(4))) float16_u_;
#define F32_LDV(i, p) (*(__global const float16_u_ *)((p) + 16 * (size_t)(i)))
#define F32_STV(v, i, p) (*(__global float16_u_ *)((p) + 16 * (size_t)(i)) = (v))
#else
#define F32_LDV(i, p) LOADV(i, p)
#define F32_STV(v, i, p) STOREV(v, i, p)
#endif
#if CLNORM_HAS_PREFETCH_BUILTIN
/* Read prefetch of the line at p, kept in all cache levels. */
#define PREFETCH_LINE(p) __builtin_prefetch((p), 0, 3)
#else
/* OpenCL's own hint: one element at p (a driver may ignore it); a half
 * pointer goes as ushort (prefetch's types need cl_khr_fp16 for half). */
#if XT == 1
#define PREFETCH_LINE(p) prefetch((__global const ushort *)(p), 1)
#else
#define PREFETCH_LINE(p) prefetch((p), 1)
#endif
#endif

#ifndef PF_AHEAD
/* CPUs (LANES == 1): the loops that stream a set from memory prefetch the
 * line PF_AHEAD elements ahead: row_norm's and bwd_rows' sums, the first
 * pass of range_stats (split rows' partials) and norm_span (the apply
 * passes: split rows, channels-first BatchNorm, channels-last writes), x
 * and per-element scale and bias. On the Xeon VM the hardware prefetchers
 * alone left those loops waiting on their loads: with the prefetch the
 * pipelined LayerNorm and RMSNorm rows ran 1.04-1.44x as fast (all three
 * storage types, both directions; 512 to 2048 elements ahead gave about
 * the same), and the forward rows of the split path, BatchNorm and
 * channels-last GroupNorm 1.02-1.16x. 0: none. */
#define PF_AHEAD 1024
#endif
#if PF_AHEAD && LANES == 1 /* GPUs' lanes share a set's lines: no hint */
#define PREFETCH_AHEAD(p) PREFETCH_LINE((p) + PF_AHEAD)
#else
#define PREFETCH_AHEAD(p) ((void)0)
#endif

#if STREAM && VEC == 16 && CLNORM_HAS_NT_STORE
#define STREAM_ON 1
#if XT == 0
/* Vector i of p, as four float4 streaming stores where p is 16-byte aligned
 * (then so is every vector of it), else a plain store. */
#define STOREY(u, i, p)                                                          \
    do {                                                                         \
        if ((ulong)(p) % 16) {                                                   \
            STOREV(u, i, p);                                                     \
        } else {                                                                 \
            const float16 sy_ = (u);                                              \
            __global float4 *q_ = (__global float4 *)((p) + (i) * 16);           \
            __builtin_nontemporal_store(sy_.s0123, q_);                           \
            __builtin_nontemporal_store(sy_.s4567, q_ + 1);                       \
            __builtin_nontemporal_store(sy_.s89ab, q_ + 2);                       \
            __builtin_nontemporal_store(sy_.scdef, q_ + 3);                       \
        }                                                                        \
    } while (0)
#else
/* 16-bit types: each half of the vector, 8 elements rounded as STXV
 * rounds them, is 16 bytes: two uint4 streaming stores. */
/* LLVM 15 folds the narrowing into the store (AVX-512's vpmovdw to memory)
 * and drops the non-temporal hint; an empty asm makes the packed bits a
 * register value that the store takes as it is. */
inline uint4 opaque4_(uint4 w)
{
    __asm__("" : "+x"(w));
    return w;
}
#if XT == 1
#define BITS16_(v) F16_BITS16(v)
#else
#define BITS16_(v) BF16_BITS16(v)
#endif
/* BITS: the vector's 16 elements as bits in memory order; ST: the plain store. */
#define STOREY16_(u, i, p, BITS, ST)                                             \
    do {                                                                         \
        if ((ulong)(p) % 16) {                                                   \
            ST(u, i, p);                                                         \
        } else {                                                                 \
            const float16 sy_ = (u);                                              \
            const uint8 sb_ = BITS(sy_);                                         \
            __global uint4 *q_ = (__global uint4 *)((p) + (i) * 16);             \
            __builtin_nontemporal_store(opaque4_(sb_.lo), q_);                    \
            __builtin_nontemporal_store(opaque4_(sb_.hi), q_ + 1);                \
        }                                                                        \
    } while (0)
#define STOREY(u, i, p) STOREY16_(u, i, p, BITS16_, STXV)
#if EO_ON
#define STOREY_EO(u, i, p) STOREY16_(u, i, p, BF16_BITS16_EO, STXV_EO)
#endif
#endif
/* Streaming stores are weakly ordered: each work-item fences its own. */
#define STOREY_END() __builtin_ia32_sfence()
#else
#define STOREY(u, i, p) STXV(u, i, p)
#define STOREY_END() ((void)0)
#endif
#if !defined(STOREY_EO) && EO_ON
#define STOREY_EO(u, i, p) STXV_EO(u, i, p)
#elif !defined(STOREY_EO)
#define STOREY_EO(u, i, p) STOREY(u, i, p)
#endif
#if CLNORM_HAS_NV_SHFL
/* v of the lane whose index is this lane's xor m, within the warp (NVIDIA's
 * OpenCL has no sub-group functions; CLBlast shuffles the same way). All 32
 * lanes must take part. */
inline float shfl_xor(float v, uint m)
{
    uint r;
    __asm__ __volatile__("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(as_uint(v)), "r"(m));
    return as_float(r);
}
#define WARP_XOR(v, m) shfl_xor((v), (m))
#endif
/* target: end */
WIDE_BEGIN

/* A partial statistic of a stretch of one set: count, mean (RMS: mean of
 * squares) and M2 = sum of squared deviations from that mean. Stored as three
 * floats, the count's bits as a uint, so that 2^32 elements stay exact. */
#define PART_STRIDE 3

inline void put_partial(__global float *p, ulong i, uint count, float mean, float m2)
{
    p[PART_STRIDE * i + 0] = mean;
    p[PART_STRIDE * i + 1] = m2;
    p[PART_STRIDE * i + 2] = as_float(count);
}

/* Sum v over the LANES work-items of this item's segment. Every lane gets
 * the same bits. All work-items of the group must call it. */
inline float seg_sum(float v, __local float *buf)
{
#if LANES == 1
    (void)buf;
    return v;
#elif defined(WARP_XOR) && LANES >= 32 && WG % 32 == 0
    /* NVIDIA: a butterfly over each warp (every lane ends with the same
     * bits: each step adds the same two numbers on both sides), then the
     * segment's LANES / 32 warp sums in order. No barrier when a segment is
     * one warp. */
    for (uint m = 16; m > 0; m >>= 1)
        v += WARP_XOR(v, m);
#if LANES == 32
    (void)buf;
    return v;
#else
    const uint lid = get_local_id(0), w0 = (lid - lid % LANES) / 32;
    if (lid % 32 == 0)
        buf[lid / 32] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    float r = buf[w0];
    for (uint k = 1; k < LANES / 32; ++k)
        r += buf[w0 + k];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
#endif
#else
    const uint lid = get_local_id(0);
    const uint base = lid - lid % LANES;
    buf[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
#if TREE
    for (uint s = LANES / 2; s > 0; s >>= 1) {
        if (lid - base < s)
            buf[lid] += buf[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#else
    if (lid == base) {
        float a = buf[base];
        for (uint i = 1; i < LANES; ++i)
            a += buf[base + i];
        buf[base] = a;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
    const float r = buf[base];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
#endif
}

/* acc += F(u) over this lane's vectors u of p (v = lane, lane + LANES, ...
 * below nv), in blocks of 64 vectors: a long set then never adds small
 * terms to one ever-growing float accumulator (the error stays ~64 + n/64
 * roundings instead of ~n). Within a block, four accumulators take turns:
 * a pass over cached data is then bound by loads, not by the latency of one
 * add chain. The order is fixed, so results are reproducible. */
#define LANE_SUM(acc, p, nv, lane, F)                                   \
    for (uint vb_ = (lane); vb_ < (nv); vb_ += 64 * LANES) {            \
        floatv b0_ = 0.0f, b1_ = 0.0f, b2_ = 0.0f, b3_ = 0.0f;          \
        const uint ve_ = min((uint)(nv), vb_ + 64 * LANES);             \
        uint v_ = vb_;                                                  \
        for (; v_ + 3 * LANES < ve_; v_ += 4 * LANES) {                 \
            LANE_STEP_(b0_, p, v_, F)                                   \
            LANE_STEP_(b1_, p, v_ + LANES, F)                           \
            LANE_STEP_(b2_, p, v_ + 2 * LANES, F)                       \
            LANE_STEP_(b3_, p, v_ + 3 * LANES, F)                       \
        }                                                               \
        for (; v_ < ve_; v_ += LANES)                                   \
            LANE_STEP_(b0_, p, v_, F)                                   \
        acc += (b0_ + b1_) + (b2_ + b3_);                               \
    }
#define LANE_STEP_(b, p, vi, F)                                         \
    {                                                                   \
        PREFETCH_AHEAD((p) + (vi) * VEC);                               \
        const floatv u = LDXV(vi, p);                                   \
        b += F;                                                         \
    }

/* The term the first statistics pass sums: x shifted by the set's first
 * value k (the mean follows), or x^2 (RMSNorm: the mean of squares). */
#if LP_P == 1
#define STAT(u, k) fabs(u)
#elif RMS
#define STAT(u, k) ((u) * (u))
#else
#define STAT(u, k) ((u) - (k))
#endif

/* This lane's share of the sum of squared deviations from mu over p[0, n). */
inline float lane_dev_sum(__global const xs_t *p, uint n, uint lane, float mu)
{
    const uint nv = n / VEC;
    floatv a = 0.0f;
    float t = 0.0f;
    LANE_SUM(a, p, nv, lane, (u - mu) * (u - mu))
    for (uint e = nv * VEC + lane; e < n; e += LANES)
        t += (LDX(e, p) - mu) * (LDX(e, p) - mu);
    return HSUM(a) + t;
}

/* Statistics of x[e0, e1) of one set, shared by its LANES lanes: vectors
 * first (coalesced across lanes), then the tail. Two passes: the mean, then
 * the squared deviations from it. The first pass sums x - x[e0] rather than
 * x, so a large common offset (mean 1e4, spread 1e-2) does not swamp the
 * accumulators. An empty range (a padding lane's) only joins the barriers.
 * RMS: mean is the mean of squares and m2 is 0. */
inline void range_stats(__global const xs_t *x, uint e0, uint e1, uint lane,
                        __local float *buf, float *mean, float *m2)
{
    __global const xs_t *p = x + e0;
    const uint n = e1 - e0, nv = n / VEC;
    const float k = n ? LDX(0, p) : 0.0f;
    floatv a = 0.0f;
    float t = 0.0f;
    LANE_SUM(a, p, nv, lane, STAT(u, k))
    for (uint e = nv * VEC + lane; e < n; e += LANES)
        t += STAT(LDX(e, p), k);
    const float s = seg_sum(HSUM(a) + t, buf) / (float)n;
#if RMS
    *mean = s;
    *m2 = 0.0f;
#else
    *mean = k + s;
    *m2 = seg_sum(lane_dev_sum(p, n, lane, *mean), buf);
#endif
}

/* Chan et al.'s exact pairwise update of (count, mean, M2) by a partial of
 * pn elements with mean pm and M2 pq. Means are kept relative to a reference
 * K (the first partial's mean): pm - K is exact for nearby means, so each
 * step rounds only a small number, and the caller rounds K + rel once (with
 * |mean| >> std, ulp(mean) is a sizeable fraction of std). */
typedef struct {
    uint n;
    float rel, m2;
} chan_t;

inline void chan_add(chan_t *a, uint pn, float pm_rel, float pq)
{
    const uint nn = a->n + pn;
    const float d = pm_rel - a->rel, w = (float)pn / (float)nn;
    a->rel += d * w;
    a->m2 += pq + d * d * (float)a->n * w;
    a->n = nn;
}

/* A set with NaN or Inf has a NaN variance (Inf - Inf); SPEC.md makes all
 * of that set's outputs NaN, the saved mean included (it may be +-Inf). */
inline float checked_mean(float mean, float var)
{
    return isnan(var) ? NAN : mean;
}

/* rstd from a biased variance (RMS: mean of squares). The one place it is
 * computed, so saved and applied statistics agree bit for bit. As PyTorch
 * (SPEC.md): RMS with an Inf in the set (mean of squares +Inf, no NaN) gives
 * 0, so finite elements give 0 * scale + bias and infinite ones NaN; a NaN
 * variance gives NaN. RSTD_ZERO (BatchNorm, InstanceNorm): var == 0 with
 * eps == 0 gives 0, so a constant set gives y = bias; elsewhere it is +Inf
 * and y NaN (0 * Inf). */
inline float rstd_of(float var, float eps)
{
#if LP
    /* var is the mean of |x| (p = 1) or of x^2 (p = 2), eps the count. */
    const float norm = LP_P == 1 ? var * eps : sqrt(var * eps);
    return norm == 0.0f ? 0.0f : 1.0f / norm;
#endif
#if RSTD_ZERO
    if (var == 0.0f && eps == 0.0f)
        return 0.0f;
#endif
    return 1.0f / sqrt(var + eps);
}

/* A set's count, mean and M2 from its partials at p[PART_STRIDE * (base +
 * j1*st1 + j2*st2)], j1 < n1, j2 < n2, in that fixed order. Two passes over
 * the partials (they are few and cached), no division per partial: the mean
 * is the count-weighted mean of theirs, and M2 the sum of theirs plus each
 * count times its mean's squared distance from the whole mean (exact, like
 * Chan's update). Means are taken relative to the first partial's, so a
 * large common offset does not round away the spread. The mean is not
 * checked (checked_mean); RMS: the mean of squares, M2 meaningless. Shared
 * by merge_set and the BatchNorm record (merge_record in merge.cl), so a
 * split BatchNorm's local record holds the one-call path's very bits. */
inline ulong merge_set_m2(__global const float *p, ulong base, uint n1, ulong st1, uint n2, ulong st2,
                          float *mean, float *m2)
{
#if RMS
    /* Means of squares are >= 0 and need no shift; an Inf first partial
     * would make every e[0] - K NaN (SPEC.md wants +Inf there). */
    const float K = 0.0f;
#else
    const float K = n1 && n2 ? p[PART_STRIDE * base] : 0.0f;
#endif
    ulong cnt = 0;
    float s = 0.0f, q = 0.0f;
    for (uint j1 = 0; j1 < n1; ++j1)
        for (uint j2 = 0; j2 < n2; ++j2) {
            __global const float *e = p + PART_STRIDE * (base + j1 * st1 + j2 * st2);
            const uint c = as_uint(e[2]);
            cnt += c;
            s += (float)c * (e[0] - K);
        }
    const float rel = s / (float)cnt;
    for (uint j1 = 0; j1 < n1; ++j1)
        for (uint j2 = 0; j2 < n2; ++j2) {
            __global const float *e = p + PART_STRIDE * (base + j1 * st1 + j2 * st2);
            const float d = (e[0] - K) - rel;
            q += e[1] + (float)as_uint(e[2]) * d * d;
        }
    *mean = K + rel;
    *m2 = q;
    return cnt;
}

/* A set's statistics from its partials (merge_set_m2): the mean
 * (checked_mean; RMS: 0) and the biased variance (RMS: mean of squares). */
inline void merge_set(__global const float *p, ulong base, uint n1, ulong st1, uint n2, ulong st2,
                      float *mean, float *var)
{
    float m, q;
    const ulong cnt = merge_set_m2(p, base, n1, st1, n2, st2, &m, &q);
#if RMS
    (void)cnt;
    (void)q;
    *var = m;
    *mean = 0.0f;
#else
    *var = q / (float)cnt;
    *mean = checked_mean(m, *var);
#endif
}

/* Entry t of a folded table (tn entries per row): the set's mean, then the
 * multiplier rstd * scale and the bias (see fold_table in merge.cl). */
inline void fold_entry(__global float *table, uint t, uint tn, float mean, float r,
                       __global const ps_t *scale, ulong si, __global const ps_t *bias, ulong bi)
{
    table[t] = mean;
    table[tn + t] = scale ? r * LDP(si, scale) : r;
    table[2 * tn + t] = bias ? LDP(bi, bias) : 0.0f;
}

/* y = (x - m) * a * s + b over [j0, j1) of a set, vectors first, then the
 * tail. m, s and b are per element when mv, sv, bv are given (indexed like
 * x), else the scalars (s = 1). Lane l takes vectors l, l + LANES, ...
 * norm_span's sv and bv are float32 (a folded table's rows), norm_span_p's
 * the parameters' type. */
#define DEF_NORM_SPAN(NAME, ST, LS, LSV)                                                          \
    inline void NAME(__global const xs_t *x, __global xs_t *y, uint j0, uint j1, uint lane, float m, \
                     float a, float b, __global const float *mv, __global const ST *sv,          \
                     __global const ST *bv)                                                       \
    {                                                                                            \
        __global const xs_t *px = x + j0;                                                        \
        __global xs_t *py = y + j0;                                                              \
        const uint n = j1 - j0, nv = n / VEC;                                                    \
        for (uint v = lane; v < nv; v += LANES) {                                                \
            PREFETCH_AHEAD(px + v * VEC);                                                        \
            if (sv) PREFETCH_AHEAD(sv + j0 + v * VEC);                                           \
            if (bv) PREFETCH_AHEAD(bv + j0 + v * VEC);                                           \
            floatv u = (LDXV(v, px) - (mv ? LOADV(v, mv + j0) : (floatv)m)) * a;                 \
            if (sv) u *= LSV(v, sv + j0);                                                        \
            u += bv ? LSV(v, bv + j0) : (floatv)b;                                               \
            STOREY(u, v, py);                                                                    \
        }                                                                                        \
        for (uint e = nv * VEC + lane; e < n; e += LANES) {                                      \
            float u = (LDX(e, px) - (mv ? mv[j0 + e] : m)) * a;                                  \
            if (sv) u *= LS(j0 + e, sv);                                                         \
            STX(u + (bv ? LS(j0 + e, bv) : b), e, py);                                           \
        }                                                                                        \
    }
DEF_NORM_SPAN(norm_span, float, LDS_0, LDV_0)
DEF_NORM_SPAN(norm_span_p, ps_t, LDP, LDPV)
WIDE_END
