"""``index``: walk → extract/decode in sandboxed workers → batched inference → batched writes.

The stages are joined lazily and bounded: the walker yields files one by one, at most a few
per worker are in flight (:class:`~landscape.index.sandbox.Sandbox`), and results are written
every ``batch_size`` files in one transaction — memory stays flat however large the archive.

Images go first, videos after them (told by their extension; a video named like an image is
found by its bytes and handled where it comes): a video takes seconds to minutes, and its
sampled frames wait on disk in the spill folder, so only a couple are read ahead, each with a
timeout scaled to its duration, and each is written as soon as it is classified — one
prediction row for the whole video and one per segment of its timeline
(:mod:`landscape.inference.video`), with a keyframe JPEG per segment
(:mod:`landscape.index.keyframes`).

Idempotent and incremental: a file whose size and mtime are unchanged is only marked seen (no
hashing, no decoding, no inference); a changed one is hashed and, when its content changed,
re-read and re-classified; a new path whose content matches a file that is no longer where it
was recorded is that file, moved; files not seen become ``missing``. Crash-safe: a kill -9
loses at most the batch in flight, which the next run redoes; the scan row records whether a
run finished, and the next run completes an unfinished one.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, or_, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from landscape.data.video_frames import Strategy, is_video_path
from landscape.errors import UserError

from .classify import ClassifySettings, classify_results
from .db import session_factory, write_error, writer_lock
from .keyframes import clear_stale_spills, keyframe_root, remove_keyframes, spill_dir
from .registry import register_bundle
from .sandbox import Outcome, Sandbox
from .scanner import FoundFile, RootError, WalkProblem, check_root, count_files, walk
from .schema import File, Prediction, Root, Scan, utcnow
from .vector_pg import sync_vectors
from .work import FileJob, FileResult, VideoSampling, init_worker, process_file
from .writer import (
    Classified,
    find_moved,
    mark_missing,
    replace_predictions,
    touch,
    upsert_media,
)

__all__ = ["ENGINES", "IndexOptions", "IndexSummary", "index_changes", "run_index"]

#: progress callback: ``advance(n)`` after files are done, ``advance(n, note="3 failed")`` to
#: show the errors so far (the total is given up front)
Advance = Callable[..., None]
ProgressFactory = Callable[[str, int], Any]

_LOOKUP_CHUNK = 256
# A video without a declared duration is timed as if it had this bit rate (bytes/s): low for
# footage, so its timeout is generous rather than short.
_FLOOR_BYTES_PER_SECOND = 125_000


@dataclass(frozen=True)
class IndexOptions:
    """How to run: workers, timeouts, batch size, and what to redo."""

    workers: int = 2
    timeout: float = 60.0
    memory_mb: int | None = 2048
    batch_size: int = 32
    reclassify: bool = False
    allow_empty: bool = False
    draft: bool = True
    #: video sampling step and shortest segment, seconds; how to reach the samples
    every: float = 1.0
    min_segment: float = 2.0
    video_strategy: Strategy = "seek"
    #: a video's timeout: ``timeout`` plus this many seconds per second of video
    video_timeout_factor: float = 2.0
    #: where keyframes go (None: beside a SQLite database, else the data dir)
    keyframe_dir: Path | None = None
    #: ``local`` (sandboxed worker processes here) or ``ray`` (a Ray Data job)
    engine: str = "local"
    #: the Ray cluster's head (None: a local Ray instance), classifier actors and GPUs each
    ray_address: str | None = None
    classifiers: int = 1
    gpus_per_classifier: float = 0.0


@dataclass
class IndexSummary:
    """What a run did, by outcome, media type and label (``landscape index``'s table)."""

    scan_id: int = 0
    model_id: str | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    media: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "scan_id": self.scan_id,
            "model_id": self.model_id,
            "outcomes": dict(self.outcomes),
            "media": dict(self.media),
            "labels": dict(self.labels),
            "problems": [{"path": p, "error": e} for p, e in self.problems[:200]],
        }


# --------------------------------------------------------------------------------------------
# Planning: what each found file needs


def _existing(session: Session, root_id: int, paths: Sequence[str]) -> dict[str, File]:
    rows = session.scalars(
        select(File).where(File.root_id == root_id, File.relative_path.in_(paths))
    ).all()
    return {row.relative_path: row for row in rows}


def _has_prediction(session: Session, file_ids: Sequence[int], model_id: str | None) -> set[int]:
    """Which of ``file_ids`` have a prediction by ``model_id`` (None: by any model)."""
    if not file_ids:
        return set()
    query = select(Prediction.file_id).where(Prediction.file_id.in_(file_ids))
    if model_id is not None:
        query = query.where(Prediction.model_id == model_id)
    return set(session.scalars(query.distinct()).all())


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class _Run:
    """The state of one run shared by its stages (model, options, roots, counts)."""

    model_id: str | None
    options: IndexOptions
    roots: dict[int, Path]
    summary: IndexSummary
    started: Any
    advance: Advance
    keyframes: Path = Path()
    #: the index's own files (a SQLite database and its companions) when they sit in a root
    own: frozenset[Path] = frozenset()

    def is_own(self, path: Path) -> bool:
        """Whether ``path`` belongs to the index itself (never indexed as media)."""
        return path in self.own or self.keyframes in path.parents


def _job(
    root: Path,
    root_id: int,
    found: FoundFile,
    row: File | None,
    *,
    classify: bool,
    force: bool = False,
    reclassify: bool = False,
) -> FileJob:
    return FileJob(
        path=str(root / found.relative_path),
        relative_path=found.relative_path,
        root_id=root_id,
        size=found.size,
        mtime_ns=found.mtime_ns,
        file_id=row.id if row is not None else None,
        known_hash=row.content_hash if row is not None else None,
        classify=classify,
        force=force or reclassify,
        reclassify=reclassify,
    )


def _plan(run: _Run, root_id: int, root: Path, session: Session) -> Iterator[FileJob]:
    """Jobs for new/changed files; unchanged ones are marked seen right here, in batches."""
    yield from _plan_found(run, root_id, root, walk(root), session)


def _plan_found(
    run: _Run,
    root_id: int,
    root: Path,
    found: Iterable[FoundFile | WalkProblem],
    session: Session,
) -> Iterator[FileJob]:
    """:func:`_plan` for any files found under ``root`` (a walk, or a watcher's batch)."""
    for chunk in _chunks(found, _LOOKUP_CHUNK):
        problems = [p for p in chunk if isinstance(p, WalkProblem)]
        for problem in problems:
            run.summary.outcomes["failed"] += 1
            run.summary.problems.append((problem.relative_path, problem.error))
        files: list[FoundFile] = [
            f for f in chunk if isinstance(f, FoundFile) and not run.is_own(root / f.relative_path)
        ]
        known = _existing(session, root_id, [f.relative_path for f in files])
        unchanged: list[File] = []
        jobs: list[FileJob] = []
        for item in files:
            row = known.get(item.relative_path)
            same = (
                row is not None
                and row.status != "missing"
                and row.size == item.size
                and row.mtime_ns == item.mtime_ns
            )
            if same and row is not None:
                unchanged.append(row)
                continue
            jobs.append(
                _job(
                    root,
                    root_id,
                    item,
                    row,
                    classify=run.model_id is not None,
                    force=row is not None and row.status == "missing",
                )
            )
        redo = _needs_inference(run, session, unchanged)
        touch(session, [r.id for r in unchanged if r.id not in redo], run.started)
        session.commit()
        for row in unchanged:
            if row.id in redo:
                as_found = FoundFile(row.relative_path, row.size, row.mtime_ns)
                jobs.append(_job(root, root_id, as_found, row, classify=True, reclassify=True))
            else:
                run.summary.outcomes["unchanged"] += 1
                run.summary.media[row.media_type] += 1
                run.advance(1)
        yield from jobs


def _needs_inference(run: _Run, session: Session, rows: Sequence[File]) -> set[int]:
    """Unchanged images and videos to (re)classify: all with --reclassify, else those the model
    lacks. A video that broke part-way has status ``error`` and a partial timeline: it counts
    when some model could classify it (one that never decoded is not retried every run)."""
    if run.model_id is None:
        return set()
    media = [r.id for r in rows if r.media_type in ("image", "video") and r.status == "ok"]
    broken = [r.id for r in rows if r.media_type == "video" and r.status == "error"]
    media += sorted(_has_prediction(session, broken, None))
    if run.options.reclassify:
        return set(media)
    return set(media) - _has_prediction(session, media, run.model_id)


# --------------------------------------------------------------------------------------------
# Writing: one transaction per batch of results


def _places(results: Sequence[FileResult]) -> dict[int, Any]:
    points = [
        (i, (r.facts["latitude"], r.facts["longitude"]))
        for i, r in enumerate(results)
        if r.facts and r.facts.get("latitude") is not None and r.facts.get("longitude") is not None
    ]
    if not points:
        return {}
    from .places import reverse_geocode

    return dict(zip([i for i, _ in points], reverse_geocode([p for _, p in points]), strict=True))


def _file_row(session: Session, result: FileResult, moved: dict[str, File]) -> tuple[File, str]:
    """The row a result updates or creates, and the outcome (new, changed, moved); ``moved``
    (hash → a known file no longer at its path) is consumed, so two copies are not one file."""
    job = result.job
    if job.file_id is not None:
        row = session.get(File, job.file_id)
        if row is not None:
            return row, "changed"
    if result.content_hash is not None and (row := moved.pop(result.content_hash, None)):
        row.root_id, row.relative_path = job.root_id, job.relative_path
        return row, "moved"
    row = File(
        root_id=job.root_id, relative_path=job.relative_path, size=job.size, mtime_ns=job.mtime_ns
    )
    session.add(row)
    return row, "new"


def _taken_at(facts: dict[str, Any] | None, mtime_ns: int) -> datetime:
    """What a file sorts by: its capture time, else its modification time (UTC, naive)."""
    captured = (facts or {}).get("captured_at")
    if isinstance(captured, datetime):
        return captured
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC).replace(tzinfo=None)


def _write(
    run: _Run,
    session: Session,
    items: Sequence[tuple[FileJob, Outcome[FileResult]]],
    predictor: Any,
) -> None:
    """Classify a batch of outcomes in this process, then store it (:func:`_store`)."""
    results, failures = split_outcomes(items)
    try:
        classified = (
            classify_results(predictor, results, classify_settings(run.options, run.keyframes))
            if predictor is not None
            else {}
        )
    finally:
        for result in results:
            if result.frames is not None:
                result.frames.discard()
    _store(run, session, results, failures, classified)


def split_outcomes(
    items: Sequence[tuple[FileJob, Outcome[FileResult]]],
) -> tuple[list[FileResult], list[tuple[FileJob, Outcome[FileResult]]]]:
    """The results of the files a worker finished, and the jobs it failed (hung, crashed)."""
    results: list[FileResult] = []
    failures: list[tuple[FileJob, Outcome[FileResult]]] = []
    for job, done in items:
        if done.ok and done.value is not None:
            results.append(done.value)
        else:
            failures.append((job, done))
    return results, failures


def classify_settings(options: IndexOptions, keyframes: Path) -> ClassifySettings:
    """What :func:`~.classify.classify_results` needs of a run's options."""
    return ClassifySettings(options.batch_size, options.every, options.min_segment, keyframes)


def _store(
    run: _Run,
    session: Session,
    results: Sequence[FileResult],
    failures: Sequence[tuple[FileJob, Outcome[FileResult]]],
    classified: dict[int, list[Classified]],
) -> None:
    """One batch in one transaction: file rows, then metadata and predictions in bulk;
    ``classified`` holds the rows to store per index into ``results``."""
    places = _places(results)
    moved = find_moved(
        session,
        [r.content_hash for r in results if r.job.file_id is None and r.content_hash],
        run.roots,
    )
    now = utcnow()
    written: list[tuple[int, File]] = []
    for i, result in enumerate(results):
        job = result.job
        if result.vanished:
            if job.file_id is not None and (row := session.get(File, job.file_id)) is not None:
                row.status = "missing"
            run.summary.outcomes["missing"] += 1
            continue
        row, outcome = _file_row(session, result, moved)
        if result.same_content and job.file_id is not None:
            outcome = "unchanged"
        elif job.reclassify and result.content_hash == job.known_hash:
            outcome = "reclassified"
        row.size, row.mtime_ns, row.last_seen_at = job.size, job.mtime_ns, now
        row.content_hash = result.content_hash
        row.media_type, row.mime = result.media_type, result.mime
        row.status, row.error = ("error", result.error) if result.error else ("ok", None)
        if not result.same_content:
            row.indexed_at = now
            row.taken_at = _taken_at(result.facts, job.mtime_ns)
            row.phash = result.phash
        elif row.taken_at is None:
            row.taken_at = _taken_at(None, job.mtime_ns)
        written.append((i, row))
        if i in classified:
            run.summary.labels[classified[i][0].label] += 1
        run.summary.outcomes["failed" if result.error else outcome] += 1
        run.summary.media[result.media_type] += 1
        if result.error:
            run.summary.problems.append((job.relative_path, result.error))
    session.flush()  # one flush gives every new row its id
    upsert_media(
        session,
        [
            (row.id, facts, places.get(i))
            for i, row in written
            if (facts := results[i].facts) is not None
        ],
    )
    unused: set[str] = set()
    if run.model_id is not None:
        unused = replace_predictions(
            session,
            run.model_id,
            [(row.id, item) for i, row in written if i in classified for item in classified[i]],
        )
    for job, failed in failures:
        _quarantine(session, job, failed, now)
        run.summary.outcomes["failed"] += 1
        run.summary.problems.append((job.relative_path, f"{failed.kind}: {failed.error}"))
    session.commit()
    remove_keyframes(run.keyframes, unused)  # after the commit: a kill keeps what rows name
    so_far = run.summary.outcomes["failed"]
    run.advance(len(results) + len(failures), note=f"{so_far} failed" if so_far else None)


def _quarantine(session: Session, job: FileJob, outcome: Outcome[Any], now: Any) -> None:
    """A file whose worker hung, crashed or ran out of memory: kept, with the reason."""
    row = session.get(File, job.file_id) if job.file_id is not None else None
    if row is None:
        row = File(
            root_id=job.root_id,
            relative_path=job.relative_path,
            size=job.size,
            mtime_ns=job.mtime_ns,
        )
        session.add(row)
    row.size, row.mtime_ns, row.last_seen_at = job.size, job.mtime_ns, now
    row.taken_at = row.taken_at or _taken_at(None, job.mtime_ns)
    row.status = "quarantined"
    row.error = f"{outcome.kind}: {outcome.error}"[:500]


# --------------------------------------------------------------------------------------------
# The run


def _guard_roots(session: Session, roots: dict[int, Path], allow_empty: bool) -> None:
    """Refuse a root that is empty while the index knows files under it (unmounted share)."""
    for root_id, path in roots.items():
        known = session.scalar(
            select(func.count(File.id)).where(File.root_id == root_id, File.status != "missing")
        )
        if known and not allow_empty and not any(os.scandir(path)):
            raise RootError(
                f"is empty but the index has {known} files under it (an unmounted share?)",
                path=path,
                fix="mount it, or pass --allow-empty to mark them missing",
            )


def _open_scan(session: Session, roots: Sequence[Path], model_id: str | None) -> Scan:
    """Continue the unfinished scan of these roots (a killed run), or start one."""
    wanted = sorted(str(r) for r in roots)
    for scan in session.scalars(select(Scan).where(Scan.state == "running")):
        if sorted(scan.roots) == wanted:
            scan.model_id = model_id
            return scan
    scan = Scan(roots=wanted, model_id=model_id, state="running", counts={})
    session.add(scan)
    session.flush()
    return scan


def _root_ids(session: Session, roots: Sequence[Path]) -> dict[int, Path]:
    ids: dict[int, Path] = {}
    for path in roots:
        row = session.scalar(select(Root).where(Root.path == str(path)))
        if row is None:
            row = Root(path=str(path))
            session.add(row)
            session.flush()
        ids[row.id] = path
    return ids


def run_index(
    engine: Engine,
    roots: Sequence[Path],
    *,
    predictor: Any = None,
    options: IndexOptions | None = None,
    progress: ProgressFactory | None = None,
) -> IndexSummary:
    """Index ``roots`` into ``engine``'s database with ``predictor`` (``None``: metadata only).

    Holds the writer lock for the whole run; raises :class:`RootError` for a missing root or
    one that looks unmounted (see ``allow_empty``), :class:`~.db.DatabaseError` when the
    database cannot be written (disk full, no permission: the batches committed before stay).
    Bad files never stop the run: they are recorded (``error``, ``quarantined``) and listed in
    the summary.
    """
    with _write_errors(engine):
        return _run_index(engine, roots, predictor, options or IndexOptions(), progress)


@contextmanager
def _write_errors(engine: Engine) -> Iterator[None]:
    """A full disk, a read-only file system or a database that refuses the write, as the
    one-line :class:`~.db.DatabaseError` (what was committed before stays)."""
    try:
        yield
    except (OperationalError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOSPC, errno.EFBIG, errno.EROFS):
            raise
        raise write_error(str(engine.url), exc) from exc


def _run_index(
    engine: Engine,
    roots: Sequence[Path],
    predictor: Any,
    options: IndexOptions,
    progress: ProgressFactory | None,
) -> IndexSummary:
    resolved = [check_root(r) for r in roots]
    model_id = predictor.model_id if predictor is not None else None
    summary = IndexSummary(model_id=model_id)
    Session_ = session_factory(engine)
    with writer_lock(engine), Session_() as session:
        if predictor is not None:
            register_bundle(session, predictor.bundle)
        roots_by_id = _root_ids(session, resolved)
        _guard_roots(session, roots_by_id, options.allow_empty)
        scan = _open_scan(session, resolved, model_id)
        session.commit()
        summary.scan_id = scan.id
        total = sum(count_files(p) for p in resolved)
        bar = progress("indexing", total) if progress is not None else nullcontext(_ignore)
        keyframes = (options.keyframe_dir or keyframe_root(engine.url)).resolve()
        clear_stale_spills(keyframes)  # a killed run's sampled frames (we hold the lock)
        with bar as advance:
            run = _Run(
                model_id, options, roots_by_id, summary, utcnow(), advance, keyframes, _own(engine)
            )
            jobs = chain.from_iterable(
                _plan(run, root_id, path, session) for root_id, path in roots_by_id.items()
            )
            with _spill(keyframes, predictor) as spill:
                _read_and_write(run, session, jobs, predictor, spill)
            for root_id in roots_by_id:
                summary.outcomes["missing"] += mark_missing(session, root_id, run.started)
                root = session.get(Root, root_id)
                if root is not None:
                    root.last_scan_at = utcnow()
                    root.file_count = int(
                        session.scalar(
                            select(func.count(File.id)).where(
                                File.root_id == root_id, File.status != "missing"
                            )
                        )
                        or 0
                    )
            scan.state, scan.finished_at = "finished", utcnow()
            scan.counts = summary.to_dict()
            session.commit()
            if engine.dialect.name == "sqlite":
                # Statistics for the planner where they are stale (SQLite's own advice after
                # large changes); PostgreSQL's autovacuum does this by itself.
                session.execute(text("PRAGMA optimize"))
            else:
                sync_vectors(session)  # pgvector's index, where the database has the extension
    return summary


def _read_and_write(
    run: _Run,
    session: Session,
    jobs: Iterator[FileJob],
    predictor: Any,
    spill: Path | None,
) -> None:
    """Read, classify and store ``jobs`` with the run's engine."""
    try:
        engine = _ENGINES[run.options.engine]
    except KeyError:
        raise UserError(
            f"unknown engine {run.options.engine!r}", fix=f"use one of: {', '.join(_ENGINES)}"
        ) from None
    engine(run, session, jobs, predictor, spill)


def _sampling(options: IndexOptions, spill: Path | None) -> VideoSampling | None:
    if spill is None:
        return None
    return VideoSampling(str(spill), every=options.every, strategy=options.video_strategy)


class _ImagesFirst:
    """Pass the jobs of images through and keep those of videos (told by their name; a worker
    decides by the bytes) for after them: a video takes far longer than a photo."""

    def __init__(self) -> None:
        self.videos: list[FileJob] = []

    def __call__(self, jobs: Iterator[FileJob]) -> Iterator[FileJob]:
        for job in jobs:
            if is_video_path(job.relative_path):
                self.videos.append(job)
            else:
                yield job


def _read_locally(
    run: _Run,
    session: Session,
    jobs: Iterator[FileJob],
    predictor: Any,
    spill: Path | None,
) -> None:
    """Images through the sandbox in batches, then the videos their extension told apart."""
    options = run.options
    preprocessing = predictor.bundle.preprocessing.model_dump() if predictor else None
    sampling = _sampling(options, spill)
    images_first = _ImagesFirst()
    videos = images_first.videos

    with Sandbox(
        options.workers,
        timeout=options.timeout,
        memory_mb=options.memory_mb,
        initializer=init_worker,
        initargs=(preprocessing, options.draft, sampling),
        # A replaced worker (after a timeout, a crash, or every 500 files) then starts in
        # milliseconds; workers never import torch (see landscape.index.work).
        preload=("numpy", "PIL.Image", "landscape.index.work"),
        prestart=False,  # a re-run with nothing to read starts no worker
    ) as sandbox:
        # Read ahead so the workers keep decoding while this thread runs the network and
        # writes a batch; the window bounds the decoded images held in memory.
        window = 4 * max(options.batch_size, options.workers)
        outcomes = sandbox.map_ahead(process_file, _warming(images_first(jobs)), window=window)
        for batch in _chunks(outcomes, options.batch_size):
            _write(run, session, batch, predictor)
        # Videos: the least read-ahead the sandbox allows (their frames wait on disk), and
        # each written as soon as a worker is done with it.
        outcomes = sandbox.map_ahead(
            process_file,
            iter(videos),
            window=1,
            timeout_for=lambda job: _video_timeout(job, options),
        )
        for batch in _chunks(outcomes, 1):
            _write(run, session, batch, predictor)


def _read_with_ray(
    run: _Run,
    session: Session,
    jobs: Iterator[FileJob],
    predictor: Any,
    spill: Path | None,
) -> None:
    """The same reading, classifying and storing as a Ray Data job (:mod:`.ray_engine`); this
    process plans and writes, in the order of the jobs."""
    from .ray_engine import RayJob, Written, connect, run_on_ray

    options = run.options
    job = RayJob(
        preprocessing=predictor.bundle.preprocessing.model_dump() if predictor else None,
        draft=options.draft,
        sampling=_sampling(options, spill),
        timeout=options.timeout,
        memory_mb=options.memory_mb,
        video_timeout=partial(_video_timeout, options=options),
        bundle=str(predictor.bundle.path) if predictor is not None else None,
        backend=predictor.backend_name if predictor is not None else "torch",
        classify=classify_settings(options, run.keyframes) if predictor is not None else None,
        extract_actors=options.workers,
        classifiers=options.classifiers,
        gpus_per_classifier=options.gpus_per_classifier,
        batch_size=options.batch_size,
    )

    def write(items: Sequence[Written]) -> None:
        results: list[FileResult] = []
        failures: list[tuple[FileJob, Outcome[FileResult]]] = []
        classified: dict[int, list[Classified]] = {}
        for file_job, outcome, rows in items:
            if outcome.ok and outcome.value is not None:
                if rows is not None:
                    classified[len(results)] = rows
                results.append(outcome.value)
            else:
                failures.append((file_job, outcome))
        _store(run, session, results, failures, classified)

    images_first = _ImagesFirst()
    with connect(options.ray_address) as ray:
        run_on_ray(ray, job, _warming(images_first(jobs)), write)
        run_on_ray(ray, replace(job, batch_size=1), images_first.videos, write, extract_batch=1)


_ENGINES: dict[str, Callable[[_Run, Session, Iterator[FileJob], Any, Path | None], None]] = {
    "local": _read_locally,
    "ray": _read_with_ray,
}

#: the engines ``landscape index --engine`` accepts
ENGINES = tuple(_ENGINES)


@contextmanager
def _spill(keyframes: Path, predictor: Any) -> Iterator[Path | None]:
    """This run's spill folder for sampled video frames (none without a model), removed after."""
    if predictor is None:
        yield None
        return
    spill = spill_dir(keyframes)
    try:
        yield spill
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _video_timeout(job: FileJob, options: IndexOptions) -> float:
    """``timeout`` plus ``video_timeout_factor`` seconds per second of video, its duration read
    from the header without FFmpeg (else guessed from the size at a low bit rate)."""
    from .extract_video import probe_duration

    seconds = probe_duration(job.path)
    if seconds is None:
        seconds = job.size / _FLOOR_BYTES_PER_SECOND
    return options.timeout + options.video_timeout_factor * seconds


def index_changes(
    engine: Engine,
    root: Path,
    changed: Sequence[Path],
    *,
    predictor: Any = None,
    options: IndexOptions | None = None,
) -> IndexSummary:
    """Bring the index up to date for the ``changed`` paths under ``root``: what a watcher
    calls with a batch of settled events.

    A regular file is read as a scan would (only when its size or mtime changed; a new path
    whose content matches a file gone from its recorded path is that file, moved); a folder is
    walked (one moved in); a path that no longer exists marks its file, or every file under it,
    ``missing``. Nothing else is touched: no walk of the whole root, no scan row (``scan_id``
    is 0). Holds the writer lock for this batch only, so a long-running watcher lets other
    writers in between batches.
    """
    options = options or IndexOptions()
    root = check_root(root)
    model_id = predictor.model_id if predictor is not None else None
    summary = IndexSummary(model_id=model_id)
    with _write_errors(engine), writer_lock(engine), session_factory(engine)() as session:
        if predictor is not None:
            register_bundle(session, predictor.bundle)
        roots_by_id = _root_ids(session, [root])
        session.commit()
        root_id = next(iter(roots_by_id))
        keyframes = (options.keyframe_dir or keyframe_root(engine.url)).resolve()
        run = _Run(
            model_id, options, roots_by_id, summary, utcnow(), _ignore, keyframes, _own(engine)
        )
        found, gone = _changed(root, changed)
        summary.outcomes["missing"] += _mark_gone(session, root_id, root, gone)
        session.commit()
        with _spill(keyframes, predictor) as spill:
            jobs = _plan_found(run, root_id, root, found, session)
            _read_and_write(run, session, jobs, predictor, spill)
        sync_vectors(session)
    return summary


def _own(engine: Engine) -> frozenset[Path]:
    """A SQLite index's files: the database, its journal/WAL/shared-memory and lock files."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return frozenset()
    path = Path(database).expanduser().resolve()
    suffixes = ("", "-wal", "-shm", "-journal", ".writer.lock")
    return frozenset(path.with_name(path.name + suffix) for suffix in suffixes)


def _changed(root: Path, changed: Sequence[Path]) -> tuple[list[FoundFile | WalkProblem], set[str]]:
    """What the changed paths are now: files (and the files of folders) to plan, and the
    relative paths that are gone. Paths outside ``root`` and symbolic links are ignored, as a
    walk ignores them."""
    found: dict[str, FoundFile | WalkProblem] = {}
    gone: set[str] = set()
    for path in changed:
        absolute = Path(os.path.abspath(path))
        try:
            relative = absolute.relative_to(root).as_posix()
        except ValueError:
            continue
        if relative in (".", ""):
            continue
        try:
            info = absolute.lstat()
        except FileNotFoundError:
            gone.add(relative)
            continue
        except OSError as exc:
            found[relative] = WalkProblem(relative, f"cannot stat: {exc.strerror}")
            continue
        if stat.S_ISREG(info.st_mode):
            found[relative] = FoundFile(relative, info.st_size, info.st_mtime_ns)
        elif stat.S_ISDIR(info.st_mode):
            for item in walk(absolute):
                inner = item.relative_path
                nested = relative if inner in (".", "") else f"{relative}/{inner}"
                found[nested] = (
                    FoundFile(nested, item.size, item.mtime_ns)
                    if isinstance(item, FoundFile)
                    else WalkProblem(nested, item.error)
                )
    return [found[key] for key in sorted(found)], gone


def _mark_gone(session: Session, root_id: int, root: Path, gone: set[str]) -> int:
    """Files at (or under) paths that no longer exist become ``missing``."""
    marked = 0
    for relative in sorted(gone):
        rows = session.scalars(
            select(File).where(
                File.root_id == root_id,
                File.status != "missing",
                or_(
                    File.relative_path == relative,
                    File.relative_path.startswith(relative + "/", autoescape=True),
                ),
            )
        ).all()
        for row in rows:
            if not os.path.lexists(root / row.relative_path):
                row.status = "missing"
                marked += 1
    return marked


def _warming(jobs: Iterator[FileJob]) -> Iterator[FileJob]:
    """Pass ``jobs`` through; once there is one, build the places tree in the background (a
    re-run with nothing to do never pays for it)."""
    for i, job in enumerate(jobs):
        if i == 0:
            from .places import warm_up

            warm_up()
        yield job


def _ignore(n: int = 1, note: str | None = None) -> None:
    return None
