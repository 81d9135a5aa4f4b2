#!/usr/bin/env bash
# The README's test command: set up if needed, configure, build, run every
# test with CTest on the default OpenCL device (PoCL's CPU device in CI).
# Extra CMake options can come through CLNORM_CMAKE_FLAGS (CI adds -Werror).
# CTest runs nproc tests at a time (CLNORM_TEST_JOBS=1: one at a time).
#
# Two platforms: when Oclgrind's ICD is installed (scripts/setup.sh installs
# it), the tests run with a vendors directory holding the system's ICDs and
# Oclgrind's, through OCL_ICD_VENDORS, without touching /etc. Device choice,
# driver errors during it, and every suite are then tested on a machine with
# two platforms, as users with several drivers have. CLNORM_TEST_PLATFORMS=system
# keeps the system's list alone.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build=${CLNORM_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CLNORM_CMAKE_FLAGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)"
oclgrind_icd=/usr/lib/oclgrind/liboclgrind-rt-icd.so
if [ "${CLNORM_TEST_PLATFORMS:-two}" != system ] && [ -e "$oclgrind_icd" ] && [ -z "${OCL_ICD_VENDORS:-}" ]; then
  vendors="$PWD/$build/opencl-vendors"
  rm -rf "$vendors" && mkdir -p "$vendors"
  cp /etc/OpenCL/vendors/*.icd "$vendors/" 2>/dev/null || true
  echo "$oclgrind_icd" > "$vendors/oclgrind.icd"
  export OCL_ICD_VENDORS="$vendors"
  echo "test.sh: OpenCL platforms: $(ls "$vendors" | tr '\n' ' ')(OCL_ICD_VENDORS=$vendors)"
fi
cd "$build"
# Tests in parallel, nproc at a time (CLNORM_TEST_JOBS overrides): the
# Oclgrind runs take one thread each for minutes, and the PoCL suites spend
# much of their time in single-threaded kernel compiles.
ctest --output-on-failure --timeout 900 -j "${CLNORM_TEST_JOBS:-$(nproc)}" "$@"
