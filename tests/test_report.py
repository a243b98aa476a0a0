"""`ammix report`: collection of run folders, aggregation over seeds, tables, references, figures, CLI."""

from __future__ import annotations

import argparse
import csv
import json

import pytest
import yaml

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


def _summary(acc, per_class, few=0.5, wall=10.0):
    groups = {"many": 0.9, "medium": 0.6, "few": few}
    return {"last": {"acc": acc, "balanced_acc": acc - 0.1, "groups": groups,
                     "per_class_acc": per_class, "loss": 1.0},
            "best": {"acc": acc + 0.01, "epoch": 3, "groups": {"few": few}},
            "wall_time_s": wall, "finished": True, "dataset": "cifar10"}


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    accs = {"ce": [0.70, 0.72, 0.74], "am_mixup": [0.75, 0.78, 0.81]}
    per_class = {"ce": [[0.9, 0.5], [0.8, 0.6], [0.7, 0.7]], "am_mixup": [[1.0, 0.5], [0.9, 0.5], [0.8, 0.5]]}
    for variant in ("ce", "am_mixup"):
        for seed in range(3):
            _write_run(root / "lt" / variant / f"seed{seed}", method=variant, seed=seed,
                       summary=_summary(accs[variant][seed], per_class[variant][seed], wall=10.0 + seed),
                       analysis={"feature_norm": 10.0 + 2 * seed, "alignment": 0.25, "ece": 0.05})
    _write_run(root / "lt" / "am_mixup" / "seed3", method="am_mixup", seed=3)  # unfinished
    for seed in range(2):  # the JPEG copy: never the official numbers
        _write_run(root / "jpeg" / "ce" / f"seed{seed}", dataset="cifar10-jpeg", method="ce", seed=seed,
                   summary=_summary(0.70, [0.7, 0.7]))
    for stage, acc in (("pretrain", 0.40), ("probe", 0.30), ("finetune", 0.50)):  # two-stage layout
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
    rec = next(r for r in records if r["variant"] == "ce" and r["sweep"] == "lt" and r["seed"] == 1)
    assert rec["stage"] == "" and rec["path"] == str(runs / "lt" / "ce" / "seed1")
    assert rec["config"]["data"]["dataset"] == "cifar10"
    m = rec["metrics"]
    assert m["last.acc"] == 0.72 and m["best.groups.few"] == 0.5 and m["best.epoch"] == 3
    assert m["last.per_class_acc"] == [0.8, 0.6]
    assert m["analysis.feature_norm"] == 12.0 and m["analysis.ece"] == 0.05
    assert "finished" not in m and "dataset" not in m  # booleans and strings are not metrics
    stages = sorted(r["stage"] for r in records if r["sweep"] == "c2f")
    assert stages == ["finetune", "pretrain", "probe"]
    assert all(r["variant"] == "mixup" and r["seed"] == 0 for r in records if r["sweep"] == "c2f")


def test_aggregate_mean_std_and_per_class(runs):
    rows = _rows_by(rep.aggregate(rep.collect_runs(runs), ["last.acc", "last.per_class_acc", "analysis.ece"]))
    ce = rows[("lt", "", "ce")]
    assert ce["n"] == 3 and ce["seeds"] == [0, 1, 2]
    assert ce["mean"]["last.acc"] == pytest.approx(0.72, abs=1e-12)
    assert ce["std"]["last.acc"] == pytest.approx(0.02, abs=1e-12)  # sample std, ddof=1
    assert ce["mean"]["last.per_class_acc"] == pytest.approx([0.8, 0.6], abs=1e-12)
    assert ce["std"]["last.per_class_acc"] == pytest.approx([0.1, 0.1], abs=1e-12)
    am = rows[("lt", "", "am_mixup")]
    assert am["n"] == 3  # the unfinished seed3 is not counted
    assert am["mean"]["last.per_class_acc"] == pytest.approx([0.9, 0.5], abs=1e-12)
    assert am["std"]["last.per_class_acc"] == pytest.approx([0.1, 0.0], abs=1e-12)
    context = (ce["dataset"], ce["imbalance_factor"], ce["method"], ce["model"])
    assert context == ("cifar10", 100.0, "ce", "resnet32")
    probe = rows[("c2f", "probe", "mixup")]
    assert probe["n"] == 1 and probe["mean"]["last.acc"] == 0.30 and probe["std"]["last.acc"] == 0.0
    assert "analysis.ece" not in probe["mean"]
    order = [(r["sweep"], r["stage"]) for r in rep.aggregate(rep.collect_runs(runs), ["last.acc"])]
    assert order.index(("c2f", "pretrain")) < order.index(("c2f", "probe")) < order.index(("c2f", "finetune"))


def test_report_files_tables_and_published(runs, tmp_path, capsys):
    out = tmp_path / "out"
    paths = rep.report(runs, out)
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert paths["markdown"] == out / "report.md" and printed == md
    assert "72.00 ± 2.00" in md  # 0.70, 0.72, 0.74 -> percent, sample std
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
    assert float(ce["last.acc.mean"]) == pytest.approx(0.72, abs=1e-15)
    assert float(ce["last.acc.std"]) == pytest.approx(0.02, abs=1e-15)
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
    assert [float(r["last.acc"]) for r in per_run] == pytest.approx([0.70, 0.72, 0.74], abs=1e-15)

    with open(paths["per_class_csv"], newline="") as f:
        per_class = [r for r in csv.DictReader(f) if r["sweep"] == "lt" and r["variant"] == "ce"]
    assert [float(r["mean"]) for r in per_class] == pytest.approx([0.8, 0.6], abs=1e-12)

    figs = sorted(p.name for p in paths["figures"])
    assert figs == ["per_class_jpeg.pdf", "per_class_jpeg.png", "per_class_lt.pdf", "per_class_lt.png"]
    for p in paths["figures"]:
        assert p.is_file() and p.stat().st_size > 1000
    assert (out / "figures" / "per_class_lt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "figures/per_class_lt.png" in md


def test_default_out_dir_is_skipped_on_rerun(runs, capsys):
    first = rep.report(runs, echo=False)
    assert first["markdown"] == runs / "report" / "report.md"
    second = rep.report(runs, echo=False)
    assert second["markdown"].read_text() == first["markdown"].read_text()
    assert capsys.readouterr().out == ""


def test_metrics_override_patterns_and_missing(runs, tmp_path):
    paths = rep.report(runs, tmp_path / "o", ["best.acc", "analysis.*", "nope"], echo=False)
    md = paths["markdown"].read_text()
    lt = md.split("## lt")[1].split("## ")[0]
    header = next(line for line in lt.splitlines() if line.startswith("| variant"))
    assert "best.acc (%)" in header and "analysis.alignment" in header and "analysis.ece" in header
    assert "last.acc" not in header
    assert header.index("best.acc (%)") < header.index("published (%)") < header.index("analysis")
    assert "found in no run: nope" in md
    with open(paths["csv"], newline="") as f:
        fields = csv.DictReader(f).fieldnames
    assert "analysis.feature_norm.mean" in fields and "last.acc.mean" not in fields


def test_percent_detection_is_per_column(tmp_path):
    root = tmp_path / "runs"
    for seed, acc in enumerate((70.0, 72.0)):  # already in percent: shown as stored
        _write_run(root / "s" / "ce" / f"seed{seed}", dataset="digits", imbalance_factor=None, seed=seed,
                   summary={"last": {"acc": acc, "ece": 0.5}})
    md = rep.report(root, tmp_path / "o", echo=False)["markdown"].read_text()
    assert "71.00 ± 1.41" in md and "7100" not in md
    assert "| last.acc |" in md  # no "(%)": not a fraction
    assert rep.select_metrics(rep.collect_runs(root)) == (["last.acc"], [])
    assert rep.select_metrics(rep.collect_runs(root), ["last.*"]) == (["last.acc", "last.ece"], [])
    assert not rep.report(root, tmp_path / "o", echo=False)["figures"]


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
                  {"loss": "ldam-drw"}):
        assert rep.match_reference({**row, **other}, refs) == []


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
    assert _cli([str(runs), "--out", str(tmp_path / "cli"), "--metrics", "last.acc"]) == 0
    captured = capsys.readouterr()
    assert "72.00 ± 2.00" in captured.out and (tmp_path / "cli" / "report.csv").is_file()
