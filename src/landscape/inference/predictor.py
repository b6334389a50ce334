"""``Predictor.from_bundle(path).predict(images)``: batched, thread-safe, bundle-preprocessed.

Preprocessing comes only from the bundle (:func:`landscape.data.transforms.eval_transform`), so a
prediction here is exactly what training validated. Temperature scaling and the open-set
"unknown" threshold stored in the bundle are applied to every prediction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from landscape.data.io import open_image
from landscape.data.transforms import eval_transform
from landscape.errors import UserError
from landscape.models.bundle import Bundle, build_model, load_bundle

__all__ = ["Prediction", "Predictor"]

ImageInput = Image.Image | Path | str | bytes | np.ndarray


@dataclass(frozen=True)
class Prediction:
    """The result for one image."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    is_unknown: bool
    model_id: str
    logits: list[float] = field(default_factory=list, repr=False)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes with their probabilities."""
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without raw logits)."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "is_unknown": self.is_unknown,
            "model_id": self.model_id,
        }


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Predictor:
    """Classify images with a bundle on the ``torch`` backend (ONNX arrives with export)."""

    def __init__(self, bundle: Bundle, *, device: str = "cpu", channels_last: bool = True) -> None:
        self.bundle = bundle
        self.classes = bundle.classes
        self.model_id = bundle.model_id
        self.device = torch.device(device)
        self.model = build_model(bundle).to(self.device)
        if channels_last:
            # ~2x faster convolutions on CPU (measured in benchmarks/).
            self.model = self.model.to(memory_format=torch.channels_last)
        self.channels_last = channels_last
        self.transform = eval_transform(bundle.preprocessing)
        self.temperature = bundle.temperature
        self.unknown_threshold = bundle.unknown_threshold
        self._lock = threading.Lock()

    @classmethod
    def from_bundle(
        cls, path: Path | str, *, backend: str = "torch", device: str = "cpu"
    ) -> Predictor:
        """Load a bundle (directory or ``.landscape``) for inference."""
        if backend != "torch":
            raise UserError(f"backend {backend!r} is not available yet", fix="use --backend torch")
        return cls(load_bundle(path), device=device)

    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """One image → normalised ``[3, H, W]`` tensor (decode errors name the file)."""
        tensor: torch.Tensor = self.transform(open_image(image))
        return tensor

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits for a preprocessed batch (temperature not applied)."""
        x = batch.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._lock:  # one forward at a time: torch CPU ops already use every core
            return self.model(x).float().cpu()

    def predict(self, images: Sequence[ImageInput], batch_size: int = 32) -> list[Prediction]:
        """Predict every image, in order, in batches of ``batch_size``."""
        results: list[Prediction] = []
        for chunk in _batches(list(images), batch_size):
            batch = torch.stack([self.preprocess(img) for img in chunk])
            results.extend(self.predict_logits(self.logits(batch)))
        return results

    def predict_logits(self, logits: torch.Tensor) -> list[Prediction]:
        """Turn raw logits into predictions (temperature, threshold, labels)."""
        probs = torch.softmax(logits / self.temperature, dim=1).numpy()
        out = []
        for row, raw in zip(probs, logits.numpy(), strict=True):
            best = int(row.argmax())
            confidence = float(row[best])
            unknown = self.unknown_threshold is not None and confidence < self.unknown_threshold
            out.append(
                Prediction(
                    label=self.classes[best],
                    confidence=confidence,
                    probabilities={c: float(p) for c, p in zip(self.classes, row, strict=True)},
                    is_unknown=bool(unknown),
                    model_id=self.model_id,
                    logits=[float(v) for v in raw],
                )
            )
        return out
