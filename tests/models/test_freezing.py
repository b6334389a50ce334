from __future__ import annotations

import pytest
import torch

from landscape.errors import ConfigError
from landscape.models.freezing import parse_policy
from landscape.models.net import create_model


def test_parse_policy() -> None:
    assert parse_policy("frozen").name == "frozen"
    assert parse_policy("ALL").name == "all"
    assert parse_policy("deepest:2").trainable_blocks == 2
    for bad in ("deepest:0", "deepest", "some"):
        with pytest.raises(ConfigError):
            parse_policy(bad)


def _bn_stats(net: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {
        k: v.clone()
        for k, v in net.state_dict().items()
        if k.startswith(prefix) and ("running_" in k or "num_batches" in k)
    }


def _train_steps(net: torch.nn.Module, steps: int = 3) -> None:
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    net.train()
    for _ in range(steps):
        x = torch.randn(4, 3, 64, 64) * 3 + 1
        loss = torch.nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 0]))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_frozen_blocks_keep_bit_identical_bn_statistics() -> None:
    torch.manual_seed(0)
    net, _ = create_model("resnet18", 3, weights="none")
    net.freeze(parse_policy("deepest:1"), bn="freeze")
    frozen_before = _bn_stats(net, "backbone.layer3")
    trained_before = _bn_stats(net, "backbone.layer4")
    weights_before = net.backbone.layer3[0].conv1.weight.clone()
    _train_steps(net)
    for key, value in _bn_stats(net, "backbone.layer3").items():
        assert torch.equal(value, frozen_before[key]), key
    assert torch.equal(net.backbone.layer3[0].conv1.weight, weights_before)
    changed = _bn_stats(net, "backbone.layer4")
    assert any(not torch.equal(changed[k], trained_before[k]) for k in changed)
    assert not net.backbone.layer3.training and net.backbone.layer4.training


def test_bn_train_policy_lets_statistics_drift() -> None:
    torch.manual_seed(0)
    net, _ = create_model("resnet18", 3, weights="none")
    net.freeze(parse_policy("frozen"), bn="train")
    before = _bn_stats(net, "backbone.layer1")
    _train_steps(net, 1)
    after = _bn_stats(net, "backbone.layer1")
    assert any(not torch.equal(after[k], before[k]) for k in after)
    assert all(not p.requires_grad for p in net.backbone.parameters())


@pytest.mark.parametrize(
    ("policy", "trainable_prefixes"),
    [
        ("frozen", set()),
        ("deepest:2", {"layer3", "layer4"}),
        ("all", {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}),
    ],
)
def test_policies_select_blocks(policy: str, trainable_prefixes: set[str]) -> None:
    net, _ = create_model("resnet18", 3, weights="none")
    net.freeze(parse_policy(policy))
    trainable = {n.split(".")[0] for n, p in net.backbone.named_parameters() if p.requires_grad}
    assert trainable == trainable_prefixes
    assert all(p.requires_grad for p in net.head.parameters())
    counts = net.param_counts()
    assert counts["trainable"] <= counts["total"]
