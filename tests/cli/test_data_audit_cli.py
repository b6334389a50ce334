"""``landscape data audit`` / ``landscape data stats`` through :func:`landscape.cli.main`."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landscape.cli import main
from tests.conftest import CliResult

AUDIT_KEYS = {
    "root",
    "layout",
    "classes",
    "splits",
    "images",
    "readable",
    "sizes",
    "modes",
    "corrupt",
    "skipped",
    "exact_duplicates",
    "near_duplicates",
    "near_bits",
    "leakage",
    "label_conflicts",
    "imbalance",
    "missing_classes",
    "mean",
    "std",
    "channel_stats",
    "findings",
}
STATS_KEYS = {
    "root",
    "layout",
    "classes",
    "splits",
    "images",
    "sizes",
    "modes",
    "mean",
    "std",
    "channel_stats",
    "unreadable",
}


@pytest.fixture
def dataset(tmp_path: Path, intel_dir: Path) -> Path:
    """train/test split of copied Intel photos, a truncated JPEG, a cross-split leak and
    twelve empty files (more than the human output lists)."""
    root = tmp_path / "ds"
    for cls in ("forest", "sea"):
        photos = sorted((intel_dir / cls).glob("*.jpg"))[60:65]
        for split, chunk in (("train", photos[:3]), ("test", photos[3:])):
            (root / split / cls).mkdir(parents=True)
            for src in chunk:
                shutil.copyfile(src, root / split / cls / src.name)
    leaked = next((root / "train" / "sea").iterdir())
    shutil.copyfile(leaked, root / "test" / "sea" / "copy_of_train.jpg")
    data = leaked.read_bytes()
    (root / "train" / "forest" / "broken.jpg").write_bytes(data[: len(data) // 3])
    for i in range(12):
        (root / "train" / "forest" / f"empty{i:02d}.jpg").write_bytes(b"")
    return root


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_audit_json_has_stable_keys_and_the_findings(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "data", "audit", str(dataset), "--json")
    assert code == 0, err
    report = json.loads(out)  # the progress bar is off with --json, stdout is pure JSON
    assert set(report) == AUDIT_KEYS
    assert report["layout"] == "splits" and report["classes"] == ["forest", "sea"]
    assert report["splits"] == {"train": {"forest": 4, "sea": 3}, "test": {"forest": 2, "sea": 3}}
    assert [c["path"] for c in report["corrupt"]] == ["train/forest/broken.jpg"]
    assert len(report["skipped"]) == 12
    assert report["leakage"] == [
        {
            "paths": ["test/sea/copy_of_train.jpg", report["leakage"][0]["paths"][1]],
            "splits": ["test", "train"],
            "kind": "exact",
        }
    ]
    assert report["findings"] == 1 + 12 + 1 + 1  # corrupt, skipped, exact group, leak
    assert err == ""


def test_audit_human_output_lists_findings_and_truncates_long_lists(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "data", "audit", str(dataset))
    assert code == 0, err
    assert "corrupt or unreadable images" in out and "broken.jpg" in out
    assert "leakage" in out and "copy_of_train.jpg" in out
    assert "…and 2 more" in out  # 12 skipped files, 10 shown
    assert "15 finding(s)" in out
    assert "auditing" in err  # the progress bar goes to stderr


def test_stats_json_and_human_output(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "data", "stats", str(dataset), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == STATS_KEYS
    assert summary["images"] == 12 and summary["unreadable"] == 1
    assert summary["channel_stats"]["split"] == "train"
    assert summary["channel_stats"]["images"] == 3 + 3  # train images that decode
    assert len(summary["mean"]) == 3 and len(summary["std"]) == 3

    code, out, err = _run(capsys, "data", "stats", str(dataset))
    assert code == 0, err
    assert "channel mean" in out and "150x150" in out and "forest" in out


def test_clean_dataset_reports_no_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / "clean" / split / cls).mkdir(parents=True)
            for i in range(2):
                noise = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
                Image.fromarray(noise).save(tmp_path / "clean" / split / cls / f"{i}.png")
    code, out, err = _run(capsys, "data", "audit", str(tmp_path / "clean"), "--json")
    assert code == 0, err
    assert json.loads(out)["findings"] == 0
    code, out, err = _run(capsys, "data", "audit", str(tmp_path / "clean"))
    assert code == 0 and "no findings" in out


@pytest.mark.parametrize("command", ["audit", "stats"])
@pytest.mark.parametrize("case", ["missing", "empty", "one_class"])
def test_unusable_dataset_is_one_error_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    path = tmp_path / case
    if case == "empty":
        path.mkdir()
    elif case == "one_class":
        (path / "forest").mkdir(parents=True)
        Image.new("RGB", (8, 8), (0, 120, 0)).save(path / "forest" / "a.png")
    for extra in ([], ["--json"]):
        code, out, err = _run(capsys, "data", command, str(path), *extra)
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), err
        assert str(path) in lines[0]
        assert "Traceback" not in err and out == ""


@pytest.fixture
def split_jpegs(tmp_path: Path) -> Path:
    """train/test folders of synthetic 256 px JPEGs (big enough for JPEG draft decoding to
    matter), one of them cropped to landscape format."""
    from landscape.data.synth import SynthSpec, generate_dataset

    source = generate_dataset(
        tmp_path / "synth", SynthSpec(per_class=3, size=256, seed=7, classes=("coast", "forest"))
    ).out
    root = tmp_path / "ds"
    for cls in ("coast", "forest"):
        files = sorted((source / cls).glob("*.jpg"))
        for split, chunk in (("train", files[:2]), ("test", files[2:])):
            (root / split / cls).mkdir(parents=True)
            for src in chunk:
                shutil.copyfile(src, root / split / cls / src.name)
    wide = next((root / "train" / "forest").iterdir())
    with Image.open(wide) as img:
        img.crop((0, 48, 256, 208)).save(wide, quality=90)
    return root


@pytest.mark.parametrize("command", ["stats", "audit"])
def test_printed_mean_std_are_what_normalize_dataset_uses(
    split_jpegs: Path, run_cli: Callable[..., CliResult], command: str
) -> None:
    from landscape.data.datasets import load_dataset
    from landscape.data.stats import channel_stats

    # What the trainer computes for --normalize dataset: channel_stats of the train split.
    index = load_dataset(split_jpegs)
    mean, std, n = channel_stats([s.path for s in index.samples if s.split == "train"])
    assert n == 4

    result = run_cli("data", command, split_jpegs, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["channel_stats"]["split"] == "train"
    assert (summary["mean"], summary["std"], summary["channel_stats"]["images"]) == (mean, std, n)

    result = run_cli("data", command, split_jpegs)
    assert result.code == 0, result.err
    line = next(text for text in result.out.splitlines() if text.startswith("channel mean"))
    assert re.findall(r"\d+\.\d+", line) == [f"{v:.4f}" for v in [*mean, *std]]
