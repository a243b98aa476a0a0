"""Set-up of a run: device and autocast, seeds, data and loaders, model, optimizer, DDP wrapping.

Pure helpers that the training loop (``ammix.engine.loop``) calls once before its first epoch.
"""

from __future__ import annotations

import contextlib
import errno
import pickle
import random

import numpy as np
import torch
from torch import nn

from ammix import data as D
from ammix.losses import SoftCrossEntropy, build_loss
from ammix.models import build_model

from .config import Config, ConfigError, component_error
from .distributed import DistInfo, is_distributed

try:  # what a damaged file in the Hugging Face cache raises (timm's weights); absent without timm
    from safetensors import SafetensorError

    _SAFETENSORS_ERRORS: tuple[type[Exception], ...] = (SafetensorError,)
except ImportError:
    _SAFETENSORS_ERRORS = ()


class DataError(RuntimeError):
    """Files the run needs cannot be read: the dataset's, a model's pretrained weights."""


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto``: CUDA, then MPS, then CPU. Under torchrun a CUDA rank takes GPU ``LOCAL_RANK``."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps_ok and not info.enabled else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device = {name!r}: CUDA is not available here; allowed here: auto, cpu")
        if ":" in name and info.enabled:  # every rank on that one GPU: NCCL fails deep inside
            raise ConfigError(f"train.device = {name!r}: under torchrun each rank takes GPU LOCAL_RANK; "
                              "allowed: cuda, auto (choose GPUs with CUDA_VISIBLE_DEVICES)")
        index = int(name.split(":")[1]) if ":" in name else info.local_rank if info.enabled else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"train.device = {name!r}: no such GPU; {torch.cuda.device_count()} visible")
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
        return device
    if name == "mps":
        if not mps_ok:
            raise ConfigError("train.device = 'mps': MPS is not available here; allowed here: auto, cpu")
        if info.enabled:
            raise ConfigError(
                "train.device = 'mps': not supported with several processes; allowed: cpu, cuda"
            )
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), where autocast pays off."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``auto`` is bf16 on CUDA with bf16 and on a CPU with native bf16
    (``benchmarks/bench_amp_cpu.py``: 1.6-1.9x faster steps, same converged accuracy), off elsewhere;
    fp16 needs CUDA."""
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if mode == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"train.amp = 'fp16': needs CUDA (device is {device.type}); allowed here: auto, bf16, off"
        )
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.amp = 'bf16': this GPU has no bf16; allowed here: auto, fp16, off")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)


def autocast_name(dtype: torch.dtype) -> str:
    """How a run names its autocast dtype: ``bfloat16`` or ``float16``."""
    return str(dtype).removeprefix("torch.")


def emulated_bf16_warning(mode: str, device: torch.device) -> str | None:
    """A warning for ``train.amp = 'bf16'`` on a CPU that emulates bf16 (no AVX-512 BF16 or AMX): there
    autocast is far slower than float32 (benchmarks/results/amp_bf16_cpu_avx2.json); None otherwise."""
    if mode != "bf16" or device.type != "cpu" or cpu_has_native_bf16():
        return None
    return (
        "ammix: warning: train.amp = 'bf16' on a CPU without native bf16 (no AVX-512 BF16 or AMX): "
        "emulated, several times slower than float32 (benchmarks/results/amp_bf16_cpu_avx2.json); "
        "train.amp=auto or off trains in float32 here"
    )


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from a tuple of integers (numpy's SeedSequence: well mixed, stable)."""
    return int(
        np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> np.uint64(1)
    )


def seed_epoch(seed: int, rank: int, epoch: int, mixer_generator: torch.Generator) -> None:
    """Re-seed every stream from ``(seed, rank, epoch)``: what makes resume exact."""
    s = derive_seed(seed, rank, epoch)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2**32)
    mixer_generator.manual_seed(derive_seed(seed, rank, epoch, 1))


def load_data(cfg: Config) -> tuple[D.ImageDataset, D.ImageDataset]:
    """Train and test splits: a class-stratified subset of the train split if asked
    (``train_per_class``), then long-tailed when ``imbalance_factor > 1`` (through the dataset's own
    ``-lt`` variant where it has one), coarse labels if asked."""
    d = cfg.data
    opts = dict(d.options)
    lt = {"imbalance_factor": d.imbalance_factor, "profile": d.profile, "lt_seed": d.lt_seed}
    lt_variant = "imbalance_factor" in D.dataset_options(d.dataset)
    if lt_variant:
        opts.update({k: v for k, v in lt.items() if v is not None})
    if d.profile and not lt_variant and (d.imbalance_factor or 1.0) <= 1.0:
        raise ConfigError(  # it would train on the balanced set
            f"data.profile = {d.profile!r}: shapes a long tail, and there is none; set "
            f"data.imbalance_factor > 1, or remove the key"
        )
    if d.train_per_class and lt_variant:
        raise ConfigError(
            f"data.train_per_class: not with dataset {d.dataset!r}, whose long tail comes first; use "
            f"{d.dataset.removesuffix('-lt')!r} with data.imbalance_factor"
        )
    try:
        train_set = D.load_dataset(d.dataset, d.root, train=True, download=d.download, **opts)
        test_set = D.load_dataset(d.dataset, d.root, train=False, download=d.download, **opts)
        if d.train_per_class:
            train_set = D.per_class_subset(train_set, d.train_per_class, seed=d.lt_seed or 0)
        if not lt_variant and (d.imbalance_factor or 1.0) > 1.0:
            train_set = D.long_tailed(train_set, d.imbalance_factor, d.profile or "exp", seed=d.lt_seed or 0)
    except (ValueError, TypeError) as exc:
        raise component_error("data", "dataset", d.dataset, {**lt, **d.options}, exc) from None
    except OSError as exc:
        raise DataError(f"dataset {d.dataset!r}: {exc}") from None
    if d.labels == "coarse":
        if train_set.coarse_labels is None:
            raise ConfigError(
                f"data.labels = 'coarse': dataset {d.dataset!r} has no coarse labels; allowed: fine"
            )
        train_set, test_set = train_set.with_coarse_labels(), test_set.with_coarse_labels()
    return train_set, test_set


def make_model(cfg: Config, train_set: D.ImageDataset) -> nn.Module:
    """The config's backbone for ``train_set``'s classes and channels (a bad option is a ``ConfigError``).

    ``model.in_channels`` may be written when it matches the dataset, which is what sets it."""
    options = dict(cfg.model.options)
    channels = train_set.image_shape[0]
    if options.setdefault("in_channels", channels) != channels:
        raise ConfigError(
            f"model.in_channels = {options['in_channels']!r}: the dataset sets it ({train_set.name} has "
            f"{channels} channels); remove the key"
        )
    try:
        return build_model(cfg.model.name, train_set.num_classes, **options)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, *_SAFETENSORS_ERRORS) as exc:
        if _damaged_weights(exc, options):  # loaded from the cache, and failing, on every later run
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            cache = "the torch hub cache ($TORCH_HOME/hub/checkpoints)"
            if isinstance(exc, _SAFETENSORS_ERRORS):
                cache = "the Hugging Face cache ($HF_HOME/hub)"
            elif cfg.model.name.startswith("timm:"):  # timm downloads from either
                cache = "the Hugging Face cache ($HF_HOME/hub) or the torch hub cache ($TORCH_HOME/hub)"
            raise DataError(
                f"model {cfg.model.name!r}: its pretrained weights could not be read ({type(exc).__name__}: "
                f"{first_line}); a damaged file in {cache}? delete it and download again"
            ) from None
        if not isinstance(exc, OSError):
            raise
        raise DataError(  # before ValueError below: a Hugging Face cache miss is both
            f"model {cfg.model.name!r}: a file it needs could not be read ({exc}); pretrained weights are "
            f"downloaded once where there is a network (torch hub / Hugging Face cache), or train without"
        ) from None
    except (ValueError, TypeError) as exc:
        raise component_error("model", "name", cfg.model.name, cfg.model.options, exc) from None


def _damaged_weights(exc: BaseException, options: dict) -> bool:
    """Whether ``exc``, raised while building a model with pretrained weights, says the weights file
    itself is damaged (not a failed download, nor a size mismatch from an option that changes the
    architecture): an unpickling error (timm re-raises it as a RuntimeError), a zip torch cannot read
    (cut short: ``EINVAL``, or its reader's error), a legacy torch file cut short, torch.hub's hash
    check or a safetensors file that does not parse."""
    if not (options.get("pretrained") or options.get("weights") is not None):
        return False
    if isinstance(exc, OSError):
        return exc.errno == errno.EINVAL
    if isinstance(exc, RuntimeError):
        return isinstance(exc.__cause__, pickle.UnpicklingError) or any(
            text in str(exc) for text in ("PytorchStreamReader", "invalid hash value", "might be corrupted")
        )
    return True


def make_loss(cfg: Config, class_counts: list[int], device: torch.device) -> SoftCrossEntropy:
    """The config's loss on the training class counts, its tensors on ``device`` (a bad option is a
    ``ConfigError``)."""
    try:
        loss_fn = build_loss(
            cfg.loss.name, class_counts, label_smoothing=cfg.train.label_smoothing, **cfg.loss.options
        )
    except (ValueError, TypeError) as exc:
        raise component_error("loss", "name", cfg.loss.name, cfg.loss.options, exc) from None
    return loss_fn.to(device)


def compile_stages(model: nn.Module) -> None:
    """``torch.compile`` each stage and the head of a ``StagedModel`` in place; the mixing hook between
    stages stays eager, so every mixer works compiled."""
    for stage in model.stages:
        stage.compile()
    model.head.compile()


def make_optimizer(cfg: Config, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "adamw":
        return torch.optim.AdamW(
            params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
        )
    return torch.optim.SGD(
        params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
    )


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when a process group of several ranks is up.

    ``mixed_forward`` runs the mixer inside the model's ordinary forward (``at_boundary``), so DDP's
    gradient hooks see one forward per step whatever the method."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BN running statistics) on every rank, so all ranks evaluate the same model."""
    if is_distributed():
        for b in model.buffers():
            torch.distributed.broadcast(b, src=0)


def make_loaders(cfg: Config, train_set: D.ImageDataset, test_set: D.ImageDataset, info: DistInfo,
                 device: torch.device):
    """``(batches_for, test_loader, steps_per_epoch)``: ``batches_for(epoch)`` iterates an epoch's training
    batches. The global batch is split evenly across ranks; each rank evaluates a disjoint test shard."""
    d = cfg.data
    batch = d.batch_size // info.world_size
    augment = None if d.augment == "none" else d.augment
    test_shard = test_set.subset(torch.arange(info.rank, len(test_set), info.world_size))
    if d.loader == "device":
        train_loader = D.DeviceLoader(
            train_set,
            batch,
            device,
            train=True,
            augment=augment,
            shuffle=True,
            drop_last=d.drop_last,
            seed=cfg.seed,
            rank=info.rank,
            world_size=info.world_size,
        )
        test_loader = D.DeviceLoader(
            test_shard, d.eval_batch_size, device, train=False, augment=None, shuffle=False, drop_last=False
        )

        def batches_for(epoch: int):
            train_loader.set_epoch(epoch)
            return train_loader

        steps_per_epoch, per_rank = len(train_loader), train_loader.num_samples
    else:

        def batches_for(epoch: int):  # a new loader per epoch, its order seeded from (seed, epoch)
            return D.reference_loader(
                train_set,
                batch,
                train=True,
                augment=augment,
                num_workers=d.num_workers,
                seed=derive_seed(cfg.seed, epoch, 2),
                shuffle=True,
                drop_last=d.drop_last,
            )

        steps_per_epoch, per_rank = len(batches_for(0)), len(train_set)
        test_loader = D.reference_loader(test_shard, d.eval_batch_size, train=False, augment=None)
    if batch > per_rank:  # every step would see fewer images than the batch named
        raise ConfigError(
            f"data.batch_size = {d.batch_size}: larger than the training set ({per_rank} images "
            f"{'a process' if info.world_size > 1 else 'in all'}); allowed: <= {per_rank * info.world_size}"
        )
    if not d.drop_last and per_rank % batch == 1:  # found at the end of the first epoch otherwise
        raise ConfigError(
            f"data.batch_size = {d.batch_size}: leaves a last training batch of 1 image ({per_rank} images "
            f"{'a process' if info.world_size > 1 else 'in all'}), on which BatchNorm cannot train and a "
            "mixer finds no partner; set data.drop_last=true or another batch size"
        )
    return batches_for, test_loader, steps_per_epoch
