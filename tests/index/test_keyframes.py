"""Where the index keeps keyframes and its spill area: paths, names, atomic writes, cleanup."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from landscape.index.keyframes import (
    clear_stale_spills,
    keyframe_name,
    keyframe_root,
    remove_keyframes,
    spill_dir,
    write_keyframe,
)


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), (10, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_keyframes_live_beside_a_sqlite_index_else_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    assert keyframe_root(f"sqlite:///{tmp_path / 'archive.db'}") == tmp_path / "archive.keyframes"
    assert keyframe_root("postgresql+psycopg://me@db:5432/x") == tmp_path / "home" / "keyframes"
    assert keyframe_root("sqlite://") == tmp_path / "home" / "keyframes"  # in memory


def test_names_are_content_addressed_and_safe() -> None:
    digest = "ab" + "0" * 62
    assert keyframe_name("efficientnet_lite0-59c1", digest, 3) == (
        f"efficientnet_lite0-59c1/ab/{digest}-3.jpg"
    )
    odd = keyframe_name("../../etc/passwd", digest, 1)
    folder = odd.split("/")[0]
    assert odd.count("/") == 2 and not folder.startswith(".") and folder.endswith("etc_passwd")


def test_writes_are_atomic_and_removal_stays_inside_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "kf"
    name = keyframe_name("m", "cd" + "1" * 62, 1)
    write_keyframe(root, name, _jpeg())
    with Image.open(root / name) as picture:
        assert picture.format == "JPEG" and picture.size == (32, 18)
    assert not list((root / name).parent.glob(".part-*"))  # no temporary left behind
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    assert remove_keyframes(root, [name, "../precious.txt", "m/zz/gone.jpg"]) == 1
    assert not (root / name).exists() and outside.read_text() == "keep me"


def test_a_killed_runs_spill_is_cleared_and_a_fresh_one_made(tmp_path: Path) -> None:
    root = tmp_path / "kf"
    stale = root / ".spill-999999"
    stale.mkdir(parents=True)
    (stale / "frames.u8").write_bytes(b"x" * 100)
    write_keyframe(root, "m/ab/kept.jpg", _jpeg())
    clear_stale_spills(root)
    assert not stale.exists() and (root / "m/ab/kept.jpg").is_file()
    fresh = spill_dir(root)
    assert fresh.is_dir() and fresh.parent == root and not any(fresh.iterdir())
    clear_stale_spills(tmp_path / "nowhere")  # no folder yet: nothing to do
