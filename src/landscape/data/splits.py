"""Stratified, seeded, leakage-safe splits.

Near-duplicate images (same content or pHash within a few bits) are grouped first and each group
is assigned whole to one split, so a re-encoded copy of a training photo can never be in test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from landscape.errors import DatasetError

from .datasets import DatasetIndex, Sample
from .hashing import group_near_duplicates, hash_images

__all__ = ["assign_splits"]


def _split_groups(
    groups: list[list[int]], fractions: dict[str, float], rng: np.random.Generator
) -> dict[int, str]:
    order = rng.permutation(len(groups))
    total = sum(len(g) for g in groups)
    targets = {name: frac * total for name, frac in fractions.items()}
    filled = dict.fromkeys(fractions, 0)
    assignment: dict[int, str] = {}
    for gi in order.tolist():
        group = groups[gi]
        # Fill the split furthest below its target; ties go to the first (train) split.
        name = max(fractions, key=lambda s: (targets[s] - filled[s]) / max(targets[s], 1e-9))
        filled[name] += len(group)
        for i in group:
            assignment[i] = name
    return assignment


def assign_splits(
    index: DatasetIndex,
    *,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    group_duplicates: bool = True,
    progress: Callable[[int], None] | None = None,
) -> DatasetIndex:
    """Give every sample a split, keeping the splits a dataset already has.

    - no split at all: train/val/test carved per class with the given fractions;
    - train (+ test) but no val: val carved out of train (``val`` of the train split);
    - every split present: returned unchanged.
    """
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise DatasetError(
            f"split fractions val={val}, test={test} are invalid",
            fix="use fractions in [0, 1) whose sum is below 1",
        )
    present = set(index.splits)
    if {"train", "val", "test"} <= present:
        return index
    if present and "train" not in present:
        raise DatasetError(
            f"has split(s) {', '.join(sorted(present))} but no train split",
            path=index.root,
            fix="add a train folder or use a class-per-folder layout",
        )
    wanted = {"val": val, "test": test}
    if present:
        pool = [s for s in index.samples if s.split == "train"]
        carved = {name: frac for name, frac in wanted.items() if name not in present}
    else:
        pool = list(index.samples)
        carved = wanted
    fractions = {"train": 1.0 - sum(carved.values()), **carved}
    fractions = {k: v for k, v in fractions.items() if v > 0}
    in_pool = set(pool)
    kept = [s for s in index.samples if s not in in_pool]

    if group_duplicates:
        group_of = group_near_duplicates(hash_images([s.path for s in pool], progress))
    else:
        group_of = list(range(len(pool)))
    by_group: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(group_of):
        by_group[g].append(i)
    # Stratify: each group belongs to the class of its first member; split class by class.
    per_class: dict[str, list[list[int]]] = defaultdict(list)
    for members in by_group.values():
        per_class[pool[members[0]].label].append(members)
    rng = np.random.default_rng(seed)
    assigned: dict[int, str] = {}
    for label in sorted(per_class):
        assigned.update(_split_groups(per_class[label], fractions, rng))
    new = [Sample(s.path, s.label, assigned[i]) for i, s in enumerate(pool)]
    return index.with_samples(kept + new)
