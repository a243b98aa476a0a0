"""The captured (CUDA-graph) training step: device-side draws with the same distribution as the host
ones, the same arithmetic given the same draws, the same update as the eager ``train_step``; the
CUDA-only tests (graph replay vs eager) run in benchmarks/gpu_check.sh."""

from __future__ import annotations

import contextlib
import copy
import itertools

import numpy as np
import pytest
import torch
from common import SMOKE, tiny

import ammix.engine.graphed_step as graphed_step
import ammix.engine.loop as loop
from ammix.cli import _report as report_error
from ammix.engine import ConfigError, load_checkpoint, load_config, train, train_step
from ammix.engine.graphed_step import CapturedStep, CaptureFailed, use_cuda_graph
from ammix.losses import BalancedSoftmaxLoss, LDAMLoss, SoftCrossEntropy
from ammix.mixing import (
    MIXERS,
    OnDevice,
    beta_on_device,
    build_mixer,
    cutmix_box,
    cutmix_box_at,
    interpolate,
    permutation_on_device,
)
from ammix.models import build_model

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
NUM_CLASSES = 4
# AM-mixup with the redraw pairing, whose fixed-size form equals the eager call exactly (the default,
# drop, shrinks the batch in eager mode: its fixed-size form is tested against it on the loss)
OPTIONS = {
    "am_mixup": {"gamma": 0.5, "clean_weight": 0.5, "label": "soft", "pairing": "redraw"},
    "cutmix": {"prob": 0.5},
}


def mixer_for(method: str, seed: int = 0, **options):
    gen = torch.Generator().manual_seed(seed)
    counts = torch.tensor([40, 20, 8, 2])
    return build_mixer(
        method, NUM_CLASSES, class_counts=counts, generator=gen, **{**OPTIONS.get(method, {}), **options}
    )


def as_device_draws(mixer, x, draws: tuple) -> tuple:
    """Host draws in the form ``draw_on_device`` returns them: numbers as 0-d tensors on x's device."""
    if mixer.__class__.__name__ == "CutMix" and draws[0] is False:  # nothing drawn: any values, unapplied
        draws = (False, 0.5, torch.arange(x.shape[0], device=x.device), 0, 0)
    out = []
    for d in draws:
        if isinstance(d, bool):
            d = torch.tensor(d, device=x.device)
        elif isinstance(d, float):
            d = torch.tensor(d, dtype=torch.float64, device=x.device)
        elif isinstance(d, int):
            d = torch.tensor(d, device=x.device)
        out.append(d)
    return tuple(out)


# --- Device draws: the host draws' distribution -----------------------------------------------------


def test_device_beta_matches_the_host_distribution():
    torch.manual_seed(0)
    device_draws = np.array([beta_on_device(2.0, "cpu").item() for _ in range(4000)])
    host = np.random.default_rng(0).beta(2.0, 2.0, 20000)
    assert device_draws.mean() == pytest.approx(0.5, abs=0.01)
    assert device_draws.var() == pytest.approx(1 / 20, rel=0.08)  # a(a) / ((2a)^2 (2a + 1)) at a = 2
    qs = [0.1, 0.25, 0.5, 0.75, 0.9]
    assert np.quantile(device_draws, qs) == pytest.approx(np.quantile(host, qs), abs=0.02)
    assert beta_on_device(2.0, "cpu").dtype == torch.float64


def test_device_permutation_is_uniform():
    torch.manual_seed(0)
    counts = {p: 0 for p in itertools.permutations(range(3))}
    for _ in range(6000):
        counts[tuple(permutation_on_device(3, "cpu").tolist())] += 1
    assert all(abs(c - 1000) < 120 for c in counts.values()), counts  # 4 sigma


def test_cutmix_box_at_equals_the_host_box():
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        lam = float(torch.rand(1, generator=gen))
        state = gen.get_state()
        host = cutmix_box(32, 24, lam, gen)
        gen.set_state(state)
        cy, cx = (
            int(torch.randint(0, 32, (1,), generator=gen)),
            int(torch.randint(0, 24, (1,), generator=gen)),
        )
        device = cutmix_box_at(
            32, 24, torch.tensor(lam, dtype=torch.float64), torch.tensor(cy), torch.tensor(cx)
        )
        assert host == tuple(int(v) for v in device)


def test_device_cutmix_draws_have_the_host_distribution():
    torch.manual_seed(0)
    mixer = mixer_for("cutmix", prob=0.3)
    x = torch.zeros(8, 3, 6, 5)
    draws = [mixer.draw_on_device(x, None, None) for _ in range(3000)]
    assert np.mean([bool(d[0]) for d in draws]) == pytest.approx(0.3, abs=0.03)
    cys = np.bincount([int(d[3]) for d in draws], minlength=6)
    cxs = np.bincount([int(d[4]) for d in draws], minlength=5)
    assert len(cys) == 6 and len(cxs) == 5 and cys.min() > 400 and cxs.min() > 500


# --- The same arithmetic from the same draws --------------------------------------------------------


@pytest.mark.parametrize("method", sorted(MIXERS))
def test_mix_of_device_form_draws_equals_the_eager_call(method):
    x = torch.randn(12, 3, 8, 8)
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3])
    for seed in range(6):  # CutMix: applied and not
        eager, twin = mixer_for(method, seed), mixer_for(method, seed)
        expected = eager(x, labels, epoch=1.5)
        draws = as_device_draws(twin, x, twin.draw(x, labels, 1.5))
        got = twin.mix(x, labels, *draws)
        for a, b in zip(expected, got, strict=True):
            assert torch.equal(a, b)


def test_on_device_refills_am_mixup_ratio_and_pins_the_site():
    mixer = mixer_for("am_mixup")
    wrapped = OnDevice(mixer, torch.device("cpu"))
    with pytest.raises(RuntimeError, match=r"call set_step\(epoch, num_stages\) before each step"):
        wrapped.choose_stage(3)  # it would mix at the input with lam 1: plain cross-entropy
    assert wrapped.set_step(2.25, num_stages=3) == 3 and wrapped.choose_stage(3) == 3
    assert wrapped.lam.item() == mixer.lam(2.25)
    OnDevice(mixer_for("am_mixup", pairing="drop"), torch.device("cpu"))  # at the feature: capturable
    with pytest.raises(ValueError, match="drop pairing before the feature site"):
        OnDevice(mixer_for("am_mixup", pairing="drop", site="input"), torch.device("cpu"))


@pytest.mark.parametrize("label", ["single", "soft"])
@pytest.mark.parametrize("loss_name", ["ce", "ce-drw", "ldam", "balanced_softmax"])
def test_drop_pairing_fixed_size_form_has_the_loss_and_gradient_of_the_shrunken_batch(label, loss_name):
    counts = [40, 20, 8, 2]
    loss_fn = {
        "ce": SoftCrossEntropy(label_smoothing=0.1),
        "ce-drw": SoftCrossEntropy(counts, drw_epoch=0, label_smoothing=0.1),
        "ldam": LDAMLoss(counts),
        "balanced_softmax": BalancedSoftmaxLoss(counts),
    }[loss_name]
    torch.manual_seed(0)
    head = torch.nn.Linear(6, NUM_CLASSES)
    features = torch.randn(12, 6, requires_grad=True)

    def loss_and_gradients(mixed, targets):
        loss = loss_fn(head(mixed), targets, 1.0)
        return loss, *torch.autograd.grad(loss, [features, *head.parameters()])

    mixer = mixer_for("am_mixup", pairing="drop", label=label)
    for labels in (torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3]), torch.zeros(12, dtype=torch.long)):
        lam, permutation = mixer.draw(features, labels, 1.5)
        shrunk = mixer._mix_dropping_same_class_pairs(features, labels, lam, permutation)
        fixed = mixer.mix(features, labels, torch.tensor(lam, dtype=torch.float64), permutation)
        assert fixed[0].shape == features.shape
        dropped = int((labels == labels[permutation]).sum())
        assert shrunk[0].shape[0] == (12 - dropped if dropped < 12 else 12)
        assert 0 < dropped < 12 or labels.max() == 0  # the first batch drops some pairs, not all
        for a, b in zip(loss_and_gradients(*shrunk), loss_and_gradients(*fixed), strict=True):
            torch.testing.assert_close(a, b)


# --- The captured step's update on the CPU equals train_step's --------------------------------------


def model_and_optimizer(optim: str = "sgd"):
    """A small staged model and the fused optimizer the captured step uses (its update, bit for bit)."""
    torch.manual_seed(0)
    model = build_model("small_cnn", NUM_CLASSES, width=4, hidden_dim=16, feature_dim=8)
    if optim == "adamw":
        return model, torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=5e-4, fused=True)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=True
    )
    return model, opt


@pytest.mark.parametrize(
    "method, optim, options",
    [(m, "sgd", {}) for m in sorted(MIXERS)]
    + [("am_mixup", "adamw", {}), ("cutmix", "adamw", {}), ("am_mixup", "sgd", {"pairing": "drop"})],
)
def test_static_buffer_step_matches_train_step_given_the_same_draws(method, optim, options):
    eager_model, eager_opt = model_and_optimizer(optim)
    model = copy.deepcopy(eager_model)
    opt = copy.deepcopy(eager_opt)
    opt.param_groups[0]["params"] = list(model.parameters())  # the same settings, the copy's weights
    eager_mixer, mixer = mixer_for(method, 1, **options), mixer_for(method, 1, **options)
    # The drop pairing's fixed-size form sums the loss over more rows (the dropped ones at 0): the same
    # update up to float rounding, not bit for bit.
    same = torch.equal if options.get("pairing") != "drop" else (
        lambda a, b: torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6) is None)
    epoch_now = {}

    def host_draws_in_device_form(x, labels, lam):  # the twin's host draws, as the device would give them
        draws = as_device_draws(mixer, x, mixer.draw(x, labels, epoch_now["e"]))
        return (lam, *draws[1:]) if method == "am_mixup" else draws  # AM-mixup: OnDevice's ratio tensor

    mixer.draw_on_device = host_draws_in_device_form

    def run(x, y, m, epoch):
        return train_step(model, m, opt, x, y, epoch, NUM_CLASSES, 0.1, grad_clip=5.0)

    step = CapturedStep(run, model, mixer, opt, torch.device("cpu"), capture=False)
    gen = torch.Generator().manual_seed(2)
    for i, size in enumerate([16, 16, 16, 16, 7]):  # four full batches, then a smaller last one
        x = torch.randn(size, 3, 16, 16, generator=gen)
        y = torch.randint(0, NUM_CLASSES, (size,), generator=gen)
        epoch, lr = i / 5, 0.1 * (1 - i / 5)
        epoch_now["e"] = epoch
        for group in eager_opt.param_groups:
            group["lr"] = lr
        loss_a, out_a = train_step(
            eager_model, eager_mixer, eager_opt, x, y, epoch, NUM_CLASSES, 0.1, grad_clip=5.0
        )
        loss_b, out_b = step(x, y, epoch, lr)
        in_loss = out_b.targets.sum(dim=1) > 0
        assert same(loss_a, loss_b) and torch.equal(out_a.targets, out_b.targets[in_loss])
    for a, b in zip(eager_model.state_dict().values(), model.state_dict().values(), strict=True):
        assert same(a, b)


# --- The switch ---------------------------------------------------------------------------------------


def test_cuda_graph_on_without_cuda_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"train.cuda_graph = 'on': needs CUDA"):
        train(load_config(SMOKE, [*tiny(1), "train.device=cpu", "train.cuda_graph=on"]), tmp_path / "run")


def test_what_cannot_be_captured_runs_eagerly_with_a_notice(capsys):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    flags = {"distributed": False, "compiled": False, "fp16": False}
    assert not use_cuda_graph("auto", cpu, **flags, mixer=mixer_for("mixup"))
    assert not use_cuda_graph("off", cuda, **flags, mixer=mixer_for("mixup"))
    assert use_cuda_graph("auto", cuda, **flags, mixer=mixer_for("mixup"))
    assert capsys.readouterr().err == ""
    assert use_cuda_graph("on", cuda, **flags, mixer=mixer_for("am_mixup", pairing="drop"))
    assert not use_cuda_graph("on", cuda, **flags, mixer=mixer_for("am_mixup", pairing="drop", site=1))
    assert not use_cuda_graph("auto", cuda, **{**flags, "distributed": True}, mixer=mixer_for("ce"))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "drop pairing" in lines[0] and "DDP" in lines[1]


def test_a_failed_capture_stops_the_run_with_one_line_naming_the_eager_switch(monkeypatch, capsys):
    @contextlib.contextmanager
    def capture_that_fails(graph):
        yield
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nlong trace")

    monkeypatch.setattr(graphed_step, "WARMUP_STEPS", 0)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: None)
    monkeypatch.setattr(torch.cuda, "graph", capture_that_fails)
    model, opt = model_and_optimizer()

    def run(x, y, m, epoch):
        return train_step(model, m, opt, x, y, epoch, NUM_CLASSES, 0.0)

    step = CapturedStep(run, model, mixer_for("mixup"), opt, torch.device("cpu"), capture=True)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, NUM_CLASSES, (8,))
    with pytest.raises(CaptureFailed) as failed:
        step(x, y, 0.0, 0.1)
    message = str(failed.value)
    assert "operation not permitted when stream is capturing" in message
    assert "long trace" not in message and "train.cuda_graph=off" in message
    capsys.readouterr()
    assert report_error(failed.value) == 3  # the command line: one line, exit 3 (a sweep runs it again)
    assert capsys.readouterr().err == f"ammix: error: {message}\n"

    @contextlib.contextmanager
    def capture_out_of_memory(graph):  # not the capture's fault: eager steps would need the memory too
        yield
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(torch.cuda, "graph", capture_out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        CapturedStep(run, model, mixer_for("mixup"), opt, torch.device("cpu"), capture=True)(x, y, 0.0, 0.1)


# --- CUDA: graph replay vs the same step run eagerly ---------------------------------------------------


@CUDA
@pytest.mark.parametrize(
    "method, options", [(m, {}) for m in sorted(MIXERS)] + [("am_mixup", {"pairing": "drop"})]
)
def test_graph_replay_matches_eager_steps_on_cuda(method, options, monkeypatch):
    device = torch.device("cuda")
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    results = []
    for capture in (False, True):
        model, opt = model_and_optimizer()
        model.to(device, memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        mixer = mixer_for(method, 1, **options)

        def run(x, y, m, epoch, model=model, opt=opt):
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                return train_step(model, m, opt, x, y, epoch, NUM_CLASSES, 0.1, grad_clip=5.0)

        step = CapturedStep(run, model, mixer, opt, device, capture=capture)
        gen = torch.Generator().manual_seed(2)
        torch.cuda.manual_seed(3)  # the in-graph draws come from the device's default generator
        losses = []
        for i, size in enumerate([32] * 12 + [9]):  # warm-up, capture, replays; a smaller last batch
            x = (
                torch.randn(size, 3, 16, 16, generator=gen)
                .to(device)
                .contiguous(memory_format=torch.channels_last)
            )
            y = torch.randint(0, NUM_CLASSES, (size,), generator=gen).to(device)
            loss, _ = step(x, y, i / 13, 0.1 * (1 - i / 13))
            losses.append(loss.item())
        assert (len(step.graphs) > 0) == capture
        results.append((losses, [p.detach().float().cpu() for p in model.parameters()]))
    (loss_a, params_a), (loss_b, params_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-4, abs=1e-5)
    for a, b in zip(params_a, params_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@CUDA
def test_a_device_lam_mixes_bf16_features_as_the_eager_python_float_does():
    # The captured step holds lam in a float64 device tensor; a kernel that cast it to the features'
    # bf16 first would mix with 0.5117 instead of 0.51 (on the CPU a 0-dim tensor acts as a scalar).
    x = torch.full((4, 8), 100.0, device="cuda", dtype=torch.bfloat16)
    lam = torch.tensor(0.51, dtype=torch.float64, device="cuda")
    assert torch.equal(interpolate(x, torch.zeros_like(x), lam), interpolate(x, torch.zeros_like(x), 0.51))


@CUDA
def test_training_with_cuda_graph_on_completes(tmp_path):
    summary = train(
        load_config(SMOKE, [*tiny(2), "train.device=cuda", "train.cuda_graph=on"]), tmp_path / "run"
    )
    assert summary["finished"] and summary["last"]["acc"] >= 0


@pytest.mark.parametrize(
    "mixing", ["{method: cutmix}", "{method: am_mixup, pairing: redraw}", "{method: am_mixup}"]
)
def test_engine_with_the_captured_step_structure_resumes_exactly_on_cpu(tmp_path, monkeypatch, mixing):
    """The engine's captured path (static buffers, device draws, fused optimizer with a device lr) run
    eagerly on the CPU: it trains, and a stopped and resumed run ends with the uninterrupted weights."""
    made = []

    class Recorded(CapturedStep):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(loop, "use_cuda_graph", lambda *args, **kwargs: True)
    monkeypatch.setattr(loop, "CapturedStep", Recorded)
    # 52 images in batches of 16: three full batches and a smaller last one every epoch
    overrides = [*tiny(3), "train.device=cpu", f"mixing={mixing}", "data.samples_per_class=13"]
    whole = train(load_config(SMOKE, overrides), tmp_path / "whole")
    train(load_config(SMOKE, [*overrides, "train.stop_after_epochs=2"]), tmp_path / "split")
    resumed = train(load_config(SMOKE, overrides), tmp_path / "split", resume=True)
    assert len(made) == 3 and not any(step.capture for step in made)
    assert whole["finished"] and resumed["finished"] and whole["last"] == resumed["last"]
    a, b = (load_checkpoint(tmp_path / run / "last.pt")["model"] for run in ("whole", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
