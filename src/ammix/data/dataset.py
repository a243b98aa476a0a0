"""`ImageDataset`: a whole image classification split held in memory as one uint8 tensor."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["ImageDataset", "channel_stats"]


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of a uint8 ``N x C x H x W`` tensor, in [0, 1] units.

    Returns ``(mean, std)``, two tuples of ``C`` floats (population std over all pixels of all images).
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"channel_stats expects a uint8 N x C x H x W tensor, got {images.dtype} "
                         f"{tuple(images.shape)}")
    x = images.transpose(0, 1).reshape(images.shape[1], -1).double() / 255.0
    if x.shape[1] == 0:
        raise ValueError("channel_stats of an empty dataset")
    mean = x.mean(1)
    std = x.std(1, unbiased=False).clamp_min(1e-6)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def _as_index(indices, n: int) -> Tensor:
    """Turn a list / ndarray / tensor of indices or a boolean mask of length ``n`` into an int64 tensor."""
    if isinstance(indices, Tensor):
        idx = indices.detach().cpu()
    else:
        idx = torch.as_tensor(np.asarray(indices))
    if idx.dtype == torch.bool:
        if idx.shape != (n,):
            raise ValueError(f"boolean mask must have shape ({n},), got {tuple(idx.shape)}")
        return idx.nonzero().flatten()
    if idx.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if idx.is_floating_point() or idx.is_complex():
        raise TypeError(f"indices must be integers or a boolean mask, got dtype {idx.dtype}")
    idx = idx.long().flatten()
    if int(idx.min()) < -n or int(idx.max()) >= n:
        raise IndexError(f"indices out of range for a dataset of {n} samples")
    return idx % n


@dataclass
class ImageDataset:
    """One split of an image classification dataset, held in memory.

    Fields:
        images: ``uint8`` tensor ``N x C x H x W``.
        labels: ``int64`` tensor ``N`` with values in ``[0, len(classes))``.
        classes: class names, index = label.
        coarse_labels / coarse_classes: superclass label per sample and superclass names, where the
            dataset has a class hierarchy (both ``None`` otherwise).
        mean / std: per-channel normalisation constants in [0, 1] units (from the training split, so
            train and test of one dataset normalise the same way).
        name: dataset name, e.g. ``"cifar10"`` or ``"cifar10-lt100"``.
        fine_labels / fine_classes: set only by :meth:`with_coarse_labels`: the original (fine) labels
            and names of a dataset whose ``labels`` were replaced by the coarse ones.
    """

    images: Tensor
    labels: Tensor
    classes: list[str]
    coarse_labels: Tensor | None = None
    coarse_classes: list[str] | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    name: str = "dataset"
    fine_labels: Tensor | None = None
    fine_classes: list[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.uint8 or self.images.dim() != 4:
            desc = (f"{self.images.dtype} tensor of shape {tuple(self.images.shape)}"
                    if isinstance(self.images, Tensor) else type(self.images).__name__)
            raise TypeError(f"ImageDataset.images must be a uint8 N x C x H x W tensor, got {desc}")
        n, c = self.images.shape[:2]
        self.labels = self._check_labels(self.labels, "labels", n, len(self.classes))
        self.classes = [str(s) for s in self.classes]
        if (self.coarse_labels is None) != (self.coarse_classes is None):
            raise ValueError("coarse_labels and coarse_classes must be given together")
        if self.coarse_labels is not None:
            self.coarse_classes = [str(s) for s in self.coarse_classes]
            self.coarse_labels = self._check_labels(self.coarse_labels, "coarse_labels", n,
                                                    len(self.coarse_classes))
        if (self.fine_labels is None) != (self.fine_classes is None):
            raise ValueError("fine_labels and fine_classes must be given together")
        if self.fine_labels is not None:
            self.fine_classes = [str(s) for s in self.fine_classes]
            self.fine_labels = self._check_labels(self.fine_labels, "fine_labels", n, len(self.fine_classes))
        if not self.mean or not self.std:
            if n == 0:
                raise ValueError("an empty ImageDataset needs explicit mean and std")
            self.mean, self.std = channel_stats(self.images)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if len(self.mean) != c or len(self.std) != c:
            raise ValueError(f"mean and std need {c} values (one per channel), got {len(self.mean)} and "
                             f"{len(self.std)}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    @staticmethod
    def _check_labels(labels, field: str, n: int, num_classes: int) -> Tensor:
        labels = torch.as_tensor(labels)
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.dim() != 1:
            raise TypeError(f"ImageDataset.{field} must be a 1-D integer tensor, got {labels.dtype} "
                            f"{tuple(labels.shape)}")
        labels = labels.long()
        if labels.shape[0] != n:
            raise ValueError(f"ImageDataset.{field} has {labels.shape[0]} entries for {n} images")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"ImageDataset.{field} must lie in [0, {num_classes}), got "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        return labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.images.shape[1:])

    def class_counts(self) -> list[int]:
        """Number of samples of each class, a list of ``num_classes`` ints (zeros included)."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices: Sequence[int] | Tensor | np.ndarray) -> ImageDataset:
        """A new dataset with the samples at ``indices`` (ints or a boolean mask), in that order.

        Classes, hierarchy names and normalisation constants are kept unchanged (a class may end up
        with no samples).
        """
        idx = _as_index(indices, len(self))
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return dataclasses.replace(self, images=self.images[idx], labels=self.labels[idx],
                                   coarse_labels=pick(self.coarse_labels),
                                   fine_labels=pick(self.fine_labels))

    def with_coarse_labels(self) -> ImageDataset:
        """A copy labelled by the superclasses: ``labels``/``classes`` become the coarse ones.

        The original labels and names move to ``fine_labels`` / ``fine_classes``; ``coarse_labels`` /
        ``coarse_classes`` of the copy are ``None``. Raises ``ValueError`` if the dataset has no
        hierarchy.
        """
        if self.coarse_labels is None:
            raise ValueError(f"dataset {self.name!r} has no coarse labels (no class hierarchy)")
        return dataclasses.replace(self, labels=self.coarse_labels, classes=list(self.coarse_classes),
                                   coarse_labels=None, coarse_classes=None, fine_labels=self.labels,
                                   fine_classes=list(self.classes), name=f"{self.name}-coarse")

    def __repr__(self) -> str:
        hier = f", coarse_classes={len(self.coarse_classes)}" if self.coarse_classes else ""
        return (f"ImageDataset(name={self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
                f"classes={self.num_classes}{hier})")
