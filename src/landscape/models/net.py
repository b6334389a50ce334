"""The network every bundle holds: a backbone yielding pooled features plus a head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .freezing import BNPolicy, FreezePolicy, apply_policy, set_frozen_eval
from .heads import HeadSpec, build_head
from .registry import BackboneInfo, get_backbone_info
from .weights import WeightsRecord, load_weights_into, resolve_weights

__all__ = ["LandscapeNet", "build_imagenet_model", "create_model", "strip_classifier"]


def strip_classifier(model: nn.Module, path: str) -> None:
    """Replace the submodule at dotted ``path`` (the ImageNet classifier) with ``Identity``."""
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, nn.Identity())


class LandscapeNet(nn.Module):
    """``backbone`` (images → pooled features) followed by ``head`` (features → logits)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, info: BackboneInfo) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.info = info
        self.frozen_modules: list[str] = []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, ``[B, feature_dim]``."""
        return self.backbone(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def blocks(self) -> list[list[str]]:
        """The backbone's unfreezable blocks, shallow to deep."""
        return self.info.blocks(self.backbone)

    def freeze(self, policy: FreezePolicy, bn: BNPolicy = "freeze") -> None:
        """Apply a freezing policy to the backbone; the head always trains."""
        self.frozen_modules = apply_policy(self.backbone, self.blocks(), policy, bn)
        for param in self.head.parameters():
            param.requires_grad_(True)
        if self.training:
            set_frozen_eval(self.backbone, self.frozen_modules)

    def train(self, mode: bool = True) -> LandscapeNet:
        super().train(mode)
        if mode:
            set_frozen_eval(self.backbone, self.frozen_modules)
        return self

    def param_counts(self) -> dict[str, int]:
        """Total and trainable parameter counts."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"total": total, "trainable": trainable}


def build_imagenet_model(
    name: str, weights: str = "packaged", sha256: str | None = None
) -> tuple[nn.Module, WeightsRecord]:
    """The backbone's full ImageNet network (1000 classes) with weights loaded."""
    info = get_backbone_info(name)
    # Weights first: an offline hub or a bad file fails before building a 138 M-parameter net.
    state, record = resolve_weights(info, weights, sha256)
    model = info.builder()
    if state is not None:
        load_weights_into(model, state, info, record)
    return model.eval(), record


def create_model(
    name: str,
    num_classes: int,
    *,
    weights: str | None = None,
    sha256: str | None = None,
    head: HeadSpec | None = None,
    **_: Any,
) -> tuple[LandscapeNet, WeightsRecord]:
    """Backbone ``name`` with ``weights`` (default: the backbone's default source) + a new head."""
    info = get_backbone_info(name)
    model, record = build_imagenet_model(name, weights or info.default_weights, sha256)
    strip_classifier(model, info.classifier)
    net = LandscapeNet(model, build_head(head or HeadSpec(), info.feature_dim, num_classes), info)
    return net, record
