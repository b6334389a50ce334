"""Fine-tuning from a trained bundle: ``TrainConfig.init`` / ``landscape train --init``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from landscape.config import HeadSpec, TrainConfig
from landscape.errors import ConfigError
from landscape.models.bundle import build_model, load_bundle
from landscape.train.init_from import base_head_spec, start_from_bundle
from tests.conftest import CliResult


def test_start_from_bundle_keeps_backbone_and_class_rows(scene_run: Path) -> None:
    bundle = load_bundle(scene_run / "bundle")
    base = build_model(bundle)
    head = base_head_spec(bundle.meta)
    assert head == HeadSpec(kind="linear", dropout=0.0)  # a logreg baseline's stored form
    classes = [*reversed(bundle.classes), "tundra"]
    net, record, pre = start_from_bundle(scene_run / "bundle", "efficientnet_lite0", classes, head)
    for (name, a), b in zip(
        base.backbone.state_dict().items(), net.backbone.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    old_w = base.head.fc.weight.detach()
    new_w = net.head.fc.weight.detach()
    for i, name in enumerate(classes[:-1]):
        assert torch.equal(new_w[i], old_w[bundle.classes.index(name)])
    assert not any(torch.equal(new_w[-1], row) for row in old_w)  # a new class: fresh row
    assert record.source == "bundle" and record.location == bundle.model_id
    assert pre == bundle.preprocessing


def test_start_from_bundle_names_a_backbone_mismatch(scene_run: Path) -> None:
    with pytest.raises(ConfigError, match="pass --backbone efficientnet_lite0"):
        start_from_bundle(scene_run / "bundle", "tiny_cnn", ["a", "b"], HeadSpec())


def test_a_probe_on_a_cut_layer_cannot_be_fine_tuned() -> None:
    meta = {"head": {"kind": "sklearn", "estimator": "logreg", "layer": "blocks.5"}}
    with pytest.raises(ConfigError, match=r"logreg probe on the backbone layer blocks\.5"):
        base_head_spec(meta)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"head": {"kind": "logreg"}}, "init fine-tunes a network"),
        ({"weights": "packaged"}, "either init"),
    ],
)
def test_init_conflicts_are_config_errors(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainConfig(data=Path("x"), init=Path("b"), **extra)  # type: ignore[arg-type]


def test_train_init_cli_fine_tunes_a_bundle(
    tiny_run: Path, synth_small: Path, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    res = run_cli(
        "train",
        "--data", str(synth_small),
        "--backbone", "tiny_cnn",
        "--init", str(tiny_run / "bundle"),
        "--policy", "all",
        "--epochs", "1",
        "--workers", "0",
        "--out", str(tmp_path / "ft"),
        "--json",
    )  # fmt: skip
    assert res.code == 0, res.err
    meta = json.loads((tmp_path / "ft" / "bundle" / "bundle.json").read_text())
    base = json.loads((tiny_run / "bundle" / "bundle.json").read_text())
    assert meta["weights"] == {
        "source": "bundle",
        "location": base["model_id"],
        "sha256": base["files"]["model.safetensors"],
    }
    assert meta["preprocessing"] == base["preprocessing"]
    assert meta["model_id"] != base["model_id"]
