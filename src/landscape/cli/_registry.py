"""``landscape registry``: the index's models (list, add, activate, promote, reclassify, rollback,
remove)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._options import DbOption, JsonOption, NoProgressOption
from ._output import console, print_json, progress_bar

app = typer.Typer(
    help="Models the index knows: register bundles, activate, promote, roll back, remove.",
    no_args_is_help=True,
)

ModelIdArgument = Annotated[str, typer.Argument(help="Model id (see `landscape registry list`).")]


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List registered models: active, metrics, training data fingerprint, predictions."""
    from rich.table import Table

    from landscape.index.db import open_index, session_factory
    from landscape.index.registry import list_models

    with session_factory(open_index(db))() as session:
        models = list_models(session)
    if as_json:
        print_json(models)
        return
    if not models:
        console.print("no models yet: `landscape registry add BUNDLE` or `landscape index --model`")
        return
    table = Table()
    for column in ("", "model id", "backbone", "test acc", "files labelled", "created", "data"):
        table.add_column(column)
    for m in models:
        accuracy = (m["metrics"] or {}).get("test_acc")
        table.add_row(
            "[green]active[/]" if m["active"] else "",
            m["model_id"],
            m["backbone"] or "",
            f"{accuracy:.3f}" if isinstance(accuracy, float) else "",
            str(m["predictions"]),
            (m["created_at"] or "")[:19],
            (m["data_fingerprint"] or "")[:12],
        )
    console.print(table)


@app.command("add")
def add(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder or .landscape file.")],
    db: DbOption = None,
) -> None:
    """Register a bundle (its checksums verified); the first one becomes active."""
    from landscape.index.db import open_index, session_factory
    from landscape.index.registry import add_bundle

    with session_factory(open_index(db))() as session:
        row = add_bundle(session, bundle)
        session.commit()
        console.print(f"registered {row.model_id}" + (" (active)" if row.active else ""))


@app.command("activate")
def activate(model_id: ModelIdArgument, db: DbOption = None) -> None:
    """Make a registered model the active one (what `index`, `watch` and `serve` use)."""
    from landscape.index.db import open_index, session_factory
    from landscape.index.registry import activate as run_activate

    with session_factory(open_index(db))() as session:
        run_activate(session, model_id)
        session.commit()
    console.print(f"active model: {model_id}")


@app.command("rollback")
def rollback(db: DbOption = None) -> None:
    """Re-activate the model that was active before the current one."""
    from landscape.index.db import open_index, session_factory
    from landscape.index.registry import rollback as run_rollback

    with session_factory(open_index(db))() as session:
        row = run_rollback(session)
        session.commit()
    console.print(f"rolled back: active model is {row.model_id}")


@app.command("promote")
def promote(
    model_id: ModelIdArgument,
    db: DbOption = None,
    reclassify: Annotated[
        bool,
        typer.Option(
            "--reclassify",
            help="Re-run inference over every indexed root with it (old predictions kept).",
        ),
    ] = False,
    no_progress: NoProgressOption = False,
) -> None:
    """Activate a model and, with --reclassify, label the whole index with it."""
    from landscape.index.db import open_index, session_factory
    from landscape.index.registry import activate as run_activate

    engine = open_index(db)
    with session_factory(engine)() as session:
        run_activate(session, model_id, reason="promote")
        session.commit()
    console.print(f"active model: {model_id}")
    if reclassify:
        result = _reclassify(engine, model_id, no_progress=no_progress)
        _print_reclassified(result)


@app.command("reclassify")
def reclassify(
    model_id: Annotated[
        str | None, typer.Argument(help="Model id (default: the active model).")
    ] = None,
    db: DbOption = None,
    no_progress: NoProgressOption = False,
    as_json: JsonOption = False,
) -> None:
    """Label every indexed file again with a model (default: the active one); the predictions
    of other models are kept (`landscape search --model ID`)."""
    from landscape.errors import UserError
    from landscape.index.db import open_index, session_factory
    from landscape.index.registry import active_model

    engine = open_index(db)
    if model_id is None:
        with session_factory(engine)() as session:
            row = active_model(session)
            if row is None:
                raise UserError("no active model", fix="`landscape registry activate ID`")
            model_id = row.model_id
    result = _reclassify(engine, model_id, no_progress=no_progress or as_json)
    if as_json:
        print_json(result)
        return
    _print_reclassified(result)


def _print_reclassified(result: dict[str, Any]) -> None:
    for gone in result["skipped_roots"]:
        console.print(f"[yellow]skipped[/] {gone}: not mounted", soft_wrap=True)
    console.print(
        f"reclassified {result['reclassified']} files with {result['model_id']}", soft_wrap=True
    )


def _reclassify(engine: Any, model_id: str, *, no_progress: bool) -> dict[str, Any]:
    """Run the index over every mounted root with ``model_id``; what it did."""
    from sqlalchemy import select

    from landscape.errors import UserError
    from landscape.index.db import session_factory
    from landscape.index.pipeline import IndexOptions, run_index
    from landscape.index.schema import Model, Root
    from landscape.inference.predictor import Predictor

    with session_factory(engine)() as session:
        row = session.get(Model, model_id)
        if row is None:
            raise UserError(f"unknown model {model_id!r}", fix="see `landscape registry list`")
        roots = [Path(r.path) for r in session.scalars(select(Root))]
        bundle = Path(row.bundle_path)
    present = [r for r in roots if r.is_dir()]
    result: dict[str, Any] = {
        "model_id": model_id,
        "reclassified": 0,
        "skipped_roots": [str(g) for g in sorted(set(roots) - set(present))],
    }
    if not present:
        return result
    summary = run_index(
        engine,
        present,
        predictor=Predictor.from_bundle(bundle),
        options=IndexOptions(reclassify=True),
        progress=lambda description, total: progress_bar(
            description, total, enabled=not no_progress, unit="files"
        ),
    )
    result["reclassified"] = summary.outcomes.get("reclassified", 0) + summary.outcomes.get(
        "new", 0
    )
    return result


@app.command("remove")
def remove(
    model_id: ModelIdArgument,
    db: DbOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Also delete the predictions it made.")
    ] = False,
) -> None:
    """Forget a model (refused while active, or while it labels files unless --force)."""
    from landscape.index.db import open_index, session_factory
    from landscape.index.keyframes import keyframe_root, remove_keyframes
    from landscape.index.registry import remove_model

    engine = open_index(db)
    with session_factory(engine)() as session:
        plan = remove_model(session, model_id, force=force)
        session.commit()
    removed = remove_keyframes(keyframe_root(engine.url), plan.keyframes)
    console.print(
        f"removed {model_id}: {plan.predictions} predictions of {plan.files} files, "
        f"{removed} keyframes"
    )
