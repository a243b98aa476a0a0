"""Throughput of DeviceLoader against the per-image reference DataLoader on CIFAR-shaped data.

Both make the same training batches (random crop with 4-pixel zero padding, horizontal flip, float,
normalise) over one epoch each, in one process. Data: the CIFAR-10 JPEG copy when found under
``--data-root`` (or ``$AMMIX_DATA``), else random uint8 images of shape 3 x 32 x 32. CPU timings
suffer badly from other processes on the same cores (torch's threads wait for each other), so the
1-minute load average is recorded with them.

    python benchmarks/bench_loader.py --data-root /work/shared/data --out benchmarks/results/loader_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torchvision

from ammix.data import DeviceLoader, ImageDataset, load_dataset, reference_loader


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def get_data(root: str | None, n_images: int) -> tuple[ImageDataset, str]:
    try:
        ds = load_dataset("cifar10-jpeg", root, train=True)
        source = "CIFAR-10 (JPEG re-encode), train split"
    except FileNotFoundError:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (n_images, 3, 32, 32), dtype=torch.uint8, generator=g)
        ds = ImageDataset(images, torch.arange(n_images) % 10, [str(i) for i in range(10)],
                          mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), name="random")
        source = "random uint8 3x32x32"
    if len(ds) > n_images:
        ds = ds.subset(torch.arange(n_images))
    return ds, source


def time_epoch(loader, device: torch.device) -> tuple[float, int]:
    """Seconds and images for one full pass (worker start-up included, as in training without
    persistent workers); every batch is touched (a sum) so no work is skipped."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    warm = iter(loader)
    next(warm)  # warm-up on a throwaway iterator: lazy imports, allocator, kernels
    del warm
    sync()
    start = time.perf_counter()
    n = 0
    check = torch.zeros((), device=device)
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        check += x.sum()
        n += len(y)
    sync()
    return time.perf_counter() - start, n


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/loader_cpu.json", help="JSON result file")
    p.add_argument("--n-images", type=int, default=50000, help="images per epoch (default 50000)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-root", default=None,
                   help="folder with cifar10-jpeg[.tar.gz] (default: $AMMIX_DATA)")
    p.add_argument("--device", default="cpu", help="device of DeviceLoader (and of the reference batches)")
    p.add_argument("--num-workers", type=int, nargs="+", default=[0, 2],
                   help="DataLoader worker counts to measure for the reference (default 0 2)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=1,
                   help="epochs timed per loader; the best is reported (all are kept), default 1")
    args = p.parse_args(argv)
    if args.n_images < 2 * args.batch_size or args.batch_size < 1:
        p.error("--n-images must be at least two batches")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    ds, source = get_data(args.data_root, args.n_images)
    def measure(label: str, make_loader) -> dict:
        rates = []
        for epoch in range(args.repeats):
            seconds, n = time_epoch(make_loader(epoch), device)
            rates.append(n / seconds)
            print(f"{label}, epoch {epoch}: {n / seconds:,.0f} images/s ({n} images in {seconds:.2f} s)")
        return {"images_per_s": max(rates), "images_per_s_all_epochs": rates, "images_per_epoch": n}

    def device_loader(epoch):
        loader = DeviceLoader(ds, args.batch_size, device=device, train=True, augment="cifar", seed=0)
        loader.set_epoch(epoch)
        return loader

    results = {"device_loader": measure(f"DeviceLoader ({device})", device_loader)}
    for workers in args.num_workers:
        results[f"reference_workers_{workers}"] = {"num_workers": workers, **measure(
            f"reference DataLoader, {workers} workers",
            lambda epoch, w=workers: reference_loader(ds, args.batch_size, train=True, augment="cifar",
                                                      num_workers=w, seed=epoch))}
    best_ref = max(v["images_per_s"] for k, v in results.items() if k.startswith("reference"))
    out = {
        "benchmark": "loader throughput, training epochs (crop pad 4 + flip + normalise), best of repeats",
        "repeats": args.repeats,
        "data": source,
        "n_images": len(ds),
        "batch_size": args.batch_size,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "results": results,
        "ratio_device_vs_best_reference": results["device_loader"]["images_per_s"] / best_ref,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": sys.version.split()[0],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_name(),
        "load_average_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "command": "python benchmarks/bench_loader.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    print(f"ratio DeviceLoader / best reference: {out['ratio_device_vs_best_reference']:.1f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
