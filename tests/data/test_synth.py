"""The synthetic landscape generator: layout, determinism, EXIF, difficulty and input checks."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from landscape.data.synth import (
    CLASSES,
    SynthResult,
    SynthSpec,
    generate_dataset,
    render_landscape,
)
from landscape.errors import UserError

PER_CLASS = 40

# Loose boxes around the regions each class's coordinates come from: a wrong table (a glacier in
# the Sahara) fails, a new region of the right kind does not.
PLAUSIBLE_ABS_LAT = {
    "coast": (30.0, 50.0),
    "desert": (15.0, 32.0),
    "forest": (40.0, 70.0),
    "glacier": (45.0, 75.0),
    "mountain": (25.0, 55.0),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    out = tmp_path_factory.mktemp("synth")
    return generate_dataset(out, SynthSpec(per_class=PER_CLASS, size=224, seed=3))


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.jpg"))
    }


def _dms_to_deg(dms: tuple[float, float, float], ref: str) -> float:
    deg = float(dms[0]) + float(dms[1]) / 60 + float(dms[2]) / 3600
    return -deg if ref in ("S", "W") else deg


def test_layout_and_counts(dataset: SynthResult) -> None:
    assert dataset.n_images == PER_CLASS * len(CLASSES)
    assert dataset.counts == dict.fromkeys(CLASSES, PER_CLASS)
    assert dataset.seconds > 0
    assert sorted(p.name for p in dataset.out.iterdir()) == sorted(CLASSES)
    for cls in CLASSES:
        names = sorted(p.name for p in (dataset.out / cls).iterdir())
        assert names == [f"{cls}_{i:05d}.jpg" for i in range(PER_CLASS)]


def test_images_are_valid_rgb_jpegs(dataset: SynthResult) -> None:
    for path in list(dataset.out.rglob("*.jpg"))[::7]:
        with Image.open(path) as img:
            assert img.format == "JPEG"
            assert img.mode == "RGB"
            assert img.size == (224, 224)
            img.load()
            # Not a flat fill: a real scene has contrast.
            assert np.asarray(img).std() > 10


def test_exif_date_camera_and_gps_are_readable(dataset: SynthResult) -> None:
    for cls in CLASSES:
        for path in sorted((dataset.out / cls).glob("*.jpg"))[:8]:
            with Image.open(path) as img:
                exif = img.getexif()
            assert exif[0x010F] == "LandscapeSynth"
            assert exif[0x0110] == "LS-1"
            assert cls in exif[0x010E]
            taken = datetime.strptime(exif.get_ifd(0x8769)[0x9003], "%Y:%m:%d %H:%M:%S")
            assert datetime(2000, 1, 1) < taken < datetime(2030, 1, 1)
            assert exif[0x0132] == exif.get_ifd(0x8769)[0x9003]
            gps = exif.get_ifd(0x8825)
            assert gps[1] in ("N", "S") and gps[3] in ("E", "W")
            lat = _dms_to_deg(gps[2], gps[1])
            lon = _dms_to_deg(gps[4], gps[3])
            lo, hi = PLAUSIBLE_ABS_LAT[cls]
            assert lo <= abs(lat) <= hi, (cls, lat)
            assert -180 <= lon <= 180


def test_same_spec_gives_identical_bytes_and_seeds_differ(tmp_path: Path) -> None:
    spec = SynthSpec(per_class=2, size=96, seed=11)
    a = _digests(generate_dataset(tmp_path / "a", spec).out)
    b = _digests(generate_dataset(tmp_path / "b", spec).out)
    assert a == b
    c = _digests(generate_dataset(tmp_path / "c", SynthSpec(per_class=2, size=96, seed=12)).out)
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)


def test_a_subset_of_classes_writes_the_same_images(tmp_path: Path) -> None:
    full = _digests(generate_dataset(tmp_path / "full", SynthSpec(per_class=2, size=64)).out)
    spec = SynthSpec(per_class=2, size=64, classes=("glacier", "coast"))
    part = _digests(generate_dataset(tmp_path / "part", spec).out)
    assert sorted({k.split("/")[0] for k in part}) == ["coast", "glacier"]
    assert all(full[k] == v for k, v in part.items())


def test_render_landscape_is_a_pure_function_of_the_generator() -> None:
    for ci, cls in enumerate(CLASSES):
        a = render_landscape(cls, np.random.default_rng([0, ci, 5]), 80)
        b = render_landscape(cls, np.random.default_rng([0, ci, 5]), 80)
        assert a.mode == "RGB" and a.size == (80, 80)
        assert a.tobytes() == b.tobytes()


def test_small_sizes_and_progress(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    spec = SynthSpec(per_class=2, size=32, classes=["forest", "desert"])  # type: ignore[arg-type]
    result = generate_dataset(tmp_path, spec, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert result.counts == {"forest": 2, "desert": 2}
    for path in tmp_path.rglob("*.jpg"):
        with Image.open(path) as img:
            assert img.size == (32, 32)


def _hist_features(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        a = np.asarray(img.convert("RGB").resize((48, 48))) // 64
    idx = (a[..., 0] * 16 + a[..., 1] * 4 + a[..., 2]).ravel()
    return np.bincount(idx, minlength=64) / idx.size


def test_classes_are_learnable_but_not_trivial(dataset: SynthResult) -> None:
    """A linear probe on colour histograms must beat chance clearly yet not solve the task."""
    feats, labels = [], []
    for ci, cls in enumerate(CLASSES):
        for path in sorted((dataset.out / cls).glob("*.jpg")):
            feats.append(_hist_features(path))
            labels.append(ci)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    acc = cross_val_score(probe, np.array(feats), np.array(labels), cv=folds).mean()
    assert 0.4 < acc < 0.995, acc


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"per_class": 1, "classes": ("coast", "beach")}, "beach"),
        ({"per_class": 0}, "per_class"),
        ({"per_class": 1, "size": 31}, "size"),
        ({"per_class": 1, "quality": (0, 90)}, "quality"),
        ({"per_class": 1, "quality": (90, 80)}, "quality"),
        ({"per_class": 1, "classes": ()}, "no class"),
        ({"per_class": 1, "seed": -1}, "seed"),
    ],
)
def test_bad_specs_raise_user_error(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        SynthSpec(**kwargs)  # type: ignore[arg-type]


def test_unknown_class_error_lists_the_available_ones() -> None:
    with pytest.raises(UserError) as info:
        SynthSpec(per_class=1, classes=("tundra",))
    message = str(info.value)
    assert "tundra" in message
    assert all(cls in message for cls in CLASSES)
    with pytest.raises(UserError, match="tundra"):
        render_landscape("tundra", np.random.default_rng(0))
    with pytest.raises(UserError, match="size"):
        render_landscape("coast", np.random.default_rng(0), size=16)


def test_output_path_that_is_a_file_is_a_user_error(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(UserError, match="not a folder"):
        generate_dataset(target, SynthSpec(per_class=1, size=32))
