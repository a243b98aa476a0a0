#!/usr/bin/env bash
# The long-tailed table at paper length on one H100/H200, inside one 10-minute call, from the
# repository root:
#   bash benchmarks/gpu_paper_scale.sh DATA_ROOT OUT_DIR [100|50|10]
# DATA_ROOT holds cifar10-jpeg.tar.gz (CIFAR-10, JPEG re-encode; e.g. `mkdir -p data && cp
# ../shared/data/cifar10-jpeg.tar.gz data/`, carried with the call as `data`, an ignored folder).
# Runs configs/sweeps/lt-cifar10.yaml on the JPEG copy at imbalance factor 100 (default), 50 or 10:
# ce, mixup, manifold_mixup, cutmix, remix, am_mixup x seeds 0, 1, 2 = 18 runs of ResNet-32, 200
# epochs, the LDAM-DRW schedule, batch 128, bf16, channels_last, captured steps (train.cuda_graph
# auto, every method; the sweep reruns a run whose capture fails with eager steps), evaluation every
# 10 epochs; all 18 runs at once on GPU 0 (`ammix sweep --gpus 0,0,...`).
# Nothing is installed: torch and the project's dependencies are on the machine, the project runs from
# src/ (PYTHONPATH).
#
# Timing budget (what must hold to finish in one call of at most 600 s):
#   start-up (nvidia-smi, JPEG decoding into the cache, 18 Python processes) ~60 s; packing ~10 s;
#   so the sweep gets TRAIN_S = 520 s from the script's start, minus what start-up took (~460 s).
#   IF 100: 12,406 images, 97 steps an epoch, 19,400 a run, 349,200 for the 18 runs:
#           fits if the GPU completes a step every <= 1.3 ms on aggregate (18 runs each at <= 24 ms).
#   IF 50:  13,996 images, 110 steps an epoch, 22,000 a run, 396,000 in all: <= 1.15 ms a step.
#   IF 10:  20,431 images, 160 steps an epoch, 32,000 a run, 576,000 in all: <= 0.8 ms a step.
#   Evaluation adds ~3% (20 passes over 10,000 test images, forward only); each finished run's
#   collapse metrics (analysis.json, test features on the CPU, ~30 s) are computed by the sweep as it
#   finishes, and one cut off by the limit is made at the sweep's next start. The floor of a step is
#   ~0.2-0.45 ms (docs/benchmarks.md), so the budget asks for 3-6x the floor; measure the captured
#   step first (gpu_check.sh writes step_cuda.json): all 18 runs 200 epochs fit only if it shows a
#   graphed step of about 1 ms or less; otherwise give SEEDS=0 (6 runs, a third of the steps). A sweep
#   nearing the limit is stopped (SIGTERM to every run): each run keeps its last.pt of the last
#   finished epoch (checkpoint every epoch) and is resumed by the same command on the same machine
#   (runs-paper/ is ignored by git, so it stays there while the machine is held; the packed files hold
#   no checkpoints); finished runs are packed either way.
# In a 15-minute lease it follows gpu_check.sh as the lease's one long call: with less than 10
# minutes of device time left, give TRAIN_S = what is left - 3 minutes, or the call is cut before it
# packs. From the environment: TRAIN_S (default 520), SEEDS (default "0 1 2"), SWEEP (another sweep
# file of six variants), EXTRA (more KEY=VALUE overrides of every run), PYTHON (default python3).
# Output, five files (a lease returns at most 8): OUT_DIR/paper-scale-ifF.tar.gz (config, metrics,
# summary, analysis, train.log of every run; no checkpoints; at most 16 MiB), and progress.txt, gpu.txt,
# sweep.log and report.log, written into OUT_DIR as the call goes (a call cut at its limit still returns
# them). Exit status 0 when every run finished, 1 otherwise, 2 for bad arguments or missing data.
set -u
usage="usage: gpu_paper_scale.sh DATA_ROOT OUT_DIR [100|50|10]"
root=${1:?$usage}
out=${2:?$usage}
factor=${3:-100}
case $factor in 100 | 50 | 10) ;; *) echo "$usage" >&2; exit 2 ;; esac
train_s=${TRAIN_S:-520}
read -r -a seeds <<< "${SEEDS:-0 1 2}"
read -r -a extra <<< "${EXTRA:-}"
sweep=${SWEEP:-configs/sweeps/lt-cifar10.yaml}
python=${PYTHON:-python3}
n_runs=$((6 * ${#seeds[@]}))
started=$SECONDS
source "$(dirname "$0")/gpu_common.sh"
mkdir -p "$out"
need_cifar10_jpeg "$root"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
runs=runs-paper
name=lt-cifar10-jpeg-if$factor
record_gpu "$out"
decode_cifar10_jpeg "$python" "$root"
left=$((train_s - (SECONDS - started)))
echo "start-up took $((SECONDS - started)) s; the sweep gets $left s" | tee "$out/progress.txt"
gpus=0$(printf ',0%.0s' $(seq $((n_runs - 1))))
timeout "$left" "$python" -m ammix sweep "$sweep" --gpus "$gpus" --runs-dir $runs --name "$name" \
  --seeds "${seeds[@]}" --set data.dataset=cifar10-jpeg-lt data.root="$root" data.imbalance_factor="$factor" \
  train.eval_every=10 train.progress=off ${extra[@]+"${extra[@]}"} > "$out/sweep.log" 2>&1
echo "sweep exit $? after $((SECONDS - started)) s (124: stopped at the time limit, runs resumable)" \
  | tee -a "$out/progress.txt"
sleep 3  # runs stopped with the sweep write their last files
finished=$(find "$runs/$name" -name summary.json | xargs -r grep -l '"finished": true' | wc -l)
echo "$finished of $n_runs runs finished" | tee -a "$out/progress.txt"
timeout 30 "$python" -m ammix report "$runs/$name" > "$out/report.log" 2>&1 \
  || echo "report failed or cut at 30 s (report.log); the runs are packed either way" \
  | tee -a "$out/progress.txt"
find "$runs/$name" \( -name '*.json' -o -name '*.jsonl' -o -name 'config.yaml' -o -name train.log \
  -o -name '*.md' -o -name '*.csv' \) -print0 | tar czf "$out/paper-scale-if$factor.tar.gz" --null -T -
du -h "$out"/*.tar.gz
[ "$finished" -eq "$n_runs" ]
