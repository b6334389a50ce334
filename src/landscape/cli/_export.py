"""``landscape export``: a bundle as ONNX, checked against torch, stored in the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._options import JsonOption, out_option
from ._output import console, print_json


def export(
    bundle: Path = typer.Argument(..., help="Bundle folder or .landscape file."),
    data: Path = typer.Option(
        None,
        "--data",
        help="Images (a folder or files' dataset) for the parity check; default: seeded noise.",
    ),
    check_images: int = typer.Option(
        8,
        "--check-images",
        min=1,
        help="How many images of --data to check on (--int8: at least 64, half calibrate).",
    ),
    atol: float = typer.Option(1e-3, "--atol", help="Largest accepted logit difference."),
    int8: bool = typer.Option(
        False, "--int8", help="Also quantise to int8 on --data images (backend onnx-int8)."
    ),
    min_agreement: float = typer.Option(
        0.97, "--min-agreement", help="int8: least top-1 agreement with fp32 on held-out images."
    ),
    out: Annotated[
        Path | None, out_option("Also write the .onnx file here (self-describing metadata).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Export a bundle to ONNX (opset 18, any batch size) and store it in the bundle as
    model.onnx, after checking that ONNX Runtime gives the same logits as torch.

    Then `landscape predict BUNDLE IMAGES --backend onnx` (and evaluate, and the index service)
    run on ONNX Runtime: several times faster on a CPU. Preprocessing still comes from
    bundle.json, so both backends see identical inputs.

    Examples:
    `landscape export runs/demo/bundle`
    `landscape export runs/demo/bundle --data demo-data --out model.onnx --json`
    `landscape export runs/demo/bundle --data demo-data --int8 --check-images 64`
    """
    from landscape.errors import UserError
    from landscape.inference.export import export_onnx
    from landscape.inference.quantize import quantize_onnx

    if int8 and data is None:
        raise UserError("--int8 needs images to calibrate on", fix="add --data DIR")
    images: list[Path] = []
    if data is not None:
        from landscape.data.datasets import load_dataset

        index = load_dataset(data, min_classes=1)
        # Spread the check over the classes: every k-th file of the sorted index.
        wanted = max(check_images, 64) if int8 else check_images
        step = max(1, len(index.samples) // wanted)
        images = [s.path for s in index.samples[::step][:wanted]]
    result = export_onnx(bundle, images=images, atol=atol, copy_to=out)
    quantized = quantize_onnx(bundle, images, min_agreement=min_agreement) if int8 else None
    if as_json:
        print_json({**result.to_dict(), "int8": quantized.to_dict() if quantized else None})
        return
    console.print(
        f"[green]exported[/] model.onnx into {result.bundle} ({result.onnx_bytes / 2**20:.1f} MiB, "
        f"opset {result.opset}) in {result.seconds:.1f}s; ONNX Runtime vs torch on "
        f"{result.checked_on}: max |Δlogit| {result.max_abs_diff_logits:.2e}"
    )
    if result.copy is not None:
        console.print(f"  copy: {result.copy}")
    if quantized is not None:
        console.print(
            f"[green]int8[/] model.int8.onnx ({quantized.onnx_bytes / 2**20:.1f} MiB): top-1 "
            f"agreement with fp32 {quantized.agreement:.1%} on {quantized.checked_on} held-out "
            f"images (calibrated on {quantized.calibrated_on})"
        )
    backend = "onnx-int8" if quantized is not None else "onnx"
    console.print(f"  use it: landscape predict {result.bundle} IMAGES --backend {backend}")
