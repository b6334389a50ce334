from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from landscape.data.datasets import (
    ImageDataset,
    detect_layout,
    load_dataset,
    normalize_class_name,
    write_manifest,
)
from landscape.errors import DatasetError


def _photos(intel_dir: Path, cls: str, n: int) -> list[Path]:
    return sorted((intel_dir / cls).glob("*.jpg"))[:n]


def _tree(root: Path, intel_dir: Path, layout: dict[str, dict[str, int]]) -> Path:
    for folder, classes in layout.items():
        for cls, n in classes.items():
            dest = root / folder / cls
            dest.mkdir(parents=True, exist_ok=True)
            source = "sea" if cls.lower() == "coast" else cls.lower().replace(" ", "")
            for photo in _photos(intel_dir, source, n):
                shutil.copy(photo, dest / photo.name)
    return root


def test_class_names_are_normalised() -> None:
    assert normalize_class_name("  Snowy  Mountain ") == "snowy_mountain"
    assert normalize_class_name("Coast-Line") == "coast_line"
    with pytest.raises(DatasetError):
        normalize_class_name(" - ")


def test_class_per_folder(tmp_path: Path, intel_dir: Path) -> None:
    root = _tree(tmp_path / "ds", intel_dir, {".": {"Forest": 3, "Glacier": 2}})
    (root / "Forest" / "readme.txt").write_text("x")
    (root / "Glacier" / "empty.jpg").write_bytes(b"")
    index = load_dataset(root)
    assert index.layout == "folders"
    assert index.classes == ("forest", "glacier")
    assert len(index.samples) == 5
    assert index.splits == ()
    reasons = {p.name: r for p, r in index.skipped}
    assert reasons == {"readme.txt": "not an image file", "empty.jpg": "empty file (0 bytes)"}
    assert index.counts() == {"all": {"forest": 3, "glacier": 2}}


def test_kaggle_landscape_split_names(tmp_path: Path, intel_dir: Path) -> None:
    layout = {
        "Training Data": {"Coast": 3, "Forest": 3},
        "Validation Data": {"Coast": 1, "Forest": 1},
        "Testing Data": {"Coast": 2, "Forest": 1},
    }
    index = load_dataset(_tree(tmp_path / "k", intel_dir, layout))
    assert index.layout == "splits"
    assert index.splits == ("train", "val", "test")
    assert index.counts()["test"] == {"coast": 2, "forest": 1}
    assert len(index.subset("val")) == 2


def test_intel_layout_with_nested_twin_and_pred(tmp_path: Path, intel_dir: Path) -> None:
    root = tmp_path / "intel"
    _tree(root / "seg_train", intel_dir, {"seg_train": {"forest": 2, "glacier": 2}})
    _tree(root, intel_dir, {"seg_test": {"forest": 1, "glacier": 1}})
    (root / "seg_pred" / "seg_pred").mkdir(parents=True)
    shutil.copy(_photos(intel_dir, "street", 1)[0], root / "seg_pred" / "seg_pred" / "x.jpg")
    index = load_dataset(root)
    assert index.classes == ("forest", "glacier")
    assert index.counts() == {
        "train": {"forest": 2, "glacier": 2},
        "test": {"forest": 1, "glacier": 1},
    }
    with pytest.raises(DatasetError, match="split 'val' is empty or does not exist"):
        index.subset("val")


def test_csv_manifest_roundtrip(tmp_path: Path, intel_dir: Path) -> None:
    root = _tree(
        tmp_path / "ds",
        intel_dir,
        {"train": {"forest": 2, "sea": 2}, "test": {"forest": 1, "sea": 1}},
    )
    index = load_dataset(root)
    manifest = write_manifest(index, tmp_path / "out" / "m.csv", extra={"seed": 4})
    again = load_dataset(manifest)
    assert again.layout == "csv"
    assert [(s.path.resolve(), s.label, s.split) for s in again.samples] == [
        (s.path.resolve(), s.label, s.split) for s in index.samples
    ]
    assert (tmp_path / "out" / "classes.json").is_file()
    assert again.fingerprint() == load_dataset(manifest).fingerprint()


def test_saved_class_order_wins(tmp_path: Path, intel_dir: Path) -> None:
    root = _tree(tmp_path / "ds", intel_dir, {".": {"forest": 1, "glacier": 1, "sea": 1}})
    (root / "classes.json").write_text('{"classes": ["sea", "forest"]}')
    assert load_dataset(root).classes == ("sea", "forest", "glacier")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path,label,extra\na.jpg,x,1\n", "unknown column"),
        ("file,label\na.jpg,x\n", "needs columns path,label"),
        ("path,label\nmissing.jpg,x\n", "do not exist"),
        ("path,label,split\n{img},x,holdout\n", "unknown split"),
    ],
)
def test_bad_manifests(tmp_path: Path, synth_jpeg: Path, content: str, message: str) -> None:
    shutil.copy(synth_jpeg, tmp_path / "img.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text(content.format(img="img.jpg"))
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(manifest)
    assert str(manifest) in str(info.value)


def test_unusable_datasets(tmp_path: Path, intel_dir: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        load_dataset(tmp_path / "empty")
    one = _tree(tmp_path / "one", intel_dir, {".": {"forest": 2}})
    with pytest.raises(DatasetError, match="only 1 class"):
        load_dataset(one)
    (tmp_path / "f.txt").write_text("x")
    assert detect_layout(tmp_path / "empty") == "folders"
    with pytest.raises(DatasetError, match="is a file"):
        load_dataset(tmp_path / "f.txt")


def test_image_dataset_skips_corrupt(tmp_path: Path, intel_dir: Path) -> None:
    root = _tree(tmp_path / "ds", intel_dir, {".": {"forest": 2, "sea": 1}})
    bad = root / "sea" / "broken.jpg"
    bad.write_bytes((root / "forest").glob("*.jpg").__next__().read_bytes()[:300])
    index = load_dataset(root)
    ds = ImageDataset(index.samples, index.classes)
    items = [ds[i] for i in range(len(ds))]
    assert sum(item is None for item in items) == 1
    assert sorted(ds.targets()) == [0, 0, 1, 1]
    with pytest.raises(DatasetError, match="not among the classes"):
        ImageDataset(index.samples, ["forest"])
