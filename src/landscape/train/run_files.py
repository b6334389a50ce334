"""What a run directory holds, written and read in one place.

``config.yaml`` (the resolved config), ``state.json`` (completed stages, for ``--resume``),
``logs/stage*/metrics*.csv`` (per-epoch history), ``curves.png``, ``metrics.json`` and
``bundle/``. The gradient trainer and the classic baseline both finish a run through
:func:`write_run_outputs`, so their bundles record the same provenance.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from landscape.config import TrainConfig
from landscape.data.datasets import DatasetIndex
from landscape.data.transforms import Preprocessing
from landscape.errors import UserError
from landscape.models.bundle import save_bundle
from landscape.models.net import LandscapeNet
from landscape.models.weights import WeightsRecord

__all__ = [
    "RunResult",
    "check_new_run_dir",
    "keep_log_before_resume",
    "plot_curves",
    "read_history",
    "read_state",
    "run_provenance",
    "save_state",
    "write_config",
    "write_run_outputs",
]


@dataclass
class RunResult:
    """What a finished run produced (the result of ``fit`` and ``fit_classic``)."""

    run_dir: Path
    bundle: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    #: False in the extra processes of a data-parallel run (they write and print nothing).
    is_main: bool = True


def check_new_run_dir(run_dir: Path, *, resumable: bool = True) -> None:
    """Refuse a run directory that already holds a finished run (its bundle)."""
    if (run_dir / "bundle").exists():
        raise UserError(
            "run directory already holds a finished run",
            path=run_dir,
            fix="choose another --out, delete it" + (", or --resume it" if resumable else ""),
        )


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    """Create ``run_dir`` and write the resolved config as ``config.yaml``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False)
    )


def read_state(run_dir: Path) -> dict[str, Any]:
    """``state.json`` of an interrupted run, or a fresh state."""
    path = run_dir / "state.json"
    if path.is_file():
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    return {"completed_stages": 0}


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Atomically replace ``state.json`` (a crash leaves the old or the new one, never half)."""
    tmp = run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(run_dir / "state.json")


def read_history(run_dir: Path, stages: int | None = None) -> list[dict[str, Any]]:
    """Per-epoch metrics of a run directory's CSV logs, stages concatenated, resumes merged."""
    if stages is None:
        stages = len(list((run_dir / "logs").glob("stage*")))

    history: list[dict[str, Any]] = []
    offset = 0
    for i in range(stages):
        # metrics.csv plus the logs kept from before each resume, oldest first.
        paths = sorted((run_dir / "logs" / f"stage{i}").glob("metrics*.csv"), key=_log_order)
        rows: dict[int, dict[str, Any]] = {}
        for row in (r for p in paths for r in csv.DictReader(p.read_text().splitlines())):
            if any(row.get(k) for k in ("test_acc", "test_loss")):
                continue  # the final test row is not an epoch of training
            epoch = int(float(row["epoch"]))
            merged = rows.setdefault(epoch, {"stage": i, "epoch": offset + epoch})
            merged.update(
                {
                    k: float(v)
                    for k, v in row.items()
                    if v not in ("", None) and k not in ("epoch", "step")
                }
            )
        history.extend(rows[k] for k in sorted(rows))
        offset += len(rows)
    return history


def _log_order(path: Path) -> tuple[int, str]:
    return (1, "") if path.name == "metrics.csv" else (0, path.name)


def keep_log_before_resume(run_dir: Path, stage: int) -> None:
    """Lightning's CSVLogger rewrites metrics.csv when a run resumes: keep the epochs so far."""
    log = run_dir / "logs" / f"stage{stage}" / "metrics.csv"
    if log.is_file():
        n = len(list(log.parent.glob("metrics.before-resume-*.csv")))
        log.rename(log.with_name(f"metrics.before-resume-{n:03d}.csv"))


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch, train and val, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, ax in (("loss", axes[0]), ("acc", axes[1])):
        for split, style in (("train", "-o"), ("val", "-s")):
            pts = [(h["epoch"], h[f"{split}_{key}"]) for h in history if f"{split}_{key}" in h]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=split, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_provenance(
    cfg: TrainConfig, index: DatasetIndex, metrics: dict[str, Any]
) -> dict[str, Any]:
    """What a bundle records of its run: resolved config, dataset fingerprint, metrics."""
    return {
        "training": json.loads(cfg.model_dump_json()),
        "dataset": {
            "root": str(Path(cfg.data).resolve()),
            "fingerprint": index.fingerprint(),
            "split_seed": cfg.seed,
        },
        "metrics": metrics,
    }


def write_run_outputs(
    cfg: TrainConfig,
    net: LandscapeNet,
    *,
    index: DatasetIndex,
    preprocessing: Preprocessing,
    record: WeightsRecord,
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``bundle/`` and ``metrics.json`` of a finished run; return the bundle's path.

    The bundle is written first: ``metrics.json`` beside a bundle means the run finished.
    """
    run_dir = Path(cfg.out)
    bundle = save_bundle(
        run_dir / "bundle",
        net,
        classes=list(index.classes),
        preprocessing=preprocessing,
        head=cfg.head,
        weights=record.to_dict(),
        extra={**(extra or {}), **run_provenance(cfg, index, metrics)},
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return bundle
