"""Backbone registry: names → :class:`BackboneInfo`, in the spirit of timm's ``_registry``.

Every entry builds the *ImageNet-shaped* network (random init); :mod:`landscape.models.weights`
loads weights into it and :func:`landscape.models.net.create_model` strips the ImageNet classifier
so the backbone yields pooled features of ``feature_dim``. The built-in entries are declared in
``_zoo`` and registered by the package's ``__init__`` (``_zoo.register_all()``): this module
imports neither, so there is no registry ↔ zoo import cycle.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from landscape.errors import UserError

from .info import IMAGENET_MEAN, IMAGENET_STD, BackboneInfo, Builder

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneInfo",
    "get_backbone_info",
    "list_backbones",
    "register_backbone",
]

_REGISTRY: dict[str, BackboneInfo] = {}


def register_backbone(
    **meta: object,
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under ``meta["name"]`` with its metadata.

    ``meta`` holds the fields of :class:`BackboneInfo` except ``builder``; ``blocks`` is a
    function listing the module-name groups of the built model, shallow to deep. A name
    registered twice is a ``ValueError``.
    """

    def decorate(builder: Builder) -> Builder:
        info = BackboneInfo(builder=builder, **meta)  # type: ignore[arg-type]
        if info.name in _REGISTRY:
            raise ValueError(f"backbone {info.name!r} registered twice")
        _REGISTRY[info.name] = info
        return builder

    return decorate


def list_backbones() -> list[BackboneInfo]:
    """All registered backbones, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_backbone_info(name: str) -> BackboneInfo:
    """Metadata of ``name``; an unknown name raises :class:`UserError` suggesting close ones."""
    key = name.strip().lower().replace("-", "_")
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `landscape models list`"
    raise UserError(f"unknown backbone {name!r}", fix=hint)
