"""The model lifecycle: people's reviews become a candidate model, compared with the base.

It sits above the index (reviewed files, the registry), training and evaluation: the service
never imports it; it runs ``landscape retrain`` in a process of its own.
"""

from __future__ import annotations

from .compare import compare_models, score_bundle
from .dataset import HeldOut, RetrainData, build_retrain_data, pseudo_labels
from .retrain import RetrainOptions, RetrainResult, retrain

__all__ = [
    "HeldOut",
    "RetrainData",
    "RetrainOptions",
    "RetrainResult",
    "build_retrain_data",
    "compare_models",
    "pseudo_labels",
    "retrain",
    "score_bundle",
]
