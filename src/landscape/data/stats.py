"""Per-channel statistics of images (what ``Normalize`` needs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from landscape.errors import ImageDecodeError

from .io import open_image

__all__ = ["channel_stats"]


def channel_stats(
    paths: Iterable[Path], *, size: int = 64, progress: Callable[[int], None] | None = None
) -> tuple[list[float], list[float], int]:
    """RGB mean and std of pixel values in [0, 1], on images resized to ``size`` (for speed).

    Returns ``(mean, std, n_images)``; undecodable files are skipped.
    """
    total = np.zeros(3)
    total_sq = np.zeros(3)
    pixels = 0
    count = 0
    for path in paths:
        try:
            image = open_image(path, draft=(size, size))
        except ImageDecodeError:
            continue
        image.thumbnail((size, size))
        array = np.asarray(image, dtype=np.float64).reshape(-1, 3) / 255.0
        total += array.sum(0)
        total_sq += (array**2).sum(0)
        pixels += array.shape[0]
        count += 1
        if progress is not None:
            progress(1)
    if pixels == 0:
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], 0
    mean = total / pixels
    std = np.sqrt(np.maximum(total_sq / pixels - mean**2, 1e-12))
    return [float(v) for v in mean], [float(v) for v in std], count
