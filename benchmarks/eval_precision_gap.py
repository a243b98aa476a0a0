"""How far a run's test accuracy in summary.json, evaluated under the run's autocast (bf16 in the bf16
runs), lies from the same final checkpoint re-scored in float32 by ``ammix analyze`` (analysis.json's
``accuracy``), over the committed kept runs that have both files, each run once (a run copied into
several reports has the same two files in each; ``mean_points``: summary.json minus analysis.json,
signed; ``lower``/``higher``: runs whose summary.json is below / above):

    python benchmarks/eval_precision_gap.py docs/results --out benchmarks/results/eval_precision_gap.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ammix.experiments.report import device_text


def gaps(root: Path) -> dict[str, list[tuple[float, str]]]:
    """Precision ("cpu, bfloat16", ...) -> (last.acc - 100 * accuracy in points, run folder) a run."""
    out: dict[str, list[tuple[float, str]]] = {}
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
        acc = (summary.get("last") or {}).get("acc")
        if acc is None or "accuracy" not in analysis:
            continue
        gap = acc - 100.0 * analysis["accuracy"]
        out.setdefault(device_text(summary), []).append((gap, str(summary_file.parent)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a folder of kept runs, e.g. docs/results")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {}
    for precision, runs in sorted(gaps(args.root).items()):
        sizes = [abs(g) for g, _ in runs]
        largest = max(runs, key=lambda run: abs(run[0]))
        result[precision] = {"runs": len(runs), "differ": sum(s > 1e-6 for s in sizes),
                             "lower": sum(g < -1e-6 for g, _ in runs),
                             "higher": sum(g > 1e-6 for g, _ in runs),
                             "median_abs_points": round(statistics.median(sizes), 4),
                             "mean_points": round(statistics.mean(g for g, _ in runs), 4),
                             "max_abs_points": round(abs(largest[0]), 4), "max_run": largest[1]}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
