"""What every similarity backend shares: the vectors compared, the match, the cache key.

Kept apart from :mod:`.similarity` (which picks a backend) so the backends —
:mod:`.vector_pg`, :mod:`.vector_sqlite` and the exact scan — import it without a cycle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .schema import Embedding, File, Prediction

__all__ = ["Match", "VectorIndex", "cache_stem", "compared_rows", "vectors_stamp"]


@dataclass(frozen=True)
class Match:
    """One vector's similarity to the query: its file, prediction and (video) segment."""

    file_id: int
    prediction_id: int
    segment: int
    score: float


class VectorIndex(Protocol):
    """What answers a similarity query: every compared vector, most similar first."""

    def ranked(self, query: np.ndarray) -> Iterator[Match]:
        """Matches in decreasing cosine similarity to ``query``."""
        ...


def compared_rows(model_id: str) -> Any:
    """The vectors a similarity query compares, in prediction order: a still image's, and the
    segments (1…n) of a video; files marked missing left out."""
    is_video = File.media_type == "video"
    return (
        select(
            Prediction.id, Prediction.file_id, Prediction.segment, Embedding.dim, Embedding.vector
        )
        .join(Embedding, Embedding.prediction_id == Prediction.id)
        .join(File, File.id == Prediction.file_id)
        .where(
            Prediction.model_id == model_id,
            File.status != "missing",
            (Prediction.segment > 0) == is_video,
        )
        .order_by(Prediction.id)
    )


def vectors_stamp(session: Session, model_id: str) -> str:
    """What changes whenever the compared vectors may have: the model's prediction count,
    highest id and newest time, and the number of missing files."""
    count, highest, newest = session.execute(
        select(
            func.count(Prediction.id), func.max(Prediction.id), func.max(Prediction.created_at)
        ).where(Prediction.model_id == model_id)
    ).one()
    missing = session.scalar(select(func.count(File.id)).where(File.status == "missing"))
    return f"{count}:{highest}:{newest}:{missing}"


def cache_stem(session: Session, model_id: str, cache_dir: Path) -> Path:
    """Where a cache of this database's vectors of ``model_id`` lives (per database URL)."""
    url = str(session.get_bind().engine.url)
    return cache_dir / hashlib.sha256(f"{url}\0{model_id}".encode()).hexdigest()[:24]
