"""Shared by the end-to-end tests: the smoke config and overrides that shrink it to seconds."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def tiny(epochs: int) -> list[str]:
    """Overrides of the smoke config for a run of a few seconds."""
    return [
        "data.samples_per_class=16",
        "data.test_samples_per_class=8",
        "data.image_size=8",
        "data.batch_size=16",
        "model.width=4",
        f"train.epochs={epochs}",
    ]
