"""Collapse analysis of a finished run: test-set features of its last checkpoint, and their metrics."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ammix.analysis import collapse_report
from ammix.data import DeviceLoader, ImageDataset
from ammix.engine import config_from_dict, load_checkpoint, saved_config
from ammix.engine.checkpoint import resolve_checkpoint
from ammix.engine.loop import load_data, make_loss, make_model
from ammix.engine.rundir import ANALYSIS
from ammix.losses import SoftCrossEntropy
from ammix.models import StagedModel


@dataclass
class RunFeatures:
    """Test-set features of a trained run, with its head and labels (fine ones kept for coarse runs)."""

    features: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    fine_labels: torch.Tensor | None
    head: torch.nn.Linear
    test_set: ImageDataset
    #: features -> the logits whose softmax is the run's predicted distribution (head, then the loss's
    #: ``predictive_logits``); what the feature map shades
    logits_of: Callable[[torch.Tensor], torch.Tensor]


def load_trained(run_dir: str | Path) -> tuple[StagedModel, ImageDataset, SoftCrossEntropy]:
    """The run's model with its last checkpoint's weights (on CPU, eval mode), its test split and its
    loss (which says how its logits become probabilities)."""
    cfg = config_from_dict(saved_config(run_dir))
    train_set, test_set = load_data(cfg)
    model = make_model(cfg, train_set)
    model.load_state_dict(load_checkpoint(resolve_checkpoint(run_dir))["model"])
    return model.eval(), test_set, make_loss(cfg, train_set.class_counts(), torch.device("cpu"))


@torch.no_grad()
def run_features(run_dir: str | Path, batch_size: int = 512) -> RunFeatures:
    """Features and logits of the run's test split, in the split's order; the logits are those whose
    softmax is the run's predicted distribution at test time (LDAM's scaled cosines)."""
    model, test_set, loss_fn = load_trained(run_dir)
    features = [model.features(x) for x, _ in DeviceLoader(test_set, batch_size, train=False, augment=None)]
    features = torch.cat(features)

    def logits_of(f: torch.Tensor) -> torch.Tensor:
        return loss_fn.predictive_logits(model.head(f))

    return RunFeatures(
        features=features,
        logits=logits_of(features),
        labels=test_set.labels,
        fine_labels=getattr(test_set, "fine_labels", None),
        head=model.head,
        test_set=test_set,
        logits_of=logits_of,
    )


def analyze_run(run_dir: str | Path, features: RunFeatures | None = None) -> dict[str, float]:
    """Collapse metrics of the run's test features (`collapse_report`), written to analysis.json.
    ``features``: the run's ``run_features``, when the caller has them already.

    For a run trained on coarse labels, the metrics are also computed against the fine labels
    (keys prefixed ``fine_``): intra-class collapse shows there, as fine classes that the coarse
    training squeezed together.
    """
    rf = features or run_features(run_dir)
    report = collapse_report(rf.features, rf.labels, head=rf.head, logits=rf.logits)
    if rf.fine_labels is not None:
        fine = collapse_report(rf.features, rf.fine_labels)
        report.update({f"fine_{key}": value for key, value in fine.items()})
    Path(run_dir, ANALYSIS).write_text(json.dumps(report, indent=2) + "\n")
    return report


DESCRIPTION = """\
The collapse metrics of one finished `ammix train` run, as a sweep computes them for its runs:

  ammix analyze runs/smoke

Loads the run's last checkpoint (last.pt) with its config.yaml, computes the features of its test
split and writes their metrics to RUN_DIR/analysis.json (`ammix report` shows them as analysis.*
columns): alignment, uniformity, neighbour_uniformity, intra-class spread, centroid distances,
feature_norm, the class margins to the head's decision boundaries, ece and the accuracies (fractions
in the file, percent in the printed summary). A run trained on coarse labels also gets them against
the fine labels (fine_*). Exit status 2, with one line, for a folder that is not a finished run.
"""


def unfinished_reason(run_dir: Path) -> str | None:
    """Why ``run_dir`` is not a finished run that can be analysed, or ``None`` when it is."""
    if not run_dir.is_dir():
        return f"{run_dir} is not a folder"
    missing = [name for name in ("config.yaml", "summary.json", "last.pt") if not (run_dir / name).is_file()]
    if missing:
        return f"{run_dir} is not a finished `ammix train` run (no {', '.join(missing)})"
    summary = json.loads((run_dir / "summary.json").read_text())
    if not summary.get("finished"):
        return (f"{run_dir}: the run stopped after epoch {summary.get('epochs_done')} of "
                f"{summary.get('epochs')}; finish it with `ammix train ... --run-dir {run_dir} --resume`")
    return None


def format_summary(report: dict[str, float]) -> str:
    """One line per metric; accuracies (fractions in analysis.json) in percent."""
    lines = []
    for key, value in report.items():
        text = f"{100 * value:.2f} %" if key.endswith("accuracy") else f"{value:.4g}"
        lines.append(f"  {key:<28} {text}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="the folder of a finished `ammix train` run")


def run(args: argparse.Namespace) -> int:
    """``ammix analyze``: 0 when analysis.json is written, 2 (one line) for a folder that is not a
    finished run."""
    problem = unfinished_reason(args.run_dir)
    if problem is not None:
        print(f"ammix analyze: {problem}", file=sys.stderr)
        return 2
    report = analyze_run(args.run_dir)
    print(f"{args.run_dir / 'analysis.json'}:\n{format_summary(report)}")
    return 0
