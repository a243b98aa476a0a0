"""The staged-model base class shared by every backbone."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


class StagedModel(nn.Module):
    """A classifier split into stages, so a mixer can act at the input, between stages or on the feature.

    Takes ``stages`` (modules applied in order; the last one ends with global pooling and flattening,
    so it returns the ``B x feature_dim`` feature), ``feature_dim`` and ``num_classes``; ``head`` is a
    ``nn.Linear(feature_dim, num_classes)`` (a fresh one unless given). ``forward(x)`` returns the
    ``B x num_classes`` logits, ``features(x)`` the ``B x feature_dim`` feature.

    Stage boundaries are numbered as in the mixers' ``choose_stage``: 0 is the input, ``k`` the output
    of ``stages[k - 1]``, ``len(stages)`` the feature.
    """

    def __init__(
        self,
        stages: Iterable[nn.Module],
        feature_dim: int,
        num_classes: int,
        head: nn.Linear | None = None,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        if len(self.stages) == 0:
            raise ValueError("a StagedModel needs at least one stage")
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        if head is None:
            head = nn.Linear(self.feature_dim, self.num_classes)
        if head.in_features != self.feature_dim or head.out_features != self.num_classes:
            raise ValueError(
                f"head is Linear({head.in_features}, {head.out_features}), expected "
                f"Linear({self.feature_dim}, {self.num_classes})"
            )
        self.head = head

    @property
    def num_stages(self) -> int:
        """The number of stages (the feature is stage boundary ``num_stages``)."""
        return len(self.stages)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every stage to ``x``; returns the ``B x feature_dim`` feature."""
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor, at_boundary: Callable | None = None) -> torch.Tensor:
        """Returns the ``B' x num_classes`` logits of ``x``.

        ``at_boundary(k, h) -> h``, when given, is applied at every stage boundary k = 0 (the input)
        .. ``num_stages`` (the feature) and may change the batch (``ammix.mixing.mixed_forward`` mixes
        there). It runs inside ``forward`` so that DistributedDataParallel sees one ordinary pass.
        """
        if at_boundary is None:
            return self.head(self.features(x))
        for k, stage in enumerate(self.stages):
            x = stage(at_boundary(k, x))
        return self.head(at_boundary(len(self.stages), x))
