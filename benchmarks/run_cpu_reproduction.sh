#!/usr/bin/env bash
# The CPU-scale reproduction behind docs/results.md, in the order it was run (most informative runs
# first); each command resumes where it stopped, so the script can be re-run until all is finished.
# The AM-mixup ablation (54 runs, about 5 hours here) and the CIFAR-10 coarse-to-fine grid ran on a GPU
# with benchmarks/gpu_reproduction.sh; the same `ammix sweep` commands run them on a CPU too.
#   bash benchmarks/run_cpu_reproduction.sh > runs/reproduction.log 2>&1
set -u
cd "$(dirname "$0")/.."
lt=configs/sweeps/lt-cifar10-jpeg-cpu.yaml
ammix sweep $lt --runs-dir runs --seeds 0
ammix toy configs/toy-mini-cifar-cpu.yaml train.epochs=6 schedule.warmup_epochs=1 train.progress=off \
  --out runs/toy-mini-cifar-jpeg-cpu
ammix sweep $lt --runs-dir runs
ammix sweep configs/sweeps/c2f-fashion-mnist-cpu.yaml --runs-dir runs --set train.progress=off
for n in fashion-mnist cifar10-jpeg; do
  ammix sweep configs/sweeps/c2f-$n-cpu-scratch.yaml --runs-dir runs --set train.progress=off
done
