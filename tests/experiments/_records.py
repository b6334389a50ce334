"""Study run records made by hand, for aggregation and report tests that need no training."""

from __future__ import annotations

from typing import Any

from landscape.experiments import RunPlan


def fake_record(
    plan: RunPlan, acc: float | None, ms: float = 10.0, error: str = "boom"
) -> dict[str, Any]:
    """The record ``execute_run`` writes for ``plan``: ``acc`` None makes it a failed run."""
    ok = acc is not None
    return {
        "run_id": plan.run_id,
        "setting": plan.setting,
        "run_dir": str(plan.run_dir),
        "status": "ok" if ok else "failed",
        "error": None if ok else error,
        "train": {"train_seconds": 2.0, "n_train": 20, "val_acc": 0.5, "params": {"total": 10}}
        if ok
        else None,
        "eval": {
            "split": "test",
            "accuracy": acc,
            "macro_f1": acc,
            "per_class_f1": {"a": acc, "b": acc},
            "latency_ms": ms,
            "images_per_s": 100.0,
            "latency_batch": 32,
            "params": {"total": 10, "trainable": 2},
        }
        if ok
        else None,
        "history": [],
    }
