"""ResNet-32 training-step time per mixing method on CUDA, eager vs captured (CUDA graph), with the floor.

A step is the engine's: forward with the mixer at its site, soft cross-entropy, backward, SGD update;
batch 128, bf16 autocast, channels_last. Eager is ``train_step`` as the engine runs it without a graph
(foreach SGD); captured is ``ammix.engine.graphed_step.CapturedStep`` (fused SGD reading a device lr,
draws on the device, one graph per mixing site). Each timing is a run of back-to-back steps with one
synchronisation at its end (the way training issues them), in rounds whose method order rotates; the
median step time over rounds is reported.

The floor: the multiply-adds of one image's forward are counted from the model (conv and linear
layers, about 69 M for ResNet-32), a step costs about 3x the forward (forward, and backward for inputs
and weights), so 2 FLOP x 69 M x 3 x 128, about 53 GFLOP; its memory traffic is taken as 1-1.5 GB (the
bf16 activations written, saved and read back, their gradients, weights and optimizer state). The
floor is the larger of compute at peak and traffic at peak bandwidth, for the GPUs in PEAKS.

    python benchmarks/bench_step_cuda.py --out benchmarks/results/step_cuda_h200.json

The commit recorded is ``git rev-parse``'s, or the environment's COMMIT where the machine has no git.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from ammix.engine import train_step
from ammix.engine.graphed_step import WARMUP_STEPS, CapturedStep
from ammix.mixing import MIXERS, build_mixer
from ammix.models import build_model

# Dense bf16 tensor-core peak (FLOP/s) and memory bandwidth (B/s) of the SXM parts, from NVIDIA's sheets.
PEAKS = {"H100": (989e12, 3.35e12), "H200": (989e12, 4.8e12), "A100": (312e12, 2.0e12)}
TRAFFIC_BYTES = (1.0e9, 1.5e9)
COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # CIFAR-10-LT IF 100


def forward_macs(model: torch.nn.Module, image_shape=(3, 32, 32)) -> int:
    """Multiply-adds of one image's forward through the conv and linear layers."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * k
        elif isinstance(module, torch.nn.Linear):
            total += output[0].numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *image_shape))
    for h in hooks:
        h.remove()
    model.train()
    return total


def floor(macs: int, batch: int, device_name: str) -> dict:
    flops = 2 * macs * 3 * batch
    out = {"forward_macs_per_image": macs, "flop_per_step": flops, "traffic_bytes_per_step": TRAFFIC_BYTES}
    peak = next((v for k, v in PEAKS.items() if k in device_name), None)
    if peak is not None:
        compute_s, (low, high) = flops / peak[0], (b / peak[1] for b in TRAFFIC_BYTES)
        out.update(
            peak_flops=peak[0],
            peak_bytes_per_s=peak[1],
            compute_floor_ms=1e3 * compute_s,
            traffic_floor_ms=[1e3 * low, 1e3 * high],
            floor_ms=[1e3 * max(compute_s, low), 1e3 * max(compute_s, high)],
        )
    return out


# AM-mixup needs its run length; its defaults (drop pairing, clean loss 0.5) are what is timed.
OPTIONS = {"am_mixup": {"total": 10}}


def make_run(method: str, device: torch.device, captured: bool):
    """A fresh ResNet-32, optimizer and mixer; returns ``step(x, y, i)``."""
    torch.manual_seed(0)
    model = build_model("resnet32", 10).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    mixer = build_mixer(
        method, 10, class_counts=COUNTS, generator=torch.Generator().manual_seed(0), **OPTIONS.get(method, {})
    )
    amp = torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not captured)

    def run(x, y, m, epoch):
        return train_step(model, m, optimizer, x, y, epoch, 10, amp_ctx=amp)

    if captured:
        step = CapturedStep(run, model, mixer, optimizer, device)
        return lambda x, y, i: step(x, y, 5.0 + i / 100, 0.1)
    return lambda x, y, i: run(x, y, mixer, 5.0 + i / 100)


def git_commit() -> str | None:
    """This checkout's short commit, None without git or a repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def time_steps(step, x, y, steps: int) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(x, y, i)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50, help="back-to-back steps per timing")
    parser.add_argument("--rounds", type=int, default=15, help="timings per (method, mode), interleaved")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_step_cuda.py: needs a CUDA GPU (none visible here); run it in a GPU session")

    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    x = torch.randn(args.batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    modes = ("eager", "graphed")
    runs = {(m, mode): make_run(m, device, mode == "graphed") for m in MIXERS for mode in modes}
    for step in runs.values():  # warm-up and capture (manifold mixup: a graph per layer)
        for i in range(10 * (WARMUP_STEPS + 1)):
            step(x, y, i)
    times = {key: [] for key in runs}
    keys = list(runs)
    for r in range(args.rounds):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            times[key].append(time_steps(runs[key], x, y, args.steps))
    name = torch.cuda.get_device_name(device)
    ms = {f"{m}/{mode}": 1e3 * statistics.median(t) for (m, mode), t in times.items()}

    def spread(t: list[float]) -> list[float]:  # quartiles of the rounds, ms: is a 2% ratio resolved?
        q = statistics.quantiles(t, n=4) if len(t) >= 2 else [t[0]] * 3
        return [round(1e3 * q[0], 4), round(1e3 * q[2], 4)]

    commit = os.environ.get("COMMIT") or git_commit()  # the device machine may have no git or .git
    result = {
        "benchmark": "step_cuda",
        "command": "python benchmarks/bench_step_cuda.py "
        f"--batch-size {args.batch_size} --steps {args.steps} --rounds {args.rounds}",
        "device": name,
        "torch": torch.__version__,
        "model": "resnet32",
        "batch_size": args.batch_size,
        "amp": "bf16",
        "memory_format": "channels_last",
        "commit": commit,
        "optimizer": {"eager": "SGD (foreach), autocast cache on",
                      "graphed": "SGD (fused), autocast cache off"},
        "mixers": {m: repr(build_mixer(m, 10, class_counts=COUNTS, **OPTIONS.get(m, {}))) for m in MIXERS},
        "median_step_ms": ms,
        "quartiles_step_ms": {f"{m}/{mode}": spread(t) for (m, mode), t in times.items()},
        "speedup_graphed": {m: ms[f"{m}/eager"] / ms[f"{m}/graphed"] for m in MIXERS},
        # the 1.02x target: each method's step against CE's, in the same mode and process
        "ratio_to_ce": {mode: {m: ms[f"{m}/{mode}"] / ms[f"ce/{mode}"] for m in MIXERS} for mode in modes},
        "floor": floor(forward_macs(build_model("resnet32", 10)), args.batch_size, name),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
