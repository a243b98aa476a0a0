"""Third-party classifiers (timm, torchvision, any encoder + linear head) as two-stage ``StagedModel``s.

A wrapped model has one stage, the whole encoder (input -> ``B x feature_dim`` feature), and the
model's own final linear classifier as ``head``. So the input mixers act at boundary 0 and AM-mixup
at boundary 1, the feature, through ``ammix.mixing.mixed_forward`` as for the built-in backbones.
Manifold mixup has no hidden boundary here: its layers beyond 0 are ignored.

- timm: ``forward_features`` then ``forward_head(..., pre_logits=True)`` is the encoder, the model's
  classifier (``get_classifier()``) the head.
- torchvision (ResNet, ConvNeXt, ViT, EfficientNet, ...): the model with its last ``nn.Linear`` (the
  final classifier) replaced by ``nn.Identity`` is the encoder, that linear layer the head.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .base import StagedModel


class _TimmEncoder(nn.Module):
    """A timm model up to its pre-logits feature (its classifier already reset to none)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)


def from_encoder_head(encoder: nn.Module, head: nn.Linear) -> StagedModel:
    """A ``StagedModel`` of one stage, ``encoder`` (``B x ...`` -> ``B x head.in_features``), and ``head``."""
    if not isinstance(head, nn.Linear):
        raise ValueError(f"the head must be an nn.Linear, got {type(head).__name__}")
    return StagedModel([encoder], feature_dim=head.in_features, num_classes=head.out_features, head=head)


def from_timm(
    name_or_model: str | nn.Module,
    num_classes: int | None = None,
    in_channels: int = 3,
    pretrained: bool = False,
    **options: Any,
) -> StagedModel:
    """A timm model as a ``StagedModel``: encoder ``forward_features`` + ``forward_head(pre_logits=True)``.

    ``name_or_model``: a timm model name, built by ``timm.create_model(name, pretrained=pretrained,
    num_classes=num_classes, in_chans=in_channels, **options)`` (``pretrained`` downloads the weights
    through timm; ``options`` such as ``img_size`` or ``drop_rate`` go to the constructor), or a built
    timm model (then ``num_classes``, when given, resets its classifier). Raises ``ValueError`` when the
    classifier is not a single ``nn.Linear``.
    """
    if isinstance(name_or_model, str):
        try:
            import timm
        except ImportError:
            raise ValueError('timm is not installed: pip install "ammix[timm]"') from None
        if not timm.is_model(name_or_model):
            raise ValueError(f"unknown timm model {name_or_model!r}; see timm.list_models()")
        extra = {} if num_classes is None else {"num_classes": num_classes}
        net = timm.create_model(
            name_or_model, pretrained=pretrained, in_chans=in_channels, **extra, **options
        )
    else:
        net = name_or_model
        # a model built headless (num_classes=0) has an nn.Identity there, without out_features
        if num_classes is not None and getattr(net.get_classifier(), "out_features", None) != num_classes:
            net.reset_classifier(num_classes)
        if in_channels != 3:  # the default says nothing about a model built elsewhere
            _check_in_channels(net, in_channels, "build it with timm.create_model(..., in_chans=N)")
    head = net.get_classifier()
    if not isinstance(head, nn.Linear):
        headless = " (built with num_classes=0? give num_classes)" if isinstance(head, nn.Identity) else ""
        raise ValueError(
            f"the classifier of this timm model is {type(head).__name__}, not an nn.Linear{headless}; "
            f"split it yourself and use from_encoder_head"
        )
    net.reset_classifier(0)  # the head lives in StagedModel.head only (freezing the stages leaves it)
    return from_encoder_head(_TimmEncoder(net), head)


def _last_linear(net: nn.Module) -> tuple[str, nn.Linear]:
    linears = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(net).__name__} has no nn.Linear classifier to split off")
    return linears[-1]


def _set_module(net: nn.Module, name: str, module: nn.Module) -> None:
    # nn.Module.set_submodule is newer than the torch this project supports (2.1).
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, module)


def _check_in_channels(net: nn.Module, in_channels: int, how: str) -> None:
    """A built model whose first convolution does not take ``in_channels``: a ``ValueError`` now, not a
    shape error at the first batch."""
    convs = _convs(net)
    if convs and convs[0][1].in_channels != in_channels:
        conv = convs[0][1]
        raise ValueError(f"in_channels={in_channels}, but this model's first convolution takes "
                         f"{conv.in_channels}: {how}")


def _convs(net: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]


def _replace_first_conv(net: nn.Module, in_channels: int) -> None:
    """Give the first ``Conv2d`` of ``net`` ``in_channels`` inputs (a fresh, randomly initialised layer)."""
    convs = _convs(net)
    if not convs:
        raise ValueError(f"in_channels: {type(net).__name__} has no Conv2d whose inputs could be changed")
    name, old = convs[0]
    new = nn.Conv2d(
        in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation, old.groups,
        bias=old.bias is not None,
    )
    _set_module(net, name, new)


def from_torchvision(
    name_or_model: str | nn.Module,
    num_classes: int | None = None,
    in_channels: int = 3,
    pretrained: bool = False,
    **options: Any,
) -> StagedModel:
    """A torchvision classifier as a ``StagedModel``: the model without its last ``nn.Linear``, then it.

    ``name_or_model``: a name of ``torchvision.models.list_models()``, built by
    ``torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None, **options)`` (e.g.
    ``image_size=32`` for a ViT on CIFAR), or a built model. ``num_classes``: a fresh head when it
    differs from the model's (random init builds it at that size directly). ``in_channels`` other than
    3 replaces the first convolution by a fresh one.
    """
    if isinstance(name_or_model, str):
        from torchvision import models

        if name_or_model in ("googlenet", "inception_v3"):
            # In training their forward returns the auxiliary logits too (a named tuple, not a tensor).
            options.setdefault("aux_logits", False)
        if pretrained:
            net = models.get_model(name_or_model, weights="DEFAULT", **options)
        else:
            extra = {} if num_classes is None else {"num_classes": num_classes}
            net = models.get_model(name_or_model, weights=None, **extra, **options)
    else:
        net = name_or_model
        if getattr(net, "aux_logits", False):
            raise ValueError(f"this {type(net).__name__} returns auxiliary logits in training: build it "
                             f"with aux_logits=False")
    if in_channels != 3:
        _replace_first_conv(net, in_channels)
    name, head = _last_linear(net)
    _set_module(net, name, nn.Identity())
    if num_classes is not None and head.out_features != num_classes:
        head = nn.Linear(head.in_features, num_classes)
    return from_encoder_head(net, head)
