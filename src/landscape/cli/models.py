"""``landscape models``: the backbone registry."""

from __future__ import annotations

from typing import Any

import typer

from ._options import JsonOption
from ._output import console, print_json

app = typer.Typer(help="Backbones available for training.", no_args_is_help=True)


@app.command("list")
def list_models(as_json: JsonOption = False) -> None:
    """List registered backbones: parameters, input size, feature size, offline weights.

    Example: `landscape models list --json`
    """
    from rich.table import Table

    from landscape.models.registry import list_backbones

    rows: list[dict[str, Any]] = [
        {
            "name": info.name,
            "family": info.family,
            "params": info.params,
            "input_size": info.input_size,
            "feature_dim": info.feature_dim,
            "blocks": info.n_blocks,
            "weights": list(info.weight_sources),
            "default_weights": info.default_weights,
            "offline": info.offline,
            "description": info.description,
        }
        for info in list_backbones()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="backbones")
    for column in ("name", "params", "input", "features", "blocks", "weights", "offline"):
        table.add_column(
            column, justify="right" if column in ("params", "input") else "left", no_wrap=True
        )
    for row in rows:
        table.add_row(
            row["name"],
            f"{row['params'] / 1e6:.1f} M",
            str(row["input_size"]),
            str(row["feature_dim"]),
            str(row["blocks"]),
            ", ".join(row["weights"]),
            "[green]yes[/]" if row["offline"] else "no",
        )
    console.print(table)
