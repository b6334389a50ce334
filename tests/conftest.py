"""Shared fixtures: real image files of every awkward kind, synthetic datasets, the CLI runner."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
INTEL = REPO.parent / "shared" / "datasets" / "intel-sample"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Weights and feature caches, and the data dir (keyframes of a PostgreSQL index), go to
    # per-session temp dirs, never the user's home.
    old = {name: os.environ.get(name) for name in ("LANDSCAPE_CACHE", "LANDSCAPE_HOME")}
    os.environ["LANDSCAPE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["LANDSCAPE_HOME"] = str(tmp_path_factory.mktemp("home"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real photos ``intel``, so ``-m "not intel"`` deselects them.

    The mark follows the fixture (directly or through ``intel_photo``), so no test can use the
    photos without it, and none needs its own path constant or ``skipif``.
    """
    for item in items:
        if "intel_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.intel)


@pytest.fixture(scope="session")
def intel_dir() -> Path:
    """The real photos of ../shared/datasets/intel-sample (skips when absent).

    Tests using it are marked ``intel`` automatically (see ``pytest_collection_modifyitems``).
    """
    if not INTEL.is_dir():
        pytest.skip(f"real photos not found at {INTEL}")
    return INTEL


@pytest.fixture
def intel_photo(intel_dir: Path) -> Path:
    """One real mountain photo."""
    return sorted((intel_dir / "mountain").glob("*.jpg"))[0]


@pytest.fixture
def synth_jpeg(tmp_path: Path) -> Path:
    """One photo-like 320x240 JPEG, for tests that need any JPEG file but no real content."""
    path = tmp_path / "photo.jpg"
    Image.fromarray(_photo_array(7, (320, 240))).save(path, quality=90)
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``landscape ARGS`` in-process as a user would; returns code, stdout, stderr."""
    from landscape.cli import main

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-per-folder synthetic dataset: 5 classes × 16 images, 96 px."""
    from landscape.data.synth import SynthSpec, generate_dataset

    out = tmp_path_factory.mktemp("synth") / "data"
    generate_dataset(out, SynthSpec(per_class=16, size=96, seed=3))
    return out


@pytest.fixture(scope="session")
def tiny_run(synth_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the tiny CNN (seconds), for tests that need any real bundle."""
    from landscape.config import load_train_config
    from landscape.train.trainer import fit

    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = load_train_config(
        None,
        {
            "data": str(synth_small),
            "out": str(out),
            "backbone": "tiny_cnn",
            "weights": "none",
            "policy": "all",
            "epochs": 2,
            "batch_size": 16,
            "progress": False,
            "num_workers": 0,
        },
    )
    fit(cfg)
    return out


def fit_scene_head(data: Path, out: Path) -> Path:
    """Fit a head that tells scene classes apart well (packaged EfficientNet-Lite0, frozen,
    logistic regression, C=1; seconds) on the class-per-folder ``data``; its bundle path."""
    from landscape.config import load_train_config
    from landscape.train.trainer import fit

    cfg = load_train_config(
        None,
        {
            "data": str(data),
            "out": str(out),
            "backbone": "efficientnet_lite0",
            "weights": "packaged",
            "policy": "frozen",
            "head": {"kind": "logreg", "C": 1.0},
            "progress": False,
            "num_workers": 0,
        },
    )
    return fit(cfg).bundle


@pytest.fixture(scope="session")
def scene_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run that tells the synthetic classes apart well (~20 s), for tests whose truth
    depends on correct labels (timelines)."""
    from landscape.data.synth import SynthSpec, generate_dataset

    data = tmp_path_factory.mktemp("scenes") / "data"
    generate_dataset(data, SynthSpec(per_class=16, size=160, seed=1))
    out = tmp_path_factory.mktemp("runs") / "scenes"
    fit_scene_head(data, out)
    return out


@dataclass
class OddImages:
    rgb_exif: Path
    png_alpha: Path
    grayscale: Path
    cmyk: Path
    tiff16: Path
    palette: Path
    truncated: Path
    zero: Path
    text: Path
    bomb: Path


def _photo_array(seed: int, size: tuple[int, int] = (80, 60)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, size[1])[:, None, None]
    base = np.concatenate([y * 200, (1 - y) * 180, np.full_like(y, 90)], axis=2)
    noise = rng.normal(0, 12, (size[1], size[0], 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _png_claiming(width: int, height: int) -> bytes:
    """A small real PNG whose header claims ``width``×``height`` (a decompression bomb)."""
    import struct
    import zlib

    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8  # signature, then the IHDR chunk: length(4) type(4) body(13) crc(4)
    body = bytearray(data[ihdr + 8 : ihdr + 21])
    body[0:8] = struct.pack(">II", width, height)
    data[ihdr + 8 : ihdr + 21] = body
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(body)))
    return bytes(data)


@pytest.fixture
def odd_images(tmp_path: Path) -> OddImages:
    """Real files of every awkward kind: EXIF-rotated JPEG, alpha PNG, L, CMYK, 16-bit TIFF,
    palette, truncated, zero-byte, a text file named .jpg and a decompression bomb."""
    d = tmp_path / "odd"
    d.mkdir()
    rgb = Image.fromarray(_photo_array(1))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° CW to display
    exif[0x010F] = "TestMake"
    rgb.save(d / "rotated.jpg", exif=exif, quality=90)
    rgba = Image.fromarray(_photo_array(2)).convert("RGBA")
    alpha = np.zeros((60, 80), np.uint8)
    alpha[:, 40:] = 255
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(d / "alpha.png")
    Image.fromarray(_photo_array(3)).convert("L").save(d / "gray.jpg")
    Image.fromarray(_photo_array(4)).convert("CMYK").save(d / "cmyk.jpg")
    wide = (np.linspace(0, 65535, 80 * 60).reshape(60, 80)).astype(np.uint16)
    Image.fromarray(wide).save(d / "deep.tif")
    Image.fromarray(_photo_array(5)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        d / "pal.png"
    )
    buf = io.BytesIO()
    Image.fromarray(_photo_array(6, (400, 300))).save(buf, "JPEG", quality=95)
    (d / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "zero.jpg").write_bytes(b"")
    (d / "notes.jpg").write_text("this is not an image\n")
    (d / "bomb.png").write_bytes(_png_claiming(30000, 30000))
    return OddImages(
        d / "rotated.jpg",
        d / "alpha.png",
        d / "gray.jpg",
        d / "cmyk.jpg",
        d / "deep.tif",
        d / "pal.png",
        d / "truncated.jpg",
        d / "zero.jpg",
        d / "notes.jpg",
        d / "bomb.png",
    )


def copy_tree(src: Path, dst: Path) -> Path:
    """Copy a read-only dataset to a writable place."""
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for the test: tiny matmuls on a busy 2-core machine otherwise
    spin-wait on each other (10 s instead of 0.4 s for the lr-find toy MLP)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
