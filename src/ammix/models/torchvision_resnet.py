"""torchvision's ImageNet ResNets (He et al. 2016) wrapped as staged models."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision import models as tv_models
from torchvision.models import resnet as tv_resnet

from .base import StagedModel

_CONSTRUCTORS = {
    "resnet18": tv_resnet.resnet18,
    "resnet34": tv_resnet.resnet34,
    "resnet50": tv_resnet.resnet50,
}


class TorchvisionResNet(StagedModel):
    """A torchvision ImageNet ResNet (He et al. 2016) split into four stages with a fresh head.

    Takes ``arch`` (``resnet18``, ``resnet34`` or ``resnet50``), ``num_classes``, ``in_channels``
    (``conv1`` is replaced when it is not 3; with pretrained weights the new ``conv1`` starts from the
    channel mean of the pretrained one), ``weights`` (passed to torchvision; ``None``: random init) and
    ``zero_init_residual``. Input ``B x in_channels x H x W``, returns logits ``B x num_classes``;
    feature 512-d (2048-d for resnet50).

    Stages: ``[conv1 + bn1 + relu + maxpool + layer1, layer2, layer3, layer4 + avgpool + flatten]``.
    """

    def __init__(
        self,
        arch: str,
        num_classes: int,
        in_channels: int = 3,
        weights: Any = None,
        zero_init_residual: bool = False,
    ) -> None:
        if arch not in _CONSTRUCTORS:
            raise ValueError(f"unknown torchvision ResNet {arch!r}; known: {', '.join(_CONSTRUCTORS)}")
        if isinstance(weights, str):  # torchvision's own lookup is a bare KeyError
            enum = tv_models.get_model_weights(arch)
            try:
                enum.verify(weights)
            except (KeyError, ValueError):
                raise ValueError(
                    f"weights must be null or one of {', '.join(enum.__members__)}, got {weights!r}"
                ) from None
        net = _CONSTRUCTORS[arch](weights=weights, zero_init_residual=zero_init_residual)
        if in_channels != 3:
            old = net.conv1
            new = nn.Conv2d(
                in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                padding=old.padding, bias=False,
            )
            if weights is not None:
                with torch.no_grad():
                    mean = old.weight.mean(dim=1, keepdim=True)
                    new.weight.copy_(mean.repeat(1, in_channels, 1, 1) * (3.0 / in_channels))
            else:
                nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            net.conv1 = new
        feature_dim = net.fc.in_features
        stages = [
            nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1),
            net.layer2,
            net.layer3,
            nn.Sequential(net.layer4, net.avgpool, nn.Flatten()),
        ]
        super().__init__(stages, feature_dim=feature_dim, num_classes=num_classes)
        self.arch = arch
