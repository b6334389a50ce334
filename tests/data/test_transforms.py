"""Preprocessing: full-frame resizing keeps a scene's borders, centre-cropping cuts them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from landscape.data.transforms import (
    Preprocessing,
    eval_transform,
    normalize,
    resize_crop,
    train_transform,
)

_PRE = {"input_size": 32, "resize_size": 36, "mean": (0, 0, 0), "std": (1, 1, 1)}


def _banded(width: int = 128, height: int = 64) -> Image.Image:
    """Red left quarter, green middle, blue right quarter."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    quarter = width // 4
    pixels[:, :quarter, 0] = 255
    pixels[:, quarter:-quarter, 1] = 255
    pixels[:, -quarter:, 2] = 255
    return Image.fromarray(pixels)


def test_full_frame_keeps_the_borders_center_crop_cuts_them() -> None:
    image = _banded()
    full = eval_transform(Preprocessing(**_PRE, crop="full"))(image)
    center = eval_transform(Preprocessing(**_PRE, crop="center"))(image)
    assert full.shape == center.shape == (3, 32, 32)
    # Full frame: the whole 2:1 image squeezed into the square, red and blue edges included.
    assert full[0, :, :4].mean() > 0.9 and full[2, :, -4:].mean() > 0.9
    # Centre crop of the shorter side: only the green middle survives.
    assert center[0].max() < 0.05 and center[2].max() < 0.05
    assert center[1].mean() > 0.95


def test_bundles_written_before_crop_existed_load_as_center() -> None:
    assert Preprocessing(**_PRE).crop == "center"
    with pytest.raises(ValueError):
        Preprocessing(**_PRE, crop="side")  # type: ignore[arg-type]


@pytest.mark.parametrize("crop", ["full", "center"])
def test_augmentation_presets_give_the_input_size(crop: str) -> None:
    pre = Preprocessing(**_PRE, crop=crop)
    for preset in ("none", "paper", "strong"):
        out = train_transform(pre, preset)(_banded())
        assert isinstance(out, torch.Tensor) and out.shape == (3, 32, 32)
    assert torch.equal(train_transform(pre, "none")(_banded()), eval_transform(pre)(_banded()))


def _torchvision_eval(pre: Preprocessing) -> object:
    """The reference: torchvision's own Resize (+ CenterCrop), ToDtype and Normalize."""
    from torchvision.transforms import InterpolationMode, v2

    interp = (
        InterpolationMode.BICUBIC if pre.interpolation == "bicubic" else InterpolationMode.BILINEAR
    )
    size = (pre.input_size, pre.input_size) if pre.crop == "full" else pre.resize_size
    geometry = [v2.Resize(size, interpolation=interp, antialias=True)]
    if pre.crop == "center":
        geometry.append(v2.CenterCrop(pre.input_size))
    return v2.Compose(
        [
            *geometry,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(pre.mean), list(pre.std)),
        ]
    )


@pytest.mark.parametrize("crop", ["full", "center"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(480, 270), (270, 480), (301, 301), (150, 150)])
def test_eval_transform_equals_torchvision(
    crop: str, interpolation: str, size: tuple[int, int]
) -> None:
    """The torch-free eval path makes the same pixels as torchvision's PIL path."""
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    pre = Preprocessing(
        input_size=224,
        resize_size=256,
        interpolation=interpolation,  # type: ignore[arg-type]
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        crop=crop,  # type: ignore[arg-type]
    )
    ours = eval_transform(pre)(image)
    reference = _torchvision_eval(pre)(image)  # type: ignore[operator]
    assert ours.dtype == torch.float32 and ours.shape == reference.shape == (3, 224, 224)
    assert torch.allclose(ours, reference, atol=1e-5, rtol=0)


def test_normalize_takes_one_image_or_a_batch() -> None:
    pre = Preprocessing(**_PRE)
    pixels = resize_crop(_banded(), pre)
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 32, 3)
    one = normalize(pixels, pre)
    batch = normalize(np.stack([pixels, pixels]), pre)
    assert one.shape == (3, 32, 32) and batch.shape == (2, 3, 32, 32)
    assert np.array_equal(batch[1], one) and one.flags.c_contiguous


def test_resize_crop_converts_other_modes_to_rgb() -> None:
    gray = _banded().convert("L")
    assert resize_crop(gray, Preprocessing(**_PRE)).shape == (32, 32, 3)
