"""Classification heads put on top of a backbone's pooled features."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

__all__ = ["HeadSpec", "build_head"]


class HeadSpec(BaseModel):
    """A head: ``linear`` or ``mlp`` (the paper's ``Linear(n,256)-ReLU-Dropout(0.3)-Linear``),
    or a classic ``svm`` / ``logreg`` fitted by scikit-learn on frozen features (regularisation
    ``C``) and stored as a single ``Linear`` layer."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["linear", "mlp", "svm", "logreg"] = "linear"
    hidden: list[int] = Field(default_factory=lambda: [256])
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    C: float = Field(1.0, gt=0.0)


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
