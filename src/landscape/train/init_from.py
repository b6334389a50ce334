"""Start a run from a trained bundle instead of ImageNet weights (``TrainConfig.init``).

Fine-tuning a model people already use (``landscape retrain``) keeps what it learned: the whole
backbone, the head's hidden layers when the head has the same shape, and the rows of the last
layer of every class the bundle and the new dataset share; a class the bundle did not know
starts from fresh rows. The bundle's preprocessing is kept, so the fine-tuned model sees its
inputs exactly as the base did.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.config import HeadSpec
from landscape.data.transforms import Preprocessing
from landscape.errors import ConfigError
from landscape.models.bundle import build_model, load_bundle
from landscape.models.net import LandscapeNet, create_model
from landscape.models.weights import WeightsRecord

__all__ = ["base_head_spec", "start_from_bundle"]


def base_head_spec(meta: Mapping[str, Any]) -> HeadSpec:
    """The head a fine-tuned copy of a bundle trains: the bundle's own, or for an svm/logreg
    baseline on the pooled features, the single ``Linear`` it is stored as."""
    head = dict(meta["head"])
    if head.get("kind") == "sklearn":
        if head.get("layer"):
            raise ConfigError(
                f"the bundle is a {head.get('estimator', 'classic')} probe on the backbone layer "
                f"{head['layer']}, which a network cannot be fine-tuned from",
                fix="retrain from a bundle trained on the pooled features (no --layer)",
            )
        return HeadSpec(kind="linear", dropout=0.0)
    return HeadSpec(**{k: v for k, v in head.items() if k in HeadSpec.model_fields})


def _transfer_head(
    old: nn.Module, new: nn.Module, old_classes: list[str], classes: list[str]
) -> int:
    """Copy ``old``'s layers into ``new`` where shapes agree and the last layer's rows class by
    class; return how many classes were carried over."""
    old_state = old.state_dict()
    new_state = new.state_dict()
    for name, tensor in old_state.items():
        if (
            not name.startswith("fc.")
            and name in new_state
            and new_state[name].shape == tensor.shape
        ):
            new_state[name] = tensor.clone()
    carried = 0
    weight, bias = old_state.get("fc.weight"), old_state.get("fc.bias")
    if weight is not None and weight.shape[1] == new_state["fc.weight"].shape[1]:
        for i, name in enumerate(classes):
            if name in old_classes:
                j = old_classes.index(name)
                new_state["fc.weight"][i] = weight[j]
                if bias is not None:
                    new_state["fc.bias"][i] = bias[j]
                carried += 1
    new.load_state_dict(new_state)
    return carried


def start_from_bundle(
    path: Path, backbone: str, classes: list[str], head: HeadSpec
) -> tuple[LandscapeNet, WeightsRecord, Preprocessing]:
    """The network to train, where its weights came from, and the bundle's preprocessing."""
    bundle = load_bundle(path)
    if bundle.meta["backbone"] != backbone:
        raise ConfigError(
            f"the bundle to start from is a {bundle.meta['backbone']} network but the run asks "
            f"for {backbone}",
            fix=f"pass --backbone {bundle.meta['backbone']}",
        )
    base = build_model(bundle)
    net, _ = create_model(backbone, len(classes), weights="none", head=head)
    net.backbone.load_state_dict(base.backbone.state_dict(), strict=True)
    with torch.no_grad():
        _transfer_head(base.head, net.head, bundle.classes, classes)
    record = WeightsRecord(
        source="bundle",
        location=bundle.model_id,
        sha256=(bundle.meta.get("files") or {}).get("model.safetensors"),
    )
    return net, record, bundle.preprocessing
