"""Pure tensor helpers shared by the mixing methods: labels, losses, random draws, pairings."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Integer labels (B,) -> one-hot probabilities (B, num_classes) of `dtype`.

    Built with scatter rather than F.one_hot, whose range check synchronises a GPU every call.
    """
    out = torch.zeros(labels.shape[0], num_classes, dtype=dtype, device=labels.device)
    return out.scatter_(1, labels.long()[:, None], 1.0)


def soft_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    label_smoothing: float = 0.0,
    *,
    class_weights: torch.Tensor | None = None,
    mass_of: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Mean over the batch of -sum_c targets_c * log_softmax(logits)_c.

    `targets` are probabilities (B, C), or all-zero rows: the mean is over the target mass (the
    batch size when every row sums to 1), so a row with no target mass is out of the loss (what keeps
    AM-mixup's drop pairing at a fixed batch size, capturable). Label smoothing is applied here and
    only here, after any mixing: mixing is linear in the targets, so smoothing the mixed target equals
    mixing smoothed labels, and no method has to smooth on its own. The loss is computed in float32.
    `class_weights` (C,) weight each class's target mass (``sum w_c t_ic l_ic / sum w_c t_ic``).
    `mass_of` maps this batch's target mass to the one divided by: under torchrun its mean over the
    ranks, so that the ranks' averaged gradients are those of the global batch (a rank's own mass
    differs with the classes it drew once weights or dropped rows make rows count unequally).
    """
    check_targets(logits, targets)
    targets = smooth_targets(targets.float(), label_smoothing)
    if class_weights is not None:
        targets = targets * class_weights.to(targets.device)
    mass = targets.sum() if mass_of is None else mass_of(targets.sum())
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum() / mass


def check_targets(logits: torch.Tensor, targets: torch.Tensor) -> None:
    """``ValueError`` unless ``targets`` has the logits' shape (B, C): class indices (B,) would broadcast
    against the logits when B == C and give a wrong loss without an error."""
    if targets.shape != logits.shape:
        raise ValueError(f"targets of shape {tuple(targets.shape)} for logits {tuple(logits.shape)}: "
                         "expected probabilities of the logits' shape (class indices: one_hot(labels, C))")


def smooth_targets(targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """``(1 - eps) * targets + eps / C`` for each row of (possibly mixed) probability targets; a row
    with no target mass stays zero."""
    if label_smoothing > 0:
        mass = targets.sum(dim=1, keepdim=True)
        return targets * (1.0 - label_smoothing) + mass * (label_smoothing / targets.shape[1])
    return targets


def sample_beta(alpha: float, generator: torch.Generator | None = None) -> float:
    """One draw of Beta(alpha, alpha) as a float; 1.0 when alpha <= 0 (no mixing).

    torch's Beta sampler takes no generator, so numpy draws it from a seed taken from `generator`
    (or from torch's global stream): the draw stays reproducible from torch's random state alone.
    """
    if alpha <= 0:
        return 1.0
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def random_permutation(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """A random permutation of range(n) drawn from `generator` (on its own device), moved to `device`."""
    gen_device = generator.device if generator is not None else "cpu"
    return torch.randperm(n, generator=generator, device=gen_device).to(device)


def beta_on_device(alpha: float, device: torch.device | str) -> torch.Tensor:
    """One draw of Beta(alpha, alpha) as a 0-d float64 tensor drawn on `device` without synchronisation
    (what a CUDA graph can capture): X / (X + Y) of two Gamma(alpha) draws, from the device's default
    generator."""
    gammas = torch._standard_gamma(torch.full((2,), float(alpha), dtype=torch.float64, device=device))
    return gammas[0] / gammas.sum()


def permutation_on_device(n: int, device: torch.device | str) -> torch.Tensor:
    """A uniform random permutation of range(n) drawn on `device` without synchronisation: the argsort
    of i.i.d. float64 uniforms (ties, the only bias, have probability about n^2 / 2^54)."""
    return torch.rand(n, dtype=torch.float64, device=device).argsort()


def interclass_partners(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each sample i, the index of a partner j drawn uniformly among samples with y_j != y_i.

    Returns a long tensor (B,) on the labels' device, -1 for a sample without such a partner (only in
    a batch of a single class). The random scores come from `generator` (on its own device) and the
    rest runs on the labels' device, so a CPU generator never makes a GPU wait.
    """
    gen_device = generator.device if generator is not None else labels.device
    n = labels.shape[0]
    scores = torch.rand((n, n), generator=generator, device=gen_device).to(labels.device, non_blocking=True)
    other_class = labels[:, None] != labels[None, :]
    # Uniform draw among the allowed partners: the argmax of i.i.d. uniform scores over them.
    partners = scores.masked_fill(~other_class, -1.0).argmax(dim=1)
    return torch.where(other_class.any(dim=1), partners, -1)


def interpolate(x: torch.Tensor, partner: torch.Tensor, lam: float) -> torch.Tensor:
    """lam * x + (1 - lam) * partner, keeping the dtype of `x`."""
    return x * lam + partner * (1.0 - lam)


def cutmix_box(
    height: int, width: int, lam: float, generator: torch.Generator | None = None
) -> tuple[int, int, int, int]:
    """CutMix's box (Yun et al. 2019): side ratio sqrt(1 - lam), centre uniform, clipped to the image.

    Returns (top, bottom, left, right) with bottom/right exclusive.
    """
    cy = int(torch.randint(0, height, (1,), generator=generator).item())
    cx = int(torch.randint(0, width, (1,), generator=generator).item())
    return tuple(int(v) for v in cutmix_box_at(height, width, lam, cy, cx))


def cutmix_box_at(height: int, width: int, lam, cy, cx) -> tuple[torch.Tensor, ...]:
    """The box of `cutmix_box` around centre (cy, cx), as 0-d int64 tensors (top, bottom, left, right).

    `lam`, `cy`, `cx`: numbers, or 0-d tensors on a device (no synchronisation then); the float64
    arithmetic gives the same box as Python's ``int(height * math.sqrt(1 - lam))``.
    """
    cut = torch.sqrt(1.0 - torch.as_tensor(lam, dtype=torch.float64))
    half_h, half_w = (height * cut).long() // 2, (width * cut).long() // 2
    cy, cx = torch.as_tensor(cy), torch.as_tensor(cx)
    return (
        (cy - half_h).clamp(min=0),
        (cy + half_h).clamp(max=height),
        (cx - half_w).clamp(min=0),
        (cx + half_w).clamp(max=width),
    )


def box_mask(height: int, width: int, box, device: torch.device) -> torch.Tensor:
    """A (height, width) bool mask, True inside `box` = (top, bottom, left, right) (numbers or tensors)."""
    top, bottom, left, right = box
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    return ((rows >= top) & (rows < bottom))[:, None] & ((cols >= left) & (cols < right))[None, :]


def remix_label_weight(
    lam: float, counts_i: torch.Tensor, counts_j: torch.Tensor, kappa: float = 3.0, tau: float = 0.5
) -> torch.Tensor:
    """Remix's per-sample label weight of sample i (Chou et al. 2020, eq. 8).

    `counts_i`, `counts_j`: training-set counts of each pair's classes (B,); `lam` a number or a 0-d
    tensor (selected with torch.where: no synchronisation). Returns lam_y (B,):
    0 where n_i / n_j >= kappa and lam < tau (the label goes to the rarer j), 1 where
    n_i / n_j <= 1 / kappa and 1 - lam < tau (it stays with the rarer i), lam elsewhere.
    """
    ratio = counts_i.double() / counts_j.double()
    weight = torch.where((ratio >= kappa) & (lam < tau), 0.0, lam)
    weight = torch.where((ratio <= 1.0 / kappa) & (1.0 - lam < tau), 1.0, weight)
    return weight.float()
