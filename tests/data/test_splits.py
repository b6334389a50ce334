from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from landscape.data.datasets import load_dataset
from landscape.data.hashing import group_near_duplicates, hash_images
from landscape.data.splits import assign_splits
from landscape.errors import DatasetError


def _dataset(tmp_path: Path, intel_dir: Path, per_class: int = 20) -> Path:
    root = tmp_path / "ds"
    for cls in ("forest", "glacier", "sea"):
        (root / cls).mkdir(parents=True)
        for photo in sorted((intel_dir / cls).glob("*.jpg"))[:per_class]:
            shutil.copy(photo, root / cls / photo.name)
    return root


def _reencode(src: Path, dst: Path) -> None:
    image = Image.open(src).convert("RGB")
    image = image.resize((image.width - 6, image.height - 6))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=55)
    dst.write_bytes(buf.getvalue())


def test_stratified_deterministic_split(tmp_path: Path, intel_dir: Path) -> None:
    index = load_dataset(_dataset(tmp_path, intel_dir))
    a = assign_splits(index, val=0.2, test=0.2, seed=1)
    b = assign_splits(index, val=0.2, test=0.2, seed=1)
    c = assign_splits(index, val=0.2, test=0.2, seed=2)
    assert [s.split for s in a.samples] == [s.split for s in b.samples]
    assert [s.split for s in a.samples] != [s.split for s in c.samples]
    for row in (a.counts()[name] for name in ("train", "val", "test")):
        assert set(row) == {"forest", "glacier", "sea"}
    counts = a.counts()
    assert all(counts["train"][c] == 12 for c in a.classes)
    assert all(counts["test"][c] == 4 for c in a.classes)


def test_near_duplicates_never_straddle_splits(tmp_path: Path, intel_dir: Path) -> None:
    root = _dataset(tmp_path, intel_dir)
    originals = sorted((root / "forest").glob("*.jpg"))[:6]
    for i, photo in enumerate(originals):
        _reencode(photo, root / "forest" / f"copy{i}.jpg")
        shutil.copy(photo, root / "forest" / f"exact{i}.jpg")
    index = load_dataset(root)
    hashes = hash_images([s.path for s in index.samples])
    groups = group_near_duplicates(hashes)
    by_path = {p.name: g for p, g in zip(hashes.paths, groups, strict=True)}
    for i, photo in enumerate(originals):
        assert by_path[photo.name] == by_path[f"copy{i}.jpg"] == by_path[f"exact{i}.jpg"]
    for seed in range(5):
        split_of = {s.path.name: s.split for s in assign_splits(index, seed=seed).samples}
        for i, photo in enumerate(originals):
            assert split_of[photo.name] == split_of[f"copy{i}.jpg"] == split_of[f"exact{i}.jpg"]


def test_existing_splits_kept_and_val_carved(tmp_path: Path, intel_dir: Path) -> None:
    root = tmp_path / "ds"
    for split, n in (("train", 10), ("test", 3)):
        for cls in ("forest", "sea"):
            (root / split / cls).mkdir(parents=True)
            for photo in sorted((intel_dir / cls).glob("*.jpg"))[(0 if split == "train" else 50) :][
                :n
            ]:
                shutil.copy(photo, root / split / cls / photo.name)
    index = load_dataset(root)
    out = assign_splits(index, val=0.2, seed=0)
    counts = out.counts()
    assert counts["test"] == {"forest": 3, "sea": 3}
    assert counts["val"] == {"forest": 2, "sea": 2}
    assert counts["train"] == {"forest": 8, "sea": 8}
    assert assign_splits(out) is out


def test_invalid_fractions(tmp_path: Path, intel_dir: Path) -> None:
    index = load_dataset(_dataset(tmp_path, intel_dir, per_class=2))
    with pytest.raises(DatasetError, match="invalid"):
        assign_splits(index, val=0.6, test=0.5)
