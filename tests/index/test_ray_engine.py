"""``landscape index --engine ray``: the Ray Data engine stores the local engine's rows.

A real local Ray instance (``ray.init(num_cpus=2)``), the real scene model, a synthetic archive
with EXIF/GPS photos, odd and broken files and a survey video.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from landscape.data.archive import ArchiveSpec, build_archive
from landscape.errors import UserError
from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.ray_engine import connect, require_ray
from landscape.index.schema import Embedding, File, MediaMetadata, Prediction
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult

LOCAL = IndexOptions(workers=1, timeout=60, memory_mb=None, batch_size=8)
RAY = replace(LOCAL, engine="ray")


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """A local Ray instance of 2 CPUs for this module (what the issue's test asks for)."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 1024**2,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Photos of every class with EXIF and GPS, the odd files (corrupt, empty, text, ...)
    and a survey video."""
    root = tmp_path_factory.mktemp("ray") / "archive"
    return build_archive(root, ArchiveSpec(per_class=2, size=64, seed=3, video=True)).root


def _rows(engine: Engine) -> dict[str, Any]:
    """Everything a run stores, keyed so two databases compare: file rows by path (with ids),
    metadata, predictions and embeddings (floats rounded: batch composition differs)."""
    with session_factory(engine)() as s:
        files = {
            f.relative_path: (
                f.id,
                f.status,
                f.media_type,
                f.mime,
                f.content_hash,
                f.phash,
                f.error,
            )
            for f in s.scalars(select(File))
        }
        media = {
            m.file_id: {
                k: v for k, v in vars(m).items() if not k.startswith("_") and k != "file_id"
            }
            for m in s.scalars(select(MediaMetadata))
        }
        predictions = {
            (p.file_id, p.segment): (
                p.label,
                round(p.confidence, 3),
                p.is_unknown,
                p.segment_start,
                p.segment_end,
                p.keyframe,
            )
            for p in s.scalars(select(Prediction))
        }
        embeddings = int(s.scalar(select(func.count()).select_from(Embedding)) or 0)
    return {"files": files, "media": media, "predictions": predictions, "embeddings": embeddings}


def test_ray_engine_stores_the_local_engines_rows(
    ray_instance: Any, archive: Path, scene_run: Path, tmp_path: Path, db_url: str
) -> None:
    """Local engine on SQLite, Ray engine on SQLite and on PostgreSQL: the same rows."""
    predictor = Predictor.from_bundle(scene_run / "bundle")
    local = open_index(f"sqlite:///{tmp_path / 'local.db'}")
    on_ray = open_index(db_url)
    first = run_index(local, [archive], predictor=predictor, options=LOCAL)
    keyframes = tmp_path / "ray.keyframes"
    options = replace(RAY, keyframe_dir=keyframes)
    second = run_index(on_ray, [archive], predictor=predictor, options=options)

    assert first.outcomes == second.outcomes and first.labels == second.labels
    assert first.outcomes["new"] > 10 and first.outcomes["failed"] >= 1  # the corrupt files
    a, b = _rows(local), _rows(on_ray)
    assert a["files"] == b["files"]  # same ids, paths, hashes, statuses and errors
    assert a["media"] == b["media"] and a["media"]  # EXIF, GPS, place, video streams
    assert a["predictions"] == b["predictions"]
    assert a["embeddings"] == b["embeddings"] > 0
    videos = [v for v in a["files"].values() if v[2] == "video"]
    assert videos and any(seg > 0 for (_, seg) in b["predictions"])  # a timeline was built
    # Keyframes written where the run was told, under the local run's content-addressed names.
    names = sorted(k[5] for k in b["predictions"].values() if k[5])
    assert names and all((keyframes / n).is_file() for n in names)

    # A re-run on Ray is incremental, as the local engine's is.
    again = run_index(on_ray, [archive], predictor=predictor, options=options)
    assert set(again.outcomes) <= {"unchanged", "missing"} and again.outcomes["unchanged"]
    assert _rows(on_ray) == b


def test_ray_engine_quarantines_a_hung_decoder_and_finishes(
    ray_instance: Any, archive: Path, scene_run: Path, tmp_path: Path
) -> None:
    """A file whose worker is killed (here: every file, by a timeout no decode meets) costs
    that file only; the Ray job itself finishes."""
    engine = open_index(f"sqlite:///{tmp_path / 'q.db'}")
    strict = replace(RAY, timeout=0.001, video_timeout_factor=0.0)
    summary = run_index(
        engine, [archive], predictor=Predictor.from_bundle(scene_run / "bundle"), options=strict
    )
    with session_factory(engine)() as s:
        statuses = {f.status for f in s.scalars(select(File))}
    assert statuses == {"quarantined"}
    assert summary.outcomes["failed"] == len([p for p in archive.rglob("*") if p.is_file()])


def test_metadata_only_on_ray(ray_instance: Any, archive: Path, tmp_path: Path) -> None:
    engine = open_index(f"sqlite:///{tmp_path / 'm.db'}")
    local = open_index(f"sqlite:///{tmp_path / 'l.db'}")
    run_index(local, [archive], options=LOCAL)
    summary = run_index(engine, [archive], options=RAY)
    assert summary.model_id is None and summary.outcomes["new"] > 10
    rows = _rows(engine)
    assert rows["predictions"] == {} and rows == _rows(local)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_address_that_does_not_answer_is_one_line(
    archive: Path, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(UserError, match="does not answer"), connect(address):
        pass
    db = tmp_path / "x.db"
    result = subprocess.run(
        [sys.executable, "-m", "landscape", "index", str(archive), "--db", f"sqlite:///{db}",
         "--engine", "ray", "--address", address, "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "does not answer" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the error and its fix


def test_an_unreadable_address_is_one_line() -> None:
    with pytest.raises(UserError, match="cannot read the Ray address"), connect("nohost"):
        pass


def test_without_the_extra_the_engine_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an interpreter without Ray sees
    with pytest.raises(UserError, match=r"landscape\[ray\]"):
        require_ray()


def test_cli_index_on_ray(
    archive: Path, scene_run: Path, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    """As a user runs it: a local Ray instance started and stopped by the command."""
    db = tmp_path / "cli.db"
    result = subprocess.run(
        [sys.executable, "-m", "landscape", "index", str(archive), "--db", f"sqlite:///{db}",
         "--model", str(scene_run / "bundle"), "--engine", "ray", "--workers", "1",
         "--no-progress", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    summary = json.loads(result.stdout)
    assert summary["outcomes"]["new"] > 10 and summary["labels"]
