"""DeviceLoader: shapes, normalisation, order, sharding, and its augmentation against the reference path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

import ammix.data as D

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def noise_dataset(n: int, size: int = 16, channels: int = 3, num_classes: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % num_classes
    return D.ImageDataset(images, labels, [str(i) for i in range(num_classes)],
                          mean=(0.4, 0.5, 0.6)[:channels], std=(0.2, 0.25, 0.3)[:channels], name="noise")


def unnormalise(x: torch.Tensor, ds: D.ImageDataset) -> torch.Tensor:
    """Back to uint8 pixel values (exact up to float rounding)."""
    mean = torch.tensor(ds.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(ds.std, device=x.device).view(1, -1, 1, 1)
    pixels = (x * std + mean) * 255
    assert (pixels - pixels.round()).abs().max() < 1e-3
    return pixels.round().clamp(0, 255).to(torch.uint8)


def candidates(image: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """All crops of the zero-padded image (dy, dx in [0, 2p]) and their mirror images.

    Returns ``(2p+1)^2 * 2 x C x H x W``; index ``(dy * (2p+1) + dx) * 2 + flip``.
    """
    c, h, w = image.shape
    padded = F.pad(image, (padding,) * 4)
    out = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            window = padded[:, dy:dy + h, dx:dx + w]
            out += [window, window.flip(-1)]
    return torch.stack(out)


def identify(batch_u8: torch.Tensor, sources: torch.Tensor, cands: dict) -> torch.Tensor:
    """For each augmented image (uint8) and its source image index, the matching candidate index."""
    found = []
    for img, src in zip(batch_u8.cpu(), sources.tolist(), strict=True):
        match = (cands[src] == img).flatten(1).all(1).nonzero().flatten()
        assert len(match) == 1, "augmented image is not exactly one window of the padded image"
        found.append(int(match[0]))
    return torch.tensor(found)


# ------------------------------------------------------------------------------ basic behaviour
@pytest.mark.parametrize("device", DEVICES)
def test_shapes_dtypes_and_normalisation(device):
    ds = noise_dataset(50)
    loader = D.DeviceLoader(ds, 16, device=device, train=False)
    assert len(loader) == 4 and not loader.shuffle and not loader.drop_last
    batches = list(loader)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (50, 3, 16, 16)
    assert x.device.type == device and y.device.type == device
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    expected = (ds.images.float() / 255 - mean) / std  # what ToTensor + Normalize give
    torch.testing.assert_close(x.cpu(), expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(y.cpu(), ds.labels)


def test_train_defaults_and_len():
    ds = noise_dataset(50)
    loader = D.DeviceLoader(ds, 16)
    assert loader.shuffle and loader.drop_last and loader.crop and loader.flip and len(loader) == 3
    assert sum(len(y) for _, y in loader) == 48
    x, _ = next(iter(loader))
    assert x.shape == (16, 3, 16, 16)
    assert len(D.DeviceLoader(ds, 16, drop_last=False)) == 4
    assert len(D.DeviceLoader(ds, 100, drop_last=True)) == 0


def test_value_range_with_augmentation():
    ds = noise_dataset(64)
    x, _ = next(iter(D.DeviceLoader(ds, 64, augment="cifar")))
    low = min((0 - m) / s for m, s in zip(ds.mean, ds.std, strict=True))
    high = max((1 - m) / s for m, s in zip(ds.mean, ds.std, strict=True))
    assert x.min() >= low - 1e-5 and x.max() <= high + 1e-5
    # zero padding shows up as pixel value 0 somewhere in a batch of crops
    assert (unnormalise(x, ds) == 0).any()


def test_bad_arguments():
    ds = noise_dataset(10)
    with pytest.raises(ValueError, match="unknown augment 'mixup'"):
        D.DeviceLoader(ds, 4, augment="mixup")
    with pytest.raises(ValueError, match="batch_size"):
        D.DeviceLoader(ds, 0)
    with pytest.raises(ValueError, match="rank"):
        D.DeviceLoader(ds, 4, rank=2, world_size=2)
    with pytest.raises(TypeError, match="ImageDataset"):
        D.DeviceLoader(ds.images, 4)
    with pytest.raises(ValueError, match="epoch"):
        D.DeviceLoader(ds, 4).set_epoch(-1)


# --------------------------------------------------------------------------- order and sharding
def test_shuffle_deterministic_per_seed_and_epoch():
    ds = noise_dataset(40)

    def labels_and_images(seed, epoch):
        loader = D.DeviceLoader(ds, 8, seed=seed)
        loader.set_epoch(epoch)
        xs, ys = zip(*loader, strict=True)
        return torch.cat(xs), torch.cat(ys)

    a, b = labels_and_images(0, 0), labels_and_images(0, 0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], labels_and_images(0, 1)[0])
    assert not torch.equal(a[0], labels_and_images(1, 0)[0])
    loader = D.DeviceLoader(ds, 8, seed=0)
    assert not torch.equal(loader.indices(0), loader.indices(1))
    assert sorted(loader.indices(3).tolist()) == list(range(40))


@pytest.mark.parametrize("n,world,drop_last,shuffle", [(100, 3, False, True), (100, 3, True, True),
                                                       (10, 4, False, False), (7, 2, True, False)])
def test_indices_match_distributed_sampler(n, world, drop_last, shuffle):
    ds = noise_dataset(n)
    for rank in range(world):
        loader = D.DeviceLoader(ds, 4, shuffle=shuffle, drop_last=drop_last, seed=5, rank=rank,
                                world_size=world)
        ref = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=5,
                                 drop_last=drop_last)
        for epoch in (0, 3):
            ref.set_epoch(epoch)
            assert loader.indices(epoch).tolist() == list(ref)
        assert loader.num_samples == ref.num_samples


def test_ddp_shards_disjoint_and_covering():
    ds = noise_dataset(100)
    shards = [D.DeviceLoader(ds, 10, rank=r, world_size=4, seed=1).indices(2) for r in range(4)]
    union = torch.cat(shards)
    assert len(union) == 100 and sorted(union.tolist()) == list(range(100))  # 100 % 4 == 0: a partition
    shards = [D.DeviceLoader(ds, 10, rank=r, world_size=3, drop_last=True).indices() for r in range(3)]
    assert len(torch.cat(shards).unique()) == len(torch.cat(shards)) == 99  # tail dropped, disjoint
    shards = [D.DeviceLoader(ds, 10, rank=r, world_size=3, drop_last=False).indices() for r in range(3)]
    assert sorted(set(torch.cat(shards).tolist())) == list(range(100))  # padded with repeats, covering
    assert {len(s) for s in shards} == {34}
    # the labels each rank yields are those of its shard, in order
    loader = D.DeviceLoader(ds, 7, rank=1, world_size=3, drop_last=False, augment=None)
    ys = torch.cat([y for _, y in loader])
    assert torch.equal(ys, ds.labels[loader.indices()])


@pytest.mark.parametrize("chunk_size", [1, 20, 2048])
def test_iter_from_resumes_exactly(chunk_size):
    ds = noise_dataset(60)
    loader = D.DeviceLoader(ds, 8, seed=2, drop_last=False)
    loader.set_epoch(4)
    full = list(loader)
    assert [len(y) for _, y in full] == [8] * 7 + [4]
    # a fresh object, another chunking: nothing but seed and epoch is needed
    resumed = D.DeviceLoader(ds, 8, seed=2, drop_last=False, chunk_size=chunk_size)
    resumed.set_epoch(4)
    tail = list(resumed.iter_from(3))
    assert len(tail) == len(full) - 3
    for (xa, ya), (xb, yb) in zip(full[3:], tail, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert list(resumed.iter_from(len(full))) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_same_batches_on_cpu_and_gpu():
    ds = noise_dataset(40)
    cpu = list(D.DeviceLoader(ds, 16, seed=3))
    gpu = list(D.DeviceLoader(ds, 16, seed=3, device="cuda"))
    for (xa, ya), (xb, yb) in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(xa, xb.cpu(), atol=1e-5, rtol=1e-5)
        assert torch.equal(ya, yb.cpu())


# ------------------------------------------------------------------------ augmentation semantics
@pytest.mark.parametrize("device", DEVICES)
def test_crop_is_a_shifted_window_of_the_padded_image(device):
    ds = noise_dataset(30)
    cands = {i: candidates(ds.images[i]) for i in range(len(ds))}
    loader = D.DeviceLoader(ds, 10, device=device, augment="cifar", seed=7)
    for b, (x, _) in enumerate(loader):
        src = loader.indices()[b * 10:(b + 1) * 10]
        identify(unnormalise(x, ds), src, cands)  # asserts exactly one match each
    flip_only = D.DeviceLoader(ds, 30, device=device, augment="flip", shuffle=False)
    x, _ = next(iter(flip_only))
    u = unnormalise(x, ds).cpu()
    same = (u == ds.images).flatten(1).all(1)
    mirrored = (u == ds.images.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 30


def _augmented_draws(kind: str, ds: D.ImageDataset, seed: int):
    """One epoch over ``ds`` (copies of a few images) with augmentation; returns (uint8 images, sources)."""
    if kind == "device":
        loader = D.DeviceLoader(ds, 100, augment="cifar", shuffle=False, drop_last=False, seed=seed)
        xs = [x for x, _ in loader]
    else:
        torch.manual_seed(seed)  # the per-image transforms use torch's global RNG
        loader = D.reference_loader(ds, 100, train=True, shuffle=False, drop_last=False, seed=seed)
        xs = [x for x, _ in loader]
    return unnormalise(torch.cat(xs), ds), torch.arange(len(ds))


def test_augmentation_distribution_matches_reference_loader():
    base = noise_dataset(4, size=12, seed=11)
    copies = 300
    ds = base.subset(torch.arange(4).repeat_interleave(copies))
    src_of = torch.arange(4).repeat_interleave(copies)
    cands = {i: candidates(base.images[i]) for i in range(4)}
    stats = {}
    for kind in ("device", "reference"):
        u, _ = _augmented_draws(kind, ds, seed=1)
        idx = identify(u, src_of, cands)
        flip = idx % 2
        offset = idx // 2
        dy, dx = offset // 9 - 4, offset % 9 - 4  # shifts in [-4, 4]
        stats[kind] = dict(u=u, flip=flip, dy=dy, dx=dx)
        n = len(idx)
        assert abs(flip.float().mean().item() - 0.5) < 4 * math.sqrt(0.25 / n)
        for shift in (dy, dx):
            counts = torch.bincount(shift + 4, minlength=9).double()
            assert shift.min() >= -4 and shift.max() <= 4
            chi2 = (((counts - n / 9) ** 2) / (n / 9)).sum().item()
            assert chi2 < 26.1, f"{kind}: crop offsets not uniform (chi2 {chi2:.1f}, 8 dof, p < 0.001)"
        # offsets and flips independent of each other (no systematic coupling)
        assert abs(dy.float().mean().item()) < 0.35 and abs(dx.float().mean().item()) < 0.35
    # Per-pixel mean and std over the draws of each image agree with the exact values (the average over
    # all 162 equally likely crops) and with each other, measured in standard errors: for a correct
    # sampler mean |z| is about 0.8 (0.6..1.2 over seeds: the pixels of one draw are correlated); the
    # exact checks of the offsets and flips above are the sharp ones.
    for i in range(4):
        sel = src_of == i
        exact = cands[i].double()
        m_exact, s_exact = exact.mean(0), exact.std(0, unbiased=False).clamp_min(1.0)
        se_mean, se_std = s_exact / math.sqrt(copies), s_exact / math.sqrt(2 * copies)
        means = {}
        for kind in ("device", "reference"):
            draws = stats[kind]["u"][sel].double()
            means[kind] = draws.mean(0)
            assert ((means[kind] - m_exact) / se_mean).abs().mean() < 1.6, kind
            assert ((draws.std(0) - s_exact) / se_std).abs().mean() < 1.2, kind
        assert ((means["device"] - means["reference"]) / (se_mean * math.sqrt(2))).abs().mean() < 1.6


def test_reference_loader_shapes_and_defaults():
    ds = noise_dataset(20, channels=1)
    loader = D.reference_loader(ds, 8, train=False)
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    mean, std = ds.mean[0], ds.std[0]
    torch.testing.assert_close(x, (ds.images[:8].float() / 255 - mean) / std, atol=1e-5, rtol=1e-5)
    assert len(D.reference_loader(ds, 8, train=True)) == 2  # drop_last defaults to train


def test_works_on_real_shaped_grayscale_data():
    ds = D.load_dataset("digits")
    loader = D.DeviceLoader(ds, 64, augment="cifar", padding=2)
    x, y = next(iter(loader))
    assert x.shape == (64, 1, 8, 8) and np.isfinite(x.numpy()).all()
