#!/usr/bin/env bash
# Train the paper-size detector (dil_resnet50.tv_in1k, 224 px, U=4 x T=4, the paper's recipe) from
# real videos only, with pseudo-fakes (docs/pseudo_fakes.md), on one GPU in under 8 minutes.
#
#   benchmarks/gpu_pseudo_fakes.sh prepare      # here (needs the [video] extra: PyAV + dlib):
#                                               # face crops of the bundled footage -> $FACES
#   benchmarks/gpu_pseudo_fakes.sh              # on the GPU machine (torch, timm, numpy, pillow; no PyAV/dlib)
#
# Environment: FACES (default benchmarks/pseudo_fake_faces), OUT (default benchmarks/results/gpu_pseudo_fakes;
# must not hold an earlier run), MODE (both), WEIGHTS (a local timm resnet50.tv_in1k .safetensors; without
# it the backbone starts from random init: timm's ImageNet weights cannot be downloaded offline),
# TIME_LIMIT (training seconds, default 330), PYTHON.
# Writes OUT/run/model (hub layout + card), OUT/summary.json, OUT/train.log, OUT/gpu.txt.
set -u
cd "$(dirname "$0")/.."
. benchmarks/gpu_env.sh  # PY, PYTHONPATH (this checkout), carried wheels (.whl/)
FACES="${FACES:-benchmarks/pseudo_fake_faces}"
if [ "${1:-}" = "prepare" ]; then
    # held out for validation: Zhling_1280x720 and two_people_320x192_test_vd_rc (other people)
    exec "$PY" -m dynsnip extract-faces dynsnip/assets/videos/*.mp4 dynsnip/assets/demo/*.mp4 \
        --out "$FACES" --format jpg --max-frames 160 --workers 2
fi
OUT="${OUT:-benchmarks/results/gpu_pseudo_fakes}"
if [ -e "$OUT/run" ]; then echo "$OUT/run exists: choose another OUT" >&2; exit 2; fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
    # the paper-size training on a CPU takes hours and about 15 GB of memory: never start it by accident
    echo "gpu_pseudo_fakes.sh: no CUDA device here (torch.cuda.is_available() is False); run it on the GPU machine" >&2
    exit 2
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
INIT=(--init random)
if [ -n "${WEIGHTS:-}" ]; then INIT=(--weights "$WEIGHTS"); fi
timeout 450 "$PY" benchmarks/train_pseudo_fakes.py --faces "$FACES" --out "$OUT" \
    --val Zhling_1280x720 two_people_320x192_test_vd_rc --mode "${MODE:-both}" "${INIT[@]}" \
    --time-limit "${TIME_LIMIT:-330}" --repeats 100 --workers 12 --amp-dtype bfloat16 2>&1 | tee "$OUT/train.log"
rc=${PIPESTATUS[0]}
echo "rc=$rc"
exit "$rc"
