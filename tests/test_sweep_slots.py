"""Packing sweep runs onto GPUs: ``--gpus 0,0,1`` runs three at a time, two on GPU 0 and one on GPU 1,
each run seeing only its GPU (CUDA_VISIBLE_DEVICES); and the order of coarse-to-fine stages; checked
with a fake ``ammix train``."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from common import SMOKE

from ammix.cli import main
from ammix.experiments import sweep as S


def test_gpu_slots():
    assert S.gpu_slots(None, 3) == [None, None, None]
    assert S.gpu_slots("0,0,0,0", 1) == ["0", "0", "0", "0"]
    assert S.gpu_slots("0, 1", 5) == ["0", "1"]
    with pytest.raises(S.SweepError, match="GPU ids"):
        S.gpu_slots("0,cuda:1", 1)


def test_repeated_gpu_ids_pack_runs_onto_one_gpu(tmp_path, monkeypatch, capsys):
    lock, running, peak, seen = threading.Lock(), Counter(), Counter(), []

    def fake_train(processes, command, stdout, stderr, env):
        gpu = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            running[gpu] += 1
            running["all"] += 1
            for key in (gpu, "all"):
                peak[key] = max(peak[key], running[key])
            seen.append(gpu)
        time.sleep(0.05)
        with lock:
            running[gpu] -= 1
            running["all"] -= 1
        return 0

    monkeypatch.setattr(S.RunProcesses, "call", fake_train)
    monkeypatch.setattr(S, "analyze_run", lambda run_dir: None)
    sweep = S.load_sweep(SMOKE, methods=["ce", "mixup", "cutmix", "remix"], seeds=[0, 1, 2])
    assert S.run_sweep(sweep, tmp_path, gpus=S.gpu_slots("0,0,1", 1)) == 0
    assert len(seen) == 12 and set(seen) == {"0", "1"}
    assert peak["all"] == 3 and peak["0"] == 2 and peak["1"] == 1
    assert "(3 at a time)" in capsys.readouterr().out


def test_bad_gpu_list_is_a_usage_error(capsys):
    assert main(["sweep", str(SMOKE), "--methods", "ce", "--gpus", "a,b", "--dry-run"]) == 2
    assert "--gpus 'a,b'" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", [1, 2])
def test_coarse_to_fine_order(tmp_path, monkeypatch, jobs):
    # One at a time, each pipeline is whole before the next starts (a sweep stopped early leaves whole
    # pipelines); several at a time, every pre-training comes before any transfer stage.
    order = []

    def fake_train(processes, command, stdout, stderr, env):
        run_dir = Path(command[command.index("--run-dir") + 1])
        order.append("/".join(run_dir.parts[-3:]))
        (run_dir / "summary.json").write_text("{}")
        return 0

    monkeypatch.setattr(S.RunProcesses, "call", fake_train)
    monkeypatch.setattr(S, "analyze_run", lambda run_dir: None)
    spec = tmp_path / "c2f.yaml"
    spec.write_text(yaml.safe_dump({"name": "c2f", "config": str(SMOKE), "protocol": "coarse_to_fine",
                                    "seeds": [0], "variants": {"ce": {}, "am": {}}}, sort_keys=False))
    assert S.run_sweep(S.load_sweep(spec), tmp_path / "runs", jobs=jobs) == 0
    pipelines = ["ce/seed0/pretrain", "ce/seed0/probe", "ce/seed0/finetune",
                 "am/seed0/pretrain", "am/seed0/probe", "am/seed0/finetune"]
    if jobs == 1:
        assert order == pipelines
    else:
        assert sorted(order[:2]) == ["am/seed0/pretrain", "ce/seed0/pretrain"]
        assert sorted(order[2:]) == sorted(pipelines[1:3] + pipelines[4:])


def test_a_run_that_ends_as_the_sweep_stops_is_reported_done(tmp_path, monkeypatch, capsys):
    # The run exits 0 just as the sweep is stopped: it finished (a new start reuses it), so it reads
    # "done", not "stopped ... resumes"; its analysis waits for the next start instead of the exit.
    analysed = []

    def fake_train(processes, command, stdout, stderr, env):
        run_dir = Path(command[command.index("--run-dir") + 1])
        (run_dir / "summary.json").write_text('{"finished": true}')  # as a run that trained every epoch
        processes.stop()
        return 0

    monkeypatch.setattr(S.RunProcesses, "call", fake_train)
    monkeypatch.setattr(S, "analyze_run", analysed.append)
    sweep = S.load_sweep(SMOKE, methods=["ce"], seeds=[0])
    assert S.run_sweep(sweep, tmp_path) == 0
    out = capsys.readouterr().out
    assert "ce/seed0: done in" in out and "stopped with the sweep" not in out, out
    assert analysed == []


def test_a_failed_capture_reruns_eagerly_resuming_unless_the_sweep_stops(tmp_path, monkeypatch, capsys):
    commands = []

    def capture_fails_after_a_checkpoint(processes, command, stdout, stderr, env):
        commands.append(command)
        run_dir = Path(command[command.index("--run-dir") + 1])
        if "train.cuda_graph=off" in command:
            (run_dir / "summary.json").write_text("{}")
            return 0
        (run_dir / "last.pt").write_bytes(b"")
        return S.CAPTURE_FAILED_EXIT

    monkeypatch.setattr(S.RunProcesses, "call", capture_fails_after_a_checkpoint)
    monkeypatch.setattr(S, "analyze_run", lambda run_dir: None)
    assert S.run_sweep(S.load_sweep(SMOKE, methods=["mixup"], seeds=[0]), tmp_path / "a") == 0
    assert len(commands) == 2 and commands[1][:-3] == [*commands[0][:-3], "train.cuda_graph=off"]
    assert [c[-1] for c in commands] == ["--fresh", "--resume"]
    out = capsys.readouterr().out
    assert "mixup/seed0: its CUDA graph capture failed; again with eager steps" in out
    assert "mixup/seed0: done" in out

    def stopped(processes, command, stdout, stderr, env):  # the sweep is stopped as the run fails
        commands.append(command)
        processes.stopping = True
        return S.CAPTURE_FAILED_EXIT

    commands.clear()
    monkeypatch.setattr(S.RunProcesses, "call", stopped)
    S.run_sweep(S.load_sweep(SMOKE, methods=["mixup"], seeds=[0]), tmp_path / "b")  # (its signal exits)
    assert len(commands) == 1
    assert "mixup/seed0: stopped with the sweep (no checkpoint yet: starts again)" in capsys.readouterr().out
