"""Schedules of AM-mixup's interpolation ratio lam: from 1.0 at the start towards an end value."""

from __future__ import annotations

import math

SCHEDULES = ("exp", "linear", "cosine", "constant")


def midpoint_ratio(t: float, schedule: str, gamma: float, lam_end: float, total: float | None) -> float:
    """The interpolation ratio lam at training time t (in epochs, fractional allowed).

    - ``exp`` (the paper's asymptotic decay): ``lam_end + (1 - lam_end) * gamma ** t``; with the default
      ``lam_end = 0.5`` this is ``0.5 + 0.5 * gamma ** t``: 1.0 at t = 0, strictly decreasing, above
      0.5 for every t and tending to 0.5.
    - ``linear`` / ``cosine``: from 1.0 at t = 0 to ``lam_end`` at t = ``total``, then held.
    - ``constant``: ``lam_end`` throughout (``lam_end = 1`` is the no-interpolation control).
    """
    if schedule == "exp":
        return lam_end + (1.0 - lam_end) * gamma**t
    if schedule == "constant":
        return lam_end
    frac = min(max(t / total, 0.0), 1.0)
    if schedule == "linear":
        return 1.0 - (1.0 - lam_end) * frac
    if schedule == "cosine":
        return lam_end + (1.0 - lam_end) * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")


def gamma_for(lam_at_total: float, lam_end: float, total: float) -> float:
    """The exp schedule's gamma such that lam(total) equals `lam_at_total`.

    This keeps a config's meaning when the training length changes: gamma alone does not (0.9 over 30
    epochs ends at lam 0.52, over 200 epochs at 0.5000).
    """
    return ((lam_at_total - lam_end) / (1.0 - lam_end)) ** (1.0 / total)
