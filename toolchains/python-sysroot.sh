#!/usr/bin/env bash
# An ARM Python 3.11 root assembled on this x86 machine from Debian's own packages, for
# cross-building fastface's wheel (headers) and running it under qemu-user (interpreter, numpy,
# pytest, pip; OpenCV from its PyPI ARM wheel, which the image tests read photos with).
#
#   toolchains/python-sysroot.sh <arm64|armhf>      prints the root's path (built once, cached)
#
# Needs Debian (bookworm: its python3.11) with `dpkg --add-architecture <arch>` and
# `apt-get update` done (.ci/run does both), qemu-user, and pip for the OpenCV wheel.
# Cached in ${FASTFACE_CACHE_DIR:-~/.cache/fastface}/sysroot-<arch>-<key>; the key changes
# when this script's package list does. No package scripts run: the packages are unpacked
# (dpkg -x) and the few links their scripts would make are made here.
#
# <root>/usr/bin/python3 is a host shell script running the ARM python3.11 under qemu, so
# `<root>/usr/bin/python3 -m pytest ...` works, and so do tests that start sys.executable.
set -euo pipefail

arch="${1:-}"
case "$arch" in
  arm64|aarch64) arch=arm64 triple=aarch64-linux-gnu qemu=qemu-aarch64 wheel_plat=manylinux_2_17_aarch64 ;;
  armhf|armv7) arch=armhf triple=arm-linux-gnueabihf qemu=qemu-arm wheel_plat= ;;  # PyPI has no armv7 OpenCV: its tests skip
  *) echo "usage: $0 <arm64|armhf>" >&2; exit 2 ;;
esac

# The interpreter, its headers and numpy, with their libraries (resolved by apt below);
# pip comes as Debian's architecture-independent packages.
roots=(python3.11 libpython3.11-dev python3-numpy libsqlite3-0 libstdc++6)
pure=(python3-pip python3-setuptools python3-wheel python3-pkg-resources python3-distutils python3-lib2to3)
# numpy needs one BLAS/LAPACK: the reference one; apt lists every alternative provider.
skip='^(libatlas|libblis|libopenblas)'
# From PyPI: OpenCV's own ARM wheel (self-contained; the newest that still runs with bookworm's
# numpy 1.24), and pytest 8 (bookworm's 7.2 skips the whole run when one conftest skips).
opencv="opencv-python-headless==4.11.0.86"
pytest=(pytest==8.3.5 pluggy==1.5.0 iniconfig==2.0.0 packaging==24.2)

cache="${FASTFACE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fastface}"
key=$( { sed -n '/^roots=/,/^pytest=/p' "$0"; echo "$arch"; } | sha256sum | cut -c1-12)
root="$cache/sysroot-$arch-py3.11-$key"
if [ -x "$root/usr/bin/python3" ]; then echo "$root"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/sysroot-$arch.lock"
flock 9
if [ -x "$root/usr/bin/python3" ]; then echo "$root"; exit 0; fi

if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  echo "run: dpkg --add-architecture $arch && apt-get update" >&2
  exit 1
fi
work="$root.partial"
rm -rf "$work" && mkdir -p "$work/debs"
start=$(date +%s)

# The dependency closure of the roots for $arch: names printed without ':$arch' are host
# packages that apt lists beside (dpkg, perl); only the target's are wanted.
mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
                      --no-replaces --no-enhances "${roots[@]/%/:$arch}" 2>/dev/null |
                    grep -E "^[a-z0-9].*:$arch\$" | sed "s/:$arch\$//" | grep -Ev "$skip" | sort -u)
(cd "$work/debs" && apt-get download -qq -o APT::Sandbox::User=root "${pkgs[@]/%/:$arch}" "${pure[@]}" >/dev/null)
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work"; done
rm -rf "$work/debs"

# Merged /usr, as bookworm's base-files lays it out.
for dir in lib bin sbin; do
  if [ -d "$work/$dir" ] && [ ! -L "$work/$dir" ]; then
    mkdir -p "$work/usr/$dir" && cp -a "$work/$dir/." "$work/usr/$dir/" && rm -rf "${work:?}/$dir"
  fi
  ln -sfn "usr/$dir" "$work/$dir"
done
# The links update-alternatives would make for the reference BLAS/LAPACK.
lib="$work/usr/lib/$triple"
ln -sfn blas/libblas.so.3 "$lib/libblas.so.3"
ln -sfn lapack/liblapack.so.3 "$lib/liblapack.so.3"
# Debian's include/python3.11/pyconfig.h only forwards to the multiarch one through the system
# include path; the cross compiler's include path is its own, so put the real one in its place.
cp "$work/usr/include/$triple/python3.11/pyconfig.h" "$work/usr/include/python3.11/pyconfig.h"

# OpenCV: unpacked like pip would (a wheel is a zip; no scripts to run).
if [ -n "$wheel_plat" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --platform "$wheel_plat" --python-version 3.11 \
    --implementation cp -d "$work/wheels" "$opencv"
  python3 -m zipfile -e "$work"/wheels/*.whl "$work/usr/lib/python3/dist-packages/"
  rm -rf "$work/wheels"
fi
python3 -m pip download -q --no-deps --only-binary=:all: -d "$work/wheels" "${pytest[@]}"
for wheel in "$work"/wheels/*.whl; do python3 -m zipfile -e "$wheel" "$work/usr/lib/python3/dist-packages/"; done
rm -rf "$work/wheels"

# The interpreter as the host runs it: qemu with this root; argv0 keeps sys.executable (and
# so the child processes tests start) on this script, and the prefix on this root.
rm -f "$work/usr/bin/python3"
cat > "$work/usr/bin/python3" <<EOF
#!/bin/sh
here="\$(cd "\$(dirname "\$0")/../.." && pwd)"
exec $qemu -L "\$here" -0 "\$0" "\$here/usr/bin/python3.11" "\$@"
EOF
chmod +x "$work/usr/bin/python3"
"$work/usr/bin/python3" -c "import numpy, pytest, pip" >&2

rm -rf "$root" && mv "$work" "$root"
echo "fastface: $arch Python sysroot assembled in $root in $(( $(date +%s) - start ))s" >&2
echo "$root"
