"""``landscape demo``: synthesise the demo dataset, audit it, train a head, evaluate it, then
build a small storage archive and index it with the new model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from landscape.errors import UserError

from ._options import SeedOption, out_option
from ._output import console, print_timeline, progress_bar


def demo(
    out: Annotated[Path, out_option("Where the demo data, run and report go.")] = Path("demo"),
    per_class: Annotated[
        int, typer.Option("--per-class", "-n", min=5, help="Synthetic images per class.")
    ] = 80,
    epochs: Annotated[int, typer.Option("--epochs", "-e", min=1, help="Head epochs.")] = 10,
    seed: SeedOption = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a run, report, archive and index left by an earlier demo."
        ),
    ] = False,
    no_index: Annotated[
        bool,
        typer.Option("--no-index", help="Stop after the evaluation: no demo archive, no index."),
    ] = False,
    no_serve: Annotated[
        bool,
        typer.Option("--no-serve", help="Stop after indexing: do not serve the web GUI."),
    ] = False,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="GUI port.")] = 8000,
) -> None:
    """Run the main job on the built-in default: synth → audit → train → evaluate → index.

    Trains a head on EfficientNet-Lite0 with its packaged ImageNet weights (no download), using
    the feature cache, evaluates it on the held-out test split and prints the test accuracy and
    the path of the HTML report. Then builds a small archive (photos with EXIF and GPS in dated
    campaign folders, a few broken files) in OUT/archive, indexes it with the new model into
    OUT/landscape.db and shows a search. An existing OUT/run is kept unless `--force`.
    """
    import shutil

    from landscape.config import load_train_config
    from landscape.data.audit import audit_dataset
    from landscape.data.synth import SynthSpec, generate_dataset
    from landscape.evaluation import evaluate_bundle
    from landscape.train.trainer import fit

    steps = 4 if no_index else 5
    run = out / "run"
    if run.exists() and not force:
        raise UserError(
            "holds the run of an earlier demo",
            path=run,
            fix="pass --force to replace it, or --out to use another folder",
        )
    data = out / "data"
    if not data.is_dir():
        console.print(f"[bold]1/{steps}[/] synthesising {per_class} images per class into {data}")
        generate_dataset(data, SynthSpec(per_class=per_class, seed=seed))
    else:
        console.print(f"[bold]1/{steps}[/] using the synthetic dataset in {data}")
    console.print(f"[bold]2/{steps}[/] auditing")
    found = audit_dataset(data).to_dict()
    console.print(
        f"    {found['images']} images, {len(found['classes'])} classes, "
        f"{found['findings']} findings"
    )
    if run.exists():
        shutil.rmtree(run)
    console.print(
        f"[bold]3/{steps}[/] training a head on efficientnet_lite0 "
        "(packaged weights, cached features)"
    )
    cfg = load_train_config(
        None,
        {
            "data": str(data),
            "out": str(run),
            "backbone": "efficientnet_lite0",
            "weights": "packaged",
            "policy": "frozen",
            "epochs": epochs,
            "seed": seed,
        },
    )
    result = fit(cfg)
    console.print(f"[bold]4/{steps}[/] evaluating on the held-out test split")
    report = evaluate_bundle(
        result.bundle,
        run / "split.csv",
        "test",
        run / "eval",
        latency=False,
        progress=lambda description, total: progress_bar(description, total),
    )
    console.print(
        f"[bold green]demo done[/]: test accuracy {report['accuracy']:.3f} "
        f"(val {result.metrics['val_acc']:.3f}) on {result.metrics['n_test']} held-out images, "
        f"trained in {result.metrics['train_seconds']:.0f}s.\n"
        f"report: {report['files']['report.html']}\n"
        f"bundle: {result.bundle}\n"
        f"try: landscape predict {result.bundle} {data}/coast --top 3",
        soft_wrap=True,
    )
    if not no_index:
        console.print(f"[bold]5/{steps}[/] building a demo archive and indexing it")
        _index_demo_archive(out, result.bundle, seed)
        if not no_serve:
            _serve_demo(out, port)


def _serve_demo(out: Path, port: int) -> None:
    """Serve the GUI over the demo index until Ctrl-C, with a fresh analyst login."""
    import secrets

    import uvicorn

    from landscape.api.settings import ServiceSettings
    from landscape.index.accounts import add_user, remove_user
    from landscape.index.db import open_index, session_factory
    from landscape.index.schema import User

    from ._serve import build_site

    url = f"sqlite:///{(out / 'landscape.db').resolve()}"
    password = secrets.token_urlsafe(12)
    with session_factory(open_index(url))() as session:
        if session.query(User).filter_by(name="analyst").first() is not None:
            remove_user(session, "analyst")
            session.flush()
        add_user(session, "analyst", "analyst", password)
        session.commit()
    settings = ServiceSettings(
        db=url,
        home=(out / "service").resolve(),
        roots=((out / "archive").resolve(),),
        port=port,
    )
    app = build_site(settings)
    console.print(
        f"[bold green]serving the GUI[/] at http://127.0.0.1:{port}/ — log in as "
        f"[bold]analyst[/] with password [bold]{password}[/] (shown once; Ctrl-C stops)",
        soft_wrap=True,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _index_demo_archive(out: Path, bundle: Path, seed: int) -> None:
    """Build OUT/archive afresh, index it into OUT/landscape.db, print the summary and a search."""
    import shutil

    from landscape.data.archive import ArchiveSpec, build_archive
    from landscape.index.db import open_index, session_factory
    from landscape.index.pipeline import run_index
    from landscape.index.repository import SearchFilters, search
    from landscape.inference.predictor import Predictor

    from ._index import summary_table

    archive, db = out / "archive", out / "landscape.db"
    if archive.exists():
        shutil.rmtree(archive)
    for stale in out.glob("landscape.db*"):  # the database and its WAL files
        stale.unlink()
    shutil.rmtree(out / "landscape.keyframes", ignore_errors=True)
    spec = ArchiveSpec(
        per_class=6, size=160, resolution=(1280, 720), grain=2, seed=seed, video=True
    )
    built = build_archive(archive, spec)
    url = f"sqlite:///{db}"
    console.print(
        f"    {len(built.photos)} photos, a survey video and {len(built.odd)} odd files in "
        f"{archive}"
    )
    summary = run_index(
        open_index(url),
        [archive],
        predictor=Predictor.from_bundle(bundle),
        progress=lambda description, total: progress_bar(description, total, unit="files"),
    )
    summary_table(summary)
    label = summary.labels.most_common(1)[0][0] if summary.labels else None
    with session_factory(open_index(url, create=False))() as session:
        hits = search(session, SearchFilters(label=label, limit=3))
    console.print(f"$ landscape search --db {url} --label {label} --limit 3", soft_wrap=True)
    for hit in hits:
        found = hit.to_dict()
        when_where = " · ".join(str(x) for x in (found["taken_at"], found["place"]) if x)
        console.print(
            f"  {found['path']}  [bold]{found['label']} {found['confidence']:.2f}[/]  {when_where}",
            soft_wrap=True,
        )
    if built.video is not None:
        _print_timeline(bundle, built.video.path)
        _print_video_search(url)
    console.print(
        f"[bold green]index done[/]: try `landscape search --db {url} --help`", soft_wrap=True
    )


def _print_video_search(url: str) -> None:
    """The index's side of the video: found by the label of a stretch other than its
    dominant one (when it has one), with the stretches that label covers."""
    from landscape.index.db import open_index, session_factory
    from landscape.index.repository import SearchFilters, search

    from ._index import segments_text

    with session_factory(open_index(url, create=False))() as session:
        videos = search(session, SearchFilters(media="video", limit=1))
        if not videos or not videos[0].segments:
            return
        labels = [s["label"] for s in videos[0].segments]
        label = next((x for x in labels if x != videos[0].label), labels[0])
        hits = search(session, SearchFilters(media="video", label=label, limit=3))
    console.print(f"$ landscape search --db {url} --media video --label {label}", soft_wrap=True)
    for hit in hits:
        console.print(f"  {hit.path}  (whole video: {hit.label})", soft_wrap=True)
        for segment in hit.segments or ():
            console.print(f"    {segments_text([segment])}", highlight=False)


def _print_timeline(bundle: Path, video: Path) -> None:
    """What `landscape predict` shows for the archive's video: its landscape timeline."""
    from landscape.inference.predictor import Predictor
    from landscape.inference.video import classify_video

    timeline = classify_video(Predictor.from_bundle(bundle), video)
    console.print(f"$ landscape predict {bundle} {video}", soft_wrap=True)
    print_timeline(video.name, timeline.to_dict(), indent="  ")
