"""Every config, sweep file and toy file under configs/ validates, variant by variant, without data."""

from pathlib import Path

import pytest
import yaml

from ammix.engine import load_config
from ammix.experiments.sweep import check_configs, load_sweep, plan_runs
from ammix.experiments.toy import load_toy, toy_configs

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
    check_configs(sweep, plan_runs(sweep, tmp_path))


@pytest.mark.parametrize("path", TOYS, ids=lambda p: p.name)
def test_every_run_of_a_toy_file_validates(path):
    toy_configs(load_toy(path))
