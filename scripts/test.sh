#!/usr/bin/env bash
# Builds memres and runs every test suite: ./scripts/test.sh [PRESET]   (dev, asan or tsan; dev
# by default). Installs what is missing (cmake, pkg-config, Criterion) with apt-get if it can.
# GPU suites (test_cuda_*) skip, and say why, on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-dev}

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists criterion 2>/dev/null || need+=(libcriterion-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset" --timeout 1500
