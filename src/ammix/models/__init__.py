"""Staged backbones: every model is a ``StagedModel`` whose ``stages`` a mixer can act between.

``build_model(name, num_classes, in_channels=3, **options)`` builds one of ``MODELS``: ``resnet32``
(CIFAR, Cao et al. 2019), ``preact_resnet18`` (CIFAR, He et al. 2016 identity mappings),
``small_cnn`` (configurable feature, default 2-D), and torchvision's ``resnet18``, ``resnet34``,
``resnet50`` (He et al. 2016); ``timm:<name>`` and ``torchvision:<name>`` wrap any model of those
libraries (``from_timm``, ``from_torchvision``, ``from_encoder_head`` in ``ammix.models.external``).
"""

from .base import StagedModel
from .cifar_resnet import BasicBlock, PadShortcut, PreActBlock, PreActResNet18, ResNet32
from .external import from_encoder_head, from_timm, from_torchvision
from .heads import CosineLinear
from .registry import MODELS, build_model
from .small_cnn import SmallCNN
from .torchvision_resnet import TorchvisionResNet

__all__ = [
    "MODELS",
    "BasicBlock",
    "CosineLinear",
    "PadShortcut",
    "PreActBlock",
    "PreActResNet18",
    "ResNet32",
    "SmallCNN",
    "StagedModel",
    "TorchvisionResNet",
    "build_model",
    "from_encoder_head",
    "from_timm",
    "from_torchvision",
]
