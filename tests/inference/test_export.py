"""ONNX export: parity with torch, storage in the bundle, the onnx backend of the Predictor."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.errors import BundleError, UserError
from landscape.inference import Predictor
from landscape.inference.export import ONNX_MEMBER, export_onnx
from landscape.models.bundle import load_bundle, save_bundle
from landscape.models.heads import HeadSpec
from landscape.models.net import create_model
from landscape.models.weights import pretrained_preprocessing
from tests.conftest import CliResult


def _needs_onnx() -> None:
    """Skip unless the ``onnx`` extra is installed (export needs all three packages)."""
    for name in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(name)


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run's bundle with its ONNX export (seeded-noise parity check)."""
    _needs_onnx()
    bundle = tmp_path_factory.mktemp("export") / "bundle"
    shutil.copytree(tiny_run / "bundle", bundle)
    export_onnx(bundle)
    return bundle


def _files(synth_small: Path) -> list[Path]:
    return sorted(synth_small.glob("*/*.jpg"))[::5]


def test_export_is_stored_in_the_bundle_and_verified(exported: Path) -> None:
    bundle = load_bundle(exported)  # the tensors' checksum still holds
    info = bundle.meta["onnx"]
    assert info["exported_from"] == bundle.model_id
    assert info["opset"] == 18 and info["outputs"] == ["logits", "features"]
    assert info["max_abs_diff_logits"] <= 1e-3
    assert len(bundle.meta["files"][ONNX_MEMBER]) == 64
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(exported / ONNX_MEMBER))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["landscape.classes"]) == bundle.classes
    assert json.loads(props["landscape.preprocessing"]) == bundle.meta["preprocessing"]


def test_onnx_backend_predicts_what_torch_predicts(exported: Path, synth_small: Path) -> None:
    files = _files(synth_small)
    torch_p = Predictor.from_bundle(exported, backend="torch")
    onnx_p = Predictor.from_bundle(exported, backend="onnx")
    a, b = torch_p.predict(files, batch_size=5), onnx_p.predict(files, batch_size=7)
    assert [p.label for p in a] == [p.label for p in b]
    for x, y in zip(a, b, strict=True):
        assert max(abs(x.probabilities[c] - y.probabilities[c]) for c in x.probabilities) < 1e-4
    batch = torch.stack([torch_p.preprocess(f) for f in files[:4]])
    (tl, tf), (ol, of) = torch_p.logits_and_features(batch), onnx_p.logits_and_features(batch)
    np.testing.assert_allclose(ol.numpy(), tl.numpy(), atol=1e-4)
    np.testing.assert_allclose(of.numpy(), tf.numpy(), atol=1e-4)
    assert onnx_p._model is None  # plain predictions never built the torch network


def test_real_photos_parity_for_packaged_efficientnet_lite0(
    intel_dir: Path, tmp_path: Path
) -> None:
    """The offline default backbone (TF 'SAME' padding) exports faithfully, on real photos."""
    _needs_onnx()
    net, record = create_model("efficientnet_lite0", 6, weights="packaged", head=HeadSpec())
    info = net.info
    pre = pretrained_preprocessing(info, record)
    bundle = save_bundle(
        tmp_path / "lite0.landscape",
        net,
        classes=[p.name for p in sorted(intel_dir.iterdir()) if p.is_dir()],
        preprocessing=pre,
        head=HeadSpec(),
        weights=record.to_dict(),
    )
    photos = [sorted(d.glob("*.jpg"))[0] for d in sorted(intel_dir.iterdir()) if d.is_dir()]
    result = export_onnx(bundle, images=photos, atol=1e-4)
    assert result.max_abs_diff_logits <= 1e-4
    assert result.checked_on == "6 image(s)"
    with zipfile.ZipFile(bundle) as zf:  # the zip keeps every member and gains the graph
        assert sorted(zf.namelist()) == ["bundle.json", "model.onnx", "model.safetensors"]
    onnx_p = Predictor.from_bundle(bundle, backend="onnx")
    torch_p = Predictor.from_bundle(bundle)
    assert [p.label for p in onnx_p.predict(photos)] == [p.label for p in torch_p.predict(photos)]


def test_classic_probe_bundle_exports(synth_small: Path, tmp_path: Path) -> None:
    """A backbone cut at a layer by hooks (the svm/logreg baseline) still exports."""
    _needs_onnx()
    from landscape.config import load_train_config
    from landscape.train.classic import fit_classic

    cfg = load_train_config(
        None,
        {"data": str(synth_small), "out": str(tmp_path / "lr"), "backbone": "tiny_cnn",
         "weights": "none", "head": {"kind": "logreg"}, "layer": "features.2",
         "progress": False, "num_workers": 0},
    )  # fmt: skip
    bundle = fit_classic(cfg).bundle
    export_onnx(bundle)
    files = _files(synth_small)
    a = Predictor.from_bundle(bundle).predict(files)
    b = Predictor.from_bundle(bundle, backend="onnx").predict(files)
    assert [p.label for p in a] == [p.label for p in b]


def test_onnx_backend_without_export_says_how_to_make_one(tiny_run: Path) -> None:
    with pytest.raises(BundleError, match=r"has no model\.onnx — run `landscape export"):
        Predictor.from_bundle(tiny_run / "bundle", backend="onnx")
    with pytest.raises(UserError, match="unknown backend 'tensorrt'"):
        Predictor.from_bundle(tiny_run / "bundle", backend="tensorrt")


def test_tampered_onnx_is_refused(exported: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(exported, bundle)
    data = bytearray((bundle / ONNX_MEMBER).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / ONNX_MEMBER).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.onnx is missing or fails its checksum"):
        Predictor.from_bundle(bundle, backend="onnx")
    Predictor.from_bundle(bundle)  # the torch backend does not need the graph


def test_cli_export_then_predict_and_evaluate_on_onnx(
    run_cli: Callable[..., CliResult], tiny_run: Path, synth_small: Path, tmp_path: Path
) -> None:
    _needs_onnx()
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", bundle)
    res = run_cli("predict", bundle, synth_small / "forest", "--backend", "onnx")
    assert res.code == 1 and "landscape export" in res.err and "Traceback" not in res.err
    res = run_cli("export", bundle, "--data", synth_small, "--out", tmp_path / "m.onnx", "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["checked_on"] == "8 image(s)" and out["max_abs_diff_logits"] <= 1e-3
    assert (tmp_path / "m.onnx").read_bytes() == (bundle / ONNX_MEMBER).read_bytes()
    runs = {}
    for backend in ("torch", "onnx"):
        res = run_cli("predict", bundle, synth_small, "--backend", backend, "--json")
        assert res.code == 0, res.err
        runs[backend] = [(r["path"], r["label"]) for r in json.loads(res.out)]
    assert runs["onnx"] == runs["torch"] and len(runs["onnx"]) == 80
    accuracy = {}
    for backend in ("torch", "onnx"):
        res = run_cli(
            "evaluate", bundle, "--data", synth_small, "--out", tmp_path / backend,
            "--backend", backend, "--no-explain", "--no-latency", "--json",
        )  # fmt: skip
        assert res.code == 0, res.err
        metrics = json.loads((tmp_path / backend / "metrics.json").read_text())
        assert metrics["backend"] == backend
        accuracy[backend] = metrics["accuracy"]
    assert accuracy["onnx"] == accuracy["torch"]


def test_int8_is_stored_only_when_it_agrees_with_fp32(
    exported: Path, synth_small: Path, tmp_path: Path
) -> None:
    from landscape.inference.quantize import INT8_MEMBER, quantize_onnx

    bundle = tmp_path / "bundle"
    shutil.copytree(exported, bundle)
    images = sorted(synth_small.glob("*/*.jpg"))[::2]  # 40: 20 calibrate, 20 check
    with pytest.raises(BundleError, match=r"int8 agrees with fp32 on .* nothing was written"):
        quantize_onnx(bundle, images, min_agreement=1.01)
    assert not (bundle / INT8_MEMBER).exists() and "onnx_int8" not in load_bundle(bundle).meta
    with pytest.raises(UserError, match="at least 8 images"):
        quantize_onnx(bundle, images[:3])
    result = quantize_onnx(bundle, images, min_agreement=0.0)
    assert (result.calibrated_on, result.checked_on) == (20, 20)
    assert result.onnx_bytes < result.fp32_bytes / 2  # int8 weights
    meta = load_bundle(bundle).meta["onnx_int8"]
    assert meta["agreement_with_fp32"] == result.agreement
    # The int8 backend is a working classifier close to fp32, not merely a loadable file.
    held_out = images[1::2]
    int8 = Predictor.from_bundle(bundle, backend="onnx-int8").predict(held_out)
    fp32 = Predictor.from_bundle(bundle, backend="onnx").predict(held_out)
    agree = np.mean([a.label == b.label for a, b in zip(int8, fp32, strict=True)])
    assert agree == pytest.approx(result.agreement)
    assert agree >= 0.8, agree


def test_int8_needs_the_fp32_export_and_images(
    run_cli: Callable[..., CliResult], tiny_run: Path, synth_small: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")  # quantize_onnx imports it before reading the bundle
    from landscape.inference.quantize import quantize_onnx

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", bundle)
    with pytest.raises(BundleError, match=r"has no model\.onnx"):
        quantize_onnx(bundle, sorted(synth_small.glob("*/*.jpg"))[:10])
    res = run_cli("export", bundle, "--int8")
    assert res.code == 1 and "--int8 needs images to calibrate on" in res.err
    res = run_cli("predict", bundle, synth_small / "forest", "--backend", "onnx-int8")
    assert res.code == 1 and "--int8 --data IMAGES" in res.err
