"""Learning curves of finished runs, and how flat each run ends.

The tail range is how far a run's balanced test accuracy moves over the evaluations in the last 20% of
its epochs (max - min, in points); the tail drift is where it goes there (the mean of the last evaluations
minus the mean of the first: single evaluations' noise averages out, the sign says rising or falling).
``ammix report`` adds them to every run as ``curve.tail_range`` and ``curve.tail_drift`` and draws the
curves of each sweep. Neither can say alone whether a run was long enough: under a cosine
schedule the learning rate anneals to zero, so a run can end flat and far from its plateau (a CIFAR-10
fine-tuning at lr 0.01 for 60 epochs moved 0.81 points over its end, at 71.9% where lr 0.1 reaches 75.6%
in half the epochs). docs/results.md decides convergence by a length check (the same runs at twice the
epochs) and shows this range beside it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..engine.rundir import read_metrics

CURVE_METRIC = "balanced_acc"
TAIL_FRACTION = 0.2
TAIL_WINDOW = 10  # evaluations averaged at each end of the tail by tail_drift


def slug(text: str) -> str:
    """`text` as a file-name part (runs of other characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "runs"


def learning_curve(run_dir: str | os.PathLike, metric: str = CURVE_METRIC) -> tuple[list[int], list[float]]:
    """The (epochs, values) of ``metric`` at each evaluation recorded in the run's metrics.jsonl."""
    return curve_points(read_metrics(Path(run_dir)), metric)


def curve_points(lines: Sequence[dict], metric: str = CURVE_METRIC) -> tuple[list[int], list[float]]:
    """The (epochs, values) of ``metric`` in metrics.jsonl lines, at the epochs that evaluated it."""
    points = [(m["epoch"], float(m[metric])) for m in lines if m.get(metric) is not None]
    return [e for e, _ in points], [v for _, v in points]


def _tail(epochs: Sequence[int], values: Sequence[float], fraction: float) -> list[float]:
    """The values evaluated in the last ``fraction`` of the epochs, counted from the evaluation at its
    start (epochs 80 to 100 of 100: the change over the span, not only within it)."""
    if not epochs:
        return []
    start = max(epochs) * (1.0 - fraction)
    return [v for e, v in zip(epochs, values, strict=True) if e >= start]


def tail_range(epochs: Sequence[int], values: Sequence[float],
               fraction: float = TAIL_FRACTION) -> float | None:
    """max - min of the values evaluated in the last ``fraction`` of the epochs (``None`` without two
    such evaluations: too few to tell a plateau)."""
    tail = _tail(epochs, values, fraction)
    return max(tail) - min(tail) if len(tail) >= 2 else None


def tail_drift(epochs: Sequence[int], values: Sequence[float], fraction: float = TAIL_FRACTION,
               window: int = TAIL_WINDOW) -> float | None:
    """The mean of the last ``window`` values evaluated in the last ``fraction`` of the epochs minus the
    mean of its first ``window`` (of its two halves when it holds fewer than ``2 * window``; ``None``
    without two evaluations): positive while the run still climbs over its end."""
    tail = _tail(epochs, values, fraction)
    k = min(window, len(tail) // 2)
    return sum(tail[-k:]) / k - sum(tail[:k]) / k if k else None


def tail_measures(epochs: Sequence[int], values: Sequence[float]) -> dict[str, float | None]:
    """How flat a curve ends, by every measure here: ``{"tail_range": ..., "tail_drift": ...}`` (the
    keys that reports prefix with ``curve.`` and the toy's table shows)."""
    return {"tail_range": tail_range(epochs, values), "tail_drift": tail_drift(epochs, values)}


def plot_learning_curves(records: Sequence[dict], out_dir: str | os.PathLike) -> dict[tuple[str, str], Path]:
    """Per (sweep, stage): one panel per variant, a line per seed of the balanced test accuracy, the
    last 20% of epochs shaded; ``curves_<sweep>[_<stage>].png``. Returns (sweep, stage) -> path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for record in records:
        variants = groups.setdefault((record["sweep"], record["stage"]), {})
        variants.setdefault(record["variant"], []).append(record)
    written = {}
    for (sweep, stage), variants in sorted(groups.items()):
        drawn = {variant: [(run["seed"], learning_curve(run["path"])) for run in runs]
                 for variant, runs in variants.items()}
        if not any(epochs for runs in drawn.values() for _, (epochs, _) in runs):
            continue  # no run of this group recorded an evaluation
        columns = min(4, len(variants))
        rows = -(-len(variants) // columns)
        # At least two panels wide: the two-line title does not fit above one panel.
        fig = Figure(figsize=(3.2 * max(columns, 2), 2.4 * rows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, columns, squeeze=False, sharey=True)
        for ax, (variant, runs) in zip(axes.flat, sorted(drawn.items()), strict=False):
            last_epoch = 0
            for seed, (epochs, values) in sorted(runs, key=lambda r: (r[0] is None, r[0])):
                ax.plot(epochs, values, linewidth=1.0, label=f"seed {seed}")
                last_epoch = max([last_epoch, *epochs])
            ax.axvspan(last_epoch * (1 - TAIL_FRACTION), last_epoch, color="0.9", zorder=0)
            ax.set_title(variant, fontsize="medium")
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        for ax in axes[:, 0]:
            ax.set_ylabel("balanced test acc (%)")
        for ax in list(axes.flat)[len(variants):]:
            ax.set_visible(False)
        axes.flat[0].legend(loc="lower right", fontsize="x-small")  # the curves rise: that corner is free
        fig.suptitle(f"{sweep}" + (f" / {stage}" if stage else "")  # two lines: fits two panels
                     + f"\nlearning curves (shaded: the last {TAIL_FRACTION:.0%} of epochs)",
                     fontsize="medium")
        path = Path(out_dir) / ("curves_" + slug(sweep) + (f"_{slug(stage)}" if stage else "") + ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        written[(sweep, stage)] = path
    return written
