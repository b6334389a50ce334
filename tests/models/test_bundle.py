from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from landscape.data.transforms import Preprocessing
from landscape.errors import BundleError
from landscape.models.bundle import build_model, load_bundle, save_bundle, update_bundle_meta
from landscape.models.heads import HeadSpec
from landscape.models.net import create_model

PRE = Preprocessing(input_size=64, resize_size=72, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def _save(path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(1)
    head = HeadSpec(kind="mlp", hidden=[16], dropout=0.3)
    net, record = create_model("tiny_cnn", 3, weights="none", head=head)
    out = save_bundle(
        path, net, classes=["a", "b", "c"], preprocessing=PRE, head=head, weights=record.to_dict()
    )
    return out, net


@pytest.mark.parametrize("name", ["bundle", "model.landscape"])
def test_roundtrip_gives_identical_outputs(tmp_path: Path, name: str) -> None:
    path, net = _save(tmp_path / name)
    bundle = load_bundle(path)
    assert bundle.classes == ["a", "b", "c"]
    assert bundle.preprocessing == PRE
    assert bundle.model_id.startswith("tiny_cnn-")
    assert bundle.meta["software"]["torch"] == torch.__version__
    loaded = build_model(bundle)
    x = torch.randn(2, 3, 64, 64)
    net.eval()
    with torch.inference_mode():
        assert torch.equal(loaded(x), net(x))


def test_tampered_and_truncated_bundles_fail_in_one_line(tmp_path: Path) -> None:
    path, _ = _save(tmp_path / "bundle")
    tensors = path / "model.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-5] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="fails its checksum") as info:
        load_bundle(path)
    assert "\n" not in str(info.value)
    zipped, _ = _save(tmp_path / "m.landscape")
    zipped.write_bytes(zipped.read_bytes()[:1000])
    with pytest.raises(BundleError, match=r"not a readable \.landscape bundle"):
        load_bundle(zipped)


def test_wrong_version_missing_files_and_bad_json(tmp_path: Path) -> None:
    path, _ = _save(tmp_path / "bundle")
    meta = json.loads((path / "bundle.json").read_text())
    (path / "bundle.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(BundleError, match="format version 99"):
        load_bundle(path)
    (path / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(path)
    shutil.rmtree(path)
    path.mkdir()
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(path)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nothing")


class _Touch:
    """Unpickling this creates ``marker``: proof that a payload was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _write_members(path: Path, members: dict[str, bytes]) -> None:
    """Replace or add members of a bundle folder or ``.landscape`` zip."""
    if path.is_dir():
        for name, data in members.items():
            (path / name).write_bytes(data)
        return
    with zipfile.ZipFile(path) as zf:
        kept = {name: zf.read(name) for name in zf.namelist()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in {**kept, **members}.items():
            zf.writestr(name, data)


def _read_member(path: Path, name: str) -> bytes:
    if path.is_dir():
        return (path / name).read_bytes()
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


@pytest.mark.parametrize("name", ["bundle", "model.landscape"])
def test_update_meta(tmp_path: Path, name: str) -> None:
    path, _ = _save(tmp_path / name)
    update_bundle_meta(path, temperature=1.7, unknown_threshold=0.4)
    bundle = load_bundle(path)
    assert bundle.temperature == 1.7 and bundle.unknown_threshold == 0.4


#: Names a careless loader might try: torch checkpoints and plain pickles.
_PICKLE_NAMES = ("model.pt", "model.pth", "model.ckpt", "last.ckpt", "pytorch_model.bin", "a.pkl")


def test_pickle_payload_is_live(tmp_path: Path) -> None:
    # The payloads below really execute when unpickled; the tests after this one rely on it.
    marker = tmp_path / "executed"
    pickle.loads(pickle.dumps(_Touch(marker)))
    assert marker.exists()
    checkpoint = tmp_path / "c.pt"
    torch.save({"state_dict": _Touch(tmp_path / "from_torch")}, checkpoint)
    torch.load(checkpoint, weights_only=False)
    assert (tmp_path / "from_torch").exists()


@pytest.mark.parametrize("name", ["bundle", "model.landscape"])
def test_pickled_tensors_are_refused_without_being_executed(tmp_path: Path, name: str) -> None:
    from landscape.inference import Predictor

    path, _ = _save(tmp_path / name)
    marker = tmp_path / "executed"
    payload = pickle.dumps({"conv.weight": _Touch(marker)})
    meta = json.loads(_read_member(path, "bundle.json"))
    # The checksum is made to match, so only the tensor format stands between it and a loader.
    meta["files"]["model.safetensors"] = hashlib.sha256(payload).hexdigest()
    _write_members(path, {"model.safetensors": payload, "bundle.json": json.dumps(meta).encode()})

    for load in (load_bundle, Predictor.from_bundle):
        with pytest.raises(BundleError, match=r"cannot read model\.safetensors") as info:
            load(path)
        assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["bundle", "model.landscape"])
def test_pickles_beside_the_tensors_are_never_opened(tmp_path: Path, name: str) -> None:
    from landscape.inference import Predictor

    path, net = _save(tmp_path / name)
    marker = tmp_path / "executed"
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": _Touch(marker)}, checkpoint)
    extras = {n: checkpoint.read_bytes() for n in _PICKLE_NAMES}
    extras["data.pkl"] = pickle.dumps(_Touch(marker))
    _write_members(path, extras)

    bundle = load_bundle(path)
    predictor = Predictor.from_bundle(path)
    prediction = predictor.predict([Image.new("RGB", (80, 60), (30, 120, 40))])[0]
    assert not marker.exists()
    assert prediction.label in ["a", "b", "c"]
    net.eval()
    with torch.inference_mode():
        x = torch.randn(1, 3, 64, 64)
        assert torch.equal(build_model(bundle)(x), net(x))  # the safetensors weights, not a pickle
