/* Fixture for the kernel lint (tests/CMakeLists.txt: kernel_lint_rejects_builtin):
 * the call that NVIDIA's OpenCL C compiler rejected in cols.cl at c99a61d
 * ("passing 'const __global float *' to parameter of type 'const void *'
 * changes address space of pointer"). The lint must fail on this file. */
__kernel void prefetch_ahead(__global const float *ahead, uint C, __global float *out)
{
    const uint pr = get_global_id(0), pc = 0;
    __builtin_prefetch(ahead + (ulong)pr * C + pc * 4, 0, 3);
    out[pr] = ahead[pr];
}
