#!/usr/bin/env bash
# The CPU-scale reproduction behind docs/results.md, in the order it was run (most informative runs
# first); each command resumes where it stopped, so the script can be re-run until all is finished.
#   bash benchmarks/run_cpu_reproduction.sh > runs/reproduction.log 2>&1
set -u
cd "$(dirname "$0")/.."
lt=configs/sweeps/lt-cifar10-jpeg-cpu.yaml
ablation=configs/sweeps/ablation-lt-cpu.yaml
ammix sweep $lt --runs-dir runs --seeds 0
ammix sweep $ablation --runs-dir runs --only control-drop-lam1 clean-1 --seeds 0
ammix toy configs/toy-mini-cifar-cpu.yaml train.epochs=6 schedule.warmup_epochs=1 train.progress=off \
  --out runs/toy-mini-cifar-jpeg-cpu
ammix sweep $lt --runs-dir runs
ammix sweep $ablation --runs-dir runs --only control-drop-lam1 clean-1
ammix sweep $ablation --runs-dir runs
