#!/usr/bin/env bash
# The converged CPU-scale evidence of docs/results.md, in the order it is run (what answers the most
# first), one run at a time on 2 cores. Each command resumes where it stopped (finished runs are
# skipped), so the script can be re-run until all is finished. Budgets, measured on the 2-core EPYC
# with bf16 (the float32 lines on a 2-core EPYC without it), are in each sweep or toy file: about 87 hours
# in all. Each line runs in the precision of the docs' numbers it makes: the configs spell bf16 autocast,
# and the lines whose docs runs were float32 say `train.amp=off` and write the docs' `-fp32` folders. On a
# CPU without native bf16 (no AVX-512 BF16 or AMX; a run warns) bf16 is 5-9x slower than float32, so there
# run the script with AMP=off (every sweep and toy in float32; the float32 twins of bf16 runs, the
# precision checks, left out) and expect 2.6-5x the bf16 budgets (docs/benchmarks.md); the bf16 numbers
# then differ from the committed ones by precision.
#   bash benchmarks/run_cpu_reproduction.sh > runs/reproduction.log 2>&1
#   AMP=off bash benchmarks/run_cpu_reproduction.sh > runs/reproduction.log 2>&1
set -u
cd "$(dirname "$0")/.."
# The lines whose docs numbers are float32 (into the docs' -fp32 folders), whatever AMP says.
as_in_docs_float32=(--set train.amp=off)
case "${AMP:-}" in
    "") float32=() ;;
    off) float32=(train.amp=off) ;;
    *) echo "run_cpu_reproduction.sh: AMP is off or unset, got '$AMP'" >&2; exit 2 ;;
esac
sweep() { ammix sweep "$@" ${float32[@]+--set "${float32[@]}"}; }
toy() { local spec=$1; shift; ammix toy "$spec" ${float32[@]+"${float32[@]}"} "$@"; }
S=configs/sweeps
sweep $S/lt-fashion-mnist-cpu.yaml --runs-dir runs                         # 75 min
# A float32 twin of bf16 runs (a precision check), or a refit of bf16 runs: with AMP=off, left out.
bf16_only() { [ "${AMP:-}" = off ] || "$@"; }
# ce-fp32 is ce's float32 twin; with AMP=off ce is float32 already.
precision_twin=ce-fp32; [ "${AMP:-}" = off ] && precision_twin=
sweep $S/lt-fashion-mnist-cpu.yaml --runs-dir runs --only $precision_twin ce-120ep am_mixup-120ep --seeds 0
# The ablation reuses the long-tailed table's runs (the same configs and seeds), copied into its folder.
mkdir -p runs/ablation-lt-fashion-mnist-cpu
for v in ce mixup manifold_mixup cutmix remix am_mixup ce-120ep; do
    [ -e runs/ablation-lt-fashion-mnist-cpu/$v ] || cp -r runs/lt-fashion-mnist-cpu/$v runs/ablation-lt-fashion-mnist-cpu/
done
sweep $S/ablation-lt-fashion-mnist-cpu.yaml --runs-dir runs --only ce mixup manifold_mixup cutmix remix am_mixup pairing-drop control-drop-lam1 clean-0.5 clean-1 lam-at-end-0.6 lam-at-end-0.75 soft-label drop-clean-0.5 ce-120ep drop-clean-0.5-120ep  # 110 min + 45 (length)
sweep $S/ablation-lt-fashion-mnist-cpu.yaml --runs-dir runs --only drop-clean-0.5 site-input site-hidden-2 "${as_in_docs_float32[@]}" --name ablation-lt-fashion-mnist-cpu-fp32  # 1.8 h
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only ce am_mixup   # 55 min
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only mixup manifold_mixup cutmix remix  # 110 min
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only ce-200ep am_mixup-200ep  # 80 min
sweep $S/c2f-fashion-mnist-cpu.yaml --runs-dir runs                        # 100 min + 45 (length)
sweep $S/c2f-fashion-mnist-cpu-scratch.yaml --runs-dir runs
# The probes refitted on bf16 pre-trainings, and on float32 ones (pre-trained again; docs/results.md).
bf16_only sweep $S/c2f-fashion-mnist-cpu.yaml --runs-dir runs --only ce am_mixup ce-pre60 am_mixup-pre60 --stages probe --name c2f-fashion-mnist-cpu-probe-bf16  # 50 min
bf16_only sweep $S/c2f-fashion-mnist-cpu.yaml --runs-dir runs --only ce mixup manifold_mixup cutmix remix am_mixup --stages probe "${as_in_docs_float32[@]}" --name c2f-fashion-mnist-cpu-fp32  # 3.5 h
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only mixup-200ep manifold_mixup-200ep cutmix-200ep remix-200ep  # 2.7 h
sweep $S/lt-cifar10-jpeg-cnn-cpu.yaml --runs-dir runs --only ce-400ep am_mixup-400ep  # 2.7 h
toy configs/toy-mini-cifar-cpu.yaml --methods ce am_mixup --out runs/toy-mini-cifar-jpeg-cpu  # 0.9 h (the length check's first step)
toy configs/toy-mini-cifar-cpu.yaml train.epochs=60 --methods ce am_mixup --out runs/toy-mini-cifar-jpeg-cpu-60ep  # 1.9 h
toy configs/toy-mini-cifar-cpu.yaml train.epochs=120 --methods ce am_mixup --settings long-tailed-if10 long-tailed-if100 coarse-to-fine --out runs/toy-mini-cifar-jpeg-cpu-120ep  # 2.6 h
toy configs/toy-mini-cifar-cpu.yaml train.epochs=120 train.amp=off --methods ce am_mixup --settings balanced --out runs/toy-mini-cifar-jpeg-cpu-120ep-fp32  # 4.0 h
sweep $S/ablation-balanced-fashion-mnist-cpu.yaml --runs-dir runs          # 2.3 h + 55 min (length)
sweep $S/c2f-cifar10-jpeg-cpu.yaml --runs-dir runs                         # 2 h + 1 h (length)
sweep $S/c2f-cifar10-jpeg-cpu-scratch.yaml --runs-dir runs --only probe finetune finetune-90ep
sweep $S/c2f-cifar10-jpeg-cpu-ft60.yaml --runs-dir runs --stages finetune   # 55 min
sweep $S/c2f-cifar10-jpeg-cpu-ft60.yaml --runs-dir runs --stages finetune --set finetune:train.epochs=120 --name c2f-cifar10-jpeg-cpu-ft120  # 100 min
sweep $S/c2f-fashion-mnist-cpu-lr0.1.yaml --runs-dir runs --stages finetune  # 90 min
sweep $S/lt-fashion-mnist-cpu-drw.yaml --runs-dir runs --only ce am_mixup ce-drw ldam-drw remix-drw am_mixup-drw  # 75 min
bf16_only sweep $S/lt-fashion-mnist-cpu-drw.yaml --runs-dir runs --only ce-drw --seeds 0 "${as_in_docs_float32[@]}" --name lt-fashion-mnist-cpu-drw-fp32  # 10 min
sweep $S/lt-fashion-mnist-cpu-drw.yaml --runs-dir runs --only ce-drw-120ep am_mixup-drw-120ep "${as_in_docs_float32[@]}" --name lt-fashion-mnist-cpu-drw-fp32  # 1.8 h (length)
sweep $S/c2f-cifar10-jpeg-cpu-ft60.yaml --runs-dir runs --stages finetune --set finetune:train.epochs=240 --name c2f-cifar10-jpeg-cpu-ft240  # 3.1 h with its pre-trainings
sweep $S/c2f-cifar10-jpeg-cpu-scratch.yaml --runs-dir runs --only finetune-270ep  # 1.6 h
sweep $S/c2f-cifar10-jpeg-cpu-scratch.yaml --runs-dir runs --only finetune-150ep "${as_in_docs_float32[@]}" --name c2f-cifar10-jpeg-cpu-scratch-fp32  # 2.0 h
bf16_only sweep $S/c2f-cifar10-jpeg-cpu-scratch.yaml --runs-dir runs --only finetune --seeds 0 "${as_in_docs_float32[@]}" --name c2f-cifar10-jpeg-cpu-scratch-fp32  # 17 min
sweep $S/lt-fashion-mnist-cpu-if10.yaml --runs-dir runs --only ce mixup manifold_mixup cutmix remix am_mixup "${as_in_docs_float32[@]}" --name lt-fashion-mnist-cpu-if10-fp32  # 4.5 h
sweep $S/lt-fashion-mnist-cpu-if10.yaml --runs-dir runs --only ce-120ep am_mixup-120ep "${as_in_docs_float32[@]}" --name lt-fashion-mnist-cpu-if10-fp32  # 2.7 h (length)
# The toy at its plateau (docs/results.md, the toy's length checks): CE and AM-mixup at 240 epochs, the
# other four augmentations at IF 100 too, and the checks at 480 epochs (hours: sums of wall_time_s).
T=configs/toy-mini-cifar-cpu.yaml
toy $T train.epochs=240 --methods ce am_mixup --settings long-tailed-if100 long-tailed-if10 balanced --out runs/toy-mini-cifar-jpeg-cpu-240ep  # 5.9 h
toy $T train.epochs=240 --methods ce mixup manifold_mixup cutmix remix am_mixup --settings long-tailed-if100 --out runs/toy-mini-cifar-jpeg-cpu-240ep  # 2.3 h (CE and AM-mixup reused: the six-method map)
toy $T train.epochs=480 --methods ce mixup manifold_mixup cutmix remix am_mixup --settings long-tailed-if100 --out runs/toy-mini-cifar-jpeg-cpu-480ep  # 6.3 h
toy $T train.epochs=480 --methods ce --settings long-tailed-if10 --out runs/toy-mini-cifar-jpeg-cpu-480ep  # 1.8 h
toy $T train.epochs=480 --methods am_mixup --settings balanced --out runs/toy-mini-cifar-jpeg-cpu-480ep  # 2.9 h
toy $T train.epochs=240 --methods am_mixup --settings coarse-to-fine --out runs/toy-mini-cifar-jpeg-cpu-240ep  # 1.7 h
# The hidden mixing site's length check at 120 epochs (float32, beside the feature site's).
sweep $S/ablation-lt-fashion-mnist-cpu.yaml --runs-dir runs --only site-hidden-2-120ep drop-clean-0.5-120ep "${as_in_docs_float32[@]}" --name ablation-lt-fashion-mnist-cpu-fp32  # 3.8 h (length)
# The Fashion-MNIST fine-tuning's length check (docs/results.md, its coarse-to-fine section): at 60
# epochs, on float32 pre-trainings, with their 30-epoch twins (configs/sweeps/c2f-fashion-mnist-cpu-lr0.1.yaml).
for s in 0 1 2; do
    sweep $S/c2f-fashion-mnist-cpu-lr0.1.yaml --runs-dir runs --only ce am_mixup --stages finetune --seeds $s "${as_in_docs_float32[@]}" finetune:train.epochs=60 --name c2f-fashion-mnist-cpu-lr0.1-ft60-fp32  # about 55 min a seed (seed 0 measured)
done
for s in 0 1 2; do
    for m in ce am_mixup; do
        mkdir -p runs/c2f-fashion-mnist-cpu-lr0.1-fp32/$m/seed$s
        [ -e runs/c2f-fashion-mnist-cpu-lr0.1-fp32/$m/seed$s/pretrain ] || cp -r runs/c2f-fashion-mnist-cpu-lr0.1-ft60-fp32/$m/seed$s/pretrain runs/c2f-fashion-mnist-cpu-lr0.1-fp32/$m/seed$s/
    done
    sweep $S/c2f-fashion-mnist-cpu-lr0.1.yaml --runs-dir runs --only ce am_mixup --stages finetune --seeds $s "${as_in_docs_float32[@]}" --name c2f-fashion-mnist-cpu-lr0.1-fp32  # about 17 min a seed (measured)
done
