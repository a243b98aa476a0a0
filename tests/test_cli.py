"""Tests of the ``ammix`` command line: help, config validation (one line, exit 2), run-folder guards."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from common import SMOKE, tiny

from ammix.cli import COMMANDS, main
from ammix.engine import Config, ConfigError, load_config
from ammix.engine.config import apply_overrides, parse_value

SMOKE = str(SMOKE)
TINY = tiny(2)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit code, stdout, stderr); argparse's SystemExit counts as a return."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_train(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert "train" in out and "COMMAND" in out


def test_train_help(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    for flag in ("--run-dir", "--resume", "--fresh", "key=value"):
        assert flag in out


def test_no_command_prints_help(capsys):
    code, _, err = run_cli(capsys)
    assert code == 2 and "usage" in err


def test_subcommands_are_a_registry():
    assert "train" in COMMANDS
    cmd = COMMANDS["train"]
    assert callable(cmd.add_arguments) and callable(cmd.run)


def test_python_dash_m_ammix():
    proc = subprocess.run(
        [sys.executable, "-m", "ammix", "train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "--run-dir" in proc.stdout


# One line naming the key, the value and what is allowed; exit code 2; no traceback.
BAD_CONFIGS = [
    (["optim.lrr=0.1"], "optim.lrr = 0.1: unknown key"),
    (["optim.lr=-0.1"], "optim.lr = -0.1: out of range; allowed: >= 0"),
    (["mixing.gamma=1.5"], "mixing.gamma = 1.5: gamma must be in (0, 1)"),
    (["mixing.gamma=0"], "mixing.gamma = 0: gamma must be in (0, 1)"),
    (["mixing.gamma=fast"], "mixing.gamma = 'fast': expected a number"),
    (["mixing.gama=0.9"], "mixing.gama = 0.9: unknown option"),
    (["mixing.method=mixupp"], "mixing.method = 'mixupp': unknown mixing method"),
    (["mixing.site=9"], "mixing.site = 9: site 9 is beyond the model's 3 stages"),
    (["mixing.method=manifold_mixup", "mixing.layers=[4]"], "mixing.layers = [4]: none of layers (4,) is"),
    (["data.imbalance_factor=0.5"], "data.imbalance_factor = 0.5: out of range; allowed: >= 1"),
    (["data.dataset=cifar11"], "data.dataset = 'cifar11': unknown dataset"),
    (["data.batchsize=3"], "data.batchsize = 3: unknown key"),
    (["data.labels=superfine"], "data.labels = 'superfine': not allowed; allowed: fine, coarse"),
    (["data.samples_per_class=0"], "data.samples_per_class = 0"),
    (["model.name=resnet99"], "model.name = 'resnet99': unknown model"),
    (["model.widht=8"], "model.widht = 8: unknown option"),
    (["model.width=2.5"], "model.width = 2.5"),
    (["train.epochs=ten"], "train.epochs = 'ten': expected an integer"),
    (["train.epochs=0"], "train.epochs = 0: out of range; allowed: >= 1"),
    (["train.amp=fp16"], "train.amp = 'fp16': needs CUDA"),
    (["train.device=tpu"], "train.device = 'tpu': not allowed"),
    (["optim.name=adam"], "optim.name = 'adam': not allowed; allowed: sgd, adamw"),
    (["schedule.name=multistep", "schedule.milestones=[1]"], "schedule.factors = []: needs one factor"),
    (["train.stop_after_epochs=9"], "train.stop_after_epochs = 9: out of range"),
    # settings a short run never reaches: the run would train without them under their name
    (["schedule.name=multistep", "schedule.milestones=[160]", "schedule.factors=[0.01]"],
     "schedule.milestones = [160.0]: a milestone at or after train.epochs (2) is never reached"),
    (["loss.drw_epoch=160"], "loss.drw_epoch = 160: the re-weighting never starts"),
    (["data.profile=step"], "data.profile = 'step': shapes a long tail, and there is none"),
    (["data.imbalance_factor=200"], "imbalance_factor 200 leaves class 2 without samples"),
    (["data.batch_size=21"], "data.batch_size = 21: leaves a last training batch of 1 image (64 images in"),
    (["seed=99999999999999999999999"], "seed = 99999999999999999999999: out of range; allowed: <= 4294967"),
    (["data.batch_size=1000"], "data.batch_size = 1000: larger than the training set (64 images in all)"),
    (["nonsense.key=1"], "nonsense = {key: 1}: unknown key; allowed top-level keys"),
    (["optim.lr"], "must be key=value"),
    (["model.init_from=/nonexistent/run"], "model.init_from = '/nonexistent/run': no checkpoint there"),
    # values a run would take without using them as named: inf keeps lam at 1, NaN turns DRW on at once
    (["mixing.total=.inf"], "mixing.total = inf: expected a finite number"),
    (["loss.drw_epoch=.nan"], "loss.drw_epoch = nan: expected a finite number"),
    (["optim.lr=.inf"], "optim.lr = inf: expected a finite number"),
    (["schedule.name=multistep", "schedule.milestones=[.nan]", "schedule.factors=[0.1]"],
     "schedule.milestones = [.nan]: expected a finite number"),
    (["mixing.method=manifold_mixup", "mixing.layers=[0.5, 1.9]"],
     "mixing.layers = [0.5, 1.9]: expected a list of integers"),
    (["model={name: resnet32, blocks_per_group: 0}"], "blocks_per_group must be a positive integer, got 0"),
    (["model={name: resnet18, zero_init_residual: maybe}"], "zero_init_residual must be true or false"),
    (["schedule.milestones=[1]", "schedule.factors=[0.1]"],
     "schedule.milestones = [1.0]: only for schedule.name = multistep (this run's is cosine)"),
    (["optim.eps=0.1"], "optim.eps = 0.1: only for optim.name = adamw (this run's is sgd)"),
    (["mixing.method=ce", "train.freeze_backbone=true", "train.epochs=1", "train.probe=lbfgs",
      "train.label_smoothing=0.1"], "train.probe = 'lbfgs': needs train.label_smoothing = 0.0 (got 0.1)"),
]


@pytest.mark.parametrize("overrides,fragment", BAD_CONFIGS, ids=[b[0][-1] for b in BAD_CONFIGS])
def test_bad_config_is_one_line_and_exit_2(capsys, tmp_path, overrides, fragment):
    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", SMOKE, *TINY, *overrides, "--run-dir", str(run_dir))
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ammix: config error: ")
    assert fragment in lines[0]
    assert not run_dir.exists()  # nothing written for a config mistake


def test_missing_config_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", str(tmp_path / "nope.yaml"), "--run-dir", str(tmp_path / "r"))
    assert code == 2 and "cannot read config file" in err and "nope.yaml" in err


def test_malformed_yaml(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {lr: [0.1\n")
    code, _, err = run_cli(capsys, "train", str(bad), "--run-dir", str(tmp_path / "r"))
    assert code == 2 and "invalid YAML" in err and len(err.strip().splitlines()) == 1


def test_overrides_parse_as_yaml():
    cfg = load_config(
        SMOKE,
        [
            "optim.lr=1e-3",
            "schedule.milestones=[2, 3]",
            "schedule.factors=[0.1, 0.01]",
            "schedule.name=multistep",
            "train.amp=off",
            "mixing.gamma=0.9",
            "train.epochs=4",
        ],
    )
    assert isinstance(cfg, Config)
    assert cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.schedule.milestones == [2.0, 3.0]
    assert cfg.train.amp == "off"  # YAML 1.1 reads off as false: mapped back to the choice
    assert cfg.mixing.options["gamma"] == 0.9
    assert parse_value("5e-4") == pytest.approx(5e-4)
    assert parse_value("text") == "text"


@pytest.mark.parametrize(
    "overrides, options",
    [
        # Another method than smoke.yaml's am_mixup: its clean_weight is dropped.
        (["mixing.method=ce"], {}),
        (["mixing.method=mixup", "mixing.alpha=0.4"], {"alpha": 0.4}),
        # The same method: smoke's options kept, merged with the overrides'.
        (["mixing.method=am_mixup", "mixing.lam_at_total=0.6"], {"lam_at_total": 0.6, "clean_weight": 0.5}),
        (["mixing.clean_weight=0"], {"clean_weight": 0}),
        (["mixing.gamma=0.9"], {"gamma": 0.9, "clean_weight": 0.5}),
        # The whole section replaces the file's, whatever the method.
        (["mixing={method: am_mixup, lam_at_total: 0.6}"], {"lam_at_total": 0.6}),
    ],
)
def test_mixing_options_rule(overrides, options):
    cfg = load_config(SMOKE, overrides)
    assert cfg.mixing.options == options


def test_model_and_loss_follow_the_same_options_rule():
    # smoke.yaml's small_cnn options (width, hidden_dim, feature_dim) mean nothing to another backbone
    base = {"model": {"name": "small_cnn", "init_from": "runs/x", "width": 16}}
    resnet = {"model": {"name": "resnet32", "init_from": "runs/x"}}  # the section's own key stays
    assert apply_overrides(base, ["model.name=resnet32"]) == resnet
    assert load_config(SMOKE, ["model.name=resnet32"]).model.options == {}
    assert load_config(SMOKE, ["model.name=small_cnn"]).model.options["width"] == 16  # its own: kept
    ldam = {"loss": {"name": "ldam", "max_margin": 0.3, "drw_epoch": 160}}
    assert apply_overrides(ldam, ["loss.name=balanced_softmax", "loss.tau=2"]) == {
        "loss": {"name": "balanced_softmax", "tau": 2}}


def test_schedule_and_optimizer_drop_the_keys_of_the_one_they_replace():
    base = {"schedule": {"name": "multistep", "warmup_epochs": 5, "milestones": [160], "factors": [0.01]},
            "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}}
    assert apply_overrides(base, ["schedule.name=cosine", "optim.name=adamw"]) == {
        "schedule": {"name": "cosine", "warmup_epochs": 5}, "optim": {"name": "adamw", "lr": 0.1}}
    assert apply_overrides(base, ["schedule.name=multistep"]) == base  # its own: kept


def test_config_round_trip(tmp_path):
    cfg = load_config(SMOKE, ["mixing.clean_weight=0.25"])
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(path)
    assert again == cfg
    assert again.to_dict()["mixing"]["clean_weight"] == 0.25  # mixer options stay flat


def test_load_config_raises_config_error():
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(SMOKE, ["optim.lr=-1"])


def test_print_config(capsys):
    code, out, _ = run_cli(capsys, "train", SMOKE, "optim.lr=0.02", "--print-config")
    assert code == 0 and "lr: 0.02" in out


def test_existing_run_dir_refused_then_resume_or_fresh(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", SMOKE, *TINY, "--run-dir", str(run_dir))
    assert code == 0, err
    first = (run_dir / "metrics.jsonl").read_text()

    code, _, err = run_cli(capsys, "train", SMOKE, *TINY, "--run-dir", str(run_dir))
    assert code == 2
    assert "already holds a run" in err and "--resume" in err and "--fresh" in err
    assert "Traceback" not in err
    assert (run_dir / "metrics.jsonl").read_text() == first  # untouched

    code, _, err = run_cli(capsys, "train", SMOKE, *TINY, "--run-dir", str(run_dir), "--resume")
    assert code == 0, err  # already finished: nothing to do, same metrics
    assert (run_dir / "metrics.jsonl").read_text() == first

    # --fresh deletes what a run wrote, never what it did not (a user's files in the folder: refused)
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "data").mkdir()
    code, _, err = run_cli(capsys, "train", SMOKE, *TINY, "--run-dir", str(run_dir), "--fresh")
    assert code == 2 and "the folder also holds data, notes.txt, which no run writes" in err
    assert (run_dir / "notes.txt").read_text() == "mine" and (run_dir / "metrics.jsonl").read_text() == first
    (run_dir / "notes.txt").unlink()
    (run_dir / "data").rmdir()
    (run_dir / ".last.pt.abc.tmp").write_text("left by a crash")  # an atomic write's leftover: a run's
    code, _, err = run_cli(capsys, "train", SMOKE, *TINY, "--run-dir", str(run_dir), "--fresh")
    assert code == 0, err
    assert not (run_dir / ".last.pt.abc.tmp").exists()
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_with_other_config_refused(capsys, tmp_path):
    run_dir = tmp_path / "run"
    assert (
        run_cli(capsys, "train", SMOKE, *TINY, "train.stop_after_epochs=1", "--run-dir", str(run_dir))[0] == 0
    )
    code, _, err = run_cli(
        capsys, "train", SMOKE, *TINY, "optim.lr=0.5", "--run-dir", str(run_dir), "--resume"
    )
    assert code == 2 and "another config" in err and "optim.lr" in err


def test_resume_after_a_mixer_default_changed_refused(capsys, tmp_path):
    """The config is the same, the mixer it builds is not (a default changed): last.pt's record says so."""
    run_dir = tmp_path / "run"
    am = ["mixing.method=am_mixup", "train.stop_after_epochs=1"]
    assert run_cli(capsys, "train", SMOKE, *TINY, *am, "--run-dir", str(run_dir))[0] == 0
    ckpt = torch.load(run_dir / "last.pt", weights_only=False)
    assert ckpt["mixer"]["pairing"] == "drop" and ckpt["mixer"]["clean_weight"] == 0.5
    ckpt["mixer"]["pairing"] = "redraw"  # as if made before the default changed
    torch.save(ckpt, run_dir / "last.pt")
    code, _, err = run_cli(capsys, "train", SMOKE, *TINY, *am, "--run-dir", str(run_dir), "--resume")
    assert code == 2 and "mixer.pairing: 'redraw' recorded -> 'drop' now" in err


def test_resume_and_fresh_exclude_each_other(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", SMOKE, "--run-dir", str(tmp_path / "r"), "--resume", "--fresh")
    assert code == 2 and "not allowed with" in err


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    # `ammix sweep --dry-run | head`: the reader is gone before the 54 commands (> the 8 KiB buffer) are out.
    sweep = SMOKE.replace("smoke.yaml", "sweeps/ablation-lt-cifar10-jpeg.yaml")
    command = [sys.executable, "-m", "ammix", "sweep", sweep, "--runs-dir", str(tmp_path), "--dry-run"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and "Traceback" not in err, err
