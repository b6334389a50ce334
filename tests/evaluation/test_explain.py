"""Explanations: Grad-CAM, first-layer activations and t-SNE embeddings on real bundles."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from landscape.data.synth import SynthSpec, generate_dataset
from landscape.evaluation.explain import (
    ExplainItem,
    embed_tsne,
    first_conv_layer,
    first_layer_activations,
    grad_cam,
    gradcam_layer,
    stratified_subset,
    write_explanations,
)
from landscape.inference import Predictor
from landscape.models.heads import HeadSpec, build_head
from landscape.models.net import LandscapeNet
from landscape.models.registry import get_backbone_info

CLASSES = ("coast", "forest", "glacier")
_RUNS: dict[str, Path] = {}


def effnet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen efficientnet_lite0 run on synthetic landscapes (real pretrained features).

    Built once per test session and shared with ``test_openset`` (about 15 s on a laptop CPU:
    features are cached, so 30 head epochs cost little).
    """
    if "effnet" not in _RUNS:
        from landscape.config import load_train_config
        from landscape.train.trainer import fit

        root = tmp_path_factory.mktemp("effnet")
        data = root / "data"
        generate_dataset(data, SynthSpec(per_class=20, size=160, classes=CLASSES, seed=5))
        cfg = load_train_config(
            None,
            {
                "data": str(data),
                "out": str(root / "run"),
                "backbone": "efficientnet_lite0",
                "weights": "packaged",
                "policy": "frozen",
                "epochs": 30,
                "batch_size": 16,
                "optim": {"lr": 0.01},
                "seed": 0,
                "progress": False,
                "num_workers": 0,
            },
        )
        fit(cfg)
        _RUNS["effnet"] = root / "run"
    return _RUNS["effnet"]


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    return Predictor.from_bundle(effnet_run(tmp_path_factory) / "bundle")


@pytest.fixture(scope="module")
def forests(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    # Forests the model never saw (another seed than the training data).
    out = tmp_path_factory.mktemp("forests")
    generate_dataset(out, SynthSpec(per_class=8, size=224, classes=("forest",), seed=77))
    return sorted((out / "forest").glob("*.jpg"))


def _left_share(cams: np.ndarray) -> np.ndarray:
    half = cams.shape[-1] // 2
    return cams[..., :half].sum(axis=(1, 2)) / np.maximum(cams.sum(axis=(1, 2)), 1e-9)


def test_grad_cam_is_a_normalised_class_specific_map(
    predictor: Predictor, forests: list[Path]
) -> None:
    batch = torch.stack([predictor.preprocess(p) for p in forests[:3]])
    # One pass: the same images explained for class 0 (coast) and class 1 (forest).
    both = grad_cam(predictor.model, torch.cat([batch, batch]), [0, 0, 0, 1, 1, 1])
    cams = {0: both[:3], 1: both[3:]}

    size = predictor.bundle.preprocessing.input_size
    for cam in cams.values():
        assert cam.shape == (3, size, size) and cam.dtype == np.float64
        assert cam.min() >= 0.0 and cam.max() <= 1.0
        # Each map is scaled to a peak of exactly 1 (or is all zero: no positive evidence).
        assert all(m.max() in (0.0, 1.0) for m in cam)
    assert cams[1].max() == 1.0
    # Another class's gradient weighs the channels differently: another map.
    assert np.abs(cams[0] - cams[1]).mean() > 0.02
    # No gradient was left on the shared model and it still runs in eval mode.
    assert all(p.grad is None for p in predictor.model.parameters())
    assert not predictor.model.training


def test_grad_cam_follows_the_evidence(predictor: Predictor, forests: list[Path]) -> None:
    # A forest in the left half of a flat grey picture, then the mirror image: the map's mass
    # must follow the forest. The input crop is the centre 224 px of the 512 x 256 canvas
    # resized to 256 px high, i.e. half forest, half grey.
    canvases = []
    for path in forests:
        canvas = Image.new("RGB", (512, 256), (128, 128, 128))
        canvas.paste(Image.open(path).convert("RGB").resize((256, 256)), (0, 0))
        canvases.append(predictor.preprocess(canvas))
    left = torch.stack(canvases)
    target = [CLASSES.index("forest")] * len(forests)

    shares = _left_share(grad_cam(predictor.model, torch.cat([left, left.flip(-1)]), target * 2))
    on_left, on_right = shares[: len(forests)], shares[len(forests) :]

    # More often than not, by a clear margin (measured: 8/8 and 8/8).
    assert (on_left > 0.5).sum() >= 6, on_left
    assert (on_right < 0.5).sum() >= 6, on_right
    assert on_left.mean() > on_right.mean() + 0.2


class _VggLike(nn.Module):
    """A conv stack whose deepest "block" is an fc classifier, like VGG/AlexNet's, after a 1x1
    pooled map like ConvNeXt's head norm: Grad-CAM must skip both."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def _vgg_like_net() -> LandscapeNet:
    info = dataclasses.replace(
        get_backbone_info("tiny_cnn"),
        blocks=lambda m: [["features.0", "features.1", "features.2"],
                          ["features.3", "features.4", "features.5"], ["pool"], ["classifier"]],
    )  # fmt: skip
    torch.manual_seed(0)
    return LandscapeNet(_VggLike(), build_head(HeadSpec(), 16, 3), info).eval()


def test_layers_are_found_generically() -> None:
    net = _vgg_like_net()
    # The last spatial map: the last max-pool, not the fc classifier nor the 1x1 pooled map.
    assert gradcam_layer(net, 64) == "features.5"
    assert first_conv_layer(net, 64) == "features.0"
    x = torch.randn(4, 3, 64, 64)
    # In-place ReLUs after the hooked module do not break the gradient (the hook hands a copy on).
    cams = grad_cam(net, x, [0, 1, 2, 0])
    assert cams.shape == (4, 64, 64) and cams.min() >= 0.0 and cams.max() <= 1.0
    # The default target is the predicted class; a named layer gives the same maps.
    with torch.inference_mode():
        predicted = net(x).argmax(dim=1).tolist()
    np.testing.assert_allclose(grad_cam(net, x), grad_cam(net, x, predicted, layer="features.5"))
    assert all(p.grad is None for p in net.parameters())
    maps = first_layer_activations(net, torch.randn(3, 64, 64), channels=4)
    assert maps.shape == (4, 64, 64)


def test_first_layer_activations_of_efficientnet(predictor: Predictor, forests: list[Path]) -> None:
    image = predictor.preprocess(forests[0])
    assert first_conv_layer(predictor.model) == "conv_stem"
    maps = first_layer_activations(predictor.model, image)
    # conv_stem: 32 channels, stride 2 → the first 16 at half resolution.
    assert maps.shape == (16, 112, 112)
    assert np.isfinite(maps).all() and maps.std(axis=(1, 2)).max() > 0
    assert gradcam_layer(predictor.model) == "bn2"


def test_stratified_subset_keeps_shares() -> None:
    labels = [0] * 600 + [1] * 300 + [2] * 3
    chosen = stratified_subset(labels, 100, seed=1)
    assert len(chosen) == 100 and chosen == sorted(set(chosen))
    picked = np.bincount(np.asarray(labels)[chosen], minlength=3)
    assert picked[2] >= 1 and abs(picked[0] - 2 * picked[1]) <= 3
    assert stratified_subset(labels, 100, seed=1) == chosen
    assert stratified_subset([0, 1, 1], 10) == [0, 1, 2]


def test_embed_tsne_shapes() -> None:
    rng = np.random.default_rng(0)
    # Two well-separated blobs stay separated in 2-D.
    x = np.r_[rng.normal(0, 1, (20, 64)), rng.normal(8, 1, (20, 64))]
    coords = embed_tsne(x)
    assert coords.shape == (40, 2) and np.isfinite(coords).all()
    a, b = coords[:20].mean(axis=0), coords[20:].mean(axis=0)
    assert np.linalg.norm(a - b) > 2 * coords[:20].std(axis=0).max()
    with pytest.raises(ValueError, match="at least 5"):
        embed_tsne(x[:4])


def test_write_explanations_files(
    predictor: Predictor, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    run = effnet_run(tmp_path_factory)
    paths = sorted((run.parent / "data").rglob("*.jpg"))[::4]
    batch = torch.stack([predictor.preprocess(p) for p in paths])
    with torch.inference_mode():
        features = predictor.model.features(batch).numpy()
        probs = torch.softmax(predictor.model.head(torch.as_tensor(features)), dim=1).numpy()
    items = [
        ExplainItem(p, CLASSES.index(p.parent.name), int(r.argmax()), float(r.max()),
                    float(r[CLASSES.index(p.parent.name)]))
        for p, r in zip(paths, probs, strict=True)
    ]  # fmt: skip
    # Make two of them "wrong" whatever the model says, so both Grad-CAM groups are drawn.
    items[0] = dataclasses.replace(items[0], predicted=(items[0].true + 1) % 3, p_true=0.01)
    items[1] = dataclasses.replace(items[1], predicted=(items[1].true + 1) % 3, p_true=0.02)

    info, files = write_explanations(predictor, items, features, tmp_path, limit=3)

    assert set(files) == {"gradcam.png", "first_layer.png", "embeddings.png", "embeddings.csv"}
    assert info["gradcam_layer"] == "bn2" and info["first_layer"]["layer"] == "conv_stem"
    assert info["gradcam_images"]["correct"] == 3 and info["gradcam_images"]["wrong"] >= 2
    assert info["embeddings"] == {"method": "t-SNE", "images": len(items), "of": len(items)}
    for name in ("gradcam.png", "first_layer.png", "embeddings.png"):
        with Image.open(files[name]) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 200
    with open(files["embeddings.csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(items) and {r["label"] for r in rows} == set(CLASSES)
    assert all(np.isfinite([float(r["x"]), float(r["y"])]).all() for r in rows)
    # Without features there is no embedding plot.
    _, files = write_explanations(predictor, items[:2], None, tmp_path / "few", limit=1)
    assert "embeddings.png" not in files and "gradcam.png" in files
