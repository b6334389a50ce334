"""Options derived from TrainConfig, shared aliases, typed choices, one meaning per short flag."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from landscape.cli._app import app
from landscape.cli._config_options import TRAIN_FLAGS, set_path
from landscape.config import TrainConfig
from tests.conftest import CliResult

Run = Callable[..., CliResult]


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in getattr(group, "commands", {}).items():
        yield f"{prefix}{name}", command
        yield from _commands(command, f"{prefix}{name} ")


def test_every_train_flag_is_a_config_field_with_its_help() -> None:
    click_train = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    options = {opt: p for p in click_train.params for opt in p.opts}
    for path, flag in TRAIN_FLAGS.items():
        owner: Any = TrainConfig
        *parents, last = path.split(".")
        for part in parents:
            annotation = owner.model_fields[part].annotation
            owner = next(a for a in (*getattr(annotation, "__args__", ()), annotation) if
                         isinstance(a, type) and hasattr(a, "model_fields"))  # fmt: skip
        field = owner.model_fields[last]
        param = options[flag.decls[0]]
        assert field.description, path
        assert field.description.split(".")[0] in (param.help or ""), path


def test_one_meaning_per_short_flag() -> None:
    meaning: dict[str, set[str]] = {}
    for _, command in _commands(typer.main.get_command(app)):
        for param in getattr(command, "params", []):
            shorts = [o for o in param.opts if len(o) == 2]
            longs = [o for o in param.opts if o.startswith("--")]
            for short in shorts:
                meaning.setdefault(short, set()).update(longs[:1])
    assert meaning, "no short flags found"
    clashes = {short: longs for short, longs in meaning.items() if len(longs) > 1}
    assert not clashes


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--data", "d", "--policy", "some"],
        ["train", "--data", "d", "--crop", "side"],
        ["train", "--data", "d", "--head", "forest"],
        ["train", "--data", "d", "--lr", "-1"],
        ["train", "--data", "d", "--val-fraction", "1.5"],
        ["train", "--data", "d", "--C", "big"],
        ["train", "--data", "d", "--accelerator", "tpu"],
        ["train", "--data", "d", "--backbone", "resnet81"],
        ["tune", "--data", "d", "-b", "vgg61"],
        ["lr-find", "--data", "d", "--optimizer", "lamb"],
        ["tune", "--data", "d", "--crop", "side"],
        ["predict", "b", "x.jpg", "--backend", "tensorrt"],
        ["evaluate", "b", "--data", "d", "--backend", "tf"],
        ["evaluate", "b", "--data", "d", "--split", "holdout"],
        ["evaluate", "b", "--data", "d", "--device", "tpu:0"],
        ["study", "s.yaml", "--size", "huge"],
    ],
)
def test_invalid_choices_are_usage_errors(run_cli: Run, args: list[str]) -> None:
    result = run_cli(*args)
    assert result.code == 2, result.err
    assert "Invalid value" in result.err


def test_fraction_flags_set_the_split(run_cli: Run, synth_small: Path, tmp_path: Path) -> None:
    result = run_cli(
        "train", "-d", synth_small, "-b", "tiny_cnn", "-w", "none", "-e", "1",
        "--val-fraction", "0.25", "--test-fraction", "0.25", "--workers", "0",
        "-o", tmp_path / "run", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (40, 20, 20)
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "val_fraction: 0.25" in saved and "crop: center" in saved


def test_set_path_builds_nested_overrides() -> None:
    target: dict[str, Any] = {}
    set_path(target, "optim.lr", 0.1)
    set_path(target, "optim.name", "sgd")
    set_path(target, "seed", 3)
    assert target == {"optim": {"lr": 0.1, "name": "sgd"}, "seed": 3}
