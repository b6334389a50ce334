"""``landscape index`` and ``landscape search``: build and query the metadata index."""

from __future__ import annotations

import csv
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from landscape.errors import UserError

from ._options import (
    AllowEmptyOption,
    BackendOption,
    DbOption,
    EveryOption,
    FileTimeoutOption,
    IndexModelOption,
    JsonOption,
    MinSegmentOption,
    NoProgressOption,
    WorkersOption,
)
from ._output import console, print_json, progress_bar

__all__ = ["index", "search", "segments_text", "summary_table"]


def _predictor(session: Any, model: Path | None, backend: str) -> Any:
    """The Predictor of ``--model``, else of the active model, else of ``LANDSCAPE_MODEL``;
    ``None`` when there is none (metadata only). The index registers it (active if first)."""
    from landscape.index.registry import active_model
    from landscape.inference.predictor import Predictor
    from landscape.settings import get_settings

    path = model
    if path is None:
        row = active_model(session)
        path = Path(row.bundle_path) if row is not None else get_settings().model
    return Predictor.from_bundle(path, backend=backend) if path is not None else None


def summary_table(summary: Any) -> None:
    """Print an index run's summary: outcomes, model, media, labels, the first problems."""
    from rich.table import Table

    table = Table(title=f"scan {summary.scan_id}")
    table.add_column("outcome")
    table.add_column("files", justify="right")
    for key in ("new", "changed", "unchanged", "moved", "missing", "reclassified", "failed"):
        table.add_row(key, str(summary.outcomes.get(key, 0)))
    console.print(table)
    console.print(f"model: {summary.model_id or '(none: metadata only)'}")
    if summary.media:
        media = ", ".join(f"{k} {v}" for k, v in sorted(summary.media.items()))
        console.print(f"media: {media}")
    if summary.labels:
        labels = ", ".join(f"{k} {v}" for k, v in summary.labels.most_common())
        console.print(f"labels (this run): {labels}")
    for path, error in summary.problems[:10]:
        console.print(f"[yellow]problem[/] {path}: {error}", soft_wrap=True)
    if len(summary.problems) > 10:
        console.print(
            f"… and {len(summary.problems) - 10} more (see `landscape search --status error`)"
        )


def index(
    roots: Annotated[list[Path], typer.Argument(help="Storage folders to index.")],
    db: DbOption = None,
    model: IndexModelOption = None,
    backend: BackendOption = "torch",
    workers: WorkersOption = 2,
    timeout: FileTimeoutOption = 60.0,
    reclassify: Annotated[
        bool, typer.Option("--reclassify", help="Re-run inference on unchanged files too.")
    ] = False,
    every: EveryOption = 1.0,
    min_segment: MinSegmentOption = 2.0,
    allow_empty: AllowEmptyOption = False,
    engine_name: Annotated[
        Literal["local", "ray"],
        typer.Option(
            "--engine",
            help="local: sandboxed worker processes on this machine; ray: a Ray Data job "
            "(needs the ray extra), on a local Ray instance or the cluster at --address.",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray head to run on (HOST:6379, ray://HOST:10001 or auto); default: a "
            "running `ray start` cluster, else a local instance.",
        ),
    ] = None,
    classifiers: Annotated[
        int,
        typer.Option("--classifiers", min=1, help="Ray: model actors (each loads the model once)."),
    ] = 1,
    gpus: Annotated[
        float,
        typer.Option(
            "--gpus-per-classifier", min=0, help="Ray: GPUs per model actor (0: on the CPU)."
        ),
    ] = 0.0,
    no_progress: NoProgressOption = False,
    as_json: JsonOption = False,
) -> None:
    """Scan storage roots: record every file, read image and video metadata (EXIF, GPS, place,
    codecs), classify images and give videos a timeline of landscape segments (keyframes beside
    the database); re-runs touch only what changed. Bad files are recorded, never fatal.

    Examples:

    `landscape index /mnt/archive --model runs/demo/bundle`

    `landscape index /mnt/archive --db postgresql+psycopg://me@db:5432/archive --backend onnx`

    `landscape index /mnt/archive --db postgresql+psycopg://me@db/archive --engine ray
    --address 10.0.0.5:6379 --workers 32 --classifiers 4 --gpus-per-classifier 1`
    """
    from landscape.index.db import open_index, session_factory
    from landscape.index.pipeline import IndexOptions, run_index

    engine = open_index(db)
    with session_factory(engine)() as session:
        predictor = _predictor(session, model, backend)
    options = IndexOptions(
        workers=workers,
        timeout=timeout,
        reclassify=reclassify,
        allow_empty=allow_empty,
        every=every,
        min_segment=min_segment,
        engine=engine_name,
        ray_address=address,
        classifiers=classifiers,
        gpus_per_classifier=gpus,
    )
    if engine_name == "local" and (address is not None or gpus > 0 or classifiers != 1):
        raise UserError(
            "--address, --classifiers and --gpus-per-classifier are options of the Ray engine",
            fix="add --engine ray, or leave them out",
        )
    quiet = as_json or no_progress
    summary = run_index(
        engine,
        roots,
        predictor=predictor,
        options=options,
        progress=lambda description, total: progress_bar(
            description, total, enabled=not quiet, unit="files"
        ),
    )
    if as_json:
        print_json(summary.to_dict())
    else:
        summary_table(summary)


def _near(value: str | None) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        lat, lon, km = (float(x) for x in value.split(","))
    except ValueError as exc:
        raise typer.BadParameter("use LAT,LON,KM, e.g. 48.85,2.35,10", param_hint="--near") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and km > 0):
        raise typer.BadParameter("latitude −90…90, longitude −180…180, KM > 0", param_hint="--near")
    return lat, lon, km


def search(
    db: DbOption = None,
    label: Annotated[str | None, typer.Option("--label", "-l", help="Landscape label.")] = None,
    min_confidence: Annotated[
        float | None, typer.Option("--min-confidence", min=0, max=1, help="Least confidence.")
    ] = None,
    unknown: Annotated[
        bool,
        typer.Option("--unknown", help="Only files (or video segments) the model called unknown."),
    ] = False,
    taken_after: Annotated[
        str | None, typer.Option("--taken-after", help="Captured on or after (YYYY-MM-DD).")
    ] = None,
    taken_before: Annotated[
        str | None, typer.Option("--taken-before", help="Captured on or before (YYYY-MM-DD).")
    ] = None,
    near: Annotated[
        str | None, typer.Option("--near", help="LAT,LON,KM: within KM kilometres of a point.")
    ] = None,
    place: Annotated[
        str | None, typer.Option("--place", help="Text in the city, region or country.")
    ] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="Text in make or model.")] = None,
    media: Annotated[
        Literal["image", "video", "other"] | None, typer.Option("--media", help="Media type.")
    ] = None,
    status: Annotated[
        Literal["ok", "error", "missing", "quarantined"] | None,
        typer.Option("--status", help="File status."),
    ] = None,
    path_contains: Annotated[
        str | None, typer.Option("--path-contains", help="Text in the path.")
    ] = None,
    model_id: Annotated[
        str | None,
        typer.Option("--model", "--model-id", help="Labels of this model (default: active)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most results.")] = 100,
    like: Annotated[
        str | None,
        typer.Option(
            "--like",
            help="More like this: the files most similar to FILE (a path under an indexed "
            "root) or index ID, by their embeddings; combines with the other filters.",
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="With --like: how many files.")] = 20,
    duplicates: Annotated[
        bool,
        typer.Option(
            "--duplicates",
            help="List groups of duplicates instead: exact copies (same bytes) and near-"
            "duplicates (same picture: resized, re-encoded; perceptual hash).",
        ),
    ] = False,
    exact: Annotated[
        bool, typer.Option("--exact", help="With --duplicates: exact copies only.")
    ] = False,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Find indexed files by landscape label, confidence, date, place, GPS, camera or path.

    Examples:

    `landscape search --label forest --min-confidence 0.8 --taken-after 2024-01-01`

    `landscape search --near 48.85,2.35,25 --media image --json`

    `landscape search --media video --label forest` (videos with a forest stretch, and when)

    `landscape search --like /mnt/archive/2024/coast_0042.jpg -k 10 --media video`

    `landscape search --duplicates` (copies to review before deleting anything)
    """
    from landscape.index.db import open_index, session_factory
    from landscape.index.repository import SearchFilters
    from landscape.index.repository import search as run_search

    def day(value: str | None, flag: str) -> date | None:
        try:
            return date.fromisoformat(value) if value else None
        except ValueError as exc:
            raise typer.BadParameter(f"{value!r} is not YYYY-MM-DD", param_hint=flag) from exc

    filters = SearchFilters(
        label=label,
        min_confidence=min_confidence,
        unknown=True if unknown else None,
        taken_after=day(taken_after, "--taken-after"),
        taken_before=day(taken_before, "--taken-before"),
        near=_near(near),
        place=place,
        camera=camera,
        media=media,
        status=status,
        path_contains=path_contains,
        model_id=model_id,
        limit=limit,
    )
    if as_json and as_csv:
        raise UserError("choose one of --json and --csv")
    if exact and not duplicates:
        raise UserError("--exact goes with --duplicates")
    engine = open_index(db, create=False)
    if duplicates:
        if filters != SearchFilters(limit=limit) or as_csv or like is not None:
            raise UserError("--duplicates takes no filters and no --csv; use --json")
        with session_factory(engine)() as session:
            _print_duplicates(session, exact_only=exact, as_json=as_json)
        return
    with session_factory(engine)() as session:
        if like is not None:
            from dataclasses import replace

            from landscape.index.similarity import search_like
            from landscape.settings import get_settings

            cache = get_settings().cache_dir / "vectors"
            found = search_like(session, like, replace(filters, limit=k), cache)
            hits = [h.to_dict() for h in found]
        else:
            hits = [h.to_dict() for h in run_search(session, filters)]
    if as_json:
        print_json(hits)
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(hits[0]) if hits else ["path"])
        writer.writeheader()
        writer.writerows({**hit, "segments": segments_text(hit["segments"])} for hit in hits)
    else:
        for hit in hits:
            label_text = (
                f"{hit['label']} {hit['confidence']:.2f}" if hit["label"] is not None else "—"
            )
            extra = " · ".join(str(x) for x in (hit["taken_at"], hit["place"]) if x)
            score = f"similarity {hit['score']:.3f}  " if hit["score"] is not None else ""
            console.print(f"{hit['path']}  {score}[bold]{label_text}[/]  {extra}", soft_wrap=True)
            for segment in hit["segments"] or ():
                console.print(f"    {segments_text([segment])}", highlight=False)
        console.print(f"[dim]{len(hits)} file(s)[/]")


def _print_duplicates(session: Any, *, exact_only: bool, as_json: bool) -> None:
    from landscape.index.duplicates import find_duplicates

    groups = find_duplicates(session, exact_only=exact_only)
    if as_json:
        print_json([g.to_dict() for g in groups])
        return
    for group in groups:
        console.print(
            f"[bold]{group.kind}[/] · {len(group.files)} files · "
            f"{group.reclaimable / 2**20:.1f} MiB to reclaim",
            highlight=False,
        )
        for member in group.files:
            console.print(f"    {member.path}  ({member.size:,} bytes)", soft_wrap=True)
    reclaim = sum(g.reclaimable for g in groups) / 2**20
    console.print(f"[dim]{len(groups)} group(s), {reclaim:.1f} MiB reclaimable[/]")


def segments_text(segments: Any) -> str:
    """A video hit's segments as ``00:04–00:09 forest 0.91; …`` (empty for other files)."""
    from landscape.data.video_frames import format_time

    return "; ".join(
        f"{format_time(s['start'])}–{format_time(s['end'])} {s['label']} {s['confidence']:.2f}"
        for s in segments or ()
    )
