"""Freezing policies: ``frozen`` | ``deepest:N`` | ``all``, with an explicit BatchNorm policy.

Frozen blocks get ``requires_grad=False`` *and* stay in eval mode through ``model.train()``
(``bn="freeze"``, the default), so their BatchNorm running statistics are bit-identical after
training — unlike freezing that only stops gradients, which still drifts the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from landscape.config import normalize_policy
from landscape.errors import ConfigError

__all__ = ["FreezePolicy", "apply_policy", "parse_policy"]

BNPolicy = Literal["freeze", "train"]


@dataclass(frozen=True)
class FreezePolicy:
    """How many of the deepest backbone blocks train (``None`` = all, 0 = frozen)."""

    trainable_blocks: int | None

    @property
    def name(self) -> str:
        """Canonical spelling: ``frozen``, ``deepest:N`` or ``all``."""
        if self.trainable_blocks is None:
            return "all"
        return "frozen" if self.trainable_blocks == 0 else f"deepest:{self.trainable_blocks}"


def parse_policy(text: str) -> FreezePolicy:
    """Parse ``frozen``, ``all`` or ``deepest:N`` (N ≥ 1); the spelling rules are
    :func:`landscape.config.normalize_policy`'s, which the config validates with."""
    try:
        value = normalize_policy(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if value == "frozen":
        return FreezePolicy(0)
    if value == "all":
        return FreezePolicy(None)
    return FreezePolicy(int(value.split(":", 1)[1]))


def _module_names(blocks: list[list[str]]) -> list[str]:
    return [name for block in blocks for name in block]


def apply_policy(
    backbone: nn.Module, blocks: list[list[str]], policy: FreezePolicy, bn: BNPolicy = "freeze"
) -> list[str]:
    """Freeze ``backbone`` per ``policy``; return the names of the frozen modules.

    Parameters outside every block (rare) follow the deepest block's state. The caller keeps the
    returned names in eval mode during training when ``bn == "freeze"``.
    """
    n = len(blocks)
    trainable = n if policy.trainable_blocks is None else min(policy.trainable_blocks, n)
    frozen_blocks = blocks[: n - trainable]
    frozen = _module_names(frozen_blocks)
    for param in backbone.parameters():
        param.requires_grad_(trainable > 0)
    modules = dict(backbone.named_modules())
    for name in frozen:
        for param in modules[name].parameters():
            param.requires_grad_(False)
    if policy.trainable_blocks is not None and trainable > 0:
        for name in _module_names(blocks[n - trainable :]):
            for param in modules[name].parameters():
                param.requires_grad_(True)
    return frozen if bn == "freeze" else []


def set_frozen_eval(backbone: nn.Module, frozen: list[str]) -> None:
    """Put frozen modules in eval mode (after ``train()``): BN stats and dropout stay fixed."""
    modules = dict(backbone.named_modules())
    for name in frozen:
        modules[name].eval()
