"""A small CNN with a configurable (e.g. 2-D) feature, for the toy feature-map experiments."""

from __future__ import annotations

from torch import nn

from .base import StagedModel


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(StagedModel):
    """Three conv-BN-ReLU stages (widths ``width``, ``2 width``, ``4 width``) and an MLP to the feature.

    Takes ``B x in_channels x H x W`` of any small size (8x8 digits, 28x28, 32x32: 2x2 max pooling with
    ``ceil_mode`` between stages, then adaptive average pooling), returns logits ``B x num_classes``.
    The last stage ends with ``Linear(4 width, hidden_dim) + ReLU + Linear(hidden_dim, feature_dim)``
    with no activation, so a 2-D feature (the default) is free to spread over the whole plane.

    Stages: ``[conv1, maxpool + conv2, maxpool + conv3 + avgpool + flatten + MLP]``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        feature_dim: int = 2,
        width: int = 32,
        hidden_dim: int = 128,
    ) -> None:
        for name, value in (("feature_dim", feature_dim), ("width", width), ("hidden_dim", hidden_dim)):
            if int(value) != value or value < 1:
                raise ValueError(f"small_cnn: {name} must be a positive integer, got {value!r}")
        stages = [
            nn.Sequential(*_conv_block(in_channels, width)),
            nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), *_conv_block(width, 2 * width)),
            nn.Sequential(
                nn.MaxPool2d(2, ceil_mode=True),
                *_conv_block(2 * width, 4 * width),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(4 * width, hidden_dim),
                nn.ReLU(inplace=True),
                nn.Linear(hidden_dim, feature_dim),
            ),
        ]
        super().__init__(stages, feature_dim=feature_dim, num_classes=num_classes)
