"""Tests of :mod:`landscape.data.stats`: the one channel mean/std rule of training and the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landscape.data.stats import (
    STATS_SIZE,
    PixelSums,
    channel_stats,
    pixel_sums,
    stats_thumbnail,
)
from landscape.errors import ImageDecodeError


def _jpeg(path: Path, size: tuple[int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, size[1])[:, None, None]
    base = np.concatenate([y * 220, (1 - y) * 160, np.full_like(y, 70)], axis=2)
    pixels = np.clip(base + rng.normal(0, 10, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=92)
    return path


def test_stats_thumbnail_fits_the_box_and_keeps_the_aspect(tmp_path: Path) -> None:
    wide = _jpeg(tmp_path / "wide.jpg", (512, 256), 0)
    assert stats_thumbnail(wide).size == (STATS_SIZE, STATS_SIZE // 2)
    assert stats_thumbnail(wide, size=32).size == (32, 16)
    small = _jpeg(tmp_path / "small.jpg", (40, 30), 1)
    assert stats_thumbnail(small).size == (40, 30)  # never enlarged
    assert stats_thumbnail(small).mode == "RGB"


def test_stats_thumbnail_decodes_jpegs_in_draft_mode(tmp_path: Path) -> None:
    photo = _jpeg(tmp_path / "big.jpg", (512, 512), 2)
    # DCT scaling at 1/8 gives other pixels than shrinking a full decode: the rule is the draft.
    with Image.open(photo) as img:
        img.draft("RGB", (STATS_SIZE, STATS_SIZE))
        expected = np.asarray(img.convert("RGB"))
    assert np.array_equal(np.asarray(stats_thumbnail(photo)), expected)
    with Image.open(photo) as img:
        full = np.asarray(img.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR))
    assert not np.array_equal(np.asarray(stats_thumbnail(photo)), full)


def test_pixel_sums_of_a_solid_image_and_of_bytes(tmp_path: Path) -> None:
    path = tmp_path / "solid.png"
    Image.new("RGB", (128, 64), (255, 51, 0)).save(path)
    sums = pixel_sums(path)
    assert sums.pixels == 64 * 32 and sums.images == 1
    assert sums.total == pytest.approx([2048.0, 0.2 * 2048, 0.0])
    assert sums.total_sq == pytest.approx([2048.0, 0.04 * 2048, 0.0])
    from_bytes = pixel_sums(path.read_bytes())
    assert np.array_equal(from_bytes.total, sums.total) and from_bytes.pixels == sums.pixels
    with pytest.raises(ImageDecodeError):
        pixel_sums(b"not an image")


def test_pixel_sums_add_up_and_give_mean_and_std() -> None:
    assert PixelSums().mean_std() == ([], [])
    black = PixelSums(np.zeros(3), np.zeros(3), 10, 1)
    white = PixelSums(np.full(3, 30.0), np.full(3, 30.0), 30, 1)
    both = black + white
    assert (both.pixels, both.images) == (40, 2)
    mean, std = both.mean_std()
    assert mean == pytest.approx([0.75] * 3)
    assert std == pytest.approx([np.sqrt(0.75 - 0.75**2)] * 3)
    # A constant channel gets a tiny positive std, so Normalize never divides by zero.
    _, flat = white.mean_std()
    assert all(0 < s < 1e-5 for s in flat)


def test_channel_stats_weights_pixels_and_skips_undecodable_files(tmp_path: Path) -> None:
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(red)
    Image.new("RGB", (64, 32), (0, 0, 255)).save(blue)  # half the pixels of the red one
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    calls: list[int] = []
    mean, std, n = channel_stats([red, broken, blue], progress=calls.append)
    assert n == 2 and calls == [1, 1]
    assert mean == pytest.approx([2 / 3, 0.0, 1 / 3])
    assert std[0] == pytest.approx(np.sqrt(2 / 3 - 4 / 9))
    assert channel_stats([broken]) == ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], 0)


def test_channel_stats_equal_the_sum_of_pixel_sums(tmp_path: Path) -> None:
    paths = [_jpeg(tmp_path / f"{i}.jpg", (300 + 40 * i, 200), i) for i in range(3)]
    total = PixelSums()
    for path in paths:
        total = total + pixel_sums(path)
    mean, std = total.mean_std()
    assert channel_stats(paths) == (mean, std, 3)  # bit-identical, not approximately


def test_stats_of_encoded_bytes_match_the_file(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (90, 70), (10, 200, 30)).save(buf, "JPEG", quality=95)
    path = tmp_path / "x.jpg"
    path.write_bytes(buf.getvalue())
    assert np.array_equal(
        np.asarray(stats_thumbnail(buf.getvalue())), np.asarray(stats_thumbnail(path))
    )
