"""Open set: scores, thresholds, the accuracy/coverage curve, and OOD evaluation end to end."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.errors import DatasetError
from landscape.evaluation import evaluate_bundle
from landscape.evaluation.openset import (
    coverage_curve,
    energy_score,
    fpr_at_tpr,
    msp_score,
    ood_auroc,
    ood_image_paths,
    synthetic_ood_images,
    threshold_for_coverage,
)
from landscape.inference import Predictor
from landscape.models.bundle import load_bundle

from .test_explain import effnet_run


def test_scores() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0], [10.0, -5.0, 0.0]])
    msp = msp_score(logits)
    np.testing.assert_allclose(msp, torch.softmax(logits.double(), 1).max(1).values.numpy())
    assert msp[1] == pytest.approx(1 / 3)
    # A lower temperature sharpens the softmax: MSP rises, the ranking stays.
    assert (msp_score(logits, 0.5) >= msp).all()
    energy = energy_score(logits, 2.0)
    np.testing.assert_allclose(energy, 2.0 * torch.logsumexp(logits.double() / 2.0, 1).numpy())
    # Large logits (a confident, "familiar" input) give the highest score.
    assert energy.argmax() == 2 and energy.min() > 0


def test_threshold_keeps_the_coverage() -> None:
    scores = np.arange(100) / 100.0
    t = threshold_for_coverage(scores, 0.95)
    assert t == pytest.approx(0.05) and (scores >= t).mean() == pytest.approx(0.95)
    rng = np.random.default_rng(0)
    for n in (7, 20, 333):
        values = rng.random(n)
        for coverage in (0.5, 0.9, 0.95, 1.0):
            kept = (values >= threshold_for_coverage(values, coverage)).mean()
            # At least the coverage asked for, and no more than one image above it.
            assert coverage <= kept <= coverage + 1 / n + 1e-9
    assert threshold_for_coverage([0.3, 0.3, 0.3], 0.5) == 0.3  # ties are kept together
    with pytest.raises(ValueError):
        threshold_for_coverage(scores, 0.0)


def test_coverage_curve_is_monotone() -> None:
    rng = np.random.default_rng(1)
    confidence = np.round(rng.random(500), 2)  # many ties
    # Confident predictions are more often right: accuracy should fall as coverage grows.
    correct = rng.random(500) < confidence
    curve = coverage_curve(confidence, correct)
    cov = [p["coverage"] for p in curve]
    thresholds = [p["threshold"] for p in curve]
    assert 2 <= len(curve) <= 101
    assert all(b > a for a, b in itertools.pairwise(cov))
    assert all(b < a for a, b in itertools.pairwise(thresholds))
    assert cov[-1] == 1.0 and curve[-1]["accuracy"] == pytest.approx(correct.mean())
    assert curve[0]["accuracy"] > curve[-1]["accuracy"]
    for p in curve:  # each point is exactly what that threshold keeps
        kept = confidence >= p["threshold"]
        assert p["coverage"] == pytest.approx(kept.mean())
        assert p["accuracy"] == pytest.approx(correct[kept].mean())
        assert p["risk"] == pytest.approx(1 - p["accuracy"])
    assert coverage_curve(np.array([]), np.array([], dtype=bool)) == []


def test_auroc_and_fpr() -> None:
    ids, oods = np.array([0.9, 0.8, 0.95, 0.7]), np.array([0.1, 0.2, 0.75])
    assert ood_auroc(ids, oods) == pytest.approx(11 / 12)
    assert ood_auroc(oods + 1, oods) == 1.0
    # Keeping 95% of 4 ID images keeps all of them (threshold 0.7): 1 of 3 OOD gets in.
    assert fpr_at_tpr(ids, oods) == pytest.approx(1 / 3)


def test_synthetic_ood_images_and_folders(tmp_path: Path) -> None:
    images = synthetic_ood_images(7, size=64, seed=3)
    assert len(images) == 7 and all(im.size == (64, 64) and im.mode == "RGB" for im in images)
    again = synthetic_ood_images(7, size=64, seed=3)
    assert all(
        np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again, strict=True)
    )
    assert len({np.asarray(im).tobytes() for im in images}) == 7
    (tmp_path / "a" / "b").mkdir(parents=True)
    images[0].save(tmp_path / "a" / "one.jpg")
    images[1].save(tmp_path / "a" / "b" / "two.PNG")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    found = ood_image_paths(tmp_path)
    assert {p.name for p in found} == {"one.jpg", "two.PNG"} and found == sorted(found)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return effnet_run(tmp_path_factory)


def test_noise_is_out_of_distribution_and_threshold_is_stored(run: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(run / "bundle", bundle)
    out = tmp_path / "eval"

    # Every image of the run (its val split chooses the threshold) against 24 noise images.
    result = evaluate_bundle(
        bundle, run / "split.csv", "all", out, latency=False, explain=False, gallery=False,
        ood="noise:24", set_threshold=True,
    )  # fmt: skip

    open_set = result["open_set"]
    assert open_set["score"] == "msp" and open_set["threshold_split"] == "val"
    assert open_set["threshold_stored"] is True and open_set["bundle_threshold"] is None
    ood = open_set["ood"]
    assert ood["images"] == 24
    # Noise looks less like a landscape than landscapes do (measured: AUROC 0.9+).
    assert ood["auroc"]["msp"] > 0.7, ood
    assert 0.0 <= ood["fpr_at_95_tpr"]["msp"] <= 1.0 and 0.0 <= ood["auroc"]["energy"] <= 1.0
    test = open_set["test"]
    assert test["coverage"] >= 0.8 and test["accuracy_all"] == result["accuracy"]
    curve = open_set["coverage_curve"]
    assert [p["coverage"] for p in curve] == sorted({p["coverage"] for p in curve})
    assert curve[-1]["coverage"] == 1.0 and curve[-1]["accuracy"] == pytest.approx(
        result["accuracy"]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["open_set"]["ood"]["auroc"] == ood["auroc"]
    page = (out / "report.html").read_text()
    assert "coverage.png" in result["files"] and 'alt="accuracy/coverage curve"' in page
    assert "<h2>Open set</h2>" in page and "AUROC" in page
    with open(out / "open_set_scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sum(r["set"] == "ood" for r in rows) == 24
    assert sum(r["set"] == "id" for r in rows) == result["n_images"]

    # The stored threshold is what Predictor applies: OOD flagged, ID mostly not.
    meta = load_bundle(bundle).meta
    assert meta["unknown_threshold"] == pytest.approx(open_set["threshold"])
    assert meta["unknown_score"] == "msp"
    predictor = Predictor.from_bundle(bundle)
    assert predictor.unknown_threshold == pytest.approx(open_set["threshold"])
    on_noise = predictor.predict(synthetic_ood_images(12))
    with open(run / "split.csv", newline="") as fh:
        held_out = [Path(r["path"]) for r in csv.DictReader(fh) if r["split"] != "train"]
    on_data = predictor.predict(held_out)
    for p in [*on_noise, *on_data]:
        assert p.is_unknown == (p.confidence < open_set["threshold"])
    assert sum(p.is_unknown for p in on_noise) >= 1
    assert sum(p.is_unknown for p in on_data) <= 0.2 * len(on_data)
    # Evaluation does not touch the original bundle without --set-threshold.
    assert load_bundle(run / "bundle").unknown_threshold is None


def test_threshold_without_val_split(run: Path, tmp_path: Path) -> None:
    data = run.parent / "data"
    with pytest.raises(DatasetError, match="--set-threshold"):
        evaluate_bundle(
            run / "bundle", data, None, tmp_path / "x", latency=False, explain=False,
            set_threshold=True,
        )  # fmt: skip
    bad = tmp_path / "empty"
    bad.mkdir()
    with pytest.raises(DatasetError, match="no image"):
        evaluate_bundle(
            run / "bundle", data, None, tmp_path / "y", latency=False, explain=False, ood=bad
        )  # fmt: skip
