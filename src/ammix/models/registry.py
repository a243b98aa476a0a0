"""``build_model``: backbones by name."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any

from .base import StagedModel
from .cifar_resnet import PreActResNet18, ResNet32
from .external import from_timm, from_torchvision
from .heads import HEADS
from .small_cnn import SmallCNN
from .torchvision_resnet import TorchvisionResNet


def _torchvision(arch: str) -> Callable[..., StagedModel]:
    def build(num_classes: int, in_channels: int = 3, weights: Any = None, zero_init_residual: bool = False):
        return TorchvisionResNet(
            arch, num_classes, in_channels=in_channels, weights=weights, zero_init_residual=zero_init_residual
        )

    build.__name__ = arch
    return build


_BUILDERS: dict[str, Callable[..., StagedModel]] = {
    "resnet32": ResNet32,
    "preact_resnet18": PreActResNet18,
    "small_cnn": SmallCNN,
    "resnet18": _torchvision("resnet18"),
    "resnet34": _torchvision("resnet34"),
    "resnet50": _torchvision("resnet50"),
}

MODELS: tuple[str, ...] = tuple(_BUILDERS)

# ``timm:<name>`` and ``torchvision:<name>``: any model of those libraries, options to its constructor.
EXTERNAL_PREFIXES = {"timm": from_timm, "torchvision": from_torchvision}


def _options(builder: Callable[..., StagedModel]) -> list[str]:
    params = inspect.signature(builder).parameters
    return [p for p in params if p not in ("self", "num_classes", "in_channels")]


def build_model(
    name: str, num_classes: int, in_channels: int = 3, head: str = "linear", **kwargs: Any
) -> StagedModel:
    """Build the backbone ``name`` (one of ``MODELS``) as a ``StagedModel``.

    Takes ``num_classes`` and ``in_channels`` (both positive integers) and the backbone's own options
    (``small_cnn``: ``feature_dim``, ``width``, ``hidden_dim``; ``preact_resnet18``: ``width``;
    ``resnet32``: ``blocks_per_group``; torchvision ResNets: ``weights``, ``zero_init_residual``).
    ``timm:<name>`` and ``torchvision:<name>`` build that library's model (random init unless
    ``pretrained=True``) through ``from_timm`` / ``from_torchvision``, every other option passed to its
    constructor (there an unknown option is the library's ``TypeError``).
    ``head``: ``linear`` (default) or ``cosine`` (``CosineLinear``, the classifier LDAM is trained with).
    Raises ``ValueError`` for an unknown name (listing the known ones) or an unknown option (naming it).
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    model = _build_backbone(name, num_classes, in_channels, **kwargs)
    if head != "linear":
        model.head = HEADS[head](model.feature_dim, model.num_classes)
    return model


def _build_backbone(name: str, num_classes: int, in_channels: int, **kwargs: Any) -> StagedModel:
    for arg, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    prefix, _, external_name = name.partition(":")
    if external_name and prefix in EXTERNAL_PREFIXES:
        return EXTERNAL_PREFIXES[prefix](external_name, num_classes, in_channels=in_channels, **kwargs)
    if name not in _BUILDERS:
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(MODELS)}, timm:<name>, torchvision:<name>"
        )
    builder = _BUILDERS[name]
    allowed = _options(builder)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for model {name!r}; "
            f"its options: {', '.join([*allowed, 'head'])}"
        )
    _check_sizes(builder, kwargs)
    return builder(num_classes, in_channels=in_channels, **kwargs)


def _check_sizes(builder: Callable[..., StagedModel], options: dict[str, Any]) -> None:
    """ValueError unless each option with an integer default (a width, a depth) is a positive integer and
    each with a boolean default a boolean: a 0 or 2.5 would fail inside the first step, a string count
    as true."""
    params = inspect.signature(builder).parameters
    for key, value in options.items():
        default = params[key].default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, got {value!r}")
        elif isinstance(default, int) and not (
            isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1
        ):
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
