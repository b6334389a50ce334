"""landscape: landscape-context recognition for photos and videos.

The public API, importable from the package itself::

    from landscape import TrainConfig, fit, load_bundle, Predictor, evaluate_bundle

Names are resolved on first use (PEP 562), so ``import landscape`` and the light modules
(:mod:`landscape.config`, :mod:`landscape.settings`) never import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → module that defines it
_EXPORTS: dict[str, str] = {
    "Settings": "landscape.settings",
    "get_settings": "landscape.settings",
    "TrainConfig": "landscape.config",
    "HeadSpec": "landscape.config",
    "load_train_config": "landscape.config",
    "UserError": "landscape.errors",
    "fit": "landscape.train.trainer",
    "resume": "landscape.train.trainer",
    "RunResult": "landscape.train.run_files",
    "fit_classic": "landscape.train.classic",
    "lr_find": "landscape.train.lr_find",
    "load_bundle": "landscape.models.bundle",
    "save_bundle": "landscape.models.bundle",
    "Bundle": "landscape.models.bundle",
    "create_model": "landscape.models.net",
    "list_backbones": "landscape.models",
    "Predictor": "landscape.inference.predictor",
    "Prediction": "landscape.inference.predictor",
    "export_onnx": "landscape.inference.export",
    "evaluate_bundle": "landscape.evaluation.evaluate",
    "run_study": "landscape.experiments",
    "load_study": "landscape.experiments",
}

__all__ = [
    "Bundle",
    "HeadSpec",
    "Prediction",
    "Predictor",
    "RunResult",
    "Settings",
    "TrainConfig",
    "UserError",
    "__version__",
    "create_model",
    "evaluate_bundle",
    "export_onnx",
    "fit",
    "fit_classic",
    "get_settings",
    "list_backbones",
    "load_bundle",
    "load_study",
    "load_train_config",
    "lr_find",
    "resume",
    "run_study",
    "save_bundle",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from landscape.config import HeadSpec, TrainConfig, load_train_config
    from landscape.errors import UserError
    from landscape.evaluation.evaluate import evaluate_bundle
    from landscape.experiments import load_study, run_study
    from landscape.inference.export import export_onnx
    from landscape.inference.predictor import Prediction, Predictor
    from landscape.models import list_backbones
    from landscape.models.bundle import Bundle, load_bundle, save_bundle
    from landscape.models.net import create_model
    from landscape.settings import Settings, get_settings
    from landscape.train.classic import fit_classic
    from landscape.train.lr_find import lr_find
    from landscape.train.run_files import RunResult
    from landscape.train.trainer import fit, resume


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
