"""``landscape data export``: reviewed images become a dataset ``landscape train`` reads."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from landscape.data.archive import ArchiveSpec, build_archive
from landscape.data.datasets import load_dataset
from landscape.errors import UserError
from landscape.index.accounts import Identity, add_user
from landscape.index.db import open_index, session_factory
from landscape.index.export import export_reviewed, reviewed_files
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.reviews import add_correction
from landscape.index.schema import File, Prediction
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult


@pytest.fixture(scope="module")
def reviewed(scene_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, str]:
    """An index of real JPEGs with three corrections (two labels) and one confirmation."""
    root = tmp_path_factory.mktemp("export") / "archive"
    build_archive(root, ArchiveSpec(per_class=2, size=64, seed=5, odd_files=False))
    url = f"sqlite:///{root.parent / 'index.db'}"
    engine = open_index(url)
    predictor = Predictor.from_bundle(scene_run / "bundle")
    run_index(engine, [root], predictor=predictor, options=IndexOptions(workers=1, memory_mb=None))
    with session_factory(engine)() as s:
        user = add_user(s, "ana", "analyst", "password123")
        who = Identity(user.id, "ana", "analyst", "write")
        rows = s.execute(
            select(File.id, Prediction.label)
            .join(Prediction, Prediction.file_id == File.id)
            .where(File.media_type == "image")
            .order_by(File.id)
        ).all()
        others = {"coast": "forest", "forest": "coast"}
        for file_id, label in rows[:3]:
            add_correction(s, who, file_id, others.get(label, "coast"), note="<b>checked</b>")
        add_correction(s, who, rows[3][0], rows[3][1])  # agrees with the model
        # A file corrected twice: the newest review counts.
        add_correction(s, who, rows[0][0], "glacier")
        s.commit()
    return engine, url


def test_reviewed_files_are_the_newest_reviews(reviewed: tuple[Engine, str]) -> None:
    engine, _ = reviewed
    with session_factory(engine)() as s:
        every = reviewed_files(s)
        corrected = reviewed_files(s, corrections_only=True)
    assert len(every) == 4 and len(corrected) == 3
    assert sum(r.confirmed for r in every) == 1
    assert every[0].label == "glacier"  # corrected twice: the second one
    assert all(r.user == "ana" and r.model_id for r in every)


def test_export_folders_then_load_as_a_dataset(
    reviewed: tuple[Engine, str], tmp_path: Path
) -> None:
    engine, _ = reviewed
    out = tmp_path / "ds"
    with session_factory(engine)() as s:
        summary = export_reviewed(s, out, format="folders")
    assert summary.files == 4
    dataset = load_dataset(out, min_classes=1)
    assert len(dataset.samples) == 4
    assert {s.label for s in dataset.samples} == set(summary.labels)
    record = json.loads((out / "export.json").read_text())
    assert len(record["files"]) == 4 and all(f["review_id"] for f in record["files"])
    # Hard links: the same bytes as the originals, not copies of something else.
    for entry in record["files"]:
        assert (out / entry["path"]).read_bytes() == Path(entry["source"]).read_bytes()


def test_export_csv_corrections_only(reviewed: tuple[Engine, str], tmp_path: Path) -> None:
    engine, _ = reviewed
    out = tmp_path / "csv"
    with session_factory(engine)() as s:
        summary = export_reviewed(s, out, format="csv", corrections_only=True)
    assert summary.files == 3
    with (out / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and all(Path(r["path"]).is_file() for r in rows)
    assert len(load_dataset(out / "manifest.csv", min_classes=1).samples) == 3


def test_export_refuses_a_folder_in_use(reviewed: tuple[Engine, str], tmp_path: Path) -> None:
    engine, _ = reviewed
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with session_factory(engine)() as s, pytest.raises(UserError, match="not an empty folder"):
        export_reviewed(s, tmp_path / "busy")


def test_cli_data_export(
    reviewed: tuple[Engine, str], tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    _, url = reviewed
    result = run_cli("data", "export", str(tmp_path / "out"), "--db", url, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["files"] == 4
