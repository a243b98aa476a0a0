"""The toy protocol (the paper's Figures 2-5): 2-D features of each method, side by side.

A toy file holds an inline base training config (a model with a 2-D feature), the methods to compare
and the settings to run them in::

    name: toy-mini-cifar
    config: {data: {dataset: mini-cifar, ...}, model: {name: small_cnn, feature_dim: 2}, ...}
    variants: {ce: {mixing.method: ce}, am_mixup: {mixing.method: am_mixup, mixing.gamma: 0.9}}
    settings:                       # name -> overrides
      balanced: {}
      long-tailed: {data.imbalance_factor: 10}
      coarse-to-fine: {data.labels: coarse}   # trained on coarse labels, shown by fine class
    quick: {train.epochs: 3}        # overrides of --quick
    seeds: [0, 1, 2]                # optional: each pair once per seed (default: the config's seed)

Each (setting, variant) trains in-process into ``OUT/<setting>/<variant>`` (``.../seed<S>`` with
``seeds``; finished runs are reused, interrupted ones resumed). Each setting gives one figure,
``OUT/<setting>.png`` and ``.pdf`` (the first seed): the test features coloured by class over the
classifier's maximum softmax probability, with alignment, uniformity and neighbour uniformity in each
panel's caption. ``OUT/toy.md`` holds the table (mean ± std over the seeds), with a legend of its
columns; ``OUT/toy.json`` each run's own row (a call on some settings, methods or seeds keeps the
earlier calls' rows of the others). Each run also gets its ``analysis.json``, so that
``ammix report OUT --baseline ce`` gives the seed-paired differences.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from ammix.analysis import collapse_report, feature_map_figure, metric_definition
from ammix.engine import apply_overrides, train
from ammix.engine.checkpoint import atomic_write_bytes
from ammix.engine.config import as_config
from ammix.engine.rundir import CONFIG, holds_run

from .analyze import analyze_run, run_features
from .curves import learning_curve, tail_measures
from .report import SEED_DIR, fixed_decimals
from .sweep import (
    is_finished,
    is_folder_name,
    is_seed_list,
    more_runs,
    other_config,
    override_args,
    seeds_option_error,
)

TOY_KEYS = {"name", "config", "variants", "settings", "quick", "seeds"}
TABLE_METRICS = ("acc", "balanced_acc", "alignment", "uniformity", "neighbour_uniformity", "feature_norm",
                 "margin_ratio", "midpoint_third_class", "tail_range", "tail_drift")


class ToyError(ValueError):
    """A mistake in a toy file or its arguments (one line, no traceback)."""


def load_toy(path: str | Path) -> dict:
    """The toy spec of `path` as a dict, checked for its keys."""
    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ToyError(f"cannot read {path}: {err}") from None
    if not isinstance(spec, dict) or not {"config", "variants", "settings"} <= set(spec):
        raise ToyError(f"{path}: a toy file needs the keys config, variants and settings")
    unknown = set(spec) - TOY_KEYS
    if unknown:
        raise ToyError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(TOY_KEYS)}")
    for key in ("config", "quick"):
        if not isinstance(spec.get(key) or {}, dict):
            raise ToyError(f"{path}: {key}: expected a mapping, got {spec[key]!r}")
    for key in ("settings", "variants"):  # name -> overrides (null: none)
        named = spec[key]
        shaped = isinstance(named, dict) and all(isinstance(v or {}, dict) for v in named.values())
        if not shaped or not named:
            raise ToyError(f"{path}: {key}: expected a non-empty mapping of name -> {{KEY: VALUE}}, "
                           f"got {named!r}")
        bad = [name for name in named if not is_folder_name(name)]
        if bad:
            raise ToyError(f"{path}: {key[:-1]} {bad[0]!r}: expected a folder name "
                           "(letters, digits, . _ + = -)")
    if "seeds" in spec and not is_seed_list(spec["seeds"]):
        raise ToyError(
            f"{path}: seeds: expected a non-empty list of distinct integers >= 0, got {spec['seeds']!r}"
        )
    return spec


def _train_or_reuse(config: dict, run_dir: Path) -> dict:
    if is_finished(run_dir):
        return json.loads((run_dir / "summary.json").read_text())
    return train(config, run_dir, resume=holds_run(run_dir))


def _beside_other_layout(run_dir: Path) -> bool:
    """Whether a run planned in ``run_dir`` would sit beside a run of the same variant in the other
    layout: a seed folder inside a variant folder that holds a run, or the reverse."""
    if SEED_DIR.match(run_dir.name):
        return (run_dir.parent / CONFIG).is_file()
    return run_dir.is_dir() and any(SEED_DIR.match(d.name) and (d / CONFIG).is_file()
                                    for d in run_dir.iterdir())


def run_toy(spec: dict, out_dir: str | Path, overrides: list[str] | None = None, quick: bool = False,
            settings: list[str] | None = None, variants: list[str] | None = None,
            seeds: list[int] | None = None) -> list[dict]:
    """Train every (setting, variant, seed) of `spec`, draw one figure per setting (its first seed);
    returns one row per run. `seeds` (default: the file's ``seeds``, else the config's own seed)."""
    out_dir = Path(out_dir)
    if seeds and (error := seeds_option_error(seeds)):
        raise ToyError(error)
    seeds = list(seeds or spec.get("seeds") or [None])
    # Validate every config before training anything: a typo should not surface after an hour.
    configs = toy_configs(spec, overrides, quick, settings, variants)
    planned = {
        (setting, variant, seed): (
            out_dir / setting / variant / ("" if seed is None else f"seed{seed}"),
            dict(variant_configs[variant], **({} if seed is None else {"seed": seed})),
        )
        for setting, variant_configs in configs.items()
        for variant in variant_configs
        for seed in seeds
    }
    mixed = [d for d, _ in planned.values() if _beside_other_layout(d)]
    if mixed:  # `ammix report OUT` would count one seed twice
        raise ToyError(f"{mixed[0]}: this variant would have runs both in seed folders and without one (a "
                       "toy file without seeds, then --seeds); use another --out, or move the earlier run "
                       "out")
    reason = other_config(list(planned.values()))
    if reason:
        raise ToyError(f"{reason}; use another --out, or delete that folder to run it again")
    # A finished run is reused, but its map is drawn from its checkpoint: a run copied without it (git
    # keeps only the small files) is refused here, not after the runs before it have trained.
    no_weights = [d for d, _ in planned.values() if is_finished(d) and not (d / "last.pt").is_file()]
    if no_weights:
        raise ToyError(
            f"{no_weights[0]} is finished but has no checkpoint last.pt, from which the toy draws its map"
            + more_runs(no_weights)
            + "; restore it, or delete that folder to run it again"
        )
    rows = []
    for setting, variant_configs in configs.items():
        panels, class_names, title = [], None, ""
        for variant, seed in ((v, s) for v in variant_configs for s in seeds):
            run_dir, config = planned[setting, variant, seed]
            print(f"[toy] {setting} / {variant}" + ("" if seed is None else f" / seed {seed}")
                  + f" -> {run_dir}", flush=True)
            start = time.time()
            summary = _train_or_reuse(config, run_dir)
            if not summary.get("finished", True):  # train.stop_after_epochs: its numbers are not the run's
                print(f"[toy] stopped after epoch {summary['epochs_done']}: not in the table or the map; "
                      "the same command resumes it", flush=True)
                continue
            rf = run_features(run_dir)
            if not (run_dir / "analysis.json").is_file():  # so that `ammix report OUT` tabulates the toy
                analyze_run(run_dir, rf)
            shown = rf.fine_labels if rf.fine_labels is not None else rf.labels
            names = rf.test_set.fine_classes if rf.fine_labels is not None else rf.test_set.classes
            # Margins need the classes the head was trained on; a coarse run is shown by fine class.
            metrics = collapse_report(rf.features, shown, head=rf.head if rf.fine_labels is None else None)
            if seed == seeds[0]:
                panels.append((variant, rf.features, shown, rf.logits_of, metrics))
            class_names = names
            changes = " ".join(override_args(spec["settings"][setting] or {}))
            title = f"{rf.test_set.name}, {setting}" + (f" ({changes})" if changes else "")
            last = summary.get("last", {})
            rows.append({"setting": setting, "method": variant, "seed": config["seed"],
                         **({"features_by": "fine classes"} if rf.fine_labels is not None else {}),
                         "acc": last.get("acc"), "balanced_acc": last.get("balanced_acc"), **metrics,
                         **tail_measures(*learning_curve(run_dir)),
                         "wall_time_s": summary.get("wall_time_s"), "seconds": round(time.time() - start, 1)})
        if panels and panels[0][1].shape[1] == 2:
            feature_map_figure(panels, class_names, out_dir / setting, title=title)
    @functools.cache
    def every_config() -> dict:  # built only when earlier rows are there to check
        return toy_configs(spec, overrides, quick)

    def made_as_now(row: dict) -> bool:  # an earlier row's run, still there, made with this call's config
        config = every_config().get(row["setting"], {}).get(row["method"])
        folder = out_dir / row["setting"] / row["method"]
        if (folder / f"seed{row['seed']}").is_dir():
            folder = folder / f"seed{row['seed']}"
        if not is_finished(folder):
            return False  # deleted (to run it again, perhaps with another config), or stopped early
        return config is None or other_config([(folder, dict(config, seed=row["seed"]))]) is None

    table = with_earlier_rows(rows, out_dir / "toy.json", spec, made_as_now)
    # Atomic: calls on different runs of one folder at once (benchmarks/gpu_toy.sh) never read a partial
    # file; a row one of them drops is back when a call over all the runs rewrites the table.
    atomic_write_bytes(out_dir / "toy.md", format_table(table).encode())
    atomic_write_bytes(out_dir / "toy.json", (json.dumps(table, indent=2) + "\n").encode())
    return rows


def with_earlier_rows(rows: list[dict], path: Path, spec: dict,
                      made_as_now: Callable[[dict], bool]) -> list[dict]:
    """``rows`` and, from ``path`` (an earlier call's toy.json), the rows of the runs this call did not
    run, so that a call on some settings, methods or seeds keeps the others in the table; in the
    order of the toy file (settings, then variants, then seeds). An earlier row whose run was made
    with another config than this call's, or whose run is gone or unfinished (``made_as_now`` false: a
    --quick call, other overrides, a folder deleted, a run stopped early) is left out, with a note: one
    table, one experiment."""
    def run_key(row: dict) -> tuple:
        return row["setting"], row["method"], row["seed"]

    ran = {run_key(r) for r in rows}
    earlier = [r for r in (json.loads(path.read_text()) if path.is_file() else []) if run_key(r) not in ran]
    other = [r for r in earlier if not made_as_now(r)]
    if other:
        names = ", ".join("/".join(map(str, run_key(r))) for r in other)
        print(f"[toy] the table leaves out {len(other)} earlier run(s) made with another config, or gone or "
              f"unfinished: {names}", flush=True)
    merged = [r for r in earlier if r not in other] + rows
    settings, variants = list(spec["settings"]), list(spec["variants"])

    def position(row: dict) -> tuple:  # a setting or variant no longer in the file goes last
        return (settings.index(row["setting"]) if row["setting"] in settings else len(settings),
                variants.index(row["method"]) if row["method"] in variants else len(variants),
                row["seed"])

    return sorted(merged, key=position)


def toy_configs(spec: dict, overrides: list[str] | None = None, quick: bool = False,
                settings: list[str] | None = None, variants: list[str] | None = None) -> dict:
    """``{setting: {variant: config}}``: the validated config (a dict) of each chosen pair of `spec`."""
    extra = override_args(spec.get("quick") or {}) if quick else []
    extra += list(overrides or [])
    configs = {}
    for setting, setting_overrides in _choose(spec["settings"], settings, "setting").items():
        configs[setting] = {}
        for variant, variant_overrides in _choose(spec["variants"], variants, "variant").items():
            words = override_args({**(setting_overrides or {}), **(variant_overrides or {})})
            data = apply_overrides(json.loads(json.dumps(spec["config"])), words + extra)
            configs[setting][variant] = as_config(data).to_dict()
    return configs


def format_table(rows: list[dict]) -> str:
    """Markdown table of the toy rows, one line per (setting, method): mean ± sample std over its
    seeds (n), accuracies in % with 1 decimal, the rest with 3 (rounded half up); then one line
    defining each column."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["setting"], row["method"]), []).append(row)
    header = ["setting", "method", "n", *TABLE_METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (setting, method), runs in groups.items():
        cells = [setting, method, str(len(runs))]
        for key in TABLE_METRICS:
            values = [r[key] for r in runs if r.get(key) is not None and not math.isnan(r[key])]
            digits = 1 if "acc" in key else 3
            # a cell over fewer runs than n says how many (e.g. margin_ratio undefined in a run)
            of_n = "" if len(values) == len(runs) else f" [{len(values)}/{len(runs)}]"
            if not values:
                cells.append("—")
            elif len(values) == 1:
                cells.append(f"{fixed_decimals(values[0], digits)}{of_n}")
            else:
                mean, std = statistics.mean(values), statistics.stdev(values)
                cells.append(f"{fixed_decimals(mean, digits)} ± {fixed_decimals(std, digits)}{of_n}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "n: runs (seeds) averaged, mean ± sample std; [k/n]: over the k runs where the value is "
              "defined."]
    lines += [f"{key}: {metric_definition(key)}" for key in TABLE_METRICS]
    by_fine = sorted({r["setting"] for r in rows if r.get("features_by") == "fine classes"})
    if by_fine:
        lines.append(f"{', '.join(by_fine)}: trained on coarse labels; the accuracies are over the coarse "
                     "classes, the feature metrics over the fine ones (ammix report: analysis.fine_*); no "
                     "margins or midpoints (they need the head's classes)")
    return "\n".join(lines) + "\n"


def _choose(options: dict, names: list[str] | None, what: str) -> dict:
    if not names:
        return options
    unknown = [n for n in names if n not in options]
    if unknown:
        raise ToyError(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(options)}")
    return {n: options[n] for n in names}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="a toy file, e.g. configs/toy-mini-cifar-cpu.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of every run's config")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/<toy name>)")
    parser.add_argument("--settings", nargs="+", help="only these settings")
    parser.add_argument("--methods", nargs="+", help="only these variants")
    parser.add_argument("--quick", action="store_true", help="apply the file's quick overrides")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds (replaces the file's seeds)")


def run(args: argparse.Namespace) -> int:
    try:
        spec = load_toy(args.spec)
        out = args.out or Path("runs") / spec.get("name", args.spec.stem)
        rows = run_toy(spec, out, args.overrides, args.quick, args.settings, args.methods, args.seeds)
    except ToyError as err:
        print(f"ammix toy: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(f"figures and tables in {out}")
    return 0
