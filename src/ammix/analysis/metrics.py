"""Metrics on features and predictions: collapse, margins, calibration, accuracy.

Every metric is a pure function of tensors, in the style of ``ssnl/align_uniform``: no model, no I/O,
no state. Inputs are detached and computed in float64 on the device they live on; outputs are python
floats (scalars) or small tensors (per class, class by class).

Conventions shared by all functions:

- ``features``: ``N x D`` float tensor; ``labels``: ``N`` int64 tensor of class ids.
- "Present classes" are ``labels.unique()`` (sorted). Per-class tensors are indexed by present class
  in that order, and the functions that return them also return (or take) the class ids.
- "Normalised features" means each row divided by its L2 norm (``torch.nn.functional.normalize``).
- Nothing needs ``N x N`` memory: pairwise sums run over blocks of ``chunk_size`` rows
  (``chunk_size x N`` at a time) or use closed forms.
- A metric that is undefined for its input (too few points, classes or pairs) raises ``ValueError``;
  :func:`collapse_report` turns those into ``nan`` entries instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "alignment",
    "uniformity",
    "neighbour_uniformity",
    "class_centroids",
    "intra_class_spread",
    "centroid_distances",
    "min_centroid_distance",
    "feature_norms",
    "class_feature_norms",
    "margin_to_boundary",
    "expected_calibration_error",
    "per_class_accuracy",
    "balanced_accuracy",
    "group_accuracy",
    "collapse_report",
    "REPORT_KEYS",
]

_DEFAULT_CHUNK = 1024


# --------------------------------------------------------------------------------------------------
# helpers


def _as_features(features: torch.Tensor) -> torch.Tensor:
    features = torch.as_tensor(features).detach()
    if features.dim() != 2:
        raise ValueError(f"features must be N x D, got shape {tuple(features.shape)}")
    return features.to(torch.float64)


def _as_labels(labels: torch.Tensor, n: int) -> torch.Tensor:
    labels = torch.as_tensor(labels).detach()
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must be a vector of length {n}, got shape {tuple(labels.shape)}")
    return labels.to(torch.int64)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=1)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``len(a) x len(b)`` via the Gram matrix, clamped at 0."""
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1).unsqueeze(0) - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)


def _head_params(head) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(weight C x D, bias C or None)`` of an ``nn.Linear``-like head or a ``(weight, bias)`` pair."""
    if isinstance(head, (tuple, list)):
        weight, bias = head
    else:  # a cosine head (ammix.models.CosineLinear): its normalised rows give its decision boundaries
        weight, bias = getattr(head, "normalized_weight", head.weight), getattr(head, "bias", None)
    weight = torch.as_tensor(weight).detach().to(torch.float64)
    bias = None if bias is None else torch.as_tensor(bias).detach().to(torch.float64)
    return weight, bias


# --------------------------------------------------------------------------------------------------
# alignment and uniformity


def alignment(
    features: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 2.0,
    max_pairs: int | None = None,
    reduction: str = "pairs",
    chunk_size: int = _DEFAULT_CHUNK,
    generator: torch.Generator | None = None,
) -> float:
    """Label-supervised alignment (Wang & Isola 2020, "Understanding contrastive representation
    learning through alignment and uniformity on the hypersphere", eq. 4, with positive pairs = pairs of
    samples of the same class).

    Takes ``N x D`` features and ``N`` labels; returns the mean of ``||f_i - f_j||^alpha`` over ordered
    same-class pairs ``i != j`` of L2-normalised features (in ``[0, 2^alpha]``; lower = tighter classes).

    - ``reduction="pairs"`` (default): every same-class pair has the same weight, as in Wang & Isola
      (large classes dominate); ``"classes"``: mean over classes of each class's pair mean (every class
      with at least 2 samples counts once; use it on long-tailed data).
    - ``alpha == 2`` is exact and ``O(N D)`` for any ``N``, by the identity
      ``sum_{i,j} ||a_i - a_j||^2 = 2 n sum_i ||a_i||^2 - 2 ||sum_i a_i||^2``; ``max_pairs`` is ignored.
    - other ``alpha``: exact by default, per class over blocks of ``chunk_size`` rows (memory
      ``chunk_size x n_c``, time ``O(sum_c n_c^2 D)``). With ``max_pairs`` set and more same-class pairs
      than that, it is estimated instead from about ``max_pairs`` ordered pairs drawn uniformly with
      replacement (``generator``), split between classes in proportion to their pair counts (at least
      one each), each class's mean estimated from its own draws.

    Raises ``ValueError`` when no class has 2 samples.
    """
    if reduction not in ("pairs", "classes"):
        raise ValueError(f"reduction must be 'pairs' or 'classes', got {reduction!r}")
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    x = _normalize(_as_features(features))
    y = _as_labels(labels, x.shape[0])
    classes, counts = y.unique(return_counts=True)
    keep = counts >= 2
    classes, counts = classes[keep], counts[keep]
    if len(classes) == 0:
        raise ValueError("alignment needs at least one class with 2 samples")
    pair_counts = (counts * (counts - 1)).to(torch.float64)
    total_pairs = float(pair_counts.sum())
    sample = alpha != 2 and max_pairs is not None and total_pairs > max_pairs

    means = []
    for c, n_pairs in zip(classes.tolist(), pair_counts.tolist(), strict=True):
        a = x[y == c]
        n = a.shape[0]
        if alpha == 2:
            s = a.sum(0)
            total = 2.0 * n * (a * a).sum() - 2.0 * (s * s).sum()
            means.append(total.clamp_min(0.0) / n_pairs)
        elif sample:
            m = max(1, round(max_pairs * n_pairs / total_pairs))
            means.append(_sampled_pair_mean(a, alpha, m, chunk_size, generator))
        else:
            total = a.new_zeros(())
            for start in range(0, n, chunk_size):
                block = a[start : start + chunk_size]
                d = _sq_dists(block, a).pow_(alpha / 2.0)
                rows = torch.arange(block.shape[0], device=a.device)
                d[rows, rows + start] = 0.0  # i == j is not a pair
                total = total + d.sum()
            means.append(total / n_pairs)
    means = torch.stack(means)
    if reduction == "classes":
        return float(means.mean())
    return float((means * pair_counts.to(means.device)).sum() / total_pairs)


def _sampled_pair_mean(a, alpha, m, chunk_size, generator):
    """Mean of ``||a_i - a_j||^alpha`` over ``m`` ordered pairs ``i != j`` drawn uniformly."""
    n = a.shape[0]
    total = 0.0
    step = max(chunk_size * 64, 1)
    for start in range(0, m, step):
        k = min(step, m - start)
        i = torch.randint(n, (k,), generator=generator)
        j = torch.randint(n - 1, (k,), generator=generator)
        j = j + (j >= i).long()  # uniform over the other n - 1 samples
        i, j = i.to(a.device), j.to(a.device)
        total += float((a[i] - a[j]).pow(2).sum(1).pow(alpha / 2.0).sum())
    return torch.tensor(total / m, dtype=torch.float64, device=a.device)


def _log_mean_exp_pairs(x: torch.Tensor, t: float, chunk_size: int) -> float:
    """``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over blocks of rows, accumulated by logsumexp."""
    n = x.shape[0]
    parts = []
    for start in range(0, n - 1, chunk_size):
        stop = min(start + chunk_size, n - 1)
        rows = x[start:stop]
        cols = x[start:]  # pairs (i, j) with j > i live at or right of the block's diagonal
        d = _sq_dists(rows, cols)
        r = torch.arange(stop - start, device=x.device).unsqueeze(1)
        c = torch.arange(cols.shape[0], device=x.device).unsqueeze(0)
        e = (-t * d).masked_fill_(c <= r, -math.inf)
        parts.append(torch.logsumexp(e.flatten(), 0))
    log_sum = torch.logsumexp(torch.stack(parts), 0)
    return float(log_sum) - math.log(n * (n - 1) / 2)


def uniformity(
    features: torch.Tensor,
    t: float = 2.0,
    max_samples: int | None = None,
    chunk_size: int = _DEFAULT_CHUNK,
    generator: torch.Generator | None = None,
) -> float:
    """Uniformity (Wang & Isola 2020, eq. 5): ``log mean_{i<j} exp(-t ||f_i - f_j||^2)`` of
    L2-normalised features.

    Takes ``N x D`` features; returns a float in ``[-4t, 0]``: 0 when all features coincide, ``-4t``
    for two antipodal points; lower = more uniformly spread on the sphere.

    Computed over blocks of ``chunk_size`` rows (never ``N x N`` at once) and accumulated with
    ``logsumexp``, so well-separated points never underflow to ``-inf``. With ``max_samples`` set and
    ``N > max_samples``, it is computed on ``max_samples`` rows drawn without replacement
    (``torch.randperm`` with ``generator``); the full computation is ``O(N^2 D)``.

    Raises ``ValueError`` for ``N < 2`` (no pair; the mean is undefined).
    """
    x = _as_features(features)
    if x.shape[0] < 2:
        raise ValueError(f"uniformity needs at least 2 features, got {x.shape[0]}")
    if max_samples is not None and x.shape[0] > max_samples:
        if max_samples < 2:
            raise ValueError(f"max_samples must be at least 2, got {max_samples}")
        idx = torch.randperm(x.shape[0], generator=generator)[:max_samples].to(x.device)
        x = x[idx]
    return _log_mean_exp_pairs(_normalize(x), t, chunk_size)


def neighbour_uniformity(
    features: torch.Tensor,
    labels: torch.Tensor,
    k: int | None = None,
    t: float = 2.0,
) -> float:
    """Neighbour uniformity: uniformity of the class centroids, restricted to each centroid's ``k``
    nearest other centroids.

    Takes ``N x D`` features and ``N`` labels. The centroid ``mu_c`` of a class is the mean of its
    L2-normalised features, itself L2-normalised (a point on the sphere). Returns
    ``log mean_{c, c' in kNN(c)} exp(-t ||mu_c - mu_c'||^2)`` over the ``C k`` ordered pairs (``C``
    present classes; ``kNN(c)``: the ``k`` centroids closest to ``mu_c``, ``c`` excluded). In
    ``[-4t, 0]``; higher = classes crowd their neighbours more.

    Why: uniformity over all pairs is dominated by the many far-apart pairs, so a few classes that
    collapse onto each other (inter-class collapse, typical of tail classes) barely move it. Looking
    only at each class's nearest neighbours measures how crowded each class's neighbourhood is, which
    is where collapse happens.

    Default ``k = min(5, C - 1)``: a small neighbourhood (5 is well below the 10 / 100 classes of
    CIFAR, so far pairs do not dilute it) that stays defined for few classes; with ``k = C - 1`` it is
    the uniformity of the centroids (over all pairs). Raises ``ValueError`` for fewer than 2 classes or
    ``k`` outside ``[1, C - 1]``.
    """
    mu, _ = class_centroids(features, labels, normalize=True)
    mu = _normalize(mu)
    n_classes = mu.shape[0]
    if n_classes < 2:
        raise ValueError(f"neighbour_uniformity needs at least 2 classes, got {n_classes}")
    if k is None:
        k = min(5, n_classes - 1)
    if not 1 <= k <= n_classes - 1:
        raise ValueError(f"k must be in [1, {n_classes - 1}] for {n_classes} classes, got {k}")
    d = _sq_dists(mu, mu)
    d.fill_diagonal_(math.inf)
    nearest = d.topk(k, dim=1, largest=False).values  # C x k
    return float(torch.logsumexp((-t * nearest).flatten(), 0)) - math.log(n_classes * k)


# --------------------------------------------------------------------------------------------------
# centroids, spread, norms


def class_centroids(
    features: torch.Tensor, labels: torch.Tensor, normalize: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means. Takes ``N x D`` features and ``N`` labels; returns ``(centroids K x D float64,
    classes K)`` over the ``K`` present classes (sorted). ``normalize=True`` averages the L2-normalised
    features (the centroids themselves are not re-normalised)."""
    x = _as_features(features)
    y = _as_labels(labels, x.shape[0])
    if normalize:
        x = _normalize(x)
    classes, inverse, counts = y.unique(return_inverse=True, return_counts=True)
    sums = x.new_zeros(len(classes), x.shape[1]).index_add_(0, inverse, x)
    return sums / counts.unsqueeze(1).to(x), classes


def intra_class_spread(features: torch.Tensor, labels: torch.Tensor, normalize: bool = False) -> float:
    """Intra-class spread: mean over present classes of the mean squared distance of a class's features
    to its centroid, ``mean_c mean_{i in c} ||f_i - mu_c||^2`` (a singleton class counts as 0).

    ``normalize=False`` uses the raw features (scale-dependent: grows with the feature norm);
    ``normalize=True`` L2-normalises the features first (in ``[0, 1]``: 0 = each class collapsed to a
    point, 1 = class mean at the origin). Returns a float.
    """
    x = _as_features(features)
    y = _as_labels(labels, x.shape[0])
    if x.shape[0] == 0:
        raise ValueError("intra_class_spread needs at least one feature")
    if normalize:
        x = _normalize(x)
    mu, classes = class_centroids(x, y)
    inverse = torch.searchsorted(classes, y)
    sq = (x - mu[inverse]).pow(2).sum(1)
    per_class = x.new_zeros(len(classes)).index_add_(0, inverse, sq) / torch.bincount(inverse).to(x)
    return float(per_class.mean())


def centroid_distances(
    features: torch.Tensor, labels: torch.Tensor, normalize: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances between class centroids. Takes ``N x D`` features and ``N`` labels; returns
    ``(K x K float64 distance matrix, classes K)`` over the present classes (sorted), zero diagonal.
    ``normalize=True``: centroids of the L2-normalised features (see :func:`class_centroids`)."""
    mu, classes = class_centroids(features, labels, normalize=normalize)
    d = _sq_dists(mu, mu).sqrt_()
    d.fill_diagonal_(0.0)
    return d, classes


def _off_diagonal(d: torch.Tensor) -> torch.Tensor:
    mask = ~torch.eye(d.shape[0], dtype=torch.bool, device=d.device)
    return d[mask]


def min_centroid_distance(features: torch.Tensor, labels: torch.Tensor, normalize: bool = False) -> float:
    """Smallest distance between two class centroids (see :func:`centroid_distances`); a float.
    Raises ``ValueError`` for fewer than 2 present classes."""
    d, classes = centroid_distances(features, labels, normalize=normalize)
    if len(classes) < 2:
        raise ValueError("min_centroid_distance needs at least 2 classes")
    return float(_off_diagonal(d).min())


def feature_norms(features: torch.Tensor) -> float:
    """Mean L2 norm of the features: ``mean_i ||f_i||``. Takes ``N x D``; returns a float. Measures the
    feature scale (plain CE: large; mixup: small; the paper's "moderate broadening" lies between)."""
    x = _as_features(features)
    if x.shape[0] == 0:
        raise ValueError("feature_norms needs at least one feature")
    return float(x.norm(dim=1).mean())


def class_feature_norms(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean L2 norm. Takes ``N x D`` features and ``N`` labels; returns ``(norms K float64,
    classes K)`` over the present classes (sorted)."""
    x = _as_features(features)
    norms = x.norm(dim=1, keepdim=True)
    mean_norm, classes = class_centroids(norms, labels)
    return mean_norm[:, 0], classes


# --------------------------------------------------------------------------------------------------
# margins


def margin_to_boundary(
    centroids: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    classes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Signed distance of each class centroid to the nearest decision boundary of a linear head.

    Takes ``centroids`` (``K x D``), the head's ``weight`` (``C x D``) and ``bias`` (``C`` or None), and
    ``classes`` (``K`` class ids of the centroid rows; default ``0..K-1``). For centroid ``mu`` of class
    ``c`` returns ``min_{c' != c} ((w_c - w_c') . mu + b_c - b_c') / ||w_c - w_c'||``: the Euclidean
    distance from ``mu`` to the hyperplane where logits ``c`` and ``c'`` tie, the nearest such one;
    positive when ``mu`` is classified as ``c``, negative when it is misclassified. (With ``w_c = w_c'``
    the quotient is ``+-inf`` or ``nan``.) Returns a ``K`` float64 tensor. Balanced margins = similar
    values across classes; see :func:`collapse_report` for the summary statistics.
    """
    mu = torch.as_tensor(centroids).detach().to(torch.float64)
    w = torch.as_tensor(weight).detach().to(torch.float64)
    b = w.new_zeros(w.shape[0]) if bias is None else torch.as_tensor(bias).detach().to(w)
    if mu.dim() != 2 or w.dim() != 2 or mu.shape[1] != w.shape[1]:
        raise ValueError(
            f"centroids K x D and weight C x D expected, got {tuple(mu.shape)} and {tuple(w.shape)}"
        )
    if w.shape[0] < 2:
        raise ValueError("margin_to_boundary needs a head with at least 2 classes")
    if classes is None:
        classes = torch.arange(mu.shape[0])
    classes = torch.as_tensor(classes).to(torch.int64).to(w.device)
    mu = mu.to(w.device)
    dw = w[classes].unsqueeze(1) - w.unsqueeze(0)  # K x C x D
    db = b[classes].unsqueeze(1) - b.unsqueeze(0)  # K x C
    dist = ((dw * mu.unsqueeze(1)).sum(2) + db) / dw.norm(dim=2)
    dist[torch.arange(len(classes), device=w.device), classes] = math.inf  # c' != c
    return dist.min(1).values


def midpoint_third_class_share(
    features: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    max_pairs: int = 20_000,
    generator: torch.Generator | None = None,
) -> float:
    """Share of inter-class midpoints that a linear head assigns to a third class.

    For pairs ``(i, j)`` with ``y_i != y_j`` (every such pair when there are at most ``max_pairs``,
    else ``max_pairs`` drawn uniformly with ``generator``), the midpoint ``(f_i + f_j) / 2`` is
    classified by ``weight`` / ``bias``; returns the fraction whose prediction is neither ``y_i`` nor
    ``y_j``. AM-mixup labels such a near-midpoint feature ``y_i``: where this share is large, its
    single-side labels contradict the head's own regions (in a 2-D feature with many classes, most
    midpoints cross a third class's region; with ``D >= C - 1`` they need not).
    """
    x = _as_features(features).to(torch.float64)
    y = _as_labels(labels, x.shape[0])
    w = torch.as_tensor(weight).detach().to(x)
    b = x.new_zeros(w.shape[0]) if bias is None else torch.as_tensor(bias).detach().to(x)
    n = x.shape[0]
    if n * (n - 1) <= max_pairs:
        i, j = torch.triu_indices(n, n, offset=1)
    else:
        i = torch.randint(n, (max_pairs,), generator=generator)
        j = torch.randint(n, (max_pairs,), generator=generator)
    inter = y[i] != y[j]
    i, j = i[inter], j[inter]
    if len(i) == 0:
        raise ValueError("midpoint_third_class_share needs samples of at least two classes")
    predicted = (((x[i] + x[j]) / 2) @ w.T + b).argmax(1)
    return float(((predicted != y[i]) & (predicted != y[j])).double().mean())


# --------------------------------------------------------------------------------------------------
# predictions


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Naeini et al. 2015; Guo et al. 2017, eq. 3).

    Takes ``N x C`` logits and ``N`` labels. Confidence = max softmax probability, prediction = argmax.
    Confidences fall in ``n_bins`` equal-width bins ``(k/n, (k+1)/n]`` of ``[0, 1]``; returns
    ``sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|``, a float in ``[0, 1]``.
    """
    logits = torch.as_tensor(logits).detach().to(torch.float64)
    y = _as_labels(labels, logits.shape[0])
    if logits.shape[0] == 0:
        raise ValueError("expected_calibration_error needs at least one prediction")
    conf, pred = logits.softmax(1).max(1)
    correct = (pred == y.to(pred.device)).to(conf)
    # bin k holds (b_k, b_{k+1}], b = linspace(0, 1, n_bins + 1) (0 itself, impossible here, goes to bin 0)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=conf.dtype, device=conf.device)
    bins = torch.bucketize(conf, edges[1:-1], right=False)
    conf_sum = conf.new_zeros(n_bins).index_add_(0, bins, conf)
    acc_sum = conf.new_zeros(n_bins).index_add_(0, bins, correct)
    return float((acc_sum - conf_sum).abs().sum() / logits.shape[0])


def _predictions(logits_or_preds: torch.Tensor) -> torch.Tensor:
    p = torch.as_tensor(logits_or_preds).detach()
    return p.argmax(1) if p.dim() == 2 else p.to(torch.int64)


def per_class_accuracy(
    logits_or_preds: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Accuracy of each class. Takes ``N x C`` logits (argmax is taken) or ``N`` predicted ids, ``N``
    labels and the number of classes; returns a ``num_classes`` float64 tensor, ``nan`` for a class
    with no sample."""
    pred = _predictions(logits_or_preds)
    y = _as_labels(labels, pred.shape[0]).to(pred.device)
    total = torch.bincount(y, minlength=num_classes)[:num_classes].to(torch.float64)
    hit = torch.bincount(y[pred == y], minlength=num_classes)[:num_classes].to(torch.float64)
    return torch.where(total > 0, hit / total.clamp_min(1), torch.full_like(total, math.nan))


def balanced_accuracy(
    logits_or_preds: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None
) -> float:
    """Balanced accuracy: the mean of :func:`per_class_accuracy` over the classes that have samples
    (``num_classes`` defaults to ``max(label) + 1``). Returns a float in ``[0, 1]``."""
    y = torch.as_tensor(labels)
    if num_classes is None:
        num_classes = int(y.max()) + 1
    return float(per_class_accuracy(logits_or_preds, y, num_classes).nanmean())


def group_accuracy(per_class_acc: torch.Tensor, groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Mean accuracy of groups of classes (e.g. ``ammix.data.shot_groups``). Takes a per-class accuracy
    vector (from :func:`per_class_accuracy`) and ``{group name: class ids}``; returns
    ``{group name: mean accuracy}`` ignoring ``nan`` classes; an empty group gives ``nan``."""
    acc = torch.as_tensor(per_class_acc, dtype=torch.float64)
    out = {}
    for name, ids in groups.items():
        ids = list(ids)
        out[name] = float(acc[ids].nanmean()) if ids else math.nan
    return out


# --------------------------------------------------------------------------------------------------
# one-call report

REPORT_KEYS = (
    "alignment",
    "uniformity",
    "neighbour_uniformity",
    "intra_spread",
    "intra_spread_normalized",
    "min_centroid_distance",
    "mean_centroid_distance",
    "feature_norm",
)
HEAD_KEYS = ("margin_min", "margin_mean", "margin_std", "margin_ratio", "midpoint_third_class")
LOGIT_KEYS = ("ece", "accuracy", "balanced_accuracy")


def _or_nan(fn, *args, **kwargs) -> float:
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return math.nan


def collapse_report(
    features: torch.Tensor,
    labels: torch.Tensor,
    head=None,
    logits: torch.Tensor | None = None,
    t: float = 2.0,
    k: int | None = None,
    max_samples: int | None = 10_000,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """All the scalar collapse metrics in one call. Takes ``N x D`` features, ``N`` labels, optionally
    the linear ``head`` (an ``nn.Linear`` or a ``(weight, bias)`` pair) and ``N x C`` ``logits``.
    Returns a ``dict[str, float]``; a metric undefined for the input (e.g. a single class) is ``nan``.

    Keys (always):

    - ``alignment``: :func:`alignment`, ``alpha=2``, pooled over same-class pairs;
    - ``uniformity``: :func:`uniformity` with ``t``, on at most ``max_samples`` features (drawn with
      ``generator``, by default a fixed seed: the same run gives the same value);
    - ``neighbour_uniformity``: :func:`neighbour_uniformity` with ``k``, ``t``;
    - ``intra_spread`` / ``intra_spread_normalized``: :func:`intra_class_spread`, raw / normalised;
    - ``min_centroid_distance`` / ``mean_centroid_distance``: min / mean over pairs of distinct present
      classes of the raw centroid distance (:func:`centroid_distances`);
    - ``feature_norm``: :func:`feature_norms` (mean L2 norm).

    With ``head`` (margins of the raw class centroids, :func:`margin_to_boundary`):
    ``margin_min``, ``margin_mean``, ``margin_std`` (population std over classes) and ``margin_ratio``
    = min / max (1 = perfectly balanced; negative when some centroid is misclassified);
    ``midpoint_third_class``: :func:`midpoint_third_class_share` (pairs drawn with a fixed seed).

    With ``logits``: ``ece`` (:func:`expected_calibration_error`, 15 bins), ``accuracy`` and
    ``balanced_accuracy`` (:func:`balanced_accuracy`).
    """
    x = _as_features(features)
    y = _as_labels(labels, x.shape[0])
    report: dict[str, float] = {
        "alignment": _or_nan(alignment, x, y),
        "uniformity": _or_nan(uniformity, x, t=t, max_samples=max_samples,
                              generator=generator or torch.Generator().manual_seed(0)),
        "neighbour_uniformity": _or_nan(neighbour_uniformity, x, y, k=k, t=t),
        "intra_spread": _or_nan(intra_class_spread, x, y),
        "intra_spread_normalized": _or_nan(intra_class_spread, x, y, normalize=True),
    }
    d, classes = centroid_distances(x, y) if x.shape[0] else (x.new_zeros(0, 0), y)
    off = _off_diagonal(d) if len(classes) >= 2 else None
    report["min_centroid_distance"] = math.nan if off is None else float(off.min())
    report["mean_centroid_distance"] = math.nan if off is None else float(off.mean())
    report["feature_norm"] = _or_nan(feature_norms, x)

    if head is not None:
        weight, bias = _head_params(head)
        mu, classes = class_centroids(x, y)
        m = margin_to_boundary(mu, weight, bias, classes=classes)
        mx = float(m.max())
        report["margin_min"] = float(m.min())
        report["margin_mean"] = float(m.mean())
        report["margin_std"] = float(m.std(correction=0))
        # min / max reads as evenness only while some centroid is correctly classified: with every margin
        # negative the ratio turns positive, above 1 when they differ ("more even than equal").
        report["margin_ratio"] = float(m.min()) / mx if mx > 0 else math.nan
        report["midpoint_third_class"] = _or_nan(
            midpoint_third_class_share, x, y, weight, bias, generator=torch.Generator().manual_seed(0))
    if logits is not None:
        lg = torch.as_tensor(logits).detach()
        report["ece"] = _or_nan(expected_calibration_error, lg, y)
        report["accuracy"] = float((lg.argmax(1) == y.to(lg.device)).double().mean())
        report["balanced_accuracy"] = balanced_accuracy(lg, y, num_classes=lg.shape[1])
    return report
