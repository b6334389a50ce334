"""Weight sources: packaged (genuine ImageNet, parity with the author's code), hub, file, none."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from landscape.data.io import open_image
from landscape.errors import WeightsError
from landscape.models import registry
from landscape.models.net import build_imagenet_model, create_model
from landscape.models.registry import IMAGENET_MEAN, IMAGENET_STD, get_backbone_info
from landscape.models.weights import (
    PACKAGED_WEIGHTS,
    WeightsRecord,
    load_state_dict_file,
    normalization_for,
    pretrained_preprocessing,
    resolve_weights,
    sha256_of,
)


def _batch(paths: list[Path], size: int = 224) -> torch.Tensor:
    tf = v2.Compose(
        [
            v2.Resize(size, antialias=True),
            v2.CenterCrop(size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        ]
    )
    return torch.stack([tf(open_image(p)) for p in paths])


def _photos(intel_dir: Path, per_class: int = 2) -> list[Path]:
    return [
        p
        for cls in ("mountain", "glacier", "sea", "forest")
        for p in sorted((intel_dir / cls).glob("*.jpg"))[:per_class]
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_packaged_weights_match_the_authors_implementation(intel_dir: Path, index: int) -> None:
    """Logit parity ≤ 1e-4 with efficientnet-lite-pytorch on real photos."""
    from efficientnet_lite_pytorch import EfficientNet

    name = f"efficientnet_lite{index}"
    ours, record = build_imagenet_model(name, "packaged")
    assert record.source == "packaged"
    assert record.sha256 == PACKAGED_WEIGHTS[name][2]
    path = __import__(PACKAGED_WEIGHTS[name][0]).__dict__[PACKAGED_WEIGHTS[name][1]]
    reference = EfficientNet.from_pretrained(
        f"efficientnet-lite{index}", weights_path=path.get_model_file_path()
    ).eval()
    x = _batch(_photos(intel_dir, 1), get_backbone_info(name).input_size)
    with torch.inference_mode():
        diff = (ours(x) - reference(x)).abs().max().item()
    assert diff <= 1e-4


def test_packaged_weights_do_not_fit_timm_efficientnet_lite0(intel_dir: Path) -> None:
    """The same tensors load into timm's efficientnet_lite0 but compute something else."""
    import timm

    ours, _ = build_imagenet_model("efficientnet_lite0", "packaged")
    other = timm.create_model("efficientnet_lite0").eval()
    keys = [k for k in other.state_dict() if not k.endswith("num_batches_tracked")]
    tensors = [v for k, v in ours.state_dict().items() if not k.endswith("num_batches_tracked")]
    other.load_state_dict(dict(zip(keys, tensors, strict=True)), strict=False)
    x = _batch(_photos(intel_dir, 1))
    with torch.inference_mode():
        assert (ours(x) - other(x)).abs().max().item() > 0.1


def test_genuine_imagenet_predictions(intel_dir: Path) -> None:
    """Mountains look like alps/valleys, sea like seashore/promontory: the weights are real."""
    from timm.data import ImageNetInfo

    names = ImageNetInfo()
    model, _ = build_imagenet_model("efficientnet_lite0", "packaged")
    expected = {
        "mountain": {"alp", "valley", "volcano", "mountain", "cliff", "promontory"},
        "glacier": {"alp", "glacier", "iceberg", "valley", "mountain", "cliff", "volcano"},
        "sea": {"seashore", "promontory", "sandbar", "breakwater", "lakeside", "cliff"},
    }
    hits = 0
    total = 0
    for cls, wanted in expected.items():
        photos = sorted((intel_dir / cls).glob("*.jpg"))[:8]
        with torch.inference_mode():
            top5 = model(_batch(photos)).topk(5, dim=1).indices
        for row in top5.tolist():
            labels = {
                w.strip().lower() for i in row for w in names.index_to_description(i).split(",")
            }
            hits += bool(labels & wanted)
            total += 1
    assert hits / total >= 0.75


def test_packaged_checksum_mismatch_is_refused() -> None:
    info = get_backbone_info("efficientnet_lite0")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        resolve_weights(info, "packaged", sha256="0" * 64)


def test_no_packaged_weights_for_resnet() -> None:
    with pytest.raises(WeightsError, match="no packaged weights for resnet18"):
        resolve_weights(get_backbone_info("resnet18"), "packaged")


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


@pytest.fixture
def hub_backbone() -> Iterator[tuple[str, bytes, dict[str, torch.Tensor]]]:
    """A temporary registry entry whose hub weights live on the test's own server."""
    import hashlib
    import io

    from landscape.models.tiny import TinyCNN

    torch.manual_seed(7)
    state = TinyCNN().state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    blob = buf.getvalue()
    info = dataclasses.replace(
        get_backbone_info("tiny_cnn"),
        name="tiny_hub",
        weight_sources=("hub", "none"),
        hub_url="https://example.invalid/weights/tiny_hub.pth",
        hub_sha256=hashlib.sha256(blob).hexdigest(),
    )
    registry._REGISTRY["tiny_hub"] = info
    yield "tiny_hub", blob, state
    registry._REGISTRY.pop("tiny_hub", None)


def test_hub_download_from_mirror_cached_and_verified(
    file_server: tuple[str, Path],
    hub_backbone: tuple[str, bytes, dict[str, torch.Tensor]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url, root = file_server
    name, blob, state = hub_backbone
    (root / f"{name}-tiny_hub.pth").write_bytes(blob)
    monkeypatch.setenv("LANDSCAPE_WEIGHTS_MIRROR", url)
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    net, record = create_model(name, 3, weights="hub")
    assert record.source == "hub" and record.sha256 is not None
    cached = tmp_path / "cache" / "weights" / f"{name}-tiny_hub.pth"
    assert cached.is_file()
    key = "features.0.0.weight"
    assert torch.equal(net.backbone.state_dict()[key], state[key])
    # Served file removed: the cached copy is used, no download.
    (root / f"{name}-tiny_hub.pth").unlink()
    create_model(name, 3, weights="hub")
    # A corrupted cached file fails its checksum.
    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        create_model(name, 3, weights="hub")
    # A mirror serving the wrong bytes: refused, and nothing is left in the cache.
    cached.unlink()
    (root / f"{name}-tiny_hub.pth").write_bytes(blob[:-1] + b"x")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        create_model(name, 3, weights="hub")
    assert not list(cached.parent.glob("*"))


def test_hub_offline_names_the_alternatives(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LANDSCAPE_WEIGHTS_MIRROR", "http://127.0.0.1:9")
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        resolve_weights(get_backbone_info("resnet18"), "hub")
    message = str(info.value)
    assert "cannot download resnet18 weights" in message
    assert "--weights packaged" in message and "--weights none" in message
    assert not list((tmp_path / "weights").glob("*"))


def test_local_file_weights_and_wrong_architecture(tmp_path: Path) -> None:
    import torchvision
    from safetensors.torch import save_file

    resnet = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save(resnet.state_dict(), path)
    net, record = create_model("resnet18", 4, weights=str(path), sha256=sha256_of(path))
    assert record.source == "file"
    assert torch.equal(net.backbone.conv1.weight, resnet.conv1.weight)
    feature_only = {k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
    save_file(feature_only, str(tmp_path / "r18.safetensors"))
    create_model("resnet18", 4, weights=str(tmp_path / "r18.safetensors"))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        create_model("resnet18", 4, weights=str(path), sha256="ab" * 32)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp_path / "mnv2.pth")
    with pytest.raises(WeightsError, match=r"do not fit resnet18 \(missing: conv1.weight"):
        create_model("resnet18", 4, weights=str(tmp_path / "mnv2.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights"):
        load_state_dict_file(tmp_path / "junk.pth")
    with pytest.raises(WeightsError, match="unknown weights 'imagenet'"):
        create_model("resnet18", 4, weights="imagenet")


def test_none_is_random_and_seeded() -> None:
    torch.manual_seed(0)
    a, record = create_model("tiny_cnn", 3, weights="none")
    torch.manual_seed(0)
    b, _ = create_model("tiny_cnn", 3, weights="none")
    assert record.source == "none"
    assert torch.equal(a.backbone.features[0][0].weight, b.backbone.features[0][0].weight)


@pytest.mark.parametrize(
    ("source", "mean"),
    [("packaged", IMAGENET_MEAN), ("hub", (0.5, 0.5, 0.5)), ("none", IMAGENET_MEAN)],
)
def test_preprocessing_follows_the_weights_source(source: str, mean: tuple[float, ...]) -> None:
    """Packaged EfficientNet-Lite weights take ImageNet mean/std, timm's TF port [-1, 1]."""
    info = get_backbone_info("efficientnet_lite1")
    record = WeightsRecord(source)
    pre = pretrained_preprocessing(info, record)
    assert (pre.input_size, pre.resize_size, pre.interpolation) == (240, 272, "bicubic")
    assert pre.mean == mean and normalization_for(info, record)[0] == mean
    # A local file follows the default (packaged) weights' pipeline.
    assert pretrained_preprocessing(info, WeightsRecord("file", "x.pth")) == (
        pretrained_preprocessing(info, WeightsRecord("packaged"))
    )


def test_torchvision_preprocessing_is_unchanged() -> None:
    pre = pretrained_preprocessing(get_backbone_info("vgg16"), WeightsRecord("hub"))
    assert (pre.input_size, pre.resize_size, pre.interpolation) == (224, 256, "bilinear")
    assert (pre.mean, pre.std) == (IMAGENET_MEAN, IMAGENET_STD)
