"""Every config, sweep file and toy file under configs/ validates, variant by variant, without data."""

import copy
from pathlib import Path

import pytest
import yaml

from ammix.engine import apply_overrides, config_from_dict, load_config, read_yaml
from ammix.experiments.sweep import load_sweep, override_args, plan_runs, with_method_section
from ammix.experiments.toy import load_toy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SWEEPS = sorted((CONFIGS / "sweeps").glob("*.yaml"))
TOYS = sorted(p for p in CONFIGS.glob("*.yaml") if "variants" in yaml.safe_load(p.read_text()))
TRAIN = sorted(p for p in CONFIGS.glob("*.yaml") if p not in TOYS)


@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.name)
def test_training_config_validates(path):
    load_config(path)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_run_of_a_sweep_validates(path, tmp_path):
    sweep = load_sweep(path)
    for run in plan_runs(sweep, tmp_path):
        overrides = dict(run.overrides)
        overrides.pop("model.init_from", None)  # the pre-trained run does not exist here
        config_from_dict(apply_overrides(read_yaml(sweep.config), override_args(overrides)))


@pytest.mark.parametrize("path", TOYS, ids=lambda p: p.name)
def test_every_run_of_a_toy_file_validates(path):
    spec = load_toy(path)
    for setting in spec["settings"].values():
        for variant in spec["variants"].values():
            words = override_args(with_method_section({**setting, **variant}))
            config_from_dict(apply_overrides(copy.deepcopy(spec["config"]), words))
