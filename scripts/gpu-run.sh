#!/usr/bin/env bash
# One command for an NVIDIA GPU machine without a package registry (issue 6):
#   1. unpacks the carried .deb files (.deps/, from scripts/gpu-deps.sh) into
#      .deps/root with dpkg -x (never into /) and points CMake, pkg-config and
#      LD_LIBRARY_PATH at it;
#   2. makes NVIDIA's OpenCL driver visible: writes /etc/OpenCL/vendors/nvidia.icd
#      naming libnvidia-opencl.so.1 when it is missing (or, where /etc is not
#      writable, .deps/root/etc/OpenCL/vendors + OCL_ICD_VENDORS), and confirms
#      the device with clinfo and clnorm-bench --list;
#   3. builds (Release) in build-gpu/;
#   4. runs the whole test suite (CTest) with CLNORM_DEVICE selecting the NVIDIA device;
#   5. runs the benchmark suite there (clnorm-bench --check --json, CSV, PNG;
#      --check compares all outputs with tests/reference.c); then, on the GPU
#      (or with --tune), tunes the suite (clnorm-bench --tune tuning.tsv) and
#      runs it again with CLNORM_TUNING=tuning.tsv (bench-tuned.jsonl);
#   6. runs bench/compare_torch.py --device cuda on the same cases;
#   7. prints one side-by-side table: clnorm GB/s, PyTorch GB/s, speed-up,
#      clnorm's fraction of the copy bandwidth.
# Everything is saved under $OUT when set, else bench/results/gpu-run-<time>/.
#
# Where no NVIDIA OpenCL device is present (or with --dry-run) the same steps
# run on the default device (PoCL's CPU device here) with torch on the CPU,
# and the ICD file is only reported, not written.
#
#   scripts/gpu-run.sh [--dry-run] [--skip-tests] [--skip-torch] [--tune|--no-tune]
#                      [--tests-regex RE] [--reps N] [--device SEL] [-- clnorm-bench args...]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root_dir=$(pwd)

dry=0 skip_tests=0 skip_torch=0 tune="" tests_regex="" reps=20 devsel="" bench_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --skip-tests) skip_tests=1 ;;
    --skip-torch) skip_torch=1 ;;
    --tune) tune=1 ;;
    --no-tune) tune=0 ;;
    --tests-regex) tests_regex=$2; shift ;;
    --reps) reps=$2; shift ;;
    --device) devsel=$2; shift ;;
    --) shift; bench_extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-run: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

out=${OUT:-$root_dir/bench/results/gpu-run-$(date '+%Y%m%d-%H%M%S')}
mkdir -p "$out"
exec > >(tee "$out/gpu-run.log") 2>&1
t_start=$(date +%s)
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig) # /sbin is not on every PATH
phase() { echo; echo "=== [$(( $(date +%s) - t_start ))s] $*"; }
status_tests="not run" status_bench="not run" status_torch="not run" status_tune="not run"

# ------------------------------------------------------------ 1. carried dependencies
phase "dependencies"
deps=$root_dir/.deps
prefix=$deps/root
arch=x86_64-linux-gnu
unpack_deb() { # $1 = .deb, $2 = destination
  if command -v dpkg-deb >/dev/null 2>&1; then
    dpkg-deb -x "$1" "$2"
  elif command -v ar >/dev/null 2>&1; then
    local t; t=$(mktemp -d)
    (cd "$t" && ar x "$1" && tar -xf data.tar.* -C "$2")
    rm -rf "$t"
  else
    python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n"
pos = 8
while pos + 60 <= len(data):
    name = data[pos:pos + 16].decode().strip().rstrip("/")
    size = int(data[pos + 48:pos + 58].decode().strip())
    body = data[pos + 60:pos + 60 + size]
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
    pos += 60 + size + (size & 1)
PY
  fi
}
have_debs=0
if compgen -G "$deps/*.deb" >/dev/null; then have_debs=1; fi
cmake_deps=()
if [ "$have_debs" -eq 1 ]; then
  if [ ! -f "$prefix/.unpacked" ] || [ -n "$(find "$deps" -maxdepth 1 -name '*.deb' -newer "$prefix/.unpacked")" ]; then
    rm -rf "$prefix"
    mkdir -p "$prefix"
    for f in "$deps"/*.deb; do
      unpack_deb "$f" "$prefix" || { echo "gpu-run: cannot unpack $f" >&2; exit 1; }
    done
    # .pc files name /usr: make them name the prefix.
    for pc in "$prefix"/usr/lib/$arch/pkgconfig/*.pc "$prefix"/usr/share/pkgconfig/*.pc; do
      [ -f "$pc" ] && sed -i "s|^prefix=/usr\$|prefix=$prefix/usr|; s|=/usr/|=$prefix/usr/|" "$pc"
    done
    touch "$prefix/.unpacked"
    echo "unpacked $(ls "$deps"/*.deb | wc -l) packages into $prefix"
  else
    echo "using $prefix (already unpacked)"
  fi
  export PATH="$prefix/usr/bin:$PATH"
  export PKG_CONFIG_PATH="$prefix/usr/lib/$arch/pkgconfig:$prefix/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$prefix/usr/lib/$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  ocl_lib=$prefix/usr/lib/$arch/libOpenCL.so
  # The carried loader needs glibc >= 2.34; where it cannot run, use the machine's own.
  if ! "$prefix/usr/bin/clinfo" -l >/dev/null 2>"$out/clinfo-probe.err" && grep -q GLIBC "$out/clinfo-probe.err"; then
    echo "gpu-run: the carried libOpenCL/clinfo need a newer glibc: $(head -1 "$out/clinfo-probe.err")"
    ocl_lib=""
    for c in /usr/local/cuda/lib64/libOpenCL.so /usr/local/cuda/lib64/libOpenCL.so.1 \
      $("$ldconfig" -p 2>/dev/null | awk '/libOpenCL\.so(\.1)? .*x86-64/ { print $NF }'); do
      if [ -e "$c" ]; then ocl_lib=$c; break; fi
    done
    [ -n "$ocl_lib" ] || { echo "gpu-run: no usable libOpenCL on this machine" >&2; exit 1; }
    echo "gpu-run: using $ocl_lib instead"
    LD_LIBRARY_PATH="$(dirname "$ocl_lib"):$LD_LIBRARY_PATH"; export LD_LIBRARY_PATH
  fi
  cmake_deps=(-DCMAKE_PREFIX_PATH="$prefix/usr" -DOpenCL_INCLUDE_DIR="$prefix/usr/include"
    -DOpenCL_LIBRARY="$ocl_lib" -DPKG_CONFIG_EXECUTABLE="$(command -v pkg-config)")
else
  echo "gpu-run: no .deps/*.deb (run scripts/gpu-deps.sh where the Debian registry is reachable);"
  echo "         using the system's OpenCL headers, loader and Check"
fi
echo "pkg-config: $(command -v pkg-config || echo none); check $(pkg-config --modversion check 2>/dev/null || echo 'NOT FOUND')"

# ------------------------------------------------------------ 2. NVIDIA OpenCL driver
phase "OpenCL devices"
nv_lib=""
for c in $("$ldconfig" -p 2>/dev/null | awk '/libnvidia-opencl\.so\.1/ { print $NF }') \
  /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 /usr/lib64/libnvidia-opencl.so.1 \
  /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/local/nvidia/lib/libnvidia-opencl.so.1; do
  if [ -e "$c" ]; then nv_lib=$c; break; fi
done
if [ -n "$nv_lib" ]; then
  echo "NVIDIA OpenCL driver: $nv_lib"
  # Name it bare when the dynamic linker finds it, else by full path.
  icd_line=libnvidia-opencl.so.1
  "$ldconfig" -p 2>/dev/null | grep -q 'libnvidia-opencl\.so\.1 ' || icd_line=$nv_lib
  if grep -qs nvidia /etc/OpenCL/vendors/*.icd; then
    echo "ICD file present: $(grep -ls nvidia /etc/OpenCL/vendors/*.icd | tr '\n' ' ')"
  elif [ "$dry" -eq 1 ]; then
    echo "(dry run) would write /etc/OpenCL/vendors/nvidia.icd: $icd_line"
  elif mkdir -p /etc/OpenCL/vendors 2>/dev/null && echo "$icd_line" >/etc/OpenCL/vendors/nvidia.icd 2>/dev/null; then
    echo "wrote /etc/OpenCL/vendors/nvidia.icd: $icd_line"
  else
    mkdir -p "$prefix/etc/OpenCL/vendors"
    echo "$icd_line" >"$prefix/etc/OpenCL/vendors/nvidia.icd"
    cp /etc/OpenCL/vendors/*.icd "$prefix/etc/OpenCL/vendors/" 2>/dev/null
    export OCL_ICD_VENDORS="$prefix/etc/OpenCL/vendors"
    echo "/etc not writable: OCL_ICD_VENDORS=$OCL_ICD_VENDORS (nvidia.icd: $icd_line)"
  fi
else
  echo "no libnvidia-opencl.so.1 on this machine"
fi
clinfo_bin=$(command -v clinfo || true)
if [ -n "$clinfo_bin" ]; then
  "$clinfo_bin" -l 2>&1 | tee "$out/clinfo.txt"
else
  echo "(no clinfo; the device list comes from clnorm-bench --list after the build)"
fi

# ------------------------------------------------------------ 3. build
phase "build (Release, build-gpu/)"
build=$root_dir/build-gpu
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${cmake_deps[@]}" >"$out/cmake.log" 2>&1 ||
  { tail -30 "$out/cmake.log"; echo "gpu-run: configure failed (log: $out/cmake.log)"; exit 1; }
grep -E "Found OpenCL|Found check|Checking for module|check" "$out/cmake.log" | head -5
cmake --build "$build" -j "$(nproc)" >"$out/build.log" 2>&1 ||
  { grep -E "error|Error" "$out/build.log" | head -30; echo "gpu-run: build failed (log: $out/build.log)"; exit 1; }
echo "built: $(grep -c 'Built target' "$out/build.log") targets"
bench=$build/bench/clnorm-bench
"$bench" --list | tee "$out/devices.txt"

# Which device: NVIDIA if the OpenCL platform list has it, else the default (dry run).
mode=gpu
if [ -n "$devsel" ]; then
  :
elif [ "$dry" -eq 0 ] && grep -qi nvidia "$out/devices.txt"; then
  devsel=NVIDIA
else
  mode=dry
  devsel=$(awk 'NR == 2 { print $1 }' "$out/devices.txt")
  [ "$dry" -eq 1 ] || echo "gpu-run: no NVIDIA OpenCL device: dry run on the default device instead"
fi
[ -n "$devsel" ] || { echo "gpu-run: no OpenCL device at all" >&2; exit 1; }
torch_dev=cuda
[ "$mode" = gpu ] || torch_dev=cpu
echo "mode: $mode; CLNORM_DEVICE=$devsel; torch device: $torch_dev"

# ------------------------------------------------------------ 4. tests
if [ "$skip_tests" -eq 0 ]; then
  phase "tests (CTest, CLNORM_DEVICE=$devsel)"
  ctest_args=(--output-on-failure --timeout 900 -j "${CTEST_PARALLEL_LEVEL:-2}")
  [ -n "$tests_regex" ] && ctest_args+=(-R "$tests_regex")
  if (cd "$build" && CLNORM_DEVICE=$devsel ctest "${ctest_args[@]}") >"$out/tests.log" 2>&1; then
    status_tests="passed"
  else
    status_tests="FAILED"
    grep -E "Failed|\*\*\*|Timeout|Exception" "$out/tests.log" | head -30
  fi
  grep -E "tests passed|tests failed|Total Test time" "$out/tests.log"
fi

# ------------------------------------------------------------ 5. benchmark
phase "benchmark suite on $devsel"
if CLNORM_DEVICE=$devsel "$bench" --device "$devsel" --reps "$reps" --check --json --csv-dir "$out" \
  "${bench_extra[@]}" >"$out/bench.jsonl" 2>"$out/bench.err"; then
  status_bench="ok"
else
  status_bench="FAILED (exit $?)"
fi
grep '^clnorm-bench:' "$out/bench.err" || true
echo "$(wc -l <"$out/bench.jsonl") cases measured"
for csv in "$out"/*.csv; do
  case "$csv" in */compare.csv) continue ;; esac
  [ -f "$csv" ] && { ./scripts/plot.sh "$csv" || echo "gpu-run: no plot (gnuplot/matplotlib missing)"; }
done

# Tuning: seconds on a GPU, a quarter of an hour on PoCL's CPU device, so
# by default only in GPU mode.
[ -n "$tune" ] || { [ "$mode" = gpu ] && tune=1 || tune=0; }
if [ "$tune" -eq 1 ]; then
  phase "tuning on $devsel (clnorm-bench --tune), then the suite again with the file"
  if CLNORM_DEVICE=$devsel "$bench" --quiet --device "$devsel" --tune "$out/tuning.tsv" "${bench_extra[@]}" \
    >"$out/tune.txt" 2>"$out/tune.err" &&
    CLNORM_TUNING=$out/tuning.tsv CLNORM_DEVICE=$devsel "$bench" --device "$devsel" --reps "$reps" --check --json \
      "${bench_extra[@]}" >"$out/bench-tuned.jsonl" 2>"$out/bench-tuned.err"; then
    status_tune="ok ($(( $(grep -vc '^#' "$out/tuning.tsv") - 1 )) entries)"
  else
    status_tune="FAILED"
    tail -5 "$out/tune.err" "$out/bench-tuned.err" 2>/dev/null
  fi
  cat "$out/tune.txt"
fi

# ------------------------------------------------------------ 6. PyTorch
compare_ok=0
if [ "$skip_torch" -eq 0 ] && [ -s "$out/bench.jsonl" ]; then
  phase "PyTorch ($torch_dev) on the same cases"
  if python3 bench/compare_torch.py --device "$torch_dev" --clnorm-json "$out/bench.jsonl" --reps "$reps" \
    --csv "$out/compare.csv" --json-out "$out/compare.jsonl" >"$out/compare.txt" 2>"$out/compare.err"; then
    if grep -q "speed-up over torch" "$out/compare.txt"; then status_torch="ok"; compare_ok=1; else status_torch="skipped"; fi
  else
    status_torch="FAILED"
    tail -5 "$out/compare.err"
  fi
  [ "$compare_ok" -eq 1 ] || cat "$out/compare.txt"
fi

# ------------------------------------------------------------ 7. summary
phase "summary ($mode run)"
if [ "$compare_ok" -eq 1 ]; then
  cat "$out/compare.txt"
elif [ -s "$out/bench.jsonl" ]; then
  python3 - "$out/bench.jsonl" <<'PY'
import json, sys
print("%-17s %-3s %-5s %-15s %9s %8s %6s" % ("op", "dir", "lay", "shape", "ms", "GB/s", "ratio"))
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("%-17s %-3s %-5s %-15s %9.3f %8.2f %6.3f" % (r["op"], "bwd" if r.get("direction") == "backward" else "fwd", r["layout"],
                                                       "x".join(map(str, r["shape"])), r["median_ms"], r["gbps"],
                                                       r["ratio"]))
PY
fi
echo
echo "device: $(awk -F'"' 'NR == 1 { print $4 }' "$out/bench.jsonl" 2>/dev/null)  (CLNORM_DEVICE=$devsel, mode $mode)"
echo "tests: $status_tests; benchmark: $status_bench; tuning: $status_tune; torch comparison: $status_torch"
echo "results in $out: gpu-run.log bench.jsonl *.csv *.png compare.txt compare.csv tests.log tuning.tsv bench-tuned.jsonl"
echo "total $(( $(date +%s) - t_start ))s"
case "$status_tests$status_bench$status_tune$status_torch" in
  *FAILED*) exit 1 ;;
esac
exit 0
