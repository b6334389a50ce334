"""Explanations of a bundle's decisions: Grad-CAM, first-layer activations and embeddings.

- :func:`grad_cam` (Selvaraju et al., 2017): the gradient of a class logit with respect to the
  feature map of the backbone's deepest convolutional stage, averaged per channel, weights that
  map's channels; the ReLU of the weighted sum, upsampled to the input, shows where the evidence
  for the class lies.
- :func:`first_layer_activations`: the outputs of the first convolution (seed lab 002, "visualise
  activation maps after the first convolutional layer").
- :func:`embed_tsne`: a 2-D t-SNE of the pooled backbone features (seed report 004).

Everything works on a :class:`landscape.inference.Predictor`'s model, i.e. exactly the network
a user of the bundle runs; :func:`write_explanations` turns them into the report's figures.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from landscape.models.net import LandscapeNet

__all__ = [
    "EMBED_LIMIT",
    "EXPLAIN_DEFAULT",
    "ExplainItem",
    "embed_tsne",
    "first_conv_layer",
    "first_layer_activations",
    "grad_cam",
    "gradcam_layer",
    "plot_embeddings",
    "plot_first_layer",
    "plot_gradcam",
    "stratified_subset",
    "write_explanations",
]

#: Grad-CAM images per group (correct / wrong) by default: 2 rows of 4 per group stay readable.
EXPLAIN_DEFAULT = 8
#: At most this many images go into the t-SNE (stratified): t-SNE is O(n log n) but its constant
#: on a laptop CPU makes a few thousand points take minutes.
EMBED_LIMIT = 1000
#: Channels of the first convolution shown (a 4 × 4 grid).
FIRST_LAYER_CHANNELS = 16

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ExplainItem:
    """One evaluated image as the explanation figures need it."""

    path: Path
    true: int
    predicted: int
    confidence: float
    #: Probability given to the true class: the lowest are the worst mistakes (highest loss).
    p_true: float


def _backbone_modules(model: LandscapeNet) -> list[tuple[str, nn.Module]]:
    """The modules named in the backbone's unfreezing blocks, shallow to deep."""
    backbone = model.backbone
    names = [n for group in model.info.blocks(backbone) for n in group]
    if not names:  # a backbone without block metadata: every direct child, in order
        return list(backbone.named_children())
    return [(n, backbone.get_submodule(n)) for n in names]


class _Stop(Exception):
    """Raised by a hook to end a forward pass once it has what it needs."""


@contextmanager
def _recording(
    modules: Sequence[tuple[str, nn.Module]], *, first_only: bool = False
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Record ``(name, output)`` of ``modules`` that output a spatial ``[B, C, H, W]`` map, in
    the order they run; ``first_only`` stops the forward pass (with :class:`_Stop`) at the first.
    """
    seen: list[tuple[str, torch.Tensor]] = []

    def make(name: str) -> Any:
        def hook(_m: nn.Module, _i: Any, output: Any) -> torch.Tensor | None:
            if not (
                isinstance(output, torch.Tensor)
                and output.ndim == 4
                and output.shape[-2:].numel() > 1
            ):
                return None
            seen.append((name, output))
            if first_only:
                raise _Stop
            # Downstream layers get a copy: an in-place op after the hooked module
            # (ReLU(inplace=True)) would otherwise modify the very tensor whose gradient
            # Grad-CAM asks for.
            return output.clone()

        return hook

    handles = [module.register_forward_hook(make(name)) for name, module in modules]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _run_backbone(model: LandscapeNet, x: torch.Tensor) -> None:
    param = next(model.parameters())
    with torch.inference_mode(), suppress(_Stop):
        model.backbone(x.to(device=param.device, dtype=param.dtype))


def _conv_modules(model: LandscapeNet) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.backbone.named_modules() if isinstance(m, nn.Conv2d)]


def gradcam_layer(model: LandscapeNet, input_size: int = 224) -> str:
    """The backbone module Grad-CAM hooks: the deepest one that outputs a ``[B, C, H, W]`` map.

    The candidates are the modules of the backbone's blocks (``info.blocks``); the deepest block
    is not always convolutional (VGG's and AlexNet's is the fc ``classifier``; ConvNeXt's head
    norm runs on a 1 × 1 pooled map), so the choice is made by running the backbone and keeping
    the last module whose output still has a spatial extent. :func:`grad_cam` makes the same
    choice during its own forward pass.
    """
    with _recording(_backbone_modules(model)) as seen:
        _run_backbone(model, torch.zeros(1, 3, input_size, input_size))
    if not seen:
        raise ValueError("the backbone has no module with a spatial [B, C, H, W] output")
    return seen[-1][0]


def first_conv_layer(model: LandscapeNet, input_size: int = 224) -> str:
    """Name (in the backbone) of the first ``Conv2d`` the backbone runs."""
    with _recording(_conv_modules(model), first_only=True) as seen:
        _run_backbone(model, torch.zeros(1, 3, input_size, input_size))
    if not seen:
        raise ValueError("the backbone has no Conv2d layer")
    return seen[0][0]


def grad_cam(
    model: LandscapeNet,
    batch: torch.Tensor,
    targets: Sequence[int] | None = None,
    *,
    layer: str | None = None,
) -> FloatArray:
    """Grad-CAM maps ``[B, H, W]`` (input resolution), each scaled to ``[0, 1]``.

    ``targets``: the class index explained per image (default: the predicted class). ``layer``:
    a backbone module name (default: the one :func:`gradcam_layer` names). The model runs in eval
    mode with autograd on (outside any ``inference_mode``); the gradient is taken with
    :func:`torch.autograd.grad` so no ``.grad`` accumulates on the (shared) model's parameters.
    A map that is zero everywhere (no positive evidence) stays zero.
    """
    return _grad_cam(model, batch, targets, layer)[0]


def _grad_cam(
    model: LandscapeNet,
    batch: torch.Tensor,
    targets: Sequence[int] | None,
    layer: str | None,
) -> tuple[FloatArray, str]:
    """:func:`grad_cam` and the name of the layer it used."""
    candidates = (
        [(layer, model.backbone.get_submodule(layer))]
        if layer is not None
        else _backbone_modules(model)
    )
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad(), _recording(candidates) as seen:
            # A clone made with inference mode off: tensors created under inference_mode (e.g.
            # by a Predictor) cannot take part in autograd.
            x = batch.detach().clone().to(device=param.device, dtype=param.dtype)
            x.requires_grad_(True)
            logits = model(x)
            if not seen:
                raise ValueError(
                    f"no spatial [B, C, H, W] output from {layer or 'the backbone blocks'}"
                )
            name, act = seen[-1]
            chosen = (
                logits.argmax(dim=1)
                if targets is None
                else torch.as_tensor(list(targets), device=logits.device)
            )
            # Images are independent in eval mode (BN uses running stats), so the gradient of the
            # sum is each image's own gradient.
            score = logits.gather(1, chosen.view(-1, 1)).sum()
            (grads,) = torch.autograd.grad(score, act)
    finally:
        model.train(was_training)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * act).sum(dim=1, keepdim=True)).detach()
    cam = nn.functional.interpolate(
        cam.float(), size=tuple(batch.shape[-2:]), mode="bilinear", align_corners=False
    )[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).clamp(0.0, 1.0).cpu().numpy().astype(np.float64), name


def first_layer_activations(
    model: LandscapeNet, image: torch.Tensor, channels: int = FIRST_LAYER_CHANNELS
) -> FloatArray:
    """Outputs ``[channels, h, w]`` of the first convolution for one preprocessed image."""
    return _first_layer(model, image, channels)[0]


def _first_layer(model: LandscapeNet, image: torch.Tensor, channels: int) -> tuple[FloatArray, str]:
    # The forward pass stops at the first convolution: nothing deeper is needed.
    with _recording(_conv_modules(model), first_only=True) as seen:
        _run_backbone(model, image.unsqueeze(0))
    if not seen:
        raise ValueError("the backbone has no Conv2d layer")
    name, act = seen[0]
    return act[0, :channels].float().cpu().numpy().astype(np.float64), name


def stratified_subset(labels: Sequence[int], limit: int, seed: int = 0) -> list[int]:
    """Indices of at most ``limit`` items keeping each label's share (sorted, deterministic)."""
    n = len(labels)
    if n <= limit:
        return list(range(n))
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(int(label), []).append(i)
    keys = sorted(by_label)
    share = {k: limit * len(by_label[k]) / n for k in keys}
    # At least one per label so a rare class still appears; then fix the total to ``limit``
    # by taking from the largest quotas / giving to the largest remainders.
    quota = {k: max(1, math.floor(share[k])) for k in keys}
    while sum(quota.values()) > limit:
        quota[max(keys, key=lambda k: quota[k])] -= 1
    while sum(quota.values()) < limit:
        room = [k for k in keys if quota[k] < len(by_label[k])]
        quota[max(room, key=lambda k: share[k] - quota[k])] += 1
    chosen: list[int] = []
    for k in keys:
        chosen += rng.choice(by_label[k], size=quota[k], replace=False).tolist()
    return sorted(chosen)


def embed_tsne(features: npt.NDArray[np.floating[Any]], seed: int = 0) -> FloatArray:
    """2-D t-SNE coordinates ``[N, 2]`` of ``features`` (perplexity ``min(30, (N - 1) / 3)``).

    Features wider than 50 are first reduced with PCA to 50 dimensions, the usual t-SNE
    preprocessing (it removes noise and makes the neighbour search much faster).
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float64)
    n = x.shape[0]
    if n < 5:
        raise ValueError(f"t-SNE needs at least 5 images, got {n}")
    perplexity = min(30.0, (n - 1) / 3)
    # One thread: scikit-learn's OpenMP/BLAS pools and torch's (a second libgomp) spin against
    # each other after a torch forward pass; measured 18 s vs 1.3 s for 150 images on 2 cores.
    with threadpool_limits(limits=1):
        if x.shape[1] > 50 and n > 50:
            x = PCA(n_components=50, random_state=seed).fit_transform(x)
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _denormalise(tensor: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> FloatArray:
    """A preprocessed ``[3, H, W]`` tensor back to an ``[H, W, 3]`` image in ``[0, 1]``."""
    m = torch.tensor(list(mean)).view(3, 1, 1)
    s = torch.tensor(list(std)).view(3, 1, 1)
    image = (tensor.detach().float().cpu() * s + m).clamp(0, 1)
    return image.permute(1, 2, 0).numpy().astype(np.float64)


def plot_gradcam(
    groups: Sequence[tuple[str, Sequence[str], FloatArray, FloatArray]],
    path: Path,
    *,
    columns: int = 4,
) -> Path:
    """Grid of Grad-CAM overlays, one titled section per group.

    Each group is ``(title, captions, images [N, H, W, 3], cams [N, H, W])``; the colour scale is
    the same for every map (``jet`` over ``[0, 1]``), half transparent over the image.
    """
    plt = _pyplot()
    groups = [g for g in groups if len(g[1])]
    if not groups:
        return _placeholder(path, "no image to explain")
    rows = [math.ceil(len(g[1]) / columns) for g in groups]
    # Inches: one image with its 3-line caption above it; the caption alone; a section title.
    cell, caption_h, title_h = 2.6, 0.5, 0.4
    heights = [cell * r + title_h for r in rows]
    fig = plt.figure(figsize=(cell * columns * 0.92, sum(heights)))
    subfigs = fig.subfigures(len(groups), 1, height_ratios=heights)
    for subfig, (name, captions, images, cams), n_rows, height in zip(
        np.atleast_1d(subfigs), groups, rows, heights, strict=True
    ):
        axes = subfig.subplots(n_rows, columns, squeeze=False)
        subfig.subplots_adjust(
            left=0.02,
            right=0.98,
            bottom=0.01,
            top=1 - (title_h + caption_h) / height,
            wspace=0.08,
            hspace=caption_h / (cell - caption_h) * 1.15,
        )
        for ax in axes.flat:
            ax.axis("off")
        for ax, caption, image, cam in zip(axes.flat, captions, images, cams, strict=False):
            ax.imshow(image)
            ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
            ax.set_title(caption, fontsize=7.5)
        subfig.suptitle(name, fontsize=11, fontweight="bold")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_first_layer(
    image: FloatArray, maps: FloatArray, path: Path, *, layer: str, caption: str
) -> Path:
    """The input image beside a grid of first-convolution channel maps (each min-max scaled)."""
    plt = _pyplot()
    n = len(maps)
    cols = 4 if n > 4 else max(n, 1)
    lines = math.ceil(n / cols)
    fig = plt.figure(figsize=(3.2 + 1.9 * cols, max(3.4, 1.9 * lines + 0.6)))
    grid = fig.add_gridspec(lines, cols + 2, width_ratios=[1.6, 0.1, *[1.0] * cols])
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(image)
    ax.set_title(caption, fontsize=8)
    ax.axis("off")
    for i, channel in enumerate(maps):
        ax = fig.add_subplot(grid[i // cols, 2 + i % cols])
        # Each channel on its own scale: the point is the pattern it responds to, and channel
        # magnitudes differ by orders of magnitude.
        ax.imshow(channel, cmap="viridis")
        ax.set_title(f"channel {i}", fontsize=7)
        ax.axis("off")
    fig.suptitle(f"activation maps of the first convolution ({layer}), first {n} channels")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_embeddings(
    coords: FloatArray,
    labels: Sequence[int],
    classes: Sequence[str],
    path: Path,
    *,
    title: str,
    wrong: Sequence[bool] | None = None,
) -> Path:
    """Scatter of 2-D embeddings coloured by true class; misclassified images ringed in black."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 5.6))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    y = np.asarray(labels)
    for k, name in enumerate(classes):
        mask = y == k
        if mask.any():
            ax.scatter(coords[mask, 0], coords[mask, 1], s=16, color=cmap(k % cmap.N), label=name)
    if wrong is not None and any(wrong):
        bad = np.asarray(wrong, dtype=bool)
        ax.scatter(
            coords[bad, 0],
            coords[bad, 1],
            s=46,
            facecolors="none",
            edgecolors="black",
            linewidths=0.9,
            label="misclassified",
        )
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _placeholder(path: Path, text: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 1.4))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pick(items: Sequence[ExplainItem], correct: bool, limit: int) -> list[ExplainItem]:
    """Up to ``limit`` items: the worst wrong ones (lowest ``p_true`` first), or correct ones taken
    round-robin over the true classes so one class does not fill the grid."""
    pool = [it for it in items if (it.true == it.predicted) == correct]
    if not correct:
        return sorted(pool, key=lambda it: (it.p_true, str(it.path)))[:limit]
    by_class: dict[int, list[ExplainItem]] = {}
    for it in pool:
        by_class.setdefault(it.true, []).append(it)
    queues = [by_class[k] for k in sorted(by_class)]
    chosen: list[ExplainItem] = []
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen


def write_explanations(
    predictor: Any,
    items: Sequence[ExplainItem],
    features: npt.NDArray[np.floating[Any]] | None,
    out: Path,
    *,
    limit: int = EXPLAIN_DEFAULT,
    embed_limit: int = EMBED_LIMIT,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write ``gradcam.png``, ``first_layer.png``, ``embeddings.png`` and ``embeddings.csv``.

    ``predictor`` is a :class:`landscape.inference.Predictor`; ``items`` are the evaluated
    images; ``features`` their pooled backbone features ``[N, D]`` in the same order (``None``
    skips the embeddings). ``limit`` correct and ``limit`` wrong predictions get a Grad-CAM.
    Returns the ``explain`` entry of ``metrics.json`` (layers used, counts, notes) and
    ``{file name: path}``.
    """
    out.mkdir(parents=True, exist_ok=True)
    model = predictor.model
    classes: list[str] = list(predictor.classes)
    prep = predictor.bundle.preprocessing
    info: dict[str, Any] = {"notes": []}
    files: dict[str, Path] = {}

    picked = {correct: _pick(items, correct, limit) for correct in (True, False)}
    info["gradcam_images"] = {"correct": len(picked[True]), "wrong": len(picked[False])}
    info["gradcam_layer"] = None
    explained = [*picked[True], *picked[False]]
    if explained:
        batch = torch.stack([predictor.preprocess(it.path) for it in explained])
        try:
            # One forward/backward for both groups; the layer is found during that pass.
            cams, layer = _grad_cam(model, batch, [it.predicted for it in explained], None)
        except ValueError as exc:
            info["notes"].append(f"no Grad-CAM: {exc}")
        else:
            info["gradcam_layer"] = layer
            images = np.stack([_denormalise(t, prep.mean, prep.std) for t in batch])
            groups = []
            start = 0
            for title, correct in (("correct predictions", True), ("wrong predictions", False)):
                chosen = picked[correct]
                stop = start + len(chosen)
                captions = [
                    f"true: {classes[it.true]}\npred: {classes[it.predicted]} "
                    f"({it.confidence:.2f})\n{_short(it.path.name)}"
                    for it in chosen
                ]
                groups.append(
                    (
                        f"{title} — Grad-CAM of the predicted class ({layer})",
                        captions,
                        images[start:stop],
                        cams[start:stop],
                    )
                )
                start = stop
            files["gradcam.png"] = plot_gradcam(groups, out / "gradcam.png")

    if items:
        # A correctly classified image when there is one: the maps are then of a typical input.
        first = picked[True][0] if picked[True] else items[0]
        tensor = predictor.preprocess(first.path)
        try:
            maps, conv = _first_layer(model, tensor, FIRST_LAYER_CHANNELS)
        except ValueError as exc:
            info["notes"].append(f"no first-layer activations: {exc}")
        else:
            files["first_layer.png"] = plot_first_layer(
                _denormalise(tensor, prep.mean, prep.std),
                maps,
                out / "first_layer.png",
                layer=conv,
                caption=f"input: {_short(first.path.name)}\n(true: {classes[first.true]})",
            )
            info["first_layer"] = {"layer": conv, "image": str(first.path), "channels": len(maps)}

    if features is not None:
        labels = [it.true for it in items]
        keep = stratified_subset(labels, embed_limit, seed)
        if len(keep) >= 5:
            coords = embed_tsne(np.asarray(features)[keep], seed)
            kept = [items[i] for i in keep]
            wrong = [it.true != it.predicted for it in kept]
            files["embeddings.png"] = plot_embeddings(
                coords,
                [it.true for it in kept],
                classes,
                out / "embeddings.png",
                title=f"t-SNE of the pooled backbone features ({len(kept)} images, "
                f"perplexity {min(30.0, (len(kept) - 1) / 3):.1f})",
                wrong=wrong,
            )
            files["embeddings.csv"] = _write_embeddings(
                out / "embeddings.csv", coords, kept, classes
            )
            info["embeddings"] = {"method": "t-SNE", "images": len(kept), "of": len(items)}
        else:
            info["notes"].append("no embeddings plot: t-SNE needs at least 5 images")
    info["files"] = sorted(files)
    return info, files


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 10] + "…" + name[-9:]


def _write_embeddings(
    path: Path, coords: FloatArray, items: Sequence[ExplainItem], classes: Sequence[str]
) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["x", "y", "path", "label", "predicted"])
        for (x, y), it in zip(coords, items, strict=True):
            writer.writerow(
                [f"{x:.5f}", f"{y:.5f}", it.path, classes[it.true], classes[it.predicted]]
            )
    return path
