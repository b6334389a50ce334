"""What a weight source's publisher says about its input pipeline and classifier.

A backbone's eval preprocessing (input size, resize size, interpolation, mean/std) and the name
of its ImageNet classifier are *read* from the library that publishes the weights, keyed like
timm's ``arch.tag``:

- ``timm:<arch>.<tag>`` → ``timm.models.get_pretrained_cfg`` (``input_size``, ``crop_pct``,
  ``interpolation``, ``mean``, ``std``, ``classifier``, ``url``);
- ``torchvision:<WeightsEnum>.<MEMBER>`` → ``Weights.transforms()`` (``crop_size``,
  ``resize_size``, ``interpolation``, ``mean``, ``std``) and ``Weights.url``.

Both live in code, so nothing is downloaded. A :class:`ConfigRef` names one such key plus the
few values the library does not publish (torchvision has no classifier name) or that the weights'
author states otherwise (see ``_zoo``); a ref without a key is a network of our own.
Resolution is lazy and cached: timm/torchvision are imported on the first lookup only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

__all__ = ["ConfigRef", "PretrainedConfig", "library_config", "resolve_config"]

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class PretrainedConfig:
    """The eval input pipeline and classifier a set of weights was published with.

    ``resize_size`` is the shorter side before the centre crop of ``input_size``; fields are
    ``None`` only in a raw :func:`library_config` where the library does not say.
    """

    input_size: int | None = None
    resize_size: int | None = None
    interpolation: str | None = None
    mean: RGB | None = None
    std: RGB | None = None
    classifier: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ConfigRef:
    """A library config key plus explicit values layered over it (``None`` = take the source's).

    ``key`` is ``"timm:arch.tag"``, ``"torchvision:Enum.MEMBER"`` or ``None`` (no library
    publishes this network: every preprocessing field must be given here).
    """

    key: str | None
    input_size: int | None = None
    resize_size: int | None = None
    interpolation: str | None = None
    mean: RGB | None = None
    std: RGB | None = None
    classifier: str | None = None

    def overrides(self) -> dict[str, object]:
        """The values set here, by field name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "key" and getattr(self, f.name) is not None
        }


def _rgb(values: object) -> RGB:
    r, g, b = (float(v) for v in values)  # type: ignore[attr-defined]
    return (r, g, b)


def _from_timm(tag: str) -> PretrainedConfig:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(tag)
    if cfg is None:
        raise KeyError(f"timm has no pretrained config {tag!r}")
    size = int(cfg.input_size[-1])
    # timm's eval transform (transforms_imagenet_eval) resizes to floor(size / crop_pct).
    url = cfg.url if isinstance(cfg.url, str) and cfg.url else None
    if url is None and cfg.hf_hub_id:  # weights published on the Hugging Face Hub only
        url = f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors"
    return PretrainedConfig(
        input_size=size,
        resize_size=math.floor(size / cfg.crop_pct),
        interpolation=str(cfg.interpolation),
        mean=_rgb(cfg.mean),
        std=_rgb(cfg.std),
        classifier=cfg.classifier,
        url=url,
    )


def _from_torchvision(name: str) -> PretrainedConfig:
    import torchvision

    enum_name, _, member = name.partition(".")
    weights = getattr(torchvision.models, enum_name)[member]
    tf = weights.transforms()
    return PretrainedConfig(
        input_size=int(tf.crop_size[0]),
        resize_size=int(tf.resize_size[0]),
        interpolation=str(tf.interpolation.value),
        mean=_rgb(tf.mean),
        std=_rgb(tf.std),
        url=weights.url,
    )


#: key prefix → reader of that library's published config
_LIBRARIES: dict[str, Callable[[str], PretrainedConfig]] = {
    "timm": _from_timm,
    "torchvision": _from_torchvision,
}


@functools.cache
def library_config(key: str) -> PretrainedConfig:
    """The config published under ``key`` (``"timm:arch.tag"`` / ``"torchvision:Enum.MEMBER"``).

    Unknown prefixes or names raise ``KeyError``.
    """
    prefix, _, name = key.partition(":")
    if prefix not in _LIBRARIES:
        raise KeyError(f"unknown config source {prefix!r} in {key!r} (use {', '.join(_LIBRARIES)})")
    return _LIBRARIES[prefix](name)


@functools.cache
def resolve_config(ref: ConfigRef) -> PretrainedConfig:
    """``ref``'s library config with its explicit values layered on top; all fields but ``url``
    must end up set (``ValueError`` naming the missing ones otherwise)."""
    base = library_config(ref.key) if ref.key else PretrainedConfig()
    merged = replace(base, **ref.overrides())  # type: ignore[arg-type]
    missing = [
        f.name for f in fields(merged) if f.name != "url" and getattr(merged, f.name) is None
    ]
    if missing:
        raise ValueError(f"config {ref.key or 'without a source'} lacks {', '.join(missing)}")
    return merged
