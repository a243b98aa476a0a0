"""The linear probe fitted to convergence (``train.probe: lbfgs``): the frozen backbone's features of the
un-augmented training set, once, and a multinomial logistic regression on them by full-batch L-BFGS.

An SGD probe (``train.probe: sgd``, the default) trains the head for ``train.epochs`` epochs of
augmented batches: each epoch pays a forward pass of the backbone, and whether the head has converged
depends on the epochs and the learning rate. The L-BFGS probe pays one forward pass and stops when the
objective's gradient vanishes, so probes of different backbones compare at their optimum. The fit runs
on standardised features (each dimension centred and scaled to unit variance, as scikit-learn's
``StandardScaler`` before ``LogisticRegression``): the probe then reads the same from features that
differ only in scale per dimension. Collapsed features still make the fit slow (a few directions
dominate): ``MAX_ITERATIONS`` leaves room for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .evaluate import device_batches

# AM-mixup's coarse-pre-trained features (rank 13-14 of 128 after standardising) need 1591-1664
# iterations to reach the tolerance (benchmarks/results/probe_convergence_c2f_fashion_fp32.json)
MAX_ITERATIONS = 5000
GRAD_TOLERANCE = 1e-5  # on the largest gradient entry of the objective
FIT = "standardised"  # recorded in summary.json: a sweep refuses to reuse probes fitted otherwise


@dataclass
class LinearFit:
    """A fitted linear head and how its fit ended."""

    weight: torch.Tensor  # (classes, features), acting on the raw features
    bias: torch.Tensor  # (classes,)
    loss: float  # the objective at the end: mean cross-entropy + weight_decay / 2 * |W_std|^2
    train_acc: float  # % of the training features classified right
    iterations: int
    grad_max: float  # largest gradient entry of the objective (in standardised weights) at the end
    converged: bool  # grad_max <= GRAD_TOLERANCE

    def record(self) -> dict[str, float]:
        """What metrics.jsonl keeps of the fit (its keys: :data:`RECORD_KEYS`)."""
        return {"probe_iterations": self.iterations, "probe_grad_max": self.grad_max}


#: :meth:`LinearFit.record`'s keys in metrics.jsonl and their names in ``ammix report``.
RECORD_KEYS = {"probe_iterations": "probe.iterations", "probe_grad_max": "probe.grad_max"}


@torch.no_grad()
def extract_features(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, labels)`` of every batch, in order: ``model.features`` in eval mode, float32 on CPU."""
    was_training = model.training
    model.eval()
    features, labels = [], []
    for x, y in device_batches(batches, device, channels_last):
        with autocast or contextlib.nullcontext():
            features.append(model.features(x).float().cpu())
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(features), torch.cat(labels)


def standardise(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, scale)`` of each feature dimension, so that ``(features - mean) / scale`` has zero mean and
    unit variance (population variance, as ``StandardScaler``); a constant dimension keeps scale 1."""
    mean = features.mean(0)
    scale = features.std(0, correction=0)
    return mean, torch.where(scale > 0, scale, torch.ones_like(scale))


def fit_linear_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weight_decay: float,
    max_iterations: int = MAX_ITERATIONS,
) -> LinearFit:
    """Multinomial logistic regression on standardised features ``z = (features - mean) / scale``:
    ``argmin_{V,c} mean CE(z @ V.T + c, labels) + weight_decay / 2 * |V|^2`` (the bias not penalized), by
    full-batch L-BFGS with a strong-Wolfe line search, from zero weights; returned as the equivalent head
    on the raw features, ``W = V / scale``, ``b = c - W @ mean``.

    ``weight_decay`` > 0 keeps the optimum finite on separable features (it is ``1 / (C * n)`` of
    scikit-learn's ``LogisticRegression`` after a ``StandardScaler``). Deterministic: same inputs, same fit.
    """
    mean, scale = standardise(features.double())
    x = (features.double() - mean) / scale
    y = labels.long()
    weight = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iterations,
        tolerance_grad=GRAD_TOLERANCE,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    loss = objective()  # the objective and gradient at the final weights
    grad_max = max(weight.grad.abs().max().item(), bias.grad.abs().max().item())
    with torch.no_grad():
        train_acc = 100.0 * ((x @ weight.T + bias).argmax(1) == y).double().mean().item()
        raw_weight = weight / scale
        raw_bias = bias - raw_weight @ mean
    return LinearFit(
        weight=raw_weight.float(),
        bias=raw_bias.float(),
        loss=loss.item(),
        train_acc=train_acc,
        iterations=optimizer.state[weight]["n_iter"],  # L-BFGS keeps its state under the first parameter
        grad_max=grad_max,
        converged=grad_max <= GRAD_TOLERANCE,
    )
