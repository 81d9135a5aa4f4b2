#!/usr/bin/env bash
# The kernel portability check (CTest: kernel_portability).
#
#   scripts/check-kernels.sh [--lint-only] [--kernels DIR] [--options TOOL]
#
# 1. Lint: kernels may use OpenCL C 1.2 built-ins only. Compiler builtins,
#    __has_builtin probes, clang's own types (_Float16 vectors), inline
#    assembly, vendor intrinsics, extension pragmas and sub-group functions
#    may appear only in common.cl's target
#    section ("/* target: begin */" .. "/* target: end */"), and there only
#    in a branch selected by a CLNORM_HAS_* macro, which the host defines per
#    device (host/device.c). Every CLNORM_HAS_* macro the kernels test must be
#    emitted by host/device.c. Comments are not checked.
# 2. Offline compile: the whole program (the files in the library's build
#    order) once for every option set the library can emit (tests/
#    kernel_options.c prints them), with clang's OpenCL front end and -Werror:
#    for nvptx64-nvidia-nvcl and spir64 where no target feature is on, for
#    x86_64 (PoCL's CPU device) where one is.
#
# Why both: NVIDIA's compiler rejected __builtin_prefetch on a __global
# pointer, which PoCL's clang and this clang accept, so no compile here
# catches that; the lint does. The compile catches everything else that is
# not OpenCL C 1.2 for a GPU target (undeclared functions, 2.0 features,
# warnings), for each -D combination rather than one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kdir="$root/kernels"
tool=""
lint_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --kernels) kdir="$2"; shift 2 ;;
    --options) tool="$2"; shift 2 ;;
    --lint-only) lint_only=1; shift ;;
    *) echo "check-kernels: unknown argument $1" >&2; exit 2 ;;
  esac
done

# ---- 1. lint ---------------------------------------------------------------
# Constructs outside OpenCL C 1.2's built-ins (matched after comments are removed).
forbidden='__builtin_|_Float16|__fp16|__bf16|__has_builtin|__has_extension|\<asm\>|__asm|__nvvm|__nv_|__amdgcn|__ocml|__ockl|__spirv|cl_nv_|cl_amd_|cl_intel_|cl_khr_subgroups|#[[:space:]]*pragma[[:space:]]+OPENCL[[:space:]]+EXTENSION|sub_group_|get_sub_group|intel_sub_group|__opencl_c_'
lint_fail=0
for f in "$kdir"/*.cl; do
  base=$(basename "$f")
  out=$(awk -v file="$base" -v pat="$forbidden" '
    # Strip comments, tracking /* */ across lines; note the target markers.
    {
      raw = $0
      if (raw ~ /\/\* target: begin \*\//) { in_target = 1 }
      if (raw ~ /\/\* target: end \*\//) { in_target = 0 }
      line = ""; s = raw
      while (length(s) > 0) {
        if (in_comment) {
          i = index(s, "*/"); if (i == 0) { s = ""; break }
          s = substr(s, i + 2); in_comment = 0
        } else {
          i = index(s, "/*"); j = index(s, "//")
          if (j > 0 && (i == 0 || j < i)) { line = line substr(s, 1, j - 1); s = ""; break }
          if (i == 0) { line = line s; s = ""; break }
          line = line substr(s, 1, i - 1); s = substr(s, i + 2); in_comment = 1
        }
      }
      # Preprocessor nesting: guarded[d] is 1 while the branch at depth d is
      # selected by a CLNORM_HAS_* condition (an #else of one is the fallback).
      if (line ~ /^[ \t]*#[ \t]*if/) { depth++; guarded[depth] = (line ~ /CLNORM_HAS_/) }
      else if (line ~ /^[ \t]*#[ \t]*elif/) { guarded[depth] = (line ~ /CLNORM_HAS_/) }
      else if (line ~ /^[ \t]*#[ \t]*else/) { guarded[depth] = 0 }
      else if (line ~ /^[ \t]*#[ \t]*endif/) { guarded[depth] = 0; depth-- }
      g = 0; for (k = 1; k <= depth; k++) if (guarded[k]) g = 1
      if (line ~ pat && !(file == "common.cl" && in_target && g))
        printf "%s:%d: not OpenCL C 1.2 and not behind a host-defined CLNORM_HAS_* macro: %s\n", file, NR, raw
    }' "$f")
  if [ -n "$out" ]; then echo "$out"; lint_fail=1; fi
done
# Each feature macro the kernels test is one the host decides.
for m in $(grep -ho 'CLNORM_HAS_[A-Z0-9_]*' "$kdir"/*.cl | sort -u); do
  if ! grep -q "$m" "$root/host/device.c"; then
    echo "kernels test $m, which host/device.c never defines"; lint_fail=1
  fi
done
if [ "$lint_fail" -ne 0 ]; then
  echo "check-kernels: lint FAILED"
  exit 1
fi
echo "check-kernels: lint passed ($(ls "$kdir"/*.cl | wc -l) files)"
[ "$lint_only" -eq 1 ] && exit 0

# ---- 2. offline compile ----------------------------------------------------
[ -n "$tool" ] || { echo "check-kernels: --options TOOL is required for the compile" >&2; exit 2; }
CLANG=${CLANG:-$(command -v clang-15 || command -v clang || command -v clang-14 || true)}
[ -n "$CLANG" ] || { echo "check-kernels: clang not found (Debian: clang)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tool" > "$work/options.txt"
files=$(sed -n '1s/^files\t//p' "$work/options.txt")
[ -n "$files" ] || { echo "check-kernels: no file list from $tool" >&2; exit 1; }
for n in $files; do cat "$kdir/$n.cl"; echo; done > "$work/program.cl"

# One job per (target, options); -fdeclare-opencl-builtins declares the
# built-ins from clang's table (3x faster than its header); the first set of
# each target is also compiled with the full header as a cross-check.
jobs="$work/jobs.txt"
: > "$jobs"
tail -n +2 "$work/options.txt" | sort -u | while IFS=$'\t' read -r targets opts; do
  if [ "$targets" = portable ]; then tl="nvptx64-nvidia-nvcl spir64"; else tl="x86_64-unknown-linux-gnu"; fi
  for t in $tl; do
    echo "$t|-Xclang -fdeclare-opencl-builtins $opts" >> "$jobs"
  done
done
first_of() { awk -F'\t' -v k="$1" 'NR > 1 && $1 == k { print $2; exit }' "$work/options.txt"; }
o=$(first_of portable)
for t in nvptx64-nvidia-nvcl spir64; do echo "$t|$o" >> "$jobs"; done
o=$(first_of x86)
if [ -n "$o" ]; then echo "x86_64-unknown-linux-gnu|$o" >> "$jobs"; fi
total=$(wc -l < "$jobs")
export CLANG work
# shellcheck disable=SC2016
xargs -d '\n' -P "$(nproc)" -n 1 bash -c '
  t="${1%%|*}"; o="${1#*|}"
  # clang declares no vload_half/vstore_half for nvptx64 (NVIDIA has them):
  # common.cl declares them for the check.
  case "$t" in nvptx*) o="$o -DCLNORM_CHECK_HALF_DECLS=1" ;; esac
  if ! err=$("$CLANG" -x cl -target "$t" -Werror -fsyntax-only $o "$work/program.cl" 2>&1); then
    printf "FAILED: -target %s %s\n%s\n" "$t" "$o" "$err" > "$work/fail.$$.$RANDOM"
  fi' _ < "$jobs" || true
if ls "$work"/fail.* >/dev/null 2>&1; then
  nf=$(ls "$work"/fail.* | wc -l)
  for f in $(ls "$work"/fail.* | sed -n 1,3p); do cat "$f"; done
  echo "check-kernels: offline compile FAILED for $nf of $total (target, options) pairs (first 3 shown)"
  exit 1
fi
echo "check-kernels: offline compile passed: $total (target, options) pairs, $(tail -n +2 "$work/options.txt" | sort -u | wc -l) option sets"
