"""Classification of extracted files: a batch of images in one forward pass, a video's sampled
frames into a timeline (one row for the whole video, one per segment, keyframes written).

Shared by the index's engines: the local one runs it in the indexing process, the Ray one in
each classifier actor (:mod:`landscape.index.ray_engine`), so both store the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .keyframes import keyframe_name, write_keyframe
from .work import FileResult
from .writer import Classified

__all__ = ["ClassifySettings", "classify_results"]


@dataclass(frozen=True)
class ClassifySettings:
    """What classification needs of a run: the batch size, the video sampling step and
    shortest segment in seconds, and the folder keyframes are written to."""

    batch_size: int
    every: float
    min_segment: float
    keyframes: Path


def classify_results(
    predictor: Any,
    results: Sequence[FileResult],
    settings: ClassifySettings,
) -> dict[int, list[Classified]]:
    """The rows to store per result index: an image's one, a video's whole-video row and
    segments."""
    if predictor is None:
        return {}
    out = _classify_images(predictor, results)
    for i, result in enumerate(results):
        if result.frames is not None and result.frames.times and result.content_hash:
            out[i] = _classify_video(settings, predictor, result)
    return out


def _classify_images(predictor: Any, results: Sequence[FileResult]) -> dict[int, list[Classified]]:
    import torch

    from landscape.data.transforms import normalize

    with_pixels = [(i, r) for i, r in enumerate(results) if r.pixels is not None]
    if not with_pixels:
        return {}
    pixels = np.stack([r.pixels for _, r in with_pixels if r.pixels is not None])
    batch = torch.from_numpy(normalize(pixels, predictor.bundle.preprocessing))
    logits, features = predictor.logits_and_features(batch)
    predictions = predictor.predict_logits(logits)
    out: dict[int, list[Classified]] = {}
    for (i, _), pred, feat in zip(with_pixels, predictions, features.numpy(), strict=True):
        out[i] = [
            Classified(pred.label, pred.confidence, pred.probabilities, pred.is_unknown, feat)
        ]
    return out


def _classify_video(
    settings: ClassifySettings, predictor: Any, result: FileResult
) -> list[Classified]:
    """A video's timeline from its spilled frames: the whole-video row, then one row per
    segment with its keyframe written to the keyframe folder."""
    from landscape.inference.video import build_timeline, covered_duration, score_frames

    frames = result.frames
    assert frames is not None and result.content_hash is not None
    times = np.asarray(frames.times)
    pixels = np.memmap(frames.pixels, dtype=np.uint8, mode="r", shape=(len(times), *frames.shape))
    probs, features = score_frames(predictor, pixels, batch_size=settings.batch_size)
    del pixels  # the memory map holds the file open
    every = settings.every
    timeline = build_timeline(
        times,
        np.asarray(frames.cuts, dtype=bool),
        probs,
        features,
        duration=covered_duration(frames.duration, float(times[-1]), every, frames.broken_at),
        classes=predictor.classes,
        unknown_threshold=predictor.unknown_threshold,
        model_id=predictor.model_id,
        min_segment=settings.min_segment,
        broken=frames.broken,
    )
    rows: list[Classified] = []
    for number, segment in enumerate(timeline.segments, start=1):
        name = keyframe_name(predictor.model_id, result.content_hash, number)
        sample = min(int(np.searchsorted(times, segment.keyframe_time)), len(times) - 1)
        write_keyframe(settings.keyframes, name, frames.thumbnail(sample))
        rows.append(
            Classified(
                segment.label,
                segment.confidence,
                segment.probabilities,
                segment.is_unknown,
                segment.embedding,
                segment=number,
                start=segment.start,
                end=segment.end,
                keyframe=name,
            )
        )
    return [_whole_video(rows, features, timeline, predictor.unknown_threshold), *rows]


def _whole_video(
    segments: Sequence[Classified],
    features: np.ndarray,
    timeline: Any,
    unknown_threshold: float | None,
) -> Classified:
    """Segment 0 of a video: the timeline's dominant label (the most time), that label's
    time-weighted confidence, the time-weighted probabilities, the mean of every frame's
    features, and the keyframe of the dominant label's longest segment."""
    lengths = np.asarray([max((s.end or 0.0) - (s.start or 0.0), 0.0) for s in segments])
    weights = (
        lengths / lengths.sum() if lengths.sum() > 0 else np.full(len(segments), 1 / len(segments))
    )
    dominant = timeline.dominant
    mine = [(s, w) for s, w in zip(segments, weights, strict=True) if s.label == dominant]
    confidence = sum(s.confidence * w for s, w in mine) / max(sum(w for _, w in mine), 1e-12)
    probabilities = {
        label: float(
            sum(s.probabilities[label] * w for s, w in zip(segments, weights, strict=True))
        )
        for label in segments[0].probabilities
    }
    longest = max((s for s, _ in mine), key=lambda s: (s.end or 0.0) - (s.start or 0.0))
    return Classified(
        dominant,
        float(confidence),
        probabilities,
        unknown_threshold is not None and confidence < unknown_threshold,
        features.mean(axis=0),
        segment=0,
        start=0.0,
        end=timeline.duration,
        keyframe=longest.keyframe,
    )
