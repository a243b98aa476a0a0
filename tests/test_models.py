"""Tests of ammix.models: shapes, staging, parameter counts, registry errors, gradients."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from ammix.models import MODELS, StagedModel, build_model

# Exact parameter counts with 10 classes.
PARAM_COUNTS = {
    "resnet32": 464_154,  # LDAM-DRW's resnet32: "0.46M"
    "preact_resnet18": 11_172_170,  # 11,171,146 of the usual PreAct-18 + 1,024 for the final BN
    "small_cnn": 110_272,  # width 32, hidden 128, 2-D feature
    "resnet18": 11_181_642,
    "resnet34": 21_289_802,
    "resnet50": 23_528_522,
}
FEATURE_DIMS = {
    "resnet32": 64,
    "preact_resnet18": 512,
    "small_cnn": 2,
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
}
NUM_STAGES = {
    "resnet32": 3, "preact_resnet18": 4, "small_cnn": 3, "resnet18": 4, "resnet34": 4, "resnet50": 4,
}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def models() -> dict[str, StagedModel]:
    torch.manual_seed(0)
    return {name: build_model(name, num_classes=10).eval() for name in MODELS}


def test_registry_names():
    assert set(MODELS) == {"resnet32", "preact_resnet18", "small_cnn", "resnet18", "resnet34", "resnet50"}


@pytest.mark.parametrize("name", sorted(FEATURE_DIMS))
def test_shapes_and_staging(models, name):
    model = models[name]
    assert isinstance(model, StagedModel)
    assert isinstance(model.head, nn.Linear)
    assert model.feature_dim == FEATURE_DIMS[name] == model.head.in_features
    assert model.num_classes == 10 == model.head.out_features
    assert len(model.stages) == model.num_stages == NUM_STAGES[name]
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        feats = model.features(x)
        h = x
        for stage in model.stages:
            h = stage(h)
        staged_logits = model.head(h)
    assert logits.shape == (2, 10)
    assert feats.shape == (2, FEATURE_DIMS[name])
    torch.testing.assert_close(h, feats)
    torch.testing.assert_close(staged_logits, logits)


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_parameter_counts(models, name):
    assert _params(models[name]) == PARAM_COUNTS[name]


def test_resnet32_is_0_46m_and_stage_shapes(models):
    model = models["resnet32"]
    assert abs(_params(model) - 0.46e6) / 0.46e6 < 0.01
    x = torch.randn(2, 3, 32, 32)
    shapes = []
    with torch.no_grad():
        for stage in model.stages:
            x = stage(x)
            shapes.append(tuple(x.shape))
    assert shapes == [(2, 16, 32, 32), (2, 32, 16, 16), (2, 64)]
    # option-A shortcuts carry no parameters: only convs, BNs and the head.
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())


def test_preact_resnet18_stage_shapes(models):
    model = models["preact_resnet18"]
    assert abs(_params(model) - 11.17e6) / 11.17e6 < 0.001
    x = torch.randn(2, 3, 32, 32)
    shapes = []
    with torch.no_grad():
        for stage in model.stages:
            x = stage(x)
            shapes.append(tuple(x.shape))
    assert shapes == [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8), (2, 512)]


def test_torchvision_resnet_stage_shapes(models):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for name, widths in (("resnet18", (64, 128, 256)), ("resnet50", (256, 512, 1024))):
            h = x
            shapes = []
            for stage in models[name].stages:
                h = stage(h)
                shapes.append(tuple(h.shape))
            assert shapes == [
                (2, widths[0], 8, 8), (2, widths[1], 4, 4), (2, widths[2], 2, 2), (2, FEATURE_DIMS[name])
            ]


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 1, 28, 28), (2, 3, 32, 32), (2, 1, 3, 3)])
def test_small_cnn_any_input_size(shape):
    torch.manual_seed(0)
    model = build_model("small_cnn", num_classes=4, in_channels=shape[1]).eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        assert model.features(x).shape == (2, 2)
        assert model(x).shape == (2, 4)


def test_small_cnn_options_and_free_feature():
    torch.manual_seed(0)
    model = build_model("small_cnn", num_classes=3, in_channels=1, feature_dim=16, width=8, hidden_dim=32)
    assert model.feature_dim == 16 and model.head.in_features == 16
    # the feature ends with a Linear, not an activation: it takes negative values.
    last = list(model.stages[-1].children())[-1]
    assert isinstance(last, nn.Linear)
    with torch.no_grad():
        feats = model.eval().features(torch.randn(64, 1, 8, 8))
    assert (feats < 0).any() and (feats > 0).any()


@pytest.mark.parametrize("name", ["resnet32", "preact_resnet18", "resnet18"])
def test_other_in_channels(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError) as info:
        build_model("resnet1000", num_classes=10)
    message = str(info.value)
    assert "resnet1000" in message
    for name in MODELS:
        assert name in message


def test_unknown_kwarg_is_named():
    with pytest.raises(ValueError, match="depth"):
        build_model("resnet32", num_classes=10, depth=56)
    with pytest.raises(ValueError, match="feature_dimension"):
        build_model("small_cnn", num_classes=10, feature_dimension=2)
    with pytest.raises(ValueError, match="pretrained"):
        build_model("resnet18", num_classes=10, pretrained=True)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("small_cnn", num_classes=0)


@pytest.mark.parametrize("name", sorted(FEATURE_DIMS))
def test_gradients_reach_first_conv(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10).train()
    x = torch.randn(2, 3, 32, 32)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1]))
    loss.backward()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad is not None
    assert first_conv.weight.grad.abs().sum() > 0
    assert model.head.weight.grad is not None


def test_models_pickle_and_deepcopy():
    # no lambdas inside (option-A shortcuts are a module), so checkpoints and DDP copies work.
    torch.manual_seed(0)
    model = build_model("resnet32", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(copy.deepcopy(model)(x), expected)
        torch.testing.assert_close(pickle.loads(pickle.dumps(model))(x), expected)


def test_cosine_head_gives_the_cosine_to_each_class_weight():
    from ammix.models import CosineLinear

    head = CosineLinear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    torch.testing.assert_close(head(torch.tensor([[3.0, 4.0]])), torch.tensor([[0.6, 0.8]]))
    model = build_model("small_cnn", 3, head="cosine")
    assert isinstance(model.head, CosineLinear) and model.head.bias is None
    with pytest.raises(ValueError, match="head must be one of linear, cosine, got 'normed'"):
        build_model("small_cnn", 3, head="normed")


def test_analysis_draws_a_cosine_head_by_its_normalised_weights():
    from ammix.analysis.metrics import _head_params
    from ammix.models import CosineLinear

    head = CosineLinear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
    weight, bias = _head_params(head)
    torch.testing.assert_close(weight, torch.tensor([[0.6, 0.8], [0.0, 1.0]], dtype=torch.float64))
    assert bias is None
