"""Perceptual hashes as database integers, and near-duplicate pairs without all-pairs work."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from landscape.data.hashing import near_duplicate_pairs, perceptual_hash, phash64
from landscape.data.synth import render_landscape


def _bits(value: int) -> np.ndarray:
    unsigned = value & ((1 << 64) - 1)
    return np.array([(unsigned >> (63 - i)) & 1 for i in range(64)], dtype=bool)


def test_phash64_is_the_same_hash_as_a_signed_integer(tmp_path: Path) -> None:
    picture = render_landscape("coast", np.random.default_rng(1), 256)
    path = tmp_path / "coast.png"
    picture.save(path)
    value = phash64(Image.open(path))
    assert -(1 << 63) <= value < (1 << 63)
    assert np.array_equal(_bits(value), perceptual_hash(path))
    # A re-encoded, resized copy stays within a few bits; another scene does not.
    buffer = io.BytesIO()
    picture.resize((120, 120)).save(buffer, "JPEG", quality=60)
    copy = phash64(Image.open(io.BytesIO(buffer.getvalue())))
    other = phash64(render_landscape("desert", np.random.default_rng(2), 256))
    assert int(np.count_nonzero(_bits(value) ^ _bits(copy))) <= 6
    assert int(np.count_nonzero(_bits(value) ^ _bits(other))) > 10


def test_near_duplicate_pairs_agree_with_all_pairs() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(-(1 << 63), (1 << 63) - 1, size=300, dtype=np.int64)
    # Plant neighbours at known distances (flipping bits across different bands).
    planted = base.copy()
    for i, flips in enumerate(([0], [3, 40], [1, 17, 33, 49, 63], [2, 9, 20, 30, 44, 55, 60])):
        value = int(base[i]) & ((1 << 64) - 1)  # flip bits of the unsigned word
        for bit in flips:
            value ^= 1 << bit
        planted[100 + i] = np.int64(value - (1 << 64) if value >= 1 << 63 else value)
    hashes = planted.tolist()
    words = planted.view(np.uint64)
    expected = {
        (i, j)
        for i in range(len(words))
        for j in range(i + 1, len(words))
        if bin(int(words[i] ^ words[j])).count("1") <= 6
    }
    found = {tuple(pair) for pair in near_duplicate_pairs(hashes, 6).tolist()}
    assert found == expected
    assert {(0, 100), (1, 101), (2, 102)} <= found and (3, 103) not in found  # 7 bits apart
    assert near_duplicate_pairs([5], 6).shape == (0, 2)
    assert {tuple(p) for p in near_duplicate_pairs(hashes, 0).tolist()} == set()
