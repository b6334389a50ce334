"""A landscape *timeline* for a video: sampled frames → batched predictions → smoothed segments.

Footage pans from coast to desert, a flight crosses forest then mountains: one label per video
(what photo managers do) is wrong for it. :func:`classify_video` samples a frame every
``every`` seconds, plus the first frame after each scene cut found among the frames decoded
anyway, classifies them in batches through the :class:`~landscape.inference.predictor.Predictor`
with the bundle's own preprocessing (the image path's :func:`~landscape.data.transforms.resize_crop`
and :func:`~landscape.data.transforms.normalize`), and turns the per-sample probabilities into
segments.

**Sampling** is :mod:`landscape.data.video_frames`' (seek by keyframes or decode in order;
scene cuts from luma thumbnails; where a broken file stops), shared with the index's workers.

**Smoothing: Viterbi with a switching cost**, not a moving average. The label path maximises
Σ log p(label at sample) − ``switch_cost`` × (number of label changes): a single odd frame
(a cloud, a blurred pan) cannot open a segment unless the evidence outweighs the cost, and a
real change lands exactly where the evidence changes — a moving average would blur and delay
every boundary by half its window. Segments shorter than ``min_segment`` seconds are then
merged into the neighbour that explains their frames best; the open-set "unknown" threshold
applies per segment (to its mean confidence); the dominant label is the one covering the most
time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from landscape.data.transforms import normalize, resize_crop
from landscape.data.video_frames import (
    FrameSampler,
    SampledFrame,
    Strategy,
    VideoError,
    format_time,
    sample_frames,
    video_duration,
)

__all__ = [
    "FrameSampler",
    "SampledFrame",
    "Segment",
    "Strategy",
    "Timeline",
    "VideoError",
    "build_timeline",
    "classify_video",
    "covered_duration",
    "format_time",
    "sample_frames",
    "score_frames",
    "smooth_labels",
]


@dataclass(frozen=True)
class Segment:
    """A stretch of video with one label."""

    start: float
    end: float
    label: str
    confidence: float
    probabilities: dict[str, float]
    is_unknown: bool
    samples: int
    #: the sample most typical of the segment (highest probability of its label)
    keyframe_time: float
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    keyframe: Image.Image | None = field(default=None, repr=False, compare=False)

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the embedding and the keyframe picture)."""
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "is_unknown": self.is_unknown,
            "samples": self.samples,
            "keyframe_time": round(self.keyframe_time, 3),
        }


@dataclass(frozen=True)
class Timeline:
    """A video's segments and its dominant label (the one covering the most time)."""

    duration: float
    segments: tuple[Segment, ...]
    dominant: str
    dominant_share: float
    samples: int
    cuts: int
    model_id: str
    strategy: Strategy
    #: why decoding stopped early (a truncated or corrupt file), else None; the timeline then
    #: covers what decoded, up to ``duration``
    broken: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "duration": round(self.duration, 3),
            "broken": self.broken,
            "dominant": self.dominant,
            "dominant_share": round(self.dominant_share, 4),
            "segments": [s.to_dict() for s in self.segments],
            "samples": self.samples,
            "cuts": self.cuts,
            "model_id": self.model_id,
            "strategy": self.strategy,
        }


# --------------------------------------------------------------------------------------------
# Smoothing and segments


def smooth_labels(log_probs: np.ndarray, switch_cost: float) -> np.ndarray:
    """The label index per sample maximising Σ log p − ``switch_cost`` × changes (Viterbi)."""
    n, k = log_probs.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    score = log_probs[0].copy()
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        best = int(score.argmax())
        switch = score[best] - switch_cost
        stay_better = score >= switch
        back[t] = np.where(stay_better, np.arange(k), best)
        score = np.where(stay_better, score, switch) + log_probs[t]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


@dataclass
class _Run:
    first: int  # sample indices [first, last]
    last: int
    label: int


def _runs(path: np.ndarray) -> list[_Run]:
    runs: list[_Run] = []
    for i, label in enumerate(path.tolist()):
        if runs and runs[-1].label == label:
            runs[-1].last = i
        else:
            runs.append(_Run(i, i, int(label)))
    return runs


def _boundaries(
    runs: list[_Run], times: np.ndarray, cuts: np.ndarray, duration: float
) -> list[float]:
    """Where each run starts: 0, then at a cut frame exactly, else half-way between samples."""
    starts = [0.0]
    for run in runs[1:]:
        i = run.first
        starts.append(float(times[i]) if cuts[i] else float(times[i - 1] + times[i]) / 2)
    return [*starts, duration]


def _merge_short(
    runs: list[_Run], bounds: list[float], probs: np.ndarray, min_segment: float
) -> tuple[list[_Run], list[float]]:
    """Absorb runs shorter than ``min_segment`` into the neighbour whose label their samples
    favour, shortest first, until none is left (or one run remains)."""
    while len(runs) > 1:
        lengths = [bounds[i + 1] - bounds[i] for i in range(len(runs))]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_segment:
            break
        run = runs[i]
        mean = probs[run.first : run.last + 1].mean(axis=0)
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        j = max(neighbours, key=lambda n: mean[runs[n].label])
        keep, gone = (j, i)
        lo, hi = min(keep, gone), max(keep, gone)
        merged = _Run(runs[lo].first, runs[hi].last, runs[keep].label)
        runs = [*runs[:lo], merged, *runs[hi + 1 :]]
        bounds = [*bounds[: lo + 1], *bounds[hi + 1 :]]
        # Neighbours that now share a label become one run.
        k = 0
        while k < len(runs) - 1:
            if runs[k].label == runs[k + 1].label:
                runs[k] = _Run(runs[k].first, runs[k + 1].last, runs[k].label)
                del runs[k + 1]
                del bounds[k + 1]
            else:
                k += 1
    return runs, bounds


def _segments(
    times: np.ndarray,
    cuts: np.ndarray,
    probs: np.ndarray,
    features: np.ndarray | None,
    images: Sequence[Image.Image] | None,
    duration: float,
    classes: Sequence[str],
    unknown_threshold: float | None,
    switch_cost: float,
    min_segment: float,
) -> list[Segment]:
    path = smooth_labels(np.log(np.clip(probs, 1e-9, 1.0)), switch_cost)
    runs = _runs(path)
    bounds = _boundaries(runs, times, cuts, duration)
    runs, bounds = _merge_short(runs, bounds, probs, min_segment)
    segments = []
    for i, run in enumerate(runs):
        rows = slice(run.first, run.last + 1)
        mean = probs[rows].mean(axis=0)
        confidence = float(mean[run.label])
        best = run.first + int(probs[rows, run.label].argmax())
        segments.append(
            Segment(
                start=bounds[i],
                end=bounds[i + 1],
                label=classes[run.label],
                confidence=confidence,
                probabilities={c: float(p) for c, p in zip(classes, mean, strict=True)},
                is_unknown=unknown_threshold is not None and confidence < unknown_threshold,
                samples=run.last - run.first + 1,
                keyframe_time=float(times[best]),
                embedding=features[rows].mean(axis=0) if features is not None else None,
                keyframe=images[best] if images is not None else None,
            )
        )
    return segments


# --------------------------------------------------------------------------------------------
# The whole video


def classify_video(
    predictor: Any,
    path: Path,
    *,
    every: float = 1.0,
    min_segment: float = 2.0,
    switch_cost: float = 2.0,
    scene_cuts: bool = True,
    strategy: Strategy = "seek",
    batch_size: int = 32,
    keep_keyframes: bool = False,
) -> Timeline:
    """The timeline of ``path`` under ``predictor`` (see the module docstring).

    ``keep_keyframes`` keeps each segment's most typical frame as a small picture (the index
    stores it for the GUI). Raises :class:`VideoError` for a file with nothing to classify.
    """
    pre = predictor.bundle.preprocessing
    times: list[float] = []
    cuts: list[bool] = []
    probs: list[np.ndarray] = []
    features: list[np.ndarray] = []
    keyframes: list[Image.Image] = []
    pending: list[SampledFrame] = []

    def flush() -> None:
        p, f = score_frames(predictor, np.stack([resize_crop(s.image, pre) for s in pending]))
        probs.extend(p)
        features.extend(f)
        for sample in pending:
            times.append(sample.time)
            cuts.append(sample.cut)
            if keep_keyframes:
                keyframes.append(_small(sample.image))
        pending.clear()

    sampler = FrameSampler(path, every=every, scene_cuts=scene_cuts, strategy=strategy)
    for sample in sampler:
        pending.append(sample)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    duration = covered_duration(video_duration(Path(path)), times[-1], every, sampler.broken_at)
    return build_timeline(
        np.asarray(times),
        np.asarray(cuts, dtype=bool),
        np.stack(probs),
        np.stack(features),
        duration=duration,
        classes=predictor.classes,
        unknown_threshold=predictor.unknown_threshold,
        model_id=predictor.model_id,
        switch_cost=switch_cost,
        min_segment=min_segment,
        keyframes=keyframes if keep_keyframes else None,
        strategy=strategy,
        broken=sampler.broken,
    )


def score_frames(
    predictor: Any, pixels: np.ndarray, *, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (temperature applied) and pooled features of frames given as the
    model's ``uint8`` NHWC input pixels (an array or a memory map), ``batch_size`` at a time."""
    import torch

    pre = predictor.bundle.preprocessing
    probs: list[np.ndarray] = []
    features: list[np.ndarray] = []
    for first in range(0, len(pixels), batch_size):
        chunk = np.asarray(pixels[first : first + batch_size])
        logits, feats = predictor.logits_and_features(torch.from_numpy(normalize(chunk, pre)))
        probs.append(torch.softmax(logits / predictor.temperature, dim=1).numpy())
        features.append(feats.numpy())
    return np.concatenate(probs), np.concatenate(features)


def covered_duration(
    declared: float | None, last_sample: float, every: float, broken_at: float | None = None
) -> float:
    """How much of a video its timeline spans: the declared duration; up to the last frame
    that decoded (``broken_at``) when decoding broke off, no further than declared; the last
    sample and one step when the container declares none."""
    if broken_at is not None:
        reached = max(broken_at, last_sample)
        return min(declared, reached) if declared is not None and reached > 0 else reached or every
    if declared is None:
        return last_sample + every
    return max(declared, last_sample)


def build_timeline(
    times: np.ndarray,
    cuts: np.ndarray,
    probs: np.ndarray,
    features: np.ndarray | None,
    *,
    duration: float,
    classes: Sequence[str],
    unknown_threshold: float | None,
    model_id: str,
    switch_cost: float = 2.0,
    min_segment: float = 2.0,
    keyframes: Sequence[Image.Image] | None = None,
    strategy: Strategy = "seek",
    broken: str | None = None,
) -> Timeline:
    """The timeline of already classified samples: their times (seconds, increasing), whether
    a cut opened each, their class probabilities (temperature applied) and features — what
    :func:`classify_video` computes, and what the index computes from frames its sandboxed
    workers sampled. Raises ``ValueError`` without samples."""
    if len(times) == 0:
        raise ValueError("a timeline needs at least one sample")
    segments = _segments(
        times,
        cuts,
        probs,
        features,
        keyframes,
        duration,
        classes,
        unknown_threshold,
        switch_cost,
        min_segment,
    )
    covered: dict[str, float] = {}
    for segment in segments:
        covered[segment.label] = covered.get(segment.label, 0.0) + segment.duration
    dominant = max(covered, key=lambda label: covered[label])
    return Timeline(
        duration=duration,
        segments=tuple(segments),
        dominant=dominant,
        dominant_share=covered[dominant] / duration if duration > 0 else 1.0,
        samples=len(times),
        cuts=int(np.count_nonzero(cuts)),
        model_id=model_id,
        strategy=strategy,
        broken=broken,
    )


def _small(image: Image.Image, side: int = 320) -> Image.Image:
    copy = image.copy()
    copy.thumbnail((side, side))
    return copy
