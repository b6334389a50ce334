"""Safe image decoding: EXIF orientation, every mode to RGB, corrupt files and bombs rejected.

Pillow by default only *warns* above ``MAX_IMAGE_PIXELS`` and silently accepts truncated JPEGs
with ``LOAD_TRUNCATED_IMAGES``; an indexing service must do neither, so decoding here turns both
into :class:`~landscape.errors.ImageDecodeError` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from landscape.errors import ImageDecodeError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "checked_image",
    "file_sha256",
    "is_image_path",
    "open_image",
    "to_rgb",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)
#: Largest image accepted (pixels). 200 Mpx covers any camera; a bomb claims far more.
MAX_PIXELS: int = 200_000_000
# Pillow raises above twice its limit before our check could name the file; align the two.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageSource = Path | str | bytes | Image.Image | np.ndarray


def is_image_path(path: Path) -> bool:
    """True when ``path`` has an image file extension (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode (L, P, RGBA, LA, CMYK, I;16, I, F, 1) to 8-bit RGB.

    Transparent pixels are composited on white, as a viewer shows them; 16-bit and float images
    are scaled by their own range rather than clipped, so a 16-bit TIFF does not turn white.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        gray = ((array - lo) * scale).clip(0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    return image.convert("RGB")


@contextlib.contextmanager
def checked_image(source: Path | bytes, name: str | Path) -> Iterator[Image.Image]:
    """Open ``source`` lazily (header only) with the pixel limit checked.

    Any Pillow failure inside the ``with`` block — not found, not an image, a decompression
    bomb, a corrupt or truncated file — becomes an :class:`ImageDecodeError` naming ``name``,
    so callers decode, read EXIF or verify inside the block and handle one error type.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Another library switched Pillow to accept truncated files; an index must not.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; landscape needs it False")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below is the check; Pillow's warning would be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageDecodeError(
                        f"image is {width}x{height} pixels, above the {MAX_PIXELS:,} limit "
                        "(possible decompression bomb)",
                        path=name,
                        fix="resize it or remove it from the folder",
                    )
                yield img
    except ImageDecodeError:
        raise
    except FileNotFoundError as exc:
        raise ImageDecodeError("file not found", path=name, fix="check the path") from exc
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        reason = "not a readable image" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise ImageDecodeError(reason, path=name, fix="remove or replace the file") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(
            f"corrupt or truncated image ({exc})", path=name, fix="remove or replace the file"
        ) from exc


def _decode(data: Path | bytes, name: str, draft: tuple[int, int] | None) -> Image.Image:
    with checked_image(data, name) as img:
        if draft is not None and img.format == "JPEG":
            # JPEG DCT scaling decodes a 4000 px photo at 1/8 size, far faster.
            img.draft("RGB", draft)
        img.load()
        oriented = ImageOps.exif_transpose(img)
        return to_rgb(oriented if oriented is not None else img)


def open_image(source: ImageSource, *, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``source`` into an upright RGB image or raise :class:`ImageDecodeError`.

    ``source`` may be a path, encoded bytes, a Pillow image or an ``HxWxC``/``HxW`` uint8 array.
    ``draft`` asks JPEG decoding for at least that size (much faster for large photos).
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise ImageDecodeError(
                f"array of dtype {source.dtype} and shape {source.shape} is not an image",
                fix="pass an HxW or HxWx3 uint8 array",
            )
        return to_rgb(Image.fromarray(source))
    if isinstance(source, bytes):
        return _decode(source, "<bytes>", draft)
    path = Path(source)
    if path.is_file() and path.stat().st_size == 0:
        raise ImageDecodeError("empty file (0 bytes)", path=path, fix="remove or replace the file")
    return _decode(path, str(path), draft)
