"""Dataset layouts: class-per-folder, split folders (generic, Kaggle Landscape-12k, Intel) and CSV.

:func:`load_dataset` turns any supported layout into a :class:`DatasetIndex`: a flat, sorted list of
:class:`Sample` (path, normalised label, split or ``None``) plus the classes in a stable order.
No image is decoded here; :class:`ImageDataset` decodes lazily for a DataLoader.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from landscape.errors import DatasetError, ImageDecodeError

from .io import is_image_path, open_image

__all__ = [
    "SPLITS",
    "DatasetIndex",
    "ImageDataset",
    "Sample",
    "detect_layout",
    "load_dataset",
    "normalize_class_name",
    "write_manifest",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")

# Folder names of split directories in the layouts we know, lower-cased.
_SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "training data": "train",
    "seg_train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "validation data": "val",
    "seg_val": "val",
    "test": "test",
    "testing": "test",
    "testing data": "test",
    "seg_test": "test",
}
# Unlabelled folders shipped beside labelled splits (Intel's seg_pred): ignored, not a class.
_UNLABELLED = {"seg_pred", "pred", "predict", "unlabeled", "unlabelled"}
_MANIFEST_COLUMNS = {"path", "label", "split"}


def normalize_class_name(name: str) -> str:
    """Normalise a class name: trimmed, lower-case, runs of spaces/dashes/underscores → ``_``."""
    cleaned = re.sub(r"[\s\-_]+", "_", name.strip().lower()).strip("_")
    if not cleaned:
        raise DatasetError(f"class name {name!r} is empty after normalisation", fix="rename it")
    return cleaned


@dataclass(frozen=True, order=True)
class Sample:
    """One labelled image file."""

    path: Path
    label: str
    split: str | None = None


@dataclass
class DatasetIndex:
    """All samples of a dataset, its classes in a stable order, and what was skipped and why."""

    root: Path
    layout: str
    classes: tuple[str, ...]
    samples: list[Sample]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits present, in train/val/test order."""
        present = {s.split for s in self.samples}
        return tuple(s for s in SPLITS if s in present)

    def subset(self, split: str) -> list[Sample]:
        """Samples of one split; a clear error when the split does not exist."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}", fix=f"use one of {', '.join(SPLITS)}")
        chosen = [s for s in self.samples if s.split == split]
        if not chosen:
            have = ", ".join(self.splits) or "none (no split assigned)"
            raise DatasetError(
                f"split {split!r} is empty or does not exist (splits present: {have})",
                path=self.root,
                fix="choose another --split or let landscape make a seeded split",
            )
        return chosen

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split or "all": {class: count}}`` with every class listed (zeros included)."""
        table: dict[str, dict[str, int]] = {}
        for sample in self.samples:
            row = table.setdefault(sample.split or "all", dict.fromkeys(self.classes, 0))
            row[sample.label] += 1
        order = {name: i for i, name in enumerate((*SPLITS, "all"))}
        return {k: table[k] for k in sorted(table, key=order.__getitem__)}

    def fingerprint(self) -> str:
        """A short hash of (relative path, size, label, split) for every sample.

        It changes when a file is added, removed, resized or relabelled, and is recorded in
        bundles and feature caches so results are tied to the data they came from.
        """
        digest = hashlib.sha256()
        for sample in sorted(self.samples):
            try:
                rel = sample.path.relative_to(self.root)
            except ValueError:
                rel = sample.path
            size = sample.path.stat().st_size if sample.path.exists() else -1
            digest.update(f"{rel}|{size}|{sample.label}|{sample.split}\n".encode())
        return digest.hexdigest()[:16]

    def with_samples(self, samples: Iterable[Sample]) -> DatasetIndex:
        """A copy with other samples (e.g. after assigning splits)."""
        return replace(self, samples=sorted(samples))


def _split_name(folder: Path) -> str | None:
    return _SPLIT_ALIASES.get(folder.name.strip().lower())


def _descend_duplicate(folder: Path) -> Path:
    # The Kaggle Intel download nests seg_train/seg_train/<class>: step into the single twin.
    children = [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".")]
    if len(children) == 1 and children[0].name.lower() == folder.name.lower():
        return children[0]
    return folder


def detect_layout(root: Path) -> str:
    """Name the layout of ``root``: ``"csv"``, ``"splits"`` or ``"folders"``."""
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise DatasetError(
            "is a file, not a dataset", path=root, fix="pass a folder of class folders or a CSV"
        )
    subdirs = [c for c in root.iterdir() if c.is_dir() and not c.name.startswith(".")]
    if any(_split_name(c) for c in subdirs):
        return "splits"
    return "folders"


def _scan_class_folders(
    folder: Path, split: str | None, samples: list[Sample], skipped: list[tuple[Path, str]]
) -> None:
    for class_dir in sorted(folder.iterdir()):
        if not class_dir.is_dir():
            if not class_dir.name.startswith("."):
                skipped.append((class_dir, "file outside a class folder"))
            continue
        if class_dir.name.startswith(".") or class_dir.name.lower() in _UNLABELLED:
            continue
        label = normalize_class_name(class_dir.name)
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            if path.name.startswith("."):
                continue
            if not is_image_path(path):
                skipped.append((path, "not an image file"))
            elif path.stat().st_size == 0:
                skipped.append((path, "empty file (0 bytes)"))
            else:
                samples.append(Sample(path, label, split))


def _read_manifest(path: Path, samples: list[Sample], skipped: list[tuple[Path, str]]) -> None:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = {c.strip().lower() for c in (reader.fieldnames or [])}
        if not {"path", "label"} <= columns:
            raise DatasetError(
                f"manifest needs columns path,label[,split]; it has {sorted(columns) or 'none'}",
                path=path,
                fix="add a header line `path,label,split`",
            )
        unknown = columns - _MANIFEST_COLUMNS
        if unknown:
            raise DatasetError(
                f"manifest has unknown column(s) {', '.join(sorted(unknown))}",
                path=path,
                fix="keep only path, label and split",
            )
        missing: list[str] = []
        for line, raw in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
            file = Path(row["path"])
            file = file if file.is_absolute() else (path.parent / file)
            split = row.get("split") or None
            if split is not None and split.lower() not in SPLITS:
                raise DatasetError(
                    f"line {line}: unknown split {split!r}", path=path, fix="use train, val or test"
                )
            if not row["label"]:
                raise DatasetError(f"line {line}: empty label", path=path, fix="fill the label")
            if not file.is_file():
                missing.append(row["path"])
                continue
            if file.stat().st_size == 0:
                skipped.append((file, "empty file (0 bytes)"))
                continue
            samples.append(
                Sample(file, normalize_class_name(row["label"]), split.lower() if split else None)
            )
        if missing:
            raise DatasetError(
                f"{len(missing)} file(s) listed in the manifest do not exist (first: {missing[0]})",
                path=path,
                fix="fix the paths (relative paths are read from the manifest's folder)",
            )


def _classes_file(root: Path) -> Path:
    return (root.parent if root.is_file() else root) / "classes.json"


def load_dataset(root: Path | str, *, min_classes: int = 2) -> DatasetIndex:
    """Index the dataset at ``root`` (a folder in any supported layout, or a CSV manifest).

    Raises :class:`DatasetError` when the path does not exist, holds no images, or has fewer
    than ``min_classes`` classes. Non-image and empty files are listed in ``skipped``.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError("does not exist", path=root, fix="check the path")
    layout = detect_layout(root)
    samples: list[Sample] = []
    skipped: list[tuple[Path, str]] = []
    if layout == "csv":
        _read_manifest(root, samples, skipped)
    elif layout == "splits":
        for folder in sorted(c for c in root.iterdir() if c.is_dir()):
            split = _split_name(folder)
            if split is None:
                if not folder.name.startswith(".") and folder.name.lower() not in _UNLABELLED:
                    skipped.append((folder, "folder beside the split folders ignored"))
                continue
            _scan_class_folders(_descend_duplicate(folder), split, samples, skipped)
    else:
        _scan_class_folders(root, None, samples, skipped)
    if not samples:
        raise DatasetError(
            "no images found" + (f" ({len(skipped)} non-image or empty files)" if skipped else ""),
            path=root,
            fix="expected <class>/<image>.jpg folders, train/val/test split folders or a CSV",
        )
    labels = sorted({s.label for s in samples})
    if len(labels) < min_classes:
        raise DatasetError(
            f"only {len(labels)} class ({', '.join(labels)}) found; classification needs at least "
            f"{min_classes}",
            path=root,
            fix="add a folder per class",
        )
    classes = tuple(labels)
    saved = _classes_file(root)
    if saved.is_file():
        # A saved order wins so class indices stay stable when a class is added later.
        order = [normalize_class_name(c) for c in json.loads(saved.read_text())["classes"]]
        classes = tuple(order + [c for c in labels if c not in order])
    return DatasetIndex(root, layout, classes, sorted(samples), skipped)


def write_manifest(index: DatasetIndex, path: Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path,label,split`` rows (paths relative to the manifest when possible).

    A ``classes.json`` beside it keeps the class order (and ``extra`` facts such as the seed),
    so every later command sees the same split and the same class indices.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        for sample in index.samples:
            resolved = sample.path.resolve()
            try:
                shown = resolved.relative_to(base).as_posix()
            except ValueError:
                shown = str(resolved)
            writer.writerow([shown, sample.label, sample.split or ""])
    tmp.replace(path)
    meta = {"classes": list(index.classes), "counts": index.counts(), **(extra or {})}
    _classes_file(path).write_text(json.dumps(meta, indent=2) + "\n")
    return path


class ImageDataset:
    """A map-style dataset (``torch.utils.data.Dataset`` protocol) decoding images lazily.

    Items are ``(transform(image), class_index)``. A file that fails to decode yields ``None``
    (logged with its path) so :func:`collate_skip_none` can drop it instead of crashing a batch.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        transform: Callable[[Any], Any] | None = None,
        *,
        draft: tuple[int, int] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.classes = list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({s.label for s in self.samples} - set(self.class_to_idx))
        if unknown:
            raise DatasetError(
                f"labels {', '.join(unknown)} are not among the classes {', '.join(self.classes)}",
                fix="use a dataset with the same classes as the model",
            )
        self.transform = transform
        self.draft = draft

    def __len__(self) -> int:
        return len(self.samples)

    def targets(self) -> list[int]:
        """Class index of every sample, in order."""
        return [self.class_to_idx[s.label] for s in self.samples]

    def __getitem__(self, key: int | tuple[int, int, int]) -> tuple[Any, int] | None:
        """Item ``key``; a key ``(index, seed, epoch)`` also seeds the random transforms.

        Seeding per (seed, epoch, index) makes augmentation independent of worker count and of
        when the DataLoader iterator was created, so a resumed run augments exactly like an
        uninterrupted one.
        """
        if isinstance(key, tuple):
            i, seed, epoch = key
            import random

            import torch

            torch.manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + i)
            random.seed((seed * 1_000_003 + epoch) * 1_000_003 + i)
        else:
            i = key
        sample = self.samples[i]
        try:
            image = open_image(sample.path, draft=self.draft)
        except ImageDecodeError as exc:
            log.warning("skipping %s", exc)
            return None
        item = self.transform(image) if self.transform is not None else image
        return item, self.class_to_idx[sample.label]


def class_balance(samples: Iterable[Sample]) -> Counter[str]:
    """Count samples per label."""
    return Counter(s.label for s in samples)
