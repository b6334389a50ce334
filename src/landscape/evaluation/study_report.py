"""The study report: one comparison table (CSV, Markdown, sortable HTML, JSON) and its plots.

Every figure comes from the runs' own evaluation (``evaluate_bundle`` through the Predictor):
accuracy and macro-F1 as mean ± std over seeds, per-class F1, **inference** latency (model
alone, batch 1, p50) and throughput, parameters, and **training** wall time in its own column.
A setting whose accuracy differs from the best by less than the best's seed std is flagged
``≈ best``: the table does not pretend to rank what the noise cannot. The HTML opens offline
(figures embedded, a few lines of inline JS to sort by clicking a header).
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .study import SettingRow, StudyConfig, StudyResult

__all__ = ["failure_groups", "format_mean_std", "markdown_table", "write_study_report"]

_PLOTS = {
    "accuracy_vs_latency.png": "Accuracy vs inference latency (Pareto front marked)",
    "accuracy_vs_params.png": "Accuracy vs parameters",
    "learning_curves.png": "Learning curves (validation accuracy per epoch, first seed)",
    "accuracy_vs_size.png": "Accuracy vs training-set size",
}


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


# --------------------------------------------------------------------------- plots


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


def _write_plots(out: Path, result: StudyResult) -> list[str]:
    written = []
    if _plot_accuracy_vs(
        out / "accuracy_vs_latency.png",
        result.rows,
        "latency_ms",
        "inference latency, ms/image (model, batch 1, p50; log scale)",
        front=True,
    ):
        written.append("accuracy_vs_latency.png")
    if _plot_accuracy_vs(
        out / "accuracy_vs_params.png",
        result.rows,
        "params_total",
        "parameters (log scale)",
        front=False,
    ):
        written.append("accuracy_vs_params.png")
    if _plot_curves(out / "learning_curves.png", result):
        written.append("learning_curves.png")
    if _plot_sizes(out / "accuracy_vs_size.png", result.rows):
        written.append("accuracy_vs_size.png")
    return written


# --------------------------------------------------------------------------- HTML

_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var asc = th.dataset.dir !== "asc";
    table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = asc ? "asc" : "desc";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      if (x === "" && y !== "") return 1;
      if (y === "" && x !== "") return -1;
      return asc ? cmp : -cmp;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; cursor: pointer; user-select: none; position: sticky; top: 0; }
th[data-dir=asc]::after { content: " ▲"; } th[data-dir=desc]::after { content: " ▼"; }
tr.best td { background: #e9f7e9; } tr.near td { background: #f6fbe9; }
tr.failed td { color: #a33; background: #fdf0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #ddd; margin: .5em 0; }
.note { color: #555; font-size: 13px; } code { background: #f4f4f4; padding: 0 3px; }
"""


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


def _html(result: StudyResult, study: StudyConfig, plots: Sequence[str], out: Path) -> str:
    esc = html.escape
    varied = result.varied
    head = "".join(f"<th>{esc(c)}</th>" for c in _columns(varied, _batch(result.rows)))
    body = []
    numeric = set(range(len(varied) + 1, len(varied) + 9)) - {len(varied) + 4}
    for row in result.rows:
        cls = "failed" if row.status == "failed" else "best" if row.best else ""
        cls = cls or ("near" if row.near_best else "")
        cells = "".join(
            f'<td data-v="{esc(v)}"{" class=num" if i in numeric else ""}'
            f"{f' title={esc(row.note)!r}' if i == 0 and row.note else ''}>{esc(c)}</td>"
            for i, (c, v) in enumerate(
                zip(_cells(row, varied), _sort_values(row, varied), strict=True)
            )
        )
        body.append(f'<tr class="{cls}">{cells}</tr>')
    figures = []
    for name in plots:
        data = base64.b64encode((out / name).read_bytes()).decode()
        img = f"<img alt='{esc(name)}' src='data:image/png;base64,{data}'>"
        figures.append(f"<h3>{esc(_PLOTS[name])}</h3>{img}")
    failures = failure_groups(result.records)
    failed_html = (
        "<h2>Failed runs</h2><ul>"
        + "".join(
            f"<li>{', '.join(f'<code>{esc(n)}</code>' for n in names)}: {esc(e)}</li>"
            for names, e in failures
        )
        + "</ul>"
        if failures
        else ""
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in _notes(result))
    described = f"<p>{esc(study.description)}</p>" if study.description else ""
    c = result.counts
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>study {esc(result.name)}</title><style>{_CSS}</style></head>
<body>
<h1>Study <code>{esc(result.name)}</code></h1>
{described}
<p class="note">size {esc(result.size)} · data <code>{esc(str(result.data))}</code> ·
{c["runs"]} runs ({c["ok"]} ok, {c["failed"]} failed, {c["skipped"]} reused from an earlier call) ·
{esc(_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))} · click a column header to sort</p>
<table class="sortable"><thead><tr>{head}</tr></thead><tbody>
{"".join(body)}
</tbody></table>
<ul class="note">{notes}</ul>
{failed_html}
<h2>Figures</h2>
{"".join(figures) or "<p>no figure: no run succeeded</p>"}
<script>{_SORT_JS}</script>
</body></html>
"""


def write_study_report(result: StudyResult, study: StudyConfig) -> dict[str, str]:
    """Write ``results.{csv,md,html,json}`` and the PNG plots into ``result.out``."""
    out = Path(result.out)
    out.mkdir(parents=True, exist_ok=True)
    plots = _write_plots(out, result)
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
        md += ["", "## Figures", "", *(f"![{_PLOTS[p]}]({p})" for p in plots)]
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
