"""Data preparation shared by every way of training: splits, preprocessing, loaders, features.

The gradient trainer (:mod:`.trainer`), the classic baseline (:mod:`.classic`) and the
learning-rate range test (:mod:`.lr_find`) all turn a :class:`TrainConfig` into the same split
samples, the same :class:`Preprocessing` and the same loaders through this module, so a run,
its classic baseline and its lr-find see identical inputs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from landscape.config import TrainConfig
from landscape.data.datasets import DatasetIndex, ImageDataset, Sample, load_dataset, write_manifest
from landscape.data.splits import assign_splits
from landscape.data.stats import channel_stats
from landscape.data.transforms import Preprocessing, eval_transform
from landscape.errors import DatasetError
from landscape.models.net import LandscapeNet
from landscape.models.weights import WeightsRecord, pretrained_preprocessing

from .feature_cache import FeatureCache, collate_skip_none

__all__ = [
    "SPLITS",
    "EpochSampler",
    "PreparedData",
    "auto_workers",
    "class_weights",
    "extract_split_features",
    "make_loaders",
    "prepare_data",
    "resolve_preprocessing",
    "subsample",
    "torch_threads",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class PreparedData:
    """A dataset with every sample assigned a split, and the samples of each split."""

    index: DatasetIndex
    splits: dict[str, list[Sample]]

    @property
    def classes(self) -> list[str]:
        """Class names in the dataset's saved order."""
        return list(self.index.classes)


def auto_workers() -> int:
    """DataLoader workers: one core left to the main process, at most 4, ≥ 1.5 GB RAM each."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 8 << 30
    by_memory = int(available // (1.5 * (1 << 30)))
    return max(0, min((cores or 1) - 1, 4, by_memory))


def _workers(cfg: TrainConfig) -> int:
    return cfg.num_workers if cfg.num_workers is not None else auto_workers()


def subsample(samples: list[Sample], per_class: int | None, seed: int) -> list[Sample]:
    """At most ``per_class`` samples of each class, drawn with ``seed``, in their original order."""
    if per_class is None:
        return samples
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    kept: list[Sample] = []
    for label in sorted(by_class):
        items = by_class[label]
        order = rng.permutation(len(items))[:per_class]
        kept.extend(items[i] for i in sorted(order.tolist()))
    return kept


def prepare_data(cfg: TrainConfig, run_dir: Path, *, require_val: bool = True) -> PreparedData:
    """Load ``cfg.data``, assign splits (keeping the dataset's own), write ``split.csv``.

    The training split is capped at ``cfg.max_per_class``. An empty training split, or an empty
    validation split when ``require_val``, is a :class:`DatasetError` naming the fix.
    """
    index = load_dataset(cfg.data)
    val = cfg.val_fraction or 0.0
    index = assign_splits(index, val=val, test=cfg.test_fraction, seed=cfg.seed)
    write_manifest(index, run_dir / "split.csv", extra={"seed": cfg.seed})
    splits = {name: [s for s in index.samples if s.split == name] for name in SPLITS}
    splits["train"] = subsample(splits["train"], cfg.max_per_class, cfg.seed)
    if not splits["train"]:
        raise DatasetError("the train split is empty", path=cfg.data, fix="add images")
    if require_val and not splits["val"]:
        raise DatasetError(
            "the validation split is empty",
            path=cfg.data,
            fix="use --val-fraction > 0 or more images",
        )
    return PreparedData(index, splits)


def resolve_preprocessing(
    net: LandscapeNet, record: WeightsRecord, cfg: TrainConfig, train: list[Sample]
) -> Preprocessing:
    """The weights' own input pipeline, with ``cfg.crop`` and, for ``normalize: dataset``, the
    training split's channel mean/std."""
    pre = pretrained_preprocessing(net.info, record).model_copy(update={"crop": cfg.crop})
    if cfg.normalize == "dataset":
        m, s, _ = channel_stats([x.path for x in train])
        pre = pre.model_copy(update={"mean": (m[0], m[1], m[2]), "std": (s[0], s[1], s[2])})
    return pre


def class_weights(train: list[Sample], classes: list[str]) -> torch.Tensor:
    """Inverse class frequency weights (mean 1 over classes) for a weighted loss."""
    counts = np.array([sum(1 for s in train if s.label == c) for c in classes], dtype=np.float64)
    weights = counts.sum() / (len(classes) * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


class EpochSampler(Sampler[Any]):
    """Shuffles with ``(seed, epoch)`` so a resumed run sees the same order (Lightning calls
    ``set_epoch`` on samplers that have it). With ``keyed`` it yields ``(index, seed, epoch)``
    so :class:`ImageDataset` seeds each item's augmentation from those numbers."""

    def __init__(self, n: int, seed: int, *, keyed: bool = False, epoch: int = 0) -> None:
        self.n = n
        self.seed = seed
        self.keyed = keyed
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __iter__(self) -> Any:
        # A generator: the epoch is read at the first batch, after the epoch-start hooks ran
        # (a resumed run may build its iterator before Lightning calls set_epoch).
        rng = np.random.default_rng([self.seed, self.epoch])
        for i in rng.permutation(self.n).tolist():
            yield (i, self.seed, self.epoch) if self.keyed else i

    def __len__(self) -> int:
        return self.n


def make_loaders(
    cfg: TrainConfig, data: dict[str, Any], *, cached: bool, start_epoch: int = 0
) -> dict[str, DataLoader[Any]]:
    """One loader per dataset; ``train`` shuffles per (seed, epoch); ``cached`` = tensors."""
    workers = 0 if cached else _workers(cfg)
    loaders: dict[str, DataLoader[Any]] = {}
    for name, dataset in data.items():
        train = name == "train"
        loaders[name] = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=EpochSampler(len(dataset), cfg.seed, keyed=not cached, epoch=start_epoch)
            if train
            else None,
            # A private generator: creating an iterator must not consume the global RNG, or
            # dropout would differ between a resumed and an uninterrupted run.
            generator=torch.Generator().manual_seed(cfg.seed),
            num_workers=workers,
            persistent_workers=workers > 0,
            collate_fn=None if cached else collate_skip_none,
            drop_last=train
            and len(dataset) > cfg.batch_size
            and len(dataset) % cfg.batch_size == 1,
        )
    return loaders


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the previous number."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _state_fingerprint(net: LandscapeNet) -> str:
    # Random-init backbones (weights none) differ per seed: hash a few tensors to key the cache.
    digest = hashlib.sha256()
    for i, tensor in enumerate(net.backbone.state_dict().values()):
        if i > 8:
            break
        digest.update(tensor.detach().float().numpy().tobytes()[:4096])
    return digest.hexdigest()[:16]


def extract_split_features(
    net: LandscapeNet,
    record: WeightsRecord,
    pre: Preprocessing,
    splits: dict[str, list[Sample]],
    classes: list[str],
    cfg: TrainConfig,
    *,
    layer: str | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Backbone features and class indices of every non-empty split, through the cache.

    Files that fail to decode are left out. ``layer`` (a truncated backbone, for the classic
    baseline) joins the cache key; without it the key is the pooled-feature one.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    key: dict[str, Any] = {
        "backbone": net.info.name,
        "weights": record.sha256 or f"{record.source}:seed{cfg.seed}",
        "preprocessing": pre.model_dump(),
        "state": _state_fingerprint(net),
    }
    if layer is not None:
        key["layer"] = layer
    cache = FeatureCache(key)
    net.eval()
    model = net.to(memory_format=torch.channels_last)

    def extractor(x: torch.Tensor) -> torch.Tensor:
        return model.features(x.contiguous(memory_format=torch.channels_last))

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    transform = eval_transform(pre)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not cfg.progress,
    ) as bar:
        for name, samples in splits.items():
            if not samples:
                continue
            task = bar.add_task(f"features {name}", total=len(samples))
            feats, ok = cache.features(
                samples,
                functools.partial(ImageDataset, classes=classes, transform=transform),
                extractor,
                batch_size=cfg.batch_size,
                num_workers=_workers(cfg),
                progress=functools.partial(bar.advance, task),
            )
            targets = np.array([classes.index(s.label) for s in samples])
            out[name] = (feats[ok], targets[ok])
    return out
