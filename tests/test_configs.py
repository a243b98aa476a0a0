"""Every config, sweep file and toy file under configs/ validates, variant by variant, without data;
the training configs run AM-mixup with its measured defaults unless they say why not."""

import inspect
from pathlib import Path

import pytest
import yaml

from ammix.engine import load_config
from ammix.experiments.sweep import check_configs, load_sweep, plan_runs
from ammix.experiments.toy import load_toy, toy_configs
from ammix.mixing import DEFAULT_LAM_AT_TOTAL, AsymptoticMidpointMixup

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SWEEPS = sorted((CONFIGS / "sweeps").glob("*.yaml"))
TOYS = sorted(p for p in CONFIGS.glob("*.yaml") if "variants" in yaml.safe_load(p.read_text()))
TRAIN = sorted(p for p in CONFIGS.glob("*.yaml") if p not in TOYS)
# The choices the converged ablation made (docs/method.md), and the training configs that keep another
# on purpose, each saying so in its own comments.
MEASURED_DEFAULTS = ("pairing", "clean_weight", "label", "schedule", "lam_end", "lam_at_total", "gamma")
KEEPS_OTHER_CHOICES = {"lt-fashion-mnist-cpu.yaml"}  # the long-tailed table as run before the ablation


@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.name)
def test_training_config_validates(path):
    load_config(path)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_run_of_a_sweep_validates(path, tmp_path):
    sweep = load_sweep(path)
    check_configs(sweep, plan_runs(sweep, tmp_path))


@pytest.mark.parametrize("path", TOYS, ids=lambda p: p.name)
def test_every_run_of_a_toy_file_validates(path):
    toy_configs(load_toy(path))


def _other_choices(path: Path) -> list[str]:
    """The measured choices that the training config at ``path`` sets otherwise for AM-mixup."""
    options = load_config(path).mixing.options
    defaults = {name: p.default for name, p in inspect.signature(AsymptoticMidpointMixup).parameters.items()}
    defaults["lam_at_total"] = DEFAULT_LAM_AT_TOTAL  # the signature's None stands for it
    return [name for name in MEASURED_DEFAULTS if options.get(name, defaults[name]) != defaults[name]]


AM_MIXUP_TRAIN = [p for p in TRAIN if load_config(p).mixing.method == "am_mixup"]


@pytest.mark.parametrize("path", [p for p in AM_MIXUP_TRAIN if p.name not in KEEPS_OTHER_CHOICES],
                         ids=lambda p: p.name)
def test_training_config_runs_am_mixup_with_its_measured_defaults(path):
    assert _other_choices(path) == []


def test_the_configs_that_keep_other_choices_do_keep_them():
    assert all(_other_choices(CONFIGS / name) for name in KEEPS_OTHER_CHOICES)


@pytest.mark.parametrize("path", [p for p in SWEEPS if p.name.startswith("ablation-")], ids=lambda p: p.name)
def test_every_ablation_variant_spells_its_pairing_and_clean_weight(path):
    """The 8-epoch CIFAR-10 ablation left both to the defaults: when they became drop and 0.5, its
    `default` and `pairing-drop` became one run, and its redraw control a drop one, without a word."""
    sections = {}
    for name, variant in yaml.safe_load(path.read_text())["variants"].items():
        dotted = {key.removeprefix("mixing."): v for key, v in variant.items() if key.startswith("mixing.")}
        section = {**variant.get("mixing", {}), **dotted}
        if section.get("method") == "am_mixup":
            sections[name] = section
    assert sections
    assert [name for name, s in sections.items() if not {"pairing", "clean_weight"} <= s.keys()] == []
