"""``landscape search --like``: nearest files by embedding, with filters, on SQLite and PG."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from landscape.data.synth import render_landscape
from landscape.data.synth_video import Scene, landscape_clip
from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.repository import SearchFilters
from landscape.index.schema import Embedding, File, Prediction
from landscape.index.similarity import ExactScan, SimilarityError, find_target, search_like
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult

Run = Callable[..., CliResult]
CLASSES = ("coast", "desert", "forest", "glacier", "mountain")


def _store(root: Path) -> Path:
    for c, label in enumerate(CLASSES):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(4):
            picture = render_landscape(label, np.random.default_rng(100 * c + i), 160)
            picture.save(folder / f"{label}_{i}.jpg", quality=90)
    scenes = [Scene("desert", 4), Scene("coast", 4)]
    landscape_clip(root / "pass.mp4", scenes, seed=3)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture
def indexed(db_url: str, tmp_path: Path, scene_run: Path) -> tuple[str, Path]:
    root = _store(tmp_path / "store")
    options = IndexOptions(workers=1, memory_mb=None, keyframe_dir=tmp_path / "kf")
    predictor = Predictor.from_bundle(scene_run / "bundle")
    run_index(open_index(db_url), [root], predictor=predictor, options=options)
    return db_url, root


def _like(url: str, target: str, cache: Path, **filters: object) -> list[dict[str, object]]:
    with session_factory(open_index(url, create=False))() as session:
        found = search_like(session, target, SearchFilters(**filters), cache)  # type: ignore[arg-type]
        return [h.to_dict() for h in found]


def test_the_nearest_files_are_the_same_scene_and_a_video_says_which_stretch(
    indexed: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = indexed
    cache = tmp_path / "cache"
    query = root / "coast" / "coast_0.jpg"
    top = _like(url, str(query), cache, limit=3)

    def shows(hit: dict[str, object]) -> str:  # a photo's folder, a video's matched stretch
        if hit["media_type"] == "video":
            return str(hit["segments"][0]["label"])  # type: ignore[index]
        return Path(str(hit["path"])).parent.name

    assert [shows(h) for h in top] == ["coast"] * 3
    scores = [float(h["score"]) for h in top]  # type: ignore[arg-type]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert str(query) not in {h["path"] for h in top}  # the query itself is not an answer

    everything = _like(url, str(query), cache, limit=100)
    assert len(everything) == 20  # 19 other photos and the video (not the broken file)
    (video,) = [h for h in everything if h["media_type"] == "video"]
    (stretch,) = video["segments"]  # type: ignore[misc]
    assert stretch["label"] == "coast" and stretch["start"] >= 3  # the coast half matched

    # Filters combine: the nearest desert files to a coast photo; and by index id.
    deserts = _like(url, str(query), cache, label="desert", limit=2)
    assert len(deserts) == 2 and all(h["label"] == "desert" for h in deserts)
    with session_factory(open_index(url, create=False))() as session:
        own = session.scalar(select(File.id).where(File.relative_path == "coast/coast_0.jpg"))
    assert _like(url, str(own), cache, limit=3) == top


def test_the_exact_scan_is_the_brute_force_answer_and_its_cache_follows_the_index(
    indexed: tuple[str, Path], tmp_path: Path, scene_run: Path
) -> None:
    url, root = indexed
    cache = tmp_path / "cache"
    engine = open_index(url, create=False)
    with session_factory(engine)() as session:
        model_id = session.scalar(select(Prediction.model_id).limit(1))
        assert model_id is not None
        rows = session.execute(
            select(Prediction.id, Embedding.vector, File.media_type, Prediction.segment)
            .join(Embedding, Embedding.prediction_id == Prediction.id)
            .join(File, File.id == Prediction.file_id)
        ).all()
        kept = [r for r in rows if (r.segment > 0) == (r.media_type == "video")]
        matrix = np.stack([np.frombuffer(r.vector, np.float16).astype(np.float32) for r in kept])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        query = matrix[3]
        expected = [kept[i].id for i in np.argsort(-(matrix @ query))[:10]]
        scan = ExactScan(session, model_id, cache)
        ranked = [m.prediction_id for m, _ in zip(scan.ranked(query), range(10), strict=False)]
        assert ranked == expected
        cached = next(cache.glob("*.f16")).stat().st_mtime_ns
        ExactScan(session, model_id, cache)  # unchanged index: the cache is reused
        assert next(cache.glob("*.f16")).stat().st_mtime_ns == cached
    more = root / "coast" / "coast_9.jpg"
    render_landscape("coast", np.random.default_rng(9), 160).save(more)
    options = IndexOptions(workers=1, memory_mb=None, keyframe_dir=tmp_path / "kf")
    run_index(
        engine, [root], predictor=Predictor.from_bundle(scene_run / "bundle"), options=options
    )
    with session_factory(engine)() as session:
        assert len(ExactScan(session, model_id, cache).ids) == len(kept) + 1


def test_files_that_cannot_be_asked_about_are_one_line_errors(
    indexed: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = indexed
    cache = tmp_path / "cache"
    elsewhere = tmp_path / "elsewhere.jpg"
    cases = {
        str(elsewhere): "is not in the index",
        "999999": "no file with id 999999",
        str(root / "broken.jpg"): "has no embedding",
    }
    for target, says in cases.items():
        with pytest.raises(SimilarityError, match=says) as caught:
            _like(url, target, cache)
        assert "\n" not in str(caught.value)


def test_more_like_this_as_a_user(run_cli: Run, tmp_path: Path, scene_run: Path) -> None:
    root = _store(tmp_path / "store")
    url = f"sqlite:///{tmp_path / 'like.db'}"
    indexed = run_cli("index", root, "--db", url, "--model", scene_run / "bundle", "--no-progress")
    assert indexed.code == 0, indexed.err
    query = root / "forest" / "forest_1.jpg"
    rows = json.loads(run_cli("search", "--db", url, "--like", query, "-k", "3", "--json").out)
    assert len(rows) == 3 and "/forest/" in rows[0]["path"]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    human = run_cli("search", "--db", url, "--like", query, "-k", "2")
    assert human.code == 0 and "similarity 0." in human.out and "2 file(s)" in human.out
    missing = run_cli("search", "--db", url, "--like", tmp_path / "nope.jpg")
    assert missing.code == 1 and "is not in the index" in missing.err
    assert len(missing.err.strip().splitlines()) == 1


def test_pgvector_and_the_exact_scan_give_the_same_neighbours(
    postgres_url: str, postgres_url_novector: str, tmp_path: Path, scene_run: Path
) -> None:
    from landscape.index.db import schema_status
    from landscape.index.similarity import vector_index
    from landscape.index.vector_pg import PgVectorScan, has_pgvector

    root = _store(tmp_path / "store")
    predictor = Predictor.from_bundle(scene_run / "bundle")
    options = IndexOptions(workers=1, memory_mb=None, keyframe_dir=tmp_path / "kf")
    answers = {}
    for url in (postgres_url, postgres_url_novector):
        engine = open_index(url)
        run_index(engine, [root], predictor=predictor, options=options)
        assert schema_status(engine).ok  # the derived vector table is not a schema change
        with session_factory(engine)() as session:
            model_id = predictor.model_id
            index = vector_index(session, model_id, tmp_path / "cache")
            assert isinstance(index, PgVectorScan) == has_pgvector(session)
            _, query = find_target(session, str(root / "glacier" / "glacier_2.jpg"), model_id)
            exact = ExactScan(session, model_id, tmp_path / f"cache-{len(answers)}")
            truth = [m.file_id for m, _ in zip(exact.ranked(query), range(10), strict=False)]
            got = [m.file_id for m, _ in zip(index.ranked(query), range(10), strict=False)]
            assert got == truth  # recall 1.0 at this size, in the same order
        answers[url] = _like(url, str(root / "glacier" / "glacier_2.jpg"), tmp_path / "c", limit=5)
    with_hnsw, without = answers.values()
    assert [Path(str(h["path"])).name for h in with_hnsw] == [
        Path(str(h["path"])).name for h in without
    ]
    assert [h["score"] for h in with_hnsw] == pytest.approx([h["score"] for h in without], abs=2e-3)


def test_sqlite_vec_gives_the_exact_scan_answers(
    tmp_path: Path, scene_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from landscape.index import vector_sqlite
    from landscape.index.similarity import vector_index
    from landscape.index.vector_sqlite import SqliteVecScan, sqlite_vec_available

    assert sqlite_vec_available()  # the `vec` extra is installed by `make`
    root = _store(tmp_path / "store")
    url = f"sqlite:///{tmp_path / 'vec.db'}"
    options = IndexOptions(workers=1, memory_mb=None)
    predictor = Predictor.from_bundle(scene_run / "bundle")
    run_index(open_index(url), [root], predictor=predictor, options=options)
    with session_factory(open_index(url, create=False))() as session:
        index = vector_index(session, predictor.model_id, tmp_path / "cache")
        assert isinstance(index, SqliteVecScan)
        _, query = find_target(session, str(root / "desert" / "desert_1.jpg"), predictor.model_id)
        exact = ExactScan(session, predictor.model_id, tmp_path / "cache-exact")
        truth = list(exact.ranked(query))
        got = list(index.ranked(query, page=5))  # pages of 5: the deeper queries are exercised
        assert [m.prediction_id for m in got[:10]] == [m.prediction_id for m in truth[:10]]
        assert len(got) == len(truth)  # every vector, once
        assert [m.score for m in got] == pytest.approx([m.score for m in truth], abs=2e-3)
        # Past sqlite-vec's neighbour limit the rest comes from a full scan, still in order.
        monkeypatch.setattr(vector_sqlite, "_MAX_K", 5)
        capped = list(index.ranked(query, page=5))
        assert [m.prediction_id for m in capped] == [m.prediction_id for m in got]
    rows = _like(url, str(root / "desert" / "desert_1.jpg"), tmp_path / "cache", limit=3)
    assert len(rows) == 3 and rows[0]["score"] == pytest.approx(got[1].score, abs=2e-3)
