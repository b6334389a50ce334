"""The first attempt of a search — the walk of the newest files in page order (``INDEXED BY`` on
SQLite, a ``LATERAL`` lookup per file on PostgreSQL) — answers exactly what the query over the
whole index answers, on both databases."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from landscape.index import repository
from landscape.index.db import open_index, session_factory
from landscape.index.repository import SearchFilters, search
from landscape.index.schema import File, MediaMetadata, Model, Prediction, Root

LABELS = ("coast", "forest", "glacier")
N = 240


def _rows(rng: random.Random) -> tuple[list[dict[str, Any]], ...]:
    files, media, preds = [], [], []
    start = datetime(2020, 1, 1)
    for i in range(1, N + 1):
        # Every fourth file shares its moment with the previous one: ties are broken by id.
        taken = start + timedelta(hours=(i - i % 4 // 3) * 7 % 900)
        label = LABELS[rng.randrange(3)]
        video = i % 7 == 0
        files.append(
            {
                "id": i,
                "root_id": 1,
                "relative_path": f"{'coast campaign' if i % 3 else 'survey'}/{label}_{i:04d}.jpg",
                "content_hash": f"{i:064x}",
                "size": 1000 + i,
                "mtime_ns": i,
                "media_type": "video" if video else "image",
                "mime": "image/jpeg",
                "status": "error" if i % 11 == 0 else "ok",
                "taken_at": taken,
            }
        )
        if i % 13:  # some files have no metadata at all
            media.append(
                {
                    "file_id": i,
                    "captured_at": taken,
                    "camera_make": ("Canon", "DJI")[i % 2],
                    "camera_model": ("EOS R5", "Mavic 3")[i % 2],
                    "latitude": rng.uniform(40, 60),
                    "longitude": rng.uniform(-5, 20),
                    "place_country": ("France", "Norway")[i % 2],
                    "place_city": ("Brest", "Bergen")[i % 2],
                }
            )
        if i % 17 == 0:
            continue  # not classified yet
        confidence = rng.uniform(0.1, 1.0)
        preds.append(_prediction(i, 0, label, confidence))
        if video:  # a timeline whose middle stretch may show another label
            for segment, seg_label in enumerate((label, rng.choice(LABELS), label), 1):
                preds.append(_prediction(i, segment, seg_label, rng.uniform(0.1, 1.0)))
    return files, media, preds


def _prediction(file_id: int, segment: int, label: str, confidence: float) -> dict[str, Any]:
    return {
        "file_id": file_id,
        "model_id": "m1",
        "segment": segment,
        "label": label,
        "confidence": confidence,
        "probabilities": {label: confidence},
        "is_unknown": confidence < 0.3,
        "segment_start": 5.0 * (segment - 1) if segment else None,
        "segment_end": 5.0 * segment if segment else None,
    }


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    engine = open_index(db_url)
    files, media, preds = _rows(random.Random(5))
    with session_factory(engine)() as s:
        s.execute(insert(Root), [{"id": 1, "path": "/archive"}])
        s.execute(
            insert(Model),
            [
                {
                    "model_id": "m1",
                    "name": "m1",
                    "backbone": "b",
                    "classes": list(LABELS),
                    "metrics": {},
                    "bundle_path": "/nowhere",
                    "bundle_sha256": "0" * 64,
                    "active": True,
                }
            ],
        )
        s.execute(insert(File), files)
        s.execute(insert(MediaMetadata), media)
        s.execute(insert(Prediction), preds)
        s.commit()
        yield s
    engine.dispose()


CASES: list[dict[str, Any]] = [
    {},
    {"label": "forest"},
    {"label": "forest", "min_confidence": 0.6},
    {"label": "coast", "max_confidence": 0.5, "sort": "oldest"},
    {"unknown": True},
    {"unknown": False, "label": "glacier"},
    {"media": "video", "label": "glacier"},
    {"media": "video"},
    {"place": "BREST", "label": "coast"},
    {"camera": "mavic", "taken_before": date(2020, 1, 20)},
    {"bbox": (45.0, 0.0, 55.0, 10.0)},
    {"status": "error", "path_contains": "coast campaign"},
    {"taken_after": date(2020, 1, 10), "sort": "oldest"},
    {"after": (datetime(2020, 1, 25), 120), "label": "forest"},
    {"after": (datetime(2020, 1, 12), 50), "sort": "oldest", "media": "image"},
    {"model_id": "no-such-model"},
    {"model_id": "no-such-model", "label": "forest"},
]


def _walk_and_whole(session: Session, filters: SearchFilters) -> tuple[list[Any], list[Any]]:
    model_id = repository.resolve_model_id(session, filters)
    walk, whole = repository._attempts(session, filters, model_id)
    return session.execute(walk).all(), session.execute(whole).all()


@pytest.mark.parametrize("case", CASES, ids=lambda c: "+".join(c) or "none")
@pytest.mark.parametrize("limit", [1, 7, 60])
def test_the_walk_over_every_file_is_the_whole_query(
    session: Session, case: dict[str, Any], limit: int
) -> None:
    """With a window holding every file, the walk is the query over the whole index, row for
    row (the order, the ties broken by id, the rows without metadata or prediction)."""
    walk, whole = _walk_and_whole(session, SearchFilters(**case, limit=limit))
    assert [tuple(r) for r in walk] == [tuple(r) for r in whole]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "+".join(c) or "none")
@pytest.mark.parametrize("window", [5, 9, 40])
def test_a_full_page_from_a_small_window_is_the_page(
    session: Session, monkeypatch: pytest.MonkeyPatch, case: dict[str, Any], window: int
) -> None:
    """A window smaller than the archive: when the walk fills a page, that page is the one the
    whole index gives; and what search returns never depends on the window."""
    filters = SearchFilters(**case, limit=5)
    expected = search(session, filters)
    monkeypatch.setattr(repository, "_WINDOW", window)
    walk, whole = _walk_and_whole(session, filters)
    assert len(walk) <= 5
    if len(walk) == 5:
        assert [tuple(r) for r in walk] == [tuple(r) for r in whole]
    assert search(session, filters) == expected


def test_the_walk_follows_the_taken_at_index(session: Session, db_url: str) -> None:
    """The walk's plan on each database: on SQLite a scan of the (taken_at, id) index with no
    temporary sort; on PostgreSQL the window's ordered scan drives nested loops and no sort or
    hash join sits above it, so the page ends the scan (checked on a small table: the shape is
    what the query forces, not a cost the planner weighs)."""
    first, _ = repository.explain(session, SearchFilters(label="forest", camera="mavic", limit=5))
    if db_url.startswith("sqlite"):
        assert "ix_files_taken_at_id" in first and "USE TEMP B-TREE" not in first, first
        return
    lines = [line.strip().removeprefix("->  ") for line in first.splitlines()]
    assert lines[0].startswith("Limit") and lines[1].startswith("Nested Loop"), first
    assert "Hash Join" not in first, first
    window = next(i for i, line in enumerate(lines) if i and line.startswith("Limit"))
    assert not any("Sort" in line for line in lines[:window]), first
