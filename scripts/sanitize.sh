#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of the host code
# (library, tests, examples) in build-asan/, then the full CTest suite there.
#
#   ./scripts/sanitize.sh            (extra arguments go to ctest)
#
# Scope: only host code is instrumented. The kernels are compiled at run time
# by PoCL's LLVM and run on PoCL's worker threads; they are not instrumented,
# and PoCL, its LLVM and the ICD loader are uninstrumented system libraries.
# Their process-lifetime allocations (PoCL's device/kernel caches, LLVM's
# global state, ocl-icd's vendor list) are still seen by LeakSanitizer at
# exit; tests/reliability/lsan.supp suppresses leaks whose allocation stack
# passes through those libraries only, never clnorm's own frames. OpenCL
# objects clnorm leaks are caught separately by the reliability tests'
# interposer counts.
set -euo pipefail
cd "$(dirname "$0")/.."

# The build's packages; gcc's sanitizer runtimes come with it (libgcc-12-dev
# depends on libasan8 and libubsan1), checked here all the same.
./scripts/setup.sh
echo 'int main(void){return 0;}' | gcc -x c -fsanitize=address,undefined -o /dev/null - >/dev/null 2>&1 ||
  ./scripts/setup.sh libasan8 libubsan1

jobs="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLNORM_SANITIZE=ON -DCLNORM_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"

supp="$PWD/tests/reliability/lsan.supp"
# detect_odr_violation=0: none of ours; PoCL's LLVM trips it when loaded.
export ASAN_OPTIONS="detect_leaks=1:detect_odr_violation=0:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
cd build-asan
# The kernel check (clang on the kernels), its lint fixture and the Oclgrind
# run exercise no host code that ASan could see: the main run has them.
# Open MPI keeps allocations for the life of the process in components it
# loads with dlopen (LeakSanitizer sees their frames as "<unknown module>",
# which no suppression can name): the mpirun tests run with address and
# undefined-behaviour checks but without leak detection. clnorm's own side
# of the split (clnorm_bn_*) is leak-checked by test_syncbn, which needs no
# MPI; clnorm_mpi's few allocations are freed on its one cleanup path.
mpi='^(syncbn_mpi_.*|example_syncbn_mpi)$'
rc=0
# The *_gpu_rules and *_stream entries rerun a suite with other kernel
# variants: the same host code, planned differently by the pure planner
# (test_plan covers it), so they add time here and nothing ASan can see.
reruns='_gpu_rules$|_stream$'
ctest --output-on-failure -j1 -E "^(kernel_portability|kernel_lint_rejects_builtin|oclgrind_kernels_gpu|oclgrind_kernels_cpu)\$|$mpi|$reruns" "$@" || rc=$?
ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" ctest --output-on-failure -j1 -R "$mpi" "$@" || rc=$?
exit "$rc"
