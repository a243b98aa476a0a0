"""The mixing methods: AM-mixup and the baselines it is compared with.

Each method is a small callable, ``mixer(x, labels, epoch=e) -> (x_mixed, targets)``, where
``targets`` are probabilities (B' x C). AM-mixup needs ``epoch`` (its lam depends on it, and lam(0) = 1
would mix nothing); the other methods accept it and ignore it. A method knows where it acts through
``choose_stage(num_stages)``: 0 is the input, ``k`` the output of stage ``k``, ``num_stages`` the final
feature (see ``ammix.mixing.forward.mixed_forward``, which runs a staged model with a mixer).

A call is ``mix(x, labels, *draw(x, labels, epoch))``: ``draw`` makes the random draws from the
method's (CPU) generator, ``mix`` does the arithmetic. ``draw_on_device`` makes the same draws, with
the same distribution, on the batch's device from its default generator and without synchronisation,
as numbers held in 0-d tensors: what a CUDA graph can capture (``ammix.mixing.OnDevice``). ``mix``
takes either kind, so the arithmetic has one implementation.
"""

from __future__ import annotations

import warnings

import torch

from .functional import (
    beta_on_device,
    box_mask,
    cutmix_box_at,
    interclass_partners,
    interpolate,
    one_hot,
    permutation_on_device,
    random_permutation,
    remix_label_weight,
    sample_beta,
)
from .schedules import SCHEDULES, gamma_for, midpoint_ratio

# lam reached at the end of training when neither gamma nor lam_at_total is given: the paper's lam
# decreases "from 1.0 to 0.5 until the end of training". The ablation kept it (docs/method.md: 0.75
# measured better; the approach to the midpoint is the method's stated design).
DEFAULT_LAM_AT_TOTAL = 0.51


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class _Mixer:
    """Shared plumbing: class count, random stream and the site a method acts at."""

    site = "input"
    clean_weight = 0.0
    capturable = True  # the batch size stays fixed: a CUDA graph can replay it

    def __init__(self, num_classes: int, generator: torch.Generator | None = None):
        _require(int(num_classes) >= 2, f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.generator = generator

    def settings(self) -> dict:
        """The mixer's configuration as built, defaults and derived values included (AM-mixup's gamma
        from its run length): what a run folder records, so it says what ran whatever the defaults of
        a later version."""
        return {k: v for k, v in vars(self).items()
                if isinstance(v, (bool, int, float, str)) and not k.startswith("_")}  # _: state, not options

    def check_stages(self, num_stages: int) -> None:
        """ValueError when the site is not in a model of ``num_stages`` stages (the input and the final
        feature always are)."""

    def choose_stage(self, num_stages: int) -> int:
        """Stage boundary this step acts at: 0 = input, num_stages = final feature."""
        return num_stages if self.site == "feature" else 0

    def __call__(self, x, labels, epoch: float = 0.0):
        return self.mix(x, labels, *self.draw(x, labels, epoch))

    def draw(self, x, labels, epoch: float) -> tuple:
        """This step's random draws, from `generator`."""
        return ()

    def draw_on_device(self, x, labels, lam: torch.Tensor) -> tuple:
        """The draws of `draw` on x's device, sync-free; `lam`: this step's scheduled ratio (AM-mixup)."""
        return ()

    def mix(self, x, labels, *draws):
        raise NotImplementedError

    def _one_hot(self, labels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        # At least float32: bf16 features under autocast would round a soft target (0.3 -> 0.3008, and
        # AM-mixup's soft label near 0.5 to 0.5 or 0.5039).
        dtype = torch.promote_types(like.dtype, torch.float32) if like.is_floating_point() else torch.float32
        return one_hot(labels, self.num_classes, dtype)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                            if k != "generator" and not k.startswith("_"))
        return f"{type(self).__name__}({options})"


class NoMixing(_Mixer):
    """Plain cross-entropy: the batch unchanged, one-hot targets."""

    def mix(self, x, labels):
        return x, self._one_hot(labels, x)


class Mixup(_Mixer):
    """Input mixup (Zhang et al., ICLR 2018, "mixup: Beyond Empirical Risk Minimization").

    One lam ~ Beta(alpha, alpha) per batch, partners from a random permutation:
    ``x = lam * x_i + (1 - lam) * x_j``, ``t = lam * y_i + (1 - lam) * y_j``.
    """

    def __init__(self, num_classes: int, alpha: float = 1.0, generator: torch.Generator | None = None):
        super().__init__(num_classes, generator)
        _require(alpha > 0, f"alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)

    def draw(self, x, labels, epoch: float) -> tuple:
        lam = sample_beta(self.alpha, self.generator)
        return lam, random_permutation(x.shape[0], self.generator, x.device)

    def draw_on_device(self, x, labels, lam: torch.Tensor) -> tuple:
        return beta_on_device(self.alpha, x.device), permutation_on_device(x.shape[0], x.device)

    def mix(self, x, labels, lam, perm):
        targets = self._one_hot(labels, x)
        return interpolate(x, x[perm], lam), interpolate(targets, targets[perm], lam)


class ManifoldMixup(Mixup):
    """Manifold mixup (Verma et al., ICML 2019): mixup at a layer drawn anew each step.

    The layer is drawn uniformly from `layers` (0 = the input, k = after stage k); the paper's
    PreAct ResNet-18 setting is {0, 1, 2} with alpha = 2. Layers beyond the model's last hidden
    stage are left out, with a warning (once): on a wrapped timm or torchvision model, one stage, that
    leaves the input alone, so manifold mixup is input mixup there.
    """

    site = "hidden"

    def __init__(
        self,
        num_classes: int,
        alpha: float = 2.0,
        layers: tuple[int, ...] | list[int] = (0, 1, 2),
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_classes, alpha, generator)
        layers = tuple(int(k) for k in layers)
        _require(len(layers) > 0 and min(layers) >= 0, f"layers must be non-negative ints, got {layers}")
        self.layers = layers
        self._warned = False

    def check_stages(self, num_stages: int) -> None:
        _require(min(self.layers) < num_stages,
                 f"none of layers {self.layers} is below the model's {num_stages} stages")

    def choose_stage(self, num_stages: int) -> int:
        self.check_stages(num_stages)
        eligible = [k for k in self.layers if k < num_stages]
        if len(eligible) < len(self.layers) and not self._warned:
            self._warned = True
            warnings.warn(f"manifold mixup: layers {[k for k in self.layers if k >= num_stages]} are beyond "
                          f"the model's hidden stages ({num_stages} stages); it mixes at {eligible} only"
                          + (": input mixup" if eligible == [0] else ""), stacklevel=2)
        return eligible[int(torch.randint(len(eligible), (1,), generator=self.generator).item())]


class CutMix(_Mixer):
    """CutMix (Yun et al., ICCV 2019): paste a box of a partner image, label by the pasted area.

    lam ~ Beta(alpha, alpha) sets the box; the label weight is then corrected to the area actually
    kept after clipping at the border, ``1 - box_area / image_area``. Applied to a batch with
    probability `prob` (the authors' CIFAR runs use ``--cutmix_prob 0.5``).
    """

    def __init__(
        self,
        num_classes: int,
        alpha: float = 1.0,
        prob: float = 0.5,
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_classes, generator)
        _require(alpha > 0, f"alpha must be > 0, got {alpha}")
        _require(0.0 <= prob <= 1.0, f"prob must be in [0, 1], got {prob}")
        self.alpha, self.prob = float(alpha), float(prob)

    def draw(self, x, labels, epoch: float) -> tuple:
        """(applied, lam, perm, cy, cx): nothing more is drawn for a batch left unmixed."""
        _require(x.dim() == 4, f"CutMix needs images (B, C, H, W), got shape {tuple(x.shape)}")
        if torch.rand(1, generator=self.generator).item() >= self.prob:
            return False, None, None, None, None
        lam = sample_beta(self.alpha, self.generator)
        perm = random_permutation(x.shape[0], self.generator, x.device)
        height, width = x.shape[2:]
        cy = int(torch.randint(0, height, (1,), generator=self.generator).item())
        cx = int(torch.randint(0, width, (1,), generator=self.generator).item())
        return True, lam, perm, cy, cx

    def draw_on_device(self, x, labels, lam: torch.Tensor) -> tuple:
        _require(x.dim() == 4, f"CutMix needs images (B, C, H, W), got shape {tuple(x.shape)}")
        applied = torch.rand((), dtype=torch.float64, device=x.device) < self.prob
        height, width = x.shape[2:]
        cy = torch.randint(0, height, (), device=x.device)
        cx = torch.randint(0, width, (), device=x.device)
        perm = permutation_on_device(x.shape[0], x.device)
        return applied, beta_on_device(self.alpha, x.device), perm, cy, cx

    def mix(self, x, labels, applied, lam, perm, cy, cx):
        targets = self._one_hot(labels, x)
        if applied is False:
            return x, targets
        height, width = x.shape[2:]
        top, bottom, left, right = cutmix_box_at(height, width, lam, cy, cx)
        kept = 1.0 - ((bottom - top) * (right - left)).double() / (height * width)
        # The box as a mask (a select, not slicing): its bounds may be device tensors. An unapplied
        # device draw (`applied` a False tensor) selects nothing and keeps the whole label.
        paste = box_mask(height, width, (top, bottom, left, right), x.device) & applied
        if isinstance(applied, torch.Tensor):
            kept = torch.where(applied, kept, 1.0)
        return torch.where(paste, x[perm], x), interpolate(targets, targets[perm], kept)


class Remix(Mixup):
    """Remix (Chou et al., ECCV-W 2020, "Remix: Rebalanced Mixup"): mixup whose label favours the rarer class.

    Inputs are mixed as in mixup; sample i's label weight follows `remix_label_weight` with the
    paper's kappa = 3, tau = 0.5, computed from the training set's per-class counts.
    """

    def __init__(
        self,
        num_classes: int,
        class_counts,
        alpha: float = 1.0,
        kappa: float = 3.0,
        tau: float = 0.5,
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_classes, alpha, generator)
        _require(class_counts is not None, "Remix needs class_counts (training samples per class)")
        counts = torch.as_tensor(class_counts, dtype=torch.float64)
        _require(
            counts.shape == (num_classes,) and bool((counts > 0).all()),
            f"class_counts must be {num_classes} positive numbers, got {[int(c) for c in counts.tolist()]}",
        )
        _require(kappa >= 1 and 0 <= tau <= 1, f"need kappa >= 1 and tau in [0, 1], got {kappa}, {tau}")
        self.class_counts, self.kappa, self.tau = counts, float(kappa), float(tau)

    def mix(self, x, labels, lam, perm):
        if self.class_counts.device != labels.device:  # moved once: a captured step cannot copy from the host
            self.class_counts = self.class_counts.to(labels.device)
        counts = self.class_counts[labels]
        weight = remix_label_weight(lam, counts, counts[perm], self.kappa, self.tau).to(x.device)
        targets = self._one_hot(labels, x)
        weight = weight.to(targets.dtype)[:, None]
        return interpolate(x, x[perm], lam), targets * weight + targets[perm] * (1 - weight)


def _exp_gamma(gamma: float | None, lam_at_total: float | None, lam_end: float, total: float | None) -> float:
    """The exp schedule's decay per epoch: `gamma` when given, else the one that reaches `lam_at_total`
    (default ``DEFAULT_LAM_AT_TOTAL``) at epoch `total`, so that the default follows the run's length."""
    _require(gamma is None or lam_at_total is None, "give gamma or lam_at_total, not both")
    if gamma is not None:
        _require(0.0 < gamma < 1.0, f"gamma must be in (0, 1), got {gamma}")
        return float(gamma)
    _require(
        total is not None,
        "the exp schedule needs total (training length in epochs) or gamma (decay per epoch)",
    )
    target = DEFAULT_LAM_AT_TOTAL if lam_at_total is None else lam_at_total
    _require(lam_at_total is not None or lam_end < target,  # the user set lam_end only: say which to set
             f"lam_end {lam_end} needs lam_at_total in ({lam_end}, 1) or gamma: the default lam_at_total "
             f"({target}) is not above it")
    _require(lam_end < target < 1.0, f"lam_at_total must be in ({lam_end}, 1), got {target}")
    return gamma_for(target, lam_end, total)


class AsymptoticMidpointMixup(_Mixer):
    """Asymptotic Midpoint Mixup (Kim, Lee, Kim 2024, arXiv 2401.14696) on the encoder's features.

    Each sample's feature is interpolated with an inter-class partner's at one ratio for the whole
    batch, ``h_i' = lam * h_i + (1 - lam) * h_j`` with ``y_j != y_i``, and labelled on a single side,
    ``y_i``. lam decays asymptotically from 1.0 towards 0.5 over training: with the defaults,
    ``lam(e) = 0.5 + 0.5 * gamma ** e`` at (fractional) epoch e.

    Options, each an ablation (only what the abstract states is fixed; the rest is reconstructed):

    - ``gamma``: decay per epoch of the ``exp`` schedule, in (0, 1).
    - ``schedule``: ``exp`` (default), ``linear`` or ``cosine`` to epoch ``total``, or ``constant``.
    - ``lam_end``: the ratio the schedule ends at (exp: its asymptote), in [0.5, 1]. ``constant``
      with ``lam_end=1`` does no interpolation at all: the control for the pairing rule alone.
    - ``total``: training length in epochs (the engine passes ``train.epochs``); needed by
      ``linear``, ``cosine`` and by ``exp`` without ``gamma``.
    - ``lam_at_total``: exp only; gamma is chosen so that lam(total) equals it. Give ``gamma`` or
      ``lam_at_total``, not both; with neither, ``lam_at_total = DEFAULT_LAM_AT_TOTAL`` (0.51) and
      ``total`` is required, so the default schedule ends near 0.5 whatever the run's length.
    - ``granularity``: ``step`` updates lam every step from the fractional epoch; ``epoch`` holds it
      for a whole epoch (lam(floor(e))).
    - ``pairing``: ``drop`` (default, chosen by the converged ablation, docs/method.md) pairs by a
      random permutation and drops same-class pairs: the batch shrinks and, on long-tailed data,
      mostly head-class samples go (a hidden re-balancing). Its CUDA-graph form (``mix``) keeps the
      batch size, the dropped rows out of the loss: capturable at the feature site only.
      ``redraw`` draws each sample's partner uniformly among the other-class samples of the batch,
      so every sample is augmented.
    - ``label``: ``single`` (one-hot of y_i) or ``soft`` (``lam * y_i + (1 - lam) * y_j``).
    - ``clean_weight``: weight of an extra cross-entropy on the clean features (0 = none; default 0.5,
      chosen by the converged ablation, docs/method.md).
    - ``detach_partner``: stop the gradient through the partner feature h_j.
    - ``site``: ``feature`` (default), ``input``, or a stage boundary index.

    A batch holding a single class has no inter-class pair: it is returned unaugmented.
    """

    PAIRINGS = ("redraw", "drop")
    LABELS = ("single", "soft")
    GRANULARITIES = ("step", "epoch")

    def __init__(
        self,
        num_classes: int,
        gamma: float | None = None,
        schedule: str = "exp",
        lam_end: float = 0.5,
        total: float | None = None,
        lam_at_total: float | None = None,
        granularity: str = "step",
        pairing: str = "drop",
        label: str = "single",
        clean_weight: float = 0.5,
        detach_partner: bool = False,
        site: str | int = "feature",
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_classes, generator)
        _require(schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        _require(0.5 <= lam_end <= 1.0, f"lam_end must be in [0.5, 1], got {lam_end}")
        _require(total is None or total > 0, f"total must be > 0 (epochs), got {total}")
        _require(
            schedule not in ("linear", "cosine") or total is not None,
            f"schedule {schedule!r} needs total > 0 (training length in epochs)",
        )
        if schedule == "exp":
            gamma = _exp_gamma(gamma, lam_at_total, lam_end, total)
        else:
            _require(lam_at_total is None, "lam_at_total applies to the exp schedule only")
            _require(gamma is None, f"gamma applies to the exp schedule only ({schedule!r} ignores it)")
        _require(granularity in self.GRANULARITIES, f"granularity must be step or epoch, got {granularity!r}")
        _require(pairing in self.PAIRINGS, f"pairing must be redraw or drop, got {pairing!r}")
        _require(label in self.LABELS, f"label must be single or soft, got {label!r}")
        _require(clean_weight >= 0, f"clean_weight must be >= 0, got {clean_weight}")
        _require(
            site in ("feature", "input") or (isinstance(site, int) and site >= 0),
            f"site must be 'feature', 'input' or a stage index >= 0, got {site!r}",
        )
        self.gamma, self.schedule, self.lam_end, self.total = gamma, schedule, float(lam_end), total
        self.granularity, self.pairing, self.label = granularity, pairing, label
        self.clean_weight, self.detach_partner = float(clean_weight), bool(detach_partner)
        self.stage = site
        self.site = site if isinstance(site, str) else "hidden"
        self._warned = False

    def lam(self, epoch: float) -> float:
        """The interpolation ratio used at (fractional) epoch `epoch`."""
        if self.total is not None and epoch > 2 * self.total and not self._warned:
            self._warned = True  # a step count given as the epoch: at the midpoint from the first epochs
            warnings.warn(f"AM-mixup: epoch {epoch:g} is more than twice total {self.total:g}; both are in "
                          "epochs (fractional: epoch + step / steps_per_epoch), not optimizer steps",
                          stacklevel=2)
        t = float(int(epoch)) if self.granularity == "epoch" else float(epoch)
        return midpoint_ratio(t, self.schedule, self.gamma, self.lam_end, self.total)

    def check_stages(self, num_stages: int) -> None:
        _require(isinstance(self.stage, str) or self.stage <= num_stages,
                 f"site {self.stage} is beyond the model's {num_stages} stages")

    def choose_stage(self, num_stages: int) -> int:
        if self.stage == "feature":
            return num_stages
        if self.stage == "input":
            return 0
        self.check_stages(num_stages)
        return self.stage

    @property
    def capturable(self) -> bool:
        # The drop pairing keeps a fixed batch size only at the feature: the dropped rows then pass the
        # head alone, out of the loss; before it they would still enter later layers' batch statistics.
        return self.pairing != "drop" or self.stage == "feature"

    def __call__(self, x, labels, epoch: float):
        if self.pairing == "drop":
            return self._mix_dropping_same_class_pairs(x, labels, *self.draw(x, labels, epoch))
        return self.mix(x, labels, *self.draw(x, labels, epoch))

    def draw(self, x, labels, epoch: float) -> tuple:
        """The ratio, and each sample's partner (redraw) or the permutation that pairs them (drop)."""
        if self.pairing == "drop":
            return self.lam(epoch), random_permutation(x.shape[0], self.generator, x.device)
        return self.lam(epoch), interclass_partners(labels, self.generator)

    def draw_on_device(self, x, labels, lam: torch.Tensor) -> tuple:
        # From the labels' device's default generator.
        if self.pairing == "drop":
            return lam, permutation_on_device(x.shape[0], x.device)
        return lam, interclass_partners(labels)

    def mix(self, x, labels, lam, partners):
        """The fixed-size form, what a CUDA graph replays. `redraw`: each sample with its drawn
        other-class partner (-1: none). `drop`: `partners` is a permutation, and a same-class pair keeps
        its row with no target mass, out of the loss (``soft_cross_entropy`` averages over target mass):
        the loss and its gradient are those of the shrunken batch of ``__call__``. Only with a loss that
        averages over target mass (``soft_cross_entropy``, ``ammix.losses``): ``F.cross_entropy``
        averages over rows, so it would halve the loss of a half-dropped batch, and its label smoothing
        would put the dropped rows back in."""
        targets = self._one_hot(labels, x)
        in_loss = None
        if self.pairing == "drop":
            paired = labels != labels[partners]
            in_loss = paired | ~paired.any()  # no inter-class pair at all: the clean batch, as __call__
        else:
            # A sample without an other-class partner (a single-class batch) passes through unchanged;
            # torch.where keeps that decision on the device, with no synchronisation.
            paired = partners >= 0
            partners = torch.where(paired, partners, torch.arange(len(labels), device=labels.device))
        partner_x = x[partners].detach() if self.detach_partner else x[partners]
        keep_shape = (-1,) + (1,) * (x.dim() - 1)
        mixed = torch.where(paired.view(keep_shape), interpolate(x, partner_x, lam), x)
        if self.label == "soft":
            soft = interpolate(targets, targets[partners], lam)
            targets = torch.where(paired[:, None], soft, targets)
        if in_loss is not None:
            targets = targets * in_loss[:, None].to(targets.dtype)
        return mixed, targets

    def _mix_dropping_same_class_pairs(self, x, labels, lam, permutation):
        """The `drop` pairing: same-class pairs of `permutation` dropped (the batch shrinks)."""
        targets = self._one_hot(labels, x)
        keep = labels != labels[permutation]
        if not bool(keep.any()):
            return x, targets
        anchors, partners = x[keep], permutation[keep]
        partner_x = x[partners].detach() if self.detach_partner else x[partners]
        mixed = interpolate(anchors, partner_x, lam)
        if self.label == "soft":
            return mixed, interpolate(targets[keep], targets[partners], lam)
        return mixed, targets[keep]
