"""The data of a retrain: reviewed files split into train / val / held-out, plus extra data.

People's reviews (corrections, and confirmations — a person agreeing with the model) are the
truth. A stratified share of the reviewed files is **held out**, near-duplicates kept on one
side (:func:`landscape.data.splits.assign_splits`); the rest are split into train and val.
Extra training images — the base bundle's own training data, and optionally the base model's
confident predictions on unreviewed files of the index (pseudo-labels) — only ever join the
train split, and any that is a near-duplicate of a held-out file is dropped, so the held-out
files measure both models on images neither trained on.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from landscape.data.datasets import (
    DatasetIndex,
    Sample,
    load_dataset,
    normalize_class_name,
    write_manifest,
)
from landscape.data.hashing import group_near_duplicates, hash_images
from landscape.data.splits import assign_splits
from landscape.errors import DatasetError, UserError
from landscape.index.export import reviewed_files
from landscape.index.schema import Correction, File, Prediction, Root
from landscape.train.data_prep import subsample

__all__ = ["HeldOut", "RetrainData", "build_retrain_data", "pseudo_labels"]


@dataclass(frozen=True)
class HeldOut:
    """A reviewed file kept out of training to score the base and the candidate."""

    file_id: int
    path: Path
    label: str
    review_id: int


@dataclass
class RetrainData:
    """Every sample of a retrain by role, and where each extra came from."""

    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    held_out: list[HeldOut]
    counts: dict[str, int] = field(default_factory=dict)
    dropped_near_duplicates: int = 0

    def write(self, folder: Path) -> Path:
        """``manifest.csv`` (train and val only: the held-out files are not in it at all),
        ``classes.json`` (the class order) and ``held_out.csv``; the manifest's path."""
        folder.mkdir(parents=True, exist_ok=True)
        trained = [*self.train, *self.val]
        manifest = write_manifest(
            DatasetIndex(folder, "csv", tuple(self.classes), trained), folder / "manifest.csv"
        )
        with open(folder / "held_out.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file_id", "path", "label", "review_id"])
            for h in self.held_out:
                writer.writerow([h.file_id, str(h.path), h.label, h.review_id])
        return manifest


def _check_enough(labels: Counter[str], min_per_class: int) -> None:
    short = {label: n for label, n in sorted(labels.items()) if n < min_per_class}
    if len(labels) < 2 or short:
        have = ", ".join(f"{label} has {n}" for label, n in sorted(labels.items())) or "none"
        raise UserError(
            f"too few reviewed images to learn from ({have}); every reviewed class needs at "
            f"least {min_per_class} and at least 2 classes need reviews",
            fix="review more files in the web GUI (/review) or lower --min-per-class",
        )


def _split_reviewed(
    samples: list[Sample], *, holdout: float, val: float, seed: int
) -> dict[str, list[Sample]]:
    # test = held out; val is carved from what is left, so its share is relative to the rest.
    index = DatasetIndex(Path("."), "csv", tuple(sorted({s.label for s in samples})), samples, [])
    split = assign_splits(index, val=val * (1 - holdout), test=holdout, seed=seed)
    out: dict[str, list[Sample]] = defaultdict(list)
    for s in split.samples:
        out[s.split or "train"].append(s)
    return out


def pseudo_labels(
    session: Session, model_id: str, *, min_confidence: float, exclude: set[int]
) -> list[tuple[int, Path, str]]:
    """The model's confident whole-file predictions on present, unreviewed still images:
    ``(file id, path, label)``, in file id order."""
    reviewed = select(Correction.file_id)
    query = (
        select(File.id, Root.path, File.relative_path, Prediction.label)
        .join(Prediction, Prediction.file_id == File.id)
        .join(Root, Root.id == File.root_id)
        .where(
            Prediction.model_id == model_id,
            Prediction.segment == 0,
            Prediction.confidence >= min_confidence,
            Prediction.is_unknown.is_(False),
            File.media_type == "image",
            File.status == "ok",
            File.id.not_in(reviewed),
        )
        .order_by(File.id)
    )
    return [
        (file_id, Path(root) / relative, label)
        for file_id, root, relative, label in session.execute(query)
        if file_id not in exclude
    ]


def _extra_samples(folder: Path, classes: list[str]) -> list[Sample]:
    try:
        index = load_dataset(folder, min_classes=1)
    except DatasetError as exc:
        raise UserError(f"cannot use it as extra data ({exc})", path=folder) from exc
    return [Sample(s.path, s.label, "train") for s in index.samples if s.label in classes]


def _drop_near_duplicates(extra: list[Sample], held_out: list[HeldOut]) -> list[Sample]:
    """``extra`` without any image that is a near-duplicate of a held-out file."""
    if not extra or not held_out:
        return extra
    paths = [h.path for h in held_out] + [s.path for s in extra]
    groups = group_near_duplicates(hash_images(paths))
    held_groups = set(groups[: len(held_out)])
    return [s for s, g in zip(extra, groups[len(held_out) :], strict=True) if g not in held_groups]


def build_retrain_data(
    session: Session,
    base_classes: list[str],
    *,
    holdout: float = 0.3,
    val: float = 0.15,
    min_per_class: int = 5,
    seed: int = 0,
    extra_data: Path | None = None,
    pseudo_model: str | None = None,
    min_confidence: float = 0.9,
    max_extra_per_class: int | None = 100,
) -> RetrainData:
    """Split the reviewed files and add the extras (see the module doc).

    The classes are the base model's, then any class a person introduced, sorted.
    """
    reviewed = [r for r in reviewed_files(session) if r.path.is_file()]
    labels = Counter(normalize_class_name(r.label) for r in reviewed)
    _check_enough(labels, min_per_class)
    classes = list(base_classes) + sorted(set(labels) - set(base_classes))
    by_path = {r.path: r for r in reviewed}
    samples = [Sample(r.path, normalize_class_name(r.label), None) for r in reviewed]
    split = _split_reviewed(samples, holdout=holdout, val=val, seed=seed)
    held_out = [
        HeldOut(by_path[s.path].file_id, s.path, s.label, by_path[s.path].review_id)
        for s in split["test"]
    ]
    if not held_out or not split["train"] or not split["val"]:
        raise UserError(
            f"{len(reviewed)} reviewed images cannot be split into training, validation and "
            f"held-out files",
            fix="review more files, or raise --min-per-class so each class has enough",
        )
    extras: list[Sample] = []
    counts = {"reviewed": len(reviewed), "held_out": len(held_out)}
    if extra_data is not None:
        found = subsample(_extra_samples(extra_data, classes), max_extra_per_class, seed)
        extras += found
        counts["extra_data"] = len(found)
    if pseudo_model is not None:
        exclude = {r.file_id for r in reviewed}
        found = [
            Sample(path, normalize_class_name(label), "train")
            for _, path, label in pseudo_labels(
                session, pseudo_model, min_confidence=min_confidence, exclude=exclude
            )
            if path.is_file() and normalize_class_name(label) in classes
        ]
        found = subsample(found, max_extra_per_class, seed + 1)
        extras += found
        counts["pseudo_labels"] = len(found)
    kept = _drop_near_duplicates(extras, held_out)
    counts["train_reviewed"] = len(split["train"])
    counts["val"] = len(split["val"])
    return RetrainData(
        classes=classes,
        train=list(split["train"]) + kept,
        val=list(split["val"]),
        held_out=held_out,
        counts=counts,
        dropped_near_duplicates=len(extras) - len(kept),
    )
