"""Tests of the training engine: run folders, exact resume, kill -9, NaN guard, corrupt checkpoints,
transfer (init_from + frozen backbone), learning-rate schedules."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from common import SMOKE, tiny

from ammix.cli import main
from ammix.engine import (
    CheckpointError,
    ConfigError,
    RunDirError,
    TrainingDiverged,
    load_checkpoint,
    load_config,
    read_metrics,
    train,
)
from ammix.engine.checkpoint import file_sha256
from ammix.engine.config import ScheduleConfig
from ammix.engine.loop import compile_stages, epoch_loss
from ammix.engine.schedule import lr_factor
from ammix.mixing import DEFAULT_LAM_AT_TOTAL, build_mixer, gamma_for, mixed_forward
from ammix.models import build_model

TINY = tiny(3)
TIMING_KEYS = {"epoch_time", "images_per_s"}


def tiny(*overrides: str):
    return load_config(SMOKE, [*TINY, *overrides])


def metrics_without_timings(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_metrics(run_dir)]


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert sa["epoch"] == sb["epoch"]
    assert sa["model"].keys() == sb["model"].keys()
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]), key


def test_smoke_config_writes_a_complete_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    summary = train(load_config(SMOKE), run_dir)
    # The mixer as built, its defaults included (pairing, label, ...; total from train.epochs).
    epochs = load_config(SMOKE).train.epochs
    assert summary["mixer"] == {
        "method": "am_mixup", "num_classes": 4, "schedule": "exp", "lam_end": 0.5,
        "gamma": gamma_for(DEFAULT_LAM_AT_TOTAL, 0.5, epochs),
        "granularity": "step", "pairing": "drop", "label": "single", "clean_weight": 0.5,
        "detach_partner": False, "stage": "feature", "site": "feature", "total": epochs,
    }
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "last.pt"):
        assert (run_dir / name).is_file(), name
    records = read_metrics(run_dir)
    epochs = load_config(SMOKE).train.epochs
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    for r in records:
        for key in (
            "train_loss",
            "train_acc",
            "test_acc",
            "balanced_acc",
            "per_class_acc",
            "lr",
            "lam",
            "epoch_time",
            "images_per_s",
        ):
            assert key in r, key
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["finished"] and summary["finished"]
    for key in ("last", "best", "wall_time_s", "command", "torch_version", "device"):
        assert key in on_disk, key
    assert on_disk["last"]["epoch"] == epochs
    assert load_config(run_dir / "config.yaml") == load_config(SMOKE)  # the resolved config
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == epochs
    assert not list(run_dir.glob(".*.tmp"))


MIXINGS = {
    "am_mixup": "mixing={method: am_mixup, gamma: 0.5, clean_weight: 0.5}",
    "manifold_mixup": "mixing={method: manifold_mixup, alpha: 2.0, layers: [0, 1, 2]}",
}


@pytest.mark.parametrize("method", list(MIXINGS))
def test_resume_equals_uninterrupted_run(tmp_path, method):
    overrides = [MIXINGS[method]]
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(tiny(*overrides), full)

    first = train(tiny(*overrides, "train.stop_after_epochs=1"), cut)
    assert not first["finished"] and first["epochs_done"] == 1
    assert not (cut / "summary.json").read_text().count('"finished": true')
    # As if the run was killed after writing epoch 2's metrics line but before its checkpoint.
    with open(cut / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 2, "train_loss": 123.0}) + "\n")
    (cut / "analysis.json").write_text("{}")  # of epoch 1's checkpoint, which the resumed run replaces
    resumed = train(tiny(*overrides), cut, resume=True)

    assert resumed["finished"] and not (cut / "analysis.json").exists()
    (cut / "analysis.json").write_text("{}")
    train(tiny(*overrides), cut, resume=True)  # finished: nothing trains, its analysis stays
    assert (cut / "analysis.json").is_file()
    assert_same_weights(full, cut)
    assert metrics_without_timings(full) == metrics_without_timings(cut)
    full_summary = json.loads((full / "summary.json").read_text())
    assert resumed["last"] == full_summary["last"] and resumed["best"] == full_summary["best"]


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    epochs = 20
    overrides = [*TINY[:-1], f"train.epochs={epochs}"]
    cmd = [sys.executable, "-m", "ammix", "train", str(SMOKE), *overrides, "--run-dir", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(read_metrics(run_dir)) < 3:
            if proc.poll() is not None:
                pytest.fail(f"the run ended early: {proc.stderr.read().decode()}")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists(), "the run finished before it could be killed"
    done = load_checkpoint(run_dir / "last.pt")["epoch"]
    assert 0 < done < epochs

    assert main(["train", str(SMOKE), *overrides, "--run-dir", str(run_dir), "--resume"]) == 0
    records = read_metrics(run_dir)
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    assert json.loads((run_dir / "summary.json").read_text())["finished"]
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == epochs
    # and it ends where an uninterrupted run ends
    full = tmp_path / "full"
    train(load_config(SMOKE, overrides), full)
    assert_same_weights(full, run_dir)
    assert metrics_without_timings(full) == metrics_without_timings(run_dir)


def test_resume_without_checkpoint_starts_afresh(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("seed: 0\n")  # killed before its first checkpoint
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 9}\n')
    summary = train(tiny(), run_dir, resume=True)
    assert summary["finished"]
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1, 2, 3]


def test_a_run_folder_in_use_by_another_training_is_refused(tmp_path):
    """Two trainings in one folder (an orphaned run, a sweep started twice) would interleave their
    checkpoints and metrics lines: the second is refused before it writes anything."""
    run_dir = tmp_path / "run"
    train(tiny(), run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    holder = subprocess.Popen(  # another process holding the folder, as a training does
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(run_dir)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        for resume, fresh in ((True, False), (False, True)):
            with pytest.raises(RunDirError, match="in use by another training process"):
                train(tiny(), run_dir, resume=resume, fresh=fresh)
        assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    finally:
        holder.kill()
        holder.wait()
    (run_dir / "train.log").write_text("output of the old run\n")  # a sweep appends the new run's here
    summary = train(tiny(), run_dir, fresh=True)  # released when its holder ends
    assert summary["finished"] and [r["epoch"] for r in read_metrics(run_dir)] == [1, 2, 3]
    assert (run_dir / "train.log").read_text() == "output of the old run\n"  # --fresh keeps the log


@pytest.mark.parametrize("log_every", [1, 3])  # checked after step 3: the message names step 1 still
def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(tmp_path, monkeypatch, capsys, log_every):
    import ammix.engine.loop as loop

    run_dir = tmp_path / "run"
    real_make_loss = loop.make_loss
    calls = {"n": 0}
    steps_per_epoch = 4  # 4 classes x 16 images / batch 16

    def poisoned_make_loss(cfg, class_counts, device):
        real = real_make_loss(cfg, class_counts, device)

        def poisoned(logits, targets, epoch):
            calls["n"] += 1
            loss = real(logits, targets, epoch)
            # the second epoch's first step (two losses per step: mixed + clean)
            return loss * float("nan") if calls["n"] > 2 * steps_per_epoch else loss

        return poisoned

    monkeypatch.setattr(loop, "make_loss", poisoned_make_loss)
    cfg = tiny(f"train.log_every={log_every}")
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 1 ") as info:
        train(cfg, run_dir)
    assert "last good checkpoint" in str(info.value) and "epoch 1" in str(info.value)
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1]
    assert not (run_dir / "summary.json").exists()


def test_epoch_loss_weights_each_global_step_by_its_rows():
    # One process, two steps of 10 and 30 rows with mean row losses 2 and 3: the mean over the 40 rows.
    assert epoch_loss(torch.tensor([[2.0, 10.0], [3.0, 30.0]]), world_size=1) == pytest.approx(2.75)
    # Two ranks, one step: 10 rows of row loss 4 and 30 of row loss 2. Each rank divides its sum by the
    # mean row count over ranks (20): losses 2 and 3, summed over ranks 5 with 40 rows. The global-batch
    # loss is 100 / 40 = 2.5; weighting each rank's loss by its own rows would give 110 / 40 = 2.75.
    assert epoch_loss(torch.tensor([[5.0, 40.0]]), world_size=2) == pytest.approx(2.5)


def test_huge_lr_diverges_through_cli(tmp_path, capsys):
    code = main(
        ["train", str(SMOKE), *TINY, "optim.lr=1e10", "train.log_every=1", "--run-dir", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "ammix: error: the training loss became" in err and "Traceback" not in err


def test_truncated_checkpoint_is_a_clear_error(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(tiny("train.stop_after_epochs=1"), run_dir)
    ckpt = run_dir / "last.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        train(tiny(), run_dir, resume=True)
    assert str(ckpt) in str(info.value)

    code = main(["train", str(SMOKE), *TINY, "--run-dir", str(run_dir), "--resume"])
    err = capsys.readouterr().err
    assert code == 1 and "last.pt" in err and "Traceback" not in err


def test_garbage_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=str(bad)):
        load_checkpoint(bad)


def test_transfer_init_from_and_frozen_backbone(tmp_path):
    coarse_dir, probe_dir = tmp_path / "coarse", tmp_path / "probe"
    train(tiny("data.labels=coarse", "train.epochs=2"), coarse_dir)
    pre = load_checkpoint(coarse_dir / "last.pt")["model"]
    assert pre["head.weight"].shape[0] == 2  # 2 superclasses

    summary = train(
        tiny(
            f"model.init_from={coarse_dir}",
            "train.freeze_backbone=true",
            "train.epochs=2",
            "mixing={method: ce}",
        ),
        probe_dir,
    )
    assert summary["num_classes"] == 4
    post = load_checkpoint(probe_dir / "last.pt")["model"]
    assert post["head.weight"].shape[0] == 4
    for key, value in pre.items():
        if key.startswith("stages."):  # weights and BN statistics untouched by the linear probe
            assert torch.equal(value, post[key]), key


def test_transfer_records_the_checkpoint_it_started_from_across_a_resume(tmp_path):
    """summary.json's init_from_sha256 is the pre-training's checkpoint_sha256 at the stage's start, kept
    by a resume even when init_from now holds another checkpoint (how a sweep tells a stale stage)."""
    pre, stage = tmp_path / "pre", tmp_path / "stage"
    made = train(tiny("train.epochs=1"), pre)
    assert made["checkpoint_sha256"] == file_sha256(pre / "last.pt") and "init_from_sha256" not in made
    config = tiny(f"model.init_from={pre}", "train.epochs=2", "train.stop_after_epochs=1")
    stopped = train(config, stage)
    assert stopped["init_from_sha256"] == made["checkpoint_sha256"]
    assert "checkpoint_sha256" not in stopped  # not finished: its checkpoint will change
    train(tiny("train.epochs=1", "seed=1"), pre, fresh=True)  # another pre-training at init_from
    assert file_sha256(pre / "last.pt") != made["checkpoint_sha256"]
    resumed = train(tiny(f"model.init_from={pre}", "train.epochs=2"), stage, resume=True)
    assert resumed["finished"] and resumed["init_from_sha256"] == made["checkpoint_sha256"]


def test_init_from_wrong_backbone_is_clear(tmp_path):
    src = tmp_path / "src"
    train(tiny("train.epochs=1"), src)
    with pytest.raises(CheckpointError, match="does not fit this backbone"):
        train(tiny("model.width=8", f"model.init_from={src}", "train.epochs=1"), tmp_path / "dst")


def test_long_tailed_run_logs_shot_groups(tmp_path):
    summary = train(
        tiny(
            "data.imbalance_factor=10", "data.samples_per_class=32", "train.epochs=1", "data.drop_last=true"
        ),
        tmp_path / "lt",
    )
    counts = summary["train_class_counts"]
    assert counts[0] == 32 and counts[-1] == 3
    record = read_metrics(tmp_path / "lt")[0]
    assert set(record["group_acc"]) == {"many", "medium", "few"}


def test_adamw_and_eval_every(tmp_path):
    run_dir = tmp_path / "run"
    train(
        tiny(
            "optim.name=adamw",
            "optim.lr=0.001",
            "train.eval_every=2",
            "schedule.name=constant",
            "schedule.warmup_epochs=0",
        ),
        run_dir,
    )
    records = read_metrics(run_dir)
    assert ["test_acc" in r for r in records] == [False, True, True]  # every 2nd epoch and the last
    assert all(r["lr"] == pytest.approx(0.001) for r in records)


def test_lr_schedules():
    recipe = ScheduleConfig(name="multistep", warmup_epochs=5, milestones=[160, 180], factors=[0.01, 0.0001])
    spe = 97
    assert lr_factor(0, spe, 200, recipe) == pytest.approx(1 / (5 * spe))
    assert lr_factor(5 * spe - 1, spe, 200, recipe) == pytest.approx(1.0)
    assert lr_factor(100 * spe, spe, 200, recipe) == 1.0
    assert lr_factor(160 * spe - 1, spe, 200, recipe) == 1.0
    assert lr_factor(160 * spe, spe, 200, recipe) == pytest.approx(0.01)
    assert lr_factor(180 * spe, spe, 200, recipe) == pytest.approx(0.0001)
    cosine = ScheduleConfig(name="cosine", final_factor=0.1)
    assert lr_factor(0, 10, 20, cosine) == pytest.approx(1.0)
    assert lr_factor(100, 10, 20, cosine) == pytest.approx(0.55)
    assert lr_factor(200, 10, 20, cosine) == pytest.approx(0.1)
    assert lr_factor(7, 10, 20, ScheduleConfig(name="constant")) == 1.0


def test_python_api_takes_a_dict(tmp_path):
    cfg = tiny("train.epochs=1").to_dict()
    summary = train(cfg, tmp_path / "run")
    assert summary["epochs_done"] == 1 and summary["last"]["acc"] >= 0


def test_reference_loader_runs(tmp_path):
    summary = train(tiny("data.loader=reference", "train.epochs=1"), tmp_path / "ref")
    assert summary["finished"]


@pytest.mark.slow
def test_compiled_stages_give_the_eager_output_with_the_mixer_between_them():
    torch.manual_seed(0)
    eager = build_model("small_cnn", 4, feature_dim=8)
    compiled = copy.deepcopy(eager)
    compile_stages(compiled)
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1])
    def mixer():
        return build_mixer("am_mixup", 4, gamma=0.95, generator=torch.Generator().manual_seed(0))

    outputs = [mixed_forward(model, x, y, mixer(), 2.0) for model in (eager, compiled)]
    torch.testing.assert_close(outputs[1].logits, outputs[0].logits, rtol=1e-4, atol=1e-5)
    assert torch.equal(outputs[1].targets, outputs[0].targets)


def test_model_in_channels_is_accepted_when_it_matches_the_dataset():
    from ammix.engine.loop import load_data, make_model

    train_set, _ = load_data(tiny())
    assert make_model(tiny("model.in_channels=3"), train_set).stages[0][0].in_channels == 3
    with pytest.raises(ConfigError) as err:
        make_model(tiny("model.in_channels=1"), train_set)
    assert str(err.value) == (
        "model.in_channels = 1: the dataset sets it (synthetic has 3 channels); remove the key"
    )


def test_pretrained_weights_by_an_unknown_name_or_unreadable_are_one_line_errors(monkeypatch):
    import urllib.error

    import ammix.models.torchvision_resnet as tv
    from ammix.engine import DataError
    from ammix.engine.loop import load_data, make_model

    def resnet18(weights: str):  # the tiny run's data, without its small CNN's options
        return load_config(SMOKE, [o for o in TINY if not o.startswith("model.")]
                           + ["model.name=resnet18", f"model.weights={weights}"])

    train_set, _ = load_data(tiny())
    unknown = "weights must be null or one of IMAGENET1K_V1, DEFAULT, got 'imagenet'"
    with pytest.raises(ConfigError, match=unknown):
        make_model(resnet18("imagenet"), train_set)

    build = tv._CONSTRUCTORS["resnet18"]

    def offline(weights, **options):  # a download without a network
        if weights is None:
            return build(weights=None, **options)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setitem(tv._CONSTRUCTORS, "resnet18", offline)
    with pytest.raises(DataError) as err:
        make_model(resnet18("IMAGENET1K_V1"), train_set)
    assert str(err.value).startswith(
        "model 'resnet18': a file it needs could not be read (<urlopen error [Errno -2] Name or "
        "service not known>); pretrained weights are downloaded once"
    )
    with pytest.raises(DataError):  # torchvision's spelling of the name is accepted, so it is downloaded
        make_model(resnet18("ResNet18_Weights.IMAGENET1K_V1"), train_set)


def test_a_corrupt_pretrained_download_in_the_cache_is_a_one_line_error(tmp_path, monkeypatch):
    from torchvision.models import ResNet18_Weights

    from ammix.engine import DataError
    from ammix.engine.loop import load_data, make_model

    cached = tmp_path / "hub" / "checkpoints" / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x80\x02cut short")  # found in the cache, so nothing is downloaded
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cfg = load_config(SMOKE, [o for o in TINY if not o.startswith("model.")]
                      + ["model.name=resnet18", "model.weights=IMAGENET1K_V1"])
    train_set, _ = load_data(tiny())
    with pytest.raises(DataError) as err:
        make_model(cfg, train_set)
    assert str(err.value).startswith(
        "model 'resnet18': its pretrained weights could not be read (UnpicklingError: "
    )
    assert str(err.value).endswith("delete it and download again") and "\n" not in str(err.value)
    whole = tmp_path / "whole.pth"
    torch.save({"w": torch.zeros(1000)}, whole)
    for cut, error in ((-100, r"OSError: \[Errno 22\]"), (-5000, "RuntimeError: PytorchStreamReader failed")):
        cached.write_bytes(whole.read_bytes()[:cut])  # a zip cut short
        with pytest.raises(DataError, match=rf"its pretrained weights could not be read \({error}"):
            make_model(cfg, train_set)

    import ammix.models.torchvision_resnet as tv

    def mismatched(weights, **options):  # the weights read, but do not fit: not the cache's fault
        raise RuntimeError("Error(s) in loading state_dict for ResNet:\n\tsize mismatch for conv1.weight")

    monkeypatch.setitem(tv._CONSTRUCTORS, "resnet18", mismatched)
    with pytest.raises(RuntimeError, match="size mismatch"):
        make_model(cfg, train_set)


def test_damaged_timm_weights_are_a_one_line_error_naming_its_caches(tmp_path):
    pytest.importorskip("timm")
    from ammix.engine import DataError
    from ammix.engine.loop import load_data, make_model

    damaged = tmp_path / "model.safetensors"
    damaged.write_bytes(b"garbage\x00\x01")  # as a download cut short in the Hugging Face cache
    cfg = load_config(SMOKE, [o for o in TINY if not o.startswith("model.")]
                      + ["model.name=timm:resnet18", "model.pretrained=true"])
    cfg.model.options["pretrained_cfg_overlay"] = {"file": str(damaged)}  # timm reads it, offline
    train_set, _ = load_data(tiny())
    with pytest.raises(DataError) as err:
        make_model(cfg, train_set)
    message = str(err.value)  # safetensors' own words vary with its version
    assert message.startswith(
        "model 'timm:resnet18': its pretrained weights could not be read (SafetensorError: "
    )
    assert message.endswith(
        "a damaged file in the Hugging Face cache ($HF_HOME/hub)? delete it and download again"
    )
    assert "\n" not in message
    whole = tmp_path / "whole.pth"
    torch.save({"w": torch.zeros(1000)}, whole)
    damaged.with_suffix(".pth").write_bytes(whole.read_bytes()[:-5000])  # a torch zip: either cache, for timm
    cfg.model.options["pretrained_cfg_overlay"] = {"file": str(damaged.with_suffix(".pth"))}
    either = r" the Hugging Face cache \(\$HF_HOME/hub\) or the torch hub cache"
    with pytest.raises(DataError, match="PytorchStreamReader.*" + either):
        make_model(cfg, train_set)
    legacy = tmp_path / "legacy.pth"  # torch's pre-zip format, cut short: torch says "might be corrupted"
    torch.save({"w": torch.zeros(1000)}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:-3000])
    garbage = tmp_path / "garbage.pth"  # timm re-raises torch's UnpicklingError as a RuntimeError
    garbage.write_bytes(b"garbage\x00\x01")
    for path, error in ((legacy, "RuntimeError: unexpected EOF"), (garbage, "RuntimeError: weights_only")):
        cfg.model.options["pretrained_cfg_overlay"] = {"file": str(path)}
        with pytest.raises(DataError, match=f"could not be read \\({error}.*{either}"):
            make_model(cfg, train_set)


def test_resume_of_a_run_from_before_the_loss_section(tmp_path):
    from ammix.engine.checkpoint import save_checkpoint

    run_dir = tmp_path / "run"
    train(tiny("train.stop_after_epochs=1"), run_dir)
    ckpt = load_checkpoint(run_dir / "last.pt")
    del ckpt["config"]["loss"]  # as written before the loss section existed: its defaults
    save_checkpoint(run_dir / "last.pt", ckpt)
    assert train(tiny(), run_dir, resume=True)["finished"]
    with pytest.raises(ConfigError, match=r"loss.name: 'ce' -> 'ldam'"):
        train(tiny("loss.name=ldam", "loss.scale=1"), run_dir, resume=True)


def test_bf16_on_a_cpu_without_it_warns_and_auto_trains_in_float32(tmp_path, monkeypatch, capsys):
    from ammix.engine import setup

    cpu = torch.device("cpu")
    monkeypatch.setattr(setup, "cpu_has_native_bf16", lambda: False)
    assert setup.resolve_amp("auto", cpu) is None and setup.resolve_amp("bf16", cpu) is torch.bfloat16
    assert "emulated" in setup.emulated_bf16_warning("bf16", cpu)
    assert setup.emulated_bf16_warning("auto", cpu) is None
    assert setup.emulated_bf16_warning("off", cpu) is None
    train(tiny("train.epochs=1", "train.amp=bf16"), tmp_path / "bf16")
    header, warning = capsys.readouterr().out.splitlines()[:2]
    assert header.endswith(f"on cpu with bfloat16 autocast; run folder {tmp_path / 'bf16'}")
    assert warning.startswith("ammix: warning: train.amp = 'bf16' on a CPU without native bf16")

    monkeypatch.setattr(setup, "cpu_has_native_bf16", lambda: True)
    assert setup.resolve_amp("auto", cpu) is torch.bfloat16
    assert setup.emulated_bf16_warning("bf16", cpu) is None
    train(tiny("train.epochs=1", "train.amp=off"), tmp_path / "off")
    assert "on cpu in float32; run folder" in capsys.readouterr().out.splitlines()[0]
