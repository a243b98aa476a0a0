"""Learning curves and the plateau check (`ammix.experiments.curves`), and their place in the report."""

from __future__ import annotations

import json

import matplotlib.image
import pytest
import yaml

from ammix.analysis import metric_definition
from ammix.experiments import curves
from ammix.experiments import report as rep


def _write_curve(folder, values, seed=0, eval_every=2):
    """A finished run whose metrics.jsonl holds balanced accuracies every `eval_every` epochs."""
    folder.mkdir(parents=True)
    lines = []
    for i, value in enumerate(values, start=1):
        lines.append({"epoch": i, "train_loss": 1.0})
        if i % eval_every == 0:
            lines[-1]["balanced_acc"] = value
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"epo')
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "mixing": {"method": "ce"}}))
    (folder / "summary.json").write_text(json.dumps({"last": {"acc": values[-1]}}))


def test_tail_range_over_the_last_fifth_of_the_epochs():
    epochs = list(range(2, 21, 2))  # 2, 4, ..., 20: the tail starts at epoch 16
    values = [10.0, 20, 30, 40, 50, 60, 70, 75.5, 75.0, 76.0]
    assert curves.tail_range(epochs, values) == pytest.approx(1.0)  # 75.5, 75.0, 76.0
    assert curves.tail_range(epochs, values, fraction=0.5) == pytest.approx(26.0)  # from epoch 10: 50 .. 76
    assert curves.tail_range([10], [5.0]) is None  # one evaluation cannot show a plateau
    assert curves.tail_range([], []) is None


def test_tail_drift_compares_the_ends_of_the_last_fifth():
    epochs = list(range(1, 101))  # the tail: epochs 80 to 100, 21 evaluations
    values = [0.0] * 79 + [60.0] * 10 + [99.0] + [63.0] * 10  # a spike between the two ends counts in neither
    assert curves.tail_drift(epochs, values) == pytest.approx(3.0)
    assert curves.tail_range(epochs, values) == pytest.approx(39.0)  # the spike, which the drift ignores
    assert curves.tail_drift(epochs, values[:89] + [57.0] * 11) == pytest.approx(-3.0)  # falling: negative
    # Fewer than 2 x 10 evaluations in the tail (epochs 16, 18, 20): its halves, epoch 16 against epoch 20
    # (the odd middle one in neither).
    assert curves.tail_drift(list(range(2, 21, 2)), [10.0, 20, 30, 40, 50, 60, 70, 75.5, 75.0, 76.0]) == \
        pytest.approx(0.5)
    assert curves.tail_drift(list(range(2, 21, 2)), [0.0] * 10, window=0) is None
    assert curves.tail_drift([10], [5.0]) is None
    assert curves.tail_drift([], []) is None


def test_the_legends_state_the_tail_that_the_functions_use():
    # metric_definition's text is fixed prose: it must name the fraction and window the code uses
    share = f"last {curves.TAIL_FRACTION:.0%} of the epochs"
    assert share in metric_definition("curve.tail_range")
    assert share in metric_definition("curve.tail_drift")
    assert f"mean of the last {curves.TAIL_WINDOW} " in metric_definition("curve.tail_drift")
    assert f"mean of its first {curves.TAIL_WINDOW} " in metric_definition("curve.tail_drift")


def test_learning_curve_reads_evaluations_and_skips_a_torn_line(tmp_path):
    _write_curve(tmp_path / "run", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert curves.learning_curve(tmp_path / "run") == ([2, 4, 6], [2.0, 4.0, 6.0])


def test_report_adds_the_tail_range_and_draws_the_curves(tmp_path, capsys):
    root = tmp_path / "runs"
    _write_curve(root / "lt" / "ce" / "seed0", [50.0] * 8 + [70.0, 71.0], seed=0)  # tail: epochs 8, 10
    _write_curve(root / "lt" / "ce" / "seed1", [50.0] * 8 + [70.0, 73.5], seed=1)
    out = rep.report(root, tmp_path / "out", echo=False)
    runs = {r["seed"]: r for r in rep.collect_runs(root)}
    assert runs[0]["metrics"]["curve.tail_range"] == pytest.approx(21.0)  # epoch 8: 50, epoch 10: 71
    assert runs[1]["metrics"]["curve.tail_range"] == pytest.approx(23.5)
    assert runs[1]["metrics"]["curve.tail_drift"] == pytest.approx(23.5)  # one evaluation at each end
    figure = tmp_path / "out" / "figures" / "curves_lt.png"
    assert figure in out["figures"]
    # One variant, one panel, yet two panels wide (3.2 in each, 120 dpi): room for the two-line title.
    assert matplotlib.image.imread(figure).shape[1] == 768
    markdown = out["markdown"].read_text()
    assert "figures/curves_lt.png" in markdown
    assert "curve.tail_range" in markdown and "length check" in markdown
    assert "curve.tail_drift" in markdown and "still climbs" in markdown  # its column and its legend


def test_report_shows_how_far_the_lbfgs_probe_went(tmp_path):
    root = tmp_path / "runs"
    _write_curve(root / "c2f" / "ce" / "seed0" / "pretrain", [50.0, 60.0])
    probe = root / "c2f" / "ce" / "seed0" / "probe"
    _write_curve(probe, [61.0], eval_every=1)
    line = {"epoch": 1, "train_loss": 0.9, "probe_iterations": 256, "probe_grad_max": 9.4e-6,
            "balanced_acc": 61.0}
    (probe / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    runs = {r["stage"]: r["metrics"] for r in rep.collect_runs(root)}
    assert runs["probe"]["probe.iterations"] == 256
    assert runs["probe"]["probe.grad_max"] == pytest.approx(9.4e-6)
    assert not any(key.startswith("probe.") for key in runs["pretrain"])  # trained by SGD: no probe fit
    markdown = rep.report(root, tmp_path / "out", echo=False)["markdown"].read_text()
    assert "probe.grad_max" in markdown and "the probe converged" in markdown
    from ammix.engine.probe import GRAD_TOLERANCE

    assert f"at most {GRAD_TOLERANCE:g} " in rep.metric_definition("probe.grad_max")  # quotes the code


def test_report_names_the_probe_fits_that_stopped_above_the_tolerance(tmp_path):
    root = tmp_path / "runs"
    for seed, grad in ((0, 9.4e-6), (1, 2.4e-4)):
        probe = root / "c2f" / "am_mixup" / f"seed{seed}" / "probe"
        _write_curve(probe, [61.0], eval_every=1)
        line = {"epoch": 1, "probe_iterations": 1000, "probe_grad_max": grad, "balanced_acc": 61.0}
        (probe / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    markdown = rep.report(root, tmp_path / "out", echo=False)["markdown"].read_text()
    assert ("1 L-BFGS probe fit(s) stopped above the gradient tolerance 1e-05 (probe.grad_max), their probe "
            "numbers those of an unfinished fit: am_mixup/seed1.") in markdown
    assert "| 1.25e-04 ± 1.63e-04 |" in markdown  # a column of tiny values in scientific notation, not 0.0000
