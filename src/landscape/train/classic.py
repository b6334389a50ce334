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

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from landscape.config import CLASSIC_HEADS, HeadSpec, TrainConfig
from landscape.errors import ConfigError, DatasetError
from landscape.models.heads import build_head
from landscape.models.net import LandscapeNet
from landscape.models.truncate import probe_backbone, probe_info

from .data_prep import extract_split_features, prepare_data, resolve_preprocessing
from .run_files import RunResult, check_new_run_dir, write_config, write_run_outputs

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = [
    "CLASSIC_HEADS",
    "C_GRID",
    "CSearch",
    "ClassicResult",
    "fit_classic",
    "fold_linear",
    "make_estimator",
    "select_c",
]

log = logging.getLogger(__name__)

#: the log grid ``--C auto`` searches by stratified k-fold cross-validation
C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
_SCALING = "standard (folded into the linear layer)"


@dataclass
class ClassicResult(RunResult):
    """A finished classic run; ``estimator`` is the fitted scikit-learn pipeline (in memory)."""

    estimator: Any = None


@dataclass(frozen=True)
class CSearch:
    """How C was chosen: the grid, the folds and the mean cross-validated accuracy per C."""

    C: float
    folds: int
    grid: tuple[float, ...]
    cv_acc: tuple[float, ...]

    @property
    def best_cv_acc(self) -> float:
        """Mean cross-validated accuracy of the chosen C."""
        return self.cv_acc[self.grid.index(self.C)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (metrics.json, bundle.json)."""
        return {
            "C": self.C,
            "folds": self.folds,
            "cv_acc": self.best_cv_acc,
            "grid": list(self.grid),
            "cv_acc_by_C": list(self.cv_acc),
        }


def select_c(
    kind: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    grid: tuple[float, ...] = C_GRID,
    seed: int = 0,
    balanced: bool = False,
) -> CSearch:
    """Choose C by stratified k-fold cross-validation (accuracy) on the training features.

    Folds are capped by the smallest class; a tie goes to the smaller C (stronger
    regularisation generalises better at equal CV accuracy).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    smallest = int(np.bincount(y).min()) if len(y) else 0
    k = min(folds, smallest)
    if k < 2:
        raise ConfigError(
            f"--C auto needs at least 2 training images of every class (smallest: {smallest})",
            fix="add images or pass a fixed --C (e.g. --C 0.1)",
        )
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    scores = []
    for c in grid:
        with warnings.catch_warnings():
            # Unconverged fits at extreme C are part of the search; the final fit warns.
            warnings.simplefilter("ignore", ConvergenceWarning)
            fold_acc = cross_val_score(
                make_estimator(kind, c, seed=seed, balanced=balanced), x, y, cv=splitter
            )
        scores.append(float(np.mean(fold_acc)))
    best = grid[int(np.argmax(scores))]
    return CSearch(C=best, folds=k, grid=tuple(grid), cv_acc=tuple(scores))


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
    if not cfg.head.classic:
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

    Every training image is used for fitting: with ``C: auto`` (the default) C is chosen by
    stratified k-fold cross-validation on the training split, so no validation split is carved
    (``val_fraction`` defaults to 0 for these heads). The run directory holds ``config.yaml``,
    ``split.csv``, ``metrics.json`` and ``bundle/`` (the truncated backbone + the fitted model as
    a ``Linear`` layer). Returns metrics, the bundle path and the fitted pipeline.
    """
    import sklearn

    _check_config(cfg)
    run_dir = Path(cfg.out)
    check_new_run_dir(run_dir, resumable=False)
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    # Build (and validate --layer) before anything is written.
    info = probe_info(cfg.backbone, cfg.layer)
    backbone, record = probe_backbone(
        cfg.backbone, cfg.layer, weights=cfg.weights, sha256=cfg.weights_sha256
    )
    backbone.requires_grad_(False)  # never trained: only the fitted layer counts as trained
    net = LandscapeNet(backbone, nn.Identity(), info)
    write_config(run_dir, cfg)
    prepared = prepare_data(cfg, run_dir, require_val=False)
    splits, classes = prepared.splits, prepared.classes
    pre = resolve_preprocessing(net, record, cfg, splits["train"])

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
    fit_started = time.perf_counter()
    search: CSearch | None = None
    if cfg.head.C == "auto":
        search = select_c(
            cfg.head.kind,
            x_train,
            y_train,
            folds=cfg.head.cv_folds,
            seed=cfg.seed,
            balanced=cfg.optim.class_weights,
        )
        chosen_c = search.C
    else:
        chosen_c = float(cfg.head.C)
    pipeline = make_estimator(
        cfg.head.kind, chosen_c, seed=cfg.seed, balanced=cfg.optim.class_weights
    )
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
    c_search = search.to_dict() if search is not None else None
    head_meta = {
        "kind": "sklearn",
        "estimator": estimator,
        "sklearn_class": type(pipeline[-1]).__name__,
        "loss": "hinge" if estimator == "svm" else "log",
        "C": chosen_c,
        "C_search": c_search,
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
        "cv_acc": search.best_cv_acc if search is not None else None,
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
        "C": chosen_c,
        "C_search": c_search,
        "feature_layer": cfg.layer,
        "feature_dim": dim,
        "converged": converged,
        "fold_max_abs_error": fold_error,
    }
    bundle = write_run_outputs(
        cfg,
        net,
        index=prepared.index,
        preprocessing=pre,
        record=record,
        metrics=metrics,
        extra={"head": head_meta, "feature_layer": cfg.layer},
    )
    return ClassicResult(run_dir, bundle, metrics, [], estimator=pipeline)
