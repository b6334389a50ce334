"""Backbones, weights, heads, freezing policies and model bundles.

Importing the package registers the built-in backbones (``_zoo.register_all``); neither the
registry nor the zoo imports torch, timm or torchvision until a backbone is built or its
preprocessing is looked up.
"""

from . import _zoo
from .registry import BackboneInfo, get_backbone_info, list_backbones, register_backbone

__all__ = ["BackboneInfo", "get_backbone_info", "list_backbones", "register_backbone"]

_zoo.register_all()
