"""`ammix report RUNS_DIR`: finished runs aggregated over seeds into Markdown/CSV tables and figures.

Input (all this module relies on): run folders ``RUNS_DIR/<sweep>/<variant>/seed<S>[/<stage>]``, each
with ``config.yaml`` (the resolved config), ``summary.json`` (a nested dict with numeric leaves) and
optionally ``analysis.json`` (collapse metrics). A folder with ``config.yaml`` or ``summary.json`` is
a run; it is *finished* when ``summary.json`` exists and does not say ``"finished": false`` (a run
stopped early by ``train.stop_after_epochs``, to be resumed). Unfinished runs (and a bare ``seed<S>``
folder, or a stage folder in one, without ``summary.json``) are left out, counted and listed.

- :func:`collect_runs` reads the finished runs: one record each, with the group keys ``sweep``,
  ``variant``, ``stage`` (``""`` for one-stage runs) and ``seed`` (from the ``seed<S>`` folder name,
  else the config's ``seed``), ``path``, ``config`` and ``metrics``: every numeric leaf of
  ``summary.json`` under its dotted key (``"last.acc"``, ``"best.groups.few"``) and of
  ``analysis.json`` under ``"analysis.<key>"``; a list of numbers (per-class values) is kept as a list
  of floats (``None`` inside it becomes NaN). Booleans and strings are left out. From
  ``metrics.jsonl``: ``curve.tail_range``, ``curve.tail_drift`` (:mod:`ammix.experiments.curves`) and,
  for an L-BFGS probe, ``probe.iterations`` and ``probe.grad_max`` (:func:`probe_fit`). ``device``:
  where and in which precision the run trained, from ``summary.json`` (:func:`device_text`:
  ``"cpu, bfloat16"``).
- :func:`aggregate` groups the records by (sweep, stage, variant): per metric the mean and the
  **sample** standard deviation (``ddof=1``) over the runs that have it; with one run the std is
  ``0.0`` in the rows, blank in the CSV and not shown in the Markdown (it cannot be estimated).
  Lists are averaged elementwise (a group whose runs' lists differ in length gets no value).
- :func:`config_disagreements`: the runs of a group made with another config than its first seed's
  (beyond the seed and the pre-training each starts from) or in another precision, each named in a
  warning among the report's notes: their mean mixes two experiments.
- :func:`paired_differences` (``--baseline VARIANT``): runs of different variants with the same seed
  share the data order, so per (sweep, stage) each other variant is compared with the baseline seed by
  seed: mean ± sample std of the differences over the seeds both have, and their number.
- :func:`report` writes ``report.md``, ``report.csv``, ``runs.csv`` (every finished run's own values,
  one line each), ``per_class.csv`` (when there are per-class lists), ``paired.csv`` (with
  ``--baseline``) and, per sweep and stage, a grouped bar chart of the mean per-class accuracy of each
  variant (std error bars) as PNG and PDF under ``figures/``; it prints the Markdown, which ends with a
  one-line definition of every column it shows (:func:`ammix.analysis.metric_definition`).

Units. A metric is an accuracy when a part of its dotted name contains ``acc`` or is
``many``/``medium``/``few``/``top1``/``top5``. Every accuracy is in percent in the records, the tables,
the CSVs and the figures: the unit is decided by the file a value comes from (:data:`ACCURACY_SCALE`),
never by the values: ``summary.json`` stores percent (kept), ``analysis.json`` fractions (× 100 when
read). The Markdown shows accuracies with 2 decimals, other metrics as stored with one number of
decimals per column chosen from the column's largest magnitude (in scientific notation when its values
all lie below 1e-3, such as ``probe.grad_max``, or one nonzero value would print as 0), rounded half up
on the decimal value (95.675 shows 95.68, −1.125 shows −1.13); the CSVs keep full precision.

Columns. By default the first present name of each entry of :data:`PREFERRED_METRICS` (a metric shown
when some run has it, with fallback names); when none is present, every scalar metric. ``metrics=``
(``--metrics``) replaces the list; names may be ``fnmatch`` patterns (``"analysis.*"``).

Published numbers come from ``ammix/resources/references.yaml`` (:func:`load_references`) and are shown
in a ``published`` column beside ``last.acc`` for a group whose dataset, imbalance factor, method and
loss (``ammix.losses.loss_label``: ``ce`` unless the entry says, e.g. ``ldam-drw``) match an entry
(and whose long-tail profile and labels agree: ``exp`` and ``fine`` by default). Only
the official dataset names match (``cifar10``, ``cifar100``, and their long-tailed names
``cifar10-lt``, ``cifar100-lt``); ``cifar10-jpeg`` is a JPEG re-encode, different data, and never gets
the official numbers (the table note says so).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ammix.analysis.definitions import metric_definition
from ammix.analysis.figures import PDF_METADATA
from ammix.losses import loss_label

from ..engine.config import ConfigError, config_from_dict
from ..engine.loop import config_changes
from ..engine.probe import GRAD_TOLERANCE, RECORD_KEYS
from ..engine.rundir import read_metrics
from .curves import curve_points, plot_learning_curves, slug, tail_measures

__all__ = [
    "ACCURACY_SCALE",
    "PREFERRED_METRICS",
    "ReportError",
    "add_arguments",
    "aggregate",
    "collect_runs",
    "config_disagreements",
    "device_text",
    "format_markdown",
    "format_paired_markdown",
    "load_references",
    "match_reference",
    "paired_differences",
    "report",
    "run",
    "scan_runs",
    "select_metrics",
    "select_variants",
    "write_csv",
    "write_figures",
    "write_paired_csv",
]

#: Default columns: each entry is shown when some run has it, its first present name used.
PREFERRED_METRICS: tuple[tuple[str, ...], ...] = (
    ("last.acc", "acc", "final.acc", "test.acc"),
    ("best.acc",),
    ("last.balanced_acc", "balanced_acc", "final.balanced_acc"),
    ("last.group_acc.many", "last.groups.many", "groups.many"),
    ("last.group_acc.medium", "last.groups.medium", "groups.medium"),
    ("last.group_acc.few", "last.groups.few", "groups.few"),
    ("analysis.feature_norm",),
    ("analysis.alignment",),
    ("analysis.uniformity",),
    ("analysis.neighbour_uniformity",),
    ("analysis.margin_ratio",),
    ("curve.tail_range",),
    ("curve.tail_drift",),
    ("probe.grad_max",),
    ("wall_time_s", "time.wall_s"),
)

#: Per-class lists drawn in the figures, first present used (else any key ending in ``per_class_acc``).
PER_CLASS_KEYS = ("last.per_class_acc", "per_class_acc", "best.per_class_acc")

#: The metric the published column sits beside (the first present).
TOP1_KEYS = ("last.acc", "acc", "final.acc", "test.acc", "best.acc")

#: Context columns (from the config, and the device from the summary) of a table; one that is the
#: same in the whole table is written above it instead. A table whose runs trained on different devices
#: or in different precisions shows it per row and says so below it.
CONTEXT = (
    ("dataset", "dataset"),
    ("imbalance_factor", "IF"),
    ("method", "method"),
    ("loss", "loss"),
    ("model", "model"),
    ("device", "device"),
)

#: Every context key of an aggregated row (report.csv's context columns, in this order).
CONTEXT_KEYS = ("dataset", "imbalance_factor", "profile", "labels", "method", "loss", "model", "device")

STAGE_ORDER = ("", "pretrain", "probe", "finetune")
#: A seed folder's name (seed1, seed_1, seed-1), its seed the group.
SEED_DIR = re.compile(r"^seed[_-]?(\d+)$")
_ACC_PARTS = {"many", "medium", "few", "top1", "top5"}

#: How each file stores its accuracies, as the factor that makes them percent: ``summary.json`` in percent
#: (``ammix.engine.evaluate``), ``analysis.json`` as fractions (``ammix.analysis.collapse_report``).
ACCURACY_SCALE = {"summary.json": 1, "analysis.json": 100}


class ReportError(ValueError):
    """A missing or empty runs folder, or a malformed references file (one line, no traceback)."""


# ----------------------------------------------------------------------------------------- collection


def _is_accuracy(key: str) -> bool:
    return any("acc" in part or part in _ACC_PARTS for part in key.lower().split("."))


def _flatten(obj: Any, prefix: str, out: dict[str, Any], accuracy_scale: int = 1) -> None:
    """The numeric leaves of ``obj`` into ``out`` under dotted keys, accuracies multiplied by
    ``accuracy_scale`` (the factor that makes the source file's accuracies percent)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out, accuracy_scale)
        return
    if isinstance(obj, bool) or not prefix:
        return
    scale = accuracy_scale if _is_accuracy(prefix) else 1
    if isinstance(obj, (int, float)):
        if math.isfinite(obj):  # nan (e.g. margin_ratio undefined) counts as missing: [k/n], fewer pairs
            out[prefix] = obj * scale
    elif isinstance(obj, list) and obj:
        if all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for x in obj):
            out[prefix] = [math.nan if x is None else float(x) * scale for x in obj]


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds no JSON object")
    return data


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _group_keys(rel: tuple[str, ...], runs_dir: Path, config: dict) -> tuple[str, str, str, int | None]:
    """(sweep, variant, stage, seed) of a run folder from its path: ``<sweep>/<variant>/seed<S>[/<stage>]``
    below ``runs_dir``; when ``runs_dir`` is itself a sweep, variant, seed or stage folder, the missing
    keys are the names of the folders above it."""
    root = runs_dir.resolve().parts
    full, n_root = root + rel, len(root)
    seed_at = max((i for i in range(max(1, n_root - 2), len(full)) if SEED_DIR.match(full[i])), default=None)
    if seed_at is None:
        seed = config.get("seed")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        stage, end = "", len(full)
    else:
        seed = int(SEED_DIR.match(full[seed_at]).group(1))
        stage, end = "/".join(full[seed_at + 1:]), seed_at
    variant = full[end - 1] if end >= 1 else ""
    sweep = "/".join(full[n_root:end - 1]) or (full[end - 2] if end >= 2 else "")
    return sweep, variant, stage, seed


def _variant_of(run: Path, runs_dir: Path) -> str:
    return _group_keys(run.relative_to(runs_dir).parts, runs_dir, {})[1]


def _is_report(folder: Path) -> bool:
    """Whether ``folder`` holds a report's output (no run folder holds these two)."""
    return (folder / "report.md").is_file() and (folder / "runs.csv").is_file()


def scan_runs(runs_dir: str | os.PathLike,
              skip: Iterable[str | os.PathLike] = ()) -> tuple[list[dict], list[str]]:
    """The finished runs under ``runs_dir`` (records as :func:`collect_runs`) and the unfinished ones
    (folder paths; an unreadable ``summary.json`` counts as unfinished). Folders in ``skip``, hidden
    folders and the ``runs`` folder of an earlier report below ``runs_dir`` (its ``--keep-runs`` copies
    would count every run twice, as a second sweep) are not searched. ``ReportError`` when
    ``runs_dir`` is not a folder."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ReportError(f"runs folder {runs_dir} does not exist" if not runs_dir.exists()
                          else f"{runs_dir} is not a folder")
    skipped = {Path(p).resolve() for p in skip}
    records, unfinished = [], []
    for folder, dirs, files in os.walk(runs_dir):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() not in skipped
                         and not (d == "runs" and _is_report(here)))
        rel = here.relative_to(runs_dir).parts
        is_run = "summary.json" in files or "config.yaml" in files
        # a seed folder, or a stage folder in a seed folder that is no run itself, with nothing in it yet
        bare_seed = bool(rel) and not dirs and bool(
            SEED_DIR.match(rel[-1])
            or (len(rel) >= 2 and SEED_DIR.match(rel[-2])
                and not any((here.parent / f).is_file() for f in ("summary.json", "config.yaml"))))
        if not is_run and not bare_seed:
            continue
        if "summary.json" not in files:
            unfinished.append(str(here))
            continue
        try:
            summary = _read_json(here / "summary.json")
        except (OSError, ValueError):
            unfinished.append(str(here))
            continue
        if summary.get("finished") is False:
            unfinished.append(str(here))
            continue
        metrics: dict[str, Any] = {}
        _flatten(summary, "", metrics, ACCURACY_SCALE["summary.json"])
        if "analysis.json" in files:
            try:
                analysis = _read_json(here / "analysis.json")
                _flatten(analysis, "analysis", metrics, ACCURACY_SCALE["analysis.json"])
            except (OSError, ValueError):
                pass  # the run's accuracies still count; its analysis columns stay empty
        lines = read_metrics(here)
        metrics.update({f"curve.{name}": value for name, value in tail_measures(*curve_points(lines)).items()
                        if value is not None})
        metrics.update(probe_fit(lines))
        config = _read_config(here / "config.yaml")
        sweep, variant, stage, seed = _group_keys(rel, runs_dir, config)
        records.append({"sweep": sweep, "variant": variant, "stage": stage, "seed": seed,
                        "path": str(here), "config": config, "device": device_text(summary),
                        "metrics": metrics, "lineage": {k: summary[k] for k in LINEAGE if k in summary}})
    return records, unfinished


LINEAGE = ("init_from_sha256", "checkpoint_sha256")  # summary.json: what a transfer stage started from


def other_pretraining(records: Sequence[dict], unfinished: Sequence[str] = ()) -> list[dict]:
    """The transfer-stage records built on another pre-training than the one in their seed folder: the
    checkpoint they started from (``init_from_sha256``) is not the finished pre-training's
    (``checkpoint_sha256``; both in summary.json), or the pre-training there is unfinished (in
    ``unfinished``: it is being trained again, and a stage only starts from a finished one). Runs that
    record neither, or whose seed folder has no pre-training, are not judged."""
    def lineage(r: dict, key: str) -> str | None:
        return r.get("lineage", {}).get(key)

    made = {(r["sweep"], r["variant"], r["seed"]): lineage(r, "checkpoint_sha256")
            for r in records if r["stage"] == "pretrain"}
    redone = {str(Path(p)) for p in unfinished}

    def stale(r: dict) -> bool:
        if str(Path(r["path"]).parent / "pretrain") in redone:
            return True
        return made.get((r["sweep"], r["variant"], r["seed"])) not in (None, lineage(r, "init_from_sha256"))

    return [r for r in records if r["stage"] not in ("", "pretrain") and lineage(r, "init_from_sha256")
            and stale(r)]


def device_text(summary: dict) -> str:
    """Where and in which precision a run trained, from its ``summary.json``: ``"cpu, float32"``,
    ``"cuda (NVIDIA H100 80GB HBM3), bfloat16"`` (the device index left out: packed runs each see
    ``cuda:0``); ``"not recorded"`` for a summary without ``device``."""
    device = summary.get("device")
    if not isinstance(device, str) or not device:
        return "not recorded"
    kind, _, name = device.partition(" ")
    where = kind.split(":")[0] + (f" {name}" if name else "")
    return f"{where}, {summary.get('autocast') or 'float32'}"


def probe_fit(lines: Sequence[dict]) -> dict[str, float]:
    """How far a run's L-BFGS probe went (``probe.iterations``, ``probe.grad_max``: converged below
    ``ammix.engine.probe.GRAD_TOLERANCE``), from the last metrics.jsonl line that holds them; ``{}``
    for a run trained by SGD."""
    for line in reversed(lines):
        if any(key in line for key in RECORD_KEYS):
            return {name: float(line[key]) for key, name in RECORD_KEYS.items() if key in line}
    return {}


def collect_runs(runs_dir: str | os.PathLike) -> list[dict]:
    """One record per finished run under ``runs_dir`` (see the module docstring): a dict with
    ``sweep``, ``variant``, ``stage``, ``seed``, ``path``, ``config`` and ``metrics`` (dotted key ->
    number, or list of floats for per-class values; accuracies in percent). Unfinished runs are left
    out (:func:`scan_runs` lists them). ``ReportError`` when ``runs_dir`` is not a folder."""
    return scan_runs(runs_dir)[0]


# ---------------------------------------------------------------------------------------- aggregation


def _run_context(config: dict) -> dict[str, Any]:
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    mixing = config.get("mixing") if isinstance(config.get("mixing"), dict) else {}
    loss = config.get("loss") if isinstance(config.get("loss"), dict) else {}
    factor = data.get("imbalance_factor")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        factor = None
    return {
        "dataset": data.get("dataset"),
        "imbalance_factor": None if factor is None else float(factor),
        "profile": data.get("profile") or "exp",
        "labels": data.get("labels") or "fine",
        "method": mixing.get("method"),
        "loss": loss_label(loss.get("name", "ce"), loss.get("drw_epoch")),
        "model": model.get("name"),
        "train_per_class": data.get("train_per_class") or 0,  # a subset of the training set
    }


def _stage_key(stage: str) -> tuple:
    return (STAGE_ORDER.index(stage), "") if stage in STAGE_ORDER else (len(STAGE_ORDER), stage)


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size >= 2 else 0.0
    return mean, std


def _row_groups(records: Sequence[dict]) -> list[tuple[tuple[str, str, str], list[dict]]]:
    """``records`` grouped by (sweep, stage, variant), the rows of a table, in table order (sweep,
    stage as :data:`STAGE_ORDER`, variant), each group's runs by seed (runs without one last)."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for rec in records:
        groups.setdefault((rec["sweep"], rec.get("stage", ""), rec["variant"]), []).append(rec)
    in_table_order = sorted(groups.items(), key=lambda kv: (kv[0][0], _stage_key(kv[0][1]), kv[0][2]))
    return [(key, sorted(recs, key=lambda r: (r["seed"] is None, r["seed"] or 0)))
            for key, recs in in_table_order]


def aggregate(records: Sequence[dict], metrics: Sequence[str] | None = None) -> list[dict]:
    """Group ``records`` by (sweep, stage, variant) and average each metric over the group's runs.

    ``metrics``: the metric keys (``None``: every key of any record). Returns one row per group, sorted
    by sweep, stage (one-stage, pretrain, probe, finetune, others), variant: ``sweep``, ``stage``,
    ``variant``, ``n`` (runs), ``seeds``, ``paths``, the context :data:`CONTEXT_KEYS` (``dataset``,
    ``imbalance_factor``, ``profile``, ``labels``, ``method``, ``loss``, ``model`` from the config,
    ``device`` from the record; ``None`` where the group's runs disagree), and dicts ``mean``, ``std``,
    ``count`` keyed by metric (only metrics some run of the group has). ``std`` is the sample std
    (ddof=1), ``0.0`` when ``count`` is 1. A list metric (per-class) is averaged elementwise: ``mean``
    and ``std`` are lists; a group whose runs' lists differ in length, or that mixes lists and numbers,
    gets no value for it.
    """
    rows = []
    for (sweep, stage, variant), recs in _row_groups(records):
        contexts = [{**_run_context(r.get("config") or {}), "device": r.get("device")} for r in recs]
        row: dict[str, Any] = {"sweep": sweep, "stage": stage, "variant": variant, "n": len(recs),
                               "seeds": [r["seed"] for r in recs], "paths": [r["path"] for r in recs]}
        for key in (*CONTEXT_KEYS, "train_per_class"):
            values = {c[key] for c in contexts}
            row[key] = values.pop() if len(values) == 1 else None
        keys = metrics if metrics is not None else sorted({k for r in recs for k in r["metrics"]})
        mean, std, count = {}, {}, {}
        for key in keys:
            values = [r["metrics"][key] for r in recs if key in r["metrics"]]
            if not values:
                continue
            if all(isinstance(v, list) for v in values):
                if len({len(v) for v in values}) != 1:
                    continue
                arr = np.asarray(values, dtype=float)
                mean[key] = arr.mean(axis=0).tolist()
                std[key] = (arr.std(axis=0, ddof=1) if len(values) >= 2 else np.zeros(arr.shape[1])).tolist()
            elif any(isinstance(v, list) for v in values):
                continue
            else:
                mean[key], std[key] = _mean_std([float(v) for v in values])
            count[key] = len(values)
        row.update(mean=mean, std=std, count=count)
        rows.append(row)
    return rows


def seed_mismatches(records: Sequence[dict]) -> list[str]:
    """One line per run whose config's seed is not the one its ``seed<S>`` folder names (a folder copied
    or renamed by hand): the report pairs and averages it under the folder's seed."""
    return [f"{r['path']} holds a run of seed {r['config']['seed']}, reported as seed {r['seed']}"
            for r in records if r["seed"] is not None and isinstance(r.get("config"), dict)
            and isinstance(r["config"].get("seed"), int) and r["config"]["seed"] != r["seed"]]


def repeated_seeds(records: Sequence[dict]) -> list[str]:
    """One line per seed that two or more runs of one row hold (``seed1`` beside ``seed01``, a run folder
    with a seed folder inside it): the row would count that seed twice and pair only one of them."""
    folders: dict[tuple, list[str]] = {}
    for r in records:
        if r["seed"] is not None:
            key = (r["sweep"], r["stage"], r["variant"], r["seed"])
            folders.setdefault(key, []).append(r["path"])
    return [f"seed {seed} of {'/'.join(filter(None, (sweep, stage, variant)))}: {', '.join(paths)}"
            for (sweep, stage, variant, seed), paths in folders.items() if len(paths) > 1]


def config_disagreements(records: Sequence[dict]) -> list[str]:
    """One line per run whose config differs from the first seed's of its (sweep, stage, variant) in
    more than the seed, the pre-training it starts from (``model.init_from``) and the keys a resumed
    run may change, or that trained on another device or in another precision: the row's mean would
    mix two experiments (a run trained by hand, or copied in, with another length or precision)."""
    lines = []
    for (sweep, stage, variant), recs in _row_groups(records):
        for rec in recs[1:]:
            devices = (recs[0].get("device"), rec.get("device"))
            # With both precisions recorded, they are compared instead of train.amp: `auto` and `bf16`
            # that both ran bf16 are one experiment, `auto` resolved on two machines may be two.
            recorded = "not recorded" not in devices
            changes = config_changes(_comparable_config(recs[0].get("config") or {}, recorded),
                                     _comparable_config(rec.get("config") or {}, recorded))
            if devices[0] != devices[1]:
                changes.append(f"device: {devices[0]} -> {devices[1]}")
            if changes:
                where = "/".join(filter(None, (sweep, variant, stage)))
                lines.append(f"{where}: seed {rec['seed']} was made with another config than seed "
                             f"{recs[0]['seed']} ({'; '.join(changes)})")
    return lines


def _comparable_config(config: dict, without_amp: bool) -> dict:
    """``config`` through the schema (keys added since a run was made at their defaults, as a sweep
    compares them), without the keys the runs of one row may differ in (and ``train.amp`` when
    ``without_amp``)."""
    try:
        config = config_from_dict(config).to_dict()
    except (ConfigError, TypeError, ValueError):
        config = dict(config)  # not a config of this version's schema: compared as written
    config.pop("seed", None)
    dropped = [("model", "init_from")] + ([("train", "amp")] if without_amp else [])
    for section, key in dropped:
        if isinstance(config.get(section), dict):
            config[section] = {k: v for k, v in config[section].items() if k != key}
    return config


def paired_differences(records: Sequence[dict], baseline: str, metrics: Sequence[str]) -> list[dict]:
    """Seed-matched differences to the variant ``baseline``: runs with the same seed share the data order,
    so the per-seed difference removes what the seed does to both.

    Within each (sweep, stage) that has ``baseline``, for every other variant and every scalar metric of
    ``metrics``: the differences ``variant - baseline`` over the seeds where both runs have the metric
    (runs without a seed are left out). Returns one dict per (sweep, stage, variant, metric) with at least
    one pair, sorted like :func:`aggregate`: ``sweep``, ``stage``, ``baseline``, ``variant``, ``metric``,
    ``mean``, ``std`` (sample std, ddof=1; ``0.0`` for one pair), ``pairs``, and the ``seeds`` with their
    ``differences`` (so a per-seed difference quoted in the docs is read, not recomputed).
    """
    by_seed: dict[tuple[str, str, str], dict[int, dict]] = {}
    for rec in records:
        if rec["seed"] is not None:
            by_seed.setdefault((rec["sweep"], rec["stage"], rec["variant"]), {})[rec["seed"]] = rec["metrics"]
    out = []
    for (sweep, stage, variant), runs in sorted(by_seed.items(),
                                                key=lambda kv: (kv[0][0], _stage_key(kv[0][1]), kv[0][2])):
        base = by_seed.get((sweep, stage, baseline))
        if base is None or variant == baseline:
            continue
        for metric in metrics:
            seeds = [seed for seed in sorted(set(runs) & set(base))
                     if _is_scalar(runs[seed].get(metric)) and _is_scalar(base[seed].get(metric))]
            diffs = [float(runs[seed][metric]) - float(base[seed][metric]) for seed in seeds]
            if diffs:
                mean, std = _mean_std(diffs)
                out.append({"sweep": sweep, "stage": stage, "baseline": baseline, "variant": variant,
                            "metric": metric, "mean": mean, "std": std, "pairs": len(diffs),
                            "seeds": seeds, "differences": diffs})
    return out


def select_variants(records: Sequence[dict], patterns: Sequence[str]) -> list[dict]:
    """The records whose variant matches one of ``patterns`` (``fnmatch``, e.g. ``"*-200ep"``);
    ``ReportError`` naming the patterns that match no variant, so a typo never shrinks a table silently."""
    names = sorted({r["variant"] for r in records})
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise ReportError(f"--variants {', '.join(unmatched)} match(es) no finished run; "
                          f"variants: {', '.join(names)}")
    return [r for r in records if _matches(r["variant"], patterns)]


def _matches(variant: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(variant, p) for p in patterns)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float))


# ----------------------------------------------------------------------------------- metric columns


def _scalar_keys(records: Iterable[dict]) -> list[str]:
    return sorted({k for r in records for k, v in r["metrics"].items() if not isinstance(v, list)})


def select_metrics(records: Sequence[dict],
                   metrics: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """The metric columns and the requested names that match nothing.

    ``metrics=None``: for each entry of :data:`PREFERRED_METRICS` its first name some record has (all
    scalar metrics when none is present). Otherwise the given names in order, ``fnmatch`` patterns
    expanded to the matching metric keys (sorted); unmatched names are returned as missing.
    """
    present = {k for r in records for k in r["metrics"]}
    if metrics is None:
        chosen = [next(name for name in names if name in present)
                  for names in PREFERRED_METRICS if any(name in present for name in names)]
        return (chosen or _scalar_keys(records)), []
    chosen, missing = [], []
    for name in metrics:
        if any(ch in name for ch in "*?["):
            found = sorted(k for k in present if fnmatch.fnmatchcase(k, name))
        else:
            found = [name] if name in present else []
        if not found:
            missing.append(name)
        chosen.extend(k for k in found if k not in chosen)
    return chosen, missing


# -------------------------------------------------------------------------------------- references


def load_references(path: str | os.PathLike | None = None) -> list[dict]:
    """The published numbers (default: the packaged ``references.yaml``); ``ReportError`` if malformed."""
    try:
        if path is None:
            text = resources.files("ammix").joinpath("resources/references.yaml").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as err:
        raise ReportError(f"cannot read the references file: {err}") from None
    entries = data.get("references") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ReportError("references file: expected a top-level 'references:' list")
    required = ("dataset", "imbalance_factor", "method", "metric", "value", "source")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(k not in entry for k in required):
            raise ReportError(f"references file: entry {i} needs the keys {', '.join(required)}")
    return entries


def _official(dataset: str | None) -> str | None:
    """The official name a dataset's numbers are published under (cifar10-lt -> cifar10), else None."""
    if not isinstance(dataset, str):
        return None
    base = dataset[:-3] if dataset.endswith("-lt") else dataset
    return base if base in ("cifar10", "cifar100") else None


def match_reference(row: dict, references: Sequence[dict]) -> list[dict]:
    """The references that apply to an aggregated row: same official dataset (``cifar10``/``cifar100``
    or their ``-lt`` names; never ``cifar10-jpeg``), imbalance factor, method and loss, and the same long-tail
    profile (default ``exp``) and labels (default ``fine``). None for a row of a transfer stage (the
    published numbers are of one-stage training; a probe or fine-tuning records ``mixing: ce``) or whose
    runs disagree on the loss, profile or labels (``None`` there: no default stands in for a mix), nor for
    a row trained on a subset of the training set (``data.train_per_class``)."""
    dataset = _official(row.get("dataset"))
    factor = row.get("imbalance_factor")
    if dataset is None or factor is None or row.get("method") is None or row.get("stage"):
        return []
    if any(key in row and row[key] is None for key in ("loss", "profile", "labels")):
        return []
    if row.get("train_per_class", 0) != 0:
        return []
    out = []
    for ref in references:
        if (ref["dataset"] == dataset and ref["method"] == row["method"]
                and ref.get("loss", "ce") == (row.get("loss") or "ce")
                and math.isclose(float(ref["imbalance_factor"]), factor, rel_tol=1e-9)
                and ref.get("profile", "exp") == (row.get("profile") or "exp")
                and ref.get("labels", "fine") == (row.get("labels") or "fine")):
            out.append(ref)
    return out


def _other_backbone(ref: dict, row: dict) -> str:
    """What the report.md's dagger says, for the CSV: the reference was published with another backbone."""
    if ref.get("model") and row.get("model") != ref.get("model"):
        return f" (published with {ref['model']}, this row {row.get('model')})"
    return ""


def _source_text(ref: dict) -> str:
    source = ref["source"]
    if isinstance(source, dict):
        return ", ".join(str(source[k]) for k in ("paper", "table") if source.get(k))
    return str(source)


# ------------------------------------------------------------------------------------------ Markdown


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _context_text(key: str, value: Any) -> str:
    if value is None:
        return "mixed" if key != "imbalance_factor" else "–"
    if key == "imbalance_factor":
        return f"{value:g}"
    return str(value)


#: ``_decimals`` for a column too small for fixed decimals: shown as ``1.23e-05``.
SCIENTIFIC = -1


def _decimals(values: Iterable[float]) -> int:
    finite = [abs(v) for v in values if math.isfinite(v)]
    top = max(finite, default=0.0)
    if top == 0.0:
        return 2
    if top < 1e-3:
        return SCIENTIFIC
    decimals = int(min(4, max(0, 3 - math.floor(math.log10(top)))))
    smallest = min((v for v in finite if v > 0.0), default=top)
    # a nonzero value that would print as 0 (a probe's 1e-6 gradient beside another's 2e-3) is not zero
    return SCIENTIFIC if smallest < 0.5 * 10.0**-decimals else decimals


def fixed_decimals(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals (or ``SCIENTIFIC``), as the report's and toy's tables show it."""
    value = float(value)  # a numpy scalar's repr is not a number
    if decimals == SCIENTIFIC:
        return f"{value:.2e}"
    if not math.isfinite(value) or abs(value) >= 1e15:  # nan, inf; past Decimal's 28 digits at 4 decimals
        return f"{value:.{decimals}f}"
    # Half up on the decimal the float stands for, as docs/results.md rounds: the mean of 95.625, 95.85
    # and 95.55 is 95.675, whose float lies just below it, so plain formatting shows 95.67.
    exact = Decimal(repr(round(value, 9)))
    return str(exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def _sections(rows: Sequence[dict]) -> list[tuple[tuple[str, str], list[dict]]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        out.setdefault((row["sweep"], row["stage"]), []).append(row)
    return list(out.items())


def format_markdown(rows: Sequence[dict], metrics: Sequence[str], references: Sequence[dict] = (),
                    notes: Sequence[str] = (), figures: dict | None = None,
                    paired: Sequence[dict] = ()) -> str:
    """The Markdown report: one table per (sweep, stage) of ``rows`` (from :func:`aggregate`), columns
    ``metrics`` (those some row of the table has), ``mean ± std`` over seeds, accuracies (percent) with
    2 decimals; then the ``paired`` entries (:func:`paired_differences`, :func:`format_paired_markdown`),
    a definition of every column shown, and ``notes``. ``references``: matched by
    :func:`match_reference` into a ``published`` column; ``figures``: (sweep, stage) -> list of image
    paths relative to the report."""
    lines = ["# Results", "",
             "Mean ± sample std (ddof=1) over seeds; n = runs (seeds) per row, the std is not shown when "
             "n = 1; [k/n]: the metric exists in k of the n runs. Accuracies are in percent (%).", ""]
    for (sweep, stage), section in _sections(rows):
        lines += [f"## {sweep}" + (f" / {stage}" if stage else ""), ""]
        shown = _scalar_columns(metrics, section)
        varying = [(k, label) for k, label in CONTEXT if len({repr(r.get(k)) for r in section}) > 1]
        fixed = [(k, label) for k, label in CONTEXT if (k, label) not in varying]
        if fixed:
            lines += ["; ".join(f"{label}: {_context_text(k, section[0].get(k))}" for k, label in fixed), ""]
        matches = [match_reference(r, references) for r in section]
        published = any(matches)
        top1 = next((k for k in TOP1_KEYS if k in shown), None)
        header = ["variant"] + [label for _, label in varying] + ["n"]
        for m in shown:
            header.append(f"{m} (%)" if _is_accuracy(m) else m)
            if published and m == top1:
                header.append("published (%)")
        if published and top1 is None:
            header.append("published (%)")
        align = ["---"] * (1 + len(varying)) + ["--:"] * (len(header) - len(varying) - 1)
        lines += ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "|".join(align) + "|"]
        decimals = {m: 2 if _is_accuracy(m)
                    else _decimals(r["mean"][m] for r in section if m in r["mean"]) for m in shown}
        used_refs: list[dict] = []
        other_backbone = False
        for row, refs in zip(section, matches, strict=True):
            cells = [row["variant"]] + [_context_text(k, row.get(k)) for k, _ in varying] + [str(row["n"])]
            pub = ""
            if refs:
                marks = []
                for ref in refs:
                    if ref not in used_refs:
                        used_refs.append(ref)
                    dagger = "†" if _other_backbone(ref, row) else ""
                    other_backbone = other_backbone or bool(dagger)
                    marks.append(f"{float(ref['value']):.2f}{dagger}")
                pub = "; ".join(marks)
            for m in shown:
                cells.append(_cell(row, m, decimals[m]))
                if published and m == top1:
                    cells.append(pub)
            if published and top1 is None:
                cells.append(pub)
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
        lines.append("")
        table_notes = []
        for ref in used_refs:
            model = f", {ref['model']}" if ref.get("model") else ""
            table_notes.append(
                f"published: {ref['dataset']} IF {float(ref['imbalance_factor']):g} "
                f"({ref.get('profile', 'exp')}), {ref['method']}, loss {ref.get('loss', 'ce')}{model}: "
                f"{float(ref['value']):.2f} "
                f"({ref['metric']}; {_source_text(ref)}).")
        if other_backbone:
            table_notes.append("†: published with another backbone than this row's.")
        if ("device", "device") in varying:
            table_notes.append("the rows ran on different devices or in different precisions (column "
                               "device): their differences include that.")
        for dataset in sorted({str(r.get("dataset")) for r in section if r.get("dataset")}):
            base = dataset[:-3] if dataset.endswith("-lt") else dataset
            if _official(dataset) is None and base.startswith(("cifar10", "cifar100")):
                official = "cifar100" if base.startswith("cifar100") else "cifar10"
                what = "a JPEG re-encode, " if "jpeg" in base else ""
                table_notes.append(
                    f"{dataset} is {what}different data from the official {official}: published {official} "
                    "numbers are not shown for it.")
        lines += [f"- {note}" for note in table_notes]
        if table_notes:
            lines.append("")
        for fig in (figures or {}).get((sweep, stage), []):
            alt = "learning curves" if Path(fig).name.startswith("curves_") else "per-class accuracy"
            lines += [f"![{alt}]({fig})", ""]
    if paired:
        lines.append(format_paired_markdown(paired, metrics))
    legend = [f"- `{m}`: {_definition(m)}." for m in _scalar_columns(metrics, rows)]
    lines += ["## Metrics", ""] + legend + [""]
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _scalar_columns(metrics: Sequence[str], rows: Sequence[dict]) -> list[str]:
    """The metrics that some row has a number (not a per-class list) for."""
    return [m for m in metrics if any(_is_scalar(r["mean"].get(m)) for r in rows)]


def _definition(metric: str) -> str:
    return metric_definition(metric) or "as the run recorded it (no definition in ammix.analysis.definitions)"


def _cell(row: dict, metric: str, decimals: int) -> str:
    if metric not in row["mean"]:
        return "–"
    return _mean_std_text(row["mean"][metric], row["std"][metric], row["count"][metric], row["n"], decimals)


def _mean_std_text(mean: float, std: float, count: int, total: int, decimals: int) -> str:
    """``mean ± std`` (the std from 2 values on), ``[count/total]`` when some of the total lack it."""
    if not math.isfinite(mean):
        text = "nan"
    elif count >= 2:
        text = f"{fixed_decimals(mean, decimals)} ± {fixed_decimals(std, decimals)}"
    else:
        text = fixed_decimals(mean, decimals)
    return text + (f" [{count}/{total}]" if count < total else "")


def format_paired_markdown(paired: Sequence[dict], metrics: Sequence[str]) -> str:
    """Markdown tables of :func:`paired_differences`, one per (sweep, stage, baseline): a row per variant,
    ``pairs`` (the most pairs of any metric), a column per metric of ``metrics`` that has pairs."""
    tables: dict[tuple[str, str, str], dict[str, dict[str, dict]]] = {}
    for diff in paired:
        table = tables.setdefault((diff["sweep"], diff["stage"], diff["baseline"]), {})
        table.setdefault(diff["variant"], {})[diff["metric"]] = diff
    lines = []
    for (sweep, stage, baseline), variants in tables.items():
        shown = [m for m in metrics if any(m in cells for cells in variants.values())]
        header = ["variant", "pairs"] + [f"{m} (pp)" if _is_accuracy(m) else m for m in shown]
        title = f"## {sweep}" + (f" / {stage}" if stage else "") + f": paired differences to {baseline}"
        lines += [title, "",
                  f"Variant − {baseline} on the same seed (same data order): mean ± sample std over the "
                  "pairs; pairs = seeds both runs have; accuracies in percentage points (pp).", "",
                  "| " + " | ".join(_md(h) for h in header) + " |", "|---|" + "--:|" * (len(header) - 1)]
        decimals = {m: 2 if _is_accuracy(m) else _decimals(c[m]["mean"] for c in variants.values() if m in c)
                    for m in shown}
        for variant, cells in variants.items():
            pairs = max(d["pairs"] for d in cells.values())
            texts = [_mean_std_text(cells[m]["mean"], cells[m]["std"], cells[m]["pairs"], pairs, decimals[m])
                     if m in cells else "–" for m in shown]
            lines.append("| " + " | ".join(_md(c) for c in [variant, str(pairs), *texts]) + " |")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- CSV


def _num(value: float, count: int, is_std: bool = False) -> str:
    if is_std and count < 2:
        return ""
    return repr(float(value))


def write_csv(rows: Sequence[dict], metrics: Sequence[str], path: str | os.PathLike,
              references: Sequence[dict] = ()) -> Path:
    """One line per group: the keys, the context, ``n``, ``seeds`` (space-separated), then per metric
    ``<metric>.mean`` and ``<metric>.std`` (accuracies in percent, full precision; the std blank below
    2 runs), ``published`` / ``published_source`` (percent, as in the paper), and ``fewer_runs``: the
    metrics whose mean is over fewer runs than ``n`` (``metric k/n``; report.md's ``[k/n]``)."""
    path = Path(path)
    header = ["sweep", "stage", "variant", *CONTEXT_KEYS, "n", "seeds"]
    for m in metrics:
        header += [f"{m}.mean", f"{m}.std"]
    header += ["published", "published_source", "fewer_runs"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            line = [row["sweep"], row["stage"], row["variant"]]
            line += ["" if row.get(k) is None else row[k] for k in CONTEXT_KEYS]
            line += [row["n"], " ".join("" if s is None else str(s) for s in row["seeds"])]
            for m in metrics:
                if m in row["mean"] and not isinstance(row["mean"][m], list):
                    count = row["count"][m]
                    line += [_num(row["mean"][m], count), _num(row["std"][m], count, True)]
                else:
                    line += ["", ""]
            refs = match_reference(row, references)
            line += [";".join(repr(float(r["value"])) for r in refs),
                     "; ".join(_source_text(r) + _other_backbone(r, row) for r in refs),
                     "; ".join(f"{m} {row['count'][m]}/{row['n']}" for m in metrics
                               if m in row["count"] and row["count"][m] < row["n"])]
            writer.writerow(line)
    return path


def write_runs_csv(records: Sequence[dict], metrics: Sequence[str], path: str | os.PathLike) -> Path:
    """One line per finished run: ``sweep``, ``stage``, ``variant``, ``seed``, ``device`` (where and in
    which precision it trained), then each metric's value as read (accuracies in percent; blank where the
    run lacks it); the numbers behind every mean ± std of ``report.csv``."""
    path = Path(path)
    order = sorted(records, key=lambda r: (r["sweep"], _stage_key(r["stage"]), r["variant"],
                                           -1 if r["seed"] is None else r["seed"]))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sweep", "stage", "variant", "seed", "device", *metrics])
        for r in order:
            values = [r["metrics"].get(m) for m in metrics]
            writer.writerow([r["sweep"], r["stage"], r["variant"], "" if r["seed"] is None else r["seed"],
                             r.get("device", ""), *("" if v is None else repr(float(v)) for v in values)])
    return path


def write_paired_csv(paired: Sequence[dict], path: str | os.PathLike) -> Path:
    """One line per :func:`paired_differences` entry, full precision; the std blank for one pair; the
    ``seeds`` and their ``differences`` space-separated, in the same order."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sweep", "stage", "baseline", "variant", "metric", "mean", "std", "pairs",
                         "seeds", "differences"])
        for d in paired:
            writer.writerow([d["sweep"], d["stage"], d["baseline"], d["variant"], d["metric"],
                             _num(d["mean"], d["pairs"]), _num(d["std"], d["pairs"], True), d["pairs"],
                             " ".join(map(str, d["seeds"])), " ".join(repr(v) for v in d["differences"])])
    return path


def _per_class_key(rows: Sequence[dict]) -> str | None:
    keys = {k for r in rows for k, v in r["mean"].items() if isinstance(v, list)}
    for key in PER_CLASS_KEYS:
        if key in keys:
            return key
    return next(iter(sorted(k for k in keys if k.endswith("per_class_acc"))), None)


def _write_per_class_csv(rows: Sequence[dict], path: Path) -> Path | None:
    lines = []
    for row in rows:
        for key, mean in row["mean"].items():
            if isinstance(mean, list):
                for c, (m, s) in enumerate(zip(mean, row["std"][key], strict=True)):
                    lines.append([row["sweep"], row["stage"], row["variant"], key, c, repr(float(m)),
                                  _num(s, row["count"][key], True), row["count"][key]])
    if not lines:
        return None
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sweep", "stage", "variant", "metric", "class", "mean", "std", "n"])
        writer.writerows(lines)
    return path


# ------------------------------------------------------------------------------------------- figures


def write_figures(rows: Sequence[dict], out_dir: str | os.PathLike) -> dict[tuple[str, str], list[Path]]:
    """Per (sweep, stage) with per-class lists: a grouped bar chart of the mean per-class accuracy of
    each variant, std error bars (from 2 runs on), as ``per_class_<sweep>[_<stage>].png`` and ``.pdf``
    in ``out_dir``. Returns (sweep, stage) -> [png, pdf]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    written: dict[tuple[str, str], list[Path]] = {}
    for (sweep, stage), section in _sections(rows):
        key = _per_class_key(section)
        if key is None:
            continue
        drawn = [r for r in section if isinstance(r["mean"].get(key), list)]
        num_classes = max(len(r["mean"][key]) for r in drawn)
        x = np.arange(num_classes)
        width = 0.8 / len(drawn)
        fig = Figure(figsize=(min(30.0, max(6.0, 0.12 * num_classes * len(drawn) + 2.0)), 3.8),
                     layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for j, row in enumerate(drawn):
            mean = np.full(num_classes, np.nan)
            std = np.zeros(num_classes)
            values = np.asarray(row["mean"][key], dtype=float)
            mean[: len(values)] = values
            std[: len(values)] = np.asarray(row["std"][key], dtype=float)
            errors = std if row["count"][key] >= 2 else None
            ax.bar(x + (j - (len(drawn) - 1) / 2) * width, mean, width, yerr=errors, capsize=1.5,
                   label=f"{row['variant']} (n={row['count'][key]})", error_kw={"linewidth": 0.6})
        step = max(1, int(math.ceil(num_classes / 25)))
        ax.set_xticks(x[::step])
        ax.set_xlim(-0.5, num_classes - 0.5)
        ax.set_xlabel("class")
        ax.set_ylabel(f"{key} (%)" if _is_accuracy(key) else key)
        ax.set_title(f"{sweep}" + (f" / {stage}" if stage else "") + ": per-class mean over seeds ± std")
        # outside the axes: bars fill any inside corner, and "best" placement is slow on a busy CPU
        fig.legend(loc="outside lower center", fontsize="small", ncols=min(len(drawn), 4))
        ax.grid(axis="y", alpha=0.3)
        stem = "per_class_" + slug(sweep) + (f"_{slug(stage)}" if stage else "")
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
        fig.savefig(paths[0], dpi=150)
        fig.savefig(paths[1], metadata=PDF_METADATA)
        written[(sweep, stage)] = paths
    return written


# -------------------------------------------------------------------------------------------- report

#: The small files of a run that the report reads (no checkpoints): what ``--keep-runs`` copies.
RUN_FILES = ("config.yaml", "summary.json", "analysis.json", "metrics.jsonl")


def keep_run_files(records: Sequence[dict], dest: Path) -> None:
    """Copy each run's :data:`RUN_FILES` to ``dest/<sweep>/<variant>[/seed<S>][/<stage>]``, so that
    ``ammix report dest`` rebuilds the report, and joins later runs, without the original runs folder."""
    for record in records:
        parts = [record["sweep"] or "runs", record["variant"]]
        parts += [f"seed{record['seed']}"] if record["seed"] is not None else []
        folder = dest.joinpath(*parts, *filter(None, record["stage"].split("/")))
        folder.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            source = Path(record["path"]) / name
            # a kept run reported again is its own copy
            if source.is_file() and source.resolve() != (folder / name).resolve():
                shutil.copyfile(source, folder / name)


def report(runs_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
           metrics: Sequence[str] | None = None, *, baselines: Sequence[str] = (),
           variants: Sequence[str] = (), keep_runs: bool = False, echo: bool = True) -> dict[str, Any]:
    """Aggregate the finished runs under ``runs_dir`` and write ``report.md``, ``report.csv``,
    ``runs.csv``, ``per_class.csv`` (when there are per-class lists), ``paired.csv`` (the seed-matched
    differences to each variant of ``baselines``, :func:`paired_differences`) and the figures
    (``figures/``) into ``out_dir`` (default ``runs_dir/report``), with ``keep_runs`` the runs' small
    files too (``out_dir/runs``, :func:`keep_run_files`); print the Markdown when ``echo``. With
    ``variants`` (``fnmatch`` patterns) only the runs of the variants they match are reported.

    Returns ``{"markdown": Path, "csv": Path, "runs_csv": Path, "per_class_csv": Path | None,
    "paired_csv": Path | None, "figures": [Path, ...]}``.
    ``ReportError`` when ``runs_dir`` is missing or holds no finished run, a pattern of ``variants``
    matches no finished run, a baseline is no variant, or two runs of one row hold the same seed.
    """
    runs_dir = Path(runs_dir)
    out_dir = Path(out_dir) if out_dir is not None else runs_dir / "report"
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"--out {out_dir} is a file; give a folder")
    records, unfinished = scan_runs(runs_dir, skip=[out_dir / "runs"])  # its earlier --keep-runs copies
    if not records:
        extra = f" ({len(unfinished)} unfinished)" if unfinished else ""
        raise ReportError(f"no finished runs (summary.json) under {runs_dir}{extra}")
    if variants:
        records = select_variants(records, variants)
        unfinished = [u for u in unfinished if _matches(_variant_of(Path(u), runs_dir), variants)]
    stale = [r["path"] for r in other_pretraining(records, unfinished)]
    records = [r for r in records if r["path"] not in stale]
    repeated = repeated_seeds(records)
    if repeated:
        raise ReportError(f"one seed in two runs of a row ({'; '.join(repeated)}): a row takes one run a "
                          "seed; move the others out of the runs folder")
    reported = sorted({r["variant"] for r in records})
    unknown = [b for b in baselines if b not in reported]
    if unknown:
        raise ReportError(f"baseline variant(s) {', '.join(unknown)} in no finished run; "
                          f"variants: {', '.join(reported)}")
    columns, missing = select_metrics(records, metrics)
    if missing:  # a typo would leave its column out of every table
        known = sorted({k for r in records for k in r["metrics"]})
        raise ReportError(f"metric(s) {', '.join(missing)} in no finished run; metrics: {', '.join(known)}")
    list_keys = sorted({k for r in records for k, v in r["metrics"].items() if isinstance(v, list)})
    rows = aggregate(records, columns + [k for k in list_keys if k not in columns])
    scalar_columns = [m for m in columns if m not in list_keys]
    paired = [d for baseline in baselines for d in paired_differences(records, baseline, scalar_columns)]
    references = load_references()

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = write_figures(rows, out_dir / "figures")
    for key, path in plot_learning_curves(records, out_dir / "figures").items():
        figures.setdefault(key, []).append(path)
    notes = [f"{len(records)} finished run(s) from {runs_dir}."]
    if unfinished:
        shown = ", ".join(os.path.relpath(p, runs_dir) for p in unfinished[:20])
        more = f", and {len(unfinished) - 20} more" if len(unfinished) > 20 else ""
        notes.append(f"{len(unfinished)} unfinished run(s) left out (no summary.json, or stopped early): "
                     f"{shown}{more}.")
    if stale:
        notes.append(f"{len(stale)} transfer-stage run(s) left out, built on another pre-training than the "
                     "one in their seed folder (run the sweep again to redo them): "
                     + ", ".join(os.path.relpath(path, runs_dir) for path in stale) + ".")
    notes += [f"**warning**, a row mixes configs: {line}." for line in config_disagreements(records)]
    notes += [f"**warning**, a seed folder holds another seed: {line}." for line in seed_mismatches(records)]
    unfinished_fits = [r for r in records if r["metrics"].get("probe.grad_max", 0.0) > GRAD_TOLERANCE]
    if unfinished_fits:
        shown = ", ".join(f"{r['variant']}/seed{r['seed']}" for r in unfinished_fits[:20])
        notes.append(f"{len(unfinished_fits)} L-BFGS probe fit(s) stopped above the gradient tolerance "
                     f"{GRAD_TOLERANCE:g} (probe.grad_max), their probe numbers those of an unfinished fit: "
                     f"{shown}.")
    unpaired = [b for b in baselines if not any(d["baseline"] == b for d in paired)]
    if unpaired:
        notes.append(f"baseline(s) without a seed-matched run of another variant: {', '.join(unpaired)}.")
    markdown = format_markdown(
        rows, columns, references, notes,
        {k: [p.relative_to(out_dir).as_posix() for p in v if p.suffix == ".png"] for k, v in figures.items()},
        paired)
    md_path = out_dir / "report.md"
    md_path.write_text(markdown, encoding="utf-8")
    csv_path = write_csv(rows, scalar_columns, out_dir / "report.csv", references)
    runs_csv = write_runs_csv(records, scalar_columns, out_dir / "runs.csv")
    per_class = _write_per_class_csv(rows, out_dir / "per_class.csv")
    paired_csv = write_paired_csv(paired, out_dir / "paired.csv") if baselines else None
    if keep_runs:
        keep_run_files(records, out_dir / "runs")
    if echo:
        print(markdown, end="")
    return {"markdown": md_path, "csv": csv_path, "runs_csv": runs_csv, "per_class_csv": per_class,
            "paired_csv": paired_csv, "figures": [p for paths in figures.values() for p in paths]}


# ----------------------------------------------------------------------------------------------- CLI

DESCRIPTION = """\
Tables of mean ± std over seeds, and figures, from a folder of finished runs:

  ammix report runs/lt-cifar100
  ammix report runs --metrics last.acc 'analysis.*' --baseline ce --out results/

Reads every run folder under RUNS_DIR (laid out RUNS_DIR/<sweep>/<variant>/seed<S>[/<stage>], as
`ammix sweep` writes them): its summary.json (accuracies in percent), analysis.json (collapse metrics,
from `ammix analyze` or a sweep; its accuracy fractions are shown × 100) and config.yaml. A run without
summary.json is unfinished: left out and listed.

Writes into --out (default RUNS_DIR/report) and prints report.md: one table per sweep and stage, a row
per variant (mean ± sample std over seeds), published numbers beside the top-1 accuracy where the
dataset and setting match, a definition of every column shown; report.csv (the same, full
precision), runs.csv (every run's values), per_class.csv and figures/ (per-class accuracy bars), and
with --baseline paired.csv (differences to the baseline, seed by seed).

--variants keeps the runs of the named variants only (names or patterns, e.g. '*-200ep').

Exit status 2, with one line, for a missing or empty folder, a --variants pattern that matches no
run, or an unknown --baseline variant.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``ammix report``."""
    parser.add_argument("runs_dir", type=Path, metavar="RUNS_DIR",
                        help="a folder of runs: a runs folder, one sweep's folder, or a single run")
    parser.add_argument("--out", type=Path, default=None, metavar="FOLDER",
                        help="where the report goes (default: RUNS_DIR/report)")
    parser.add_argument("--metrics", nargs="+", default=None, metavar="KEY",
                        help="the metric columns: dotted keys or patterns, e.g. last.acc 'analysis.*' "
                             "(default: those of " + ", ".join(names[0] for names in PREFERRED_METRICS)
                             + " that the runs have)")
    parser.add_argument("--baseline", nargs="+", default=[], metavar="VARIANT",
                        help="also compare every other variant with VARIANT seed by seed (same seed, "
                             "same data order): mean ± std of the per-seed differences, per column, in "
                             "report.md and paired.csv")
    parser.add_argument("--variants", nargs="+", default=[], metavar="PATTERN",
                        help="report only the variants these names or patterns match, e.g. '*-200ep' "
                             "(a pattern that matches none is an error)")
    parser.add_argument("--keep-runs", action="store_true",
                        help="also copy every run's small files (" + ", ".join(RUN_FILES) + ") into "
                             "FOLDER/runs: `ammix report FOLDER/runs` then rebuilds the report, and joins "
                             "later runs copied beside them, without the original runs folder")


def run(args: argparse.Namespace) -> int:
    """``ammix report``: 0 on success, 2 (one line on stderr) for a missing or empty runs folder."""
    try:
        paths = report(args.runs_dir, args.out, args.metrics, baselines=args.baseline,
                       variants=args.variants, keep_runs=args.keep_runs)
    except ReportError as err:
        print(f"ammix report: {err}", file=sys.stderr)
        return 2
    print(f"wrote {paths['markdown']}, {paths['csv']}, {paths['runs_csv']}"
          + (f" and {len(paths['figures'])} figure file(s)" if paths["figures"] else ""), file=sys.stderr)
    return 0
