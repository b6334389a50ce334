from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from landscape.data.io import open_image
from landscape.data.transforms import eval_transform
from landscape.inference import Predictor
from landscape.models.bundle import build_model, load_bundle, update_bundle_meta
from tests.conftest import OddImages


def test_predictions_equal_the_bundle_model(tiny_run: Path, synth_small: Path) -> None:
    files = sorted(synth_small.glob("*/*.jpg"))[::9]
    predictor = Predictor.from_bundle(tiny_run / "bundle")
    preds = predictor.predict(files, batch_size=3)
    bundle = load_bundle(tiny_run / "bundle")
    model = build_model(bundle)
    tf = eval_transform(bundle.preprocessing)  # the bundle's own preprocessing, nothing else
    with torch.inference_mode():
        logits = model(torch.stack([tf(open_image(f)) for f in files]))
    expected = [bundle.classes[i] for i in logits.argmax(1).tolist()]
    assert [p.label for p in preds] == expected
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in preds)
    assert preds[0].model_id == bundle.model_id
    assert len(preds[0].top(3)) == 3


def test_any_input_kind_and_size(tiny_run: Path, synth_small: Path, odd_images: OddImages) -> None:
    predictor = Predictor.from_bundle(tiny_run / "bundle")
    f = next(synth_small.glob("glacier/*.jpg"))
    a, b, c = predictor.predict([f, f.read_bytes(), open_image(f)])
    assert a.probabilities == b.probabilities == c.probabilities
    # Another size and aspect than the training images (80x60, EXIF-rotated), and other modes.
    for path in (odd_images.rgb_exif, odd_images.png_alpha, odd_images.cmyk):
        prediction = predictor.predict([path])[0]
        assert prediction.label in predictor.classes
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_thread_safe(tiny_run: Path, synth_small: Path) -> None:
    predictor = Predictor.from_bundle(tiny_run / "bundle")
    files = sorted(synth_small.glob("*/*.jpg"))
    # Each thread has its own images and batch size, so answers crossing threads would show.
    jobs = [(files[i::4][:6], batch) for i, batch in enumerate((1, 2, 3, 6))]
    expected = [
        [p.probabilities for p in predictor.predict(images, batch_size=batch)]
        for images, batch in jobs
    ]
    assert len({tuple(map(str, images)) for images, _ in jobs}) == len(jobs)
    assert len({str(e) for e in expected}) == len(jobs), "jobs must differ to detect cross-talk"
    rounds = 3
    start = threading.Barrier(len(jobs))

    def work(job: int) -> list[list[dict[str, float]]]:
        images, batch = jobs[job]
        start.wait(timeout=60)  # all threads predict at the same time
        return [[p.probabilities for p in predictor.predict(images, batch)] for _ in range(rounds)]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        # result() re-raises an exception of the thread here, so no failure goes unseen.
        results = [f.result(timeout=300) for f in [pool.submit(work, j) for j in range(len(jobs))]]
    assert len(results) == len(jobs)
    for job, per_round in enumerate(results):
        assert len(per_round) == rounds
        for got in per_round:
            assert got == expected[job], f"thread {job} got other predictions"


def test_temperature_and_unknown_threshold(
    tiny_run: Path, synth_small: Path, tmp_path: Path
) -> None:
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(tiny_run / "bundle", bundle)
    f = next(synth_small.glob("coast/*.jpg"))
    base = Predictor.from_bundle(bundle).predict([f])[0]
    update_bundle_meta(bundle, temperature=10.0, unknown_threshold=0.99)
    hot = Predictor.from_bundle(bundle).predict([f])[0]
    assert hot.label == base.label
    assert hot.confidence < base.confidence
    assert hot.is_unknown
