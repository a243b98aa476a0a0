"""Experiment configs: nested dataclasses with defaults, YAML files, dotted overrides, validation.

A config is one YAML mapping with the sections below (every key optional; the defaults are the
dataclass defaults). ``load_config(path, overrides)`` reads it, applies ``key=value`` overrides (values
parsed as YAML), and validates every key, type and range before any work starts: a mistake raises
``ConfigError`` with one line naming the key, the value and what is allowed.

Four sections take, next to their own keys, the options of the component they build, flat:

- ``mixing:`` ``method`` and the mixer's options (``mixing.gamma=0.95``), checked against the
  constructor of the mixer class ``ammix.mixing.build_mixer`` builds. Overriding ``mixing.method``
  with another method than the file's drops the file's mixing options (they belong to its method)
  and keeps only the mixing options given alongside; naming the file's own method keeps its options,
  merged with the overrides'. The same rule holds for ``model.name`` and ``loss.name``
  (``drop_options_of_replaced_component``). To replace a section whatever the component, override it
  whole: ``mixing={method: am_mixup, lam_at_total: 0.55}``;
- ``loss:`` ``name`` (``ce``, ``ldam``, ``balanced_softmax``) and the loss's options
  (``loss.drw_epoch=160``, ``loss.beta``, ``loss.max_margin``, ``loss.scale``, ``loss.tau``), checked
  against the loss class ``ammix.losses.build_loss`` builds;
- ``model:`` ``name``, ``init_from`` and the backbone's options (``model.feature_dim=2``);
- ``data:`` the keys of ``DataConfig`` and the dataset's options (``data.n_per_class=20``), passed to
  ``ammix.data.load_dataset``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A mistake in a config: the message is one line naming the key, the value and what is allowed."""


# --- YAML: a safe loader that also reads 1e-4 as a float (YAML 1.1 needs a dot: 1.0e-4) ------------


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_value(text: str) -> Any:
    """A command-line value as YAML: ``0.05``, ``1e-4`` -> float, ``[1, 2]`` -> list, ``x`` -> str."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


# --- The schema -----------------------------------------------------------------------------------


def _opt(default: Any, help: str = "", choices: tuple | None = None, ge=None, gt=None, le=None, lt=None):
    """A dataclass field with its documentation and allowed values (checked by ``_check_value``)."""
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    dataset: str = _opt("synthetic", "a name of ammix.data.DATASETS")
    root: str | None = _opt(None, "data folder (null: $AMMIX_DATA or ./data)")
    download: bool = _opt(False, "fetch the official files where possible")
    labels: str = _opt("fine", "fine or coarse (the dataset's superclasses)", choices=("fine", "coarse"))
    imbalance_factor: float | None = _opt(None, "long-tailed train split when > 1 (n_max / n_min)", ge=1.0)
    profile: str | None = _opt(None, "long-tail profile (default exp)", choices=("exp", "step"))
    lt_seed: int | None = _opt(None, "seed of the long-tailed subsampling (default 0)", ge=0)
    train_per_class: int | None = _opt(
        None,
        "class-stratified subset of the training split: this many images a class, drawn from "
        "data.lt_seed, before any long tail",
        ge=1,
    )
    loader: str = _opt(
        "device", "device (fast, on-device) or reference loader", choices=("device", "reference")
    )
    batch_size: int = _opt(128, "global batch size (split evenly across ranks)", ge=1)
    eval_batch_size: int = _opt(512, "batch size of the evaluation", ge=1)
    augment: str | None = _opt(
        "auto",
        "train augmentation: auto (= cifar), cifar (crop + flip), crop, flip, none",
        choices=("auto", "cifar", "crop", "flip", "none"),
    )
    drop_last: bool = _opt(False, "drop the last incomplete training batch")
    num_workers: int = _opt(0, "worker processes of the reference loader", ge=0)
    options: dict = _opt({}, "the dataset's own options (written flat under data:)")


@dataclass
class ModelConfig:
    name: str = _opt("small_cnn", "a name of ammix.models.MODELS")
    init_from: str | None = _opt(None, "checkpoint or run dir: load the backbone, fresh head")
    options: dict = _opt({}, "the backbone's own options (written flat under model:)")


@dataclass
class MixingConfig:
    method: str = _opt("ce", "ce, mixup, manifold_mixup, cutmix, remix or am_mixup")
    options: dict = _opt({}, "the mixer's own options (written flat under mixing:)")


@dataclass
class LossConfig:
    name: str = _opt("ce", "ce, ldam or balanced_softmax (ammix.losses.LOSSES)")
    options: dict = _opt({}, "the loss's own options, e.g. drw_epoch (written flat under loss:)")


@dataclass
class OptimConfig:
    name: str = _opt("sgd", "optimizer", choices=("sgd", "adamw"))
    lr: float = _opt(0.1, "peak learning rate", ge=0.0)
    momentum: float = _opt(0.9, "SGD momentum", ge=0.0, lt=1.0)
    nesterov: bool = _opt(False, "SGD Nesterov momentum")
    weight_decay: float = _opt(5e-4, "weight decay (decoupled for AdamW)", ge=0.0)
    betas: list[float] = _opt([0.9, 0.999], "AdamW betas")
    eps: float = _opt(1e-8, "AdamW eps", gt=0.0)
    grad_clip: float | None = _opt(None, "clip the gradient norm to this value", gt=0.0)


@dataclass
class ScheduleConfig:
    name: str = _opt("multistep", "learning-rate schedule", choices=("constant", "multistep", "cosine"))
    warmup_epochs: float = _opt(0.0, "linear warm-up length in epochs (applied per step)", ge=0.0)
    milestones: list[float] = _opt([], "multistep: epochs where the factor changes")
    factors: list[float] = _opt([], "multistep: absolute lr factors from each milestone on")
    final_factor: float = _opt(0.0, "cosine: lr factor reached at the end", ge=0.0, le=1.0)


@dataclass
class TrainConfig:
    epochs: int = _opt(200, "training epochs", ge=1)
    label_smoothing: float = _opt(0.0, "label smoothing of the loss", ge=0.0, lt=1.0)
    eval_every: int = _opt(1, "evaluate on the test split every N epochs (and at the end)", ge=1)
    checkpoint_every: int = _opt(1, "write last.pt every N epochs (and at the end)", ge=1)
    best_metric: str = _opt(
        "balanced_acc", "metric that picks the best epoch (on the test split: summary's best.*, optimistic)",
        choices=("acc", "balanced_acc"),
    )
    device: str = _opt("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    amp: str = _opt(
        "auto",
        "autocast of training and evaluation: auto (bf16 on CUDA and on CPUs with native bf16, else off)",
        choices=("auto", "bf16", "fp16", "off"),
    )
    channels_last: str = _opt(
        "auto", "channels_last memory format (auto: on CPU and CUDA)", choices=("auto", "on", "off")
    )
    compile: bool = _opt(False, "torch.compile the model's stages and head")
    cuda_graph: str = _opt(
        "auto",
        "capture the training step as a CUDA graph: auto (on CUDA when capturable), on, off",
        choices=("auto", "on", "off"),
    )
    deterministic: bool = _opt(False, "torch.use_deterministic_algorithms (and no cudnn benchmark)")
    freeze_backbone: bool = _opt(False, "linear probe: train the head only, backbone in eval mode")
    probe: str = _opt(
        "sgd",
        "how a frozen-backbone run fits its head: sgd (train.epochs of the optimizer), or lbfgs (to "
        "convergence on the un-augmented training features; train.epochs 1, mixing ce, loss ce)",
        choices=("sgd", "lbfgs"),
    )
    stop_after_epochs: int | None = _opt(None, "stop (resumably) once this many epochs are done", ge=1)
    log_every: int = _opt(50, "steps between progress updates and loss checks", ge=1)
    progress: str = _opt(
        "auto", "tqdm bar: auto (when stderr is a terminal), on, off", choices=("auto", "on", "off")
    )
    tensorboard: bool = _opt(False, "also write TensorBoard scalars (if installed)")
    dist_timeout_s: float = _opt(600.0, "timeout of the distributed collectives", gt=0.0)


@dataclass
class Config:
    seed: int = _opt(0, "seed of everything random", ge=0, le=2**32 - 1)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mixing: MixingConfig = field(default_factory=MixingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        """The config as a nested dict, components' options written flat into their sections."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                section = {}
                for sf in dataclasses.fields(value):
                    if sf.name == "options":
                        section.update(value.options)
                    else:
                        section[sf.name] = _plain(getattr(value, sf.name))
                out[f.name] = section
            else:
                out[f.name] = _plain(value)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# Sections whose unknown keys are the options of the component they build.
_FLAT_OPTIONS = {"data", "model", "mixing", "loss"}


# --- Reading and validating ------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    return (
        repr(value)
        if isinstance(value, str)
        else yaml.safe_dump(value, default_flow_style=True).strip("\n.").replace("\n...", "")
    )


def _suggest(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _type_name(tp: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}
    origin = typing.get_origin(tp)
    if origin in (list, tuple) or tp in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if len(args) == 1:
            return f"a list of {_type_name(args[0]).removeprefix('an ').removeprefix('a ')}s"
        return "a list"
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = typing.get_args(tp)
        text = " or ".join(dict.fromkeys(_type_name(a) for a in args if a is not type(None)))
        return text + (" or null" if type(None) in args else "")
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (int accepted for float, a str choice 'on'/'off' for YAML's booleans);
    raises TypeError when it does not fit."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except TypeError:
                pass
        raise TypeError
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        (arg,) = typing.get_args(tp)
        return [_coerce(v, arg) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
            return "on" if value else "off"
        raise TypeError
    if tp is dict:
        if isinstance(value, dict):
            return value
        raise TypeError
    raise TypeError


def _finite(value: Any) -> bool:
    """False for a NaN or an infinity, alone or in a list (a rate, a weight or an epoch that a run
    cannot use: inf keeps AM-mixup's lam at 1, NaN turns DRW on from the start)."""
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def _check_value(key: str, value: Any, f: dataclasses.Field, tp: Any) -> Any:
    try:
        value = _coerce(value, tp)
    except TypeError:
        raise ConfigError(f"{key} = {_fmt(value)}: expected {_type_name(tp)}") from None
    meta = f.metadata
    if value is None:
        return value
    if not _finite(value):
        raise ConfigError(f"{key} = {_fmt(value)}: expected a finite number")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(
            f"{key} = {_fmt(value)}: not allowed; allowed: {', '.join(meta['choices'])}"
            + _suggest(str(value), list(meta["choices"]))
        )
    for name, op, text in (
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    ):
        bound = meta.get(name)
        if bound is not None and isinstance(value, (int, float)):
            if isinstance(value, float) and math.isnan(value) or not op(value, bound):
                raise ConfigError(f"{key} = {_fmt(value)}: out of range; allowed: {text} {bound}")
    return value


def _build_section(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix} = {_fmt(data)}: expected a mapping of keys under {prefix}:")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "options"}
    flat = prefix in _FLAT_OPTIONS
    kwargs: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key in fields:
            kwargs[key] = _check_value(f"{prefix}.{key}", value, fields[key], hints[key])
        elif flat:
            options[key] = value
        else:
            raise ConfigError(
                f"{prefix}.{key} = {_fmt(value)}: unknown key; allowed in {prefix}: {', '.join(fields)}"
                + _suggest(key, list(fields))
            )
    if flat:
        kwargs["options"] = options
    return cls(**kwargs)


def config_from_dict(data: dict | None) -> Config:
    """A ``Config`` from a nested dict (a parsed YAML file), checking keys, types and ranges.

    This is the schema check only; ``validate_config`` also checks the components' names and options.
    """
    data = dict(data or {})
    hints = typing.get_type_hints(Config)
    kwargs: dict[str, Any] = {}
    top = {f.name: f for f in dataclasses.fields(Config)}
    for key, value in data.items():
        key = str(key)
        if key not in top:
            raise ConfigError(
                f"{key} = {_fmt(value)}: unknown key; allowed top-level keys: {', '.join(top)}"
                + _suggest(key, list(top))
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build_section(tp, value, key)
        else:
            kwargs[key] = _check_value(key, value, top[key], tp)
    cfg = Config(**kwargs)
    _check_cross(cfg)
    return cfg


def _check_cross(cfg: Config) -> None:
    t, s, o = cfg.train, cfg.schedule, cfg.optim
    if t.stop_after_epochs is not None and t.stop_after_epochs > t.epochs:
        raise ConfigError(
            f"train.stop_after_epochs = {t.stop_after_epochs}: out of range; "
            f"allowed: <= train.epochs ({t.epochs})"
        )
    if s.warmup_epochs > t.epochs and t.probe != "lbfgs":  # an L-BFGS probe has no learning rate
        raise ConfigError(
            f"schedule.warmup_epochs = {s.warmup_epochs:g}: out of range; "
            f"allowed: <= train.epochs ({t.epochs})"
        )
    if s.name == "multistep":
        if len(s.milestones) != len(s.factors):
            raise ConfigError(
                f"schedule.factors = {_fmt(s.factors)}: needs one factor per milestone "
                f"(schedule.milestones = {_fmt(s.milestones)})"
            )
        if any(b <= a for a, b in zip(s.milestones, s.milestones[1:], strict=False)) or any(
            m < 0 for m in s.milestones
        ):
            raise ConfigError(f"schedule.milestones = {_fmt(s.milestones)}: must be increasing epochs >= 0")
        if any(f < 0 for f in s.factors):
            raise ConfigError(f"schedule.factors = {_fmt(s.factors)}: factors must be >= 0")
        if s.milestones and s.milestones[-1] >= t.epochs and t.probe != "lbfgs":
            raise ConfigError(  # a milestone never reached would leave the run at a rate it does not name
                f"schedule.milestones = {_fmt(s.milestones)}: a milestone at or after train.epochs "
                f"({t.epochs}) is never reached; allowed: epochs < {t.epochs} (scale them with the run)"
            )
    for section, (key, keys_of) in _KEYS_OF_CHOICE.items():
        sect = getattr(cfg, section)
        chosen, defaults = getattr(sect, key), type(sect)()
        for name, keys in keys_of.items():
            for k in keys:
                if name != chosen and getattr(sect, k) != getattr(defaults, k):
                    raise ConfigError(  # the run would ignore it under its name
                        f"{section}.{k} = {_fmt(getattr(sect, k))}: only for {section}.{key} = {name} "
                        f"(this run's is {chosen}); remove it"
                    )
    drw_epoch = cfg.loss.options.get("drw_epoch")
    if isinstance(drw_epoch, (int, float)) and drw_epoch >= t.epochs:
        raise ConfigError(  # the run would be labelled deferred re-weighting without any re-weighting
            f"loss.drw_epoch = {drw_epoch:g}: the re-weighting never starts in a run of train.epochs = "
            f"{t.epochs}; allowed: < {t.epochs}, or null for none"
        )
    if len(o.betas) != 2 or not all(0.0 <= b < 1.0 for b in o.betas):
        raise ConfigError(f"optim.betas = {_fmt(o.betas)}: allowed: two numbers in [0, 1)")
    if o.nesterov and o.name == "sgd" and o.momentum <= 0:
        raise ConfigError(f"optim.nesterov = true: needs optim.momentum > 0 (got {o.momentum:g})")
    if t.probe == "lbfgs":
        needs = {
            "train.freeze_backbone": (t.freeze_backbone, True),
            "train.epochs": (t.epochs, 1),
            "mixing.method": (cfg.mixing.method, "ce"),
            "loss.name": (cfg.loss.name, "ce"),
            "loss.drw_epoch": (cfg.loss.options.get("drw_epoch"), None),  # the fit would ignore them
            "train.label_smoothing": (t.label_smoothing, 0.0),
        }
        for key, (value, wanted) in needs.items():
            if value != wanted:
                raise ConfigError(
                    f"train.probe = 'lbfgs': needs {key} = {_fmt(wanted)} (got {_fmt(value)}); "
                    "the head is fitted once, to convergence, on the frozen backbone's features"
                )
        if o.weight_decay <= 0:
            raise ConfigError(
                "train.probe = 'lbfgs': needs optim.weight_decay > 0, the L2 penalty that keeps the "
                "fit finite on separable features"
            )
    dev = t.device
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", dev):
        raise ConfigError(f"train.device = {_fmt(dev)}: not allowed; allowed: auto, cpu, cuda, cuda:N, mps")


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``key = 'a.b.c'``, creating the mappings on the way."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"{key} = {_fmt(value)}: not a dotted key such as optim.lr")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                f"{key} = {_fmt(value)}: unknown key; {'.'.join(parts[: i + 1])} is not a section"
            )
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply ``key=value`` strings (values parsed as YAML) to a nested dict, in order, after
    ``drop_options_of_replaced_component`` (the mixing-options rule of the module docstring)."""
    pairs = []
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"{item!r}: an override must be key=value, for example optim.lr=0.05")
        key, text = item.split("=", 1)
        pairs.append((key.strip(), parse_value(text)))
    drop_options_of_replaced_component(data, dict(pairs))
    for key, value in pairs:
        set_dotted(data, key, value)
    return data


def drop_options_of_replaced_component(data: dict, overrides: dict) -> None:
    """The component-options rule: an override naming another component than the base's
    (``mixing.method``, ``model.name``, ``loss.name``) drops the base's options of that section (they
    belong to its component: ``gamma`` means nothing to ``ce``, ``width`` nothing to a timm model).

    Only the options given next to the new component then apply; the section's own keys (such as
    ``model.init_from``) stay. An override naming the base's own component keeps the base's options,
    merged with the overrides'. ``ammix train`` overrides, sweep variants and toy variants all go
    through here (``apply_overrides``).
    """
    for section, (key, schema) in _COMPONENT_KEYS.items():
        base = data.get(section)
        chosen = overrides.get(f"{section}.{key}")
        if chosen is None or not isinstance(base, dict) or chosen == base.get(key, getattr(schema, key)):
            continue
        own = {f.name for f in dataclasses.fields(schema)} - {"options"}
        data[section] = {k: v for k, v in base.items() if k in own}
    for section, (key, keys_of) in _KEYS_OF_CHOICE.items():  # schedule / optimizer: the same rule
        base = data.get(section)
        chosen = overrides.get(f"{section}.{key}")
        if chosen is None or not isinstance(base, dict):
            continue
        others = {k for name, keys in keys_of.items() if name != chosen for k in keys}
        data[section] = {k: v for k, v in base.items() if k not in others}


# Keys of a section that only one choice of its name uses (the others would ignore them).
_KEYS_OF_CHOICE = {
    "schedule": ("name", {"multistep": ("milestones", "factors"), "cosine": ("final_factor",)}),
    "optim": ("name", {"sgd": ("momentum", "nesterov"), "adamw": ("betas", "eps")}),
}


# Sections whose component is chosen by one key, with their schema.
_COMPONENT_KEYS = {
    "mixing": ("method", MixingConfig),
    "model": ("name", ModelConfig),
    "loss": ("name", LossConfig),
}


def read_yaml(path: str | Path) -> dict:
    """A config file as a nested dict; a missing or malformed file is a ``ConfigError``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config file {path}: invalid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply ``key=value`` overrides, validate everything; returns a ``Config``.

    Raises ``ConfigError`` (one line: key, value, what is allowed) on any mistake.
    """
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    cfg = config_from_dict(data)
    validate_components(cfg)
    return cfg


def as_config(config: Config | dict) -> Config:
    """A validated ``Config`` from a ``Config`` or a nested dict."""
    cfg = config_from_dict(config.to_dict() if isinstance(config, Config) else config)
    validate_components(cfg)
    return cfg


# --- The components' names and options -------------------------------------------------------------


def component_error(section: str, name_key: str, name: str, options: dict, exc: Exception) -> ConfigError:
    """A ConfigError from a builder's ValueError/TypeError, naming the option it is about where it can."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # The option the message is about: the one it names first ("gamma must be in (0, 1)", "unknown
    # option(s) widht for model 'small_cnn'; its options: width, ...").
    found = [(m.start(), k) for k in options if (m := re.search(rf"\b{re.escape(k)}\b", msg))]
    if found:
        k = min(found)[1]
        return ConfigError(f"{section}.{k} = {_fmt(options[k])}: {msg}")
    return ConfigError(f"{section}.{name_key} = {_fmt(name)}: {msg}")


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` fits the annotation ``tp`` (types it does not know are accepted)."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_fits(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]  # tuple[int, ...]: int
        return not items or all(any(_fits(v, a) for a in items) for v in value)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return True


def _check_signature_types(section: str, cls: Any, options: dict) -> None:
    """Types of ``options`` against the annotations (else the defaults) of ``cls``'s constructor."""
    for key, value in options.items():
        if not _finite(value):
            raise ConfigError(f"{section}.{key} = {_fmt(value)}: expected a finite number")
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    try:
        hints = typing.get_type_hints(cls.__init__ if inspect.isclass(cls) else cls)
    except Exception:
        hints = {}
    for key, value in options.items():
        p = params.get(key)
        if p is None:
            continue
        if key in hints:
            tp = hints[key]
        elif p.default is not inspect.Parameter.empty and p.default is not None:
            tp = type(p.default) if not isinstance(p.default, int) or isinstance(p.default, bool) else float
        else:
            continue
        if not _fits(value, tp):
            default = "" if p.default is inspect.Parameter.empty else f" (default {_fmt(p.default)})"
            raise ConfigError(f"{section}.{key} = {_fmt(value)}: expected {_type_name(tp)}{default}")


def _mixer_class(method: str) -> Any:
    """The class ``build_mixer(method, ...)`` builds, or None for an unknown method."""
    from ammix.mixing import MIXERS

    return MIXERS.get(method)


def validate_components(cfg: Config) -> None:
    """Check the mixer, model and dataset names and options against their builders (no data loaded)."""
    import torch

    # Mixer: types against the class's constructor, then a trial build (its ValueErrors name the option).
    from ammix.mixing import build_mixer

    m = cfg.mixing
    cls = _mixer_class(m.method)
    if cls is not None:
        _check_signature_types("mixing", cls, m.options)
    try:
        counts = torch.arange(10, 0, -1) * 10
        mixer = build_mixer(
            m.method, 10, class_counts=counts, generator=torch.Generator(), **mixer_extras(cfg)
        )
    except (ValueError, TypeError) as exc:
        raise component_error("mixing", "method", m.method, m.options, exc) from None

    _validate_loss(cfg)

    # Model: a trial build on the meta device (no memory, no download of pretrained weights).
    from ammix.models import build_model

    # Never pretrained weights here (no download); in_channels is checked against the dataset in training.
    opts = {k: v for k, v in cfg.model.options.items() if k not in ("weights", "pretrained")}
    opts.setdefault("in_channels", 3)
    try:
        with torch.device("meta"):
            model = build_model(cfg.model.name, 10, **opts)
    except (ValueError, TypeError) as exc:
        raise component_error("model", "name", cfg.model.name, cfg.model.options, exc) from None
    try:  # a mixing site (AM-mixup's site, manifold mixup's layers) this model has
        mixer.check_stages(len(model.stages))
    except ValueError as exc:
        raise component_error("mixing", "method", m.method, m.options, exc) from None

    if cfg.model.init_from is not None:
        from .checkpoint import resolve_checkpoint

        if not resolve_checkpoint(cfg.model.init_from).is_file():
            raise ConfigError(
                f"model.init_from = {_fmt(cfg.model.init_from)}: no checkpoint there; allowed: a checkpoint "
                f"file or a run folder holding last.pt"
            )

    # Dataset: the name, and the options where ``ammix.data`` tells them without loading anything.
    from ammix import data as data_mod

    names = getattr(data_mod, "DATASETS", None)
    if names is not None and cfg.data.dataset not in names:
        raise ConfigError(
            f"data.dataset = {_fmt(cfg.data.dataset)}: unknown dataset; allowed: {', '.join(names)}"
            + _suggest(cfg.data.dataset, list(names))
        )
    if cfg.data.options:
        try:
            allowed = data_mod.dataset_options(cfg.data.dataset)
        except ValueError as exc:
            raise component_error("data", "dataset", cfg.data.dataset, cfg.data.options, exc) from None
        known = [f.name for f in dataclasses.fields(DataConfig) if f.name != "options"]
        for key, value in cfg.data.options.items():
            if key not in allowed:
                raise ConfigError(
                    f"data.{key} = {_fmt(value)}: unknown key; allowed in data: {', '.join(known)}, and the "
                    f"options of dataset {cfg.data.dataset!r}: {', '.join(allowed) or '(none)'}"
                    + _suggest(key, known + list(allowed))
                )
            default = allowed[key]
            if not _finite(value):
                raise ConfigError(f"data.{key} = {_fmt(value)}: expected a finite number")
            if default is not None and not _fits(value, float if type(default) is int else type(default)):
                raise ConfigError(
                    f"data.{key} = {_fmt(value)}: expected {_type_name(type(default))} "
                    f"(default {_fmt(default)})"
                )


def _validate_loss(cfg: Config) -> None:
    """The loss name and options: types against its constructor, then a trial build."""
    from ammix.losses import LOSSES, build_loss

    loss = cfg.loss
    if loss.name not in LOSSES:
        raise ConfigError(
            f"loss.name = {_fmt(loss.name)}: unknown loss; allowed: {', '.join(LOSSES)}"
            + _suggest(loss.name, list(LOSSES))
        )
    _check_signature_types("loss", LOSSES[loss.name], loss.options)
    try:
        build_loss(loss.name, class_counts=[100, 10], **loss.options)
    except (ValueError, TypeError) as exc:
        raise component_error("loss", "name", loss.name, loss.options, exc) from None
    # LDAM's scale is meant for the cosine head's logits in [-1, 1]: on a linear head the default 30
    # sends the loss to about 1e9 and the run to chance accuracy, without an error (configs/smoke.yaml).
    if loss.name != "ldam" or cfg.model.options.get("head", "linear") == "cosine":
        return
    scale = loss.options.get("scale", inspect.signature(LOSSES["ldam"]).parameters["scale"].default)
    if scale > 1:
        raise ConfigError(
            f"loss.name = 'ldam': its scale ({scale:g}) multiplies the logits, meant for the cosine head's "
            f"logits in [-1, 1]; on a linear head the loss blows up. Set model.head = cosine (as "
            f"LDAM-DRW), or loss.scale <= 1 for a linear head"
        )


def mixer_extras(cfg: Config) -> dict:
    """The mixer's options from the config, plus the training length (``total``) for a mixer that
    takes one and is not given it (so a schedule defined by its end value knows the run's length)."""
    opts = dict(cfg.mixing.options)
    cls = _mixer_class(cfg.mixing.method)
    if cls is not None and "total" in inspect.signature(cls).parameters and "total" not in opts:
        opts["total"] = cfg.train.epochs
    return opts
