"""Transform presets: ``eval``, ``none``, ``paper`` (the seed study), ``strong``; MixUp/CutMix.

A :class:`Preprocessing` (size, resize, interpolation, mean/std) is stored in every model bundle,
and :func:`eval_transform` is the *only* way inference code turns an image into a tensor, so
training, evaluation, prediction, indexing and ONNX export preprocess identically by construction.
It is two steps that can run in different processes: :func:`resize_crop` (PIL → uint8 pixels,
the geometry) and :func:`normalize` (uint8 → the network's float32 input). Neither needs torch,
so the index's decode workers start without it and send a quarter of the bytes back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = [
    "AUGMENTATIONS",
    "Crop",
    "Preprocessing",
    "batch_mixer",
    "eval_transform",
    "normalize",
    "resize_crop",
    "train_transform",
]

Augmentation = Literal["none", "paper", "strong"]
AUGMENTATIONS: tuple[str, ...] = ("none", "paper", "strong")


Crop = Literal["full", "center"]


class Preprocessing(BaseModel):
    """How a model expects its input: resize, crop, normalise.

    ``crop="center"`` resizes the shorter side to ``resize_size`` and centre-crops
    ``input_size`` (the ImageNet evaluation transform); ``crop="full"`` resizes the whole image
    to ``input_size`` × ``input_size``, so a scene's borders stay in view. Bundles written before
    ``crop`` existed load as ``center``, which is what they were trained with.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_size: int
    resize_size: int
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop: Crop = "center"


def _interp(name: str) -> Any:
    from torchvision.transforms import InterpolationMode

    return InterpolationMode.BICUBIC if name == "bicubic" else InterpolationMode.BILINEAR


def _to_tensor(pre: Preprocessing) -> list[Any]:
    import torch
    from torchvision.transforms import v2

    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(pre.mean), list(pre.std)),
    ]


def _pil_filter(name: str) -> Any:
    from PIL import Image

    return Image.Resampling.BICUBIC if name == "bicubic" else Image.Resampling.BILINEAR


def _resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """torchvision's ``Resize(int)`` output size: the shorter side to ``short``, aspect kept."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def resize_crop(image: Any, pre: Preprocessing) -> np.ndarray:
    """The geometry of :func:`eval_transform`: an RGB PIL image → ``uint8`` HWC pixels.

    The same Pillow calls torchvision's ``Resize`` + ``CenterCrop`` make on a PIL image (tested
    equal), without importing torch.
    """
    resample = _pil_filter(pre.interpolation)
    if image.mode != "RGB":
        image = image.convert("RGB")
    size = pre.input_size
    if pre.crop == "full":
        return np.asarray(image.resize((size, size), resample))
    width, height = _resized_size(image.size[0], image.size[1], pre.resize_size)
    resized = image.resize((width, height), resample)
    top, left = round((height - size) / 2.0), round((width - size) / 2.0)
    return np.asarray(resized.crop((left, top, left + size, top + size)))


@functools.lru_cache(maxsize=16)
def _lookup(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """Per channel, the normalised float32 value of each of the 256 byte values."""
    scaled = np.arange(256, dtype=np.float32) / np.float32(255.0)
    means = np.asarray(mean, dtype=np.float32)[:, None]
    return (scaled[None, :] - means) / np.asarray(std, dtype=np.float32)[:, None]


def normalize(pixels: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """``uint8`` HWC pixels (or a NHWC batch) → the network's float32 CHW (NCHW) input:
    ``(x / 255 - mean) / std`` per channel, read from a 256-entry table (the same float32
    values as the arithmetic, in half the time)."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"normalize takes uint8 pixels, got {pixels.dtype}")
    table = _lookup(tuple(pre.mean), tuple(pre.std))
    planes = np.moveaxis(pixels, -1, -3)
    out = np.empty(planes.shape, dtype=np.float32)
    for channel in range(planes.shape[-3]):
        np.take(table[channel], planes[..., channel, :, :], out=out[..., channel, :, :])
    return out


def eval_transform(pre: Preprocessing) -> Callable[[Any], Any]:
    """Deterministic PIL → normalised tensor: resize (and centre-crop), normalise."""
    import torch

    def transform(image: Any) -> Any:
        return torch.from_numpy(normalize(resize_crop(image, pre), pre))

    return transform


def train_transform(pre: Preprocessing, augmentation: Augmentation) -> Callable[[Any], Any]:
    """Training transform for a preset; ``none`` equals :func:`eval_transform` (cacheable)."""
    from torchvision.transforms import v2

    if augmentation == "none":
        return eval_transform(pre)
    interp = _interp(pre.interpolation)
    if augmentation == "paper":
        # The seed study: Resize 256, RandomCrop 224, HFlip, Rotation 15, ColorJitter, Normalize;
        # with crop "full" the whole image is resized to a square first, so crops stay scene-wide.
        size = (pre.resize_size, pre.resize_size) if pre.crop == "full" else pre.resize_size
        steps: list[Any] = [
            v2.Resize(size, interpolation=interp, antialias=True),
            v2.RandomCrop(pre.input_size),
            v2.RandomHorizontalFlip(),
            v2.RandomRotation(15, interpolation=interp),
            v2.ColorJitter(0.2, 0.2, 0.2, 0.05),
            *_to_tensor(pre),
        ]
    else:
        steps = [
            v2.RandomResizedCrop(pre.input_size, scale=(0.35, 1.0), interpolation=interp),
            v2.RandomHorizontalFlip(),
            v2.TrivialAugmentWide(interpolation=interp),
            *_to_tensor(pre),
            v2.RandomErasing(p=0.25),
        ]
    return v2.Compose(steps)


def batch_mixer(num_classes: int, mixup: float, cutmix: float) -> Callable[..., Any] | None:
    """MixUp and/or CutMix applied to whole batches (labels become soft); ``None`` if both 0."""
    from torchvision.transforms import v2

    mixers: list[Any] = []
    if mixup > 0:
        mixers.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        mixers.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)
