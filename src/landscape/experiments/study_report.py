"""The study report: one comparison table (CSV, Markdown, sortable HTML, JSON) and its plots.

Every figure comes from the runs' own evaluation (``evaluate_bundle`` through the Predictor):
accuracy and macro-F1 as mean ± std over seeds, per-class F1, **inference** latency (model
alone, batch 1, p50) and throughput, parameters, and **training** wall time in its own column.
A setting whose accuracy differs from the best by less than the best's seed std is flagged
``≈ best``: the table does not pretend to rank what the noise cannot. The HTML comes from the
Jinja2 template ``templates/study_report.html.j2`` and opens offline (figures embedded, a few
lines of inline JS to sort by clicking a header).
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .aggregate import SettingRow, StudyResult
from .spec import StudyConfig
from .study_plots import PLOT_TITLES, write_plots

if TYPE_CHECKING:
    import jinja2

__all__ = ["failure_groups", "format_mean_std", "markdown_table", "write_study_report"]

_TEMPLATE = "study_report.html.j2"


def format_mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    """``0.842 ± 0.013``; ``0.842`` for one seed; ``—`` when missing."""
    if mean is None:
        return "—"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _params(row: SettingRow) -> str:
    if row.params_total is None:
        return "—"
    total = f"{row.params_total / 1e6:.2f}M"
    if row.params_trainable is None:
        return total
    return f"{total} / {row.params_trainable / 1e6:.3f}M"


def _flag(row: SettingRow) -> str:
    marks = []
    if row.best:
        marks.append("★ best")
    if row.near_best:
        marks.append("≈ best")
    if row.pareto:
        marks.append("pareto")
    if row.status != "ok":
        marks.append(row.status)
    return ", ".join(marks)


def _per_class(row: SettingRow) -> str:
    return " ".join(f"{c} {v:.2f}" for c, v in row.per_class_f1.items()) or "—"


def _seeds(row: SettingRow) -> str:
    return str(row.n_seeds) if row.n_ok == row.n_seeds else f"{row.n_ok}/{row.n_seeds} ok"


def _columns(varied: Sequence[str], batch: int | None) -> list[str]:
    return [
        "setting",
        *varied,
        "seeds",
        "accuracy",
        "macro-F1",
        "per-class F1",
        "ms/img (b1 p50)",
        f"img/s (b{batch or 32})",
        "params total / trained",
        "train s",
        "flag",
    ]


def _setting(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _fmt(value)


def _cells(row: SettingRow, varied: Sequence[str]) -> list[str]:
    return [
        row.setting,
        *(_setting(row.settings.get(k)) for k in varied),
        _seeds(row),
        format_mean_std(row.accuracy_mean, row.accuracy_std),
        format_mean_std(row.macro_f1_mean, row.macro_f1_std),
        _per_class(row),
        _fmt(row.latency_ms),
        _fmt(row.images_per_s, 1),
        _params(row),
        _fmt(row.train_seconds, 1),
        _flag(row),
    ]


def _batch(rows: Sequence[SettingRow]) -> int | None:
    return next((r.latency_batch for r in rows if r.latency_batch), None)


def markdown_table(rows: Sequence[SettingRow], varied: Sequence[str]) -> str:
    """The comparison table as GitHub Markdown."""
    head = _columns(varied, _batch(rows))
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        cells = [c.replace("|", "\\|") for c in _cells(row, varied)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _notes(result: StudyResult) -> list[str]:
    rows = result.rows
    best = next((r for r in rows if r.best), None)
    records = [r for r in result.records if r.get("eval")]
    device = next((r["eval"].get("latency_device") for r in records), None)
    threads = next((r["eval"].get("latency_threads") for r in records), None)
    notes = [
        f"accuracy and macro-F1 on each run's {_split(result)} split, mean ± sample std over "
        "seeds (each seed has its own split, initialisation and shuffling)",
    ]
    if best is not None:
        noise = best.accuracy_std
        notes.append(
            f"★ best: {best.setting}; ≈ best: |Δ accuracy| smaller than the best's seed std "
            + (f"({noise:.3f}): not a real difference" if noise else "(one seed: no estimate)")
        )
    if device:
        notes.append(
            f"inference latency: the model alone on preprocessed tensors, batch 1, p50, on "
            f"{device} with {threads} torch thread(s); img/s at batch {_batch(rows)}; end-to-end "
            "figures from JPEG bytes are in results.csv"
        )
    notes.append("train s: wall time of training (fit), not inference")
    if any(r.get("eval", {}) and r["eval"].get("busy_machine") for r in records):
        notes.append("the machine was busy while timing some runs: latency figures are pessimistic")
    if result.size == "tiny":
        notes.append("size tiny: 1 epoch, a few images per class — a smoke test, not a result")
    return notes


def _split(result: StudyResult) -> str:
    return next((r["eval"]["split"] for r in result.records if r.get("eval")), "test")


def failure_groups(records: Sequence[dict[str, Any]]) -> list[tuple[list[str], str]]:
    """Failed runs grouped by their error: ``[(run directory names, error)]``."""
    groups: dict[str, list[str]] = {}
    for r in records:
        if r["status"] != "ok":
            groups.setdefault(r.get("error") or "unknown error", []).append(Path(r["run_dir"]).name)
    return [(names, error) for error, names in groups.items()]


def _write_csv(path: Path, rows: Sequence[SettingRow], varied: Sequence[str]) -> None:
    classes: list[str] = []
    for row in rows:
        classes.extend(c for c in row.per_class_f1 if c not in classes)
    header = [
        "setting",
        "status",
        *varied,
        "size",
        "n_seeds",
        "n_ok",
        "accuracy_mean",
        "accuracy_std",
        "macro_f1_mean",
        "macro_f1_std",
        *(f"f1_{c}" for c in classes),
        "latency_ms_b1_p50",
        "e2e_latency_ms_b1_p50",
        "images_per_s",
        "latency_batch",
        "params_total",
        "params_trainable",
        "train_seconds",
        "n_train",
        "val_acc_mean",
        "best",
        "near_best",
        "pareto",
        "error",
    ]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for r in rows:
            writer.writerow(
                [
                    r.setting,
                    r.status,
                    *(_csv_value(r.settings.get(k)) for k in varied),
                    "" if r.size is None else r.size,
                    r.n_seeds,
                    r.n_ok,
                    r.accuracy_mean,
                    r.accuracy_std,
                    r.macro_f1_mean,
                    r.macro_f1_std,
                    *(r.per_class_f1.get(c) for c in classes),
                    r.latency_ms,
                    r.e2e_latency_ms,
                    r.images_per_s,
                    r.latency_batch,
                    r.params_total,
                    r.params_trainable,
                    r.train_seconds,
                    r.n_train,
                    r.val_acc_mean,
                    r.best,
                    r.near_best,
                    r.pareto,
                    " | ".join(r.errors),
                ]
            )


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


# --------------------------------------------------------------------------- HTML


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    # The template's name ends in .j2, which select_autoescape() alone would not escape.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("landscape.experiments", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _sort_values(row: SettingRow, varied: Sequence[str]) -> list[str]:
    def num(value: float | int | None) -> str:
        return "" if value is None else repr(float(value))

    return [
        row.setting,
        *(_fmt(row.settings.get(k)) for k in varied),
        str(row.n_ok),
        num(row.accuracy_mean),
        num(row.macro_f1_mean),
        num(sum(row.per_class_f1.values()) / len(row.per_class_f1) if row.per_class_f1 else None),
        num(row.latency_ms),
        num(row.images_per_s),
        num(row.params_total),
        num(row.train_seconds),
        _flag(row),
    ]


def _row_class(row: SettingRow) -> str:
    if row.status == "failed":
        return "failed"
    if row.best:
        return "best"
    return "near" if row.near_best else ""


def _html_rows(rows: Sequence[SettingRow], varied: Sequence[str]) -> list[dict[str, Any]]:
    """Each row's CSS class and cells (text shown, value sorted by, numeric, tooltip)."""
    # seeds, accuracy, macro-F1, ms/img, img/s, params, train s: right-aligned numbers.
    first = len(varied) + 1
    numeric = set(range(first, first + 8)) - {first + 3}
    return [
        {
            "cls": _row_class(row),
            "cells": [
                {
                    "text": text,
                    "sort": sort,
                    "num": i in numeric,
                    "title": row.note if i == 0 else None,
                }
                for i, (text, sort) in enumerate(
                    zip(_cells(row, varied), _sort_values(row, varied), strict=True)
                )
            ],
        }
        for row in rows
    ]


def _html(result: StudyResult, study: StudyConfig, plots: Sequence[str], out: Path) -> str:
    figures = [
        {
            "name": name,
            "title": PLOT_TITLES[name],
            "png_base64": base64.b64encode((out / name).read_bytes()).decode(),
        }
        for name in plots
    ]
    return (
        _environment()
        .get_template(_TEMPLATE)
        .render(
            result=result,
            description=study.description,
            created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            columns=_columns(result.varied, _batch(result.rows)),
            rows=_html_rows(result.rows, result.varied),
            notes=_notes(result),
            failures=failure_groups(result.records),
            figures=figures,
        )
    )


def write_study_report(result: StudyResult, study: StudyConfig) -> dict[str, str]:
    """Write ``results.{csv,md,html,json}`` and the PNG plots into ``result.out``."""
    out = Path(result.out)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(out, result)
    _write_csv(out / "results.csv", result.rows, result.varied)
    failures = failure_groups(result.records)
    md = [
        f"# Study `{result.name}` ({result.size})",
        "",
        markdown_table(result.rows, result.varied),
        "",
        *(f"- {n}" for n in _notes(result)),
    ]
    if failures:
        md += ["", "## Failed runs", ""]
        md += [f"- {', '.join(f'`{n}`' for n in names)}: {e}" for names, e in failures]
    if plots:
        md += ["", "## Figures", "", *(f"![{PLOT_TITLES[p]}]({p})" for p in plots)]
    (out / "results.md").write_text("\n".join(md) + "\n")
    (out / "results.html").write_text(_html(result, study, plots, out))
    payload = {
        "study": result.name,
        "description": study.description,
        "size": result.size,
        "data": str(result.data),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "counts": result.counts,
        "varied": result.varied,
        "rows": [r.to_dict() for r in result.rows],
        "runs": result.records,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    files = {n: str(out / n) for n in ("results.csv", "results.md", "results.html", "results.json")}
    files.update({p: str(out / p) for p in plots})
    return files
