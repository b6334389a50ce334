"""ONNX export of a bundle, kept only when ONNX Runtime reproduces the torch model.

The exported graph takes the *preprocessed* image batch (``image``, float32 ``[N, 3, S, S]``,
any N) and returns ``logits`` and the pooled ``features`` the head reads, so the ONNX backend of
:class:`landscape.inference.Predictor` serves predictions, open-set scores and embeddings alike.
Preprocessing stays in Python and comes from the same ``bundle.json`` for both backends, so an
exported model cannot be fed differently from the one training validated. Temperature and the
"unknown" threshold are applied to the logits in Python too, so calibrating later does not
invalidate an export. The ``.onnx`` file is stored inside the bundle (``model.onnx``, its sha256
in ``bundle.json``), and also carries the classes and preprocessing as ONNX metadata so a copy
used outside landscape is self-describing.

Before anything is written, the export is run by ONNX Runtime on real images (or, without any,
on seeded noise) at a batch size different from the traced one, and compared with torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from landscape.data.io import open_image
from landscape.data.transforms import eval_transform
from landscape.errors import BundleError, UserError
from landscape.models.bundle import Bundle, build_model, load_bundle, update_bundle_meta
from landscape.models.net import LandscapeNet

__all__ = ["ONNX_MEMBER", "OnnxExport", "export_onnx", "onnx_session"]

#: the file name of the ONNX graph inside a bundle
ONNX_MEMBER = "model.onnx"
_OPSET = 18
_NOISE_IMAGES = 3


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote and how closely ONNX Runtime matched torch."""

    bundle: Path
    onnx_bytes: int
    sha256: str
    opset: int
    max_abs_diff_logits: float
    max_abs_diff_features: float
    checked_on: str
    seconds: float
    copy: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


class _LogitsAndFeatures(nn.Module):
    """The bundle's network with the pooled features as a second output."""

    def __init__(self, net: LandscapeNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.features(image)
        return self.net.head(features), features


def onnx_session(model: bytes, *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``model`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's concern
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _check_batch(bundle: Bundle, images: Sequence[Any]) -> tuple[torch.Tensor, str]:
    """The parity inputs: the given images (preprocessed as the bundle says) or seeded noise."""
    size = bundle.preprocessing.input_size
    if images:
        transform = eval_transform(bundle.preprocessing)
        batch = torch.stack([transform(open_image(im)) for im in images])
        return batch, f"{len(images)} image(s)"
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn((_NOISE_IMAGES, 3, size, size), generator=generator)
    return noise, f"{_NOISE_IMAGES} seeded noise inputs"


def _export(module: nn.Module, example: torch.Tensor, target: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter narrates each step on stdout and warns about its own internals; neither is
    # for the user (``--json`` output must stay parseable).
    with (
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["image"],
            output_names=["logits", "features"],
            dynamic_shapes=({0: batch},),
            external_data=False,
        )
        if program is None:  # pragma: no cover - the dynamo exporter always returns a program
            raise RuntimeError("torch.onnx.export returned no program")
        program.save(str(target), external_data=False)


def _with_metadata(onnx_path: Path, bundle: Bundle) -> bytes:
    import onnx

    model = onnx.load(str(onnx_path))
    pre = bundle.preprocessing
    props = {
        "landscape.model_id": bundle.model_id,
        "landscape.backbone": str(bundle.meta.get("backbone")),
        "landscape.classes": json.dumps(bundle.classes),
        "landscape.preprocessing": pre.model_dump_json(),
    }
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "landscape"
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def export_onnx(
    bundle_path: Path | str,
    *,
    images: Sequence[Any] = (),
    atol: float = 1e-3,
    opset: int = _OPSET,
    copy_to: Path | None = None,
) -> OnnxExport:
    """Export the bundle's network to ONNX, check it against torch, store it in the bundle.

    ``images``: files or PIL images for the parity check (real photos make the strongest
    check; without them seeded noise is used). ``atol``: the largest accepted absolute
    difference of any logit; the pooled features may differ by ``atol`` relative to their
    scale. ``copy_to``: also write the ``.onnx`` file there. On any mismatch nothing is written.
    """
    start = time.perf_counter()
    bundle = load_bundle(bundle_path)
    module = _LogitsAndFeatures(build_model(bundle)).eval()
    batch, checked_on = _check_batch(bundle, images)
    example = batch[:2] if len(batch) > 2 else torch.cat([batch, batch])[:2]
    with tempfile.TemporaryDirectory(prefix="landscape-onnx-") as tmp:
        raw = Path(tmp) / ONNX_MEMBER
        try:
            _export(module, example, raw, opset)
        except Exception as exc:  # the exporter's errors are long; the first line says enough
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"{bundle.meta.get('backbone')} cannot be exported to ONNX ({first[:200]})",
                path=bundle.path,
                fix="use the torch backend (the default) for this bundle",
            ) from exc
        data = _with_metadata(raw, bundle)
    session = onnx_session(data)
    ort_logits, ort_features = session.run(None, {"image": batch.numpy()})
    with torch.inference_mode():
        ref_logits, ref_features = module(batch)
    diff_logits = float(np.abs(ort_logits - ref_logits.numpy()).max())
    diff_features = float(np.abs(ort_features - ref_features.numpy()).max())
    feature_scale = max(1.0, float(ref_features.abs().max()))
    if not diff_logits <= atol or not diff_features <= atol * feature_scale:
        raise BundleError(
            f"ONNX Runtime differs from torch by {diff_logits:.2e} in the logits and "
            f"{diff_features:.2e} in the features on {checked_on} (allowed {atol:g}); "
            "nothing was written",
            path=bundle.path,
            fix="use the torch backend for this bundle",
        )
    digest = hashlib.sha256(data).hexdigest()
    seconds = time.perf_counter() - start
    info = {
        "file": ONNX_MEMBER,
        "opset": opset,
        "inputs": {"image": ["batch", 3, *[bundle.preprocessing.input_size] * 2]},
        "outputs": ["logits", "features"],
        "exported_from": bundle.model_id,
        "max_abs_diff_logits": diff_logits,
        "max_abs_diff_features": diff_features,
        "checked_on": checked_on,
        "onnxruntime": _ort_version(),
        "torch": torch.__version__,
    }
    update_bundle_meta(bundle.path, members={ONNX_MEMBER: data}, onnx=info)
    if copy_to is not None:
        copy_to.parent.mkdir(parents=True, exist_ok=True)
        tmp_copy = copy_to.with_name(copy_to.name + ".tmp")
        tmp_copy.write_bytes(data)
        tmp_copy.replace(copy_to)
    return OnnxExport(
        bundle=bundle.path,
        onnx_bytes=len(data),
        sha256=digest,
        opset=opset,
        max_abs_diff_logits=diff_logits,
        max_abs_diff_features=diff_features,
        checked_on=checked_on,
        seconds=seconds,
        copy=copy_to,
    )


def _ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)
