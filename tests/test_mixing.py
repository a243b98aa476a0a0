"""Exact math of every mixing method on small tensors."""

import math
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ammix.mixing import (
    DEFAULT_LAM_AT_TOTAL,
    AsymptoticMidpointMixup,
    CutMix,
    ManifoldMixup,
    Mixup,
    NoMixing,
    Remix,
    build_mixer,
    interclass_partners,
    mixed_forward,
    one_hot,
    random_permutation,
    remix_label_weight,
    sample_beta,
    soft_cross_entropy,
)
from ammix.models import build_model


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


LABELS = torch.tensor([0, 1, 2, 0, 1, 3, 3])  # odd batch size, four classes


# ---------------------------------------------------------------- AM-mixup: the schedule


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.95, 0.99])
def test_default_schedule_formula(gamma):
    am = AsymptoticMidpointMixup(4, gamma=gamma)
    assert am.lam(0) == 1.0
    for e in [0.25, 1, 2.5, 7, 30, 100]:
        assert am.lam(e) == pytest.approx(0.5 + 0.5 * gamma**e, abs=1e-15)


def test_default_schedule_strictly_decreasing_above_half():
    am = AsymptoticMidpointMixup(4, gamma=0.95)
    values = [am.lam(e / 10) for e in range(0, 2001)]
    assert all(a > b for a, b in zip(values[:-1], values[1:], strict=True))
    assert all(v > 0.5 for v in values)
    assert values[-1] == pytest.approx(0.5, abs=1e-4)


def test_epoch_granularity_holds_lam_through_an_epoch():
    am = AsymptoticMidpointMixup(4, gamma=0.9, granularity="epoch")
    assert am.lam(2.0) == am.lam(2.99) == pytest.approx(0.5 + 0.5 * 0.9**2)
    assert am.lam(3.0) < am.lam(2.99)


def test_linear_cosine_constant_schedules():
    lin = AsymptoticMidpointMixup(4, schedule="linear", total=10, lam_end=0.6)
    assert [lin.lam(e) for e in (0, 5, 10, 20)] == pytest.approx([1.0, 0.8, 0.6, 0.6])
    cos = AsymptoticMidpointMixup(4, schedule="cosine", total=10)
    assert [cos.lam(e) for e in (0, 5, 10)] == pytest.approx([1.0, 0.75, 0.5])
    const = AsymptoticMidpointMixup(4, schedule="constant", lam_end=0.7)
    assert const.lam(0) == const.lam(50) == 0.7


def test_default_schedule_follows_the_run_length():
    # Neither gamma nor lam_at_total: lam reaches DEFAULT_LAM_AT_TOTAL = 0.51 at epoch `total`.
    assert DEFAULT_LAM_AT_TOTAL == 0.51
    short, long = AsymptoticMidpointMixup(4, total=3), AsymptoticMidpointMixup(4, total=200)
    assert short.gamma == pytest.approx(0.02 ** (1 / 3), abs=1e-15)
    assert [short.lam(e) for e in (0, 1, 3)] == pytest.approx([1.0, 0.6357209, 0.51], abs=1e-7)
    assert [long.lam(e) for e in (0, 10, 200)] == pytest.approx([1.0, 0.9111701, 0.51], abs=1e-7)


def test_given_gamma_wins_over_the_run_length():
    am = AsymptoticMidpointMixup(4, gamma=0.9, total=3)
    assert am.gamma == 0.9
    assert am.lam(3) == pytest.approx(0.8645, abs=1e-15)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"gamma": 0.9, "lam_at_total": 0.6, "total": 10}, "give gamma or lam_at_total, not both"),
        ({}, "the exp schedule needs total (training length in epochs) or gamma"),
        ({"lam_at_total": 0.6}, "the exp schedule needs total (training length in epochs) or gamma"),
        ({"total": 10, "lam_end": 0.6},
         "lam_end 0.6 needs lam_at_total in (0.6, 1) or gamma: the default lam_at_total (0.51) is not"),
        ({"total": 10, "schedule": "constant", "lam_at_total": 0.6}, "lam_at_total applies to the exp"),
        ({"total": 10, "schedule": "linear", "gamma": 0.5}, "gamma applies to the exp schedule only"),
    ],
)
def test_schedule_default_rule_errors(options, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        AsymptoticMidpointMixup(4, **options)


def test_non_exp_schedules_need_no_gamma():
    assert AsymptoticMidpointMixup(4, schedule="constant", lam_end=0.7).gamma is None
    assert AsymptoticMidpointMixup(4, schedule="linear", total=4).lam(2) == 0.75


def test_lam_at_total_fixes_the_ratio_reached_at_the_end():
    for total in (30, 200):
        am = AsymptoticMidpointMixup(4, lam_at_total=0.52, total=total)
        assert am.lam(total) == pytest.approx(0.52)
        assert am.lam(0) == 1.0


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"gamma": 1.0}, "gamma must be in (0, 1)"),
        ({"gamma": 0.0}, "gamma must be in (0, 1)"),
        ({"schedule": "step"}, "schedule must be one of"),
        ({"schedule": "linear"}, "needs total > 0"),
        ({"lam_end": 0.4}, "lam_end must be in [0.5, 1]"),
        ({"pairing": "perm"}, "pairing must be redraw or drop"),
        ({"label": "hard"}, "label must be single or soft"),
        ({"clean_weight": -1}, "clean_weight must be >= 0"),
        ({"site": "middle"}, "site must be"),
        ({"granularity": "batch"}, "granularity must be"),
    ],
)
def test_am_mixup_rejects_bad_options(options, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        AsymptoticMidpointMixup(4, **{"gamma": 0.9, **options})


# ---------------------------------------------------------------- AM-mixup: the mixing


def test_am_rows_are_interclass_interpolations_with_single_side_labels():
    h = torch.randn(7, 5)
    am = AsymptoticMidpointMixup(4, gamma=0.9, pairing="redraw", generator=gen(3))
    mixed, targets = am(h, LABELS, epoch=2.0)
    partners = interclass_partners(LABELS, gen(3))  # the same draw
    lam = 0.5 + 0.5 * 0.9**2
    assert mixed.shape == h.shape and mixed.dtype == h.dtype
    assert torch.all(LABELS[partners] != LABELS)
    torch.testing.assert_close(mixed, lam * h + (1 - lam) * h[partners], rtol=0, atol=1e-6)
    assert torch.equal(targets, F.one_hot(LABELS, 4).float())


def test_partner_is_uniform_among_other_class_samples():
    labels = torch.tensor([0, 0, 1, 2])
    g = gen(0)
    counts = torch.zeros(4)
    for _ in range(3000):
        counts[interclass_partners(labels, g)[0]] += 1
    assert counts[0] == 0 and counts[1] == 0
    assert abs(counts[2] / 3000 - 0.5) < 0.04


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=20), st.integers(0, 2**31))
def test_every_sample_gets_an_interclass_partner(labels, seed):
    labels = torch.tensor(labels)
    partners = interclass_partners(labels, gen(seed))
    if labels.unique().numel() == 1:
        assert torch.all(partners == -1)
    else:
        assert torch.all(labels[partners] != labels)


@pytest.mark.parametrize("pairing", ["redraw", "drop"])
def test_single_class_batch_and_batch_of_one_pass_through(pairing):
    am = AsymptoticMidpointMixup(3, gamma=0.95, pairing=pairing, generator=gen())
    for h, y in [(torch.randn(5, 4), torch.full((5,), 2)), (torch.randn(1, 4), torch.tensor([1]))]:
        mixed, targets = am(h, y, epoch=10)
        assert torch.equal(mixed, h)
        assert torch.equal(targets, F.one_hot(y, 3).float())
        assert torch.isfinite(mixed).all()


def test_drop_pairing_keeps_only_interclass_pairs_of_a_permutation():
    h = torch.randn(7, 3)
    am = AsymptoticMidpointMixup(4, gamma=0.8, pairing="drop", generator=gen(5))
    mixed, targets = am(h, LABELS, epoch=1.0)
    perm = random_permutation(7, gen(5), h.device)
    keep = LABELS != LABELS[perm]
    lam = 0.5 + 0.5 * 0.8
    assert mixed.shape[0] == int(keep.sum()) == targets.shape[0]
    torch.testing.assert_close(mixed, lam * h[keep] + (1 - lam) * h[perm][keep], rtol=0, atol=1e-6)
    assert torch.equal(targets, F.one_hot(LABELS[keep], 4).float())


def test_drop_pairing_drops_mostly_head_samples_on_long_tailed_batches():
    labels = torch.tensor([0] * 90 + [1] * 10)  # a 9:1 batch
    am = AsymptoticMidpointMixup(2, gamma=0.95, pairing="drop", generator=gen(1))
    kept = torch.zeros(2)
    for _ in range(200):
        _, targets = am(torch.randn(100, 2), labels, epoch=0)
        kept += targets.sum(0)
    # A head sample survives only when paired with a tail one (p = 0.1), a tail one almost always.
    assert kept[0] / (200 * 90) == pytest.approx(0.1, abs=0.02)
    assert kept[1] / (200 * 10) == pytest.approx(0.9, abs=0.03)


def test_fixed_ratio_one_is_the_identity_on_kept_rows():
    h = torch.randn(7, 3)
    am = AsymptoticMidpointMixup(4, schedule="constant", lam_end=1.0, pairing="redraw", generator=gen())
    mixed, _ = am(h, LABELS, epoch=50)
    assert torch.equal(mixed, h)


def test_soft_label_mode():
    h = torch.randn(7, 3)
    am = AsymptoticMidpointMixup(4, gamma=0.5, label="soft", pairing="redraw", generator=gen(2))
    _, targets = am(h, LABELS, epoch=1)
    partners = interclass_partners(LABELS, gen(2))
    expected = 0.75 * F.one_hot(LABELS, 4).float() + 0.25 * F.one_hot(LABELS[partners], 4).float()
    torch.testing.assert_close(targets, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_soft_targets_of_low_precision_features_are_float32(dtype):
    # Built in the features' bf16, 0.51 became 0.5117: the approach to the midpoint was lost.
    h = torch.randn(7, 3).to(dtype)
    am = AsymptoticMidpointMixup(4, schedule="constant", lam_end=0.51, label="soft", pairing="redraw",
                                 generator=gen(2))
    _, targets = am(h, LABELS, epoch=1)
    partners = interclass_partners(LABELS, gen(2))
    expected = 0.51 * F.one_hot(LABELS, 4).float() + 0.49 * F.one_hot(LABELS[partners], 4).float()
    assert targets.dtype == torch.float32
    torch.testing.assert_close(targets, expected)


@pytest.mark.parametrize("detach", [False, True])
def test_gradient_through_partner_unless_detached(detach):
    h = torch.randn(7, 3, requires_grad=True)
    am = AsymptoticMidpointMixup(4, gamma=0.5, detach_partner=detach, pairing="redraw", generator=gen(4))
    mixed, _ = am(h, LABELS, epoch=1)  # lam = 0.75
    mixed.sum().backward()
    partners = interclass_partners(LABELS, gen(4))
    times_partner = torch.bincount(partners, minlength=7).float()
    expected = 0.75 + (0 if detach else 0.25) * times_partner
    torch.testing.assert_close(h.grad, expected[:, None].expand(7, 3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_is_kept(dtype):
    h = torch.randn(7, 3).to(dtype)
    am = AsymptoticMidpointMixup(4, gamma=0.95, pairing="redraw", generator=gen())
    mixed, targets = am(h, LABELS, epoch=3)
    assert mixed.dtype == dtype and targets.shape == (7, 4)
    assert targets.dtype == torch.promote_types(dtype, torch.float32)
    assert torch.isfinite(mixed.float()).all()


def test_generator_makes_it_reproducible():
    h = torch.randn(7, 3)
    a, _ = AsymptoticMidpointMixup(4, gamma=0.95, generator=gen(9))(h, LABELS, epoch=1)
    b, _ = AsymptoticMidpointMixup(4, gamma=0.95, generator=gen(9))(h, LABELS, epoch=1)
    c, _ = AsymptoticMidpointMixup(4, gamma=0.95, generator=gen(10))(h, LABELS, epoch=1)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda(dtype):
    h = torch.randn(9, 3, device="cuda", dtype=dtype)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2], device="cuda")
    for generator in (None, torch.Generator(device="cuda").manual_seed(0), gen(0)):
        mixed, targets = AsymptoticMidpointMixup(3, gamma=0.95, generator=generator)(h, y, epoch=1)
        assert mixed.device.type == targets.device.type == "cuda" and mixed.dtype == dtype


# ---------------------------------------------------------------- baselines


def test_no_mixing():
    x = torch.randn(7, 3)
    out, targets = NoMixing(4)(x, LABELS)
    assert out is x and torch.equal(targets, F.one_hot(LABELS, 4).float())


def test_mixup_math():
    x = torch.randn(7, 3)
    out, targets = Mixup(4, alpha=1.0, generator=gen(1))(x, LABELS)
    g = gen(1)
    lam = sample_beta(1.0, g)
    perm = random_permutation(7, g, x.device)
    torch.testing.assert_close(out, lam * x + (1 - lam) * x[perm])
    y = F.one_hot(LABELS, 4).float()
    torch.testing.assert_close(targets, lam * y + (1 - lam) * y[perm])
    torch.testing.assert_close(targets.sum(1), torch.ones(7))


def test_sample_beta_matches_the_distribution():
    g = gen(0)
    draws = torch.tensor([sample_beta(2.0, g) for _ in range(4000)])
    assert draws.mean() == pytest.approx(0.5, abs=0.02)
    assert draws.var() == pytest.approx(1 / 20, abs=0.005)  # Beta(2, 2): var = 1 / (4 * 5)
    assert sample_beta(0.0, g) == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_label_mass_equals_pasted_area(seed):
    x = torch.arange(7, dtype=torch.float32)[:, None, None, None].expand(7, 2, 8, 6).clone()
    out, targets = CutMix(7, alpha=1.0, prob=1.0, generator=gen(seed))(x, torch.arange(7))
    torch.testing.assert_close(targets.sum(1), torch.ones(7))
    for i in range(7):
        own = (out[i] == i).float().mean()  # each image is constant, so its own pixels are identifiable
        assert targets[i, i] == pytest.approx(float(own), abs=1e-6)


def test_cutmix_probability_skips_batches():
    x = torch.randn(4, 1, 5, 5)
    out, targets = CutMix(4, prob=0.0, generator=gen())(x, torch.arange(4))
    assert torch.equal(out, x) and torch.equal(targets, torch.eye(4))
    with pytest.raises(ValueError, match="needs images"):
        CutMix(4, prob=1.0)(torch.randn(4, 3), torch.arange(4))


def test_remix_rule_on_hand_made_counts():
    counts = torch.tensor([1000.0, 100.0, 10.0])
    i, j = counts[[0, 2, 0, 1]], counts[[2, 0, 1, 0]]
    # head i with tail j and lam < tau: the label goes to the tail j.
    assert remix_label_weight(0.3, i, j).tolist() == pytest.approx([0.0, 0.3, 0.0, 0.3])
    # tail i with head j and 1 - lam < tau: the label stays with the tail i.
    assert remix_label_weight(0.7, i, j).tolist() == pytest.approx([0.7, 1.0, 0.7, 1.0])
    # ratios below kappa = 3 keep mixup's label.
    near = torch.tensor([100.0]), torch.tensor([50.0])
    assert remix_label_weight(0.2, *near).tolist() == pytest.approx([0.2])


def test_remix_targets_follow_the_rule():
    x = torch.randn(6, 3)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    counts = [500, 50, 5]
    out, targets = Remix(3, class_counts=counts, generator=gen(7))(x, labels)
    g = gen(7)
    lam = sample_beta(1.0, g)
    perm = random_permutation(6, g, x.device)
    c = torch.tensor(counts, dtype=torch.float64)
    w = remix_label_weight(lam, c[labels], c[labels[perm]])[:, None]
    y = F.one_hot(labels, 3).float()
    torch.testing.assert_close(out, lam * x + (1 - lam) * x[perm])
    torch.testing.assert_close(targets, w * y + (1 - w) * y[perm])
    with pytest.raises(ValueError, match="class_counts"):
        Remix(3, class_counts=[1, 2])


def test_manifold_mixup_draws_every_eligible_layer():
    mm = ManifoldMixup(4, layers=(0, 1, 2, 7), generator=gen())
    with pytest.warns(UserWarning, match=r"layers \[7\] are beyond"):
        drawn = {mm.choose_stage(3) for _ in range(200)}
    assert drawn == {0, 1, 2}  # 7 is beyond a 3-stage model


def test_a_site_beyond_the_model_is_a_value_error_before_any_draw():
    # check_stages is what the engine calls on a config before training (a one-line config error).
    mm = ManifoldMixup(4, layers=(3, 7), generator=gen())
    with pytest.raises(ValueError, match=r"none of layers \(3, 7\) is below the model's 3 stages"):
        mm.check_stages(3)
    mm.check_stages(4)
    am = AsymptoticMidpointMixup(4, gamma=0.9, site=4)
    with pytest.raises(ValueError, match="site 4 is beyond the model's 3 stages"):
        am.check_stages(3)
    for site in (3, "feature", "input"):
        AsymptoticMidpointMixup(4, gamma=0.9, site=site).check_stages(3)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_manifold_mixup_at_each_stage_equals_manual_mixing(layer):
    torch.manual_seed(0)
    model = build_model("small_cnn", 4, in_channels=1, feature_dim=3).eval()
    x, labels = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0])
    mm = ManifoldMixup(4, layers=(layer,), generator=gen(11))
    out = mixed_forward(model, x, labels, mm, epoch=0.0)
    g = gen(11)
    torch.randint(1, (1,), generator=g)  # the layer draw
    lam = sample_beta(2.0, g)
    perm = random_permutation(5, g, x.device)
    h = x
    for stage in model.stages[:layer]:
        h = stage(h)
    h = lam * h + (1 - lam) * h[perm]
    for stage in model.stages[layer:]:
        h = stage(h)
    torch.testing.assert_close(out.logits, model.head(h))
    y = F.one_hot(labels, 4).float()
    torch.testing.assert_close(out.targets, lam * y + (1 - lam) * y[perm])


# ---------------------------------------------------------------- the staged forward and the loss


def test_mixed_forward_feature_site_with_clean_loss():
    torch.manual_seed(0)
    model = build_model("small_cnn", 4, in_channels=1, feature_dim=2).eval()
    x = torch.randn(7, 1, 8, 8)
    am = AsymptoticMidpointMixup(4, gamma=0.5, clean_weight=0.5, pairing="redraw", generator=gen(1))
    out = mixed_forward(model, x, LABELS, am, epoch=1)
    h = model.features(x)
    partners = interclass_partners(LABELS, gen(1))
    torch.testing.assert_close(out.logits, model.head(0.75 * h + 0.25 * h[partners]))
    torch.testing.assert_close(out.clean_logits, model(x))
    loss = soft_cross_entropy(out.logits, out.targets)
    loss.backward()
    assert model.stages[0][0].weight.grad.abs().sum() > 0  # gradients reach the encoder


def test_mixed_forward_without_clean_loss_and_with_ce():
    model = build_model("small_cnn", 4, in_channels=1)
    out = mixed_forward(model, torch.randn(7, 1, 8, 8), LABELS, NoMixing(4), epoch=0.0)
    assert out.clean_logits is None and out.logits.shape == (7, 4)


def test_am_mixup_and_mixed_forward_require_the_epoch():
    # Without it AM-mixup would run at lam(0) = 1: plain cross-entropy, silently.
    am = AsymptoticMidpointMixup(4, gamma=0.5, generator=gen())
    model = build_model("small_cnn", 4, in_channels=1, feature_dim=2)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'epoch'"):
        am(torch.randn(7, 2), LABELS)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'epoch'"):
        mixed_forward(model, torch.randn(7, 1, 8, 8), LABELS, NoMixing(4))


def test_soft_cross_entropy_equals_torch_on_one_hot_targets():
    logits, labels = torch.randn(6, 5), torch.tensor([0, 1, 4, 2, 2, 3])
    y = one_hot(labels, 5)
    torch.testing.assert_close(soft_cross_entropy(logits, y), F.cross_entropy(logits, labels))
    torch.testing.assert_close(
        soft_cross_entropy(logits, y, label_smoothing=0.1),
        F.cross_entropy(logits, labels, label_smoothing=0.1),
    )


def test_a_row_without_target_mass_is_out_of_the_soft_cross_entropy():
    logits, labels = torch.randn(6, 5), torch.tensor([0, 1, 4, 2, 2, 3])
    y = one_hot(labels, 5)
    y[[1, 4]] = 0.0  # two rows out of the loss (AM-mixup's fixed-size drop pairing)
    kept = torch.tensor([0, 2, 3, 5])
    for eps in (0.0, 0.1):
        torch.testing.assert_close(
            soft_cross_entropy(logits, y, label_smoothing=eps),
            F.cross_entropy(logits[kept], labels[kept], label_smoothing=eps),
        )


def test_label_smoothing_is_applied_once_after_mixing():
    logits, y = torch.randn(6, 5), one_hot(torch.tensor([0, 1, 4, 2, 2, 3]), 5)
    perm, lam, eps = torch.tensor([3, 2, 5, 0, 1, 4]), 0.3, 0.2
    smooth = y * (1 - eps) + eps / 5
    mixed_smooth = lam * smooth + (1 - lam) * smooth[perm]
    mixed = lam * y + (1 - lam) * y[perm]
    torch.testing.assert_close(
        soft_cross_entropy(logits, mixed, label_smoothing=eps), soft_cross_entropy(logits, mixed_smooth)
    )


def test_build_mixer_errors_and_names():
    assert isinstance(build_mixer("am_mixup", 3, gamma=0.9), AsymptoticMidpointMixup)
    assert isinstance(build_mixer("remix", 3, class_counts=[3, 2, 1]), Remix)
    with pytest.raises(ValueError, match="unknown mixing method 'amix'; known: ce, mixup"):
        build_mixer("amix", 3)
    with pytest.raises(ValueError, match="unknown option.*gama.*known: gamma"):
        build_mixer("am_mixup", 3, gama=0.9)
    assert math.isclose(build_mixer("am_mixup", 3, gamma=0.9).lam(1), 0.95)


def test_manifold_mixup_warns_once_when_layers_are_beyond_the_model():
    """On a wrapped timm / torchvision model (one stage) manifold mixup can only mix the input."""
    mixer = ManifoldMixup(4)
    with pytest.warns(UserWarning, match=r"layers \[1, 2\] are beyond .* at \[0\] only: input mixup"):
        assert mixer.choose_stage(1) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mixer.choose_stage(1) == 0  # once
        assert ManifoldMixup(4).choose_stage(3) in (0, 1, 2)  # every layer below 3 stages: no warning


def test_am_mixup_warns_once_when_the_epoch_looks_like_a_step_count():
    am = AsymptoticMidpointMixup(4, total=200)
    assert am.lam(400) == pytest.approx(0.5001, abs=2e-4)  # allowed, and past 2 x total: the midpoint
    with pytest.warns(UserWarning, match=r"epoch 401 is more than twice total 200; both are in epochs"):
        am.lam(401)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        am.lam(5000)  # once
        AsymptoticMidpointMixup(4, total=200).lam(200)
    # the once-flag is state, not an option: no run records it (a sweep would see another mixer)
    assert "_warned" not in am.settings() and "_warned" not in repr(am)
