#!/usr/bin/env bash
# The GPU figures of docs/video.md's face detectors, sized for a short loan of one GPU (about 4 minutes):
#   1. per-frame cost of MTCNN and BlazeFace on the GPU (720p / 352x288 / 176x144, alone and 16 at once;
#      BlazeFace's network per 128 / 192 px input, batch 1 and 16) and their coverage / agreement on the
#      bundled footage                                                                     (~1.5 min)
#   2. extract-faces on the bundled footage (and any clips passed as arguments) with the detectors on the
#      GPU: frames/s and coverage of auto and mtcnn against decode-only, one run, with the detect/write
#      threads (pipeline) and without: the second loan (2026-12-04) measured auto at 6.4 s a run against
#      mtcnn's 0.75 s in extract_face_frames, but 0.2 s in its detection pass: a new detection thread per
#      video rebuilt cuDNN's per-thread plans; GPU detectors now run in the decoding thread  (~2 min)
# FACE_STEPS (default "detectors extraction") picks the steps. Each step has its own time limit. Writes *.md and *.json to $OUT (default: benchmarks/results).
#   bash benchmarks/gpu_face_detection.sh [more videos ...]
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
. benchmarks/gpu_env.sh  # PY, PYTHONPATH (this checkout), carried wheels (.whl/)
VIDEOS=(dynsnip/assets/videos/*.mp4 "$@")

FACE_STEPS=" ${FACE_STEPS:-detectors extraction} "
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
    echo "gpu_face_detection.sh: no CUDA device here (torch.cuda.is_available() is False); run it on the GPU machine" >&2
    exit 2
fi
failed=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu_face_detection.txt" 2>&1
[[ "$FACE_STEPS" == *" detectors "* ]] && { timeout 150 "$PY" benchmarks/face_detectors.py --device cuda --cost --repeats 20 \
    --detectors mtcnn,blazeface,blazeface-short,auto --videos "${VIDEOS[@]}" \
    --json "$OUT/gpu_face_detectors.json" > "$OUT/gpu_face_detectors.md" 2> "$OUT/gpu_face_detectors.log"
rc=$?; echo "detectors: rc=$rc"; [ "$rc" = 0 ] || failed=1; cat "$OUT/gpu_face_detectors.md"; }
[[ "$FACE_STEPS" == *" extraction "* ]] && { timeout 170 "$PY" benchmarks/face_extraction.py --device cuda --write --every 4 --formats png \
    --backends mtcnn,auto --pipeline auto,off --no-full-resolution --repeats 3 --videos "${VIDEOS[@]}" \
    --json "$OUT/gpu_face_extraction.json" > "$OUT/gpu_face_extraction.md" 2> "$OUT/gpu_face_extraction.log"
rc=$?; echo "extraction: rc=$rc"; [ "$rc" = 0 ] || failed=1; cat "$OUT/gpu_face_extraction.md"; }
exit "$failed"
