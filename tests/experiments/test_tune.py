"""Optuna tuning: parameter mapping, the pruning callback, a real resumable search."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from landscape.config import TrainConfig, load_train_config
from landscape.errors import ConfigError
from landscape.experiments import (
    TuneResult,
    apply_params,
    default_params,
    pruning_callback,
    tune,
)

# Small models on a shared 2-core machine: one torch thread avoids oversubscription.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _base(data: Path, **over: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "data": str(data),
        "epochs": 2,
        "batch_size": 16,
        "num_workers": 0,
        "progress": False,
        **over,
    }
    return load_train_config(None, values)


def test_default_params_and_apply(tmp_path: Path) -> None:
    base = _base(tmp_path, epochs=4)
    assert default_params(base) == {
        "lr": base.optim.lr,
        "weight_decay": base.optim.weight_decay,
        "dropout": base.head.dropout,
        "depth": "frozen",
    }
    cfg = apply_params(
        base, {"lr": 0.01, "weight_decay": 1e-3, "dropout": 0.5, "depth": "deepest:2"}
    )
    assert cfg.optim.lr == 0.01 and cfg.optim.weight_decay == 1e-3 and cfg.head.dropout == 0.5
    # Same epoch budget whatever the depth: half on the head, half unfrozen.
    assert cfg.fine_tune is not None and cfg.fine_tune.unfreeze == "deepest:2"
    assert cfg.fine_tune.head_epochs + cfg.epochs == 4
    frozen = apply_params(
        cfg, {"lr": 0.01, "weight_decay": 1e-3, "dropout": 0.5, "depth": "frozen"}
    )
    assert frozen.fine_tune is None and frozen.policy == "frozen" and frozen.epochs == 4
    # Out-of-range defaults are clamped into the search space.
    odd = _base(tmp_path, optim={"weight_decay": 0.0, "lr": 1.0})
    params = default_params(odd)
    assert params["weight_decay"] == 1e-6 and params["lr"] == 3e-2


class _Trainer:
    def __init__(self, value: float, sanity: bool = False) -> None:
        import torch

        self.callback_metrics = {"val_acc": torch.tensor(value)}
        self.sanity_checking = sanity


class _Trial:
    def __init__(self, prune_at: int) -> None:
        self.reports: list[tuple[float, int]] = []
        self.prune_at = prune_at

    def report(self, value: float, step: int) -> None:
        self.reports.append((round(value, 3), step))

    def should_prune(self) -> bool:
        return len(self.reports) > self.prune_at


def test_pruning_callback_reports_each_epoch_and_prunes() -> None:
    trial = _Trial(prune_at=2)
    callback = pruning_callback(trial)
    callback.on_validation_end(_Trainer(0.1, sanity=True), None)  # not an epoch
    callback.on_validation_end(_Trainer(0.2), None)
    callback.on_validation_end(_Trainer(0.3), None)
    with pytest.raises(optuna.TrialPruned, match="epoch 3"):
        callback.on_validation_end(_Trainer(0.25), None)
    assert trial.reports == [(0.2, 0), (0.3, 1), (0.25, 2)]


_PARAMS = ("lr", "weight_decay", "dropout", "depth")
_NOT_COMPARED = {"out", "progress"}


def _params_of(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in _PARAMS}


def _check_scores(result: TuneResult, base: TrainConfig, out: Path) -> None:
    """What every finished tuning session must satisfy, whichever trial won."""
    complete = [r for r in result.trials if r["state"] == "COMPLETE"]
    # A trial's value is the val_acc its run reported in metrics.json (the saved model's).
    for row in complete:
        metrics = json.loads((Path(row["run_dir"]) / "metrics.json").read_text())
        assert row["val_acc"] == pytest.approx(metrics["val_acc"])
    default = next(r for r in complete if r["default"])
    assert result.default_value == default["val_acc"]
    # The best trial is the best completed one, not the default or the last.
    assert result.best_value == max(r["val_acc"] for r in complete)
    best_row = result.trials[result.best_trial]
    assert best_row["trial"] == result.best_trial and best_row["val_acc"] == result.best_value
    assert result.best_params == _params_of(best_row)
    # best.yaml is the best trial's config, usable by `landscape train --config`.
    best = load_train_config(out / "best.yaml")
    expected = base if best_row["default"] else apply_params(base, result.best_params)
    assert best.model_dump(exclude=_NOT_COMPARED) == expected.model_dump(exclude=_NOT_COMPARED)
    trained = load_train_config(Path(best_row["run_dir"]) / "config.yaml")
    assert best.model_dump(exclude=_NOT_COMPARED) == trained.model_dump(exclude=_NOT_COMPARED)


def test_tune_scores_trials_by_their_runs_val_acc_and_resumes(
    synth_small: Path, tmp_path: Path
) -> None:
    base = _base(synth_small)
    out = tmp_path / "tune"
    result = tune(base, out, trials=2, seed=0)
    assert [r["trial"] for r in result.trials] == [0, 1]
    first = result.trials[0]
    assert first["default"] and first["state"] == "COMPLETE"
    assert not result.trials[1]["default"]
    # Trial 0 records the search-space point of the base config and trains the base itself.
    assert _params_of(first) == default_params(base)
    trial0 = load_train_config(Path(first["run_dir"]) / "config.yaml")
    assert trial0.model_dump(exclude=_NOT_COMPARED) == base.model_dump(exclude=_NOT_COMPARED)
    assert all(r["epochs_run"] >= 1 for r in result.trials if r["state"] == "COMPLETE")
    _check_scores(result, base, out)
    with open(out / "trials.csv") as fh:
        assert [int(r["trial"]) for r in csv.DictReader(fh)] == [0, 1]
    assert (out / "history.png").stat().st_size > 1000
    assert (out / "optuna.db").is_file()

    # Running again continues the stored study: one more trial, trial 0 not repeated.
    again = tune(base, out, trials=3, seed=0)
    assert [r["trial"] for r in again.trials] == [0, 1, 2]
    assert sum(r["default"] for r in again.trials) == 1
    assert again.trials[:2] == result.trials
    assert len(list((out / "trials").iterdir())) == 3
    _check_scores(again, base, out)

    # Another base config in the same folder is refused.
    with pytest.raises(ConfigError, match="another base config"):
        tune(_base(synth_small, epochs=3), out, trials=5)


def test_tune_needs_two_epochs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 2 epochs"):
        tune(_base(tmp_path, epochs=1), tmp_path / "t", trials=2)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_tune_finds_a_better_config_than_the_default_on_demo_data(tmp_path: Path) -> None:
    """On the demo dataset (synthetic, 80 images per class as `landscape demo` makes it), the
    search beats the default config strictly."""
    from landscape.data.synth import SynthSpec, generate_dataset

    data = tmp_path / "demo-data"
    generate_dataset(data, SynthSpec(per_class=80, seed=0))
    base = _base(data, epochs=4, batch_size=32)
    out = tmp_path / "tune"
    result = tune(base, out, trials=16, seed=0)
    assert result.default_value is not None
    assert result.best_value > result.default_value
    assert not result.trials[result.best_trial]["default"]
    assert result.best_params != default_params(base)
    _check_scores(result, base, out)
