"""Transform presets: ``eval``, ``none``, ``paper`` (the seed study), ``strong``; MixUp/CutMix.

A :class:`Preprocessing` (size, resize, interpolation, mean/std) is stored in every model bundle,
and :func:`eval_transform` is the *only* way inference code turns an image into a tensor, so
training, evaluation, prediction, indexing and ONNX export preprocess identically by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AUGMENTATIONS",
    "Crop",
    "Preprocessing",
    "batch_mixer",
    "eval_transform",
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


def _geometry(pre: Preprocessing) -> list[Any]:
    from torchvision.transforms import v2

    interp = _interp(pre.interpolation)
    if pre.crop == "full":
        return [v2.Resize((pre.input_size, pre.input_size), interpolation=interp, antialias=True)]
    return [
        v2.Resize(pre.resize_size, interpolation=interp, antialias=True),
        v2.CenterCrop(pre.input_size),
    ]


def eval_transform(pre: Preprocessing) -> Callable[[Any], Any]:
    """Deterministic PIL → normalised tensor: resize (and centre-crop), normalise."""
    from torchvision.transforms import v2

    return v2.Compose([*_geometry(pre), *_to_tensor(pre)])


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
