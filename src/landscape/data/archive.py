"""A synthetic storage archive: dated campaign folders of photos with EXIF and GPS, plus the
broken and odd files a real share holds, and optionally a short survey video.

What ``landscape demo`` indexes, and what the index's tests and benchmarks run on. The photos
are :mod:`landscape.data.synth` landscapes (capture time, camera, GPS in the class's regions),
optionally enlarged to a camera resolution with a little sensor grain, so JPEG sizes and decode
costs are a camera's rather than a thumbnail's. The odd files are one of each kind the indexer
must record without stopping: a truncated JPEG, text named ``.jpg``, an empty ``.jpg``, a
folder named like an image, a PNG without EXIF and a plain text file.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from landscape.errors import UserError

from .synth import CLASSES, SynthSpec, generate_dataset
from .synth_video import ClipTruth, Scene, landscape_clip

__all__ = ["CAMPAIGNS", "ODD_FILES", "ArchiveSpec", "SyntheticArchive", "build_archive"]

#: Campaign folders the photos are spread over, in turn (one is nested, as shares often are).
CAMPAIGNS: tuple[str, ...] = (
    "2025-01-flight",
    "2024-05 coast campaign",
    "2025-06 survey/day-2",
)

#: The odd files, by name, and what the index should make of them.
ODD_FILES: dict[str, str] = {
    "truncated.jpg": "error (a JPEG cut after 300 bytes)",
    "fake.jpg": "other (text named like a JPEG)",
    "empty.jpg": "other (zero bytes)",
    "notes.txt": "other (field notes)",
    "plain.png": "image (a PNG without EXIF)",
    "folder.jpg": "not a file (a folder named like an image)",
}


@dataclass(frozen=True)
class ArchiveSpec:
    """What to build: photos per class, their pixel size, grain and the odd files."""

    per_class: int = 6
    #: the synthetic scene's side in pixels before enlarging
    size: int = 128
    #: enlarge every photo to this (width, height), e.g. (1920, 1080); None keeps ``size``
    resolution: tuple[int, int] | None = None
    #: ± sensor-noise amplitude (grey levels) added to enlarged photos; 0 for none
    grain: int = 0
    seed: int = 0
    odd_files: bool = True
    classes: tuple[str, ...] = CLASSES
    #: add a short survey flight (MP4: coast, then forest, then glacier, 4 s each)
    video: bool = False


@dataclass(frozen=True)
class SyntheticArchive:
    """What :func:`build_archive` wrote: the root, the photos and the odd files."""

    root: Path
    photos: tuple[Path, ...]
    odd: tuple[Path, ...] = field(default=())
    #: the video's path and what it shows, when the spec asked for one
    video: ClipTruth | None = None

    @property
    def files(self) -> int:
        """Regular files written (photos, video, odd files; the folder named like media
        excluded)."""
        video = 1 if self.video is not None else 0
        return len(self.photos) + video + sum(1 for p in self.odd if p.is_file())


def _enlarge(path: Path, spec: ArchiveSpec, rng: np.random.Generator) -> None:
    assert spec.resolution is not None
    with Image.open(path) as img:
        exif = img.getexif()
        big = img.convert("RGB").resize(spec.resolution, Image.Resampling.BICUBIC)
    if spec.grain:
        noise = rng.integers(-spec.grain, spec.grain + 1, (*big.size[::-1], 3))
        big = Image.fromarray(
            (np.asarray(big, dtype=np.int16) + noise).clip(0, 255).astype("uint8")
        )
    big.save(path, "JPEG", quality=88, exif=exif)


def _odd_files(root: Path, sample: Path) -> list[Path]:
    (root / "truncated.jpg").write_bytes(sample.read_bytes()[:300])
    (root / "fake.jpg").write_text("not a jpeg at all")
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("field notes\n")
    Image.new("RGB", (40, 30), (10, 120, 200)).save(root / "plain.png")
    (root / "folder.jpg").mkdir(exist_ok=True)
    return [root / name for name in ODD_FILES]


def build_archive(
    root: Path, spec: ArchiveSpec | None = None, progress: Callable[[int, int], None] | None = None
) -> SyntheticArchive:
    """Write a synthetic archive under ``root`` (created; it must not hold files already).

    Photos are named as :func:`~landscape.data.synth.generate_dataset` names them
    (``<class>_<00000>.jpg``) and dealt over :data:`CAMPAIGNS` in turn; ``progress(done,
    total)`` is called after each photo.
    """
    spec = spec or ArchiveSpec()
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError("exists and is not an empty folder", path=root, fix="choose a new folder")
    staging = root / ".staging"
    generate_dataset(
        staging,
        SynthSpec(per_class=spec.per_class, size=spec.size, seed=spec.seed, classes=spec.classes),
    )
    sources = sorted(staging.rglob("*.jpg"))
    rng = np.random.default_rng(spec.seed)
    photos: list[Path] = []
    for i, source in enumerate(sources):
        folder = root / CAMPAIGNS[i % len(CAMPAIGNS)]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / source.name
        shutil.move(str(source), target)
        if spec.resolution is not None:
            _enlarge(target, spec, rng)
        photos.append(target)
        if progress is not None:
            progress(i + 1, len(sources))
    shutil.rmtree(staging)
    odd = _odd_files(root, photos[0]) if spec.odd_files and photos else []
    video = None
    if spec.video:
        scenes = [Scene("coast", 4), Scene("forest", 4), Scene("glacier", 4)]
        path = root / CAMPAIGNS[0] / "survey-flight.mp4"
        # Tagged as a phone or drone writes it: capture time (UTC) and position (ISO 6709).
        tags = {"creation_time": "2025-01-14T10:32:05.000000Z", "location": "+48.3905-004.4860/"}
        video = landscape_clip(path, scenes, fps=10, size=(320, 180), seed=spec.seed, metadata=tags)
    return SyntheticArchive(root, tuple(photos), tuple(odd), video)
