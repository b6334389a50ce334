"""``landscape study`` and ``landscape tune`` as a user runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import CliResult

Run = Callable[..., CliResult]


# Small models on a shared 2-core machine: one torch thread avoids oversubscription.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _study_file(tmp_path: Path, **over: object) -> Path:
    data: dict[str, object] = {
        "name": "cli",
        "data": "synth",
        "base": {"backbone": "tiny_cnn", "weights": "none", "policy": "all", "batch_size": 8},
        "grid": {"optim.name": ["sgd", "adam"]},
        "seeds": [0],
        **over,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_study_help_is_fast_and_has_examples(run_cli: Run) -> None:
    result = run_cli("study", "--help")
    assert result.code == 0
    assert "--jobs" in result.out and "--size" in result.out and "configs/" in result.out
    assert run_cli("tune", "--help").code == 0


def test_study_unknown_key_exits_1_with_one_line(run_cli: Run, tmp_path: Path) -> None:
    path = _study_file(tmp_path, evaluate={"latncy": False})
    result = run_cli("study", path, "--out", tmp_path / "out")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "evaluate.latncy" in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "out").exists()


def test_study_bad_options(run_cli: Run, tmp_path: Path) -> None:
    path = _study_file(tmp_path)
    assert run_cli("study", path, "--size", "huge").code == 2
    missing = run_cli("study", tmp_path / "nope.yaml")
    assert missing.code == 1 and "not found" in missing.err
    no_data = run_cli("study", path, "--data", tmp_path / "absent", "--out", tmp_path / "o")
    assert no_data.code == 1 and "dataset not found" in no_data.err


def test_study_runs_reports_and_resumes(run_cli: Run, tmp_path: Path) -> None:
    # Parallel processes are exercised by the paper study test (spawning costs seconds here).
    path = _study_file(tmp_path, grid={"optim.name": ["adam"]})
    out = tmp_path / "out"
    result = run_cli("study", path, "--out", out, "--size", "tiny", "--jobs", "1", "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert payload["counts"] == {"runs": 1, "ok": 1, "failed": 0, "skipped": 0}
    assert [r["setting"] for r in payload["rows"]] == ["adam"]
    assert payload["rows"][0]["accuracy_mean"] is not None
    assert (out / "results.html").is_file() and (out / "results.md").is_file()

    again = run_cli("study", path, "--out", out, "--size", "tiny", "--no-progress")
    assert again.code == 0, again.err
    assert "1 already finished, 0 to do" in again.err
    assert "adam" in again.out and "report:" in again.out


def test_study_where_every_run_fails_exits_1(run_cli: Run, tmp_path: Path) -> None:
    path = _study_file(tmp_path, base={"backbone": "no_such_net", "weights": "none"})
    result = run_cli("study", path, "--out", tmp_path / "out", "--size", "tiny", "--no-progress")
    assert result.code == 1
    assert "all 2 runs of the study failed" in result.err and "no_such_net" in result.err
    assert (tmp_path / "out" / "results.md").is_file()  # the report still shows the failures


def test_tune_cli(run_cli: Run, synth_small: Path, tmp_path: Path) -> None:
    assert run_cli("tune", "--trials", "1").code == 1  # no dataset
    out = tmp_path / "tune"
    result = run_cli(
        "tune", "--data", synth_small, "--trials", "1", "--epochs", "2", "--out", out, "--json"
    )
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["best_trial"] == 0 and summary["trials"][0]["default"]
    assert summary["improvement"] == 0.0
    assert (out / "best.yaml").is_file() and (out / "trials.csv").is_file()
    table = run_cli("tune", "--data", synth_small, "--trials", "1", "--epochs", "2", "--out", out)
    assert table.code == 0 and "best: trial 0" in table.out
