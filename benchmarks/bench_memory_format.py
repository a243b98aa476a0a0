"""ResNet-32 training-step time with contiguous (NCHW) vs channels_last (NHWC) tensors, in one process;
with ``--compile`` also channels_last with each stage compiled as the engine's ``train.compile`` does.

Rounds alternate the variants; the result is the median step time of each and their ratios. It
decided the engine's `train.channels_last: auto` (on for CPU and CUDA).

    python benchmarks/bench_memory_format.py --out benchmarks/results/memory_format_cpu.json
    python benchmarks/bench_memory_format.py --compile --out benchmarks/results/compile_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ammix.engine.loop import compile_stages
from ammix.models import build_model


def step_times(channels_last: bool, compiled: bool, steps: int, batch_size: int,
               device: torch.device) -> list[float]:
    """Seconds per SGD step of a fresh ResNet-32 in the given memory format, compiled or not (after 2
    warm-up steps, which also compile)."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model("resnet32", 10).to(device, memory_format=fmt)
    if compiled:
        compile_stages(model)
    x = torch.randn(batch_size, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="add channels_last with torch.compile")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    variants = {"contiguous": (False, False), "channels_last": (True, False)}
    if args.compile:
        variants["channels_last_compiled"] = (True, True)
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (channels_last, compiled) in variants.items():
            times[name] += step_times(channels_last, compiled, args.steps, args.batch_size, device)
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "benchmark": "memory_format",
        "command": f"python benchmarks/bench_memory_format.py --device {args.device} --batch-size "
        f"{args.batch_size} --steps {args.steps} --rounds {args.rounds}" + " --compile" * args.compile,
        "device": args.device,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "median_step_seconds": median,
        "speedup_channels_last": median["contiguous"] / median["channels_last"],
    }
    if args.compile:
        result["speedup_compile"] = median["channels_last"] / median["channels_last_compiled"]
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
