#!/usr/bin/env bash
# The benchmark command (README): installs what is missing (scripts/setup.sh),
# configures build/ in Release if it is not configured yet, builds
# clnorm-bench, runs the standard suite on the default device (CLNORM_DEVICE,
# else the library's rank: a GPU, an accelerator, a CPU, then a simulator),
# forward and backward (each case's clnorm_backward row after its forward
# row; --direction forward|backward for one of them), the float32 cases and then
# the LayerNorm/RMSNorm/GroupNorm ones in float16 and bfloat16 (--filter f16
# for those alone), prints the table, and writes
# bench/results/<device>.csv and bench/results/<device>.png. With no
# arguments it then runs the synchronized BatchNorm comparison (2 MPI
# processes, where MPI is found) and the fused-add comparison.
#
#   ./scripts/bench.sh                      # whole suite, default device
#   ./scripts/bench.sh --all-devices        # every OpenCL device
#   ./scripts/bench.sh --device 0:0 --reps 30
#   ./scripts/bench.sh --op group_norm --shape 2x512x64x64 --layout nhwc --groups 32
#   ./scripts/bench.sh --direction backward --filter batch_norm
#
# Arguments pass through to clnorm-bench (see build/bench/clnorm-bench --help).
# CLNORM_BUILD_DIR picks another build folder; CLNORM_BENCH_RESULTS another
# results folder.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/setup.sh ]; then
  ./scripts/setup.sh
fi

build=${CLNORM_BUILD_DIR:-build}
results=${CLNORM_BENCH_RESULTS:-bench/results}
if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "bench: configuring $build (Release)" >&2
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
echo "bench: building clnorm-bench in $build" >&2
cmake --build "$build" -j "$(nproc)" --target clnorm-bench >/dev/null

mkdir -p "$results"
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
sleep 1 # so that CSV files written below are strictly newer than the stamp
rc=0
"$build/bench/clnorm-bench" --csv-dir "$results" "$@" || rc=$?

found=0
while IFS= read -r -d '' csv; do
  found=1
  ./scripts/plot.sh "$csv"
done < <(find "$results" -maxdepth 1 -name '*.csv' -newer "$stamp" -print0)
# Synchronized BatchNorm (clnorm_mpi) on 2 processes against local
# BatchNorm on the same slice, where MPI was found (syncbn-bench), with the
# whole suite only (no arguments). OpenMPI: root and 2 processes on any core
# count need --allow-run-as-root --oversubscribe, and waiting processes
# should yield their core to the other's OpenCL threads rather than spin
# (mpi_yield_when_idle), as on any machine with fewer cores than threads.
if [ $# -eq 0 ] && command -v mpirun >/dev/null &&
   cmake --build "$build" -j "$(nproc)" --target syncbn-bench >/dev/null 2>&1; then
  mpi_flags=()
  if mpirun --version 2>&1 | grep -q "Open MPI"; then
    mpi_flags=(--allow-run-as-root --oversubscribe --mca mpi_yield_when_idle 1)
  fi
  mpirun "${mpi_flags[@]}" -np 2 "$build/bench/syncbn-bench" | grep -v '^# device' || rc=$?
fi

# The fused residual add + LayerNorm/RMSNorm against the unfused pair (an
# add kernel, then the norm), as a ratio in one run (clnorm-fused-bench),
# with the whole suite only.
if [ $# -eq 0 ] && cmake --build "$build" -j "$(nproc)" --target clnorm-fused-bench >/dev/null 2>&1; then
  "$build/bench/clnorm-fused-bench" || rc=$?
fi

if [ "$found" -eq 0 ]; then
  echo "bench: no CSV written (clnorm-bench exit status $rc)" >&2
  exit $((rc ? rc : 1))
fi
exit "$rc"
