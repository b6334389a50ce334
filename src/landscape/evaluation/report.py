"""Files of one evaluation: ``metrics.json``, CSV tables, PNG figures and ``report.html``.

The HTML report is one self-contained file: plain tables, inline CSS and figures embedded as
base64 PNG, no script and no external resource, so it opens offline and can be mailed as is. Its
markup lives in the Jinja2 templates of ``landscape/evaluation/templates`` (package data).
"""

from __future__ import annotations

import base64
import csv
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "MistakeRow",
    "plot_confusion",
    "plot_coverage",
    "plot_mistakes",
    "plot_reliability",
    "render_html",
    "write_report",
]

# How many of the worst mistakes the gallery shows (4 rows of 4 stay readable in a report).
GALLERY_SIZE = 16


@dataclass(frozen=True)
class MistakeRow:
    """One evaluated image with its loss, for ``top_losses.csv`` and the mistakes gallery."""

    path: Path
    true: str
    predicted: str
    confidence: float
    p_true: float
    loss: float

    @property
    def correct(self) -> bool:
        """Whether the prediction is right."""
        return self.true == self.predicted


def _pyplot() -> Any:
    import matplotlib

    # Agg: no display is needed (servers, CI) and nothing opens a window.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(
    matrix: Sequence[Sequence[float]], classes: Sequence[str], path: Path, *, normalized: bool
) -> Path:
    """Confusion matrix as a heat map with the value in every cell (rows = true class)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    values = np.asarray(matrix, dtype=np.float64 if normalized else np.int64)
    side = max(4.5, 0.6 * len(classes) + 2.5)
    fig, ax = plt.subplots(figsize=(side + 0.8, side))
    display = ConfusionMatrixDisplay(values, display_labels=list(classes))
    display.plot(
        ax=ax,
        cmap="Blues",
        values_format=".2f" if normalized else "d",
        xticks_rotation=45,
        colorbar=True,
    )
    if normalized:
        display.im_.set_clim(0.0, 1.0)
    ax.set_title(
        "confusion, row-normalised (recall on the diagonal)" if normalized else "confusion (counts)"
    )
    ax.set_ylabel("true class")
    ax.set_xlabel("predicted class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(
    before: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    ece: float,
    after: Sequence[Mapping[str, Any]] | None = None,
    ece_after: float | None = None,
    temperature: float | None = None,
) -> Path:
    """Reliability diagram: accuracy against confidence per bin, with the count per bin below."""
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(5.6, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    width = before[0]["upper"] - before[0]["lower"]
    centres = [(b["lower"] + b["upper"]) / 2 for b in before]
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    acc = [b["accuracy"] if b["accuracy"] is not None else 0.0 for b in before]
    ax.bar(
        centres,
        acc,
        width=width * 0.95,
        color="#4c72b0",
        alpha=0.75,
        edgecolor="#2a4a80",
        label=f"model (ECE {ece:.3f})",
    )
    if after is not None and ece_after is not None:
        pts = [((b["lower"] + b["upper"]) / 2, b["accuracy"]) for b in after if b["count"]]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(
                xs, ys, "o-", color="#dd8452", label=f"T = {temperature:.2f} (ECE {ece_after:.3f})"
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram (15 bins)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    hist.bar(
        centres, [b["count"] for b in before], width=width * 0.95, color="#8c8c8c", label="model"
    )
    if after is not None and ece_after is not None:
        hist.step(
            [b["lower"] for b in after] + [1.0],
            [b["count"] for b in after] + [after[-1]["count"]],
            where="post",
            color="#dd8452",
            label="after T",
        )
        hist.legend(loc="upper left", fontsize=7)
    hist.yaxis.get_major_locator().set_params(integer=True)
    hist.set_xlabel("confidence (top-label probability)")
    hist.set_ylabel("images")
    hist.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_coverage(
    open_set: Mapping[str, Any],
    path: Path,
    *,
    id_msp: npt.NDArray[np.float64],
    ood_msp: npt.NDArray[np.float64] | None = None,
    n_classes: int = 2,
    split: str = "test",
) -> Path:
    """Accuracy/coverage curve (selective classification) beside the MSP histograms ID vs OOD.

    The chosen threshold is marked on both panels: the point it gives on the curve and the
    vertical line below which images are "unknown".
    """
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    curve = open_set.get("coverage_curve") or []
    if curve:
        cov = [p["coverage"] for p in curve]
        acc = [p["accuracy"] for p in curve]
        ax.plot(cov, acc, "-", color="#4c72b0", lw=1.6, label="kept images")
    test = open_set.get("test") or {}
    if test.get("accuracy_all") is not None:
        ax.axhline(
            test["accuracy_all"],
            ls="--",
            color="grey",
            lw=1,
            label=f"no rejection ({test['accuracy_all']:.3f})",
        )
    if test.get("accuracy_kept") is not None:
        ax.plot(
            [test["coverage"]],
            [test["accuracy_kept"]],
            "o",
            color="#c44e52",
            label=f"threshold {open_set['threshold']:.3f}: coverage {test['coverage']:.2f}, "
            f"accuracy {test['accuracy_kept']:.3f}",
        )
    low = min([p["accuracy"] for p in curve] + [test.get("accuracy_all") or 1.0], default=0.0)
    ax.set_xlim(0, 1.01)
    ax.set_ylim(max(0.0, low - 0.05), 1.005)
    ax.set_xlabel(f"coverage (fraction of {split} images kept)")
    ax.set_ylabel("accuracy of the kept images")
    ax.set_title(f"selective classification by MSP (split: {split})", fontsize=10)
    ax.legend(loc="lower left", fontsize=7.5)
    ax.grid(alpha=0.3)

    # MSP lies in [1/C, 1]: the histogram spans exactly that.
    floor = 1.0 / n_classes if n_classes > 1 else 0.0
    bins = np.linspace(floor, 1.0, 26)
    # Densities, not counts: the OOD set is often several times the size of the ID split.
    hist.hist(
        id_msp,
        bins=bins,
        density=True,
        alpha=0.55,
        color="#4c72b0",
        label=f"ID {split} ({len(id_msp)})",
    )
    ood = open_set.get("ood")
    if ood_msp is not None and ood is not None:
        auroc = ood["auroc"]["msp"]
        hist.hist(
            ood_msp,
            bins=bins,
            density=True,
            alpha=0.55,
            color="#dd8452",
            label=f"OOD ({len(ood_msp)}), AUROC {auroc:.3f}",
        )
    hist.axvline(open_set["threshold"], color="#c44e52", lw=1.5, label="unknown below")
    hist.set_xlim(floor, 1.0)
    hist.set_xlabel(f"max softmax probability (T = {open_set['temperature']:.3g})")
    hist.set_ylabel("density")
    hist.set_title("MSP: in-distribution vs out-of-distribution", fontsize=10)
    hist.legend(loc="upper left", fontsize=7.5)
    hist.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _thumbnail(path: Path, size: int = 160) -> Any:
    from landscape.data.io import open_image

    image = open_image(path)
    image.thumbnail((size, size))
    return image


def plot_mistakes(rows: Sequence[MistakeRow], path: Path, *, limit: int = GALLERY_SIZE) -> Path:
    """Gallery of the misclassified images with the highest loss, labelled true → predicted."""
    plt = _pyplot()
    worst = [r for r in rows if not r.correct][:limit]
    if not worst:
        fig, ax = plt.subplots(figsize=(5, 1.4))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified image", ha="center", va="center", fontsize=12)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    cols = min(4, len(worst))
    lines = math.ceil(len(worst) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(3.0 * cols, 3.6 * lines + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, worst, strict=False):
        try:
            ax.imshow(_thumbnail(row.path))
        except Exception:  # a file changed since scoring: keep the caption, drop the picture
            ax.text(0.5, 0.5, "unreadable", ha="center", va="center")
        ax.set_title(
            f"true: {row.true}\npred: {row.predicted} ({row.confidence:.2f})\n{row.path.name}",
            fontsize=8,
            color="#a02020",
        )
    fig.suptitle("worst mistakes (highest loss first)")
    # Leave the top strip to the suptitle so the first row's captions do not cover it.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (3.6 * lines + 0.5)))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _clean(value: Any) -> Any:
    # JSON has no NaN/Infinity: a metric that is undefined is written as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_csvs(
    out: Path, metrics: Mapping[str, Any], rows: Sequence[MistakeRow]
) -> dict[str, Path]:
    classes: list[str] = list(metrics["classes"])
    files = {
        "per_class.csv": out / "per_class.csv",
        "confusion.csv": out / "confusion.csv",
        "top_losses.csv": out / "top_losses.csv",
    }
    with open(files["per_class.csv"], "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for name in classes:
            m = metrics["per_class"][name]
            writer.writerow(
                [
                    name,
                    f"{m['precision']:.6f}",
                    f"{m['recall']:.6f}",
                    f"{m['f1']:.6f}",
                    m["support"],
                ]
            )
    with open(files["confusion.csv"], "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["true\\predicted", *classes])
        for name, line in zip(classes, metrics["confusion_matrix"], strict=True):
            writer.writerow([name, *line])
    with open(files["top_losses.csv"], "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "true", "predicted", "confidence", "p_true", "loss", "correct"])
        for r in rows:
            writer.writerow(
                [
                    r.path,
                    r.true,
                    r.predicted,
                    f"{r.confidence:.6f}",
                    f"{r.p_true:.6f}",
                    f"{r.loss:.6f}",
                    int(r.correct),
                ]
            )
    return files


def _write_scores(
    path: Path,
    scores: Mapping[str, npt.NDArray[np.float64]],
    id_paths: Sequence[Path] | None,
    ood_paths: Sequence[Path] | None,
) -> Path:
    """One row per scored image: which set, its path (empty for generated images), MSP, −E."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["set", "path", "msp", "energy"])
        for kind, paths in (("id", id_paths), ("ood", ood_paths)):
            msp = scores.get(f"{kind}_msp")
            energy = scores.get(f"{kind}_energy")
            if msp is None or energy is None:
                continue
            names = list(paths) if paths is not None else [""] * len(msp)
            for name, m, e in zip(names, msp, energy, strict=True):
                writer.writerow([kind, name, f"{float(m):.6f}", f"{float(e):.6f}"])
    return path


def _fmt(value: Any, digits: int = 4) -> str:
    """A table cell or inline figure as text: ``—`` for None, thousands separators, ``digits``."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


@functools.cache
def _environment() -> Any:
    """The Jinja2 environment of the report templates (package data), built once."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("landscape.evaluation", "templates"),
        # The templates end in .html.j2, which select_autoescape's defaults would not escape.
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = _fmt
    return env


def _latency_rows(latency: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for mode, label in (
        ("model", "model only (preprocessed tensors)"),
        ("end_to_end", "end to end (JPEG bytes → label)"),
    ):
        for key, value in latency.get(mode, {}).items():
            if "p50_ms" in value:
                rows.append(
                    [
                        label,
                        key.replace("_", " "),
                        value["p50_ms"],
                        value["p90_ms"],
                        value["p99_ms"],
                        None,
                        value["runs"],
                    ]
                )
            else:
                rows.append(
                    [
                        label,
                        key.replace("_", " "),
                        value["ms_per_image"],
                        None,
                        None,
                        value["images_per_s"],
                        value["batches"],
                    ]
                )
    return rows


def _open_set_rows(
    open_set: Mapping[str, Any] | None, split: str
) -> tuple[list[list[Any]], list[list[Any]]]:
    """The in-distribution table and the OOD table of the open-set section."""
    if not open_set:
        return [], []
    test = open_set["test"]
    in_distribution = [
        [f"{split} images kept at the threshold (coverage)", test["coverage"]],
        [f"accuracy of the kept {split} images", test["accuracy_kept"]],
        [f"accuracy of all {split} images", test["accuracy_all"]],
        ["area under the risk/coverage curve (AURC, lower is better)", test["aurc"]],
        ["energy threshold for the same coverage", open_set.get("threshold_energy")],
    ]
    ood = open_set.get("ood")
    if not ood:
        return in_distribution, []
    scores = [
        [
            "max softmax probability (MSP)" if k == "msp" else "energy (−E)",
            ood["auroc"][k],
            ood["fpr_at_95_tpr"][k],
            ood["rejected_at_threshold"][k],
        ]
        for k in ("msp", "energy")
    ]
    return in_distribution, scores


def _context(metrics: Mapping[str, Any], figures: Mapping[str, Path]) -> dict[str, Any]:
    """Everything the templates show: the metrics as ``m``, table rows, base64 figures."""
    classes: list[str] = list(metrics["classes"])
    per_class = metrics["per_class"]
    params = metrics.get("params") or {}
    open_set_rows, ood_rows = _open_set_rows(metrics.get("open_set"), str(metrics["split"]))
    latency = metrics.get("latency")
    return {
        "m": metrics,
        "classes": classes,
        "summary": [
            ["accuracy", metrics["accuracy"]],
            *[[k.replace("_", "-"), v] for k, v in metrics.get("top_k", {}).items()],
            ["macro precision", metrics["macro_precision"]],
            ["macro recall", metrics["macro_recall"]],
            ["macro F1", metrics["macro_f1"]],
            ["weighted F1", metrics["weighted_f1"]],
            ["ECE (15 bins)", metrics["ece"]],
            ["temperature fitted on val", metrics.get("temperature")],
            ["ECE after temperature", metrics.get("ece_after_temperature")],
            ["images evaluated", metrics["n_images"]],
            ["files skipped", len(metrics.get("skipped", []))],
        ],
        "per_class": [
            [c, *(per_class[c][k] for k in ("precision", "recall", "f1", "support"))]
            for c in classes
        ],
        "confusion": [
            [c, *line] for c, line in zip(classes, metrics["confusion_matrix"], strict=True)
        ],
        "confused": [
            [p["true"], p["predicted"], p["count"], p["fraction"]]
            for p in metrics.get("most_confused", [])
        ],
        "open_set_rows": open_set_rows,
        "ood_rows": ood_rows,
        "latency_rows": _latency_rows(latency) if latency else [],
        "facts": [
            ["parameters (total)", params.get("total")],
            ["parameters trained", params.get("trainable")],
            ["bundle size on disk (MB)", (metrics.get("bundle_bytes") or 0) / 1e6],
            ["training wall time (s) — training, not inference", metrics.get("training_seconds")],
        ],
        "skipped": [[s["path"], s["reason"]] for s in metrics.get("skipped", [])],
        # Inlined so the page stays one self-contained file that opens offline.
        "images": {
            name: base64.b64encode(path.read_bytes()).decode("ascii")
            for name, path in figures.items()
        },
    }


def render_html(metrics: Mapping[str, Any], figures: Mapping[str, Path]) -> str:
    """The report page for ``metrics`` (as in ``metrics.json``) with ``figures`` embedded.

    Rendered from the package's ``templates/report.html.j2``; every value is HTML-escaped.
    """
    page: str = _environment().get_template("report.html.j2").render(_context(metrics, figures))
    return page


def write_report(
    out: Path,
    metrics: Mapping[str, Any],
    rows: Sequence[MistakeRow],
    *,
    reliability: Sequence[Mapping[str, Any]],
    reliability_after: Sequence[Mapping[str, Any]] | None = None,
    gallery: bool = True,
    extra: Mapping[str, Path] | None = None,
    open_set_scores: Mapping[str, npt.NDArray[np.float64]] | None = None,
    id_paths: Sequence[Path] | None = None,
    ood_paths: Sequence[Path] | None = None,
) -> dict[str, Path]:
    """Write every file of an evaluation into ``out``; returns ``{file name: path}``.

    ``rows`` must be sorted by decreasing loss (``top_losses.csv`` keeps that order and the
    gallery shows the first misclassified ones). ``extra``: files already written into ``out``
    (the explanations), PNGs among them are embedded. ``open_set_scores``: the raw scores of
    :func:`landscape.evaluation.openset.open_set_metrics` (``id_msp``, ``id_energy``, optionally
    ``ood_msp``, ``ood_energy``), written to ``open_set_scores.csv`` with ``id_paths`` /
    ``ood_paths`` and plotted in ``coverage.png`` with ``metrics["open_set"]``.
    """
    out.mkdir(parents=True, exist_ok=True)
    clean = _clean(dict(metrics))
    classes: list[str] = list(metrics["classes"])
    files: dict[str, Path] = {"metrics.json": out / "metrics.json"}
    files["metrics.json"].write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
    files.update(_write_csvs(out, clean, rows))
    figures = {
        "confusion.png": plot_confusion(
            metrics["confusion_matrix"], classes, out / "confusion.png", normalized=False
        ),
        "confusion_normalized.png": plot_confusion(
            metrics["confusion_matrix_normalized"],
            classes,
            out / "confusion_normalized.png",
            normalized=True,
        ),
        "reliability.png": plot_reliability(
            reliability,
            out / "reliability.png",
            ece=float(metrics["ece"]),
            after=reliability_after,
            ece_after=metrics.get("ece_after_temperature"),
            temperature=metrics.get("temperature"),
        ),
    }
    if gallery:
        figures["mistakes.png"] = plot_mistakes(rows, out / "mistakes.png")
    open_set = metrics.get("open_set")
    if open_set and open_set_scores is not None:
        figures["coverage.png"] = plot_coverage(
            open_set,
            out / "coverage.png",
            id_msp=open_set_scores["id_msp"],
            ood_msp=open_set_scores.get("ood_msp"),
            n_classes=len(classes),
            split=str(metrics.get("split", "test")),
        )
        files["open_set_scores.csv"] = _write_scores(
            out / "open_set_scores.csv", open_set_scores, id_paths, ood_paths
        )
    for name, path in (extra or {}).items():
        (figures if name.endswith(".png") else files)[name] = path
    files.update(figures)
    files["report.html"] = out / "report.html"
    files["report.html"].write_text(render_html(clean, figures), encoding="utf-8")
    return files
