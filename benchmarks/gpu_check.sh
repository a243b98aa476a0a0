#!/usr/bin/env bash
# GPU checks, run on a machine with one CUDA GPU from the repository root:
#   bash benchmarks/gpu_check.sh OUT_DIR
# The CUDA tests of the mixers and of the captured step (graph replay vs eager, every method),
# training with bf16 / fp16 autocast and channels_last (bf16: the captured step, fp16: eager), the
# captured step with LDAM and balanced softmax (their margins and prior on the device), a
# one-process NCCL run under torchrun, and the mixing-overhead, captured-step and loader benchmarks.
# Every step's whole output goes to OUT_DIR/gpu_check.log as it runs (a call cut at its limit still
# returns it), its last lines and its time to stdout; a step is stopped after STEP_S seconds (default
# 240: a hung NCCL run must not take the whole call).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
runs=$(mktemp -d)
log=$out/gpu_check.log
step_s=${STEP_S:-240}
step() {
  local started=$SECONDS
  echo "== $*" | tee -a "$log"
  timeout "$step_s" "$@" 2>&1 | tee -a "$log" | tail -n 6
  echo "-> exit ${PIPESTATUS[0]} after $((SECONDS - started)) s (124: stopped at $step_s s)" | tee -a "$log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
step python3 -m pytest -q -p no:cacheprovider tests/test_mixing.py tests/test_models.py -k "cuda or resnet"
step python3 -m pytest -q -p no:cacheprovider tests/test_graphed_step.py
for amp in bf16 fp16; do
  step python3 -m ammix train configs/smoke.yaml train.device=cuda train.amp=$amp --run-dir "$runs/$amp"
  cp "$runs/$amp/summary.json" "$out/smoke_$amp.json"
done
for loss in "ldam model.head=cosine optim.lr=0.01" balanced_softmax; do  # constant tensors in the graph
  step python3 -m ammix train configs/smoke.yaml train.device=cuda train.cuda_graph=on loss.name=$loss \
    --run-dir "$runs/${loss%% *}"
done
step python3 -m torch.distributed.run --nproc_per_node=1 -m ammix train configs/smoke.yaml \
  train.device=cuda --run-dir "$runs/nccl"
step python3 benchmarks/bench_mixing_overhead.py --device cuda --steps 20 --rounds 5 \
  --out "$out/mixing_overhead_cuda.json"
step python3 benchmarks/bench_step_cuda.py --out "$out/step_cuda.json"
step python3 benchmarks/bench_loader.py --device cuda --num-workers 0 4 --out "$out/loader_cuda.json"
echo "gpu_check.sh took $SECONDS s"
