#!/usr/bin/env bash
# One GPU loan, one command (the device tool runs one command of at most 10 minutes and returns at
# most 8 files): benchmarks/gpu.sh (issue 24: eager, profile, compiled, fused tail), then, in the
# time left of BUDGET seconds, benchmarks/gpu_face_detection.sh (issue 23's GPU figures); every
# result packed into $OUT/gpu_results.tgz. Back here:
#   mkdir r && tar xzf gpu_results.tgz -C r && python benchmarks/gpu_report.py --results r
# puts the figures into docs/performance.md. Carry .whl/ (bash tools/device_wheels.sh) for the
# face script's PyAV. DRY_RUN=1: gpu.sh's CPU dry run only (the face script needs CUDA).
set -u
cd "$(dirname "$0")/.."
BUDGET="${BUDGET:-580}"  # seconds for both scripts, under the device tool's 600 s per command
RESULTS="${RESULTS:-/tmp/gpu_loan}"
DEST="${OUT:-benchmarks/results}"
mkdir -p "$RESULTS/faces" "$DEST"
export PYTHONUNBUFFERED=1
start=$SECONDS
OUT="$RESULTS" timeout "$((BUDGET - 20))" bash benchmarks/gpu.sh > "$RESULTS/gpu_sh.log" 2>&1
gpu_rc=$?
echo "gpu.sh: rc=$gpu_rc in $((SECONDS - start)) s"
face_rc=0
left=$((BUDGET - (SECONDS - start) - 10))
if [ "${DRY_RUN:-0}" != 1 ] && [ "$left" -gt 60 ]; then
    OUT="$RESULTS/faces" timeout "$left" bash benchmarks/gpu_face_detection.sh > "$RESULTS/faces/run.log" 2>&1
    face_rc=$?
    echo "gpu_face_detection.sh: rc=$face_rc (limit $left s)"
else
    echo "gpu_face_detection.sh: not run ($([ "${DRY_RUN:-0}" = 1 ] && echo "a dry run" || echo "$left s left"))"
fi
tar czf "$DEST/gpu_results.tgz" -C "$RESULTS" .
cat "$RESULTS/gpu_sh.log"
[ -f "$RESULTS/faces/run.log" ] && tail -c 4000 "$RESULTS/faces/run.log"
echo "total $((SECONDS - start)) s; results in $DEST/gpu_results.tgz"
[ "$gpu_rc" = 0 ] && [ "$face_rc" = 0 ]  # the loan's exit status: 0 only if both scripts measured everything
