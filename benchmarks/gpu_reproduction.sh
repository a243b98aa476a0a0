#!/usr/bin/env bash
# The CPU-scale grids that do not fit the 2-core machine, run with the same sweep files on one CUDA GPU
# (several runs at a time share it), from the repository root:
#   bash benchmarks/gpu_reproduction.sh DATA_ROOT OUT_DIR [SECONDS]
# DATA_ROOT holds cifar10-jpeg.tar.gz. Stops the sweeps after SECONDS (default 480; a sweep resumes
# where it stopped) and packs the small files of every run (config, metrics, summary, analysis, log;
# no checkpoints) into OUT_DIR/runs.tar.gz, the sweep logs into OUT_DIR/logs.tar.gz. Runs already under
# runs-gpu/ (finished ones need only their summary.json) are skipped.
# docs/results.md: two calls on one H200, `gpu_reproduction.sh gpudata OUT 440`, then with the first
# call's runs-gpu/ carried back (less its coarse-to-fine runs, made with an earlier ResNet-32 config)
# `... 250`; the reports were made from the unpacked runs. The ablation then ran as
# `sweep configs/sweeps/ablation-lt-cpu.yaml --seeds 0 1 2`: the same runs as the renamed file below.
set -u
root=${1:?usage: gpu_reproduction.sh DATA_ROOT OUT_DIR [SECONDS]}
out=${2:?usage: gpu_reproduction.sh DATA_ROOT OUT_DIR [SECONDS]}
budget=${3:-480}
mkdir -p "$out/logs"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
runs=runs-gpu
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/logs/gpu.txt"
# Decode the JPEG copy into the cache once, before parallel runs would race to do it.
python3 -c "import ammix.data as D; [D.load_dataset('cifar10-jpeg', '$root', train=t) for t in (True, False)]"
sweep() { timeout "$budget" python3 -m ammix sweep "$@" --runs-dir $runs --set data.root=$root train.progress=off; }
sweep configs/sweeps/ablation-lt-cifar10-jpeg.yaml --jobs 5 > "$out/logs/ablation.log" 2>&1 &
sweep configs/sweeps/c2f-cifar10-jpeg-cpu.yaml --jobs 6 > "$out/logs/c2f-cifar10-jpeg.log" 2>&1 &
sweep configs/sweeps/lt-cifar10-jpeg-cpu.yaml --only ce am_mixup --jobs 1 > "$out/logs/lt.log" 2>&1 &
wait
sleep 5  # runs still finishing after their sweep was stopped write their last files
find $runs \( -name '*.json' -o -name '*.jsonl' -o -name 'config.yaml' -o -name train.log \) -print0 \
  | tar czf "$out/runs.tar.gz" --null -T -
tar czf "$out/logs.tar.gz" -C "$out" logs
