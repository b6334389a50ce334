"""Evaluation of a model bundle on a dataset: metrics, calibration, latency and a report.

``evaluate_bundle(bundle, data, split, out)`` is the one-call entry point (``landscape
evaluate``); the modules below it are usable on their own. Heavy libraries (scikit-learn,
torchmetrics, matplotlib) are imported by the functions that need them. Studies and tuning,
which train before they evaluate, live one layer up in :mod:`landscape.experiments`.
"""

from .calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from .evaluate import EVAL_SPLITS, evaluate_bundle, select_split
from .explain import embed_tsne, first_layer_activations, grad_cam, write_explanations
from .latency import bundle_size_bytes, cpu_name, measure_latency, model_facts
from .metrics import (
    classification_metrics,
    confusion_counts,
    most_confused,
    normalize_rows,
    top_k_accuracy,
)
from .openset import (
    coverage_curve,
    energy_score,
    msp_score,
    ood_auroc,
    open_set_metrics,
    threshold_for_coverage,
)
from .report import write_report

__all__ = [
    "EVAL_SPLITS",
    "apply_temperature",
    "bundle_size_bytes",
    "classification_metrics",
    "confusion_counts",
    "coverage_curve",
    "cpu_name",
    "embed_tsne",
    "energy_score",
    "evaluate_bundle",
    "expected_calibration_error",
    "first_layer_activations",
    "fit_temperature",
    "grad_cam",
    "measure_latency",
    "model_facts",
    "most_confused",
    "msp_score",
    "normalize_rows",
    "ood_auroc",
    "open_set_metrics",
    "reliability_bins",
    "select_split",
    "threshold_for_coverage",
    "top_k_accuracy",
    "write_explanations",
    "write_report",
]
