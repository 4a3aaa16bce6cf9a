#!/usr/bin/env bash
# Cross-build fastface's Python wheel for an ARM board on this x86 machine, in one command:
#
#   toolchains/build-wheel.sh aarch64 [--test [pytest arguments]]
#
# Output: dist/fastface-<version>-cp311-cp311-manylinux_2_34_aarch64.whl, for Python 3.11 on a
# 64-bit board OS with glibc >= 2.34 (Raspberry Pi OS / Debian 12, Ubuntu 22.04 and later).
# Install it on the board with: pip install fastface-*.whl (numpy comes from pip or python3-numpy).
#
# How: scikit-build-core with toolchains/aarch64-linux-gnu.cmake, Python headers from an arm64
# Python 3.11 root assembled from Debian's packages (toolchains/python-sysroot.sh, cached in
# ~/.cache/fastface), and the cross-built ncnn that toolchains/cross-build.sh caches there too.
# The tag: auditwheel repair grafts libgomp (ncnn's OpenMP runtime, which manylinux does not
# allow to assume) into the wheel and tags it with the oldest manylinux its glibc symbol
# versions allow (2.34, from GCC 12 / glibc 2.36's pthread symbols), checked by auditwheel.
#
# --test: installs the wheel with the arm64 pip into build/wheel-aarch64/site and runs the test
# suite under qemu-aarch64 in runtime-only mode (FASTFACE_TEST_RUNTIME_ONLY=1, tests/conftest.py):
# numpy, OpenCV and the wheel only; tests needing torch, pnnx, ncnn-python etc. skip, naming it.
# Needs: g++-aarch64-linux-gnu, qemu-user, python3.11 with pip, scikit-build-core, pybind11,
# auditwheel and patchelf on the host (the build runs unisolated, so it needs no index), Debian
# with the arm64 architecture added (.ci/run does both).
set -euo pipefail

target="${1:-}"
shift || true
case "$target" in
  aarch64) arch=arm64 triple=aarch64-linux-gnu plat=linux-aarch64 ;;
  *) echo "usage: $0 aarch64 [--test [pytest arguments]]" >&2; exit 2 ;;
esac
run_tests=0
if [ "${1:-}" = --test ]; then run_tests=1; shift; fi

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
host_py="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$host_py" != 3.11 ]; then
  echo "the host python3 is $host_py; the wheel's tag comes from it, so use Python 3.11" >&2
  exit 1
fi
sysroot="$(toolchains/python-sysroot.sh "$arch")"
start=$(date +%s)
build="build/wheel-$target"
rm -rf "$build/dist" "$build/repaired"
# scikit-build-core takes the platform tag from _PYTHON_HOST_PLATFORM and the extension
# suffix from SETUPTOOLS_EXT_SUFFIX (so does pybind11); the headers are the target's.
set -x
_PYTHON_HOST_PLATFORM="$plat" SETUPTOOLS_EXT_SUFFIX=".cpython-311-$triple.so" \
python3 -m pip wheel . --no-deps --no-build-isolation -w "$build/dist" \
  -C build-dir="$build/cmake" \
  -C cmake.define.CMAKE_TOOLCHAIN_FILE="$root/toolchains/$triple.cmake" \
  -C cmake.define.PYBIND11_USE_CROSSCOMPILING=ON \
  -C cmake.define.Python_INCLUDE_DIR="$sysroot/usr/include/python3.11" \
  -C cmake.define.Python3_INCLUDE_DIR="$sysroot/usr/include/python3.11"
{ set +x; } 2>/dev/null
wheel="$(ls "$build"/dist/fastface-*.whl)"
python3 -m auditwheel repair --plat auto --ldpaths "$sysroot/usr/lib/$triple" -w "$build/repaired" "$wheel"
wheel="$(ls "$build"/repaired/fastface-*.whl)"
mkdir -p dist
cp "$wheel" dist/
wheel="dist/$(basename "$wheel")"
echo "fastface: $wheel built in $(( $(date +%s) - start ))s"

if [ "$run_tests" = 1 ]; then
  # The arm64 pip installs it (so the tag must suit this arm64 Python 3.11, glibc 2.36),
  # then pytest runs under qemu with Debian's arm64 numpy and OpenCV's aarch64 wheel.
  site="$build/site"
  rm -rf "$site"
  "$sysroot/usr/bin/python3" -m pip install -q --no-deps --no-index --no-compile --target "$site" "$wheel"
  FASTFACE_TEST_RUNTIME_ONLY=1 FASTFACE_STRESS_CALLS="${FASTFACE_STRESS_CALLS:-50}" PYTHONPATH="$root/$site" \
    "$sysroot/usr/bin/python3" -m pytest -p no:cacheprovider "$@"
fi
