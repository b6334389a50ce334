from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

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


def test_bundle_never_unpickles(tmp_path: Path) -> None:
    path, _ = _save(tmp_path / "m.landscape")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["bundle.json", "model.safetensors"]


@pytest.mark.parametrize("name", ["bundle", "model.landscape"])
def test_update_meta(tmp_path: Path, name: str) -> None:
    path, _ = _save(tmp_path / name)
    update_bundle_meta(path, temperature=1.7, unknown_threshold=0.4)
    bundle = load_bundle(path)
    assert bundle.temperature == 1.7 and bundle.unknown_threshold == 0.4
