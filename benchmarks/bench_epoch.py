"""One ResNet-32 training epoch on long-tailed CIFAR-10 (JPEG re-encode, IF 100) end to end, through
the engine, with the on-device loader and with torchvision's DataLoader (per-image transforms).

Each path trains one epoch of ``configs/lt-cifar10-cpu.yaml`` (AM-mixup, channels_last, no checkpoint
kept) into a temporary run folder; the time is the engine's own ``epoch_time`` (the training pass,
data loading included, evaluation excluded). Paths alternate over ``--rounds``; the median is kept.

    python benchmarks/bench_epoch.py --out benchmarks/results/epoch_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from ammix.engine import load_config, read_metrics, train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lt-cifar10-cpu.yaml"
PATHS = {"device": {"data.loader": "device"},
         "reference_0_workers": {"data.loader": "reference", "data.num_workers": 0},
         "reference_2_workers": {"data.loader": "reference", "data.num_workers": 2}}


def epoch_seconds(overrides: dict, data_root: str, device: str) -> float:
    """The engine's ``epoch_time`` of a one-epoch run with ``overrides``."""
    cfg = load_config(CONFIG, [f"{k}={v}" for k, v in {
        **overrides, "data.root": data_root, "train.device": device, "train.epochs": 1,
        "schedule.warmup_epochs": 0, "train.progress": "off"}.items()])
    with tempfile.TemporaryDirectory() as run_dir:
        train(cfg, run_dir)
        return read_metrics(Path(run_dir))[0]["epoch_time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("AMMIX_DATA", "../shared/data"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    times = {name: [] for name in PATHS}
    for _ in range(args.rounds):
        for name, overrides in PATHS.items():
            times[name].append(epoch_seconds(overrides, args.data_root, args.device))
            print(f"{name}: {times[name][-1]:.1f} s", flush=True)
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "benchmark": "training_epoch",
        "command": "python " + " ".join(sys.argv),
        "config": "configs/lt-cifar10-cpu.yaml (cifar10-jpeg-lt, IF 100, 12406 images, resnet32, am_mixup)",
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_1min": os.getloadavg()[0],
        "epoch_seconds": times,
        "median_epoch_seconds": median,
        "speedup_of_device_loader": {name: median[name] / median["device"] for name in PATHS},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
