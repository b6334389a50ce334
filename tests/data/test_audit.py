"""Tests of :mod:`landscape.data.audit` on datasets with planted defects made from real photos."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landscape.data.audit import audit_dataset, dataset_stats
from landscape.data.stats import channel_stats
from landscape.errors import DatasetError


def _photos(intel_dir: Path, label: str, n: int, start: int = 0) -> list[Path]:
    return sorted((intel_dir / label).glob("*.jpg"))[start : start + n]


@dataclass
class Planted:
    """A split dataset with known defects; paths are relative to ``root``."""

    root: Path
    clean: list[str]
    truncated: str
    fake: str
    empty: str
    notes: str
    exact: tuple[str, str]
    near: tuple[str, str]  # (test re-encoded copy, train original): reports sort paths
    gray: str
    alpha: str
    cmyk: str


def _build_planted(root: Path, intel_dir: Path) -> Planted:
    """Kaggle-style split folders of copied Intel photos plus one of each defect."""
    train, test = root / "Training Data", root / "Testing Data"
    clean: list[str] = []

    def copy(src: Path, dest: Path) -> str:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)  # copy, never touch the shared originals
        rel = dest.relative_to(root).as_posix()
        clean.append(rel)
        return rel

    forest, sea, mountain = (
        _photos(intel_dir, "forest", 9),
        _photos(intel_dir, "sea", 7),
        _photos(intel_dir, "mountain", 4),
    )
    for i, src in enumerate(forest[:4]):
        copy(src, train / "forest" / f"f{i}.jpg")
    for i, src in enumerate(sea[:4]):
        copy(src, train / "sea" / f"s{i}.jpg")
    for i, src in enumerate(forest[4:6]):
        copy(src, test / "forest" / f"t{i}.jpg")
    for i, src in enumerate(sea[4:6]):
        copy(src, test / "sea" / f"t{i}.jpg")
    for i, src in enumerate(mountain[:2]):
        copy(src, train / "mountain" / f"m{i}.jpg")
    copy(mountain[2], test / "mountain" / "t0.jpg")

    # Exact duplicate inside the training split.
    dup = train / "forest" / "f0_copy.jpg"
    shutil.copyfile(train / "forest" / "f0.jpg", dup)
    # Near-duplicate across splits: re-encoded at another quality and slightly resized.
    with Image.open(train / "sea" / "s1.jpg") as img:
        img.convert("RGB").resize((141, 141), Image.Resampling.LANCZOS).save(
            test / "sea" / "s1_reencoded.jpg", quality=55
        )
    # Truncated JPEG: the first half of a real file.
    data = forest[6].read_bytes()
    (train / "forest" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    # A text file with an image extension, a zero-byte image and a non-image file.
    (train / "sea" / "fake.jpg").write_text("this is not a JPEG\n")
    (train / "sea" / "empty.jpg").write_bytes(b"")
    (train / "forest" / "notes.txt").write_text("collected in 2019\n")
    # Unusual but valid modes, each from a photo used nowhere else (else they would be
    # near-duplicates of their source).
    with Image.open(forest[7]) as img:
        img.convert("L").save(train / "forest" / "gray.jpg", quality=90)
    with Image.open(forest[8]) as img:
        rgba = img.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
        rgba.save(train / "forest" / "alpha.png")
    with Image.open(sea[6]) as img:
        img.convert("CMYK").resize((160, 120)).save(train / "sea" / "cmyk.jpg", quality=90)
    gray, alpha, cmyk = (
        "Training Data/forest/gray.jpg",
        "Training Data/forest/alpha.png",
        "Training Data/sea/cmyk.jpg",
    )
    clean += [gray, alpha, cmyk]
    return Planted(
        root=root,
        clean=clean,
        truncated="Training Data/forest/truncated.jpg",
        fake="Training Data/sea/fake.jpg",
        empty="Training Data/sea/empty.jpg",
        notes="Training Data/forest/notes.txt",
        exact=("Training Data/forest/f0.jpg", "Training Data/forest/f0_copy.jpg"),
        near=("Testing Data/sea/s1_reencoded.jpg", "Training Data/sea/s1.jpg"),
        gray=gray,
        alpha=alpha,
        cmyk=cmyk,
    )


@pytest.fixture
def planted(tmp_path: Path, intel_dir: Path) -> Planted:
    return _build_planted(tmp_path / "landscapes", intel_dir)


def _flagged(report: dict) -> set[str]:
    paths = {c["path"] for c in report["corrupt"]} | {c["path"] for c in report["skipped"]}
    for group in report["exact_duplicates"] + report["near_duplicates"]:
        paths |= set(group)
    for leak in report["leakage"]:
        paths |= set(leak["paths"])
    return paths


def test_every_planted_defect_is_found_and_clean_files_are_not(planted: Planted) -> None:
    calls: list[int] = []
    report = audit_dataset(planted.root, progress=calls.append).to_dict()

    assert report["layout"] == "splits"
    assert report["classes"] == ["forest", "mountain", "sea"]
    assert report["splits"]["train"] == {"forest": 8, "mountain": 2, "sea": 6}
    assert report["splits"]["test"] == {"forest": 2, "mountain": 1, "sea": 3}
    assert report["images"] == 22 and sum(calls) == 22
    assert report["readable"] == 20

    corrupt = {c["path"]: c["reason"] for c in report["corrupt"]}
    assert set(corrupt) == {planted.truncated, planted.fake}
    assert "truncated" in corrupt[planted.truncated]
    assert "not a readable image" in corrupt[planted.fake]
    skipped = {c["path"]: c["reason"] for c in report["skipped"]}
    assert skipped == {planted.empty: "empty file (0 bytes)", planted.notes: "not an image file"}

    assert report["exact_duplicates"] == [list(planted.exact)]
    assert report["near_duplicates"] == [list(planted.near)]
    assert report["leakage"] == [
        {"paths": list(planted.near), "splits": ["test", "train"], "kind": "near"}
    ]
    assert report["label_conflicts"] == []
    assert report["findings"] == 2 + 2 + 1 + 1 + 1

    # Header modes as stored (the truncated JPEG's header is fine; the fake has none); every
    # odd mode decoded fine (not corrupt).
    assert report["modes"]["all"] == {"RGB": 18, "L": 1, "RGBA": 1, "CMYK": 1}
    assert report["modes"]["by_class"]["sea"]["CMYK"] == 1
    sizes = report["sizes"]["all"]
    assert sizes["width"] == {"min": 141, "median": 150.0, "max": 160}
    assert sizes["height"] == {"min": 120, "median": 150.0, "max": 150}
    assert report["sizes"]["by_split"]["test"]["width"]["min"] == 141

    assert report["imbalance"] == {"train": 4.0, "test": 3.0}
    assert report["missing_classes"] == {}
    assert report["channel_stats"]["split"] == "train"
    assert report["channel_stats"]["images"] == 14  # 16 train images minus the 2 corrupt ones
    assert report["channel_stats"]["size"] == 64 and "64x64 px" in report["channel_stats"]["note"]
    assert all(0.0 < m < 1.0 for m in report["mean"]) and all(0.0 < s < 0.5 for s in report["std"])

    # Nothing clean is flagged, except the members of the planted duplicate pairs.
    planted_paths = {planted.truncated, planted.fake, planted.empty, planted.notes}
    planted_paths |= set(planted.exact) | set(planted.near)
    assert _flagged(report) == planted_paths
    assert not (set(planted.clean) - set(planted.exact) - set(planted.near)) & _flagged(report)


def test_exact_copy_across_splits_is_exact_leakage_and_label_conflict(
    tmp_path: Path, intel_dir: Path
) -> None:
    root = tmp_path / "intel"
    photos = _photos(intel_dir, "glacier", 6, start=20)
    streets = _photos(intel_dir, "street", 4, start=40)
    for split, chunk in (("seg_train", photos[:4]), ("seg_test", photos[4:])):
        for cls in ("glacier", "street"):
            folder = root / split / split / cls  # the Kaggle Intel download nests seg_train twice
            folder.mkdir(parents=True)
            for src in chunk if cls == "glacier" else streets[: len(chunk)]:
                shutil.copyfile(src, folder / src.name)
    leaked = photos[0]
    shutil.copyfile(leaked, root / "seg_test" / "seg_test" / "street" / "leak.jpg")

    report = audit_dataset(root).to_dict()
    assert report["layout"] == "splits"
    leaks = report["leakage"]
    # The street photos are the same files in both splits, so each is an exact leak too.
    kinds = {leak["kind"] for leak in leaks}
    assert kinds == {"exact"}
    mine = [leak for leak in leaks if "seg_test/seg_test/street/leak.jpg" in leak["paths"]]
    assert len(mine) == 1
    assert sorted(mine[0]["splits"]) == ["test", "train"]
    assert any(c["labels"] == ["glacier", "street"] for c in report["label_conflicts"])


def test_csv_manifest_listing_one_file_in_two_splits(tmp_path: Path, intel_dir: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    photos = _photos(intel_dir, "forest", 3, start=30) + _photos(intel_dir, "sea", 3, start=30)
    for i, src in enumerate(photos):
        dest = images / f"{i}.jpg"
        shutil.copyfile(src, dest)
        rows.append([f"images/{i}.jpg", "forest" if i < 3 else "sea", "train" if i % 3 else "test"])
    rows.append(["images/1.jpg", "forest", "test"])  # the same file again, in test
    manifest = tmp_path / "split.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label", "split"], *rows])

    report = audit_dataset(manifest).to_dict()
    assert report["layout"] == "csv"
    assert report["exact_duplicates"] == [["images/1.jpg", "images/1.jpg"]]
    assert report["leakage"] == [
        {"paths": ["images/1.jpg", "images/1.jpg"], "splits": ["test", "train"], "kind": "exact"}
    ]


def _solid(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (96, 80)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_channel_stats_use_the_training_split_only(tmp_path: Path) -> None:
    root = tmp_path / "solid"
    # Flat images share one pHash (so they are near-duplicates too); only stats are checked here.
    _solid(root / "train" / "red" / "a.png", (255, 0, 0))
    _solid(root / "train" / "blue" / "b.png", (0, 0, 255))
    _solid(root / "test" / "red" / "c.png", (0, 255, 0))
    _solid(root / "test" / "blue" / "d.png", (0, 255, 0))

    report = audit_dataset(root)
    assert report.mean == [0.5, 0.0, 0.5]
    # The constant green channel gets the variance floor training uses, never a zero std.
    assert report.std == pytest.approx([0.5, 0.0, 0.5], abs=1e-5) and report.std[1] > 0
    assert report.channel_stats["split"] == "train" and report.channel_stats["images"] == 2
    stats = dataset_stats(root)
    assert (stats.mean, stats.std) == (report.mean, report.std)
    train = [root / "train" / "red" / "a.png", root / "train" / "blue" / "b.png"]
    assert channel_stats(train) == (report.mean, report.std, 2)
    assert stats.splits == {"train": {"blue": 1, "red": 1}, "test": {"blue": 1, "red": 1}}
    assert stats.sizes["all"]["width"] == {"min": 96, "median": 96.0, "max": 96}


def test_all_images_are_used_without_splits_and_missing_class_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    rng = np.random.default_rng(0)
    for cls, n in (("a", 3), ("b", 1)):
        for i in range(n):
            noise = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
            (root / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(noise).save(root / cls / f"{i}.png")
    report = audit_dataset(root).to_dict()
    assert report["splits"] == {"all": {"a": 3, "b": 1}}
    assert report["imbalance"] == {"all": 3.0}
    assert report["channel_stats"]["split"] == "all" and report["channel_stats"]["images"] == 4
    assert report["findings"] == 0

    split_root = tmp_path / "split"
    for split, cls in (("train", "a"), ("train", "b"), ("test", "a")):
        noise = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
        (split_root / split / cls).mkdir(parents=True)
        Image.fromarray(noise).save(split_root / split / cls / "x.png")
    report = audit_dataset(split_root).to_dict()
    assert report["imbalance"] == {"train": 1.0, "test": None}
    assert report["missing_classes"] == {"test": ["b"]}
    assert report["findings"] == 1


def test_unusable_datasets_raise_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        audit_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        audit_dataset(tmp_path / "empty")
    _solid(tmp_path / "one" / "forest" / "a.png", (10, 200, 10))
    with pytest.raises(DatasetError, match="only 1 class"):
        audit_dataset(tmp_path / "one")
