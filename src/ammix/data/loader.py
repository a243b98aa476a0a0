"""Fast batch loading: a whole dataset as one uint8 tensor on the device, augmented a batch at a time.

:class:`DeviceLoader` replaces a ``DataLoader`` with per-image transforms. Per batch it gathers the
samples, applies the CIFAR augmentation (random crop with zero padding + horizontal flip) to the whole
batch at once with one ``torch.gather`` over the padded batch (per-sample window offsets, the flip
folded into the column index), converts to float and normalises. It has no mutable
state besides the epoch: the sample order comes from ``seed + epoch`` exactly as in
``torch.utils.data.DistributedSampler`` and the augmentation draws from ``(seed, epoch, rank)``, so an
epoch is a pure function of those numbers and exact resume is ``set_epoch(e)`` followed by
``iter_from(k)`` (skip the ``k`` batches already done, without computing them). The random numbers are
drawn on the CPU, so a CPU and a GPU run produce the same batches.

:func:`reference_loader` is the classic per-image path (PIL images, torchvision ``RandomCrop(padding=4)``,
``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``) with the same augmentation distribution, for checks
and benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .dataset import ImageDataset

__all__ = ["AUGMENTATIONS", "DeviceLoader", "reference_loader"]

AUGMENTATIONS = ("auto", "cifar", "crop", "flip", None)


def _parse_augment(augment, train: bool) -> tuple[bool, bool]:
    """``augment`` -> (random crop?, random flip?)."""
    if augment == "auto":
        augment = "cifar" if train else None
    if augment is None or augment == "none":
        return False, False
    table = {"cifar": (True, True), "crop": (True, False), "flip": (False, True)}
    if augment not in table:
        raise ValueError(f"unknown augment {augment!r}; known: {', '.join(map(repr, AUGMENTATIONS))}")
    return table[augment]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class DeviceLoader:
    """Iterate over ``dataset`` in normalised float batches ``(x, y)`` made on ``device``.

    Args:
        dataset: an :class:`ImageDataset`; its images are copied once to ``device`` as a uint8 tensor.
        batch_size: samples per batch (per rank).
        device: where the images live and batches are made.
        train: sets the defaults of ``augment``, ``shuffle`` and ``drop_last``.
        augment: ``"cifar"`` (random crop of the image size from the image padded by ``padding`` zero
            pixels on each side, then horizontal flip with probability 1/2), ``"crop"``, ``"flip"``,
            ``None``; ``"auto"`` (default) means ``"cifar"`` when ``train`` else ``None``.
        shuffle, drop_last: default to ``train``. ``drop_last`` applies both to the rank sharding (as
            ``DistributedSampler(drop_last=...)``: drop the tail instead of padding with repeats) and to
            the last incomplete batch.
        seed: base seed of the order (``seed + epoch``, as DistributedSampler) and of the augmentation.
        rank, world_size: this process's shard: samples ``rank::world_size`` of the (padded) order.
        padding: zero padding of the random crop (4 for CIFAR).
        chunk_size: about this many samples (whole batches, at least one) are augmented together and
            then yielded batch by batch as slices: fewer, larger tensor operations, which matters on a
            CPU shared with other processes. The batches do not depend on it.

    Yields ``x``: float32 ``B x C x H x W`` normalised with the dataset's mean/std; ``y``: int64 ``B``.
    ``len(loader)`` is the number of batches per epoch. Call ``set_epoch(e)`` before each epoch (as
    with DistributedSampler; the epoch is not advanced automatically).
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, device: str | torch.device = "cpu",
                 train: bool = True, augment: str | None = "auto", shuffle: bool | None = None,
                 drop_last: bool | None = None, seed: int = 0, rank: int = 0, world_size: int = 1,
                 padding: int = 4, chunk_size: int = 2048) -> None:
        if not isinstance(dataset, ImageDataset):
            raise TypeError(f"DeviceLoader needs an ImageDataset, got {type(dataset).__name__}")
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.seed = _check_int("seed", seed, 0)
        self.world_size = _check_int("world_size", world_size, 1)
        self.rank = _check_int("rank", rank, 0)
        if self.rank >= self.world_size:
            raise ValueError(f"rank must lie in [0, world_size={self.world_size}), got {rank}")
        self.padding = _check_int("padding", padding, 0)
        self.chunk_size = _check_int("chunk_size", chunk_size, 1)
        self.train = bool(train)
        self.crop, self.flip = _parse_augment(augment, self.train)
        self.shuffle = self.train if shuffle is None else bool(shuffle)
        self.drop_last = self.train if drop_last is None else bool(drop_last)
        self.device = torch.device(device)
        self.dataset = dataset
        self.images = dataset.images.to(self.device).contiguous()
        self.labels = dataset.labels.to(self.device)
        std = torch.tensor(dataset.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        mean = torch.tensor(dataset.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std)  # (x / 255 - mean) / std == x * scale + shift
        self._shift = -mean / std
        self._sampler = DistributedSampler(range(len(dataset)), num_replicas=self.world_size, rank=self.rank,
                                           shuffle=self.shuffle, seed=self.seed, drop_last=self.drop_last)
        self.epoch = 0
        _, _, h, w = self.images.shape
        self._rows = torch.arange(h, device=self.device)
        self._cols = torch.arange(w, device=self.device)

    # --------------------------------------------------------------------------------- epoch logic
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        self.epoch = _check_int("epoch", epoch, 0)

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (DistributedSampler's ``num_samples``)."""
        return self._sampler.num_samples

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def indices(self, epoch: int | None = None) -> Tensor:
        """The dataset indices this rank visits in ``epoch`` (default: the current one), int64 CPU tensor."""
        self._sampler.set_epoch(self.epoch if epoch is None else _check_int("epoch", epoch, 0))
        return torch.tensor(list(iter(self._sampler)), dtype=torch.long)

    def _aug_generator(self) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, self.epoch, self.rank]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(state))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.iter_from(0)

    def iter_from(self, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield the current epoch's batches from ``start_batch`` on (identical to those of a full pass)."""
        start_batch = _check_int("start_batch", start_batch, 0)
        idx = self.indices()
        m = len(idx)
        gen = self._aug_generator()
        span = 2 * self.padding + 1
        offsets = torch.randint(0, span, (m, 2), generator=gen)  # (dy, dx) in [0, 2 * padding]
        flips = torch.rand(m, generator=gen) < 0.5
        idx, offsets, flips = (t.to(self.device) for t in (idx, offsets, flips))
        bs, num_batches = self.batch_size, len(self)
        per_chunk = max(1, self.chunk_size // bs)
        for first in range(start_batch, num_batches, per_chunk):
            last = min(first + per_chunk, num_batches)
            lo, hi = first * bs, min(last * bs, m)
            xs = self._batch(idx[lo:hi], offsets[lo:hi], flips[lo:hi])
            ys = self.labels[idx[lo:hi]]
            for b in range(first, last):
                sl = slice(b * bs - lo, min((b + 1) * bs, m) - lo)
                yield xs[sl], ys[sl]

    # ---------------------------------------------------------------------------------- the batch
    def _batch(self, idx: Tensor, offsets: Tensor, flips: Tensor) -> Tensor:
        x = self.images[idx]
        if self.crop:
            p = self.padding
            padded = F.pad(x, (p, p, p, p)) if p else x
            rows = offsets[:, :1] + self._rows  # B x H: window rows in the padded image
            cols = offsets[:, 1:] + self._cols  # B x W
            if self.flip:
                cols = torch.where(flips[:, None], cols.flip(1), cols)
            b, c, h, w = x.shape
            # one gather over the flattened padded planes, the same window index for every channel
            flat = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
            x = torch.gather(padded.reshape(b, c, -1), 2, flat).view(b, c, h, w)
        elif self.flip:
            x = torch.where(flips.view(-1, 1, 1, 1), x.flip(3), x)
        return torch.addcmul(self._shift, x.to(torch.float32), self._scale)

    def __repr__(self) -> str:
        aug = "cifar" if self.crop and self.flip else "crop" if self.crop else "flip" if self.flip else None
        return (f"DeviceLoader({self.dataset.name!r}, batch_size={self.batch_size}, "
                f"device={str(self.device)!r}, augment={aug!r}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, "
                f"rank={self.rank}, world_size={self.world_size}, epoch={self.epoch})")


class _PILDataset(Dataset):
    """Per-image view of an ImageDataset: ``(transform(PIL image), label)``."""

    def __init__(self, dataset: ImageDataset, transform) -> None:
        self.arrays = dataset.images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = dataset.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        a = self.arrays[i]
        img = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
        return self.transform(img), self.labels[i]


def reference_loader(dataset: ImageDataset, batch_size: int, train: bool = True, augment: str | None = "auto",
                     num_workers: int = 0, seed: int = 0, shuffle: bool | None = None,
                     drop_last: bool | None = None, padding: int = 4) -> DataLoader:
    """The classic per-image pipeline as a ``torch.utils.data.DataLoader`` (reference for DeviceLoader).

    Each image goes through PIL and torchvision ``RandomCrop((H, W), padding)`` / ``RandomHorizontalFlip``
    (as ``augment`` selects, same meaning as in :class:`DeviceLoader`), ``ToTensor`` and
    ``Normalize(mean, std)``. The order is shuffled by a ``torch.Generator`` seeded with ``seed``; the
    per-image augmentation uses torch's global RNG (worker seeds derive from the generator when
    ``num_workers > 0``). Yields ``(x float32 B x C x H x W, y int64 B)``.
    """
    from torchvision import transforms as T

    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"reference_loader needs an ImageDataset, got {type(dataset).__name__}")
    crop, flip = _parse_augment(augment, bool(train))
    _, _, h, w = dataset.images.shape
    tfs = []
    if crop:
        tfs.append(T.RandomCrop((h, w), padding=_check_int("padding", padding, 0)))
    if flip:
        tfs.append(T.RandomHorizontalFlip())
    tfs += [T.ToTensor(), T.Normalize(dataset.mean, dataset.std)]
    gen = torch.Generator().manual_seed(_check_int("seed", seed, 0))
    return DataLoader(_PILDataset(dataset, T.Compose(tfs)),
                      batch_size=_check_int("batch_size", batch_size, 1),
                      shuffle=bool(train) if shuffle is None else bool(shuffle),
                      drop_last=bool(train) if drop_last is None else bool(drop_last),
                      num_workers=_check_int("num_workers", num_workers, 0), generator=gen,
                      persistent_workers=False)
