"""Training engine: configs, the training loop, checkpoints, run folders, DDP.

Python API::

    from ammix.engine import load_config, train
    cfg = load_config("configs/smoke.yaml", ["optim.lr=0.05", "mixing.method=am_mixup"])
    summary = train(cfg, "runs/smoke", resume=False)

``train`` also takes a nested dict. Configs are validated before any work (``ConfigError``: one line
naming the key, the value and what is allowed); see ``ammix.engine.config`` for the schema.
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import (
    Config,
    ConfigError,
    DataConfig,
    MixingConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    read_yaml,
)
from .graphed_step import CAPTURE_FAILED_EXIT, CaptureFailed
from .loop import DataError, TrainingDiverged, saved_config, train, train_step, wrap_ddp
from .rundir import RunDirError, read_metrics

__all__ = [
    "CAPTURE_FAILED_EXIT",
    "CaptureFailed",
    "CheckpointError",
    "Config",
    "ConfigError",
    "DataConfig",
    "DataError",
    "MixingConfig",
    "ModelConfig",
    "OptimConfig",
    "RunDirError",
    "ScheduleConfig",
    "TrainConfig",
    "TrainingDiverged",
    "apply_overrides",
    "config_from_dict",
    "load_checkpoint",
    "load_config",
    "read_metrics",
    "read_yaml",
    "save_checkpoint",
    "saved_config",
    "train",
    "train_step",
    "wrap_ddp",
]
