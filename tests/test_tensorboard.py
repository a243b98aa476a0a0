"""train.tensorboard end to end: a tiny run, its event file read back."""

from __future__ import annotations

import pytest
from common import SMOKE, tiny

from ammix.engine import load_config, read_metrics, train

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_tensorboard_scalars_per_epoch_and_the_feature_map(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [*tiny(2), "model.feature_dim=2", "train.tensorboard=true", "data.imbalance_factor=2",
                 "mixing.gamma=0.5"]
    train(load_config(SMOKE, overrides), run_dir)
    events = event_accumulator.EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    expected = {"train_loss", "train_acc", "lr", "lam", "test_acc", "balanced_acc", "images_per_s"}
    assert set(tags["scalars"]) == expected
    for record in read_metrics(run_dir):
        for tag in expected:
            (event,) = [e for e in events.Scalars(tag) if e.step == record["epoch"]]
            assert event.value == pytest.approx(record[tag], rel=1e-6)
    assert [e.value for e in events.Scalars("lam")] == pytest.approx([1.0, 0.75])  # gamma 0.5, epochs 0, 1
    (image,) = events.Images("feature_map")
    assert image.step == 2 and image.width > 100 and image.height > 100
