"""The training loop: ``train``, read top to bottom, and the set-up, resume, epoch, evaluation and
checkpoint functions it calls in that order.

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
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ammix import data as D
from ammix.losses import SoftCrossEntropy, loss_label
from ammix.mixing import build_mixer, mixed_forward, one_hot

from .checkpoint import (
    CheckpointError,
    file_sha256,
    load_backbone,
    load_checkpoint,
    remove_stale_temps,
    resolve_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from .config import Config, ConfigError, as_config, component_error, config_from_dict, mixer_extras, read_yaml
from .distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    cleanup_distributed,
    dist_env,
    init_distributed,
    mean_over_ranks,
)
from .evaluate import accuracy_metrics, class_counts_correct
from .graphed_step import CapturedStep, check_cuda_graph, graph_autocast, use_cuda_graph
from .probe import FIT as PROBE_FIT
from .probe import extract_features, fit_linear_head
from .rundir import (
    ANALYSIS,
    CHECKPOINT,
    CONFIG,
    METRICS,
    SUMMARY,
    TENSORBOARD,
    append_metrics,
    check_run_dir,
    claim_run_dir,
    holds_run,
    truncate_metrics,
    wipe_run_dir,
    write_json,
    write_text,
)
from .schedule import lr_factor
from .setup import (  # noqa: F401  (re-exported: the loop's helpers were defined here before)
    DataError,
    autocast,
    autocast_name,
    compile_stages,
    derive_seed,
    emulated_bf16_warning,
    load_data,
    make_loaders,
    make_loss,
    make_model,
    make_optimizer,
    resolve_amp,
    resolve_device,
    seed_epoch,
    sync_buffers,
    wrap_ddp,
)
from .tensorboard import log_feature_map


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


# Keys a resumed run may change: they do not change what is computed.
RESUMABLE_CHANGES = {
    "train.stop_after_epochs",
    "train.device",
    "train.progress",
    "train.tensorboard",
    "train.log_every",
    "train.dist_timeout_s",
    "train.compile",
    "train.cuda_graph",  # like train.device: the same computation, other random streams on CUDA
    "data.root",
    "data.num_workers",
    "data.download",
}


def config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The differences ``"key: old -> new"`` between two resolved configs (nested dicts) that matter to
    a continued run: every key but those of ``RESUMABLE_CHANGES``."""
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += config_changes(a, b, f"{prefix}{k}.")
        elif a != b and f"{prefix}{k}" not in RESUMABLE_CHANGES:
            keys.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return keys


def mixer_changes(recorded: dict, now: dict) -> list[str]:
    """The differences ``"mixer.key: old recorded -> new now"`` between a mixer recorded by a run
    (``{"method": ..., **mixer.settings()}``, every option as built) and the one its config builds
    now: a default changed in between, which the saved config (the options given) cannot show. Only
    keys in both are compared, so an option added since is no change."""
    def same(a, b) -> bool:
        if isinstance(a, float) or isinstance(b, float):
            return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b)
        return a == b

    return [f"mixer.{key}: {recorded[key]!r} recorded -> {now[key]!r} now"
            for key in sorted(set(recorded) & set(now)) if not same(recorded[key], now[key])]


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


@dataclass
class Trainer:
    """What a run holds from its set-up to its end: the pieces built once, and the progress so far."""

    cfg: Config
    info: DistInfo
    device: torch.device
    run_dir: Path
    train_set: D.ImageDataset
    test_set: D.ImageDataset
    train_counts: list[int]
    groups: dict | None  # shot groups (many / medium / few) of a long-tailed training set
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    amp_ctx: object
    channels_last: bool
    mixer: object
    mixer_gen: torch.Generator
    loss_fn: object  # an ammix.losses loss
    batches_for: object  # epoch -> that epoch's training batches
    test_loader: object
    steps_per_epoch: int
    ddp_model: nn.Module | None = None
    step: object = None  # (x, y, epoch, lr) -> (loss, MixedOutput): eager or captured
    start_epoch: int = 0
    best: dict | None = None
    last_eval: dict | None = None
    wall_before: float = 0.0
    resumed: bool = False
    checkpoint_epoch: int | None = None  # the epoch of the last checkpoint written or loaded
    init_from_sha256: str | None = None  # the checkpoint file the backbone started from (model.init_from)

    @property
    def num_classes(self) -> int:
        return self.train_set.num_classes

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / CHECKPOINT


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
    ``DataError``, ``TrainingDiverged`` or ``CaptureFailed`` (CUDA graphs: run it again eagerly).
    """
    cfg = as_config(config)
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume, fresh)
    info = dist_env()
    if cfg.data.batch_size % info.world_size:
        raise ConfigError(
            f"data.batch_size = {cfg.data.batch_size}: must be divisible by the {info.world_size} processes"
        )
    if cfg.train.probe == "lbfgs" and info.enabled:
        raise ConfigError("train.probe = 'lbfgs': single process only (the fit is one full batch)")
    if cfg.data.loader == "reference" and info.enabled:
        raise ConfigError("data.loader = 'reference': single process only; allowed with torchrun: device")
    device = resolve_device(cfg.train.device, info)
    amp_dtype = resolve_amp(cfg.train.amp, device)
    check_cuda_graph(cfg.train.cuda_graph, device)
    owns_group = info.enabled and not torch.distributed.is_initialized()
    init_distributed(info, device, cfg.train.dist_timeout_s)
    try:
        with claim_run_dir(run_dir) if info.is_main else contextlib.nullcontext():
            return _train(cfg, run_dir, resume, info, device, amp_dtype, command)
    finally:
        if owns_group:
            cleanup_distributed()


def _train(cfg, run_dir, resume, info, device, amp_dtype, command) -> dict:
    t_start = time.time()
    t = _set_up(cfg, run_dir, info, device, amp_dtype)
    if resume and t.ckpt_path.exists():
        _resume(t)
    epochs = cfg.train.epochs
    end_epoch = min(epochs, cfg.train.stop_after_epochs or epochs)
    _prepare_run_dir(t, end_epoch)

    # Wrap for DDP and compile (optional) once the weights are final.
    if cfg.train.compile:
        compile_stages(t.model)
    t.ddp_model = wrap_ddp(t.model, device)
    t.step = _make_step(t)
    writer = _tensorboard(t)
    bar_on = info.is_main and (
        cfg.train.progress == "on" or (cfg.train.progress == "auto" and sys.stderr.isatty())
    )
    _say(
        t,
        f"ammix: {cfg.model.name} on {t.train_set.name} ({len(t.train_set)} train / {len(t.test_set)} test "
        f"images, {t.num_classes} classes), {describe_training(cfg)}, {epochs} epochs on {device}"
        + (f" x {info.world_size} ranks" if info.enabled else "")
        + (f" with {autocast_name(t.amp_dtype)} autocast" if t.amp_dtype else " in float32")
        + (f"; resuming after epoch {t.start_epoch}" if t.resumed else "")
        + f"; run folder {run_dir}",
    )
    warning = emulated_bf16_warning(cfg.train.amp, device)
    if warning:
        _say(t, warning)

    for epoch in range(t.start_epoch, end_epoch):
        if cfg.train.probe == "lbfgs":
            record, speed, lr = _fit_probe(t, epoch)
        else:
            record, speed, lr = _train_epoch(t, epoch, bar_on)
        if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == epochs:
            record.update(_evaluate(t, epoch))
        record.update(speed)
        if info.is_main:
            _report(t, record, writer, bar_on)
        # Checkpoint (atomic), every checkpoint_every epochs and at the last epoch of this invocation.
        if (epoch + 1) % cfg.train.checkpoint_every == 0 or epoch + 1 == end_epoch:
            _save(t, epoch, lr, t_start)

    if writer is not None:
        if t.model.feature_dim == 2:  # the paper's feature map of this rank's test shard, at the end
            setting = f"imbalance {cfg.data.imbalance_factor:g}, " if cfg.data.imbalance_factor else ""
            loss_name = loss_label(cfg.loss.name, cfg.loss.options.get("drw_epoch"))
            title = f"{t.train_set.name}, {setting}{cfg.mixing.method}, loss {loss_name}, epoch {end_epoch}"
            log_feature_map(writer, t.model, t.loss_fn, t.test_loader, device, t.test_set.classes, title,
                            end_epoch)
        writer.close()
    summary = _summary(t, max(end_epoch, t.start_epoch), t_start, command)
    if info.is_main:
        write_json(run_dir / SUMMARY, summary)
        if not summary["finished"]:
            _say(
                t,
                f"ammix: stopped after epoch {summary['epochs_done']} of {epochs}; continue with --resume "
                "(in a sweep or the toy: run the same command)",
            )
    barrier()
    return summary


def _say(t: Trainer, line: str) -> None:
    if t.info.is_main:
        print(line, flush=True)


# --- Set-up and resume ------------------------------------------------------------------------------


def _set_up(cfg: Config, run_dir: Path, info: DistInfo, device: torch.device, amp_dtype) -> Trainer:
    """Data, model, optimizer, mixer and loaders of a new run (before any checkpoint is loaded)."""
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
    init_from_sha256 = None
    if cfg.model.init_from:
        load_backbone(model, cfg.model.init_from)
        init_from_sha256 = file_sha256(resolve_checkpoint(cfg.model.init_from))
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

    loss_fn = make_loss(cfg, train_counts, device)
    if info.enabled:  # normalise by the global batch's target mass, not each rank's
        loss_fn.mass_of = mean_over_ranks

    batches_for, test_loader, steps_per_epoch = make_loaders(cfg, train_set, test_set, info, device)
    return Trainer(
        cfg=cfg,
        info=info,
        device=device,
        run_dir=run_dir,
        train_set=train_set,
        test_set=test_set,
        train_counts=train_counts,
        groups=groups,
        model=model,
        optimizer=optimizer,
        scaler=scaler,
        amp_dtype=amp_dtype,
        amp_ctx=autocast(device, amp_dtype),
        channels_last=channels_last,
        mixer=mixer,
        mixer_gen=mixer_gen,
        loss_fn=loss_fn,
        batches_for=batches_for,
        test_loader=test_loader,
        steps_per_epoch=steps_per_epoch,
        init_from_sha256=init_from_sha256,
    )


def _resume(t: Trainer) -> None:
    """Model, optimizer, scaler, mixer generator, RNG states, epoch count, best/last metrics from last.pt."""
    ckpt = load_checkpoint(t.ckpt_path)
    # Through the schema first, so sections added since (their defaults) are no change.
    changes = config_changes(config_from_dict(ckpt.get("config", {})).to_dict(), t.cfg.to_dict())
    changes = changes or mixer_changes(ckpt.get("mixer", {}), mixer_record(t.cfg.mixing.method, t.mixer))
    ranks = ckpt.get("world_size", t.info.world_size)  # per-rank batches, pairings, random streams
    if not changes and ranks != t.info.world_size:
        changes = [f"{ranks} process(es), now {t.info.world_size}"]
    if changes:
        raise ConfigError(
            f"--resume: {t.run_dir} was started with another config ({'; '.join(changes)}); "
            f"use the same config, or start again with --fresh"
        )
    try:
        t.model.load_state_dict(ckpt["model"])
        t.optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {t.ckpt_path} does not fit this model/optimizer: {exc}") from None
    t.scaler.load_state_dict(ckpt.get("scaler") or {})
    t.mixer_gen.set_state(ckpt["mixer_generator"])
    set_rng_states(ckpt["rng"])
    t.start_epoch, t.best, t.last_eval = ckpt["epoch"], ckpt.get("best"), ckpt.get("last_eval")
    t.wall_before = ckpt.get("wall_time_s", 0.0)
    # The pre-training this run started from, not the one at init_from now (a sweep checks the two).
    t.init_from_sha256 = ckpt.get("init_from_sha256", t.init_from_sha256)
    t.resumed, t.checkpoint_epoch = True, t.start_epoch


def _prepare_run_dir(t: Trainer, end_epoch: int) -> None:
    """Rank 0: a new run writes its resolved config; a resumed one drops the metrics lines of epochs
    after its checkpoint and, when it trains on (to ``end_epoch``), the analysis of its checkpoint."""
    if t.info.is_main:
        if t.resumed:
            remove_stale_temps(t.run_dir)
            truncate_metrics(t.run_dir, t.start_epoch)
            if t.start_epoch < end_epoch:  # the analysis of a checkpoint this run replaces
                (t.run_dir / ANALYSIS).unlink(missing_ok=True)
        elif holds_run(t.run_dir):  # --fresh, or --resume of a run killed before its first checkpoint
            wipe_run_dir(t.run_dir)
        t.run_dir.mkdir(parents=True, exist_ok=True)
        write_text(t.run_dir / CONFIG, t.cfg.to_yaml())
    barrier()


def _tensorboard(t: Trainer):
    if not (t.info.is_main and t.cfg.train.tensorboard):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("ammix: train.tensorboard is on but tensorboard is not installed; skipping it", file=sys.stderr)
        return None
    return SummaryWriter(str(t.run_dir / TENSORBOARD))


# --- The epoch --------------------------------------------------------------------------------------


def _train_epoch(t: Trainer, epoch: int, bar_on: bool) -> tuple[dict, dict, float]:
    """One pass over the training batches; returns the epoch's metrics, its speed and its last lr."""
    cfg, device = t.cfg, t.device
    epochs, steps = cfg.train.epochs, t.steps_per_epoch
    # Every random stream of this epoch from (seed, rank, epoch).
    seed_epoch(cfg.seed, t.info.rank, epoch, t.mixer_gen)
    batches = t.batches_for(epoch)
    t.model.train()
    if cfg.train.freeze_backbone:
        t.model.stages.eval()  # linear probe: BN statistics of the backbone stay put
    acc_dtype = torch.float32 if device.type == "mps" else torch.float64
    # A row a step, this rank's: its loss, its rows in the loss, those predicted right, its images.
    per_step = torch.zeros(steps, 4, dtype=acc_dtype, device=device)
    bar = tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{epochs}",
        leave=False,
        disable=not bar_on,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    lr = cfg.optim.lr
    for step, (x, y) in enumerate(batches):
        lr = cfg.optim.lr * lr_factor(epoch * steps + step, steps, epochs, cfg.schedule)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if t.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if step == 0 and epoch == t.start_epoch:
            _maybe_fault(t.info.rank)

        loss, out = t.step(x, y, epoch + step / steps, lr)

        in_loss = out.targets.sum(dim=1) > 0  # rows with target mass (AM-mixup's captured drop: not all)
        per_step[step, 0] = loss.float()
        per_step[step, 1] = in_loss.sum()
        per_step[step, 2] = ((out.logits.argmax(1) == out.targets.argmax(1)) & in_loss).sum()
        per_step[step, 3] = x.shape[0]
        if (step + 1) % cfg.train.log_every == 0 or step + 1 == steps:
            _check_finite(t, per_step[: step + 1, 0], epoch, step, lr, bar)
            if bar_on:
                bar.update(step + 1 - bar.n)
                elapsed = time.perf_counter() - t0
                bar.set_postfix(
                    loss=f"{epoch_loss(per_step[: step + 1], 1):.4f}",  # this rank's
                    img_s=f"{per_step[: step + 1, 3].sum().item() / max(elapsed, 1e-9):.0f}",
                )
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    epoch_time = time.perf_counter() - t0

    # Epoch metrics: train loss / accuracy on the mixed targets (argmax), summed over ranks.
    per_step = all_reduce_sum(per_step)
    _, rows, correct, images = per_step.sum(0).tolist()
    record = {
        "epoch": epoch + 1,
        "train_loss": epoch_loss(per_step, t.info.world_size),
        "train_acc": 100.0 * correct / rows,
        "lr": lr,
    }
    if hasattr(t.mixer, "lam"):
        record["lam"] = t.mixer.lam(epoch)  # at the start of the epoch
    speed = {"epoch_time": epoch_time, "images_per_s": images / max(epoch_time, 1e-9)}
    return record, speed, lr


def describe_training(cfg) -> str:
    """The header's description of what this run trains: a probe names its fit, not its (plain) mixing."""
    if cfg.train.probe == "lbfgs":
        return "linear probe fitted by L-BFGS on frozen features"
    if cfg.train.freeze_backbone:
        return f"linear probe by SGD on frozen features, mixing {cfg.mixing.method}"
    return f"mixing {cfg.mixing.method}"


def _fit_probe(t: Trainer, epoch: int) -> tuple[dict, dict, float]:
    """``train.probe: lbfgs``: the head fitted to convergence on the frozen features of the un-augmented
    training set (``ammix.engine.probe``), in place of an epoch of SGD; returns what ``_train_epoch`` does."""
    if type(t.model.head) is not nn.Linear or t.model.head.bias is None:
        raise ConfigError(
            "train.probe = 'lbfgs': needs a linear head with a bias "
            f"(this model has {type(t.model.head).__name__})"
        )
    t0 = time.perf_counter()
    batches = D.DeviceLoader(
        t.train_set,
        t.cfg.data.eval_batch_size,
        t.device,
        train=False,
        augment=None,
        shuffle=False,
        drop_last=False,
    )
    features, labels = extract_features(t.model, batches, t.device, t.amp_ctx, t.channels_last)
    fit = fit_linear_head(features, labels, t.num_classes, t.cfg.optim.weight_decay)
    with torch.no_grad():
        t.model.head.weight.copy_(fit.weight)
        t.model.head.bias.copy_(fit.bias)
    if not fit.converged:
        _say(
            t,
            f"ammix: the L-BFGS probe stopped after {fit.iterations} iterations, "
            f"largest gradient {fit.grad_max:.2e}",
        )
    epoch_time = time.perf_counter() - t0
    record = {
        "epoch": epoch + 1,
        "train_loss": fit.loss,
        "train_acc": fit.train_acc,
        "lr": 0.0,
        **fit.record(),
    }
    speed = {"epoch_time": epoch_time, "images_per_s": len(labels) / max(epoch_time, 1e-9)}
    return record, speed, 0.0


def _make_step(t: Trainer):
    """The step the epoch calls, ``(x, y, epoch, lr) -> (loss, MixedOutput)``: eager ``train_step``, or
    the same step captured as a CUDA graph (``ammix.engine.graphed_step``)."""
    cfg = t.cfg
    captured = use_cuda_graph(
        cfg.train.cuda_graph,
        t.device,
        distributed=t.info.enabled,
        compiled=cfg.train.compile,
        fp16=t.scaler.is_enabled(),
        mixer=t.mixer,
        epoch_dependent_loss=getattr(t.loss_fn, "drw_epoch", None) is not None,
    )
    amp_ctx = graph_autocast(t.device, t.amp_dtype) if captured else t.amp_ctx

    def run(x, y, mixer, epoch):
        return train_step(
            t.ddp_model,
            mixer,
            t.optimizer,
            x,
            y,
            epoch,
            t.num_classes,
            cfg.train.label_smoothing,
            t.scaler,
            amp_ctx,
            cfg.optim.grad_clip,
            loss_fn=t.loss_fn,
        )

    if captured:
        return CapturedStep(run, t.model, t.mixer, t.optimizer, t.device)

    def eager(x, y, epoch, lr):
        for group in t.optimizer.param_groups:
            group["lr"] = lr
        return run(x, y, t.mixer, epoch)

    return eager


def epoch_loss(per_step: torch.Tensor, world_size: int) -> float:
    """The epoch's training loss from ``per_step`` (a row a step: the ranks' losses summed, the rows in
    the loss summed, further columns ignored): each step's loss on the global batch (under DDP the mean
    of the ranks' losses, each normalised by the mean target mass over ranks) weighted by its rows, as
    one process would log it. Weighting each rank's loss by its own rows instead is off when ranks keep
    unequal rows (AM-mixup's drop pairing)."""
    losses, rows = per_step[:, 0] / world_size, per_step[:, 1]
    return ((losses * rows).sum() / rows.sum()).item()


def _check_finite(t: Trainer, losses: torch.Tensor, epoch: int, step: int, lr: float, bar) -> None:
    """Raise ``TrainingDiverged`` if a step's loss is NaN / inf (all ranks agree: the flag is summed)."""
    bad = all_reduce_sum((~torch.isfinite(losses.sum())).to(losses.dtype))
    if bad.item() == 0:
        return
    value = "non-finite on another rank"
    first = (~torch.isfinite(losses)).nonzero()
    if len(first):  # this rank's first bad step (losses are checked every train.log_every steps)
        step = int(first[0, 0])
        value = losses[step].item()
    bar.close()
    kept = (
        f"the last good checkpoint, {t.ckpt_path} (after epoch {t.checkpoint_epoch}), is kept"
        if t.checkpoint_epoch is not None
        else "no checkpoint had been written yet"
    )
    raise TrainingDiverged(
        f"the training loss became {value} at epoch {epoch + 1}, step {step + 1} "
        f"(lr {lr:.4g}); training stopped, {kept}. Lower optim.lr or check the data."
    )


def _evaluate(t: Trainer, epoch: int) -> dict:
    """Test metrics after ``epoch``; updates the run's best and last evaluation."""
    sync_buffers(t.model)
    correct, total = class_counts_correct(
        t.model, t.test_loader, t.num_classes, t.device, t.amp_ctx, t.channels_last
    )
    metrics = accuracy_metrics(correct, total, t.groups)
    t.last_eval = {"epoch": epoch + 1, **metrics}
    best_metric = t.cfg.train.best_metric
    if t.best is None or metrics[best_metric] > t.best[best_metric]:
        t.best = t.last_eval
    record = {
        "test_acc": metrics["acc"],
        "balanced_acc": metrics["balanced_acc"],
        "per_class_acc": metrics["per_class_acc"],
    }
    if t.groups is not None:
        record["group_acc"] = metrics["group_acc"]
    return record


def _report(t: Trainer, record: dict, writer, bar_on: bool) -> None:
    """Rank 0: the metrics line in metrics.jsonl, TensorBoard and the console."""
    append_metrics(t.run_dir, record)
    if writer is not None:
        for key in ("train_loss", "train_acc", "lr", "lam", "test_acc", "balanced_acc", "images_per_s"):
            if key in record:
                writer.add_scalar(key, record[key], record["epoch"])
        writer.flush()
    line = (
        f"epoch {record['epoch']}/{t.cfg.train.epochs}  loss {record['train_loss']:.4f}"
        f"  train {record['train_acc']:.1f}%"
        + (
            f"  test {record['test_acc']:.2f}%  bal {record['balanced_acc']:.2f}%"
            if "test_acc" in record
            else ""
        )
        + f"  lr {record['lr']:.4g}"
        + (f"  lam {record['lam']:.4f}" if "lam" in record else "")
        + f"  {record['epoch_time']:.1f}s  {record['images_per_s']:.0f} img/s"
    )
    if bar_on:
        tqdm.write(line, file=sys.stdout)
    else:
        print(line, flush=True)


def _save(t: Trainer, epoch: int, lr: float, t_start: float) -> None:
    """Rank 0 writes last.pt (atomically) after ``epoch``: everything a resume needs."""
    if t.info.is_main:
        save_checkpoint(
            t.ckpt_path,
            {
                "epoch": epoch + 1,
                "model": t.model.state_dict(),
                "optimizer": t.optimizer.state_dict(),
                "scheduler": {
                    "name": t.cfg.schedule.name,
                    "step": (epoch + 1) * t.steps_per_epoch,
                    "lr": lr,
                },
                "scaler": t.scaler.state_dict(),
                "mixer_generator": t.mixer_gen.get_state(),
                "rng": rng_states(),
                "loader": {"epoch": epoch + 1},
                "best": t.best,
                "last_eval": t.last_eval,
                "config": t.cfg.to_dict(),
                "mixer": mixer_record(t.cfg.mixing.method, t.mixer),
                "wall_time_s": t.wall_before + time.time() - t_start,
                "init_from_sha256": t.init_from_sha256,
                "world_size": t.info.world_size,
            },
        )
    t.checkpoint_epoch = epoch + 1


def mixer_record(method: str, mixer) -> dict:
    """The mixer as built, recorded in last.pt and summary.json (see ``mixer_changes``)."""
    return {"method": method, **mixer.settings()}


def _summary(t: Trainer, epochs_done: int, t_start: float, command: str | None) -> dict:
    device = t.device
    finished = epochs_done >= t.cfg.train.epochs
    # A finished run's checkpoint, and the one a transfer stage started from: a stage whose
    # init_from_sha256 is not its pre-training's checkpoint_sha256 was built on another pre-training.
    lineage = {"init_from_sha256": t.init_from_sha256} if t.init_from_sha256 else {}
    if finished and t.info.is_main and t.ckpt_path.is_file():
        lineage["checkpoint_sha256"] = file_sha256(t.ckpt_path)
    return {
        "finished": finished,
        "epochs_done": epochs_done,
        "epochs": t.cfg.train.epochs,
        "last": t.last_eval,
        "best": t.best,
        "best_metric": t.cfg.train.best_metric,
        "wall_time_s": t.wall_before + time.time() - t_start,
        "command": command if command is not None else " ".join(sys.argv),
        "torch_version": torch.__version__,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "world_size": t.info.world_size,
        "dataset": t.train_set.name,
        "num_classes": t.num_classes,
        "train_size": len(t.train_set),
        "test_size": len(t.test_set),
        "train_class_counts": t.train_counts,
        "mixer": mixer_record(t.cfg.mixing.method, t.mixer),
        "autocast": autocast_name(t.amp_dtype) if t.amp_dtype else None,
        **({"probe_fit": PROBE_FIT} if t.cfg.train.probe == "lbfgs" else {}),
        "run_dir": str(t.run_dir),
        "files": {"config": CONFIG, "metrics": METRICS, "checkpoint": CHECKPOINT},
        **lineage,
    }


def saved_config(run_dir: str | Path) -> dict:
    """The resolved config a run folder was started with."""
    return read_yaml(Path(run_dir) / CONFIG)
