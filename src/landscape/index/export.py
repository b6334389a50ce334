"""Reviewed files as a dataset ``landscape train`` reads: people's labels become training data.

A file counts when its newest whole-file review (segment 0) is a correction, or — unless
``corrections_only`` — a confirmation (a person agreeing with the model). Only still images
that are present and readable are exported. Two layouts:

- ``folders``: ``OUT/<label>/<file id>-<name>``, hard links where the file system allows
  (no copy of a large archive), else copies;
- ``csv``: ``OUT/manifest.csv`` with ``path,label`` pointing at the originals.

Either way ``OUT/export.json`` records every exported file with the review it came from (its
id, who, when, the model it reviewed), so a model trained on it is traceable to its reviews.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from landscape.errors import UserError

from .schema import Correction, File, Root, utcnow

__all__ = ["ExportFormat", "ExportSummary", "export_reviewed", "reviewed_files"]

ExportFormat = Literal["folders", "csv"]


@dataclass
class ExportSummary:
    """What an export wrote."""

    out: Path
    format: str
    labels: Counter[str] = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def files(self) -> int:
        """How many files were exported."""
        return sum(self.labels.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "out": str(self.out),
            "format": self.format,
            "files": self.files,
            "labels": dict(self.labels),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


@dataclass(frozen=True)
class Reviewed:
    """A file with its newest review."""

    file_id: int
    path: Path
    label: str
    review_id: int
    confirmed: bool
    user: str
    model_id: str | None
    reviewed_at: str


def reviewed_files(session: Session, *, corrections_only: bool = False) -> list[Reviewed]:
    """Present still images whose newest whole-file review is a correction (or a
    confirmation, unless ``corrections_only``), in file id order."""
    newest = (
        select(func.max(Correction.id).label("id"))
        .where(Correction.segment == 0)
        .group_by(Correction.file_id)
        .subquery()
    )
    query = (
        select(Correction, File.relative_path, Root.path)
        .join(newest, newest.c.id == Correction.id)
        .join(File, File.id == Correction.file_id)
        .join(Root, Root.id == File.root_id)
        .where(File.media_type == "image", File.status == "ok")
        .order_by(File.id)
    )
    if corrections_only:
        query = query.where(Correction.confirmed.is_(False))
    return [
        Reviewed(
            file_id=c.file_id,
            path=Path(root) / relative,
            label=c.label,
            review_id=c.id,
            confirmed=c.confirmed,
            user=c.user_name,
            model_id=c.model_id,
            reviewed_at=c.created_at.isoformat(),
        )
        for c, relative, root in session.execute(query)
    ]


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def export_reviewed(
    session: Session,
    out: Path,
    *,
    format: ExportFormat = "folders",
    corrections_only: bool = False,
) -> ExportSummary:
    """Write the reviewed files to ``out`` (which must be new or empty) in ``format``."""
    if format not in ("folders", "csv"):
        raise UserError(f"unknown format {format!r}", fix="use folders or csv")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError("exists and is not an empty folder", path=out, fix="choose a new folder")
    items = reviewed_files(session, corrections_only=corrections_only)
    if not items:
        what = "corrected" if corrections_only else "reviewed (corrected or confirmed)"
        raise UserError(
            f"the index has no {what} images to export",
            fix="review some in the web GUI (/review) or with POST /api/v1/files/{id}/corrections",
        )
    out.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(out, format)
    exported: list[dict[str, Any]] = []
    rows: list[tuple[str, str]] = []
    for item in items:
        if not item.path.is_file():
            summary.skipped.append((str(item.path), "not on disk"))
            continue
        if format == "folders":
            target = out / item.label / f"{item.file_id}-{item.path.name}"
            _place(item.path, target)
            where = str(target.relative_to(out))
        else:
            where = str(item.path)
            rows.append((where, item.label))
        summary.labels[item.label] += 1
        exported.append(
            {
                "file_id": item.file_id,
                "source": str(item.path),
                "path": where,
                "label": item.label,
                "review_id": item.review_id,
                "confirmed": item.confirmed,
                "user": item.user,
                "model_id": item.model_id,
                "reviewed_at": item.reviewed_at,
            }
        )
    if format == "csv":
        with (out / "manifest.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label"])
            writer.writerows(rows)
    record = {
        "format": format,
        "corrections_only": corrections_only,
        "created_at": utcnow().isoformat(),
        "labels": dict(summary.labels),
        "models_reviewed": sorted({e["model_id"] for e in exported if e["model_id"]}),
        "files": exported,
    }
    (out / "export.json").write_text(json.dumps(record, indent=1))
    return summary
