"""The synthetic archive: campaign folders of photos with EXIF and GPS, plus the odd files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from landscape.data.archive import CAMPAIGNS, ODD_FILES, ArchiveSpec, build_archive
from landscape.errors import UserError


def test_photos_are_dealt_over_dated_campaign_folders_with_exif_and_gps(tmp_path: Path) -> None:
    built = build_archive(tmp_path / "a", ArchiveSpec(per_class=2, size=64, seed=3))
    assert len(built.photos) == 10 and built.files == 10 + 5  # the folder.jpg is no file
    folders = {p.parent.relative_to(built.root).as_posix() for p in built.photos}
    assert folders == set(CAMPAIGNS)
    with Image.open(built.photos[0]) as img:
        exif = img.getexif()
        assert img.size == (64, 64)
        assert exif.get_ifd(0x8769)[0x9003]  # DateTimeOriginal
        assert exif.get_ifd(0x8825)[0x0001] in ("N", "S")  # GPS latitude reference
    assert {p.name for p in built.odd} == set(ODD_FILES)
    assert (built.root / "folder.jpg").is_dir() and (built.root / "empty.jpg").stat().st_size == 0
    assert len((built.root / "truncated.jpg").read_bytes()) == 300


def test_enlarged_photos_have_the_camera_resolution_grain_and_keep_their_exif(
    tmp_path: Path,
) -> None:
    spec = ArchiveSpec(per_class=1, size=64, resolution=(320, 180), grain=3, odd_files=False)
    built = build_archive(tmp_path / "a", spec)
    assert built.odd == () and len(built.photos) == 5
    smooth = build_archive(
        tmp_path / "b", ArchiveSpec(per_class=1, size=64, resolution=(320, 180), odd_files=False)
    )
    for grainy, plain in zip(built.photos, smooth.photos, strict=True):
        with Image.open(grainy) as img:
            assert img.size == (320, 180) and img.getexif().get_ifd(0x8825)
        # Grain makes a camera's file sizes: noise costs JPEG bits.
        assert grainy.stat().st_size > plain.stat().st_size


def test_a_folder_with_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not an empty folder"):
        build_archive(tmp_path, ArchiveSpec(per_class=1, size=64))
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_survey_video_is_a_real_clip_with_its_truth(tmp_path: Path) -> None:
    import av

    built = build_archive(tmp_path / "a", ArchiveSpec(per_class=1, size=64, video=True))
    assert built.video is not None and built.video.path.parent.name == CAMPAIGNS[0]
    assert [label for _, _, label in built.video.segments] == ["coast", "forest", "glacier"]
    assert built.files == 5 + 1 + 5
    with av.open(str(built.video.path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 120
