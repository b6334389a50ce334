"""Truncation at a named layer, checked against the libraries' own feature-extraction APIs."""

from __future__ import annotations

import copy

import pytest
import torch

from landscape.errors import UserError
from landscape.models.truncate import (
    PROBE_LAYER_ATTR,
    create_probe_model,
    layer_names,
    probe_backbone,
    probe_info,
    truncate_at,
)


@pytest.fixture
def resnet() -> torch.nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def test_torchvision_cut_equals_create_feature_extractor(resnet: torch.nn.Module) -> None:
    from torchvision.models.feature_extraction import create_feature_extractor

    reference = create_feature_extractor(copy.deepcopy(resnet), {"layer3": "f"})
    cut = truncate_at(resnet, "layer3", backbone="resnet18", input_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = reference(x)["f"].mean(dim=(2, 3))
        assert torch.allclose(cut(x), expected, atol=1e-6)
    assert not any(k.startswith(("layer4.", "fc.")) for k in cut.state_dict())


def test_timm_cut_equals_features_only_at_a_feature_level() -> None:
    import timm

    torch.manual_seed(0)
    full = timm.create_model("tf_efficientnet_lite0").eval()
    levels = [level["module"] for level in full.feature_info]  # type: ignore[union-attr]
    reference = timm.create_model(
        "tf_efficientnet_lite0", features_only=True, out_indices=(levels.index("blocks.4"),)
    ).eval()
    missing, _ = reference.load_state_dict(full.state_dict(), strict=False)
    assert not missing
    cut = truncate_at(full, "blocks.4", backbone="efficientnet_lite0", input_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(cut(x), reference(x)[0].mean(dim=(2, 3)), atol=1e-5)


def test_cut_keeps_names_hooks_and_copies(resnet: torch.nn.Module) -> None:
    blocks = [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]
    cut = truncate_at(resnet, "layer2", backbone="resnet18", input_size=64, blocks=blocks)
    assert getattr(cut, PROBE_LAYER_ATTR) == "layer2"
    assert type(cut.get_submodule("layer3")).__name__ == "Identity"
    seen: list[tuple[int, ...]] = []
    # Grad-CAM hooks a block by name: the block must still run as a module.
    cut.get_submodule("layer2").register_forward_hook(lambda m, i, o: seen.append(o.shape))
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        out = cut(x)
        assert out.shape == (1, 128) and seen == [(1, 128, 8, 8)]
        assert torch.equal(copy.deepcopy(cut)(x), out)


def test_unknown_layer_names_timms_feature_levels() -> None:
    with pytest.raises(UserError) as info:
        probe_backbone("efficientnet_lite0", "blocks.9", weights="none")
    message = str(info.value)
    assert "unknown layer 'blocks.9' for efficientnet_lite0" in message
    assert all(f"blocks.{i}" in message for i in (0, 1, 2, 4, 6))


def test_layer_not_called_by_forward_is_refused() -> None:
    import torchvision

    model = torchvision.models.resnet18()
    model.add_module("unused", torch.nn.Conv2d(3, 3, 1))
    assert "unused" in layer_names(model)
    with pytest.raises(UserError, match="not called by the network's forward pass"):
        truncate_at(model, "unused", backbone="resnet18", input_size=64)


def test_probe_info_and_probe_model_stop_at_the_layer() -> None:
    net, record = create_probe_model("tiny_cnn", 3, layer="features.1", in_features=64)
    assert record.source == "none"
    assert net.blocks() == [["features.0"], ["features.1"]]
    assert probe_info("tiny_cnn", None).blocks(net.backbone) != net.blocks()
    with torch.inference_mode():
        assert net(torch.randn(2, 3, 64, 64)).shape == (2, 3)
