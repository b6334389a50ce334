"""Preprocessing: full-frame resizing keeps a scene's borders, centre-cropping cuts them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from landscape.data.transforms import Preprocessing, eval_transform, train_transform

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
