"""What an image file says about itself: size, format, EXIF, capture time and GPS position.

Reading the facts opens the file lazily (headers and EXIF, no full decode), then checks that the
pixel data is complete as cheaply as the format allows (a JPEG is decoded at 1/8 scale, a PNG
has its chunk CRCs checked), so a truncated or corrupt file is an error here rather than a
row that looks fine. EXIF comes from cameras, phones and editors of every age: every odd value
(zero denominators, blank dates, binary blobs, out-of-range coordinates) becomes ``None`` or is
dropped, never an exception.

Pixels for the classifier are decoded by :func:`load_for_model` through
:func:`landscape.data.io.open_image`, the project's one safe decoder.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, features

from landscape.data.io import checked_image, open_image
from landscape.errors import ImageDecodeError
from landscape.index.sniff import sniff_file

__all__ = [
    "ImageFacts",
    "extract_image",
    "gps_to_decimal",
    "load_for_model",
    "parse_exif_datetime",
    "wall_clock",
]

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_INTEROP_IFD = 0xA005
# Strings longer than this are cut: the table's text columns hold 128 characters.
_MAX_TEXT = 128
# Binary EXIF values up to this many bytes are kept as hex; longer ones (maker notes, thumbnails,
# ICC profiles) are dropped: they would bloat every row and nobody filters on them.
_MAX_HEX_BYTES = 64
# Text values (descriptions, an XMP packet in a TIFF) are cut at this length in the raw EXIF.
_MAX_EXIF_TEXT = 2048
_FIX = "remove or replace the file"


@dataclass
class ImageFacts:
    """The facts of one image file, as the ``media_metadata`` table stores them.

    ``width`` and ``height`` are as displayed (swapped when the EXIF orientation rotates the
    picture by 90°). ``captured_at`` is timezone-aware when the camera recorded its UTC offset,
    naive (local wall-clock time) otherwise. ``latitude``/``longitude`` are signed decimal
    degrees, ``altitude`` metres (negative below sea level). ``exif`` is the raw EXIF, tag
    names to JSON-serialisable values.
    """

    width: int
    height: int
    format: str | None = None
    mode: str | None = None
    captured_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length: float | None = None
    orientation: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    exif: dict[str, Any] = field(default_factory=dict)

    @property
    def captured_offset(self) -> int | None:
        """The camera's UTC offset in minutes, when it recorded one."""
        return wall_clock(self.captured_at)[1]

    def to_dict(self) -> dict[str, Any]:
        """The columns of a ``media_metadata`` row (without ``file_id`` and the place).

        ``captured_at`` becomes the camera's local wall-clock time (naive, what "taken on"
        filters compare with) and ``captured_offset`` its UTC offset in minutes, or None.
        """
        row = asdict(self)
        row["captured_at"], row["captured_offset"] = wall_clock(self.captured_at)
        return row


def wall_clock(captured_at: datetime | None) -> tuple[datetime | None, int | None]:
    """A capture time as the ``media_metadata`` row stores it: the local wall-clock time
    (naive) and, when the time carries one, its UTC offset in minutes."""
    if captured_at is None:
        return None, None
    offset = captured_at.utcoffset()
    minutes = None if offset is None else int(offset.total_seconds() // 60)
    return captured_at.replace(tzinfo=None), minutes


# --------------------------------------------------------------------------------------------------
# Pure helpers: numbers, GPS and dates from whatever EXIF holds.


def _number(value: Any) -> float | None:
    """A finite float from an IFDRational, a ``(num, den)`` pair or a number; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, tuple | list) and len(value) == 2:
        num, den = (_number(v) for v in value)
        if num is None or den is None or den == 0:
            return None
        value = num / den
    denominator = getattr(value, "denominator", 1)
    if denominator == 0:  # IFDRational(x, 0) is NaN, or raises in arithmetic
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def _text(value: Any, limit: int | None = _MAX_TEXT) -> str | None:
    """A clean string: bytes decoded, NULs (which PostgreSQL refuses) and padding stripped."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", " ").strip()
    if not cleaned:
        return None
    return cleaned[:limit] if limit is not None else cleaned


# Hemisphere letters that make a coordinate negative; N and E (or no letter) keep it positive.
_NEGATIVE_REFS = frozenset({"S", "W"})


def gps_to_decimal(dms: Any, ref: Any = None) -> float | None:
    """Signed decimal degrees from EXIF degrees/minutes/seconds and a hemisphere letter.

    ``dms`` may be three (or fewer) IFDRationals, ``(num, den)`` pairs, plain numbers, or a single
    number already in degrees (a bare pair of ints, ``(1397, 10)``, is one rational, as older
    EXIF libraries write it, not degrees and minutes). ``ref`` is ``"N"``/``"S"``/``"E"``/``"W"``
    (str or bytes, any case); ``"S"`` and ``"W"`` give a negative result. Returns None for a
    missing or malformed value, including a zero denominator.
    """
    if dms is None:
        return None
    if isinstance(dms, tuple | list) and dms and not _is_pair(dms):
        parts = [_number(part) for part in dms[:3]]
    else:
        parts = [_number(dms)]
    if not parts or any(part is None for part in parts):
        return None
    degrees = sum(p / 60**i for i, p in enumerate(parts) if p is not None)
    letter = (_text(ref) or "").upper()[:1]
    return -abs(degrees) if letter in _NEGATIVE_REFS else degrees


def _is_pair(value: Sequence[Any]) -> bool:
    # A bare (num, den) rational, e.g. ((33, 1)) flattened by some writers, not (deg, min).
    return len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _altitude(value: Any, ref: Any) -> float | None:
    metres = _number(value)
    if metres is None:
        return None
    # GPSAltitudeRef is a BYTE: 1 means below sea level. Pillow gives an int or raw bytes.
    below = ref in (1, b"\x01", "1") or (isinstance(ref, tuple) and ref[:1] == (1,))
    return -abs(metres) if below else metres


_DATETIME = re.compile(
    r"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?(?:[.,](\d+))?"
    r"\s*(Z|[+\-]\d{2}:?\d{2})?"
)
_OFFSET = re.compile(r"([+\-])(\d{2}):?(\d{2})")


def _tz(offset: Any) -> timezone | None:
    text = _text(offset)
    if text is None:
        return None
    if text.upper() == "Z":
        return UTC
    match = _OFFSET.fullmatch(text)
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    # Real offsets run from -12:00 to +14:00; anything else is a corrupt field.
    if delta > timedelta(hours=14) or int(minutes) >= 60:
        return None
    return timezone(-delta if sign == "-" else delta)


def _microseconds(digits: str | None) -> int:
    if not digits or not digits.isdigit():
        return 0
    return int((digits + "000000")[:6])


def parse_exif_datetime(value: Any, subsec: Any = None, offset: Any = None) -> datetime | None:
    """A ``datetime`` from an EXIF date (``"2023:07:14 18:02:11"``) or None when malformed.

    ``subsec`` is the SubSecTime field (digits of a fraction of a second, ``"123"`` → 0.123 s);
    ``offset`` the OffsetTime field (``"+10:00"``). The result is timezone-aware when a valid
    offset is given (or embedded in ``value``), naive otherwise. Blank, zeroed
    (``"0000:00:00 00:00:00"``) or impossible dates give None.
    """
    text = _text(value, limit=None)
    if text is None:
        return None
    match = _DATETIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, embedded = match.groups()
    sub = _text(subsec if not isinstance(subsec, int) else str(subsec))
    try:
        stamp = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            _microseconds(sub if sub is not None else fraction),
        )
    except ValueError:  # year 0, month 13, 25 o'clock...
        return None
    tz = _tz(offset) or _tz(embedded)
    return stamp.replace(tzinfo=tz) if tz is not None else stamp


# --------------------------------------------------------------------------------------------------
# Raw EXIF as JSON.

# UserComment starts with an 8-byte character code; "undefined" (NULs) usually means UTF-8.
_COMMENT_CODECS: tuple[tuple[bytes, str], ...] = (
    (b"ASCII\x00\x00\x00", "ascii"),
    (b"UNICODE\x00", "utf-16"),
    (b"JIS\x00\x00\x00\x00\x00", "shift_jis"),
    (b"\x00" * 8, "utf-8"),
)


def _user_comment(value: Any) -> Any:
    if isinstance(value, bytes):
        for prefix, codec in _COMMENT_CODECS:
            if value.startswith(prefix):
                text = value[len(prefix) :].decode(codec, "replace")
                return _text(text, limit=_MAX_EXIF_TEXT)
    return _json_value(value)


def _printable(raw: bytes) -> str | None:
    """ASCII stored as bytes (ExifVersion ``b"0230"``) as text; None for binary data."""
    stripped = raw.rstrip(b"\x00")
    if stripped and all(32 <= b < 127 for b in stripped):
        return stripped.decode("ascii")
    return None


def _json_value(value: Any) -> Any:
    """A JSON-serialisable form of an EXIF value, or None to drop it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return _text(value, limit=_MAX_EXIF_TEXT)
    if isinstance(value, bytes):
        text = _printable(value[:_MAX_EXIF_TEXT])
        if text is not None:
            return text
        return value.hex() if len(value) <= _MAX_HEX_BYTES else None
    if isinstance(value, tuple | list):
        items = [_json_value(v) for v in value]
        return items if all(item is not None for item in items) else None
    return _number(value)  # IFDRational, float; NaN and zero denominators are dropped


# IFD pointers, and the layout tags a TIFF's first IFD holds (strips, tiles, sample format):
# how the file is stored, not facts about the picture, and bulky for a big TIFF.
_SKIPPED_TAGS = frozenset(
    {_EXIF_IFD, _GPS_IFD, _INTEROP_IFD}
    | {0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0111, 0x0115, 0x0116, 0x0117, 0x011C}
    | {0x0140, 0x0142, 0x0143, 0x0144, 0x0145, 0x0152, 0x0153, 0x0201, 0x0202}
)
# Tags whose raw form needs its own reading; every other tag goes through _json_value.
_CONVERTERS: dict[int, Callable[[Any], Any]] = {0x9286: _user_comment}


def _named(tags: Mapping[int, Any], names: Mapping[int, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag, value in tags.items():
        if tag in _SKIPPED_TAGS:
            continue
        converted = _CONVERTERS.get(tag, _json_value)(value)
        if converted is not None:
            out[names.get(tag, f"0x{tag:04X}")] = converted
    return out


# --------------------------------------------------------------------------------------------------
# Facts from the three IFDs (base, Exif, GPS).

# Capture time candidates in order of preference: (date, sub-seconds, UTC offset) tags.
_CAPTURE_TAGS: tuple[tuple[int, int, int], ...] = (
    (0x9003, 0x9291, 0x9011),  # DateTimeOriginal, SubSecTimeOriginal, OffsetTimeOriginal
    (0x9004, 0x9292, 0x9012),  # DateTimeDigitized, SubSecTimeDigitized, OffsetTimeDigitized
    (0x0132, 0x9290, 0x9010),  # DateTime, SubSecTime, OffsetTime
)


def _captured_at(tags: Mapping[int, Any]) -> datetime | None:
    for date_tag, subsec_tag, offset_tag in _CAPTURE_TAGS:
        found = parse_exif_datetime(tags.get(date_tag), tags.get(subsec_tag), tags.get(offset_tag))
        if found is not None:
            return found
    return None


def _positive(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


def _iso(tags: Mapping[int, Any]) -> int | None:
    # ISOSpeedRatings (often a 1-tuple), else ISOSpeed, else RecommendedExposureIndex.
    for tag in (0x8827, 0x8833, 0x8832):
        value = tags.get(tag)
        number = _positive(value[0] if isinstance(value, tuple | list) and value else value)
        if number is not None:
            return round(number)
    return None


def _orientation(tags: Mapping[int, Any]) -> int | None:
    value = tags.get(0x0112)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _position(gps: Mapping[int, Any]) -> tuple[float | None, float | None, float | None]:
    lat = gps_to_decimal(gps.get(0x0002), gps.get(0x0001))
    lon = gps_to_decimal(gps.get(0x0004), gps.get(0x0003))
    altitude = _altitude(gps.get(0x0006), gps.get(0x0005))
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None, None, altitude
    if lat == 0 and lon == 0:
        # Cameras without a fix write zeros; 0°N 0°E is open ocean, not where anyone shot.
        return None, None, altitude
    return lat, lon, altitude


def _facts(img: Image.Image) -> ImageFacts:
    try:
        # PNG's getexif decodes every pixel in case an eXIf chunk follows the image data; the
        # base method reads the chunks before it, where writers put EXIF, without decoding.
        exif = Image.Image.getexif(img) if img.format == "PNG" else img.getexif()
        base = dict(exif)
        sub = dict(exif.get_ifd(_EXIF_IFD))
        gps = dict(exif.get_ifd(_GPS_IFD))
    except Exception:  # a malformed EXIF block must not hide the image: no facts from it
        base, sub, gps = {}, {}, {}
    tags = {**base, **sub}  # some writers put Exif-IFD tags in IFD0; the Exif IFD wins
    latitude, longitude, altitude = _position(gps)
    orientation = _orientation(base)
    width, height = img.size
    if orientation is not None and orientation >= 5:  # 5–8 rotate by 90°
        width, height = height, width
    return ImageFacts(
        width=width,
        height=height,
        format=img.format,
        mode=img.mode,
        captured_at=_captured_at(tags),
        camera_make=_text(tags.get(0x010F)),
        camera_model=_text(tags.get(0x0110)),
        lens=_text(tags.get(0xA434)),
        exposure_time=_positive(tags.get(0x829A)),
        f_number=_positive(tags.get(0x829D)),
        iso=_iso(tags),
        focal_length=_positive(tags.get(0x920A)),
        orientation=orientation,
        latitude=latitude,
        longitude=longitude,
        altitude=altitude,
        exif={
            **_named(base, ExifTags.TAGS),
            **_named(sub, ExifTags.TAGS),
            **_named(gps, ExifTags.GPSTAGS),
        },
    )


# --------------------------------------------------------------------------------------------------
# Checking the pixel data, as cheaply as each format allows.


def _check_jpeg(img: Image.Image, path: Path) -> None:
    # DCT scaling decodes at 1/8 size, yet reads every entropy-coded byte: truncation shows.
    img.draft("RGB", (1, 1))
    img.load()


def _check_png(img: Image.Image, path: Path) -> None:
    # verify() walks every chunk to IEND checking CRCs without inflating the pixels; it needs a
    # freshly opened file (reading EXIF has moved the first one on).
    with Image.open(path) as fresh:
        fresh.verify()


def _check_decode(img: Image.Image, path: Path) -> None:
    img.load()


_CHECKS: dict[str, Callable[[Image.Image, Path], None]] = {
    "JPEG": _check_jpeg,
    "MPO": _check_jpeg,
    "PNG": _check_png,
}


# --------------------------------------------------------------------------------------------------
# Opening files.

_HEIF_FORMATS = frozenset({"HEIC", "HEIF", "AVIF"})


@functools.cache
def _heif_opener() -> bool:
    """Register pillow-heif's opener once, if installed; True when HEIF files can be read."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def _heif_readable(fmt: str) -> bool:
    # Pillow reads AVIF itself when built with libavif; HEIC always needs the plugin.
    return _heif_opener() or (fmt == "AVIF" and bool(features.check("avif")))


def _prepare(path: Path) -> None:
    """Fail early on what Pillow would report badly; register the HEIF opener when needed."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise ImageDecodeError("file not found", path=path, fix="check the path") from exc
    if size == 0:
        raise ImageDecodeError("empty file (0 bytes)", path=path, fix=_FIX)
    fmt = sniff_file(path).format
    if fmt in _HEIF_FORMATS and not _heif_readable(fmt):
        raise ImageDecodeError(
            f"{fmt} images need the pillow-heif package",
            path=path,
            fix="pip install 'landscape[heif]' (or pillow-heif)",
        )


def extract_image(path: Path, *, verify: bool = True) -> ImageFacts:
    """Read the facts of the image at ``path`` without decoding it at full size.

    With ``verify`` (the default) the pixel data is also checked for completeness, cheaply
    (see the module docstring). Raises :class:`~landscape.errors.ImageDecodeError` naming the
    file for a missing, empty, unreadable, corrupt, truncated or oversized (decompression
    bomb) image, and for HEIC when ``pillow-heif`` is not installed.
    """
    path = Path(path)
    _prepare(path)
    with checked_image(path, path) as img:
        facts = _facts(img)
        if verify:
            _CHECKS.get(facts.format or "", _check_decode)(img, path)
        return facts


def load_for_model(path: Path, size: int) -> Image.Image:
    """The image at ``path`` upright and in RGB, decoded no larger than needed for ``size``.

    A JPEG is decoded with DCT scaling (``draft``) to the smallest power-of-two reduction that
    keeps both sides at least ``size`` pixels (a 1920×1080 photo for 224 decodes at 480×270,
    16 times fewer pixels); other formats decode at full size. The model's own preprocessing
    resizes the rest. Raises :class:`~landscape.errors.ImageDecodeError` like
    :func:`extract_image`.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1 pixel, got {size}")
    path = Path(path)
    _prepare(path)
    return open_image(path, draft=(size, size))
