"""Backbones, weights, heads, freezing policies and model bundles."""

from .registry import BackboneInfo, get_backbone_info, list_backbones, register_backbone

__all__ = ["BackboneInfo", "get_backbone_info", "list_backbones", "register_backbone"]
