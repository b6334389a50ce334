"""``landscape search`` and the repository query behind it, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.repository import SearchFilters, haversine_km, search
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult
from tests.index.test_pipeline import _archive

Run = Callable[..., CliResult]


@pytest.fixture
def indexed(db_url: str, tmp_path: Path, tiny_run: Path) -> tuple[str, Path]:
    root = _archive(tmp_path / "archive", per_class=3)
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

    dated = sorted(str(h["captured_at"]) for h in photos if h["captured_at"])
    middle = date.fromisoformat(dated[len(dated) // 2][:10])
    after = _search(url, taken_after=middle)
    before = _search(url, taken_before=middle)
    assert all(str(h["captured_at"])[:10] >= str(middle) for h in after)
    assert all(str(h["captured_at"])[:10] <= str(middle) for h in before)
    assert len(after) + len(before) >= len(dated)
    assert [h["captured_at"] for h in after] == sorted(
        (h["captured_at"] for h in after), reverse=True
    )  # newest first

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


def test_haversine_known_distance() -> None:
    paris, london = (48.8566, 2.3522), (51.5074, -0.1278)
    assert haversine_km(*paris, *london) == pytest.approx(343.5, abs=1.0)
    assert haversine_km(*paris, *paris) == 0.0


def test_index_and_search_as_a_user(run_cli: Run, tmp_path: Path, tiny_run: Path) -> None:
    root = _archive(tmp_path / "archive", per_class=2)
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
