"""Mixing methods: AM-mixup and the baselines, as small callables over pure tensor helpers.

Use in your own loop::

    am = AsymptoticMidpointMixup(num_classes=10, total=epochs)  # lam from 1.0 to 0.51 at epoch `epochs`
    features = encoder(x)
    mixed, targets = am(features, labels, epoch=epoch + step / steps_per_epoch)
    loss = soft_cross_entropy(head(mixed), targets)
"""

from __future__ import annotations

import inspect

from .forward import MixedOutput, mixed_forward
from .functional import (
    beta_on_device,
    box_mask,
    cutmix_box,
    cutmix_box_at,
    interclass_partners,
    interpolate,
    one_hot,
    permutation_on_device,
    random_permutation,
    remix_label_weight,
    sample_beta,
    soft_cross_entropy,
)
from .methods import (
    DEFAULT_LAM_AT_TOTAL,
    AsymptoticMidpointMixup,
    CutMix,
    ManifoldMixup,
    Mixup,
    NoMixing,
    Remix,
)
from .on_device import OnDevice
from .schedules import SCHEDULES, gamma_for, midpoint_ratio

MIXERS = {
    "ce": NoMixing,
    "mixup": Mixup,
    "manifold_mixup": ManifoldMixup,
    "cutmix": CutMix,
    "remix": Remix,
    "am_mixup": AsymptoticMidpointMixup,
}


def mixer_options(name: str) -> dict[str, inspect.Parameter]:
    """The options (constructor keyword arguments) a method accepts, beyond the ones the engine passes."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixing method {name!r}; known: {', '.join(MIXERS)}")
    params = inspect.signature(MIXERS[name]).parameters
    return {k: p for k, p in params.items() if k not in ("num_classes", "class_counts", "generator")}


def build_mixer(name: str, num_classes: int, class_counts=None, generator=None, **options):
    """Build the method `name` (a key of MIXERS) with its `options`; a bad name or option is a ValueError.

    `class_counts` (training samples per class) is passed to the methods that use it (Remix).
    """
    known = mixer_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for method {name!r}; known: {', '.join(known) or 'none'}"
        )
    if name == "remix":
        options["class_counts"] = class_counts
    return MIXERS[name](num_classes, generator=generator, **options)


__all__ = [
    "DEFAULT_LAM_AT_TOTAL",
    "MIXERS",
    "SCHEDULES",
    "AsymptoticMidpointMixup",
    "CutMix",
    "ManifoldMixup",
    "MixedOutput",
    "Mixup",
    "NoMixing",
    "OnDevice",
    "Remix",
    "beta_on_device",
    "box_mask",
    "build_mixer",
    "cutmix_box",
    "cutmix_box_at",
    "gamma_for",
    "interclass_partners",
    "interpolate",
    "midpoint_ratio",
    "mixed_forward",
    "mixer_options",
    "one_hot",
    "permutation_on_device",
    "random_permutation",
    "remix_label_weight",
    "sample_beta",
    "soft_cross_entropy",
]
