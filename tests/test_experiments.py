"""The protocols end to end on tiny synthetic data: sweeps (train, coarse-to-fine), toy, demo, report."""

import json
from pathlib import Path

import pytest
import yaml
from common import tiny

from ammix.cli import main
from ammix.engine import load_config, train
from ammix.experiments import toy
from ammix.experiments.analyze import analyze_run
from ammix.experiments.sweep import SweepError, load_sweep, override_args, plan_runs, with_method_section
from ammix.experiments.toy import run_toy
from ammix.mixing import MIXERS

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
TINY = ["train.epochs=1", "data.samples_per_class=16", "data.test_samples_per_class=8"]


def write_sweep(tmp_path, **spec):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "config": str(SMOKE), **spec}))
    return path


def test_a_variant_naming_a_method_replaces_the_mixing_section():
    assert with_method_section({"mixing.method": "ce", "seed": 1}) == {"mixing": {"method": "ce"}, "seed": 1}
    same = {"mixing.gamma": 0.9}
    assert with_method_section(same) is same
    words = override_args({"mixing": {"method": "ce"}, "optim.lr": 0.1})
    assert words == ["mixing={method: ce}", "optim.lr=0.1"]


def test_coarse_to_fine_plan(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, protocol="coarse_to_fine", seeds=[3], probe={"train.epochs": 2},
                                   variants={"am": {"mixing.method": "am_mixup", "mixing.gamma": 0.5}}))
    pretrain, probe, finetune = plan_runs(sweep, tmp_path / "runs")
    assert pretrain.run_dir == tmp_path / "runs" / "s" / "am" / "seed3" / "pretrain"
    assert pretrain.overrides == {"mixing": {"method": "am_mixup", "gamma": 0.5}, "data.labels": "coarse",
                                  "seed": 3}
    assert probe.after is pretrain and finetune.after is pretrain
    assert probe.overrides["mixing"] == {"method": "ce"} and probe.overrides["train.freeze_backbone"] is True
    assert probe.overrides["train.epochs"] == 2 and probe.overrides["data.labels"] == "fine"
    assert finetune.overrides["model.init_from"] == str(pretrain.run_dir)
    assert "train.freeze_backbone" not in finetune.overrides


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"protocol": "toy", "variants": {"a": {}}}, "protocol 'toy' is not one of train, coarse_to_fine"),
        ({"variants": {"a": {}}, "seeds": [0], "colour": 1}, "unknown key(s) ['colour']"),
        ({"variants": {}}, "no variants"),
        ({"config": "missing.yaml", "variants": {"a": {}}}, "does not exist"),
    ],
)
def test_sweep_file_errors(tmp_path, spec, fragment):
    with pytest.raises(SweepError) as err:
        load_sweep(write_sweep(tmp_path, **spec))
    assert fragment in str(err.value)


def test_sweep_cli_error_is_one_line(tmp_path, capsys):
    assert main(["sweep", str(write_sweep(tmp_path, variants={})), "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_coarse_to_fine_sweep_then_report(tmp_path, capsys):
    spec = write_sweep(tmp_path, protocol="coarse_to_fine", seeds=[0],
                       overrides={k: yaml.safe_load(v) for k, v in (o.split("=") for o in TINY)},
                       variants={"ce": {"mixing.method": "ce"}, "am": {"mixing.method": "am_mixup"}})
    runs = tmp_path / "runs"
    assert main(["sweep", str(spec), "--runs-dir", str(runs), "--jobs", "2"]) == 0
    for variant in ("ce", "am"):
        for stage in ("pretrain", "probe", "finetune"):
            folder = runs / "s" / variant / "seed0" / stage
            assert (folder / "summary.json").is_file() and (folder / "analysis.json").is_file()
    pretrain = json.loads((runs / "s" / "am" / "seed0" / "pretrain" / "analysis.json").read_text())
    assert "fine_alignment" in pretrain  # coarse training, measured against the fine classes too
    # A second call finds everything finished and runs nothing, but analyses a finished run that a
    # stopped sweep left without its analysis.
    (runs / "s" / "ce" / "seed0" / "probe" / "analysis.json").unlink()
    assert main(["sweep", str(spec), "--runs-dir", str(runs)]) == 0
    assert "6 finished, 0 to run" in capsys.readouterr().out
    assert (runs / "s" / "ce" / "seed0" / "probe" / "analysis.json").is_file()
    assert main(["report", str(runs)]) == 0
    report = (runs / "report" / "report.md").read_text()
    assert "s / probe" in report and "s / finetune" in report


@pytest.mark.slow
def test_toy_protocol_writes_figures_and_table(tmp_path, monkeypatch):
    spec = {
        "config": {**yaml.safe_load(SMOKE.read_text()), "model": {"name": "small_cnn", "feature_dim": 2}},
        "variants": {"ce": {"mixing.method": "ce"}, "am_mixup": {"mixing.method": "am_mixup"}},
        "settings": {"balanced": {}, "coarse-to-fine": {"data.labels": "coarse"}},
    }
    titles = []
    real_figure = toy.feature_map_figure
    monkeypatch.setattr(
        toy, "feature_map_figure", lambda *a, **k: titles.append(k["title"]) or real_figure(*a, **k)
    )
    rows = run_toy(spec, tmp_path, TINY)
    assert titles == ["synthetic, balanced", "synthetic-coarse, coarse-to-fine (data.labels=coarse)"]
    assert [(r["setting"], r["method"]) for r in rows] == [
        ("balanced", "ce"), ("balanced", "am_mixup"), ("coarse-to-fine", "ce"), ("coarse-to-fine", "am_mixup")
    ]
    for setting in ("balanced", "coarse-to-fine"):
        assert (tmp_path / f"{setting}.png").stat().st_size > 0 and (tmp_path / f"{setting}.pdf").is_file()
    assert "| balanced | am_mixup |" in (tmp_path / "toy.md").read_text()


@pytest.mark.slow
def test_demo_quick_runs_offline(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| long-tailed | am_mixup |" in out
    assert (tmp_path / "long-tailed.png").is_file() and (tmp_path / "balanced.pdf").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("method", list(MIXERS))
def test_long_tailed_protocol_with_every_method(tmp_path, method):
    config = load_config(SMOKE, tiny(2) + ["data.imbalance_factor=4", f"mixing={{method: {method}}}"])
    summary = train(config, tmp_path)
    assert set(summary["last"]["group_acc"]) == {"many", "medium", "few"}
    report = analyze_run(tmp_path)
    expected = {"alignment", "uniformity", "neighbour_uniformity", "feature_norm", "margin_ratio", "ece"}
    assert expected <= set(report)
