"""How far a run's test accuracies in summary.json, evaluated under the run's autocast (bf16 in the bf16
runs), lie from the same final checkpoint re-scored in float32 by ``ammix analyze`` (analysis.json), over
the committed kept runs that have both files, each run once (a run copied into several reports has the
same two files in each). Two accuracies: ``acc`` (last.acc against ``accuracy``) and ``balanced_acc``
(last.balanced_acc, the tables' column, against ``balanced_accuracy``), the latter also for the
long-tailed runs alone (their test sets are balanced: there it equals the accuracy's).
``mean_points``: summary.json minus analysis.json, signed; ``lower``/``higher``: runs whose
summary.json is below / above:

    python benchmarks/eval_precision_gap.py docs/results --out benchmarks/results/eval_precision_gap.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import yaml

from ammix.experiments.report import device_text

#: summary.json's key under "last" -> analysis.json's key (a fraction)
PAIRS = {"acc": "accuracy", "balanced_acc": "balanced_accuracy"}


def gaps(root: Path) -> dict[tuple[str, str], list[tuple[float, str]]]:
    """(precision ("cpu, bfloat16", ...), group) -> (summary.json's accuracy - 100 * analysis.json's in
    points, run folder) a run; groups: each key of ``PAIRS``, and ``balanced_acc, long-tailed``."""
    out: dict[tuple[str, str], list[tuple[float, str]]] = {}
    seen = set()
    for summary_file in sorted(root.rglob("summary.json")):
        analysis_file = summary_file.with_name("analysis.json")
        if not analysis_file.is_file():
            continue
        texts = (summary_file.read_text(), analysis_file.read_text())
        if texts in seen:  # a copy of a run counted already
            continue
        seen.add(texts)
        summary, analysis = json.loads(texts[0]), json.loads(texts[1])
        config_file = summary_file.with_name("config.yaml")
        config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else None
        long_tailed = ((config or {}).get("data", {}).get("imbalance_factor") or 1) > 1
        precision = device_text(summary)
        for key, fraction in PAIRS.items():
            value = (summary.get("last") or {}).get(key)
            if value is None or fraction not in analysis:
                continue
            gap = (value - 100.0 * analysis[fraction], str(summary_file.parent))
            out.setdefault((precision, key), []).append(gap)
            if key == "balanced_acc" and long_tailed:
                out.setdefault((precision, "balanced_acc, long-tailed"), []).append(gap)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a folder of kept runs, e.g. docs/results")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result: dict[str, dict] = {}
    for (precision, group), runs in sorted(gaps(args.root).items()):
        sizes = [abs(g) for g, _ in runs]
        largest = max(runs, key=lambda run: abs(run[0]))
        result.setdefault(precision, {})[group] = {
            "runs": len(runs), "differ": sum(s > 1e-6 for s in sizes),
            "lower": sum(g < -1e-6 for g, _ in runs), "higher": sum(g > 1e-6 for g, _ in runs),
            "median_abs_points": round(statistics.median(sizes), 4),
            "mean_points": round(statistics.mean(g for g, _ in runs), 4),
            "max_abs_points": round(abs(largest[0]), 4), "max_run": largest[1]}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
