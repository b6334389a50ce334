"""Every shipped training config is valid (unknown keys would be errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from landscape.config import load_train_config
from landscape.models.registry import get_backbone_info

CONFIGS = sorted(p for p in (Path(__file__).parents[1] / "configs" / "paper").glob("*.yaml"))


@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if "study" not in p.name], ids=lambda p: p.name
)
def test_paper_train_configs_load(path: Path) -> None:
    cfg = load_train_config(path)
    assert get_backbone_info(cfg.backbone).name == cfg.backbone
    assert cfg.batch_size == 20 and cfg.optim.name == "adam" and cfg.optim.scheduler == "plateau"
    assert cfg.head.kind == "mlp" and cfg.head.hidden == [256] and cfg.head.dropout == 0.3
    assert cfg.fine_tune is not None and cfg.fine_tune.unfreeze == "deepest:1"
