"""Content and perceptual hashes, and grouping of near-duplicate images.

Used by the audit (duplicates, leakage) and by splitting (near-duplicates never straddle splits).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landscape.errors import ImageDecodeError

from .io import file_sha256, open_image

__all__ = [
    "ImageHashes",
    "group_near_duplicates",
    "hash_images",
    "near_duplicate_pairs",
    "perceptual_hash",
    "phash64",
]

#: Hamming distance (of 64 bits) at or below which two pHashes count as near-duplicates.
NEAR_DUPLICATE_BITS = 6


def perceptual_hash(path: Path) -> np.ndarray:
    """64-bit DCT perceptual hash (``imagehash.phash``) as a bool array; robust to re-encoding."""
    return _phash_bits(open_image(path, draft=(64, 64)))


def _phash_bits(image: Any) -> np.ndarray:
    import imagehash

    return np.asarray(imagehash.phash(image).hash, dtype=bool).reshape(-1)


def phash64(image: Any) -> int:
    """The pHash of a decoded PIL image as a signed 64-bit integer (what a database BIGINT
    holds; the bits are :func:`perceptual_hash`'s, most significant first)."""
    value = int.from_bytes(np.packbits(_phash_bits(image)).tobytes(), "big")
    return value - (1 << 64) if value >= 1 << 63 else value


def near_duplicate_pairs(hashes: Sequence[int], max_bits: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Index pairs ``(i, j)``, ``i < j``, of 64-bit hashes at most ``max_bits`` apart.

    Not all n² pairs: the 64 bits are cut into ``max_bits + 1`` bands, and two hashes that
    close agree exactly on at least one band (pigeonhole), so only hashes sharing a band value
    are compared — seconds for 100,000 photos where the all-pairs matrix takes minutes.
    """
    words = np.asarray(hashes, dtype=np.int64).view(np.uint64)
    n = len(words)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    bands = max_bits + 1
    edges = np.linspace(0, 64, bands + 1).astype(int)
    found: set[tuple[int, int]] = set()
    for low, high in itertools.pairwise(edges.tolist()):
        keys = (words >> np.uint64(low)) & np.uint64((1 << (high - low)) - 1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], n]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            if end - start < 2:
                continue
            members = order[start:end]
            block = words[members]
            xor = block[:, None] ^ block[None, :]
            dist = _POPCOUNT[xor.view(np.uint8)].reshape(len(block), len(block), 8).sum(axis=2)
            rows, cols = np.nonzero(np.triu(dist <= max_bits, k=1))
            for a, b in zip(members[rows].tolist(), members[cols].tolist(), strict=True):
                found.add((min(a, b), max(a, b)))
    return np.asarray(sorted(found), dtype=np.int64).reshape(-1, 2)


_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)


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
