#!/usr/bin/env bash
# The GPU suite (issue 12), one script for one H100-class GPU, a few minutes:
#   1. loss_speed.py       MR2Loss vs cross-entropy + head vs the authors' loop, on CUDA
#                          (validate=False and True), with peak memory
#   2. engine_speed.py     mr2's engine vs a minimal hand-written loop, MLP and CNN, CUDA;
#                          again for the CNN with train.channels_last and train.compile
#   3. precision_check.py  ResNet-32 + MR² in float16 (grad scaler), bfloat16 and float32
#   4. compile_check.py    torch.compile(MR2Loss) against eager: values, gradients, time
#   5. capture_check.py    MR2Loss + head vs CE + head eager, compiled (reduce-overhead) and
#                          captured in a CUDA graph, at loss_speed's four shapes: times,
#                          agreement with eager, no host sync (issue 22's targets)
#   6. op_count.py         ATen operations per step of every loss (device-independent)
# Results (JSON with machine, versions and commit, and the tables in gpu_suite.md) go to
# RESULTS (default benchmarks/results). --tiny: the same steps on the CPU at tiny sizes in a
# scratch RESULTS folder (the test suite runs it).
# Environment: PYTHON (default .venv/bin/python, else python3), CIFAR_NPZ, MR2_DATA.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
CIFAR_NPZ="${CIFAR_NPZ:-../shared/data/cifar10_jpeg/cifar10_jpeg_test.npz}"
if [ "${1:-}" = "--tiny" ]; then
  RESULTS="${RESULTS:?--tiny writes under RESULTS: set it (a scratch folder)}"
  dev=cpu
  export OMP_NUM_THREADS=1  # the steps run at once: one thread each
  loss=(--shapes 128,10,256 --repeats 3)
  engine=(--models mlp --losses ce mr2 --epochs 2 --rounds 1 --subset 600)
  layout=(--models cnn --losses ce --epochs 2 --rounds 1 --subset 256 --set train.channels_last=true)
  precision=(--epochs 1 --subset 300 --precisions float32 bfloat16)
  compile=(--steps 6 --backend aot_eager)
  capture=(--shapes 32,10,16 --repeats 3 --backend aot_eager)
else
  RESULTS="${RESULTS:-benchmarks/results}"
  dev=cuda
  loss=(--repeats 30)
  engine=(--models mlp cnn --losses ce mr2 --epochs 3 --rounds 2)
  layout=(--models cnn --losses ce mr2 --epochs 3 --rounds 1
    --set train.channels_last=true train.compile=true)
  precision=(--epochs 5)
  compile=(--steps 40)
  capture=(--repeats 30)
fi
mkdir -p "$RESULTS"
md="$RESULTS/gpu_suite.md"
echo "# GPU suite ($dev), $(date -u +%Y-%m-%dT%H:%MZ)" >"$md"
failed=() names=() pids=()
step() {  # step NAME SCRIPT ARGS...: one benchmark, its table into RESULTS/NAME.section;
  # one after another on the GPU (timings), all at once in the tiny mode (a test)
  local name=$1
  shift
  names+=("$name")
  (
    t0=$(date +%s)
    if "$PY" "$@" >"$RESULTS/$name.out" 2>"$RESULTS/$name.err"; then status=0; else status=1; fi
    {
      echo "## $name"
      if [ $status = 0 ]; then cat "$RESULTS/$name.out"; else echo "FAILED:"; tail -20 "$RESULTS/$name.err"; fi
      echo "($(( $(date +%s) - t0 )) s)"
    } >"$RESULTS/$name.section"
    echo "$name: $(( $(date +%s) - t0 )) s$([ $status = 0 ] || echo ' (FAILED)')"
    exit $status
  ) &
  pids+=($!)
  [ "$dev" = cpu ] || wait_step $(( ${#pids[@]} - 1 ))
}
wait_step() {  # wait_step I: the I-th step's end; its section into gpu_suite.md
  wait "${pids[$1]}" || failed+=("${names[$1]}")
  cat "$RESULTS/${names[$1]}.section" >>"$md"
}
step loss_speed benchmarks/loss_speed.py --device $dev "${loss[@]}" \
  --out "$RESULTS/loss_speed_$dev.json"
step engine_speed benchmarks/engine_speed.py --device $dev "${engine[@]}" \
  --out "$RESULTS/engine_speed_$dev.json"
step engine_layout benchmarks/engine_speed.py --device $dev "${layout[@]}" \
  --out "$RESULTS/engine_layout_$dev.json"
step precision benchmarks/precision_check.py --device $dev --data "$CIFAR_NPZ" \
  "${precision[@]}" --out "$RESULTS/precision_$dev.json"
step compile benchmarks/compile_check.py --device $dev "${compile[@]}" \
  --out "$RESULTS/compile_$dev.json"
step capture benchmarks/capture_check.py --device $dev "${capture[@]}" \
  --out "$RESULTS/capture_$dev.json"
step op_count benchmarks/op_count.py --out "$RESULTS/op_count_cpu.md"
if [ "$dev" = cpu ]; then
  for i in "${!pids[@]}"; do wait_step "$i"; done
fi
rm -f "$RESULTS"/*.out "$RESULTS"/*.section
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]} (see $md)"; exit 1; }
