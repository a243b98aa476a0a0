"""Datasets and loaders.

Every dataset is an in-memory :class:`ImageDataset` (uint8 images, int64 labels, class names, optional
coarse labels, per-channel mean/std). :func:`load_dataset` reads one by name (:data:`DATASETS`);
:func:`long_tailed` / :func:`long_tail_counts` / :func:`shot_groups` make and describe long-tailed
splits, :func:`per_class_subset` a class-stratified one; :class:`DeviceLoader` yields augmented,
normalised batches made on the device, and :func:`reference_loader` is the per-image torchvision
pipeline it is checked against.
"""

from .dataset import ImageDataset, channel_stats
from .hierarchy import (
    CIFAR10_CLASSES,
    CIFAR10_COARSE_CLASSES,
    CIFAR10_FINE_TO_COARSE,
    CIFAR100_CLASSES,
    CIFAR100_COARSE_CLASSES,
    CIFAR100_FINE_TO_COARSE,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_COARSE_CLASSES,
    FASHION_MNIST_FINE_TO_COARSE,
    MINI_CIFAR_CLASSES,
    MINI_CIFAR_COARSE_CLASSES,
    MINI_CIFAR_FINE_TO_COARSE,
)
from .loader import AUGMENTATIONS, DeviceLoader, reference_loader
from .longtail import PROFILES, long_tail_counts, long_tailed, per_class_subset, shot_groups
from .readers import read_idx, read_image_folder
from .registry import DATASETS, MINI_CIFAR_SOURCES, dataset_options, load_dataset, mini_cifar
from .synthetic import make_synthetic

__all__ = [
    "AUGMENTATIONS", "CIFAR10_CLASSES", "CIFAR10_COARSE_CLASSES", "CIFAR10_FINE_TO_COARSE",
    "CIFAR100_CLASSES", "CIFAR100_COARSE_CLASSES", "CIFAR100_FINE_TO_COARSE", "DATASETS",
    "FASHION_MNIST_CLASSES", "FASHION_MNIST_COARSE_CLASSES", "FASHION_MNIST_FINE_TO_COARSE",
    "MINI_CIFAR_CLASSES", "MINI_CIFAR_COARSE_CLASSES", "MINI_CIFAR_FINE_TO_COARSE", "MINI_CIFAR_SOURCES",
    "PROFILES", "DeviceLoader", "ImageDataset", "channel_stats", "dataset_options", "load_dataset",
    "long_tail_counts", "long_tailed", "make_synthetic", "mini_cifar", "per_class_subset", "read_idx",
    "read_image_folder", "reference_loader", "shot_groups",
]
