/* Fixture for the kernel lint (tests/CMakeLists.txt: kernel_lint_rejects_f16_type):
 * clang's _Float16 vectors convert float16 in one instruction on AVX-512,
 * but they are not OpenCL C 1.2 (NVIDIA's compiler has no such type). Outside
 * common.cl's target section the lint must fail on them. */
typedef _Float16 f16x4_ __attribute__((ext_vector_type(4)));

__kernel void widen(__global const ushort4 *x, __global float4 *y)
{
    const uint i = get_global_id(0);
    y[i] = as_float4(convert_uint4(x[i]) << 16);
    (void)sizeof(f16x4_);
}
