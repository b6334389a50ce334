"""Model bundles: ``model.safetensors`` + ``bundle.json``; a directory or a ``.landscape`` zip.

The bundle is the one artefact shared by training and everything downstream. It carries the
preprocessing, class names, calibration and provenance. Loading checks the format version and
the sha256 of the tensors and never unpickles anything.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape.data.io import file_sha256
from landscape.data.transforms import Preprocessing
from landscape.errors import BundleError

from .heads import HeadSpec

if TYPE_CHECKING:
    import torch

    from .net import LandscapeNet

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "Bundle",
    "build_model",
    "load_bundle",
    "read_bundle_member",
    "save_bundle",
    "update_bundle_meta",
]

BUNDLE_FORMAT_VERSION = 1
_META = "bundle.json"
_TENSORS = "model.safetensors"


@dataclass
class Bundle:
    """A loaded bundle: metadata and tensors (not yet a module; see :func:`build_model`)."""

    path: Path
    meta: dict[str, Any]
    state: dict[str, torch.Tensor] = field(repr=False)

    @property
    def classes(self) -> list[str]:
        """Class names in output order."""
        return list(self.meta["classes"])

    @property
    def preprocessing(self) -> Preprocessing:
        """The input pipeline the model was trained with."""
        return Preprocessing(**self.meta["preprocessing"])

    @property
    def model_id(self) -> str:
        """``<backbone>-<12 hex of the tensors' sha256>``: stable identity of these weights."""
        return str(self.meta["model_id"])

    @property
    def temperature(self) -> float:
        """Softmax temperature from calibration (1.0 when uncalibrated)."""
        return float(self.meta.get("temperature") or 1.0)

    @property
    def unknown_threshold(self) -> float | None:
        """Confidence below which a prediction is "unknown" (``None``: never)."""
        value = self.meta.get("unknown_threshold")
        return None if value is None else float(value)


def _versions() -> dict[str, str]:
    import timm
    import torch

    from landscape import __version__

    return {
        "landscape": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
    }


def save_bundle(
    path: Path,
    model: LandscapeNet,
    *,
    classes: list[str],
    preprocessing: Preprocessing,
    head: HeadSpec,
    weights: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle atomically (temp dir, then rename) to a directory or a ``.landscape`` zip."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = Path(
        tempfile.mkdtemp(prefix=".bundle-", dir=path.parent if path.parent.exists() else None)
    )
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / _TENSORS), metadata={"format": "landscape"})
        digest = file_sha256(tmp / _TENSORS)
        meta: dict[str, Any] = {
            "format": "landscape-bundle",
            "format_version": BUNDLE_FORMAT_VERSION,
            "model_id": f"{model.info.name}-{digest[:12]}",
            "kind": "net",
            "backbone": model.info.name,
            "architecture": model.info.arch,
            "weights": weights,
            "head": head.model_dump(),
            "classes": list(classes),
            "preprocessing": preprocessing.model_dump(),
            "temperature": 1.0,
            "unknown_threshold": None,
            "params": model.param_counts(),
            "software": _versions(),
            "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "files": {_TENSORS: digest},
            **(extra or {}),
        }
        (tmp / _META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".landscape":
            staged = tmp / "bundle.zip"
            with zipfile.ZipFile(staged, "w", zipfile.ZIP_STORED) as zf:
                zf.write(tmp / _META, _META)
                zf.write(tmp / _TENSORS, _TENSORS)
            staged.replace(path)
        else:
            if path.exists():
                shutil.rmtree(path)
            tmp.replace(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _read_members(path: Path) -> tuple[bytes, bytes]:
    if path.is_dir():
        meta_file, tensor_file = path / _META, path / _TENSORS
        if not meta_file.is_file() or not tensor_file.is_file():
            raise BundleError(
                f"not a model bundle (needs {_META} and {_TENSORS})",
                path=path,
                fix="pass the bundle/ folder written by `landscape train`",
            )
        return meta_file.read_bytes(), tensor_file.read_bytes()
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.read(_META), zf.read(_TENSORS)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise BundleError(
            f"not a readable .landscape bundle ({exc})",
            path=path,
            fix="re-export it with `landscape train` or pass the bundle folder",
        ) from exc


def load_bundle(path: Path | str) -> Bundle:
    """Read and verify a bundle; any defect is a one-line :class:`BundleError`."""
    from safetensors.torch import load as load_tensors

    path = Path(path)
    if not path.exists():
        raise BundleError("does not exist", path=path, fix="check the path of the bundle")
    raw_meta, raw_tensors = _read_members(path)
    try:
        meta = json.loads(raw_meta)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{_META} is not valid JSON ({exc})", path=path, fix="re-train") from exc
    if meta.get("format") != "landscape-bundle":
        raise BundleError(f"{_META} is not a landscape bundle", path=path, fix="check the path")
    version = meta.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"bundle format version {version} is not supported (this landscape reads "
            f"{BUNDLE_FORMAT_VERSION})",
            path=path,
            fix="upgrade landscape or re-train the model",
        )
    expected = meta.get("files", {}).get(_TENSORS)
    actual = hashlib.sha256(raw_tensors).hexdigest()
    if expected != actual:
        raise BundleError(
            f"{_TENSORS} fails its checksum (truncated or tampered)",
            path=path,
            fix="restore the bundle from the run directory or re-train",
        )
    try:
        state = load_tensors(raw_tensors)
    except Exception as exc:  # safetensors raises its own error types
        raise BundleError(f"cannot read {_TENSORS} ({exc})", path=path, fix="re-train") from exc
    return Bundle(path, meta, state)


def build_model(bundle: Bundle) -> LandscapeNet:
    """Instantiate the bundle's network (no weights download) and load its tensors strictly."""
    from .net import create_model

    head = bundle.meta["head"]
    if head.get("kind") == "sklearn":
        # A classic baseline (svm/logreg): backbone cut at the feature layer + one Linear.
        from .truncate import create_probe_model

        net, _ = create_probe_model(
            bundle.meta["backbone"],
            len(bundle.classes),
            layer=head.get("layer"),
            in_features=int(head["in_features"]),
        )
    else:
        net, _ = create_model(
            bundle.meta["backbone"], len(bundle.classes), weights="none", head=HeadSpec(**head)
        )
    try:
        net.load_state_dict(bundle.state, strict=True)
    except RuntimeError as exc:
        raise BundleError(
            f"tensors do not fit {bundle.meta['backbone']} ({str(exc).splitlines()[0]})",
            path=bundle.path,
            fix="the bundle is inconsistent; re-train",
        ) from exc
    return net.eval()


def _member(path: Path, name: str) -> bytes | None:
    """One file of a bundle (directory or zip), or None when it has no such file."""
    if path.is_dir():
        return (path / name).read_bytes() if (path / name).is_file() else None
    with zipfile.ZipFile(path) as zf:
        return zf.read(name) if name in zf.namelist() else None


def _replace_members(path: Path, changes: dict[str, bytes]) -> None:
    """Write ``changes`` into the bundle, ``bundle.json`` last, each file atomically.

    A directory gets each file through a temp file and a rename (the metadata last, so a crash
    leaves the old metadata, which does not list a new member); a zip is rebuilt beside the
    original with every other member kept, then renamed over it.
    """
    if path.is_dir():
        for name in sorted(changes, key=lambda n: n == _META):
            tmp = path / (name + ".tmp")
            tmp.write_bytes(changes[name])
            tmp.replace(path / name)
        return
    staged = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(staged, "w", zipfile.ZIP_STORED) as zf:
        for name in old.namelist():
            if name not in changes:
                zf.writestr(name, old.read(name))
        for name, data in changes.items():
            zf.writestr(name, data)
    staged.replace(path)


def update_bundle_meta(
    path: Path, *, members: dict[str, bytes] | None = None, **changes: Any
) -> dict[str, Any]:
    """Update fields of ``bundle.json`` in place (e.g. temperature, metrics); returns the meta.

    ``members``: extra files to add or replace (e.g. ``model.onnx``); their sha256 is recorded
    under ``files`` so :func:`read_bundle_member` can verify them.
    """
    path = Path(path)
    bundle = load_bundle(path)
    meta = {**bundle.meta, **changes}
    if members:
        files = dict(meta.get("files") or {})
        files.update({name: hashlib.sha256(data).hexdigest() for name, data in members.items()})
        meta["files"] = files
    text = json.dumps(meta, indent=2, default=str) + "\n"
    _replace_members(path, {**(members or {}), _META: text.encode()})
    return meta


def read_bundle_member(bundle: Bundle, name: str, *, fix: str) -> bytes:
    """An extra file of a loaded bundle (e.g. ``model.onnx``), verified against ``bundle.json``.

    ``fix`` says how to create it when the bundle has none.
    """
    expected = (bundle.meta.get("files") or {}).get(name)
    if expected is None:
        raise BundleError(f"the bundle has no {name}", path=bundle.path, fix=fix)
    try:
        data = _member(bundle.path, name)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"cannot read {name} ({exc})", path=bundle.path, fix=fix) from exc
    if data is None or hashlib.sha256(data).hexdigest() != expected:
        raise BundleError(
            f"{name} is missing or fails its checksum (truncated or tampered)",
            path=bundle.path,
            fix=fix,
        )
    return data
