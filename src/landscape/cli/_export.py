"""``landscape export``: a bundle as ONNX, checked against torch, stored in the bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from ._output import console, print_json


def export(
    bundle: Path = typer.Argument(..., help="Bundle folder or .landscape file."),
    data: Path = typer.Option(
        None,
        "--data",
        help="Images (a folder or files' dataset) for the parity check; default: seeded noise.",
    ),
    check_images: int = typer.Option(
        8, "--check-images", min=1, help="How many images of --data to check on."
    ),
    atol: float = typer.Option(1e-3, "--atol", help="Largest accepted logit difference."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Also write the .onnx file here (self-describing metadata)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Export a bundle to ONNX (opset 18, any batch size) and store it in the bundle as
    model.onnx, after checking that ONNX Runtime gives the same logits as torch.

    Then `landscape predict BUNDLE IMAGES --backend onnx` (and evaluate, and the index service)
    run on ONNX Runtime: several times faster on a CPU. Preprocessing still comes from
    bundle.json, so both backends see identical inputs.

    Examples:
    `landscape export runs/demo/bundle`
    `landscape export runs/demo/bundle --data demo-data --out model.onnx --json`
    """
    from landscape.inference.export import export_onnx

    images: list[Path] = []
    if data is not None:
        from landscape.data.datasets import load_dataset

        index = load_dataset(data, min_classes=1)
        # Spread the check over the classes: every k-th file of the sorted index.
        step = max(1, len(index.samples) // check_images)
        images = [s.path for s in index.samples[::step][:check_images]]
    result = export_onnx(bundle, images=images, atol=atol, copy_to=out)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"[green]exported[/] model.onnx into {result.bundle} ({result.onnx_bytes / 2**20:.1f} MiB, "
        f"opset {result.opset}) in {result.seconds:.1f}s; ONNX Runtime vs torch on "
        f"{result.checked_on}: max |Δlogit| {result.max_abs_diff_logits:.2e}"
    )
    if result.copy is not None:
        console.print(f"  copy: {result.copy}")
    console.print(f"  use it: landscape predict {result.bundle} IMAGES --backend onnx")
