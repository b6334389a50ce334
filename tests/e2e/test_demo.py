"""``landscape demo`` as a user runs it: synthesise, audit, train, evaluate, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult


def test_demo_evaluates_and_refuses_to_overwrite_without_force(
    run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out, "--per-class", "12", "--epochs", "2")
    assert result.code == 0, result.err
    report = out / "run" / "eval" / "report.html"
    assert report.is_file() and report.stat().st_size > 10_000
    assert f"report: {report}" in result.out
    assert "test accuracy" in result.out
    assert (out / "run" / "eval" / "metrics.json").is_file()

    stamp = (out / "run" / "bundle" / "bundle.json").stat().st_mtime_ns
    again = run_cli("demo", "--out", out, "--per-class", "12", "--epochs", "2")
    assert again.code == 1
    assert again.err.strip().startswith("error: ") and "--force" in again.err
    assert len(again.err.strip().splitlines()) == 1
    assert (out / "run" / "bundle" / "bundle.json").stat().st_mtime_ns == stamp  # untouched

    forced = run_cli("demo", "--out", out, "--per-class", "12", "--epochs", "2", "--force")
    assert forced.code == 0, forced.err
    assert report.is_file()
