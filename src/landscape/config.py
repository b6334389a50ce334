"""Typed configuration (pydantic) for training runs; loaded from YAML and overridden by the CLI.

Unknown keys are errors that name their path (``optim.lrr: extra inputs are not permitted``),
so a typo in a study file never silently trains the default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from landscape.errors import ConfigError

__all__ = [
    "BACKENDS",
    "CLASSIC_HEADS",
    "DEFAULT_VAL_FRACTION",
    "Backend",
    "FineTune",
    "HeadKind",
    "HeadSpec",
    "OptimConfig",
    "TrainConfig",
    "format_validation_error",
    "load_train_config",
    "load_yaml",
    "merge_dicts",
    "normalize_policy",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: inference backends of :class:`landscape.inference.Predictor` (``--backend``)
Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
HeadKind = Literal["linear", "mlp", "svm", "logreg"]
#: head kinds fitted by scikit-learn on frozen features instead of trained by gradient descent
CLASSIC_HEADS: tuple[str, ...] = ("svm", "logreg")
#: default validation fraction of gradient-trained heads (early stopping, best checkpoint)
DEFAULT_VAL_FRACTION = 0.15
_POLICY = re.compile(r"deepest:([1-9][0-9]*)")


def normalize_policy(text: str) -> str:
    """``frozen`` (also ``freeze``/``none``), ``all`` or ``deepest:N`` (N ≥ 1), normalised.

    Raises :class:`ValueError` naming the accepted forms for anything else.
    """
    value = text.strip().lower()
    if value in ("frozen", "freeze", "none"):
        return "frozen"
    if value == "all" or _POLICY.fullmatch(value):
        return value
    raise ValueError(f"unknown freezing policy {text!r}: use frozen, all or deepest:N with N ≥ 1")


class HeadSpec(_Strict):
    """A head: ``linear`` or ``mlp`` (the paper's ``Linear(n,256)-ReLU-Dropout(0.3)-Linear``),
    or a classic ``svm`` / ``logreg`` fitted by scikit-learn on frozen features (regularisation
    ``C``) and stored as a single ``Linear`` layer."""

    kind: HeadKind = Field(
        "linear",
        description="linear | mlp (Linear-ReLU-Dropout-Linear), trained by gradient descent; or "
        "logreg | svm, fitted by scikit-learn on frozen features (logreg is the stronger: "
        "0.88-0.89 vs 0.85-0.86 for the linear SVM on real scene photos).",
    )
    hidden: list[int] = Field(default_factory=lambda: [256], description="mlp hidden widths.")
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="Dropout before the last layer.")
    C: float | Literal["auto"] = Field(
        "auto",
        description="svm/logreg: inverse regularisation strength, or auto (stratified k-fold "
        "cross-validation on the training split over a log grid).",
    )
    cv_folds: int = Field(5, ge=2, description="svm/logreg with C auto: cross-validation folds.")

    @field_validator("C")
    @classmethod
    def _positive_c(cls, value: float | str) -> float | str:
        if not isinstance(value, str) and value <= 0:
            raise ValueError("C must be > 0 or auto")
        return value

    @property
    def classic(self) -> bool:
        """Fitted by scikit-learn (svm/logreg) rather than trained by gradient descent."""
        return self.kind in CLASSIC_HEADS


class OptimConfig(_Strict):
    """Optimiser, schedule and regularisation."""

    name: Literal["sgd", "adam", "adamw"] = Field("adamw", description="Optimiser.")
    lr: float = Field(1e-3, gt=0, description="Learning rate (head; backbone × backbone_lr_mult).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    nesterov: bool = False
    weight_decay: float = Field(1e-4, ge=0, description="Weight decay (not on norms/biases).")
    scheduler: Literal["none", "plateau", "cosine", "onecycle"] = Field(
        "cosine", description="Learning-rate schedule."
    )
    warmup_epochs: float = Field(0.0, ge=0, description="Linear warm-up epochs (cosine).")
    plateau_patience: int = Field(2, ge=0)
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    backbone_lr_mult: float = Field(
        0.1, gt=0, le=1, description="Backbone learning rate as a fraction of the head's."
    )
    grad_clip: float | None = Field(None, gt=0, description="Clip gradient norm to this value.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the loss.")
    class_weights: bool = Field(False, description="Weight the loss by inverse class frequency.")


class FineTune(_Strict):
    """fastai-style ``fine_tune``: head only, then unfreeze the deepest blocks at a lower LR."""

    head_epochs: int = Field(2, ge=1, description="Head-only epochs before unfreezing --policy.")
    unfreeze: str = "deepest:1"

    @field_validator("unfreeze")
    @classmethod
    def _unfreeze(cls, value: str) -> str:
        return normalize_policy(value)


class TrainConfig(_Strict):
    """Everything that defines a training run; ``landscape train`` flags override these keys.

    Field descriptions are the CLI's help texts and Literal types its choices
    (:mod:`landscape.cli._config_options` derives the flags from this class).
    """

    data: Path = Field(description="Dataset folder (class folders or splits) or CSV manifest.")
    out: Path = Field(Path("runs/latest"), description="Run directory.")
    backbone: str = Field(
        "efficientnet_lite0", description="Backbone name (`landscape models list`)."
    )
    weights: str | None = Field(
        None, description="packaged | hub | none | PATH (default: the backbone's offline source)."
    )
    weights_sha256: str | None = Field(None, description="Expected sha256 of a --weights PATH.")
    init: Path | None = Field(
        None,
        description="Fine-tune a trained model: start from this bundle's network (its backbone, "
        "the head rows of the classes it shares, its preprocessing) instead of --weights; "
        "--backbone must name the bundle's backbone.",
    )
    head: HeadSpec = Field(default_factory=HeadSpec)
    layer: str | None = Field(
        None,
        description="svm/logreg: backbone module giving the features (e.g. features.23, "
        "layer3); default: the pooled output.",
    )
    policy: str = Field("frozen", description="frozen | deepest:N | all.")
    bn: Literal["freeze", "train"] = Field("freeze", description="BatchNorm of frozen blocks.")
    fine_tune: FineTune | None = None
    epochs: int = Field(10, ge=1, description="Epochs (of the last stage).")
    batch_size: int = Field(32, ge=1, description="Images per batch.")
    optim: OptimConfig = Field(default_factory=OptimConfig)
    early_stopping: int | None = Field(
        None, ge=1, description="Stop after this many epochs without a better val_loss."
    )
    augmentation: Literal["none", "paper", "strong"] = Field(
        "none", description="Training augmentation preset."
    )
    mixup: float = Field(0.0, ge=0, description="MixUp alpha (0 = off).")
    cutmix: float = Field(0.0, ge=0, description="CutMix alpha (0 = off).")
    normalize: Literal["pretrained", "dataset"] = Field(
        "pretrained", description="Mean/std of the weights or of the training split."
    )
    crop: Literal["center", "full"] = Field(
        "center",
        description="center: resize, then centre-crop (the ImageNet transform the weights were "
        "trained with); full: the whole image resized to the input size, borders kept. Stored "
        "in the bundle. center is the default because full scored 2 points lower on real "
        "photos (intel-sample, benchmarks/README.md).",
    )
    val_fraction: float | None = Field(
        None,
        ge=0,
        lt=1,
        description=f"Validation fraction carved from train when the dataset has no val split "
        f"(default {DEFAULT_VAL_FRACTION}; 0 for svm/logreg, which cross-validate instead).",
    )
    test_fraction: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="Test fraction carved when the dataset has no test split (a dataset's own "
        "test split is never split again).",
    )
    max_per_class: int | None = Field(None, ge=1, description="Cap training images per class.")
    seed: int = Field(0, description="Seed (split, init, shuffling).")
    cache_features: Literal["auto", "on", "off"] = Field(
        "auto", description="Train a frozen head on cached backbone features."
    )
    num_workers: int | None = Field(
        None, ge=0, description="DataLoader workers (default: from cores and memory)."
    )
    precision: Literal["32", "bf16"] = Field("32", description="Float precision.")
    accelerator: Literal["cpu", "gpu", "cuda", "mps", "auto"] = Field(
        "cpu", description="Device kind (auto: a GPU when present)."
    )
    devices: int | str = Field(1, description="Devices (e.g. 2) for data-parallel runs.")
    strategy: Literal["auto", "ddp", "ddp_spawn"] = Field("auto", description="Lightning strategy.")
    progress: bool = True
    # CSV logs are always written (the run history is read from them); TensorBoard is optional.
    tensorboard: bool = Field(
        False, description="Also log to RUN_DIR/tensorboard (extra: tensorboard)."
    )

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        return normalize_policy(value)

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.isdigit() else value

    @model_validator(mode="after")
    def _resolve(self) -> TrainConfig:
        # Gradient-trained heads always sit on the pooled output; a silently ignored --layer
        # would train something other than what was asked for.
        if self.layer is not None and not self.head.classic:
            raise ValueError("layer is only used with head.kind svm or logreg")
        if self.init is not None and self.head.classic:
            raise ValueError("init fine-tunes a network: use head.kind linear or mlp")
        if self.init is not None and self.weights is not None:
            raise ValueError("pass either init (a trained bundle) or weights, not both")
        if self.val_fraction is None:
            # svm/logreg pick C by cross-validation and need no early-stopping split, so every
            # training image is used for fitting.
            self.val_fraction = 0.0 if self.head.classic else DEFAULT_VAL_FRACTION
        return self


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: ``source: key.path: message``; joined by ``; ``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return f"{source}: " + "; ".join(parts)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a syntax error is a one-line :class:`ConfigError`."""
    if not path.is_file():
        raise ConfigError("config file not found", path=path, fix="check the path")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"invalid YAML{where}", path=path, fix="fix the syntax") from exc
    if not isinstance(data, dict):
        raise ConfigError("config must be a YAML mapping", path=path, fix="use key: value lines")
    return data


def merge_dicts(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: nested mappings merge key by key, anything else in ``over`` wins."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_train_config(
    path: Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Build a :class:`TrainConfig` from an optional YAML file plus overrides (CLI flags)."""
    data = load_yaml(path) if path is not None else {}
    merged = merge_dicts(data, {k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return TrainConfig(**merged)
    except ValidationError as exc:
        source = str(path) if path is not None else "options"
        raise ConfigError(
            format_validation_error(exc, source), fix="see `landscape train --help`"
        ) from exc
