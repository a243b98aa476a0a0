"""Tests of ammix.analysis: metrics against hand-computed values and brute-force N x N versions."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ammix.analysis import (
    REPORT_KEYS,
    alignment,
    balanced_accuracy,
    centroid_distances,
    class_centroids,
    class_feature_norms,
    collapse_report,
    expected_calibration_error,
    feature_map_figure,
    feature_norms,
    group_accuracy,
    intra_class_spread,
    margin_to_boundary,
    midpoint_third_class_share,
    min_centroid_distance,
    neighbour_uniformity,
    per_class_accuracy,
    plot_feature_map,
    uniformity,
)

SQUARE = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # unit circle, 90 deg apart


def _random(n=60, d=5, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) + 2.0 * torch.randn(c, d, generator=g)[torch.arange(n) % c]
    y = torch.arange(n) % c
    return x, y


# ------------------------------------------------------------------------------------------------
# brute-force references (N x N)


def brute_alignment(x, y, alpha=2.0, reduction="pairs"):
    x = torch.nn.functional.normalize(x.double(), dim=1)
    d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").pow(alpha)
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    if reduction == "pairs":
        return float(d[same].mean())
    means = []
    for c in y.unique():
        m = same & (y[:, None] == c)
        if m.any():
            means.append(d[m].mean())
    return float(torch.stack(means).mean())


def brute_uniformity(x, t=2.0):
    x = torch.nn.functional.normalize(x.double(), dim=1)
    d2 = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
    i, j = torch.triu_indices(len(x), len(x), offset=1)
    return float(torch.exp(-t * d2[i, j]).mean().log())


def brute_neighbour_uniformity(x, y, k, t=2.0):
    x = torch.nn.functional.normalize(x.double(), dim=1)
    mus = torch.stack([x[y == c].mean(0) for c in y.unique()])
    mus = torch.nn.functional.normalize(mus, dim=1)
    vals = []
    for a in range(len(mus)):
        d2 = sorted(float((mus[a] - mus[b]).pow(2).sum()) for b in range(len(mus)) if b != a)
        vals += [math.exp(-t * v) for v in d2[:k]]
    return math.log(sum(vals) / len(vals))


def brute_ece(logits, labels, n_bins):
    p = logits.double().softmax(1)
    conf, pred = p.max(1)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.double().mean() * abs((pred[m] == labels[m]).double().mean() - conf[m].mean())
    return float(ece)


def brute_margin(mu, c, w, b):
    """Distance to the nearest tie hyperplane by projecting onto each one."""
    best = math.inf
    for k in range(len(w)):
        if k == c:
            continue
        n = w[c] - w[k]
        off = b[c] - b[k]
        dist = (float(n @ mu) + float(off)) / float(n.norm())
        best = min(best, dist)
    return best


# ------------------------------------------------------------------------------------------------
# alignment


def test_alignment_hand_computed():
    # class 0: (1,0), (0,1), (1,0); class 1: (-1,0), (0,-1)  -> ||.||^2 in class 0: 2, 0, 2 (x2 ordered)
    x = torch.tensor([[1.0, 0], [0, 1], [1, 0], [-1, 0], [0, -1]])
    y = torch.tensor([0, 0, 0, 1, 1])
    assert alignment(x, y) == pytest.approx((6 * 4 / 3 + 2 * 2) / 8)
    assert alignment(x, y, reduction="classes") == pytest.approx((4 / 3 + 2) / 2)
    assert alignment(3.0 * x, y) == pytest.approx(1.5)  # features are normalised first
    assert alignment(SQUARE, torch.tensor([0, 0, 1, 1]), alpha=1) == pytest.approx(math.sqrt(2))
    assert alignment(SQUARE, torch.tensor([0, 1, 0, 1])) == pytest.approx(4.0)  # antipodal pairs


def test_alignment_identical_points_is_zero():
    x = torch.tensor([[0.3, 0.4]]).repeat(100, 1)
    y = torch.arange(100) % 3
    assert alignment(x, y) == pytest.approx(0.0, abs=1e-12)
    assert alignment(x, y, alpha=1) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("reduction", ["pairs", "classes"])
def test_alignment_matches_brute_force(alpha, reduction):
    x, y = _random(n=61, c=4)
    y[-1] = 7  # a singleton class: no pair, ignored
    ref = brute_alignment(x, y, alpha, reduction)
    assert alignment(x, y, alpha=alpha, reduction=reduction) == pytest.approx(ref, rel=1e-9)
    assert alignment(x, y, alpha=alpha, reduction=reduction, chunk_size=4) == pytest.approx(ref, rel=1e-9)


def test_alignment_sampled_pairs():
    x, y = _random(n=80, c=3)
    ref = brute_alignment(x, y, 1.0)
    g = torch.Generator().manual_seed(0)
    est = alignment(x, y, alpha=1.0, max_pairs=200_000, generator=g)
    assert est == pytest.approx(ref, rel=0.01)
    a = alignment(x, y, alpha=1.0, max_pairs=100, generator=torch.Generator().manual_seed(3))
    b = alignment(x, y, alpha=1.0, max_pairs=100, generator=torch.Generator().manual_seed(3))
    assert a == b
    # alpha = 2 is always exact
    assert alignment(x, y, max_pairs=10) == pytest.approx(brute_alignment(x, y), rel=1e-9)


def test_alignment_needs_a_pair():
    with pytest.raises(ValueError):
        alignment(SQUARE, torch.arange(4))


# ------------------------------------------------------------------------------------------------
# uniformity


def test_uniformity_hand_computed():
    # 4 adjacent pairs at ||.||^2 = 2 and 2 antipodal pairs at 4
    expected = math.log((4 * math.exp(-4) + 2 * math.exp(-8)) / 6)
    assert uniformity(SQUARE) == pytest.approx(expected, rel=1e-12)
    assert uniformity(SQUARE[:2]) == pytest.approx(-4.0, rel=1e-12)
    assert uniformity(SQUARE[:2], t=1.0) == pytest.approx(-2.0, rel=1e-12)


def test_uniformity_tiny_batches():
    assert uniformity(SQUARE[[0, 2]]) == pytest.approx(-8.0, abs=1e-12)  # antipodal: -4t
    assert uniformity(torch.tensor([[2.0, 1.0], [2.0, 1.0]])) == pytest.approx(0.0, abs=1e-12)
    assert uniformity(torch.tensor([[2.0, 1.0]] * 5)) == pytest.approx(0.0, abs=1e-12)
    # far apart with a huge t: finite, no underflow to -inf
    u = uniformity(SQUARE[[0, 2]], t=1000.0)
    assert math.isfinite(u) and u == pytest.approx(-4000.0)
    u = uniformity(SQUARE, t=1e4)
    assert math.isfinite(u) and u == pytest.approx(-2e4 + math.log(4 / 6))
    with pytest.raises(ValueError):
        uniformity(SQUARE[:1])
    with pytest.raises(ValueError):
        uniformity(SQUARE[:0])


def test_uniformity_matches_brute_force_and_chunks():
    x, _ = _random(n=57, d=6)
    ref = brute_uniformity(x)
    assert uniformity(x) == pytest.approx(ref, rel=1e-10)
    for chunk in (1, 5, 56, 57, 1000):
        assert uniformity(x, chunk_size=chunk) == pytest.approx(ref, rel=1e-10)
    assert uniformity(x, t=0.5, chunk_size=8) == pytest.approx(brute_uniformity(x, t=0.5), rel=1e-10)
    assert uniformity(x.float()) == pytest.approx(ref, rel=1e-6)


def test_uniformity_subsample():
    x, _ = _random(n=50)
    assert uniformity(x, max_samples=50) == pytest.approx(brute_uniformity(x), rel=1e-10)
    idx = torch.randperm(50, generator=torch.Generator().manual_seed(5))[:20]
    got = uniformity(x, max_samples=20, generator=torch.Generator().manual_seed(5))
    assert got == pytest.approx(brute_uniformity(x[idx]), rel=1e-10)


# ------------------------------------------------------------------------------------------------
# neighbour uniformity


def test_neighbour_uniformity_hand_computed():
    y = torch.arange(4)
    assert neighbour_uniformity(SQUARE, y, k=1) == pytest.approx(-4.0)  # nearest centroid at ||.||^2 = 2
    # k = C - 1: uniformity of the centroids over all pairs
    assert neighbour_uniformity(SQUARE, y, k=3) == pytest.approx(uniformity(SQUARE))
    assert neighbour_uniformity(SQUARE, y) == pytest.approx(uniformity(SQUARE))  # default min(5, C-1)
    # two classes collapsed onto each other: the nearest neighbour sees it, all-pairs uniformity less so
    x = torch.cat([SQUARE, SQUARE[:1] + torch.tensor([[0.0, 0.01]])])
    y5 = torch.arange(5)
    assert neighbour_uniformity(x, y5, k=1) > -0.5 * 4 / 5 - 1.0  # well above the square's -4
    with pytest.raises(ValueError):
        neighbour_uniformity(SQUARE, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError):
        neighbour_uniformity(SQUARE, y, k=4)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_neighbour_uniformity_matches_brute_force(k):
    x, y = _random(n=90, d=4, c=9, seed=2)
    assert neighbour_uniformity(x, y, k=k) == pytest.approx(brute_neighbour_uniformity(x, y, k), rel=1e-10)


# ------------------------------------------------------------------------------------------------
# centroids, spread, norms


def test_spread_and_centroid_distances_hand_computed():
    x = torch.tensor([[0.0, 0], [2, 0], [0, 1], [0, 3], [0, 5]])
    y = torch.tensor([0, 0, 1, 1, 1])
    mu, classes = class_centroids(x, y)
    assert torch.allclose(mu, torch.tensor([[1.0, 0], [0, 3]], dtype=torch.float64))
    assert classes.tolist() == [0, 1]
    assert intra_class_spread(x, y) == pytest.approx((1 + 8 / 3) / 2)
    d, _ = centroid_distances(x, y)
    assert d.shape == (2, 2) and d[0, 1] == pytest.approx(math.sqrt(10)) and d[0, 0] == 0
    assert min_centroid_distance(x, y) == pytest.approx(math.sqrt(10))
    # normalised: class 0 = {(0,0) -> (0,0), (1,0)}, centroid (0.5, 0); class 1 all at (0,1)
    assert intra_class_spread(x, y, normalize=True) == pytest.approx((0.25 + 0.25) / 2 / 2)
    assert min_centroid_distance(x, y, normalize=True) == pytest.approx(math.sqrt(0.25 + 1))
    assert feature_norms(x) == pytest.approx((0 + 2 + 1 + 3 + 5) / 5)
    norms, classes = class_feature_norms(x, y)
    assert norms.tolist() == pytest.approx([1.0, 3.0]) and classes.tolist() == [0, 1]
    with pytest.raises(ValueError):
        min_centroid_distance(x, torch.zeros(5, dtype=torch.long))


def test_spread_matches_brute_force():
    x, y = _random(n=40, d=3, c=5, seed=4)
    ref = sum(float((x[y == c] - x[y == c].mean(0)).pow(2).sum(1).mean()) for c in range(5)) / 5
    assert intra_class_spread(x, y) == pytest.approx(ref, rel=1e-6)
    mus = torch.stack([x[y == c].double().mean(0) for c in range(5)])
    d, _ = centroid_distances(x, y)
    assert torch.allclose(d, torch.cdist(mus, mus), atol=1e-9)


# ------------------------------------------------------------------------------------------------
# margins


def test_margin_two_classes():
    w = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # boundary x = 0
    mu = torch.tensor([[2.0, 0.0], [-3.0, 1.0]])
    assert margin_to_boundary(mu, w).tolist() == pytest.approx([2.0, 3.0])
    assert margin_to_boundary(mu, w, torch.tensor([1.0, 0.0])).tolist() == pytest.approx([2.5, 2.5])
    # misclassified centroid: negative
    assert margin_to_boundary(torch.tensor([[-1.0, 0.0]]), w).tolist() == pytest.approx([-1.0])
    # rows with explicit class ids
    got = margin_to_boundary(torch.tensor([[-3.0, 1.0]]), w, classes=torch.tensor([1]))
    assert got.tolist() == pytest.approx([3.0])


def test_margin_three_classes():
    ang = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3])
    w = torch.stack([ang.cos(), ang.sin()], 1)
    r = 2.0
    mu = r * w  # each centroid on its own weight's direction
    assert margin_to_boundary(mu, w).tolist() == pytest.approx([math.sqrt(3) / 2 * r] * 3)
    off = torch.tensor([[1.0, 0.5]])
    expected = (1.5 - math.sqrt(3) / 4) / math.sqrt(3)  # closer to class 1's boundary
    assert margin_to_boundary(off, w).tolist() == pytest.approx([expected])
    g = torch.Generator().manual_seed(0)
    w, b, mu = torch.randn(5, 3, generator=g), torch.randn(5, generator=g), torch.randn(5, 3, generator=g)
    got = margin_to_boundary(mu, w, b)
    assert got.tolist() == pytest.approx([brute_margin(mu[c], c, w, b) for c in range(5)], rel=1e-6)


# ------------------------------------------------------------------------------------------------
# predictions


def test_ece_hand_computed():
    l3, l9 = math.log(3.0), math.log(9.0)  # confidences 0.75 and 0.9
    logits = torch.tensor([[l3, 0.0], [l3, 0.0], [l9, 0.0], [l9, 0.0]])
    labels = torch.tensor([0, 1, 0, 0])
    # bin (0.733, 0.8]: acc 0.5, conf 0.75; bin (0.867, 0.933]: acc 1, conf 0.9
    assert expected_calibration_error(logits, labels) == pytest.approx(0.5 * 0.25 + 0.5 * 0.1)
    assert expected_calibration_error(logits[:2], torch.tensor([1, 1])) == pytest.approx(0.75)
    perfect = torch.tensor([[l3, 0.0]] * 4, dtype=torch.float64)
    assert expected_calibration_error(perfect, torch.tensor([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-12)


def test_ece_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(500, 6, generator=g)
    labels = torch.randint(6, (500,), generator=g)
    for n_bins in (1, 10, 15):
        ref = brute_ece(logits, labels, n_bins)
        assert expected_calibration_error(logits, labels, n_bins) == pytest.approx(ref, rel=1e-9)


def test_accuracies():
    preds = torch.tensor([0, 0, 1, 2, 2, 2])
    labels = torch.tensor([0, 1, 1, 2, 2, 0])
    acc = per_class_accuracy(preds, labels, num_classes=4)
    assert acc[:3].tolist() == pytest.approx([0.5, 0.5, 1.0]) and math.isnan(acc[3])
    logits = torch.nn.functional.one_hot(preds, 4).float()
    assert torch.equal(per_class_accuracy(logits, labels, 4).nan_to_num(-1), acc.nan_to_num(-1))
    assert balanced_accuracy(preds, labels) == pytest.approx(2 / 3)
    assert balanced_accuracy(logits, labels, num_classes=4) == pytest.approx(2 / 3)
    groups = {"many": [0, 1], "few": [2, 3], "none": []}
    got = group_accuracy(acc, groups)
    assert got["many"] == pytest.approx(0.5) and got["few"] == pytest.approx(1.0) and math.isnan(got["none"])


# ------------------------------------------------------------------------------------------------
# report


def test_margin_ratio_is_undefined_when_every_centroid_is_misclassified():
    # margins -1.5 and -2: min / max was 1.33, "more even than all equal"
    x = torch.tensor([[-1.5, 0.0], [-1.5, 0.0], [2.0, 0.0], [2.0, 0.0]])
    head = (torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.zeros(2))
    rep = collapse_report(x, torch.tensor([0, 0, 1, 1]), head=head)
    assert rep["margin_min"] == pytest.approx(-2.0) and math.isnan(rep["margin_ratio"])


def test_collapse_report():
    x, y = _random(n=80, d=2, c=4, seed=3)
    torch.manual_seed(0)
    head = torch.nn.Linear(2, 4)
    logits = head(x)  # requires grad: the report must detach
    rep = collapse_report(x, y, head=head, logits=logits)
    for key in REPORT_KEYS + ("margin_min", "margin_mean", "margin_std", "margin_ratio", "ece"):
        assert key in rep and isinstance(rep[key], float)
    assert rep["alignment"] == pytest.approx(alignment(x, y))
    assert rep["uniformity"] == pytest.approx(uniformity(x))
    assert rep["neighbour_uniformity"] == pytest.approx(neighbour_uniformity(x, y))
    assert rep["intra_spread"] == pytest.approx(intra_class_spread(x, y))
    assert rep["min_centroid_distance"] == pytest.approx(min_centroid_distance(x, y))
    assert rep["feature_norm"] == pytest.approx(feature_norms(x))
    mu, _ = class_centroids(x, y)
    m = margin_to_boundary(mu, head.weight, head.bias)
    assert rep["margin_min"] == pytest.approx(float(m.min()))
    assert rep["margin_ratio"] == pytest.approx(float(m.min() / m.max())) and float(m.max()) > 0
    assert rep["ece"] == pytest.approx(expected_calibration_error(logits, y))
    assert rep["balanced_accuracy"] == pytest.approx(balanced_accuracy(logits, y, 4))
    # head as a (weight, bias) pair
    rep2 = collapse_report(x, y, head=(head.weight, head.bias))
    assert rep2["margin_mean"] == pytest.approx(rep["margin_mean"])
    assert set(collapse_report(x, y)) == set(REPORT_KEYS)


def test_collapse_report_subsamples_uniformity_the_same_way_each_time():
    x, y = _random(n=60, d=3, c=3, seed=4)
    torch.manual_seed(1)
    first = collapse_report(x, y, max_samples=20)["uniformity"]
    assert collapse_report(x, y, max_samples=20)["uniformity"] == first  # the global RNG has moved on
    assert first != pytest.approx(uniformity(x))  # 20 of the 60 rows, not all


def test_collapse_report_single_class_gives_nan():
    rep = collapse_report(SQUARE, torch.zeros(4, dtype=torch.long))
    assert math.isnan(rep["neighbour_uniformity"]) and math.isnan(rep["min_centroid_distance"])
    assert math.isfinite(rep["alignment"]) and math.isfinite(rep["uniformity"])


# ------------------------------------------------------------------------------------------------
# figures


def _png_pdf_ok(png, pdf):
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    assert b"/CreationDate" not in pdf.read_bytes()  # remade from the same runs, the same file


def test_feature_map_figure(tmp_path):
    from matplotlib._pylab_helpers import Gcf

    x, y = _random(n=60, d=2, c=3, seed=5)
    head = torch.nn.Linear(2, 3)
    rep = collapse_report(x, y, head=head)
    panels = [
        ("CE", x, y, head, rep),
        ("AM-mixup", x.numpy() * 0.5, y.numpy(), (head.weight.detach(), head.bias.detach()), None),
    ]
    png, pdf = feature_map_figure(panels, ["a", "b", "c"], tmp_path / "sub" / "toy", grid=50)
    assert png == tmp_path / "sub" / "toy.png" and pdf == tmp_path / "sub" / "toy.pdf"
    _png_pdf_ok(png, pdf)
    assert Image.open(png).mode == "P"  # a 256-colour palette, not full colour
    assert Gcf.get_num_fig_managers() == 0  # no pyplot state


def test_feature_map_title_says_dataset_and_setting():
    from ammix.analysis import figures

    x, y = _random(n=30, d=2, c=2, seed=6)
    panels = [("CE", x, y, torch.nn.Linear(2, 2), None)]
    fig = figures._feature_maps(panels, None, "mini-cifar, long-tailed", 3.6, 20, figures.CAPTION_KEYS)
    assert fig._suptitle.get_text() == "mini-cifar, long-tailed"
    image = figures.feature_map_image(panels, None, title="mini-cifar, long-tailed", dpi=50, grid=20)
    assert image.dtype == np.uint8 and image.shape == (int(4.5 * 50), int(4.4 * 50), 3)


def test_plot_feature_map_on_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    x, y = _random(n=30, d=2, c=2, seed=6)
    image = plot_feature_map(ax, x, y, torch.nn.Linear(2, 2), grid=20)
    data = image.get_array()
    assert data.shape == (20, 20) and float(data.min()) >= 0.5 - 1e-9 and float(data.max()) <= 1.0
    with pytest.raises(ValueError):
        plot_feature_map(ax, torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.nn.Linear(3, 2))


def test_feature_map_of_an_ldam_run_is_shaded_by_its_scaled_cosines():
    # An LDAM run predicts softmax(30 cos(w_c, f)); its map was shaded by softmax(w_c / |w_c| . f), which
    # has the same argmax regions but another confidence (here flatter: features of norm about 1).
    from matplotlib.figure import Figure

    from ammix.losses import LDAMLoss
    from ammix.models import CosineLinear

    torch.manual_seed(0)
    head, loss = CosineLinear(2, 3), LDAMLoss([50, 20, 5])
    x, y = _random(n=30, d=2, c=3, seed=7)
    x = x / x.norm(dim=1, keepdim=True).max()
    image = plot_feature_map(Figure().subplots(), x, y, lambda f: loss.predictive_logits(head(f)), grid=20)
    lo0, hi0, lo1, hi1 = image.get_extent()
    gx, gy = np.meshgrid(np.linspace(lo0, hi0, 20), np.linspace(lo1, hi1, 20))
    points = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1))
    unit_w = torch.nn.functional.normalize(head.weight.detach().double(), dim=1)
    cosines = torch.nn.functional.normalize(points, dim=1) @ unit_w.T
    expected = (30 * cosines).softmax(1).max(1).values.reshape(20, 20).numpy()
    np.testing.assert_allclose(image.get_array(), expected, atol=1e-5)
    unscaled = (points @ unit_w.T).softmax(1).max(1).values.reshape(20, 20).numpy()
    assert np.abs(unscaled - expected).max() > 0.3


def test_midpoint_third_class_share_counts_midpoints_in_a_third_region():
    # Three classes on a line: 0 at -2, 1 at 0, 2 at +2; the head predicts the nearest of the three.
    # Three classes on a line, the head predicts the nearest of -2, 0, 2 (logit -(x - c)^2 + x^2).
    features, labels = torch.tensor([[-2.2], [0.0], [2.2]]), torch.tensor([0, 1, 2])
    weight, bias = torch.tensor([[-2.0], [0.0], [2.0]]), torch.tensor([-2.0, 0.0, -2.0])
    # midpoints: (0, 1) -> -1.1, class 0; (1, 2) -> 1.1, class 2; (0, 2) -> 0, class 1: a third class
    assert midpoint_third_class_share(features, labels, weight, bias) == pytest.approx(1 / 3)
    # In 2-D with the three classes on a triangle, no midpoint lies in the third region.
    angles = torch.tensor([0.0, 2.0944, 4.1888])
    corners = torch.stack([angles.cos(), angles.sin()], 1)
    assert midpoint_third_class_share(corners, labels, corners) == 0.0
    with pytest.raises(ValueError, match="two classes"):
        midpoint_third_class_share(features, torch.zeros(3, dtype=torch.long), weight, bias)


def test_midpoint_third_class_share_samples_pairs_when_there_are_many():
    g = torch.Generator().manual_seed(0)
    features, labels = torch.randn(300, 2, generator=g), torch.randint(0, 4, (300,), generator=g)
    weight = torch.randn(4, 2, generator=g)
    exact = midpoint_third_class_share(features, labels, weight, max_pairs=10**6)
    sampled = midpoint_third_class_share(features, labels, weight, max_pairs=5000,
                                         generator=torch.Generator().manual_seed(1))
    assert 0.0 < exact < 1.0 and sampled == pytest.approx(exact, abs=0.03)
