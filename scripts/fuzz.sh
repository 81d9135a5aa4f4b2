#!/usr/bin/env bash
# Build the libFuzzer harness (tests/reliability/fuzz_forward.c: forward and
# backward calls) with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer in build-fuzz/, and run it
# for a bounded time on PoCL from the committed seed corpus.
#
#   ./scripts/fuzz.sh [seconds]        (default 60)
#
# New inputs go to build-fuzz/corpus (the committed seeds in
# tests/reliability/corpus are read, never modified); a failing input is
# saved as build-fuzz/crash-* and the script exits non-zero.
# Environment: FUZZ_JOBS (parallel fuzzing processes, default 1),
# FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"

# The build's packages, clang among them, and libFuzzer with the sanitizer
# runtimes of Debian's default clang.
./scripts/setup.sh libclang-rt-dev
rt="$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)"
[ -f "$rt" ] || { echo "fuzz.sh: clang has no libFuzzer ($rt)" >&2; exit 1; }

jobs="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCLNORM_FUZZ=ON -DCLNORM_SANITIZE=ON -DCLNORM_BUILD_BENCH=OFF -DCLNORM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz --target clnorm_fuzz -j"$jobs"

mkdir -p build-fuzz/corpus
# LeakSanitizer: PoCL/LLVM keep process-lifetime allocations (see
# tests/reliability/lsan.supp); libFuzzer's per-input leak check would blame
# them on whichever input first triggered them, so it is off here. Host
# leaks are checked by the sanitizer suite (scripts/sanitize.sh) instead.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export POCL_DEBUG=0
export CLNORM_FUZZ_FAILURE_DIR="$PWD/build-fuzz"
echo "fuzz.sh: running clnorm_fuzz for ${secs}s"
set +e
./build-fuzz/tests/reliability/clnorm_fuzz -max_total_time="$secs" -timeout=20 -rss_limit_mb=6144 \
  -max_len=4096 -print_final_stats=1 -artifact_prefix=build-fuzz/ \
  ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS} ${FUZZ_ARGS:-} \
  build-fuzz/corpus tests/reliability/corpus >build-fuzz/fuzz.log 2>&1
rc=$?
set -e
grep -E "^#[0-9]+ +(INITED|DONE)|^stat::|^fuzz: checked|FUZZ CHECK|ERROR|SUMMARY|crash-" build-fuzz/fuzz.log || true
if [ "$rc" -ne 0 ]; then
  echo "fuzz.sh: FAILED (exit $rc); see build-fuzz/fuzz.log" >&2
  tail -40 build-fuzz/fuzz.log >&2
  exit "$rc"
fi
echo "fuzz.sh: ok"
