"""``landscape search`` and the repository query behind it, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from landscape.data.archive import ArchiveSpec, build_archive
from landscape.index import repository
from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.repository import SearchFilters, haversine_km, search
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult

Run = Callable[..., CliResult]


@pytest.fixture
def indexed(db_url: str, tmp_path: Path, tiny_run: Path) -> tuple[str, Path]:
    root = build_archive(tmp_path / "archive", ArchiveSpec(per_class=3, size=64, seed=7)).root
    engine = open_index(db_url)
    run_index(
        engine,
        [root],
        predictor=Predictor.from_bundle(tiny_run / "bundle"),
        options=IndexOptions(workers=1, memory_mb=None),
    )
    return db_url, root


def _search(url: str, **filters: object) -> list[dict[str, object]]:
    with session_factory(open_index(url, create=False))() as session:
        return [h.to_dict() for h in search(session, SearchFilters(**filters))]  # type: ignore[arg-type]


def test_filters_agree_with_the_stored_facts(indexed: tuple[str, Path]) -> None:
    url, root = indexed
    everything = _search(url, limit=1000)
    assert len(everything) == len([p for p in root.rglob("*") if p.is_file()])
    assert all(Path(str(h["path"])).is_file() for h in everything)  # absolute, real paths
    photos = [h for h in everything if h["label"] is not None]
    label = str(photos[0]["label"])
    by_label = _search(url, label=label)
    assert by_label and {h["label"] for h in by_label} == {label}
    assert len(by_label) == sum(h["label"] == label for h in photos)
    floor = sorted(float(h["confidence"]) for h in photos)[len(photos) // 2]  # type: ignore[arg-type]
    confident = _search(url, min_confidence=floor)
    assert confident and all(float(h["confidence"]) >= floor for h in confident)  # type: ignore[arg-type]
    assert len(confident) == sum(float(h["confidence"]) >= floor for h in photos)  # type: ignore[arg-type]

    # A file's date is its capture time, else its modification time (the undated files here
    # were written today: after every capture).
    assert all(h["taken_at"] == (h["captured_at"] or h["taken_at"]) for h in everything)
    assert all(h["taken_at"] for h in everything)
    undated = [h for h in everything if not h["captured_at"]]
    assert undated and all(
        str(h["taken_at"]) > max(str(p["captured_at"]) for p in photos if p["captured_at"])
        for h in undated
    )
    dated = sorted(str(h["taken_at"]) for h in everything)
    middle = date.fromisoformat(dated[len(dated) // 2][:10])
    after = _search(url, taken_after=middle, limit=1000)
    before = _search(url, taken_before=middle, limit=1000)
    assert after and all(str(h["taken_at"])[:10] >= str(middle) for h in after)
    assert before and all(str(h["taken_at"])[:10] <= str(middle) for h in before)
    assert len(after) + len(before) >= len(everything)
    newest_first = [(h["taken_at"], h["id"]) for h in everything]
    assert newest_first == sorted(newest_first, reverse=True)

    anchor = next(h for h in photos if h["latitude"] is not None)
    lat, lon = float(anchor["latitude"]), float(anchor["longitude"])  # type: ignore[arg-type]
    near = _search(url, near=(lat, lon, 50.0))
    expected = [
        h for h in photos
        if h["latitude"] is not None
        and haversine_km(lat, lon, float(h["latitude"]), float(h["longitude"])) <= 50  # type: ignore[arg-type]
    ]  # fmt: skip
    assert {h["id"] for h in near} == {h["id"] for h in expected} and anchor["id"] in {
        h["id"] for h in near
    }
    country = str(anchor["place"]).split(", ")[-1]
    assert anchor["id"] in {h["id"] for h in _search(url, place=country.upper())}
    assert len(_search(url, camera="landscapesynth")) == len(photos) - 1  # all but the PNG
    assert {h["media_type"] for h in _search(url, media="other")} == {"other"}
    assert {h["path"] for h in _search(url, status="error")} == {str(root / "truncated.jpg")}
    campaign = _search(url, path_contains="coast campaign", limit=1000)
    assert campaign and all("2024-05 coast campaign/" in str(h["path"]) for h in campaign)
    assert _search(url, path_contains="%") == []  # LIKE wildcards are escaped
    assert len(_search(url, limit=3)) == 3


@pytest.mark.parametrize(
    "filters",
    [
        {"limit": 4},
        {"limit": 4, "media": "image"},
        {"limit": 2, "status": "error"},
        {"limit": 3, "path_contains": "coast campaign"},
        {"limit": 3, "camera": "landscapesynth", "taken_before": date(2020, 1, 1)},
        {"limit": 2, "taken_after": date(2019, 6, 1), "min_confidence": 0.0},
    ],
)
def test_a_small_window_gives_the_same_page_as_the_whole_index(
    indexed: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, filters: dict[str, object]
) -> None:
    """The newest-files window is a shortcut, never a different answer: with a
    window of 3 files most pages fall back to the whole index, some are served from it."""
    url, _ = indexed
    whole = _search(url, **filters)
    monkeypatch.setattr(repository, "_WINDOW", 3)
    assert _search(url, **filters) == whole


def test_explain_shows_each_statement_search_may_run(indexed: tuple[str, Path]) -> None:
    url, _ = indexed
    engine = open_index(url, create=False)
    with session_factory(engine)() as session:
        plans = repository.explain(session, SearchFilters(label="forest", limit=60))
        near = repository.explain(session, SearchFilters(near=(45.0, 5.0, 10.0)))
    # The window, then the whole index; a circle is read on until the page is full.
    assert len(plans) == 2 and len(near) == 1
    assert all("files" in plan for plan in plans)


def test_haversine_known_distance() -> None:
    paris, london = (48.8566, 2.3522), (51.5074, -0.1278)
    assert haversine_km(*paris, *london) == pytest.approx(343.5, abs=1.0)
    assert haversine_km(*paris, *paris) == 0.0


def test_index_and_search_as_a_user(run_cli: Run, tmp_path: Path, tiny_run: Path) -> None:
    root = build_archive(tmp_path / "archive", ArchiveSpec(per_class=2, size=64, seed=7)).root
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    first = run_cli("index", root, "--db", url, "--model", tiny_run / "bundle", "--json")
    assert first.code == 0, first.err
    summary = json.loads(first.out)
    assert summary["outcomes"]["failed"] == 1 and summary["model_id"]
    # The model is now active: a second run needs no --model and changes nothing.
    again = run_cli("index", root, "--db", url, "--no-progress")
    assert again.code == 0 and "unchanged" in again.out
    result = run_cli("search", "--db", url, "--media", "image", "--json")
    rows = json.loads(result.out)
    keys = {"path", "label", "confidence", "model_id", "captured_at", "latitude", "longitude"}
    assert rows and all(keys <= set(r) for r in rows)
    assert all(Path(r["path"]).is_absolute() for r in rows)
    assert {r["model_id"] for r in rows if r["label"]} == {summary["model_id"]}
    table = run_cli("search", "--db", url, "--csv", "--status", "error")
    parsed = list(csv.DictReader(io.StringIO(table.out)))
    assert [Path(r["path"]).name for r in parsed] == ["truncated.jpg"]
    human = run_cli("search", "--db", url, "--limit", "2")
    assert human.code == 0 and "2 file(s)" in human.out


def test_search_errors_are_one_line(run_cli: Run, tmp_path: Path) -> None:
    empty = run_cli("search", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert empty.code == 1 and "landscape db upgrade" in empty.err
    assert run_cli("search", "--near", "north").code == 2
    assert run_cli("search", "--near", "95,0,1").code == 2
    assert run_cli("search", "--taken-after", "yesterday").code == 2
    assert run_cli("search", "--media", "audio").code == 2
    missing = run_cli("index", tmp_path / "nowhere", "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert missing.code == 1 and "does not exist" in missing.err


@pytest.fixture
def indexed_video(db_url: str, tmp_path: Path, scene_run: Path) -> tuple[str, Path]:
    """A coast → forest → coast survey pass beside two photos, indexed with a model that tells
    the scenes apart."""
    from landscape.data.synth_video import Scene, landscape_clip

    root = build_archive(tmp_path / "archive", ArchiveSpec(per_class=1, size=64, seed=3)).root
    scenes = [Scene("coast", 4), Scene("forest", 5), Scene("coast", 4)]
    clip = landscape_clip(root / "pass.mp4", scenes, fps=10, seed=3)
    engine = open_index(db_url)
    options = IndexOptions(workers=1, memory_mb=None, keyframe_dir=tmp_path / "keyframes")
    run_index(
        engine, [root], predictor=Predictor.from_bundle(scene_run / "bundle"), options=options
    )
    return db_url, clip.path


def test_a_video_matches_a_label_in_any_segment_and_says_when(
    indexed_video: tuple[str, Path],
) -> None:
    url, clip = indexed_video
    videos = _search(url, media="video")
    assert [h["path"] for h in videos] == [str(clip)]
    whole = videos[0]
    assert whole["label"] == "coast"  # 8 s of coast against 5 s of forest
    timeline = whole["segments"]
    assert [s["label"] for s in timeline] == ["coast", "forest", "coast"]  # type: ignore[union-attr]

    forest = _search(url, media="video", label="forest")
    assert [h["path"] for h in forest] == [str(clip)]
    (stretch,) = forest[0]["segments"]  # type: ignore[misc]
    assert stretch["label"] == "forest"
    assert abs(stretch["start"] - 4) <= 1 and abs(stretch["end"] - 9) <= 1
    # The label filter on all media: the photos labelled forest and the video.
    anywhere = _search(url, label="forest", limit=1000)
    assert str(clip) in {h["path"] for h in anywhere}
    assert all(h["label"] == "forest" for h in anywhere if h["media_type"] == "image")

    coast = _search(url, media="video", label="coast")
    assert len(coast[0]["segments"]) == 2  # type: ignore[arg-type]
    too_sure = stretch["confidence"] + 1e-6
    assert _search(url, media="video", label="forest", min_confidence=too_sure) == []
    assert _search(url, media="video", label="desert") == []
    photos = _search(url, media="image")
    assert photos and all(h["segments"] is None for h in photos)


def test_search_prints_the_matching_stretches_of_a_video(
    run_cli: Run, tmp_path: Path, scene_run: Path
) -> None:
    from landscape.data.synth_video import Scene, landscape_clip

    root = tmp_path / "archive"
    root.mkdir()
    landscape_clip(root / "pass.mkv", [Scene("desert", 4), Scene("glacier", 4)], fps=10, seed=5)
    url = f"sqlite:///{tmp_path / 'v.db'}"
    indexed = run_cli("index", root, "--db", url, "--model", scene_run / "bundle", "--no-progress")
    assert indexed.code == 0, indexed.err
    assert "video 1" in indexed.out
    human = run_cli("search", "--db", url, "--media", "video", "--label", "glacier")
    assert human.code == 0, human.err
    assert "pass.mkv" in human.out and "glacier" in human.out
    assert "00:04–00:08 glacier" in human.out or "00:03–00:08 glacier" in human.out
    table = run_cli("search", "--db", url, "--csv", "--media", "video")
    (row,) = csv.DictReader(io.StringIO(table.out))
    assert row["segments"].startswith("00:00–") and "; " in row["segments"]
    assert (tmp_path / "v.keyframes").is_dir()
