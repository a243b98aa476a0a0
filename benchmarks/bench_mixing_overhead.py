"""Training-step time of each mixing method relative to plain cross-entropy, measured in one process.

A step is forward (with the mixer at its site), soft cross-entropy, backward and an SGD update of
ResNet-32 on a CIFAR-shaped batch. Methods are timed in interleaved rounds, their order rotated
every round, so that drifts of the machine hit all of them alike; the reported ratio is the median
step time of a method over the median step time of `ce`.

    python benchmarks/bench_mixing_overhead.py --device cpu --out benchmarks/results/mixing_overhead_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from ammix.engine import train_step
from ammix.mixing import MIXERS, build_mixer
from ammix.models import build_model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(model, optimizer, mixer, x, y, steps: int, device: torch.device, bf16: bool | None = None
               ) -> list[float]:
    """Seconds per training step (the engine's `train_step`), `steps` times; bf16 autocast when `bf16`
    (default: on CUDA only)."""
    bf16 = device.type == "cuda" if bf16 is None else bf16
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    times = []
    for i in range(steps):
        synchronize(device)
        start = time.perf_counter()
        train_step(model, mixer, optimizer, x, y, epoch=5.0 + i / steps, num_classes=10, amp_ctx=amp)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model("resnet32", 10).to(device, memory_format=torch.channels_last)  # as the engine
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # CIFAR-10-LT IF 100
    options = {"am_mixup": {"gamma": 0.95}}  # its schedule needs gamma or the run's length
    mixers = {
        name: build_mixer(name, 10, class_counts=counts, generator=torch.Generator().manual_seed(0),
                          **options.get(name, {}))
        for name in MIXERS
    }
    for mixer in mixers.values():  # warm-up
        time_steps(model, optimizer, mixer, x, y, 3, device)
    times = {name: [] for name in mixers}
    names = list(mixers)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate: no method always first
            times[name] += time_steps(model, optimizer, mixers[name], x, y, args.steps, device)
    base = statistics.median(times["ce"])
    result = {
        "benchmark": "mixing_overhead",
        "command": "python benchmarks/bench_mixing_overhead.py "
        f"--device {args.device} --batch-size {args.batch_size} --steps {args.steps} --rounds {args.rounds}",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": "resnet32",
        "batch_size": args.batch_size,
        "memory_format": "channels_last",
        "bf16_autocast": device.type == "cuda",
        "mixer_settings": {name: mixer.settings() for name, mixer in mixers.items()},
        "median_step_seconds": {name: statistics.median(t) for name, t in times.items()},
        "ratio_to_ce": {name: statistics.median(t) / base for name, t in times.items()},
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
