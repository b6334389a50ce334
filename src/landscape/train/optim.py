"""Optimisers with parameter groups and learning-rate schedules.

Weight decay is applied through parameter groups (none on biases and normalisation weights, the
usual practice in timm and torchvision references); the backbone gets a lower learning rate than
the head (discriminative learning rates) via ``backbone_lr_mult``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from landscape.config import OptimConfig

__all__ = ["build_optimizer", "build_scheduler", "param_groups"]


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """Trainable parameters split into (backbone|head) × (decay|no decay) groups."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if name.startswith("backbone.") else "head"
        decay = param.ndim > 1
        groups.setdefault((part, decay), []).append(param)
    out = []
    for (part, decay), params in sorted(groups.items()):
        lr = cfg.lr * (cfg.backbone_lr_mult if part == "backbone" else 1.0)
        out.append(
            {
                "params": params,
                "lr": lr,
                "weight_decay": cfg.weight_decay if decay else 0.0,
                "name": f"{part}{'' if decay else '_no_decay'}",
            }
        )
    return out


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov), Adam or AdamW over :func:`param_groups`."""
    groups = param_groups(model, cfg)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adam":
        # Adam's weight_decay is L2 added to the gradient (the paper's "L2 regularisation").
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int, steps_per_epoch: int
) -> dict[str, Any] | None:
    """A Lightning ``lr_scheduler`` config dict, or ``None`` for a constant rate."""
    if cfg.scheduler == "none":
        return None
    sched: Any
    if cfg.scheduler == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
        return {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}
    if cfg.scheduler == "onecycle":
        max_lrs = [g["lr"] for g in optimizer.param_groups]
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lrs, total_steps=max(total_steps, 1)
        )
        return {"scheduler": sched, "interval": "step"}
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    total = max(total_steps, 1)

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    return {"scheduler": sched, "interval": "step"}
