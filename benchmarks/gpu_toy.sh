#!/usr/bin/env bash
# The toy's length check where the 2-core CPU cannot afford it (docs/results.md: its runs with a 2-D
# feature still gain about 3 points a doubling at 120 epochs): CE and AM-mixup on Mini-CIFAR
# (configs/toy-mini-cifar-cpu.yaml: CIFAR-10 JPEG re-encode, 4 settings, 3 seeds) at EPOCHS epochs on
# one CUDA GPU, from the repository root:
#   bash benchmarks/gpu_toy.sh DATA_ROOT OUT_DIR [EPOCHS] [SECONDS]
# DATA_ROOT holds cifar10-jpeg.tar.gz (`mkdir -p data && cp ../shared/data/cifar10-jpeg.tar.gz data/`,
# carried with the call as `data`). Every (setting, method, seed) trains at once on GPU 0, one
# `ammix toy` process each (4 x 2 x 3 = 24), for at most SECONDS (default 420, so that decoding the
# data before and the table after fit one 10-minute call); when all have finished, one more call
# reuses them for the table (toy.md, toy.json) and the maps. A run whose CUDA graph capture fails
# runs again at once with eager steps, in what is left of SECONDS (progress.txt says so). A run cut
# off by the limit keeps its last.pt (every 10 epochs) and resumes when the command runs again on the
# same machine (runs-gpu-toy/ is ignored by git, so it stays there between calls while the machine is
# held; the packed files hold no checkpoints). Nothing is installed; the project runs from src/
# (PYTHONPATH).
# In a 15-minute lease it follows gpu_check.sh as the lease's one long call: with less than 10
# minutes of device time left, give SECONDS = what is left - 3 minutes, or the call is cut before
# the table and the packing.
# Budget (not yet measured on a GPU): 156 steps an epoch balanced or coarse, 49 at IF 100, 69 at
# IF 10 (batch 128), so 430 x EPOCHS steps a (method, seed) and 2,580 x EPOCHS for the 24 runs:
# 619,000 at 240 epochs, which fit 400 s of training if the GPU completes a step every 0.65 ms on
# aggregate (each of the 12 balanced and coarse runs, the longest, 37,440 steps at <= 10.7 ms).
# Evaluation every 5 epochs (4,000 test images, forward only).
# Output, five files (a lease returns at most 8): OUT_DIR/toy-gpu-<EPOCHS>ep.tar.gz (toy.md, toy.json,
# the maps, each run's config, metrics, summary, analysis and log; no checkpoints), OUT_DIR/logs.tar.gz
# (one log a run), and progress.txt, gpu.txt and table.log, written into OUT_DIR as the call goes (a
# call cut at its limit still returns them). Exit status 0 when every run finished and the table was
# made, 1 otherwise, 2 for missing data. From the environment: SPEC
# (another toy file), METHODS (default "ce am_mixup"), EXTRA (more key=value overrides of every run),
# PYTHON (default python3).
set -u
usage="usage: gpu_toy.sh DATA_ROOT OUT_DIR [EPOCHS] [SECONDS]"
root=${1:?$usage}
out=${2:?$usage}
epochs=${3:-240}
budget=${4:-420}
spec=${SPEC:-configs/toy-mini-cifar-cpu.yaml}
python=${PYTHON:-python3}
read -r -a methods <<< "${METHODS:-ce am_mixup}"
read -r -a extra <<< "${EXTRA:-}"
source "$(dirname "$0")/gpu_common.sh"
mkdir -p "$out"
uses_jpeg=$(grep -c "cifar10-jpeg" "$spec")
[ "$uses_jpeg" -eq 0 ] || need_cifar10_jpeg "$root"
logs=$(mktemp -d)  # 24 run logs: packed, not left in OUT_DIR (a lease returns at most 8 files)
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
runs=runs-gpu-toy/toy-gpu-${epochs}ep
overrides=(train.epochs="$epochs" data.root="$root" train.eval_every=5 train.checkpoint_every=10
           train.progress=off ${extra[@]+"${extra[@]}"})
toy=("$python" -m ammix toy "$spec" "${overrides[@]}" --out "$runs")
record_gpu "$out"
[ "$uses_jpeg" -eq 0 ] || decode_cifar10_jpeg "$python" "$root"
# One "setting method seed" line a run, in the toy file's order.
mapfile -t planned < <("$python" -c "import yaml, itertools; spec = yaml.safe_load(open('$spec'))
for s, m, seed in itertools.product(spec['settings'], '${methods[*]}'.split(), spec.get('seeds') or [0]):
    print(s, m, seed)")
echo "${#planned[@]} runs start, each stopped after $budget s" | tee "$out/progress.txt"
started=$SECONDS
# One run within the budget; after a failed CUDA graph capture (exit 3, ammix's CAPTURE_FAILED_EXIT)
# the same run with eager steps, in what is left of it.
train_one() {
  local log=$1; shift
  timeout "$budget" "${toy[@]}" "$@" > "$log" 2>&1
  [ $? -eq 3 ] || return
  local left=$((budget - (SECONDS - started)))
  [ "$left" -gt 0 ] || return
  echo "the capture failed: again with train.cuda_graph=off ($left s left)" | tee -a "$log" "$out/progress.txt"
  timeout "$left" "${toy[@]}" train.cuda_graph=off "$@" >> "$log" 2>&1
}
for run in "${planned[@]}"; do
  read -r setting method seed <<< "$run"
  train_one "$logs/$setting-$method-seed$seed.log" --settings "$setting" --methods "$method" --seeds "$seed" &
done
wait
finished=0
for run in "${planned[@]}"; do
  read -r setting method seed <<< "$run"
  grep -qs '"finished": true' "$runs/$setting/$method/seed$seed/summary.json" && finished=$((finished + 1))
done
echo "$finished of ${#planned[@]} runs finished after $((SECONDS - started)) s" | tee -a "$out/progress.txt"
if [ "$finished" -eq "${#planned[@]}" ]; then
  # The seeds spelt, as the runs had them (seed<S> folders, also for a toy file without seeds).
  read -r -a seeds <<< "$(printf '%s\n' "${planned[@]}" | awk '{print $3}' | sort -un | xargs)"
  timeout 120 "${toy[@]}" --methods "${methods[@]}" --seeds "${seeds[@]}" > "$out/table.log" 2>&1
  table=$?
  [ "$table" -eq 0 ] || echo "the table call failed or was cut at 120 s: table.log" | tee -a "$out/progress.txt"
else
  echo "run the same command again on this machine to resume" | tee -a "$out/progress.txt"
fi
find "$runs" \( -name '*.json' -o -name '*.jsonl' -o -name config.yaml -o -name train.log \
  -o -name '*.md' -o -name '*.png' -o -name '*.pdf' \) -print0 \
  | tar czf "$out/toy-gpu-${epochs}ep.tar.gz" --null -T -
tar czf "$out/logs.tar.gz" -C "$logs" .
du -h "$out"/*.tar.gz
[ "$finished" -eq "${#planned[@]}" ] && [ "${table:-1}" -eq 0 ]
