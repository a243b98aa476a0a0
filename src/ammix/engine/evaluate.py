"""Test-set evaluation: top-1 overall and per class, balanced accuracy, many/medium/few groups."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable

import torch
from torch import nn

from .distributed import all_reduce_sum


def device_batches(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device, channels_last: bool = False
):
    """``(x, y)`` of each batch on ``device``, ``x`` in channels_last when asked (4-D inputs)."""
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


@torch.no_grad()
def class_counts_correct(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class (correct, total) counts of ``model`` on ``batches``, summed over ranks (int64 CPU)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros(num_classes, dtype=torch.long, device=device)
    total = torch.zeros(num_classes, dtype=torch.long, device=device)
    for x, y in device_batches(batches, device, channels_last):
        with autocast or contextlib.nullcontext():
            pred = model(x).argmax(1)
        total += torch.bincount(y, minlength=num_classes)
        correct += torch.bincount(y[pred == y], minlength=num_classes)
    model.train(was_training)
    both = all_reduce_sum(torch.stack([correct, total]))
    return both[0].cpu(), both[1].cpu()


def accuracy_metrics(
    correct: torch.Tensor, total: torch.Tensor, groups: dict[str, list[int]] | None = None
) -> dict:
    """Accuracies from per-class counts: ``acc`` (top-1, %), ``balanced_acc`` (mean of the per-class
    accuracies over the classes present, %), ``per_class_acc`` (list, None for an absent class) and,
    given ``groups`` (``ammix.data.shot_groups``), ``group_acc`` {many, medium, few} (None when empty)."""
    per_class = [
        100.0 * c / t if t > 0 else None for c, t in zip(correct.tolist(), total.tolist(), strict=True)
    ]
    present = [a for a in per_class if a is not None]
    n = int(total.sum())
    out = {
        "acc": 100.0 * int(correct.sum()) / n if n else math.nan,
        "balanced_acc": sum(present) / len(present) if present else math.nan,
        "per_class_acc": per_class,
    }
    if groups is not None:
        out["group_acc"] = {}
        for name, members in groups.items():
            accs = [per_class[i] for i in members if per_class[i] is not None]
            out["group_acc"][name] = sum(accs) / len(accs) if accs else None
    return out
