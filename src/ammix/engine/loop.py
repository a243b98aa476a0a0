"""The training loop: one function, ``train``, read top to bottom.

Exact resume. Everything random in an epoch is derived from ``(seed, rank, epoch)``: the DeviceLoader's
order and augmentation (``seed + epoch``, and ``(seed, epoch, rank)``), the mixer's generator and the
global torch / numpy / python streams (re-seeded at the start of every epoch). An epoch is therefore a
pure function of the model, optimizer and step count at its start, and a checkpoint written at the end
of an epoch is all a resume needs: on CPU with deterministic settings a resumed run ends with the same
weights and metrics as an uninterrupted one. (Checkpoints still hold every RNG state, for inspection
and for code that draws outside the loop.) A run killed mid-epoch restarts that epoch from its start.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ammix import data as D
from ammix.losses import SoftCrossEntropy, build_loss, loss_label
from ammix.mixing import build_mixer, mixed_forward, one_hot
from ammix.models import build_model

from .checkpoint import (
    CheckpointError,
    load_backbone,
    load_checkpoint,
    remove_stale_temps,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from .config import (
    Config,
    ConfigError,
    as_config,
    component_error,
    config_from_dict,
    mixer_extras,
    read_yaml,
)
from .distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    cleanup_distributed,
    dist_env,
    init_distributed,
    is_distributed,
)
from .evaluate import accuracy_metrics, class_counts_correct
from .rundir import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    SUMMARY,
    TENSORBOARD,
    append_metrics,
    check_run_dir,
    holds_run,
    truncate_metrics,
    wipe_run_dir,
    write_json,
    write_text,
)
from .schedule import lr_factor
from .tensorboard import log_feature_map


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class DataError(RuntimeError):
    """The dataset's files cannot be read (missing, unreadable)."""


# Keys a resumed run may change: they do not change what is computed.
RESUMABLE_CHANGES = {
    "train.stop_after_epochs",
    "train.device",
    "train.progress",
    "train.tensorboard",
    "train.log_every",
    "train.dist_timeout_s",
    "train.compile",
    "data.root",
    "data.num_workers",
    "data.download",
}


# --- Set-up helpers ---------------------------------------------------------------------------------


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto``: CUDA, then MPS, then CPU. Under torchrun a CUDA rank takes GPU ``LOCAL_RANK``."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps_ok and not info.enabled else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device = {name!r}: CUDA is not available here; allowed here: auto, cpu")
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


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``auto`` is bf16 on CUDA and off elsewhere; fp16 needs CUDA."""
    if mode == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if mode == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"train.amp = 'fp16': needs CUDA (device is {device.type}); allowed here: auto, bf16, off"
        )
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.amp = 'bf16': this GPU has no bf16; allowed here: auto, fp16, off")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)


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
    """Train and test splits: long-tailed train split when ``imbalance_factor > 1`` (through the dataset's
    own ``-lt`` variant where it has one), coarse labels if asked."""
    d = cfg.data
    opts = dict(d.options)
    lt = {"imbalance_factor": d.imbalance_factor, "profile": d.profile, "lt_seed": d.lt_seed}
    lt_variant = "imbalance_factor" in D.dataset_options(d.dataset)
    if lt_variant:
        opts.update({k: v for k, v in lt.items() if v is not None})
    try:
        train_set = D.load_dataset(d.dataset, d.root, train=True, download=d.download, **opts)
        test_set = D.load_dataset(d.dataset, d.root, train=False, download=d.download, **opts)
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
    except (ValueError, TypeError) as exc:
        raise component_error("model", "name", cfg.model.name, cfg.model.options, exc) from None


def make_loss(cfg: Config, class_counts: list[int]) -> SoftCrossEntropy:
    """The config's loss on the training class counts (a bad option is a ``ConfigError``)."""
    try:
        return build_loss(
            cfg.loss.name, class_counts, label_smoothing=cfg.train.label_smoothing, **cfg.loss.options
        )
    except (ValueError, TypeError) as exc:
        raise component_error("loss", "name", cfg.loss.name, cfg.loss.options, exc) from None


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


def _config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _config_changes(a, b, f"{prefix}{k}.")
        elif a != b and f"{prefix}{k}" not in RESUMABLE_CHANGES:
            keys.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return keys


def _maybe_fault(rank: int) -> None:
    # Test hook: AMMIX_FAULT_RANK=r makes rank r fail at its first training step (crash handling tests).
    if os.environ.get("AMMIX_FAULT_RANK") == str(rank):
        raise RuntimeError(f"fault injected on rank {rank} (AMMIX_FAULT_RANK)")


# --- The step ---------------------------------------------------------------------------------------


def train_step(
    model: nn.Module,
    mixer,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    epoch: float,
    num_classes: int,
    label_smoothing: float = 0.0,
    scaler: torch.amp.GradScaler | None = None,
    amp_ctx=None,
    grad_clip: float | None = None,
    loss_fn: SoftCrossEntropy | None = None,
):
    """One optimizer step of any method: ``mixed_forward``, the loss on the soft targets (plus the
    clean loss of AM-mixup, with the same loss), backward, step. ``loss_fn``: an ``ammix.losses`` loss
    (default: soft cross-entropy with ``label_smoothing``). Returns ``(loss, MixedOutput)``."""
    loss_fn = loss_fn or SoftCrossEntropy(label_smoothing=label_smoothing)
    with amp_ctx or contextlib.nullcontext():
        out = mixed_forward(model, x, y, mixer, epoch=epoch)
        loss = loss_fn(out.logits, out.targets, epoch)
        if out.clean_logits is not None:
            clean_targets = one_hot(y, num_classes)
            loss = loss + mixer.clean_weight * loss_fn(out.clean_logits, clean_targets, epoch)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
        optimizer.step()
    return loss.detach(), out


# --- The run ----------------------------------------------------------------------------------------


def train(
    config: Config | dict,
    run_dir: str | Path,
    resume: bool = False,
    fresh: bool = False,
    command: str | None = None,
) -> dict:
    """Train one run into ``run_dir``; returns the summary dict (also written to summary.json).

    ``config``: a ``Config`` or a nested dict (validated first). ``resume``: continue from
    ``run_dir/last.pt`` (from scratch if there is none yet); ``fresh``: delete an old run there first.
    Under ``torchrun`` every rank calls this; only rank 0 writes files.

    Raises ``ConfigError`` / ``RunDirError`` (a usage mistake, before any work), ``CheckpointError``,
    ``DataError`` or ``TrainingDiverged``.
    """
    cfg = as_config(config)
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume, fresh)
    info = dist_env()
    if cfg.data.batch_size % info.world_size:
        raise ConfigError(
            f"data.batch_size = {cfg.data.batch_size}: must be divisible by the {info.world_size} processes"
        )
    if cfg.data.loader == "reference" and info.enabled:
        raise ConfigError("data.loader = 'reference': single process only; allowed with torchrun: device")
    device = resolve_device(cfg.train.device, info)
    amp_dtype = resolve_amp(cfg.train.amp, device)
    owns_group = info.enabled and not torch.distributed.is_initialized()
    init_distributed(info, device, cfg.train.dist_timeout_s)
    try:
        return _train(cfg, run_dir, resume, fresh, info, device, amp_dtype, command)
    finally:
        if owns_group:
            cleanup_distributed()


def _train(cfg, run_dir, resume, fresh, info, device, amp_dtype, command) -> dict:
    t_start = time.time()
    main = info.is_main
    say = print if main else (lambda *a, **k: None)
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # Data: whole splits in memory; per-class train counts (Remix, shot groups).
    train_set, test_set = load_data(cfg)
    num_classes = train_set.num_classes
    train_counts = train_set.class_counts()
    present = [c for c in train_counts if c > 0]
    groups = D.shot_groups(train_counts) if max(present) > min(present) else None

    # Model: same initial weights on every rank; optional transfer of the backbone, optional linear probe.
    torch.manual_seed(cfg.seed)
    model = make_model(cfg, train_set)
    if cfg.model.init_from:
        load_backbone(model, cfg.model.init_from)
    if cfg.train.freeze_backbone:
        model.stages.requires_grad_(False)
    channels_last = cfg.train.channels_last == "on" or (
        # 1.3x faster ResNet-32 steps on this project's CPU (benchmarks/bench_memory_format.py)
        cfg.train.channels_last == "auto" and device.type in ("cpu", "cuda")
    )
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg, params)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    amp_ctx = autocast(device, amp_dtype)

    # Mixer: its own CPU generator, re-seeded per epoch from (seed, rank, epoch).
    mixer_gen = torch.Generator()
    try:
        mixer = build_mixer(
            cfg.mixing.method,
            num_classes,
            class_counts=torch.tensor(train_counts),
            generator=mixer_gen,
            **mixer_extras(cfg),
        )
    except (ValueError, TypeError) as exc:
        raise component_error("mixing", "method", cfg.mixing.method, cfg.mixing.options, exc) from None
    loss_fn = make_loss(cfg, train_counts)

    # Loaders: the global batch is split evenly across ranks; each rank evaluates a disjoint test shard.
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
    else:

        def train_loader_for(epoch: int):  # a new loader per epoch, its order seeded from (seed, epoch)
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

        train_loader = train_loader_for(0)
        test_loader = D.reference_loader(test_shard, d.eval_batch_size, train=False, augment=None)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ConfigError(f"data.batch_size = {d.batch_size}: larger than the training set with drop_last")

    # Resume: model, optimizer, scaler, mixer generator, RNG states, epoch count, best/last metrics.
    start_epoch, best, last_eval, wall_before = 0, None, None, 0.0
    ckpt_path = run_dir / CHECKPOINT
    resumed = resume and ckpt_path.exists()
    if resumed:
        ckpt = load_checkpoint(ckpt_path)
        # Through the schema first, so sections added since (their defaults) are no change.
        changes = _config_changes(config_from_dict(ckpt.get("config", {})).to_dict(), cfg.to_dict())
        if changes:
            raise ConfigError(
                f"--resume: {run_dir} was started with another config ({'; '.join(changes)}); "
                f"use the same config, or start again with --fresh"
            )
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {ckpt_path} does not fit this model/optimizer: {exc}"
            ) from None
        scaler.load_state_dict(ckpt.get("scaler") or {})
        mixer_gen.set_state(ckpt["mixer_generator"])
        set_rng_states(ckpt["rng"])
        start_epoch, best, last_eval = ckpt["epoch"], ckpt.get("best"), ckpt.get("last_eval")
        wall_before = ckpt.get("wall_time_s", 0.0)

    # Run folder (rank 0 only): a new run writes its resolved config; a resumed one drops the metrics
    # lines of epochs after its checkpoint.
    if main:
        if resumed:
            remove_stale_temps(run_dir)
            truncate_metrics(run_dir, start_epoch)
        elif holds_run(run_dir):  # --fresh, or --resume of a run killed before its first checkpoint
            wipe_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / CONFIG, cfg.to_yaml())
    barrier()

    # Wrap for DDP and compile (optional) once the weights are final.
    if cfg.train.compile:
        compile_stages(model)
    ddp_model = wrap_ddp(model, device)
    writer = None
    if main and cfg.train.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / TENSORBOARD))
        except ImportError:
            say(
                "ammix: train.tensorboard is on but tensorboard is not installed; skipping it",
                file=sys.stderr,
            )

    epochs = cfg.train.epochs
    end_epoch = min(epochs, cfg.train.stop_after_epochs or epochs)
    checkpoint_epoch = start_epoch if resumed else None
    bar_on = main and (cfg.train.progress == "on" or (cfg.train.progress == "auto" and sys.stderr.isatty()))
    acc_dtype = torch.float32 if device.type == "mps" else torch.float64
    say(
        f"ammix: {cfg.model.name} on {train_set.name} ({len(train_set)} train / {len(test_set)} test images, "
        f"{num_classes} classes), mixing {cfg.mixing.method}, {epochs} epochs on {device}"
        + (f" x {info.world_size} ranks" if info.enabled else "")
        + (f"; resuming after epoch {start_epoch}" if resumed else "")
        + f"; run folder {run_dir}",
        flush=True,
    )

    for epoch in range(start_epoch, end_epoch):
        # Every random stream of this epoch from (seed, rank, epoch).
        seed_epoch(cfg.seed, info.rank, epoch, mixer_gen)
        if d.loader == "device":
            train_loader.set_epoch(epoch)
            batches = train_loader
        else:
            batches = train_loader_for(epoch)
        model.train()
        if cfg.train.freeze_backbone:
            model.stages.eval()  # linear probe: BN statistics of the backbone stay put
        sums = torch.zeros(4, dtype=acc_dtype, device=device)  # loss * n, correct, n (mixed rows), images
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{epochs}",
            leave=False,
            disable=not bar_on,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        t0 = time.perf_counter()
        lr = cfg.optim.lr
        for step, (x, y) in enumerate(batches):
            it = epoch * steps_per_epoch + step
            lr = cfg.optim.lr * lr_factor(it, steps_per_epoch, epochs, cfg.schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            if step == 0 and epoch == start_epoch:
                _maybe_fault(info.rank)

            loss, out = train_step(
                ddp_model,
                mixer,
                optimizer,
                x,
                y,
                epoch + step / steps_per_epoch,
                num_classes,
                cfg.train.label_smoothing,
                scaler,
                amp_ctx,
                cfg.optim.grad_clip,
                loss_fn=loss_fn,
            )

            n = out.targets.shape[0]
            sums[0] += loss.float() * n
            sums[1] += (out.logits.argmax(1) == out.targets.argmax(1)).sum()
            sums[2] += n
            sums[3] += x.shape[0]
            if (step + 1) % cfg.train.log_every == 0 or step + 1 == steps_per_epoch:
                # NaN / inf guard (all ranks agree: the flag is summed over them).
                bad = all_reduce_sum((~torch.isfinite(sums[:1])).to(acc_dtype))
                if bad.item() > 0:
                    bar.close()
                    kept = (
                        f"the last good checkpoint, {ckpt_path} (after epoch {checkpoint_epoch}), is kept"
                        if checkpoint_epoch is not None
                        else "no checkpoint had been written yet"
                    )
                    raise TrainingDiverged(
                        f"the training loss became {sums[0].item()} at epoch {epoch + 1}, step {step + 1} "
                        f"(lr {lr:.4g}); training stopped, {kept}. Lower optim.lr or check the data."
                    )
                if bar_on:
                    bar.update(step + 1 - bar.n)
                    elapsed = time.perf_counter() - t0
                    bar.set_postfix(
                        loss=f"{(sums[0] / sums[2]).item():.4f}",
                        img_s=f"{sums[3].item() / max(elapsed, 1e-9):.0f}",
                    )
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_time = time.perf_counter() - t0

        # Epoch metrics: train loss / accuracy on the mixed targets (argmax), summed over ranks.
        totals = all_reduce_sum(sums.clone()).tolist()
        record = {
            "epoch": epoch + 1,
            "train_loss": totals[0] / totals[2],
            "train_acc": 100.0 * totals[1] / totals[2],
            "lr": lr,
        }
        if hasattr(mixer, "lam"):
            record["lam"] = mixer.lam(epoch)  # at the start of the epoch
        if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == epochs:
            sync_buffers(model)
            correct, total = class_counts_correct(
                model, test_loader, num_classes, device, amp_ctx, channels_last
            )
            metrics = accuracy_metrics(correct, total, groups)
            last_eval = {"epoch": epoch + 1, **metrics}
            if best is None or metrics[cfg.train.best_metric] > best[cfg.train.best_metric]:
                best = last_eval
            record.update(
                test_acc=metrics["acc"],
                balanced_acc=metrics["balanced_acc"],
                per_class_acc=metrics["per_class_acc"],
            )
            if groups is not None:
                record["group_acc"] = metrics["group_acc"]
        record.update(epoch_time=epoch_time, images_per_s=totals[3] / max(epoch_time, 1e-9))

        if main:
            append_metrics(run_dir, record)
            if writer is not None:
                for key in (
                    "train_loss",
                    "train_acc",
                    "lr",
                    "lam",
                    "test_acc",
                    "balanced_acc",
                    "images_per_s",
                ):
                    if key in record:
                        writer.add_scalar(key, record[key], epoch + 1)
                writer.flush()
            line = (
                f"epoch {epoch + 1}/{epochs}  loss {record['train_loss']:.4f}"
                f"  train {record['train_acc']:.1f}%"
                + (
                    f"  test {record['test_acc']:.2f}%  bal {record['balanced_acc']:.2f}%"
                    if "test_acc" in record
                    else ""
                )
                + f"  lr {lr:.4g}"
                + (f"  lam {record['lam']:.4f}" if "lam" in record else "")
                + f"  {epoch_time:.1f}s  {record['images_per_s']:.0f} img/s"
            )
            if bar_on:
                tqdm.write(line, file=sys.stdout)
            else:
                print(line, flush=True)

        # Checkpoint (atomic), every checkpoint_every epochs and at the last epoch of this invocation.
        if (epoch + 1) % cfg.train.checkpoint_every == 0 or epoch + 1 == end_epoch:
            if main:
                save_checkpoint(
                    ckpt_path,
                    {
                        "epoch": epoch + 1,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": {
                            "name": cfg.schedule.name,
                            "step": (epoch + 1) * steps_per_epoch,
                            "lr": lr,
                        },
                        "scaler": scaler.state_dict(),
                        "mixer_generator": mixer_gen.get_state(),
                        "rng": rng_states(),
                        "loader": {"epoch": epoch + 1},
                        "best": best,
                        "last_eval": last_eval,
                        "config": cfg.to_dict(),
                        "wall_time_s": wall_before + time.time() - t_start,
                    },
                )
            checkpoint_epoch = epoch + 1

    if writer is not None:
        if model.feature_dim == 2:  # the paper's feature map of this rank's test shard, at the end
            setting = f"imbalance {cfg.data.imbalance_factor:g}, " if cfg.data.imbalance_factor else ""
            loss_name = loss_label(cfg.loss.name, cfg.loss.options.get("drw_epoch"))
            title = f"{train_set.name}, {setting}{cfg.mixing.method}, loss {loss_name}, epoch {end_epoch}"
            log_feature_map(writer, model, test_loader, device, test_set.classes, title, end_epoch)
        writer.close()
    epochs_done = max(end_epoch, start_epoch)
    summary = {
        "finished": epochs_done >= epochs,
        "epochs_done": epochs_done,
        "epochs": epochs,
        "last": last_eval,
        "best": best,
        "best_metric": cfg.train.best_metric,
        "wall_time_s": wall_before + time.time() - t_start,
        "command": command if command is not None else " ".join(sys.argv),
        "torch_version": torch.__version__,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "world_size": info.world_size,
        "dataset": train_set.name,
        "num_classes": num_classes,
        "train_size": len(train_set),
        "test_size": len(test_set),
        "train_class_counts": train_counts,
        "run_dir": str(run_dir),
        "files": {"config": CONFIG, "metrics": METRICS, "checkpoint": CHECKPOINT},
    }
    if main:
        write_json(run_dir / SUMMARY, summary)
        if not summary["finished"]:
            say(f"ammix: stopped after epoch {epochs_done} of {epochs}; continue with --resume", flush=True)
    barrier()
    return summary


def saved_config(run_dir: str | Path) -> dict:
    """The resolved config a run folder was started with."""
    return read_yaml(Path(run_dir) / CONFIG)
