"""Classification heads put on top of a backbone's pooled features."""

from __future__ import annotations

from torch import nn

from landscape.config import HeadSpec

__all__ = ["HeadSpec", "build_head"]


def build_head(spec: HeadSpec, in_features: int, num_classes: int) -> nn.Module:
    """Build the head described by ``spec``; its last layer is always named ``fc``."""
    layers: list[nn.Module] = []
    width = in_features
    if spec.kind == "mlp":
        for hidden in spec.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(spec.dropout)]
            width = hidden
    elif spec.kind == "linear" and spec.dropout > 0:
        # svm/logreg heads are fitted linear models: no dropout in front of them.
        layers.append(nn.Dropout(spec.dropout))
    head = nn.Sequential(*layers)
    head.add_module("fc", nn.Linear(width, num_classes))
    return head
