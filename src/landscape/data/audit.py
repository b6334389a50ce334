"""Dataset audit: corrupt files, duplicates and near-duplicates, split leakage, imbalance, stats.

:func:`audit_dataset` reads every image file exactly once: the bytes give the sha256, the header
gives size and mode, a full decode (:func:`~landscape.data.io.open_image`) proves the file is
readable and feeds the perceptual hash; the channel statistics come from
:func:`~landscape.data.stats.pixel_sums` of the same bytes, the rule training's
``--normalize dataset`` uses, so the printed mean/std are the ones a model would get. Nothing is
ever raised for a bad file; it is listed in the report with the reason. Only an unusable dataset
(missing, no images, a single class) raises :class:`~landscape.errors.DatasetError`, from
:func:`~landscape.data.datasets.load_dataset`.

:func:`dataset_stats` is the cheap summary (counts, sizes, modes, channel mean/std) behind
``landscape data stats``: it decodes only the images the statistics need, in JPEG draft mode.
"""

from __future__ import annotations

import hashlib
import io
import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from landscape.errors import ImageDecodeError, UserError

from .datasets import SPLITS, DatasetIndex, Sample, load_dataset
from .hashing import NEAR_DUPLICATE_BITS, ImageHashes, group_near_duplicates
from .io import open_image
from .stats import STATS_SIZE, PixelSums, pixel_sums

__all__ = [
    "AuditReport",
    "DatasetStats",
    "Leak",
    "audit_dataset",
    "audit_index",
    "dataset_stats",
    "stats_index",
]

# pHash works on 32x32 anyway; a 64 px short side keeps it close to hashing.perceptual_hash's.
_HASH_SHORT_SIDE = 64
#: Split (in this order of preference) whose pixels the channel mean/std describe.
_STATS_SPLITS = ("train", "all")

ProgressFn = Callable[[int], None]


# --------------------------------------------------------------------------------------------
# Report types


@dataclass(frozen=True)
class Leak:
    """Copies of one image found in more than one split (``kind`` is ``"exact"`` or ``"near"``)."""

    paths: tuple[Path, ...]
    splits: tuple[str, ...]  # aligned with ``paths``
    kind: str


@dataclass
class DatasetStats:
    """Counts, image sizes and modes, and channel mean/std of a dataset (see :func:`dataset_stats`).

    ``sizes``/``modes`` are ``{"all": ..., "by_split": {split: ...}, "by_class": {class: ...}}``
    where a size entry is ``{"width": {"min", "median", "max"}, "height": {...}}`` and a mode
    entry is ``{mode: count}``; both come from file headers (stored size, before EXIF rotation).
    """

    root: Path
    layout: str
    classes: list[str]
    splits: dict[str, dict[str, int]]
    images: int
    sizes: dict[str, Any]
    modes: dict[str, Any]
    mean: list[float]
    std: list[float]
    channel_stats: dict[str, Any]
    unreadable: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with stable keys."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "classes": list(self.classes),
            "splits": self.splits,
            "images": self.images,
            "sizes": self.sizes,
            "modes": self.modes,
            "mean": self.mean,
            "std": self.std,
            "channel_stats": self.channel_stats,
            "unreadable": self.unreadable,
        }


@dataclass
class AuditReport:
    """Everything :func:`audit_dataset` found; ``to_dict()`` gives the stable JSON form.

    Paths are kept absolute here; ``to_dict`` writes them relative to the dataset folder (the
    manifest's folder for a CSV) when they lie inside it, so ``root / path`` always finds them.

    JSON keys: ``root, layout, classes, splits {split: {class: n}}, images, readable, sizes,
    modes`` (as in :class:`DatasetStats`), ``corrupt``/``skipped`` ``[{path, reason}]``,
    ``exact_duplicates``/``near_duplicates`` ``[[path, ...]]`` (near groups hold at least two
    different contents), ``near_bits``, ``leakage [{paths, splits (aligned), kind: exact|near}]``,
    ``label_conflicts [{paths, labels}]``, ``imbalance {split: max/min or null}``,
    ``missing_classes {split: [class]}``, ``mean``/``std`` (RGB, full precision: the values
    ``--normalize dataset`` uses), ``channel_stats {split, images, size, note}`` and
    ``findings``. Splits are keyed ``"all"`` when the dataset has none.
    """

    root: Path
    layout: str
    classes: list[str]
    splits: dict[str, dict[str, int]]
    images: int
    readable: int
    sizes: dict[str, Any]
    modes: dict[str, Any]
    corrupt: list[tuple[Path, str]]
    skipped: list[tuple[Path, str]]
    exact_duplicates: list[list[Path]]
    near_duplicates: list[list[Path]]
    leakage: list[Leak]
    label_conflicts: list[tuple[list[Path], list[str]]]
    imbalance: dict[str, float | None]
    missing_classes: dict[str, list[str]]
    mean: list[float]
    std: list[float]
    channel_stats: dict[str, Any]
    near_bits: int = NEAR_DUPLICATE_BITS

    @property
    def findings(self) -> int:
        """Number of problems worth a look (each duplicate group or leak counts once)."""
        return (
            len(self.corrupt)
            + len(self.skipped)
            + len(self.exact_duplicates)
            + len(self.near_duplicates)
            + len(self.leakage)
            + len(self.label_conflicts)
            + sum(len(v) for v in self.missing_classes.values())
        )

    def relative(self, path: Path) -> str:
        """``path`` relative to the dataset folder when inside it, else absolute (posix)."""
        return _relative(path, self.root)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the stable keys listed in the class docstring."""
        rel = self.relative
        return {
            "root": str(self.root),
            "layout": self.layout,
            "classes": list(self.classes),
            "splits": self.splits,
            "images": self.images,
            "readable": self.readable,
            "sizes": self.sizes,
            "modes": self.modes,
            "corrupt": [{"path": rel(p), "reason": r} for p, r in self.corrupt],
            "skipped": [{"path": rel(p), "reason": r} for p, r in self.skipped],
            "exact_duplicates": [[rel(p) for p in group] for group in self.exact_duplicates],
            "near_duplicates": [[rel(p) for p in group] for group in self.near_duplicates],
            "near_bits": self.near_bits,
            "leakage": [
                {
                    "paths": [rel(p) for p in leak.paths],
                    "splits": list(leak.splits),
                    "kind": leak.kind,
                }
                for leak in self.leakage
            ],
            "label_conflicts": [
                {"paths": [rel(p) for p in paths], "labels": labels}
                for paths, labels in self.label_conflicts
            ],
            "imbalance": self.imbalance,
            "missing_classes": self.missing_classes,
            "mean": self.mean,
            "std": self.std,
            "channel_stats": self.channel_stats,
            "findings": self.findings,
        }


# --------------------------------------------------------------------------------------------
# Per-file work


@dataclass
class _FileFacts:
    """What one read of one file tells: content hash, header facts, pHash, or why it failed."""

    sha256: str | None = None
    size: tuple[int, int] | None = None
    mode: str | None = None
    phash: np.ndarray | None = None
    error: str | None = None
    # Sums rather than thumbnails are kept: 12k thumbnails would hold ~200 MB until the end.
    pixel_sums: PixelSums | None = None  # only for images of the statistics split


def _relative(path: Path, root: Path) -> str:
    base = root.parent if root.is_file() else root
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _shrink(image: Image.Image, short_side: int) -> Image.Image:
    width, height = image.size
    scale = short_side / min(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap makes Pillow shrink by an integer factor first: fast, and still antialiased.
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _reason(exc: UserError) -> str:
    """The message of ``exc`` without its path prefix and fix suffix (the report has both)."""
    text = str(exc)
    if exc.path is not None and text.startswith(f"{exc.path}: "):
        text = text[len(f"{exc.path}: ") :]
    if exc.fix:
        suffix = f" — {exc.fix.rstrip('.')}."
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return text.rstrip(".")


def _header(data: bytes) -> tuple[tuple[int, int], str] | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size, img.mode
    except Exception:  # any header failure is reported by the full decode that follows
        return None


def _inspect(path: Path, *, want_stats: bool, stats_size: int) -> _FileFacts:
    """Read ``path`` once: sha256, header, full decode, pHash and (optionally) pixel sums."""
    import imagehash

    facts = _FileFacts()
    try:
        data = path.read_bytes()
    except OSError as exc:
        facts.error = f"cannot read file ({exc.strerror or exc})"
        return facts
    facts.sha256 = hashlib.sha256(data).hexdigest()
    header = _header(data)
    if header is not None:
        facts.size, facts.mode = header
    try:
        # open_image reports truncation, bombs and bad data as ImageDecodeError; the decode is
        # the full one (no draft) so damage anywhere in the file is caught.
        rgb = open_image(data)
    except ImageDecodeError as exc:
        facts.error = _reason(exc)
        return facts
    except Exception as exc:  # a Pillow plugin bug must not abort a 12k-image audit
        facts.error = f"cannot decode ({type(exc).__name__}: {exc})"
        return facts
    # pHash works on 32x32 anyway; hashing a thumbnail (like hashing.perceptual_hash's JPEG
    # draft) spares a Lanczos resize of a full 12 Mpx photo and keeps the two hashes close.
    thumb = _shrink(rgb, _HASH_SHORT_SIDE)
    facts.phash = np.asarray(imagehash.phash(thumb).hash, dtype=bool).reshape(-1)
    if want_stats:
        # A second, draft-mode decode of the bytes in memory (a fraction of the full one): the
        # statistics must be those of training's rule, not of a shrunk full decode.
        facts.pixel_sums = _stats_sums(data, stats_size, facts)
    return facts


def _stats_sums(source: Path | bytes, size: int, facts: _FileFacts) -> PixelSums | None:
    """:func:`pixel_sums` of ``source``; None with ``facts.error`` set when it does not decode."""
    try:
        return pixel_sums(source, size=size)
    except ImageDecodeError as exc:
        facts.error = _reason(exc)
        return None


def _map_files(
    fn: Callable[[Path], _FileFacts],
    paths: Sequence[Path],
    progress: ProgressFn | None,
    workers: int | None,
) -> list[_FileFacts]:
    """``fn`` over ``paths`` in a thread pool (Pillow decodes without the GIL), order kept."""
    n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    results: list[_FileFacts] = []
    if n_workers <= 1 or len(paths) < 2:
        for path in paths:
            results.append(fn(path))
            if progress is not None:
                progress(1)
        return results
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for facts in pool.map(fn, paths):
            results.append(facts)
            if progress is not None:
                progress(1)
    return results


# --------------------------------------------------------------------------------------------
# Aggregation helpers


def _by_split(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` with split keys in train/val/test order (``"all"`` and others after)."""
    order = {name: i for i, name in enumerate(SPLITS)}
    return {k: table[k] for k in sorted(table, key=lambda k: (order.get(k, len(order)), k))}


def _spread(values: Iterable[int]) -> dict[str, float]:
    items = sorted(values)
    if not items:
        return {}
    return {"min": items[0], "median": float(statistics.median(items)), "max": items[-1]}


def _size_summary(sizes: Sequence[tuple[int, int]]) -> dict[str, Any]:
    return {"width": _spread(w for w, _ in sizes), "height": _spread(h for _, h in sizes)}


def _summaries(
    samples: Sequence[Sample], facts: Sequence[_FileFacts]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Size and mode summaries overall, by split and by class, of files whose header was read."""
    sizes_all: list[tuple[int, int]] = []
    sizes_split: dict[str, list[tuple[int, int]]] = defaultdict(list)
    sizes_class: dict[str, list[tuple[int, int]]] = defaultdict(list)
    modes_all: Counter[str] = Counter()
    modes_split: dict[str, Counter[str]] = defaultdict(Counter)
    modes_class: dict[str, Counter[str]] = defaultdict(Counter)
    for sample, fact in zip(samples, facts, strict=True):
        if fact.size is None or fact.mode is None:
            continue
        split = sample.split or "all"
        sizes_all.append(fact.size)
        sizes_split[split].append(fact.size)
        sizes_class[sample.label].append(fact.size)
        modes_all[fact.mode] += 1
        modes_split[split][fact.mode] += 1
        modes_class[sample.label][fact.mode] += 1
    sizes = {
        "all": _size_summary(sizes_all),
        "by_split": _by_split({k: _size_summary(v) for k, v in sizes_split.items()}),
        "by_class": {k: _size_summary(v) for k, v in sorted(sizes_class.items())},
    }
    modes = {
        "all": dict(modes_all.most_common()),
        "by_split": _by_split({k: dict(v.most_common()) for k, v in modes_split.items()}),
        "by_class": {k: dict(v.most_common()) for k, v in sorted(modes_class.items())},
    }
    return sizes, modes


def _balance(
    index: DatasetIndex,
) -> tuple[dict[str, dict[str, int]], dict[str, float | None], dict[str, list[str]]]:
    """Counts per split and class, max/min ratio per split, and classes absent from a split."""
    counts = _by_split(index.counts())
    imbalance: dict[str, float | None] = {}
    missing: dict[str, list[str]] = {}
    for split, row in counts.items():
        absent = [c for c, n in row.items() if n == 0]
        if absent:
            missing[split] = absent
        present = [n for n in row.values() if n > 0]
        # With a class absent the ratio is infinite, which JSON cannot hold: null + missing_classes.
        imbalance[split] = round(max(present) / min(present), 3) if present and not absent else None
    return counts, imbalance, missing


def _stats_subset(index: DatasetIndex) -> tuple[str, set[int]]:
    """Which samples the channel statistics describe: the training split, else all of them."""
    if "train" in index.splits:
        return "train", {i for i, s in enumerate(index.samples) if s.split == "train"}
    return "all", set(range(len(index.samples)))


def _channel_summary(sums: PixelSums, subset: str, size: int) -> dict[str, Any]:
    return {
        "split": subset,
        "images": sums.images,
        "size": size,
        "note": (
            "RGB pixel values scaled to [0, 1], of "
            + ("the training images" if subset == "train" else "all images")
            + f" shrunk to fit {size}x{size} px, as --normalize dataset computes them"
        ),
    }


def _channel_totals(
    facts: Sequence[_FileFacts], ids: Iterable[int]
) -> tuple[list[float], list[float], PixelSums]:
    # Added in dataset order, the order training passes the train split to channel_stats, so
    # the float sums (and the printed numbers) are bit-identical to what training uses.
    total = PixelSums()
    for i in sorted(ids):
        sums = facts[i].pixel_sums
        if sums is not None:
            total = total + sums
    mean, std = total.mean_std()
    return mean, std, total


def _groups(ids: Sequence[int]) -> list[list[int]]:
    members: dict[int, list[int]] = defaultdict(list)
    for i, gid in enumerate(ids):
        members[gid].append(i)
    return [m for m in members.values() if len(m) > 1]


# --------------------------------------------------------------------------------------------
# Public entry points


def audit_index(
    index: DatasetIndex,
    *,
    near_bits: int = NEAR_DUPLICATE_BITS,
    progress: ProgressFn | None = None,
    workers: int | None = None,
    stats_size: int = STATS_SIZE,
) -> AuditReport:
    """Audit an already loaded dataset; ``progress(1)`` is called once per image file.

    See :func:`audit_dataset`. ``workers`` threads decode in parallel (default: up to 8);
    ``stats_size`` is the thumbnail box of the channel statistics (see
    :func:`~landscape.data.stats.stats_thumbnail`).
    """
    samples = index.samples
    subset, stats_ids = _stats_subset(index)
    wanted = {samples[i].path for i in stats_ids}
    facts = _map_files(
        lambda p: _inspect(p, want_stats=p in wanted, stats_size=stats_size),
        [s.path for s in samples],
        progress,
        workers,
    )

    corrupt = [
        (s.path, f.error) for s, f in zip(samples, facts, strict=True) if f.error is not None
    ]
    mean, std, channel = _channel_totals(facts, stats_ids)

    hashes = ImageHashes(
        paths=[s.path for s in samples],
        sha256=[f.sha256 for f in facts],
        phash=[f.phash for f in facts],
        errors={s.path: f.error for s, f in zip(samples, facts, strict=True) if f.error},
    )
    group_of = group_near_duplicates(hashes, max_bits=near_bits)

    exact_ids: dict[str, list[int]] = defaultdict(list)
    for i, digest in enumerate(hashes.sha256):
        if digest is not None:
            exact_ids[digest].append(i)
    exact = sorted((g for g in exact_ids.values() if len(g) > 1), key=lambda g: samples[g[0]].path)
    # A near group is one whose members are not all byte-identical (those are exact groups).
    near = sorted(
        (g for g in _groups(group_of) if len({hashes.sha256[i] for i in g}) > 1),
        key=lambda g: samples[g[0]].path,
    )

    leakage: list[Leak] = []
    conflicts: list[tuple[list[Path], list[str]]] = []
    for group in sorted(_groups(group_of), key=lambda g: samples[g[0]].path):
        splits = {samples[i].split for i in group}
        if len(splits) > 1:
            # "exact" when some byte-identical pair straddles splits; otherwise only look-alikes do.
            by_sha: dict[str | None, set[str | None]] = defaultdict(set)
            for i in group:
                by_sha[hashes.sha256[i]].add(samples[i].split)
            kind = "exact" if any(len(v) > 1 for k, v in by_sha.items() if k) else "near"
            leakage.append(
                Leak(
                    tuple(samples[i].path for i in group),
                    tuple(samples[i].split or "all" for i in group),
                    kind,
                )
            )
        labels = sorted({samples[i].label for i in group})
        if len(labels) > 1:
            conflicts.append(([samples[i].path for i in group], labels))

    counts, imbalance, missing = _balance(index)
    sizes, modes = _summaries(samples, facts)
    return AuditReport(
        root=index.root,
        layout=index.layout,
        classes=list(index.classes),
        splits=counts,
        images=len(samples),
        readable=len(samples) - len(corrupt),
        sizes=sizes,
        modes=modes,
        corrupt=corrupt,
        skipped=list(index.skipped),
        exact_duplicates=[[samples[i].path for i in g] for g in exact],
        near_duplicates=[[samples[i].path for i in g] for g in near],
        leakage=leakage,
        label_conflicts=conflicts,
        imbalance=imbalance,
        missing_classes=missing,
        mean=mean,
        std=std,
        channel_stats=_channel_summary(channel, subset, stats_size),
        near_bits=near_bits,
    )


def audit_dataset(
    root: Path,
    *,
    near_bits: int = NEAR_DUPLICATE_BITS,
    progress: ProgressFn | None = None,
) -> AuditReport:
    """Audit the dataset at ``root`` (any layout :func:`load_dataset` reads).

    Reports counts per split and class, image sizes and modes, corrupt files (each image is
    decoded fully once), skipped non-image and empty files, exact duplicates (same sha256),
    near-duplicates (pHash within ``near_bits`` of 64 bits), duplicates straddling splits
    (leakage), duplicates with different labels, class imbalance per split and per-channel mean/std
    of the training split. Raises :class:`~landscape.errors.DatasetError` only when the dataset
    is unusable (missing, no images, fewer than two classes).
    """
    return audit_index(load_dataset(root), near_bits=near_bits, progress=progress)


def _stats_facts(path: Path, *, want_stats: bool, stats_size: int) -> _FileFacts:
    facts = _FileFacts()
    try:
        with Image.open(path) as img:
            facts.size, facts.mode = img.size, img.mode
    except Exception as exc:  # counted as unreadable; `data audit` says why
        facts.error = str(exc) or type(exc).__name__
        return facts
    if want_stats:
        facts.pixel_sums = _stats_sums(path, stats_size, facts)
    return facts


def stats_index(
    index: DatasetIndex,
    *,
    progress: ProgressFn | None = None,
    workers: int | None = None,
    stats_size: int = STATS_SIZE,
) -> DatasetStats:
    """Summarise a loaded dataset; ``progress(1)`` per file. See :func:`dataset_stats`."""
    samples = index.samples
    subset, stats_ids = _stats_subset(index)
    wanted = {samples[i].path for i in stats_ids}
    facts = _map_files(
        lambda p: _stats_facts(p, want_stats=p in wanted, stats_size=stats_size),
        [s.path for s in samples],
        progress,
        workers,
    )
    mean, std, channel = _channel_totals(facts, stats_ids)
    sizes, modes = _summaries(samples, facts)
    return DatasetStats(
        root=index.root,
        layout=index.layout,
        classes=list(index.classes),
        splits=_by_split(index.counts()),
        images=len(samples),
        sizes=sizes,
        modes=modes,
        mean=mean,
        std=std,
        channel_stats=_channel_summary(channel, subset, stats_size),
        unreadable=sum(1 for f in facts if f.error),
    )


def dataset_stats(root: Path, *, progress: ProgressFn | None = None) -> DatasetStats:
    """Counts per split and class, image sizes and modes (headers) and channel mean/std.

    Cheaper than :func:`audit_dataset`: only the images of the statistics split are decoded,
    JPEGs in draft mode, and nothing is hashed. Raises :class:`DatasetError` like
    :func:`load_dataset`.
    """
    return stats_index(load_dataset(root), progress=progress)
