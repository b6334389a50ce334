from __future__ import annotations

import pytest
import torch

from landscape.errors import UserError
from landscape.models.registry import get_backbone_info, list_backbones, register_backbone

REQUIRED = {
    "vgg16",
    "resnet18",
    "alexnet",
    "mobilenet_v2",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "efficientnet_b0",
    "convnext_tiny",
    "tiny_cnn",
}


def test_required_backbones_registered() -> None:
    assert {info.name for info in list_backbones()} >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED - {"vgg16", "alexnet", "convnext_tiny"}))
def test_metadata_matches_the_built_network(name: str) -> None:
    info = get_backbone_info(name)
    model = info.builder()
    assert sum(p.numel() for p in model.parameters()) == info.params
    blocks = info.blocks(model)
    assert len(blocks) == info.n_blocks
    names = dict(model.named_modules())
    assert all(module in names for block in blocks for module in block)
    assert info.classifier in names


def test_unknown_backbone_suggests_close_names() -> None:
    with pytest.raises(UserError, match="did you mean resnet18"):
        get_backbone_info("resnet81")
    assert get_backbone_info("EfficientNet-Lite0").name == "efficientnet_lite0"


def test_register_decorator_rejects_duplicates() -> None:
    import dataclasses

    meta = {
        f.name: getattr(get_backbone_info("resnet18"), f.name)
        for f in dataclasses.fields(get_backbone_info("resnet18"))
        if f.name != "builder"
    }
    with pytest.raises(ValueError, match="registered twice"):
        register_backbone(**meta)(lambda: torch.nn.Identity())


def test_offline_flag() -> None:
    offline = {i.name for i in list_backbones() if i.offline}
    assert offline == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
