"""Where a ResNet-32 training step spends its time: torch.profiler over AM-mixup steps of the engine's
``train_step`` (batch 128, channels_last as the engine's default, SGD), operators by self time.

    python benchmarks/profile_step.py --out benchmarks/results/profile_step_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from ammix.engine import train_step
from ammix.mixing import build_mixer
from ammix.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model("resnet32", 10).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    mixer = build_mixer("am_mixup", num_classes=10, gamma=0.95)
    x = torch.randn(128, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,), device=device)
    for _ in range(2):  # warm-up: allocator, oneDNN primitive caches
        train_step(model, mixer, optimizer, x, y, 1.0, 10)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            train_step(model, mixer, optimizer, x, y, 1.0, 10)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    result = {
        "benchmark": "profile_step",
        "command": "python " + " ".join(sys.argv),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "self_cpu_ms_per_step": total / 1e3 / args.steps,
        "top_ops": [{"op": e.key, "calls_per_step": e.count / args.steps,
                     "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / args.steps,
                     "share": e.self_cpu_time_total / total} for e in events[: args.top]],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
