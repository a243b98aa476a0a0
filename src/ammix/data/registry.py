"""`load_dataset(name, ...)`: one name per dataset and variant; `DATASETS` lists the names."""

from __future__ import annotations

import dataclasses
import inspect
import os

from . import hierarchy as H
from .dataset import ImageDataset
from .longtail import check_imbalance, long_tailed
from .readers import (
    data_roots,
    read_cifar,
    read_cifar10_jpeg,
    read_digits,
    read_fashion_mnist,
    read_image_folder,
)
from .synthetic import make_synthetic

__all__ = ["DATASETS", "MINI_CIFAR_SOURCES", "dataset_options", "load_dataset", "mini_cifar"]

MINI_CIFAR_SOURCES = ("cifar10", "cifar10-jpeg")
_LT_DEFAULTS = {"imbalance_factor": 100.0, "profile": "exp", "lt_seed": 0}


def _no_download(name: str, download: bool) -> None:
    if download:
        raise ValueError(f"{name} cannot be downloaded by ammix; see the error without download=True for "
                         "where to put the files")


def _cifar10(root, train, download) -> ImageDataset:
    return read_cifar("cifar10", data_roots(root), train, download)


def _cifar100(root, train, download) -> ImageDataset:
    return read_cifar("cifar100", data_roots(root), train, download)


def _cifar10_jpeg(root, train, download, *, cache_dir=None, cache=True) -> ImageDataset:
    _no_download("cifar10-jpeg", download)
    return read_cifar10_jpeg(data_roots(root), train, cache_dir=cache_dir, cache=cache)


def _fashion_mnist(root, train, download) -> ImageDataset:
    return read_fashion_mnist(data_roots(root), train, download)


def _digits(root, train, download, *, test_fraction=0.25, split_seed=0, num_classes=10) -> ImageDataset:
    return read_digits(train, test_fraction=test_fraction, split_seed=split_seed, num_classes=num_classes)


def _synthetic(root, train, download, *, num_coarse=4, fine_per_coarse=2, samples_per_class=100,
               test_samples_per_class=None, image_size=32, channels=3, seed=0, coarse_scale=0.2,
               fine_scale=0.1, noise=0.1) -> ImageDataset:
    return make_synthetic(train, num_coarse=num_coarse, fine_per_coarse=fine_per_coarse,
                          samples_per_class=samples_per_class, test_samples_per_class=test_samples_per_class,
                          image_size=image_size, channels=channels, seed=seed, coarse_scale=coarse_scale,
                          fine_scale=fine_scale, noise=noise)


def _image_folder(root, train, download, *, train_dir="train", test_dir="test", name=None, grayscale=False,
                  image_size=None, cache=True, cache_dir=None) -> ImageDataset:
    _no_download("image-folder", download)
    if root is None:
        raise ValueError("image-folder needs root: the folder holding the train/ and test/ class trees")
    root = os.fspath(root)
    common = dict(grayscale=grayscale, image_size=image_size, cache=cache, cache_dir=cache_dir)
    # mean/std from the training tree, so that both splits normalise alike
    stats = read_image_folder(os.path.join(root, train_dir), **common)
    name = name or os.path.basename(os.path.normpath(root))
    if train:
        return dataclasses.replace(stats, name=name)
    # labels are class-folder indices: the test tree must have the training tree's folders, or its
    # labels would name other classes
    return read_image_folder(os.path.join(root, test_dir), name=name, mean=stats.mean, std=stats.std,
                             expected_classes=stats.classes, **common)


def mini_cifar(source: ImageDataset) -> ImageDataset:
    """Mini-CIFAR from a CIFAR-10 split: the classes airplane, automobile, bird, cat (labels 0..3).

    Coarse labels: vehicles (airplane, automobile) vs animals (bird, cat). Keeps the source's mean/std;
    named ``mini-cifar`` (``mini-cifar-jpeg`` when the source is the JPEG copy). Returns a new dataset.
    """
    if list(source.classes[:4]) != H.MINI_CIFAR_CLASSES:
        raise ValueError(f"mini_cifar needs a CIFAR-10 split, got classes {source.classes}")
    out = source.subset(source.labels < 4)
    suffix = "-jpeg" if source.name.startswith("cifar10-jpeg") else ""
    return dataclasses.replace(out, classes=list(H.MINI_CIFAR_CLASSES),
                               coarse_labels=H.coarse_of(out.labels, H.MINI_CIFAR_FINE_TO_COARSE),
                               coarse_classes=list(H.MINI_CIFAR_COARSE_CLASSES), fine_labels=None,
                               fine_classes=None, name="mini-cifar" + suffix)


def _mini_cifar(root, train, download, *, source="cifar10", cache_dir=None) -> ImageDataset:
    if source == "cifar10":
        base = _cifar10(root, train, download)
    elif source == "cifar10-jpeg":
        base = _cifar10_jpeg(root, train, download, cache_dir=cache_dir)
    else:
        raise ValueError(f"mini-cifar option source must be one of {', '.join(MINI_CIFAR_SOURCES)}, got "
                         f"{source!r}")
    return mini_cifar(base)


# name -> (builder, long-tailed variant?)
_REGISTRY = {
    "cifar10": (_cifar10, False),
    "cifar10-lt": (_cifar10, True),
    "cifar100": (_cifar100, False),
    "cifar100-lt": (_cifar100, True),
    "cifar10-jpeg": (_cifar10_jpeg, False),
    "cifar10-jpeg-lt": (_cifar10_jpeg, True),
    "mini-cifar": (_mini_cifar, False),
    "mini-cifar-lt": (_mini_cifar, True),
    "fashion-mnist": (_fashion_mnist, False),
    "digits": (_digits, False),
    "synthetic": (_synthetic, False),
    "image-folder": (_image_folder, False),
}
DATASETS: tuple[str, ...] = tuple(_REGISTRY)


def dataset_options(name: str) -> dict:
    """The options ``load_dataset(name, ...)`` accepts, with defaults (a dict); ValueError if unknown."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    builder, lt = _REGISTRY[name]
    params = inspect.signature(builder).parameters.values()
    opts = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return {**opts, **(_LT_DEFAULTS if lt else {})}


def load_dataset(name: str, root: str | os.PathLike | None = None, train: bool = True, download: bool = False,
                 **options) -> ImageDataset:
    """Load one split of dataset ``name`` (one of :data:`DATASETS`) as an :class:`ImageDataset`.

    ``root``: the data folder (``None``: ``$AMMIX_DATA`` or ``./data``, see :mod:`ammix.data.readers`);
    ``train``: train or test split; ``download``: fetch the official files where that is possible.
    ``options`` are per dataset (see :func:`dataset_options`):

    - ``cifar10``, ``cifar100`` (20 superclasses as coarse labels), ``fashion-mnist``: none.
    - ``cifar10-jpeg``: ``cache_dir``, ``cache`` (the JPEG re-encode; label results "CIFAR-10 (JPEG
      re-encode)").
    - ``mini-cifar``: ``source`` (``"cifar10"`` or ``"cifar10-jpeg"``), ``cache_dir``.
    - ``digits``: ``test_fraction``, ``split_seed``, ``num_classes`` (keep digits ``0 .. k-1``).
      ``synthetic``: see :func:`make_synthetic`.
    - ``image-folder``: ``root/{train,test}/<class>/<image>``; ``train_dir``, ``test_dir``, ``name``,
      ``grayscale``, ``image_size``, ``cache``, ``cache_dir``.
    - ``*-lt`` (``cifar10-lt``, ``cifar100-lt``, ``cifar10-jpeg-lt``, ``mini-cifar-lt``): the base's
      options plus ``imbalance_factor`` (default 100), ``profile`` (``"exp"``/``"step"``) and ``lt_seed``;
      the train split is subsampled by :func:`long_tailed` (class 0 the head: airplane for the CIFAR-10
      family), the test split stays balanced, as in LDAM-DRW.

    Raises ``ValueError`` for an unknown name or option, ``FileNotFoundError`` for missing files.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if not isinstance(train, bool):
        raise ValueError(f"train must be True or False, got {train!r}")
    known = dataset_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; known: "
                         f"{', '.join(known) or 'none'}")
    builder, lt = _REGISTRY[name]
    lt_opts = {k: options.pop(k, v) for k, v in _LT_DEFAULTS.items()} if lt else {}
    if lt:  # validate before any I/O, for both splits
        check_imbalance(lt_opts["imbalance_factor"], lt_opts["profile"])
    ds = builder(root, train, bool(download), **options)
    if lt and train:
        ds = long_tailed(ds, lt_opts["imbalance_factor"], lt_opts["profile"], seed=lt_opts["lt_seed"])
    return ds
