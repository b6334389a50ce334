"""End-to-end tests of ``landscape evaluate`` on a real tiny bundle trained on synthetic photos."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from landscape.cli import main
from landscape.data.synth import SynthSpec, generate_dataset
from landscape.evaluation import evaluate_bundle
from landscape.evaluation.report import MistakeRow, render_html, write_report
from landscape.models.bundle import load_bundle

CLASSES = ("coast", "forest", "glacier")
REQUIRED_KEYS = {"accuracy", "macro_f1", "per_class", "confusion_matrix", "ece"}
FILES = (
    "report.html",
    "metrics.json",
    "per_class.csv",
    "confusion.csv",
    "top_losses.csv",
    "confusion.png",
    "confusion_normalized.png",
    "reliability.png",
    "mistakes.png",
    "coverage.png",
    "open_set_scores.csv",
    "gradcam.png",
    "first_layer.png",
)


@dataclass(frozen=True)
class Trained:
    """A synthetic dataset (class folders, no splits) and the run trained on it."""

    data: Path
    run: Path

    @property
    def bundle(self) -> Path:
        return self.run / "bundle"

    @property
    def manifest(self) -> Path:
        return self.run / "split.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("evaluate")
    data = root / "data"
    generate_dataset(data, SynthSpec(per_class=12, size=64, classes=CLASSES))
    run = root / "run"
    code = main(
        [
            "train", "--data", str(data), "--backbone", "tiny_cnn", "--weights", "none",
            "--epochs", "2", "--seed", "0", "--workers", "0", "--out", str(run), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    yield Trained(data, run)


def _run_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> Any:
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _fail(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def _split_rows(manifest: Path, split: str) -> list[dict[str, str]]:
    with open(manifest, newline="") as fh:
        return [row for row in csv.DictReader(fh) if row["split"] == split]


def test_cli_on_run_manifest_writes_every_file(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    result = _run_json(
        capsys,
        # Batch 8 instead of 32 keeps the throughput timing short on a busy test machine.
        ["evaluate", str(trained.bundle), "--data", str(trained.manifest), "--out", str(out),
         "--batch-size", "8", "--json"],
    )  # fmt: skip

    # The run's manifest has splits: the default is its held-out test split.
    assert result["split"] == "test"
    assert result["n_images"] == len(_split_rows(trained.manifest, "test"))
    assert {p.name for p in out.iterdir()} >= set(FILES)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= REQUIRED_KEYS
    assert metrics["classes"] == list(CLASSES)
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n_images"]
    assert set(metrics["per_class"]) == set(CLASSES)
    assert 0.0 <= metrics["ece"] <= 1.0
    # Same images, same model, same preprocessing: the accuracy training reported on test.
    test_acc = load_bundle(trained.bundle).meta["metrics"]["test_acc"]
    assert metrics["accuracy"] == pytest.approx(test_acc, abs=1e-6)
    # The manifest has a val split: a temperature was fitted but not stored (no --calibrate).
    assert metrics["temperature"] is not None and metrics["temperature"] > 0
    assert metrics["ece_after_temperature"] is not None
    assert metrics["temperature_stored"] is False
    assert load_bundle(trained.bundle).temperature == 1.0
    # Latency: warmed, batch 1 over 30 runs, thread count stated, training time kept apart.
    latency = metrics["latency"]
    assert latency["model"]["batch_1"]["runs"] >= 30
    assert latency["end_to_end"]["batch_1"]["p50_ms"] > 0
    assert latency["model"]["batch_8"]["images_per_s"] > 0
    assert latency["end_to_end"]["batch_8"]["batch_size"] == 8
    assert latency["threads"] >= 1 and latency["cpu"]
    assert (
        metrics["training_seconds"] == load_bundle(trained.bundle).meta["metrics"]["train_seconds"]
    )
    assert metrics["params"]["total"] > 0 and metrics["bundle_bytes"] > 0

    page = (out / "report.html").read_text()
    # Every PNG written is embedded: confusion ×2, reliability, mistakes, coverage, Grad-CAM,
    # first-layer activations (+ the t-SNE when the split has at least 5 images).
    pngs = {name for name in result["files"] if name.endswith(".png")}
    assert pngs >= {"coverage.png", "gradcam.png", "first_layer.png"}
    assert page.count("data:image/png;base64,") == len(pngs) >= 7
    for section in ("<h2>Open set</h2>", "<h2>Explanations</h2>", "Grad-CAM"):
        assert section in page
    for external in ("<script", "<link", "http://", "https://", 'src="/', "src='"):
        assert external not in page
    assert "training wall time" in page and "inference latency" in page.lower()
    with Image.open(out / "confusion.png") as image:
        assert image.format == "PNG" and image.width > 200
    with open(out / "per_class.csv", newline="") as fh:
        assert [r["class"] for r in csv.DictReader(fh)] == list(CLASSES)
    with open(out / "top_losses.csv", newline="") as fh:
        losses = [float(r["loss"]) for r in csv.DictReader(fh)]
    assert len(losses) == metrics["n_images"] and losses == sorted(losses, reverse=True)


def test_accuracy_equals_predict_cli(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A class-per-folder tree without split folders: every image is evaluated.
    result = _run_json(
        capsys,
        ["evaluate", str(trained.bundle), "--data", str(trained.data), "--out",
         str(tmp_path / "eval"), "--no-latency", "--json"],
    )  # fmt: skip
    assert result["split"] == "all"
    assert result["n_images"] == 12 * len(CLASSES)
    assert result["temperature"] is None  # no val split to fit on
    assert any("trained on" in note for note in result["notes"])

    rows = _run_json(capsys, ["predict", str(trained.bundle), str(trained.data), "--json"])
    assert len(rows) == result["n_images"]
    predicted = {Path(r["path"]).resolve(): r["label"] for r in rows}
    truth = {p: p.parent.name for p in predicted}
    accuracy = sum(predicted[p] == truth[p] for p in predicted) / len(predicted)
    assert result["accuracy"] == accuracy
    with open(Path(result["files"]["top_losses.csv"]), newline="") as fh:
        for row in csv.DictReader(fh):
            assert predicted[Path(row["path"]).resolve()] == row["predicted"]


def test_subset_of_classes_and_undecodable_files(trained: Trained, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for cls in ("coast", "forest"):
        shutil.copytree(trained.data / cls, data / cls)
    (data / "coast" / "garbage.jpg").write_bytes(b"not a jpeg at all" * 20)
    whole = (trained.data / "forest" / "forest_00000.jpg").read_bytes()
    (data / "forest" / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (data / "forest" / "empty.jpg").write_bytes(b"")

    result = evaluate_bundle(
        trained.bundle, data, None, tmp_path / "out", latency=False, open_set=False
    )

    assert result["n_images"] == 24
    assert result["open_set"] is None and "coverage.png" not in result["files"]
    skipped = {Path(s["path"]).name: s["reason"] for s in result["skipped"]}
    assert set(skipped) == {"garbage.jpg", "truncated.jpg", "empty.jpg"}
    assert result["per_class"]["glacier"]["support"] == 0
    assert len(result["confusion_matrix"]) == len(CLASSES)  # bundle order, all classes
    page = (tmp_path / "out" / "report.html").read_text()
    assert "garbage.jpg" in page


def test_calibrate_stores_temperature(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained.bundle, bundle)
    result = _run_json(
        capsys,
        ["evaluate", str(bundle), "--data", str(trained.manifest), "--split", "val",
         "--calibrate", "--no-latency", "--no-gallery", "--json"],
    )  # fmt: skip
    assert result["split"] == "val" and result["temperature_stored"] is True
    assert load_bundle(bundle).temperature == pytest.approx(result["temperature"])
    # Without --out the files go beside the bundle, named after the split.
    assert Path(result["files"]["report.html"]) == tmp_path.resolve() / "eval-val" / "report.html"
    assert "mistakes.png" not in result["files"]
    # The bundle still verifies and predicts with its new temperature.
    rows = _run_json(capsys, ["predict", str(bundle), str(trained.data / "coast"), "--json"])
    assert len(rows) == 12


def test_user_errors_are_one_line(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["evaluate", str(trained.bundle), "--no-latency", "--out", str(tmp_path / "e")]

    code, err = _fail(capsys, [*base, "--data", str(trained.data), "--split", "test"])
    assert code == 1 and "split 'test'" in err and len(err.strip().splitlines()) == 1

    code, err = _fail(capsys, [*base, "--data", str(trained.data), "--calibrate"])
    assert code == 1 and "val split" in err

    other = tmp_path / "other"
    generate_dataset(other, SynthSpec(per_class=2, size=48, classes=("coast", "desert")))
    code, err = _fail(capsys, [*base, "--data", str(other)])
    assert code == 1 and "desert" in err and "coast, forest, glacier" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_split_is_a_usage_error(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _fail(
        capsys,
        ["evaluate", str(trained.bundle), "--data", str(trained.data), "--split", "nope",
         "--out", str(tmp_path / "e")],
    )  # fmt: skip
    assert code == 2


def test_real_photos_with_other_classes_are_refused(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str], intel_dir: Path
) -> None:
    data = tmp_path / "intel"
    for cls in ("forest", "sea"):
        (data / cls).mkdir(parents=True)
        for photo in sorted((intel_dir / cls).glob("*.jpg"))[:3]:
            shutil.copy(photo, data / cls / photo.name)
    code, err = _fail(
        capsys,
        ["evaluate", str(trained.bundle), "--data", str(data), "--no-latency", "--out",
         str(tmp_path / "e")],
    )  # fmt: skip
    assert code == 1 and "sea" in err and "forest" not in err.split("(")[0]

    # The forest photos alone are a subset of the bundle's classes: evaluated, real JPEGs.
    shutil.rmtree(data / "sea")
    result = evaluate_bundle(trained.bundle, data, None, tmp_path / "ok", latency=False)
    assert result["n_images"] == 3 and result["per_class"]["forest"]["support"] == 3


def test_open_set_and_explain_options(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from landscape.evaluation.openset import synthetic_ood_images

    bundle = tmp_path / "bundle"
    shutil.copytree(trained.bundle, bundle)
    ood = tmp_path / "ood" / "nested"
    ood.mkdir(parents=True)
    for i, image in enumerate(synthetic_ood_images(5, size=96)):
        image.save(ood / f"odd_{i}.jpg")
    (ood / "broken.jpg").write_bytes(b"not an image")
    result = _run_json(
        capsys,
        ["evaluate", str(bundle), "--data", str(trained.manifest), "--no-latency", "--no-gallery",
         "--no-explain", "--ood", str(tmp_path / "ood"), "--coverage", "0.9", "--set-threshold",
         "--out", str(tmp_path / "e1"), "--json"],
    )  # fmt: skip
    assert result["explain"] is None
    assert not {"gradcam.png", "first_layer.png", "embeddings.png"} & set(result["files"])
    open_set = result["open_set"]
    assert open_set["target_coverage"] == 0.9 and open_set["threshold_stored"] is True
    assert open_set["ood"]["images"] == 5 and len(open_set["ood"]["skipped"]) == 1
    assert load_bundle(bundle).unknown_threshold == pytest.approx(open_set["threshold"])
    page = (tmp_path / "e1" / "report.html").read_text()
    assert "AUROC" in page and "--no-explain" in page

    # A second evaluation reports the stored threshold and the images it flags.
    result = _run_json(
        capsys,
        ["evaluate", str(bundle), "--data", str(trained.manifest), "--no-latency",
         "--max-explain", "1", "--out", str(tmp_path / "e2"), "--json"],
    )  # fmt: skip
    assert result["open_set"]["bundle_threshold"] == pytest.approx(open_set["threshold"])
    assert result["n_unknown"] is not None
    counts = result["explain"]["gradcam_images"]
    assert counts["correct"] <= 1 and counts["wrong"] <= 1

    base = ["evaluate", str(bundle), "--data", str(trained.manifest), "--no-latency"]
    for bad in ("noise:0", str(tmp_path / "missing")):
        code, err = _fail(capsys, [*base, "--ood", bad, "--out", str(tmp_path / "e3")])
        assert code == 1 and "--ood" in err and len(err.strip().splitlines()) == 1


def _report_metrics(classes: list[str]) -> dict[str, Any]:
    """The smallest metrics dict a report needs: 2 images, one of them misclassified."""
    per_class = {c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 1} for c in classes}
    bins = [
        {"lower": i / 15, "upper": (i + 1) / 15, "count": 0, "accuracy": None, "confidence": None}
        for i in range(15)
    ]
    return {
        "model_id": "tiny_cnn-<b>bold</b>",
        "split": "test",
        "n_images": 2,
        "classes": classes,
        "per_class": per_class,
        "accuracy": 0.5,
        "macro_precision": 0.5,
        "macro_recall": 0.5,
        "macro_f1": 0.5,
        "weighted_f1": 0.5,
        "ece": 0.25,
        "confusion_matrix": [[1, 0], [1, 0]],
        "confusion_matrix_normalized": [[1.0, 0.0], [1.0, 0.0]],
        "most_confused": [{"true": classes[1], "predicted": classes[0], "count": 1, "fraction": 1}],
        "notes": ["a note with <i>markup</i> & an ampersand"],
        "skipped": [{"path": "x/<img src=x>.jpg", "reason": "not a readable image"}],
        "reliability_bins": bins,
    }


def test_report_escapes_every_value_and_inlines_every_figure(
    tmp_path: Path, synth_small: Path
) -> None:
    evil = "<script>alert('x')</script>"
    classes = ["coast", evil]
    photo = next(synth_small.glob("coast/*.jpg"))
    rows = [
        MistakeRow(photo, evil, "coast", 0.9, 0.1, 2.3),
        MistakeRow(photo, "coast", "coast", 0.8, 0.8, 0.22),
    ]
    metrics = _report_metrics(classes)
    files = write_report(
        tmp_path / "out", metrics, rows, reliability=metrics["reliability_bins"], gallery=True
    )

    page = files["report.html"].read_text(encoding="utf-8")
    # Values are data, never markup: the class name, the model id, a note and a skipped path.
    assert "<script" not in page and "<b>bold" not in page and "<i>markup" not in page
    assert "<img src=x>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "tiny_cnn-&lt;b&gt;bold&lt;/b&gt;" in page and "&amp; an ampersand" in page
    # The page's own markup is there, and each PNG written is inlined exactly once.
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</body></html>")
    assert "<h2>Per class</h2>" in page and "<h2>Skipped files (1)</h2>" in page
    pngs = sorted(name for name in files if name.endswith(".png"))
    assert pngs == ["confusion.png", "confusion_normalized.png", "mistakes.png", "reliability.png"]
    assert page.count("data:image/png;base64,") == len(pngs)
    for alt in (
        "confusion.png",
        "confusion_normalized.png",
        "reliability diagram",
        "worst mistakes",
    ):
        assert f'alt="{alt}" src="data:image/png;base64,' in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    # render_html is the same page without writing anything.
    figures = {name: files[name] for name in pngs}
    assert render_html(json.loads(files["metrics.json"].read_text()), figures) == page
