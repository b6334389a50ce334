"""What the pages show, as plain values: gallery filters read from a query string, the detail
page's metadata rows, chart geometry and a model's evaluation figures. No HTTP here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from landscape.api.files import parse_bbox, parse_near
from landscape.errors import UserError
from landscape.index.repository import SearchFilters

__all__ = [
    "FILTER_NAMES",
    "GalleryQuery",
    "comparison_view",
    "evaluation_figures",
    "human_size",
    "label_bars",
    "metadata_rows",
    "model_rows",
    "month_chart",
    "read_gallery_query",
]

#: every filter of ``GET /api/v1/files`` the gallery's sidebar offers, in the form's order
FILTER_NAMES: tuple[str, ...] = (
    "label",
    "min_confidence",
    "max_confidence",
    "unknown",
    "media",
    "status",
    "taken_after",
    "taken_before",
    "camera",
    "place",
    "q",
    "bbox",
    "near",
    "model",
    "sort",
    "limit",
)


class GalleryQuery(BaseModel):
    """The gallery's query string (empty fields dropped before validation)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    label: str | None = Field(None, max_length=128)
    min_confidence: float | None = Field(None, ge=0, le=1)
    max_confidence: float | None = Field(None, ge=0, le=1)
    unknown: bool | None = None
    media: Literal["image", "video", "other"] | None = None
    status: Literal["ok", "error", "missing", "quarantined"] | None = None
    taken_after: date | None = None
    taken_before: date | None = None
    camera: str | None = Field(None, max_length=200)
    place: str | None = Field(None, max_length=200)
    q: str | None = Field(None, max_length=500)
    bbox: str | None = Field(None, max_length=100)
    near: str | None = Field(None, max_length=100)
    model: str | None = Field(None, max_length=64)
    sort: Literal["newest", "oldest"] = "newest"
    limit: int = Field(60, ge=1, le=200)
    cursor: str | None = Field(None, max_length=200)

    def filters(self) -> SearchFilters:
        """The search these fields describe (:class:`UserError` for a bad box or point)."""
        return SearchFilters(
            label=self.label,
            min_confidence=self.min_confidence,
            max_confidence=self.max_confidence,
            unknown=self.unknown,
            media=self.media,
            status=self.status,
            taken_after=self.taken_after,
            taken_before=self.taken_before,
            camera=self.camera,
            place=self.place,
            bbox=parse_bbox(self.bbox),
            near=parse_near(self.near),
            path_contains=self.q,
            model_id=self.model,
            sort=self.sort,
            limit=self.limit,
        )


@dataclass
class GalleryRequest:
    """A gallery query as read: the values to refill the form with, the search (None when the
    query could not be read) and what was wrong with it."""

    values: dict[str, str]
    query: GalleryQuery
    filters: SearchFilters | None
    error: str | None = None
    active: int = 0
    share: dict[str, str] = field(default_factory=dict)

    def url_with(self, **changes: str | None) -> str:
        """This view's URL with some parameters changed (None drops one)."""
        params = dict(self.share)
        for name, value in changes.items():
            if value is None:
                params.pop(name, None)
            else:
                params[name] = value
        return "/?" + urlencode(params) if params else "/"


def read_gallery_query(params: dict[str, str]) -> GalleryRequest:
    """The gallery's filters from a query string; a mistake is a message, never an exception."""
    values = {k: v.strip() for k, v in params.items() if k in (*FILTER_NAMES, "cursor")}
    present = {k: v for k, v in values.items() if v}
    share = {k: v for k, v in present.items() if k != "cursor"}
    active = sum(1 for k in share if k not in ("sort", "limit"))
    try:
        query = GalleryQuery.model_validate(present)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "query"
        return GalleryRequest(
            values, GalleryQuery(), None, f"{where}: {first.get('msg', 'invalid')}", active, share
        )
    try:
        filters = query.filters()
    except UserError as exc:
        return GalleryRequest(values, query, None, str(exc), active, share)
    return GalleryRequest(values, query, filters, None, active, share)


def human_size(n: int | None) -> str:
    """``1536`` → ``1.5 KB``."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _num(value: Any, fmt: str) -> str | None:
    return fmt.format(value) if isinstance(value, int | float) else None


def metadata_rows(detail: dict[str, Any]) -> list[tuple[str, str]]:
    """The detail page's metadata table: (what, value) for every fact the index holds."""
    meta: dict[str, Any] = detail.get("metadata") or {}
    rows: list[tuple[str, str | None]] = [
        ("Path", detail.get("path")),
        ("Type", f"{detail.get('media_type')} ({detail.get('mime') or 'unknown'})"),
        ("Size", human_size(detail.get("size"))),
        ("Status", detail.get("status")),
        ("Error", detail.get("error")),
    ]
    if meta.get("width") and meta.get("height"):
        rows.append(("Dimensions", f"{meta['width']} × {meta['height']} px"))
    camera = " ".join(str(meta[k]) for k in ("camera_make", "camera_model") if meta.get(k))
    exposure = meta.get("exposure_time")
    rows += [
        ("Format", meta.get("format")),
        ("Captured", meta.get("captured_at") or None),
        ("Camera", camera or None),
        ("Lens", meta.get("lens")),
        (
            "Exposure",
            (f"1/{round(1 / exposure)} s" if 0 < exposure < 1 else f"{exposure:g} s")
            if isinstance(exposure, int | float) and exposure > 0
            else None,
        ),
        ("Aperture", _num(meta.get("f_number"), "f/{:g}")),
        ("ISO", _num(meta.get("iso"), "{:g}")),
        ("Focal length", _num(meta.get("focal_length"), "{:g} mm")),
    ]
    lat, lon = meta.get("latitude"), meta.get("longitude")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        gps = f"{lat:.5f}, {lon:.5f}"
        if isinstance(meta.get("altitude"), int | float):
            gps += f" ({meta['altitude']:.0f} m)"
        rows.append(("GPS", gps))
    place = ", ".join(
        str(meta[k]) for k in ("place_city", "place_region", "place_country") if meta.get(k)
    )
    rows += [
        ("Place", place or None),
        ("Duration", _num(meta.get("duration"), "{:.1f} s")),
        ("Frame rate", _num(meta.get("fps"), "{:g} fps")),
        ("Video codec", meta.get("video_codec")),
        ("Audio codec", meta.get("audio_codec")),
        ("Bit rate", _num(meta.get("bit_rate"), "{:,} bit/s")),
        ("Content hash", detail.get("content_hash")),
        ("Taken (sort key)", detail.get("taken_at")),
        ("Indexed", detail.get("indexed_at")),
    ]
    return [(name, str(value)) for name, value in rows if value not in (None, "")]


def label_bars(probabilities: dict[str, Any] | None, classes: list[str]) -> list[dict[str, Any]]:
    """The probability bar chart: one bar per class (the model's order), with its colour slot."""
    probabilities = probabilities or {}
    names = list(classes) or sorted(probabilities)
    names += [n for n in probabilities if n not in names]
    bars = []
    for name in names:
        value = probabilities.get(name)
        p = float(value) if isinstance(value, int | float) else 0.0
        bars.append({"label": name, "p": p, "pct": round(100 * p, 1), "slot": slot(name, classes)})
    return bars


def slot(label: str | None, classes: list[str]) -> int:
    """A label's colour slot (0–9): its class index, so colours agree on every page."""
    if label is None:
        return 9
    if label in classes:
        return classes.index(label) % 9
    return sum(label.encode()) % 9


@dataclass
class MonthChart:
    """A stacked bar chart of counts per month in SVG user units."""

    width: int
    height: int
    bars: list[dict[str, Any]]
    ticks: list[dict[str, Any]]
    legend: list[dict[str, Any]]
    peak: int


def month_chart(months: dict[str, dict[str, int]], classes: list[str]) -> MonthChart | None:
    """Counts per label per month (``GET /stats``'s ``months``) as stacked bars; None when
    there are none."""
    if not months:
        return None
    keys = sorted(months)
    peak = max(sum(v.values()) for v in months.values()) or 1
    step, bar, top, chart_h = 46, 30, 10, 160
    width = max(step * len(keys) + 40, 320)
    labels = sorted({n for v in months.values() for n in v}, key=lambda n: slot(n, classes))
    bars: list[dict[str, Any]] = []
    for i, key in enumerate(keys):
        x = 36 + i * step
        y = float(top + chart_h)
        parts = []
        for name in labels:
            n = months[key].get(name, 0)
            if not n:
                continue
            h = chart_h * n / peak
            y -= h
            parts.append({"y": round(y, 2), "h": round(h, 2), "label": name, "n": n})
            parts[-1]["slot"] = slot(name, classes)
        bars.append(
            {"x": x, "w": bar, "month": key, "parts": parts, "total": sum(months[key].values())}
        )
    every = max(1, math.ceil(len(keys) / 16))
    ticks = [
        {"x": b["x"] + bar / 2, "text": b["month"]} for i, b in enumerate(bars) if i % every == 0
    ]
    legend = [{"label": n, "slot": slot(n, classes)} for n in labels]
    return MonthChart(width, top + chart_h + 28, bars, ticks, legend, peak)


_ACCURACY_KEYS = (
    ("accuracy", "Accuracy"),
    ("test_acc", "Test accuracy"),
    ("val_acc", "Validation accuracy"),
    ("cv_acc", "Cross-validated accuracy"),
    ("train_acc", "Training accuracy"),
    ("macro_f1", "Macro F1"),
    ("weighted_f1", "Weighted F1"),
    ("macro_precision", "Macro precision"),
    ("macro_recall", "Macro recall"),
)
_COUNT_KEYS = (
    ("n_train", "Training images"),
    ("n_val", "Validation images"),
    ("n_test", "Test images"),
)


def evaluation_figures(metrics: dict[str, Any] | None, classes: list[str]) -> dict[str, Any]:
    """A model's figures from its bundle's ``metrics``: headline accuracies, per-class
    precision/recall/F1 and the confusion matrix (each present only when the bundle has it;
    an evaluation's own figures, under ``evaluation`` or ``test``, take precedence)."""
    metrics = metrics if isinstance(metrics, dict) else {}
    sources = [metrics]
    for key in ("evaluation", "test"):
        nested = metrics.get(key)
        if isinstance(nested, dict):
            sources.insert(0, nested)
    headline: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, name in _ACCURACY_KEYS:
        for source in sources:
            value = source.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and key not in seen:
                headline.append((name, f"{100 * value:.1f} %"))
                seen.add(key)
    for key, name in _COUNT_KEYS:
        value = metrics.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            headline.append((name, str(value)))
    per_class: list[dict[str, Any]] = []
    confusion: list[list[int]] | None = None
    for source in sources:
        table = source.get("per_class")
        if not per_class and isinstance(table, dict):
            for name, row in table.items():
                if isinstance(row, dict):
                    per_class.append(
                        {
                            "label": str(name),
                            "precision": row.get("precision"),
                            "recall": row.get("recall"),
                            "f1": row.get("f1"),
                            "support": row.get("support"),
                        }
                    )
        matrix = source.get("confusion_matrix")
        if (
            confusion is None
            and isinstance(matrix, list)
            and len(matrix) == len(classes)
            and all(isinstance(r, list) and len(r) == len(classes) for r in matrix)
        ):
            confusion = [[int(v) for v in r] for r in matrix]
    return {"headline": headline, "per_class": per_class, "confusion": confusion}


def _fraction(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _accuracy(metrics: dict[str, Any]) -> float | None:
    """A bundle's own test accuracy (an evaluation's first, then the training run's)."""
    for source in (metrics.get("evaluation"), metrics.get("test"), metrics):
        if isinstance(source, dict):
            for key in ("accuracy", "test_acc"):
                value = _fraction(source.get(key))
                if value is not None:
                    return value
    return None


def _held_out(metrics: dict[str, Any]) -> tuple[float | None, float | None]:
    """A candidate's and its base's accuracy on the retrain's held-out files."""
    comparison = metrics.get("comparison")
    if not isinstance(comparison, dict):
        return None, None
    sides = [comparison.get(k) for k in ("candidate", "base")]
    mine, base = (_fraction(s.get("accuracy")) if isinstance(s, dict) else None for s in sides)
    return mine, base


def model_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The models table: one row per registered model (``list_models``' order, active first)
    with the figures it shows; a candidate is an inactive model with a retrain comparison."""
    rows = []
    for m in models:
        metrics = m.get("metrics") if isinstance(m.get("metrics"), dict) else {}
        assert isinstance(metrics, dict)
        held_out, base_held_out = _held_out(metrics)
        base_id = metrics.get("base_model_id")
        rows.append(
            {
                "model_id": str(m["model_id"]),
                "active": bool(m.get("active")),
                "name": m.get("name") or "",
                "backbone": m.get("backbone") or "",
                "classes": list(m.get("classes") or []),
                "created": str(m.get("created_at") or "")[:16].replace("T", " "),
                "registered": str(m.get("registered_at") or "")[:16].replace("T", " "),
                "predictions": int(m.get("predictions") or 0),
                "test_acc": _accuracy(metrics),
                "held_out_acc": held_out,
                "base_held_out_acc": base_held_out,
                "base_model_id": str(base_id) if isinstance(base_id, str) else None,
                "candidate": not m.get("active") and isinstance(metrics.get("comparison"), dict),
            }
        )
    return rows


def _signed(diff: float | None, scale: float = 100, unit: str = " pts") -> str:
    if diff is None:
        return "–"
    value = scale * diff
    if abs(value) < 0.05:
        return f"±0.0{unit}"
    return f"{value:+.1f}{unit}".replace("-", "−")


def _trend(diff: float | None) -> str:
    if diff is None or abs(diff) < 0.0005:
        return "same"
    return "up" if diff > 0 else "down"


def _matrix(value: Any, n: int) -> list[list[int]] | None:
    if not (isinstance(value, list) and len(value) == n and n):
        return None
    if not all(isinstance(r, list) and len(r) == n for r in value):
        return None
    try:
        return [[int(v) for v in r] for r in value]
    except (TypeError, ValueError):
        return None


def comparison_view(
    comparison: dict[str, Any], present: dict[int, str] | None = None
) -> dict[str, Any]:
    """A retrain's comparison as the candidate's panel shows it: base and candidate headline
    figures with their difference, per-class F1 bars, both confusion matrices and the
    held-out files whose label changed. ``present`` maps the ids of changed files still in
    the index to their media type (the others get no thumbnail or link)."""
    classes = [str(c) for c in comparison.get("classes") or []]
    sides: dict[str, dict[str, Any]] = {}
    for key in ("base", "candidate"):
        side = comparison.get(key)
        sides[key] = side if isinstance(side, dict) else {}
    base, cand = sides["base"], sides["candidate"]
    headline = []
    for key, name in (("accuracy", "Accuracy"), ("macro_f1", "Macro F1")):
        b, c = _fraction(base.get(key)), _fraction(cand.get(key))
        diff = c - b if b is not None and c is not None else None
        headline.append(
            {"name": name, "base": b, "candidate": c, "diff": _signed(diff), "trend": _trend(diff)}
        )
    support = comparison.get("support") if isinstance(comparison.get("support"), dict) else {}
    assert isinstance(support, dict)
    per_class = []
    for name in classes:
        f1s = []
        for side in (base, cand):
            table = side.get("per_class_f1")
            f1s.append(_fraction(table.get(name)) if isinstance(table, dict) else None)
        b, c = f1s
        diff = c - b if b is not None and c is not None else None
        per_class.append(
            {
                "label": name,
                "slot": slot(name, classes),
                "base": b,
                "candidate": c,
                "base_pct": round(100 * (b or 0.0), 1),
                "candidate_pct": round(100 * (c or 0.0), 1),
                "diff": _signed(diff),
                "trend": _trend(diff),
                "support": support.get(name),
            }
        )
    present = present or {}
    changed: list[dict[str, Any]] = []
    for item in comparison.get("changed") or []:
        if not isinstance(item, dict):
            continue
        file_id = item.get("file_id")
        media = present.get(file_id) if isinstance(file_id, int) else None
        known = media is not None
        path = str(item.get("path") or "")
        truth, was = str(item.get("truth") or "?"), str(item.get("base") or "?")
        fixed = bool(item.get("fixed"))
        outcome = "fixed" if fixed else "broken" if was == truth else "still wrong"
        changed.append(
            {
                "file_id": file_id if known else None,
                "thumb": media in ("image", "video"),
                "name": path.replace("\\", "/").rsplit("/", 1)[-1] or f"file {file_id}",
                "path": path,
                "truth": truth,
                "base": was,
                "candidate": str(item.get("candidate") or "?"),
                "fixed": fixed,
                "outcome": outcome,
                "slot": slot(truth, classes),
            }
        )
    order = {"fixed": 0, "broken": 1, "still wrong": 2}
    changed.sort(key=lambda c: (order[c["outcome"]], c["truth"], c["name"]))
    held_out = comparison.get("held_out")
    return {
        "classes": classes,
        "held_out": held_out if isinstance(held_out, int) else None,
        "base_id": str(base.get("model_id") or ""),
        "candidate_id": str(cand.get("model_id") or ""),
        "headline": headline,
        "per_class": per_class,
        "base_confusion": _matrix(base.get("confusion_matrix"), len(classes)),
        "candidate_confusion": _matrix(cand.get("confusion_matrix"), len(classes)),
        "changed": changed,
        "fixed": sum(1 for c in changed if c["fixed"]),
        "broken": sum(1 for c in changed if c["outcome"] == "broken"),
        "still_wrong": sum(1 for c in changed if c["outcome"] == "still wrong"),
        "counts": {
            str(k): v
            for k, v in (comparison.get("counts") or {}).items()
            if isinstance(v, int) and not isinstance(v, bool)
        },
        "data": _data_rows(comparison.get("counts")),
    }


_COUNT_NAMES = {
    "reviewed": "Reviewed files",
    "held_out": "Held out (scored, never trained on)",
    "train_reviewed": "Reviewed files trained on",
    "extra_data": "Extra images (base data)",
    "pseudo_labels": "Pseudo-labelled files",
    "train": "Training images in all",
    "val": "Validation images",
}


def _data_rows(counts: Any) -> list[tuple[str, int]]:
    """A retrain's data counts as (what, n) rows, known ones first in a reading order."""
    if not isinstance(counts, dict):
        return []
    numbers = {
        str(k): v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)
    }
    rows = [(name, numbers.pop(key)) for key, name in _COUNT_NAMES.items() if key in numbers]
    rows += [(key.replace("_", " ").capitalize(), n) for key, n in sorted(numbers.items())]
    return rows
