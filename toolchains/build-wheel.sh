#!/usr/bin/env bash
# Cross-build fastface's Python wheel for an ARM board on this x86 machine, in one command:
#
#   toolchains/build-wheel.sh aarch64 [--test [pytest arguments]]
#
# Output: dist/fastface-<version>-cp311-cp311-manylinux_2_36_aarch64.whl, for Python 3.11 on a
# 64-bit board OS with glibc >= 2.36 (Raspberry Pi OS / Debian bookworm, Ubuntu 24.04; Jetson
# L4T 36 is Ubuntu 22.04, glibc 2.35: build there with pip install . instead).
# Install it on the board with: pip install fastface-*.whl (numpy comes from pip or python3-numpy).
#
# How: scikit-build-core with toolchains/aarch64-linux-gnu.cmake, Python headers from an arm64
# Python 3.11 root assembled from Debian's packages (toolchains/python-sysroot.sh, cached in
# ~/.cache/fastface), and the cross-built ncnn that toolchains/cross-build.sh caches there too.
# The tag: the wheel links only glibc, libstdc++ and libgcc_s, which every manylinux policy
# allows; glibc symbol versions (2.34+ after the pthread merge into libc) and GLIBCXX_3.4.30
# (GCC 12) place it at manylinux_2_36, the glibc of the Debian root it is built against;
# auditwheel (pip install auditwheel) checks that claim when installed.
#
# --test: installs the wheel with the arm64 pip into build/wheel-aarch64/site and runs the test
# suite under qemu-aarch64 in runtime-only mode (FASTFACE_TEST_RUNTIME_ONLY=1, tests/conftest.py):
# numpy, OpenCV and the wheel only; tests needing torch, pnnx, ncnn-python etc. skip, naming it.
# Needs: g++-aarch64-linux-gnu, qemu-user, python3.11 with pip, scikit-build-core and pybind11
# on the host (the build runs unisolated, so it needs no index), Debian with the arm64
# architecture added (.ci/run does it).
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
rm -rf "$build/dist"
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
# The platform tag: the oldest manylinux that auditwheel finds the wheel consistent with.
if python3 -m auditwheel --version >/dev/null 2>&1; then
  python3 -m auditwheel show "$wheel"
  python3 -m auditwheel repair --plat "manylinux_2_36_$target" --only-plat -w "$build/repaired" "$wheel"
  wheel="$(ls "$build"/repaired/fastface-*.whl)"
fi
mkdir -p dist
cp "$wheel" dist/
wheel="dist/$(basename "$wheel")"
echo "fastface: $wheel built in $(( $(date +%s) - start ))s"

if [ "$run_tests" = 1 ]; then
  # The arm64 pip installs it (so the tag must suit an arm64 Python 3.11 with glibc 2.36),
  # then pytest runs under qemu with Debian's arm64 numpy and OpenCV's aarch64 wheel.
  site="$build/site"
  rm -rf "$site"
  "$sysroot/usr/bin/python3" -m pip install -q --no-deps --no-index --no-compile --target "$site" "$wheel"
  FASTFACE_TEST_RUNTIME_ONLY=1 FASTFACE_STRESS_CALLS="${FASTFACE_STRESS_CALLS:-50}" PYTHONPATH="$root/$site" \
    "$sysroot/usr/bin/python3" -m pytest -p no:cacheprovider "$@"
fi
