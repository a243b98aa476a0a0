"""The L-BFGS linear probe (``train.probe: lbfgs``): the fit against scikit-learn and the optimality
condition on standardised features, its invariance to the features' scale, and end to end on a
coarse-pre-trained backbone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from common import SMOKE, tiny
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ammix.data import DeviceLoader
from ammix.engine import ConfigError, load_checkpoint, load_config, read_metrics, train
from ammix.engine.loop import describe_training, load_data, make_model
from ammix.engine.probe import GRAD_TOLERANCE, extract_features, fit_linear_head, standardise
from ammix.experiments.report import probe_fit


def blobs(n_per_class=40, classes=4, dim=5, seed=0):
    """Overlapping Gaussian blobs: a finite optimum even without a penalty."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    x = torch.cat([centres[c] + torch.randn(n_per_class, dim, generator=g) for c in range(classes)])
    return x, torch.arange(classes).repeat_interleave(n_per_class)


@pytest.mark.parametrize("classes", [2, 4])
def test_fit_is_the_optimum_of_the_penalized_objective(classes):
    x, y = blobs(classes=classes)
    x = 3.0 + x * torch.tensor([1.0, 10.0, 0.1, 1.0, 2.0])  # offsets and scales for the standardising
    wd = 0.01
    fit = fit_linear_head(x, y, classes, wd)
    assert fit.converged and fit.grad_max <= GRAD_TOLERANCE
    # Mean and population std per dimension, computed here independently.
    mean = x.double().mean(0)
    scale = (x.double() - mean).pow(2).mean(0).sqrt()
    z = (x.double() - mean) / scale
    # The head on standardised features, V = W * scale and c = b + W @ mean, gives the same logits...
    v = (fit.weight.double() * scale).requires_grad_()
    c = (fit.bias.double() + fit.weight.double() @ mean).requires_grad_()
    assert torch.allclose(z @ v.T + c, x.double() @ fit.weight.double().T + fit.bias.double(), atol=1e-4)
    # ...and the gradient of mean CE + wd/2 |V|^2 vanishes there.
    loss = F.cross_entropy(z @ v.T + c, y) + 0.5 * wd * v.pow(2).sum()
    loss.backward()
    assert v.grad.abs().max() < 1e-4 and c.grad.abs().max() < 1e-4
    assert fit.loss == pytest.approx(loss.item(), rel=1e-6)
    predictions = (x @ fit.weight.T + fit.bias).argmax(1)
    assert fit.train_acc == pytest.approx(100.0 * (predictions == y).float().mean())


def test_fit_matches_scikit_learn_after_standard_scaling():
    x, y = blobs()
    x = x * torch.tensor([1.0, 5.0, 0.2, 1.0, 1.0]) - 2.0
    wd = 0.02
    fit = fit_linear_head(x, y, 4, wd)
    logistic = LogisticRegression(C=1.0 / (wd * len(y)), tol=1e-10, max_iter=10_000)
    ref = make_pipeline(StandardScaler(), logistic).fit(x.numpy(), y.numpy())
    # The pipeline's head in raw coordinates: coef / scale, intercept - (coef / scale) @ mean.
    scaler = ref.named_steps["standardscaler"]
    w_ref = torch.tensor(logistic.coef_ / scaler.scale_, dtype=torch.float32)
    b_ref = logistic.intercept_ - (logistic.coef_ / scaler.scale_) @ scaler.mean_
    b_ref = torch.tensor(b_ref, dtype=torch.float32)
    # Both stop at a small gradient (this fit at 1e-5), not at the exact optimum: agreement to 1e-3.
    # Softmax logits are defined up to a shift shared by the classes: compare centred biases.
    assert torch.allclose(fit.weight, w_ref, atol=1e-3)
    assert torch.allclose(fit.bias - fit.bias.mean(), b_ref - b_ref.mean(), atol=1e-3)


def test_probe_reads_the_same_whatever_the_scale_of_each_dimension():
    x, y = blobs()
    stretch, shift = torch.tensor([100.0, 0.01, 1.0, 7.0, 0.5]), torch.tensor([50.0, -3.0, 0.0, 1.0, 9.0])
    fit, moved = fit_linear_head(x, y, 4, 0.01), fit_linear_head(x * stretch + shift, y, 4, 0.01)
    logits = x @ fit.weight.T + fit.bias
    assert torch.allclose((x * stretch + shift) @ moved.weight.T + moved.bias, logits, atol=1e-3)
    assert moved.loss == pytest.approx(fit.loss, rel=1e-6) and moved.train_acc == fit.train_acc


def test_standardise_keeps_constant_dimensions_finite():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    mean, scale = standardise(x)
    assert mean.tolist() == [2.0, 5.0]
    assert scale.tolist() == [1.0, 1.0]  # the population std, 1, and a constant dimension's 1
    y = torch.tensor([0, 1])
    fit = fit_linear_head(x, y, 2, 0.1)
    assert torch.isfinite(fit.weight).all() and fit.weight[:, 1].abs().max() == 0  # the constant is ignored


def test_fit_is_deterministic_and_reports_an_unfinished_fit():
    x, y = blobs()
    a, b = fit_linear_head(x, y, 4, 0.01), fit_linear_head(x, y, 4, 0.01)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    short = fit_linear_head(x, y, 4, 0.01, max_iterations=2)
    assert short.iterations <= 2 and not short.converged and short.grad_max > GRAD_TOLERANCE


def probe_config(pretrained, *overrides):
    return load_config(
        SMOKE,
        [
            *tiny(1),
            f"model.init_from={pretrained}",
            "train.freeze_backbone=true",
            "train.probe=lbfgs",
            "mixing={method: ce}",
            "optim.weight_decay=0.001",
            "train.amp=off",  # so that the features below, in float32 and contiguous, are the same
            "train.channels_last=off",
            *overrides,
        ],
    )


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], "mixing am_mixup"),
        (["train.freeze_backbone=true"], "linear probe by SGD on frozen features, mixing am_mixup"),
        (
            ["train.freeze_backbone=true", "train.probe=lbfgs", "train.epochs=1", "mixing.method=ce"],
            "linear probe fitted by L-BFGS on frozen features",
        ),
    ],
)
def test_run_header_names_what_trains(overrides, expected):
    assert describe_training(load_config(SMOKE, ["mixing.method=am_mixup", *overrides])) == expected


def test_lbfgs_probe_end_to_end(tmp_path, capsys):
    coarse, probe = tmp_path / "coarse", tmp_path / "probe"
    train(load_config(SMOKE, [*tiny(2), "data.labels=coarse"]), coarse)
    capsys.readouterr()
    cfg = probe_config(coarse)
    summary = train(cfg, probe)
    assert summary["finished"] and summary["num_classes"] == 4
    # the header names the fit, not the probe's plain-cross-entropy "mixing ce"
    header = capsys.readouterr().out.splitlines()[0]
    assert "linear probe fitted by L-BFGS" in header and "mixing" not in header

    pre, post = load_checkpoint(coarse / "last.pt")["model"], load_checkpoint(probe / "last.pt")["model"]
    for key, value in pre.items():
        if key.startswith("stages."):  # the backbone (weights and BN statistics) untouched
            assert torch.equal(value, post[key]), key
    # The head is the exact fit on the un-augmented training features of that backbone.
    train_set, _ = load_data(cfg)
    model = make_model(cfg, train_set)
    model.load_state_dict(post)
    features, labels = extract_features(model, DeviceLoader(train_set, 64, train=False, augment=None), "cpu")
    fit = fit_linear_head(features, labels, 4, 0.001)
    assert torch.allclose(post["head.weight"], fit.weight, atol=1e-5)
    assert torch.allclose(post["head.bias"], fit.bias, atol=1e-5)

    (record,) = read_metrics(probe)
    assert record["probe_iterations"] == fit.iterations and record["probe_grad_max"] <= GRAD_TOLERANCE
    assert record["train_acc"] == pytest.approx(fit.train_acc)
    assert summary["last"]["balanced_acc"] == record["balanced_acc"]
    # the report reads back what the loop wrote
    read_back = {"probe.iterations": fit.iterations, "probe.grad_max": record["probe_grad_max"]}
    assert probe_fit([record]) == read_back


@pytest.mark.parametrize(
    ("override", "needs"),
    [
        ("train.freeze_backbone=false", "train.freeze_backbone = true"),
        ("train.epochs=3", "train.epochs = 1"),
        ("mixing={method: mixup}", "mixing.method = 'ce'"),
        ("optim.weight_decay=0", "optim.weight_decay > 0"),
    ],
)
def test_lbfgs_probe_config_errors(tmp_path, override, needs):
    with pytest.raises(ConfigError, match="train.probe = 'lbfgs': needs " + needs.replace(".", r"\.")):
        probe_config(tmp_path, override)


def test_lbfgs_probe_has_no_learning_rate_schedule_to_check():
    probe = [*tiny(1), "train.freeze_backbone=true", "mixing={method: ce}", "schedule.warmup_epochs=5"]
    # A pre-training config's warm-up (5 epochs here) is no error for a 1-epoch L-BFGS probe...
    assert load_config(SMOKE, [*probe, "train.probe=lbfgs"]).train.probe == "lbfgs"
    # ...but stays one for an SGD probe of 1 epoch.
    with pytest.raises(ConfigError, match="schedule.warmup_epochs = 5"):
        load_config(SMOKE, probe)
