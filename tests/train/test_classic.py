"""The classic baseline: features from a chosen layer + scikit-learn, saved as a normal bundle."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from landscape.config import load_train_config
from landscape.errors import ConfigError, UserError
from landscape.inference.predictor import Prediction, Predictor
from landscape.models.bundle import build_model, load_bundle
from landscape.models.truncate import PROBE_LAYER_ATTR, probe_backbone
from landscape.train.classic import ClassicResult, fit_classic, fold_linear, make_estimator


def _gray_dataset(out: Path, classes: tuple[str, ...], per_class: int) -> Path:
    """Synthetic landscapes re-saved as single-channel (mode L) JPEGs, like 15-Scene."""
    from landscape.data.synth import SynthSpec, generate_dataset

    generate_dataset(out, SynthSpec(per_class=per_class, size=64, seed=5, classes=classes))
    for path in out.rglob("*.jpg"):
        Image.open(path).convert("L").save(path, quality=90)
    return out


@pytest.fixture(scope="module")
def gray_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes × 8 grayscale images."""
    return _gray_dataset(tmp_path_factory.mktemp("gray") / "data", ("coast", "desert", "forest"), 8)


def _predict_with_features(
    predictor: Predictor, files: list[Path]
) -> tuple[list[Prediction], np.ndarray]:
    """``predictor.predict(files)`` plus the feature vectors its head saw (one forward pass)."""
    seen: list[torch.Tensor] = []
    hook = predictor.model.head.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    try:
        preds = predictor.predict(files)
    finally:
        hook.remove()
    return preds, torch.cat(seen).double().numpy()


def _cfg(data: Path, out: Path, **over: Any) -> Any:
    base = {"data": str(data), "out": str(out), "progress": False, "num_workers": 0}
    return load_train_config(None, {**base, **over})


@pytest.fixture(scope="module")
def svm_run(gray_data: Path, tmp_path_factory: pytest.TempPathFactory) -> ClassicResult:
    """LinearSVC on efficientnet_lite0's blocks.5 (packaged weights), grayscale inputs."""
    out = tmp_path_factory.mktemp("runs") / "svm"
    cfg = _cfg(
        gray_data,
        out,
        backbone="efficientnet_lite0",
        weights="packaged",
        head={"kind": "svm", "C": 0.5},
        layer="blocks.5",
    )
    return fit_classic(cfg)


# --- folding the scaler and the linear model into one layer (no images) -----------------------


@pytest.mark.parametrize("kind", ["svm", "logreg"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_folded_layer_reproduces_sklearn(kind: str, n_classes: int) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), 30)
    # Features with very different offsets and scales: the folded scaler must undo both.
    x = rng.normal(size=(len(y), 12)) * rng.uniform(0.01, 50, 12) + rng.uniform(-100, 100, 12)
    x[:, :3] += y[:, None] * 2.0
    pipe = make_estimator(kind, 1.0).fit(x, y)
    weight, bias = fold_linear(pipe)
    assert weight.shape == (n_classes, 12)
    logits = x @ weight.T + bias
    np.testing.assert_array_equal(logits.argmax(1), pipe.predict(x))
    decision = pipe.decision_function(x).reshape(len(x), -1)
    expected = decision if n_classes > 2 else np.hstack([-decision, decision]) / 2
    np.testing.assert_allclose(logits, expected, atol=1e-8)
    if kind == "logreg":  # the Predictor's softmax of these logits is predict_proba
        probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        np.testing.assert_allclose(probs, pipe.predict_proba(x), atol=1e-10)


# --- the bundle: exact, reloadable, usable by the Predictor -----------------------------------


def test_svm_bundle_matches_sklearn_through_the_predictor(
    svm_run: ClassicResult, gray_data: Path
) -> None:
    meta = load_bundle(svm_run.bundle).meta
    assert meta["head"]["kind"] == "sklearn"
    assert meta["head"]["estimator"] == "svm"
    assert meta["head"]["C"] == 0.5
    assert meta["head"]["layer"] == meta["feature_layer"] == "blocks.5"
    assert meta["head"]["scaling"] == "standard (folded into the linear layer)"
    assert meta["head"]["in_features"] == svm_run.metrics["feature_dim"] == 192
    assert meta["weights"]["source"] == "packaged"
    assert svm_run.metrics["fold_max_abs_error"] < 1e-4
    assert svm_run.metrics["params"]["trainable"] == 192 * 3 + 3

    predictor = Predictor.from_bundle(svm_run.bundle)
    files = sorted(gray_data.rglob("*.jpg"))[::3]
    assert all(Image.open(f).mode == "L" for f in files)
    preds, feats = _predict_with_features(predictor, files)
    # Same features in, same decision values out: the folded scaler is exact.
    logits = np.array([p.logits for p in preds])
    np.testing.assert_allclose(logits, svm_run.estimator.decision_function(feats), atol=1e-4)
    expected = [predictor.classes[i] for i in svm_run.estimator.predict(feats)]
    assert [p.label for p in preds] == expected
    assert svm_run.metrics["test_acc"] >= 0.5  # ImageNet blocks.5 features separate them


def test_logreg_on_resnet18_layer3_is_binary_and_gives_predict_proba(
    tmp_path: Path,
) -> None:
    data = _gray_dataset(tmp_path / "two", ("glacier", "desert"), 6)
    result = fit_classic(
        _cfg(
            data,
            tmp_path / "run",
            backbone="resnet18",
            weights="none",
            head={"kind": "logreg", "C": 0.1},
            layer="layer3",
            val_fraction=0.3,
            test_fraction=0.0,
        )
    )
    bundle = load_bundle(result.bundle)
    # The truncated backbone stores only what computes layer3: no layer4, no ImageNet fc.
    keys = list(bundle.state)
    assert any(k.startswith("backbone.layer3.") for k in keys)
    assert not any(k.startswith(("backbone.layer4.", "backbone.fc.")) for k in keys)
    assert {k for k in keys if k.startswith("head.")} == {"head.fc.weight", "head.fc.bias"}
    net = build_model(bundle)
    assert getattr(net.backbone, PROBE_LAYER_ATTR) == "layer3"
    assert net.head.get_submodule("fc").weight.shape == (2, 256)  # binary: [−f, f]/2 as two logits
    # Module names still resolve (freezing and Grad-CAM address blocks by name); the blocks
    # listed are those the features depend on, so Grad-CAM explains the feature layer.
    assert [type(net.backbone.get_submodule(n)).__name__ for n in ("layer3", "layer4")] == [
        "Sequential",
        "Identity",
    ]
    assert net.blocks()[-1] == ["layer3"]

    predictor = Predictor(bundle)
    preds, feats = _predict_with_features(predictor, sorted(data.rglob("*.jpg"))[::2])
    probs = np.array([[p.probabilities[c] for c in predictor.classes] for p in preds])
    np.testing.assert_allclose(probs, result.estimator.predict_proba(feats), atol=1e-5)


def test_default_layer_is_the_pooled_output() -> None:
    pooled, _ = probe_backbone("tiny_cnn", None, weights="none")
    cut, _ = probe_backbone("tiny_cnn", "features.2", weights="none")
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert pooled(x).shape == (2, 128)
        assert cut(x).shape == (2, 128)  # 4-D map → global average pooled


# --- the command line -------------------------------------------------------------------------


def test_cli_trains_an_svm_and_predicts_with_its_bundle(
    run_cli: Callable[..., Any], gray_data: Path, svm_run: ClassicResult, tmp_path: Path
) -> None:
    out = tmp_path / "cli-run"
    args = ["train", "--data", gray_data, "--backbone", "efficientnet_lite0"]
    args += ["--weights", "packaged", "--head", "svm", "--C", "0.5", "--layer", "blocks.5"]
    args += ["--out", out, "--workers", "0", "--json"]
    res = run_cli(*args)
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["estimator"] == "svm"
    assert summary["feature_layer"] == "blocks.5"
    # Same data, same seed, same cached features: the same model as the API run.
    assert summary["train_acc"] == svm_run.metrics["train_acc"]
    assert summary["test_acc"] == svm_run.metrics["test_acc"]
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted((gray_data / "desert").glob("*.jpg"))[:3]:
        (folder / src.name).write_bytes(src.read_bytes())
    res = run_cli("predict", out / "bundle", folder, "--json")
    assert res.code == 0, res.err
    rows = json.loads(res.out)
    assert len(rows) == 3
    assert {r["label"] for r in rows} <= {"coast", "desert", "forest"}
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)


def test_cli_unknown_layer_is_one_line_listing_valid_names(
    run_cli: Callable[..., Any], gray_data: Path, tmp_path: Path
) -> None:
    res = run_cli(
        "train", "--data", gray_data, "--backbone", "resnet18", "--weights", "none",
        "--head", "svm", "--layer", "layer7", "--out", tmp_path / "bad",
    )  # fmt: skip
    assert res.code == 1
    message = res.err.strip()
    assert "\n" not in message
    assert "unknown layer 'layer7' for resnet18" in message
    assert "layer3" in message and "layer4" in message
    assert not (tmp_path / "bad").exists()  # nothing written half-way


def test_config_rejects_what_a_classic_head_cannot_do(gray_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"layer is only used with head\.kind svm or logreg"):
        _cfg(gray_data, tmp_path / "a", layer="blocks.5")
    cfg = _cfg(gray_data, tmp_path / "b", head={"kind": "svm"}, policy="deepest:1")
    with pytest.raises(ConfigError, match="needs a frozen backbone"):
        fit_classic(cfg)
    with pytest.raises(UserError, match="unknown layer"):
        probe_backbone("tiny_cnn", "features.9", weights="none")


# --- C chosen by cross-validation, every training image used ---------------------------------


def test_select_c_is_the_argmax_of_stratified_cv_accuracy() -> None:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from landscape.train.classic import select_c

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 20)
    # Few informative dimensions among many noisy ones: small C (strong regularisation) wins.
    x = rng.normal(size=(len(y), 200))
    x[:, :2] += y[:, None] * 1.5
    grid = (1e-3, 1e-1, 10.0)
    search = select_c("logreg", x, y, folds=4, grid=grid, seed=3)
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=3)
    expected = [
        float(np.mean(cross_val_score(make_estimator("logreg", c, seed=3), x, y, cv=folds)))
        for c in grid
    ]
    assert search.cv_acc == pytest.approx(tuple(expected))
    assert grid[int(np.argmax(expected))] == search.C
    assert search.best_cv_acc == max(expected)
    assert search.to_dict()["cv_acc_by_C"] == list(search.cv_acc)


def test_select_c_caps_folds_by_the_smallest_class_and_refuses_singletons() -> None:
    from landscape.train.classic import select_c

    rng = np.random.default_rng(0)
    y = np.array([0] * 10 + [1] * 3)
    x = rng.normal(size=(len(y), 5)) + y[:, None]
    assert select_c("svm", x, y, folds=5, grid=(0.1, 1.0)).folds == 3
    with pytest.raises(ConfigError, match="at least 2 training images of every class"):
        select_c("svm", x[:11], y[:11], grid=(0.1,))


def test_c_auto_fits_on_every_training_image_and_records_the_search(
    gray_data: Path, tmp_path: Path
) -> None:
    result = fit_classic(
        _cfg(
            gray_data,
            tmp_path / "auto",
            backbone="efficientnet_lite0",
            weights="packaged",
            head={"kind": "logreg"},
            layer="blocks.5",
        )
    )
    m = result.metrics
    assert m["n_val"] == 0  # no validation split: cross-validation replaces it
    assert m["n_train"] + m["n_test"] == 24
    search = m["C_search"]
    assert search["C"] == m["C"] in search["grid"]
    assert m["cv_acc"] == search["cv_acc"] == max(search["cv_acc_by_C"])
    assert m["C"] == result.estimator[-1].C  # the final fit used the chosen C
    meta = load_bundle(result.bundle).meta
    assert meta["head"]["C"] == m["C"] and meta["head"]["C_search"] == search
    assert json.loads((tmp_path / "auto" / "metrics.json").read_text())["C_search"] == search


def test_a_dataset_with_its_own_test_split_is_not_split_again(tmp_path: Path) -> None:
    from landscape.data.synth import SynthSpec, generate_dataset

    root = tmp_path / "scenes"
    generate_dataset(
        root / "train", SynthSpec(per_class=6, size=64, seed=1, classes=("coast", "desert"))
    )
    generate_dataset(
        root / "test", SynthSpec(per_class=3, size=64, seed=2, classes=("coast", "desert"))
    )
    result = fit_classic(
        _cfg(root, tmp_path / "run", backbone="tiny_cnn", weights="none", head={"kind": "svm"})
    )
    assert (result.metrics["n_train"], result.metrics["n_val"], result.metrics["n_test"]) == (
        12,
        0,
        6,
    )
