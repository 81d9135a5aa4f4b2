#!/usr/bin/env bash
# Downloads, on a machine where the Debian registry is reachable, the .deb
# files that the GPU machine (no registry there) needs to build and test
# clnorm, into .deps/ (git-ignored). scripts/gpu-run.sh unpacks them there
# into .deps/root with dpkg -x (never into /).
#
#   ./scripts/gpu-deps.sh            # then carry .deps to the GPU machine
#
# Packages: the OpenCL ICD loader and its development files, the OpenCL C
# and C++ headers, Check with libsubunit, pkg-config (pkgconf), and clinfo.
# They come from this machine's apt sources (Debian 12 "bookworm": the
# binaries need glibc >= 2.34, e.g. Ubuntu 22.04 or newer; gpu-run.sh falls
# back to the GPU machine's own libOpenCL where they cannot run).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers opencl-c-headers opencl-clhpp-headers
  check libsubunit0 libsubunit-dev pkgconf pkgconf-bin libpkgconf3 pkg-config clinfo)

if ! command -v apt-get >/dev/null 2>&1; then
  echo "gpu-deps: apt-get not found; run this on a Debian machine" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # lets apt's sandbox user write there (no "unsandboxed" warning)
fetch() { (cd "$tmp" && apt-get download -q "${pkgs[@]}"); }
if ! fetch >"$tmp.log" 2>&1; then
  echo "gpu-deps: apt-get download failed; refreshing the package lists" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -q >/dev/null
  fetch >"$tmp.log" 2>&1 || { cat "$tmp.log" >&2; rm -f "$tmp.log"; exit 1; }
fi
rm -f "$tmp.log"

mkdir -p .deps
rm -f .deps/*.deb
mv "$tmp"/*.deb .deps/
rm -rf .deps/root # gpu-run.sh unpacks afresh

{
  echo "# .deb files for scripts/gpu-run.sh, downloaded $(date -u '+%Y-%m-%d %H:%M UTC') on $(. /etc/os-release && echo "$PRETTY_NAME")"
  for f in .deps/*.deb; do
    printf '%s %s %s\n' "$(dpkg-deb -f "$f" Package)" "$(dpkg-deb -f "$f" Version)" "$(sha256sum "$f" | cut -d' ' -f1)"
  done
} >.deps/MANIFEST
cat .deps/MANIFEST
echo "gpu-deps: $(ls .deps/*.deb | wc -l) packages, $(du -sh .deps | cut -f1) in .deps/"
