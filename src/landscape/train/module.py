"""The LightningModule wiring a network, loss, metrics, optimiser and schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torchmetrics
from torch import nn

from landscape.config import OptimConfig

from .optim import build_optimizer, build_scheduler

__all__ = ["ClassifierModule"]


class ClassifierModule(L.LightningModule):
    """Train ``model`` (a full :class:`LandscapeNet` or only its head on cached features)."""

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        optim: OptimConfig,
        *,
        class_weights: torch.Tensor | None = None,
        mixer: Callable[..., Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.optim_cfg = optim
        self.mixer = mixer
        self.seed = seed
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
        self.test_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(
            logits.float(),
            target,
            weight=self.class_weights if isinstance(self.class_weights, torch.Tensor) else None,
            label_smoothing=self.optim_cfg.label_smoothing,
        )

    def on_train_epoch_start(self) -> None:
        # RNG as a function of (seed, epoch): a resumed run draws the same dropout/augmentation
        # numbers as an uninterrupted one from the resumed epoch on.
        L.seed_everything(self.seed * 10_007 + self.current_epoch, workers=True, verbose=False)
        loader = self.trainer.train_dataloader
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if set_epoch is not None:
            set_epoch(self.current_epoch)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        if batch is None:
            return None
        x, y = batch
        hard = y
        if self.mixer is not None:
            x, y = self.mixer(x, y)
        logits = self(x)
        loss = self._loss(logits, y)
        self.train_acc(logits.argmax(1), hard)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if batch is None:
            return
        x, y = batch
        logits = self(x)
        self.val_acc(logits.argmax(1), y)
        self.log("val_loss", self._loss(logits, y), on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        if batch is None:
            return
        x, y = batch
        logits = self(x)
        self.test_acc(logits.argmax(1), y)
        self.log("test_loss", self._loss(logits, y), on_epoch=True, sync_dist=True)
        self.log("test_acc", self.test_acc, on_epoch=True)

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.model, self.optim_cfg)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(total // max(self.trainer.max_epochs or 1, 1), 1)
        scheduler = build_scheduler(optimizer, self.optim_cfg, total, per_epoch)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
