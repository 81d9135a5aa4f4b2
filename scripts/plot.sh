#!/usr/bin/env bash
# Renders one PNG per device from clnorm-bench CSV files: a bar of effective
# GB/s per case (labelled with its ratio to copy), and the device's copy
# bandwidth as a horizontal line.
#
#   scripts/plot.sh bench/results/<device>.csv [more.csv ...]   -> <device>.png beside each CSV
#   scripts/plot.sh -o out.png file.csv                          (one CSV only)
#
# A CSV holding several devices (clnorm-bench --csv FILE --all-devices) gives
# <file>-<device>.png per device. Needs gnuplot; installs Debian's gnuplot-nox
# with apt-get when it is missing (idempotent: nothing happens when present).
set -euo pipefail

out=""
if [ "${1:-}" = "-o" ]; then
  out=$2
  shift 2
fi
if [ $# -eq 0 ]; then
  echo "usage: $0 [-o out.png] results.csv [more.csv ...]" >&2
  exit 2
fi
if [ -n "$out" ] && [ $# -ne 1 ]; then
  echo "plot: -o takes exactly one CSV" >&2
  exit 2
fi

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot: gnuplot is missing; installing gnuplot-nox" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null ||
    { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null; }
fi
term="pngcairo size 1400,720 font 'Sans,10'"
if ! gnuplot -e "set terminal" 2>&1 | grep -q pngcairo; then term="png size 1400,720"; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# CSV -> one tab-separated file per device: label, gbps, copy_gbps, ratio.
# Fields may be quoted (device names); a small awk splitter handles that.
split_csv() {
  awk -v dir="$tmp" '
    function parse(line,   n, i, c, f, q) {
      n = 0; f = ""; q = 0
      for (i = 1; i <= length(line); i++) {
        c = substr(line, i, 1)
        if (q) {
          if (c == "\"") { if (substr(line, i + 1, 1) == "\"") { f = f "\""; i++ } else q = 0 }
          else f = f c
        } else if (c == "\"") q = 1
        else if (c == ",") { fld[++n] = f; f = "" }
        else f = f c
      }
      fld[++n] = f
      return n
    }
    NR == 1 { n = parse($0); for (i = 1; i <= n; i++) col[fld[i]] = i; next }
    {
      sub(/\r$/, "")
      parse($0)
      dev = fld[col["device"]]
      if (!(dev in idx)) { idx[dev] = ++ndev; print dev > (dir "/devices") }
      f = dir "/dev" idx[dev] ".tsv"
      printf "%s\t%s\t%s\t%s\n", fld[col["label"]], fld[col["gbps"]], fld[col["copy_gbps"]], fld[col["ratio"]] > f
    }' "$1"
}

for csv in "$@"; do
  rm -f "$tmp"/dev*.tsv "$tmp/devices"
  split_csv "$csv"
  if [ ! -s "$tmp/devices" ]; then
    echo "plot: $csv has no results" >&2
    continue
  fi
  ndev=$(wc -l <"$tmp/devices")
  i=0
  while IFS= read -r dev; do
    i=$((i + 1))
    data="$tmp/dev$i.tsv"
    if [ -n "$out" ] && [ "$ndev" -eq 1 ]; then
      png=$out
    elif [ "$ndev" -eq 1 ]; then
      png="${csv%.csv}.png"
    else
      safe=$(printf '%s' "$dev" | tr -cs 'A-Za-z0-9._' '-' | sed 's/^-*//; s/-*$//')
      png="${out:-${csv%.csv}.png}"
      png="${png%.png}-$safe.png"
    fi
    copy=$(awk -F'\t' 'NR == 1 { print $3 }' "$data")
    ymax=$(awk -F'\t' -v c="$copy" 'BEGIN { m = c } $2 > m { m = $2 } END { print m * 1.18 }' "$data")
    title=$(printf '%s' "$dev" | sed 's/"/\\"/g')
    stamp=$(date -r "$csv" '+%Y-%m-%d %H:%M' 2>/dev/null || date '+%Y-%m-%d')
    gnuplot <<EOF
set terminal $term
set output "$png"
set datafile separator "\t"
set title "clnorm on $title — effective GB/s per case (label: ratio to copy), $stamp" noenhanced
set ylabel "effective GB/s (x read + y written + params/stats)"
set yrange [0:$ymax]
set style fill solid 0.85 border -1
set boxwidth 0.7
set grid ytics
set xtics rotate by 35 right noenhanced font ",9"
set bmargin 10
set lmargin 12
set key top right
set arrow from graph 0, first $copy to graph 1, first $copy nohead lw 2 dt 2 lc rgb "#c0392b" front
set label sprintf("copy %.1f GB/s", $copy) at graph 0.01, first $copy offset 0, 0.7 tc rgb "#c0392b" front
plot "$data" using 0:2:xtic(1) with boxes lc rgb "#2e86c1" title "clnorm", \
     "" using 0:2:(sprintf("%.2f", \$4)) with labels offset 0, 0.7 font ",8" notitle, \
     NaN with lines lw 2 dt 2 lc rgb "#c0392b" title "float4 copy bandwidth"
EOF
    echo "plot: wrote $png"
  done <"$tmp/devices"
done
