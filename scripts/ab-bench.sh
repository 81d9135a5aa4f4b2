#!/usr/bin/env bash
# A/B of the working tree against another commit, in the same minutes: on a
# shared, noisy machine only a comparison taken side by side means much.
#
#   scripts/ab-bench.sh [-r ROUNDS] REF [clnorm-bench args...]
#   scripts/ab-bench.sh -r 4 HEAD~1 --filter layer_norm --reps 20
#
# Builds REF in a temporary git worktree (Release, no tests) and the working
# tree in build-ab/, then runs both clnorm-bench binaries ROUNDS times
# (default 3), alternating which goes first (the first run of a round was
# seen to be slower here), and prints each case's ratios per side, sorted,
# with the median. A = REF, B = working tree. AB_B_ARGS adds arguments to B's
# runs only, for an option REF does not have: AB_B_ARGS="--copy-method copy4"
# divides B by the same float4 copy kernel as a REF from before the
# copy-method calibration.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
if [ "${1:-}" = "-r" ]; then rounds=$2; shift 2; fi
if [ $# -lt 1 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
fi
ref=$1; shift
./scripts/setup.sh >/dev/null

tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/a" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/a" "$ref"
for side in a b; do
  src=$tmp/a bld=$tmp/a/build
  if [ $side = b ]; then src=. bld=build-ab; fi
  cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=Release -DCLNORM_BUILD_TESTS=OFF >/dev/null
  cmake --build "$bld" -j "$(nproc)" --target clnorm-bench >/dev/null
done
bin_a=$tmp/a/build/bench/clnorm-bench bin_b=build-ab/bench/clnorm-bench

for r in $(seq "$rounds"); do
  order="A B"
  if [ $((r % 2)) = 0 ]; then order="B A"; fi
  for v in $order; do
    bin=$bin_a extra=()
    if [ "$v" = B ]; then bin=$bin_b; read -r -a extra <<< "${AB_B_ARGS:-}"; fi
    echo "ab-bench: round $r/$rounds, $v" >&2
    "$bin" --quiet --json "$@" "${extra[@]}" |
      /usr/bin/env python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        print(sys.argv[1], r["label"].replace(" ", "_"), r["ratio"], r["gbps"], r["copy_gbps"])' "$v" >>"$tmp/runs"
  done
done

echo "ratio to copy per run, sorted (A = $ref, B = working tree), and the median; then the"
echo "medians of the case's own GB/s and of the copy's, which tell a slower case from a faster copy"
/usr/bin/env python3 - "$tmp/runs" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, label, ratio, gbps, copy = line.split()
    runs[(label, side)].append((float(ratio), float(gbps), float(copy)))
for (label, side) in sorted(runs):
    r = runs[(label, side)]
    v = sorted(x[0] for x in r)
    print("%-48s %s  %s   median %.3f   GB/s %.2f  copy %.2f" % (label, side, " ".join("%.3f" % x for x in v),
          statistics.median(v), statistics.median(x[1] for x in r), statistics.median(x[2] for x in r)))
PY
