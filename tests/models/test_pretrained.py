"""Preprocessing read from the libraries that publish the weights (no download)."""

from __future__ import annotations

import pytest

from landscape.models.info import IMAGENET_MEAN, IMAGENET_STD
from landscape.models.pretrained import ConfigRef, library_config, resolve_config


def test_torchvision_config_is_read_from_the_weights_transforms() -> None:
    import torchvision

    cfg = library_config("torchvision:ResNet18_Weights.IMAGENET1K_V1")
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert (cfg.input_size, cfg.resize_size, cfg.interpolation) == (224, 256, "bilinear")
    assert (cfg.mean, cfg.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert cfg.url == weights.url
    assert cfg.classifier is None  # torchvision does not name it


def test_timm_config_uses_timms_eval_resize() -> None:
    cfg = library_config("timm:tf_efficientnet_lite2.in1k")
    # input 260, crop_pct 0.89: timm's eval transform resizes to floor(260 / 0.89) = 292.
    assert (cfg.input_size, cfg.resize_size, cfg.interpolation) == (260, 292, "bicubic")
    assert (cfg.mean, cfg.std, cfg.classifier) == ((0.5,) * 3, (0.5,) * 3, "classifier")


def test_timm_hf_only_weights_get_their_hub_address() -> None:
    cfg = library_config("timm:convnext_tiny.in12k_ft_in1k")
    assert cfg.url == (
        "https://huggingface.co/timm/convnext_tiny.in12k_ft_in1k/resolve/main/model.safetensors"
    )


@pytest.mark.parametrize(
    "key", ["keras:resnet50", "timm:no_such_arch.in1k", "torchvision:ResNet18_Weights.NOPE"]
)
def test_unknown_keys_raise_key_error(key: str) -> None:
    with pytest.raises(KeyError):
        library_config(key)


def test_explicit_values_are_layered_over_the_source() -> None:
    ref = ConfigRef("timm:tf_efficientnet_lite0.in1k", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert ref.overrides() == {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    cfg = resolve_config(ref)
    assert (cfg.mean, cfg.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert (cfg.input_size, cfg.resize_size, cfg.classifier) == (224, 256, "classifier")


def test_a_config_without_source_must_be_complete() -> None:
    with pytest.raises(ValueError, match="lacks resize_size, interpolation, mean, std"):
        resolve_config(ConfigRef(None, input_size=64, classifier="fc"))
    with pytest.raises(ValueError, match="lacks classifier"):
        resolve_config(ConfigRef("torchvision:AlexNet_Weights.IMAGENET1K_V1"))
