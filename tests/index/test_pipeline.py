"""``landscape index`` end to end on a real archive: idempotent, incremental, crash-safe."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from landscape.data.archive import ArchiveSpec, build_archive
from landscape.index.db import open_index, session_factory, writer_lock
from landscape.index.pipeline import IndexOptions, run_index
from landscape.index.scanner import RootError
from landscape.index.schema import Embedding, File, MediaMetadata, Model, Prediction, Scan
from landscape.inference.predictor import Predictor
from tests.conftest import CliResult

FAST = IndexOptions(workers=1, timeout=60, memory_mb=None, batch_size=8)


def _archive(root: Path, per_class: int = 3) -> Path:
    """Synthetic photos (EXIF + GPS) in dated campaign folders, plus the usual odd files."""
    return build_archive(root, ArchiveSpec(per_class=per_class, size=64, seed=7)).root


def _index_command(root: Path, db: Path, bundle: Path) -> list[str]:
    """``landscape index`` as a user runs it, in a process of its own (to kill, freeze, cap)."""
    return [
        sys.executable, "-m", "landscape", "index", str(root), "--db", f"sqlite:///{db}",
        "--model", str(bundle), "--workers", "1", "--no-progress",
    ]  # fmt: skip


def _rows_while_running(
    db: Path, table: str, proc: subprocess.Popen[Any], *, seconds: float
) -> int:
    """Poll ``db`` until ``table`` has rows, ``proc`` ends or ``seconds`` pass; the count seen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
        if not db.exists():
            continue
        try:
            with sqlite3.connect(db, timeout=1) as con:
                count = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:
            continue  # not created yet, or busy
        if count:
            return count
    return 0


def _count(url: str, model: type) -> int:
    engine = open_index(url, create=False)
    with session_factory(engine)() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def bundle(tiny_run: Path) -> Path:
    return tiny_run / "bundle"


def test_first_run_records_everything_and_a_rerun_does_nothing(
    db_url: str, tmp_path: Path, bundle: Path
) -> None:
    root = _archive(tmp_path / "archive")
    engine = open_index(db_url)
    predictor = Predictor.from_bundle(bundle)
    first = run_index(engine, [root], predictor=predictor, options=FAST)
    images = len(list(root.rglob("*_0*.jpg"))) + 1  # the synthetic photos and the PNG
    # + notes.txt, fake.jpg (text) and empty.jpg, listed as "other"; truncated.jpg fails
    assert dict(first.outcomes) == {"new": images + 3, "failed": 1, "missing": 0}
    with session_factory(engine)() as s:
        rows = {f.relative_path: f for f in s.scalars(select(File))}
        assert rows["fake.jpg"].status == "ok" and rows["fake.jpg"].media_type == "other"
        assert rows["empty.jpg"].media_type == "other" and rows["empty.jpg"].size == 0
        assert (
            rows["truncated.jpg"].status == "error" and "truncated" in rows["truncated.jpg"].error
        )
        assert rows["notes.txt"].media_type == "other" and rows["notes.txt"].status == "ok"
        assert rows["plain.png"].media_type == "image" and rows["plain.png"].mime == "image/png"
        assert all(len(f.content_hash or "") == 64 for f in rows.values())
        assert s.scalar(select(func.count()).select_from(Prediction)) == images
        assert s.scalar(select(func.count()).select_from(Embedding)) == images
        media = s.scalars(select(MediaMetadata).where(MediaMetadata.latitude.is_not(None))).all()
        assert len(media) == images - 1  # every synthetic photo has GPS, the PNG none
        assert all(m.place_country and m.camera_make for m in media)
        assert s.get(Model, predictor.model_id).active  # the first model becomes active
        indexed = {f.id: f.indexed_at for f in rows.values()}
        predicted = {p.id: p.created_at for p in s.scalars(select(Prediction))}

    second = run_index(engine, [root], predictor=predictor, options=FAST)
    assert second.outcomes["unchanged"] == len(rows)
    assert set(second.outcomes) <= {"unchanged", "missing"} and second.outcomes["missing"] == 0
    with session_factory(engine)() as s:
        assert {f.id: f.indexed_at for f in s.scalars(select(File))} == indexed  # nothing re-read
        assert {p.id: p.created_at for p in s.scalars(select(Prediction))} == predicted
        assert [sc.state for sc in s.scalars(select(Scan).order_by(Scan.id))] == ["finished"] * 2


def test_changes_moves_and_deletions(db_url: str, tmp_path: Path, bundle: Path) -> None:
    root = _archive(tmp_path / "archive", per_class=2)
    engine = open_index(db_url)
    predictor = Predictor.from_bundle(bundle)
    run_index(engine, [root], predictor=predictor, options=FAST)
    photos = sorted(root.rglob("*_0000*.jpg"))
    changed, moved, deleted, touched = photos[0], photos[1], photos[2], photos[3]
    with session_factory(engine)() as s:
        ids = {f.relative_path: f.id for f in s.scalars(select(File))}
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    moved_id, deleted_id = ids[rel(moved)], ids[rel(deleted)]

    changed.write_bytes(photos[4].read_bytes())  # new content, same name
    target = root / "renamed" / "moved.jpg"
    target.parent.mkdir()
    moved.rename(target)
    deleted.unlink()
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))  # mtime only

    summary = run_index(engine, [root], predictor=predictor, options=FAST)
    assert summary.outcomes["changed"] == 1
    assert summary.outcomes["moved"] == 1
    assert summary.outcomes["missing"] == 1
    with session_factory(engine)() as s:
        row = s.get(File, moved_id)
        assert row is not None and row.relative_path == "renamed/moved.jpg"
        assert s.scalar(select(func.count()).where(Prediction.file_id == moved_id)) == 1
        gone = s.get(File, deleted_id)
        assert gone is not None and gone.status == "missing"  # kept, not dropped
        per_file = s.execute(
            select(Prediction.file_id, func.count()).group_by(Prediction.file_id)
        ).all()
        assert all(n == 1 for _, n in per_file)  # replaced, never duplicated


def test_reclassify_with_another_model_keeps_both(
    db_url: str, tmp_path: Path, bundle: Path, synth_small: Path
) -> None:
    from landscape.config import load_train_config
    from landscape.train.trainer import fit

    root = _archive(tmp_path / "archive", per_class=1)
    engine = open_index(db_url)
    first = Predictor.from_bundle(bundle)
    run_index(engine, [root], predictor=first, options=FAST)
    other = fit(
        load_train_config(
            None,
            {
                "data": str(synth_small), "out": str(tmp_path / "other"), "backbone": "tiny_cnn",
                "weights": "none", "policy": "all", "epochs": 1, "seed": 5, "progress": False,
                "num_workers": 0,
            },
        )
    )  # fmt: skip
    second = Predictor.from_bundle(other.bundle)
    assert second.model_id != first.model_id
    summary = run_index(engine, [root], predictor=second, options=FAST)
    with session_factory(engine)() as s:
        images = s.scalar(
            select(func.count()).where(File.media_type == "image", File.status == "ok")
        )
    assert summary.outcomes["reclassified"] == sum(summary.labels.values()) == images
    with session_factory(engine)() as s:
        by_model = dict(
            s.execute(select(Prediction.model_id, func.count()).group_by(Prediction.model_id)).all()
        )
    assert by_model == {first.model_id: images, second.model_id: images}


def test_reclassify_redoes_unchanged_files_the_model_already_labelled(
    tmp_path: Path, bundle: Path
) -> None:
    root = _archive(tmp_path / "archive", per_class=1)
    engine = open_index(f"sqlite:///{tmp_path / 'again.db'}")
    predictor = Predictor.from_bundle(bundle)
    run_index(engine, [root], predictor=predictor, options=FAST)
    with session_factory(engine)() as s:
        before = dict(s.execute(select(Prediction.file_id, Prediction.created_at)).all())
    plain = run_index(engine, [root], predictor=predictor, options=FAST)
    assert plain.outcomes["reclassified"] == 0  # nothing to do without --reclassify
    again = IndexOptions(workers=1, timeout=60, memory_mb=None, batch_size=8, reclassify=True)
    summary = run_index(engine, [root], predictor=predictor, options=again)
    with session_factory(engine)() as s:
        after = dict(s.execute(select(Prediction.file_id, Prediction.created_at)).all())
    assert summary.outcomes["reclassified"] == len(before) == len(after) > 0
    assert all(after[f] > before[f] for f in before)  # every prediction written afresh


def test_unmount_guard_and_missing_root(db_url: str, tmp_path: Path) -> None:
    root = _archive(tmp_path / "share", per_class=1)
    engine = open_index(db_url)
    run_index(engine, [root], options=FAST)
    for item in root.iterdir():
        shutil.rmtree(item) if item.is_dir() else item.unlink()
    with pytest.raises(RootError, match="unmounted share"):
        run_index(engine, [root], options=FAST)
    summary = run_index(engine, [root], options=IndexOptions(workers=1, allow_empty=True))
    assert summary.outcomes["missing"] > 0
    with pytest.raises(RootError, match="does not exist"):
        run_index(engine, [tmp_path / "nowhere"], options=FAST)


def test_hung_or_crashing_decoders_quarantine_the_file_only(tmp_path: Path, bundle: Path) -> None:
    root = _archive(tmp_path / "archive", per_class=1)
    engine = open_index(f"sqlite:///{tmp_path / 'q.db'}")
    # A timeout no decode can meet: every worker is killed mid-file, the run still finishes.
    strict = IndexOptions(workers=1, timeout=0.001, memory_mb=None)
    summary = run_index(engine, [root], predictor=Predictor.from_bundle(bundle), options=strict)
    with session_factory(engine)() as s:
        statuses = {f.status for f in s.scalars(select(File))}
        reasons = {f.error.split(":")[0] for f in s.scalars(select(File)) if f.error}
    assert statuses == {"quarantined"} and reasons == {"timeout"}
    assert summary.outcomes["failed"] == len([p for p in root.rglob("*") if p.is_file()])


def test_second_writer_is_refused(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    root = _archive(tmp_path / "archive", per_class=1)
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    with writer_lock(open_index(url)):
        result = run_cli("index", root, "--db", url, "--no-progress")
    assert result.code == 1
    assert "another `landscape index`" in result.err and len(result.err.strip().splitlines()) == 1


def test_kill_9_mid_run_then_rerun_indexes_every_file_exactly_once(
    tmp_path: Path, bundle: Path
) -> None:
    # Enough files for several write batches: the kill must land before the last one.
    root = _archive(tmp_path / "archive", per_class=40)
    db = tmp_path / "crash.db"
    args = _index_command(root, db, bundle)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    written = _rows_while_running(db, "files", proc, seconds=240)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    total = len([p for p in root.rglob("*") if p.is_file()])
    assert 0 < written < total

    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT state FROM scans").fetchall() == [("running",)]
    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["scan_id"] == 1  # the interrupted scan is the one completed
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        paths = [r[0] for r in con.execute("SELECT relative_path FROM files")]
        assert len(paths) == len(set(paths)) == total
        dupes = con.execute(
            "SELECT file_id, model_id, segment, count(*) FROM predictions "
            "GROUP BY file_id, model_id, segment HAVING count(*) > 1"
        ).fetchall()
        assert dupes == []
        assert con.execute("SELECT state FROM scans").fetchall() == [("finished",)]
    photos = len(list(root.rglob("*_0*.jpg"))) + 1  # + plain.png
    assert _count(f"sqlite:///{db}", Prediction) == photos


def _limited_fsize(limit: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_mid_run_is_one_line_and_loses_nothing(tmp_path: Path, bundle: Path) -> None:
    """A file-size limit (what a full disk looks like to SQLite) hit while writing batches:
    exit 1 with one line, the committed batches intact, and a re-run completes the scan."""
    root = _archive(tmp_path / "archive", per_class=12)
    db = tmp_path / "full.db"
    open_index(f"sqlite:///{db}").dispose()  # the schema fits; the batches will not
    total = len([p for p in root.rglob("*") if p.is_file()])
    args = _index_command(root, db, bundle)
    limit = db.stat().st_size + 96 * 1024
    full = subprocess.run(
        args, capture_output=True, text=True, timeout=300, preexec_fn=_limited_fsize(limit)
    )
    assert full.returncode == 1, full.stdout + full.stderr
    assert full.stderr.startswith("error: the disk is full"), full.stderr
    assert len(full.stderr.strip().splitlines()) == 1 and "Traceback" not in full.stderr
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        written = con.execute("SELECT count(*) FROM files").fetchone()[0]
        assert con.execute("SELECT state FROM scans").fetchall() == [("running",)]
    assert written < total
    again = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM files").fetchone()[0] == total
        assert con.execute("SELECT state FROM scans").fetchall() == [("finished",)]


def test_a_second_index_process_is_refused_while_the_first_runs(
    tmp_path: Path, bundle: Path
) -> None:
    root = _archive(tmp_path / "archive", per_class=20)
    db = tmp_path / "busy.db"
    args = _index_command(root, db, bundle)
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        running = _rows_while_running(db, "scans", first, seconds=120)
        assert running and first.poll() is None, "the first run ended before the second started"
        # Frozen mid-run (it keeps its lock, as a slow run would), so the second surely meets it.
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(args, capture_output=True, text=True, timeout=120)
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 1
        assert "another `landscape index`" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT state FROM scans").fetchall() == [("finished",)]
