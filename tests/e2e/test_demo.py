"""``landscape demo`` as a user runs it: synthesise, audit, train, evaluate, report, index."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult


def test_demo_evaluates_indexes_and_refuses_to_overwrite_without_force(
    run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out, "--per-class", "12", "--epochs", "2", "--no-serve")
    assert result.code == 0, result.err
    report = out / "run" / "eval" / "report.html"
    assert report.is_file() and report.stat().st_size > 10_000
    assert f"report: {report}" in result.out
    assert "test accuracy" in result.out
    assert (out / "run" / "eval" / "metrics.json").is_file()
    # The demo archive, indexed with the demo's bundle: 30 photos + the odd files.
    url = f"sqlite:///{out / 'landscape.db'}"
    assert "5/5" in result.out and "$ landscape search" in result.out
    found = run_cli("search", "--db", url, "--limit", "1000", "--json")
    assert found.code == 0, found.err
    hits = json.loads(found.out)
    photos = [h for h in hits if h["label"] is not None and h["media_type"] == "image"]
    assert len(photos) == 31  # 6 per class × 5 classes, and the PNG
    assert all(
        h["latitude"] is not None and h["captured_at"] for h in photos if "png" not in h["path"]
    )
    broken = json.loads(run_cli("search", "--db", url, "--status", "error", "--json").out)
    assert [Path(h["path"]).name for h in broken] == ["truncated.jpg"]
    # The survey video is indexed as a video, and the demo prints its timeline.
    videos = json.loads(run_cli("search", "--db", url, "--media", "video", "--json").out)
    assert [Path(h["path"]).name for h in videos] == ["survey-flight.mp4"]
    assert "survey-flight.mp4: " in result.out and "(dominant, " in result.out
    assert "00:00–" in result.out
    # ... and its timeline is in the index: segments, keyframes beside the database.
    (video,) = videos
    assert video["label"] and video["segments"]
    assert video["segments"][0]["start"] == 0 and video["segments"][-1]["end"] > 5
    assert "--media video --label" in result.out
    assert any((out / "landscape.keyframes").rglob("*.jpg"))

    stamp = (out / "run" / "bundle" / "bundle.json").stat().st_mtime_ns
    again = run_cli("demo", "--out", out, "--per-class", "12", "--epochs", "2", "--no-serve")
    assert again.code == 1
    assert again.err.strip().startswith("error: ") and "--force" in again.err
    assert len(again.err.strip().splitlines()) == 1
    assert (out / "run" / "bundle" / "bundle.json").stat().st_mtime_ns == stamp  # untouched

    forced = run_cli(
        "demo", "--out", out, "--per-class", "12", "--epochs", "2", "--force", "--no-index"
    )
    assert forced.code == 0, forced.err
    assert report.is_file()
    assert "4/4" in forced.out and "5/5" not in forced.out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_ends_by_serving_the_gui_with_a_printed_login(tmp_path: Path) -> None:
    """`make demo`'s last step: the GUI over the demo archive, an analyst login printed once."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    command = [
        sys.executable, "-m", "landscape", "demo", "--out", str(tmp_path / "demo"),
        "--per-class", "8", "--epochs", "1", "--port", str(port),
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": "300"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 600
        login = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode(errors="replace")
            if not line and proc.poll() is not None:
                break
            if (found := re.search(r"log in as analyst with password (\S+)", line)) is not None:
                login = found.group(1)
                break
        assert login is not None, "the demo did not print a login"
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"{base}/api/v1/files", timeout=5).status_code == 401
        from landscape.index.accounts import authenticate
        from landscape.index.db import open_index, session_factory

        url = f"sqlite:///{tmp_path / 'demo' / 'landscape.db'}"
        with session_factory(open_index(url, create=False))() as session:
            assert authenticate(session, "analyst", login) is not None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
