"""Backbone registry: names → builder + metadata, in the spirit of timm's ``_registry``.

Every entry builds the *ImageNet-shaped* network (random init); :mod:`landscape.models.weights`
loads weights into it and :func:`landscape.models.net.create_model` strips the ImageNet classifier
so the backbone yields pooled features of ``feature_dim``. ``blocks`` lists, shallow to deep, the
module-name groups that ``deepest:N`` unfreezes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from landscape.errors import UserError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneInfo",
    "get_backbone_info",
    "list_backbones",
    "register_backbone",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Builder = Callable[[], "nn.Module"]
BlockLister = Callable[["nn.Module"], list[list[str]]]


@dataclass(frozen=True)
class BackboneInfo:
    """What is known about a backbone before building it (all cheap, no torch import)."""

    name: str
    family: str
    arch: str
    params: int
    feature_dim: int
    input_size: int
    resize_size: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classifier: str
    n_blocks: int
    weight_sources: tuple[str, ...]
    default_weights: str
    hub_url: str | None = None
    hub_sha256: str | None = None
    hub_mean: tuple[float, float, float] | None = None
    hub_std: tuple[float, float, float] | None = None
    description: str = ""
    builder: Builder = field(default=lambda: _missing_builder(), repr=False, compare=False)
    blocks: BlockLister = field(default=lambda m: [], repr=False, compare=False)

    @property
    def offline(self) -> bool:
        """True when weights ship with the installation (no download needed)."""
        return "packaged" in self.weight_sources


def _missing_builder() -> nn.Module:  # pragma: no cover - replaced at registration
    raise RuntimeError("backbone registered without a builder")


_REGISTRY: dict[str, BackboneInfo] = {}


def register_backbone(
    **meta: object,
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under ``meta["name"]`` with its metadata.

    ``meta`` holds the fields of :class:`BackboneInfo` except ``builder``; ``blocks`` is a
    function listing the module-name groups of the built model, shallow to deep.
    """

    def decorate(builder: Builder) -> Builder:
        info = BackboneInfo(builder=builder, **meta)  # type: ignore[arg-type]
        if info.name in _REGISTRY:
            raise ValueError(f"backbone {info.name!r} registered twice")
        _REGISTRY[info.name] = info
        return builder

    return decorate


def _ensure_loaded() -> None:
    # The built-in entries live in _zoo; importing it fills the registry (once).
    from . import _zoo  # noqa: F401


def list_backbones() -> list[BackboneInfo]:
    """All registered backbones, sorted by name."""
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_backbone_info(name: str) -> BackboneInfo:
    """Metadata of ``name``; an unknown name raises :class:`UserError` suggesting close ones."""
    _ensure_loaded()
    key = name.strip().lower().replace("-", "_")
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `landscape models list`"
    raise UserError(f"unknown backbone {name!r}", fix=hint)
