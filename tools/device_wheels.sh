#!/usr/bin/env bash
# Wheels for an offline GPU machine: the packages the GPU scripts need beyond a PyTorch image (PyAV for
# decoding, ISA-L for extract-faces' PNGs), downloaded here for that machine's Python into .whl/, which
# benchmarks/gpu_env.sh installs there without the network (copy .whl/ along with the checkout).
#
#   bash tools/device_wheels.sh                      # av + isal, the versions installed here, for CPython 3.12
#   PYVER=3.11 bash tools/device_wheels.sh av==18.1.0
#
# Environment: PYVER (the GPU machine's Python, default 3.12), WHEELS (folder, default .whl; git ignores it),
# PIP (default: python -m pip). x86-64 Linux (manylinux) wheels only: --no-deps, so name every package missing there.
set -eu
cd "$(dirname "$0")/.."
PYVER="${PYVER:-3.12}"
WHEELS="${WHEELS:-.whl}"
read -r -a PIP <<< "${PIP:-python -m pip}"
if [ "$#" -gt 0 ]; then
    PACKAGES=("$@")
else  # the versions this machine runs, so that both machines decode and compress alike
    PACKAGES=()
    for name in av isal; do
        version="$("${PIP[@]}" show "$name" 2> /dev/null | sed -n 's/^Version: //p')"
        PACKAGES+=("$name${version:+==$version}")
    done
fi
mkdir -p "$WHEELS"
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$tag")
done
"${PIP[@]}" download --no-deps --only-binary=:all: --implementation cp --python-version "$PYVER" \
    "${PLATFORMS[@]}" -d "$WHEELS" "${PACKAGES[@]}"
ls -l "$WHEELS"
du -sh "$WHEELS"
