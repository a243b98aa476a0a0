"""Seed-paired differences between the runs of two committed runs.csv files (two sweep folders that
`ammix report` cannot read together, e.g. when one sweep's run folders are gone): for each variant of
the first file, its runs minus the same seeds of the same variant in the second file, or of one
``--base-variant`` there (a from-scratch reference), or of the variant ``--pair NEW=BASE`` names (a
longer run against its shorter one). The pairing is `ammix report`'s own
(``ammix.experiments.report.paired_differences``).

    python benchmarks/pair_runs_csv.py docs/results/c2f-fashion-mnist-cpu-lr0.1/runs.csv \\
        docs/results/c2f-fashion-mnist-cpu/runs.csv --stage finetune --base-stage finetune \\
        --metric last.acc --out benchmarks/results/c2f_fashion_lr0.1_minus_lr0.01.json
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from ammix.experiments.report import paired_differences


def read_runs(path: Path, stage: str, metric: str) -> dict[str, dict[int, float]]:
    """variant -> seed -> metric, for the rows of ``stage`` ("" for a sweep without stages)."""
    runs: dict[str, dict[int, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["stage"] == stage and row.get(metric):
                runs.setdefault(row["variant"], {})[int(row["seed"])] = float(row[metric])
    return runs


def pair(new: dict[str, dict[int, float]], base: dict[str, dict[int, float]], metric: str,
         bases: dict[str, str] | None = None) -> list[dict]:
    """One paired difference per variant of ``new`` that has a base (``bases[variant]``; without
    ``bases``, the same name): each variant is its own group of two records, 'new' and 'base', so
    ``paired_differences`` pairs it with its own base only."""
    records = []
    for variant, seeds in new.items():
        reference = base.get(variant if bases is None else bases.get(variant))
        if reference is None:
            continue
        for side, values in (("new", seeds), ("base", reference)):
            records += [{"sweep": variant, "stage": "", "variant": side, "seed": seed,
                         "metrics": {metric: value}} for seed, value in values.items()]
    return [{"variant": d["sweep"], "mean": d["mean"], "std": d["std"], "pairs": d["pairs"],
             "seeds": d["seeds"], "differences": d["differences"]}
            for d in paired_differences(records, "base", [metric])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new", type=Path, help="runs.csv of the runs to compare")
    parser.add_argument("base", type=Path, help="runs.csv of the runs to subtract")
    parser.add_argument("--stage", default="", help="stage of the first file's rows (default: none)")
    parser.add_argument("--base-stage", default="", help="stage of the second file's rows (default: none)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--base-variant", help="pair every variant with this one variant of the second file")
    choice.add_argument("--pair", nargs="+", metavar="NEW=BASE",
                        help="pair only these variants, each with the named variant of the second file")
    parser.add_argument("--metric", default="last.acc")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    new = read_runs(args.new, args.stage, args.metric)
    base = read_runs(args.base, args.base_stage, args.metric)
    bases = dict.fromkeys(new, args.base_variant) if args.base_variant else None
    if args.pair:
        if not all("=" in item for item in args.pair):
            parser.error(f"--pair takes NEW=BASE items, got: {' '.join(args.pair)}")
        bases = dict(item.split("=", 1) for item in args.pair)
        missing = [f"{v} (first file)" for v in bases if v not in new]
        missing += [f"{b} (second file)" for b in bases.values() if b not in base]
        if missing:
            parser.error(f"--pair: no {args.metric} rows for {', '.join(missing)}")
    result = {"new": str(args.new), "base": str(args.base), "stage": args.stage,
              "base_stage": args.base_stage, "base_variant": args.base_variant,
              "named_pairs": bases if args.pair else None,
              "metric": args.metric,
              "differences": pair(new, base, args.metric, bases)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for d in result["differences"]:
        print(f"{d['variant']:16s} {d['mean']:+.2f} ± {d['std']:.2f} ({d['pairs']} pairs)")


if __name__ == "__main__":
    main()
