"""Long-tailed subsampling as in LDAM-DRW's ``imbalance_cifar.py`` (Cao et al., 2019), and shot groups."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .dataset import ImageDataset

__all__ = ["PROFILES", "long_tail_counts", "long_tailed", "per_class_subset", "shot_groups"]

PROFILES = ("exp", "step")


def check_imbalance(imbalance_factor: float, profile: str) -> float:
    """``imbalance_factor`` as a float >= 1 and ``profile`` a known one, else ``ValueError``."""
    try:
        imbalance_factor = float(imbalance_factor)
    except (TypeError, ValueError):
        raise ValueError(f"imbalance_factor must be a number >= 1, got {imbalance_factor!r}") from None
    if not np.isfinite(imbalance_factor) or imbalance_factor < 1:
        raise ValueError(f"imbalance_factor must be a finite number >= 1 (n_max / n_min), got "
                         f"{imbalance_factor}")
    if profile not in PROFILES:
        raise ValueError(f"unknown long-tail profile {profile!r}; known: {', '.join(PROFILES)}")
    return imbalance_factor


def long_tail_counts(n_max: int, num_classes: int, imbalance_factor: float,
                     profile: str = "exp") -> list[int]:
    """Per-class sample counts of a long-tailed split, class 0 the head; returns ``num_classes`` ints.

    Exactly LDAM-DRW's ``get_img_num_per_cls`` with ``imb_factor = 1 / imbalance_factor``:

    - ``"exp"``: ``int(n_max * (1 / IF) ** (i / (C - 1)))`` for class ``i`` of ``C``;
    - ``"step"``: the first ``C // 2`` classes keep ``n_max``, the others get ``int(n_max * (1 / IF))``
      (for odd ``C`` the middle class is in the minority half; LDAM-DRW leaves it out).

    ``imbalance_factor`` is ``n_max / n_min`` (>= 1; 1 gives a balanced split); ``ValueError`` otherwise,
    and when it exceeds ``n_max`` (the smallest class would keep no sample: the split is no longer
    the factor it is named after).
    """
    imbalance_factor = check_imbalance(imbalance_factor, profile)
    if int(n_max) != n_max or n_max < 1 or int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"n_max and num_classes must be positive integers, got {n_max} and {num_classes}")
    n_max, num_classes = int(n_max), int(num_classes)
    ratio = 1.0 / imbalance_factor
    if profile == "exp":
        counts = [int(n_max * ratio ** (i / max(num_classes - 1.0, 1.0))) for i in range(num_classes)]
    else:
        head = num_classes // 2
        counts = [n_max] * head + [int(n_max * ratio)] * (num_classes - head)
    if min(counts) == 0:
        raise ValueError(f"imbalance_factor {imbalance_factor:g} leaves class {counts.index(0)} without "
                         f"samples ({n_max} a class before the long tail): at most {n_max}")
    return counts


def long_tailed(dataset: ImageDataset, imbalance_factor: float, profile: str = "exp",
                seed: int = 0) -> ImageDataset:
    """A long-tailed subset of ``dataset``: class ``i`` keeps ``long_tail_counts(n_max, C, IF)[i]`` samples.

    ``n_max`` is the size of the smallest class, so that every class can supply its target: on the
    balanced sources of the literature (CIFAR) it is every class's size; on a nearly balanced one
    (sklearn's digits, 133 to 137 training images a class) the head keeps the smallest count. Which
    samples of a class are kept is a random choice drawn from ``seed`` alone (a ``torch.Generator``),
    so it is reproducible; the kept samples stay in their original order. Class names, hierarchy and
    normalisation constants are unchanged; the name gets the suffix ``-lt<IF>`` (``-lt<IF>-step`` for
    the step profile). Raises ``ValueError`` for ``imbalance_factor < 1``, an unknown profile, or a
    class without samples.
    """
    imbalance_factor = check_imbalance(imbalance_factor, profile)
    counts = dataset.class_counts()
    if not counts or min(counts) == 0:
        empty = counts.index(0) if counts else None
        raise ValueError(f"dataset {dataset.name!r} has no samples of class {empty} to subsample")
    targets = long_tail_counts(min(counts), len(counts), imbalance_factor, profile)
    suffix = f"-lt{imbalance_factor:g}" + ("" if profile == "exp" else f"-{profile}")
    return _take_per_class(dataset, targets, seed, suffix)


def per_class_subset(dataset: ImageDataset, per_class: int, seed: int = 0) -> ImageDataset:
    """A class-stratified subset of ``dataset``: ``per_class`` samples of every class, a random choice
    drawn from ``seed`` alone, kept in their original order; the name gets the suffix ``-sub<N>``.
    Raises ``ValueError`` when a class has fewer than ``per_class`` samples."""
    counts = dataset.class_counts()
    if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    if min(counts) < per_class:
        small = counts.index(min(counts))
        raise ValueError(
            f"dataset {dataset.name!r} has {min(counts)} samples of class {small}, fewer than "
            f"per_class = {per_class}"
        )
    return _take_per_class(dataset, [int(per_class)] * len(counts), seed, f"-sub{int(per_class)}")


def _take_per_class(dataset: ImageDataset, targets: Sequence[int], seed: int, suffix: str) -> ImageDataset:
    """``targets[c]`` samples of each class ``c``, chosen by a ``torch.Generator`` seeded with ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    keep = []
    for c, want in enumerate(targets):
        members = (dataset.labels == c).nonzero().flatten()
        keep.append(members[torch.randperm(len(members), generator=gen)[:want]])
    idx = torch.sort(torch.cat(keep)).values
    return dataclasses.replace(dataset.subset(idx), name=dataset.name + suffix)


def shot_groups(train_counts: Sequence[int] | Tensor | np.ndarray) -> dict[str, list[int]]:
    """Split class indices by training-set size: ``{"many": >100, "medium": 20..100, "few": <20}``.

    Takes the per-class training counts (e.g. ``dataset.class_counts()``); returns lists of class
    indices (the usual many/medium/few-shot groups of long-tailed recognition).
    """
    counts = np.asarray(train_counts.cpu() if isinstance(train_counts, Tensor) else train_counts)
    if counts.ndim != 1:
        raise ValueError(f"train_counts must be 1-D (one count per class), got shape {counts.shape}")
    return {
        "many": [int(i) for i in np.flatnonzero(counts > 100)],
        "medium": [int(i) for i in np.flatnonzero((counts >= 20) & (counts <= 100))],
        "few": [int(i) for i in np.flatnonzero(counts < 20)],
    }
