"""``Predictor.from_bundle(path).predict(images)``: batched, thread-safe, bundle-preprocessed.

Preprocessing comes only from the bundle (:func:`landscape.data.transforms.eval_transform`), so a
prediction here is exactly what training validated. Temperature scaling and the open-set
"unknown" threshold stored in the bundle are applied to every prediction.

Two backends run the network: ``torch`` (the bundle's tensors, channels_last) and ``onnx`` (the
``model.onnx`` that ``landscape export`` stored in the bundle, on ONNX Runtime: several times
faster on a CPU, see ``benchmarks/bench_onnx.py``), or its optional int8 version
(``onnx-int8``, :mod:`.quantize`). All return logits and features for the same preprocessed
batch; everything around them is shared.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from landscape.config import BACKENDS
from landscape.data.io import open_image
from landscape.data.transforms import eval_transform
from landscape.errors import UserError
from landscape.models.bundle import Bundle, build_model, load_bundle, read_bundle_member
from landscape.models.net import LandscapeNet

__all__ = ["BACKENDS", "Prediction", "Predictor"]

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


class _Backend(Protocol):
    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and pooled features of a preprocessed batch."""
        ...


class _TorchBackend:
    def __init__(self, model: LandscapeNet, device: torch.device, channels_last: bool) -> None:
        self.model = model.to(device)
        if channels_last:
            # 1.2-1.6x the batch-32 CPU throughput (benchmarks/bench_channels_last.py, 2 threads).
            self.model = self.model.to(memory_format=torch.channels_last)
        self.device = device
        self.channels_last = channels_last

    @torch.inference_mode()
    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.model.features(x)
        logits = self.model.head(features)
        return logits.float().cpu(), features.float().cpu()


class _OnnxBackend:
    def __init__(self, bundle: Bundle, *, int8: bool = False) -> None:
        from .export import ONNX_MEMBER, onnx_session
        from .quantize import INT8_MEMBER

        member, key = (INT8_MEMBER, "onnx_int8") if int8 else (ONNX_MEMBER, "onnx")
        how = f"landscape export {bundle.path}" + (" --int8 --data IMAGES" if int8 else "")
        fix = f"run `{how}` first, or use --backend torch"
        data = read_bundle_member(bundle, member, fix=fix)
        exported_from = (bundle.meta.get(key) or {}).get("exported_from")
        if exported_from != bundle.model_id:
            raise UserError(
                f"its {member} was exported from {exported_from}, not from these tensors "
                f"({bundle.model_id})",
                path=bundle.path,
                fix=fix,
            )
        try:
            self.session = onnx_session(data)
        except ImportError as exc:
            raise UserError(
                "the onnx backend needs onnxruntime", fix="pip install 'landscape[onnx]'"
            ) from exc

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = self.session.run(None, {"image": batch.float().numpy()})
        return torch.from_numpy(logits), torch.from_numpy(features)


def _require_backend(name: str) -> None:
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}", fix=f"use one of: {', '.join(BACKENDS)}")


class Predictor:
    """Classify images with a bundle on the ``torch``, ``onnx`` or ``onnx-int8`` backend."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        backend: str = "torch",
        device: str = "cpu",
        channels_last: bool = True,
    ) -> None:
        _require_backend(backend)
        if backend != "torch" and device != "cpu":
            raise UserError("the onnx backend runs on the CPU", fix="use --backend torch on a GPU")
        self.bundle = bundle
        self.classes = bundle.classes
        self.model_id = bundle.model_id
        self.backend_name = backend
        self.device = torch.device(device)
        self.channels_last = channels_last
        self._model: LandscapeNet | None = None
        self._backend: _Backend = (
            _TorchBackend(self.model, self.device, channels_last)
            if backend == "torch"
            else _OnnxBackend(bundle, int8=backend == "onnx-int8")
        )
        self.transform = eval_transform(bundle.preprocessing)
        self.temperature = bundle.temperature
        self.unknown_threshold = bundle.unknown_threshold
        self._lock = threading.Lock()

    @property
    def model(self) -> LandscapeNet:
        """The bundle's torch network (built on first use with the onnx backend: Grad-CAM and
        parameter counts need it, plain predictions do not)."""
        if self._model is None:
            self._model = build_model(self.bundle).to(self.device)
        return self._model

    @classmethod
    def from_bundle(
        cls, path: Path | str, *, backend: str = "torch", device: str = "cpu"
    ) -> Predictor:
        """Load a bundle (directory or ``.landscape``) for inference."""
        _require_backend(backend)  # before reading a possibly large bundle
        return cls(load_bundle(path), backend=backend, device=device)

    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """One image → normalised ``[3, H, W]`` tensor (decode errors name the file)."""
        tensor: torch.Tensor = self.transform(open_image(image))
        return tensor

    def logits_and_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw logits (temperature not applied) and pooled features of a preprocessed batch."""
        with self._lock:  # one forward at a time: both backends already use every core
            return self._backend.run(batch)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits for a preprocessed batch (temperature not applied)."""
        return self.logits_and_features(batch)[0]

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
