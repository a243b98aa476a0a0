"""Sweeps: a grid of (variant, seed) training runs, each a separate `ammix train` process.

A sweep file names a base training config and the variants to run on it::

    name: lt-cifar10-jpeg                # folder under the runs dir
    config: ../lt-cifar10-cpu.yaml       # base training config, relative to this file
    protocol: train                      # or coarse_to_fine
    seeds: [0, 1]
    overrides: {train.epochs: 30}        # applied to every run
    variants:                            # name -> overrides of that variant
      ce: {mixing.method: ce}
      am_mixup: {mixing.method: am_mixup, mixing.gamma: 0.95}

Protocol ``coarse_to_fine`` runs three stages per (variant, seed): ``pretrain`` (the variant on the
coarse labels), then ``probe`` (a linear probe on the frozen pre-trained backbone, fine labels, plain
cross-entropy) and ``finetune`` (all weights, fine labels, plain cross-entropy); the sweep keys
``probe`` and ``finetune`` hold their extra overrides, and ``--stages probe`` runs the pre-trainings and
probes only (say, to refit the probes after the probe changed). ``--set KEY=VALUE`` sets a key for
every run, except where a variant or a stage sets it itself (a note says so);
``--set finetune:optim.lr=0.1`` sets it for one stage.

A plain training config can be swept too: ``ammix sweep CONFIG --methods ce am_mixup --seeds 0 1``.
Each run is ``ammix train BASE OVERRIDES``, so the mixing-options rule of ``ammix.engine.config``
holds: a variant naming another method than the base config's drops the base's mixing options, one
naming the same method keeps them (merged); ``mixing: {...}`` as a whole replaces the section.
Every run's config is validated before the first run starts (and by ``--dry-run``).
Runs write ``RUNS/<name>/<variant>/seed<S>[/<stage>]``. A finished run (summary.json) is skipped, an
interrupted one (last.pt) resumed, so a sweep can be stopped and started again at any point (SIGTERM
or Ctrl-C stops its running runs with it; a run folder in use by another training is refused; a run
whose CUDA graph capture failed runs again at once with ``train.cuda_graph=off``). A
transfer stage built on another pre-training than the one in its folder now (deleted to run again)
runs again from the start: each stage records the sha256 of the checkpoint it started from. A run
folder made with another config (its config.yaml differs from the config the run would use now, by
the rule ``--resume`` applies, or its summary.json records a mixer built with other options, a default
changed since, or an L-BFGS probe fitted otherwise) is refused, never reused: give the changed sweep its
own ``--name``.

One at a time (the default), the runs go in the planned order: seed by seed, each variant's stages
together. ``--jobs N`` runs N at a time (all pre-trainings first, then the transfer stages);
``--gpus 0,1`` one at a time on each GPU, and a repeated id packs runs onto one GPU:
``--gpus 0,0,0,0`` runs four at a time, each with ``CUDA_VISIBLE_DEVICES=0``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ammix.engine import (
    CAPTURE_FAILED_EXIT,
    ConfigError,
    apply_overrides,
    config_from_dict,
    load_config,
    read_yaml,
)
from ammix.engine.checkpoint import CheckpointError, file_sha256, load_checkpoint
from ammix.engine.config import mixer_extras
from ammix.engine.loop import config_changes, mixer_changes, mixer_record
from ammix.engine.probe import FIT as PROBE_FIT
from ammix.engine.rundir import TRAIN_LOG
from ammix.mixing import build_mixer

from .analyze import analyze_run

PROTOCOLS = ("train", "coarse_to_fine")
TRANSFER_STAGES = ("probe", "finetune")  # coarse_to_fine: after each pre-training, in this order
SWEEP_KEYS = {"name", "config", "protocol", "seeds", "overrides", "variants", "probe", "finetune"}


class SweepError(ValueError):
    """A mistake in a sweep file or its arguments (one line, shown without a traceback)."""


@dataclass
class Run:
    """One training process: its run folder and the command-line overrides of the base config."""

    run_dir: Path
    overrides: dict
    after: Run | None = None  # a run this one waits for (the pre-training of a transfer stage)
    label: str = ""


@dataclass
class Sweep:
    name: str
    config: Path
    protocol: str = "train"
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    transfer_stages: tuple[str, ...] = TRANSFER_STAGES  # coarse_to_fine: the stages after pre-training


# A run's seed is its folder's (seed<S>): set anywhere else, a folder would hold another seed's run, or
# a coarse_to_fine pipeline stages of different seeds.
SEEDS_RULE = "a sweep's seeds are set by its seeds: key or --seeds, and name the run folders"


def load_sweep(path: Path, methods: list[str] | None = None, seeds: list[int] | None = None) -> Sweep:
    """A Sweep from a sweep file, or from a plain training config plus `methods`."""
    try:
        spec = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise SweepError(f"cannot read {path}: {err}") from None
    if not isinstance(spec, dict):
        raise SweepError(f"{path}: expected a YAML mapping")
    if "variants" not in spec and "config" not in spec:  # a training config: sweep its methods
        spec = {"name": Path(path).stem, "config": Path(path).name}
    unknown = set(spec) - SWEEP_KEYS
    if unknown:
        raise SweepError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(SWEEP_KEYS)}")
    check_spec(path, spec)
    sweep = Sweep(
        name=str(spec.get("name", Path(path).stem)),
        config=(Path(path).parent / spec["config"]).resolve(),
        protocol=spec.get("protocol", "train"),
        seeds=list(spec.get("seeds", [0])),
        overrides=dict(spec.get("overrides") or {}),
        variants=dict(spec.get("variants") or {}),
        probe=dict(spec.get("probe") or {}),
        finetune=dict(spec.get("finetune") or {}),
    )
    if methods:
        sweep.variants = {m: {**sweep.variants.get(m, {}), "mixing.method": m} for m in methods}
    if seeds:
        if error := seeds_option_error(seeds):
            raise SweepError(error)
        sweep.seeds = list(seeds)
    if sweep.protocol not in PROTOCOLS:
        raise SweepError(f"{path}: protocol {sweep.protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if not sweep.variants:
        raise SweepError(f"{path}: no variants (add a `variants:` mapping or pass --methods)")
    if not sweep.config.is_file():
        raise SweepError(f"{path}: base config {sweep.config} does not exist")
    places = {"overrides": sweep.overrides, "probe": sweep.probe, "finetune": sweep.finetune,
              **{f"variant {name}": overrides or {} for name, overrides in sweep.variants.items()}}
    for where, overrides in places.items():
        if "seed" in overrides:
            raise SweepError(f"{path}: {where} sets seed; {SEEDS_RULE}")
    return sweep


def check_spec(path: Path, spec: dict) -> None:
    """SweepError for a sweep file of the wrong shape: each key's type, seeds as distinct integers >= 0,
    names that are folder names, transfer-stage keys only in a coarse_to_fine sweep."""
    if not isinstance(spec.get("config"), str):
        config = spec.get("config")
        raise SweepError(f"{path}: config: expected the path of a training config, got {config!r}")
    seeds = spec.get("seeds", [0])
    if not is_seed_list(seeds):
        raise SweepError(f"{path}: seeds: expected a non-empty list of distinct integers >= 0, got {seeds!r}")
    for key in ("overrides", "probe", "finetune"):
        if not isinstance(spec.get(key) or {}, dict):
            raise SweepError(f"{path}: {key}: expected a mapping of KEY: VALUE, got {spec[key]!r}")
    variants = spec.get("variants") or {}
    if not isinstance(variants, dict) or not all(isinstance(v or {}, dict) for v in variants.values()):
        raise SweepError(f"{path}: variants: expected a mapping of name -> {{KEY: VALUE}}, got {variants!r}")
    name = spec.get("name", Path(path).stem)
    check_folder_name(f"{path}: name {name!r}", name)
    for name in variants:
        check_folder_name(f"{path}: variant {name!r}", name)
    if spec.get("protocol", "train") == "train" and (spec.get("probe") or spec.get("finetune")):
        raise SweepError(f"{path}: probe: and finetune: are stages of a coarse_to_fine sweep (protocol: "
                         "coarse_to_fine); a train sweep would ignore them")


def is_folder_name(name: object) -> bool:
    """Whether ``name`` is one folder's name (a sweep's, variant's or setting's runs stay in their folder)."""
    text = str(name)
    return isinstance(name, (str, int)) and bool(re.fullmatch(r"[\w.+=-]+", text)) and text not in (".", "..")


def is_seed_list(seeds: object) -> bool:
    """Whether ``seeds`` is a non-empty list of distinct integers >= 0 (a seed twice is one run folder
    trained twice, and one run counted twice in a table)."""
    integers = isinstance(seeds, list) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    return integers and bool(seeds) and len(set(seeds)) == len(seeds)


def seeds_option_error(seeds: list[int]) -> str | None:
    """The one-line error for a ``--seeds`` list that is not distinct integers >= 0, else None."""
    if is_seed_list(list(seeds)):
        return None
    return f"--seeds {' '.join(map(str, seeds))}: expected distinct integers >= 0"


def check_folder_name(what: str, name: object) -> None:
    if not is_folder_name(name):
        raise SweepError(f"{what}: expected a folder name (letters, digits, . _ + = -)")


def plan_runs(sweep: Sweep, runs_dir: Path) -> list[Run]:
    """Every run of the sweep, in an order where a run comes after the one it waits for."""
    runs = []
    # Seed-major order: a sweep stopped early has every variant at the first seeds.
    for seed in sweep.seeds:
        for variant, variant_overrides in sweep.variants.items():
            base = {**sweep.overrides, **(variant_overrides or {}), "seed": seed}
            folder = runs_dir / sweep.name / variant / f"seed{seed}"
            if sweep.protocol == "train":
                runs.append(Run(folder, base, label=f"{variant}/seed{seed}"))
                continue
            label = f"{variant}/seed{seed}"
            coarse = {**base, "data.labels": "coarse"}
            pretrain = Run(folder / "pretrain", coarse, label=label)
            transfer = {
                "seed": seed,
                **sweep.overrides,
                "data.labels": "fine",
                "mixing.method": "ce",
                "model.init_from": str(folder / "pretrain"),
            }
            stages = {
                "probe": {**transfer, "train.freeze_backbone": True, **sweep.probe},
                "finetune": {**transfer, **sweep.finetune},
            }
            runs.append(pretrain)
            runs += [Run(folder / stage, stages[stage], after=pretrain, label=f"{label}/{stage}")
                     for stage in TRANSFER_STAGES if stage in sweep.transfer_stages]
    return runs


def check_configs(sweep: Sweep, runs: list[Run]) -> None:
    """Validate every run's config (no data loaded), so that a typo fails now, not hours into the sweep.

    A transfer stage is checked without its ``model.init_from``: its pre-training does not exist yet.
    """
    for run in runs:
        overrides = {k: v for k, v in run.overrides.items() if run.after is None or k != "model.init_from"}
        try:
            load_config(sweep.config, override_args(overrides))
        except ConfigError as err:
            raise SweepError(f"{run.label}: {err}") from None


def override_args(overrides: dict) -> list[str]:
    """Overrides as `key=value` command-line words, values written as YAML."""
    words = []
    for key, value in overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        words.append(f"{key}={text.removesuffix('...').strip()}")
    return words


def is_finished(run_dir: Path) -> bool:
    """Whether the run trained all its epochs: a run stopped early (`train.stop_after_epochs`) also
    leaves a summary.json, with ``finished`` false, and must be resumed rather than reused."""
    summary_file = run_dir / "summary.json"
    return summary_file.is_file() and json.loads(summary_file.read_text()).get("finished") is not False


def resolved_config(config: Path, run: Run) -> dict:
    """The resolved config (nested dict) that the run's `ammix train` command would use."""
    return config_from_dict(apply_overrides(read_yaml(config), override_args(run.overrides))).to_dict()


def saved_config_changes(run_dir: Path, wanted: dict) -> list[str]:
    """How the config a run folder was made with (its config.yaml) differs from ``wanted`` (a resolved
    config), by the rule ``--resume`` applies; ``[]`` for a folder without config.yaml. The saved
    config goes through the schema first, so keys added to it since (at their defaults) are no change.
    """
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return []
    try:
        made = config_from_dict(read_yaml(saved)).to_dict()
    except ConfigError as err:
        return [f"its config.yaml is no longer valid: {err}"]
    return config_changes(made, wanted)


def recorded_mixer_changes(summary: dict, wanted: dict) -> list[str]:
    """How the mixer a finished run recorded (its summary.json's ``mixer``, every option as built)
    differs from the one ``wanted`` (a resolved config) builds now: a default that changed since the
    run was made, which its config.yaml (the options given, not their defaults) cannot show. Only the
    options recorded and still known are compared; ``[]`` for a run made before the record existed."""
    recorded = summary.get("mixer")
    if not recorded:
        return []
    cfg = config_from_dict(wanted)
    num_classes = int(recorded.get("num_classes", 2))
    mixer = build_mixer(cfg.mixing.method, num_classes, class_counts=torch.ones(num_classes),
                        **mixer_extras(cfg))
    return mixer_changes(recorded, mixer_record(cfg.mixing.method, mixer))


def recorded_probe_changes(summary: dict, wanted: dict) -> list[str]:
    """How the L-BFGS probe a finished run recorded (its summary.json's ``probe_fit``) differs from
    the one the probe fits now (``ammix.engine.probe.FIT``); ``[]`` for a run without an L-BFGS probe
    or not finished (``summary`` empty)."""
    if config_from_dict(wanted).train.probe != "lbfgs" or not summary:
        return []
    recorded = summary.get("probe_fit", "on raw features")
    if recorded == PROBE_FIT:
        return []
    return [f"its L-BFGS probe was fitted {recorded}, the probe now {PROBE_FIT}"]


def more_runs(runs: list) -> str:
    """The suffix naming how many runs an error leaves unnamed after its first one."""
    return f" (and {len(runs) - 1} more run(s))" if len(runs) > 1 else ""


def other_config(planned: list[tuple[Path, dict]]) -> str | None:
    """Why a finished or started run folder of ``planned`` ((run_dir, resolved config) pairs) cannot be
    reused: it was made with another config, and reusing it would report the old config's numbers under
    the new one's name. ``None`` when every folder can be reused."""
    mismatched = []
    for run_dir, wanted in planned:
        if is_finished(run_dir) or (run_dir / "last.pt").is_file():
            summary_file = run_dir / "summary.json"
            summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
            changes = (saved_config_changes(run_dir, wanted) or recorded_mixer_changes(summary, wanted)
                       or recorded_probe_changes(summary, wanted))
            if changes:
                mismatched.append((run_dir, changes))
    if not mismatched:
        return None
    run_dir, changes = mismatched[0]
    return f"{run_dir} was made with another config ({'; '.join(changes)}){more_runs(mismatched)}"


def check_reused_runs(sweep: Sweep, runs: list[Run]) -> None:
    """Refuse (``SweepError``) to skip or resume a run whose folder was made with another config."""
    reason = other_config([(run.run_dir, resolved_config(sweep.config, run)) for run in runs])
    if reason:
        raise SweepError(
            f"{reason}; give this sweep its own folder with --name NAME, or delete the old run folders to "
            "run them again"
        )


def upstream_reruns(run: Run) -> bool:
    """A transfer stage not built on its pre-training as it stands: the pre-training is not finished
    (deleted or stopped, to run again), or its checkpoint is not the one the stage started from. Such a
    stage is neither reused nor resumed but run again from the start. Decided before any run starts:
    once the new pre-training has finished, only the checkpoints can tell."""
    if run.after is None:
        return False
    if not is_finished(run.after.run_dir):
        return True
    started_from = recorded_init(run.run_dir)
    pretrained = run.after.run_dir / "last.pt"
    return started_from is not None and pretrained.is_file() and started_from != file_sha256(pretrained)


def recorded_init(run_dir: Path) -> str | None:
    """The sha256 of the checkpoint a run's backbone started from (``model.init_from``), as its last.pt
    records it (what a resume continues), else its summary.json; None when neither does."""
    if (run_dir / "last.pt").is_file():
        with contextlib.suppress(CheckpointError):
            return load_checkpoint(run_dir / "last.pt").get("init_from_sha256")
    summary = run_dir / "summary.json"
    return json.loads(summary.read_text()).get("init_from_sha256") if summary.is_file() else None


def train_command(config: Path, run: Run, fresh: bool = False, eager: bool = False) -> list[str]:
    """The `ammix train` command of a run: resume when it has a checkpoint, unless `fresh` (its
    pre-training ran again: see ``upstream_reruns``), else start it; `eager`: without the CUDA graph
    (after its capture failed)."""
    resumable = (run.run_dir / "last.pt").is_file() and not fresh
    resume = ["--resume"] if resumable else ["--fresh"]
    overrides = override_args(run.overrides) + (["train.cuda_graph=off"] if eager else [])
    return [sys.executable, "-m", "ammix", "train", str(config), *overrides,
            "--run-dir", str(run.run_dir), *resume]


def gpu_slots(gpus: str | None, jobs: int) -> list[str | None]:
    """The run slots: one per entry of the comma-separated GPU ids `gpus` (an id repeated is that many
    runs at a time on that GPU: ``0,0,0,0`` packs four), else `jobs` slots without a GPU assignment."""
    if not gpus:
        return [None] * jobs
    ids = [g.strip() for g in gpus.split(",")]
    if not all(g.isdigit() for g in ids):
        raise SweepError(f"--gpus {gpus!r}: expected comma-separated GPU ids such as 0,0,1,1")
    return ids


class RunProcesses:
    """The sweep's running `ammix train` processes, so that they stop with the sweep: a sweep ended by
    SIGTERM (`kill`, a scheduler's cancel) would otherwise leave its runs going on unwatched (a sweep
    started again finds their folders in use), and one sent SIGINT alone would wait for them to end."""

    def __init__(self) -> None:
        self.stopping = False
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def call(self, command: list[str], **popen_args) -> int:
        """``subprocess.call``, stoppable by :meth:`stop`; a call after the stop starts nothing."""
        with self._lock:
            if self.stopping:
                return -signal.SIGTERM
            proc = subprocess.Popen(command, **popen_args)
            self._running.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._running.discard(proc)

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            for proc in self._running:
                proc.terminate()

    @contextlib.contextmanager
    def stopped_by_signals(self):
        """While the block runs (in the main thread), SIGTERM or SIGINT stops the runs, then ends the
        sweep (``SystemExit``, 128 + the signal); the runs resume from their last checkpoint when the
        sweep starts again."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum, frame):
            self.stop()
            raise SystemExit(128 + signum)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_sweep(sweep: Sweep, runs_dir: Path, jobs: int = 1, gpus: list[str] | None = None) -> int:
    """Run the sweep's unfinished runs, `jobs` at a time, or one per entry of `gpus` (GPU ids, repeated
    to pack several runs onto one GPU), each run seeing only its GPU (CUDA_VISIBLE_DEVICES).

    Each run's output goes to its folder's `train.log`; a finished run gets its collapse metrics
    (`analysis.json`, see `ammix.experiments.analyze`). Returns the number of failed runs.
    """
    runs = plan_runs(sweep, runs_dir)
    rerun = {run.run_dir for run in runs if upstream_reruns(run)}
    todo = [run for run in runs if not is_finished(run.run_dir) or run.run_dir in rerun]
    slots = list(gpus) if gpus else [None] * jobs
    print(f"sweep {sweep.name}: {len(runs)} runs, {len(runs) - len(todo)} finished, {len(todo)} to run "
          f"({len(slots)} at a time) under {runs_dir / sweep.name}", flush=True)
    # A sweep stopped between a run's end and its analysis left a finished run without metrics.
    unanalysed = [run for run in runs if is_finished(run.run_dir) and (run.run_dir / "last.pt").is_file()
                  and not (run.run_dir / "analysis.json").is_file()]
    for run in unanalysed:
        print(f"  {run.label}: finished earlier, analysing", flush=True)
        analyze_run(run.run_dir)
    free = list(range(len(slots)))  # a pool thread takes a free slot: there are as many threads as slots
    failed: list[str] = []
    processes = RunProcesses()

    def launch(run: Run) -> bool:
        if run.after is not None and not is_finished(run.after.run_dir):
            failed.append(f"{run.label} (its pre-training did not finish)")
            return False
        slot = free.pop()
        env = dict(os.environ)
        if slots[slot] is not None:
            env["CUDA_VISIBLE_DEVICES"] = slots[slot]
        run.run_dir.mkdir(parents=True, exist_ok=True)
        start = time.time()
        with open(run.run_dir / TRAIN_LOG, "a") as log:
            command = train_command(sweep.config, run, fresh=run.run_dir in rerun)
            code = processes.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            if code == CAPTURE_FAILED_EXIT and not processes.stopping:  # the same run, in a new process
                print(f"  {run.label}: its CUDA graph capture failed; again with eager steps "
                      f"(train.cuda_graph=off)", flush=True)
                # Not fresh again: the first try started the run over, so its checkpoint is wanted.
                command = train_command(sweep.config, run, eager=True)
                code = processes.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        free.append(slot)
        if processes.stopping and code != 0:
            resumes = ("resumes from its last checkpoint" if (run.run_dir / "last.pt").is_file()
                       else "no checkpoint yet: starts again")
            print(f"  {run.label}: stopped with the sweep ({resumes})", flush=True)
            return False
        finished = code == 0 and is_finished(run.run_dir)
        status = ("done" if finished else "stopped early (train.stop_after_epochs; the next start resumes it)"
                  if code == 0 else f"FAILED (exit {code}, see {run.run_dir / TRAIN_LOG})")
        print(f"  {run.label}: {status} in {time.time() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(run.label)
        # A run that ended as the sweep was stopped is analysed at the next start, not before the exit.
        elif finished and not processes.stopping and not (run.run_dir / "analysis.json").is_file():
            analyze_run(run.run_dir)
        return code == 0

    # One at a time, the planned order: each (variant, seed) finishes its stages before the next starts,
    # so a sweep stopped early leaves whole pipelines. Several at a time: pre-training runs first, the
    # transfer stages that wait on them in a second wave.
    pretrainings = [run for run in todo if run.after is None]
    waves = [todo] if len(slots) == 1 else [pretrainings, [run for run in todo if run.after is not None]]
    with processes.stopped_by_signals():
        for wave in waves:
            with ThreadPoolExecutor(max_workers=len(slots)) as pool:
                list(pool.map(launch, wave))
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
    return len(failed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="a sweep file, or a training config to sweep over --methods")
    parser.add_argument("--methods", nargs="+", help="variants, one per mixing method (replaces the file's)")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants of the file")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds (replaces the file's)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run folders go")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time on this machine (default: 1)")
    parser.add_argument("--gpus", help="comma-separated GPU ids, one run at a time per entry; repeat an id "
                        "to pack runs onto one GPU (0,0,0,0: four on GPU 0); replaces --jobs")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="overrides for every run (e.g. data.imbalance_factor=50), below the variants' "
                        "and stages' own; STAGE:KEY=VALUE for one stage of a coarse_to_fine sweep "
                        "(e.g. finetune:optim.lr=0.1); may be repeated")
    parser.add_argument("--name", help="the sweep's folder name (default: the file's name key)")
    parser.add_argument("--stages", nargs="+", choices=TRANSFER_STAGES,
                        help="coarse_to_fine: the stages to run after each pre-training (default: both); "
                        "e.g. --stages probe to refit the probes without fine-tuning again")
    parser.add_argument("--dry-run", action="store_true",
                        help="check every run's config, print the commands and exit")


def sweep_from_args(args: argparse.Namespace) -> Sweep:
    """The sweep that the command line asks for; ``SweepError`` for a mistake in it."""
    sweep = load_sweep(args.spec, args.methods, args.seeds)
    given = [set_override(sweep, item) for item in args.set]
    if args.name:
        check_folder_name(f"--name {args.name!r}", args.name)
    sweep.name = args.name or sweep.name
    if args.only:
        unknown = [v for v in args.only if v not in sweep.variants]
        if unknown:
            raise SweepError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(sweep.variants)}")
        sweep.variants = {v: sweep.variants[v] for v in args.only}
    if args.stages:
        if sweep.protocol != "coarse_to_fine":
            raise SweepError(f"--stages: only for a coarse_to_fine sweep ({args.spec} is {sweep.protocol})")
        sweep.transfer_stages = tuple(args.stages)
    if args.jobs < 1:
        raise SweepError("--jobs must be >= 1")
    for stage, key in dict.fromkeys(given):  # a key given twice gets one note
        note = None if stage else shadowed_note(sweep, key, {s for s, k in given if s and k == key})
        if note:
            print(f"ammix sweep: note: {note}", file=sys.stderr)
    return sweep


def set_override(sweep: Sweep, item: str) -> tuple[str, str]:
    """Apply one ``--set`` word: ``KEY=VALUE`` for every run, ``STAGE:KEY=VALUE`` for one transfer stage
    of a coarse_to_fine sweep. Returns (STAGE or "", KEY)."""
    key, sep, value = item.partition("=")
    if not sep:
        raise SweepError(f"--set expects KEY=VALUE or STAGE:KEY=VALUE, got {item!r}")
    stage, _, key = key.rpartition(":")
    if key == "seed":
        raise SweepError(f"--set {item!r}: {SEEDS_RULE}")
    try:
        value = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise SweepError(f"--set {item!r}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not stage:
        sweep.overrides[key] = value
        return "", key
    if sweep.protocol != "coarse_to_fine" or stage not in TRANSFER_STAGES:
        raise SweepError(f"--set {item!r}: a stage prefix is one of {', '.join(TRANSFER_STAGES)}, "
                         "for a coarse_to_fine sweep")
    getattr(sweep, stage)[key] = value
    return stage, key


def sets(overrides: dict, key: str) -> bool:
    """Whether ``overrides`` sets ``key`` itself or a whole section holding it."""
    return any(key == k or key.startswith(f"{k}.") for k in overrides)


def shadowed_note(sweep: Sweep, key: str, set_by_stage: set[str]) -> str | None:
    """Which runs a ``--set KEY`` for every run does not reach: a variant or a transfer stage of the
    sweep file that sets KEY itself wins over it, unless ``--set STAGE:KEY`` set it for that stage too
    (``set_by_stage``). ``None`` when it reaches every run."""
    variants = [f"variant {name}" for name, overrides in sweep.variants.items() if sets(overrides or {}, key)]
    stages = [stage for stage in sweep.transfer_stages if sweep.protocol == "coarse_to_fine"
              and stage not in set_by_stage and sets(getattr(sweep, stage), key)]
    if not variants and not stages:
        return None
    hint = "".join(f"; --set {stage}:{key}=VALUE sets it for the {stage} stage" for stage in stages)
    where = ", ".join([*variants, *(f"the {stage} stage" for stage in stages)])
    return f"--set {key} does not reach {where}, which the sweep file sets itself{hint}"


def run(args: argparse.Namespace) -> int:
    try:
        sweep = sweep_from_args(args)
        runs = plan_runs(sweep, args.runs_dir)
        check_configs(sweep, runs)
        check_reused_runs(sweep, runs)
    except SweepError as err:
        print(f"ammix sweep: {err}", file=sys.stderr)
        return 2
    try:
        slots = gpu_slots(args.gpus, args.jobs)
    except SweepError as err:
        print(f"ammix sweep: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(f"{len(slots)} runs at a time"
              + (f", CUDA_VISIBLE_DEVICES from a free slot of {','.join(slots)}" if args.gpus else ""))
        for planned in runs:
            done, again = is_finished(planned.run_dir), upstream_reruns(planned)
            state = ("to run again (built on another pre-training)" if done and again
                     else "finished" if done else "to run")
            print(f"[{state}] " + " ".join(train_command(sweep.config, planned, fresh=again)))
        return 0
    return 1 if run_sweep(sweep, args.runs_dir, gpus=slots) else 0
