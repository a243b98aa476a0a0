"""`ammix report`: collection of run folders, aggregation over seeds, tables, references, figures, CLI."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ammix.analysis import metric_definition
from ammix.analysis.metrics import HEAD_KEYS, LOGIT_KEYS, REPORT_KEYS
from ammix.cli import main
from ammix.experiments import report as rep


def _write_run(folder, *, dataset="cifar10", imbalance_factor=100.0, method="ce", model="resnet32", seed=0,
               summary=None, analysis=None, labels="fine"):
    folder.mkdir(parents=True, exist_ok=True)
    data = {"dataset": dataset, "imbalance_factor": imbalance_factor, "labels": labels}
    config = {"seed": seed, "data": data,
              "model": {"name": model}, "mixing": {"method": method}, "train": {"epochs": 2}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    if analysis is not None:
        (folder / "analysis.json").write_text(json.dumps(analysis))


def _summary(acc, per_class, few=50.0, wall=10.0):
    """A summary.json as the engine writes it: accuracies in percent."""
    groups = {"many": 90.0, "medium": 60.0, "few": few}
    return {"last": {"acc": acc, "balanced_acc": acc - 10.0, "groups": groups,
                     "per_class_acc": per_class, "loss": 1.0},
            "best": {"acc": acc + 1.0, "epoch": 3, "groups": {"few": few}},
            "wall_time_s": wall, "finished": True, "dataset": "cifar10"}


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    accs = {"ce": [70.0, 72.0, 74.0], "am_mixup": [75.0, 78.0, 81.0]}
    per_class = {"ce": [[90.0, 50.0], [80.0, 60.0], [70.0, 70.0]],
                 "am_mixup": [[100.0, 50.0], [90.0, 50.0], [80.0, 50.0]]}
    for variant in ("ce", "am_mixup"):
        for seed in range(3):
            _write_run(root / "lt" / variant / f"seed{seed}", method=variant, seed=seed,
                       summary=_summary(accs[variant][seed], per_class[variant][seed], wall=10.0 + seed),
                       analysis={"feature_norm": 10.0 + 2 * seed, "alignment": 0.25, "ece": 0.05})
    _write_run(root / "lt" / "am_mixup" / "seed3", method="am_mixup", seed=3)  # unfinished
    for seed in range(2):  # the JPEG copy: never the official numbers
        _write_run(root / "jpeg" / "ce" / f"seed{seed}", dataset="cifar10-jpeg", method="ce", seed=seed,
                   summary=_summary(70.0, [70.0, 70.0]))
    for stage, acc in (("pretrain", 40.0), ("probe", 30.0), ("finetune", 50.0)):  # two-stage layout
        _write_run(root / "c2f" / "mixup" / "seed0" / stage, dataset="cifar100", method="mixup",
                   labels="coarse" if stage == "pretrain" else "fine", summary={"last": {"acc": acc}})
    (root / "lt" / "ce" / "seed0" / "tb").mkdir()  # a run's own subfolder: not a run
    return root


def _rows_by(rows):
    return {(r["sweep"], r["stage"], r["variant"]): r for r in rows}


def test_collect_runs_keys_and_flattening(runs):
    records, unfinished = rep.scan_runs(runs)
    assert len(records) == 3 * 2 + 2 + 3
    assert unfinished == [str(runs / "lt" / "am_mixup" / "seed3")]
    assert len(rep.collect_runs(runs)) == len(records)
    (runs / "lt" / "ce" / "seed7").mkdir()  # started, nothing written yet
    (runs / "c2f" / "mixup" / "seed1" / "probe").mkdir(parents=True)
    assert len(rep.scan_runs(runs)[1]) == 3
    stopped = runs / "lt" / "ce" / "seed8"  # stopped by train.stop_after_epochs: its numbers are no result
    _write_run(stopped, summary={**_summary(10.0, [10.0, 10.0]), "finished": False})
    records, unfinished = rep.scan_runs(runs)
    assert len(records) == 3 * 2 + 2 + 3 and unfinished[-1] == str(stopped)
    rec = next(r for r in records if r["variant"] == "ce" and r["sweep"] == "lt" and r["seed"] == 1)
    assert rec["stage"] == "" and rec["path"] == str(runs / "lt" / "ce" / "seed1")
    assert rec["config"]["data"]["dataset"] == "cifar10"
    m = rec["metrics"]
    assert m["last.acc"] == 72.0 and m["best.groups.few"] == 50.0 and m["best.epoch"] == 3
    assert m["last.per_class_acc"] == [80.0, 60.0]
    assert m["analysis.feature_norm"] == 12.0 and m["analysis.ece"] == 0.05
    assert "finished" not in m and "dataset" not in m  # booleans and strings are not metrics
    stages = sorted(r["stage"] for r in records if r["sweep"] == "c2f")
    assert stages == ["finetune", "pretrain", "probe"]
    assert all(r["variant"] == "mixup" and r["seed"] == 0 for r in records if r["sweep"] == "c2f")


def test_aggregate_mean_std_and_per_class(runs):
    rows = _rows_by(rep.aggregate(rep.collect_runs(runs), ["last.acc", "last.per_class_acc", "analysis.ece"]))
    ce = rows[("lt", "", "ce")]
    assert ce["n"] == 3 and ce["seeds"] == [0, 1, 2]
    assert ce["mean"]["last.acc"] == 72.0
    assert ce["std"]["last.acc"] == 2.0  # sample std, ddof=1
    assert ce["mean"]["last.per_class_acc"] == [80.0, 60.0]
    assert ce["std"]["last.per_class_acc"] == [10.0, 10.0]
    am = rows[("lt", "", "am_mixup")]
    assert am["n"] == 3  # the unfinished seed3 is not counted
    assert am["mean"]["last.per_class_acc"] == [90.0, 50.0]
    assert am["std"]["last.per_class_acc"] == [10.0, 0.0]
    context = (ce["dataset"], ce["imbalance_factor"], ce["method"], ce["model"])
    assert context == ("cifar10", 100.0, "ce", "resnet32")
    probe = rows[("c2f", "probe", "mixup")]
    assert probe["n"] == 1 and probe["mean"]["last.acc"] == 30.0 and probe["std"]["last.acc"] == 0.0
    assert "analysis.ece" not in probe["mean"]
    order = [(r["sweep"], r["stage"]) for r in rep.aggregate(rep.collect_runs(runs), ["last.acc"])]
    assert order.index(("c2f", "pretrain")) < order.index(("c2f", "probe")) < order.index(("c2f", "finetune"))


def test_report_files_tables_and_published(runs, tmp_path, capsys):
    out = tmp_path / "out"
    paths = rep.report(runs, out)
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert paths["markdown"] == out / "report.md" and printed == md
    assert "72.00 ± 2.00" in md  # 70, 72, 74 (percent): sample std
    assert "78.00 ± 3.00" in md
    assert "12.00 ± 2.00" in md  # analysis.feature_norm: not an accuracy, not scaled
    lt = md.split("## lt")[1].split("## ")[0]
    jpeg = md.split("## jpeg")[1].split("## ")[0]
    assert "published (%)" in lt
    ce_line = next(line for line in lt.splitlines() if line.startswith("| ce |"))
    am_line = next(line for line in lt.splitlines() if line.startswith("| am_mixup |"))
    assert "70.36" in ce_line and "70.36" not in am_line
    assert ce_line.index("72.00 ± 2.00") < ce_line.index("70.36")  # beside last.acc
    assert "Cao et al. 2019" in lt and "Table 2" in lt
    assert "published" not in jpeg.split("\n- ")[0] and "70.36" not in jpeg
    assert "cifar10-jpeg is a JPEG re-encode" in jpeg
    assert "## c2f / pretrain" in md and "## c2f / finetune" in md
    assert "| mixup | 1 | 30.00 |" in md  # n = 1: no ± shown
    assert "1 unfinished run(s)" in md and "seed3" in md

    with open(paths["csv"], newline="") as f:
        table = {(r["sweep"], r["stage"], r["variant"]): r for r in csv.DictReader(f)}
    ce = table[("lt", "", "ce")]
    assert float(ce["last.acc.mean"]) == 72.0 and float(ce["last.acc.std"]) == 2.0
    assert float(ce["wall_time_s.mean"]) == 11.0 and float(ce["wall_time_s.std"]) == 1.0
    assert ce["n"] == "3" and ce["seeds"] == "0 1 2"
    assert float(ce["published"]) == 70.36 and "Cao et al. 2019" in ce["published_source"]
    assert table[("lt", "", "am_mixup")]["published"] == ""
    assert table[("jpeg", "", "ce")]["published"] == ""
    assert table[("c2f", "probe", "mixup")]["last.acc.std"] == ""  # one run: blank std
    assert table[("c2f", "probe", "mixup")]["last.groups.few.mean"] == ""

    with open(paths["runs_csv"], newline="") as f:
        per_run = [r for r in csv.DictReader(f) if r["sweep"] == "lt" and r["variant"] == "ce"]
    assert [r["seed"] for r in per_run] == ["0", "1", "2"]
    assert [float(r["last.acc"]) for r in per_run] == [70.0, 72.0, 74.0]

    with open(paths["per_class_csv"], newline="") as f:
        per_class = [r for r in csv.DictReader(f) if r["sweep"] == "lt" and r["variant"] == "ce"]
    assert [float(r["mean"]) for r in per_class] == [80.0, 60.0]

    figs = sorted(p.name for p in paths["figures"])
    assert figs == ["per_class_jpeg.pdf", "per_class_jpeg.png", "per_class_lt.pdf", "per_class_lt.png"]
    for p in paths["figures"]:
        assert p.is_file() and p.stat().st_size > 1000
    assert (out / "figures" / "per_class_lt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"/CreationDate" not in (out / "figures" / "per_class_lt.pdf").read_bytes()  # no diff on a remake
    assert "figures/per_class_lt.png" in md


def test_default_out_dir_is_skipped_on_rerun(runs, capsys):
    first = rep.report(runs, echo=False)
    assert first["markdown"] == runs / "report" / "report.md"
    second = rep.report(runs, echo=False)
    assert second["markdown"].read_text() == first["markdown"].read_text()
    assert capsys.readouterr().out == ""


def test_metrics_override_patterns_and_missing(runs, tmp_path):
    with pytest.raises(rep.ReportError, match="metric.s. nope in no finished run; metrics: .*best.acc"):
        rep.report(runs, tmp_path / "o", ["best.acc", "analysis.*", "nope"], echo=False)
    assert not (tmp_path / "o").exists()
    paths = rep.report(runs, tmp_path / "o", ["best.acc", "analysis.*"], echo=False)
    md = paths["markdown"].read_text()
    lt = md.split("## lt")[1].split("## ")[0]
    header = next(line for line in lt.splitlines() if line.startswith("| variant"))
    assert "best.acc (%)" in header and "analysis.alignment" in header and "analysis.ece" in header
    assert "last.acc" not in header
    assert header.index("best.acc (%)") < header.index("published (%)") < header.index("analysis")
    with open(paths["csv"], newline="") as f:
        fields = csv.DictReader(f).fieldnames
    assert "analysis.feature_norm.mean" in fields and "last.acc.mean" not in fields


def test_accuracy_units_come_from_the_file_never_from_the_values(tmp_path):
    root = tmp_path / "runs"
    for seed, (few, accuracy) in enumerate(((0.0, 0.5), (0.8, 0.7))):
        # summary.json: percent, even when every value lies in [0, 1]; analysis.json: fractions
        _write_run(root / "s" / "ce" / f"seed{seed}", dataset="digits", imbalance_factor=None, seed=seed,
                   summary={"last": {"acc": 70.0 + 2 * seed, "group_acc": {"few": few}, "ece": 0.5}},
                   analysis={"accuracy": accuracy, "ece": 0.25})
    records = rep.collect_runs(root)
    assert [r["metrics"]["analysis.accuracy"] for r in records] == [50.0, 70.0]
    assert [r["metrics"]["analysis.ece"] for r in records] == [0.25, 0.25]  # not an accuracy: as stored
    paths = rep.report(root, tmp_path / "o", ["last.*", "analysis.accuracy"], echo=False)
    md = paths["markdown"].read_text()
    assert "| last.acc (%) | last.ece | last.group_acc.few (%) | analysis.accuracy (%) |" in md
    assert "| 71.00 ± 1.41 | 0.5000 ± 0.0000 | 0.40 ± 0.57 | 60.00 ± 14.14 |" in md
    with open(paths["csv"], newline="") as f:
        (row,) = csv.DictReader(f)
    assert float(row["last.group_acc.few.mean"]) == 0.4 and float(row["analysis.accuracy.mean"]) == 60.0
    assert rep.select_metrics(records) == (["last.acc", "last.group_acc.few"], [])  # the engine's key names
    assert not paths["figures"]


def test_reference_matching_rules():
    refs = rep.load_references()
    assert {(r["dataset"], r["imbalance_factor"], r["value"]) for r in refs} == {
        ("cifar10", 100, 70.36), ("cifar10", 10, 86.39), ("cifar100", 100, 38.32), ("cifar100", 10, 55.70),
        ("cifar10", 100, 77.03), ("cifar10", 100, 79.76)}
    row = {"dataset": "cifar100", "imbalance_factor": 10.0, "method": "ce", "profile": "exp",
           "labels": "fine"}
    assert [r["value"] for r in rep.match_reference(row, refs)] == [55.70]
    assert [r["value"] for r in rep.match_reference({**row, "dataset": "cifar100-lt"}, refs)] == [55.70]
    assert rep._run_context({"loss": {"name": "ldam", "drw_epoch": 160}})["loss"] == "ldam-drw"
    assert rep._run_context({})["loss"] == "ce"  # runs from before the loss section
    ldam_drw = {**row, "dataset": "cifar10-lt", "imbalance_factor": 100.0, "loss": "ldam-drw"}
    assert [r["value"] for r in rep.match_reference(ldam_drw, refs)] == [77.03]
    assert [r["value"] for r in rep.match_reference({**ldam_drw, "loss": "ce"}, refs)] == [70.36]
    remix_drw = {**ldam_drw, "method": "remix", "loss": "ce-drw"}
    assert [r["value"] for r in rep.match_reference(remix_drw, refs)] == [79.76]
    for other in ({"dataset": "cifar10-jpeg"}, {"dataset": "cifar10-jpeg-lt"}, {"method": "mixup"},
                  {"imbalance_factor": 50.0}, {"profile": "step"}, {"labels": "coarse"}, {"dataset": None},
                  {"loss": "ldam-drw"},
                  # a transfer stage (a probe records mixing: ce), runs that disagree (None: mixed)
                  {"stage": "probe"}, {"stage": "finetune"}, {"loss": None}, {"profile": None},
                  {"labels": None},
                  # trained on a subset of the training set, or runs that disagree on it
                  {"train_per_class": 20}, {"train_per_class": None}):
        assert rep.match_reference({**row, **other}, refs) == []
    assert rep.match_reference({**row, "stage": ""}, refs) != []
    assert rep.match_reference({**row, "train_per_class": 0}, refs) != []
    assert rep._run_context({"data": {"train_per_class": 20}})["train_per_class"] == 20
    small_cnn = rep._other_backbone({"model": "resnet32"}, {**row, "model": "small_cnn"})
    assert small_cnn == " (published with resnet32, this row small_cnn)"
    assert rep._other_backbone({"model": "resnet32"}, {**row, "model": "resnet32"}) == ""


def _cli(argv):
    parser = argparse.ArgumentParser(prog="ammix report")
    rep.add_arguments(parser)
    return rep.run(parser.parse_args(argv))


def test_cli_errors_and_success(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli([str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ammix report: no finished runs") and err.count("\n") == 1
    assert _cli([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err and err.count("\n") == 1
    only_unfinished = tmp_path / "u"
    _write_run(only_unfinished / "s" / "ce" / "seed0")
    assert _cli([str(only_unfinished)]) == 2
    assert "(1 unfinished)" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    assert _cli([str(runs), "--out", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err == f"ammix report: --out {tmp_path / 'afile'} is a file; give a folder\n"
    assert _cli([str(runs), "--out", str(tmp_path / "cli"), "--metrics", "last.acc"]) == 0
    captured = capsys.readouterr()
    assert "72.00 ± 2.00" in captured.out and (tmp_path / "cli" / "report.csv").is_file()


def _record(sweep, variant, seed, metrics):
    return {"sweep": sweep, "variant": variant, "stage": "", "seed": seed, "metrics": metrics}


def test_paired_differences_match_seeds():
    records = [_record("s", "ce", 0, {"a": 70.0, "u": 1.0}), _record("s", "ce", 1, {"a": 72.0}),
               _record("s", "ce", 2, {"a": 74.0}), _record("s", "am", 0, {"a": 75.0, "u": 1.5}),
               _record("s", "am", 1, {"a": 78.0}), _record("s", "am", 3, {"a": 90.0}),  # no ce seed 3
               _record("t", "am", 0, {"a": 1.0})]  # a sweep without the baseline
    assert rep.paired_differences(records, "ce", ["a", "u", "nope"]) == [
        {"sweep": "s", "stage": "", "baseline": "ce", "variant": "am", "metric": "a",
         "mean": 5.5, "std": 0.7071067811865476, "pairs": 2, "seeds": [0, 1], "differences": [5.0, 6.0]},
        {"sweep": "s", "stage": "", "baseline": "ce", "variant": "am", "metric": "u",
         "mean": 0.5, "std": 0.0, "pairs": 1, "seeds": [0], "differences": [0.5]},
    ]
    assert rep.paired_differences(records, "am", ["a"])[0]["mean"] == -5.5


def test_report_paired_table_and_csv(runs, tmp_path, capsys):
    paths = rep.report(runs, tmp_path / "o", ["last.acc", "wall_time_s"], baselines=["ce"], echo=False)
    md = paths["markdown"].read_text()
    lt = md.split("## lt: paired differences to ce")[1].split("## ")[0]
    assert "| variant | pairs | last.acc (pp) | wall_time_s |" in lt
    assert "| am_mixup | 3 | 6.00 ± 1.00 | 0.00 ± 0.00 |" in lt  # (75, 78, 81) - (70, 72, 74)
    assert md.count("paired differences to ce") == 1  # jpeg holds only ce, c2f no ce: nothing to pair
    with open(paths["paired_csv"], newline="") as f:
        (acc, wall) = csv.DictReader(f)
    assert (acc["sweep"], acc["variant"], acc["metric"], acc["pairs"]) == ("lt", "am_mixup", "last.acc", "3")
    assert float(acc["mean"]) == 6.0 and float(acc["std"]) == 1.0 and float(wall["mean"]) == 0.0
    assert (acc["seeds"], acc["differences"]) == ("0 1 2", "5.0 6.0 7.0")
    assert _cli([str(runs), "--out", str(tmp_path / "cli"), "--baseline", "am_mixup"]) == 0
    assert "## lt: paired differences to am_mixup" in capsys.readouterr().out
    assert _cli([str(runs), "--baseline", "erm"]) == 2
    err = capsys.readouterr().err
    assert err == "ammix report: baseline variant(s) erm in no finished run; variants: am_mixup, ce, mixup\n"


def test_every_column_is_defined_in_the_report(runs, tmp_path, capsys):
    for key in (*REPORT_KEYS, *HEAD_KEYS, *LOGIT_KEYS):  # every key of analysis.json
        assert metric_definition(f"analysis.{key}") is not None
        assert metric_definition(f"analysis.fine_{key}").endswith(
            "; against the fine labels of a run trained on the coarse ones; analysis.json, the last "
            "checkpoint")
    assert all(metric_definition(names[0]) for names in rep.PREFERRED_METRICS)
    assert metric_definition("analysis.margin_ratio") == (
        "smallest / largest class margin (see margin_min); 1 = all equal, negative when some centroid is "
        "misclassified, undefined (nan) when every one is; higher = more even relative to the largest "
        "margin (1 - ratio = the margins' range / the largest), not to the feature scale; "
        "analysis.json, the last checkpoint")
    md = rep.report(runs, tmp_path / "o", ["last.acc", "wall_time_s", "best.epoch", "last.loss"],
                    echo=False)["markdown"].read_text()
    legend = md.split("## Metrics\n\n")[1].split("\n\n")[0]
    assert legend.splitlines() == [
        "- `last.acc`: top-1 accuracy on the test set (%); summary.json, last evaluation.",
        "- `wall_time_s`: wall-clock time of the training in seconds, summed over resumed sessions.",
        "- `best.epoch`: the epoch of that evaluation; summary.json, the evaluation with the best "
        "train.best_metric, chosen on the test split itself (optimistic: not a held-out number).",
        "- `last.loss`: as the run recorded it (no definition in ammix.analysis.definitions).",
    ]
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    help_text = capsys.readouterr().out
    assert ":func:" not in help_text and "paired.csv" in help_text and "--baseline VARIANT" in help_text


def test_kept_run_files_rebuild_the_report_and_join_later_runs(runs, tmp_path):
    (runs / "lt" / "ce" / "seed0" / "last.pt").write_bytes(b"checkpoint")
    out = tmp_path / "kept"
    assert _cli([str(runs), "--out", str(out), "--keep-runs"]) == 0
    kept = out / "runs"
    kept_files = sorted(p.name for p in (kept / "lt" / "ce" / "seed0").iterdir())
    assert kept_files == ["analysis.json", "config.yaml", "summary.json"]  # no checkpoint
    assert (kept / "c2f" / "mixup" / "seed0" / "probe" / "summary.json").is_file()
    assert not (kept / "lt" / "am_mixup" / "seed3").exists()  # unfinished: not reported, not kept
    # From the kept files alone (the runs folder gone), the same runs.csv, and reporting them in place
    # keeps them as they are.
    first = (out / "runs.csv").read_text()
    rebuilt = rep.report(kept, out, keep_runs=True, echo=False)
    assert rebuilt["runs_csv"].read_text() == first
    # A run made later, copied beside the kept ones, joins the tables and the seed-matched pairs.
    _write_run(kept / "lt" / "mixup" / "seed0", method="mixup", summary=_summary(71.0, [70.0, 72.0]))
    rep.report(kept, out, baselines=["mixup"], echo=False)
    paired = list(csv.DictReader((out / "paired.csv").open()))
    assert {(row["variant"], row["pairs"]) for row in paired if row["sweep"] == "lt"} == {("ce", "1"),
                                                                                          ("am_mixup", "1")}


def test_an_earlier_report_inside_the_runs_folder_is_not_scanned_again(runs, tmp_path):
    first = rep.report(runs, tmp_path / "outside", echo=False)["runs_csv"].read_text()
    rep.report(runs, runs / "earlier", keep_runs=True, echo=False)  # its copies of every run inside runs/
    again = rep.report(runs, echo=False)["runs_csv"]
    assert again.read_text() == first  # not every run twice, the copies as a sweep "earlier/runs/..."
    # A report written into a sweep's own folder leaves that sweep's runs in, then and later.
    assert rep.report(runs, runs / "lt", echo=False)["runs_csv"].read_text() == first
    assert rep.report(runs, echo=False)["runs_csv"].read_text() == first
    # The kept copies are still a runs folder of their own.
    assert rep.report(runs / "earlier" / "runs", tmp_path / "o", echo=False)["runs_csv"].is_file()


def test_variants_filter_keeps_the_matching_runs_and_refuses_a_pattern_that_matches_none(runs, tmp_path,
                                                                                         capsys):
    paths = rep.report(runs, tmp_path / "o", ["last.acc"], variants=["am_*"], echo=False)
    kept = {(row["sweep"], row["variant"]) for row in csv.DictReader(paths["runs_csv"].open())}
    assert kept == {("lt", "am_mixup")}
    markdown = paths["markdown"].read_text()
    assert "3 finished run(s)" in markdown and "1 unfinished run(s)" in markdown  # am_mixup/seed3
    ce_only = rep.report(runs, tmp_path / "c", ["last.acc"], variants=["ce"], echo=False)
    assert "unfinished" not in ce_only["markdown"].read_text()  # another variant's unfinished run: not listed
    assert _cli([str(runs), "--out", str(tmp_path / "cli"), "--variants", "ce", "mixup"]) == 0
    rows = list(csv.DictReader((tmp_path / "cli" / "runs.csv").open()))
    assert sorted({row["variant"] for row in rows}) == ["ce", "mixup"] and len(rows) == 3 + 2 + 3
    capsys.readouterr()
    assert _cli([str(runs), "--variants", "ce", "*-200ep"]) == 2
    assert capsys.readouterr().err == (
        "ammix report: --variants *-200ep match(es) no finished run; variants: am_mixup, ce, mixup\n")


def test_pair_runs_csv_pairs_each_variant_with_its_own_base_seed_by_seed(tmp_path):
    """benchmarks/pair_runs_csv.py: runs of two runs.csv files, paired by variant and seed."""
    spec = importlib.util.spec_from_file_location(
        "pair_runs_csv", Path(__file__).parents[1] / "benchmarks" / "pair_runs_csv.py")
    pair_runs_csv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pair_runs_csv)

    def write(name, rows):
        path = tmp_path / name
        path.write_text("sweep,stage,variant,seed,last.acc\n" + "".join(f"s,{r}\n" for r in rows))
        return path

    new = write("new.csv", ["finetune,ce,0,91.0", "finetune,ce,1,92.0", "finetune,am,0,90.0",
                            "pretrain,ce,0,1.0"])
    base = write("base.csv", ["finetune,ce,0,90.0", "finetune,ce,1,90.5", "finetune,ce,2,80.0",
                              "finetune,am,1,89.0", ",scratch,0,90.5", ",scratch,1,91.5"])
    pairs = pair_runs_csv.pair(pair_runs_csv.read_runs(new, "finetune", "last.acc"),
                               pair_runs_csv.read_runs(base, "finetune", "last.acc"), "last.acc")
    # ce: seeds 0 and 1 pair (+1.0, +1.5); am shares no seed with its base, so it has no row.
    assert pairs == [{"variant": "ce", "mean": 1.25, "std": pytest.approx(0.5 ** 0.5 / 2), "pairs": 2,
                      "seeds": [0, 1], "differences": [1.0, 1.5]}]
    scratch = pair_runs_csv.pair(pair_runs_csv.read_runs(new, "finetune", "last.acc"),
                                 pair_runs_csv.read_runs(base, "", "last.acc"), "last.acc",
                                 bases={"ce": "scratch", "am": "scratch"})
    assert scratch == [{"variant": "am", "mean": -0.5, "std": 0.0, "pairs": 1, "seeds": [0],
                        "differences": [-0.5]},
                       {"variant": "ce", "mean": 0.5, "std": 0.0, "pairs": 2, "seeds": [0, 1],
                        "differences": [0.5, 0.5]}]
    # Named pairs: only the variants named, each with its own base (am's own base is not used).
    named = pair_runs_csv.pair(pair_runs_csv.read_runs(new, "finetune", "last.acc"),
                               pair_runs_csv.read_runs(base, "finetune", "last.acc"), "last.acc",
                               bases={"am": "ce"})
    assert named == [{"variant": "am", "mean": 0.0, "std": 0.0, "pairs": 1, "seeds": [0],
                      "differences": [0.0]}]


def test_device_text_names_where_and_in_which_precision():
    assert rep.device_text({"device": "cpu", "autocast": None}) == "cpu, float32"
    assert rep.device_text({"device": "cpu", "autocast": "bfloat16"}) == "cpu, bfloat16"
    assert rep.device_text({"device": "cuda:1 (NVIDIA H100 80GB HBM3)", "autocast": "bfloat16"}) == (
        "cuda (NVIDIA H100 80GB HBM3), bfloat16")
    assert rep.device_text({"last": {"acc": 1.0}}) == "not recorded"


def test_a_table_that_mixes_precisions_says_so(tmp_path):
    # A bf16 CE against a float32 AM-mixup: the device is a column of that table and a note says its
    # differences include precision; report.csv and runs.csv carry each run's device.
    root = tmp_path / "runs"
    for variant, autocast in (("ce", "bfloat16"), ("am_mixup", None)):
        for seed in range(2):
            _write_run(root / "lt" / variant / f"seed{seed}", method=variant, seed=seed,
                       summary={**_summary(70.0 + seed, [70.0, 70.0]), "device": "cpu", "autocast": autocast})
    _write_run(root / "same" / "ce" / "seed0", summary={**_summary(70.0, [70.0, 70.0]), "device": "cpu"})
    paths = rep.report(root, tmp_path / "out", metrics=["last.acc"], echo=False)
    text = paths["markdown"].read_text()
    lt, same = text.split("## same")
    assert "| variant | method | device | n | last.acc (%) |" in lt
    assert "| am_mixup | am_mixup | cpu, float32 | 2 |" in lt and "| ce | ce | cpu, bfloat16 | 2 |" in lt
    assert "different devices or in different precisions" in lt
    assert "device: cpu, float32" in same and "different devices" not in same
    table = {row["variant"]: row["device"] for row in csv.DictReader(paths["csv"].open())
             if row["sweep"] == "lt"}
    assert table == {"ce": "cpu, bfloat16", "am_mixup": "cpu, float32"}
    runs_csv = list(csv.DictReader(paths["runs_csv"].open()))
    assert [(r["variant"], r["seed"], r["device"]) for r in runs_csv if r["sweep"] == "lt"] == [
        ("am_mixup", "0", "cpu, float32"), ("am_mixup", "1", "cpu, float32"),
        ("ce", "0", "cpu, bfloat16"), ("ce", "1", "cpu, bfloat16")]


def test_a_row_whose_runs_were_made_with_other_configs_says_so(tmp_path, capsys):
    # One seed trained twice as long, one in bf16: the row's mean mixes experiments, and the report
    # names each such run. Fine-tuning runs that start from their own seed's pre-training do not count.
    root = tmp_path / "runs"

    def write(folder, seed, autocast=None, **config):
        _write_run(folder, seed=seed, summary={**_summary(70.0, [70.0, 70.0]), "device": "cpu",
                                               "autocast": autocast})
        saved = yaml.safe_load((folder / "config.yaml").read_text())
        for section, values in config.items():
            saved[section].update(values)
        (folder / "config.yaml").write_text(yaml.safe_dump(saved))

    write(root / "lt" / "ce" / "seed0", 0)
    write(root / "lt" / "ce" / "seed1", 1, train={"epochs": 4})
    write(root / "lt" / "ce" / "seed2", 2, autocast="bfloat16")
    write(root / "lt" / "ce" / "seed3", 3, train={"amp": "off"})  # float32 as seed 0's auto: one experiment
    for seed in range(2):
        write(root / "c2f" / "ce" / f"seed{seed}" / "finetune", seed, model={"init_from": f"/r/seed{seed}"})
        # precision not recorded: train.amp is what tells
        _write_run(root / "old" / "ce" / f"seed{seed}", seed=seed, summary=_summary(70.0, [70.0, 70.0]))
    saved = yaml.safe_load((root / "old" / "ce" / "seed1" / "config.yaml").read_text())
    saved["train"]["amp"] = "bf16"
    (root / "old" / "ce" / "seed1" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert [line.split(" (")[0] for line in rep.config_disagreements(rep.collect_runs(root))] == [
        "lt/ce: seed 1 was made with another config than seed 0",
        "lt/ce: seed 2 was made with another config than seed 0",
        "old/ce: seed 1 was made with another config than seed 0"]
    md = rep.report(root, tmp_path / "out", metrics=["last.acc"])["markdown"].read_text()
    assert capsys.readouterr().out == md  # printed too
    assert ("- **warning**, a row mixes configs: lt/ce: seed 1 was made with another config than seed 0 "
            "(train.epochs: 2 -> 4).") in md
    assert ("lt/ce: seed 2 was made with another config than seed 0 "
            "(device: cpu, float32 -> cpu, bfloat16)") in md
    assert "c2f" not in md.split("## Notes")[1]


def test_a_nan_metric_counts_as_missing_in_the_row_the_pairs_and_the_csv(runs, tmp_path):
    """nan (margin_ratio when every centroid is misclassified) turned a whole row and its pairs into nan,
    the pair count still 3; now the row is over the runs that have a number, as for a missing value."""
    analysis = runs / "lt" / "ce" / "seed2" / "analysis.json"
    analysis.write_text(analysis.read_text().replace('"feature_norm": 14.0', '"feature_norm": NaN'))
    paths = rep.report(runs, tmp_path / "out", ["analysis.feature_norm"], baselines=["ce"])
    assert "| ce | ce | 3 | 11.00 ± 1.41 [2/3] |" in paths["markdown"].read_text()  # seeds 0, 1: 10, 12
    with open(paths["csv"], newline="") as f:
        ce = next(row for row in csv.DictReader(f) if row["sweep"] == "lt" and row["variant"] == "ce")
    assert ce["analysis.feature_norm.mean"] == "11.0" and ce["fewer_runs"] == "analysis.feature_norm 2/3"
    with open(paths["paired_csv"], newline="") as f:
        pair = next(row for row in csv.DictReader(f) if row["metric"] == "analysis.feature_norm")
    assert pair["pairs"] == "2"


def test_a_seed_folder_holding_another_seeds_run_is_named(runs, tmp_path):
    config = runs / "lt" / "ce" / "seed1" / "config.yaml"
    config.write_text(config.read_text().replace("seed: 1", "seed: 7"))
    text = rep.report(runs, tmp_path / "out")["markdown"].read_text()
    assert (f"**warning**, a seed folder holds another seed: {runs / 'lt' / 'ce' / 'seed1'} holds a run of "
            "seed 7, reported as seed 1.") in text
    assert text.count("a seed folder holds another seed") == 1


def test_one_seed_in_two_runs_of_a_row_is_refused(runs, tmp_path):
    """seed01 beside seed1 (or a run folder with seed folders in it) made the row's n 4 with seed 1
    twice, and paired.csv kept only one of the two: the table and its pairs disagreed, silently."""
    _write_run(runs / "lt" / "ce" / "seed01", seed=1, summary=_summary(90.0, [90.0, 90.0]))
    with pytest.raises(rep.ReportError) as err:
        rep.report(runs, tmp_path / "out", baselines=["ce"])
    assert str(err.value) == (
        f"one seed in two runs of a row (seed 1 of lt/ce: {runs / 'lt' / 'ce' / 'seed01'}, "
        f"{runs / 'lt' / 'ce' / 'seed1'}): a row takes one run a seed; move the others out of the runs "
        "folder")
    assert not (tmp_path / "out").exists()


def test_a_transfer_stage_whose_pre_training_is_being_redone_is_left_out(tmp_path):
    """A probe built on a pre-training that is now unfinished (trained again, --fresh) was reported as
    if that pre-training were still its own: only a finished one with another checkpoint was caught."""
    seed0 = tmp_path / "runs" / "c2f" / "am" / "seed0"
    _write_run(seed0 / "pretrain", labels="coarse",
               summary={"last": {"acc": 40.0}, "finished": True, "checkpoint_sha256": "aa"})
    _write_run(seed0 / "probe", summary={"last": {"acc": 30.0}, "finished": True, "init_from_sha256": "aa"})
    assert "## c2f / probe" in rep.report(tmp_path / "runs", tmp_path / "out")["markdown"].read_text()
    _write_run(seed0 / "pretrain", labels="coarse", summary={"last": {"acc": 20.0}, "finished": False})
    text = rep.report(tmp_path / "runs", tmp_path / "out")["markdown"].read_text()
    assert "## c2f / probe" not in text
    assert ("1 transfer-stage run(s) left out, built on another pre-training than the one in their seed "
            "folder (run the sweep again to redo them): c2f/am/seed0/probe.") in text


def test_a_small_nonzero_value_is_never_printed_as_zero(tmp_path):
    """A column's decimals follow its largest mean: a probe's gradient of 1e-6 beside another's 2e-3
    printed 0.0000, as if the fit had reached zero."""
    root = tmp_path / "runs"
    for variant, grad in (("ce", 2e-3), ("am", 1e-6)):
        _write_run(root / "s" / variant / "seed0", method=variant,
                   summary={"last": {"acc": 70.0, "ece": grad}})
    md = rep.report(root, tmp_path / "o", ["last.ece"], echo=False)["markdown"].read_text()
    assert "| am | 1 | 1.00e-06 |" in md and "| ce | 1 | 2.00e-03 |" in md
    _write_run(root / "s" / "am" / "seed0", method="am", summary={"last": {"acc": 70.0, "ece": 1e-3}})
    md = rep.report(root, tmp_path / "o", ["last.ece"], echo=False)["markdown"].read_text()
    assert "| am | 1 | 0.0010 |" in md and "| ce | 1 | 0.0020 |" in md


@pytest.mark.parametrize("value,decimals,text", [
    (95.675, 2, "95.68"),  # the float of 95.675 lies just below it: plain formatting shows 95.67
    (95.55 - 95.525, 2, "0.03"),  # 0.025, computed as 0.024999999999991473
    (-1.125, 2, "-1.13"),  # ties away from zero, as the docs round
    (0.0649, 3, "0.065"), (3.14159, 0, "3"), (-0.001, 2, "-0.00"),
    (float("nan"), 2, "nan"), (2e-6, rep.SCIENTIFIC, "2.00e-06"),
    (np.float64(95.675), 2, "95.68"), (1e30, 0, "1000000000000000019884624838656"),
])
def test_table_numbers_round_half_up_on_their_decimal_value(value, decimals, text):
    """report.md showed 95.67 where docs/results.md, from the same runs, shows 95.68: the float of
    95.675 lies just below it."""
    assert rep.fixed_decimals(value, decimals) == text
