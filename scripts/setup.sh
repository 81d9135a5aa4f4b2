#!/usr/bin/env bash
# Installs the Debian packages clnorm builds and tests with (clang: the
# offline kernel compile of scripts/check-kernels.sh; OpenMPI: clnorm_mpi and
# its mpirun tests; python3-onnx: ONNX's own node test cases in test_onnx).
# Idempotent: only
# what is missing is installed; nothing happens when everything is present.
set -euo pipefail
pkgs=(opencl-headers ocl-icd-opencl-dev pocl-opencl-icd check cmake pkg-config gcc make clinfo clang oclgrind openmpi-bin libopenmpi-dev
      python3-onnx "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
