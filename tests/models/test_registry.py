from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch

from landscape.errors import UserError
from landscape.models import _zoo
from landscape.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    get_backbone_info,
    list_backbones,
    register_backbone,
)

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
ALL = sorted(info.name for info in list_backbones())

#: published totals with the 1000-class head, in millions (torchvision's model tables, timm's
#: results tables / model cards); tiny_cnn is ours (its docstring states the figure).
PUBLISHED_M = {
    "vgg16": 138.36,
    "alexnet": 61.10,
    "resnet18": 11.69,
    "mobilenet_v2": 3.50,
    "efficientnet_lite0": 4.65,
    "efficientnet_lite1": 5.42,
    "efficientnet_lite2": 6.09,
    "efficientnet_b0": 5.29,
    "convnext_tiny": 28.59,
    "tiny_cnn": 0.37,
}


def _build_on_meta(name: str) -> torch.nn.Module:
    # Shapes without storage: VGG16 and ConvNeXt build in milliseconds.
    with torch.device("meta"):
        return get_backbone_info(name).builder()


def test_required_backbones_registered() -> None:
    assert set(ALL) >= REQUIRED
    assert set(PUBLISHED_M) == set(ALL), "add the published figure of a new backbone"


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_matches_the_built_network(name: str) -> None:
    info = get_backbone_info(name)
    model = _build_on_meta(name)
    counted = sum(p.numel() for p in model.parameters())
    assert counted == info.params
    assert round(counted / 1e6, 2) == PUBLISHED_M[name]


@pytest.mark.parametrize("name", [i.name for i in list_backbones() if i.family == "torchvision"])
def test_parameter_count_matches_torchvision_meta(name: str) -> None:
    import torchvision

    key = get_backbone_info(name).configs["hub"].key
    assert key is not None
    enum_name, _, member = key.removeprefix("torchvision:").partition(".")
    weights = getattr(torchvision.models, enum_name)[member]
    assert weights.meta["num_params"] == get_backbone_info(name).params


def test_models_list_reports_the_registry_counts(run_cli: Callable[..., Any]) -> None:
    import json

    res = run_cli("models", "list", "--json")
    assert res.code == 0, res.err
    rows = {row["name"]: row for row in json.loads(res.out)}
    assert {n: rows[n]["params"] for n in ALL} == {n: get_backbone_info(n).params for n in ALL}
    assert rows["convnext_tiny"]["input_size"] == 224


@pytest.mark.parametrize("name", ALL)
def test_blocks_and_classifier_name_modules_of_the_network(name: str) -> None:
    info = get_backbone_info(name)
    model = _build_on_meta(name)
    blocks = info.blocks(model)
    assert len(blocks) == info.n_blocks
    names = dict(model.named_modules())
    assert all(module in names for block in blocks for module in block)
    classifier = names[info.classifier]
    assert isinstance(classifier, torch.nn.Linear)
    assert classifier.out_features == 1000
    assert classifier.in_features == info.feature_dim


#: today's eval pipelines (input, resize, interpolation), kept when the metadata moved to the
#: libraries; convnext_tiny's resize is timm's floor(224 / 0.95) = 235 (was rounded to 236).
EXPECTED_PIPELINES = {
    "vgg16": (224, 256, "bilinear"),
    "alexnet": (224, 256, "bilinear"),
    "resnet18": (224, 256, "bilinear"),
    "mobilenet_v2": (224, 256, "bilinear"),
    "efficientnet_lite0": (224, 256, "bicubic"),
    "efficientnet_lite1": (240, 272, "bicubic"),
    "efficientnet_lite2": (260, 292, "bicubic"),
    "efficientnet_b0": (224, 256, "bicubic"),
    "convnext_tiny": (224, 235, "bicubic"),
    "tiny_cnn": (128, 146, "bilinear"),
}


@pytest.mark.parametrize("name", ALL)
def test_preprocessing_comes_from_the_weights_library(name: str) -> None:
    info = get_backbone_info(name)
    assert (info.input_size, info.resize_size, info.interpolation) == EXPECTED_PIPELINES[name]
    assert (info.mean, info.std) == (IMAGENET_MEAN, IMAGENET_STD)


def test_timm_values_are_read_not_copied() -> None:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg("convnext_tiny.in12k_ft_in1k")
    lite_cfg = get_pretrained_cfg("tf_efficientnet_lite1.in1k")
    assert cfg is not None and lite_cfg is not None
    info = get_backbone_info("convnext_tiny")
    assert info.config_for("hub").resize_size == int(224 // cfg.crop_pct)
    assert info.classifier == cfg.classifier == "head.fc"
    # The EfficientNet-Lite hub weights (timm's TF port) expect [-1, 1] inputs.
    lite = get_backbone_info("efficientnet_lite1").config_for("hub")
    assert (lite.mean, lite.std) == ((0.5,) * 3, (0.5,) * 3)
    assert lite.input_size == lite_cfg.input_size[-1]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_packaged_lite_resolution_agrees_with_its_authors_code(index: int) -> None:
    from efficientnet_lite_pytorch.utils import efficientnet_params

    info = get_backbone_info(f"efficientnet_lite{index}")
    assert (
        info.config_for("packaged").input_size
        == efficientnet_params(f"efficientnet-lite{index}")[2]
    )


@pytest.mark.parametrize("name", [i.name for i in list_backbones() if i.hub_url])
def test_hub_url_is_the_one_the_library_publishes(name: str) -> None:
    info = get_backbone_info(name)
    assert info.config_for("hub").url == info.hub_url


@pytest.mark.parametrize("name", ALL)
def test_explicit_values_only_where_the_source_is_silent_or_differs(name: str) -> None:
    from landscape.models.pretrained import library_config

    for ref in get_backbone_info(name).configs.values():
        if ref.key is None:
            continue
        published = library_config(ref.key)
        for field, value in ref.overrides().items():
            assert getattr(published, field) != value, f"{ref.key}: {field} copies the source"


def test_unknown_backbone_suggests_close_names() -> None:
    with pytest.raises(UserError, match="did you mean resnet18"):
        get_backbone_info("resnet81")
    assert get_backbone_info("EfficientNet-Lite0").name == "efficientnet_lite0"


def test_register_decorator_rejects_duplicates() -> None:
    meta = {
        f.name: getattr(get_backbone_info("resnet18"), f.name)
        for f in dataclasses.fields(get_backbone_info("resnet18"))
        if f.name != "builder"
    }
    with pytest.raises(ValueError, match="registered twice"):
        register_backbone(**meta)(lambda: torch.nn.Identity())


def test_register_all_ran_once_at_import() -> None:
    # The package registered the zoo; a second call would register every name twice.
    with pytest.raises(ValueError, match="registered twice"):
        _zoo.register_all()
    assert [i.name for i in list_backbones()] == ALL


def test_offline_flag() -> None:
    offline = {i.name for i in list_backbones() if i.offline}
    assert offline == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
