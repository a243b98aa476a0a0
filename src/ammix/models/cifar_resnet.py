"""CIFAR ResNets: ResNet-32 (option-A shortcuts) and PreAct ResNet-18."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import StagedModel


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class PadShortcut(nn.Module):
    """Option-A shortcut of He et al. (2016): the identity subsampled by ``stride``, zero-padded in channels.

    Takes ``B x in_planes x H x W``, returns ``B x out_planes x ceil(H / stride) x ceil(W / stride)``;
    has no parameters. The new channels are split evenly before and after the old ones, as in the
    LDAM-DRW code (Cao et al. 2019).
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(f"cannot pad {in_planes} channels down to {out_planes}")
        self.stride = stride
        self.pad_before = (out_planes - in_planes) // 2
        self.pad_after = out_planes - in_planes - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (He et al. 2016), option-A shortcut.

    Takes ``B x in_planes x H x W``, returns ``B x planes x H / stride x W / stride``.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = PadShortcut(in_planes, planes, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016, identity mappings): BN-ReLU-conv twice.

    Takes ``B x in_planes x H x W``, returns ``B x planes x H / stride x W / stride``. As in the
    manifold-mixup code (Verma et al. 2019), a projection shortcut (1x1 conv) is applied to the
    pre-activated input when the shape changes.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


def _kaiming_init(module: nn.Module) -> None:
    # LDAM-DRW's ``_weights_init``: Kaiming-normal weights for every conv and linear layer.
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight)


class ResNet32(StagedModel):
    """CIFAR ResNet-32 of the long-tailed literature (He et al. 2016; Cao et al. 2019, LDAM-DRW).

    A 3x3 conv stem (16 channels), then 3 groups of 5 ``BasicBlock`` (widths 16/32/64, the last two
    groups start with stride 2) with option-A (zero-padded identity) shortcuts, global average pooling
    and a linear head; Kaiming-normal init. Takes ``B x in_channels x H x W`` (32x32 on CIFAR), returns
    logits ``B x num_classes``; feature 64-d. About 0.46M parameters with 10 classes.

    Stages: ``[stem + group1, group2, group3 + avgpool + flatten]``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, blocks_per_group: int = 5) -> None:
        widths = (16, 32, 64)
        stem = nn.Sequential(
            _conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        groups = []
        in_planes = widths[0]
        for i, planes in enumerate(widths):
            blocks = []
            for j in range(blocks_per_group):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            groups.append(nn.Sequential(*blocks))
        stages = [
            nn.Sequential(stem, groups[0]),
            groups[1],
            nn.Sequential(groups[2], nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        ]
        super().__init__(stages, feature_dim=widths[-1], num_classes=num_classes)
        self.apply(_kaiming_init)


class PreActResNet18(StagedModel):
    """PreAct ResNet-18 for CIFAR (He et al. 2016, identity mappings; Verma et al. 2019 code style).

    A 3x3 conv stem (64 channels, no pooling), ``PreActBlock`` layers [2, 2, 2, 2] of widths
    64/128/256/512, a final BN + ReLU, global average pooling and a linear head. Takes
    ``B x in_channels x H x W``, returns logits ``B x num_classes``; feature 512-d.

    Stages: ``[conv1 + layer1, layer2, layer3, layer4 + bn + relu + avgpool + flatten]``, so stage
    boundaries 0, 1, 2 are manifold mixup's layers 0, 1, 2 (input, after layer1, after layer2).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64) -> None:
        widths = (width, 2 * width, 4 * width, 8 * width)
        conv1 = _conv3x3(in_channels, widths[0])
        layers = []
        in_planes = widths[0]
        for i, planes in enumerate(widths):
            first_stride = 1 if i == 0 else 2
            layers.append(
                nn.Sequential(PreActBlock(in_planes, planes, first_stride), PreActBlock(planes, planes, 1))
            )
            in_planes = planes
        stages = [
            nn.Sequential(conv1, layers[0]),
            layers[1],
            layers[2],
            nn.Sequential(
                layers[3],
                nn.BatchNorm2d(widths[-1]),
                nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            ),
        ]
        super().__init__(stages, feature_dim=widths[-1], num_classes=num_classes)
