"""``index_changes``: a watcher's batch of paths brought into the index, and nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from landscape.data.archive import ArchiveSpec, build_archive
from landscape.index.db import open_index, session_factory
from landscape.index.pipeline import IndexOptions, index_changes, run_index
from landscape.index.schema import File, Prediction
from landscape.inference.predictor import Predictor

FAST = IndexOptions(workers=1, timeout=60, memory_mb=None, batch_size=8)


def _rows(url: str) -> dict[str, tuple[int, str]]:
    with session_factory(open_index(url, create=False))() as session:
        return {f.relative_path: (f.id, f.status) for f in session.scalars(select(File))}


def test_new_changed_moved_and_deleted_paths(db_url: str, tmp_path: Path, tiny_run: Path) -> None:
    root = build_archive(tmp_path / "a", ArchiveSpec(per_class=2, size=64, seed=3)).root
    engine = open_index(db_url)
    predictor = Predictor.from_bundle(tiny_run / "bundle")
    run_index(engine, [root], predictor=predictor, options=FAST)
    before = _rows(db_url)
    photos = sorted(p for p in root.rglob("*.jpg") if "truncated" not in p.name)
    new = root / "incoming" / "new.jpg"
    new.parent.mkdir()
    shutil.copy(photos[0], root / "incoming" / "tmp.bin")
    (root / "incoming" / "tmp.bin").rename(new)  # a new copy, with other bytes appended
    with open(new, "ab") as fh:
        fh.write(b"\0")
    moved_from, moved_to = photos[1], root / "renamed.jpg"
    moved_from.rename(moved_to)
    deleted = photos[2]
    deleted.unlink()
    folder = photos[3].parent
    untouched = before[photos[4].relative_to(root).as_posix()]
    summary = index_changes(
        engine,
        root,
        [new, moved_from, moved_to, deleted, tmp_path / "elsewhere.jpg"],
        predictor=predictor,
        options=FAST,
    )
    after = _rows(db_url)
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    assert after["incoming/new.jpg"][1] == "ok" and summary.outcomes["new"] == 1
    assert after["renamed.jpg"][0] == before[rel(moved_from)][0]  # the same file, moved
    assert rel(moved_from) not in after and summary.outcomes["moved"] == 1
    assert after[rel(deleted)] == (before[rel(deleted)][0], "missing")
    assert after[rel(photos[4])] == untouched  # not in the batch: not read, not marked
    assert summary.scan_id == 0
    with session_factory(engine)() as session:
        labelled = session.scalars(
            select(Prediction.file_id).where(Prediction.file_id == after["incoming/new.jpg"][0])
        ).all()
    assert labelled

    # A folder deleted as a whole: every file under it is missing; one moved in is walked.
    shutil.move(str(folder), str(tmp_path / "away"))
    index_changes(engine, root, [folder], predictor=predictor, options=FAST)
    gone = _rows(db_url)
    under = [k for k in gone if k.startswith(rel(folder) + "/")]
    assert under and all(gone[k][1] == "missing" for k in under)
    shutil.move(str(tmp_path / "away"), str(root / "back"))
    back = index_changes(engine, root, [root / "back"], predictor=predictor, options=FAST)
    assert back.outcomes["moved"] == len(under)
    final = _rows(db_url)
    assert all(final[f"back/{k.split('/')[-1]}"][1] == "ok" for k in under)


def test_an_index_inside_the_root_it_indexes_never_lists_itself(
    tmp_path: Path, tiny_run: Path
) -> None:
    root = build_archive(tmp_path / "a", ArchiveSpec(per_class=1, size=64, seed=3)).root
    url = f"sqlite:///{root / 'index.db'}"
    engine = open_index(url)
    predictor = Predictor.from_bundle(tiny_run / "bundle")
    for _ in range(2):  # the second run sees the database, its WAL and the keyframes folder
        run_index(engine, [root], predictor=predictor, options=FAST)
    (root / "index.keyframes" / "m").mkdir(parents=True, exist_ok=True)
    (root / "index.keyframes" / "m" / "x.jpg").write_bytes(b"\xff\xd8")
    index_changes(engine, root, [root / "index.db", root / "index.keyframes"], predictor=predictor)
    paths = set(_rows(url))
    assert paths and not any(p.startswith("index.") for p in paths)
