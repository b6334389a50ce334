"""Typed configuration (pydantic) for training runs; loaded from YAML and overridden by the CLI.

Unknown keys are errors that name their path (``optim.lrr: extra inputs are not permitted``),
so a typo in a study file never silently trains the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from landscape.errors import ConfigError
from landscape.models.heads import HeadSpec

__all__ = [
    "FineTune",
    "OptimConfig",
    "TrainConfig",
    "format_validation_error",
    "load_train_config",
    "load_yaml",
    "merge_dicts",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimConfig(_Strict):
    """Optimiser, schedule and regularisation."""

    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["none", "plateau", "cosine", "onecycle"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    plateau_patience: int = Field(2, ge=0)
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    backbone_lr_mult: float = Field(0.1, gt=0, le=1)
    grad_clip: float | None = Field(None, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: bool = False


class FineTune(_Strict):
    """fastai-style ``fine_tune``: head only, then unfreeze the deepest blocks at a lower LR."""

    head_epochs: int = Field(2, ge=1)
    unfreeze: str = "deepest:1"


class TrainConfig(_Strict):
    """Everything that defines a training run; ``landscape train`` flags override these keys."""

    data: Path
    out: Path = Path("runs/latest")
    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    weights_sha256: str | None = None
    head: HeadSpec = Field(default_factory=HeadSpec)
    # Classic heads (svm/logreg) only: the backbone module whose output is the feature vector
    # (e.g. ``features.23``, ``layer3``); None = the backbone's usual pooled features.
    layer: str | None = None
    policy: str = "frozen"
    bn: Literal["freeze", "train"] = "freeze"
    fine_tune: FineTune | None = None
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    early_stopping: int | None = Field(None, ge=1)
    augmentation: Literal["none", "paper", "strong"] = "none"
    mixup: float = Field(0.0, ge=0)
    cutmix: float = Field(0.0, ge=0)
    normalize: Literal["pretrained", "dataset"] = "pretrained"
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.15, ge=0, lt=1)
    max_per_class: int | None = Field(None, ge=1)
    seed: int = 0
    cache_features: Literal["auto", "on", "off"] = "auto"
    num_workers: int | None = Field(None, ge=0)
    precision: Literal["32", "bf16"] = "32"
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    progress: bool = True
    # CSV logs are always written (the run history is read from them); TensorBoard is optional.
    tensorboard: bool = False

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        from landscape.models.freezing import parse_policy

        try:
            return parse_policy(value).name
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _layer_needs_classic_head(self) -> TrainConfig:
        # Gradient-trained heads always sit on the pooled output; a silently ignored --layer
        # would train something other than what was asked for.
        if self.layer is not None and self.head.kind not in ("svm", "logreg"):
            raise ValueError("layer is only used with head.kind svm or logreg")
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
