#!/usr/bin/env bash
# The GPU half of docs/performance.md, sized for a short loan of one GPU (about 8 minutes).
# Writes tables (*.md) and every figure (*.json) to $OUT (default: benchmarks/results).
#   1. all five models, eager, bf16 autocast, channels_last            (~2 min)
#   2. dil_resnet50 vs resnet50 with torch.compile(fullgraph=True), bf16, channels_last
#      (compilation of inference and training graphs dominates: ~4 min)
# Each step has its own time limit, so that a slow step still leaves the other's results.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
COMMON=(--device cuda --amp bf16 --channels-last --batch 8 --infer-batch 16 --repeats 20 --warmup 3)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
timeout 200 "$PY" benchmarks/efficiency.py "${COMMON[@]}" \
    --json "$OUT/gpu_eager.json" > "$OUT/gpu_eager.md" 2> "$OUT/gpu_eager.log"
echo "eager: rc=$?"; cat "$OUT/gpu_eager.md"
timeout 330 "$PY" benchmarks/efficiency.py "${COMMON[@]}" --compile --models dil_resnet50,resnet50 \
    --json "$OUT/gpu_compile.json" > "$OUT/gpu_compile.md" 2> "$OUT/gpu_compile.log"
echo "compile: rc=$?"; cat "$OUT/gpu_compile.md"
