"""timm, torchvision and (encoder, head) models as StagedModels: the split, and every mixer through it."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from torch import nn

from ammix.mixing import (
    MIXERS,
    AsymptoticMidpointMixup,
    build_mixer,
    interclass_partners,
    mixed_forward,
    soft_cross_entropy,
)
from ammix.models import build_model, from_encoder_head, from_timm, from_torchvision

LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_encoder_head_pair_is_a_two_boundary_staged_model():
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    head = nn.Linear(2, 3)
    model = from_encoder_head(encoder, head)
    x = torch.randn(6, 1, 2, 2)
    assert model.num_stages == 1 and model.feature_dim == 2 and model.head is head
    torch.testing.assert_close(model(x), head(encoder(x)))
    with pytest.raises(ValueError, match="nn.Linear"):
        from_encoder_head(encoder, nn.Sequential(head))


def test_am_mixup_acts_on_the_encoder_feature():
    torch.manual_seed(0)
    encoder, head = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), nn.Linear(2, 3)
    model = from_encoder_head(encoder, head)
    x = torch.randn(6, 1, 2, 2)
    am = AsymptoticMidpointMixup(3, gamma=0.5, pairing="redraw", generator=_generator(1))
    out = mixed_forward(model, x, LABELS, am, 1)
    h = encoder(x)
    partners = interclass_partners(LABELS, _generator(1))
    torch.testing.assert_close(out.logits, head(0.75 * h + 0.25 * h[partners]))


def test_torchvision_resnet18_split_and_grayscale_input():
    torch.manual_seed(0)
    model = from_torchvision("resnet18", num_classes=3, in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    assert model.feature_dim == 512 and model.head.out_features == 3
    torch.testing.assert_close(model(x), model.head(model.features(x)))
    assert model.features(x).shape == (2, 512)


def test_torchvision_options_reach_the_constructor():
    model = build_model("torchvision:resnet18", 3, zero_init_residual=True)
    assert model.stages[0].layer1[0].bn2.weight.abs().sum() == 0


@pytest.mark.parametrize(
    "name, feature_dim", [("efficientnet_b0", 1280), ("convnext_tiny", 768), ("mobilenet_v3_small", 1024)]
)
def test_torchvision_classifiers_split_before_their_final_linear(name, feature_dim):
    model = build_model(f"torchvision:{name}", 3).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model.feature_dim == feature_dim and model.features(x).shape == (2, feature_dim)
    torch.testing.assert_close(model(x), model.head(model.features(x)))


def test_torchvision_vit_and_mobilenet_split_at_their_last_linear():
    from torchvision.models import VisionTransformer, mobilenet_v3_small

    vit = VisionTransformer(32, 16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=8, num_classes=3)
    wrapped = from_torchvision(vit)
    assert wrapped.feature_dim == 8 and wrapped(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    mobile = from_torchvision(mobilenet_v3_small(), num_classes=5)  # a fresh head for 5 classes
    assert mobile.head.in_features == 1024 and mobile.head.out_features == 5


@pytest.mark.filterwarnings("ignore:The default weight initialization of GoogleNet:FutureWarning")
def test_googlenet_trains_through_the_wrapper_and_a_built_one_with_aux_logits_is_refused():
    from torchvision.models import googlenet

    model = build_model("torchvision:googlenet", 3).train()  # built with aux_logits=False
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)  # was a GoogLeNetOutputs tuple into the head
    with pytest.raises(ValueError, match="auxiliary logits in training: build it with aux_logits=False"):
        from_torchvision(googlenet(weights=None, aux_logits=True, init_weights=False))


@pytest.fixture
def timm():
    return pytest.importorskip("timm")


@pytest.mark.parametrize("name", ["test_resnet", "test_vit", "test_convnext"])
def test_timm_split_is_forward_features_then_pre_logits_then_classifier(name, timm):
    torch.manual_seed(0)
    reference = timm.create_model(name, num_classes=3, img_size=32) if "vit" in name else None
    options = {"img_size": 32} if "vit" in name else {}
    torch.manual_seed(0)
    model = build_model(f"timm:{name}", 3, **options).eval()
    x = torch.randn(2, 3, 32, 32)
    feature = model.features(x)
    assert feature.shape == (2, model.feature_dim)
    torch.testing.assert_close(model(x), model.head(feature))
    if reference is not None:  # the same seed gives timm's own model: same logits
        torch.testing.assert_close(model(x), reference.eval()(x))


def test_timm_classifier_is_owned_by_the_head_only(timm):
    model = from_timm("test_resnet", num_classes=3, in_channels=1)
    assert not any(p is model.head.weight for p in model.stages.parameters())
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    # a built model keeps its own first convolution: in_channels that disagree is an error, not ignored
    with pytest.raises(ValueError, match="in_channels=1, but this model's first convolution takes 3"):
        from_timm(timm.create_model("test_resnet"), num_classes=3, in_channels=1)
    assert from_timm(timm.create_model("test_resnet", in_chans=1), 3, in_channels=1).feature_dim > 0
    # built headless (num_classes=0, a common way to get features): num_classes gives it a head
    headless = timm.create_model("test_resnet", num_classes=0)
    with pytest.raises(ValueError, match=r"is Identity, not an nn.Linear \(built with num_classes=0\? give"):
        from_timm(headless)
    assert from_timm(headless, num_classes=3)(torch.randn(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("method", sorted(MIXERS))
def test_every_mixer_trains_a_timm_model_in_one_call(method, timm):
    torch.manual_seed(0)
    model = build_model("timm:test_resnet", 3)
    schedule = {"total": 4} if method == "am_mixup" else {}
    mixer = build_mixer(method, 3, class_counts=torch.tensor([3, 2, 1]), generator=_generator(2), **schedule)
    manifold = method == "manifold_mixup"
    with pytest.warns(UserWarning, match="input mixup") if manifold else nullcontext():  # no hidden stage
        out = mixed_forward(model, torch.randn(6, 3, 32, 32), LABELS, mixer, 1.0)
    soft_cross_entropy(out.logits, out.targets).backward()
    assert out.logits.shape == out.targets.shape and out.logits.shape[1] == 3
    assert out.logits.shape[0] == 6 or (method == "am_mixup" and 0 < out.logits.shape[0] < 6)  # drop pairing
    assert model.head.weight.grad.abs().sum() > 0


def test_a_timm_model_trains_from_a_config_with_am_mixup(tmp_path, timm):
    from common import SMOKE, tiny

    from ammix.engine import load_config, train

    overrides = [o for o in tiny(1) if not o.startswith(("model.", "data.image_size"))]
    cfg = load_config(SMOKE, [*overrides, "data.image_size=32"])
    data = cfg.to_dict()
    data["model"] = {"name": "timm:test_resnet", "pretrained": False, "drop_rate": 0.1}
    summary = train(data, tmp_path / "run")
    assert summary["finished"] and summary["last"]["acc"] >= 0
