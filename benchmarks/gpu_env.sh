# Sourced by the GPU scripts (gpu.sh, gpu_face_detection.sh, gpu_pseudo_fakes.sh), from the checkout's root.
# A loaned GPU machine is often bare and offline: dynsnip is not installed there, `python` may not exist
# (only `python3`), and packages the script needs beyond its image's (PyAV for the face scripts) can only
# arrive as wheels copied along with the checkout. So that one short loan is not lost to the environment:
#
#   * PY: $PYTHON if set, else the first of `python`, `python3` that imports torch (exit 3 if none does);
#   * PYTHONPATH: this checkout first, so `import dynsnip` is this code, installed or not;
#   * wheels in $WHEELS (default .whl, made here by `bash tools/device_wheels.sh`) of packages PY lacks are
#     installed into $WHEELS_TARGET (default /tmp/dynsnip-wheels) without the network and put on PYTHONPATH.
#
# Usage (in a script, after `cd` to the checkout's root):  . benchmarks/gpu_env.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
else
    PY=""
    for candidate in python python3; do
        if command -v "$candidate" > /dev/null && "$candidate" -c "import torch" 2> /dev/null; then
            PY="$candidate"; break
        fi
    done
    if [ -z "$PY" ]; then
        echo "gpu_env.sh: neither python nor python3 imports torch; set PYTHON to an interpreter that does" >&2
        exit 3
    fi
fi
WHEELS="${WHEELS:-.whl}"
MISSING=()  # carried wheels of packages this Python lacks (a machine that has them keeps its own)
for wheel in "$WHEELS"/*.whl; do
    [ -e "$wheel" ] || continue
    name="$(basename "$wheel")"; name="${name%%-*}"
    "$PY" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$name" 2> /dev/null || MISSING+=("$wheel")
done
if [ "${#MISSING[@]}" -gt 0 ]; then
    WHEELS_TARGET="${WHEELS_TARGET:-/tmp/dynsnip-wheels}"
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$WHEELS_TARGET" "${MISSING[@]}"; then
        echo "gpu_env.sh: installing ${MISSING[*]} failed (made for another Python? see tools/device_wheels.sh)" >&2
        exit 3
    fi
    export PYTHONPATH="$PYTHONPATH:$WHEELS_TARGET"  # after the checkout
    echo "gpu_env.sh: installed ${MISSING[*]} into $WHEELS_TARGET" >&2
fi
echo "gpu_env.sh: $("$PY" -c 'import sys, torch; print(sys.executable, "Python", sys.version.split()[0], "torch", torch.__version__)')" >&2
