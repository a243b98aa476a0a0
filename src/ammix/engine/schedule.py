"""Learning-rate schedules as pure functions of the step: nothing to save but the step count."""

from __future__ import annotations

import math

from .config import ScheduleConfig


def lr_factor(step: int, steps_per_epoch: int, epochs: int, schedule: ScheduleConfig) -> float:
    """The factor on the peak learning rate at optimizer step ``step`` (0-based, counted over the run).

    - linear warm-up over ``warmup_epochs``, applied per step: step ``i`` of the warm-up gets
      ``(i + 1) / warmup_steps``, so the first step is not wasted and the last reaches the peak;
    - ``multistep``: the absolute factor ``factors[k]`` from epoch ``milestones[k]`` on (the long-tailed
      recipe: ``milestones=[160, 180]``, ``factors=[0.01, 0.0001]``);
    - ``cosine``: from 1 after the warm-up down to ``final_factor`` at the end of training;
    - ``constant``: 1.
    """
    t = step / steps_per_epoch  # fractional epoch at the start of this step
    warmup_steps = round(schedule.warmup_epochs * steps_per_epoch)
    if schedule.name == "multistep":
        factor = 1.0
        for milestone, f in zip(schedule.milestones, schedule.factors, strict=True):
            if t >= milestone:
                factor = f
    elif schedule.name == "cosine":
        span = max(epochs * steps_per_epoch - warmup_steps, 1)
        progress = min(max((step - warmup_steps) / span, 0.0), 1.0)
        f_end = schedule.final_factor
        factor = f_end + (1.0 - f_end) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    if step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor
