#!/usr/bin/env bash
# The README's test command: set up if needed, configure, build, run every
# test with CTest on the default OpenCL device (PoCL's CPU device in CI).
# Extra CMake options can come through CLNORM_CMAKE_FLAGS (CI adds -Werror).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build=${CLNORM_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CLNORM_CMAKE_FLAGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 900 "$@"
