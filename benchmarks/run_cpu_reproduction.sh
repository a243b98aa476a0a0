#!/usr/bin/env bash
# The converged CPU-scale evidence of docs/results.md, in the order it is run (what answers the most
# first), one run at a time on 2 cores. Each command resumes where it stopped (finished runs are
# skipped), so the script can be re-run until all is finished. Budgets, measured on the 2-core EPYC
# with bf16, are in each sweep or toy file: about 67 hours in all. The configs spell bf16 autocast: on a CPU
# without native bf16 (no AVX-512 BF16 or AMX; a run warns) it is 5-9x slower than float32, so there
# run the script with AMP=off (every sweep and toy in float32) and expect 2.6-5x the budgets
# (docs/benchmarks.md); the numbers then differ from the committed bf16 ones by precision.
#   bash benchmarks/run_cpu_reproduction.sh > runs/reproduction.log 2>&1
#   AMP=off bash benchmarks/run_cpu_reproduction.sh > runs/reproduction.log 2>&1
set -u
cd "$(dirname "$0")/.."
case "${AMP:-}" in
    "") float32=() ;;
    off) float32=(train.amp=off) ;;
    *) echo "run_cpu_reproduction.sh: AMP is off or unset, got '$AMP'" >&2; exit 2 ;;
esac
sweep() { ammix sweep "$@" ${float32[@]+--set "${float32[@]}"}; }
toy() { local spec=$1; shift; ammix toy "$spec" ${float32[@]+"${float32[@]}"} "$@"; }
S=configs/sweeps
sweep $S/lt-fashion-mnist-cpu.yaml --runs-dir runs                         # 75 min
# ce-fp32 is ce's float32 twin (the precision check); with AMP=off ce is float32 already.
precision_twin=ce-fp32; [ "${AMP:-}" = off ] && precision_twin=
sweep $S/lt-fashion-mnist-cpu.yaml --runs-dir runs --only $precision_twin ce-120ep am_mixup-120ep --seeds 0
# The ablation reuses the long-tailed table's runs (the same configs and seeds), copied into its folder.
mkdir -p runs/ablation-lt-fashion-mnist-cpu
for v in ce mixup manifold_mixup cutmix remix am_mixup ce-120ep; do
    [ -e runs/ablation-lt-fashion-mnist-cpu/$v ] || cp -r runs/lt-fashion-mnist-cpu/$v runs/ablation-lt-fashion-mnist-cpu/
done
sweep $S/ablation-lt-fashion-mnist-cpu.yaml --runs-dir runs                # 110 min + 45 (length) + 27 (site)
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only ce am_mixup   # 55 min
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only mixup manifold_mixup cutmix remix  # 110 min
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only ce-200ep am_mixup-200ep  # 80 min
sweep $S/c2f-fashion-mnist-cpu.yaml --runs-dir runs                        # 100 min + 45 (length)
sweep $S/c2f-fashion-mnist-cpu-scratch.yaml --runs-dir runs
# The probes refitted on bf16 pre-trainings (docs/results.md); with AMP=off there are none.
[ "${AMP:-}" = off ] || sweep $S/c2f-fashion-mnist-cpu.yaml --runs-dir runs --only ce am_mixup ce-pre60 am_mixup-pre60 --stages probe --name c2f-fashion-mnist-cpu-probe-bf16  # 50 min
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only mixup-200ep manifold_mixup-200ep cutmix-200ep remix-200ep  # 2.7 h
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only ce-400ep am_mixup-400ep  # 2.7 h
toy configs/toy-mini-cifar-cpu.yaml --out runs/toy-mini-cifar-jpeg-cpu     # 3.0 h
toy configs/toy-mini-cifar-cpu.yaml train.epochs=60 --methods ce am_mixup --out runs/toy-mini-cifar-jpeg-cpu-60ep  # 1.9 h
toy configs/toy-mini-cifar-cpu.yaml train.epochs=120 --methods ce am_mixup --out runs/toy-mini-cifar-jpeg-cpu-120ep  # 3.7 h
sweep $S/ablation-balanced-fashion-mnist-cpu.yaml --runs-dir runs          # 2.3 h + 55 min (length)
sweep $S/c2f-cifar10-jpeg-cpu.yaml --runs-dir runs                         # 2 h + 1 h (length)
sweep $S/c2f-cifar10-jpeg-cpu-scratch.yaml --runs-dir runs
sweep $S/c2f-cifar10-jpeg-cpu-ft60.yaml --runs-dir runs --stages finetune   # 55 min
sweep $S/c2f-cifar10-jpeg-cpu-ft60.yaml --runs-dir runs --stages finetune --set finetune:train.epochs=120 --name c2f-cifar10-jpeg-cpu-ft120  # 100 min
sweep $S/c2f-fashion-mnist-cpu-lr0.1.yaml --runs-dir runs --stages finetune  # 90 min
sweep $S/lt-fashion-mnist-cpu-drw.yaml --runs-dir runs                     # 75 min + 50 min (length)
sweep $S/c2f-cifar10-jpeg-cpu-ft60.yaml --runs-dir runs --stages finetune --set finetune:train.epochs=240 --name c2f-cifar10-jpeg-cpu-ft240  # 3.1 h with its pre-trainings
sweep $S/c2f-cifar10-jpeg-cpu-scratch.yaml --runs-dir runs --only finetune-150ep finetune-270ep  # 2.4 h
sweep $S/lt-fashion-mnist-cpu-if10.yaml --runs-dir runs                    # 1.8 h + 75 min (length)
# The toy at its plateau (docs/results.md, the toy's length checks): CE and AM-mixup at 240 epochs, the
# other four augmentations at IF 100 too, and the checks at 480 epochs (hours: sums of wall_time_s).
T=configs/toy-mini-cifar-cpu.yaml
toy $T train.epochs=240 --methods ce am_mixup --settings long-tailed-if100 long-tailed-if10 balanced --out runs/toy-mini-cifar-jpeg-cpu-240ep  # 5.9 h
toy $T train.epochs=240 --methods ce mixup manifold_mixup cutmix remix am_mixup --settings long-tailed-if100 --out runs/toy-mini-cifar-jpeg-cpu-240ep  # 2.3 h (CE and AM-mixup reused: the six-method map)
toy $T train.epochs=480 --methods ce mixup manifold_mixup cutmix remix am_mixup --settings long-tailed-if100 --out runs/toy-mini-cifar-jpeg-cpu-480ep  # 6.3 h
toy $T train.epochs=480 --methods ce --settings long-tailed-if10 --out runs/toy-mini-cifar-jpeg-cpu-480ep  # 1.8 h
# AM-mixup's own checks where 120 or 240 epochs left it at the line (running; docs/results.md, "Not yet measured").
toy $T train.epochs=480 --methods am_mixup --settings balanced --out runs/toy-mini-cifar-jpeg-cpu-480ep  # about 2.7 h (estimated, not yet measured)
toy $T train.epochs=240 --methods am_mixup --settings coarse-to-fine --out runs/toy-mini-cifar-jpeg-cpu-240ep  # about 1.5 h (estimated, not yet measured)
