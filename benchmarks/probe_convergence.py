"""How far an unfinished L-BFGS probe is from the optimum: for each probe run of a coarse-to-fine sweep,
the engine's fit (``ammix.engine.probe.fit_linear_head``) stopped after ``--short`` iterations against
the same fit allowed ``--long`` iterations, both scored on the test set, with the numerical rank and the
largest eigenvalue of the standardised features' covariance.

    python benchmarks/probe_convergence.py runs/c2f-fashion-mnist-cpu-fp32/am_mixup/seed*/probe \\
        --short 1000 --long 5000 --out benchmarks/results/probe_convergence_c2f_fashion_fp32.json

A probe run folder holds what this needs: its config.yaml (data, weight decay) and last.pt (the
pre-trained backbone and the fitted head).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ammix.data import DeviceLoader
from ammix.engine import load_checkpoint, load_config
from ammix.engine.loop import load_data, make_model
from ammix.engine.probe import MAX_ITERATIONS, extract_features, fit_linear_head, standardise


def compare(probe_dir: Path, short_iterations: int, long_iterations: int) -> dict:
    cfg = load_config(probe_dir / "config.yaml")
    train_set, test_set = load_data(cfg)
    model = make_model(cfg, train_set)
    model.load_state_dict(load_checkpoint(probe_dir / "last.pt")["model"])
    x, y = extract_features(model, DeviceLoader(train_set, 1000, train=False, augment=None), "cpu")
    xt, yt = extract_features(model, DeviceLoader(test_set, 1000, train=False, augment=None), "cpu")
    wd = cfg.optim.weight_decay
    mean, scale = standardise(x.double())
    z = (x.double() - mean) / scale
    eig = torch.linalg.eigvalsh(z.T @ z / len(z))

    def fitted(max_iterations: int) -> dict:
        start = time.perf_counter()
        fit = fit_linear_head(x, y, int(y.max()) + 1, wd, max_iterations=max_iterations)
        test_acc = 100.0 * ((xt @ fit.weight.T + fit.bias).argmax(1) == yt).double().mean().item()
        return {"iterations": fit.iterations, "grad_max": fit.grad_max, "objective": fit.loss,
                "train_acc": fit.train_acc, "test_acc": test_acc, "seconds": time.perf_counter() - start}

    return {
        "probe_dir": str(probe_dir),
        "features": {"n": len(y), "dim": x.shape[1], "mean_norm": x.norm(dim=1).mean().item(),
                     "rank_1e-6": int((eig > 1e-6 * eig.max()).sum()), "eig_max": eig.max().item()},
        "short": fitted(short_iterations),
        "long": fitted(long_iterations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe_dirs", nargs="+", type=Path, help="probe run folders (config.yaml, last.pt)")
    parser.add_argument("--short", type=int, default=1000, help="iterations of the short fit (the "
                        "probe's limit before it was raised to ammix.engine.probe.MAX_ITERATIONS)")
    parser.add_argument("--long", type=int, default=MAX_ITERATIONS, help="iterations of the long fit")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = []
    for probe_dir in args.probe_dirs:
        results.append(compare(probe_dir, args.short, args.long))
        print(json.dumps(results[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = " ".join(map(str, args.probe_dirs))
    command = f"python benchmarks/probe_convergence.py {runs} --short {args.short} --long {args.long}"
    args.out.write_text(json.dumps({"benchmark": "probe_convergence", "command": command,
                                    "torch": torch.__version__, "runs": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
