"""Per-channel statistics of images (what ``Normalize`` needs).

One resizing rule and one summation for everyone: ``--normalize dataset`` in training
(:func:`channel_stats`), ``landscape data stats`` and ``landscape data audit``
(:mod:`landscape.data.audit`, through :func:`pixel_sums`) all add up :class:`PixelSums` of the
same thumbnails in the same order, so the numbers the CLI prints are the numbers training uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from landscape.errors import ImageDecodeError

from .io import open_image

__all__ = ["STATS_SIZE", "PixelSums", "channel_stats", "pixel_sums", "stats_thumbnail"]

#: Images are shrunk to fit a ``STATS_SIZE`` square before their pixels are summed: the statistics
#: of a 64 px thumbnail match the full image's to ~1e-3 and cost a fraction of the decoding.
STATS_SIZE = 64
# Floor of the variance: a constant channel would give std 0 and Normalize would divide by it.
_MIN_VARIANCE = 1e-12


def _zeros() -> np.ndarray:
    return np.zeros(3)


@dataclass(frozen=True)
class PixelSums:
    """Per-channel sum and sum of squares of RGB pixel values in [0, 1], and what they cover.

    Float64 sums, added in a fixed order, so 12k images stay exact and two callers adding the
    same images in the same order get bit-identical means.
    """

    total: np.ndarray = field(default_factory=_zeros)
    total_sq: np.ndarray = field(default_factory=_zeros)
    pixels: int = 0
    images: int = 0

    def __add__(self, other: PixelSums) -> PixelSums:
        return PixelSums(
            self.total + other.total,
            self.total_sq + other.total_sq,
            self.pixels + other.pixels,
            self.images + other.images,
        )

    def mean_std(self) -> tuple[list[float], list[float]]:
        """RGB mean and std; ``([], [])`` when no pixel was added."""
        if self.pixels == 0:
            return [], []
        mean = self.total / self.pixels
        var = np.maximum(self.total_sq / self.pixels - np.square(mean), _MIN_VARIANCE)
        return [float(v) for v in mean], [float(v) for v in np.sqrt(var)]


def stats_thumbnail(source: Path | bytes, *, size: int = STATS_SIZE) -> Image.Image:
    """The upright RGB image whose pixels the statistics count: fits in ``size``×``size``.

    JPEGs are decoded in draft mode (DCT scaling), which is why the source, not a decoded image,
    is taken: a full decode shrunk afterwards gives slightly different pixels. Raises
    :class:`~landscape.errors.ImageDecodeError` for a file that does not decode.
    """
    image = open_image(source, draft=(size, size))
    image.thumbnail((size, size))
    return image


def pixel_sums(source: Path | bytes, *, size: int = STATS_SIZE) -> PixelSums:
    """:class:`PixelSums` of one image (path or encoded bytes) resized by :func:`stats_thumbnail`.

    Raises :class:`~landscape.errors.ImageDecodeError` for a file that does not decode.
    """
    array = np.asarray(stats_thumbnail(source, size=size), dtype=np.float64).reshape(-1, 3)
    array /= 255.0
    return PixelSums(array.sum(axis=0), np.square(array).sum(axis=0), int(array.shape[0]), 1)


def channel_stats(
    paths: Iterable[Path], *, size: int = STATS_SIZE, progress: Callable[[int], None] | None = None
) -> tuple[list[float], list[float], int]:
    """RGB mean and std of pixel values in [0, 1], on images resized by :func:`stats_thumbnail`.

    Returns ``(mean, std, n_images)``; undecodable files are skipped. Without any decodable
    image the identity normalisation ``([0, 0, 0], [1, 1, 1], 0)`` is returned.
    """
    sums = PixelSums()
    for path in paths:
        try:
            sums = sums + pixel_sums(path, size=size)
        except ImageDecodeError:
            continue
        if progress is not None:
            progress(1)
    if sums.pixels == 0:
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], 0
    mean, std = sums.mean_std()
    return mean, std, sums.images
