"""Content and perceptual hashes, and grouping of near-duplicate images.

Used by the audit (duplicates, leakage) and by splitting (near-duplicates never straddle splits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landscape.errors import ImageDecodeError

from .io import file_sha256, open_image

__all__ = ["ImageHashes", "group_near_duplicates", "hash_images", "perceptual_hash"]

#: Hamming distance (of 64 bits) at or below which two pHashes count as near-duplicates.
NEAR_DUPLICATE_BITS = 6


def perceptual_hash(path: Path) -> np.ndarray:
    """64-bit DCT perceptual hash (``imagehash.phash``) as a bool array; robust to re-encoding."""
    import imagehash

    image = open_image(path, draft=(64, 64))
    return np.asarray(imagehash.phash(image).hash, dtype=bool).reshape(-1)


@dataclass
class ImageHashes:
    """Hashes of a list of files; ``None`` marks a file that could not be decoded."""

    paths: list[Path]
    sha256: list[str | None]
    phash: list[np.ndarray | None]
    errors: dict[Path, str]


def hash_images(
    paths: Sequence[Path], progress: Callable[[int], None] | None = None
) -> ImageHashes:
    """Content sha256 and pHash of every file; decode failures are recorded, never raised."""
    sha: list[str | None] = []
    phash: list[np.ndarray | None] = []
    errors: dict[Path, str] = {}
    for path in paths:
        try:
            sha.append(file_sha256(path))
        except OSError as exc:
            sha.append(None)
            errors[path] = str(exc)
        try:
            phash.append(perceptual_hash(path))
        except ImageDecodeError as exc:
            phash.append(None)
            errors.setdefault(path, str(exc))
        if progress is not None:
            progress(1)
    return ImageHashes(list(paths), sha, phash, errors)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def group_near_duplicates(
    hashes: ImageHashes, max_bits: int = NEAR_DUPLICATE_BITS, chunk: int = 2048
) -> list[int]:
    """A group id per file: files with equal sha256 or pHash within ``max_bits`` share one.

    Pairwise distances are computed in chunks with numpy (bit-packed XOR popcount), so 12k
    images take seconds and bounded memory, not a Python double loop.
    """
    n = len(hashes.paths)
    parent = list(range(n))

    def union(a: int, b: int) -> None:
        ra, rb = _find(parent, a), _find(parent, b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first_by_sha: dict[str, int] = {}
    for i, digest in enumerate(hashes.sha256):
        if digest is not None:
            union(i, first_by_sha.setdefault(digest, i))

    valid = [i for i, h in enumerate(hashes.phash) if h is not None]
    if valid:
        packed = np.packbits(np.stack([hashes.phash[i] for i in valid]), axis=1)  # type: ignore[misc]
        words = packed.view(">u8").reshape(-1)
        popcount = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)
        for start in range(0, len(valid), chunk):
            block = words[start : start + chunk]
            xor = block[:, None] ^ words[None, :]
            dist = popcount[xor.view(np.uint8)].reshape(len(block), len(words), 8).sum(axis=2)
            rows, cols = np.nonzero(dist <= max_bits)
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                if start + r < c:
                    union(valid[start + r], valid[c])
    return [_find(parent, i) for i in range(n)]
