from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landscape.data.io import file_sha256, is_image_path, open_image, to_rgb
from landscape.errors import ImageDecodeError
from tests.conftest import OddImages


def test_exif_orientation_is_applied(odd_images: OddImages) -> None:
    raw = Image.open(odd_images.rgb_exif)
    assert raw.size == (80, 60)
    image = open_image(odd_images.rgb_exif)
    assert image.size == (60, 80)  # rotated upright
    assert image.mode == "RGB"


@pytest.mark.parametrize("name", ["png_alpha", "grayscale", "cmyk", "tiff16", "palette"])
def test_every_mode_becomes_rgb(odd_images: OddImages, name: str) -> None:
    image = open_image(getattr(odd_images, name))
    assert image.mode == "RGB"
    assert image.size == (80, 60)


def test_alpha_composited_on_white(odd_images: OddImages) -> None:
    array = np.asarray(open_image(odd_images.png_alpha))
    assert (array[:, :40] == 255).all()  # transparent half → white
    assert array[:, 40:].mean() < 250


def test_sixteen_bit_uses_full_range(odd_images: OddImages) -> None:
    array = np.asarray(open_image(odd_images.tiff16))
    assert array.min() == 0 and array.max() == 255  # scaled, not clipped to white


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated", "truncated"),
        ("zero", "empty file"),
        ("text", "not a readable image"),
        ("bomb", "decompression bomb"),
    ],
)
def test_bad_files_raise_naming_the_file(odd_images: OddImages, name: str, reason: str) -> None:
    path = getattr(odd_images, name)
    with pytest.raises(ImageDecodeError) as info:
        open_image(path)
    message = str(info.value)
    assert str(path) in message
    assert reason in message
    assert "\n" not in message


def test_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImageDecodeError, match="file not found"):
        open_image(tmp_path / "nope.jpg")


def test_bytes_arrays_and_draft(synth_jpeg: Path) -> None:
    data = synth_jpeg.read_bytes()
    from_bytes = open_image(data)
    assert from_bytes.size == (320, 240)
    # Draft mode decodes at the smallest 1/2^k scale still covering the request: 1/4 here.
    assert open_image(synth_jpeg, draft=(40, 40)).size == (80, 60)
    array = np.asarray(from_bytes)
    assert open_image(array).size == from_bytes.size
    assert open_image(array[:, :, 0]).mode == "RGB"
    with pytest.raises(ImageDecodeError):
        open_image(array.astype(np.float32))


def test_helpers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    f = tmp_path / "a.JPG"
    f.write_bytes(b"abc")
    assert is_image_path(f) and not is_image_path(tmp_path / "a.txt")
    assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    assert to_rgb(Image.new("LA", (2, 2))).mode == "RGB"
