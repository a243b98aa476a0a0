"""ammix: Asymptotic Midpoint Mixup and baselines for studying feature collapse."""

__version__ = "0.1.0"
