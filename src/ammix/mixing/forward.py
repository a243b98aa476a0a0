"""Run a staged model with a mixer acting at the stage boundary it chooses."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class MixedOutput(NamedTuple):
    """Logits of the mixed batch, their soft targets, and logits of the clean batch (or None)."""

    logits: torch.Tensor
    targets: torch.Tensor
    clean_logits: torch.Tensor | None


def mixed_forward(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, mixer, epoch: float):
    """One forward pass of a ``StagedModel`` (or a DDP wrapper of one) with `mixer` applied inside.

    `epoch` is the (fractional) training time in epochs; it is required, since AM-mixup at epoch 0
    (lam = 1) would silently train plain cross-entropy. The mixer acts at boundary
    ``mixer.choose_stage(num_stages)`` (0 = input, ``num_stages`` = feature). When
    ``mixer.clean_weight > 0`` the clean activations ride along in the same pass, concatenated after the
    mixed ones, so the extra clean loss costs no second forward through the stages before the mixing
    site. Returns a ``MixedOutput``.
    """
    staged = getattr(model, "module", model)  # unwrap DistributedDataParallel
    site = mixer.choose_stage(len(staged.stages))
    mixed = {}

    def at_boundary(k: int, h: torch.Tensor) -> torch.Tensor:
        if k != site:
            return h
        h_mixed, mixed["targets"] = mixer(h, labels, epoch=epoch)
        mixed["rows"] = h_mixed.shape[0]
        return torch.cat([h_mixed, h]) if mixer.clean_weight > 0 else h_mixed

    logits = model(x, at_boundary=at_boundary)
    rows = mixed["rows"]
    clean_logits = logits[rows:] if mixer.clean_weight > 0 else None
    return MixedOutput(logits[:rows], mixed["targets"], clean_logits)
