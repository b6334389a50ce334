"""The tiny CNN trained from scratch: the no-transfer baseline."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TinyCNN"]


class TinyCNN(nn.Module):
    """A 4-stage CNN trained from scratch (370,184 parameters with the default 1000-class head
    and ``width=32``; 241,184 without the head, 128 features)."""

    def __init__(self, num_classes: int = 1000, width: int = 32) -> None:
        super().__init__()

        def stage(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(
            # A strided stem keeps CPU training to well under a second per batch.
            stage(3, width, stride=2),
            stage(width, width * 2),
            stage(width * 2, width * 4),
            stage(width * 4, width * 4),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))
