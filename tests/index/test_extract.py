"""Facts of real image files: EXIF written by Pillow, GPS in every hemisphere, bad files."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, features
from PIL.TiffImagePlugin import IFDRational

from landscape.data.synth import SynthSpec, generate_dataset
from landscape.errors import ImageDecodeError
from landscape.index.extract import (
    ImageFacts,
    extract_image,
    gps_to_decimal,
    load_for_model,
    parse_exif_datetime,
    wall_clock,
)
from tests.conftest import OddImages, _png_claiming

R = IFDRational


def _photo(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(sum(size))
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _dms(value: float) -> tuple[R, R, R]:
    """Degrees, minutes and hundredths of seconds as cameras write them."""
    hundredths = round(abs(value) * 360_000)
    deg, rest = divmod(hundredths, 360_000)
    minutes, sec = divmod(rest, 6_000)
    return R(deg, 1), R(minutes, 1), R(sec, 100)


def _exif(
    lat: float | None = None,
    lon: float | None = None,
    *,
    altitude: float | None = None,
    rational: bool = True,
    base: dict[int, Any] | None = None,
    sub: dict[int, Any] | None = None,
    gps: dict[int, Any] | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    for tag, value in (base or {}).items():
        exif[tag] = value
    exif_ifd = exif.get_ifd(0x8769)
    for tag, value in (sub or {}).items():
        exif_ifd[tag] = value
    gps_ifd = exif.get_ifd(0x8825)
    if lat is not None and lon is not None:
        gps_ifd[0x0000] = b"\x02\x03\x00\x00"
        gps_ifd[0x0001] = "N" if lat >= 0 else "S"
        gps_ifd[0x0003] = "E" if lon >= 0 else "W"
        if rational:
            gps_ifd[0x0002], gps_ifd[0x0004] = _dms(lat), _dms(lon)
        else:  # decimal degrees in the first component, as some phone apps write them
            gps_ifd[0x0002] = (abs(lat), 0.0, 0.0)
            gps_ifd[0x0004] = (abs(lon), 0.0, 0.0)
    if altitude is not None:
        gps_ifd[0x0005] = 1 if altitude < 0 else 0
        gps_ifd[0x0006] = R(round(abs(altitude) * 10), 10)
    for tag, value in (gps or {}).items():
        gps_ifd[tag] = value
    return exif


def _jpeg(path: Path, exif: Image.Exif | bytes | None = None, size: tuple[int, int] = (64, 48)):
    params: dict[str, Any] = {"quality": 90}
    if exif is not None:
        params["exif"] = exif
    _photo(size).save(path, "JPEG", **params)
    return path


# --------------------------------------------------------------------------------------------------
# gps_to_decimal


@pytest.mark.parametrize(
    ("dms", "ref", "expected"),
    [
        ((R(33, 1), R(52, 1), R(1200, 100)), "S", -(33 + 52 / 60 + 12 / 3600)),
        (((151, 1), (12, 1), (3600, 100)), "E", 151 + 12 / 60 + 36 / 3600),
        ((22.0, 54.0, 0.0), b"S", -22.9),
        ((43.0, 12.0, 0.0), "w", -43.2),
        ((64, 6, 0), "N", 64.1),
        ((35.6895, 0, 0), "N", 35.6895),
        (R(1397, 10), "E", 139.7),  # a single value in degrees
        (12.5, None, 12.5),  # no hemisphere letter: as written
        ((R(10, 1), R(30, 1)), "N", 10.5),  # degrees and minutes only
        ((-33.5, 0, 0), "S", -33.5),  # the sign written twice is still south
    ],
)
def test_gps_to_decimal(dms: Any, ref: Any, expected: float):
    result = gps_to_decimal(dms, ref)
    assert result == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    "dms",
    [
        None,
        (),
        (R(33, 1), R(52, 0), R(12, 1)),  # zero denominator in Pillow's rational
        ((33, 1), (52, 0), (12, 1)),  # zero denominator in a raw pair
        (33, "north", 0),
        (float("nan"), 0, 0),
        "33 deg 52' 12\" S",
    ],
)
def test_gps_to_decimal_malformed_is_none(dms: Any):
    assert gps_to_decimal(dms, "S") is None


# --------------------------------------------------------------------------------------------------
# parse_exif_datetime


def test_parse_exif_datetime_naive_and_aware():
    assert parse_exif_datetime("2023:07:14 18:02:11") == datetime(2023, 7, 14, 18, 2, 11)
    with_subsec = parse_exif_datetime("2023:07:14 18:02:11", "045")
    assert with_subsec == datetime(2023, 7, 14, 18, 2, 11, 45_000)
    aware = parse_exif_datetime("2023:07:14 18:02:11", "5", "+10:00")
    assert aware == datetime(2023, 7, 14, 18, 2, 11, 500_000, tzinfo=timezone(timedelta(hours=10)))
    assert aware is not None and aware.astimezone(UTC).hour == 8
    west = parse_exif_datetime(b"2001:02:03 04:05:06\x00", None, "-03:30")
    assert west is not None and west.utcoffset() == -timedelta(hours=3, minutes=30)
    assert parse_exif_datetime("2020-01-02T03:04:05Z") == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "    :  :     :  :  ",
        "0000:00:00 00:00:00",
        "2023:13:01 00:00:00",
        "2023:02:30 12:00:00",
        "2023:01:01 25:00:00",
        "yesterday",
        12345,
        b"\x00\x00\x00",
    ],
)
def test_parse_exif_datetime_malformed_is_none(value: Any):
    assert parse_exif_datetime(value, "123", "+01:00") is None


def test_parse_exif_datetime_ignores_bad_subsec_and_offset():
    expected = datetime(2023, 7, 14, 18, 2, 11)
    assert parse_exif_datetime("2023:07:14 18:02:11", "abc", "   :  ") == expected
    assert parse_exif_datetime("2023:07:14 18:02:11", None, "+99:00") == expected
    assert parse_exif_datetime("2023:07:14 18:02:11", "", "nonsense") == expected


# --------------------------------------------------------------------------------------------------
# extract_image: EXIF written by Pillow


CITIES = {
    "sydney": (-33.8688, 151.2093),
    "rio": (-22.9068, -43.1729),
    "reykjavik": (64.1466, -21.9426),
    "tokyo": (35.6762, 139.6503),
}


@pytest.mark.parametrize("city", sorted(CITIES))
@pytest.mark.parametrize("rational", [True, False], ids=["rational", "float"])
def test_gps_in_every_hemisphere(tmp_path: Path, city: str, rational: bool):
    lat, lon = CITIES[city]
    path = _jpeg(tmp_path / f"{city}.jpg", _exif(lat, lon, rational=rational))
    facts = extract_image(path)
    assert facts.latitude == pytest.approx(lat, abs=1e-5)
    assert facts.longitude == pytest.approx(lon, abs=1e-5)
    assert facts.exif["GPSLatitudeRef"] == ("N" if lat >= 0 else "S")


def test_full_exif_of_a_camera_jpeg(tmp_path: Path):
    exif = _exif(
        -33.8688,
        151.2093,
        altitude=-12.5,
        base={0x010F: "Canon\x00", 0x0110: "  EOS R5  ", 0x0112: 6, 0x0132: "2020:01:01 00:00:00"},
        sub={
            0x9003: "2023:07:14 18:02:11",
            0x9291: "123",
            0x9011: "+10:00",
            0x829A: R(1, 250),
            0x829D: R(28, 10),
            0x8827: 400,
            0x920A: R(35, 1),
            0xA434: "RF24-105mm F4 L IS USM",
            0x9000: b"0230",
            0x927C: bytes(range(256)) * 4,  # a maker note: binary and big
            0x9286: b"ASCII\x00\x00\x00sunset over the harbour",
        },
    )
    path = _jpeg(tmp_path / "camera.jpg", exif, size=(64, 48))
    facts = extract_image(path)

    assert (facts.width, facts.height) == (48, 64)  # orientation 6: shown rotated
    assert (facts.format, facts.mode, facts.orientation) == ("JPEG", "RGB", 6)
    tz = timezone(timedelta(hours=10))
    assert facts.captured_at == datetime(2023, 7, 14, 18, 2, 11, 123_000, tzinfo=tz)
    assert (facts.camera_make, facts.camera_model) == ("Canon", "EOS R5")
    assert facts.lens == "RF24-105mm F4 L IS USM"
    assert facts.exposure_time == pytest.approx(1 / 250)
    assert facts.f_number == pytest.approx(2.8)
    assert facts.iso == 400
    assert facts.focal_length == pytest.approx(35.0)
    assert facts.altitude == pytest.approx(-12.5)
    assert facts.latitude == pytest.approx(-33.8688, abs=1e-5)

    raw = facts.exif
    json.dumps(raw, allow_nan=False)  # JSON-serialisable, no NaN
    assert raw["DateTimeOriginal"] == "2023:07:14 18:02:11"
    assert raw["ExifVersion"] == "0230"
    assert raw["UserComment"] == "sunset over the harbour"
    assert raw["Make"] == "Canon"
    assert raw["ExposureTime"] == pytest.approx(0.004)
    assert "MakerNote" not in raw
    assert "ExifOffset" not in raw and "GPSInfo" not in raw  # IFD pointers are not facts
    assert raw["GPSLatitude"] == pytest.approx([33.0, 52.0, 7.68])


def test_odd_exif_values_become_none(tmp_path: Path):
    exif = _exif(
        base={0x0112: 99, 0x010F: "\x00\x00"},
        sub={0x9003: "0000:00:00 00:00:00", 0x920A: R(5, 0), 0x829A: R(0, 1), 0x8827: 0},
        gps={0x0001: "S", 0x0002: (R(33, 1), R(52, 0), R(12, 1)), 0x0003: "E", 0x0004: _dms(151)},
    )
    facts = extract_image(_jpeg(tmp_path / "odd.jpg", exif))
    assert facts.orientation is None
    assert facts.camera_make is None
    assert facts.captured_at is None
    assert facts.focal_length is None and facts.exposure_time is None and facts.iso is None
    assert facts.latitude is None and facts.longitude is None  # half a position is no position
    json.dumps(facts.exif, allow_nan=False)
    assert "FocalLength" not in facts.exif and "GPSLatitude" not in facts.exif


def test_zeros_from_a_camera_without_a_fix_are_no_position(tmp_path: Path):
    exif = _exif(gps={0x0001: "N", 0x0002: (0.0, 0.0, 0.0), 0x0003: "E", 0x0004: (0.0, 0.0, 0.0)})
    facts = extract_image(_jpeg(tmp_path / "nofix.jpg", exif))
    assert (facts.latitude, facts.longitude) == (None, None)


def test_capture_time_falls_back_to_digitized_then_datetime(tmp_path: Path):
    digitized = _exif(
        base={0x0132: "2001:01:01 01:01:01"},
        sub={0x9003: "    :  :     :  :  ", 0x9004: "2010:10:10 10:10:10", 0x9292: "7"},
    )
    only_ifd0 = _exif(base={0x0132: "2001:01:01 01:01:01", 0x9010: "-05:00"})
    facts_digitized = extract_image(_jpeg(tmp_path / "d.jpg", digitized))
    facts_ifd0 = extract_image(_jpeg(tmp_path / "b.jpg", only_ifd0))
    assert facts_digitized.captured_at == datetime(2010, 10, 10, 10, 10, 10, 700_000)
    assert facts_ifd0.captured_at == datetime(
        2001, 1, 1, 1, 1, 1, tzinfo=timezone(-timedelta(hours=5))
    )


def test_a_corrupt_exif_block_gives_facts_without_exif(tmp_path: Path):
    path = _jpeg(tmp_path / "badexif.jpg", b"Exif\x00\x00" + b"\xde\xad\xbe\xef" * 20)
    facts = extract_image(path)
    assert (facts.width, facts.height, facts.format) == (64, 48, "JPEG")
    assert facts.captured_at is None and facts.latitude is None


@pytest.mark.parametrize(
    ("fmt", "mode", "suffix"),
    [
        ("PNG", "RGBA", ".png"),
        ("GIF", "P", ".gif"),
        ("BMP", "RGB", ".bmp"),
        ("TIFF", "RGB", ".tif"),
        ("WEBP", "RGB", ".webp"),
    ],
)
def test_other_formats(tmp_path: Path, fmt: str, mode: str, suffix: str):
    path = tmp_path / f"picture{suffix}"
    _photo((40, 30), mode).save(path, fmt)
    facts = extract_image(path)
    assert (facts.width, facts.height, facts.format, facts.mode) == (40, 30, fmt, mode)
    assert facts.captured_at is None and facts.latitude is None
    assert facts.exif == {}


def test_png_with_exif_and_the_wrong_name(tmp_path: Path):
    path = tmp_path / "actually_png.jpg"
    exif = _exif(64.1466, -21.9426, base={0x010F: "Fujifilm"})
    _photo((40, 30)).save(path, "PNG", exif=exif)
    facts = extract_image(path)
    assert facts.format == "PNG"
    assert facts.camera_make == "Fujifilm"
    assert facts.longitude == pytest.approx(-21.9426, abs=1e-5)


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_is_read_by_pillow(tmp_path: Path):
    path = tmp_path / "photo.avif"
    _photo((40, 30)).save(path, "AVIF", quality=60)
    facts = extract_image(path)
    assert (facts.width, facts.height, facts.format) == (40, 30, "AVIF")


def test_heic_with_pillow_heif(tmp_path: Path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = tmp_path / "phone.heic"
    _photo((40, 30)).save(path, "HEIF", quality=60)
    facts = extract_image(path)
    assert (facts.width, facts.height) == (40, 30)


def test_heic_without_pillow_heif_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from landscape.index import extract

    # As on an install without the `heif` extra: the import fails.
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    extract._heif_opener.cache_clear()
    path = tmp_path / "phone.heic"
    ftyp = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
    path.write_bytes(ftyp + b"\x00" * 200)
    try:
        with pytest.raises(
            ImageDecodeError, match=r"phone\.heic: HEIC images need the pillow-heif"
        ):
            extract_image(path)
    finally:
        extract._heif_opener.cache_clear()


# --------------------------------------------------------------------------------------------------
# Bad files


def _assert_one_line_naming(exc: pytest.ExceptionInfo[ImageDecodeError], path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(str(path))


def test_bad_files_raise_image_decode_error(odd_images: OddImages, tmp_path: Path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    cases = {
        odd_images.truncated: "corrupt or truncated",
        odd_images.zero: "empty file",
        odd_images.text: "not a readable image",
        odd_images.bomb: "decompression bomb",
        garbage: "not a readable image|corrupt or truncated",
        tmp_path / "missing.jpg": "file not found",
    }
    for path, reason in cases.items():
        with pytest.raises(ImageDecodeError, match=reason) as exc:
            extract_image(path)
        _assert_one_line_naming(exc, path)


def test_a_bomb_between_our_limit_and_pillows(tmp_path: Path):
    # 225 Mpx: above landscape's 200 Mpx limit, where Pillow only warns.
    path = tmp_path / "big.png"
    path.write_bytes(_png_claiming(15_000, 15_000))
    with pytest.raises(ImageDecodeError, match="15000x15000 pixels, above"):
        extract_image(path)


def test_truncation_is_found_by_verify_only(odd_images: OddImages, tmp_path: Path):
    # The header of a truncated JPEG is intact: only checking the pixel data tells.
    facts = extract_image(odd_images.truncated, verify=False)
    assert (facts.width, facts.height) == (400, 300)
    png = io.BytesIO()
    _photo((200, 150)).save(png, "PNG")
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    with pytest.raises(ImageDecodeError, match=r"cut\.png: corrupt or truncated"):
        extract_image(cut_png)
    assert extract_image(cut_png, verify=False).width == 200  # the header alone gives facts
    cut_tiff = tmp_path / "cut.tif"
    tiff = io.BytesIO()
    _photo((200, 150)).save(tiff, "TIFF")
    cut_tiff.write_bytes(tiff.getvalue()[: len(tiff.getvalue()) // 2])
    with pytest.raises(ImageDecodeError, match=r"cut\.tif"):
        extract_image(cut_tiff)


# --------------------------------------------------------------------------------------------------
# Records


def test_to_dict_is_a_media_metadata_row(tmp_path: Path):
    from landscape.index.schema import MediaMetadata

    exif = _exif(35.6762, 139.6503, sub={0x9003: "2024:03:01 06:30:00", 0x9011: "+09:00"})
    facts = extract_image(_jpeg(tmp_path / "tokyo.jpg", exif))
    row = facts.to_dict()
    columns = {column.name for column in MediaMetadata.__table__.columns}
    assert set(row) <= columns
    assert row["captured_at"] == datetime(2024, 3, 1, 6, 30)  # local wall-clock, naive
    assert row["captured_offset"] == 9 * 60
    assert facts.captured_offset == 540
    record = MediaMetadata(file_id=1, **row)
    assert record.latitude == pytest.approx(35.6762, abs=1e-5)
    json.dumps(row["exif"], allow_nan=False)


def test_image_facts_defaults():
    facts = ImageFacts(width=3, height=2)
    assert facts.captured_offset is None
    assert facts.to_dict()["captured_at"] is None and facts.to_dict()["exif"] == {}


# --------------------------------------------------------------------------------------------------
# What landscape.data.synth writes, read back


def test_reads_back_what_synth_wrote(tmp_path: Path):
    from landscape.data import synth

    generate_dataset(tmp_path, SynthSpec(per_class=2, size=64, classes=("coast", "glacier")))
    paths = sorted(tmp_path.glob("*/*.jpg"))
    assert len(paths) == 4
    for path in paths:
        cls = path.parent.name
        facts = extract_image(path)
        assert (facts.width, facts.height, facts.format) == (64, 64, "JPEG")
        assert (facts.camera_make, facts.camera_model) == ("LandscapeSynth", "LS-1")
        assert facts.exif["ImageDescription"] == f"synthetic {cls} landscape"
        stamp = facts.exif["DateTimeOriginal"]
        assert facts.captured_at == datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S")
        assert facts.latitude is not None and facts.longitude is not None
        # Within one of the class's boxes, up to the hundredth of a second synth rounds to.
        eps = 1 / 360_000
        assert any(
            lat0 - eps <= facts.latitude <= lat1 + eps
            and lon0 - eps <= facts.longitude <= lon1 + eps
            for lat0, lat1, lon0, lon1 in synth._GPS_REGIONS[cls]
        )


# --------------------------------------------------------------------------------------------------
# load_for_model


def test_load_for_model_uses_jpeg_draft(tmp_path: Path):
    path = _jpeg(tmp_path / "hd.jpg", size=(1920, 1080))
    image = load_for_model(path, 224)
    # DCT scaling by 1/4 keeps both sides at least 224: 16 times fewer pixels decoded.
    assert (image.size, image.mode) == ((480, 270), "RGB")
    assert load_for_model(path, 1080).size == (1920, 1080)


def test_load_for_model_applies_orientation(tmp_path: Path):
    path = _jpeg(tmp_path / "portrait.jpg", _exif(base={0x0112: 6}), size=(1920, 1080))
    assert load_for_model(path, 224).size == (270, 480)


def test_load_for_model_other_formats_and_errors(odd_images: OddImages, tmp_path: Path):
    image = load_for_model(odd_images.png_alpha, 224)
    assert (image.size, image.mode) == ((80, 60), "RGB")
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        load_for_model(odd_images.truncated, 64)
    with pytest.raises(ImageDecodeError, match="empty file"):
        load_for_model(odd_images.zero, 64)
    with pytest.raises(ValueError, match="size"):
        load_for_model(odd_images.png_alpha, 0)


def test_a_bare_pair_of_ints_is_one_rational():
    assert gps_to_decimal((1397, 10), "W") == pytest.approx(-139.7)


def test_awkward_modes_and_long_text(odd_images: OddImages, tmp_path: Path):
    modes = {
        odd_images.cmyk: ("JPEG", "CMYK"),
        odd_images.grayscale: ("JPEG", "L"),
        odd_images.tiff16: ("TIFF", "I;16"),
        odd_images.palette: ("PNG", "P"),
    }
    for path, expected in modes.items():
        facts = extract_image(path)
        assert (facts.format, facts.mode) == expected, path
        assert (facts.width, facts.height) == (80, 60)
    rotated = extract_image(odd_images.rgb_exif)
    assert (rotated.width, rotated.height, rotated.camera_make) == (60, 80, "TestMake")

    long_text = _exif(base={0x010E: "x" * 10_000, 0x010F: "M" * 500})
    facts = extract_image(_jpeg(tmp_path / "long.jpg", long_text))
    assert len(facts.exif["ImageDescription"]) == 2048
    assert facts.camera_make == "M" * 128  # the column's width


def test_wall_clock_splits_a_capture_time_into_local_time_and_offset() -> None:
    from datetime import datetime, timedelta, timezone

    local = datetime(2024, 5, 1, 10, 30)
    assert wall_clock(local) == (local, None)
    east = local.replace(tzinfo=timezone(timedelta(hours=5, minutes=30)))
    west = local.replace(tzinfo=timezone(-timedelta(hours=3)))
    assert wall_clock(east) == (local, 330) and wall_clock(west) == (local, -180)
    assert wall_clock(None) == (None, None)
