"""Aggregating a study: seeds folded into one :class:`SettingRow` per setting.

:class:`StudyResult` (what a study did) lives here too, with the rows it holds, so the runner
and the report both import this module and neither imports the other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from landscape.errors import UserError

from .plan import NOT_HASHED, RunPlan
from .spec import flatten_keys

__all__ = ["SettingRow", "StudyResult", "aggregate", "pareto_front"]


@dataclass
class SettingRow:
    """One line of the comparison table: a setting aggregated over its seeds."""

    setting: str
    group: str
    size: int | str | None
    settings: dict[str, Any]
    note: str | None
    n_seeds: int
    n_ok: int
    accuracy_mean: float | None = None
    accuracy_std: float | None = None
    macro_f1_mean: float | None = None
    macro_f1_std: float | None = None
    per_class_f1: dict[str, float] = field(default_factory=dict)
    latency_ms: float | None = None
    e2e_latency_ms: float | None = None
    images_per_s: float | None = None
    latency_batch: int | None = None
    params_total: int | None = None
    params_trainable: int | None = None
    train_seconds: float | None = None
    n_train: float | None = None
    val_acc_mean: float | None = None
    errors: list[str] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)
    best: bool = False
    near_best: bool = False
    pareto: bool = False

    @property
    def status(self) -> str:
        """``ok``, ``failed`` or ``partial`` (some seeds failed)."""
        if self.n_ok == self.n_seeds:
            return "ok"
        return "failed" if self.n_ok == 0 else "partial"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``status`` included)."""
        return {**asdict(self), "status": self.status}


@dataclass
class StudyResult:
    """What :func:`~.run.run_study` did: every run's record and the aggregated rows."""

    name: str
    out: Path
    size: str
    data: Path
    records: list[dict[str, Any]]
    rows: list[SettingRow]
    varied: list[str]
    counts: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _display(key: str, value: Any, config: dict[str, Any]) -> Any:
    fine = config.get("fine_tune")
    if key == "policy" and fine:
        return f"frozen ({fine['head_epochs']} ep) → {fine['unfreeze']}"
    if key == "weights" and value is None:
        try:
            from landscape.models.registry import get_backbone_info

            return f"{get_backbone_info(config['backbone']).default_weights} (default)"
        except UserError:
            return "default"
    return value


def _varied_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    flats = [flatten_keys(c) for c in configs]
    keys: list[str] = []
    for flat in flats:
        keys.extend(k for k in flat if k not in keys)
    skip = {"data", "seed", *NOT_HASHED}
    varied = [
        k
        for k in keys
        if k.split(".")[0] not in skip
        and len({json.dumps(f.get(k), default=str) for f in flats}) > 1
    ]
    # A fine_tune schedule is shown in the policy column (``frozen (2 ep) → deepest:1``).
    if any(k.startswith("fine_tune") for k in varied) and "policy" not in varied:
        varied.insert(0, "policy")
    varied = [k for k in varied if not k.startswith("fine_tune")]
    return ["backbone", *[k for k in varied if k != "backbone"]]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def aggregate(
    records: Sequence[dict[str, Any]], plans: Sequence[RunPlan]
) -> tuple[list[SettingRow], list[str]]:
    """Fold seeds into one :class:`SettingRow` per setting (in plan order) and flag the best.

    ``near_best`` marks a setting whose mean accuracy is within the best setting's seed std
    of the best (the difference is smaller than the seed noise). ``pareto`` marks settings no
    other beats on both accuracy and batch-1 latency.
    """
    by_setting: dict[str, list[tuple[RunPlan, dict[str, Any]]]] = {}
    for plan, record in zip(plans, records, strict=True):
        by_setting.setdefault(plan.setting, []).append((plan, record))
    first_configs = [
        json.loads(items[0][0].config.model_dump_json()) for items in by_setting.values()
    ]
    varied = _varied_keys(first_configs)
    rows: list[SettingRow] = []
    for (name, items), config in zip(by_setting.items(), first_configs, strict=True):
        plan0 = items[0][0]
        flat = flatten_keys(config)
        ok = [r for _, r in items if r["status"] == "ok" and r.get("eval")]
        evals = [r["eval"] for r in ok]
        acc_mean, acc_std = _mean_std([e["accuracy"] for e in evals])
        f1_mean, f1_std = _mean_std([e["macro_f1"] for e in evals])
        classes = list(evals[0]["per_class_f1"]) if evals else []
        params = next((e.get("params") for e in evals if e.get("params")), None) or {}
        train_params = next(((r.get("train") or {}).get("params") for r in ok), None) or {}
        rows.append(
            SettingRow(
                setting=name,
                group=plan0.group,
                size=plan0.size,
                settings={k: _display(k, flat.get(k), config) for k in varied},
                note=plan0.note,
                n_seeds=len(items),
                n_ok=len(ok),
                accuracy_mean=acc_mean,
                accuracy_std=acc_std,
                macro_f1_mean=f1_mean,
                macro_f1_std=f1_std,
                per_class_f1={
                    c: v
                    for c in classes
                    if (v := _mean(e["per_class_f1"].get(c) for e in evals)) is not None
                },
                latency_ms=_mean(e.get("latency_ms") for e in evals),
                e2e_latency_ms=_mean(e.get("e2e_latency_ms") for e in evals),
                images_per_s=_mean(e.get("images_per_s") for e in evals),
                latency_batch=next(
                    (e["latency_batch"] for e in evals if e.get("latency_batch")), None
                ),
                params_total=params.get("total") or train_params.get("total"),
                params_trainable=train_params.get("trainable", params.get("trainable")),
                train_seconds=_mean((r.get("train") or {}).get("train_seconds") for r in ok),
                n_train=_mean((r.get("train") or {}).get("n_train") for r in ok),
                val_acc_mean=_mean((r.get("train") or {}).get("val_acc") for r in ok),
                errors=sorted({r["error"] for _, r in items if r.get("error")}),
                run_dirs=[r["run_dir"] for _, r in items],
            )
        )
    scored = [r for r in rows if r.accuracy_mean is not None]
    if scored:
        best = max(scored, key=lambda r: (r.accuracy_mean or 0.0, -(r.latency_ms or 0.0)))
        best.best = True
        noise = best.accuracy_std or 0.0
        for row in scored:
            gap = abs((best.accuracy_mean or 0.0) - (row.accuracy_mean or 0.0))
            row.near_best = row is not best and gap < noise
        timed = [r for r in scored if r.latency_ms is not None]
        points = [(r.latency_ms or 0.0, r.accuracy_mean or 0.0) for r in timed]
        for i in pareto_front(points):
            timed[i].pareto = True
    return rows, varied
