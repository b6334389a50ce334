"""``landscape data``: synthesise, audit, split, download and describe datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ._data_audit import register as _register_audit
from ._data_download import register as _register_download
from ._options import DbOption, JsonOption, SeedOption, out_option
from ._output import console, print_json, progress_bar

app = typer.Typer(
    help="Datasets: synthesise the built-in landscapes, audit, split and download.",
    no_args_is_help=True,
)


@app.command("synth")
def synth(
    out: Path = typer.Argument(..., help="Folder to write <class>/<image>.jpg into."),
    per_class: int = typer.Option(60, "--per-class", "-n", help="Images per class."),
    size: int = typer.Option(224, "--size", help="Image side in pixels."),
    seed: SeedOption = 0,
    classes: list[str] = typer.Option(
        None, "--classes", help="Subset of coast, desert, forest, glacier, mountain."
    ),
    as_json: JsonOption = False,
) -> None:
    """Draw procedural landscape photos (JPEG with EXIF and GPS), deterministic for a seed.

    Example: `landscape data synth demo-data --per-class 100 --seed 0`
    """
    from landscape.data.synth import CLASSES, SynthSpec, generate_dataset

    spec = SynthSpec(
        per_class=per_class, size=size, seed=seed, classes=tuple(classes) if classes else CLASSES
    )
    total = per_class * len(spec.classes)
    with progress_bar("synthesising", total, enabled=not as_json) as advance:
        result = generate_dataset(out, spec, progress=lambda done, _total: advance(1))
    summary = {
        "out": str(result.out),
        "images": result.n_images,
        "counts": result.counts,
        "seconds": round(result.seconds, 3),
        "images_per_second": round(result.n_images / max(result.seconds, 1e-9), 1),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"wrote [bold]{result.n_images}[/] images to {result.out} "
            f"({summary['images_per_second']} images/s)"
        )


@app.command("split")
def split(
    data: Path = typer.Argument(..., help="Dataset folder or CSV manifest."),
    out: Annotated[Path | None, out_option("Manifest to write (default DATA/split.csv).")] = None,
    val: float = typer.Option(
        0.15, "--val-fraction", "--val", min=0, max=0.99, help="Validation fraction when missing."
    ),
    test: float = typer.Option(
        0.15, "--test-fraction", "--test", min=0, max=0.99, help="Test fraction when missing."
    ),
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Write a stratified, seeded, leakage-safe split manifest (path,label,split).

    Near-duplicate images are kept together in one split. Example:
    `landscape data split demo-data --seed 0` then train with `--data demo-data/split.csv`.
    """
    from landscape.data.datasets import load_dataset, write_manifest
    from landscape.data.splits import assign_splits

    index = load_dataset(data)
    with progress_bar("hashing", len(index.samples), enabled=not as_json) as advance:
        index = assign_splits(index, val=val, test=test, seed=seed, progress=advance)
    target = out or (data.parent / "split.csv" if data.is_file() else data / "split.csv")
    write_manifest(index, target, extra={"seed": seed, "fingerprint": index.fingerprint()})
    counts = index.counts()
    if as_json:
        print_json({"manifest": str(target), "classes": list(index.classes), "counts": counts})
        return
    console.print(f"wrote {target}")
    for name, row in counts.items():
        console.print(f"  {name:5s} " + "  ".join(f"{c}={n}" for c, n in row.items()))


@app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="New folder to write the dataset to.")],
    db: DbOption = None,
    format: Annotated[
        Literal["folders", "csv"],
        typer.Option("--format", help="folders: OUT/<label>/ (hard links); csv: manifest.csv."),
    ] = "folders",
    corrections_only: Annotated[
        bool,
        typer.Option(
            "--corrections-only", help="Only corrected files, not those a person confirmed."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Export the reviewed images of the index (corrected, and confirmed unless
    --corrections-only) as a dataset `landscape train` reads, with export.json recording each
    file's review (id, who, when, the model it reviewed).

    Example: `landscape data export reviewed/ --db sqlite:///archive.db` then
    `landscape train -d reviewed`
    """
    from landscape.index.db import open_index, session_factory
    from landscape.index.export import export_reviewed

    with session_factory(open_index(db, create=False))() as session:
        summary = export_reviewed(session, out, format=format, corrections_only=corrections_only)
    if as_json:
        print_json(summary.to_dict())
        return
    labels = ", ".join(f"{k} {v}" for k, v in summary.labels.most_common())
    console.print(f"wrote {summary.files} files to {out} ({format}): {labels}")
    for path, reason in summary.skipped[:10]:
        console.print(f"[yellow]skipped[/] {path}: {reason}", soft_wrap=True)


_register_audit(app)
_register_download(app)
