"""The protocols end to end on tiny synthetic data: sweeps (train, coarse-to-fine), toy, demo, report."""

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from common import tiny

from ammix.cli import main
from ammix.engine import load_config, train
from ammix.experiments import demo, toy
from ammix.experiments.analyze import analyze_run
from ammix.experiments.sweep import (
    SweepError,
    add_arguments,
    load_sweep,
    override_args,
    plan_runs,
    resolved_config,
    sweep_from_args,
)
from ammix.experiments.toy import run_toy
from ammix.mixing import MIXERS

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
TINY = ["train.epochs=1", "data.samples_per_class=16", "data.test_samples_per_class=8"]


def write_sweep(tmp_path, **spec):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "config": str(SMOKE), **spec}))
    return path


def test_sweep_methods_follow_the_mixing_options_rule(tmp_path):
    # `ammix sweep configs/smoke.yaml --methods am_mixup ce`: am_mixup keeps smoke's options, ce drops them.
    runs = plan_runs(load_sweep(SMOKE, ["am_mixup", "ce"]), tmp_path)
    assert [run.overrides for run in runs] == [{"mixing.method": "am_mixup", "seed": 0},
                                               {"mixing.method": "ce", "seed": 0}]
    options = [load_config(SMOKE, override_args(run.overrides)).mixing.options for run in runs]
    assert options == [{"clean_weight": 0.5}, {}]
    words = override_args({"mixing": {"method": "ce"}, "optim.lr": 0.1})
    assert words == ["mixing={method: ce}", "optim.lr=0.1"]


def test_sweep_checks_every_config_before_running(tmp_path, capsys):
    spec = write_sweep(tmp_path, variants={"ce": {"mixing.method": "ce", "mixing.gamma": 0.5}})
    assert main(["sweep", str(spec), "--runs-dir", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == ("ammix sweep: ce/seed0: mixing.gamma = 0.5: unknown option(s) gamma for method 'ce'; "
                   "known: none\n")


def test_coarse_to_fine_plan(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, protocol="coarse_to_fine", seeds=[3], probe={"train.epochs": 2},
                                   variants={"am": {"mixing.method": "am_mixup", "mixing.gamma": 0.5}}))
    pretrain, probe, finetune = plan_runs(sweep, tmp_path / "runs")
    assert pretrain.run_dir == tmp_path / "runs" / "s" / "am" / "seed3" / "pretrain"
    assert pretrain.overrides == {"mixing.method": "am_mixup", "mixing.gamma": 0.5, "data.labels": "coarse",
                                  "seed": 3}
    assert probe.after is pretrain and finetune.after is pretrain
    assert probe.overrides["mixing.method"] == "ce" and probe.overrides["train.freeze_backbone"] is True
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
        # the wrong shapes: one line each, not a traceback from deep inside
        ({"variants": ["ce", "mixup"]}, "variants: expected a mapping of name -> {KEY: VALUE}"),
        ({"variants": {"ce": "mixing.method=ce"}}, "variants: expected a mapping of name -> {KEY: VALUE}"),
        ({"config": 5, "variants": {"a": {}}}, "config: expected the path of a training config, got 5"),
        ({"variants": {"a": {}}, "seeds": [1.7]}, "seeds: expected a non-empty list of distinct integers >="),
        ({"variants": {"a": {}}, "seeds": []}, "seeds: expected a non-empty list of distinct integers >= 0"),
        ({"variants": {"a": {}}, "seeds": [0, 1, 0]}, "seeds: expected a non-empty list of distinct"),
        ({"variants": {"a": {}}, "overrides": ["a"]}, "overrides: expected a mapping of KEY: VALUE"),
        ({"variants": {"a": {}}, "probe": {"train.epochs": 3}}, "probe: and finetune: are stages of a "
         "coarse_to_fine sweep"),
        # a name is one folder under --runs-dir
        ({"name": "../../escape", "variants": {"a": {}}}, "name '../../escape': expected a folder name"),
        ({"variants": {"../up": {}}}, "variant '../up': expected a folder name"),
    ],
)
def test_sweep_file_errors(tmp_path, spec, fragment):
    with pytest.raises(SweepError) as err:
        load_sweep(write_sweep(tmp_path, **spec))
    assert fragment in str(err.value)


def test_sweep_cli_error_is_one_line(tmp_path, capsys):
    assert main(["sweep", str(write_sweep(tmp_path, variants={})), "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    sweep = str(write_sweep(tmp_path, variants={"a": {}}))
    for args in (["--name", "../x"], ["--set", "optim.lr=[0.1"], ["--seeds", "0", "0"]):
        assert main(["sweep", sweep, "--runs-dir", str(tmp_path), "--dry-run", *args]) == 2
        assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"settings": ["balanced"]}, "settings: expected a non-empty mapping of name -> {KEY: VALUE}"),
        ({"variants": {}}, "variants: expected a non-empty mapping of name -> {KEY: VALUE}"),
        ({"config": [1]}, "config: expected a mapping, got [1]"),
        ({"seeds": 3}, "seeds: expected a non-empty list of distinct integers >= 0, got 3"),
        ({"quick": [1]}, "quick: expected a mapping, got [1]"),
        ({"settings": {"../x": {}}}, "setting '../x': expected a folder name"),
    ],
)
def test_toy_file_errors(tmp_path, spec, fragment):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({"config": {}, "variants": {"ce": None}, "settings": {"balanced": None},
                                    **spec}))
    with pytest.raises(toy.ToyError, match=re.escape(fragment)):
        toy.load_toy(path)


def test_toy_seeds_given_twice_are_a_one_line_error(tmp_path, capsys):
    spec = str(SMOKE.parent / "toy-mini-cifar-cpu.yaml")
    assert main(["toy", spec, "--seeds", "1", "1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "ammix toy: --seeds 1 1: expected distinct integers >= 0\n"


def test_toy_setting_or_variant_without_overrides_is_null(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({"config": yaml.safe_load(SMOKE.read_text()), "variants": {"ce": None},
                                    "settings": {"balanced": None}}))
    configs = toy.toy_configs(toy.load_toy(path))
    assert configs["balanced"]["ce"]["mixing"]["method"] == "am_mixup"  # smoke's own, no override


def test_sweep_refuses_a_finished_run_made_with_another_config(tmp_path, capsys):
    spec = write_sweep(tmp_path, seeds=[0], overrides={k: yaml.safe_load(v) for k, v in
                                                       (o.split("=") for o in tiny(1))},
                       variants={"ce": {"mixing.method": "ce"}})
    runs = tmp_path / "runs"
    (planned,) = plan_runs(load_sweep(spec), runs)
    train(resolved_config(SMOKE, planned), planned.run_dir)  # the sweep's own run, made in-process
    capsys.readouterr()
    dry = ["sweep", str(spec), "--runs-dir", str(runs), "--dry-run"]
    assert main(dry) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("[finished] ")  # after "1 runs at a time"
    assert main([*dry, "--set", "train.log_every=3"]) == 0  # a key --resume may change too
    assert capsys.readouterr().out.splitlines()[1].startswith("[finished] ")  # after "1 runs at a time"
    for command in (dry, dry[:-1]):
        assert main([*command, "--set", "data.imbalance_factor=50"]) == 2
        err = capsys.readouterr().err
        assert err == (f"ammix sweep: {planned.run_dir} was made with another config "
                       "(data.imbalance_factor: None -> 50.0); give this sweep its own folder with --name "
                       "NAME, or delete the old run folders to run them again\n")
    assert main([*dry, "--set", "data.imbalance_factor=50", "--name", "if50"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("[to run] ")

    # A run made before keys were added to the schema (saved without them) is the same config.
    saved = planned.run_dir / "config.yaml"
    old = yaml.safe_load(saved.read_text())
    del old["loss"], old["train"]["probe"], old["data"]["train_per_class"]
    saved.write_text(yaml.safe_dump(old))
    assert main(dry) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("[finished] ")


def test_sweep_resumes_a_run_stopped_early_instead_of_reusing_it(tmp_path, capsys):
    # A run stopped by train.stop_after_epochs leaves summary.json (finished false) and no analysis:
    # the next start of the sweep finishes it rather than counting it as done.
    spec = write_sweep(tmp_path, seeds=[0], overrides={k: yaml.safe_load(v) for k, v in
                                                       (o.split("=") for o in tiny(2))},
                       variants={"ce": {"mixing.method": "ce"}})
    runs = tmp_path / "runs"
    (planned,) = plan_runs(load_sweep(spec), runs)
    sweep = ["sweep", str(spec), "--runs-dir", str(runs)]
    assert main([*sweep, "--set", "train.stop_after_epochs=1"]) == 0
    out = capsys.readouterr().out
    assert "ce/seed0: stopped early (train.stop_after_epochs; the next start resumes it)" in out
    summary = json.loads((planned.run_dir / "summary.json").read_text())
    assert (summary["epochs_done"], summary["finished"]) == (1, False)
    assert not (planned.run_dir / "analysis.json").exists()
    assert main([*sweep, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("[to run] ")
    assert main(sweep) == 0
    assert "1 runs, 0 finished, 1 to run" in capsys.readouterr().out
    summary = json.loads((planned.run_dir / "summary.json").read_text())
    assert (summary["epochs_done"], summary["finished"]) == (2, True)
    assert (planned.run_dir / "analysis.json").is_file()
    assert main(sweep) == 0
    assert "1 runs, 1 finished, 0 to run" in capsys.readouterr().out


def _held(folder: Path) -> bool:
    """Whether a training holds ``folder`` (ammix.engine.rundir.claim_run_dir)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _wait_until(condition, seconds: float = 120.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_sweep_stops_its_running_run(tmp_path, sig):
    """`kill` (or SIGINT) of a sweep ends its `ammix train` process too, instead of leaving it running
    unwatched in its folder; the pending runs never start."""
    spec = write_sweep(tmp_path, seeds=[0, 1], overrides={k: yaml.safe_load(v) for k, v in
                                                          (o.split("=") for o in tiny(100000))},
                       variants={"ce": {"mixing.method": "ce"}})
    sweep = subprocess.Popen([sys.executable, "-m", "ammix", "sweep", str(spec), "--runs-dir",
                              str(tmp_path / "runs")], stdout=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "s" / "ce" / "seed0"
    try:
        assert _wait_until(lambda: run_dir.is_dir() and _held(run_dir)), "the run never started"
        assert _wait_until(lambda: (run_dir / "last.pt").is_file()), "no epoch finished"
        sweep.send_signal(sig)
        assert sweep.wait(timeout=60) == 128 + sig
        assert _wait_until(lambda: not _held(run_dir), 30), "the run outlived its sweep"
    finally:
        sweep.kill()
    out = sweep.stdout.read()
    assert "ce/seed0: stopped with the sweep (resumes from its last checkpoint)" in out, out
    assert not (tmp_path / "runs" / "s" / "ce" / "seed1").exists()


def test_sweep_refuses_a_finished_run_whose_mixer_defaults_changed(tmp_path, capsys):
    """A run made before a default changed spells the same config.yaml; its summary.json's ``mixer``
    (every option as built) tells them apart."""
    spec = write_sweep(tmp_path, seeds=[0], overrides={k: yaml.safe_load(v) for k, v in
                                                       (o.split("=") for o in tiny(1))},
                       variants={"am": {"mixing.method": "am_mixup"}})
    runs = tmp_path / "runs"
    (planned,) = plan_runs(load_sweep(spec), runs)
    train(resolved_config(SMOKE, planned), planned.run_dir)
    capsys.readouterr()
    dry = ["sweep", str(spec), "--runs-dir", str(runs), "--dry-run"]
    assert main(dry) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("[finished] ")

    summary_file = planned.run_dir / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary["mixer"].update(pairing="redraw", clean_weight=0.0)  # the defaults before the ablation
    summary_file.write_text(json.dumps(summary))
    assert main(dry) == 2
    assert capsys.readouterr().err.startswith(
        f"ammix sweep: {planned.run_dir} was made with another config (mixer.clean_weight: 0.0 recorded "
        "-> 0.5 now; mixer.pairing: 'redraw' recorded -> 'drop' now)")

    del summary["mixer"]  # a run made before the record existed: only its config.yaml is compared
    summary_file.write_text(json.dumps(summary))
    assert main(dry) == 0


@pytest.mark.slow
def test_stages_probe_refits_the_probes_and_refuses_those_fitted_on_raw_features(tmp_path, capsys):
    spec = write_sweep(tmp_path, protocol="coarse_to_fine", seeds=[0],
                       overrides={k: yaml.safe_load(v) for k, v in (o.split("=") for o in tiny(1))},
                       probe={"train.probe": "lbfgs", "train.epochs": 1},
                       variants={"ce": {"mixing.method": "ce"}})
    runs = tmp_path / "runs"
    command = ["sweep", str(spec), "--runs-dir", str(runs), "--stages", "probe"]
    assert main(command) == 0
    seed = runs / "s" / "ce" / "seed0"
    assert sorted(p.name for p in seed.iterdir()) == ["pretrain", "probe"]  # no fine-tuning
    probe_summary = seed / "probe" / "summary.json"
    summary = json.loads(probe_summary.read_text())
    assert summary["probe_fit"] == "standardised" and "probe_fit" not in json.loads(
        (seed / "pretrain" / "summary.json").read_text())
    capsys.readouterr()
    del summary["probe_fit"]  # a probe from before the fit standardised the features
    probe_summary.write_text(json.dumps(summary))
    assert main([*command, "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith(
        f"ammix sweep: {seed / 'probe'} was made with another config (its L-BFGS probe was fitted on raw "
        "features, the probe now standardised)")
    assert main([*command, "--dry-run", "--name", "t"]) == 0  # the new fit in a folder of its own


def test_stages_is_for_coarse_to_fine_sweeps_only(tmp_path, capsys):
    spec = write_sweep(tmp_path, variants={"ce": {"mixing.method": "ce"}})
    assert main(["sweep", str(spec), "--runs-dir", str(tmp_path), "--stages", "probe", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == f"ammix sweep: --stages: only for a coarse_to_fine sweep ({spec} is train)\n"


def sweep_args(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_set_for_one_stage_and_the_note_when_a_stage_or_variant_shadows_it(tmp_path, capsys):
    spec = write_sweep(tmp_path, protocol="coarse_to_fine", seeds=[0], finetune={"optim.lr": 0.01},
                       variants={"ce": {"mixing.method": "ce"}, "am": {"mixing": {"method": "am_mixup"}}})
    args = sweep_args([str(spec), "--set", "optim.lr=0.5", "finetune:optim.lr=0.1", "mixing.gamma=0.9"])
    pretrain, probe, finetune, *_ = plan_runs(sweep_from_args(args), tmp_path / "runs")
    assert [r.overrides["optim.lr"] for r in (pretrain, probe, finetune)] == [0.5, 0.5, 0.1]
    assert capsys.readouterr().err == (
        "ammix sweep: note: --set mixing.gamma does not reach variant am, which the sweep file sets itself\n")
    # Without the stage's own --set, the file's fine-tuning lr wins and the note says where to set it,
    # once however often the key is given (the last value wins).
    sweep = sweep_from_args(sweep_args([str(spec), "--set", "optim.lr=0.3", "optim.lr=0.5"]))
    assert plan_runs(sweep, tmp_path / "runs")[0].overrides["optim.lr"] == 0.5
    assert capsys.readouterr().err == (
        "ammix sweep: note: --set optim.lr does not reach the finetune stage, which the sweep file sets "
        "itself; --set finetune:optim.lr=VALUE sets it for the finetune stage\n")
    # --set repeated adds to the earlier ones (a script appends train.amp=off to a line's own --set).
    sweep = sweep_from_args(sweep_args([str(spec), "--set", "optim.lr=0.3", "--set", "train.amp=off"]))
    assert {k: plan_runs(sweep, tmp_path / "runs")[0].overrides[k] for k in ("optim.lr", "train.amp")} == {
        "optim.lr": 0.3, "train.amp": False}
    capsys.readouterr()
    (tmp_path / "train").mkdir()
    train_spec = write_sweep(tmp_path / "train", variants={"ce": {}})
    for path, word in ((spec, "pretrain:optim.lr=0.1"), (train_spec, "finetune:optim.lr=0.1")):
        with pytest.raises(SweepError, match="a stage prefix is one of probe, finetune"):
            sweep_from_args(sweep_args([str(path), "--set", word]))


def test_a_seed_set_anywhere_but_the_seeds_is_refused(tmp_path):
    """--set seed=5 ran a coarse_to_fine sweep's probe and fine-tuning with seed 5 on a seed-0 pre-training,
    all under seed0/ and reported as seed 0."""
    spec = write_sweep(tmp_path, protocol="coarse_to_fine", seeds=[0],
                       variants={"ce": {"mixing.method": "ce"}})
    for word in ("seed=5", "finetune:seed=5"):
        with pytest.raises(SweepError, match=f"^--set '{word}': a sweep's seeds are set by its seeds: key or "
                           "--seeds, and name the run folders$"):
            sweep_from_args(sweep_args([str(spec), "--set", word]))
    for where, fields in (("overrides", {"overrides": {"seed": 1}}), ("variant ce", {"variants": {
            "ce": {"mixing.method": "ce", "seed": 1}}}), ("probe", {"probe": {"seed": 1}})):
        folder = tmp_path / where.replace(" ", "-")
        folder.mkdir()
        bad = write_sweep(folder, protocol="coarse_to_fine", seeds=[0],
                          **{"variants": {"ce": {"mixing.method": "ce"}}, **fields})
        with pytest.raises(SweepError, match=f": {where} sets seed; a sweep's seeds are set by"):
            sweep_from_args(sweep_args([str(bad)]))


def test_analyze_command_on_a_finished_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["analyze", str(run_dir)]) == 2
    assert capsys.readouterr().err == f"ammix analyze: {run_dir} is not a folder\n"
    run_dir.mkdir()
    assert main(["analyze", str(run_dir)]) == 2
    assert capsys.readouterr().err == (f"ammix analyze: {run_dir} is not a finished `ammix train` run "
                                       "(no config.yaml, summary.json, last.pt)\n")
    train(load_config(SMOKE, tiny(2) + ["train.stop_after_epochs=1"]), run_dir, fresh=True)
    capsys.readouterr()
    assert main(["analyze", str(run_dir)]) == 2
    assert capsys.readouterr().err == (f"ammix analyze: {run_dir}: the run stopped after epoch 1 of 2; "
                                       f"finish it with `ammix train ... --run-dir {run_dir} --resume`\n")
    summary = train(load_config(SMOKE, tiny(2)), run_dir, resume=True)
    capsys.readouterr()
    assert main(["analyze", str(run_dir)]) == 0
    saved = json.loads((run_dir / "analysis.json").read_text())
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{run_dir / 'analysis.json'}:" and len(out) == 1 + len(saved)
    assert f"  accuracy{' ' * 21}{100 * saved['accuracy']:.2f} %" in out  # a fraction in the file
    assert f"  feature_norm{' ' * 17}{saved['feature_norm']:.4g}" in out
    assert 100 * saved["accuracy"] == pytest.approx(summary["last"]["acc"], abs=1e-9)  # same model, same data


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
    # A pre-training deleted to run again: its probe and fine-tuning, built on the old one, run again from
    # the start (they were reused, or "resumed" when finished, and reported under a pre-training they
    # never saw). Here only the probe goes with it (--stages probe): the fine-tuning is left behind.
    seed0 = runs / "s" / "am" / "seed0"
    summary = {stage: json.loads((seed0 / stage / "summary.json").read_text())
               for stage in ("pretrain", "probe", "finetune")}
    assert summary["probe"]["init_from_sha256"] == summary["pretrain"]["checkpoint_sha256"]
    shutil.rmtree(seed0 / "pretrain")
    capsys.readouterr()
    assert main(["sweep", str(spec), "--runs-dir", str(runs), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("[to run again (built on another pre-training)]") == 2
    assert main(["sweep", str(spec), "--runs-dir", str(runs), "--stages", "probe"]) == 0
    assert "4 runs, 2 finished, 2 to run" in capsys.readouterr().out
    new = {stage: json.loads((seed0 / stage / "summary.json").read_text()) for stage in ("pretrain", "probe")}
    assert new["pretrain"]["checkpoint_sha256"] != summary["pretrain"]["checkpoint_sha256"]
    assert new["probe"]["init_from_sha256"] == new["pretrain"]["checkpoint_sha256"]
    assert "resuming" not in (seed0 / "probe" / "train.log").read_text()  # started again, not resumed
    # The pre-training is finished again: only the checkpoints tell that the fine-tuning is stale. The
    # report leaves it out (its number belongs to the deleted pre-training); the sweep runs it again.
    assert main(["report", str(runs)]) == 0
    assert ("1 transfer-stage run(s) left out, built on another pre-training than the one in their seed "
            "folder (run the sweep again to redo them): s/am/seed0/finetune.") in (
        runs / "report" / "report.md").read_text()
    assert main(["sweep", str(spec), "--runs-dir", str(runs), "--dry-run"]) == 0
    planned = capsys.readouterr().out
    assert planned.count("[to run again (built on another pre-training)]") == 1
    assert "finetune --fresh" in planned.split("[to run again")[1].split("\n")[0]
    assert main(["sweep", str(spec), "--runs-dir", str(runs)]) == 0
    assert "6 runs, 5 finished, 1 to run" in capsys.readouterr().out
    finetune = json.loads((seed0 / "finetune" / "summary.json").read_text())
    assert finetune["init_from_sha256"] == new["pretrain"]["checkpoint_sha256"]
    assert main(["sweep", str(spec), "--runs-dir", str(runs), "--dry-run"]) == 0
    assert "[to run again" not in capsys.readouterr().out


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
    table = (tmp_path / "toy.md").read_text()
    assert "| balanced | am_mixup |" in table
    assert "\ncoarse-to-fine: trained on coarse labels; the accuracies are over the coarse classes" in table


def test_toy_map_of_an_ldam_run_is_shaded_by_its_scaled_cosines(tmp_path, monkeypatch):
    import torch

    spec = {
        "config": {**yaml.safe_load(SMOKE.read_text()), "model": {"name": "small_cnn", "feature_dim": 2}},
        "variants": {"ce": {"mixing.method": "ce"}},
        "settings": {"ldam": {"loss.name": "ldam", "loss.scale": 30, "model.head": "cosine"}},
    }
    panels = []
    monkeypatch.setattr(toy, "feature_map_figure", lambda p, *a, **k: panels.extend(p))
    run_toy(spec, tmp_path, tiny(1))
    (_, features, _, logits_of, _), = panels
    rf = toy.run_features(tmp_path / "ldam" / "ce")
    # the run's predicted logits, 30 cos: the head alone (cosines in [-1, 1]) would shade it flat
    torch.testing.assert_close(logits_of(features), 30.0 * rf.head(features))


def test_demo_verdicts_name_the_best_method_per_setting():
    rows = [{"setting": "lt", "method": "ce", "balanced_acc": 90.0, "margin_ratio": 0.2},
            {"setting": "lt", "method": "mixup", "balanced_acc": 90.04, "margin_ratio": 0.1},
            {"setting": "lt", "method": "am_mixup", "balanced_acc": 88.0, "margin_ratio": 0.5}]
    assert demo.verdicts(rows) == [  # ties at the printed precision are named together
        "lt: best balanced accuracy ce, mixup (90.0%); most even margins am_mixup (margin_ratio 0.50)"]
    # undefined (nan: every centroid misclassified) or absent (a coarse run): named, not compared
    rows[0]["margin_ratio"], rows[2]["margin_ratio"] = float("nan"), None
    coarse = [{"setting": "coarse", "method": "ce", "balanced_acc": 95.0}]
    assert demo.verdicts(rows + coarse) == [
        "lt: best balanced accuracy ce, mixup (90.0%); most even margins mixup (margin_ratio 0.10); "
        "no margin_ratio for ce, am_mixup",
        "coarse: best balanced accuracy ce (95.0%); no margin_ratio for ce"]


def test_toy_table_says_when_a_cell_averages_fewer_runs_than_n():
    rows = [{"setting": "lt", "method": "ce", "margin_ratio": v, "balanced_acc": 80.0}
            for v in (0.2, float("nan"), 0.8)]
    assert "| 0.500 ± 0.424 [2/3] |" in toy.format_table(rows)


def test_toy_seeds_run_apart_and_the_table_averages_them(tmp_path, capsys):
    spec = {
        "config": {**yaml.safe_load(SMOKE.read_text()), "model": {"name": "small_cnn", "feature_dim": 2}},
        "variants": {"ce": {"mixing.method": "ce"}},
        "settings": {"balanced": {}},
        "seeds": [0, 1],
    }
    rows = run_toy(spec, tmp_path, TINY)
    assert [(r["seed"], r["tail_range"], r["tail_drift"]) for r in rows] == [(0, None, None), (1, None, None)]
    assert (tmp_path / "balanced" / "ce" / "seed1" / "analysis.json").is_file()
    accs = [r["acc"] for r in rows]
    table = toy.format_table(rows)
    mean, std = sum(accs) / 2, abs(accs[0] - accs[1]) / 2**0.5
    assert f"| balanced | ce | 2 | {mean:.1f} ± {std:.1f} |" in table
    assert "midpoint_third_class: share of inter-class test pairs" in table  # a legend line per column
    assert table.count("\n") == 4 + len(toy.TABLE_METRICS) + 1

    # Run again: the finished runs are reused; changed, they are refused before anything trains.
    assert [r["acc"] for r in run_toy(spec, tmp_path, TINY)] == accs
    # A call on one seed keeps the other seed's row in the table (toy.md, toy.json).
    assert [r["seed"] for r in run_toy(spec, tmp_path, TINY, seeds=[1])] == [1]
    assert [r["seed"] for r in json.loads((tmp_path / "toy.json").read_text())] == [0, 1]
    assert f"| balanced | ce | 2 | {mean:.1f} ± {std:.1f} |" in (tmp_path / "toy.md").read_text()
    # An earlier row whose run folder is gone (deleted to run it again) cannot be checked: left out.
    seed0 = tmp_path / "balanced" / "ce" / "seed0"
    seed0.rename(tmp_path / "aside")
    run_toy(spec, tmp_path, TINY, seeds=[1])
    assert [r["seed"] for r in json.loads((tmp_path / "toy.json").read_text())] == [1]
    assert "or gone or unfinished: balanced/ce/0" in capsys.readouterr().out
    (tmp_path / "aside").rename(seed0)
    run_toy(spec, tmp_path, TINY)
    # A call with another config on a new seed: the earlier rows are another experiment, left out.
    capsys.readouterr()
    run_toy(spec, tmp_path, [*TINY, "optim.lr=0.5"], seeds=[2])
    assert [r["seed"] for r in json.loads((tmp_path / "toy.json").read_text())] == [2]
    assert ("the table leaves out 2 earlier run(s) made with another config, or gone or unfinished: "
            "balanced/ce/0, balanced/ce/1" in capsys.readouterr().out)
    with pytest.raises(toy.ToyError) as err:
        run_toy(spec, tmp_path, [*TINY, "optim.lr=0.5"])
    assert str(err.value) == (
        f"{tmp_path / 'balanced' / 'ce' / 'seed0'} was made with another config (optim.lr: 0.05 -> 0.5) "
        "(and 1 more run(s)); use another --out, or delete that folder to run it again"
    )
    # A finished run without its checkpoint (copied from git's small files) is refused up front.
    (tmp_path / "balanced" / "ce" / "seed1" / "last.pt").unlink()
    with pytest.raises(toy.ToyError) as err:
        run_toy(spec, tmp_path, TINY)
    assert str(err.value) == (
        f"{tmp_path / 'balanced' / 'ce' / 'seed1'} is finished but has no checkpoint last.pt, from which the "
        "toy draws its map; restore it, or delete that folder to run it again"
    )


def test_toy_leaves_a_run_stopped_early_out_until_it_is_resumed(tmp_path, capsys):
    spec = {
        "config": {**yaml.safe_load(SMOKE.read_text()), "model": {"name": "small_cnn", "feature_dim": 2}},
        "variants": {"ce": {"mixing.method": "ce"}},
        "settings": {"balanced": {}},
        "seeds": [0],
    }
    run_dir = tmp_path / "balanced" / "ce" / "seed0"
    assert run_toy(spec, tmp_path, [*tiny(2), "train.stop_after_epochs=1"]) == []
    out = capsys.readouterr().out
    assert "[toy] stopped after epoch 1: not in the table or the map" in out
    assert "continue with --resume (in a sweep or the toy: run the same command)" in out  # the engine's
    assert json.loads((tmp_path / "toy.json").read_text()) == []
    assert not (tmp_path / "balanced.png").exists() and not (run_dir / "analysis.json").exists()
    (run_dir / "analysis.json").write_text('{"feature_norm": -1.0}')  # as an earlier version wrote it
    [row] = run_toy(spec, tmp_path, tiny(2))  # resumes the run: its epoch-1 analysis is gone
    assert json.loads((run_dir / "summary.json").read_text())["epochs_done"] == 2
    assert json.loads((run_dir / "analysis.json").read_text())["feature_norm"] == pytest.approx(
        row["feature_norm"])
    assert row["feature_norm"] > 0 and (tmp_path / "balanced.png").is_file()
    # A toy file without seeds trains in the variant's folder: seed folders beside it would repeat a seed.
    del spec["seeds"]
    with pytest.raises(toy.ToyError, match="this variant would have runs both in seed folders and without"):
        run_toy(spec, tmp_path, tiny(2))
    moved = tmp_path / "no-seeds"
    run_toy(spec, moved, tiny(2))
    with pytest.raises(toy.ToyError, match=f"^{moved / 'balanced' / 'ce' / 'seed1'}: this variant"):
        run_toy(spec, moved, tiny(2), seeds=[1])


@pytest.mark.slow
def test_demo_quick_runs_offline(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| long-tailed | am_mixup | 1 |" in out
    assert "digits-4" in (tmp_path / "balanced" / "ce" / "config.yaml").read_text() or \
        "num_classes: 4" in (tmp_path / "balanced" / "ce" / "config.yaml").read_text()
    assert out.count("\nbalanced: best balanced accuracy ") == 1 and "\nlong-tailed: best balanced" in out
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


def test_the_analysis_calibrates_an_ldam_run_on_its_scaled_cosines(tmp_path):
    import torch

    from ammix.analysis import expected_calibration_error
    from ammix.experiments.analyze import run_features

    train(load_config(SMOKE, tiny(1) + ["loss.name=ldam", "loss.scale=30", "model.head=cosine"]), tmp_path)
    rf = run_features(tmp_path)
    torch.testing.assert_close(rf.logits, 30.0 * rf.head(rf.features))
    assert analyze_run(tmp_path, rf)["ece"] == pytest.approx(expected_calibration_error(rf.logits, rf.labels))


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_cpu_reproduction_script_runs_every_sweep_and_toy_in_float32_with_amp_off(tmp_path):
    """benchmarks/run_cpu_reproduction.sh with a stand-in `ammix` that records its arguments."""
    (tmp_path / "benchmarks").mkdir()
    script = tmp_path / "benchmarks" / "run_cpu_reproduction.sh"
    shutil.copy(Path(__file__).parents[1] / "benchmarks" / "run_cpu_reproduction.sh", script)
    (tmp_path / "bin").mkdir()
    stub = tmp_path / "bin" / "ammix"
    stub.write_text('#!/bin/sh\necho "$@" >> "$CALLS"\n')
    stub.chmod(0o755)

    def calls(amp):
        log = tmp_path / f"calls-{amp}.txt"
        env = {**os.environ, "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}", "CALLS": str(log)}
        if amp is not None:
            env["AMP"] = amp
        done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
        return done.returncode, log.read_text().splitlines() if log.exists() else [], done.stderr

    code, plain, _ = calls(None)
    assert code == 0 and len(plain) == 45
    # The docs' float32 runs are float32 here too, in the docs' -fp32 folders; the rest bf16 as configured.
    amp_off = [call for call in plain if "train.amp=off" in call]
    assert len(amp_off) == 16 and all("-fp32" in call for call in amp_off)
    code, float32, _ = calls("off")
    # Left out in float32: the float32 twins of bf16 runs (the precision checks: ce-fp32 and two
    # seed-0 runs) and the probes refitted on bf16 pre-trainings and on float32 ones.
    left_out = ("probe-bf16", "--name c2f-fashion-mnist-cpu-fp32", "--only ce-drw --seeds 0",
                "--only finetune --seeds 0")
    assert [sum(part in call for call in plain) for part in left_out] == [1, 1, 1, 1]
    plain = [call.replace("--only ce-fp32 ", "--only ") for call in plain
             if not any(part in call for part in left_out)]
    assert sum("ce-fp32" in call for call in float32) == 0
    assert code == 0 and len(plain) == 41
    for before, after in zip(plain, float32, strict=True):
        words = before.split()
        if words[0] == "sweep":  # appended as its own --set, after a line's own --set
            assert after == before + " --set train.amp=off"
        else:  # toy: the override right after the toy file
            assert after.split() == words[:2] + ["train.amp=off"] + words[2:]
    code, none, err = calls("bf16")
    assert code == 2 and none == [] and err == "run_cpu_reproduction.sh: AMP is off or unset, got 'bf16'\n"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_paper_scale_script_runs_the_sweep_reports_and_packs_its_files(tmp_path):
    """benchmarks/gpu_paper_scale.sh on CPU with a tiny synthetic sweep of six variants, one seed."""
    methods = ("ce", "mixup", "manifold_mixup", "cutmix", "remix", "am_mixup")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "tiny", "config": str(SMOKE), "seeds": [0],
                                     "variants": {m: {"mixing.method": m} for m in methods}}))
    extra = [*TINY, "data.dataset=synthetic", "data.imbalance_factor=2", "train.device=cpu"]
    env = {**os.environ, "SWEEP": str(sweep), "SEEDS": "0", "PYTHON": sys.executable,
           "EXTRA": " ".join(extra)}
    script = Path(__file__).parents[1] / "benchmarks" / "gpu_paper_scale.sh"
    missing = subprocess.run(["bash", str(script), "data", "out", "100"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no cifar10-jpeg.tar.gz" in missing.stderr  # before any run starts
    (tmp_path / "data" / "cifar10-jpeg").mkdir(parents=True)  # the data, as the script checks for it
    done = subprocess.run(["bash", str(script), "data", "out", "100"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    # a lease returns at most 8 files from OUT
    assert sorted(p.name for p in out.rglob("*")) == [
        "gpu.txt", "paper-scale-if100.tar.gz", "progress.txt", "report.log", "sweep.log"]
    progress = (out / "progress.txt").read_text()
    assert "6 of 6 runs finished" in progress and "report failed" not in progress
    with tarfile.open(out / "paper-scale-if100.tar.gz") as tar:
        names = tar.getnames()
    assert "runs-paper/lt-cifar10-jpeg-if100/am_mixup/seed0/summary.json" in names
    assert "runs-paper/lt-cifar10-jpeg-if100/report/report.csv" in names
    assert not any(name.endswith(".pt") for name in names)


GPU_TOY = Path(__file__).parents[1] / "benchmarks" / "gpu_toy.sh"


def gpu_toy_env(tmp_path: Path, methods: list[str], settings: dict, python: str = sys.executable) -> dict:
    """The environment of benchmarks/gpu_toy.sh for a tiny synthetic toy of `methods` x `settings`."""
    spec = tmp_path / "toy.yaml"
    spec.write_text(yaml.safe_dump({
        "config": {**yaml.safe_load(SMOKE.read_text()), "model": {"name": "small_cnn", "feature_dim": 2}},
        "variants": {m: {"mixing.method": m} for m in methods}, "settings": settings, "seeds": [0],
    }))
    return {**os.environ, "SPEC": str(spec), "METHODS": " ".join(methods), "PYTHON": python,
            "EXTRA": "train.device=cpu data.samples_per_class=16 data.test_samples_per_class=8"}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_toy_script_trains_every_run_apart_then_tabulates_them(tmp_path):
    """benchmarks/gpu_toy.sh on CPU with a tiny synthetic toy: one process per run, then the table."""
    settings = {"balanced": {}, "long-tailed": {"data.imbalance_factor": 4}}
    env = gpu_toy_env(tmp_path, ["ce", "am_mixup"], settings)

    def call(seconds, returncode):
        done = subprocess.run(["bash", str(GPU_TOY), "data", "out", "1", str(seconds)], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == returncode, done.stderr
        # a lease returns at most 8 files from OUT: the 4 run logs are packed, not left there
        assert {p.name for p in (tmp_path / "out").rglob("*")} >= {
            "gpu.txt", "logs.tar.gz", "progress.txt", "toy-gpu-1ep.tar.gz"}
        assert len(list((tmp_path / "out").rglob("*"))) <= 8
        return (tmp_path / "out" / "progress.txt").read_text().splitlines()

    # Cut off by the limit: nothing is tabulated, the exit status says so, and the log how to go on.
    assert call(1, 1)[2] == "run the same command again on this machine to resume"
    progress = call(300, 0)
    assert progress[0] == "4 runs start, each stopped after 300 s"
    assert progress[1].startswith("4 of 4 runs finished after ")
    runs = tmp_path / "runs-gpu-toy" / "toy-gpu-1ep"
    rows = json.loads((runs / "toy.json").read_text())
    assert sorted((r["setting"], r["method"], r["seed"]) for r in rows) == sorted(
        (s, m, seed) for s in ("balanced", "long-tailed") for m in ("ce", "am_mixup") for seed in [0])
    assert "| long-tailed | am_mixup | 1 |" in (runs / "toy.md").read_text()
    with tarfile.open(tmp_path / "out" / "toy-gpu-1ep.tar.gz") as tar:
        names = tar.getnames()
    assert f"{runs.relative_to(tmp_path)}/balanced.png" in names
    assert f"{runs.relative_to(tmp_path)}/long-tailed/am_mixup/seed0/summary.json" in names
    assert not any(name.endswith(".pt") for name in names)  # no checkpoints in the archive


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_toy_script_runs_a_run_whose_capture_failed_again_with_eager_steps(tmp_path):
    # A stand-in python whose training processes exit as after a failed capture unless told eager steps.
    python = tmp_path / "python"
    python.write_text(f"""#!/usr/bin/env bash
if [[ " $* " == *" --settings "* && " $* " != *" train.cuda_graph=off "* ]]; then exit 3; fi
exec {sys.executable} "$@"
""")
    python.chmod(0o755)
    env = gpu_toy_env(tmp_path, ["ce"], {"balanced": {}}, python=str(python))
    done = subprocess.run(["bash", str(GPU_TOY), "data", "out", "1", "300"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    progress = (tmp_path / "out" / "progress.txt").read_text().splitlines()
    assert progress[1].startswith("the capture failed: again with train.cuda_graph=off (")
    assert progress[2].startswith("1 of 1 runs finished after ")
    saved = yaml.safe_load((tmp_path / "runs-gpu-toy/toy-gpu-1ep/balanced/ce/seed0/config.yaml").read_text())
    assert saved["train"]["cuda_graph"] == "off"
