"""Cut a backbone at a named layer: the network behind a linear probe (``--layer NAME``).

The classic baseline (seed lab 002: VGG16 features from a chosen layer + an SVM) needs the
activations of an intermediate module. :func:`truncate_at` edits the ImageNet network in place:

- every module that first *starts* after the layer has finished (found by one dummy forward pass
  in eval mode) is replaced by ``nn.Identity``, so its weights leave the ``state_dict`` and it
  costs nothing (what remains after the layer is parameter-free glue such as ``flatten``);
- a forward hook on the layer keeps its output, global-average pooled when it is an NCHW map,
  and a hook on the root returns that ``[B, C]`` tensor as the network's output (no exception
  stops the pass: the network stays traceable for export).

The network keeps its class and its module names, so everything that addresses a backbone by
name (``BackboneInfo.blocks``, freezing, Grad-CAM hooks) works on it unchanged; a bundle rebuilds
it from the backbone name and the layer alone and loads its tensors strictly. The hooks are
module-level functions that keep no reference to a particular instance, so a deep copy stays
correct, and each thread's activations are kept apart (the Predictor is shared by threads).

Why not the libraries' feature-extraction APIs (checked with torchvision 0.29 / timm 1.0):

- ``torchvision.models.feature_extraction.create_feature_extractor`` (torch.fx) returns a
  ``GraphModule`` in which containers such as ``layer3`` become bare ``nn.Module`` objects that
  the graph never calls (so forward hooks on a block, which Grad-CAM relies on, never fire) and
  the modules after the layer do not exist at all (``layer4`` no longer resolves); it cannot
  trace timm's TF-ported networks (SAME padding is data-dependent control flow);
- timm's ``features_only=True, out_indices=...`` and ``forward_intermediates`` can only stop at
  the model's feature levels (``feature_info``: ``blocks.0/1/2/4/6`` for EfficientNet), not at
  any module such as ``blocks.5``, and ``features_only`` returns another class with a list of
  maps.

They are used where they fit: timm's ``feature_info`` names the suggested cut points in the
unknown-layer error, and tests/models/test_truncate.py checks the features computed here
against ``create_feature_extractor`` and ``forward_intermediates``.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from landscape.errors import UserError

from .heads import HeadSpec, build_head
from .info import BackboneInfo
from .net import LandscapeNet, build_imagenet_model, strip_classifier
from .registry import get_backbone_info

if TYPE_CHECKING:
    from .weights import WeightsRecord

__all__ = [
    "PROBE_LAYER_ATTR",
    "create_probe_model",
    "layer_names",
    "probe_backbone",
    "probe_info",
    "truncate_at",
]

#: attribute naming the feature layer on a truncated network
PROBE_LAYER_ATTR = "probe_layer"
_KEPT = "_probe_features"
_BLOCKS = "_probe_blocks"


def layer_names(model: nn.Module) -> list[str]:
    """Names of ``model``'s submodules in definition order (the candidates for ``--layer``)."""
    return [name for name, _ in model.named_modules() if name]


def _feature_levels(model: nn.Module) -> list[str]:
    """The module names timm publishes as the model's feature levels (``[]`` elsewhere)."""
    info = getattr(model, "feature_info", None)
    if not isinstance(info, list):
        return []
    return [str(level["module"]) for level in info if isinstance(level, dict) and "module" in level]


def _unknown_layer(model: nn.Module, layer: str, backbone: str) -> UserError:
    names = layer_names(model)
    close = difflib.get_close_matches(layer, names, n=3, cutoff=0.6)
    # timm's feature levels, else top-level children and their direct children: the useful cut
    # points (stages, blocks).
    levels = [n for n in _feature_levels(model) if n in names]
    shallow = levels or [n for n in names if n.count(".") <= 1][-8:]
    shown = list(dict.fromkeys([*close, *shallow]))
    return UserError(
        f"unknown layer {layer!r} for {backbone}",
        fix=f"valid names include {', '.join(shown)} (any module name of the network)",
    )


def _pool(output: Any) -> torch.Tensor:
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the feature layer returned {type(output).__name__}, not a tensor")
    if output.ndim == 4:  # an NCHW feature map: global average pooling
        output = output.mean(dim=(2, 3))
    return output.flatten(1)


def _keep_features(module: nn.Module, _inputs: Any, output: Any) -> None:
    getattr(module, _KEPT)[threading.get_ident()] = _pool(output)


def _emit_features(model: nn.Module, _inputs: Any, _output: Any) -> torch.Tensor:
    layer = model.get_submodule(getattr(model, PROBE_LAYER_ATTR))
    kept: torch.Tensor = getattr(layer, _KEPT).pop(threading.get_ident())
    return kept


@torch.no_grad()
def _trace_order(model: nn.Module, input_size: int) -> tuple[dict[str, int], dict[str, int]]:
    """When each module first starts and first ends (a clock over one eval forward pass)."""
    clock = itertools.count()
    starts: dict[str, int] = {}
    ends: dict[str, int] = {}

    def started(name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any) -> None:  # None: the input is left as is
            starts.setdefault(name, next(clock))

        return hook

    def ended(name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, _output: Any) -> None:
            ends.setdefault(name, next(clock))

        return hook

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(started(name)))
        handles.append(module.register_forward_hook(ended(name)))
    try:
        model.eval()(torch.zeros(1, 3, input_size, input_size))
    finally:
        for handle in handles:
            handle.remove()
    return starts, ends


def truncate_at(
    model: nn.Module,
    layer: str,
    *,
    backbone: str,
    input_size: int,
    blocks: Sequence[Sequence[str]] = (),
) -> nn.Module:
    """Make ``model`` (in place) return the pooled output of its module ``layer``, ``[B, C]``.

    ``blocks``: the backbone's block names (:attr:`BackboneInfo.blocks`). A later module that
    contains one is emptied rather than replaced, so every name still resolves; the blocks that
    have finished when the layer has (the ones the features depend on) are stored for
    :func:`probe_info`. An unknown name, or a module that ``forward`` never calls, is a one-line
    :class:`UserError` listing valid names.
    """
    if not layer or layer not in dict(model.named_modules()):
        raise _unknown_layer(model, layer, backbone)
    starts, ends = _trace_order(model, input_size)
    if layer not in ends:
        raise UserError(
            f"layer {layer!r} of {backbone} is not called by the network's forward pass",
            fix="choose a module that runs, e.g. a stage or block name",
        )
    end = ends[layer]
    names = [n for group in blocks for n in group]
    dropped: list[str] = []
    for name, start in starts.items():
        if not name or start < end or any(name.startswith(d + ".") for d in dropped):
            continue
        if any(kept.startswith(name + ".") for kept in names):
            continue  # it contains a block name: replace inside it instead
        dropped.append(name)
    for name in dropped:
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, nn.Identity())
    survivors = [[n for n in group if ends.get(n, end + 1) <= end] for group in blocks]
    setattr(model, PROBE_LAYER_ATTR, layer)
    setattr(model, _BLOCKS, [group for group in survivors if group])
    target = model.get_submodule(layer)
    setattr(target, _KEPT, {})
    target.register_forward_hook(_keep_features)
    model.register_forward_hook(_emit_features)
    return model.eval()


def _probe_blocks(model: nn.Module) -> list[list[str]]:
    return [list(group) for group in getattr(model, _BLOCKS, [])]


def probe_info(name: str, layer: str | None) -> BackboneInfo:
    """The backbone's metadata, with ``blocks`` limited to those before ``layer`` when cut.

    Blocks after the layer are identities on a truncated network: listing them would let
    Grad-CAM pick an activation the features do not depend on.
    """
    info = get_backbone_info(name)
    return info if layer is None else dataclasses.replace(info, blocks=_probe_blocks)


def probe_backbone(
    name: str,
    layer: str | None,
    *,
    weights: str | None = None,
    sha256: str | None = None,
) -> tuple[nn.Module, WeightsRecord]:
    """Backbone ``name`` (with ``weights``) yielding the features of ``layer`` as ``[B, C]``.

    ``layer=None`` is the backbone's usual pooled output (the ImageNet classifier stripped), the
    same features a ``linear`` head trains on.
    """
    info = get_backbone_info(name)
    model, record = build_imagenet_model(name, weights or info.default_weights, sha256)
    if layer is None:
        strip_classifier(model, info.classifier)
        return model, record
    truncated = truncate_at(
        model, layer, backbone=info.name, input_size=info.input_size, blocks=info.blocks(model)
    )
    return truncated, record


def create_probe_model(
    name: str,
    num_classes: int,
    *,
    layer: str | None,
    in_features: int,
    weights: str | None = "none",
    sha256: str | None = None,
) -> tuple[LandscapeNet, WeightsRecord]:
    """A linear probe: :func:`probe_backbone` + one ``Linear(in_features, num_classes)``.

    This is the architecture of an ``svm``/``logreg`` bundle; :func:`landscape.models.bundle.
    build_model` calls it with ``weights="none"`` and then loads the bundle's tensors.
    """
    backbone, record = probe_backbone(name, layer, weights=weights, sha256=sha256)
    head = build_head(HeadSpec(kind="linear", dropout=0.0), in_features, num_classes)
    return LandscapeNet(backbone, head, probe_info(name, layer)), record
