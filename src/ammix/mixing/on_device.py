"""A mixer whose random draws happen on the batch's device: the form a captured CUDA graph replays.

A CUDA graph replays the kernels it recorded, so whatever changes from step to step must live on the
device: ``OnDevice`` draws through the mixer's ``draw_on_device`` (device generator, no host round
trip) and holds AM-mixup's scheduled ratio in a device tensor that ``set_step`` refills before each
replay. The stage a method acts at decides which kernels run, so it is drawn on the host (manifold
mixup's random layer, from the mixer's own generator as in eager mode) and the captured step keeps one
graph per stage (see ``ammix.engine.graphed_step``).
"""

from __future__ import annotations

import torch


class OnDevice:
    """Wraps a mixer: ``set_step(epoch, num_stages)`` on the host before each step, then use it as the
    mixer (``mixed_forward(model, x, y, on_device, epoch)``). Its call ignores ``epoch``: a replayed
    graph runs no Python, so the step's ratio and site are those ``set_step`` set."""

    def __init__(self, mixer, device: torch.device):
        if not mixer.capturable:
            name = type(mixer).__name__
            raise ValueError(f"{name}: not capturable (the drop pairing before the feature site)")
        self.mixer = mixer
        self.clean_weight = mixer.clean_weight
        self.lam = torch.ones((), dtype=torch.float64, device=device)  # AM-mixup's ratio of this step
        self.site: int | None = None  # set by set_step

    def set_step(self, epoch: float, num_stages: int) -> int:
        """Refill the scheduled ratio, draw the stage to act at (host); returns that stage."""
        if hasattr(self.mixer, "lam"):
            self.lam.fill_(self.mixer.lam(epoch))
        self.site = self.mixer.choose_stage(num_stages)
        return self.site

    def choose_stage(self, num_stages: int) -> int:
        if self.site is None:  # else lam 1 at the input: plain cross-entropy without a word
            raise RuntimeError("OnDevice: call set_step(epoch, num_stages) before each step")
        return self.site

    def __call__(self, x, labels, epoch: float = 0.0):
        return self.mixer.mix(x, labels, *self.mixer.draw_on_device(x, labels, self.lam))
