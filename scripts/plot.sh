#!/usr/bin/env bash
# Renders one PNG per device from clnorm-bench CSV files: a bar of effective
# GB/s per case and direction (labelled with its ratio to copy; forward bars
# blue, backward bars orange, from the CSV's direction column), and the device's copy
# bandwidth as a dashed line (the copy runs interleaved with each case, which
# each ratio is against; flat on a quiet machine).
#
#   scripts/plot.sh bench/results/<device>.csv [more.csv ...]   -> <device>.png beside each CSV
#   scripts/plot.sh -o out.png file.csv                          (one CSV only)
#
# A CSV holding several devices (clnorm-bench --csv FILE --all-devices) gives
# <file>-<device>.png per device. Needs gnuplot; installs Debian's gnuplot-nox
# with apt-get when it is missing (idempotent: nothing happens when present);
# where that is impossible it falls back to python3 with matplotlib.
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

if ! command -v gnuplot >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "plot: gnuplot is missing; installing gnuplot-nox" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null 2>&1 ||
    { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null 2>&1; } ||
    echo "plot: could not install gnuplot-nox" >&2
fi
if ! command -v gnuplot >/dev/null 2>&1; then
  # No gnuplot (e.g. a machine without a package registry): matplotlib, if any python has it.
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c "import matplotlib" 2>/dev/null; then
      exec "$py" - "$out" "$@" <<'PY'
import csv, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out, files = sys.argv[1], sys.argv[2:]
for path in files:
    rows = list(csv.DictReader(open(path)))
    devs = []
    for r in rows:
        if r["device"] not in devs:
            devs.append(r["device"])
    for dev in devs:
        rs = [r for r in rows if r["device"] == dev]
        if out and len(devs) == 1:
            png = out
        else:
            png = (out or path[:-4] + ".png")
            if len(devs) > 1:
                safe = "".join(c if c.isalnum() or c in "._" else "-" for c in dev).strip("-")
                png = png[:-4] + "-" + safe + ".png"
        fig, ax = plt.subplots(figsize=(14, 7.2), dpi=100)
        xs = range(len(rs))
        g = [float(r["gbps"]) for r in rs]
        bwd = [r.get("direction") == "backward" for r in rs]
        ax.bar(xs, g, color=["#e67e22" if b else "#2e86c1" for b in bwd], edgecolor="black",
               label="clnorm forward" + (" (blue), backward (orange)" if any(bwd) else ""))
        for x, v, r in zip(xs, g, rs):
            ax.text(x, v, "%.2f" % float(r["ratio"]), ha="center", va="bottom", fontsize=8)
        cp = [float(r["copy_gbps"]) for r in rs]
        copy = sorted(cp)[len(cp) // 2]
        method = rs[0].get("copy_method") or "float4 kernel"
        ax.plot(list(xs), cp, color="#c0392b", ls="--", lw=2, marker="_", ms=30,
                label="copy bandwidth (%s), measured beside each case (median %.1f GB/s)" % (method, copy))
        st = [r.get("copy_stream_gbps") or "" for r in rs]
        if all(st):
            sv = float(st[0])
            cp.append(sv)
            ax.axhline(sv, color="#7d3c98", ls=":", lw=2,
                       label="float4 copy with streaming stores, for reference (%.1f GB/s)" % sv)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([r["label"] for r in rs], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("effective GB/s (fwd: x read + y written; bwd: x, dy read + dx written; + params/stats)")
        ax.set_title("clnorm on %s: effective GB/s per case (label: ratio to copy)" % dev)
        ax.set_ylim(0, max(g + cp) * 1.18)
        ax.grid(axis="y", ls=":")
        ax.legend()
        fig.tight_layout()
        fig.savefig(png)
        print("plot: wrote " + png)
PY
    fi
  done
  echo "plot: neither gnuplot nor python3 matplotlib is available" >&2
  exit 1
fi
term="pngcairo size 1400,720 font 'Sans,10'"
if ! gnuplot -e "set terminal" 2>&1 | grep -q pngcairo; then term="png size 1400,720"; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# CSV -> one tab-separated file per device: label, gbps, copy_gbps, ratio,
# copy_stream_gbps (empty when the CSV or the device has none), copy_method
# (empty in CSVs from before the copy-method calibration), direction
# (forward in CSVs from before the backward).
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
    NR == 1 {
      n = parse($0); for (i = 1; i <= n; i++) col[fld[i]] = i
      if (!("label" in col) || !("gbps" in col) || !("copy_gbps" in col)) exit
      next
    }
    {
      sub(/\r$/, "")
      parse($0)
      dev = fld[col["device"]]
      if (!(dev in idx)) { idx[dev] = ++ndev; print dev > (dir "/devices") }
      f = dir "/dev" idx[dev] ".tsv"
      st = ("copy_stream_gbps" in col) ? fld[col["copy_stream_gbps"]] : ""
      cm = ("copy_method" in col) ? fld[col["copy_method"]] : ""
      dn = ("direction" in col) ? fld[col["direction"]] : "forward"
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", fld[col["label"]], fld[col["gbps"]], fld[col["copy_gbps"]], fld[col["ratio"]], st, cm, dn > f
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
    copy=$(cut -f3 "$data" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    # The copy clnorm-bench divided by: its best method (copy_method), or the
    # float4 kernel of CSVs from before it chose one.
    method=$(awk -F'\t' 'NR == 1 { print ($6 == "" ? "float4 kernel" : $6) }' "$data")
    ymax=$(awk -F'\t' 'BEGIN { m = 0 } $2 > m { m = $2 } $3 > m { m = $3 } $5 > m { m = $5 } END { print m * 1.18 }' "$data")
    # The streaming-store copy, drawn for reference when every row has it.
    stream=$(awk -F'\t' '$5 == "" { none = 1 } NR == 1 { v = $5 } END { if (!none && NR) print v }' "$data")
    stream_plot=""
    if [ -n "$stream" ]; then
      stream_plot=", $stream with lines lw 2 dt 3 lc rgb \"#7d3c98\" title sprintf(\"float4 copy with streaming stores, for reference (%.1f GB/s)\", $stream)"
    fi
    # Backward rows, where there are any, in their own colour.
    bar_title="clnorm"
    if awk -F'\t' '$7 == "backward" { found = 1 } END { exit !found }' "$data"; then
      bar_title="clnorm forward (blue), backward (orange)"
    fi
    title=$(printf '%s' "$dev" | sed 's/"/\\"/g')
    stamp=$(date -r "$csv" '+%Y-%m-%d %H:%M' 2>/dev/null || date '+%Y-%m-%d')
    gnuplot <<EOF
set terminal $term
set output "$png"
set datafile separator "\t"
set title "clnorm on $title — effective GB/s per case (label: ratio to copy), $stamp" noenhanced
set ylabel "effective GB/s (fwd: x read + y written; bwd: x, dy read + dx written; + params/stats)"
set yrange [0:$ymax]
set style fill solid 0.85 border -1
set boxwidth 0.7
set grid ytics
set xtics rotate by 35 right noenhanced font ",9"
set bmargin 10
set lmargin 12
set key top right
plot "$data" using 0:2:(strcol(7) eq "backward" ? 0xe67e22 : 0x2e86c1):xtic(1) with boxes lc rgb variable title "$bar_title", \
     "" using 0:2:(sprintf("%.2f", \$4)) with labels offset 0, 0.7 font ",8" notitle, \
     "" using 0:3 with linespoints lw 2 dt 2 pt 7 ps 0.6 lc rgb "#c0392b" \
        title sprintf("copy bandwidth ($method), measured beside each case (median %.1f GB/s)", $copy)$stream_plot
EOF
    echo "plot: wrote $png"
  done <"$tmp/devices"
done
