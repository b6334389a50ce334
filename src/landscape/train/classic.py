"""The classic baseline: frozen-backbone features from a chosen layer + a scikit-learn classifier.

Seed lab 002 extracts VGG16 features and fits an SVM. Here any registered backbone is cut at
``--layer`` (:mod:`landscape.models.truncate`), its features are computed once through the
feature cache, and a ``StandardScaler`` + ``LinearSVC`` (one-vs-rest) or multinomial
``LogisticRegression`` is fitted on the training split.

Both estimators are linear in the scaled features, so the fitted model *is* a ``Linear`` layer:
with the scaler folded in, ``w' = w / σ`` and ``b' = b − Σ w·μ/σ``. The bundle therefore holds
the truncated backbone plus that layer and is used by predict, evaluate and the index service
like any other bundle. Confidence is the softmax of the layer's outputs: for ``logreg`` this
equals scikit-learn's ``predict_proba``; for ``svm`` it is a softmax over decision values — a
ranking score, not a calibrated probability (``landscape evaluate`` can fit a temperature).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml
from torch import nn

from landscape.config import TrainConfig
from landscape.errors import ConfigError, DatasetError, UserError
from landscape.models.bundle import save_bundle
from landscape.models.heads import HeadSpec, build_head
from landscape.models.net import LandscapeNet
from landscape.models.truncate import probe_backbone, probe_info

from .trainer import (
    RunResult,
    _prepare_data,
    _preprocessing,
    extract_split_features,
    run_provenance,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["CLASSIC_HEADS", "ClassicResult", "fit_classic", "fold_linear", "make_estimator"]

log = logging.getLogger(__name__)

#: head kinds fitted by scikit-learn instead of gradient descent
CLASSIC_HEADS: tuple[str, ...] = ("svm", "logreg")
_SCALING = "standard (folded into the linear layer)"


@dataclass
class ClassicResult(RunResult):
    """A finished classic run; ``estimator`` is the fitted scikit-learn pipeline (in memory)."""

    estimator: Any = None


def make_estimator(kind: str, C: float, *, seed: int = 0, balanced: bool = False) -> Pipeline:
    """``StandardScaler`` + ``LinearSVC`` (``svm``) or ``LogisticRegression`` (``logreg``).

    ``LinearSVC`` rather than ``SVC(kernel="linear")``: the latter is one-vs-one, whose combined
    decision values are not a linear function of the features and could not be stored as a layer.
    It minimises the hinge loss, as ``SVC`` does, in the dual: on 600 × 1280 nearly separable
    features that converges ~50× faster than LinearSVC's default squared hinge at ``C=1`` (3 s
    instead of 150 s on intel-sample), with the same accuracy.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    weight = "balanced" if balanced else None
    clf: Any
    if kind == "svm":
        clf = LinearSVC(
            C=C, loss="hinge", dual=True, max_iter=20_000, random_state=seed, class_weight=weight
        )
    elif kind == "logreg":
        clf = LogisticRegression(C=C, max_iter=5_000, class_weight=weight)
    else:
        raise ConfigError(f"unknown classic head {kind!r}", fix="use svm or logreg")
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def fold_linear(pipeline: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``[k, d]`` and bias ``[k]`` of one linear map equal to the pipeline's decision values.

    The scaler is folded in (float64 arithmetic). A binary problem, for which scikit-learn keeps
    one decision function ``f`` (positive: the second class), becomes two logits ``[−f/2, f/2]``:
    the argmax is unchanged and their softmax is the logistic ``σ(f)``, i.e. ``predict_proba``.
    """
    scaler, clf = pipeline[0], pipeline[-1]
    coef = np.asarray(clf.coef_, dtype=np.float64)
    intercept = np.atleast_1d(np.asarray(clf.intercept_, dtype=np.float64))
    scale = np.asarray(scaler.scale_ if scaler.scale_ is not None else 1.0, dtype=np.float64)
    mean = np.asarray(scaler.mean_ if scaler.mean_ is not None else 0.0, dtype=np.float64)
    weight = coef / scale
    bias = intercept - weight @ np.broadcast_to(mean, (coef.shape[1],))
    if weight.shape[0] == 1:
        weight = np.vstack([-weight, weight]) / 2.0
        bias = np.array([-bias[0], bias[0]]) / 2.0
    return weight, bias


def _linear_head(weight: np.ndarray, bias: np.ndarray) -> nn.Module:
    # The same module layout as a ``linear`` head without dropout: keys head.fc.weight/bias.
    head = build_head(HeadSpec(kind="linear", dropout=0.0), weight.shape[1], weight.shape[0])
    fc = head.get_submodule("fc")
    assert isinstance(fc, nn.Linear)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        fc.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
    return head


def _check_config(cfg: TrainConfig) -> None:
    if cfg.head.kind not in CLASSIC_HEADS:
        raise ConfigError(
            f"head {cfg.head.kind!r} is trained by gradient descent", fix="use `fit(cfg)`"
        )
    problems = []
    if cfg.policy != "frozen" or cfg.fine_tune is not None:
        problems.append("a frozen backbone (--policy frozen, no --fine-tune)")
    if cfg.augmentation != "none" or cfg.mixup > 0 or cfg.cutmix > 0:
        problems.append("deterministic inputs (--augmentation none, no MixUp/CutMix)")
    if problems:
        raise ConfigError(
            f"--head {cfg.head.kind} fits features once and needs " + " and ".join(problems),
            fix="drop those options or use --head linear|mlp",
        )


def _fit(pipeline: Pipeline, x: np.ndarray, y: np.ndarray) -> bool:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pipeline.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if not converged:
        log.warning("the %s did not fully converge; try a smaller --C", type(pipeline[-1]).__name__)
    return converged


def fit_classic(cfg: TrainConfig) -> ClassicResult:
    """Fit ``cfg.head.kind`` (svm|logreg) on features of ``cfg.layer``; write the run directory.

    The run directory holds ``config.yaml``, ``split.csv``, ``metrics.json`` and ``bundle/`` (the
    truncated backbone + the fitted model as a ``Linear`` layer). Returns metrics, the bundle path
    and the fitted pipeline.
    """
    import sklearn

    _check_config(cfg)
    run_dir = Path(cfg.out)
    if (run_dir / "bundle").exists():
        raise UserError(
            "run directory already holds a finished run",
            path=run_dir,
            fix="choose another --out or delete it",
        )
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    # Build (and validate --layer) before anything is written.
    info = probe_info(cfg.backbone, cfg.layer)
    backbone, record = probe_backbone(
        cfg.backbone, cfg.layer, weights=cfg.weights, sha256=cfg.weights_sha256
    )
    backbone.requires_grad_(False)  # never trained: only the fitted layer counts as trained
    net = LandscapeNet(backbone, nn.Identity(), info)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(json.loads(cfg.model_dump_json()), sort_keys=False)
    )
    index, splits = _prepare_data(cfg, run_dir)
    classes = list(index.classes)
    pre = _preprocessing(net, record, cfg, splits["train"])

    data = extract_split_features(net, record, pre, splits, classes, cfg, layer=cfg.layer)
    extract_seconds = time.perf_counter() - started
    x_train, y_train = data["train"]
    missing = [c for i, c in enumerate(classes) if not np.any(y_train == i)]
    if missing:
        raise DatasetError(
            f"classes without training images: {', '.join(missing)}",
            path=cfg.data,
            fix="add images or lower --val-fraction/--test-fraction",
        )
    pipeline = make_estimator(
        cfg.head.kind, cfg.head.C, seed=cfg.seed, balanced=cfg.optim.class_weights
    )
    fit_started = time.perf_counter()
    converged = _fit(pipeline, x_train, y_train)
    fit_seconds = time.perf_counter() - fit_started

    weight, bias = fold_linear(pipeline)
    net.head = _linear_head(weight, bias)
    accuracy = {
        f"{name}_acc": float(np.mean(pipeline.predict(x) == y)) if len(y) else None
        for name, (x, y) in data.items()
    }
    # The folded layer must reproduce scikit-learn's decision values (float32 vs float64).
    decision = pipeline.decision_function(x_train).reshape(len(x_train), -1)
    folded = x_train.astype(np.float64) @ weight.T + bias
    if decision.shape[1] == 1:  # binary: compare f with the second logit f/2
        folded = folded[:, 1:] * 2.0
    fold_error = float(np.abs(folded - decision).max())
    dim = int(weight.shape[1])
    estimator = "svm" if cfg.head.kind == "svm" else "logreg"
    head_meta = {
        "kind": "sklearn",
        "estimator": estimator,
        "sklearn_class": type(pipeline[-1]).__name__,
        "loss": "hinge" if estimator == "svm" else "log",
        "C": cfg.head.C,
        "layer": cfg.layer,
        "in_features": dim,
        "scaling": _SCALING,
        "multiclass": "one-vs-rest" if estimator == "svm" else "multinomial",
        "confidence": (
            "softmax over the SVM decision values (a score, not a calibrated probability)"
            if estimator == "svm"
            else "softmax of the multinomial logits (equals predict_proba)"
        ),
        "class_weight": "balanced" if cfg.optim.class_weights else None,
        "sklearn_version": sklearn.__version__,
    }
    metrics: dict[str, Any] = {
        "val_acc": accuracy.get("val_acc"),
        "test_acc": accuracy.get("test_acc"),
        "train_acc": accuracy.get("train_acc"),
        "train_seconds": round(time.perf_counter() - started, 2),
        "extract_seconds": round(extract_seconds, 2),
        "fit_seconds": round(fit_seconds, 3),
        "epochs": 0,
        "n_train": len(splits["train"]),
        "n_val": len(splits["val"]),
        "n_test": len(splits["test"]),
        "params": net.param_counts(),
        "estimator": estimator,
        "C": cfg.head.C,
        "feature_layer": cfg.layer,
        "feature_dim": dim,
        "converged": converged,
        "fold_max_abs_error": fold_error,
    }
    bundle = save_bundle(
        run_dir / "bundle",
        net,
        classes=classes,
        preprocessing=pre,
        head=cfg.head,
        weights=record.to_dict(),
        extra={
            "head": head_meta,
            "feature_layer": cfg.layer,
            **run_provenance(cfg, index, metrics),
        },
    )
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return ClassicResult(run_dir, bundle, metrics, [], estimator=pipeline)
