"""ammix.losses against hand-computed values, on one-hot and on mixed (soft) targets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from common import SMOKE, tiny

from ammix.engine import ConfigError, load_config, train
from ammix.engine.loop import train_step
from ammix.losses import (
    BalancedSoftmaxLoss,
    LDAMLoss,
    SoftCrossEntropy,
    build_loss,
    class_balanced_weights,
    ldam_margins,
    loss_label,
    weighted_soft_cross_entropy,
)
from ammix.mixing import MIXERS, build_mixer, mixed_forward, one_hot, soft_cross_entropy
from ammix.models import build_model

LN2 = math.log(2.0)
LABELS = torch.tensor([0, 1, 2, 0, 1, 0])


def test_class_balanced_weights_by_effective_number():
    # beta 0.5: (1 - 0.5) / (1 - 0.5) = 1 and 0.5 / (1 - 0.25) = 2/3, scaled to sum to 2: 1.2, 0.8
    torch.testing.assert_close(class_balanced_weights([1, 2], beta=0.5), torch.tensor([1.2, 0.8]))


def test_ldam_margins_follow_the_inverse_fourth_root():
    torch.testing.assert_close(ldam_margins([1, 16], max_margin=0.5), torch.tensor([0.5, 0.25]))


def test_weighted_soft_cross_entropy_weights_each_part_of_a_mixed_target():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # softmax: (1/4, 3/4) and (1/2, 1/2)
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    # (1.2 ln 4 + 0.5 * 1.2 ln 2 + 0.5 * 0.8 ln 2) / (1.2 + 0.6 + 0.4) = 3.4 ln 2 / 2.2
    loss = weighted_soft_cross_entropy(logits, targets, torch.tensor([1.2, 0.8]))
    assert loss.item() == pytest.approx(3.4 * LN2 / 2.2)
    assert weighted_soft_cross_entropy(logits, targets).item() == pytest.approx((2 * LN2 + LN2) / 2)


def test_weighted_cross_entropy_on_one_hot_targets_is_torchs():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    weights = torch.tensor([0.5, 1.0, 1.5])
    expected = F.cross_entropy(logits, labels, weight=weights)
    one_hot = F.one_hot(labels, 3).float()
    torch.testing.assert_close(weighted_soft_cross_entropy(logits, one_hot, weights), expected)


def test_deferred_reweighting_switches_on_at_drw_epoch():
    loss = SoftCrossEntropy(class_counts=[1, 2], drw_epoch=2, beta=0.5)
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    assert loss.class_weights(1.99) is None
    assert loss(logits, targets, 1.99).item() == pytest.approx(1.5 * LN2)
    assert loss(logits, targets, 2.0).item() == pytest.approx(3.4 * LN2 / 2.2)


def test_ldam_subtracts_the_target_weighted_margin_then_scales():
    loss = LDAMLoss(class_counts=[1, 16], max_margin=0.5, scale=2.0)
    logits = torch.tensor([[0.5, 0.0], [0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    # row 1: 2 * ((0.5, 0) - (0.5, 0)) = (0, 0): ln 2.
    # row 2: 2 * ((0, 0) - (0.5 * 0.5, 0.5 * 0.25)) = (-0.5, -0.25): each class half the target.
    row2 = 0.5 * math.log(1 + math.exp(0.25)) + 0.5 * math.log(1 + math.exp(-0.25))
    assert loss(logits, targets, 0.0).item() == pytest.approx((LN2 + row2) / 2)


def test_ldam_on_hard_labels_matches_the_reference_formula():
    torch.manual_seed(0)
    counts = [50, 10, 2]
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 2, 0])
    margins = ldam_margins(counts)
    reference = F.cross_entropy(30.0 * (logits - F.one_hot(labels, 3) * margins), labels)  # LDAM-DRW code
    torch.testing.assert_close(LDAMLoss(counts)(logits, F.one_hot(labels, 3).float(), 0.0), reference)


def test_predictive_logits_are_ldams_scaled_cosines_and_the_others_as_they_are():
    """The analysis's calibration (ece) reads these: on LDAM's raw cosines in [-1, 1] every softmax is
    nearly flat, and a run with every test image right had an ece near 0.7."""
    cosines = torch.tensor([[0.9, -0.2, 0.1]])
    torch.testing.assert_close(LDAMLoss([50, 10, 2], scale=30.0).predictive_logits(cosines), 30.0 * cosines)
    for loss in (SoftCrossEntropy(), BalancedSoftmaxLoss(class_counts=[1, 3])):  # its prior: training only
        assert loss.predictive_logits(cosines) is cosines


def test_balanced_softmax_adds_the_log_prior():
    loss = BalancedSoftmaxLoss(class_counts=[1, 3], tau=1.0)
    # zero logits + log prior: softmax = prior = (1/4, 3/4)
    logits = torch.zeros(2, 2)
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    expected = (math.log(4.0) + 0.5 * math.log(4.0) + 0.5 * math.log(4.0 / 3.0)) / 2
    assert loss(logits, targets, 0.0).item() == pytest.approx(expected)


def test_plain_ce_is_the_mixing_soft_cross_entropy_with_label_smoothing():
    torch.manual_seed(0)
    logits, targets = torch.randn(4, 3), torch.softmax(torch.randn(4, 3), 1)
    ce = build_loss("ce", label_smoothing=0.1)
    torch.testing.assert_close(ce(logits, targets, 5.0), soft_cross_entropy(logits, targets, 0.1))


def test_build_loss_errors():
    with pytest.raises(ValueError, match="unknown loss 'focal'"):
        build_loss("focal")
    with pytest.raises(ValueError, match="unknown option.*tau.*for loss 'ldam'"):
        build_loss("ldam", class_counts=[2, 1], tau=1.0)
    with pytest.raises(ValueError, match="drw_epoch needs class_counts"):
        build_loss("ce", drw_epoch=3)


def test_loss_config_section_is_validated_in_one_line():
    cfg = load_config(None, ["loss.name=ldam", "loss.drw_epoch=160", "loss.scale=30", "model.head=cosine"])
    assert cfg.loss.name == "ldam" and cfg.loss.options == {"drw_epoch": 160, "scale": 30}
    assert cfg.to_dict()["loss"] == {"name": "ldam", "drw_epoch": 160, "scale": 30}
    assert load_config(None, ["loss.name=ldam", "loss.scale=1"]).loss.options == {"scale": 1}  # linear head
    for overrides, message in (
        (
            ["loss.name=ldma"],
            "loss.name = 'ldma': unknown loss; allowed: ce, ldam, balanced_softmax (did you mean ldam?)",
        ),
        (["loss.name=ldam", "loss.scale=-1"], "loss.scale = -1: scale must be > 0, got -1"),
        (["loss.beta=1.5", "loss.drw_epoch=1"], "loss.beta = 1.5: beta must be in [0, 1), got 1.5"),
        (["loss.drw_epoch=late"], "loss.drw_epoch = 'late': expected a number or null (default null)"),
        (["loss.tau=1"], "loss.tau = 1: unknown option(s) tau for loss 'ce'; known: drw_epoch, beta"),
        (
            ["loss.name=ldam"],  # on the default linear head: the loss blew up to ~1e9, chance accuracy
            "loss.name = 'ldam': its scale (30) multiplies the logits, meant for the cosine head's logits "
            "in [-1, 1]; on a linear head the loss blows up. Set model.head = cosine (as LDAM-DRW), or "
            "loss.scale <= 1 for a linear head",
        ),
    ):
        with pytest.raises(ConfigError) as err:
            load_config(None, overrides)
        assert str(err.value) == message


# ---------------------------------------------------------------- in the training step, with every mixer


@pytest.mark.parametrize("loss_name", ["ce", "ldam", "balanced_softmax"])
@pytest.mark.parametrize("method", sorted(MIXERS))
def test_every_loss_trains_with_every_mixer(method, loss_name):
    torch.manual_seed(0)
    model = build_model("small_cnn", 3, in_channels=1, width=2, hidden_dim=4)
    counts = torch.tensor([6, 3, 1])
    schedule = {"total": 4} if method == "am_mixup" else {}
    mixer = build_mixer(method, 3, class_counts=counts, generator=torch.Generator().manual_seed(0),
                        **schedule)
    loss_fn = build_loss(loss_name, counts, drw_epoch=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss, out = train_step(model, mixer, optimizer, torch.randn(6, 1, 8, 8), LABELS, 1.0, 3, loss_fn=loss_fn)
    assert torch.isfinite(loss) and out.logits.shape[1] == 3


def test_the_clean_loss_of_am_mixup_uses_the_same_loss():
    torch.manual_seed(0)
    model = build_model("small_cnn", 3, in_channels=1, width=2, hidden_dim=4).eval()
    x, counts = torch.randn(6, 1, 8, 8), [6, 3, 1]
    loss_fn = LDAMLoss(counts, scale=2.0)
    mixer = build_mixer("am_mixup", 3, generator=torch.Generator().manual_seed(0), clean_weight=0.5, total=4)
    out = mixed_forward(model, x, LABELS, mixer, 1.0)
    clean_loss = loss_fn(out.clean_logits, F.one_hot(LABELS, 3), 1.0)
    expected = loss_fn(out.logits, out.targets, 1.0) + 0.5 * clean_loss
    mixer.generator.manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss, _ = train_step(model, mixer, optimizer, x, LABELS, 1.0, 3, loss_fn=loss_fn)
    torch.testing.assert_close(loss, expected.detach())


def test_ldam_drw_run_end_to_end(tmp_path):
    overrides = [*tiny(2), "data.imbalance_factor=4", "loss.name=ldam", "loss.drw_epoch=1", "loss.scale=5",
                 "model.head=cosine"]
    summary = train(load_config(SMOKE, overrides), tmp_path / "run")
    assert summary["finished"]
    assert load_config(tmp_path / "run" / "config.yaml").loss.options == {"drw_epoch": 1, "scale": 5}


def test_loss_labels_name_the_reweighting():
    assert [loss_label(), loss_label("ldam", 160), loss_label("ce", 0)] == ["ce", "ldam-drw", "ce-cb"]


def test_the_losses_that_use_class_counts_refuse_a_class_without_samples():
    # A division by zero (class-balanced weights), 0 ** -1/4 (LDAM) or log 0 (balanced softmax):
    # the loss was NaN at the first step and the run stopped with "lower optim.lr".
    counts = [64, 10, 1, 0]
    builders = (lambda: class_balanced_weights(counts), lambda: ldam_margins(counts),
                lambda: SoftCrossEntropy(counts, drw_epoch=1), lambda: LDAMLoss(counts),
                lambda: BalancedSoftmaxLoss(counts))
    for build in builders:
        with pytest.raises(ValueError, match=r"class\(es\) 3 have none \(class_counts \[64, 10, 1, 0\]\)"):
            build()
    assert torch.isfinite(class_balanced_weights([64, 10, 1, 1])).all()


def test_a_long_tail_that_empties_a_class_is_a_config_error_before_training(tmp_path):
    overrides = [*tiny(2), "data.imbalance_factor=200", "loss.drw_epoch=1"]
    # Refused where the tail is cut (every method trained without the class, balanced accuracy averaged
    # it in as 0), before a loss that needs the counts would divide by zero.
    with pytest.raises(ConfigError, match=r"^data.imbalance_factor = 200.0: imbalance_factor 200 leaves "
                       r"class 2 without samples \(16 a class before the long tail\): at most 16$"):
        train(load_config(SMOKE, overrides), tmp_path / "run")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_to_moves_every_constant_tensor_of_the_loss():
    # On CUDA each step copied margins / prior / weights from the host, which a CUDA graph cannot capture.
    counts = [40, 20, 8, 2]
    for loss_fn in (SoftCrossEntropy(counts, drw_epoch=0), LDAMLoss(counts), BalancedSoftmaxLoss(counts)):
        assert loss_fn.to("meta") is loss_fn
        tensors = [v for v in vars(loss_fn).values() if isinstance(v, torch.Tensor)]
        assert tensors and all(t.device.type == "meta" for t in tensors)


def test_class_indices_for_targets_are_refused_not_broadcast():
    """Integer labels of a batch of C samples broadcast against (C, C) logits: a wrong loss, no error."""
    logits, labels = torch.randn(4, 4), torch.tensor([0, 1, 2, 3])
    message = r"^targets of shape \(4,\) for logits \(4, 4\): expected probabilities of the logits' shape"
    for loss_fn in (soft_cross_entropy, SoftCrossEntropy([9, 5, 3, 1], drw_epoch=0), LDAMLoss([9, 5, 3, 1]),
                    BalancedSoftmaxLoss([9, 5, 3, 1])):
        with pytest.raises(ValueError, match=message):
            loss_fn(logits, labels) if loss_fn is soft_cross_entropy else loss_fn(logits, labels, epoch=1.0)
    assert torch.isfinite(soft_cross_entropy(logits, one_hot(labels, 4)))
