"""What a video file says about itself: size, codec, frame rate, duration, capture time and GPS.

The counterpart of :mod:`landscape.index.extract` for videos, filling the same
``media_metadata`` row. Everything comes from the container's headers as FFmpeg (through PyAV)
reads them when it opens the file; no frame is decoded here (decoding frames for the classifier
is :mod:`landscape.inference.video`'s job). A file that opens gives its facts even when it is cut
short further on, so the decoder can say later how much of it is usable.

Phones and cameras write their metadata as container tags: the capture time (``creation_time``,
or Apple's ``com.apple.quicktime.creationdate`` with the local UTC offset), the position as an
ISO 6709 string (``location``, ``com.apple.quicktime.location.ISO6709``) and the device
(``com.apple.quicktime.make``/``model``). Every odd value (a blank or epoch-zero date, a
malformed or out-of-range position) becomes ``None``, never an exception.

The display rotation of a phone video held upright lives in the stream's display matrix, which
PyAV does not expose without decoding a frame; it is read here from where the container keeps
it: the ``tkhd`` box of an MP4/MOV (where FFmpeg itself reads it) and the ``Projection``
element of a Matroska/WebM track, with the legacy ``rotate`` tag as a fallback.

:func:`probe_duration` reads a file's duration from those same structures (the ``mvhd`` box,
the Matroska ``Info``) in pure Python, without FFmpeg: the indexer's main process calls it on
files it has not vetted yet, where a crash or a hang inside FFmpeg would take the process down.
"""

from __future__ import annotations

import math
import os
import re
import stat
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from landscape.errors import VideoDecodeError
from landscape.index.extract import parse_exif_datetime, wall_clock
from landscape.index.sniff import HEAD_SIZE, sniff_bytes, sniff_file

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.stream import VideoStream

__all__ = ["VideoFacts", "extract_video", "parse_iso6709", "probe_duration"]

# Raw tag values longer than this are cut (an XMP packet or a long description in a tag).
_MAX_TAG_TEXT = 2048
# Tag names are short; a longer one is junk from a broken muxer.
_MAX_TAG_NAME = 256
# Lengths of the table's text columns the facts go into.
_MAX_TEXT = 128
_MAX_CODEC = 32
_MAX_PROFILE = 64
_MAX_FORMAT = 16
# An average and a real frame rate further apart than this (relative) mean a variable frame
# rate; closer, they are the rounding of one constant rate (29.97 against 30000/1001).
_VFR_TOLERANCE = 0.01
_FIX = "remove or replace the file"


@dataclass
class VideoFacts:
    """The facts of one video file, as the ``media_metadata`` table stores them.

    ``width`` and ``height`` are as displayed (swapped when ``rotation`` is 90 or 270).
    ``rotation`` is the clockwise rotation a player applies, in degrees (0, 90, 180 or 270;
    0 when the container says nothing), the convention of the legacy ``rotate`` tag.
    ``duration`` is in seconds; ``fps`` is the average frame rate (frames over duration),
    ``fps_real`` the rate of the stream's time stamps (FFmpeg's ``r_frame_rate``): for a
    variable frame rate they differ and ``variable_frame_rate`` is True (None when either is
    unknown). ``bit_rate`` is the whole file's, in bits per second. ``frame_count`` is what the
    container declares (None when it does not, as Matroska and MPEG-TS). ``captured_at`` is
    timezone-aware (``creation_time`` is UTC; Apple's creation date carries the local offset).
    ``tags`` are the raw container tags, then the video stream's prefixed with ``video:``.
    """

    width: int | None
    height: int | None
    format: str | None = None
    duration: float | None = None
    fps: float | None = None
    fps_real: float | None = None
    variable_frame_rate: bool | None = None
    video_codec: str | None = None
    video_profile: str | None = None
    rotation: int = 0
    bit_rate: int | None = None
    audio_codec: str | None = None
    frame_count: int | None = None
    captured_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def captured_offset(self) -> int | None:
        """The UTC offset of ``captured_at`` in minutes, when it has one."""
        return wall_clock(self.captured_at)[1]

    def to_dict(self) -> dict[str, Any]:
        """The columns of a ``media_metadata`` row (without ``file_id`` and the place).

        Every column is present: the photo-only ones (exposure, lens…) are None, so a row that
        held an image's facts loses them when the file is now a video. ``captured_at`` becomes
        the local wall-clock time (naive) and ``captured_offset`` its UTC offset in minutes;
        ``tags`` go into the ``exif`` column, which holds a file's raw metadata.
        """
        row: dict[str, Any] = dict.fromkeys(_PHOTO_ONLY_COLUMNS)
        row.update(asdict(self))
        row["exif"] = row.pop("tags")
        row["captured_at"], row["captured_offset"] = wall_clock(self.captured_at)
        return row


_PHOTO_ONLY_COLUMNS = (
    "mode",
    "lens",
    "exposure_time",
    "f_number",
    "iso",
    "focal_length",
    "orientation",
)


# --------------------------------------------------------------------------------------------------
# ISO 6709 positions.

# A signed number with its integer digits and fraction apart: the count of integer digits says
# whether it is degrees, degrees-minutes or degrees-minutes-seconds.
_NUMBER = r"([+\-])(\d+)(?:\.(\d*))?"
_ISO6709 = re.compile(
    rf"{_NUMBER}{_NUMBER}(?:([+\-]\d+(?:\.\d*)?))?(?:CRS[A-Za-z0-9_.:\-]*)?/?",
)
# Integer digits of each form: strict ISO 6709 pads latitude to 2 and longitude to 3 digits of
# degrees, but Android writes ``%+.4f`` (``+2.2950``), so shorter degrees are accepted too.
_LATITUDE_FORMS = {1: 0, 2: 0, 4: 1, 6: 2}
_LONGITUDE_FORMS = {1: 0, 2: 0, 3: 0, 5: 1, 7: 2}


def _angle(sign: str, digits: str, fraction: str | None, forms: Mapping[int, int]) -> float | None:
    """Signed degrees from ``±D[M[S]]`` digits; None for a length no form has, or 60+ minutes."""
    parts = forms.get(len(digits))
    if parts is None:
        return None
    head = len(digits) - 2 * parts  # the degrees' digits
    values: list[float] = [float(digits[:head])]
    values += [float(digits[i : i + 2]) for i in range(head, len(digits), 2)]
    values[-1] += float(f"0.{fraction}") if fraction else 0.0
    if any(value >= 60 for value in values[1:]):
        return None
    degrees = sum(value / 60**i for i, value in enumerate(values))
    return -degrees if sign == "-" else degrees


def parse_iso6709(text: str | None) -> tuple[float, float, float | None] | None:
    """``(latitude, longitude, altitude)`` from an ISO 6709 string, or None when malformed.

    Accepts what phones and cameras write: decimal degrees (``+48.8577+002.2950/``), degrees
    and decimal minutes (``+4851.46+00217.70/``), degrees, minutes and seconds
    (``+485127.6+0021742.0/``), an optional altitude in metres (``+035.000``, ``-012.5``), an
    optional coordinate reference system (``CRSWGS_84``) and the final ``/`` or not.
    Latitude and longitude are signed decimal degrees (south and west negative). A latitude
    beyond ±90°, a longitude beyond ±180° or minutes/seconds of 60 or more give None.
    """
    if not isinstance(text, str):
        return None
    match = _ISO6709.fullmatch(text.strip())
    if match is None:
        return None
    lat_sign, lat_digits, lat_fraction, lon_sign, lon_digits, lon_fraction, alt = match.groups()
    latitude = _angle(lat_sign, lat_digits, lat_fraction, _LATITUDE_FORMS)
    longitude = _angle(lon_sign, lon_digits, lon_fraction, _LONGITUDE_FORMS)
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        return None
    altitude = float(alt) if alt is not None else None
    return latitude, longitude, altitude


# --------------------------------------------------------------------------------------------------
# Tags: raw, and the facts they hold.


def _clean(value: Any, limit: int) -> str | None:
    """A tag value as clean text: NULs (which PostgreSQL refuses) and padding gone; else None."""
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", " ").strip()
    return cleaned[:limit] if cleaned else None


def _raw_tags(container: Mapping[str, Any], stream: Mapping[str, Any]) -> dict[str, str]:
    """The container's tags, then the video stream's as ``video:<name>``, JSON-safe."""
    out: dict[str, str] = {}
    for prefix, tags in (("", container), ("video:", stream)):
        for key, value in tags.items():
            name = _clean(key, _MAX_TAG_NAME)
            text = _clean(value, _MAX_TAG_TEXT)
            if name is not None and text is not None:
                out[prefix + name] = text
    return out


def _lookup(tags: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` present in ``tags``, ignoring case (Matroska tags are upper)."""
    lowered = {key.lower(): value for key, value in tags.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


# Apple's creation date first: it is the local wall-clock time with its offset, while
# ``creation_time`` is UTC (and some writers set it to when the file was last re-muxed).
_CAPTURE_TAGS = ("com.apple.quicktime.creationdate", "creation_time", "video:creation_time")
_MAKE_TAGS = ("com.apple.quicktime.make", "com.android.manufacturer", "make", "video:make")
_MODEL_TAGS = ("com.apple.quicktime.model", "com.android.model", "model", "video:model")
_LOCATION_TAGS = (
    "com.apple.quicktime.location.iso6709",
    "location",
    "location-eng",
    "video:location",
)
# A clock never set reads the epoch: 1904 (the MP4 epoch) or 1970 (Unix). No video file was
# written before 1971, so an earlier date is no capture time.
_FIRST_YEAR = 1971


def _captured_at(tags: Mapping[str, str]) -> datetime | None:
    for name in _CAPTURE_TAGS:
        found = parse_exif_datetime(_lookup(tags, (name,)))
        if found is not None and found.year >= _FIRST_YEAR:
            return found
    return None


def _position(tags: Mapping[str, str]) -> tuple[float | None, float | None, float | None]:
    for name in _LOCATION_TAGS:
        parsed = parse_iso6709(_lookup(tags, (name,)))
        if parsed is None:
            continue
        latitude, longitude, altitude = parsed
        if latitude == 0 and longitude == 0:
            # Devices without a fix write zeros; 0°N 0°E is open ocean, as for photos.
            return None, None, altitude
        return latitude, longitude, altitude
    return None, None, None


# --------------------------------------------------------------------------------------------------
# Display rotation from the container's own structures.

# The ``a b / c d`` part of a display matrix: all a rotation needs.
_Matrix = tuple[float, float, float, float]
_IDENTITY: _Matrix = (1.0, 0.0, 0.0, 1.0)
# At most this many boxes or elements are looked at on one level: a handful are real, and a
# corrupt size cannot make the walk long.
_MAX_CHILDREN = 4096


def _matrix_rotation(matrix: _Matrix) -> float | None:
    """Clockwise degrees of a display matrix's ``a b / c d`` part, as FFmpeg computes them.

    FFmpeg's ``av_display_rotation_get`` gives the counter-clockwise angle
    ``atan2(b / |col 2|, a / |col 1|)`` negated; clockwise is that angle itself. Flips are
    ignored (a mirrored video is displayed the right way up all the same).
    """
    a, b, c, d = matrix
    scale_x, scale_y = math.hypot(a, c), math.hypot(b, d)
    if scale_x == 0 or scale_y == 0:
        return None
    return math.degrees(math.atan2(b / scale_y, a / scale_x))


def _read(fh: IO[bytes], start: int, end: int, limit: int) -> bytes:
    fh.seek(start)
    return fh.read(max(0, min(limit, end - start)))


def _boxes(fh: IO[bytes], start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """``(type, body start, body end)`` of the ISO BMFF boxes between ``start`` and ``end``."""
    position = start
    for _ in range(_MAX_CHILDREN):
        header = _read(fh, position, end, 16)
        if len(header) < 8:
            return
        size, kind = struct.unpack_from(">I4s", header)
        body = position + 8
        if size == 1:  # a 64-bit size follows the type (an mdat over 4 GiB)
            if len(header) < 16:
                return
            (size,) = struct.unpack_from(">Q", header, 8)
            body += 8
        elif size == 0:  # the box runs to the end of the file
            size = end - position
        if size < body - position:
            return  # corrupt: nothing after it can be trusted
        # Not clamped to ``end``: a box running past the end of the file is one cut short.
        yield kind, body, position + size
        position += size


def _child(fh: IO[bytes], start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, body, body_end in _boxes(fh, start, end):
        if found == kind:
            return body, body_end
    return None


def _box_matrix(fh: IO[bytes], body: int, end: int, offsets: tuple[int, int]) -> _Matrix | None:
    """The ``a b / c d`` of the matrix in an ``mvhd`` or ``tkhd`` box (16.16 fixed point).

    ``offsets`` are where the matrix starts in a version 0 and a version 1 box.
    """
    data = _read(fh, body, end, 96)
    offset = offsets[1] if data[:1] == b"\x01" else offsets[0]
    if len(data) < offset + 36:
        return None
    a, b, _u, c, d = struct.unpack_from(">5i", data, offset)
    return a / 65536, b / 65536, c / 65536, d / 65536


_MVHD_MATRIX = (36, 48)
_TKHD_MATRIX = (40, 52)


def _is_video_track(fh: IO[bytes], body: int, end: int) -> bool:
    mdia = _child(fh, body, end, b"mdia")
    hdlr = _child(fh, *mdia, b"hdlr") if mdia is not None else None
    # version and flags (4 bytes), pre_defined (4), then the handler type: "vide" for video.
    return hdlr is not None and _read(fh, hdlr[0], hdlr[1], 12)[8:12] == b"vide"


def _mp4_rotation(fh: IO[bytes], size: int) -> float | None:
    """Clockwise rotation of the first video track of an MP4/MOV, from its ``tkhd`` matrix.

    FFmpeg's display matrix is this matrix multiplied by the movie's (``mvhd``), almost always
    the identity; the product is taken the same way here.
    """
    moov = _child(fh, 0, size, b"moov")
    if moov is None:
        return None
    movie = _IDENTITY
    for kind, body, end in _boxes(fh, *moov):
        if kind == b"mvhd":
            movie = _box_matrix(fh, body, end, _MVHD_MATRIX) or _IDENTITY
        elif kind == b"trak" and _is_video_track(fh, body, end):
            tkhd = _child(fh, body, end, b"tkhd")
            track = _box_matrix(fh, *tkhd, _TKHD_MATRIX) if tkhd is not None else None
            if track is None:
                return None
            (a, b, c, d), (e, f, g, h) = track, movie
            return _matrix_rotation((a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h))
    return None


def _vint(data: bytes, at: int, *, marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at ``at``: ``(value, length)``; -1 for "unknown size".

    Element IDs keep their length marker bit (``marker=True``), sizes drop it.
    """
    if at >= len(data) or data[at] == 0:
        return None
    first = data[at]
    length = 9 - first.bit_length()
    if at + length > len(data):
        return None
    value = first if marker else first & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    if not marker and value == (1 << (7 * length)) - 1:
        return -1, length  # all ones: the size is unknown (a live stream's segment)
    return value, length


def _elements(fh: IO[bytes], start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``(ID, body start, body end)`` of the EBML elements between ``start`` and ``end``."""
    position = start
    for _ in range(_MAX_CHILDREN):
        header = _read(fh, position, end, 12)
        ident = _vint(header, 0, marker=True)
        size = _vint(header, ident[1], marker=False) if ident is not None else None
        if ident is None or size is None:
            return
        body = position + ident[1] + size[1]
        if size[0] < 0:  # unknown size: it runs to the end of its parent, nothing follows it
            yield ident[0], body, end
            return
        yield ident[0], body, min(body + size[0], end)
        position = body + size[0]


_EBML_SEGMENT = 0x18538067
_EBML_TRACKS = 0x1654AE6B
_EBML_CLUSTER = 0x1F43B675
_EBML_TRACK_ENTRY = 0xAE
_EBML_TRACK_TYPE = 0x83
_EBML_VIDEO = 0xE0
_EBML_PROJECTION = 0x7670
_EBML_PROJECTION_TYPE = 0x7671
_EBML_POSE_ROLL = 0x7675
_EBML_VIDEO_TRACK = 1


def _ebml_uint(fh: IO[bytes], body: int, end: int) -> int:
    return int.from_bytes(_read(fh, body, end, 8), "big")


def _ebml_float(fh: IO[bytes], body: int, end: int) -> float | None:
    data = _read(fh, body, end, 8)
    if len(data) in (4, 8):
        value: float = struct.unpack(">f" if len(data) == 4 else ">d", data)[0]
        return value
    return 0.0 if not data else None  # an empty float element is 0; other sizes are invalid


def _projection_rotation(fh: IO[bytes], body: int, end: int) -> float | None:
    """Clockwise degrees from a track's ``Projection``: its roll, counter-clockwise there."""
    kind, roll = 0, None
    for ident, start, stop in _elements(fh, body, end):
        if ident == _EBML_PROJECTION_TYPE:
            kind = _ebml_uint(fh, start, stop)
        elif ident == _EBML_POSE_ROLL:
            roll = _ebml_float(fh, start, stop)
    # Other projection types are 360° video, whose roll orients a sphere, not the picture.
    return -roll if kind == 0 and roll is not None and math.isfinite(roll) else None


def _video_track_rotation(fh: IO[bytes], body: int, end: int) -> tuple[bool, float | None]:
    """Whether a ``TrackEntry`` is video, and the rotation of its projection if it has one."""
    is_video, rotation = False, None
    for ident, start, stop in _elements(fh, body, end):
        if ident == _EBML_TRACK_TYPE:
            is_video = _ebml_uint(fh, start, stop) == _EBML_VIDEO_TRACK
        elif ident == _EBML_VIDEO:
            for inner, inner_start, inner_stop in _elements(fh, start, stop):
                if inner == _EBML_PROJECTION:
                    rotation = _projection_rotation(fh, inner_start, inner_stop)
    return is_video, rotation


def _segment_child(fh: IO[bytes], size: int, wanted: int) -> tuple[int, int] | None:
    """``(body start, body end)`` of the first ``wanted`` element of a Matroska ``Segment``.

    Only the first Segment, and only before its first ``Cluster``: the header elements
    (``Info``, ``Tracks``) come before the media, and stopping there keeps the walk short on a
    file of thousands of clusters.
    """
    for ident, body, end in _elements(fh, 0, size):
        if ident != _EBML_SEGMENT:
            continue
        for child, start, stop in _elements(fh, body, end):
            if child == _EBML_CLUSTER:
                return None
            if child == wanted:
                return start, stop
        return None
    return None


def _matroska_rotation(fh: IO[bytes], size: int) -> float | None:
    """Clockwise rotation of the first video track of a Matroska/WebM file, or None."""
    tracks = _segment_child(fh, size, _EBML_TRACKS)
    if tracks is None:
        return None
    for entry, entry_start, entry_stop in _elements(fh, *tracks):
        if entry == _EBML_TRACK_ENTRY:
            is_video, rotation = _video_track_rotation(fh, entry_start, entry_stop)
            if is_video:
                return rotation
    return None


_ISO_BMFF_FORMATS = frozenset({"MP4", "MOV", "M4V", "3GP"})
# Where each container keeps the display matrix, by the sniffed format.
_ROTATION_READERS: dict[str, Callable[[IO[bytes], int], float | None]] = {
    **dict.fromkeys(_ISO_BMFF_FORMATS, _mp4_rotation),
    "MKV": _matroska_rotation,
    "WebM": _matroska_rotation,
}


def _rotation(path: Path, fmt: str | None, stream_tags: Mapping[str, str]) -> int:
    """The clockwise display rotation, snapped to 0, 90, 180 or 270 degrees."""
    degrees: float | None = None
    reader = _ROTATION_READERS.get(fmt or "")
    if reader is not None:
        try:
            with open(path, "rb") as fh:
                degrees = reader(fh, os.fstat(fh.fileno()).st_size)
        except (OSError, struct.error, ValueError, OverflowError):
            degrees = None  # unreadable structures: fall back on the tag, else upright
    if degrees is None:
        # FFmpeg before 6 exported the matrix as this tag, clockwise; some files keep it.
        try:
            degrees = float(_lookup(stream_tags, ("rotate",)) or 0)
        except ValueError:
            degrees = 0.0
    if not math.isfinite(degrees):
        return 0
    return round(degrees / 90) % 4 * 90


# --------------------------------------------------------------------------------------------------
# Duration without FFmpeg.

# Where the timescale and the duration sit in an ``mvhd`` body of each version, and the all-ones
# duration that means "unknown". After the version and flags (4 bytes), version 0 has 32-bit
# creation and modification times and duration, version 1 64-bit ones (for long movies).
_MVHD_TIMES = {
    0: (struct.Struct(">12xII"), 0xFFFF_FFFF),
    1: (struct.Struct(">20xIQ"), 0xFFFF_FFFF_FFFF_FFFF),
}


def _mp4_duration(fh: IO[bytes], size: int) -> float | None:
    """Seconds of an MP4/MOV: the movie header's (``mvhd``) duration over its timescale.

    The ``moov`` box is looked for among the top-level boxes wherever it is: first after
    ``faststart``, after the media data (``mdat``) as a camera writes it.
    """
    moov = _child(fh, 0, size, b"moov")
    mvhd = _child(fh, *moov, b"mvhd") if moov is not None else None
    if mvhd is None:
        return None
    data = _read(fh, *mvhd, 32)
    layout = _MVHD_TIMES.get(data[0]) if data else None
    if layout is None or len(data) < layout[0].size:
        return None  # a version this reader does not know, or a box cut short
    timescale, duration = layout[0].unpack_from(data)
    if timescale == 0 or duration == layout[1]:
        return None
    return duration / timescale


_EBML_INFO = 0x1549A966
_EBML_TIMESTAMP_SCALE = 0x2AD7B1
_EBML_DURATION = 0x4489
# Nanoseconds per timestamp unit when the Info does not say: the specification's default.
_DEFAULT_TIMESTAMP_SCALE = 1_000_000


def _matroska_duration(fh: IO[bytes], size: int) -> float | None:
    """Seconds of a Matroska/WebM file: the ``Info``'s Duration, in TimestampScale units.

    A live recording (an unknown-size Segment) may have no Duration: then None.
    """
    info = _segment_child(fh, size, _EBML_INFO)
    if info is None:
        return None
    scale, duration = _DEFAULT_TIMESTAMP_SCALE, None
    for ident, start, stop in _elements(fh, *info):
        if ident == _EBML_TIMESTAMP_SCALE:
            scale = _ebml_uint(fh, start, stop)
        elif ident == _EBML_DURATION:
            duration = _ebml_float(fh, start, stop)
    return duration * scale / 1e9 if duration is not None else None


_DURATION_READERS: dict[str, Callable[[IO[bytes], int], float | None]] = {
    **dict.fromkeys(_ISO_BMFF_FORMATS, _mp4_duration),
    "MKV": _matroska_duration,
    "WebM": _matroska_duration,
}
# Opening a FIFO for reading waits for a writer: without blocking, it opens at once and is
# then refused as no regular file.
_PROBE_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _open_regular(path: Path | str) -> IO[bytes] | None:
    """``path`` opened for reading when it is a regular file; None for a FIFO, device, folder."""
    fd = os.open(path, _PROBE_FLAGS)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def probe_duration(path: Path | str) -> float | None:
    """Seconds of the video at ``path`` from its container headers, without FFmpeg; else None.

    For the indexer's main process, which sizes a worker's timeout by it before any worker
    has looked at the file: pure Python, so a hostile file can neither crash nor hang it, and
    bounded (the first bytes, then at most a few thousand box or element headers per level).
    MP4/MOV/M4V/3GP give the ``mvhd`` duration, Matroska/WebM the ``Info`` Duration. Other
    formats (AVI, MPEG-TS…), malformed or unknown values, and a missing, unreadable or
    irregular file (a FIFO, a folder) give None; the result is otherwise finite and positive.
    """
    try:
        fh = _open_regular(path)
        if fh is None:
            return None
        with fh:
            size = os.fstat(fh.fileno()).st_size
            reader = _DURATION_READERS.get(sniff_bytes(fh.read(HEAD_SIZE)).format or "")
            seconds = reader(fh, size) if reader is not None else None
    except (OSError, ValueError, OverflowError, struct.error):
        return None  # unreadable, or structures that point outside any real file
    return seconds if seconds is not None and math.isfinite(seconds) and seconds > 0 else None


# --------------------------------------------------------------------------------------------------
# Streams.

# FFmpeg's demuxer names for what the sniffer does not recognise by its bytes.
_FFMPEG_FORMATS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4",
    "matroska,webm": "MKV",
    "avi": "AVI",
    "mpegts": "MPEG-TS",
    "mpeg": "MPEG-PS",
    "flv": "FLV",
    "asf": "ASF",
}


def _format(path: Path, container: InputContainer) -> str | None:
    # The sniffer tells MP4 from MOV and MKV from WebM by the file's brand and DocType, which
    # FFmpeg's combined demuxers ("mov,mp4,…", "matroska,webm") do not.
    try:
        sniffed = sniff_file(path)
    except OSError:
        sniffed = None
    if sniffed is not None and sniffed.media_type == "video" and sniffed.format:
        return sniffed.format
    name = container.format.name
    return _FFMPEG_FORMATS.get(name, name.split(",")[0].upper()[:_MAX_FORMAT] or None)


def _rate(value: Fraction | None) -> float | None:
    if value is None or value.denominator == 0:
        return None
    rate = float(value)
    return rate if math.isfinite(rate) and rate > 0 else None


def _stream_seconds(stream: VideoStream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    seconds = float(stream.duration * stream.time_base)
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _duration(stream: VideoStream, container: InputContainer) -> float | None:
    seconds = _stream_seconds(stream)
    if seconds is None and container.duration is not None:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    return seconds if seconds is not None and math.isfinite(seconds) and seconds > 0 else None


def _has_frames(container: InputContainer, stream: VideoStream) -> bool:
    """Whether the stream holds a frame: its header says so, or a first packet is there.

    Matroska and MPEG-TS declare no frame count, and an empty stream declares no duration
    either; then reading packets up to the first non-empty one (demuxing, not decoding)
    settles it.
    """
    import av

    if stream.frames > 0 or _stream_seconds(stream) is not None:
        return True
    try:
        return any(packet.size > 0 for packet in container.demux(stream))
    except av.FFmpegError:
        return False  # broken before its first packet: no frame can be had from it


def _video_stream(container: InputContainer) -> VideoStream | None:
    import av

    for stream in container.streams.video:
        # Cover art in an audio file is a one-picture "video" stream marked as attached.
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _audio_codec(container: InputContainer) -> str | None:
    for stream in container.streams.audio:
        context = getattr(stream, "codec_context", None)  # None when FFmpeg has no decoder
        name = getattr(context, "name", None)
        if name:
            return _clean(name, _MAX_CODEC)
    return None


def _reason(exc: BaseException) -> str:
    """FFmpeg's reason for an error, on one line, without the errno and path around it."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    line = " ".join(str(text).split())
    return line[:1].lower() + line[1:]


_NO_INDEX = (
    "not a readable video: its index (the moov box) is missing or cut off, as when a recording "
    "stops without finishing the file or a copy is cut short"
)


def _index_missing(path: Path) -> bool:
    """Whether an MP4/MOV lacks a whole ``moov`` box, the index without which nothing plays.

    A camera writes it when recording stops, at the end of the file (unless ``faststart``
    moved it to the front): a file cut short loses it with the last bytes.
    """
    try:
        if sniff_file(path).format not in _ISO_BMFF_FORMATS:
            return False
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            moov = _child(fh, 0, size, b"moov")
    except (OSError, struct.error):
        return False
    return moov is None or moov[1] > size


def _unreadable(path: Path, reason: str) -> VideoDecodeError:
    message = _NO_INDEX if _index_missing(path) else f"not a readable video: {reason}"
    return VideoDecodeError(message, path=path, fix=_FIX)


def _facts(path: Path, container: InputContainer) -> VideoFacts:
    if not container.streams:
        if _index_missing(path):
            raise _unreadable(path, "it holds no streams")
        # FFmpeg's MP4 muxer, for one, writes no track for a stream that got no frame.
        raise VideoDecodeError(
            "has no video frames (it holds no streams at all)", path=path, fix=_FIX
        )
    stream = _video_stream(container)
    if stream is None:
        raise VideoDecodeError(
            "has no video stream", path=path, fix="an audio-only file has nothing to index"
        )
    if getattr(stream, "codec_context", None) is None:
        raise VideoDecodeError(
            "not a readable video: this FFmpeg has no decoder for its video codec",
            path=path,
            fix="convert it to H.264 or HEVC",
        )
    if not _has_frames(container, stream):
        raise VideoDecodeError("has no video frames", path=path, fix=_FIX)
    context = stream.codec_context
    tags = _raw_tags(container.metadata, stream.metadata)
    fmt = _format(path, container)
    rotation = _rotation(path, fmt, stream.metadata)
    width, height = context.width or None, context.height or None
    if rotation in (90, 270):
        width, height = height, width
    fps, fps_real = _rate(stream.average_rate), _rate(stream.base_rate or stream.guessed_rate)
    variable = None
    if fps is not None and fps_real is not None:
        variable = abs(fps - fps_real) > _VFR_TOLERANCE * fps_real
    bit_rate = container.bit_rate or context.bit_rate or None
    latitude, longitude, altitude = _position(tags)
    return VideoFacts(
        width=width,
        height=height,
        format=fmt,
        duration=_duration(stream, container),
        fps=fps,
        fps_real=fps_real,
        variable_frame_rate=variable,
        video_codec=_clean(context.name, _MAX_CODEC),
        video_profile=_clean(stream.profile, _MAX_PROFILE),
        rotation=rotation,
        bit_rate=bit_rate if bit_rate is not None and bit_rate > 0 else None,
        audio_codec=_audio_codec(container),
        frame_count=stream.frames if stream.frames > 0 else None,
        captured_at=_captured_at(tags),
        camera_make=_clean(_lookup(tags, _MAKE_TAGS), _MAX_TEXT),
        camera_model=_clean(_lookup(tags, _MODEL_TAGS), _MAX_TEXT),
        latitude=latitude,
        longitude=longitude,
        altitude=altitude,
        tags=tags,
    )


def extract_video(path: Path | str) -> VideoFacts:
    """Read the facts of the video at ``path`` from its headers, decoding no frame.

    Raises :class:`~landscape.errors.VideoDecodeError` naming the file, on one line, for a
    missing or empty file, one FFmpeg cannot open (``not a readable video: <reason>``), one
    without a video stream (audio only) and one whose video stream holds no frame. A file that
    opens but is cut short further on gives the facts its headers declare.
    """
    import av

    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise VideoDecodeError("file not found", path=path, fix="check the path") from exc
    except OSError as exc:
        raise VideoDecodeError(f"cannot be read: {_reason(exc)}", path=path, fix=_FIX) from exc
    if size == 0:
        raise VideoDecodeError("empty file (0 bytes)", path=path, fix=_FIX)
    try:
        # Tags in another encoding than UTF-8 are replaced characters, not an exception.
        container = av.open(str(path), metadata_errors="replace")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise _unreadable(path, _reason(exc)) from exc
    try:
        with container:
            return _facts(path, container)
    except av.FFmpegError as exc:
        raise _unreadable(path, _reason(exc)) from exc
