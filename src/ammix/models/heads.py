"""Classifier heads: the default ``nn.Linear`` and the cosine head LDAM is trained with."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineLinear(nn.Linear):
    """Cosine classifier (LDAM-DRW's ``NormedLinear``, Cao et al. 2019): the logit of class c is the
    cosine between the feature and the class weight ``w_c``, in [-1, 1], with no bias.

    LDAM multiplies these bounded logits by its scale s (30); on an unbounded linear head that scale
    makes the logits, and the loss, blow up.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=False)

    @property
    def normalized_weight(self) -> torch.Tensor:
        """The unit-norm class weights: the linear head with these rows and no bias has the same argmax
        regions (the feature's norm is common to every class), which is what the analysis draws."""
        return F.normalize(self.weight, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), self.normalized_weight)


HEADS = {"linear": nn.Linear, "cosine": CosineLinear}
