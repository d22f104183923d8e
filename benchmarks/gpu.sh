#!/usr/bin/env bash
# The GPU half of docs/performance.md (issue 24), sized for one short GPU loan (under 9 minutes on
# an H200). bf16 autocast, channels_last, batch 16 clips of U=4 x T=4 at 224 px (clip throughput
# and the training step on 16 clips, latency on 1 clip), ratios to resnet50 on the same frames:
#   1. eager:    dil_resnet50 (defaults), dil_resnet50@paper (the paper's module), resnet50, tsm_resnet50,
#                and the defaults with their depthwise convs on cuDNN instead of the Triton kernels (same numbers)
#   2. profile:  where the eager step's GPU time goes (kernels, launches, busy share, the SIMs' share):
#                benchmarks/gpu_profile.py -> gpu_profile.json
#   3. compiled: dil_resnet50, resnet50 (torch.compile, fullgraph, inductor); MODULE=paper compiles
#                dil_resnet50@paper instead (the first loan, 2026-12-04, measured that one compile of
#                dil_resnet50 and resnet50 takes about 300 s: both do not fit one loan)
#   4. the Intra-SIM's elementwise tail, eager ops against the fused Triton kernel, per Intra-SIM of
#      dil_resnet50 (defaults and the paper's module): benchmarks/gate_tap.py -> gpu_gate_tap.json
#   5. the SIMs' depthwise convs (motion channels' Eq. 1, Conv_U), PyTorch's conv against the Triton kernels,
#      forward and forward + backward: benchmarks/depthwise_taps.py -> gpu_depthwise_taps.json
# Each step has its own time limit, so that a slow step still leaves the others' results. Writes
# gpu_*.json / .md / .log to $OUT (default benchmarks/results), then benchmarks/gpu_report.py puts
# every figure into docs/performance.md (a copy lands in $OUT too).
#
# STEPS (default "eager profile compiled tail taps") picks the steps a loan runs, e.g. STEPS="eager profile".
#
# Dry run of the Python part on a CPU (tiny models and clips, the eager backend for "compiled"):
#   DRY_RUN=1 OUT=/tmp/gpu_dry bash benchmarks/gpu.sh
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
. benchmarks/gpu_env.sh  # PY, PYTHONPATH (this checkout), carried wheels (.whl/)
export TORCHINDUCTOR_COMPILE_THREADS="${TORCHINDUCTOR_COMPILE_THREADS:-16}"

if [ "${DRY_RUN:-0}" = 1 ]; then
    DIL=dil_resnet18; BASE=resnet18
    COMMON=(--device cpu --frames 8 --size 32 --batch 2 --infer-batch 2 --repeats 1 --warmup 1 --baseline "$BASE" --threads 1)
    COMPILE=(--compile --compile-backend eager)
    LIMITS=(600 300 600 120 120)
    PROFILE=(--quick)
    GATE_TAP=(--device cpu --quick)
    TAPS=(--device cpu --quick)
    DOC="$OUT/performance.md"; cp docs/performance.md "$DOC"
else
    if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
        echo "gpu.sh: no CUDA device here (torch.cuda.is_available() is False); run it on the GPU machine, or" \
             "DRY_RUN=1 for the CPU dry run. Nothing measured, docs/performance.md left as it is." >&2
        exit 2
    fi
    DIL=dil_resnet50; BASE=resnet50
    COMMON=(--device cuda --amp bf16 --channels-last --frames 16 --size 224 --batch 16 --infer-batch 16
            --repeats 10 --warmup 2 --baseline "$BASE")
    COMPILE=(--compile --repeats 5)  # compilation dominates the step: 5 timed repeats are enough
    # Measured on the first loan (2026-12-04, H200): eager 59 s for 4 models, compiled
    # dil_resnet50 + resnet50 297 s (compilation: 44 + 83 s and 14 + 52 s, then the 16-clip inference shape),
    # the fused tail 18 s. The limits must add up to less than 9 minutes with the report after them
    # (115 + 55 + 300 + 22 + 30 = 522 s). A step that runs out of time ends with rc=124 and leaves the others' results.
    # The second loan (2026-12-04): 4 eager models in 72 s, 6 ran out of 115 s (now 5); the profile took 49 s.
    LIMITS=(115 55 300 22 30)
    PROFILE=(--device cuda --amp bf16 --channels-last --frames 16 --size 224 --batch 16 --steps 3 --warmup 2
             --models "$DIL,$DIL@paper,$BASE")
    GATE_TAP=(--device cuda --dtype bf16 --clips 16 --frames 16 --size 224 --repeats 10 --warmup 3 --inner 10)
    TAPS=(--device cuda --dtype bf16 --clips 16 --frames 16 --size 224 --repeats 10 --warmup 3 --inner 5)
    DOC=docs/performance.md
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
fi

STEPS=" ${STEPS:-eager profile compiled tail taps} "
want() { [[ "$STEPS" == *" $1 "* ]]; }

FAILED=()  # steps that did not exit 0: the script's own exit status is 1 if any
ran() {  # name, rc: print and record a step's outcome
    echo "$1: rc=$2 in $((SECONDS - start)) s"
    [ "$2" = 0 ] || FAILED+=("$1")
}

step() {  # name, time limit, efficiency.py arguments...
    local name="$1" limit="$2"; shift 2
    start=$SECONDS
    timeout "$limit" "$PY" benchmarks/efficiency.py "${COMMON[@]}" "$@" \
        --json "$OUT/$name.json" > "$OUT/$name.md" 2> "$OUT/$name.log"
    ran "$name" $?; cat "$OUT/$name.md"
}

# how the SIMs run on the GPU, same numbers (issue 24): the default runs the motion channels' Eq. 1 and Conv_U
# as Triton kernels (dynsnip.modules.depthwise_taps); "+cudnn_depthwise" runs them as PyTorch's convs (cuDNN's
# grouped kernels), as before 2026-12-04's second loan. (That loan measured Conv_U as a Conv3d and the
# Intra-SIMs' frame path no faster than the defaults then: 0.37x / 0.37x / 0.37x clip throughput.)
VARIANTS=(--variant "$DIL+cudnn_depthwise" "$DIL" '{"module_attrs": {"InterSIM": {"conv_u_op": "conv2d"}, "IntraSMA": {"triton_depthwise": false}}}')
want eager && step gpu_eager "${LIMITS[0]}" --models "$DIL,$DIL@paper,$BASE,tsm_$BASE" "${VARIANTS[@]}"

if want profile; then  # 2. where the eager GPU time goes
    start=$SECONDS
    timeout "${LIMITS[1]}" "$PY" benchmarks/gpu_profile.py "${PROFILE[@]}" \
        --json "$OUT/gpu_profile.json" > "$OUT/gpu_profile.md" 2> "$OUT/gpu_profile.log"
    ran gpu_profile $?; head -n 12 "$OUT/gpu_profile.md"
fi

if ! want compiled; then
    :
elif [ "${MODULE:-defaults}" = paper ]; then  # 3. compiled: the paper's module, or dynsnip's defaults
    step gpu_compiled_paper "${LIMITS[2]}" "${COMPILE[@]}" --models "$DIL@paper,$BASE"
else
    step gpu_compiled "${LIMITS[2]}" "${COMPILE[@]}" --models "$DIL,$BASE"
fi

if want tail; then  # 4. the fused Intra-SIM tail (exits 1 if the kernel disagrees with its reference)
    start=$SECONDS
    timeout "${LIMITS[3]}" "$PY" benchmarks/gate_tap.py "${GATE_TAP[@]}" --arch "$DIL" \
        --json "$OUT/gpu_gate_tap.json" > "$OUT/gpu_gate_tap.md" 2> "$OUT/gpu_gate_tap.log"
    ran gpu_gate_tap $?; cat "$OUT/gpu_gate_tap.md"
fi

if want taps; then  # 5. the SIMs' depthwise convs as Triton kernels (exits 1 if a kernel disagrees with F.conv3d)
    start=$SECONDS
    timeout "${LIMITS[4]}" "$PY" benchmarks/depthwise_taps.py "${TAPS[@]}" \
        --json "$OUT/gpu_depthwise_taps.json" > "$OUT/gpu_depthwise_taps.md" 2> "$OUT/gpu_depthwise_taps.log"
    ran gpu_depthwise_taps $?; cat "$OUT/gpu_depthwise_taps.md"
fi

"$PY" benchmarks/gpu_report.py --results "$OUT" --doc "$DOC" --dil "$DIL" --baseline "$BASE"
report=$?  # 1: nothing was measured, the doc is left as it was
[ "$DOC" = "$OUT/performance.md" ] || cp "$DOC" "$OUT/performance.md"
echo "total ${SECONDS} s"
if [ "${#FAILED[@]}" -gt 0 ] || [ "$report" != 0 ]; then
    echo "gpu.sh: failed or out of time: ${FAILED[*]:-none}; report rc=$report (see the steps' .log files in $OUT)" >&2
    exit 1
fi
