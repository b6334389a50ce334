"""``tune``: hyper-parameter search with Optuna over a base training config.

The search space is the one transfer learning is sensitive to: learning rate and weight decay
(log scale), the head's dropout, and how deep the backbone is unfrozen (``frozen``, or the head
first then ``deepest:1`` / ``deepest:2``). Every trial is a normal run directory under
``OUT/trials/``; its validation accuracy is reported to Optuna after each epoch so the
:class:`optuna.pruners.MedianPruner` stops trials that trail the median. A finished trial's
value is the ``val_acc`` of the run's metrics: the validation accuracy of the model the run
saved, not the best epoch seen along the way. The study lives in
``OUT/optuna.db`` (SQLite): running the same command again continues it. Trial 0 is the base
config itself, unchanged, so "best ≥ default" is a measured statement, not an assumption.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from landscape.config import TrainConfig
from landscape.errors import ConfigError

from .progress import ProgressFactory, no_progress

__all__ = [
    "DEPTHS",
    "SEARCH_SPACE",
    "TuneResult",
    "apply_params",
    "default_params",
    "pruning_callback",
    "tune",
]

#: Unfrozen depth choices: frozen backbone, or the head first then the deepest N blocks.
DEPTHS: tuple[str, ...] = ("frozen", "deepest:1", "deepest:2")

#: (low, high) of the continuous parameters; lr and weight decay are searched on a log scale.
SEARCH_SPACE: dict[str, tuple[float, float]] = {
    "lr": (1e-4, 3e-2),
    "weight_decay": (1e-6, 1e-2),
    "dropout": (0.0, 0.6),
}

STUDY_NAME = "landscape-tune"
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


@dataclass
class TuneResult:
    """What a tuning session found (over every trial of the stored study)."""

    out: Path
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    default_value: float | None
    trials: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def improvement(self) -> float | None:
        """Best minus default validation accuracy (None when the default trial did not finish)."""
        return None if self.default_value is None else self.best_value - self.default_value


def _depth_of(cfg: TrainConfig) -> str:
    if cfg.fine_tune is not None and cfg.fine_tune.unfreeze in DEPTHS:
        return cfg.fine_tune.unfreeze
    return "frozen" if cfg.policy == "frozen" else "deepest:1"


def _clamp(value: float, name: str) -> float:
    low, high = SEARCH_SPACE[name]
    return min(max(value, low), high)


def default_params(base: TrainConfig) -> dict[str, Any]:
    """The search-space point closest to ``base`` (recorded as trial 0's parameters; trial 0
    itself trains ``base`` unchanged)."""
    return {
        "lr": _clamp(base.optim.lr, "lr"),
        "weight_decay": _clamp(max(base.optim.weight_decay, 1e-12), "weight_decay"),
        "dropout": _clamp(base.head.dropout, "dropout"),
        "depth": _depth_of(base),
    }


def apply_params(base: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """``base`` with a trial's parameters; the epoch budget stays the same for every depth
    (``deepest:N`` spends half of it on the head, then unfreezes)."""
    data = json.loads(base.model_dump_json())
    data["optim"].update(lr=float(params["lr"]), weight_decay=float(params["weight_decay"]))
    data["head"]["dropout"] = float(params["dropout"])
    total = base.epochs + (base.fine_tune.head_epochs if base.fine_tune else 0)
    if params["depth"] == "frozen":
        data.update(policy="frozen", fine_tune=None, epochs=total)
    else:
        head = max(1, total // 2)
        data.update(
            policy="frozen",
            fine_tune={"head_epochs": head, "unfreeze": params["depth"]},
            epochs=max(1, total - head),
        )
    return TrainConfig(**data)


def pruning_callback(trial: Any) -> Any:
    """A Lightning callback reporting ``val_acc`` to ``trial`` after every validation epoch and
    raising :class:`optuna.TrialPruned` when the pruner says so. One instance spans all the
    stages of a run, so the step is the epoch counted across stages."""
    import optuna
    from lightning.pytorch.callbacks import Callback

    class _Pruning(Callback):
        def __init__(self) -> None:
            self.step = 0

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking:
                return
            value = trainer.callback_metrics.get("val_acc")
            if value is None:
                return
            step = self.step
            self.step += 1
            trial.report(float(value), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {step + 1} (val_acc {value:.4f})")

    return _Pruning()


def _storage(out: Path) -> Any:
    import optuna

    url = f"sqlite:///{(out / 'optuna.db').resolve()}"
    # Heartbeats let a later call mark the trials of a killed process as failed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90)


def _config_fingerprint(cfg: TrainConfig) -> str:
    data = json.loads(cfg.model_dump_json())
    for key in ("out", "progress", "num_workers"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True)


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        intermediate = t.intermediate_values
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "val_acc": t.value,
                "lr": t.params.get("lr"),
                "weight_decay": t.params.get("weight_decay"),
                "dropout": t.params.get("dropout"),
                "depth": t.params.get("depth"),
                "default": bool(attrs.get("default")),
                "epochs_run": len(intermediate),
                "last_val_acc": intermediate[max(intermediate)] if intermediate else None,
                "test_acc": attrs.get("test_acc"),
                "train_seconds": attrs.get("train_seconds"),
                "run_dir": attrs.get("run_dir"),
            }
        )
    return rows


def _write_trials_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    header = list(rows[0]) if rows else ["trial"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def _plot_history(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    done = [r for r in rows if r["state"] == "COMPLETE" and r["val_acc"] is not None]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["last_val_acc"] is not None]
    if done:
        ax.plot([r["trial"] for r in done], [r["val_acc"] for r in done], "o", label="complete")
        best, xs, ys = -math.inf, [], []
        for r in sorted(done, key=lambda r: r["trial"]):
            best = max(best, r["val_acc"])
            xs.append(r["trial"])
            ys.append(best)
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
    if pruned:
        ax.plot(
            [r["trial"] for r in pruned],
            [r["last_val_acc"] for r in pruned],
            "x",
            color="grey",
            label="pruned (last epoch)",
        )
    default = next((r for r in done if r["default"]), None)
    if default is not None:
        ax.axhline(default["val_acc"], ls="--", color="tab:green", lw=1, label="default config")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title("optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_best(path: Path, cfg: TrainConfig, out: Path, note: str) -> None:
    data = json.loads(cfg.model_dump_json())
    data.pop("progress", None)
    data["out"] = str((out / "best-run").resolve())
    text = f"# {note}\n# landscape train --config {path}\n"
    path.write_text(text + yaml.safe_dump(data, sort_keys=False))


def tune(
    base: TrainConfig,
    out: Path,
    *,
    trials: int,
    timeout: float | None = None,
    seed: int = 0,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
) -> TuneResult:
    """Search hyper-parameters around ``base`` until the stored study has ``trials`` finished
    trials (or ``timeout`` seconds pass); write ``best.yaml``, ``trials.csv`` and
    ``history.png`` into ``out``.

    A new study starts with the unchanged ``base`` as trial 0. Re-running with the same ``out``
    continues the stored study; a different base config there is a :class:`ConfigError`.
    """
    import optuna

    from landscape.train.trainer import fit

    if trials < 1:
        raise ConfigError("--trials must be at least 1", fix="ask for 1 or more trials")
    total_epochs = base.epochs + (base.fine_tune.head_epochs if base.fine_tune else 0)
    if total_epochs < 2:
        raise ConfigError(
            "tuning needs at least 2 epochs per trial (unfreezing spends half on the head)",
            fix="use --epochs 2 or more",
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=_storage(out),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        load_if_exists=True,
    )
    fingerprint = _config_fingerprint(base)
    stored = study.user_attrs.get("base")
    if stored is None:
        study.set_user_attr("base", fingerprint)
        study.enqueue_trial(default_params(base), user_attrs={"default": True})
    elif stored != fingerprint:
        raise ConfigError(
            "this folder holds a tuning study of another base config or dataset",
            path=out,
            fix="use another --out, or the same --data/--config/--epochs as before",
        )
    finished = sum(t.state.name in _FINISHED for t in study.get_trials(deepcopy=False))
    remaining = max(0, trials - finished)
    if log is not None:
        log(f"{finished} trial(s) already in {out / 'optuna.db'}, {remaining} to run")

    def objective(trial: optuna.Trial) -> float:
        params = {
            "lr": trial.suggest_float("lr", *SEARCH_SPACE["lr"], log=True),
            "weight_decay": trial.suggest_float(
                "weight_decay", *SEARCH_SPACE["weight_decay"], log=True
            ),
            "dropout": trial.suggest_float("dropout", *SEARCH_SPACE["dropout"]),
            "depth": trial.suggest_categorical("depth", list(DEPTHS)),
        }
        cfg = base if trial.user_attrs.get("default") else apply_params(base, params)
        run_dir = (out / "trials" / f"trial-{trial.number:03d}").resolve()
        cfg = cfg.model_copy(update={"out": run_dir, "progress": False})
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("config", json.loads(cfg.model_dump_json()))
        result = fit(
            cfg, resume_run=(run_dir / "state.json").is_file(), callbacks=[pruning_callback(trial)]
        )
        trial.set_user_attr("test_acc", result.metrics.get("test_acc"))
        trial.set_user_attr("train_seconds", result.metrics.get("train_seconds"))
        return float(result.metrics["val_acc"])

    factory = progress or no_progress
    if remaining:
        with factory("tune", remaining) as advance:
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=timeout,
                callbacks=[lambda _study, _trial: advance(1)],
                gc_after_trial=True,
            )
    rows = _trial_rows(study)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    if not complete:
        raise ConfigError(
            "no trial completed", path=out, fix="see the trials' run directories for errors"
        )
    best = study.best_trial
    best_value = float(best.value if best.value is not None else math.nan)
    default = next((r for r in complete if r["default"]), None)
    best_cfg = TrainConfig(**best.user_attrs["config"])
    default_value = default["val_acc"] if default else None
    note = f"best of {len(rows)} trials: trial {best.number}, val_acc {best.value:.4f}" + (
        f" (default config: {default_value:.4f})" if default_value is not None else ""
    )
    files = {
        "best.yaml": out / "best.yaml",
        "trials.csv": out / "trials.csv",
        "history.png": out / "history.png",
    }
    _write_best(files["best.yaml"], best_cfg, out, note)
    _write_trials_csv(files["trials.csv"], rows)
    _plot_history(files["history.png"], rows)
    return TuneResult(
        out=out,
        best_value=best_value,
        best_params=dict(best.params),
        best_trial=best.number,
        default_value=default_value,
        trials=rows,
        files={k: str(v) for k, v in files.items()},
    )
