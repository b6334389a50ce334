"""Nearest neighbours for a SQLite index with sqlite-vec, where it can be loaded.

Python's own ``sqlite3`` often cannot load extensions (built without
``enable_load_extension``, as on this project's machines), so sqlite-vec is loaded into a
``sqlean`` connection (a drop-in sqlite3 that can) — the ``vec`` extra installs both. The
vectors live in a derived database file in the cache folder (a ``vec0`` table of unit float32
vectors, cosine distance), never in the index itself, so the index stays readable by any
SQLite; it is rebuilt when the model's predictions change (the same stamp as the exact scan's
cache). sqlite-vec's KNN is exact (a SIMD scan in C), so it gives the exact scan's answers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from .vectors import Match, cache_stem, compared_rows, vectors_stamp

__all__ = ["SqliteVecScan", "sqlite_vec_available"]

# sqlite-vec answers at most this many neighbours per KNN query.
_MAX_K = 4096
_INSERT_CHUNK = 2000


@functools.cache
def sqlite_vec_available() -> bool:
    """Whether sqlean and sqlite-vec are installed and the extension loads."""
    try:
        connection = _connect(":memory:")
    except (ImportError, OSError, AttributeError, RuntimeError):
        return False
    connection.close()
    return True


def _connect(path: str) -> Any:
    import sqlean
    import sqlite_vec

    connection = sqlean.connect(path)
    connection.enable_load_extension(True)
    sqlite_vec.load(connection)
    connection.enable_load_extension(False)
    return connection


def _stamp(connection: Any) -> str | None:
    import sqlean

    try:
        row = connection.execute("SELECT stamp FROM meta").fetchone()
    except sqlean.Error:  # a half-written or foreign file: rebuilt
        return None
    return str(row[0]) if row else None


class SqliteVecScan:
    """The similarity ranking answered by sqlite-vec (see the module docstring)."""

    def __init__(self, session: Session, model_id: str, cache_dir: Path) -> None:
        self.model_id = model_id
        path = cache_stem(session, model_id, cache_dir).with_suffix(".vec.db")
        stamp = vectors_stamp(session, model_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = _connect(str(path)) if path.exists() else None
        if existing is not None and _stamp(existing) == stamp:
            self.connection: Any = existing
        else:
            if existing is not None:
                existing.close()
            self.connection = self._build(session, path, stamp)

    def _build(self, session: Session, path: Path, stamp: str) -> Any:
        """Write the vectors into a fresh file, then move it into place (atomic)."""
        part = path.with_suffix(".part")
        part.unlink(missing_ok=True)
        connection = _connect(str(part))
        rows = session.execute(compared_rows(self.model_id).execution_options(yield_per=2048))
        dim = 0
        batch: list[tuple[int, int, int, int, bytes]] = []

        def flush() -> None:
            connection.executemany(
                "INSERT INTO items(rowid, embedding) VALUES (?, ?)", [(b[0], b[4]) for b in batch]
            )
            connection.executemany(
                "INSERT INTO ids(rowid, file_id, segment) VALUES (?, ?, ?)",
                [(b[0], b[1], b[2]) for b in batch],
            )
            batch.clear()

        for row in rows:
            vector = np.frombuffer(row.vector, dtype=np.float16).astype(np.float32)
            if not dim:
                dim = vector.size
                connection.execute(
                    f"CREATE VIRTUAL TABLE items USING vec0(embedding float[{dim}] "
                    "distance_metric=cosine)"
                )
                connection.execute(
                    "CREATE TABLE ids (rowid INTEGER PRIMARY KEY, file_id INTEGER, segment INTEGER)"
                )
            if vector.size != dim:
                continue
            batch.append((row.id, row.file_id, row.segment, dim, vector.tobytes()))
            if len(batch) >= _INSERT_CHUNK:
                flush()
        if batch:
            flush()
        connection.execute("CREATE TABLE meta (stamp TEXT, dim INTEGER)")
        connection.execute("INSERT INTO meta VALUES (?, ?)", (stamp, dim))
        connection.commit()
        connection.close()
        os.replace(part, path)
        return _connect(str(path))

    def ranked(self, query: np.ndarray, *, page: int = 200) -> Iterator[Any]:
        """Vectors most similar first, a page at a time (each a deeper KNN query), then the
        rest by a full scan past sqlite-vec's limit of 4,096 neighbours."""
        dim_row = self.connection.execute("SELECT dim FROM meta").fetchone()
        if not dim_row or not dim_row[0]:
            return
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        seen: set[int] = set()
        k = page
        while True:
            rows = self.connection.execute(
                "SELECT i.rowid, d.file_id, d.segment, i.distance FROM items i"
                " JOIN ids d ON d.rowid = i.rowid WHERE i.embedding MATCH ? AND k = ?"
                " ORDER BY i.distance",
                (q.tobytes(), min(k, _MAX_K)),
            ).fetchall()
            for prediction_id, file_id, segment, distance in rows:
                if prediction_id not in seen:
                    seen.add(prediction_id)
                    yield Match(file_id, prediction_id, segment, 1.0 - float(distance))
            if len(rows) < min(k, _MAX_K):
                return
            if k >= _MAX_K:
                break
            k *= 4
        # Past the KNN limit (a very selective filter): score the rest here.
        rest = self.connection.execute(
            "SELECT i.rowid, d.file_id, d.segment, vec_distance_cosine(i.embedding, ?)"
            " FROM items i JOIN ids d ON d.rowid = i.rowid ORDER BY 4",
            (q.tobytes(),),
        )
        for prediction_id, file_id, segment, distance in rest:
            if prediction_id not in seen:
                yield Match(file_id, prediction_id, segment, 1.0 - float(distance))
