"""Distributed training on CPU with gloo: torchrun end to end, the DDP step against a single-process
step on the same global batch, and a crashed rank ending the job (non-zero exit, no hang)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from common import SMOKE, tiny
from torch import nn

from ammix.engine import read_metrics, train_step, wrap_ddp
from ammix.engine.distributed import mean_over_ranks
from ammix.losses import SoftCrossEntropy
from ammix.mixing import build_mixer
from ammix.models import StagedModel

TINY = tiny(2)
NUM_CLASSES, BATCH, STEPS = 3, 8, 3


def torchrun(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "ammix",
        *args,
    ]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.mark.slow
def test_torchrun_two_ranks_writes_one_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    proc = torchrun("train", str(SMOKE), *TINY, "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.yaml",
        "last.pt",
        "metrics.jsonl",
        "summary.json",
    ]
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1, 2]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["finished"]
    # accuracy counts are gathered over both ranks' shards: the whole test set is evaluated
    per_class = summary["last"]["per_class_acc"]
    assert len(per_class) == 4 and all(a is not None for a in per_class)
    assert proc.stdout.count("epoch 1/2") == 1  # only rank 0 logs
    # A resume in another number of processes is refused: its per-rank batches, pairings and random
    # streams differ, so it would not end as the uninterrupted run.
    stopped = tmp_path / "stopped"
    assert torchrun("train", str(SMOKE), *TINY, "train.stop_after_epochs=1", "--run-dir", str(stopped)
                    ).returncode == 0
    resume = [sys.executable, "-m", "ammix", "train", str(SMOKE), *TINY, "--run-dir", str(stopped),
              "--resume"]
    proc = subprocess.run(resume, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2 and proc.stderr.strip().endswith(
        "was started with another config (2 process(es), now 1); use the same config, or start again with "
        "--fresh")


@pytest.mark.slow
def test_crashed_rank_makes_the_job_fail_without_hanging(tmp_path):
    proc = torchrun(
        "train",
        str(SMOKE),
        *TINY,
        "--run-dir",
        str(tmp_path / "run"),
        env={"AMMIX_FAULT_RANK": "1"},
        timeout=120,
    )
    assert proc.returncode != 0
    assert "fault injected on rank 1" in proc.stderr


def _mlp(seed: int = 0) -> StagedModel:
    torch.manual_seed(seed)  # no batch norm: per-rank batches give the same update as the global batch
    stages = [
        nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU()),
        nn.Sequential(nn.Linear(16, 6), nn.Tanh()),
    ]
    return StagedModel(stages, feature_dim=6, num_classes=NUM_CLASSES)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, BATCH, 3, 2, 2, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (STEPS, BATCH), generator=gen)
    return x, y


def _loss(kind: str) -> SoftCrossEntropy:
    """Plain cross-entropy, or class-balanced weights (DRW from the start): with weights a rank's target
    mass depends on the classes it drew, so each rank divides by the ranks' mean mass (as the engine
    sets it under torchrun), not its own."""
    loss_fn = SoftCrossEntropy() if kind == "ce" else SoftCrossEntropy([40, 20, 8], drw_epoch=0)
    loss_fn.mass_of = mean_over_ranks
    return loss_fn


def _steps(model: nn.Module, wrapped: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str) -> None:
    mixer = build_mixer("ce", NUM_CLASSES)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3, nesterov=True)
    for s in range(STEPS):
        train_step(wrapped, mixer, opt, x[s], y[s], epoch=float(s), num_classes=NUM_CLASSES,
                   loss_fn=_loss(loss))


def _ddp_worker(rank: int, world: int, init_file: str, out: str, loss: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x, y = _data()
        half = BATCH // world
        shard = slice(rank * half, (rank + 1) * half)
        model = _mlp()
        wrapped = wrap_ddp(model, torch.device("cpu"))
        assert isinstance(wrapped, nn.parallel.DistributedDataParallel)
        _steps(model, wrapped, x[:, shard], y[:, shard], loss)
        torch.save(model.state_dict(), f"{out}.rank{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce", "class-weighted"])
def test_ddp_step_equals_single_process_step_on_the_global_batch(tmp_path, loss):
    out = str(tmp_path / "ddp")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), out, loss), nprocs=2, join=True)

    x, y = _data()
    single = _mlp()
    assert wrap_ddp(single, torch.device("cpu")) is single  # no process group: no wrapper
    _steps(single, single, x, y, loss)

    start = _mlp().state_dict()
    for rank in range(2):
        state = torch.load(f"{out}.rank{rank}", weights_only=True)
        for key, value in single.state_dict().items():
            assert not torch.equal(value, start[key]), key  # the steps did move the weights
            torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6, msg=key)
