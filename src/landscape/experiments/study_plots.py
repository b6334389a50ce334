"""The study report's figures: accuracy against latency, parameters and training-set size,
and the learning curves, as PNG files next to the tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .aggregate import SettingRow, StudyResult

__all__ = ["PLOT_TITLES", "write_plots"]

#: File name → title of every figure a report may hold, in the order they are shown.
PLOT_TITLES: dict[str, str] = {
    "accuracy_vs_latency.png": "Accuracy vs inference latency (Pareto front marked)",
    "accuracy_vs_params.png": "Accuracy vs parameters",
    "learning_curves.png": "Learning curves (validation accuracy per epoch, first seed)",
    "accuracy_vs_size.png": "Accuracy vs training-set size",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_accuracy_vs(
    path: Path, rows: Sequence[SettingRow], attr: str, xlabel: str, front: bool
) -> bool:
    pts = [r for r in rows if r.accuracy_mean is not None and getattr(r, attr) is not None]
    if not pts:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for r in pts:
        x = float(getattr(r, attr))
        ax.errorbar(
            x,
            r.accuracy_mean,
            yerr=r.accuracy_std or 0.0,
            fmt="o",
            ms=6,
            capsize=3,
            color="tab:red" if (front and r.pareto) else "tab:blue",
        )
        ax.annotate(
            r.setting,
            (x, r.accuracy_mean or 0.0),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    if front:
        frontier = sorted(
            (float(getattr(r, attr)), r.accuracy_mean or 0.0) for r in pts if r.pareto
        )
        if frontier:
            xs, ys = zip(*frontier, strict=True)
            ax.step(xs, ys, where="post", color="tab:red", alpha=0.6, label="Pareto front")
            ax.legend(loc="lower right", fontsize=8)
    from matplotlib.ticker import FormatStrFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter(""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_curves(path: Path, result: StudyResult) -> bool:
    curves: dict[str, list[tuple[float, float]]] = {}
    for record in result.records:
        setting = record["setting"]
        if record["status"] != "ok" or setting in curves:
            continue
        pts = [(h["epoch"], h["val_acc"]) for h in record.get("history") or [] if "val_acc" in h]
        if pts:
            curves[setting] = pts
    if not curves:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for name, pts in curves.items():
        xs, ys = zip(*pts, strict=True)
        ax.plot([x + 1 for x in xs], ys, "-o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_sizes(path: Path, rows: Sequence[SettingRow]) -> bool:
    groups: dict[str, list[SettingRow]] = {}
    for row in rows:
        if row.accuracy_mean is not None and row.n_train is not None:
            groups.setdefault(row.group, []).append(row)
    groups = {g: rs for g, rs in groups.items() if len({r.size for r in rs}) > 1}
    if not groups:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for name, items in groups.items():
        items = sorted(items, key=lambda r: r.n_train or 0.0)
        ax.errorbar(
            [r.n_train for r in items],
            [r.accuracy_mean for r in items],
            yerr=[r.accuracy_std or 0.0 for r in items],
            fmt="-o",
            capsize=3,
            label=name,
        )
    ax.set_xlabel("training images (all classes)")
    ax.set_ylabel("accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _latency(path: Path, result: StudyResult) -> bool:
    xlabel = "inference latency, ms/image (model, batch 1, p50; log scale)"
    return _plot_accuracy_vs(path, result.rows, "latency_ms", xlabel, front=True)


def _params(path: Path, result: StudyResult) -> bool:
    xlabel = "parameters (log scale)"
    return _plot_accuracy_vs(path, result.rows, "params_total", xlabel, front=False)


def _sizes(path: Path, result: StudyResult) -> bool:
    return _plot_sizes(path, result.rows)


# File name → drawer; a drawer returns False (and writes nothing) when it has no data.
_DRAWERS: dict[str, Callable[[Path, StudyResult], bool]] = {
    "accuracy_vs_latency.png": _latency,
    "accuracy_vs_params.png": _params,
    "learning_curves.png": _plot_curves,
    "accuracy_vs_size.png": _sizes,
}


def write_plots(out: Path, result: StudyResult) -> list[str]:
    """Draw the figures there is data for into ``out``; their file names, in
    :data:`PLOT_TITLES` order (a study with no successful run has none)."""
    return [name for name in PLOT_TITLES if _DRAWERS[name](out / name, result)]
