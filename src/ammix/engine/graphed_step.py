"""The training step captured once as a CUDA graph and replayed (``train.cuda_graph``).

ResNet-32 at batch 128 takes milliseconds a step on an H100/H200 and most of that is the launch of a
few hundred small kernels (docs/benchmarks.md). A CUDA graph launches the whole recorded step at once:
forward with the mixer at its site, loss, backward and optimizer step. It is ``torch.cuda.graph``
rather than ``torch.compile(mode="reduce-overhead")``: the step stays the same eager ``train_step``
(one implementation, exact on CPU, no compile time in each of many short runs), and what is captured
is explicit.

What changes per step lives on the device, filled before each replay: the batch is copied into static
buffers, the learning rate is a device tensor in the optimizer's groups (fused SGD / AdamW read it
there), AM-mixup's ratio a device tensor of ``OnDevice``, and every random draw (mixup's Beta ratio,
permutations, CutMix's box, AM-mixup's partners) is made inside the graph from the device's default
generator, whose offset advances at each replay. Manifold mixup's random layer decides which kernels
run, so it is drawn on the host and each layer gets its own graph. The first steps of each graph run
eagerly on a side stream (warm-up: cuDNN algorithm choice, autograd's lazy state, the optimizer's
buffers); they are real training steps. A batch of another size (the smaller last batch of an epoch)
takes the same step eagerly.

Python values read inside the step are frozen at capture: ``train_step`` passes ``epoch`` on, but
nothing captured may depend on it (the mixer's ratio comes from ``OnDevice.lam``). A loss whose
weights change with the epoch must hold them in a device tensor refilled before each replay.

A capture that fails stops the run with ``CaptureFailed`` (one line, naming ``train.cuda_graph=off``;
exit status ``CAPTURE_FAILED_EXIT``, on which ``ammix sweep`` runs it again with eager steps).

Not capturable, and run eagerly with a one-line notice: several processes (DDP), ``train.compile``,
fp16 loss scaling (its inf check synchronises), AM-mixup's ``drop`` pairing at a site before the
feature (its dropped rows would still enter later layers' batch statistics; at the feature, the default,
the captured form keeps them out of the loss instead of out of the batch).
"""

from __future__ import annotations

import collections
import contextlib
import sys

import torch

from ammix.mixing import OnDevice

from .config import ConfigError

WARMUP_STEPS = 3  # eager steps per graph before its capture (PyTorch's examples use 3; DDP needs 11)
CAPTURE_FAILED_EXIT = 3  # `ammix train`'s exit status after a failed capture: a sweep reruns it eagerly


class CaptureFailed(RuntimeError):
    """The step could not be recorded as a CUDA graph (an operation the capture does not allow)."""


def check_cuda_graph(mode: str, device: torch.device) -> None:
    """``train.cuda_graph = on`` needs CUDA: a ``ConfigError`` elsewhere, before any work."""
    if mode == "on" and device.type != "cuda":
        raise ConfigError(
            f"train.cuda_graph = 'on': needs CUDA (device is {device.type}); allowed here: auto, off"
        )


def use_cuda_graph(mode: str, device: torch.device, *, distributed: bool, compiled: bool, fp16: bool,
                   mixer, epoch_dependent_loss: bool = False) -> bool:
    """Whether this run captures its step; a capturable-in-principle run that cannot says why, once."""
    if mode == "off" or device.type != "cuda":
        return False
    blocker = (
        "several processes (DDP)" if distributed
        else "train.compile" if compiled
        else "fp16 loss scaling" if fp16
        else "AM-mixup's drop pairing before the feature site" if not mixer.capturable
        else "a deferred re-weighting (loss.drw_epoch: its weights would be frozen at capture)"
        if epoch_dependent_loss
        else None
    )
    if blocker is not None:
        print(f"ammix: train.cuda_graph = {mode}: {blocker} cannot be captured; eager steps", file=sys.stderr)
        return False
    return True


def graph_autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast without its weight-cast cache, which must not outlive a captured region."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


def make_capturable(optimizer: torch.optim.Optimizer, lr: torch.Tensor) -> None:
    """Fused updates reading the learning rate from the device tensor `lr`, with no host round trip.

    Set on the groups after any ``load_state_dict`` (a checkpoint brings its own group flags); Adam's
    step counters move to the parameters' device as the fused kernel expects, and its groups say
    ``capturable`` (its ``step`` refuses a capture otherwise; SGD has no such flag)."""
    for group in optimizer.param_groups:
        group.update(lr=lr, fused=True, foreach=False)
        if "capturable" in group:
            group["capturable"] = True
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(p.device, torch.float32)


class CapturedStep:
    """``step(x, y, epoch, lr) -> (loss, MixedOutput)`` through CUDA graphs (``capture=False``, the default
    off CUDA: the same static-buffer step run eagerly, which is how the CPU tests check it).

    ``run(x, y, mixer, epoch)``: the eager step (``train_step`` with the run's settings) called with
    ``OnDevice(mixer)``; ``model`` the staged model (its stage count picks the mixing site).
    """

    def __init__(self, run, model, mixer, optimizer, device: torch.device, capture: bool | None = None):
        self.run, self.optimizer = run, optimizer
        self.capture = device.type == "cuda" if capture is None else capture
        self.num_stages = len(model.stages)
        self.mixer = OnDevice(mixer, device)
        # The fused CUDA kernels read a float32 lr; float64 on the CPU equals a Python float lr exactly.
        lr_dtype = torch.float32 if device.type == "cuda" else torch.float64
        self.lr = torch.zeros((), dtype=lr_dtype, device=device)  # filled before every step
        make_capturable(optimizer, self.lr)
        self.x = self.y = None  # static input buffers, allocated at the first batch
        self.graphs = {}  # mixing site -> (graph, its static outputs)
        self.warmed = collections.Counter()

    def __call__(self, x: torch.Tensor, y: torch.Tensor, epoch: float, lr: float):
        self.lr.fill_(lr)
        site = self.mixer.set_step(epoch, self.num_stages)
        if self.x is None:
            self.x, self.y = torch.empty_like(x), torch.empty_like(y)
        if x.shape != self.x.shape:  # the smaller last batch: eager
            return self.run(x, y, self.mixer, epoch)
        self.x.copy_(x)
        self.y.copy_(y)
        if site in self.graphs:
            graph, out = self.graphs[site]
            graph.replay()
            return out
        if not self.capture:
            return self.run(self.x, self.y, self.mixer, epoch)
        if self.warmed[site] < WARMUP_STEPS:
            self.warmed[site] += 1
            return self._warm_up(epoch)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = self.run(self.x, self.y, self.mixer, epoch)
        except torch.cuda.OutOfMemoryError:
            raise  # not the capture's fault: eager steps would need the memory too
        except RuntimeError as err:
            # The same step ran eagerly in the warm-up, so what fails here is the capture. Not trained on
            # eagerly in this process: a failed capture may leave the device generator in its capture
            # state, and eager draws after it would not be trusted. A new process is.
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise CaptureFailed(
                f"capturing the training step as a CUDA graph failed ({reason}); run again with "
                "train.cuda_graph=off (the same method, eager steps; ammix sweep does so by itself)"
            ) from err
        self.graphs[site] = graph, out
        graph.replay()  # capture records the step without running it
        return out

    def _warm_up(self, epoch: float):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self.run(self.x, self.y, self.mixer, epoch)
        torch.cuda.current_stream().wait_stream(side)
        return out
