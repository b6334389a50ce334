""":class:`BackboneInfo`: what is known about a backbone before building it.

Shared by the registry (which stores them) and ``_zoo`` (which declares them), so neither
imports the other's internals. Importing this module imports neither torch nor timm: the
preprocessing fields are looked up in the weights' library on first access
(:mod:`landscape.models.pretrained`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .pretrained import ConfigRef, PretrainedConfig, resolve_config

if TYPE_CHECKING:
    from torch import nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "BackboneInfo", "BlockLister", "Builder"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Builder = Callable[[], "nn.Module"]
BlockLister = Callable[["nn.Module"], list[list[str]]]


def _missing_builder() -> nn.Module:  # pragma: no cover - replaced at registration
    raise RuntimeError("backbone registered without a builder")


@dataclass(frozen=True)
class BackboneInfo:
    """A registered backbone: builder, block layout, and where its weights' settings come from.

    ``configs`` maps a weight source (``packaged``, ``hub``, ``none``) to the
    :class:`ConfigRef` its preprocessing is read from; a local file or a source without an
    entry uses the ``default_weights`` one. ``params`` counts the ImageNet-shaped network
    (1000-class classifier included); ``blocks`` lists, shallow to deep, the module-name groups
    that ``deepest:N`` unfreezes.
    """

    name: str
    family: str
    arch: str
    params: int
    feature_dim: int
    n_blocks: int
    weight_sources: tuple[str, ...]
    default_weights: str
    configs: Mapping[str, ConfigRef] = field(hash=False)
    hub_url: str | None = None
    hub_sha256: str | None = None
    description: str = ""
    builder: Builder = field(default=lambda: _missing_builder(), repr=False, compare=False)
    blocks: BlockLister = field(default=lambda m: [], repr=False, compare=False)

    @property
    def offline(self) -> bool:
        """True when weights ship with the installation (no download needed)."""
        return "packaged" in self.weight_sources

    def config_for(self, source: str) -> PretrainedConfig:
        """Preprocessing and classifier of the weights from ``source`` (any other source, e.g. a
        local file, is taken to follow the default weights' pipeline)."""
        ref = self.configs.get(source) or self.configs[self.default_weights]
        return resolve_config(ref)

    @property
    def _default(self) -> PretrainedConfig:
        return self.config_for(self.default_weights)

    @property
    def input_size(self) -> int:
        """Side of the square crop the default weights were evaluated at."""
        return int(self._default.input_size or 0)

    @property
    def resize_size(self) -> int:
        """Shorter side before the centre crop, for the default weights."""
        return int(self._default.resize_size or 0)

    @property
    def interpolation(self) -> str:
        """Resize interpolation (``bilinear`` / ``bicubic``) of the default weights."""
        return str(self._default.interpolation)

    @property
    def mean(self) -> tuple[float, float, float]:
        """Normalisation mean of the default weights."""
        assert self._default.mean is not None  # resolve_config guarantees it
        return self._default.mean

    @property
    def std(self) -> tuple[float, float, float]:
        """Normalisation std of the default weights."""
        assert self._default.std is not None
        return self._default.std

    @property
    def classifier(self) -> str:
        """Dotted name of the ImageNet classifier module (stripped for features)."""
        return str(self._default.classifier)
