"""``landscape evaluate``: metrics, calibration, latency and an HTML report for a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ._options import BackendOption, BatchSizeOption, DeviceOption, JsonOption, out_option
from ._output import console, err_console, print_json, progress_bar


def _default_out(bundle: Path, split: str | None) -> Path:
    # Beside the bundle: runs/demo/bundle → runs/demo/eval-test, like training's run directory.
    return bundle.resolve().parent / (f"eval-{split}" if split else "eval")


def _print_summary(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{result['model_id']} on {result['split']} ({result['n_images']} images)")
    table.add_column("class")
    for name in ("precision", "recall", "F1", "support"):
        table.add_column(name, justify="right")
    for name, m in result["per_class"].items():
        table.add_row(
            name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"])
        )
    console.print(table)
    top = "  ".join(
        f"{k.replace('_', '-')} {v:.4f}" for k, v in result["top_k"].items() if k != "top_1"
    )
    console.print(
        f"accuracy [bold]{result['accuracy']:.4f}[/]  macro-F1 [bold]{result['macro_f1']:.4f}[/]  "
        f"weighted-F1 {result['weighted_f1']:.4f}  {top}"
    )
    ece = f"ECE {result['ece']:.4f}"
    if result["temperature"] is not None:
        ece += (
            f" → {result['ece_after_temperature']:.4f} "
            f"with T={result['temperature']:.3f} (fit on val)"
        )
        if result["temperature_stored"]:
            ece += " [green]stored in the bundle[/]"
    console.print(ece)
    _print_open_set(result.get("open_set"), str(result["split"]))
    for pair in result["most_confused"][:3]:
        console.print(f"  confused: {pair['true']} → {pair['predicted']} ×{pair['count']}")
    latency = result.get("latency")
    if latency:
        model, e2e = latency["model"], latency["end_to_end"]
        b1, e1 = model["batch_1"], e2e["batch_1"]
        bulk = next(k for k in model if k != "batch_1")
        console.print(
            f"latency on {latency['device_name']} ({latency['threads']} threads, "
            f"{result['backend']} backend): "
            f"model {b1['p50_ms']:.2f} ms/img p50 "
            f"(p90 {b1['p90_ms']:.2f}, p99 {b1['p99_ms']:.2f}), "
            f"{model[bulk]['images_per_s']:.1f} img/s at {bulk.replace('_', ' ')}"
        )
        console.print(
            f"  end to end from JPEG: {e1['p50_ms']:.2f} ms/img p50 (p90 {e1['p90_ms']:.2f}, "
            f"p99 {e1['p99_ms']:.2f}), {e2e[bulk]['images_per_s']:.1f} img/s at "
            f"{bulk.replace('_', ' ')}"
        )
        if latency.get("busy_machine"):
            err_console.print(
                f"[yellow]note[/] load average {latency['load_average_1m']} on "
                f"{latency['cpu_count']} cores while timing: latency figures are pessimistic"
            )
    params = result["params"]
    line = f"params {params['total']:,}"
    if params.get("trainable") is not None:
        line += f" ({params['trainable']:,} trained)"
    line += f", bundle {result['bundle_bytes'] / 1e6:.1f} MB"
    if result["training_seconds"] is not None:
        line += f"; training took {result['training_seconds']:.1f} s (wall time, not inference)"
    console.print(line)
    for item in result["skipped"]:
        err_console.print(f"[yellow]skipped[/] {item['path']}: {item['reason']}")
    for note in result["notes"]:
        err_console.print(f"[yellow]note[/] {note}")
    console.print(f"report: {result['files']['report.html']}")


def _print_open_set(open_set: dict[str, Any] | None, split: str) -> None:
    if not open_set:
        return
    test = open_set["test"]
    kept = test["accuracy_kept"]
    line = (
        f"unknown below MSP {open_set['threshold']:.4f} (keeps "
        f"{open_set['target_coverage']:.0%} of {open_set['threshold_split']}): {split} coverage "
        f"{test['coverage']:.3f}, accuracy of kept " + (f"{kept:.4f}" if kept is not None else "—")
    )
    if open_set.get("threshold_stored"):
        line += " [green]stored in the bundle[/]"
    console.print(line)
    ood = open_set.get("ood")
    if ood:
        console.print(
            f"  OOD {ood['source']} ({ood['images']} images): AUROC msp "
            f"{ood['auroc']['msp']:.4f}, energy {ood['auroc']['energy']:.4f}; FPR@95%TPR msp "
            f"{ood['fpr_at_95_tpr']['msp']:.3f}, energy {ood['fpr_at_95_tpr']['energy']:.3f}"
        )


def evaluate(
    bundle: Path = typer.Argument(..., help="Model bundle (folder or .landscape)."),
    data: Path = typer.Option(
        ..., "--data", "-d", help="Dataset folder (class folders or split folders) or CSV manifest."
    ),
    split: Annotated[
        Literal["test", "val", "train", "all"] | None,
        typer.Option(
            "--split",
            "-s",
            help="Default: test when the data has splits, else every image.",
        ),
    ] = None,
    out: Annotated[
        Path | None, out_option("Output folder (default: `eval-SPLIT` beside the bundle).")
    ] = None,
    calibrate: bool = typer.Option(
        False, "--calibrate", help="Store the temperature fitted on the val split in the bundle."
    ),
    no_latency: bool = typer.Option(False, "--no-latency", help="Skip the latency measurement."),
    no_gallery: bool = typer.Option(False, "--no-gallery", help="Skip the mistakes gallery."),
    explain: bool = typer.Option(
        True,
        "--explain/--no-explain",
        help="Grad-CAM of correct and wrong predictions, first-layer activations, t-SNE.",
    ),
    max_explain: int = typer.Option(
        8, "--max-explain", min=0, help="Grad-CAM images per group (correct / wrong)."
    ),
    ood: str = typer.Option(
        None,
        "--ood",
        help="Out-of-distribution images for the open-set AUROC: a folder (any depth) of images "
        "of none of the classes, or `noise` / `noise:N` for N generated noise/texture images.",
    ),
    coverage: float = typer.Option(
        0.95,
        "--coverage",
        min=0.01,
        max=1.0,
        help="Fraction of in-distribution val images the unknown threshold keeps.",
    ),
    set_threshold: bool = typer.Option(
        False,
        "--set-threshold",
        help="Store the unknown threshold (MSP, chosen on the val split) in the bundle.",
    ),
    batch_size: BatchSizeOption = 32,
    runs: int = typer.Option(30, "--runs", min=1, help="Timed batch-1 calls per latency figure."),
    device: DeviceOption = "cpu",
    backend: BackendOption = "torch",
    as_json: JsonOption = False,
) -> None:
    """Evaluate a bundle on a dataset: accuracy, P/R/F1, confusion, calibration (ECE,
    temperature), open set (unknown threshold, AUROC on OOD images), latency, explanations
    (Grad-CAM, first-layer activations, t-SNE) and a self-contained report.html with CSVs and PNGs.

    Examples:

    `landscape evaluate runs/demo/bundle --data runs/demo/split.csv` (the run's test split)

    `landscape evaluate runs/demo/bundle --data photos/ --split all --out eval/photos --json`

    `landscape evaluate runs/demo/bundle --data runs/demo/split.csv --calibrate --no-latency`

    `landscape evaluate runs/demo/bundle --data runs/demo/split.csv --ood noise --set-threshold`

    `landscape evaluate runs/intel/bundle --data runs/intel/split.csv --ood photos/not-landscapes`
    """
    from landscape.evaluation import evaluate_bundle

    target = out if out is not None else _default_out(bundle, split)
    result = evaluate_bundle(
        bundle,
        data,
        split,
        target,
        calibrate=calibrate,
        latency=not no_latency,
        gallery=not no_gallery,
        explain=explain,
        max_explain=max_explain,
        ood=ood,
        coverage=coverage,
        set_threshold=set_threshold,
        batch_size=batch_size,
        latency_runs=runs,
        device=device,
        backend=backend,
        progress=lambda description, total: progress_bar(description, total, enabled=not as_json),
    )
    if as_json:
        print_json(result)
    else:
        _print_summary(result)
