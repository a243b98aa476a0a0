"""Long-tailed losses that take the soft targets of any mixer: CE, LDAM, balanced softmax, with DRW.

Each loss is a small callable ``loss(logits, targets, epoch) -> scalar``; ``targets`` are the ``B x C``
probabilities a mixer returns (one-hot for plain CE). How each treats a mixed target ``t``:

- every loss is a class-weighted soft cross-entropy of (possibly adjusted) logits ``z``:
  ``sum_i sum_c w_c t_ic (-log softmax(z_i)_c) / sum_i sum_c w_c t_ic``. Each part of a target counts
  with its own class weight; with one-hot targets this is torch's ``cross_entropy(weight=w)`` (the
  LDAM-DRW code), with ``w = 1`` the plain mean soft cross-entropy.
- re-weighting (``drw_epoch``): ``w`` is 1 before epoch ``drw_epoch`` and the class-balanced weights
  of Cui et al. 2019 from then on (Cao et al. 2019, deferred re-weighting); ``None`` never re-weights.
- ``LDAMLoss`` subtracts from each class logit its margin weighted by the target mass on that class,
  ``z - sum_c t_c m_c e_c``, then scales by ``s``: the true-class margin for a one-hot target, a
  ``lam``-weighted share of both margins for a mixup target.
- ``BalancedSoftmaxLoss`` adds ``tau * log prior`` to every logit, whatever the target (the
  adjustment is a property of the training distribution, not of the sample).

Label smoothing is applied to the targets once, inside the cross-entropy (as
``ammix.mixing.soft_cross_entropy`` does); LDAM's margin uses the unsmoothed target.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from ammix.mixing.functional import check_targets, soft_cross_entropy


def _positive_counts(class_counts, what: str) -> torch.Tensor:
    """``class_counts`` as float64; a ``ValueError`` naming the empty classes, for which ``what`` is
    undefined (a division by zero or log 0 would otherwise make the loss NaN at its first step)."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    empty = (counts <= 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"{what} needs training samples of every class; class(es) {', '.join(map(str, empty))} have "
            f"none (class_counts {[int(c) for c in counts]}): a milder imbalance keeps every class"
        )
    return counts


def class_balanced_weights(class_counts, beta: float = 0.9999) -> torch.Tensor:
    """Cui et al. 2019: ``w_c = (1 - beta) / (1 - beta ** n_c)``, normalised to sum to ``C``."""
    counts = _positive_counts(class_counts, "the class-balanced weights (drw_epoch)")
    weights = (1.0 - beta) / (1.0 - beta**counts)
    return (weights * len(counts) / weights.sum()).float()


def ldam_margins(class_counts, max_margin: float = 0.5) -> torch.Tensor:
    """Cao et al. 2019: ``m_c`` proportional to ``n_c ** (-1/4)``; the rarest class gets ``max_margin``."""
    margins = _positive_counts(class_counts, "LDAM's margins") ** -0.25
    return (margins * max_margin / margins.max()).float()


def weighted_soft_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    mass_of: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``sum_ic w_c t_ic (-log softmax(logits)_ic) / sum_ic w_c t_ic`` in float32; without weights, the
    plain mean soft cross-entropy (see ``ammix.mixing.soft_cross_entropy``, also for ``mass_of``)."""
    return soft_cross_entropy(logits, targets, label_smoothing, class_weights=class_weights, mass_of=mass_of)


class SoftCrossEntropy:
    """Cross-entropy on soft targets, optionally with deferred class-balanced re-weighting (CE-DRW).

    ``class_counts``: training samples per class (needed when ``drw_epoch`` is set); ``drw_epoch``:
    the (fractional) epoch the class-balanced weights switch on (0: from the start, None: never);
    ``beta``: of the effective number of samples.
    """

    def __init__(
        self,
        class_counts=None,
        drw_epoch: float | None = None,
        beta: float = 0.9999,
        label_smoothing: float = 0.0,
    ) -> None:
        if drw_epoch is not None and class_counts is None:
            raise ValueError("drw_epoch needs class_counts (training samples per class)")
        if drw_epoch is not None and drw_epoch < 0:
            raise ValueError(f"drw_epoch must be >= 0 or null, got {drw_epoch}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.drw_epoch, self.beta, self.label_smoothing = drw_epoch, float(beta), float(label_smoothing)
        self.mass_of = None  # the engine's mean over ranks under torchrun (weighted_soft_cross_entropy)
        self.balanced_weights = None if drw_epoch is None else class_balanced_weights(class_counts, beta)

    def to(self, device: torch.device | str) -> SoftCrossEntropy:
        """Move the loss's constant tensors (weights, margins, prior) to ``device`` once, so that a step
        copies nothing from the host: a CUDA graph cannot capture that copy. Returns ``self``."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    def class_weights(self, epoch: float) -> torch.Tensor | None:
        """The weights in force at (fractional) epoch ``epoch``: None (all 1) before ``drw_epoch``."""
        if self.drw_epoch is None or epoch < self.drw_epoch:
            return None
        return self.balanced_weights

    def adjust_logits(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits

    def predictive_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The logits whose softmax is the model's predicted distribution at test time (calibration)."""
        return logits

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, epoch: float) -> torch.Tensor:
        check_targets(logits, targets)  # before a margin or prior broadcasts against class indices
        return weighted_soft_cross_entropy(
            self.adjust_logits(logits.float(), targets.float()),
            targets,
            self.class_weights(epoch),
            self.label_smoothing,
            self.mass_of,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(drw_epoch={self.drw_epoch}, beta={self.beta})"


class LDAMLoss(SoftCrossEntropy):
    """LDAM (Cao et al. 2019): ``s * (z - sum_c t_c m_c e_c)``, margins from ``ldam_margins``.

    Meant for the cosine logits (in [-1, 1]) of ``ammix.models.CosineLinear`` (``model.head: cosine``),
    as in the LDAM-DRW code; on a plain linear head a scale of 30 makes the loss blow up.
    """

    def __init__(
        self,
        class_counts,
        max_margin: float = 0.5,
        scale: float = 30.0,
        drw_epoch: float | None = None,
        beta: float = 0.9999,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(class_counts, drw_epoch, beta, label_smoothing)
        if class_counts is None:
            raise ValueError("ldam needs class_counts (training samples per class)")
        if max_margin <= 0:
            raise ValueError(f"max_margin must be > 0, got {max_margin}")
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.margins, self.scale = ldam_margins(class_counts, max_margin), float(scale)

    def adjust_logits(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.scale * (logits - targets * self.margins.to(logits.device))

    def predictive_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return self.scale * logits  # trained as softmax(s * cos): the cosines alone are far too flat


class BalancedSoftmaxLoss(SoftCrossEntropy):
    """Logit adjustment / balanced softmax (Menon et al. 2021; Ren et al. 2020): ``z + tau * log prior``."""

    def __init__(
        self,
        class_counts,
        tau: float = 1.0,
        drw_epoch: float | None = None,
        beta: float = 0.9999,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(class_counts, drw_epoch, beta, label_smoothing)
        if class_counts is None:
            raise ValueError("balanced_softmax needs class_counts (training samples per class)")
        prior = _positive_counts(class_counts, "the balanced softmax's log prior")
        self.log_prior_shift = (float(tau) * torch.log(prior / prior.sum())).float()

    def adjust_logits(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits + self.log_prior_shift.to(logits.device)


def loss_label(name: str = "ce", drw_epoch: float | None = None) -> str:
    """The loss as papers name it: ``ce``, ``ldam-drw`` (deferred re-weighting), ``ce-cb`` (from epoch 0)."""
    return name if drw_epoch is None else f"{name}-cb" if drw_epoch == 0 else f"{name}-drw"


LOSSES = {"ce": SoftCrossEntropy, "ldam": LDAMLoss, "balanced_softmax": BalancedSoftmaxLoss}


def loss_options(name: str) -> list[str]:
    """The options of loss ``name`` beyond the ones the engine passes (class counts, label smoothing)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    params = inspect.signature(LOSSES[name]).parameters
    return [p for p in params if p not in ("class_counts", "label_smoothing")]


def build_loss(name: str, class_counts=None, label_smoothing: float = 0.0, **options) -> SoftCrossEntropy:
    """The loss ``name`` (a key of ``LOSSES``) with its ``options``; a bad name or option is a ValueError."""
    known = loss_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for loss {name!r}; known: {', '.join(known)}"
        )
    return LOSSES[name](class_counts=class_counts, label_smoothing=label_smoothing, **options)
