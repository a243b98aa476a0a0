"""A deterministic, hierarchical synthetic image dataset for fast tests and toy experiments.

Every coarse class ``c`` has a prototype pattern ``P_c``; every fine class ``(c, j)`` adds its own
perturbation ``D_cj``; every image adds pixel noise:

    x = clamp(0.5 + coarse_scale * P_c + fine_scale * D_cj + noise * eps, 0, 1)  -> uint8

Patterns are smooth (a 4x4 Gaussian grid per channel, bilinearly upsampled, unit std), so random crops
and flips keep the class evident and a small CNN learns both levels in a few epochs. The patterns are
drawn from ``seed`` alone, so train and test share them; the noise is drawn from ``(seed, split)``.
Fine classes of one coarse class are closer to each other than to other coarse classes as long as
``fine_scale < coarse_scale``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import ImageDataset, channel_stats

__all__ = ["make_synthetic"]


def _patterns(n: int, channels: int, size: int, gen: torch.Generator, grid: int = 4) -> torch.Tensor:
    low = torch.randn(n, channels, grid, grid, generator=gen, dtype=torch.float64)
    up = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=True)
    up = up - up.mean(dim=(1, 2, 3), keepdim=True)
    return up / up.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"synthetic option {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _generate(train: bool, num_coarse: int, fine_per_coarse: int, n_per_class: int, image_size: int,
              channels: int, seed: int, coarse_scale: float, fine_scale: float, noise: float):
    proto_gen = torch.Generator().manual_seed(seed)
    coarse = _patterns(num_coarse, channels, image_size, proto_gen)
    fine = _patterns(num_coarse * fine_per_coarse, channels, image_size, proto_gen)
    num_fine = num_coarse * fine_per_coarse
    fine_labels = torch.arange(num_fine).repeat_interleave(n_per_class)
    coarse_labels = fine_labels // fine_per_coarse
    split_seed = int(np.random.SeedSequence([seed, 1 if train else 2]).generate_state(1)[0])
    noise_gen = torch.Generator().manual_seed(split_seed)
    eps = torch.randn(len(fine_labels), channels, image_size, image_size, generator=noise_gen,
                      dtype=torch.float64)
    x = 0.5 + coarse_scale * coarse[coarse_labels] + fine_scale * fine[fine_labels] + noise * eps
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, fine_labels, coarse_labels


def make_synthetic(train: bool = True, *, num_coarse: int = 4, fine_per_coarse: int = 2,
                   samples_per_class: int = 100, test_samples_per_class: int | None = None,
                   image_size: int = 32, channels: int = 3, seed: int = 0, coarse_scale: float = 0.2,
                   fine_scale: float = 0.1, noise: float = 0.1) -> ImageDataset:
    """Build the ``synthetic`` dataset (see the module docstring); returns an :class:`ImageDataset`.

    ``num_coarse * fine_per_coarse`` fine classes named ``c<i>_f<j>``, coarse classes ``c<i>``;
    ``samples_per_class`` images per fine class in train (``test_samples_per_class``, default the
    same, in test), each ``channels x image_size x image_size``. mean/std come from the train split.
    """
    num_coarse = _check_int("num_coarse", num_coarse, 1)
    fine_per_coarse = _check_int("fine_per_coarse", fine_per_coarse, 1)
    samples_per_class = _check_int("samples_per_class", samples_per_class, 1)
    if test_samples_per_class is None:
        test_samples_per_class = samples_per_class
    test_samples_per_class = _check_int("test_samples_per_class", test_samples_per_class, 1)
    image_size = _check_int("image_size", image_size, 1)
    channels = _check_int("channels", channels, 1)
    seed = _check_int("seed", seed, 0)
    for name, value in (("coarse_scale", coarse_scale), ("fine_scale", fine_scale), ("noise", noise)):
        if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"synthetic option {name} must be a finite number >= 0, got {value!r}")
    common = (num_coarse, fine_per_coarse)
    rest = (image_size, channels, seed, float(coarse_scale), float(fine_scale), float(noise))
    images, fine_labels, coarse_labels = _generate(
        train, *common, samples_per_class if train else test_samples_per_class, *rest)
    train_images = images if train else _generate(True, *common, samples_per_class, *rest)[0]
    mean, std = channel_stats(train_images)
    return ImageDataset(
        images=images, labels=fine_labels,
        classes=[f"c{c}_f{j}" for c in range(num_coarse) for j in range(fine_per_coarse)],
        coarse_labels=coarse_labels, coarse_classes=[f"c{c}" for c in range(num_coarse)],
        mean=mean, std=std, name="synthetic")
