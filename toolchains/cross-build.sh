#!/usr/bin/env bash
# Cross-build fastface's C++ side for an ARM board, in one command:
#   ncnn (the pinned source release, built once per target/board and cached in ~/.cache/fastface),
#   the C++ core (static library + public headers + CMake package), fastface_tests and
#   fastface-bench, all installed into one prefix you copy to the board.
#
#   toolchains/cross-build.sh <aarch64|armv7> [board] [--test] [-- extra cmake arguments]
#
#   target  aarch64: 64-bit OS (Raspberry Pi OS 64-bit, Ubuntu, Jetson L4T), g++-aarch64-linux-gnu
#           armv7:   32-bit Raspberry Pi OS (armhf, NEON + VFPv4),          g++-arm-linux-gnueabihf
#   board   generic (default: runs on every board of that target), pi3, pi4, pi5, jetson-nano,
#           orin: adds -mcpu=<that core> (toolchains/boards.cmake)
#   --test  afterwards, run fastface_tests and a short fastface-bench under qemu-user
#           (cross-parity test included when FASTFACE_PARITY_DIR is set: cpp/tests/make_reference.py)
#
# Output: build/<target>[-<board>] (build tree) and its install/ folder:
#   bin/fastface-bench, bin/fastface_tests, lib/libfastface_core.a, lib/libncnn.a, include/,
#   lib/cmake/{fastface,ncnn} (find_package(fastface) -> fastface::core).
# Environment: FASTFACE_BUILD_DIR / FASTFACE_INSTALL_PREFIX override those folders,
# FASTFACE_CACHE_DIR the ncnn cache, ncnn_DIR uses your own ncnn build for the target instead.
# Needs cmake >= 3.18, python3 with pip (to fetch ncnn), ninja or make; ccache is used when present.
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

target="" board="generic" run_tests=0 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage 0 ;;
    --test) run_tests=1 ;;
    --) shift; extra=("$@"); break ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) if [ -z "$target" ]; then target="$1"; else board="$1"; fi ;;
  esac
  shift
done

case "$target" in
  aarch64) triple=aarch64-linux-gnu qemu=qemu-aarch64 ;;
  armv7|armhf|arm) target=armv7 triple=arm-linux-gnueabihf qemu=qemu-arm ;;
  *) echo "target must be aarch64 or armv7" >&2; usage ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
name="$target"; [ "$board" = generic ] || name="$target-$board"
build="${FASTFACE_BUILD_DIR:-$root/build/$name}"
prefix="${FASTFACE_INSTALL_PREFIX:-$build/install}"
sysroot="/usr/$triple"

if ! command -v "$triple-g++" >/dev/null; then
  echo "$triple-g++ not found: apt-get install g++-$triple (or pass -- -DFASTFACE_CROSS_PREFIX=...)" >&2
  exit 1
fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

start=$(date +%s)
set -x
cmake -S "$root" -B "$build" "${generator[@]}" \
  -DCMAKE_TOOLCHAIN_FILE="$root/toolchains/$triple.cmake" -DFASTFACE_BOARD="$board" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" "${extra[@]}"
cmake --build "$build"
cmake --install "$build"
{ set +x; } 2>/dev/null
echo "fastface: $name built and installed into $prefix in $(( $(date +%s) - start ))s"

if [ "$run_tests" = 1 ]; then
  if ! command -v "$qemu" >/dev/null; then
    echo "$qemu not found: apt-get install qemu-user" >&2
    exit 1
  fi
  cd "$root"  # the tests find ../shared relative to the repository
  set -x
  "$qemu" -L "$sysroot" "$build/fastface_tests"
  "$qemu" -L "$sysroot" "$build/fastface-bench" --demo --runs 3 --warmup 1
fi
