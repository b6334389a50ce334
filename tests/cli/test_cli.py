from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from landscape.cli._app import app
from tests.conftest import CliResult

Run = Callable[..., CliResult]


#: Every command of ``landscape``, and the subcommands of each group.
COMMANDS: dict[str, set[str]] = {
    "data": {"audit", "download", "export", "split", "stats", "synth"},
    "db": {"check", "current", "upgrade"},
    "demo": set(),
    "evaluate": set(),
    "export": set(),
    "index": set(),
    "lr-find": set(),
    "models": {"list"},
    "predict": set(),
    "registry": {"activate", "add", "list", "promote", "reclassify", "remove", "rollback"},
    "retrain": set(),
    "search": set(),
    "serve": set(),
    "study": set(),
    "train": set(),
    "tune": set(),
    "users": {"add", "list", "passwd", "remove", "token"},
    "watch": set(),
}


def _listed(help_text: str) -> list[str]:
    """Names in the command panels of a rich help page (every panel but Options)."""
    names: list[str] = []
    panel = ""
    for line in help_text.splitlines():
        if title := re.match(r"^╭─ (.+?) ─", line):
            panel = title.group(1)
        elif panel != "Options" and (row := re.match(r"^│ ([a-z][\w-]*)  ", line)):
            names.append(row.group(1))
    return names


def test_registered_commands_are_the_documented_set() -> None:
    registered = getattr(typer.main.get_command(app), "commands", {})
    assert set(registered) == set(COMMANDS)
    for name, subcommands in COMMANDS.items():
        assert set(getattr(registered[name], "commands", {})) == subcommands, name


def test_help_lists_every_command_without_importing_torch() -> None:
    code = (
        "import sys; from landscape.cli import main; rc = main(['--help']); "
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, 'heavy import'; "
        "print('=====', flush=True); "
        "main(['data', '--help']); assert 'torch' not in sys.modules"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100", "TERM": "dumb"},
    )
    assert out.returncode == 0, out.stderr
    root_help, data_help = out.stdout.split("=====")
    assert sorted(_listed(root_help)) == sorted(COMMANDS)
    assert sorted(_listed(data_help)) == sorted(COMMANDS["data"])


@pytest.mark.parametrize(
    "command",
    [[name] for name in COMMANDS] + [[g, sub] for g, subs in COMMANDS.items() for sub in subs],
    ids=" ".join,
)
def test_every_command_has_help(run_cli: Run, command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.code == 0, result.err
    assert f"Usage: landscape {' '.join(command)}" in result.out


def test_version(run_cli: Run) -> None:
    result = run_cli("--version")
    assert result.code == 0 and result.out.startswith("landscape 0.")


def test_export_of_an_index_without_reviews_is_one_line(run_cli: Run, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    assert run_cli("db", "upgrade", "--db", db).code == 0
    result = run_cli("data", "export", str(tmp_path / "out"), "--db", db)
    assert result.code == 1
    assert "no reviewed" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "out").exists()


def test_usage_error_exit_2(run_cli: Run) -> None:
    assert run_cli("train", "--no-such-flag").code == 2


def test_models_list_json(run_cli: Run) -> None:
    result = run_cli("models", "list", "--json")
    rows = {r["name"]: r for r in json.loads(result.out)}
    assert rows["efficientnet_lite0"]["offline"] is True
    assert rows["resnet18"]["params"] == 11_689_512
    assert run_cli("models", "list").code == 0


def test_synth_train_predict_as_a_user(run_cli: Run, tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_cli("data", "synth", data, "--per-class", "10", "--size", "96", "--json")
    assert result.code == 0 and json.loads(result.out)["images"] == 50
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "--data",
        data,
        "--backbone",
        "efficientnet_lite0",
        "--weights",
        "packaged",
        "--policy",
        "frozen",
        "--epochs",
        "3",
        "--seed",
        "1",
        "--out",
        out,
        "--json",
    )
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert Path(summary["bundle"]) == out / "bundle"
    assert (out / "bundle" / "bundle.json").is_file()
    result = run_cli(
        "predict", out / "bundle", data / "coast", data / "forest" / "forest_00000.jpg", "--json"
    )
    rows = json.loads(result.out)
    assert len(rows) == 11
    assert {"path", "label", "confidence", "probabilities", "is_unknown"} <= set(rows[0])
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-5
    human = run_cli("predict", out / "bundle", data / "coast" / "coast_00001.jpg")
    assert "coast_00001.jpg:" in human.out


def test_user_errors_are_one_line(run_cli: Run, tmp_path: Path, tiny_run: Path) -> None:
    cases = [
        ("train", "--data", tmp_path / "missing", "--out", tmp_path / "o"),
        ("predict", tiny_run / "bundle", tmp_path / "nope.jpg"),
        ("predict", tmp_path / "no-bundle", tiny_run / "split.csv"),
        ("train",),
    ]
    for args in cases:
        result = run_cli(*args)
        assert result.code == 1, args
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.err)


def test_corrupt_file_in_predict_is_skipped(
    run_cli: Run, tmp_path: Path, tiny_run: Path, synth_small: Path
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    good = next((synth_small / "desert").glob("*.jpg"))
    (folder / "good.jpg").write_bytes(good.read_bytes())
    result = run_cli("predict", tiny_run / "bundle", folder, "--json")
    assert result.code == 0
    rows = json.loads(result.out)
    assert [("error" in r) for r in rows] == [True, False]


def test_debug_shows_traceback(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "landscape", "--debug", "data", "split", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "Traceback" in out.stderr
