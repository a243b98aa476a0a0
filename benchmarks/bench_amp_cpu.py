"""Training-step time with bf16 autocast relative to float32, on the CPU, measured in one process.

For each model (ResNet-32 on a CIFAR-shaped batch, the small CNN with a 128-d feature on a
Fashion-MNIST-shaped batch), a step is the engine's `train_step` (forward with the mixer at its site,
soft cross-entropy, backward, SGD) in channels_last. float32 and bf16 are timed in interleaved rounds,
their order swapped every round, so that drifts of the machine hit both alike; the ratio is the median
float32 step time over the median bf16 step time (> 1: bf16 is faster).

    python benchmarks/bench_amp_cpu.py --out benchmarks/results/amp_bf16_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch
from bench_mixing_overhead import time_steps

from ammix.mixing import build_mixer
from ammix.models import build_model

SHAPES = {"resnet32": (3, 32, 32), "small_cnn": (1, 28, 28)}
OPTIONS = {"resnet32": {}, "small_cnn": {"feature_dim": 128}}


def bench_model(name: str, method: str, batch_size: int, steps: int, rounds: int) -> dict:
    torch.manual_seed(0)
    channels, height, width = SHAPES[name]
    model = build_model(name, 10, in_channels=channels, **OPTIONS[name]).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, channels, height, width).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    mixer = build_mixer(method, 10, generator=torch.Generator().manual_seed(0), **(
        {"total": 10} if method == "am_mixup" else {}))
    cpu = torch.device("cpu")
    for bf16 in (False, True):  # warm-up
        time_steps(model, optimizer, mixer, x, y, 3, cpu, bf16=bf16)
    times = {False: [], True: []}
    for r in range(rounds):
        for bf16 in ((False, True) if r % 2 == 0 else (True, False)):
            times[bf16] += time_steps(model, optimizer, mixer, x, y, steps, cpu, bf16=bf16)
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    return {"median_step_seconds": {"float32": fp32, "bf16": bf16}, "speedup_bf16": fp32 / bf16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per dtype and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--method", default="am_mixup")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {
        "benchmark": "amp_bf16_cpu",
        "command": "python benchmarks/bench_amp_cpu.py "
        f"--batch-size {args.batch_size} --steps {args.steps} --rounds {args.rounds} --method {args.method}",
        "device": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "method": args.method,
        "models": {name: bench_model(name, args.method, args.batch_size, args.steps, args.rounds)
                   for name in SHAPES},
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
