"""`ammix demo`: the toy comparison of CE, mixup, manifold mixup and AM-mixup, offline, in about a minute.

With no argument it runs on digits 0-3 of sklearn's digits (shipped with scikit-learn; 4 classes, the
geometry of the paper's 2-D toy), balanced and long-tailed; `--dataset` runs the same protocol on
another registered dataset (a dataset with superclasses adds the coarse-to-fine setting). It prints
the table with a line defining each column, and per setting which method did best.
"""

from __future__ import annotations

import argparse
import math
import sys
from importlib import resources
from pathlib import Path

import yaml

from .toy import ToyError, format_table, run_toy


def demo_spec(dataset: str | None = None, root: str | None = None) -> dict:
    """The demo's toy spec, on `dataset` instead of digits when given."""
    spec = yaml.safe_load(resources.files("ammix").joinpath("resources/demo.yaml").read_text())
    if dataset:
        spec["config"]["data"]["dataset"] = dataset
        del spec["config"]["data"]["num_classes"]  # the digits' own option
        spec["settings"]["coarse-to-fine"] = {"data.labels": "coarse"}
    if root:
        spec["config"]["data"]["root"] = root
    return spec


def verdicts(rows: list[dict]) -> list[str]:
    """Per setting, one line naming the methods with the best balanced accuracy and with the most even
    class margins (highest margin_ratio), ties included, so the table's answer is said, not left to
    read. A run without a margin_ratio (undefined: every centroid misclassified; or a coarse run,
    measured on fine classes) is named as such, not compared."""
    lines = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        runs = [r for r in rows if r["setting"] == setting]
        acc = max(round(r["balanced_acc"], 1) for r in runs)
        best = ", ".join(r["method"] for r in runs if round(r["balanced_acc"], 1) == acc)
        line = f"{setting}: best balanced accuracy {best} ({acc:.1f}%)"
        ratios = {r["method"]: r.get("margin_ratio") for r in runs}
        defined = {m: round(v, 2) for m, v in ratios.items() if v is not None and not math.isnan(v)}
        if defined:
            even = max(defined.values())
            most_even = ", ".join(m for m, v in defined.items() if v == even)
            line += f"; most even margins {most_even} (margin_ratio {even:.2f})"
        undefined = [m for m in ratios if m not in defined]
        if undefined:
            line += f"; no margin_ratio for {', '.join(undefined)}"
        lines.append(line)
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", help="a registered dataset instead of digits (e.g. mini-cifar)")
    parser.add_argument("--root", help="folder of the dataset's files")
    parser.add_argument("--quick", action="store_true", help="a reduced run (3 epochs), under a minute")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of every run's config")


def run(args: argparse.Namespace) -> int:
    spec = demo_spec(args.dataset, args.root)
    try:
        rows = run_toy(spec, args.out, args.overrides, quick=args.quick)
    except ToyError as err:
        print(f"ammix demo: {err}", file=sys.stderr)
        return 2
    print()
    print(format_table(rows))
    for line in verdicts(rows):
        print(line)
    print("figures:")
    for setting in spec["settings"]:
        print(f"  {args.out / setting}.png  {args.out / setting}.pdf")
    return 0
