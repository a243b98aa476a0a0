"""Datasets: readers on small files written in the official formats, hierarchies, long-tailed splits."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ammix.data as D
from ammix.data import readers

# The 20 CIFAR-100 superclasses as published with the dataset (written out by name, not derived).
CIFAR100_SUPERCLASSES_BY_NAME = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}


# ---------------------------------------------------------------------------------- fake files
def _pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _cifar_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_fake_cifar10(root: Path, per_batch: int = 20, seed: int = 0) -> dict:
    """The official python layout: 5 train batches, test_batch, batches.meta, bytes keys."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    out = {"train": [], "test": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = _cifar_rows(per_batch, rng)
        labels = [int(i % 10) for i in range(per_batch)]
        _pickle(folder / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                                b"filenames": [f"{i}.png".encode() for i in range(per_batch)]})
        out["test" if name == "test_batch" else "train"].append((data, labels))
    _pickle(folder / "batches.meta", {b"label_names": [c.encode() for c in D.CIFAR10_CLASSES],
                                      b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    return out


def write_fake_cifar100(root: Path, n: int = 200, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    fine_names = sorted(f for fs in CIFAR100_SUPERCLASSES_BY_NAME.values() for f in fs)
    coarse_names = sorted(CIFAR100_SUPERCLASSES_BY_NAME)
    coarse_of = {f: coarse_names.index(c) for c, fs in CIFAR100_SUPERCLASSES_BY_NAME.items() for f in fs}
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split in ("train", "test"):
        fine = [int(i % 100) for i in range(n)]
        coarse = [coarse_of[fine_names[f]] for f in fine]
        data = _cifar_rows(n, rng)
        _pickle(folder / split, {b"filenames": [], b"batch_label": split.encode(), b"fine_labels": fine,
                                 b"coarse_labels": coarse, b"data": data})
        out[split] = (data, fine, coarse)
    _pickle(folder / "meta", {b"fine_label_names": [f.encode() for f in fine_names],
                              b"coarse_label_names": [c.encode() for c in coarse_names]})
    return out


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_fake_fashion(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> dict:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        out[prefix] = (images, labels)
    return out


def write_jpeg_tree(top: Path, per_class: int = 3, classes=D.CIFAR10_CLASSES) -> None:
    """``top/{train,test}/<class>/NNNN.jpg``: flat-coloured 32x32 images (JPEG keeps them nearly exact)."""
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            d = top / split / name
            d.mkdir(parents=True)
            for i in range(per_class):
                colour = (20 * c + 5, 10 * i + 40, 200 - 15 * c)
                Image.new("RGB", (32, 32), colour).save(d / f"{i:04d}.jpg", quality=95)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test writes to the user's cache or reads the user's data folders."""
    monkeypatch.setenv("AMMIX_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.delenv("AMMIX_DATA", raising=False)


# ------------------------------------------------------------------------------------ registry
def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown dataset 'cifar11'.*cifar10.*cifar100.*synthetic"):
        D.load_dataset("cifar11")


def test_known_names():
    for name in ("cifar10", "cifar100", "cifar10-jpeg", "fashion-mnist", "digits", "synthetic", "mini-cifar",
                 "mini-cifar-lt", "cifar10-lt", "cifar100-lt"):
        assert name in D.DATASETS


def test_unknown_option_is_a_value_error():
    with pytest.raises(ValueError, match="unknown option.*colour.*known: num_coarse"):
        D.load_dataset("synthetic", colour=True)
    with pytest.raises(ValueError, match="known: none"):
        D.load_dataset("cifar10", "somewhere", source="x")
    assert D.dataset_options("mini-cifar-lt")["imbalance_factor"] == 100
    assert D.dataset_options("mini-cifar")["source"] == "cifar10"


def test_bad_values_are_value_errors():
    with pytest.raises(ValueError, match="train must be"):
        D.load_dataset("digits", train="yes")
    with pytest.raises(ValueError, match="samples_per_class"):
        D.load_dataset("synthetic", samples_per_class=0)
    with pytest.raises(ValueError, match="imbalance_factor"):
        D.load_dataset("cifar10-lt", "nowhere", imbalance_factor=0.5)
    with pytest.raises(ValueError, match="profile"):
        D.load_dataset("cifar10-lt", "nowhere", profile="linear")


# --------------------------------------------------------------------------------------- CIFAR
def test_cifar10_reads_official_pickles(tmp_path):
    written = write_fake_cifar10(tmp_path)
    ds = D.load_dataset("cifar10", tmp_path)
    assert len(ds) == 100 and ds.images.shape == (100, 3, 32, 32)
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert ds.classes == D.CIFAR10_CLASSES and ds.name == "cifar10"
    data = np.concatenate([d for d, _ in written["train"]])
    # rows are R(1024) G(1024) B(1024), each row-major 32 x 32
    assert ds.images[7, 1, 3, 5] == data[7, 1024 + 3 * 32 + 5]
    assert torch.equal(ds.images.reshape(100, -1), torch.from_numpy(data))
    assert ds.labels.tolist() == [lab for _, labels in written["train"] for lab in labels]
    test = D.load_dataset("cifar10", tmp_path, train=False)
    assert len(test) == 20
    assert torch.equal(test.images.reshape(20, -1), torch.from_numpy(written["test"][0][0]))
    assert ds.mean == readers.CIFAR10_MEAN and ds.std == readers.CIFAR10_STD


def test_cifar10_hierarchy_vehicles_vs_animals(tmp_path):
    write_fake_cifar10(tmp_path)
    ds = D.load_dataset("cifar10", tmp_path)
    assert ds.coarse_classes == ["vehicles", "animals"]
    vehicles = {ds.classes[i] for i in ds.labels[ds.coarse_labels == 0].unique().tolist()}
    assert vehicles == {"airplane", "automobile", "ship", "truck"}
    coarse = ds.with_coarse_labels()
    assert coarse.classes == ["vehicles", "animals"] and coarse.num_classes == 2
    assert torch.equal(coarse.labels, ds.coarse_labels) and torch.equal(coarse.fine_labels, ds.labels)
    assert coarse.fine_classes == ds.classes and coarse.coarse_labels is None


def test_cifar100_superclasses_from_pickle(tmp_path):
    written = write_fake_cifar100(tmp_path)
    ds = D.load_dataset("cifar100", tmp_path)
    assert len(ds) == 200 and ds.num_classes == 100 and len(ds.coarse_classes) == 20
    assert ds.labels.tolist() == written["train"][1]
    assert ds.coarse_labels.tolist() == written["train"][2]
    for coarse_name, fines in CIFAR100_SUPERCLASSES_BY_NAME.items():
        for fine in fines:
            sel = ds.labels == ds.classes.index(fine)
            assert {ds.coarse_classes[c] for c in ds.coarse_labels[sel].tolist()} == {coarse_name}
    test = D.load_dataset("cifar100", tmp_path, train=False)
    assert test.coarse_labels.tolist() == written["test"][2]


def test_cifar100_mapping_constant_matches_canonical_names():
    assert len(D.CIFAR100_CLASSES) == 100 and D.CIFAR100_CLASSES == sorted(D.CIFAR100_CLASSES)
    assert D.CIFAR100_COARSE_CLASSES == sorted(CIFAR100_SUPERCLASSES_BY_NAME)
    for fine, coarse in zip(D.CIFAR100_CLASSES, D.CIFAR100_FINE_TO_COARSE, strict=True):
        assert fine in CIFAR100_SUPERCLASSES_BY_NAME[D.CIFAR100_COARSE_CLASSES[coarse]], fine


def test_cifar100_inconsistent_hierarchy_rejected(tmp_path):
    write_fake_cifar100(tmp_path)
    path = tmp_path / "cifar-100-python" / "train"
    d = pickle.loads(path.read_bytes(), encoding="bytes")
    d[b"coarse_labels"][100] = (d[b"coarse_labels"][100] + 1) % 20  # sample 100 is fine class 0 again
    _pickle(path, d)
    with pytest.raises(ValueError, match="two coarse classes"):
        D.load_dataset("cifar100", tmp_path)


def test_cifar_missing_files_message(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        D.load_dataset("cifar10", tmp_path / "empty")
    msg = str(err.value)
    assert str(tmp_path / "empty" / "cifar-10-batches-py" / "data_batch_1") in msg
    assert "download=True" in msg and "cifar-10-python.tar.gz" in msg
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        D.load_dataset("cifar100", tmp_path / "empty", train=False)


def test_cifar_download_uses_torchvision_with_md5(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kw):
        calls.append((url, filename, md5))
        write_fake_cifar10(Path(download_root))

    monkeypatch.setattr(tvu, "download_and_extract_archive", fake_download)
    ds = D.load_dataset("cifar10", tmp_path, download=True)
    assert len(ds) == 100
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                      "c58f30108f718f92721af3b95e74349a")]
    D.load_dataset("cifar10", tmp_path, download=True)
    assert len(calls) == 1  # present files are not downloaded again


def test_default_root_from_environment(tmp_path, monkeypatch):
    write_fake_cifar10(tmp_path / "b")
    monkeypatch.setenv("AMMIX_DATA", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert len(D.load_dataset("cifar10")) == 100


# ------------------------------------------------------------------------------- Fashion-MNIST
@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx(tmp_path, gz):
    written = write_fake_fashion(tmp_path / "fashion-mnist", gz=gz)
    ds = D.load_dataset("fashion-mnist", tmp_path)
    assert ds.images.shape == (30, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], torch.from_numpy(written["train"][0]))
    assert ds.labels.tolist() == written["train"][1].tolist()
    test = D.load_dataset("fashion-mnist", tmp_path, train=False)
    assert len(test) == 10 and ds.mean == (0.2860,)


def test_fashion_mnist_torchvision_layout(tmp_path):
    write_fake_fashion(tmp_path / "FashionMNIST" / "raw", gz=False)
    assert len(D.load_dataset("fashion-mnist", tmp_path)) == 30


def test_fashion_mnist_grouping(tmp_path):
    write_fake_fashion(tmp_path / "fashion-mnist")
    ds = D.load_dataset("fashion-mnist", tmp_path)
    groups = {c: sorted({ds.classes[f] for f in ds.labels[ds.coarse_labels == i].tolist()})
              for i, c in enumerate(ds.coarse_classes)}
    assert groups == {"tops": sorted(["T-shirt/top", "Pullover", "Coat", "Shirt"]),
                      "bottoms-and-dresses": ["Dress", "Trouser"],
                      "footwear": sorted(["Sandal", "Sneaker", "Ankle boot"]), "bags": ["Bag"]}


def test_fashion_mnist_missing_and_download(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-copy")
    with pytest.raises(FileNotFoundError, match="(?s)train-images-idx3-ubyte.*download=True"):
        D.load_dataset("fashion-mnist", tmp_path / "empty")
    import torchvision.datasets as tvd

    def fake_fashion(root, train=True, download=False, **kw):
        assert download
        write_fake_fashion(Path(root) / "FashionMNIST" / "raw", gz=False)

    monkeypatch.setattr(tvd, "FashionMNIST", fake_fashion)
    assert len(D.load_dataset("fashion-mnist", tmp_path / "dl", download=True)) == 30


def test_idx_bad_file(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX"):
        D.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((2, 3), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="header says"):
        D.read_idx(tmp_path / "short")


@pytest.mark.skipif(not readers.FASHION_MNIST_SYSTEM_DIR.is_dir(), reason="no dataset-fashion-mnist")
def test_fashion_mnist_system_copy(tmp_path):
    ds = D.load_dataset("fashion-mnist", tmp_path / "empty", train=False)
    assert ds.images.shape == (10000, 1, 28, 28) and ds.class_counts() == [1000] * 10


# --------------------------------------------------------------------------------- JPEG CIFAR
def test_cifar10_jpeg_tree_and_cache(tmp_path, monkeypatch):
    write_jpeg_tree(tmp_path / "cifar10-jpeg")
    ds = D.load_dataset("cifar10-jpeg", tmp_path)
    assert ds.images.shape == (30, 3, 32, 32) and ds.classes == D.CIFAR10_CLASSES
    assert ds.labels.tolist() == [c for c in range(10) for _ in range(3)]
    assert abs(int(ds.images[4, 0, 10, 10]) - 25) <= 3  # class 1, colour (25, 50, 185)
    assert abs(int(ds.images[4, 2, 10, 10]) - 185) <= 3
    assert ds.coarse_classes == ["vehicles", "animals"] and ds.mean == readers.CIFAR10_JPEG_MEAN
    caches = list((tmp_path / "cifar10-jpeg" / ".ammix-cache").glob("train-*.pt"))
    assert len(caches) == 1
    test = D.load_dataset("cifar10-jpeg", tmp_path, train=False, cache=False)
    assert len(test) == 30 and not list((tmp_path / "cifar10-jpeg" / ".ammix-cache").glob("test-*.pt"))
    monkeypatch.setattr(readers, "_decode", lambda *a, **k: pytest.fail("decoded again despite cache"))
    again = D.load_dataset("cifar10-jpeg", tmp_path)
    assert torch.equal(again.images, ds.images) and torch.equal(again.labels, ds.labels)


def test_image_decoders_agree(tmp_path):
    write_jpeg_tree(tmp_path / "t", per_class=1, classes=["a", "b"])
    paths = sorted(str(p) for p in (tmp_path / "t" / "train").rglob("*.jpg"))
    fast = readers._decode_torchvision(paths, grayscale=False)
    slow = [readers._decode_pil(p, grayscale=False) for p in paths]
    if fast is not None:
        assert all(torch.equal(a, b) for a, b in zip(fast, slow, strict=True))
    assert slow[0].shape == (3, 32, 32) and readers._decode_pil(paths[0], True).shape == (1, 32, 32)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot decode image"):
        readers._decode([str(tmp_path / "broken.jpg")], False, None)


def test_cifar10_jpeg_cache_key_changes_with_files(tmp_path):
    write_jpeg_tree(tmp_path / "cifar10-jpeg")
    D.load_dataset("cifar10-jpeg", tmp_path)
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "cifar10-jpeg" / "train" / "cat" / "9999.jpg")
    assert len(D.load_dataset("cifar10-jpeg", tmp_path)) == 31
    assert len(list((tmp_path / "cifar10-jpeg" / ".ammix-cache").glob("train-*.pt"))) == 2


def _tar_tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    write_jpeg_tree(src / "cifar10-jpeg", per_class=2)
    holder = tmp_path / "holder"
    holder.mkdir()
    with tarfile.open(holder / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar10-jpeg", arcname="cifar10-jpeg")
    return holder


def test_cifar10_jpeg_from_tarball_extracted_once(tmp_path, monkeypatch):
    holder = _tar_tree(tmp_path)
    ds = D.load_dataset("cifar10-jpeg", holder)
    assert len(ds) == 20 and (holder / "cifar10-jpeg" / "train" / "cat").is_dir()
    import torchvision.datasets.utils as tvu

    monkeypatch.setattr(tvu, "extract_archive", lambda *a, **k: pytest.fail("extracted twice"))
    assert len(D.load_dataset("cifar10-jpeg", holder, train=False)) == 20


def test_cifar10_jpeg_tarball_in_read_only_folder(tmp_path):
    holder = _tar_tree(tmp_path)
    os.chmod(holder, 0o555)
    try:
        ds = D.load_dataset("cifar10-jpeg", holder)
        mini = D.load_dataset("mini-cifar", holder, source="cifar10-jpeg", train=False)
    finally:
        os.chmod(holder, 0o755)
    assert len(ds) == 20 and len(mini) == 8 and mini.name == "mini-cifar-jpeg"
    assert sorted(p.name for p in holder.iterdir()) == ["cifar10-jpeg.tar.gz"]  # nothing written there
    cache = tmp_path / "user-cache" / "cifar10-jpeg" / "cifar10-jpeg"
    assert (cache / "train").is_dir() and list((cache / ".ammix-cache").glob("*.pt"))
    explicit = D.load_dataset("cifar10-jpeg", holder, cache_dir=tmp_path / "mine")
    assert torch.equal(explicit.images, ds.images) and (tmp_path / "mine" / "cifar10-jpeg").is_dir()


def test_cifar10_jpeg_missing_and_no_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar10-jpeg.tar.gz"):
        D.load_dataset("cifar10-jpeg", tmp_path)
    with pytest.raises(ValueError, match="cannot be downloaded"):
        D.load_dataset("cifar10-jpeg", tmp_path, download=True)


def test_cifar10_jpeg_wrong_classes(tmp_path):
    write_jpeg_tree(tmp_path / "cifar10-jpeg", per_class=1, classes=["a", "b"])
    with pytest.raises(ValueError, match="expected"):
        D.load_dataset("cifar10-jpeg", tmp_path)


def test_image_folder_generic(tmp_path):
    write_jpeg_tree(tmp_path / "pets", per_class=2, classes=["cat", "dog"])
    (tmp_path / "pets" / "train" / "dog" / "big.png").parent.mkdir(exist_ok=True)
    Image.new("RGB", (40, 40), (9, 9, 9)).save(tmp_path / "pets" / "train" / "dog" / "big.png")
    with pytest.raises(ValueError, match="differ in size.*image_size"):
        D.load_dataset("image-folder", tmp_path / "pets", cache=False)
    ds = D.load_dataset("image-folder", tmp_path / "pets", image_size=32, cache=False)
    assert ds.images.shape == (5, 3, 32, 32) and ds.classes == ["cat", "dog"] and ds.name == "pets"
    test = D.load_dataset("image-folder", tmp_path / "pets", train=False, image_size=32, grayscale=True,
                          cache=False)
    assert test.images.shape == (4, 1, 32, 32)
    # A test tree without one of the training classes: its labels would number other classes (the
    # third class's images scored as the second's), so it is refused.
    write_jpeg_tree(tmp_path / "three", per_class=1, classes=["a", "b", "c"])
    shutil.rmtree(tmp_path / "three" / "test" / "b")
    with pytest.raises(ValueError, match=r"test has class folders \['a', 'c'\], expected \['a', 'b', 'c'\]"):
        D.load_dataset("image-folder", tmp_path / "three", train=False, cache=False)


REAL_JPEG = Path("/work/shared/data/cifar10-jpeg.tar.gz")


@pytest.mark.slow
@pytest.mark.skipif(not REAL_JPEG.is_file(), reason="no CIFAR-10 JPEG copy here")
def test_real_cifar10_jpeg(monkeypatch):
    monkeypatch.delenv("AMMIX_CACHE")  # reuse the user cache between runs
    ds = D.load_dataset("cifar10-jpeg", REAL_JPEG.parent, train=False)
    assert ds.images.shape == (10000, 3, 32, 32) and ds.class_counts() == [1000] * 10
    mean, std = D.channel_stats(ds.images)
    assert np.allclose(mean, readers.CIFAR10_JPEG_MEAN, atol=0.01)


# ----------------------------------------------------------------------------- digits, synthetic
def test_digits():
    train, test = D.load_dataset("digits"), D.load_dataset("digits", train=False)
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (1, 8, 8)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255
    assert train.mean == test.mean and train.coarse_labels is None
    assert min(test.class_counts()) >= 40  # stratified


def test_synthetic_deterministic_and_hierarchical():
    a = D.load_dataset("synthetic", num_coarse=3, fine_per_coarse=2, samples_per_class=20, image_size=16,
                       channels=1, seed=5)
    b = D.load_dataset("synthetic", num_coarse=3, fine_per_coarse=2, samples_per_class=20, image_size=16,
                       channels=1, seed=5)
    c = D.load_dataset("synthetic", num_coarse=3, fine_per_coarse=2, samples_per_class=20, image_size=16,
                       channels=1, seed=6)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.images.shape == (120, 1, 16, 16) and a.class_counts() == [20] * 6
    assert a.coarse_classes == ["c0", "c1", "c2"] and torch.equal(a.coarse_labels, a.labels // 2)
    test = D.load_dataset("synthetic", train=False, num_coarse=3, fine_per_coarse=2, samples_per_class=20,
                          image_size=16, channels=1, seed=5)
    assert test.mean == a.mean and not torch.equal(test.images, a.images)


def test_synthetic_is_learnable_at_both_levels():
    train = D.load_dataset("synthetic", samples_per_class=30)
    test = D.load_dataset("synthetic", train=False, samples_per_class=30)
    xtr, xte = train.images.flatten(1).float(), test.images.flatten(1).float()
    centroids = torch.stack([xtr[train.labels == k].mean(0) for k in range(train.num_classes)])
    pred = torch.cdist(xte, centroids).argmin(1)
    assert (pred == test.labels).float().mean() > 0.95
    # fine classes of one coarse class are nearer each other than to other coarse classes
    dist = torch.cdist(centroids, centroids)
    coarse = torch.arange(train.num_classes) // 2  # 2 fine classes per coarse class by default
    same = coarse[:, None] == coarse[None, :]
    within = dist[same & ~torch.eye(len(coarse), dtype=torch.bool)].mean()
    assert within < dist[~same].mean()
    coarse_test = test.with_coarse_labels()
    assert ((pred // 2) == coarse_test.labels).float().mean() > 0.97


# ---------------------------------------------------------------------------------- Mini-CIFAR
def test_mini_cifar_from_cifar10(tmp_path):
    write_fake_cifar10(tmp_path)
    ds = D.load_dataset("mini-cifar", tmp_path)
    assert ds.classes == ["airplane", "automobile", "bird", "cat"] and ds.class_counts() == [10] * 4
    assert ds.coarse_classes == ["vehicles", "animals"] and ds.coarse_labels.tolist() == [
        [0, 0, 1, 1][k] for k in ds.labels.tolist()]
    full = D.load_dataset("cifar10", tmp_path)
    assert torch.equal(ds.images, full.images[full.labels < 4])
    with pytest.raises(ValueError, match="source must be one of cifar10, cifar10-jpeg"):
        D.load_dataset("mini-cifar", tmp_path, source="svhn")


def test_mini_cifar_lt(tmp_path):
    write_fake_cifar10(tmp_path, per_batch=100)  # 50 per class
    lt = D.load_dataset("mini-cifar-lt", tmp_path, imbalance_factor=10)
    assert lt.class_counts() == [50, 23, 10, 5] and lt.name == "mini-cifar-lt10"  # airplane the head
    assert D.load_dataset("mini-cifar-lt", tmp_path, imbalance_factor=10, lt_seed=0).class_counts() == [
        50, 23, 10, 5]
    assert D.load_dataset("mini-cifar-lt", tmp_path, train=False).class_counts() == [10] * 4  # balanced test
    assert D.load_dataset("mini-cifar-lt", tmp_path, imbalance_factor=10, profile="step").class_counts() == [
        50, 50, 5, 5]


def test_mini_cifar_lt_default_factor(tmp_path):
    write_fake_cifar10(tmp_path, per_batch=200)  # 100 per class: the default IF 100 leaves the tail 1
    assert D.load_dataset("mini-cifar-lt", tmp_path).class_counts() == [100, 21, 4, 1]


# ------------------------------------------------------------------------------------- long tail
def test_long_tail_counts_pinned():
    assert D.long_tail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(D.long_tail_counts(5000, 10, 100)) == 12406
    assert sum(D.long_tail_counts(5000, 10, 50)) == 13996
    assert sum(D.long_tail_counts(500, 100, 100)) == 10847
    assert sum(D.long_tail_counts(500, 100, 50)) == 12608
    assert sum(D.long_tail_counts(500, 100, 10)) == 19573
    assert D.long_tail_counts(5000, 10, 100, "step") == [5000] * 5 + [50] * 5
    assert D.long_tail_counts(5000, 4, 100) == [5000, 1077, 232, 50]
    # Fashion-MNIST-LT IF 100 of docs/results.md (14,886 images)
    assert D.long_tail_counts(6000, 10, 100) == [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    assert sum(D.long_tail_counts(6000, 10, 100)) == 14886
    assert D.long_tail_counts(7, 5, 1) == [7] * 5 and D.long_tail_counts(9, 1, 10) == [9]


@pytest.mark.parametrize("bad", [0.5, 0, -3, float("nan"), "x"])
def test_long_tail_counts_rejects_bad_factor(bad):
    with pytest.raises(ValueError, match="imbalance_factor"):
        D.long_tail_counts(100, 10, bad)


def test_long_tail_counts_refuses_a_factor_that_empties_a_class():
    assert D.long_tail_counts(64, 4, 64) == [64, 16, 4, 1]  # the largest factor 64 images allow
    with pytest.raises(ValueError, match=r"^imbalance_factor 65 leaves class 3 without samples \(64 a class "
                       r"before the long tail\): at most 64$"):
        D.long_tail_counts(64, 4, 65)
    with pytest.raises(ValueError, match="leaves class 2 without samples"):
        D.long_tail_counts(64, 4, 200, "step")  # [64, 64, 0, 0]


def test_long_tail_counts_rejects_bad_profile():
    with pytest.raises(ValueError, match="known: exp, step"):
        D.long_tail_counts(100, 10, 10, profile="linear")


def _balanced(n_per_class: int, num_classes: int) -> D.ImageDataset:
    labels = torch.arange(num_classes).repeat(n_per_class)
    images = torch.arange(len(labels), dtype=torch.int64).remainder(256).to(torch.uint8).view(-1, 1, 1, 1)
    return D.ImageDataset(images.expand(-1, 1, 2, 2).contiguous(), labels,
                          [f"k{i}" for i in range(num_classes)], mean=(0.5,), std=(0.25,), name="toy")


def test_long_tailed_subset_deterministic():
    ds = _balanced(100, 10)
    a, b = D.long_tailed(ds, 100, seed=3), D.long_tailed(ds, 100, seed=3)
    c = D.long_tailed(ds, 100, seed=4)
    assert a.class_counts() == D.long_tail_counts(100, 10, 100) == [100, 59, 35, 21, 12, 7, 4, 2, 1, 1]
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.name == "toy-lt100" and D.long_tailed(ds, 10, "step").name == "toy-lt10-step"
    assert a.mean == ds.mean and a.classes == ds.classes
    with pytest.raises(ValueError, match="imbalance_factor"):
        D.long_tailed(ds, 0.9)


def test_cifar_lt_counts_on_fake_cifar100(tmp_path):
    write_fake_cifar100(tmp_path, n=1000)  # 10 per class
    lt = D.load_dataset("cifar100-lt", tmp_path, imbalance_factor=10)
    assert lt.class_counts() == D.long_tail_counts(10, 100, 10) and lt.coarse_labels is not None
    assert len(D.load_dataset("cifar100-lt", tmp_path, train=False, imbalance_factor=10)) == 1000


def test_long_tailed_on_a_nearly_balanced_source_starts_from_the_smallest_class():
    ds = _balanced(10, 3).subset(list(range(25)))  # class counts 9, 8, 8
    assert D.long_tailed(ds, 1).class_counts() == [8, 8, 8]
    assert D.long_tailed(ds, 4).class_counts() == [8, 4, 2]


def test_per_class_subset_then_long_tail():
    ds = _balanced(20, 3)
    sub = D.per_class_subset(ds, 12, seed=1)
    assert sub.class_counts() == [12, 12, 12] and sub.name == "toy-sub12"
    assert torch.equal(sub.images, D.per_class_subset(ds, 12, seed=1).images)
    assert not torch.equal(sub.images, D.per_class_subset(ds, 12, seed=2).images)
    kept = sub.images.flatten(1)[:, 0].long()  # each image holds its index (mod 256) in ds
    assert torch.equal(kept, kept.sort().values) and kept.unique().numel() == 36  # in order, no repeat
    assert D.long_tailed(sub, 4).class_counts() == [12, 6, 3]  # the long tail starts from the subset
    with pytest.raises(ValueError, match="has 20 samples of class 0, fewer than per_class = 21"):
        D.per_class_subset(ds, 21)


def test_train_per_class_in_a_config(tmp_path):
    from ammix.engine import ConfigError, load_config
    from ammix.engine.loop import load_data

    smoke = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    cfg = load_config(smoke, ["data.train_per_class=10", "data.imbalance_factor=10"])
    train_set, test_set = load_data(cfg)
    assert train_set.class_counts() == D.long_tail_counts(10, 4, 10) and len(test_set) == 4 * 32
    write_fake_cifar100(tmp_path, n=1000)
    lt = load_config(smoke, [f"data={{dataset: cifar100-lt, root: {tmp_path}, train_per_class: 5}}"])
    with pytest.raises(ConfigError, match="use 'cifar100' with data.imbalance_factor"):
        load_data(lt)


def test_shot_groups():
    groups = D.shot_groups([5000, 101, 100, 20, 19, 0])
    assert groups == {"many": [0, 1], "medium": [2, 3], "few": [4, 5]}
    assert D.shot_groups(torch.tensor([150, 50])) == {"many": [0], "medium": [1], "few": []}


# --------------------------------------------------------------------------------- ImageDataset
def test_image_dataset_helpers_and_validation():
    ds = _balanced(3, 4)
    ds = D.ImageDataset(ds.images, ds.labels, ds.classes, coarse_labels=ds.labels // 2,
                        coarse_classes=["x", "y"], mean=ds.mean, std=ds.std, name="toy")
    sub = ds.subset([0, 5, 6])
    assert sub.labels.tolist() == [0, 1, 2] and sub.coarse_labels.tolist() == [0, 0, 1]
    assert sub.class_counts() == [1, 1, 1, 0] and len(sub) == 3
    assert len(ds.subset(ds.labels == 1)) == 3 and len(ds.subset([])) == 0
    with pytest.raises(IndexError):
        ds.subset([100])
    with pytest.raises(TypeError, match="uint8"):
        D.ImageDataset(ds.images.float(), ds.labels, ds.classes)
    with pytest.raises(ValueError, match=r"lie in \[0, 4\)"):
        D.ImageDataset(ds.images, ds.labels + 1, ds.classes)
    with pytest.raises(ValueError, match="one per channel"):
        D.ImageDataset(ds.images, ds.labels, ds.classes, mean=(0.1, 0.2), std=(0.1, 0.2))
    with pytest.raises(ValueError, match="no coarse labels"):
        _balanced(1, 2).with_coarse_labels()
    auto = D.ImageDataset(ds.images, ds.labels, ds.classes)  # mean/std from the images
    assert len(auto.mean) == 1 and auto.std[0] > 0
