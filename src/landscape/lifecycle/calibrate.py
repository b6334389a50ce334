"""Give a candidate the calibration its base had, so promoting it changes no behaviour but the
labels: a base with a fitted temperature, or an unknown threshold (files below it are
"unknown" in the index), gets a candidate with the same, fitted on the candidate's own
validation split — or, when that split is too small to fit on, the base's values inherited
as they are (and said so)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

__all__ = ["match_calibration"]


def _val_files(split_csv: Path) -> int:
    with open(split_csv, newline="", encoding="utf-8") as fh:
        return sum(1 for row in csv.DictReader(fh) if row.get("split") == "val")


def match_calibration(
    bundle: Path, base_meta: dict[str, Any], split_csv: Path, out: Path, *, min_files: int = 10
) -> dict[str, Any] | None:
    """Calibrate ``bundle`` as the base was (``None`` when the base was not calibrated); what
    was done: ``temperature``, ``unknown_threshold`` and ``source``."""
    from landscape.models.bundle import load_bundle, update_bundle_meta

    temperature = float(base_meta.get("temperature") or 1.0)
    threshold = base_meta.get("unknown_threshold")
    want_t, want_u = temperature != 1.0, threshold is not None
    if not (want_t or want_u):
        return None
    n_val = _val_files(split_csv)
    if n_val >= min_files:
        from landscape.evaluation.evaluate import evaluate_bundle

        evaluate_bundle(
            bundle,
            split_csv,
            "val",
            out,
            fit_temperature=want_t,
            calibrate=want_t,
            set_threshold=want_u,
            open_set=want_u,
            latency=False,
            gallery=False,
            explain=False,
        )
        source = f"fitted on the candidate's {n_val} validation files"
    else:
        changes: dict[str, Any] = {"temperature": temperature}
        if want_u:
            changes["unknown_threshold"] = threshold
            changes["unknown_score"] = base_meta.get("unknown_score", "msp")
        update_bundle_meta(bundle, **changes)
        source = (
            f"inherited from the base: {n_val} validation files are too few to fit on "
            f"(at least {min_files})"
        )
    meta = load_bundle(bundle).meta
    return {
        "temperature": float(meta.get("temperature") or 1.0),
        "unknown_threshold": meta.get("unknown_threshold"),
        "source": source,
    }
