"""Figures: the toy 2-D feature maps with their confidence landscapes.

Matplotlib is used through its object API with the Agg canvas only: figures are built as
``matplotlib.figure.Figure`` objects, never through ``pyplot``, so nothing is registered in pyplot's
global figure list, the global backend is left alone, and nothing needs closing.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from PIL import Image

from .metrics import _head_params

__all__ = ["plot_feature_map", "feature_map_figure", "feature_map_image", "class_colors", "CAPTION_KEYS"]

#: no creation date in a PDF: a figure remade from the same runs is the same file, so git shows no change
PDF_METADATA = {"CreationDate": None}

#: metrics shown under each panel of :func:`feature_map_figure`: (key, short label)
CAPTION_KEYS = (
    ("alignment", "align"),
    ("uniformity", "unif"),
    ("neighbour_uniformity", "nbr-unif"),
)


def class_colors(num_classes: int) -> list:
    """``num_classes`` distinct RGBA colours: ``tab10`` up to 10 classes, ``tab20`` up to 20, then
    evenly spaced hues of ``hsv``."""
    if num_classes <= 10:
        return [colormaps["tab10"](i) for i in range(num_classes)]
    if num_classes <= 20:
        return [colormaps["tab20"](i) for i in range(num_classes)]
    return [colormaps["hsv"](i / num_classes) for i in range(num_classes)]


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@torch.no_grad()
def _grid_logits(head, points: np.ndarray) -> np.ndarray:
    """The head's logits at ``points`` (``M x 2``), as float64: a ``(weight, bias)`` pair is applied here,
    anything else is called on float32 points (on the device of its parameters, if it has any)."""
    if isinstance(head, (tuple, list)):
        weight, bias = _head_params(head)
        if weight.shape[1] != 2:
            raise ValueError(f"the head must act on 2-D features, its weight is {tuple(weight.shape)}")
        logits = torch.as_tensor(points) @ weight.T.cpu()
        return (logits if bias is None else logits + bias.cpu()).numpy()
    param = next(head.parameters(), None) if isinstance(head, torch.nn.Module) else None
    x = torch.as_tensor(points, dtype=torch.float32, device=None if param is None else param.device)
    return head(x).double().cpu().numpy()


def plot_feature_map(
    ax,
    features2d,
    labels,
    head,
    class_names: Sequence[str] | None = None,
    grid: int = 200,
    margin: float = 0.15,
    point_size: float = 6.0,
    cmap=None,
    legend: bool = True,
):
    """Draw the toy feature map on ``ax``: the 2-D features scattered and coloured by class over a heat
    map of the classifier's maximum softmax probability, with the decision boundaries (edges of the
    argmax regions) as thin black contour lines.

    Takes a matplotlib ``Axes``, ``features2d`` (``N x 2``, tensor or array), ``labels`` (``N``), the
    ``head`` (an ``nn.Linear(2, C)``, a ``(weight C x 2, bias C)`` pair, or any callable from ``M x 2``
    float32 features to ``M x C`` logits, such as the run's head followed by its loss's
    ``predictive_logits``: LDAM's cosines times its scale) and optional class names (for the legend).
    The heat map is evaluated on a ``grid x grid`` lattice covering the features plus ``margin`` times
    their extent on every side; its colour scale runs from ``1 / C`` (chance) to 1 (``cmap``: a colormap
    or its name; default light greys). Returns the heat map's ``AxesImage`` (for a colour bar).
    """
    feats = _numpy(features2d).astype(np.float64)
    labs = _numpy(labels).astype(np.int64)
    if feats.ndim != 2 or feats.shape[1] != 2:
        raise ValueError(f"features2d must be N x 2, got shape {feats.shape}")
    if getattr(head, "in_features", 2) != 2:
        raise ValueError(f"the head must act on 2-D features, it takes {head.in_features}")

    lo, hi = feats.min(0), feats.max(0)
    span = np.maximum(hi - lo, 1e-6 + 1e-3 * np.abs(hi - lo).max())
    lo, hi = lo - margin * span, hi + margin * span
    xs = np.linspace(lo[0], hi[0], grid)
    ys = np.linspace(lo[1], hi[1], grid)
    gx, gy = np.meshgrid(xs, ys)
    points = np.stack([gx.ravel(), gy.ravel()], 1)
    logits = _grid_logits(head, points)
    num_classes = logits.shape[1]
    logits -= logits.max(1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(1, keepdims=True)
    confidence = probs.max(1).reshape(grid, grid)

    if cmap is None:  # light greys: the class colours stay readable on the most confident regions
        cmap = ListedColormap(colormaps["Greys"](np.linspace(0.0, 0.6, 256)))
    image = ax.imshow(
        confidence,
        origin="lower",
        extent=(lo[0], hi[0], lo[1], hi[1]),
        aspect="auto",
        cmap=cmap,
        vmin=1.0 / num_classes,
        vmax=1.0,
        interpolation="bilinear",
        zorder=0,
    )
    # boundaries: the zero set of f_c = logit_c - max_{c' != c} logit_c' for each class c. Both sides of
    # a boundary give the same line (f_c = -f_c' there), unlike contours of the argmax label map, which
    # are pixelated and doubled where the labels on either side are not consecutive.
    top2 = np.sort(logits, 1)[:, -2:]
    for c in range(num_classes if num_classes > 1 else 0):
        rival = np.where(logits[:, c] >= top2[:, 1], top2[:, 0], top2[:, 1])
        f = (logits[:, c] - rival).reshape(grid, grid)
        if f.min() < 0 < f.max():
            ax.contour(gx, gy, f, levels=[0.0], colors="k", linewidths=0.6, zorder=1)

    colors = class_colors(num_classes)
    for c in range(num_classes):
        mask = labs == c
        if not mask.any():
            continue
        name = class_names[c] if class_names is not None else str(c)
        ax.scatter(
            feats[mask, 0], feats[mask, 1], s=point_size, color=colors[c], label=name,
            linewidths=0, alpha=0.8, zorder=2,
        )
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    if legend and class_names is not None and num_classes <= 20:
        ax.legend(loc="upper right", fontsize="x-small", markerscale=2, framealpha=0.7)
    return image


def _caption(metrics: Mapping[str, float] | None, keys) -> str:
    if not metrics:
        return ""
    return "   ".join(f"{label} {metrics[key]:.3f}" for key, label in keys if key in metrics)


def _feature_maps(
    panels: Sequence[tuple],
    class_names: Sequence[str] | None,
    title: str | None,
    panel_size: float,
    grid: int,
    caption_keys,
) -> Figure:
    if not panels:
        raise ValueError("feature_map_figure needs at least one panel")
    n = len(panels)
    fig = Figure(figsize=(panel_size * n + 0.8, panel_size + (0.9 if title else 0.6)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    image = None
    for i, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        panel_title, feats, labs, head, metrics = panel
        image = plot_feature_map(ax, feats, labs, head, class_names=class_names, grid=grid, legend=i == 0)
        ax.set_title(panel_title)
        ax.set_xlabel(_caption(metrics, caption_keys), fontsize="small")
        ax.tick_params(labelsize="x-small")
    fig.colorbar(image, ax=list(axes), shrink=0.85, label="max softmax probability")
    if title:
        fig.suptitle(title)
    return fig


def feature_map_figure(
    panels: Sequence[tuple],
    class_names: Sequence[str] | None,
    path_stem: str | Path,
    panel_size: float = 3.6,
    dpi: int = 150,
    grid: int = 200,
    caption_keys=CAPTION_KEYS,
    title: str | None = None,
) -> tuple[Path, Path]:
    """Side-by-side feature maps, one panel per method, saved as ``path_stem.png`` and
    ``path_stem.pdf``.

    Takes ``panels``, a list of ``(title, features2d, labels, head, metrics_dict)`` (see
    :func:`plot_feature_map`; ``metrics_dict`` may be None), the class names (legend on the first panel
    only), and the output path without suffix (parent folders are created). Each panel's caption shows
    the metrics of ``caption_keys`` found in its ``metrics_dict`` (by default alignment, uniformity and
    neighbour uniformity, e.g. from :func:`ammix.analysis.collapse_report`). One shared colour bar:
    the maximum softmax probability. ``title``: the figure's title, which should say the dataset and
    setting shown. Returns ``(png path, pdf path)``.
    """
    fig = _feature_maps(panels, class_names, title, panel_size, grid, caption_keys)
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    _save_palette_png(fig, png, dpi)
    fig.savefig(pdf, metadata=PDF_METADATA)
    return png, pdf


def _save_palette_png(fig: Figure, path: Path, dpi: int) -> None:
    # 256 colours: a grey heat map and a few class colours need no more, and thousands of translucent
    # points make a full-colour PNG large (the six-panel maps of docs/results/toy-mini-cifar-jpeg-cpu,
    # saved before this, are 1.3 MB each).
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)


def feature_map_image(
    panels: Sequence[tuple],
    class_names: Sequence[str] | None,
    title: str | None = None,
    panel_size: float = 3.6,
    dpi: int = 100,
    grid: int = 100,
    caption_keys=CAPTION_KEYS,
) -> np.ndarray:
    """The figure of :func:`feature_map_figure` as an ``H x W x 3`` uint8 RGB array (for TensorBoard)."""
    fig = _feature_maps(panels, class_names, title, panel_size, grid, caption_keys)
    fig.set_dpi(dpi)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
