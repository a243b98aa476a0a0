"""TensorBoard extras of a run (the per-epoch scalars are written by the loop): the 2-D feature map."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ammix.analysis import feature_map_image


@torch.no_grad()
def log_feature_map(
    writer,
    model: nn.Module,
    loss_fn,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    class_names: Sequence[str],
    title: str,
    step: int,
) -> None:
    """Add the feature map of a model with a 2-D feature on ``batches`` (the paper's figure) to ``writer``
    as the image ``feature_map`` at ``step``, shaded by the model's predicted distribution at test time
    (``loss_fn.predictive_logits`` of its head: LDAM's scaled cosines)."""
    was_training = model.training
    model.eval()
    features, labels = [], []
    for x, y in batches:
        features.append(model.features(x.to(device)).float().cpu())
        labels.append(y.cpu())
    model.train(was_training)

    def logits_of(f: torch.Tensor) -> torch.Tensor:
        return loss_fn.predictive_logits(model.head(f.to(device)))

    panel = ("test features", torch.cat(features), torch.cat(labels), logits_of, None)
    writer.add_image("feature_map", feature_map_image([panel], class_names, title), step, dataformats="HWC")
